//! A candidate's data rights through the real server: an admin exports everything held about a
//! candidate, then erases it, and every row and every stored object is gone, on both databases
//! and both stores (the local one, and a real S3-compatible server, `s3s-fs`); scorecards keep
//! only their ratings; the audit log keeps that it happened, not the address; an interview going
//! on is not erased.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sightline_api::AccountRole;

use crate::helpers::{Backend, S3Fs, TestApp, expect_error, expect_json, interview_body, text};
use crate::rtc::{guest_sessions, join, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_is_exported_and_erased_on_sqlite_with_the_local_store() -> Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let root = app.settings.data.dir.join("recordings");
    exported_and_erased(&app, &root).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_is_exported_and_erased_on_postgres_with_s3() -> Result<()> {
    let s3 = S3Fs::start()?;
    let app = TestApp::spawn_with(Backend::Postgres, &s3.settings()).await?;
    exported_and_erased(&app, &s3.bucket()).await
}

/// Writes an object as the store keeps it under `root`.
fn put(root: &Path, key: &str, bytes: &[u8]) -> Result<()> {
    let path = root.join(key);
    std::fs::create_dir_all(path.parent().context("a parent")?)?;
    std::fs::write(path, bytes)?;
    Ok(())
}

/// Files under `root` whose path mentions `needle`.
fn files_naming(root: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().contains(needle) {
                found.push(path);
            }
        }
    }
    found
}

async fn count(app: &TestApp, sql: &'static str, value: &str) -> Result<i64> {
    let mut db = app.db().await?;
    let (n,): (i64,) = sqlx::query_as(sql).bind(value).fetch_one(&mut db).await?;
    Ok(n)
}

async fn exec(app: &TestApp, sql: &'static str, values: &[&str]) -> Result<()> {
    let mut db = app.db().await?;
    let mut query = sqlx::query(sql);
    for value in values {
        query = query.bind(*value);
    }
    query.execute(&mut db).await?;
    Ok(())
}

async fn exported_and_erased(app: &TestApp, root: &Path) -> Result<()> {
    let admin = app
        .user_with_role("ada@example.com", AccountRole::Admin)
        .await?;
    let ivy = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let mut body = interview_body("cas@example.com");
    // Where she lives, as the scheduler gave it for her email.
    body["participants"][0]["time_zone"] = json!("America/New_York");
    let created = app.schedule(&ivy.access, body).await?;
    let interview = text(&created["interview"]["id"])?;
    let cas = guest_sessions(app, &created)
        .await?
        .into_iter()
        .next()
        .context("her session")?;
    let candidate = text(&created["invites"][0]["participant_id"])?;
    // She also has an account under the same address.
    app.register("cas@example.com").await?;
    // She pairs her phone and takes part: a recording of her (with its objects), a proctoring
    // observation with its snapshot, consents, her code and a run, the interviewer's notes and
    // scorecard about her, an email to her and a webhook delivery naming her.
    expect_json(
        app.post(
            &format!("/api/interviews/{interview}/phone-pairings"),
            json!({}),
            Some(&cas),
        )
        .await?,
        StatusCode::CREATED,
    )
    .await?;
    let recording = "rec-of-casey";
    let event = "event-of-casey";
    exec(
        app,
        "INSERT INTO recordings (id, interview_id, status, started_by, started_at, ended_at, \
         duration_ms, announced_at) VALUES ($1, $2, 'complete', 'x', 1, 2, 1000, 2)",
        &[recording, &interview],
    )
    .await?;
    put(root, &format!("recordings/{recording}/cam.webm"), b"video")?;
    put(
        root,
        &format!("recordings/{recording}/manifest.json"),
        b"{}",
    )?;
    exec(
        app,
        "INSERT INTO proctoring_events (id, interview_id, participant_id, track_id, source, kind, \
         severity, started_at_ms, detector, thresholds, snapshots) \
         VALUES ($1, $2, $3, 't1', 'camera', 'face_absent', 'review', 1000, 'd', '{}', 1)",
        &[event, &interview, &candidate],
    )
    .await?;
    put(
        root,
        &format!("proctoring/{interview}/{event}/0.jpg"),
        b"jpeg",
    )?;
    for sql in [
        "INSERT INTO recording_consents (interview_id, participant_id, consented_at) \
         VALUES ($1, $2, 1)",
        "INSERT INTO proctoring_consents (interview_id, participant_id, consented_at) \
         VALUES ($1, $2, 1)",
    ] {
        exec(app, sql, &[&interview, &candidate]).await?;
    }
    exec(
        app,
        "INSERT INTO workspace_updates (interview_id, seq, at_ms, participant_id, update_b64) \
         VALUES ($1, 1, 1, $2, 'AA==')",
        &[&interview, &candidate],
    )
    .await?;
    exec(
        app,
        "INSERT INTO code_runs (id, interview_id, participant_id, requested_by, language, source, \
         stdin, status, created_at_ms) VALUES ('run-1', $1, $2, 'Casey', 'python', \
         'print(\"casey\")', '', 'finished', 1)",
        &[&interview, &candidate],
    )
    .await?;
    let shown = expect_json(
        app.get(&format!("/api/interviews/{interview}"), Some(&ivy.access))
            .await?,
        StatusCode::OK,
    )
    .await?;
    let ivy_participant = shown["participants"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["role"] == "interviewer"))
        .map(|p| text(&p["id"]))
        .context("ivy's participant row")??;
    exec(
        app,
        "INSERT INTO interview_notes (participant_id, interview_id, body, updated_at) \
         VALUES ($1, $2, 'Casey hesitated on recursion', 1)",
        &[&ivy_participant, &interview],
    )
    .await?;
    let mut db = app.db().await?;
    let (template,): (String,) = sqlx::query_as("SELECT id FROM scorecard_templates LIMIT 1")
        .fetch_one(&mut db)
        .await?;
    drop(db);
    exec(
        app,
        "INSERT INTO scorecards (id, interview_id, participant_id, template_id, template_name, \
         criteria, ratings, recommendation, summary, submitted_at, updated_at) VALUES \
         ('card-1', $1, $2, $3, 'Coding', '[]', '[{\"score\":3,\"comment\":\"Casey was clear\"}]', \
         'yes', 'Casey did well', 1, 1)",
        &[&interview, &ivy_participant, &template],
    )
    .await?;
    exec(
        app,
        "INSERT INTO outbox (id, kind, recipient, subject, message, created_at, next_attempt_at) \
         VALUES ('mail-1', 'interview_invitation', 'cas@example.com', 's', 'm', 1, 1)",
        &[],
    )
    .await?;
    exec(
        app,
        "INSERT INTO webhook_endpoints (id, url, events, created_by, created_at) \
         VALUES ('hook-1', 'https://hooks.example.com/x', 'participant.joined', 'x', 1)",
        &[],
    )
    .await?;
    exec(
        app,
        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event, body, created_at, \
         next_attempt_at) VALUES ('d-1', 'hook-1', 'e-1', 'participant.joined', $1, 1, 1)",
        &[&format!("{{\"participant\":\"{candidate}\"}}")],
    )
    .await?;

    // Only admins, and only for someone Sightline knows.
    let ask = json!({ "email": "Cas@Example.com" });
    expect_error(
        app.post(
            "/api/admin/candidates/export",
            ask.clone(),
            Some(&ivy.access),
        )
        .await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    expect_error(
        app.post(
            "/api/admin/candidates/export",
            json!({ "email": "nobody@example.com" }),
            Some(&admin.access),
        )
        .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;

    // The export holds all of it.
    let export = expect_json(
        app.post(
            "/api/admin/candidates/export",
            ask.clone(),
            Some(&admin.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    let mine = &export["interviews"][0];
    assert_eq!(mine["interview"]["id"], interview.as_str(), "{export}");
    assert_eq!(mine["participant"]["display_name"], "Casey Candidate");
    assert_eq!(mine["participant"]["time_zone"], "America/New_York");
    assert_eq!(
        mine["recordings"][0]["view"],
        format!("/api/recordings/{recording}")
    );
    assert_eq!(mine["proctoring_events"][0]["kind"], "face_absent");
    assert_eq!(mine["code_runs"][0]["source"], "print(\"casey\")");
    assert_eq!(mine["scorecards"][0]["summary"], "Casey did well");
    assert!(mine["recording_consent_at"].is_i64() && mine["proctoring_consent_at"].is_i64());
    assert_eq!(mine["phone_pairings"].as_array().map(Vec::len), Some(1));
    assert!(
        mine["invites"][0]["used_at"].is_i64(),
        "her redeemed invite: {mine}"
    );

    // An interview with two candidates is theirs together: not erased for one.
    let mut shared = interview_body("pat@example.com");
    shared["participants"] = json!([
        { "email": "pat@example.com", "display_name": "Pat", "role": "candidate" },
        { "email": "sam@example.com", "display_name": "Sam", "role": "candidate" },
    ]);
    app.schedule(&ivy.access, shared).await?;
    expect_error(
        app.post(
            "/api/admin/candidates/erase",
            json!({ "email": "pat@example.com" }),
            Some(&admin.access),
        )
        .await?,
        StatusCode::CONFLICT,
        "shared_interview",
    )
    .await?;

    // Not while her interview is going on.
    let (mut room, _) = join(app, &interview, &ivy.access).await?;
    expect_error(
        app.post(
            "/api/admin/candidates/erase",
            ask.clone(),
            Some(&admin.access),
        )
        .await?,
        StatusCode::CONFLICT,
        "interview_in_progress",
    )
    .await?;
    send(&mut room, json!({ "type": "leave" })).await?;
    drop(room);
    let deadline = Instant::now() + Duration::from_secs(20);
    let erased = loop {
        let answer = app
            .post(
                "/api/admin/candidates/erase",
                ask.clone(),
                Some(&admin.access),
            )
            .await?;
        if answer.status() == StatusCode::OK {
            break answer.json::<Value>().await?;
        }
        if Instant::now() > deadline {
            bail!("never erased: {}", answer.text().await?);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(erased["interviews"], 1, "{erased}");
    assert_eq!(erased["recordings"], 1, "{erased}");
    assert_eq!(erased["proctoring_events"], 1, "{erased}");
    assert_eq!(erased["scorecards_emptied"], 1, "{erased}");
    assert_eq!(erased["account_deleted"], true, "{erased}");
    assert_eq!(
        count(
            app,
            "SELECT COUNT(*) FROM users WHERE email = $1",
            "cas@example.com"
        )
        .await?,
        0,
        "her account"
    );

    // Every object and every row about her is gone.
    assert!(
        files_naming(root, recording).is_empty(),
        "recording objects left"
    );
    assert!(files_naming(root, event).is_empty(), "snapshot left");
    for (sql, key) in [
        (
            "SELECT COUNT(*) FROM recordings WHERE interview_id = $1",
            &interview,
        ),
        (
            "SELECT COUNT(*) FROM proctoring_events WHERE interview_id = $1",
            &interview,
        ),
        (
            "SELECT COUNT(*) FROM code_runs WHERE interview_id = $1",
            &interview,
        ),
        (
            "SELECT COUNT(*) FROM workspace_updates WHERE interview_id = $1",
            &interview,
        ),
        (
            "SELECT COUNT(*) FROM interview_notes WHERE interview_id = $1",
            &interview,
        ),
        (
            "SELECT COUNT(*) FROM invites WHERE participant_id = $1",
            &candidate,
        ),
        (
            "SELECT COUNT(*) FROM refresh_tokens WHERE participant_id = $1",
            &candidate,
        ),
        (
            "SELECT COUNT(*) FROM phone_pairings WHERE participant_id = $1",
            &candidate,
        ),
        (
            "SELECT COUNT(*) FROM recording_consents WHERE participant_id = $1",
            &candidate,
        ),
        (
            "SELECT COUNT(*) FROM proctoring_consents WHERE participant_id = $1",
            &candidate,
        ),
        (
            "SELECT COUNT(*) FROM webhook_deliveries WHERE id = 'd-1' AND $1 <> ''",
            &candidate,
        ),
        (
            "SELECT COUNT(*) FROM outbox WHERE recipient = $1",
            &"cas@example.com".to_owned(),
        ),
        (
            "SELECT COUNT(*) FROM interview_participants WHERE email = $1",
            &"cas@example.com".to_owned(),
        ),
    ] {
        assert_eq!(count(app, sql, key).await?, 0, "{sql}");
    }
    let mut db = app.db().await?;
    let (name, zone, summary, ratings): (String, Option<String>, String, String) = sqlx::query_as(
        "SELECT p.display_name, p.time_zone, s.summary, s.ratings \
             FROM interview_participants p, scorecards s WHERE p.id = $1 AND s.id = 'card-1'",
    )
    .bind(&candidate)
    .fetch_one(&mut db)
    .await?;
    assert_eq!(name, "Erased candidate");
    assert_eq!(zone, None, "where she lives goes too");
    assert_eq!(summary, "");
    assert!(
        ratings.contains("\"score\":3") && !ratings.contains("Casey"),
        "{ratings}"
    );
    // Her session is over; the audit log says it happened, never her address.
    expect_error(
        app.get(&format!("/api/interviews/{interview}"), Some(&cas))
            .await?,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await?;
    let audit = expect_json(
        app.get("/api/admin/audit", Some(&admin.access)).await?,
        StatusCode::OK,
    )
    .await?;
    let entries = audit.as_array().context("entries")?;
    assert!(entries.iter().any(|e| e["action"] == "candidate.erased"));
    assert!(entries.iter().any(|e| e["action"] == "candidate.exported"));
    assert!(!audit.to_string().contains("cas@example.com"), "{audit}");
    // Asked again, there is nothing about this address.
    expect_error(
        app.post("/api/admin/candidates/export", ask, Some(&admin.access))
            .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;
    Ok(())
}
