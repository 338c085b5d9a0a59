//! The `/rtc/{room}` signaling WebSocket against the real server, and media through its SFU:
//! join tokens from the API, a WebSocket client, and str0m clients sending real RTP over UDP on
//! 127.0.0.1. Every wait is bounded.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sightline_api::AccountRole;
use sightline_testkit::{UdpPeer, candidate_addr};
use str0m::Event as RtcEvent;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec as Str0mCodec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::rtp::RtpWrite;
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{
    Backend, TestApp, expect_json, interview_body, invite_token, session_from, text,
};
use crate::on_both_backends;

on_both_backends!(
    join_tokens_open_only_their_room,
    participants_meet_chat_and_are_checked,
    media_flows_through_the_server,
    everyone_receives_everyone_and_rooms_stay_apart,
    a_subscriber_past_its_stopped_line_limit_is_renewed_with_every_track,
);

const WAIT: Duration = Duration::from_secs(15);

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A scheduled interview with an interviewer session and a guest candidate session.
pub(crate) struct Interview {
    pub(crate) id: String,
    pub(crate) interviewer: String,
    pub(crate) candidate: String,
}

pub(crate) async fn interview(app: &TestApp) -> Result<Interview> {
    let interviewer = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let created = app
        .schedule(&interviewer.access, interview_body("cas@example.com"))
        .await?;
    let token = invite_token(&text(&created["invites"][0]["url"])?)?;
    let guest = session_from(
        app.post("/api/invites/redeem", json!({ "token": token }), None)
            .await?,
    )
    .await?;
    Ok(Interview {
        id: text(&created["interview"]["id"])?,
        interviewer: interviewer.access,
        candidate: guest.access,
    })
}

pub(crate) async fn join_token(app: &TestApp, interview: &str, access: &str) -> Result<String> {
    let joined = expect_json(
        app.post(
            &format!("/api/interviews/{interview}/join"),
            json!({}),
            Some(access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    text(&joined["token"])
}

pub(crate) async fn connect(app: &TestApp, room: &str) -> Result<Socket> {
    let url = format!("{}/rtc/{room}", app.base.replacen("http", "ws", 1));
    let (socket, _) = tokio_tungstenite::connect_async(url).await?;
    Ok(socket)
}

pub(crate) async fn send(socket: &mut Socket, message: Value) -> Result<()> {
    socket
        .send(Message::Text(message.to_string().into()))
        .await?;
    Ok(())
}

/// The next JSON message of the given type, skipping others; fails after [`WAIT`].
pub(crate) async fn next_of(socket: &mut Socket, kind: &str) -> Result<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, socket.next())
            .await
            .with_context(|| format!("no `{kind}` message in time"))?;
        match frame {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(&text)?;
                if value["type"] == kind {
                    return Ok(value);
                }
            }
            Some(Ok(Message::Close(_))) | None => bail!("closed while waiting for `{kind}`"),
            Some(Ok(_)) => {}
            Some(Err(err)) => bail!("socket error while waiting for `{kind}`: {err}"),
        }
    }
}

pub(crate) async fn join(app: &TestApp, room: &str, access: &str) -> Result<(Socket, Value)> {
    let token = join_token(app, room, access).await?;
    let mut socket = connect(app, room).await?;
    send(
        &mut socket,
        json!({ "type": "join", "version": 1, "token": token }),
    )
    .await?;
    let joined = next_of(&mut socket, "joined").await?;
    Ok((socket, joined))
}

async fn join_tokens_open_only_their_room(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let a = interview(&app).await?;
    let created_b = app
        .schedule(&a.interviewer, interview_body("other@example.com"))
        .await?;
    let b = text(&created_b["interview"]["id"])?;
    let token_a = join_token(&app, &a.id, &a.interviewer).await?;

    let mut wrong_room = connect(&app, &b).await?;
    send(
        &mut wrong_room,
        json!({ "type": "join", "version": 1, "token": token_a }),
    )
    .await?;
    let error = next_of(&mut wrong_room, "error").await?;
    assert_eq!(error["code"], "wrong_room");

    let mut forged = connect(&app, &a.id).await?;
    send(
        &mut forged,
        json!({ "type": "join", "version": 1, "token": "not.a.token" }),
    )
    .await?;
    assert_eq!(next_of(&mut forged, "error").await?["code"], "unauthorized");

    let mut rude = connect(&app, &a.id).await?;
    send(&mut rude, json!({ "type": "chat", "text": "hi" })).await?;
    assert_eq!(next_of(&mut rude, "error").await?["code"], "join_required");

    // The right room still works.
    let mut right = connect(&app, &a.id).await?;
    send(
        &mut right,
        json!({ "type": "join", "version": 1, "token": token_a }),
    )
    .await?;
    let joined = next_of(&mut right, "joined").await?;
    assert_eq!(joined["you"]["role"], "interviewer");
    Ok(())
}

async fn participants_meet_chat_and_are_checked(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let room = interview(&app).await?;
    let (mut ivy, _) = join(&app, &room.id, &room.interviewer).await?;
    let (mut cas, joined) = join(&app, &room.id, &room.candidate).await?;
    assert_eq!(joined["participants"][0]["role"], "interviewer");
    let announced = next_of(&mut ivy, "participant_joined").await?;
    assert_eq!(announced["participant"]["role"], "candidate");

    send(
        &mut cas,
        json!({ "type": "chat", "text": "Hello from the candidate" }),
    )
    .await?;
    for socket in [&mut ivy, &mut cas] {
        let chat = next_of(socket, "chat").await?;
        assert_eq!(chat["text"], "Hello from the candidate");
    }

    // Bad input gets an error and the connection stays usable.
    cas.send(Message::Text("{ not json".into())).await?;
    assert_eq!(
        next_of(&mut cas, "error").await?["code"],
        "malformed_message"
    );
    send(
        &mut cas,
        json!({ "type": "publish_offer", "sdp": "v=0", "tracks": [{ "mid": "0", "source": "secondary_camera" }] }),
    )
    .await?;
    assert_eq!(next_of(&mut cas, "error").await?["code"], "not_allowed");
    send(&mut cas, json!({ "type": "ping", "nonce": 9 })).await?;
    assert_eq!(next_of(&mut cas, "pong").await?["nonce"], 9);

    // Leaving is seen by the others, even when the socket closes right after the `leave` (as a
    // closing page does): the close must not overtake the request.
    send(&mut cas, json!({ "type": "leave" })).await?;
    cas.close(None).await?;
    let left = next_of(&mut ivy, "participant_left").await?;
    assert_eq!(left["reason"], "left");
    Ok(())
}

fn vp8_payload(frame: u32) -> Vec<u8> {
    let keyframe = frame.is_multiple_of(10);
    let mut payload = vec![0x90, 0x80, 0x80, (frame & 0x7F) as u8, u8::from(!keyframe)];
    payload.extend(frame.to_be_bytes());
    payload.extend(std::iter::repeat_n(0x5A, 400));
    payload
}

/// Reads whatever signaling messages are waiting, without blocking.
pub(crate) async fn drain(socket: &mut Socket) -> Result<Vec<Value>> {
    let mut messages = Vec::new();
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_millis(1), socket.next()).await
    {
        if let Message::Text(text) = frame? {
            messages.push(serde_json::from_str(&text)?);
        }
    }
    Ok(messages)
}

async fn media_flows_through_the_server(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let room = interview(&app).await?;
    let (mut ivy, _) = join(&app, &room.id, &room.interviewer).await?;
    let (mut cas, _) = join(&app, &room.id, &room.candidate).await?;

    // Malformed SDP is refused for that participant alone.
    send(
        &mut ivy,
        json!({ "type": "publish_offer", "sdp": "v=0 this is not sdp",
                "tracks": [{ "mid": "0", "source": "camera" }] }),
    )
    .await?;
    assert_eq!(next_of(&mut ivy, "error").await?["code"], "bad_sdp");

    // The candidate publishes a camera track.
    let mut publisher = UdpPeer::rtp().await?;
    let mut change = publisher.rtc.sdp_api();
    let mid: Mid = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = change.apply().context("offer")?;
    send(
        &mut cas,
        json!({ "type": "publish_offer", "sdp": offer.to_sdp_string(),
                "tracks": [{ "mid": mid.to_string(), "source": "camera" }] }),
    )
    .await?;
    let answer = next_of(&mut cas, "publish_answer").await?;
    let sfu_addr = candidate_addr(&text(&answer["sdp"])?)?;
    let noise = UdpSocket::bind("127.0.0.1:0").await?;
    publisher
        .rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&text(&answer["sdp"])?)?)?;

    // The interviewer hears of the track and is offered it.
    let mut subscriber = UdpPeer::rtp().await?;
    let mut published = None;
    let mut pub_events = Vec::new();
    let mut sub_events = Vec::new();
    let started = Instant::now();
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut next_frame = Instant::now();
    while started.elapsed() < WAIT && sent.len() < 60 {
        for message in drain(&mut ivy).await? {
            match message["type"].as_str() {
                Some("track_published") => published = Some(message["track"].clone()),
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
        let connected =
            |events: &[RtcEvent]| events.iter().any(|e| matches!(e, RtcEvent::Connected));
        if connected(&pub_events) && connected(&sub_events) && Instant::now() >= next_frame {
            let frame = sent.len() as u32;
            let payload = vp8_payload(frame);
            let remote = publisher
                .rtc
                .media(mid)
                .context("media")?
                .remote_pts()
                .to_vec();
            let pt = publisher
                .rtc
                .codec_config()
                .params()
                .iter()
                .find(|p| p.spec().codec == Str0mCodec::Vp8 && remote.contains(&p.pt()))
                .map(|p| p.pt())
                .context("VP8 negotiated")?;
            if frame.is_multiple_of(5) {
                // Garbage from a stranger, mid-call: counted and ignored by the SFU.
                noise
                    .send_to(b"\x80\x60garbage that is not RTP", sfu_addr)
                    .await?;
                noise.send_to(&[0u8; 3], sfu_addr).await?;
            }
            if let Some(stream) = publisher.rtc.direct_api().stream_tx_by_mid(mid, None) {
                stream.write_rtp(
                    RtpWrite::new(
                        pt,
                        (100 + u64::from(frame)).into(),
                        frame * 3000,
                        Instant::now(),
                        payload.clone(),
                    )
                    .marker(true)
                    .nackable(true),
                );
                sent.push(payload);
            }
            next_frame += Duration::from_millis(20);
        }
        publisher.step(&mut pub_events).await?;
        subscriber.step(&mut sub_events).await?;
    }
    let tail = Instant::now();
    while tail.elapsed() < Duration::from_millis(300) {
        publisher.step(&mut pub_events).await?;
        subscriber.step(&mut sub_events).await?;
    }

    let track = published.context("the interviewer was told about the track")?;
    assert_eq!(track["source"], "camera");
    assert_eq!(
        sent.len(),
        60,
        "both media connections came up and media was sent"
    );
    let received: Vec<(u64, Vec<u8>)> = sub_events
        .iter()
        .filter_map(|e| match e {
            RtcEvent::RtpPacket(p) => Some((*p.seq_no, p.payload.to_vec())),
            _ => None,
        })
        .collect();
    assert!(
        received.len() >= 30,
        "the interviewer got media: {}",
        received.len()
    );
    let first = sent
        .iter()
        .position(|p| *p == received[0].1)
        .context("received what was sent")?;
    assert_eq!(
        sent[first][4], 0,
        "the interviewer's video starts at a keyframe"
    );
    for ((_, got), want) in received.iter().zip(&sent[first..]) {
        assert_eq!(got, want, "byte for byte through the SFU");
    }
    for pair in received.windows(2) {
        assert_eq!(pair[1].0, pair[0].0 + 1, "contiguous sequence numbers");
    }
    // What the workers counted is on /metrics: the garbage, and the time forwarded packets
    // spent in the worker.
    let metrics = app.metrics().await?;
    let value = |name: &str| -> Option<f64> {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
    };
    assert!(
        value("sightline_sfu_garbage_datagrams_total").unwrap_or(0.0) >= 2.0,
        "{metrics}"
    );
    // Once per batch that sent something: several datagrams share a batch on a busy machine.
    let held = value("sightline_sfu_forwarding_seconds_count").unwrap_or(0.0);
    let sent = value("sightline_sfu_datagrams_sent_total").unwrap_or(0.0);
    assert!(held >= 1.0 && held <= sent, "{metrics}");
    assert_eq!(
        value("sightline_sfu_forwarding_seconds_bucket{le=\"+Inf\"}"),
        Some(held),
        "buckets are cumulative: {metrics}"
    );
    Ok(())
}

/// One participant with its signaling socket and both media connections.
pub(crate) struct Member {
    tag: u8,
    pub(crate) ws: Socket,
    pub(crate) publisher: UdpPeer,
    pub(crate) subscriber: UdpPeer,
    video: Mid,
    audio: Mid,
    pending: Option<str0m::change::SdpPendingOffer>,
    pub(crate) pub_events: Vec<RtcEvent>,
    pub(crate) sub_events: Vec<RtcEvent>,
    /// `subscriber_reset`s received (each replaced the subscriber connection).
    pub(crate) resets: usize,
    /// The last subscriber offer's SDP.
    last_offer: Option<String>,
    /// The token that resumes this member's session after a drop.
    resume_token: String,
    /// `media_reset`s received (each told it to start its media afresh).
    pub(crate) media_resets: usize,
}

impl Member {
    pub(crate) async fn join(app: &TestApp, room: &str, access: &str, tag: u8) -> Result<Member> {
        let (mut ws, joined) = join(app, room, access).await?;
        let resume_token = text(&joined["resume_token"])?;
        let mut publisher = UdpPeer::rtp().await?;
        let mut change = publisher.rtc.sdp_api();
        let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, pending) = change.apply().context("offer")?;
        send(
            &mut ws,
            json!({ "type": "publish_offer", "sdp": offer.to_sdp_string(), "tracks": [
                { "mid": video.to_string(), "source": "camera" },
                { "mid": audio.to_string(), "source": "microphone" } ] }),
        )
        .await?;
        Ok(Member {
            tag,
            ws,
            publisher,
            subscriber: UdpPeer::rtp().await?,
            video,
            audio,
            pending: Some(pending),
            pub_events: Vec::new(),
            sub_events: Vec::new(),
            resets: 0,
            last_offer: None,
            resume_token,
            media_resets: 0,
        })
    }

    /// Comes back through `app` (any node) after its signaling connection dropped, with its
    /// resume token; its media connections are left as they are.
    pub(crate) async fn resume(
        &mut self,
        app: &TestApp,
        room: &str,
        access: &str,
    ) -> Result<Value> {
        let token = join_token(app, room, access).await?;
        let mut ws = connect(app, room).await?;
        send(
            &mut ws,
            json!({ "type": "join", "version": 1, "token": token, "resume_token": self.resume_token }),
        )
        .await?;
        let joined = next_of(&mut ws, "joined").await?;
        self.resume_token = text(&joined["resume_token"])?;
        self.ws = ws;
        Ok(joined)
    }

    async fn signaling(&mut self) -> Result<()> {
        for message in drain(&mut self.ws).await? {
            match message["type"].as_str() {
                Some("publish_answer") => {
                    if let Some(pending) = self.pending.take() {
                        let answer = SdpAnswer::from_sdp_string(&text(&message["sdp"])?)?;
                        self.publisher
                            .rtc
                            .sdp_api()
                            .accept_answer(pending, answer)?;
                    }
                }
                Some("media_reset") => self.media_resets += 1,
                Some("subscriber_reset") => {
                    self.subscriber = UdpPeer::rtp().await?;
                    self.sub_events.clear();
                    self.resets += 1;
                }
                Some("subscriber_offer") => {
                    self.last_offer = Some(text(&message["sdp"])?);
                    let offer = SdpOffer::from_sdp_string(&text(&message["sdp"])?)?;
                    let answer = self
                        .subscriber
                        .rtc
                        .sdp_api()
                        .accept_offer(offer)
                        .with_context(|| {
                            format!(
                                "member {} (resets {}) takes {:?}",
                                self.tag, self.resets, self.last_offer
                            )
                        })?;
                    send(
                        &mut self.ws,
                        json!({ "type": "subscriber_answer", "sdp": answer.to_sdp_string() }),
                    )
                    .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Sends one video and one audio packet tagged with this member and a counter.
    pub(crate) fn send_media(&mut self, counter: u32) -> Result<()> {
        for (mid, codec, kind) in [
            (self.video, Str0mCodec::Vp8, 1u8),
            (self.audio, Str0mCodec::Opus, 2u8),
        ] {
            let remote = self
                .publisher
                .rtc
                .media(mid)
                .context("media")?
                .remote_pts()
                .to_vec();
            let Some(pt) = self
                .publisher
                .rtc
                .codec_config()
                .params()
                .iter()
                .find(|p| p.spec().codec == codec && remote.contains(&p.pt()))
                .map(|p| p.pt())
            else {
                continue;
            };
            // VP8 keyframe header on every video packet, so a late subscriber starts at once.
            let mut payload = vec![0x10, 0x00, self.tag, kind];
            payload.extend(counter.to_be_bytes());
            payload.extend(std::iter::repeat_n(self.tag, 200));
            if let Some(stream) = self.publisher.rtc.direct_api().stream_tx_by_mid(mid, None) {
                stream.write_rtp(
                    RtpWrite::new(
                        pt,
                        u64::from(counter).into(),
                        counter * 960,
                        Instant::now(),
                        payload,
                    )
                    .marker(true)
                    .nackable(kind == 1),
                );
            }
        }
        Ok(())
    }

    pub(crate) fn connected(&self) -> bool {
        let up = |events: &[RtcEvent]| events.iter().any(|e| matches!(e, RtcEvent::Connected));
        up(&self.pub_events) && up(&self.sub_events)
    }

    /// (sender tag, kind) of every payload received, with the payloads themselves.
    fn received(&self) -> Vec<(u8, u8, Vec<u8>)> {
        self.sub_events
            .iter()
            .filter_map(|e| match e {
                RtcEvent::RtpPacket(p) if p.payload.len() > 4 => {
                    Some((p.payload[2], p.payload[3], p.payload.to_vec()))
                }
                _ => None,
            })
            .collect()
    }
}

/// The access tokens of a scheduled interview's guests, each redeeming their invite.
pub(crate) async fn guest_sessions(app: &TestApp, scheduled: &Value) -> Result<Vec<String>> {
    let mut guests = Vec::new();
    for invite in scheduled["invites"].as_array().context("invites")? {
        let token = invite_token(&text(&invite["url"])?)?;
        let guest = session_from(
            app.post("/api/invites/redeem", json!({ "token": token }), None)
                .await?,
        )
        .await?;
        guests.push(guest.access);
    }
    Ok(guests)
}

async fn everyone_receives_everyone_and_rooms_stay_apart(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let interviewer = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let mut body_a = interview_body("c1@example.com");
    body_a["participants"] = json!([
        { "email": "c1@example.com", "role": "candidate" },
        { "email": "c2@example.com", "role": "candidate" },
        { "email": "c3@example.com", "role": "candidate" },
    ]);
    let room_a = app.schedule(&interviewer.access, body_a).await?;
    let room_b = app
        .schedule(&interviewer.access, interview_body("b1@example.com"))
        .await?;
    let mut members = Vec::new();
    for (room, tag_base) in [(&room_a, 10u8), (&room_b, 20u8)] {
        let id = text(&room["interview"]["id"])?;
        members.push(Member::join(&app, &id, &interviewer.access, tag_base).await?);
        for (i, guest) in guest_sessions(&app, room).await?.iter().enumerate() {
            members.push(Member::join(&app, &id, guest, tag_base + 1 + i as u8).await?);
        }
    }
    assert_eq!(members.len(), 6, "four in room A, two in room B");

    let started = Instant::now();
    let mut counter = 0u32;
    let mut next = Instant::now();
    while started.elapsed() < WAIT && counter < 40 {
        for member in &mut members {
            member.signaling().await?;
        }
        if members.iter().all(Member::connected) && Instant::now() >= next {
            for member in &mut members {
                member.send_media(counter)?;
            }
            counter += 1;
            next += Duration::from_millis(25);
        }
        for member in &mut members {
            member.publisher.pump(&mut member.pub_events)?;
            member.subscriber.pump(&mut member.sub_events)?;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let tail = Instant::now();
    while tail.elapsed() < Duration::from_millis(400) {
        for member in &mut members {
            member.publisher.pump(&mut member.pub_events)?;
            member.subscriber.pump(&mut member.sub_events)?;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(counter, 40, "everyone connected and sent media");

    for member in &members {
        let received = member.received();
        let room = member.tag / 10;
        let peers: Vec<u8> = members
            .iter()
            .filter(|m| m.tag / 10 == room && m.tag != member.tag)
            .map(|m| m.tag)
            .collect();
        for (from, _, payload) in &received {
            assert_eq!(
                from / 10,
                room,
                "member {} got media from another room",
                member.tag
            );
            assert_ne!(*from, member.tag, "nobody receives their own media");
            assert!(payload[8..].iter().all(|b| b == from), "payload unchanged");
        }
        for peer in &peers {
            for kind in [1u8, 2u8] {
                let count = received
                    .iter()
                    .filter(|(from, k, _)| from == peer && *k == kind)
                    .count();
                assert!(
                    count >= 30,
                    "member {} got {count} packets of kind {kind} from {peer}",
                    member.tag
                );
            }
        }
    }
    Ok(())
}

/// Runs every member's signaling and media for `period`, each sending a packet of each kind every
/// 25 ms once all are connected; returns how many rounds were sent.
async fn run_members(members: &mut [Member], period: Duration, first: u32) -> Result<u32> {
    let started = Instant::now();
    let mut counter = first;
    let mut next = Instant::now();
    while started.elapsed() < period {
        for member in members.iter_mut() {
            member.signaling().await?;
        }
        if members.iter().all(Member::connected) && Instant::now() >= next {
            for member in members.iter_mut() {
                member.send_media(counter)?;
            }
            counter += 1;
            next += Duration::from_millis(25);
        }
        for member in members.iter_mut() {
            member.publisher.pump(&mut member.pub_events)?;
            member.subscriber.pump(&mut member.sub_events)?;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(counter - first)
}

/// Runs the members (sending media numbered on from `counter`) until `done` holds for them, for
/// at most a minute.
pub(crate) async fn run_until(
    members: &mut [Member],
    counter: &mut u32,
    what: &str,
    done: impl Fn(&[Member]) -> bool,
) -> Result<()> {
    let started = Instant::now();
    while !done(members) {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("waited a minute for this: {what}");
        }
        *counter += run_members(members, Duration::from_millis(250), *counter).await?;
    }
    Ok(())
}

/// Packets of each kind (video, audio) `member` received from the member tagged `from`.
pub(crate) fn packets_from(member: &Member, from: u8) -> (usize, usize) {
    let received = member.received();
    let count = |kind: u8| {
        received
            .iter()
            .filter(|(tag, k, _)| *tag == from && *k == kind)
            .count()
    };
    (count(1), count(2))
}

async fn a_subscriber_past_its_stopped_line_limit_is_renewed_with_every_track(
    backend: Backend,
) -> Result<()> {
    // No stopped m-line between live ones is kept: the first one renews the connection.
    let app = TestApp::spawn_with(backend, &[("rtc.max_stopped_m_lines", json!(0))]).await?;
    let interviewer = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let mut body = interview_body("c1@example.com");
    body["participants"] = json!([
        { "email": "c1@example.com", "role": "candidate" },
        { "email": "c2@example.com", "role": "candidate" },
    ]);
    let room = app.schedule(&interviewer.access, body).await?;
    let id = text(&room["interview"]["id"])?;
    let guests = guest_sessions(&app, &room).await?;

    // Ivy, then the first candidate, whose tracks take Ivy's first m-lines; then the second.
    let mut counter = 0;
    let mut members = vec![Member::join(&app, &id, &interviewer.access, 10).await?];
    members.push(Member::join(&app, &id, &guests[0], 11).await?);
    run_until(
        &mut members,
        &mut counter,
        "Ivy receives the first candidate",
        |m| packets_from(&m[0], 11).0 > 10,
    )
    .await?;
    members.push(Member::join(&app, &id, &guests[1], 12).await?);
    run_until(
        &mut members,
        &mut counter,
        "everyone receives everyone",
        |m| {
            m.iter().all(|member| {
                m.iter()
                    .filter(|other| other.tag != member.tag)
                    .all(|other| packets_from(member, other.tag).0 > 10)
            })
        },
    )
    .await?;
    assert_eq!(members.iter().map(|m| m.resets).sum::<usize>(), 0);

    // The first candidate leaves: their m-lines in Ivy's connection stop ahead of the second
    // candidate's live ones, which is past the limit. (Where the second candidate's connection
    // has them depends on the order it was offered the room's tracks in.)
    let mut first = members.remove(1);
    send(&mut first.ws, json!({ "type": "leave" })).await?;
    drop(first);
    run_until(
        &mut members,
        &mut counter,
        "Ivy's renewed connection receives the second candidate",
        |m| {
            let (video, audio) = packets_from(&m[0], 12);
            m[0].resets > 0 && video > 20 && audio > 20
        },
    )
    .await?;
    // And the second candidate still receives Ivy, renewed or not.
    let before = packets_from(&members[1], 10).0;
    run_until(
        &mut members,
        &mut counter,
        "the second candidate receives Ivy",
        |m| packets_from(&m[1], 10).0 > before + 10,
    )
    .await?;

    let ivy = &members[0];
    assert_eq!(
        ivy.resets, 1,
        "Ivy's subscriber connection was renewed once"
    );
    assert!(members[1].resets <= 1, "renewed at most once");
    let offer = ivy
        .last_offer
        .as_deref()
        .context("an offer for the new connection")?;
    let m_lines = offer.lines().filter(|l| l.starts_with("m=")).count();
    assert_eq!(
        m_lines, 2,
        "the new connection carries the two live tracks only:\n{offer}"
    );
    Ok(())
}

/// The camera track a candidate publishes on `app`, as the room names it.
async fn first_camera_track(app: &TestApp) -> Result<String> {
    use crate::proctoring::Camera;
    let meeting = interview(app).await?;
    let (socket, _) = join(app, &meeting.id, &meeting.candidate).await?;
    let mut camera = Camera::start(socket, sightline_testkit::Scene::OneFace).await?;
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        camera.step().await?;
        if let Some(track) = camera.track.clone() {
            return Ok(track);
        }
    }
    anyhow::bail!("the camera was never published")
}

/// Track ids are numbered in a space each server draws when it starts: the first track of two
/// servers (two nodes, or one node before and after a restart) never has the same id, so a
/// room that moves, or a server that restarts, never gives a new track the id a recording or
/// a proctoring event of the same interview already names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_never_name_their_first_track_alike() -> Result<()> {
    let (a, b) = (
        TestApp::spawn(Backend::Sqlite).await?,
        TestApp::spawn(Backend::Sqlite).await?,
    );
    let (first, second) = (first_camera_track(&a).await?, first_camera_track(&b).await?);
    assert!(
        first.starts_with('t') && second.starts_with('t'),
        "{first} {second}"
    );
    assert_ne!(first, second);
    Ok(())
}
