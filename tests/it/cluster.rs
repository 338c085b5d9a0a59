//! Servers joined into a cluster through a private NATS server: each lists the others, a
//! stopped one drains and then disappears, `/metrics` counts the heartbeats, and a room runs on
//! the one node its placement names.

use std::time::Duration;

use anyhow::Result;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sightline_api::AccountRole;
use sightline_cluster::{Cluster, ClusterConfig, NodeId, Placement, Region, RoomKey};
use sightline_testkit::NatsServer;

use crate::helpers::{Backend, TestApp, expect_error, expect_json};
use crate::rtc::{Socket, connect, interview, join, join_token, next_of, send};

fn environment(nats: &NatsServer, id: &str, region: &str) -> Vec<(&'static str, Value)> {
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
        json!({ "clustered": false, "this_node": null, "nodes": [] })
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
async fn observer(nats: &NatsServer) -> Result<Cluster> {
    Ok(Cluster::observe(ClusterConfig {
        nats_url: nats.url(),
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

#[tokio::test]
async fn a_room_runs_on_the_node_it_is_placed_on_and_ends_there_when_it_moves() -> Result<()> {
    let nats = NatsServer::start().await?;
    let first = node(&nats, "eu-1", "eu").await?;
    let second = first
        .spawn_beside(&environment(&nats, "eu-2", "eu"))
        .await?;
    let meeting = interview(&first).await?;

    // The interviewer enters through eu-1: the room is placed there.
    let (mut interviewer, _) = join(&first, &meeting.id, &meeting.interviewer).await?;
    let placed = placement_of(&nats, &meeting.id).await?.expect("placed");
    assert_eq!(placed.node.as_str(), "eu-1");

    // The candidate reaches eu-2: told where the room is, before the join token is spent.
    let token = join_token(&second, &meeting.id, &meeting.candidate).await?;
    let mut elsewhere = connect(&second, &meeting.id).await?;
    send(
        &mut elsewhere,
        json!({ "type": "join", "version": 1, "token": token }),
    )
    .await?;
    let refused = next_of(&mut elsewhere, "error").await?;
    assert_eq!(refused["code"], "room_elsewhere", "{refused}");
    let why = refused["message"].as_str().unwrap_or_default();
    assert!(
        why.contains("eu-1") && why.contains("http://eu-1.internal:8080"),
        "{why}"
    );
    assert!(
        !second
            .hub
            .has_room(&sightline_signaling::RoomId(meeting.id.clone()))
    );
    // Through eu-1 the same token works, and they meet.
    let mut candidate = connect(&first, &meeting.id).await?;
    send(
        &mut candidate,
        json!({ "type": "join", "version": 1, "token": token }),
    )
    .await?;
    next_of(&mut candidate, "joined").await?;
    next_of(&mut interviewer, "participant_joined").await?;

    // The placement moves to eu-2 behind eu-1's back (as after a partition): eu-1 ends its
    // room, and its sockets close as after a network drop, not as a removal.
    observer(&nats)
        .await?
        .reassign(&RoomKey::new(&meeting.id)?, &placed, &NodeId::new("eu-2")?)
        .await?;
    until_closed_without_removal(&mut interviewer).await?;
    until_closed_without_removal(&mut candidate).await?;
    let room = sightline_signaling::RoomId(meeting.id.clone());
    for _ in 0..100 {
        if !first.hub.has_room(&room) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!first.hub.has_room(&room), "eu-1 still hosts the room");
    // eu-1 does not release what is no longer its placement.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let now = placement_of(&nats, &meeting.id)
        .await?
        .expect("still placed");
    assert_eq!(now.node.as_str(), "eu-2");
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
