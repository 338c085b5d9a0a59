//! Role management and deactivation by admins, the audit log, and the rooms that are up now.

use anyhow::{Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sightline_api::AccountRole;

use crate::helpers::{
    Backend, S3Fs, TestApp, expect_error, expect_json, interview_body, session_from, text,
};
use crate::on_both_backends;

on_both_backends!(
    admins_grant_roles_and_it_is_audited,
    a_deactivated_account_is_signed_out_at_once_and_cannot_sign_in
);

async fn admins_grant_roles_and_it_is_audited(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let admin = app
        .user_with_role("root@example.com", AccountRole::Admin)
        .await?;
    app.register("newbie@example.com").await?;
    let newbie = app.login("newbie@example.com").await?;
    let newbie_id = text(&newbie.me["id"])?;

    expect_error(
        app.get("/api/admin/users", Some(&newbie.access)).await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    expect_error(
        app.request(
            Method::PATCH,
            &format!("/api/admin/users/{newbie_id}"),
            Some(json!({ "role": "admin" })),
            Some(&newbie.access),
        )
        .await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;

    let users = expect_json(
        app.get("/api/admin/users", Some(&admin.access)).await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(users.as_array().map(Vec::len), Some(2));

    let promoted = expect_json(
        app.request(
            Method::PATCH,
            &format!("/api/admin/users/{newbie_id}"),
            Some(json!({ "role": "interviewer" })),
            Some(&admin.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(promoted["role"], "interviewer");

    let bad_role = app
        .request(
            Method::PATCH,
            &format!("/api/admin/users/{newbie_id}"),
            Some(json!({ "role": "superuser" })),
            Some(&admin.access),
        )
        .await?;
    expect_error(
        bad_role,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    let admin_id = text(&admin.me["id"])?;
    expect_error(
        app.request(
            Method::PATCH,
            &format!("/api/admin/users/{admin_id}"),
            Some(json!({ "role": "candidate" })),
            Some(&admin.access),
        )
        .await?,
        StatusCode::CONFLICT,
        "own_role",
    )
    .await?;

    // The new role arrives with the next refresh.
    let refreshed = session_from(
        app.post(
            "/api/auth/refresh",
            json!({ "refresh_token": newbie.refresh }),
            None,
        )
        .await?,
    )
    .await?;
    assert_eq!(refreshed.me["role"], "interviewer");
    let interview = crate::helpers::interview_body("cand@example.com");
    app.schedule(&refreshed.access, interview).await?;

    // A demoted admin loses admin rights at once, even with an access token issued before.
    let second = app
        .user_with_role("root2@example.com", AccountRole::Admin)
        .await?;
    let second_id = text(&second.me["id"])?;
    expect_json(
        app.request(
            Method::PATCH,
            &format!("/api/admin/users/{second_id}"),
            Some(json!({ "role": "candidate" })),
            Some(&admin.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    expect_error(
        app.get("/api/admin/users", Some(&second.access)).await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;

    let audit = expect_json(
        app.get("/api/admin/audit", Some(&admin.access)).await?,
        StatusCode::OK,
    )
    .await?;
    let entries = audit.as_array().cloned().unwrap_or_default();
    let change = entries
        .iter()
        .find(|e| e["action"] == "user.role_changed" && e["target"] == newbie_id.as_str())
        .expect("role change audited");
    assert_eq!(change["actor"], admin_id.as_str());
    assert_eq!(change["target"], newbie_id.as_str());
    let details: serde_json::Value = serde_json::from_str(&text(&change["details"])?)?;
    assert_eq!(details, json!({ "from": "candidate", "to": "interviewer" }));
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "user.created" && e["actor"] == "cli"),
        "bootstrap through the command line is audited"
    );

    // Narrowed: by action and target, by actor, by time; a bad moment is a clear error.
    let find = async |query: &str| -> Result<Vec<serde_json::Value>> {
        let found = expect_json(
            app.get(&format!("/api/admin/audit?{query}"), Some(&admin.access))
                .await?,
            StatusCode::OK,
        )
        .await?;
        Ok(found.as_array().cloned().unwrap_or_default())
    };
    let changed = find(&format!("action=user.role_changed&target={newbie_id}")).await?;
    assert!(!changed.is_empty());
    assert!(
        changed
            .iter()
            .all(|e| e["action"] == "user.role_changed" && e["target"] == newbie_id.as_str()),
        "{changed:?}"
    );
    let by_cli = find("actor=cli").await?;
    assert!(!by_cli.is_empty() && by_cli.iter().all(|e| e["actor"] == "cli"));
    assert!(find("action=no.such.action").await?.is_empty());
    let later = jiff::Timestamp::now().as_second() + 3600;
    assert!(find(&format!("since={later}")).await?.is_empty());
    assert_eq!(find(&format!("until={later}")).await?.len(), entries.len());
    assert!(find("until=1").await?.is_empty(), "nothing before 1970");
    expect_error(
        app.get("/api/admin/audit?since=yesterday", Some(&admin.access))
            .await?,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await?;
    expect_error(
        app.get("/api/admin/audit?until=-1", Some(&admin.access))
            .await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    Ok(())
}

async fn a_deactivated_account_is_signed_out_at_once_and_cannot_sign_in(
    backend: Backend,
) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let admin = app
        .user_with_role("root@example.com", AccountRole::Admin)
        .await?;
    let ivy = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let ivy_id = text(&ivy.me["id"])?;
    let admin_id = text(&admin.me["id"])?;
    let active = |id: &str| format!("/api/admin/users/{id}/active");

    // Only admins, and not on themselves.
    expect_error(
        app.put(
            &active(&admin_id),
            json!({ "active": false }),
            Some(&ivy.access),
        )
        .await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    expect_error(
        app.put(
            &active(&admin_id),
            json!({ "active": false }),
            Some(&admin.access),
        )
        .await?,
        StatusCode::CONFLICT,
        "cannot_deactivate_self",
    )
    .await?;
    expect_error(
        app.put(
            &active("no-such-user"),
            json!({ "active": false }),
            Some(&admin.access),
        )
        .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;

    // Ivy is signed in; deactivated, her access token stops working at once (not when it
    // expires), her session cannot be refreshed, and her password no longer signs her in.
    expect_json(app.get("/api/me", Some(&ivy.access)).await?, StatusCode::OK).await?;
    let view = expect_json(
        app.put(
            &active(&ivy_id),
            json!({ "active": false }),
            Some(&admin.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(view["active"], false, "{view}");
    expect_error(
        app.get("/api/me", Some(&ivy.access)).await?,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await?;
    expect_error(
        app.post(
            "/api/auth/refresh",
            json!({ "refresh_token": ivy.refresh }),
            None,
        )
        .await?,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await?;
    let refused = app
        .post(
            "/api/auth/login",
            json!({ "email": "ivy@example.com", "password": crate::helpers::PASSWORD }),
            None,
        )
        .await?;
    let body = expect_error(refused, StatusCode::FORBIDDEN, "forbidden").await?;
    assert!(body.to_string().contains("deactivated"), "{body}");
    // A wrong password says nothing about the account.
    expect_error(
        app.post(
            "/api/auth/login",
            json!({ "email": "ivy@example.com", "password": "not her password" }),
            None,
        )
        .await?,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await?;
    let users = expect_json(
        app.get("/api/admin/users", Some(&admin.access)).await?,
        StatusCode::OK,
    )
    .await?;
    let listed = users
        .as_array()
        .and_then(|users| users.iter().find(|u| u["id"] == ivy_id.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(listed["active"], false, "{users}");

    // Reactivated, she signs in again; both changes are audited.
    let view = expect_json(
        app.put(
            &active(&ivy_id),
            json!({ "active": true }),
            Some(&admin.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(view["active"], true);
    app.login("ivy@example.com").await?;
    let audit = expect_json(
        app.get("/api/admin/audit", Some(&admin.access)).await?,
        StatusCode::OK,
    )
    .await?;
    for action in ["user.deactivated", "user.reactivated"] {
        assert!(
            audit.as_array().is_some_and(|entries| entries
                .iter()
                .any(|e| e["action"] == action && e["target"] == ivy_id.as_str())),
            "{action}: {audit}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_who_is_in_each_room_now_and_close_one() -> Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let admin = app
        .user_with_role("root@example.com", AccountRole::Admin)
        .await?;
    let room = crate::rtc::interview(&app).await?;
    let (mut ivy, ivy_joined) = crate::rtc::join(&app, &room.id, &room.interviewer).await?;
    let (mut cas, cas_joined) = crate::rtc::join(&app, &room.id, &room.candidate).await?;
    let ivy_id = text(&ivy_joined["you"]["identity"])?;
    let cas_id = text(&cas_joined["you"]["identity"])?;

    // Only admins look.
    expect_error(
        app.get("/api/admin/rooms", Some(&room.interviewer)).await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    let live = expect_json(
        app.get("/api/admin/rooms", Some(&admin.access)).await?,
        StatusCode::OK,
    )
    .await?;
    let rooms = live["rooms"].as_array().context("rooms")?;
    assert_eq!(rooms.len(), 1, "{live}");
    let listed = &rooms[0];
    assert_eq!(listed["interview_id"], room.id.as_str());
    assert!(listed["title"].is_string(), "{listed}");
    assert!(listed["node"].is_null(), "alone");
    let mut people: Vec<(String, String, bool)> = listed["participants"]
        .as_array()
        .context("participants")?
        .iter()
        .map(|p| {
            (
                p["identity"].as_str().unwrap_or_default().to_owned(),
                p["role"].as_str().unwrap_or_default().to_owned(),
                p["reconnecting"].as_bool().unwrap_or(true),
            )
        })
        .collect();
    people.sort();
    let mut expected = vec![
        (ivy_id.clone(), "interviewer".to_owned(), false),
        (cas_id.clone(), "candidate".to_owned(), false),
    ];
    expected.sort();
    assert_eq!(people, expected, "{listed}");

    // Closed: everyone is told why and goes; nobody is barred.
    expect_error(
        app.post(
            "/api/admin/rooms/no-such-room/close",
            json!({}),
            Some(&admin.access),
        )
        .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;
    let closed = app
        .post(
            &format!("/api/admin/rooms/{}/close", room.id),
            json!({}),
            Some(&admin.access),
        )
        .await?;
    assert_eq!(closed.status(), StatusCode::NO_CONTENT);
    for socket in [&mut ivy, &mut cas] {
        let removed = crate::rtc::next_of(socket, "removed").await?;
        assert_eq!(removed["reason"], "room_closed", "{removed}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let live = expect_json(
            app.get("/api/admin/rooms", Some(&admin.access)).await?,
            StatusCode::OK,
        )
        .await?;
        let empty = live["rooms"].as_array().is_some_and(|rooms| {
            rooms
                .iter()
                .all(|r| r["participants"].as_array().is_none_or(Vec::is_empty))
        });
        if empty {
            break;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "still listed: {live}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_back, rejoined) = crate::rtc::join(&app, &room.id, &room.candidate).await?;
    assert_eq!(rejoined["you"]["identity"], cas_id.as_str());
    let audit = expect_json(
        app.get("/api/admin/audit", Some(&admin.access)).await?,
        StatusCode::OK,
    )
    .await?;
    assert!(
        audit.as_array().is_some_and(|a| a
            .iter()
            .any(|e| e["action"] == "room.closed" && e["target"] == room.id.as_str())),
        "audited"
    );
    Ok(())
}

/// Someone whose connection was down when an admin closed the room is told `room_closed` when
/// they come back within the resume window (before, the resume was refused and the page joined
/// afresh, as if nothing had happened); they may still join anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_away_when_its_room_is_closed_is_told_when_it_comes_back() -> Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let admin = app
        .user_with_role("root@example.com", AccountRole::Admin)
        .await?;
    let room = crate::rtc::interview(&app).await?;
    let (mut ivy, _) = crate::rtc::join(&app, &room.id, &room.interviewer).await?;
    let (cas, cas_joined) = crate::rtc::join(&app, &room.id, &room.candidate).await?;
    let resume_token = text(&cas_joined["resume_token"])?;
    // Her network drops: the room keeps her place for the resume window.
    drop(cas);
    let away = crate::rtc::next_of(&mut ivy, "participant_reconnecting").await?;
    assert_eq!(away["participant"], cas_joined["you"]["identity"], "{away}");
    let closed = app
        .post(
            &format!("/api/admin/rooms/{}/close", room.id),
            json!({}),
            Some(&admin.access),
        )
        .await?;
    assert_eq!(closed.status(), StatusCode::NO_CONTENT);
    let removed = crate::rtc::next_of(&mut ivy, "removed").await?;
    assert_eq!(removed["reason"], "room_closed");

    let resume = async |resume_token: &str| -> Result<serde_json::Value> {
        let token = crate::rtc::join_token(&app, &room.id, &room.candidate).await?;
        let mut socket = crate::rtc::connect(&app, &room.id).await?;
        crate::rtc::send(
            &mut socket,
            json!({ "type": "join", "version": 1, "token": token, "resume_token": resume_token }),
        )
        .await?;
        crate::rtc::next_of(&mut socket, "error").await
    };
    let told = resume(&resume_token).await?;
    assert_eq!(told["code"], "room_closed", "{told}");
    // Told again if she tries again (her first answer may have been lost); a token that is
    // not hers is refused as any stale one.
    let again = resume(&resume_token).await?;
    assert_eq!(again["code"], "room_closed", "{again}");
    let forged = resume("not-her-resume-token").await?;
    assert_eq!(forged["code"], "resume_refused", "{forged}");
    let (_back, rejoined) = crate::rtc::join(&app, &room.id, &room.candidate).await?;
    assert_eq!(rejoined["you"]["identity"], cas_joined["you"]["identity"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_recordings_sizes_on_sqlite_with_the_local_store() -> Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let root = app.settings.data.dir.join("recordings");
    recordings_with_their_sizes(&app, &root).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_recordings_sizes_on_postgres_with_s3() -> Result<()> {
    let s3 = S3Fs::start()?;
    let app = TestApp::spawn_with(Backend::Postgres, &s3.settings()).await?;
    recordings_with_their_sizes(&app, &s3.bucket()).await
}

/// Admin → Recordings: every recording with its interview, status and size measured in the
/// real store (kept once measured), one still recording with what it uploaded so far, the
/// storage all of them take; filtered by status; bad queries are clear errors; admins only.
async fn recordings_with_their_sizes(app: &TestApp, root: &std::path::Path) -> Result<()> {
    let admin = app
        .user_with_role("root@example.com", AccountRole::Admin)
        .await?;
    let scheduled = app
        .schedule(&admin.access, interview_body("cand@example.com"))
        .await?;
    let interview = text(&scheduled["interview"]["id"])?;
    let title = text(&scheduled["interview"]["title"])?;
    let mut db = app.db().await?;
    for (id, status, started_at) in [
        ("rec-complete", "complete", 1_000_i64),
        ("rec-live", "recording", 3_000),
        ("rec-failed", "failed", 2_000),
    ] {
        sqlx::query(
            "INSERT INTO recordings (id, interview_id, status, started_by, started_at, ended_at, \
             duration_ms, failure) VALUES ($1, $2, $3, 'someone', $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(&interview)
        .bind(status)
        .bind(started_at)
        .bind((status != "recording").then_some(started_at + 60))
        .bind((status != "recording").then_some(60_000_i64))
        .bind((status == "failed").then_some("the store refused the upload"))
        .execute(&mut db)
        .await?;
    }
    drop(db);
    let put = |key: &str, bytes: usize| -> Result<()> {
        let path = root.join(key);
        std::fs::create_dir_all(path.parent().context("a parent")?)?;
        std::fs::write(path, vec![7_u8; bytes])?;
        Ok(())
    };
    put("recordings/rec-complete/manifest.json", 300)?;
    put("recordings/rec-complete/t1/take.webm", 5_000)?;
    put("recordings/rec-live/t1/seg-00000.webm", 4_000)?;
    // Another recording's objects and proctoring snapshots are not this recording's.
    put("recordings/rec-complete-other/x.webm", 9_999)?;
    put("proctoring/snapshot.jpg", 1_234)?;

    let list = async |query: &str| -> Result<serde_json::Value> {
        expect_json(
            app.get(
                &format!("/api/admin/recordings{query}"),
                Some(&admin.access),
            )
            .await?,
            StatusCode::OK,
        )
        .await
    };
    let view = list("").await?;
    let ids: Vec<&str> = view["recordings"]
        .as_array()
        .context("recordings")?
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        ["rec-live", "rec-failed", "rec-complete"],
        "newest first"
    );
    let row = |id: &str| -> Result<serde_json::Value> {
        view["recordings"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["id"] == id))
            .cloned()
            .with_context(|| format!("{id} listed"))
    };
    let complete = row("rec-complete")?;
    assert_eq!(complete["size_bytes"], 5_300, "{complete}");
    assert_eq!(complete["interview_title"], title.as_str());
    assert_eq!(complete["stored_so_far"], serde_json::Value::Null);
    let live = row("rec-live")?;
    assert_eq!(live["size_bytes"], serde_json::Value::Null, "{live}");
    assert_eq!(live["stored_so_far"], 4_000);
    let failed = row("rec-failed")?;
    assert_eq!(failed["size_bytes"], 0, "{failed}");
    assert_eq!(failed["failure"], "the store refused the upload");
    assert_eq!(view["total"], 3);
    assert_eq!(view["stored_bytes"], 5_300);
    assert_eq!(view["unmeasured"], 1, "the one recording");

    // The measured size is kept: the store is not asked again for an ended recording.
    let mut db = app.db().await?;
    let (kept,): (Option<i64>,) =
        sqlx::query_as("SELECT size_bytes FROM recordings WHERE id = 'rec-complete'")
            .fetch_one(&mut db)
            .await?;
    assert_eq!(kept, Some(5_300));
    drop(db);
    put("recordings/rec-live/t1/seg-00001.webm", 1_000)?;
    // Bytes the store gains under an ended recording are not seen: its size was kept.
    put("recordings/rec-complete/t1/stray.webm", 777)?;
    let all = list("").await?;
    let complete = all["recordings"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["id"] == "rec-complete"))
        .context("listed")?;
    assert_eq!(
        complete["size_bytes"], 5_300,
        "not measured again: {complete}"
    );
    let again = list("?status=recording").await?;
    assert_eq!(again["recordings"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        again["recordings"][0]["stored_so_far"], 5_000,
        "measured live"
    );
    assert_eq!(again["stored_bytes"], 5_300, "totals are of all recordings");
    let page = list("?limit=1&offset=1").await?;
    assert_eq!(page["recordings"][0]["id"], "rec-failed");

    expect_error(
        app.get("/api/admin/recordings?status=lost", Some(&admin.access))
            .await?,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await?;
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=201", "limit"),
        ("?offset=-1", "offset"),
    ] {
        let error = expect_error(
            app.get(
                &format!("/api/admin/recordings{query}"),
                Some(&admin.access),
            )
            .await?,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await?;
        assert!(error.to_string().contains(field), "{query}: {error}");
    }
    app.register("nosy@example.com").await?;
    let nosy = app.login("nosy@example.com").await?;
    expect_error(
        app.get("/api/admin/recordings", Some(&nosy.access)).await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    Ok(())
}
