//! The VP8 RTP payload descriptor (RFC 7741 §4.2), as test clients that see RTP packets need it.

/// The length of a VP8 RTP payload's descriptor (where the frame's bytes begin) and whether the
/// payload starts a frame (S bit set, partition 0); `None` when the payload is too short.
pub fn vp8_descriptor(payload: &[u8]) -> Option<(usize, bool)> {
    let first = *payload.first()?;
    let mut len = 1;
    if first & 0x80 != 0 {
        let extension = *payload.get(1)?;
        len = 2;
        if extension & 0x80 != 0 {
            // Picture id: 15 bits when the M bit is set, else 7.
            len += if *payload.get(len)? & 0x80 != 0 { 2 } else { 1 };
        }
        if extension & 0x40 != 0 {
            len += 1;
        }
        if extension & 0x30 != 0 {
            len += 1;
        }
    }
    let starts = first & 0x10 != 0 && first & 0x0F == 0;
    (len <= payload.len()).then_some((len, starts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_measured_and_frame_starts_found() {
        // X bit, I bit with a 15-bit picture id: 4 bytes; S bit, partition 0.
        assert_eq!(
            vp8_descriptor(&[0x90, 0x80, 0x81, 0x23, 0x9d]),
            Some((4, true))
        );
        // A 7-bit picture id, TL0PICIDX and TID/KEYIDX: 5 bytes; not a start (S clear).
        assert_eq!(
            vp8_descriptor(&[0x80, 0xE0, 0x05, 0x01, 0x40, 0x00]),
            Some((5, false))
        );
        // The smallest descriptor; a start of partition 1 is not a frame's start.
        assert_eq!(vp8_descriptor(&[0x10, 0x00]), Some((1, true)));
        assert_eq!(vp8_descriptor(&[0x11, 0x00]), Some((1, false)));
        // Truncated.
        assert_eq!(vp8_descriptor(&[0x90, 0x80, 0x81]), None);
        assert_eq!(vp8_descriptor(&[]), None);
    }
}
