//! The engine's error enum.

use crate::ids::{PeerId, TrackId};

use super::peer::Role;

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
    /// closed; [`Event::Closed`](super::Event::Closed) follows.
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
