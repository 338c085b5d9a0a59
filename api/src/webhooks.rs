//! Webhooks: what happens in Sightline, POSTed to the HTTP endpoints admins register.
//!
//! An event is written for every endpoint that wants it, in the same transaction as what caused
//! it where there is one (`store/webhooks.rs`: a rolled-back change tells nobody), then delivered
//! by a sender task: one delivery in flight per endpoint and at most [`MAX_IN_FLIGHT`] in all, so
//! an endpoint that hangs or fails holds up only itself. A delivery is claimed before it is sent
//! (the claim lapses after [`CLAIM_SECS`], so one a dead server was sending is sent again), and
//! marked delivered on a 2xx answer, or tried again with backoff (`webhooks.retry_secs`,
//! doubling, at most an hour apart) until `webhooks.max_attempts`, then marked failed for admins.
//! Redirects are not followed. A restart loses nothing: what was not marked delivered is sent
//! again, with the same event id, so a receiver that saw it drops the repeat.
//!
//! Each POST carries the JSON envelope (`id`, `created_at`, `event`, `data`) and
//! `Sightline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed with the
//! endpoint's secret. The secret is not stored: it is derived from the server's secret, the
//! endpoint's id and its secret generation (raised by a rotation), so a copy of the database
//! signs nothing, and every node of a cluster signs alike.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::Sha256;
use sightline_config::WebhooksSettings;
use sightline_signaling::protocol::LeaveReason;
use sightline_signaling::{Hub, InterviewRole, PresenceChange, RoomActivity};
use sqlx::AnyConnection;
use tokio::sync::Notify;
use tokio::task::{self, JoinSet};
use url::Url;

use crate::error::ApiError;
use crate::store::{Db, new_id, now, webhooks};

/// How long a claim on a delivery lasts (longer than one delivery may take).
const CLAIM_SECS: i64 = 120;
/// Deliveries under way at once, across endpoints.
const MAX_IN_FLIGHT: usize = 16;
/// How often the deliveries are looked at when nothing wakes the sender.
const POLL: Duration = Duration::from_secs(2);
/// How often old rows are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// How long a delivered or failed delivery stays for admins.
const KEEP_SECS: i64 = 30 * 86_400;
/// Room arrivals and departures waiting to be written before more are dropped (and counted).
const PRESENCE_QUEUE: usize = 1024;

/// Every event an endpoint can ask for.
pub const EVENTS: &[&str] = &[
    "interview.scheduled",
    "interview.updated",
    "interview.cancelled",
    "participant.joined",
    "participant.left",
    "recording.started",
    "recording.finished",
    "recording.failed",
    "proctoring.flag_raised",
    "scorecard.submitted",
];

/// An interview as events describe it.
#[derive(Debug, Clone, Serialize)]
pub struct InterviewData {
    /// Its id.
    pub interview_id: String,
    /// Its title.
    pub title: String,
    /// RFC 3339, UTC.
    pub scheduled_start: String,
    /// Minutes.
    pub duration_minutes: i64,
    /// The IANA time zone it was scheduled in.
    pub time_zone: String,
    /// `scheduled` or `cancelled`.
    pub status: String,
}

impl InterviewData {
    /// From its row.
    pub fn from_row(row: &crate::store::interviews::InterviewRow) -> InterviewData {
        InterviewData {
            interview_id: row.id.clone(),
            title: row.title.clone(),
            scheduled_start: jiff::Timestamp::from_second(row.scheduled_start)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            duration_minutes: row.duration_minutes,
            time_zone: row.time_zone.clone(),
            status: row.status.clone(),
        }
    }
}

/// Someone in an interview's room.
#[derive(Debug, Clone, Serialize)]
pub struct ParticipantData {
    /// The interview.
    pub interview_id: String,
    /// Their identity in the room (their participant id; a phone's is `phone-…`).
    pub participant: String,
    /// Their name.
    pub name: String,
    /// Their role.
    pub role: InterviewRole,
    /// For a candidate's phone: the candidate's identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_of: Option<String>,
}

/// Someone who left an interview's room.
#[derive(Debug, Clone, Serialize)]
pub struct ParticipantLeftData {
    /// The interview.
    pub interview_id: String,
    /// Their identity in the room.
    pub participant: String,
    /// Why.
    pub reason: LeaveReason,
}

/// A recording.
#[derive(Debug, Clone, Serialize)]
pub struct RecordingData {
    /// The interview.
    pub interview_id: String,
    /// The recording.
    pub recording_id: String,
    /// `recording`, `complete`, `interrupted` or `failed`.
    pub status: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A proctoring observation opened (evidence for people to review, not a verdict).
#[derive(Debug, Clone, Serialize)]
pub struct FlagData {
    /// The interview.
    pub interview_id: String,
    /// The proctoring event.
    pub event_id: String,
    /// What was seen (`face_absent`, `multiple_faces`, ...).
    pub kind: String,
    /// Whose camera.
    pub participant: String,
}

/// A scorecard submitted or revised.
#[derive(Debug, Clone, Serialize)]
pub struct ScorecardData {
    /// The interview.
    pub interview_id: String,
    /// The scorecard.
    pub scorecard_id: String,
    /// The interviewer's account.
    pub author_id: String,
    /// `strong_no`, `no`, `yes` or `strong_yes`.
    pub recommendation: String,
}

/// Something an endpoint can be told.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", content = "data")]
pub enum Event {
    /// An interview was scheduled.
    #[serde(rename = "interview.scheduled")]
    InterviewScheduled(InterviewData),
    /// Its time, title or length changed.
    #[serde(rename = "interview.updated")]
    InterviewUpdated(InterviewData),
    /// It was cancelled.
    #[serde(rename = "interview.cancelled")]
    InterviewCancelled(InterviewData),
    /// Someone came into its room.
    #[serde(rename = "participant.joined")]
    ParticipantJoined(ParticipantData),
    /// Someone left it.
    #[serde(rename = "participant.left")]
    ParticipantLeft(ParticipantLeftData),
    /// A recording began.
    #[serde(rename = "recording.started")]
    RecordingStarted(RecordingData),
    /// A recording ended with its files (`complete` or `interrupted`).
    #[serde(rename = "recording.finished")]
    RecordingFinished(RecordingData),
    /// A recording failed.
    #[serde(rename = "recording.failed")]
    RecordingFailed(RecordingData),
    /// Proctoring opened an observation.
    #[serde(rename = "proctoring.flag_raised")]
    ProctoringFlagRaised(FlagData),
    /// An interviewer submitted or revised a scorecard.
    #[serde(rename = "scorecard.submitted")]
    ScorecardSubmitted(ScorecardData),
}

impl Event {
    /// Its name, one of [`EVENTS`].
    pub fn name(&self) -> &'static str {
        match self {
            Event::InterviewScheduled(_) => "interview.scheduled",
            Event::InterviewUpdated(_) => "interview.updated",
            Event::InterviewCancelled(_) => "interview.cancelled",
            Event::ParticipantJoined(_) => "participant.joined",
            Event::ParticipantLeft(_) => "participant.left",
            Event::RecordingStarted(_) => "recording.started",
            Event::RecordingFinished(_) => "recording.finished",
            Event::RecordingFailed(_) => "recording.failed",
            Event::ProctoringFlagRaised(_) => "proctoring.flag_raised",
            Event::ScorecardSubmitted(_) => "scorecard.submitted",
        }
    }
}

/// What is POSTed.
#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a str,
    created_at: String,
    #[serde(flatten)]
    event: &'a Event,
}

/// Writes `event` for every endpoint that wants it through `conn` (the caller's transaction,
/// when there is one). The sender finds it within [`POLL`]; [`Webhooks::wake`] sends it sooner.
pub async fn record(conn: &mut AnyConnection, event: &Event) -> Result<usize, sqlx::Error> {
    let id = new_id();
    let envelope = Envelope {
        id: &id,
        created_at: jiff::Timestamp::now().to_string(),
        event,
    };
    let body = serde_json::to_string(&envelope)
        .map_err(|err| sqlx::Error::Protocol(format!("an event that is not JSON: {err}")))?;
    webhooks::queue(conn, &id, event.name(), &body).await
}

/// Like [`record`] for something that was not a transaction: a failure is logged, never the
/// caller's (an event that cannot be written does not undo what happened). Returns how many
/// deliveries were written.
pub async fn record_now(db: &Db, event: &Event) -> usize {
    let written = match db.pool().acquire().await {
        Ok(mut conn) => record(&mut conn, event).await,
        Err(err) => Err(err),
    };
    written.unwrap_or_else(|err| {
        tracing::warn!(event = event.name(), %err, "a webhook event was not written");
        0
    })
}

/// The signing secret of endpoint `endpoint` at `generation`, derived from `master`.
pub fn endpoint_secret(master: &SecretString, endpoint: &str, generation: i64) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(master.expose_secret().as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => return String::new(),
    };
    mac.update(b"sightline webhook secret\0");
    mac.update(endpoint.as_bytes());
    mac.update(b"\0");
    mac.update(generation.to_string().as_bytes());
    format!(
        "whsec_{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// The `Sightline-Signature` header for `body` sent at `timestamp` with `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let hex = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body.as_bytes());
            mac.finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        }
        Err(_) => String::new(),
    };
    format!("t={timestamp},v1={hex}")
}

/// Checks an endpoint URL an admin gave: http(s) with a host, no credentials in it, an address
/// literal (or `localhost`) only if it is public or `allow_private` (names are checked each time
/// they are resolved, see [`PublicOnly`]), and https unless `allow_http` or the host is this
/// machine.
pub fn check_url(raw: &str, allow_http: bool, allow_private: bool) -> Result<Url, ApiError> {
    let invalid = |message: &str| ApiError::field("url", message);
    if raw.len() > 2000 {
        return Err(invalid("at most 2000 characters"));
    }
    let url = Url::parse(raw.trim()).map_err(|_| invalid("not a URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "must not carry credentials (endpoints verify the signature instead)",
        ));
    }
    let (private, loopback) = match url.host() {
        Some(url::Host::Ipv4(ip)) => (!is_public(IpAddr::V4(ip)), ip.is_loopback()),
        Some(url::Host::Ipv6(ip)) => (!is_public(IpAddr::V6(ip)), ip.is_loopback()),
        Some(url::Host::Domain(name)) => {
            let local = name.eq_ignore_ascii_case("localhost");
            (local, local)
        }
        None => return Err(invalid("has no host")),
    };
    if private && !allow_private {
        return Err(invalid(
            "must be a public address; webhooks.allow_private_targets permits this machine and private networks",
        ));
    }
    match url.scheme() {
        "https" => {}
        // Plain HTTP on this machine crosses no network.
        "http" if allow_http || loopback => {}
        "http" => {
            return Err(invalid(
                "must be https:// (events carry names and addresses); webhooks.allow_http permits http://",
            ));
        }
        _ => return Err(invalid("must be https:// or http://")),
    }
    Ok(url)
}

/// Whether `ip` is an address on the public internet (not this machine, a private or
/// link-local network, a shared or documentation range, or multicast).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// The webhook client's resolver: the system's, keeping only public addresses (a name that
/// resolves to none fails the request), so a name cannot be pointed at the server's own network
/// after it was registered.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// Delivers what the deliveries table holds; cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    client: reqwest::Client,
    master: SecretString,
    settings: WebhooksSettings,
    wake: Notify,
}

impl Webhooks {
    /// A sender for `settings`, signing with secrets derived from `master`.
    pub fn new(
        settings: &WebhooksSettings,
        db: Db,
        master: SecretString,
    ) -> Result<Webhooks, ApiError> {
        let mut client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(u64::from(settings.timeout_secs)))
            .user_agent("Sightline-Webhooks/1");
        if !settings.allow_private_targets {
            client = client.dns_resolver(PublicOnly);
        }
        let client = client
            .build()
            .map_err(|err| ApiError::Internal(format!("the webhook client: {err}")))?;
        Ok(Webhooks {
            inner: Arc::new(Inner {
                db,
                client,
                master,
                settings: settings.clone(),
                wake: Notify::new(),
            }),
        })
    }

    /// The signing secret of `endpoint` at `generation`.
    pub fn secret(&self, endpoint: &str, generation: i64) -> String {
        endpoint_secret(&self.inner.master, endpoint, generation)
    }

    /// Checks an endpoint URL against this server's rules (see [`check_url`]).
    pub fn check_url(&self, raw: &str) -> Result<Url, ApiError> {
        let settings = &self.inner.settings;
        check_url(raw, settings.allow_http, settings.allow_private_targets)
    }

    /// Tells the sender something was written.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Writes `event` (not part of a transaction) and wakes the sender if an endpoint wants it.
    pub async fn emit(&self, event: &Event) {
        if record_now(&self.inner.db, event).await > 0 {
            self.wake();
        }
    }

    /// Delivers until `stop`; deliveries under way then are finished first (each bounded by
    /// `webhooks.timeout_secs`).
    pub async fn run(self, stop: tokio_util::sync::CancellationToken) {
        let pool = self.inner.db.pool().clone();
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        let mut tasks: JoinSet<()> = JoinSet::new();
        // Each delivery under way, by task, with its endpoint: a task that panicked frees its
        // endpoint too (its claims lapse in the database).
        let mut busy: HashMap<task::Id, String> = HashMap::new();
        while !stop.is_cancelled() {
            while let Some(done) = tasks.try_join_next_with_id() {
                busy.remove(&finished(done));
            }
            let started = self.start_due(&pool, &mut tasks, &mut busy).await;
            if started > 0 {
                continue;
            }
            tokio::select! {
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    busy.remove(&finished(done));
                }
                _ = sweep.tick() => {
                    if let Err(err) = webhooks::sweep(&pool, KEEP_SECS).await {
                        tracing::warn!(%err, "old webhook deliveries were not swept");
                    }
                }
                () = stop.cancelled() => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Claims and starts the oldest due delivery of each endpoint with none under way, within
    /// [`MAX_IN_FLIGHT`]; returns how many started.
    async fn start_due(
        &self,
        pool: &sqlx::AnyPool,
        tasks: &mut JoinSet<()>,
        busy: &mut HashMap<task::Id, String>,
    ) -> usize {
        if tasks.len() >= MAX_IN_FLIGHT {
            return 0;
        }
        let endpoints = match webhooks::due_endpoints(pool, 100).await {
            Ok(endpoints) => endpoints,
            Err(err) => {
                tracing::warn!(%err, "webhook deliveries cannot be read; trying again");
                return 0;
            }
        };
        let mut started = 0;
        for endpoint in endpoints {
            if tasks.len() >= MAX_IN_FLIGHT {
                break;
            }
            if busy.values().any(|e| *e == endpoint) {
                continue;
            }
            match webhooks::claim_next(pool, &endpoint, CLAIM_SECS).await {
                Ok(Some(due)) => {
                    let sender = self.clone();
                    let running = tasks.spawn(async move { sender.deliver(due).await });
                    busy.insert(running.id(), endpoint);
                    started += 1;
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(%err, "a webhook delivery was not claimed"),
            }
        }
        started
    }

    /// One attempt at `due`.
    async fn deliver(&self, due: webhooks::Due) {
        let secret = self.secret(&due.endpoint_id, due.secret_generation);
        let sent = self
            .inner
            .client
            .post(&due.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Sightline-Event", &due.event)
            .header("Sightline-Event-Id", &due.event_id)
            .header("Sightline-Signature", signature(&secret, now(), &due.body))
            .body(due.body.clone())
            .send()
            .await;
        let outcome = match sent {
            Ok(answer) if answer.status().is_success() => Ok(answer.status().as_u16()),
            Ok(answer) => {
                let status = answer.status();
                let why = if status.is_redirection() {
                    "(redirects are not followed)"
                } else {
                    ""
                };
                Err((Some(status.as_u16()), format!("answered {status} {why}")))
            }
            Err(err) => Err((None, describe(&err))),
        };
        let pool = self.inner.db.pool();
        let marked = match outcome {
            Ok(status) => {
                tracing::info!(delivery = %due.id, event = %due.event, "webhook delivered");
                webhooks::delivered(pool, &due, status).await
            }
            Err((status, error)) => {
                let error = error.trim().to_owned();
                let attempts = due.attempts + 1;
                let retry_at =
                    (attempts < i64::from(self.inner.settings.max_attempts)).then(|| {
                        now()
                            + crate::email::backoff(
                                i64::from(self.inner.settings.retry_secs),
                                attempts,
                            )
                    });
                if retry_at.is_some() {
                    tracing::warn!(delivery = %due.id, attempts, %error, "webhook not delivered; trying again later");
                } else {
                    tracing::error!(delivery = %due.id, attempts, %error, "webhook not delivered; given up");
                }
                webhooks::attempt_failed(pool, &due, status, &error, retry_at).await
            }
        };
        if let Err(err) = marked {
            // The claim lapses and the delivery is tried again.
            tracing::error!(delivery = %due.id, %err, "a webhook delivery was not updated");
        }
    }
}

/// The task a finished delivery ran in, whether it returned or panicked.
fn finished(done: Result<(task::Id, ()), task::JoinError>) -> task::Id {
    match done {
        Ok((id, ())) => id,
        Err(err) => {
            tracing::error!(%err, "a webhook delivery task failed");
            err.id()
        }
    }
}

/// A failed request in words for admins (never the URL's query: reqwest's error names the URL,
/// which the admin wrote, so only its kind is kept).
fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "no answer in time".to_owned()
    } else if err.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    }
}

/// Writes an event for each visible arrival and departure in this server's rooms, for as long
/// as the hub runs. Rooms never wait for this: what finds the queue full is dropped (counted by
/// the hub).
pub async fn watch_rooms(hub: Hub, webhooks: Webhooks) {
    let Some(mut activity) = hub.watch_presence(PRESENCE_QUEUE) else {
        return;
    };
    while let Some(RoomActivity { room, change }) = activity.recv().await {
        let event = match change {
            PresenceChange::Joined(p) => Event::ParticipantJoined(ParticipantData {
                interview_id: room.0,
                participant: p.identity,
                name: p.name,
                role: p.role,
                phone_of: p.phone_of,
            }),
            PresenceChange::Left {
                participant,
                reason,
            } => Event::ParticipantLeft(ParticipantLeftData {
                interview_id: room.0,
                participant,
                reason,
            }),
        };
        webhooks.emit(&event).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_differ_per_endpoint_and_generation_and_signatures_cover_time_and_body() {
        let master = SecretString::from("m".repeat(48));
        let a0 = endpoint_secret(&master, "a", 0);
        assert!(a0.starts_with("whsec_"));
        assert_eq!(a0, endpoint_secret(&master, "a", 0), "stable");
        assert_ne!(a0, endpoint_secret(&master, "a", 1), "rotated");
        assert_ne!(a0, endpoint_secret(&master, "b", 0), "per endpoint");
        let other = SecretString::from("n".repeat(48));
        assert_ne!(a0, endpoint_secret(&other, "a", 0), "per server secret");
        let sig = signature(&a0, 1_700_000_000, "{}");
        assert!(sig.starts_with("t=1700000000,v1="), "{sig}");
        assert_eq!(sig.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(sig, signature(&a0, 1_700_000_001, "{}"));
        assert_ne!(sig, signature(&a0, 1_700_000_000, "{ }"));
    }

    #[test]
    fn endpoint_urls_need_tls_a_public_address_and_no_credentials() {
        assert!(check_url("https://hooks.example.com/x", false, false).is_ok());
        assert!(check_url("http://hooks.example.com/x", false, false).is_err());
        assert!(check_url("http://hooks.example.com/x", true, false).is_ok());
        assert!(check_url("https://user:pw@hooks.example.com/x", false, false).is_err());
        assert!(check_url("ftp://hooks.example.com/x", false, false).is_err());
        assert!(check_url("not a url", false, false).is_err());
        for private in [
            "https://127.0.0.1/x",
            "https://localhost/x",
            "https://10.1.2.3/x",
            "https://192.168.0.9/x",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/x",
            "https://0.0.0.0/x",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[fe80::1]/x",
            "https://[::ffff:10.0.0.1]/x",
        ] {
            assert!(check_url(private, false, false).is_err(), "{private}");
            assert!(check_url(private, false, true).is_ok(), "{private}");
        }
        assert!(
            check_url("http://127.0.0.1:9/x", false, true).is_ok(),
            "this machine"
        );
        assert!(
            check_url("http://10.0.0.1/x", false, true).is_err(),
            "a network"
        );
        assert!(check_url("http://10.0.0.1/x", true, true).is_ok());
        assert!(check_url("https://93.184.215.14/x", false, false).is_ok());
        assert!(
            check_url(
                "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/x",
                false,
                false
            )
            .is_ok()
        );
    }

    #[tokio::test]
    async fn names_are_resolved_to_public_addresses_only() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().expect("a name");
        let refused = PublicOnly.resolve(name).await;
        assert!(refused.is_err(), "localhost resolves to loopback only");
    }

    #[test]
    fn the_envelope_names_the_event_and_carries_its_data() {
        let event = Event::ParticipantLeft(ParticipantLeftData {
            interview_id: "i1".into(),
            participant: "p1".into(),
            reason: LeaveReason::TimedOut,
        });
        let body = serde_json::to_value(Envelope {
            id: "e1",
            created_at: "2026-12-06T00:00:00Z".into(),
            event: &event,
        })
        .expect("json");
        assert_eq!(body["event"], "participant.left");
        assert_eq!(body["event"], event.name());
        assert_eq!(body["id"], "e1");
        assert_eq!(body["data"]["reason"], "timed_out");
        assert!(EVENTS.contains(&event.name()));
    }
}
