//! Recording in `sightline worker`s (`workers.recording = "remote"`): a node posts the job on a
//! private NATS server's work queue, a worker takes it, connects to the node's link over QUIC
//! with certificates from a throwaway CA and records the real media a participant publishes;
//! a worker that dies mid-take loses the job to another worker, which resumes the same
//! recording with the gap marked. Proctoring checks run in a worker the same way, and a lost
//! worker is stated and replaced. Workers run in their own runtimes here, so one can die as a
//! process does: nothing it held is closed, acknowledged or finished.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sightline_cluster::RecordingJob;
use sightline_config::Settings;
use sightline_testkit::{NatsServer, TestPki};

use crate::cluster::{environment, metric, observer};
use crate::helpers::{Backend, TestApp, expect_json};
use crate::recording::Publisher;
use crate::rtc::{interview, join};

/// A worker in its own runtime: stopping the runtime is the worker dying.
struct Worker {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Worker {
    fn start(settings: Settings) -> Result<Worker> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.spawn(async move {
            let never = std::future::pending::<()>;
            if let Err(err) = sightline_api::worker::run(settings, never(), never()).await {
                eprintln!("the test's worker stopped: {err}");
            }
        });
        Ok(Worker {
            runtime: Some(runtime),
        })
    }

    /// Dies: every task dropped where it stands, no connection closed, no job acknowledged.
    fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A node recording through workers, and the settings of its workers.
async fn node_with_workers(nats: &NatsServer, pki: &TestPki) -> Result<TestApp> {
    let (cert, key) = pki.server();
    let mut env = environment(nats, "eu-1", "eu");
    env.extend([
        ("workers.recording", json!("remote")),
        ("workers.link_listen", json!("127.0.0.1:0")),
        ("workers.link_name", json!("localhost")),
        ("workers.ca_file", json!(pki.ca())),
        ("workers.cert_file", json!(cert)),
        ("workers.key_file", json!(key)),
        ("workers.ack_wait_secs", json!(2)),
    ]);
    TestApp::spawn_with_environment(Backend::Sqlite, &[], &env).await
}

/// The node's settings with a worker's name and certificate: the same database, NATS and
/// store (a directory both use).
fn worker_settings(app: &TestApp, pki: &TestPki, id: &str) -> Settings {
    let mut settings = app.settings.clone();
    settings.cluster.node_id = id.to_owned();
    let (cert, key) = pki.client();
    settings.workers.cert_file = Some(cert);
    settings.workers.key_file = Some(key);
    settings
}

/// The recording's row: (status, worker, failure).
async fn row(app: &TestApp, id: &str) -> Result<(String, Option<String>, Option<String>)> {
    let mut db = app.db().await?;
    Ok(
        sqlx::query_as("SELECT status, worker, failure FROM recordings WHERE id = $1")
            .bind(id)
            .fetch_one(&mut db)
            .await?,
    )
}

async fn newest_recording(app: &TestApp, interview: &str) -> Result<Option<String>> {
    let mut db = app.db().await?;
    let found: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM recordings WHERE interview_id = $1 ORDER BY started_at DESC, id DESC",
    )
    .bind(interview)
    .fetch_optional(&mut db)
    .await?;
    Ok(found.map(|(id,)| id))
}

fn manifest_path(app: &TestApp, id: &str) -> PathBuf {
    app.settings
        .data
        .dir
        .join(format!("recordings/recordings/{id}/manifest.json"))
}

/// The stored manifest, if any.
fn stored_manifest(app: &TestApp, id: &str) -> Option<Value> {
    let bytes = std::fs::read(manifest_path(app, id)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether the stored manifest has a stored segment of a take whose id starts with `prefix`.
fn has_stored_take(manifest: &Value, prefix: &str) -> bool {
    manifest["tracks"].as_array().is_some_and(|tracks| {
        tracks.iter().any(|track| {
            track["id"]
                .as_str()
                .is_some_and(|id| id.starts_with(prefix))
                && track["segments"]
                    .as_array()
                    .is_some_and(|segments| segments.iter().any(|s| s["stored"] == true))
        })
    })
}

/// Publishes (keeping the media flowing) until `check` holds, for at most `most`.
async fn publish_until(
    publisher: &mut Publisher,
    most: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + most;
    let mut next_check = Instant::now();
    while Instant::now() < deadline {
        publisher.step().await?;
        if Instant::now() >= next_check {
            if check().await? {
                return Ok(());
            }
            next_check = Instant::now() + Duration::from_millis(250);
        }
    }
    bail!("never happened: {what}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_worker_s_recording_is_resumed_by_another_worker_with_the_gap_marked() -> Result<()>
{
    let nats = NatsServer::start().await?;
    let pki = TestPki::new()?;
    let app = node_with_workers(&nats, &pki).await?;
    let first = Worker::start(worker_settings(&app, &pki, "w-a"))?;
    let meeting = interview(&app).await?;
    let (socket, _) = join(&app, &meeting.id, &meeting.interviewer).await?;
    // The interviewer alone: starting acknowledges, so it records at once.
    let started = app
        .post(
            &format!("/api/interviews/{}/recording/start", meeting.id),
            json!({}),
            Some(&meeting.interviewer),
        )
        .await?;
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let mut publisher = Publisher::start(socket).await?;

    // w-a takes the job and stores a first segment of the camera (10 s segments).
    let mut id = String::new();
    publish_until(
        &mut publisher,
        Duration::from_secs(60),
        "w-a stored media",
        async || {
            let Some(found) = newest_recording(&app, &meeting.id).await? else {
                return Ok(false);
            };
            id = found;
            let (_, worker, _) = row(&app, &id).await?;
            Ok(worker.as_deref() == Some("w-a")
                && stored_manifest(&app, &id).is_some_and(|m| has_stored_take(&m, "t")))
        },
    )
    .await?;

    // w-a dies mid-take. Once its job's ack wait passed, w-b gets the job, connects to the
    // node and resumes the same recording; it stores media of its own.
    first.kill();
    let second = Worker::start(worker_settings(&app, &pki, "w-b"))?;
    publish_until(
        &mut publisher,
        Duration::from_secs(90),
        "w-b stored media",
        async || {
            let (status, worker, _) = row(&app, &id).await?;
            assert_eq!(status, "recording");
            Ok(worker.as_deref() == Some("w-b")
                && stored_manifest(&app, &id).is_some_and(|m| has_stored_take(&m, "r1-")))
        },
    )
    .await?;
    assert_eq!(
        newest_recording(&app, &meeting.id).await?.as_deref(),
        Some(id.as_str()),
        "the same recording went on, no new one"
    );
    // Operators see it: one job, one worker lost, one feeding now.
    let metrics = app.metrics().await?;
    for (name, value) in [
        ("sightline_recording_jobs_posted_total", 1.0),
        ("sightline_recording_workers_lost_total", 1.0),
        ("sightline_recording_workers_connected", 1.0),
        ("sightline_recording_without_worker_total", 0.0),
    ] {
        assert_eq!(metric(&metrics, name), Some(value), "{name}: {metrics}");
    }

    // Stopped on the node, finished by w-b: one recording, both workers' parts, one gap.
    let stopped = app
        .post(
            &format!("/api/interviews/{}/recording/stop", meeting.id),
            json!({}),
            Some(&meeting.interviewer),
        )
        .await?;
    assert_eq!(stopped.status(), StatusCode::ACCEPTED);
    publish_until(
        &mut publisher,
        Duration::from_secs(90),
        "the recording completed",
        async || Ok(row(&app, &id).await?.0 != "recording"),
    )
    .await?;
    let (status, worker, failure) = row(&app, &id).await?;
    assert_eq!((status.as_str(), failure), ("complete", None));
    assert_eq!(worker.as_deref(), Some("w-b"));
    let manifest = stored_manifest(&app, &id).context("the finished manifest")?;
    assert_eq!(manifest["status"], "complete", "{manifest}");
    let interruptions = manifest["interruptions"]
        .as_array()
        .context("interruptions")?;
    assert_eq!(interruptions.len(), 1, "{manifest}");
    let tracks = manifest["tracks"].as_array().context("tracks")?;
    let ids: Vec<&str> = tracks.iter().filter_map(|t| t["id"].as_str()).collect();
    assert!(
        ids.iter().any(|id| !id.starts_with("r1-")),
        "w-a's takes: {ids:?}"
    );
    assert!(
        ids.iter().any(|id| id.starts_with("r1-")),
        "w-b's takes: {ids:?}"
    );
    for track in tracks {
        let file = track["file"]
            .as_str()
            .context("every take joined into a file")?;
        assert!(
            app.settings
                .data
                .dir
                .join("recordings")
                .join(file)
                .is_file(),
            "{file}"
        );
    }
    // The gap starts where w-a's stored media ends.
    let first_part_end = tracks
        .iter()
        .filter(|t| !t["id"].as_str().unwrap_or("").starts_with("r1-"))
        .filter_map(|t| t["end_ms"].as_u64())
        .max()
        .context("w-a's takes end")?;
    assert_eq!(interruptions[0]["start_ms"].as_u64(), Some(first_part_end));

    // The job is complete: the queue hands nothing out (with w-b gone too, a job left there
    // would come to this pull within its ack wait).
    assert!(
        !recording_active(&app, &meeting.id, &meeting.interviewer).await?,
        "the node no longer records"
    );
    second.kill();
    let left = observer(&nats)
        .await?
        .jobs()
        .await?
        .worker::<RecordingJob>(Duration::from_secs(30))
        .await?
        .next(Duration::from_secs(5))
        .await?;
    assert!(left.is_none(), "the job is still queued: {left:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_whose_worker_died_while_finishing_it_is_finished_by_the_next_worker()
-> Result<()> {
    let nats = NatsServer::start().await?;
    let pki = TestPki::new()?;
    let app = node_with_workers(&nats, &pki).await?;
    let first = Worker::start(worker_settings(&app, &pki, "w-a"))?;
    let meeting = interview(&app).await?;
    let (socket, _) = join(&app, &meeting.id, &meeting.interviewer).await?;
    let started = app
        .post(
            &format!("/api/interviews/{}/recording/start", meeting.id),
            json!({}),
            Some(&meeting.interviewer),
        )
        .await?;
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let mut publisher = Publisher::start(socket).await?;
    let mut id = String::new();
    publish_until(
        &mut publisher,
        Duration::from_secs(60),
        "w-a stored media",
        async || {
            let Some(found) = newest_recording(&app, &meeting.id).await? else {
                return Ok(false);
            };
            id = found;
            let (_, worker, _) = row(&app, &id).await?;
            Ok(worker.as_deref() == Some("w-a")
                && stored_manifest(&app, &id).is_some_and(|m| has_stored_take(&m, "t")))
        },
    )
    .await?;

    // w-a dies just after it began finishing: the row names it as the finisher, and nothing
    // else will finish it (the node leaves a recording someone finishes alone).
    first.kill();
    sqlx::query("UPDATE recordings SET finisher = 'w-a' WHERE id = $1")
        .bind(&id)
        .execute(&mut app.db().await?)
        .await?;
    let stopped = app
        .post(
            &format!("/api/interviews/{}/recording/stop", meeting.id),
            json!({}),
            Some(&meeting.interviewer),
        )
        .await?;
    assert_eq!(stopped.status(), StatusCode::ACCEPTED);

    // w-b is handed the job once w-a's ack wait passed and finishes what the store holds.
    let _second = Worker::start(worker_settings(&app, &pki, "w-b"))?;
    publish_until(
        &mut publisher,
        Duration::from_secs(90),
        "the recording completed",
        async || Ok(row(&app, &id).await?.0 != "recording"),
    )
    .await?;
    let (status, worker, failure) = row(&app, &id).await?;
    assert_eq!((status.as_str(), failure), ("complete", None));
    assert_eq!(worker.as_deref(), Some("w-b"));
    let manifest = stored_manifest(&app, &id).context("the finished manifest")?;
    assert_eq!(manifest["status"], "complete", "{manifest}");
    // Stopped before w-b came: nothing more to record, so no interruption is added.
    assert_eq!(manifest["interruptions"], json!([]), "{manifest}");
    let tracks = manifest["tracks"].as_array().context("tracks")?;
    assert!(!tracks.is_empty(), "{manifest}");
    for track in tracks {
        let file = track["file"]
            .as_str()
            .context("every take of w-a joined into a file")?;
        assert!(
            app.settings
                .data
                .dir
                .join("recordings")
                .join(file)
                .is_file(),
            "{file}"
        );
    }
    Ok(())
}

async fn recording_active(app: &TestApp, interview: &str, token: &str) -> Result<bool> {
    let view = expect_json(
        app.get(
            &format!("/api/interviews/{interview}/recording"),
            Some(token),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    Ok(view["active"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_no_worker_took_fails_with_the_reason_when_stopped() -> Result<()> {
    let nats = NatsServer::start().await?;
    let pki = TestPki::new()?;
    let app = node_with_workers(&nats, &pki).await?;
    let meeting = interview(&app).await?;
    let (_socket, _) = join(&app, &meeting.id, &meeting.interviewer).await?;
    let path = format!("/api/interviews/{}/recording", meeting.id);
    let started = app
        .post(
            &format!("{path}/start"),
            json!({}),
            Some(&meeting.interviewer),
        )
        .await?;
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let mut id = None;
    for _ in 0..100 {
        id = newest_recording(&app, &meeting.id).await?;
        if id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = id.context("the recording's row")?;
    let stopped = app
        .post(
            &format!("{path}/stop"),
            json!({}),
            Some(&meeting.interviewer),
        )
        .await?;
    assert_eq!(stopped.status(), StatusCode::ACCEPTED);
    let mut found = row(&app, &id).await?;
    for _ in 0..100 {
        if found.0 != "recording" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        found = row(&app, &id).await?;
    }
    let (status, worker, failure) = found;
    assert_eq!(status, "failed");
    assert_eq!(worker, None);
    assert!(
        failure.is_some_and(|f| f.contains("No recording worker")),
        "the reason is said"
    );
    let metrics = app.metrics().await?;
    assert_eq!(
        metric(&metrics, "sightline_recording_without_worker_total"),
        Some(1.0),
        "{metrics}"
    );

    // The job was withdrawn: the queue hands nothing out.
    let queue = observer(&nats).await?.jobs().await?;
    let left = queue
        .worker::<RecordingJob>(Duration::from_secs(30))
        .await?
        .next(Duration::from_secs(2))
        .await?;
    assert!(left.is_none(), "the job is still queued: {left:?}");
    Ok(())
}

/// Three seconds of camera video on one take of `link`, paced as it was filmed.
async fn send_video(link: &sightline_link::HostLink<Value, Value>) -> Result<()> {
    use sightline_sfu::{Codec, TapPacket, TrackId};
    use std::sync::Arc;
    let header = sightline_link::TakeHeader {
        id: "t1".into(),
        participant: "ivy".into(),
        source: "camera".into(),
        codec: Codec::Vp8,
    };
    let mut take = link.takes.open(&header).await?;
    let frames = &sightline_testkit::media()?.video[1];
    let start = Instant::now();
    for n in 0..90u64 {
        let frame = &frames[n as usize % frames.len()];
        let mut payload = vec![0x10];
        payload.extend_from_slice(&frame.data);
        let arrival = start + Duration::from_micros(n * 33_333);
        tokio::time::sleep_until(arrival.into()).await;
        take.send(&TapPacket {
            track: TrackId(1),
            codec: Codec::Vp8,
            seq: n,
            rtp_time: n * 3000,
            marker: true,
            keyframe: frame.keyframe,
            payload: Arc::from(payload),
            arrival,
            sender_time: None,
        })
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_node_goes_finishes_the_recording_unless_another_node_took_it_over()
-> Result<()> {
    use sightline_cluster::NodeId;
    use sightline_link::{LinkTls, Listener};
    let nats = NatsServer::start().await?;
    let pki = TestPki::new()?;
    let app = node_with_workers(&nats, &pki).await?;
    let meeting = interview(&app).await?;
    // The test is node eu-7 itself: its link, its jobs, its recordings' rows.
    let (cert, key) = pki.server();
    let listener = Listener::bind(
        "127.0.0.1:0".parse()?,
        &LinkTls::load(&pki.ca(), &cert, &key)?,
    )?;
    let queue = observer(&nats).await?.jobs().await?;
    let _worker = Worker::start(worker_settings(&app, &pki, "w-a"))?;
    let spool = app.settings.data.dir.join("worker-spool/w-a");
    for (id, taken_over) in [("kept-by-w-a", false), ("taken-by-eu-2", true)] {
        let mut db = app.db().await?;
        sqlx::query(
            "INSERT INTO recordings (id, interview_id, status, started_by, started_at, node) \
             VALUES ($1, $2, 'recording', 'user:the-starter', $3, 'eu-7')",
        )
        .bind(id)
        .bind(&meeting.id)
        .bind(jiff::Timestamp::now().as_second())
        .execute(&mut db)
        .await?;
        let (token, mut expected) = listener.expect::<Value, Value>()?;
        queue
            .post(&RecordingJob {
                recording: id.to_owned(),
                interview: meeting.id.clone(),
                node: NodeId::new("eu-7")?,
                link_addr: listener.local_addr()?,
                link_name: "localhost".to_owned(),
                token: token.expose().to_owned(),
            })
            .await?;
        let mut link = tokio::time::timeout(Duration::from_secs(30), expected.next())
            .await?
            .context("the worker's connection")?;
        link.control
            .sender
            .send(&json!({ "type": "participants", "participants": [
                { "identity": "ivy", "name": "Ivy", "role": "interviewer" } ] }))
            .await?;
        let said = link
            .control
            .receiver
            .recv()
            .await?
            .context("the worker's word")?;
        assert_eq!(said["type"], "recording", "{said}");
        assert_eq!(row(&app, id).await?.1.as_deref(), Some("w-a"));
        send_video(&link).await?;
        assert!(spool.join(id).is_dir(), "w-a records {id}");
        if taken_over {
            // Meanwhile the room moved and its next host took the recording over.
            sqlx::query(
                "UPDATE recordings SET node = 'eu-2', taken_from = 'eu-7', worker = NULL \
                 WHERE id = $1",
            )
            .bind(id)
            .execute(&mut db)
            .await?;
        }
        // The node goes without a word.
        link.takes.close();
        drop(link);
        let mut gone = false;
        for _ in 0..300 {
            if !spool.join(id).exists() {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(gone, "w-a let go of {id}");
        // A finishing worker lets go of its spool, then stores the row: wait for it.
        let mut found = row(&app, id).await?;
        for _ in 0..100 {
            if taken_over || found.0 != "recording" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            found = row(&app, id).await?;
        }
        let (status, worker, _) = found;
        let mut db = app.db().await?;
        let (finisher,): (Option<String>,) =
            sqlx::query_as("SELECT finisher FROM recordings WHERE id = $1")
                .bind(id)
                .fetch_one(&mut db)
                .await?;
        let manifest = stored_manifest(&app, id);
        if taken_over {
            // Left to eu-2: not finished, not claimed, no manifest of w-a's completing it.
            assert_eq!(
                (status.as_str(), worker, finisher),
                ("recording", None, None)
            );
            assert!(
                manifest.is_none_or(|m| m["status"] == "recording"),
                "w-a finished a recording eu-2 took over"
            );
        } else {
            assert_eq!(status, "complete");
            assert_eq!(finisher.as_deref(), Some("w-a"));
            let manifest = manifest.context("the finished manifest")?;
            assert_eq!(manifest["status"], "complete", "{manifest}");
            assert!(manifest["tracks"][0]["file"].is_string(), "{manifest}");
        }
    }
    Ok(())
}

/// A node whose proctoring checks run in workers (it records in process), with short check
/// times so the test sees its events in seconds.
async fn node_with_proctoring_workers(nats: &NatsServer, pki: &TestPki) -> Result<TestApp> {
    let (cert, key) = pki.server();
    let mut env = environment(nats, "eu-1", "eu");
    env.extend([
        ("workers.proctoring", json!("remote")),
        ("workers.link_listen", json!("127.0.0.1:0")),
        ("workers.link_name", json!("localhost")),
        ("workers.ca_file", json!(pki.ca())),
        ("workers.cert_file", json!(cert)),
        ("workers.key_file", json!(key)),
        ("workers.ack_wait_secs", json!(2)),
    ]);
    let overrides = [
        ("proctoring.checks.calibration_secs", json!(4)),
        ("proctoring.checks.multiple_faces_secs", json!(2)),
    ];
    TestApp::spawn_with_environment(Backend::Sqlite, &overrides, &env).await
}

/// The `checks_unavailable` statements `seen`, by the reason stored with each.
async fn statements(app: &TestApp, base: &str, token: &str) -> Result<Vec<String>> {
    let view = expect_json(app.get(base, Some(token)).await?, StatusCode::OK).await?;
    let events = view["events"].as_array().context("events")?;
    Ok(events
        .iter()
        .filter(|e| e["kind"] == "checks_unavailable")
        .filter_map(|e| {
            let thresholds: Value = serde_json::from_str(e["thresholds"].as_str()?).ok()?;
            Some(thresholds["reason"].as_str()?.to_owned())
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_checks_a_proctored_camera_and_a_lost_worker_is_stated_then_replaced() -> Result<()>
{
    use crate::proctoring::{Camera, OneCandidate, SLOW, collect, live, stored};
    use sightline_testkit::Scene;

    let nats = NatsServer::start().await?;
    let pki = TestPki::new()?;
    let app = node_with_proctoring_workers(&nats, &pki).await?;
    let one = OneCandidate::schedule(&app, "Proctored by workers").await?;
    one.set(&app, json!({ "enabled": true })).await?;
    one.agree(&app).await?;
    let (mut ivy, _) = join(&app, &one.interview, &one.ivy).await?;
    let (cas_socket, _) = join(&app, &one.interview, &one.cas).await?;
    let mut camera = Camera::start(cas_socket, Scene::TwoFaces).await?;
    let mut seen = Vec::new();

    // No worker yet: the node checks nothing itself, and says so once the job's ack wait has
    // passed with nobody checking. A neutral statement, not a flag.
    camera
        .run_until(SLOW, &mut ivy, &mut seen, |seen| {
            live(seen, "checks_unavailable").1
        })
        .await?;
    assert!(
        !live(&seen, "multiple_faces").0,
        "checked by nobody: {seen:?}"
    );
    assert_eq!(
        statements(&app, &one.base, &one.ivy).await?,
        ["no proctoring worker took the checks"]
    );

    // w-a takes the job: two people on the camera open multiple_faces, with a snapshot the
    // node stored, found by the worker's detector.
    let first = Worker::start(worker_settings(&app, &pki, "w-a"))?;
    camera
        .run_until(SLOW, &mut ivy, &mut seen, |seen| {
            live(seen, "multiple_faces").0
        })
        .await?;
    let view = expect_json(app.get(&one.base, Some(&one.ivy)).await?, StatusCode::OK).await?;
    let two = stored(&view, "multiple_faces")?;
    assert!(
        two["detector"]
            .as_str()
            .is_some_and(|d| d.starts_with("blazeface")),
        "{two}"
    );
    assert!(
        view["detector"]
            .as_str()
            .is_some_and(|d| d.starts_with("blazeface")),
        "{view}"
    );
    let event = two["id"].as_str().context("the event's id")?;
    let snapshot = app
        .get(&format!("{}/{event}/snapshots/0", one.base), Some(&one.ivy))
        .await?;
    assert_eq!(snapshot.status(), StatusCode::OK);
    assert_eq!(&snapshot.bytes().await?[..2], &[0xFF, 0xD8]);

    // w-a dies: what it had open ends, and that the checks stopped is stated (shown live once
    // stored).
    first.kill();
    let statements_seen = |seen: &[Value]| {
        seen.iter()
            .filter(|m| m["event"]["kind"] == "checks_unavailable")
            .count()
    };
    camera
        .run_until(SLOW, &mut ivy, &mut seen, |seen| {
            live(seen, "multiple_faces").1 && statements_seen(seen) >= 2
        })
        .await?;
    collect(&mut ivy, &mut seen).await?;
    assert!(live(&seen, "multiple_faces").1, "{seen:?}");
    assert_eq!(
        statements(&app, &one.base, &one.ivy).await?,
        [
            "no proctoring worker took the checks",
            "the proctoring worker was lost"
        ]
    );

    // w-b gets the job once w-a's ack wait passed and checks the camera again.
    let second = Worker::start(worker_settings(&app, &pki, "w-b"))?;
    let opened = |seen: &[Value]| {
        seen.iter()
            .filter(|m| {
                m["event"]["kind"] == "multiple_faces" && m["event"]["ended_at_ms"].is_null()
            })
            .count()
    };
    camera
        .run_until(SLOW, &mut ivy, &mut seen, |seen| opened(seen) >= 2)
        .await?;
    assert_eq!(opened(&seen), 2, "{seen:?}");
    let metrics = app.metrics().await?;
    for (name, value) in [
        ("sightline_proctoring_jobs_posted_total", 1.0),
        ("sightline_proctoring_workers_lost_total", 1.0),
        ("sightline_proctoring_workers_connected", 1.0),
    ] {
        assert_eq!(metric(&metrics, name), Some(value), "{name}: {metrics}");
    }

    // Turned off: the checks stop, what was open is closed, and the job leaves the queue.
    one.set(&app, json!({ "enabled": false })).await?;
    let deadline = Instant::now() + SLOW;
    loop {
        camera
            .run_for(Duration::from_millis(250), &mut ivy, &mut seen)
            .await?;
        let view = expect_json(app.get(&one.base, Some(&one.ivy)).await?, StatusCode::OK).await?;
        let events = view["events"].as_array().context("events")?;
        if view["running"] == false && events.iter().all(|e| !e["ended_at_ms"].is_null()) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the checks never stopped: {view}");
        }
    }
    // With w-b gone too, a job left on the queue would come to this pull within its ack wait.
    second.kill();
    let left = observer(&nats)
        .await?
        .jobs()
        .await?
        .worker::<sightline_cluster::ProctoringJob>(Duration::from_secs(30))
        .await?
        .next(Duration::from_secs(5))
        .await?;
    assert!(left.is_none(), "the job is still queued: {left:?}");
    Ok(())
}
