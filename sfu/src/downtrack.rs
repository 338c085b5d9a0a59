//! One subscriber's view of one published track: which packets to forward and how to rewrite
//! them.
//!
//! A subscriber must see one continuous stream: sequence numbers without jumps (or the receiver
//! asks for thousands of "lost" packets), timestamps that move forward, VP8 picture ids that keep
//! counting. The publisher's streams do not provide that: each simulcast layer is its own RTP
//! stream with its own numbering, and a publisher that reconnects starts new streams. So the
//! down-track forwards one source stream at a time (an epoch) and maps its numbering onto the
//! subscriber's with fixed offsets; on a switch it starts a new epoch whose first packet follows
//! the last one the subscriber saw.
//!
//! Switches happen only at a keyframe of the new source, so the subscriber's decoder never gets a
//! frame it cannot decode; until that keyframe arrives the old layer keeps flowing. All arithmetic
//! is modular on extended counters, so wraparound needs no special case, and nothing here
//! allocates.

use std::time::Instant;

use str0m::rtp::Vp8Descriptor;

use crate::codec::Codec;
use crate::layer::Layer;

/// Picture ids are 15-bit in the descriptors browsers send.
const PICTURE_ID_MASK: u16 = 0x7FFF;
/// RTP sequence numbers are 16-bit on the wire; a first epoch starts inside the first rollover.
const SEQ_MASK: u64 = 0xFFFF;
/// RTP timestamps are 32-bit on the wire.
const RTP_TIME_MASK: u64 = 0xFFFF_FFFF;

/// The RTP stream a packet came on: the publisher's SSRC for that track and layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceId(pub u32);

/// A published packet, parsed once before it fans out to every subscriber.
#[derive(Debug, Clone, Copy)]
pub struct Incoming {
    /// The stream it arrived on.
    pub source: SourceId,
    /// Its simulcast layer, or `None` for a track without simulcast (audio, screen share).
    pub layer: Option<Layer>,
    /// Extended sequence number (no rollover).
    pub seq: u64,
    /// Extended RTP timestamp in the codec's clock.
    pub rtp_time: u64,
    /// When it arrived.
    pub arrival: Instant,
    /// Whether a decoder can start here.
    pub keyframe_start: bool,
    /// The VP8 picture id, if the payload carries one.
    pub vp8_picture_id: Option<u16>,
}

impl Incoming {
    /// Parses what the forwarder needs from a packet's payload. Malformed payloads are not
    /// keyframes and carry no picture id; they are forwarded or dropped like any other packet.
    pub fn parse(
        codec: Codec,
        source: SourceId,
        layer: Option<Layer>,
        seq: u64,
        rtp_time: u64,
        arrival: Instant,
        payload: &[u8],
    ) -> Incoming {
        let vp8_picture_id = match codec {
            Codec::Vp8 => Vp8Descriptor::parse(payload)
                .ok()
                .and_then(|d| d.picture_id()),
            _ => None,
        };
        Incoming {
            source,
            layer,
            seq,
            rtp_time,
            arrival,
            keyframe_start: codec.starts_keyframe(payload),
            vp8_picture_id,
        }
    }
}

/// The subscriber-side numbering of a forwarded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Extended sequence number to send with.
    pub seq: u64,
    /// Extended RTP timestamp to send with.
    pub rtp_time: u64,
    /// VP8 picture id to patch into the payload descriptor, when it has one.
    pub vp8_picture_id: Option<u16>,
}

/// Why a packet is not forwarded to this subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The subscriber paused this track (hidden tile, or no subscription to video).
    Paused,
    /// A simulcast layer this subscriber is not receiving.
    OtherLayer,
    /// From the wanted stream, but not a point a decoder can start from.
    WaitingForKeyframe,
    /// Older than the point this stream was switched to.
    BeforeSwitch,
}

/// What to do with one packet for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send it, numbered like this.
    Forward(Rewritten),
    /// Do not send it.
    Drop(DropReason),
}

/// The source stream being forwarded and how its numbering maps onto the subscriber's.
#[derive(Debug, Clone, Copy)]
struct Epoch {
    source: SourceId,
    layer: Option<Layer>,
    first_seq: u64,
    seq_delta: u64,
    rtp_time_delta: u64,
    picture_id_delta: u16,
}

/// The newest packet the subscriber was sent.
#[derive(Debug, Clone, Copy)]
struct Sent {
    seq: u64,
    rtp_time: u64,
    arrival: Instant,
    picture_id: Option<u16>,
}

/// One subscriber's forwarding state for one published track.
#[derive(Debug, Clone)]
pub struct DownTrack {
    codec: Codec,
    target: Option<Layer>,
    paused: bool,
    epoch: Option<Epoch>,
    last_sent: Option<Sent>,
}

impl DownTrack {
    /// A down-track for a track of `codec`, initially wanting `target` (ignored without simulcast).
    pub fn new(codec: Codec, target: Option<Layer>) -> DownTrack {
        DownTrack {
            codec,
            target,
            paused: false,
            epoch: None,
            last_sent: None,
        }
    }

    /// Sets the layer this subscriber should get; takes effect at that layer's next keyframe.
    pub fn set_target(&mut self, layer: Option<Layer>) {
        self.target = layer;
    }

    /// The layer this subscriber should get.
    pub fn target(&self) -> Option<Layer> {
        self.target
    }

    /// The layer being forwarded right now, if any.
    pub fn current(&self) -> Option<Layer> {
        self.epoch.and_then(|e| e.layer)
    }

    /// Whether a stream is being forwarded (its layer, if simulcast, is [`DownTrack::current`]);
    /// not while paused or waiting for the first keyframe.
    pub fn forwarding(&self) -> bool {
        self.epoch.is_some()
    }

    /// Stops or resumes forwarding. Resuming waits for a keyframe; numbering stays continuous.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        if paused {
            self.epoch = None;
        }
    }

    /// Whether this subscriber is waiting for a keyframe the publisher should be asked for.
    pub fn needs_keyframe(&self) -> bool {
        if self.paused || !self.codec.is_video() {
            return false;
        }
        match self.epoch {
            None => true,
            Some(epoch) => epoch.layer.is_some() && epoch.layer != self.target,
        }
    }

    /// Decides what to do with `packet` for this subscriber.
    pub fn forward(&mut self, packet: &Incoming) -> Decision {
        if self.paused {
            return Decision::Drop(DropReason::Paused);
        }
        if let Some(epoch) = self.epoch
            && epoch.source == packet.source
        {
            if packet.seq < epoch.first_seq {
                return Decision::Drop(DropReason::BeforeSwitch);
            }
            return Decision::Forward(self.rewrite(&epoch, packet));
        }
        let wanted = match packet.layer {
            None => true,
            Some(layer) => Some(layer) == self.target,
        };
        if !wanted {
            return Decision::Drop(DropReason::OtherLayer);
        }
        if !packet.keyframe_start {
            return Decision::Drop(DropReason::WaitingForKeyframe);
        }
        let epoch = self.start_epoch(packet);
        self.epoch = Some(epoch);
        Decision::Forward(self.rewrite(&epoch, packet))
    }

    /// Maps `packet`'s numbering so it directly follows the last packet sent.
    fn start_epoch(&self, packet: &Incoming) -> Epoch {
        let (seq, rtp_time, picture_id) = match self.last_sent {
            None => (
                packet.seq & SEQ_MASK,
                packet.rtp_time & RTP_TIME_MASK,
                packet.vp8_picture_id,
            ),
            Some(last) => {
                let elapsed = packet.arrival.saturating_duration_since(last.arrival);
                let ticks = elapsed.as_micros() * u128::from(self.codec.clock_rate()) / 1_000_000;
                // A new frame needs a new timestamp even if it arrives at once.
                let ticks = u64::try_from(ticks).unwrap_or(u64::MAX).max(1);
                (
                    last.seq.wrapping_add(1),
                    last.rtp_time.wrapping_add(ticks),
                    last.picture_id.map(|p| p.wrapping_add(1) & PICTURE_ID_MASK),
                )
            }
        };
        let picture_id_delta = match (picture_id, packet.vp8_picture_id) {
            (Some(out), Some(incoming)) => out.wrapping_sub(incoming),
            _ => 0,
        };
        Epoch {
            source: packet.source,
            layer: packet.layer,
            first_seq: packet.seq,
            seq_delta: seq.wrapping_sub(packet.seq),
            rtp_time_delta: rtp_time.wrapping_sub(packet.rtp_time),
            picture_id_delta,
        }
    }

    fn rewrite(&mut self, epoch: &Epoch, packet: &Incoming) -> Rewritten {
        let rewritten = Rewritten {
            seq: packet.seq.wrapping_add(epoch.seq_delta),
            rtp_time: packet.rtp_time.wrapping_add(epoch.rtp_time_delta),
            vp8_picture_id: packet
                .vp8_picture_id
                .map(|p| p.wrapping_add(epoch.picture_id_delta) & PICTURE_ID_MASK),
        };
        let newest = self.last_sent.is_none_or(|last| rewritten.seq > last.seq);
        if newest {
            self.last_sent = Some(Sent {
                seq: rewritten.seq,
                rtp_time: rewritten.rtp_time,
                arrival: packet.arrival,
                picture_id: rewritten
                    .vp8_picture_id
                    .or(self.last_sent.and_then(|s| s.picture_id)),
            });
        }
        rewritten
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A publisher of one simulcast layer: 30 fps, 3 packets per frame, keyframe every `gop`.
    struct Stream {
        source: SourceId,
        layer: Option<Layer>,
        seq: u64,
        rtp_time: u64,
        picture_id: u16,
        frame: u64,
        gop: u64,
    }

    impl Stream {
        fn new(ssrc: u32, layer: Option<Layer>, first_seq: u64, gop: u64) -> Stream {
            Stream {
                source: SourceId(ssrc),
                layer,
                seq: first_seq,
                rtp_time: u64::from(ssrc) * 1000,
                picture_id: (ssrc as u16) & PICTURE_ID_MASK,
                frame: 0,
                gop,
            }
        }

        /// The packets of the next frame, arriving at `at`.
        fn frame(&mut self, at: Instant) -> Vec<Incoming> {
            let keyframe = self.frame.is_multiple_of(self.gop);
            let packets = (0..3)
                .map(|i| Incoming {
                    source: self.source,
                    layer: self.layer,
                    seq: self.seq + i,
                    rtp_time: self.rtp_time,
                    arrival: at,
                    keyframe_start: keyframe && i == 0,
                    vp8_picture_id: Some(self.picture_id),
                })
                .collect();
            self.seq += 3;
            self.rtp_time += 3000;
            self.picture_id = (self.picture_id + 1) & PICTURE_ID_MASK;
            self.frame += 1;
            packets
        }
    }

    fn clock() -> impl FnMut() -> Instant {
        let start = Instant::now();
        let mut frame = 0u64;
        move || {
            frame += 1;
            start + Duration::from_millis(frame * 33)
        }
    }

    fn sent(track: &mut DownTrack, packets: &[Incoming]) -> Vec<(Incoming, Rewritten)> {
        packets
            .iter()
            .filter_map(|p| match track.forward(p) {
                Decision::Forward(r) => Some((*p, r)),
                Decision::Drop(_) => None,
            })
            .collect()
    }

    fn assert_continuous(out: &[(Incoming, Rewritten)]) {
        for pair in out.windows(2) {
            let (a, b) = (pair[0].1, pair[1].1);
            assert_eq!(b.seq, a.seq + 1, "sequence numbers are contiguous");
            assert!(b.rtp_time >= a.rtp_time, "timestamps never go back");
            if let (Some(x), Some(y)) = (a.vp8_picture_id, b.vp8_picture_id)
                && b.rtp_time != a.rtp_time
            {
                assert_eq!(y, (x + 1) & PICTURE_ID_MASK, "picture ids count frames");
            }
        }
    }

    #[test]
    fn first_packet_forwarded_is_a_keyframe() {
        let mut now = clock();
        let mut low = Stream::new(1, Some(Layer::Low), 500, 10);
        let mut track = DownTrack::new(Codec::Vp8, Some(Layer::Low));
        // Join mid-GOP: the first frame is a delta frame.
        low.frame(now());
        assert!(track.needs_keyframe());
        let mut out = Vec::new();
        for _ in 0..12 {
            out.extend(sent(&mut track, &low.frame(now())));
        }
        assert!(out[0].0.keyframe_start);
        assert!(!track.needs_keyframe());
        assert_continuous(&out);
        assert!(
            out[0].1.seq <= SEQ_MASK,
            "the first epoch starts without a rollover"
        );
    }

    #[test]
    fn layer_switch_waits_for_keyframe_and_stays_continuous() {
        let mut now = clock();
        let mut low = Stream::new(1, Some(Layer::Low), 100, 10);
        let mut high = Stream::new(2, Some(Layer::High), 65_500, 10);
        let mut track = DownTrack::new(Codec::Vp8, Some(Layer::Low));
        let mut out = Vec::new();
        for i in 0..25 {
            let at = now();
            if i == 4 {
                track.set_target(Some(Layer::High));
            }
            out.extend(sent(&mut track, &low.frame(at)));
            out.extend(sent(&mut track, &high.frame(at)));
            if i >= 4 && track.current() == Some(Layer::Low) {
                assert!(track.needs_keyframe(), "asks for the new layer's keyframe");
            }
        }
        assert_eq!(track.current(), Some(Layer::High));
        let first_high = out
            .iter()
            .position(|(p, _)| p.layer == Some(Layer::High))
            .expect("switched");
        assert!(
            out[first_high].0.keyframe_start,
            "switch lands on a keyframe"
        );
        assert!(first_high > 0, "low kept flowing until then");
        assert!(
            out[first_high..]
                .iter()
                .all(|(p, _)| p.layer == Some(Layer::High)),
            "no low packets after the switch"
        );
        assert_continuous(&out);
        // High's sequence numbers crossed 65535 on the way; the subscriber never saw it.
        assert!(high.seq > 65_536);
    }

    #[test]
    fn pause_sends_nothing_and_resume_waits_for_keyframe() {
        let mut now = clock();
        let mut low = Stream::new(1, Some(Layer::Low), 100, 5);
        let mut track = DownTrack::new(Codec::Vp8, Some(Layer::Low));
        let mut out = sent(&mut track, &low.frame(now()));
        track.set_paused(true);
        let held_back = low.frame(now());
        assert_eq!(
            track.forward(&held_back[0]),
            Decision::Drop(DropReason::Paused)
        );
        for _ in 0..6 {
            let frame = low.frame(now());
            assert!(
                frame
                    .iter()
                    .all(|p| track.forward(p) == Decision::Drop(DropReason::Paused))
            );
        }
        assert!(!track.needs_keyframe(), "a paused tile wants nothing");
        track.set_paused(false);
        assert!(track.needs_keyframe());
        let resumed_at = out.len();
        for _ in 0..6 {
            out.extend(sent(&mut track, &low.frame(now())));
        }
        assert!(out[resumed_at].0.keyframe_start);
        assert_continuous(&out);
        // A packet from before the pause arriving now is not sent: the stream restarted after it.
        assert_eq!(
            track.forward(&held_back[1]),
            Decision::Drop(DropReason::BeforeSwitch)
        );
    }

    #[test]
    fn publisher_restart_continues_the_numbering() {
        let mut now = clock();
        let mut before = Stream::new(7, None, 40_000, 30);
        let mut after = Stream::new(8, None, 3, 30);
        let mut track = DownTrack::new(Codec::Vp8, None);
        let mut out = Vec::new();
        for _ in 0..5 {
            out.extend(sent(&mut track, &before.frame(now())));
        }
        for _ in 0..5 {
            out.extend(sent(&mut track, &after.frame(now())));
        }
        assert_eq!(out.len(), 30);
        assert_continuous(&out);
    }

    #[test]
    fn audio_switches_source_at_once() {
        let start = Instant::now();
        let packet = |ssrc: u32, seq: u64, ms: u64| Incoming {
            source: SourceId(ssrc),
            layer: None,
            seq,
            rtp_time: seq * 960,
            arrival: start + Duration::from_millis(ms),
            keyframe_start: Codec::Opus.starts_keyframe(&[]),
            vp8_picture_id: None,
        };
        let mut track = DownTrack::new(Codec::Opus, None);
        let a = track.forward(&packet(1, 10, 0));
        let b = track.forward(&packet(2, 9000, 20));
        let (Decision::Forward(a), Decision::Forward(b)) = (a, b) else {
            panic!("audio is always forwarded");
        };
        assert_eq!(b.seq, a.seq + 1);
        assert_eq!(b.rtp_time, a.rtp_time + 960, "20 ms at 48 kHz");
        assert!(!track.needs_keyframe());
    }

    #[test]
    fn reordering_is_preserved_and_stale_packets_dropped() {
        let mut now = clock();
        let mut low = Stream::new(1, Some(Layer::Low), 100, 3);
        let mut high = Stream::new(2, Some(Layer::High), 5000, 3);
        let mut track = DownTrack::new(Codec::Vp8, Some(Layer::High));
        let first = high.frame(now());
        let second = high.frame(now());
        let out_a = track.forward(&first[0]);
        let out_c = track.forward(&second[0]);
        let out_b = track.forward(&first[2]);
        let (Decision::Forward(a), Decision::Forward(b), Decision::Forward(c)) =
            (out_a, out_b, out_c)
        else {
            panic!("all forwarded");
        };
        assert_eq!(
            (b.seq - a.seq, c.seq - a.seq),
            (2, 3),
            "gaps and order are kept"
        );

        // Switch to low, then an old high packet arrives late.
        track.set_target(Some(Layer::Low));
        let mut low_out = Vec::new();
        for _ in 0..3 {
            low_out.extend(sent(&mut track, &low.frame(now())));
        }
        assert_eq!(track.current(), Some(Layer::Low));
        assert_eq!(
            track.forward(&first[1]),
            Decision::Drop(DropReason::OtherLayer)
        );
    }

    #[test]
    fn parse_reads_keyframes_and_picture_ids() {
        let at = Instant::now();
        // X=1, S=1, PID=0; I=1; 15-bit picture id 0x1234; VP8 header P=0.
        let payload = [0x90, 0x80, 0x92, 0x34, 0x00, 0x00];
        let packet = Incoming::parse(Codec::Vp8, SourceId(1), None, 1, 1, at, &payload);
        assert!(packet.keyframe_start);
        assert_eq!(packet.vp8_picture_id, Some(0x1234));
        let garbage = Incoming::parse(Codec::Vp8, SourceId(1), None, 1, 1, at, &[0xFF]);
        assert!(!garbage.keyframe_start);
        assert_eq!(garbage.vp8_picture_id, None);
    }
}
