//! `/rtc/{room}`: the signaling WebSocket.
//!
//! The edge between the network and the rooms: it checks the join token for this room (signature,
//! expiry, audience, room), hands a verified member to the signaling hub, and then only moves
//! messages: client frames are size-limited, rate-limited and parsed into the typed protocol; the
//! room's messages are serialised back. The first frame must be `join` and must come quickly.

use std::num::NonZeroU32;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use governor::{Quota, RateLimiter};
use sightline_signaling::protocol::{self, ClientMessage, MAX_MESSAGE_BYTES, ServerMessage};
use sightline_signaling::{Member, RoomId};

use crate::auth::opaque;
use crate::error::ApiError;
use crate::state::AppState;

/// Time a new connection has to send its `join`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages per second a client may send, and the burst on top.
const MESSAGES_PER_SECOND: u32 = 50;
const MESSAGE_BURST: u32 = 100;
/// Refused messages after which an abusive client is disconnected.
const MAX_STRIKES: u32 = 50;
/// Longest room id accepted in the path.
const MAX_ROOM_ID: usize = 64;

/// The signaling route.
pub fn router() -> Router<AppState> {
    Router::new().route("/rtc/{room}", get(upgrade))
}

async fn upgrade(
    State(state): State<AppState>,
    Path(room): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    if room.is_empty() || room.len() > MAX_ROOM_ID {
        return ApiError::NotFound.into_response();
    }
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| session(socket, state, RoomId(room)))
}

async fn send(socket: &mut WebSocket, message: &ServerMessage) -> bool {
    match serde_json::to_string(message) {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => false,
    }
}

async fn refuse(socket: &mut WebSocket, code: &str, message: &str) {
    let error = ServerMessage::Error {
        code: code.to_owned(),
        message: message.to_owned(),
    };
    send(socket, &error).await;
}

/// Waits for the `join` and verifies it; `None` after telling the client why not.
async fn admit(
    socket: &mut WebSocket,
    state: &AppState,
    room: &RoomId,
) -> Option<sightline_signaling::Session> {
    let first = tokio::time::timeout(JOIN_TIMEOUT, socket.recv()).await;
    let Ok(Some(Ok(Message::Text(text)))) = first else {
        refuse(socket, "join_required", "the first message must be a join").await;
        return None;
    };
    let Ok(ClientMessage::Join {
        version,
        token,
        resume_token,
    }) = protocol::parse(&text)
    else {
        refuse(socket, "join_required", "the first message must be a join").await;
        return None;
    };
    let claims = match state.tokens.verify_join(&token, room) {
        Ok(claims) => claims,
        Err(ApiError::Forbidden(_)) => {
            refuse(socket, "wrong_room", "this join token is for another room").await;
            return None;
        }
        Err(_) => {
            refuse(
                socket,
                "unauthorized",
                "the join token is invalid or expired",
            )
            .await;
            return None;
        }
    };
    let Ok(new_resume_token) = opaque::generate() else {
        refuse(socket, "internal", "no randomness available").await;
        return None;
    };
    let member = Member {
        identity: claims.sub,
        name: claims.name,
        role: claims.role,
        grants: claims.grants,
        phone_of: claims.phone_of,
    };
    match state
        .hub
        .connect(room, member, version, resume_token, new_resume_token)
        .await
    {
        Ok(session) => Some(session),
        Err(err) => {
            refuse(socket, err.code(), &err.to_string()).await;
            None
        }
    }
}

async fn session(mut socket: WebSocket, state: AppState, room: RoomId) {
    let Some(mut session) = admit(&mut socket, &state, &room).await else {
        let _ = socket.send(Message::Close(None)).await;
        return;
    };
    let quota = Quota::per_second(NonZeroU32::new(MESSAGES_PER_SECOND).unwrap_or(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(MESSAGE_BURST).unwrap_or(NonZeroU32::MIN));
    let limiter = RateLimiter::direct(quota);
    let mut strikes = 0u32;
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let refused = if limiter.check().is_err() {
                        Some(("rate_limited", "too many messages; slow down".to_owned()))
                    } else {
                        match protocol::parse(&text) {
                            Ok(message) => (!session.to_room.send(message))
                                .then(|| ("busy", "the room is busy; try again".to_owned())),
                            Err(err) => Some((err.code(), err.to_string())),
                        }
                    };
                    if let Some((code, message)) = refused {
                        strikes += 1;
                        refuse(&mut socket, code, &message).await;
                        if strikes > MAX_STRIKES {
                            break;
                        }
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    strikes += 1;
                    if strikes > MAX_STRIKES || limiter.check().is_err() {
                        break;
                    }
                    refuse(&mut socket, "malformed_message", "binary frames are not part of the protocol").await;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            outgoing = session.from_room.recv() => match outgoing {
                Some(message) => {
                    let last = matches!(message, ServerMessage::Removed { .. });
                    if !send(&mut socket, &message).await || last {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    session.to_room.closed().await;
    let _ = socket.send(Message::Close(None)).await;
}
