//! `/api/auth/*`: registration, sign-in, refresh-token rotation, sign-out, and a forgotten
//! password reset by an emailed link.
//!
//! The refresh token travels in an `HttpOnly; Secure; SameSite=Strict` cookie scoped to
//! `/api/auth`, out of reach of any script in the page. A client that is not a browser and wants
//! it in the body says so (`refresh_token_in_body`). Responses never say whether an email is
//! registered.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use garde::Validate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::rate_limit::per_ip_layer;
use crate::auth::{AuthUser, Principal, opaque, password};
use crate::client_addr::ClientIp;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, not_blank};
use crate::routes::me::{MeView, me_view};
use crate::state::AppState;
use crate::store::refresh_tokens::{self, Rotation, SessionSubject};
use crate::store::{self, audit, email_verifications, interviews, password_resets, users};

/// Name of the refresh cookie.
pub const REFRESH_COOKIE: &str = "sightline_refresh";
const REFRESH_COOKIE_PATH: &str = "/api/auth";

/// The auth routes; registration and sign-in sit behind the per-IP limit.
pub fn router(state: &AppState) -> Router<AppState> {
    let limited = Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/password/forgot", post(forgot_password))
        .route("/api/auth/password/reset", post(reset_password))
        .route("/api/auth/email/verify", post(verify_email))
        .layer(per_ip_layer(&state.settings));
    Router::new()
        .merge(limited)
        .route("/api/auth/refresh", post(refresh))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/email/resend", post(resend_verification))
}

/// Body of `POST /api/auth/register`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Email address; compared case-insensitively.
    #[schema(format = Email, max_length = 254)]
    #[garde(email, length(max = 254))]
    pub email: String,
    /// At least 10 characters.
    #[schema(min_length = 10, max_length = 256)]
    #[garde(length(chars, min = 10, max = 256))]
    pub password: String,
    /// Name shown to others.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    #[garde(length(chars, min = 1, max = 100), custom(not_blank))]
    pub display_name: String,
}

/// Body of `POST /api/auth/login`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email address.
    #[schema(format = Email, max_length = 254)]
    #[garde(email, length(max = 254))]
    pub email: String,
    /// Password.
    #[schema(min_length = 1, max_length = 256)]
    #[garde(length(chars, min = 1, max = 256))]
    pub password: String,
    /// Also put the refresh token in the response body (for clients that are not browsers and
    /// keep no cookies). Browsers leave this out: the cookie is then the only copy.
    #[serde(default)]
    #[garde(skip)]
    pub refresh_token_in_body: bool,
}

/// Body of `POST /api/auth/password/forgot`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPasswordRequest {
    /// The account's email address.
    #[schema(format = Email, max_length = 254)]
    #[garde(email, length(max = 254))]
    pub email: String,
}

/// Body of `POST /api/auth/password/reset`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The token from the emailed link.
    #[schema(max_length = 128)]
    #[garde(length(chars, max = 128))]
    pub token: String,
    /// The new password, at least 10 characters.
    #[schema(min_length = 10, max_length = 256)]
    #[garde(length(chars, min = 10, max = 256))]
    pub password: String,
}

/// Body of refresh and logout: the token, unless the cookie carries it.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token; omit to use the cookie.
    #[schema(max_length = 128)]
    #[garde(length(chars, max = 128))]
    pub refresh_token: Option<String>,
}

/// A neutral acknowledgement.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// What happens next.
    pub message: String,
}

/// A signed-in session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// Bearer token for the API.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Single-use refresh token, always set as a cookie; in the body only when the client asked
    /// (`refresh_token_in_body`) or presented its old token in the body, so a script in the page
    /// never sees it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Unix seconds after which the session must be started again.
    pub session_expires_at: i64,
    /// Who is signed in.
    pub me: MeView,
}

pub(crate) fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn refresh_cookie(state: &AppState, token: String, expires_at: i64) -> Cookie<'static> {
    let max_age = (expires_at - store::now()).max(0);
    Cookie::build((REFRESH_COOKIE, token))
        .path(REFRESH_COOKIE_PATH)
        .http_only(true)
        .secure(state.settings.auth.secure_cookies)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build()
}

fn removal_cookie(state: &AppState) -> Cookie<'static> {
    let mut cookie = refresh_cookie(state, String::new(), 0);
    cookie.make_removal();
    cookie
}

/// What a session's answer needs besides its refresh token: everything that can fail (reading
/// who it is, signing the access token), so it is ready before a token is stored or spent.
pub(crate) struct PreparedSession {
    access_token: String,
    me: MeView,
}

/// Prepares the answer for `principal`'s session.
pub(crate) async fn prepare_session(
    state: &AppState,
    principal: &Principal,
) -> Result<PreparedSession, ApiError> {
    Ok(PreparedSession {
        access_token: state.tokens.issue_access(principal, store::now())?,
        me: me_view(state, principal).await?,
    })
}

/// The answer for a prepared session whose refresh token is stored: the access token, and the
/// refresh token in its cookie (and in the body when asked). Nothing here can fail.
pub(crate) fn answer_session(
    state: &AppState,
    jar: CookieJar,
    prepared: PreparedSession,
    refresh_token: String,
    session_expires_at: i64,
    token_in_body: bool,
) -> Response {
    let jar = jar.add(refresh_cookie(
        state,
        refresh_token.clone(),
        session_expires_at,
    ));
    let body = SessionResponse {
        access_token: prepared.access_token,
        token_type: "Bearer",
        expires_in: state.tokens.access_ttl_secs(),
        refresh_token: token_in_body.then_some(refresh_token),
        session_expires_at,
        me: prepared.me,
    };
    (jar, Json(body)).into_response()
}

/// Starts a new refresh family for `subject` and answers with the session.
pub(crate) async fn start_session(
    state: &AppState,
    jar: CookieJar,
    principal: Principal,
    subject: SessionSubject,
    expires_at: i64,
    token_in_body: bool,
) -> Result<Response, ApiError> {
    let prepared = prepare_session(state, &principal).await?;
    let refresh_token = opaque::generate()?;
    refresh_tokens::start_family(
        state.db.pool(),
        &opaque::hash(&refresh_token),
        &subject,
        expires_at,
    )
    .await?;
    Ok(answer_session(
        state,
        jar,
        prepared,
        refresh_token,
        expires_at,
        token_in_body,
    ))
}

/// Creates a candidate account.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 202, description = "Account created if the email was new", body = Accepted),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let email = normalize_email(&body.email);
    // Hash before looking at the email so both outcomes cost the same.
    let hash = password::hash(body.password).await?;
    match users::insert(
        state.db.pool(),
        &email,
        body.display_name.trim(),
        &hash,
        users::AccountRole::Candidate,
    )
    .await
    {
        Ok(user) => {
            tracing::info!("account registered");
            // Its address is confirmed by a link sent to it (with email on), queued after the
            // answer so a new address and a taken one are answered alike. The account is made
            // either way: a message that cannot be queued can be asked for again.
            if state.mailer.enabled() {
                let queueing = state.clone();
                tokio::spawn(async move {
                    if let Err(err) = queue_verification_link(&queueing, &user).await {
                        tracing::error!(%err, "a verification link was not queued");
                    }
                });
            }
        }
        Err(err) if store::is_unique_violation(&err) => {
            tracing::info!("registration for an existing email ignored");
        }
        Err(err) => return Err(err.into()),
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            message: "If this email was not registered yet, the account is ready: sign in."
                .to_owned(),
        }),
    ))
}

/// Signs in with email and password.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = SessionResponse),
        (status = 401, description = "Wrong email or password", body = ErrorBody),
        (status = 403, description = "The account is deactivated (said only after the right password)", body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    jar: CookieJar,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let email = normalize_email(&body.email);
    let limiter = &state.account_limiter;
    limiter.check(&email, client)?;
    // Failures from anywhere slow the account down; they never lock its owner out.
    let delay = limiter.delay(&email);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let user = users::by_email(state.db.pool(), &email).await?;
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    if !password::verify(body.password, stored_hash).await {
        limiter.failed(&email);
        return Err(ApiError::InvalidCredentials);
    }
    limiter.succeeded(&email);
    let user = user.ok_or(ApiError::InvalidCredentials)?;
    // Said only to whoever knows the password.
    if user.deactivated_at.is_some() {
        return Err(ApiError::Forbidden(
            "this account is deactivated; ask an administrator",
        ));
    }
    let principal = Principal::User {
        id: user.id.clone(),
        role: user.role()?,
        epoch: user.session_epoch,
    };
    let expires_at =
        store::now().saturating_add_unsigned(state.settings.auth.refresh_token_ttl_secs);
    start_session(
        &state,
        jar,
        principal,
        SessionSubject::User(user.id),
        expires_at,
        body.refresh_token_in_body,
    )
    .await
}

fn presented_token(jar: &CookieJar, body: Option<String>) -> Option<String> {
    body.or_else(|| jar.get(REFRESH_COOKIE).map(|c| c.value().to_owned()))
        .filter(|t| opaque::is_well_formed(t))
}

/// Exchanges a refresh token for a new access token and a new refresh token.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "Rotated", body = SessionResponse),
        (status = 401, description = "Unknown, expired, revoked or reused token", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn refresh(
    State(state): State<AppState>,
    jar: CookieJar,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let in_body = body.refresh_token.is_some();
    let Some(old) = presented_token(&jar, body.refresh_token) else {
        return Err(ApiError::InvalidRefreshToken);
    };
    let old_hash = opaque::hash(&old);
    // Everything that can fail comes before the token is spent: a refresh that fails leaves the
    // presented token as good as it was, so the client can try again.
    let prepared = match refresh_tokens::peek(state.db.pool(), &old_hash).await? {
        Some(subject) => Some((
            subject.clone(),
            prepare_session(&state, &principal_of(&state, subject).await?).await?,
        )),
        // Unknown, used (a copy: rotate revokes its family), revoked or expired.
        None => None,
    };
    let new = opaque::generate()?;
    let expected = prepared.as_ref().map(|(subject, _)| subject);
    let rotation =
        refresh_tokens::rotate(state.db.pool(), &old_hash, &opaque::hash(&new), expected).await?;
    match (rotation, prepared) {
        // Rotated only for the subject the answer was prepared for.
        (Rotation::Rotated { expires_at, .. }, Some((_, prepared))) => Ok(answer_session(
            &state, jar, prepared, new, expires_at, in_body,
        )),
        (Rotation::Reused, _) => {
            tracing::warn!("a used refresh token was presented again; its family is revoked");
            Err(ApiError::InvalidRefreshToken)
        }
        // Unknown, revoked, expired, or usable only since the peek (a rescheduled interview
        // extended it): left unspent, so the next try succeeds.
        _ => Err(ApiError::InvalidRefreshToken),
    }
}

/// Who a session's subject is now, for its next access token; a deleted account or a cancelled
/// interview ends the session.
async fn principal_of(state: &AppState, subject: SessionSubject) -> Result<Principal, ApiError> {
    Ok(match subject {
        SessionSubject::User(id) => {
            let user = users::by_id(state.db.pool(), &id)
                .await?
                .filter(|user| user.deactivated_at.is_none())
                .ok_or(ApiError::InvalidRefreshToken)?;
            // The role is read afresh: role changes take effect at the next refresh.
            Principal::User {
                id: user.id.clone(),
                role: user.role()?,
                epoch: user.session_epoch,
            }
        }
        SessionSubject::Guest(participant_id) => {
            let participant = interviews::participant(state.db.pool(), &participant_id)
                .await?
                .ok_or(ApiError::InvalidRefreshToken)?;
            let interview = interviews::by_id(state.db.pool(), &participant.interview_id)
                .await?
                .ok_or(ApiError::InvalidRefreshToken)?;
            if interview.is_cancelled() {
                return Err(ApiError::InvalidRefreshToken);
            }
            Principal::Guest {
                participant_id: participant.id,
                interview_id: interview.id,
                epoch: participant.session_epoch,
            }
        }
    })
}

/// Ends the session the refresh token belongs to (every token of its family).
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "Signed out")))]
#[tracing::instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    if let Some(token) = presented_token(&jar, body.refresh_token) {
        refresh_tokens::revoke_family_of(state.db.pool(), &opaque::hash(&token)).await?;
    }
    let jar = jar.add(removal_cookie(&state));
    Ok((jar, StatusCode::NO_CONTENT).into_response())
}

/// Reset links one account may be sent per hour (more requests are answered the same way and
/// send nothing).
const RESETS_PER_HOUR: i64 = 5;

/// Emails a link that sets a new password, if the address has an account.
#[utoipa::path(post, path = "/api/auth/password/forgot", tag = "auth",
    request_body = ForgotPasswordRequest,
    responses(
        (status = 202, description = "A link was sent if the address has an account", body = Accepted),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody),
        (status = 409, description = "This server sends no email (`email_not_configured`)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn forgot_password(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ForgotPasswordRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    if !state.mailer.enabled() {
        return Err(ApiError::Conflict {
            code: "email_not_configured",
            message: "this server sends no email: ask an administrator to set a new password"
                .to_owned(),
        });
    }
    let email = normalize_email(&body.email);
    // Answered at once, the same way and in the same time whether or not the address has an
    // account: the lookup and the queueing happen after the answer.
    let queueing = state.clone();
    tokio::spawn(async move {
        if let Err(err) = queue_reset_link(&queueing, &email).await {
            tracing::error!(%err, "a password reset link was not queued");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            message:
                "If an account has this address, a link to choose a new password is on its way."
                    .to_owned(),
        }),
    ))
}

/// Queues a reset link for the account with `email`, if there is one (not deactivated) and it
/// was not sent too many links this hour.
async fn queue_reset_link(state: &AppState, email: &str) -> Result<(), ApiError> {
    let pool = state.db.pool();
    // A deactivated account is treated as one that does not exist.
    let user = users::by_email(pool, email)
        .await?
        .filter(|user| user.deactivated_at.is_none());
    let Some(user) = user else {
        tracing::info!("password reset asked for an address without an account");
        return Ok(());
    };
    let minutes = state.settings.email.reset_link_minutes;
    let token = opaque::generate()?;
    let link = format!(
        "{}/reset-password#{token}",
        state
            .settings
            .public
            .base_url
            .as_str()
            .trim_end_matches('/')
    );
    let content = crate::email::password_reset(&user.display_name, &link, minutes);
    let expires_at = store::now() + i64::from(minutes) * 60;
    // The link and its message are stored together: neither exists without the other. The
    // hourly count is taken in the same transaction.
    let mut tx = pool.begin().await?;
    // The account's row first: of two requests at once, the second waits for the first and
    // counts its link (on PostgreSQL a count alone sees only what was committed).
    users::hold(&mut *tx, &user.id).await?;
    let hour_ago = store::now() - 3600;
    if password_resets::issued_since(&mut *tx, &user.id, hour_ago).await? >= RESETS_PER_HOUR {
        tracing::warn!(user = %user.id, "password reset links asked for too often; none sent");
        return Ok(());
    }
    password_resets::insert(&mut *tx, &opaque::hash(&token), &user.id, expires_at).await?;
    state
        .mailer
        .queue(
            &mut *tx,
            "password_reset",
            &user.email,
            &content,
            Some(expires_at),
        )
        .await?;
    tx.commit().await?;
    state.mailer.wake();
    tracing::info!(user = %user.id, "password reset link queued");
    Ok(())
}

/// Sets a new password with an emailed link's token; every session of the account ends.
#[utoipa::path(post, path = "/api/auth/password/reset", tag = "auth",
    request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "The password is set; sign in with it"),
        (status = 400, description = "The link is unknown, used or expired", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn reset_password(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ResetPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    if !opaque::is_well_formed(&body.token) {
        return Err(ApiError::InvalidResetLink);
    }
    let hash = password::hash(body.password).await?;
    let mut tx = state.db.pool().begin().await?;
    let Some(user_id) = password_resets::spend(&mut tx, &opaque::hash(&body.token)).await? else {
        return Err(ApiError::InvalidResetLink);
    };
    // Every session ends: whoever knew the old password is signed out, access tokens too.
    users::replace_password(&mut tx, &user_id, &hash).await?;
    audit::record(
        &mut *tx,
        &user_id,
        "user.password_reset",
        &user_id,
        serde_json::json!({ "by": "emailed link" }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(user = %user_id, "password reset");
    Ok(StatusCode::NO_CONTENT)
}

/// How long an address confirmation link works.
const VERIFICATION_HOURS: i64 = 48;
/// Confirmation links one account may be sent per hour.
const VERIFICATIONS_PER_HOUR: i64 = 5;

/// Queues a link that confirms `user`'s address, within the hourly rate; false past it.
async fn queue_verification_link(
    state: &AppState,
    user: &users::UserRow,
) -> Result<bool, ApiError> {
    let token = opaque::generate()?;
    let link = format!(
        "{}/verify-email#{token}",
        state
            .settings
            .public
            .base_url
            .as_str()
            .trim_end_matches('/')
    );
    let expires_at = store::now() + VERIFICATION_HOURS * 3600;
    let content = crate::email::email_verification(&user.display_name, &link, VERIFICATION_HOURS);
    let mut tx = state.db.pool().begin().await?;
    // The account's row first: of two requests at once, the second waits for the first and
    // counts its link (on PostgreSQL a count alone sees only what was committed).
    users::hold(&mut *tx, &user.id).await?;
    let sent = email_verifications::issued_since(&mut *tx, &user.id, store::now() - 3600).await?;
    if sent >= VERIFICATIONS_PER_HOUR {
        return Ok(false);
    }
    email_verifications::insert(&mut *tx, &opaque::hash(&token), &user.id, expires_at).await?;
    state
        .mailer
        .queue(
            &mut *tx,
            "email_verification",
            &user.email,
            &content,
            Some(expires_at),
        )
        .await?;
    tx.commit().await?;
    state.mailer.wake();
    Ok(true)
}

/// Body of `POST /api/auth/email/verify`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The token from the emailed link.
    #[schema(min_length = 1, max_length = 128)]
    #[garde(length(min = 1, max = 128))]
    pub token: String,
}

/// Confirms an account's address with an emailed link's token.
#[utoipa::path(post, path = "/api/auth/email/verify", tag = "auth",
    request_body = VerifyEmailRequest,
    responses(
        (status = 204, description = "The address is confirmed"),
        (status = 400, description = "The link is unknown, used or expired", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn verify_email(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<VerifyEmailRequest>,
) -> Result<StatusCode, ApiError> {
    if !opaque::is_well_formed(&body.token) {
        return Err(ApiError::InvalidVerificationLink);
    }
    let mut tx = state.db.pool().begin().await?;
    let Some(user_id) = email_verifications::spend(&mut tx, &opaque::hash(&body.token)).await?
    else {
        return Err(ApiError::InvalidVerificationLink);
    };
    audit::record(
        &mut *tx,
        &user_id,
        "user.email_verified",
        &user_id,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(user = %user_id, "email address confirmed");
    Ok(StatusCode::NO_CONTENT)
}

/// Sends the signed-in account a new link that confirms its address.
#[utoipa::path(post, path = "/api/auth/email/resend", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 202, description = "A new link is on its way", body = Accepted),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an account (a guest session)", body = ErrorBody),
        (status = 409, description = "Already confirmed (`already_verified`), this server sends no email (`email_not_configured`), or too many links this hour (`too_many_links`)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn resend_verification(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    if !state.mailer.enabled() {
        return Err(ApiError::Conflict {
            code: "email_not_configured",
            message: "this server sends no email".to_owned(),
        });
    }
    let account = users::by_id(state.db.pool(), &user.id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    if account.email_verified_at.is_some() {
        return Err(ApiError::Conflict {
            code: "already_verified",
            message: "this address is confirmed already".to_owned(),
        });
    }
    if !queue_verification_link(&state, &account).await? {
        return Err(ApiError::Conflict {
            code: "too_many_links",
            message: "several links were sent this hour: use the newest, or try again later"
                .to_owned(),
        });
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            message: format!("A new link is on its way to {}.", account.email),
        }),
    ))
}
