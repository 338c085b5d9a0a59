//! Private notes, scorecard templates and scorecards.
//!
//! - Notes: each interviewer or observer keeps their own, during the room and after. Only their
//!   author reads them: not the other interviewers, not admins, never a candidate or a phone.
//! - Templates: admins write them (criteria, each scored 1 to 4 with guidance); interviewers
//!   read them to fill a scorecard. A retired template is kept for the scorecards made from it.
//! - Scorecards: each of an interview's interviewers submits one once the interview has begun,
//!   and may revise it. The interview's interviewers, its assigned reviewers and admins read
//!   them; an observer is refused and a candidate is told there is nothing (404).

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sightline_signaling::InterviewRole;
use utoipa::ToSchema;

use crate::auth::{AuthUser, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, not_blank};
use crate::routes::interviews::{self, Access, rfc3339};
use crate::routes::stored_json::{parse, to_json};
use crate::state::AppState;
use crate::store::scorecards::{self as store, NoteRow, ScorecardRow, TemplateRow};
use crate::store::{audit, new_id, now};
use crate::webhooks::{Event, ScorecardData};

/// The notes and scorecard routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/scorecard-templates",
            get(list_templates).post(create_template),
        )
        .route("/api/scorecard-templates/{id}", put(update_template))
        .route(
            "/api/interviews/{id}/notes",
            get(read_notes).put(save_notes),
        )
        .route("/api/interviews/{id}/scorecards", get(list))
        .route("/api/interviews/{id}/scorecard", put(submit))
}

/// Longest note, in characters.
const MAX_NOTE_CHARS: usize = 50_000;
/// Lowest and highest score of a criterion.
const SCORES: std::ops::RangeInclusive<i64> = 1..=4;

/// One thing a scorecard rates.
#[derive(Debug, Clone, Serialize, Deserialize, garde::Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    /// What is rated ("Problem solving").
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    #[garde(length(chars, min = 1, max = 100), custom(not_blank))]
    pub name: String,
    /// What each score means, for the interviewer filling it in.
    #[schema(max_length = 2000)]
    #[garde(length(chars, max = 2000))]
    #[serde(default)]
    pub guidance: String,
}

/// Body of `POST /api/scorecard-templates` and `PUT /api/scorecard-templates/{id}`.
#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    /// Name.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    #[garde(length(chars, min = 1, max = 100), custom(not_blank))]
    pub name: String,
    /// The criteria, in order, each with its own name.
    #[schema(min_items = 1, max_items = 20)]
    #[garde(length(min = 1, max = 20), dive, custom(distinct_names))]
    pub criteria: Vec<Criterion>,
    /// Retired: kept for the scorecards made from it, no longer offered for new ones.
    #[garde(skip)]
    #[serde(default)]
    pub archived: bool,
}

/// A scorecard template.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The criteria, in order.
    pub criteria: Vec<Criterion>,
    /// Whether it is retired.
    pub archived: bool,
    /// Unix seconds it last changed.
    pub updated_at: i64,
}

fn distinct_names(criteria: &[Criterion], _: &()) -> garde::Result {
    let mut seen = HashSet::new();
    for c in criteria {
        if !seen.insert(c.name.trim().to_lowercase()) {
            return Err(garde::Error::new(format!(
                "two criteria are named \"{}\"",
                c.name.trim()
            )));
        }
    }
    Ok(())
}

fn template_view(row: &TemplateRow) -> Result<TemplateView, ApiError> {
    Ok(TemplateView {
        id: row.id.clone(),
        name: row.name.clone(),
        criteria: parse(&row.criteria, "criteria")?,
        archived: row.archived_at.is_some(),
        updated_at: row.updated_at,
    })
}

fn trimmed(criteria: &[Criterion]) -> Vec<Criterion> {
    criteria
        .iter()
        .map(|c| Criterion {
            name: c.name.trim().to_owned(),
            guidance: c.guidance.trim().to_owned(),
        })
        .collect()
}

/// The scorecard templates, offered ones first (interviewers and admins).
#[utoipa::path(get, path = "/api/scorecard-templates", tag = "scorecards",
    security(("bearer" = [])),
    responses((status = 200, body = [TemplateView]), (status = 403, body = ErrorBody)))]
pub async fn list_templates(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Vec<TemplateView>>, ApiError> {
    if !user.role.is_staff() {
        return Err(ApiError::Forbidden(
            "only interviewers and admins use scorecard templates",
        ));
    }
    let rows = store::templates(state.db.pool()).await?;
    rows.iter()
        .map(template_view)
        .collect::<Result<_, _>>()
        .map(Json)
}

/// Adds a scorecard template (admins).
#[utoipa::path(post, path = "/api/scorecard-templates", tag = "scorecards",
    security(("bearer" = [])), request_body = TemplateRequest,
    responses((status = 201, body = TemplateView), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create_template(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<TemplateRequest>,
) -> Result<(StatusCode, Json<TemplateView>), ApiError> {
    user.require_admin()?;
    let at = now();
    let row = TemplateRow {
        id: new_id(),
        name: body.name.trim().to_owned(),
        criteria: to_json(&trimmed(&body.criteria))?,
        archived_at: body.archived.then_some(at),
        created_by: user.id.clone(),
        created_at: at,
        updated_at: at,
    };
    store::insert_template(state.db.pool(), &row).await?;
    audit::record(
        state.db.pool(),
        &user.id,
        "scorecard_template.create",
        &row.id,
        serde_json::json!({}),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(template_view(&row)?)))
}

/// Changes a scorecard template, or retires it (admins). Scorecards already submitted keep the
/// criteria they were filled against.
#[utoipa::path(put, path = "/api/scorecard-templates/{id}", tag = "scorecards",
    security(("bearer" = [])), params(("id" = String, Path, description = "Template id")),
    request_body = TemplateRequest,
    responses((status = 200, body = TemplateView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_template(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TemplateRequest>,
) -> Result<Json<TemplateView>, ApiError> {
    user.require_admin()?;
    let old = store::template(state.db.pool(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let at = now();
    let row = TemplateRow {
        name: body.name.trim().to_owned(),
        criteria: to_json(&trimmed(&body.criteria))?,
        archived_at: body.archived.then(|| old.archived_at.unwrap_or(at)),
        updated_at: at,
        ..old
    };
    store::update_template(state.db.pool(), &row).await?;
    audit::record(
        state.db.pool(),
        &user.id,
        "scorecard_template.update",
        &row.id,
        serde_json::json!({ "archived": body.archived }),
    )
    .await?;
    Ok(Json(template_view(&row)?))
}

/// The caller's notes on an interview.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotesView {
    /// Plain text ("" before the first save).
    pub body: String,
    /// Unix seconds of the last save, if any.
    pub updated_at: Option<i64>,
}

/// Body of `PUT /api/interviews/{id}/notes`.
#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotesRequest {
    /// The whole text (it replaces what was saved).
    #[schema(max_length = 50_000)]
    #[garde(length(chars, max = MAX_NOTE_CHARS))]
    pub body: String,
}

/// The caller as a note writer: the interview's interviewers and observers.
fn note_writer(access: &Access) -> Result<&str, ApiError> {
    match (&access.me, access.my_role()) {
        (Some(me), Some(InterviewRole::Interviewer | InterviewRole::Observer)) => Ok(&me.id),
        // A candidate must not learn that notes exist.
        (_, Some(InterviewRole::Candidate)) => Err(ApiError::NotFound),
        _ => Err(ApiError::Forbidden(
            "notes are kept by the interview's interviewers and observers",
        )),
    }
}

/// The caller's own private notes on the interview (its interviewers and observers; nobody else
/// reads them).
#[utoipa::path(get, path = "/api/interviews/{id}/notes", tag = "scorecards",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    responses((status = 200, body = NotesView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn read_notes(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<NotesView>, ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    let me = note_writer(&access)?;
    let note = store::note(state.db.pool(), me).await?;
    Ok(Json(NotesView {
        body: note.as_ref().map(|n| n.body.clone()).unwrap_or_default(),
        updated_at: note.map(|n| n.updated_at),
    }))
}

/// Saves the caller's private notes, replacing the text.
#[utoipa::path(put, path = "/api/interviews/{id}/notes", tag = "scorecards",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    request_body = NotesRequest,
    responses((status = 200, body = NotesView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn save_notes(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NotesRequest>,
) -> Result<Json<NotesView>, ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    let me = note_writer(&access)?;
    let note = NoteRow {
        participant_id: me.to_owned(),
        interview_id: id,
        body: body.body,
        updated_at: now(),
    };
    store::save_note(state.db.pool(), &note).await?;
    Ok(Json(NotesView {
        body: note.body,
        updated_at: Some(note.updated_at),
    }))
}

/// An interviewer's overall call.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Recommendation {
    /// Strong no.
    StrongNo,
    /// No.
    No,
    /// Yes.
    Yes,
    /// Strong yes.
    StrongYes,
}

impl Recommendation {
    fn as_str(self) -> &'static str {
        match self {
            Recommendation::StrongNo => "strong_no",
            Recommendation::No => "no",
            Recommendation::Yes => "yes",
            Recommendation::StrongYes => "strong_yes",
        }
    }
}

/// One criterion's score.
#[derive(Debug, Clone, Serialize, Deserialize, garde::Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rating {
    /// 1 (lowest) to 4 (highest).
    #[garde(range(min = *SCORES.start(), max = *SCORES.end()))]
    #[schema(minimum = 1, maximum = 4)]
    #[serde(deserialize_with = "crate::extract::integral")]
    pub score: i64,
    /// Why.
    #[schema(max_length = 5000)]
    #[garde(length(chars, max = 5000))]
    #[serde(default)]
    pub comment: String,
}

/// Body of `PUT /api/interviews/{id}/scorecard`.
#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScorecardRequest {
    /// The template filled in.
    #[schema(min_length = 1, max_length = 64)]
    #[garde(length(chars, min = 1, max = 64))]
    pub template_id: String,
    /// One rating per criterion of the template, in its order.
    #[schema(min_items = 1, max_items = 20)]
    #[garde(length(min = 1, max = 20), dive)]
    pub ratings: Vec<Rating>,
    /// Overall.
    #[garde(skip)]
    pub recommendation: Recommendation,
    /// What the other reviewers should know.
    #[schema(max_length = 20_000)]
    #[garde(length(chars, max = 20_000))]
    #[serde(default)]
    pub summary: String,
}

/// One criterion of a submitted scorecard with its score.
#[derive(Debug, Serialize, ToSchema)]
pub struct RatedCriterion {
    /// The criterion, as it read when the scorecard was filled.
    #[serde(flatten)]
    pub criterion: Criterion,
    /// 1 to 4.
    pub score: i64,
    /// Why.
    pub comment: String,
}

/// A submitted scorecard.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScorecardView {
    /// Id.
    pub id: String,
    /// The interviewer (participant id).
    pub participant_id: String,
    /// Their name.
    pub author: String,
    /// The template it was filled from (to revise it against the same one).
    pub template_id: String,
    /// The template's name when it was filled.
    pub template_name: String,
    /// Each criterion with its score.
    pub ratings: Vec<RatedCriterion>,
    /// Overall.
    pub recommendation: String,
    /// Free text.
    pub summary: String,
    /// RFC 3339: first submitted.
    pub submitted_at: String,
    /// RFC 3339: last changed.
    pub updated_at: String,
}

/// An interviewer whose scorecard is expected.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExpectedScorecard {
    /// Participant id.
    pub participant_id: String,
    /// Name.
    pub display_name: String,
    /// Whether it is in.
    pub submitted: bool,
}

/// `GET /api/interviews/{id}/scorecards`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScorecardsView {
    /// Submitted scorecards, first submitted first.
    pub scorecards: Vec<ScorecardView>,
    /// Every interviewer of the interview and whether theirs is in.
    pub expected: Vec<ExpectedScorecard>,
    /// Whether the caller is one of them (and so may submit).
    pub can_submit: bool,
    /// The caller's participant id in the interview (to find their own card), if they take part.
    pub my_participant_id: Option<String>,
    /// Whether scorecards are taken yet (the interview has begun and is not cancelled).
    pub open: bool,
}

fn scorecard_view(access: &Access, row: &ScorecardRow) -> Result<ScorecardView, ApiError> {
    let criteria: Vec<Criterion> = parse(&row.criteria, "scorecard criteria")?;
    let ratings: Vec<Rating> = parse(&row.ratings, "scorecard ratings")?;
    let author = access
        .participants
        .iter()
        .find(|p| p.id == row.participant_id)
        .map(|p| p.display_name.clone())
        .unwrap_or_default();
    Ok(ScorecardView {
        id: row.id.clone(),
        participant_id: row.participant_id.clone(),
        author,
        template_id: row.template_id.clone(),
        template_name: row.template_name.clone(),
        ratings: criteria
            .into_iter()
            .zip(ratings)
            .map(|(criterion, rating)| RatedCriterion {
                criterion,
                score: rating.score,
                comment: rating.comment,
            })
            .collect(),
        recommendation: row.recommendation.clone(),
        summary: row.summary.clone(),
        submitted_at: rfc3339(row.submitted_at),
        updated_at: rfc3339(row.updated_at),
    })
}

/// Whether scorecards are taken for the interview at `now`.
fn scorecards_open(access: &Access, now: i64) -> bool {
    !access.interview.is_cancelled() && access.interview.scheduled_start <= now
}

/// Refuses unless the caller may read the interview's scorecards (404 for its candidate).
fn require_reader(access: &Access) -> Result<(), ApiError> {
    if access.may_review() {
        Ok(())
    } else if access.my_role() == Some(InterviewRole::Candidate) {
        Err(ApiError::NotFound)
    } else {
        Err(ApiError::Forbidden(
            "scorecards are read by the interview's interviewers, its reviewers and admins",
        ))
    }
}

/// The interview's scorecards and whose are missing (its interviewers, assigned reviewers and
/// admins).
#[utoipa::path(get, path = "/api/interviews/{id}/scorecards", tag = "scorecards",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    responses((status = 200, body = ScorecardsView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<ScorecardsView>, ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    require_reader(&access)?;
    scorecards_of(&state, &access).await.map(Json)
}

async fn scorecards_of(state: &AppState, access: &Access) -> Result<ScorecardsView, ApiError> {
    let rows = store::for_interview(state.db.pool(), &access.interview.id).await?;
    let scorecards = rows
        .iter()
        .map(|row| scorecard_view(access, row))
        .collect::<Result<Vec<_>, _>>()?;
    let mut expected = Vec::new();
    for p in &access.participants {
        if interviews::role_of(p)? == InterviewRole::Interviewer {
            expected.push(ExpectedScorecard {
                participant_id: p.id.clone(),
                display_name: p.display_name.clone(),
                submitted: rows.iter().any(|r| r.participant_id == p.id),
            });
        }
    }
    Ok(ScorecardsView {
        scorecards,
        expected,
        can_submit: access.my_role() == Some(InterviewRole::Interviewer),
        my_participant_id: access.me.as_ref().map(|me| me.id.clone()),
        open: scorecards_open(access, now()),
    })
}

/// Submits the caller's scorecard for the interview, or revises it (the interview's
/// interviewers, once it has begun).
#[utoipa::path(put, path = "/api/interviews/{id}/scorecard", tag = "scorecards",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    request_body = ScorecardRequest,
    responses((status = 200, body = ScorecardsView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn submit(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ScorecardRequest>,
) -> Result<Json<ScorecardsView>, ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    require_reader(&access)?;
    let me = match (&access.me, access.my_role()) {
        (Some(me), Some(InterviewRole::Interviewer)) => me.id.clone(),
        _ => {
            return Err(ApiError::Forbidden(
                "scorecards are submitted by the interview's interviewers",
            ));
        }
    };
    let at = now();
    if access.interview.is_cancelled() {
        return Err(ApiError::Conflict {
            code: "interview_cancelled",
            message: "the interview was cancelled; it takes no scorecards".to_owned(),
        });
    }
    if !scorecards_open(&access, at) {
        return Err(ApiError::Conflict {
            code: "interview_not_started",
            message: "scorecards are submitted once the interview has begun".to_owned(),
        });
    }
    let template = store::template(state.db.pool(), &body.template_id)
        .await?
        .ok_or_else(|| ApiError::field("template_id", "no such template"))?;
    let previous = store::for_interview(state.db.pool(), &id)
        .await?
        .into_iter()
        .find(|r| r.participant_id == me);
    // A retired template is not offered for new scorecards, but one filled from it may be revised.
    if template.archived_at.is_some()
        && previous
            .as_ref()
            .is_none_or(|p| p.template_id != template.id)
    {
        return Err(ApiError::field(
            "template_id",
            "this template is retired; pick another",
        ));
    }
    let criteria: Vec<Criterion> = parse(&template.criteria, "criteria")?;
    if body.ratings.len() != criteria.len() {
        return Err(ApiError::field(
            "ratings",
            format!(
                "one rating per criterion: the template has {}, the scorecard {}",
                criteria.len(),
                body.ratings.len()
            ),
        ));
    }
    let ratings: Vec<Rating> = body
        .ratings
        .iter()
        .map(|r| Rating {
            score: r.score,
            comment: r.comment.trim().to_owned(),
        })
        .collect();
    let row = ScorecardRow {
        id: previous.as_ref().map_or_else(new_id, |p| p.id.clone()),
        interview_id: id.clone(),
        participant_id: me,
        template_id: template.id.clone(),
        template_name: template.name.clone(),
        criteria: template.criteria.clone(),
        ratings: to_json(&ratings)?,
        recommendation: body.recommendation.as_str().to_owned(),
        summary: body.summary.trim().to_owned(),
        submitted_at: previous.as_ref().map_or(at, |p| p.submitted_at),
        updated_at: at,
    };
    store::submit(state.db.pool(), &row).await?;
    state
        .webhooks
        .emit(&Event::ScorecardSubmitted(ScorecardData {
            interview_id: row.interview_id.clone(),
            scorecard_id: row.id.clone(),
            author_id: principal.actor(),
            recommendation: row.recommendation.clone(),
        }))
        .await;
    audit::record(
        state.db.pool(),
        &principal.actor(),
        if previous.is_some() {
            "scorecard.revise"
        } else {
            "scorecard.submit"
        },
        &id,
        serde_json::json!({ "template": template.id }),
    )
    .await?;
    scorecards_of(&state, &access).await.map(Json)
}

/// How an interview's scorecards stand, for a dashboard line.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScorecardProgress {
    /// Interviewers who submitted.
    pub submitted: usize,
    /// Interviewers in all.
    pub expected: usize,
    /// The names of those whose scorecard is missing.
    pub missing: Vec<String>,
    /// Whether the caller's own is among the missing.
    pub mine_missing: bool,
}

/// For each interview `user_id` interviews or reviews: how its scorecards stand.
pub(crate) async fn progress_for_user(
    state: &AppState,
    user_id: &str,
) -> Result<HashMap<String, ScorecardProgress>, ApiError> {
    let mut out: HashMap<String, ScorecardProgress> = HashMap::new();
    for row in store::expected_for_user(state.db.pool(), user_id).await? {
        let entry = out
            .entry(row.interview_id.clone())
            .or_insert_with(|| ScorecardProgress {
                submitted: 0,
                expected: 0,
                missing: Vec::new(),
                mine_missing: false,
            });
        entry.expected += 1;
        if row.submitted_at.is_some() {
            entry.submitted += 1;
        } else {
            entry.missing.push(row.display_name.clone());
            if row.user_id.as_deref() == Some(user_id) {
                entry.mine_missing = true;
            }
        }
    }
    Ok(out)
}
