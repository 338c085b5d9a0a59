//! Scheduling, visibility, rescheduling, cancelling and room join tokens.

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sightline_api::AccountRole;
use sightline_api::auth::TokenKeys;
use sightline_signaling::{Grants, InterviewRole, RoomId, TrackSource};

use crate::helpers::{
    Backend, TEST_SECRET, TestApp, expect_error, expect_json, interview_body, text,
};
use crate::on_both_backends;

on_both_backends!(
    only_staff_schedule_interviews,
    interviews_are_invisible_to_outsiders,
    dashboard_splits_upcoming_and_past,
    staff_participants_need_fitting_accounts,
    join_tokens_follow_the_role_and_the_room,
    reschedule_and_cancel,
);

async fn only_staff_schedule_interviews(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    app.register("cand@example.com").await?;
    let candidate = app.login("cand@example.com").await?;
    let refused = app
        .post(
            "/api/interviews",
            interview_body("x@example.com"),
            Some(&candidate.access),
        )
        .await?;
    expect_error(refused, StatusCode::FORBIDDEN, "forbidden").await?;

    let interviewer = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let created = app
        .post(
            "/api/interviews",
            interview_body("cand@example.com"),
            Some(&interviewer.access),
        )
        .await?;
    let body = expect_json(created, StatusCode::CREATED).await?;
    let interview = &body["interview"];
    assert_eq!(interview["my_role"], "interviewer");
    assert_eq!(interview["can_manage"], true);
    assert_eq!(interview["time_zone"], "Europe/Paris");
    let participants = interview["participants"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(participants.len(), 2, "creator and candidate");
    assert_eq!(participants[1]["invite"], "pending");
    let invites = body["invites"].as_array().cloned().unwrap_or_default();
    assert_eq!(invites.len(), 1);
    let url = text(&invites[0]["url"])?;
    assert!(url.starts_with("http://sightline.test/join/"), "{url}");
    Ok(())
}

async fn interviews_are_invisible_to_outsiders(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let interviewer = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let created = app
        .schedule(&interviewer.access, interview_body("cand@example.com"))
        .await?;
    let id = text(&created["interview"]["id"])?;

    // A candidate account with the invited email is still an outsider until it redeems the link.
    app.register("cand@example.com").await?;
    let same_email = app.login("cand@example.com").await?;
    let other_interviewer = app
        .user_with_role("otto@example.com", AccountRole::Interviewer)
        .await?;
    for session in [&same_email, &other_interviewer] {
        expect_error(
            app.get(&format!("/api/interviews/{id}"), Some(&session.access))
                .await?,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await?;
        expect_error(
            app.post(
                &format!("/api/interviews/{id}/join"),
                json!({}),
                Some(&session.access),
            )
            .await?,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await?;
    }
    // Unknown and existing-but-hidden look the same.
    expect_error(
        app.get("/api/interviews/does-not-exist", Some(&same_email.access))
            .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;

    let admin = app
        .user_with_role("root@example.com", AccountRole::Admin)
        .await?;
    let seen = expect_json(
        app.get(&format!("/api/interviews/{id}"), Some(&admin.access))
            .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(seen["can_manage"], true);
    assert!(seen["my_role"].is_null());
    Ok(())
}

async fn dashboard_splits_upcoming_and_past(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let interviewer = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let soon = app
        .schedule(&interviewer.access, interview_body("a@example.com"))
        .await?;
    let doomed = app
        .schedule(&interviewer.access, interview_body("b@example.com"))
        .await?;
    let doomed_id = text(&doomed["interview"]["id"])?;
    expect_json(
        app.post(
            &format!("/api/interviews/{doomed_id}/cancel"),
            json!({}),
            Some(&interviewer.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    let mine = expect_json(
        app.get("/api/interviews/my", Some(&interviewer.access))
            .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(mine["upcoming"].as_array().map(Vec::len), Some(1));
    assert_eq!(mine["upcoming"][0]["id"], soon["interview"]["id"]);
    assert_eq!(mine["past"].as_array().map(Vec::len), Some(1));
    assert_eq!(mine["past"][0]["status"], "cancelled");

    let stranger = app
        .user_with_role("otto@example.com", AccountRole::Interviewer)
        .await?;
    let theirs = expect_json(
        app.get("/api/interviews/my", Some(&stranger.access))
            .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(theirs["upcoming"].as_array().map(Vec::len), Some(0));
    Ok(())
}

async fn staff_participants_need_fitting_accounts(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let interviewer = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    app.register("plain@example.com").await?;
    let mut body = interview_body("cand@example.com");
    body["participants"]
        .as_array_mut()
        .expect("participants")
        .push(json!({ "email": "plain@example.com", "role": "interviewer" }));
    let refused = app
        .post("/api/interviews", body, Some(&interviewer.access))
        .await?;
    let error = expect_error(
        refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    assert_eq!(
        error["error"]["fields"][0]["field"],
        "participants[1].email"
    );

    let mut no_candidate = interview_body("cand@example.com");
    no_candidate["participants"] = json!([{ "email": "ivy@example.com", "role": "observer" }]);
    let refused = app
        .post("/api/interviews", no_candidate, Some(&interviewer.access))
        .await?;
    expect_error(
        refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    Ok(())
}

async fn join_tokens_follow_the_role_and_the_room(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let interviewer = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let observer = app
        .user_with_role("obi@example.com", AccountRole::Interviewer)
        .await?;
    let reviewer = app
        .user_with_role("rev@example.com", AccountRole::Reviewer)
        .await?;
    let mut body = interview_body("cand@example.com");
    let list = body["participants"].as_array_mut().expect("participants");
    list.push(json!({ "email": "obi@example.com", "role": "observer" }));
    list.push(json!({ "email": "rev@example.com", "role": "reviewer" }));
    let room_a = app.schedule(&interviewer.access, body).await?;
    let room_b = app
        .schedule(&interviewer.access, interview_body("other@example.com"))
        .await?;
    let a = text(&room_a["interview"]["id"])?;
    let b = text(&room_b["interview"]["id"])?;
    let keys = TokenKeys::new(TEST_SECRET.as_bytes(), 900, 300);

    for (session, role) in [
        (&interviewer, InterviewRole::Interviewer),
        (&observer, InterviewRole::Observer),
        (&reviewer, InterviewRole::Reviewer),
    ] {
        let joined = expect_json(
            app.post(
                &format!("/api/interviews/{a}/join"),
                json!({}),
                Some(&session.access),
            )
            .await?,
            StatusCode::OK,
        )
        .await?;
        let token = text(&joined["token"])?;
        assert!(
            joined["expires_in"]
                .as_i64()
                .is_some_and(|s| s > 0 && s <= 300)
        );
        let claims = keys.verify_join(&token, &RoomId(a.clone()))?;
        assert_eq!(claims.role, role);
        assert_eq!(claims.grants, Grants::for_role(role));
        assert_eq!(serde_json::to_value(&claims.grants)?, joined["grants"]);
        // The same token does not open room B.
        assert!(keys.verify_join(&token, &RoomId(b.clone())).is_err());
    }
    let reviewer_grants = Grants::for_role(InterviewRole::Reviewer);
    assert!(reviewer_grants.hidden && !reviewer_grants.may_publish(TrackSource::Camera));
    Ok(())
}

async fn reschedule_and_cancel(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let interviewer = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let observer = app
        .user_with_role("obi@example.com", AccountRole::Interviewer)
        .await?;
    let mut body = interview_body("cand@example.com");
    body["participants"]
        .as_array_mut()
        .expect("participants")
        .push(json!({ "email": "obi@example.com", "role": "observer" }));
    let created = app.schedule(&interviewer.access, body).await?;
    let id = text(&created["interview"]["id"])?;
    let path = format!("/api/interviews/{id}");

    let later = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(48))?
        .to_string();
    let by_observer = app
        .request(
            Method::PATCH,
            &path,
            Some(json!({ "scheduled_start": later })),
            Some(&observer.access),
        )
        .await?;
    expect_error(by_observer, StatusCode::FORBIDDEN, "forbidden").await?;

    let moved = expect_json(
        app.request(
            Method::PATCH,
            &path,
            Some(json!({ "scheduled_start": later, "duration_minutes": 90 })),
            Some(&interviewer.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(moved["duration_minutes"], 90);
    let start: jiff::Timestamp = text(&moved["scheduled_start"])?.parse()?;
    // Stored to the second.
    assert_eq!(
        start.as_second(),
        later.parse::<jiff::Timestamp>()?.as_second()
    );

    let in_the_past = app
        .request(
            Method::PATCH,
            &path,
            Some(json!({ "scheduled_start": "2001-01-01T00:00:00Z" })),
            Some(&interviewer.access),
        )
        .await?;
    expect_error(
        in_the_past,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;

    let cancelled = expect_json(
        app.post(
            &format!("{path}/cancel"),
            json!({}),
            Some(&interviewer.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["can_join"], false);
    assert_eq!(cancelled["participants"][1]["invite"], "revoked");
    expect_error(
        app.post(
            &format!("{path}/cancel"),
            json!({}),
            Some(&interviewer.access),
        )
        .await?,
        StatusCode::CONFLICT,
        "interview_cancelled",
    )
    .await?;
    expect_error(
        app.post(
            &format!("{path}/join"),
            json!({}),
            Some(&interviewer.access),
        )
        .await?,
        StatusCode::CONFLICT,
        "interview_cancelled",
    )
    .await?;
    Ok(())
}
