//! Sightline's typed settings.
//!
//! Settings are layered, later layers winning: the built-in defaults (`config/default.toml`,
//! compiled in so the binary runs from any directory), an optional TOML file given with
//! `--config`, then environment variables `SIGHTLINE__SECTION__KEY`. Loading checks every value
//! and reports the first problem with the key's dotted name, so start-up fails with a message an
//! operator can act on.
//!
//! This crate is data and validation only: it reads no secret files and opens no sockets. Each
//! crate's constructor takes its own section.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

/// The defaults every other layer overrides.
pub const DEFAULT_TOML: &str = include_str!("../default.toml");

/// Prefix of environment overrides; `__` separates nesting levels.
pub const ENV_PREFIX: &str = "SIGHTLINE__";

/// Shortest accepted JWT secret, in bytes (HS256 wants at least the hash size).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// A setting that could not be loaded or failed validation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value has the wrong type or format, or a key is unknown.
    #[error("invalid setting `{key}`: {message}")]
    Invalid {
        /// Dotted key, e.g. `http.addr`.
        key: String,
        /// What is wrong, including where the value came from.
        message: String,
    },
}

impl ConfigError {
    fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// The dotted key the error is about.
    pub fn key(&self) -> &str {
        match self {
            ConfigError::Invalid { key, .. } => key,
        }
    }
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        let key = if err.path.is_empty() {
            "(root)".to_owned()
        } else {
            err.path.join(".")
        };
        let source = match err.metadata.as_ref() {
            // Name the exact variable an operator has to fix, not just "the environment".
            Some(meta) if meta.name.contains("environment") => {
                format!(
                    "environment variable {ENV_PREFIX}{}",
                    err.path.join("__").to_uppercase()
                )
            }
            Some(meta) => match &meta.source {
                Some(source) => format!("{} {source}", meta.name),
                None => meta.name.to_string(),
            },
            None => "settings".to_owned(),
        };
        ConfigError::invalid(&key, format!("{} (from {source})", err.kind))
    }
}

/// How much the server may decide on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One machine: a generated JWT secret kept in `data.dir`, SQLite unless told otherwise.
    Embedded,
    /// Secrets and the database must be given explicitly.
    Production,
}

/// Log output shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Everything Sightline can be configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Embedded or production behaviour.
    pub mode: Mode,
    /// HTTP listener and request limits.
    pub http: HttpSettings,
    /// Local data directory.
    pub data: DataSettings,
    /// Database connection.
    pub database: DatabaseSettings,
    /// How the server is reached from outside.
    pub public: PublicSettings,
    /// Tokens, cookies and rate limits.
    pub auth: AuthSettings,
    /// The media plane's sockets and workers.
    pub rtc: RtcSettings,
    /// Where recordings go and how long they stay.
    pub recording: RecordingSettings,
    /// Server-side proctoring: models, load, retention.
    pub proctoring: ProctoringSettings,
    /// Running candidates' code in a sandbox.
    pub execution: ExecutionSettings,
    /// Logging.
    pub log: LogSettings,
    /// Where Prometheus metrics are served, and to whom.
    pub metrics: MetricsSettings,
    /// TURN servers handed to clients.
    pub turn: TurnSettings,
    /// Several servers as one, coordinated through NATS.
    pub cluster: ClusterSettings,
    /// Recording in `sightline worker` processes instead of in the nodes.
    pub workers: WorkersSettings,
    /// Sending email (password resets), off until an SMTP server is named.
    pub email: EmailSettings,
    /// Delivering events to the HTTP endpoints admins register.
    pub webhooks: WebhooksSettings,
}

/// `[webhooks]`: how events reach the endpoints admins register (signed POSTs from a persisted
/// outbox, retried with backoff).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksSettings {
    /// Attempts at one delivery before it is marked failed.
    pub max_attempts: u32,
    /// Seconds before a failed delivery is tried again the first time (doubling after, at most
    /// an hour apart).
    pub retry_secs: u32,
    /// Seconds an endpoint has to answer one delivery.
    pub timeout_secs: u32,
    /// Whether endpoints may be plain `http://` on another machine (events carry names and
    /// email addresses; without TLS anyone on the way reads them).
    pub allow_http: bool,
    /// Whether endpoints may be on this machine or a private network (loopback, RFC 1918,
    /// link-local, unique-local addresses). Off, the server only ever connects to public
    /// addresses, checked when a name is resolved for each request, so an admin's endpoint
    /// cannot reach services behind the server.
    pub allow_private_targets: bool,
}

/// `[email]`: messages go out through an SMTP server, from a persisted outbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// `smtps://user:pass@host:465`, `smtp://user:pass@host:587?tls=required`, or
    /// `smtp://host:port` (unencrypted: a local relay only). Unset: no email is sent (set it
    /// through the environment: it may hold a password).
    #[serde(default)]
    pub smtp_url: Option<SecretString>,
    /// The sender, e.g. `Sightline <interviews@example.com>`.
    pub from: String,
    /// Attempts at one message before it is marked failed (retried with backoff meanwhile).
    pub max_attempts: u32,
    /// Seconds before a failed message is tried again the first time (doubling after).
    pub retry_secs: u32,
    /// Minutes a password reset link stays valid.
    pub reset_link_minutes: u32,
}

impl EmailSettings {
    /// Whether email is sent at all.
    pub fn enabled(&self) -> bool {
        self.smtp_url
            .as_ref()
            .is_some_and(|url| !url.expose_secret().is_empty())
    }
}

/// Where a cluster's recordings, or its proctoring checks, are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkPlacement {
    /// Each node does it for the rooms it hosts (the default, and the only choice alone).
    InProcess,
    /// Nodes post jobs that `sightline worker` processes take.
    Remote,
}

/// `[workers]`: recording in separate `sightline worker` processes, which take jobs from the
/// cluster's work queue and receive the room's media from its node over QUIC with mutual TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersSettings {
    /// `in_process` or `remote` (needs `[cluster]`, and a store nodes and workers share).
    pub recording: WorkPlacement,
    /// `in_process` or `remote`: where proctored cameras are decoded and checked (a node keeps
    /// the events either way).
    pub proctoring: WorkPlacement,
    /// Where a node's link listens for workers (UDP).
    pub link_listen: SocketAddr,
    /// The address workers dial; unset: `link_listen`, which must then name one address.
    #[serde(default)]
    pub link_advertise: Option<SocketAddr>,
    /// The name a node's link certificate carries, which workers check.
    pub link_name: String,
    /// PEM file of the CA that signs nodes' and workers' link certificates.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// This process's link certificate (PEM): a node's for `link_name`, a worker's as client.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file` (PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Seconds a job stays a silent worker's before another worker gets it.
    pub ack_wait_secs: u64,
    /// Jobs one worker runs at once.
    pub max_jobs: usize,
}

impl WorkersSettings {
    /// Whether this node hands its recordings to workers.
    pub fn remote(&self) -> bool {
        self.recording == WorkPlacement::Remote
    }

    /// Whether this node hands its proctoring checks to workers.
    pub fn proctoring_remote(&self) -> bool {
        self.proctoring == WorkPlacement::Remote
    }

    /// Whether this node hands anything to workers (it then runs the link).
    pub fn any_remote(&self) -> bool {
        self.remote() || self.proctoring_remote()
    }
}

/// `[cluster]`: this server as one node of several, coordinated through NATS JetStream. Off
/// (one server alone, the embedded default) while `nats_url` is empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// The NATS server (`nats://host:4222`, `tls://host:4222`); empty: no cluster.
    pub nats_url: String,
    /// User name on the NATS server (with `nats_password`); empty: none.
    #[serde(default)]
    pub nats_user: String,
    /// Password of `nats_user` (set it through the environment).
    #[serde(default)]
    pub nats_password: Option<SecretString>,
    /// Token the NATS server's `authorization { token }` expects, instead of a user.
    #[serde(default)]
    pub nats_token: Option<SecretString>,
    /// Seed (`SU…`) of the NKey user the NATS server lists, instead of a user or a token.
    #[serde(default)]
    pub nats_nkey_seed: Option<SecretString>,
    /// Use TLS towards NATS even with a `nats://` URL.
    #[serde(default)]
    pub nats_require_tls: bool,
    /// PEM file of the CA that signed the NATS server's certificate; unset: the system's roots.
    #[serde(default)]
    pub nats_ca_file: Option<PathBuf>,
    /// PEM certificate this node presents to a NATS server that verifies clients.
    #[serde(default)]
    pub nats_cert_file: Option<PathBuf>,
    /// PEM private key of `nats_cert_file`.
    #[serde(default)]
    pub nats_key_file: Option<PathBuf>,
    /// This node's name (1 to 64 letters, digits, `-`, `_`); empty: the machine's host name.
    pub node_id: String,
    /// Where this node is; a room this node cannot take goes to another node of its region.
    pub region: String,
    /// Where the other nodes reach this node's API; empty: `public.base_url`.
    pub advertise_url: String,
    /// Time between heartbeats.
    pub heartbeat_ms: u64,
    /// How long a heartbeat counts: a node silent this long is dead to the others.
    pub heartbeat_ttl_ms: u64,
    /// Asked to stop, how long a node keeps serving the rooms it hosts (taking no new ones)
    /// before it stops anyway; 0: stop at once.
    pub max_drain_secs: u64,
}

impl ClusterSettings {
    /// Whether this server joins a cluster.
    pub fn enabled(&self) -> bool {
        !self.nats_url.is_empty()
    }
}

/// Whether `value` is one NATS token as node ids and regions must be.
fn is_cluster_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Shortest accepted TURN shared secret, in bytes.
pub const MIN_TURN_SECRET_BYTES: usize = 16;

/// `[turn]`: TURN servers clients are given, with credentials in the TURN REST form coturn's
/// `use-auth-secret` checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnSettings {
    /// `turn:` or `turns:` URLs; empty means no TURN.
    pub urls: Vec<String>,
    /// The secret shared with coturn's `static-auth-secret` (set it through the environment).
    #[serde(default)]
    pub shared_secret: Option<SecretString>,
    /// How long one issued credential is valid.
    pub credential_ttl_secs: u64,
}

/// Where recordings are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageKind {
    /// A directory under `data.dir` (the embedded default).
    Local,
    /// An S3-compatible bucket.
    S3,
}

/// `[recording]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingSettings {
    /// Local directory or S3.
    pub storage: StorageKind,
    /// Days after its end that a recording is deleted; 0 keeps recordings until an admin
    /// deletes them.
    pub retention_days: u32,
    /// The bucket, when `storage` is `s3`.
    pub s3: S3Settings,
}

/// `[proctoring]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProctoringSettings {
    /// Folder of the face detector's model files.
    pub models_dir: PathBuf,
    /// Face detections that may run at once.
    pub detector_threads: usize,
    /// Days proctoring events and snapshots are kept; 0 keeps them until an admin deletes them.
    pub retention_days: u32,
    /// How long conditions must last.
    pub checks: CheckTimes,
}

/// `[proctoring.checks]`: seconds a condition must last before its event opens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckTimes {
    /// Calibration of the face checks.
    pub calibration_secs: u64,
    /// No face.
    pub face_absent_secs: u64,
    /// A second face.
    pub multiple_faces_secs: u64,
    /// A dark picture.
    pub camera_dark_secs: u64,
    /// An unchanging picture.
    pub camera_frozen_secs: u64,
    /// The phone's view differing from its reference.
    pub side_view_changed_secs: u64,
}

/// `[execution]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionSettings {
    /// Whether "Run" is offered at all.
    pub enabled: bool,
    /// The bubblewrap binary.
    pub bwrap: PathBuf,
    /// Runs that may execute at once on this server; later ones wait in a queue.
    pub concurrency: usize,
    /// Runs that may wait; past this a run is refused as busy.
    pub max_queued: usize,
    /// Runs one interview may start per minute.
    pub runs_per_minute: u32,
    /// First of the user ids runs are given when the server runs as root (one per concurrent
    /// run, so their process limits are separate).
    pub sandbox_uid: u32,
    /// Days after an interview ends that its code (the editor's history) and its runs are
    /// deleted; 0 keeps them.
    pub code_retention_days: u32,
    /// Seconds between an open editor's checks of its member's access. Changes the server makes
    /// itself (a removal from the room, a cancelled interview, a reissued invite, a deactivated
    /// account, erased data) are checked at once; this catches the rest (the room closing at its
    /// time, a missed notice).
    pub editor_recheck_secs: u64,
    /// Host paths the sandbox sees, read-only (those that do not exist are skipped).
    pub read_only_paths: Vec<PathBuf>,
    /// What one run may use.
    pub limits: ExecutionLimits,
    /// The languages offered, by id (`python`, `cpp`, ...).
    pub languages: std::collections::BTreeMap<String, LanguageSettings>,
}

/// `[execution.limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionLimits {
    /// Wall-clock time of a run, compiling included.
    pub wall_secs: u64,
    /// CPU time of each process of a run.
    pub cpu_secs: u64,
    /// Data memory of each process of a run.
    pub memory_mib: u64,
    /// Processes and threads of a run.
    pub processes: u64,
    /// stdout and stderr together; past this the run is stopped.
    pub output_kib: u64,
    /// Size of the run's work directory (a fresh tmpfs).
    pub work_dir_mib: u64,
    /// Largest stdin a run accepts.
    pub stdin_kib: u64,
}

/// `[execution.languages.<id>]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageSettings {
    /// The name people see.
    pub name: String,
    /// The file the code is written to in the work directory.
    pub file: String,
    /// The shell command that compiles (if needed) and runs it, in the work directory.
    pub command: String,
}

/// `[recording.s3]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// e.g. `eu-west-1`.
    pub region: String,
    /// Bucket name.
    pub bucket: String,
    /// Path-style URLs (`endpoint/bucket/key`), which most S3-compatible servers need.
    pub path_style: bool,
    /// Access key id.
    pub access_key: String,
    /// Secret access key (set it through the environment).
    #[serde(default)]
    pub secret_key: Option<SecretString>,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Address the HTTP server binds; port 0 picks a free port.
    pub addr: SocketAddr,
    /// Origins allowed to make cross-origin API calls (exact `scheme://host[:port]`).
    pub cors_allowed_origins: Vec<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Time a client has to send a request's headers, from the moment the server starts waiting
    /// for them (a new connection, or the next request on a kept-alive one). Slow or silent
    /// clients are closed after it.
    pub header_read_timeout_ms: u64,
    /// A connection on which no byte moved in either direction for this long is closed (a
    /// stalled upload, a client that stopped reading its answer). WebSockets have their own.
    pub idle_timeout_secs: u64,
    /// Most connections held open at once (WebSockets included). At the cap the oldest idle
    /// connection is shed for a new one, or, with none idle, the new one gets 503. The server
    /// also keeps this below its file-descriptor limit.
    pub max_connections: usize,
    /// Addresses of reverse proxies (IPs or CIDR networks) whose `X-Forwarded-For` and
    /// `Forwarded` headers are believed. Empty: the socket's peer address is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// `[metrics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// A separate listener for `/metrics` only (bind it where only the scraper reaches).
    /// When set, the main listener does not serve metrics.
    pub addr: Option<SocketAddr>,
    /// A bearer token the main listener's `/metrics` requires. With neither `addr` nor `token`
    /// set, metrics are not served.
    pub token: Option<SecretString>,
}

/// `[data]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    /// Directory for the SQLite file, the generated secret and local objects.
    pub dir: PathBuf,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://...` or `postgres://...`; may hold a password, hence secret.
    #[serde(default)]
    pub url: Option<SecretString>,
    /// Pool size.
    pub max_connections: u32,
}

/// `[public]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicSettings {
    /// Base of links handed to people: invites, pairing codes.
    pub base_url: Url,
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HMAC key for access and join tokens.
    #[serde(default)]
    pub jwt_secret: Option<SecretString>,
    /// Lifetime of an access token.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token family member.
    pub refresh_token_ttl_secs: u64,
    /// Lifetime of a room join token (time allowed to connect).
    pub join_token_ttl_secs: u64,
    /// Whether the refresh cookie carries `Secure`.
    pub secure_cookies: bool,
    /// Brute-force protection for login and registration.
    pub rate_limit: RateLimitSettings,
}

/// `[auth.rate_limit]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Requests a client IP may make at once.
    pub per_ip_burst: u32,
    /// Time for one more request per IP to be allowed.
    pub per_ip_period_ms: u64,
    /// Login attempts an account may receive at once.
    pub per_account_burst: u32,
    /// Time for one more attempt per account to be allowed.
    pub per_account_period_ms: u64,
}

/// `[rtc]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtcSettings {
    /// Address the UDP sockets bind.
    pub bind_ip: IpAddr,
    /// First UDP port; 0 lets the system choose.
    pub port_range_start: u16,
    /// Last UDP port (inclusive) when a range is given.
    pub port_range_end: u16,
    /// Extra addresses advertised as ICE candidates.
    pub public_ips: Vec<IpAddr>,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Whether workers also take ICE over TCP (a passive TCP candidate, RFC 4571 framing).
    pub tcp: bool,
    /// First TCP port; 0 lets the system choose.
    pub tcp_port_range_start: u16,
    /// Last TCP port (inclusive) when a range is given.
    pub tcp_port_range_end: u16,
    /// TCP connections one worker holds at once.
    pub tcp_max_connections: usize,
    /// Whether subscribers' bandwidth is estimated and drives their layers.
    pub bandwidth_estimation: bool,
    /// Stopped m-lines a subscriber connection may keep between live ones before it is
    /// replaced by a fresh one (each departed track leaves one behind).
    pub max_stopped_m_lines: usize,
}

impl RtcSettings {
    /// The worker count in force.
    pub fn worker_count(&self) -> usize {
        if self.workers == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            self.workers
        }
    }

    /// The UDP address worker `index` binds.
    pub fn worker_addr(&self, index: usize) -> SocketAddr {
        SocketAddr::new(self.bind_ip, port_in(self.port_range_start, index))
    }

    /// The TCP address worker `index` listens on for ICE over TCP, when that is on.
    pub fn worker_tcp_addr(&self, index: usize) -> Option<SocketAddr> {
        self.tcp
            .then(|| SocketAddr::new(self.bind_ip, port_in(self.tcp_port_range_start, index)))
    }
}

/// Port `index` of a range starting at `start`; 0 (the system picks) when there is no range.
fn port_in(start: u16, index: usize) -> u16 {
    if start == 0 {
        return 0;
    }
    u16::try_from(index)
        .ok()
        .and_then(|i| start.checked_add(i))
        .unwrap_or(0)
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Output shape.
    pub format: LogFormat,
    /// `tracing_subscriber::EnvFilter` directives.
    pub filter: String,
}

/// Checks a TURN URL as browsers read it (RFC 7065): `turn:` or `turns:`, a host, an optional
/// port, an optional `?transport=udp|tcp`, and nothing else.
fn check_turn_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("turns:")
        .or_else(|| url.strip_prefix("turn:"))
        .ok_or("must start with `turn:` or `turns:`")?;
    let (address, query) = match rest.split_once('?') {
        Some((address, query)) => (address, Some(query)),
        None => (rest, None),
    };
    if let Some(query) = query
        && !matches!(query, "transport=udp" | "transport=tcp")
    {
        return Err("the only query allowed is `transport=udp` or `transport=tcp`");
    }
    let host = match address.rsplit_once(':') {
        // An IPv6 literal is bracketed; a colon inside it is not a port.
        Some((host, port)) if !port.contains(']') => {
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or("the port must be a number from 1 to 65535")?;
            host
        }
        _ => address,
    };
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && (host.parse::<IpAddr>().is_ok()
            || host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
    if valid_host {
        Ok(())
    } else {
        Err("must name a host: a DNS name or an IP address")
    }
}

impl Settings {
    /// The layered sources: defaults, then `file` if given, then the process environment.
    pub fn figment(file: Option<&Path>) -> Figment {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment.merge(Env::prefixed(ENV_PREFIX).split("__"))
    }

    /// Loads and validates settings from the standard layers.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::from_figment(Settings::figment(file))
    }

    /// Extracts and validates settings from any set of layers (tests add their own).
    pub fn from_figment(figment: Figment) -> Result<Settings, ConfigError> {
        let settings: Settings = figment.extract()?;
        // The TURN secret lets anyone who holds it relay through the operator's TURN servers:
        // it is not written into a settings file that gets copied around.
        if let Some(meta) = figment.find_metadata("turn.shared_secret")
            && !meta.name.contains("environment")
        {
            return Err(ConfigError::invalid(
                "turn.shared_secret",
                format!(
                    "is read from the environment only (SIGHTLINE__TURN__SHARED_SECRET), not from {}",
                    meta.name
                ),
            ));
        }
        settings.validate()?;
        Ok(settings)
    }

    /// The database URL in force: the configured one, or the embedded SQLite file.
    pub fn database_url(&self) -> SecretString {
        match &self.database.url {
            Some(url) => url.clone(),
            None => {
                let path = self.data.dir.join("sightline.db");
                SecretString::from(format!("sqlite://{}?mode=rwc", path.display()))
            }
        }
    }

    fn validate_execution(&self) -> Result<(), ConfigError> {
        let exec = &self.execution;
        let limits = &exec.limits;
        for (key, value, range) in [
            ("execution.concurrency", exec.concurrency as u64, 1..=256),
            ("execution.max_queued", exec.max_queued as u64, 0..=10_000),
            (
                "execution.runs_per_minute",
                u64::from(exec.runs_per_minute),
                1..=600,
            ),
            (
                "execution.editor_recheck_secs",
                exec.editor_recheck_secs,
                1..=3600,
            ),
            ("execution.limits.wall_secs", limits.wall_secs, 1..=600),
            ("execution.limits.cpu_secs", limits.cpu_secs, 1..=600),
            (
                "execution.limits.memory_mib",
                limits.memory_mib,
                16..=65_536,
            ),
            ("execution.limits.processes", limits.processes, 1..=4096),
            ("execution.limits.output_kib", limits.output_kib, 1..=65_536),
            (
                "execution.limits.work_dir_mib",
                limits.work_dir_mib,
                1..=65_536,
            ),
            ("execution.limits.stdin_kib", limits.stdin_kib, 0..=65_536),
        ] {
            if !range.contains(&value) {
                return Err(ConfigError::invalid(
                    key,
                    format!("must be between {} and {}", range.start(), range.end()),
                ));
            }
        }
        for (id, lang) in &exec.languages {
            let key = format!("execution.languages.{id}");
            let id_ok = !id.is_empty()
                && id.len() <= 32
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !id_ok {
                return Err(ConfigError::invalid(
                    &key,
                    "a language id is 1-32 lowercase letters, digits or `_`",
                ));
            }
            let file_ok = !lang.file.is_empty()
                && lang.file.len() <= 64
                && lang.file != "."
                && lang.file != ".."
                && lang
                    .file
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !file_ok {
                return Err(ConfigError::invalid(
                    &format!("{key}.file"),
                    "must be a plain file name (letters, digits, `.`, `_`, `-`)",
                ));
            }
            if lang.command.trim().is_empty() || lang.name.trim().is_empty() {
                return Err(ConfigError::invalid(
                    &key,
                    "`name` and `command` must not be empty",
                ));
            }
        }
        Ok(())
    }

    fn validate_turn(&self) -> Result<(), ConfigError> {
        let turn = &self.turn;
        for url in &turn.urls {
            check_turn_url(url)
                .map_err(|why| ConfigError::invalid("turn.urls", format!("`{url}`: {why}")))?;
        }
        if !(60..=86_400).contains(&turn.credential_ttl_secs) {
            return Err(ConfigError::invalid(
                "turn.credential_ttl_secs",
                "must be between 60 and 86400 seconds",
            ));
        }
        match &turn.shared_secret {
            None if !turn.urls.is_empty() => Err(ConfigError::invalid(
                "turn.shared_secret",
                "is required when turn.urls are given (SIGHTLINE__TURN__SHARED_SECRET)",
            )),
            Some(secret) if secret.expose_secret().len() < MIN_TURN_SECRET_BYTES => {
                Err(ConfigError::invalid(
                    "turn.shared_secret",
                    format!("must be at least {MIN_TURN_SECRET_BYTES} bytes"),
                ))
            }
            _ => Ok(()),
        }
    }

    fn validate_email(&self) -> Result<(), ConfigError> {
        let email = &self.email;
        if !(1..=50).contains(&email.max_attempts) {
            return Err(ConfigError::invalid(
                "email.max_attempts",
                "must be between 1 and 50",
            ));
        }
        if !(1..=3600).contains(&email.retry_secs) {
            return Err(ConfigError::invalid(
                "email.retry_secs",
                "must be between 1 and 3600",
            ));
        }
        if !(5..=1440).contains(&email.reset_link_minutes) {
            return Err(ConfigError::invalid(
                "email.reset_link_minutes",
                "must be between 5 and 1440",
            ));
        }
        let from = email.from.trim();
        let plausible = from.contains('@') && !from.contains(['\r', '\n']);
        if !plausible {
            return Err(ConfigError::invalid(
                "email.from",
                "must be an address, e.g. `Sightline <interviews@example.com>`",
            ));
        }
        let Some(raw) = email.smtp_url.as_ref().filter(|_| email.enabled()) else {
            return Ok(());
        };
        // Never echo the URL: it may carry a password.
        let Ok(url) = Url::parse(raw.expose_secret()) else {
            return Err(ConfigError::invalid(
                "email.smtp_url",
                "is not a URL (smtps://user:pass@host:465 or smtp://user:pass@host:587?tls=required)",
            ));
        };
        match url.scheme() {
            "smtps" => Ok(()),
            "smtp" => {
                let tls_required = url
                    .query_pairs()
                    .any(|(key, value)| key == "tls" && value == "required");
                let on_this_machine = match url.host() {
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    // smtp: is no special scheme: its host is opaque text, an address too.
                    Some(url::Host::Domain(name)) => {
                        name == "localhost"
                            || name
                                .trim_start_matches('[')
                                .trim_end_matches(']')
                                .parse::<std::net::IpAddr>()
                                .is_ok_and(|ip| ip.is_loopback())
                    }
                    None => false,
                };
                if tls_required || on_this_machine {
                    Ok(())
                } else {
                    Err(ConfigError::invalid(
                        "email.smtp_url",
                        "must use TLS to a server on another machine: smtps://, or smtp://…?tls=required (STARTTLS)",
                    ))
                }
            }
            _ => Err(ConfigError::invalid(
                "email.smtp_url",
                "must start with smtps:// or smtp://",
            )),
        }
    }

    fn validate_webhooks(&self) -> Result<(), ConfigError> {
        let hooks = &self.webhooks;
        if !(1..=50).contains(&hooks.max_attempts) {
            return Err(ConfigError::invalid(
                "webhooks.max_attempts",
                "must be between 1 and 50",
            ));
        }
        if !(1..=3600).contains(&hooks.retry_secs) {
            return Err(ConfigError::invalid(
                "webhooks.retry_secs",
                "must be between 1 and 3600",
            ));
        }
        if !(1..=60).contains(&hooks.timeout_secs) {
            return Err(ConfigError::invalid(
                "webhooks.timeout_secs",
                "must be between 1 and 60",
            ));
        }
        Ok(())
    }

    fn validate_workers(&self) -> Result<(), ConfigError> {
        let workers = &self.workers;
        if !(2..=600).contains(&workers.ack_wait_secs) {
            return Err(ConfigError::invalid(
                "workers.ack_wait_secs",
                "must be between 2 and 600 seconds",
            ));
        }
        if !(1..=256).contains(&workers.max_jobs) {
            return Err(ConfigError::invalid(
                "workers.max_jobs",
                "must be between 1 and 256",
            ));
        }
        if !workers.any_remote() {
            return Ok(());
        }
        let (mode, mode_key) = if workers.remote() {
            ("workers.recording = \"remote\"", "workers.recording")
        } else {
            ("workers.proctoring = \"remote\"", "workers.proctoring")
        };
        if !self.cluster.enabled() {
            return Err(ConfigError::invalid(
                mode_key,
                "`remote` needs a cluster: set cluster.nats_url",
            ));
        }
        for (key, file) in [
            ("workers.ca_file", &workers.ca_file),
            ("workers.cert_file", &workers.cert_file),
            ("workers.key_file", &workers.key_file),
        ] {
            if file.is_none() {
                return Err(ConfigError::invalid(
                    key,
                    format!("is needed with {mode}: the link uses mutual TLS"),
                ));
            }
        }
        // Unset, workers dial the address the link is bound to (its port once bound).
        let unusable = match workers.link_advertise {
            Some(advertised) => advertised.ip().is_unspecified() || advertised.port() == 0,
            None => workers.link_listen.ip().is_unspecified(),
        };
        if unusable {
            return Err(ConfigError::invalid(
                "workers.link_advertise",
                "must name the address and port workers dial (link_listen does not)",
            ));
        }
        if workers.link_name.is_empty() {
            return Err(ConfigError::invalid(
                "workers.link_name",
                "must name the host in the node's link certificate",
            ));
        }
        Ok(())
    }

    /// Credentials and TLS files for NATS: one way to log in, complete pairs, files that exist.
    fn validate_nats_access(cluster: &ClusterSettings) -> Result<(), ConfigError> {
        // async-nats never sends credentials written into the URL: refuse them rather than
        // connect anonymously with the password sitting in the configuration.
        let with_credentials = cluster.nats_url.split(',').any(|server| {
            server
                .split_once("://")
                .map_or(server, |(_, rest)| rest)
                .split('/')
                .next()
                .is_some_and(|authority| authority.contains('@'))
        });
        if with_credentials {
            return Err(ConfigError::invalid(
                "cluster.nats_url",
                "must not carry credentials: set cluster.nats_user and SIGHTLINE__CLUSTER__NATS_PASSWORD (or SIGHTLINE__CLUSTER__NATS_TOKEN)",
            ));
        }
        let password = cluster.nats_password.is_some();
        if cluster.nats_user.is_empty() && password {
            return Err(ConfigError::invalid(
                "cluster.nats_user",
                "is required with cluster.nats_password",
            ));
        }
        if !cluster.nats_user.is_empty() && !password {
            return Err(ConfigError::invalid(
                "cluster.nats_password",
                "is required with cluster.nats_user (SIGHTLINE__CLUSTER__NATS_PASSWORD)",
            ));
        }
        if password && cluster.nats_token.is_some() {
            return Err(ConfigError::invalid(
                "cluster.nats_token",
                "cannot be used together with cluster.nats_user and cluster.nats_password",
            ));
        }
        if let Some(seed) = &cluster.nats_nkey_seed {
            if password || cluster.nats_token.is_some() {
                return Err(ConfigError::invalid(
                    "cluster.nats_nkey_seed",
                    "cannot be used together with a NATS password or token",
                ));
            }
            // A user seed: `S`, `U`, then base32; the NATS client checks the rest.
            if !seed.expose_secret().starts_with("SU") {
                return Err(ConfigError::invalid(
                    "cluster.nats_nkey_seed",
                    "must be an NKey user seed (it starts with SU)",
                ));
            }
        }
        if cluster
            .nats_token
            .as_ref()
            .is_some_and(|token| token.expose_secret().is_empty())
            || cluster
                .nats_password
                .as_ref()
                .is_some_and(|password| password.expose_secret().is_empty())
        {
            return Err(ConfigError::invalid(
                "cluster.nats_password",
                "a NATS password or token must not be empty",
            ));
        }
        match (&cluster.nats_cert_file, &cluster.nats_key_file) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "cluster.nats_key_file",
                    "is required with cluster.nats_cert_file",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "cluster.nats_cert_file",
                    "is required with cluster.nats_key_file",
                ));
            }
            _ => {}
        }
        for (key, file) in [
            ("cluster.nats_ca_file", &cluster.nats_ca_file),
            ("cluster.nats_cert_file", &cluster.nats_cert_file),
            ("cluster.nats_key_file", &cluster.nats_key_file),
        ] {
            if let Some(file) = file
                && !file.is_file()
            {
                return Err(ConfigError::invalid(
                    key,
                    format!("{} is not a readable file", file.display()),
                ));
            }
        }
        Ok(())
    }

    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let cluster = &self.cluster;
        if !cluster.enabled() {
            return Ok(());
        }
        if !(cluster.nats_url.starts_with("nats://") || cluster.nats_url.starts_with("tls://")) {
            return Err(ConfigError::invalid(
                "cluster.nats_url",
                "must start with nats:// or tls://",
            ));
        }
        Self::validate_nats_access(cluster)?;
        let named = "1 to 64 letters, digits, '-' or '_'";
        if !cluster.node_id.is_empty() && !is_cluster_name(&cluster.node_id) {
            return Err(ConfigError::invalid(
                "cluster.node_id",
                format!("must be {named}"),
            ));
        }
        if !is_cluster_name(&cluster.region) {
            return Err(ConfigError::invalid(
                "cluster.region",
                format!("must be {named}"),
            ));
        }
        if !(100..=60_000).contains(&cluster.heartbeat_ms) {
            return Err(ConfigError::invalid(
                "cluster.heartbeat_ms",
                "must be between 100 and 60000",
            ));
        }
        if cluster.max_drain_secs > 86_400 {
            return Err(ConfigError::invalid(
                "cluster.max_drain_secs",
                "must be at most 86400 (a day)",
            ));
        }
        if cluster.heartbeat_ttl_ms < cluster.heartbeat_ms * 3 || cluster.heartbeat_ttl_ms > 600_000
        {
            return Err(ConfigError::invalid(
                "cluster.heartbeat_ttl_ms",
                "must be at least three times cluster.heartbeat_ms (one missed heartbeat is not a death) and at most 600000",
            ));
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let checks = &self.proctoring.checks;
        for (key, secs) in [
            (
                "proctoring.checks.calibration_secs",
                checks.calibration_secs,
            ),
            (
                "proctoring.checks.face_absent_secs",
                checks.face_absent_secs,
            ),
            (
                "proctoring.checks.multiple_faces_secs",
                checks.multiple_faces_secs,
            ),
            (
                "proctoring.checks.camera_dark_secs",
                checks.camera_dark_secs,
            ),
            (
                "proctoring.checks.camera_frozen_secs",
                checks.camera_frozen_secs,
            ),
            (
                "proctoring.checks.side_view_changed_secs",
                checks.side_view_changed_secs,
            ),
        ] {
            if !(1..=3600).contains(&secs) {
                return Err(ConfigError::invalid(
                    key,
                    "must be between 1 and 3600 seconds",
                ));
            }
        }
        if !(1..=64).contains(&self.proctoring.detector_threads) {
            return Err(ConfigError::invalid(
                "proctoring.detector_threads",
                "must be between 1 and 64",
            ));
        }
        self.validate_execution()?;
        if self.http.max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "http.max_body_bytes",
                "must be at least 1024",
            ));
        }
        if self.http.header_read_timeout_ms < 100 {
            return Err(ConfigError::invalid(
                "http.header_read_timeout_ms",
                "must be at least 100",
            ));
        }
        if self.http.idle_timeout_secs == 0 {
            return Err(ConfigError::invalid(
                "http.idle_timeout_secs",
                "must be at least 1",
            ));
        }
        if self.http.max_connections < 16 {
            return Err(ConfigError::invalid(
                "http.max_connections",
                "must be at least 16",
            ));
        }
        self.validate_turn()?;
        self.validate_cluster()?;
        self.validate_workers()?;
        self.validate_email()?;
        self.validate_webhooks()?;
        if let Some(token) = &self.metrics.token
            && token.expose_secret().len() < 16
        {
            return Err(ConfigError::invalid(
                "metrics.token",
                "must be at least 16 bytes",
            ));
        }
        for origin in &self.http.cors_allowed_origins {
            let parsed = Url::parse(origin).map_err(|e| {
                ConfigError::invalid("http.cors_allowed_origins", format!("`{origin}`: {e}"))
            })?;
            if parsed.origin().ascii_serialization() != origin.trim_end_matches('/') {
                return Err(ConfigError::invalid(
                    "http.cors_allowed_origins",
                    format!("`{origin}` must be an origin: scheme://host[:port], no path"),
                ));
            }
        }
        if self.data.dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid("data.dir", "must not be empty"));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::invalid(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        if let Some(url) = &self.database.url {
            let url = url.expose_secret();
            if !["sqlite:", "postgres:", "postgresql:"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
            {
                return Err(ConfigError::invalid(
                    "database.url",
                    "must start with sqlite:, postgres: or postgresql:",
                ));
            }
        }
        if !matches!(self.public.base_url.scheme(), "http" | "https") {
            return Err(ConfigError::invalid(
                "public.base_url",
                "must be an http or https URL",
            ));
        }
        if let Some(secret) = &self.auth.jwt_secret
            && secret.expose_secret().len() < MIN_JWT_SECRET_BYTES
        {
            return Err(ConfigError::invalid(
                "auth.jwt_secret",
                format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
            ));
        }
        if !(60..=3600).contains(&self.auth.access_token_ttl_secs) {
            return Err(ConfigError::invalid(
                "auth.access_token_ttl_secs",
                "must be between 60 and 3600: access tokens are short-lived",
            ));
        }
        if self.auth.refresh_token_ttl_secs < self.auth.access_token_ttl_secs {
            return Err(ConfigError::invalid(
                "auth.refresh_token_ttl_secs",
                "must not be shorter than auth.access_token_ttl_secs",
            ));
        }
        if !(10..=300).contains(&self.auth.join_token_ttl_secs) {
            return Err(ConfigError::invalid(
                "auth.join_token_ttl_secs",
                "must be between 10 and 300",
            ));
        }
        let limits = &self.auth.rate_limit;
        for (key, value) in [
            (
                "auth.rate_limit.per_ip_burst",
                u64::from(limits.per_ip_burst),
            ),
            ("auth.rate_limit.per_ip_period_ms", limits.per_ip_period_ms),
            (
                "auth.rate_limit.per_account_burst",
                u64::from(limits.per_account_burst),
            ),
            (
                "auth.rate_limit.per_account_period_ms",
                limits.per_account_period_ms,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        if self.rtc.bind_ip.is_unspecified() && self.rtc.public_ips.is_empty() {
            return Err(ConfigError::invalid(
                "rtc.public_ips",
                "must name the addresses clients reach this machine at when rtc.bind_ip is \
                 unspecified (0.0.0.0 or ::)",
            ));
        }
        if let Some(ip) = self.rtc.public_ips.iter().find(|ip| ip.is_unspecified()) {
            return Err(ConfigError::invalid(
                "rtc.public_ips",
                format!("{ip} is not an address clients can reach"),
            ));
        }
        if self.rtc.workers > 64 {
            return Err(ConfigError::invalid("rtc.workers", "must be at most 64"));
        }
        for (key, start, end) in [
            (
                "rtc.port_range_end",
                self.rtc.port_range_start,
                self.rtc.port_range_end,
            ),
            (
                "rtc.tcp_port_range_end",
                self.rtc.tcp_port_range_start,
                self.rtc.tcp_port_range_end,
            ),
        ] {
            if start != 0
                && (end < start
                    || usize::from(end.saturating_sub(start)) + 1 < self.rtc.worker_count())
            {
                return Err(ConfigError::invalid(
                    key,
                    "the port range needs one port per worker",
                ));
            }
        }
        if self.rtc.tcp && !(1..=65_536).contains(&self.rtc.tcp_max_connections) {
            return Err(ConfigError::invalid(
                "rtc.tcp_max_connections",
                "must be between 1 and 65536",
            ));
        }
        if self.recording.storage == StorageKind::S3 {
            let s3 = &self.recording.s3;
            let endpoint = Url::parse(&s3.endpoint).map_err(|e| {
                ConfigError::invalid("recording.s3.endpoint", format!("`{}`: {e}", s3.endpoint))
            })?;
            if !matches!(endpoint.scheme(), "http" | "https") {
                return Err(ConfigError::invalid(
                    "recording.s3.endpoint",
                    "must be an http or https URL",
                ));
            }
            for (key, value) in [
                ("recording.s3.region", &s3.region),
                ("recording.s3.bucket", &s3.bucket),
                ("recording.s3.access_key", &s3.access_key),
            ] {
                if value.trim().is_empty() {
                    return Err(ConfigError::invalid(
                        key,
                        "is required when recording.storage is s3",
                    ));
                }
            }
            if s3
                .secret_key
                .as_ref()
                .is_none_or(|k| k.expose_secret().is_empty())
            {
                return Err(ConfigError::invalid(
                    "recording.s3.secret_key",
                    "is required when recording.storage is s3",
                ));
            }
        }
        if self.mode == Mode::Production {
            if self.auth.jwt_secret.is_none() {
                return Err(ConfigError::invalid(
                    "auth.jwt_secret",
                    "is required in production mode",
                ));
            }
            if self.database.url.is_none() {
                return Err(ConfigError::invalid(
                    "database.url",
                    "is required in production mode",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
// `Jail::expect_with` fixes the closure's return type to `Result<(), figment::Error>`.
#[allow(clippy::result_large_err)]
mod tests {
    use figment::Jail;

    use super::*;

    fn load_in(jail: &Jail, file: Option<&str>) -> Result<Settings, ConfigError> {
        let path = file.map(|f| jail.directory().join(f));
        Settings::load(path.as_deref())
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        Jail::expect_with(|jail| {
            let settings = load_in(jail, None).expect("defaults are valid");
            assert_eq!(settings.mode, Mode::Embedded);
            assert_eq!(settings.http.addr.to_string(), "127.0.0.1:8080");
            assert_eq!(settings.data.dir, PathBuf::from("./data"));
            assert!(settings.auth.jwt_secret.is_none());
            assert_eq!(
                settings.database_url().expose_secret(),
                "sqlite://./data/sightline.db?mode=rwc"
            );
            assert_eq!(settings.auth.access_token_ttl_secs, 900);
            Ok(())
        });
    }

    #[test]
    fn file_then_environment_override_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "sightline.toml",
                "[http]\naddr = \"0.0.0.0:9000\"\n[data]\ndir = \"/srv/sl\"\n",
            )?;
            jail.set_env("SIGHTLINE__HTTP__ADDR", "127.0.0.1:9100");
            let settings = load_in(jail, Some("sightline.toml")).expect("valid");
            assert_eq!(settings.http.addr.to_string(), "127.0.0.1:9100");
            assert_eq!(settings.data.dir, PathBuf::from("/srv/sl"));
            Ok(())
        });
    }

    #[test]
    fn bad_value_names_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("SIGHTLINE__HTTP__ADDR", "not-an-address");
            let err = load_in(jail, None).expect_err("invalid address");
            assert_eq!(err.key(), "http.addr");
            assert!(err.to_string().contains("SIGHTLINE__HTTP__ADDR"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn execution_languages_and_limits_are_checked() {
        Jail::expect_with(|jail| {
            let settings = load_in(jail, None).expect("defaults");
            let ids: Vec<&str> = settings
                .execution
                .languages
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                ids,
                [
                    "cpp",
                    "go",
                    "java",
                    "javascript",
                    "python",
                    "rust",
                    "typescript"
                ]
            );
            jail.create_file(
                "bad.toml",
                "[execution.languages.evil]\nname = \"Evil\"\nfile = \"../x\"\ncommand = \"true\"\n",
            )?;
            let err = load_in(jail, Some("bad.toml")).expect_err("path in a file name");
            assert_eq!(err.key(), "execution.languages.evil.file");
            jail.set_env("SIGHTLINE__EXECUTION__LIMITS__WALL_SECS", "0");
            let err = load_in(jail, None).expect_err("no time at all");
            assert_eq!(err.key(), "execution.limits.wall_secs");
            Ok(())
        });
    }

    #[test]
    fn turn_needs_good_urls_and_a_secret_from_the_environment() {
        Jail::expect_with(|jail| {
            let settings = load_in(jail, None).expect("defaults");
            assert!(settings.turn.urls.is_empty() && settings.turn.shared_secret.is_none());

            jail.create_file(
                "turn.toml",
                "[turn]\nurls = [\"turn:turn.example.com:3478?transport=udp\", \"turns:203.0.113.7:443?transport=tcp\", \"turn:[2001:db8::1]:3478\"]\n",
            )?;
            let err = load_in(jail, Some("turn.toml")).expect_err("no secret");
            assert_eq!(err.key(), "turn.shared_secret");
            jail.set_env("SIGHTLINE__TURN__SHARED_SECRET", "short");
            let err = load_in(jail, Some("turn.toml")).expect_err("short secret");
            assert_eq!(err.key(), "turn.shared_secret");
            jail.set_env("SIGHTLINE__TURN__SHARED_SECRET", "s".repeat(32));
            let settings = load_in(jail, Some("turn.toml")).expect("valid");
            assert_eq!(settings.turn.urls.len(), 3);

            for bad in [
                "stun:turn.example.com",
                "turn:",
                "turn:host:0",
                "turn:host:99999",
                "turn:host?transport=sctp",
                "turn:host name",
            ] {
                jail.create_file("bad.toml", &format!("[turn]\nurls = [\"{bad}\"]\n"))?;
                let err = load_in(jail, Some("bad.toml")).expect_err(bad);
                assert_eq!(err.key(), "turn.urls", "{bad}");
            }

            jail.clear_env();
            jail.create_file(
                "secret.toml",
                "[turn]\nurls = [\"turn:t.example.com\"]\nshared_secret = \"written-in-a-file-0123\"\n",
            )?;
            let err = load_in(jail, Some("secret.toml")).expect_err("secret in a file");
            assert_eq!(err.key(), "turn.shared_secret");
            jail.set_env("SIGHTLINE__TURN__SHARED_SECRET", "s".repeat(32));
            jail.set_env("SIGHTLINE__TURN__CREDENTIAL_TTL_SECS", "5");
            let err = load_in(jail, Some("turn.toml")).expect_err("too short a ttl");
            assert_eq!(err.key(), "turn.credential_ttl_secs");
            Ok(())
        });
    }

    #[test]
    fn a_cluster_needs_a_nats_url_and_good_names() {
        Jail::expect_with(|jail| {
            let settings = load_in(jail, None).expect("defaults");
            assert!(!settings.cluster.enabled(), "alone by default");

            jail.set_env("SIGHTLINE__CLUSTER__NATS_URL", "nats://127.0.0.1:4222");
            jail.set_env("SIGHTLINE__CLUSTER__NODE_ID", "eu-1");
            jail.set_env("SIGHTLINE__CLUSTER__REGION", "eu");
            let settings = load_in(jail, None).expect("valid");
            assert!(settings.cluster.enabled());
            assert_eq!(settings.cluster.node_id, "eu-1");

            for (key, value, bad) in [
                ("NATS_URL", "http://127.0.0.1:4222", "cluster.nats_url"),
                ("NODE_ID", "eu.1", "cluster.node_id"),
                ("REGION", "", "cluster.region"),
                ("HEARTBEAT_MS", "10", "cluster.heartbeat_ms"),
                ("HEARTBEAT_TTL_MS", "3000", "cluster.heartbeat_ttl_ms"),
                ("MAX_DRAIN_SECS", "86401", "cluster.max_drain_secs"),
            ] {
                let name = format!("SIGHTLINE__CLUSTER__{key}");
                jail.set_env(&name, value);
                let err = load_in(jail, None).expect_err(value);
                assert_eq!(err.key(), bad, "{value}");
                let good = match key {
                    "NATS_URL" => "nats://127.0.0.1:4222",
                    "NODE_ID" => "eu-1",
                    "REGION" => "eu",
                    "HEARTBEAT_MS" => "2000",
                    _ => "6000",
                };
                jail.set_env(&name, good);
            }
            Ok(())
        });
    }

    #[test]
    fn email_is_off_by_default_and_a_bad_server_url_is_refused_without_echoing_it() {
        Jail::expect_with(|jail| {
            let settings = load_in(jail, None).expect("defaults");
            assert!(!settings.email.enabled(), "no email by default");
            jail.set_env(
                "SIGHTLINE__EMAIL__SMTP_URL",
                "imap://user:hunter2@mail.example.com",
            );
            let err = load_in(jail, None).expect_err("not SMTP");
            assert_eq!(err.key(), "email.smtp_url");
            assert!(!err.to_string().contains("hunter2"), "{err}");
            // Credentials in the clear to another machine are refused; STARTTLS required is not.
            jail.set_env(
                "SIGHTLINE__EMAIL__SMTP_URL",
                "smtp://user:hunter2@mail.example.com:587",
            );
            let err = load_in(jail, None).expect_err("no TLS");
            assert_eq!(err.key(), "email.smtp_url");
            assert!(!err.to_string().contains("hunter2"), "{err}");
            jail.set_env(
                "SIGHTLINE__EMAIL__SMTP_URL",
                "smtp://user:hunter2@mail.example.com:587?tls=required",
            );
            load_in(jail, None).expect("STARTTLS");
            jail.set_env("SIGHTLINE__EMAIL__SMTP_URL", "smtp://127.0.0.1:25");
            load_in(jail, None).expect("a relay on this machine");
            jail.set_env(
                "SIGHTLINE__EMAIL__SMTP_URL",
                "smtps://user:hunter2@mail.example.com",
            );
            jail.set_env("SIGHTLINE__EMAIL__FROM", "nobody");
            let err = load_in(jail, None).expect_err("not an address");
            assert_eq!(err.key(), "email.from");
            jail.set_env(
                "SIGHTLINE__EMAIL__FROM",
                "Sightline <interviews@example.com>",
            );
            let settings = load_in(jail, None).expect("valid");
            assert!(settings.email.enabled());
            assert!(
                !format!("{settings:?}").contains("hunter2"),
                "no secret in Debug"
            );
            jail.set_env("SIGHTLINE__EMAIL__MAX_ATTEMPTS", "0");
            let err = load_in(jail, None).expect_err("no attempt");
            assert_eq!(err.key(), "email.max_attempts");
            Ok(())
        });
    }

    #[test]
    fn webhook_retries_and_timeouts_are_bounded() {
        Jail::expect_with(|jail| {
            let settings = load_in(jail, None).expect("defaults");
            assert!(
                !settings.webhooks.allow_http,
                "TLS to other machines by default"
            );
            assert_eq!(settings.webhooks.max_attempts, 12);
            jail.set_env("SIGHTLINE__WEBHOOKS__TIMEOUT_SECS", "0");
            let err = load_in(jail, None).expect_err("no time to answer");
            assert_eq!(err.key(), "webhooks.timeout_secs");
            jail.set_env("SIGHTLINE__WEBHOOKS__TIMEOUT_SECS", "5");
            jail.set_env("SIGHTLINE__WEBHOOKS__MAX_ATTEMPTS", "51");
            let err = load_in(jail, None).expect_err("too many attempts");
            assert_eq!(err.key(), "webhooks.max_attempts");
            Ok(())
        });
    }

    #[test]
    fn remote_recording_needs_a_cluster_and_the_link_s_certificates() {
        Jail::expect_with(|jail| {
            let settings = load_in(jail, None).expect("defaults");
            assert!(!settings.workers.remote(), "recorded in process by default");

            jail.set_env("SIGHTLINE__WORKERS__RECORDING", "remote");
            let err = load_in(jail, None).expect_err("remote without a cluster");
            assert_eq!(err.key(), "workers.recording");

            jail.set_env("SIGHTLINE__CLUSTER__NATS_URL", "nats://127.0.0.1:4222");
            let err = load_in(jail, None).expect_err("remote without certificates");
            assert_eq!(err.key(), "workers.ca_file");
            jail.set_env("SIGHTLINE__WORKERS__CA_FILE", "/etc/ca.pem");
            jail.set_env("SIGHTLINE__WORKERS__CERT_FILE", "/etc/node.pem");
            let err = load_in(jail, None).expect_err("remote without a key");
            assert_eq!(err.key(), "workers.key_file");
            jail.set_env("SIGHTLINE__WORKERS__KEY_FILE", "/etc/node-key.pem");
            let settings = load_in(jail, None).expect("valid");
            assert!(settings.workers.remote());

            // Workers must be told an address they can dial.
            jail.set_env("SIGHTLINE__WORKERS__LINK_LISTEN", "0.0.0.0:7882");
            let err = load_in(jail, None).expect_err("an unspecified address");
            assert_eq!(err.key(), "workers.link_advertise");
            jail.set_env("SIGHTLINE__WORKERS__LINK_ADVERTISE", "10.0.0.5:7882");
            load_in(jail, None).expect("advertised");

            // Proctoring through workers needs the same.
            jail.set_env("SIGHTLINE__WORKERS__RECORDING", "in_process");
            jail.set_env("SIGHTLINE__WORKERS__PROCTORING", "remote");
            let settings = load_in(jail, None).expect("proctoring remote");
            assert!(settings.workers.proctoring_remote() && !settings.workers.remote());
            jail.set_env("SIGHTLINE__CLUSTER__NATS_URL", "");
            let err = load_in(jail, None).expect_err("proctoring remote without a cluster");
            assert_eq!(err.key(), "workers.proctoring");
            jail.set_env("SIGHTLINE__CLUSTER__NATS_URL", "nats://127.0.0.1:4222");

            for (key, value) in [("ACK_WAIT_SECS", "1"), ("MAX_JOBS", "0")] {
                let name = format!("SIGHTLINE__WORKERS__{key}");
                jail.set_env(&name, value);
                let err = load_in(jail, None).expect_err(value);
                assert_eq!(err.key(), format!("workers.{}", key.to_lowercase()));
                jail.set_env(&name, "8");
            }
            Ok(())
        });
    }

    /// Loads with a cluster configured and the `[cluster]` settings `extra` (env names after
    /// `SIGHTLINE__CLUSTER__`), files created in the jail first.
    fn cluster_with(extra: &[(&str, &str)], files: &[&str]) -> Result<Settings, ConfigError> {
        let mut loaded = None;
        Jail::expect_with(|jail| {
            for file in files {
                jail.create_file(file, "PEM")?;
            }
            jail.set_env("SIGHTLINE__CLUSTER__NATS_URL", "tls://127.0.0.1:4222");
            for (key, value) in extra {
                jail.set_env(format!("SIGHTLINE__CLUSTER__{key}"), value);
            }
            loaded = Some(load_in(jail, None));
            Ok(())
        });
        loaded.expect("the jail ran")
    }

    #[test]
    fn nats_credentials_and_tls_files_come_whole_and_never_in_the_url() {
        let settings = cluster_with(
            &[("NATS_USER", "sightline"), ("NATS_PASSWORD", "hunter22")],
            &[],
        )
        .expect("a user and its password");
        assert_eq!(
            settings
                .cluster
                .nats_password
                .as_ref()
                .map(|p| p.expose_secret().to_owned()),
            Some("hunter22".to_owned())
        );
        assert!(
            !format!("{settings:?}").contains("hunter22"),
            "the password stays out of logs"
        );
        cluster_with(
            &[
                ("NATS_CA_FILE", "ca.pem"),
                ("NATS_CERT_FILE", "node.pem"),
                ("NATS_KEY_FILE", "node-key.pem"),
                ("NATS_TOKEN", "a-token"),
            ],
            &["ca.pem", "node.pem", "node-key.pem"],
        )
        .expect("a token and TLS files that exist");
        let seed = "SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4";
        let settings = cluster_with(&[("NATS_NKEY_SEED", seed)], &[]).expect("an NKey seed");
        assert!(
            !format!("{settings:?}").contains(seed),
            "the seed stays out of logs"
        );

        for (extra, files, bad) in [
            (
                vec![("NATS_URL", "nats://sightline:hunter22@127.0.0.1:4222")],
                vec![],
                "cluster.nats_url",
            ),
            (
                vec![(
                    "NATS_URL",
                    "nats://127.0.0.1:4222,nats://sightline:hunter22@127.0.0.2:4222",
                )],
                vec![],
                "cluster.nats_url",
            ),
            (
                vec![("NATS_USER", "sightline")],
                vec![],
                "cluster.nats_password",
            ),
            (
                vec![("NATS_PASSWORD", "hunter22")],
                vec![],
                "cluster.nats_user",
            ),
            (
                vec![
                    ("NATS_USER", "sightline"),
                    ("NATS_PASSWORD", "hunter22"),
                    ("NATS_TOKEN", "a-token"),
                ],
                vec![],
                "cluster.nats_token",
            ),
            (
                vec![(
                    "NATS_NKEY_SEED",
                    "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4",
                )],
                vec![],
                "cluster.nats_nkey_seed",
            ),
            (
                vec![("NATS_TOKEN", "a-token"), ("NATS_NKEY_SEED", "SUAIBDPB")],
                vec![],
                "cluster.nats_nkey_seed",
            ),
            (
                vec![("NATS_CERT_FILE", "node.pem")],
                vec!["node.pem"],
                "cluster.nats_key_file",
            ),
            (
                vec![("NATS_KEY_FILE", "node-key.pem")],
                vec!["node-key.pem"],
                "cluster.nats_cert_file",
            ),
            (
                vec![("NATS_CA_FILE", "missing.pem")],
                vec![],
                "cluster.nats_ca_file",
            ),
        ] {
            let err = cluster_with(&extra, &files).expect_err("refused");
            assert_eq!(err.key(), bad, "{extra:?}");
        }
    }

    #[test]
    fn unknown_key_is_refused() {
        Jail::expect_with(|jail| {
            jail.set_env("SIGHTLINE__HTTP__ADR", "127.0.0.1:1");
            let err = load_in(jail, None).expect_err("typo");
            assert!(err.to_string().contains("adr"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn production_requires_secret_and_database() {
        Jail::expect_with(|jail| {
            jail.set_env("SIGHTLINE__MODE", "production");
            let err = load_in(jail, None).expect_err("no secret");
            assert_eq!(err.key(), "auth.jwt_secret");
            jail.set_env("SIGHTLINE__AUTH__JWT_SECRET", "x".repeat(40));
            let err = load_in(jail, None).expect_err("no database");
            assert_eq!(err.key(), "database.url");
            jail.set_env("SIGHTLINE__DATABASE__URL", "postgres://db/sightline");
            load_in(jail, None).expect("complete production settings");
            Ok(())
        });
    }

    #[test]
    fn short_secret_and_long_tokens_are_refused() {
        Jail::expect_with(|jail| {
            jail.set_env("SIGHTLINE__AUTH__JWT_SECRET", "short");
            assert_eq!(
                load_in(jail, None).expect_err("short").key(),
                "auth.jwt_secret"
            );
            jail.set_env("SIGHTLINE__AUTH__JWT_SECRET", "y".repeat(32));
            jail.set_env("SIGHTLINE__AUTH__ACCESS_TOKEN_TTL_SECS", "86400");
            assert_eq!(
                load_in(jail, None).expect_err("long").key(),
                "auth.access_token_ttl_secs"
            );
            Ok(())
        });
    }

    #[test]
    fn cors_entries_must_be_origins() {
        Jail::expect_with(|jail| {
            jail.set_env(
                "SIGHTLINE__HTTP__CORS_ALLOWED_ORIGINS",
                "[\"https://app.example.com/path\"]",
            );
            assert_eq!(
                load_in(jail, None).expect_err("path").key(),
                "http.cors_allowed_origins"
            );
            jail.set_env(
                "SIGHTLINE__HTTP__CORS_ALLOWED_ORIGINS",
                "[\"https://app.example.com\"]",
            );
            load_in(jail, None).expect("origin");
            Ok(())
        });
    }

    #[test]
    fn rtc_ports_come_from_the_range() {
        Jail::expect_with(|jail| {
            jail.set_env("SIGHTLINE__RTC__PORT_RANGE_START", "50000");
            jail.set_env("SIGHTLINE__RTC__PORT_RANGE_END", "50001");
            jail.set_env("SIGHTLINE__RTC__WORKERS", "2");
            let settings = load_in(jail, None).expect("valid");
            assert_eq!(settings.rtc.worker_addr(1).port(), 50001);
            jail.set_env("SIGHTLINE__RTC__WORKERS", "3");
            assert_eq!(
                load_in(jail, None).expect_err("too few ports").key(),
                "rtc.port_range_end"
            );
            jail.set_env("SIGHTLINE__RTC__WORKERS", "2");
            jail.set_env("SIGHTLINE__RTC__TCP_PORT_RANGE_START", "51000");
            jail.set_env("SIGHTLINE__RTC__TCP_PORT_RANGE_END", "51000");
            assert_eq!(
                load_in(jail, None).expect_err("too few TCP ports").key(),
                "rtc.tcp_port_range_end"
            );
            jail.set_env("SIGHTLINE__RTC__TCP_PORT_RANGE_END", "51001");
            let settings = load_in(jail, None).expect("valid");
            assert_eq!(
                settings.rtc.worker_tcp_addr(1).map(|a| a.port()),
                Some(51001)
            );
            jail.set_env("SIGHTLINE__RTC__TCP", "false");
            assert_eq!(
                load_in(jail, None).expect("valid").rtc.worker_tcp_addr(0),
                None
            );
            Ok(())
        });
    }

    #[test]
    fn binding_every_address_needs_addresses_to_advertise() {
        Jail::expect_with(|jail| {
            jail.set_env("SIGHTLINE__RTC__BIND_IP", "0.0.0.0");
            assert_eq!(
                load_in(jail, None).expect_err("nothing to advertise").key(),
                "rtc.public_ips"
            );
            jail.set_env("SIGHTLINE__RTC__PUBLIC_IPS", "[192.168.1.20, 10.0.0.7]");
            let settings = load_in(jail, None).expect("valid");
            assert_eq!(settings.rtc.public_ips.len(), 2);
            jail.set_env("SIGHTLINE__RTC__PUBLIC_IPS", "[0.0.0.0]");
            assert_eq!(
                load_in(jail, None).expect_err("unreachable").key(),
                "rtc.public_ips"
            );
            Ok(())
        });
    }

    #[test]
    fn s3_storage_needs_its_bucket_and_keys() {
        Jail::expect_with(|jail| {
            assert_eq!(
                load_in(jail, None).expect("valid").recording.storage,
                StorageKind::Local
            );
            jail.set_env("SIGHTLINE__RECORDING__STORAGE", "s3");
            assert_eq!(
                load_in(jail, None).expect_err("no endpoint").key(),
                "recording.s3.endpoint"
            );
            jail.set_env(
                "SIGHTLINE__RECORDING__S3__ENDPOINT",
                "http://127.0.0.1:9000",
            );
            jail.set_env("SIGHTLINE__RECORDING__S3__ACCESS_KEY", "sightline");
            assert_eq!(
                load_in(jail, None).expect_err("no secret").key(),
                "recording.s3.secret_key"
            );
            jail.set_env("SIGHTLINE__RECORDING__S3__SECRET_KEY", "z".repeat(40));
            let settings = load_in(jail, None).expect("valid");
            assert!(!format!("{settings:?}").contains(&"z".repeat(40)));
            Ok(())
        });
    }

    #[test]
    fn secrets_do_not_print() {
        Jail::expect_with(|jail| {
            jail.set_env("SIGHTLINE__AUTH__JWT_SECRET", "z".repeat(48));
            let settings = load_in(jail, None).expect("valid");
            assert!(!format!("{settings:?}").contains(&"z".repeat(48)));
            Ok(())
        });
    }
}
