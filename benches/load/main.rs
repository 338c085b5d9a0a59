//! `sightline-load`: real media through a real Sightline server, measured.
//!
//! Starts the `sightline` binary as its own process (so its CPU time can be read from /proc),
//! schedules R interviews with P participants each through the API, and connects every
//! participant like a browser would: the `/rtc` WebSocket, a publisher connection sending a video
//! track (about 30 frames/s in 4 packets of 1,100 bytes) and an audio track (50 packets/s of 120
//! bytes), and a subscriber connection receiving everyone else. After a warm-up it measures for T
//! seconds and reports forwarded packets per server CPU-second, added end-to-end latency
//! percentiles, loss, and server memory per participant.
//!
//! Payloads are synthetic (VP8-shaped, with a send timestamp inside) because forwarding never
//! decodes them. Traffic goes to 127.0.0.1 only; every loop is bounded by the run time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sightline_benches::post;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "load-test-password-1234";
const VIDEO_PACKETS_PER_FRAME: u32 = 4;
const VIDEO_PAYLOAD: usize = 1100;
const AUDIO_PAYLOAD: usize = 120;

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
}

/// One participant's publisher or subscriber connection over its own UDP socket.
struct Peer {
    rtc: Rtc,
    socket: UdpSocket,
    addr: SocketAddr,
    connected: bool,
}

impl Peer {
    async fn new() -> Result<Peer> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = socket.local_addr()?;
        let mut rtc = Rtc::builder().set_rtp_mode(true).build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp")?);
        Ok(Peer {
            rtc,
            socket,
            addr,
            connected: false,
        })
    }

    /// Sends what is due and hands received RTP payloads to `on_rtp`; returns the next wake-up.
    fn drive(&mut self, on_rtp: &mut impl FnMut(&[u8])) -> Result<Instant> {
        loop {
            match self.rtc.poll_output()? {
                Output::Transmit(t) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::RtpPacket(packet)) => on_rtp(&packet.payload),
                Output::Event(_) => {}
                Output::Timeout(at) => return Ok(at),
            }
        }
    }

    /// Feeds every waiting datagram, draining after each one (str0m keeps a received RTP packet
    /// only until the next poll).
    fn receive(&mut self, buffer: &mut [u8], on_rtp: &mut impl FnMut(&[u8])) -> Result<()> {
        while let Ok((len, source)) = self.socket.try_recv_from(buffer) {
            let Ok(contents) = buffer[..len].try_into() else {
                continue;
            };
            self.rtc.handle_input(Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: self.addr,
                    contents,
                },
            ))?;
            self.drive(on_rtp)?;
        }
        self.rtc.handle_input(Input::Timeout(Instant::now()))?;
        Ok(())
    }
}

/// What one participant saw.
#[derive(Default)]
struct Tally {
    sent: u64,
    received: u64,
    latencies_us: Vec<u64>,
}

fn payload(len: usize, keyframe: bool, epoch: Instant) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    // VP8 descriptor: start of partition 0; P bit clear on keyframes.
    bytes[0] = 0x10;
    bytes[1] = u8::from(!keyframe);
    let sent_us = epoch.elapsed().as_micros() as u64;
    bytes[2..10].copy_from_slice(&sent_us.to_be_bytes());
    bytes
}

fn sent_at(payload: &[u8]) -> Option<u64> {
    payload
        .get(2..10)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

fn pt_for(rtc: &Rtc, mid: Mid, codec: Codec) -> Option<Pt> {
    let remote = rtc.media(mid)?.remote_pts().to_vec();
    rtc.codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == codec && remote.contains(&p.pt()))
        .map(|p| p.pt())
}

/// Runs one participant until `until`; counts only what happens after `measure_from`.
async fn participant(
    ws_url: String,
    token: String,
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
    let mut publisher = Peer::new().await?;
    let mut subscriber = Peer::new().await?;
    let mut change = publisher.rtc.sdp_api();
    let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, pending) = change.apply().context("offer")?;
    let mut pending = Some(pending);
    ws.send(Message::Text(
        json!({ "type": "publish_offer", "sdp": offer.to_sdp_string(), "tracks": [
            { "mid": video.to_string(), "source": "camera" },
            { "mid": audio.to_string(), "source": "microphone" } ] })
        .to_string()
        .into(),
    ))
    .await?;

    let mut tally = Tally::default();
    let mut buffer = vec![0u8; 2048];
    let (mut seq_video, mut seq_audio, mut frame) = (0u64, 0u64, 0u64);
    let mut next_video = Instant::now();
    let mut next_audio = Instant::now();
    while Instant::now() < until {
        while let Ok(Some(frame)) = tokio::time::timeout(Duration::ZERO, ws.next()).await {
            let Message::Text(text) = frame? else {
                continue;
            };
            let message: Value = serde_json::from_str(&text)?;
            match message["type"].as_str() {
                Some("publish_answer") => {
                    let answer = SdpAnswer::from_sdp_string(message["sdp"].as_str().unwrap_or(""))?;
                    if let Some(pending) = pending.take() {
                        publisher.rtc.sdp_api().accept_answer(pending, answer)?;
                    }
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
        let now = Instant::now();
        if publisher.connected {
            let measuring = now >= measure_from;
            if now >= next_video
                && let Some(pt) = pt_for(&publisher.rtc, video, Codec::Vp8)
            {
                for i in 0..VIDEO_PACKETS_PER_FRAME {
                    let keyframe = frame.is_multiple_of(60) && i == 0;
                    let write = RtpWrite::new(
                        pt,
                        seq_video.into(),
                        (frame * 3000) as u32,
                        now,
                        payload(VIDEO_PAYLOAD, keyframe, epoch),
                    )
                    .marker(i + 1 == VIDEO_PACKETS_PER_FRAME)
                    .nackable(true);
                    if let Some(stream) = publisher.rtc.direct_api().stream_tx_by_mid(video, None) {
                        stream.write_rtp(write);
                        seq_video += 1;
                        tally.sent += u64::from(measuring);
                    }
                }
                frame += 1;
                next_video += Duration::from_micros(33_333);
            }
            if now >= next_audio
                && let Some(pt) = pt_for(&publisher.rtc, audio, Codec::Opus)
            {
                let write = RtpWrite::new(
                    pt,
                    seq_audio.into(),
                    (seq_audio * 960) as u32,
                    now,
                    payload(AUDIO_PAYLOAD, true, epoch),
                );
                if let Some(stream) = publisher.rtc.direct_api().stream_tx_by_mid(audio, None) {
                    stream.write_rtp(write);
                    seq_audio += 1;
                    tally.sent += u64::from(measuring);
                }
                next_audio += Duration::from_millis(20);
            }
        } else {
            next_video = now;
            next_audio = now;
        }
        let mut received = 0u64;
        let mut latencies = Vec::new();
        let mut on_rtp = |bytes: &[u8]| {
            if Instant::now() >= measure_from {
                received += 1;
                if let Some(sent) = sent_at(bytes) {
                    latencies.push((epoch.elapsed().as_micros() as u64).saturating_sub(sent));
                }
            }
        };
        let wake = publisher
            .drive(&mut |_| {})?
            .min(subscriber.drive(&mut on_rtp)?)
            .min(next_video)
            .min(next_audio);
        let wait = wake
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(2));
        tokio::select! {
            _ = publisher.socket.readable() => {}
            _ = subscriber.socket.readable() => {}
            () = tokio::time::sleep(wait) => {}
        }
        publisher.receive(&mut buffer, &mut |_| {})?;
        subscriber.receive(&mut buffer, &mut on_rtp)?;
        tally.received += received;
        tally.latencies_us.extend(latencies);
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
            epoch,
            measure_from,
            until,
        )));
    }
    tokio::time::sleep_until((measure_from).into()).await;
    let (cpu_before, _) = process_usage(pid)?;
    tokio::time::sleep_until(until.into()).await;
    let (cpu_after, rss_kb) = process_usage(pid)?;
    let mut totals = Tally::default();
    for task in tasks {
        let tally = task.await??;
        totals.sent += tally.sent;
        totals.received += tally.received;
        totals.latencies_us.extend(tally.latencies_us);
    }
    totals.latencies_us.sort_unstable();
    let cpu = (cpu_after - cpu_before).max(0.01);
    let expected = totals.sent * (args.participants as u64 - 1);
    let loss = if expected == 0 {
        f64::NAN
    } else {
        100.0 * (expected.saturating_sub(totals.received)) as f64 / expected as f64
    };
    let participants = args.rooms * args.participants;
    println!(
        "rooms={} participants/room={} seconds={}",
        args.rooms, args.participants, args.seconds
    );
    println!("packets sent by publishers:   {}", totals.sent);
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
    println!("loss: {loss:.2}%");
    println!(
        "server RSS: {} KiB total, {} KiB per participant",
        rss_kb,
        rss_kb / participants as u64
    );
    Ok(())
}
