//! Recording jobs: a worker records a room its node feeds it.
//!
//! It claims the recording's row (`recordings.worker`) and records what the node sends into
//! the configured store, which the nodes read too (S3, or a directory they share): a new
//! recording, or, when the job comes from a worker that died, the same recording resumed from
//! the store, the time between marked as an interruption. It completes the job once the
//! recording is finished and its row says so.
//!
//! A worker whose node goes away finishes the recording itself, unless another node took it
//! over first (the row decides, as between nodes). A worker that dies loses what it had not yet
//! stored (its spool is discarded when it starts again): that time is in the interruption.

use std::future::Future;
use std::sync::Arc;

use sightline_cluster::{Lease, RecordingJob};
use sightline_link::{TakeReceiver, WorkerLink};
use sightline_recorder::{PacketSource, Recording, TakeInfo};
use sightline_sfu::TapPacket;

use super::{Context, GIVE_UP_AFTER, NodeAddress, RETRY_DELAY, connect};
use crate::error::ApiError;
use crate::recording::remote::{ToNode, ToWorker};
use crate::store::recordings;

/// How the link's session with the node ended.
enum Ended {
    /// The node said stop.
    Stopped,
    /// The node went (it died, or the network between).
    NodeGone,
}

pub(super) async fn run_job(
    context: Arc<Context>,
    lease: Lease<RecordingJob>,
) -> Result<(), ApiError> {
    let context = &*context;
    let job = lease.job.clone();
    let internal = |err: &dyn std::fmt::Display| ApiError::Internal(err.to_string());
    let node = NodeAddress {
        addr: job.link_addr,
        name: &job.link_name,
        token: &job.token,
        node: job.node.as_str(),
        about: &job.recording,
    };
    // Claimed only once the node feeds this worker: until then it may be another's turn.
    let Some((link, first, lease)) = connect::<_, ToNode, ToWorker>(context, lease, node).await?
    else {
        return Ok(());
    };
    let WorkerLink { mut control, takes } = link;
    let mut progress = tokio::time::interval(context.progress_every);
    let claimed = recordings::claim_job(
        context.db.pool(),
        &job.recording,
        job.node.as_str(),
        &context.id,
    )
    .await?;
    // Handed out again, the job's recording may be one its last worker began finishing when it
    // died (it stopped renewing the job): this worker finishes what is stored.
    if !claimed
        && lease.delivered() > 1
        && recordings::claim_dead_worker_finish(
            context.db.pool(),
            &job.recording,
            job.node.as_str(),
            &context.id,
        )
        .await?
    {
        let outcome = finish_stored(context, &lease, &job.recording, &job.interview).await;
        let _ = control.sender.send(&outcome).await;
        takes.close();
        return lease.done().await.map_err(|e| internal(&e));
    }
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
    let takes = Arc::new(takes);
    let (accepting, mut incoming) = super::accept_takes(&takes, &job.recording);
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
async fn give_back(
    context: &Context,
    lease: Lease<RecordingJob>,
    why: &str,
) -> Result<(), ApiError> {
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
async fn finish(
    context: &Context,
    lease: &Lease<RecordingJob>,
    recording: Recording,
    id: &str,
) -> ToNode {
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
            complete_row(context, id, &manifest).await;
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

/// Finishes recording `id`, which a worker that died had begun finishing, from what the store
/// holds, and completes its row, reporting progress meanwhile.
async fn finish_stored(
    context: &Context,
    lease: &Lease<RecordingJob>,
    id: &str,
    interview: &str,
) -> ToNode {
    tracing::warn!(recording = %id, "the recording's last worker died while finishing it; finishing it here");
    let pool = context.db.pool();
    let mut progress = tokio::time::interval(context.progress_every);
    let finishing = context.recorder.finish_stored(id, interview);
    tokio::pin!(finishing);
    let finished = loop {
        tokio::select! {
            finished = &mut finishing => break finished,
            _ = progress.tick() => { let _ = lease.progress().await; }
        }
    };
    let failed = |why: String| async move {
        tracing::error!(recording = %id, %why, "a recording left unfinished by a dead worker could not be finished");
        let reason =
            format!("Its worker died while finishing it, and it could not be finished: {why}");
        if let Err(err) = recordings::fail(pool, id, &reason).await {
            tracing::error!(%err, "failed recording's row not updated");
        }
        ToNode::Failed
    };
    match finished {
        Ok(Some(manifest)) => {
            complete_row(context, id, &manifest).await;
            tracing::info!(recording = %id, "recording finished for a worker that died");
            ToNode::Finished
        }
        Ok(None) => failed("the store holds nothing of it".to_owned()).await,
        Err(err) => failed(err.to_string()).await,
    }
}

/// Writes how recording `id` ended, as its finished `manifest` says, into its row.
async fn complete_row(context: &Context, id: &str, manifest: &sightline_recorder::Manifest) {
    let status = crate::recording::status_name(manifest.status);
    let duration = manifest.duration_ms.map(|d| d as i64);
    if let Err(err) = recordings::finish(context.db.pool(), id, status, duration).await {
        tracing::error!(recording = %id, %err, "recording row not completed");
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
