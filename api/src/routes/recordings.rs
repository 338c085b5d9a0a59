//! Recording an interview and watching it back.
//!
//! In the room: interviewers start and stop recording; every participant consents (candidates)
//! or acknowledges (interviewers) for themselves. Afterwards: an interview's recordings, one
//! recording's manifest with a short-lived URL for each track's file (a presigned S3 URL, or a
//! URL on this server carrying a media token, served with HTTP ranges), and deletion by admins.
//! Only the interview's interviewers, its assigned reviewers and admins see recordings; anyone
//! else gets 404, as if there were none. Every view is written to the audit log. Listed
//! recordings carry what the server is doing with them (recording, finishing, waiting for
//! storage); admins see the store's health and the recordings that need them
//! (`/api/admin/storage`).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sightline_recorder::Manifest;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use utoipa::ToSchema;

use crate::auth::{AuthUser, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::recording::Phase;
use crate::rooms::{self, RoomControl};
use crate::routes::interviews::{self, require_room_open};
use crate::state::AppState;
use crate::store::recordings::{self, RecordingRow};
use crate::store::{self, audit};

/// How long a track's URL works: long enough to start watching, short enough not to be shared.
const MEDIA_URL_SECS: i64 = 600;

/// The recording routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/interviews/{id}/recording/start", post(start))
        .route("/api/interviews/{id}/recording/stop", post(stop))
        .route("/api/interviews/{id}/recording/consent", post(consent))
        .route(
            "/api/interviews/{id}/recording",
            get(settings).put(set_settings),
        )
        .route("/api/interviews/{id}/recordings", get(list))
        .route("/api/recordings/{recording}", get(read).delete(remove))
        .route("/api/recordings/{recording}/media/{take}", get(media))
        .route("/api/admin/storage", get(storage))
        .route("/api/admin/recordings", get(admin_list))
}

/// Rows listed on the admin storage page, at most, per kind.
const ATTENTION_LIMIT: i64 = 100;

/// A recording as listed: its row and, while unfinished, what the server is doing with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingItem {
    /// The row.
    #[serde(flatten)]
    pub recording: RecordingRow,
    /// Set while this server records or finishes it; `null` once finished (or when no server
    /// has it: it is finished when the server that made it restarts).
    pub progress: Option<RecordingProgress>,
}

/// What the server is doing with an unfinished recording.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingProgress {
    /// Recording, or stopped and being stored and joined.
    pub state: ProgressState,
    /// Set while the store does not answer: segments wait on the server's disk, uploads retry.
    pub storage: Option<StorageOutage>,
}

/// See [`RecordingProgress`].
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProgressState {
    /// Taking media.
    Recording,
    /// Stopped; storing segments, joining them, storing the files.
    Finishing,
}

/// The recording store has not answered since `since`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StorageOutage {
    /// Unix seconds of the first failure.
    pub since: i64,
    /// Failed operations since (each retry counts).
    pub failures: u64,
    /// The latest failure.
    pub error: String,
}

/// Recording storage as admins see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorageStatus {
    /// Set while the store does not answer.
    pub outage: Option<StorageOutage>,
    /// Stopped recordings this server is finishing (on its disk while the store is away).
    pub waiting: Vec<RecordingItem>,
    /// Recordings the server could not finish, with the reason.
    pub failed: Vec<RecordingItem>,
}

fn outage(state: &AppState) -> Option<StorageOutage> {
    state
        .recordings
        .recorder()
        .store_outage()
        .map(|outage| StorageOutage {
            since: outage
                .since
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            failures: outage.failures,
            error: outage.error,
        })
}

/// What everyone but admins is told of a store's error or of why a recording failed: the
/// details (endpoints, bucket names, server paths) are for admins and the server log.
const STORE_ERROR_FOR_USERS: &str = "the recording storage does not answer";
const FAILURE_FOR_USERS: &str =
    "The server could not finish this recording. An administrator can see why.";

/// A row with its live progress; `admin` sees the store's error and the failure's details.
fn item(state: &AppState, mut recording: RecordingRow, admin: bool) -> RecordingItem {
    let progress = state
        .recordings
        .phase(&recording.id)
        .map(|phase| RecordingProgress {
            state: match phase {
                Phase::Recording => ProgressState::Recording,
                Phase::Finishing => ProgressState::Finishing,
            },
            storage: outage(state).map(|mut outage| {
                if !admin {
                    outage.error = STORE_ERROR_FOR_USERS.into();
                }
                outage
            }),
        });
    if !admin && recording.failure.is_some() {
        recording.failure = Some(FAILURE_FOR_USERS.into());
    }
    RecordingItem {
        recording,
        progress,
    }
}

/// The recording store's health and the recordings that need an admin's attention.
#[utoipa::path(get, path = "/api/admin/storage", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = StorageStatus), (status = 403, body = ErrorBody)))]
pub async fn storage(
    State(state): State<AppState>,
    admin: AuthUser,
) -> Result<Json<StorageStatus>, ApiError> {
    admin.require_admin()?;
    let pool = state.db.pool();
    let mut waiting = Vec::new();
    for id in state.recordings.finishing() {
        if let Some(row) = recordings::by_id(pool, &id).await? {
            waiting.push(item(&state, row, true));
        }
    }
    waiting.sort_by_key(|item| std::cmp::Reverse(item.recording.started_at));
    let failed = recordings::with_status(pool, "failed", ATTENTION_LIMIT).await?;
    Ok(Json(StorageStatus {
        outage: outage(&state),
        waiting,
        failed: failed
            .into_iter()
            .map(|row| item(&state, row, true))
            .collect(),
    }))
}

/// `?status=&offset=&limit=` of `GET /api/admin/recordings`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AdminRecordingsQuery {
    /// Only recordings in this status.
    #[param(inline)]
    pub status: Option<StatusFilter>,
    /// How many of the newest to skip.
    #[param(minimum = 0, maximum = 1_000_000)]
    pub offset: Option<i64>,
    /// How many to list (50 unless given).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// A recording's status, to list only those in it.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    /// Taking media.
    Recording,
    /// Finished.
    Complete,
    /// Finished up to a crash.
    Interrupted,
    /// Could not be finished.
    Failed,
}

impl StatusFilter {
    fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Recording => "recording",
            StatusFilter::Complete => "complete",
            StatusFilter::Interrupted => "interrupted",
            StatusFilter::Failed => "failed",
        }
    }
}

/// A recording in the admin console.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminRecording {
    /// The row (its `size_bytes` measured in the store once it ended).
    #[serde(flatten)]
    pub recording: RecordingItem,
    /// Its interview's title.
    pub interview_title: String,
    /// Bytes stored so far, for one still recording on any node (its segments are uploaded as
    /// they close); `null` otherwise, or when the store did not answer.
    pub stored_so_far: Option<i64>,
}

/// Recordings with their sizes, and what all of them take.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminRecordings {
    /// Recordings kept.
    pub total: i64,
    /// Bytes the measured ones take in the object store.
    pub stored_bytes: i64,
    /// Recordings not counted in `stored_bytes`: still recording, or ended but not measured
    /// yet (each listing measures up to 20 of those it shows, none while the store does not
    /// answer).
    pub unmeasured: i64,
    /// The page asked for, newest first.
    pub recordings: Vec<AdminRecording>,
}

/// How many recordings one listing measures in the store at once.
const MEASURED_AT_ONCE: usize = 4;
/// How many recordings one listing measures at most (the next listing measures more).
const MEASURED_PER_LISTING: usize = 20;
/// How long measuring one recording may take.
const MEASURE_WITHIN: Duration = Duration::from_secs(10);

/// Every recording with its status and size, and the storage recordings use (admins only).
/// An ended recording not measured yet is measured in the object store as it is listed, and its
/// size kept.
#[utoipa::path(get, path = "/api/admin/recordings", tag = "admin", security(("bearer" = [])),
    params(AdminRecordingsQuery),
    responses((status = 200, body = AdminRecordings), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn admin_list(
    State(state): State<AppState>,
    admin: AuthUser,
    ApiQuery(query): ApiQuery<AdminRecordingsQuery>,
) -> Result<Json<AdminRecordings>, ApiError> {
    use futures_util::StreamExt as _;

    admin.require_admin()?;
    let status = query.status.map(StatusFilter::as_str);
    let offset = query.offset.unwrap_or(0);
    if !(0..=1_000_000).contains(&offset) {
        return Err(ApiError::field("offset", "between 0 and 1000000"));
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::field("limit", "between 1 and 200"));
    }
    let pool = state.db.pool();
    let listed = recordings::page(pool, status, limit, offset).await?;
    // Measure what has no size yet: ended ones once (kept), ones recording every time; none
    // while the store does not answer, and a bounded number per listing.
    let unmeasured: Vec<(usize, String, String, Option<i64>)> =
        if state.recordings.recorder().store_outage().is_some() {
            Vec::new()
        } else {
            listed
                .iter()
                .enumerate()
                .filter(|(_, listed)| listed.row.size_bytes.is_none())
                .take(MEASURED_PER_LISTING)
                .map(|(index, listed)| {
                    let row = &listed.row;
                    (index, row.id.clone(), row.status.clone(), row.ended_at)
                })
                .collect()
        };
    let measured: Vec<(usize, Option<i64>)> = futures_util::stream::iter(unmeasured)
        .map(|(index, id, status, ended_at)| {
            let state = state.clone();
            async move {
                let bytes =
                    match tokio::time::timeout(MEASURE_WITHIN, state.recordings.measure(&id)).await
                    {
                        Ok(Ok(usage)) => i64::try_from(usage.bytes).ok(),
                        Ok(Err(err)) => {
                            tracing::warn!(recording = %id, error = %err, "measuring a recording");
                            None
                        }
                        Err(_) => {
                            tracing::warn!(recording = %id, "measuring a recording took too long");
                            None
                        }
                    };
                if let (Some(bytes), Some(ended_at)) = (bytes, ended_at)
                    && status != "recording"
                    && let Err(err) =
                        recordings::set_size(state.db.pool(), &id, &status, ended_at, bytes).await
                {
                    tracing::warn!(recording = %id, error = %err, "keeping a size");
                }
                (index, bytes)
            }
        })
        .buffer_unordered(MEASURED_AT_ONCE)
        .collect()
        .await;
    let mut listed: Vec<(recordings::Listed, Option<i64>)> =
        listed.into_iter().map(|l| (l, None)).collect();
    for (index, bytes) in measured {
        if let Some((entry, so_far)) = listed.get_mut(index) {
            if entry.row.status == "recording" {
                *so_far = bytes;
            } else {
                entry.row.size_bytes = bytes;
            }
        }
    }
    // Totals after measuring, so what this page measured counts.
    let totals = recordings::totals(pool).await?;
    Ok(Json(AdminRecordings {
        total: totals.recordings,
        stored_bytes: totals.bytes,
        unmeasured: totals.unmeasured,
        recordings: listed
            .into_iter()
            .map(|(listed, stored_so_far)| AdminRecording {
                recording: item(&state, listed.row, true),
                interview_title: listed.interview_title,
                stored_so_far,
            })
            .collect(),
    }))
}

/// Whether the interview is being recorded (or waits for consent to be).
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingControl {
    /// True while recording or waiting for consent.
    pub recording: bool,
}

/// One recording with what a player needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingView {
    /// The row.
    pub recording: RecordingRow,
    /// The manifest (participants, takes on the session clock, events).
    #[schema(value_type = Object)]
    pub manifest: Manifest,
    /// A short-lived URL for each finished take's file, by take id.
    pub media: BTreeMap<String, String>,
}

/// An interview's recording settings and state.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingSettings {
    /// Recorded automatically once everyone present has consented, without "Start recording".
    pub auto: bool,
    /// Being recorded, or waiting for consent to be.
    pub active: bool,
}

/// Body of `PUT /api/interviews/{id}/recording`.
#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordingSettingsRequest {
    /// Record automatically.
    #[garde(skip)]
    pub auto: bool,
}

/// `?token=` of a media URL.
#[derive(Debug, Deserialize)]
pub struct MediaQuery {
    token: String,
}

/// Starts recording: it begins once everyone present has consented. Starting counts as the
/// starting interviewer's own acknowledgement.
#[utoipa::path(post, path = "/api/interviews/{id}/recording/start", tag = "recordings",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    responses((status = 202, body = RecordingControl), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn start(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RecordingControl>), ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    access.require_manage()?;
    require_room_open(
        &access.interview,
        store::now(),
        "only an open interview can be recorded",
    )?;
    if let Some(me) = &access.me {
        recordings::consent(state.db.pool(), &id, &me.id).await?;
    }
    let start = RoomControl::StartRecording {
        started_by: principal.actor(),
    };
    rooms::control(&state, &id, start).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RecordingControl { recording: true }),
    ))
}

/// Stops recording; the recording is finished in the background.
#[utoipa::path(post, path = "/api/interviews/{id}/recording/stop", tag = "recordings",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    responses((status = 202, body = RecordingControl), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn stop(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RecordingControl>), ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    access.require_manage()?;
    if !rooms::control(&state, &id, RoomControl::StopRecording).await? {
        return Err(ApiError::Conflict {
            code: "not_recording",
            message: "this interview is not being recorded".into(),
        });
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(RecordingControl { recording: false }),
    ))
}

/// The caller agrees to be recorded in this interview (a candidate's consent, an
/// interviewer's acknowledgement).
#[utoipa::path(post, path = "/api/interviews/{id}/recording/consent", tag = "recordings",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    responses((status = 204, description = "Recorded"), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn consent(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    let me = access.me.as_ref().ok_or(ApiError::Forbidden(
        "only participants of this interview consent to its recording",
    ))?;
    recordings::consent(state.db.pool(), &id, &me.id).await?;
    audit::record(
        state.db.pool(),
        &principal.actor(),
        "recording.consented",
        &id,
        serde_json::json!({ "participant": me.id }),
    )
    .await?;
    let consented = RoomControl::RecordingConsented {
        participant: me.id.clone(),
    };
    rooms::control(&state, &id, consented).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether the interview records automatically, and whether it is being recorded.
#[utoipa::path(get, path = "/api/interviews/{id}/recording", tag = "recordings",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    responses((status = 200, body = RecordingSettings), (status = 404, body = ErrorBody)))]
pub async fn settings(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<RecordingSettings>, ApiError> {
    interviews::access(&state, &principal, &id).await?;
    Ok(Json(RecordingSettings {
        auto: recordings::auto(state.db.pool(), &id).await?.is_some(),
        active: rooms::control(&state, &id, RoomControl::RecordingActive).await?,
    }))
}

/// Sets whether the interview records automatically (its interviewers and admins).
#[utoipa::path(put, path = "/api/interviews/{id}/recording", tag = "recordings",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    request_body = RecordingSettingsRequest,
    responses((status = 200, body = RecordingSettings), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn set_settings(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    crate::extract::ApiJson(body): crate::extract::ApiJson<RecordingSettingsRequest>,
) -> Result<Json<RecordingSettings>, ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    access.require_manage()?;
    recordings::set_auto(state.db.pool(), &id, body.auto, &principal.actor()).await?;
    audit::record(
        state.db.pool(),
        &principal.actor(),
        "recording.auto_set",
        &id,
        serde_json::json!({ "auto": body.auto }),
    )
    .await?;
    Ok(Json(RecordingSettings {
        auto: body.auto,
        // The setting is saved: while NATS cannot say, this node's memory.
        active: rooms::control(&state, &id, RoomControl::RecordingActive)
            .await
            .unwrap_or_else(|_| state.recordings.is_running(&id)),
    }))
}

/// An interview's recordings, newest first.
#[utoipa::path(get, path = "/api/interviews/{id}/recordings", tag = "recordings",
    security(("bearer" = [])), params(("id" = String, Path, description = "Interview id")),
    responses((status = 200, body = Vec<RecordingItem>), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(interview = %id))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Vec<RecordingItem>>, ApiError> {
    let access = interviews::access(&state, &principal, &id).await?;
    if !access.may_review() {
        return Err(ApiError::NotFound);
    }
    let rows = recordings::for_interview(state.db.pool(), &id).await?;
    let admin = access.is_admin();
    Ok(Json(
        rows.into_iter()
            .map(|row| item(&state, row, admin))
            .collect(),
    ))
}

/// The recording and its interview, if the caller may watch it (404 otherwise).
async fn reviewable(
    state: &AppState,
    principal: &Principal,
    recording: &str,
) -> Result<RecordingRow, ApiError> {
    let row = recordings::by_id(state.db.pool(), recording)
        .await?
        .ok_or(ApiError::NotFound)?;
    let access = interviews::access(state, principal, &row.interview_id).await?;
    if !access.may_review() {
        return Err(ApiError::NotFound);
    }
    Ok(row)
}

/// One recording: its manifest and a short-lived URL for each track's file. Logged as a view.
#[utoipa::path(get, path = "/api/recordings/{recording}", tag = "recordings",
    security(("bearer" = [])), params(("recording" = String, Path, description = "Recording id")),
    responses((status = 200, body = RecordingView), (status = 404, body = ErrorBody),
        (status = 409, description = "Still recording", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(recording = %recording))]
pub async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path(recording): Path<String>,
) -> Result<Json<RecordingView>, ApiError> {
    let row = reviewable(&state, &principal, &recording).await?;
    let store = state.recordings.recorder().store();
    let bytes = store
        .get(&Manifest::key(&recording))
        .await
        .map_err(|e| ApiError::Internal(format!("reading the manifest: {e}")))?
        .ok_or(ApiError::Conflict {
            code: "recording_not_ready",
            message: "this recording has no manifest yet; try again shortly".into(),
        })?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::Internal(format!("manifest of {recording}: {e}")))?;
    let now = store::now();
    let mut media = BTreeMap::new();
    for track in &manifest.tracks {
        let Some(key) = &track.file else {
            continue;
        };
        let presigned = store
            .presigned_get(key, Duration::from_secs(MEDIA_URL_SECS as u64))
            .await
            .map_err(|e| ApiError::Internal(format!("presigning {key}: {e}")))?;
        let url = match presigned {
            Some(url) => url,
            None => {
                let token = state.tokens.issue_media(key, now, MEDIA_URL_SECS)?;
                format!(
                    "/api/recordings/{recording}/media/{}?token={token}",
                    track.id
                )
            }
        };
        media.insert(track.id.clone(), url);
    }
    audit::record(
        state.db.pool(),
        &principal.actor(),
        "recording.viewed",
        &recording,
        serde_json::json!({ "interview": row.interview_id }),
    )
    .await?;
    Ok(Json(RecordingView {
        recording: row,
        manifest,
        media,
    }))
}

/// A take's file from the local store, with HTTP ranges, for the holder of a media token.
#[utoipa::path(get, path = "/api/recordings/{recording}/media/{take}", tag = "recordings",
    params(("recording" = String, Path, description = "Recording id"),
        ("take" = String, Path, description = "Take id"),
        ("token" = String, Query, description = "Media token from the recording's view")),
    responses((status = 200, description = "The file"), (status = 206, description = "A range"),
        (status = 400, description = "No media token in the query", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn media(
    State(state): State<AppState>,
    Path((recording, take)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<MediaQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let key = state.tokens.verify_media(&query.token)?;
    // The token names one object: this recording's take, nothing else.
    let expected = format!("recordings/{recording}/{take}.");
    if !key.starts_with(&expected) || key[expected.len()..].contains('/') {
        return Err(ApiError::Unauthenticated);
    }
    let path = state
        .recordings
        .recorder()
        .store()
        .local_path(&key)
        .filter(|p| p.is_file())
        .ok_or(ApiError::NotFound)?;
    let served = ServeFile::new(path)
        .oneshot(request)
        .await
        .map_err(|e| ApiError::Internal(format!("serving {key}: {e}")))?;
    Ok(served.into_response())
}

/// Deletes a recording and everything stored for it (admins only).
#[utoipa::path(delete, path = "/api/recordings/{recording}", tag = "recordings",
    security(("bearer" = [])), params(("recording" = String, Path, description = "Recording id")),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(recording = %recording))]
pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(recording): Path<String>,
) -> Result<StatusCode, ApiError> {
    user.require_admin()?;
    let row = recordings::by_id(state.db.pool(), &recording)
        .await?
        .ok_or(ApiError::NotFound)?;
    if row.status == "recording" || state.recordings.recorder().has_spool(&recording) {
        // It would keep writing objects (or store its spool again) with no row pointing to them.
        return Err(ApiError::Conflict {
            code: "still_recording",
            message: "stop the recording (and let it finish) before deleting it".into(),
        });
    }
    state.recordings.delete(&recording).await?;
    audit::record(
        state.db.pool(),
        &user.id,
        "recording.deleted",
        &recording,
        serde_json::json!({ "interview": row.interview_id }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
