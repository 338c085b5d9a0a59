//! Operations endpoints: liveness, readiness, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::{OpenApi, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The operations routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(openapi))
}

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The server can do its work: the database answers, and (in a cluster) it is not draining.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    // A draining node serves the rooms it hosts but wants no new traffic.
    if state
        .cluster
        .as_ref()
        .is_some_and(|c| c.state() == sightline_cluster::NodeState::Draining)
    {
        return Err(ApiError::Unavailable(
            "this node is draining: it serves only the rooms it hosts",
        ));
    }
    if let Err(err) = state.db.ping().await {
        tracing::warn!(error = %err, "readiness check: database unreachable");
        return Err(ApiError::Unavailable("the database is not reachable"));
    }
    Ok(Json(Health { status: "ok" }))
}

/// Prometheus metrics (OpenMetrics text), for a scraper holding `metrics.token`. Not served
/// here when metrics have a listener of their own (`metrics.addr`), nor when no token is set.
#[utoipa::path(get, path = "/metrics", tag = "ops", security(("bearer" = [])),
    responses((status = 200, description = "OpenMetrics text", content_type = "text/plain"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let settings = &state.settings.metrics;
    let Some(expected) = settings.token.as_ref().filter(|_| settings.addr.is_none()) else {
        return ApiError::NotFound.into_response();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Digests are compared, so the time taken says nothing about how much of the token matched.
    if Sha256::digest(presented.as_bytes()) != Sha256::digest(expected.expose_secret().as_bytes()) {
        return ApiError::Unauthenticated.into_response();
    }
    exposition(&state).into_response()
}

/// The metrics listener's only route: no token, since only the scraper reaches that address.
pub fn metrics_listener_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(state): State<AppState>| async move { exposition(&state) }),
        )
        .with_state(state)
}

fn exposition(state: &AppState) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "ops",
    responses((status = 200, description = "OpenAPI document", content_type = "application/json")))]
pub async fn openapi() -> impl IntoResponse {
    Json(crate::openapi::ApiDoc::openapi())
}
