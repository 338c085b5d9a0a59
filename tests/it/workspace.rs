//! The workspace through the real server: the shared document over its socket with real
//! Yjs-compatible clients (yrs), stored on both databases and the same after a restart; who
//! may see, edit and run; runs in the real bubblewrap sandbox, shown to everyone in the editor;
//! hostile code contained while the server and other interviews carry on.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sightline_api::AccountRole;
use sightline_collab::wire::{self, Message as Frame};
use tokio_tungstenite::tungstenite::Message;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, Map, MapRef, ReadTxn, StateVector, Text, TextRef, Transact, Update};

use crate::helpers::{Backend, TestApp, expect_error, expect_json, interview_body, text};
use crate::rtc::{Interview, Socket, guest_sessions, interview};

crate::on_both_backends!(
    concurrent_edits_converge_and_survive_a_restart,
    who_sees_edits_and_runs_the_code,
    open_sockets_lose_access_when_it_changes,
    someone_removed_from_the_room_loses_its_code_until_let_back_in,
    a_deactivated_account_leaves_its_rooms_and_editors_at_once,
);

const WAIT: Duration = Duration::from_secs(20);

/// A browser's editor, as far as the protocol goes.
pub(crate) struct Editor {
    socket: Socket,
    doc: Doc,
    text: TextRef,
    meta: MapRef,
    welcome: Value,
    notices: Vec<Value>,
}

impl Editor {
    pub(crate) async fn open(app: &TestApp, interview: &str, access: &str) -> Result<Editor> {
        let mut socket = connect(app, interview).await?;
        send_text(&mut socket, json!({ "type": "auth", "token": access })).await?;
        let welcome = next_text(&mut socket).await?;
        if welcome["type"] != "welcome" {
            bail!("expected welcome, got {welcome}");
        }
        let doc = Doc::new();
        let text = doc.get_or_insert_text("code");
        let meta = doc.get_or_insert_map("meta");
        let mut editor = Editor {
            socket,
            doc,
            text,
            meta,
            welcome,
            notices: Vec::new(),
        };
        let step1 = wire::encode(&Frame::SyncStep1(
            editor.doc.transact().state_vector().encode_v1(),
        ));
        editor.send_frame(step1).await?;
        // In sync once the server's step 2 arrived.
        editor
            .pump_until("the server's state", |_| false, Some(()))
            .await?;
        Ok(editor)
    }

    async fn send_frame(&mut self, frame: Vec<u8>) -> Result<()> {
        self.socket.send(Message::Binary(frame.into())).await?;
        Ok(())
    }

    /// Edits locally and sends the update, as yjs does.
    async fn edit(
        &mut self,
        f: impl FnOnce(&mut yrs::TransactionMut, &TextRef, &MapRef),
    ) -> Result<()> {
        let update = {
            let mut txn = self.doc.transact_mut();
            f(&mut txn, &self.text, &self.meta);
            txn.encode_update_v1()
        };
        self.send_frame(wire::encode(&Frame::Update(update))).await
    }

    pub(crate) async fn insert(&mut self, at: u32, s: &str) -> Result<()> {
        self.edit(|txn, text, _| text.insert(txn, at, s)).await
    }

    pub(crate) fn code(&self) -> String {
        self.text.get_string(&self.doc.transact())
    }

    /// Handles what the server sends until `done` holds (or, with `step2`, until the server's
    /// sync step 2 came).
    async fn pump_until(
        &mut self,
        what: &str,
        done: impl Fn(&Editor) -> bool,
        step2: Option<()>,
    ) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        if step2.is_none() && done(self) {
            return Ok(());
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = tokio::time::timeout(left, self.socket.next())
                .await
                .with_context(|| format!("waiting for {what}: code {:?}", self.code()))?;
            match next.context("socket closed")?? {
                Message::Binary(frame) => match wire::decode(&frame)? {
                    Frame::SyncStep1(sv) => {
                        let sv = StateVector::decode_v1(&sv)?;
                        let reply = self.doc.transact().encode_state_as_update_v1(&sv);
                        self.send_frame(wire::encode(&Frame::SyncStep2(reply)))
                            .await?;
                    }
                    Frame::SyncStep2(update) => {
                        self.doc
                            .transact_mut()
                            .apply_update(Update::decode_v1(&update)?)?;
                        if step2.is_some() {
                            return Ok(());
                        }
                    }
                    Frame::Update(update) => {
                        self.doc
                            .transact_mut()
                            .apply_update(Update::decode_v1(&update)?)?;
                    }
                    Frame::Awareness(_) | Frame::QueryAwareness => {}
                },
                Message::Text(text) => self.notices.push(serde_json::from_str(&text)?),
                Message::Close(_) => bail!("closed while waiting for {what}"),
                _ => {}
            }
            if step2.is_none() && done(self) {
                return Ok(());
            }
        }
    }

    pub(crate) async fn wait_for_code(&mut self, want: &str) -> Result<()> {
        let want = want.to_owned();
        self.pump_until(&format!("code {want:?}"), move |e| e.code() == want, None)
            .await
    }

    /// Waits for a notice matching `pred` and returns it.
    pub(crate) async fn notice(
        &mut self,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        self.pump_until(what, |e| e.notices.iter().any(&pred), None)
            .await?;
        let at = self.notices.iter().position(&pred).context("the notice")?;
        Ok(self.notices.remove(at))
    }
}

async fn connect(app: &TestApp, interview: &str) -> Result<Socket> {
    let url = format!(
        "{}/api/interviews/{interview}/workspace/socket",
        app.base.replacen("http", "ws", 1)
    );
    let (socket, _) = tokio_tungstenite::connect_async(url).await?;
    Ok(socket)
}

async fn send_text(socket: &mut Socket, value: Value) -> Result<()> {
    socket.send(Message::Text(value.to_string().into())).await?;
    Ok(())
}

async fn next_text(socket: &mut Socket) -> Result<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.next()).await? {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text)?),
            Some(Ok(_)) => continue,
            other => bail!("no text message: {other:?}"),
        }
    }
}

/// What the server answers a socket that authenticates with `access`.
async fn first_answer(app: &TestApp, interview: &str, access: &str) -> Result<Value> {
    let mut socket = connect(app, interview).await?;
    send_text(&mut socket, json!({ "type": "auth", "token": access })).await?;
    next_text(&mut socket).await
}

/// A server whose editors check their access on their own only once an hour: what ends an
/// editor's access in a test must be the change itself.
async fn spawn_without_periodic_checks(backend: Backend) -> Result<TestApp> {
    TestApp::spawn_with(backend, &[("execution.editor_recheck_secs", json!(3600))]).await
}

async fn open_sockets_lose_access_when_it_changes(backend: Backend) -> Result<()> {
    let app = spawn_without_periodic_checks(backend).await?;
    let People {
        interview:
            Interview {
                id,
                interviewer,
                candidate,
            },
        ..
    } = people(&app).await?;
    let mut cand = Editor::open(&app, &id, &candidate).await?;
    let mut ivy = Editor::open(&app, &id, &interviewer).await?;
    assert_eq!(ivy.welcome["can_edit"], true);
    let is_access_changed = |n: &Value| n["error"]["code"] == "access_changed";

    // A reissued invite ends the candidate's session: her open editor is closed at once, and
    // her old token opens no other.
    let shown = expect_json(
        app.get(&format!("/api/interviews/{id}"), Some(&interviewer))
            .await?,
        StatusCode::OK,
    )
    .await?;
    let cand_id = shown["participants"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["role"] == "candidate"))
        .map(|p| text(&p["id"]))
        .context("the candidate")??;
    expect_json(
        app.post(
            &format!("/api/interviews/{id}/participants/{cand_id}/invite"),
            json!({}),
            Some(&interviewer),
        )
        .await?,
        StatusCode::CREATED,
    )
    .await?;
    cand.notice("the candidate's access ending", is_access_changed)
        .await?;
    let again = first_answer(&app, &id, &candidate).await?;
    assert_eq!(again["error"]["code"], "unauthenticated", "{again}");

    // Cancelled, the interview's code turns read-only for its interviewer too.
    expect_json(
        app.post(
            &format!("/api/interviews/{id}/cancel"),
            json!({}),
            Some(&interviewer),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    ivy.notice("the interviewer's access changing", is_access_changed)
        .await?;
    let reopened = Editor::open(&app, &id, &interviewer).await?;
    assert_eq!(reopened.welcome["can_edit"], false);
    assert_eq!(reopened.welcome["can_run"], true);
    Ok(())
}

async fn someone_removed_from_the_room_loses_its_code_until_let_back_in(
    backend: Backend,
) -> Result<()> {
    let app = spawn_without_periodic_checks(backend).await?;
    let People {
        interview:
            Interview {
                id,
                interviewer,
                candidate,
            },
        ..
    } = people(&app).await?;
    let (mut ivy_room, _) = crate::rtc::join(&app, &id, &interviewer).await?;
    let (mut cas_room, joined) = crate::rtc::join(&app, &id, &candidate).await?;
    let cas_id = text(&joined["you"]["identity"])?;
    let mut cas = Editor::open(&app, &id, &candidate).await?;

    crate::rtc::send(
        &mut ivy_room,
        json!({ "type": "moderate_remove", "participant": cas_id }),
    )
    .await?;
    crate::rtc::next_of(&mut cas_room, "removed").await?;
    cas.notice("the removed candidate's access ending", |n| {
        n["error"]["code"] == "access_changed"
    })
    .await?;
    let refused = first_answer(&app, &id, &candidate).await?;
    assert_eq!(refused["error"]["code"], "not_found", "{refused}");
    expect_error(
        app.get(&format!("/api/interviews/{id}/workspace"), Some(&candidate))
            .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;

    crate::rtc::send(
        &mut ivy_room,
        json!({ "type": "readmit", "participant": cas_id }),
    )
    .await?;
    // The readmission reaches the hub through the room's task: asked again until it has.
    let mut back = None;
    for _ in 0..50 {
        if let Ok(editor) = Editor::open(&app, &id, &candidate).await {
            back = Some(editor);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back = back.context("the readmitted candidate's editor")?;
    assert_eq!(back.welcome["can_edit"], true);
    Ok(())
}

async fn a_deactivated_account_leaves_its_rooms_and_editors_at_once(
    backend: Backend,
) -> Result<()> {
    let app = spawn_without_periodic_checks(backend).await?;
    let admin = app
        .user_with_role("root@example.com", AccountRole::Admin)
        .await?;
    let People {
        interview:
            Interview {
                id,
                interviewer,
                candidate,
            },
        ..
    } = people(&app).await?;
    let me = expect_json(
        app.get("/api/me", Some(&interviewer)).await?,
        StatusCode::OK,
    )
    .await?;
    let ivy_user = text(&me["id"])?;
    let (mut ivy_room, joined) = crate::rtc::join(&app, &id, &interviewer).await?;
    let ivy_identity = text(&joined["you"]["identity"])?;
    let (mut cas_room, _) = crate::rtc::join(&app, &id, &candidate).await?;
    let mut ivy = Editor::open(&app, &id, &interviewer).await?;
    let mut cas = Editor::open(&app, &id, &candidate).await?;
    // A join token fetched before the deactivation, not used yet.
    let unused_join_token = crate::rtc::join_token(&app, &id, &interviewer).await?;

    expect_json(
        app.put(
            &format!("/api/admin/users/{ivy_user}/active"),
            json!({ "active": false }),
            Some(&admin.access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    // Her room connection is ended with the reason and the others see her go...
    let removed = crate::rtc::next_of(&mut ivy_room, "removed").await?;
    assert_eq!(removed["reason"], "session_ended", "{removed}");
    let left = crate::rtc::next_of(&mut cas_room, "participant_left").await?;
    assert_eq!(left["participant"], ivy_identity.as_str(), "{left}");
    // ...her editor is closed at once (the admin's change asks it)...
    ivy.notice("the deactivated interviewer's editor closing", |n| {
        n["error"]["code"] == "access_changed"
    })
    .await?;
    // ...and she can neither come back to the room nor open the code again.
    expect_error(
        app.post(
            &format!("/api/interviews/{id}/join"),
            json!({}),
            Some(&interviewer),
        )
        .await?,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await?;
    let refused = first_answer(&app, &id, &interviewer).await?;
    assert_eq!(refused["error"]["code"], "unauthenticated", "{refused}");
    let mut replay = crate::rtc::connect(&app, &id).await?;
    crate::rtc::send(
        &mut replay,
        json!({ "type": "join", "version": 1, "token": unused_join_token }),
    )
    .await?;
    let answer = crate::rtc::next_of(&mut replay, "error").await?;
    assert_eq!(answer["code"], "session_ended", "{answer}");
    // The candidate's editor carries on: what she types reaches a new reader.
    cas.insert(0, "still here").await?;
    let mut reader = Editor::open(&app, &id, &candidate).await?;
    reader.wait_for_code("still here").await?;
    Ok(())
}

/// An interview with a candidate, an interviewer and an observer, each signed in.
pub(crate) struct People {
    pub(crate) interview: Interview,
    pub(crate) observer: String,
}

pub(crate) async fn people(app: &TestApp) -> Result<People> {
    let interviewer = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let observer = app
        .user_with_role("olly@example.com", AccountRole::Interviewer)
        .await?;
    let mut body = interview_body("cas@example.com");
    body["participants"] = json!([
        { "email": "cas@example.com", "display_name": "Casey Candidate", "role": "candidate" },
        { "email": "olly@example.com", "role": "observer" },
    ]);
    let created = app.schedule(&interviewer.access, body).await?;
    let candidate = guest_sessions(app, &created)
        .await?
        .into_iter()
        .next()
        .context("the candidate's invite")?;
    Ok(People {
        interview: Interview {
            id: text(&created["interview"]["id"])?,
            interviewer: interviewer.access,
            candidate,
        },
        observer: observer.access,
    })
}

async fn concurrent_edits_converge_and_survive_a_restart(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let People {
        interview:
            Interview {
                id,
                interviewer,
                candidate,
            },
        observer,
    } = people(&app).await?;
    let mut cand = Editor::open(&app, &id, &candidate).await?;
    let mut ivy = Editor::open(&app, &id, &interviewer).await?;
    assert_eq!(cand.welcome["can_edit"], true);
    assert_eq!(ivy.welcome["can_run"], true);

    cand.insert(0, "def f():\n    return 1\n").await?;
    ivy.wait_for_code("def f():\n    return 1\n").await?;
    let first_change = first_change_at(&app, &id, &interviewer).await?;
    // Changes are timed to the millisecond: the next ones land in a later one, however fast
    // this machine answers, so the text at the first change's time is that change alone.
    tokio::time::sleep(Duration::from_millis(2)).await;
    // Both type into the same line before seeing each other.
    cand.insert(19, "0").await?;
    ivy.insert(19, " + 2").await?;
    let both = "def f():\n    return 1\n".len() + 1 + " + 2".len();
    cand.pump_until("the interviewer's edit", |e| e.code().len() == both, None)
        .await?;
    ivy.pump_until("the candidate's edit", |e| e.code().len() == both, None)
        .await?;
    let converged = cand.code();
    assert_eq!(ivy.code(), converged, "the same text on both sides");

    // An observer reads but cannot write.
    let mut olly = Editor::open(&app, &id, &observer).await?;
    assert_eq!(olly.code(), converged);
    assert_eq!(olly.welcome["can_edit"], false);
    olly.insert(0, "# hacked\n").await?;
    let refused = olly
        .notice("read_only", |n| n["error"]["code"] == "read_only")
        .await?;
    assert_eq!(refused["type"], "error");
    drop(olly);

    // A late joiner, a reload and the API all see the same text.
    let late = Editor::open(&app, &id, &interviewer).await?;
    assert_eq!(late.code(), converged);
    let now = expect_json(
        app.get(
            &format!("/api/interviews/{id}/workspace"),
            Some(&interviewer),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(now["text"], converged.as_str());
    let then = expect_json(
        app.get(
            &format!("/api/interviews/{id}/workspace?at_ms={first_change}"),
            Some(&interviewer),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(then["text"], "def f():\n    return 1\n");
    assert_eq!(
        first_change_at(&app, &id, &interviewer).await?,
        first_change,
        "later changes leave the first one's time as it was"
    );

    drop((cand, ivy, late));
    let app = app.restart().await?;
    let back = Editor::open(&app, &id, &candidate).await?;
    assert_eq!(back.code(), converged, "the same text after a restart");
    Ok(())
}

/// When the interview's first stored change reached the server (Unix milliseconds).
async fn first_change_at(app: &TestApp, id: &str, access: &str) -> Result<i64> {
    expect_json(
        app.get(
            &format!("/api/interviews/{id}/workspace/history"),
            Some(access),
        )
        .await?,
        StatusCode::OK,
    )
    .await?["changes"][0]["at_ms"]
        .as_i64()
        .context("a change time")
}

async fn who_sees_edits_and_runs_the_code(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let People {
        interview:
            Interview {
                id,
                interviewer,
                candidate,
            },
        observer,
    } = people(&app).await?;
    // Someone from another interview sees nothing.
    let stranger = app
        .user_with_role("stan@example.com", AccountRole::Interviewer)
        .await?;
    app.schedule(&stranger.access, interview_body("other@example.com"))
        .await?;
    expect_error(
        app.get(
            &format!("/api/interviews/{id}/workspace"),
            Some(&stranger.access),
        )
        .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;
    let mut socket = connect(&app, &id).await?;
    send_text(
        &mut socket,
        json!({ "type": "auth", "token": stranger.access }),
    )
    .await?;
    assert_eq!(next_text(&mut socket).await?["error"]["code"], "not_found");
    let mut socket = connect(&app, &id).await?;
    send_text(&mut socket, json!({ "type": "auth", "token": "forged" })).await?;
    assert_eq!(
        next_text(&mut socket).await?["error"]["code"],
        "unauthenticated"
    );

    // The candidate writes Python and runs it; the interviewer sees the run and its output.
    let mut cand = Editor::open(&app, &id, &candidate).await?;
    let mut ivy = Editor::open(&app, &id, &interviewer).await?;
    cand.edit(|txn, text, meta| {
        meta.insert(txn, "language", "python");
        text.insert(txn, 0, "name = input()\nprint(f'hello {name[::-1]}')\n");
    })
    .await?;
    ivy.wait_for_code("name = input()\nprint(f'hello {name[::-1]}')\n")
        .await?;
    let run = expect_json(
        app.post(
            &format!("/api/interviews/{id}/runs"),
            json!({ "stdin": "ydac" }),
            Some(&candidate),
        )
        .await?,
        StatusCode::ACCEPTED,
    )
    .await?;
    let run_id = text(&run["id"])?;
    assert_eq!(run["language"], "python");
    for editor in [&mut ivy, &mut cand] {
        let done = editor
            .notice("the run's result", |n| {
                n["type"] == "run"
                    && n["run"]["id"] == run_id.as_str()
                    && n["run"]["status"] == "finished"
            })
            .await?;
        assert_eq!(done["run"]["verdict"], "ok", "{done}");
        assert_eq!(done["run"]["stdout"], "hello cady\n");
        assert_eq!(done["run"]["requested_by"], "Casey Candidate");
    }
    let runs = expect_json(
        app.get(&format!("/api/interviews/{id}/runs"), Some(&observer))
            .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(runs[0]["stdout"], "hello cady\n", "kept with the interview");

    // An observer may look, not run.
    expect_error(
        app.post(
            &format!("/api/interviews/{id}/runs"),
            json!({}),
            Some(&observer),
        )
        .await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    // Bad input gets a clear error.
    expect_error(
        app.post(
            &format!("/api/interviews/{id}/runs"),
            json!({ "stdin": "x".repeat(65 * 1024 + 1) }),
            Some(&candidate),
        )
        .await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    cand.edit(|txn, _, meta| {
        meta.insert(txn, "language", "cobol");
    })
    .await?;
    ivy.pump_until("the language change", |_| true, None)
        .await
        .ok();
    let deadline = Instant::now() + WAIT;
    loop {
        let response = app
            .post(
                &format!("/api/interviews/{id}/runs"),
                json!({}),
                Some(&candidate),
            )
            .await?;
        if response.status() == StatusCode::CONFLICT {
            expect_error(response, StatusCode::CONFLICT, "unknown_language").await?;
            break;
        }
        if Instant::now() > deadline {
            bail!("the language change never reached the server");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Hostile programs, each contained, while another interview's editor keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_code_is_contained_and_the_server_carries_on() -> Result<()> {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("execution.limits.wall_secs", json!(3)),
            ("execution.runs_per_minute", json!(60)),
        ],
    )
    .await?;
    let target = interview(&app).await?;
    let mut cand = Editor::open(&app, &target.id, &target.candidate).await?;
    cand.edit(|txn, _, meta| {
        meta.insert(txn, "language", "python");
    })
    .await?;
    // A second interview, whose editors must not notice anything.
    let other = {
        let created = app
            .schedule(&target.interviewer, interview_body("nina@example.com"))
            .await?;
        text(&created["interview"]["id"])?
    };
    let mut a = Editor::open(&app, &other, &target.interviewer).await?;
    let mut b = Editor::open(&app, &other, &target.interviewer).await?;

    let data_dir = app.settings.data.dir.display().to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "fork bomb",
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n".into(),
            "time_limit_exceeded",
        ),
        ("infinite loop", "while True:\n    pass\n".into(), "time_limit_exceeded"),
        (
            "memory hog",
            "a = []\nwhile True:\n    a.append(bytearray(8 << 20))\n".into(),
            "memory_limit_exceeded",
        ),
        (
            "100 MiB print",
            "import sys\nline = 'x' * 1023 + '\\n'\nfor _ in range(100 * 1024):\n    sys.stdout.write(line)\n".into(),
            "output_limit_exceeded",
        ),
        (
            "database socket",
            "import socket\nsocket.create_connection(('127.0.0.1', 5432), timeout=2)\n".into(),
            "failed",
        ),
        (
            "data directory",
            format!("import os\nprint(os.listdir('{data_dir}'))\n"),
            "failed",
        ),
        ("shadow", "print(open('/etc/shadow').read())\n".into(), "failed"),
        (
            "write outside",
            "open('/usr/bin/sightline-was-here', 'w').write('x')\n".into(),
            "failed",
        ),
    ];
    for (name, code, verdict) in cases {
        let current = cand.code();
        let len = u32::try_from(current.len())?;
        cand.edit(|txn, text, _| {
            text.remove_range(txn, 0, len);
            text.insert(txn, 0, &code);
        })
        .await?;
        // The server has the code once the other side of the document could read it back.
        wait_for_server_code(&app, &target, &code).await?;
        let run = expect_json(
            app.post(
                &format!("/api/interviews/{}/runs", target.id),
                json!({}),
                Some(&target.candidate),
            )
            .await?,
            StatusCode::ACCEPTED,
        )
        .await?;
        let run_id = text(&run["id"])?;
        let done = cand
            .notice(name, |n| {
                n["run"]["id"] == run_id.as_str() && n["run"]["status"] == "finished"
            })
            .await?;
        assert_eq!(done["run"]["verdict"], verdict, "{name}: {done}");
        assert!(
            done["run"]["stdout"].as_str().map_or(0, str::len) <= 64 * 1024,
            "{name}: output is cut"
        );
        // The server is healthy and the other interview's editors still talk.
        let health = app.get("/healthz", None).await?;
        assert!(health.status().is_success(), "{name}: health");
        let line = format!("after {name}\n");
        a.insert(0, &line).await?;
        b.pump_until(name, |e| e.code().starts_with(&line), None)
            .await?;
    }
    assert!(!std::path::Path::new("/usr/bin/sightline-was-here").exists());
    Ok(())
}

async fn wait_for_server_code(app: &TestApp, interview: &Interview, code: &str) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = expect_json(
            app.get(
                &format!("/api/interviews/{}/workspace", interview.id),
                Some(&interview.interviewer),
            )
            .await?,
            StatusCode::OK,
        )
        .await?;
        if now["text"] == code {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the server never had the code: {now}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A burst past the queue is refused as busy, never a crash; an interview past its rate is
/// told to wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_queues_then_is_refused_and_each_interview_has_a_rate() -> Result<()> {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("execution.concurrency", json!(1)),
            ("execution.max_queued", json!(1)),
            ("execution.runs_per_minute", json!(4)),
        ],
    )
    .await?;
    let target = interview(&app).await?;
    let mut cand = Editor::open(&app, &target.id, &target.candidate).await?;
    // Each run sleeps as long as its input says: the first long enough that the others are
    // sent while it runs, however slowly this machine starts Python.
    let code = "import time\ntime.sleep(float(input()))\nprint('slept')\n";
    cand.edit(|txn, text, meta| {
        meta.insert(txn, "language", "python");
        text.insert(txn, 0, code);
    })
    .await?;
    wait_for_server_code(&app, &target, code).await?;
    let path = format!("/api/interviews/{}/runs", target.id);
    let burst_from = Instant::now();
    let first = expect_json(
        app.post(&path, json!({ "stdin": "6" }), Some(&target.candidate))
            .await?,
        StatusCode::ACCEPTED,
    )
    .await?;
    assert_eq!(first["status"], "running");
    let second = expect_json(
        app.post(&path, json!({ "stdin": "0" }), Some(&target.interviewer))
            .await?,
        StatusCode::ACCEPTED,
    )
    .await?;
    assert_eq!(second["status"], "queued");
    expect_error(
        app.post(&path, json!({}), Some(&target.candidate)).await?,
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
    )
    .await?;
    for run in [&first, &second] {
        let id = text(&run["id"])?;
        let done = cand
            .notice("a queued run's end", |n| {
                n["run"]["id"] == id.as_str() && n["run"]["status"] == "finished"
            })
            .await?;
        assert_eq!(done["run"]["stdout"], "slept\n");
    }
    // Four runs a minute: two ran, the busy one counted, one more is allowed, then no more.
    // (A run comes back every 15 s: past that, a machine this slow may be allowed one more.)
    let refill = Duration::from_secs(15);
    let mut accepted = 0;
    let limited = loop {
        let response = app
            .post(&path, json!({ "stdin": "0" }), Some(&target.candidate))
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            break response;
        }
        accepted += 1;
        let allowed = 1 + burst_from.elapsed().as_secs() / refill.as_secs();
        if accepted > allowed {
            bail!(
                "{accepted} more runs allowed within {:?}",
                burst_from.elapsed()
            );
        }
        // Its end, so that the next one is not refused for being one too many at once.
        let id = text(&response.json::<Value>().await?["id"])?;
        cand.notice("the run's end", |n| {
            n["run"]["id"] == id.as_str() && n["run"]["status"] == "finished"
        })
        .await?;
    };
    assert!(accepted >= 1, "the fourth run of the minute is allowed");
    assert!(limited.headers().contains_key("retry-after"));
    expect_error(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await?;
    Ok(())
}

/// Code and runs of an interview that ended longer ago than `execution.code_retention_days`
/// are deleted (at start-up, then hourly); a recent interview's stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_and_runs_go_after_their_retention_period() -> Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let ivy = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let mut ids = Vec::new();
    for candidate in ["old@example.com", "new@example.com"] {
        let created = app.schedule(&ivy.access, interview_body(candidate)).await?;
        ids.push(text(&created["interview"]["id"])?);
    }
    let mut db = app.db().await?;
    for id in &ids {
        sqlx::query(
            "INSERT INTO workspace_updates (interview_id, seq, at_ms, update_b64) \
             VALUES ($1, 1, 1, 'AA==')",
        )
        .bind(id)
        .execute(&mut db)
        .await?;
        sqlx::query(
            "INSERT INTO code_runs (id, interview_id, requested_by, language, source, stdin, \
             status, created_at_ms) VALUES ($1, $2, 'Ivy', 'python', 'print(1)', '', \
             'finished', 1)",
        )
        .bind(format!("run-{id}"))
        .bind(id)
        .execute(&mut db)
        .await?;
    }
    // The first ended 200 days ago (the default keeps code 180 days).
    sqlx::query("UPDATE interviews SET scheduled_start = $1 WHERE id = $2")
        .bind(jiff::Timestamp::now().as_second() - 200 * 86_400)
        .bind(&ids[0])
        .execute(&mut db)
        .await?;
    drop(db);
    let app = app.restart().await?;
    let count = async |table: &'static str, id: &str| -> Result<i64> {
        let mut db = app.db().await?;
        let sql = match table {
            "runs" => "SELECT COUNT(*) FROM code_runs WHERE interview_id = $1",
            _ => "SELECT COUNT(*) FROM workspace_updates WHERE interview_id = $1",
        };
        let (n,): (i64,) = sqlx::query_as(sql).bind(id).fetch_one(&mut db).await?;
        Ok(n)
    };
    let deadline = Instant::now() + WAIT;
    while count("runs", &ids[0]).await? + count("code", &ids[0]).await? > 0 {
        anyhow::ensure!(Instant::now() < deadline, "the old code was kept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count("runs", &ids[1]).await?,
        1,
        "a recent interview's run stays"
    );
    assert_eq!(count("code", &ids[1]).await?, 1, "and its code");
    Ok(())
}
