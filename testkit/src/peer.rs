//! A str0m peer connection on its own UDP socket on 127.0.0.1, driven the way str0m's contract
//! asks: every received datagram is followed at once by a full poll (str0m keeps a received RTP
//! packet only until the next poll), then time advances.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// Where test peers live unless told otherwise.
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// An ICE-TCP connection to the server, RFC 4571 framed: what waits to be written, and what was
/// read but is not a whole frame yet.
#[derive(Debug)]
struct TcpLink {
    stream: TcpStream,
    server: SocketAddr,
    local: SocketAddr,
    outgoing: Vec<u8>,
    incoming: Vec<u8>,
}

/// A client peer connection over real UDP (or, once [`UdpPeer::use_tcp`] is called, over one
/// ICE-TCP connection to the server, as a browser on a network without UDP).
#[derive(Debug)]
pub struct UdpPeer {
    /// The peer connection (RTP mode or frame mode, as built).
    pub rtc: Rtc,
    socket: UdpSocket,
    tcp: Option<TcpLink>,
    addr: SocketAddr,
    buffer: Vec<u8>,
    /// When str0m next wants time to advance, as of the last `pump`.
    deadline: Instant,
}

impl UdpPeer {
    /// A peer in RTP mode: it sends and receives RTP packets as they are.
    pub async fn rtp() -> Result<UdpPeer> {
        UdpPeer::rtp_on(LOOPBACK).await
    }

    /// A peer in frame mode: str0m packetizes what it sends and reassembles what it receives,
    /// as a browser does.
    pub async fn frames() -> Result<UdpPeer> {
        UdpPeer::frames_on(LOOPBACK).await
    }

    /// [`UdpPeer::rtp`] on another local address.
    pub async fn rtp_on(ip: IpAddr) -> Result<UdpPeer> {
        UdpPeer::with(Rtc::builder().set_rtp_mode(true), ip).await
    }

    /// [`UdpPeer::frames`] on another local address.
    pub async fn frames_on(ip: IpAddr) -> Result<UdpPeer> {
        UdpPeer::with(Rtc::builder(), ip).await
    }

    async fn with(config: RtcConfig, ip: IpAddr) -> Result<UdpPeer> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let addr = socket.local_addr()?;
        let mut rtc = config.build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp")?);
        Ok(UdpPeer {
            rtc,
            socket,
            tcp: None,
            addr,
            buffer: vec![0; 2048],
            deadline: Instant::now(),
        })
    }

    /// From now on reaches the server only over TCP: connects from this peer's address to the
    /// server's passive candidate `server` and offers an active TCP candidate for it. Give the
    /// peer only the server's TCP candidates (see [`tcp_candidates_only`]), or ICE may pick UDP.
    pub async fn use_tcp(&mut self, server: SocketAddr) -> Result<()> {
        let socket = match server {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(self.addr.ip(), 0))?;
        let stream = socket.connect(server).await?;
        stream.set_nodelay(true)?;
        let local = stream.local_addr()?;
        let candidate = Candidate::builder()
            .tcp()
            .host(local)
            .tcptype(TcpType::Active)
            .build()?;
        self.rtc.add_local_candidate(candidate);
        self.tcp = Some(TcpLink {
            stream,
            server,
            local,
            outgoing: Vec::new(),
            incoming: Vec::new(),
        });
        Ok(())
    }

    /// Whether the peer talks to the server over TCP.
    pub fn on_tcp(&self) -> bool {
        self.tcp.is_some()
    }

    /// Whether the connection has come up (ICE and DTLS done).
    pub fn connected(events: &[Event]) -> bool {
        events.iter().any(|e| matches!(e, Event::Connected))
    }

    /// Reads every datagram waiting without blocking and lets time advance, draining str0m after
    /// each input, so that everything released (media written since the last call included) is
    /// sent before this returns. Events go to `events`.
    pub fn pump(&mut self, events: &mut Vec<Event>) -> Result<()> {
        self.drain(events)?;
        if self.tcp.is_some() {
            return self.pump_tcp(events);
        }
        while let Ok((len, source)) = self.socket.try_recv_from(&mut self.buffer) {
            let Ok(contents) = self.buffer[..len].try_into() else {
                continue;
            };
            self.rtc.handle_input(Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: self.addr,
                    contents,
                },
            ))?;
            self.drain(events)?;
        }
        Ok(())
    }

    /// `pump` over TCP: every whole frame read is one datagram.
    fn pump_tcp(&mut self, events: &mut Vec<Event>) -> Result<()> {
        loop {
            let Some(link) = self.tcp.as_mut() else {
                return Ok(());
            };
            let len = match link.stream.try_read(&mut self.buffer) {
                Ok(0) => anyhow::bail!("the server closed the ICE-TCP connection"),
                Ok(len) => len,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) => return Err(err.into()),
            };
            link.incoming.extend_from_slice(&self.buffer[..len]);
            let (server, local) = (link.server, link.local);
            let mut frames = Vec::new();
            while link.incoming.len() >= 2 {
                let size = usize::from(u16::from_be_bytes([link.incoming[0], link.incoming[1]]));
                if link.incoming.len() < 2 + size {
                    break;
                }
                frames.push(link.incoming[2..2 + size].to_vec());
                link.incoming.drain(..2 + size);
            }
            for frame in frames {
                let Ok(contents) = frame.as_slice().try_into() else {
                    continue;
                };
                self.rtc.handle_input(Input::Receive(
                    Instant::now(),
                    Receive {
                        proto: Protocol::Tcp,
                        source: server,
                        destination: local,
                        contents,
                    },
                ))?;
                self.drain(events)?;
            }
        }
    }

    /// Writes what waits for the TCP connection, as much as it takes now.
    fn flush_tcp(&mut self) -> Result<()> {
        let Some(link) = self.tcp.as_mut() else {
            return Ok(());
        };
        while !link.outgoing.is_empty() {
            match link.stream.try_write(&link.outgoing) {
                Ok(written) => {
                    link.outgoing.drain(..written);
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// Polls until str0m's next wake-up lies in the future, feeding it the time whenever it is
    /// due (str0m releases newly written media only on a timeout).
    fn drain(&mut self, events: &mut Vec<Event>) -> Result<()> {
        self.rtc.handle_input(Input::Timeout(Instant::now()))?;
        // A timer that keeps asking for the present gets a few turns, not an endless loop.
        let mut turns = 8;
        loop {
            match self.rtc.poll_output()? {
                Output::Transmit(t) => match self.tcp.as_mut() {
                    Some(link) if t.proto == Protocol::Tcp => {
                        let len = u16::try_from(t.contents.len())?;
                        link.outgoing.extend(len.to_be_bytes());
                        link.outgoing.extend_from_slice(&t.contents);
                    }
                    _ => {
                        let _ = self.socket.try_send_to(&t.contents, t.destination);
                    }
                },
                Output::Event(event) => events.push(event),
                Output::Timeout(at) => {
                    let now = Instant::now();
                    if at > now || turns == 0 {
                        self.deadline = at.max(now + Duration::from_millis(1));
                        return self.flush_tcp();
                    }
                    turns -= 1;
                    self.rtc.handle_input(Input::Timeout(now))?;
                }
            }
        }
    }

    /// When str0m next wants time to advance (call `pump` by then).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Resolves when a datagram is waiting (to wait on several peers at once).
    pub async fn readable(&self) -> Result<()> {
        match &self.tcp {
            Some(link) => Ok(link.stream.readable().await?),
            None => Ok(self.socket.readable().await?),
        }
    }

    /// Sends and receives what is waiting, then waits up to 5 ms for more input.
    pub async fn step(&mut self, events: &mut Vec<Event>) -> Result<()> {
        self.pump(events)?;
        let _ = tokio::time::timeout(Duration::from_millis(5), self.readable()).await;
        self.pump(events)
    }
}

/// The SFU's ICE-TCP address: the first passive TCP candidate in an SDP.
pub fn tcp_candidate_addr(sdp: &str) -> Result<SocketAddr> {
    let line = sdp
        .lines()
        .find(|l| {
            l.starts_with("a=candidate:") && l.contains(" tcp ") && l.contains("tcptype passive")
        })
        .context("the SDP has a passive TCP candidate")?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (ip, port) = (
        fields.get(4).context("candidate ip")?,
        fields.get(5).context("candidate port")?,
    );
    Ok(format!("{ip}:{port}").parse()?)
}

/// The SDP without its UDP candidates: what a client that cannot send UDP can use.
pub fn tcp_candidates_only(sdp: &str) -> String {
    sdp.split_inclusive("\r\n")
        .filter(|line| !line.starts_with("a=candidate:") || line.contains(" tcp "))
        .collect()
}

/// The SFU's UDP address: the first host candidate in an SDP.
pub fn candidate_addr(sdp: &str) -> Result<SocketAddr> {
    let line = sdp
        .lines()
        .find(|l| l.starts_with("a=candidate:"))
        .context("the SDP has a candidate")?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (ip, port) = (
        fields.get(4).context("candidate ip")?,
        fields.get(5).context("candidate port")?,
    );
    Ok(format!("{ip}:{port}").parse()?)
}
