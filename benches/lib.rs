//! Criterion benchmarks of Sightline's hot paths live in `benches/`; the load tool
//! (`sightline-load`) and the fake participant (`sightline-fake-participant`) are binaries of this
//! crate. This library holds what both binaries need to talk to a running server's API.

use anyhow::{Result, bail};
use serde_json::Value;

/// POSTs JSON to a Sightline API endpoint, with a bearer token when given; the answer's JSON,
/// or an error naming the status and body.
pub async fn post(
    client: &reqwest::Client,
    url: String,
    body: Value,
    token: Option<&str>,
) -> Result<Value> {
    let mut request = client.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status();
    if status == reqwest::StatusCode::NO_CONTENT {
        return Ok(Value::Null);
    }
    let value: Value = response.json().await?;
    if !status.is_success() {
        bail!("{status}: {value}");
    }
    Ok(value)
}

/// PUTs JSON with a bearer token; fails unless the answer is a success.
pub async fn put(client: &reqwest::Client, url: String, body: Value, token: &str) -> Result<Value> {
    let response = client
        .put(url)
        .json(&body)
        .bearer_auth(token)
        .send()
        .await?;
    let status = response.status();
    let value: Value = response.json().await?;
    if !status.is_success() {
        bail!("{status}: {value}");
    }
    Ok(value)
}
