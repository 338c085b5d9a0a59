//! The API's one error type and its mapping to HTTP.
//!
//! Every handler returns `Result<_, ApiError>`; this is the only place that chooses status codes
//! and error codes. Bodies are `{ "error": { "code", "message", "fields"? } }`. Server-side
//! failures answer with a generic message and log the real cause, so no internal detail (SQL,
//! paths, secrets) reaches a client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// A problem with one field of a request body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `participants[0].email`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Why an invite link cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteProblem {
    /// Malformed, or no invite has this token.
    Unknown,
    /// Already redeemed once.
    Used,
    /// The interview is over.
    Expired,
    /// Replaced by a newer link, or the interview was cancelled.
    Revoked,
}

/// Why a phone pairing (QR code, link or manual code) or a phone's session cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingProblem {
    /// Malformed, or no pairing has this token or code.
    Unknown,
    /// Already used by a phone.
    Used,
    /// Older than five minutes.
    Expired,
    /// Replaced by a newer code, the phone was removed, or the interview is closed.
    Revoked,
    /// The phone's session ended (removed, replaced, or the interview is over).
    SessionEnded,
}

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The body is not valid JSON, or the request is otherwise malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The body parsed but its content is invalid.
    #[error("{message}")]
    Validation {
        /// Summary for people.
        message: String,
        /// The offending fields.
        fields: Vec<FieldError>,
    },
    /// No valid access token.
    #[error("authentication required")]
    Unauthenticated,
    /// Wrong email or password; deliberately does not say which.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// A refresh token that is unknown, expired or revoked.
    #[error("the session has expired; sign in again")]
    InvalidRefreshToken,
    /// A password reset link that is unknown, used or expired.
    #[error("this password reset link is not valid, was used, or has expired; ask for a new one")]
    InvalidResetLink,
    /// An email verification link that is unknown, used or expired.
    #[error("this confirmation link is not valid, was used, or has expired; ask for a new one")]
    InvalidVerificationLink,
    /// Authenticated, but this action is not allowed for this principal.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Absent, or not visible to this principal (existence is not revealed).
    #[error("not found")]
    NotFound,
    /// An invite link that cannot be used.
    #[error("invite link: {0:?}")]
    Invite(InviteProblem),
    /// A phone pairing or phone session cannot be used.
    #[error("pairing problem: {0:?}")]
    Pairing(PairingProblem),
    /// The request conflicts with the current state.
    #[error("{message}")]
    Conflict {
        /// Stable machine-readable code.
        code: &'static str,
        /// Explanation for people.
        message: String,
    },
    /// The body exceeds the configured limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body is not `application/json`.
    #[error("expected a JSON body with content-type application/json")]
    UnsupportedMediaType,
    /// The method is not defined for this path.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Too many attempts; try again after the given number of seconds.
    #[error("too many requests")]
    RateLimited {
        /// Seconds until the next attempt may succeed.
        retry_after_secs: u64,
    },
    /// A dependency (database, built web app) is not available right now.
    #[error("{0}")]
    Unavailable(&'static str),
    /// A shared resource (the code runner's queue) is full; retry shortly.
    #[error("{0}")]
    Busy(&'static str),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A file or socket operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Anything else that is our fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A validation error for a single field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let field = field.into();
        let message = message.into();
        ApiError::Validation {
            message: format!("{field}: {message}"),
            fields: vec![FieldError { field, message }],
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            ApiError::InvalidRefreshToken => (StatusCode::UNAUTHORIZED, "invalid_refresh_token"),
            ApiError::InvalidResetLink => (StatusCode::BAD_REQUEST, "invalid_reset_link"),
            ApiError::InvalidVerificationLink => {
                (StatusCode::BAD_REQUEST, "invalid_verification_link")
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Invite(InviteProblem::Unknown) => (StatusCode::NOT_FOUND, "invite_not_found"),
            ApiError::Invite(InviteProblem::Used) => (StatusCode::GONE, "invite_used"),
            ApiError::Invite(InviteProblem::Expired) => (StatusCode::GONE, "invite_expired"),
            ApiError::Invite(InviteProblem::Revoked) => (StatusCode::GONE, "invite_revoked"),
            ApiError::Pairing(PairingProblem::Unknown) => {
                (StatusCode::NOT_FOUND, "pairing_not_found")
            }
            ApiError::Pairing(PairingProblem::Used) => (StatusCode::GONE, "pairing_used"),
            ApiError::Pairing(PairingProblem::Expired) => (StatusCode::GONE, "pairing_expired"),
            ApiError::Pairing(PairingProblem::Revoked) => (StatusCode::GONE, "pairing_revoked"),
            ApiError::Pairing(PairingProblem::SessionEnded) => {
                (StatusCode::UNAUTHORIZED, "phone_session_ended")
            }
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ApiError::Database(_)
            | ApiError::Migrate(_)
            | ApiError::Io(_)
            | ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    fn public_message(&self) -> String {
        match self {
            ApiError::Database(_)
            | ApiError::Migrate(_)
            | ApiError::Io(_)
            | ApiError::Internal(_) => {
                "something went wrong on our side; it has been logged".to_owned()
            }
            ApiError::Invite(problem) => match problem {
                InviteProblem::Unknown => "this invite link is not valid".to_owned(),
                InviteProblem::Used => "this invite link has already been used".to_owned(),
                InviteProblem::Expired => "this invite link has expired".to_owned(),
                InviteProblem::Revoked => "this invite link is no longer valid".to_owned(),
            },
            ApiError::Pairing(problem) => match problem {
                PairingProblem::Unknown => "this pairing code is not valid".to_owned(),
                PairingProblem::Used => "this pairing code has already been used".to_owned(),
                PairingProblem::Expired => {
                    "this pairing code has expired; ask for a new one in the room".to_owned()
                }
                PairingProblem::Revoked => "this pairing code is no longer valid".to_owned(),
                PairingProblem::SessionEnded => {
                    "this phone is no longer paired; scan a new code".to_owned()
                }
            },
            ApiError::RateLimited { retry_after_secs } => {
                format!("too many attempts; try again in {retry_after_secs} s")
            }
            other => other.to_string(),
        }
    }
}

/// The JSON shape of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code, message and optional per-field problems.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `validation_failed`.
    pub code: String,
    /// Explanation for people.
    pub message: String,
    /// Per-field problems, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldError>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let fields = match &self {
            ApiError::Validation { fields, .. } => Some(fields.clone()),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.public_message(),
                fields,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let ApiError::RateLimited { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    async fn body_of(err: ApiError) -> (StatusCode, serde_json::Value, Option<HeaderValue>) {
        let response = err.into_response();
        let status = response.status();
        let retry = response.headers().get(header::RETRY_AFTER).cloned();
        let bytes = to_bytes(response.into_body(), 1 << 16).await.expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"), retry)
    }

    #[tokio::test]
    async fn server_errors_hide_their_cause() {
        let (status, body, _) =
            body_of(ApiError::Internal("password file /etc/x unreadable".into())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("/etc/x"));
    }

    #[tokio::test]
    async fn validation_lists_fields() {
        let (status, body, _) = body_of(ApiError::field("email", "not an email")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["fields"][0]["field"], "email");
    }

    #[tokio::test]
    async fn rate_limit_says_when_to_retry() {
        let (status, body, retry) = body_of(ApiError::RateLimited {
            retry_after_secs: 7,
        })
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body["error"]["code"], "rate_limited");
        assert_eq!(retry, Some(HeaderValue::from(7u64)));
    }
}
