//! `/api/interviews/*`: scheduling interviews, who may see them, and room join tokens.
//!
//! Visibility: an interview exists, as far as a caller can tell, only if they take part in it
//! (as a participant, or as the guest of its invite) or are an admin; everyone else gets 404.
//! Managing it (reschedule, cancel, reissue invites) needs the interviewer role in it, or admin.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use garde::Validate;
use serde::{Deserialize, Serialize};
use sightline_signaling::protocol::LeaveReason;
use sightline_signaling::{Grants, InterviewRole, RoomId};
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::auth::tokens::{JoinClaims, JoinSubject};
use crate::auth::{AuthUser, Principal, opaque};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, known_time_zone, not_blank};
use crate::rooms::{self, RoomControl};
use crate::routes::scorecards::{self, ScorecardProgress};
use crate::state::AppState;
use crate::store::interviews::{InterviewRow, NewInterview, NewParticipant, ParticipantRow};
use crate::store::invites::InviteRow;
use crate::store::users::AccountRole;
use crate::store::{
    self, audit, interviews, invites, phone_pairings, questions, refresh_tokens, users,
};
use crate::webhooks::{self, Event, InterviewData};

/// Most participants one interview may have.
const MAX_PARTICIPANTS: usize = 50;
/// How long after its planned end a room may still be joined (interviews overrun); guest
/// sessions last as long.
pub(crate) const JOIN_GRACE_SECS: i64 = 3600;
/// Most interviews listed on a dashboard.
const LIST_LIMIT: i64 = 500;

/// The interview routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/interviews", post(create))
        .route("/api/interviews/my", get(my))
        .route("/api/interviews/{id}", get(read).patch(update))
        .route("/api/interviews/{id}/cancel", post(cancel))
        .route("/api/interviews/{id}/join", post(join))
        .route(
            "/api/interviews/{id}/participants/{participant_id}/invite",
            post(reissue_invite),
        )
}

/// One participant in a create request.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipantInput {
    /// Email; staff must already have an account with a fitting role.
    #[schema(format = Email, max_length = 254)]
    #[garde(email, length(max = 254))]
    pub email: String,
    /// Name to show; defaults to the account's name or the email.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    #[garde(inner(length(chars, min = 1, max = 100), custom(not_blank)))]
    pub display_name: Option<String>,
    /// `candidate`, `interviewer`, `observer` or `reviewer`.
    #[garde(skip)]
    #[schema(value_type = String, example = "candidate")]
    pub role: InterviewRole,
    /// The IANA zone email to this person is written in (e.g. a candidate's own); without it,
    /// their account's zone, or else the interview's.
    #[garde(inner(length(max = 64), custom(known_time_zone)))]
    #[schema(value_type = Option<crate::extract::TimeZoneName>)]
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// Body of `POST /api/interviews`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInterviewRequest {
    /// Shown on dashboards and invites.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    #[garde(length(chars, min = 1, max = 200), custom(not_blank))]
    pub title: String,
    /// RFC 3339 instant, e.g. `2026-12-01T09:00:00+01:00`.
    #[garde(skip)]
    #[schema(value_type = String, format = DateTime)]
    pub scheduled_start: jiff::Timestamp,
    /// 5 to 480 minutes.
    #[schema(minimum = 5, maximum = 480)]
    #[garde(range(min = 5, max = 480))]
    #[serde(deserialize_with = "crate::extract::integral")]
    pub duration_minutes: i64,
    /// IANA time zone the interview is planned in.
    #[garde(length(max = 64), custom(known_time_zone))]
    #[schema(value_type = crate::extract::TimeZoneName)]
    pub time_zone: String,
    /// Everyone but the creator, who joins as interviewer.
    #[schema(min_items = 1, max_items = 50)]
    #[garde(length(min = 1, max = MAX_PARTICIPANTS), dive)]
    pub participants: Vec<ParticipantInput>,
    /// Questions of the bank to attach, in order (hidden from the candidate until revealed).
    #[schema(max_items = 20)]
    #[garde(length(max = 20), inner(length(chars, min = 1, max = 64)))]
    #[serde(default)]
    pub question_ids: Vec<String>,
}

/// Body of `PATCH /api/interviews/{id}`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInterviewRequest {
    /// New title.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    #[garde(inner(length(chars, min = 1, max = 200), custom(not_blank)))]
    pub title: Option<String>,
    /// New start.
    #[garde(skip)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_start: Option<jiff::Timestamp>,
    /// New length.
    #[schema(minimum = 5, maximum = 480)]
    #[garde(inner(range(min = 5, max = 480)))]
    #[serde(default, deserialize_with = "crate::extract::integral_opt")]
    pub duration_minutes: Option<i64>,
    /// New time zone.
    #[garde(inner(length(max = 64), custom(known_time_zone)))]
    #[schema(value_type = Option<crate::extract::TimeZoneName>)]
    pub time_zone: Option<String>,
}

/// State of a candidate's invite link.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InviteStatus {
    /// Sent and not used yet.
    Pending,
    /// The candidate came in with it.
    Used,
    /// The interview is over.
    Expired,
    /// Replaced or cancelled.
    Revoked,
}

/// A participant as shown to a caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantView {
    /// Participant id (the identity in the room).
    pub id: String,
    /// Name.
    pub display_name: String,
    /// Role in the interview.
    #[schema(value_type = String)]
    pub role: InterviewRole,
    /// Email; shown to staff only.
    pub email: Option<String>,
    /// Candidate invite state; shown to staff only.
    pub invite: Option<InviteStatus>,
}

/// An interview as shown to a caller: its summary plus the caller's view of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InterviewView {
    /// Id, title, schedule and status.
    #[serde(flatten)]
    pub summary: InterviewSummary,
    /// The caller's role in it, if they take part.
    #[schema(value_type = Option<String>)]
    pub my_role: Option<InterviewRole>,
    /// Whether the caller may reschedule, cancel and reissue invites.
    pub can_manage: bool,
    /// Whether the caller can get a join token now.
    pub can_join: bool,
    /// Everyone taking part (hidden reviewers only for staff).
    pub participants: Vec<ParticipantView>,
}

/// A dashboard line.
#[derive(Debug, Serialize, ToSchema)]
pub struct InterviewSummary {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// RFC 3339, UTC.
    pub scheduled_start: String,
    /// RFC 3339, UTC.
    pub ends_at: String,
    /// Minutes.
    pub duration_minutes: i64,
    /// IANA zone.
    pub time_zone: String,
    /// `scheduled` or `cancelled`.
    pub status: String,
    /// On the caller's dashboard, for an interview they interview or review that has begun:
    /// whose scorecards are in and whose are missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scorecards: Option<ScorecardProgress>,
}

/// `GET /api/interviews/my`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyInterviews {
    /// Not ended and not cancelled, soonest first.
    pub upcoming: Vec<InterviewSummary>,
    /// Ended or cancelled, latest first.
    pub past: Vec<InterviewSummary>,
}

/// A freshly issued invite link; the token in it is shown only once.
#[derive(Debug, Serialize, ToSchema)]
pub struct InviteLink {
    /// The candidate.
    pub participant_id: String,
    /// Their email.
    pub email: String,
    /// `{public.base_url}/join/{token}`.
    pub url: String,
    /// RFC 3339; the end of the interview.
    pub expires_at: String,
}

/// Response of `POST /api/interviews`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInterview {
    /// The interview.
    pub interview: InterviewView,
    /// One link per candidate.
    pub invites: Vec<InviteLink>,
}

/// Response of `POST /api/interviews/{id}/join`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JoinResponse {
    /// JWT for the room's signaling socket.
    pub token: String,
    /// Seconds left to connect with it.
    pub expires_in: i64,
    /// The room (interview id).
    pub room: String,
    /// The caller's identity in the room.
    pub identity: String,
    /// Role in the interview.
    #[schema(value_type = String)]
    pub role: InterviewRole,
    /// What the caller may do in the room.
    #[schema(value_type = Object)]
    pub grants: Grants,
}

impl JoinResponse {
    /// The answer for a signed join token.
    pub(crate) fn signed(token: String, claims: JoinClaims) -> JoinResponse {
        JoinResponse {
            token,
            expires_in: claims.exp - claims.iat,
            room: claims.room.0,
            identity: claims.sub,
            role: claims.role,
            grants: claims.grants,
        }
    }
}

/// A unix time as RFC 3339 (UTC), as the API writes instants.
pub(crate) fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn summary(row: &InterviewRow) -> InterviewSummary {
    InterviewSummary {
        id: row.id.clone(),
        title: row.title.clone(),
        scheduled_start: rfc3339(row.scheduled_start),
        ends_at: rfc3339(row.ends_at()),
        duration_minutes: row.duration_minutes,
        time_zone: row.time_zone.clone(),
        status: row.status.clone(),
        scorecards: None,
    }
}

pub(crate) fn role_of(row: &ParticipantRow) -> Result<InterviewRole, ApiError> {
    row.role
        .parse()
        .map_err(|e| ApiError::Internal(format!("stored participant role: {e}")))
}

/// Whether an interview's room may be entered at `now`: not cancelled, and not past its end by
/// more than the grace period.
pub(crate) fn room_open(interview: &InterviewRow, now: i64) -> bool {
    !interview.is_cancelled() && now < interview.ends_at().saturating_add(JOIN_GRACE_SECS)
}

/// Refuses with 409 `interview_closed` (saying `message`) unless the room is open at `now`.
pub(crate) fn require_room_open(
    interview: &InterviewRow,
    now: i64,
    message: &str,
) -> Result<(), ApiError> {
    if room_open(interview, now) {
        Ok(())
    } else {
        Err(ApiError::Conflict {
            code: "interview_closed",
            message: message.to_owned(),
        })
    }
}

/// What the caller is to one interview.
pub(crate) struct Access {
    pub(crate) interview: InterviewRow,
    pub(crate) participants: Vec<ParticipantRow>,
    pub(crate) me: Option<ParticipantRow>,
    is_admin: bool,
}

impl Access {
    /// Whether the caller is an admin (who may see operational details).
    pub(crate) fn is_admin(&self) -> bool {
        self.is_admin
    }

    pub(crate) fn my_role(&self) -> Option<InterviewRole> {
        self.me.as_ref().and_then(|p| role_of(p).ok())
    }

    pub(crate) fn can_manage(&self) -> bool {
        self.is_admin || self.my_role() == Some(InterviewRole::Interviewer)
    }

    fn sees_staff_details(&self) -> bool {
        self.is_admin
            || self
                .my_role()
                .is_some_and(|r| r != InterviewRole::Candidate)
    }

    fn can_join(&self, now: i64) -> bool {
        self.me.is_some() && room_open(&self.interview, now)
    }

    /// Whether the caller may watch the interview's recordings: its interviewers, its assigned
    /// reviewers, admins.
    pub(crate) fn may_review(&self) -> bool {
        self.is_admin
            || matches!(
                self.my_role(),
                Some(InterviewRole::Interviewer | InterviewRole::Reviewer)
            )
    }

    pub(crate) fn require_manage(&self) -> Result<(), ApiError> {
        if self.can_manage() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "only this interview's interviewers or an admin may do this",
            ))
        }
    }
}

/// The caller's relation to interview `id`; 404 when they have none (as if it did not exist).
pub(crate) async fn access(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<Access, ApiError> {
    let interview = interviews::by_id(state.db.pool(), id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let participants = interviews::participants(state.db.pool(), id).await?;
    let (me, is_admin) = match principal {
        // The platform role is read from the database, never from the token: a demoted admin
        // loses admin power at once, not when their access token expires.
        Principal::User { id: user_id, .. } => (
            participants
                .iter()
                .find(|p| p.user_id.as_deref() == Some(user_id))
                .cloned(),
            users::by_id(state.db.pool(), user_id)
                .await?
                .map(|user| user.role())
                .transpose()?
                == Some(AccountRole::Admin),
        ),
        Principal::Guest {
            participant_id,
            interview_id,
            ..
        } if interview_id == id => (
            participants
                .iter()
                .find(|p| &p.id == participant_id)
                .cloned(),
            false,
        ),
        Principal::Guest { .. } => (None, false),
    };
    if me.is_none() && !is_admin {
        return Err(ApiError::NotFound);
    }
    Ok(Access {
        interview,
        participants,
        me,
        is_admin,
    })
}

fn invite_status(invite: &InviteRow, now: i64) -> InviteStatus {
    if invite.used_at.is_some() {
        InviteStatus::Used
    } else if invite.revoked_at.is_some() {
        InviteStatus::Revoked
    } else if invite.expires_at <= now {
        InviteStatus::Expired
    } else {
        InviteStatus::Pending
    }
}

async fn view(state: &AppState, access: &Access) -> Result<InterviewView, ApiError> {
    let now = store::now();
    let staff = access.sees_staff_details();
    let mut invite_by_participant: HashMap<String, InviteStatus> = HashMap::new();
    if staff {
        for invite in invites::latest_for_interview(state.db.pool(), &access.interview.id).await? {
            invite_by_participant
                .entry(invite.participant_id.clone())
                .or_insert_with(|| invite_status(&invite, now));
        }
    }
    let mut participants = Vec::with_capacity(access.participants.len());
    for row in &access.participants {
        let role = role_of(row)?;
        if role == InterviewRole::Reviewer && !staff {
            continue;
        }
        participants.push(ParticipantView {
            id: row.id.clone(),
            display_name: row.display_name.clone(),
            role,
            email: staff.then(|| row.email.clone()),
            invite: staff
                .then(|| invite_by_participant.get(&row.id).copied())
                .flatten(),
        });
    }
    Ok(InterviewView {
        summary: summary(&access.interview),
        my_role: access.my_role(),
        can_manage: access.can_manage(),
        can_join: access.can_join(now),
        participants,
    })
}

async fn issue_invite(
    state: &AppState,
    tx: &mut AnyConnection,
    participant: &ParticipantRow,
    expires_at: i64,
) -> Result<InviteLink, ApiError> {
    let token = opaque::generate()?;
    invites::issue(tx, &participant.id, &opaque::hash(&token), expires_at).await?;
    let base = state
        .settings
        .public
        .base_url
        .as_str()
        .trim_end_matches('/');
    Ok(InviteLink {
        participant_id: participant.id.clone(),
        email: participant.email.clone(),
        url: format!("{base}/join/{token}"),
        expires_at: rfc3339(expires_at),
    })
}

/// Whether an account with `role` may take part in an interview as `interview_role`.
fn account_fits(role: AccountRole, interview_role: InterviewRole) -> bool {
    match interview_role {
        InterviewRole::Candidate => true,
        InterviewRole::Interviewer | InterviewRole::Observer => role.is_staff(),
        InterviewRole::Reviewer => role.is_staff() || role == AccountRole::Reviewer,
    }
}

/// Schedules an interview and issues one invite link per candidate.
#[utoipa::path(post, path = "/api/interviews", tag = "interviews", security(("bearer" = [])),
    request_body = CreateInterviewRequest,
    responses((status = 201, body = CreatedInterview), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(user = %user.id))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<CreateInterviewRequest>,
) -> Result<(StatusCode, Json<CreatedInterview>), ApiError> {
    if !user.role.is_staff() {
        return Err(ApiError::Forbidden(
            "only interviewers and admins may schedule interviews",
        ));
    }
    let scheduled_start = body.scheduled_start.as_second();
    let ends_at = scheduled_start.saturating_add(body.duration_minutes.saturating_mul(60));
    if ends_at <= store::now() {
        return Err(ApiError::field(
            "scheduled_start",
            "the interview would already be over",
        ));
    }
    let creator = users::by_id(state.db.pool(), &user.id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let mut participants = vec![NewParticipant {
        email: creator.email.clone(),
        display_name: creator.display_name.clone(),
        role: InterviewRole::Interviewer.as_str(),
        user_id: Some(creator.id.clone()),
        time_zone: None,
    }];
    let mut has_candidate = false;
    for (i, input) in body.participants.iter().enumerate() {
        let field = format!("participants[{i}].email");
        let email = super::auth::normalize_email(&input.email);
        if participants.iter().any(|p| p.email == email) {
            return Err(ApiError::field(
                field,
                "appears twice (the creator is included)",
            ));
        }
        let named = input.display_name.as_deref().map(str::trim);
        let participant = if input.role == InterviewRole::Candidate {
            has_candidate = true;
            // Candidates are bound to an account only when they redeem their invite, which
            // proves they read that mailbox; matching on email alone would not.
            NewParticipant {
                display_name: named.unwrap_or(&email).to_owned(),
                email,
                role: input.role.as_str(),
                user_id: None,
                time_zone: input.time_zone.clone(),
            }
        } else {
            let account = users::by_email(state.db.pool(), &email).await?;
            let account = account
                .filter(|a| a.role().is_ok_and(|r| account_fits(r, input.role)))
                .ok_or_else(|| {
                    ApiError::field(
                        &field,
                        format!("no account that may join as {} has this email", input.role),
                    )
                })?;
            NewParticipant {
                display_name: named.unwrap_or(&account.display_name).to_owned(),
                email,
                role: input.role.as_str(),
                user_id: Some(account.id),
                time_zone: input.time_zone.clone(),
            }
        };
        participants.push(participant);
    }
    if !has_candidate {
        return Err(ApiError::field(
            "participants",
            "at least one candidate is needed",
        ));
    }
    let mut question_ids: Vec<&str> = Vec::new();
    for (i, question) in body.question_ids.iter().enumerate() {
        if questions::get(state.db.pool(), question).await?.is_none() {
            return Err(ApiError::field(
                format!("question_ids[{i}]"),
                "no such question",
            ));
        }
        if !question_ids.contains(&question.as_str()) {
            question_ids.push(question);
        }
    }
    let new = NewInterview {
        title: body.title.trim(),
        scheduled_start,
        duration_minutes: body.duration_minutes,
        time_zone: &body.time_zone,
        created_by: &user.id,
    };
    // One transaction: a failure part-way leaves no interview behind for a retry to duplicate.
    let mut tx = state.db.pool().begin().await?;
    let (interview, rows) = interviews::insert(&mut tx, &new, &participants).await?;
    let mut links = Vec::new();
    for row in rows
        .iter()
        .filter(|r| r.role == InterviewRole::Candidate.as_str())
    {
        links.push(issue_invite(&state, &mut tx, row, interview.ends_at()).await?);
    }
    questions::attach_all(&mut tx, &interview.id, &question_ids).await?;
    let sent_links: Vec<(String, String)> = links
        .iter()
        .map(|l| (l.participant_id.clone(), l.url.clone()))
        .collect();
    crate::invitations::scheduled(&state, &mut tx, &interview, &rows, &sent_links).await?;
    webhooks::record(
        &mut tx,
        &Event::InterviewScheduled(InterviewData::from_row(&interview)),
    )
    .await?;
    tx.commit().await?;
    state.webhooks.wake();
    state.mailer.wake();
    if user.role == AccountRole::Admin {
        audit::record(
            state.db.pool(),
            &user.id,
            "interview.created",
            &interview.id,
            serde_json::json!({ "title": interview.title }),
        )
        .await?;
    }
    tracing::info!(interview = %interview.id, "interview scheduled");
    let access = Access {
        me: rows.first().cloned(),
        interview,
        participants: rows,
        is_admin: user.role == AccountRole::Admin,
    };
    Ok((
        StatusCode::CREATED,
        Json(CreatedInterview {
            interview: view(&state, &access).await?,
            invites: links,
        }),
    ))
}

/// The caller's interviews, split into upcoming and past.
#[utoipa::path(get, path = "/api/interviews/my", tag = "interviews", security(("bearer" = [])),
    responses((status = 200, body = MyInterviews), (status = 401, body = ErrorBody)))]
pub async fn my(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<MyInterviews>, ApiError> {
    let rows = match &principal {
        Principal::User { id, .. } => interviews::for_user(state.db.pool(), id, LIST_LIMIT).await?,
        Principal::Guest { interview_id, .. } => interviews::by_id(state.db.pool(), interview_id)
            .await?
            .into_iter()
            .collect(),
    };
    let now = store::now();
    let (mut past, upcoming): (Vec<_>, Vec<_>) = rows
        .iter()
        .partition(|row| row.is_cancelled() || row.ends_at() <= now);
    past.reverse();
    let progress = match &principal {
        Principal::User { id, .. } => scorecards::progress_for_user(&state, id).await?,
        Principal::Guest { .. } => Default::default(),
    };
    let line = |row: &InterviewRow| InterviewSummary {
        scorecards: (!row.is_cancelled() && row.scheduled_start <= now)
            .then(|| progress.get(&row.id).cloned())
            .flatten(),
        ..summary(row)
    };
    Ok(Json(MyInterviews {
        upcoming: upcoming.into_iter().map(&line).collect(),
        past: past.into_iter().map(&line).collect(),
    }))
}

/// One interview with its participants.
#[utoipa::path(get, path = "/api/interviews/{id}", tag = "interviews", security(("bearer" = [])),
    params(("id" = String, Path, description = "Interview id")),
    responses((status = 200, body = InterviewView), (status = 404, body = ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<InterviewView>, ApiError> {
    let access = access(&state, &principal, &id).await?;
    Ok(Json(view(&state, &access).await?))
}

/// Reschedules or renames an interview.
#[utoipa::path(patch, path = "/api/interviews/{id}", tag = "interviews",
    security(("bearer" = [])), request_body = UpdateInterviewRequest,
    params(("id" = String, Path, description = "Interview id")),
    responses((status = 200, body = InterviewView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateInterviewRequest>,
) -> Result<Json<InterviewView>, ApiError> {
    let mut access = access(&state, &principal, &id).await?;
    access.require_manage()?;
    if access.interview.is_cancelled() {
        return Err(ApiError::Conflict {
            code: "interview_cancelled",
            message: "a cancelled interview cannot be changed".into(),
        });
    }
    let before = access.interview.clone();
    let row = &mut access.interview;
    if let Some(title) = body.title {
        row.title = title.trim().to_owned();
    }
    if let Some(start) = body.scheduled_start {
        row.scheduled_start = start.as_second();
    }
    if let Some(minutes) = body.duration_minutes {
        row.duration_minutes = minutes;
    }
    if let Some(zone) = body.time_zone {
        row.time_zone = zone;
    }
    if row.ends_at() <= store::now() {
        return Err(ApiError::field(
            "scheduled_start",
            "the interview would already be over",
        ));
    }
    // The change, the expiry of its links and sessions, and its messages in one transaction:
    // a change is never saved without them, nor told without being saved.
    let change = crate::invitations::Change::Moved {
        start_moved: row.scheduled_start != before.scheduled_start,
    };
    let told = row.scheduled_start != before.scheduled_start
        || row.duration_minutes != before.duration_minutes
        || row.title != before.title;
    let mut tx = state.db.pool().begin().await?;
    if !interviews::update(&mut *tx, row).await? {
        return Err(ApiError::Conflict {
            code: "interview_cancelled",
            message: "a cancelled interview cannot be changed".into(),
        });
    }
    invites::set_expiry_for_interview(&mut *tx, &row.id, row.ends_at()).await?;
    refresh_tokens::set_guest_expiry_for_interview(
        &mut *tx,
        &row.id,
        row.ends_at().saturating_add(JOIN_GRACE_SECS),
    )
    .await?;
    // Everyone's calendar moves with it (a time zone alone changes nothing people see).
    if told {
        crate::invitations::changed(&state, &mut tx, row, &access.participants, change).await?;
    }
    tx.commit().await?;
    state.mailer.wake();
    state
        .webhooks
        .emit(&Event::InterviewUpdated(InterviewData::from_row(
            &access.interview,
        )))
        .await;
    if access.is_admin && access.me.is_none() {
        audit::record(
            state.db.pool(),
            principal_id(&principal),
            "interview.updated",
            &id,
            serde_json::json!({ "scheduled_start": access.interview.scheduled_start }),
        )
        .await?;
    }
    Ok(Json(view(&state, &access).await?))
}

fn principal_id(principal: &Principal) -> &str {
    match principal {
        Principal::User { id, .. } => id,
        Principal::Guest { participant_id, .. } => participant_id,
    }
}

/// Cancels an interview; its invite links stop working.
#[utoipa::path(post, path = "/api/interviews/{id}/cancel", tag = "interviews",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    responses((status = 200, body = InterviewView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<InterviewView>, ApiError> {
    let access = access(&state, &principal, &id).await?;
    access.require_manage()?;
    // The cancellation, its links' end and its messages in one transaction.
    let mut tx = state.db.pool().begin().await?;
    if !interviews::cancel(&mut *tx, &id).await? {
        return Err(ApiError::Conflict {
            code: "interview_cancelled",
            message: "the interview is already cancelled".into(),
        });
    }
    invites::revoke_for_interview(&mut *tx, &id).await?;
    let mut cancelled = access.interview.clone();
    cancelled.status = "cancelled".to_owned();
    crate::invitations::changed(
        &state,
        &mut tx,
        &cancelled,
        &access.participants,
        crate::invitations::Change::Cancelled,
    )
    .await?;
    tx.commit().await?;
    state.mailer.wake();
    // The shared code turns read-only for everyone at once.
    state.documents.recheck(&id).await;
    if access.is_admin {
        audit::record(
            state.db.pool(),
            principal_id(&principal),
            "interview.cancelled",
            &id,
            serde_json::json!({}),
        )
        .await?;
    }
    let access = self::access(&state, &principal, &id).await?;
    state
        .webhooks
        .emit(&Event::InterviewCancelled(InterviewData::from_row(
            &access.interview,
        )))
        .await;
    Ok(Json(view(&state, &access).await?))
}

/// A short-lived token to enter the interview's room, with the grants of the caller's role.
#[utoipa::path(post, path = "/api/interviews/{id}/join", tag = "interviews",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    responses((status = 200, body = JoinResponse), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn join(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<JoinResponse>, ApiError> {
    let access = access(&state, &principal, &id).await?;
    let me = access.me.as_ref().ok_or(ApiError::Forbidden(
        "only participants of this interview can join its room",
    ))?;
    if access.interview.is_cancelled() {
        return Err(ApiError::Conflict {
            code: "interview_cancelled",
            message: "this interview was cancelled".into(),
        });
    }
    let now = store::now();
    if !access.can_join(now) {
        return Err(ApiError::Conflict {
            code: "interview_over",
            message: "this interview is over".into(),
        });
    }
    let role = role_of(me)?;
    // An interview set to record automatically starts waiting for everyone's consent as soon as
    // someone is about to enter.
    // Both run where the room runs (in a cluster, perhaps another node); a host that cannot be
    // reached now gets them from the next join, and the participant gets in meanwhile.
    if let Some(enabled_by) = crate::store::recordings::auto(state.db.pool(), &id).await?
        && !state.recordings.is_running(&id)
    {
        let start = RoomControl::StartRecording {
            started_by: enabled_by,
        };
        started_or_later(rooms::control(&state, &id, start).await, &id)?;
    }
    // So does a proctored interview's checking (each candidate's streams once they agreed).
    if crate::store::proctoring::enabled(state.db.pool(), &id).await?
        && !state.proctoring.is_running(&id)
    {
        let started = rooms::control(&state, &id, RoomControl::StartProctoring).await;
        started_or_later(started, &id)?;
    }
    let (token, claims) = state.tokens.issue_join(
        JoinSubject {
            participant_id: &me.id,
            name: &me.display_name,
            room: RoomId(access.interview.id.clone()),
            role,
            phone_of: None,
            epoch: me.session_epoch,
        },
        now,
    )?;
    Ok(Json(JoinResponse::signed(token, claims)))
}

/// Issues a new invite link for a candidate; the previous one stops working.
#[utoipa::path(post, path = "/api/interviews/{id}/participants/{participant_id}/invite",
    tag = "interviews", security(("bearer" = [])),
    params(("id" = String, Path, description = "Interview id"),
        ("participant_id" = String, Path, description = "Candidate's participant id")),
    responses((status = 201, body = InviteLink), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn reissue_invite(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, participant_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<InviteLink>), ApiError> {
    let access = access(&state, &principal, &id).await?;
    access.require_manage()?;
    if access.interview.is_cancelled() || access.interview.ends_at() <= store::now() {
        return Err(ApiError::Conflict {
            code: "interview_closed",
            message: "invites can only be sent for an upcoming interview".into(),
        });
    }
    let participant = access
        .participants
        .iter()
        .find(|p| p.id == participant_id && p.role == InterviewRole::Candidate.as_str())
        .ok_or(ApiError::NotFound)?;
    let mut tx = state.db.pool().begin().await?;
    let link = issue_invite(&state, &mut tx, participant, access.interview.ends_at()).await?;
    // Whoever used the old link (perhaps not the candidate) loses everything it gave them: their
    // refresh tokens, their access and join tokens (the session generation moves on), the
    // account link a signed-in redemption made, and the phone they paired.
    refresh_tokens::revoke_all_for_participant(&mut tx, &participant.id).await?;
    interviews::end_sessions(&mut tx, &participant.id).await?;
    phone_pairings::revoke_for_participant(&mut *tx, &participant.id).await?;
    crate::invitations::reissued(&state, &mut tx, &access.interview, participant, &link.url)
        .await?;
    audit::record(
        &mut *tx,
        principal_id(&principal),
        "invite.reissued",
        &id,
        serde_json::json!({ "participant_id": participant.id }),
    )
    .await?;
    tx.commit().await?;
    state.mailer.wake();
    // And they leave the room now, not when their socket next asks for something.
    let room = RoomId(id.clone());
    state
        .remove_participant(&room, &participant.id, LeaveReason::SessionEnded)
        .await;
    state
        .remove_participant(
            &room,
            &crate::pairing::phone_identity(&participant.id),
            LeaveReason::SessionEnded,
        )
        .await;
    state.documents.recheck(&id).await;
    Ok((StatusCode::CREATED, Json(link)))
}

/// An agent's start for a join: fine when done, and when the room's host cannot be reached
/// right now (the next join starts it); any other failure fails the join.
fn started_or_later(started: Result<bool, ApiError>, interview: &str) -> Result<(), ApiError> {
    match started {
        Ok(_) => Ok(()),
        Err(err @ ApiError::Unavailable(_)) => {
            tracing::warn!(%interview, %err, "an agent of the room did not start; the next join tries again");
            Ok(())
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staff_roles_need_staff_accounts() {
        assert!(account_fits(
            AccountRole::Candidate,
            InterviewRole::Candidate
        ));
        assert!(!account_fits(
            AccountRole::Candidate,
            InterviewRole::Interviewer
        ));
        assert!(!account_fits(
            AccountRole::Reviewer,
            InterviewRole::Observer
        ));
        assert!(account_fits(AccountRole::Reviewer, InterviewRole::Reviewer));
        assert!(account_fits(AccountRole::Admin, InterviewRole::Interviewer));
    }

    #[test]
    fn invite_status_prefers_used_over_revoked_over_expired() {
        let base = InviteRow {
            id: "i".into(),
            participant_id: "p".into(),
            expires_at: 100,
            used_at: None,
            revoked_at: None,
        };
        assert!(matches!(invite_status(&base, 50), InviteStatus::Pending));
        assert!(matches!(invite_status(&base, 100), InviteStatus::Expired));
        let revoked = InviteRow {
            revoked_at: Some(60),
            ..base.clone()
        };
        assert!(matches!(invite_status(&revoked, 50), InviteStatus::Revoked));
        let used = InviteRow {
            used_at: Some(70),
            ..revoked
        };
        assert!(matches!(invite_status(&used, 500), InviteStatus::Used));
    }
}
