//! JSON kept in text columns (a question's tags and tests, a template's criteria, a scorecard's
//! ratings): read and written whole, and a stored value that no longer parses is the server's
//! fault (500), never the caller's.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Reads a stored JSON value; `what` names it in the error.
pub(crate) fn parse<T: DeserializeOwned>(json: &str, what: &str) -> Result<T, ApiError> {
    serde_json::from_str(json).map_err(|err| ApiError::Internal(format!("stored {what}: {err}")))
}

/// A value as the JSON text it is stored as.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|err| ApiError::Internal(err.to_string()))
}
