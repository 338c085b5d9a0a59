//! A worker thread with a real UDP socket on 127.0.0.1, and real str0m clients with sockets of
//! their own: media published by one client reaches the other through the worker. Every wait is
//! bounded; nothing asserts on timing.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sightline_sfu::{Event, PeerId, Quality, TcpConfig, WorkerConfig, WorkerEvent, WorkerHandle};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec as Str0mCodec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event as RtcEvent, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(20);
/// How long the worker waits for an ICE-TCP connection's first frame (`sfu/src/tcp.rs`).
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(5);
const FRAMES: u32 = 60;

/// How a test client reaches the worker.
enum Link {
    Udp(UdpSocket),
    /// One ICE-TCP connection to the worker, RFC 4571 framed: what is to be written, and what
    /// was read but is not a whole frame yet.
    Tcp {
        stream: TcpStream,
        server: SocketAddr,
        outgoing: Vec<u8>,
        incoming: Vec<u8>,
    },
}

struct Client {
    rtc: Rtc,
    link: Link,
    addr: SocketAddr,
    events: Vec<RtcEvent>,
    /// Drops this share of the datagrams the client sends and receives once connected (a lossy
    /// UDP link; the handshakes are not what is tested).
    loss: Option<LossyLink>,
    /// Whether ICE and DTLS completed.
    up: bool,
}

/// Seeded random loss on a client's link (which datagrams are dropped still depends on timing:
/// retransmissions and reports change their order).
struct LossyLink {
    /// Percent of the datagrams the client sends that are lost.
    send: u64,
    /// Percent of the datagrams sent to the client that are lost.
    receive: u64,
    state: u64,
    dropped: u64,
}

impl LossyLink {
    fn new((send, receive): (u64, u64), seed: u64) -> LossyLink {
        LossyLink {
            send,
            receive,
            state: seed | 1,
            dropped: 0,
        }
    }

    /// Whether the next datagram is lost, with `percent` chance (xorshift64).
    fn drops(&mut self, percent: u64) -> bool {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let lost = self.state % 100 < percent;
        self.dropped += u64::from(lost);
        lost
    }

    fn drops_sent(&mut self) -> bool {
        self.drops(self.send)
    }

    fn drops_received(&mut self) -> bool {
        self.drops(self.receive)
    }
}

impl Client {
    async fn new() -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
        let addr = socket.local_addr().expect("client address");
        let mut rtc = client_rtc();
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        Client {
            rtc,
            link: Link::Udp(socket),
            addr,
            events: Vec::new(),
            loss: None,
            up: false,
        }
    }

    /// A UDP client whose link loses (what it sends, what it receives), in percent.
    async fn lossy(loss: (u64, u64), seed: u64) -> Client {
        let mut client = Client::new().await;
        client.loss = Some(LossyLink::new(loss, seed));
        client
    }

    /// A client whose only way to the worker is a TCP connection to `server` (an active TCP
    /// candidate, as a browser without UDP has).
    async fn over_tcp(server: SocketAddr) -> Client {
        let stream = TcpStream::connect(server).await.expect("connects");
        stream.set_nodelay(true).expect("nodelay");
        let addr = stream.local_addr().expect("client address");
        let mut rtc = client_rtc();
        let candidate = Candidate::builder()
            .tcp()
            .host(addr)
            .tcptype(TcpType::Active)
            .build()
            .expect("candidate");
        rtc.add_local_candidate(candidate);
        Client {
            rtc,
            link: Link::Tcp {
                stream,
                server,
                outgoing: Vec::new(),
                incoming: Vec::new(),
            },
            addr,
            events: Vec::new(),
            loss: None,
            up: false,
        }
    }

    /// Sends what the client has to send (TCP: queues it); returns when it next wants time.
    fn drive(&mut self) -> Instant {
        loop {
            match self.rtc.poll_output().expect("client poll") {
                Output::Transmit(t) => match &mut self.link {
                    Link::Udp(_)
                        if self.up && self.loss.as_mut().is_some_and(LossyLink::drops_sent) => {}
                    Link::Udp(socket) => {
                        let _ = socket.try_send_to(&t.contents, t.destination);
                    }
                    Link::Tcp { outgoing, .. } => {
                        let len = u16::try_from(t.contents.len()).expect("fits a frame");
                        outgoing.extend(len.to_be_bytes());
                        outgoing.extend_from_slice(&t.contents);
                    }
                },
                Output::Event(event) => {
                    self.up |= matches!(event, RtcEvent::Connected);
                    self.events.push(event);
                }
                Output::Timeout(at) => return at,
            }
        }
    }

    /// Writes what `drive` queued for TCP, in pieces of 100 bytes so that frames reach the
    /// worker split across reads.
    async fn flush(&mut self) {
        if let Link::Tcp {
            stream, outgoing, ..
        } = &mut self.link
        {
            for piece in outgoing.chunks(100) {
                stream.write_all(piece).await.expect("written");
            }
            outgoing.clear();
        }
    }

    /// Waits for what arrives next and hands it to str0m: a datagram, or every whole frame read.
    async fn read(&mut self, buffer: &mut [u8]) {
        let mut arrived = Vec::new();
        match &mut self.link {
            Link::Udp(socket) => {
                if let Ok((len, source)) = socket.recv_from(buffer).await {
                    arrived.push((source, buffer[..len].to_vec()));
                }
            }
            Link::Tcp {
                stream,
                server,
                incoming,
                ..
            } => {
                let len = stream.read(buffer).await.expect("read");
                assert!(len > 0, "the worker closed the connection");
                incoming.extend_from_slice(&buffer[..len]);
                while incoming.len() >= 2 {
                    let frame = usize::from(u16::from_be_bytes([incoming[0], incoming[1]]));
                    if incoming.len() < 2 + frame {
                        break;
                    }
                    arrived.push((*server, incoming[2..2 + frame].to_vec()));
                    incoming.drain(..2 + frame);
                }
            }
        }
        for (source, data) in arrived {
            if !(self.up && self.loss.as_mut().is_some_and(LossyLink::drops_received)) {
                self.receive(source, &data);
            }
        }
    }

    fn receive(&mut self, source: SocketAddr, data: &[u8]) {
        let Ok(contents) = data.try_into() else {
            return;
        };
        let proto = match self.link {
            Link::Udp(_) => Protocol::Udp,
            Link::Tcp { .. } => Protocol::Tcp,
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto,
                source,
                destination: self.addr,
                contents,
            },
        );
        self.rtc.handle_input(input).expect("client input");
    }

    fn connected(&self) -> bool {
        self.up
    }
}

/// A str0m client sending raw RTP, reporting its stream statistics every second.
fn client_rtc() -> Rtc {
    Rtc::builder()
        .set_rtp_mode(true)
        .set_stats_interval(Some(Duration::from_secs(1)))
        .build(Instant::now())
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
        tcp: None,
        // A node's third worker: its tracks are numbered in a space of their own.
        track_space: sightline_sfu::TrackSpace::of(0x00AB_CDEF, 2),
    })
    .await;
}

/// On real UDP sockets the publisher loses 10% of its datagrams each way and the subscriber 30%
/// of what it is sent: the worker asks the publisher to repair what it lost (NACK), the
/// subscriber asks the worker, and the subscriber ends up with nearly every frame, each intact.
/// (The worker must spend more than str0m's default 15% of a stream on repairs for that.)
#[tokio::test(flavor = "current_thread")]
async fn media_is_repaired_through_a_worker_on_lossy_links() {
    let config = WorkerConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        public_ips: Vec::new(),
        bandwidth_estimation: false,
        stopped_line_limit: sightline_sfu::DEFAULT_STOPPED_LINE_LIMIT,
        tcp: None,
        track_space: Default::default(),
    };
    let run = exchange(config, Some([(10, 10), (0, 30)])).await;
    let (publisher, subscriber) = (&run.publisher, &run.subscriber);
    let lost = |c: &Client| c.loss.as_ref().map_or(0, |l| l.dropped);
    assert!(
        lost(publisher) >= 3 && lost(subscriber) >= 3,
        "both links lost datagrams: {} and {}",
        lost(publisher),
        lost(subscriber)
    );
    // Counts are cumulative: the highest of a client's statistics events.
    let highest = |client: &Client, count: fn(&RtcEvent) -> Option<u64>| {
        client.events.iter().filter_map(count).max().unwrap_or(0)
    };
    let nacks_to_publisher = highest(publisher, |e| match e {
        RtcEvent::MediaEgressStats(s) => Some(s.nacks),
        _ => None,
    });
    let nacks_from_subscriber = highest(subscriber, |e| match e {
        RtcEvent::MediaIngressStats(s) => Some(s.nacks),
        _ => None,
    });
    assert!(
        nacks_to_publisher > 0 && nacks_from_subscriber > 0,
        "repairs were asked for on both links: {nacks_to_publisher} by the worker, {nacks_from_subscriber} by the subscriber"
    );
    // Each frame is one packet; what arrived (repairs out of order, some twice) is what was sent.
    let mut received: Vec<(u64, Vec<u8>)> = run.received();
    received.sort();
    received.dedup();
    assert!(!received.is_empty(), "the subscriber got media");
    for (_, payload) in &received {
        assert!(run.sent.contains(payload), "received what was sent, intact");
    }
    // From the first frame received to the last: a lost frame at the very end has no later
    // packet to show its gap, so nobody asks for it again.
    let position = |payload: &Vec<u8>| run.sent.iter().position(|p| p == payload);
    let first = received.first().and_then(|(_, p)| position(p));
    let last = received.last().and_then(|(_, p)| position(p));
    let (Some(first), Some(last)) = (first, last) else {
        panic!("received what was sent");
    };
    // Without repair the two links would lose about a third of the frames.
    let expected = last - first + 1;
    assert!(
        received.len() * 100 >= expected * 95,
        "nearly every frame from the first keyframe on: {} of {expected}",
        received.len()
    );
    run.end();
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
        tcp: None,
        track_space: Default::default(),
    })
    .await;
}

/// A client that can reach the worker only over TCP connects by ICE-TCP (RFC 6544, RFC 4571
/// framing), its frames split across reads, and media flows as over UDP.
#[tokio::test(flavor = "current_thread")]
async fn media_flows_through_a_worker_over_ice_tcp() {
    media_flows_through(WorkerConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        public_ips: Vec::new(),
        bandwidth_estimation: false,
        stopped_line_limit: sightline_sfu::DEFAULT_STOPPED_LINE_LIMIT,
        tcp: Some(TcpConfig {
            bind: "127.0.0.1:0".parse().expect("address"),
            max_connections: 8,
        }),
        track_space: Default::default(),
    })
    .await;
}

fn tcp_worker(max_connections: usize) -> (WorkerHandle, mpsc::Receiver<WorkerEvent>) {
    let (events_tx, events) = mpsc::channel::<WorkerEvent>(16);
    let (worker, _thread) = WorkerHandle::spawn(
        0,
        WorkerConfig {
            bind: "127.0.0.1:0".parse().expect("address"),
            public_ips: Vec::new(),
            bandwidth_estimation: false,
            stopped_line_limit: sightline_sfu::DEFAULT_STOPPED_LINE_LIMIT,
            tcp: Some(TcpConfig {
                bind: "127.0.0.1:0".parse().expect("address"),
                max_connections,
            }),
            track_space: Default::default(),
        },
        events_tx,
    )
    .expect("worker");
    (worker, events)
}

/// Waits (bounded) for the worker to close `stream`: the read sees its end.
async fn closed_by_worker(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    read.await.is_ok()
}

/// A STUN binding request's header with a username attribute for `ufrag`, framed: shaped like
/// the first frame of an ICE connection, but for nobody the worker knows.
fn framed_stun_for(ufrag: &str) -> Vec<u8> {
    let username = format!("{ufrag}:x");
    let padded = username.len().div_ceil(4) * 4;
    let mut message = vec![0x00, 0x01];
    message.extend(u16::try_from(4 + padded).expect("short").to_be_bytes());
    message.extend([0x21, 0x12, 0xa4, 0x42]);
    message.extend([7u8; 12]);
    message.extend([0x00, 0x06]);
    message.extend(u16::try_from(username.len()).expect("short").to_be_bytes());
    message.extend(username.as_bytes());
    message.resize(20 + 4 + padded, 0);
    let mut framed = u16::try_from(message.len())
        .expect("short")
        .to_be_bytes()
        .to_vec();
    framed.extend(message);
    framed
}

/// What a scanner or a confused client sends to the ICE-TCP port is closed at once: bytes that
/// are not RFC 4571 frames, a frame longer than any datagram, a first frame that is not STUN, and
/// a STUN request naming no peer of the worker. None of it reaches a peer, and the worker goes on.
#[tokio::test(flavor = "current_thread")]
async fn garbage_on_the_ice_tcp_port_is_closed_at_once() {
    let (worker, _events) = tcp_worker(16);
    let server = worker.tcp_addr().expect("listens on TCP");
    let mut oversized = vec![0xff, 0xff];
    oversized.extend([0u8; 4096]);
    let mut rtp_first = vec![0x00, 0x20, 0x80, 0x60];
    rtp_first.extend([0u8; 30]);
    let cases: [(&str, Vec<u8>); 4] = [
        ("HTTP", b"GET / HTTP/1.1\r\nHost: sfu\r\n\r\n".to_vec()),
        ("an oversized frame", oversized),
        ("RTP before any STUN", rtp_first),
        ("STUN for nobody", framed_stun_for("nobody")),
    ];
    for (what, bytes) in cases {
        let mut stream = TcpStream::connect(server).await.expect("connects");
        // The worker may close before every byte is written.
        let _ = stream.write_all(&bytes).await;
        assert!(closed_by_worker(&mut stream).await, "{what} is closed");
    }
    let stats = worker.stats();
    assert!(
        stats.garbage_datagrams.load(Ordering::Relaxed) >= 1,
        "the unknown STUN counted"
    );
    // The worker still serves: a new connection is taken.
    let mut stream = TcpStream::connect(server).await.expect("still accepting");
    stream
        .write_all(&framed_stun_for("nobody-either"))
        .await
        .expect("written");
    assert!(closed_by_worker(&mut stream).await);
}

/// A worker holds at most `max_connections`; more are closed at once, and connections that never
/// send a frame are closed after a few seconds, freeing their places.
#[tokio::test(flavor = "current_thread")]
async fn ice_tcp_connections_are_bounded_and_silent_ones_closed() {
    let (worker, _events) = tcp_worker(4);
    let server = worker.tcp_addr().expect("listens on TCP");
    // Each held connection's silence is timed from its acceptance, after this.
    let connecting = Instant::now();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(server).await.expect("connects"));
    }
    let stats = worker.stats();
    let deadline = Instant::now() + DEADLINE;
    while stats.tcp_connections.load(Ordering::Relaxed) < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stats.tcp_connections.load(Ordering::Relaxed), 4);
    for _ in 0..2 {
        let mut extra = TcpStream::connect(server)
            .await
            .expect("the kernel accepts");
        assert!(
            closed_by_worker(&mut extra).await,
            "past the maximum, closed"
        );
    }
    // The worker counts a refusal just after it closes the connection: the test may see the
    // close first.
    let deadline = Instant::now() + DEADLINE;
    while stats.tcp_refused.load(Ordering::Relaxed) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = stats.tcp_refused.load(Ordering::Relaxed);
    if connecting.elapsed() < FIRST_FRAME_TIMEOUT {
        // No held connection can have been closed for its silence yet: both extra ones were
        // refused, and the four are open.
        assert_eq!(refused, 2);
        for stream in &mut held {
            let mut probe = [0u8; 1];
            assert!(
                matches!(stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
                "a held connection stays open while the extra ones are refused"
            );
        }
    } else {
        // A machine too busy to finish this in the silence timeout: a held connection may have
        // been closed first, and an extra one taken in its place (then closed for its own
        // silence). At most the two were refused.
        assert!(refused <= 2, "{refused} refused");
    }
    for stream in &mut held {
        assert!(
            closed_by_worker(stream).await,
            "a silent connection is closed"
        );
    }
    while stats.tcp_connections.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stats.tcp_connections.load(Ordering::Relaxed), 0);
    // Their places are free again.
    let _again = TcpStream::connect(server).await.expect("connects");
    while stats.tcp_connections.load(Ordering::Relaxed) < 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stats.tcp_connections.load(Ordering::Relaxed), 1);
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

/// What one exchange through a worker left behind.
struct Run {
    worker: WorkerHandle,
    thread: std::thread::JoinHandle<()>,
    publisher: Client,
    subscriber: Client,
    /// The payloads sent, one per frame.
    sent: Vec<Vec<u8>>,
}

impl Run {
    /// The subscriber's RTP packets in arrival order: sequence number and payload.
    fn received(&self) -> Vec<(u64, Vec<u8>)> {
        self.subscriber
            .events
            .iter()
            .filter_map(|e| match e {
                RtcEvent::RtpPacket(p) => Some((*p.seq_no, p.payload.to_vec())),
                _ => None,
            })
            .collect()
    }

    fn end(self) {
        drop(self.worker);
        self.thread
            .join()
            .expect("worker thread ends when its handles are dropped");
    }
}

async fn media_flows_through(config: WorkerConfig) {
    let run = exchange(config, None).await;
    let received = run.received();
    assert!(
        received.len() >= 30,
        "the subscriber got media: {}",
        received.len()
    );
    let sent = &run.sent;
    let first = sent
        .iter()
        .position(|p| *p == received[0].1)
        .expect("received what was sent");
    assert_eq!(sent[first][4], 0, "starts at a keyframe");
    // Every packet is one that was sent, byte for byte and in order. A busy machine may drop
    // some on the way out, as a full socket does (an ICE-TCP connection's queue is bounded on
    // purpose): then the sequence numbers skip exactly the packets that went missing.
    let mut previous: Option<(u64, usize)> = None;
    let mut next = first;
    for (seq, got) in &received {
        let at = sent[next..]
            .iter()
            .position(|want| want == got)
            .map(|offset| next + offset)
            .expect("byte for byte, in the order sent");
        if let Some((previous_seq, previous_at)) = previous {
            assert_eq!(
                seq - previous_seq,
                (at - previous_at) as u64,
                "a gap in the numbers is exactly the packets dropped whole"
            );
        }
        previous = Some((*seq, at));
        next = at + 1;
    }
    let stats = run.worker.stats();
    assert!(stats.datagrams_in.load(Ordering::Relaxed) > 0);
    // Held times are recorded once per batch that sent something: a datagram per batch on an
    // idle machine, several when they pile up in the socket on a busy one.
    let recorded = stats.forwarding.snapshot().count();
    let sent_out = stats.datagrams_out.load(Ordering::Relaxed);
    assert!(
        recorded > 0 && recorded <= sent_out,
        "each batch that sent something recorded its time once: {recorded} for {sent_out} sent"
    );
    run.end();
}

/// A publisher and a subscriber (UDP, or ICE-TCP when the worker listens on TCP; on UDP with
/// `loss` percent lost: (sent, received) for the publisher, then the subscriber) connect through
/// a worker and `FRAMES` frames are sent.
async fn exchange(config: WorkerConfig, loss: Option<[(u64, u64); 2]>) -> Run {
    let reachable = config.clone();
    // Room for one event: signaling slower than the worker. Every event must still arrive (the
    // track, the offer), in order, for media to flow.
    let (events_tx, mut events) = mpsc::channel::<WorkerEvent>(1);
    let space = config.track_space;
    let (worker, thread) = WorkerHandle::spawn(0, config, events_tx).expect("worker");
    let tcp = worker.tcp_addr();
    assert!(tcp.is_none() || loss.is_none(), "loss is for UDP links");
    let client = move |which: usize| async move {
        match (tcp, loss) {
            (Some(server), _) => Client::over_tcp(server).await,
            (None, Some(loss)) => Client::lossy(loss[which], 0x5eed_0001 + which as u64).await,
            (None, None) => Client::new().await,
        }
    };

    let mut publisher = client(0).await;
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
    // The publisher repairs whatever it is asked to: only the worker's own cap is tested.
    if let Some(stream) = publisher.rtc.direct_api().stream_tx_by_mid(mid, None) {
        stream.set_rtx_cache(1024, Duration::from_secs(3), None);
    }
    let mut subscriber = client(1).await;
    worker.add_subscriber(PeerId(2)).await.expect("subscriber");

    let started = Instant::now();
    let mut sent: Vec<Vec<u8>> = Vec::new();
    // Frames start once both are connected, at 30 a second.
    let mut next_frame: Option<Instant> = None;
    let mut pub_buf = vec![0u8; 2048];
    let mut sub_buf = vec![0u8; 2048];
    while started.elapsed() < DEADLINE && sent.len() < FRAMES as usize {
        while let Ok(WorkerEvent { event, .. }) = events.try_recv() {
            match event {
                Event::TrackPublished { track, .. } => {
                    assert_eq!(track.space(), space, "numbered in the worker's space");
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
        if publisher.connected() && subscriber.connected() && next_frame.is_none() {
            next_frame = Some(Instant::now());
        }
        if let Some(due) = next_frame.filter(|due| Instant::now() >= *due) {
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
            next_frame = Some(due + Duration::from_millis(33));
        }
        let wake = publisher.drive().min(subscriber.drive());
        let wake = next_frame.map_or(wake, |due| wake.min(due));
        publisher.flush().await;
        subscriber.flush().await;
        let sleep = wake
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(20));
        tokio::select! {
            () = publisher.read(&mut pub_buf) => {}
            () = subscriber.read(&mut sub_buf) => {}
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
    // Let the last packets arrive (on a lossy link, their repairs too, and the statistics
    // that count them).
    let tail = Instant::now();
    let linger = if loss.is_some() {
        Duration::from_millis(1_500)
    } else {
        Duration::from_millis(300)
    };
    while tail.elapsed() < linger {
        subscriber.drive();
        publisher.drive();
        publisher.flush().await;
        subscriber.flush().await;
        tokio::select! {
            () = subscriber.read(&mut sub_buf) => {}
            () = publisher.read(&mut pub_buf) => {}
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        let now = Instant::now();
        for client in [&mut publisher, &mut subscriber] {
            client
                .rtc
                .handle_input(Input::Timeout(now))
                .expect("timeout");
        }
    }

    assert_eq!(
        sent.len(),
        FRAMES as usize,
        "both clients connected and media was sent"
    );
    Run {
        worker,
        thread,
        publisher,
        subscriber,
        sent,
    }
}
