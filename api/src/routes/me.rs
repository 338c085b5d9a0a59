//! `/api/me`: who the caller is, and changing one's own name, password or time zone.

use axum::extract::State;
use axum::routing::{get, put};
use axum::{Json, Router};
use garde::Validate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AuthUser, Principal, password};
use crate::client_addr::ClientIp;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, known_time_zone, not_blank};
use crate::state::AppState;
use crate::store::users::AccountRole;
use crate::store::{interviews, refresh_tokens, users};

/// The `/api/me` routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/me", get(get_me).patch(patch_me))
        .route("/api/me/time-zone", put(set_time_zone))
}

/// The caller.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MeView {
    /// A signed-in account.
    User {
        /// User id.
        id: String,
        /// Email.
        email: String,
        /// Name shown to others.
        display_name: String,
        /// Platform role.
        role: AccountRole,
        /// Whether the address was confirmed (a self-registered account follows the link sent
        /// to it; accounts an operator creates are confirmed); absent when this server sends no
        /// email (there is nothing to confirm with).
        #[serde(skip_serializing_if = "Option::is_none")]
        email_verified: Option<bool>,
        /// The IANA zone email to them is written in; `null` until set (the web app sets its
        /// browser's the first time it finds none).
        #[schema(value_type = Option<crate::extract::TimeZoneName>)]
        time_zone: Option<String>,
    },
    /// A candidate who came in through an invite link.
    Guest {
        /// Participant id.
        id: String,
        /// Name shown to others.
        display_name: String,
        /// The interview they were invited to.
        interview_id: String,
    },
}

pub(crate) async fn me_view(state: &AppState, principal: &Principal) -> Result<MeView, ApiError> {
    match principal {
        Principal::User { id, .. } => {
            let user = users::by_id(state.db.pool(), id)
                .await?
                .ok_or(ApiError::Unauthenticated)?;
            Ok(MeView::User {
                role: user.role()?,
                email_verified: state
                    .mailer
                    .enabled()
                    .then_some(user.email_verified_at.is_some()),
                id: user.id,
                email: user.email,
                display_name: user.display_name,
                time_zone: user.time_zone,
            })
        }
        Principal::Guest {
            participant_id,
            interview_id,
            ..
        } => {
            let participant = interviews::participant(state.db.pool(), participant_id)
                .await?
                .ok_or(ApiError::Unauthenticated)?;
            Ok(MeView::Guest {
                id: participant.id,
                display_name: participant.display_name,
                interview_id: interview_id.clone(),
            })
        }
    }
}

/// Body of `PATCH /api/me`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// New display name.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    #[garde(inner(length(chars, min = 1, max = 100), custom(not_blank)))]
    pub display_name: Option<String>,
    /// Required with `new_password`.
    #[schema(max_length = 256)]
    #[garde(inner(length(chars, max = 256)))]
    pub current_password: Option<String>,
    /// New password; signs out every session.
    #[schema(min_length = 10, max_length = 256)]
    #[garde(inner(length(chars, min = 10, max = 256)))]
    pub new_password: Option<String>,
}

/// Body of `PUT /api/me/time-zone`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeZoneRequest {
    /// The IANA zone email to the caller is written in.
    #[garde(length(max = 64), custom(known_time_zone))]
    #[schema(value_type = crate::extract::TimeZoneName)]
    pub time_zone: String,
}

/// Who is calling.
#[utoipa::path(get, path = "/api/me", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = MeView), (status = 401, body = ErrorBody)))]
pub async fn get_me(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<MeView>, ApiError> {
    Ok(Json(me_view(&state, &principal).await?))
}

/// Changes the caller's name and/or password.
#[utoipa::path(patch, path = "/api/me", tag = "me", security(("bearer" = [])),
    request_body = UpdateMeRequest,
    responses((status = 200, body = MeView), (status = 401, body = ErrorBody),
        (status = 403, description = "Invite guests have no account to change", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(user = %user.id))]
pub async fn patch_me(
    State(state): State<AppState>,
    user: AuthUser,
    ClientIp(client): ClientIp,
    ApiJson(body): ApiJson<UpdateMeRequest>,
) -> Result<Json<MeView>, ApiError> {
    let row = users::by_id(state.db.pool(), &user.id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    if let Some(new_password) = body.new_password {
        let current = body
            .current_password
            .ok_or_else(|| ApiError::field("current_password", "required to set a new password"))?;
        // Same brute-force limit as sign-in: a stolen access token must not guess passwords.
        let account = format!("user:{}", user.id);
        state.account_limiter.check(&account, client)?;
        tokio::time::sleep(state.account_limiter.delay(&account)).await;
        if !password::verify(current, Some(row.password_hash.clone())).await {
            state.account_limiter.failed(&account);
            return Err(ApiError::field("current_password", "is not correct"));
        }
        state.account_limiter.succeeded(&account);
        let hash = password::hash(new_password).await?;
        users::set_password_hash(state.db.pool(), &user.id, &hash).await?;
        refresh_tokens::revoke_all_for_user(state.db.pool(), &user.id).await?;
    }
    if let Some(name) = body.display_name {
        users::set_display_name(state.db.pool(), &user.id, name.trim()).await?;
    }
    let principal = Principal::User {
        id: user.id,
        role: user.role,
        epoch: row.session_epoch,
    };
    Ok(Json(me_view(&state, &principal).await?))
}

/// Sets the zone the caller's email about interviews is written in (the web app sets its
/// browser's the first time it finds none).
#[utoipa::path(put, path = "/api/me/time-zone", tag = "me", security(("bearer" = [])),
    request_body = TimeZoneRequest,
    responses((status = 200, body = MeView), (status = 401, body = ErrorBody),
        (status = 403, description = "Invite guests have no account to change", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(user = %user.id))]
pub async fn set_time_zone(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<TimeZoneRequest>,
) -> Result<Json<MeView>, ApiError> {
    let row = users::by_id(state.db.pool(), &user.id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    users::set_time_zone(state.db.pool(), &user.id, &body.time_zone).await?;
    let principal = Principal::User {
        id: user.id,
        role: user.role,
        epoch: row.session_epoch,
    };
    Ok(Json(me_view(&state, &principal).await?))
}
