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
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::{Value, json};
use sightline_benches::{post, put};

mod cluster;
mod flood;
mod janus;
mod netns;
use sightline_signaling::TrackSource;
use sightline_signaling::protocol::{ClientMessage, ServerMessage};
use sightline_testkit::{
    AUDIO_PACKET_MS, EncodedMedia, MediaPublisher, RtcClient, Scene, UdpPeer, VIDEO_FPS, media,
    scene_media, tcp_candidate_addr, tcp_candidates_only, vp8_descriptor,
};
use str0m::Event;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::Mid;

const PASSWORD: &str = "load-test-password-1234";
/// The token the started server's `/metrics` asks for.
const METRICS_TOKEN: &str = "load-tool-metrics-token";
/// Clients connect and publish before anything is measured.
const WARM_UP: Duration = Duration::from_secs(4);
/// Where Sightline's load clients live (Sightline serves loopback).
const SIGHTLINE_CLIENTS: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Where Janus listens and its clients live: addresses of the namespace's veth (see `netns`).
const JANUS_SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const JANUS_CLIENTS: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

/// A server the tool can put under load.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// Sightline (`--bin`), started with its embedded defaults.
    Sightline,
    /// Janus Gateway's VideoRoom plugin (`--janus-bin`), started with a generated configuration.
    Janus,
}

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
    /// Threads the load clients run on, each with its own runtime and a share of the
    /// participants (round robin). More than one lets the clients keep the server busy.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Subscribers receive in str0m's RTP mode (packets as they arrive, with SRTP, NACK and
    /// reports) instead of frame mode (reassembling every frame, as a browser does): cheaper
    /// clients, for loads where the server, not the clients, should be the limit.
    #[arg(long)]
    rtp_clients: bool,
    /// Clients reach Sightline's SFU over ICE-TCP only (RFC 4571 framing to each worker's TCP
    /// port), as browsers on networks without UDP: what TCP costs the server against UDP.
    #[arg(long)]
    tcp: bool,
    /// The server to measure.
    #[arg(long, value_enum, default_value = "sightline")]
    target: Target,
    /// Then the same load on this server, one after the other in the same run, and the ratio of
    /// forwarded packets per server CPU-second.
    #[arg(long, value_enum)]
    compare: Option<Target>,
    /// The Janus binary (Debian's `janus` package).
    #[arg(long, default_value = "janus")]
    janus_bin: PathBuf,
    /// The CPUs the measured server may run on, as a `taskset` list (`1`, `2-3`, `0,2`); by
    /// default the ones the tool itself runs on. With the tool under `taskset -c <others>`, the
    /// server has cores of its own, as an SFU in a deployment does, instead of sharing its caches
    /// with the load clients.
    #[arg(long, value_parser = cpu_list)]
    server_cpus: Option<String>,
    /// Instead of media: hold this many connections that send half a request (a slow-client
    /// flood) and measure `/healthz` from a well-behaved client meanwhile.
    #[arg(long)]
    slow_clients: Option<usize>,
    /// Instead of media: start this many Sightline nodes as one cluster (a private
    /// `nats-server`, one PostgreSQL database) and measure joins and signaling round trips
    /// straight to a room's host against through a node that relays to it.
    #[arg(long)]
    nodes: Option<usize>,
    /// With `--nodes`: interviews to join (two participants each).
    #[arg(long, default_value_t = 40)]
    interviews: usize,
    /// With `--nodes`: a PostgreSQL database the tool may create another database from.
    #[arg(
        long,
        env = "SIGHTLINE_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres: String,
}

/// What one participant saw.
#[derive(Default)]
struct Tally {
    /// RTP packets of the frames received while measuring.
    received: u64,
    /// Packets missing between the frames received (sequence gaps), while measuring.
    lost: u64,
    latencies_us: Vec<u64>,
    /// Why participants stopped before the run's end. The others go on, and the row says so.
    failures: Vec<String>,
}

/// Which encoded frame a payload is, by content: (video layer or `None` for audio, index).
struct FrameIndex {
    /// Whole frames: what a frame-mode client reassembles, and every Opus packet.
    whole: HashMap<&'static [u8], (Option<usize>, usize)>,
    /// The first bytes of each video frame: what the first RTP packet of a frame carries after
    /// its VP8 payload descriptor, for RTP-mode clients.
    starts: HashMap<&'static [u8], (Option<usize>, usize)>,
}

/// Bytes of a frame's start that name it in an RTP-mode client.
const FRAME_START: usize = 24;

/// Payloads (or starts) that occur more than once (a steady tone repeats itself) say nothing
/// about which frame arrived, so they are left out and not timed.
fn frame_index(media: &'static EncodedMedia) -> FrameIndex {
    fn unique(
        entries: impl Iterator<Item = (&'static [u8], (Option<usize>, usize))>,
    ) -> HashMap<&'static [u8], (Option<usize>, usize)> {
        let mut index = HashMap::new();
        let mut repeated = Vec::new();
        for (payload, frame) in entries {
            if index.insert(payload, frame).is_some() {
                repeated.push(payload);
            }
        }
        for payload in repeated {
            index.remove(payload);
        }
        index
    }
    let opus = media
        .opus
        .iter()
        .enumerate()
        .map(|(n, packet)| (&packet[..], (None, n)));
    let video = || {
        media.video.iter().enumerate().flat_map(|(layer, frames)| {
            frames
                .iter()
                .enumerate()
                .map(move |(n, frame)| (&frame.data[..], (Some(layer), n)))
        })
    };
    FrameIndex {
        whole: unique(opus.chain(video())),
        starts: unique(
            video()
                .filter(|(data, _)| data.len() >= FRAME_START)
                .map(|(data, frame)| (&data[..FRAME_START], frame)),
        ),
    }
}

/// Which frame an RTP-mode client's packet is, if it is an Opus packet or a frame's first.
fn frame_of_packet(frames: &FrameIndex, payload: &[u8]) -> Option<(Option<usize>, usize)> {
    if let Some(frame) = frames.whole.get(payload) {
        return Some(*frame);
    }
    let (offset, true) = vp8_descriptor(payload)? else {
        return None;
    };
    frames
        .starts
        .get(payload.get(offset..offset + FRAME_START)?)
        .copied()
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

/// When a participant runs and measures, and what it sends.
#[derive(Clone, Copy)]
struct Schedule {
    media: &'static EncodedMedia,
    epoch: Instant,
    measure_from: Instant,
    until: Instant,
    rtp_clients: bool,
    tcp: bool,
}

impl Tally {
    /// A participant that stopped early, for `why`; what it saw until then is not counted.
    fn failed(why: String) -> Tally {
        Tally {
            failures: vec![why],
            ..Tally::default()
        }
    }

    /// Counts a frame (or, for an RTP-mode client, a packet) that arrived at `arrival`.
    fn arrived(&mut self, schedule: &Schedule, frame: (Option<usize>, usize), arrival: Instant) {
        let (layer, index) = frame;
        let media = schedule.media;
        let (len, period_us) = match layer {
            None => (media.opus.len(), u64::from(AUDIO_PACKET_MS) * 1000),
            Some(layer) => (media.video[layer].len(), 1_000_000 / u64::from(VIDEO_FPS)),
        };
        let arrival_us = arrival
            .saturating_duration_since(schedule.epoch)
            .as_micros() as u64;
        self.latencies_us
            .extend(lateness_us(arrival_us, index, len, period_us));
    }
}

/// One participant's media, whatever the server: a publisher sending on the shared schedule and
/// a subscriber receiving everyone else, and what it saw.
struct MediaClient {
    publisher: MediaPublisher,
    subscriber: UdpPeer,
    frames: Arc<FrameIndex>,
    schedule: Schedule,
    tally: Tally,
    connected: bool,
    pub_events: Vec<Event>,
    sub_events: Vec<Event>,
    last_seq: HashMap<Mid, u64>,
    last_rtp_seq: HashMap<u32, u64>,
}

impl MediaClient {
    /// A client whose sockets are on `ip`, and its publisher's offer.
    async fn new(
        ip: IpAddr,
        frames: Arc<FrameIndex>,
        schedule: Schedule,
    ) -> Result<(MediaClient, SdpOffer)> {
        let (mut publisher, offer) = MediaPublisher::new_on(true, ip).await?;
        publisher.set_epoch(schedule.epoch);
        let subscriber = if schedule.rtp_clients {
            UdpPeer::rtp_on(ip).await?
        } else {
            UdpPeer::frames_on(ip).await?
        };
        let client = MediaClient {
            publisher,
            subscriber,
            frames,
            schedule,
            tally: Tally::default(),
            connected: false,
            pub_events: Vec::new(),
            sub_events: Vec::new(),
            last_seq: HashMap::new(),
            last_rtp_seq: HashMap::new(),
        };
        Ok((client, offer))
    }

    /// Sends what is due, and counts what arrived after `measure_from`.
    fn step(&mut self) -> Result<()> {
        let schedule = self.schedule;
        if self.connected {
            self.publisher.send_due(schedule.media, Instant::now())?;
        }
        self.publisher.peer.pump(&mut self.pub_events)?;
        self.connected |= UdpPeer::connected(&self.pub_events);
        self.pub_events.clear();
        self.subscriber.pump(&mut self.sub_events)?;
        let tally = &mut self.tally;
        for event in self.sub_events.drain(..) {
            if let Event::RtpPacket(packet) = &event {
                if packet.timestamp < schedule.measure_from {
                    continue;
                }
                tally.received += 1;
                let seq = *packet.seq_no;
                if let Some(previous) = self.last_rtp_seq.insert(*packet.header.ssrc, seq) {
                    tally.lost += seq.saturating_sub(previous + 1);
                }
                if let Some(frame) = frame_of_packet(&self.frames, &packet.payload) {
                    tally.arrived(&schedule, frame, packet.timestamp);
                }
                continue;
            }
            let Event::MediaData(data) = event else {
                continue;
            };
            if data.network_time < schedule.measure_from {
                continue;
            }
            let (start, end) = (**data.seq_range.start(), **data.seq_range.end());
            tally.received += end.saturating_sub(start) + 1;
            if let Some(previous) = self.last_seq.insert(data.mid, end) {
                tally.lost += start.saturating_sub(previous + 1);
            }
            if let Some(&frame) = self.frames.whole.get(&data.data[..]) {
                tally.arrived(&schedule, frame, data.network_time);
            }
        }
        Ok(())
    }

    /// Waits for a datagram, the next media due, or str0m's next timer.
    async fn wait(&self) {
        // Until the connection is up nothing is due; str0m's own timers are served by the cap.
        let due = self.publisher.next_due().filter(|_| self.connected);
        let wake = due
            .unwrap_or(Instant::now() + Duration::from_millis(2))
            .min(self.publisher.peer.deadline())
            .min(self.subscriber.deadline())
            .saturating_duration_since(Instant::now());
        tokio::select! {
            _ = self.publisher.peer.readable() => {}
            _ = self.subscriber.readable() => {}
            () = tokio::time::sleep(wake) => {}
        }
    }
}

/// Runs one Sightline participant until `until`; counts only what arrives after
/// `measure_from`.
async fn sightline_participant(
    ws_url: String,
    token: String,
    frames: Arc<FrameIndex>,
    schedule: Schedule,
) -> Result<Tally> {
    let mut ws = RtcClient::join(&ws_url, &token).await?;
    let (mut client, offer) = MediaClient::new(SIGHTLINE_CLIENTS, frames, schedule).await?;
    ws.publish(
        offer.to_sdp_string(),
        &[
            (client.publisher.video.to_string(), TrackSource::Camera),
            (client.publisher.audio.to_string(), TrackSource::Microphone),
        ],
    )
    .await?;
    while Instant::now() < schedule.until {
        // Only what is already there: a zero timeout would wait for tokio's next timer tick
        // (about a millisecond) whenever nothing is, and delay every packet behind it.
        while let Some(message) = ws.try_recv()? {
            match message {
                ServerMessage::PublishAnswer { mut sdp } => {
                    if schedule.tcp {
                        if !client.publisher.peer.on_tcp() {
                            client
                                .publisher
                                .peer
                                .use_tcp(tcp_candidate_addr(&sdp)?)
                                .await?;
                        }
                        sdp = tcp_candidates_only(&sdp);
                    }
                    client
                        .publisher
                        .accept_answer(SdpAnswer::from_sdp_string(&sdp)?)?;
                }
                ServerMessage::SubscriberOffer { mut sdp } => {
                    if schedule.tcp {
                        if !client.subscriber.on_tcp() {
                            client.subscriber.use_tcp(tcp_candidate_addr(&sdp)?).await?;
                        }
                        sdp = tcp_candidates_only(&sdp);
                    }
                    let offer = SdpOffer::from_sdp_string(&sdp)?;
                    let answer = client.subscriber.rtc.sdp_api().accept_offer(offer)?;
                    ws.send(&ClientMessage::SubscriberAnswer {
                        sdp: answer.to_sdp_string(),
                    })
                    .await?;
                }
                ServerMessage::Error { code, message, .. } => {
                    bail!("server error {code}: {message}")
                }
                _ => {}
            }
        }
        client.step()?;
        client.wait().await;
    }
    let _ = ws.leave().await;
    Ok(client.tally)
}

/// Runs one Janus VideoRoom participant until `until`, as `janus.js` would drive it: publish
/// first, then (once the room's other publishers are up) subscribe to all of them on one
/// subscriber handle at their top simulcast layer. Counts as `sightline_participant` does.
async fn janus_participant(
    base: String,
    room: u64,
    others: usize,
    frames: Arc<FrameIndex>,
    schedule: Schedule,
) -> Result<Tally> {
    let mut session = janus::Session::create(reqwest::Client::new(), &base).await?;
    let (mut client, offer) = MediaClient::new(JANUS_CLIENTS, frames, schedule).await?;
    let publisher = session.attach().await?;
    session
        .send(
            publisher,
            json!({ "request": "join", "ptype": "publisher", "room": room }),
            None,
        )
        .await?;
    let joined = session
        .event(publisher, |e| {
            e["plugindata"]["data"]["videoroom"] == "joined"
        })
        .await?;
    let feed = joined.data["id"].as_u64().context("a publisher id")?;
    session
        .send(
            publisher,
            json!({ "request": "publish", "audiocodec": "opus", "videocodec": "vp8" }),
            // The simulcast layers are offered low to high (q, h, f); Janus assumes the reverse
            // unless told.
            Some(json!({ "type": "offer", "sdp": offer.to_sdp_string(), "rid_order": "lmh" })),
        )
        .await?;
    let answer = session
        .event(publisher, |e| e.get("jsep").is_some())
        .await?
        .jsep
        .context("Janus answered the publisher without SDP")?;
    let answer = SdpAnswer::from_sdp_string(answer["sdp"].as_str().unwrap_or(""))?;
    client.publisher.accept_answer(answer)?;
    session.candidates_done(publisher).await?;

    let mut subscribe_at = schedule.epoch + (schedule.measure_from - schedule.epoch) / 2;
    let mut subscribed = false;
    while Instant::now() < schedule.until {
        if !subscribed && Instant::now() >= subscribe_at {
            let listed = session
                .request(
                    publisher,
                    json!({ "request": "listparticipants", "room": room }),
                )
                .await?;
            let feeds: Vec<u64> = listed["participants"]
                .as_array()
                .map(|all| {
                    all.iter()
                        .filter(|p| p["publisher"] == true)
                        .filter_map(|p| p["id"].as_u64())
                        .filter(|id| *id != feed)
                        .collect()
                })
                .unwrap_or_default();
            if feeds.len() < others {
                if Instant::now() > schedule.measure_from {
                    bail!(
                        "only {} of {others} publishers came up in Janus",
                        feeds.len()
                    );
                }
                subscribe_at = Instant::now() + Duration::from_millis(200);
            } else {
                subscribe(&mut session, &mut client, room, &feeds).await?;
                subscribed = true;
            }
        }
        client.step()?;
        client.wait().await;
    }
    Ok(client.tally)
}

/// Subscribes a Janus participant to `feeds` on a new handle: Janus offers, the client answers.
async fn subscribe(
    session: &mut janus::Session,
    client: &mut MediaClient,
    room: u64,
    feeds: &[u64],
) -> Result<()> {
    let handle = session.attach().await?;
    let streams: Vec<Value> = feeds
        .iter()
        .map(|feed| json!({ "feed": feed, "substream": 2 }))
        .collect();
    session
        .send(
            handle,
            json!({ "request": "join", "ptype": "subscriber", "room": room, "streams": streams }),
            None,
        )
        .await?;
    let offer = session
        .event(handle, |e| e.get("jsep").is_some())
        .await?
        .jsep
        .context("Janus offered the subscriber no SDP")?;
    let offer = SdpOffer::from_sdp_string(offer["sdp"].as_str().unwrap_or(""))?;
    let answer = client.subscriber.rtc.sdp_api().accept_offer(offer)?;
    session
        .send(
            handle,
            json!({ "request": "start" }),
            Some(json!({ "type": "answer", "sdp": answer.to_sdp_string() })),
        )
        .await?;
    session.candidates_done(handle).await?;
    Ok(())
}

/// A process's resident memory, in KiB.
#[derive(Clone, Copy)]
struct Memory {
    /// All of it (`VmRSS`), the binary's code pages included.
    rss_kb: u64,
    /// Its anonymous part (`RssAnon`: heap, stacks), what the process allocated itself.
    anon_kb: u64,
}

/// CPU seconds (user + system) and resident memory of a process, from /proc.
fn process_usage(pid: u32) -> Result<(f64, Memory)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |name: &str| {
        status_field(&status, name)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let memory = Memory {
        rss_kb: kb("VmRSS"),
        anon_kb: kb("RssAnon"),
    };
    // Linux reports CPU time in clock ticks of 1/100 s (CLK_TCK).
    Ok((ticks as f64 / 100.0, memory))
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

/// Makes the load account with `bin user create` under the settings `env`.
fn create_load_account(bin: &Path, env: &HashMap<&'static str, String>) -> Result<()> {
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
    Ok(())
}

/// A `taskset` CPU list: CPU numbers and ranges separated by commas.
fn cpu_list(list: &str) -> Result<String, String> {
    let well_formed = !list.is_empty()
        && list.len() <= 64
        && list.split(',').all(|part| {
            let mut ends = part.splitn(2, '-');
            ends.all(|n| !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit()))
        });
    if well_formed {
        Ok(list.to_owned())
    } else {
        Err(format!("not a CPU list such as 1 or 2-3 or 0,2: {list:?}"))
    }
}

/// A command that runs `program`, on the CPUs `cpus` only when given (through `taskset`, which
/// execs the program in its own process: the child's pid is the program's).
pub(crate) fn command_on(program: &Path, cpus: Option<&str>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut command = Command::new("taskset");
            command.args(["-c", cpus]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// The value of field `name` in a `/proc/<pid>/status` text.
fn status_field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim())
    })
}

/// The CPUs process `pid` (or `self`) may run on, from /proc.
fn allowed_cpus(pid: impl std::fmt::Display) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| status_field(&status, "Cpus_allowed_list").map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Starts `bin serve` on a free port with a data directory of its own and settings `extra` on
/// top of the tool's, on the CPUs `cpus` when given; `create_user` first makes the load account
/// (once per database).
async fn start_server(
    bin: &Path,
    extra: &[(&'static str, String)],
    create_user: bool,
    cpus: Option<&str>,
) -> Result<Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let data = tempfile::tempdir()?;
    let base = format!("http://127.0.0.1:{port}");
    let mut env: HashMap<&'static str, String> = HashMap::from([
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
    env.extend(extra.iter().cloned());
    if create_user {
        create_load_account(bin, &env)?;
    }
    let child = command_on(bin, cpus)
        .arg("serve")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
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

/// The server's `/metrics` page.
async fn metrics(client: &reqwest::Client, base: &str) -> Result<String> {
    Ok(client
        .get(format!("{base}/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await?
        .text()
        .await?)
}

/// The server's own histogram of how long its media workers held each forwarded datagram:
/// cumulative counts by upper bound in seconds, from `/metrics`.
async fn forwarding_histogram(client: &reqwest::Client, base: &str) -> Result<Vec<(f64, u64)>> {
    let text = metrics(client, base).await?;
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

/// The datagrams the server's media workers dropped because a socket or an ICE-TCP connection's
/// queue was full, since it started (`/metrics`).
async fn send_drops(client: &reqwest::Client, base: &str) -> Result<u64> {
    metrics(client, base)
        .await?
        .lines()
        .find_map(|line| line.strip_prefix("sightline_sfu_send_drops_total "))
        .context("the server's /metrics has no send drops")?
        .trim()
        .parse()
        .context("send drops")
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

/// One participant a client thread runs, and how it reaches its server.
enum Participant {
    /// The `/rtc` WebSocket URL of its room and its join token.
    Sightline { url: String, token: String },
    /// Janus's API, its room, and how many other publishers the room has.
    Janus {
        base: String,
        room: u64,
        others: usize,
    },
}

/// Runs the participants on `threads` threads (round robin), each with a runtime of its own;
/// join them with [`join_clients`] once the run is over.
fn spawn_clients(
    participants: Vec<Participant>,
    threads: usize,
    frames: &Arc<FrameIndex>,
    schedule: Schedule,
) -> Vec<std::thread::JoinHandle<Result<Vec<Tally>>>> {
    let mut groups: Vec<Vec<Participant>> = (0..threads).map(|_| Vec::new()).collect();
    for (n, participant) in participants.into_iter().enumerate() {
        groups[n % threads].push(participant);
    }
    groups
        .into_iter()
        .map(|group| {
            let frames = Arc::clone(frames);
            std::thread::spawn(move || run_clients(group, frames, schedule))
        })
        .collect()
}

/// Adds up what every client thread's participants saw.
fn join_clients(threads: Vec<std::thread::JoinHandle<Result<Vec<Tally>>>>) -> Result<Tally> {
    let mut totals = Tally::default();
    for thread in threads {
        let tallies = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        for tally in tallies {
            totals.received += tally.received;
            totals.lost += tally.lost;
            totals.latencies_us.extend(tally.latencies_us);
            totals.failures.extend(tally.failures);
        }
    }
    totals.latencies_us.sort_unstable();
    Ok(totals)
}

/// Runs a share of the participants on this thread, with a runtime of its own.
fn run_clients(
    group: Vec<Participant>,
    frames: Arc<FrameIndex>,
    schedule: Schedule,
) -> Result<Vec<Tally>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let tasks: Vec<_> = group
            .into_iter()
            .map(|participant| {
                let frames = Arc::clone(&frames);
                tokio::spawn(async move {
                    match participant {
                        Participant::Sightline { url, token } => {
                            sightline_participant(url, token, frames, schedule).await
                        }
                        Participant::Janus { base, room, others } => {
                            janus_participant(base, room, others, frames, schedule).await
                        }
                    }
                })
            })
            .collect();
        let mut tallies = Vec::new();
        for task in tasks {
            tallies.push(match task.await {
                Ok(Ok(tally)) => tally,
                Ok(Err(err)) => Tally::failed(format!("{err:#}")),
                Err(err) => Tally::failed(format!("the participant's task ended: {err}")),
            });
        }
        Ok(tallies)
    })
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)] as f64 / 1000.0
}

/// What one server did under the load: the figures of one row.
struct Row {
    server: &'static str,
    tally: Tally,
    cpu: f64,
    memory: Memory,
    /// Its memory before the clients connected (rooms created, nobody in them).
    idle: Memory,
    /// The server's own account of the time it held a forwarded datagram (p50, p99), where it
    /// keeps one.
    held: Option<(String, String)>,
    /// Datagrams it dropped on a full socket or ICE-TCP queue over the whole run, where it says.
    dropped: Option<u64>,
}

impl Row {
    fn packets_per_cpu_second(&self) -> f64 {
        self.tally.received as f64 / self.cpu
    }

    fn loss_percent(&self) -> f64 {
        let expected = self.tally.received + self.tally.lost;
        if expected == 0 {
            return f64::NAN;
        }
        100.0 * self.tally.lost as f64 / expected as f64
    }

    fn print(&self, participants: usize) {
        let t = &self.tally;
        println!("[{}]", self.server);
        println!("packets forwarded (received): {}", t.received);
        println!("server CPU seconds:           {:.2}", self.cpu);
        println!(
            "forwarded packets per server CPU-second: {:.0}",
            self.packets_per_cpu_second()
        );
        println!(
            "end-to-end latency ms (client send -> client receive, loopback): p50 {:.2} p99 {:.2}",
            percentile(&t.latencies_us, 0.50),
            percentile(&t.latencies_us, 0.99)
        );
        if let Some((p50, p99)) = &self.held {
            println!(
                "added by the server (receipt -> handed to the socket, from its /metrics): p50 {p50} p99 {p99}"
            );
        }
        println!("loss: {:.2}%", self.loss_percent());
        println!("packets lost: {}", t.lost);
        if let Some(first) = t.failures.first() {
            println!(
                "INCOMPLETE: {} of {participants} participants stopped before the end (what they saw is not counted); the first: {first}",
                t.failures.len()
            );
        }
        if let Some(dropped) = self.dropped {
            println!("datagrams the server dropped (a full socket or ICE-TCP queue): {dropped}");
        }
        let per = |kb: u64| kb / participants as u64;
        println!(
            "server RSS: {} KiB total, {} KiB per participant",
            self.memory.rss_kb,
            per(self.memory.rss_kb)
        );
        println!(
            "server RSS growth from idle ({} KiB before the clients came): {} KiB per participant",
            self.idle.rss_kb,
            per(self.memory.rss_kb.saturating_sub(self.idle.rss_kb))
        );
        println!(
            "server anonymous RSS (heap and stacks, no code pages): {} KiB total, {} KiB per participant",
            self.memory.anon_kb,
            per(self.memory.anon_kb)
        );
    }
}

/// When the clients start, measure and stop, for a run starting now.
fn schedule(args: &Args, media: &'static EncodedMedia) -> Schedule {
    let epoch = Instant::now();
    let measure_from = epoch + WARM_UP;
    Schedule {
        media,
        epoch,
        measure_from,
        until: measure_from + Duration::from_secs(args.seconds),
        rtp_clients: args.rtp_clients,
        tcp: args.tcp,
    }
}

/// Sightline under the load: scheduled interviews, participants joining through `/rtc`.
async fn run_sightline(
    args: &Args,
    media: &'static EncodedMedia,
    frames: &Arc<FrameIndex>,
) -> Result<Row> {
    let server = start_server(&args.bin, &[], true, args.server_cpus.as_deref()).await?;
    println!("sightline runs on CPUs {}", allowed_cpus(server.child.id()));
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

    let schedule = schedule(args, media);
    let ws_base = server.base.replacen("http", "ws", 1);
    let pid = server.child.id();
    let participants = tokens
        .into_iter()
        .map(|(room, token)| Participant::Sightline {
            url: format!("{ws_base}/rtc/{room}"),
            token,
        })
        .collect();
    let (_, idle) = process_usage(pid)?;
    let clients = spawn_clients(participants, args.client_threads, frames, schedule);
    if args.record {
        // Halfway through the warm-up everyone publishes: start recording, everyone agrees.
        tokio::time::sleep_until((schedule.epoch + WARM_UP / 2).into()).await;
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
    tokio::time::sleep_until(schedule.measure_from.into()).await;
    let (cpu_before, _) = process_usage(pid)?;
    // `/metrics` is read on a new connection each time: the server closes a connection left idle
    // for its header-read timeout (10 s), and the two scrapes are `--seconds` apart (10 by
    // default), so a kept-alive one could be closed just as the second scrape is sent on it.
    let scraper = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let held_before = forwarding_histogram(&scraper, &server.base).await?;
    tokio::time::sleep_until(schedule.until.into()).await;
    let (cpu_after, memory) = process_usage(pid)?;
    let held_after = forwarding_histogram(&scraper, &server.base).await?;
    let tally = join_clients(clients)?;
    let dropped = send_drops(&scraper, &server.base).await?;
    let held = |q| {
        bucket_quantile_us(&held_before, &held_after, q)
            .map_or_else(|| "n/a".to_owned(), |us| format!("<= {us:.0} us"))
    };
    Ok(Row {
        server: "sightline",
        tally,
        cpu: (cpu_after - cpu_before).max(0.01),
        memory,
        idle,
        held: Some((held(0.50), held(0.99))),
        dropped: Some(dropped),
    })
}

/// Janus's VideoRoom under the same load: one room per interview, everyone publishing and
/// subscribing to everyone else.
async fn run_janus(
    args: &Args,
    media: &'static EncodedMedia,
    frames: &Arc<FrameIndex>,
) -> Result<Row> {
    let janus = janus::start(&args.janus_bin, JANUS_SERVER, args.server_cpus.as_deref()).await?;
    println!("janus runs on CPUs {}", allowed_cpus(janus.pid()));
    let admin = janus::Session::create(reqwest::Client::new(), &janus.base).await?;
    let handle = admin.attach().await?;
    let mut participants = Vec::new();
    for room in 0..args.rooms {
        let id = 1000 + room as u64;
        // No bitrate cap (Janus's REMB), VP8 and Opus only, as Sightline negotiates.
        admin
            .request(
                handle,
                json!({ "request": "create", "room": id, "publishers": args.participants,
                        "bitrate": 0, "videocodec": "vp8", "audiocodec": "opus" }),
            )
            .await?;
        for _ in 0..args.participants {
            participants.push(Participant::Janus {
                base: janus.base.clone(),
                room: id,
                others: args.participants - 1,
            });
        }
    }
    let schedule = schedule(args, media);
    let (_, idle) = process_usage(janus.pid())?;
    let clients = spawn_clients(participants, args.client_threads, frames, schedule);
    tokio::time::sleep_until(schedule.measure_from.into()).await;
    let (cpu_before, _) = process_usage(janus.pid())?;
    tokio::time::sleep_until(schedule.until.into()).await;
    let (cpu_after, memory) = process_usage(janus.pid())?;
    let mut tally = join_clients(clients)
        .map_err(|err| anyhow::anyhow!("{err:#}\nJanus's log ends:\n{}", janus.log_tail()))?;
    // What Janus logged explains a participant it failed.
    if let Some(first) = tally.failures.first_mut() {
        *first = format!("{first}\nJanus's log ends:\n{}", janus.log_tail());
    }
    Ok(Row {
        server: "janus",
        tally,
        cpu: (cpu_after - cpu_before).max(0.01),
        memory,
        idle,
        held: None,
        dropped: None,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(connections) = args.slow_clients {
        if connections == 0 || connections > 50_000 || args.seconds == 0 || args.seconds > 600 {
            bail!("need 1..=50000 slow clients and 1..=600 seconds");
        }
        let server = start_server(&args.bin, &[], true, args.server_cpus.as_deref()).await?;
        let pid = server.child.id();
        return flood::run(&server.base, pid, connections, args.seconds).await;
    }
    if let Some(nodes) = args.nodes {
        if !(2..=8).contains(&nodes) || !(1..=1000).contains(&args.interviews) {
            bail!("need 2..=8 nodes and 1..=1000 interviews");
        }
        if args.server_cpus.is_some() {
            bail!("--server-cpus places one measured server; --nodes starts several");
        }
        return cluster::run(&args.bin, nodes, args.interviews, &args.postgres).await;
    }
    if args.rooms == 0 || args.participants < 2 || args.seconds == 0 || args.seconds > 600 {
        bail!("need rooms >= 1, participants >= 2 and 1..=600 seconds");
    }
    if args.client_threads == 0 || args.client_threads > 64 {
        bail!("need 1..=64 client threads");
    }
    if args.tcp && (args.target != Target::Sightline || args.compare.is_some()) {
        bail!("--tcp measures Sightline alone (the Janus configuration here takes UDP only)");
    }
    let servers: Vec<Target> = match (args.target, args.compare) {
        (first, Some(second)) if first != second => vec![first, second],
        (first, _) => vec![first],
    };
    if servers.contains(&Target::Janus) {
        // Janus needs an address that is not on a loopback interface: the run moves into a
        // network namespace of its own, made and removed with the process.
        if let Some(status) = netns::enter()? {
            std::process::exit(status.code().unwrap_or(1));
        }
    }

    let media = if args.faces || args.proctor {
        scene_media(Scene::OneFace)?
    } else {
        media()?
    };
    let frames = Arc::new(frame_index(media));
    let participants = args.rooms * args.participants;
    println!(
        "rooms={} participants/room={} seconds={}",
        args.rooms, args.participants, args.seconds
    );
    println!(
        "clients: {} thread(s) on CPUs {}, subscribers in {} mode, over {}",
        args.client_threads,
        allowed_cpus("self"),
        if args.rtp_clients {
            "RTP (packets counted one by one)"
        } else {
            "frame (frames reassembled)"
        },
        if args.tcp { "ICE-TCP" } else { "UDP" }
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
    let mut rows = Vec::new();
    for server in servers {
        let row = match server {
            Target::Sightline => run_sightline(&args, media, &frames).await?,
            Target::Janus => run_janus(&args, media, &frames).await?,
        };
        row.print(participants);
        rows.push(row);
    }
    if let [first, second] = rows.as_slice() {
        println!(
            "{} / {} forwarded packets per server CPU-second: {:.2}",
            first.server,
            second.server,
            first.packets_per_cpu_second() / second.packets_per_cpu_second()
        );
    }
    let failed: usize = rows.iter().map(|row| row.tally.failures.len()).sum();
    if failed > 0 {
        bail!("{failed} participants stopped before the end of the run (see the rows above)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_counts_from_the_frames_own_slot() {
        // Frame 2 of a loop of 10 at 33 ms, arriving 1 ms after its slot in the second loop.
        let period = 33_000;
        let arrival = (10 + 2) * period + 1_000;
        assert_eq!(lateness_us(arrival, 2, 10, period), Some(1_000));
        assert_eq!(lateness_us(1_000, 2, 10, period), None);
    }

    #[test]
    fn cpu_lists_are_what_taskset_takes_and_nothing_else() {
        for good in ["1", "2-3", "0,2-3", "12"] {
            assert_eq!(cpu_list(good).as_deref(), Ok(good));
        }
        for bad in ["", "-1", "1-", "1,", "a", "1;true", "1 2", "1-2-3", "99999"] {
            assert!(cpu_list(bad).is_err(), "{bad:?} accepted");
        }
    }
}
