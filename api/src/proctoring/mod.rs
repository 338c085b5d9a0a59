//! Proctoring interviews: the server checks what the SFU received from a candidate who agreed,
//! and marks moments for a person to look at.
//!
//! A controller per proctored interview joins its room as a hidden agent (see [`crate::agent`])
//! and, on every change:
//!
//! - tells everyone the room is proctored, and which candidates present have not agreed yet;
//! - watches (through media taps, [`sightline_proctor::watch`]) the camera of every candidate
//!   who agreed, and the camera of their paired phone as its side view;
//! - stores each event that opens (with a snapshot in the object store), closes it when it
//!   ends, and shows both live to the room's interviewers and reviewers.
//!
//! It starts when someone is about to enter a proctored interview's room, and stops when the
//! last person leaves or proctoring is turned off. Events of a track that ends are closed then.
//!
//! With `workers.proctoring = "remote"` the decoding and the detectors run in a `sightline
//! worker` ([`remote`]); the controller, its events and snapshots stay here.

pub(crate) mod remote;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sightline_config::{CheckTimes, ProctoringSettings};
use sightline_proctor::debounce::Edge;
use sightline_proctor::{Check, Detectors, Finding, Source, Watch, WatchConfig};
use sightline_recorder::ObjectStore;
use sightline_sfu::Quality;
use sightline_signaling::protocol::{ServerMessage, TrackInfo};
use sightline_signaling::{
    Hub, InterviewRole, ProctoringEvent, ProctoringHint, ProctoringNotice, RoomId, TrackSource,
};
use tokio::sync::{OnceCell, mpsc};

use crate::agent::{self, Change, Controllers, RoomMirror};
use crate::error::ApiError;
use crate::handoff::{LinkStats, RemoteSetup};
use crate::store::{Db, new_id, proctoring as events};
use remote::{RemoteChecks, RemoteWatch, Report};

/// Packets a watched track may queue before the tap drops (about two seconds of video).
const TAP_CAPACITY: usize = 1024;
/// A candidate is prompted about their setup at most this often.
const HINT_SPACING: Duration = Duration::from_secs(60);
/// How long a controller waits for someone to enter a room it was started for.
const EMPTY_ROOM_WAIT: Duration = Duration::from_secs(300);

/// The proctoring controllers of every proctored interview in progress.
#[derive(Clone)]
pub struct Proctoring {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Hub,
    db: Db,
    /// Snapshots go here, beside the recordings.
    store: Arc<dyn ObjectStore>,
    /// Where the face models are, and how many detections may run at once.
    models_dir: PathBuf,
    detector_slots: usize,
    /// Loaded when the first interview is proctored (loading takes a moment).
    detectors: OnceCell<Detectors>,
    /// How long conditions must last.
    times: CheckTimes,
    retention_days: u32,
    running: Controllers<Control>,
    /// Set when workers run the checks (`workers.proctoring = "remote"`).
    remote: Option<Arc<RemoteSetup>>,
    /// The detector the last worker reported, when workers run the checks.
    worker_detector: std::sync::Mutex<Option<String>>,
}

enum Control {
    Consented(String),
    Stop,
}

/// The object key of snapshot `n` of an event.
pub fn snapshot_key(interview: &str, event: &str, n: u32) -> String {
    format!("proctoring/{interview}/{event}/{n}.jpg")
}

impl Proctoring {
    /// Controllers for rooms in `hub`, with events in `db` and snapshots in `store`, checking
    /// as `settings` say: here, with the models in `settings.models_dir`, or, with `remote`,
    /// in the workers that take its jobs.
    pub fn new(
        hub: Hub,
        db: Db,
        store: Arc<dyn ObjectStore>,
        settings: &ProctoringSettings,
        remote: Option<Arc<RemoteSetup>>,
    ) -> Proctoring {
        Proctoring {
            inner: Arc::new(Inner {
                hub,
                db,
                store,
                models_dir: settings.models_dir.clone(),
                detector_slots: settings.detector_threads,
                detectors: OnceCell::new(),
                times: settings.checks.clone(),
                retention_days: settings.retention_days,
                running: Controllers::default(),
                remote,
                worker_detector: std::sync::Mutex::new(None),
            }),
        }
    }

    /// The counters of checks made by workers, when they are.
    pub fn link_stats(&self) -> Option<Arc<LinkStats>> {
        self.inner
            .remote
            .as_ref()
            .map(|setup| Arc::clone(&setup.stats))
    }

    /// The object store snapshots are in.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    /// The face detector's name: `none` when its model could not be loaded, `not loaded yet`
    /// before the first proctored interview; with workers, the one the last worker reported.
    pub fn detector(&self) -> String {
        if self.inner.remote.is_some() {
            let reported = self
                .inner
                .worker_detector
                .lock()
                .ok()
                .and_then(|d| d.clone());
            return reported.unwrap_or_else(|| "on workers, none reported yet".to_owned());
        }
        self.inner
            .detectors
            .get()
            .map_or("not loaded yet", |d| d.name())
            .to_owned()
    }

    /// Whether any interview's checks are running (their events are still being closed and
    /// stored): a stopping server waits for them.
    pub fn busy(&self) -> bool {
        self.inner.running.any_running()
    }

    /// Whether interview `id`'s checks are running.
    pub fn is_running(&self, interview: &str) -> bool {
        self.inner.running.is_running(interview)
    }

    /// Starts proctoring interview `interview` (nothing happens if it runs already).
    pub fn start(&self, interview: &str) -> Result<(), ApiError> {
        let Some(rx) = self.inner.running.claim(interview)? else {
            return Ok(());
        };
        let (found_tx, found_rx) = mpsc::unbounded_channel();
        let controller = Controller {
            inner: Arc::clone(&self.inner),
            interview: interview.to_owned(),
            room: RoomId(interview.to_owned()),
            mirror: RoomMirror::default(),
            consented: HashSet::new(),
            require_screen_share: false,
            watches: HashMap::new(),
            unwatchable: HashSet::new(),
            stopped: HashMap::new(),
            shared: HashSet::new(),
            open: HashMap::new(),
            detectors: Detectors::default(),
            detector: String::new(),
            checks: Checks::Here,
            hinted: HashMap::new(),
            found_tx,
        };
        tokio::spawn(controller.run(rx, found_rx));
        Ok(())
    }

    /// Stops proctoring interview `interview`; false if it was not running.
    pub fn stop(&self, interview: &str) -> bool {
        self.inner.running.stop(interview, Control::Stop)
    }

    /// Candidate `participant` of `interview` agreed to proctoring.
    pub fn consented(&self, interview: &str, participant: &str) {
        self.inner
            .running
            .send(interview, Control::Consented(participant.to_owned()));
    }

    /// Ends the events a previous run of the server left open (its checks ended with it), at
    /// start-up, before any controller runs.
    pub async fn close_left_open(&self) {
        let now = unix_ms(SystemTime::now());
        match events::close_all_open(self.inner.db.pool(), now).await {
            Ok(0) => {}
            Ok(closed) => {
                tracing::info!(closed, "proctoring events left open by the last run ended")
            }
            Err(err) => tracing::error!(%err, "proctoring events left open not ended"),
        }
    }

    /// Deletes the events (and snapshots) of interviews whose last event ended more than
    /// `days` days ago; returns how many interviews.
    pub async fn expire(&self, days: u32) -> Result<usize, ApiError> {
        let cutoff = unix_ms(SystemTime::now()) - i64::from(days) * 86_400_000;
        let interviews = events::interviews_ended_before(self.inner.db.pool(), cutoff).await?;
        let mut deleted = 0;
        for interview in interviews {
            if self.is_running(&interview) {
                continue;
            }
            self.erase(&interview).await?;
            tracing::info!(%interview, "proctoring events deleted after their retention period");
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Deletes an interview's proctoring evidence: its snapshots in the store, then its events.
    /// Returns how many events went.
    pub async fn erase(&self, interview: &str) -> Result<usize, ApiError> {
        let prefix = format!("proctoring/{interview}/");
        let store = &self.inner.store;
        let keys = store
            .list(&prefix)
            .await
            .map_err(|e| ApiError::Internal(format!("listing {prefix}: {e}")))?;
        for key in keys {
            store
                .delete(&key)
                .await
                .map_err(|e| ApiError::Internal(format!("deleting {key}: {e}")))?;
        }
        let events = events::for_interview(self.inner.db.pool(), interview)
            .await?
            .len();
        events::delete_for(self.inner.db.pool(), interview).await?;
        Ok(events)
    }
}

impl Inner {
    /// The checks' configuration for `source`: the defaults with this server's timings.
    fn config(&self, source: Source) -> WatchConfig {
        watch_config(&self.times, source)
    }
}

/// The checks' configuration for `source`: the defaults with `times` (a worker gets them from
/// the node whose room it checks).
pub(crate) fn watch_config(times: &CheckTimes, source: Source) -> WatchConfig {
    let mut config = WatchConfig::for_source(source);
    let secs = Duration::from_secs;
    config.camera.calibration = secs(times.calibration_secs);
    config.camera.face_absent_for.0 = secs(times.face_absent_secs);
    config.camera.multiple_faces_for.0 = secs(times.multiple_faces_secs);
    config.camera.dark_for.0 = secs(times.camera_dark_secs);
    config.camera.frozen_for.0 = secs(times.camera_frozen_secs);
    config.side.dark_for.0 = secs(times.camera_dark_secs);
    config.side.frozen_for.0 = secs(times.camera_frozen_secs);
    config.side.changed_for.0 = secs(times.side_view_changed_secs);
    config
}

/// Deletes proctoring events past their retention period, at start-up and then hourly; `days`
/// 0 keeps them.
pub async fn retention(proctoring: Proctoring, days: u32) {
    if days == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        if let Err(err) = proctoring.expire(days).await {
            tracing::warn!(%err, "proctoring retention run failed");
        }
    }
}

fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A watched track.
struct Watched {
    watch: Running,
    participant: String,
    source: Source,
}

/// Where a watched track is checked.
enum Running {
    Here(Watch),
    Worker(RemoteWatch),
}

impl Running {
    /// Why its checks ended while the track is still here (its decoder failed), once they did.
    fn ended(&self) -> Option<String> {
        match self {
            Running::Here(watch) => watch.ended().then(|| "the decoder stopped".to_owned()),
            Running::Worker(watch) => watch.ended().map(str::to_owned),
        }
    }
}

/// Where this controller's checks run.
enum Checks {
    /// In this process.
    Here,
    /// In the workers that take its job.
    Worker(RemoteChecks),
}

/// An event that has not closed yet.
struct OpenEvent {
    id: String,
    started_at_ms: i64,
    participant: String,
    /// Whether it has a snapshot.
    snapshot: bool,
}

/// What an event is about, when it opens.
struct Mark {
    check: Check,
    /// The candidate whose stream it is.
    participant: String,
    track: String,
    /// `camera`, `phone` or `screen`.
    source: &'static str,
    at_ms: i64,
    snapshot: Option<Vec<u8>>,
    thresholds: String,
    detector: String,
    /// A statement (`checks_unavailable`) that ends as it begins.
    instant: bool,
}

/// A stream a candidate stopped sending while still in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Stream {
    Camera,
    Phone,
    Screen,
}

impl Stream {
    fn of(track: &TrackInfo, mirror: &RoomMirror) -> Option<Stream> {
        let phone = mirror
            .participants
            .get(&track.participant)
            .is_some_and(|p| p.phone_of.is_some());
        match track.source {
            TrackSource::SecondaryCamera => Some(Stream::Phone),
            TrackSource::Camera if phone => Some(Stream::Phone),
            TrackSource::Camera => Some(Stream::Camera),
            TrackSource::ScreenShare => Some(Stream::Screen),
            TrackSource::Microphone => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stream::Camera => "camera",
            Stream::Phone => "phone",
            Stream::Screen => "screen",
        }
    }
}

/// One interview's proctoring controller.
struct Controller {
    inner: Arc<Inner>,
    interview: String,
    room: RoomId,
    mirror: RoomMirror,
    /// Candidates (participant ids) who agreed.
    consented: HashSet<String>,
    /// Whether the candidate must share their screen (`screen_share_stopped`).
    require_screen_share: bool,
    /// Watches by track id.
    watches: HashMap<String, Watched>,
    /// Tracks that cannot be watched (not VP8, no tap, a decoder that failed): said once.
    unwatchable: HashSet<String>,
    /// Open events by (track, check): their id, when they began, and whose stream.
    open: HashMap<(String, Check), OpenEvent>,
    /// Streams a candidate stopped while still in the room, by (candidate, stream): the open
    /// `feed_lost` or `screen_share_stopped`.
    stopped: HashMap<(String, Stream), (Check, String, OpenEvent)>,
    /// Candidates who shared their screen at some point (only a share that ends is marked).
    shared: HashSet<String>,
    /// When each candidate was last prompted about their setup.
    hinted: HashMap<String, std::time::Instant>,
    /// The face detectors (none loaded: the face checks never see an answer).
    detectors: Detectors,
    /// The face detector's name, as stored with events.
    detector: String,
    /// Where the checks run.
    checks: Checks,
    /// Where watches report, tagged with their track.
    found_tx: mpsc::UnboundedSender<Report>,
}

impl Controller {
    async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut found: mpsc::UnboundedReceiver<Report>,
    ) {
        if let Some(setup) = self.inner.remote.clone() {
            // The worker names its detector when it begins.
            self.detector = "worker".to_owned();
            let times = self.inner.times.clone();
            self.checks = Checks::Worker(RemoteChecks::start(
                &setup,
                &self.interview,
                times,
                self.found_tx.clone(),
            ));
        } else {
            let inner = Arc::clone(&self.inner);
            let detectors = self
                .inner
                .detectors
                .get_or_init(|| async move {
                    let (dir, slots) = (inner.models_dir.clone(), inner.detector_slots);
                    tokio::task::spawn_blocking(move || Detectors::load(&dir, slots))
                        .await
                        .unwrap_or_default()
                })
                .await
                .clone();
            self.detector = detectors.name().to_owned();
            self.detectors = detectors;
        }
        let pool = self.inner.db.pool();
        let consented = events::consented(pool, &self.interview).await;
        self.consented = consented.unwrap_or_default().into_iter().collect();
        self.require_screen_share = events::settings(pool, &self.interview)
            .await
            .ok()
            .flatten()
            .is_some_and(|s| s.require_screen_share);
        let session = match agent::join(&self.inner.hub, &self.room, "proctor", "Proctor").await {
            Ok(session) => session,
            Err(err) => {
                tracing::warn!(interview = %self.interview, %err, "proctor could not join the room");
                if let Checks::Worker(checks) = std::mem::replace(&mut self.checks, Checks::Here) {
                    checks.stop().await;
                }
                self.forget();
                return;
            }
        };
        tracing::info!(interview = %self.interview, detector = %self.detector, "proctoring started");
        let mut from_room = session.from_room;
        let mut attended = false;
        let idle = tokio::time::sleep(EMPTY_ROOM_WAIT);
        tokio::pin!(idle);
        loop {
            tokio::select! {
                message = from_room.recv() => match message {
                    Some(message) => self.room_message(message).await,
                    None => break,
                },
                control = control.recv() => match control {
                    Some(Control::Consented(participant)) => {
                        self.consented.insert(participant);
                    }
                    Some(Control::Stop) | None => break,
                },
                Some(report) = found.recv() => {
                    self.report(report).await;
                    continue;
                }
                () = &mut idle, if !attended => break,
            }
            if self.mirror.participants.is_empty() {
                if attended {
                    break;
                }
                continue;
            }
            attended = true;
            self.reconcile().await;
        }
        control.close();
        let _ = session
            .to_room
            .send(sightline_signaling::protocol::ClientMessage::Leave {});
        // A worker says what it found before it stops.
        if let Checks::Worker(checks) = std::mem::replace(&mut self.checks, Checks::Here) {
            checks.stop().await;
        }
        // Dropping a watch stops its threads (within about half a second) without waiting here.
        self.watches.clear();
        // What the watches reported before they stopped.
        while let Ok(report) = found.try_recv() {
            self.report(report).await;
        }
        // Only this controller's own events: a newer controller of the same interview (turned
        // off and on again) keeps its own.
        let now = unix_ms(SystemTime::now());
        let open: Vec<String> = self
            .open
            .drain()
            .map(|(_, open)| open.id)
            .chain(self.stopped.drain().map(|(_, (_, _, open))| open.id))
            .collect();
        for id in open {
            if let Err(err) = events::close(self.inner.db.pool(), &id, now, None).await {
                tracing::error!(%err, "open proctoring event not closed");
            }
        }
        // The room is told proctoring is off, unless a newer controller runs for it.
        if !self.forget() {
            self.inner
                .hub
                .set_proctoring(&self.room, ProctoringNotice::default());
        }
        tracing::info!(interview = %self.interview, "proctoring stopped");
    }

    /// Takes this controller out of the registry (unless a newer one replaced it); returns
    /// whether a newer one runs.
    fn forget(&self) -> bool {
        self.inner.running.forget(&self.interview)
    }

    async fn room_message(&mut self, message: ServerMessage) {
        match self.mirror.apply(&message) {
            Change::Unpublished(track) => {
                self.track_ended(&track.id).await;
                let owner = self.mirror.owner(&track.participant).to_owned();
                self.stream_stopped(&track, owner).await;
            }
            Change::Left(leaver, tracks) => {
                // A phone that leaves is its candidate's side view gone.
                let owner = leaver.phone_of.clone().unwrap_or(leaver.identity.clone());
                for track in &tracks {
                    self.track_ended(&track.id).await;
                    self.stream_stopped(track, owner.clone()).await;
                }
                // A candidate who leaves ends what was open for their streams.
                let owned: Vec<(String, Stream)> = self
                    .stopped
                    .keys()
                    .filter(|(owner, _)| *owner == leaver.identity)
                    .cloned()
                    .collect();
                for key in owned {
                    self.stream_back(&key).await;
                }
            }
            Change::Published(track) => {
                if let Some(stream) = Stream::of(&track, &self.mirror) {
                    let owner = self.mirror.owner(&track.participant).to_owned();
                    if stream == Stream::Screen {
                        self.shared.insert(owner.clone());
                    }
                    self.stream_back(&(owner, stream)).await;
                }
            }
            Change::Snapshot => {
                let sharing: Vec<String> = self
                    .mirror
                    .tracks
                    .values()
                    .filter(|t| t.source == TrackSource::ScreenShare)
                    .map(|t| self.mirror.owner(&t.participant).to_owned())
                    .collect();
                self.shared.extend(sharing);
            }
            Change::Joined | Change::None => {}
        }
    }

    /// A watched track went away (unpublished, or its publisher left): its watch stops and
    /// what was open on it ends now.
    async fn track_ended(&mut self, track: &str) {
        self.unwatchable.remove(track);
        if self.watches.remove(track).is_none() {
            return;
        }
        self.close_open_on(track, SystemTime::now()).await;
    }

    /// Ends, at `now`, every event still open on `track`.
    async fn close_open_on(&mut self, track: &str, now: SystemTime) {
        let open: Vec<Check> = self
            .open
            .keys()
            .filter(|(t, _)| t == track)
            .map(|(_, check)| *check)
            .collect();
        for check in open {
            let closed = Finding {
                check,
                edge: Edge::Closed { at: Duration::ZERO },
                at: now,
                snapshot: None,
                peak: None,
            };
            self.finding(track, closed).await;
        }
    }

    /// A candidate's camera, phone or screen share ended while the candidate is still here:
    /// `feed_lost` (camera, phone) or `screen_share_stopped` (when the interview requires
    /// sharing) opens until that stream is back or the candidate leaves.
    async fn stream_stopped(&mut self, track: &TrackInfo, owner: String) {
        let Some(stream) = Stream::of(track, &self.mirror) else {
            return;
        };
        let present = self.mirror.participants.contains_key(&owner);
        if !present || !self.checked(&owner) {
            return;
        }
        let check = match stream {
            Stream::Screen if self.require_screen_share && self.shared.contains(&owner) => {
                Check::ScreenShareStopped
            }
            Stream::Screen => return,
            Stream::Camera | Stream::Phone => Check::FeedLost,
        };
        let key = (owner.clone(), stream);
        if self.stopped.contains_key(&key) {
            return;
        }
        let mark = Mark {
            check,
            participant: owner,
            track: track.id.clone(),
            source: stream.name(),
            at_ms: unix_ms(SystemTime::now()),
            snapshot: None,
            thresholds: serde_json::json!({ "from": "signaling", "stream": stream.name() })
                .to_string(),
            detector: "signaling-1".into(),
            instant: false,
        };
        let track = mark.track.clone();
        if let Some(open) = self.open_event(mark).await {
            self.stopped.insert(key, (check, track, open));
        }
    }

    /// A stopped stream is back (or its candidate left): its event closes now.
    async fn stream_back(&mut self, key: &(String, Stream)) {
        if let Some((check, track, open)) = self.stopped.remove(key) {
            self.close_event(check, &track, open, unix_ms(SystemTime::now()), None)
                .await;
        }
    }

    /// Whether `identity` is a candidate (or a candidate's phone) who agreed.
    fn checked(&self, identity: &str) -> bool {
        let owner = self.mirror.owner(identity);
        let candidate = self
            .mirror
            .participants
            .get(owner)
            .is_some_and(|p| p.role == InterviewRole::Candidate);
        candidate && self.consented.contains(owner)
    }

    async fn reconcile(&mut self) {
        let needs_consent: Vec<String> = self
            .mirror
            .participants
            .values()
            .filter(|p| {
                p.phone_of.is_none()
                    && p.role == InterviewRole::Candidate
                    && !self.consented.contains(&p.identity)
            })
            .map(|p| p.identity.clone())
            .collect();
        self.inner.hub.set_proctoring(
            &self.room,
            ProctoringNotice {
                on: true,
                needs_consent,
                retention_days: self.inner.retention_days,
            },
        );
        // A watch whose track is still here but whose threads ended has failed (its decoder):
        // say so once, and do not try again.
        let failed: Vec<(String, String)> = self
            .watches
            .iter()
            .filter(|(id, _)| self.mirror.tracks.contains_key(*id))
            .filter_map(|(id, w)| w.watch.ended().map(|why| (id.clone(), why)))
            .collect();
        for (track, why) in failed {
            if let Some(track) = self.mirror.tracks.get(&track).cloned() {
                self.track_ended(&track.id).await;
                self.unwatchable_track(&track, &why).await;
            }
        }
        let due: Vec<TrackInfo> = self
            .mirror
            .tracks
            .values()
            .filter(|t| {
                matches!(t.source, TrackSource::Camera | TrackSource::SecondaryCamera)
                    && !self.watches.contains_key(&t.id)
                    && !self.unwatchable.contains(&t.id)
                    && self.checked(&t.participant)
            })
            .cloned()
            .collect();
        for track in due {
            self.watch(track).await;
        }
    }

    /// A track that cannot be checked: a neutral `checks_unavailable` says so, once.
    async fn unwatchable_track(&mut self, track: &TrackInfo, reason: &str) {
        if !self.unwatchable.insert(track.id.clone()) {
            return;
        }
        let source = match Stream::of(track, &self.mirror) {
            Some(Stream::Phone) => "phone",
            _ => "camera",
        };
        let mark = Mark {
            check: Check::ChecksUnavailable,
            participant: self.mirror.owner(&track.participant).to_owned(),
            track: track.id.clone(),
            source,
            at_ms: unix_ms(SystemTime::now()),
            snapshot: None,
            thresholds: serde_json::json!({ "reason": reason }).to_string(),
            detector: "decoder".into(),
            instant: true,
        };
        self.open_event(mark).await;
    }

    async fn watch(&mut self, track: TrackInfo) {
        let source = if Stream::of(&track, &self.mirror) == Some(Stream::Phone) {
            Source::Phone
        } else {
            Source::Camera
        };
        // The middle simulcast layer: plenty for a face, a fraction of the top layer's cost.
        let tap = match self
            .inner
            .hub
            .tap(&self.room, &track.id, Quality::Medium, TAP_CAPACITY)
            .await
        {
            Ok(tap) => tap,
            Err(err) => {
                tracing::debug!(track = %track.id, %err, "track not tapped for proctoring");
                self.unwatchable_track(&track, "the track could not be tapped")
                    .await;
                return;
            }
        };
        let owner = self.mirror.owner(&track.participant).to_owned();
        let running = match &self.checks {
            Checks::Worker(checks) => Running::Worker(checks.watch(&track.id, &owner, source, tap)),
            Checks::Here => match self.watch_here(&track, tap, source).await {
                Some(watch) => Running::Here(watch),
                None => return,
            },
        };
        tracing::info!(track = %track.id, participant = %owner, ?source, "watching");
        self.watches.insert(
            track.id,
            Watched {
                watch: running,
                participant: owner,
                source,
            },
        );
    }

    /// Starts checking `track` in this process; `None` when it cannot be (said once).
    async fn watch_here(
        &mut self,
        track: &TrackInfo,
        tap: sightline_sfu::TapReceiver,
        source: Source,
    ) -> Option<Watch> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let watch = match sightline_proctor::watch(
            tap,
            source,
            self.detectors.clone(),
            self.inner.config(source),
            tx,
        ) {
            Ok(watch) => watch,
            Err(err) => {
                tracing::warn!(track = %track.id, %err, "track not watched");
                // e.g. an H.264 camera: only VP8 is decoded for checks.
                self.unwatchable_track(track, "its video cannot be decoded for checks")
                    .await;
                return None;
            }
        };
        let forward = self.found_tx.clone();
        let track_id = track.id.clone();
        tokio::spawn(async move {
            while let Some(finding) = rx.recv().await {
                if forward
                    .send(Report::Found(track_id.clone(), finding))
                    .is_err()
                {
                    break;
                }
            }
        });
        Some(watch)
    }

    /// What the checks reported, wherever they run.
    async fn report(&mut self, report: Report) {
        match report {
            Report::Found(track, finding) => self.finding(&track, finding).await,
            Report::Detector(name) => {
                if let Ok(mut reported) = self.inner.worker_detector.lock() {
                    *reported = Some(name.clone());
                }
                self.detector = name;
            }
            Report::Interrupted { track, reason } => self.interrupted(&track, reason).await,
        }
    }

    /// A watched track's checks stopped for now (their worker was lost, or none came): what
    /// was open on it ends now, and a neutral statement says why. The watch stays: the next
    /// worker checks the track again.
    async fn interrupted(&mut self, track: &str, reason: &str) {
        let Some((participant, source)) = self
            .watches
            .get(track)
            .map(|w| (w.participant.clone(), w.source))
        else {
            return;
        };
        let now = SystemTime::now();
        self.close_open_on(track, now).await;
        let mark = Mark {
            check: Check::ChecksUnavailable,
            participant,
            track: track.to_owned(),
            source: remote::source_name(source),
            at_ms: unix_ms(now),
            snapshot: None,
            thresholds: serde_json::json!({ "reason": reason }).to_string(),
            detector: "worker".into(),
            instant: true,
        };
        tracing::warn!(interview = %self.interview, %track, %reason, "proctoring checks interrupted");
        self.open_event(mark).await;
    }

    async fn finding(&mut self, track: &str, finding: Finding) {
        let at = unix_ms(finding.at);
        match finding.edge {
            Edge::Opened { .. } => {
                let Some((participant, source)) = self
                    .watches
                    .get(track)
                    .map(|w| (w.participant.clone(), w.source))
                else {
                    return;
                };
                let mark = Mark {
                    check: finding.check,
                    participant,
                    track: track.to_owned(),
                    source: remote::source_name(source),
                    at_ms: at,
                    snapshot: finding.snapshot,
                    thresholds: thresholds(finding.check, source, &self.inner.config(source)),
                    detector: detector_of(finding.check, &self.detector).to_owned(),
                    // `checks_unavailable` is a statement, not a span: it ends as it begins.
                    instant: finding.check == Check::ChecksUnavailable,
                };
                if let Some(open) = self.open_event(mark).await {
                    self.open.insert((track.to_owned(), finding.check), open);
                }
            }
            Edge::Closed { .. } => {
                if let Some(open) = self.open.remove(&(track.to_owned(), finding.check)) {
                    let peak = finding.peak.map(f64::from);
                    self.close_event(finding.check, track, open, at, peak).await;
                }
            }
        }
    }

    /// Stores an event (and its snapshot), prompts the candidate where it helps, and shows it
    /// live; returns it while it lasts (`None` for a statement, or when it could not be
    /// stored).
    async fn open_event(&mut self, mark: Mark) -> Option<OpenEvent> {
        let id = new_id();
        let mut snapshots = 0;
        if let Some(jpeg) = mark.snapshot {
            let key = snapshot_key(&self.interview, &id, 0);
            match self.inner.store.put_bytes(&key, jpeg).await {
                Ok(()) => snapshots = 1,
                Err(err) => tracing::warn!(%err, "proctoring snapshot not stored"),
            }
        }
        let ended = mark.instant.then_some(mark.at_ms);
        let stored = events::insert(
            self.inner.db.pool(),
            &events::NewEvent {
                id: &id,
                interview_id: &self.interview,
                participant_id: &mark.participant,
                track_id: &mark.track,
                source: mark.source,
                kind: mark.check.kind(),
                severity: mark.check.severity(),
                started_at_ms: mark.at_ms,
                ended_at_ms: ended,
                detector: &mark.detector,
                thresholds: &mark.thresholds,
                snapshots,
            },
        )
        .await;
        if let Err(err) = stored {
            tracing::error!(%err, "proctoring event not stored");
            return None;
        }
        tracing::info!(interview = %self.interview, kind = mark.check.kind(), track = %mark.track, "proctoring event");
        // A statement that the checks could not run is no observation about the candidate.
        if mark.check.severity() != "info" {
            let flag = crate::webhooks::FlagData {
                interview_id: self.interview.clone(),
                event_id: id.clone(),
                kind: mark.check.kind().to_owned(),
                participant: mark.participant.clone(),
            };
            crate::webhooks::record_now(
                &self.inner.db,
                &crate::webhooks::Event::ProctoringFlagRaised(flag),
            )
            .await;
        }
        self.hint(&mark.participant, mark.check);
        self.inner.hub.proctoring_event(
            &self.room,
            ProctoringEvent {
                id: id.clone(),
                kind: mark.check.kind().to_owned(),
                severity: mark.check.severity().to_owned(),
                participant: mark.participant.clone(),
                track: mark.track,
                started_at_ms: mark.at_ms,
                ended_at_ms: ended,
                snapshot: snapshots > 0,
            },
        );
        (!mark.instant).then_some(OpenEvent {
            id,
            started_at_ms: mark.at_ms,
            participant: mark.participant,
            snapshot: snapshots > 0,
        })
    }

    /// Ends an open event at `at_ms` and shows that live.
    async fn close_event(
        &mut self,
        check: Check,
        track: &str,
        open: OpenEvent,
        at_ms: i64,
        peak: Option<f64>,
    ) {
        if let Err(err) = events::close(self.inner.db.pool(), &open.id, at_ms, peak).await {
            tracing::error!(%err, "proctoring event not closed");
        }
        self.inner.hub.proctoring_event(
            &self.room,
            ProctoringEvent {
                id: open.id,
                kind: check.kind().to_owned(),
                severity: check.severity().to_owned(),
                participant: open.participant,
                track: track.to_owned(),
                started_at_ms: open.started_at_ms,
                ended_at_ms: Some(at_ms),
                snapshot: open.snapshot,
            },
        );
    }

    /// Prompts the candidate when an opened check is something they can fix themselves, at
    /// most once per [`HINT_SPACING`].
    fn hint(&mut self, participant: &str, check: Check) {
        let hint = match check {
            Check::FaceAbsent => ProctoringHint::FaceNotVisible,
            Check::CameraDark => ProctoringHint::CameraDark,
            Check::CameraFrozen => ProctoringHint::CameraFrozen,
            Check::FeedLost => ProctoringHint::VideoStopped,
            Check::SideViewChanged => ProctoringHint::PhoneMoved,
            Check::MultipleFaces
            | Check::SideViewPerson
            | Check::ChecksUnavailable
            | Check::ScreenShareStopped => return,
        };
        let now = std::time::Instant::now();
        if self
            .hinted
            .get(participant)
            .is_some_and(|at| now.duration_since(*at) < HINT_SPACING)
        {
            return;
        }
        self.hinted.insert(participant.to_owned(), now);
        self.inner
            .hub
            .proctoring_hint(&self.room, participant, hint);
    }
}

/// The detector behind a check, as stored with its events (`face_detector`: the face
/// detector's name).
fn detector_of(check: Check, face_detector: &str) -> &str {
    match check {
        Check::FaceAbsent
        | Check::MultipleFaces
        | Check::SideViewPerson
        | Check::ChecksUnavailable => face_detector,
        Check::CameraDark | Check::CameraFrozen | Check::SideViewChanged => "luma-1",
        Check::FeedLost => "frames-1",
        Check::ScreenShareStopped => "signaling-1",
    }
}

/// The thresholds a check ran with, as JSON.
fn thresholds(check: Check, source: Source, config: &WatchConfig) -> String {
    let secs = |(open, close): (Duration, Duration)| serde_json::json!({ "open_after_s": open.as_secs_f32(), "close_after_s": close.as_secs_f32() });
    let phone = source == Source::Phone;
    let value = match check {
        Check::CameraDark if phone => serde_json::json!({
            "mean_below": config.side.dark_mean,
            "variance_below": config.side.dark_variance,
            "debounce": secs(config.side.dark_for),
        }),
        Check::CameraDark => serde_json::json!({
            "mean_below": config.camera.dark_mean,
            "variance_below": config.camera.dark_variance,
            "debounce": secs(config.camera.dark_for),
        }),
        Check::CameraFrozen if phone => serde_json::json!({
            "change_below": config.side.frozen_change,
            "debounce": secs(config.side.frozen_for),
        }),
        Check::CameraFrozen => serde_json::json!({
            "change_below": config.camera.frozen_change,
            "debounce": secs(config.camera.frozen_for),
        }),
        Check::FaceAbsent => serde_json::json!({
            "score": config.faces.score,
            "confirm_every_s": config.confirm_every.as_secs_f32(),
            "debounce": secs(config.camera.face_absent_for),
        }),
        Check::MultipleFaces => serde_json::json!({
            "score": config.faces.score,
            "second_face_area": config.faces.second_face_area,
            "debounce": secs(config.camera.multiple_faces_for),
        }),
        Check::FeedLost => serde_json::json!({
            "no_frames_for_s": config.feed_lost_after.as_secs_f32(),
        }),
        Check::SideViewChanged => serde_json::json!({
            "difference_above": config.side.changed_difference,
            "reference_after_s": config.side.settle.as_secs_f32(),
            "debounce": secs(config.side.changed_for),
        }),
        Check::SideViewPerson => serde_json::json!({
            "score": config.faces.score,
            "reference_after_s": config.side.settle.as_secs_f32(),
            "debounce": secs(config.side.person_for),
        }),
        Check::ChecksUnavailable => serde_json::json!({
            "calibration_s": config.camera.calibration.as_secs_f32(),
            "calibration_samples": config.camera.calibration_samples,
            "face_share_below": config.camera.calibration_share,
        }),
        Check::ScreenShareStopped => serde_json::json!({ "from": "signaling" }),
    };
    value.to_string()
}
