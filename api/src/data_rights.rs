//! A candidate's data rights, by their email address: everything Sightline holds about them as
//! one document (their interviews, invites, phone pairings, consents, recordings with links to
//! watch them, proctoring evidence, the code of their interviews and its runs, scorecards about
//! them, their account), and its erasure in one action: recordings and proctoring snapshots
//! deleted from the store (local or S3) and their rows, then in one transaction the rest
//! (`store/data_rights.rs`); scorecards keep only their ratings and recommendations. The audit
//! log keeps that it happened, with counts, never the address.
//!
//! Their access ends first (invites, sessions, phone pairings, consents; they are taken out of
//! any room). An interview whose room is up anywhere, whose recording runs or is still being
//! stored, or whose code is open, is not erased (409): what is being made now would come back
//! after the erasure. Nor is an interview that had other candidates (its recording, code and
//! notes are theirs too).

use serde::Serialize;
use serde_json::{Value, json};
use sightline_signaling::protocol::LeaveReason;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{self, audit, data_rights, interviews, recordings, users, workspace};

/// What an erasure removed.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Erased {
    /// Interviews the candidate took part in (their rows stay, renamed "Erased candidate").
    pub interviews: usize,
    /// Recordings deleted, with every object in the store.
    pub recordings: usize,
    /// Proctoring events deleted, with their snapshots.
    pub proctoring_events: usize,
    /// Scorecards that kept only their ratings and recommendation.
    pub scorecards_emptied: usize,
    /// Whether a candidate account (with the address, or that redeemed one of their invites)
    /// was deleted.
    pub account_deleted: bool,
}

/// The candidate's participant rows and accounts, by address: candidate rows with the address,
/// the candidate account with it, the candidate accounts that redeemed those rows' invites, and
/// the rows those accounts redeemed under other addresses. 404 when there is nothing.
async fn subject(
    state: &AppState,
    email: &str,
) -> Result<(Vec<interviews::ParticipantRow>, Vec<users::UserRow>), ApiError> {
    let pool = state.db.pool();
    let mut rows = data_rights::candidate_rows(pool, email).await?;
    let mut accounts: Vec<users::UserRow> = users::by_email(pool, email)
        .await?
        .filter(|user| user.role == "candidate")
        .into_iter()
        .collect();
    for linked in rows
        .iter()
        .filter_map(|r| r.user_id.clone())
        .collect::<Vec<_>>()
    {
        if accounts.iter().all(|a| a.id != linked)
            && let Some(user) = users::by_id(pool, &linked)
                .await?
                .filter(|user| user.role == "candidate")
        {
            accounts.push(user);
        }
    }
    for account in &accounts {
        for row in data_rights::candidate_rows_of_user(pool, &account.id).await? {
            if rows.iter().all(|r| r.id != row.id) {
                rows.push(row);
            }
        }
    }
    if rows.is_empty() && accounts.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok((rows, accounts))
}

/// Everything held about the candidate with `email`.
pub async fn export(state: &AppState, email: &str) -> Result<Value, ApiError> {
    let (rows, accounts) = subject(state, email).await?;
    let pool = state.db.pool();
    let mut interviews_out = Vec::new();
    for row in &rows {
        let interview = interviews::by_id(pool, &row.interview_id).await?;
        let (zone,): (Option<String>,) =
            sqlx::query_as("SELECT time_zone FROM interview_participants WHERE id = $1")
                .bind(&row.id)
                .fetch_one(pool)
                .await?;
        let invites: Vec<(i64, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT created_at, expires_at, used_at, revoked_at FROM invites \
             WHERE participant_id = $1 ORDER BY created_at",
        )
        .bind(&row.id)
        .fetch_all(pool)
        .await?;
        let pairings: Vec<(i64, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT created_at, used_at, revoked_at FROM phone_pairings \
             WHERE participant_id = $1 ORDER BY created_at",
        )
        .bind(&row.id)
        .fetch_all(pool)
        .await?;
        let consent = async |table: &str| -> Result<Option<i64>, ApiError> {
            let sql = match table {
                "recording" => {
                    "SELECT consented_at FROM recording_consents WHERE participant_id = $1"
                }
                _ => "SELECT consented_at FROM proctoring_consents WHERE participant_id = $1",
            };
            let found: Option<(i64,)> = sqlx::query_as(sql)
                .bind(&row.id)
                .fetch_optional(pool)
                .await?;
            Ok(found.map(|(at,)| at))
        };
        let recorded_consent = consent("recording").await?;
        let proctored_consent = consent("proctoring").await?;
        let recordings_out: Vec<Value> = recordings::for_interview(pool, &row.interview_id)
            .await?
            .into_iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "status": r.status,
                    "started_at": r.started_at,
                    "ended_at": r.ended_at,
                    "duration_ms": r.duration_ms,
                    "view": format!("/api/recordings/{}", r.id),
                })
            })
            .collect();
        let events: Vec<Value> = store::proctoring::for_interview(pool, &row.interview_id)
            .await?
            .into_iter()
            .filter(|e| e.participant_id == row.id)
            .map(|e| {
                json!({
                    "id": e.id,
                    "kind": e.kind,
                    "severity": e.severity,
                    "source": e.source,
                    "started_at_ms": e.started_at_ms,
                    "ended_at_ms": e.ended_at_ms,
                    "snapshots": e.snapshots,
                    "verdict": e.verdict,
                    "review_note": e.review_note,
                })
            })
            .collect();
        let runs: Vec<workspace::RunRow> = workspace::runs(pool, &row.interview_id)
            .await?
            .into_iter()
            .filter(|r| r.participant_id.as_deref() == Some(row.id.as_str()))
            .collect();
        let mut changes = Vec::new();
        for update in workspace::updates(pool, &row.interview_id, None).await? {
            changes.push(update.bytes()?);
        }
        let code = if changes.is_empty() {
            None
        } else {
            tokio::task::spawn_blocking(move || sightline_collab::replay(&changes))
                .await
                .map_err(|err| ApiError::Internal(format!("replaying the code: {err}")))?
                .ok()
                .map(|doc| json!({ "text": doc.text, "language": doc.language }))
        };
        let cards: Vec<Value> = store::scorecards::for_interview(pool, &row.interview_id)
            .await?
            .into_iter()
            .map(|c| {
                json!({
                    "template": c.template_name,
                    "recommendation": c.recommendation,
                    "summary": c.summary,
                    "ratings": serde_json::from_str::<Value>(&c.ratings).unwrap_or(Value::Null),
                    "submitted_at": c.submitted_at,
                })
            })
            .collect();
        interviews_out.push(json!({
            "interview": interview.map(|i| json!({
                "id": i.id,
                "title": i.title,
                "scheduled_start": i.scheduled_start,
                "duration_minutes": i.duration_minutes,
                "time_zone": i.time_zone,
                "status": i.status,
            })),
            "participant": {
                "id": row.id,
                "email": row.email,
                "display_name": row.display_name,
                "role": row.role,
                "time_zone": zone,
            },
            "invites": invites.iter().map(|(created, expires, used, revoked)| json!({
                "created_at": created, "expires_at": expires, "used_at": used, "revoked_at": revoked,
            })).collect::<Vec<_>>(),
            "phone_pairings": pairings.iter().map(|(created, used, revoked)| json!({
                "created_at": created, "used_at": used, "revoked_at": revoked,
            })).collect::<Vec<_>>(),
            "recording_consent_at": recorded_consent,
            "proctoring_consent_at": proctored_consent,
            "recordings": recordings_out,
            "proctoring_events": events,
            "code": code,
            "code_runs": runs,
            "scorecards": cards,
        }));
    }
    Ok(json!({
        "email": email,
        "exported_at": jiff::Timestamp::now().to_string(),
        "accounts": accounts.iter().map(|a| json!({
            "id": a.id,
            "email": a.email,
            "display_name": a.display_name,
            "time_zone": a.time_zone,
            "created_at": a.created_at,
        })).collect::<Vec<_>>(),
        "interviews": interviews_out,
    }))
}

/// Erases the candidate with `email`, on behalf of admin `actor`.
pub async fn erase(state: &AppState, actor: &str, email: &str) -> Result<Erased, ApiError> {
    let (rows, accounts) = subject(state, email).await?;
    let pool = state.db.pool();
    // An interview with another candidate shares its recording, code and notes with them.
    for row in &rows {
        if data_rights::other_candidates(pool, &row.interview_id, &row.id).await? > 0 {
            return Err(ApiError::Conflict {
                code: "shared_interview",
                message: "an interview of this candidate had other candidates too: its \
                          recording, code and notes are theirs as well, and are not erased here"
                    .to_owned(),
            });
        }
    }
    // Their access ends first (the address stays until the end, so asking again finds them):
    // nothing new about them can begin while the rest goes.
    let mut tx = pool.begin().await?;
    for row in &rows {
        data_rights::revoke_access(&mut tx, &row.id).await?;
    }
    tx.commit().await?;
    for row in &rows {
        let room = sightline_signaling::RoomId(row.interview_id.clone());
        state
            .remove_participant(&room, &row.id, LeaveReason::SessionEnded)
            .await;
        state
            .remove_participant(
                &room,
                &crate::pairing::phone_identity(&row.id),
                LeaveReason::SessionEnded,
            )
            .await;
        state.documents.recheck(&row.interview_id).await;
    }
    // Nothing that is being made now: what is made would come back after the erasure.
    for row in &rows {
        let room = sightline_signaling::RoomId(row.interview_id.clone());
        let hosted_elsewhere = match &state.cluster {
            Some(_) => crate::rooms::hosted_anywhere(state, &row.interview_id).await?,
            None => false,
        };
        let recording = recordings::for_interview(pool, &row.interview_id)
            .await?
            .iter()
            .any(|r| r.status == "recording" || state.recordings.recorder().has_spool(&r.id));
        if state.hub.has_room(&room)
            || hosted_elsewhere
            || recording
            || state
                .documents
                .is_open(&row.interview_id)
                .await
                .map_err(|_| ApiError::Unavailable("the shared document is not available"))?
        {
            return Err(ApiError::Conflict {
                code: "interview_in_progress",
                message: "an interview of this candidate is going on, being recorded or its code \
                          is open; erase once it is over (Admin → Live rooms can close its room; \
                          the code closes a minute after its last editor)"
                    .to_owned(),
            });
        }
    }
    let mut erased = Erased {
        interviews: rows.len(),
        ..Erased::default()
    };
    // The store first: a row is only deleted once what it names is gone, so an erasure cut
    // short is finished by asking again.
    for row in &rows {
        for recording in recordings::for_interview(pool, &row.interview_id).await? {
            state.recordings.delete(&recording.id).await?;
            erased.recordings += 1;
        }
        erased.proctoring_events += state.proctoring.erase(&row.interview_id).await?;
    }
    let mut addresses: Vec<String> = vec![email.to_owned()];
    addresses.extend(rows.iter().map(|r| r.email.clone()));
    addresses.extend(accounts.iter().map(|a| a.email.clone()));
    addresses.sort();
    addresses.dedup();
    let mut tx = pool.begin().await?;
    for row in &rows {
        erased.scorecards_emptied +=
            data_rights::erase_participation(&mut tx, &row.interview_id, &row.id).await?;
    }
    for address in &addresses {
        data_rights::forget_mail(&mut tx, address).await?;
    }
    for account in &accounts {
        erased.account_deleted |=
            data_rights::delete_candidate_account(&mut tx, &account.id).await?;
    }
    audit::record(
        &mut *tx,
        actor,
        "candidate.erased",
        "candidate",
        json!({
            "participants": rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
            "interviews": erased.interviews,
            "recordings": erased.recordings,
            "proctoring_events": erased.proctoring_events,
            "account_deleted": erased.account_deleted,
        }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        interviews = erased.interviews,
        recordings = erased.recordings,
        "a candidate's data was erased"
    );
    Ok(erased)
}
