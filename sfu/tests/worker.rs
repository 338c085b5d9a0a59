//! A worker thread with a real UDP socket on 127.0.0.1, and real str0m clients with sockets of
//! their own: media published by one client reaches the other through the worker. Every wait is
//! bounded; nothing asserts on timing.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sightline_sfu::{Event, PeerId, Quality, WorkerConfig, WorkerEvent, WorkerHandle};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec as Str0mCodec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event as RtcEvent, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(20);
const FRAMES: u32 = 60;

struct Client {
    rtc: Rtc,
    socket: UdpSocket,
    addr: SocketAddr,
    events: Vec<RtcEvent>,
}

impl Client {
    async fn new() -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
        let addr = socket.local_addr().expect("client address");
        let mut rtc = Rtc::builder().set_rtp_mode(true).build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        Client {
            rtc,
            socket,
            addr,
            events: Vec::new(),
        }
    }

    /// Sends what the client has to send; returns when it next wants time.
    fn drive(&mut self) -> Instant {
        loop {
            match self.rtc.poll_output().expect("client poll") {
                Output::Transmit(t) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(event) => self.events.push(event),
                Output::Timeout(at) => return at,
            }
        }
    }

    fn receive(&mut self, source: SocketAddr, data: &[u8]) {
        let Ok(contents) = data.try_into() else {
            return;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.addr,
                contents,
            },
        );
        self.rtc.handle_input(input).expect("client input");
    }

    fn connected(&self) -> bool {
        self.events.iter().any(|e| matches!(e, RtcEvent::Connected))
    }
}

fn vp8_payload(frame: u32) -> Vec<u8> {
    let keyframe = frame % 15 == 3;
    let mut payload = vec![0x90, 0x80, 0x80, (frame & 0x7F) as u8, u8::from(!keyframe)];
    payload.extend(frame.to_be_bytes());
    payload.extend(std::iter::repeat_n(0xAB, 300));
    payload
}

#[tokio::test(flavor = "current_thread")]
async fn media_flows_through_a_worker_over_real_udp() {
    media_flows_through(WorkerConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        public_ips: Vec::new(),
        bandwidth_estimation: false,
        stopped_line_limit: sightline_sfu::DEFAULT_STOPPED_LINE_LIMIT,
    })
    .await;
}

/// Bound to every address (as for phones on the LAN) and advertising two, the worker must match
/// each datagram to the address it reached and answer from that one: the clients here are told
/// only of the second address.
#[tokio::test(flavor = "current_thread")]
async fn media_flows_through_a_worker_bound_to_every_address() {
    media_flows_through(WorkerConfig {
        bind: "0.0.0.0:0".parse().expect("address"),
        public_ips: vec![
            "127.0.0.1".parse().expect("address"),
            "127.0.0.2".parse().expect("address"),
        ],
        bandwidth_estimation: false,
        stopped_line_limit: sightline_sfu::DEFAULT_STOPPED_LINE_LIMIT,
    })
    .await;
}

/// The SDP with only the candidates of the last advertised address: what a client on one
/// network would be able to reach.
fn reachable_candidates_only(sdp: String, config: &WorkerConfig) -> String {
    let Some(last) = config.public_ips.last() else {
        return sdp;
    };
    let keep = format!(" {last} ");
    sdp.split_inclusive("\r\n")
        .filter(|line| !line.starts_with("a=candidate:") || line.contains(&keep))
        .collect()
}

async fn media_flows_through(config: WorkerConfig) {
    let reachable = config.clone();
    // Room for one event: signaling slower than the worker. Every event must still arrive (the
    // track, the offer), in order, for media to flow.
    let (events_tx, mut events) = mpsc::channel::<WorkerEvent>(1);
    let (worker, thread) = WorkerHandle::spawn(0, config, events_tx).expect("worker");

    let mut publisher = Client::new().await;
    let mut change = publisher.rtc.sdp_api();
    let mid: Mid = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = change.apply().expect("offer");
    let answer = worker
        .publisher_offer(PeerId(1), offer)
        .await
        .expect("answer");
    let answer = SdpAnswer::from_sdp_string(&reachable_candidates_only(
        answer.to_sdp_string(),
        &reachable,
    ))
    .expect("answer still parses");
    publisher
        .rtc
        .sdp_api()
        .accept_answer(pending, answer)
        .expect("accepted");
    let mut subscriber = Client::new().await;
    worker.add_subscriber(PeerId(2)).await.expect("subscriber");

    let started = Instant::now();
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut next_frame = Instant::now();
    let mut pub_buf = vec![0u8; 2048];
    let mut sub_buf = vec![0u8; 2048];
    while started.elapsed() < DEADLINE && sent.len() < FRAMES as usize {
        while let Ok(WorkerEvent { event, .. }) = events.try_recv() {
            match event {
                Event::TrackPublished { track, .. } => {
                    worker
                        .subscribe(PeerId(2), track, Quality::High)
                        .await
                        .expect("subscribed");
                }
                Event::Offer { peer, offer } => {
                    let offer = SdpOffer::from_sdp_string(&reachable_candidates_only(
                        offer.to_sdp_string(),
                        &reachable,
                    ))
                    .expect("offer still parses");
                    let answer = subscriber
                        .rtc
                        .sdp_api()
                        .accept_offer(offer)
                        .expect("client answers");
                    worker.accept_answer(peer, answer).await.expect("answered");
                }
                _ => {}
            }
        }
        if publisher.connected() && subscriber.connected() && Instant::now() >= next_frame {
            let frame = sent.len() as u32;
            let payload = vp8_payload(frame);
            let pt = {
                let rtc = &publisher.rtc;
                let remote = rtc.media(mid).expect("media").remote_pts().to_vec();
                rtc.codec_config()
                    .params()
                    .iter()
                    .find(|p| p.spec().codec == Str0mCodec::Vp8 && remote.contains(&p.pt()))
                    .map(|p| p.pt())
                    .expect("VP8")
            };
            let mut api = publisher.rtc.direct_api();
            if let Some(stream) = api.stream_tx_by_mid(mid, None) {
                stream.write_rtp(
                    RtpWrite::new(
                        pt,
                        (7 + u64::from(frame)).into(),
                        frame * 3000,
                        Instant::now(),
                        payload.clone(),
                    )
                    .marker(true)
                    .nackable(true),
                );
                sent.push(payload);
            }
            next_frame += Duration::from_millis(33);
        }
        let wake = publisher.drive().min(subscriber.drive()).min(next_frame);
        let sleep = wake
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(20));
        tokio::select! {
            got = publisher.socket.recv_from(&mut pub_buf) => {
                if let Ok((len, source)) = got {
                    publisher.receive(source, &pub_buf[..len]);
                }
            }
            got = subscriber.socket.recv_from(&mut sub_buf) => {
                if let Ok((len, source)) = got {
                    subscriber.receive(source, &sub_buf[..len]);
                }
            }
            () = tokio::time::sleep(sleep) => {}
        }
        let now = Instant::now();
        publisher
            .rtc
            .handle_input(Input::Timeout(now))
            .expect("timeout");
        subscriber
            .rtc
            .handle_input(Input::Timeout(now))
            .expect("timeout");
    }
    // Let the last packets arrive.
    let tail = Instant::now();
    while tail.elapsed() < Duration::from_millis(300) {
        subscriber.drive();
        publisher.drive();
        tokio::select! {
            got = subscriber.socket.recv_from(&mut sub_buf) => {
                if let Ok((len, source)) = got {
                    subscriber.receive(source, &sub_buf[..len]);
                }
            }
            got = publisher.socket.recv_from(&mut pub_buf) => {
                if let Ok((len, source)) = got {
                    publisher.receive(source, &pub_buf[..len]);
                }
            }
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }

    assert_eq!(
        sent.len(),
        FRAMES as usize,
        "both clients connected and media was sent"
    );
    let received: Vec<(u64, Vec<u8>)> = subscriber
        .events
        .iter()
        .filter_map(|e| match e {
            RtcEvent::RtpPacket(p) => Some((*p.seq_no, p.payload.to_vec())),
            _ => None,
        })
        .collect();
    assert!(
        received.len() >= 30,
        "the subscriber got media: {}",
        received.len()
    );
    let first = sent
        .iter()
        .position(|p| *p == received[0].1)
        .expect("received what was sent");
    assert_eq!(sent[first][4], 0, "starts at a keyframe");
    for ((_, got), want) in received.iter().zip(&sent[first..]) {
        assert_eq!(got, want, "byte for byte");
    }
    for pair in received.windows(2) {
        assert_eq!(pair[1].0, pair[0].0 + 1, "contiguous sequence numbers");
    }
    let stats = worker.stats();
    assert!(stats.datagrams_in.load(Ordering::Relaxed) > 0);
    assert!(
        stats.forwarding.snapshot().count() >= received.len() as u64,
        "every forwarded packet's time in the worker is recorded"
    );

    drop(worker);
    thread
        .join()
        .expect("worker thread ends when its handles are dropped");
}
