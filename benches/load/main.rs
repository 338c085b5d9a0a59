//! `sightline-load`: real media through a real Sightline server, measured.
//!
//! Starts the `sightline` binary as its own process (so its CPU time can be read from /proc),
//! schedules R interviews with P participants each through the API, and connects every
//! participant like a browser would: the `/rtc` WebSocket, a publisher connection sending real
//! media from `sightline-testkit` (Opus every 20 ms, VP8 at 30 frames/s in three simulcast layers
//! of 150, 500 and 1,500 kbit/s, packetized by str0m) and a subscriber connection receiving
//! everyone else's frames. After a warm-up it measures for T seconds and reports forwarded packets
//! per server CPU-second, end-to-end latency percentiles (from each frame's scheduled send time,
//! which every publisher shares, to its arrival), loss (sequence gaps), and server memory per
//! participant.
//!
//! Traffic goes to 127.0.0.1 only; every loop is bounded by the run time.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sightline_benches::{post, put};

mod flood;
use sightline_testkit::{
    AUDIO_PACKET_MS, EncodedMedia, MediaPublisher, Scene, UdpPeer, VIDEO_FPS, media, scene_media,
};
use str0m::Event;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::Mid;
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "load-test-password-1234";
/// The token the started server's `/metrics` asks for.
const METRICS_TOKEN: &str = "load-tool-metrics-token";

#[derive(Parser, Debug)]
#[command(about = "Measures Sightline's SFU with real WebRTC clients on loopback")]
struct Args {
    /// Rooms.
    #[arg(long, default_value_t = 2)]
    rooms: usize,
    /// Participants per room (each publishes audio and video and receives the others).
    #[arg(long, default_value_t = 3)]
    participants: usize,
    /// Seconds to measure, after the warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The sightline binary to start.
    #[arg(long, default_value = "target/release/sightline")]
    bin: PathBuf,
    /// Record every room while measuring (everyone consents during the warm-up), to measure
    /// what the recorder costs.
    #[arg(long)]
    record: bool,
    /// Proctor every room: each candidate agrees, and the server decodes and checks their camera
    /// (implies `--faces`).
    #[arg(long)]
    proctor: bool,
    /// Publish a picture of a face (the proctoring test scene) instead of the test pattern.
    #[arg(long)]
    faces: bool,
    /// Instead of media: hold this many connections that send half a request (a slow-client
    /// flood) and measure `/healthz` from a well-behaved client meanwhile.
    #[arg(long)]
    slow_clients: Option<usize>,
}

/// What one participant saw.
#[derive(Default)]
struct Tally {
    /// RTP packets of the frames received while measuring.
    received: u64,
    /// Packets missing between the frames received (sequence gaps), while measuring.
    lost: u64,
    latencies_us: Vec<u64>,
}

/// Which encoded frame a payload is, by content: (video layer or `None` for audio, index).
type FrameIndex = HashMap<&'static [u8], (Option<usize>, usize)>;

/// Payloads that occur more than once (a steady tone repeats itself) say nothing about which
/// frame arrived, so they are left out and not timed.
fn frame_index(media: &'static EncodedMedia) -> FrameIndex {
    let mut index = HashMap::new();
    let mut repeated = Vec::new();
    let mut add = |payload: &'static [u8], kind: Option<usize>, n: usize| {
        if index.insert(payload, (kind, n)).is_some() {
            repeated.push(payload);
        }
    };
    for (n, packet) in media.opus.iter().enumerate() {
        add(packet, None, n);
    }
    for (layer, frames) in media.video.iter().enumerate() {
        for (n, frame) in frames.iter().enumerate() {
            add(&frame.data, Some(layer), n);
        }
    }
    for payload in repeated {
        index.remove(payload);
    }
    index
}

/// How long after its scheduled send time a frame arrived. Every publisher sends frame n of a
/// loop of `len` frames at `epoch` + n × `period`, so the frame's index and its arrival time say
/// which n it was (a loop lasts seconds, far longer than any delay here).
fn lateness_us(arrival_us: u64, index: usize, len: usize, period_us: u64) -> Option<u64> {
    let first = index as u64 * period_us;
    let loop_us = len as u64 * period_us;
    let since = arrival_us.checked_sub(first)?;
    let n = index as u64 + len as u64 * (since / loop_us);
    arrival_us.checked_sub(n * period_us)
}

/// Runs one participant until `until`; counts only what arrives after `measure_from`.
async fn participant(
    ws_url: String,
    token: String,
    media: &'static EncodedMedia,
    frames: Arc<FrameIndex>,
    epoch: Instant,
    measure_from: Instant,
    until: Instant,
) -> Result<Tally> {
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await?;
    ws.send(Message::Text(
        json!({ "type": "join", "version": 1, "token": token })
            .to_string()
            .into(),
    ))
    .await?;
    let (mut publisher, offer) = MediaPublisher::new(true).await?;
    publisher.set_epoch(epoch);
    let mut subscriber = UdpPeer::frames().await?;
    ws.send(Message::Text(
        json!({ "type": "publish_offer", "sdp": offer.to_sdp_string(), "tracks": [
            { "mid": publisher.video.to_string(), "source": "camera" },
            { "mid": publisher.audio.to_string(), "source": "microphone" } ] })
        .to_string()
        .into(),
    ))
    .await?;

    let mut tally = Tally::default();
    let (mut pub_events, mut sub_events) = (Vec::new(), Vec::new());
    let mut connected = false;
    let mut last_seq: HashMap<Mid, u64> = HashMap::new();
    while Instant::now() < until {
        while let Ok(Some(frame)) = tokio::time::timeout(Duration::ZERO, ws.next()).await {
            let Message::Text(text) = frame? else {
                continue;
            };
            let message: Value = serde_json::from_str(&text)?;
            match message["type"].as_str() {
                Some("publish_answer") => {
                    let answer = SdpAnswer::from_sdp_string(message["sdp"].as_str().unwrap_or(""))?;
                    publisher.accept_answer(answer)?;
                }
                Some("subscriber_offer") => {
                    let offer = SdpOffer::from_sdp_string(message["sdp"].as_str().unwrap_or(""))?;
                    let answer = subscriber.rtc.sdp_api().accept_offer(offer)?;
                    ws.send(Message::Text(
                        json!({ "type": "subscriber_answer", "sdp": answer.to_sdp_string() })
                            .to_string()
                            .into(),
                    ))
                    .await?;
                }
                Some("error") => bail!("server error: {message}"),
                _ => {}
            }
        }
        if connected {
            publisher.send_due(media, Instant::now())?;
        }
        publisher.peer.pump(&mut pub_events)?;
        connected |= UdpPeer::connected(&pub_events);
        pub_events.clear();
        subscriber.pump(&mut sub_events)?;
        for event in sub_events.drain(..) {
            let Event::MediaData(data) = event else {
                continue;
            };
            if data.network_time < measure_from {
                continue;
            }
            let (start, end) = (**data.seq_range.start(), **data.seq_range.end());
            tally.received += end.saturating_sub(start) + 1;
            if let Some(previous) = last_seq.insert(data.mid, end) {
                tally.lost += start.saturating_sub(previous + 1);
            }
            let Some(&(layer, index)) = frames.get(&data.data[..]) else {
                continue;
            };
            let (len, period_us) = match layer {
                None => (media.opus.len(), u64::from(AUDIO_PACKET_MS) * 1000),
                Some(layer) => (media.video[layer].len(), 1_000_000 / u64::from(VIDEO_FPS)),
            };
            let arrival_us = data
                .network_time
                .saturating_duration_since(epoch)
                .as_micros() as u64;
            tally
                .latencies_us
                .extend(lateness_us(arrival_us, index, len, period_us));
        }
        // Until the connection is up nothing is due; str0m's own timers are served by the cap.
        let due = publisher.next_due().filter(|_| connected);
        let wake = due
            .unwrap_or(Instant::now() + Duration::from_millis(2))
            .min(publisher.peer.deadline())
            .min(subscriber.deadline())
            .saturating_duration_since(Instant::now());
        tokio::select! {
            _ = publisher.peer.readable() => {}
            _ = subscriber.readable() => {}
            () = tokio::time::sleep(wake) => {}
        }
    }
    let _ = ws.close(None).await;
    Ok(tally)
}

/// CPU seconds (user + system) and resident memory of a process, from /proc.
fn process_usage(pid: u32) -> Result<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Linux reports CPU time in clock ticks of 1/100 s (CLK_TCK).
    Ok((ticks as f64 / 100.0, rss_kb))
}

struct Server {
    child: Child,
    base: String,
    /// Kept so the data directory lives as long as the server.
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_server(bin: &PathBuf) -> Result<Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let data = tempfile::tempdir()?;
    let base = format!("http://127.0.0.1:{port}");
    let env: HashMap<&'static str, String> = HashMap::from([
        ("SIGHTLINE__HTTP__ADDR", format!("127.0.0.1:{port}")),
        ("SIGHTLINE__DATA__DIR", data.path().display().to_string()),
        ("SIGHTLINE__PUBLIC__BASE_URL", base.clone()),
        ("SIGHTLINE__AUTH__RATE_LIMIT__PER_IP_BURST", "100000".into()),
        (
            "SIGHTLINE__AUTH__RATE_LIMIT__PER_ACCOUNT_BURST",
            "100000".into(),
        ),
        ("SIGHTLINE__LOG__FILTER", "warn".into()),
        ("SIGHTLINE__METRICS__TOKEN", METRICS_TOKEN.into()),
    ]);
    let mut create = Command::new(bin)
        .args([
            "user",
            "create",
            "--email",
            "load@example.com",
            "--name",
            "Load",
        ])
        .args(["--role", "interviewer", "--password-stdin"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    if let Some(mut stdin) = create.stdin.take() {
        use std::io::Write;
        stdin.write_all(PASSWORD.as_bytes())?;
    }
    if !create.wait()?.success() {
        bail!("creating the load account failed");
    }
    let child = Command::new(bin)
        .arg("serve")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .spawn()?;
    let server = Server {
        child,
        base,
        _data: data,
    };
    let ready = format!("{}/readyz", server.base);
    for _ in 0..100 {
        if reqwest::get(&ready)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the server did not become ready");
}

/// The server's own histogram of how long its media workers held each forwarded datagram:
/// cumulative counts by upper bound in seconds, from `/metrics`.
async fn forwarding_histogram(client: &reqwest::Client, base: &str) -> Result<Vec<(f64, u64)>> {
    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await?
        .text()
        .await?;
    let mut buckets = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("sightline_sfu_forwarding_seconds_bucket{le=\"") else {
            continue;
        };
        let (bound, count) = rest.split_once("\"}").context("bucket line")?;
        let bound = if bound == "+Inf" {
            f64::INFINITY
        } else {
            bound.parse()?
        };
        buckets.push((bound, count.trim().parse()?));
    }
    if buckets.is_empty() {
        bail!("the server's /metrics has no forwarding histogram");
    }
    Ok(buckets)
}

/// The upper bound (in µs) of the bucket holding quantile `q` of what was recorded between two
/// readings of the same cumulative histogram.
fn bucket_quantile_us(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = after.last()?.1.checked_sub(before.last()?.1)?;
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    after
        .iter()
        .zip(before)
        .find(|((_, a), (_, b))| a.saturating_sub(*b) >= rank)
        .map(|((bound, _), _)| bound * 1e6)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)] as f64 / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(connections) = args.slow_clients {
        if connections == 0 || connections > 50_000 || args.seconds == 0 || args.seconds > 600 {
            bail!("need 1..=50000 slow clients and 1..=600 seconds");
        }
        let server = start_server(&args.bin).await?;
        let pid = server.child.id();
        return flood::run(&server.base, pid, connections, args.seconds).await;
    }
    if args.rooms == 0 || args.participants < 2 || args.seconds == 0 || args.seconds > 600 {
        bail!("need rooms >= 1, participants >= 2 and 1..=600 seconds");
    }
    let server = start_server(&args.bin).await?;
    let client = reqwest::Client::new();
    let session = post(
        &client,
        format!("{}/api/auth/login", server.base),
        json!({ "email": "load@example.com", "password": PASSWORD }),
        None,
    )
    .await?;
    let access = session["access_token"]
        .as_str()
        .context("token")?
        .to_owned();
    let mut tokens = Vec::new();
    // Who consents to a recording of each room: (interview, access token).
    let mut consenting: Vec<(String, String)> = Vec::new();
    for room in 0..args.rooms {
        let candidates: Vec<Value> = (1..args.participants)
            .map(|i| json!({ "email": format!("c{room}-{i}@example.com"), "role": "candidate" }))
            .collect();
        let when = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_mins(10))?;
        let created = post(
            &client,
            format!("{}/api/interviews", server.base),
            json!({ "title": format!("load {room}"), "scheduled_start": when.to_string(),
                    "duration_minutes": 60, "time_zone": "UTC", "participants": candidates }),
            Some(&access),
        )
        .await?;
        let id = created["interview"]["id"]
            .as_str()
            .context("id")?
            .to_owned();
        if args.proctor {
            put(
                &client,
                format!("{}/api/interviews/{id}/proctoring", server.base),
                json!({ "enabled": true }),
                &access,
            )
            .await?;
        }
        let join = post(
            &client,
            format!("{}/api/interviews/{id}/join", server.base),
            json!({}),
            Some(&access),
        )
        .await?;
        tokens.push((
            id.clone(),
            join["token"].as_str().context("join")?.to_owned(),
        ));
        for invite in created["invites"].as_array().context("invites")? {
            let url = invite["url"].as_str().context("url")?;
            let token = url.rsplit_once("/join/").context("invite")?.1;
            let guest = post(
                &client,
                format!("{}/api/invites/redeem", server.base),
                json!({ "token": token }),
                None,
            )
            .await?;
            let guest_access = guest["access_token"].as_str().context("guest")?;
            consenting.push((id.clone(), guest_access.to_owned()));
            if args.proctor {
                post(
                    &client,
                    format!("{}/api/interviews/{id}/proctoring/consent", server.base),
                    json!({}),
                    Some(guest_access),
                )
                .await?;
            }
            let join = post(
                &client,
                format!("{}/api/interviews/{id}/join", server.base),
                json!({}),
                Some(guest_access),
            )
            .await?;
            tokens.push((
                id.clone(),
                join["token"].as_str().context("join")?.to_owned(),
            ));
        }
    }

    let media = if args.faces || args.proctor {
        scene_media(Scene::OneFace)?
    } else {
        media()?
    };
    let frames = Arc::new(frame_index(media));
    let epoch = Instant::now();
    let warm_up = Duration::from_secs(4);
    let measure_from = Instant::now() + warm_up;
    let until = measure_from + Duration::from_secs(args.seconds);
    let ws_base = server.base.replacen("http", "ws", 1);
    let pid = server.child.id();
    let mut tasks = Vec::new();
    for (room, token) in tokens {
        let url = format!("{ws_base}/rtc/{room}");
        tasks.push(tokio::spawn(participant(
            url,
            token,
            media,
            Arc::clone(&frames),
            epoch,
            measure_from,
            until,
        )));
    }
    if args.record {
        // Halfway through the warm-up everyone publishes: start recording, everyone agrees.
        tokio::time::sleep_until((epoch + warm_up / 2).into()).await;
        let mut rooms: Vec<&String> = consenting.iter().map(|(room, _)| room).collect();
        rooms.dedup();
        for room in rooms {
            post(
                &client,
                format!("{}/api/interviews/{room}/recording/start", server.base),
                json!({}),
                Some(&access),
            )
            .await?;
        }
        for (room, guest) in &consenting {
            post(
                &client,
                format!("{}/api/interviews/{room}/recording/consent", server.base),
                json!({}),
                Some(guest),
            )
            .await?;
        }
    }
    tokio::time::sleep_until((measure_from).into()).await;
    let (cpu_before, _) = process_usage(pid)?;
    let held_before = forwarding_histogram(&client, &server.base).await?;
    tokio::time::sleep_until(until.into()).await;
    let (cpu_after, rss_kb) = process_usage(pid)?;
    let held_after = forwarding_histogram(&client, &server.base).await?;
    let mut totals = Tally::default();
    for task in tasks {
        let tally = task.await??;
        totals.received += tally.received;
        totals.lost += tally.lost;
        totals.latencies_us.extend(tally.latencies_us);
    }
    totals.latencies_us.sort_unstable();
    let cpu = (cpu_after - cpu_before).max(0.01);
    let expected = totals.received + totals.lost;
    let loss = if expected == 0 {
        f64::NAN
    } else {
        100.0 * totals.lost as f64 / expected as f64
    };
    let participants = args.rooms * args.participants;
    println!(
        "rooms={} participants/room={} seconds={}",
        args.rooms, args.participants, args.seconds
    );
    println!(
        "media: Opus and 3-layer simulcast VP8 encoded by GStreamer (sightline-testkit), {}",
        if args.faces || args.proctor {
            "a face (the proctoring scene)"
        } else {
            "the test pattern"
        }
    );
    if args.proctor {
        println!(
            "proctoring: on, {} candidate cameras decoded (middle layer) and checked",
            args.rooms * (args.participants - 1)
        );
    }
    if args.record {
        println!(
            "recording: on, every track ({} tracks: a 640x480 VP8 layer and Opus per participant)",
            participants * 2
        );
    }
    println!("packets forwarded (received): {}", totals.received);
    println!("server CPU seconds:           {cpu:.2}");
    println!(
        "forwarded packets per server CPU-second: {:.0}",
        totals.received as f64 / cpu
    );
    println!(
        "end-to-end latency ms (client send -> client receive, loopback): p50 {:.2} p99 {:.2}",
        percentile(&totals.latencies_us, 0.50),
        percentile(&totals.latencies_us, 0.99)
    );
    let held = |q| {
        bucket_quantile_us(&held_before, &held_after, q)
            .map_or_else(|| "n/a".to_owned(), |us| format!("<= {us:.0} us"))
    };
    println!(
        "added by the server (receipt -> handed to the socket, from its /metrics): p50 {} p99 {}",
        held(0.50),
        held(0.99)
    );
    println!("loss: {loss:.2}%");
    println!(
        "server RSS: {} KiB total, {} KiB per participant",
        rss_kb,
        rss_kb / participants as u64
    );
    Ok(())
}
