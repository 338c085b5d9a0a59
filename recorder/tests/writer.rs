//! Real encoded media (GStreamer's VP8 and Opus from the test kit) through the track writer:
//! segments that are complete files, joined into one seekable file of the right length (across a
//! resolution change, a pause at a cut, a frame retransmitted across a keyframe and a sender
//! clock that jumps back), checked with `gst-discoverer-1.0`. Packets are pushed
//! as fast as they come; their arrival times are what a real-time sender would produce.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_recorder::finalize::remux;
use sightline_recorder::writer::{Container, TrackWriter};
use sightline_sfu::{Codec, TapPacket, TrackId};
use sightline_testkit::{Vp8Frame, discover, media};

fn packet(
    codec: Codec,
    n: u64,
    rtp_time: u64,
    keyframe: bool,
    payload: Vec<u8>,
    arrival: Instant,
) -> TapPacket {
    TapPacket {
        track: TrackId(1),
        codec,
        seq: 1000 + n,
        rtp_time,
        marker: true,
        keyframe,
        payload: Arc::from(payload),
        arrival,
        sender_time: None,
    }
}

fn record(codec: Codec, packets: Vec<TapPacket>, dir: &Path) -> Vec<std::path::PathBuf> {
    let mut writer = TrackWriter::start(dir, codec, Duration::from_secs(2)).expect("pipeline");
    let mut closed = Vec::new();
    for packet in &packets {
        writer.push(packet).expect("pushed");
        closed.extend(writer.closed_segments().expect("bus"));
    }
    closed.extend(writer.finish().expect("finished"));
    for pair in closed.windows(2) {
        assert_eq!(pair[1].index, pair[0].index + 1, "segments in order");
        assert!(pair[1].start >= pair[0].start);
    }
    closed.into_iter().map(|s| s.path).collect()
}

/// A VP8 frame as one packet, sent `at_us` after `start` (its RTP time in the 90 kHz clock).
fn vp8_packet(n: u64, frame: &Vp8Frame, start: Instant, at_us: u64) -> TapPacket {
    // VP8 payload descriptor (RFC 7741): start of a partition, then the frame.
    let mut payload = vec![0x10];
    payload.extend_from_slice(&frame.data);
    let arrival = start + Duration::from_micros(at_us);
    packet(
        Codec::Vp8,
        n,
        at_us * 90 / 1000,
        frame.keyframe,
        payload,
        arrival,
    )
}

/// The joined file of a VP8 take's segments: its length in seconds, and what the discoverer said.
fn joined_vp8(segments: &[std::path::PathBuf], dir: &Path) -> (f64, String) {
    let out = dir.join("take.webm");
    remux(segments, Container::for_codec(Codec::Vp8), &out).expect("joined");
    let found = discover(&out).expect("inspected");
    (found.duration.as_secs_f64(), found.report)
}

#[test]
fn six_seconds_of_vp8_become_segments_and_one_seekable_file() {
    let media = media().expect("test media");
    let frames = &media.video[1];
    let start = Instant::now();
    let packets: Vec<TapPacket> = (0..180u64)
        .map(|n| {
            let frame = &frames[n as usize % frames.len()];
            // VP8 payload descriptor (RFC 7741): start of a partition, then the frame.
            let mut payload = vec![0x10];
            payload.extend_from_slice(&frame.data);
            let arrival = start + Duration::from_micros(n * 33_333);
            packet(Codec::Vp8, n, n * 3000, frame.keyframe, payload, arrival)
        })
        .collect();
    let dir = tempfile::tempdir().expect("dir");
    let segments = record(Codec::Vp8, packets, dir.path());
    assert!(segments.len() >= 3, "about 2 s each: {segments:?}");
    for segment in &segments {
        let found = discover(segment).expect("inspected");
        assert!(
            found.duration > Duration::from_millis(500),
            "a complete file on its own: {}",
            found.report
        );
        assert!(found.report.contains("VP8"), "{}", found.report);
    }
    let out = dir.path().join("take.webm");
    remux(&segments, Container::for_codec(Codec::Vp8), &out).expect("joined");
    let found = discover(&out).expect("inspected");
    assert!(found.seekable, "cues written: {}", found.report);
    assert!(found.report.contains("WebM") && found.report.contains("VP8"));
    let seconds = found.duration.as_secs_f64();
    assert!(
        seconds > 5.5 && seconds < 6.5,
        "six seconds: {}",
        found.report
    );
}

#[test]
fn a_take_that_changes_resolution_keeps_its_length() {
    // A subscriber's layer switch as a recorder sees it: three seconds of the 320×240 layer, then
    // (from one of its keyframes) three seconds of the 640×480 one, numbered on as one stream.
    let media = media().expect("test media");
    let start = Instant::now();
    let mut packets = Vec::new();
    for n in 0..180u64 {
        let layer = if n < 90 { 1 } else { 2 };
        let frames = &media.video[layer];
        // The switch lands on a keyframe of the new layer (the first frame of the test media).
        let index = if n < 90 {
            n as usize
        } else {
            (n - 90) as usize
        } % frames.len();
        packets.push(vp8_packet(n, &frames[index], start, n * 33_333));
    }
    assert!(packets[90].keyframe, "the new layer starts at a keyframe");
    let dir = tempfile::tempdir().expect("dir");
    let segments = record(Codec::Vp8, packets, dir.path());
    let (seconds, report) = joined_vp8(&segments, dir.path());
    assert!(
        seconds > 5.5 && seconds < 6.5,
        "six seconds across the switch: {report}"
    );
}

#[test]
fn a_pause_at_a_segment_boundary_is_kept_in_the_joined_file() {
    // Two seconds of video, a two-second pause (a sender starved of CPU: capture and arrival both
    // stop), then two more seconds starting at a keyframe: with 2 s segments, the cut falls on
    // the pause. The joined file must keep the take's six seconds.
    let media = media().expect("test media");
    let frames = &media.video[1];
    let start = Instant::now();
    let mut packets = Vec::new();
    for n in 0..120u64 {
        let index = if n < 60 {
            n as usize
        } else {
            (n - 60) as usize
        } % frames.len();
        // Frames 60 and on come 2 s later in both clocks.
        let at = if n < 60 {
            n * 33_333
        } else {
            n * 33_333 + 2_000_000
        };
        packets.push(vp8_packet(n, &frames[index], start, at));
    }
    let dir = tempfile::tempdir().expect("dir");
    let segments = record(Codec::Vp8, packets, dir.path());
    assert!(segments.len() >= 2, "the pause is at a cut: {segments:?}");
    let (seconds, report) = joined_vp8(&segments, dir.path());
    assert!(
        seconds > 5.5 && seconds < 6.5,
        "six seconds with the pause: {report}"
    );
}

#[test]
fn six_seconds_of_opus_become_one_seekable_file() {
    let media = media().expect("test media");
    let start = Instant::now();
    let packets: Vec<TapPacket> = (0..300u64)
        .map(|n| {
            let payload = media.opus[n as usize % media.opus.len()].clone();
            let arrival = start + Duration::from_millis(n * 20);
            packet(Codec::Opus, n, n * 960, true, payload, arrival)
        })
        .collect();
    let dir = tempfile::tempdir().expect("dir");
    let segments = record(Codec::Opus, packets, dir.path());
    assert!(segments.len() >= 2, "{segments:?}");
    let out = dir.path().join("take.webm");
    remux(&segments, Container::for_codec(Codec::Opus), &out).expect("joined");
    let found = discover(&out).expect("inspected");
    assert!(
        found.seekable && found.report.contains("Opus"),
        "{}",
        found.report
    );
    let seconds = found.duration.as_secs_f64();
    assert!(
        seconds > 5.5 && seconds < 6.5,
        "six seconds: {}",
        found.report
    );
}

#[test]
fn a_frame_retransmitted_across_a_keyframe_keeps_the_take_going() {
    // Under loss the frame before a keyframe can arrive last (a retransmission): it is pushed
    // after the keyframe, with a later arrival time. The pipeline must take it in order and go on
    // (the arrival times it was handed go backwards across the keyframe).
    let media = media().expect("test media");
    let frames = &media.video[1];
    let start = Instant::now();
    let keyframes: Vec<usize> = (1..frames.len()).filter(|i| frames[*i].keyframe).collect();
    assert!(
        !keyframes.is_empty(),
        "the test media has keyframes after the first"
    );
    let mut packets: Vec<TapPacket> = (0..180u64)
        .map(|n| vp8_packet(n, &frames[n as usize % frames.len()], start, n * 33_333))
        .collect();
    let mut late = 0;
    for n in 1..packets.len() {
        if packets[n].keyframe && !packets[n - 1].keyframe {
            // Frame n - 1 arrives 20 ms after keyframe n, and is pushed after it.
            let mut retransmitted = packets[n - 1].clone();
            retransmitted.arrival = packets[n].arrival + Duration::from_millis(20);
            packets[n - 1] = packets[n].clone();
            packets[n] = retransmitted;
            late += 1;
        }
    }
    assert!(late >= 2, "several keyframes preceded by a late frame");
    let dir = tempfile::tempdir().expect("dir");
    let segments = record(Codec::Vp8, packets, dir.path());
    let (seconds, report) = joined_vp8(&segments, dir.path());
    assert!(
        seconds > 5.5 && seconds < 6.5,
        "six seconds despite the late frames: {report}"
    );
}

#[test]
fn a_take_whose_clock_jumps_back_keeps_recording() {
    // A sender whose RTP clock jumps back by five seconds at a keyframe (a restarted encoder):
    // splitmuxsink refuses time that goes back and used to end the take there ("Timestamping
    // error on input streams"). Now the frames after the jump follow on: the take goes on past
    // its first three seconds (the jitter buffer drops some frames while it resyncs to the new
    // clock).
    let media = media().expect("test media");
    let frames = &media.video[1];
    let start = Instant::now();
    let mut packets = Vec::new();
    for n in 0..180u64 {
        let index = if n < 90 {
            n as usize
        } else {
            (n - 90) as usize
        } % frames.len();
        let mut packet = vp8_packet(n, &frames[index], start, n * 33_333);
        if n >= 90 {
            packet.rtp_time = (n * 33_333 * 90 / 1000).saturating_sub(450_000) + 1_000_000;
        } else {
            packet.rtp_time += 1_000_000;
        }
        packets.push(packet);
    }
    let dir = tempfile::tempdir().expect("dir");
    let segments = record(Codec::Vp8, packets, dir.path());
    let (seconds, report) = joined_vp8(&segments, dir.path());
    assert!(
        seconds > 3.5 && seconds < 6.5,
        "recorded on past the jump: {report}"
    );
}
