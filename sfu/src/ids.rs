//! Typed ids the media plane hands out and takes back: a peer connection named by its caller, a
//! published track named by the engine.

/// A peer connection, named by the caller (signaling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

/// A published track, named by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u64);
