//! Cross-cutting HTTP behaviour: validation errors, limits, error format, headers, CORS,
//! operations endpoints.

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sightline_api::AccountRole;

use crate::helpers::{Backend, TestApp, error_fields, expect_error, expect_json, interview_body};
use crate::on_both_backends;

on_both_backends!(
    bodies_are_validated,
    oversized_bodies_are_refused,
    operations_endpoints,
    headers_on_every_response,
    cors_follows_the_allowlist,
);

async fn bodies_are_validated(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let register = |body: Value| app.post("/api/auth/register", body, None);

    let missing =
        register(json!({ "email": "a@example.com", "password": "long enough pw" })).await?;
    let body = expect_error(
        missing,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("display_name")
    );

    let unknown = register(
        json!({ "email": "a@example.com", "password": "long enough pw",
        "display_name": "A", "role": "admin" }),
    )
    .await?;
    let body = expect_error(
        unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("role")
    );

    let invalid = register(json!({ "email": "not-an-email", "password": "short",
        "display_name": "A" }))
    .await?;
    let body = expect_error(
        invalid,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    let fields = error_fields(&body);
    assert!(
        fields.iter().any(|f| f == "email") && fields.iter().any(|f| f == "password"),
        "{fields:?}"
    );

    let malformed = app
        .client
        .post(app.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await?;
    expect_error(malformed, StatusCode::BAD_REQUEST, "bad_request").await?;

    // A body is a JSON object: serde would build a struct from an array of its fields, the
    // schema does not allow it, and neither do we.
    for (path, body) in [
        ("/api/auth/logout", json!([null])),
        ("/api/auth/login", json!(["ivy@example.com", "password"])),
    ] {
        let refused = expect_error(
            app.post(path, body, None).await?,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await?;
        assert!(refused.to_string().contains("JSON object"), "{refused}");
    }

    let not_json = app
        .client
        .post(app.url("/api/auth/login"))
        .header("content-type", "text/plain")
        .body("email=a")
        .send()
        .await?;
    expect_error(
        not_json,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await?;

    let interviewer = app
        .user_with_role("ivy@example.com", AccountRole::Interviewer)
        .await?;
    let mut bad_zone = interview_body("c@example.com");
    bad_zone["time_zone"] = json!("Mars/Olympus_Mons");
    bad_zone["duration_minutes"] = json!(100_000);
    let body = expect_error(
        app.post("/api/interviews", bad_zone, Some(&interviewer.access))
            .await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    let fields = error_fields(&body);
    assert!(
        fields.iter().any(|f| f == "time_zone") && fields.iter().any(|f| f == "duration_minutes"),
        "{fields:?}"
    );

    let mut bad_email = interview_body("c@example.com");
    bad_email["participants"][0]["email"] = json!("nope");
    let body = expect_error(
        app.post("/api/interviews", bad_email, Some(&interviewer.access))
            .await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    assert_eq!(body["error"]["fields"][0]["field"], "participants[0].email");

    let mut bad_date = interview_body("c@example.com");
    bad_date["scheduled_start"] = json!("next tuesday");
    let body = expect_error(
        app.post("/api/interviews", bad_date, Some(&interviewer.access))
            .await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await?;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("scheduled_start")
    );
    Ok(())
}

async fn oversized_bodies_are_refused(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    // The server answers from `Content-Length` alone and closes without reading the rest. A
    // client still writing the body would then meet a reset and might never read the answer, so
    // this client announces 2 MiB, sends a little, and reads.
    let (status, body) = announce_oversized_body(&app, "/api/auth/register", 2 << 20).await?;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    // The server is fine afterwards.
    app.register("after@example.com").await?;
    Ok(())
}

/// Sends a JSON request announcing `length` bytes but only its first bytes, and returns the
/// answer's status and JSON body.
async fn announce_oversized_body(app: &TestApp, path: &str, length: usize) -> Result<(u16, Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let host = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n{{\"email\": \""
    );
    stream.write_all(head.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .context("the server answers without waiting for the body")??;
    let text = String::from_utf8(answer)?;
    let (head, body) = text.split_once("\r\n\r\n").context("an HTTP answer")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("a status line")?;
    Ok((status, serde_json::from_str(body).context("a JSON body")?))
}

async fn operations_endpoints(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    let health = expect_json(app.get("/healthz", None).await?, StatusCode::OK).await?;
    assert_eq!(health["status"], "ok");
    let ready = expect_json(app.get("/readyz", None).await?, StatusCode::OK).await?;
    assert_eq!(ready["status"], "ok");

    app.register("m@example.com").await?;
    let metrics = app.metrics().await?;
    assert!(
        metrics.contains(
            "sightline_http_requests_total{method=\"POST\",route=\"/api/auth/register\",status=\"202\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("sightline_http_request_duration_seconds_bucket"));

    let doc = expect_json(app.get("/api/openapi.json", None).await?, StatusCode::OK).await?;
    assert!(
        doc["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.")
    );
    for path in [
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/me",
        "/api/interviews",
        "/api/interviews/my",
        "/api/interviews/{id}",
        "/api/interviews/{id}/cancel",
        "/api/interviews/{id}/join",
        "/api/interviews/{id}/participants/{participant_id}/invite",
        "/api/invites/inspect",
        "/api/invites/redeem",
        "/api/admin/users",
        "/api/admin/users/{id}",
        "/api/admin/audit",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());

    expect_error(
        app.get("/api/nothing-here", None).await?,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;
    expect_error(
        app.request(Method::DELETE, "/api/auth/login", None, None)
            .await?,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await?;
    Ok(())
}

async fn headers_on_every_response(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    for path in ["/healthz", "/api/me", "/api/nothing-here"] {
        let response = app.get(path, None).await?;
        let headers = response.headers();
        let request_id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert_eq!(request_id.len(), 36, "{path}: generated request id");
        let csp = headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"));
        assert_eq!(
            headers.get("x-content-type-options").map(|v| v.as_bytes()),
            Some(&b"nosniff"[..])
        );
        assert_eq!(
            headers.get("referrer-policy").map(|v| v.as_bytes()),
            Some(&b"no-referrer"[..])
        );
    }
    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await?;
    assert_eq!(
        echoed.headers().get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"trace-me-123"[..])
    );

    // The app shell carries a fresh style nonce, the same in its page and its policy.
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let shell = app.get("/interviews", None).await?;
        if shell.status() == StatusCode::SERVICE_UNAVAILABLE {
            // This checkout's web app is not built (scripts/test always builds it).
            return Ok(());
        }
        let csp = shell
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let page = shell.text().await?;
        let nonce = page
            .split("name=\"csp-nonce\" content=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(nonce.len(), 43, "{page}");
        assert!(
            csp.contains(&format!("style-src 'self' 'nonce-{nonce}'")),
            "{csp}"
        );
        assert!(csp.contains("script-src 'self';") && !csp.contains("unsafe-inline"));
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1], "a nonce is never reused");
    Ok(())
}

async fn cors_follows_the_allowlist(backend: Backend) -> Result<()> {
    let app = TestApp::spawn_with(
        backend,
        &[(
            "http.cors_allowed_origins",
            json!(["https://app.example.com"]),
        )],
    )
    .await?;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/api/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://app.example.com").await?;
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"https://app.example.com"[..])
    );
    let denied = preflight("https://evil.example.net").await?;
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    Ok(())
}
