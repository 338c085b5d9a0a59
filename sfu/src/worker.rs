//! The thin async shell around an [`Engine`]: one OS thread per worker, each with its own
//! single-threaded tokio runtime, UDP socket and engine.
//!
//! Rooms are pinned to a worker, so everything a packet touches on its way through lives on one
//! thread: no lock is shared between workers. Commands arrive on a channel and answer through a
//! oneshot; events leave on a channel to the signaling layer. Sending never waits: a datagram the
//! socket cannot take right now is dropped and counted, as any router would, and RTP's own
//! recovery (NACK, PLI) deals with it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::engine::{Engine, Event, Output, PeerId, SfuError, TrackId};
use crate::layer::Quality;
use crate::tap::TapReceiver;

/// Largest datagram read; WebRTC keeps packets under the path MTU, this leaves room.
const RECV_BUFFER: usize = 2048;
/// Commands waiting for a worker before callers are told it is overloaded.
const COMMAND_QUEUE: usize = 1024;

/// Where a worker listens and what it advertises.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Address to bind (port 0 picks one).
    pub bind: SocketAddr,
    /// Extra addresses clients may reach this worker at (same port), e.g. a LAN or public IP.
    pub public_ips: Vec<IpAddr>,
    /// See [`Engine::set_bandwidth_estimation`].
    pub bandwidth_estimation: bool,
}

/// An event from a worker, tagged with the worker it came from.
#[derive(Debug)]
pub struct WorkerEvent {
    /// Index of the worker.
    pub worker: usize,
    /// What happened.
    pub event: Event,
}

/// Counters a worker keeps for metrics.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Datagrams received.
    pub datagrams_in: AtomicU64,
    /// Datagrams sent.
    pub datagrams_out: AtomicU64,
    /// Datagrams dropped because the socket would have blocked or failed.
    pub send_drops: AtomicU64,
}

enum Command {
    AddPublisher {
        peer: PeerId,
        offer: SdpOffer,
        reply: oneshot::Sender<Result<SdpAnswer, SfuError>>,
    },
    AddSubscriber {
        peer: PeerId,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Subscribe {
        peer: PeerId,
        track: TrackId,
        quality: Quality,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    SetQuality {
        peer: PeerId,
        track: TrackId,
        quality: Quality,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    AcceptAnswer {
        peer: PeerId,
        answer: SdpAnswer,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    RemovePeer {
        peer: PeerId,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    RestartIce {
        peer: PeerId,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    AddTap {
        track: TrackId,
        quality: Quality,
        capacity: usize,
        reply: oneshot::Sender<Result<TapReceiver, SfuError>>,
    },
}

/// A running worker; dropping every handle stops it.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    index: usize,
    local_addr: SocketAddr,
    commands: mpsc::Sender<Command>,
    stats: Arc<WorkerStats>,
}

impl WorkerHandle {
    /// Binds the socket and starts the worker's thread.
    pub fn spawn(
        index: usize,
        config: WorkerConfig,
        events: mpsc::UnboundedSender<WorkerEvent>,
    ) -> Result<(WorkerHandle, JoinHandle<()>), SfuError> {
        let socket = std::net::UdpSocket::bind(config.bind)?;
        socket.set_nonblocking(true)?;
        let local_addr = socket.local_addr()?;
        let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
        let stats = Arc::new(WorkerStats::default());
        let thread_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name(format!("sfu-worker-{index}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => {
                        runtime.block_on(run(index, socket, config, inbox, events, thread_stats))
                    }
                    Err(err) => tracing::error!(worker = index, %err, "no runtime for worker"),
                }
            })?;
        Ok((
            WorkerHandle {
                index,
                local_addr,
                commands,
                stats,
            },
            thread,
        ))
    }

    /// The worker's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The UDP address the worker receives on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The worker's counters.
    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, SfuError>>) -> Command,
    ) -> Result<T, SfuError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .try_send(make(reply))
            .map_err(|_| SfuError::WorkerUnavailable)?;
        answer.await.map_err(|_| SfuError::WorkerUnavailable)?
    }

    /// See [`Engine::publisher_offer`].
    pub async fn publisher_offer(
        &self,
        peer: PeerId,
        offer: SdpOffer,
    ) -> Result<SdpAnswer, SfuError> {
        self.call(|reply| Command::AddPublisher { peer, offer, reply })
            .await
    }

    /// See [`Engine::add_subscriber`].
    pub async fn add_subscriber(&self, peer: PeerId) -> Result<(), SfuError> {
        self.call(|reply| Command::AddSubscriber { peer, reply })
            .await
    }

    /// See [`Engine::subscribe`].
    pub async fn subscribe(
        &self,
        peer: PeerId,
        track: TrackId,
        quality: Quality,
    ) -> Result<(), SfuError> {
        self.call(|reply| Command::Subscribe {
            peer,
            track,
            quality,
            reply,
        })
        .await
    }

    /// See [`Engine::set_quality`].
    pub async fn set_quality(
        &self,
        peer: PeerId,
        track: TrackId,
        quality: Quality,
    ) -> Result<(), SfuError> {
        self.call(|reply| Command::SetQuality {
            peer,
            track,
            quality,
            reply,
        })
        .await
    }

    /// See [`Engine::accept_answer`].
    pub async fn accept_answer(&self, peer: PeerId, answer: SdpAnswer) -> Result<(), SfuError> {
        self.call(|reply| Command::AcceptAnswer {
            peer,
            answer,
            reply,
        })
        .await
    }

    /// See [`Engine::remove_peer`].
    pub async fn remove_peer(&self, peer: PeerId) -> Result<(), SfuError> {
        self.call(|reply| Command::RemovePeer { peer, reply }).await
    }

    /// See [`Engine::restart_ice`].
    pub async fn restart_ice(&self, peer: PeerId) -> Result<(), SfuError> {
        self.call(|reply| Command::RestartIce { peer, reply }).await
    }

    /// See [`Engine::add_tap`].
    pub async fn add_tap(
        &self,
        track: TrackId,
        quality: Quality,
        capacity: usize,
    ) -> Result<TapReceiver, SfuError> {
        self.call(|reply| Command::AddTap {
            track,
            quality,
            capacity,
            reply,
        })
        .await
    }
}

fn execute(engine: &mut Engine, command: Command) {
    let now = Instant::now();
    // A caller that stopped waiting for its reply is no reason to stop the worker.
    match command {
        Command::AddPublisher { peer, offer, reply } => {
            let _ = reply.send(engine.publisher_offer(peer, offer, now));
        }
        Command::AddSubscriber { peer, reply } => {
            let _ = reply.send(engine.add_subscriber(peer, now));
        }
        Command::Subscribe {
            peer,
            track,
            quality,
            reply,
        } => {
            let _ = reply.send(engine.subscribe(peer, track, quality));
        }
        Command::SetQuality {
            peer,
            track,
            quality,
            reply,
        } => {
            let _ = reply.send(engine.set_quality(peer, track, quality));
        }
        Command::AcceptAnswer {
            peer,
            answer,
            reply,
        } => {
            let _ = reply.send(engine.accept_answer(peer, answer));
        }
        Command::RemovePeer { peer, reply } => {
            let _ = reply.send(engine.remove_peer(peer));
        }
        Command::RestartIce { peer, reply } => {
            let _ = reply.send(engine.restart_ice(peer));
        }
        Command::AddTap {
            track,
            quality,
            capacity,
            reply,
        } => {
            let _ = reply.send(engine.add_tap(track, quality, capacity));
        }
    }
}

async fn run(
    index: usize,
    socket: std::net::UdpSocket,
    config: WorkerConfig,
    mut inbox: mpsc::Receiver<Command>,
    events: mpsc::UnboundedSender<WorkerEvent>,
    stats: Arc<WorkerStats>,
) {
    let socket = match UdpSocket::from_std(socket) {
        Ok(socket) => socket,
        Err(err) => {
            tracing::error!(worker = index, %err, "worker socket unusable");
            return;
        }
    };
    let local = match socket.local_addr() {
        Ok(addr) => addr,
        Err(err) => {
            tracing::error!(worker = index, %err, "worker socket has no address");
            return;
        }
    };
    let mut engine = Engine::new(local, &config.public_ips);
    engine.set_bandwidth_estimation(config.bandwidth_estimation);
    let mut buffer = vec![0u8; RECV_BUFFER];
    tracing::info!(worker = index, %local, "sfu worker running");
    loop {
        let deadline = loop {
            match engine.poll_output() {
                Output::Transmit(transmit) => {
                    match socket.try_send_to(&transmit.contents, transmit.destination) {
                        Ok(_) => stats.datagrams_out.fetch_add(1, Ordering::Relaxed),
                        Err(_) => stats.send_drops.fetch_add(1, Ordering::Relaxed),
                    };
                }
                Output::Event(event) => {
                    if events
                        .send(WorkerEvent {
                            worker: index,
                            event,
                        })
                        .is_err()
                    {
                        tracing::info!(worker = index, "nobody listens to events; stopping");
                        return;
                    }
                }
                Output::Timeout(at) => break at,
            }
        };
        tokio::select! {
            received = socket.recv_from(&mut buffer) => match received {
                Ok((len, source)) => {
                    stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
                    let data = buffer.get(..len).unwrap_or_default();
                    engine.handle_datagram(Instant::now(), source, local, data);
                }
                Err(err) => tracing::debug!(worker = index, %err, "receive failed"),
            },
            command = inbox.recv() => match command {
                Some(command) => execute(&mut engine, command),
                None => {
                    tracing::info!(worker = index, "all handles dropped; stopping");
                    return;
                }
            },
            () = tokio::time::sleep_until(deadline.into()) => {
                engine.handle_timeout(Instant::now());
            }
        }
    }
}
