//! Recording an interview through the real server, with real media (Opus and VP8 from the
//! test kit) into the local store: consent before anything is recorded, a participant who
//! starts publishing late placed where they started, every track a seekable file of the right
//! codec and length, served with HTTP ranges under short-lived URLs, and only to the
//! interview's interviewers, assigned reviewers and admins.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sightline_api::AccountRole;
use sightline_testkit::{MediaPublisher, UdpPeer, discover, media};
use str0m::change::SdpAnswer;

use crate::helpers::{
    Backend, Session, TestApp, expect_error, expect_json, invite_token, session_from, text,
};
use crate::on_both_backends;
use crate::rtc::{Socket, drain, guest_sessions, interview, join, next_of, send};
use crate::webhooks::{Answer, Receiver, register};

on_both_backends!(
    recordings_past_their_retention_are_deleted,
    an_interview_set_to_record_automatically_starts_once_everyone_agreed,
);

/// When the interviewer starts publishing, after the candidate.
const LATE: Duration = Duration::from_secs(4);
/// How long the candidate's media is recorded.
const RECORDED: Duration = Duration::from_secs(8);

pub(crate) struct Publisher {
    socket: Socket,
    media: MediaPublisher,
    events: Vec<str0m::Event>,
    /// When its connection was first seen up: none of its media left before.
    connected_at: Option<Instant>,
}

impl Publisher {
    pub(crate) async fn start(mut socket: Socket) -> Result<Publisher> {
        let (mut media, offer) = MediaPublisher::new(false).await?;
        send(
            &mut socket,
            json!({ "type": "publish_offer", "sdp": offer.to_sdp_string(), "tracks": [
                { "mid": media.audio.to_string(), "source": "microphone" },
                { "mid": media.video.to_string(), "source": "camera" } ] }),
        )
        .await?;
        let answer = next_of(&mut socket, "publish_answer").await?;
        media.accept_answer(SdpAnswer::from_sdp_string(&text(&answer["sdp"])?)?)?;
        Ok(Publisher {
            socket,
            media,
            events: Vec::new(),
            connected_at: None,
        })
    }

    pub(crate) async fn step(&mut self) -> Result<()> {
        if self.connected_at.is_some() {
            self.media.send_due(media()?, Instant::now())?;
        }
        self.media.peer.step(&mut self.events).await?;
        if UdpPeer::connected(&self.events) {
            self.connected_at.get_or_insert_with(Instant::now);
        }
        // Keyframe requests are answered at once, as a browser's encoder does.
        for event in self.events.drain(..) {
            self.media.handle_event(&event);
        }
        drain(&mut self.socket).await?;
        Ok(())
    }
}

async fn wait_for_status(socket: &mut Socket, state: &str) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let message = next_of(socket, "recording").await?;
        if message["recording"]["state"] == state {
            return Ok(message["recording"].clone());
        }
    }
    bail!("recording never became {state}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interview_is_recorded_after_consent_and_watched_by_its_reviewers() -> Result<()> {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("webhooks.allow_private_targets", json!(true))],
    )
    .await?;
    let ivy = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let rex = app
        .user_with_role("rex@example.com", AccountRole::Reviewer)
        .await?;
    let outsider = app
        .user_with_role("olga@example.com", AccountRole::Reviewer)
        .await?;
    let admin = app
        .user_with_role("ada@example.com", AccountRole::Admin)
        .await?;
    // Another system follows recordings through a webhook.
    let hook = Receiver::start(Answer::FailFirst(0)).await?;
    let (_, hook_secret) = register(
        &app,
        &admin.access,
        &hook.url,
        &[
            "recording.started",
            "recording.finished",
            "recording.failed",
        ],
    )
    .await?;
    let start = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_mins(5))?;
    let created = app
        .schedule(
            &ivy.access,
            json!({ "title": "Recorded round", "scheduled_start": start.to_string(),
                "duration_minutes": 60, "time_zone": "UTC", "participants": [
                    { "email": "cas@example.com", "display_name": "Casey Candidate", "role": "candidate" },
                    { "email": "rex@example.com", "role": "reviewer" } ] }),
        )
        .await?;
    let interview = text(&created["interview"]["id"])?;
    let cas: Session = session_from(
        app.post(
            "/api/invites/redeem",
            json!({ "token": invite_token(&text(&created["invites"][0]["url"])?)? }),
            None,
        )
        .await?,
    )
    .await?;

    let (mut ivy_socket, _) = join(&app, &interview, &ivy.access).await?;
    let (cas_socket, cas_joined) = join(&app, &interview, &cas.access).await?;
    let cas_id = text(&cas_joined["you"]["identity"])?;
    let mut candidate = Publisher::start(cas_socket).await?;

    // Starting waits for the candidate's consent; the starter has acknowledged by starting.
    // The recording's clock starts after this.
    let requested = Instant::now();
    let started = app
        .post(
            &format!("/api/interviews/{interview}/recording/start"),
            json!({}),
            Some(&ivy.access),
        )
        .await?;
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let waiting = wait_for_status(&mut ivy_socket, "waiting_for_consent").await?;
    assert_eq!(waiting["needs_consent"], json!([cas_id]));
    expect_error(
        app.post(
            &format!("/api/interviews/{interview}/recording/start"),
            json!({}),
            Some(&cas.access),
        )
        .await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    let consented = app
        .post(
            &format!("/api/interviews/{interview}/recording/consent"),
            json!({}),
            Some(&cas.access),
        )
        .await?;
    assert_eq!(consented.status(), StatusCode::NO_CONTENT);
    wait_for_status(&mut ivy_socket, "on").await?;

    // The candidate's media is recorded from now; the interviewer's from LATE on.
    let began = Instant::now();
    let mut interviewer: Option<Publisher> = None;
    let mut ivy_socket = Some(ivy_socket);
    while began.elapsed() < RECORDED {
        candidate.step().await?;
        if began.elapsed() >= LATE && interviewer.is_none() {
            let socket = ivy_socket.take().context("the interviewer's socket")?;
            interviewer = Some(Publisher::start(socket).await?);
        }
        if let Some(interviewer) = interviewer.as_mut() {
            interviewer.step().await?;
        }
    }
    let stopped = app
        .post(
            &format!("/api/interviews/{interview}/recording/stop"),
            json!({}),
            Some(&ivy.access),
        )
        .await?;
    assert_eq!(stopped.status(), StatusCode::ACCEPTED);

    // It finishes in the background.
    let list_path = format!("/api/interviews/{interview}/recordings");
    let deadline = Instant::now() + Duration::from_secs(60);
    let (recording, complete_at) = loop {
        let list = expect_json(
            app.get(&list_path, Some(&ivy.access)).await?,
            StatusCode::OK,
        )
        .await?;
        if list[0]["status"] == "complete" {
            // Nothing was recorded after this.
            break (list[0].clone(), Instant::now());
        }
        if Instant::now() > deadline {
            bail!("the recording did not complete: {list}");
        }
        candidate.step().await?;
    };
    let id = text(&recording["id"])?;
    assert!(
        recording["duration_ms"].as_i64().unwrap_or(0) >= 7_000,
        "{recording}"
    );
    // The webhook heard it begin and end, once each, signed.
    for (event, status) in [
        ("recording.started", "recording"),
        ("recording.finished", "complete"),
    ] {
        let told = hook.delivered(event, |r| r.event == event).await?;
        assert!(told.signed_with(&hook_secret));
        let data = &told.json()?["data"];
        assert_eq!(data["recording_id"], id.as_str(), "{data}");
        assert_eq!(data["interview_id"], interview.as_str(), "{data}");
        assert_eq!(data["status"], status, "{data}");
    }
    // Past the sender's poll, nothing more came.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events: Vec<String> = hook.received().into_iter().map(|r| r.event).collect();
    assert_eq!(events.len(), 2, "{events:?}");

    // Candidates and reviewers not assigned see nothing; the assigned reviewer does.
    for stranger in [&cas.access, &outsider.access] {
        expect_error(
            app.get(&list_path, Some(stranger)).await?,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await?;
        expect_error(
            app.get(&format!("/api/recordings/{id}"), Some(stranger))
                .await?,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await?;
    }
    let view = expect_json(
        app.get(&format!("/api/recordings/{id}"), Some(&rex.access))
            .await?,
        StatusCode::OK,
    )
    .await?;
    let manifest = &view["manifest"];
    assert_eq!(manifest["status"], "complete");
    let tracks = manifest["tracks"].as_array().context("tracks")?;
    assert_eq!(
        tracks.len(),
        4,
        "two people, camera and microphone each: {manifest}"
    );
    // Each camera's take starts when its media reached the recording, on the recording's clock:
    // not before its connection was up (the clock started before `began`; a millisecond for
    // rounding), not after the recording was complete (the clock started after `requested`).
    // So the late publisher's starts about LATE in, not at the start.
    let interviewer = interviewer.context("the interviewer published")?;
    for (who, is_cas, publisher) in [
        ("candidate", true, &candidate),
        ("interviewer", false, &interviewer),
    ] {
        let start_ms = tracks
            .iter()
            .find(|t| (t["participant"] == cas_id.as_str()) == is_cas && t["source"] == "camera")
            .and_then(|t| t["start_ms"].as_i64())
            .with_context(|| format!("the {who}'s camera: {manifest}"))?;
        let connected = publisher.connected_at.context("connected")?;
        let least = connected.saturating_duration_since(began).as_millis() as i64 - 1;
        let most = complete_at.duration_since(requested).as_millis() as i64;
        assert!(
            least <= start_ms && start_ms <= most,
            "the {who}'s take starts on the recording's clock between {least} ms (their \
             connection up) and {most} ms (the recording complete): {start_ms} ms"
        );
    }

    // Each take is a seekable file with its codec and length, behind a short-lived URL that
    // serves ranges.
    let dir = tempfile::tempdir()?;
    for track in tracks {
        let take = text(&track["id"])?;
        let url = text(&view["media"][&take])?;
        let ranged = app
            .client
            .get(app.url(&url))
            .header("range", "bytes=0-99")
            .send()
            .await?;
        assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
        let head = ranged.bytes().await?;
        assert_eq!(head.len(), 100);
        assert_eq!(
            &head[..4],
            &[0x1A, 0x45, 0xDF, 0xA3],
            "a Matroska/WebM file"
        );
        let whole = app.client.get(app.url(&url)).send().await?;
        assert_eq!(whole.status(), StatusCode::OK);
        let path = dir.path().join(format!("{take}.webm"));
        std::fs::write(&path, whole.bytes().await?)?;
        let found = discover(&path)?;
        let (duration, text) = (found.duration.as_secs_f64(), found.report);
        assert!(found.seekable, "{text}");
        let codec = if track["kind"] == "video" {
            "VP8"
        } else {
            "Opus"
        };
        assert!(text.contains(codec), "{codec}: {text}");
        let expected = (track["end_ms"].as_i64().unwrap_or(0)
            - track["start_ms"].as_i64().unwrap_or(0)) as f64
            / 1000.0;
        assert!(
            (duration - expected).abs() < 1.0,
            "{take}: {duration} s, expected {expected} s"
        );
        // The token opens this take only.
        let other = url.replacen(&format!("/media/{take}?"), "/media/t999?", 1);
        expect_error(
            app.client.get(app.url(&other)).send().await?,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await?;
    }
    let forged = format!("/api/recordings/{id}/media/t1?token=not-a-token");
    expect_error(
        app.client.get(app.url(&forged)).send().await?,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await?;

    // Admin → Recordings: the real recording, complete, with what its files take in the store.
    let stored = {
        let mut bytes = 0_u64;
        let mut dirs = vec![
            app.settings
                .data
                .dir
                .join("recordings/recordings")
                .join(&id),
        ];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    dirs.push(entry.path());
                } else {
                    bytes += entry.metadata()?.len();
                }
            }
        }
        bytes
    };
    assert!(stored > 10_000, "media was stored: {stored} bytes");
    let listed = expect_json(
        app.get("/api/admin/recordings", Some(&admin.access))
            .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(listed["recordings"][0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed["recordings"][0]["status"], "complete", "{listed}");
    assert_eq!(listed["recordings"][0]["size_bytes"], stored, "{listed}");
    assert_eq!(listed["stored_bytes"], stored, "{listed}");

    // Views are audited; an admin deletes it all.
    let audit = expect_json(
        app.get("/api/admin/audit", Some(&admin.access)).await?,
        StatusCode::OK,
    )
    .await?;
    assert!(
        audit.as_array().is_some_and(|entries| entries
            .iter()
            .any(|e| e["action"] == "recording.viewed" && e["target"] == id.as_str())),
        "{audit}"
    );
    expect_error(
        app.request(
            Method::DELETE,
            &format!("/api/recordings/{id}"),
            None,
            Some(&ivy.access),
        )
        .await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    let deleted = app
        .request(
            Method::DELETE,
            &format!("/api/recordings/{id}"),
            None,
            Some(&admin.access),
        )
        .await?;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    expect_error(
        app.get(&format!("/api/recordings/{id}"), Some(&rex.access))
            .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;
    let objects = app
        .settings
        .data
        .dir
        .join("recordings/recordings")
        .join(&id);
    assert!(!objects.exists(), "every object deleted");
    Ok(())
}

/// The retention job runs when the server starts (then hourly): a recording that ended longer
/// ago than `recording.retention_days` loses its objects and its row; a newer one stays.
async fn recordings_past_their_retention_are_deleted(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let room = interview(&app).await?;
    let now = jiff::Timestamp::now().as_second();
    let day = 86_400;
    let mut db = app.db().await?;
    for (id, ended) in [
        ("old-recording", now - 91 * day),
        ("new-recording", now - day),
    ] {
        sqlx::query(
            "INSERT INTO recordings (id, interview_id, status, started_by, started_at, ended_at, \
             duration_ms) VALUES ($1, $2, 'complete', 'someone', $3, $4, 1000)",
        )
        .bind(id)
        .bind(&room.id)
        .bind(ended - 60)
        .bind(ended)
        .execute(&mut db)
        .await?;
        let dir = app.settings.data.dir.join("recordings/recordings").join(id);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("manifest.json"), b"{}")?;
        std::fs::write(dir.join("t1.webm"), b"media")?;
    }
    drop(db);
    let objects = app.settings.data.dir.join("recordings/recordings");
    let app = app.restart().await?;
    let list_path = format!("/api/interviews/{}/recordings", room.id);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = expect_json(
            app.get(&list_path, Some(&room.interviewer)).await?,
            StatusCode::OK,
        )
        .await?;
        let ids: Vec<&str> = list
            .as_array()
            .map(|rows| rows.iter().filter_map(|r| r["id"].as_str()).collect())
            .unwrap_or_default();
        if ids == ["new-recording"] {
            break;
        }
        if Instant::now() > deadline {
            bail!("retention did not run: {list}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !objects.join("old-recording").exists(),
        "its objects are gone"
    );
    assert!(
        objects.join("new-recording/t1.webm").exists(),
        "the newer one is kept"
    );
    Ok(())
}

/// With "record automatically", the first person about to enter starts the wait for consent;
/// the recording begins once everyone present agreed, without anyone pressing "Start".
async fn an_interview_set_to_record_automatically_starts_once_everyone_agreed(
    backend: Backend,
) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let room = interview(&app).await?;
    let path = format!("/api/interviews/{}/recording", room.id);
    let set = |token: String, auto: bool| {
        let path = path.clone();
        let app = &app;
        async move {
            app.request(
                Method::PUT,
                &path,
                Some(json!({ "auto": auto })),
                Some(&token),
            )
            .await
        }
    };
    expect_error(
        set(room.candidate.clone(), true).await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    let settings = expect_json(set(room.interviewer.clone(), true).await?, StatusCode::OK).await?;
    assert_eq!(settings, json!({ "auto": true, "active": false }));

    let (mut ivy, joined) = join(&app, &room.id, &room.interviewer).await?;
    let ivy_id = text(&joined["you"]["identity"])?;
    let waiting = wait_for_status(&mut ivy, "waiting_for_consent").await?;
    assert_eq!(
        waiting["needs_consent"],
        json!([ivy_id]),
        "nobody agreed yet"
    );
    let (mut cas, _) = join(&app, &room.id, &room.candidate).await?;
    for token in [&room.interviewer, &room.candidate] {
        let consented = app
            .post(
                &format!("/api/interviews/{}/recording/consent", room.id),
                json!({}),
                Some(token),
            )
            .await?;
        assert_eq!(consented.status(), StatusCode::NO_CONTENT);
    }
    wait_for_status(&mut cas, "on").await?;
    let settings = expect_json(
        app.get(&path, Some(&room.interviewer)).await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(settings, json!({ "auto": true, "active": true }));
    let list = expect_json(
        app.get(
            &format!("/api/interviews/{}/recordings", room.id),
            Some(&room.interviewer),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(list[0]["status"], "recording");
    // A live recording cannot be deleted (it would keep writing objects nobody owns).
    let admin = app
        .user_with_role("ada@example.com", AccountRole::Admin)
        .await?;
    let live = text(&list[0]["id"])?;
    expect_error(
        app.request(
            Method::DELETE,
            &format!("/api/recordings/{live}"),
            None,
            Some(&admin.access),
        )
        .await?,
        StatusCode::CONFLICT,
        "still_recording",
    )
    .await?;
    let stop = format!("/api/interviews/{}/recording/stop", room.id);
    let stopped = app.post(&stop, json!({}), Some(&room.interviewer)).await?;
    assert_eq!(stopped.status(), StatusCode::ACCEPTED);
    wait_for_status(&mut ivy, "off").await?;
    // Started again at once (while the first one may still be finishing), a new one begins.
    let start = format!("/api/interviews/{}/recording/start", room.id);
    let again = app.post(&start, json!({}), Some(&room.interviewer)).await?;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    wait_for_status(&mut ivy, "on").await?;
    let list = expect_json(
        app.get(
            &format!("/api/interviews/{}/recordings", room.id),
            Some(&room.interviewer),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    let stopped = app.post(&stop, json!({}), Some(&room.interviewer)).await?;
    assert_eq!(stopped.status(), StatusCode::ACCEPTED);
    Ok(())
}

/// Polls the interview's recordings (stepping the candidate's media meanwhile) until the newest
/// one satisfies `done`; returns it.
async fn newest_recording_until(
    app: &TestApp,
    interview: &str,
    access: &str,
    candidate: &mut Publisher,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let path = format!("/api/interviews/{interview}/recordings");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = expect_json(app.get(&path, Some(access)).await?, StatusCode::OK).await?;
        if done(&list[0]) {
            return Ok(list[0].clone());
        }
        if Instant::now() > deadline {
            bail!("the recording never was {what}: {list}");
        }
        candidate.step().await?;
    }
}

/// A recording stopped while its store does not answer is listed as waiting for storage, with
/// the store's error (not as "recording"), admins see the outage and the recording waiting, and
/// once the store is back it completes with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_waiting_for_storage_says_so_and_completes_when_storage_is_back() -> Result<()>
{
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let ivy = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let ada = app
        .user_with_role("ada@example.com", AccountRole::Admin)
        .await?;
    let start = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_mins(5))?;
    let created = app
        .schedule(
            &ivy.access,
            json!({ "title": "Storage outage", "scheduled_start": start.to_string(),
                "duration_minutes": 60, "time_zone": "UTC", "participants": [
                    { "email": "cas@example.com", "display_name": "Casey Candidate", "role": "candidate" } ] }),
        )
        .await?;
    let interview = text(&created["interview"]["id"])?;
    let cas = guest_sessions(&app, &created)
        .await?
        .pop()
        .context("the candidate's session")?;
    let (mut ivy_socket, _) = join(&app, &interview, &ivy.access).await?;
    let (cas_socket, _) = join(&app, &interview, &cas).await?;
    let mut candidate = Publisher::start(cas_socket).await?;
    let recording_path = format!("/api/interviews/{interview}/recording");
    app.post(
        &format!("{recording_path}/start"),
        json!({}),
        Some(&ivy.access),
    )
    .await?;
    app.post(&format!("{recording_path}/consent"), json!({}), Some(&cas))
        .await?;
    wait_for_status(&mut ivy_socket, "on").await?;
    let live = newest_recording_until(
        &app,
        &interview,
        &ivy.access,
        &mut candidate,
        "recording",
        |r| r["progress"]["state"] == "recording",
    )
    .await?;
    assert_eq!(live["progress"]["storage"], Value::Null, "{live}");
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(3) {
        candidate.step().await?;
    }

    // The local store's directory becomes a file: every write fails, as a broken disk or an
    // unreachable bucket would.
    let store_dir = app.settings.data.dir.join("recordings");
    let away = app.settings.data.dir.join("recordings.away");
    std::fs::create_dir_all(&store_dir)?;
    std::fs::rename(&store_dir, &away)?;
    std::fs::write(&store_dir, b"not a directory")?;
    app.post(
        &format!("{recording_path}/stop"),
        json!({}),
        Some(&ivy.access),
    )
    .await?;
    let waiting = newest_recording_until(
        &app,
        &interview,
        &ivy.access,
        &mut candidate,
        "waiting for storage",
        |r| r["progress"]["state"] == "finishing" && r["progress"]["storage"].is_object(),
    )
    .await?;
    assert_eq!(waiting["status"], "recording", "{waiting}");
    assert!(
        waiting["progress"]["storage"]["failures"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "{waiting}"
    );
    // The store's own error (paths, endpoints) is for admins; the interviewer gets a sentence.
    assert_eq!(
        waiting["progress"]["storage"]["error"], "the recording storage does not answer",
        "{waiting}"
    );
    let admin_view = expect_json(
        app.get("/api/admin/storage", Some(&ada.access)).await?,
        StatusCode::OK,
    )
    .await?;
    assert!(admin_view["outage"].is_object(), "{admin_view}");
    assert_ne!(
        admin_view["outage"]["error"], "the recording storage does not answer",
        "admins see the store's error: {admin_view}"
    );
    assert_eq!(
        admin_view["waiting"][0]["id"], waiting["id"],
        "{admin_view}"
    );
    expect_error(
        app.get("/api/admin/storage", Some(&ivy.access)).await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;

    // Storage comes back: the waiting segments are stored and the recording completes.
    std::fs::remove_file(&store_dir)?;
    std::fs::rename(&away, &store_dir)?;
    let complete = newest_recording_until(
        &app,
        &interview,
        &ivy.access,
        &mut candidate,
        "complete",
        |r| r["status"] == "complete",
    )
    .await?;
    assert_eq!(complete["progress"], Value::Null, "{complete}");
    assert!(
        complete["duration_ms"].as_i64().unwrap_or(0) >= 3_000,
        "{complete}"
    );
    let admin_view = expect_json(
        app.get("/api/admin/storage", Some(&ada.access)).await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(admin_view["outage"], Value::Null, "{admin_view}");
    assert_eq!(admin_view["waiting"], json!([]), "{admin_view}");
    Ok(())
}

/// Nothing of someone who has not agreed is in the recording: an observer who comes while it
/// runs is not named in it, nor is what they write before they acknowledge; from their
/// acknowledgement on they are (with a join at that moment) and so is their chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_who_has_not_agreed_is_not_in_the_recording() -> Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let ivy = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let olly = app
        .user_with_role("olly@example.com", AccountRole::Interviewer)
        .await?;
    let start = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_mins(5))?;
    let created = app
        .schedule(
            &ivy.access,
            json!({ "title": "Observed round", "scheduled_start": start.to_string(),
                "duration_minutes": 60, "time_zone": "UTC", "participants": [
                    { "email": "cas@example.com", "display_name": "Casey Candidate", "role": "candidate" },
                    { "email": "olly@example.com", "role": "observer" } ] }),
        )
        .await?;
    let interview = text(&created["interview"]["id"])?;
    let cas = guest_sessions(&app, &created)
        .await?
        .into_iter()
        .next()
        .context("her session")?;
    let (mut ivy_socket, _) = join(&app, &interview, &ivy.access).await?;
    let (cas_socket, _) = join(&app, &interview, &cas).await?;
    let mut candidate = Publisher::start(cas_socket).await?;
    let started = app
        .post(
            &format!("/api/interviews/{interview}/recording/start"),
            json!({}),
            Some(&ivy.access),
        )
        .await?;
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let consented = app
        .post(
            &format!("/api/interviews/{interview}/recording/consent"),
            json!({}),
            Some(&cas),
        )
        .await?;
    assert_eq!(consented.status(), StatusCode::NO_CONTENT);
    wait_for_status(&mut ivy_socket, "on").await?;

    // The observer comes in while it records and writes before acknowledging.
    let (mut olly_socket, olly_joined) = join(&app, &interview, &olly.access).await?;
    let olly_id = text(&olly_joined["you"]["identity"])?;
    for (words, agree_after) in [("before agreeing", true), ("after agreeing", false)] {
        send(&mut olly_socket, json!({ "type": "chat", "text": words })).await?;
        // Everyone in the room (the recorder too) has it once the interviewer does.
        loop {
            let chat = next_of(&mut ivy_socket, "chat").await?;
            if chat["text"] == words {
                break;
            }
        }
        candidate.step().await?;
        if agree_after {
            let acknowledged = app
                .post(
                    &format!("/api/interviews/{interview}/recording/consent"),
                    json!({}),
                    Some(&olly.access),
                )
                .await?;
            assert_eq!(acknowledged.status(), StatusCode::NO_CONTENT);
            let began = Instant::now();
            while began.elapsed() < Duration::from_secs(1) {
                candidate.step().await?;
            }
        }
    }
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(2) {
        candidate.step().await?;
    }
    let stopped = app
        .post(
            &format!("/api/interviews/{interview}/recording/stop"),
            json!({}),
            Some(&ivy.access),
        )
        .await?;
    assert_eq!(stopped.status(), StatusCode::ACCEPTED);
    let finished = newest_recording_until(
        &app,
        &interview,
        &ivy.access,
        &mut candidate,
        "complete",
        |r| r["status"] == "complete",
    )
    .await?;
    let id = text(&finished["id"])?;
    let view = expect_json(
        app.get(&format!("/api/recordings/{id}"), Some(&ivy.access))
            .await?,
        StatusCode::OK,
    )
    .await?;
    let manifest = &view["manifest"];
    let chats: Vec<&str> = manifest["events"]
        .as_array()
        .context("events")?
        .iter()
        .filter(|e| e["kind"] == "chat")
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert_eq!(chats, ["after agreeing"], "{manifest}");
    let olly_events: Vec<&str> = manifest["events"]
        .as_array()
        .context("events")?
        .iter()
        .filter(|e| e["participant"] == olly_id.as_str())
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(olly_events, ["joined", "chat"], "{manifest}");
    let named = manifest["participants"]
        .as_array()
        .context("participants")?
        .iter()
        .filter(|p| p["identity"] == olly_id.as_str())
        .count();
    assert_eq!(named, 1, "named once, after agreeing: {manifest}");
    Ok(())
}
