//! A worker's UDP socket: batched receives that say which local address each datagram reached,
//! and sends from the address the client talks to.
//!
//! Built on `quinn-udp` (the socket layer of quinn): `recvmmsg` reads up to
//! [`quinn_udp::BATCH_SIZE`] datagrams per system call (and coalesced ones where the kernel does
//! GRO), and `IP_PKTINFO` tells each datagram's destination address. That matters when the
//! socket is bound to an unspecified address (`0.0.0.0`, to serve the LAN and the loopback at
//! once): str0m only accepts datagrams addressed to one of its candidates, and a reply must leave
//! from the address the client sent to.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};

use quinn_udp::{BATCH_SIZE, RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Room for one datagram; WebRTC keeps packets under the path MTU.
const DATAGRAM: usize = 2048;

/// One worker's socket.
#[derive(Debug)]
pub(crate) struct MediaSocket {
    io: UdpSocket,
    state: UdpSocketState,
    local: SocketAddr,
    /// When bound to an unspecified address: the advertised addresses that belong to this host,
    /// so a reply to a client leaves from the address it used. Empty otherwise (the bound
    /// address is the only one), and an advertised address that is not this host's (a 1:1 NAT in
    /// front) is left to the kernel's routing.
    local_ips: Vec<IpAddr>,
}

/// Reusable receive buffers: one allocation per worker, none per datagram.
pub(crate) struct RecvBuffers {
    storage: Box<[u8]>,
    slot: usize,
    meta: [RecvMeta; BATCH_SIZE],
}

/// One datagram out of a batch.
pub(crate) struct Datagram<'a> {
    pub(crate) source: SocketAddr,
    pub(crate) destination: SocketAddr,
    pub(crate) contents: &'a [u8],
}

impl MediaSocket {
    /// Takes over a bound, non-blocking socket that advertises `advertised`. Must run inside a
    /// tokio runtime.
    pub(crate) fn new(
        socket: std::net::UdpSocket,
        advertised: &[IpAddr],
    ) -> io::Result<MediaSocket> {
        let state = UdpSocketState::new((&socket).into())?;
        let io = UdpSocket::from_std(socket)?;
        let local = io.local_addr()?;
        // An address is this host's when a socket can bind it.
        let local_ips = advertised
            .iter()
            .copied()
            .filter(|ip| local.ip().is_unspecified() && std::net::UdpSocket::bind((*ip, 0)).is_ok())
            .collect();
        Ok(MediaSocket {
            io,
            state,
            local,
            local_ips,
        })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Buffers sized for this socket's batches.
    pub(crate) fn buffers(&self) -> RecvBuffers {
        let slot = DATAGRAM * self.state.gro_segments().max(1);
        RecvBuffers {
            storage: vec![0; slot * BATCH_SIZE].into_boxed_slice(),
            slot,
            meta: [RecvMeta::default(); BATCH_SIZE],
        }
    }

    /// Resolves when datagrams may be waiting.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// Reads one batch without blocking and hands each datagram to `each`; returns how many
    /// datagrams there were (0 when none was waiting).
    pub(crate) fn receive(
        &self,
        buffers: &mut RecvBuffers,
        mut each: impl FnMut(Datagram<'_>),
    ) -> io::Result<usize> {
        let RecvBuffers {
            storage,
            slot,
            meta,
        } = buffers;
        let mut chunks = storage.chunks_mut(*slot);
        let mut slices: [IoSliceMut<'_>; BATCH_SIZE] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
        let received = match self.io.try_io(Interest::READABLE, || {
            self.state.recv((&self.io).into(), &mut slices, meta)
        }) {
            Ok(received) => received,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(err) => return Err(err),
        };
        let mut count = 0;
        for (meta, slice) in meta.iter().zip(slices.iter()).take(received) {
            let destination = match meta.dst_ip {
                Some(ip) if self.local.ip().is_unspecified() => {
                    SocketAddr::new(ip, self.local.port())
                }
                _ => self.local,
            };
            let bytes = slice.get(..meta.len).unwrap_or_default();
            // With GRO one buffer holds several datagrams of `stride` bytes (the last shorter).
            for contents in bytes.chunks(meta.stride.max(1)) {
                count += 1;
                each(Datagram {
                    source: meta.addr,
                    destination,
                    contents,
                });
            }
        }
        Ok(count)
    }

    /// Sends one datagram without waiting; `false` when the socket refused it.
    pub(crate) fn send(&self, transmit: &str0m::net::Transmit) -> bool {
        let source = transmit.source.ip();
        let src_ip = self.local_ips.contains(&source).then_some(source);
        let outgoing = Transmit {
            destination: transmit.destination,
            ecn: None,
            contents: &transmit.contents,
            segment_size: None,
            src_ip,
        };
        self.io
            .try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.io).into(), &outgoing)
            })
            .is_ok()
    }
}
