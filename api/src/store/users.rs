//! The `users` table: accounts with a platform-wide role.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, FromRow};
use utoipa::ToSchema;

use super::{new_id, now};

/// A person's role on the platform (their role in one interview is a separate thing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountRole {
    /// Joins interviews they are invited to; the role self-registration gives.
    Candidate,
    /// Creates and runs interviews.
    Interviewer,
    /// Reviews interviews they are assigned to.
    Reviewer,
    /// Manages accounts and sees everything.
    Admin,
}

impl AccountRole {
    /// The stable name used in JSON, tokens and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountRole::Candidate => "candidate",
            AccountRole::Interviewer => "interviewer",
            AccountRole::Reviewer => "reviewer",
            AccountRole::Admin => "admin",
        }
    }

    /// Whether this role may create and run interviews.
    pub fn is_staff(self) -> bool {
        matches!(self, AccountRole::Interviewer | AccountRole::Admin)
    }
}

impl fmt::Display for AccountRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccountRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "candidate" => Ok(AccountRole::Candidate),
            "interviewer" => Ok(AccountRole::Interviewer),
            "reviewer" => Ok(AccountRole::Reviewer),
            "admin" => Ok(AccountRole::Admin),
            other => Err(format!("unknown role `{other}`")),
        }
    }
}

/// A row of `users`.
#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    /// UUIDv7.
    pub id: String,
    /// Lower-cased email; unique.
    pub email: String,
    /// Name shown to others.
    pub display_name: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// Platform role name.
    pub role: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When an admin deactivated the account (it cannot sign in), if they did.
    pub deactivated_at: Option<i64>,
    /// The session generation its access tokens must carry.
    pub session_epoch: i64,
    /// When its owner confirmed the address (followed the link sent at registration); accounts
    /// an operator creates are confirmed at creation.
    pub email_verified_at: Option<i64>,
    /// The IANA zone email to them is written in; `None` until their browser or they set one.
    pub time_zone: Option<String>,
}

impl UserRow {
    /// The parsed role; the CHECK constraint keeps storage to known names.
    pub fn role(&self) -> Result<AccountRole, sqlx::Error> {
        self.role
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))
    }
}

/// The columns of [`UserRow`], as a literal so queries stay static strings.
macro_rules! user_columns {
    () => {
        "id, email, display_name, password_hash, role, created_at, deactivated_at, session_epoch, \
         email_verified_at, time_zone"
    };
}

/// Inserts a user; a taken email surfaces as a unique violation.
pub async fn insert(
    pool: &AnyPool,
    email: &str,
    display_name: &str,
    password_hash: &str,
    role: AccountRole,
) -> Result<UserRow, sqlx::Error> {
    let id = new_id();
    let at = now();
    sqlx::query(
        "INSERT INTO users (id, email, display_name, password_hash, role, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&id)
    .bind(email)
    .bind(display_name)
    .bind(password_hash)
    .bind(role.as_str())
    .bind(at)
    .execute(pool)
    .await?;
    Ok(UserRow {
        id,
        email: email.to_owned(),
        display_name: display_name.to_owned(),
        password_hash: password_hash.to_owned(),
        role: role.as_str().to_owned(),
        created_at: at,
        deactivated_at: None,
        session_epoch: 0,
        email_verified_at: None,
        time_zone: None,
    })
}

/// Looks a user up by (lower-cased) email.
pub async fn by_email(pool: &AnyPool, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE email = $1"
    ))
    .bind(email)
    .fetch_optional(pool)
    .await
}

/// Looks a user up by id.
pub async fn by_id(pool: &AnyPool, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Every user, oldest first, at most `limit`.
pub async fn list(pool: &AnyPool, limit: i64) -> Result<Vec<UserRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users ORDER BY created_at, id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Changes the display name.
pub async fn set_display_name(pool: &AnyPool, id: &str, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET display_name = $1, updated_at = $2 WHERE id = $3")
        .bind(name)
        .bind(now())
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Sets the zone email to the account is written in (an IANA name checked by the caller).
pub async fn set_time_zone(pool: &AnyPool, id: &str, zone: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET time_zone = $1, updated_at = $2 WHERE id = $3")
        .bind(zone)
        .bind(now())
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Replaces the password hash.
pub async fn set_password_hash<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    id: &str,
    hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(now())
        .bind(id)
        .execute(executor)
        .await
        .map(|_| ())
}

/// Changes the platform role; false if there is no such user.
pub async fn set_role(pool: &AnyPool, id: &str, role: AccountRole) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE id = $3")
        .bind(role.as_str())
        .bind(now())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether `id`'s sessions still count: `None` for no such account; else when it was
/// deactivated (if it was) and the session generation its access tokens must carry.
pub async fn session_state(
    pool: &AnyPool,
    id: &str,
) -> Result<Option<(Option<i64>, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT deactivated_at, session_epoch FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Ends every session of `id` at once: access tokens issued until now are refused.
pub async fn end_sessions<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET session_epoch = session_epoch + 1 WHERE id = $1")
        .bind(id)
        .execute(executor)
        .await
        .map(|_| ())
}

/// Sets `id`'s password to `hash` and ends every session of the account at once (its refresh
/// tokens revoked, its session generation raised), in `tx`.
pub async fn replace_password(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    hash: &str,
) -> Result<(), sqlx::Error> {
    set_password_hash(&mut **tx, id, hash).await?;
    end_sessions(&mut **tx, id).await?;
    super::refresh_tokens::revoke_all_for_user(&mut **tx, id).await
}

/// Deactivates `id` at `at` (ending its sessions) or, with `active`, lets it sign in again;
/// false if there is no such user.
pub async fn set_active<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    id: &str,
    active: bool,
    at: i64,
) -> Result<bool, sqlx::Error> {
    let sql = if active {
        "UPDATE users SET deactivated_at = NULL, updated_at = $1 WHERE id = $2"
    } else {
        "UPDATE users SET deactivated_at = $1, session_epoch = session_epoch + 1, \
         updated_at = $1 WHERE id = $2"
    };
    let done = sqlx::query(sql).bind(at).bind(id).execute(executor).await?;
    Ok(done.rows_affected() == 1)
}

/// Whether any account has the admin role.
pub async fn any_admin(pool: &AnyPool) -> Result<bool, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE role = $1 LIMIT 1")
        .bind(AccountRole::Admin.as_str())
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

/// Marks the account's address confirmed at `at` (once).
pub async fn mark_verified<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    id: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET email_verified_at = $1 WHERE id = $2 AND email_verified_at IS NULL",
    )
    .bind(at)
    .bind(id)
    .execute(executor)
    .await
    .map(|_| ())
}

/// Takes the account's row for the caller's transaction (a write that changes nothing), so
/// transactions about one account run one after the other.
pub async fn hold<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET updated_at = updated_at WHERE id = $1")
        .bind(id)
        .execute(executor)
        .await
        .map(|_| ())
}
