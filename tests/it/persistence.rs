//! Data and sessions survive a restart of the server.

use anyhow::Result;
use reqwest::StatusCode;
use serde_json::json;
use sightline_api::AccountRole;

use crate::helpers::{Backend, TestApp, expect_json, interview_body, session_from, text};
use crate::on_both_backends;

on_both_backends!(everything_survives_a_restart);

async fn everything_survives_a_restart(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let interviewer = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let created = app
        .schedule(&interviewer.access, interview_body("cand@example.com"))
        .await?;
    let id = text(&created["interview"]["id"])?;
    let old_base = app.base.clone();

    let app = app.restart().await?;
    assert_ne!(app.base, old_base, "a new server on a new port");
    // The access token from before the restart is still valid, the refresh token still rotates,
    // the interview is still there.
    let seen = expect_json(
        app.get(&format!("/api/interviews/{id}"), Some(&interviewer.access))
            .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(seen["title"], created["interview"]["title"]);
    session_from(
        app.post(
            "/api/auth/refresh",
            json!({ "refresh_token": interviewer.refresh }),
            None,
        )
        .await?,
    )
    .await?;
    app.login("ivy@example.com").await?;
    Ok(())
}
