//! The `spent_join_tokens` table: the ids of join tokens that opened a connection, until they
//! expire. Shared by every server on the database, so a token opens one connection in all.

use sqlx::AnyPool;

/// Marks the token `jti` (valid until `expires_at`, unix seconds) spent; `false` when it was
/// spent before. One statement, so two servers spending it at once cannot both succeed.
pub async fn spend(pool: &AnyPool, jti: &str, expires_at: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO spent_join_tokens (jti, expires_at) VALUES ($1, $2)
         ON CONFLICT (jti) DO NOTHING",
    )
    .bind(jti)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How long after its expiry a spent token is still remembered: longer than any clock
/// leeway a token check allows, and than the clock skew between nodes.
const KEEP_AFTER_EXPIRY_SECS: i64 = 300;

/// Forgets tokens that expired well before `now`: they are refused as expired anyway.
pub async fn forget_expired(pool: &AnyPool, now: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM spent_join_tokens WHERE expires_at < $1")
        .bind(now - KEEP_AFTER_EXPIRY_SECS)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
