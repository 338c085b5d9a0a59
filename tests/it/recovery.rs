//! What happens to a call when things go wrong, through the real server with real media: a
//! moderator's mute is enforced by the SFU (not left to the muted client), bad trickled
//! candidates are refused without harm, and a participant whose network is gone longer than ICE
//! allows gets new media connections instead of a seat without media. Every wait is bounded.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sightline_testkit::{EncodedMedia, MediaPublisher, UdpPeer, media};
use str0m::Event as RtcEvent;
use str0m::change::{SdpAnswer, SdpOffer};

use crate::helpers::{Backend, TestApp, text};
use crate::rtc::{Socket, drain, interview, join, next_of, send};

/// str0m's ICE-lite agent gives up on a connection without checks after 15 s; the server then
/// has to notice and start the participant afresh.
const ICE_GIVES_UP: Duration = Duration::from_secs(40);

/// The candidate's publisher and the interviewer's subscriber, driven together.
struct Call {
    ivy: Socket,
    cas: Socket,
    publisher: MediaPublisher,
    subscriber: UdpPeer,
    pub_events: Vec<RtcEvent>,
    sub_events: Vec<RtcEvent>,
    /// The candidate's camera track, as announced to the interviewer.
    camera: Option<String>,
    /// Messages the candidate received that the driving loop did not consume.
    cas_inbox: Vec<Value>,
}

impl Call {
    /// Publishes a new camera and microphone for the candidate.
    async fn publish(cas: &mut Socket) -> Result<MediaPublisher> {
        let (mut publisher, offer) = MediaPublisher::new(false).await?;
        send(
            cas,
            json!({ "type": "publish_offer", "sdp": offer.to_sdp_string(), "tracks": [
                { "mid": publisher.audio.to_string(), "source": "microphone" },
                { "mid": publisher.video.to_string(), "source": "camera" } ] }),
        )
        .await?;
        let answer = next_of(cas, "publish_answer").await?;
        publisher.accept_answer(SdpAnswer::from_sdp_string(&text(&answer["sdp"])?)?)?;
        Ok(publisher)
    }

    /// Video frames the interviewer received so far.
    fn frames(&self) -> usize {
        self.sub_events
            .iter()
            .filter(|e| matches!(e, RtcEvent::MediaData(d) if d.params.spec().codec.is_video()))
            .count()
    }

    /// Runs media and signaling until `done` holds or `limit` passes.
    async fn run_until(
        &mut self,
        media: &EncodedMedia,
        limit: Duration,
        mut done: impl FnMut(&Call) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            for message in drain(&mut self.ivy).await? {
                match message["type"].as_str() {
                    Some("track_published") if message["track"]["source"] == "camera" => {
                        self.camera = Some(text(&message["track"]["id"])?);
                    }
                    Some("subscriber_offer") => {
                        let offer = SdpOffer::from_sdp_string(&text(&message["sdp"])?)?;
                        let answer = self.subscriber.rtc.sdp_api().accept_offer(offer)?;
                        send(
                            &mut self.ivy,
                            json!({ "type": "subscriber_answer", "sdp": answer.to_sdp_string() }),
                        )
                        .await?;
                    }
                    _ => {}
                }
            }
            self.cas_inbox.extend(drain(&mut self.cas).await?);
            if UdpPeer::connected(&self.pub_events) {
                self.publisher.send_due(media, Instant::now())?;
            }
            self.publisher.peer.step(&mut self.pub_events).await?;
            self.subscriber.pump(&mut self.sub_events)?;
            if done(self) {
                return Ok(());
            }
        }
        bail!("gave up after {limit:?}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_is_enforced_and_lost_media_connections_are_replaced() -> Result<()> {
    let media = media()?;
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let room = interview(&app).await?;
    let (ivy, _) = join(&app, &room.id, &room.interviewer).await?;
    let (mut cas, _) = join(&app, &room.id, &room.candidate).await?;
    let publisher = Call::publish(&mut cas).await?;
    let mut call = Call {
        ivy,
        cas,
        publisher,
        subscriber: UdpPeer::frames().await?,
        pub_events: Vec::new(),
        sub_events: Vec::new(),
        camera: None,
        cas_inbox: Vec::new(),
    };
    let limit = Duration::from_secs(15);
    call.run_until(media, limit, |c| c.frames() > 30).await?;

    // A candidate cannot sneak past a bad candidate line; the connection stays usable.
    send(
        &mut call.cas,
        json!({ "type": "ice_candidate", "connection": "publisher", "candidate": "candidate:junk" }),
    )
    .await?;
    call.run_until(media, limit, |c| {
        c.cas_inbox.iter().any(|m| m["type"] == "error")
    })
    .await?;
    let error = call.cas_inbox.drain(..).find(|m| m["type"] == "error");
    assert_eq!(error.context("an error")?["code"], "bad_candidate");

    // The interviewer mutes the candidate's camera: the candidate is told, and the SFU stops
    // forwarding it even though the candidate's client keeps sending.
    let camera = call.camera.clone().context("the camera was announced")?;
    send(
        &mut call.ivy,
        json!({ "type": "moderate_mute", "track": camera }),
    )
    .await?;
    call.run_until(media, limit, |c| {
        c.cas_inbox
            .iter()
            .any(|m| m["type"] == "track_muted" && m["by"].is_string())
    })
    .await?;
    // Let what was in flight arrive, then count.
    let settle = Instant::now() + Duration::from_millis(500);
    call.run_until(media, limit, |_| Instant::now() > settle)
        .await?;
    let held_at = call.frames();
    let hold_until = Instant::now() + Duration::from_secs(2);
    call.run_until(media, limit, |_| Instant::now() > hold_until)
        .await?;
    assert_eq!(call.frames(), held_at, "no video reaches anyone while held");
    // The candidate unmutes: video flows again.
    send(
        &mut call.cas,
        json!({ "type": "mute", "track": camera, "muted": false }),
    )
    .await?;
    call.run_until(media, limit, |c| c.frames() > held_at + 10)
        .await?;

    // The candidate's network goes away (its media sockets vanish) while its signaling stays.
    // Once ICE gives up on it, the server replaces the candidate's connections and says so.
    call.publisher = {
        let (publisher, _offer) = MediaPublisher::new(false).await?;
        publisher
    };
    call.pub_events.clear();
    call.run_until(media, ICE_GIVES_UP, |c| {
        c.cas_inbox.iter().any(|m| m["type"] == "media_reset")
    })
    .await?;
    // The candidate publishes afresh and the interviewer sees its video again.
    call.publisher = Call::publish(&mut call.cas).await?;
    let before = call.frames();
    call.run_until(media, limit, |c| c.frames() > before + 30)
        .await?;
    Ok(())
}
