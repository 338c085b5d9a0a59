//! Spawning the real server for a test, with a fresh database, and typed request helpers.
//!
//! Every test gets its own data directory and its own database: a SQLite file, or a new
//! PostgreSQL database created on the server at `SIGHTLINE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and dropped when the test ends, pass or fail.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use figment::Figment;
use figment::providers::{Format, Toml};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use sightline_api::{AccountRole, Server, cli};
use sightline_config::{DEFAULT_TOML, Settings};
use sightline_signaling::Hub;
use sqlx::Connection;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The JWT secret every test server uses, so tests can forge and check tokens.
pub const TEST_SECRET: &str = "test-secret-test-secret-test-secret-0123";
/// A password that passes validation.
pub const PASSWORD: &str = "correct horse battery staple";

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// The production database.
    Postgres,
}

/// Generates one `#[tokio::test]` per backend for an `async fn(Backend) -> Result<()>`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() -> anyhow::Result<()> {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() -> anyhow::Result<()> {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        )+
    };
}

fn postgres_admin_url() -> String {
    std::env::var("SIGHTLINE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database that exists for one test.
struct TestDb {
    url: String,
    postgres_name: Option<String>,
}

impl TestDb {
    async fn create(backend: Backend, data_dir: &TempDir) -> Result<TestDb> {
        match backend {
            Backend::Sqlite => Ok(TestDb {
                url: format!(
                    "sqlite://{}?mode=rwc",
                    data_dir.path().join("sightline.db").display()
                ),
                postgres_name: None,
            }),
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("sl_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .with_context(|| format!("connecting to PostgreSQL at {admin}"))?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                Ok(TestDb {
                    url: format!("{base}/{name}"),
                    postgres_name: Some(name),
                })
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop runs on panics too, inside a runtime; do the async cleanup on a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let mut conn = sqlx::PgConnection::connect(&postgres_admin_url())
                    .await
                    .ok()?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .ok()?;
                conn.close().await.ok()
            })
        });
        let _ = cleanup.join();
    }
}

/// A running server plus the database and directory it owns.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The metrics listener's `/metrics` URL, when `metrics.addr` is set.
    pub metrics_url: Option<String>,
    /// Settings it runs with.
    pub settings: Settings,
    /// Plain client (no cookie store): tests see cookies as headers.
    pub client: reqwest::Client,
    /// The server's rooms, for what only in-process consumers do (media taps).
    pub hub: Hub,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    db: TestDb,
    data_dir: TempDir,
}

/// A signed-in session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Bearer token.
    pub access: String,
    /// Refresh token.
    pub refresh: String,
    /// The `me` object from the response.
    pub me: Value,
}

/// The bearer token the test servers' `/metrics` asks for.
pub const METRICS_TOKEN: &str = "metrics-token-for-tests-only";

/// The face models (scripts/test installs them into the repository's `models/`).
pub fn models_dir() -> String {
    std::env::var("SIGHTLINE_MODELS_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../models").to_owned())
}

/// A range of sandbox user ids of its own for each test server: servers run side by side in
/// one test process, and a run's process limit counts per user id.
fn sandbox_uids() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    61_000 + 64 * NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Settings as `SIGHTLINE__…` environment variables would give them, without touching the test
/// process's environment (shared by every test): some settings, like the TURN secret, are
/// accepted from the environment only.
struct Environment(Vec<(String, Value)>);

impl figment::Provider for Environment {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("environment variable(s), as a test sets them")
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let mut figment = Figment::new();
        for (key, value) in &self.0 {
            figment = figment.merge((key.as_str(), value.clone()));
        }
        figment.data()
    }
}

fn settings_for(
    data_dir: &TempDir,
    db_url: &str,
    overrides: &[(&str, Value)],
    environment: &[(&str, Value)],
) -> Result<Settings> {
    let mut figment = Figment::from(Toml::string(DEFAULT_TOML))
        .merge(("http.addr", "127.0.0.1:0"))
        .merge(("data.dir", data_dir.path().display().to_string()))
        .merge(("database.url", db_url))
        .merge(("database.max_connections", 5))
        .merge(("rtc.workers", 1))
        .merge(("auth.jwt_secret", TEST_SECRET))
        .merge(("public.base_url", "http://sightline.test"))
        .merge(("metrics.token", METRICS_TOKEN))
        .merge(("proctoring.models_dir", models_dir()))
        .merge(("execution.sandbox_uid", sandbox_uids()));
    for (key, value) in overrides {
        figment = figment.merge((*key, value.clone()));
    }
    let environment = environment
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.clone()))
        .collect();
    figment = figment.merge(Environment(environment));
    Ok(Settings::from_figment(figment)?)
}

impl TestApp {
    /// Starts a server on a fresh database with the default settings.
    pub async fn spawn(backend: Backend) -> Result<TestApp> {
        TestApp::spawn_with(backend, &[]).await
    }

    /// Starts a server on a fresh database with some settings overridden.
    pub async fn spawn_with(backend: Backend, overrides: &[(&str, Value)]) -> Result<TestApp> {
        TestApp::spawn_with_environment(backend, overrides, &[]).await
    }

    /// Starts a server with some settings overridden, and others given as the environment would.
    pub async fn spawn_with_environment(
        backend: Backend,
        overrides: &[(&str, Value)],
        environment: &[(&str, Value)],
    ) -> Result<TestApp> {
        let data_dir = tempfile::tempdir()?;
        let db = TestDb::create(backend, &data_dir).await?;
        let settings = settings_for(&data_dir, &db.url, overrides, environment)?;
        TestApp::start(settings, db, data_dir).await
    }

    /// Starts a second server on this one's database (a node beside it in a cluster), with a
    /// directory of its own and some settings given as the environment would.
    pub async fn spawn_beside(&self, environment: &[(&str, Value)]) -> Result<TestApp> {
        let data_dir = tempfile::tempdir()?;
        // The first server owns the database and drops it.
        let db = TestDb {
            url: self.db.url.clone(),
            postgres_name: None,
        };
        let settings = settings_for(&data_dir, &db.url, &[], environment)?;
        TestApp::start(settings, db, data_dir).await
    }

    async fn start(settings: Settings, db: TestDb, data_dir: TempDir) -> Result<TestApp> {
        let server = Server::build(settings.clone()).await?;
        let addr: SocketAddr = server.local_addr()?;
        let metrics_url = server
            .metrics_addr()?
            .map(|addr| format!("http://{addr}/metrics"));
        let hub = server.state().hub.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(err) = server.run(shutdown).await {
                eprintln!("test server stopped with an error: {err}");
            }
        });
        Ok(TestApp {
            base: format!("http://{addr}"),
            metrics_url,
            settings,
            client: reqwest::Client::new(),
            hub,
            shutdown: Some(tx),
            task: Some(task),
            db,
            data_dir,
        })
    }

    /// Stops the server gracefully and starts a new one on the same database and directory.
    pub async fn restart(mut self) -> Result<TestApp> {
        self.stop_server().await;
        let settings = self.settings.clone();
        let (db, data_dir) = self.into_parts();
        TestApp::start(settings, db, data_dir).await
    }

    /// Stops the server gracefully (as SIGTERM does) and waits until it has.
    pub async fn stop(mut self) {
        self.stop_server().await;
    }

    /// Asks the server to stop (as SIGTERM does) without waiting; see [`TestApp::stopped`].
    pub fn ask_to_stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Whether the server stopped within `wait`.
    pub async fn stopped(&mut self, wait: std::time::Duration) -> bool {
        let Some(task) = self.task.as_mut() else {
            return true;
        };
        if tokio::time::timeout(wait, task).await.is_ok() {
            self.task = None;
            return true;
        }
        false
    }

    fn into_parts(mut self) -> (TestDb, TempDir) {
        let db = TestDb {
            url: self.db.url.clone(),
            postgres_name: self.db.postgres_name.take(),
        };
        let data_dir = std::mem::replace(&mut self.data_dir, TempDir::new().expect("tempdir"));
        (db, data_dir)
    }

    async fn stop_server(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// A direct connection to this test's database, to look behind the API (what is stored)
    /// or to move a row's time (expire it).
    pub async fn db(&self) -> Result<sqlx::AnyConnection> {
        sqlx::any::install_default_drivers();
        let url = self.settings.database_url();
        Ok(sqlx::AnyConnection::connect(secrecy::ExposeSecret::expose_secret(&url)).await?)
    }

    /// Sends `request` while `table` is renamed away (every statement on it fails, as on a
    /// database in trouble), so the request fails at the step that uses it; names it back
    /// before returning the answer.
    pub async fn with_table_hidden(
        &self,
        table: &str,
        request: impl Future<Output = Result<Response>>,
    ) -> Result<Response> {
        let hidden = format!("{table}_hidden");
        self.rename_table(table, &hidden).await?;
        let answer = request.await;
        self.rename_table(&hidden, table).await?;
        answer
    }

    async fn rename_table(&self, from: &str, to: &str) -> Result<()> {
        let mut db = self.db().await?;
        // Names the tests give, not input.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {from} RENAME TO {to}"
        )))
        .execute(&mut db)
        .await?;
        db.close().await?;
        Ok(())
    }

    /// Absolute URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request with an optional JSON body and bearer token.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Result<Response> {
        let mut request = self.client.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Ok(request.send().await?)
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> Result<Response> {
        self.request(Method::POST, path, Some(body), token).await
    }

    /// The metrics exposition, read with the test's metrics token.
    pub async fn metrics(&self) -> Result<String> {
        let response = self.get("/metrics", Some(METRICS_TOKEN)).await?;
        anyhow::ensure!(
            response.status() == StatusCode::OK,
            "metrics: {}",
            response.status()
        );
        Ok(response.text().await?)
    }

    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, body: Value, token: Option<&str>) -> Result<Response> {
        self.request(Method::PUT, path, Some(body), token).await
    }

    /// GET with a token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Result<Response> {
        self.request(Method::GET, path, None, token).await
    }

    /// Registers a candidate account.
    pub async fn register(&self, email: &str) -> Result<()> {
        let response = self
            .post(
                "/api/auth/register",
                json!({ "email": email, "password": PASSWORD, "display_name": name_of(email) }),
                None,
            )
            .await?;
        anyhow::ensure!(
            response.status() == StatusCode::ACCEPTED,
            "register: {}",
            response.status()
        );
        Ok(())
    }

    /// Signs in; fails the test unless it works.
    pub async fn login(&self, email: &str) -> Result<Session> {
        let response = self
            .post(
                "/api/auth/login",
                json!({ "email": email, "password": PASSWORD }),
                None,
            )
            .await?;
        session_from(response).await
    }

    /// Schedules an interview as the holder of `access`; fails the test unless it is created.
    pub async fn schedule(&self, access: &str, body: Value) -> Result<Value> {
        let response = self.post("/api/interviews", body, Some(access)).await?;
        expect_json(response, StatusCode::CREATED).await
    }

    /// Creates an account with a role through the operator command path, then signs in.
    pub async fn user_with_role(&self, email: &str, role: AccountRole) -> Result<Session> {
        cli::create_user(
            &self.settings,
            email,
            &name_of(email),
            role,
            PASSWORD.to_owned(),
        )
        .await?;
        self.login(email).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A display name derived from an email's local part.
pub fn name_of(email: &str) -> String {
    email.split('@').next().unwrap_or(email).to_owned()
}

/// Reads a session response, failing unless it is a 200 with tokens. The refresh token comes
/// from the body when the client asked for it there, else from the cookie, as a browser gets it.
pub async fn session_from(response: Response) -> Result<Session> {
    let status = response.status();
    let cookie = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("sightline_refresh="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let body: Value = response.json().await?;
    anyhow::ensure!(
        status == StatusCode::OK,
        "expected a session, got {status}: {body}"
    );
    let refresh = match body.get("refresh_token") {
        Some(token) => text(token)?,
        None => cookie.with_context(|| format!("no refresh token in body or cookie: {body}"))?,
    };
    Ok(Session {
        access: text(&body["access_token"])?,
        refresh,
        me: body["me"].clone(),
    })
}

/// A JSON string value, or an error naming what was there.
pub fn text(value: &Value) -> Result<String> {
    value
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("expected a string, got {value}"))
}

/// Asserts the status and the `error.code` of an error response; returns the body.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> Result<Value> {
    let actual = response.status();
    let body: Value = response.json().await.context("error body is JSON")?;
    anyhow::ensure!(
        actual == status && body["error"]["code"] == code,
        "expected {status} {code}, got {actual}: {body}"
    );
    anyhow::ensure!(body["error"]["message"].is_string(), "no message: {body}");
    Ok(body)
}

/// The field names an error body lists under `error.fields`.
pub fn error_fields(body: &Value) -> Vec<String> {
    body["error"]["fields"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a JSON body after checking the status.
pub async fn expect_json(response: Response, status: StatusCode) -> Result<Value> {
    let actual = response.status();
    let body: Value = response.json().await?;
    anyhow::ensure!(actual == status, "expected {status}, got {actual}: {body}");
    Ok(body)
}

/// A create-interview body with one candidate, starting in an hour.
pub fn interview_body(candidate_email: &str) -> Value {
    let start = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(1))
        .expect("an hour from now");
    json!({
        "title": "Backend engineer, systems round",
        "scheduled_start": start.to_string(),
        "duration_minutes": 60,
        "time_zone": "Europe/Paris",
        "participants": [
            { "email": candidate_email, "display_name": "Casey Candidate", "role": "candidate" }
        ]
    })
}

/// The token part of an invite URL.
pub fn invite_token(url: &str) -> Result<String> {
    url.rsplit_once("/join/")
        .map(|(_, t)| t.to_owned())
        .with_context(|| format!("not an invite URL: {url}"))
}

const BUCKET: &str = "sightline-recordings";
const ACCESS_KEY: &str = "sightline-test";
const SECRET_KEY: &str = "sightline-test-secret-key";

/// An `s3s-fs` server on a free loopback port (objects are files under `dir/bucket/`).
pub struct S3Fs {
    child: Child,
    endpoint: String,
    dir: tempfile::TempDir,
}

impl S3Fs {
    pub fn start() -> Result<S3Fs> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join(BUCKET))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let binary = std::env::var("SIGHTLINE_S3S_FS").unwrap_or_else(|_| "s3s-fs".into());
        let child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {binary} (scripts/test installs it)"))?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(S3Fs {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            dir,
        })
    }

    /// The settings that point a test server's recordings at this server.
    pub fn settings(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("recording.storage", json!("s3")),
            ("recording.s3.endpoint", json!(self.endpoint)),
            ("recording.s3.bucket", json!(BUCKET)),
            ("recording.s3.access_key", json!(ACCESS_KEY)),
            ("recording.s3.secret_key", json!(SECRET_KEY)),
        ]
    }

    /// The directory the bucket's objects are files in.
    pub fn bucket(&self) -> PathBuf {
        self.dir.path().join(BUCKET)
    }
}

impl Drop for S3Fs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
