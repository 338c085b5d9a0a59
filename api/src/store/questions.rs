//! The `questions` and `interview_questions` tables.

use sqlx::{AnyConnection, AnyPool, FromRow};

/// A row of `questions`, JSON columns as text.
#[derive(Debug, Clone, FromRow)]
pub struct QuestionRow {
    /// UUIDv7.
    pub id: String,
    /// Title.
    pub title: String,
    /// Markdown prompt.
    pub prompt: String,
    /// `easy`, `medium` or `hard`.
    pub difficulty: String,
    /// JSON array of tags.
    pub tags: String,
    /// JSON object: language id → starter code.
    pub starter_code: String,
    /// JSON array of `{stdin, expected_stdout}`.
    pub hidden_tests: String,
    /// The account that made it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

macro_rules! select_questions {
    ($rest:literal) => {
        concat!(
            "SELECT q.id, q.title, q.prompt, q.difficulty, q.tags, q.starter_code, \
             q.hidden_tests, q.created_by, q.created_at, q.updated_at FROM questions q ",
            $rest
        )
    };
}

/// Stores a new question.
pub async fn insert(pool: &AnyPool, q: &QuestionRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO questions (id, title, prompt, difficulty, tags, starter_code, hidden_tests, \
         created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&q.id)
    .bind(&q.title)
    .bind(&q.prompt)
    .bind(&q.difficulty)
    .bind(&q.tags)
    .bind(&q.starter_code)
    .bind(&q.hidden_tests)
    .bind(&q.created_by)
    .bind(q.created_at)
    .bind(q.updated_at)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Replaces a question's content.
pub async fn update(pool: &AnyPool, q: &QuestionRow) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "UPDATE questions SET title = $1, prompt = $2, difficulty = $3, tags = $4, \
         starter_code = $5, hidden_tests = $6, updated_at = $7 WHERE id = $8",
    )
    .bind(&q.title)
    .bind(&q.prompt)
    .bind(&q.difficulty)
    .bind(&q.tags)
    .bind(&q.starter_code)
    .bind(&q.hidden_tests)
    .bind(q.updated_at)
    .bind(&q.id)
    .execute(pool)
    .await
    .map(|done| done.rows_affected() > 0)
}

/// One question.
pub async fn get(pool: &AnyPool, id: &str) -> Result<Option<QuestionRow>, sqlx::Error> {
    sqlx::query_as(select_questions!("WHERE q.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Every question, newest first (the caller filters by text and tag).
pub async fn all(pool: &AnyPool) -> Result<Vec<QuestionRow>, sqlx::Error> {
    sqlx::query_as(select_questions!("ORDER BY q.updated_at DESC, q.id"))
        .fetch_all(pool)
        .await
}

/// A question attached to an interview.
#[derive(Debug, Clone, FromRow)]
pub struct AttachedRow {
    /// The question.
    #[sqlx(flatten)]
    pub question: QuestionRow,
    /// When it was revealed to the candidate.
    pub revealed_at_ms: Option<i64>,
}

/// The questions attached to an interview, in order.
pub async fn attached(pool: &AnyPool, interview_id: &str) -> Result<Vec<AttachedRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT q.id, q.title, q.prompt, q.difficulty, q.tags, q.starter_code, q.hidden_tests, \
         q.created_by, q.created_at, q.updated_at, iq.revealed_at_ms FROM questions q \
         JOIN interview_questions iq ON iq.question_id = q.id \
         WHERE iq.interview_id = $1 ORDER BY iq.position",
    )
    .bind(interview_id)
    .fetch_all(pool)
    .await
}

/// Attaches a question (at the end); false when it was attached already.
pub async fn attach(
    pool: &AnyPool,
    interview_id: &str,
    question_id: &str,
) -> Result<bool, sqlx::Error> {
    let next: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(MAX(position), -1) + 1 AS BIGINT) FROM interview_questions \
         WHERE interview_id = $1",
    )
    .bind(interview_id)
    .fetch_one(pool)
    .await?;
    let done = sqlx::query(
        "INSERT INTO interview_questions (interview_id, question_id, position) \
         VALUES ($1, $2, $3)",
    )
    .bind(interview_id)
    .bind(question_id)
    .bind(next)
    .execute(pool)
    .await;
    match done {
        Ok(_) => Ok(true),
        Err(err) if super::is_unique_violation(&err) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Attaches questions to a new interview, in order (inside its creation's transaction).
pub async fn attach_all(
    tx: &mut AnyConnection,
    interview_id: &str,
    question_ids: &[&str],
) -> Result<(), sqlx::Error> {
    for (position, question_id) in (0_i64..).zip(question_ids) {
        sqlx::query(
            "INSERT INTO interview_questions (interview_id, question_id, position) \
             VALUES ($1, $2, $3)",
        )
        .bind(interview_id)
        .bind(*question_id)
        .bind(position)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Marks an attached question revealed; false when it is not attached.
pub async fn reveal(
    pool: &AnyPool,
    interview_id: &str,
    question_id: &str,
    at_ms: i64,
) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "UPDATE interview_questions SET revealed_at_ms = COALESCE(revealed_at_ms, $1) \
         WHERE interview_id = $2 AND question_id = $3",
    )
    .bind(at_ms)
    .bind(interview_id)
    .bind(question_id)
    .execute(pool)
    .await
    .map(|done| done.rows_affected() > 0)
}
