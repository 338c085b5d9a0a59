//! The `webhook_endpoints` and `webhook_deliveries` tables: where events go, and each event on
//! its way to one endpoint (waiting, being retried, delivered or failed).

use serde::Serialize;
use sqlx::{AnyConnection, AnyPool, FromRow};
use utoipa::ToSchema;

use super::{new_id, now};

/// A registered endpoint.
#[derive(Debug, Clone, FromRow)]
pub struct EndpointRow {
    /// Its id.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// The events it wants, space-separated.
    pub events: String,
    /// Raised to rotate its signing secret.
    pub secret_generation: i64,
    /// The admin who registered it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
}

impl EndpointRow {
    /// Whether it wants `event`.
    pub fn wants(&self, event: &str) -> bool {
        self.events.split(' ').any(|e| e == event)
    }
}

macro_rules! endpoint_columns {
    () => {
        "id, url, events, secret_generation, created_by, created_at"
    };
}

/// Stores a new endpoint.
pub async fn insert_endpoint<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    row: &EndpointRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, url, events, secret_generation, created_by, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&row.id)
    .bind(&row.url)
    .bind(&row.events)
    .bind(row.secret_generation)
    .bind(&row.created_by)
    .bind(row.created_at)
    .execute(executor)
    .await
    .map(|_| ())
}

/// Every endpoint, oldest first.
pub async fn endpoints<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
) -> Result<Vec<EndpointRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        endpoint_columns!(),
        " FROM webhook_endpoints ORDER BY created_at, id"
    ))
    .fetch_all(executor)
    .await
}

/// One endpoint.
pub async fn endpoint(pool: &AnyPool, id: &str) -> Result<Option<EndpointRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        endpoint_columns!(),
        " FROM webhook_endpoints WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Deletes an endpoint and its deliveries; false if there was none.
pub async fn delete_endpoint<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
        .bind(id)
        .execute(executor)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Raises an endpoint's secret generation (a new signing secret); false if there was none.
pub async fn rotate_secret<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET secret_generation = secret_generation + 1 WHERE id = $1",
    )
    .bind(id)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Queues event `event_id` (`event`, serialised as `body`) for every endpoint that wants it,
/// due now, in the caller's transaction or connection. Returns how many deliveries were queued.
pub async fn queue(
    conn: &mut AnyConnection,
    event_id: &str,
    event: &str,
    body: &str,
) -> Result<usize, sqlx::Error> {
    let wanting: Vec<String> = endpoints(&mut *conn)
        .await?
        .into_iter()
        .filter(|e| e.wants(event))
        .map(|e| e.id)
        .collect();
    let at = now();
    for endpoint in &wanting {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event, body, created_at, \
             next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(new_id())
        .bind(endpoint)
        .bind(event_id)
        .bind(event)
        .bind(body)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(wanting.len())
}

/// A delivery claimed for sending, with where it goes.
#[derive(Debug, Clone, FromRow)]
pub struct Due {
    /// Its id.
    pub id: String,
    /// Its endpoint.
    pub endpoint_id: String,
    /// The endpoint's URL.
    pub url: String,
    /// The endpoint's secret generation.
    pub secret_generation: i64,
    /// The event's id.
    pub event_id: String,
    /// The event's name.
    pub event: String,
    /// The JSON body.
    pub body: String,
    /// Attempts before this one.
    pub attempts: i64,
    /// The claim: only its holder marks the attempt.
    pub claim: String,
}

/// The condition a row must meet to be claimed at `$1` (now).
macro_rules! claimable {
    () => {
        "delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 \
         AND (claimed_until IS NULL OR claimed_until < $1)"
    };
}

/// Endpoints with a delivery due now, at most `limit`.
pub async fn due_endpoints(pool: &AnyPool, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(concat!(
        "SELECT DISTINCT endpoint_id FROM webhook_deliveries WHERE ",
        claimable!(),
        " ORDER BY endpoint_id LIMIT $2"
    ))
    .bind(now())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Claims `endpoint` and its oldest delivery due now for `lease_secs`; `None` when another
/// sender holds the endpoint (one request in flight per endpoint, across servers) or nothing is
/// due. The endpoint's claim is taken first, by a conditional write (on SQLite a read first
/// would have to upgrade its lock; on PostgreSQL two senders could both read it free), and
/// released with the attempt's outcome, or here when nothing was due.
pub async fn claim_next(
    pool: &AnyPool,
    endpoint: &str,
    lease_secs: i64,
) -> Result<Option<Due>, sqlx::Error> {
    let at = now();
    let claim = new_id();
    let held = sqlx::query(
        "UPDATE webhook_endpoints SET claimed_until = $2, claim = $3 \
         WHERE id = $4 AND (claimed_until IS NULL OR claimed_until < $1)",
    )
    .bind(at)
    .bind(at + lease_secs)
    .bind(&claim)
    .bind(endpoint)
    .execute(pool)
    .await?;
    if held.rows_affected() != 1 {
        return Ok(None);
    }
    let candidates: Vec<(String,)> = sqlx::query_as(concat!(
        "SELECT id FROM webhook_deliveries WHERE endpoint_id = $2 AND ",
        claimable!(),
        " ORDER BY created_at, id LIMIT 3"
    ))
    .bind(at)
    .bind(endpoint)
    .fetch_all(pool)
    .await?;
    for (id,) in candidates {
        let done = sqlx::query(concat!(
            "UPDATE webhook_deliveries SET claimed_until = $2, claim = $3 WHERE id = $4 AND ",
            claimable!()
        ))
        .bind(at)
        .bind(at + lease_secs)
        .bind(&claim)
        .bind(&id)
        .execute(pool)
        .await?;
        if done.rows_affected() == 1 {
            return sqlx::query_as(
                "SELECT d.id, d.endpoint_id, e.url, e.secret_generation, d.event_id, d.event, \
                 d.body, d.attempts, d.claim FROM webhook_deliveries d \
                 JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                 WHERE d.id = $1 AND d.claim = $2",
            )
            .bind(&id)
            .bind(&claim)
            .fetch_optional(pool)
            .await;
        }
    }
    release_endpoint(pool, endpoint, &claim).await?;
    Ok(None)
}

/// Lets go of `endpoint`'s claim, if it is still `claim`.
async fn release_endpoint(pool: &AnyPool, endpoint: &str, claim: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhook_endpoints SET claimed_until = NULL, claim = NULL \
         WHERE id = $1 AND claim = $2",
    )
    .bind(endpoint)
    .bind(claim)
    .execute(pool)
    .await
    .map(|_| ())
}

/// The endpoint took `due` (answered 2xx with `status`).
pub async fn delivered(pool: &AnyPool, due: &Due, status: u16) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhook_deliveries SET delivered_at = $1, attempts = attempts + 1, \
         claimed_until = NULL, claim = NULL, last_status = $2, last_error = NULL \
         WHERE id = $3 AND claim = $4",
    )
    .bind(now())
    .bind(i64::from(status))
    .bind(&due.id)
    .bind(&due.claim)
    .execute(pool)
    .await?;
    release_endpoint(pool, &due.endpoint_id, &due.claim).await
}

/// Delivering `due` failed (`status` if the endpoint answered): tried again at `retry_at`, or,
/// with `None`, given up.
pub async fn attempt_failed(
    pool: &AnyPool,
    due: &Due,
    status: Option<u16>,
    error: &str,
    retry_at: Option<i64>,
) -> Result<(), sqlx::Error> {
    let at = now();
    sqlx::query(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, claimed_until = NULL, \
         claim = NULL, last_status = $1, last_error = $2, next_attempt_at = $3, failed_at = $4 \
         WHERE id = $5 AND claim = $6",
    )
    .bind(status.map(i64::from))
    .bind(error)
    .bind(retry_at.unwrap_or(at))
    .bind(retry_at.is_none().then_some(at))
    .bind(&due.id)
    .bind(&due.claim)
    .execute(pool)
    .await?;
    release_endpoint(pool, &due.endpoint_id, &due.claim).await
}

/// Forgets deliveries delivered or failed more than `keep_secs` ago; returns how many went.
pub async fn sweep(pool: &AnyPool, keep_secs: i64) -> Result<u64, sqlx::Error> {
    let cutoff = now() - keep_secs;
    sqlx::query(
        "DELETE FROM webhook_deliveries WHERE (delivered_at IS NOT NULL AND delivered_at < $1) \
         OR (failed_at IS NOT NULL AND failed_at < $1)",
    )
    .bind(cutoff)
    .execute(pool)
    .await
    .map(|done| done.rows_affected())
}

/// A delivery as admins see it (never its body).
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct DeliveryEntry {
    /// Its id.
    pub id: String,
    /// Its endpoint.
    pub endpoint_id: String,
    /// The event's id (the same for every endpoint).
    pub event_id: String,
    /// The event's name.
    pub event: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Attempts so far.
    pub attempts: i64,
    /// When it is tried next (while neither delivered nor failed).
    pub next_attempt_at: i64,
    /// When the endpoint took it.
    pub delivered_at: Option<i64>,
    /// When it was given up.
    pub failed_at: Option<i64>,
    /// The last answer's HTTP status, if one came.
    pub last_status: Option<i64>,
    /// The last attempt's error.
    pub last_error: Option<String>,
}

/// The newest deliveries, undelivered ones (waiting or failed) first, at most `limit`.
pub async fn recent(pool: &AnyPool, limit: i64) -> Result<Vec<DeliveryEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, endpoint_id, event_id, event, created_at, attempts, next_attempt_at, \
         delivered_at, failed_at, last_status, last_error FROM webhook_deliveries \
         ORDER BY CASE WHEN delivered_at IS NULL THEN 0 ELSE 1 END, created_at DESC, id DESC \
         LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// How many deliveries wait (neither delivered nor failed), and how many failed.
pub async fn counts(pool: &AnyPool) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT \
         COALESCE(SUM(CASE WHEN delivered_at IS NULL AND failed_at IS NULL THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END), 0) \
         FROM webhook_deliveries",
    )
    .fetch_one(pool)
    .await
}
