//! Sightline's selective forwarding unit: the media plane.
//!
//! Status: the sans-IO core exists and is tested with real `str0m` peers in virtual time: the
//! [`Engine`] (one worker's peer connections, datagram demux, fan-out, keyframe requests) and the
//! forwarding decisions under it, and the thin shell around it: [`WorkerHandle`] runs an engine on
//! its own thread with its own UDP socket (tested over real loopback UDP), and media taps that
//! hand a track to consumers outside WebRTC ([`TapReceiver`]). Rooms, grants and the signaling
//! that drives all this live in `sightline-signaling`.
//!
//! Client SDP enters through [`sdp::parse_offer`] and [`sdp::parse_answer`], whose errors are fit
//! to show a client.
//!
//! The [`Engine`] follows str0m's contract: inputs in, then drain [`Engine::poll_output`] until it
//! returns a timeout (see the `engine` module docs for the loop).
//!
//! The forwarding core decides, per packet and per subscriber, whether and how to forward, with no I/O, no
//! clock reads (time is an argument), no locks and no allocation:
//!
//! - [`Incoming`]: one published RTP packet, parsed once (keyframe start, VP8 picture id) before
//!   it fans out to every subscriber.
//! - [`DownTrack`]: one subscriber's view of one published track. It rewrites sequence numbers,
//!   RTP timestamps and VP8 picture ids so the subscriber sees one continuous stream across
//!   simulcast layer switches, publisher restarts and pauses, and it switches layers only at a
//!   keyframe of the new layer (forwarding the old layer until then).
//! - [`LayerSelector`] and [`BitrateMeter`]: which simulcast layer a subscriber should get, from
//!   the quality it asks for and the bandwidth it has.
//! - [`KeyframeThrottle`]: one outstanding keyframe request per layer towards a publisher,
//!   however many subscribers are waiting for one; the next goes once its keyframe arrived.
//!
//! Invariant: this crate depends on no other Sightline crate and knows nothing of HTTP, JWT, SQL
//! or what a room means to the business. Panic policy: input from a peer never panics; every
//! packet field is treated as untrusted.

mod allocation;
mod codec;
mod downtrack;
mod engine;
mod ids;
mod keyframe;
mod layer;
mod loss;
pub mod sdp;
mod socket;
mod speech;
mod stats;
mod tap;
mod tcp;
mod worker;

pub use allocation::{Allocation, Want, allocate};
pub use codec::Codec;
pub use downtrack::{Decision, DownTrack, DropReason, Incoming, Rewritten, SourceId};
pub use engine::{CloseReason, DEFAULT_STOPPED_LINE_LIMIT, Engine, Event, Output, Role, SfuError};
pub use ids::{PeerId, TrackId, TrackSpace};
pub use keyframe::KeyframeThrottle;
pub use layer::{BitrateMeter, Layer, LayerSelector, Quality};
pub use speech::SpeechDetector;
pub use stats::{LATENCY_BOUNDS_US, LatencyHistogram, LatencySnapshot, WorkerStats};
pub use str0m::media::MediaKind;
pub use tap::{SenderClock, TapPacket, TapPoll, TapReceiver, TapRelay};
pub use worker::{EVENT_QUEUE, TcpConfig, WorkerConfig, WorkerEvent, WorkerHandle};
