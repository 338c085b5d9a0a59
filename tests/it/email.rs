//! Email through a real SMTP server (Debian's aiosmtpd, started per test): a forgotten password
//! is reset by the link in the delivered message, once, within its validity, and every session
//! of the account ends; a failing SMTP server is retried from the outbox, across a restart,
//! and the message arrives once; with no SMTP server the app says it sends no email.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sightline_api::AccountRole;
use sightline_testkit::SmtpSink;

use crate::helpers::{Backend, PASSWORD, TestApp, expect_error, expect_json};
use crate::on_both_backends;

on_both_backends!(
    a_forgotten_password_is_reset_by_the_emailed_link_once_and_sessions_end,
    an_interview_s_people_are_invited_told_of_changes_and_of_the_cancellation_by_calendar,
    reminders_come_an_hour_before_to_those_who_attend_once,
    a_registered_account_confirms_its_address_by_the_emailed_link_once,
    each_person_reads_the_interview_s_time_in_their_own_zone,
);

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn app_with_email(backend: Backend, sink: &SmtpSink) -> Result<TestApp> {
    TestApp::spawn_with(
        backend,
        &[
            ("email.smtp_url", json!(sink.url())),
            ("email.from", json!("Sightline <interviews@example.com>")),
            ("email.retry_secs", json!(1)),
            // This test makes more sign-in and reset requests than one person would.
            ("auth.rate_limit.per_ip_burst", json!(100)),
        ],
    )
    .await
}

/// The message as it was delivered, quoted-printable soft line breaks undone.
fn unfolded(message: &str) -> String {
    message.replace("=\r\n", "").replace("=\n", "")
}

/// The token of the reset link in a delivered message.
fn reset_token(message: &str) -> Result<String> {
    let message = unfolded(message);
    let at = message
        .find("/reset-password#")
        .context("a reset link in the message")?;
    let token: String = message[at + "/reset-password#".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    anyhow::ensure!(token.len() == 43, "a whole token: {token}");
    Ok(token)
}

async fn login_status(app: &TestApp, email: &str, password: &str) -> Result<StatusCode> {
    Ok(app
        .post(
            "/api/auth/login",
            json!({ "email": email, "password": password }),
            None,
        )
        .await?
        .status())
}

async fn forgot(app: &TestApp, email: &str) -> Result<Value> {
    expect_json(
        app.post("/api/auth/password/forgot", json!({ "email": email }), None)
            .await?,
        StatusCode::ACCEPTED,
    )
    .await
}

async fn a_forgotten_password_is_reset_by_the_emailed_link_once_and_sessions_end(
    backend: Backend,
) -> Result<()> {
    let sink = SmtpSink::start().await?;
    let app = app_with_email(backend, &sink).await?;
    let admin = app
        .user_with_role("ada@example.com", AccountRole::Admin)
        .await?;
    // Made by an operator: her address is vouched for, no confirmation message.
    let before = app
        .user_with_role("rae@example.com", AccountRole::Candidate)
        .await?;

    // An address without an account gets the same answer and no message.
    let unknown = forgot(&app, "nobody@example.com").await?;
    let known = forgot(&app, "Rae@Example.com").await?;
    assert_eq!(
        unknown, known,
        "the answer never says whether an account exists"
    );
    let delivered = sink.wait_for(1, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sink.messages()?.len(),
        1,
        "one message, to the account only"
    );
    let message = &delivered[0];
    assert!(message.contains("To: rae@example.com"), "{message}");
    assert!(
        message.contains("From: Sightline <interviews@example.com>"),
        "{message}"
    );
    assert!(
        message.contains("Subject: Reset your Sightline password"),
        "{message}"
    );
    assert!(message.contains("multipart/alternative"), "{message}");
    assert!(
        message.contains("text/plain") && message.contains("text/html"),
        "{message}"
    );
    assert!(message.contains("Message-ID: <"), "{message}");
    let token = reset_token(message)?;

    // Too short a password is refused before the link is spent.
    expect_error(
        app.post(
            "/api/auth/password/reset",
            json!({ "token": token, "password": "short" }),
            None,
        )
        .await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    // Used twice at once (a double click, two tabs), the link resets once; the other use is
    // told the link is spent, not an error.
    let reset = || {
        app.post(
            "/api/auth/password/reset",
            json!({ "token": token, "password": NEW_PASSWORD }),
            None,
        )
    };
    let (first, second) = tokio::join!(reset(), reset());
    let mut statuses = [first?.status(), second?.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::NO_CONTENT, StatusCode::BAD_REQUEST]);

    // The old password no longer works, the new one does, and the earlier session ended.
    assert_eq!(
        login_status(&app, "rae@example.com", PASSWORD).await?,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_status(&app, "rae@example.com", NEW_PASSWORD).await?,
        StatusCode::OK
    );
    expect_error(
        app.post(
            "/api/auth/refresh",
            json!({ "refresh_token": before.refresh }),
            None,
        )
        .await?,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await?;
    // Its access token too, at once rather than when it expires.
    expect_error(
        app.get("/api/me", Some(&before.access)).await?,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await?;

    // The link works once; a made-up one never.
    for token in [token.clone(), "A".repeat(43)] {
        expect_error(
            app.post(
                "/api/auth/password/reset",
                json!({ "token": token, "password": "yet another passphrase" }),
                None,
            )
            .await?,
            StatusCode::BAD_REQUEST,
            "invalid_reset_link",
        )
        .await?;
    }

    // A link past its validity is refused.
    forgot(&app, "rae@example.com").await?;
    let delivered = sink.wait_for(2, Duration::from_secs(30)).await?;
    // The new message is the one whose link is not the one just used.
    let late = delivered
        .iter()
        .map(|message| reset_token(message))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .find(|other| *other != token)
        .context("a second link")?;
    sqlx::query("UPDATE password_resets SET expires_at = 0 WHERE used_at IS NULL")
        .execute(&mut app.db().await?)
        .await?;
    expect_error(
        app.post(
            "/api/auth/password/reset",
            json!({ "token": late, "password": "yet another passphrase" }),
            None,
        )
        .await?,
        StatusCode::BAD_REQUEST,
        "invalid_reset_link",
    )
    .await?;

    // Admins see what was sent, never its content; the reset is in the audit log.
    let outbox = expect_json(
        app.get("/api/admin/outbox", Some(&admin.access)).await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(outbox["enabled"], true);
    assert_eq!(
        (outbox["waiting"].clone(), outbox["failed"].clone()),
        (json!(0), json!(0))
    );
    let messages = outbox["messages"].as_array().context("messages")?;
    assert_eq!(messages.len(), 2, "{outbox}");
    for message in messages {
        assert_eq!(message["kind"], "password_reset");
        assert!(message["sent_at"].is_i64(), "{message}");
        assert!(message.get("message").is_none(), "no content for admins");
    }
    let audit = expect_json(
        app.get("/api/admin/audit", Some(&admin.access)).await?,
        StatusCode::OK,
    )
    .await?;
    assert!(
        audit
            .as_array()
            .is_some_and(|entries| entries.iter().any(|e| e["action"] == "user.password_reset")),
        "{audit}"
    );
    let rae = app
        .post(
            "/api/auth/login",
            json!({ "email": "rae@example.com", "password": NEW_PASSWORD }),
            None,
        )
        .await?;
    let rae = crate::helpers::session_from(rae).await?;
    expect_error(
        app.get("/api/admin/outbox", Some(&rae.access)).await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    // Sent, a message's content (the link) is no longer in the database.
    let kept: Vec<(String,)> = sqlx::query_as("SELECT message FROM outbox")
        .fetch_all(&mut app.db().await?)
        .await?;
    assert!(kept.iter().all(|(message,)| message.is_empty()), "{kept:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_smtp_server_is_retried_across_a_restart_and_the_message_arrives_once()
-> Result<()> {
    let mut sink = SmtpSink::start().await?;
    let app = app_with_email(Backend::Sqlite, &sink).await?;
    let admin = app
        .user_with_role("ada@example.com", AccountRole::Admin)
        .await?;
    app.user_with_role("rae@example.com", AccountRole::Candidate)
        .await?;
    sink.stop().await?;
    forgot(&app, "rae@example.com").await?;

    // The server refuses: the message waits in the outbox, its failure visible to admins.
    let outbox_of = async |app: &TestApp| -> Result<Value> {
        expect_json(
            app.get("/api/admin/outbox", Some(&admin.access)).await?,
            StatusCode::OK,
        )
        .await
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let failing = loop {
        let outbox = outbox_of(&app).await?;
        if outbox["messages"][0]["attempts"].as_i64().unwrap_or(0) >= 1 {
            break outbox;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "never tried: {outbox}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(failing["waiting"], 1, "{failing}");
    assert!(
        failing["messages"][0]["last_error"].is_string(),
        "{failing}"
    );
    assert!(failing["messages"][0]["sent_at"].is_null(), "{failing}");

    // The server restarts with the message still waiting; the SMTP server comes back.
    let app = app.restart().await?;
    sink.start_again().await?;
    let delivered = sink.wait_for(1, Duration::from_secs(60)).await?;
    assert!(reset_token(&delivered[0]).is_ok());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sink.messages()?.len(), 1, "delivered once");
    let sent = outbox_of(&app).await?;
    assert_eq!(sent["waiting"], 0, "{sent}");
    let message = &sent["messages"][0];
    assert!(message["sent_at"].is_i64(), "{sent}");
    assert!(message["attempts"].as_i64().unwrap_or(0) >= 2, "{sent}");
    assert!(message["last_error"].is_null(), "{sent}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sets_a_forgotten_password_when_no_email_is_sent() -> Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    app.register("rae@example.com").await?;
    let before = app.login("rae@example.com").await?;
    sightline_api::cli::set_password(&app.settings, "Rae@example.com", NEW_PASSWORD.to_owned())
        .await?;
    assert_eq!(
        login_status(&app, "rae@example.com", NEW_PASSWORD).await?,
        StatusCode::OK
    );
    expect_error(
        app.get("/api/me", Some(&before.access)).await?,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await?;
    let unknown = sightline_api::cli::set_password(
        &app.settings,
        "nobody@example.com",
        NEW_PASSWORD.to_owned(),
    )
    .await;
    assert!(unknown.is_err(), "no such account");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_smtp_server_the_app_says_it_sends_no_email() -> Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    app.register("rae@example.com").await?;
    expect_error(
        app.post(
            "/api/auth/password/forgot",
            json!({ "email": "rae@example.com" }),
            None,
        )
        .await?,
        StatusCode::CONFLICT,
        "email_not_configured",
    )
    .await?;
    let count: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox")
        .fetch_one(&mut app.db().await?)
        .await?;
    assert_eq!(count.0, 0, "nothing queued");
    // Nothing to confirm an address with: the account says nothing about it.
    let rae = app.login("rae@example.com").await?;
    let me = expect_json(app.get("/api/me", Some(&rae.access)).await?, StatusCode::OK).await?;
    assert!(me.get("email_verified").is_none(), "{me}");
    expect_error(
        app.post("/api/auth/email/resend", json!({}), Some(&rae.access))
            .await?,
        StatusCode::CONFLICT,
        "email_not_configured",
    )
    .await?;
    Ok(())
}

/// The delivered messages to `to` (by their `To:` header), in the order they came.
fn to<'a>(messages: &'a [String], to: &str) -> Vec<&'a String> {
    messages
        .iter()
        .filter(|m| m.lines().any(|l| l.starts_with("To:") && l.contains(to)))
        .collect()
}

/// `text` with quoted-printable escapes (`=3D`) decoded (soft line breaks undone first).
fn quoted_printable(text: &str) -> String {
    let text = unfolded(text);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = bytes
            .get(at + 1..at + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[at], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                at += 3;
            }
            (byte, _) => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The logical lines of the calendar in a delivered message (its first copy, the
/// `text/calendar` alternative), whatever line ends the mailbox stored.
fn calendar(message: &str) -> Result<Vec<String>> {
    let message = quoted_printable(message).replace("\r\n", "\n");
    let from = message
        .find("BEGIN:VCALENDAR")
        .context("a calendar in the message")?;
    let to = message[from..]
        .find("END:VCALENDAR")
        .context("the calendar's end")?;
    Ok(message[from..from + to]
        .replace("\n ", "")
        .split('\n')
        .map(str::to_owned)
        .collect())
}

fn has(lines: &[String], line: &str) -> bool {
    lines.iter().any(|l| l == line)
}

async fn an_interview_s_people_are_invited_told_of_changes_and_of_the_cancellation_by_calendar(
    backend: Backend,
) -> Result<()> {
    let sink = SmtpSink::start().await?;
    let app = app_with_email(backend, &sink).await?;
    let ivy = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    app.user_with_role("olly@example.com", AccountRole::Interviewer)
        .await?;
    let mut body = crate::helpers::interview_body("cas@example.com");
    body["title"] = json!("Systems round");
    body["participants"] = json!([
        { "email": "cas@example.com", "display_name": "Casey Candidate", "role": "candidate" },
        { "email": "olly@example.com", "role": "observer" },
    ]);
    let created = app.schedule(&ivy.access, body).await?;
    let id = crate::helpers::text(&created["interview"]["id"])?;
    // The server's public host names the event, whoever sends the mail.
    let uid = format!("UID:{id}@sightline.test");

    // Scheduled: the candidate's invitation with her own link, the others' assignments, each
    // with the interview as a calendar request.
    let delivered = sink.wait_for(3, Duration::from_secs(60)).await?;
    let invitation = unfolded(to(&delivered, "cas@example.com").first().context("hers")?);
    assert!(
        invitation.contains("Subject: Interview invitation: Systems round"),
        "{invitation}"
    );
    assert!(
        invitation.contains("(Europe/Paris), 60 minutes"),
        "{invitation}"
    );
    assert!(invitation.contains("Content-Type: text/calendar; charset=utf-8; method=REQUEST"));
    assert!(
        invitation.contains("filename=\"invite.ics\""),
        "{invitation}"
    );
    let lines = calendar(&invitation)?;
    for line in [
        "METHOD:REQUEST",
        uid.as_str(),
        "SEQUENCE:0",
        "STATUS:CONFIRMED",
    ] {
        assert!(has(&lines, line), "{line} in {lines:?}");
    }
    assert!(has(&lines, "SUMMARY:Systems round"), "{lines:?}");
    let start = jiff::Timestamp::from_str(&crate::helpers::text(
        &created["interview"]["scheduled_start"],
    )?)?;
    let dtstart = format!(
        "DTSTART:{}",
        start
            .to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%Y%m%dT%H%M%SZ")
    );
    assert!(has(&lines, &dtstart), "{dtstart} in {lines:?}");
    // Her link is the one the scheduler was shown, and it lets her in.
    let link = crate::helpers::text(&created["invites"][0]["url"])?;
    assert!(invitation.contains(&link), "her link in {invitation}");
    let redeemed = app
        .post(
            "/api/invites/redeem",
            json!({ "token": crate::helpers::invite_token(&link)? }),
            None,
        )
        .await?;
    assert_eq!(redeemed.status(), StatusCode::OK);
    for staff in ["ivy@example.com", "olly@example.com"] {
        let assignment = unfolded(to(&delivered, staff).first().context("theirs")?);
        assert!(
            assignment.contains(&format!("/interviews/{id}")),
            "{assignment}"
        );
        assert!(
            !assignment.contains("/join/"),
            "no candidate link for staff"
        );
        assert!(has(&calendar(&assignment)?, &uid));
    }
    assert!(
        to(&delivered, "olly@example.com")[0]
            .contains("Subject: You are an observer of Systems round")
    );

    // A change of time zone alone changes nothing anyone sees: nobody is written to (the
    // counts below are exact).
    expect_json(
        app.request(
            reqwest::Method::PATCH,
            &format!("/api/interviews/{id}"),
            Some(json!({ "time_zone": "Europe/Berlin" })),
            Some(&ivy.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    // Moved a day later: everyone's calendar entry is updated in place (same UID, next
    // sequence, the new time); the candidate's message does not repeat her link.
    let later = start.checked_add(jiff::SignedDuration::from_hours(24))?;
    expect_json(
        app.request(
            reqwest::Method::PATCH,
            &format!("/api/interviews/{id}"),
            Some(json!({ "scheduled_start": later.to_string() })),
            Some(&ivy.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    let delivered = sink.wait_for(6, Duration::from_secs(60)).await?;
    let moved = unfolded(
        to(&delivered, "cas@example.com")
            .get(1)
            .context("the change")?,
    );
    assert!(
        moved.contains("Subject: Interview changed: Systems round"),
        "{moved}"
    );
    assert!(!moved.contains("/join/"), "{moved}");
    let lines = calendar(&moved)?;
    assert!(has(&lines, &uid) && has(&lines, "SEQUENCE:1") && has(&lines, "METHOD:REQUEST"));
    let new_start = format!(
        "DTSTART:{}",
        later
            .to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%Y%m%dT%H%M%SZ")
    );
    assert!(has(&lines, &new_start), "{lines:?}");

    // Her invite issued again: her new link reaches her, her calendar entry carries it.
    let candidate_id = crate::helpers::text(&created["invites"][0]["participant_id"])?;
    let reissued = expect_json(
        app.post(
            &format!("/api/interviews/{id}/participants/{candidate_id}/invite"),
            json!({}),
            Some(&ivy.access),
        )
        .await?,
        StatusCode::CREATED,
    )
    .await?;
    let new_link = crate::helpers::text(&reissued["url"])?;
    assert_ne!(new_link, link);
    let delivered = sink.wait_for(7, Duration::from_secs(60)).await?;
    let again = unfolded(
        to(&delivered, "cas@example.com")
            .get(2)
            .context("the new link")?,
    );
    assert!(again.contains(&new_link), "{again}");
    let lines = calendar(&again)?;
    assert!(has(&lines, &uid) && has(&lines, "SEQUENCE:2") && has(&lines, &new_start));

    // Cancelled: everyone's entry is removed.
    expect_json(
        app.post(
            &format!("/api/interviews/{id}/cancel"),
            json!({}),
            Some(&ivy.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    let delivered = sink.wait_for(10, Duration::from_secs(60)).await?;
    for (person, count) in [
        ("cas@example.com", 4),
        ("ivy@example.com", 3),
        ("olly@example.com", 3),
    ] {
        let mine = to(&delivered, person);
        assert_eq!(
            mine.len(),
            count,
            "{person}: invitation, (new link,) change, cancellation"
        );
        let cancelled = unfolded(mine[count - 1]);
        assert!(cancelled.contains("Subject: Interview cancelled: Systems round"));
        let lines = calendar(&cancelled)?;
        for line in [
            "METHOD:CANCEL",
            uid.as_str(),
            "SEQUENCE:3",
            "STATUS:CANCELLED",
        ] {
            assert!(has(&lines, line), "{person}: {line} in {lines:?}");
        }
    }
    Ok(())
}

async fn reminders_come_an_hour_before_to_those_who_attend_once(backend: Backend) -> Result<()> {
    let sink = SmtpSink::start().await?;
    let app = app_with_email(backend, &sink).await?;
    let ivy = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    app.user_with_role("rex@example.com", AccountRole::Reviewer)
        .await?;
    let mut body = crate::helpers::interview_body("cas@example.com");
    let soon = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_mins(50))?;
    body["scheduled_start"] = json!(soon.to_string());
    body["participants"] = json!([
        { "email": "cas@example.com", "display_name": "Casey Candidate", "role": "candidate" },
        { "email": "rex@example.com", "role": "reviewer" },
    ]);
    let created = app.schedule(&ivy.access, body).await?;
    let id = crate::helpers::text(&created["interview"]["id"])?;
    sink.wait_for(3, Duration::from_secs(60)).await?;
    // Scheduled within the hour, it gets no reminder: its invitation just went (the reminder
    // task looks every 10 s).
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(sink.messages()?.len(), 3, "no reminder for a late one");
    // As if it had been scheduled yesterday:
    let mut db = app.db().await?;
    sqlx::query(
        "UPDATE interviews SET created_at = created_at - 86400, reminded_hour_at = NULL, \
         reminded_day_at = NULL WHERE id = $1",
    )
    .bind(&id)
    .execute(&mut db)
    .await?;
    let delivered = sink.wait_for(5, Duration::from_secs(60)).await?;
    let reminders: Vec<&String> = delivered
        .iter()
        .filter(|m| m.contains("Subject: In an hour: "))
        .collect();
    assert_eq!(
        reminders.len(),
        2,
        "candidate and interviewer, not the reviewer"
    );
    assert!(
        to(&delivered, "rex@example.com").len() == 1,
        "only the assignment"
    );
    let cas = unfolded(to(&delivered, "cas@example.com")[1]);
    assert!(
        cas.contains("Join with the link in your invitation message"),
        "{cas}"
    );
    // Once: the next rounds of the reminder task send nothing more.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(sink.messages()?.len(), 5);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_recording_is_announced_to_the_interview_s_reviewers_once() -> Result<()> {
    let sink = SmtpSink::start().await?;
    let app = app_with_email(Backend::Sqlite, &sink).await?;
    let ivy = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    app.user_with_role("rex@example.com", AccountRole::Reviewer)
        .await?;
    let mut body = crate::helpers::interview_body("cas@example.com");
    body["title"] = json!("Recorded round");
    body["participants"] = json!([
        { "email": "cas@example.com", "display_name": "Casey Candidate", "role": "candidate" },
        { "email": "rex@example.com", "role": "reviewer" },
    ]);
    let created = app.schedule(&ivy.access, body).await?;
    let id = crate::helpers::text(&created["interview"]["id"])?;
    sink.wait_for(3, Duration::from_secs(60)).await?;
    // A recording of it ends, as the recorder writes it (wherever it was made), and one still
    // under way.
    let now = jiff::Timestamp::now().as_second();
    let mut db = app.db().await?;
    for (recording, status, ended) in [
        ("rec-done", "complete", Some(now)),
        ("rec-live", "recording", None),
    ] {
        sqlx::query(
            "INSERT INTO recordings (id, interview_id, status, started_by, started_at, ended_at, \
             duration_ms) VALUES ($1, $2, $3, 'x', $4, $5, 60000)",
        )
        .bind(recording)
        .bind(&id)
        .bind(status)
        .bind(now - 60)
        .bind(ended)
        .execute(&mut db)
        .await?;
    }
    let delivered = sink.wait_for(4, Duration::from_secs(60)).await?;
    let told = to(&delivered, "rex@example.com");
    assert_eq!(told.len(), 2, "the assignment, then the recording");
    let ready = unfolded(told[1]);
    assert!(
        ready.contains("Subject: Recording ready: Recorded round"),
        "{ready}"
    );
    assert!(ready.contains("/recordings/rec-done"), "{ready}");
    // Once, to reviewers only, and nothing for the recording still under way.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let all = sink.messages()?;
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(all.iter().all(|m| !m.contains("rec-live")));
    Ok(())
}

/// The token of the confirmation link in a delivered message.
fn verification_token(message: &str) -> Result<String> {
    let message = unfolded(message);
    let at = message
        .find("/verify-email#")
        .context("a confirmation link in the message")?;
    let token: String = message[at + "/verify-email#".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    anyhow::ensure!(token.len() == 43, "a whole token: {token}");
    Ok(token)
}

async fn a_registered_account_confirms_its_address_by_the_emailed_link_once(
    backend: Backend,
) -> Result<()> {
    let sink = SmtpSink::start().await?;
    let app = app_with_email(backend, &sink).await?;
    // An operator's account is confirmed from the start.
    let ivy = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let me = expect_json(app.get("/api/me", Some(&ivy.access)).await?, StatusCode::OK).await?;
    assert_eq!(me["email_verified"], true, "{me}");

    // A self-registered one gets a link, and is unconfirmed until it is followed.
    app.register("nina@example.com").await?;
    let delivered = sink.wait_for(1, Duration::from_secs(30)).await?;
    let message = unfolded(&delivered[0]);
    assert!(message.contains("To: nina@example.com"), "{message}");
    assert!(
        message.contains("Subject: Confirm your email address for Sightline"),
        "{message}"
    );
    let token = verification_token(&message)?;
    let nina = app.login("nina@example.com").await?;
    let me = expect_json(
        app.get("/api/me", Some(&nina.access)).await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(me["email_verified"], false, "{me}");
    // A made-up link is refused and confirms nothing.
    expect_error(
        app.post(
            "/api/auth/email/verify",
            json!({ "token": "A".repeat(43) }),
            None,
        )
        .await?,
        StatusCode::BAD_REQUEST,
        "invalid_verification_link",
    )
    .await?;
    // She asks for another link; the first still works, once.
    let again = expect_json(
        app.post("/api/auth/email/resend", json!({}), Some(&nina.access))
            .await?,
        StatusCode::ACCEPTED,
    )
    .await?;
    assert!(
        again["message"]
            .as_str()
            .is_some_and(|m| m.contains("nina@example.com"))
    );
    sink.wait_for(2, Duration::from_secs(30)).await?;
    let confirmed = app
        .post("/api/auth/email/verify", json!({ "token": token }), None)
        .await?;
    assert_eq!(confirmed.status(), StatusCode::NO_CONTENT);
    let me = expect_json(
        app.get("/api/me", Some(&nina.access)).await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(me["email_verified"], true, "{me}");
    expect_error(
        app.post("/api/auth/email/verify", json!({ "token": token }), None)
            .await?,
        StatusCode::BAD_REQUEST,
        "invalid_verification_link",
    )
    .await?;
    expect_error(
        app.post("/api/auth/email/resend", json!({}), Some(&nina.access))
            .await?,
        StatusCode::CONFLICT,
        "already_verified",
    )
    .await?;
    // Registering an address that has an account queues nothing (and says nothing).
    app.register("nina@example.com").await?;
    let queued = async || -> Result<i64> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE recipient = 'nina@example.com'")
                .fetch_one(&mut app.db().await?)
                .await?;
        Ok(n)
    };
    assert_eq!(queued().await?, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmation_links_are_sent_at_most_five_an_hour() -> Result<()> {
    let sink = SmtpSink::start().await?;
    let app = app_with_email(Backend::Postgres, &sink).await?;
    app.register("nina@example.com").await?;
    sink.wait_for(1, Duration::from_secs(30)).await?;
    let nina = app.login("nina@example.com").await?;
    // Asked for at once, several times: four more after the registration's link, whatever the
    // interleaving, then "too many".
    let mut asks = Vec::new();
    for _ in 0..8 {
        asks.push(app.post("/api/auth/email/resend", json!({}), Some(&nina.access)));
    }
    let mut statuses = Vec::new();
    for ask in asks {
        statuses.push(ask.await?.status());
    }
    let accepted = statuses
        .iter()
        .filter(|s| **s == StatusCode::ACCEPTED)
        .count();
    let (links,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM email_verifications v JOIN users u ON u.id = v.user_id \
         WHERE u.email = 'nina@example.com'",
    )
    .fetch_one(&mut app.db().await?)
    .await?;
    assert_eq!(links, 5, "{statuses:?}");
    assert_eq!(accepted, 4, "{statuses:?}");
    expect_error(
        app.post("/api/auth/email/resend", json!({}), Some(&nina.access))
            .await?,
        StatusCode::CONFLICT,
        "too_many_links",
    )
    .await?;
    Ok(())
}

/// Each message tells the time in its recipient's zone, named: the one the scheduler gave the
/// candidate, the interviewer's account's own (set through `/api/me`), else the interview's.
async fn each_person_reads_the_interview_s_time_in_their_own_zone(backend: Backend) -> Result<()> {
    let sink = SmtpSink::start().await?;
    let app = app_with_email(backend, &sink).await?;
    let ivy = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let olly = app
        .user_with_role("olly@example.com", AccountRole::Interviewer)
        .await?;
    app.user_with_role("rex@example.com", AccountRole::Reviewer)
        .await?;
    assert_eq!(ivy.me["time_zone"], Value::Null, "none until set");
    expect_error(
        app.put(
            "/api/me/time-zone",
            json!({ "time_zone": "Mars/Olympus_Mons" }),
            Some(&ivy.access),
        )
        .await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    for (who, zone) in [(&ivy, "Asia/Tokyo"), (&olly, "Australia/Sydney")] {
        let me = expect_json(
            app.put(
                "/api/me/time-zone",
                json!({ "time_zone": zone }),
                Some(&who.access),
            )
            .await?,
            StatusCode::OK,
        )
        .await?;
        assert_eq!(me["time_zone"], zone);
    }

    let mut body = crate::helpers::interview_body("cas@example.com");
    body["participants"] = json!([
        { "email": "cas@example.com", "role": "candidate", "time_zone": "Atlantis/Capital" },
    ]);
    let refused = expect_error(
        app.post("/api/interviews", body.clone(), Some(&ivy.access))
            .await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    assert!(
        refused.to_string().contains("participants[0].time_zone"),
        "{refused}"
    );
    // The scheduler's zone for a participant wins over their account's.
    body["participants"] = json!([
        { "email": "cas@example.com", "role": "candidate", "time_zone": "America/New_York" },
        { "email": "olly@example.com", "role": "observer", "time_zone": "America/Sao_Paulo" },
        { "email": "rex@example.com", "role": "reviewer" },
    ]);
    let created = app.schedule(&ivy.access, body).await?;
    let start = jiff::Timestamp::from_str(&crate::helpers::text(
        &created["interview"]["scheduled_start"],
    )?)?;
    let delivered = sink.wait_for(4, Duration::from_secs(60)).await?;
    let zones = [
        ("cas@example.com", "America/New_York"),
        ("ivy@example.com", "Asia/Tokyo"),
        ("olly@example.com", "America/Sao_Paulo"),
        ("rex@example.com", "Europe/Paris"),
    ];
    for (person, zone) in zones {
        let message = quoted_printable(to(&delivered, person).first().context("theirs")?);
        let local = start
            .to_zoned(jiff::tz::TimeZone::get(zone)?)
            .strftime("%A %d %B %Y, %H:%M");
        let expected = format!("{local} ({zone}), 60 minutes");
        assert!(
            message.contains(&expected),
            "{expected} for {person} in {message}"
        );
        let others = zones.iter().map(|(_, z)| *z).chain(["Australia/Sydney"]);
        for other in others.filter(|other| *other != zone) {
            assert!(!message.contains(other), "{other} in {person}'s {message}");
        }
    }
    Ok(())
}
