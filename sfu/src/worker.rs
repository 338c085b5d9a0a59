//! The thin async shell around an [`Engine`]: one OS thread per worker, each with its own
//! single-threaded tokio runtime, UDP socket and engine.
//!
//! Rooms are pinned to a worker, so everything a packet touches on its way through lives on one
//! thread: no lock is shared between workers. Commands arrive on a channel and answer through a
//! oneshot; events leave on a bounded channel to the signaling layer and are never dropped: when
//! signaling falls behind and the channel is full, the worker keeps them in order and stops
//! reading its socket until they are delivered (datagrams wait in, and past its size are
//! dropped by, the kernel's buffer), while commands and timers go on. Sending never waits: a datagram the
//! socket cannot take right now is dropped and counted, as any router would, and RTP's own
//! recovery (NACK, PLI) deals with it.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::net::{Protocol, Transmit};
use tokio::sync::{mpsc, oneshot};

use crate::engine::{Engine, Event, Output, SfuError};
use crate::ids::{PeerId, TrackId, TrackSpace};
use crate::layer::Quality;
use crate::socket::{MediaSocket, RecvBuffers, gso_runs, sort_by_path};
use crate::stats::WorkerStats;
use crate::tap::TapReceiver;
pub use crate::tcp::TcpConfig;
use crate::tcp::{TcpInput, TcpMedia};

/// Commands waiting for a worker before callers are told it is overloaded.
const COMMAND_QUEUE: usize = 1024;
/// Events every worker may have waiting for signaling before it holds the rest back (the
/// capacity of the channel the caller makes for [`WorkerHandle::spawn`]; a suggestion).
pub const EVENT_QUEUE: usize = 4096;
/// The kernel's buffers of a worker's socket, each way. One socket carries every peer connection
/// of the worker, so its receive buffer is all that absorbs a burst while the worker thread is
/// not running (keyframes of many cameras at once, a busy CPU): the kernel's default (about
/// 208 KiB) overflowed at 40 participants on a busy 2-core machine and lost 6% of the media.
/// The kernel caps it at `net.core.rmem_max` / `wmem_max`; the worker logs what it got.
const SOCKET_BUFFER: usize = 8 << 20;

/// Where a worker listens and what it advertises.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Address to bind (port 0 picks one).
    pub bind: SocketAddr,
    /// Extra addresses clients may reach this worker at (same port), e.g. a LAN or public IP.
    pub public_ips: Vec<IpAddr>,
    /// See [`Engine::set_bandwidth_estimation`].
    pub bandwidth_estimation: bool,
    /// See [`Engine::set_stopped_line_limit`].
    pub stopped_line_limit: usize,
    /// ICE over TCP, when on.
    pub tcp: Option<TcpConfig>,
    /// Where its tracks are numbered (see [`TrackSpace`]).
    pub track_space: TrackSpace,
}

/// An event from a worker, tagged with the worker it came from.
#[derive(Debug)]
pub struct WorkerEvent {
    /// Index of the worker.
    pub worker: usize,
    /// What happened.
    pub event: Event,
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
        tracks: Vec<TrackId>,
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
    Hold {
        track: TrackId,
        held: bool,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    AddCandidate {
        peer: PeerId,
        candidate: String,
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
    tcp_addr: Option<SocketAddr>,
    commands: mpsc::Sender<Command>,
    stats: Arc<WorkerStats>,
}

impl WorkerHandle {
    /// Binds the socket and starts the worker's thread.
    pub fn spawn(
        index: usize,
        config: WorkerConfig,
        events: mpsc::Sender<WorkerEvent>,
    ) -> Result<(WorkerHandle, JoinHandle<()>), SfuError> {
        let socket = std::net::UdpSocket::bind(config.bind)?;
        socket.set_nonblocking(true)?;
        size_buffers(index, &socket);
        let local_addr = socket.local_addr()?;
        let listener = match &config.tcp {
            Some(tcp) => {
                let listener = std::net::TcpListener::bind(tcp.bind)?;
                listener.set_nonblocking(true)?;
                Some(listener)
            }
            None => None,
        };
        let tcp_addr = listener.as_ref().map(|l| l.local_addr()).transpose()?;
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
                        let sockets = Sockets {
                            udp: socket,
                            tcp: listener,
                        };
                        runtime.block_on(run(index, sockets, config, inbox, events, thread_stats))
                    }
                    Err(err) => tracing::error!(worker = index, %err, "no runtime for worker"),
                }
            })?;
        Ok((
            WorkerHandle {
                index,
                local_addr,
                tcp_addr,
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

    /// The TCP address the worker takes ICE over TCP on, when it does.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The worker's counters, shared with its thread.
    pub fn stats(&self) -> &Arc<WorkerStats> {
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
            tracks: vec![track],
            quality,
            reply,
        })
        .await
    }

    /// See [`Engine::subscribe_all`].
    pub async fn subscribe_all(
        &self,
        peer: PeerId,
        tracks: Vec<TrackId>,
        quality: Quality,
    ) -> Result<(), SfuError> {
        self.call(|reply| Command::Subscribe {
            peer,
            tracks,
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

    /// See [`Engine::hold`].
    pub async fn hold(&self, track: TrackId, held: bool) -> Result<(), SfuError> {
        self.call(|reply| Command::Hold { track, held, reply })
            .await
    }

    /// See [`Engine::add_remote_candidate`].
    pub async fn add_remote_candidate(
        &self,
        peer: PeerId,
        candidate: String,
    ) -> Result<(), SfuError> {
        self.call(|reply| Command::AddCandidate {
            peer,
            candidate,
            reply,
        })
        .await
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

/// Asks for [`SOCKET_BUFFER`] each way; a smaller grant is logged, not fatal.
fn size_buffers(index: usize, socket: &std::net::UdpSocket) {
    let socket = socket2::SockRef::from(socket);
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    let (receive, send) = (
        socket.recv_buffer_size().unwrap_or(0),
        socket.send_buffer_size().unwrap_or(0),
    );
    // Linux reports twice what it keeps for data (the rest is bookkeeping).
    if receive < SOCKET_BUFFER {
        tracing::warn!(
            worker = index,
            receive,
            send,
            wanted = SOCKET_BUFFER,
            "the kernel capped the media socket's buffers (raise net.core.rmem_max and wmem_max)"
        );
    } else {
        tracing::debug!(worker = index, receive, send, "media socket buffers");
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
            tracks,
            quality,
            reply,
        } => {
            let result = match tracks.as_slice() {
                [track] => engine.subscribe(peer, *track, quality),
                many => engine.subscribe_all(peer, many, quality),
            };
            let _ = reply.send(result);
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
        Command::Hold { track, held, reply } => {
            let _ = reply.send(engine.hold(track, held));
        }
        Command::AddCandidate {
            peer,
            candidate,
            reply,
        } => {
            let _ = reply.send(engine.add_remote_candidate(peer, &candidate));
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

/// Datagram batches a worker reads per wake-up before it looks at commands and timers again, so
/// a flood on the socket cannot starve signaling.
const BATCHES_PER_WAKE: usize = 16;
/// ICE-TCP frames the worker takes per wake-up, handed to the engine before one drain.
const TCP_INPUTS_PER_WAKE: usize = 32;
/// How long the ICE-TCP listener rests after a failed accept.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// A worker's bound sockets, handed to its thread.
struct Sockets {
    udp: std::net::UdpSocket,
    tcp: Option<std::net::TcpListener>,
}

async fn run(
    index: usize,
    sockets: Sockets,
    config: WorkerConfig,
    mut inbox: mpsc::Receiver<Command>,
    events: mpsc::Sender<WorkerEvent>,
    stats: Arc<WorkerStats>,
) {
    let socket = match MediaSocket::new(sockets.udp, &config.public_ips) {
        Ok(socket) => socket,
        Err(err) => {
            tracing::error!(worker = index, %err, "worker socket unusable");
            return;
        }
    };
    let local = socket.local_addr();
    let mut engine = Engine::new(local, &config.public_ips, Instant::now());
    engine.set_bandwidth_estimation(config.bandwidth_estimation);
    engine.set_stopped_line_limit(config.stopped_line_limit);
    engine.set_track_space(config.track_space);
    let (mut tcp, listener, mut tcp_inputs) = match (sockets.tcp, &config.tcp) {
        (Some(listener), Some(tcp_config)) => {
            match TcpMedia::new(listener, tcp_config.max_connections) {
                Ok((tcp, listener, inputs)) => (Some(tcp), Some(listener), Some(inputs)),
                Err(err) => {
                    tracing::error!(worker = index, %err, "ICE-TCP listener unusable");
                    return;
                }
            }
        }
        _ => (None, None, None),
    };
    if let Some(tcp) = &tcp {
        engine.listen_tcp(tcp.local_addr(), &config.public_ips);
    }
    let mut buffers = socket.buffers();
    let mut out = Outlet {
        index,
        events,
        backlog: VecDeque::new(),
        stats,
        outgoing: Vec::new(),
        joined: Vec::new(),
    };
    // The same channel, for waiting on room in it while the outlet is borrowed.
    let events = out.events.clone();
    let mut accept_after = Instant::now();
    let timer = tokio::time::sleep_until(Instant::now().into());
    tokio::pin!(timer);
    tracing::info!(worker = index, %local, "sfu worker running");
    loop {
        let Some(deadline) = out.flush(&mut engine, &socket, tcp.as_mut()) else {
            tracing::info!(worker = index, "nobody listens to events; stopping");
            return;
        };
        timer.as_mut().reset(deadline.into());
        tokio::select! {
            // Signaling is behind: deliver what waits before taking more from the socket.
            permit = events.reserve(), if !out.backlog.is_empty() => match permit {
                Ok(permit) => out.deliver_backlog(permit),
                Err(_) => {
                    tracing::info!(worker = index, "nobody listens to events; stopping");
                    return;
                }
            },
            ready = socket.readable(), if out.backlog.is_empty() => {
                if let Err(err) = ready {
                    tracing::debug!(worker = index, %err, "socket not readable");
                    continue;
                }
                if !out.receive(&mut engine, &socket, tcp.as_mut(), &mut buffers) {
                    return;
                }
            },
            accepted = accept(listener.as_ref()), if Instant::now() >= accept_after => match accepted {
                Ok((stream, remote)) => {
                    if let Some(tcp) = tcp.as_mut() {
                        tcp.admit(stream, remote);
                        out.stats.tcp_connections.store(tcp.open() as u64, Ordering::Relaxed);
                        out.stats.tcp_refused.store(tcp.refused, Ordering::Relaxed);
                    }
                }
                Err(err) => {
                    // Out of descriptors, most likely: the connection stays queued and accepting
                    // again at once would fail again, so the listener rests (the next engine
                    // timer after this wakes the loop to try again).
                    tracing::debug!(worker = index, %err, "ICE-TCP accept failed");
                    accept_after = Instant::now() + ACCEPT_BACKOFF;
                }
            },
            input = tcp_input(tcp_inputs.as_mut()), if out.backlog.is_empty() => {
                if let (Some(tcp), Some(input)) = (tcp.as_mut(), input) {
                    let arrived = Instant::now();
                    out.take_tcp(&mut engine, tcp, input);
                    // What else the connections said meanwhile goes through in the same drain.
                    for _ in 1..TCP_INPUTS_PER_WAKE {
                        match tcp_inputs.as_mut().map(mpsc::Receiver::try_recv) {
                            Some(Ok(more)) => out.take_tcp(&mut engine, tcp, more),
                            _ => break,
                        }
                    }
                    let sent_before = out.stats.datagrams_out.load(Ordering::Relaxed);
                    if out.flush(&mut engine, &socket, Some(tcp)).is_none() {
                        tracing::info!(worker = index, "nobody listens to events; stopping");
                        return;
                    }
                    if out.stats.datagrams_out.load(Ordering::Relaxed) != sent_before {
                        out.stats.forwarding.record(arrived.elapsed());
                    }
                }
            },
            command = inbox.recv() => match command {
                Some(command) => execute(&mut engine, command),
                None => {
                    tracing::info!(worker = index, "all handles dropped; stopping");
                    return;
                }
            },
            () = &mut timer => engine.handle_timeout(Instant::now()),
        }
    }
}

/// The next connection to the worker's ICE-TCP listener; never, without one.
async fn accept(
    listener: Option<&tokio::net::TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// What an ICE-TCP connection says next; never, without a listener.
async fn tcp_input(inputs: Option<&mut mpsc::Receiver<TcpInput>>) -> Option<TcpInput> {
    match inputs {
        Some(inputs) => inputs.recv().await,
        None => std::future::pending().await,
    }
}

/// Where a worker's output goes: datagrams to the socket, events to signaling, counts to stats.
struct Outlet {
    index: usize,
    events: mpsc::Sender<WorkerEvent>,
    /// Events the full channel did not take yet, oldest first.
    backlog: VecDeque<WorkerEvent>,
    stats: Arc<WorkerStats>,
    /// The datagrams of one drain, sent together when it ends.
    outgoing: Vec<Transmit>,
    /// Scratch space for a segmented send.
    joined: Vec<u8>,
}

impl Outlet {
    /// Drains the engine (its run-loop contract): reports events, sends what it produced, and
    /// returns the next deadline; `None` when nobody listens to events any more.
    fn flush(
        &mut self,
        engine: &mut Engine,
        socket: &MediaSocket,
        tcp: Option<&mut TcpMedia>,
    ) -> Option<Instant> {
        let mut listened = true;
        let deadline = loop {
            match engine.poll_output() {
                Output::Transmit(transmit) => self.outgoing.push(transmit),
                Output::Event(event) => {
                    let event = WorkerEvent {
                        worker: self.index,
                        event,
                    };
                    listened &= self.report(event);
                }
                Output::Timeout(at) => break at,
            }
        };
        self.send(socket, tcp);
        listened.then_some(deadline)
    }

    /// Hands an event to signaling, or keeps it (in order) while the channel is full; `false`
    /// when nobody listens any more.
    fn report(&mut self, event: WorkerEvent) -> bool {
        if !self.backlog.is_empty() {
            self.backlog.push_back(event);
            return true;
        }
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(event)) => {
                self.backlog.push_back(event);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Delivers the oldest waiting event with `permit`, and as many more as the channel takes.
    fn deliver_backlog(&mut self, permit: mpsc::Permit<'_, WorkerEvent>) {
        let Some(first) = self.backlog.pop_front() else {
            return;
        };
        permit.send(first);
        while let Some(event) = self.backlog.pop_front() {
            match self.events.try_send(event) {
                Ok(()) => {}
                Err(
                    mpsc::error::TrySendError::Full(event)
                    | mpsc::error::TrySendError::Closed(event),
                ) => {
                    self.backlog.push_front(event);
                    return;
                }
            }
        }
    }

    /// Sends the drain's datagrams, a run to one destination in one system call where the
    /// kernel segments it (UDP GSO): a video frame's packets to one subscriber go together.
    fn send(&mut self, socket: &MediaSocket, tcp: Option<&mut TcpMedia>) {
        // What goes over ICE-TCP is framed onto its connection; the rest is UDP.
        if let Some(tcp) = tcp {
            self.outgoing.retain(|t| {
                if t.proto != Protocol::Tcp {
                    return true;
                }
                let sent = tcp.send(t.destination, &t.contents);
                let counter = if sent {
                    &self.stats.datagrams_out
                } else {
                    &self.stats.send_drops
                };
                counter.fetch_add(1, Ordering::Relaxed);
                false
            });
        }
        sort_by_path(&mut self.outgoing);
        for run in gso_runs(&self.outgoing, socket.max_segments()) {
            let count = run.len() as u64;
            let sent = socket.send_run(&self.outgoing[run], &mut self.joined) as u64;
            self.stats.datagrams_out.fetch_add(sent, Ordering::Relaxed);
            self.stats
                .send_drops
                .fetch_add(count - sent, Ordering::Relaxed);
        }
        self.outgoing.clear();
    }

    /// Reads what is waiting, a bounded number of batches, handing a whole batch to the engine
    /// before sending what it produced: one drain and one deadline per `recvmmsg`, not per
    /// datagram. The time from the batch's arrival to its last datagram sent is what the worker
    /// adds to a forwarded packet's journey. `false` when the worker must stop.
    fn receive(
        &mut self,
        engine: &mut Engine,
        socket: &MediaSocket,
        mut tcp: Option<&mut TcpMedia>,
        buffers: &mut RecvBuffers,
    ) -> bool {
        let mut alive = true;
        for _ in 0..BATCHES_PER_WAKE {
            let arrived = Instant::now();
            let received = socket.receive(buffers, |datagram| {
                engine.handle_datagram(
                    arrived,
                    datagram.source,
                    datagram.destination,
                    datagram.contents,
                );
            });
            match received {
                Ok(0) => break,
                Ok(count) => {
                    self.stats
                        .datagrams_in
                        .fetch_add(count as u64, Ordering::Relaxed);
                }
                Err(err) => {
                    tracing::debug!(worker = self.index, %err, "receive failed");
                    break;
                }
            }
            let sent_before = self.stats.datagrams_out.load(Ordering::Relaxed);
            alive &= self.flush(engine, socket, tcp.as_deref_mut()).is_some();
            if self.stats.datagrams_out.load(Ordering::Relaxed) != sent_before {
                self.stats.forwarding.record(arrived.elapsed());
            }
        }
        self.stats
            .garbage_datagrams
            .store(engine.garbage_datagrams(), Ordering::Relaxed);
        alive
    }

    /// Hands one ICE-TCP frame to the engine (the caller flushes what it produced), or forgets a
    /// connection that ended.
    fn take_tcp(&mut self, engine: &mut Engine, tcp: &mut TcpMedia, input: TcpInput) {
        match input {
            TcpInput::Frame {
                id,
                remote,
                local,
                frame,
            } => {
                // The last frames of a connection already replaced or closed are not its.
                if !tcp.current(id, remote) {
                    return;
                }
                self.stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
                let taken =
                    engine.handle_receive(Instant::now(), Protocol::Tcp, remote, local, &frame);
                tcp.handled(remote, taken);
                if !tcp.current(id, remote) {
                    engine.forget_remote(Protocol::Tcp, remote);
                }
                self.stats
                    .garbage_datagrams
                    .store(engine.garbage_datagrams(), Ordering::Relaxed);
            }
            TcpInput::Closed { id, remote } => {
                if tcp.current(id, remote) {
                    tcp.close(remote);
                    // A later connection from the same address starts unclaimed.
                    engine.forget_remote(Protocol::Tcp, remote);
                }
            }
        }
        self.stats
            .tcp_connections
            .store(tcp.open() as u64, Ordering::Relaxed);
    }
}
