//! What every handler can reach: database, token keys, settings, metrics, limiters.

use std::ops::Deref;
use std::sync::Arc;

use sightline_cluster::Cluster;
use sightline_config::Settings;
use sightline_signaling::Hub;

use crate::auth::TokenKeys;
use crate::auth::rate_limit::AccountLimiter;
use crate::cluster::HostedRooms;
use crate::documents::Documents;
use crate::email::Mailer;
use crate::metrics::Metrics;
use crate::proctoring::Proctoring;
use crate::recording::Recordings;
use crate::rtc::Admissions;
use crate::runs::Runs;
use crate::serve::ConnectionStats;
use crate::store::Db;
use crate::webhooks::Webhooks;
use crate::workspace::Workspaces;

/// Shared application state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

/// The parts of [`AppState`].
pub struct StateInner {
    /// Database pool.
    pub db: Db,
    /// JWT keys and lifetimes.
    pub tokens: TokenKeys,
    /// Settings in force.
    pub settings: Settings,
    /// Prometheus registry and instruments.
    pub metrics: Metrics,
    /// Per-account sign-in limiter.
    pub account_limiter: AccountLimiter,
    /// Every room and the media workers.
    pub hub: Hub,
    /// This node's membership of a cluster; `None` when it runs alone.
    pub cluster: Option<Cluster>,
    /// The rooms this node hosts in its cluster; `None` when it runs alone.
    pub hosted_rooms: Option<HostedRooms>,
    /// Used join tokens and join rates, for `/rtc`.
    pub admissions: Admissions,
    /// Recording controllers and the recorder.
    pub recordings: Recordings,
    /// Proctoring controllers and the face detectors.
    pub proctoring: Proctoring,
    /// The interviews' shared code documents held here.
    pub workspaces: Workspaces,
    /// Each interview's document wherever it is held (here, or on its room's host).
    pub documents: Documents,
    /// The code runner.
    pub runs: Runs,
    /// The outbox and its sender.
    pub mailer: Mailer,
    /// The webhook deliveries and their sender.
    pub webhooks: Webhooks,
}

/// The long-lived services [`AppState`] bundles.
pub struct Services {
    /// Every room and the media workers.
    pub hub: Hub,
    /// This node's membership of a cluster; `None` when it runs alone.
    pub cluster: Option<Cluster>,
    /// The rooms this node hosts in its cluster.
    pub hosted_rooms: Option<HostedRooms>,
    /// Recording controllers and the recorder.
    pub recordings: Recordings,
    /// Proctoring controllers and the face detectors.
    pub proctoring: Proctoring,
    /// The interviews' shared code documents.
    pub workspaces: Workspaces,
    /// The code runner.
    pub runs: Runs,
    /// The outbox and its sender.
    pub mailer: Mailer,
    /// The webhook deliveries and their sender.
    pub webhooks: Webhooks,
}

impl AppState {
    /// Bundles the parts.
    pub fn new(
        db: Db,
        tokens: TokenKeys,
        settings: Settings,
        services: Services,
        connections: Arc<ConnectionStats>,
    ) -> AppState {
        let Services {
            hub,
            cluster,
            hosted_rooms,
            recordings,
            proctoring,
            workspaces,
            runs,
            mailer,
            webhooks,
        } = services;
        let account_limiter = AccountLimiter::new(&settings.auth.rate_limit);
        let documents = Documents::new(
            workspaces.clone(),
            cluster.clone().zip(hosted_rooms.clone()),
        );
        AppState {
            inner: Arc::new(StateInner {
                db,
                tokens,
                settings,
                metrics: Metrics::new(
                    &hub,
                    cluster.clone(),
                    connections,
                    recordings.link_stats().or_else(|| proctoring.link_stats()),
                ),
                account_limiter,
                hub,
                cluster,
                hosted_rooms,
                admissions: Admissions::default(),
                recordings,
                proctoring,
                workspaces,
                documents,
                runs,
                mailer,
                webhooks,
            }),
        }
    }

    /// Takes `identity` out of `room`, wherever in the cluster the room runs.
    pub async fn remove_participant(
        &self,
        room: &sightline_signaling::RoomId,
        identity: &str,
        reason: sightline_signaling::LeaveReason,
    ) {
        crate::rooms::remove_participant(self, room, identity, reason).await;
    }
}

impl Deref for AppState {
    type Target = StateInner;

    fn deref(&self) -> &StateInner {
        &self.inner
    }
}
