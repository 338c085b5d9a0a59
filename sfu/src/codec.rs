//! What the forwarder needs to know about a codec: its clock, where its keyframes start, and
//! (VP8) which temporal layer a packet belongs to.

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

/// A VP8 packet's temporal layer (RFC 7741 §4.2: the `TID` and `Y` fields of the payload
/// descriptor). Browsers encode each simulcast layer in temporal layers: layer 0 carries every
/// fourth frame and refers only to layer 0, so a subscriber can be sent layer 0 alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Temporal {
    /// The layer, 0 the base.
    pub id: u8,
    /// Whether this frame refers only to the base layer, so forwarding of its layer can start
    /// here.
    pub sync: bool,
}

/// The temporal layer a VP8 packet belongs to, when its descriptor says (the `T` bit); `None`
/// for a stream without temporal layers or a malformed descriptor.
pub fn vp8_temporal(payload: &[u8]) -> Option<Temporal> {
    let first = *payload.first()?;
    if first & 0x80 == 0 {
        return None; // no extension byte: no temporal layer
    }
    let extension = *payload.get(1)?;
    let (has_picture_id, has_tl0, has_tid) = (
        extension & 0x80 != 0,
        extension & 0x40 != 0,
        extension & 0x20 != 0,
    );
    if !has_tid {
        return None;
    }
    let mut at = 2;
    if has_picture_id {
        // One byte, or two when its top bit (M) is set.
        at += if *payload.get(at)? & 0x80 != 0 { 2 } else { 1 };
    }
    if has_tl0 {
        at += 1;
    }
    let field = *payload.get(at)?;
    Some(Temporal {
        id: field >> 6,
        sync: field & 0x20 != 0,
    })
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
    fn vp8_temporal_layer_is_read_past_the_optional_fields() {
        // X=1 S=1; I L T set; 15-bit picture id; TL0PICIDX; TID=2, Y=1.
        let full = [0x90, 0xE0, 0x81, 0x23, 0x07, 0b1010_0000, 0x00];
        assert_eq!(vp8_temporal(&full), Some(Temporal { id: 2, sync: true }));
        // 7-bit picture id, no TL0PICIDX; TID=1, Y=0 (K set too).
        let short = [0x80, 0xB0, 0x05, 0b0100_0011];
        assert_eq!(vp8_temporal(&short), Some(Temporal { id: 1, sync: false }));
        // T clear (K alone): no temporal layer.
        assert_eq!(vp8_temporal(&[0x80, 0x90, 0x05, 0x40]), None);
        // No extension, truncated, empty.
        assert_eq!(vp8_temporal(&[0x10, 0x00]), None);
        assert_eq!(vp8_temporal(&[0x90, 0xE0, 0x81]), None);
        assert_eq!(vp8_temporal(&[]), None);
    }

    #[test]
    fn audio_always_starts_and_clocks_differ() {
        assert!(Codec::Opus.starts_keyframe(&[]));
        assert_eq!(Codec::Opus.clock_rate(), 48_000);
        assert_eq!(Codec::Vp8.clock_rate(), 90_000);
        assert!(!Codec::Opus.is_video() && Codec::H264.is_video());
    }
}
