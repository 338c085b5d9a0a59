//! Logging setup and the rules that keep secrets out of logs.
//!
//! Every request gets a span with its method, a redacted path and its request id (the
//! `x-request-id` header, generated if absent and echoed in the response), so every line logged
//! while handling it carries the id. Paths are redacted because invite links carry their token in
//! the path; query strings are never logged.

use std::borrow::Cow;

use axum::http::Request;
use sightline_config::{LogFormat, LogSettings};
use tracing::Span;
use tracing_subscriber::EnvFilter;

/// Path segments after which the next segment is a secret.
const SECRET_AFTER: &[&str] = &["join", "pair"];

/// The path with token segments replaced, fit for logs.
pub fn redact_path(path: &str) -> Cow<'_, str> {
    let segments: Vec<&str> = path.split('/').collect();
    let secret_at = |i: usize| i > 0 && SECRET_AFTER.contains(&segments[i - 1]);
    if !(0..segments.len()).any(|i| secret_at(i) && !segments[i].is_empty()) {
        return Cow::Borrowed(path);
    }
    let redacted: Vec<&str> = segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if secret_at(i) && !s.is_empty() {
                "[redacted]"
            } else {
                s
            }
        })
        .collect();
    Cow::Owned(redacted.join("/"))
}

/// The span for one HTTP request.
pub fn request_span<B>(request: &Request<B>) -> Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %redact_path(request.uri().path()),
        request_id = %request_id,
    )
}

/// Installs the global subscriber (binary start-up only).
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal: a log written to a file or collected by a service manager
    // stays plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let installed = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Err(err) = installed {
        eprintln!("logging was already set up: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_and_pairing_tokens_are_redacted() {
        assert_eq!(redact_path("/join/abcDEF123"), "/join/[redacted]");
        assert_eq!(redact_path("/pair/xyz/extra"), "/pair/[redacted]/extra");
        assert_eq!(redact_path("/api/interviews/42"), "/api/interviews/42");
        assert_eq!(redact_path("/join/"), "/join/");
        assert!(matches!(redact_path("/healthz"), Cow::Borrowed(_)));
    }
}
