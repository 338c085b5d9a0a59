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

/// The newest entries first, at most `limit`.
pub async fn recent(pool: &AnyPool, limit: i64) -> Result<Vec<AuditEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, actor, action, target, details, created_at FROM audit_log \
         ORDER BY created_at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}
