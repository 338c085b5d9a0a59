//! Proctoring: turning it on for an interview, a candidate's agreement, the events a reviewer
//! looks at (with their snapshots), and a reviewer's verdict on each.
//!
//! Events are evidence for people, never verdicts. Only the interview's interviewers, its
//! assigned reviewers and admins see them (everyone else gets 404, as if there were none);
//! every view of a snapshot and every review is written to the audit log.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sightline_signaling::InterviewRole;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::proctoring::snapshot_key;
use crate::rooms::{self, RoomControl};
use crate::routes::interviews;
use crate::state::AppState;
use crate::store::audit;
use crate::store::proctoring::{self as events, EventRow};

/// The proctoring routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/interviews/{id}/proctoring",
            get(read).put(set_settings),
        )
        .route("/api/interviews/{id}/proctoring/consent", post(consent))
        .route(
            "/api/interviews/{id}/proctoring/{event}/review",
            post(review),
        )
        .route(
            "/api/interviews/{id}/proctoring/{event}/snapshots/{n}",
            get(snapshot),
        )
}

/// An interview's proctoring: whether it is on, its events and a summary of them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProctoringView {
    /// The interview is proctored (checks run on candidates who agreed).
    pub enabled: bool,
    /// A candidate's screen share that ends is marked (`screen_share_stopped`).
    pub require_screen_share: bool,
    /// Checks are running now.
    pub running: bool,
    /// The face detector this server runs (`none` without a model: face checks are off).
    pub detector: String,
    /// Events in the order they began.
    pub events: Vec<EventRow>,
    /// Events by kind and review state. There is no score: each event is for a person to
    /// look at.
    pub summary: Vec<KindSummary>,
}

/// How many events of one kind there are, by review state.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct KindSummary {
    /// The kind.
    pub kind: String,
    /// All of them.
    pub total: u32,
    /// Not reviewed yet.
    pub unreviewed: u32,
    /// Confirmed by a reviewer.
    pub confirmed: u32,
    /// Dismissed by a reviewer.
    pub dismissed: u32,
}

/// Body of `PUT /api/interviews/{id}/proctoring`.
#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProctoringSettingsRequest {
    /// Proctor the interview.
    #[garde(skip)]
    pub enabled: bool,
    /// Mark a candidate's screen share that ends (default false).
    #[garde(skip)]
    #[serde(default)]
    pub require_screen_share: bool,
}

/// A reviewer's verdict.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// What the event marks did happen and matters.
    Confirmed,
    /// It did not, or it does not matter.
    Dismissed,
}

/// Body of `POST /api/interviews/{id}/proctoring/{event}/review`.
#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// Confirmed or dismissed.
    #[garde(skip)]
    pub verdict: Verdict,
    /// Why (may be empty).
    #[garde(length(chars, max = 2000))]
    #[serde(default)]
    pub note: String,
}

fn summary(events: &[EventRow]) -> Vec<KindSummary> {
    let mut by_kind: BTreeMap<&str, KindSummary> = BTreeMap::new();
    for event in events {
        let entry = by_kind.entry(&event.kind).or_insert_with(|| KindSummary {
            kind: event.kind.clone(),
            ..KindSummary::default()
        });
        entry.total += 1;
        match event.verdict.as_deref() {
            Some("confirmed") => entry.confirmed += 1,
            Some("dismissed") => entry.dismissed += 1,
            _ => entry.unreviewed += 1,
        }
    }
    by_kind.into_values().collect()
}

async fn view(state: &AppState, id: &str) -> Result<ProctoringView, ApiError> {
    let events = events::for_interview(state.db.pool(), id).await?;
    let settings = events::settings(state.db.pool(), id).await?;
    Ok(ProctoringView {
        enabled: settings.is_some(),
        require_screen_share: settings.is_some_and(|s| s.require_screen_share),
        // The events matter more than this flag: while NATS cannot say, this node's memory.
        running: rooms::control(state, id, RoomControl::ProctoringRunning)
            .await
            .unwrap_or_else(|_| state.proctoring.is_running(id)),
        detector: state.proctoring.detector(),
        summary: summary(&events),
        events,
    })
}

/// The interview's proctoring events (interviewers, assigned reviewers, admins).
#[utoipa::path(get, path = "/api/interviews/{id}/proctoring", tag = "proctoring",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    responses((status = 200, body = ProctoringView), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<ProctoringView>, ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    if !access.may_review() {
        return Err(ApiError::NotFound);
    }
    Ok(Json(view(&state, &id).await?))
}

/// Turns proctoring on or off (the interview's interviewers and admins). Turned on, checks
/// start when someone enters the room (at once if someone is there), on each candidate's
/// streams once that candidate agreed.
#[utoipa::path(put, path = "/api/interviews/{id}/proctoring", tag = "proctoring",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    request_body = ProctoringSettingsRequest,
    responses((status = 200, body = ProctoringView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn set_settings(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProctoringSettingsRequest>,
) -> Result<Json<ProctoringView>, ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    access.require_manage()?;
    let settings = body.enabled.then_some(events::Settings {
        require_screen_share: body.require_screen_share,
    });
    events::set_enabled(state.db.pool(), &id, settings, &principal.actor()).await?;
    audit::record(
        state.db.pool(),
        &principal.actor(),
        "proctoring.set",
        &id,
        serde_json::json!({
            "enabled": body.enabled,
            "require_screen_share": body.require_screen_share,
        }),
    )
    .await?;
    // A running controller read the settings when it started: it is restarted with the new
    // ones (turned off, it stops; the candidates' agreement was forgotten with the setting).
    // Where the room runs: the checks stop, and start again with the new settings if the room
    // is up.
    rooms::control(&state, &id, RoomControl::StopProctoring).await?;
    if body.enabled {
        rooms::control(&state, &id, RoomControl::StartProctoringIfUp).await?;
    }
    Ok(Json(view(&state, &id).await?))
}

/// The caller, a candidate of this interview, agrees to be proctored (only while it is: an
/// agreement is forgotten when proctoring is turned off).
#[utoipa::path(post, path = "/api/interviews/{id}/proctoring/consent", tag = "proctoring",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    responses((status = 204, description = "Recorded"), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn consent(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    let me = access
        .me
        .as_ref()
        .filter(|_| access.my_role() == Some(InterviewRole::Candidate))
        .ok_or(ApiError::Forbidden(
            "only this interview's candidate agrees to its proctoring",
        ))?;
    if !events::enabled(state.db.pool(), &id).await? {
        return Err(ApiError::Conflict {
            code: "not_proctored",
            message: "this interview is not proctored".into(),
        });
    }
    events::consent(state.db.pool(), &id, &me.id).await?;
    audit::record(
        state.db.pool(),
        &principal.actor(),
        "proctoring.consented",
        &id,
        serde_json::json!({ "participant": me.id }),
    )
    .await?;
    let consented = RoomControl::ProctoringConsented {
        participant: me.id.clone(),
    };
    rooms::control(&state, &id, consented).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A reviewer confirms or dismisses an event, with a note (interviewers, assigned reviewers,
/// admins).
#[utoipa::path(post, path = "/api/interviews/{id}/proctoring/{event}/review", tag = "proctoring",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Interview id"),
        ("event" = String, Path, description = "Event id")),
    request_body = ReviewRequest,
    responses((status = 200, body = EventRow), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn review(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, event)): Path<(String, String)>,
    ApiJson(body): ApiJson<ReviewRequest>,
) -> Result<Json<EventRow>, ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    if !access.may_review() {
        return Err(ApiError::NotFound);
    }
    events::get(state.db.pool(), &id, &event)
        .await?
        .ok_or(ApiError::NotFound)?;
    let verdict = match body.verdict {
        Verdict::Confirmed => "confirmed",
        Verdict::Dismissed => "dismissed",
    };
    events::review(
        state.db.pool(),
        &event,
        verdict,
        body.note.trim(),
        &principal.actor(),
    )
    .await?;
    audit::record(
        state.db.pool(),
        &principal.actor(),
        "proctoring.reviewed",
        &id,
        serde_json::json!({ "event": event, "verdict": verdict }),
    )
    .await?;
    let row = events::get(state.db.pool(), &id, &event)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(row))
}

/// Snapshot `n` of an event, as JPEG (interviewers, assigned reviewers, admins).
#[utoipa::path(get, path = "/api/interviews/{id}/proctoring/{event}/snapshots/{n}",
    tag = "proctoring", security(("bearer" = [])),
    params(("id" = String, Path, description = "Interview id"),
        ("event" = String, Path, description = "Event id"),
        ("n" = u32, Path, description = "Snapshot number, from 0")),
    responses((status = 200, content_type = "image/jpeg", description = "The snapshot"),
        (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn snapshot(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, event, n)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    // A number that is not one names no snapshot: 404, like one out of range.
    let n: u32 = n.parse().map_err(|_| ApiError::NotFound)?;
    let access = interviews::access(&state, &principal, &id).await?;
    if !access.may_review() {
        return Err(ApiError::NotFound);
    }
    let row = events::get(state.db.pool(), &id, &event)
        .await?
        .ok_or(ApiError::NotFound)?;
    if i64::from(n) >= i64::from(row.snapshots) {
        return Err(ApiError::NotFound);
    }
    let bytes = state
        .proctoring
        .store()
        .get(&snapshot_key(&id, &event, n))
        .await
        .map_err(|e| ApiError::Internal(format!("reading a snapshot: {e}")))?
        .ok_or(ApiError::NotFound)?;
    audit::record(
        state.db.pool(),
        &principal.actor(),
        "proctoring.snapshot_viewed",
        &id,
        serde_json::json!({ "event": event, "snapshot": n }),
    )
    .await?;
    // Not kept by the browser: every view is asked for, and audited.
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response())
}
