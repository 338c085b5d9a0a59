//! What the engine tells its caller: events for signaling and the next thing to do.

use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::media::MediaKind;
use str0m::net::Transmit;

use crate::codec::Codec;
use crate::ids::{PeerId, TrackId};

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
    /// What a connection's RTCP reports said over the last two seconds: the worst fraction of
    /// packets lost on the way (for a publisher, of what it sent us; for a subscriber, of what
    /// we sent it) and the latest round trip, when known. Only connections with reports.
    LinkQuality {
        /// The connection.
        peer: PeerId,
        /// Worst loss reported, 0.0–1.0.
        loss: f32,
        /// Latest round-trip time.
        rtt: Option<std::time::Duration>,
    },
    /// A track's packets stopped arriving (for two seconds), or arrive again.
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
    /// ([`Engine::set_stopped_line_limit`](super::Engine::set_stopped_line_limit)). str0m cannot put a new track in such a slot, so
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
