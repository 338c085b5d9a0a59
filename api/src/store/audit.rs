//! The `audit_log` table: who did what to whom, for admin and operator actions.

use serde::Serialize;
use sqlx::{AnyPool, FromRow};
use utoipa::ToSchema;

use super::{new_id, now};

/// The actor name for actions taken with the `sightline` command line.
pub const CLI_ACTOR: &str = "cli";

/// One audit entry.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct AuditEntry {
    /// UUIDv7.
    pub id: String,
    /// User id of the actor, or `cli`.
    pub actor: String,
    /// What was done, e.g. `user.role_changed`.
    pub action: String,
    /// What it was done to, e.g. a user or interview id.
    pub target: String,
    /// JSON with the specifics (old and new values).
    pub details: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// Appends an entry.
pub async fn record<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    actor: &str,
    action: &str,
    target: &str,
    details: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (id, actor, action, target, details, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id())
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(details.to_string())
    .bind(now())
    .execute(executor)
    .await
    .map(|_| ())
}

/// What to look for in the audit log; every part optional.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Exactly this action (`user.deactivated`).
    pub action: Option<String>,
    /// Done by this actor (a user id, `cli`, `guest:…`).
    pub actor: Option<String>,
    /// Done to this target (a user, interview, recording … id).
    pub target: Option<String>,
    /// At or after (Unix seconds).
    pub since: Option<i64>,
    /// Before (Unix seconds).
    pub until: Option<i64>,
}

/// The newest entries matching `filter`, at most `limit`.
pub async fn find(
    pool: &AnyPool,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    // An absent part compares a column with itself: static SQL both databases type alike.
    sqlx::query_as(
        "SELECT id, actor, action, target, details, created_at FROM audit_log \
         WHERE action = COALESCE($1, action) AND actor = COALESCE($2, actor) \
         AND target = COALESCE($3, target) AND created_at >= COALESCE($4, created_at) \
         AND created_at < COALESCE($5, created_at + 1) \
         ORDER BY created_at DESC, id DESC LIMIT $6",
    )
    .bind(filter.action.as_deref())
    .bind(filter.actor.as_deref())
    .bind(filter.target.as_deref())
    .bind(filter.since)
    .bind(filter.until)
    .bind(limit)
    .fetch_all(pool)
    .await
}
