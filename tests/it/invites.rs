//! Candidate invite links: preview, single use, guest sessions confined to one interview,
//! reissue, and linking to an existing account.

use anyhow::Result;
use reqwest::StatusCode;
use serde_json::json;
use sightline_api::AccountRole;

use crate::helpers::{
    Backend, TestApp, expect_error, expect_json, interview_body, invite_token, session_from, text,
};
use crate::on_both_backends;

on_both_backends!(
    invite_opens_one_interview_once,
    bad_invite_tokens_are_told_apart,
    reissued_invite_replaces_the_old_one,
    signed_in_candidate_claims_the_invite,
    a_redemption_that_fails_midway_leaves_the_link_usable,
);

/// The guest's session cannot be stored (its table is gone for a moment): the redemption fails
/// as a whole and the link still works afterwards, instead of being spent for nothing.
async fn a_redemption_that_fails_midway_leaves_the_link_usable(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let interviewer = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let created = schedule(&app, &interviewer.access, "cas@example.com").await?;
    let token = invite_token(&text(&created["invites"][0]["url"])?)?;
    let redeem = || app.post("/api/invites/redeem", json!({ "token": token }), None);

    expect_error(
        app.with_table_hidden("refresh_tokens", redeem()).await?,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
    )
    .await?;

    let guest = session_from(redeem().await?).await?;
    assert_eq!(guest.me["kind"], "guest");
    expect_error(redeem().await?, StatusCode::GONE, "invite_used").await?;
    Ok(())
}

async fn schedule(app: &TestApp, interviewer: &str, candidate: &str) -> Result<serde_json::Value> {
    app.schedule(interviewer, interview_body(candidate)).await
}

/// Asks for a new invite link for a candidate, as `access`.
async fn reissue(
    app: &TestApp,
    interview: &str,
    participant: &str,
    access: &str,
) -> Result<reqwest::Response> {
    app.post(
        &format!("/api/interviews/{interview}/participants/{participant}/invite"),
        json!({}),
        Some(access),
    )
    .await
}

async fn invite_opens_one_interview_once(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let interviewer = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let created = schedule(&app, &interviewer.access, "cand@example.com").await?;
    let other = schedule(&app, &interviewer.access, "else@example.com").await?;
    let id = text(&created["interview"]["id"])?;
    let token = invite_token(&text(&created["invites"][0]["url"])?)?;

    let preview = expect_json(
        app.post("/api/invites/inspect", json!({ "token": token }), None)
            .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(preview["interview_id"], id.as_str());
    assert_eq!(preview["candidate_name"], "Casey Candidate");
    assert_eq!(preview["interviewers"][0], "ivy");

    let guest = session_from(
        app.post("/api/invites/redeem", json!({ "token": token }), None)
            .await?,
    )
    .await?;
    assert_eq!(guest.me["kind"], "guest");
    assert_eq!(guest.me["interview_id"], id.as_str());

    let seen = expect_json(
        app.get(&format!("/api/interviews/{id}"), Some(&guest.access))
            .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(seen["my_role"], "candidate");
    assert_eq!(seen["can_manage"], false);
    assert!(
        seen["participants"][0]["email"].is_null(),
        "candidates see no emails"
    );

    let joined = expect_json(
        app.post(
            &format!("/api/interviews/{id}/join"),
            json!({}),
            Some(&guest.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(joined["role"], "candidate");
    assert_eq!(joined["grants"]["can_moderate"], false);

    let other_id = text(&other["interview"]["id"])?;
    expect_error(
        app.get(&format!("/api/interviews/{other_id}"), Some(&guest.access))
            .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;
    expect_error(
        app.post(
            "/api/interviews",
            interview_body("z@example.com"),
            Some(&guest.access),
        )
        .await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    let mine = expect_json(
        app.get("/api/interviews/my", Some(&guest.access)).await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(mine["upcoming"][0]["id"], id.as_str());

    // The guest session survives a page reload through its refresh token.
    session_from(
        app.post(
            "/api/auth/refresh",
            json!({ "refresh_token": guest.refresh }),
            None,
        )
        .await?,
    )
    .await?;

    // The link itself is spent.
    expect_error(
        app.post("/api/invites/redeem", json!({ "token": token }), None)
            .await?,
        StatusCode::GONE,
        "invite_used",
    )
    .await?;
    let staff_view = expect_json(
        app.get(&format!("/api/interviews/{id}"), Some(&interviewer.access))
            .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(staff_view["participants"][1]["invite"], "used");
    Ok(())
}

async fn bad_invite_tokens_are_told_apart(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    for token in ["", "short", "../../etc/passwd", &"A".repeat(43)] {
        expect_error(
            app.post("/api/invites/inspect", json!({ "token": token }), None)
                .await?,
            StatusCode::NOT_FOUND,
            "invite_not_found",
        )
        .await?;
    }
    expect_error(
        app.post(
            "/api/invites/redeem",
            json!({ "token": "x".repeat(500) }),
            None,
        )
        .await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;

    let interviewer = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let created = schedule(&app, &interviewer.access, "cand@example.com").await?;
    let id = text(&created["interview"]["id"])?;
    let token = invite_token(&text(&created["invites"][0]["url"])?)?;
    app.post(
        &format!("/api/interviews/{id}/cancel"),
        json!({}),
        Some(&interviewer.access),
    )
    .await?;
    expect_error(
        app.post("/api/invites/redeem", json!({ "token": token }), None)
            .await?,
        StatusCode::GONE,
        "invite_revoked",
    )
    .await?;
    Ok(())
}

async fn reissued_invite_replaces_the_old_one(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let interviewer = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let created = schedule(&app, &interviewer.access, "cand@example.com").await?;
    let id = text(&created["interview"]["id"])?;
    let participant = text(&created["invites"][0]["participant_id"])?;
    let old = invite_token(&text(&created["invites"][0]["url"])?)?;

    // Someone else used the link; the interviewer sends a new one.
    let impostor = session_from(
        app.post("/api/invites/redeem", json!({ "token": old }), None)
            .await?,
    )
    .await?;
    app.register("cand@example.com").await?;
    let candidate = app.login("cand@example.com").await?;
    expect_error(
        reissue(&app, &id, &participant, &candidate.access).await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;

    let fresh = expect_json(
        reissue(&app, &id, &participant, &interviewer.access).await?,
        StatusCode::CREATED,
    )
    .await?;
    let new = invite_token(&text(&fresh["url"])?)?;
    assert_ne!(old, new);
    expect_error(
        app.post("/api/invites/inspect", json!({ "token": old }), None)
            .await?,
        StatusCode::GONE,
        "invite_used",
    )
    .await?;
    // Whoever used the old link is signed out: their session cannot be renewed.
    expect_error(
        app.post(
            "/api/auth/refresh",
            json!({ "refresh_token": impostor.refresh }),
            None,
        )
        .await?,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await?;
    expect_json(
        app.post("/api/invites/inspect", json!({ "token": new }), None)
            .await?,
        StatusCode::OK,
    )
    .await?;
    Ok(())
}

async fn signed_in_candidate_claims_the_invite(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let interviewer = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let created = schedule(&app, &interviewer.access, "cand@example.com").await?;
    let id = text(&created["interview"]["id"])?;
    let token = invite_token(&text(&created["invites"][0]["url"])?)?;
    app.register("cand@example.com").await?;
    let candidate = app.login("cand@example.com").await?;

    let linked = expect_json(
        app.post(
            "/api/invites/redeem",
            json!({ "token": token }),
            Some(&candidate.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(linked["interview_id"], id.as_str());
    let mine = expect_json(
        app.get("/api/interviews/my", Some(&candidate.access))
            .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(mine["upcoming"][0]["id"], id.as_str());
    let seen = expect_json(
        app.get(&format!("/api/interviews/{id}"), Some(&candidate.access))
            .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(seen["my_role"], "candidate");

    // Reissuing the link ends whatever the old one gave, an account's link to the interview
    // too (whoever redeemed it may not have been the candidate); the candidate redeems the new
    // one while signed in and is linked again.
    let participant = text(&created["invites"][0]["participant_id"])?;
    let reissued = expect_json(
        reissue(&app, &id, &participant, &interviewer.access).await?,
        StatusCode::CREATED,
    )
    .await?;
    expect_error(
        app.get(&format!("/api/interviews/{id}"), Some(&candidate.access))
            .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;
    let link = invite_token(&text(&reissued["url"])?)?;
    let relinked = expect_json(
        app.post(
            "/api/invites/redeem",
            json!({ "token": link }),
            Some(&candidate.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(relinked["interview_id"], id.as_str());
    expect_json(
        app.get(&format!("/api/interviews/{id}"), Some(&candidate.access))
            .await?,
        StatusCode::OK,
    )
    .await?;
    Ok(())
}
