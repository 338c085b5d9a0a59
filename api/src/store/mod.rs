//! Persistence: one code path for SQLite (the embedded default) and PostgreSQL.
//!
//! Queries go through sqlx's `Any` driver and are written in the SQL both databases accept
//! (`$n` placeholders, TEXT ids, BIGINT unix-second times). Each submodule owns one table and
//! returns plain rows; deciding who may see or change them is the routes' job, not this module's.

pub mod audit;
pub mod data_rights;
pub mod email_verifications;
pub mod interviews;
pub mod invites;
pub mod join_tokens;
pub mod outbox;
pub mod password_resets;
pub mod phone_pairings;
pub mod proctoring;
pub mod questions;
pub mod recordings;
pub mod refresh_tokens;
pub mod scorecards;
pub mod users;
pub mod webhooks;
pub mod workspace;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{AnyPool, Executor};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// A pool of connections to Sightline's database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
}

impl Db {
    /// Connects to `url` (`sqlite:` or `postgres:`). SQLite connections enforce foreign keys and use
    /// WAL so readers never wait for the writer.
    pub async fn connect(url: &SecretString, max_connections: u32) -> Result<Db, sqlx::Error> {
        install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    if conn.backend_name() == "SQLite" {
                        conn.execute(
                            "PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL; \
                             PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(url.expose_secret())
            .await?;
        Ok(Db { pool })
    }

    /// Applies the embedded migrations that have not run yet.
    pub async fn migrate(&self) -> Result<(), MigrateError> {
        MIGRATOR.run(&self.pool).await
    }

    /// The underlying pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A trivial round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Closes every connection; waits for those in use.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Whether `err` is a unique-constraint violation (the one place that knows how to ask).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

/// Current time as stored: unix seconds.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A fresh time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
