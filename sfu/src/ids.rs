//! Typed ids the media plane hands out and takes back: a peer connection named by its caller, a
//! published track named by the engine within its [`TrackSpace`].

use std::fmt;

/// A peer connection, named by the caller (signaling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

/// A published track, named by the engine: its [`TrackSpace`] in the high 32 bits, its number
/// within that space in the low 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u64);

/// Where tracks are numbered: one engine of one server process. Each media worker of a node
/// numbers in a space of its own, and a node draws its spaces anew each time it starts, so a
/// track id names one track across the workers and the nodes of a cluster and across restarts:
/// a room that moves to another node, or a node that restarts, never reuses the id of a track
/// a recording or a proctoring event of the same interview already names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TrackSpace(pub u32);

impl TrackSpace {
    /// The space of media worker `worker` of a process that drew `process` at start-up (its
    /// low 24 bits count; a process draws a non-zero value).
    pub fn of(process: u32, worker: u8) -> TrackSpace {
        TrackSpace(((process & 0x00FF_FFFF) << 8) | u32::from(worker))
    }
}

impl TrackId {
    /// Track `n` of `space`.
    pub fn new(space: TrackSpace, n: u32) -> TrackId {
        TrackId((u64::from(space.0) << 32) | u64::from(n))
    }

    /// The space the track was numbered in.
    pub fn space(self) -> TrackSpace {
        TrackSpace((self.0 >> 32) as u32)
    }

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

    #[test]
    fn tracks_of_two_workers_or_two_processes_never_share_an_id() {
        let (a, b) = (
            TrackSpace::of(0x00AB_CDEF, 0),
            TrackSpace::of(0x00AB_CDEF, 1),
        );
        let other_process = TrackSpace::of(0x0012_3456, 0);
        assert_ne!(TrackId::new(a, 1), TrackId::new(b, 1));
        assert_ne!(TrackId::new(a, 1), TrackId::new(other_process, 1));
        let track = TrackId::new(b, 7);
        assert_eq!(track.space(), b);
        assert_eq!(TrackId::from_key(&track.to_string()), Some(track));
        assert_eq!(TrackId::new(TrackSpace::default(), 7), TrackId(7));
    }
}
