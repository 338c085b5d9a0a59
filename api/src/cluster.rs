//! This server as a node of a cluster (`[cluster]`): joining through NATS at start, heartbeats
//! that carry how busy it is, draining when it is asked to stop, and [`HostedRooms`], which
//! makes sure a room runs on the one node its placement names. Without a `nats_url` nothing
//! here runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sightline_cluster::{
    Cluster, ClusterConfig, ClusterError, Dials, Load, NatsAuth, NatsTls, NodeCommands, NodeId,
    NodeState, Placement, Region, RoomGuard, RoomKey, Service,
};
use sightline_config::Settings;
use sightline_signaling::{Hub, RoomId};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::error::ApiError;

/// This node's membership and its heartbeat task.
pub struct Membership {
    /// The cluster handle routes use.
    pub cluster: Cluster,
    /// The rooms it hosts.
    pub rooms: HostedRooms,
    /// Beats until aborted (when the server stops).
    pub heartbeats: JoinHandle<()>,
    /// Joins other nodes relay to rooms hosted here.
    pub dials: Dials<crate::relay::RelayedJoin>,
    /// Editor sockets other nodes relay to documents held here.
    pub editor_dials: Dials<crate::editor::EditorDial>,
    /// What other nodes ask of rooms hosted here.
    pub commands: NodeCommands<crate::rooms::NodeCommand>,
    /// Each room as it comes to be hosted here (placed here for the first time, or again after
    /// it was lost), for whoever takes it first.
    pub newly_hosted: Option<mpsc::UnboundedReceiver<RoomId>>,
}

/// How this process (a node, or a worker with its own `node_id`) reaches the cluster
/// `settings` name.
pub(crate) fn config(settings: &Settings) -> Result<ClusterConfig, ApiError> {
    let config = &settings.cluster;
    let node = if config.node_id.is_empty() {
        host_name()
    } else {
        config.node_id.clone()
    };
    let node =
        NodeId::new(&node).map_err(|err| ApiError::Internal(format!("cluster.node_id: {err}")))?;
    let region = Region::new(&config.region)
        .map_err(|err| ApiError::Internal(format!("cluster.region: {err}")))?;
    let advertise_url = if config.advertise_url.is_empty() {
        settings.public.base_url.to_string()
    } else {
        config.advertise_url.clone()
    };
    let nats_auth = match (
        &config.nats_password,
        &config.nats_token,
        &config.nats_nkey_seed,
    ) {
        (Some(password), _, _) => NatsAuth::UserPassword {
            user: config.nats_user.clone(),
            password: password.clone(),
        },
        (None, Some(token), _) => NatsAuth::Token(token.clone()),
        (None, None, Some(seed)) => NatsAuth::NKey(seed.clone()),
        (None, None, None) => NatsAuth::None,
    };
    let nats_tls = NatsTls {
        required: config.nats_require_tls,
        ca_file: config.nats_ca_file.clone(),
        client_cert: config
            .nats_cert_file
            .clone()
            .zip(config.nats_key_file.clone()),
    };
    Ok(ClusterConfig {
        nats_url: config.nats_url.clone(),
        nats_auth,
        nats_tls,
        node,
        region,
        advertise_url,
        heartbeat_every: Duration::from_millis(config.heartbeat_ms),
        heartbeat_ttl: Duration::from_millis(config.heartbeat_ttl_ms),
        started_at_ms: jiff::Timestamp::now().as_millisecond(),
    })
}

/// Joins the cluster `settings` name and starts the heartbeats, or `None` when this server is
/// alone. A cluster that cannot be joined stops the start: a node that believes it is alone
/// while the others place rooms would host rooms nobody knows about.
pub async fn join(settings: &Settings, hub: &Hub) -> Result<Option<Membership>, ApiError> {
    let config = &settings.cluster;
    if !config.enabled() {
        return Ok(None);
    }
    let cluster = Cluster::join(self::config(settings)?)
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    tracing::info!(node = %cluster.node(), region = %cluster.region(), "joined the cluster");
    // Other nodes relay joins and send commands here once a room is placed here, which may be
    // as soon as the first heartbeat is out: listen at once.
    let internal = |err: ClusterError| ApiError::Internal(err.to_string());
    let dials = cluster.listen(Service::Rtc).await.map_err(internal)?;
    let editor_dials = cluster.listen(Service::Editor).await.map_err(internal)?;
    let commands = cluster.commands().await.map_err(internal)?;
    let mut cpu = CpuMeter::new();
    let counted = hub.clone();
    let heartbeats = cluster.spawn_heartbeats(move || {
        let hosted = counted.load();
        Load {
            cpu: cpu.share(),
            rooms: u32::try_from(hosted.rooms).unwrap_or(u32::MAX),
            peer_connections: u32::try_from(hosted.peer_connections).unwrap_or(u32::MAX),
        }
    });
    let (rooms, newly_hosted) = HostedRooms::new(
        cluster.clone(),
        hub.clone(),
        Duration::from_millis(config.heartbeat_ms),
    );
    Ok(Some(Membership {
        cluster,
        rooms,
        heartbeats,
        dials,
        editor_dials,
        commands,
        newly_hosted: Some(newly_hosted),
    }))
}

/// How long after its last claim a room that is not up may still be about to start: a join
/// claims the room a moment before it creates it, so the placement is kept this long.
const CLAIM_GRACE: Duration = Duration::from_secs(10);

/// Where a joining participant's room runs.
#[derive(Debug)]
pub enum Claim {
    /// Here: go on and join.
    Here,
    /// On another node, to which the session is relayed.
    Elsewhere {
        /// That node.
        node: NodeId,
    },
    /// The room is being given up here at this moment: try again shortly.
    Busy,
}

/// What this node is doing with a room it claimed.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Hosting it (or about to: a join claimed it).
    Up,
    /// Its placement is being released (it ended); claims wait.
    Releasing,
    /// It was placed on another node and ended here; for a while, any copy that comes up here
    /// again (a join that claimed it just before) is ended too.
    Lost,
}

#[derive(Debug)]
struct Hosting {
    claimed_at: Instant,
    phase: Phase,
    /// Which time the room came to be hosted here: a [`PlacementHold`] counts for the time it
    /// was taken in only.
    generation: u64,
    /// Open [`PlacementHold`]s: the room stays placed here while any is, even with nobody in
    /// its call (its shared document is open here).
    holds: usize,
    /// Set when the room is lost to another node; dropped with the entry (which also tells the
    /// holds).
    lost: watch::Sender<bool>,
}

impl Hosting {
    fn new(claimed_at: Instant, generation: u64) -> Self {
        Self {
            claimed_at,
            phase: Phase::Up,
            generation,
            holds: 0,
            lost: watch::channel(false).0,
        }
    }
}

/// The rooms this node hosts in a cluster: each placed in the rooms bucket before its first
/// join, answered for on its subject while it lives (the split-brain guard's proof), watched so
/// that it ends here if its placement ever names another node, and released when it ends.
#[derive(Clone)]
pub struct HostedRooms {
    cluster: Cluster,
    hub: Hub,
    check_every: Duration,
    hosted: Arc<Mutex<HashMap<RoomId, Hosting>>>,
    /// Numbers each time a room comes to be hosted here.
    generations: Arc<AtomicU64>,
    newly_hosted: mpsc::UnboundedSender<RoomId>,
}

impl HostedRooms {
    /// Rooms of `hub`, placed through `cluster`, checked every `check_every`; and each room as
    /// it comes to be hosted here.
    pub fn new(
        cluster: Cluster,
        hub: Hub,
        check_every: Duration,
    ) -> (Self, mpsc::UnboundedReceiver<RoomId>) {
        let (newly_hosted, hosted_rx) = mpsc::unbounded_channel();
        let rooms = Self {
            cluster,
            hub,
            check_every,
            hosted: Arc::new(Mutex::new(HashMap::new())),
            generations: Arc::new(AtomicU64::new(0)),
            newly_hosted,
        };
        (rooms, hosted_rx)
    }

    /// Whether this node holds no room's placement (all ended and released, or moved).
    pub fn is_empty(&self) -> bool {
        self.hosted().is_empty()
    }

    fn hosted(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, Hosting>> {
        self.hosted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Finds where `room` is, or places it: on the least busy of two serving nodes of this
    /// node's region (power of two choices). When it is here and was not yet, starts answering
    /// for it and watching it. A room already up here is answered from memory, so people
    /// rejoin it while NATS is away.
    pub async fn claim(&self, room: &RoomId) -> Result<Claim, ClusterError> {
        self.claim_preferring(room, false).await
    }

    /// [`HostedRooms::claim`] by the node another one sent a join or a command to, as the
    /// room's host: should the placement have vanished meanwhile, the room is placed here again
    /// rather than sent on to a third node.
    pub async fn claim_as_host(&self, room: &RoomId) -> Result<Claim, ClusterError> {
        self.claim_preferring(room, true).await
    }

    async fn claim_preferring(&self, room: &RoomId, here: bool) -> Result<Claim, ClusterError> {
        {
            let mut hosted = self.hosted();
            if let Some(hosting) = hosted.get_mut(room) {
                match hosting.phase {
                    Phase::Up if self.hub.has_room(room) => {
                        hosting.claimed_at = Instant::now();
                        return Ok(Claim::Here);
                    }
                    Phase::Releasing => return Ok(Claim::Busy),
                    Phase::Up | Phase::Lost => {}
                }
            }
        }
        let key = RoomKey::new(&room.0)?;
        let placement = if here {
            self.cluster.place_here(&key, self.cluster.region()).await?
        } else {
            self.cluster.place(&key, self.cluster.region()).await?
        };
        if &placement.node != self.cluster.node() {
            return Ok(Claim::Elsewhere {
                node: placement.node,
            });
        }
        let fresh = {
            let mut hosted = self.hosted();
            let now = Instant::now();
            match hosted.get_mut(room) {
                Some(Hosting {
                    phase: Phase::Releasing,
                    ..
                }) => return Ok(Claim::Busy),
                Some(
                    hosting @ Hosting {
                        phase: Phase::Up, ..
                    },
                ) => {
                    hosting.claimed_at = now;
                    false
                }
                // New here, or placed here again after it was lost: a watcher of its own, and
                // holds of its own (those taken before the loss no longer count).
                Some(Hosting {
                    phase: Phase::Lost, ..
                })
                | None => {
                    let generation = self.generations.fetch_add(1, Ordering::Relaxed);
                    hosted.insert(room.clone(), Hosting::new(now, generation));
                    true
                }
            }
        };
        if fresh {
            match self.cluster.guard(&key).await {
                Ok(guard) => {
                    tokio::spawn(self.clone().watch(room.clone(), key, placement, guard));
                    // Nobody listening (a test's node, a stopping server) loses nothing.
                    let _ = self.newly_hosted.send(room.clone());
                }
                Err(err) => {
                    self.hosted().remove(room);
                    return Err(err);
                }
            }
        }
        Ok(Claim::Here)
    }

    /// Keeps `room`, which a claim just found here, placed here while the hold lives, whether
    /// or not anyone is in its call; `None` if it is not hosted here (any more).
    pub fn hold(&self, room: &RoomId) -> Option<PlacementHold> {
        let mut hosted = self.hosted();
        let hosting = hosted
            .get_mut(room)
            .filter(|h| matches!(h.phase, Phase::Up))?;
        hosting.holds += 1;
        Some(PlacementHold {
            rooms: self.clone(),
            room: room.clone(),
            generation: hosting.generation,
            lost: hosting.lost.subscribe(),
        })
    }

    /// Whether `room` is hosted here: placed here and not being released or ended.
    pub fn hosts(&self, room: &RoomId) -> bool {
        self.hosted()
            .get(room)
            .is_some_and(|h| matches!(h.phase, Phase::Up))
    }

    /// Watches a hosted room until it ends here: released when it is over, ended when its
    /// placement names another node, placed again if its placement vanished. A NATS outage
    /// ends nothing: the room goes on. The first check is at once, so a claim that raced with
    /// a release is caught before anyone relies on it.
    async fn watch(self, room: RoomId, key: RoomKey, mut held: Placement, guard: RoomGuard) {
        let mut tick = tokio::time::interval(self.check_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let over = {
                let mut hosted = self.hosted();
                let over = hosted.get(&room).is_none_or(|h| {
                    !self.hub.has_room(&room)
                        && h.holds == 0
                        && h.claimed_at.elapsed() > CLAIM_GRACE
                });
                if over && let Some(hosting) = hosted.get_mut(&room) {
                    hosting.phase = Phase::Releasing;
                }
                over
            };
            if over {
                guard.close().await;
                if let Err(err) = self.cluster.release(&key, &held).await {
                    tracing::info!(%room, %err, "a room's placement was not released (it moved, or NATS is away)");
                }
                self.hosted().remove(&room);
                return;
            }
            let current = match self.cluster.host(&key).await {
                // Vanished (NATS lost it, or a release raced with a claim): place it again,
                // here if this node may still take it.
                Ok(None) => self.cluster.place_here(&key, self.cluster.region()).await,
                Ok(Some(placement)) => Ok(placement),
                Err(err) => Err(err),
            };
            match current {
                Ok(placement) if &placement.node == self.cluster.node() => held = placement,
                Ok(placement) => {
                    tracing::error!(%room, host = %placement.node, "this node lost a room it hosts to another node; ending it here");
                    guard.close().await;
                    self.end_lost(&room).await;
                    return;
                }
                Err(err) => {
                    tracing::warn!(%room, %err, "cannot check a hosted room's placement; keeping it");
                }
            }
        }
    }

    /// Ends a room that runs elsewhere now, and keeps ending any copy a join that claimed it a
    /// moment before brings up here, until such joins are over.
    async fn end_lost(&self, room: &RoomId) {
        if let Some(hosting) = self.hosted().get_mut(room) {
            hosting.phase = Phase::Lost;
            hosting.lost.send_replace(true);
        }
        let until = Instant::now() + CLAIM_GRACE;
        while Instant::now() < until {
            self.hub.end_room(room);
            tokio::time::sleep(self.check_every).await;
            let lost = self
                .hosted()
                .get(room)
                .is_some_and(|h| matches!(h.phase, Phase::Lost));
            if !lost {
                // Placed here again meanwhile: a new watcher has it.
                return;
            }
        }
        let mut hosted = self.hosted();
        if hosted
            .get(room)
            .is_some_and(|h| matches!(h.phase, Phase::Lost))
        {
            hosted.remove(room);
        }
    }
}

/// Keeps a room placed on this node (see [`HostedRooms::hold`]); dropped, the room is released
/// as usual once nobody is in it, a claim's grace after the hold ended.
pub struct PlacementHold {
    rooms: HostedRooms,
    room: RoomId,
    generation: u64,
    lost: watch::Receiver<bool>,
}

impl PlacementHold {
    /// Whether what is held here should stay here: the room is still hosted here, by the same
    /// placement as when the hold was taken, and this node is not draining with nobody in the
    /// room's call (a draining node lets what only holds the placement go elsewhere).
    pub fn here(&self) -> bool {
        let hosted = self.rooms.hosted();
        let same = hosted
            .get(&self.room)
            .is_some_and(|h| matches!(h.phase, Phase::Up) && h.generation == self.generation);
        drop(hosted);
        let leaving = self.rooms.cluster.state() == NodeState::Draining
            && !self.rooms.hub.has_room(&self.room);
        same && !leaving
    }

    /// Completes when the room is lost to another node, or stops being hosted here.
    pub async fn lost(&mut self) {
        // An error: the room's entry went, which ends the hold's time here as well.
        let _ = self.lost.wait_for(|lost| *lost).await;
    }
}

impl Drop for PlacementHold {
    fn drop(&mut self) {
        if let Some(hosting) = self
            .rooms
            .hosted()
            .get_mut(&self.room)
            .filter(|h| h.generation == self.generation)
        {
            hosting.holds = hosting.holds.saturating_sub(1);
            hosting.claimed_at = Instant::now();
        }
    }
}

/// The machine's host name made into a node id (dots and other characters become `-`).
fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "sightline".to_owned()
    } else {
        name
    }
}

/// The process's share of the machine's CPU between two readings, from `/proc/self/stat`.
struct CpuMeter {
    last: Option<(Instant, u64)>,
    cores: f32,
}

/// Clock ticks per second in `/proc` (`USER_HZ`, fixed at 100 by the kernel's ABI).
const TICKS_PER_SEC: f32 = 100.0;

impl CpuMeter {
    fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            last: ticks().map(|t| (Instant::now(), t)),
            cores: cores as f32,
        }
    }

    /// The share (0.0 to 1.0) since the last call; 0.0 where `/proc` cannot be read.
    fn share(&mut self) -> f32 {
        let now = Instant::now();
        let Some(current) = ticks() else {
            return 0.0;
        };
        let share = match self.last {
            Some((then, before)) => {
                let wall = now.duration_since(then).as_secs_f32();
                let used = current.saturating_sub(before) as f32 / TICKS_PER_SEC;
                if wall > 0.0 {
                    (used / wall / self.cores).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last = Some((now, current));
        share
    }
}

/// User plus system CPU ticks of this process so far.
fn ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_read_from_proc_and_bounded() {
        let mut meter = CpuMeter::new();
        assert!(ticks().is_some(), "/proc/self/stat readable on Linux");
        // Spin a little so there is something to measure.
        let until = Instant::now() + Duration::from_millis(50);
        let mut x = 0u64;
        while Instant::now() < until {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        let share = meter.share();
        assert!((0.0..=1.0).contains(&share), "{share}");
    }

    #[test]
    fn host_names_become_node_ids() {
        let name = host_name();
        assert!(NodeId::new(&name).is_ok(), "{name:?}");
    }
}
