//! Pairing a candidate's phone as a second camera, through the real server: the pairing's life
//! (once, for five minutes, bound to one interview and candidate, hashed at rest), who may pair
//! and unpair, the phone's session, the rate limit, and the phone's grants in the room.

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sightline_api::AccountRole;
use sqlx::Row;

use crate::helpers::{Backend, TestApp, expect_error, expect_json, text};
use crate::on_both_backends;
use crate::rtc::{Interview, interview, join, next_of, send};

on_both_backends!(
    a_pairing_works_once_for_its_candidate,
    pairings_expire_and_newer_phones_replace_older_ones,
    only_the_candidate_and_interviewers_pair,
    a_phone_is_limited_to_its_camera_in_the_room,
);

fn pairings(interview: &str) -> String {
    format!("/api/interviews/{interview}/phone-pairings")
}

async fn start_pairing(app: &TestApp, interview: &str, access: &str, body: Value) -> Result<Value> {
    expect_json(
        app.post(&pairings(interview), body, Some(access)).await?,
        StatusCode::CREATED,
    )
    .await
}

fn token_of(pairing: &Value) -> Result<String> {
    let url = text(&pairing["url"])?;
    Ok(url
        .rsplit_once("/pair/")
        .map(|(_, token)| token.to_owned())
        .unwrap_or_default())
}

fn sha256_hex(input: &str) -> String {
    Sha256::digest(input.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Redeems a pairing and returns the phone's session.
async fn pair_phone(app: &TestApp, secret: Value) -> Result<String> {
    let session = expect_json(
        app.post("/api/phone/redeem", secret, None).await?,
        StatusCode::OK,
    )
    .await?;
    text(&session["session"])
}

async fn phone_join(app: &TestApp, session: &str) -> Result<reqwest::Response> {
    app.post("/api/phone/join", json!({ "session": session }), None)
        .await
}

async fn candidate_id(app: &TestApp, room: &Interview) -> Result<String> {
    let (_socket, joined) = join(app, &room.id, &room.candidate).await?;
    text(&joined["you"]["identity"])
}

/// A server whose per-IP limit lets one test make many pairing calls (the limit has a test of
/// its own).
async fn lenient_app(backend: Backend) -> Result<TestApp> {
    TestApp::spawn_with(backend, &[("auth.rate_limit.per_ip_burst", json!(100))]).await
}

async fn a_pairing_works_once_for_its_candidate(backend: Backend) -> Result<()> {
    let app = lenient_app(backend).await?;
    let room = interview(&app).await?;
    let candidate = candidate_id(&app, &room).await?;
    let pairing = start_pairing(&app, &room.id, &room.candidate, json!({})).await?;
    assert_eq!(pairing["candidate"], candidate.as_str());
    let url = text(&pairing["url"])?;
    assert!(
        url.starts_with("http://sightline.test/pair/"),
        "built from the public base URL: {url}"
    );
    assert_eq!(pairing["code_url"], "http://sightline.test/pair");
    assert!(text(&pairing["qr_svg"])?.contains("<svg"));
    let code = text(&pairing["code"])?;
    assert_eq!(code.len(), 9, "two groups of four: {code}");
    let token = token_of(&pairing)?;

    // Stored hashed: the token and the code are nowhere in the row, their hashes are.
    let mut db = app.db().await?;
    let row = sqlx::query(
        "SELECT token_hash, code_hash, interview_id, participant_id FROM phone_pairings",
    )
    .fetch_one(&mut db)
    .await?;
    assert_eq!(row.try_get::<String, _>("token_hash")?, sha256_hex(&token));
    assert_eq!(
        row.try_get::<String, _>("code_hash")?,
        sha256_hex(&code.replace('-', ""))
    );
    assert_eq!(row.try_get::<String, _>("interview_id")?, room.id);
    assert_eq!(row.try_get::<String, _>("participant_id")?, candidate);

    // The phone sees what it would share and with whom, by link or by typed code.
    let preview = expect_json(
        app.post("/api/phone/inspect", json!({ "token": token }), None)
            .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(preview["candidate_name"], "Casey Candidate");
    assert_eq!(preview["interviewers"][0], "ivy");
    let typed = code.to_lowercase().replace('-', " ");
    expect_json(
        app.post("/api/phone/inspect", json!({ "code": typed }), None)
            .await?,
        StatusCode::OK,
    )
    .await?;

    // Bad input is told apart and changes nothing.
    for (secret, status, code) in [
        (
            json!({ "token": "short" }),
            StatusCode::NOT_FOUND,
            "pairing_not_found",
        ),
        (
            json!({ "token": "A".repeat(43) }),
            StatusCode::NOT_FOUND,
            "pairing_not_found",
        ),
        (
            json!({ "code": "ZZZZ-ZZZZ" }),
            StatusCode::NOT_FOUND,
            "pairing_not_found",
        ),
        (
            json!({ "code": "0000-0000" }),
            StatusCode::NOT_FOUND,
            "pairing_not_found",
        ),
        (
            json!({ "token": token, "code": code }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({ "token": token, "admin": true }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ] {
        expect_error(
            app.post("/api/phone/redeem", secret, None).await?,
            status,
            code,
        )
        .await?;
    }

    // Once: the link works, then neither it nor the code does.
    let session = pair_phone(&app, json!({ "token": token })).await?;
    for secret in [json!({ "token": token }), json!({ "code": code })] {
        expect_error(
            app.post("/api/phone/redeem", secret, None).await?,
            StatusCode::GONE,
            "pairing_used",
        )
        .await?;
    }

    // The session opens exactly this interview's room, as this candidate's phone.
    let granted = expect_json(phone_join(&app, &session).await?, StatusCode::OK).await?;
    assert_eq!(granted["room"], room.id.as_str());
    assert_eq!(granted["identity"], format!("phone-{candidate}"));
    assert_eq!(granted["grants"]["can_subscribe"], false);
    assert_eq!(granted["grants"]["can_chat"], false);
    assert_eq!(
        granted["grants"]["can_publish_sources"],
        json!(["secondary_camera"])
    );
    expect_error(
        phone_join(&app, "not-a-session").await?,
        StatusCode::UNAUTHORIZED,
        "phone_session_ended",
    )
    .await?;
    Ok(())
}

async fn pairings_expire_and_newer_phones_replace_older_ones(backend: Backend) -> Result<()> {
    let app = lenient_app(backend).await?;
    let room = interview(&app).await?;
    let first = start_pairing(&app, &room.id, &room.candidate, json!({})).await?;
    let first_session = pair_phone(&app, json!({ "token": token_of(&first)? })).await?;

    // A code older than five minutes is refused (its expiry moved into the past).
    let stale = start_pairing(&app, &room.id, &room.candidate, json!({})).await?;
    let mut db = app.db().await?;
    sqlx::query("UPDATE phone_pairings SET expires_at = $1 WHERE token_hash = $2")
        .bind(jiff::Timestamp::now().as_second() - 1)
        .bind(sha256_hex(&token_of(&stale)?))
        .execute(&mut db)
        .await?;
    expect_error(
        app.post(
            "/api/phone/redeem",
            json!({ "token": token_of(&stale)? }),
            None,
        )
        .await?,
        StatusCode::GONE,
        "pairing_expired",
    )
    .await?;

    // A newer code makes the unused older one stop working.
    let unused = start_pairing(&app, &room.id, &room.candidate, json!({})).await?;
    let newer = start_pairing(&app, &room.id, &room.candidate, json!({})).await?;
    expect_error(
        app.post("/api/phone/redeem", json!({ "code": unused["code"] }), None)
            .await?,
        StatusCode::GONE,
        "pairing_revoked",
    )
    .await?;
    // The first phone still works until another phone pairs, then gives way.
    expect_json(phone_join(&app, &first_session).await?, StatusCode::OK).await?;
    let second_session = pair_phone(&app, json!({ "code": newer["code"] })).await?;
    expect_error(
        phone_join(&app, &first_session).await?,
        StatusCode::UNAUTHORIZED,
        "phone_session_ended",
    )
    .await?;
    expect_json(phone_join(&app, &second_session).await?, StatusCode::OK).await?;

    // Removing the phone ends its session too.
    let candidate = text(&newer["candidate"])?;
    let removed = app
        .request(
            Method::DELETE,
            &format!("{}/{candidate}", pairings(&room.id)),
            None,
            Some(&room.interviewer),
        )
        .await?;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    expect_error(
        phone_join(&app, &second_session).await?,
        StatusCode::UNAUTHORIZED,
        "phone_session_ended",
    )
    .await?;

    // A cancelled interview pairs nothing more.
    let cancelled = app
        .post(
            &format!("/api/interviews/{}/cancel", room.id),
            json!({}),
            Some(&room.interviewer),
        )
        .await?;
    assert!(cancelled.status().is_success(), "{}", cancelled.status());
    expect_error(
        app.post(&pairings(&room.id), json!({}), Some(&room.candidate))
            .await?,
        StatusCode::CONFLICT,
        "interview_closed",
    )
    .await?;
    Ok(())
}

async fn only_the_candidate_and_interviewers_pair(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let room = interview(&app).await?;
    // An interviewer pairs on the candidate's behalf (the interview's only candidate).
    let pairing = start_pairing(&app, &room.id, &room.interviewer, json!({})).await?;
    let candidate = text(&pairing["candidate"])?;
    start_pairing(
        &app,
        &room.id,
        &room.interviewer,
        json!({ "candidate": candidate }),
    )
    .await?;
    // Not for someone who is not a candidate here.
    let (_socket, joined) = join(&app, &room.id, &room.interviewer).await?;
    let interviewer_id = text(&joined["you"]["identity"])?;
    expect_error(
        app.post(
            &pairings(&room.id),
            json!({ "candidate": interviewer_id }),
            Some(&room.interviewer),
        )
        .await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    // A candidate pairs only their own phone.
    expect_error(
        app.post(
            &pairings(&room.id),
            json!({ "candidate": interviewer_id }),
            Some(&room.candidate),
        )
        .await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    // Outsiders learn nothing, not even that the interview exists.
    let outsider = app
        .user_with_role("olga@example.com", AccountRole::Interviewer)
        .await?;
    expect_error(
        app.post(&pairings(&room.id), json!({}), Some(&outsider.access))
            .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;
    expect_error(
        app.post(&pairings(&room.id), json!({}), None).await?,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await?;

    // Guessing codes runs into the per-IP limit.
    let mut limited = false;
    for _ in 0..30 {
        let response = app
            .post("/api/phone/inspect", json!({ "code": "ABCD-EFGH" }), None)
            .await?;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().contains_key("retry-after"));
            limited = true;
            break;
        }
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    assert!(limited, "guessing is rate limited");
    Ok(())
}

async fn a_phone_is_limited_to_its_camera_in_the_room(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let room = interview(&app).await?;
    let (mut ivy, _) = join(&app, &room.id, &room.interviewer).await?;
    let pairing = start_pairing(&app, &room.id, &room.candidate, json!({})).await?;
    let session = pair_phone(&app, json!({ "token": token_of(&pairing)? })).await?;
    let granted = expect_json(phone_join(&app, &session).await?, StatusCode::OK).await?;

    let url = format!("{}/rtc/{}", app.base.replacen("http", "ws", 1), room.id);
    let (mut phone, _) = tokio_tungstenite::connect_async(url).await?;
    send(
        &mut phone,
        json!({ "type": "join", "version": 1, "token": granted["token"] }),
    )
    .await?;
    let joined = next_of(&mut phone, "joined").await?;
    assert_eq!(joined["you"]["phone_of"], pairing["candidate"]);
    let seen = next_of(&mut ivy, "participant_joined").await?;
    assert_eq!(
        seen["participant"]["phone_of"], pairing["candidate"],
        "others see whose phone it is"
    );

    let refused = [
        json!({ "type": "publish_offer", "sdp": "v=0", "tracks": [{ "mid": "0", "source": "microphone" }] }),
        json!({ "type": "publish_offer", "sdp": "v=0", "tracks": [{ "mid": "0", "source": "camera" }] }),
        json!({ "type": "publish_offer", "sdp": "v=0", "tracks": [
            { "mid": "0", "source": "secondary_camera" }, { "mid": "1", "source": "secondary_camera" }] }),
        json!({ "type": "chat", "text": "psst" }),
        json!({ "type": "set_quality", "track": "t1", "quality": "high" }),
        json!({ "type": "moderate_remove", "participant": "anyone" }),
    ];
    for message in refused {
        send(&mut phone, message.clone()).await?;
        let error = next_of(&mut phone, "error").await?;
        assert!(
            ["not_allowed", "bad_declaration"].contains(&error["code"].as_str().unwrap_or("")),
            "{message} -> {error}"
        );
    }

    // Unpairing disconnects the phone at once; the others see it leave.
    let removed = app
        .request(
            Method::DELETE,
            &format!("{}/{}", pairings(&room.id), text(&pairing["candidate"])?),
            None,
            Some(&room.candidate),
        )
        .await?;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(next_of(&mut phone, "removed").await?["reason"], "removed");
    let left = next_of(&mut ivy, "participant_left").await?;
    assert_eq!(left["participant"], granted["identity"]);
    Ok(())
}
