//! `--nodes N`: what a relay between nodes costs a participant. Starts a private `nats-server`
//! and N `sightline serve` processes on one new PostgreSQL database, schedules interviews of two
//! participants, and joins them one after the other through the nodes in turn (each room is
//! placed by load, so some joins reach the room's host and some a node that relays to it). Per
//! join it measures the time from opening the WebSocket to `joined`, and then twenty `ping`s, the
//! round trip of one signaling message; each join is counted as direct or relayed by whether its
//! node's `sightline_cluster_relays_dialed_total` moved.
//!
//! Everything listens on 127.0.0.1; the run is bounded by the number of interviews.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;
use sightline_benches::post;
use sightline_signaling::protocol::{ClientMessage, ServerMessage};
use sightline_testkit::RtcClient;

use crate::{METRICS_TOKEN, PASSWORD, Server, percentile, start_server};

/// Pings per joined participant.
const PINGS: u64 = 20;
/// How long one answer may take before the run fails.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A private `nats-server -js`, stopped on drop.
struct Nats {
    child: Child,
    url: String,
    _store: tempfile::TempDir,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_nats() -> Result<Nats> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let store = tempfile::tempdir()?;
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nats-server (Debian: apt install nats-server)")?;
    let nats = Nats {
        child,
        url: format!("nats://127.0.0.1:{port}"),
        _store: store,
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(nats);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("nats-server did not start");
}

/// A database of the run's own, dropped on drop.
struct Database {
    admin: String,
    name: String,
}

impl Database {
    fn create(admin: &str) -> Result<Database> {
        let name = format!("sightline_load_{}", std::process::id());
        let database = Database {
            admin: admin.to_owned(),
            name,
        };
        database.psql(&format!("DROP DATABASE IF EXISTS {}", database.name))?;
        database.psql(&format!("CREATE DATABASE {}", database.name))?;
        Ok(database)
    }

    fn psql(&self, statement: &str) -> Result<()> {
        let status = Command::new("psql")
            .env("PGOPTIONS", "--client-min-messages=warning")
            .args([&self.admin, "-q", "-c", statement])
            .stdout(Stdio::null())
            .status()
            .context("running psql")?;
        if !status.success() {
            bail!("psql failed: {statement}");
        }
        Ok(())
    }

    /// The new database's URL: the admin URL with its name replaced (its query kept).
    fn url(&self) -> Result<String> {
        let (address, query) = match self.admin.split_once('?') {
            Some((address, query)) => (address, format!("?{query}")),
            None => (self.admin.as_str(), String::new()),
        };
        let (base, _) = address
            .rsplit_once('/')
            .context("a database URL ending in /name")?;
        Ok(format!("{base}/{}{query}", self.name))
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // The nodes were killed; their connections may linger a moment (no `WITH (FORCE)`,
        // which needs PostgreSQL 13).
        let _ = self.psql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        ));
        if let Err(err) = self.psql(&format!("DROP DATABASE IF EXISTS {}", self.name)) {
            eprintln!("the run's database {} was left behind: {err}", self.name);
        }
    }
}

/// One measured join: whether it was relayed, whether it placed the room, and its times.
struct Joined {
    relayed: bool,
    first: bool,
    join_us: u64,
    pings_us: Vec<u64>,
}

async fn relays_dialed(client: &reqwest::Client, node: &Server) -> Result<f64> {
    let text = client
        .get(format!("{}/metrics", node.base))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(text
        .lines()
        .find_map(|line| {
            line.strip_prefix("sightline_cluster_relays_dialed_total ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0))
}

/// Joins `interview` through `node` with a fresh join token of `access`, measured.
async fn join(
    client: &reqwest::Client,
    node: &Server,
    interview: &str,
    access: &str,
    first: bool,
) -> Result<(RtcClient, Joined)> {
    let token = post(
        client,
        format!("{}/api/interviews/{interview}/join", node.base),
        json!({}),
        Some(access),
    )
    .await?["token"]
        .as_str()
        .context("join token")?
        .to_owned();
    let before = relays_dialed(client, node).await?;
    let url = format!("{}/rtc/{interview}", node.base.replacen("http", "ws", 1));
    let started = Instant::now();
    let mut socket = RtcClient::join(&url, &token).await?;
    socket
        .until(ANSWER_TIMEOUT, |m| {
            matches!(m, ServerMessage::Joined { .. }).then_some(())
        })
        .await?;
    let join_us = micros(started.elapsed());
    let relayed = relays_dialed(client, node).await? > before;
    let mut pings_us = Vec::new();
    for nonce in 0..PINGS {
        let sent = Instant::now();
        socket.send(&ClientMessage::Ping { nonce }).await?;
        socket
            .until(ANSWER_TIMEOUT, |m| {
                matches!(m, ServerMessage::Pong { nonce: n } if *n == nonce).then_some(())
            })
            .await?;
        pings_us.push(micros(sent.elapsed()));
    }
    Ok((
        socket,
        Joined {
            relayed,
            first,
            join_us,
            pings_us,
        },
    ))
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// Runs the measurement and prints its table.
pub async fn run(bin: &Path, nodes: usize, interviews: usize, postgres: &str) -> Result<()> {
    let nats = start_nats().await?;
    let database = Database::create(postgres)?;
    let mut servers = Vec::new();
    for i in 0..nodes {
        let extra = [
            ("SIGHTLINE__DATABASE__URL", database.url()?),
            (
                "SIGHTLINE__AUTH__JWT_SECRET",
                "load-tool-cluster-secret-the-same-on-every-node".to_owned(),
            ),
            ("SIGHTLINE__CLUSTER__NATS_URL", nats.url.clone()),
            ("SIGHTLINE__CLUSTER__NODE_ID", format!("load-{}", i + 1)),
            ("SIGHTLINE__CLUSTER__REGION", "load".to_owned()),
        ];
        servers.push(start_server(bin, &extra, i == 0, None).await?);
    }
    let client = reqwest::Client::new();
    let session = post(
        &client,
        format!("{}/api/auth/login", servers[0].base),
        json!({ "email": "load@example.com", "password": PASSWORD }),
        None,
    )
    .await?;
    let access = session["access_token"]
        .as_str()
        .context("access token")?
        .to_owned();
    println!("nodes={nodes} interviews={interviews} (two participants each, joined in turn)");
    let mut joined = Vec::new();
    let mut sockets = Vec::new();
    for k in 0..interviews {
        let when = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_mins(10))?;
        let created = post(
            &client,
            format!("{}/api/interviews", servers[k % nodes].base),
            json!({ "title": format!("relay {k}"), "scheduled_start": when.to_string(),
                    "duration_minutes": 60, "time_zone": "UTC",
                    "participants": [{ "email": format!("r{k}@example.com"), "role": "candidate" }] }),
            Some(&access),
        )
        .await?;
        let id = created["interview"]["id"]
            .as_str()
            .context("interview id")?
            .to_owned();
        let invite = created["invites"][0]["url"].as_str().context("invite")?;
        let invite = invite.rsplit_once("/join/").context("invite token")?.1;
        let guest = post(
            &client,
            format!("{}/api/invites/redeem", servers[0].base),
            json!({ "token": invite }),
            None,
        )
        .await?;
        let guest = guest["access_token"]
            .as_str()
            .context("guest token")?
            .to_owned();
        let (socket, first) = join(&client, &servers[k % nodes], &id, &access, true).await?;
        sockets.push(socket);
        joined.push(first);
        let (socket, second) = join(&client, &servers[(k + 1) % nodes], &id, &guest, false).await?;
        sockets.push(socket);
        joined.push(second);
    }
    println!("| path | joins | join p50 ms | join p99 ms | ping p50 ms | ping p99 ms |");
    println!("|---|---|---|---|---|---|");
    for (relayed, first, label) in [
        (false, true, "first join (places the room), direct"),
        (true, true, "first join (places the room), relayed"),
        (false, false, "second join, direct"),
        (true, false, "second join, relayed"),
    ] {
        let rows: Vec<&Joined> = joined
            .iter()
            .filter(|j| j.relayed == relayed && j.first == first)
            .collect();
        let mut joins: Vec<u64> = rows.iter().map(|j| j.join_us).collect();
        let mut pings: Vec<u64> = rows.iter().flat_map(|j| j.pings_us.clone()).collect();
        joins.sort_unstable();
        pings.sort_unstable();
        println!(
            "| {label} | {} | {:.1} | {:.1} | {:.2} | {:.2} |",
            rows.len(),
            percentile(&joins, 0.5),
            percentile(&joins, 0.99),
            percentile(&pings, 0.5),
            percentile(&pings, 0.99),
        );
    }
    for socket in sockets {
        let _ = socket.leave().await;
    }
    drop(servers);
    drop(database);
    drop(nats);
    Ok(())
}
