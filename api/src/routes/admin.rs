//! `/api/admin/*`: account roles and the audit log. Every change here is audited.

use axum::extract::{Path, State};
use axum::routing::{get, patch};
use axum::{Json, Router};
use garde::Validate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::store::audit::{self, AuditEntry};
use crate::store::users::{self, AccountRole, UserRow};

const LIST_LIMIT: i64 = 1000;

/// The admin routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/users", get(list_users))
        .route("/api/admin/users/{id}", patch(set_role))
        .route("/api/admin/audit", get(audit_log))
}

/// An account as admins see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// User id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Name.
    pub display_name: String,
    /// Platform role.
    pub role: AccountRole,
    /// RFC 3339, UTC.
    pub created_at: String,
}

impl TryFrom<UserRow> for UserView {
    type Error = ApiError;

    fn try_from(row: UserRow) -> Result<Self, ApiError> {
        Ok(UserView {
            role: row.role()?,
            created_at: jiff::Timestamp::from_second(row.created_at)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            id: row.id,
            email: row.email,
            display_name: row.display_name,
        })
    }
}

/// Body of `PATCH /api/admin/users/{id}`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRoleRequest {
    /// The new platform role.
    #[garde(skip)]
    pub role: AccountRole,
}

/// Every account.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<UserView>), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    admin: AuthUser,
) -> Result<Json<Vec<UserView>>, ApiError> {
    admin.require_admin()?;
    let rows = users::list(state.db.pool(), LIST_LIMIT).await?;
    Ok(Json(
        rows.into_iter()
            .map(UserView::try_from)
            .collect::<Result<_, _>>()?,
    ))
}

/// Grants an account another platform role.
#[utoipa::path(patch, path = "/api/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    request_body = SetRoleRequest, params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(admin = %admin.id, target = %id))]
pub async fn set_role(
    State(state): State<AppState>,
    admin: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetRoleRequest>,
) -> Result<Json<UserView>, ApiError> {
    admin.require_admin()?;
    if id == admin.id {
        return Err(ApiError::Conflict {
            code: "own_role",
            message: "admins cannot change their own role (another admin can)".into(),
        });
    }
    let before = users::by_id(state.db.pool(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    users::set_role(state.db.pool(), &id, body.role).await?;
    audit::record(
        state.db.pool(),
        &admin.id,
        "user.role_changed",
        &id,
        serde_json::json!({ "from": before.role, "to": body.role.as_str() }),
    )
    .await?;
    tracing::info!(role = %body.role, "role changed");
    let after = users::by_id(state.db.pool(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(after.try_into()?))
}

/// The newest audit entries.
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<AuditEntry>), (status = 403, body = ErrorBody)))]
pub async fn audit_log(
    State(state): State<AppState>,
    admin: AuthUser,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    admin.require_admin()?;
    Ok(Json(audit::recent(state.db.pool(), LIST_LIMIT).await?))
}
