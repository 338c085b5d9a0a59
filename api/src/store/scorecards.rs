//! The `interview_notes`, `scorecard_templates` and `scorecards` tables.

use sqlx::{AnyPool, FromRow};

/// A participant's private notes on an interview.
#[derive(Debug, Clone, FromRow)]
pub struct NoteRow {
    /// The participant who wrote them.
    pub participant_id: String,
    /// The interview.
    pub interview_id: String,
    /// Plain text.
    pub body: String,
    /// Unix seconds of the last save.
    pub updated_at: i64,
}

/// One participant's notes, if they wrote any.
pub async fn note(pool: &AnyPool, participant_id: &str) -> Result<Option<NoteRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT participant_id, interview_id, body, updated_at FROM interview_notes \
         WHERE participant_id = $1",
    )
    .bind(participant_id)
    .fetch_optional(pool)
    .await
}

/// Saves a participant's notes, replacing what was there.
pub async fn save_note(pool: &AnyPool, note: &NoteRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO interview_notes (participant_id, interview_id, body, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (participant_id) \
         DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
    )
    .bind(&note.participant_id)
    .bind(&note.interview_id)
    .bind(&note.body)
    .bind(note.updated_at)
    .execute(pool)
    .await
    .map(|_| ())
}

/// A row of `scorecard_templates`.
#[derive(Debug, Clone, FromRow)]
pub struct TemplateRow {
    /// UUIDv7 (the built-in one has a fixed id).
    pub id: String,
    /// Name.
    pub name: String,
    /// JSON array of `{name, guidance}`.
    pub criteria: String,
    /// Unix seconds it was retired.
    pub archived_at: Option<i64>,
    /// The admin who made it (`system` for the built-in one).
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// Every template, offered ones first, then by name.
pub async fn templates(pool: &AnyPool) -> Result<Vec<TemplateRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, criteria, archived_at, created_by, created_at, updated_at \
         FROM scorecard_templates ORDER BY (archived_at IS NOT NULL), name, id",
    )
    .fetch_all(pool)
    .await
}

/// One template.
pub async fn template(pool: &AnyPool, id: &str) -> Result<Option<TemplateRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, criteria, archived_at, created_by, created_at, updated_at \
         FROM scorecard_templates WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Stores a new template.
pub async fn insert_template(pool: &AnyPool, row: &TemplateRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO scorecard_templates (id, name, criteria, archived_at, created_by, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.criteria)
    .bind(row.archived_at)
    .bind(&row.created_by)
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Replaces a template's name, criteria and whether it is retired.
pub async fn update_template(pool: &AnyPool, row: &TemplateRow) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "UPDATE scorecard_templates SET name = $1, criteria = $2, archived_at = $3, \
         updated_at = $4 WHERE id = $5",
    )
    .bind(&row.name)
    .bind(&row.criteria)
    .bind(row.archived_at)
    .bind(row.updated_at)
    .bind(&row.id)
    .execute(pool)
    .await
    .map(|done| done.rows_affected() > 0)
}

/// A row of `scorecards`.
#[derive(Debug, Clone, FromRow)]
pub struct ScorecardRow {
    /// UUIDv7.
    pub id: String,
    /// The interview.
    pub interview_id: String,
    /// The interviewer who submitted it.
    pub participant_id: String,
    /// The template it was filled from.
    pub template_id: String,
    /// The template's name then.
    pub template_name: String,
    /// The template's criteria then (JSON).
    pub criteria: String,
    /// JSON array of `{score, comment}`, one per criterion.
    pub ratings: String,
    /// `strong_no`, `no`, `yes` or `strong_yes`.
    pub recommendation: String,
    /// Free text.
    pub summary: String,
    /// Unix seconds of the first submission.
    pub submitted_at: i64,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}

macro_rules! select_scorecards {
    ($rest:literal) => {
        concat!(
            "SELECT id, interview_id, participant_id, template_id, template_name, criteria, \
             ratings, recommendation, summary, submitted_at, updated_at FROM scorecards ",
            $rest
        )
    };
}

/// An interview's submitted scorecards, first submitted first.
pub async fn for_interview(
    pool: &AnyPool,
    interview_id: &str,
) -> Result<Vec<ScorecardRow>, sqlx::Error> {
    sqlx::query_as(select_scorecards!(
        "WHERE interview_id = $1 ORDER BY submitted_at, id"
    ))
    .bind(interview_id)
    .fetch_all(pool)
    .await
}

/// Submits a scorecard, or replaces its author's earlier one (keeping when it was first
/// submitted).
pub async fn submit(pool: &AnyPool, row: &ScorecardRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO scorecards (id, interview_id, participant_id, template_id, template_name, \
         criteria, ratings, recommendation, summary, submitted_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (interview_id, participant_id) DO UPDATE SET \
         template_id = excluded.template_id, template_name = excluded.template_name, \
         criteria = excluded.criteria, ratings = excluded.ratings, \
         recommendation = excluded.recommendation, summary = excluded.summary, \
         updated_at = excluded.updated_at",
    )
    .bind(&row.id)
    .bind(&row.interview_id)
    .bind(&row.participant_id)
    .bind(&row.template_id)
    .bind(&row.template_name)
    .bind(&row.criteria)
    .bind(&row.ratings)
    .bind(&row.recommendation)
    .bind(&row.summary)
    .bind(row.submitted_at)
    .bind(row.updated_at)
    .execute(pool)
    .await
    .map(|_| ())
}

/// One interviewer of an interview a user reviews, and whether their scorecard is in.
#[derive(Debug, Clone, FromRow)]
pub struct ExpectedRow {
    /// The interview.
    pub interview_id: String,
    /// The interviewer's name.
    pub display_name: String,
    /// Their account.
    pub user_id: Option<String>,
    /// When their scorecard was submitted; NULL while it is missing.
    pub submitted_at: Option<i64>,
}

/// For every interview where `user_id` is an interviewer or reviewer: each interviewer and
/// whether their scorecard is in (the dashboard's "missing scorecards").
pub async fn expected_for_user(
    pool: &AnyPool,
    user_id: &str,
) -> Result<Vec<ExpectedRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.interview_id, p.display_name, p.user_id, \
         s.submitted_at FROM interview_participants p \
         JOIN interview_participants me ON me.interview_id = p.interview_id \
         AND me.user_id = $1 AND me.role IN ('interviewer', 'reviewer') \
         LEFT JOIN scorecards s ON s.interview_id = p.interview_id AND s.participant_id = p.id \
         WHERE p.role = 'interviewer' ORDER BY p.interview_id, p.created_at, p.id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
}
