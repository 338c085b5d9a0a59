//! Work for `sightline worker` processes: a JetStream work queue.
//!
//! A node that records or proctors a room through a worker posts a [`RecordingJob`] or a
//! [`ProctoringJob`]; each kind has its subject, and workers share one durable pull consumer
//! per kind, so each job goes to one worker at a time. A worker holds a job as a
//! [`Lease`]: it says it is still at work ([`Lease::progress`]) more often than the consumer's
//! ack wait, and acknowledges the job when its work is done ([`Lease::done`]), which
//! removes it from the queue. A worker that dies stops saying so, and JetStream hands the job
//! to another worker once the ack wait has passed ([`Lease::delivered`] counts the hand-outs).
//! A job nobody took can be withdrawn ([`JobQueue::withdraw`]).

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer};
use futures_util::StreamExt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ClusterError;
use crate::nats::Cluster;
use crate::node::NodeId;

/// The queue's stream.
const JOBS_STREAM: &str = "sightline_jobs";
/// A job older than this belongs to no recording that still runs.
const JOB_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Record one room's media, which its host node hands out over the link.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// Check one proctored room's cameras, which its host node hands out over the link; the
/// node keeps the events, the worker decodes and runs the detectors.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProctoringJob {
    /// The interview proctored.
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

// A job's token never reaches a log.
impl std::fmt::Debug for RecordingJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingJob")
            .field("recording", &self.recording)
            .field("interview", &self.interview)
            .field("node", &self.node)
            .field("link_addr", &self.link_addr)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ProctoringJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProctoringJob")
            .field("interview", &self.interview)
            .field("node", &self.node)
            .field("link_addr", &self.link_addr)
            .finish_non_exhaustive()
    }
}

/// A kind of job: its subject on the queue and the consumer its workers share.
pub trait Job: Serialize + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static {
    /// Where jobs of this kind are posted.
    const SUBJECT: &'static str;
    /// The durable consumer every worker of this kind pulls from.
    const WORKERS: &'static str;
}

impl Job for RecordingJob {
    const SUBJECT: &'static str = "sightline.jobs.recording";
    const WORKERS: &'static str = "recording_workers";
}

impl Job for ProctoringJob {
    const SUBJECT: &'static str = "sightline.jobs.proctoring";
    const WORKERS: &'static str = "proctoring_workers";
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
    pub async fn post<J: Job>(&self, job: &J) -> Result<Posted, ClusterError> {
        let payload =
            serde_json::to_vec(job).map_err(|err| ClusterError::nats("posting a job", err))?;
        let ack = self
            .js
            .publish(J::SUBJECT, payload.into())
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

    /// A worker's view of the jobs of kind `J`: each job it takes is its own for `ack_wait`
    /// after each sign of progress.
    pub async fn worker<J: Job>(&self, ack_wait: Duration) -> Result<JobTaker<J>, ClusterError> {
        let consumer: consumer::PullConsumer = self
            .stream
            .get_or_create_consumer(
                J::WORKERS,
                consumer::pull::Config {
                    durable_name: Some(J::WORKERS.to_owned()),
                    filter_subject: J::SUBJECT.to_owned(),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait,
                    ..Default::default()
                },
            )
            .await
            .map_err(|err| ClusterError::nats("opening the job consumer", err))?;
        Ok(JobTaker {
            consumer,
            kind: PhantomData,
        })
    }
}

/// Takes jobs of kind `J` off the queue.
pub struct JobTaker<J> {
    consumer: consumer::PullConsumer,
    kind: PhantomData<fn() -> J>,
}

impl<J: Job> JobTaker<J> {
    /// The next job, waiting up to `wait` for one. A job that cannot be read is ended (it
    /// would fail on every worker) and the next one is waited for.
    pub async fn next(&self, wait: Duration) -> Result<Option<Lease<J>>, ClusterError> {
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
            match serde_json::from_slice::<J>(&message.payload) {
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
pub struct Lease<J> {
    /// What to do.
    pub job: J,
    message: jetstream::Message,
}

impl<J: std::fmt::Debug> std::fmt::Debug for Lease<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("job", &self.job)
            .field(
                "delivered",
                &self.message.info().map(|info| info.delivered).unwrap_or(1),
            )
            .finish_non_exhaustive()
    }
}

impl<J> Lease<J> {
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
