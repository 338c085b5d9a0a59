//! `sightline worker`: records rooms that cluster nodes host, outside the nodes.
//!
//! A worker takes recording jobs from the cluster's work queue, at most `workers.max_jobs` at
//! once. For each, it connects to the job's node over the link (mutual TLS, the job's token),
//! claims the recording's row (`recordings.worker`), and records what the node sends into the
//! configured store, which the nodes read too (S3, or a directory they share): a new recording,
//! or, when the job comes from a worker that died, the same recording resumed from the store,
//! the time between marked as an interruption. It says it is at work on the job more often than
//! the queue's ack wait, and completes the job once the recording is finished and its row says
//! so.
//!
//! A worker whose node goes away finishes the recording itself, unless another node took it
//! over first (the row decides, as between nodes). A worker that dies loses what it had not yet
//! stored (its spool is discarded when it starts again): that time is in the interruption.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sightline_cluster::{Cluster, JobTaker, Lease};
use sightline_config::Settings;
use sightline_link::{Dialer, JobToken, LinkError, LinkTls, TakeReceiver, WorkerLink};
use sightline_recorder::{PacketSource, Recorder, Recording, TakeInfo};
use sightline_sfu::TapPacket;
use tokio::sync::{Semaphore, mpsc};

use crate::error::ApiError;
use crate::recording::remote::{ToNode, ToWorker};
use crate::store::{Db, recordings};

/// How long one wait for a job lasts (then the worker looks at its stop signal again).
const POLL: Duration = Duration::from_secs(5);
/// A job whose node cannot be reached, or whose recording cannot be started here, goes back to
/// the queue for this long; handed out `GIVE_UP_AFTER` times, it is given up.
const RETRY_DELAY: Duration = Duration::from_secs(2);
const GIVE_UP_AFTER: i64 = 10;
/// How long a connected worker waits for the node to begin feeding it: a node feeds one worker
/// of a job at a time, and one it keeps waiting (the job's earlier worker is still connected)
/// gives the job back rather than claim the recording.
const FED_WITHIN: Duration = Duration::from_secs(15);

struct Context {
    id: String,
    db: Db,
    recorder: Recorder,
    dialer: Dialer,
    /// How often a job's progress is reported: a third of the ack wait.
    progress_every: Duration,
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
    let tls = LinkTls::load(ca, cert, key).map_err(|err| ApiError::Internal(err.to_string()))?;
    let dialer = Dialer::new(&tls).map_err(|err| ApiError::Internal(err.to_string()))?;
    let db = crate::open_database(&settings).await?;
    let config = crate::cluster::config(&settings)?;
    let id = config.node.to_string();
    let cluster = Cluster::observe(config)
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    let queue = cluster
        .jobs()
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    let ack_wait = Duration::from_secs(workers.ack_wait_secs);
    let taker = queue
        .worker(ack_wait)
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    let spool = settings.data.dir.join("worker-spool").join(&id);
    discard_spool(&spool);
    let recorder = Recorder::new(crate::recorder_store(&settings), spool);
    let context = Arc::new(Context {
        id,
        db,
        recorder,
        dialer,
        progress_every: ack_wait / 3,
    });
    tracing::info!(worker = %context.id, max_jobs = workers.max_jobs, "worker taking recording jobs");
    let slots = Arc::new(Semaphore::new(workers.max_jobs));
    let mut jobs = tokio::task::JoinSet::new();
    take_jobs(&context, &taker, &slots, &mut jobs, stop).await;
    tracing::info!(
        running = jobs.len(),
        "worker stopping: taking no new jobs; waiting for those it holds"
    );
    let finish = async { while jobs.join_next().await.is_some() {} };
    tokio::select! {
        () = finish => {}
        () = force => tracing::warn!("worker stopped with jobs unfinished; they go to other workers"),
    }
    Ok(())
}

async fn take_jobs(
    context: &Arc<Context>,
    taker: &JobTaker,
    slots: &Arc<Semaphore>,
    jobs: &mut tokio::task::JoinSet<()>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let slot = tokio::select! {
            () = &mut stop => return,
            slot = Arc::clone(slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        let lease = tokio::select! {
            () = &mut stop => return,
            lease = taker.next(POLL) => lease,
        };
        match lease {
            Ok(Some(lease)) => {
                let context = Arc::clone(context);
                jobs.spawn(async move {
                    let recording = lease.job.recording.clone();
                    if let Err(err) = run_job(&context, lease).await {
                        tracing::warn!(%recording, %err, "recording job ended in error");
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

/// How the link's session with the node ended.
enum Ended {
    /// The node said stop.
    Stopped,
    /// The node went (it died, or the network between).
    NodeGone,
}

async fn run_job(context: &Context, lease: Lease) -> Result<(), ApiError> {
    let job = lease.job.clone();
    let internal = |err: &dyn std::fmt::Display| ApiError::Internal(err.to_string());
    let token = JobToken::new(job.token.clone());
    let link: WorkerLink<ToNode, ToWorker> = match context
        .dialer
        .dial(job.link_addr, &job.link_name, &token)
        .await
    {
        Ok(link) => link,
        Err(LinkError::Refused(why)) => {
            // The node no longer runs this job (the recording ended, or the room moved and its
            // next host goes on with it). Another worker would find the same.
            tracing::info!(recording = %job.recording, node = %job.node, %why, "a job its node no longer runs is dropped");
            lease.done().await.map_err(|e| internal(&e))?;
            return Ok(());
        }
        // Another worker of the job is waiting there (this job was handed out again while it
        // connected): its turn first.
        Err(LinkError::Busy) => {
            lease
                .retry_later(RETRY_DELAY)
                .await
                .map_err(|e| internal(&e))?;
            return Ok(());
        }
        Err(err) if lease.delivered() >= GIVE_UP_AFTER => {
            tracing::error!(recording = %job.recording, node = %job.node, %err, "the job's node stayed unreachable; the job is given up");
            lease.done().await.map_err(|e| internal(&e))?;
            return Ok(());
        }
        Err(err) => {
            tracing::warn!(recording = %job.recording, node = %job.node, %err, "the job's node cannot be reached; the job goes back to the queue");
            lease
                .retry_later(RETRY_DELAY)
                .await
                .map_err(|e| internal(&e))?;
            return Ok(());
        }
    };
    let WorkerLink { mut control, takes } = link;
    // Claimed only once the node feeds this worker: until then it may be another's turn. The
    // job stays this worker's meanwhile.
    let mut progress = tokio::time::interval(context.progress_every);
    let fed = async {
        loop {
            tokio::select! {
                first = control.receiver.recv() => return first,
                _ = progress.tick() => { let _ = lease.progress().await; }
            }
        }
    };
    let first = match tokio::time::timeout(FED_WITHIN, fed).await {
        Ok(Ok(Some(first))) => first,
        _ => {
            tracing::info!(recording = %job.recording, "the node did not feed this worker; the job goes back to the queue");
            takes.close();
            lease
                .retry_later(RETRY_DELAY)
                .await
                .map_err(|e| internal(&e))?;
            return Ok(());
        }
    };
    let claimed = recordings::claim_job(
        context.db.pool(),
        &job.recording,
        job.node.as_str(),
        &context.id,
    )
    .await?;
    if !claimed {
        tracing::info!(recording = %job.recording, "a job whose recording is no longer its node's is dropped");
        takes.close();
        lease.done().await.map_err(|e| internal(&e))?;
        return Ok(());
    }
    let started = match context
        .recorder
        .resume(&job.recording, &job.interview)
        .await
    {
        Ok(Some(recording)) => Ok((recording, true)),
        Ok(None) => context
            .recorder
            .start(&job.recording, &job.interview)
            .map(|recording| (recording, false)),
        Err(err) => Err(err),
    };
    let (recording, resumed) = match started {
        Ok(started) => started,
        Err(err) => {
            takes.close();
            return give_back(context, lease, &err.to_string()).await;
        }
    };
    tracing::info!(recording = %job.recording, node = %job.node, resumed, delivered = lease.delivered(), "recording for a node");
    let _ = control.sender.send(&ToNode::Recording { resumed }).await;
    // Takes are accepted by a task of their own: accepting is not cancel-safe.
    let takes = Arc::new(takes);
    let (found, mut incoming) = mpsc::channel(16);
    let accepting = {
        let takes = Arc::clone(&takes);
        let id = job.recording.clone();
        tokio::spawn(async move {
            loop {
                match takes.accept().await {
                    Ok(Some(take)) => {
                        if found.send(take).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(err) => {
                        tracing::warn!(recording = %id, %err, "a take's stream was unusable; the others go on");
                    }
                }
            }
        })
    };
    let mut said = Some(Ok(Some(first)));
    let ended = loop {
        let message = match said.take() {
            Some(message) => message,
            None => tokio::select! {
                take = incoming.recv() => {
                    let Some((header, receiver)) = take else {
                        break Ended::NodeGone;
                    };
                    let info = TakeInfo {
                        id: header.id,
                        participant: header.participant,
                        source: header.source,
                        codec: header.codec,
                    };
                    recording.add_take(info, RemoteTake(receiver));
                    continue;
                }
                message = control.receiver.recv() => message,
                _ = progress.tick() => {
                    if let Err(err) = lease.progress().await {
                        tracing::warn!(recording = %job.recording, %err, "job progress not reported");
                    }
                    continue;
                }
            },
        };
        match message {
            Ok(Some(ToWorker::Participants { participants })) => {
                for entry in participants {
                    recording.note_participant(entry);
                }
            }
            Ok(Some(ToWorker::Participant { entry })) => recording.note_participant(entry),
            Ok(Some(ToWorker::Event {
                kind,
                participant,
                text,
            })) => recording.note_event(&kind, &participant, text),
            Ok(Some(ToWorker::Stop)) => break Ended::Stopped,
            Ok(None) | Err(_) => break Ended::NodeGone,
        }
    };
    accepting.abort();
    if matches!(ended, Ended::NodeGone) {
        tracing::warn!(recording = %job.recording, node = %job.node, "the node went; finishing the recording here unless another node took it over");
    }
    let id = job.recording.clone();
    let outcome = finish(context, &lease, recording, &id).await;
    let _ = control.sender.send(&outcome).await;
    takes.close();
    lease.done().await.map_err(|e| internal(&e))?;
    Ok(())
}

/// A job this worker could not start recording: back to the queue, or, handed out too often,
/// its recording failed with `why`.
async fn give_back(context: &Context, lease: Lease, why: &str) -> Result<(), ApiError> {
    let id = lease.job.recording.clone();
    let internal = |err: &dyn std::fmt::Display| ApiError::Internal(err.to_string());
    if lease.delivered() < GIVE_UP_AFTER {
        tracing::warn!(recording = %id, %why, "the recording could not be started here; the job goes back to the queue");
        return lease
            .retry_later(RETRY_DELAY)
            .await
            .map_err(|e| internal(&e));
    }
    tracing::error!(recording = %id, %why, "no worker could start the recording; it fails");
    let reason = format!("No worker could record this: {why}");
    recordings::fail(context.db.pool(), &id, &reason).await?;
    lease.done().await.map_err(|e| internal(&e))
}

/// Finishes recording `id` and completes its row, reporting progress meanwhile, unless
/// another node or worker has it now (then it is left to them).
async fn finish(context: &Context, lease: &Lease, recording: Recording, id: &str) -> ToNode {
    let pool = context.db.pool();
    let mut progress = tokio::time::interval(context.progress_every);
    let claiming = crate::recording::answered(id, || {
        recordings::claim_worker_finish(pool, id, &context.id)
    });
    tokio::pin!(claiming);
    let claimed = loop {
        tokio::select! {
            claimed = &mut claiming => break claimed,
            _ = progress.tick() => { let _ = lease.progress().await; }
        }
    };
    if !claimed {
        if let Err(err) = recording.abandon().await {
            tracing::warn!(recording = %id, %err, "a recording taken over was not left cleanly");
        }
        tracing::info!(recording = %id, "recording left to whoever took it over");
        return ToNode::Abandoned;
    }
    let stopping = recording.stop();
    tokio::pin!(stopping);
    let stopped = loop {
        tokio::select! {
            stopped = &mut stopping => break stopped,
            _ = progress.tick() => { let _ = lease.progress().await; }
        }
    };
    match stopped {
        Ok(manifest) => {
            let status = crate::recording::status_name(manifest.status);
            let duration = manifest.duration_ms.map(|d| d as i64);
            if let Err(err) = recordings::finish(pool, id, status, duration).await {
                tracing::error!(recording = %id, %err, "recording row not completed");
            }
            tracing::info!(recording = %id, "recording finished");
            ToNode::Finished
        }
        Err(err) => {
            tracing::error!(recording = %id, %err, "recording not finished");
            let reason = format!("The worker could not finish this recording: {err}");
            if let Err(err) = recordings::fail(pool, id, &reason).await {
                tracing::error!(%err, "failed recording's row not updated");
            }
            ToNode::Failed
        }
    }
}

/// A take the node sends over the link, as the recorder reads a tap.
struct RemoteTake(TakeReceiver);

impl PacketSource for RemoteTake {
    fn recv(&mut self) -> impl Future<Output = Option<TapPacket>> + Send {
        self.0.recv()
    }

    fn request_keyframe(&self) {
        self.0.request_keyframe();
    }
}
