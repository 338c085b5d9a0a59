//! The decoding pipeline on real VP8 (the test kit's encoded scenes, packetized as a tap hands
//! them over): frames come out at the sampling rate, and the face detector still finds the one
//! face after a 150 kbit/s round trip at 160×120.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_proctor::decode::Decoder;
use sightline_proctor::{FaceDetector, FaceRules};
use sightline_sfu::{Codec, TapPacket, TrackId};
use sightline_testkit::{Scene, VIDEO_FPS, scene_media};

fn models() -> std::path::PathBuf {
    std::env::var_os("SIGHTLINE_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../models").into())
}

/// Sends `seconds` of layer `layer` of `scene` through a decoder in real time; returns the
/// frames it handed out.
fn decode(scene: Scene, layer: usize, seconds: u64, fps: u32) -> Vec<sightline_proctor::RgbImage> {
    let media = scene_media(scene).expect("scene media");
    let frames = &media.video[layer];
    let decoder = Decoder::start(Codec::Vp8, fps, 320).expect("decoder");
    let input = decoder.input();
    let started = Instant::now();
    let mut out = Vec::new();
    let count = seconds * u64::from(VIDEO_FPS);
    for n in 0..count {
        let due = started + Duration::from_micros(n * 1_000_000 / u64::from(VIDEO_FPS));
        while Instant::now() < due {
            if let Ok(Some(frame)) = decoder.next_frame(Duration::from_millis(2)) {
                out.push(frame);
            }
        }
        let frame = &frames[(n % frames.len() as u64) as usize];
        // One packet per frame: the VP8 payload descriptor (start of partition 0), the frame.
        let mut payload = vec![0x10];
        payload.extend_from_slice(&frame.data);
        input
            .push(&TapPacket {
                track: TrackId(1),
                codec: Codec::Vp8,
                seq: n,
                rtp_time: n * 90_000 / u64::from(VIDEO_FPS),
                marker: true,
                keyframe: frame.keyframe,
                payload: Arc::from(payload),
                arrival: Instant::now(),
                sender_time: None,
            })
            .expect("pushed");
    }
    while let Ok(Some(frame)) = decoder.next_frame(Duration::from_millis(400)) {
        out.push(frame);
    }
    out
}

#[test]
fn frames_come_out_at_the_sampling_rate_scaled_to_the_width_asked_for() {
    let frames = decode(Scene::OneFace, 1, 4, 2);
    // 4 s at 2 per second, give or take one at each end.
    assert!((6..=10).contains(&frames.len()), "{} frames", frames.len());
    let first = &frames[0];
    assert_eq!((first.width, first.height), (320, 240));
}

#[test]
fn one_face_survives_a_low_bitrate_round_trip() {
    let detector = FaceDetector::load(&models().join(sightline_proctor::watch::FRONT_MODEL))
        .expect("the front model (scripts/test installs it)");
    // The smallest layer: 160×120 at 150 kbit/s, scaled up to 320 for the checks.
    let frames = decode(Scene::OneFace, 0, 2, 4);
    assert!(!frames.is_empty());
    for frame in &frames {
        let faces = detector.detect(frame, 0.5).expect("runs");
        assert_eq!(FaceRules::default().count(&faces), 1);
    }
}
