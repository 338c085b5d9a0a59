//! The SFU engine's whole per-datagram path, as a worker runs it: one SRTP datagram from a
//! publisher handed to `Engine::handle_datagram` (demux by source address, SRTP decryption,
//! forwarding to N subscribers through their `DownTrack`s, SRTP encryption) and the engine
//! drained until it waits (`poll_output`, which also finds the next timer). Real str0m peers in
//! virtual time, as in `sfu/tests/engine.rs`; no sockets.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sightline_sfu::{Engine, Event, Output, PeerId, Quality};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Input, Output as RtcOutput, Rtc};

/// A datagram: source, destination, contents.
type Datagram = (SocketAddr, SocketAddr, Vec<u8>);

struct Client {
    rtc: Rtc,
    addr: SocketAddr,
}

impl Client {
    fn new(addr: SocketAddr, now: Instant) -> Client {
        let mut rtc = Rtc::builder().set_rtp_mode(true).build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        Client { rtc, addr }
    }

    /// Polls until the client waits; returns what it sends.
    fn drain(&mut self, out: &mut Vec<Datagram>) {
        while let Ok(output) = self.rtc.poll_output() {
            match output {
                RtcOutput::Transmit(t) => out.push((t.source, t.destination, t.contents.to_vec())),
                RtcOutput::Event(_) => {}
                RtcOutput::Timeout(_) => return,
            }
        }
    }
}

/// The engine with one video publisher and `n` subscribers to its track, all connected.
struct Room {
    now: Instant,
    engine: Engine,
    publisher: Client,
    subscribers: Vec<Client>,
    mid: Mid,
    pt: Pt,
    seq: u64,
    /// What the publisher sent besides the measured packets (STUN, RTCP), for the next step.
    pending: Vec<Datagram>,
}

impl Room {
    fn new(n: usize) -> Room {
        let now = Instant::now();
        let mut engine = Engine::new("10.0.0.1:5000".parse().expect("address"), &[], now);
        let mut publisher = Client::new("10.0.1.1:6000".parse().expect("address"), now);
        let mut change = publisher.rtc.sdp_api();
        let mid = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = change.apply().expect("offer");
        let answer = engine
            .publisher_offer(PeerId(1), offer, now)
            .expect("answer");
        publisher
            .rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("accepted");
        let subscribers = (0..n)
            .map(|i| {
                let addr = SocketAddr::from(([10, 0, 2, (i + 1) as u8], 7000));
                engine
                    .add_subscriber(PeerId(10 + i as u64), now)
                    .expect("subscriber");
                Client::new(addr, now)
            })
            .collect();
        let mut room = Room {
            now,
            engine,
            publisher,
            subscribers,
            mid,
            pt: Pt::from(0),
            seq: 0,
            pending: Vec::new(),
        };
        let mut track = None;
        for _ in 0..2_000 {
            for event in room.step(Duration::from_millis(1)) {
                match event {
                    Event::TrackPublished { track: t, .. } => track = Some(t),
                    Event::Offer { peer, offer } => {
                        let client = &mut room.subscribers[(peer.0 - 10) as usize];
                        let answer = client.rtc.sdp_api().accept_offer(offer).expect("answer");
                        room.engine.accept_answer(peer, answer).expect("taken");
                    }
                    _ => {}
                }
            }
            if let Some(t) = track.take() {
                for i in 0..n {
                    room.engine
                        .subscribe(PeerId(10 + i as u64), t, Quality::High)
                        .expect("subscribed");
                }
            }
        }
        let rtc = &room.publisher.rtc;
        let remote = rtc.media(mid).expect("media").remote_pts().to_vec();
        room.pt = rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.spec().codec == Codec::Vp8 && remote.contains(&p.pt()))
            .map(|p| p.pt())
            .expect("VP8 negotiated");
        room
    }

    fn deliver(&mut self, (source, destination, data): Datagram) {
        if destination == self.engine.local_addr() {
            self.engine
                .handle_datagram(self.now, source, destination, &data);
            return;
        }
        let Some(client) = std::iter::once(&mut self.publisher)
            .chain(self.subscribers.iter_mut())
            .find(|c| c.addr == destination)
        else {
            return;
        };
        let Ok(contents) = data.as_slice().try_into() else {
            return;
        };
        let input = Input::Receive(
            self.now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        if client.rtc.handle_input(input).is_ok() {
            let mut replies = Vec::new();
            client.drain(&mut replies);
            for reply in replies {
                self.engine
                    .handle_datagram(self.now, reply.0, reply.1, &reply.2);
            }
        }
    }

    /// Advances virtual time and moves every datagram until everyone waits; returns the events.
    fn step(&mut self, by: Duration) -> Vec<Event> {
        self.now += by;
        self.engine.handle_timeout(self.now);
        let mut events = Vec::new();
        for _ in 0..50 {
            let mut moving = std::mem::take(&mut self.pending);
            for client in std::iter::once(&mut self.publisher).chain(self.subscribers.iter_mut()) {
                let _ = client.rtc.handle_input(Input::Timeout(self.now));
                client.drain(&mut moving);
            }
            loop {
                match self.engine.poll_output() {
                    Output::Transmit(t) => {
                        moving.push((t.source, t.destination, t.contents.to_vec()))
                    }
                    Output::Event(event) => events.push(event),
                    Output::Timeout(_) => break,
                }
            }
            if moving.is_empty() {
                break;
            }
            for datagram in moving {
                self.deliver(datagram);
            }
        }
        events
    }

    /// The publisher's next SRTP datagram of a 1,100-byte video packet (a keyframe every 300).
    fn next_datagram(&mut self) -> Datagram {
        self.now += Duration::from_micros(500);
        let seq = self.seq;
        self.seq += 1;
        let mut payload = vec![0x90, 0x80, 0x80 | ((seq >> 8) & 0x7F) as u8, seq as u8];
        if seq.is_multiple_of(300) {
            // A keyframe's VP8 header: P bit clear, then the start code.
            payload.extend([0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a]);
        } else {
            payload.push(0x01);
        }
        payload.resize(1_100, (seq % 251) as u8);
        let mut api = self.publisher.rtc.direct_api();
        let stream = api.stream_tx_by_mid(self.mid, None).expect("send stream");
        stream.write_rtp(
            RtpWrite::new(
                self.pt,
                (1_000 + seq).into(),
                (seq * 900) as u32,
                self.now,
                payload,
            )
            .marker(true)
            .nackable(true),
        );
        let _ = self.publisher.rtc.handle_input(Input::Timeout(self.now));
        let mut out = Vec::new();
        self.publisher.drain(&mut out);
        let media = out
            .iter()
            .rposition(|d| d.1 == self.engine.local_addr() && d.2.len() > 1_000)
            .expect("the packet left the publisher");
        let datagram = out.swap_remove(media);
        self.pending.extend(out);
        datagram
    }
}

fn datagram_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_datagram");
    // (subscribers of the track, other peer connections on the same worker): a worker hosts
    // many rooms, and whatever the engine does per datagram for every peer shows in the last.
    for (subscribers, bystanders) in [(1usize, 0u64), (3, 0), (9, 0), (3, 200)] {
        let mut room = Room::new(subscribers);
        for n in 0..bystanders {
            room.engine
                .add_subscriber(PeerId(1_000 + n), room.now)
                .expect("a bystander");
        }
        group.throughput(Throughput::Elements(subscribers as u64));
        let id = format!("{subscribers}_subscribers_{bystanders}_other_peers");
        group.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter_custom(|iters| {
                // Fresh packets (SRTP refuses a replayed one), made before the clock starts; every
                // 50 ms of them the peers exchange what they have (STUN, RTCP), so the
                // connections stay up however many there are.
                let datagrams: Vec<(Instant, Datagram)> = (0..iters)
                    .map(|n| {
                        if n % 100 == 99 {
                            room.step(Duration::ZERO);
                        }
                        let datagram = room.next_datagram();
                        (room.now, datagram)
                    })
                    .collect();
                let started = Instant::now();
                let mut sent = 0u64;
                for (at, (source, destination, data)) in &datagrams {
                    room.engine
                        .handle_datagram(*at, *source, *destination, data);
                    loop {
                        match room.engine.poll_output() {
                            Output::Transmit(t) => {
                                sent += 1;
                                std::hint::black_box(t);
                            }
                            Output::Event(_) => {}
                            Output::Timeout(_) => break,
                        }
                    }
                }
                let elapsed = started.elapsed();
                assert!(
                    sent >= iters,
                    "the engine forwarded the packets: {sent} of {iters}"
                );
                room.step(Duration::ZERO);
                elapsed
            });
        });
    }
    group.finish();
}

criterion_group!(benches, datagram_path);
criterion_main!(benches);
