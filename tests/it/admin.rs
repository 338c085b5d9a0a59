//! Role management and deactivation by admins, the audit log, and the rooms that are up now.

use anyhow::{Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sightline_api::AccountRole;

use crate::helpers::{Backend, TestApp, expect_error, expect_json, session_from, text};
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
