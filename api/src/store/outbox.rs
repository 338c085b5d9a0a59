//! The `outbox` table: email waiting to be sent, being retried, sent, failed or expired.

use serde::Serialize;
use sqlx::{AnyPool, FromRow};
use utoipa::ToSchema;

use super::{new_id, now};

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
    /// Not sent at all after this (Unix seconds): what it says no longer holds.
    pub expires_at: Option<i64>,
}

/// Stores `message`, due now.
pub async fn insert<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    message: &NewMessage<'_>,
) -> Result<(), sqlx::Error> {
    let at = now();
    sqlx::query(
        "INSERT INTO outbox (id, kind, recipient, subject, message, expires_at, created_at, \
         next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(message.id)
    .bind(message.kind)
    .bind(message.recipient)
    .bind(message.subject)
    .bind(message.message)
    .bind(message.expires_at)
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
    /// The claim: only its holder marks the attempt.
    pub claim: String,
}

/// The condition a row must meet to be claimed at `$1` (now), as a literal so queries stay
/// static strings.
macro_rules! claimable {
    () => {
        "sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 \
         AND (claimed_until IS NULL OR claimed_until < $1) \
         AND (expires_at IS NULL OR expires_at > $1)"
    };
}

/// Claims the next message due now for `lease_secs` (a claim that lapses was someone's who
/// died mid-send: the message is tried again); `None` when nothing is due.
pub async fn claim_next(pool: &AnyPool, lease_secs: i64) -> Result<Option<Due>, sqlx::Error> {
    let at = now();
    let candidates: Vec<(String,)> = sqlx::query_as(concat!(
        "SELECT id FROM outbox WHERE ",
        claimable!(),
        " ORDER BY next_attempt_at, id LIMIT 5"
    ))
    .bind(at)
    .fetch_all(pool)
    .await?;
    for (id,) in candidates {
        let claim = new_id();
        // Conditional: of two senders (two nodes) only one claims a row, and only while it is
        // still due.
        let done = sqlx::query(concat!(
            "UPDATE outbox SET claimed_until = $2, claim = $3 WHERE id = $4 AND ",
            claimable!()
        ))
        .bind(at)
        .bind(at + lease_secs)
        .bind(&claim)
        .bind(&id)
        .execute(pool)
        .await?;
        if done.rows_affected() == 1 {
            return sqlx::query_as(
                "SELECT id, recipient, message, attempts, claim FROM outbox \
                 WHERE id = $1 AND claim = $2",
            )
            .bind(&id)
            .bind(&claim)
            .fetch_optional(pool)
            .await;
        }
    }
    Ok(None)
}

/// The SMTP server took message `due`: marked sent, its content emptied.
pub async fn sent(pool: &AnyPool, due: &Due) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE outbox SET sent_at = $1, attempts = attempts + 1, claimed_until = NULL, \
         claim = NULL, last_error = NULL, message = '' WHERE id = $2 AND claim = $3",
    )
    .bind(now())
    .bind(&due.id)
    .bind(&due.claim)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Sending `due` failed with `error`: tried again at `retry_at`, or, with `None`, given up (its
/// content emptied).
pub async fn attempt_failed(
    pool: &AnyPool,
    due: &Due,
    error: &str,
    retry_at: Option<i64>,
) -> Result<(), sqlx::Error> {
    let at = now();
    sqlx::query(
        "UPDATE outbox SET attempts = attempts + 1, claimed_until = NULL, claim = NULL, \
         last_error = $1, next_attempt_at = $2, failed_at = $3, \
         message = CASE WHEN $3 IS NULL THEN message ELSE '' END \
         WHERE id = $4 AND claim = $5",
    )
    .bind(error)
    .bind(retry_at.unwrap_or(at))
    .bind(retry_at.is_none().then_some(at))
    .bind(&due.id)
    .bind(&due.claim)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Marks messages that expired unsent as failed (their content emptied), and forgets messages
/// sent or failed more than `keep_secs` ago. Returns how many rows went.
pub async fn sweep(pool: &AnyPool, keep_secs: i64) -> Result<u64, sqlx::Error> {
    let at = now();
    sqlx::query(
        "UPDATE outbox SET failed_at = $1, message = '', claimed_until = NULL, claim = NULL, \
         last_error = 'expired before it could be sent' \
         WHERE sent_at IS NULL AND failed_at IS NULL AND expires_at IS NOT NULL \
         AND expires_at <= $1",
    )
    .bind(at)
    .execute(pool)
    .await?;
    let cutoff = at - keep_secs;
    sqlx::query(
        "DELETE FROM outbox WHERE (sent_at IS NOT NULL AND sent_at < $1) \
         OR (failed_at IS NOT NULL AND failed_at < $1)",
    )
    .bind(cutoff)
    .execute(pool)
    .await
    .map(|done| done.rows_affected())
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
    /// When it was given up (after its last attempt, or expired unsent).
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
