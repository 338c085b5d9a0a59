//! Sightline's HTTP API and composition root.
//!
//! This crate wires the others together: it loads settings, opens the database, signs and checks
//! tokens, and serves the JSON API, the operations endpoints and the browser app. It is the only
//! crate that knows HTTP status codes, SQL and JWT.
//!
//! - [`app`] builds the router from an [`AppState`]; tests drive it directly or through a
//!   [`Server`] bound to port 0.
//! - [`Server::build`] prepares everything from [`Settings`]; [`Server::run`] serves until the
//!   shutdown future completes, then drains in-flight requests.
//! - [`cli`] holds the operator commands of the `sightline` binary.

mod agent;
pub mod auth;
mod calendar;
pub mod cli;
mod client_addr;
mod cluster;
mod data_rights;
mod documents;
mod editor;
mod email;
mod error;
mod extract;
mod handoff;
mod invitations;
mod metrics;
mod openapi;
mod pairing;
mod proctoring;
mod recording;
mod relay;
mod rooms;
mod routes;
mod rtc;
mod runs;
mod secrets;
mod serve;
mod state;
mod store;
pub mod telemetry;
mod turn;
mod web;
mod webhooks;
pub mod worker;
mod workspace;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::from_fn_with_state;
use secrecy::ExposeSecret;
use sightline_config::{Settings, StorageKind};
use sightline_recorder::{LocalStore, ObjectStore, Recorder, S3Config, S3Store};
use sightline_sfu::{TcpConfig, TrackSpace, WorkerConfig, WorkerHandle};
use sightline_signaling::Hub;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use crate::error::ApiError;
pub use crate::openapi::ApiDoc;
use crate::proctoring::Proctoring;
use crate::recording::Recordings;
pub use crate::state::AppState;
pub use crate::store::Db;
pub use crate::store::users::AccountRole;

/// Content Security Policy for everything we serve: only our own scripts, styles and
/// connections; nothing may frame us. The app shell (`index.html`) adds a per-response nonce to
/// `style-src` for the style elements the code editor creates (see `web::serve`).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; font-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The full router with every layer, ready to serve.
pub fn app(state: AppState) -> Router {
    let settings = &state.settings;
    Router::new()
        .merge(routes::auth::router(&state))
        .merge(routes::me::router())
        .merge(routes::interviews::router())
        .merge(routes::live::router())
        .merge(routes::candidates::router())
        .merge(routes::invites::router(&state))
        .merge(routes::phone::router(&state))
        .merge(routes::recordings::router())
        .merge(routes::proctoring::router())
        .merge(routes::workspace::router())
        .merge(routes::questions::router())
        .merge(routes::scorecards::router())
        .merge(routes::admin::router())
        .merge(routes::ops::router())
        .merge(rtc::router())
        .fallback(web::serve)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(from_fn_with_state(
            state.clone(),
            extract::refuse_oversized_bodies,
        ))
        .layer(from_fn_with_state(state.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(settings.http.max_body_bytes))
        .layer(cors(&settings.http.cors_allowed_origins))
        .layer(security_header(header::CONTENT_SECURITY_POLICY, CSP))
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(security_header(header::REFERRER_POLICY, "no-referrer"))
        .layer(security_header(
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ))
        .layer(security_header(
            HeaderName::from_static("permissions-policy"),
            "camera=(self), microphone=(self), display-capture=(self), geolocation=()",
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(telemetry::request_span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

fn cors(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .allow_credentials(true)
        .max_age(Duration::from_secs(600))
}

/// Opens the configured database and applies pending migrations.
pub async fn open_database(settings: &Settings) -> Result<Db, ApiError> {
    std::fs::create_dir_all(&settings.data.dir)?;
    let db = Db::connect(&settings.database_url(), settings.database.max_connections).await?;
    db.migrate().await?;
    Ok(db)
}

/// Starts the SFU workers (one UDP socket each) and the signaling hub over them.
fn start_media(settings: &sightline_config::RtcSettings) -> Result<Hub, ApiError> {
    let (events_tx, events_rx) = tokio::sync::mpsc::channel(sightline_sfu::EVENT_QUEUE);
    // Drawn at each start: this run's track ids are its own, across nodes and restarts.
    let mut drawn = [0u8; 4];
    getrandom::fill(&mut drawn)
        .map_err(|e| ApiError::Internal(format!("drawing the track space: {e}")))?;
    let process = u32::from_le_bytes(drawn) | 0x0080_0000;
    let mut workers = Vec::new();
    for index in 0..settings.worker_count() {
        let config = WorkerConfig {
            bind: settings.worker_addr(index),
            tcp: settings.worker_tcp_addr(index).map(|bind| TcpConfig {
                bind,
                max_connections: settings.tcp_max_connections,
            }),
            public_ips: settings.public_ips.clone(),
            bandwidth_estimation: settings.bandwidth_estimation,
            stopped_line_limit: settings.max_stopped_m_lines,
            track_space: TrackSpace::of(process, u8::try_from(index).unwrap_or(u8::MAX)),
        };
        // The thread runs until the hub, and with it every handle, is dropped.
        let (worker, _thread) = WorkerHandle::spawn(index, config, events_tx.clone())
            .map_err(|e| ApiError::Internal(format!("starting media worker {index}: {e}")))?;
        tracing::info!(worker = index, addr = %worker.local_addr(), tcp = ?worker.tcp_addr(), "media worker started");
        workers.push(worker);
    }
    Ok(Hub::new(workers, events_rx))
}

/// The recorder over the configured store, spooling under `data.dir`.
fn recorder(settings: &Settings) -> Recorder {
    Recorder::new(recorder_store(settings), settings.data.dir.join("spool"))
}

/// The object store recordings go to, as `[recording]` configures it.
pub(crate) fn recorder_store(settings: &Settings) -> Arc<dyn ObjectStore> {
    match settings.recording.storage {
        StorageKind::Local => Arc::new(LocalStore::new(settings.data.dir.join("recordings"))),
        StorageKind::S3 => {
            let s3 = &settings.recording.s3;
            let store = S3Store::new(&S3Config {
                endpoint: s3.endpoint.clone(),
                region: s3.region.clone(),
                bucket: s3.bucket.clone(),
                path_style: s3.path_style,
                access_key: s3.access_key.clone(),
                secret_key: s3
                    .secret_key
                    .as_ref()
                    .map(|k| k.expose_secret().to_owned())
                    .unwrap_or_default(),
            });
            // A missing bucket is created; an unreachable store is no reason not to start
            // (recordings spool until it answers).
            let checking = store.clone();
            tokio::spawn(async move {
                if let Err(err) = checking.ensure_bucket().await {
                    tracing::warn!(%err, "recording bucket not reachable yet");
                }
            });
            Arc::new(store)
        }
    }
}

/// Waits until this node has nothing left to serve (no room up, no placement held, no recording
/// running or being finished, no proctoring running), `most` has passed or `force` completes.
async fn drain(state: &AppState, most: Duration, force: impl Future<Output = ()>) {
    let until = tokio::time::Instant::now() + most;
    tokio::pin!(force);
    loop {
        let rooms = state.hub.load().rooms;
        let placements = state.hosted_rooms.as_ref().is_some_and(|h| !h.is_empty());
        let agents = state.recordings.busy() || state.proctoring.busy();
        if rooms == 0 && !placements && !agents {
            tracing::info!("drained: nothing left to serve here");
            return;
        }
        if tokio::time::Instant::now() >= until {
            tracing::warn!(
                rooms,
                agents,
                "stopping with work left: cluster.max_drain_secs passed"
            );
            return;
        }
        tokio::select! {
            () = &mut force => {
                tracing::warn!(rooms, agents, "stopping with work left: asked again");
                return;
            }
            () = tokio::time::sleep(DRAIN_CHECK) => {}
        }
    }
}

/// How often a draining node looks whether its rooms have ended.
const DRAIN_CHECK: Duration = Duration::from_millis(500);

/// A prepared server: database migrated, secret loaded, sockets bound.
pub struct Server {
    listener: TcpListener,
    /// The metrics-only listener, when `metrics.addr` asks for one.
    metrics_listener: Option<TcpListener>,
    limits: serve::Limits,
    connections: Arc<serve::ConnectionStats>,
    state: AppState,
    /// This node's heartbeats, in a cluster.
    heartbeats: Option<tokio::task::JoinHandle<()>>,
    /// Joins other nodes relay to rooms hosted here, in a cluster.
    dials: Option<sightline_cluster::Dials<relay::RelayedJoin>>,
    /// Editor sockets other nodes relay to documents held here, in a cluster.
    editor_dials: Option<sightline_cluster::Dials<editor::EditorDial>>,
    /// What other nodes ask of rooms hosted here, in a cluster.
    commands: Option<sightline_cluster::NodeCommands<rooms::NodeCommand>>,
}

impl Server {
    /// Prepares everything `settings` describe; fails before binding if anything is missing.
    pub async fn build(settings: Settings) -> Result<Server, ApiError> {
        std::fs::create_dir_all(&settings.data.dir)?;
        let secret = secrets::jwt_secret(&settings)?;
        let db = open_database(&settings).await?;
        let tokens = auth::TokenKeys::new(
            secret.expose_secret().as_bytes(),
            settings.auth.access_token_ttl_secs,
            settings.auth.join_token_ttl_secs,
        );
        let hub = start_media(&settings.rtc)?;
        let mut membership = cluster::join(&settings, &hub).await?;
        let handoff = match &membership {
            Some(membership) if settings.workers.any_remote() => Some(Arc::new(
                handoff::setup(&settings, &membership.cluster).await?,
            )),
            _ => None,
        };
        let remote = handoff.clone().filter(|_| settings.workers.remote());
        let recordings = Recordings::new(
            recorder(&settings),
            hub.clone(),
            db.clone(),
            settings.recording.retention_days,
            membership.as_ref().map(|m| m.cluster.node().to_string()),
            remote,
        );
        // Ends with the hosted rooms (when the server is dropped).
        if let Some(newly_hosted) = membership.as_mut().and_then(|m| m.newly_hosted.take()) {
            tokio::spawn(recording::carry_over(recordings.clone(), newly_hosted));
        }
        let proctoring = Proctoring::new(
            hub.clone(),
            db.clone(),
            Arc::clone(recordings.recorder().store()),
            &settings.proctoring,
            handoff.filter(|_| settings.workers.proctoring_remote()),
        );
        proctoring.close_left_open().await;
        let mailer = email::Mailer::new(&settings.email, db.clone())?;
        let webhooks = webhooks::Webhooks::new(&settings.webhooks, db.clone(), secret.clone())?;
        let workspaces =
            workspace::Workspaces::new(db.clone(), sightline_collab::Limits::default());
        let runs = runs::Runs::new(&settings.execution);
        match store::workspace::fail_unfinished(db.pool(), jiff::Timestamp::now().as_millisecond())
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                runs = n,
                "runs the previous process left unfinished marked failed"
            ),
            Err(err) => tracing::warn!(%err, "marking unfinished runs"),
        }
        let listener = TcpListener::bind(settings.http.addr).await?;
        let metrics_listener = match settings.metrics.addr {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let limits = serve::Limits::from_settings(&settings.http);
        let connections = Arc::new(serve::ConnectionStats::default());
        // What a previous run left recording is found now, before any new recording starts,
        // and finished (as interrupted) in the background.
        let unfinished = recordings.recorder().unfinished();
        let recovering = recordings.clone();
        tokio::spawn(async move { recovering.recover(unfinished).await });
        let state = AppState::new(
            db,
            tokens,
            settings,
            state::Services {
                hub,
                cluster: membership.as_ref().map(|m| m.cluster.clone()),
                hosted_rooms: membership.as_ref().map(|m| m.rooms.clone()),
                recordings,
                proctoring,
                workspaces,
                runs,
                mailer: mailer.clone(),
                webhooks,
            },
            connections.clone(),
        );
        let (heartbeats, dials, editor_dials, commands) = match membership {
            Some(m) => (
                Some(m.heartbeats),
                Some(m.dials),
                Some(m.editor_dials),
                Some(m.commands),
            ),
            None => (None, None, None, None),
        };
        Ok(Server {
            listener,
            metrics_listener,
            limits,
            connections,
            state,
            heartbeats,
            dials,
            editor_dials,
            commands,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ApiError> {
        Ok(self.listener.local_addr()?)
    }

    /// The metrics listener's address, when there is one.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, ApiError> {
        Ok(match &self.metrics_listener {
            Some(listener) => Some(listener.local_addr()?),
            None => None,
        })
    }

    /// The state handlers see.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, finishes in-flight requests, then closes the database.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ApiError> {
        self.run_until(shutdown, std::future::pending()).await
    }

    /// Serves until `shutdown` completes. In a cluster the node then drains first: it takes no
    /// new rooms, `/readyz` answers 503, and it keeps serving the rooms it hosts (and finishing
    /// their recordings) until they end, `cluster.max_drain_secs` pass or `force` completes (a
    /// second SIGTERM).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
        force: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ApiError> {
        let router = app(self.state.clone());
        let retention = tokio::spawn(recording::retention(
            self.state.recordings.clone(),
            self.state.settings.recording.retention_days,
        ));
        let proctoring_retention = tokio::spawn(proctoring::retention(
            self.state.proctoring.clone(),
            self.state.settings.proctoring.retention_days,
        ));
        let code_retention = tokio::spawn(workspace::retention(
            self.state.db.clone(),
            self.state.settings.execution.code_retention_days,
        ));
        let spent_tokens = tokio::spawn(rtc::sweep_expired_tokens(self.state.db.pool().clone()));
        let mail_stop = tokio_util::sync::CancellationToken::new();
        let sending = tokio::spawn(self.state.mailer.clone().run(mail_stop.clone()));
        let delivering = tokio::spawn(self.state.webhooks.clone().run(mail_stop.clone()));
        let reminding = tokio::spawn(invitations::send_reminders(self.state.clone()));
        let watching = tokio::spawn(webhooks::watch_rooms(
            self.state.hub.clone(),
            self.state.webhooks.clone(),
        ));
        let watching_removals = tokio::spawn(workspace::watch_removals(
            self.state.hub.clone(),
            self.state.workspaces.clone(),
        ));
        // The metrics listener is small and trusted: plain axum, stopped with the main one.
        let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics = self.metrics_listener.map(|listener| {
            let router = routes::ops::metrics_listener_router(self.state.clone());
            tokio::spawn(async move {
                let stopped = async {
                    let _ = metrics_stopped.await;
                };
                axum::serve(listener, router)
                    .with_graceful_shutdown(stopped)
                    .await
            })
        });
        let relaying = self
            .dials
            .map(|dials| tokio::spawn(relay::host(self.state.clone(), dials)));
        let relaying_editors = self
            .editor_dials
            .map(|dials| tokio::spawn(editor::host(self.state.clone(), dials)));
        let commanded = self
            .commands
            .map(|commands| tokio::spawn(rooms::serve(self.state.clone(), commands)));
        // Asked to stop, a node says so first (the others place no new room on it) and keeps
        // its rooms for a while.
        let draining = self.state.clone();
        let shutdown = async move {
            shutdown.await;
            if let Some(cluster) = &draining.cluster {
                tracing::info!(node = %cluster.node(), "draining: no new rooms here");
                if let Err(err) = cluster.drain().await {
                    tracing::warn!(%err, "the draining heartbeat did not reach NATS");
                }
                let most = Duration::from_secs(draining.settings.cluster.max_drain_secs);
                drain(&draining, most, force).await;
            }
        };
        let served = serve::serve(
            self.listener,
            router,
            self.limits,
            self.connections,
            shutdown,
        )
        .await;
        if let Some(heartbeats) = self.heartbeats {
            heartbeats.abort();
        }
        if let Some(relaying) = relaying {
            relaying.abort();
        }
        if let Some(relaying) = relaying_editors {
            relaying.abort();
        }
        if let Some(commanded) = commanded {
            commanded.abort();
        }
        let _ = metrics_stop.send(());
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        retention.abort();
        proctoring_retention.abort();
        code_retention.abort();
        spent_tokens.abort();
        // Deliveries under way finish (bounded by their timeouts), then the senders stop.
        watching.abort();
        watching_removals.abort();
        reminding.abort();
        mail_stop.cancel();
        let _ = sending.await;
        let _ = delivering.await;
        served?;
        self.state.db.close().await;
        Ok(())
    }
}
