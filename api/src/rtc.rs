//! `/rtc/{room}`: the signaling WebSocket.
//!
//! The edge between the network and the rooms: it checks the join token for this room (signature,
//! expiry, audience, room), hands a verified member to the signaling hub, and then only moves
//! messages: client frames are size-limited, rate-limited and parsed into the typed protocol; the
//! room's messages are serialised back. The first frame must be `join` and must come quickly.
//!
//! A join token opens one connection: the room's host records its id in the database
//! (`spent_join_tokens`) before admitting it, so the rule holds across restarts and on whichever
//! node hosts the room. [`Admissions`] throttles joins per identity and per room, since every
//! join rebuilds peer connections on the room's shared media thread. A token issued before the
//! participant's session ended (their invite was reissued) is refused.

use std::num::NonZeroU32;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sightline_signaling::protocol::{self, ClientMessage, ServerMessage};
use sightline_signaling::{Member, RoomId};

use crate::auth::opaque;
use crate::auth::tokens::JoinClaims;
use crate::cluster::Claim;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{interviews, join_tokens};
use crate::turn;

/// Time a new connection has to send its `join`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages per second a client may send, and the burst on top.
const MESSAGES_PER_SECOND: u32 = 50;
const MESSAGE_BURST: u32 = 100;
/// Refused messages after which an abusive client is disconnected.
const MAX_STRIKES: u32 = 50;
/// Longest room id accepted in the path.
const MAX_ROOM_ID: usize = 64;
/// Largest WebSocket message read at all. Messages between `protocol::MAX_MESSAGE_BYTES` and
/// this get the protocol's `message_too_large` error; past it the socket is closed.
const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// Joins one identity may make: a burst, then one every `IDENTITY_JOIN_PERIOD`.
const IDENTITY_JOIN_BURST: u32 = 10;
const IDENTITY_JOIN_PERIOD: Duration = Duration::from_secs(2);
/// Joins one room takes: a burst, then one every `ROOM_JOIN_PERIOD`.
const ROOM_JOIN_BURST: u32 = 40;
const ROOM_JOIN_PERIOD: Duration = Duration::from_millis(250);
/// Rate keys remembered before idle ones are swept.
const SWEEP_ABOVE: usize = 4096;
/// Time between sweeps of expired spent-token ids.
const SPENT_SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// How fast identities and rooms are joining on this server.
pub struct Admissions {
    per_identity: DefaultKeyedRateLimiter<String>,
    per_room: DefaultKeyedRateLimiter<String>,
}

/// Why a verified join token is not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The token opened a connection before.
    Used,
    /// Too many joins by this identity or into this room.
    TooFast,
    /// The database could not say whether the token was used.
    Unavailable,
}

impl Default for Admissions {
    fn default() -> Admissions {
        let quota = |burst: u32, period: Duration| {
            Quota::with_period(period)
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
        };
        Admissions {
            per_identity: RateLimiter::keyed(quota(IDENTITY_JOIN_BURST, IDENTITY_JOIN_PERIOD)),
            per_room: RateLimiter::keyed(quota(ROOM_JOIN_BURST, ROOM_JOIN_PERIOD)),
        }
    }
}

impl Admissions {
    /// Lets a verified token in once (spending it in `pool`), within the join rates.
    pub async fn admit(&self, pool: &sqlx::AnyPool, claims: &JoinClaims) -> Result<(), Refusal> {
        let room = claims.room.0.clone();
        if self
            .per_identity
            .check_key(&format!("{room}/{}", claims.sub))
            .is_err()
            || self.per_room.check_key(&room).is_err()
        {
            return Err(Refusal::TooFast);
        }
        if self.per_identity.len() > SWEEP_ABOVE || self.per_room.len() > SWEEP_ABOVE {
            self.per_identity.retain_recent();
            self.per_room.retain_recent();
        }
        match join_tokens::spend(pool, &claims.jti, claims.exp).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refusal::Used),
            Err(err) => {
                tracing::warn!(%err, "could not record a spent join token");
                Err(Refusal::Unavailable)
            }
        }
    }
}

/// Forgets expired spent-token ids, and password reset links a day after they expired, once an
/// hour, for as long as the server runs.
pub async fn sweep_expired_tokens(pool: sqlx::AnyPool) {
    let mut tick = tokio::time::interval(SPENT_SWEEP_EVERY);
    loop {
        tick.tick().await;
        let now = crate::store::now();
        if let Err(err) = join_tokens::forget_expired(&pool, now).await {
            tracing::warn!(%err, "could not forget expired join tokens");
        }
        if let Err(err) = crate::store::password_resets::expire(&pool, now - 86_400).await {
            tracing::warn!(%err, "could not forget expired password reset links");
        }
    }
}

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
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
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
        offer_refused: false,
    };
    send(socket, &error).await;
}

/// What a client's `join` carries (also what an edge relays to the room's host).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Join {
    /// The protocol version the client speaks.
    pub version: u32,
    /// The join token.
    pub token: String,
    /// Set when the client resumes a dropped connection.
    pub resume_token: Option<String>,
}

/// Why a join is not let in: the code and text of the `error` the client gets.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The stable code.
    pub code: String,
    /// For people.
    pub message: String,
}

impl Refused {
    fn new(code: &str, message: &str) -> Self {
        Self {
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }

    /// The room cannot be reached now; the client tries again.
    pub fn unavailable() -> Self {
        Self::new(
            "unavailable",
            "the room cannot be reached right now; try again in a moment",
        )
    }
}

/// Waits for the `join` and lets it in; `None` after telling the client why not.
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
    let join = Join {
        version,
        token,
        resume_token,
    };
    match enter(state, room, join).await {
        Ok(session) => Some(session),
        Err(refused) => {
            refuse(socket, &refused.code, &refused.message).await;
            None
        }
    }
}

/// Lets a join that reached this node in: into the room here, or, in a cluster, relayed to the
/// node that hosts the room. The token is checked before the room is placed, so a bad one
/// places nothing.
pub async fn enter(
    state: &AppState,
    room: &RoomId,
    join: Join,
) -> Result<sightline_signaling::Session, Refused> {
    enter_as(state, room, join, false).await
}

/// Lets a join relayed by another node into the room here, which must be hosted here.
pub async fn enter_here(
    state: &AppState,
    room: &RoomId,
    join: Join,
) -> Result<sightline_signaling::Session, Refused> {
    enter_as(state, room, join, true).await
}

/// [`enter`] by the node the client reached (`as_host` false), or [`enter_here`] by the host a
/// join was relayed to, which never relays it further.
async fn enter_as(
    state: &AppState,
    room: &RoomId,
    join: Join,
    as_host: bool,
) -> Result<sightline_signaling::Session, Refused> {
    let claims = verify(state, room, &join.token).await?;
    if let Some(rooms) = &state.hosted_rooms {
        let claimed = if as_host {
            rooms.claim_as_host(room).await
        } else {
            rooms.claim(room).await
        };
        match claimed {
            Ok(Claim::Here) => {}
            Ok(Claim::Elsewhere { node }) if !as_host => {
                return crate::relay::connect(state, &node, room, join).await;
            }
            // Being moved; or, for a relayed join, moved between the edge's look and ours: the
            // client asks again.
            Ok(Claim::Elsewhere { .. } | Claim::Busy) => return Err(moving()),
            Err(err) => {
                tracing::warn!(%room, %err, as_host, "placing or checking a room");
                return Err(Refused::unavailable());
            }
        }
    }
    admit_here(state, room, claims, join).await
}

fn moving() -> Refused {
    Refused::new(
        "unavailable",
        "the room is being moved; try again in a moment",
    )
}

/// Checks the join token for `room` and the session generation it was issued under.
async fn verify(state: &AppState, room: &RoomId, token: &str) -> Result<JoinClaims, Refused> {
    let claims = match state.tokens.verify_join(token, room) {
        Ok(claims) => claims,
        Err(ApiError::Forbidden(_)) => {
            return Err(Refused::new(
                "wrong_room",
                "this join token is for another room",
            ));
        }
        Err(_) => {
            return Err(Refused::new(
                "unauthorized",
                "the join token is invalid or expired",
            ));
        }
    };
    if !session_current(state, &claims).await {
        return Err(Refused::new(
            "session_ended",
            "this session has ended; open the newest invite link",
        ));
    }
    Ok(claims)
}

/// Admits a verified join into the room's task on this node: once per token, within the join
/// rates.
async fn admit_here(
    state: &AppState,
    room: &RoomId,
    claims: JoinClaims,
    join: Join,
) -> Result<sightline_signaling::Session, Refused> {
    match state.admissions.admit(state.db.pool(), &claims).await {
        Ok(()) => {}
        Err(Refusal::Used) => {
            return Err(Refused::new(
                "token_used",
                "this join token was used already; ask for a new one",
            ));
        }
        Err(Refusal::TooFast) => {
            return Err(Refused::new(
                "rate_limited",
                "joining too often; wait a moment",
            ));
        }
        Err(Refusal::Unavailable) => {
            return Err(Refused::new(
                "unavailable",
                "the server cannot admit anyone right now; try again shortly",
            ));
        }
    }
    let Ok(new_resume_token) = opaque::generate() else {
        return Err(Refused::new("internal", "no randomness available"));
    };
    let member = Member {
        identity: claims.sub,
        name: claims.name,
        role: claims.role,
        grants: claims.grants,
        phone_of: claims.phone_of,
    };
    state
        .hub
        .connect(
            room,
            member,
            join.version,
            join.resume_token,
            new_resume_token,
        )
        .await
        .map_err(|err| Refused::new(err.code(), &err.to_string()))
}

/// Whether the participant the token names (the candidate, for a phone) is still on the session
/// generation the token was issued under.
async fn session_current(state: &AppState, claims: &JoinClaims) -> bool {
    let participant = claims.phone_of.as_deref().unwrap_or(&claims.sub);
    match interviews::participant(state.db.pool(), participant).await {
        Ok(Some(row)) => row.session_epoch == claims.epoch,
        Ok(None) => false,
        Err(err) => {
            tracing::warn!(%err, "checking a join token's session");
            false
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
    let mut turn_refresh = turn::refresh_period(&state.settings.turn).map(|period| {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
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
                Some(mut message) => {
                    // New peer connections get TURN credentials of their own, issued now.
                    if let Some(servers) = message.ice_servers_mut() {
                        *servers = turn::ice_servers(
                            &state.settings.turn,
                            &session.identity,
                            crate::store::now(),
                        );
                    }
                    let last = matches!(message, ServerMessage::Removed { .. });
                    if !send(&mut socket, &message).await || last {
                        break;
                    }
                }
                None => break,
            },
            () = tick(turn_refresh.as_mut()) => {
                let message = ServerMessage::IceServers {
                    ice_servers: turn::ice_servers(
                        &state.settings.turn,
                        &session.identity,
                        crate::store::now(),
                    ),
                };
                if !send(&mut socket, &message).await {
                    break;
                }
            }
        }
    }
    session.to_room.closed().await;
    let _ = socket.send(Message::Close(None)).await;
}

/// The next tick of `interval`; never without one.
async fn tick(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
