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

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sightline_config::CheckTimes;
use sightline_proctor::debounce::Edge;
use sightline_proctor::{Check, Detectors, Finding, Source, Watch, WatchConfig};
use sightline_recorder::ObjectStore;
use sightline_sfu::Quality;
use sightline_signaling::protocol::{ServerMessage, TrackInfo};
use sightline_signaling::{
    Hub, InterviewRole, ProctoringEvent, ProctoringHint, ProctoringNotice, RoomId, TrackSource,
};
use tokio::sync::{OnceCell, mpsc};

use crate::agent::{self, Change, RoomMirror};
use crate::error::ApiError;
use crate::store::{Db, new_id, proctoring as events};

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
    running: Mutex<HashMap<String, mpsc::UnboundedSender<Control>>>,
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
    /// faces with the models in `models_dir` (at most `detector_slots` detections at once).
    pub fn new(
        hub: Hub,
        db: Db,
        store: Arc<dyn ObjectStore>,
        models_dir: PathBuf,
        detector_slots: usize,
        times: CheckTimes,
        retention_days: u32,
    ) -> Proctoring {
        Proctoring {
            inner: Arc::new(Inner {
                hub,
                db,
                store,
                models_dir,
                detector_slots,
                detectors: OnceCell::new(),
                times,
                retention_days,
                running: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The object store snapshots are in.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    /// The face detector's name: `none` when its model could not be loaded, `not loaded yet`
    /// before the first proctored interview.
    pub fn detector(&self) -> &str {
        self.inner
            .detectors
            .get()
            .map_or("not loaded yet", |d| d.name())
    }

    /// Whether interview `id`'s checks are running.
    pub fn is_running(&self, interview: &str) -> bool {
        self.inner
            .running
            .lock()
            .map(|running| running.get(interview).is_some_and(|tx| !tx.is_closed()))
            .unwrap_or(false)
    }

    /// Starts proctoring interview `interview` (nothing happens if it runs already).
    pub fn start(&self, interview: &str) -> Result<(), ApiError> {
        let mut running = self
            .inner
            .running
            .lock()
            .map_err(|_| ApiError::Internal("proctoring registry poisoned".into()))?;
        if running.get(interview).is_some_and(|tx| !tx.is_closed()) {
            return Ok(());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        running.insert(interview.to_owned(), tx);
        let (found_tx, found_rx) = mpsc::unbounded_channel();
        let controller = Controller {
            inner: Arc::clone(&self.inner),
            interview: interview.to_owned(),
            room: RoomId(interview.to_owned()),
            mirror: RoomMirror::default(),
            consented: HashSet::new(),
            watches: HashMap::new(),
            open: HashMap::new(),
            detectors: Detectors::default(),
            hinted: HashMap::new(),
            found_tx,
        };
        tokio::spawn(controller.run(rx, found_rx));
        Ok(())
    }

    /// Stops proctoring interview `interview`; false if it was not running.
    pub fn stop(&self, interview: &str) -> bool {
        let tx = self
            .inner
            .running
            .lock()
            .ok()
            .and_then(|mut running| running.remove(interview));
        tx.is_some_and(|tx| tx.send(Control::Stop).is_ok())
    }

    /// Candidate `participant` of `interview` agreed to proctoring.
    pub fn consented(&self, interview: &str, participant: &str) {
        if let Ok(running) = self.inner.running.lock()
            && let Some(tx) = running.get(interview)
        {
            let _ = tx.send(Control::Consented(participant.to_owned()));
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
            events::delete_for(self.inner.db.pool(), &interview).await?;
            tracing::info!(%interview, "proctoring events deleted after their retention period");
            deleted += 1;
        }
        Ok(deleted)
    }
}

impl Inner {
    /// The checks' configuration for `source`: the defaults with this server's timings.
    fn config(&self, source: Source) -> WatchConfig {
        let mut config = WatchConfig::for_source(source);
        let secs = Duration::from_secs;
        let times = &self.times;
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
    watch: Watch,
    participant: String,
    source: Source,
}

/// An event that has not closed yet.
struct OpenEvent {
    id: String,
    started_at_ms: i64,
    participant: String,
}

/// One interview's proctoring controller.
struct Controller {
    inner: Arc<Inner>,
    interview: String,
    room: RoomId,
    mirror: RoomMirror,
    /// Candidates (participant ids) who agreed.
    consented: HashSet<String>,
    /// Watches by track id.
    watches: HashMap<String, Watched>,
    /// Open events by (track, check): their id, when they began, and whose stream.
    open: HashMap<(String, Check), OpenEvent>,
    /// When each candidate was last prompted about their setup.
    hinted: HashMap<String, std::time::Instant>,
    /// The face detectors (none loaded: the face checks never see an answer).
    detectors: Detectors,
    /// Where watches report, tagged with their track.
    found_tx: mpsc::UnboundedSender<(String, Finding)>,
}

impl Controller {
    async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut found: mpsc::UnboundedReceiver<(String, Finding)>,
    ) {
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
        self.detectors = detectors;
        let consented = events::consented(self.inner.db.pool(), &self.interview).await;
        self.consented = consented.unwrap_or_default().into_iter().collect();
        let session = match agent::join(&self.inner.hub, &self.room, "proctor", "Proctor").await {
            Ok(session) => session,
            Err(err) => {
                tracing::warn!(interview = %self.interview, %err, "proctor could not join the room");
                self.forget();
                return;
            }
        };
        tracing::info!(interview = %self.interview, detector = self.detectors.name(), "proctoring started");
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
                Some((track, finding)) = found.recv() => {
                    self.finding(&track, finding).await;
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
        self.inner
            .hub
            .set_proctoring(&self.room, ProctoringNotice::default());
        let _ = session
            .to_room
            .send(sightline_signaling::protocol::ClientMessage::Leave {});
        for (_, watched) in self.watches.drain() {
            watched.watch.stop();
        }
        // What the watches reported before they stopped.
        while let Ok((track, finding)) = found.try_recv() {
            self.finding(&track, finding).await;
        }
        let now = unix_ms(SystemTime::now());
        if let Err(err) = events::close_open(self.inner.db.pool(), &self.interview, now).await {
            tracing::error!(%err, "open proctoring events not closed");
        }
        self.forget();
        tracing::info!(interview = %self.interview, "proctoring stopped");
    }

    fn forget(&self) {
        if let Ok(mut running) = self.inner.running.lock()
            && running
                .get(&self.interview)
                .is_some_and(|tx| tx.is_closed())
        {
            running.remove(&self.interview);
        }
    }

    async fn room_message(&mut self, message: ServerMessage) {
        let ended = match self.mirror.apply(&message) {
            Change::Unpublished(track) => vec![track],
            Change::Left(_, tracks) => tracks,
            _ => Vec::new(),
        };
        for track in ended {
            self.track_ended(&track.id).await;
        }
    }

    /// A watched track went away (unpublished, or its publisher left): its watch stops and
    /// what was open on it ends now.
    async fn track_ended(&mut self, track: &str) {
        let Some(watched) = self.watches.remove(track) else {
            return;
        };
        drop(watched.watch);
        let now = SystemTime::now();
        let open: Vec<Check> = self
            .open
            .keys()
            .filter(|(t, _)| t == track)
            .map(|(_, check)| *check)
            .collect();
        for check in open {
            self.finding(
                track,
                Finding {
                    check,
                    edge: Edge::Closed { at: Duration::ZERO },
                    at: now,
                    snapshot: None,
                    peak: None,
                },
            )
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
        let due: Vec<TrackInfo> = self
            .mirror
            .tracks
            .values()
            .filter(|t| {
                matches!(t.source, TrackSource::Camera | TrackSource::SecondaryCamera)
                    && !self.watches.contains_key(&t.id)
                    && self.checked(&t.participant)
            })
            .cloned()
            .collect();
        for track in due {
            self.watch(track).await;
        }
    }

    async fn watch(&mut self, track: TrackInfo) {
        // A paired phone publishes its camera as the candidate's second camera: its side view.
        let is_phone = track.source == TrackSource::SecondaryCamera
            || self
                .mirror
                .participants
                .get(&track.participant)
                .is_some_and(|p| p.phone_of.is_some());
        let source = if is_phone {
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
                return;
            }
        };
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
                return;
            }
        };
        let forward = self.found_tx.clone();
        let track_id = track.id.clone();
        tokio::spawn(async move {
            while let Some(finding) = rx.recv().await {
                if forward.send((track_id.clone(), finding)).is_err() {
                    break;
                }
            }
        });
        let owner = self.mirror.owner(&track.participant).to_owned();
        tracing::info!(track = %track.id, participant = %owner, ?source, "watching");
        self.watches.insert(
            track.id,
            Watched {
                watch,
                participant: owner,
                source,
            },
        );
    }

    async fn finding(&mut self, track: &str, finding: Finding) {
        let at = unix_ms(finding.at);
        match finding.edge {
            Edge::Opened { .. } => self.opened(track, finding, at).await,
            Edge::Closed { .. } => {
                let Some(open) = self.open.remove(&(track.to_owned(), finding.check)) else {
                    return;
                };
                let peak = finding.peak.map(f64::from);
                if let Err(err) = events::close(self.inner.db.pool(), &open.id, at, peak).await {
                    tracing::error!(%err, "proctoring event not closed");
                }
                self.inner.hub.proctoring_event(
                    &self.room,
                    ProctoringEvent {
                        id: open.id,
                        kind: finding.check.kind().to_owned(),
                        severity: finding.check.severity().to_owned(),
                        participant: open.participant,
                        track: track.to_owned(),
                        started_at_ms: open.started_at_ms,
                        ended_at_ms: Some(at),
                        snapshot: true,
                    },
                );
            }
        }
    }

    async fn opened(&mut self, track: &str, finding: Finding, at: i64) {
        let id = new_id();
        let (participant, source) = match self.watches.get(track) {
            Some(w) => (w.participant.clone(), w.source),
            None => return,
        };
        let mut snapshots = 0;
        if let Some(jpeg) = finding.snapshot {
            let key = snapshot_key(&self.interview, &id, 0);
            match self.inner.store.put_bytes(&key, jpeg).await {
                Ok(()) => snapshots = 1,
                Err(err) => tracing::warn!(%err, "proctoring snapshot not stored"),
            }
        }
        // `checks_unavailable` is a statement, not a span: it ends as it begins.
        let instant = finding.check == Check::ChecksUnavailable;
        let thresholds = thresholds(finding.check, &self.inner.config(source));
        let source_name = match source {
            Source::Camera => "camera",
            Source::Phone => "phone",
        };
        let stored = events::insert(
            self.inner.db.pool(),
            &events::NewEvent {
                id: &id,
                interview_id: &self.interview,
                participant_id: &participant,
                track_id: track,
                source: source_name,
                kind: finding.check.kind(),
                severity: finding.check.severity(),
                started_at_ms: at,
                ended_at_ms: instant.then_some(at),
                detector: detector_of(finding.check, &self.detectors),
                thresholds: &thresholds,
                snapshots,
            },
        )
        .await;
        if let Err(err) = stored {
            tracing::error!(%err, "proctoring event not stored");
            return;
        }
        tracing::info!(interview = %self.interview, kind = finding.check.kind(), %track, "proctoring event");
        self.hint(&participant, finding.check);
        if !instant {
            self.open.insert(
                (track.to_owned(), finding.check),
                OpenEvent {
                    id: id.clone(),
                    started_at_ms: at,
                    participant: participant.clone(),
                },
            );
        }
        self.inner.hub.proctoring_event(
            &self.room,
            ProctoringEvent {
                id,
                kind: finding.check.kind().to_owned(),
                severity: finding.check.severity().to_owned(),
                participant,
                track: track.to_owned(),
                started_at_ms: at,
                ended_at_ms: instant.then_some(at),
                snapshot: snapshots > 0,
            },
        );
    }
}

impl Controller {
    /// Prompts the candidate when an opened check is something they can fix themselves, at
    /// most once per [`HINT_SPACING`].
    fn hint(&mut self, participant: &str, check: Check) {
        let hint = match check {
            Check::FaceAbsent => ProctoringHint::FaceNotVisible,
            Check::CameraDark => ProctoringHint::CameraDark,
            Check::CameraFrozen => ProctoringHint::CameraFrozen,
            Check::FeedLost => ProctoringHint::VideoStopped,
            Check::SideViewChanged => ProctoringHint::PhoneMoved,
            Check::MultipleFaces | Check::SideViewPerson | Check::ChecksUnavailable => return,
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

/// The detector behind a check, as stored with its events.
fn detector_of(check: Check, detectors: &Detectors) -> &str {
    match check {
        Check::FaceAbsent
        | Check::MultipleFaces
        | Check::SideViewPerson
        | Check::ChecksUnavailable => detectors.name(),
        Check::CameraDark | Check::CameraFrozen | Check::SideViewChanged => "luma-1",
        Check::FeedLost => "frames-1",
    }
}

/// The thresholds a check ran with, as JSON.
fn thresholds(check: Check, config: &WatchConfig) -> String {
    let secs = |(open, close): (Duration, Duration)| serde_json::json!({ "open_after_s": open.as_secs_f32(), "close_after_s": close.as_secs_f32() });
    let value = match check {
        Check::CameraDark => serde_json::json!({
            "mean_below": config.camera.dark_mean,
            "variance_below": config.camera.dark_variance,
            "debounce": secs(config.camera.dark_for),
        }),
        Check::CameraFrozen => serde_json::json!({
            "change_below": config.camera.frozen_change,
            "debounce": secs(config.camera.frozen_for),
        }),
        Check::FaceAbsent => serde_json::json!({
            "score": config.faces.score,
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
            "debounce": secs(config.side.changed_for),
        }),
        Check::SideViewPerson => serde_json::json!({
            "score": config.faces.score,
            "debounce": secs(config.side.person_for),
        }),
        Check::ChecksUnavailable => serde_json::json!({
            "calibration_s": config.camera.calibration.as_secs_f32(),
            "face_share_below": config.camera.calibration_share,
        }),
    };
    value.to_string()
}
