//! ICE over TCP (RFC 6544) for one worker: its listener, its connections, and RFC 4571 framing
//! (each datagram preceded by its length in two bytes), for browsers whose network blocks UDP.
//!
//! The engine sees every frame as a datagram with `Protocol::Tcp` from the connection's remote
//! address, and sends by remote address; this module only moves frames. Each connection has a
//! reader task and a writer task on the worker's runtime. What a connection may cost is bounded:
//! connections per worker (`max_connections`, more are closed at once) and per source address
//! (an eighth of them, at least 16: a host cannot take every place), a frame's size, the time
//! to the first frame and between frames, the frames waiting in each direction. The first frame
//! must look like a STUN message and a peer must take it, or the connection is closed: garbage on
//! the port costs one read.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

/// Largest frame taken: more than any datagram a WebRTC stack sends (they keep under 1,500
/// bytes), far less than the 64 KiB the length field allows. A longer one closes the connection.
pub const MAX_FRAME: usize = 2048;
/// Time a new connection has to send its first frame (a STUN binding request).
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a connection may stay silent; browsers send consent checks every few seconds.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time one write may wait for a peer that stopped reading before its connection is closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames waiting to be written to one connection; past this the worker drops what it sends
/// there, as a full UDP socket would.
const WRITE_QUEUE: usize = 512;
/// Frames from every connection waiting for the worker.
const READ_QUEUE: usize = 1024;
/// Frames written to one connection before a flush: a writer that cannot keep up still makes
/// progress batch by batch, and only a flush that makes none for `WRITE_TIMEOUT` ends it.
const WRITE_BATCH: usize = 64;
/// One source address may hold this share of a worker's connections (a browser needs two per
/// room; a company network behind one address needs more)...
const PER_SOURCE_SHARE: usize = 8;
/// ...but never fewer than this many.
const PER_SOURCE_MIN: usize = 16;
/// STUN's magic cookie (RFC 5389), in bytes 4..8 of every STUN message.
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// Where a worker takes ICE over TCP.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// Address to listen on (port 0 picks one).
    pub bind: SocketAddr,
    /// Connections held at once.
    pub max_connections: usize,
}

/// What the connections tell the worker. `id` tells a connection from an earlier one from the
/// same remote address whose last words are still queued.
#[derive(Debug)]
pub(crate) enum TcpInput {
    /// One frame from `remote`, which reached us at `local`.
    Frame {
        id: u64,
        remote: SocketAddr,
        local: SocketAddr,
        frame: Bytes,
    },
    /// The connection from `remote` ended (closed, silent too long, broke the framing, or its
    /// peer stopped reading what it was sent).
    Closed { id: u64, remote: SocketAddr },
}

struct Connection {
    id: u64,
    out: mpsc::Sender<Bytes>,
    reader: AbortHandle,
    /// Whether a peer has taken one of its frames.
    claimed: bool,
}

/// A worker's ICE-TCP connections.
pub(crate) struct TcpMedia {
    local: SocketAddr,
    max_connections: usize,
    connections: HashMap<SocketAddr, Connection>,
    inputs_tx: mpsc::Sender<TcpInput>,
    next_id: u64,
    /// Connections closed because the worker held its maximum.
    pub refused: u64,
}

/// The codec of RFC 4571: a two-byte big-endian length, then that many bytes, at most
/// `max_frame`.
fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(2)
        .max_frame_length(max_frame)
        .new_codec()
}

/// Whether a frame can be a STUN message: what the first frame of an ICE connection must be.
fn looks_like_stun(frame: &[u8]) -> bool {
    frame.len() >= 20 && frame[0] & 0xc0 == 0 && frame[4..8] == MAGIC_COOKIE
}

impl TcpMedia {
    /// Takes over a bound listener; must run inside the worker's runtime. The worker's loop
    /// awaits the listener and what the connections say (the receiver) while this, the
    /// connections, changes in its handlers.
    pub fn new(
        listener: std::net::TcpListener,
        max_connections: usize,
    ) -> io::Result<(TcpMedia, TcpListener, mpsc::Receiver<TcpInput>)> {
        let (inputs_tx, inputs) = mpsc::channel(READ_QUEUE);
        let listener = TcpListener::from_std(listener)?;
        let media = TcpMedia {
            local: listener.local_addr()?,
            max_connections,
            connections: HashMap::new(),
            inputs_tx,
            next_id: 0,
            refused: 0,
        };
        Ok((media, listener, inputs))
    }

    /// Where the listener listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.connections.len()
    }

    /// Connections one source address may hold.
    fn max_per_source(&self) -> usize {
        (self.max_connections / PER_SOURCE_SHARE).max(PER_SOURCE_MIN)
    }

    /// Starts serving a new connection, or closes it when the worker, or its source address,
    /// holds its maximum.
    pub fn admit(&mut self, stream: TcpStream, remote: SocketAddr) {
        if self.connections.len() >= self.max_connections {
            self.refused += 1;
            tracing::debug!(%remote, "ICE-TCP connection refused: too many open");
            return;
        }
        // Accepts are rare next to packets: counting is cheaper than keeping a second map true.
        let from_source = self
            .connections
            .keys()
            .filter(|open| open.ip() == remote.ip() && **open != remote)
            .count();
        if from_source >= self.max_per_source() {
            self.refused += 1;
            tracing::debug!(%remote, "ICE-TCP connection refused: too many from its address");
            return;
        }
        let Ok(local) = stream.local_addr() else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (out, out_rx) = mpsc::channel(WRITE_QUEUE);
        self.next_id += 1;
        let id = self.next_id;
        let reader = tokio::spawn(read_frames(read, id, remote, local, self.inputs_tx.clone()));
        tokio::spawn(write_frames(
            write,
            out_rx,
            id,
            remote,
            self.inputs_tx.clone(),
        ));
        // A remote address reused while its old connection's end is still queued replaces it.
        if let Some(old) = self.connections.insert(
            remote,
            Connection {
                id,
                out,
                reader: reader.abort_handle(),
                claimed: false,
            },
        ) {
            old.reader.abort();
        }
    }

    /// Whether `id` is the connection from `remote` held now (not an earlier one).
    pub fn current(&self, id: u64, remote: SocketAddr) -> bool {
        self.connections.get(&remote).is_some_and(|c| c.id == id)
    }

    /// What the engine made of a frame from `remote`: a connection none of whose frames a peer
    /// took is closed at its first refusal.
    pub fn handled(&mut self, remote: SocketAddr, taken: bool) {
        let Some(connection) = self.connections.get_mut(&remote) else {
            return;
        };
        if taken {
            connection.claimed = true;
        } else if !connection.claimed {
            self.close(remote);
        }
    }

    /// Forgets a connection and closes it (both halves end once their tasks do).
    pub fn close(&mut self, remote: SocketAddr) {
        if let Some(connection) = self.connections.remove(&remote) {
            connection.reader.abort();
        }
    }

    /// Queues one datagram for `remote`'s connection; `false` when there is none, its queue is
    /// full (the datagram is dropped, as a full socket buffer would drop it), or it is longer
    /// than a frame can say.
    pub fn send(&mut self, remote: SocketAddr, contents: &[u8]) -> bool {
        if contents.len() > usize::from(u16::MAX) {
            return false;
        }
        match self.connections.get(&remote) {
            Some(connection) => connection
                .out
                .try_send(Bytes::copy_from_slice(contents))
                .is_ok(),
            None => false,
        }
    }
}

impl Drop for TcpMedia {
    fn drop(&mut self) {
        for connection in self.connections.values() {
            connection.reader.abort();
        }
    }
}

/// Reads frames until the connection ends, breaks the framing, or goes silent; then says so.
async fn read_frames(
    read: OwnedReadHalf,
    id: u64,
    remote: SocketAddr,
    local: SocketAddr,
    to_worker: mpsc::Sender<TcpInput>,
) {
    let mut frames = FramedRead::new(read, codec(MAX_FRAME));
    let mut wait = FIRST_FRAME_TIMEOUT;
    let mut first = true;
    loop {
        let frame = match tokio::time::timeout(wait, frames.next()).await {
            Ok(Some(Ok(frame))) => frame.freeze(),
            // Silent too long, closed, a frame over `MAX_FRAME`, or an I/O error.
            Err(_) | Ok(None | Some(Err(_))) => break,
        };
        if first && !looks_like_stun(&frame) {
            break;
        }
        first = false;
        wait = IDLE_TIMEOUT;
        let input = TcpInput::Frame {
            id,
            remote,
            local,
            frame,
        };
        if to_worker.send(input).await.is_err() {
            return;
        }
    }
    let _ = to_worker.send(TcpInput::Closed { id, remote }).await;
}

/// Writes what the worker queued, up to `WRITE_BATCH` frames per flush; ends when the worker
/// forgets the connection, or when the peer stops reading (a batch that cannot be written within
/// `WRITE_TIMEOUT`), and then says so, so that the worker forgets it.
async fn write_frames(
    write: OwnedWriteHalf,
    mut out: mpsc::Receiver<Bytes>,
    id: u64,
    remote: SocketAddr,
    to_worker: mpsc::Sender<TcpInput>,
) {
    // Frames as long as the length field allows: the worker sends what its peers produce.
    let mut sink = FramedWrite::new(write, codec(usize::from(u16::MAX)));
    while let Some(frame) = out.recv().await {
        let batch = async {
            sink.feed(frame).await?;
            for _ in 1..WRITE_BATCH {
                match out.try_recv() {
                    Ok(more) => sink.feed(more).await?,
                    Err(_) => break,
                }
            }
            SinkExt::<Bytes>::flush(&mut sink).await
        };
        if !matches!(tokio::time::timeout(WRITE_TIMEOUT, batch).await, Ok(Ok(()))) {
            let _ = to_worker.send(TcpInput::Closed { id, remote }).await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::io::AsyncReadExt;

    /// A connected pair on loopback: the server's end split as `admit` splits it, the client's.
    async fn pair() -> (OwnedReadHalf, OwnedWriteHalf, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("listens");
        let addr = listener.local_addr().expect("address");
        let client = TcpStream::connect(addr).await.expect("connects");
        let (server, _) = listener.accept().await.expect("accepts");
        let (read, write) = server.into_split();
        (read, write, client)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_datagram_longer_than_a_read_frame_is_still_written() {
        let (_read, write, mut client) = pair().await;
        let (out_tx, out_rx) = mpsc::channel(4);
        let (inputs_tx, mut inputs) = mpsc::channel(4);
        let remote = client.local_addr().expect("address");
        tokio::spawn(write_frames(write, out_rx, 1, remote, inputs_tx));
        out_tx
            .send(Bytes::from(vec![7u8; 3000]))
            .await
            .expect("queued");
        let mut header = [0u8; 2];
        client.read_exact(&mut header).await.expect("length");
        assert_eq!(u16::from_be_bytes(header), 3000);
        let mut body = vec![0u8; 3000];
        client.read_exact(&mut body).await.expect("frame");
        assert!(body.iter().all(|b| *b == 7));
        assert!(inputs.try_recv().is_err(), "the writer goes on");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_peer_that_stops_reading_is_closed_and_the_worker_told() {
        let (_read, write, client) = pair().await;
        let (out_tx, out_rx) = mpsc::channel(WRITE_QUEUE);
        let (inputs_tx, mut inputs) = mpsc::channel(4);
        let remote = client.local_addr().expect("address");
        tokio::spawn(write_frames(write, out_rx, 9, remote, inputs_tx));
        // The client never reads: the kernel's buffers fill, then the writer's flush stalls.
        let deadline = Instant::now() + Duration::from_secs(60);
        let closed = loop {
            while out_tx.try_send(Bytes::from(vec![0u8; 1200])).is_ok() {}
            match inputs.try_recv() {
                Ok(input) => break Some(input),
                Err(_) if Instant::now() > deadline => break None,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        assert!(
            matches!(closed, Some(TcpInput::Closed { id: 9, remote: r }) if r == remote),
            "{closed:?}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn one_source_address_cannot_take_every_place() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listens");
        listener
            .set_nonblocking(true)
            .expect("non-blocking, as the worker sets it");
        let (mut media, listener, _inputs) = TcpMedia::new(listener, 256).expect("media");
        let addr = media.local_addr();
        let per_source = 256 / PER_SOURCE_SHARE;
        let connect_from = |ip: &str| {
            let from: SocketAddr = format!("{ip}:0").parse().expect("address");
            async move {
                let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                socket.bind(from).expect("binds");
                socket.connect(addr).await.expect("connects")
            }
        };
        let mut clients = Vec::new();
        for _ in 0..=per_source {
            clients.push(connect_from("127.0.0.1").await);
            let (stream, remote) = listener.accept().await.expect("accepts");
            media.admit(stream, remote);
        }
        assert_eq!(
            media.open(),
            per_source,
            "one more from the same address is refused"
        );
        assert_eq!(media.refused, 1);
        // Another address still gets in.
        clients.push(connect_from("127.0.0.2").await);
        let (stream, remote) = listener.accept().await.expect("accepts");
        media.admit(stream, remote);
        assert_eq!(media.open(), per_source + 1);
        assert_eq!(media.refused, 1);
    }

    #[test]
    fn only_stun_shaped_frames_open_a_connection() {
        let mut stun = [0u8; 20];
        stun[1] = 0x01; // a binding request
        stun[4..8].copy_from_slice(&MAGIC_COOKIE);
        assert!(looks_like_stun(&stun));
        assert!(!looks_like_stun(&stun[..19]));
        let mut rtp = stun;
        rtp[0] = 0x80;
        assert!(!looks_like_stun(&rtp));
        assert!(!looks_like_stun(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
}
