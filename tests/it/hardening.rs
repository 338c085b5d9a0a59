//! What trying Sightline as an attacker found (issue 15), each as a test that failed before the
//! fix: slow clients, metrics cardinality and access, stale privileges, sign-in lockout, invite
//! reissue, removals that stick, single-connection join tokens, internal details in errors and
//! limits that disagree.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::SinkExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sightline_api::AccountRole;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    Backend, PASSWORD, TestApp, expect_error, expect_json, interview_body, invite_token,
    session_from, text,
};
use crate::on_both_backends;
use crate::rtc::{Interview, Socket, connect, interview, join, join_token, next_of, send};

on_both_backends!(
    a_demoted_admin_loses_admin_power_at_once,
    wrong_passwords_from_anywhere_do_not_lock_the_owner_out,
    clients_behind_a_trusted_proxy_have_their_own_limits,
    a_reissued_invite_ends_the_old_guest_everywhere,
    a_removal_sticks_until_an_interviewer_readmits,
    a_join_token_opens_one_connection,
    a_join_token_spent_on_one_server_is_refused_by_another_on_its_database,
);

/// A server whose per-client limit lets one test make many calls (the limits have tests of
/// their own).
async fn lenient_app(backend: Backend) -> Result<TestApp> {
    TestApp::spawn_with(backend, &[("auth.rate_limit.per_ip_burst", json!(100))]).await
}

/// An interview with its interviewer's and its (guest) candidate's sockets in the room, and the
/// candidate's identity there.
async fn interviewer_and_candidate_in_a_room(
    app: &TestApp,
) -> Result<(Interview, Socket, Socket, String)> {
    let room = interview(app).await?;
    let (ivy, _) = join(app, &room.id, &room.interviewer).await?;
    let (cas, joined) = join(app, &room.id, &room.candidate).await?;
    let candidate = text(&joined["you"]["identity"])?;
    Ok((room, ivy, cas, candidate))
}

/// Generous bound on any wait for a server-side effect.
const DEADLINE: Duration = Duration::from_secs(30);

fn header_line(host: &str) -> String {
    format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n")
}

/// Reads until the server closes the connection (or the deadline passes); returns what came.
async fn read_until_closed(stream: &mut TcpStream) -> Result<Vec<u8>> {
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    let started = Instant::now();
    loop {
        let left = DEADLINE.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => bail!("the server kept the connection open for {DEADLINE:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(received),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// A metric's value from the exposition text (first sample of that name).
fn metric(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with([' ', '{']))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_clients_cannot_take_the_server_down() -> Result<()> {
    let cap = 40;
    // Timeouts longer than the flood takes on a busy machine: every flood connection is still
    // waiting when the next arrives, so each one past the cap sheds one.
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("http.max_connections", json!(cap)),
            ("http.header_read_timeout_ms", json!(120_000)),
            ("http.idle_timeout_secs", json!(120)),
        ],
    )
    .await?;
    let addr = app.base.trim_start_matches("http://").to_owned();

    // Five times the cap in half-sent requests, each holding its connection open.
    let mut flood = Vec::new();
    for _ in 0..cap * 5 {
        match TcpStream::connect(&addr).await {
            Ok(mut stream) => {
                let _ = stream.write_all(header_line(&addr).as_bytes()).await;
                flood.push(stream);
            }
            Err(err) => bail!("the listener stopped accepting: {err}"),
        }
    }
    // Everyone else is still served: the oldest idle connections make room.
    let health = expect_json(app.get("/healthz", None).await?, StatusCode::OK).await?;
    assert_eq!(health["status"], "ok");
    let metrics = app.metrics().await?;
    let open = metric(&metrics, "sightline_http_connections_open").context("open gauge")?;
    assert!(open <= f64::from(cap), "{open} connections open: {metrics}");
    let shed = metric(&metrics, "sightline_http_connections_shed_total").context("shed")?;
    assert!(shed >= f64::from(cap * 4), "{shed} shed");
    drop(flood);

    // The timeouts, on a server with short ones.
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("http.max_connections", json!(cap)),
            ("http.header_read_timeout_ms", json!(1000)),
            ("http.idle_timeout_secs", json!(2)),
        ],
    )
    .await?;
    let addr = app.base.trim_start_matches("http://").to_owned();

    // A half-sent request is closed after the header-read timeout, with a 408 or nothing.
    let mut half = TcpStream::connect(&addr).await?;
    half.write_all(header_line(&addr).as_bytes()).await?;
    let answer = read_until_closed(&mut half).await?;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    // A connection that never says anything is closed too.
    let mut silent = TcpStream::connect(&addr).await?;
    read_until_closed(&mut silent).await?;

    // A stalled upload (headers complete, body never sent) is closed by the idle timeout.
    let mut stalled = TcpStream::connect(&addr).await?;
    stalled
        .write_all(
            format!(
                "POST /api/auth/login HTTP/1.1\r\nHost: {addr}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .await?;
    read_until_closed(&mut stalled).await?;
    let metrics = app.metrics().await?;
    let idle = metric(&metrics, "sightline_http_connections_idle_closed_total").context("idle")?;
    assert!(idle >= 1.0, "{metrics}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_stay_bounded_and_private() -> Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let before = app.metrics().await?.len();
    for n in 0..300 {
        let method = Method::from_bytes(format!("INVENTED{n}").as_bytes())?;
        app.request(method, "/api/interviews", None, None).await?;
    }
    let after = app.metrics().await?;
    assert!(
        !after.contains("INVENTED"),
        "a client's method became a label"
    );
    assert!(after.contains("method=\"other\""), "{after}");
    // Three hundred new methods add at most a few series, not three hundred.
    assert!(
        after.len() < before + 8 * 1024,
        "metrics grew from {before} to {} bytes",
        after.len()
    );

    // Without the token, or with a wrong one, there is nothing to see.
    expect_error(
        app.get("/metrics", None).await?,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await?;
    expect_error(
        app.get("/metrics", Some("not-the-metrics-token")).await?,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await?;

    // With a listener of its own, metrics are served there and not on the public one.
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("metrics.addr", json!("127.0.0.1:0")),
            ("metrics.token", json!(null)),
        ],
    )
    .await?;
    let metrics_url = app.metrics_url.clone().context("a metrics listener")?;
    let scraped = app.client.get(&metrics_url).send().await?;
    assert_eq!(scraped.status(), StatusCode::OK);
    assert!(
        scraped
            .text()
            .await?
            .contains("sightline_http_connections_open")
    );
    expect_error(
        app.get("/metrics", None).await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;
    Ok(())
}

async fn a_demoted_admin_loses_admin_power_at_once(backend: Backend) -> Result<()> {
    let app = lenient_app(backend).await?;
    let root = app
        .user_with_role("root@example.com", AccountRole::Admin)
        .await?;
    let former = app
        .user_with_role("former@example.com", AccountRole::Admin)
        .await?;
    let ivy = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let created = app
        .schedule(&ivy.access, interview_body("cas@example.com"))
        .await?;
    let id = text(&created["interview"]["id"])?;
    let candidate = text(&created["invites"][0]["participant_id"])?;
    // As an admin they can read it.
    expect_json(
        app.get(&format!("/api/interviews/{id}"), Some(&former.access))
            .await?,
        StatusCode::OK,
    )
    .await?;

    let former_id = text(&former.me["id"])?;
    expect_json(
        app.request(
            Method::PATCH,
            &format!("/api/admin/users/{former_id}"),
            Some(json!({ "role": "interviewer" })),
            Some(&root.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;

    // The same access token, minutes from expiry, no longer carries admin power.
    expect_error(
        app.get(&format!("/api/interviews/{id}"), Some(&former.access))
            .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;
    expect_error(
        app.post(
            &format!("/api/interviews/{id}/participants/{candidate}/invite"),
            json!({}),
            Some(&former.access),
        )
        .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;
    expect_error(
        app.post(
            &format!("/api/interviews/{id}/phone-pairings"),
            json!({ "candidate": candidate }),
            Some(&former.access),
        )
        .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;

    // An invite reissue by someone who may is audited.
    expect_json(
        app.post(
            &format!("/api/interviews/{id}/participants/{candidate}/invite"),
            json!({}),
            Some(&ivy.access),
        )
        .await?,
        StatusCode::CREATED,
    )
    .await?;
    let audit = expect_json(
        app.get("/api/admin/audit", Some(&root.access)).await?,
        StatusCode::OK,
    )
    .await?;
    assert!(
        audit.to_string().contains("invite.reissued"),
        "not audited: {audit}"
    );
    Ok(())
}

async fn login_from(
    app: &TestApp,
    client: &str,
    email: &str,
    password: &str,
) -> Result<StatusCode> {
    Ok(app
        .client
        .post(app.url("/api/auth/login"))
        .header("x-forwarded-for", client)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await?
        .status())
}

async fn wrong_passwords_from_anywhere_do_not_lock_the_owner_out(backend: Backend) -> Result<()> {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("http.trusted_proxies", json!(["127.0.0.1/32"])),
            ("auth.rate_limit.per_account_burst", json!(2)),
        ],
    )
    .await?;
    app.user_with_role("owner@example.com", AccountRole::Interviewer)
        .await?;
    // Someone guesses from rotating addresses (each its own bucket, so never refused).
    for n in 0..6 {
        let status = login_from(
            &app,
            &format!("203.0.113.{n}"),
            "owner@example.com",
            "wrong password",
        )
        .await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {n}");
    }
    // The owner still gets in: slowed down, never refused.
    let status = login_from(&app, "198.51.100.1", "owner@example.com", PASSWORD).await?;
    assert_eq!(status, StatusCode::OK);
    // One address guessing at one account is refused after its burst.
    let mut refused = false;
    for _ in 0..4 {
        let status = login_from(&app, "203.0.113.200", "owner@example.com", "wrong").await?;
        refused |= status == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(refused, "one address kept guessing unhindered");
    Ok(())
}

async fn clients_behind_a_trusted_proxy_have_their_own_limits(backend: Backend) -> Result<()> {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("http.trusted_proxies", json!(["127.0.0.1/32"])),
            ("auth.rate_limit.per_ip_burst", json!(3)),
            ("auth.rate_limit.per_ip_period_ms", json!(60_000)),
        ],
    )
    .await?;
    // One person behind the proxy uses up their own limit...
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(login_from(&app, "198.51.100.7", "a@example.com", "wrong").await?);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // ...and the next person behind the same proxy is not affected.
    let status = login_from(&app, "198.51.100.8", "b@example.com", "wrong").await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Without trusted proxies, an invented X-Forwarded-For changes nothing.
    let app = TestApp::spawn_with(
        backend,
        &[
            ("auth.rate_limit.per_ip_burst", json!(3)),
            ("auth.rate_limit.per_ip_period_ms", json!(60_000)),
        ],
    )
    .await?;
    let mut statuses = Vec::new();
    for n in 0..5 {
        statuses.push(login_from(&app, &format!("192.0.2.{n}"), "a@example.com", "wrong").await?);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    Ok(())
}

async fn a_reissued_invite_ends_the_old_guest_everywhere(backend: Backend) -> Result<()> {
    let app = lenient_app(backend).await?;
    let (room, mut ivy, mut old_guest, candidate) =
        interviewer_and_candidate_in_a_room(&app).await?;
    let unused_join_token = join_token(&app, &room.id, &room.candidate).await?;
    // The old guest pairs a phone.
    let pairing = expect_json(
        app.post(
            &format!("/api/interviews/{}/phone-pairings", room.id),
            json!({}),
            Some(&room.candidate),
        )
        .await?,
        StatusCode::CREATED,
    )
    .await?;
    let pair_token = text(&pairing["url"])?
        .rsplit_once("/pair/")
        .map(|(_, t)| t.to_owned())
        .context("a pairing URL")?;
    let phone = expect_json(
        app.post("/api/phone/redeem", json!({ "token": pair_token }), None)
            .await?,
        StatusCode::OK,
    )
    .await?;
    let phone_session = text(&phone["session"])?;

    let link = expect_json(
        app.post(
            &format!(
                "/api/interviews/{}/participants/{candidate}/invite",
                room.id
            ),
            json!({}),
            Some(&room.interviewer),
        )
        .await?,
        StatusCode::CREATED,
    )
    .await?;

    // Their socket is closed with the reason, and the others see them go.
    let removed = next_of(&mut old_guest, "removed").await?;
    assert_eq!(removed["reason"], "session_ended");
    let left = next_of(&mut ivy, "participant_left").await?;
    assert_eq!(left["participant"], candidate.as_str());
    // Their access token, their unused join token and their phone are dead.
    expect_error(
        app.get(
            &format!("/api/interviews/{}", room.id),
            Some(&room.candidate),
        )
        .await?,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await?;
    let mut replay = connect(&app, &room.id).await?;
    send(
        &mut replay,
        json!({ "type": "join", "version": 1, "token": unused_join_token }),
    )
    .await?;
    assert_eq!(
        next_of(&mut replay, "error").await?["code"],
        "session_ended"
    );
    let phone_join = app
        .post("/api/phone/join", json!({ "session": phone_session }), None)
        .await?;
    assert_ne!(phone_join.status(), StatusCode::OK);

    // Whoever opens the new link gets in.
    let token = invite_token(&text(&link["url"])?)?;
    let new_guest = session_from(
        app.post("/api/invites/redeem", json!({ "token": token }), None)
            .await?,
    )
    .await?;
    let (_socket, joined) = join(&app, &room.id, &new_guest.access).await?;
    assert_eq!(joined["you"]["identity"], candidate.as_str());
    Ok(())
}

async fn a_removal_sticks_until_an_interviewer_readmits(backend: Backend) -> Result<()> {
    let app = lenient_app(backend).await?;
    let (room, mut ivy, mut cas, candidate) = interviewer_and_candidate_in_a_room(&app).await?;
    send(
        &mut ivy,
        json!({ "type": "moderate_remove", "participant": candidate }),
    )
    .await?;
    assert_eq!(next_of(&mut cas, "removed").await?["reason"], "removed");

    // A fresh join token does not bring them back.
    let mut again = connect(&app, &room.id).await?;
    let token = join_token(&app, &room.id, &room.candidate).await?;
    send(
        &mut again,
        json!({ "type": "join", "version": 1, "token": token }),
    )
    .await?;
    let refused = next_of(&mut again, "error").await?;
    assert_eq!(refused["code"], "removed");

    // Only a moderator can let them back in.
    let (mut other, _) = {
        send(
            &mut ivy,
            json!({ "type": "readmit", "participant": candidate }),
        )
        .await?;
        join(&app, &room.id, &room.candidate).await?
    };
    send(&mut other, json!({ "type": "ping", "nonce": 1 })).await?;
    assert_eq!(next_of(&mut other, "pong").await?["nonce"], 1);
    let back = next_of(&mut ivy, "participant_joined").await?;
    assert_eq!(back["participant"]["identity"], candidate.as_str());
    // And when they leave, the others see it as for anyone.
    send(&mut other, json!({ "type": "leave" })).await?;
    let left = next_of(&mut ivy, "participant_left").await?;
    assert_eq!(left["participant"], candidate.as_str());
    Ok(())
}

async fn a_join_token_opens_one_connection(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let room = interview(&app).await?;
    let token = join_token(&app, &room.id, &room.interviewer).await?;
    let mut first = connect(&app, &room.id).await?;
    send(
        &mut first,
        json!({ "type": "join", "version": 1, "token": token }),
    )
    .await?;
    let joined = next_of(&mut first, "joined").await?;
    // The limits the server enforces come with the join, stated once.
    assert_eq!(joined["limits"]["max_chat_chars"], 4000);
    assert_eq!(joined["limits"]["max_message_bytes"], 65536);
    let mut codes = Vec::new();
    for _ in 0..20 {
        let mut socket = connect(&app, &room.id).await?;
        send(
            &mut socket,
            json!({ "type": "join", "version": 1, "token": token }),
        )
        .await?;
        codes.push(text(&next_of(&mut socket, "error").await?["code"])?);
    }
    assert!(
        codes
            .iter()
            .all(|c| c == "token_used" || c == "rate_limited"),
        "{codes:?}"
    );
    assert!(codes.iter().any(|c| c == "token_used"), "{codes:?}");
    Ok(())
}

/// The one-use rule lives in the database, not in one server's memory: a server restarted, or
/// another node a room moved to, refuses a token that opened a connection before.
async fn a_join_token_spent_on_one_server_is_refused_by_another_on_its_database(
    backend: Backend,
) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let room = interview(&app).await?;
    let token = join_token(&app, &room.id, &room.interviewer).await?;
    let mut first = connect(&app, &room.id).await?;
    send(
        &mut first,
        json!({ "type": "join", "version": 1, "token": token }),
    )
    .await?;
    next_of(&mut first, "joined").await?;

    let other = app.spawn_beside(&[]).await?;
    let mut again = connect(&other, &room.id).await?;
    send(
        &mut again,
        json!({ "type": "join", "version": 1, "token": token }),
    )
    .await?;
    assert_eq!(next_of(&mut again, "error").await?["code"], "token_used");

    // A fresh token for the same person is let in there.
    let fresh = join_token(&app, &room.id, &room.interviewer).await?;
    let mut second = connect(&other, &room.id).await?;
    send(
        &mut second,
        json!({ "type": "join", "version": 1, "token": fresh }),
    )
    .await?;
    next_of(&mut second, "joined").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_and_long_chats_get_the_documented_answers() -> Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let room = interview(&app).await?;
    let (mut cas, _) = join(&app, &room.id, &room.candidate).await?;

    // Over 64 KiB: the protocol's error, and the socket stays usable.
    let huge = json!({ "type": "chat", "text": "x".repeat(70 * 1024) }).to_string();
    cas.send(Message::Text(huge.into())).await?;
    assert_eq!(
        next_of(&mut cas, "error").await?["code"],
        "message_too_large"
    );
    // 2,049 Cyrillic letters are within the 4,000-character chat limit (though over 4 KiB).
    let cyrillic = "ж".repeat(2049);
    send(&mut cas, json!({ "type": "chat", "text": cyrillic })).await?;
    let chat = next_of(&mut cas, "chat").await?;
    assert_eq!(chat["text"].as_str().map(|t| t.chars().count()), Some(2049));
    let too_long = "ж".repeat(4001);
    send(&mut cas, json!({ "type": "chat", "text": too_long })).await?;
    assert_eq!(next_of(&mut cas, "error").await?["code"], "bad_chat");

    // A broken SDP is answered with a stable message, no internal detail.
    send(
        &mut cas,
        json!({ "type": "publish_offer", "sdp": "v=0\r\no=garbage",
            "tracks": [{ "mid": "0", "source": "camera" }] }),
    )
    .await?;
    let error: Value = next_of(&mut cas, "error").await?;
    let message = text(&error["message"])?;
    assert!(
        !message.contains("0x") && !message.contains("PointerOffset"),
        "internal detail in an error: {message}"
    );
    Ok(())
}
