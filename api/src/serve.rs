//! The HTTP listener's accept loop: connection limits that keep one client from taking the
//! server down.
//!
//! `axum::serve` reads headers with no deadline, never closes a silent connection and accepts
//! until the process runs out of file descriptors, at which point nobody can sign in. This loop
//! serves the same router over hyper's HTTP/1 connection, with:
//!
//! - a **header-read timeout** (hyper's own): a client that starts a request, or opens a
//!   connection, or keeps one alive, must send complete headers within it;
//! - an **idle timeout**: a connection on which no byte moved either way for that long is closed
//!   (a stalled upload, a client that stopped reading);
//! - a **cap** on open connections, kept below the file-descriptor limit. At the cap, the
//!   connection that has been idle longest (no request being handled) is shed for the new one;
//!   with none idle, the new one is answered 503 and closed.
//!
//! Upgraded connections (the signaling WebSocket) count against the cap until they close, but
//! are never shed: their own protocol decides when they end. This module must not know any
//! route; it serves whatever router it is given.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tower::ServiceExt;

/// Descriptors kept free for everything that is not an HTTP connection: database connections,
/// media sockets, recording files, log files.
const RESERVED_DESCRIPTORS: u64 = 512;
/// Refusals (503 answers) written at once; past this a connection over the cap is just closed.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// Time a refusal may take to write before the connection is dropped.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after an accept error such as `EMFILE`, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(20);
/// How long a graceful shutdown waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The body of the answer to a connection the server has no room for.
const REFUSAL_BODY: &str =
    r#"{"error":{"code":"overloaded","message":"the server is at its connection limit"}}"#;

/// The connection limits in force.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// See `http.header_read_timeout_ms`.
    pub header_read_timeout: Duration,
    /// See `http.idle_timeout_secs`.
    pub idle_timeout: Duration,
    /// The cap actually applied (the configured one, lowered to fit the descriptor limit).
    pub max_connections: usize,
}

impl Limits {
    /// The limits from `[http]`, with the cap lowered below the process's descriptor limit.
    pub fn from_settings(http: &sightline_config::HttpSettings) -> Limits {
        let descriptors = raise_descriptor_limit();
        let fitting = descriptors
            .saturating_sub(RESERVED_DESCRIPTORS)
            .max(RESERVED_DESCRIPTORS / 8);
        let max_connections = http
            .max_connections
            .min(usize::try_from(fitting).unwrap_or(usize::MAX));
        if max_connections < http.max_connections {
            tracing::warn!(
                configured = http.max_connections,
                applied = max_connections,
                descriptors,
                "http.max_connections lowered to fit the file-descriptor limit"
            );
        }
        Limits {
            header_read_timeout: Duration::from_millis(http.header_read_timeout_ms),
            idle_timeout: Duration::from_secs(http.idle_timeout_secs),
            max_connections,
        }
    }
}

/// Raises the soft descriptor limit as far as the hard one allows; returns the limit in force.
fn raise_descriptor_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft))
        .unwrap_or(1024)
}

/// Counters the metrics endpoint reads.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections open now, upgraded ones included.
    pub open: AtomicUsize,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Idle connections closed to make room for a new one.
    pub shed: AtomicU64,
    /// Connections refused with 503 (or dropped) at the cap.
    pub refused: AtomicU64,
    /// Connections closed because nothing moved on them for the idle timeout.
    pub idle_closed: AtomicU64,
}

/// One open, not yet upgraded connection, as the shedding decision sees it.
#[derive(Debug)]
struct Tracked {
    /// Milliseconds since the server's epoch at which a byte last moved.
    last_activity: Arc<AtomicU64>,
    /// Requests being handled now; a connection with one is never shed.
    busy: Arc<AtomicUsize>,
    /// Wakes the connection's task to close it.
    shed: Arc<Notify>,
}

/// The set of open connections and the counters over them.
#[derive(Debug)]
struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    connections: Mutex<HashMap<u64, Tracked>>,
    stats: Arc<ConnectionStats>,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Closes the connection idle longest; false when every connection is busy or upgraded.
    fn shed_oldest_idle(&self) -> bool {
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let oldest = connections
            .iter()
            .filter(|(_, c)| c.busy.load(Ordering::Relaxed) == 0)
            .min_by_key(|(_, c)| c.last_activity.load(Ordering::Relaxed))
            .map(|(id, _)| *id);
        match oldest.and_then(|id| connections.remove(&id)) {
            Some(victim) => {
                victim.shed.notify_one();
                self.stats.shed.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    fn forget(&self, id: u64) {
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&id);
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets open requests finish
/// (for at most [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stats: Arc<ConnectionStats>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let registry = Arc::new(Registry {
        epoch: Instant::now(),
        next_id: AtomicU64::new(0),
        connections: Mutex::new(HashMap::new()),
        stats,
    });
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a sender; when all are gone, `recv` returns `None`.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors (or another transient error): free one if we can and
                    // pause rather than spin.
                    tracing::warn!(%err, "accept failed");
                    registry.shed_oldest_idle();
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let stats = &registry.stats;
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        if stats.open.load(Ordering::Relaxed) >= limits.max_connections
            && !registry.shed_oldest_idle()
        {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            refuse(stream, &refusals);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let connection = Connection::register(&registry, stream);
        let router = router.clone();
        let stop = stop_rx.clone();
        let alive = alive_tx.clone();
        tokio::spawn(async move {
            connection.run(router, peer, limits, stop).await;
            drop(alive);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, alive_rx.recv()).await;
    Ok(())
}

/// Answers a connection over the cap with 503, in the background and bounded.
fn refuse(mut stream: TcpStream, refusals: &Arc<Semaphore>) {
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{REFUSAL_BODY}",
            REFUSAL_BODY.len()
        );
        let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await
        })
        .await;
        drop(permit);
    });
}

/// One accepted connection and what the registry knows of it.
struct Connection {
    id: u64,
    registry: Arc<Registry>,
    io: TrackedIo,
    busy: Arc<AtomicUsize>,
    shed: Arc<Notify>,
}

impl Connection {
    fn register(registry: &Arc<Registry>, stream: TcpStream) -> Connection {
        let id = registry.next_id.fetch_add(1, Ordering::Relaxed);
        let last_activity = Arc::new(AtomicU64::new(registry.now_ms()));
        let busy = Arc::new(AtomicUsize::new(0));
        let shed = Arc::new(Notify::new());
        registry
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(
                id,
                Tracked {
                    last_activity: last_activity.clone(),
                    busy: busy.clone(),
                    shed: shed.clone(),
                },
            );
        let io = TrackedIo {
            stream,
            last_activity,
            registry: registry.clone(),
            _open: OpenGuard::new(registry.stats.clone()),
        };
        Connection {
            id,
            registry: registry.clone(),
            io,
            busy,
            shed,
        }
    }

    async fn run(
        self,
        router: Router,
        peer: SocketAddr,
        limits: Limits,
        mut stop: watch::Receiver<bool>,
    ) {
        let Connection {
            id,
            registry,
            io,
            busy,
            shed,
        } = self;
        let last_activity = io.last_activity.clone();
        let busy_for_service = busy.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let guard = BusyGuard::new(busy_for_service.clone());
            let router = router.clone();
            async move {
                let response = router.oneshot(request.map(axum::body::Body::new)).await;
                drop(guard);
                Ok::<_, Infallible>(match response {
                    Ok(response) => response,
                    Err(never) => match never {},
                })
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let connection = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(connection);
        let idle_ms = u64::try_from(limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut stopping = false;
        loop {
            let quiet_for = registry
                .now_ms()
                .saturating_sub(last_activity.load(Ordering::Relaxed));
            let idle_in = Duration::from_millis(idle_ms.saturating_sub(quiet_for));
            tokio::select! {
                _ = connection.as_mut() => break,
                () = shed.notified() => break,
                changed = stop.changed(), if !stopping => {
                    stopping = true;
                    if changed.is_ok() {
                        connection.as_mut().graceful_shutdown();
                    }
                }
                () = tokio::time::sleep(idle_in) => {
                    let quiet_for = registry
                        .now_ms()
                        .saturating_sub(last_activity.load(Ordering::Relaxed));
                    if quiet_for >= idle_ms {
                        registry.stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
        registry.forget(id);
    }
}

/// Counts a request as being handled while it lives.
struct BusyGuard(Arc<AtomicUsize>);

impl BusyGuard {
    fn new(busy: Arc<AtomicUsize>) -> BusyGuard {
        busy.fetch_add(1, Ordering::Relaxed);
        BusyGuard(busy)
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a connection as open while its socket lives (through an upgrade, too).
#[derive(Debug)]
struct OpenGuard(Arc<ConnectionStats>);

impl OpenGuard {
    fn new(stats: Arc<ConnectionStats>) -> OpenGuard {
        stats.open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(stats)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The TCP stream, noting when bytes last moved.
#[derive(Debug)]
struct TrackedIo {
    stream: TcpStream,
    last_activity: Arc<AtomicU64>,
    registry: Arc<Registry>,
    _open: OpenGuard,
}

impl TrackedIo {
    fn touch(&self) {
        self.last_activity
            .store(self.registry.now_ms(), Ordering::Relaxed);
    }
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
