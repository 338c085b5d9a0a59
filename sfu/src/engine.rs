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
//! inside [`guarded`]: a panic there closes that peer alone, and its `Rtc` is never used again.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::{Codec as Str0mCodec, CodecConfig, PayloadParams};
use str0m::ice::StunMessage;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::net::{DatagramRecv, Protocol, Receive, Transmit};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Vp8Descriptor};
use str0m::{Candidate, Event as RtcEvent, IceConnectionState, Input, Output as RtcOutput, Rtc};

use crate::allocation::{Want, allocate};
use crate::codec::Codec;
use crate::downtrack::{Decision, DownTrack, Incoming, SourceId};
use crate::keyframe::KeyframeThrottle;
use crate::layer::{BitrateMeter, Layer, LayerSelector, Quality};
use crate::sdp::{Narrowing, narrow_offer};
use crate::speech::SpeechDetector;
use crate::tap::{Offered, SenderClock, Tap, TapPacket, TapReceiver};

/// How long a peer may stay silent before it is removed (ICE consent freshness fails sooner).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A track whose packets stop for this long is reported stalled (a frozen camera, a phone that
/// lost its network); browsers send at least a few packets a second even for muted tracks.
const STALL_AFTER: Duration = Duration::from_secs(2);
/// How often tracks are checked for stalls.
const STALL_SWEEP: Duration = Duration::from_millis(500);
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

/// A peer connection, named by the caller (signaling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

/// A published track, named by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u64);

/// What a peer connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Carries the client's own tracks to the server; the client offers.
    Publisher,
    /// Carries other participants' tracks to the client; the server offers.
    Subscriber,
}

/// Why a peer connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// `remove_peer` was called.
    Removed,
    /// ICE failed or the peer went silent.
    Disconnected,
    /// The peer sent something str0m refused; the message says what.
    Failed(String),
}

/// Things the signaling layer must act on.
#[derive(Debug)]
pub enum Event {
    /// A connection is up (ICE and DTLS done).
    Connected {
        /// The peer.
        peer: PeerId,
    },
    /// A publisher started sending a track.
    TrackPublished {
        /// The publisher connection.
        peer: PeerId,
        /// The new track.
        track: TrackId,
        /// The m-line it arrived on, as in the client's offer.
        mid: String,
        /// Audio or video.
        kind: MediaKind,
    },
    /// An audio track started or stopped carrying speech.
    Speaking {
        /// The publisher connection.
        peer: PeerId,
        /// The audio track.
        track: TrackId,
        /// Whether it is speaking now.
        speaking: bool,
    },
    /// A track's packets stopped arriving (for [`STALL_AFTER`]), or arrive again.
    TrackStalled {
        /// The publisher connection.
        peer: PeerId,
        /// The track.
        track: TrackId,
        /// Stopped (true) or flowing again.
        stalled: bool,
    },
    /// A track ended: its publisher stopped sending it (an m-line stopped in a re-offer) or went
    /// away.
    TrackUnpublished {
        /// The publisher connection it came from.
        peer: PeerId,
        /// The track.
        track: TrackId,
    },
    /// A subscriber connection cannot receive a track: its client's answer accepted none of the
    /// codecs the track is sent in (an H.264 camera, a client without H.264). None of the track's
    /// media reaches that connection; the room can say it cannot play this camera. Reported once
    /// per subscription, when the answer shows it or when the first packet in such a codec
    /// arrives.
    CodecUnsupported {
        /// The subscriber connection.
        peer: PeerId,
        /// The track it cannot receive.
        track: TrackId,
        /// The codec the track arrives in; `None` when no packet came yet and its publisher
        /// negotiated several codecs, none of which the subscriber takes.
        codec: Option<Codec>,
    },
    /// A subscriber connection holds more stopped m-lines between live ones than the limit
    /// ([`Engine::set_stopped_line_limit`]). str0m cannot put a new track in such a slot, so
    /// without a fresh connection its SDP would keep what every departed track left behind.
    /// The caller replaces it with a new subscriber connection carrying the same tracks, and
    /// tells the client to expect one. Reported once per connection.
    RenewSubscriber {
        /// The subscriber connection.
        peer: PeerId,
        /// Its stopped m-lines between live ones.
        stopped: usize,
    },
    /// A subscriber connection needs renegotiating: send this offer to the client.
    Offer {
        /// The subscriber connection.
        peer: PeerId,
        /// The offer.
        offer: SdpOffer,
    },
    /// A peer connection ended; every track it published is unpublished.
    Closed {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: CloseReason,
    },
}

/// What the engine wants done next.
#[derive(Debug)]
pub enum Output {
    /// Send this datagram.
    Transmit(Transmit),
    /// Tell signaling.
    Event(Event),
    /// Nothing more until this instant (or new input).
    Timeout(Instant),
}

/// Errors from engine commands; each concerns one peer only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SfuError {
    /// No peer connection has this id.
    #[error("unknown peer {0:?}")]
    UnknownPeer(PeerId),
    /// A peer connection with this id exists already.
    #[error("peer {0:?} exists already")]
    PeerExists(PeerId),
    /// No published track has this id.
    #[error("unknown track {0:?}")]
    UnknownTrack(TrackId),
    /// The command does not fit the connection's role.
    #[error("peer {0:?} is not a {1:?} connection")]
    WrongRole(PeerId, Role),
    /// The peer's SDP or state was refused by str0m.
    #[error("peer connection: {0}")]
    Rtc(#[from] str0m::RtcError),
    /// Text that does not parse as a session description. The message is fixed: str0m's parser
    /// reports positions as memory addresses, which mean nothing to a client and must not reach
    /// one.
    #[error("the session description is not valid SDP")]
    BadSdp {
        /// str0m's own account of what did not parse, for server logs only.
        detail: String,
    },
    /// The peer connection failed inside the SFU (a bug, see the `engine` module docs) and was
    /// closed; [`Event::Closed`] follows.
    #[error("peer {0:?} failed and was closed")]
    PeerFailed(PeerId),
    /// An answer that names m-lines the pending offer does not have: it answers an earlier
    /// connection's offer (one the client had before its subscriber connection was renewed).
    /// Nothing changed; the offer still waits for its own answer.
    #[error("the answer is not for this connection's offer")]
    StaleAnswer(PeerId),
    /// A trickled ICE candidate that does not parse.
    #[error("bad ICE candidate: {0}")]
    BadCandidate(String),
    /// The worker stopped, or its command queue is full.
    #[error("the media worker is unavailable")]
    WorkerUnavailable,
    /// The worker's socket could not be set up.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// One subscriber's copy of one published track.
#[derive(Debug)]
struct Subscription {
    peer: PeerId,
    /// What the subscriber asked for; the layer sent is the best live one within it.
    quality: Quality,
    /// What the subscriber's bandwidth estimate allows this track (see `allocation`).
    cap: Quality,
    /// The subscriber's m-line, once an offer added it.
    mid: Option<Mid>,
    down: DownTrack,
    /// Set once the client answered the offer that added the m-line.
    negotiated: bool,
    /// The payload type the subscriber's m-line takes the track's latest codec as, found once per
    /// codec rather than per packet: (the publisher's payload type, the subscriber's, or `None`
    /// when the client's answer refused that codec).
    out_pt: Option<(u8, Option<Pt>)>,
    /// The subscriber was told it cannot take the track's codec ([`Event::CodecUnsupported`]).
    unsupported: bool,
}

/// A track a publisher sends.
#[derive(Debug)]
struct Published {
    origin: PeerId,
    mid: Mid,
    kind: MediaKind,
    /// Codec of each payload type seen, learned from the publisher's negotiated parameters.
    codecs: Vec<(u8, Codec, PayloadParams)>,
    meters: [BitrateMeter; Layer::COUNT],
    /// Every packet of the track, whatever its layer: what a subscriber of a plain stream costs.
    total: BitrateMeter,
    keyframes: KeyframeThrottle,
    speech: SpeechDetector,
    subscribers: Vec<Subscription>,
    /// Non-WebRTC consumers of this track (recorder, proctoring sampler).
    taps: Vec<Tap>,
    /// A moderator muted it: no subscriber gets its media until it is released.
    held: bool,
    /// When its last packet arrived.
    last_packet: Instant,
    /// Whether it was reported stalled.
    stalled: bool,
}

#[derive(Debug)]
struct Peer {
    role: Role,
    rtc: Rtc,
    ufrag: String,
    timeout: Instant,
    last_input: Instant,
    /// DTLS completed once; only then does silence mean the client is gone.
    connected: bool,
    /// Publisher: the track each m-line carries.
    published: HashMap<Mid, TrackId>,
    /// Subscriber: the track each m-line carries.
    subscribed: HashMap<Mid, TrackId>,
    pending_offer: Option<SdpPendingOffer>,
    /// Subscriber: tracks waiting for an m-line in the next offer.
    to_add: Vec<TrackId>,
    /// Subscriber: m-lines whose track is gone, to stop in the next offer.
    to_stop: Vec<Mid>,
    /// Subscriber: its m-lines in SDP order. str0m keeps the order to itself (`Media::index` is
    /// private), and recycling needs to know which stopped m-lines are last. Only those can be
    /// recycled: str0m adds a local offer's m-lines after every one it has, so a stopped line
    /// followed by a live one keeps its slot until everything after it is stopped too.
    lines: Vec<Line>,
    /// Subscriber: the next offer restarts ICE (the client's network path changed).
    restart_ice: bool,
    /// Subscriber: [`Event::RenewSubscriber`] was reported.
    renewal_asked: bool,
    /// Subscriber: the mids of its last offer, which its answer must name.
    offered_mids: Vec<String>,
    queued: bool,
    /// Makes the next step on this peer panic, to test isolation.
    #[cfg(test)]
    inject_panic: bool,
    /// Makes handling this peer's next event panic, to test isolation.
    #[cfg(test)]
    inject_event_panic: bool,
}

/// One m-line of a subscriber connection.
#[derive(Debug, Clone, Copy)]
struct Line {
    mid: Mid,
    kind: MediaKind,
    /// Stopped (port 0) in an offer: it can never carry media again, only be recycled.
    stopped: bool,
}

/// What a subscriber's next offer changes, taken from the peer before str0m builds it.
#[derive(Debug)]
struct OfferPlan {
    restart_ice: bool,
    /// The subscriber's first m-line: made inactive rather than stopped when its track ends (see
    /// `offer_if_possible`).
    anchor: Option<Mid>,
    to_stop: Vec<Mid>,
    /// Each new track: its id, kind and publisher.
    to_add: Vec<(TrackId, MediaKind, PeerId)>,
    /// The run of stopped m-lines at the end of the SDP, whose slots the new tracks take (RFC
    /// 8829 §5.2.2).
    recycled: Vec<Mid>,
    /// One inactive m-line of each kind for the recycled slots the new tracks leave over.
    placeholders: Vec<MediaKind>,
}

/// Every peer connection of one worker.
#[derive(Debug)]
pub struct Engine {
    local: SocketAddr,
    candidates: Vec<Candidate>,
    peers: HashMap<PeerId, Peer>,
    by_addr: HashMap<SocketAddr, PeerId>,
    by_ufrag: HashMap<String, PeerId>,
    tracks: HashMap<TrackId, Published>,
    next_track: u64,
    outputs: VecDeque<Output>,
    dirty: VecDeque<PeerId>,
    garbage_datagrams: u64,
    /// Whether new subscriber connections estimate their bandwidth (see `allocation`).
    bandwidth_estimation: bool,
    /// Stopped m-lines a subscriber connection may hold between live ones before it is renewed.
    stopped_line_limit: usize,
    /// The latest time given to the engine; commands that have no time of their own use it.
    now: Instant,
    /// When tracks are next checked for stalls.
    next_sweep: Instant,
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
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            tracks: HashMap::new(),
            next_track: 1,
            outputs: VecDeque::new(),
            dirty: VecDeque::new(),
            garbage_datagrams: 0,
            bandwidth_estimation: false,
            stopped_line_limit: DEFAULT_STOPPED_LINE_LIMIT,
            now,
            next_sweep: now,
        }
    }

    /// Reports tracks whose packets stopped arriving.
    fn sweep_stalls(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + STALL_SWEEP;
        for (id, track) in &mut self.tracks {
            if !track.stalled && now.saturating_duration_since(track.last_packet) >= STALL_AFTER {
                track.stalled = true;
                self.outputs.push_back(Output::Event(Event::TrackStalled {
                    peer: track.origin,
                    track: *id,
                    stalled: true,
                }));
            }
        }
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

    fn new_peer(&mut self, id: PeerId, role: Role, now: Instant) -> Result<&mut Peer, SfuError> {
        if self.peers.contains_key(&id) {
            return Err(SfuError::PeerExists(id));
        }
        let mut builder = Rtc::builder().set_rtp_mode(true).set_ice_lite(true);
        if role == Role::Subscriber && self.bandwidth_estimation {
            // The estimate of what the server can send this client drives its layer choice.
            builder = builder.enable_bwe(Some(INITIAL_ESTIMATE));
        }
        let mut rtc = builder.build(now);
        for candidate in &self.candidates {
            rtc.add_local_candidate(candidate.clone());
        }
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        self.by_ufrag.insert(ufrag.clone(), id);
        let peer = Peer {
            role,
            rtc,
            ufrag,
            timeout: now,
            last_input: now,
            connected: false,
            published: HashMap::new(),
            subscribed: HashMap::new(),
            pending_offer: None,
            to_add: Vec::new(),
            to_stop: Vec::new(),
            lines: Vec::new(),
            restart_ice: false,
            renewal_asked: false,
            offered_mids: Vec::new(),
            queued: false,
            #[cfg(test)]
            inject_panic: false,
            #[cfg(test)]
            inject_event_panic: false,
        };
        Ok(self.peers.entry(id).or_insert(peer))
    }

    /// Accepts a client's offer for its publisher connection, creating the connection on the first
    /// offer and renegotiating it on later ones (a screen share added); returns the answer. A
    /// refused first offer leaves no connection behind.
    pub fn publisher_offer(
        &mut self,
        id: PeerId,
        offer: SdpOffer,
        now: Instant,
    ) -> Result<SdpAnswer, SfuError> {
        let existing = self.peers.contains_key(&id);
        let peer = match self.peers.get_mut(&id) {
            Some(peer) if peer.role == Role::Publisher => peer,
            Some(_) => return Err(SfuError::WrongRole(id, Role::Publisher)),
            None => self.new_peer(id, Role::Publisher, now)?,
        };
        let answer = match guarded(peer, |rtc| rtc.sdp_api().accept_offer(offer)) {
            Ok(answer) => answer,
            // A refused re-offer leaves the connection as it was; a refused first offer leaves
            // none (signaling never heard of it, so no `Closed` either).
            Err(Fault::Refused(err)) => {
                if !existing {
                    self.drop_peer(id);
                }
                return Err(err.into());
            }
            Err(fault @ Fault::Panicked(_)) => {
                if !existing {
                    self.drop_peer(id);
                    return Err(SfuError::PeerFailed(id));
                }
                return Err(self.fail(id, fault));
            }
        };
        // A re-offer may restart ICE (new credentials on both sides).
        self.follow_ice_credentials(id);
        // A re-offer that stops an m-line (a screen share ended) ends that track for everyone.
        let ended: Vec<TrackId> = self
            .peers
            .get_mut(&id)
            .map(|peer| {
                let rtc = &peer.rtc;
                let gone: Vec<Mid> = peer
                    .published
                    .keys()
                    .filter(|mid| {
                        rtc.media(**mid)
                            .is_none_or(|m| m.disabled() || !m.direction().is_receiving())
                    })
                    .copied()
                    .collect();
                gone.iter()
                    .filter_map(|mid| peer.published.remove(mid))
                    .collect()
            })
            .unwrap_or_default();
        let mut renegotiate = Vec::new();
        for track in ended {
            self.unpublish(id, track, &mut renegotiate);
        }
        for subscriber in renegotiate {
            self.offer_if_possible(subscriber);
        }
        self.mark_dirty(id);
        Ok(answer)
    }

    /// Creates a subscriber connection; it is offered to the client when it gets its first track.
    pub fn add_subscriber(&mut self, id: PeerId, now: Instant) -> Result<(), SfuError> {
        self.new_peer(id, Role::Subscriber, now)?;
        Ok(())
    }

    /// Starts sending `track` to subscriber connection `peer`, at the best live simulcast layer
    /// within `quality`. The offer that adds it comes out as [`Event::Offer`].
    pub fn subscribe(
        &mut self,
        peer_id: PeerId,
        track_id: TrackId,
        quality: Quality,
    ) -> Result<(), SfuError> {
        self.add_subscription(peer_id, track_id, quality)?;
        self.offer_if_possible(peer_id);
        self.still_open(peer_id)
    }

    /// Subscribes `peer` to every track of `tracks` at once, in one offer: a participant joining
    /// a room gets everything already there in one negotiation, not one per track. A track gone
    /// meanwhile is skipped (its unpublish is on its way to signaling).
    pub fn subscribe_all(
        &mut self,
        peer_id: PeerId,
        tracks: &[TrackId],
        quality: Quality,
    ) -> Result<(), SfuError> {
        for track in tracks {
            match self.add_subscription(peer_id, *track, quality) {
                Ok(()) => {}
                Err(SfuError::UnknownTrack(gone)) => {
                    tracing::debug!(
                        peer = peer_id.0,
                        track = gone.0,
                        "subscribed to a track that is gone"
                    );
                }
                Err(err) => return Err(err),
            }
        }
        self.offer_if_possible(peer_id);
        self.still_open(peer_id)
    }

    /// Adds a subscription without offering it yet.
    fn add_subscription(
        &mut self,
        peer_id: PeerId,
        track_id: TrackId,
        quality: Quality,
    ) -> Result<(), SfuError> {
        let track = self
            .tracks
            .get_mut(&track_id)
            .ok_or(SfuError::UnknownTrack(track_id))?;
        let peer = self
            .peers
            .get_mut(&peer_id)
            .ok_or(SfuError::UnknownPeer(peer_id))?;
        if peer.role != Role::Subscriber {
            return Err(SfuError::WrongRole(peer_id, Role::Subscriber));
        }
        if track.subscribers.iter().any(|s| s.peer == peer_id) {
            return Ok(());
        }
        let codec = track
            .codecs
            .first()
            .map(|c| c.1)
            .unwrap_or(match track.kind {
                MediaKind::Audio => Codec::Opus,
                MediaKind::Video => Codec::Vp8,
            });
        peer.to_add.push(track_id);
        let mut down = DownTrack::new(codec, quality.max_layer());
        down.set_paused(track.held || (quality == Quality::Off && track.kind == MediaKind::Video));
        track.subscribers.push(Subscription {
            peer: peer_id,
            quality,
            cap: Quality::High,
            mid: None,
            down,
            negotiated: false,
            out_pt: None,
            unsupported: false,
        });
        Ok(())
    }

    /// Changes the quality a subscriber wants of a track ([`Quality::Off`] pauses its video).
    pub fn set_quality(
        &mut self,
        peer: PeerId,
        track: TrackId,
        quality: Quality,
    ) -> Result<(), SfuError> {
        let published = self
            .tracks
            .get_mut(&track)
            .ok_or(SfuError::UnknownTrack(track))?;
        let video = published.kind == MediaKind::Video;
        let subscription = published
            .subscribers
            .iter_mut()
            .find(|s| s.peer == peer)
            .ok_or(SfuError::UnknownPeer(peer))?;
        subscription.quality = quality;
        subscription
            .down
            .set_paused(published.held || (quality == Quality::Off && video));
        subscription
            .down
            .set_target(quality.min(subscription.cap).max_layer());
        Ok(())
    }

    /// Holds a track (a moderator muted it) or releases it: while held no subscriber gets its
    /// media, whatever the publisher sends; released, each resumes at a keyframe. Taps keep
    /// their stream (a recording shows what the publisher really sent).
    pub fn hold(&mut self, track: TrackId, held: bool) -> Result<(), SfuError> {
        let published = self
            .tracks
            .get_mut(&track)
            .ok_or(SfuError::UnknownTrack(track))?;
        published.held = held;
        let video = published.kind == MediaKind::Video;
        for sub in &mut published.subscribers {
            sub.down
                .set_paused(held || (sub.quality == Quality::Off && video));
        }
        Ok(())
    }

    /// A candidate the client trickled for one of its connections (`candidate:...` as in SDP).
    pub fn add_remote_candidate(&mut self, id: PeerId, candidate: &str) -> Result<(), SfuError> {
        let peer = self.peers.get_mut(&id).ok_or(SfuError::UnknownPeer(id))?;
        let line = candidate.strip_prefix("a=").unwrap_or(candidate);
        // Parsing is inside the guard too: the text is the client's.
        let added = guarded(peer, |rtc| {
            Ok(Candidate::from_sdp_string(line).map(|parsed| rtc.add_remote_candidate(parsed)))
        });
        match added {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(SfuError::BadCandidate(err.to_string())),
            Err(fault) => return Err(self.fail(id, fault)),
        }
        self.mark_dirty(id);
        Ok(())
    }

    /// Attaches a consumer outside WebRTC to `track`: it receives the best live simulcast layer
    /// within `quality`, starting at a keyframe, through a queue of `capacity` packets (see the
    /// `tap` module). Dropping the receiver detaches it; the track ending closes it.
    pub fn add_tap(
        &mut self,
        track_id: TrackId,
        quality: Quality,
        capacity: usize,
    ) -> Result<TapReceiver, SfuError> {
        let track = self
            .tracks
            .get_mut(&track_id)
            .ok_or(SfuError::UnknownTrack(track_id))?;
        let codec = track
            .codecs
            .first()
            .map(|c| c.1)
            .unwrap_or(match track.kind {
                MediaKind::Audio => Codec::Opus,
                MediaKind::Video => Codec::Vp8,
            });
        let (tap, receiver) = Tap::new(
            DownTrack::new(codec, quality.max_layer()),
            quality,
            codec,
            capacity,
        );
        track.taps.push(tap);
        Ok(receiver)
    }

    /// The client's answer to the last [`Event::Offer`] for `peer`.
    pub fn accept_answer(&mut self, peer_id: PeerId, answer: SdpAnswer) -> Result<(), SfuError> {
        let peer = self
            .peers
            .get_mut(&peer_id)
            .ok_or(SfuError::UnknownPeer(peer_id))?;
        if peer.pending_offer.is_none() {
            return Ok(());
        }
        let answered = sdp_mids(&answer.to_sdp_string());
        if answered.iter().any(|mid| !peer.offered_mids.contains(mid)) {
            tracing::debug!(peer = peer_id.0, ?answered, offered = ?peer.offered_mids, "stale answer");
            return Err(SfuError::StaleAnswer(peer_id));
        }
        let Some(pending) = peer.pending_offer.take() else {
            return Ok(());
        };
        match guarded(peer, |rtc| rtc.sdp_api().accept_answer(pending, answer)) {
            Ok(()) => {}
            // The offer is spent and its m-lines are neither negotiated nor offered again: the
            // connection cannot recover. Closing it lets signaling start the client afresh.
            Err(Fault::Refused(err)) => {
                self.close(
                    peer_id,
                    CloseReason::Failed(format!("answer refused: {err}")),
                );
                return Err(err.into());
            }
            Err(fault) => return Err(self.fail(peer_id, fault)),
        }
        // An ICE restart we offered takes effect with the answer.
        self.follow_ice_credentials(peer_id);
        let Some(peer) = self.peers.get(&peer_id) else {
            return Ok(());
        };
        let mut answered = Vec::new();
        for (mid, track_id) in &peer.subscribed {
            if let Some(track) = self.tracks.get_mut(track_id)
                && let Some(sub) = track
                    .subscribers
                    .iter_mut()
                    .find(|s| s.peer == peer_id && s.mid == Some(*mid))
                && !sub.negotiated
            {
                sub.negotiated = true;
                answered.push((*mid, *track_id));
            }
        }
        for (mid, track) in answered {
            self.check_codecs(peer_id, mid, track);
        }
        self.offer_if_possible(peer_id);
        self.mark_dirty(peer_id);
        self.still_open(peer_id)
    }

    /// Reports a subscriber whose answer accepted none of the codecs a track may arrive in: those
    /// seen so far or, before the first packet, every one its publisher negotiated. The m-line
    /// offered those alone (`sdp::narrow_offer`); the answer is where a client says which of them
    /// it can decode.
    fn check_codecs(&mut self, subscriber: PeerId, mid: Mid, track_id: TrackId) {
        let Some(track) = self.tracks.get(&track_id) else {
            return;
        };
        let possible = track_codecs(track, self.peers.get(&track.origin));
        let Some(out) = self.peers.get(&subscriber) else {
            return;
        };
        if possible.is_empty()
            || possible
                .iter()
                .any(|(_, params)| negotiated_pt(&out.rtc, mid, *params).is_some())
        {
            return;
        }
        // One codec (in however many payload types) names itself; several name the one seen.
        let first = possible.first().map(|c| c.0);
        let codec = if possible.iter().all(|c| Some(c.0) == first) {
            first
        } else {
            track.codecs.first().map(|c| c.1)
        };
        if let Some(track) = self.tracks.get_mut(&track_id)
            && let Some(sub) = track.subscribers.iter_mut().find(|s| s.peer == subscriber)
        {
            sub.unsupported = true;
        }
        tracing::info!(
            peer = subscriber.0,
            track = track_id.0,
            ?codec,
            "subscriber cannot decode the track's codec"
        );
        self.outputs
            .push_back(Output::Event(Event::CodecUnsupported {
                peer: subscriber,
                track: track_id,
                codec,
            }));
    }

    /// `Ok` if the peer is still there; after a command whose follow-up closed it, says so.
    fn still_open(&self, id: PeerId) -> Result<(), SfuError> {
        if self.peers.contains_key(&id) {
            Ok(())
        } else {
            Err(SfuError::PeerFailed(id))
        }
    }

    /// Closes a peer whose command failed inside [`guarded`], and tells the caller why.
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

    /// Sends the subscriber an offer adding its queued tracks and stopping its ended ones, unless
    /// one is still unanswered (then the answer triggers the next offer: one negotiation at a
    /// time, no glare).
    ///
    /// m-lines are never removed from a session, so without care a subscriber's SDP grows by one
    /// m-line per track it ever received. Three rules keep it in bounds:
    /// - New tracks take the slots of the stopped m-lines at the end of the SDP (RFC 8829 §5.2.2
    ///   recycling, with new mids). str0m 0.25 recycles only slots a remote offer reuses and
    ///   always appends the m-lines of a local offer, so the engine removes that whole run of
    ///   stopped lines from the session first: str0m then puts the new lines exactly where those
    ///   were. Fewer new tracks than slots leave the rest to inactive placeholders, stopped in the
    ///   next offer; they stay last, so the next tracks can take them in turn. Stopped lines
    ///   followed by a live one cannot be recycled (see `lines`).
    /// - Tracks wait one negotiation when the last m-line is being stopped, so that they can take
    ///   its slot rather than land after it.
    /// - Stopped lines followed by a live one stay. Past the connection's limit of those, the
    ///   engine asks for a fresh connection ([`Event::RenewSubscriber`]), which bounds the SDP
    ///   by the live tracks plus the limit however long the interview runs.
    /// - The first m-line is made inactive, never stopped. It keeps the BUNDLE group from becoming
    ///   empty when every track ends (a client would drop the transport, and str0m would not make
    ///   a new one), and it is the only m-line str0m writes ICE candidates into, which an ICE
    ///   restart needs in a live m-line.
    fn offer_if_possible(&mut self, id: PeerId) {
        let Engine {
            peers,
            tracks,
            outputs,
            stopped_line_limit,
            ..
        } = self;
        // What each track may arrive in, read before the subscriber is borrowed for the offer:
        // its new m-lines offer those codecs alone.
        let arrives_in: HashMap<TrackId, Vec<PayloadParams>> = peers
            .get(&id)
            .map(|peer| {
                peer.to_add
                    .iter()
                    .filter_map(|t| tracks.get(t).map(|track| (t, track)))
                    .map(|(t, track)| {
                        let codecs = track_codecs(track, peers.get(&track.origin));
                        (*t, codecs.into_iter().map(|c| c.1).collect())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let Some(peer) = peers.get_mut(&id) else {
            return;
        };
        let nothing_to_change =
            peer.to_add.is_empty() && peer.to_stop.is_empty() && !peer.restart_ice;
        if peer.pending_offer.is_some() || nothing_to_change {
            return;
        }
        let anchor = peer.lines.first().map(|line| line.mid);
        let last_stops = peer
            .lines
            .last()
            .is_some_and(|line| Some(line.mid) != anchor && peer.to_stop.contains(&line.mid));
        let to_add: Vec<(TrackId, MediaKind, PeerId)> = if last_stops {
            Vec::new()
        } else {
            peer.to_add
                .drain(..)
                .filter_map(|t| tracks.get(&t).map(|track| (t, track.kind, track.origin)))
                .collect()
        };
        // No offer is pending, so every stopped line was stopped by an offer the client answered:
        // recycling needs the client to know the slot is free.
        let run = if to_add.is_empty() {
            0
        } else {
            peer.lines
                .iter()
                .rev()
                .take_while(|line| line.stopped)
                .count()
        };
        let kept = peer.lines.len() - run;
        let filled = kept + run.min(to_add.len());
        let plan = OfferPlan {
            restart_ice: std::mem::take(&mut peer.restart_ice),
            anchor,
            to_stop: std::mem::take(&mut peer.to_stop),
            to_add,
            recycled: peer.lines[kept..].iter().map(|line| line.mid).collect(),
            placeholders: peer.lines[filled..].iter().map(|line| line.kind).collect(),
        };
        let built = guarded(peer, |rtc| Ok(build_offer(rtc, &plan)));
        let (added, placeholders, offer) = match built {
            Ok(built) => built,
            Err(fault) => {
                self.close(id, fault.into_reason());
                return;
            }
        };
        let narrowing: Vec<Narrowing> = plan
            .to_add
            .iter()
            .zip(&added)
            .filter_map(|((track, _, _), mid)| {
                let payload_types = offered_payload_types(&peer.rtc, arrives_in.get(track)?);
                (!payload_types.is_empty()).then_some(Narrowing {
                    mid: *mid,
                    payload_types,
                })
            })
            .collect();
        peer.lines.truncate(kept);
        for line in &mut peer.lines {
            if plan.to_stop.contains(&line.mid) && Some(line.mid) != plan.anchor {
                line.stopped = true;
            }
        }
        for (&(track_id, kind, _), mid) in plan.to_add.iter().zip(added) {
            peer.lines.push(Line {
                mid,
                kind,
                stopped: false,
            });
            peer.subscribed.insert(mid, track_id);
            if let Some(sub) = tracks
                .get_mut(&track_id)
                .and_then(|t| t.subscribers.iter_mut().find(|s| s.peer == id))
            {
                sub.mid = Some(mid);
            }
        }
        for (kind, mid) in plan.placeholders.iter().zip(placeholders) {
            peer.lines.push(Line {
                mid,
                kind: *kind,
                stopped: false,
            });
            peer.to_stop.push(mid);
        }
        if let Some((offer, pending)) = offer {
            peer.pending_offer = Some(pending);
            let offer = narrow_offer(offer, &narrowing);
            peer.offered_mids = sdp_mids(&offer.to_sdp_string());
            outputs.push_back(Output::Event(Event::Offer { peer: id, offer }));
        }
        // Stopped lines followed by a live one keep their slots (see `lines`): past the limit,
        // only a new connection gives them back.
        let trailing = peer.lines.iter().rev().take_while(|l| l.stopped).count();
        let stopped = peer.lines[..peer.lines.len() - trailing]
            .iter()
            .filter(|l| l.stopped)
            .count();
        if stopped > *stopped_line_limit && !peer.renewal_asked {
            peer.renewal_asked = true;
            tracing::info!(peer = id.0, stopped, "subscriber connection to be renewed");
            outputs.push_back(Output::Event(Event::RenewSubscriber { peer: id, stopped }));
        }
    }

    /// An ICE restart gives a connection new local credentials: the first datagrams of the new
    /// path name the new ufrag, so the demux map must know it (and forget the old one).
    fn follow_ice_credentials(&mut self, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let ufrag = peer.rtc.direct_api().local_ice_credentials().ufrag;
        if ufrag == peer.ufrag {
            return;
        }
        self.by_ufrag.remove(&peer.ufrag);
        self.by_ufrag.insert(ufrag.clone(), id);
        peer.ufrag = ufrag;
    }

    /// Restarts ICE on a subscriber connection: its next offer carries new credentials, so a
    /// client whose network changed can reach the server again on a new path. (A publisher
    /// connection restarts by the client's own re-offer.)
    pub fn restart_ice(&mut self, id: PeerId) -> Result<(), SfuError> {
        let peer = self.peers.get_mut(&id).ok_or(SfuError::UnknownPeer(id))?;
        if peer.role != Role::Subscriber {
            return Err(SfuError::WrongRole(id, Role::Subscriber));
        }
        peer.restart_ice = true;
        self.offer_if_possible(id);
        self.still_open(id)
    }

    /// A datagram arrived on the worker's socket.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) {
        self.now = self.now.max(now);
        // Anyone on the internet can send these bytes, before any peer owns them: str0m's parsers
        // run inside a panic guard, and a datagram that makes one panic is garbage.
        let Ok(Ok(parsed)) = catch_panic(|| DatagramRecv::try_from(contents)) else {
            self.garbage_datagrams += 1;
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.advertised(destination),
                contents: parsed,
            },
        );
        let known = self.by_addr.get(&source).copied();
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
            return;
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            self.garbage_datagrams += 1;
            return;
        };
        match guarded(peer, |rtc| Ok(rtc.accepts(&input))) {
            Ok(true) => {}
            Ok(false) => {
                self.garbage_datagrams += 1;
                return;
            }
            Err(fault) => {
                self.close(id, fault.into_reason());
                return;
            }
        }
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if known.is_none() {
            self.by_addr.insert(source, id);
        }
        peer.last_input = now;
        if let Err(fault) = guarded(peer, |rtc| rtc.handle_input(input)) {
            self.close(id, fault.into_reason());
            return;
        }
        // str0m holds one received RTP packet until it is polled: drain now, or the next datagram
        // for this peer would overwrite it.
        self.drain_peer(id);
    }

    /// str0m accepts only datagrams addressed to one of its candidates. A datagram that reached
    /// this host at an address it does not advertise came through a 1:1 NAT in front (the host
    /// sees its private address, clients the advertised public one): it counts as sent to the
    /// first advertised address.
    fn advertised(&self, destination: SocketAddr) -> SocketAddr {
        if self.candidates.iter().any(|c| c.addr() == destination) {
            return destination;
        }
        self.candidates.first().map_or(destination, Candidate::addr)
    }

    /// Time has reached `now`: drives every peer whose timeout is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.sweep_stalls(now);
        let mut failed = Vec::new();
        let mut due = Vec::new();
        for (id, peer) in &mut self.peers {
            if peer.connected && now.saturating_duration_since(peer.last_input) > IDLE_TIMEOUT {
                failed.push((*id, CloseReason::Disconnected));
                continue;
            }
            if peer.timeout > now {
                continue;
            }
            match guarded(peer, |rtc| rtc.handle_input(Input::Timeout(now))) {
                Ok(()) => due.push(*id),
                Err(fault) => failed.push((*id, fault.into_reason())),
            }
        }
        for id in due {
            self.drain_peer(id);
        }
        for (id, reason) in failed {
            self.close(id, reason);
        }
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
                let peers = self.peers.values().map(|p| p.timeout).min();
                let sweep = (!self.tracks.is_empty()).then_some(self.next_sweep);
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
                    peer.timeout = at;
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
            _ => {}
        }
    }

    /// A subscriber connection's bandwidth estimate changed: share it among the tracks it
    /// receives, and tell the estimator what to probe for.
    fn reallocate(&mut self, id: PeerId, estimate_bps: u64) {
        let Engine {
            peers, tracks, now, ..
        } = self;
        let Some(peer) = peers.get_mut(&id) else {
            return;
        };
        let mut received: Vec<TrackId> = peer.subscribed.values().copied().collect();
        // A stable order, so the same estimate gives the same shares.
        received.sort_unstable();
        let shares: Vec<(TrackId, Want)> = received
            .iter()
            .filter_map(|t| {
                let track = tracks.get(t)?;
                let sub = track.subscribers.iter().find(|s| s.peer == id)?;
                let bitrates = track.meters.each_ref().map(|m| m.peek_bps(*now));
                let want = if bitrates.iter().any(Option::is_some) {
                    Want::Layered {
                        quality: sub.quality,
                        bitrates,
                    }
                } else {
                    Want::Plain(track.total.peek_bps(*now).unwrap_or(0))
                };
                Some((*t, want))
            })
            .collect();
        let wants: Vec<Want> = shares.iter().map(|(_, want)| *want).collect();
        let headroom = LayerSelector::default().headroom;
        let allocation = allocate((estimate_bps as f64 * headroom) as u64, &wants);
        for ((track, _), cap) in shares.iter().zip(&allocation.caps) {
            if let Some(sub) = tracks
                .get_mut(track)
                .and_then(|t| t.subscribers.iter_mut().find(|s| s.peer == id))
            {
                sub.cap = *cap;
            }
        }
        tracing::debug!(peer = id.0, estimate_bps, caps = ?allocation.caps, "bandwidth shared");
        peer.rtc.bwe().set_bitrate(
            Bitrate::bps(allocation.minimum_bps),
            Bitrate::bps(allocation.desired_bps),
        );
    }

    fn on_media_added(&mut self, id: PeerId, mid: Mid, kind: MediaKind) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.role != Role::Publisher || peer.published.contains_key(&mid) {
            return;
        }
        let track = TrackId(self.next_track);
        self.next_track += 1;
        peer.published.insert(mid, track);
        self.tracks.insert(
            track,
            Published {
                origin: id,
                mid,
                kind,
                codecs: Vec::new(),
                meters: Default::default(),
                total: BitrateMeter::default(),
                keyframes: KeyframeThrottle::default(),
                speech: SpeechDetector::default(),
                subscribers: Vec::new(),
                taps: Vec::new(),
                held: false,
                last_packet: self.now,
                stalled: false,
            },
        );
        self.outputs.push_back(Output::Event(Event::TrackPublished {
            peer: id,
            track,
            mid: mid.to_string(),
            kind,
        }));
    }

    fn on_rtp(&mut self, publisher: PeerId, packet: RtpPacket) {
        let Engine { peers, tracks, .. } = self;
        let Some(peer) = peers.get_mut(&publisher) else {
            return;
        };
        let now = packet.timestamp;
        let ssrc = packet.header.ssrc;
        let (mid, rid) = {
            let mut api = peer.rtc.direct_api();
            let Some(rx) = api.stream_rx(&ssrc) else {
                return;
            };
            (rx.mid(), rx.rid())
        };
        let Some(track_id) = peer.published.get(&mid).copied() else {
            return;
        };
        let Some(track) = tracks.get_mut(&track_id) else {
            return;
        };
        let pt = *packet.header.payload_type;
        let codec = match track.codecs.iter().find(|c| c.0 == pt) {
            Some(known) => Some(known.1),
            None => learn_codec(&peer.rtc, pt).map(|(codec, params)| {
                track.codecs.push((pt, codec, params));
                codec
            }),
        };
        let Some(codec) = codec else {
            return;
        };
        let Some(params) = track.codecs.iter().find(|c| c.0 == pt).map(|c| c.2) else {
            return;
        };
        let layer = rid.as_ref().and_then(|r| Layer::from_rid(r));
        track.total.record(packet.payload.len(), now);
        track.last_packet = now;
        if track.stalled {
            track.stalled = false;
            self.outputs.push_back(Output::Event(Event::TrackStalled {
                peer: publisher,
                track: track_id,
                stalled: false,
            }));
        }
        if let Some(layer) = layer {
            track.meters[layer.index()].record(packet.payload.len(), now);
            // Layers come and go (a browser sends fewer for small or slow cameras, or drops
            // the top one when its CPU is busy): each subscriber and tap gets the best layer that
            // is actually arriving within what it asked for.
            let live = track.meters.each_ref().map(|m| m.peek_bps(now));
            let selector = LayerSelector::default();
            let wanted = track
                .subscribers
                .iter_mut()
                .map(|sub| (sub.quality.min(sub.cap), &mut sub.down))
                .chain(
                    track
                        .taps
                        .iter_mut()
                        .map(|tap| (tap.quality, &mut tap.down)),
                );
            for (quality, down) in wanted {
                let best = selector.select(quality, None, &live);
                if best.is_some() && best != down.target() {
                    down.set_target(best);
                }
            }
        }
        let incoming = Incoming::parse(
            codec,
            SourceId(*ssrc),
            layer,
            *packet.seq_no,
            packet.time.numer(),
            now,
            &packet.payload,
        );
        if incoming.keyframe_start && codec.is_video() {
            // A track without simulcast uses the lowest layer's slot (as its requests do).
            track
                .keyframes
                .keyframe_arrived(layer.unwrap_or(Layer::Low));
        }
        if let Some(level) = packet.header.ext_vals.audio_level
            && let Some(speaking) = track.speech.observe(level)
        {
            self.outputs.push_back(Output::Event(Event::Speaking {
                peer: publisher,
                track: track_id,
                speaking,
            }));
        }
        let ext_vals = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            ..Default::default()
        };
        // Which stream a waiting subscriber needs a keyframe on: a layer, or the only stream.
        let mut wanted_layers = [false; Layer::COUNT];
        let mut wanted_plain = false;
        // A simulcast packet asks on the layer the subscriber or tap waits for (or, for a tap
        // that asked, the one it gets); a plain stream has only itself to ask.
        let video = codec.is_video();
        let mut want_keyframe = |down: &DownTrack, asked: bool| {
            if down.needs_keyframe() || (asked && video) {
                match layer.and(down.target()) {
                    Some(target) => wanted_layers[target.index()] = true,
                    None => wanted_plain = true,
                }
            }
        };
        let mut consumer_gone = false;
        for tap in &mut track.taps {
            let decision = tap.down.forward(&incoming);
            want_keyframe(&tap.down, tap.take_keyframe_request());
            let Decision::Forward(rewritten) = decision else {
                continue;
            };
            // str0m hands each packet its stream's latest sender report.
            let clock = packet.last_sender_info.map(|report| SenderClock {
                ntp: report.ntp_time,
                // The low 32 bits are the timestamp on the wire; str0m extends it.
                rtp_time: report.rtp_time.numer() as u32,
            });
            let offered = tap.offer(|| TapPacket {
                track: track_id,
                codec,
                seq: rewritten.seq,
                rtp_time: rewritten.rtp_time,
                marker: packet.header.marker,
                keyframe: incoming.keyframe_start,
                payload: packet.payload.clone(),
                arrival: now,
                sender_time: clock
                    .and_then(|c| c.time_of(packet.header.timestamp, codec.clock_rate())),
            });
            consumer_gone |= offered == Offered::Gone;
        }
        if consumer_gone {
            track.taps.retain(|tap| !tap.is_detached());
        }
        for sub in &mut track.subscribers {
            // Only a subscriber that can receive now may advance its stream: a keyframe written
            // before its m-line is negotiated and its connection up would be lost, and its
            // decoder would wait for the next one.
            let Some(out) = peers.get_mut(&sub.peer) else {
                continue;
            };
            let (true, true, Some(sub_mid)) = (out.connected, sub.negotiated, sub.mid) else {
                continue;
            };
            let out_pt = match sub.out_pt {
                Some((seen, out_pt)) if seen == pt => out_pt,
                _ => {
                    let found = negotiated_pt(&out.rtc, sub_mid, params);
                    sub.out_pt = Some((pt, found));
                    found
                }
            };
            // A client that refused this codec would drop the packets unseen (black video, no
            // error): say so once, and neither forward nor ask for keyframes on its behalf.
            let Some(out_pt) = out_pt else {
                if !std::mem::replace(&mut sub.unsupported, true) {
                    tracing::info!(
                        peer = sub.peer.0,
                        track = track_id.0,
                        ?codec,
                        "subscriber cannot decode the track's codec"
                    );
                    self.outputs
                        .push_back(Output::Event(Event::CodecUnsupported {
                            peer: sub.peer,
                            track: track_id,
                            codec: Some(codec),
                        }));
                }
                continue;
            };
            let decision = sub.down.forward(&incoming);
            want_keyframe(&sub.down, false);
            let Decision::Forward(rewritten) = decision else {
                continue;
            };
            let mut write = RtpWrite::new(
                out_pt,
                rewritten.seq.into(),
                rewritten.rtp_time as u32,
                now,
                packet.payload.clone(),
            )
            .marker(packet.header.marker)
            .nackable(codec.is_video())
            .ext_vals(ext_vals.clone());
            if let (Some(picture_id), Some(original)) =
                (rewritten.vp8_picture_id, incoming.vp8_picture_id)
                && picture_id != original
                && let Ok(descriptor) = Vp8Descriptor::parse(&packet.payload)
                && let Ok(patch) = descriptor.patch().picture_id(picture_id).build()
            {
                write = write.vp8_patch(patch);
            }
            let mut api = out.rtc.direct_api();
            if let Some(stream) = api.stream_tx_by_mid(sub_mid, None) {
                stream.write_rtp(write);
                if !out.queued {
                    out.queued = true;
                    self.dirty.push_back(sub.peer);
                }
            }
        }
        let Some(peer) = peers.get_mut(&publisher) else {
            return;
        };
        for (index, want) in wanted_layers.iter().enumerate() {
            let layer = Layer::ALL[index];
            if *want && track.keyframes.try_request(layer, now) {
                request_keyframe(&mut peer.rtc, track.mid, Some(layer.rid().into()));
            }
        }
        // A track without simulcast uses the lowest layer's slot in the throttle.
        if wanted_plain && track.keyframes.try_request(Layer::Low, now) {
            request_keyframe(&mut peer.rtc, track.mid, None);
        }
        if !peer.queued {
            peer.queued = true;
            self.dirty.push_back(publisher);
        }
    }

    fn on_keyframe_request(&mut self, subscriber: PeerId, mid: Mid) {
        let Some(track_id) = self
            .peers
            .get(&subscriber)
            .and_then(|p| p.subscribed.get(&mid))
            .copied()
        else {
            return;
        };
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        let Some(sub) = track.subscribers.iter().find(|s| s.peer == subscriber) else {
            return;
        };
        let current = sub.down.current();
        if !track
            .keyframes
            .try_relay(current.unwrap_or(Layer::Low), self.now)
        {
            return;
        }
        let rid: Option<Rid> = current.map(|layer| layer.rid().into());
        if let Some(peer) = self.peers.get_mut(&track.origin) {
            request_keyframe(&mut peer.rtc, track.mid, rid);
            if !peer.queued {
                peer.queued = true;
                self.dirty.push_back(track.origin);
            }
        }
    }

    /// Ends a published track: every subscriber's m-line for it is stopped (collected in
    /// `renegotiate` for the next offer), so clients release it.
    fn unpublish(&mut self, origin: PeerId, track: TrackId, renegotiate: &mut Vec<PeerId>) {
        let Some(published) = self.tracks.remove(&track) else {
            return;
        };
        for sub in published.subscribers {
            let Some(subscriber) = self.peers.get_mut(&sub.peer) else {
                continue;
            };
            match sub.mid {
                Some(mid) => {
                    subscriber.subscribed.remove(&mid);
                    subscriber.to_stop.push(mid);
                }
                None => subscriber.to_add.retain(|t| *t != track),
            }
            renegotiate.push(sub.peer);
        }
        self.outputs
            .push_back(Output::Event(Event::TrackUnpublished {
                peer: origin,
                track,
            }));
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

/// How a step on a peer's `Rtc` failed (see [`guarded`]).
#[derive(Debug)]
enum Fault {
    /// str0m refused the peer's input; the `Rtc` is still sound.
    Refused(str0m::RtcError),
    /// The step panicked, with this message; the `Rtc` must not be used again.
    Panicked(String),
}

impl Fault {
    fn into_reason(self) -> CloseReason {
        match self {
            Fault::Refused(err) => CloseReason::Failed(err.to_string()),
            Fault::Panicked(message) => CloseReason::Failed(format!("panicked: {message}")),
        }
    }
}

/// Runs `step` on one peer's `Rtc`, turning its errors and panics into a [`Fault`]. A panic is a
/// bug (str0m's or ours), but it must cost one connection, not the worker and every room on it:
/// callers close the peer, so the `Rtc` it happened in is never used again.
fn guarded<T>(
    peer: &mut Peer,
    step: impl FnOnce(&mut Rtc) -> Result<T, str0m::RtcError>,
) -> Result<T, Fault> {
    #[cfg(test)]
    let inject = std::mem::take(&mut peer.inject_panic);
    let rtc = &mut peer.rtc;
    let outcome = catch_panic(|| {
        #[cfg(test)]
        if inject {
            panic!("injected by a test");
        }
        step(rtc)
    });
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(Fault::Refused(err)),
        Err(message) => {
            tracing::error!(%message, "a peer connection panicked; closing it");
            Err(Fault::Panicked(message))
        }
    }
}

/// Runs `step`, turning a panic into its message. Only for steps whose state is thrown away when
/// they panic (a peer's `Rtc`, a parse).
pub(crate) fn catch_panic<T>(step: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned())
    })
}

/// The m-lines of a subscriber offer's added tracks and placeholders, and the offer.
type BuiltOffer = (Vec<Mid>, Vec<Mid>, Option<(SdpOffer, SdpPendingOffer)>);

/// Builds a subscriber's next offer on its `Rtc` as `plan` says (see
/// `Engine::offer_if_possible`).
fn build_offer(rtc: &mut Rtc, plan: &OfferPlan) -> BuiltOffer {
    // str0m places a local offer's new m-lines after all it has; without the stopped run at the
    // end, that is where the run was.
    for mid in &plan.recycled {
        rtc.direct_api().remove_media(*mid);
    }
    let mut draws = 0;
    loop {
        draws += 1;
        let mut change = rtc.sdp_api();
        if plan.restart_ice {
            change.ice_restart(true);
        }
        for mid in &plan.to_stop {
            if Some(*mid) == plan.anchor {
                change.set_direction(*mid, Direction::Inactive);
            } else {
                change.stop_media(*mid);
            }
        }
        let added: Vec<Mid> = plan
            .to_add
            .iter()
            .map(|(track, kind, origin)| {
                change.add_media(
                    *kind,
                    Direction::SendOnly,
                    Some(format!("p{}", origin.0)),
                    Some(format!("t{}", track.0)),
                    None,
                )
            })
            .collect();
        let placeholders: Vec<Mid> = plan
            .placeholders
            .iter()
            .map(|kind| change.add_media(*kind, Direction::Inactive, None, None, None))
            .collect();
        // Dropping an unapplied change discards it; stops and directions already took effect in
        // the session and are offered from there.
        let reused = added
            .iter()
            .chain(&placeholders)
            .any(|mid| plan.recycled.contains(mid));
        if reused && draws < MID_DRAWS {
            continue;
        }
        return (added, placeholders, change.apply());
    }
}

fn request_keyframe(rtc: &mut Rtc, mid: Mid, rid: Option<Rid>) {
    if let Some(rx) = rtc.direct_api().stream_rx_by_mid(mid, rid) {
        rx.request_keyframe(KeyframeRequestKind::Pli);
    }
}

fn learn_codec(rtc: &Rtc, pt: u8) -> Option<(Codec, PayloadParams)> {
    let params = rtc
        .codec_config()
        .params()
        .iter()
        .find(|p| *p.pt() == pt)
        .copied()?;
    let codec = match params.spec().codec {
        Str0mCodec::Opus => Codec::Opus,
        Str0mCodec::Vp8 => Codec::Vp8,
        Str0mCodec::Vp9 => Codec::Vp9,
        Str0mCodec::H264 => Codec::H264,
        _ => return None,
    };
    Some((codec, params))
}

/// The codecs a track may arrive in: those seen so far or, before its first packet, each one its
/// publisher negotiated for its m-line that the SFU forwards.
fn track_codecs(track: &Published, publisher: Option<&Peer>) -> Vec<(Codec, PayloadParams)> {
    if !track.codecs.is_empty() {
        return track.codecs.iter().map(|c| (c.1, c.2)).collect();
    }
    let Some(rtc) = publisher.map(|p| &p.rtc) else {
        return Vec::new();
    };
    let Some(media) = rtc.media(track.mid) else {
        return Vec::new();
    };
    media
        .remote_pts()
        .iter()
        .filter_map(|pt| learn_codec(rtc, **pt))
        .collect()
}

/// The mids of a session description's m-lines, in order.
fn sdp_mids(sdp: &str) -> Vec<String> {
    sdp.lines()
        .filter_map(|line| line.strip_prefix("a=mid:"))
        .map(|mid| mid.trim().to_owned())
        .collect()
}

/// The payload types a subscriber connection offers a track arriving in `codecs` as: the one its
/// configuration matches each codec with, and that one's retransmission type.
fn offered_payload_types(rtc: &Rtc, codecs: &[PayloadParams]) -> Vec<u8> {
    let config = rtc.codec_config();
    let mut payload_types = Vec::new();
    for params in codecs {
        let Some(offered) = config.match_params(*params) else {
            continue;
        };
        for pt in std::iter::once(offered.pt()).chain(offered.resend()) {
            if !payload_types.contains(&*pt) {
                payload_types.push(*pt);
            }
        }
    }
    payload_types
}

/// The payload type a subscriber connection sends `params` as on m-line `mid`, if its client's
/// answer accepted that codec there. The connection's codec configuration is shared by all its
/// m-lines and lists codecs the client may have refused, so the match is narrowed to this
/// m-line's negotiated payload types.
fn negotiated_pt(rtc: &Rtc, mid: Mid, params: PayloadParams) -> Option<Pt> {
    let accepted = rtc.media(mid)?.remote_pts();
    let config = rtc.codec_config();
    if let Some(best) = config.match_params(params)
        && accepted.contains(&best.pt())
    {
        return Some(best.pt());
    }
    let narrowed: Vec<PayloadParams> = config
        .params()
        .iter()
        .filter(|p| accepted.contains(&p.pt()))
        .copied()
        .collect();
    CodecConfig::new_from_payload_params(narrowed)
        .match_params(params)
        .map(|p| p.pt())
}

#[cfg(test)]
mod tests {
    use str0m::media::{Direction, MediaKind};

    use super::*;

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
            peer.timeout = now;
        }
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

    /// An engine with a video publisher (peer 1) whose track is published, and subscriber
    /// connections 2 and 3 subscribed to it, each with its offer out; returns the track and the
    /// offers.
    fn engine_with_subscribers(now: Instant) -> (Engine, TrackId, Vec<(PeerId, SdpOffer)>) {
        let (mut engine, track) = engine_with_published_video(now, false);
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
        let (mut engine, _track, _offers) = engine_with_subscribers(now);
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
        let (mut engine, _track, offers) = engine_with_subscribers(now);
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
        let (mut engine, _track, _offers) = engine_with_subscribers(now);
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
        let (mut engine, track, _offers) = engine_with_subscribers(now);
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
        let (mut engine, track, _offers) = engine_with_subscribers(now);
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
