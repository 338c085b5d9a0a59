//! The `email_verifications` table: single-use links that confirm an account's address.

use super::now;

/// Stores the hash of a new link for `user_id`, valid until `expires_at`.
pub async fn insert<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    token_hash: &str,
    user_id: &str,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO email_verifications (token_hash, user_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(now())
    .bind(expires_at)
    .execute(executor)
    .await
    .map(|_| ())
}

/// Spends the link `token_hash` in `tx` and marks its account's address confirmed: the account,
/// or `None` when the link is unknown, spent or expired. The conditional write comes first.
pub async fn spend(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    token_hash: &str,
) -> Result<Option<String>, sqlx::Error> {
    let at = now();
    let done = sqlx::query(
        "UPDATE email_verifications SET used_at = $1 \
         WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
    )
    .bind(at)
    .bind(token_hash)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(None);
    }
    let (user,): (String,) =
        sqlx::query_as("SELECT user_id FROM email_verifications WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_one(&mut **tx)
            .await?;
    // The account's other links are spent with it.
    sqlx::query(
        "UPDATE email_verifications SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL",
    )
    .bind(at)
    .bind(&user)
    .execute(&mut **tx)
    .await?;
    super::users::mark_verified(&mut **tx, &user, at).await?;
    Ok(Some(user))
}

/// Links issued for `user_id` since `since` (a per-account rate).
pub async fn issued_since<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    user_id: &str,
    since: i64,
) -> Result<i64, sqlx::Error> {
    let (count,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM email_verifications WHERE user_id = $1 AND created_at >= $2",
    )
    .bind(user_id)
    .bind(since)
    .fetch_one(executor)
    .await?;
    Ok(count)
}
