//! The cluster against a real NATS server (Debian's `nats-server` 2.9, JetStream on), one
//! private server per test on a free port (some with a password, some with TLS and client
//! certificates from a throwaway CA).

use std::net::TcpListener;
use std::time::Duration;

use secrecy::SecretString;
use sightline_cluster::{
    Cluster, ClusterConfig, Load, NatsAuth, NatsTls, NodeId, NodeState, Region, RoomKey,
};
use sightline_testkit::{NatsSecurity, NatsServer, NatsTlsFiles, TestPki};

/// Heartbeats every 200 ms, dead after two seconds (ten missed beats, for a busy machine): the
/// tests wait for expiry in seconds.
const EVERY: Duration = Duration::from_millis(200);
const TTL: Duration = Duration::from_secs(2);

struct Nats(NatsServer);

/// The sequence number of `node`'s heartbeat as `cluster` sees it.
async fn sequence_of(cluster: &Cluster, node: &str) -> Option<u64> {
    let nodes = cluster.nodes().await.ok()?;
    nodes
        .into_iter()
        .find(|h| h.node.as_str() == node)
        .map(|h| h.sequence)
}

impl Nats {
    async fn start() -> Self {
        Self(NatsServer::start().await.expect("a private nats-server"))
    }

    async fn node(&self, name: &str, region: &str) -> Cluster {
        Cluster::join(config(&self.0.url(), name, region))
            .await
            .expect("joins")
    }
}

fn config(url: &str, name: &str, region: &str) -> ClusterConfig {
    ClusterConfig {
        nats_url: url.to_owned(),
        nats_auth: Default::default(),
        nats_tls: Default::default(),
        node: NodeId::new(name).expect("node id"),
        region: Region::new(region).expect("region"),
        advertise_url: format!("http://{name}.invalid"),
        heartbeat_every: EVERY,
        heartbeat_ttl: TTL,
        started_at_ms: 0,
    }
}

fn room(name: &str) -> RoomKey {
    RoomKey::new(name).expect("room")
}

fn region(name: &str) -> Region {
    Region::new(name).expect("region")
}

async fn node_names(cluster: &Cluster) -> Vec<String> {
    cluster
        .nodes()
        .await
        .expect("nodes")
        .into_iter()
        .map(|h| h.node.to_string())
        .collect()
}

/// Waits (bounded) until `cluster` sees exactly `expected` nodes.
async fn wait_for_nodes(cluster: &Cluster, expected: &[&str]) {
    for _ in 0..100 {
        if node_names(cluster).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "nodes stayed {:?}, expected {expected:?}",
        node_names(cluster).await
    );
}

fn busy() -> Load {
    Load {
        cpu: 0.9,
        ..Load::default()
    }
}

/// Waits (bounded) until `cluster` sees `node`'s busy heartbeat.
async fn wait_until_busy(cluster: &Cluster, node: &str) {
    for _ in 0..100 {
        let nodes = cluster.nodes().await.expect("nodes");
        if nodes
            .iter()
            .any(|h| h.node.as_str() == node && h.load.cpu > 0.5)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{node}'s load never showed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_see_each_other_and_a_silent_one_expires() {
    let nats = Nats::start().await;
    let a = nats.node("a", "eu").await;
    let b = nats.node("b", "eu").await;
    let c = nats.node("c", "us").await;
    let beats: Vec<_> = [&a, &b, &c]
        .into_iter()
        .map(|n| n.spawn_heartbeats(Load::default))
        .collect();
    for node in [&a, &b, &c] {
        assert_eq!(node_names(node).await, ["a", "b", "c"]);
    }
    let listed = b.nodes().await.expect("nodes");
    assert_eq!(listed[2].region, region("us"));
    assert_eq!(listed[2].advertise_url, "http://c.invalid");

    // c stops beating (as a killed process would): it is gone once its last beat expires,
    // while the others, still beating, stay.
    beats[2].abort();
    wait_for_nodes(&a, &["a", "b"]).await;
    tokio::time::sleep(TTL * 2).await;
    assert_eq!(node_names(&b).await, ["a", "b"]);
    assert!(
        a.stats()
            .heartbeats_sent
            .load(std::sync::atomic::Ordering::Relaxed)
            > 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_placing_a_room_at_once_gets_the_same_host_in_its_region() {
    let nats = Nats::start().await;
    let nodes = [
        nats.node("a", "eu").await,
        nats.node("b", "eu").await,
        nats.node("c", "us").await,
    ];
    let _beats: Vec<_> = nodes
        .iter()
        .map(|n| n.spawn_heartbeats(Load::default))
        .collect();
    let eu = region("eu");
    for round in 0..10 {
        let key = room(&format!("room-{round}"));
        let placements = futures_util::future::join_all(
            nodes.iter().cycle().take(12).map(|n| n.place(&key, &eu)),
        )
        .await;
        let hosts: Vec<_> = placements.into_iter().map(|p| p.expect("placed")).collect();
        assert!(
            hosts.iter().all(|p| p == &hosts[0]),
            "one host per room: {hosts:?}"
        );
        assert_ne!(hosts[0].node.as_str(), "c", "placed outside its region");
        assert_eq!(
            nodes[2].host(&key).await.expect("read"),
            Some(hosts[0].clone())
        );
    }
    let placed: u64 = nodes
        .iter()
        .map(|n| {
            n.stats()
                .rooms_placed
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert_eq!(placed, 10, "each room created once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_takes_no_new_room_and_keeps_its_own() {
    let nats = Nats::start().await;
    let a = nats.node("a", "eu").await;
    let b = nats.node("b", "eu").await;
    let _beats = [a.spawn_heartbeats(Load::default), b.spawn_heartbeats(busy)];
    // b is much busier, so a takes the first room.
    wait_until_busy(&a, "b").await;
    let first = room("first");
    let held = a.place(&first, &region("eu")).await.expect("placed");

    a.drain().await.expect("drained");
    for _ in 0..50 {
        let seen = b.nodes().await.expect("nodes");
        if seen
            .iter()
            .any(|h| h.node.as_str() == "a" && h.state == NodeState::Draining)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in 0..5 {
        let placed = b
            .place(&room(&format!("new-{n}")), &region("eu"))
            .await
            .expect("placed");
        assert_eq!(placed.node.as_str(), "b", "a draining node took a room");
    }
    assert_eq!(b.place(&first, &region("eu")).await.expect("kept"), held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_moves_off_a_dead_host_only_once_nobody_answers_for_it() {
    let nats = Nats::start().await;
    let a = nats.node("a", "eu").await;
    let b = nats.node("b", "eu").await;
    let a_beats = a.spawn_heartbeats(Load::default);
    let _b_beats = b.spawn_heartbeats(busy);
    wait_until_busy(&a, "b").await;
    let key = room("interview");
    let held = a.place(&key, &region("eu")).await.expect("placed");
    assert_eq!(held.node.as_str(), "a");
    let guard = a.guard(&key).await.expect("guard");

    // a's heartbeats stop (a slow or cut-off node), but it still runs the room and answers on
    // its subject: b must not take the room.
    a_beats.abort();
    wait_for_nodes(&b, &["b"]).await;
    assert_eq!(b.place(&key, &region("eu")).await.expect("guarded"), held);
    assert_eq!(
        b.stats()
            .rooms_guarded
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // a's room task ends (the process died). A node that has just connected does not move
    // it yet (after an outage the host may not be back yet); b, connected for long, does.
    guard.close().await;
    let joining = std::time::Instant::now();
    let newcomer = nats.node("c", "eu").await;
    let _c_beats = newcomer.spawn_heartbeats(Load::default);
    let kept = newcomer.place(&key, &region("eu")).await.expect("held");
    // Only while it is fresh: a machine slow enough to take a heartbeat's lifetime over joining
    // and asking has a settled node here, which may move the room.
    if joining.elapsed() < TTL {
        assert_eq!(kept, held, "moved by a node fresh from connecting");
    }
    let moved = b.place(&key, &region("eu")).await.expect("moved");
    // To the less loaded of the live nodes: c (b reports itself busy).
    assert_eq!(moved.node.as_str(), "c");
    assert!(moved.revision > held.revision);
    assert_eq!(a.host(&key).await.expect("read"), Some(moved.clone()));
    // a's own placement is stale: releasing it leaves the new one alone.
    assert!(a.release(&key, &held).await.is_err());
    assert_eq!(b.host(&key).await.expect("read"), Some(moved.clone()));
    // b releases it when the room ends there.
    b.release(&key, &moved).await.expect("released");
    assert_eq!(b.host(&key).await.expect("read"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_with_no_serving_node_is_refused_and_a_bad_server_is_an_error() {
    let nats = Nats::start().await;
    let a = nats.node("a", "eu").await;
    a.drain().await.expect("drained");
    let _beats = a.spawn_heartbeats(Load::default);
    for _ in 0..50 {
        if a.nodes().await.expect("nodes")[0].state == NodeState::Draining {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = a.place(&room("r"), &region("eu")).await;
    assert!(
        matches!(refused, Err(sightline_cluster::ClusterError::NoServingNode)),
        "{refused:?}"
    );

    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let unreachable = Cluster::join(config(&format!("nats://127.0.0.1:{port}"), "z", "eu")).await;
    assert!(matches!(
        unreachable,
        Err(sightline_cluster::ClusterError::Connect { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_carry_on_through_a_nats_restart_and_rooms_stay_placed() {
    let mut nats = Nats::start().await;
    let a = nats.node("a", "eu").await;
    let b = nats.node("b", "eu").await;
    let _beats = [
        a.spawn_heartbeats(Load::default),
        b.spawn_heartbeats(Load::default),
    ];
    let key = room("during-restart");
    let held = a.place(&key, &region("eu")).await.expect("placed");

    nats.0.restart().await.expect("nats-server back");
    // The clients reconnect by themselves; the heartbeats go on and are seen again.
    let mut seen = None;
    for _ in 0..100 {
        if let (Some(x), Some(y)) = (sequence_of(&b, "a").await, sequence_of(&a, "b").await) {
            seen = Some((x, y));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (before_a, _) = seen.expect("both nodes visible again after the restart");
    for _ in 0..100 {
        if sequence_of(&b, "a").await.is_some_and(|s| s > before_a) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        sequence_of(&b, "a").await.is_some_and(|s| s > before_a),
        "a's heartbeats go on after the restart"
    );
    assert_eq!(b.place(&key, &region("eu")).await.expect("kept"), held);
}

/// Joins `url` as `name` with the given credentials and TLS settings.
async fn join_with(
    url: &str,
    name: &str,
    auth: NatsAuth,
    tls: NatsTls,
) -> Result<Cluster, sightline_cluster::ClusterError> {
    Cluster::join(ClusterConfig {
        nats_auth: auth,
        nats_tls: tls,
        ..config(url, name, "eu")
    })
    .await
}

fn password(user: &str, password: &str) -> NatsAuth {
    NatsAuth::UserPassword {
        user: user.to_owned(),
        password: SecretString::from(password.to_owned()),
    }
}

/// The refusal a node gets from a NATS server that does not let it in.
fn refusal(joined: Result<Cluster, sightline_cluster::ClusterError>) -> String {
    match joined {
        Err(sightline_cluster::ClusterError::Connect { message, .. }) => message,
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a node joined where it should have been turned away"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_that_wants_a_password_takes_only_nodes_that_give_it() {
    let nats = NatsServer::start_with(&NatsSecurity {
        user: Some(("sightline".to_owned(), "correct horse".to_owned())),
        nkey: None,
        tls: None,
    })
    .await
    .expect("a private nats-server with a password");
    let url = nats.url();
    let a = join_with(
        &url,
        "a",
        password("sightline", "correct horse"),
        NatsTls::default(),
    )
    .await
    .expect("the right password joins");
    let b = join_with(
        &url,
        "b",
        password("sightline", "correct horse"),
        NatsTls::default(),
    )
    .await
    .expect("the right password joins");
    wait_for_nodes(&b, &["a", "b"]).await;
    let placed = a.place(&room("r"), &region("eu")).await.expect("placed");
    assert_eq!(b.host(&room("r")).await.expect("read"), Some(placed));

    let wrong = refusal(
        join_with(
            &url,
            "c",
            password("sightline", "wrong"),
            NatsTls::default(),
        )
        .await,
    );
    assert!(wrong.contains("authorization"), "{wrong}");
    let none = refusal(join_with(&url, "d", NatsAuth::None, NatsTls::default()).await);
    assert!(none.contains("authorization"), "{none}");
    assert_eq!(node_names(&a).await, ["a", "b"], "nobody else got in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_client_certificates_only_a_node_with_one_from_the_ca_joins() {
    let pki = TestPki::new().expect("a test CA");
    let (cert, key) = pki.server();
    let nats = NatsServer::start_with(&NatsSecurity {
        user: None,
        nkey: None,
        tls: Some(NatsTlsFiles {
            cert,
            key,
            ca: pki.ca(),
        }),
    })
    .await
    .expect("a private nats-server with TLS");
    let with_certificate = NatsTls {
        required: false,
        ca_file: Some(pki.ca()),
        client_cert: Some(pki.client()),
    };
    // The server asks for TLS, so a nats:// URL gets it too.
    let a = join_with(&nats.url(), "a", NatsAuth::None, with_certificate.clone())
        .await
        .expect("a node with a client certificate joins");
    let tls_url = nats.url().replace("nats://", "tls://");
    let b = join_with(&tls_url, "b", NatsAuth::None, with_certificate)
        .await
        .expect("and through a tls:// URL");
    wait_for_nodes(&a, &["a", "b"]).await;
    let placed = b.place(&room("r"), &region("eu")).await.expect("placed");
    assert_eq!(a.host(&room("r")).await.expect("read"), Some(placed));

    let no_certificate = NatsTls {
        required: true,
        ca_file: Some(pki.ca()),
        client_cert: None,
    };
    refusal(join_with(&tls_url, "c", NatsAuth::None, no_certificate).await);
    // Without the CA the node cannot trust the server's certificate (the system's roots do not
    // hold the test CA), and says so rather than connecting in the clear.
    let unknown_server = NatsTls {
        required: true,
        ca_file: None,
        client_cert: Some(pki.client()),
    };
    refusal(join_with(&tls_url, "d", NatsAuth::None, unknown_server).await);
    assert_eq!(node_names(&a).await, ["a", "b"], "nobody else got in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_asks_for_tls_never_falls_back_to_a_plain_connection() {
    let nats = Nats::start().await;
    let plain = nats.0.url();
    refusal(
        join_with(
            &plain.replace("nats://", "tls://"),
            "a",
            NatsAuth::None,
            NatsTls::default(),
        )
        .await,
    );
    let required = NatsTls {
        required: true,
        ..NatsTls::default()
    };
    refusal(join_with(&plain, "b", NatsAuth::None, required).await);
    join_with(&plain, "c", NatsAuth::None, NatsTls::default())
        .await
        .expect("a node that does not ask for TLS joins a plain server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_with_an_nkey_user_takes_only_the_node_with_its_seed() {
    let user = nkeys::KeyPair::new_user();
    let nats = NatsServer::start_with(&NatsSecurity {
        user: None,
        nkey: Some(user.public_key()),
        tls: None,
    })
    .await
    .expect("a private nats-server with an NKey user");
    let url = nats.url();
    let seed =
        |pair: &nkeys::KeyPair| NatsAuth::NKey(SecretString::from(pair.seed().expect("a seed")));
    let a = join_with(&url, "a", seed(&user), NatsTls::default())
        .await
        .expect("the user's seed joins");
    let stranger = nkeys::KeyPair::new_user();
    let wrong = refusal(join_with(&url, "b", seed(&stranger), NatsTls::default()).await);
    assert!(wrong.contains("authorization"), "{wrong}");
    let none = refusal(join_with(&url, "c", NatsAuth::None, NatsTls::default()).await);
    assert!(none.contains("authorization"), "{none}");
    assert_eq!(node_names(&a).await, ["a"], "nobody else got in");
}
