//! The async shell around [`Room`]s: one task per room, connected to the SFU's workers.
//!
//! [`Hub::connect`] admits a verified member into its room's task and hands back a [`Session`]:
//! a sender for the client's parsed messages and a receiver for the server's messages. The
//! transport (the API's WebSocket, or channels in tests) only moves those. Each room task owns its
//! `Room`, carries out its effects against the room's SFU worker, and routes the worker's events
//! for its peers back into the room. A room is pinned to one worker, chosen by its id, so all of a
//! room's media stays on one thread.
//!
//! Queues are bounded. A client that does not read its messages fast enough is disconnected rather
//! than allowed to grow a queue; a room whose task is gone answers "unavailable" and its failure
//! touches no other room.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sightline_sfu::sdp;
use sightline_sfu::{
    CloseReason, Event as SfuEvent, PeerId, Quality, SfuError, TapReceiver, TrackId, WorkerEvent,
    WorkerHandle, WorkerStats,
};
use tokio::sync::{mpsc, oneshot};

use crate::grants::RoomId;
use crate::protocol::{
    ClientMessage, LeaveReason, ProctoringEvent, ProctoringHint, ProctoringNotice, RecordingNotice,
    RequestedQuality, ServerMessage,
};
use crate::room::{Effect, Member, PresenceChange, RESUME_WINDOW, Room, RoomError, RoomOverview};

/// Messages one room task may hold before senders are told it is busy.
const ROOM_QUEUE: usize = 1024;
/// Messages to one client that may wait before it counts as too slow and is disconnected.
const CLIENT_QUEUE: usize = 256;
/// How often rooms check resume windows.
const TICK: Duration = Duration::from_secs(1);
/// Tries to hand a join to a room task that may be ending at that moment.
const JOIN_ATTEMPTS: usize = 3;

/// Why a connection could not be admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The room refused the member.
    #[error(transparent)]
    Room(#[from] RoomError),
    /// The room's task is overloaded or gone.
    #[error("the room is unavailable")]
    Unavailable,
}

impl ConnectError {
    /// The stable code sent in an `error` message.
    pub fn code(&self) -> &'static str {
        match self {
            ConnectError::Room(err) => err.code(),
            ConnectError::Unavailable => "unavailable",
        }
    }
}

/// Why a media tap could not be attached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TapError {
    /// No such track is published in that room.
    #[error("no such track")]
    UnknownTrack,
    /// The room's media worker is overloaded or gone.
    #[error("the media worker is unavailable")]
    Unavailable,
}

/// One admitted connection: what the transport needs to carry messages. The room may run in this
/// process ([`Hub::connect`]) or on another node that a relay reaches ([`Session::relayed`]); the
/// transport cannot tell them apart.
#[derive(Debug)]
pub struct Session {
    /// The member's identity.
    pub identity: String,
    /// Parsed client messages go here (after the join).
    pub to_room: SessionSender,
    /// Server messages come from here; it ends when the room closes the connection.
    pub from_room: mpsc::Receiver<ServerMessage>,
}

impl Session {
    /// A session with a room on another node: client messages go into `to_relay` (which the
    /// relay carries to the room's host, and which [`SessionSender::closed`] closes), server
    /// messages come from `from_relay`.
    pub fn relayed(
        identity: String,
        to_relay: mpsc::Sender<ClientMessage>,
        from_relay: mpsc::Receiver<ServerMessage>,
    ) -> Session {
        Session {
            identity,
            to_room: SessionSender {
                route: Route::Relay(Arc::new(Mutex::new(Some(to_relay)))),
            },
            from_room: from_relay,
        }
    }
}

/// Sends one connection's messages to its room.
#[derive(Debug, Clone)]
pub struct SessionSender {
    route: Route,
}

#[derive(Debug, Clone)]
enum Route {
    /// The room's task in this process.
    Local {
        identity: String,
        connection: u64,
        room: RoomHandle,
    },
    /// A relay to the node hosting the room; `None` once closed.
    Relay(Arc<Mutex<Option<mpsc::Sender<ClientMessage>>>>),
}

impl SessionSender {
    /// Hands a client message to the room; false if the room (or its relay) is overloaded or
    /// gone.
    pub fn send(&self, message: ClientMessage) -> bool {
        match &self.route {
            Route::Local {
                identity,
                connection,
                room,
            } => room
                .inbox
                .try_send(RoomInput::Client {
                    identity: identity.clone(),
                    connection: *connection,
                    message,
                })
                .is_ok(),
            Route::Relay(relay) => relay
                .lock()
                .ok()
                .and_then(|relay| relay.as_ref().map(|tx| tx.try_send(message).is_ok()))
                .unwrap_or(false),
        }
    }

    /// Tells the room the connection ended (the participant may resume). It queues behind the
    /// connection's last requests (a `leave` sent just before closing still counts), and waits
    /// for room in a full queue rather than being lost: a lost notice would leave a participant
    /// shown as present forever. Over a relay, closing its queue ends the relayed session once
    /// the messages before it are carried.
    pub async fn closed(&self) {
        match &self.route {
            Route::Local {
                identity,
                connection,
                room,
            } => {
                let _ = room
                    .inbox
                    .send(RoomInput::Gone {
                        identity: identity.clone(),
                        connection: *connection,
                    })
                    .await;
            }
            Route::Relay(relay) => {
                if let Ok(mut relay) = relay.lock() {
                    relay.take();
                }
            }
        }
    }
}

/// The two ways into a room's task. Client requests go through a bounded queue (a flood is
/// refused, not queued; a connection's end waits its turn there, after its requests); media
/// events, which must not be lost, go through an unbounded one fed by the SFU's event router,
/// at most a few per peer connection and track change.
#[derive(Debug, Clone)]
struct RoomHandle {
    inbox: mpsc::Sender<RoomInput>,
    control: mpsc::UnboundedSender<RoomInput>,
}

#[derive(Debug)]
enum RoomInput {
    Join {
        member: Member,
        version: u32,
        resume_token: Option<String>,
        new_resume_token: String,
        connection: u64,
        outbox: mpsc::Sender<ServerMessage>,
        reply: oneshot::Sender<Result<(), RoomError>>,
    },
    Client {
        identity: String,
        connection: u64,
        message: ClientMessage,
    },
    Gone {
        identity: String,
        connection: u64,
    },
    Sfu(SfuEvent),
    Remove {
        identity: String,
        reason: LeaveReason,
    },
    /// The room must stop on this server (it is hosted elsewhere now).
    End,
    /// An administrator closes the room (see [`Room::close`]).
    Close,
    /// Who is in the room now.
    Overview {
        reply: oneshot::Sender<RoomOverview>,
    },
    Recording(RecordingNotice),
    Proctoring(ProctoringNotice),
    ProctoringEvent(ProctoringEvent),
    ProctoringHint {
        identity: String,
        hint: ProctoringHint,
    },
    Tap {
        track: String,
        quality: Quality,
        capacity: usize,
        reply: oneshot::Sender<Result<TapReceiver, TapError>>,
    },
}

struct HubInner {
    workers: Vec<WorkerHandle>,
    rooms: Mutex<HashMap<RoomId, RoomHandle>>,
    /// Each room's removed identities, kept here so they outlive the room's task.
    barred: Mutex<HashMap<RoomId, BTreeSet<String>>>,
    /// The sessions of a room an administrator closed: (room, identity) → (resume token, when),
    /// so a resume within the resume window (a connection that was down at the close) is told
    /// `room_closed` instead of being refused (and the page joining afresh).
    closed_out: Mutex<HashMap<(RoomId, String), (String, Instant)>>,
    /// Where each peer connection's media events go: its room's control queue.
    peers: Mutex<HashMap<PeerId, mpsc::UnboundedSender<RoomInput>>>,
    next_id: AtomicU64,
    /// Where arrivals and departures go, once someone watches ([`Hub::watch_presence`]).
    presence: OnceLock<mpsc::Sender<RoomActivity>>,
    /// Arrivals and departures the watcher had no room for.
    presence_dropped: AtomicU64,
    /// Where rooms whose removals changed go, once someone watches ([`Hub::watch_barred`]).
    barred_changes: OnceLock<mpsc::Sender<RoomId>>,
}

/// A visible participant came into room `room` or left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomActivity {
    /// The room.
    pub room: RoomId,
    /// What happened.
    pub change: PresenceChange,
}

/// What [`Hub::load`] counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubLoad {
    /// Rooms that are up.
    pub rooms: usize,
    /// Their peer connections (two per participant with media).
    pub peer_connections: usize,
}

/// Every room of this server and the workers they run on.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("workers", &self.inner.workers.len())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub over running workers, routing the events they emit on `events`. Must be called
    /// inside a tokio runtime (it spawns the routing task).
    pub fn new(workers: Vec<WorkerHandle>, events: mpsc::Receiver<WorkerEvent>) -> Hub {
        let hub = Hub {
            inner: Arc::new(HubInner {
                workers,
                rooms: Mutex::new(HashMap::new()),
                barred: Mutex::new(HashMap::new()),
                closed_out: Mutex::new(HashMap::new()),
                peers: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                presence: OnceLock::new(),
                presence_dropped: AtomicU64::new(0),
                barred_changes: OnceLock::new(),
            }),
        };
        tokio::spawn(route_events(Arc::downgrade(&hub.inner), events));
        hub
    }

    /// Arrivals and departures in every room of this server, through a queue of `capacity`
    /// (what finds it full is dropped and counted: rooms never wait for a watcher). One watcher:
    /// `None` when there is one already.
    pub fn watch_presence(&self, capacity: usize) -> Option<mpsc::Receiver<RoomActivity>> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.inner.presence.set(tx).ok().map(|()| rx)
    }

    /// Each room whose set of removed identities changed (a moderator removed or readmitted
    /// someone, hidden members such as reviewers included), once the set [`Hub::is_barred`]
    /// reads has changed, through a queue of `capacity` (what finds it full is dropped: the
    /// watcher then finds out by asking `is_barred` on its own). One watcher: `None` when there
    /// is one already.
    pub fn watch_barred(&self, capacity: usize) -> Option<mpsc::Receiver<RoomId>> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.inner.barred_changes.set(tx).ok().map(|()| rx)
    }

    /// Arrivals and departures dropped because the watcher's queue was full.
    pub fn presence_dropped(&self) -> u64 {
        self.inner.presence_dropped.load(Ordering::Relaxed)
    }

    fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether a moderator removed `identity` from room `id` and nobody let them back in.
    pub fn is_barred(&self, id: &RoomId, identity: &str) -> bool {
        // A poisoned lock still holds the set: read it rather than let everyone back in.
        let barred = self
            .inner
            .barred
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        barred.get(id).is_some_and(|set| set.contains(identity))
    }

    /// Whether room `id` is up (someone entered it and it has not ended).
    pub fn has_room(&self, id: &RoomId) -> bool {
        self.inner
            .rooms
            .lock()
            .map(|rooms| rooms.get(id).is_some_and(|r| !r.inbox.is_closed()))
            .unwrap_or(false)
    }

    fn room(&self, id: &RoomId) -> Option<RoomHandle> {
        let mut rooms = self.inner.rooms.lock().ok()?;
        if let Some(room) = rooms.get(id).filter(|r| !r.inbox.is_closed()) {
            return Some(room.clone());
        }
        let worker = self.worker_for(id)?.clone();
        let (inbox, inbox_rx) = mpsc::channel(ROOM_QUEUE);
        let (control, control_rx) = mpsc::unbounded_channel();
        let handle = RoomHandle { inbox, control };
        rooms.insert(id.clone(), handle.clone());
        let barred = self
            .inner
            .barred
            .lock()
            .ok()
            .and_then(|b| b.get(id).cloned())
            .unwrap_or_default();
        let actor = RoomActor {
            room: Room::with_barred(id.clone(), barred),
            worker,
            hub: Arc::downgrade(&self.inner),
            handle: handle.clone(),
            connections: HashMap::new(),
            peers: HashMap::new(),
            identity_of: HashMap::new(),
            reset_pending: HashSet::new(),
            pending_offers: HashMap::new(),
            too_slow: Vec::new(),
        };
        tokio::spawn(actor.run(inbox_rx, control_rx));
        Some(handle)
    }

    /// How much this server hosts now: rooms that are up, and their media connections.
    pub fn load(&self) -> HubLoad {
        let rooms = self
            .inner
            .rooms
            .lock()
            .map(|rooms| rooms.values().filter(|r| !r.inbox.is_closed()).count())
            .unwrap_or(0);
        let peer_connections = self.inner.peers.lock().map(|p| p.len()).unwrap_or(0);
        HubLoad {
            rooms,
            peer_connections,
        }
    }

    /// Every media worker's counters, for metrics.
    pub fn worker_stats(&self) -> Vec<Arc<WorkerStats>> {
        self.inner
            .workers
            .iter()
            .map(|w| Arc::clone(w.stats()))
            .collect()
    }

    fn worker_for(&self, id: &RoomId) -> Option<&WorkerHandle> {
        let mut hasher = DefaultHasher::new();
        id.hash(&mut hasher);
        let count = self.inner.workers.len();
        (count > 0).then(|| &self.inner.workers[(hasher.finish() % count as u64) as usize])
    }

    /// Attaches a media tap (recorder, proctoring sampler) to published track `track` of room
    /// `id`, receiving the best live layer within `quality` through a queue of `capacity`
    /// packets. The tap ends when the track does.
    pub async fn tap(
        &self,
        id: &RoomId,
        track: &str,
        quality: Quality,
        capacity: usize,
    ) -> Result<TapReceiver, TapError> {
        let room = self
            .inner
            .rooms
            .lock()
            .ok()
            .and_then(|rooms| rooms.get(id).cloned())
            .ok_or(TapError::UnknownTrack)?;
        let (reply, answer) = oneshot::channel();
        room.inbox
            .try_send(RoomInput::Tap {
                track: track.to_owned(),
                quality,
                capacity,
                reply,
            })
            .map_err(|_| TapError::Unavailable)?;
        answer.await.map_err(|_| TapError::Unavailable)?
    }

    /// Removes a participant from room `id` on the server's own account (a phone unpaired or
    /// replaced): it is told why and disconnected, and the others see it leave. Nothing happens
    /// if the room or the participant is not there.
    pub fn remove_participant(&self, id: &RoomId, identity: &str, reason: LeaveReason) {
        let room = self
            .inner
            .rooms
            .lock()
            .ok()
            .and_then(|rooms| rooms.get(id).cloned());
        if let Some(room) = room {
            let _ = room.control.send(RoomInput::Remove {
                identity: identity.to_owned(),
                reason,
            });
        }
    }

    /// Ends room `id` on this server, because it is hosted on another node now: everyone leaves
    /// it here (their media connections are closed) and their sockets close without a
    /// `removed`, so clients reconnect as after a network drop and find the room where it is.
    pub fn end_room(&self, id: &RoomId) {
        self.send_control(id, RoomInput::End);
    }

    /// Tells room `id`'s participants its recording status (nothing happens if the room has no
    /// task: a room that comes up again starts from "off" and is told anew).
    pub fn set_recording(&self, id: &RoomId, notice: RecordingNotice) {
        self.send_control(id, RoomInput::Recording(notice));
    }

    /// Tells room `id`'s participants whether it is proctored and who still has to agree
    /// (nothing happens if the room has no task).
    pub fn set_proctoring(&self, id: &RoomId, notice: ProctoringNotice) {
        self.send_control(id, RoomInput::Proctoring(notice));
    }

    /// Shows a proctoring event (opened, or updated) to room `id`'s interviewers and reviewers.
    pub fn proctoring_event(&self, id: &RoomId, event: ProctoringEvent) {
        self.send_control(id, RoomInput::ProctoringEvent(event));
    }

    /// Prompts participant `identity` of room `id` about their own setup.
    pub fn proctoring_hint(&self, id: &RoomId, identity: &str, hint: ProctoringHint) {
        self.send_control(
            id,
            RoomInput::ProctoringHint {
                identity: identity.to_owned(),
                hint,
            },
        );
    }

    /// Closes room `id` for everyone in it (each is told and leaves; the server's agents follow
    /// the room emptying); false if it is not up here.
    pub fn close_room(&self, id: &RoomId) -> bool {
        let up = self.has_room(id);
        self.send_control(id, RoomInput::Close);
        up
    }

    /// Every room up here and who is in it, as their tasks answer within `wait` (all asked at
    /// once); the rooms that did not answer in time are listed apart.
    pub async fn overview(&self, wait: Duration) -> (Vec<(RoomId, RoomOverview)>, Vec<RoomId>) {
        let rooms: Vec<(RoomId, RoomHandle)> = self
            .inner
            .rooms
            .lock()
            .map(|rooms| {
                rooms
                    .iter()
                    .filter(|(_, r)| !r.inbox.is_closed())
                    .map(|(id, r)| (id.clone(), r.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let mut asked = Vec::with_capacity(rooms.len());
        for (id, room) in rooms {
            let (reply, answer) = oneshot::channel();
            if room.control.send(RoomInput::Overview { reply }).is_ok() {
                asked.push((id, answer));
            }
        }
        let deadline = tokio::time::Instant::now() + wait;
        let mut answered = Vec::with_capacity(asked.len());
        let mut silent = Vec::new();
        for (id, answer) in asked {
            match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(overview)) => answered.push((id, overview)),
                _ => silent.push(id),
            }
        }
        answered.sort_by(|a, b| a.0.0.cmp(&b.0.0));
        (answered, silent)
    }

    fn send_control(&self, id: &RoomId, input: RoomInput) {
        let room = self
            .inner
            .rooms
            .lock()
            .ok()
            .and_then(|rooms| rooms.get(id).cloned());
        if let Some(room) = room {
            let _ = room.control.send(input);
        }
    }

    /// Whether `identity`'s session in room `id`, resuming with `token`, was in the room when an
    /// administrator closed it, within the resume window (kept until then: the token is that
    /// session's alone, and a retry whose first answer was lost is told again).
    fn closed_while_away(&self, id: &RoomId, identity: &str, token: &str) -> bool {
        let Ok(mut closed) = self.inner.closed_out.lock() else {
            return false;
        };
        let now = Instant::now();
        closed.retain(|_, (_, at)| now.saturating_duration_since(*at) <= RESUME_WINDOW);
        closed
            .get(&(id.clone(), identity.to_owned()))
            .is_some_and(|(kept, _)| crate::room::constant_time_eq(kept, token))
    }

    /// Admits a verified member into room `id` (a fresh join, or a resume when `resume_token` is
    /// given). `new_resume_token` must be fresh randomness from the caller.
    pub async fn connect(
        &self,
        id: &RoomId,
        member: Member,
        version: u32,
        resume_token: Option<String>,
        new_resume_token: String,
    ) -> Result<Session, ConnectError> {
        if let Some(token) = &resume_token
            && self.closed_while_away(id, &member.identity, token)
        {
            return Err(ConnectError::Room(RoomError::Closed));
        }
        // A room whose last participant just left may end while our join waits in its queue;
        // the join then goes to the room's next task instead.
        for _ in 0..JOIN_ATTEMPTS {
            let room = self.room(id).ok_or(ConnectError::Unavailable)?;
            let (outbox, from_room) = mpsc::channel(CLIENT_QUEUE);
            let (reply, answer) = oneshot::channel();
            let connection = self.next_id();
            let identity = member.identity.clone();
            let join = RoomInput::Join {
                member: member.clone(),
                version,
                resume_token: resume_token.clone(),
                new_resume_token: new_resume_token.clone(),
                connection,
                outbox,
                reply,
            };
            match room.inbox.try_send(join) {
                Ok(()) => {}
                // The room's task ended between finding it and this send: its next task takes
                // the join.
                Err(mpsc::error::TrySendError::Closed(_)) => continue,
                Err(mpsc::error::TrySendError::Full(_)) => return Err(ConnectError::Unavailable),
            }
            let Ok(admitted) = answer.await else {
                continue;
            };
            if let (Err(RoomError::ResumeRefused), Some(token)) = (&admitted, &resume_token)
                && self.closed_while_away(id, &member.identity, token)
            {
                // The close was queued ahead of this resume.
                return Err(ConnectError::Room(RoomError::Closed));
            }
            admitted?;
            return Ok(Session {
                identity: identity.clone(),
                to_room: SessionSender {
                    route: Route::Local {
                        identity,
                        connection,
                        room,
                    },
                },
                from_room,
            });
        }
        Err(ConnectError::Unavailable)
    }
}

async fn route_events(hub: std::sync::Weak<HubInner>, mut events: mpsc::Receiver<WorkerEvent>) {
    while let Some(WorkerEvent { event, .. }) = events.recv().await {
        let Some(hub) = hub.upgrade() else {
            return;
        };
        let peer = match &event {
            SfuEvent::Connected { peer }
            | SfuEvent::TrackPublished { peer, .. }
            | SfuEvent::TrackUnpublished { peer, .. }
            | SfuEvent::Speaking { peer, .. }
            | SfuEvent::TrackStalled { peer, .. }
            | SfuEvent::LinkQuality { peer, .. }
            | SfuEvent::CodecUnsupported { peer, .. }
            | SfuEvent::RenewSubscriber { peer, .. }
            | SfuEvent::Offer { peer, .. }
            | SfuEvent::Closed { peer, .. } => *peer,
        };
        let room = hub.peers.lock().ok().and_then(|p| p.get(&peer).cloned());
        if let Some(room) = room {
            // A room that just ended has no use for it.
            let _ = room.send(RoomInput::Sfu(event));
        }
    }
}

fn media_quality(quality: RequestedQuality) -> Quality {
    match quality {
        RequestedQuality::Off => Quality::Off,
        RequestedQuality::Low => Quality::Low,
        RequestedQuality::Medium => Quality::Medium,
        RequestedQuality::High => Quality::High,
    }
}

/// A codec's name as SDP writes it (`rtpmap`), for clients.
fn codec_name(codec: sightline_sfu::Codec) -> String {
    match codec {
        sightline_sfu::Codec::Opus => "opus",
        sightline_sfu::Codec::Vp8 => "VP8",
        sightline_sfu::Codec::Vp9 => "VP9",
        sightline_sfu::Codec::H264 => "H264",
    }
    .to_owned()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

struct Connection {
    id: u64,
    outbox: mpsc::Sender<ServerMessage>,
}

/// A participant's two peer connections.
#[derive(Clone, Copy)]
struct Peers {
    publisher: PeerId,
    subscriber: PeerId,
}

struct RoomActor {
    room: Room,
    worker: WorkerHandle,
    hub: std::sync::Weak<HubInner>,
    /// This room's own queues, to register its peers and to know itself in the hub's map.
    handle: RoomHandle,
    connections: HashMap<String, Connection>,
    peers: HashMap<String, Peers>,
    identity_of: HashMap<PeerId, String>,
    /// Participants whose media was reset while their connection was down: told on resume.
    reset_pending: HashSet<String>,
    /// Each participant's subscriber offer not answered yet, sent again when they resume.
    pending_offers: HashMap<String, String>,
    /// Participants a direct reply found too slow, disconnected after the current input.
    too_slow: Vec<String>,
}

impl RoomActor {
    /// Copies the room's removals to the hub, where the room's next task finds them, and tells
    /// the watcher of removals (if any) that they changed.
    fn keep_barred(&self) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        {
            // A poisoned lock still holds the set: update it, as `is_barred` reads it.
            let mut barred = hub
                .barred
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if self.room.barred().is_empty() {
                barred.remove(self.room.id());
            } else {
                barred.insert(self.room.id().clone(), self.room.barred().clone());
            }
        }
        if let Some(watcher) = hub.barred_changes.get() {
            let _ = watcher.try_send(self.room.id().clone());
        }
    }

    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<RoomInput>,
        mut control: mpsc::UnboundedReceiver<RoomInput>,
    ) {
        // The first tick a period from now, not at once: a new room's task would otherwise find
        // itself empty and end before the join that started it arrives.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
        loop {
            tokio::select! {
                // Media events first: they describe what already happened.
                biased;
                Some(input) = control.recv() => self.handle(input).await,
                input = inbox.recv() => match input {
                    Some(input) => self.handle(input).await,
                    None => break,
                },
                _ = tick.tick() => {
                    let effects = self.room.tick(Instant::now());
                    self.apply(effects).await;
                }
            }
            self.drop_too_slow().await;
            if self.room.is_empty() && self.connections.is_empty() {
                break;
            }
        }
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        // Connections closed on the way out report after the room is gone: forget them now.
        if let Ok(mut peers) = hub.peers.lock() {
            for peer in self.identity_of.keys() {
                peers.remove(peer);
            }
        }
        if let Ok(mut rooms) = hub.rooms.lock()
            && rooms
                .get(self.room.id())
                .is_some_and(|r| r.inbox.same_channel(&self.handle.inbox))
        {
            rooms.remove(self.room.id());
        }
    }

    async fn handle(&mut self, input: RoomInput) {
        match input {
            RoomInput::Join {
                member,
                version,
                resume_token,
                new_resume_token,
                connection,
                outbox,
                reply,
            } => {
                let identity = member.identity.clone();
                let agent = member.grants.agent;
                // A fresh join from a participant who is already here (a reloaded page) comes
                // with new peer connections; only a resume keeps the old ones.
                let fresh = resume_token.is_none();
                let result = match resume_token {
                    Some(token) => {
                        self.room
                            .resume(&identity, &token, new_resume_token, Instant::now())
                    }
                    None => self.room.join(member, version, new_resume_token),
                };
                tracing::debug!(%identity, connection, fresh, ok = result.is_ok(), "join");
                match result {
                    Ok(effects) => {
                        if let Some(old) = self.connections.insert(
                            identity.clone(),
                            Connection {
                                id: connection,
                                outbox,
                            },
                        ) {
                            let _ = old.outbox.try_send(ServerMessage::Removed {
                                reason: LeaveReason::Replaced,
                            });
                        }
                        if fresh {
                            self.drop_peers(&identity).await;
                            self.reset_pending.remove(&identity);
                        }
                        // Agents take media through taps: no connections for them.
                        if !agent && !self.peers.contains_key(&identity) {
                            self.create_peers(&identity).await;
                        }
                        let _ = reply.send(Ok(()));
                        self.apply(effects).await;
                        if self.reset_pending.remove(&identity) {
                            self.reply(
                                &identity,
                                ServerMessage::MediaReset {
                                    ice_servers: Vec::new(),
                                },
                            );
                        } else if !fresh && let Some(sdp) = self.pending_offers.get(&identity) {
                            let sdp = sdp.clone();
                            self.reply(&identity, ServerMessage::SubscriberOffer { sdp });
                        }
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
            RoomInput::Client {
                identity,
                connection,
                message,
            } => {
                if self.connections.get(&identity).map(|c| c.id) != Some(connection) {
                    tracing::debug!(%identity, connection, "a message from a replaced connection is ignored");
                    return;
                }
                self.client_message(&identity, message).await;
            }
            RoomInput::Gone {
                identity,
                connection,
            } => {
                tracing::debug!(%identity, connection, "connection gone");
                if self.connections.get(&identity).map(|c| c.id) == Some(connection) {
                    self.connections.remove(&identity);
                    let effects = self.room.disconnected(&identity, Instant::now());
                    self.apply(effects).await;
                }
            }
            RoomInput::Sfu(event) => self.media_event(event).await,
            RoomInput::Recording(notice) => {
                let effects = self.room.set_recording(notice);
                self.apply(effects).await;
            }
            RoomInput::Proctoring(notice) => {
                let effects = self.room.set_proctoring(notice);
                self.apply(effects).await;
            }
            RoomInput::ProctoringEvent(event) => {
                let effects = self.room.proctoring_event(event);
                self.apply(effects).await;
            }
            RoomInput::ProctoringHint { identity, hint } => {
                let effects = self.room.proctoring_hint(&identity, hint);
                self.apply(effects).await;
            }
            RoomInput::Remove { identity, reason } => {
                let effects = self.room.remove(&identity, reason);
                self.apply(effects).await;
            }
            RoomInput::End => {
                // Every session (people and agents) sees the room end before anyone is seen
                // leaving: an agent must not take an ended room for an emptied one (the recorder
                // stops on purpose when a room empties, but goes on elsewhere when it ends).
                // Their sockets close with the room's outboxes.
                self.connections.clear();
                let everyone: Vec<String> = self.room.identities().map(str::to_owned).collect();
                for identity in everyone {
                    let mut effects = self.room.leave(&identity, LeaveReason::Left);
                    // Nobody left the interview: its room goes on on another node, where
                    // they arrive.
                    effects.retain(|e| !matches!(e, Effect::Presence(_)));
                    self.apply(effects).await;
                }
            }
            RoomInput::Close => {
                if let Some(hub) = self.hub.upgrade()
                    && let Ok(mut closed) = hub.closed_out.lock()
                {
                    let now = Instant::now();
                    closed.retain(|_, (_, at)| now.saturating_duration_since(*at) <= RESUME_WINDOW);
                    for (identity, token) in self.room.resumable() {
                        closed.insert((self.room.id().clone(), identity), (token, now));
                    }
                }
                let effects = self.room.close();
                self.apply(effects).await;
            }
            RoomInput::Overview { reply } => {
                let _ = reply.send(self.room.overview());
            }
            RoomInput::Tap {
                track,
                quality,
                capacity,
                reply,
            } => {
                // Track ids are per worker, and workers host many rooms: only this room's own
                // tracks may be tapped through it.
                let result = match TrackId::from_key(&track) {
                    Some(id) if self.room.has_track(&track) => self
                        .worker
                        .add_tap(id, quality, capacity)
                        .await
                        .map_err(|err| match err {
                            SfuError::UnknownTrack(_) => TapError::UnknownTrack,
                            _ => TapError::Unavailable,
                        }),
                    _ => Err(TapError::UnknownTrack),
                };
                let _ = reply.send(result);
            }
        }
    }

    async fn create_peers(&mut self, identity: &str) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let peers = Peers {
            publisher: self.new_peer(&hub, identity),
            subscriber: self.new_peer(&hub, identity),
        };
        if let Err(err) = self.worker.add_subscriber(peers.subscriber).await {
            tracing::warn!(%err, "subscriber connection not created");
        }
        self.peers.insert(identity.to_owned(), peers);
    }

    /// A new peer id for one of `identity`'s connections, whose media events come to this room.
    fn new_peer(&mut self, hub: &HubInner, identity: &str) -> PeerId {
        let peer = PeerId(hub.next_id.fetch_add(1, Ordering::Relaxed));
        if let Ok(mut map) = hub.peers.lock() {
            map.insert(peer, self.handle.control.clone());
        }
        self.identity_of.insert(peer, identity.to_owned());
        peer
    }

    /// Closes a participant's peer connections. Their tracks' unpublish events still reach this
    /// room: the hub forgets the peers only after the worker has closed them.
    async fn drop_peers(&mut self, identity: &str) {
        self.pending_offers.remove(identity);
        let Some(peers) = self.peers.remove(identity) else {
            return;
        };
        for peer in [peers.publisher, peers.subscriber] {
            let _ = self.worker.remove_peer(peer).await;
        }
    }

    /// Queues a message for one participant. A client too slow to read it (its queue is full)
    /// is disconnected after this input, like one too slow for a broadcast: a message silently
    /// lost (an offer, an answer) would leave its negotiation waiting for ever.
    fn reply(&mut self, identity: &str, message: ServerMessage) {
        if let Some(connection) = self.connections.get(identity)
            && let Err(mpsc::error::TrySendError::Full(_)) = connection.outbox.try_send(message)
        {
            self.too_slow.push(identity.to_owned());
        }
    }

    fn refuse(&mut self, identity: &str, code: &str, message: String) {
        self.reply(
            identity,
            ServerMessage::Error {
                code: code.to_owned(),
                message,
                offer_refused: false,
            },
        );
    }

    /// Refuses a publish offer: whatever the reason, the client learns that no answer follows.
    fn refuse_offer(&mut self, identity: &str, code: &str, message: String) {
        self.reply(
            identity,
            ServerMessage::Error {
                code: code.to_owned(),
                message,
                offer_refused: true,
            },
        );
    }

    /// Disconnects the clients [`RoomActor::reply`] found too slow.
    async fn drop_too_slow(&mut self) {
        for identity in std::mem::take(&mut self.too_slow) {
            if self.connections.remove(&identity).is_some() {
                tracing::info!(%identity, "client too slow to read its replies; disconnecting");
                let effects = self.room.disconnected(&identity, Instant::now());
                self.apply(effects).await;
            }
        }
    }

    async fn client_message(&mut self, identity: &str, message: ClientMessage) {
        let outcome = match message {
            ClientMessage::Join { .. } => {
                self.refuse(
                    identity,
                    "already_joined",
                    "this connection has joined".into(),
                );
                return;
            }
            ClientMessage::PublishOffer { sdp, tracks } => {
                match self.room.declare_tracks(identity, &tracks) {
                    Err(err) => self.refuse_offer(identity, err.code(), err.to_string()),
                    Ok(()) => self.publish_offer(identity, &sdp).await,
                }
                return;
            }
            ClientMessage::SubscriberAnswer { sdp } => {
                self.subscriber_answer(identity, &sdp).await;
                return;
            }
            ClientMessage::IceCandidate {
                connection,
                candidate,
            } => {
                // An empty candidate marks the end of gathering: nothing to add.
                if let Some(peers) = self.peers.get(identity).copied()
                    && !candidate.trim().is_empty()
                {
                    let peer = match connection {
                        crate::protocol::Connection::Publisher => peers.publisher,
                        crate::protocol::Connection::Subscriber => peers.subscriber,
                    };
                    match self.worker.add_remote_candidate(peer, candidate).await {
                        Ok(()) | Err(SfuError::UnknownPeer(_)) => {}
                        Err(err) => self.refuse(identity, "bad_candidate", err.to_string()),
                    }
                }
                return;
            }
            ClientMessage::RestartIce {} => {
                tracing::debug!(%identity, "restart ICE asked");
                if let Some(peers) = self.peers.get(identity).copied()
                    && let Err(err) = self.worker.restart_ice(peers.subscriber).await
                {
                    self.refuse(identity, "restart_refused", err.to_string());
                }
                return;
            }
            ClientMessage::Mute { track, muted } => self.room.mute(identity, &track, muted),
            ClientMessage::SetQuality { track, quality } => {
                self.room.set_quality(identity, &track, quality)
            }
            ClientMessage::Chat { text } => self.room.chat(identity, &text, now_ms()),
            ClientMessage::ModerateMute { track } => self.room.moderate_mute(identity, &track),
            ClientMessage::ModerateRemove { participant } => {
                // A refused request changed nothing: nothing to copy or tell.
                let removed = self.room.moderate_remove(identity, &participant);
                if removed.is_ok() {
                    self.keep_barred();
                }
                removed
            }
            ClientMessage::Readmit { participant } => {
                let readmitted = self.room.readmit(identity, &participant);
                if readmitted.is_ok() {
                    self.keep_barred();
                }
                readmitted
            }
            ClientMessage::Leave {} => Ok(self.room.leave(identity, LeaveReason::Left)),
            ClientMessage::Ping { nonce } => {
                self.reply(identity, ServerMessage::Pong { nonce });
                return;
            }
        };
        match outcome {
            Ok(effects) => self.apply(effects).await,
            Err(err) => self.refuse(identity, err.code(), err.to_string()),
        }
    }

    async fn publish_offer(&mut self, identity: &str, sdp: &str) {
        let Some(peers) = self.peers.get(identity).copied() else {
            self.refuse_offer(
                identity,
                "offer_refused",
                "you have no media connection to publish on".into(),
            );
            return;
        };
        // The parser's own words stay in the log: they can carry internal detail (addresses).
        let offer = match sdp::parse_offer(sdp) {
            Ok(offer) => offer,
            Err(err) => {
                tracing::debug!(?err, "a client's offer is not valid SDP");
                self.refuse_offer(identity, "bad_sdp", err.to_string());
                return;
            }
        };
        match self.worker.publisher_offer(peers.publisher, offer).await {
            Ok(answer) => self.reply(
                identity,
                ServerMessage::PublishAnswer {
                    sdp: answer.to_sdp_string(),
                },
            ),
            Err(err) => self.refuse_offer(identity, "offer_refused", err.to_string()),
        }
    }

    async fn subscriber_answer(&mut self, identity: &str, sdp: &str) {
        let Some(peers) = self.peers.get(identity).copied() else {
            return;
        };
        let answer = match sdp::parse_answer(sdp) {
            Ok(answer) => answer,
            Err(err) => {
                tracing::debug!(?err, "a client's answer is not valid SDP");
                self.refuse(identity, "bad_sdp", err.to_string());
                return;
            }
        };
        let accepted = self.worker.accept_answer(peers.subscriber, answer).await;
        tracing::debug!(%identity, ok = accepted.is_ok(), "subscriber answer");
        match accepted {
            Ok(()) => {
                self.pending_offers.remove(identity);
            }
            // The answer of a connection renewed since: the client's new one answers in turn.
            Err(SfuError::StaleAnswer(_)) => {}
            Err(err) => self.refuse(identity, "answer_refused", err.to_string()),
        }
    }

    async fn media_event(&mut self, event: SfuEvent) {
        match event {
            SfuEvent::Offer { peer, offer } => {
                if let Some(identity) = self.identity_of.get(&peer).cloned() {
                    // Kept until answered: a client that drops before it arrives gets it again
                    // when it resumes, or its subscriber connection would never renegotiate.
                    let sdp = offer.to_sdp_string();
                    tracing::debug!(%identity, "subscriber offer");
                    self.pending_offers.insert(identity.clone(), sdp.clone());
                    self.reply(&identity, ServerMessage::SubscriberOffer { sdp });
                }
            }
            SfuEvent::TrackPublished {
                peer, track, mid, ..
            } => {
                let Some(identity) = self.identity_of.get(&peer).cloned() else {
                    return;
                };
                match self
                    .room
                    .track_published(&identity, track.to_string(), &mid)
                {
                    Ok(effects) => self.apply(effects).await,
                    Err(err) => {
                        tracing::info!(%err, "undeclared track is not forwarded");
                        self.refuse(&identity, err.code(), err.to_string());
                    }
                }
            }
            SfuEvent::Speaking {
                track, speaking, ..
            } => {
                let effects = self.room.speaking(&track.to_string(), speaking);
                self.apply(effects).await;
            }
            SfuEvent::TrackStalled { track, stalled, .. } => {
                let effects = self.room.track_stalled(&track.to_string(), stalled);
                self.apply(effects).await;
            }
            SfuEvent::LinkQuality { peer, loss, rtt } => {
                let Some(identity) = self.identity_of.get(&peer).cloned() else {
                    return;
                };
                let upstream = self
                    .peers
                    .get(&identity)
                    .is_some_and(|p| p.publisher == peer);
                let rtt_ms = rtt.map(|rtt| u32::try_from(rtt.as_millis()).unwrap_or(u32::MAX));
                let effects = self.room.link_report(&identity, upstream, loss, rtt_ms);
                self.apply(effects).await;
            }
            SfuEvent::TrackUnpublished { track, .. } => {
                let effects = self.room.track_unpublished(&track.to_string());
                self.apply(effects).await;
            }
            SfuEvent::Closed { peer, reason } => {
                tracing::debug!(?peer, ?reason, "peer connection closed");
                // Its unpublish events came first; now nothing more will come from it.
                let identity = self.identity_of.remove(&peer);
                if let Some(hub) = self.hub.upgrade()
                    && let Ok(mut map) = hub.peers.lock()
                {
                    map.remove(&peer);
                }
                // The media plane gave up on one of a participant's live connections (ICE timed
                // out, str0m refused its input): the participant is still here, so it gets new
                // ones rather than staying in the room without media.
                if reason != CloseReason::Removed
                    && let Some(identity) = identity
                    && self
                        .peers
                        .get(&identity)
                        .is_some_and(|p| p.publisher == peer || p.subscriber == peer)
                {
                    self.reset_media(&identity).await;
                }
            }
            SfuEvent::CodecUnsupported { peer, track, codec } => {
                // Said once, to the subscriber alone: its tile can read "cannot play this
                // camera" instead of staying black without a word.
                if let Some(identity) = self.identity_of.get(&peer).cloned() {
                    tracing::info!(%track, ?codec, "a subscriber cannot decode a track");
                    self.reply(
                        &identity,
                        ServerMessage::TrackUnplayable {
                            track: track.to_string(),
                            codec: codec.map(codec_name),
                        },
                    );
                }
            }
            SfuEvent::RenewSubscriber { peer, stopped } => {
                let Some(identity) = self.identity_of.get(&peer).cloned() else {
                    return;
                };
                if self
                    .peers
                    .get(&identity)
                    .is_some_and(|p| p.subscriber == peer)
                {
                    tracing::info!(%identity, stopped, "renewing a subscriber connection");
                    self.renew_subscriber(&identity).await;
                }
            }
            SfuEvent::Connected { .. } => {}
        }
    }

    /// Replaces a participant's subscriber connection with a new one subscribed to the same
    /// tracks, and tells the client, whose next subscriber offer is for the new one. A client
    /// away (resuming) gets both connections renewed when it is back, as after a media loss.
    async fn renew_subscriber(&mut self, identity: &str) {
        if !self.connections.contains_key(identity) {
            self.reset_media(identity).await;
            return;
        }
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let Some(old) = self.peers.get(identity).map(|p| p.subscriber) else {
            return;
        };
        let new = self.new_peer(&hub, identity);
        if let Some(peers) = self.peers.get_mut(identity) {
            peers.subscriber = new;
        }
        // The old connection's offer will never be answered; the new one makes its own.
        self.pending_offers.remove(identity);
        let _ = self.worker.remove_peer(old).await;
        if let Err(err) = self.worker.add_subscriber(new).await {
            tracing::warn!(%err, "subscriber connection not created");
        }
        self.reply(identity, ServerMessage::SubscriberReset {});
        let effects = self.room.resubscribe(identity);
        self.apply(effects).await;
    }

    /// Replaces a participant's peer connections and subscribes the new ones to what the old
    /// ones carried; the client is told now, or when it resumes.
    async fn reset_media(&mut self, identity: &str) {
        tracing::info!("media connections lost; starting them afresh");
        self.drop_peers(identity).await;
        self.create_peers(identity).await;
        if !self.connections.contains_key(identity) {
            self.reset_pending.insert(identity.to_owned());
        }
        let effects = self.room.media_reset(identity);
        self.apply(effects).await;
    }

    fn report(&self, change: PresenceChange) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        if let Some(watcher) = hub.presence.get() {
            let activity = RoomActivity {
                room: self.room.id().clone(),
                change,
            };
            if watcher.try_send(activity).is_err() {
                hub.presence_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn apply(&mut self, effects: Vec<Effect>) {
        let mut effects = effects.into_iter().peekable();
        while let Some(effect) = effects.next() {
            match effect {
                Effect::Send { to, message } => {
                    // Only a full queue means a slow client. A closed one means its socket has
                    // ended and its last requests and its end notice are queued behind this:
                    // they decide (a `leave` must still count), not this message.
                    let too_slow = self.connections.get(&to).is_some_and(|c| {
                        matches!(
                            c.outbox.try_send(*message),
                            Err(mpsc::error::TrySendError::Full(_))
                        )
                    });
                    if too_slow {
                        tracing::info!(identity = %to, "client too slow to read its messages; disconnecting");
                        self.connections.remove(&to);
                        let more = self.room.disconnected(&to, Instant::now());
                        Box::pin(self.apply(more)).await;
                    }
                }
                Effect::Subscribe { subscriber, track } => {
                    // A joiner gets every track already in the room: one offer for all of them,
                    // not a negotiation per track before the last picture shows.
                    let mut tracks = vec![track];
                    while let Some(Effect::Subscribe {
                        subscriber: next, ..
                    }) = effects.peek()
                        && *next == subscriber
                    {
                        if let Some(Effect::Subscribe { track, .. }) = effects.next() {
                            tracks.push(track);
                        }
                    }
                    let Some(peers) = self.peers.get(&subscriber).copied() else {
                        continue;
                    };
                    let ids: Vec<_> = tracks.iter().filter_map(|t| TrackId::from_key(t)).collect();
                    if let Err(err) = self
                        .worker
                        .subscribe_all(peers.subscriber, ids, Quality::High)
                        .await
                    {
                        tracing::warn!(%err, "subscription failed");
                    }
                }
                Effect::SetQuality {
                    subscriber,
                    track,
                    quality,
                } => {
                    let (Some(peers), Some(track_id)) = (
                        self.peers.get(&subscriber).copied(),
                        TrackId::from_key(&track),
                    ) else {
                        continue;
                    };
                    if let Err(err) = self
                        .worker
                        .set_quality(peers.subscriber, track_id, media_quality(quality))
                        .await
                    {
                        tracing::warn!(%err, "quality change failed");
                    }
                }
                Effect::Hold { track, held } => {
                    let Some(track_id) = TrackId::from_key(&track) else {
                        continue;
                    };
                    if let Err(err) = self.worker.hold(track_id, held).await {
                        tracing::warn!(%err, "hold failed");
                    }
                }
                Effect::Disconnect { participant } => {
                    self.connections.remove(&participant);
                    self.drop_peers(&participant).await;
                }
                Effect::Presence(change) => self.report(change),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::PROTOCOL_VERSION;

    /// A hub over one real media worker on loopback.
    fn hub_with_one_worker() -> Hub {
        let (events_tx, events_rx) = mpsc::channel(sightline_sfu::EVENT_QUEUE);
        let config = sightline_sfu::WorkerConfig {
            bind: "127.0.0.1:0".parse().expect("address"),
            public_ips: Vec::new(),
            bandwidth_estimation: false,
            stopped_line_limit: sightline_sfu::DEFAULT_STOPPED_LINE_LIMIT,
            tcp: None,
            track_space: sightline_sfu::TrackSpace::of(1, 0),
        };
        let (worker, _thread) = WorkerHandle::spawn(0, config, events_tx).expect("a worker");
        Hub::new(vec![worker], events_rx)
    }

    fn person(identity: &str) -> Member {
        Member {
            identity: identity.to_owned(),
            name: identity.to_owned(),
            role: crate::InterviewRole::Interviewer,
            grants: crate::Grants::for_role(crate::InterviewRole::Interviewer),
            phone_of: None,
        }
    }

    #[tokio::test]
    async fn presence_is_reported_for_people_leaving_but_not_for_a_room_ended_here() {
        let hub = hub_with_one_worker();
        let mut presence = hub.watch_presence(16).expect("the first watcher");
        assert!(hub.watch_presence(16).is_none(), "one watcher");
        let next = async |presence: &mut mpsc::Receiver<RoomActivity>| {
            tokio::time::timeout(Duration::from_secs(10), presence.recv())
                .await
                .expect("in time")
                .expect("open")
        };

        // Someone who leaves is reported.
        let room = RoomId("r-left".into());
        let ivy = hub
            .connect(&room, person("ivy"), PROTOCOL_VERSION, None, "a".into())
            .await
            .expect("joins");
        let joined = next(&mut presence).await;
        assert_eq!(joined.room, room);
        assert!(matches!(joined.change, PresenceChange::Joined(ref p) if p.identity == "ivy"));
        assert!(ivy.to_room.send(ClientMessage::Leave {}));
        let left = next(&mut presence).await;
        assert_eq!(
            left.change,
            PresenceChange::Left {
                participant: "ivy".into(),
                reason: LeaveReason::Left
            }
        );

        // A room ended here (it moved to another node) says nothing of its people.
        let moved = RoomId("r-moved".into());
        let mut cas = hub
            .connect(&moved, person("cas"), PROTOCOL_VERSION, None, "b".into())
            .await
            .expect("joins");
        assert!(matches!(
            next(&mut presence).await.change,
            PresenceChange::Joined(_)
        ));
        hub.end_room(&moved);
        // The session ends with the room...
        let drained = tokio::time::timeout(Duration::from_secs(10), async {
            while cas.from_room.recv().await.is_some() {}
        })
        .await;
        assert!(drained.is_ok(), "the session ended");
        // ...and nobody was reported leaving.
        assert!(presence.try_recv().is_err(), "no departure reported");
        assert_eq!(hub.presence_dropped(), 0);
    }

    #[tokio::test]
    async fn a_removal_is_told_to_the_removals_watcher_hidden_members_too() {
        let hub = hub_with_one_worker();
        let mut changes = hub.watch_barred(16).expect("the first watcher");
        assert!(hub.watch_barred(16).is_none(), "one watcher");
        let room = RoomId("r-barred".into());
        let ivy = hub
            .connect(&room, person("ivy"), PROTOCOL_VERSION, None, "a".into())
            .await
            .expect("joins");
        // A reviewer watches hidden: no presence is reported for them, yet their removal counts.
        let reviewer = Member {
            role: crate::InterviewRole::Reviewer,
            grants: crate::Grants::for_role(crate::InterviewRole::Reviewer),
            ..person("rev")
        };
        let mut rev = hub
            .connect(&room, reviewer, PROTOCOL_VERSION, None, "b".into())
            .await
            .expect("joins");

        // A refused removal (a reviewer may not moderate) changes nothing and tells nothing.
        assert!(rev.to_room.send(ClientMessage::ModerateRemove {
            participant: "ivy".into()
        }));
        let refused = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match rev.from_room.recv().await {
                    Some(ServerMessage::Error { code, .. }) => break Some(code),
                    Some(_) => {}
                    None => break None,
                }
            }
        })
        .await
        .expect("in time");
        assert_eq!(refused.as_deref(), Some("not_allowed"));
        assert!(changes.try_recv().is_err(), "a refusal tells nothing");

        assert!(ivy.to_room.send(ClientMessage::ModerateRemove {
            participant: "rev".into()
        }));
        let changed = tokio::time::timeout(Duration::from_secs(10), changes.recv())
            .await
            .expect("in time");
        assert_eq!(changed, Some(room.clone()));
        // Told once the hub's set says so.
        assert!(hub.is_barred(&room, "rev"));
        assert!(!hub.is_barred(&room, "ivy"));
    }

    /// A room's task is started by the first join and that join is sent to it right after:
    /// the task must still be there when it arrives, however soon the task first runs.
    #[tokio::test(start_paused = true)]
    async fn a_new_room_waits_for_the_join_that_started_it() {
        let hub = hub_with_one_worker();
        let id = RoomId("r-new".into());
        let room = hub.room(&id).expect("a room");
        // The room's task runs, and time passes, but less than a tick.
        tokio::time::sleep(TICK / 2).await;
        assert!(
            !room.inbox.is_closed(),
            "the new room's task ended before any join"
        );
        assert!(hub.has_room(&id));
        hub.connect(&id, person("ada"), PROTOCOL_VERSION, None, "a".into())
            .await
            .expect("joins the room it started");
    }

    #[tokio::test]
    async fn a_relayed_session_carries_messages_and_closes_after_them() {
        let (to_relay, mut relayed) = mpsc::channel(2);
        let (to_client, from_relay) = mpsc::channel(2);
        let session = Session::relayed("cas".to_owned(), to_relay, from_relay);
        let copy = session.to_room.clone();
        assert!(session.to_room.send(ClientMessage::Leave {}));
        assert!(copy.send(ClientMessage::Leave {}));
        assert!(!copy.send(ClientMessage::Leave {}), "a full relay refuses");
        to_client
            .send(ServerMessage::IceServers {
                ice_servers: Vec::new(),
            })
            .await
            .expect("the session listens");
        let Session { mut from_room, .. } = session;
        assert!(from_room.recv().await.is_some());
        // Closing through any copy ends the relay after what was sent before.
        copy.closed().await;
        assert_eq!(relayed.recv().await, Some(ClientMessage::Leave {}));
        assert_eq!(relayed.recv().await, Some(ClientMessage::Leave {}));
        assert_eq!(relayed.recv().await, None);
        assert!(!copy.send(ClientMessage::Leave {}), "closed for good");
    }
}
