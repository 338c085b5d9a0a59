//! The `proctoring_settings`, `proctoring_consents` and `proctoring_events` tables.

use serde::Serialize;
use sqlx::{AnyPool, FromRow};
use utoipa::ToSchema;

use super::now;

/// A row of `proctoring_events`: one moment for a person to look at.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct EventRow {
    /// UUIDv7.
    pub id: String,
    /// The interview.
    pub interview_id: String,
    /// Whose stream (the candidate, for their phone too).
    pub participant_id: String,
    /// The track.
    pub track_id: String,
    /// `camera` or `phone`.
    pub source: String,
    /// What was seen (`face_absent`, `multiple_faces`, ...).
    pub kind: String,
    /// `info`, `notice` or `review`.
    pub severity: String,
    /// Unix milliseconds it began.
    pub started_at_ms: i64,
    /// Unix milliseconds it ended; `null` while it lasts.
    pub ended_at_ms: Option<i64>,
    /// The detector and its version.
    pub detector: String,
    /// The thresholds the check ran with (JSON text).
    pub thresholds: String,
    /// Its strongest evidence (a second face's score), where the check has one.
    pub peak_score: Option<f64>,
    /// How many snapshots it has.
    pub snapshots: i32,
    /// A reviewer's verdict: `confirmed` or `dismissed`.
    pub verdict: Option<String>,
    /// The reviewer's note.
    pub review_note: Option<String>,
    /// Who reviewed it.
    pub reviewed_by: Option<String>,
    /// Unix seconds of the review.
    pub reviewed_at: Option<i64>,
}

/// A new event.
#[derive(Debug)]
pub struct NewEvent<'a> {
    /// UUIDv7.
    pub id: &'a str,
    /// The interview.
    pub interview_id: &'a str,
    /// Whose stream.
    pub participant_id: &'a str,
    /// The track.
    pub track_id: &'a str,
    /// `camera` or `phone`.
    pub source: &'a str,
    /// What was seen.
    pub kind: &'a str,
    /// `info`, `notice` or `review`.
    pub severity: &'a str,
    /// Unix milliseconds it began.
    pub started_at_ms: i64,
    /// Unix milliseconds it ended, for an event that is over when it is reported.
    pub ended_at_ms: Option<i64>,
    /// The detector and its version.
    pub detector: &'a str,
    /// Thresholds (JSON text).
    pub thresholds: &'a str,
    /// Snapshots stored with it.
    pub snapshots: i32,
}

/// The columns of [`EventRow`], for `SELECT`s (a macro: queries must be static strings).
macro_rules! select_events {
    ($rest:literal) => {
        concat!(
            "SELECT id, interview_id, participant_id, track_id, source, kind, severity, \
             started_at_ms, ended_at_ms, detector, thresholds, peak_score, snapshots, verdict, \
             review_note, reviewed_by, reviewed_at FROM proctoring_events ",
            $rest
        )
    };
}

/// Stores a new event.
pub async fn insert(pool: &AnyPool, event: &NewEvent<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO proctoring_events (id, interview_id, participant_id, track_id, source, kind, \
         severity, started_at_ms, ended_at_ms, detector, thresholds, snapshots) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(event.id)
    .bind(event.interview_id)
    .bind(event.participant_id)
    .bind(event.track_id)
    .bind(event.source)
    .bind(event.kind)
    .bind(event.severity)
    .bind(event.started_at_ms)
    .bind(event.ended_at_ms)
    .bind(event.detector)
    .bind(event.thresholds)
    .bind(event.snapshots)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Ends an open event at `ended_at_ms`, with its strongest evidence.
pub async fn close(
    pool: &AnyPool,
    id: &str,
    ended_at_ms: i64,
    peak_score: Option<f64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE proctoring_events SET ended_at_ms = $1, peak_score = $2 \
         WHERE id = $3 AND ended_at_ms IS NULL",
    )
    .bind(ended_at_ms)
    .bind(peak_score)
    .bind(id)
    .execute(pool)
    .await
    .map(|_| ())
}

/// An interview's events, in the order they began.
pub async fn for_interview(
    pool: &AnyPool,
    interview_id: &str,
) -> Result<Vec<EventRow>, sqlx::Error> {
    sqlx::query_as(select_events!(
        "WHERE interview_id = $1 ORDER BY started_at_ms, id"
    ))
    .bind(interview_id)
    .fetch_all(pool)
    .await
}

/// One event of an interview.
pub async fn get(
    pool: &AnyPool,
    interview_id: &str,
    id: &str,
) -> Result<Option<EventRow>, sqlx::Error> {
    sqlx::query_as(select_events!("WHERE interview_id = $1 AND id = $2"))
        .bind(interview_id)
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Records a reviewer's verdict on an event.
pub async fn review(
    pool: &AnyPool,
    id: &str,
    verdict: &str,
    note: &str,
    by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE proctoring_events SET verdict = $1, review_note = $2, reviewed_by = $3, \
         reviewed_at = $4 WHERE id = $5",
    )
    .bind(verdict)
    .bind(note)
    .bind(by)
    .bind(now())
    .bind(id)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Interviews whose every event ended before `cutoff_ms` (for retention).
pub async fn interviews_ended_before(
    pool: &AnyPool,
    cutoff_ms: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT interview_id FROM proctoring_events GROUP BY interview_id \
         HAVING MAX(COALESCE(ended_at_ms, started_at_ms)) < $1",
    )
    .bind(cutoff_ms)
    .fetch_all(pool)
    .await
}

/// Deletes an interview's events.
pub async fn delete_for(pool: &AnyPool, interview_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM proctoring_events WHERE interview_id = $1")
        .bind(interview_id)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Records that a candidate agreed to proctoring.
pub async fn consent(
    pool: &AnyPool,
    interview_id: &str,
    participant_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO proctoring_consents (interview_id, participant_id, consented_at) \
         VALUES ($1, $2, $3) ON CONFLICT (interview_id, participant_id) DO NOTHING",
    )
    .bind(interview_id)
    .bind(participant_id)
    .bind(now())
    .execute(pool)
    .await
    .map(|_| ())
}

/// Participants who agreed to proctoring in an interview.
pub async fn consented(pool: &AnyPool, interview_id: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT participant_id FROM proctoring_consents WHERE interview_id = $1")
        .bind(interview_id)
        .fetch_all(pool)
        .await
}

/// How a proctored interview is proctored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// A screen share that ends is marked (`screen_share_stopped`).
    pub require_screen_share: bool,
}

/// Turns proctoring of an interview on (with `settings`) or off. Turning it off also forgets
/// the candidates' agreement: turned on again, they are asked again.
pub async fn set_enabled(
    pool: &AnyPool,
    interview_id: &str,
    settings: Option<Settings>,
    by: &str,
) -> Result<(), sqlx::Error> {
    match settings {
        Some(settings) => {
            sqlx::query(
                "INSERT INTO proctoring_settings \
                 (interview_id, enabled_by, enabled_at, require_screen_share) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (interview_id) \
                 DO UPDATE SET require_screen_share = excluded.require_screen_share",
            )
            .bind(interview_id)
            .bind(by)
            .bind(now())
            .bind(i32::from(settings.require_screen_share))
            .execute(pool)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM proctoring_settings WHERE interview_id = $1")
                .bind(interview_id)
                .execute(pool)
                .await?;
            sqlx::query("DELETE FROM proctoring_consents WHERE interview_id = $1")
                .bind(interview_id)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// How an interview is proctored; `None` when it is not.
pub async fn settings(pool: &AnyPool, interview_id: &str) -> Result<Option<Settings>, sqlx::Error> {
    let row: Option<i32> = sqlx::query_scalar(
        "SELECT require_screen_share FROM proctoring_settings WHERE interview_id = $1",
    )
    .bind(interview_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|require| Settings {
        require_screen_share: require != 0,
    }))
}

/// Whether an interview is proctored.
pub async fn enabled(pool: &AnyPool, interview_id: &str) -> Result<bool, sqlx::Error> {
    Ok(settings(pool, interview_id).await?.is_some())
}

/// Ends every event left open by a server that stopped (its checks stopped with it), at
/// `ended_at_ms`; returns how many.
pub async fn close_all_open(pool: &AnyPool, ended_at_ms: i64) -> Result<u64, sqlx::Error> {
    sqlx::query("UPDATE proctoring_events SET ended_at_ms = $1 WHERE ended_at_ms IS NULL")
        .bind(ended_at_ms)
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
}
