//! Private notes, scorecard templates and scorecards through the real server: a note is read
//! by its author alone; admins manage templates; each interviewer submits one scorecard once
//! the interview has begun; interviewers, assigned reviewers and admins read them; the
//! dashboard says whose are missing; a template edited later never changes a submitted card.

use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sightline_api::AccountRole;
use sqlx::Connection;

use crate::helpers::{Backend, TestApp, expect_error, expect_json, interview_body, text};
use crate::rtc::guest_sessions;

crate::on_both_backends!(notes_stay_private_and_scorecards_reach_reviewers);

/// The interview's line on `access`'s dashboard.
async fn dashboard_line(app: &TestApp, access: &str, id: &str) -> Result<Value> {
    let my = expect_json(
        app.get("/api/interviews/my", Some(access)).await?,
        StatusCode::OK,
    )
    .await?;
    ["upcoming", "past"]
        .iter()
        .filter_map(|list| my[list].as_array())
        .flatten()
        .find(|line| line["id"] == id)
        .cloned()
        .with_context(|| format!("{id} not on the dashboard: {my}"))
}

fn card(template: &str, scores: &[u8]) -> Value {
    json!({
        "template_id": template,
        "ratings": scores.iter().map(|s| json!({ "score": s, "comment": format!("scored {s}") })).collect::<Vec<_>>(),
        "recommendation": "yes",
        "summary": "  Solid on the basics; tests came late.  ",
    })
}

async fn notes_stay_private_and_scorecards_reach_reviewers(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let ivy = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?
        .access;
    let ian = app
        .user_with_role("ian@example.com", AccountRole::Interviewer)
        .await?
        .access;
    let olly = app
        .user_with_role("olly@example.com", AccountRole::Interviewer)
        .await?
        .access;
    let rita = app
        .user_with_role("rita@example.com", AccountRole::Reviewer)
        .await?
        .access;
    let ada = app
        .user_with_role("ada@example.com", AccountRole::Admin)
        .await?
        .access;
    let mut body = interview_body("cas@example.com");
    body["participants"] = json!([
        { "email": "cas@example.com", "display_name": "Casey Candidate", "role": "candidate" },
        { "email": "ian@example.com", "display_name": "Ian", "role": "interviewer" },
        { "email": "olly@example.com", "role": "observer" },
        { "email": "rita@example.com", "role": "reviewer" },
    ]);
    let created = app.schedule(&ivy, body).await?;
    let id = text(&created["interview"]["id"])?;
    let cas = guest_sessions(&app, &created)
        .await?
        .into_iter()
        .next()
        .context("the candidate's invite")?;
    let notes = format!("/api/interviews/{id}/notes");
    let scorecards = format!("/api/interviews/{id}/scorecards");
    let mine = format!("/api/interviews/{id}/scorecard");

    // Notes: each interviewer and observer has their own; nobody else reads them.
    let saved = expect_json(
        app.put(
            &notes,
            json!({ "body": "Asked about Big-O early." }),
            Some(&ivy),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert!(saved["updated_at"].is_i64());
    let read = expect_json(app.get(&notes, Some(&ivy)).await?, StatusCode::OK).await?;
    assert_eq!(read["body"], "Asked about Big-O early.");
    let his = expect_json(app.get(&notes, Some(&ian)).await?, StatusCode::OK).await?;
    assert_eq!(
        his,
        json!({ "body": "", "updated_at": null }),
        "Ian's own, empty"
    );
    expect_json(
        app.put(&notes, json!({ "body": "quiet observer" }), Some(&olly))
            .await?,
        StatusCode::OK,
    )
    .await?;
    for (who, token, status, code) in [
        ("the candidate", &cas, StatusCode::NOT_FOUND, "not_found"),
        ("a reviewer", &rita, StatusCode::FORBIDDEN, "forbidden"),
        ("an admin", &ada, StatusCode::FORBIDDEN, "forbidden"),
    ] {
        expect_error(app.get(&notes, Some(token)).await?, status, code)
            .await
            .with_context(|| format!("{who} reads notes"))?;
        expect_error(
            app.put(&notes, json!({ "body": "x" }), Some(token)).await?,
            status,
            code,
        )
        .await
        .with_context(|| format!("{who} writes notes"))?;
    }
    expect_error(
        app.put(&notes, json!({ "body": "x".repeat(50_001) }), Some(&ivy))
            .await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    let kept = expect_json(app.get(&notes, Some(&ivy)).await?, StatusCode::OK).await?;
    assert_eq!(
        kept["body"], "Asked about Big-O early.",
        "a refused save loses nothing"
    );

    // Templates: every server has one; admins add and change them.
    let templates = expect_json(
        app.get("/api/scorecard-templates", Some(&ivy)).await?,
        StatusCode::OK,
    )
    .await?;
    let builtin = templates
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "Coding interview"))
        .context("the built-in template")?;
    assert_eq!(builtin["criteria"].as_array().map(Vec::len), Some(4));
    let template = json!({
        "name": "Systems round",
        "criteria": [
            { "name": "Design", "guidance": "4: weighs trade-offs unprompted" },
            { "name": "Coding" }
        ]
    });
    expect_error(
        app.post("/api/scorecard-templates", template.clone(), Some(&ivy))
            .await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    expect_error(
        app.get("/api/scorecard-templates", Some(&rita)).await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    expect_error(
        app.post(
            "/api/scorecard-templates",
            json!({ "name": "Empty", "criteria": [] }),
            Some(&ada),
        )
        .await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    let twice =
        json!({ "name": "Twice", "criteria": [{ "name": "Design" }, { "name": " design " }] });
    expect_error(
        app.post("/api/scorecard-templates", twice, Some(&ada))
            .await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    let systems = expect_json(
        app.post("/api/scorecard-templates", template.clone(), Some(&ada))
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    let systems_id = text(&systems["id"])?;

    // Before the interview begins no scorecard is taken, and the dashboard asks for none.
    expect_error(
        app.put(&mine, card(&systems_id, &[3, 2]), Some(&ivy))
            .await?,
        StatusCode::CONFLICT,
        "interview_not_started",
    )
    .await?;
    assert!(
        dashboard_line(&app, &ivy, &id)
            .await?
            .get("scorecards")
            .is_none()
    );

    let mut db = app.db().await?;
    let started = jiff::Timestamp::now().as_second() - 600;
    sqlx::query("UPDATE interviews SET scheduled_start = CAST($1 AS BIGINT) WHERE id = $2")
        .bind(started)
        .bind(&id)
        .execute(&mut db)
        .await?;
    db.close().await?;

    // Once begun, every interviewer's card is expected.
    let line = dashboard_line(&app, &ivy, &id).await?;
    assert_eq!(
        line["scorecards"],
        json!({ "submitted": 0, "expected": 2, "missing": ["ivy", "Ian"], "mine_missing": true }),
    );
    assert!(
        dashboard_line(&app, &cas, &id)
            .await?
            .get("scorecards")
            .is_none()
    );

    // Only the interview's interviewers submit, one rating of 1 to 4 per criterion.
    for (scores, field) in [(&[3][..], "ratings"), (&[3, 5][..], "ratings[1].score")] {
        let refused = expect_error(
            app.put(&mine, card(&systems_id, scores), Some(&ivy))
                .await?,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await?;
        assert!(
            refused.to_string().contains(field),
            "{field} named: {refused}"
        );
    }
    expect_error(
        app.put(&mine, card(&systems_id, &[3, 2]), Some(&cas))
            .await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;
    for token in [&olly, &rita, &ada] {
        expect_error(
            app.put(&mine, card(&systems_id, &[3, 2]), Some(token))
                .await?,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await?;
    }
    // A whole number written as 3.0 is a whole number (JSON Schema's integer).
    let mut written = card(&systems_id, &[3, 2]);
    written["ratings"][0]["score"] = json!(3.0);
    let after = expect_json(app.put(&mine, written, Some(&ivy)).await?, StatusCode::OK).await?;
    assert_eq!(after["scorecards"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        after["expected"],
        json!([
            { "participant_id": after["expected"][0]["participant_id"], "display_name": "ivy", "submitted": true },
            { "participant_id": after["expected"][1]["participant_id"], "display_name": "Ian", "submitted": false },
        ])
    );
    let first = &after["scorecards"][0];
    assert_eq!(first["author"], "ivy");
    assert_eq!(first["template_id"], systems_id.as_str());
    assert_eq!(first["summary"], "Solid on the basics; tests came late.");
    assert_eq!(first["ratings"][0]["name"], "Design");
    assert_eq!(first["ratings"][0]["score"], 3);
    let submitted_at = first["submitted_at"].clone();

    // The dashboard now says Ian's is missing, to Ian as to the reviewer.
    for (token, mine_missing) in [(&ivy, false), (&ian, true), (&rita, false)] {
        let line = dashboard_line(&app, token, &id).await?;
        assert_eq!(
            line["scorecards"],
            json!({ "submitted": 1, "expected": 2, "missing": ["Ian"], "mine_missing": mine_missing }),
        );
    }

    // Interviewers, the assigned reviewer and admins read them; an observer may not, and the
    // candidate is told there is nothing.
    for token in [&ivy, &ian, &rita, &ada] {
        let seen = expect_json(app.get(&scorecards, Some(token)).await?, StatusCode::OK).await?;
        assert_eq!(seen["scorecards"][0]["ratings"][1]["comment"], "scored 2");
    }
    expect_error(
        app.get(&scorecards, Some(&olly)).await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    expect_error(
        app.get(&scorecards, Some(&cas)).await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;

    // A template changed and retired later: the submitted card keeps what it was filled
    // against; nobody starts a new card from it, but its author may revise theirs.
    let mut changed = template.clone();
    changed["criteria"][0]["name"] = json!("Architecture");
    changed["archived"] = json!(true);
    let retired = expect_json(
        app.put(
            &format!("/api/scorecard-templates/{systems_id}"),
            changed,
            Some(&ada),
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(retired["archived"], true);
    let seen = expect_json(app.get(&scorecards, Some(&rita)).await?, StatusCode::OK).await?;
    assert_eq!(seen["scorecards"][0]["ratings"][0]["name"], "Design");
    let refused = expect_error(
        app.put(&mine, card(&systems_id, &[2, 2]), Some(&ian))
            .await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    assert!(refused.to_string().contains("retired"), "{refused}");
    let builtin_id = text(&builtin["id"])?;
    expect_json(
        app.put(&mine, card(&builtin_id, &[2, 3, 2, 4]), Some(&ian))
            .await?,
        StatusCode::OK,
    )
    .await?;
    let mut revised = card(&systems_id, &[4, 4]);
    revised["recommendation"] = json!("strong_yes");
    let both = expect_json(app.put(&mine, revised, Some(&ivy)).await?, StatusCode::OK).await?;
    assert_eq!(both["scorecards"].as_array().map(Vec::len), Some(2));
    let ivys = both["scorecards"]
        .as_array()
        .and_then(|cards| cards.iter().find(|c| c["author"] == "ivy"))
        .context("ivy's card")?;
    assert_eq!(ivys["recommendation"], "strong_yes");
    assert_eq!(ivys["submitted_at"], submitted_at, "first submission kept");
    let line = dashboard_line(&app, &rita, &id).await?;
    assert_eq!(
        line["scorecards"],
        json!({ "submitted": 2, "expected": 2, "missing": [], "mine_missing": false }),
    );
    Ok(())
}
