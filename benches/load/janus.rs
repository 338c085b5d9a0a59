//! The peer the load tool compares Sightline with: Janus Gateway's VideoRoom plugin (the Debian
//! `janus` package), started by the tool with a generated configuration and driven over Janus's
//! HTTP API the way its `janus.js` drives it: a session per participant, a publisher handle
//! that joins the room and publishes an offer, and a subscriber handle that joins with the
//! other publishers' feeds and answers Janus's offer.
//!
//! Janus gathers no ICE candidates on a loopback interface, so it runs in the tool's own network
//! namespace (see `netns`), on an address of a veth interface there.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// The Janus plugin every participant attaches to.
const VIDEOROOM: &str = "janus.plugin.videoroom";
/// How long one signaling step may take before the run is given up.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running Janus, stopped when dropped.
pub struct Janus {
    child: Child,
    /// `http://<ip>:<port>/janus`.
    pub base: String,
    /// Holds the configuration and the log.
    dir: tempfile::TempDir,
}

impl Drop for Janus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Janus {
    /// The process id, for its CPU time and memory.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines Janus logged, for an error report.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("janus.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// Where the Debian package keeps a module kind (`plugins`, `transports`).
fn module_dir(kind: &str, file: &str) -> Result<PathBuf> {
    let mut roots: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .map(|dir| {
            dir.filter_map(|entry| entry.ok().map(|e| e.path().join("janus")))
                .collect()
        })
        .unwrap_or_default();
    roots.push(PathBuf::from("/usr/lib/janus"));
    roots.push(PathBuf::from("/usr/local/lib/janus"));
    roots
        .into_iter()
        .map(|root| root.join(kind))
        .find(|dir| dir.join(file).exists())
        .with_context(|| format!("no Janus {kind} directory holds {file} (apt install janus)"))
}

/// A directory holding only `file` of `kind`, so Janus loads that module and no other.
fn only(dir: &Path, kind: &str, file: &str) -> Result<PathBuf> {
    let source = module_dir(kind, file)?.join(file);
    let target = dir.join(kind);
    std::fs::create_dir_all(&target)?;
    std::os::unix::fs::symlink(source, target.join(file))?;
    Ok(target)
}

/// Starts `bin` serving the VideoRoom plugin over HTTP on `ip`, with media on `ip` only.
pub async fn start(bin: &Path, ip: IpAddr, cpus: Option<&str>) -> Result<Janus> {
    let dir = tempfile::tempdir()?;
    let plugins = only(dir.path(), "plugins", "libjanus_videoroom.so")?;
    let transports = only(dir.path(), "transports", "libjanus_http.so")?;
    let events = dir.path().join("events");
    let loggers = dir.path().join("loggers");
    std::fs::create_dir_all(&events)?;
    std::fs::create_dir_all(&loggers)?;
    let port = std::net::TcpListener::bind(SocketAddr::new(ip, 0))?
        .local_addr()?
        .port();
    // Full ICE (Janus's default), host candidates on `ip` only, no TCP candidates, no timeouts
    // (the tool ends its sessions by stopping Janus).
    std::fs::write(
        dir.path().join("janus.jcfg"),
        format!(
            "general: {{\n  configs_folder = \"{configs}\"\n  plugins_folder = \"{plugins}\"\n  \
             transports_folder = \"{transports}\"\n  events_folder = \"{events}\"\n  \
             loggers_folder = \"{loggers}\"\n  debug_level = 3\n  session_timeout = 0\n  \
             interface = \"{ip}\"\n}}\nmedia: {{\n  rtp_port_range = \"20000-40000\"\n}}\n\
             nat: {{\n  ice_lite = false\n  ice_tcp = false\n  ice_enforce_list = \"{ip}\"\n  \
             ignore_mdns = true\n}}\n",
            configs = dir.path().display(),
            plugins = plugins.display(),
            transports = transports.display(),
            events = events.display(),
            loggers = loggers.display(),
        ),
    )?;
    std::fs::write(
        dir.path().join("janus.transport.http.jcfg"),
        format!(
            "general: {{\n  json = \"compact\"\n  base_path = \"/janus\"\n  http = true\n  \
             port = {port}\n  ip = \"{ip}\"\n  https = false\n}}\nadmin: {{\n  admin_http = false\n}}\n"
        ),
    )?;
    std::fs::write(
        dir.path().join("janus.plugin.videoroom.jcfg"),
        "general: { }\n",
    )?;
    let log = std::fs::File::create(dir.path().join("janus.log"))?;
    let child = crate::command_on(bin, cpus)
        .arg("--configs-folder")
        .arg(dir.path())
        .arg("--config")
        .arg(dir.path().join("janus.jcfg"))
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let janus = Janus {
        child,
        base: format!("http://{ip}:{port}/janus"),
        dir,
    };
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http
            .get(format!("{}/info", janus.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(janus);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("Janus did not start:\n{}", janus.log_tail());
}

/// A transaction id, unique within the run.
fn transaction() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn post(http: &reqwest::Client, url: &str, mut body: Value) -> Result<Value> {
    body["transaction"] = json!(transaction());
    let reply: Value = http.post(url).json(&body).send().await?.json().await?;
    if reply["janus"] == "error" {
        bail!("Janus refused {body}: {}", reply["error"]);
    }
    Ok(reply)
}

/// What a plugin said in an asynchronous event: its data and, with an offer or answer, the JSEP.
pub struct PluginEvent {
    pub data: Value,
    pub jsep: Option<Value>,
}

/// One Janus session (one per participant, as a browser has).
pub struct Session {
    http: reqwest::Client,
    url: String,
    /// Events long-polled but not yet asked for.
    pending: VecDeque<Value>,
}

impl Session {
    /// Creates a session.
    pub async fn create(http: reqwest::Client, base: &str) -> Result<Session> {
        let reply = post(&http, base, json!({ "janus": "create" })).await?;
        let id = reply["data"]["id"].as_u64().context("a session id")?;
        Ok(Session {
            http,
            url: format!("{base}/{id}"),
            pending: VecDeque::new(),
        })
    }

    /// Attaches a handle to the VideoRoom plugin.
    pub async fn attach(&self) -> Result<u64> {
        let reply = post(
            &self.http,
            &self.url,
            json!({ "janus": "attach", "plugin": VIDEOROOM }),
        )
        .await?;
        reply["data"]["id"].as_u64().context("a handle id")
    }

    /// A request the plugin answers at once (`create`, `listparticipants`): its data.
    pub async fn request(&self, handle: u64, body: Value) -> Result<Value> {
        let reply = post(
            &self.http,
            &format!("{}/{handle}", self.url),
            json!({ "janus": "message", "body": body }),
        )
        .await?;
        let data = &reply["plugindata"]["data"];
        if data.get("error").is_some() {
            bail!("the VideoRoom refused {body}: {}", data["error"]);
        }
        Ok(data.clone())
    }

    /// A request the plugin answers later, as an event (`join`, `publish`, `start`).
    pub async fn send(&self, handle: u64, body: Value, jsep: Option<Value>) -> Result<()> {
        let mut message = json!({ "janus": "message", "body": body });
        if let Some(jsep) = jsep {
            message["jsep"] = jsep;
        }
        post(&self.http, &format!("{}/{handle}", self.url), message).await?;
        Ok(())
    }

    /// Tells Janus the handle's candidates are all in its SDP (no trickling).
    pub async fn candidates_done(&self, handle: u64) -> Result<()> {
        post(
            &self.http,
            &format!("{}/{handle}", self.url),
            json!({ "janus": "trickle", "candidate": { "completed": true } }),
        )
        .await?;
        Ok(())
    }

    /// The next plugin event for `handle` that `wanted` accepts, long-polling the session for
    /// it; others for the handle (a room's notices of who publishes) are passed over.
    pub async fn event(
        &mut self,
        handle: u64,
        wanted: impl Fn(&Value) -> bool,
    ) -> Result<PluginEvent> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let mine = |e: &Value| e["janus"] == "event" && e["sender"].as_u64() == Some(handle);
            if let Some(failed) = self
                .pending
                .iter()
                .find(|e| mine(e) && e["plugindata"]["data"].get("error").is_some())
            {
                bail!(
                    "the VideoRoom reported an error: {}",
                    failed["plugindata"]["data"]["error"]
                );
            }
            if let Some(index) = self.pending.iter().position(|e| mine(e) && wanted(e)) {
                let event = self.pending.remove(index).context("the event")?;
                let data = event["plugindata"]["data"].clone();
                return Ok(PluginEvent {
                    data,
                    jsep: event.get("jsep").cloned(),
                });
            }
            if Instant::now() > deadline {
                bail!("no event from Janus for handle {handle} in {STEP_TIMEOUT:?}");
            }
            let polled: Value = self
                .http
                .get(format!("{}?maxev=10", self.url))
                .send()
                .await?
                .json()
                .await?;
            match polled {
                Value::Array(events) => self.pending.extend(events),
                event => self.pending.push_back(event),
            }
            // Only plugin events are worth keeping.
            self.pending.retain(|e| e["janus"] == "event");
        }
    }
}
