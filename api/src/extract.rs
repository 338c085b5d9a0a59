//! A JSON body extractor that validates and speaks our error format.
//!
//! `ApiJson<T>` parses with serde (unknown fields are refused by `deny_unknown_fields` on each
//! request type), then runs `garde` validation, and maps every rejection to [`ApiError`]:
//! malformed JSON 400, wrong content type 415, too large 413, wrong shape or invalid values 422.
//! [`refuse_oversized_bodies`] answers 413 from `Content-Length` alone, before any body is read.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use garde::Validate;

use crate::error::{ApiError, FieldError};
use crate::state::AppState;

/// A validated JSON request body.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Validate,
    T::Context: Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<T>::from_request(req, state)
            .await
            .map_err(from_rejection)?;
        value.validate().map_err(from_report)?;
        Ok(ApiJson(value))
    }
}

/// Middleware: a request that announces a body over `http.max_body_bytes` is refused before
/// anything is read, instead of after reading a megabyte of it. Bodies without a length (chunked)
/// are still cut off by the body limit as they are read.
pub async fn refuse_oversized_bodies(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match announced {
        Some(length) if length > state.settings.http.max_body_bytes as u64 => {
            ApiError::PayloadTooLarge.into_response()
        }
        _ => next.run(request).await,
    }
}

fn from_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(err) => ApiError::Validation {
            message: err.body_text(),
            fields: Vec::new(),
        },
        JsonRejection::JsonSyntaxError(err) => ApiError::BadRequest(err.body_text()),
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::BytesRejection(err) if err.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

fn from_report(report: garde::Report) -> ApiError {
    let fields: Vec<FieldError> = report
        .iter()
        .map(|(path, error)| FieldError {
            field: path.to_string(),
            message: error.message().to_owned(),
        })
        .collect();
    let message = fields
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ");
    ApiError::Validation { message, fields }
}

/// garde check: a string with something other than white space in it.
pub fn not_blank(value: &str, _: &()) -> garde::Result {
    if value.trim().is_empty() {
        Err(garde::Error::new("must not be blank"))
    } else {
        Ok(())
    }
}

/// garde check: an IANA time zone name this server knows.
pub fn known_time_zone(value: &str, _: &()) -> garde::Result {
    jiff::tz::TimeZone::get(value)
        .map(|_| ())
        .map_err(|_| garde::Error::new("unknown time zone; use an IANA name like Europe/Paris"))
}
