//! The shared editor's socket. A member authenticates with their access token and is told what
//! they may do; then their y-protocols frames go to the interview's document
//! ([`crate::workspace`]) and its frames and notices come back, until they leave or their
//! access changes.
//!
//! In a cluster the document of an interview whose room is open lives on the room's host (see
//! [`crate::documents`]), so every change is numbered by one task and every removal from the
//! room is known where the document is. A socket that reaches another node (the edge) is
//! checked there and carried to the host over a relayed session ([`Service::Editor`]); the host
//! checks the token again and runs the member's session as for a socket that reached it
//! directly. An editor opened before anyone is in the call places the room, and holds its
//! placement while its session lives, so the call comes to the same node.
//!
//! [`pump`] is the socket's side (its rate, refusals of what is not a frame); [`serve`] is the
//! member's session on the document; between the two run channels, joined in one task when the
//! document is here and over NATS when it is not (frames cut into [`Piece`]s that fit a NATS
//! message).

use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use sightline_cluster::{Dials, Link, NodeId, RoomKey, Service};
use sightline_collab::Member;
use sightline_signaling::{CodeGrants, RoomId};
use tokio::sync::mpsc;

use crate::auth::{Principal, principal};
use crate::cluster::{Claim, PlacementHold};
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
/// Messages queued between a socket and its session (either way).
const SESSION_QUEUE: usize = 64;
/// Bytes of a message per relayed piece: base64 and the frame's envelope keep a piece well
/// under NATS's default 1 MB limit on a message.
const PIECE_BYTES: usize = 256 * 1024;
/// Largest message a relayed session puts back together: above anything the document sends
/// (its whole state, sent to a member who joins, stays under its 32 MiB history limit).
const MAX_RELAYED_BYTES: usize = 64 << 20;
/// How often the socket is pinged, and how long it may stay silent (no frame, no pong) before
/// it counts as gone: a browser that vanished without closing its connection would otherwise
/// keep its session, and its room's placement, until the interview closes.
const PING_EVERY: Duration = Duration::from_secs(30);
const SILENCE: Duration = Duration::from_secs(95);

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

/// What a member's socket is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ToMember {
    /// A y-protocols frame.
    Binary(Vec<u8>),
    /// JSON: the welcome, a notice, an error.
    Text(String),
}

/// Why a socket is not let in (an `error` message's code and text).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Refusal {
    code: String,
    message: String,
}

impl Refusal {
    fn new(code: &str, message: &str) -> Self {
        Self {
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }

    fn unavailable() -> Self {
        Self::new("unavailable", "the shared document is not available")
    }

    fn moving() -> Self {
        Self::new(
            "unavailable",
            "the interview's room is being moved; the editor reconnects in a moment",
        )
    }

    fn text(&self) -> String {
        error_text(&self.code, &self.message)
    }
}

fn error_text(code: &str, message: &str) -> String {
    serde_json::json!({ "type": "error", "error": { "code": code, "message": message } })
        .to_string()
}

async fn session(mut socket: WebSocket, state: AppState, id: String) {
    let opened = match authenticate(&mut socket, &state, &id).await {
        Ok((token, principal, code)) => open(state, id, token, principal, code).await,
        Err(refusal) => Err(refusal),
    };
    let (up_tx, up_rx) = mpsc::channel(SESSION_QUEUE);
    let (down_tx, down_rx) = mpsc::channel(SESSION_QUEUE);
    match opened {
        Ok(Opened::Here(member)) => {
            tokio::join!(pump(socket, up_tx, down_rx), member.serve(up_rx, down_tx));
        }
        Ok(Opened::Relayed(link)) => {
            tokio::join!(
                pump(socket, up_tx, down_rx),
                bridge(link, up_rx, ToMember::Binary, down_tx, Some),
            );
        }
        Err(refusal) => {
            let _ = socket.send(Message::Text(refusal.text().into())).await;
            let _ = socket.send(Message::Close(None)).await;
        }
    }
}

/// A member's session, opened where the document is held.
enum Opened {
    /// Here.
    Here(Box<Session>),
    /// On the room's host, reached over this link.
    Relayed(Link<Piece, Piece>),
}

/// Opens an authenticated member's session where interview `id`'s document is held.
async fn open(
    state: AppState,
    id: String,
    token: String,
    principal: Principal,
    code: CodeAccess,
) -> Result<Opened, Refusal> {
    match place(&state, &id, &code).await? {
        Place::Here(hold) => Ok(Opened::Here(Box::new(Session {
            state,
            id,
            principal,
            code,
            hold,
        }))),
        Place::Host(node) => dial(&state, &node, &id, token).await.map(Opened::Relayed),
    }
}

/// Reads the socket's first message, its access token, and what the caller may do with the
/// code; gives the token too (a relayed session hands it to the host, which checks it again).
async fn authenticate(
    socket: &mut WebSocket,
    state: &AppState,
    id: &str,
) -> Result<(String, Principal, CodeAccess), Refusal> {
    let first = tokio::time::timeout(AUTH_TIMEOUT, socket.recv()).await;
    let auth_required = || Refusal::new("auth_required", "the first message must be auth");
    let Ok(Some(Ok(Message::Text(text)))) = first else {
        return Err(auth_required());
    };
    let Ok(ClientText::Auth { token }) = serde_json::from_str::<ClientText>(&text) else {
        return Err(auth_required());
    };
    let (principal, code) = admit(state, id, &token).await?;
    Ok((token, principal, code))
}

/// Who `token` is and what they may do with interview `id`'s code.
async fn admit(
    state: &AppState,
    id: &str,
    token: &str,
) -> Result<(Principal, CodeAccess), Refusal> {
    let Ok(principal) = principal::from_token(state, token).await else {
        return Err(Refusal::new(
            "unauthenticated",
            "the access token is invalid or expired",
        ));
    };
    match code_access(state, &principal, id).await {
        Ok((_, code)) => Ok((principal, code)),
        Err(ApiError::NotFound) => Err(Refusal::new("not_found", "not found")),
        Err(err) => {
            tracing::warn!(%err, "opening the shared document");
            Err(Refusal::unavailable())
        }
    }
}

/// Where a member's session on the document runs.
enum Place {
    /// Here; in a cluster, with the room's placement held here meanwhile.
    Here(Option<PlacementHold>),
    /// On the room's host.
    Host(NodeId),
}

/// Finds where interview `id`'s document is held, placing its room if it is placed nowhere.
/// A room that is not open has code nobody may change: any node serves it from what was
/// stored.
async fn place(state: &AppState, id: &str, code: &CodeAccess) -> Result<Place, Refusal> {
    let Some(rooms) = &state.hosted_rooms else {
        return Ok(Place::Here(None));
    };
    if !code.room_open {
        return Ok(Place::Here(None));
    }
    let room = RoomId(id.to_owned());
    match rooms.claim(&room).await {
        Ok(Claim::Here) => rooms
            .hold(&room)
            .map(|hold| Place::Here(Some(hold)))
            .ok_or_else(Refusal::moving),
        Ok(Claim::Elsewhere { node }) => Ok(Place::Host(node)),
        Ok(Claim::Busy) => Err(Refusal::moving()),
        Err(err) => {
            tracing::warn!(interview = %id, %err, "placing a room for its editor");
            Err(Refusal::unavailable())
        }
    }
}

/// One member's session on the document held here.
struct Session {
    state: AppState,
    id: String,
    principal: Principal,
    code: CodeAccess,
    /// In a cluster, the room's placement, held here while the session lives.
    hold: Option<PlacementHold>,
}

impl Session {
    /// Welcomes the member and carries their frames to the document and its frames and notices
    /// back, checking their access when told to and every `execution.editor_recheck_secs`,
    /// until either side ends or the access changed (said to the member before the end).
    async fn serve(
        self: Box<Self>,
        mut from_member: mpsc::Receiver<Vec<u8>>,
        to: mpsc::Sender<ToMember>,
    ) {
        let Session {
            state,
            id,
            principal,
            code,
            mut hold,
        } = *self;
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
            let _ = to.send(ToMember::Text(Refusal::unavailable().text())).await;
            return;
        };
        // Joined before the welcome: a notice sent from now on (a question revealed) reaches
        // this member, so a client that refreshes on welcome misses nothing. The welcome still
        // comes first: what the document sends waits in the connection until the loop below.
        if !say(&to, &welcome).await {
            return;
        }
        // Besides when told to (`Workspaces::recheck`), an open session checks its member's
        // access this often: a room that closes at its time loses the editor within it. The
        // setting is validated at start; `interval` would panic on zero.
        let every = Duration::from_secs(state.settings.execution.editor_recheck_secs.max(1));
        let mut recheck = tokio::time::interval(every);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        recheck.reset();
        loop {
            let mut check_now = false;
            tokio::select! {
                incoming = from_member.recv() => match incoming {
                    Some(frame) => {
                        if !connection.send(frame).await {
                            break;
                        }
                    }
                    None => break,
                },
                outgoing = connection.from_doc.recv() => match outgoing {
                    Some(Outbound::Frame(frame)) => {
                        if to.send(ToMember::Binary(frame)).await.is_err() {
                            break;
                        }
                    }
                    Some(Outbound::Notice(notice)) => {
                        if !say(&to, notice.as_ref()).await {
                            break;
                        }
                    }
                    Some(Outbound::Recheck) => check_now = true,
                    None => break,
                },
                _ = recheck.tick() => check_now = true,
                // The room went to another node (or this one is leaving it): said at once.
                () = placement_lost(hold.as_mut()) => check_now = true,
            }
            if !check_now {
                continue;
            }
            // The room went to another node: the document's members meet there now.
            if hold.as_ref().is_some_and(|hold| !hold.here()) {
                let _ = to.send(ToMember::Text(Refusal::moving().text())).await;
                break;
            }
            if let Some(reason) =
                access_changed(&state, &principal, participant.as_deref(), &id, opened_with).await
            {
                let _ = to
                    .send(ToMember::Text(error_text("access_changed", reason)))
                    .await;
                break;
            }
        }
    }
}

/// Completes when a held placement is lost; never without one.
async fn placement_lost(hold: Option<&mut PlacementHold>) {
    match hold {
        Some(hold) => hold.lost().await,
        None => std::future::pending().await,
    }
}

async fn say(to: &mpsc::Sender<ToMember>, value: &impl Serialize) -> bool {
    match serde_json::to_string(value) {
        Ok(text) => to.send(ToMember::Text(text)).await.is_ok(),
        Err(_) => false,
    }
}

/// Why a member's access is no longer what their session was opened with, if it is not. A
/// database (or, in a cluster, a room's host) that does not answer is not a revocation: the
/// session carries on and asks again. A removal from the room is asked first.
async fn access_changed(
    state: &AppState,
    principal: &Principal,
    participant: Option<&str>,
    id: &str,
    was: (CodeGrants, bool),
) -> Option<&'static str> {
    if matches!(removed_from_room(state, id, participant).await, Ok(true)) {
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

/// The socket's side of a session: frames from the member go `up` (read no faster than the
/// rate allows), what comes `down` goes to the member; anything else the member sends is
/// refused, and too many refusals close the socket, as does a socket silent for [`SILENCE`].
/// Once the session stops taking frames, what it still says is sent before the socket closes.
///
/// The socket is read only while `up` has room, so the pump never waits on the session while
/// the session may be waiting on it (to send `down`): each side always drains the other's queue.
async fn pump(
    mut socket: WebSocket,
    up: mpsc::Sender<Vec<u8>>,
    mut down: mpsc::Receiver<ToMember>,
) {
    let quota = Quota::per_second(NonZeroU32::new(FRAMES_PER_SECOND).unwrap_or(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(FRAME_BURST).unwrap_or(NonZeroU32::MIN));
    let limiter = RateLimiter::direct(quota);
    let mut strikes = 0u32;
    // False once the session takes no more frames: the socket is then only written to.
    let mut reading = true;
    let mut heard = tokio::time::Instant::now();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.reset();
    loop {
        tokio::select! {
            incoming = socket.recv(), if reading && up.capacity() > 0 => {
                heard = tokio::time::Instant::now();
                match incoming {
                    Some(Ok(Message::Binary(frame))) => {
                        // Past the rate the socket is read more slowly, never dropped from: a
                        // dropped edit would leave every later edit of that client waiting on it.
                        limiter.until_ready().await;
                        // Room was checked above, and nothing else sends `up`.
                        reading = up.try_send(frame.to_vec()).is_ok();
                    }
                    Some(Ok(Message::Text(_))) => {
                        strikes += 1;
                        if strikes > MAX_STRIKES {
                            break;
                        }
                        let refusal = error_text(
                            "malformed_message",
                            "after auth, only binary y-protocols frames are accepted",
                        );
                        if socket.send(Message::Text(refusal.into())).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                }
            }
            // `up` is full: wait for room (the permit is given back at once).
            room = up.reserve(), if reading && up.capacity() == 0 => reading = room.is_ok(),
            outgoing = down.recv() => {
                let sent = match outgoing {
                    Some(ToMember::Binary(frame)) => socket.send(Message::Binary(frame.into())).await,
                    Some(ToMember::Text(text)) => socket.send(Message::Text(text.into())).await,
                    // The session ended, after what it had to say.
                    None => break,
                };
                if sent.is_err() {
                    break;
                }
            }
            _ = ping.tick(), if reading => {
                if heard.elapsed() > SILENCE
                    || socket.send(Message::Ping(Vec::new().into())).await.is_err()
                {
                    break;
                }
            }
        }
    }
    drop(up);
    let _ = socket.send(Message::Close(None)).await;
}

/// A member's editor socket carried to the node that hosts the room (no `Debug`: it holds the
/// member's token).
#[derive(Serialize, Deserialize)]
pub struct EditorDial {
    /// The interview.
    interview: String,
    /// The member's access token, checked again by the host.
    token: String,
}

/// The host's answer to an [`EditorDial`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum EditorAnswer {
    /// The session is open.
    Admitted,
    /// Not let in, for the reason a socket that reached the host would have been given.
    Refused(Refusal),
}

/// A message on a relayed session, or part of one (base64 of its bytes): a NATS message holds
/// 1 MB by default, and a frame may be as large before it is encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Piece {
    /// Part of a message that a later piece ends.
    More(String),
    /// The end of a binary frame (or all of it).
    Binary(String),
    /// The end of a text message (or all of it).
    Text(String),
}

/// Cuts `message` into pieces of at most [`PIECE_BYTES`] before encoding.
fn pieces(message: ToMember) -> Vec<Piece> {
    let (bytes, text) = match message {
        ToMember::Binary(bytes) => (bytes, false),
        ToMember::Text(text) => (text.into_bytes(), true),
    };
    let mut chunks: Vec<&[u8]> = bytes.chunks(PIECE_BYTES).collect();
    let last = chunks.pop().unwrap_or_default();
    let mut pieces: Vec<Piece> = chunks
        .into_iter()
        .map(|chunk| Piece::More(BASE64.encode(chunk)))
        .collect();
    let last = BASE64.encode(last);
    pieces.push(if text {
        Piece::Text(last)
    } else {
        Piece::Binary(last)
    });
    pieces
}

/// Puts relayed pieces back together.
#[derive(Debug, Default)]
struct Assembler {
    partial: Vec<u8>,
}

/// A relayed piece that cannot be read, or a message past [`MAX_RELAYED_BYTES`].
#[derive(Debug, PartialEq, Eq)]
struct Unreadable;

impl Assembler {
    /// Takes the next piece; gives the message it ends, if it ends one.
    fn take(&mut self, piece: Piece) -> Result<Option<ToMember>, Unreadable> {
        let (encoded, end) = match &piece {
            Piece::More(encoded) => (encoded, None),
            Piece::Binary(encoded) => (encoded, Some(false)),
            Piece::Text(encoded) => (encoded, Some(true)),
        };
        if self.partial.len() + encoded.len() / 4 * 3 > MAX_RELAYED_BYTES {
            return Err(Unreadable);
        }
        BASE64
            .decode_vec(encoded, &mut self.partial)
            .map_err(|_| Unreadable)?;
        let Some(text) = end else {
            return Ok(None);
        };
        let bytes = std::mem::take(&mut self.partial);
        if text {
            String::from_utf8(bytes)
                .map(|text| Some(ToMember::Text(text)))
                .map_err(|_| Unreadable)
        } else {
            Ok(Some(ToMember::Binary(bytes)))
        }
    }
}

/// Carries a session's messages over a relayed link: what `outgoing` gives goes to the other
/// node (as `wrap` makes it a message), what the other node sends goes to `incoming` (what
/// `unwrap` takes; anything else ends the session). Ends when `outgoing` does, or the link;
/// once `incoming` takes no more, what `outgoing` still gives is sent before the end. As in
/// [`pump`], the link is read only while `incoming` has room, and `outgoing` is always drained.
async fn bridge<O, I>(
    link: Link<Piece, Piece>,
    mut outgoing: mpsc::Receiver<O>,
    wrap: fn(O) -> ToMember,
    incoming: mpsc::Sender<I>,
    unwrap: fn(ToMember) -> Option<I>,
) {
    let Link { tx, mut rx } = link;
    let mut assembler = Assembler::default();
    // False once `incoming` takes no more.
    let mut reading = true;
    loop {
        tokio::select! {
            message = outgoing.recv() => {
                let Some(message) = message else { break };
                for piece in pieces(wrap(message)) {
                    if tx.send(piece).await.is_err() {
                        return;
                    }
                }
            }
            piece = rx.recv(), if reading && incoming.capacity() > 0 => {
                // The link ended: nothing more goes either way.
                let Some(piece) = piece else { break };
                match assembler.take(piece) {
                    Ok(None) => {}
                    Ok(Some(message)) => {
                        let Some(message) = unwrap(message) else {
                            tracing::warn!("a relayed editor session sent what its side never takes; ending it");
                            break;
                        };
                        // Room was checked above, and nothing else sends `incoming`. Closed, it
                        // takes no more, and what `outgoing` still gives goes out before the end.
                        reading = incoming.try_send(message).is_ok();
                    }
                    Err(Unreadable) => {
                        tracing::warn!("an unreadable piece on a relayed editor session; ending it");
                        break;
                    }
                }
            }
            room = incoming.reserve(), if reading && incoming.capacity() == 0 => {
                reading = room.is_ok();
            }
        }
    }
}

/// Opens a relayed session to the member's session on `node`, which hosts interview `id`'s
/// room.
async fn dial(
    state: &AppState,
    node: &NodeId,
    id: &str,
    token: String,
) -> Result<Link<Piece, Piece>, Refusal> {
    let Some(cluster) = &state.cluster else {
        return Err(Refusal::unavailable());
    };
    let request = EditorDial {
        interview: id.to_owned(),
        token,
    };
    match cluster
        .dial::<_, EditorAnswer>(node, Service::Editor, request)
        .await
    {
        Ok(dialed) => match &dialed.answer {
            EditorAnswer::Admitted => Ok(dialed.open()),
            EditorAnswer::Refused(refusal) => Err(refusal.clone()),
        },
        Err(err) => {
            tracing::warn!(interview = %id, %node, %err, "relaying an editor to the room's host");
            Err(Refusal::unavailable())
        }
    }
}

/// Takes the editor sockets other nodes carry here, each in a task of its own, until the
/// subscription ends.
pub async fn host(state: AppState, mut dials: Dials<EditorDial>) {
    while let Some(dial) = dials.next().await {
        let state = state.clone();
        tokio::spawn(async move {
            let EditorDial { interview, token } = &dial.request;
            let admitted = admit_relayed(&state, interview, token).await;
            match admitted {
                Ok(member) => match dial.accept(&EditorAnswer::Admitted).await {
                    Ok(link) => {
                        let (up_tx, up_rx) = mpsc::channel(SESSION_QUEUE);
                        let (down_tx, down_rx) = mpsc::channel(SESSION_QUEUE);
                        tokio::join!(
                            bridge(
                                link,
                                down_rx,
                                |m| m,
                                up_tx,
                                |m| match m {
                                    ToMember::Binary(frame) => Some(frame),
                                    ToMember::Text(_) => None,
                                }
                            ),
                            member.serve(up_rx, down_tx),
                        );
                    }
                    Err(err) => tracing::warn!(%err, "opening a relayed editor session"),
                },
                Err(refusal) => dial.refuse(&EditorAnswer::Refused(refusal)).await,
            }
        });
    }
}

/// Lets a member whose socket reached another node into the document here, checked as if the
/// socket had reached this node; the room must be hosted here (a room that moved meanwhile
/// refuses, and the member's editor reconnects).
async fn admit_relayed(state: &AppState, id: &str, token: &str) -> Result<Box<Session>, Refusal> {
    if id.is_empty() || id.len() > 64 || RoomKey::new(id).is_err() {
        return Err(Refusal::new("not_found", "not found"));
    }
    let (principal, code) = admit(state, id, token).await?;
    let hold = match (&state.hosted_rooms, code.room_open) {
        (Some(rooms), true) => {
            let room = RoomId(id.to_owned());
            match rooms.claim_as_host(&room).await {
                Ok(Claim::Here) => Some(rooms.hold(&room).ok_or_else(Refusal::moving)?),
                Ok(Claim::Elsewhere { .. } | Claim::Busy) => return Err(Refusal::moving()),
                Err(err) => {
                    tracing::warn!(interview = %id, %err, "checking a relayed editor's room");
                    return Err(Refusal::unavailable());
                }
            }
        }
        _ => None,
    };
    Ok(Box::new(Session {
        state: state.clone(),
        id: id.to_owned(),
        principal,
        code,
        hold,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reassemble(pieces: Vec<Piece>) -> Vec<ToMember> {
        let mut assembler = Assembler::default();
        pieces
            .into_iter()
            .filter_map(|piece| assembler.take(piece).expect("readable"))
            .collect()
    }

    #[test]
    fn messages_of_any_size_cross_in_pieces_that_fit_a_nats_message() {
        let big: Vec<u8> = (0..MAX_FRAME_BYTES).map(|i| (i % 251) as u8).collect();
        let cases = [
            ToMember::Binary(Vec::new()),
            ToMember::Binary(vec![0, 1, 2]),
            ToMember::Binary(vec![7; PIECE_BYTES]),
            ToMember::Binary(vec![7; PIECE_BYTES + 1]),
            ToMember::Binary(big),
            ToMember::Text(String::new()),
            ToMember::Text("é".repeat(PIECE_BYTES)),
            ToMember::Text(format!("a{}", "é".repeat(PIECE_BYTES))),
        ];
        for message in cases {
            let pieces = pieces(message.clone());
            for piece in &pieces {
                let encoded = serde_json::to_vec(piece).expect("json");
                assert!(encoded.len() < 1_000_000, "{}", encoded.len());
            }
            assert_eq!(reassemble(pieces), [message]);
        }
        // That last text is cut inside a character, and still comes back whole (above).
        let cut = pieces(ToMember::Text(format!("a{}", "é".repeat(PIECE_BYTES))));
        assert_eq!(cut.len(), 3);
    }

    #[test]
    fn an_unreadable_or_endless_message_is_refused() {
        let mut assembler = Assembler::default();
        assert_eq!(
            assembler.take(Piece::Binary("not base64!".to_owned())),
            Err(Unreadable)
        );
        let mut assembler = Assembler::default();
        let invalid_utf8 = BASE64.encode([0xff, 0xfe]);
        assert_eq!(assembler.take(Piece::Text(invalid_utf8)), Err(Unreadable));
        let mut assembler = Assembler::default();
        let chunk = BASE64.encode(vec![0u8; PIECE_BYTES]);
        let mut refused = false;
        for _ in 0..(MAX_RELAYED_BYTES / PIECE_BYTES + 2) {
            if assembler.take(Piece::More(chunk.clone())).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused, "a message past the limit is refused");
    }
}
