//! Relayed sessions between nodes against a real NATS server (Debian's `nats-server` 2.9), one
//! private server per test: a dial opens a session that carries typed messages both ways in
//! order; a refusal opens nothing; a node nobody listens for fails the dial at once; a lost
//! frame or a silent other end ends the session.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use sightline_cluster::{Cluster, ClusterConfig, Link, NodeId, Region, Service};
use sightline_testkit::NatsServer;

/// Keepalives every 200 ms; two seconds of silence end a session.
const EVERY: Duration = Duration::from_millis(200);
const TTL: Duration = Duration::from_secs(2);

fn config(url: &str, name: &str) -> ClusterConfig {
    ClusterConfig {
        nats_url: url.to_owned(),
        nats_auth: Default::default(),
        nats_tls: Default::default(),
        node: NodeId::new(name).expect("node id"),
        region: Region::new("eu").expect("region"),
        advertise_url: format!("http://{name}.invalid"),
        heartbeat_every: EVERY,
        heartbeat_ttl: TTL,
        started_at_ms: 0,
    }
}

async fn node(nats: &NatsServer, name: &str) -> Cluster {
    Cluster::join(config(&nats.url(), name))
        .await
        .expect("joins")
}

fn node_id(name: &str) -> NodeId {
    NodeId::new(name).expect("node id")
}

/// Waits (bounded) until `check` holds.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never happened: {what}");
}

/// The next message on a link, or `None` once it ended; bounded.
async fn next<T>(rx: &mut tokio::sync::mpsc::Receiver<T>) -> Option<T> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the link neither delivered nor ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_opens_a_session_that_carries_messages_both_ways_in_order() {
    let nats = NatsServer::start().await.expect("a private nats-server");
    let edge = node(&nats, "edge").await;
    let host = node(&nats, "host").await;
    let mut dials = host.listen::<String>(Service::Rtc).await.expect("listens");
    let echo = tokio::spawn(async move {
        let dial = dials.next().await.expect("a dial");
        assert_eq!(dial.request, "hello");
        let mut link: Link<String, String> = dial.accept(&"welcome").await.expect("accepts");
        let mut echoed = 0;
        while let Some(message) = link.rx.recv().await {
            link.tx
                .send(format!("echo {message}"))
                .await
                .expect("sends");
            echoed += 1;
        }
        echoed
    });
    let dialed = edge
        .dial::<_, String>(&node_id("host"), Service::Rtc, "hello".to_owned())
        .await
        .expect("dials");
    assert_eq!(dialed.answer, "welcome");
    let mut link: Link<String, String> = dialed.open();
    for i in 0..200 {
        link.tx.send(i.to_string()).await.expect("sends");
        // Reading as we go keeps both queues short.
        assert_eq!(
            next(&mut link.rx).await.as_deref(),
            Some(&*format!("echo {i}"))
        );
    }
    assert_eq!(edge.stats().relays_open.load(Ordering::Relaxed), 1);
    assert_eq!(host.stats().relays_open.load(Ordering::Relaxed), 1);
    // Longer than the allowed silence with nothing to say: keepalives hold it open.
    tokio::time::sleep(TTL + Duration::from_secs(1)).await;
    link.tx.send("still there".to_owned()).await.expect("sends");
    assert_eq!(
        next(&mut link.rx).await.as_deref(),
        Some("echo still there")
    );

    // The edge closes: the host's end ends after what was sent, and then the edge's.
    let Link { tx, mut rx } = link;
    drop(tx);
    assert_eq!(echo.await.expect("the host's task"), 201);
    assert_eq!(next(&mut rx).await, None);
    eventually("both ends closed", || {
        edge.stats().relays_open.load(Ordering::Relaxed) == 0
            && host.stats().relays_open.load(Ordering::Relaxed) == 0
    })
    .await;
    assert_eq!(edge.stats().relays_dialed.load(Ordering::Relaxed), 1);
    assert_eq!(host.stats().relays_accepted.load(Ordering::Relaxed), 1);
    assert_eq!(edge.stats().relays_broken.load(Ordering::Relaxed), 0);
    assert_eq!(host.stats().relays_broken.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dial_opens_nothing_and_a_node_nobody_listens_for_fails_the_dial() {
    let nats = NatsServer::start().await.expect("a private nats-server");
    let edge = node(&nats, "edge").await;
    let host = node(&nats, "host").await;
    let mut dials = host.listen::<String>(Service::Rtc).await.expect("listens");
    tokio::spawn(async move {
        while let Some(dial) = dials.next().await {
            dial.refuse(&"no").await;
        }
    });
    let dialed = edge
        .dial::<_, String>(&node_id("host"), Service::Rtc, "hello".to_owned())
        .await
        .expect("dials");
    assert_eq!(dialed.answer, "no");
    drop(dialed);
    assert_eq!(host.stats().relays_accepted.load(Ordering::Relaxed), 0);
    assert_eq!(host.stats().relays_open.load(Ordering::Relaxed), 0);
    assert_eq!(edge.stats().relays_dialed.load(Ordering::Relaxed), 0);
    assert_eq!(edge.stats().relays_open.load(Ordering::Relaxed), 0);

    let started = std::time::Instant::now();
    let ghost = edge
        .dial::<_, String>(&node_id("ghost"), Service::Rtc, "hello".to_owned())
        .await;
    assert!(ghost.is_err(), "nobody listens for ghost");
    // NATS says at once that nobody listens; the dial's own timeout is five seconds.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_takes_only_its_own_dials() {
    let nats = NatsServer::start().await.expect("a private nats-server");
    let edge = node(&nats, "edge").await;
    let host = node(&nats, "host").await;
    for (service, name) in [(Service::Rtc, "rtc"), (Service::Editor, "editor")] {
        let mut dials = host.listen::<String>(service).await.expect("listens");
        tokio::spawn(async move {
            while let Some(dial) = dials.next().await {
                let answer = format!("{name} took {}", dial.request);
                dial.refuse(&answer).await;
            }
        });
    }
    for (service, name) in [(Service::Editor, "editor"), (Service::Rtc, "rtc")] {
        let dialed = edge
            .dial::<_, String>(&node_id("host"), service, "a dial".to_owned())
            .await
            .expect("dials");
        assert_eq!(dialed.answer, format!("{name} took a dial"));
    }
    // A node that takes no editor dials (an earlier version) fails such a dial at once.
    let other = node(&nats, "other").await;
    let mut dials = other.listen::<String>(Service::Rtc).await.expect("listens");
    tokio::spawn(async move { while dials.next().await.is_some() {} });
    let refused = edge
        .dial::<_, String>(&node_id("other"), Service::Editor, "a dial".to_owned())
        .await;
    assert!(refused.is_err(), "nobody takes editor dials on other");
}

/// A host written by hand on a plain NATS connection, to misbehave: it accepts `edge`'s next
/// dial and gives the session id.
async fn raw_host(nats: &NatsServer, name: &str) -> (async_nats::Client, async_nats::Subscriber) {
    let client = async_nats::connect(nats.url()).await.expect("connects");
    let dials = client
        .subscribe(format!("sightline.node.{name}.dial"))
        .await
        .expect("subscribes");
    // A request the server answers, read after the subscription: it is in effect when this
    // returns (a flush only empties the socket's buffer).
    client
        .request("$JS.API.INFO", bytes::Bytes::new())
        .await
        .expect("a round trip");
    (client, dials)
}

async fn answer_next(client: &async_nats::Client, dials: &mut async_nats::Subscriber) -> String {
    let dial = dials.next().await.expect("a dial");
    let envelope: Value = serde_json::from_slice(&dial.payload).expect("json");
    let session = envelope["session"].as_str().expect("session id").to_owned();
    client
        .publish(dial.reply.expect("a reply subject"), "\"welcome\"".into())
        .await
        .expect("answers");
    session
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_frame_or_a_silent_other_end_ends_the_session() {
    let nats = NatsServer::start().await.expect("a private nats-server");
    let edge = node(&nats, "edge").await;
    let (raw, mut dials) = raw_host(&nats, "host").await;

    // Frame 1 never comes: the edge takes frame 0 and ends at frame 2.
    let host = node_id("host");
    let dialing = edge.dial::<_, String>(&host, Service::Rtc, "hello".to_owned());
    let (answered, dialed) = tokio::join!(answer_next(&raw, &mut dials), async {
        dialing.await.expect("dials")
    });
    assert_eq!(dialed.answer, "welcome");
    let mut link: Link<String, String> = dialed.open();
    let down = format!("sightline.relay.{answered}.down");
    for (seq, text) in [(0, "one"), (2, "three")] {
        let frame = json!({ "seq": seq, "body": { "message": text } });
        raw.publish(
            down.clone(),
            serde_json::to_vec(&frame).expect("json").into(),
        )
        .await
        .expect("publishes");
    }
    assert_eq!(next(&mut link.rx).await.as_deref(), Some("one"));
    assert_eq!(next(&mut link.rx).await, None, "the gap ends the session");
    eventually("the broken session counted", || {
        edge.stats().relays_broken.load(Ordering::Relaxed) == 1
    })
    .await;

    // A host that answers and then says nothing: the edge keeps itself alive on `up` (numbered
    // keepalives), gives up after the allowed silence and says so.
    let host = node_id("host");
    let dialing = edge.dial::<_, String>(&host, Service::Rtc, "hello".to_owned());
    let (session, dialed) = tokio::join!(answer_next(&raw, &mut dials), async {
        dialing.await.expect("dials")
    });
    let mut link: Link<String, String> = dialed.open();
    let mut up = raw
        .subscribe(format!("sightline.relay.{session}.up"))
        .await
        .expect("subscribes");
    let started = std::time::Instant::now();
    assert_eq!(next(&mut link.rx).await, None, "silence ends the session");
    assert!(started.elapsed() >= TTL - EVERY, "{:?}", started.elapsed());
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(1), up.next()).await {
        frames.push(serde_json::from_slice::<Value>(&frame.payload).expect("json"));
    }
    let seqs: Vec<u64> = frames.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert!(frames.len() >= 3, "keepalives, then the end: {frames:?}");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "numbered in order: {seqs:?}"
    );
    assert_eq!(frames.last().map(|f| f["body"].clone()), Some(json!("end")));
    assert!(
        frames[..frames.len() - 1]
            .iter()
            .all(|f| f["body"] == "keepalive"),
        "{frames:?}"
    );
    eventually("both broken sessions counted", || {
        edge.stats().relays_broken.load(Ordering::Relaxed) == 2
            && edge.stats().relays_open.load(Ordering::Relaxed) == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_that_gives_up_on_an_accepted_dial_tells_the_host_at_once() {
    let nats = NatsServer::start().await.expect("a private nats-server");
    let edge = node(&nats, "edge").await;
    let host = node(&nats, "host").await;
    let mut dials = host.listen::<String>(Service::Rtc).await.expect("listens");
    let accepted = tokio::spawn(async move {
        let dial = dials.next().await.expect("a dial");
        let mut link: Link<String, String> = dial.accept(&"welcome").await.expect("accepts");
        let started = std::time::Instant::now();
        let ended = link.rx.recv().await;
        (ended, started.elapsed())
    });
    let dialed = edge
        .dial::<_, String>(&node_id("host"), Service::Rtc, "hello".to_owned())
        .await
        .expect("dials");
    assert_eq!(dialed.answer, "welcome");
    // The edge decides not to use it (its client went away meanwhile, say).
    drop(dialed);
    let (ended, _) = accepted.await.expect("the host's task");
    assert_eq!(ended, None, "the host's end closed");
    eventually("the host's end closed, not broken", || {
        host.stats().relays_open.load(Ordering::Relaxed) == 0
    })
    .await;
    assert_eq!(
        host.stats().relays_broken.load(Ordering::Relaxed),
        0,
        "told, not left to fall silent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_that_reaches_its_host_after_the_caller_gave_up_is_dropped() {
    let nats = NatsServer::start().await.expect("a private nats-server");
    let host = node(&nats, "host").await;
    let mut dials = host.listen::<String>(Service::Rtc).await.expect("listens");
    let edge = node(&nats, "edge").await;

    // A dial whose caller stopped waiting a minute ago (it sat in a queue somewhere).
    let raw = async_nats::connect(nats.url()).await.expect("connects");
    let stale = json!({
        "session": "0123456789abcdef0123456789abcdef",
        "request": "stale",
        "deadline_ms": 1_000_u64,
    });
    let late = raw.request(
        "sightline.node.host.dial",
        serde_json::to_vec(&stale).expect("json").into(),
    );
    let late = tokio::time::timeout(Duration::from_millis(500), late);
    // Then a fresh one: it is the first the host is offered.
    let host_id = node_id("host");
    let fresh = edge.dial::<_, String>(&host_id, Service::Rtc, "fresh".to_owned());
    let (late, offered, dialed) = tokio::join!(
        late,
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let dial = tokio::time::timeout(Duration::from_secs(5), dials.next())
                .await
                .expect("a dial in time")
                .expect("the subscription lives");
            let request = dial.request.clone();
            let _link: Link<String, String> =
                dial.accept(&"welcome".to_owned()).await.expect("accepts");
            request
        },
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            fresh.await.expect("dials")
        }
    );
    assert_eq!(offered, "fresh", "the late dial was dropped, not offered");
    assert_eq!(dialed.answer, "welcome");
    assert!(!matches!(late, Ok(Ok(_))), "nobody answered the late dial");
}
