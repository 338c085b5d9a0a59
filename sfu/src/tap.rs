//! Media taps: one published track's RTP handed to a consumer outside WebRTC (the recorder, the
//! proctoring frame sampler), with the timing needed to line tracks up afterwards.
//!
//! A tap sees the track the way a subscriber does: one continuous stream (a [`DownTrack`] picks
//! the simulcast layer, switches only at keyframes and keeps numbering contiguous), starting at a
//! keyframe. Each packet carries its arrival time and, once the publisher has sent an RTCP sender
//! report for its stream, the sender's wall-clock time for it (RTP ↔ NTP).
//!
//! A tap never slows forwarding: packets go into a bounded queue with `try_send`, and a packet
//! the consumer has no room for is dropped and counted. A consumer that goes away (drops its
//! [`TapReceiver`]) is detached on the next packet; a track that ends closes its taps' queues.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use crate::codec::Codec;
use crate::downtrack::DownTrack;
use crate::ids::TrackId;
use crate::layer::Quality;

/// Where a publisher's clock stood for one of its RTP streams, from its last sender report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderClock {
    /// The sender's wall-clock time (NTP) of `rtp_time`.
    pub ntp: SystemTime,
    /// The RTP timestamp sampled at `ntp`, in the codec's clock.
    pub rtp_time: u32,
}

impl SenderClock {
    /// The sender's wall-clock time of an RTP timestamp of the same stream. Timestamps compare
    /// modulo 2³², so a stream that wrapped since the report still maps correctly.
    pub fn time_of(&self, rtp_time: u32, clock_rate: u32) -> Option<SystemTime> {
        if clock_rate == 0 {
            return None;
        }
        let ticks = i64::from(rtp_time.wrapping_sub(self.rtp_time) as i32);
        let offset = Duration::from_nanos(
            (ticks.unsigned_abs().saturating_mul(1_000_000_000)) / u64::from(clock_rate),
        );
        if ticks >= 0 {
            self.ntp.checked_add(offset)
        } else {
            self.ntp.checked_sub(offset)
        }
    }
}

/// One RTP packet of a tapped track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapPacket {
    /// The track.
    pub track: TrackId,
    /// Its codec (the RTP payload format of `payload`).
    pub codec: Codec,
    /// Sequence number, contiguous for the tap across layer switches and publisher restarts.
    pub seq: u64,
    /// RTP timestamp in the codec's clock, continuous for the tap in the same way.
    pub rtp_time: u64,
    /// The RTP marker bit (last packet of a video frame).
    pub marker: bool,
    /// Whether a decoder can start here.
    pub keyframe: bool,
    /// The RTP payload, exactly as the publisher sent it (shared with the forwarding path, not
    /// copied).
    pub payload: Arc<[u8]>,
    /// When the server received it.
    pub arrival: Instant,
    /// The publisher's wall-clock time of this packet, from its stream's last sender report;
    /// `None` until a report arrived.
    pub sender_time: Option<SystemTime>,
}

impl TapPacket {
    /// The packet as RTP (RFC 3550): a 12-byte header with `payload_type` and `ssrc` (the tap's
    /// consumer names its own), the low 16 and 32 bits of the tap's sequence number and
    /// timestamp, and the payload unchanged.
    pub fn to_rtp(&self, payload_type: u8, ssrc: u32) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(12 + self.payload.len());
        bytes.push(0x80);
        bytes.push((payload_type & 0x7f) | if self.marker { 0x80 } else { 0 });
        bytes.extend_from_slice(&(self.seq as u16).to_be_bytes());
        bytes.extend_from_slice(&(self.rtp_time as u32).to_be_bytes());
        bytes.extend_from_slice(&ssrc.to_be_bytes());
        bytes.extend_from_slice(&self.payload);
        bytes
    }
}

/// What [`TapReceiver::poll`] found.
#[derive(Debug)]
pub enum TapPoll {
    /// A packet.
    Packet(TapPacket),
    /// Nothing waiting.
    Empty,
    /// The track ended: no more packets.
    Ended,
}

/// The consumer's end of a tap.
#[derive(Debug)]
pub struct TapReceiver {
    packets: mpsc::Receiver<TapPacket>,
    dropped: Arc<AtomicU64>,
    keyframe_wanted: Arc<AtomicBool>,
    codec: Codec,
}

impl TapReceiver {
    /// The next packet; `None` once the track has ended.
    pub async fn recv(&mut self) -> Option<TapPacket> {
        self.packets.recv().await
    }

    /// The next packet if one is waiting (for consumers that poll, and for tests).
    pub fn try_recv(&mut self) -> Option<TapPacket> {
        self.packets.try_recv().ok()
    }

    /// The next packet if one is waiting, telling "nothing yet" from "the track ended" (for
    /// consumers on their own threads that must also notice being stopped).
    pub fn poll(&mut self) -> TapPoll {
        match self.packets.try_recv() {
            Ok(packet) => TapPoll::Packet(packet),
            Err(mpsc::error::TryRecvError::Empty) => TapPoll::Empty,
            Err(mpsc::error::TryRecvError::Disconnected) => TapPoll::Ended,
        }
    }

    /// The next packet, blocking the thread (for consumers on their own threads, as GStreamer
    /// feeders are). Must not be called from an async task.
    pub fn blocking_recv(&mut self) -> Option<TapPacket> {
        self.packets.blocking_recv()
    }

    /// Packets dropped because this consumer was too slow to take them.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The track's codec (the RTP payload format of its packets).
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Asks the publisher for a keyframe (a recorder starting a new file). The engine sends the
    /// request with the next packet of the track, within the track's keyframe throttle.
    pub fn request_keyframe(&self) {
        self.keyframe_wanted.store(true, Ordering::Relaxed);
    }
}

impl TapReceiver {
    /// A tap fed from outside the engine (packets that came over a link from the node that
    /// tapped them), for consumers written against taps: up to `capacity` packets wait.
    pub fn relayed(codec: Codec, capacity: usize) -> (TapRelay, TapReceiver) {
        let (sender, packets) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let keyframe_wanted = Arc::new(AtomicBool::new(false));
        let relay = TapRelay {
            sender,
            dropped: Arc::clone(&dropped),
            keyframe_wanted: Arc::clone(&keyframe_wanted),
        };
        let receiver = TapReceiver {
            packets,
            dropped,
            keyframe_wanted,
            codec,
        };
        (relay, receiver)
    }
}

/// The feeding end of a relayed tap ([`TapReceiver::relayed`]): it never waits, as the
/// engine's end does not. Dropping it ends the tap.
#[derive(Debug)]
pub struct TapRelay {
    sender: mpsc::Sender<TapPacket>,
    dropped: Arc<AtomicU64>,
    keyframe_wanted: Arc<AtomicBool>,
}

impl TapRelay {
    /// Hands the consumer a packet; one it has no room for is dropped and counted. False
    /// once the consumer is gone.
    pub fn offer(&self, packet: TapPacket) -> bool {
        match self.sender.try_send(packet) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Whether the consumer asked for a keyframe since the last call.
    pub fn take_keyframe_request(&self) -> bool {
        self.keyframe_wanted.load(Ordering::Relaxed)
            && self.keyframe_wanted.swap(false, Ordering::Relaxed)
    }

    /// Resolves once the consumer dropped its receiver.
    pub async fn consumer_gone(&self) {
        self.sender.closed().await;
    }
}

/// The engine's end of a tap: a [`TapRelay`] the engine feeds from the track's [`DownTrack`].
#[derive(Debug)]
pub(crate) struct Tap {
    pub(crate) down: DownTrack,
    /// The best quality the consumer wants; it gets the best live layer within it, or the
    /// lowest above when none within it arrives.
    pub(crate) quality: Quality,
    feed: TapRelay,
}

/// What offering a packet to a tap came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offered {
    /// Queued, or dropped because the queue was full (counted).
    Kept,
    /// The consumer is gone: detach the tap.
    Gone,
}

impl Tap {
    /// A tap holding up to `capacity` packets for its consumer.
    pub(crate) fn new(
        down: DownTrack,
        quality: Quality,
        codec: Codec,
        capacity: usize,
    ) -> (Tap, TapReceiver) {
        let (feed, receiver) = TapReceiver::relayed(codec, capacity);
        (
            Tap {
                down,
                quality,
                feed,
            },
            receiver,
        )
    }

    /// Whether the consumer asked for a keyframe since the last call. Called per packet: a
    /// plain load answers the usual "no" without a read-modify-write.
    pub(crate) fn take_keyframe_request(&self) -> bool {
        self.feed.take_keyframe_request()
    }

    /// Whether the consumer dropped its receiver.
    pub(crate) fn is_detached(&self) -> bool {
        self.feed.sender.is_closed()
    }

    /// Hands a packet the tap's [`DownTrack`] decided to forward to the consumer, never waiting
    /// (a packet is made only while someone takes it).
    pub(crate) fn offer(&self, make: impl FnOnce() -> TapPacket) -> Offered {
        if self.is_detached() || !self.feed.offer(make()) {
            return Offered::Gone;
        }
        Offered::Kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u64) -> TapPacket {
        TapPacket {
            track: TrackId(1),
            codec: Codec::Vp8,
            seq,
            rtp_time: seq * 3000,
            marker: true,
            keyframe: seq == 0,
            payload: Arc::from(vec![1u8, 2, 3]),
            arrival: Instant::now(),
            sender_time: None,
        }
    }

    #[test]
    fn a_relayed_tap_drops_what_its_consumer_has_no_room_for_and_carries_keyframe_requests() {
        let (relay, mut tap) = TapReceiver::relayed(Codec::Vp8, 2);
        assert!(relay.offer(packet(0)));
        assert!(relay.offer(packet(1)));
        assert!(relay.offer(packet(2)), "full: dropped, not refused");
        assert_eq!(tap.dropped(), 1);
        assert_eq!(tap.try_recv().map(|p| p.seq), Some(0));
        assert!(!relay.take_keyframe_request());
        tap.request_keyframe();
        assert!(relay.take_keyframe_request());
        assert!(!relay.take_keyframe_request(), "asked once, answered once");
        assert_eq!(tap.try_recv().map(|p| p.seq), Some(1));
        drop(relay);
        assert!(matches!(tap.poll(), TapPoll::Ended));
        let (relay, tap) = TapReceiver::relayed(Codec::Vp8, 2);
        drop(tap);
        assert!(!relay.offer(packet(0)), "the consumer is gone");
    }

    #[test]
    fn sender_time_follows_the_report_both_ways_and_across_a_wrap() {
        let ntp = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let clock = SenderClock {
            ntp,
            rtp_time: 90_000,
        };
        assert_eq!(
            clock.time_of(180_000, 90_000),
            Some(ntp + Duration::from_secs(1))
        );
        assert_eq!(
            clock.time_of(45_000, 90_000),
            Some(ntp - Duration::from_millis(500))
        );
        let near_wrap = SenderClock {
            ntp,
            rtp_time: u32::MAX - 4_799,
        };
        // 4,800 ticks before the wrap plus 43,200 after: one second of 48 kHz audio.
        assert_eq!(
            near_wrap.time_of(43_200, 48_000),
            Some(ntp + Duration::from_secs(1))
        );
        assert_eq!(clock.time_of(1, 0), None);
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_a_gone_consumer_detaches() {
        let (tap, mut receiver) = Tap::new(
            DownTrack::new(Codec::Opus, None),
            Quality::High,
            Codec::Opus,
            1,
        );
        let packet = || TapPacket {
            track: TrackId(1),
            codec: Codec::Opus,
            seq: 1,
            rtp_time: 960,
            marker: false,
            keyframe: true,
            payload: Arc::from(vec![1u8, 2, 3]),
            arrival: Instant::now(),
            sender_time: None,
        };
        assert_eq!(tap.offer(packet), Offered::Kept);
        assert_eq!(tap.offer(packet), Offered::Kept);
        assert_eq!(
            receiver.dropped(),
            1,
            "the second packet found the queue full"
        );
        assert_eq!(
            receiver.try_recv().map(|p| p.payload.to_vec()),
            Some(vec![1, 2, 3])
        );
        drop(receiver);
        assert_eq!(tap.offer(packet), Offered::Gone);
    }
}
