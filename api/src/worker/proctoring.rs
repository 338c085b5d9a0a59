//! Proctoring jobs: a worker checks the cameras of a proctored room its node feeds it.
//!
//! Each camera arrives as a take on the link; the worker decodes it and runs the face detector
//! and the rules on it (`sightline_proctor::watch`, as a node does in process) with the check
//! times the node sent, and reports every event that opens or closes back to the node, which
//! stores and shows them. The worker keeps nothing.
//!
//! A worker whose node goes gives the job back: a node that lives feeds the job's next worker
//! (this one or another); one that died is not reached, or refuses a token it no longer
//! expects, and the job is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sightline_cluster::{Lease, ProctoringJob};
use sightline_link::{TakeHeader, TakeReceiver, WorkerLink};
use sightline_proctor::{Detectors, Finding, Watch, WatchConfig};
use sightline_sfu::{TapReceiver, TapRelay};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Context, NodeAddress, RETRY_DELAY, connect};
use crate::error::ApiError;
use crate::proctoring::remote::{FromChecker, ToChecker, WireFinding, source_of};
use crate::proctoring::watch_config;

/// Packets a checked camera may queue here before they are dropped (about two seconds).
const TAP_CAPACITY: usize = 1024;
/// How often watches are looked at for a decoder that stopped.
const WATCH_CHECK: Duration = Duration::from_secs(1);
/// How long a stopping worker waits for what its watches found last.
const LAST_FINDINGS_WITHIN: Duration = Duration::from_secs(2);

/// A camera being checked here.
struct Checked {
    watch: Watch,
    /// Carries the take's packets into the watch's tap; finished when the take ends or the
    /// watch goes.
    pump: JoinHandle<()>,
    /// Whether the take ended (the node stopped sending it), rather than the watch.
    take_ended: Arc<AtomicBool>,
}

/// How the session with the node ended.
enum Ended {
    /// The node said stop.
    Stopped,
    /// The node went (it died, or the network between).
    NodeGone,
    /// This worker is stopping: the job goes to another worker now.
    Leaving,
}

pub(super) async fn run_job(
    context: Arc<Context>,
    lease: Lease<ProctoringJob>,
    stopping: CancellationToken,
) -> Result<(), ApiError> {
    let context = &*context;
    let job = lease.job.clone();
    let internal = |err: &dyn std::fmt::Display| ApiError::Internal(err.to_string());
    // The models load before the node is dialed (the first job waits for them), the job
    // renewed meanwhile.
    let detectors = {
        let mut progress = tokio::time::interval(context.progress_every);
        let loading = context.detectors();
        tokio::pin!(loading);
        loop {
            tokio::select! {
                detectors = &mut loading => break detectors,
                _ = progress.tick() => { let _ = lease.progress().await; }
            }
        }
    };
    let node = NodeAddress {
        addr: job.link_addr,
        name: &job.link_name,
        token: &job.token,
        node: job.node.as_str(),
        about: &job.interview,
    };
    let Some((link, first, lease)) =
        connect::<_, FromChecker, ToChecker>(context, lease, node).await?
    else {
        return Ok(());
    };
    let WorkerLink { mut control, takes } = link;
    let times = match first {
        ToChecker::Begin { times } => times,
        ToChecker::Stop => {
            let _ = control.sender.send(&FromChecker::Stopped).await;
            takes.close();
            return lease.done().await.map_err(|e| internal(&e));
        }
    };
    tracing::info!(interview = %job.interview, node = %job.node, detector = detectors.name(), delivered = lease.delivered(), "checking a proctored room for a node");
    let checking = FromChecker::Checking {
        detector: detectors.name().to_owned(),
    };
    let _ = control.sender.send(&checking).await;
    let takes = Arc::new(takes);
    let (accepting, mut incoming) = super::accept_takes(&takes, &job.interview);
    let (found_tx, mut found) = mpsc::unbounded_channel::<(String, Finding)>();
    let mut checked: HashMap<String, Checked> = HashMap::new();
    let mut progress = tokio::time::interval(context.progress_every);
    let mut look = tokio::time::interval(WATCH_CHECK);
    let ended = loop {
        tokio::select! {
            take = incoming.recv() => {
                let Some((header, receiver)) = take else {
                    break Ended::NodeGone;
                };
                let take = header.id.clone();
                match check(&header, receiver, &detectors, watch_config(&times, source_of(&header.source)), &found_tx) {
                    Ok(running) => {
                        checked.insert(take, running);
                    }
                    Err(reason) => {
                        tracing::info!(interview = %job.interview, %take, %reason, "a camera is not checked");
                        let _ = control.sender.send(&FromChecker::Unwatchable { take, reason }).await;
                    }
                }
            }
            Some((take, finding)) = found.recv() => {
                let found = FromChecker::Found { take, finding: WireFinding::of(&finding) };
                // A failed send shows as the link's end.
                let _ = control.sender.send(&found).await;
            }
            () = stopping.cancelled() => break Ended::Leaving,
            message = control.receiver.recv() => match message {
                Ok(Some(ToChecker::Stop)) => break Ended::Stopped,
                Ok(Some(ToChecker::Begin { .. })) => {}
                Ok(None) | Err(_) => break Ended::NodeGone,
            },
            _ = progress.tick() => {
                if let Err(err) = lease.progress().await {
                    tracing::warn!(interview = %job.interview, %err, "job progress not reported");
                }
            }
            _ = look.tick() => {
                // A take the node ended goes quietly; a decoder that stopped on a take that
                // goes on is said, once.
                let finished: Vec<String> = checked
                    .iter()
                    .filter(|(_, c)| c.pump.is_finished() || c.watch.ended())
                    .map(|(take, _)| take.clone())
                    .collect();
                for take in finished {
                    let Some(gone) = checked.remove(&take) else { continue };
                    gone.pump.abort();
                    if !gone.take_ended.load(Ordering::Relaxed) {
                        let reason = "the decoder stopped".to_owned();
                        let _ = control.sender.send(&FromChecker::Unwatchable { take, reason }).await;
                    }
                }
            }
        }
    };
    accepting.abort();
    // Dropping a watch stops its threads; what they found last still goes to the node.
    for (_, gone) in checked.drain() {
        gone.pump.abort();
    }
    drop(found_tx);
    match ended {
        Ended::Stopped => {
            let last = async {
                while let Some((take, finding)) = found.recv().await {
                    let found = FromChecker::Found {
                        take,
                        finding: WireFinding::of(&finding),
                    };
                    let _ = control.sender.send(&found).await;
                }
            };
            let _ = tokio::time::timeout(LAST_FINDINGS_WITHIN, last).await;
            let _ = control.sender.send(&FromChecker::Stopped).await;
            tracing::info!(interview = %job.interview, "proctoring checks stopped");
            takes.close();
            lease.done().await.map_err(|e| internal(&e))
        }
        Ended::NodeGone => {
            // A node that lives feeds the job's next worker; a dead one is not reached.
            tracing::warn!(interview = %job.interview, node = %job.node, "the node went; the proctoring job goes back to the queue");
            takes.close();
            lease
                .retry_later(RETRY_DELAY)
                .await
                .map_err(|e| internal(&e))
        }
        Ended::Leaving => {
            // The checks go on at once with another worker, not after the ack wait.
            tracing::info!(interview = %job.interview, "worker stopping: the proctoring job goes to another worker");
            takes.close();
            lease
                .retry_later(Duration::ZERO)
                .await
                .map_err(|e| internal(&e))
        }
    }
}

/// Starts checking one take: its packets go into a relayed tap the watch reads; what the
/// watch finds goes to `found`, tagged with the take. `Err` says why it cannot be checked.
fn check(
    header: &TakeHeader,
    receiver: TakeReceiver,
    detectors: &Detectors,
    config: WatchConfig,
    found: &mpsc::UnboundedSender<(String, Finding)>,
) -> Result<Checked, String> {
    let (relay, tap) = TapReceiver::relayed(header.codec, TAP_CAPACITY);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let source = source_of(&header.source);
    let watch =
        sightline_proctor::watch(tap, source, detectors.clone(), config, tx).map_err(|err| {
            tracing::debug!(%err, "a take cannot be watched");
            "its video cannot be decoded for checks".to_owned()
        })?;
    let take_ended = Arc::new(AtomicBool::new(false));
    let pump = tokio::spawn(pump(receiver, relay, Arc::clone(&take_ended)));
    let forward = found.clone();
    let take = header.id.clone();
    tokio::spawn(async move {
        while let Some(finding) = rx.recv().await {
            if forward.send((take.clone(), finding)).is_err() {
                break;
            }
        }
    });
    Ok(Checked {
        watch,
        pump,
        take_ended,
    })
}

/// Carries a take's packets into a watch's tap, and the watch's keyframe requests back,
/// until the take ends (said in `take_ended`) or the watch goes.
async fn pump(mut receiver: TakeReceiver, relay: TapRelay, take_ended: Arc<AtomicBool>) {
    loop {
        if relay.take_keyframe_request() {
            receiver.request_keyframe();
        }
        tokio::select! {
            packet = receiver.recv() => match packet {
                Some(packet) => {
                    if !relay.offer(packet) {
                        return;
                    }
                }
                None => {
                    take_ended.store(true, Ordering::Relaxed);
                    return;
                }
            },
            () = relay.consumer_gone() => return,
        }
    }
}
