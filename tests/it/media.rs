//! Real media through the real server: a publisher sends Opus and three-layer simulcast VP8
//! (encoded by GStreamer, packetized by str0m as a browser's stack would), and a subscriber in
//! frame mode (reassembling frames as a browser does) asks for lower, then higher quality; while
//! it watches the lowest layer, the publisher stops sending that one. It must get exactly the
//! frames that were sent, starting at a keyframe, switching layers only at keyframes (to the
//! next layer up when its own stops), with contiguous sequence numbers throughout. Every wait is
//! bounded.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;
use sightline_sfu::{Quality, TapPacket};
use sightline_signaling::{RoomId, TapError};
use sightline_testkit::{Layer, MediaPublisher, UdpPeer, media, vp8_descriptor};
use str0m::Event as RtcEvent;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::MediaData;

use crate::helpers::{Backend, TestApp, interview_body, text};
use crate::rtc::{Socket, drain, interview, join, next_of, send};

/// How long each quality is held once video flows.
const PHASE: Duration = Duration::from_millis(2500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_media_switches_layers_only_at_keyframes() -> Result<()> {
    let media = media()?;
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let room = interview(&app).await?;
    let (mut ivy, _) = join(&app, &room.id, &room.interviewer).await?;
    let (mut cas, _) = join(&app, &room.id, &room.candidate).await?;

    let (mut publisher, offer) = MediaPublisher::new(true).await?;
    send(
        &mut cas,
        json!({ "type": "publish_offer", "sdp": offer.to_sdp_string(), "tracks": [
            { "mid": publisher.audio.to_string(), "source": "microphone" },
            { "mid": publisher.video.to_string(), "source": "camera" } ] }),
    )
    .await?;
    let answer = next_of(&mut cas, "publish_answer").await?;
    publisher.accept_answer(SdpAnswer::from_sdp_string(&text(&answer["sdp"])?)?)?;

    let mut subscriber = UdpPeer::frames().await?;
    let (mut pub_events, mut sub_events) = (Vec::new(), Vec::new());
    let mut camera = None;
    // How many video frames had been received when each phase began: high, low, low with the
    // publisher's lowest layer stopped, high again.
    let mut phases: Vec<usize> = Vec::new();
    let mut phase_began: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        for message in drain(&mut ivy).await? {
            match message["type"].as_str() {
                Some("track_published") if message["track"]["source"] == "camera" => {
                    camera = Some(text(&message["track"]["id"])?);
                }
                Some("subscriber_offer") => {
                    let offer = SdpOffer::from_sdp_string(&text(&message["sdp"])?)?;
                    let answer = subscriber.rtc.sdp_api().accept_offer(offer)?;
                    send(
                        &mut ivy,
                        json!({ "type": "subscriber_answer", "sdp": answer.to_sdp_string() }),
                    )
                    .await?;
                }
                _ => {}
            }
        }
        if UdpPeer::connected(&pub_events) {
            publisher.send_due(media, Instant::now())?;
        }
        publisher.peer.step(&mut pub_events).await?;
        subscriber.pump(&mut sub_events)?;

        let video = frames(&sub_events, Codec::Vp8);
        let began = match phase_began {
            Some(began) => began,
            None if !video.is_empty() => {
                phases.push(video.len());
                *phase_began.insert(Instant::now())
            }
            None => continue,
        };
        // A phase lasts at least PHASE, and until the subscriber gets the layer it leads to:
        // however long a busy machine takes to switch, the test waits for it, not for a time.
        let leads_to = [2, 0, 1, 2][phases.len().min(4) - 1];
        let arrived = video
            .get(phases[phases.len() - 1]..)
            .unwrap_or_default()
            .iter()
            .any(|f| {
                media
                    .find_frame(&f.data)
                    .is_some_and(|(layer, _)| layer == leads_to)
            });
        if began.elapsed() < PHASE || !arrived {
            continue;
        }
        let track = camera.clone().context("the camera track was announced")?;
        match phases.len() {
            1 => send_quality(&mut ivy, &track, "low").await?,
            // A browser may stop a layer (an encoding set inactive): a subscriber on it must
            // not be left on a layer that no longer arrives.
            2 => publisher.pause_layer(Layer::ALL[0], true),
            3 => send_quality(&mut ivy, &track, "high").await?,
            _ => break,
        }
        phases.push(video.len());
        phase_began = Some(Instant::now());
    }
    if phases.len() < 4 {
        // A phase ends only once the subscriber gets the layer it leads to.
        bail!(
            "video never flowed through every phase: phases began at frames {phases:?}, {} \
             frames received in all",
            frames(&sub_events, Codec::Vp8).len()
        );
    }

    // Every video frame is one that was sent, byte for byte; which layer it came from says
    // what the SFU chose.
    let video = frames(&sub_events, Codec::Vp8);
    let mut layers = Vec::with_capacity(video.len());
    for frame in &video {
        let (layer, index) = media
            .find_frame(&frame.data)
            .context("a received frame is not one that was sent")?;
        layers.push((layer, index, media.video[layer][index].keyframe));
    }
    assert!(layers[0].2, "the subscriber starts at a keyframe");
    for pair in layers.windows(2) {
        let ((from, before, _), (to, after, keyframe)) = (pair[0], pair[1]);
        if from == to {
            let len = media.video[to].len();
            assert_eq!(after, (before + 1) % len, "no frame lost within layer {to}");
        } else {
            assert!(
                keyframe,
                "switched from layer {from} to {to} at a non-keyframe"
            );
        }
    }
    for pair in video.windows(2) {
        assert_eq!(
            **pair[1].seq_range.start(),
            **pair[0].seq_range.end() + 1,
            "sequence numbers continue across frames and layer switches"
        );
    }
    // Full quality first, then the lowest layer after asking for low, then the next layer up
    // once the lowest stopped, then full again.
    let layer_after = |phase: usize| layers.get(phases[phase]..).unwrap_or_default();
    assert!(layers[..phases[1]].iter().all(|l| l.0 == 2));
    assert!(layer_after(1).iter().any(|l| l.0 == 0), "switched down");
    assert!(
        layer_after(1)
            .iter()
            .take_while(|l| l.0 != 0)
            .all(|l| l.0 == 2),
        "the old layer flows until the new one's keyframe"
    );
    let stopped = &layers[phases[2]..phases[3]];
    assert!(
        stopped.iter().skip_while(|l| l.0 == 0).all(|l| l.0 == 1),
        "after the lowest layer stopped, the next layer up and nothing else: {stopped:?}"
    );
    assert!(layer_after(3).iter().any(|l| l.0 == 2), "switched back up");

    // Audio: the Opus packets that were sent, in order, none missing.
    let audio = frames(&sub_events, Codec::Opus);
    assert!(audio.len() > 100, "{} audio frames", audio.len());
    let first = media
        .opus
        .iter()
        .position(|p| *p == *audio[0].data)
        .context("received audio was sent")?;
    for (n, frame) in audio.iter().enumerate() {
        assert_eq!(
            *frame.data,
            *media.opus[(first + n) % media.opus.len()],
            "audio frame {n} byte for byte"
        );
    }
    Ok(())
}

/// Asks, as a subscriber's tile would, for `quality` of `track`.
async fn send_quality(socket: &mut Socket, track: &str, quality: &str) -> Result<()> {
    send(
        socket,
        json!({ "type": "set_quality", "track": track, "quality": quality }),
    )
    .await
}

fn frames(events: &[RtcEvent], codec: Codec) -> Vec<&MediaData> {
    events
        .iter()
        .filter_map(|e| match e {
            RtcEvent::MediaData(data) if data.params.spec().codec == codec => Some(data),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_taps_get_a_rooms_track_as_recordable_frames_and_only_from_that_room() -> Result<()> {
    let media = media()?;
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let room = interview(&app).await?;
    let other = app
        .schedule(&room.interviewer, interview_body("other@example.com"))
        .await?;
    let other_room = RoomId(text(&other["interview"]["id"])?);
    let (_other_socket, _) = join(&app, &other_room.0, &room.interviewer).await?;
    let (mut cas, _) = join(&app, &room.id, &room.candidate).await?;
    let (mut publisher, offer) = MediaPublisher::new(true).await?;
    send(
        &mut cas,
        json!({ "type": "publish_offer", "sdp": offer.to_sdp_string(), "tracks": [
            { "mid": publisher.audio.to_string(), "source": "microphone" },
            { "mid": publisher.video.to_string(), "source": "camera" } ] }),
    )
    .await?;
    let answer = next_of(&mut cas, "publish_answer").await?;
    publisher.accept_answer(SdpAnswer::from_sdp_string(&text(&answer["sdp"])?)?)?;

    let mut events = Vec::new();
    let mut tap = None;
    let mut tapped_at = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && tapped_at.is_none_or(|t: Instant| t.elapsed() < PHASE) {
        for message in drain(&mut cas).await? {
            if message["type"] == "track_published" && message["track"]["source"] == "camera" {
                let track = text(&message["track"]["id"])?;
                // Track ids are per media worker, and the test server has one, so both rooms
                // share it: the other room must still not reach this track.
                let refused = app.hub.tap(&other_room, &track, Quality::High, 16).await;
                assert_eq!(refused.err(), Some(TapError::UnknownTrack));
                let room_id = RoomId(room.id.clone());
                tap = Some(app.hub.tap(&room_id, &track, Quality::High, 4096).await?);
                tapped_at = Some(Instant::now());
            }
        }
        if UdpPeer::connected(&events) {
            publisher.send_due(media, Instant::now())?;
        }
        publisher.peer.step(&mut events).await?;
    }
    let mut tap = tap.context("the camera track was published and tapped")?;
    let packets: Vec<TapPacket> = std::iter::from_fn(|| tap.try_recv()).collect();
    assert!(packets.len() > 100, "{} packets tapped", packets.len());
    assert!(packets[0].keyframe, "a tap starts at a keyframe");
    for pair in packets.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "contiguous sequence numbers");
    }
    assert!(
        packets.iter().filter(|p| p.sender_time.is_some()).count() > packets.len() / 2,
        "sender reports give the publisher's clock"
    );
    assert_eq!(tap.dropped(), 0);

    // Depacketized, the tapped packets are exactly the full-size frames that were sent, in
    // order: what a recorder writes to a file.
    let frames = reassemble_vp8(&packets)?;
    assert!(frames.len() > 30, "{} frames", frames.len());
    // A tap attached before the media flows starts on the best layer arriving at that moment and
    // moves up at keyframes as the larger layers arrive (the signaling socket has no Nagle delay,
    // so the tap can be there before the first packet); it never moves down while they flow.
    let mut previous: Option<(usize, usize)> = None;
    for frame in &frames {
        let (layer, index) = media
            .find_frame(frame)
            .context("a tapped frame is not one that was sent")?;
        if let Some((before_layer, before_index)) = previous {
            assert!(layer >= before_layer, "the tap moved down a layer");
            if layer == before_layer {
                assert_eq!(
                    index,
                    (before_index + 1) % media.video[layer].len(),
                    "no frame lost"
                );
            }
        }
        previous = Some((layer, index));
    }
    let full = frames
        .iter()
        .filter(|f| media.find_frame(f).is_some_and(|(layer, _)| layer == 2))
        .count();
    assert!(
        previous.is_some_and(|(layer, _)| layer == 2) && full * 2 > frames.len(),
        "the tap asked for full quality: {full} of {} frames",
        frames.len()
    );

    // When the publisher leaves, its tracks end and so does the tap.
    send(&mut cas, json!({ "type": "leave" })).await?;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while tap.recv().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the tap closed when its track ended");
    Ok(())
}

/// Joins VP8 RTP payloads back into frames: a frame starts at a packet whose descriptor has the
/// S bit and partition 0, and ends at the RTP marker.
fn reassemble_vp8(packets: &[TapPacket]) -> Result<Vec<Vec<u8>>> {
    let mut frames = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for packet in packets {
        let payload = &packet.payload[..];
        let (skip, starts) = vp8_descriptor(payload).context("a VP8 payload descriptor")?;
        if starts {
            current = Some(Vec::new());
        }
        if let Some(frame) = current.as_mut() {
            frame.extend_from_slice(&payload[skip..]);
            if packet.marker {
                frames.extend(current.take());
            }
        }
    }
    Ok(frames)
}
