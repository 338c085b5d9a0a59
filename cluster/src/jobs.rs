//! Work for `sightline worker` processes: a JetStream work queue.
//!
//! A node that records a room through a worker posts a [`RecordingJob`]; workers share one
//! durable pull consumer, so each job goes to one worker at a time. A worker holds a job as a
//! [`Lease`]: it says it is still at work ([`Lease::progress`]) more often than the consumer's
//! ack wait, and acknowledges the job when its recording is finished ([`Lease::done`]), which
//! removes it from the queue. A worker that dies stops saying so, and JetStream hands the job
//! to another worker once the ack wait has passed ([`Lease::delivered`] counts the hand-outs).
//! A job nobody took can be withdrawn ([`JobQueue::withdraw`]).

use std::net::SocketAddr;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::ClusterError;
use crate::nats::Cluster;
use crate::node::NodeId;

/// The queue's stream.
const JOBS_STREAM: &str = "sightline_jobs";
/// Recording jobs' subject.
const RECORDING_SUBJECT: &str = "sightline.jobs.recording";
/// The consumer every recording worker pulls from.
const RECORDING_WORKERS: &str = "recording_workers";
/// A job older than this belongs to no recording that still runs.
const JOB_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Record one room's media, which its host node hands out over the link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingJob {
    /// The recording's id (its row and its objects' prefix).
    pub recording: String,
    /// The interview recorded.
    pub interview: String,
    /// The node hosting the room.
    pub node: NodeId,
    /// Where that node's link listens.
    pub link_addr: SocketAddr,
    /// The name that node's link certificate carries.
    pub link_name: String,
    /// The job's token, which the node expects on the link while the job runs.
    pub token: String,
}

/// A posted job, as the queue numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted(u64);

/// The work queue.
#[derive(Clone)]
pub struct JobQueue {
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
}

impl Cluster {
    /// The work queue, made when it does not exist yet.
    pub async fn jobs(&self) -> Result<JobQueue, ClusterError> {
        let js = jetstream::new(self.client().clone());
        let stream = js
            .get_or_create_stream(jetstream::stream::Config {
                name: JOBS_STREAM.to_owned(),
                subjects: vec!["sightline.jobs.>".to_owned()],
                retention: jetstream::stream::RetentionPolicy::WorkQueue,
                storage: jetstream::stream::StorageType::File,
                max_age: JOB_MAX_AGE,
                num_replicas: 1,
                ..Default::default()
            })
            .await
            .map_err(|err| ClusterError::nats("creating the job queue", err))?;
        Ok(JobQueue { js, stream })
    }
}

impl JobQueue {
    /// Posts `job`; returns once JetStream stored it.
    pub async fn post(&self, job: &RecordingJob) -> Result<Posted, ClusterError> {
        let payload =
            serde_json::to_vec(job).map_err(|err| ClusterError::nats("posting a job", err))?;
        let ack = self
            .js
            .publish(RECORDING_SUBJECT, payload.into())
            .await
            .map_err(|err| ClusterError::nats("posting a job", err))?
            .await
            .map_err(|err| ClusterError::nats("posting a job", err))?;
        Ok(Posted(ack.sequence))
    }

    /// Takes `posted` off the queue (its recording ended); nothing happens if it is gone.
    pub async fn withdraw(&self, posted: Posted) -> Result<(), ClusterError> {
        match self.stream.delete_message(posted.0).await {
            Ok(_) => Ok(()),
            // JetStream's own answer: the job is not there (taken and done, or expired).
            Err(err)
                if matches!(
                    err.kind(),
                    jetstream::stream::DeleteMessageErrorKind::JetStream(_)
                ) =>
            {
                tracing::debug!(%err, "a withdrawn job was already gone");
                Ok(())
            }
            Err(err) => Err(ClusterError::nats("withdrawing a job", err)),
        }
    }

    /// A worker's view of the recording jobs: each job it takes is its own for `ack_wait` after
    /// each sign of progress.
    pub async fn worker(&self, ack_wait: Duration) -> Result<JobTaker, ClusterError> {
        let consumer: consumer::PullConsumer = self
            .stream
            .get_or_create_consumer(
                RECORDING_WORKERS,
                consumer::pull::Config {
                    durable_name: Some(RECORDING_WORKERS.to_owned()),
                    filter_subject: RECORDING_SUBJECT.to_owned(),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait,
                    ..Default::default()
                },
            )
            .await
            .map_err(|err| ClusterError::nats("opening the job consumer", err))?;
        Ok(JobTaker { consumer })
    }
}

/// Takes jobs off the queue.
pub struct JobTaker {
    consumer: consumer::PullConsumer,
}

impl JobTaker {
    /// The next job, waiting up to `wait` for one. A job that cannot be read is ended (it
    /// would fail on every worker) and the next one is waited for.
    pub async fn next(&self, wait: Duration) -> Result<Option<Lease>, ClusterError> {
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(1)
            .expires(wait)
            .messages()
            .await
            .map_err(|err| ClusterError::nats("taking a job", err))?;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|err| ClusterError::nats("taking a job", err))?;
            match serde_json::from_slice::<RecordingJob>(&message.payload) {
                Ok(job) => return Ok(Some(Lease { job, message })),
                Err(err) => {
                    tracing::error!(%err, "a job nobody can read is dropped");
                    let _ = message.ack_with(AckKind::Term).await;
                }
            }
        }
        Ok(None)
    }
}

/// A job a worker holds.
pub struct Lease {
    /// What to do.
    pub job: RecordingJob,
    message: jetstream::Message,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("recording", &self.job.recording)
            .field("node", &self.job.node)
            .field("delivered", &self.delivered())
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// How many times the job was handed out, this time included.
    pub fn delivered(&self) -> i64 {
        self.message.info().map(|info| info.delivered).unwrap_or(1)
    }

    /// Keeps the job this worker's for another ack wait.
    pub async fn progress(&self) -> Result<(), ClusterError> {
        self.message
            .ack_with(AckKind::Progress)
            .await
            .map_err(|err| ClusterError::nats("reporting a job's progress", err))
    }

    /// Gives the job back, to be handed out again after `delay` (to this or another worker).
    pub async fn retry_later(self, delay: Duration) -> Result<(), ClusterError> {
        self.message
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(|err| ClusterError::nats("giving a job back", err))
    }

    /// The job is done: off the queue, for good.
    pub async fn done(self) -> Result<(), ClusterError> {
        self.message
            .double_ack()
            .await
            .map_err(|err| ClusterError::nats("completing a job", err))
    }
}
