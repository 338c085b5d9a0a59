//! The shared editor's socket: a member authenticates with their access token, is told what
//! they may do, and then exchanges y-protocols frames with the interview's document
//! ([`crate::workspace`]) until they leave or their access changes.

use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use sightline_collab::Member;
use sightline_signaling::CodeGrants;

use crate::auth::{Principal, principal};
use crate::error::ApiError;
use crate::routes::workspace::{CodeAccess, code_access, removed_from_room};
use crate::runs::LanguageInfo;
use crate::state::AppState;
use crate::workspace::Outbound;

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

/// `GET /api/interviews/{id}/workspace/socket`: upgrades to the editor's socket.
pub(crate) async fn upgrade(
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
