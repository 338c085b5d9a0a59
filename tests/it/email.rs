//! Email through a real SMTP server (Debian's aiosmtpd, started per test): a forgotten password
//! is reset by the link in the delivered message, once, within its validity, and every session
//! of the account ends; a failing SMTP server is retried from the outbox, across a restart,
//! and the message arrives once; with no SMTP server the app says it sends no email.

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sightline_api::AccountRole;
use sightline_testkit::SmtpSink;

use crate::helpers::{Backend, PASSWORD, TestApp, expect_error, expect_json};
use crate::on_both_backends;

on_both_backends!(a_forgotten_password_is_reset_by_the_emailed_link_once_and_sessions_end);

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
    app.register("rae@example.com").await?;
    let before = app.login("rae@example.com").await?;

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
    app.register("rae@example.com").await?;
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
    Ok(())
}
