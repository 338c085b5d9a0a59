//! Webhooks through the real server to real HTTP receivers on this machine: every event an
//! endpoint asked for arrives signed (checked here with the secret the admin was shown, by our
//! own HMAC), a failing endpoint is retried until it takes the event, which it then has exactly
//! once (one event id across attempts), an endpoint that never answers holds up nobody else, a
//! restart while a delivery waits loses nothing, and only admins register endpoints, with the
//! rules on their URLs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use sightline_api::AccountRole;

use crate::helpers::{Backend, TestApp, expect_error, expect_json, interview_body, text};
use crate::on_both_backends;
use crate::rtc::{guest_sessions, join, send};

on_both_backends!(events_reach_their_endpoints_signed_and_once_while_a_dead_one_waits,);

/// Generous bound on any wait for a delivery.
const WAIT: Duration = Duration::from_secs(60);

/// One request a receiver took.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) event: String,
    pub(crate) event_id: String,
    pub(crate) signature: String,
    pub(crate) body: String,
    /// The status it was answered with.
    pub(crate) answered: u16,
}

impl Received {
    pub(crate) fn json(&self) -> Result<Value> {
        Ok(serde_json::from_str(&self.body)?)
    }

    /// Whether the `Sightline-Signature` header is the HMAC-SHA256 of "<t>.<body>" with
    /// `secret`.
    pub(crate) fn signed_with(&self, secret: &str) -> bool {
        let Some((t, v1)) = self
            .signature
            .strip_prefix("t=")
            .and_then(|rest| rest.split_once(",v1="))
        else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(format!("{t}.{}", self.body).as_bytes());
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        hex == v1
    }
}

/// How a receiver answers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Answer {
    /// 500 to its first `n` requests, then 200.
    FailFirst(usize),
    /// Never (the request is held until the sender gives up on it).
    Never,
}

struct ReceiverState {
    answer: Mutex<Answer>,
    requests: AtomicUsize,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    received: Mutex<Vec<Received>>,
}

/// Counts a request in flight until it is answered or dropped (the sender hung up).
struct InFlight(Arc<ReceiverState>);

impl InFlight {
    fn new(state: &Arc<ReceiverState>) -> InFlight {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.most_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(Arc::clone(state))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An HTTP endpoint on this machine that records what is POSTed to it.
pub(crate) struct Receiver {
    pub(crate) url: String,
    state: Arc<ReceiverState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn take(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: String,
) -> AxumStatus {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let _counted = InFlight::new(&state);
    let n = state.requests.fetch_add(1, Ordering::SeqCst);
    let answer = state
        .answer
        .lock()
        .map(|a| *a)
        .unwrap_or(Answer::FailFirst(0));
    let status = match answer {
        Answer::FailFirst(failures) if n < failures => AxumStatus::INTERNAL_SERVER_ERROR,
        Answer::FailFirst(_) => AxumStatus::OK,
        Answer::Never => {
            // Bounded: far past any sender's timeout; the task ends with the test.
            tokio::time::sleep(Duration::from_secs(600)).await;
            AxumStatus::OK
        }
    };
    if let Ok(mut received) = state.received.lock() {
        received.push(Received {
            event: header("sightline-event"),
            event_id: header("sightline-event-id"),
            signature: header("sightline-signature"),
            body,
            answered: status.as_u16(),
        });
    }
    status
}

impl Receiver {
    pub(crate) async fn start(answer: Answer) -> Result<Receiver> {
        let state = Arc::new(ReceiverState {
            answer: Mutex::new(answer),
            requests: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            received: Mutex::new(Vec::new()),
        });
        let router = axum::Router::new()
            .route("/hook", axum::routing::post(take))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Receiver { url, state, server })
    }

    pub(crate) fn answer(&self, answer: Answer) {
        if let Ok(mut now) = self.state.answer.lock() {
            *now = answer;
        }
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.state
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The most requests it was answering at once.
    pub(crate) fn most_in_flight(&self) -> usize {
        self.state.most_in_flight.load(Ordering::SeqCst)
    }

    /// Requests that arrived, answered or not.
    pub(crate) fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Waits until a request matching `pred` was answered 200, and returns it.
    pub(crate) async fn delivered(
        &self,
        what: &str,
        pred: impl Fn(&Received) -> bool,
    ) -> Result<Received> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(found) = self
                .received()
                .into_iter()
                .find(|r| r.answered == 200 && pred(r))
            {
                return Ok(found);
            }
            if Instant::now() > deadline {
                bail!("{what} never delivered; received {:?}", self.received());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Registers an endpoint for `events`; returns its id and secret.
pub(crate) async fn register(
    app: &TestApp,
    admin: &str,
    url: &str,
    events: &[&str],
) -> Result<(String, String)> {
    let created = expect_json(
        app.post(
            "/api/admin/webhooks",
            json!({ "url": url, "events": events }),
            Some(admin),
        )
        .await?,
        StatusCode::CREATED,
    )
    .await?;
    Ok((text(&created["endpoint"]["id"])?, text(&created["secret"])?))
}

/// Retries a second apart, two seconds to answer, and receivers on this machine allowed (by
/// default endpoints must be public addresses).
fn fast_retries() -> Vec<(&'static str, Value)> {
    vec![
        ("webhooks.retry_secs", json!(1)),
        ("webhooks.timeout_secs", json!(2)),
        ("webhooks.allow_private_targets", json!(true)),
    ]
}

async fn events_reach_their_endpoints_signed_and_once_while_a_dead_one_waits(
    backend: Backend,
) -> Result<()> {
    let app = TestApp::spawn_with(backend, &fast_retries()).await?;
    let admin = app
        .user_with_role("ada@example.com", AccountRole::Admin)
        .await?;
    let ivy = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;

    // Only admins register, with a known event and a URL that keeps what it carries private.
    let flaky = Receiver::start(Answer::FailFirst(1)).await?;
    let dead = Receiver::start(Answer::Never).await?;
    expect_error(
        app.post(
            "/api/admin/webhooks",
            json!({ "url": flaky.url, "events": ["interview.scheduled"] }),
            Some(&ivy.access),
        )
        .await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    for (url, events) in [
        ("http://hooks.example.com/x", json!(["interview.scheduled"])),
        ("ftp://hooks.example.com/x", json!(["interview.scheduled"])),
        (
            "https://u:p@hooks.example.com/x",
            json!(["interview.scheduled"]),
        ),
        (flaky.url.as_str(), json!(["interview.exploded"])),
        (flaky.url.as_str(), json!([])),
    ] {
        expect_error(
            app.post(
                "/api/admin/webhooks",
                json!({ "url": url, "events": events }),
                Some(&admin.access),
            )
            .await?,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await?;
    }
    let wanted = [
        "interview.scheduled",
        "interview.cancelled",
        "participant.joined",
        "participant.left",
    ];
    let (flaky_id, secret) = register(&app, &admin.access, &flaky.url, &wanted).await?;
    let (dead_id, _) = register(&app, &admin.access, &dead.url, &wanted).await?;

    // Scheduled: the first attempt is answered 500, the retry takes it. Both attempts carry the
    // same event id; the receiver has it delivered once.
    let created = app
        .schedule(&ivy.access, interview_body("cas@example.com"))
        .await?;
    let interview = text(&created["interview"]["id"])?;
    let scheduled = flaky
        .delivered("interview.scheduled", |r| r.event == "interview.scheduled")
        .await?;
    assert!(scheduled.signed_with(&secret), "{scheduled:?}");
    // Past a few retry periods, still the two attempts and no more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!scheduled.signed_with("whsec_not-the-secret"));
    let body = scheduled.json()?;
    assert_eq!(body["event"], "interview.scheduled");
    assert_eq!(body["id"], scheduled.event_id.as_str());
    assert_eq!(body["data"]["interview_id"], interview.as_str());
    assert_eq!(body["data"]["title"], created["interview"]["title"]);
    let attempts: Vec<Received> = flaky
        .received()
        .into_iter()
        .filter(|r| r.event_id == scheduled.event_id)
        .collect();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].answered, 500);
    assert_eq!(
        attempts.iter().filter(|r| r.answered == 200).count(),
        1,
        "delivered once"
    );

    // People come and go in the room; the dead endpoint, still holding its first request,
    // delays none of it.
    let candidate = guest_sessions(&app, &created)
        .await?
        .into_iter()
        .next()
        .context("the candidate")?;
    let (mut ivy_room, ivy_joined) = join(&app, &interview, &ivy.access).await?;
    let ivy_identity = text(&ivy_joined["you"]["identity"])?;
    let (_cas_room, cas_joined) = join(&app, &interview, &candidate).await?;
    let cas_identity = text(&cas_joined["you"]["identity"])?;
    for who in [&ivy_identity, &cas_identity] {
        let joined = flaky
            .delivered("participant.joined", |r| {
                r.event == "participant.joined" && r.body.contains(who.as_str())
            })
            .await?;
        let data = &joined.json()?["data"];
        assert_eq!(data["interview_id"], interview.as_str());
        assert!(joined.signed_with(&secret));
    }
    send(&mut ivy_room, json!({ "type": "leave" })).await?;
    let left = flaky
        .delivered("participant.left", |r| r.event == "participant.left")
        .await?;
    let data = &left.json()?["data"];
    assert_eq!(data["participant"], ivy_identity.as_str(), "{data}");
    assert_eq!(data["reason"], "left", "{data}");

    expect_json(
        app.post(
            &format!("/api/interviews/{interview}/cancel"),
            json!({}),
            Some(&ivy.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    flaky
        .delivered("interview.cancelled", |r| r.event == "interview.cancelled")
        .await?;
    assert!(dead.requests() >= 1);
    assert_eq!(
        dead.most_in_flight(),
        1,
        "one request at a time to an endpoint"
    );

    // Admins see what waits for the dead endpoint and why, never a body.
    let view = expect_json(
        app.get("/api/admin/webhooks", Some(&admin.access)).await?,
        StatusCode::OK,
    )
    .await?;
    assert!(view["waiting"].as_i64().unwrap_or(0) >= 1, "{view}");
    let deliveries = view["deliveries"].as_array().context("deliveries")?;
    assert!(deliveries.iter().all(|d| d.get("body").is_none()), "{view}");
    let stuck = deliveries
        .iter()
        .find(|d| d["endpoint_id"] == dead_id.as_str() && d["attempts"].as_i64() >= Some(1))
        .context("a failed attempt at the dead endpoint")?;
    assert_eq!(stuck["last_error"], "no answer in time", "{stuck}");
    assert!(stuck["delivered_at"].is_null());

    // A rotated secret signs what comes next; the old one no longer verifies.
    let rotated = expect_json(
        app.post(
            &format!("/api/admin/webhooks/{flaky_id}/rotate-secret"),
            json!({}),
            Some(&admin.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    let new_secret = text(&rotated["secret"])?;
    assert_ne!(new_secret, secret);
    let second = app
        .schedule(&ivy.access, interview_body("dee@example.com"))
        .await?;
    let second_id = text(&second["interview"]["id"])?;
    let next = flaky
        .delivered("the second interview", |r| {
            r.body.contains(second_id.as_str())
        })
        .await?;
    assert!(next.signed_with(&new_secret));
    assert!(!next.signed_with(&secret));

    // Deleted, an endpoint's deliveries go with it; audited.
    let deleted = app
        .request(
            Method::DELETE,
            &format!("/api/admin/webhooks/{dead_id}"),
            None,
            Some(&admin.access),
        )
        .await?;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let view = expect_json(
        app.get("/api/admin/webhooks", Some(&admin.access)).await?,
        StatusCode::OK,
    )
    .await?;
    assert!(
        view["deliveries"]
            .as_array()
            .is_some_and(|d| d.iter().all(|d| d["endpoint_id"] != dead_id.as_str())),
        "{view}"
    );
    let audit = expect_json(
        app.get("/api/admin/audit", Some(&admin.access)).await?,
        StatusCode::OK,
    )
    .await?;
    for action in [
        "webhook.created",
        "webhook.secret_rotated",
        "webhook.deleted",
    ] {
        assert!(
            audit
                .as_array()
                .is_some_and(|a| a.iter().any(|e| e["action"] == action)),
            "{action} audited"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_a_delivery_waits_loses_nothing_and_sends_it_once() -> Result<()> {
    let receiver = Receiver::start(Answer::FailFirst(usize::MAX)).await?;
    let app = TestApp::spawn_with(Backend::Sqlite, &fast_retries()).await?;
    let admin = app
        .user_with_role("ada@example.com", AccountRole::Admin)
        .await?;
    let ivy = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let (_, secret) =
        register(&app, &admin.access, &receiver.url, &["interview.scheduled"]).await?;
    app.schedule(&ivy.access, interview_body("cas@example.com"))
        .await?;
    let deadline = Instant::now() + WAIT;
    while receiver.requests() < 1 {
        anyhow::ensure!(Instant::now() < deadline, "never tried");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The server restarts with the delivery waiting; the endpoint recovers meanwhile.
    let app = app.restart().await?;
    receiver.answer(Answer::FailFirst(0));
    let delivered = receiver
        .delivered("the waiting event", |r| r.event == "interview.scheduled")
        .await?;
    assert!(
        delivered.signed_with(&secret),
        "the same secret after a restart"
    );
    // Whatever else comes, nothing more is answered 200 for this event.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let accepted = receiver
        .received()
        .into_iter()
        .filter(|r| r.answered == 200)
        .count();
    assert_eq!(accepted, 1, "{:?}", receiver.received());
    let ids: std::collections::HashSet<String> = receiver
        .received()
        .into_iter()
        .map(|r| r.event_id)
        .collect();
    assert_eq!(ids.len(), 1, "one event, however many attempts");
    let view = expect_json(
        app.get("/api/admin/webhooks", Some(&admin.access)).await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(view["waiting"], 0, "{view}");
    assert!(view["deliveries"][0]["delivered_at"].is_i64(), "{view}");
    Ok(())
}
