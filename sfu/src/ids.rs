//! Typed ids the media plane hands out and takes back: a peer connection named by its caller, a
//! published track named by the engine.

use std::fmt;

/// A peer connection, named by the caller (signaling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

/// A published track, named by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u64);

impl TrackId {
    /// Reads the name [`TrackId`]'s `Display` writes (`t{n}`), as clients send it back.
    pub fn from_key(key: &str) -> Option<TrackId> {
        let digits = key.strip_prefix('t')?;
        // Only the canonical form: `t+1` or `t01` would parse as numbers but name nothing.
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(TrackId)
    }
}

/// How a track is named outside the engine: in the SDP's `msid` and in the signaling protocol.
impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_track_reads_back_its_own_name_and_nothing_else() {
        for n in [0, 7, u64::MAX] {
            let track = TrackId(n);
            assert_eq!(TrackId::from_key(&track.to_string()), Some(track));
        }
        for bad in [
            "",
            "t",
            "7",
            "t-1",
            "t+1",
            "tx",
            "T7",
            "t7 ",
            "t18446744073709551616",
        ] {
            assert_eq!(TrackId::from_key(bad), None, "{bad:?}");
        }
    }
}
