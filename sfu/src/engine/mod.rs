//! The SFU engine: every peer connection of one worker, and forwarding between them.
//!
//! Sans-IO like the `str0m::Rtc`s it owns: datagrams, time and commands come in as arguments,
//! datagrams to send, events and the next timeout come out of [`Engine::poll_output`]. The
//! engine reads no clock and owns no socket.
//!
//! # Run-loop contract
//!
//! After every call that changes the engine (`handle_datagram`, `handle_timeout`, and every
//! command: `publisher_offer`, `add_subscriber`, `subscribe`, `set_quality`, `hold`,
//! `add_remote_candidate`, `accept_answer`, `restart_ice`, `add_tap`, `remove_peer`), drain
//! [`Engine::poll_output`] until it returns [`Output::Timeout`]; call `handle_timeout` no later
//! than that instant. Skipping the drain leaves packets unsent and peers unpolled.
//!
//! ```no_run
//! # use std::time::Instant;
//! # use sightline_sfu::{Engine, Output};
//! # fn send(_: &str0m::net::Transmit) {}
//! # fn receive() -> Option<(std::net::SocketAddr, std::net::SocketAddr, Vec<u8>)> { None }
//! # let mut engine = Engine::new("127.0.0.1:5000".parse().unwrap(), &[], Instant::now());
//! loop {
//!     let deadline = loop {
//!         match engine.poll_output() {
//!             Output::Transmit(t) => send(&t),
//!             Output::Event(_event) => { /* to signaling */ }
//!             Output::Timeout(at) => break at,
//!         }
//!     };
//!     match receive() {
//!         Some((source, destination, data)) => {
//!             engine.handle_datagram(Instant::now(), source, destination, &data)
//!         }
//!         None => engine.handle_timeout(deadline.min(Instant::now())),
//!     }
//! }
//! ```
//!
//! Inside, the engine keeps str0m's own contract for every peer: each input to a peer's `Rtc` is
//! followed at once by a full drain of it (str0m keeps a received RTP packet only until the next
//! poll), so callers may hand in datagrams in any batching they like.
//!
//! # Connections
//!
//! Every participant has two peer connections, as in LiveKit: a publisher connection the client
//! offers (its own tracks) and a subscriber connection the server offers (everyone else's), so
//! renegotiation never glares. Datagrams are routed to their peer through a hash map from source
//! address; the first datagram from a new address is a STUN request whose username names the
//! peer's ICE credentials, looked up in a second hash map. A peer whose input is malformed or
//! whose ICE fails is closed alone.
//!
//! # Panics
//!
//! A panic is a bug, str0m's or ours, but one peer's bug must cost that peer, not the worker
//! and every room on it. So every str0m call that consumes something a peer sent (datagrams,
//! offers, answers, trickled candidates) or that builds an offer from what a peer negotiated runs
//! inside `guard::guarded`: a panic there closes that peer alone, and its `Rtc` is never used again.
mod bwe;
mod error;
mod event;
mod forward;
mod guard;
mod negotiate;
mod peer;
mod track;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::ice::StunMessage;
use str0m::net::{DatagramRecv, Protocol, Receive, TcpType};
use str0m::{Candidate, Event as RtcEvent, IceConnectionState, Input, Output as RtcOutput};

use crate::ids::{PeerId, TrackId, TrackSpace};

pub use error::SfuError;
pub use event::{CloseReason, Event, Output};
pub(crate) use guard::catch_panic;
use guard::{Fault, guarded};
use peer::Peer;
pub use peer::Role;
use track::Published;

/// How long a peer may stay silent before it is removed (ICE consent freshness fails sooner).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A track whose packets stop for this long is reported stalled (a frozen camera, a phone that
/// lost its network); browsers send at least a few packets a second even for muted tracks.
const STALL_AFTER: Duration = Duration::from_secs(2);
/// How often tracks are checked for stalls, and connections for silence.
const STALL_SWEEP: Duration = Duration::from_millis(500);
/// How often each connection's link is reported to the caller ([`Event::LinkQuality`]).
const LINK_REPORT: Duration = Duration::from_secs(2);
/// How often a connection reports what the RTCP reports say (a subscriber's loss drives the
/// layer cap; every connection's is reported as its link).
const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// Where a subscriber connection's bandwidth estimate starts, before TWCC feedback refines it.
/// str0m paces sending at twice the estimate, so a low start would delay a full room's media
/// until probing caught up; congestion brings it down within a second.
const INITIAL_ESTIMATE: Bitrate = Bitrate::mbps(5);
/// How often a subscriber offer is rebuilt when str0m happens to give a new m-line the mid of the
/// stopped one it recycles (mids are three random characters): the client would take the pair for
/// one m-line brought back from the stopped state, which JSEP forbids.
const MID_DRAWS: usize = 8;
/// Stopped m-lines a subscriber connection holds between live ones, by default, before it is
/// renewed (see [`Engine::set_stopped_line_limit`]).
pub const DEFAULT_STOPPED_LINE_LIMIT: usize = 8;

/// A map that every packet looks up: foldhash (randomly seeded), not the standard SipHash, which
/// a profile of the forwarding path showed among its larger items. The keys are the engine's own
/// ids, mids, and the addresses of peers that passed ICE.
type FastMap<K, V> = foldhash::HashMap<K, V>;

/// Every peer connection of one worker.
#[derive(Debug)]
pub struct Engine {
    local: SocketAddr,
    candidates: Vec<Candidate>,
    peers: FastMap<PeerId, Peer>,
    /// Which peer a remote transport address (UDP, or a TCP connection) belongs to.
    by_addr: FastMap<(Protocol, SocketAddr), PeerId>,
    by_ufrag: HashMap<String, PeerId>,
    tracks: FastMap<TrackId, Published>,
    /// Where this engine numbers its tracks, and the next number.
    track_space: TrackSpace,
    next_track: u32,
    outputs: VecDeque<Output>,
    dirty: VecDeque<PeerId>,
    /// Each peer's next str0m timeout, earliest first. An entry counts while it matches its
    /// peer's armed `timeout`; others are stale and dropped when they reach the top. Finding
    /// the next deadline and the peers due at it costs O(log peers), not a scan of every peer
    /// after every datagram.
    timers: BinaryHeap<Reverse<(Instant, PeerId)>>,
    garbage_datagrams: u64,
    /// Whether new subscriber connections estimate their bandwidth (see `allocation`).
    bandwidth_estimation: bool,
    /// Stopped m-lines a subscriber connection may hold between live ones before it is renewed.
    stopped_line_limit: usize,
    /// The latest time given to the engine; commands that have no time of their own use it.
    now: Instant,
    /// When tracks are next checked for stalls.
    next_sweep: Instant,
    /// When the peers' links are next reported ([`Event::LinkQuality`]).
    next_link_report: Instant,
}

impl Engine {
    /// An engine receiving on `local` and advertising it plus `public_ips` (same port) as ICE
    /// candidates, for clients that reach the server through another address. An unspecified
    /// `local` (`0.0.0.0`) is not advertised: only `public_ips` are. `now` starts its clock (the
    /// engine never reads one).
    pub fn new(local: SocketAddr, public_ips: &[IpAddr], now: Instant) -> Engine {
        let mut candidates: Vec<Candidate> = Candidate::host(local, "udp").into_iter().collect();
        for ip in public_ips {
            if let Ok(candidate) = Candidate::host(SocketAddr::new(*ip, local.port()), "udp") {
                candidates.push(candidate);
            }
        }
        Engine {
            local,
            candidates,
            peers: FastMap::default(),
            by_addr: FastMap::default(),
            by_ufrag: HashMap::new(),
            tracks: FastMap::default(),
            track_space: TrackSpace::default(),
            next_track: 1,
            outputs: VecDeque::new(),
            dirty: VecDeque::new(),
            timers: BinaryHeap::new(),
            garbage_datagrams: 0,
            bandwidth_estimation: false,
            stopped_line_limit: DEFAULT_STOPPED_LINE_LIMIT,
            now,
            next_sweep: now,
            next_link_report: now + LINK_REPORT,
        }
    }

    /// Also offers ICE over TCP: a passive TCP host candidate for `local` (a listener the shell
    /// runs, framing per RFC 4571) and for each of `public_ips` at its port, for peer connections
    /// created from now on. Browsers rank TCP candidates below UDP ones and use them when UDP
    /// does not get through.
    pub fn listen_tcp(&mut self, local: SocketAddr, public_ips: &[IpAddr]) {
        let addrs = (!local.ip().is_unspecified())
            .then_some(local)
            .into_iter()
            .chain(
                public_ips
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, local.port())),
            );
        for addr in addrs {
            let candidate = Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Passive)
                .build();
            match candidate {
                Ok(candidate) => self.candidates.push(candidate),
                Err(err) => tracing::warn!(%addr, %err, "no TCP candidate for this address"),
            }
        }
    }

    /// Numbers the tracks published from now on in `space` (the default space is 0, for an
    /// engine alone).
    pub fn set_track_space(&mut self, space: TrackSpace) {
        self.track_space = space;
    }

    /// Whether subscriber connections created from now on estimate their bandwidth (TWCC) and
    /// get their simulcast layers capped to fit it. Off by default: str0m's estimator paces what
    /// is sent (latency) and, measured on loopback, does not probe back up to the full layer.
    pub fn set_bandwidth_estimation(&mut self, on: bool) {
        self.bandwidth_estimation = on;
    }

    /// How many stopped m-lines a subscriber connection may hold between live ones before the
    /// engine asks for it to be renewed ([`Event::RenewSubscriber`]); 8 by default. Stopped lines
    /// at the end of the SDP do not count: new tracks take those slots.
    pub fn set_stopped_line_limit(&mut self, limit: usize) {
        self.stopped_line_limit = limit;
    }

    /// Datagrams that belonged to no peer or that no peer accepted.
    pub fn garbage_datagrams(&self) -> u64 {
        self.garbage_datagrams
    }

    /// Number of live peer connections.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// `Ok` if the peer is still there; after a command whose follow-up closed it, says so.
    fn still_open(&self, id: PeerId) -> Result<(), SfuError> {
        if self.peers.contains_key(&id) {
            Ok(())
        } else {
            Err(SfuError::PeerFailed(id))
        }
    }

    /// Closes a peer whose command failed inside [`guarded`](guard::guarded), and tells the caller why.
    fn fail(&mut self, id: PeerId, fault: Fault) -> SfuError {
        match fault {
            Fault::Refused(err) => {
                self.close(id, CloseReason::Failed(err.to_string()));
                SfuError::Rtc(err)
            }
            fault @ Fault::Panicked(_) => {
                self.close(id, fault.into_reason());
                SfuError::PeerFailed(id)
            }
        }
    }

    /// Closes a peer connection and unpublishes its tracks.
    pub fn remove_peer(&mut self, id: PeerId) -> Result<(), SfuError> {
        if !self.peers.contains_key(&id) {
            return Err(SfuError::UnknownPeer(id));
        }
        self.close(id, CloseReason::Removed);
        Ok(())
    }

    /// A datagram arrived on the worker's UDP socket.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) {
        self.handle_receive(now, Protocol::Udp, source, destination, contents);
    }

    /// A datagram arrived over `proto`: on the UDP socket, or as one RFC 4571 frame of the TCP
    /// connection from `source` to `destination`. Returns whether a peer took it (a TCP
    /// connection whose first frame no peer takes is garbage and may be closed).
    pub fn handle_receive(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> bool {
        self.now = self.now.max(now);
        // Anyone on the internet can send these bytes, before any peer owns them: str0m's parsers
        // run inside a panic guard, and a datagram that makes one panic is garbage.
        let Ok(Ok(parsed)) = catch_panic(|| DatagramRecv::try_from(contents)) else {
            self.garbage_datagrams += 1;
            return false;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto,
                source,
                destination: self.advertised(proto, destination),
                contents: parsed,
            },
        );
        let known = self.by_addr.get(&(proto, source)).copied();
        let id = known.or_else(|| {
            // A new address: only a STUN binding request naming a peer's credentials may claim it.
            catch_panic(|| {
                let stun = StunMessage::parse(contents).ok()?;
                let (local_ufrag, _) = stun.split_username()?;
                self.by_ufrag.get(local_ufrag).copied()
            })
            .ok()
            .flatten()
        });
        let Some(id) = id else {
            self.garbage_datagrams += 1;
            return false;
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            self.garbage_datagrams += 1;
            return false;
        };
        match guarded(peer, |rtc| Ok(rtc.accepts(&input))) {
            Ok(true) => {}
            Ok(false) => {
                self.garbage_datagrams += 1;
                return false;
            }
            Err(fault) => {
                self.close(id, fault.into_reason());
                return false;
            }
        }
        let Some(peer) = self.peers.get_mut(&id) else {
            return false;
        };
        if known.is_none() {
            self.by_addr.insert((proto, source), id);
        }
        peer.last_input = now;
        if let Err(fault) = guarded(peer, |rtc| rtc.handle_input(input)) {
            self.close(id, fault.into_reason());
            return false;
        }
        // str0m holds one received RTP packet until it is polled: drain now, or the next datagram
        // for this peer would overwrite it.
        self.drain_peer(id);
        true
    }

    /// Forgets which peer a remote transport address belonged to (its ICE-TCP connection
    /// ended): whatever comes from that address next must claim it again with STUN.
    pub fn forget_remote(&mut self, proto: Protocol, remote: SocketAddr) {
        self.by_addr.remove(&(proto, remote));
    }

    /// str0m accepts only datagrams addressed to one of its candidates. A datagram that reached
    /// this host at an address it does not advertise came through a 1:1 NAT in front (the host
    /// sees its private address, clients the advertised public one): it counts as sent to the
    /// first address advertised for its protocol.
    fn advertised(&self, proto: Protocol, destination: SocketAddr) -> SocketAddr {
        let mut ours = self.candidates.iter().filter(|c| c.proto() == proto);
        if ours.clone().any(|c| c.addr() == destination) {
            return destination;
        }
        ours.next().map_or(destination, Candidate::addr)
    }

    /// Time has reached `now`: drives every peer whose timeout is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let mut failed = Vec::new();
        if now >= self.next_sweep {
            self.sweep_stalls(now);
            let report_links = now >= self.next_link_report;
            if report_links {
                self.next_link_report = now + LINK_REPORT;
            }
            for (id, peer) in &mut self.peers {
                if peer.connected && now.saturating_duration_since(peer.last_input) > IDLE_TIMEOUT {
                    failed.push((*id, CloseReason::Disconnected));
                }
                if !report_links {
                    continue;
                }
                let mut link = std::mem::take(&mut peer.link);
                // Media going out with no report back for long: nothing of it is known to
                // arrive, whatever the last report said.
                if peer.answers.unanswered(now) {
                    link.loss = Some(1.0);
                }
                if let Some(loss) = link.loss {
                    self.outputs.push_back(Output::Event(Event::LinkQuality {
                        peer: *id,
                        loss,
                        rtt: link.rtt,
                    }));
                }
            }
        }
        let mut due = Vec::new();
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            if !peer.armed || peer.timeout != at {
                continue;
            }
            peer.armed = false;
            match guarded(peer, |rtc| rtc.handle_input(Input::Timeout(now))) {
                Ok(()) => due.push(id),
                Err(fault) => failed.push((id, fault.into_reason())),
            }
        }
        for id in due {
            self.drain_peer(id);
        }
        for (id, reason) in failed {
            self.close(id, reason);
        }
        self.compact_timers();
    }

    /// Arms `id`'s timer at `at`, its `Rtc`'s next timeout.
    fn arm(&mut self, id: PeerId, at: Instant) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.arm(id, at, &mut self.timers);
        }
    }

    /// The earliest armed timer, dropping stale entries on the way.
    fn next_timer(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if self
                .peers
                .get(&id)
                .is_some_and(|peer| peer.armed && peer.timeout == at)
            {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    /// Rebuilds the timer heap from the peers when stale entries far outnumber them (timeouts
    /// that moved later leave their old entries behind until those reach the top).
    fn compact_timers(&mut self) {
        if self.timers.len() <= 4 * self.peers.len() + 64 {
            return;
        }
        self.timers = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.armed)
            .map(|(id, peer)| Reverse((peer.timeout, *id)))
            .collect();
    }

    fn mark_dirty(&mut self, id: PeerId) {
        if let Some(peer) = self.peers.get_mut(&id)
            && !peer.queued
        {
            peer.queued = true;
            self.dirty.push_back(id);
        }
    }

    /// The next thing to do; see the run-loop contract in the module docs.
    pub fn poll_output(&mut self) -> Output {
        loop {
            if let Some(output) = self.outputs.pop_front() {
                return output;
            }
            let Some(id) = self.dirty.pop_front() else {
                let peers = self.next_timer();
                let sweep =
                    (!self.tracks.is_empty() || !self.peers.is_empty()).then_some(self.next_sweep);
                let next = match (peers, sweep) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(at), None) | (None, Some(at)) => at,
                    (None, None) => self.now + Duration::from_secs(1),
                };
                return Output::Timeout(next);
            };
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.queued = false;
            }
            self.drain_peer(id);
        }
    }

    /// Polls one peer's `Rtc` until it has nothing more before its next timeout. str0m sends
    /// media written with `write_rtp` only after time advances, and says so with a timeout that
    /// is already due: that timeout is served here, at the latest time the engine knows, so a
    /// forwarded packet leaves in the same pass as the one that brought it.
    fn drain_peer(&mut self, id: PeerId) {
        if let Some(peer) = self.peers.get_mut(&id)
            && std::mem::take(&mut peer.written)
        {
            // What a first poll would say: time must advance for the written media to leave.
            let now = self.now;
            if let Err(fault) = guarded(peer, |rtc| rtc.handle_input(Input::Timeout(now))) {
                self.close(id, fault.into_reason());
                return;
            }
        }
        // A timer that keeps asking for the present gets a few turns, not an endless loop.
        let mut turns = 4;
        loop {
            let now = self.now;
            let Some(peer) = self.peers.get_mut(&id) else {
                return;
            };
            let output = match guarded(peer, |rtc| rtc.poll_output()) {
                Ok(output) => output,
                Err(fault) => {
                    self.close(id, fault.into_reason());
                    return;
                }
            };
            match output {
                RtcOutput::Timeout(at) if at <= now && turns > 0 => {
                    turns -= 1;
                    if let Err(fault) = guarded(peer, |rtc| rtc.handle_input(Input::Timeout(now))) {
                        self.close(id, fault.into_reason());
                        return;
                    }
                }
                RtcOutput::Timeout(at) => {
                    peer.arm(id, at, &mut self.timers);
                    return;
                }
                RtcOutput::Transmit(transmit) => self.outputs.push_back(Output::Transmit(transmit)),
                RtcOutput::Event(event) => {
                    if !self.dispatch(id, event) {
                        return;
                    }
                }
            }
        }
    }

    /// Hands one of a peer's events to the engine; returns whether the peer lives on. Handling
    /// runs str0m's parsers over what the peer sent (keyframe detection and VP8 descriptors on a
    /// publisher's payloads) and writes to other peers' `Rtc`s, outside any one `Rtc`'s guard: a
    /// panic in it is blamed on, and closes, the peer whose event it was.
    fn dispatch(&mut self, id: PeerId, event: RtcEvent) -> bool {
        let Err(message) = catch_panic(|| self.on_event(id, event)) else {
            return true;
        };
        tracing::error!(peer = id.0, %message, "handling a peer's event panicked; closing it");
        self.close(id, Fault::Panicked(message).into_reason());
        false
    }

    fn on_event(&mut self, id: PeerId, event: RtcEvent) {
        #[cfg(test)]
        if let Some(peer) = self.peers.get_mut(&id)
            && std::mem::take(&mut peer.inject_event_panic)
        {
            panic!("injected by a test");
        }
        match event {
            RtcEvent::Connected => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.connected = true;
                }
                self.outputs
                    .push_back(Output::Event(Event::Connected { peer: id }));
            }
            RtcEvent::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.close(id, CloseReason::Disconnected);
            }
            RtcEvent::MediaAdded(added) => self.on_media_added(id, added.mid, added.kind),
            RtcEvent::RtpPacket(packet) => self.on_rtp(id, packet),
            RtcEvent::KeyframeRequest(request) => self.on_keyframe_request(id, request.mid),
            RtcEvent::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                self.reallocate(id, estimate.as_u64());
            }
            RtcEvent::MediaEgressStats(stats) => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.link.note(stats.loss, stats.rtt);
                    peer.answers.egress(
                        stats.mid,
                        stats.packets,
                        stats.loss.is_some(),
                        stats.timestamp,
                    );
                }
                if let Some(loss) = stats.loss {
                    self.on_egress_loss(id, stats.mid, loss);
                }
            }
            RtcEvent::MediaIngressStats(stats) => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.link.note(stats.loss, stats.rtt);
                }
            }
            _ => {}
        }
    }

    fn drop_peer(&mut self, id: PeerId) -> Option<Peer> {
        let peer = self.peers.remove(&id)?;
        self.by_ufrag.remove(&peer.ufrag);
        self.by_addr.retain(|_, owner| *owner != id);
        Some(peer)
    }

    fn close(&mut self, id: PeerId, reason: CloseReason) {
        let Some(mut peer) = self.drop_peer(id) else {
            return;
        };
        peer.rtc.disconnect();
        let mut renegotiate = Vec::new();
        for track in peer.published.values() {
            self.unpublish(id, *track, &mut renegotiate);
        }
        for track in self.tracks.values_mut() {
            track.subscribers.retain(|s| s.peer != id);
        }
        self.outputs
            .push_back(Output::Event(Event::Closed { peer: id, reason }));
        for subscriber in renegotiate {
            self.offer_if_possible(subscriber);
        }
    }

    /// The address datagrams arrive on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

#[cfg(test)]
mod tests {
    use str0m::Rtc;
    use str0m::change::SdpOffer;
    use str0m::media::{Direction, MediaKind, Mid};

    use super::*;
    use crate::layer::Quality;
    use peer::UNANSWERED_AFTER;
    use track::Subscription;

    fn client_offer(now: Instant) -> SdpOffer {
        let mut rtc = Rtc::builder().set_rtp_mode(true).build(now);
        let mut change = rtc.sdp_api();
        change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, _pending) = change.apply().expect("an offer");
        offer
    }

    fn drain(engine: &mut Engine) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            match engine.poll_output() {
                Output::Event(event) => events.push(event),
                Output::Transmit(_) => {}
                Output::Timeout(_) => return events,
            }
        }
    }

    /// Outgoing statistics of one m-line, as str0m gives them every second.
    fn egress_stats(mid: Mid, packets: u64, loss: Option<f32>, at: Instant) -> RtcEvent {
        RtcEvent::MediaEgressStats(str0m::stats::MediaEgressStats {
            mid,
            rid: None,
            bytes: packets * 1000,
            packets,
            firs: 0,
            plis: 0,
            nacks: 0,
            rtt: None,
            loss,
            timestamp: at,
            remote: None,
        })
    }

    fn link_losses(events: &[Event]) -> Vec<f32> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::LinkQuality { loss, .. } => Some(*loss),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn media_that_no_report_answers_for_long_counts_as_all_lost() {
        let start = Instant::now();
        let (mut engine, _track) = engine_with_published_video(start, false);
        engine.add_subscriber(PeerId(2), start).expect("subscriber");
        drain(&mut engine);
        let (video, audio) = (Mid::from("v"), Mid::from("a"));
        let mut losses = Vec::new();
        // Reports come for 5 s (video every second, clean), then none while media goes on.
        for second in 1..=20u64 {
            let at = start + Duration::from_secs(second);
            let reported = second <= 5;
            engine.on_event(
                PeerId(2),
                egress_stats(video, second * 90, reported.then_some(0.0), at),
            );
            engine.on_event(PeerId(2), egress_stats(audio, second * 50, None, at));
            engine.handle_timeout(at);
            losses.extend(link_losses(&drain(&mut engine)));
        }
        assert_eq!(losses.first(), Some(&0.0), "clean while reports came");
        assert_eq!(
            losses.last(),
            Some(&1.0),
            "media unanswered for {UNANSWERED_AFTER:?}: {losses:?}"
        );
        // Reports again: the link is rated from them.
        let mut after = Vec::new();
        for second in 21..=24u64 {
            let at = start + Duration::from_secs(second);
            engine.on_event(PeerId(2), egress_stats(video, second * 90, Some(0.02), at));
            engine.handle_timeout(at);
            after.extend(link_losses(&drain(&mut engine)));
        }
        assert_eq!(after.last(), Some(&0.02), "{after:?}");
    }

    #[test]
    fn audio_reported_every_five_seconds_alone_is_answered() {
        let start = Instant::now();
        let (mut engine, _track) = engine_with_published_video(start, false);
        engine.add_subscriber(PeerId(2), start).expect("subscriber");
        drain(&mut engine);
        let audio = Mid::from("a");
        let mut losses = Vec::new();
        for second in 1..=30u64 {
            let at = start + Duration::from_secs(second);
            let loss = second.is_multiple_of(5).then_some(0.0);
            engine.on_event(PeerId(2), egress_stats(audio, second * 50, loss, at));
            engine.handle_timeout(at);
            losses.extend(link_losses(&drain(&mut engine)));
        }
        assert!(losses.iter().all(|l| *l == 0.0), "{losses:?}");
    }

    #[test]
    fn a_panicking_peer_is_closed_alone() {
        let now = Instant::now();
        let mut engine = Engine::new("127.0.0.1:5000".parse().expect("address"), &[], now);
        engine
            .publisher_offer(PeerId(1), client_offer(now), now)
            .expect("first peer");
        engine
            .publisher_offer(PeerId(2), client_offer(now), now)
            .expect("second peer");
        drain(&mut engine);
        if let Some(peer) = engine.peers.get_mut(&PeerId(1)) {
            peer.inject_panic = true;
        }
        engine.arm(PeerId(1), now);
        engine.handle_timeout(now + Duration::from_millis(10));
        let events = drain(&mut engine);
        assert!(events.iter().any(|e| matches!(
            e,
            Event::Closed { peer: PeerId(1), reason: CloseReason::Failed(why) } if why.contains("panicked")
        )));
        assert_eq!(engine.peer_count(), 1);
        assert!(
            engine.peers.contains_key(&PeerId(2)),
            "the other peer lives on"
        );
    }

    /// An engine with a video publisher (peer 1) whose track is published; returns the track.
    fn engine_with_published_video(now: Instant, estimation: bool) -> (Engine, TrackId) {
        let mut engine = Engine::new("127.0.0.1:5000".parse().expect("address"), &[], now);
        engine.set_bandwidth_estimation(estimation);
        let mut client = Rtc::builder().set_rtp_mode(true).build(now);
        let mut change = client.sdp_api();
        let mid = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, _pending) = change.apply().expect("an offer");
        engine
            .publisher_offer(PeerId(1), offer, now)
            .expect("publisher");
        // str0m reports the m-line once the connection is up; no network here, so say it.
        engine.on_media_added(PeerId(1), mid, MediaKind::Video);
        let track = drain(&mut engine)
            .into_iter()
            .find_map(|e| match e {
                Event::TrackPublished { track, .. } => Some(track),
                _ => None,
            })
            .expect("published");
        (engine, track)
    }

    /// An engine (bandwidth `estimation` on or off) with a video publisher (peer 1) whose track
    /// is published, and subscriber connections 2 and 3 subscribed to it, each with its offer
    /// out; returns the track and the offers.
    fn engine_with_subscribers(
        now: Instant,
        estimation: bool,
    ) -> (Engine, TrackId, Vec<(PeerId, SdpOffer)>) {
        let (mut engine, track) = engine_with_published_video(now, estimation);
        for id in [PeerId(2), PeerId(3)] {
            engine.add_subscriber(id, now).expect("subscriber");
            engine
                .subscribe(id, track, Quality::High)
                .expect("subscribed");
        }
        let offers = drain(&mut engine)
            .into_iter()
            .filter_map(|e| match e {
                Event::Offer { peer, offer } => Some((peer, offer)),
                _ => None,
            })
            .collect();
        (engine, track, offers)
    }

    /// Whether `peer` was closed for a panic, and every other peer of `alive` lives on.
    fn closed_alone(engine: &Engine, events: &[Event], peer: PeerId, alive: &[PeerId]) -> bool {
        let closed = events.iter().any(|e| {
            matches!(
                e,
                Event::Closed { peer: p, reason: CloseReason::Failed(why) }
                    if *p == peer && why.contains("panicked")
            )
        });
        closed
            && !engine.peers.contains_key(&peer)
            && alive.iter().all(|p| engine.peers.contains_key(p))
    }

    /// An engine with a publisher (peer 1) of an audio and a video track; returns both.
    fn engine_with_microphone_and_camera(now: Instant) -> (Engine, [TrackId; 2]) {
        let mut engine = Engine::new("127.0.0.1:5000".parse().expect("address"), &[], now);
        let mut client = Rtc::builder().set_rtp_mode(true).build(now);
        let mut change = client.sdp_api();
        let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, _pending) = change.apply().expect("an offer");
        engine
            .publisher_offer(PeerId(1), offer, now)
            .expect("publisher");
        engine.on_media_added(PeerId(1), audio, MediaKind::Audio);
        engine.on_media_added(PeerId(1), video, MediaKind::Video);
        let tracks: Vec<TrackId> = drain(&mut engine)
            .into_iter()
            .filter_map(|e| match e {
                Event::TrackPublished { track, .. } => Some(track),
                _ => None,
            })
            .collect();
        (engine, [tracks[0], tracks[1]])
    }

    /// The subscriber offers in `events`, each as its number of m-lines.
    fn offered_lines(events: &[Event]) -> Vec<usize> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Offer { offer, .. } => Some(offer.to_sdp_string().matches("\r\nm=").count()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_joiner_gets_every_track_in_one_offer() {
        let now = Instant::now();
        let (mut engine, tracks) = engine_with_microphone_and_camera(now);
        engine.add_subscriber(PeerId(2), now).expect("subscriber");
        engine
            .subscribe_all(PeerId(2), &tracks, Quality::High)
            .expect("subscribed");
        assert_eq!(
            offered_lines(&drain(&mut engine)),
            vec![2],
            "one offer, both tracks"
        );

        // One at a time, the second waits for the first offer's answer: a second negotiation.
        engine.add_subscriber(PeerId(3), now).expect("subscriber");
        for track in tracks {
            engine
                .subscribe(PeerId(3), track, Quality::High)
                .expect("subscribed");
        }
        assert_eq!(offered_lines(&drain(&mut engine)), vec![1]);

        // A track gone meanwhile is skipped; the rest are offered.
        engine.add_subscriber(PeerId(4), now).expect("subscriber");
        engine
            .subscribe_all(PeerId(4), &[TrackId(999), tracks[1]], Quality::High)
            .expect("subscribed");
        assert_eq!(offered_lines(&drain(&mut engine)), vec![1]);
    }

    #[test]
    fn a_panic_while_taking_a_publishers_offer_closes_only_that_publisher() {
        let now = Instant::now();
        let (mut engine, _track, _offers) = engine_with_subscribers(now, false);
        engine
            .publisher_offer(PeerId(4), client_offer(now), now)
            .expect("another publisher");
        drain(&mut engine);
        if let Some(peer) = engine.peers.get_mut(&PeerId(1)) {
            peer.inject_panic = true;
        }
        let result = engine.publisher_offer(PeerId(1), client_offer(now), now);
        assert!(
            matches!(result, Err(SfuError::PeerFailed(PeerId(1)))),
            "{result:?}"
        );
        let events = drain(&mut engine);
        assert!(closed_alone(
            &engine,
            &events,
            PeerId(1),
            &[PeerId(2), PeerId(3), PeerId(4)]
        ));
        assert!(
            events.iter().any(|e| matches!(
                e,
                Event::TrackUnpublished {
                    peer: PeerId(1),
                    ..
                }
            )),
            "its track ended for everyone"
        );
    }

    #[test]
    fn a_panic_while_taking_a_subscribers_answer_closes_only_that_subscriber() {
        let now = Instant::now();
        let (mut engine, _track, offers) = engine_with_subscribers(now, false);
        let (peer, offer) = offers.into_iter().next().expect("an offer");
        let mut client = Rtc::builder().set_rtp_mode(true).build(now);
        let answer = client.sdp_api().accept_offer(offer).expect("an answer");
        if let Some(subscriber) = engine.peers.get_mut(&peer) {
            subscriber.inject_panic = true;
        }
        let result = engine.accept_answer(peer, answer);
        assert!(
            matches!(result, Err(SfuError::PeerFailed(p)) if p == peer),
            "{result:?}"
        );
        let events = drain(&mut engine);
        let others: Vec<PeerId> = [PeerId(1), PeerId(2), PeerId(3)]
            .into_iter()
            .filter(|p| *p != peer)
            .collect();
        assert!(closed_alone(&engine, &events, peer, &others));
    }

    #[test]
    fn a_panic_while_adding_a_trickled_candidate_closes_only_that_peer() {
        let now = Instant::now();
        let (mut engine, _track, _offers) = engine_with_subscribers(now, false);
        if let Some(subscriber) = engine.peers.get_mut(&PeerId(2)) {
            subscriber.inject_panic = true;
        }
        let result = engine.add_remote_candidate(
            PeerId(2),
            "candidate:1 1 udp 2130706431 10.0.0.3 7000 typ host",
        );
        assert!(
            matches!(result, Err(SfuError::PeerFailed(PeerId(2)))),
            "{result:?}"
        );
        let events = drain(&mut engine);
        assert!(closed_alone(
            &engine,
            &events,
            PeerId(2),
            &[PeerId(1), PeerId(3)]
        ));
        // A candidate that does not parse is refused without harm.
        assert!(matches!(
            engine.add_remote_candidate(PeerId(3), "candidate:nonsense"),
            Err(SfuError::BadCandidate(_))
        ));
        assert!(engine.peers.contains_key(&PeerId(3)));
    }

    #[test]
    fn a_panic_while_building_a_subscribers_offer_closes_only_that_subscriber() {
        let now = Instant::now();
        let (mut engine, track, _offers) = engine_with_subscribers(now, false);
        engine.add_subscriber(PeerId(5), now).expect("subscriber");
        if let Some(subscriber) = engine.peers.get_mut(&PeerId(5)) {
            subscriber.inject_panic = true;
        }
        let result = engine.subscribe(PeerId(5), track, Quality::High);
        assert!(
            matches!(result, Err(SfuError::PeerFailed(PeerId(5)))),
            "{result:?}"
        );
        let events = drain(&mut engine);
        assert!(closed_alone(
            &engine,
            &events,
            PeerId(5),
            &[PeerId(1), PeerId(2), PeerId(3)]
        ));
        assert!(
            engine.tracks[&track]
                .subscribers
                .iter()
                .all(|s| s.peer != PeerId(5)),
            "its subscription went with it"
        );
    }

    #[test]
    fn a_panic_while_handling_a_publishers_event_closes_only_that_publisher() {
        let now = Instant::now();
        let (mut engine, track, _offers) = engine_with_subscribers(now, false);
        if let Some(peer) = engine.peers.get_mut(&PeerId(1)) {
            peer.inject_event_panic = true;
        }
        assert!(!engine.dispatch(PeerId(1), RtcEvent::Connected));
        let events = drain(&mut engine);
        assert!(closed_alone(
            &engine,
            &events,
            PeerId(1),
            &[PeerId(2), PeerId(3)]
        ));
        assert!(!engine.tracks.contains_key(&track), "its track ended");
    }

    #[test]
    fn transport_wide_feedback_is_asked_of_subscribers_only_when_it_drives_an_estimate() {
        let now = Instant::now();
        for estimation in [false, true] {
            let (_engine, _track, offers) = engine_with_subscribers(now, estimation);
            let (_peer, offer) = offers.first().expect("an offer");
            let sdp = offer.to_sdp_string();
            assert_eq!(
                sdp.contains("transport-wide-cc-extensions"),
                estimation,
                "estimation {estimation}: {sdp}"
            );
            assert!(sdp.contains("urn:ietf:params:rtp-hdrext:sdes:mid"), "{sdp}");
        }
    }

    #[test]
    fn the_bandwidth_estimate_caps_each_video_subscription() {
        let now = Instant::now();
        let (mut engine, track) = engine_with_published_video(now, true);
        engine.add_subscriber(PeerId(2), now).expect("subscriber");
        engine
            .subscribe(PeerId(2), track, Quality::High)
            .expect("subscribed");
        drain(&mut engine);
        let published = engine.tracks.get_mut(&track).expect("track");
        for (layer, bps) in [(0, 150_000u64), (1, 500_000), (2, 1_500_000)] {
            published.meters[layer].record((bps / 8) as usize, now);
        }
        engine.now = now;
        let cap = |engine: &Engine| {
            engine.tracks[&track]
                .subscribers
                .iter()
                .find(|s| s.peer == PeerId(2))
                .map(|s| s.cap)
        };

        // 800 kbit/s less headroom fits the low and medium layers, not the full one.
        engine.reallocate(PeerId(2), 800_000);
        assert_eq!(cap(&engine), Some(Quality::Medium));
        engine.reallocate(PeerId(2), 100_000);
        assert_eq!(
            cap(&engine),
            Some(Quality::Low),
            "degrades, never disappears"
        );
        engine.reallocate(PeerId(2), 5_000_000);
        assert_eq!(cap(&engine), Some(Quality::High));
    }

    #[test]
    fn the_loss_a_subscriber_reports_caps_its_video_layer_and_clears() {
        let now = Instant::now();
        let (mut engine, track) = engine_with_published_video(now, true);
        engine.add_subscriber(PeerId(2), now).expect("subscriber");
        engine
            .subscribe(PeerId(2), track, Quality::High)
            .expect("subscribed");
        drain(&mut engine);
        let mid = engine.peers[&PeerId(2)]
            .subscribed
            .iter()
            .find_map(|(mid, t)| (*t == track).then_some(*mid))
            .expect("an m-line for the track");
        let allowed = |engine: &Engine| {
            engine.tracks[&track]
                .subscribers
                .iter()
                .find(|s| s.peer == PeerId(2))
                .map(Subscription::allowed)
        };
        for _ in 0..4 {
            engine.on_egress_loss(PeerId(2), mid, 0.2);
        }
        assert_eq!(
            allowed(&engine),
            Some(Quality::Low),
            "20% loss: the lowest layer"
        );
        // What the subscriber asks for still rules below the cap.
        engine
            .set_quality(PeerId(2), track, Quality::Off)
            .expect("quality");
        assert_eq!(allowed(&engine), Some(Quality::Off));
        engine
            .set_quality(PeerId(2), track, Quality::High)
            .expect("quality");
        for _ in 0..2 * crate::loss::STEP_UP_AFTER {
            engine.on_egress_loss(PeerId(2), mid, 0.0);
        }
        assert_eq!(
            allowed(&engine),
            Some(Quality::High),
            "a clean path climbs back"
        );
        // Reports for an m-line the subscriber does not have change nothing.
        engine.on_egress_loss(PeerId(2), Mid::from("zzz"), 0.9);
        engine.on_egress_loss(PeerId(2), Mid::from("zzz"), 0.9);
        assert_eq!(allowed(&engine), Some(Quality::High));
    }

    #[test]
    fn a_peer_is_driven_at_its_latest_timeout_and_stale_timers_are_dropped() {
        let now = Instant::now();
        let mut engine = Engine::new("127.0.0.1:5000".parse().expect("address"), &[], now);
        for id in [PeerId(1), PeerId(2)] {
            engine
                .publisher_offer(id, client_offer(now), now)
                .expect("peer");
        }
        drain(&mut engine);
        // Peer 1's timeout moves later: its earlier entry no longer drives it.
        engine.arm(PeerId(1), now + Duration::from_millis(10));
        engine.arm(PeerId(1), now + Duration::from_millis(50));
        if let Some(peer) = engine.peers.get_mut(&PeerId(1)) {
            peer.inject_panic = true;
        }
        engine.handle_timeout(now + Duration::from_millis(20));
        drain(&mut engine);
        assert!(engine.peers.contains_key(&PeerId(1)), "not driven early");
        engine.handle_timeout(now + Duration::from_millis(60));
        let events = drain(&mut engine);
        assert!(closed_alone(&engine, &events, PeerId(1), &[PeerId(2)]));
        // A timeout that keeps moving leaves stale entries behind; they do not pile up.
        for step in 0..1_000u64 {
            engine.arm(
                PeerId(2),
                now + Duration::from_secs(5) + Duration::from_micros(step),
            );
        }
        engine.handle_timeout(now + Duration::from_millis(70));
        assert!(engine.timers.len() <= 4 * engine.peers.len() + 64);
        assert!(matches!(engine.poll_output(), Output::Timeout(_)));
    }

    #[test]
    fn duplicate_and_unknown_peers_are_errors() {
        let now = Instant::now();
        let mut engine = Engine::new("127.0.0.1:5000".parse().expect("address"), &[], now);
        engine.add_subscriber(PeerId(7), now).expect("subscriber");
        assert!(matches!(
            engine.add_subscriber(PeerId(7), now),
            Err(SfuError::PeerExists(PeerId(7)))
        ));
        assert!(matches!(
            engine.subscribe(PeerId(8), TrackId(1), Quality::High),
            Err(SfuError::UnknownTrack(TrackId(1)))
        ));
        assert!(matches!(
            engine.remove_peer(PeerId(9)),
            Err(SfuError::UnknownPeer(PeerId(9)))
        ));
        engine.remove_peer(PeerId(7)).expect("removed");
        assert_eq!(engine.peer_count(), 0);
    }
}
