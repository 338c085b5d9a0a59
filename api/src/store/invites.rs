//! The `invites` table: single-use links that let a candidate in without an account.
//!
//! Only a SHA-256 hash of each token is stored; the token itself exists in the response that
//! created it and in the link the interviewer sends.

use sqlx::{AnyConnection, AnyPool, FromRow};

use super::{new_id, now};

/// A row of `invites`.
#[derive(Debug, Clone, FromRow)]
pub struct InviteRow {
    /// UUIDv7.
    pub id: String,
    /// The invited participant.
    pub participant_id: String,
    /// Unix seconds; the end of the interview.
    pub expires_at: i64,
    /// Set when redeemed.
    pub used_at: Option<i64>,
    /// Set when replaced or when the interview is cancelled.
    pub revoked_at: Option<i64>,
}

/// Issues a new invite for a participant, revoking any earlier one so one link works at a time.
/// Runs in the caller's transaction: the revocation and the new link land together.
pub async fn issue(
    tx: &mut AnyConnection,
    participant_id: &str,
    token_hash: &str,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    let at = now();
    sqlx::query(
        "UPDATE invites SET revoked_at = $1 \
         WHERE participant_id = $2 AND revoked_at IS NULL AND used_at IS NULL",
    )
    .bind(at)
    .bind(participant_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO invites (id, participant_id, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(new_id())
    .bind(participant_id)
    .bind(token_hash)
    .bind(at)
    .bind(expires_at)
    .execute(&mut *tx)
    .await
    .map(|_| ())
}

/// Finds an invite by the hash of its token.
pub async fn by_hash(pool: &AnyPool, token_hash: &str) -> Result<Option<InviteRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, participant_id, expires_at, used_at, revoked_at FROM invites \
         WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await
}

/// Marks an invite used if it still is usable; false if someone else redeemed it first.
pub async fn redeem<'e, E>(executor: E, id: &str) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let at = now();
    let done = sqlx::query(
        "UPDATE invites SET used_at = $1 \
         WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
    )
    .bind(at)
    .bind(id)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes every open invite of an interview (on cancellation).
pub async fn revoke_for_interview<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    interview_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE invites SET revoked_at = $1 WHERE revoked_at IS NULL AND participant_id IN \
         (SELECT id FROM interview_participants WHERE interview_id = $2)",
    )
    .bind(now())
    .bind(interview_id)
    .execute(executor)
    .await
    .map(|_| ())
}

/// Moves the expiry of an interview's open invites (on reschedule).
pub async fn set_expiry_for_interview<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    interview_id: &str,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE invites SET expires_at = $1 \
         WHERE used_at IS NULL AND revoked_at IS NULL AND participant_id IN \
         (SELECT id FROM interview_participants WHERE interview_id = $2)",
    )
    .bind(expires_at)
    .bind(interview_id)
    .execute(executor)
    .await
    .map(|_| ())
}

/// The newest invite of each participant of an interview.
pub async fn latest_for_interview(
    pool: &AnyPool,
    interview_id: &str,
) -> Result<Vec<InviteRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT i.id, i.participant_id, i.expires_at, i.used_at, i.revoked_at \
         FROM invites i JOIN interview_participants p ON p.id = i.participant_id \
         WHERE p.interview_id = $1 \
         AND i.created_at = (SELECT MAX(created_at) FROM invites WHERE participant_id = p.id) \
         ORDER BY i.id DESC",
    )
    .bind(interview_id)
    .fetch_all(pool)
    .await
}
