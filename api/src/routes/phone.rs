//! Pairing a candidate's phone as a second camera (see `pairing` for the secrets and rules).
//!
//! In the room, the candidate (or an interviewer, on the candidate's behalf) asks for a pairing:
//! `POST /api/interviews/{id}/phone-pairings` answers with the link, its QR code (SVG drawn
//! here) and a manual code, once. The phone, with no account, shows what it will share
//! (`/api/phone/inspect`), uses the pairing up (`/api/phone/redeem`, which gives it a session
//! token and replaces any earlier phone) and then gets join tokens with the session
//! (`/api/phone/join`), again after a reload. A phone's join token has the phone's grants: one
//! `secondary_camera` video, nothing else. `DELETE .../phone-pairings/{candidate_id}` unpairs.
//!
//! Secrets travel in request bodies (never URLs the server logs) and the public calls sit
//! behind the per-IP rate limit, which makes guessing a code or token hopeless.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use garde::Validate;
use serde::{Deserialize, Serialize};
use sightline_signaling::{InterviewRole, LeaveReason, RoomId};
use utoipa::ToSchema;

use crate::auth::rate_limit::per_ip_layer;
use crate::auth::tokens::JoinSubject;
use crate::auth::{Principal, opaque};
use crate::error::{ApiError, ErrorBody, PairingProblem};
use crate::extract::ApiJson;
use crate::pairing::{self, PAIRING_TTL_SECS, PairingState};
use crate::routes::interviews::{
    self, Access, JOIN_GRACE_SECS, JoinResponse, require_room_open, rfc3339, room_open,
};
use crate::state::AppState;
use crate::store::interviews::{InterviewRow, ParticipantRow};
use crate::store::phone_pairings::{self, PairingRow};
use crate::store::{self, interviews as interview_store, is_unique_violation};

/// Tries at drawing a manual code that no other pairing has (a clash is one in billions).
const CODE_ATTEMPTS: usize = 3;

/// The pairing routes; every one is behind the per-IP limit.
pub fn router(state: &AppState) -> Router<AppState> {
    let limit = || per_ip_layer(&state.settings);
    let in_room = Router::new()
        .route("/api/interviews/{id}/phone-pairings", post(create))
        .route(
            "/api/interviews/{id}/phone-pairings/{candidate_id}",
            delete(remove),
        )
        .layer(limit());
    let phone = Router::new()
        .route("/api/phone/inspect", post(inspect))
        .route("/api/phone/redeem", post(redeem))
        .route("/api/phone/join", post(join))
        .layer(limit());
    in_room.merge(phone)
}

/// Body of `POST /api/interviews/{id}/phone-pairings`.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairingRequest {
    /// The candidate whose phone to pair (participant id). A candidate pairing their own phone
    /// leaves it out; an interviewer must name the candidate when there are several.
    #[schema(max_length = 64)]
    #[garde(inner(length(chars, max = 64)))]
    pub candidate: Option<String>,
}

/// A new pairing, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct PairingCreated {
    /// The candidate (participant id).
    pub candidate: String,
    /// `{public_base_url}/pair/{token}`: what the QR code says.
    pub url: String,
    /// The same link as a QR code, SVG.
    pub qr_svg: String,
    /// For typing at `{public_base_url}/pair` when scanning fails, e.g. `ABCD-EFGH`.
    pub code: String,
    /// Where to type it.
    pub code_url: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
}

/// How a phone proves it may pair: the token from the QR code or link, or the manual code
/// (exactly one of them).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1, max_properties = 1)]
pub struct PairingSecret {
    /// From the QR code or link.
    #[schema(max_length = 128, nullable = false)]
    #[garde(inner(length(chars, max = 128)))]
    pub token: Option<String>,
    /// Typed by hand.
    #[schema(max_length = 32, nullable = false)]
    #[garde(inner(length(chars, max = 32)))]
    pub code: Option<String>,
}

/// What a phone sees before it shares anything.
#[derive(Debug, Serialize, ToSchema)]
pub struct PairingPreview {
    /// Interview title.
    pub title: String,
    /// The candidate the phone will belong to.
    pub candidate_name: String,
    /// Who will see the phone's camera.
    pub interviewers: Vec<String>,
    /// RFC 3339, UTC: the code works until then.
    pub expires_at: String,
}

/// What a phone keeps after pairing.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneSession {
    /// Keep it (in the tab's session storage) to rejoin after a reload.
    pub session: String,
    /// The interview (room).
    pub interview_id: String,
}

/// Body of `POST /api/phone/join`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneJoinRequest {
    /// From `/api/phone/redeem`.
    #[schema(max_length = 128)]
    #[garde(length(chars, max = 128))]
    pub session: String,
}

/// The candidate a pairing request is about, if the caller may pair for them.
fn candidate_for<'a>(
    access: &'a Access,
    requested: Option<&str>,
) -> Result<&'a ParticipantRow, ApiError> {
    let candidates: Vec<&ParticipantRow> = access
        .participants
        .iter()
        .filter(|p| p.role == InterviewRole::Candidate.as_str())
        .collect();
    if access.my_role() == Some(InterviewRole::Candidate) {
        let me = access.me.as_ref().ok_or(ApiError::NotFound)?;
        return match requested {
            None => Ok(me),
            Some(id) if id == me.id => Ok(me),
            Some(_) => Err(ApiError::Forbidden(
                "a candidate pairs only their own phone",
            )),
        };
    }
    if !access.can_manage() {
        return Err(ApiError::Forbidden(
            "only the candidate or an interviewer can pair a phone",
        ));
    }
    match requested {
        Some(id) => candidates
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| ApiError::field("candidate", "is not a candidate of this interview")),
        None => match candidates[..] {
            [only] => Ok(only),
            _ => Err(ApiError::field(
                "candidate",
                "name the candidate whose phone to pair",
            )),
        },
    }
}

/// Starts pairing a candidate's phone: a QR code, its link and a manual code, valid for five
/// minutes and once. An unused earlier code of the same candidate stops working.
#[utoipa::path(post, path = "/api/interviews/{id}/phone-pairings", tag = "phone",
    security(("bearer" = [])), request_body = PairingRequest,
    params(("id" = String, Path, description = "Interview id")),
    responses((status = 201, body = PairingCreated), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PairingRequest>,
) -> Result<(StatusCode, Json<PairingCreated>), ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    let candidate = candidate_for(&access, body.candidate.as_deref())?;
    let now = store::now();
    require_room_open(
        &access.interview,
        now,
        "phones can only be paired while the interview is open",
    )?;
    let base = state
        .settings
        .public
        .base_url
        .as_str()
        .trim_end_matches('/');
    let token = opaque::generate()?;
    let url = format!("{base}/pair/{token}");
    let expires_at = now.saturating_add(PAIRING_TTL_SECS);
    let mut attempts = 0;
    let code = loop {
        attempts += 1;
        let code = pairing::generate_code()?;
        let mut tx = state.db.pool().begin().await?;
        let created = phone_pairings::create(
            &mut tx,
            &access.interview.id,
            &candidate.id,
            &opaque::hash(&token),
            &opaque::hash(&code),
            expires_at,
        )
        .await;
        match created {
            Ok(()) => {
                tx.commit().await?;
                break code;
            }
            Err(err) if is_unique_violation(&err) && attempts < CODE_ATTEMPTS => continue,
            Err(err) => return Err(err.into()),
        }
    };
    tracing::info!(candidate = %candidate.id, "phone pairing started");
    Ok((
        StatusCode::CREATED,
        Json(PairingCreated {
            candidate: candidate.id.clone(),
            qr_svg: pairing::qr_svg(&url)?,
            url,
            code: pairing::display_code(&code),
            code_url: format!("{base}/pair"),
            expires_at: rfc3339(expires_at),
        }),
    ))
}

/// Unpairs a candidate's phone: it is disconnected at once and its codes and session stop
/// working.
#[utoipa::path(delete, path = "/api/interviews/{id}/phone-pairings/{candidate_id}",
    tag = "phone", security(("bearer" = [])),
    params(("id" = String, Path, description = "Interview id"),
        ("candidate_id" = String, Path, description = "The candidate's participant id")),
    responses((status = 204, description = "Unpaired"), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, candidate_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    let candidate = candidate_for(&access, Some(&candidate_id))?;
    phone_pairings::revoke_for_participant(state.db.pool(), &candidate.id).await?;
    state
        .remove_participant(
            &RoomId(access.interview.id.clone()),
            &pairing::phone_identity(&candidate.id),
            LeaveReason::Removed,
        )
        .await;
    tracing::info!(candidate = %candidate.id, "phone unpaired");
    Ok(StatusCode::NO_CONTENT)
}

/// A pairing that may be used now, with what it is for.
struct Usable {
    pairing: PairingRow,
    interview: InterviewRow,
    candidate: ParticipantRow,
}

async fn find(state: &AppState, secret: &PairingSecret) -> Result<PairingRow, ApiError> {
    let unknown = ApiError::Pairing(PairingProblem::Unknown);
    let found = match (&secret.token, &secret.code) {
        (Some(token), None) => {
            if !opaque::is_well_formed(token) {
                return Err(unknown);
            }
            phone_pairings::by_token_hash(state.db.pool(), &opaque::hash(token)).await?
        }
        (None, Some(code)) => {
            let Some(code) = pairing::normalize_code(code) else {
                return Err(unknown);
            };
            phone_pairings::by_code_hash(state.db.pool(), &opaque::hash(&code)).await?
        }
        _ => {
            return Err(ApiError::field(
                "token",
                "give either the token from the link or the code",
            ));
        }
    };
    found.ok_or(unknown)
}

async fn usable(state: &AppState, secret: &PairingSecret) -> Result<Usable, ApiError> {
    let pairing = find(state, secret).await?;
    let now = store::now();
    PairingState {
        expires_at: pairing.expires_at,
        used_at: pairing.used_at,
        revoked_at: pairing.revoked_at,
    }
    .check(now)
    .map_err(ApiError::Pairing)?;
    let interview = interview_store::by_id(state.db.pool(), &pairing.interview_id)
        .await?
        .ok_or(ApiError::Pairing(PairingProblem::Unknown))?;
    if !room_open(&interview, now) {
        return Err(ApiError::Pairing(PairingProblem::Revoked));
    }
    let candidate = interview_store::participant(state.db.pool(), &pairing.participant_id)
        .await?
        .ok_or(ApiError::Pairing(PairingProblem::Unknown))?;
    Ok(Usable {
        pairing,
        interview,
        candidate,
    })
}

/// Shows a phone what pairing would share and with whom, without using the code up.
#[utoipa::path(post, path = "/api/phone/inspect", tag = "phone", request_body = PairingSecret,
    responses((status = 200, body = PairingPreview),
        (status = 404, description = "Unknown or malformed", body = ErrorBody),
        (status = 410, description = "Used, expired or no longer valid", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn inspect(
    State(state): State<AppState>,
    ApiJson(secret): ApiJson<PairingSecret>,
) -> Result<Json<PairingPreview>, ApiError> {
    let found = usable(&state, &secret).await?;
    let interviewers = interview_store::participants(state.db.pool(), &found.interview.id)
        .await?
        .into_iter()
        .filter(|p| p.role == InterviewRole::Interviewer.as_str())
        .map(|p| p.display_name)
        .collect();
    Ok(Json(PairingPreview {
        title: found.interview.title,
        candidate_name: found.candidate.display_name,
        interviewers,
        expires_at: rfc3339(found.pairing.expires_at),
    }))
}

/// Pairs the phone: uses the code up, replaces any phone paired before, and gives this one a
/// session to join the room with.
#[utoipa::path(post, path = "/api/phone/redeem", tag = "phone", request_body = PairingSecret,
    responses((status = 200, body = PhoneSession), (status = 404, body = ErrorBody),
        (status = 410, body = ErrorBody), (status = 429, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn redeem(
    State(state): State<AppState>,
    ApiJson(secret): ApiJson<PairingSecret>,
) -> Result<Json<PhoneSession>, ApiError> {
    let found = usable(&state, &secret).await?;
    let session = opaque::generate()?;
    let session_expires_at = found.interview.ends_at().saturating_add(JOIN_GRACE_SECS);
    let mut tx = state.db.pool().begin().await?;
    let redeemed = phone_pairings::redeem(
        &mut tx,
        &found.pairing,
        &opaque::hash(&session),
        session_expires_at,
    )
    .await?;
    if !redeemed {
        // Another phone won the race for the same code.
        return Err(ApiError::Pairing(PairingProblem::Used));
    }
    tx.commit().await?;
    // The phone paired before, if still connected, gives way at once.
    state
        .remove_participant(
            &RoomId(found.interview.id.clone()),
            &pairing::phone_identity(&found.candidate.id),
            LeaveReason::Replaced,
        )
        .await;
    tracing::info!(interview = %found.interview.id, candidate = %found.candidate.id, "phone paired");
    Ok(Json(PhoneSession {
        session,
        interview_id: found.interview.id,
    }))
}

/// A join token for a paired phone: the candidate's phone identity, the phone's grants.
#[utoipa::path(post, path = "/api/phone/join", tag = "phone", request_body = PhoneJoinRequest,
    responses((status = 200, body = JoinResponse),
        (status = 401, description = "Unpaired, replaced or the interview is over", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn join(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PhoneJoinRequest>,
) -> Result<Json<JoinResponse>, ApiError> {
    let ended = ApiError::Pairing(PairingProblem::SessionEnded);
    if !opaque::is_well_formed(&body.session) {
        return Err(ended);
    }
    let pairing = phone_pairings::by_session_hash(state.db.pool(), &opaque::hash(&body.session))
        .await?
        .ok_or(ApiError::Pairing(PairingProblem::SessionEnded))?;
    let now = store::now();
    let interview = interview_store::by_id(state.db.pool(), &pairing.interview_id)
        .await?
        .filter(|i| room_open(i, now))
        .ok_or(ApiError::Pairing(PairingProblem::SessionEnded))?;
    let candidate = interview_store::participant(state.db.pool(), &pairing.participant_id)
        .await?
        .ok_or(ended)?;
    let identity = pairing::phone_identity(&candidate.id);
    let (token, claims) = state.tokens.issue_join(
        JoinSubject {
            participant_id: &identity,
            name: &candidate.display_name,
            room: RoomId(interview.id.clone()),
            role: InterviewRole::Candidate,
            phone_of: Some(&candidate.id),
            epoch: candidate.session_epoch,
        },
        now,
    )?;
    Ok(Json(JoinResponse::signed(token, claims)))
}
