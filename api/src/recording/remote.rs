//! Recording through a `sightline worker`: the node hosting the room keeps the controller
//! (consent, who is recorded) and hands the media to a worker over the link.
//!
//! A [`RemoteRecording`] posts a job on the cluster's work queue and runs one task for it,
//! which waits for the worker that took the job to connect with its token and then feeds it:
//! who is in the room, the timeline's events, one link stream per tapped track, and the stop.
//! The worker records into the shared store and writes the recording's row; the node only
//! learns how it ended.
//!
//! When the worker's connection goes, the task keeps the taps (their bounded queues drop
//! meanwhile) and waits for the job's next worker, which JetStream hands the job to once the
//! dead one stopped renewing it; that worker resumes the recording from the store, the time
//! between marked as an interruption. While no worker is connected the task reads the
//! recording's row: a recording another node took over, or a worker finished on its own,
//! is no longer this controller's, which then begins a new one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sightline_cluster::{Posted, RecordingJob};
use sightline_link::{Expected, HostLink};
use sightline_recorder::{ParticipantEntry, TakeInfo};
use sightline_sfu::TapReceiver;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::handoff::{RemoteSetup, forward};
use crate::store::recordings::UnlessWorker;
use crate::store::{Db, recordings};

/// How often the row is read while no worker is connected.
const ROW_CHECK: Duration = Duration::from_secs(2);
/// Timeline events kept for a worker while none is connected (a chat during a worker's gap).
const HELD_EVENTS: usize = 1000;

/// What the node tells the worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ToWorker {
    /// Everyone the recording has seen so far (first, and again to a new worker).
    Participants {
        /// Identities, names, roles.
        participants: Vec<ParticipantEntry>,
    },
    /// Someone new.
    Participant {
        /// Who.
        entry: ParticipantEntry,
    },
    /// A join, leave or chat line for the timeline.
    Event {
        /// `joined`, `left`, `chat`.
        kind: String,
        /// Whose.
        participant: String,
        /// A chat line's text.
        text: Option<String>,
    },
    /// Stop recording and finish.
    Stop,
}

/// What the worker tells the node.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ToNode {
    /// It records (a new recording, or one resumed from the store).
    Recording {
        /// Whether it went on with stored takes.
        resumed: bool,
    },
    /// It finished the recording and completed its row.
    Finished,
    /// It could not finish the recording; its row says why.
    Failed,
    /// Another node or worker has the recording now; this worker left it.
    Abandoned,
}

/// How a recording handed to workers ended for this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Finished by its worker (the row says how).
    Finished,
    /// Failed (the row says why).
    Failed,
    /// A worker finished it on its own (it lost this node): the controller records anew.
    Lost,
    /// Another node took it over (its room moved there): this node records it no more.
    Moved,
}

enum Command {
    Participant(ParticipantEntry),
    Event {
        kind: String,
        participant: String,
        text: Option<String>,
    },
    Take(TakeInfo, TapReceiver),
    Stop,
}

/// One recording a worker makes of a room this node hosts.
pub(crate) struct RemoteRecording {
    id: String,
    commands: mpsc::UnboundedSender<Command>,
    outcome: oneshot::Receiver<Outcome>,
}

impl RemoteRecording {
    /// Posts the job of recording `id` of `interview` (its row exists) and starts feeding
    /// whichever worker takes it. `lost` is called if the recording turns out to be another
    /// node's or worker's before it was stopped.
    pub(crate) async fn start(
        setup: &Arc<RemoteSetup>,
        db: Db,
        id: &str,
        interview: &str,
        lost: Box<dyn FnOnce() + Send>,
    ) -> Result<RemoteRecording, ApiError> {
        let (token, expected) = setup
            .listener
            .expect::<ToWorker, ToNode>()
            .map_err(|err| ApiError::Internal(err.to_string()))?;
        let job = RecordingJob {
            recording: id.to_owned(),
            interview: interview.to_owned(),
            node: setup.node.clone(),
            link_addr: setup.link_addr,
            link_name: setup.link_name.clone(),
            token: token.expose().to_owned(),
        };
        let posted = setup.queue.post(&job).await.map_err(|err| {
            tracing::error!(recording = %id, %err, "the recording job could not be queued");
            ApiError::Unavailable("the recording job could not be queued")
        })?;
        setup.stats.jobs_posted.fetch_add(1, Ordering::Relaxed);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (outcome_tx, outcome) = oneshot::channel();
        let task = LinkTask {
            id: id.to_owned(),
            db,
            setup: Arc::clone(setup),
            posted,
            expected,
            commands: commands_rx,
            participants: Vec::new(),
            events: VecDeque::new(),
            idle: Vec::new(),
            stopping: false,
            stopped_at: None,
            connected: false,
            closed: false,
        };
        tokio::spawn(async move {
            let ended = task.run().await;
            if let Some((outcome, stopping)) = ended {
                if outcome == Outcome::Lost && !stopping {
                    lost();
                }
                let _ = outcome_tx.send(outcome);
            }
        });
        Ok(RemoteRecording {
            id: id.to_owned(),
            commands,
            outcome,
        })
    }

    /// The recording's id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Someone is in the recording.
    pub(crate) fn note_participant(&self, entry: ParticipantEntry) {
        let _ = self.commands.send(Command::Participant(entry));
    }

    /// Something happened on the timeline.
    pub(crate) fn note_event(&self, kind: &str, participant: &str, text: Option<String>) {
        let _ = self.commands.send(Command::Event {
            kind: kind.to_owned(),
            participant: participant.to_owned(),
            text,
        });
    }

    /// Records a track from its tap.
    pub(crate) fn add_take(&self, info: TakeInfo, tap: TapReceiver) {
        let _ = self.commands.send(Command::Take(info, tap));
    }

    /// Stops recording; resolves once the worker finished the recording (or it failed, or
    /// another node or worker has it).
    pub(crate) async fn stop(self) -> Outcome {
        let _ = self.commands.send(Command::Stop);
        self.outcome.await.unwrap_or(Outcome::Lost)
    }
}

/// How one worker connection ended.
enum Served {
    /// The recording ended.
    Done(Outcome),
    /// The connection went; the job's next worker goes on.
    Gone,
}

struct LinkTask {
    id: String,
    db: Db,
    setup: Arc<RemoteSetup>,
    posted: Posted,
    expected: Expected<ToWorker, ToNode>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Everyone noted so far, for each new worker.
    participants: Vec<ParticipantEntry>,
    /// Events noted while no worker was connected.
    events: VecDeque<ToWorker>,
    /// Taps waiting for a worker.
    idle: Vec<(TakeInfo, TapReceiver)>,
    stopping: bool,
    /// When it was stopped with no worker connected.
    stopped_at: Option<tokio::time::Instant>,
    /// Whether a worker ever connected.
    connected: bool,
    /// The controller dropped its handle.
    closed: bool,
}

impl LinkTask {
    /// Runs until the recording ended for this node; `None` if the controller went away
    /// without stopping it (the job is withdrawn). Returns whether it was being stopped.
    async fn run(mut self) -> Option<(Outcome, bool)> {
        let outcome = 'recording: loop {
            let mut check = tokio::time::interval(ROW_CHECK);
            check.tick().await;
            let link = loop {
                tokio::select! {
                    link = self.expected.next() => match link {
                        Some(link) => break link,
                        None => break 'recording Outcome::Lost,
                    },
                    command = self.commands.recv() => {
                        let Some(command) = command else {
                            self.withdraw().await;
                            return None;
                        };
                        self.hold(command);
                        if self.stopping
                            && !self.connected
                            && let Some(outcome) = self.stop_unclaimed().await
                        {
                            break 'recording outcome;
                        }
                    }
                    _ = check.tick() => {
                        if let Some(outcome) = self.check_row().await {
                            break 'recording outcome;
                        }
                        if let Some(outcome) = self.stopped_without_worker().await {
                            break 'recording outcome;
                        }
                    }
                }
            };
            match self.serve(link).await {
                Served::Done(outcome) => break outcome,
                Served::Gone => {
                    tracing::warn!(recording = %self.id, "the recording's worker is gone; waiting for the job's next worker");
                }
            }
        };
        if outcome != Outcome::Finished {
            self.withdraw().await;
        }
        Some((outcome, self.stopping))
    }

    /// Keeps what the controller sends while no worker is connected.
    fn hold(&mut self, command: Command) {
        match command {
            Command::Participant(entry) => self.note(entry),
            Command::Event {
                kind,
                participant,
                text,
            } => {
                if self.events.len() == HELD_EVENTS {
                    self.events.pop_front();
                }
                self.events.push_back(ToWorker::Event {
                    kind,
                    participant,
                    text,
                });
            }
            Command::Take(info, tap) => self.idle.push((info, tap)),
            Command::Stop => {
                self.stopping = true;
                self.stopped_at = Some(tokio::time::Instant::now());
            }
        }
    }

    /// Stopped, its worker gone, and no worker came back for the job within three of its
    /// ack waits (no worker runs): the recording fails, saying so, unless a worker is
    /// finishing it. What was stored stays with it.
    async fn stopped_without_worker(&self) -> Option<Outcome> {
        let stopped_at = self.stopped_at?;
        let wait = self.setup.ack_wait * 3 + Duration::from_secs(30);
        if stopped_at.elapsed() < wait {
            return None;
        }
        let reason = "Its recording worker was lost and no other worker finished it; \
                      what was stored is kept.";
        self.fail_without_worker(reason, UnlessWorker::Finishing)
            .await
    }

    fn note(&mut self, entry: ParticipantEntry) {
        match self
            .participants
            .iter_mut()
            .find(|known| known.identity == entry.identity)
        {
            Some(known) => *known = entry,
            None => self.participants.push(entry),
        }
    }

    /// Feeds one worker until the recording ends or the worker goes.
    async fn serve(&mut self, link: HostLink<ToWorker, ToNode>) -> Served {
        self.connected = true;
        let stats = Arc::clone(&self.setup.stats);
        stats.workers_connected.fetch_add(1, Ordering::Relaxed);
        let HostLink { mut control, takes } = link;
        tracing::info!(recording = %self.id, "a worker records");
        let mut catch_up = vec![ToWorker::Participants {
            participants: self.participants.clone(),
        }];
        catch_up.extend(self.events.drain(..));
        let stop = CancellationToken::new();
        let detach = CancellationToken::new();
        let mut forwarders = JoinSet::new();
        for (info, tap) in self.idle.drain(..) {
            forwarders.spawn(forward(
                takes.clone(),
                info,
                tap,
                stop.clone(),
                detach.clone(),
            ));
        }
        if self.stopping {
            stop.cancel();
            catch_up.push(ToWorker::Stop);
        }
        for message in &catch_up {
            // A failed send shows as the link's end below.
            if let Err(err) = control.sender.send(message).await {
                tracing::debug!(recording = %self.id, %err, "catching a worker up");
            }
        }
        let served = loop {
            tokio::select! {
                command = self.commands.recv(), if !self.closed => {
                    let message = match command {
                        Some(Command::Participant(entry)) => {
                            self.note(entry.clone());
                            ToWorker::Participant { entry }
                        }
                        Some(Command::Event { kind, participant, text }) => {
                            ToWorker::Event { kind, participant, text }
                        }
                        Some(Command::Take(info, tap)) => {
                            if !self.stopping {
                                forwarders.spawn(forward(
                                    takes.clone(),
                                    info,
                                    tap,
                                    stop.clone(),
                                    detach.clone(),
                                ));
                            }
                            continue;
                        }
                        // The controller went without a stop: stop.
                        Some(Command::Stop) | None => {
                            self.closed |= command.is_none();
                            self.stopping = true;
                            self.stopped_at = Some(tokio::time::Instant::now());
                            stop.cancel();
                            ToWorker::Stop
                        }
                    };
                    // A failed send shows as the link's end below.
                    let _ = control.sender.send(&message).await;
                }
                said = control.receiver.recv() => match said {
                    Ok(Some(ToNode::Recording { resumed })) => {
                        tracing::info!(recording = %self.id, resumed, "the worker is recording");
                    }
                    Ok(Some(ToNode::Finished)) => break Served::Done(Outcome::Finished),
                    Ok(Some(ToNode::Failed)) => break Served::Done(Outcome::Failed),
                    Ok(Some(ToNode::Abandoned)) => break Served::Done(Outcome::Lost),
                    Ok(None) | Err(_) => break Served::Gone,
                },
                why = takes.closed() => {
                    tracing::info!(recording = %self.id, %why, "the worker's link closed");
                    break Served::Gone;
                }
                Some(returned) = forwarders.join_next() => {
                    // A take whose stream failed on a link that lives: the next worker gets it.
                    if let Ok(Some(take)) = returned {
                        self.idle.push(take);
                    }
                }
            }
        };
        stats.workers_connected.fetch_sub(1, Ordering::Relaxed);
        match served {
            Served::Done(_) => {
                stop.cancel();
                takes.close();
            }
            Served::Gone => {
                stats.workers_lost.fetch_add(1, Ordering::Relaxed);
                detach.cancel();
            }
        }
        while let Some(returned) = forwarders.join_next().await {
            if let Ok(Some(take)) = returned {
                self.idle.push(take);
            }
        }
        served
    }

    /// Stopped before any worker connected: the job is withdrawn and the recording fails,
    /// unless a worker claimed it meanwhile (it connects, and is told to stop).
    async fn stop_unclaimed(&mut self) -> Option<Outcome> {
        self.withdraw().await;
        let reason = "No recording worker took this recording before it was stopped.";
        self.fail_without_worker(reason, UnlessWorker::Claimed)
            .await
    }

    /// Fails the recording for want of a worker with `reason`, unless `unless` holds.
    async fn fail_without_worker(&self, reason: &str, unless: UnlessWorker) -> Option<Outcome> {
        match recordings::fail_without_worker(self.db.pool(), &self.id, reason, unless).await {
            Ok(true) => {
                self.setup
                    .stats
                    .without_worker
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(recording = %self.id, ?unless, "the recording failed for want of a worker");
                Some(Outcome::Failed)
            }
            Ok(false) => None,
            Err(err) => {
                tracing::warn!(recording = %self.id, %err, "cannot tell whether a worker has the recording");
                None
            }
        }
    }

    /// While no worker is connected: whether the recording is still this node's to feed.
    async fn check_row(&self) -> Option<Outcome> {
        let holder = match recordings::holder(self.db.pool(), &self.id).await {
            Ok(Some(holder)) => holder,
            // Deleted: nothing left to record into.
            Ok(None) => return Some(Outcome::Lost),
            Err(err) => {
                tracing::debug!(recording = %self.id, %err, "recording row unreadable");
                return None;
            }
        };
        if holder.status != "recording" {
            return Some(match (self.stopping, holder.status.as_str()) {
                (true, "failed") => Outcome::Failed,
                (true, _) => Outcome::Finished,
                (false, _) => Outcome::Lost,
            });
        }
        if holder.node.as_deref() != Some(self.setup.node.as_str()) {
            return Some(Outcome::Moved);
        }
        if !self.stopping && holder.finisher.is_some() {
            // A worker that lost this node is finishing it on its own.
            return Some(Outcome::Lost);
        }
        None
    }

    async fn withdraw(&self) {
        if let Err(err) = self.setup.queue.withdraw(self.posted).await {
            tracing::warn!(recording = %self.id, %err, "a recording job was not withdrawn");
        }
    }
}
