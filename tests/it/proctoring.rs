//! Proctoring through the real server: a test publisher sends real VP8 of pictures made from
//! the test photograph (one face, two faces, no face, black, a frozen picture), the server
//! decodes what the SFU received and runs the face detector on it, and the events open and
//! close as the pictures change; interviewers see them live and candidates never do; a client
//! that claims its camera is muted is still checked on what it sends; only the interview's
//! interviewers, assigned reviewers and admins read the events, see snapshots and review them.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sightline_api::AccountRole;
use sightline_testkit::{EncodedMedia, MediaPublisher, Scene, UdpPeer, scene_media};
use str0m::change::SdpAnswer;

use crate::helpers::{Backend, TestApp, expect_error, expect_json, text};
use crate::rtc::{Socket, drain, guest_sessions, join, next_of, send};

/// A candidate publishing a camera whose picture the test chooses.
pub(crate) struct Camera {
    socket: Socket,
    media: MediaPublisher,
    events: Vec<str0m::Event>,
    connected: bool,
    scene: &'static EncodedMedia,
    /// The candidate's camera track, once published.
    pub(crate) track: Option<String>,
    /// Every signaling message the candidate received.
    received: Vec<Value>,
}

impl Camera {
    pub(crate) async fn start(socket: Socket, scene: Scene) -> Result<Camera> {
        Camera::publish(socket, scene, "camera").await
    }

    /// A paired phone: its camera only, as the candidate's second camera (its microphone
    /// m-line is not declared, so the server forwards none of it).
    async fn phone(socket: Socket, scene: Scene) -> Result<Camera> {
        Camera::publish(socket, scene, "secondary_camera").await
    }

    /// A candidate sharing their screen (and their microphone).
    async fn screen(socket: Socket) -> Result<Camera> {
        Camera::publish(socket, Scene::NoFace, "screen_share").await
    }

    async fn publish(mut socket: Socket, scene: Scene, video: &str) -> Result<Camera> {
        // Every scene is encoded now, before media flows: encoding one on its first `show`
        // takes seconds, in which a busy machine would send no frames (the proctor rightly
        // saw a lost feed once).
        for scene in Scene::ALL {
            scene_media(scene)?;
        }
        let (mut media, offer) = MediaPublisher::new(true).await?;
        let tracks = if video == "secondary_camera" {
            json!([{ "mid": media.video.to_string(), "source": video }])
        } else {
            json!([
                { "mid": media.audio.to_string(), "source": "microphone" },
                { "mid": media.video.to_string(), "source": video } ])
        };
        send(
            &mut socket,
            json!({ "type": "publish_offer", "sdp": offer.to_sdp_string(), "tracks": tracks }),
        )
        .await?;
        let answer = next_of(&mut socket, "publish_answer").await?;
        media.accept_answer(SdpAnswer::from_sdp_string(&text(&answer["sdp"])?)?)?;
        Ok(Camera {
            socket,
            media,
            events: Vec::new(),
            connected: false,
            scene: scene_media(scene)?,
            track: None,
            received: Vec::new(),
        })
    }

    pub(crate) fn show(&mut self, scene: Scene) -> Result<()> {
        self.scene = scene_media(scene)?;
        self.media.force_keyframe();
        Ok(())
    }

    pub(crate) async fn step(&mut self) -> Result<()> {
        self.connected |= UdpPeer::connected(&self.events);
        for event in self.events.drain(..) {
            // Keyframe requests are answered, as a browser would.
            self.media.handle_event(&event);
        }
        if self.connected {
            self.media.send_due(self.scene, Instant::now())?;
        }
        self.media.peer.step(&mut self.events).await?;
        for message in drain(&mut self.socket).await? {
            if message["type"] == "track_published" && message["track"]["source"] == "camera" {
                self.track = Some(text(&message["track"]["id"])?);
            }
            self.received.push(message);
        }
        Ok(())
    }

    /// Sends its media for `how_long`, collecting what `watcher` is told meanwhile.
    pub(crate) async fn run_for(
        &mut self,
        how_long: Duration,
        watcher: &mut Socket,
        seen: &mut Vec<Value>,
    ) -> Result<()> {
        let until = Instant::now() + how_long;
        while Instant::now() < until {
            self.step().await?;
            collect(watcher, seen).await?;
        }
        Ok(())
    }

    /// Sends until what the watcher saw satisfies `done`, for at most `max` (on a busy machine
    /// decoding and detection fall behind; the checks' own durations are what is tested).
    pub(crate) async fn run_until(
        &mut self,
        max: Duration,
        watcher: &mut Socket,
        seen: &mut Vec<Value>,
        done: impl Fn(&[Value]) -> bool,
    ) -> Result<()> {
        let until = Instant::now() + max;
        while Instant::now() < until && !done(seen) {
            self.step().await?;
            collect(watcher, seen).await?;
        }
        Ok(())
    }
}

/// An interview with one candidate (Casey, a guest) scheduled by an interviewer (Ivy).
pub(crate) struct OneCandidate {
    pub(crate) ivy: String,
    pub(crate) interview: String,
    pub(crate) cas: String,
    /// `/api/interviews/{id}/proctoring`.
    pub(crate) base: String,
}

impl OneCandidate {
    pub(crate) async fn schedule(app: &TestApp, title: &str) -> Result<OneCandidate> {
        OneCandidate::schedule_with(app, title, &[]).await
    }

    /// With `staff` (participant entries with an email and a role) invited too.
    async fn schedule_with(app: &TestApp, title: &str, staff: &[Value]) -> Result<OneCandidate> {
        let ivy = app
            .user_with_role("ivy@example.com", AccountRole::Interviewer)
            .await?;
        let start = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_mins(5))?;
        let mut participants = vec![
            json!({ "email": "cas@example.com", "display_name": "Casey", "role": "candidate" }),
        ];
        participants.extend_from_slice(staff);
        let created = app
            .schedule(
                &ivy.access,
                json!({ "title": title, "scheduled_start": start.to_string(),
                    "duration_minutes": 60, "time_zone": "UTC", "participants": participants }),
            )
            .await?;
        let interview = text(&created["interview"]["id"])?;
        let cas = guest_sessions(app, &created)
            .await?
            .into_iter()
            .next()
            .context("the candidate")?;
        Ok(OneCandidate {
            base: format!("/api/interviews/{interview}/proctoring"),
            ivy: ivy.access,
            interview,
            cas,
        })
    }

    /// Ivy sets proctoring to `settings`; returns the view.
    pub(crate) async fn set(&self, app: &TestApp, settings: Value) -> Result<Value> {
        expect_json(
            app.put(&self.base, settings, Some(&self.ivy)).await?,
            StatusCode::OK,
        )
        .await
    }

    /// Casey's agreement is refused: the interview is not proctored.
    async fn refused_consent(&self, app: &TestApp) -> Result<()> {
        expect_error(
            app.post(
                &format!("{}/consent", self.base),
                json!({}),
                Some(&self.cas),
            )
            .await?,
            StatusCode::CONFLICT,
            "not_proctored",
        )
        .await
        .map(|_| ())
    }

    /// Casey agrees to proctoring.
    pub(crate) async fn agree(&self, app: &TestApp) -> Result<()> {
        let agreed = app
            .post(
                &format!("{}/consent", self.base),
                json!({}),
                Some(&self.cas),
            )
            .await?;
        anyhow::ensure!(
            agreed.status() == StatusCode::NO_CONTENT,
            "consent: {}",
            agreed.status()
        );
        Ok(())
    }
}

/// Adds the proctoring events waiting on `watcher` to `seen`.
pub(crate) async fn collect(watcher: &mut Socket, seen: &mut Vec<Value>) -> Result<()> {
    seen.extend(
        drain(watcher)
            .await?
            .into_iter()
            .filter(|m| m["type"] == "proctoring_event"),
    );
    Ok(())
}

/// The stored event of `kind` in a proctoring view.
pub(crate) fn stored<'a>(view: &'a Value, kind: &str) -> Result<&'a Value> {
    view["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["kind"] == kind))
        .with_context(|| format!("a stored {kind} event: {view}"))
}

/// The most a scene change may take to show in the events on a busy machine.
pub(crate) const SLOW: Duration = Duration::from_secs(40);
/// How often the server prompts a candidate at most (`api/src/proctoring`).
const HINT_SPACING: Duration = Duration::from_secs(60);

/// The live events `seen` of `kind`: whether one opened and whether one closed.
pub(crate) fn live(seen: &[Value], kind: &str) -> (bool, bool) {
    let of_kind: Vec<&Value> = seen.iter().filter(|m| m["event"]["kind"] == kind).collect();
    (
        of_kind.iter().any(|m| m["event"]["ended_at_ms"].is_null()),
        of_kind.iter().any(|m| !m["event"]["ended_at_ms"].is_null()),
    )
}

async fn wait_for_proctoring(socket: &mut Socket, needs: &[&str]) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let message = next_of(socket, "proctoring").await?;
        let notice = &message["proctoring"];
        if notice["on"] == true && notice["needs_consent"] == json!(needs) {
            return Ok(notice.clone());
        }
    }
    bail!("the room never said it is proctored with {needs:?} to agree")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_candidates_camera_shows_opens_and_closes_events_for_interviewers_only()
-> Result<()> {
    // Shorter durations than the defaults, so the test sees every event in under a minute;
    // the defaults themselves are covered by the rules' own tests and the quiet test below.
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("proctoring.checks.calibration_secs", json!(4)),
            ("proctoring.checks.face_absent_secs", json!(4)),
            ("proctoring.checks.camera_frozen_secs", json!(6)),
        ],
    )
    .await?;
    app.user_with_role("rex@example.com", AccountRole::Reviewer)
        .await?;
    let outsider = app
        .user_with_role("olga@example.com", AccountRole::Reviewer)
        .await?;
    let one = OneCandidate::schedule_with(
        &app,
        "Proctored round",
        &[json!({ "email": "rex@example.com", "role": "reviewer" })],
    )
    .await?;
    let (ivy_access, interview, cas) = (&one.ivy, &one.interview, &one.cas);
    let rex = app.login("rex@example.com").await?;
    let base = one.base.clone();

    // Only the interviewer turns it on.
    expect_error(
        app.put(&base, json!({ "enabled": true }), Some(cas))
            .await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    let settings = one.set(&app, json!({ "enabled": true })).await?;
    assert_eq!(settings["enabled"], true);

    let (mut ivy_socket, _) = join(&app, interview, ivy_access).await?;
    let (cas_socket, cas_joined) = join(&app, interview, cas).await?;
    let cas_id = text(&cas_joined["you"]["identity"])?;
    let mut camera = Camera::start(cas_socket, Scene::OneFace).await?;
    // Nothing is checked before the candidate agreed: they are told it is proctored and asked.
    wait_for_proctoring(&mut ivy_socket, &[cas_id.as_str()]).await?;
    let mut seen = Vec::new();
    camera
        .run_for(Duration::from_secs(3), &mut ivy_socket, &mut seen)
        .await?;
    let view = expect_json(app.get(&base, Some(ivy_access)).await?, StatusCode::OK).await?;
    assert_eq!(view["events"], json!([]), "nothing before consent: {view}");
    one.agree(&app).await?;
    wait_for_proctoring(&mut ivy_socket, &[]).await?;

    // One face while the face checks calibrate, then two people.
    camera
        .run_for(Duration::from_secs(7), &mut ivy_socket, &mut seen)
        .await?;
    assert_eq!(
        seen,
        Vec::<Value>::new(),
        "one face in good light: no event"
    );
    camera.show(Scene::TwoFaces)?;
    camera
        .run_until(SLOW, &mut ivy_socket, &mut seen, |seen| {
            live(seen, "multiple_faces").0
        })
        .await?;
    assert_eq!(live(&seen, "multiple_faces"), (true, false), "{seen:?}");

    // Nobody, while the client claims its camera is muted: it is checked on what it sends.
    let track = camera.track.clone().context("the camera's track")?;
    send(
        &mut camera.socket,
        json!({ "type": "mute", "track": track, "muted": true }),
    )
    .await?;
    let prompted_from = Instant::now();
    camera.show(Scene::NoFace)?;
    camera
        .run_until(SLOW, &mut ivy_socket, &mut seen, |seen| {
            live(seen, "multiple_faces").1 && live(seen, "face_absent").0
        })
        .await?;
    assert_eq!(live(&seen, "multiple_faces"), (true, true), "{seen:?}");
    assert!(live(&seen, "face_absent").0, "{seen:?}");

    // A covered lens, then a photo held still.
    camera.show(Scene::Black)?;
    camera
        .run_until(SLOW, &mut ivy_socket, &mut seen, |seen| {
            live(seen, "camera_dark").0
        })
        .await?;
    assert!(live(&seen, "camera_dark").0, "{seen:?}");
    // The switch itself is a change; from then on the picture holds still.
    camera.show(Scene::Frozen)?;
    camera
        .run_until(SLOW, &mut ivy_socket, &mut seen, |seen| {
            live(seen, "camera_dark").1 && live(seen, "camera_frozen").0
        })
        .await?;
    assert_eq!(live(&seen, "camera_dark"), (true, true), "{seen:?}");
    assert!(live(&seen, "camera_frozen").0, "{seen:?}");
    assert!(!live(&seen, "checks_unavailable").0, "{seen:?}");

    // The candidate was told it is proctored, never what was marked; they were prompted once
    // (at most once a minute) to check their camera when their face was not visible.
    assert!(
        camera
            .received
            .iter()
            .all(|m| m["type"] != "proctoring_event"),
        "a candidate never sees proctoring events"
    );
    let hints: Vec<&Value> = camera
        .received
        .iter()
        .filter(|m| m["type"] == "proctoring_hint")
        .collect();
    // A machine slow enough to spend a minute on the last three steps prompts again.
    if prompted_from.elapsed() < HINT_SPACING {
        assert_eq!(hints.len(), 1, "{hints:?}");
    }
    assert!(!hints.is_empty(), "prompted once");
    assert_eq!(hints[0]["hint"], "face_not_visible");

    // Stored, for the interviewer and the assigned reviewer; everyone else gets 404.
    for stranger in [cas, &outsider.access] {
        expect_error(
            app.get(&base, Some(stranger)).await?,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await?;
    }
    let view = expect_json(app.get(&base, Some(&rex.access)).await?, StatusCode::OK).await?;
    let events = view["events"].as_array().context("events")?;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in [
        "multiple_faces",
        "face_absent",
        "camera_dark",
        "camera_frozen",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let two = stored(&view, "multiple_faces")?;
    assert_eq!(two["participant_id"], cas_id.as_str());
    assert_eq!(two["source"], "camera");
    assert_eq!(two["severity"], "review");
    assert!(
        two["detector"]
            .as_str()
            .is_some_and(|d| d.starts_with("blazeface"))
    );
    assert!(two["peak_score"].as_f64().is_some_and(|p| p > 0.5), "{two}");
    let span =
        two["ended_at_ms"].as_i64().unwrap_or(0) - two["started_at_ms"].as_i64().unwrap_or(0);
    assert!(span > 0, "{two}");
    assert!(
        view["summary"].as_array().is_some_and(|s| s
            .iter()
            .any(|k| k["kind"] == "multiple_faces" && k["unreviewed"] == 1)),
        "{view}"
    );

    // Its snapshot is a JPEG, for reviewers only.
    let event = text(&two["id"])?;
    let snapshot = app
        .get(&format!("{base}/{event}/snapshots/0"), Some(&rex.access))
        .await?;
    assert_eq!(snapshot.status(), StatusCode::OK);
    assert_eq!(&snapshot.bytes().await?[..2], &[0xFF, 0xD8]);
    expect_error(
        app.get(&format!("{base}/{event}/snapshots/0"), Some(cas))
            .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;
    expect_error(
        app.get(&format!("{base}/{event}/snapshots/7"), Some(&rex.access))
            .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;

    // A reviewer confirms it with a note; an invalid verdict is refused.
    expect_error(
        app.post(
            &format!("{base}/{event}/review"),
            json!({ "verdict": "guilty" }),
            Some(&rex.access),
        )
        .await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    let reviewed = expect_json(
        app.post(
            &format!("{base}/{event}/review"),
            json!({ "verdict": "confirmed", "note": "A second person sat down." }),
            Some(&rex.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(reviewed["verdict"], "confirmed");
    assert_eq!(reviewed["review_note"], "A second person sat down.");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_face_for_a_minute_with_the_default_rules_marks_nothing() -> Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let one = OneCandidate::schedule(&app, "Quiet round").await?;
    let (ivy_access, interview, cas, base) = (&one.ivy, &one.interview, &one.cas, &one.base);
    one.set(&app, json!({ "enabled": true })).await?;
    one.agree(&app).await?;
    let (mut ivy_socket, _) = join(&app, interview, ivy_access).await?;
    let (cas_socket, _) = join(&app, interview, cas).await?;
    let mut camera = Camera::start(cas_socket, Scene::OneFace).await?;
    let mut seen = Vec::new();
    camera
        .run_for(Duration::from_secs(60), &mut ivy_socket, &mut seen)
        .await?;
    assert_eq!(seen, Vec::<Value>::new());
    let view = expect_json(app.get(base, Some(ivy_access)).await?, StatusCode::OK).await?;
    assert_eq!(view["running"], true, "{view}");
    assert_eq!(view["events"], json!([]), "{view}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_turned_to_another_view_with_people_in_it_is_marked() -> Result<()> {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("proctoring.checks.side_view_changed_secs", json!(4))],
    )
    .await?;
    let one = OneCandidate::schedule(&app, "Phone round").await?;
    let (ivy_access, interview, cas, base) = (&one.ivy, &one.interview, &one.cas, &one.base);
    one.set(&app, json!({ "enabled": true })).await?;
    one.agree(&app).await?;
    let (mut ivy_socket, _) = join(&app, interview, ivy_access).await?;
    let (_cas_socket, _) = join(&app, interview, cas).await?;

    // The candidate pairs a phone; it shows the desk (no face) from the side.
    let pairing = expect_json(
        app.post(
            &format!("/api/interviews/{interview}/phone-pairings"),
            json!({}),
            Some(cas),
        )
        .await?,
        StatusCode::CREATED,
    )
    .await?;
    let token = text(&pairing["url"])?
        .rsplit_once("/pair/")
        .map(|(_, token)| token.to_owned())
        .context("pairing token")?;
    let session = expect_json(
        app.post("/api/phone/redeem", json!({ "token": token }), None)
            .await?,
        StatusCode::OK,
    )
    .await?;
    let granted = expect_json(
        app.post(
            "/api/phone/join",
            json!({ "session": session["session"] }),
            None,
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    let url = format!("{}/rtc/{interview}", app.base.replacen("http", "ws", 1));
    let (mut phone_socket, _) = tokio_tungstenite::connect_async(url).await?;
    send(
        &mut phone_socket,
        json!({ "type": "join", "version": 1, "token": granted["token"] }),
    )
    .await?;
    next_of(&mut phone_socket, "joined").await?;
    let mut phone = Camera::phone(phone_socket, Scene::NoFace).await?;
    let mut seen = Vec::new();
    phone
        .run_for(Duration::from_secs(10), &mut ivy_socket, &mut seen)
        .await?;
    assert_eq!(seen, Vec::<Value>::new(), "a steady desk: no event");

    // Turned towards two people.
    phone.show(Scene::TwoFaces)?;
    phone
        .run_until(SLOW, &mut ivy_socket, &mut seen, |seen| {
            live(seen, "side_view_changed").0 && live(seen, "side_view_person").0
        })
        .await?;
    assert!(live(&seen, "side_view_changed").0, "{seen:?}");
    assert!(live(&seen, "side_view_person").0, "{seen:?}");
    let view = expect_json(app.get(base, Some(ivy_access)).await?, StatusCode::OK).await?;
    let changed = stored(&view, "side_view_changed")?;
    assert_eq!(changed["source"], "phone");
    assert_eq!(
        changed["participant_id"], pairing["candidate"],
        "the phone's events are the candidate's"
    );

    // The phone leaves while the candidate stays: its feed is lost, from signaling at once;
    // what was open on its view ends with it. Only what is said from here on counts: a busy
    // machine may have starved the phone's frames for a while before (a `feed_lost` that
    // opened and closed again, as it should).
    send(&mut phone.socket, json!({ "type": "leave" })).await?;
    let left_at = seen.len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !live(&seen[left_at..], "feed_lost").0 {
        collect(&mut ivy_socket, &mut seen).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let since_leaving = &seen[left_at..];
    assert_eq!(
        live(since_leaving, "feed_lost"),
        (true, false),
        "{since_leaving:?}"
    );
    assert!(
        live(since_leaving, "side_view_changed").1,
        "closed with the phone: {since_leaving:?}"
    );
    let view = expect_json(app.get(base, Some(ivy_access)).await?, StatusCode::OK).await?;
    let lost = view["events"]
        .as_array()
        .and_then(|events| {
            events
                .iter()
                .find(|e| e["kind"] == "feed_lost" && e["ended_at_ms"].is_null())
        })
        .with_context(|| {
            format!("a stored feed_lost that lasts while the phone is away: {view}")
        })?;
    assert_eq!(lost["source"], "phone");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_share_that_stops_is_marked_when_the_interview_requires_one() -> Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let one = OneCandidate::schedule(&app, "Shared screen").await?;
    let (ivy_access, interview, cas, base) = (&one.ivy, &one.interview, &one.cas, &one.base);
    // Agreeing needs proctoring on; turning it off forgets the agreement.
    one.refused_consent(&app).await?;
    let settings = one
        .set(
            &app,
            json!({ "enabled": true, "require_screen_share": true }),
        )
        .await?;
    assert_eq!(settings["require_screen_share"], true);
    one.agree(&app).await?;
    let (mut ivy_socket, _) = join(&app, interview, ivy_access).await?;
    let (cas_socket, _) = join(&app, interview, cas).await?;
    wait_for_proctoring(&mut ivy_socket, &[]).await?;
    let mut screen = Camera::screen(cas_socket).await?;
    let mut seen = Vec::new();
    screen
        .run_for(Duration::from_secs(3), &mut ivy_socket, &mut seen)
        .await?;
    assert_eq!(seen, Vec::<Value>::new());

    // "Stop sharing": the m-line goes inactive, the server unpublishes the track.
    let offer = screen.media.stop_video()?;
    send(
        &mut screen.socket,
        json!({ "type": "publish_offer", "sdp": offer.to_sdp_string(), "tracks": [
            { "mid": screen.media.audio.to_string(), "source": "microphone" } ] }),
    )
    .await?;
    let answer = next_of(&mut screen.socket, "publish_answer").await?;
    screen
        .media
        .accept_answer(SdpAnswer::from_sdp_string(&text(&answer["sdp"])?)?)?;
    screen
        .run_until(SLOW, &mut ivy_socket, &mut seen, |seen| {
            live(seen, "screen_share_stopped").0
        })
        .await?;
    assert_eq!(
        live(&seen, "screen_share_stopped"),
        (true, false),
        "{seen:?}"
    );
    let view = expect_json(app.get(base, Some(ivy_access)).await?, StatusCode::OK).await?;
    let stopped = stored(&view, "screen_share_stopped")?;
    assert_eq!(stopped["source"], "screen");
    assert_eq!(stopped["severity"], "notice");

    // Turned off: the room is told, and the candidate would be asked again.
    one.set(&app, json!({ "enabled": false })).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let message = next_of(&mut ivy_socket, "proctoring").await?;
        if message["proctoring"]["on"] == false {
            break;
        }
        if Instant::now() > deadline {
            bail!("the room was not told proctoring is off");
        }
    }
    let view = expect_json(app.get(base, Some(ivy_access)).await?, StatusCode::OK).await?;
    assert!(
        !stored(&view, "screen_share_stopped")?["ended_at_ms"].is_null(),
        "ended when the checks stopped: {view}"
    );
    one.refused_consent(&app).await?;
    Ok(())
}
