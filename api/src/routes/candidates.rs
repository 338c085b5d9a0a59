//! `/api/admin/candidates/*`: a candidate's data rights, by their email address (in the body,
//! so it stays out of access logs): export everything held about them, or erase it. Admins
//! only; both are audited (without the address).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use garde::Validate;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::data_rights::{self, Erased};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::store::audit;

/// The data-rights routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/candidates/export", post(export))
        .route("/api/admin/candidates/erase", post(erase))
}

/// Whose data.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CandidateRequest {
    /// The address the candidate was invited at (or signed up with).
    #[garde(email, length(max = 254))]
    #[schema(format = Email, max_length = 254)]
    pub email: String,
}

/// Everything Sightline holds about a candidate, as one JSON document (recordings as links to
/// watch them through the API).
#[utoipa::path(post, path = "/api/admin/candidates/export", tag = "admin",
    security(("bearer" = [])), request_body = CandidateRequest,
    responses((status = 200, body = Object), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    admin: AuthUser,
    ApiJson(body): ApiJson<CandidateRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    admin.require_admin()?;
    let email = body.email.trim().to_lowercase();
    let document = data_rights::export(&state, &email).await?;
    audit::record(
        state.db.pool(),
        &admin.id,
        "candidate.exported",
        "candidate",
        serde_json::json!({ "interviews": document["interviews"].as_array().map_or(0, Vec::len) }),
    )
    .await?;
    Ok(Json(document))
}

/// Erases a candidate: their recordings and proctoring evidence (with every object in the
/// store), the code of their interviews, their invites, sessions, phone pairings, consents and
/// account; scorecards keep only their ratings and recommendation; their place in each
/// interview is renamed "Erased candidate". 409 while one of their interviews is going on.
#[utoipa::path(post, path = "/api/admin/candidates/erase", tag = "admin",
    security(("bearer" = [])), request_body = CandidateRequest,
    responses((status = 200, body = Erased), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn erase(
    State(state): State<AppState>,
    admin: AuthUser,
    ApiJson(body): ApiJson<CandidateRequest>,
) -> Result<Json<Erased>, ApiError> {
    admin.require_admin()?;
    let email = body.email.trim().to_lowercase();
    Ok(Json(data_rights::erase(&state, &admin.id, &email).await?))
}
