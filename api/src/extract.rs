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
        let Json(ObjectBody(value)) = Json::<ObjectBody<T>>::from_request(req, state)
            .await
            .map_err(from_rejection)?;
        value.validate().map_err(from_report)?;
        Ok(ApiJson(value))
    }
}

/// A request body that must be a JSON object. serde would also build a struct from an array of
/// its fields in order (`[null]` for a struct of one optional field), which the API never
/// promises and its schema does not allow: that is refused as the wrong shape (422).
struct ObjectBody<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for ObjectBody<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Object<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Object(std::marker::PhantomData))
            .map(ObjectBody)
    }
}

/// A query string, refused in our JSON error format (axum's own rejection is plain text).
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
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

/// Reads a whole number, also when a client writes it as `257.0`: JSON has one number type, and
/// JSON Schema counts `257.0` as an integer, so refusing it would refuse what the document allows.
pub fn integral<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = <serde_json::Number as serde::Deserialize>::deserialize(deserializer)?;
    whole(&number).ok_or_else(|| serde::de::Error::custom("expected a whole number"))
}

/// [`integral`] for an optional field (use with `#[serde(default)]`).
pub fn integral_opt<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    let number = <Option<serde_json::Number> as serde::Deserialize>::deserialize(deserializer)?;
    number
        .map(|n| whole(&n).ok_or_else(|| serde::de::Error::custom("expected a whole number")))
        .transpose()
}

fn whole(number: &serde_json::Number) -> Option<i64> {
    if let Some(n) = number.as_i64() {
        return Some(n);
    }
    // Integral floats within the range where f64 holds every whole number exactly.
    let float = number
        .as_f64()
        .filter(|f| f.fract() == 0.0 && f.abs() <= 9.0e15)?;
    format!("{float:.0}").parse().ok()
}

/// garde check: a string with something other than white space in it.
pub fn not_blank(value: &str, _: &()) -> garde::Result {
    if value.trim().is_empty() {
        Err(garde::Error::new("must not be blank"))
    } else {
        Ok(())
    }
}

/// The IANA time zone names this server knows (its bundled tz database), exactly as written
/// there. The OpenAPI document lists the same set, so the two cannot disagree.
fn time_zone_names() -> &'static std::collections::BTreeSet<String> {
    static NAMES: std::sync::LazyLock<std::collections::BTreeSet<String>> =
        std::sync::LazyLock::new(|| {
            jiff::tz::db()
                .available()
                .map(|name| name.to_string())
                .collect()
        });
    &NAMES
}

/// garde check: an IANA time zone name this server knows, spelled as the tz database does.
pub fn known_time_zone(value: &str, _: &()) -> garde::Result {
    if time_zone_names().contains(value) {
        Ok(())
    } else {
        Err(garde::Error::new(
            "unknown time zone; use an IANA name like Europe/Paris",
        ))
    }
}

/// The schema of a time zone field: one of [`time_zone_names`].
pub struct TimeZoneName;

impl utoipa::PartialSchema for TimeZoneName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("An IANA time zone name, such as Europe/Paris"))
            .enum_values(Some(time_zone_names().iter().cloned()))
            .into()
    }
}

impl utoipa::ToSchema for TimeZoneName {}
