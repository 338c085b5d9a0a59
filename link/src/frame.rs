//! What travels in a take's stream, without I/O: its header, then one frame per tap packet.
//!
//! A packet frame is fixed fields, big-endian, then the RTP payload unchanged:
//!
//! ```text
//! flags u8 (1 marker, 2 keyframe, 4 sender time follows) | seq u64 | rtp_time u64
//! | arrival i64 (µs from the node's link epoch) | [sender time u64 (µs since the Unix epoch)]
//! | payload
//! ```

use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use sightline_sfu::{Codec, TapPacket, TrackId};

use crate::error::LinkError;

const MARKER: u8 = 1;
const KEYFRAME: u8 = 2;
const SENDER_TIME: u8 = 4;
/// Bytes before the payload without a sender time.
const FIXED: usize = 1 + 8 + 8 + 8;

/// What a take is: the first frame of its stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeHeader {
    /// The take's id in its recording (letters, digits, `-`, `_`).
    pub id: String,
    /// The publisher's identity.
    pub participant: String,
    /// `camera`, `microphone`, `screen_share` or `secondary_camera`.
    pub source: String,
    /// The RTP payload format of its packets.
    #[serde(with = "codec_name")]
    pub codec: Codec,
}

mod codec_name {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use sightline_sfu::Codec;

    pub fn serialize<S: Serializer>(codec: &Codec, to: S) -> Result<S::Ok, S::Error> {
        to.serialize_str(match codec {
            Codec::Opus => "opus",
            Codec::Vp8 => "vp8",
            Codec::Vp9 => "vp9",
            Codec::H264 => "h264",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Codec, D::Error> {
        match String::deserialize(from)?.as_str() {
            "opus" => Ok(Codec::Opus),
            "vp8" => Ok(Codec::Vp8),
            "vp9" => Ok(Codec::Vp9),
            "h264" => Ok(Codec::H264),
            other => Err(D::Error::custom(format!("unknown codec {other:?}"))),
        }
    }
}

/// Where arrival times are measured from: the node's link epoch, as an instant of the clock
/// reading them (each end has its own).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch(pub Instant);

impl Epoch {
    /// Microseconds from the epoch to `at`, negative before it.
    fn offset(self, at: Instant) -> i64 {
        match at.checked_duration_since(self.0) {
            Some(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
            None => -i64::try_from(self.0.duration_since(at).as_micros()).unwrap_or(i64::MAX),
        }
    }

    /// The instant `offset` microseconds from the epoch (the epoch itself where the clock
    /// cannot say).
    fn at(self, offset: i64) -> Instant {
        let span = Duration::from_micros(offset.unsigned_abs());
        let moved = if offset >= 0 {
            self.0.checked_add(span)
        } else {
            self.0.checked_sub(span)
        };
        moved.unwrap_or(self.0)
    }
}

/// One packet as its frame, arrival measured from `epoch`.
pub(crate) fn encode(packet: &TapPacket, epoch: Epoch) -> Bytes {
    let sender = packet
        .sender_time
        .and_then(|time| time.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|since| u64::try_from(since.as_micros()).unwrap_or(u64::MAX));
    let mut frame = BytesMut::with_capacity(FIXED + 8 + packet.payload.len());
    let mut flags = 0;
    if packet.marker {
        flags |= MARKER;
    }
    if packet.keyframe {
        flags |= KEYFRAME;
    }
    if sender.is_some() {
        flags |= SENDER_TIME;
    }
    frame.put_u8(flags);
    frame.put_u64(packet.seq);
    frame.put_u64(packet.rtp_time);
    frame.put_i64(epoch.offset(packet.arrival));
    if let Some(sender) = sender {
        frame.put_u64(sender);
    }
    frame.put_slice(&packet.payload);
    frame.freeze()
}

/// The packet a frame carries, for track `track` in `codec`, its arrival placed on this end's
/// clock through `epoch`.
pub(crate) fn decode(
    mut frame: Bytes,
    track: TrackId,
    codec: Codec,
    epoch: Epoch,
) -> Result<TapPacket, LinkError> {
    if frame.len() < FIXED {
        return Err(LinkError::protocol(
            "a packet frame shorter than its fields",
        ));
    }
    let flags = frame.get_u8();
    let seq = frame.get_u64();
    let rtp_time = frame.get_u64();
    let arrival = epoch.at(frame.get_i64());
    let sender_time = if flags & SENDER_TIME != 0 {
        if frame.len() < 8 {
            return Err(LinkError::protocol("a packet frame cut in its sender time"));
        }
        let micros = frame.get_u64();
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_micros(micros))
    } else {
        None
    };
    Ok(TapPacket {
        track,
        codec,
        seq,
        rtp_time,
        marker: flags & MARKER != 0,
        keyframe: flags & KEYFRAME != 0,
        payload: frame.as_ref().into(),
        arrival,
        sender_time,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn packet(arrival: Instant, sender_time: Option<SystemTime>) -> TapPacket {
        TapPacket {
            track: TrackId(7),
            codec: Codec::Vp8,
            seq: 70_000,
            rtp_time: 5_000_000_000,
            marker: true,
            keyframe: false,
            payload: Arc::from(&b"\x90\x80\x00payload"[..]),
            arrival,
            sender_time,
        }
    }

    #[test]
    fn a_packet_comes_out_as_it_went_in() {
        let now = Instant::now();
        let sent = SystemTime::UNIX_EPOCH + Duration::from_micros(1_765_000_000_123_456);
        let original = packet(now + Duration::from_millis(1500), Some(sent));
        let node = Epoch(now);
        let frame = encode(&original, node);
        // The worker's clock is another clock: its epoch is wherever the node's lands on it.
        let worker = Epoch(now + Duration::from_secs(30));
        let back = decode(frame, TrackId(7), Codec::Vp8, worker).expect("a whole frame decodes");
        assert_eq!(back.seq, original.seq);
        assert_eq!(back.rtp_time, original.rtp_time);
        assert_eq!(back.marker, original.marker);
        assert_eq!(back.keyframe, original.keyframe);
        assert_eq!(&*back.payload, &*original.payload);
        assert_eq!(back.sender_time, Some(sent));
        assert_eq!(
            back.arrival,
            now + Duration::from_secs(30) + Duration::from_millis(1500)
        );
    }

    #[test]
    fn a_packet_older_than_the_epoch_keeps_its_place() {
        let now = Instant::now() + Duration::from_secs(10);
        let original = packet(now - Duration::from_millis(250), None);
        let back = decode(
            encode(&original, Epoch(now)),
            TrackId(7),
            Codec::Vp8,
            Epoch(now),
        )
        .expect("decodes");
        assert_eq!(back.arrival, now - Duration::from_millis(250));
        assert_eq!(back.sender_time, None);
    }

    #[test]
    fn cut_frames_are_refused_not_read_past_their_end() {
        let now = Instant::now();
        let frame = encode(&packet(now, Some(SystemTime::now())), Epoch(now));
        for cut in [0, 1, FIXED - 1, FIXED + 3] {
            let result = decode(frame.slice(..cut), TrackId(7), Codec::Vp8, Epoch(now));
            assert!(result.is_err(), "a frame of {cut} bytes was taken");
        }
    }

    #[test]
    fn headers_name_their_codec() {
        let header = TakeHeader {
            id: "t3".into(),
            participant: "alice".into(),
            source: "camera".into(),
            codec: Codec::H264,
        };
        let json = serde_json::to_string(&header).expect("serializes");
        assert!(json.contains("\"h264\""), "{json}");
        let back: TakeHeader = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, header);
        assert!(serde_json::from_str::<TakeHeader>(&json.replace("h264", "av1")).is_err());
    }
}
