//! ICE over TCP (RFC 6544) for one worker: its listener, its connections, and RFC 4571 framing
//! (each datagram preceded by its length in two bytes), for browsers whose network blocks UDP.
//!
//! The engine sees every frame as a datagram with `Protocol::Tcp` from the connection's remote
//! address, and sends by remote address; this module only moves frames. Each connection has a
//! reader task and a writer task on the worker's runtime. What a connection may cost is bounded:
//! connections per worker (`max_connections`, more are closed at once), a frame's size, the time
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

/// What the connections tell the worker.
#[derive(Debug)]
pub(crate) enum TcpInput {
    /// One frame from `remote`, which reached us at `local`.
    Frame {
        remote: SocketAddr,
        local: SocketAddr,
        frame: Bytes,
    },
    /// The connection from `remote` ended (closed, silent too long, or broke the framing).
    Closed { remote: SocketAddr },
}

struct Connection {
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
    /// Connections closed because the worker held its maximum.
    pub refused: u64,
}

/// The codec of RFC 4571: a two-byte big-endian length, then that many bytes.
fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(2)
        .max_frame_length(MAX_FRAME)
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

    /// Starts serving a new connection, or closes it when the worker holds its maximum.
    pub fn admit(&mut self, stream: TcpStream, remote: SocketAddr) {
        if self.connections.len() >= self.max_connections {
            self.refused += 1;
            tracing::debug!(%remote, "ICE-TCP connection refused: too many open");
            return;
        }
        let Ok(local) = stream.local_addr() else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (out, out_rx) = mpsc::channel(WRITE_QUEUE);
        let reader = tokio::spawn(read_frames(read, remote, local, self.inputs_tx.clone()));
        tokio::spawn(write_frames(write, out_rx));
        // A remote address reused while its old connection's end is still queued replaces it.
        if let Some(old) = self.connections.insert(
            remote,
            Connection {
                out,
                reader: reader.abort_handle(),
                claimed: false,
            },
        ) {
            old.reader.abort();
        }
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

    /// Queues one datagram for `remote`'s connection; `false` when there is none or its queue is
    /// full (the datagram is dropped, as a full socket buffer would drop it).
    pub fn send(&mut self, remote: SocketAddr, contents: &[u8]) -> bool {
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
    remote: SocketAddr,
    local: SocketAddr,
    to_worker: mpsc::Sender<TcpInput>,
) {
    let mut frames = FramedRead::new(read, codec());
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
            remote,
            local,
            frame,
        };
        if to_worker.send(input).await.is_err() {
            return;
        }
    }
    let _ = to_worker.send(TcpInput::Closed { remote }).await;
}

/// Writes what the worker queued, a batch per write; ends when the worker forgets the connection
/// or the peer stops reading.
async fn write_frames(write: OwnedWriteHalf, mut out: mpsc::Receiver<Bytes>) {
    let mut sink = FramedWrite::new(write, codec());
    while let Some(frame) = out.recv().await {
        let batch = async {
            sink.feed(frame).await?;
            while let Ok(more) = out.try_recv() {
                sink.feed(more).await?;
            }
            SinkExt::<Bytes>::flush(&mut sink).await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, batch).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
