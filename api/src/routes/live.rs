//! `/api/admin/rooms`: the rooms that are up now, wherever they run, who is in each with their
//! connection state, and closing one. Admins only; a close is audited.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use sightline_signaling::RoomId;
use sightline_signaling::protocol::ParticipantInfo;
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::store::{audit, interviews};

/// The live-rooms routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/rooms", get(list))
        .route("/api/admin/rooms/{id}/close", post(close))
}

/// Someone in a room now.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveParticipant {
    /// Their identity in the room (participant id; a phone's is `phone-…`).
    pub identity: String,
    /// Their name.
    pub name: String,
    /// `candidate`, `interviewer`, `observer` or `reviewer`.
    pub role: String,
    /// Their connection dropped and may come back.
    pub reconnecting: bool,
    /// `good`, `fair`, `poor` or `lost`, from their connections' reports; absent before any.
    pub connection: Option<String>,
    /// For a candidate's phone: the candidate's identity.
    pub phone_of: Option<String>,
}

impl From<ParticipantInfo> for LiveParticipant {
    fn from(info: ParticipantInfo) -> LiveParticipant {
        let word = |value: serde_json::Value| value.as_str().map(str::to_owned);
        LiveParticipant {
            role: info.role.as_str().to_owned(),
            connection: info
                .connection
                .and_then(|c| serde_json::to_value(c).ok())
                .and_then(word),
            identity: info.identity,
            name: info.name,
            reconnecting: info.reconnecting,
            phone_of: info.phone_of,
        }
    }
}

/// A room that is up.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveRoom {
    /// The interview (the room is named after it).
    pub interview_id: String,
    /// Its title; `None` if the interview is gone.
    pub title: Option<String>,
    /// The node it runs on; `None` alone.
    pub node: Option<String>,
    /// Who is in it and can be seen; `None` when its room did not answer in time.
    pub participants: Option<Vec<LiveParticipant>>,
    /// Members nobody sees: reviewers watching, the server's recorder and proctor.
    pub hidden: usize,
    /// Published tracks.
    pub tracks: usize,
}

/// `GET /api/admin/rooms`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveRooms {
    /// Every room up now.
    pub rooms: Vec<LiveRoom>,
    /// Nodes that did not answer (their rooms are missing).
    pub unanswered_nodes: Vec<String>,
}

/// The rooms that are up now and who is in them.
#[utoipa::path(get, path = "/api/admin/rooms", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = LiveRooms), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    admin: AuthUser,
) -> Result<Json<LiveRooms>, ApiError> {
    admin.require_admin()?;
    let (hosted, unanswered_nodes) = crate::rooms::live(&state).await;
    let mut rooms = Vec::with_capacity(hosted.len());
    for room in hosted {
        let title = interviews::by_id(state.db.pool(), &room.room.0)
            .await?
            .map(|interview| interview.title);
        rooms.push(LiveRoom {
            interview_id: room.room.0,
            title,
            node: room.node,
            participants: room
                .participants
                .map(|people| people.into_iter().map(Into::into).collect()),
            hidden: room.hidden,
            tracks: room.tracks,
        });
    }
    Ok(Json(LiveRooms {
        rooms,
        unanswered_nodes,
    }))
}

/// Closes a room for everyone in it (each is told `room_closed`); they may join again while the
/// interview is open. 404 when it is not up.
#[utoipa::path(post, path = "/api/admin/rooms/{id}/close", tag = "admin",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn close(
    State(state): State<AppState>,
    admin: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.require_admin()?;
    if id.is_empty() || id.len() > 64 {
        return Err(ApiError::NotFound);
    }
    if !crate::rooms::close(&state, &RoomId(id.clone())).await? {
        return Err(ApiError::NotFound);
    }
    audit::record(
        state.db.pool(),
        &admin.id,
        "room.closed",
        &id,
        serde_json::json!({}),
    )
    .await?;
    tracing::info!(interview = %id, "room closed by an admin");
    Ok(StatusCode::NO_CONTENT)
}
