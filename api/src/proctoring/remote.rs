//! Proctoring checks in a `sightline worker`: the node hosting the room keeps the controller
//! (consent, what is watched, the events, the snapshots) and hands the decoding and the
//! detectors to a worker over the link.
//!
//! [`RemoteChecks`] posts a proctoring job on the cluster's work queue and runs one task for
//! it, which waits for the worker that took the job to connect with its token, tells it the
//! check times, and opens one link stream per watched camera. The worker reports what opened
//! and closed; the task hands that to the controller as if it were found here.
//!
//! A worker that goes is stated to the controller for every camera it was checking
//! ([`Report::Interrupted`]: a neutral `checks_unavailable`, never a flag against the
//! candidate), the taps are kept, and the job's next worker (JetStream hands the job on once
//! the lost one stops renewing it) starts the checks again. A camera nobody checks for an ack
//! wait, because no worker came, is stated the same way.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use sightline_cluster::{Posted, ProctoringJob};
use sightline_config::CheckTimes;
use sightline_link::{Expected, HostLink};
use sightline_proctor::debounce::Edge;
use sightline_proctor::{Check, Finding, Source};
use sightline_recorder::TakeInfo;
use sightline_sfu::TapReceiver;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::handoff::{RemoteSetup, forward};

/// How long a stopping node waits for its worker to say everything it found.
const STOP_WITHIN: Duration = Duration::from_secs(5);
/// How long a job the queue refused waits before it is posted again.
const POST_RETRY: Duration = Duration::from_secs(5);
/// How often the task looks for cameras nobody has checked for too long (no worker came).
const WAITING_CHECK: Duration = Duration::from_secs(1);

/// What the node tells the worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ToChecker {
    /// Check the cameras the node sends with these times (first, and again to a new worker).
    Begin {
        /// How long conditions must last.
        times: CheckTimes,
    },
    /// Stop checking; say what was found and then `stopped`.
    Stop,
}

/// What the worker tells the node.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum FromChecker {
    /// It checks, with this face detector (`none` when its models could not be loaded).
    Checking {
        /// As stored with the events.
        detector: String,
    },
    /// A check on a camera opened or closed.
    Found {
        /// The camera's take id (its track id).
        take: String,
        /// What.
        finding: WireFinding,
    },
    /// A camera cannot be checked (not decodable, or its decoder stopped).
    Unwatchable {
        /// The camera's take id.
        take: String,
        /// Why, for the event.
        reason: String,
    },
    /// Stopped: everything found was said.
    Stopped,
}

/// A [`Finding`] as the link carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WireFinding {
    /// The check's event kind.
    check: String,
    /// Opened, or closed.
    opened: bool,
    /// The wall-clock time of the edge, in milliseconds since the Unix epoch.
    at_ms: i64,
    /// The snapshot of an opening (JPEG), in base64.
    snapshot: Option<String>,
    /// The strongest evidence while it was open, on closing.
    peak: Option<f32>,
}

impl WireFinding {
    pub(crate) fn of(finding: &Finding) -> WireFinding {
        WireFinding {
            check: finding.check.kind().to_owned(),
            opened: matches!(finding.edge, Edge::Opened { .. }),
            at_ms: finding
                .at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            snapshot: finding.snapshot.as_deref().map(|jpeg| BASE64.encode(jpeg)),
            peak: finding.peak,
        }
    }

    /// The finding; `None` for a check this node does not know or a bad snapshot.
    fn finding(self) -> Option<Finding> {
        let check = Check::from_kind(&self.check)?;
        let snapshot = match self.snapshot {
            Some(encoded) => Some(BASE64.decode(encoded).ok()?),
            None => None,
        };
        // The controller uses the wall-clock time; the watch's session offset stays behind.
        let edge = if self.opened {
            Edge::Opened { at: Duration::ZERO }
        } else {
            Edge::Closed { at: Duration::ZERO }
        };
        Some(Finding {
            check,
            edge,
            at: UNIX_EPOCH + Duration::from_millis(u64::try_from(self.at_ms).ok()?),
            snapshot,
            peak: self.peak,
        })
    }
}

/// What the checks tell the controller, wherever they run.
#[derive(Debug)]
pub(crate) enum Report {
    /// A check on a watched track opened or closed.
    Found(String, Finding),
    /// The worker checking this room uses this detector.
    Detector(String),
    /// A watched track is not being checked for now (its worker was lost, or none came): what
    /// was open on it ends, and that is stated.
    Interrupted {
        /// The track.
        track: String,
        /// Why, for the event.
        reason: &'static str,
    },
}

/// How a camera the controller watched through a worker ended there: set once, with why.
pub(crate) type Ended = Arc<OnceLock<String>>;

enum Command {
    Watch {
        track: String,
        participant: String,
        source: Source,
        tap: TapReceiver,
        ended: Ended,
    },
    Unwatch(String),
    Stop(oneshot::Sender<()>),
}

/// The checks of one proctored room, made by workers.
pub(crate) struct RemoteChecks {
    commands: mpsc::UnboundedSender<Command>,
}

/// A camera watched through a worker; dropping it stops the watch.
pub(crate) struct RemoteWatch {
    track: String,
    commands: mpsc::UnboundedSender<Command>,
    ended: Ended,
}

impl RemoteWatch {
    /// Why the worker stopped checking it, once it did.
    pub(crate) fn ended(&self) -> Option<&str> {
        self.ended.get().map(String::as_str)
    }
}

impl Drop for RemoteWatch {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Unwatch(self.track.clone()));
    }
}

impl RemoteChecks {
    /// Starts checking `interview`'s cameras through workers: a task posts the job (again
    /// while the queue cannot take it) and feeds whichever worker takes it; what it finds goes
    /// to `reports`.
    pub(crate) fn start(
        setup: &Arc<RemoteSetup>,
        interview: &str,
        times: CheckTimes,
        reports: mpsc::UnboundedSender<Report>,
    ) -> RemoteChecks {
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let task = ChecksTask {
            interview: interview.to_owned(),
            setup: Arc::clone(setup),
            job: None,
            next_post: tokio::time::Instant::now(),
            waiting_since: tokio::time::Instant::now(),
            commands: commands_rx,
            reports,
            times,
            watches: HashMap::new(),
        };
        tokio::spawn(task.run());
        RemoteChecks { commands }
    }

    /// Has `track` (of `participant`, seen as `source`) checked from its tap.
    pub(crate) fn watch(
        &self,
        track: &str,
        participant: &str,
        source: Source,
        tap: TapReceiver,
    ) -> RemoteWatch {
        let ended = Ended::default();
        let _ = self.commands.send(Command::Watch {
            track: track.to_owned(),
            participant: participant.to_owned(),
            source,
            tap,
            ended: Arc::clone(&ended),
        });
        RemoteWatch {
            track: track.to_owned(),
            commands: self.commands.clone(),
            ended,
        }
    }

    /// Stops the checks; resolves once the worker said everything it found (or went, or took
    /// too long), its reports sent on.
    pub(crate) async fn stop(self) {
        let (done, stopped) = oneshot::channel();
        if self.commands.send(Command::Stop(done)).is_ok() {
            let _ = stopped.await;
        }
    }
}

/// A camera the task feeds to workers.
struct Watched {
    participant: String,
    source: Source,
    /// Its tap, while no worker has it.
    tap: Option<TapReceiver>,
    ended: Ended,
    /// Ends its stream to the worker (the controller stopped watching it).
    unwatch: CancellationToken,
    /// Since when nobody checks it, and whether that was stated already.
    unchecked_since: tokio::time::Instant,
    stated: bool,
}

/// How one worker connection ended.
enum Served {
    /// The checks stopped.
    Stopped(oneshot::Sender<()>),
    /// The worker went; the job's next worker goes on.
    Gone,
    /// The controller went.
    Closed,
}

/// A posted job, and the connections that present its token.
type PostedJob = (Posted, Expected<ToChecker, FromChecker>);

struct ChecksTask {
    interview: String,
    setup: Arc<RemoteSetup>,
    /// The job workers take; `None` while it could not be posted.
    job: Option<PostedJob>,
    /// When posting is tried again, while it fails.
    next_post: tokio::time::Instant,
    /// Since when no worker has been connected (the job posted, or its last worker gone).
    waiting_since: tokio::time::Instant,
    commands: mpsc::UnboundedReceiver<Command>,
    reports: mpsc::UnboundedSender<Report>,
    times: CheckTimes,
    watches: HashMap<String, Watched>,
}

impl ChecksTask {
    async fn run(mut self) {
        let done = 'checks: loop {
            let mut waiting = tokio::time::interval(WAITING_CHECK);
            let link = loop {
                if self.job.is_none() && tokio::time::Instant::now() >= self.next_post {
                    self.post().await;
                }
                tokio::select! {
                    link = next_link(&mut self.job) => match link {
                        Some(link) => break link,
                        None => break 'checks None,
                    },
                    command = self.commands.recv() => match command {
                        Some(Command::Watch { track, participant, source, tap, ended }) => {
                            self.add(track, participant, source, Some(tap), ended);
                        }
                        Some(Command::Unwatch(track)) => {
                            self.watches.remove(&track);
                        }
                        Some(Command::Stop(done)) => break 'checks Some(done),
                        None => break 'checks None,
                    },
                    _ = waiting.tick() => {
                        self.state_unchecked();
                        self.repost_if_forgotten().await;
                    }
                }
            };
            match self.serve(link).await {
                Served::Stopped(done) => break Some(done),
                Served::Closed => break None,
                Served::Gone => {
                    self.waiting_since = tokio::time::Instant::now();
                    tracing::warn!(interview = %self.interview, "the proctoring worker is gone; waiting for the job's next worker");
                }
            }
        };
        self.withdraw().await;
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    /// Posts the job with a fresh token; on failure it stays unposted (and is tried again).
    async fn post(&mut self) {
        let (token, expected) = match self.setup.listener.expect::<ToChecker, FromChecker>() {
            Ok(expected) => expected,
            Err(err) => {
                tracing::warn!(interview = %self.interview, %err, "no link token for the proctoring job");
                return;
            }
        };
        let job = ProctoringJob {
            interview: self.interview.clone(),
            node: self.setup.node.clone(),
            link_addr: self.setup.link_addr,
            link_name: self.setup.link_name.clone(),
            token: token.expose().to_owned(),
        };
        match self.setup.queue.post(&job).await {
            Ok(posted) => {
                self.setup
                    .stats
                    .proctoring_jobs_posted
                    .fetch_add(1, Ordering::Relaxed);
                self.job = Some((posted, expected));
                self.waiting_since = tokio::time::Instant::now();
            }
            Err(err) => {
                self.next_post = tokio::time::Instant::now() + POST_RETRY;
                tracing::warn!(interview = %self.interview, %err, "the proctoring job could not be queued; trying again");
            }
        }
    }

    /// A job no worker has connected for in three ack waits and half a minute was dropped by
    /// the workers (its node looked unreachable too often) or lost: it is withdrawn and posted
    /// anew, with a new token.
    async fn repost_if_forgotten(&mut self) {
        let forgotten = self.setup.ack_wait * 3 + Duration::from_secs(30);
        if self.job.is_some() && self.waiting_since.elapsed() >= forgotten {
            tracing::warn!(interview = %self.interview, "no worker came for the proctoring job; posting it again");
            self.withdraw().await;
            self.job = None;
        }
    }

    async fn withdraw(&self) {
        if let Some((posted, _)) = &self.job
            && let Err(err) = self.setup.queue.withdraw(*posted).await
        {
            tracing::warn!(interview = %self.interview, %err, "a proctoring job was not withdrawn");
        }
    }

    fn add(
        &mut self,
        track: String,
        participant: String,
        source: Source,
        tap: Option<TapReceiver>,
        ended: Ended,
    ) {
        self.watches.insert(
            track,
            Watched {
                participant,
                source,
                tap,
                ended,
                unwatch: CancellationToken::new(),
                unchecked_since: tokio::time::Instant::now(),
                stated: false,
            },
        );
    }

    /// Cameras no worker has checked for an ack wait (no worker came for the job): stated
    /// once each.
    fn state_unchecked(&mut self) {
        let wait = self.setup.ack_wait;
        for (track, watched) in &mut self.watches {
            if !watched.stated && watched.unchecked_since.elapsed() >= wait {
                watched.stated = true;
                let _ = self.reports.send(Report::Interrupted {
                    track: track.clone(),
                    reason: "no proctoring worker took the checks",
                });
            }
        }
    }

    /// Feeds one worker until the checks stop or the worker goes.
    async fn serve(&mut self, link: HostLink<ToChecker, FromChecker>) -> Served {
        let HostLink { mut control, takes } = link;
        tracing::info!(interview = %self.interview, "a worker checks the proctored cameras");
        let stats = Arc::clone(&self.setup.stats);
        stats
            .proctoring_workers_connected
            .fetch_add(1, Ordering::Relaxed);
        let detach = CancellationToken::new();
        let mut forwarders: JoinSet<Option<(TakeInfo, TapReceiver)>> = JoinSet::new();
        let feed = |track: &str, watched: &mut Watched, forwarders: &mut JoinSet<_>| {
            if let Some(mut tap) = watched.tap.take() {
                // What waited in a parked tap is from the past: the worker starts from now.
                while tap.try_recv().is_some() {}
                forwarders.spawn(forward(
                    takes.clone(),
                    take_info(track, watched, &tap),
                    tap,
                    watched.unwatch.clone(),
                    detach.clone(),
                ));
            }
        };
        for (track, watched) in &mut self.watches {
            feed(track, watched, &mut forwarders);
        }
        let begin = ToChecker::Begin {
            times: self.times.clone(),
        };
        // A failed send shows as the link's end below.
        let _ = control.sender.send(&begin).await;
        let mut stopping: Option<oneshot::Sender<()>> = None;
        // Whether this worker said it checks (one that went before never checked anything).
        let mut checking = false;
        let deadline = tokio::time::sleep(STOP_WITHIN);
        tokio::pin!(deadline);
        let served = loop {
            tokio::select! {
                command = self.commands.recv(), if stopping.is_none() => match command {
                    Some(Command::Watch { track, participant, source, tap, ended }) => {
                        self.add(track.clone(), participant, source, Some(tap), ended);
                        if let Some(watched) = self.watches.get_mut(&track) {
                            feed(&track, watched, &mut forwarders);
                        }
                    }
                    Some(Command::Unwatch(track)) => {
                        if let Some(watched) = self.watches.remove(&track) {
                            watched.unwatch.cancel();
                        }
                    }
                    Some(Command::Stop(done)) => {
                        let _ = control.sender.send(&ToChecker::Stop).await;
                        stopping = Some(done);
                        deadline.as_mut().reset(tokio::time::Instant::now() + STOP_WITHIN);
                    }
                    None => {
                        let _ = control.sender.send(&ToChecker::Stop).await;
                        break Served::Closed;
                    }
                },
                said = control.receiver.recv() => match said {
                    // Stopped without being asked: as good as gone.
                    Ok(Some(FromChecker::Stopped)) if stopping.is_none() => break Served::Gone,
                    Ok(Some(FromChecker::Stopped)) => break Served::Closed,
                    Ok(Some(message)) => {
                        checking |= matches!(message, FromChecker::Checking { .. });
                        self.heard(message);
                    }
                    Ok(None) | Err(_) => break Served::Gone,
                },
                why = takes.closed() => {
                    tracing::info!(interview = %self.interview, %why, "the proctoring worker's link closed");
                    break Served::Gone;
                }
                Some(returned) = forwarders.join_next() => {
                    // A stream that failed on a link that lives: the next worker gets it.
                    if let Ok(Some((info, tap))) = returned
                        && let Some(watched) = self.watches.get_mut(&info.id)
                    {
                        watched.tap = Some(tap);
                    }
                }
                () = &mut deadline, if stopping.is_some() => {
                    tracing::warn!(interview = %self.interview, "the proctoring worker did not confirm the stop");
                    break Served::Closed;
                }
            }
        };
        stats
            .proctoring_workers_connected
            .fetch_sub(1, Ordering::Relaxed);
        // Asked to stop, the checks are over however the worker ended.
        let served = match (served, stopping) {
            (_, Some(done)) => Served::Stopped(done),
            (served, None) => served,
        };
        match served {
            Served::Gone => detach.cancel(),
            Served::Stopped(_) | Served::Closed => {
                for watched in self.watches.values() {
                    watched.unwatch.cancel();
                }
                takes.close();
            }
        }
        while let Some(returned) = forwarders.join_next().await {
            if let Ok(Some((info, tap))) = returned
                && let Some(watched) = self.watches.get_mut(&info.id)
            {
                watched.tap = Some(tap);
            }
        }
        if matches!(served, Served::Gone) && checking {
            stats
                .proctoring_workers_lost
                .fetch_add(1, Ordering::Relaxed);
            // Every camera it was checking is stated, once, as not checked from here on.
            let now = tokio::time::Instant::now();
            for (track, watched) in &mut self.watches {
                watched.unchecked_since = now;
                if !watched.stated {
                    watched.stated = true;
                    let _ = self.reports.send(Report::Interrupted {
                        track: track.clone(),
                        reason: "the proctoring worker was lost",
                    });
                }
            }
        }
        served
    }

    /// Hands on what the worker found.
    fn heard(&mut self, message: FromChecker) {
        match message {
            FromChecker::Checking { detector } => {
                let _ = self.reports.send(Report::Detector(detector));
                // Checked again: a later loss is stated again.
                for watched in self.watches.values_mut() {
                    watched.stated = false;
                }
            }
            FromChecker::Found { take, finding } => {
                if !self.watches.contains_key(&take) {
                    return;
                }
                match finding.finding() {
                    Some(finding) => {
                        let _ = self.reports.send(Report::Found(take, finding));
                    }
                    None => {
                        tracing::warn!(interview = %self.interview, "a finding this node cannot read was dropped")
                    }
                }
            }
            FromChecker::Unwatchable { take, reason } => {
                if let Some(watched) = self.watches.get(&take) {
                    let _ = watched.ended.set(reason);
                }
            }
            FromChecker::Stopped => {}
        }
    }
}

/// The next worker connection for `job`; never, while it is not posted. `None`: the listener
/// is gone.
async fn next_link(job: &mut Option<PostedJob>) -> Option<HostLink<ToChecker, FromChecker>> {
    match job {
        Some((_, expected)) => expected.next().await,
        None => std::future::pending().await,
    }
}

/// The take a watched camera is on the link: its track id, whose, and which view.
fn take_info(track: &str, watched: &Watched, tap: &TapReceiver) -> TakeInfo {
    TakeInfo {
        id: track.to_owned(),
        participant: watched.participant.clone(),
        source: source_name(watched.source).to_owned(),
        codec: tap.codec(),
    }
}

/// How a take's source names a watched view.
pub(crate) fn source_name(source: Source) -> &'static str {
    match source {
        Source::Camera => "camera",
        Source::Phone => "phone",
    }
}

/// The view a take's source names.
pub(crate) fn source_of(name: &str) -> Source {
    if name == "phone" {
        Source::Phone
    } else {
        Source::Camera
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_crosses_the_link_as_it_was_found() {
        let at = UNIX_EPOCH + Duration::from_millis(1_780_000_000_123);
        let opened = Finding {
            check: Check::MultipleFaces,
            edge: Edge::Opened {
                at: Duration::from_secs(9),
            },
            at,
            snapshot: Some(vec![0xFF, 0xD8, 0, 1, 2]),
            peak: None,
        };
        let json = serde_json::to_string(&WireFinding::of(&opened)).expect("serialised");
        let wire: WireFinding = serde_json::from_str(&json).expect("read back");
        let back = wire.finding().expect("readable");
        assert_eq!(back.check, Check::MultipleFaces);
        assert!(matches!(back.edge, Edge::Opened { .. }));
        assert_eq!(back.at, at);
        assert_eq!(back.snapshot, opened.snapshot);
        let closed = Finding {
            edge: Edge::Closed { at: Duration::ZERO },
            snapshot: None,
            peak: Some(0.9),
            ..opened
        };
        let back = WireFinding::of(&closed).finding().expect("readable");
        assert!(matches!(back.edge, Edge::Closed { .. }));
        assert_eq!(back.peak, Some(0.9));
        let mut unknown = WireFinding::of(&closed);
        unknown.check = "mind_reading".into();
        assert!(
            unknown.finding().is_none(),
            "a check this node does not know"
        );
        assert_eq!(source_of(source_name(Source::Phone)), Source::Phone);
        assert_eq!(source_of(source_name(Source::Camera)), Source::Camera);
    }
}
