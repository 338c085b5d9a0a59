//! The `outbox` table: email waiting to be sent, being retried, sent or failed.

use serde::Serialize;
use sqlx::{AnyPool, FromRow};
use utoipa::ToSchema;

use super::now;

/// A message to store.
pub struct NewMessage<'a> {
    /// Its id (also in its `Message-ID`).
    pub id: &'a str,
    /// What it is (`password_reset`).
    pub kind: &'a str,
    /// The address it goes to.
    pub recipient: &'a str,
    /// Its subject, for admins.
    pub subject: &'a str,
    /// The whole message as it is sent.
    pub message: &'a str,
}

/// Stores `message`, due now.
pub async fn insert<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    message: &NewMessage<'_>,
) -> Result<(), sqlx::Error> {
    let at = now();
    sqlx::query(
        "INSERT INTO outbox (id, kind, recipient, subject, message, created_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(message.id)
    .bind(message.kind)
    .bind(message.recipient)
    .bind(message.subject)
    .bind(message.message)
    .bind(at)
    .bind(at)
    .execute(executor)
    .await
    .map(|_| ())
}

/// A message claimed for sending.
#[derive(Debug, Clone, FromRow)]
pub struct Due {
    /// Its id.
    pub id: String,
    /// The address it goes to.
    pub recipient: String,
    /// The whole message.
    pub message: String,
    /// Attempts before this one.
    pub attempts: i64,
}

/// Claims up to `limit` messages due now for `lease_secs` (a claim that lapses is someone's
/// who died mid-send: the message is tried again).
pub async fn claim_due(
    pool: &AnyPool,
    limit: i64,
    lease_secs: i64,
) -> Result<Vec<Due>, sqlx::Error> {
    let at = now();
    let candidates: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL \
         AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until < $1) \
         ORDER BY next_attempt_at, id LIMIT $2",
    )
    .bind(at)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut claimed = Vec::new();
    for (id,) in candidates {
        // Conditional: of two senders (two nodes) only one claims a row.
        let done = sqlx::query(
            "UPDATE outbox SET claimed_until = $1 WHERE id = $2 AND sent_at IS NULL \
             AND failed_at IS NULL AND (claimed_until IS NULL OR claimed_until < $3)",
        )
        .bind(at + lease_secs)
        .bind(&id)
        .bind(at)
        .execute(pool)
        .await?;
        if done.rows_affected() == 1
            && let Some(due) =
                sqlx::query_as("SELECT id, recipient, message, attempts FROM outbox WHERE id = $1")
                    .bind(&id)
                    .fetch_optional(pool)
                    .await?
        {
            claimed.push(due);
        }
    }
    Ok(claimed)
}

/// The SMTP server took message `id`.
pub async fn sent(pool: &AnyPool, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE outbox SET sent_at = $1, attempts = attempts + 1, claimed_until = NULL, \
         last_error = NULL WHERE id = $2",
    )
    .bind(now())
    .bind(id)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Sending `id` failed with `error`: tried again at `retry_at`, or, with `None`, given up.
pub async fn attempt_failed(
    pool: &AnyPool,
    id: &str,
    error: &str,
    retry_at: Option<i64>,
) -> Result<(), sqlx::Error> {
    let at = now();
    sqlx::query(
        "UPDATE outbox SET attempts = attempts + 1, claimed_until = NULL, last_error = $1, \
         next_attempt_at = $2, failed_at = $3 WHERE id = $4",
    )
    .bind(error)
    .bind(retry_at.unwrap_or(at))
    .bind(retry_at.is_none().then_some(at))
    .bind(id)
    .execute(pool)
    .await
    .map(|_| ())
}

/// A message as admins see it (never its body).
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct OutboxEntry {
    /// Its id.
    pub id: String,
    /// What it is.
    pub kind: String,
    /// Where it goes.
    pub recipient: String,
    /// Its subject.
    pub subject: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Attempts so far.
    pub attempts: i64,
    /// When it is tried next (while neither sent nor failed).
    pub next_attempt_at: i64,
    /// When the SMTP server took it.
    pub sent_at: Option<i64>,
    /// When it was given up.
    pub failed_at: Option<i64>,
    /// The last attempt's error.
    pub last_error: Option<String>,
}

/// The newest messages, unsent ones (waiting or failed) first, at most `limit`.
pub async fn recent(pool: &AnyPool, limit: i64) -> Result<Vec<OutboxEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, kind, recipient, subject, created_at, attempts, next_attempt_at, sent_at, \
         failed_at, last_error FROM outbox \
         ORDER BY CASE WHEN sent_at IS NULL THEN 0 ELSE 1 END, created_at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Messages neither sent nor given up, and those given up.
pub async fn counts(pool: &AnyPool) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT \
         COALESCE(SUM(CASE WHEN sent_at IS NULL AND failed_at IS NULL THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END), 0) FROM outbox",
    )
    .fetch_one(pool)
    .await
}
