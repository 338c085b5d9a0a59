//! A str0m peer connection on its own UDP socket on 127.0.0.1, driven the way str0m's contract
//! asks: every received datagram is followed at once by a full poll (str0m keeps a received RTP
//! packet only until the next poll), then time advances.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;

/// Where test peers live unless told otherwise.
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A client peer connection over real UDP.
#[derive(Debug)]
pub struct UdpPeer {
    /// The peer connection (RTP mode or frame mode, as built).
    pub rtc: Rtc,
    socket: UdpSocket,
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
            addr,
            buffer: vec![0; 2048],
            deadline: Instant::now(),
        })
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

    /// Polls until str0m's next wake-up lies in the future, feeding it the time whenever it is
    /// due (str0m releases newly written media only on a timeout).
    fn drain(&mut self, events: &mut Vec<Event>) -> Result<()> {
        self.rtc.handle_input(Input::Timeout(Instant::now()))?;
        // A timer that keeps asking for the present gets a few turns, not an endless loop.
        let mut turns = 8;
        loop {
            match self.rtc.poll_output()? {
                Output::Transmit(t) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(event) => events.push(event),
                Output::Timeout(at) => {
                    let now = Instant::now();
                    if at > now || turns == 0 {
                        self.deadline = at.max(now + Duration::from_millis(1));
                        return Ok(());
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
        Ok(self.socket.readable().await?)
    }

    /// Sends and receives what is waiting, then waits up to 5 ms for more input.
    pub async fn step(&mut self, events: &mut Vec<Event>) -> Result<()> {
        self.pump(events)?;
        let _ = tokio::time::timeout(Duration::from_millis(5), self.socket.readable()).await;
        self.pump(events)
    }
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
