//! The `phone_pairings` table: QR codes that pair a candidate's phone as a second camera.
//!
//! Only SHA-256 hashes of the pairing token, the manual code and the phone's session token are
//! stored; the secrets themselves exist in the response that created them and on the phone.

use sqlx::{AnyConnection, AnyPool, FromRow};

use super::{new_id, now};

/// A row of `phone_pairings`.
#[derive(Debug, Clone, FromRow)]
pub struct PairingRow {
    /// UUIDv7.
    pub id: String,
    /// The interview whose room the phone joins.
    pub interview_id: String,
    /// The candidate whose phone it is.
    pub participant_id: String,
    /// Unix seconds; the pairing must be redeemed before.
    pub expires_at: i64,
    /// Set when redeemed.
    pub used_at: Option<i64>,
    /// Set when replaced by a newer pairing or the phone was removed.
    pub revoked_at: Option<i64>,
}

/// The columns of [`PairingRow`], as a literal so every query stays a static string.
macro_rules! columns {
    () => {
        "id, interview_id, participant_id, expires_at, used_at, revoked_at"
    };
}

/// A new pairing for a candidate. Unused earlier pairings of the same candidate stop working
/// (one QR code at a time); a phone already paired keeps streaming until a new one is paired.
/// Runs in the caller's transaction.
pub async fn create(
    tx: &mut AnyConnection,
    interview_id: &str,
    participant_id: &str,
    token_hash: &str,
    code_hash: &str,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    let at = now();
    sqlx::query(
        "UPDATE phone_pairings SET revoked_at = $1 \
         WHERE participant_id = $2 AND used_at IS NULL AND revoked_at IS NULL",
    )
    .bind(at)
    .bind(participant_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO phone_pairings \
         (id, interview_id, participant_id, token_hash, code_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id())
    .bind(interview_id)
    .bind(participant_id)
    .bind(token_hash)
    .bind(code_hash)
    .bind(at)
    .bind(expires_at)
    .execute(&mut *tx)
    .await
    .map(|_| ())
}

/// Finds a pairing by the hash of its token (from the QR code or link).
pub async fn by_token_hash(pool: &AnyPool, hash: &str) -> Result<Option<PairingRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM phone_pairings WHERE token_hash = $1"
    ))
    .bind(hash)
    .fetch_optional(pool)
    .await
}

/// Finds a pairing by the hash of its manual code.
pub async fn by_code_hash(pool: &AnyPool, hash: &str) -> Result<Option<PairingRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM phone_pairings WHERE code_hash = $1"
    ))
    .bind(hash)
    .fetch_optional(pool)
    .await
}

/// Finds the pairing a phone's session token belongs to, if it still works.
pub async fn by_session_hash(
    pool: &AnyPool,
    hash: &str,
) -> Result<Option<PairingRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM phone_pairings \
         WHERE session_hash = $1 AND revoked_at IS NULL AND session_expires_at > $2"
    ))
    .bind(hash)
    .bind(now())
    .fetch_optional(pool)
    .await
}

/// Uses a pairing up, if it is still usable, and gives the phone its session; every other
/// pairing of the candidate stops working (its phone is replaced). False if the pairing was
/// used, revoked or expired meanwhile. Runs in the caller's transaction.
pub async fn redeem(
    tx: &mut AnyConnection,
    row: &PairingRow,
    session_hash: &str,
    session_expires_at: i64,
) -> Result<bool, sqlx::Error> {
    let at = now();
    let done = sqlx::query(
        "UPDATE phone_pairings SET used_at = $1, session_hash = $2, session_expires_at = $3 \
         WHERE id = $4 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
    )
    .bind(at)
    .bind(session_hash)
    .bind(session_expires_at)
    .bind(&row.id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE phone_pairings SET revoked_at = $1 \
         WHERE participant_id = $2 AND id <> $3 AND revoked_at IS NULL",
    )
    .bind(at)
    .bind(&row.participant_id)
    .bind(&row.id)
    .execute(&mut *tx)
    .await?;
    Ok(true)
}

/// Unpairs the phones of every participant row linked to a user's account.
pub async fn revoke_for_user<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE phone_pairings SET revoked_at = $1 WHERE revoked_at IS NULL \
         AND participant_id IN (SELECT id FROM interview_participants WHERE user_id = $2)",
    )
    .bind(now())
    .bind(user_id)
    .execute(executor)
    .await
    .map(|_| ())
}

/// Unpairs a candidate's phone: every pairing and phone session of theirs stops working.
pub async fn revoke_for_participant<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    participant_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE phone_pairings SET revoked_at = $1 \
         WHERE participant_id = $2 AND revoked_at IS NULL",
    )
    .bind(now())
    .bind(participant_id)
    .execute(executor)
    .await
    .map(|_| ())
}
