//! `/api/invites/*`: looking at and redeeming a candidate's invite link.
//!
//! The token travels in the request body, not the URL, so it never lands in access logs or
//! `Referer` headers. Inspecting does not use the link up; redeeming does, exactly once. A guest
//! session from a redeemed link lasts until the interview ends; a signed-in account that redeems
//! the link is linked to the candidate slot instead.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use axum_extra::extract::CookieJar;
use garde::Validate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::rate_limit::per_ip_layer;
use crate::auth::{MaybePrincipal, Principal, opaque};
use crate::error::{ApiError, ErrorBody, InviteProblem};
use crate::routes::auth::{answer_session, prepare_session};
use crate::state::AppState;
use crate::store::interviews::{InterviewRow, ParticipantRow};
use crate::store::invites::InviteRow;
use crate::store::refresh_tokens::SessionSubject;
use crate::store::{self, interviews, invites, proctoring, recordings, refresh_tokens};

/// The invite routes, behind the per-IP limit (they take secrets from the client).
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/invites/inspect", post(inspect))
        .route("/api/invites/redeem", post(redeem))
        .layer(per_ip_layer(&state.settings))
}

/// Body of both invite calls.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteTokenRequest {
    /// The token from the link `/join/{token}`.
    #[schema(max_length = 128)]
    #[garde(length(chars, max = 128))]
    pub token: String,
    /// On redeem, also put the guest session's refresh token in the body (clients that are not
    /// browsers); browsers get it only as the `HttpOnly` cookie.
    #[serde(default)]
    #[garde(skip)]
    pub refresh_token_in_body: bool,
}

/// What a candidate sees before accepting.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitePreview {
    /// Interview id.
    pub interview_id: String,
    /// Title.
    pub title: String,
    /// RFC 3339, UTC.
    pub scheduled_start: String,
    /// Minutes.
    pub duration_minutes: i64,
    /// IANA zone.
    pub time_zone: String,
    /// The candidate's name as the interviewer entered it.
    pub candidate_name: String,
    /// Names of the interviewers.
    pub interviewers: Vec<String>,
    /// What is kept of the interview and for how long, for the candidate to read first.
    pub kept: KeptData,
}

/// What an interview keeps about its candidate, and for how long (days after the interview;
/// 0: until an administrator deletes it).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeptData {
    /// The interview is set to be recorded as soon as everyone present agrees (interviewers may
    /// also start a recording in the room; either way the candidate is asked first).
    pub recorded_automatically: bool,
    /// The interview is proctored (the candidate is asked first).
    pub proctored: bool,
    /// Days recordings (with the chat) are kept.
    pub recording_days: u32,
    /// Days proctoring evidence is kept.
    pub proctoring_days: u32,
    /// Days the shared editor's code and its runs are kept.
    pub code_days: u32,
}

/// Result of redeeming with an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkedToAccount {
    /// The interview now on the account's dashboard.
    pub interview_id: String,
}

struct UsableInvite {
    invite: InviteRow,
    participant: ParticipantRow,
    interview: InterviewRow,
}

async fn usable(state: &AppState, token: &str) -> Result<UsableInvite, ApiError> {
    if !opaque::is_well_formed(token) {
        return Err(ApiError::Invite(InviteProblem::Unknown));
    }
    let invite = invites::by_hash(state.db.pool(), &opaque::hash(token))
        .await?
        .ok_or(ApiError::Invite(InviteProblem::Unknown))?;
    if invite.used_at.is_some() {
        return Err(ApiError::Invite(InviteProblem::Used));
    }
    if invite.revoked_at.is_some() {
        return Err(ApiError::Invite(InviteProblem::Revoked));
    }
    if invite.expires_at <= store::now() {
        return Err(ApiError::Invite(InviteProblem::Expired));
    }
    let participant = interviews::participant(state.db.pool(), &invite.participant_id)
        .await?
        .ok_or(ApiError::Invite(InviteProblem::Unknown))?;
    let interview = interviews::by_id(state.db.pool(), &participant.interview_id)
        .await?
        .ok_or(ApiError::Invite(InviteProblem::Unknown))?;
    if interview.is_cancelled() {
        return Err(ApiError::Invite(InviteProblem::Revoked));
    }
    Ok(UsableInvite {
        invite,
        participant,
        interview,
    })
}

/// Shows what an invite link is for, without using it up.
#[utoipa::path(post, path = "/api/invites/inspect", tag = "invites",
    request_body = InviteTokenRequest,
    responses((status = 200, body = InvitePreview),
        (status = 404, description = "Unknown or malformed", body = ErrorBody),
        (status = 410, description = "Used, expired or revoked", body = ErrorBody)))]
pub async fn inspect(
    State(state): State<AppState>,
    crate::extract::ApiJson(body): crate::extract::ApiJson<InviteTokenRequest>,
) -> Result<Json<InvitePreview>, ApiError> {
    let found = usable(&state, &body.token).await?;
    let interviewers = interviews::participants(state.db.pool(), &found.interview.id)
        .await?
        .into_iter()
        .filter(|p| p.role == "interviewer")
        .map(|p| p.display_name)
        .collect();
    let pool = state.db.pool();
    let kept = KeptData {
        recorded_automatically: recordings::auto(pool, &found.interview.id).await?.is_some(),
        proctored: proctoring::enabled(pool, &found.interview.id).await?,
        recording_days: state.settings.recording.retention_days,
        proctoring_days: state.settings.proctoring.retention_days,
        code_days: state.settings.execution.code_retention_days,
    };
    Ok(Json(InvitePreview {
        kept,
        interview_id: found.interview.id,
        title: found.interview.title,
        scheduled_start: jiff::Timestamp::from_second(found.interview.scheduled_start)
            .map(|t| t.to_string())
            .unwrap_or_default(),
        duration_minutes: found.interview.duration_minutes,
        time_zone: found.interview.time_zone,
        candidate_name: found.participant.display_name,
        interviewers,
    }))
}

/// Uses an invite link: a guest session, or a link to the signed-in account.
#[utoipa::path(post, path = "/api/invites/redeem", tag = "invites",
    request_body = InviteTokenRequest,
    responses(
        (status = 200, description = "Guest session (no account) or account linked",
            body = crate::routes::auth::SessionResponse),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 410, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn redeem(
    State(state): State<AppState>,
    MaybePrincipal(caller): MaybePrincipal,
    jar: CookieJar,
    crate::extract::ApiJson(body): crate::extract::ApiJson<InviteTokenRequest>,
) -> Result<Response, ApiError> {
    let found = usable(&state, &body.token).await?;
    if found.participant.user_id.is_some() {
        // Checked before the link is spent: this candidate signs in with their account.
        return Err(ApiError::Conflict {
            code: "invite_claimed",
            message: "this invite belongs to a candidate who signs in with their account".into(),
        });
    }
    if let Some(Principal::User { id, .. }) = &caller {
        let participants = interviews::participants(state.db.pool(), &found.interview.id).await?;
        if participants
            .iter()
            .any(|p| p.user_id.as_deref() == Some(id.as_str()))
        {
            return Err(ApiError::Conflict {
                code: "already_participant",
                message: "this account already takes part in the interview".into(),
            });
        }
    }
    // The link is spent in the same transaction that stores what it gave (the account's claim,
    // or the guest's session): a failure in between leaves it usable, not used for nothing.
    match caller {
        Some(Principal::User { id, .. }) => {
            let mut tx = state.db.pool().begin().await?;
            if !invites::redeem(&mut *tx, &found.invite.id).await? {
                return Err(ApiError::Invite(InviteProblem::Used));
            }
            interviews::claim_participant(&mut *tx, &found.participant.id, &id).await?;
            tx.commit().await?;
            tracing::info!(interview = %found.interview.id, "invite redeemed by an account");
            Ok(Json(LinkedToAccount {
                interview_id: found.interview.id,
            })
            .into_response())
        }
        _ => {
            let principal = Principal::Guest {
                participant_id: found.participant.id.clone(),
                interview_id: found.interview.id.clone(),
                epoch: found.participant.session_epoch,
            };
            let prepared = prepare_session(&state, &principal).await?;
            let subject = SessionSubject::Guest(found.participant.id);
            let expires_at = found
                .interview
                .ends_at()
                .saturating_add(crate::routes::interviews::JOIN_GRACE_SECS);
            let refresh_token = opaque::generate()?;
            let mut tx = state.db.pool().begin().await?;
            if !invites::redeem(&mut *tx, &found.invite.id).await? {
                return Err(ApiError::Invite(InviteProblem::Used));
            }
            refresh_tokens::start_family(
                &mut *tx,
                &opaque::hash(&refresh_token),
                &subject,
                expires_at,
            )
            .await?;
            tx.commit().await?;
            tracing::info!(interview = %found.interview.id, "invite redeemed");
            Ok(answer_session(
                &state,
                jar,
                prepared,
                refresh_token,
                expires_at,
                body.refresh_token_in_body,
            ))
        }
    }
}
