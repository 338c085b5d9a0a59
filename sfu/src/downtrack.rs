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
//!
//! Within a VP8 stream the down-track can also leave out the higher temporal layers (every other
//! frame, then three in four): on a lossy path fewer, further-apart frames give each lost packet
//! time to be repaired before the next frame is due, so the picture moves at a lower rate instead
//! of stalling. Frames are left out whole; sequence numbers and picture ids close up over them
//! ([`Skips`]), and a higher layer comes back only at a frame that refers to the base layer alone
//! (its `Y` bit) or at a keyframe.

use std::time::Instant;

use str0m::rtp::Vp8Descriptor;

use crate::codec::{Codec, Temporal, vp8_temporal};
use crate::layer::Layer;
use crate::skips::{Seen, Skips};

/// Picture ids are 15-bit in the descriptors browsers send.
const PICTURE_ID_MASK: u16 = 0x7FFF;
/// RTP sequence numbers are 16-bit on the wire; a first epoch starts inside the first rollover.
const SEQ_MASK: u64 = 0xFFFF;
/// RTP timestamps are 32-bit on the wire.
const RTP_TIME_MASK: u64 = 0xFFFF_FFFF;
/// Where a stream's extended picture ids start, so stepping back from the first never wraps.
const PICTURE_ID_BASE: u64 = 1 << 32;
/// A temporal target meaning every layer.
const ALL_TEMPORAL: u8 = u8::MAX;

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
    /// The VP8 temporal layer, if the stream has them.
    pub temporal: Option<Temporal>,
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
        let (vp8_picture_id, temporal) = match codec {
            Codec::Vp8 => (
                Vp8Descriptor::parse(payload)
                    .ok()
                    .and_then(|d| d.picture_id()),
                vp8_temporal(payload),
            ),
            _ => (None, None),
        };
        Incoming {
            source,
            layer,
            seq,
            rtp_time,
            arrival,
            keyframe_start: codec.starts_keyframe(payload),
            vp8_picture_id,
            temporal,
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
    /// Send the number without the payload: a late packet of a frame that was left out fills
    /// the place the subscriber already counts (an empty packet is padding to a receiver).
    pub empty: bool,
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
    /// A frame of a temporal layer this subscriber is not sent.
    OtherTemporalLayer,
    /// Too late to find its place among frames left out.
    TooLate,
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
    /// Sequence numbers left out (temporal layers), closed up in the output.
    seqs: Skips,
    /// Extended picture ids of the frames left out; `None` for a stream without picture ids
    /// (it is never filtered).
    pictures: Option<Skips>,
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
    /// The highest temporal layer this subscriber should get ([`ALL_TEMPORAL`]: every one).
    temporal_target: u8,
    /// The highest temporal layer being forwarded now.
    temporal: u8,
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
            temporal_target: ALL_TEMPORAL,
            temporal: ALL_TEMPORAL,
        }
    }

    /// Sets the highest temporal layer this subscriber should get (`None`: every layer). Going
    /// down takes effect at the next frame; going up at the next frame that can start the layer.
    pub fn set_temporal_target(&mut self, max: Option<u8>) {
        self.temporal_target = max.unwrap_or(ALL_TEMPORAL);
    }

    /// The highest temporal layer this subscriber should get (`None`: every layer).
    pub fn temporal_target(&self) -> Option<u8> {
        (self.temporal_target != ALL_TEMPORAL).then_some(self.temporal_target)
    }

    /// The highest temporal layer being forwarded now (`None`: every layer).
    pub fn temporal(&self) -> Option<u8> {
        (self.temporal != ALL_TEMPORAL).then_some(self.temporal)
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
        if let Some(epoch) = self.epoch.as_ref()
            && epoch.source == packet.source
        {
            if packet.seq < epoch.first_seq {
                return Decision::Drop(DropReason::BeforeSwitch);
            }
            return self.place(packet);
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
        self.epoch = Some(self.start_epoch(packet));
        // A decoder starting at a keyframe can take every layer up to the target.
        self.temporal = self.temporal_target;
        self.place(packet)
    }

    /// Places a packet of the current epoch: left out with its frame, or numbered after the
    /// packets before it that were sent or are still missing.
    fn place(&mut self, packet: &Incoming) -> Decision {
        let Some(epoch) = self.epoch.as_mut() else {
            return Decision::Drop(DropReason::BeforeSwitch);
        };
        // Which frame: a new one (keep or leave out by its temporal layer), or one decided.
        let mut picture = None;
        let mut keep = true;
        if let (Some(pictures), Some(id)) = (epoch.pictures.as_mut(), packet.vp8_picture_id) {
            let extended = extend_picture_id(id, pictures.top());
            match pictures.seen(extended) {
                Seen::New => {
                    keep = keeps_frame(
                        &mut self.temporal,
                        self.temporal_target,
                        packet.temporal,
                        packet.keyframe_start,
                    );
                    pictures.advance(extended, !keep);
                }
                Seen::Skipped => keep = false,
                Seen::TooOld if pictures.any() => return Decision::Drop(DropReason::TooLate),
                Seen::Placed | Seen::TooOld => {}
            }
            // A frame decided before (or missing until now) goes with its layer as it is now:
            // a late part of a frame left out, or of a layer dropped since, only fills places.
            keep &= packet.temporal.is_none_or(|t| t.id <= self.temporal);
            let Some(skipped) = pictures.before(extended) else {
                return Decision::Drop(DropReason::TooLate);
            };
            picture = Some(((extended - skipped) as u16).wrapping_add(epoch.picture_id_delta));
        }
        let empty = match epoch.seqs.seen(packet.seq) {
            Seen::New => {
                epoch.seqs.advance(packet.seq, !keep);
                if !keep {
                    return Decision::Drop(DropReason::OtherTemporalLayer);
                }
                false
            }
            Seen::Skipped => return Decision::Drop(DropReason::OtherTemporalLayer),
            // A place the subscriber counts: a packet of a frame left out still fills it.
            Seen::Placed | Seen::TooOld => !keep,
        };
        let Some(skipped) = epoch.seqs.before(packet.seq) else {
            return Decision::Drop(DropReason::TooLate);
        };
        let rewritten = Rewritten {
            seq: (packet.seq - skipped).wrapping_add(epoch.seq_delta),
            rtp_time: packet.rtp_time.wrapping_add(epoch.rtp_time_delta),
            vp8_picture_id: picture.map(|p| p & PICTURE_ID_MASK),
            empty,
        };
        self.note_sent(rewritten, packet.arrival);
        Decision::Forward(rewritten)
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
        // The first picture's extended id is PICTURE_ID_BASE plus its 15 bits, so the picture
        // ids counted before it (a frame that arrives late) stay above zero.
        let pictures = packet
            .vp8_picture_id
            .map(|id| Skips::new(PICTURE_ID_BASE + u64::from(id) - 1));
        Epoch {
            source: packet.source,
            layer: packet.layer,
            first_seq: packet.seq,
            seq_delta: seq.wrapping_sub(packet.seq),
            rtp_time_delta: rtp_time.wrapping_sub(packet.rtp_time),
            picture_id_delta,
            seqs: Skips::new(packet.seq.saturating_sub(1)),
            pictures,
        }
    }

    fn note_sent(&mut self, rewritten: Rewritten, arrival: Instant) {
        let newest = self.last_sent.is_none_or(|last| rewritten.seq > last.seq);
        if newest {
            self.last_sent = Some(Sent {
                seq: rewritten.seq,
                rtp_time: rewritten.rtp_time,
                arrival,
                picture_id: rewritten
                    .vp8_picture_id
                    .or(self.last_sent.and_then(|s| s.picture_id)),
            });
        }
    }
}

/// Whether a new frame of temporal layer `temporal` is forwarded, moving the forwarded layer
/// (`current`) towards `target`: down at once, up at a keyframe or at a frame that can start
/// its layer (one that refers to the base layer alone).
fn keeps_frame(current: &mut u8, target: u8, temporal: Option<Temporal>, keyframe: bool) -> bool {
    let Some(temporal) = temporal else {
        return true;
    };
    if keyframe || target < *current {
        *current = target;
    } else if temporal.sync && temporal.id > *current && temporal.id <= target {
        *current = temporal.id;
    }
    temporal.id <= *current
}

/// The extended picture id of the 15-bit `id`, the one nearest `near` (an extended id).
fn extend_picture_id(id: u16, near: u64) -> u64 {
    let ahead = id.wrapping_sub(near as u16) & PICTURE_ID_MASK;
    if ahead < 0x4000 {
        near + u64::from(ahead)
    } else {
        near - u64::from(0x8000 - ahead)
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
        /// Whether frames carry temporal layers (the browsers' 0, 2, 1, 2 pattern).
        layered: bool,
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
                layered: false,
            }
        }

        fn layered(mut self) -> Stream {
            self.layered = true;
            self
        }

        /// The temporal layer of frame `n`: 0, 2, 1, 2, ...; the first layer-2 and the layer-1
        /// frame after a base frame refer to it alone.
        fn temporal(&self, n: u64) -> Option<Temporal> {
            self.layered.then(|| match n % 4 {
                0 => Temporal { id: 0, sync: false },
                1 => Temporal { id: 2, sync: true },
                2 => Temporal { id: 1, sync: true },
                _ => Temporal { id: 2, sync: false },
            })
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
                    temporal: self.temporal(self.frame),
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
            temporal: None,
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

    fn temporal_ids(out: &[(Incoming, Rewritten)]) -> Vec<u8> {
        let mut ids: Vec<u8> = out
            .iter()
            .filter_map(|(p, _)| p.temporal.map(|t| t.id))
            .collect();
        ids.dedup();
        ids
    }

    #[test]
    fn the_base_temporal_layer_alone_is_sent_without_holes() {
        let mut now = clock();
        let mut low = Stream::new(1, Some(Layer::Low), 65_000, 40).layered();
        let mut track = DownTrack::new(Codec::Vp8, Some(Layer::Low));
        track.set_temporal_target(Some(0));
        let mut out = Vec::new();
        for _ in 0..40 {
            out.extend(sent(&mut track, &low.frame(now())));
        }
        assert_eq!(out.len(), 10 * 3, "every fourth frame, whole");
        assert!(
            out.iter()
                .all(|(p, r)| p.temporal.map(|t| t.id) == Some(0) && !r.empty)
        );
        assert_continuous(&out);
        assert_eq!(track.temporal(), Some(0));
    }

    #[test]
    fn higher_temporal_layers_come_back_at_frames_that_refer_to_the_base_alone() {
        let mut now = clock();
        let mut low = Stream::new(1, Some(Layer::Low), 100, 1000).layered();
        let mut track = DownTrack::new(Codec::Vp8, Some(Layer::Low));
        let mut out = Vec::new();
        for _ in 0..8 {
            out.extend(sent(&mut track, &low.frame(now())));
        }
        // Down at once, at the next frame.
        track.set_temporal_target(Some(0));
        for _ in 0..8 {
            out.extend(sent(&mut track, &low.frame(now())));
        }
        for _ in 0..3 {
            out.extend(sent(&mut track, &low.frame(now())));
        }
        track.set_temporal_target(Some(1));
        let up_to_one = out.len();
        for _ in 0..4 {
            out.extend(sent(&mut track, &low.frame(now())));
        }
        // Frames 19-22: 19 (layer 2) is beyond the target, 21 too; 22 is layer 1's next sync.
        assert_eq!(temporal_ids(&out[up_to_one..]), vec![0, 1]);
        assert_eq!(track.temporal(), Some(1));
        track.set_temporal_target(None);
        let up_to_all = out.len();
        for _ in 0..3 {
            out.extend(sent(&mut track, &low.frame(now())));
        }
        // Frames 23-25: 23 (layer 2) refers to layer 1's frame 22 but is no sync frame; 25 is.
        assert_eq!(temporal_ids(&out[up_to_all..]), vec![0, 2]);
        assert_eq!(track.temporal(), Some(2));
        assert_continuous(&out);
    }

    #[test]
    fn late_packets_fill_their_places_and_parts_of_frames_left_out_go_empty() {
        let mut now = clock();
        let mut low = Stream::new(1, Some(Layer::Low), 500, 1000).layered();
        let mut track = DownTrack::new(Codec::Vp8, Some(Layer::Low));
        track.set_temporal_target(Some(0));
        let base = low.frame(now()); // frame 0: layer 0, kept
        let left_out = low.frame(now()); // frame 1: layer 2, left out
        let mut out = sent(&mut track, &base[..2]);
        // The last packet of the base frame and the middle of the one left out are late.
        out.extend(sent(&mut track, &left_out[..1]));
        out.extend(sent(&mut track, &left_out[2..]));
        for _ in 0..6 {
            out.extend(sent(&mut track, &low.frame(now())));
        }
        let Decision::Forward(late_base) = track.forward(&base[2]) else {
            panic!("a late packet of a frame sent goes out");
        };
        assert_eq!(late_base.seq, out[1].1.seq + 1, "in the place it left");
        assert!(!late_base.empty);
        let Decision::Forward(filler) = track.forward(&left_out[1]) else {
            panic!("its place is counted");
        };
        assert!(filler.empty, "a frame left out is not sent in part");
        assert_eq!(filler.seq, late_base.seq + 1);
        assert_eq!(out[2].1.seq, filler.seq + 1, "the next base frame follows");
        // Parts of the frame left out that arrive again are still left out.
        assert_eq!(
            track.forward(&left_out[0]),
            Decision::Drop(DropReason::OtherTemporalLayer)
        );
    }

    #[test]
    fn parse_reads_temporal_layers() {
        let at = Instant::now();
        // X=1 S=1; I and T; 7-bit picture id 5; TID=1, Y=1.
        let payload = [0x90, 0xA0, 0x05, 0b0110_0000, 0x00];
        let packet = Incoming::parse(Codec::Vp8, SourceId(1), None, 1, 1, at, &payload);
        assert_eq!(packet.temporal, Some(Temporal { id: 1, sync: true }));
        assert_eq!(packet.vp8_picture_id, Some(5));
        let opus = Incoming::parse(Codec::Opus, SourceId(1), None, 1, 1, at, &payload);
        assert_eq!(opus.temporal, None);
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
