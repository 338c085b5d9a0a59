//! The question bank and an interview's questions.
//!
//! Interviewers and admins write questions (title, Markdown prompt, difficulty, tags, starter
//! code per language, hidden tests) and attach them to interviews. In the room an interviewer
//! reveals one: the candidate can then read it, and its starter code can replace the editor's
//! text for everyone. Hidden tests run against the current code for the interview's interviewers
//! only. A candidate never sees a question before it is revealed (404, as for anything hidden),
//! nor any hidden test.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sightline_signaling::InterviewRole;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthUser, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, not_blank};
use crate::routes::interviews::{self, Access};
use crate::routes::stored_json::{parse, to_json};
use crate::runs::TestResult;
use crate::state::AppState;
use crate::store::questions::{self as store, AttachedRow, QuestionRow};
use crate::store::{audit, new_id, now};

/// The question routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/questions", get(list).post(create))
        .route("/api/questions/{id}", get(read).put(update))
        .route(
            "/api/interviews/{id}/questions",
            get(for_interview).post(attach),
        )
        .route(
            "/api/interviews/{id}/questions/{question}",
            get(interview_question),
        )
        .route(
            "/api/interviews/{id}/questions/{question}/reveal",
            post(reveal),
        )
        .route(
            "/api/interviews/{id}/questions/{question}/tests",
            post(run_tests),
        )
}

/// Largest starter code or test input/output, in bytes.
const MAX_CODE_BYTES: usize = 64 * 1024;

/// How hard a question is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Difficulty {
    /// Easy.
    Easy,
    /// Medium.
    Medium,
    /// Hard.
    Hard,
}

impl Difficulty {
    fn as_str(self) -> &'static str {
        match self {
            Difficulty::Easy => "easy",
            Difficulty::Medium => "medium",
            Difficulty::Hard => "hard",
        }
    }
}

/// One hidden test: what the program reads and what it must print.
#[derive(Debug, Clone, Serialize, Deserialize, garde::Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HiddenTest {
    /// stdin.
    #[garde(length(max = MAX_CODE_BYTES))]
    #[serde(default)]
    pub stdin: String,
    /// The stdout that passes (trailing spaces and blank lines are not compared).
    #[garde(length(max = MAX_CODE_BYTES))]
    pub expected_stdout: String,
}

/// Body of `POST /api/questions` and `PUT /api/questions/{id}`.
#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuestionRequest {
    /// Title.
    #[garde(length(chars, min = 1, max = 200), custom(not_blank))]
    pub title: String,
    /// The prompt, in Markdown.
    #[garde(length(max = 20_000))]
    #[serde(default)]
    pub prompt: String,
    /// Easy, medium or hard.
    #[garde(skip)]
    pub difficulty: Difficulty,
    /// Tags to find it by.
    #[garde(
        length(max = 20),
        inner(length(chars, min = 1, max = 40), custom(not_blank))
    )]
    #[serde(default)]
    pub tags: Vec<String>,
    /// Starter code by language id (`python`, `cpp`, ...).
    #[garde(length(max = 16), custom(code_sizes))]
    #[serde(default)]
    pub starter_code: BTreeMap<String, String>,
    /// Hidden tests (interviewers run them; candidates never see them).
    #[garde(length(max = 50), dive)]
    #[serde(default)]
    pub hidden_tests: Vec<HiddenTest>,
}

fn code_sizes(code: &BTreeMap<String, String>, _: &()) -> garde::Result {
    if code.values().any(|c| c.len() > MAX_CODE_BYTES) {
        Err(garde::Error::new(format!(
            "each starter code is at most {MAX_CODE_BYTES} bytes"
        )))
    } else {
        Ok(())
    }
}

/// A question as its reader may see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuestionView {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Markdown prompt.
    pub prompt: String,
    /// Easy, medium or hard.
    pub difficulty: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Starter code by language id.
    pub starter_code: BTreeMap<String, String>,
    /// The hidden tests (interviewers and admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden_tests: Option<Vec<HiddenTest>>,
    /// How many hidden tests it has.
    pub hidden_test_count: usize,
    /// In an interview: when it was revealed to the candidate (unix milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revealed_at_ms: Option<i64>,
    /// Unix seconds it was last changed.
    pub updated_at: i64,
}

fn view(
    row: &QuestionRow,
    with_tests: bool,
    revealed_at_ms: Option<i64>,
) -> Result<QuestionView, ApiError> {
    let tests: Vec<HiddenTest> = parse(&row.hidden_tests, "hidden tests")?;
    Ok(QuestionView {
        id: row.id.clone(),
        title: row.title.clone(),
        prompt: row.prompt.clone(),
        difficulty: row.difficulty.clone(),
        tags: parse(&row.tags, "tags")?,
        starter_code: parse(&row.starter_code, "starter code")?,
        hidden_test_count: tests.len(),
        hidden_tests: with_tests.then_some(tests),
        revealed_at_ms,
        updated_at: row.updated_at,
    })
}

fn require_staff(user: &AuthUser) -> Result<(), ApiError> {
    if user.role.is_staff() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only interviewers and admins use the question bank",
        ))
    }
}

/// Checks what the JSON schema cannot: starter code only for languages this server runs.
fn check_languages(state: &AppState, body: &QuestionRequest) -> Result<(), ApiError> {
    let known = state.runs.languages();
    for language in body.starter_code.keys() {
        if !known.iter().any(|l| &l.id == language) {
            return Err(ApiError::field(
                "starter_code",
                format!("`{language}` is not a language this server runs"),
            ));
        }
    }
    Ok(())
}

fn row_from(
    body: &QuestionRequest,
    id: String,
    created_by: String,
    created_at: i64,
) -> Result<QuestionRow, ApiError> {
    let mut tags: Vec<String> = body.tags.iter().map(|t| t.trim().to_owned()).collect();
    tags.sort();
    tags.dedup();
    Ok(QuestionRow {
        id,
        title: body.title.trim().to_owned(),
        prompt: body.prompt.clone(),
        difficulty: body.difficulty.as_str().to_owned(),
        tags: to_json(&tags)?,
        starter_code: to_json(&body.starter_code)?,
        hidden_tests: to_json(&body.hidden_tests)?,
        created_by,
        created_at,
        updated_at: now(),
    })
}

/// `?q=&tag=`: a search of the bank.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Words that must appear in the title or prompt (any case).
    pub q: Option<String>,
    /// A tag the question must have.
    pub tag: Option<String>,
}

/// The question bank, newest first, filtered by text and tag (interviewers and admins).
#[utoipa::path(get, path = "/api/questions", tag = "questions", security(("bearer" = [])),
    params(SearchQuery),
    responses((status = 200, body = [QuestionView]), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(search): ApiQuery<SearchQuery>,
) -> Result<Json<Vec<QuestionView>>, ApiError> {
    require_staff(&user)?;
    let words: Vec<String> = search
        .q
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .take(10)
        .map(str::to_lowercase)
        .collect();
    let mut out = Vec::new();
    for row in store::all(state.db.pool()).await? {
        let question = view(&row, true, None)?;
        let text = format!("{} {}", question.title, question.prompt).to_lowercase();
        let tag_ok = search
            .tag
            .as_deref()
            .is_none_or(|tag| question.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)));
        if tag_ok && words.iter().all(|w| text.contains(w.as_str())) {
            out.push(question);
        }
    }
    Ok(Json(out))
}

/// Adds a question to the bank.
#[utoipa::path(post, path = "/api/questions", tag = "questions", security(("bearer" = [])),
    request_body = QuestionRequest,
    responses((status = 201, body = QuestionView), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<QuestionRequest>,
) -> Result<(StatusCode, Json<QuestionView>), ApiError> {
    require_staff(&user)?;
    check_languages(&state, &body)?;
    let row = row_from(&body, new_id(), user.id.clone(), now())?;
    store::insert(state.db.pool(), &row).await?;
    audit::record(
        state.db.pool(),
        &user.id,
        "question.create",
        &row.id,
        serde_json::json!({}),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&row, true, None)?)))
}

/// One question of the bank (interviewers and admins).
#[utoipa::path(get, path = "/api/questions/{id}", tag = "questions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Question id")),
    responses((status = 200, body = QuestionView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<QuestionView>, ApiError> {
    require_staff(&user)?;
    let row = store::get(state.db.pool(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(view(&row, true, None)?))
}

/// Replaces a question's content.
#[utoipa::path(put, path = "/api/questions/{id}", tag = "questions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Question id")), request_body = QuestionRequest,
    responses((status = 200, body = QuestionView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<QuestionRequest>,
) -> Result<Json<QuestionView>, ApiError> {
    require_staff(&user)?;
    check_languages(&state, &body)?;
    let old = store::get(state.db.pool(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let row = row_from(&body, id, old.created_by, old.created_at)?;
    store::update(state.db.pool(), &row).await?;
    audit::record(
        state.db.pool(),
        &user.id,
        "question.update",
        &row.id,
        serde_json::json!({}),
    )
    .await?;
    Ok(Json(view(&row, true, None)?))
}

/// One of the interview's questions, or 404.
async fn attached_one(state: &AppState, id: &str, question: &str) -> Result<AttachedRow, ApiError> {
    store::attached(state.db.pool(), id)
        .await?
        .into_iter()
        .find(|row| row.question.id == question)
        .ok_or(ApiError::NotFound)
}

/// Whether the caller is this interview's candidate (who sees only revealed questions).
fn is_candidate(access: &Access) -> bool {
    access.my_role() == Some(InterviewRole::Candidate)
}

fn attached_view(access: &Access, row: &AttachedRow) -> Result<Option<QuestionView>, ApiError> {
    if is_candidate(access) && row.revealed_at_ms.is_none() {
        return Ok(None);
    }
    view(&row.question, access.can_manage(), row.revealed_at_ms).map(Some)
}

/// The interview's questions: all of them for its staff, the revealed ones for its candidate
/// (hidden tests only for those who manage the interview).
#[utoipa::path(get, path = "/api/interviews/{id}/questions", tag = "questions",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    responses((status = 200, body = [QuestionView]), (status = 404, body = ErrorBody)))]
pub async fn for_interview(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Vec<QuestionView>>, ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    let mut out = Vec::new();
    for row in store::attached(state.db.pool(), &id).await? {
        if let Some(question) = attached_view(&access, &row)? {
            out.push(question);
        }
    }
    Ok(Json(out))
}

/// Body of `POST /api/interviews/{id}/questions`.
#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    /// The question.
    #[garde(length(chars, min = 1, max = 64))]
    pub question_id: String,
}

/// Attaches a question of the bank to the interview (its interviewers and admins).
#[utoipa::path(post, path = "/api/interviews/{id}/questions", tag = "questions",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    request_body = AttachRequest,
    responses((status = 201, body = [QuestionView]), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn attach(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AttachRequest>,
) -> Result<(StatusCode, Json<Vec<QuestionView>>), ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    access.require_manage()?;
    store::get(state.db.pool(), &body.question_id)
        .await?
        .ok_or_else(|| ApiError::field("question_id", "no such question"))?;
    store::attach(state.db.pool(), &id, &body.question_id).await?;
    let Json(list) = for_interview(State(state), principal, Path(id)).await?;
    Ok((StatusCode::CREATED, Json(list)))
}

/// One of the interview's questions (404 for a candidate until it is revealed).
#[utoipa::path(get, path = "/api/interviews/{id}/questions/{question}", tag = "questions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Interview id"),
        ("question" = String, Path, description = "Question id")),
    responses((status = 200, body = QuestionView), (status = 404, body = ErrorBody)))]
pub async fn interview_question(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, question)): Path<(String, String)>,
) -> Result<Json<QuestionView>, ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    let row = attached_one(&state, &id, &question).await?;
    attached_view(&access, &row)?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

/// Body of `POST /api/interviews/{id}/questions/{question}/reveal`.
#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevealRequest {
    /// Put the question's starter code in the editor, replacing what is there (the page asks
    /// first when the editor is not empty).
    #[garde(skip)]
    #[serde(default)]
    pub load_starter_code: bool,
    /// Which language's starter code (default: the editor's language, else the first there is).
    #[garde(inner(length(chars, min = 1, max = 32)))]
    #[serde(default)]
    pub language: Option<String>,
}

/// Reveals a question to the candidate, and optionally loads its starter code for everyone.
#[utoipa::path(post, path = "/api/interviews/{id}/questions/{question}/reveal",
    tag = "questions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Interview id"),
        ("question" = String, Path, description = "Question id")),
    request_body = RevealRequest,
    responses((status = 200, body = QuestionView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn reveal(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, question)): Path<(String, String)>,
    ApiJson(body): ApiJson<RevealRequest>,
) -> Result<Json<QuestionView>, ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    access.require_manage()?;
    let at_ms = jiff::Timestamp::now().as_millisecond();
    if !store::reveal(state.db.pool(), &id, &question, at_ms).await? {
        return Err(ApiError::NotFound);
    }
    let row = attached_one(&state, &id, &question).await?;
    let shown = view(&row.question, true, row.revealed_at_ms)?;
    if body.load_starter_code {
        let (_, current) = state
            .documents
            .read(&id)
            .await
            .map_err(|_| ApiError::Unavailable("the shared document is not available"))?;
        let language = body
            .language
            .clone()
            .or(current)
            .filter(|l| shown.starter_code.contains_key(l))
            .or_else(|| shown.starter_code.keys().next().cloned());
        if let Some(language) = language {
            let code = shown
                .starter_code
                .get(&language)
                .cloned()
                .unwrap_or_default();
            state
                .documents
                .replace(&id, code, Some(language))
                .await
                .map_err(|_| ApiError::Unavailable("the shared document is not available"))?
                .map_err(|err| ApiError::Conflict {
                    code: err.code(),
                    message: err.to_string(),
                })?;
        }
    }
    state
        .documents
        .notify(
            &id,
            serde_json::json!({ "type": "question_revealed", "question_id": question }),
        )
        .await;
    audit::record(
        state.db.pool(),
        &principal.actor(),
        "question.reveal",
        &id,
        serde_json::json!({ "question": question, "load_starter_code": body.load_starter_code }),
    )
    .await?;
    Ok(Json(shown))
}

/// The hidden tests' results against the current code.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestReport {
    /// The language the code ran as.
    pub language: String,
    /// One row per hidden test, in order.
    pub results: Vec<TestResult>,
    /// How many passed.
    pub passed: usize,
}

/// Runs the question's hidden tests against the editor's current code (the interview's
/// interviewers and admins; the candidate never sees them or their results).
#[utoipa::path(post, path = "/api/interviews/{id}/questions/{question}/tests",
    tag = "questions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Interview id"),
        ("question" = String, Path, description = "Question id")),
    responses((status = 200, body = TestReport), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn run_tests(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, question)): Path<(String, String)>,
) -> Result<Json<TestReport>, ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    access.require_manage()?;
    let row = attached_one(&state, &id, &question).await?;
    let tests: Vec<HiddenTest> = parse(&row.question.hidden_tests, "hidden tests")?;
    let cases = tests
        .into_iter()
        .map(|t| (t.stdin, t.expected_stdout))
        .collect();
    let (language, results) = state.runs.test(&state.documents, &id, cases).await?;
    let passed = results.iter().filter(|r| r.passed).count();
    Ok(Json(TestReport {
        language,
        results,
        passed,
    }))
}
