//! Servers joined into a cluster through a private NATS server: each lists the others, a
//! stopped one drains and then disappears, `/metrics` counts the heartbeats, and a room runs on
//! the one node its placement names.

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sightline_api::AccountRole;
use sightline_cluster::{Cluster, ClusterConfig, NodeId, Placement, Region, RoomKey};
use sightline_testkit::{NatsSecurity, NatsServer, NatsTlsFiles, TestPki};

use crate::helpers::{Backend, TestApp, expect_error, expect_json};
use crate::rtc::{
    Member, Socket, connect, interview, join, join_token, next_of, packets_from, run_until, send,
};
use crate::workspace::Editor;

pub(crate) fn environment(nats: &NatsServer, id: &str, region: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("cluster.nats_url", json!(nats.url())),
        ("cluster.node_id", json!(id)),
        ("cluster.region", json!(region)),
        (
            "cluster.advertise_url",
            json!(format!("http://{id}.internal:8080")),
        ),
        ("cluster.heartbeat_ms", json!(200)),
        ("cluster.heartbeat_ttl_ms", json!(5000)),
        ("cluster.max_drain_secs", json!(60)),
    ]
}

async fn node(nats: &NatsServer, id: &str, region: &str) -> Result<TestApp> {
    TestApp::spawn_with_environment(Backend::Sqlite, &[], &environment(nats, id, region)).await
}

async fn nodes(app: &TestApp, token: &str) -> Result<Value> {
    expect_json(
        app.get("/api/admin/nodes", Some(token)).await?,
        StatusCode::OK,
    )
    .await
}

fn ids(view: &Value) -> Vec<String> {
    view["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter_map(|n| n["node"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Polls (bounded) until `check` holds for the node list `app` answers.
async fn until(app: &TestApp, token: &str, check: impl Fn(&Value) -> bool) -> Result<Value> {
    for _ in 0..200 {
        let view = nodes(app, token).await?;
        if check(&view) {
            return Ok(view);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!(
        "the node list never got there: {}",
        nodes(app, token).await?
    )
}

#[tokio::test]
async fn nodes_log_in_to_a_nats_that_wants_a_password_and_their_certificates() -> Result<()> {
    let pki = TestPki::new()?;
    let (cert, key) = pki.server();
    let nats = NatsServer::start_with(&NatsSecurity {
        user: Some(("sightline".to_owned(), "a long nats password".to_owned())),
        nkey: None,
        tls: Some(NatsTlsFiles {
            cert,
            key,
            ca: pki.ca(),
        }),
    })
    .await?;
    let (client_cert, client_key) = pki.client();
    let secured = |id: &str, password: &str| {
        let mut settings = environment(&nats, id, "eu");
        settings.extend([
            ("cluster.nats_user", json!("sightline")),
            ("cluster.nats_password", json!(password)),
            ("cluster.nats_ca_file", json!(pki.ca())),
            ("cluster.nats_cert_file", json!(client_cert)),
            ("cluster.nats_key_file", json!(client_key)),
        ]);
        settings
    };
    let first = TestApp::spawn_with_environment(
        Backend::Sqlite,
        &[],
        &secured("eu-1", "a long nats password"),
    )
    .await?;
    let _second = first
        .spawn_beside(&secured("eu-2", "a long nats password"))
        .await?;
    let admin = first
        .user_with_role("root@example.com", AccountRole::Admin)
        .await?;
    until(&first, &admin.access, |view| ids(view) == ["eu-1", "eu-2"]).await?;

    let refused = first
        .spawn_beside(&secured("eu-3", "not the password"))
        .await
        .err()
        .context("a node with the wrong password started")?;
    assert!(
        format!("{refused:#}").contains("authorization"),
        "the error says why: {refused:#}"
    );
    assert!(
        !format!("{refused:#}").contains("not the password"),
        "and does not repeat the password: {refused:#}"
    );
    Ok(())
}

#[tokio::test]
async fn a_node_logs_in_to_nats_as_an_nkey_user_with_its_seed() -> Result<()> {
    let user = nkeys::KeyPair::new_user();
    let nats = NatsServer::start_with(&NatsSecurity {
        user: None,
        nkey: Some(user.public_key()),
        tls: None,
    })
    .await?;
    let with_seed = |id: &str, seed: String| {
        let mut settings = environment(&nats, id, "eu");
        settings.push(("cluster.nats_nkey_seed", json!(seed)));
        settings
    };
    let first =
        TestApp::spawn_with_environment(Backend::Sqlite, &[], &with_seed("eu-1", user.seed()?))
            .await?;
    let admin = first
        .user_with_role("root@example.com", AccountRole::Admin)
        .await?;
    until(&first, &admin.access, |view| ids(view) == ["eu-1"]).await?;
    let stranger = nkeys::KeyPair::new_user().seed()?;
    let refused = first
        .spawn_beside(&with_seed("eu-2", stranger.clone()))
        .await
        .err()
        .context("a node with another user's seed started")?;
    assert!(
        format!("{refused:#}").contains("authorization"),
        "the error says why: {refused:#}"
    );
    assert!(
        !format!("{refused:#}").contains(&stranger),
        "and does not repeat the seed: {refused:#}"
    );
    Ok(())
}

#[tokio::test]
async fn servers_in_a_cluster_list_each_other_and_a_stopped_one_drains_then_goes() -> Result<()> {
    let nats = NatsServer::start().await?;
    let first = node(&nats, "eu-1", "eu").await?;
    let second = node(&nats, "us-1", "us").await?;
    let admin = first
        .user_with_role("root@example.com", AccountRole::Admin)
        .await?;
    let other_admin = second
        .user_with_role("root@example.com", AccountRole::Admin)
        .await?;

    let view = nodes(&first, &admin.access).await?;
    assert_eq!(view["clustered"], true);
    assert_eq!(view["this_node"], "eu-1");
    assert_eq!(ids(&view), ["eu-1", "us-1"]);
    let us = &view["nodes"][1];
    assert_eq!(us["region"], "us");
    assert_eq!(us["state"], "serving");
    assert_eq!(us["advertise_url"], "http://us-1.internal:8080");
    assert_eq!(
        ids(&nodes(&second, &other_admin.access).await?),
        ["eu-1", "us-1"]
    );

    // Only admins see the cluster.
    let candidate = first
        .user_with_role("cand@example.com", AccountRole::Candidate)
        .await?;
    expect_error(
        first
            .get("/api/admin/nodes", Some(&candidate.access))
            .await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;

    // Heartbeats are counted where Prometheus reads them.
    let metrics = second.metrics().await?;
    let sent = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sightline_cluster_heartbeats_sent_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(sent.is_some_and(|n| n >= 1), "{metrics}");

    // Stopping us-1 says "draining" before it stops; its last heartbeat counts for the
    // lifetime (5 s here), then it is gone.
    second.stop().await;
    let view = nodes(&first, &admin.access).await?;
    assert_eq!(ids(&view), ["eu-1", "us-1"], "{view}");
    assert_eq!(view["nodes"][1]["state"], "draining", "{view}");
    assert_eq!(view["nodes"][0]["state"], "serving", "{view}");
    until(&first, &admin.access, |view| ids(view) == ["eu-1"]).await?;
    Ok(())
}

#[tokio::test]
async fn a_server_alone_says_so_and_one_that_cannot_reach_nats_does_not_start() -> Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let admin = app
        .user_with_role("root@example.com", AccountRole::Admin)
        .await?;
    let view = nodes(&app, &admin.access).await?;
    assert_eq!(
        view,
        json!({ "clustered": false, "this_node": null, "nodes": [], "orphaned_rooms": [] })
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let refused = TestApp::spawn_with_environment(
        Backend::Sqlite,
        &[],
        &[(
            "cluster.nats_url",
            json!(format!("nats://127.0.0.1:{port}")),
        )],
    )
    .await;
    let err = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("NATS"), "started without its cluster: {err}");
    Ok(())
}

/// A client of the test's own that reads and moves placements without being a node.
pub(crate) async fn observer(nats: &NatsServer) -> Result<Cluster> {
    Ok(Cluster::observe(ClusterConfig {
        nats_url: nats.url(),
        nats_auth: Default::default(),
        nats_tls: Default::default(),
        node: NodeId::new("test-observer")?,
        region: Region::new("nowhere")?,
        advertise_url: String::new(),
        heartbeat_every: Duration::from_secs(1),
        heartbeat_ttl: Duration::from_secs(2),
        started_at_ms: 0,
    })
    .await?)
}

/// The room's placement as NATS holds it.
async fn placement_of(nats: &NatsServer, room: &str) -> Result<Option<Placement>> {
    Ok(observer(nats).await?.host(&RoomKey::new(room)?).await?)
}

/// Reads the socket until it closes (bounded); fails on a `removed`: a room that moved is not
/// a removal.
async fn until_closed_without_removal(socket: &mut Socket) -> Result<()> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .map_err(|_| anyhow::anyhow!("the socket stayed open"))?;
        match frame {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(&text)?;
                anyhow::ensure!(value["type"] != "removed", "told it was removed: {value}");
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => return Ok(()),
            Some(Ok(_)) => {}
        }
    }
}

/// The node of `apps` (named `eu-1`, `eu-2`, ... in order) the room's placement names.
async fn host_of(nats: &NatsServer, apps: &[&TestApp], room: &str) -> Result<usize> {
    let placed = placement_of(nats, room).await?.context("placed")?;
    let index = placed
        .node
        .as_str()
        .strip_prefix("eu-")
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(|n| n.checked_sub(1))
        .filter(|i| *i < apps.len())
        .with_context(|| format!("placed on {}", placed.node))?;
    Ok(index)
}

#[tokio::test]
async fn the_shared_editor_is_one_document_on_the_rooms_host_wherever_its_members_connect()
-> Result<()> {
    let (nats, first, second) = two_nodes().await?;
    let apps = [&first, &second];
    let meeting = interview(&first).await?;
    let id = meeting.id.clone();

    // Before anyone is in the call, the candidate opens the editor through eu-2 and the
    // interviewer through eu-1: the first editor places the room, the other is carried to its
    // node, and both edit one document.
    let mut cas = Editor::open(&second, &id, &meeting.candidate).await?;
    let mut ivy = Editor::open(&first, &id, &meeting.interviewer).await?;
    let host = host_of(&nats, &apps, &id).await?;
    let other = 1 - host;
    cas.insert(0, "print(1)\n").await?;
    ivy.wait_for_code("print(1)\n").await?;
    ivy.insert(0, "# ivy\n").await?;
    cas.wait_for_code("# ivy\nprint(1)\n").await?;

    // With nobody in the call, the open editors keep the room placed past a claim's grace,
    // and it stays one document.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let placed = placement_of(&nats, &id).await?.context("still placed")?;
    assert_eq!(placed.node.as_str(), ["eu-1", "eu-2"][host]);
    cas.insert(0, "# cas\n").await?;
    ivy.wait_for_code("# cas\n# ivy\nprint(1)\n").await?;

    // The call comes to the same node; the candidate also opens a second editor through the
    // node that does not host the room, so that one is surely carried.
    let (mut ivy_room, _) = join(apps[host], &id, &meeting.interviewer).await?;
    let (mut cas_room, joined) = join(apps[other], &id, &meeting.candidate).await?;
    let cas_id = joined["you"]["identity"]
        .as_str()
        .context("identity")?
        .to_owned();
    next_of(&mut ivy_room, "participant_joined").await?;
    let mut carried = Editor::open(apps[other], &id, &meeting.candidate).await?;
    carried.wait_for_code("# cas\n# ivy\nprint(1)\n").await?;

    // A question revealed through the node that does not host the room: its starter code
    // replaces the document where it is held, and the notice reaches every editor.
    let question = expect_json(
        apps[other]
            .post(
                "/api/questions",
                crate::questions::question(),
                Some(&meeting.interviewer),
            )
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    let qid = question["id"].as_str().context("question id")?.to_owned();
    expect_json(
        apps[other]
            .post(
                &format!("/api/interviews/{id}/questions"),
                json!({ "question_id": qid }),
                Some(&meeting.interviewer),
            )
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    expect_json(
        apps[other]
            .post(
                &format!("/api/interviews/{id}/questions/{qid}/reveal"),
                json!({ "load_starter_code": true, "language": "python" }),
                Some(&meeting.interviewer),
            )
            .await?,
        StatusCode::OK,
    )
    .await?;
    let starter = "line = input()\nprint(line[::-1])\n";
    for editor in [&mut cas, &mut ivy, &mut carried] {
        editor.wait_for_code(starter).await?;
        editor
            .notice("the reveal", |n| n["type"] == "question_revealed")
            .await?;
    }
    // Every change stored once, in order: both nodes read the same document back.
    for app in apps {
        let read = expect_json(
            app.get(
                &format!("/api/interviews/{id}/workspace"),
                Some(&meeting.interviewer),
            )
            .await?,
            StatusCode::OK,
        )
        .await?;
        assert_eq!(read["text"], starter, "{read}");
    }

    // Removed from the room on its host: out of the code through either node, at once.
    send(
        &mut ivy_room,
        json!({ "type": "moderate_remove", "participant": cas_id }),
    )
    .await?;
    next_of(&mut cas_room, "removed").await?;
    for editor in [&mut carried, &mut cas] {
        editor
            .notice("the removed candidate's access ending", |n| {
                n["error"]["code"] == "access_changed"
            })
            .await?;
    }
    for app in apps {
        let refused = Editor::open(app, &id, &meeting.candidate).await;
        let refused = refused
            .err()
            .context("a removed candidate's editor opened")?;
        assert!(refused.to_string().contains("not_found"), "{refused:#}");
        expect_error(
            app.get(
                &format!("/api/interviews/{id}/workspace"),
                Some(&meeting.candidate),
            )
            .await?,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await?;
    }
    Ok(())
}

/// A private NATS server and two nodes of region `eu` on one database (eu-1 and eu-2).
async fn two_nodes() -> Result<(NatsServer, TestApp, TestApp)> {
    let nats = NatsServer::start().await?;
    let first = node(&nats, "eu-1", "eu").await?;
    let second = first
        .spawn_beside(&environment(&nats, "eu-2", "eu"))
        .await?;
    Ok((nats, first, second))
}

/// Two nodes on one database, and an interview whose interviewer entered through eu-1 and
/// candidate through eu-2, so that one of them is relayed to the other's node.
struct TwoNodesOneRoom {
    nats: NatsServer,
    first: TestApp,
    second: TestApp,
    meeting: crate::rtc::Interview,
    room: sightline_signaling::RoomId,
    interviewer: Socket,
    candidate: Socket,
    /// The index (0: eu-1, 1: eu-2) of the node hosting the room.
    host: usize,
}

async fn two_nodes_one_room() -> Result<TwoNodesOneRoom> {
    let (nats, first, second) = two_nodes().await?;
    let meeting = interview(&first).await?;
    let room = sightline_signaling::RoomId(meeting.id.clone());
    let (mut interviewer, _) = join(&first, &meeting.id, &meeting.interviewer).await?;
    let (candidate, _) = join(&second, &meeting.id, &meeting.candidate).await?;
    next_of(&mut interviewer, "participant_joined").await?;
    let host = host_of(&nats, &[&first, &second], &meeting.id).await?;
    Ok(TwoNodesOneRoom {
        nats,
        first,
        second,
        meeting,
        room,
        interviewer,
        candidate,
        host,
    })
}

#[tokio::test]
async fn a_room_runs_on_the_node_it_is_placed_on_and_ends_there_when_it_moves() -> Result<()> {
    // The interviewer enters through eu-1, the candidate through eu-2: the room is placed on
    // one of them, by load, and runs there only; whoever entered through the other one is
    // relayed to it, and they meet.
    let TwoNodesOneRoom {
        nats,
        first,
        second,
        meeting,
        room,
        mut interviewer,
        mut candidate,
        host,
    } = two_nodes_one_room().await?;
    let apps = [&first, &second];
    let other = 1 - host;
    assert!(apps[host].hub.has_room(&room));
    assert!(!apps[other].hub.has_room(&room), "one host only");
    let placed = placement_of(&nats, &meeting.id).await?.context("placed")?;
    // Admins see the room under its node, from any node.
    let admin = first
        .user_with_role("root@example.com", AccountRole::Admin)
        .await?;
    let placed_on = |view: &Value, node: usize| -> Vec<String> {
        view["nodes"][node]["placed_rooms"]
            .as_array()
            .map(|rooms| {
                rooms
                    .iter()
                    .filter_map(|r| r["interview_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let view = nodes(apps[other], &admin.access).await?;
    assert_eq!(placed_on(&view, host), [meeting.id.as_str()], "{view}");
    assert!(placed_on(&view, other).is_empty(), "{view}");
    assert_eq!(
        view["nodes"][host]["placed_rooms"][0]["title"], "Backend engineer, systems round",
        "{view}"
    );
    assert_eq!(view["orphaned_rooms"], json!([]));

    // The placement moves to the other node behind the host's back (as after a partition): the
    // host ends its room, and both sockets, the direct and the relayed one, close as after a
    // network drop, not as a removal.
    observer(&nats)
        .await?
        .reassign(
            &RoomKey::new(&meeting.id)?,
            &placed,
            &NodeId::new(&format!("eu-{}", other + 1))?,
        )
        .await?;
    until_closed_without_removal(&mut interviewer).await?;
    until_closed_without_removal(&mut candidate).await?;
    for _ in 0..100 {
        if !apps[host].hub.has_room(&room) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !apps[host].hub.has_room(&room),
        "the old host still hosts the room"
    );
    // The old host does not release what is no longer its placement.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let now = placement_of(&nats, &meeting.id)
        .await?
        .expect("still placed");
    assert_eq!(now.node.as_str(), format!("eu-{}", other + 1));
    let view = nodes(apps[host], &admin.access).await?;
    assert_eq!(placed_on(&view, other), [meeting.id.as_str()], "{view}");
    Ok(())
}

/// Asks `app` to `start` or `stop` recording `meeting` as its interviewer.
async fn recording_control(
    app: &TestApp,
    meeting: &crate::rtc::Interview,
    action: &str,
) -> Result<reqwest::Response> {
    let path = format!("/api/interviews/{}/recording/{action}", meeting.id);
    app.post(&path, json!({}), Some(&meeting.interviewer)).await
}

/// A counter or gauge from `/metrics` text.
pub(crate) fn metric(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test]
async fn people_entering_through_different_nodes_meet_and_exchange_media_and_resume_anywhere()
-> Result<()> {
    let (nats, first, second) = two_nodes().await?;
    let third = first
        .spawn_beside(&environment(&nats, "eu-3", "eu"))
        .await?;
    let apps = [&first, &second, &third];
    let meeting = interview(&first).await?;
    let room = sightline_signaling::RoomId(meeting.id.clone());

    // The interviewer enters through eu-2 and the room goes to one of the three nodes, by load;
    // the candidate enters through a node that does not host it, so is relayed.
    let mut members = vec![Member::join(&second, &meeting.id, &meeting.interviewer, 1).await?];
    let host = host_of(&nats, &apps, &meeting.id).await?;
    let edge = [2, 0, 1]
        .into_iter()
        .find(|i| *i != host)
        .context("a node that does not host")?;
    members.push(Member::join(apps[edge], &meeting.id, &meeting.candidate, 2).await?);
    for (i, app) in apps.iter().enumerate() {
        assert_eq!(app.hub.has_room(&room), i == host, "eu-{} hosts?", i + 1);
    }
    // Real media both ways, straight to the host's media addresses.
    let mut counter = 0;
    run_until(&mut members, &mut counter, "media both ways", |m| {
        let (video, audio) = packets_from(&m[0], 2);
        let (video_back, audio_back) = packets_from(&m[1], 1);
        video.min(audio).min(video_back).min(audio_back) >= 30
    })
    .await?;
    // The relayed session is counted at its two ends.
    let edge_metrics = apps[edge].metrics().await?;
    assert_eq!(
        metric(&edge_metrics, "sightline_cluster_relayed_sessions"),
        Some(1.0),
        "{edge_metrics}"
    );
    assert_eq!(
        metric(&edge_metrics, "sightline_cluster_relays_dialed_total"),
        Some(1.0),
        "{edge_metrics}"
    );
    let host_metrics = apps[host].metrics().await?;
    let accepted = metric(&host_metrics, "sightline_cluster_relays_accepted_total");
    assert!(accepted >= Some(1.0), "{host_metrics}");

    // The candidate's signaling connection drops (its edge went away, as far as it can tell).
    // Media does not pass through the edge: it keeps flowing while signaling is gone.
    let host_relays = metric(
        &apps[host].metrics().await?,
        "sightline_cluster_relayed_sessions",
    );
    members[1].ws.close(None).await?;
    let before = packets_from(&members[0], 2);
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        for member in members.iter_mut() {
            member.send_media(counter)?;
            member.publisher.pump(&mut member.pub_events)?;
            member.subscriber.pump(&mut member.sub_events)?;
        }
        counter += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let during = packets_from(&members[0], 2);
    assert!(
        during.0 > before.0 && during.1 > before.1,
        "media flowed while signaling was away: {before:?} then {during:?}"
    );
    // Both ends of the dropped session close (the edge said so). The host may relay the
    // interviewer's session too, if eu-2 does not host the room: one fewer there.
    let closed = [(edge, Some(0.0)), (host, host_relays.map(|n| n - 1.0))];
    for (end, expected) in closed {
        let mut open = None;
        for _ in 0..100 {
            let metrics = apps[end].metrics().await?;
            open = metric(&metrics, "sightline_cluster_relayed_sessions");
            if open == expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(open, expected, "eu-{}'s relayed sessions", end + 1);
    }
    // It resumes with its resume token through the third node, relayed again: the same media
    // connections go on, nothing is renegotiated.
    let third_way = (0..3)
        .find(|i| *i != host && *i != edge)
        .context("a third node")?;
    let dialed = |metrics: &str| metric(metrics, "sightline_cluster_relays_dialed_total");
    let dialed_before = dialed(&apps[third_way].metrics().await?);
    let resumed = members[1]
        .resume(apps[third_way], &meeting.id, &meeting.candidate)
        .await?;
    assert!(resumed["participants"].is_array(), "{resumed}");
    // (eu-2 relays the interviewer too when it does not host the room.)
    assert_eq!(
        dialed(&apps[third_way].metrics().await?),
        dialed_before.map(|n| n + 1.0),
        "the resume was relayed by eu-{}",
        third_way + 1
    );
    let resumed_at = packets_from(&members[0], 2);
    run_until(&mut members, &mut counter, "media after the resume", |m| {
        let now = packets_from(&m[0], 2);
        now.0 >= resumed_at.0 + 30 && now.1 >= resumed_at.1 + 30
    })
    .await?;
    for member in &members {
        assert_eq!(member.media_resets, 0, "no media connection was replaced");
        assert_eq!(member.resets, 0, "no subscriber connection was replaced");
    }

    // Recording is started and stopped through a node that does not host the room: the
    // recorder runs on the host (where the media is), and everyone in the room hears of it.
    let recording = format!("/api/interviews/{}/recording", meeting.id);
    expect_json(
        recording_control(apps[edge], &meeting, "start").await?,
        StatusCode::ACCEPTED,
    )
    .await?;
    let notice = next_of(&mut members[1].ws, "recording").await?;
    assert_ne!(notice["recording"]["state"], "off", "{notice}");
    let status = expect_json(
        apps[host]
            .get(&recording, Some(&meeting.interviewer))
            .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(status["active"], true, "the host records: {status}");
    // Every node answers the status from the host, not from its own memory.
    for app in &apps {
        let status = expect_json(
            app.get(&recording, Some(&meeting.interviewer)).await?,
            StatusCode::OK,
        )
        .await?;
        assert_eq!(status["active"], true, "every node says so: {status}");
    }
    expect_json(
        recording_control(apps[edge], &meeting, "stop").await?,
        StatusCode::ACCEPTED,
    )
    .await?;
    // The host's controller ends its recording a moment after the stop (bounded wait).
    let mut active = Value::Null;
    for _ in 0..100 {
        let status = expect_json(
            apps[edge]
                .get(&recording, Some(&meeting.interviewer))
                .await?,
            StatusCode::OK,
        )
        .await?;
        active = status["active"].clone();
        if active == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(active, false, "stopped, as every node says");
    // Never two hosts (a recorder in a copy of the room would make one).
    for (i, app) in apps.iter().enumerate() {
        assert_eq!(app.hub.has_room(&room), i == host, "eu-{} hosts?", i + 1);
    }

    // Taking someone out works through any node: the candidate's invite is reissued through a
    // node that does not host the room, and the host removes them at once.
    let scheduled = expect_json(
        first
            .get(
                &format!("/api/interviews/{}", meeting.id),
                Some(&meeting.interviewer),
            )
            .await?,
        StatusCode::OK,
    )
    .await?;
    let candidate_id = scheduled["participants"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["role"] == "candidate"))
        .and_then(|p| p["id"].as_str())
        .with_context(|| format!("a candidate in {scheduled}"))?
        .to_owned();
    expect_json(
        apps[edge]
            .post(
                &format!(
                    "/api/interviews/{}/participants/{}/invite",
                    meeting.id, candidate_id
                ),
                json!({}),
                Some(&meeting.interviewer),
            )
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    let removed = next_of(&mut members[1].ws, "removed").await?;
    assert_eq!(removed["reason"], "session_ended", "{removed}");
    Ok(())
}

#[tokio::test]
async fn a_room_that_ends_gives_its_placement_up() -> Result<()> {
    let nats = NatsServer::start().await?;
    let first = node(&nats, "eu-1", "eu").await?;
    let meeting = interview(&first).await?;
    let (mut interviewer, _) = join(&first, &meeting.id, &meeting.interviewer).await?;
    assert!(placement_of(&nats, &meeting.id).await?.is_some());
    send(&mut interviewer, json!({ "type": "leave" })).await?;
    // Kept for a short grace after the last join (one may be about to start the room), then
    // released: bounded wait.
    for _ in 0..150 {
        if placement_of(&nats, &meeting.id).await?.is_none() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("the ended room stayed placed")
}

/// Another interview of the interviewer `interview` made (`ivy@example.com`).
async fn second_interview(app: &TestApp) -> Result<String> {
    let ivy = app.login("ivy@example.com").await?;
    let created = app
        .schedule(
            &ivy.access,
            crate::helpers::interview_body("other@example.com"),
        )
        .await?;
    crate::helpers::text(&created["interview"]["id"])
}

#[tokio::test]
async fn people_join_a_room_already_up_while_nats_is_away() -> Result<()> {
    let mut nats = NatsServer::start().await?;
    let first = node(&nats, "eu-1", "eu").await?;
    let meeting = interview(&first).await?;
    let (mut interviewer, _) = join(&first, &meeting.id, &meeting.interviewer).await?;

    nats.stop().await?;
    // The room is known here: the candidate gets in without asking NATS.
    let (_candidate, joined) = join(&first, &meeting.id, &meeting.candidate).await?;
    assert_eq!(
        joined["participants"].as_array().map(Vec::len),
        Some(1),
        "{joined}"
    );
    next_of(&mut interviewer, "participant_joined").await?;
    // A room that is not up here cannot be placed meanwhile: refused, not guessed.
    let other = second_interview(&first).await?;
    let token = join_token(&first, &other, &meeting.interviewer).await?;
    let mut socket = connect(&first, &other).await?;
    send(
        &mut socket,
        json!({ "type": "join", "version": 1, "token": token }),
    )
    .await?;
    let refused = next_of(&mut socket, "error").await?;
    assert_eq!(refused["code"], "unavailable", "{refused}");
    nats.start_again().await?;
    Ok(())
}

#[tokio::test]
async fn a_draining_node_keeps_its_rooms_until_they_end_and_takes_no_new_one() -> Result<()> {
    let TwoNodesOneRoom {
        nats,
        mut first,
        mut second,
        meeting,
        room,
        mut interviewer,
        mut candidate,
        host,
    } = two_nodes_one_room().await?;
    let (draining, other) = if host == 0 {
        (&mut first, &mut second)
    } else {
        (&mut second, &mut first)
    };

    // The host is asked to stop: it says it is not ready, and keeps serving its room.
    draining.ask_to_stop();
    let mut ready = StatusCode::OK;
    for _ in 0..100 {
        ready = draining.get("/readyz", None).await?.status();
        if ready == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        ready,
        StatusCode::SERVICE_UNAVAILABLE,
        "draining is not ready"
    );
    assert_eq!(other.get("/readyz", None).await?.status(), StatusCode::OK);
    send(
        &mut candidate,
        json!({ "type": "chat", "text": "still in the room" }),
    )
    .await?;
    let chat = next_of(&mut interviewer, "chat").await?;
    assert_eq!(chat["text"], "still in the room");
    assert!(draining.hub.has_room(&room));

    // A new room is not placed on it, even when its first participant reaches it.
    let newer = second_interview(&*draining).await?;
    let (_newcomer, _) = join(&*draining, &newer, &meeting.interviewer).await?;
    let placed = placement_of(&nats, &newer).await?.context("placed")?;
    assert_eq!(
        placed.node.as_str(),
        format!("eu-{}", 2 - host),
        "the new room went to the serving node"
    );
    assert!(
        !draining.stopped(Duration::from_millis(500)).await,
        "it waits for its room"
    );

    // Its room ends: it stops.
    for socket in [&mut interviewer, &mut candidate] {
        send(socket, json!({ "type": "leave" })).await?;
    }
    assert!(
        draining.stopped(Duration::from_secs(30)).await,
        "stopped once its room ended"
    );
    assert!(!draining.hub.has_room(&room));
    Ok(())
}

#[tokio::test]
async fn a_control_asked_of_another_node_while_nats_is_away_is_refused_not_guessed() -> Result<()> {
    let mut nats = NatsServer::start().await?;
    let first = node(&nats, "eu-1", "eu").await?;
    let second = first
        .spawn_beside(&environment(&nats, "eu-2", "eu"))
        .await?;
    let meeting = interview(&first).await?;
    let (_interviewer, _) = join(&first, &meeting.id, &meeting.interviewer).await?;
    let apps = [&first, &second];
    let host = host_of(&nats, &apps, &meeting.id).await?;
    let other = apps[1 - host];
    expect_json(
        recording_control(apps[host], &meeting, "start").await?,
        StatusCode::ACCEPTED,
    )
    .await?;

    // The other node cannot ask NATS where the room runs: it says so, rather than answering
    // "not recording" from its own memory.
    nats.stop().await?;
    expect_error(
        recording_control(other, &meeting, "stop").await?,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    )
    .await?;

    // NATS back: the stop reaches the host (bounded wait for both nodes to reconnect).
    nats.start_again().await?;
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..100 {
        status = recording_control(other, &meeting, "stop").await?.status();
        if status != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, StatusCode::ACCEPTED, "stopped on the host");
    Ok(())
}

/// Puts a recording of `interview` made on node `recorded_on` into the database, as that node
/// would have left it: still recording when it died or lost the room, or `stopped` on purpose
/// before it could finish.
async fn recording_row(
    app: &TestApp,
    id: &str,
    interview: &str,
    recorded_on: &str,
    stopped: bool,
) -> Result<()> {
    let mut db = app.db().await?;
    let now = jiff::Timestamp::now().as_second();
    sqlx::query(
        "INSERT INTO recordings (id, interview_id, status, started_by, started_at, node, \
         stopped_at) VALUES ($1, $2, 'recording', 'user:the-starter', $3, $4, $5)",
    )
    .bind(id)
    .bind(interview)
    .bind(now - 60)
    .bind(recorded_on)
    .bind(stopped.then_some(now - 5))
    .execute(&mut db)
    .await?;
    Ok(())
}

async fn recording_active(app: &TestApp, interview: &str, token: &str) -> Result<bool> {
    let status = expect_json(
        app.get(
            &format!("/api/interviews/{interview}/recording"),
            Some(token),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    Ok(status["active"] == true)
}

/// The recordings of `interview` other than `except`: (started_by, node, stopped).
async fn other_recordings(
    app: &TestApp,
    interview: &str,
    except: &str,
) -> Result<Vec<(String, Option<String>, bool)>> {
    let mut db = app.db().await?;
    let rows: Vec<(String, Option<String>, Option<i64>)> = sqlx::query_as(
        "SELECT started_by, node, stopped_at FROM recordings \
         WHERE interview_id = $1 AND id <> $2",
    )
    .bind(interview)
    .bind(except)
    .fetch_all(&mut db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(by, node, stopped)| (by, node, stopped.is_some()))
        .collect())
}

async fn carried_to(app: &TestApp, recording: &str) -> Result<Option<String>> {
    let mut db = app.db().await?;
    let (carried,): (Option<String>,) =
        sqlx::query_as("SELECT carried_to FROM recordings WHERE id = $1")
            .bind(recording)
            .fetch_one(&mut db)
            .await?;
    Ok(carried)
}

#[tokio::test]
async fn a_recording_that_lost_its_room_goes_on_where_the_room_comes_up_again() -> Result<()> {
    let nats = NatsServer::start().await?;
    let app = node(&nats, "eu-1", "eu").await?;
    let meeting = interview(&app).await?;
    let other = second_interview(&app).await?;
    // eu-9 was recording `meeting` when it died (or lost the room); it had stopped recording
    // `other` on purpose (someone pressed stop) and died before finishing it.
    recording_row(&app, "lost-with-eu-9", &meeting.id, "eu-9", false).await?;
    recording_row(&app, "stopped-on-eu-9", &other, "eu-9", true).await?;
    for interview in [&meeting.id, &other] {
        let consent = app
            .post(
                &format!("/api/interviews/{interview}/recording/consent"),
                json!({}),
                Some(&meeting.interviewer),
            )
            .await?;
        assert_eq!(consent.status(), StatusCode::NO_CONTENT);
    }

    // Both rooms come up on eu-1, `other` first (rooms newly hosted are looked at in order).
    let (_in_other, _) = join(&app, &other, &meeting.interviewer).await?;
    let (_in_meeting, _) = join(&app, &meeting.id, &meeting.interviewer).await?;
    let mut carried = false;
    for _ in 0..100 {
        if recording_active(&app, &meeting.id, &meeting.interviewer).await? {
            carried = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(carried, "the recording that lost its room did not go on");
    // The controller says it is active as soon as it runs; marking what it carries over is
    // its next step, which a busy machine may not have reached yet.
    let mut carried_here = None;
    for _ in 0..100 {
        carried_here = carried_to(&app, "lost-with-eu-9").await?;
        if carried_here.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(carried_here.as_deref(), Some("eu-1"));
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = other_recordings(&app, &meeting.id, "lost-with-eu-9").await?;
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        rows,
        [(
            "user:the-starter".to_owned(),
            Some("eu-1".to_owned()),
            false
        )],
        "a new recording on the room's new host, under the same starter"
    );
    // The stopped one was looked at first and left alone.
    assert!(!recording_active(&app, &other, &meeting.interviewer).await?);
    assert_eq!(carried_to(&app, "stopped-on-eu-9").await?, None);

    // A stop marks the new recording stopped on purpose, so it is never carried over itself.
    expect_json(
        recording_control(&app, &meeting, "stop").await?,
        StatusCode::ACCEPTED,
    )
    .await?;
    for _ in 0..100 {
        rows = other_recordings(&app, &meeting.id, "lost-with-eu-9").await?;
        if rows.iter().all(|(_, _, stopped)| *stopped) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rows.iter().all(|(_, _, stopped)| *stopped), "{rows:?}");
    Ok(())
}

#[tokio::test]
async fn a_room_placed_on_a_dead_node_reads_as_not_recording_not_as_an_error() -> Result<()> {
    let nats = NatsServer::start().await?;
    let app = node(&nats, "eu-1", "eu").await?;
    let meeting = interview(&app).await?;
    let (_ivy, _) = join(&app, &meeting.id, &meeting.interviewer).await?;
    let placed = placement_of(&nats, &meeting.id).await?.context("placed")?;
    // The placement names a node that never beat (as one whose host died and nobody rejoined).
    observer(&nats)
        .await?
        .reassign(&RoomKey::new(&meeting.id)?, &placed, &NodeId::new("eu-9")?)
        .await?;
    let mut ended = false;
    for _ in 0..100 {
        if !app
            .hub
            .has_room(&sightline_signaling::RoomId(meeting.id.clone()))
        {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ended, "eu-1 kept a room placed elsewhere");
    assert!(!recording_active(&app, &meeting.id, &meeting.interviewer).await?);
    let proctoring = expect_json(
        app.get(
            &format!("/api/interviews/{}/proctoring", meeting.id),
            Some(&meeting.interviewer),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(proctoring["running"], false);
    Ok(())
}

/// A media tap stand-in for a recorder the test drives itself.
struct Frames(tokio::sync::mpsc::UnboundedReceiver<sightline_sfu::TapPacket>);

impl sightline_recorder::PacketSource for Frames {
    async fn recv(&mut self) -> Option<sightline_sfu::TapPacket> {
        self.0.recv().await
    }

    fn request_keyframe(&self) {}
}

/// Records three seconds of camera video as `recording` of `interview` into the object store
/// at `store_dir`, as a node does, then dies: its runtime stops mid-recording, leaving stored
/// segments and a manifest that still says it records (its spool is lost with it).
fn record_then_die(store_dir: std::path::PathBuf, recording: &str, interview: &str) -> Result<()> {
    use sightline_recorder::{LocalStore, ObjectStore, Recorder, TakeInfo};
    use sightline_sfu::{Codec, TapPacket, TrackId};
    use std::sync::Arc;
    let (recording, interview) = (recording.to_owned(), interview.to_owned());
    std::thread::spawn(move || -> Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let spool = tempfile::tempdir()?;
        runtime.block_on(async {
            let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(&store_dir));
            let recorder = Recorder::with_segment(store, spool.path(), Duration::from_secs(1));
            let started = recorder.start(&recording, &interview)?;
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            started.add_take(
                TakeInfo {
                    id: "t1".into(),
                    participant: "ivy".into(),
                    source: "camera".into(),
                    codec: Codec::Vp8,
                },
                Frames(rx),
            );
            let frames = &sightline_testkit::media()?.video[1];
            let start = std::time::Instant::now();
            for n in 0..90u64 {
                let frame = &frames[n as usize % frames.len()];
                let mut payload = vec![0x10];
                payload.extend_from_slice(&frame.data);
                let arrival = start + Duration::from_micros(n * 33_333);
                tokio::time::sleep_until(arrival.into()).await;
                tx.send(TapPacket {
                    track: TrackId(1),
                    codec: Codec::Vp8,
                    seq: n,
                    rtp_time: n * 3000,
                    marker: true,
                    keyframe: frame.keyframe,
                    payload: Arc::from(payload),
                    arrival,
                    sender_time: None,
                })?;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            std::mem::forget(tx);
            std::mem::forget(started);
            Ok::<(), anyhow::Error>(())
        })?;
        runtime.shutdown_background();
        Ok(())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the dying recorder panicked"))?
}

#[tokio::test]
async fn the_room_s_new_host_takes_the_recording_itself_over_and_marks_the_interruption()
-> Result<()> {
    let nats = NatsServer::start().await?;
    let app = node(&nats, "eu-1", "eu").await?;
    let meeting = interview(&app).await?;
    // eu-9 recorded into the store eu-1 reads too (a shared store) and died.
    let store_dir = app.settings.data.dir.join("recordings");
    record_then_die(store_dir.clone(), "taken-from-eu-9", &meeting.id)?;
    recording_row(&app, "taken-from-eu-9", &meeting.id, "eu-9", false).await?;
    let consent = app
        .post(
            &format!("/api/interviews/{}/recording/consent", meeting.id),
            json!({}),
            Some(&meeting.interviewer),
        )
        .await?;
    assert_eq!(consent.status(), StatusCode::NO_CONTENT);

    let (_ivy, _) = join(&app, &meeting.id, &meeting.interviewer).await?;
    let mut node_now = None;
    for _ in 0..100 {
        let mut db = app.db().await?;
        let (node,): (Option<String>,) =
            sqlx::query_as("SELECT node FROM recordings WHERE id = 'taken-from-eu-9'")
                .fetch_one(&mut db)
                .await?;
        node_now = node;
        if node_now.as_deref() == Some("eu-1")
            && recording_active(&app, &meeting.id, &meeting.interviewer).await?
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        node_now.as_deref(),
        Some("eu-1"),
        "the new host took it over"
    );
    assert!(recording_active(&app, &meeting.id, &meeting.interviewer).await?);
    assert!(
        other_recordings(&app, &meeting.id, "taken-from-eu-9")
            .await?
            .is_empty(),
        "no second recording"
    );

    // Stopped here, the whole recording is finished here, eu-9's part included.
    expect_json(
        recording_control(&app, &meeting, "stop").await?,
        StatusCode::ACCEPTED,
    )
    .await?;
    let mut status = String::new();
    for _ in 0..200 {
        let mut db = app.db().await?;
        (status,) = sqlx::query_as("SELECT status FROM recordings WHERE id = 'taken-from-eu-9'")
            .fetch_one(&mut db)
            .await?;
        if status != "recording" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "complete");
    let manifest: Value = serde_json::from_slice(&std::fs::read(
        store_dir.join("recordings/taken-from-eu-9/manifest.json"),
    )?)?;
    let interruptions = manifest["interruptions"]
        .as_array()
        .context("interruptions")?;
    assert_eq!(interruptions.len(), 1, "{manifest}");
    let first = &manifest["tracks"][0];
    assert_eq!(first["id"], "t1");
    assert_eq!(interruptions[0]["start_ms"], first["end_ms"], "{manifest}");
    let file = first["file"].as_str().context("eu-9's take joined")?;
    assert!(store_dir.join(file).is_file());
    Ok(())
}

#[tokio::test]
async fn a_recording_whose_live_host_lost_the_room_goes_on_at_the_new_host() -> Result<()> {
    let TwoNodesOneRoom {
        nats,
        first,
        second,
        meeting,
        room,
        mut interviewer,
        mut candidate,
        host,
    } = two_nodes_one_room().await?;
    let apps = [&first, &second];
    let other = 1 - host;
    expect_json(
        recording_control(apps[host], &meeting, "start").await?,
        StatusCode::ACCEPTED,
    )
    .await?;
    let consent = apps[host]
        .post(
            &format!("/api/interviews/{}/recording/consent", meeting.id),
            json!({}),
            Some(&meeting.candidate),
        )
        .await?;
    assert_eq!(consent.status(), StatusCode::NO_CONTENT);
    let mut on = false;
    for _ in 0..50 {
        let notice = next_of(&mut interviewer, "recording").await?;
        if notice["recording"]["state"] == "on" {
            on = true;
            break;
        }
    }
    assert!(on, "the recording began");
    let mut db = first.db().await?;
    let (recording, started_by): (String, String) =
        sqlx::query_as("SELECT id, started_by FROM recordings WHERE interview_id = $1")
            .bind(&meeting.id)
            .fetch_one(&mut db)
            .await?;

    // The room is placed on the other node behind the host's back (a partition): the host,
    // alive, ends its room, and its recorder takes that for the room ending, not emptying.
    let placed = placement_of(&nats, &meeting.id).await?.context("placed")?;
    let new_host = format!("eu-{}", other + 1);
    observer(&nats)
        .await?
        .reassign(
            &RoomKey::new(&meeting.id)?,
            &placed,
            &NodeId::new(&new_host)?,
        )
        .await?;
    until_closed_without_removal(&mut interviewer).await?;
    until_closed_without_removal(&mut candidate).await?;
    let (_back, _) = join(apps[other], &meeting.id, &meeting.interviewer).await?;
    assert!(apps[other].hub.has_room(&room));

    // The stores are the nodes' own, so the new host goes on in a new recording; the old one
    // was not stopped on purpose, and is finished by its node.
    let mut carried = None;
    for _ in 0..150 {
        carried = carried_to(apps[host], &recording).await?;
        if carried.is_some()
            && recording_active(apps[other], &meeting.id, &meeting.interviewer).await?
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        carried,
        Some(new_host.clone()),
        "carried over to the new host"
    );
    assert!(recording_active(apps[other], &meeting.id, &meeting.interviewer).await?);
    let (stopped, status): (Option<i64>, String) = {
        let mut status = (None, String::new());
        for _ in 0..150 {
            status = sqlx::query_as("SELECT stopped_at, status FROM recordings WHERE id = $1")
                .bind(&recording)
                .fetch_one(&mut db)
                .await?;
            if status.1 != "recording" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        status
    };
    assert_eq!(stopped, None, "the room ended under it: not a stop");
    assert_eq!(status, "complete", "finished by the node that made it");
    let rows = other_recordings(apps[host], &meeting.id, &recording).await?;
    assert_eq!(rows, [(started_by, Some(new_host), false)]);
    Ok(())
}
