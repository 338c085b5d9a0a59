//! Real encoded media (GStreamer's VP8 and Opus from the test kit) through the track writer:
//! segments that are complete files, joined into one seekable file of the right length, checked
//! with `gst-discoverer-1.0`. Packets are pushed as fast as they come; their arrival times are
//! what a real-time sender would produce.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_recorder::finalize::remux;
use sightline_recorder::writer::{Container, TrackWriter};
use sightline_sfu::{Codec, TapPacket, TrackId};
use sightline_testkit::media;

/// What `gst-discoverer-1.0` says of a file: its duration and whether it is seekable.
fn discover(path: &Path) -> (Duration, bool, String) {
    let output = Command::new("gst-discoverer-1.0")
        .arg(path)
        .output()
        .expect("gst-discoverer-1.0 runs (package gstreamer1.0-plugins-base-apps)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let duration = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Duration: "))
        .and_then(|d| {
            let mut parts = d.split(':');
            let h: f64 = parts.next()?.parse().ok()?;
            let m: f64 = parts.next()?.parse().ok()?;
            let s: f64 = parts.next()?.parse().ok()?;
            Some(Duration::from_secs_f64(h * 3600.0 + m * 60.0 + s))
        })
        .unwrap_or_default();
    let seekable = text.contains("Seekable: yes");
    (duration, seekable, text)
}

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
        let (duration, _, text) = discover(segment);
        assert!(
            duration > Duration::from_millis(500),
            "a complete file on its own: {text}"
        );
        assert!(text.contains("VP8"), "{text}");
    }
    let out = dir.path().join("take.webm");
    remux(&segments, Container::for_codec(Codec::Vp8), &out).expect("joined");
    let (duration, seekable, text) = discover(&out);
    assert!(seekable, "cues written: {text}");
    assert!(text.contains("WebM") && text.contains("VP8"), "{text}");
    assert!(
        duration.as_secs_f64() > 5.5 && duration.as_secs_f64() < 6.5,
        "six seconds: {text}"
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
    let (duration, seekable, text) = discover(&out);
    assert!(seekable && text.contains("Opus"), "{text}");
    assert!(
        duration.as_secs_f64() > 5.5 && duration.as_secs_f64() < 6.5,
        "six seconds: {text}"
    );
}
