//! What the forwarder needs to know about a codec: its clock and where its keyframes start.

use str0m::format::{detect_h264_keyframe, detect_vp8_keyframe, detect_vp9_keyframe};

/// A codec the SFU forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Audio; every packet can start a stream.
    Opus,
    /// Video, the codec every browser publishes.
    Vp8,
    /// Video, forwarded when both sides negotiate it.
    Vp9,
    /// Video, forwarded when both sides negotiate it.
    H264,
}

impl Codec {
    /// RTP clock rate (RFC 7587 for Opus, 90 kHz for video).
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            Codec::Vp8 | Codec::Vp9 | Codec::H264 => 90_000,
        }
    }

    /// Whether this codec has keyframes a decoder must start from.
    pub fn is_video(self) -> bool {
        !matches!(self, Codec::Opus)
    }

    /// Whether `payload` is the first packet of a keyframe (a point a decoder can start from).
    /// Audio packets always are. Malformed payloads are not.
    pub fn starts_keyframe(self, payload: &[u8]) -> bool {
        match self {
            Codec::Opus => true,
            Codec::Vp8 => detect_vp8_keyframe(payload),
            Codec::Vp9 => detect_vp9_keyframe(payload),
            Codec::H264 => detect_h264_keyframe(payload),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_start_is_recognised() {
        // Descriptor: S=1, PID=0, no extension; VP8 header byte with P=0 (keyframe).
        assert!(Codec::Vp8.starts_keyframe(&[0x10, 0x00, 0x00, 0x00]));
        // Same, P=1: an interframe.
        assert!(!Codec::Vp8.starts_keyframe(&[0x10, 0x01, 0x00, 0x00]));
        // Not the start of a partition.
        assert!(!Codec::Vp8.starts_keyframe(&[0x00, 0x00, 0x00, 0x00]));
        assert!(!Codec::Vp8.starts_keyframe(&[]));
    }

    #[test]
    fn audio_always_starts_and_clocks_differ() {
        assert!(Codec::Opus.starts_keyframe(&[]));
        assert_eq!(Codec::Opus.clock_rate(), 48_000);
        assert_eq!(Codec::Vp8.clock_rate(), 90_000);
        assert!(!Codec::Opus.is_video() && Codec::H264.is_video());
    }
}
