//! `sightline worker`: records and proctors rooms that cluster nodes host, outside the nodes.
//!
//! A worker takes jobs from the cluster's work queue, at most `workers.max_jobs` at once, of
//! two kinds: recordings ([`recording`]) and proctored rooms ([`proctoring`]). For each, it
//! connects to the job's node over the link (mutual TLS, the job's token), waits for the node
//! to feed it (a node feeds one worker of a job at a time), and says it is at work on the job
//! more often than the queue's ack wait. A worker that dies stops saying so, and the job goes
//! to another worker.

mod proctoring;
mod recording;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sightline_cluster::{Cluster, Job, JobTaker, Lease, ProctoringJob, RecordingJob};
use sightline_config::Settings;
use sightline_link::{
    Dialer, JobToken, LinkError, LinkTls, TakeAcceptor, TakeHeader, TakeReceiver, WorkerLink,
};
use sightline_proctor::Detectors;
use sightline_recorder::Recorder;
use tokio::sync::{OnceCell, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::store::Db;

/// How long one wait for a job lasts (then the worker looks at its stop signal again).
const POLL: Duration = Duration::from_secs(5);
/// A job whose node cannot be reached, or whose work cannot be started here, goes back to the
/// queue for this long; handed out `GIVE_UP_AFTER` times, it is given up.
const RETRY_DELAY: Duration = Duration::from_secs(2);
const GIVE_UP_AFTER: i64 = 10;
/// How long a connected worker waits for the node to begin feeding it: a node feeds one worker
/// of a job at a time, and one it keeps waiting (the job's earlier worker is still connected)
/// gives the job back.
const FED_WITHIN: Duration = Duration::from_secs(15);

struct Context {
    id: String,
    db: Db,
    recorder: Recorder,
    dialer: Dialer,
    /// How often a job's progress is reported: a third of the ack wait.
    progress_every: Duration,
    /// Where the face models are, and how many detections may run at once.
    models_dir: PathBuf,
    detector_slots: usize,
    /// Loaded with the first proctoring job.
    detectors: OnceCell<Detectors>,
}

impl Context {
    /// The face detectors, loaded once (a model that cannot be loaded leaves its checks out).
    async fn detectors(&self) -> Detectors {
        self.detectors
            .get_or_init(|| async {
                let (dir, slots) = (self.models_dir.clone(), self.detector_slots);
                tokio::task::spawn_blocking(move || Detectors::load(&dir, slots))
                    .await
                    .unwrap_or_default()
            })
            .await
            .clone()
    }
}

/// Runs a worker until `stop` completes; the jobs it holds then run to their end, unless
/// `force` completes first.
pub async fn run(
    settings: Settings,
    stop: impl Future<Output = ()>,
    force: impl Future<Output = ()>,
) -> Result<(), ApiError> {
    let workers = &settings.workers;
    let (Some(ca), Some(cert), Some(key)) =
        (&workers.ca_file, &workers.cert_file, &workers.key_file)
    else {
        return Err(ApiError::Internal(
            "a worker needs workers.ca_file, workers.cert_file and workers.key_file".into(),
        ));
    };
    let internal = |err: &dyn std::fmt::Display| ApiError::Internal(err.to_string());
    let tls = LinkTls::load(ca, cert, key).map_err(|e| internal(&e))?;
    let dialer = Dialer::new(&tls).map_err(|e| internal(&e))?;
    let db = crate::open_database(&settings).await?;
    let config = crate::cluster::config(&settings)?;
    let id = config.node.to_string();
    let cluster = Cluster::observe(config).await.map_err(|e| internal(&e))?;
    let queue = cluster.jobs().await.map_err(|e| internal(&e))?;
    let ack_wait = Duration::from_secs(workers.ack_wait_secs);
    let recordings = queue
        .worker::<RecordingJob>(ack_wait)
        .await
        .map_err(|e| internal(&e))?;
    let proctored = queue
        .worker::<ProctoringJob>(ack_wait)
        .await
        .map_err(|e| internal(&e))?;
    let spool = settings.data.dir.join("worker-spool").join(&id);
    discard_spool(&spool);
    let recorder = Recorder::new(crate::recorder_store(&settings), spool);
    let context = Arc::new(Context {
        id,
        db,
        recorder,
        dialer,
        progress_every: ack_wait / 3,
        models_dir: settings.proctoring.models_dir.clone(),
        detector_slots: settings.proctoring.detector_threads,
        detectors: OnceCell::new(),
    });
    tracing::info!(worker = %context.id, max_jobs = workers.max_jobs, "worker taking recording and proctoring jobs");
    let slots = Arc::new(Semaphore::new(workers.max_jobs));
    let stopping = CancellationToken::new();
    let work = async {
        tokio::join!(
            take_jobs(
                &context,
                &recordings,
                &slots,
                &stopping,
                |context, lease, _| {
                    // A recording runs to its end: it stops when its room stops it.
                    recording::run_job(context, lease)
                }
            ),
            take_jobs(
                &context,
                &proctored,
                &slots,
                &stopping,
                |context, lease, stopping| {
                    // Checks hand over at once: they last as long as the interview.
                    proctoring::run_job(context, lease, stopping)
                }
            ),
        )
    };
    let signals = async {
        stop.await;
        tracing::info!("worker stopping: taking no new jobs; waiting for those it holds");
        stopping.cancel();
        force.await;
    };
    tokio::select! {
        _ = work => {}
        () = signals => tracing::warn!("worker stopped with jobs unfinished; they go to other workers"),
    }
    Ok(())
}

/// Takes jobs of one kind while slots are free, until `stopping`; then waits for the jobs it
/// took.
async fn take_jobs<J, F, Fut>(
    context: &Arc<Context>,
    taker: &JobTaker<J>,
    slots: &Arc<Semaphore>,
    stopping: &CancellationToken,
    run_job: F,
) where
    J: Job,
    F: Fn(Arc<Context>, Lease<J>, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), ApiError>> + Send + 'static,
{
    let mut jobs = tokio::task::JoinSet::new();
    loop {
        let slot = tokio::select! {
            () = stopping.cancelled() => break,
            slot = Arc::clone(slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let lease = tokio::select! {
            () = stopping.cancelled() => break,
            lease = taker.next(POLL) => lease,
        };
        match lease {
            Ok(Some(lease)) => {
                let job = format!("{:?}", lease.job);
                let running = run_job(Arc::clone(context), lease, stopping.clone());
                jobs.spawn(async move {
                    if let Err(err) = running.await {
                        tracing::warn!(%job, %err, "a job ended in error");
                    }
                    drop(slot);
                });
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(%err, "cannot take jobs; trying again");
                tokio::time::sleep(POLL).await;
            }
        }
        // Finished jobs are reaped as they end.
        while jobs.try_join_next().is_some() {}
    }
    while jobs.join_next().await.is_some() {}
}

/// A worker's spool from before it last stopped: what it had not stored then belongs to
/// recordings another worker resumed (or will), and is not finished here.
fn discard_spool(spool: &PathBuf) {
    let Ok(entries) = std::fs::read_dir(spool) else {
        return;
    };
    for entry in entries.flatten() {
        tracing::warn!(dir = %entry.path().display(), "discarding what a previous run of this worker did not store");
        if let Err(err) = std::fs::remove_dir_all(entry.path()) {
            tracing::warn!(%err, "a previous spool was not removed");
        }
    }
}

/// Where a job's node is, as the job says.
struct NodeAddress<'a> {
    addr: std::net::SocketAddr,
    name: &'a str,
    token: &'a str,
    /// For the logs: the node's id and what the job is about.
    node: &'a str,
    about: &'a str,
}

/// Connects to a job's node and waits for it to feed this worker (its first control message),
/// reporting progress meanwhile. `None` when the job was dealt with instead: dropped (the node
/// no longer runs it, or stayed unreachable too long) or given back (the node was busy with
/// another worker of the job, unreachable, or fed nobody here in time).
async fn connect<J, Out, In>(
    context: &Context,
    lease: Lease<J>,
    node: NodeAddress<'_>,
) -> Result<Option<(WorkerLink<Out, In>, In, Lease<J>)>, ApiError>
where
    J: Job,
    Out: Serialize + Send + 'static,
    In: DeserializeOwned + Send + 'static,
{
    let internal = |err: &dyn std::fmt::Display| ApiError::Internal(err.to_string());
    let token = JobToken::new(node.token.to_owned());
    let (about, id) = (node.about, node.node);
    let link: WorkerLink<Out, In> = match context.dialer.dial(node.addr, node.name, &token).await {
        Ok(link) => link,
        Err(LinkError::Refused(why)) => {
            // The node no longer runs this job (it ended, or the room moved and its next host
            // goes on with it). Another worker would find the same.
            tracing::info!(%about, node = %id, %why, "a job its node no longer runs is dropped");
            lease.done().await.map_err(|e| internal(&e))?;
            return Ok(None);
        }
        // Another worker of the job is waiting there (this job was handed out again while it
        // connected): its turn first.
        Err(LinkError::Busy) => {
            lease
                .retry_later(RETRY_DELAY)
                .await
                .map_err(|e| internal(&e))?;
            return Ok(None);
        }
        Err(err) if lease.delivered() >= GIVE_UP_AFTER => {
            tracing::error!(%about, node = %id, %err, "the job's node stayed unreachable; the job is given up");
            lease.done().await.map_err(|e| internal(&e))?;
            return Ok(None);
        }
        Err(err) => {
            tracing::warn!(%about, node = %id, %err, "the job's node cannot be reached; the job goes back to the queue");
            lease
                .retry_later(RETRY_DELAY)
                .await
                .map_err(|e| internal(&e))?;
            return Ok(None);
        }
    };
    let WorkerLink { mut control, takes } = link;
    // The job stays this worker's while it waits.
    let mut progress = tokio::time::interval(context.progress_every);
    let fed = async {
        loop {
            tokio::select! {
                first = control.receiver.recv() => return first,
                _ = progress.tick() => { let _ = lease.progress().await; }
            }
        }
    };
    match tokio::time::timeout(FED_WITHIN, fed).await {
        Ok(Ok(Some(first))) => Ok(Some((WorkerLink { control, takes }, first, lease))),
        fed => {
            takes.close();
            if let Ok(Err(err)) = &fed
                && lease.delivered() >= GIVE_UP_AFTER
            {
                // It cannot read what its node says (another version?): others may.
                tracing::error!(%about, %err, "this worker cannot read its node; the job is given up");
                lease.done().await.map_err(|e| internal(&e))?;
                return Ok(None);
            }
            tracing::info!(%about, "the node did not feed this worker; the job goes back to the queue");
            lease
                .retry_later(RETRY_DELAY)
                .await
                .map_err(|e| internal(&e))?;
            Ok(None)
        }
    }
}

/// Accepts the takes a node opens, in a task of its own (accepting is not cancel-safe): they
/// arrive on the receiver, which ends when the connection does.
fn accept_takes(
    takes: &Arc<TakeAcceptor>,
    about: &str,
) -> (
    tokio::task::JoinHandle<()>,
    mpsc::Receiver<(TakeHeader, TakeReceiver)>,
) {
    let (found, incoming) = mpsc::channel(16);
    let takes = Arc::clone(takes);
    let about = about.to_owned();
    let accepting = tokio::spawn(async move {
        loop {
            match takes.accept().await {
                Ok(Some(take)) => {
                    if found.send(take).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(%about, %err, "a take's stream was unusable; the others go on");
                }
            }
        }
    });
    (accepting, incoming)
}
