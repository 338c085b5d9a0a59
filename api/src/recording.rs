//! Recording interviews: consent, the recording indicator, and which tracks go to the recorder.
//!
//! When an interviewer starts recording, a controller task joins the interview's room as the
//! hidden recorder (it sees who is there and what they publish, as a participant would) and
//! decides, on every change:
//!
//! - the status every participant is shown: "waiting for consent" until everyone present has
//!   agreed (candidates consent, interviewers acknowledge; a phone counts as its candidate),
//!   then "recording"; a late joiner's media is left out until they agree;
//! - when the recording starts (the first moment everyone present has agreed): a `recordings`
//!   row and a [`Recording`] from the recorder;
//! - which tracks are recorded: every track of a participant who agreed, through a media tap.
//!
//! It stops when an interviewer stops it or the last person leaves; the recording is then
//! finished (segments joined) in the background and its row completed. An interview set to
//! record automatically gets its controller when someone takes a join token for its room.

pub(crate) mod remote;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use sightline_recorder::{ParticipantEntry, Recorder, Recording, RecordingStatus, TakeInfo};
use sightline_sfu::{Quality, TapReceiver};
use sightline_signaling::protocol::{ParticipantInfo, ServerMessage, TrackInfo};
use sightline_signaling::{Hub, RecordingNotice, RecordingState, RoomId};
use tokio::sync::mpsc;

use crate::agent::{self, Change, Controllers, RoomMirror};
use crate::error::ApiError;
use crate::handoff::RemoteSetup;
use crate::store::{Db, new_id, recordings};
use remote::RemoteRecording;

/// Packets a recorded track may queue before the tap drops (about two seconds of video).
const TAP_CAPACITY: usize = 1024;
/// How long a controller waits for someone to enter a room it was started for.
const EMPTY_ROOM_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// The recording controllers of every interview being recorded.
#[derive(Clone)]
pub struct Recordings {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: Recorder,
    hub: Hub,
    db: Db,
    /// Told to participants when they are asked to consent.
    retention_days: u32,
    /// This server's cluster node, written on the recordings it makes (`None` alone).
    node: Option<String>,
    /// Running controllers by interview id.
    running: Controllers<Control>,
    /// What this server is doing with each recording it has not finished, by recording id.
    phases: Mutex<HashMap<String, Phase>>,
    /// Set when recordings are made by workers (`workers.recording = "remote"`).
    remote: Option<Arc<RemoteSetup>>,
}

/// Where an unfinished recording stands on this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Taking media.
    Recording,
    /// Stopped: waiting for its segments to be stored, joining them, storing the files.
    Finishing,
}

enum Control {
    Consented(String),
    Stop,
    /// The recording a worker made is no longer this controller's (another node or worker
    /// has it): a new one begins.
    RecordingLost(String),
}

impl Recordings {
    /// Controllers over `recorder`, for rooms in `hub`, with rows in `db`; recordings are kept
    /// `retention_days`.
    pub fn new(
        recorder: Recorder,
        hub: Hub,
        db: Db,
        retention_days: u32,
        node: Option<String>,
        remote: Option<Arc<RemoteSetup>>,
    ) -> Recordings {
        Recordings {
            inner: Arc::new(Inner {
                recorder,
                hub,
                db,
                retention_days,
                node,
                running: Controllers::default(),
                phases: Mutex::new(HashMap::new()),
                remote,
            }),
        }
    }

    /// The counters of recordings made by workers, when they are.
    pub fn link_stats(&self) -> Option<Arc<crate::handoff::LinkStats>> {
        self.inner
            .remote
            .as_ref()
            .map(|setup| Arc::clone(&setup.stats))
    }

    /// The recorder (and its store).
    pub fn recorder(&self) -> &Recorder {
        &self.inner.recorder
    }

    /// What this server is doing with recording `id`, if it is unfinished and this server has it.
    pub fn phase(&self, recording: &str) -> Option<Phase> {
        self.inner.phase(recording)
    }

    /// Whether anything is recording, or a recording is being finished: a stopping server
    /// waits for it.
    pub fn busy(&self) -> bool {
        self.inner.running.any_running() || !self.finishing().is_empty()
    }

    /// The recordings this server is finishing (stopped, not yet stored and joined).
    pub fn finishing(&self) -> Vec<String> {
        self.inner
            .phases
            .lock()
            .map(|phases| {
                phases
                    .iter()
                    .filter(|(_, phase)| **phase == Phase::Finishing)
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether interview `id` is being recorded (or waiting for consent to be).
    pub fn is_running(&self, interview: &str) -> bool {
        self.inner.running.is_running(interview)
    }

    /// Starts recording interview `interview` on behalf of user `started_by` (nothing happens if
    /// it already is being recorded).
    pub fn start(&self, interview: &str, started_by: &str) -> Result<(), ApiError> {
        self.spawn_controller(interview, started_by, false)
    }

    /// Goes on recording `interview`, whose recording lost its room on another node (see
    /// [`carry_over`]).
    fn carry(&self, interview: &str, started_by: &str) -> Result<(), ApiError> {
        self.spawn_controller(interview, started_by, true)
    }

    fn spawn_controller(
        &self,
        interview: &str,
        started_by: &str,
        carrying: bool,
    ) -> Result<(), ApiError> {
        let Some(rx) = self.inner.running.claim(interview)? else {
            return Ok(());
        };
        let controller = Controller {
            inner: Arc::clone(&self.inner),
            interview: interview.to_owned(),
            room: RoomId(interview.to_owned()),
            started_by: started_by.to_owned(),
            room_state: RoomMirror::default(),
            consented: HashSet::new(),
            recording: None,
            taken: HashSet::new(),
            noted: HashSet::new(),
            carrying,
        };
        tokio::spawn(controller.run(rx));
        Ok(())
    }

    /// Stops recording interview `interview`; false if it was not being recorded.
    pub fn stop(&self, interview: &str) -> bool {
        self.inner.running.stop(interview, Control::Stop)
    }

    /// Participant `participant` of `interview` agreed to be recorded.
    pub fn consented(&self, interview: &str, participant: &str) {
        self.inner
            .running
            .send(interview, Control::Consented(participant.to_owned()));
    }

    /// Finishes what a previous run of the server left recording (`dirs`, from
    /// [`Recorder::unfinished`] before any recording started), and completes their rows.
    pub async fn recover(&self, dirs: Vec<std::path::PathBuf>) {
        // Spool directories are named by recording id.
        let ids: Vec<String> = dirs
            .iter()
            .filter_map(|dir| dir.file_name()?.to_str().map(str::to_owned))
            .collect();
        // A recording another node took over while this one was down is finished there.
        let mut kept = Vec::new();
        let mut ids_kept = Vec::new();
        for (id, dir) in ids.into_iter().zip(dirs) {
            if self.inner.may_recover(&id).await {
                kept.push(dir);
                ids_kept.push(id);
            } else if let Err(err) = self.inner.recorder.discard(&dir) {
                tracing::warn!(recording = %id, %err, "the spool of a recording taken over was not removed");
            } else {
                tracing::info!(recording = %id, "a recording another node took over was left to it");
            }
        }
        let (ids, dirs) = (ids_kept, kept);
        for id in &ids {
            self.inner.set_phase(id, Some(Phase::Finishing));
        }
        // One result per directory, in order.
        let results = self.inner.recorder.recover(dirs).await;
        for (id, result) in ids.iter().zip(results) {
            let updated = match result {
                Ok(manifest) => {
                    recordings::finish(
                        self.inner.db.pool(),
                        &manifest.recording,
                        status_name(manifest.status),
                        manifest.duration_ms.map(|d| d as i64),
                    )
                    .await
                }
                Err(err) => {
                    tracing::error!(recording = %id, %err, "an interrupted recording could not be finished");
                    let reason = format!(
                        "The server could not finish this recording after a restart: {err}"
                    );
                    recordings::fail(self.inner.db.pool(), id, &reason).await
                }
            };
            if let Err(err) = updated {
                tracing::error!(recording = %id, %err, "recovered recording's row not updated");
            }
            // Only now: until the row says where it stands, this server still has it.
            self.inner.set_phase(id, None);
        }
    }
}

/// `ask`'s answer, asked again with backoff (up to a minute apart) until the database gives one.
pub(crate) async fn answered<F, Fut>(id: &str, ask: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<bool, sqlx::Error>>,
{
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        match ask().await {
            Ok(answer) => return answer,
            Err(err) => {
                tracing::warn!(recording = %id, %err, retry_in = ?wait, "cannot tell whether another node took a recording over");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(60));
            }
        }
    }
}

impl Inner {
    /// Whether this server finishes recording `id` it stopped: alone, always; in a cluster,
    /// unless the room's new host took the recording over (it finishes it then). Asked until
    /// the database answers: two nodes finishing one recording would delete each other's
    /// segments, and meanwhile the spool keeps everything.
    async fn may_finish(&self, id: &str) -> bool {
        let Some(node) = &self.node else {
            return true;
        };
        answered(id, || recordings::claim_finish(self.db.pool(), id, node)).await
    }

    /// Whether this node, starting again, finishes recording `id` found in its spool (nobody
    /// took it over).
    async fn may_recover(&self, id: &str) -> bool {
        let Some(node) = &self.node else {
            return true;
        };
        answered(id, || recordings::claim_recovery(self.db.pool(), id, node)).await
    }

    fn phase(&self, recording: &str) -> Option<Phase> {
        self.phases.lock().ok()?.get(recording).copied()
    }

    fn set_phase(&self, recording: &str, phase: Option<Phase>) {
        if let Ok(mut phases) = self.phases.lock() {
            match phase {
                Some(phase) => phases.insert(recording.to_owned(), phase),
                None => phases.remove(recording),
            };
        }
    }
}

impl Recordings {
    /// What a recording's objects (`recordings/{id}/`) take in the store now.
    pub async fn measure(&self, id: &str) -> Result<sightline_recorder::Usage, ApiError> {
        let prefix = format!("recordings/{id}/");
        self.inner
            .recorder
            .store()
            .usage(&prefix)
            .await
            .map_err(|e| ApiError::Internal(format!("measuring {prefix}: {e}")))
    }

    /// Deletes a recording: every object under `recordings/{id}/`, then its row.
    pub async fn delete(&self, id: &str) -> Result<(), ApiError> {
        let store = self.inner.recorder.store();
        let prefix = format!("recordings/{id}/");
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
        recordings::delete(self.inner.db.pool(), id).await?;
        Ok(())
    }

    /// Deletes recordings that ended more than `days` days ago; returns how many.
    pub async fn expire(&self, days: u32) -> Result<usize, ApiError> {
        let cutoff = crate::store::now().saturating_sub(i64::from(days) * 86_400);
        let expired = recordings::ended_before(self.inner.db.pool(), cutoff).await?;
        // A spool still here is being finished, or will be on the next start: not yet.
        let expired: Vec<_> = expired
            .into_iter()
            .filter(|row| !self.inner.recorder.has_spool(&row.id))
            .collect();
        for row in &expired {
            self.delete(&row.id).await?;
            tracing::info!(recording = %row.id, "recording deleted after its retention period");
        }
        Ok(expired.len())
    }
}

/// In a cluster, goes on recording each room newly hosted here (`hosted`, in order) whose
/// interview's newest recording lost its room on another node (that node died, or lost the room
/// and ended its copy), under the same starter, with the consents already stored: the same
/// recording where the store is shared and that node has not begun finishing it (an
/// interruption marks the time nothing was recorded), otherwise a new one. A recording stopped
/// on purpose (a stop, the room emptied) is not carried over.
pub async fn carry_over(recordings: Recordings, mut hosted: mpsc::UnboundedReceiver<RoomId>) {
    let Some(node) = recordings.inner.node.clone() else {
        return;
    };
    let pool = recordings.inner.db.pool().clone();
    while let Some(room) = hosted.recv().await {
        let interview = room.0;
        let found = match recordings::to_carry_over(&pool, &interview, &node).await {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(%interview, %err, "looking for a recording to carry over");
                continue;
            }
        };
        let Some(lost) = found else {
            continue;
        };
        tracing::info!(%interview, recording = %lost.id, from = %lost.node, "the recording goes on here after its room moved");
        // The controller takes the recording itself over where it can (see `take_over`).
        if let Err(err) = recordings.carry(&interview, &lost.started_by) {
            tracing::warn!(%interview, %err, "could not carry a recording over");
        }
    }
}

/// Deletes recordings past their retention period, at start-up and then hourly; `days` 0
/// keeps them.
pub async fn retention(recordings: Recordings, days: u32) {
    if days == 0 {
        return;
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        if let Err(err) = recordings.expire(days).await {
            tracing::warn!(%err, "retention run failed");
        }
    }
}

pub(crate) fn status_name(status: RecordingStatus) -> &'static str {
    match status {
        RecordingStatus::Recording => "recording",
        RecordingStatus::Complete => "complete",
        RecordingStatus::Interrupted => "interrupted",
    }
}

/// What a controller beginning to record does about a recording that lost its room.
enum TakeOver {
    /// It went on with that recording.
    Resumed,
    /// It begins a new recording.
    Begin,
    /// It was started only to carry one over, which needs no carrying any more.
    GiveUp,
}

/// One interview's recording controller.
struct Controller {
    inner: Arc<Inner>,
    interview: String,
    room: RoomId,
    started_by: String,
    /// Who is in the room and what they publish.
    room_state: RoomMirror,
    /// Participant ids that agreed.
    consented: HashSet<String>,
    recording: Option<Sink>,
    /// Tracks handed to the recorder.
    taken: HashSet<String>,
    /// Who the current recording names (its participant list, joins, leaves and chat): only
    /// those who agreed, from when they agreed.
    noted: HashSet<String>,
    /// Started only to go on with a recording that lost its room.
    carrying: bool,
}

impl Controller {
    async fn run(mut self, mut control: mpsc::UnboundedReceiver<Control>) {
        let consented = recordings::consented(self.inner.db.pool(), &self.interview).await;
        self.consented = consented.unwrap_or_default().into_iter().collect();
        let session = match self.join().await {
            Ok(session) => session,
            Err(err) => {
                tracing::warn!(interview = %self.interview, %err, "recorder could not join the room");
                self.forget();
                return;
            }
        };
        let mut from_room = session.from_room;
        // Someone was here; when nobody is any more, there is nothing left to record.
        let mut attended = false;
        // The room ended under the recorder (this node died for the others, lost the room, or
        // is stopping): the room's next host goes on recording. Any other end is on purpose.
        let mut room_taken = false;
        let idle = tokio::time::sleep(EMPTY_ROOM_WAIT);
        tokio::pin!(idle);
        loop {
            // Control first: a consent queued beside that person's first chat line is taken
            // before it, so the line is recorded.
            tokio::select! {
                biased;
                control = control.recv() => match control {
                    Some(Control::Consented(participant)) => {
                        self.consented.insert(participant);
                    }
                    Some(Control::RecordingLost(id)) => {
                        if self.recording.as_ref().is_some_and(|r| r.id() == id) {
                            tracing::warn!(interview = %self.interview, recording = %id, "the recording is another's now; a new one begins");
                            self.inner.set_phase(&id, None);
                            self.recording = None;
                            self.taken.clear();
                        }
                    }
                    Some(Control::Stop) | None => break,
                },
                message = from_room.recv() => match message {
                    Some(message) => self.room_message(message),
                    None => {
                        room_taken = true;
                        break;
                    }
                },
                // Started for a room nobody entered (an automatic recording whose participant
                // never connected): give up.
                () = &mut idle, if !attended => break,
            }
            if self.room_state.participants.is_empty() {
                if attended {
                    break;
                }
                continue;
            }
            attended = true;
            if let Err(err) = self.reconcile().await {
                tracing::error!(interview = %self.interview, %err, "recording not started");
                break;
            }
        }
        // Closed, so a new start is accepted while this recording finishes.
        control.close();
        self.inner
            .hub
            .set_recording(&self.room, RecordingNotice::default());
        // Leaving the room closes the recorder's session.
        let _ = session
            .to_room
            .send(sightline_signaling::protocol::ClientMessage::Leave {});
        self.forget();
        if let Some(recording) = self.recording.take() {
            let db = self.inner.db.clone();
            let id = recording.id().to_owned();
            self.inner.set_phase(&id, Some(Phase::Finishing));
            if !room_taken
                && let Err(err) =
                    recordings::mark_stopped(db.pool(), &id, self.inner.node.as_deref()).await
            {
                tracing::warn!(recording = %id, %err, "a stopped recording was not marked stopped");
            }
            let recording = match recording {
                Sink::Here(recording) => recording,
                // Its worker decides who finishes it, as this node would, and writes the row.
                Sink::Worker(remote) => {
                    let outcome = remote.stop().await;
                    tracing::info!(recording = %id, ?outcome, "the worker's recording ended");
                    self.inner.set_phase(&id, None);
                    return;
                }
            };
            if !self.inner.may_finish(&id).await {
                // The room's new host took the recording over and finishes it.
                if let Err(err) = recording.abandon().await {
                    tracing::warn!(recording = %id, %err, "a recording taken over was not left cleanly");
                }
                tracing::info!(recording = %id, "recording left to the node that took it over");
                self.inner.set_phase(&id, None);
                return;
            }
            let stopped = recording.stop().await;
            match stopped {
                Ok(manifest) => {
                    let finished = recordings::finish(
                        db.pool(),
                        &id,
                        status_name(manifest.status),
                        manifest.duration_ms.map(|d| d as i64),
                    )
                    .await;
                    if let Err(err) = finished {
                        tracing::error!(%err, "recording row not completed");
                    }
                    tracing::info!(recording = %id, "recording finished");
                }
                Err(err) => {
                    tracing::error!(recording = %id, %err, "recording not finished");
                    let reason = format!("The server could not finish this recording: {err}");
                    if let Err(err) = recordings::fail(db.pool(), &id, &reason).await {
                        tracing::error!(%err, "failed recording's row not updated");
                    }
                }
            }
            // Only now: until the row says where it stands, this server still has it.
            self.inner.set_phase(&id, None);
        }
    }

    /// In a cluster: goes on with the interview's recording that lost its room on another node,
    /// when this node's store holds it (a shared store) and that node has not begun finishing
    /// it. Otherwise it stays that node's, marked carried over, and this node begins a new
    /// recording; but a controller started only to carry it over gives up when it turns out to
    /// have been stopped, or carried over by another node, meanwhile.
    async fn take_over(&mut self) -> Result<TakeOver, ApiError> {
        let Some(node) = self.inner.node.clone() else {
            return Ok(TakeOver::Begin);
        };
        let pool = self.inner.db.pool();
        let lost = match recordings::to_carry_over(pool, &self.interview, &node).await? {
            Some(lost) => lost,
            None if self.carrying => return Ok(TakeOver::GiveUp),
            None => return Ok(TakeOver::Begin),
        };
        let resumable = self
            .inner
            .recorder
            .resumable(&lost.id, &self.interview)
            .await;
        let taken = resumable && recordings::take_over(pool, &lost, &node).await?;
        if !taken {
            let marked = recordings::carry_over(pool, &lost.id, &node).await?;
            return Ok(if marked || !self.carrying {
                TakeOver::Begin
            } else {
                TakeOver::GiveUp
            });
        }
        if self.inner.remote.is_some() {
            // A worker resumes it from the store.
            let recording = self.remote(&lost.id).await?;
            tracing::info!(interview = %self.interview, recording = %lost.id, from = %lost.node, "recording taken over, for a worker to resume");
            self.recording_began(recording);
            return Ok(TakeOver::Resumed);
        }
        match self.inner.recorder.resume(&lost.id, &self.interview).await {
            Ok(Some(recording)) => {
                tracing::info!(interview = %self.interview, recording = %lost.id, from = %lost.node, "recording taken over");
                self.inner.set_phase(&lost.id, Some(Phase::Recording));
                self.recording_began(Sink::Here(recording));
                Ok(TakeOver::Resumed)
            }
            // Its manifest was readable a moment ago: a store failure. The recording goes back
            // to the node that lost the room (it finishes what is stored when it starts again)
            // and a new one goes on here.
            Ok(None) | Err(_) => {
                tracing::error!(recording = %lost.id, "a recording taken over could not be resumed; recording anew");
                if let Err(err) = recordings::give_back(pool, &lost, &node).await {
                    tracing::warn!(recording = %lost.id, %err, "a recording taken over was not handed back");
                }
                Ok(TakeOver::Begin)
            }
        }
    }

    /// Takes this controller out of the registry (unless a newer one replaced it).
    fn forget(&self) {
        self.inner.running.forget(&self.interview);
    }

    async fn join(&self) -> Result<sightline_signaling::Session, ApiError> {
        agent::join(&self.inner.hub, &self.room, "recorder", "Recorder").await
    }

    fn room_message(&mut self, message: ServerMessage) {
        let change = self.room_state.apply(&message);
        match &change {
            Change::Unpublished(track) => {
                self.taken.remove(&track.id);
            }
            Change::Left(_, tracks) => {
                for track in tracks {
                    self.taken.remove(&track.id);
                }
            }
            _ => {}
        }
        if self.recording.is_none() {
            return;
        }
        // Nothing of someone who has not agreed is recorded: not their name, their coming and
        // going, nor what they write in the chat (they are noted once they agree).
        match change {
            Change::Joined => self.note_agreed(true),
            Change::Left(participant, _) => {
                if self.noted.remove(&participant.identity)
                    && let Some(recording) = &self.recording
                {
                    recording.note_event("left", &participant.identity, None);
                }
            }
            Change::Unpublished(_) | Change::Snapshot | Change::Published(_) | Change::None => {}
        }
        if let ServerMessage::Chat { from, text, .. } = message
            && self.noted.contains(&from)
            && let Some(recording) = &self.recording
        {
            recording.note_event("chat", &from, Some(text));
        }
    }

    /// Notes in the current recording everyone present who agreed and is not noted yet, with a
    /// join event when they come (or agree) after it began.
    fn note_agreed(&mut self, with_join: bool) {
        let Some(recording) = &self.recording else {
            return;
        };
        for participant in self.room_state.participants.values() {
            let agreed = self.agreed(&participant.identity);
            if !agreed || !self.noted.insert(participant.identity.clone()) {
                continue;
            }
            if with_join {
                recording.note_event("joined", &participant.identity, None);
            }
            recording.note_participant(entry(participant));
        }
    }

    /// A recording begins or is taken over: it names those present who agreed.
    fn recording_began(&mut self, recording: Sink) {
        self.recording = Some(recording);
        self.noted.clear();
        self.note_agreed(false);
    }

    /// Whether a participant's media may be recorded: they agreed, or (a phone) its candidate.
    fn agreed(&self, identity: &str) -> bool {
        self.consented.contains(self.room_state.owner(identity))
    }

    /// Brings the recording in line with who is here and who agreed. Fails when the recording
    /// could not start (it is not tried again at every room message).
    async fn reconcile(&mut self) -> Result<(), ApiError> {
        let needs_consent: Vec<String> = self
            .room_state
            .participants
            .values()
            .filter(|p| p.phone_of.is_none() && !self.consented.contains(&p.identity))
            .map(|p| p.identity.clone())
            .collect();
        if self.recording.is_none()
            && needs_consent.is_empty()
            && !self.room_state.participants.is_empty()
        {
            self.begin().await?;
        }
        let state = if self.recording.is_some() {
            RecordingState::On
        } else {
            RecordingState::WaitingForConsent
        };
        self.inner.hub.set_recording(
            &self.room,
            RecordingNotice {
                state,
                needs_consent,
                retention_days: self.inner.retention_days,
            },
        );
        if self.recording.is_none() {
            return Ok(());
        }
        self.note_agreed(true);
        let due: Vec<TrackInfo> = self
            .room_state
            .tracks
            .values()
            .filter(|t| !self.taken.contains(&t.id) && self.agreed(&t.participant))
            .cloned()
            .collect();
        for track in due {
            self.take(track).await;
        }
        Ok(())
    }

    async fn begin(&mut self) -> Result<(), ApiError> {
        match self.take_over().await? {
            TakeOver::Resumed => return Ok(()),
            TakeOver::GiveUp => {
                return Err(ApiError::Conflict {
                    code: "not_carried_over",
                    message: "the recording to carry over was stopped or carried over elsewhere"
                        .into(),
                });
            }
            TakeOver::Begin => {}
        }
        let id = new_id();
        recordings::insert(
            self.inner.db.pool(),
            &id,
            &self.interview,
            &self.started_by,
            self.inner.node.as_deref(),
        )
        .await?;
        if self.inner.remote.is_some() {
            return match self.remote(&id).await {
                Ok(recording) => {
                    tracing::info!(interview = %self.interview, recording = %id, "recording started, for a worker to make");
                    self.recording_began(recording);
                    Ok(())
                }
                Err(err) => {
                    let reason = format!("The recording job could not be queued: {err}");
                    let _ = recordings::fail(self.inner.db.pool(), &id, &reason).await;
                    Err(err)
                }
            };
        }
        match self.inner.recorder.start(&id, &self.interview) {
            Ok(recording) => {
                tracing::info!(interview = %self.interview, recording = %id, "recording started");
                self.inner.set_phase(&id, Some(Phase::Recording));
                self.recording_began(Sink::Here(recording));
                Ok(())
            }
            Err(err) => {
                let _ = recordings::finish(self.inner.db.pool(), &id, "interrupted", None).await;
                Err(ApiError::Internal(format!("recorder did not start: {err}")))
            }
        }
    }

    /// Recording `id` made by a worker: its job posted, the room's participants noted.
    async fn remote(&self, id: &str) -> Result<Sink, ApiError> {
        let Some(setup) = &self.inner.remote else {
            return Err(ApiError::Internal("no recording workers".into()));
        };
        let inner = Arc::clone(&self.inner);
        let (interview, lost_id) = (self.interview.clone(), id.to_owned());
        let lost = Box::new(move || {
            inner
                .running
                .send(&interview, Control::RecordingLost(lost_id));
        });
        let recording =
            RemoteRecording::start(setup, self.inner.db.clone(), id, &self.interview, lost).await?;
        self.inner.set_phase(id, Some(Phase::Recording));
        Ok(Sink::Worker(recording))
    }

    async fn take(&mut self, track: TrackInfo) {
        let Some(recording) = &self.recording else {
            return;
        };
        match self
            .inner
            .hub
            .tap(&self.room, &track.id, Quality::High, TAP_CAPACITY)
            .await
        {
            Ok(tap) => {
                let source = serde_json::to_value(track.source)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                recording.add_take(
                    TakeInfo {
                        id: track.id.clone(),
                        participant: track.participant.clone(),
                        source,
                        codec: tap.codec(),
                    },
                    tap,
                );
                self.taken.insert(track.id);
            }
            Err(err) => tracing::debug!(track = %track.id, %err, "track not tapped"),
        }
    }
}

/// Where a controller's recording is made: in this process, or by a worker.
enum Sink {
    Here(Recording),
    Worker(RemoteRecording),
}

impl Sink {
    fn id(&self) -> &str {
        match self {
            Sink::Here(recording) => recording.id(),
            Sink::Worker(recording) => recording.id(),
        }
    }

    fn note_participant(&self, entry: ParticipantEntry) {
        match self {
            Sink::Here(recording) => recording.note_participant(entry),
            Sink::Worker(recording) => recording.note_participant(entry),
        }
    }

    fn note_event(&self, kind: &str, participant: &str, text: Option<String>) {
        match self {
            Sink::Here(recording) => recording.note_event(kind, participant, text),
            Sink::Worker(recording) => recording.note_event(kind, participant, text),
        }
    }

    fn add_take(&self, info: TakeInfo, tap: TapReceiver) {
        match self {
            Sink::Here(recording) => recording.add_take(info, tap),
            Sink::Worker(recording) => recording.add_take(info, tap),
        }
    }
}

fn entry(participant: &ParticipantInfo) -> ParticipantEntry {
    ParticipantEntry {
        identity: participant.identity.clone(),
        name: participant.name.clone(),
        role: participant.role.as_str().to_owned(),
        phone_of: participant.phone_of.clone(),
    }
}
