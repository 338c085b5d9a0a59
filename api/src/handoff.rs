//! What a node needs to hand work to `sightline worker`s: the link workers connect to, the job
//! queue, and a tap carried to a worker over the link. Recordings (`recording::remote`) and
//! proctoring checks (`proctoring::remote`) both use it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use sightline_cluster::{JobQueue, NodeId};
use sightline_config::Settings;
use sightline_link::{Listener, TakeHeader, TakeOpener};
use sightline_recorder::TakeInfo;
use sightline_sfu::TapReceiver;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;

/// What a node needs to hand work to workers.
pub struct RemoteSetup {
    /// The link workers connect to.
    pub listener: Listener,
    /// Where jobs go.
    pub queue: JobQueue,
    /// This node.
    pub node: NodeId,
    /// The link's address as workers dial it.
    pub link_addr: SocketAddr,
    /// The name in this node's link certificate.
    pub link_name: String,
    /// How long a silent worker keeps its job (`workers.ack_wait_secs`).
    pub ack_wait: Duration,
    /// What `/metrics` shows of it.
    pub stats: Arc<LinkStats>,
}

/// Counters of the work a node hands to workers, read at each scrape.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Recording jobs posted.
    pub jobs_posted: AtomicU64,
    /// Workers feeding from this node now.
    pub workers_connected: AtomicU64,
    /// Worker connections that went before their recording ended.
    pub workers_lost: AtomicU64,
    /// Recordings that failed because no worker took them, or none came back.
    pub without_worker: AtomicU64,
    /// Proctoring jobs posted.
    pub proctoring_jobs_posted: AtomicU64,
    /// Workers checking proctored cameras from this node now.
    pub proctoring_workers_connected: AtomicU64,
    /// Proctoring workers' connections that went before their checks ended.
    pub proctoring_workers_lost: AtomicU64,
}

/// The link and queue of a node that hands recordings or proctoring checks to workers.
pub(crate) async fn setup(
    settings: &Settings,
    cluster: &sightline_cluster::Cluster,
) -> Result<RemoteSetup, ApiError> {
    let workers = &settings.workers;
    let (Some(ca), Some(cert), Some(key)) =
        (&workers.ca_file, &workers.cert_file, &workers.key_file)
    else {
        return Err(ApiError::Internal(
            "work done by workers needs workers.ca_file, cert_file and key_file".into(),
        ));
    };
    let failed = |err: sightline_link::LinkError| ApiError::Internal(format!("worker link: {err}"));
    let tls = sightline_link::LinkTls::load(ca, cert, key).map_err(failed)?;
    let listener = Listener::bind(workers.link_listen, &tls).map_err(failed)?;
    let link_addr = match workers.link_advertise {
        Some(advertised) => advertised,
        None => listener.local_addr().map_err(failed)?,
    };
    let queue = cluster
        .jobs()
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    tracing::info!(
        listen = ?listener.local_addr().ok(),
        advertised = %link_addr,
        recording = workers.remote(),
        proctoring = workers.proctoring_remote(),
        "work is handed to workers"
    );
    Ok(RemoteSetup {
        listener,
        queue,
        node: cluster.node().clone(),
        link_addr,
        link_name: workers.link_name.clone(),
        ack_wait: Duration::from_secs(workers.ack_wait_secs),
        stats: Arc::default(),
    })
}

/// Sends one tap's packets on its own stream until the track ends (`None`), the recording
/// stops (`None`: the tap goes), or the stream or link fails or `detach` says the worker is gone
/// (the tap comes back for the next worker).
pub(crate) async fn forward(
    takes: TakeOpener,
    info: TakeInfo,
    mut tap: TapReceiver,
    stop: CancellationToken,
    detach: CancellationToken,
) -> Option<(TakeInfo, TapReceiver)> {
    let header = TakeHeader {
        id: info.id.clone(),
        participant: info.participant.clone(),
        source: info.source.clone(),
        codec: info.codec,
    };
    let opened = tokio::select! {
        opened = takes.open(&header) => opened,
        () = stop.cancelled() => return None,
        () = detach.cancelled() => return Some((info, tap)),
    };
    let Ok(mut stream) = opened else {
        return Some((info, tap));
    };
    // A new file starts at a keyframe.
    tap.request_keyframe();
    let mut asking = true;
    loop {
        tokio::select! {
            packet = tap.recv() => match packet {
                Some(packet) => {
                    if stream.send(&packet).await.is_err() {
                        return Some((info, tap));
                    }
                }
                None => {
                    stream.finish().await;
                    return None;
                }
            },
            wanted = stream.keyframe_wanted(), if asking => {
                if wanted {
                    tap.request_keyframe();
                } else {
                    asking = false;
                }
            }
            () = stop.cancelled() => {
                stream.finish().await;
                return None;
            }
            () = detach.cancelled() => return Some((info, tap)),
        }
    }
}
