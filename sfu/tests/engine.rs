//! The engine with real str0m peers on both ends: ICE, DTLS, SRTP and SDP happen for real; only
//! the network is simulated, in virtual time, so the test is fast and has no sleeps.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use sightline_sfu::{Codec, Engine, Event, Output, PeerId, Quality, SfuError, TapPacket, TrackId};
use str0m::format::Codec as Str0mCodec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event as RtcEvent, Input, Output as RtcOutput, Rtc, RtcConfig};

const STEP: Duration = Duration::from_millis(1);

/// A client peer connection at an address.
struct Client {
    rtc: Rtc,
    addr: SocketAddr,
    events: Vec<RtcEvent>,
}

impl Client {
    /// A client that reports its stream statistics twice a second, as browsers keep theirs.
    fn new(addr: &str, now: Instant) -> Client {
        Client::with(
            addr,
            now,
            Rtc::builder().set_stats_interval(Some(Duration::from_millis(500))),
        )
    }

    /// A client whose peer connection is configured by `config` (its codecs, say).
    fn with(addr: &str, now: Instant, config: RtcConfig) -> Client {
        let addr: SocketAddr = addr.parse().expect("address");
        let mut rtc = config.set_rtp_mode(true).build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        Client {
            rtc,
            addr,
            events: Vec::new(),
        }
    }
}

/// Polls a client until it waits for time; returns the datagrams it sends.
fn drain_client(client: &mut Client) -> Vec<Datagram> {
    let mut outgoing = Vec::new();
    loop {
        match client.rtc.poll_output().expect("client poll") {
            RtcOutput::Transmit(t) => outgoing.push((t.source, t.destination, t.contents.to_vec())),
            RtcOutput::Event(event) => client.events.push(event),
            RtcOutput::Timeout(_) => return outgoing,
        }
    }
}

/// A datagram on the simulated network: source, destination, contents.
type Datagram = (SocketAddr, SocketAddr, Vec<u8>);

/// A bad path, the same for every run: seeded random loss, and reordering by holding datagrams
/// back to the next step (where they arrive after what was sent later).
struct Impairment {
    /// xorshift64 state; the seed makes each run drop the same datagrams.
    state: u64,
    /// Chance of dropping a datagram, in percent.
    loss: u64,
    /// Chance of holding one back a step, in percent.
    reorder: u64,
    held: Vec<Datagram>,
    dropped: usize,
    reordered: usize,
}

impl Impairment {
    fn new(seed: u64, loss: u64, reorder: u64) -> Impairment {
        Impairment {
            state: seed.max(1),
            loss,
            reorder,
            held: Vec::new(),
            dropped: 0,
            reordered: 0,
        }
    }

    /// A number in 0..100.
    fn roll(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % 100
    }

    /// Whether `datagram` goes on now; dropped or held back otherwise.
    fn pass(&mut self, datagram: &Datagram) -> bool {
        if self.roll() < self.loss {
            self.dropped += 1;
            return false;
        }
        if self.roll() < self.reorder {
            self.reordered += 1;
            self.held.push(datagram.clone());
            return false;
        }
        true
    }
}

/// The engine and its clients on a simulated network, lossless unless impaired.
struct Net {
    now: Instant,
    engine: Engine,
    clients: Vec<Client>,
    events: Vec<Event>,
    /// Addresses that no longer exist (a client's old network): their datagrams are lost.
    dead: Vec<SocketAddr>,
    /// Loss and reordering on every path, once set.
    impairment: Option<Impairment>,
}

impl Net {
    fn new() -> Net {
        let now = Instant::now();
        let engine = Engine::new("10.0.0.1:5000".parse().expect("address"), &[], now);
        Net {
            now,
            engine,
            clients: Vec::new(),
            events: Vec::new(),
            dead: Vec::new(),
            impairment: None,
        }
    }

    /// Whether a datagram survives the path (always, on a lossless network).
    fn passes(&mut self, datagram: &Datagram) -> bool {
        self.impairment
            .as_mut()
            .is_none_or(|impairment| impairment.pass(datagram))
    }

    /// Delivers the datagrams held back, latest first, after those sent since.
    fn release_held(&mut self) {
        let Some(impairment) = self.impairment.as_mut() else {
            return;
        };
        let held = std::mem::take(&mut impairment.held);
        let mut replies = Vec::new();
        for (source, destination, data) in held.into_iter().rev() {
            if destination == self.engine.local_addr() {
                self.engine
                    .handle_datagram(self.now, source, destination, &data);
            } else {
                replies.extend(self.deliver_to_client(source, destination, &data));
            }
        }
        for (source, destination, data) in replies {
            self.engine
                .handle_datagram(self.now, source, destination, &data);
        }
    }

    /// Delivers a datagram to a client and drains it at once (str0m's contract: a received RTP
    /// packet is only kept until the next poll); returns what the client wants to send.
    fn deliver_to_client(
        &mut self,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> Vec<Datagram> {
        let now = self.now;
        let Some(client) = self.clients.iter_mut().find(|c| c.addr == destination) else {
            return Vec::new();
        };
        let Ok(contents) = data.try_into() else {
            return Vec::new();
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        client
            .rtc
            .handle_input(input)
            .expect("client accepts input");
        drain_client(client)
    }

    /// Moves every pending datagram until nobody has anything to send.
    fn settle(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            let mut replies = Vec::new();
            loop {
                match self.engine.poll_output() {
                    Output::Transmit(t) => {
                        moved = true;
                        let datagram = (t.source, t.destination, t.contents.to_vec());
                        if self.passes(&datagram) {
                            let (source, destination, data) = datagram;
                            replies.extend(self.deliver_to_client(source, destination, &data));
                        }
                    }
                    Output::Event(event) => self.events.push(event),
                    Output::Timeout(_) => break,
                }
            }
            let mut outgoing = Vec::new();
            for client in &mut self.clients {
                outgoing.extend(drain_client(client));
            }
            for datagram in replies.into_iter().chain(outgoing) {
                moved = true;
                if self.dead.contains(&datagram.0) || !self.passes(&datagram) {
                    continue;
                }
                let (source, destination, data) = datagram;
                self.engine
                    .handle_datagram(self.now, source, destination, &data);
            }
            if !moved {
                return;
            }
        }
    }

    /// Advances virtual time by one step.
    fn tick(&mut self) {
        self.settle();
        self.now += STEP;
        self.release_held();
        self.engine.handle_timeout(self.now);
        for client in &mut self.clients {
            client
                .rtc
                .handle_input(Input::Timeout(self.now))
                .expect("client timeout");
        }
        self.settle();
    }

    fn published_track(&self) -> Option<TrackId> {
        self.events.iter().find_map(|e| match e {
            Event::TrackPublished { track, .. } => Some(*track),
            _ => None,
        })
    }

    fn take_offer(&mut self, peer: PeerId) -> Option<str0m::change::SdpOffer> {
        let index = self
            .events
            .iter()
            .position(|e| matches!(e, Event::Offer { peer: p, .. } if *p == peer))?;
        match self.events.remove(index) {
            Event::Offer { offer, .. } => Some(offer),
            _ => None,
        }
    }
}

/// A VP8 payload: descriptor with a 15-bit picture id, then a VP8 header byte whose P bit says
/// key or delta frame, then bytes unique to this frame.
fn vp8_payload(frame: u32, keyframe: bool) -> Vec<u8> {
    let picture_id = (frame & 0x7FFF) as u16;
    let mut payload = vec![
        0x90,
        0x80,
        0x80 | (picture_id >> 8) as u8,
        (picture_id & 0xFF) as u8,
        if keyframe { 0x00 } else { 0x01 },
    ];
    payload.extend(frame.to_be_bytes());
    payload.extend(std::iter::repeat_n((frame % 251) as u8, 200));
    payload
}

/// Sends one frame from the publisher (client 0) as three packets, as video frames usually are,
/// and lets 33 ms pass; returns the payloads.
fn send_frame(net: &mut Net, mid: Mid, pt: Pt, frame: u32, keyframe: bool) -> Vec<Vec<u8>> {
    let now = net.now;
    let mut payloads = Vec::new();
    for part in 0..3u32 {
        let mut payload = vp8_payload(frame, keyframe && part == 0);
        if part > 0 {
            // Not the start of the frame: S bit clear.
            payload[0] = 0x80;
        }
        payload.push(part as u8);
        let mut api = net.clients[0].rtc.direct_api();
        let stream = api.stream_tx_by_mid(mid, None).expect("send stream");
        stream.write_rtp(
            RtpWrite::new(
                pt,
                (1000 + u64::from(frame * 3 + part)).into(),
                // 33 ms of a 90 kHz clock: the RTP clock runs exactly with the virtual one, as a
                // real sender's does, so its sender reports agree with its timestamps.
                frame * 2970,
                now,
                payload.clone(),
            )
            .marker(part == 2)
            .nackable(true),
        );
        payloads.push(payload);
    }
    for _ in 0..33 {
        net.tick();
    }
    payloads
}

/// The publisher (client 0, peer 1) offers one video track; returns its m-line.
fn offer_video(net: &mut Net) -> Mid {
    let now = net.now;
    let mut publisher = Client::new("10.0.0.2:6000", now);
    let mut change = publisher.rtc.sdp_api();
    let mid: Mid = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = change.apply().expect("offer");
    let answer = net
        .engine
        .publisher_offer(PeerId(1), offer, now)
        .expect("answer");
    publisher
        .rtc
        .sdp_api()
        .accept_answer(pending, answer)
        .expect("answer accepted");
    net.clients.push(publisher);
    mid
}

/// The VP8 payload type the publisher and the engine agreed on.
fn vp8_pt(net: &Net, mid: Mid) -> Pt {
    let rtc = &net.clients[0].rtc;
    let remote = rtc.media(mid).expect("media").remote_pts().to_vec();
    rtc.codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == Str0mCodec::Vp8 && remote.contains(&p.pt()))
        .map(|p| p.pt())
        .expect("VP8 negotiated")
}

/// A video publisher (client 0, peer 1) and a subscriber to its track (client 1, peer 2), both
/// connected; returns the publisher's m-line and the track.
fn publish_and_subscribe(net: &mut Net) -> (Mid, TrackId) {
    let now = net.now;
    let mid = offer_video(net);
    // Subscriber: the server offers once there is something to send.
    net.clients.push(Client::new("10.0.0.3:7000", now));
    net.engine
        .add_subscriber(PeerId(2), now)
        .expect("subscriber");
    let mut track = None;
    for _ in 0..500 {
        net.tick();
        track = net.published_track();
        if track.is_some() {
            break;
        }
    }
    let track = track.expect("track published");
    net.engine
        .subscribe(PeerId(2), track, Quality::High)
        .expect("subscribed");
    net.settle();
    let offer = net.take_offer(PeerId(2)).expect("offer for the subscriber");
    let answer = net.clients[1]
        .rtc
        .sdp_api()
        .accept_offer(offer)
        .expect("client answers");
    net.engine
        .accept_answer(PeerId(2), answer)
        .expect("answer accepted");

    // Let ICE and DTLS complete on both connections.
    for _ in 0..500 {
        net.tick();
    }
    assert!(
        net.clients
            .iter()
            .all(|c| c.events.iter().any(|e| matches!(e, RtcEvent::Connected))),
        "both clients connected"
    );
    (mid, track)
}

#[test]
fn a_subscriber_receives_the_publishers_packets_unchanged() {
    let mut net = Net::new();
    let (mid, track) = publish_and_subscribe(&mut net);

    // 90 frames at 30 fps, a keyframe every 30; three packets per frame, which arrive at the
    // engine together (the simulated network delivers in batches).
    let pt = vp8_pt(&net, mid);
    let mut sent = Vec::new();
    for frame in 0..90u32 {
        sent.extend(send_frame(&mut net, mid, pt, frame, frame % 30 == 5));
    }

    let received: Vec<(u64, Vec<u8>)> = net.clients[1]
        .events
        .iter()
        .filter_map(|e| match e {
            RtcEvent::RtpPacket(p) => Some((*p.seq_no, p.payload.to_vec())),
            _ => None,
        })
        .collect();
    assert!(!received.is_empty(), "the subscriber got media");
    // The first packet it got is the first keyframe; from there, everything, unchanged.
    let first = sent
        .iter()
        .position(|p| *p == received[0].1)
        .expect("first received payload was sent");
    assert_eq!(
        sent[first][4] & 0x01,
        0,
        "the subscriber starts at a keyframe"
    );
    let expected = &sent[first..];
    assert_eq!(
        received.len(),
        expected.len(),
        "nothing lost after the keyframe"
    );
    for ((_, got), want) in received.iter().zip(expected) {
        assert_eq!(got, want, "payload forwarded byte for byte");
    }
    for pair in received.windows(2) {
        assert_eq!(pair[1].0, pair[0].0 + 1, "contiguous sequence numbers");
    }
    assert_eq!(net.engine.garbage_datagrams(), 0);
    // A hidden tile (quality off) receives nothing; showing it again resumes at a keyframe.
    let count = |net: &Net| {
        net.clients[1]
            .events
            .iter()
            .filter(|e| matches!(e, RtcEvent::RtpPacket(_)))
            .count()
    };
    net.engine
        .set_quality(PeerId(2), track, Quality::Off)
        .expect("paused");
    let before_pause = count(&net);
    for frame in 90..120u32 {
        send_frame(&mut net, mid, pt, frame, frame % 30 == 5);
    }
    assert_eq!(
        count(&net),
        before_pause,
        "nothing is sent to a paused tile"
    );
    net.engine
        .set_quality(PeerId(2), track, Quality::High)
        .expect("resumed");
    // The resumed tile waits for a keyframe, and the publisher is asked for one at once.
    let requests = keyframe_requests(&net);
    send_frame(&mut net, mid, pt, 120, false);
    assert_eq!(count(&net), before_pause, "nothing before the keyframe");
    assert!(
        keyframe_requests(&net) > requests,
        "the resumed tile's keyframe is asked for"
    );
    for frame in 121..160u32 {
        send_frame(&mut net, mid, pt, frame, frame % 30 == 5);
    }
    assert!(count(&net) > before_pause, "video resumes");

    // When the publisher goes, the subscriber is offered a renegotiation that releases its m-line.
    net.events.clear();
    net.engine.remove_peer(PeerId(1)).expect("removed");
    net.settle();
    assert!(
        net.events
            .iter()
            .any(|e| matches!(e, Event::TrackUnpublished { track: t, .. } if *t == track))
    );
    let offer = net
        .take_offer(PeerId(2))
        .expect("a renegotiation for the subscriber");
    // Its only m-line is the first, which is released but never stopped: it keeps the transport.
    let sdp = offer.to_sdp_string();
    assert!(sdp.contains("a=inactive"), "the video m-line is released");
    assert!(
        !bundle_mids(&sdp).is_empty(),
        "the BUNDLE group keeps a member"
    );
    let answer = net.clients[1]
        .rtc
        .sdp_api()
        .accept_offer(offer)
        .expect("the client accepts");
    net.engine
        .accept_answer(PeerId(2), answer)
        .expect("and the engine takes the answer");
    // The subscriber joined between keyframes; the engine asked the publisher for one.
    assert!(
        keyframe_requests(&net) > 0,
        "the publisher was asked for a keyframe"
    );
}

/// The payloads of the RTP packets a client received, in order.
fn received_payloads(client: &Client) -> Vec<Vec<u8>> {
    client
        .events
        .iter()
        .filter_map(|e| match e {
            RtcEvent::RtpPacket(p) => Some(p.payload.to_vec()),
            _ => None,
        })
        .collect()
}

/// The latest NACK and PLI counts a client's outgoing streams reported, summed.
fn egress_feedback(client: &Client) -> (u64, u64) {
    let mut latest: HashMap<Mid, (u64, u64)> = HashMap::new();
    for event in &client.events {
        if let RtcEvent::MediaEgressStats(stats) = event {
            latest.insert(stats.mid, (stats.nacks, stats.plis));
        }
    }
    latest
        .values()
        .fold((0, 0), |(n, p), (nacks, plis)| (n + nacks, p + plis))
}

#[test]
fn on_a_lossy_reordering_path_nack_and_rtx_repair_the_video_and_keyframe_requests_get_through() {
    let mut net = Net::new();
    let (mid, _track) = publish_and_subscribe(&mut net);
    let pt = vp8_pt(&net, mid);
    send_frame(&mut net, mid, pt, 0, true);
    assert!(
        !received_payloads(&net.clients[1]).is_empty(),
        "the first keyframe arrived on the clean path"
    );
    let subscriber_mid = subscriber_mid(&net);
    let requests_before = keyframe_requests(&net);

    // 5% loss and 5% reordering on every path, both ways: the publisher's leg and the
    // subscriber's, media and RTCP alike. Four seconds of video, a keyframe every two; the
    // subscriber's decoder asks for a keyframe every second, as a browser's does after damage.
    net.impairment = Some(Impairment::new(0x5EED_F00D, 5, 5));
    let mut sent = Vec::new();
    for frame in 1..120u32 {
        sent.extend(send_frame(&mut net, mid, pt, frame, frame % 60 == 0));
        if frame % 30 == 15 {
            subscriber_asks_for_a_keyframe(&mut net, subscriber_mid);
        }
    }
    // Then a clean path, long enough for the last retransmissions and reports. A receiver
    // learns of a loss from the packets after it, so a few more frames follow.
    let impairment = net.impairment.take().expect("impaired");
    for frame in 120..125u32 {
        send_frame(&mut net, mid, pt, frame, false);
    }
    for _ in 0..1500 {
        net.tick();
    }
    assert!(
        impairment.dropped > 30 && impairment.reordered > 30,
        "the path lost {} and reordered {} datagrams",
        impairment.dropped,
        impairment.reordered
    );

    let received: HashSet<Vec<u8>> = received_payloads(&net.clients[1]).into_iter().collect();
    let missing = sent.iter().filter(|p| !received.contains(*p)).count();
    assert_eq!(
        missing,
        0,
        "every packet reached the subscriber, {} of them",
        sent.len()
    );
    let (nacks, plis) = egress_feedback(&net.clients[0]);
    assert!(nacks > 0, "the SFU asked the publisher to resend");
    assert!(
        plis > 0,
        "the subscriber's keyframe requests reached the publisher"
    );
    assert!(keyframe_requests(&net) > requests_before);
    let resent_by_sfu = net.clients[1]
        .events
        .iter()
        .any(|e| matches!(e, RtcEvent::MediaIngressStats(stats) if stats.nacks > 0));
    assert!(resent_by_sfu, "the subscriber asked the SFU to resend");
}

/// The m-line the subscriber (client 1) receives the track on.
fn subscriber_mid(net: &Net) -> Mid {
    net.clients[1]
        .events
        .iter()
        .find_map(|e| match e {
            RtcEvent::MediaAdded(added) => Some(added.mid),
            _ => None,
        })
        .expect("the subscriber's m-line")
}

/// The subscriber (client 1) sends a PLI, as a browser's decoder does after damage.
fn subscriber_asks_for_a_keyframe(net: &mut Net, mid: Mid) {
    let mut api = net.clients[1].rtc.direct_api();
    if let Some(rx) = api.stream_rx_by_mid(mid, None) {
        rx.request_keyframe(KeyframeRequestKind::Pli);
    }
}

/// How many keyframe requests the publisher (client 0) has received.
fn keyframe_requests(net: &Net) -> usize {
    net.clients[0]
        .events
        .iter()
        .filter(|e| matches!(e, RtcEvent::KeyframeRequest(_)))
        .count()
}

#[test]
fn a_viewers_keyframe_request_that_comes_too_soon_is_passed_on_later_not_dropped() {
    let mut net = Net::new();
    let (mid, _track) = publish_and_subscribe(&mut net);
    let pt = vp8_pt(&net, mid);
    // A second of video: whatever the SFU asked for the new subscriber is long past.
    for frame in 0..30u32 {
        send_frame(&mut net, mid, pt, frame, frame == 0);
    }
    let subscriber = subscriber_mid(&net);
    let before = keyframe_requests(&net);
    subscriber_asks_for_a_keyframe(&mut net, subscriber);
    send_frame(&mut net, mid, pt, 30, false);
    assert_eq!(keyframe_requests(&net), before + 1, "passed on at once");
    // No keyframe comes; the viewer asks again 100 ms later, within the interval.
    for frame in 31..34u32 {
        send_frame(&mut net, mid, pt, frame, false);
    }
    subscriber_asks_for_a_keyframe(&mut net, subscriber);
    send_frame(&mut net, mid, pt, 34, false);
    assert_eq!(
        keyframe_requests(&net),
        before + 1,
        "not sooner than the interval"
    );
    // Half a second after the first, the second goes.
    for frame in 35..50u32 {
        send_frame(&mut net, mid, pt, frame, false);
    }
    assert_eq!(
        keyframe_requests(&net),
        before + 2,
        "passed on when the interval was over"
    );
    // The viewer asks once more, too soon again, and a keyframe comes before the interval is
    // over: it answers the waiting request, which is not sent after it.
    subscriber_asks_for_a_keyframe(&mut net, subscriber);
    send_frame(&mut net, mid, pt, 50, false);
    send_frame(&mut net, mid, pt, 51, true);
    for frame in 52..80u32 {
        send_frame(&mut net, mid, pt, frame, false);
    }
    assert_eq!(
        keyframe_requests(&net),
        before + 2,
        "a keyframe answered the waiting one"
    );
}

#[test]
fn a_held_track_reaches_no_subscriber_until_released() {
    let mut net = Net::new();
    let (mid, track) = publish_and_subscribe(&mut net);
    let pt = vp8_pt(&net, mid);
    let received = |net: &Net| received_payloads(&net.clients[1]);
    for frame in 0..40u32 {
        send_frame(&mut net, mid, pt, frame, frame % 30 == 5);
    }
    let before = received(&net).len();
    assert!(before > 0, "media flows before the hold");

    net.engine.hold(track, true).expect("held");
    for frame in 40..100u32 {
        send_frame(&mut net, mid, pt, frame, frame % 30 == 5);
    }
    assert_eq!(
        received(&net).len(),
        before,
        "a held track is not forwarded"
    );

    net.engine.hold(track, false).expect("released");
    for frame in 100..160u32 {
        send_frame(&mut net, mid, pt, frame, frame % 30 == 5);
    }
    let after = received(&net);
    let resumed = after.get(before).expect("media resumes after the release");
    // The picture id is rewritten for continuity; the frame number after it is the publisher's.
    let frame = u32::from_be_bytes([resumed[5], resumed[6], resumed[7], resumed[8]]);
    assert!(frame >= 100, "resumed with a frame sent after the release");
    assert_eq!(resumed[4] & 0x01, 0, "and at a keyframe");
    assert!(matches!(
        net.engine.hold(TrackId(999), true),
        Err(SfuError::UnknownTrack(_))
    ));
}

#[test]
fn a_track_that_stops_sending_is_reported_stalled_and_then_flowing() {
    let mut net = Net::new();
    let (mid, track) = publish_and_subscribe(&mut net);
    let pt = vp8_pt(&net, mid);
    let stalls = |net: &Net| -> Vec<bool> {
        net.events
            .iter()
            .filter_map(|e| match e {
                Event::TrackStalled {
                    track: t, stalled, ..
                } if *t == track => Some(*stalled),
                _ => None,
            })
            .collect()
    };
    net.events.clear();
    for frame in 0..60u32 {
        send_frame(&mut net, mid, pt, frame, frame % 30 == 5);
    }
    assert!(stalls(&net).is_empty(), "a sending track is not stalled");
    // Three seconds without a packet (the connection stays up: ICE keeps checking).
    for _ in 0..3000 {
        net.tick();
    }
    assert_eq!(stalls(&net), vec![true]);
    send_frame(&mut net, mid, pt, 60, true);
    assert_eq!(stalls(&net), vec![true, false], "flowing again");
}

/// Connects an audio-only publisher (peer 1) and lets its connection come up.
fn connect_audio_publisher(net: &mut Net) -> Mid {
    let now = net.now;
    let mut publisher = Client::new("10.0.0.2:6000", now);
    let mut change = publisher.rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, pending) = change.apply().expect("offer");
    let answer = net
        .engine
        .publisher_offer(PeerId(1), offer, now)
        .expect("answer");
    publisher
        .rtc
        .sdp_api()
        .accept_answer(pending, answer)
        .expect("accepted");
    net.clients.push(publisher);
    for _ in 0..300 {
        net.tick();
    }
    mid
}

#[test]
fn garbage_and_strangers_are_counted_not_fatal() {
    let mut net = Net::new();
    connect_audio_publisher(&mut net);
    let stranger: SocketAddr = "10.9.9.9:1234".parse().expect("address");
    let local = net.engine.local_addr();
    net.engine.handle_datagram(net.now, stranger, local, &[]);
    net.engine.handle_datagram(
        net.now,
        stranger,
        local,
        &[0x80, 0x60, 0x00, 0x01, 0xde, 0xad],
    );
    net.engine
        .handle_datagram(net.now, stranger, local, b"GET / HTTP/1.1\r\n\r\n");
    assert!(net.engine.garbage_datagrams() >= 2);
    for _ in 0..100 {
        net.tick();
    }
    assert_eq!(net.engine.peer_count(), 1, "the real peer is still there");
    assert!(
        !net.events.iter().any(|e| matches!(e, Event::Closed { .. })),
        "nothing was closed"
    );

    // A malformed SDP offer fails that peer alone.
    let bad: Result<str0m::change::SdpOffer, _> =
        str0m::change::SdpOffer::from_sdp_string("v=0\r\nthis is not sdp\r\n");
    assert!(bad.is_err(), "str0m refuses it before the engine sees it");
    assert_eq!(net.engine.peer_count(), 1);
}

#[test]
fn a_silent_peer_is_removed() {
    let mut net = Net::new();
    let now = net.now;
    connect_audio_publisher(&mut net);
    assert!(
        net.events
            .iter()
            .any(|e| matches!(e, Event::Connected { peer: PeerId(1) })),
        "connected first"
    );

    // The client vanishes: nothing more arrives from it. Time goes on in 100 ms steps.
    net.clients.clear();
    let mut closed = None;
    for _ in 0..600 {
        net.now += Duration::from_millis(100);
        net.engine.handle_timeout(net.now);
        net.settle();
        closed = net.events.iter().find_map(|e| match e {
            Event::Closed { peer, reason } if *peer == PeerId(1) => Some(reason.clone()),
            _ => None,
        });
        if closed.is_some() {
            break;
        }
    }
    let silence = net.now.saturating_duration_since(now);
    assert!(closed.is_some(), "the silent peer was never removed");
    assert!(
        silence <= Duration::from_secs(40),
        "removed after {silence:?}"
    );
    assert_eq!(net.engine.peer_count(), 0);
}

#[test]
fn a_stopped_m_line_unpublishes_its_track_and_keeps_the_connection() {
    let mut net = Net::new();
    let mid = connect_audio_publisher(&mut net);
    let track = net.published_track().expect("published");

    // The client stops the m-line (a screen share ended) and offers again.
    let mut change = net.clients[0].rtc.sdp_api();
    change.stop_media(mid);
    let (offer, pending) = change.apply().expect("a re-offer");
    let now = net.now;
    let answer = net
        .engine
        .publisher_offer(PeerId(1), offer, now)
        .expect("answered");
    net.clients[0]
        .rtc
        .sdp_api()
        .accept_answer(pending, answer)
        .expect("accepted");
    for _ in 0..50 {
        net.tick();
    }
    assert!(
        net.events
            .iter()
            .any(|e| matches!(e, Event::TrackUnpublished { track: t, .. } if *t == track)),
        "the track ended"
    );
    assert_eq!(net.engine.peer_count(), 1, "the connection stays up");
    assert!(!net.events.iter().any(|e| matches!(e, Event::Closed { .. })));
    assert!(matches!(
        net.engine.add_tap(track, Quality::High, 8),
        Err(SfuError::UnknownTrack(_))
    ));
}

#[test]
fn taps_get_the_track_from_a_keyframe_with_sender_times_and_never_stall() {
    let mut net = Net::new();
    let mid = offer_video(&mut net);
    let mut track = None;
    for _ in 0..500 {
        net.tick();
        track = net.published_track();
        if track.is_some() {
            break;
        }
    }
    let track = track.expect("track published");
    for _ in 0..300 {
        net.tick();
    }
    let pt = vp8_pt(&net, mid);
    let mut tap = net
        .engine
        .add_tap(track, Quality::High, 4096)
        .expect("tap attached");
    // A consumer that never reads: its queue holds one packet.
    let slow = net
        .engine
        .add_tap(track, Quality::High, 1)
        .expect("slow tap attached");

    let start = net.now;
    let mut sent = Vec::new();
    for frame in 0..120u32 {
        sent.extend(send_frame(&mut net, mid, pt, frame, frame % 30 == 5));
    }
    let got: Vec<TapPacket> = std::iter::from_fn(|| tap.try_recv()).collect();
    assert!(!got.is_empty(), "the tap got media");
    assert!(got[0].keyframe, "a tap starts at a keyframe");
    let first = sent
        .iter()
        .position(|p| **p == *got[0].payload)
        .expect("the first tapped payload was sent");
    assert_eq!(
        got.len(),
        sent.len() - first,
        "nothing lost after the keyframe"
    );
    for (packet, want) in got.iter().zip(&sent[first..]) {
        assert_eq!(
            &*packet.payload,
            want.as_slice(),
            "payload handed over byte for byte"
        );
        assert_eq!(packet.track, track);
        assert_eq!(packet.codec, Codec::Vp8);
    }
    for pair in got.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "contiguous sequence numbers");
        assert!(pair[1].rtp_time >= pair[0].rtp_time);
    }
    assert_eq!(
        got.iter().filter(|p| p.marker).count(),
        got.len() / 3,
        "one marker per frame"
    );

    // Once a sender report arrived, every packet carries the publisher's wall-clock time of its
    // frame. Frame f was written at `start` + 33 ms × f; str0m maps Instants to wall time once
    // per process, so the same mapping read here is good to well under a millisecond.
    let wall = |at: Instant| -> SystemTime {
        let (now, system) = (Instant::now(), SystemTime::now());
        if at >= now {
            system + (at - now)
        } else {
            system - (now - at)
        }
    };
    let mut timed = 0;
    for packet in &got {
        let Some(sender_time) = packet.sender_time else {
            continue;
        };
        timed += 1;
        let frame = u32::from_be_bytes(packet.payload[5..9].try_into().expect("frame number"));
        let written = wall(start + Duration::from_millis(33 * u64::from(frame)));
        let error = sender_time
            .duration_since(written)
            .unwrap_or_else(|e| e.duration());
        assert!(
            error < Duration::from_millis(2),
            "frame {frame} off by {error:?}"
        );
    }
    assert!(timed > got.len() / 2, "sender reports arrived early");

    // The slow consumer lost packets, counted; forwarding to the other tap did not suffer.
    assert_eq!(slow.dropped() + 1, got.len() as u64);

    // A tap can ask the publisher for a keyframe (a recorder cutting a new file).
    let before = keyframe_requests(&net);
    tap.request_keyframe();
    for frame in 119..130 {
        send_frame(&mut net, mid, pt, frame, false);
    }
    assert_eq!(
        keyframe_requests(&net),
        before + 1,
        "the publisher was asked, once"
    );

    // A consumer that goes away is detached; a track that ends closes its taps.
    drop(slow);
    send_frame(&mut net, mid, pt, 130, false);
    net.engine.remove_peer(PeerId(1)).expect("removed");
    net.settle();
    while tap.try_recv().is_some() {}
    assert_eq!(tap.blocking_recv(), None, "the tap closed with its track");
}

/// How many RTP packets a client has received.
fn rtp_count(client: &Client) -> usize {
    client
        .events
        .iter()
        .filter(|e| matches!(e, RtcEvent::RtpPacket(_)))
        .count()
}

/// Moves client `index` to a new address: the old one goes dead.
fn move_client(net: &mut Net, index: usize, to: &str) {
    let to: SocketAddr = to.parse().expect("address");
    let client = &mut net.clients[index];
    net.dead.push(client.addr);
    client.addr = to;
    client
        .rtc
        .add_local_candidate(Candidate::host(to, "udp").expect("candidate"));
}

#[test]
fn ice_restarts_move_both_connections_to_a_new_network_path() {
    let mut net = Net::new();
    let (mid, _track) = publish_and_subscribe(&mut net);
    let pt = vp8_pt(&net, mid);
    for frame in 0..30u32 {
        send_frame(&mut net, mid, pt, frame, frame % 30 == 5);
    }
    assert!(
        rtp_count(&net.clients[1]) > 0,
        "media flows before the move"
    );

    // Both clients change networks. The publisher restarts ICE with a re-offer; the subscriber
    // asks the server, which restarts ICE in its next offer.
    move_client(&mut net, 0, "10.0.1.2:6001");
    move_client(&mut net, 1, "10.0.1.3:7001");
    let mut change = net.clients[0].rtc.sdp_api();
    change.ice_restart(true);
    let (offer, pending) = change.apply().expect("a restart offer");
    let now = net.now;
    let answer = net
        .engine
        .publisher_offer(PeerId(1), offer, now)
        .expect("the engine answers the restart");
    net.clients[0]
        .rtc
        .sdp_api()
        .accept_answer(pending, answer)
        .expect("accepted");
    net.engine.restart_ice(PeerId(2)).expect("restart asked");
    net.settle();
    let offer = net.take_offer(PeerId(2)).expect("a restart offer");
    assert!(
        matches!(
            net.engine.restart_ice(PeerId(1)),
            Err(SfuError::WrongRole(..))
        ),
        "publishers restart through their own offers"
    );
    let answer = net.clients[1]
        .rtc
        .sdp_api()
        .accept_offer(offer)
        .expect("the client answers");
    net.engine
        .accept_answer(PeerId(2), answer)
        .expect("answer accepted");
    for _ in 0..500 {
        net.tick();
    }

    // Media flows again, over the new addresses only, and the peers were never closed.
    let before = rtp_count(&net.clients[1]);
    for frame in 30..90u32 {
        send_frame(&mut net, mid, pt, frame, frame % 30 == 5);
    }
    assert!(
        rtp_count(&net.clients[1]) > before + 100,
        "media resumed on the new path"
    );
    assert!(!net.events.iter().any(|e| matches!(e, Event::Closed { .. })));
    assert_eq!(net.engine.peer_count(), 2);
}

/// The mids of an SDP's BUNDLE group.
fn bundle_mids(sdp: &str) -> Vec<String> {
    sdp.lines()
        .find_map(|line| line.strip_prefix("a=group:BUNDLE"))
        .map(|mids| mids.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The number of m-lines in an SDP.
fn m_lines(sdp: &str) -> usize {
    sdp.lines().filter(|line| line.starts_with("m=")).count()
}

/// The payload type of `codec` that the client at `addr` negotiated on its m-line `mid`.
fn negotiated_pt(net: &Net, addr: SocketAddr, mid: Mid, codec: Str0mCodec) -> Pt {
    let rtc = &net
        .clients
        .iter()
        .find(|c| c.addr == addr)
        .expect("client")
        .rtc;
    let remote = rtc.media(mid).expect("media").remote_pts().to_vec();
    rtc.codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == codec && remote.contains(&p.pt()))
        .map(|p| p.pt())
        .expect("codec negotiated")
}

/// Connects a publisher (peer `id`, a client at `addr` configured by `config`) offering one
/// send-only m-line per kind in `kinds`, and waits until the engine published every one; returns
/// the m-lines and the tracks, in the same order.
fn join(
    net: &mut Net,
    id: PeerId,
    addr: &str,
    config: RtcConfig,
    kinds: &[MediaKind],
) -> (Vec<Mid>, Vec<TrackId>) {
    let now = net.now;
    let mut client = Client::with(addr, now, config);
    let mut change = client.rtc.sdp_api();
    let mids: Vec<Mid> = kinds
        .iter()
        .map(|kind| change.add_media(*kind, Direction::SendOnly, None, None, None))
        .collect();
    let (offer, pending) = change.apply().expect("offer");
    let answer = net.engine.publisher_offer(id, offer, now).expect("answer");
    client
        .rtc
        .sdp_api()
        .accept_answer(pending, answer)
        .expect("accepted");
    net.clients.push(client);
    let published = |net: &Net| -> Vec<(String, TrackId)> {
        net.events
            .iter()
            .filter_map(|e| match e {
                Event::TrackPublished {
                    peer, track, mid, ..
                } if *peer == id => Some((mid.clone(), *track)),
                _ => None,
            })
            .collect()
    };
    for _ in 0..1000 {
        if published(net).len() == kinds.len() {
            break;
        }
        net.tick();
    }
    let published = published(net);
    let tracks = mids
        .iter()
        .map(|mid| {
            published
                .iter()
                .find(|(m, _)| *m == mid.to_string())
                .map(|(_, track)| *track)
                .expect("every m-line published")
        })
        .collect();
    (mids, tracks)
}

/// Takes a publisher away, as a client that leaves or loses its network does.
fn leave(net: &mut Net, id: PeerId, addr: &str) {
    let addr: SocketAddr = addr.parse().expect("address");
    net.engine.remove_peer(id).expect("removed");
    net.clients.retain(|c| c.addr != addr);
}

/// Lets the client at `addr` answer every offer the engine makes to its subscriber connection
/// `peer` until none is left; returns the offers' SDP.
fn answer_offers(net: &mut Net, peer: PeerId, addr: SocketAddr) -> Vec<String> {
    let mut offers = Vec::new();
    net.settle();
    while let Some(offer) = net.take_offer(peer) {
        offers.push(offer.to_sdp_string());
        let client = net
            .clients
            .iter_mut()
            .find(|c| c.addr == addr)
            .expect("subscriber client");
        let answer = client
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("the client takes the offer");
        net.engine
            .accept_answer(peer, answer)
            .expect("the engine takes the answer");
        net.settle();
    }
    offers
}

/// The encoding names an SDP maps payload types to (`a=rtpmap`), in order, without repeats.
fn rtpmap_codecs(sdp: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in sdp.lines() {
        let Some(map) = line.strip_prefix("a=rtpmap:") else {
            continue;
        };
        let name = map
            .split_whitespace()
            .nth(1)
            .and_then(|encoding| encoding.split('/').next())
            .unwrap_or_default()
            .to_owned();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[test]
fn a_track_is_offered_in_the_codecs_it_may_arrive_in_and_once_seen_in_its_own() {
    let mut net = Net::new();
    let now = net.now;
    // A publisher whose client has VP8 and H.264, so it may send either until its first packet.
    let (mids, tracks) = join(
        &mut net,
        PeerId(1),
        "10.0.0.2:6000",
        Rtc::builder()
            .clear_codecs()
            .enable_vp8(true)
            .enable_h264(true),
        &[MediaKind::Video],
    );
    let (mid, track) = (mids[0], tracks[0]);
    let early: SocketAddr = "10.0.0.3:7000".parse().expect("address");
    let late: SocketAddr = "10.0.0.4:7000".parse().expect("address");
    net.clients.push(Client::new("10.0.0.3:7000", now));
    net.clients.push(Client::new("10.0.0.4:7000", now));
    net.engine
        .add_subscriber(PeerId(2), now)
        .expect("subscriber");
    net.engine
        .subscribe(PeerId(2), track, Quality::High)
        .expect("subscribed");
    let offers = answer_offers(&mut net, PeerId(2), early);
    assert_eq!(offers.len(), 1);
    let mut offered = rtpmap_codecs(&offers[0]);
    offered.sort();
    assert_eq!(
        offered,
        ["H264", "VP8", "rtx"],
        "before its first packet: what the publisher negotiated, no VP9 or AV1"
    );

    // VP8 packets show the codec; a later subscriber is offered VP8 alone and gets the media.
    for _ in 0..500 {
        net.tick();
    }
    let addr: SocketAddr = "10.0.0.2:6000".parse().expect("address");
    let pt = negotiated_pt(&net, addr, mid, Str0mCodec::Vp8);
    for frame in 0..10u32 {
        send_frame(&mut net, mid, pt, frame, frame == 0);
    }
    net.engine
        .add_subscriber(PeerId(3), net.now)
        .expect("subscriber");
    net.engine
        .subscribe(PeerId(3), track, Quality::High)
        .expect("subscribed");
    let offers = answer_offers(&mut net, PeerId(3), late);
    assert_eq!(
        offers.iter().map(|o| rtpmap_codecs(o)).collect::<Vec<_>>(),
        vec![vec!["VP8".to_owned(), "rtx".to_owned()]]
    );
    for _ in 0..500 {
        net.tick();
    }
    let before = net
        .clients
        .iter()
        .map(|c| (c.addr, rtp_count(c)))
        .collect::<Vec<_>>();
    for frame in 10..40u32 {
        send_frame(&mut net, mid, pt, frame, frame == 10);
    }
    for (addr, count) in before {
        if addr == early || addr == late {
            let client = net.clients.iter().find(|c| c.addr == addr).expect("client");
            assert!(rtp_count(client) > count, "{addr} gets the VP8 track");
        }
    }
    assert!(
        !net.events
            .iter()
            .any(|e| matches!(e, Event::CodecUnsupported { .. } | Event::Closed { .. }))
    );
}

/// An H.264 payload: one NAL unit, IDR (a keyframe) or not, then bytes unique to the frame.
fn h264_payload(frame: u32, keyframe: bool) -> Vec<u8> {
    let mut payload = vec![if keyframe { 0x65 } else { 0x41 }];
    payload.extend(frame.to_be_bytes());
    payload.extend(std::iter::repeat_n((frame % 251) as u8, 200));
    payload
}

#[test]
fn a_subscriber_that_cannot_decode_the_tracks_codec_is_reported_and_sent_nothing() {
    let mut net = Net::new();
    let now = net.now;
    // An H.264-only camera (peer 1), a subscriber whose client has VP8 only (peer 2) and one
    // that has H.264 too (peer 3).
    let vp8_only = "10.0.0.3:7000".parse().expect("address");
    let any_codec = "10.0.0.4:7000".parse().expect("address");
    net.clients.push(Client::with(
        "10.0.0.3:7000",
        now,
        Rtc::builder().clear_codecs().enable_vp8(true),
    ));
    net.clients.push(Client::new("10.0.0.4:7000", now));
    net.engine
        .add_subscriber(PeerId(2), now)
        .expect("subscriber");
    net.engine
        .add_subscriber(PeerId(3), now)
        .expect("subscriber");
    let (mids, tracks) = join(
        &mut net,
        PeerId(1),
        "10.0.0.2:6000",
        Rtc::builder().clear_codecs().enable_h264(true),
        &[MediaKind::Video],
    );
    let (mid, track) = (mids[0], tracks[0]);
    for (peer, addr) in [(PeerId(2), vp8_only), (PeerId(3), any_codec)] {
        net.engine
            .subscribe(peer, track, Quality::High)
            .expect("subscribed");
        let offers = answer_offers(&mut net, peer, addr);
        assert_eq!(
            offers.iter().map(|o| rtpmap_codecs(o)).collect::<Vec<_>>(),
            vec![vec!["H264".to_owned(), "rtx".to_owned()]],
            "the m-line offers the track's own codec, not every one configured"
        );
    }
    let reports = |net: &Net| -> Vec<(PeerId, TrackId, Option<Codec>)> {
        net.events
            .iter()
            .filter_map(|e| match e {
                Event::CodecUnsupported { peer, track, codec } => Some((*peer, *track, *codec)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        reports(&net),
        vec![(PeerId(2), track, Some(Codec::H264))],
        "the VP8-only subscriber is reported as soon as its answer shows it"
    );
    for _ in 0..500 {
        net.tick();
    }

    let addr: SocketAddr = "10.0.0.2:6000".parse().expect("address");
    let pt = negotiated_pt(&net, addr, mid, Str0mCodec::H264);
    let publisher = net
        .clients
        .iter()
        .position(|c| c.addr == addr)
        .expect("publisher");
    for frame in 0..60u32 {
        let payload = h264_payload(frame, frame % 30 == 0);
        let now = net.now;
        let mut api = net.clients[publisher].rtc.direct_api();
        let stream = api.stream_tx_by_mid(mid, None).expect("send stream");
        stream.write_rtp(
            RtpWrite::new(
                pt,
                (500 + u64::from(frame)).into(),
                frame * 2970,
                now,
                payload,
            )
            .marker(true)
            .nackable(true),
        );
        for _ in 0..33 {
            net.tick();
        }
    }
    let client = |addr: SocketAddr| net.clients.iter().find(|c| c.addr == addr).expect("client");
    assert!(
        rtp_count(client(any_codec)) > 0,
        "a subscriber with H.264 gets the track"
    );
    assert_eq!(
        rtp_count(client(vp8_only)),
        0,
        "nothing is sent that the client would drop unseen"
    );
    assert_eq!(reports(&net).len(), 1, "reported once, not per packet");
    assert!(!net.events.iter().any(|e| matches!(e, Event::Closed { .. })));
}

#[test]
fn a_long_interview_recycles_the_subscribers_m_lines() {
    let mut net = Net::new();
    let now = net.now;
    // The interviewer's subscriber connection, and a second interviewer whose camera stays on
    // all along.
    let subscriber = PeerId(100);
    let watcher: SocketAddr = "10.0.0.100:7000".parse().expect("address");
    net.clients.push(Client::new("10.0.0.100:7000", now));
    net.engine
        .add_subscriber(subscriber, now)
        .expect("subscriber");
    let (_, steady) = join(
        &mut net,
        PeerId(1),
        "10.0.0.2:6000",
        Rtc::builder(),
        &[MediaKind::Video],
    );
    net.engine
        .subscribe(subscriber, steady[0], Quality::High)
        .expect("subscribed");
    let mut offers = answer_offers(&mut net, subscriber, watcher);
    let subscribe_all = |net: &mut Net, tracks: &[TrackId]| -> Vec<String> {
        for track in tracks {
            net.engine
                .subscribe(subscriber, *track, Quality::High)
                .expect("subscribed");
        }
        answer_offers(net, subscriber, watcher)
    };

    // The candidate's laptop (audio and video) joins and drops out thirty times.
    for round in 0..30u16 {
        let id = PeerId(1000 + u64::from(round));
        let addr = format!("10.0.1.{}:{}", round + 1, 6000 + round);
        let (_, tracks) = join(
            &mut net,
            id,
            &addr,
            Rtc::builder(),
            &[MediaKind::Audio, MediaKind::Video],
        );
        offers.extend(subscribe_all(&mut net, &tracks));
        leave(&mut net, id, &addr);
        offers.extend(answer_offers(&mut net, subscriber, watcher));
    }
    // It comes back, pairs its phone, and the phone re-pairs ten times.
    let laptop = "10.0.2.1:6000";
    let (laptop_mids, laptop_tracks) = join(
        &mut net,
        PeerId(3000),
        laptop,
        Rtc::builder(),
        &[MediaKind::Audio, MediaKind::Video],
    );
    offers.extend(subscribe_all(&mut net, &laptop_tracks));
    for round in 0..10u16 {
        let id = PeerId(4000 + u64::from(round));
        let addr = format!("10.0.3.{}:{}", round + 1, 8000 + round);
        let (_, tracks) = join(&mut net, id, &addr, Rtc::builder(), &[MediaKind::Video]);
        offers.extend(subscribe_all(&mut net, &tracks));
        leave(&mut net, id, &addr);
        offers.extend(answer_offers(&mut net, subscriber, watcher));
    }

    // At most one m-line per live track (here at most four: the steady camera, the laptop's two
    // and the phone), plus none left behind: every new track took a stopped slot at the end.
    let most = offers.iter().map(|sdp| m_lines(sdp)).max().unwrap_or(0);
    assert!(offers.len() > 80, "every join and leave renegotiated");
    assert!(most <= 4, "the SDP grew to {most} m-lines");
    for sdp in &offers {
        assert!(
            !bundle_mids(sdp).is_empty(),
            "an empty BUNDLE group:\n{sdp}"
        );
    }

    // Media still flows, on m-lines that were recycled.
    for _ in 0..500 {
        net.tick();
    }
    let before = rtp_count(
        net.clients
            .iter()
            .find(|c| c.addr == watcher)
            .expect("watcher"),
    );
    let addr: SocketAddr = laptop.parse().expect("address");
    let pt = negotiated_pt(&net, addr, laptop_mids[1], Str0mCodec::Vp8);
    let sender = net
        .clients
        .iter()
        .position(|c| c.addr == addr)
        .expect("laptop");
    // `send_frame` sends from client 0; make the laptop client 0.
    net.clients.swap(0, sender);
    for frame in 0..40u32 {
        send_frame(&mut net, laptop_mids[1], pt, frame, frame % 30 == 0);
    }
    let after = rtp_count(
        net.clients
            .iter()
            .find(|c| c.addr == watcher)
            .expect("watcher"),
    );
    assert!(after > before, "the laptop's video reaches the interviewer");

    // When every camera is gone, the first m-line stays in the BUNDLE group.
    leave(&mut net, PeerId(3000), laptop);
    leave(&mut net, PeerId(1), "10.0.0.2:6000");
    let last = answer_offers(&mut net, subscriber, watcher);
    let sdp = last.last().expect("a final offer");
    assert!(
        !bundle_mids(sdp).is_empty(),
        "an empty BUNDLE group:\n{sdp}"
    );
    assert!(
        !net.events
            .iter()
            .any(|e| matches!(e, Event::Closed { peer, .. } if *peer == subscriber))
    );
}

#[test]
fn a_subscriber_past_its_stopped_line_limit_is_asked_to_be_renewed_once() {
    for limit in [0, 1] {
        let mut net = Net::new();
        net.engine.set_stopped_line_limit(limit);
        let now = net.now;
        let subscriber = PeerId(100);
        let watcher: SocketAddr = "10.0.0.100:7000".parse().expect("address");
        net.clients.push(Client::new("10.0.0.100:7000", now));
        net.engine
            .add_subscriber(subscriber, now)
            .expect("subscriber");
        let kinds = [MediaKind::Audio, MediaKind::Video];
        // Two publishers in turn, each with a microphone and a camera: the watcher's m-lines
        // are the first one's two, then the second one's.
        for (id, addr) in [(PeerId(1), "10.0.0.2:6000"), (PeerId(2), "10.0.0.3:6000")] {
            let (_, tracks) = join(&mut net, id, addr, Rtc::builder(), &kinds);
            for track in tracks {
                net.engine
                    .subscribe(subscriber, track, Quality::High)
                    .expect("subscribed");
            }
            answer_offers(&mut net, subscriber, watcher);
        }
        let renewals = |net: &Net| -> Vec<(PeerId, usize)> {
            net.events
                .iter()
                .filter_map(|e| match e {
                    Event::RenewSubscriber { peer, stopped } => Some((*peer, *stopped)),
                    _ => None,
                })
                .collect()
        };
        assert!(renewals(&net).is_empty());

        // The first publisher leaves: its first m-line stays (inactive, as the BUNDLE anchor)
        // and its second stops ahead of live ones.
        leave(&mut net, PeerId(1), "10.0.0.2:6000");
        answer_offers(&mut net, subscriber, watcher);
        let expected = if limit == 0 {
            vec![(subscriber, 1)]
        } else {
            Vec::new()
        };
        assert_eq!(renewals(&net), expected, "limit {limit}");
        // A third publisher comes and goes (its lines are last: recycled, never counted); the
        // renewal is still asked for once at most.
        let (_, tracks) = join(&mut net, PeerId(3), "10.0.0.4:6000", Rtc::builder(), &kinds);
        for track in tracks {
            net.engine
                .subscribe(subscriber, track, Quality::High)
                .expect("subscribed");
        }
        answer_offers(&mut net, subscriber, watcher);
        leave(&mut net, PeerId(3), "10.0.0.4:6000");
        answer_offers(&mut net, subscriber, watcher);
        assert_eq!(renewals(&net), expected, "limit {limit}");
    }
}

#[test]
fn an_answer_to_another_connections_offer_is_refused_and_changes_nothing() {
    let mut net = Net::new();
    let now = net.now;
    let (_, tracks) = join(
        &mut net,
        PeerId(1),
        "10.0.0.2:6000",
        Rtc::builder(),
        &[MediaKind::Video],
    );
    // Two subscriber connections of the same client, as before and after a renewal.
    let mut old = Client::new("10.0.0.3:7000", now);
    let mut new = Client::new("10.0.0.4:7000", now);
    for peer in [PeerId(2), PeerId(3)] {
        net.engine.add_subscriber(peer, now).expect("subscriber");
        net.engine
            .subscribe(peer, tracks[0], Quality::High)
            .expect("subscribed");
    }
    net.settle();
    let old_offer = net.take_offer(PeerId(2)).expect("an offer");
    let new_offer = net.take_offer(PeerId(3)).expect("an offer");
    let stale = old.rtc.sdp_api().accept_offer(old_offer).expect("answered");
    let fresh = new.rtc.sdp_api().accept_offer(new_offer).expect("answered");

    assert!(matches!(
        net.engine.accept_answer(PeerId(3), stale),
        Err(SfuError::StaleAnswer(PeerId(3)))
    ));
    net.engine
        .accept_answer(PeerId(3), fresh)
        .expect("its own answer still takes");
    assert!(!net.events.iter().any(|e| matches!(e, Event::Closed { .. })));
}

/// Properties under arbitrary input, bounded and seeded so they run with the other tests.
mod properties {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};
    use sightline_sfu::sdp;

    use super::*;

    fn config(cases: u32) -> Config {
        Config {
            cases,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(20_261_202),
            ..Config::default()
        }
    }

    /// A datagram from a connected publisher: random bytes, or bytes that start like RTP, RTCP,
    /// STUN or DTLS so that str0m's demultiplexer takes them down each of its paths.
    fn datagram() -> impl Strategy<Value = Vec<u8>> {
        let body = prop::collection::vec(any::<u8>(), 0..1200);
        prop_oneof![
            body.clone(),
            body.clone().prop_map(|mut b| {
                b.splice(0..0, [0x80, 0x60]);
                b
            }),
            body.clone().prop_map(|mut b| {
                b.splice(0..0, [0x81, 0xc8]);
                b
            }),
            body.clone().prop_map(|mut b| {
                b.splice(0..0, [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]);
                b
            }),
            body.prop_map(|mut b| {
                b.splice(0..0, [0x16, 0xfe, 0xfd]);
                b
            }),
        ]
    }

    /// One edit of a text: a byte flipped, a span deleted, or a line duplicated.
    #[derive(Debug, Clone)]
    enum Edit {
        Flip(usize, u8),
        Delete(usize, usize),
        Duplicate(usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Flip(at, byte)),
            (any::<usize>(), 0..40usize).prop_map(|(at, len)| Edit::Delete(at, len)),
            any::<usize>().prop_map(Edit::Duplicate),
        ]
    }

    fn mutate(sdp: &str, edits: &[Edit]) -> String {
        let mut bytes = sdp.as_bytes().to_vec();
        for edit in edits {
            if bytes.is_empty() {
                break;
            }
            match *edit {
                Edit::Flip(at, byte) => {
                    let at = at % bytes.len();
                    bytes[at] = byte;
                }
                Edit::Delete(at, len) => {
                    let at = at % bytes.len();
                    let end = (at + len).min(bytes.len());
                    bytes.drain(at..end);
                }
                Edit::Duplicate(line) => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    let lines: Vec<&str> = text.split("\r\n").collect();
                    let line = lines[line % lines.len()];
                    bytes.extend_from_slice(format!("{line}\r\n").as_bytes());
                }
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    proptest! {
        #![proptest_config(config(16))]

        #[test]
        fn whatever_a_connected_publisher_sends_the_engine_survives(
            datagrams in prop::collection::vec(datagram(), 1..48),
        ) {
            let mut net = Net::new();
            let (mid, _) = publish_and_subscribe(&mut net);
            let publisher = net.clients[0].addr;
            let local = net.engine.local_addr();
            for data in &datagrams {
                net.engine.handle_datagram(net.now, publisher, local, data);
                net.tick();
            }
            // The engine still forwards: a keyframe sent now reaches the subscriber, unless the
            // garbage made str0m close the publisher's connection, which then is reported.
            let closed = net
                .events
                .iter()
                .any(|e| matches!(e, Event::Closed { peer, .. } if *peer == PeerId(1)));
            if !closed {
                let before = rtp_count(&net.clients[1]);
                let pt = vp8_pt(&net, mid);
                for frame in 0..5 {
                    send_frame(&mut net, mid, pt, 10_000 + frame, frame == 0);
                }
                prop_assert!(rtp_count(&net.clients[1]) > before, "forwarding stopped");
            }
            prop_assert!(net.engine.peer_count() >= 1);
        }

        #[test]
        fn a_mangled_offer_is_refused_or_answered_never_a_panic(
            edits in prop::collection::vec(edit(), 1..6),
        ) {
            let now = Instant::now();
            let mut client = Client::new("10.0.0.2:6000", now);
            let mut change = client.rtc.sdp_api();
            change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
            change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
            let (offer, _) = change.apply().expect("offer");
            let text = mutate(&offer.to_sdp_string(), &edits);
            let mut engine = Engine::new("10.0.0.1:5000".parse().expect("address"), &[], now);
            if let Ok(offer) = sdp::parse_offer(&text) {
                let _ = engine.publisher_offer(PeerId(1), offer, now);
            }
            // Whatever became of that offer, the engine takes the next one.
            let mut other = Client::new("10.0.0.3:6000", now);
            let mut change = other.rtc.sdp_api();
            change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
            let (good, _) = change.apply().expect("offer");
            prop_assert!(engine.publisher_offer(PeerId(2), good, now).is_ok());
        }
    }
}
