//! The interview's workspace: the shared editor's socket, the document at any moment, and
//! code runs.
//!
//! What a caller may do is their grants' [`CodeGrants`], from their role in the interview:
//! candidates and interviewers see, edit and run; observers and reviewers see; a paired
//! phone has no access token and never reaches any of this; anyone else gets 404.

use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use sightline_collab::Member;
use sightline_signaling::{CodeGrants, Grants};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Principal, principal};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::interviews::{self, Access};
use crate::runs::{LanguageInfo, Requester};
use crate::state::AppState;
use crate::store::workspace::{self as store, RunRow};
use crate::workspace::Outbound;

/// The workspace routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/interviews/{id}/workspace", get(read))
        .route("/api/interviews/{id}/workspace/history", get(history))
        .route("/api/interviews/{id}/workspace/socket", get(upgrade))
        .route("/api/interviews/{id}/runs", post(run).get(runs))
}

/// Time a new socket has to authenticate.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame a member may send (an edit, a presence update). A paste of a whole document
/// is one update, so this is the document's limit and a little.
const MAX_FRAME_BYTES: usize = (1 << 20) + 4096;
/// Frames per second a member's socket is read at, and the burst on top (fast typing with
/// presence is well under this; past it reading slows down).
const FRAMES_PER_SECOND: u32 = 60;
const FRAME_BURST: u32 = 240;
/// Refusals after which a socket is closed.
const MAX_STRIKES: u32 = 50;
/// Cursor colours, by the participant's place in the interview.
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#8c564b",
];

/// The caller's grants on the interview's code, with who they are there.
struct CodeAccess {
    grants: CodeGrants,
    /// Not shown to the others (a reviewer, an admin looking in).
    hidden: bool,
    /// The room is open: after it closes the code is kept as it was (read-only for all).
    room_open: bool,
    participant: Option<String>,
    name: String,
    color: &'static str,
}

async fn code_access(
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
    if !grants.view || removed_from_room(state, id, participant.as_deref()) {
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
    let rows = store::updates(state.db.pool(), &id, query.at_ms).await?;
    let mut updates = Vec::with_capacity(rows.len());
    for row in &rows {
        updates.push(row.bytes()?);
    }
    let snapshot = tokio::task::spawn_blocking(move || sightline_collab::replay(&updates))
        .await
        .map_err(|err| ApiError::Internal(format!("replaying the document: {err}")))?
        .map_err(|err| ApiError::Internal(format!("replaying the document: {err}")))?;
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
        .start(&state.db, &state.workspaces, &id, requester, body.stdin)
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

async fn upgrade(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    if id.is_empty() || id.len() > 64 {
        return ApiError::NotFound.into_response();
    }
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| session(socket, state, id))
}

/// What a client may send as text.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientText {
    /// The first message: the caller's access token.
    Auth { token: String },
}

/// The first thing a member hears: what they may do.
#[derive(Debug, Serialize)]
struct Welcome {
    r#type: &'static str,
    can_edit: bool,
    can_run: bool,
    execution_available: bool,
    languages: Vec<LanguageInfo>,
    default_language: &'static str,
    you: WelcomeYou,
}

#[derive(Debug, Serialize)]
struct WelcomeYou {
    name: String,
    color: &'static str,
}

async fn send_json(socket: &mut WebSocket, value: &impl Serialize) -> bool {
    match serde_json::to_string(value) {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => false,
    }
}

async fn refuse(socket: &mut WebSocket, code: &str, message: &str) -> bool {
    send_json(
        socket,
        &serde_json::json!({ "type": "error", "error": { "code": code, "message": message } }),
    )
    .await
}

async fn authenticate(
    socket: &mut WebSocket,
    state: &AppState,
    id: &str,
) -> Option<(Principal, CodeAccess)> {
    let first = tokio::time::timeout(AUTH_TIMEOUT, socket.recv()).await;
    let Ok(Some(Ok(Message::Text(text)))) = first else {
        refuse(socket, "auth_required", "the first message must be auth").await;
        return None;
    };
    let Ok(ClientText::Auth { token }) = serde_json::from_str::<ClientText>(&text) else {
        refuse(socket, "auth_required", "the first message must be auth").await;
        return None;
    };
    let principal = match principal::from_token(state, &token).await {
        Ok(principal) => principal,
        Err(_) => {
            refuse(
                socket,
                "unauthenticated",
                "the access token is invalid or expired",
            )
            .await;
            return None;
        }
    };
    match code_access(state, &principal, id).await {
        Ok((_, code)) => Some((principal, code)),
        Err(ApiError::NotFound) => {
            refuse(socket, "not_found", "not found").await;
            None
        }
        Err(err) => {
            tracing::warn!(%err, "opening the shared document");
            refuse(
                socket,
                "unavailable",
                "the shared document is not available",
            )
            .await;
            None
        }
    }
}

/// Whether a moderator removed `participant` from interview `id`'s room and nobody let them
/// back in: then they are out of its code too.
fn removed_from_room(state: &AppState, id: &str, participant: Option<&str>) -> bool {
    participant.is_some_and(|me| {
        state
            .hub
            .is_barred(&sightline_signaling::RoomId(id.to_owned()), me)
    })
}

/// Why a member's access is no longer what their socket was opened with, if it is not. A
/// database that does not answer is not a revocation: the socket carries on and asks again.
/// A removal from the room is known without the database, so it is asked first.
async fn access_changed(
    state: &AppState,
    principal: &Principal,
    participant: Option<&str>,
    id: &str,
    was: (CodeGrants, bool),
) -> Option<&'static str> {
    if removed_from_room(state, id, participant) {
        return Some("you no longer have access to this interview");
    }
    let principal = match principal::current(state, principal.clone()).await {
        Ok(principal) => principal,
        Err(ApiError::Unauthenticated) => return Some("your session in this interview ended"),
        Err(_) => return None,
    };
    match code_access(state, &principal, id).await {
        Ok((_, now)) if (now.grants, now.room_open) == was => None,
        Ok(_) => Some("what you may do with the code changed; reconnecting"),
        Err(ApiError::NotFound) => Some("you no longer have access to this interview"),
        Err(_) => None,
    }
}

async fn session(mut socket: WebSocket, state: AppState, id: String) {
    let Some((principal, code)) = authenticate(&mut socket, &state, &id).await else {
        let _ = socket.send(Message::Close(None)).await;
        return;
    };
    let can_edit = code.grants.edit && code.room_open;
    let welcome = Welcome {
        r#type: "welcome",
        can_edit,
        can_run: code.grants.run,
        execution_available: state.runs.available(),
        languages: state.runs.languages(),
        default_language: crate::runs::DEFAULT_LANGUAGE,
        you: WelcomeYou {
            name: code.name.clone(),
            color: code.color,
        },
    };
    let opened_with = (code.grants, code.room_open);
    let participant = code.participant.clone();
    let member = Member {
        name: code.name,
        color: code.color.to_owned(),
        can_write: can_edit,
        hidden: code.hidden,
    };
    let Ok(mut connection) = state
        .workspaces
        .connect(&id, member, code.participant)
        .await
    else {
        refuse(
            &mut socket,
            "unavailable",
            "the shared document is not available",
        )
        .await;
        return;
    };
    // Joined before the welcome: a notice sent from now on (a question revealed) reaches this
    // socket, so a client that refreshes on welcome misses nothing. The welcome still comes
    // first: what the document sends waits in the connection until the loop below.
    if !send_json(&mut socket, &welcome).await {
        return;
    }
    let quota = Quota::per_second(NonZeroU32::new(FRAMES_PER_SECOND).unwrap_or(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(FRAME_BURST).unwrap_or(NonZeroU32::MIN));
    let limiter = RateLimiter::direct(quota);
    let mut strikes = 0u32;
    // Besides when told to (`Workspaces::recheck`), an open socket checks its member's access
    // this often: a room that closes at its time loses the editor within it. The setting is
    // validated at start; `interval` would panic on zero.
    let every = Duration::from_secs(state.settings.execution.editor_recheck_secs.max(1));
    let mut recheck = tokio::time::interval(every);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.reset();
    loop {
        let mut check_now = false;
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Binary(frame))) => {
                    // Past the rate the socket is read more slowly, never dropped from: a
                    // dropped edit would leave every later edit of that client waiting on it.
                    limiter.until_ready().await;
                    if !connection.send(frame.to_vec()).await {
                        break;
                    }
                }
                Some(Ok(Message::Text(_))) => {
                    strikes += 1;
                    if strikes > MAX_STRIKES {
                        break;
                    }
                    refuse(&mut socket, "malformed_message", "after auth, only binary y-protocols frames are accepted").await;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            outgoing = connection.from_doc.recv() => match outgoing {
                Some(Outbound::Frame(frame)) => {
                    if socket.send(Message::Binary(frame.into())).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Notice(notice)) => {
                    if !send_json(&mut socket, notice.as_ref()).await {
                        break;
                    }
                }
                Some(Outbound::Recheck) => check_now = true,
                None => break,
            },
            _ = recheck.tick() => check_now = true,
        }
        if check_now
            && let Some(reason) =
                access_changed(&state, &principal, participant.as_deref(), &id, opened_with).await
        {
            refuse(&mut socket, "access_changed", reason).await;
            break;
        }
    }
    drop(connection);
    let _ = socket.send(Message::Close(None)).await;
}
