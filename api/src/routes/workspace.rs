//! The interview's workspace: the document at any moment, its history, and code runs (the
//! shared editor's socket is [`crate::editor`]).
//!
//! What a caller may do is their grants' [`CodeGrants`], from their role in the interview:
//! candidates and interviewers see, edit and run; observers and reviewers see; a paired
//! phone has no access token and never reaches any of this; anyone else gets 404.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sightline_signaling::{CodeGrants, Grants};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::interviews::{self, Access};
use crate::runs::Requester;
use crate::state::AppState;
use crate::store::workspace::{self as store, RunRow};

/// The workspace routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/interviews/{id}/workspace", get(read))
        .route("/api/interviews/{id}/workspace/history", get(history))
        .route(
            "/api/interviews/{id}/workspace/socket",
            get(crate::editor::upgrade),
        )
        .route("/api/interviews/{id}/runs", post(run).get(runs))
}

/// Cursor colours, by the participant's place in the interview.
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#8c564b",
];

/// The caller's grants on the interview's code, with who they are there.
pub(crate) struct CodeAccess {
    pub(crate) grants: CodeGrants,
    /// Not shown to the others (a reviewer, an admin looking in).
    pub(crate) hidden: bool,
    /// The room is open: after it closes the code is kept as it was (read-only for all).
    pub(crate) room_open: bool,
    pub(crate) participant: Option<String>,
    pub(crate) name: String,
    pub(crate) color: &'static str,
}

pub(crate) async fn code_access(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<(Access, CodeAccess), ApiError> {
    let access = interviews::access(state, principal, id).await?;
    let (grants, hidden, participant, name, place) = match (&access.me, access.my_role()) {
        (Some(me), Some(role)) => (
            Grants::for_role(role).code,
            Grants::for_role(role).hidden,
            Some(me.id.clone()),
            me.display_name.clone(),
            access
                .participants
                .iter()
                .position(|p| p.id == me.id)
                .unwrap_or(0),
        ),
        // An admin outside the interview may look, not touch.
        _ => (
            CodeGrants::READ,
            true,
            None,
            "Admin".to_owned(),
            COLORS.len() - 1,
        ),
    };
    if !grants.view || removed_from_room(state, id, participant.as_deref()).await? {
        return Err(ApiError::NotFound);
    }
    let code = CodeAccess {
        grants,
        hidden,
        room_open: interviews::room_open(&access.interview, crate::store::now()),
        participant,
        name,
        color: COLORS[place % COLORS.len()],
    };
    Ok((access, code))
}

/// The document at a moment.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    /// The code.
    pub text: String,
    /// The language chosen in the editor.
    pub language: Option<String>,
    /// The moment (unix milliseconds; the last change's when not asked for one).
    pub at_ms: Option<i64>,
    /// Changes up to that moment.
    pub changes: usize,
}

/// `?at_ms=`: a moment.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AtQuery {
    /// Unix milliseconds; the document as it was then (now, without it).
    pub at_ms: Option<i64>,
}

/// The shared code as it is, or as it was at `at_ms` (rebuilt from the stored changes).
#[utoipa::path(get, path = "/api/interviews/{id}/workspace", tag = "workspace",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Interview id"), AtQuery),
    responses((status = 200, body = DocumentView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<AtQuery>,
) -> Result<Json<DocumentView>, ApiError> {
    code_access(&state, &principal, &id).await?;
    let (snapshot, rows) = crate::workspace::stored_document(&state.db, &id, query.at_ms).await?;
    Ok(Json(DocumentView {
        text: snapshot.text,
        language: snapshot.language,
        at_ms: query.at_ms.or_else(|| rows.last().map(|row| row.at_ms)),
        changes: rows.len(),
    }))
}

/// One stored change, for a player that rebuilds the document itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeView {
    /// Order of application.
    pub seq: i64,
    /// Unix milliseconds it reached the server.
    pub at_ms: i64,
    /// The Yjs v1 update, base64.
    pub update: String,
}

/// Everything the reviewer's timeline needs: every change and every run.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryView {
    /// Changes in order.
    pub changes: Vec<ChangeView>,
    /// Runs, oldest first.
    pub runs: Vec<RunRow>,
}

/// The document's full history with its runs.
#[utoipa::path(get, path = "/api/interviews/{id}/workspace/history", tag = "workspace",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    responses((status = 200, body = HistoryView), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn history(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<HistoryView>, ApiError> {
    code_access(&state, &principal, &id).await?;
    let changes = store::updates(state.db.pool(), &id, None)
        .await?
        .into_iter()
        .map(|row| ChangeView {
            seq: row.seq,
            at_ms: row.at_ms,
            update: row.update_b64,
        })
        .collect();
    let runs = store::runs(state.db.pool(), &id).await?;
    Ok(Json(HistoryView { changes, runs }))
}

/// Body of `POST /api/interviews/{id}/runs`.
#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// What the program reads on stdin (limited by `execution.limits.stdin_kib`).
    #[garde(skip)]
    #[serde(default)]
    pub stdin: String,
}

/// Runs the interview's current code (its candidate and interviewers, while the room is
/// open). Answers at once with the run queued or running; its result is stored and sent to
/// everyone in the editor.
#[utoipa::path(post, path = "/api/interviews/{id}/runs", tag = "workspace",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    request_body = RunRequest,
    responses((status = 202, body = RunRow), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn run(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RunRequest>,
) -> Result<(StatusCode, Json<RunRow>), ApiError> {
    let (access, code) = code_access(&state, &principal, &id).await?;
    if !code.grants.run {
        return Err(ApiError::Forbidden(
            "only this interview's candidate and interviewers run its code",
        ));
    }
    interviews::require_room_open(
        &access.interview,
        crate::store::now(),
        "this interview is over; its code can no longer be run",
    )?;
    let requester = Requester {
        participant: code.participant,
        name: code.name,
    };
    let run = state
        .runs
        .start(&state.db, &state.documents, &id, requester, body.stdin)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

/// The interview's runs, oldest first.
#[utoipa::path(get, path = "/api/interviews/{id}/runs", tag = "workspace",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    responses((status = 200, body = [RunRow]), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn runs(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Vec<RunRow>>, ApiError> {
    code_access(&state, &principal, &id).await?;
    Ok(Json(store::runs(state.db.pool(), &id).await?))
}

/// Whether a moderator removed `participant` from interview `id`'s room and nobody let them
/// back in: then they are out of its code too. The room's host knows: this node, or in a
/// cluster the node the room is placed on, asked (an error when it cannot be).
pub(crate) async fn removed_from_room(
    state: &AppState,
    id: &str,
    participant: Option<&str>,
) -> Result<bool, ApiError> {
    let Some(me) = participant else {
        return Ok(false);
    };
    if state
        .hub
        .is_barred(&sightline_signaling::RoomId(id.to_owned()), me)
    {
        return Ok(true);
    }
    if state.cluster.is_none() {
        return Ok(false);
    }
    crate::rooms::control(
        state,
        id,
        crate::rooms::RoomControl::IsBarred {
            participant: me.to_owned(),
        },
    )
    .await
}
