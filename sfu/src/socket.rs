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
use std::ops::Range;

use quinn_udp::{BATCH_SIZE, RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Room for one datagram; WebRTC keeps packets under the path MTU.
const DATAGRAM: usize = 2048;
/// The most one segmented send (UDP GSO) may carry: an IP packet's 64 KiB, less headers.
const GSO_BYTES: usize = 65_000;

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
        self.send_as(transmit, &transmit.contents, None)
    }

    /// Sends a run of datagrams to one destination from one source (see [`gso_runs`]) without
    /// waiting: as one segmented send (UDP GSO) where the kernel offers it, one by one
    /// otherwise. `buffer` is scratch space for the joined segments. Returns how many the socket
    /// took (all or none of a segmented send).
    pub(crate) fn send_run(&self, run: &[str0m::net::Transmit], buffer: &mut Vec<u8>) -> usize {
        let [first, ..] = run else {
            return 0;
        };
        if run.len() == 1 || self.state.max_gso_segments() < run.len() {
            return run.iter().filter(|t| self.send(t)).count();
        }
        buffer.clear();
        for transmit in run {
            buffer.extend_from_slice(&transmit.contents);
        }
        if self.send_as(first, buffer, Some(first.contents.len())) {
            run.len()
        } else {
            0
        }
    }

    fn send_as(
        &self,
        transmit: &str0m::net::Transmit,
        contents: &[u8],
        segment_size: Option<usize>,
    ) -> bool {
        let source = transmit.source.ip();
        let src_ip = self.local_ips.contains(&source).then_some(source);
        let outgoing = Transmit {
            destination: transmit.destination,
            ecn: None,
            contents,
            segment_size,
            src_ip,
        };
        self.io
            .try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.io).into(), &outgoing)
            })
            .is_ok()
    }

    /// The most datagrams one segmented send may carry here (1 without GSO).
    pub(crate) fn max_segments(&self) -> usize {
        self.state.max_gso_segments()
    }
}

/// Orders `transmits` by destination and source, keeping each pair's own order, so that what
/// goes to one destination lies together for [`gso_runs`].
pub(crate) fn sort_by_path(transmits: &mut [str0m::net::Transmit]) {
    transmits.sort_by_key(|t| (t.destination, t.source));
}

/// Splits transmits (ordered by [`sort_by_path`]) into runs one segmented send can carry: same
/// destination and source, every datagram the size of the first but the last (which may be
/// shorter), at most `max_segments` of them and [`GSO_BYTES`] in all. A video frame's packets to
/// one subscriber usually make one run (str0m cuts a frame into equal packets, the last
/// shorter). Pure, so it is tested without a socket; allocates nothing.
pub(crate) fn gso_runs(
    transmits: &[str0m::net::Transmit],
    max_segments: usize,
) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        let first = transmits.get(start)?;
        let size = first.contents.len();
        let mut end = start + 1;
        while let Some(next) = transmits.get(end) {
            let room = end - start < max_segments.max(1) && (end - start + 1) * size <= GSO_BYTES;
            let same_path = next.destination == first.destination && next.source == first.source;
            let fits = next.contents.len() <= size && !next.contents.is_empty();
            if !room || !same_path || !fits {
                break;
            }
            end += 1;
            // A shorter datagram ends the run.
            if next.contents.len() < size {
                break;
            }
        }
        let run = start..end;
        start = end;
        Some(run)
    })
}

#[cfg(test)]
mod tests {
    use str0m::net::{DatagramSend, Protocol, Transmit};

    use super::*;

    fn transmit(to: u16, size: usize, tag: u8) -> Transmit {
        Transmit {
            proto: Protocol::Udp,
            source: "10.0.0.1:5000".parse().expect("address"),
            destination: SocketAddr::from(([10, 0, 0, 2], to)),
            contents: DatagramSend::from(vec![tag; size]),
        }
    }

    #[test]
    fn runs_join_equal_datagrams_to_one_destination_and_end_at_a_shorter_one() {
        let mut transmits = vec![
            transmit(7000, 1200, 1),
            transmit(7001, 1200, 2),
            transmit(7000, 1200, 3),
            transmit(7000, 900, 4),
            transmit(7000, 1200, 5),
            transmit(7001, 80, 6),
        ];
        sort_by_path(&mut transmits);
        let runs: Vec<Range<usize>> = gso_runs(&transmits, 64).collect();
        let tags: Vec<Vec<u8>> = runs
            .iter()
            .map(|run| {
                transmits[run.clone()]
                    .iter()
                    .map(|t| t.contents[0])
                    .collect()
            })
            .collect();
        // Per destination in the order they were made; 7000's run ends at its shorter one.
        assert_eq!(tags, vec![vec![1, 3, 4], vec![5], vec![2, 6]]);
    }

    #[test]
    fn runs_respect_the_segment_and_byte_limits() {
        let mut transmits: Vec<Transmit> = (0..100).map(|n| transmit(7000, 1200, n)).collect();
        sort_by_path(&mut transmits);
        let runs: Vec<Range<usize>> = gso_runs(&transmits, 64).collect();
        assert!(runs.iter().all(|run| run.len() * 1200 <= GSO_BYTES));
        assert_eq!(runs.iter().map(|run| run.len()).sum::<usize>(), 100);
        let mut single = vec![transmit(7000, 1200, 0), transmit(7000, 1200, 1)];
        sort_by_path(&mut single);
        assert_eq!(gso_runs(&single, 1).collect::<Vec<_>>(), vec![0..1, 1..2]);
    }
}
