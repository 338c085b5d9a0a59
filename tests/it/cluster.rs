//! Servers joined into a cluster through a private NATS server: each lists the others, a
//! stopped one drains and then disappears, and `/metrics` counts the heartbeats.

use std::time::Duration;

use anyhow::Result;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sightline_api::AccountRole;
use sightline_testkit::NatsServer;

use crate::helpers::{Backend, TestApp, expect_error, expect_json};

async fn node(nats: &NatsServer, id: &str, region: &str) -> Result<TestApp> {
    TestApp::spawn_with_environment(
        Backend::Sqlite,
        &[],
        &[
            ("cluster.nats_url", json!(nats.url())),
            ("cluster.node_id", json!(id)),
            ("cluster.region", json!(region)),
            (
                "cluster.advertise_url",
                json!(format!("http://{id}.internal:8080")),
            ),
            ("cluster.heartbeat_ms", json!(200)),
            ("cluster.heartbeat_ttl_ms", json!(5000)),
        ],
    )
    .await
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
