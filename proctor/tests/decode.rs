//! The decoding pipeline on real VP8 (the test kit's encoded scenes, packetized as a tap hands
//! them over): frames come out at the sampling rate, the face detector still finds the one
//! face after a 150 kbit/s round trip at 160×120, and a lost packet makes the decoder ask for a
//! keyframe, after which the picture comes back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_proctor::decode::{Decoder, DecoderInput};
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

/// Packet `seq` of a tapped track: one VP8 frame, sent now.
fn packet(seq: u64, frame: &sightline_testkit::Vp8Frame) -> TapPacket {
    // One packet per frame: the VP8 payload descriptor (start of partition 0), the frame.
    let mut payload = vec![0x10];
    payload.extend_from_slice(&frame.data);
    TapPacket {
        track: TrackId(1),
        codec: Codec::Vp8,
        seq,
        rtp_time: seq * 90_000 / u64::from(VIDEO_FPS),
        marker: true,
        keyframe: frame.keyframe,
        payload: Arc::from(payload),
        arrival: Instant::now(),
        sender_time: None,
    }
}

/// Sends `frames` to `decoder` in real time from packet `seq` on; returns how many decoded
/// frames came out meanwhile.
fn send_in_real_time(
    decoder: &Decoder,
    input: &DecoderInput,
    seq: &mut u64,
    frames: &mut dyn Iterator<Item = &sightline_testkit::Vp8Frame>,
) -> usize {
    let frame_time = Duration::from_secs(1) / VIDEO_FPS;
    let mut out = 0;
    for frame in frames {
        let due = Instant::now() + frame_time;
        input.push(&packet(*seq, frame)).expect("pushed");
        *seq += 1;
        while Instant::now() < due {
            if let Ok(Some(_)) = decoder.next_frame(Duration::from_millis(2)) {
                out += 1;
            }
        }
    }
    out
}

#[test]
fn a_lost_packet_asks_for_a_keyframe_and_the_picture_comes_back_after_it() {
    let media = scene_media(Scene::OneFace).expect("scene media");
    let frames = &media.video[1];
    let decoder = Decoder::start(Codec::Vp8, 10, 320).expect("decoder");
    let input = decoder.input();
    let mut seq = 0u64;
    let send = |seq: &mut u64, sent: &mut dyn Iterator<Item = &sightline_testkit::Vp8Frame>| {
        send_in_real_time(&decoder, &input, seq, sent)
    };
    // The start is a discontinuity, which asks for a keyframe as a new decoder does; then a
    // second without loss: pictures, and no keyframe asked for.
    send(&mut seq, &mut frames.iter().take(30));
    let _ = input.wants_keyframe();
    assert!(send(&mut seq, &mut frames.iter().skip(30).take(30)) > 0);
    assert!(!input.wants_keyframe(), "nothing was lost");

    // Two packets lost, then frames that are not keyframes (a decoder cannot start at them):
    // the decoder asks for a keyframe (bounded wait).
    seq += 2;
    let deltas: Vec<_> = frames.iter().filter(|f| !f.keyframe).collect();
    let mut asked = false;
    for _ in 0..10 {
        send(&mut seq, &mut deltas.iter().copied().take(10));
        if input.wants_keyframe() {
            asked = true;
            break;
        }
    }
    assert!(asked, "a keyframe was asked for after the loss");

    // The keyframe comes: pictures again.
    let mut after = frames.iter().skip_while(|f| !f.keyframe).take(20);
    let shown = send(&mut seq, &mut after);
    let shown = shown
        + std::iter::from_fn(|| {
            decoder
                .next_frame(Duration::from_millis(400))
                .ok()
                .flatten()
        })
        .take(5)
        .count();
    assert!(shown > 0, "the picture came back after the keyframe");
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
