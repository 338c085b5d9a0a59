//! Real media through the real server: a publisher sends Opus and three-layer simulcast VP8
//! (encoded by GStreamer, packetized by str0m as a browser's stack would), and a subscriber in
//! frame mode (reassembling frames as a browser does) asks for lower, then higher quality. It
//! must get exactly the frames that were sent, starting at a keyframe, switching layers only at
//! keyframes, with contiguous sequence numbers throughout. Every wait is bounded.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;
use sightline_testkit::{MediaPublisher, UdpPeer, media};
use str0m::Event as RtcEvent;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::MediaData;

use crate::helpers::{Backend, TestApp, text};
use crate::rtc::{drain, interview, join, next_of, send};

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
    // Where in the received video each quality request was made.
    let mut requests: Vec<(usize, &str)> = Vec::new();
    let mut video_since: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(30);
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

        let received = frames(&sub_events, Codec::Vp8).len();
        let since = match video_since {
            Some(since) => since,
            None if received > 0 => *video_since.insert(Instant::now()),
            None => continue,
        };
        let phase = since.elapsed().as_millis() / PHASE.as_millis();
        let track = camera.clone().context("the camera track was announced")?;
        let wanted = match phase {
            0 => "high",
            1 => "low",
            2 => "high",
            _ => break,
        };
        if requests.last().map(|(_, q)| *q) != Some(wanted) {
            requests.push((received, wanted));
            if requests.len() > 1 {
                send(
                    &mut ivy,
                    json!({ "type": "set_quality", "track": track, "quality": wanted }),
                )
                .await?;
            }
        }
    }
    if requests.len() < 3 {
        bail!("video never flowed long enough: requests {requests:?}");
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
    // Full quality first, then the lowest layer after asking for low, then full again.
    let layer_after = |request: usize| layers.get(request..).unwrap_or_default();
    assert!(layers[..requests[1].0].iter().all(|l| l.0 == 2));
    assert!(
        layer_after(requests[1].0).iter().any(|l| l.0 == 0),
        "switched down"
    );
    assert!(
        layer_after(requests[1].0)
            .iter()
            .take_while(|l| l.0 != 0)
            .all(|l| l.0 == 2),
        "the old layer flows until the new one's keyframe"
    );
    assert!(
        layer_after(requests[2].0).iter().any(|l| l.0 == 2),
        "switched back up"
    );

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

fn frames(events: &[RtcEvent], codec: Codec) -> Vec<&MediaData> {
    events
        .iter()
        .filter_map(|e| match e {
            RtcEvent::MediaData(data) if data.params.spec().codec == codec => Some(data),
            _ => None,
        })
        .collect()
}
