//! The `workspace_updates` and `code_runs` tables.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use sqlx::{AnyPool, FromRow};
use utoipa::ToSchema;

/// One stored change of the shared document.
#[derive(Debug, Clone, FromRow)]
pub struct UpdateRow {
    /// Order of application, from 0.
    pub seq: i64,
    /// Unix milliseconds it arrived.
    pub at_ms: i64,
    /// The Yjs v1 update, base64.
    pub update_b64: String,
}

impl UpdateRow {
    /// The update's bytes.
    pub fn bytes(&self) -> Result<Vec<u8>, sqlx::Error> {
        STANDARD
            .decode(&self.update_b64)
            .map_err(|err| sqlx::Error::Decode(Box::new(err)))
    }
}

/// Stores one accepted change.
pub async fn append(
    pool: &AnyPool,
    interview_id: &str,
    seq: i64,
    at_ms: i64,
    participant_id: Option<&str>,
    update: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO workspace_updates (interview_id, seq, at_ms, participant_id, update_b64) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(interview_id)
    .bind(seq)
    .bind(at_ms)
    .bind(participant_id)
    .bind(STANDARD.encode(update))
    .execute(pool)
    .await
    .map(|_| ())
}

/// The document's changes up to `until_ms` (all without it), in order.
pub async fn updates(
    pool: &AnyPool,
    interview_id: &str,
    until_ms: Option<i64>,
) -> Result<Vec<UpdateRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT seq, at_ms, update_b64 FROM workspace_updates \
         WHERE interview_id = $1 AND at_ms <= $2 ORDER BY seq",
    )
    .bind(interview_id)
    .bind(until_ms.unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
}

/// A code run as stored and shown.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct RunRow {
    /// UUIDv7.
    pub id: String,
    /// The interview.
    pub interview_id: String,
    /// The participant who ran it (absent for an admin outside the interview).
    pub participant_id: Option<String>,
    /// Their name, as shown.
    pub requested_by: String,
    /// Language id (`python`, `cpp`, ...).
    pub language: String,
    /// The code as it was run.
    pub source: String,
    /// What it read on stdin.
    pub stdin: String,
    /// `queued`, `running`, `finished` or `failed` (could not run at all).
    pub status: String,
    /// For a finished run: `ok`, `failed`, `time_limit_exceeded`, `memory_limit_exceeded`,
    /// `output_limit_exceeded`.
    pub verdict: Option<String>,
    /// Exit status, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// What it printed (cut at the output limit).
    pub stdout: Option<String>,
    /// What it printed on stderr.
    pub stderr: Option<String>,
    /// Wall-clock milliseconds it took.
    pub duration_ms: Option<i64>,
    /// Why it could not run, for a failed run.
    pub error: Option<String>,
    /// Unix milliseconds it was asked for.
    pub created_at_ms: i64,
    /// Unix milliseconds it ended.
    pub finished_at_ms: Option<i64>,
}

macro_rules! select_runs {
    ($rest:literal) => {
        concat!(
            "SELECT id, interview_id, participant_id, requested_by, language, source, stdin, \
             status, verdict, exit_code, signal, stdout, stderr, duration_ms, error, \
             created_at_ms, finished_at_ms FROM code_runs ",
            $rest
        )
    };
}

/// Stores a run that was just admitted.
pub async fn insert_run(pool: &AnyPool, run: &RunRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO code_runs (id, interview_id, participant_id, requested_by, language, source, \
         stdin, status, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&run.id)
    .bind(&run.interview_id)
    .bind(&run.participant_id)
    .bind(&run.requested_by)
    .bind(&run.language)
    .bind(&run.source)
    .bind(&run.stdin)
    .bind(&run.status)
    .bind(run.created_at_ms)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Stores a run's new status and, once it ended, its result.
pub async fn update_run(pool: &AnyPool, run: &RunRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE code_runs SET status = $1, verdict = $2, exit_code = $3, signal = $4, \
         stdout = $5, stderr = $6, duration_ms = $7, error = $8, finished_at_ms = $9 \
         WHERE id = $10",
    )
    .bind(&run.status)
    .bind(&run.verdict)
    .bind(run.exit_code)
    .bind(run.signal)
    .bind(&run.stdout)
    .bind(&run.stderr)
    .bind(run.duration_ms)
    .bind(&run.error)
    .bind(run.finished_at_ms)
    .bind(&run.id)
    .execute(pool)
    .await
    .map(|_| ())
}

/// One run.
pub async fn run(pool: &AnyPool, id: &str) -> Result<Option<RunRow>, sqlx::Error> {
    sqlx::query_as(select_runs!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// An interview's runs, oldest first.
pub async fn runs(pool: &AnyPool, interview_id: &str) -> Result<Vec<RunRow>, sqlx::Error> {
    sqlx::query_as(select_runs!(
        "WHERE interview_id = $1 ORDER BY created_at_ms, id"
    ))
    .bind(interview_id)
    .fetch_all(pool)
    .await
}

/// Marks runs a previous process left queued or running as failed (at start-up).
pub async fn fail_unfinished(pool: &AnyPool, now_ms: i64) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "UPDATE code_runs SET status = 'failed', error = 'the server restarted during this run', \
         finished_at_ms = $1 WHERE status IN ('queued', 'running')",
    )
    .bind(now_ms)
    .execute(pool)
    .await
    .map(|done| done.rows_affected())
}

/// Deletes the code (its history) and the runs of interviews that ended before `before`
/// (Unix seconds); returns how many interviews had any.
pub async fn expire(pool: &AnyPool, before: i64) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let runs = sqlx::query(
        "DELETE FROM code_runs WHERE interview_id IN (SELECT id FROM interviews \
         WHERE scheduled_start + duration_minutes * 60 < $1)",
    )
    .bind(before)
    .execute(&mut *tx)
    .await?;
    let code = sqlx::query(
        "DELETE FROM workspace_updates WHERE interview_id IN (SELECT id FROM interviews \
         WHERE scheduled_start + duration_minutes * 60 < $1)",
    )
    .bind(before)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(runs.rows_affected() + code.rows_affected())
}
