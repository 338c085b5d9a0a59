//! Registration, sign-in, refresh rotation and reuse detection, sign-out, token tampering,
//! rate limits.

use anyhow::Result;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, PASSWORD, TEST_SECRET, TestApp, expect_error, expect_json, session_from, text,
};
use crate::on_both_backends;

on_both_backends!(
    session_lifecycle,
    refresh_cookie_is_locked_down,
    bad_access_tokens_are_refused,
    messages_do_not_reveal_accounts,
    login_is_rate_limited_per_account,
    registration_is_rate_limited_per_ip,
    password_change_ends_sessions,
    me_can_be_renamed,
    a_refresh_that_fails_midway_leaves_the_token_usable,
);

/// Who the session is cannot be read (the accounts table is gone for a moment): the refresh
/// fails and the presented token still works afterwards, instead of being spent on an answer
/// that never came (which would have ended the session at the next try, as a reuse).
async fn a_refresh_that_fails_midway_leaves_the_token_usable(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    app.register("ada@example.com").await?;
    let session = app.login("ada@example.com").await?;
    let refresh = || {
        app.post(
            "/api/auth/refresh",
            json!({ "refresh_token": session.refresh }),
            None,
        )
    };

    expect_error(
        app.with_table_hidden("users", refresh()).await?,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
    )
    .await?;

    let next = session_from(refresh().await?).await?;
    assert_ne!(next.refresh, session.refresh);
    expect_json(
        app.get("/api/me", Some(&next.access)).await?,
        StatusCode::OK,
    )
    .await?;
    Ok(())
}

async fn session_lifecycle(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    app.register("ada@example.com").await?;
    let first = app.login("Ada@Example.com").await?;
    assert_eq!(first.me["kind"], "user");
    assert_eq!(first.me["role"], "candidate");
    assert_eq!(first.me["email"], "ada@example.com");

    let me = expect_json(
        app.get("/api/me", Some(&first.access)).await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(me["display_name"], "ada");

    let refresh = |token: String| {
        let app = &app;
        async move {
            app.post("/api/auth/refresh", json!({ "refresh_token": token }), None)
                .await
        }
    };
    let second = session_from(refresh(first.refresh.clone()).await?).await?;
    assert_ne!(second.refresh, first.refresh, "refresh tokens rotate");
    expect_json(
        app.get("/api/me", Some(&second.access)).await?,
        StatusCode::OK,
    )
    .await?;

    // The old token again: reuse. The family dies, so even the newest token stops working.
    expect_error(
        refresh(first.refresh.clone()).await?,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await?;
    expect_error(
        refresh(second.refresh.clone()).await?,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await?;

    // A new sign-in is a new family; logout ends it.
    let third = app.login("ada@example.com").await?;
    let response = app
        .post(
            "/api/auth/logout",
            json!({ "refresh_token": third.refresh }),
            None,
        )
        .await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    expect_error(
        refresh(third.refresh.clone()).await?,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await?;
    Ok(())
}

async fn refresh_cookie_is_locked_down(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    app.register("bo@example.com").await?;
    let response = app
        .post(
            "/api/auth/login",
            json!({ "email": "bo@example.com", "password": PASSWORD }),
            None,
        )
        .await?;
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_default();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/api/auth"] {
        assert!(
            cookie.contains(attribute),
            "{attribute} missing in {cookie}"
        );
    }
    let body = expect_json(response, StatusCode::OK).await?;
    assert!(
        body.get("refresh_token").is_none(),
        "a browser's sign-in answer puts the refresh token where scripts can read it: {body}"
    );
    let pair = cookie.split(';').next().unwrap_or_default().to_owned();
    let session_refresh = pair
        .strip_prefix("sightline_refresh=")
        .unwrap_or_default()
        .to_owned();
    assert!(!session_refresh.is_empty());
    // A client that is not a browser asks for the token in the body, and gets it there too.
    let native = expect_json(
        app.post(
            "/api/auth/login",
            json!({ "email": "bo@example.com", "password": PASSWORD,
                "refresh_token_in_body": true }),
            None,
        )
        .await?,
        StatusCode::OK,
    )
    .await?;
    assert!(native["refresh_token"].is_string(), "{native}");

    // A browser sends only the cookie; the new token comes back only as a cookie, never in a
    // body a script could read.
    let rotated = app
        .client
        .post(app.url("/api/auth/refresh"))
        .header("cookie", &pair)
        .json(&json!({}))
        .send()
        .await?;
    let new_cookie = rotated
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(new_cookie.starts_with("sightline_refresh=") && !new_cookie.contains(&session_refresh));
    let body = expect_json(rotated, StatusCode::OK).await?;
    assert!(body["access_token"].is_string());
    assert!(body.get("refresh_token").is_none(), "{body}");

    let logout = app
        .client
        .post(app.url("/api/auth/logout"))
        .header("cookie", &pair)
        .json(&json!({}))
        .send()
        .await?;
    let cleared = logout
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        cleared.contains("sightline_refresh=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    Ok(())
}

fn jwt(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("test token signs")
}

async fn bad_access_tokens_are_refused(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    app.register("cy@example.com").await?;
    let session = app.login("cy@example.com").await?;
    let user_id = text(&session.me["id"])?;
    let now = jiff::Timestamp::now().as_second();
    let claims = |exp: i64| {
        json!({ "iss": "sightline", "aud": "sightline-api", "sub": user_id, "iat": now - 10,
                "exp": exp, "kind": "user", "role": "candidate" })
    };

    // Sanity: a token we forge with the right secret and claims is accepted, so the failures
    // below are about what each one changes.
    let good = jwt(&claims(now + 300), TEST_SECRET.as_bytes());
    expect_json(app.get("/api/me", Some(&good)).await?, StatusCode::OK).await?;

    let expired = jwt(&claims(now - 120), TEST_SECRET.as_bytes());
    let wrong_key = jwt(&claims(now + 300), b"some-other-secret-some-other-secret!!");
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(&parts[1])?)?;
    parts[1] = URL_SAFE_NO_PAD.encode(payload.replace("candidate", "admin"));
    let tampered = parts.join(".");
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!(
        "{none_header}.{}.",
        good.split('.').nth(1).unwrap_or_default()
    );
    let wrong_audience = jwt(
        &json!({ "iss": "sightline", "aud": "sightline-rtc", "sub": user_id, "iat": now,
                 "exp": now + 300, "kind": "user", "role": "candidate" }),
        TEST_SECRET.as_bytes(),
    );

    for (what, token) in [
        ("expired", expired),
        ("wrong key", wrong_key),
        ("tampered", tampered),
        ("alg none", alg_none),
        ("wrong audience", wrong_audience),
        ("garbage", "not.a.jwt".to_owned()),
    ] {
        let response = app.get("/api/me", Some(&token)).await?;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        expect_error(response, StatusCode::UNAUTHORIZED, "unauthenticated").await?;
    }
    expect_error(
        app.get("/api/me", None).await?,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await?;
    Ok(())
}

async fn messages_do_not_reveal_accounts(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    app.register("dee@example.com").await?;
    let register_again = app
        .post(
            "/api/auth/register",
            json!({ "email": "dee@example.com", "password": "another password!", "display_name": "x" }),
            None,
        )
        .await?;
    let register_new = app
        .post(
            "/api/auth/register",
            json!({ "email": "eve@example.com", "password": "another password!", "display_name": "x" }),
            None,
        )
        .await?;
    assert_eq!(register_again.status(), register_new.status());
    assert_eq!(register_again.text().await?, register_new.text().await?);

    let wrong_password = app
        .post(
            "/api/auth/login",
            json!({ "email": "dee@example.com", "password": "wrong password" }),
            None,
        )
        .await?;
    let no_account = app
        .post(
            "/api/auth/login",
            json!({ "email": "nobody@example.com", "password": "wrong password" }),
            None,
        )
        .await?;
    let a = expect_error(
        wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await?;
    let b = expect_error(no_account, StatusCode::UNAUTHORIZED, "invalid_credentials").await?;
    assert_eq!(a, b);
    // The existing account's password was not changed by the second registration.
    app.login("dee@example.com").await?;
    Ok(())
}

async fn login_is_rate_limited_per_account(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    app.register("fay@example.com").await?;
    let burst = app.settings.auth.rate_limit.per_account_burst;
    for _ in 0..burst {
        let response = app
            .post(
                "/api/auth/login",
                json!({ "email": "fay@example.com", "password": "wrong guess 1" }),
                None,
            )
            .await?;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // Even the right password is refused now: the limit protects the account, not the guess.
    let limited = app
        .post(
            "/api/auth/login",
            json!({ "email": "fay@example.com", "password": PASSWORD }),
            None,
        )
        .await?;
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(retry_after >= 1, "Retry-After is set");
    expect_error(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await?;
    Ok(())
}

async fn registration_is_rate_limited_per_ip(backend: Backend) -> Result<()> {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("auth.rate_limit.per_ip_burst", json!(3)),
            ("auth.rate_limit.per_ip_period_ms", json!(60_000)),
        ],
    )
    .await?;
    for i in 0..3 {
        app.register(&format!("user{i}@example.com")).await?;
    }
    let limited = app
        .post(
            "/api/auth/register",
            json!({ "email": "user9@example.com", "password": PASSWORD, "display_name": "u" }),
            None,
        )
        .await?;
    assert!(limited.headers().contains_key("retry-after"));
    expect_error(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await?;
    Ok(())
}

async fn password_change_ends_sessions(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    app.register("gil@example.com").await?;
    let session = app.login("gil@example.com").await?;
    let wrong = app
        .request(
            reqwest::Method::PATCH,
            "/api/me",
            Some(json!({ "current_password": "not it at all", "new_password": "a brand new password" })),
            Some(&session.access),
        )
        .await?;
    let body = expect_error(wrong, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await?;
    assert_eq!(body["error"]["fields"][0]["field"], "current_password");

    let changed = app
        .request(
            reqwest::Method::PATCH,
            "/api/me",
            Some(json!({ "current_password": PASSWORD, "new_password": "a brand new password" })),
            Some(&session.access),
        )
        .await?;
    expect_json(changed, StatusCode::OK).await?;
    expect_error(
        app.post(
            "/api/auth/refresh",
            json!({ "refresh_token": session.refresh }),
            None,
        )
        .await?,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await?;
    let login = app
        .post(
            "/api/auth/login",
            json!({ "email": "gil@example.com", "password": "a brand new password" }),
            None,
        )
        .await?;
    session_from(login).await?;
    Ok(())
}

async fn me_can_be_renamed(backend: Backend) -> Result<()> {
    let app = TestApp::spawn(backend).await?;
    app.register("hal@example.com").await?;
    let session = app.login("hal@example.com").await?;
    let renamed = app
        .request(
            reqwest::Method::PATCH,
            "/api/me",
            Some(json!({ "display_name": "  Hal Jordan " })),
            Some(&session.access),
        )
        .await?;
    let me = expect_json(renamed, StatusCode::OK).await?;
    assert_eq!(me["display_name"], "Hal Jordan");
    let blank = app
        .request(
            reqwest::Method::PATCH,
            "/api/me",
            Some(json!({ "display_name": "   " })),
            Some(&session.access),
        )
        .await?;
    let body = expect_error(blank, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await?;
    assert_eq!(body["error"]["fields"][0]["field"], "display_name");
    Ok(())
}
