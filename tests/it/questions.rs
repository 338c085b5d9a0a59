//! The question bank through the real server: interviewers write and find questions, attach
//! them to an interview and reveal them; the starter code lands in everyone's editor; hidden
//! tests run against the current code for the interviewer only; a candidate never sees a
//! question before it is revealed, nor any hidden test.

use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, error_fields, expect_error, expect_json, interview_body, text,
};
use crate::rtc::Interview;
use crate::rtc::guest_sessions;
use crate::workspace::{Editor, People, people};

crate::on_both_backends!(
    questions_are_revealed_loaded_and_tested,
    questions_are_attached_when_scheduling
);

pub(crate) fn question() -> Value {
    json!({
        "title": "Reverse a line",
        "prompt": "Read one line and print it **reversed**.",
        "difficulty": "easy",
        "tags": ["strings", "warm-up"],
        "starter_code": {
            "python": "line = input()\nprint(line[::-1])\n",
            "javascript": "// read stdin and print it reversed\n"
        },
        "hidden_tests": [
            { "stdin": "abc\n", "expected_stdout": "cba\n" },
            { "stdin": "racecar", "expected_stdout": "racecar" },
            { "stdin": "xy", "expected_stdout": "nope" }
        ]
    })
}

async fn questions_are_revealed_loaded_and_tested(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let People {
        interview:
            Interview {
                id,
                interviewer,
                candidate,
            },
        ..
    } = people(&app).await?;

    // Writing and finding questions is for staff.
    expect_error(
        app.post("/api/questions", question(), Some(&candidate))
            .await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    let mut bad = question();
    bad["starter_code"] = json!({ "cobol": "DISPLAY 'HI'." });
    expect_error(
        app.post("/api/questions", bad, Some(&interviewer)).await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    let created = expect_json(
        app.post("/api/questions", question(), Some(&interviewer))
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    let qid = text(&created["id"])?;
    assert_eq!(created["hidden_test_count"], 3);
    let found = expect_json(
        app.get("/api/questions?q=REVERSED&tag=strings", Some(&interviewer))
            .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    let none = expect_json(
        app.get("/api/questions?tag=graphs", Some(&interviewer))
            .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(none.as_array().map(Vec::len), Some(0));

    // Attached, it stays hidden from the candidate.
    expect_json(
        app.post(
            &format!("/api/interviews/{id}/questions"),
            json!({ "question_id": qid }),
            Some(&interviewer),
        )
        .await?,
        StatusCode::CREATED,
    )
    .await?;
    let seen = expect_json(
        app.get(&format!("/api/interviews/{id}/questions"), Some(&candidate))
            .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(seen, json!([]));
    expect_error(
        app.get(
            &format!("/api/interviews/{id}/questions/{qid}"),
            Some(&candidate),
        )
        .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;
    expect_error(
        app.post(
            &format!("/api/interviews/{id}/questions/{qid}/reveal"),
            json!({}),
            Some(&candidate),
        )
        .await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;

    // Revealed with its starter code: both editors get it, in Python.
    let mut cand = Editor::open(&app, &id, &candidate).await?;
    let mut ivy = Editor::open(&app, &id, &interviewer).await?;
    expect_json(
        app.post(
            &format!("/api/interviews/{id}/questions/{qid}/reveal"),
            json!({ "load_starter_code": true, "language": "python" }),
            Some(&interviewer),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    let starter = "line = input()\nprint(line[::-1])\n";
    cand.wait_for_code(starter).await?;
    ivy.wait_for_code(starter).await?;
    cand.notice("the reveal", |n| n["type"] == "question_revealed")
        .await?;
    let shown = expect_json(
        app.get(
            &format!("/api/interviews/{id}/questions/{qid}"),
            Some(&candidate),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(shown["title"], "Reverse a line");
    assert!(shown.get("hidden_tests").is_none(), "{shown}");
    assert!(shown["revealed_at_ms"].is_i64());

    // The hidden tests run for the interviewer: two pass, the third expects something else.
    let report = expect_json(
        app.post(
            &format!("/api/interviews/{id}/questions/{qid}/tests"),
            json!({}),
            Some(&interviewer),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(report["language"], "python");
    assert_eq!(report["passed"], 2, "{report}");
    let passed: Vec<bool> = report["results"]
        .as_array()
        .map(|r| r.iter().map(|t| t["passed"] == true).collect())
        .unwrap_or_default();
    assert_eq!(passed, [true, true, false]);
    assert_eq!(report["results"][2]["stdout"], "yx\n");
    expect_error(
        app.post(
            &format!("/api/interviews/{id}/questions/{qid}/tests"),
            json!({}),
            Some(&candidate),
        )
        .await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    Ok(())
}

async fn questions_are_attached_when_scheduling(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let ivy = app
        .user_with_role("ivy@example.com", sightline_api::AccountRole::Interviewer)
        .await?
        .access;
    let qid = text(
        &expect_json(
            app.post("/api/questions", question(), Some(&ivy)).await?,
            StatusCode::CREATED,
        )
        .await?["id"],
    )?;
    let mut other = question();
    other["title"] = json!("Sum two numbers");
    let second = text(
        &expect_json(
            app.post("/api/questions", other, Some(&ivy)).await?,
            StatusCode::CREATED,
        )
        .await?["id"],
    )?;

    // An unknown question refuses the whole interview, naming which one.
    let mut body = interview_body("cas@example.com");
    body["question_ids"] = json!([qid, "no-such-question"]);
    let refused = expect_error(
        app.post("/api/interviews", body, Some(&ivy)).await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    assert_eq!(error_fields(&refused), vec!["question_ids[1]".to_owned()]);
    let my = expect_json(
        app.get("/api/interviews/my", Some(&ivy)).await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(my["upcoming"], json!([]), "nothing half-created");

    // Attached in the order given (a repeat counts once), hidden from the candidate.
    let mut body = interview_body("cas@example.com");
    body["question_ids"] = json!([second, qid, second]);
    let created = app.schedule(&ivy, body).await?;
    let id = text(&created["interview"]["id"])?;
    let attached = expect_json(
        app.get(&format!("/api/interviews/{id}/questions"), Some(&ivy))
            .await?,
        StatusCode::OK,
    )
    .await?;
    let titles: Vec<&str> = attached
        .as_array()
        .map(|a| a.iter().filter_map(|q| q["title"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(titles, ["Sum two numbers", "Reverse a line"]);
    let candidate = guest_sessions(&app, &created)
        .await?
        .into_iter()
        .next()
        .context("the candidate's invite")?;
    let seen = expect_json(
        app.get(&format!("/api/interviews/{id}/questions"), Some(&candidate))
            .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(seen, json!([]));
    Ok(())
}
