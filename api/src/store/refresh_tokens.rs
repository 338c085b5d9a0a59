//! The `refresh_tokens` table: opaque refresh tokens, stored hashed, grouped in families.
//!
//! A family starts at sign-in (or at invite redemption for a guest) and ends at an absolute expiry
//! fixed then. Every refresh marks the presented token used and adds its successor to the family.
//! Presenting a used token means it was copied: the whole family is revoked, which signs out both
//! the thief and the victim, who can sign in again.

use sqlx::{AnyConnection, AnyPool, FromRow};

use super::{new_id, now};

/// Whose session a family is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionSubject {
    /// A signed-in account (user id).
    User(String),
    /// A candidate who came through an invite link (participant id).
    Guest(String),
}

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was valid; its successor is stored.
    Rotated {
        /// Whose session it is.
        subject: SessionSubject,
        /// Absolute expiry of the family, unix seconds.
        expires_at: i64,
    },
    /// The token had been used before; its family is now revoked.
    Reused,
    /// Unknown, expired or revoked.
    Invalid,
}

#[derive(Debug, FromRow)]
struct TokenRow {
    family_id: String,
    user_id: Option<String>,
    participant_id: Option<String>,
    expires_at: i64,
    used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TokenRow {
    fn subject(&self) -> Option<SessionSubject> {
        match (&self.user_id, &self.participant_id) {
            (Some(user), None) => Some(SessionSubject::User(user.clone())),
            (None, Some(participant)) => Some(SessionSubject::Guest(participant.clone())),
            _ => None,
        }
    }
}

/// Starts a new family with its first token.
pub async fn start_family<'e, E>(
    executor: E,
    token_hash: &str,
    subject: &SessionSubject,
    expires_at: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    insert(executor, token_hash, &new_id(), subject, expires_at).await
}

/// Whose session the token hashed as `token_hash` would continue, if it can be rotated now
/// (unused, not revoked, not expired); changes nothing. A refresh reads this to prepare its
/// answer before [`rotate`] spends the token.
pub async fn peek(pool: &AnyPool, token_hash: &str) -> Result<Option<SessionSubject>, sqlx::Error> {
    let row: Option<TokenRow> = sqlx::query_as(
        "SELECT family_id, user_id, participant_id, expires_at, used_at, revoked_at \
         FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await?;
    Ok(row
        .filter(|r| r.used_at.is_none() && r.revoked_at.is_none() && r.expires_at > now())
        .and_then(|r| r.subject()))
}

async fn insert<'e, E>(
    executor: E,
    token_hash: &str,
    family_id: &str,
    subject: &SessionSubject,
    expires_at: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let (user_id, participant_id) = match subject {
        SessionSubject::User(id) => (Some(id.as_str()), None),
        SessionSubject::Guest(id) => (None, Some(id.as_str())),
    };
    sqlx::query(
        "INSERT INTO refresh_tokens \
         (id, token_hash, family_id, user_id, participant_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id())
    .bind(token_hash)
    .bind(family_id)
    .bind(user_id)
    .bind(participant_id)
    .bind(now())
    .bind(expires_at)
    .execute(executor)
    .await
    .map(|_| ())
}

/// Exchanges the token hashed as `old_hash` for the one hashed as `new_hash`, if it continues the
/// session of `expected` (what [`peek`] said, and the caller prepared its answer for); a token
/// that turns out to belong to no one expected is left as it was (`Invalid`), so presenting it
/// again can still succeed.
pub async fn rotate(
    pool: &AnyPool,
    old_hash: &str,
    new_hash: &str,
    expected: Option<&SessionSubject>,
) -> Result<Rotation, sqlx::Error> {
    let at = now();
    let mut tx = pool.begin().await?;
    // Claim first: starting with the write takes SQLite's write lock at once (no lock upgrade that
    // could fail under concurrency) and makes two simultaneous uses of one token race on a row
    // update that only one of them can win.
    let claimed = sqlx::query(
        "UPDATE refresh_tokens SET used_at = $1 \
         WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
    )
    .bind(at)
    .bind(old_hash)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    let row: Option<TokenRow> = sqlx::query_as(
        "SELECT family_id, user_id, participant_id, expires_at, used_at, revoked_at \
         FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(old_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(Rotation::Invalid);
    };
    if !claimed {
        if row.revoked_at.is_none() && row.used_at.is_some() {
            revoke_family(&mut *tx, &row.family_id, at).await?;
            tx.commit().await?;
            return Ok(Rotation::Reused);
        }
        return Ok(Rotation::Invalid);
    }
    // Dropping the transaction rolls the claim back.
    let Some(subject) = row.subject().filter(|s| Some(s) == expected) else {
        return Ok(Rotation::Invalid);
    };
    insert(&mut *tx, new_hash, &row.family_id, &subject, row.expires_at).await?;
    tx.commit().await?;
    Ok(Rotation::Rotated {
        subject,
        expires_at: row.expires_at,
    })
}

async fn revoke_family<'e, E>(executor: E, family_id: &str, at: i64) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
    )
    .bind(at)
    .bind(family_id)
    .execute(executor)
    .await
    .map(|_| ())
}

/// Revokes the family the token hashed as `token_hash` belongs to (sign-out). Unknown tokens are
/// ignored: signing out must always succeed.
pub async fn revoke_family_of(pool: &AnyPool, token_hash: &str) -> Result<(), sqlx::Error> {
    let family: Option<(String,)> =
        sqlx::query_as("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(pool)
            .await?;
    if let Some((family_id,)) = family {
        revoke_family(pool, &family_id, now()).await?;
    }
    Ok(())
}

/// Revokes every guest session of a participant (their invite link was replaced).
pub async fn revoke_all_for_participant(
    tx: &mut AnyConnection,
    participant_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 \
         WHERE participant_id = $2 AND revoked_at IS NULL",
    )
    .bind(now())
    .bind(participant_id)
    .execute(tx)
    .await
    .map(|_| ())
}

/// Moves the end of every live guest session of an interview (it was rescheduled).
pub async fn set_guest_expiry_for_interview<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    interview_id: &str,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET expires_at = $1 WHERE revoked_at IS NULL AND participant_id IN \
         (SELECT id FROM interview_participants WHERE interview_id = $2)",
    )
    .bind(expires_at)
    .bind(interview_id)
    .execute(executor)
    .await
    .map(|_| ())
}

/// Revokes every session of a user (after a password change).
pub async fn revoke_all_for_user<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
    )
    .bind(now())
    .bind(user_id)
    .execute(executor)
    .await
    .map(|_| ())
}
