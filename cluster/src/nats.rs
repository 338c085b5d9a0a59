//! The NATS shell around [`crate::placement`]: two JetStream key-value buckets (nodes, whose
//! entries expire with their heartbeats, and rooms, written only with an expected revision) and
//! one request subject per hosted room, answered by the host while it runs the room.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use crate::ClusterError;
use crate::access::{self, NatsAuth, NatsTls};
use crate::node::{Heartbeat, Load, NodeId, NodeState, Region, RoomKey};
use crate::placement::{self, Placement, Verdict};

/// Bucket of heartbeats: one key per node, forgotten once older than the heartbeat lifetime.
const NODES_BUCKET: &str = "sightline_nodes";
/// Bucket of placements: one key per hosted room.
const ROOMS_BUCKET: &str = "sightline_rooms";
/// Times a placement re-reads after losing a race before it gives up.
const PLACEMENT_ATTEMPTS: usize = 5;
/// How long a probe of a room's subject waits for its host to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a command waits for the node it is sent to.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// How this node joins (`[cluster]` in the configuration).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The NATS server (`nats://host:4222` or `tls://host:4222`).
    pub nats_url: String,
    /// This node's credentials on it.
    pub nats_auth: NatsAuth,
    /// TLS towards it.
    pub nats_tls: NatsTls,
    /// This node.
    pub node: NodeId,
    /// Its region.
    pub region: Region,
    /// Where other nodes reach this node's API.
    pub advertise_url: String,
    /// Time between heartbeats.
    pub heartbeat_every: Duration,
    /// How long a heartbeat counts: a node silent this long is dead to the others.
    pub heartbeat_ttl: Duration,
    /// When this process started, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Heartbeats written.
    pub heartbeats_sent: AtomicU64,
    /// Heartbeats that could not be written (NATS unreachable or slow).
    pub heartbeats_missed: AtomicU64,
    /// Rooms this node placed for the first time.
    pub rooms_placed: AtomicU64,
    /// Placements found alive and kept.
    pub rooms_kept: AtomicU64,
    /// Placements whose host's heartbeat had expired but which something still answered for,
    /// so they were not moved (the split-brain guard).
    pub rooms_guarded: AtomicU64,
    /// Placements moved off a dead host.
    pub rooms_replaced: AtomicU64,
    /// Relayed sessions this node opened to another node (as the client's edge).
    pub relays_dialed: AtomicU64,
    /// Relayed sessions this node accepted (as the room's host).
    pub relays_accepted: AtomicU64,
    /// Relayed sessions open now, either end.
    pub relays_open: AtomicU64,
    /// Relayed sessions that broke (a lost frame, a silence, a slow end, NATS) rather than
    /// being closed by either end.
    pub relays_broken: AtomicU64,
}

/// This node's membership of the cluster.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClusterConfig,
    /// When the connection to NATS last came (back) up. Until a heartbeat lifetime has passed
    /// since, this node moves no room: after an outage the other hosts may not have
    /// reconnected yet, and their expired heartbeats and missing answers would look like death.
    connected_at: Arc<std::sync::Mutex<std::time::Instant>>,
    /// Serializes heartbeat writes, so a draining one is never overtaken by an older one.
    beating: tokio::sync::Mutex<()>,
    client: async_nats::Client,
    nodes: kv::Store,
    rooms: kv::Store,
    state: AtomicU8,
    /// What the last heartbeat said about the load, for a heartbeat sent out of turn.
    last_load: std::sync::Mutex<Load>,
    sequence: AtomicU64,
    stats: ClusterStats,
}

/// Answers for a room on its subject while it lives: the proof, to a node that finds this
/// node's heartbeat expired, that the room is still hosted. [`RoomGuard::close`] stops
/// answering and makes sure the server knows; dropping it stops answering soon after.
pub struct RoomGuard {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RoomGuard {
    /// Stops answering, once NATS has dropped the subscription (read it, at least).
    pub async fn close(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Commands other nodes send this node about the rooms it hosts (a participant to remove,
/// recording to start), in order; dropping it stops taking them.
pub struct NodeCommands<C> {
    subscription: async_nats::Subscriber,
    client: async_nats::Client,
    command: std::marker::PhantomData<fn() -> C>,
}

/// The way back to a command's sender: [`CommandReply::send`] answers it.
pub struct CommandReply {
    to: Option<async_nats::Subject>,
    client: async_nats::Client,
}

impl CommandReply {
    /// Answers the command with `answer`; the sender is gone if it cannot be delivered.
    pub async fn send<R: serde::Serialize>(self, answer: &R) {
        if let (Some(to), Ok(payload)) = (self.to, encode(answer)) {
            let _ = self.client.publish(to, payload).await;
        }
    }
}

impl<C: serde::de::DeserializeOwned> NodeCommands<C> {
    /// The next command and the way to answer it; `None` when the subscription ended. A
    /// command this version cannot read is skipped unanswered (its sender times out). Only
    /// reads: it can be raced in a `select!` without losing a command.
    pub async fn next(&mut self) -> Option<(C, CommandReply)> {
        loop {
            let message = self.subscription.next().await?;
            match serde_json::from_slice::<C>(&message.payload) {
                Ok(command) => {
                    let reply = CommandReply {
                        to: message.reply,
                        client: self.client.clone(),
                    };
                    return Some((command, reply));
                }
                Err(err) => {
                    tracing::warn!(subject = %message.subject, %err, "an unreadable node command was skipped");
                }
            }
        }
    }
}

impl Drop for RoomGuard {
    fn drop(&mut self) {
        if self.stop.is_none() {
            return;
        }
        self.task.abort();
    }
}

impl Cluster {
    /// Connects to NATS, opens (or creates) the buckets and writes a first heartbeat, so the
    /// node is visible to the others when this returns.
    pub async fn join(config: ClusterConfig) -> Result<Self, ClusterError> {
        let cluster = Self::connect(config, true).await?;
        cluster.beat(Load::default()).await?;
        Ok(cluster)
    }

    /// Connects and opens the buckets without announcing a node: a tool's view of the cluster
    /// (it reads nodes and placements, and can move a room), never chosen to host one.
    pub async fn observe(config: ClusterConfig) -> Result<Self, ClusterError> {
        Self::connect(config, false).await
    }

    /// Connects and opens the buckets; a node (`node`) also sets the heartbeat lifetime its
    /// configuration names on the nodes bucket, a tool leaves it as the nodes set it.
    async fn connect(config: ClusterConfig, node: bool) -> Result<Self, ClusterError> {
        let connected_at = Arc::new(std::sync::Mutex::new(std::time::Instant::now()));
        let reconnected = Arc::clone(&connected_at);
        let options = access::apply(
            async_nats::ConnectOptions::new(),
            &config.nats_url,
            &config.nats_auth,
            &config.nats_tls,
        );
        let client = options
            .name(format!("sightline {}", config.node))
            .event_callback(move |event| {
                if matches!(event, async_nats::Event::Connected) {
                    *reconnected
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        std::time::Instant::now();
                }
                async {}
            })
            .connection_timeout(Duration::from_secs(5))
            .connect(config.nats_url.as_str())
            .await
            .map_err(|err| ClusterError::Connect {
                url: config.nats_url.clone(),
                message: err.to_string(),
            })?;
        let js = jetstream::new(client.clone());
        // Both on disk, so a restarted NATS server still knows the nodes and the rooms.
        let nodes = bucket(&js, NODES_BUCKET, config.heartbeat_ttl, node).await?;
        let rooms = bucket(&js, ROOMS_BUCKET, Duration::ZERO, node).await?;
        let cluster = Self {
            inner: Arc::new(Inner {
                config,
                connected_at,
                beating: tokio::sync::Mutex::new(()),
                client,
                nodes,
                rooms,
                state: AtomicU8::new(state_code(NodeState::Serving)),
                last_load: std::sync::Mutex::new(Load::default()),
                sequence: AtomicU64::new(0),
                stats: ClusterStats::default(),
            }),
        };
        Ok(cluster)
    }

    /// Subscribes to `subject` and returns once the subscription is in effect on the server,
    /// so another node may rely on it.
    pub(crate) async fn subscribe_in_effect(
        &self,
        subject: String,
        operation: &'static str,
    ) -> Result<async_nats::Subscriber, ClusterError> {
        let subscription = self
            .inner
            .client
            .subscribe(subject)
            .await
            .map_err(|err| ClusterError::nats(operation, err))?;
        // A request the server answers itself, read after the subscription (a flush only
        // empties the socket's buffer).
        round_trip(&self.inner.client)
            .await
            .map_err(|err| ClusterError::nats(operation, err))?;
        Ok(subscription)
    }

    /// The NATS connection, for the relay.
    pub(crate) fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// A relayed session's keepalive interval and the silence that ends it: the heartbeat's.
    pub(crate) fn relay_timing(&self) -> (Duration, Duration) {
        (
            self.inner.config.heartbeat_every,
            self.inner.config.heartbeat_ttl,
        )
    }

    /// This node.
    pub fn node(&self) -> &NodeId {
        &self.inner.config.node
    }

    /// This node's region.
    pub fn region(&self) -> &Region {
        &self.inner.config.region
    }

    /// The counters.
    pub fn stats(&self) -> &ClusterStats {
        &self.inner.stats
    }

    /// Serving or draining.
    pub fn state(&self) -> NodeState {
        match self.inner.state.load(Ordering::Relaxed) {
            0 => NodeState::Serving,
            _ => NodeState::Draining,
        }
    }

    /// Stops taking new rooms, and says so in a heartbeat sent at once (the ones after it say
    /// so too). An error means NATS did not hear it now; the next heartbeat tries again.
    pub async fn drain(&self) -> Result<(), ClusterError> {
        self.inner
            .state
            .store(state_code(NodeState::Draining), Ordering::Relaxed);
        let load = *self
            .inner
            .last_load
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.beat(load).await
    }

    /// Writes heartbeats until the returned task is aborted, each carrying `load()`.
    pub fn spawn_heartbeats(
        &self,
        mut load: impl FnMut() -> Load + Send + 'static,
    ) -> JoinHandle<()> {
        let cluster = self.clone();
        tokio::spawn(async move {
            let every = cluster.inner.config.heartbeat_every;
            let mut failing = false;
            // On a fixed schedule: a slow write does not push the next one back.
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                // A write that takes longer than half the interval is as good as missed.
                let beat = tokio::time::timeout(every / 2, cluster.beat(load())).await;
                match beat {
                    Ok(Ok(())) => {
                        if std::mem::take(&mut failing) {
                            tracing::info!(node = %cluster.node(), "heartbeats reach NATS again");
                        }
                    }
                    Ok(Err(err)) => cluster.missed(&mut failing, &err.to_string()),
                    Err(_) => cluster.missed(&mut failing, "timed out"),
                }
            }
        })
    }

    fn missed(&self, failing: &mut bool, reason: &str) {
        self.inner
            .stats
            .heartbeats_missed
            .fetch_add(1, Ordering::Relaxed);
        if !std::mem::replace(failing, true) {
            tracing::warn!(node = %self.node(), reason, "a heartbeat did not reach NATS");
        }
    }

    async fn beat(&self, load: Load) -> Result<(), ClusterError> {
        let _turn = self.inner.beating.lock().await;
        *self
            .inner
            .last_load
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = load;
        let config = &self.inner.config;
        let heartbeat = Heartbeat {
            node: config.node.clone(),
            region: config.region.clone(),
            state: self.state(),
            load,
            advertise_url: config.advertise_url.clone(),
            sequence: self.inner.sequence.fetch_add(1, Ordering::Relaxed) + 1,
            started_at_ms: config.started_at_ms,
        };
        let value = encode(&heartbeat)?;
        self.inner
            .nodes
            .put(config.node.as_str(), value)
            .await
            .map_err(|err| ClusterError::nats("heartbeat", err))?;
        self.inner
            .stats
            .heartbeats_sent
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Every node whose heartbeat has not expired, sorted by id (keys listed by [`keys_of`]).
    pub async fn nodes(&self) -> Result<Vec<Heartbeat>, ClusterError> {
        let keys = keys_of(&self.inner.nodes, NODES_BUCKET, "listing nodes").await?;
        let mut nodes = Vec::new();
        for key in keys.iter().map(String::as_str) {
            // A node may expire between the listing and the read; one whose heartbeat this
            // version cannot read (a newer node, mid-upgrade) is left out, not everyone.
            match self.heartbeat(key).await {
                Ok(Some(heartbeat)) => nodes.push(heartbeat),
                Ok(None) => {}
                Err(err @ ClusterError::Corrupt { .. }) => {
                    tracing::warn!(node = key, %err, "skipping a heartbeat this version cannot read");
                }
                Err(err) => return Err(err),
            }
        }
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(nodes)
    }

    async fn heartbeat(&self, node: &str) -> Result<Option<Heartbeat>, ClusterError> {
        let entry = self
            .inner
            .nodes
            .entry(node)
            .await
            .map_err(|err| ClusterError::nats("reading a heartbeat", err))?;
        live(entry)
            .map(|e| decode("heartbeat", &e.value))
            .transpose()
    }

    /// The room's current host, if it has one.
    pub async fn host(&self, room: &RoomKey) -> Result<Option<Placement>, ClusterError> {
        let entry = self
            .inner
            .rooms
            .entry(room.as_str())
            .await
            .map_err(|err| ClusterError::nats("reading a placement", err))?;
        live(entry)
            .map(|e| {
                decode::<Placement>("placement", &e.value).map(|p| Placement {
                    revision: e.revision,
                    ..p
                })
            })
            .transpose()
    }

    /// Every placed room and its host, sorted by room (for operators: which rooms each node
    /// holds). Read like [`Cluster::nodes`]: keys from the stream's subjects, then each entry;
    /// a room released meanwhile is left out.
    pub async fn placements(&self) -> Result<Vec<(RoomKey, Placement)>, ClusterError> {
        let keys: Vec<RoomKey> = keys_of(&self.inner.rooms, ROOMS_BUCKET, "listing placements")
            .await?
            .iter()
            .filter_map(|key| RoomKey::new(key).ok())
            .collect();
        let mut placements = Vec::with_capacity(keys.len());
        for key in keys {
            match self.host(&key).await {
                Ok(Some(placement)) => placements.push((key, placement)),
                Ok(None) => {}
                Err(err @ ClusterError::Corrupt { .. }) => {
                    tracing::warn!(room = %key, %err, "skipping a placement this version cannot read");
                }
                Err(err) => return Err(err),
            }
        }
        placements.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        Ok(placements)
    }

    /// Where `room` lives: its current host while that host lives (or while anything answers
    /// for the room), otherwise a serving node of `region` chosen now (the power of two
    /// choices) and written atomically. Every node asking at once gets the same answer.
    pub async fn place(&self, room: &RoomKey, region: &Region) -> Result<Placement, ClusterError> {
        self.place_with(room, region, None).await
    }

    /// [`Cluster::place`], but a new placement goes to this node whenever it may take rooms:
    /// for a room that is up here and whose placement vanished (NATS lost it), which must not
    /// move while people are in it, and for a room another node found placed here.
    pub async fn place_here(
        &self,
        room: &RoomKey,
        region: &Region,
    ) -> Result<Placement, ClusterError> {
        self.place_with(room, region, Some(self.node())).await
    }

    async fn place_with(
        &self,
        room: &RoomKey,
        region: &Region,
        preferred: Option<&NodeId>,
    ) -> Result<Placement, ClusterError> {
        let stats = &self.inner.stats;
        for _ in 0..PLACEMENT_ATTEMPTS {
            let current = self.host(room).await?;
            let alive = match &current {
                Some(p) => self.heartbeat(p.node.as_str()).await?.is_some(),
                None => false,
            };
            let settled = self
                .inner
                .connected_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .elapsed()
                >= self.inner.config.heartbeat_ttl;
            // Fresh from an outage, a missing heartbeat proves nothing yet: count it as an
            // answer, so the room stays where it is.
            let answered = match &current {
                Some(_) if !alive => !settled || self.answered(room).await,
                _ => false,
            };
            match placement::verdict(current, |_| alive, || answered) {
                Verdict::Keep(p) => {
                    stats.rooms_kept.fetch_add(1, Ordering::Relaxed);
                    return Ok(p);
                }
                Verdict::Guarded(p) => {
                    stats.rooms_guarded.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%room, host = %p.node, "a room's host has no heartbeat but still answers for it; not moving it");
                    return Ok(p);
                }
                Verdict::Place => {
                    let chosen = self.choose(region, preferred).await?;
                    let value = encode(&Placement {
                        node: chosen.clone(),
                        revision: 0,
                    })?;
                    match self.inner.rooms.create(room.as_str(), value).await {
                        Ok(revision) => {
                            stats.rooms_placed.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(%room, node = %chosen, "room placed");
                            return Ok(Placement {
                                node: chosen,
                                revision,
                            });
                        }
                        // Another node placed it first: read theirs.
                        Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => {}
                        Err(err) => return Err(ClusterError::nats("placing a room", err)),
                    }
                }
                Verdict::Replace(old) => {
                    let chosen = self.choose(region, preferred).await?;
                    let value = encode(&Placement {
                        node: chosen.clone(),
                        revision: 0,
                    })?;
                    match self
                        .inner
                        .rooms
                        .update(room.as_str(), value, old.revision)
                        .await
                    {
                        Ok(revision) => {
                            stats.rooms_replaced.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(%room, from = %old.node, to = %chosen, "room moved off a dead node");
                            return Ok(Placement {
                                node: chosen,
                                revision,
                            });
                        }
                        // Another node moved it first: read theirs.
                        Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
                        Err(err) => return Err(ClusterError::nats("moving a room", err)),
                    }
                }
            }
        }
        Err(ClusterError::Contended(room.to_string()))
    }

    async fn choose(
        &self,
        region: &Region,
        preferred: Option<&NodeId>,
    ) -> Result<NodeId, ClusterError> {
        let mut nodes = self.nodes().await?;
        // This node's own word counts first: draining, it takes no room even while its last
        // heartbeat in NATS still says serving.
        if self.state() == NodeState::Draining {
            nodes.retain(|h| &h.node != self.node());
        }
        let chosen = match preferred {
            Some(preferred) => {
                placement::choose_preferring(&nodes, region, preferred, random_below)
            }
            None => placement::choose(&nodes, region, random_below),
        };
        chosen
            .map(|h| h.node.clone())
            .ok_or(ClusterError::NoServingNode)
    }

    /// Whether anything answers on the room's subject. A probe that times out counts as an
    /// answer (someone is subscribed but slow): when in doubt, a room is not moved.
    async fn answered(&self, room: &RoomKey) -> bool {
        let request = self.inner.client.request(room_subject(room), Bytes::new());
        match tokio::time::timeout(PROBE_TIMEOUT, request).await {
            Ok(Ok(_)) | Err(_) => true,
            Ok(Err(err)) => err.kind() != async_nats::client::RequestErrorKind::NoResponders,
        }
    }

    /// Starts answering for `room`, which this node hosts.
    pub async fn guard(&self, room: &RoomKey) -> Result<RoomGuard, ClusterError> {
        // In effect on the server before anyone may rely on it.
        let mut requests = self
            .subscribe_in_effect(room_subject(room), "subscribing to a room")
            .await?;
        let client = self.inner.client.clone();
        let node = Bytes::from(self.node().to_string());
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    request = requests.next() => match request {
                        Some(request) => {
                            if let Some(reply) = request.reply {
                                let _ = client.publish(reply, node.clone()).await;
                            }
                        }
                        None => return,
                    },
                    _ = &mut stopped => {
                        let _ = requests.unsubscribe().await;
                        // Returns once the server has read the unsubscription.
                        let _ = round_trip(&client).await;
                        return;
                    }
                }
            }
        });
        Ok(RoomGuard {
            stop: Some(stop),
            task,
        })
    }

    /// Starts taking the commands other nodes send this one.
    pub async fn commands<C>(&self) -> Result<NodeCommands<C>, ClusterError> {
        let subscription = self
            .subscribe_in_effect(command_subject(self.node()), "listening for commands")
            .await?;
        Ok(NodeCommands {
            subscription,
            client: self.inner.client.clone(),
            command: std::marker::PhantomData,
        })
    }

    /// Sends `command` to `node` and gives its answer; `None` when nothing listens there (the
    /// node is gone).
    pub async fn command<C: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        node: &NodeId,
        command: &C,
    ) -> Result<Option<R>, ClusterError> {
        let request = self
            .inner
            .client
            .request(command_subject(node), encode(command)?);
        match tokio::time::timeout(COMMAND_TIMEOUT, request).await {
            Ok(Ok(answer)) => decode("command answer", &answer.payload).map(Some),
            Ok(Err(err)) if err.kind() == async_nats::client::RequestErrorKind::NoResponders => {
                Ok(None)
            }
            Ok(Err(err)) => Err(ClusterError::nats("sending a command", err)),
            Err(_) => Err(ClusterError::nats("sending a command", "no answer in time")),
        }
    }

    /// Moves `room` from placement `from` to node `to` at once, if `from` is still current (an
    /// operator's move; the old host ends its room when it sees the change).
    pub async fn reassign(
        &self,
        room: &RoomKey,
        from: &Placement,
        to: &NodeId,
    ) -> Result<Placement, ClusterError> {
        let value = encode(&Placement {
            node: to.clone(),
            revision: 0,
        })?;
        let revision = self
            .inner
            .rooms
            .update(room.as_str(), value, from.revision)
            .await
            .map_err(|err| ClusterError::nats("moving a room", err))?;
        Ok(Placement {
            node: to.clone(),
            revision,
        })
    }

    /// Gives `room` up (it ended on this node): its placement is removed only if it is still
    /// the one this node holds, so a room that moved meanwhile is left alone.
    pub async fn release(&self, room: &RoomKey, held: &Placement) -> Result<(), ClusterError> {
        self.inner
            .rooms
            .delete_expect_revision(room.as_str(), Some(held.revision))
            .await
            .map_err(|err| ClusterError::nats("releasing a room", err))
    }
}

/// Opens a bucket, creating its stream first when it does not exist. `async-nats` creates
/// buckets through an account query that NATS 2.9 answers in a shape it does not read, so the
/// stream is made directly, configured as a key-value bucket is.
async fn bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Duration,
    enforce_max_age: bool,
) -> Result<kv::Store, ClusterError> {
    let config = jetstream::stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: jetstream::stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    };
    let stream = js
        .get_or_create_stream(config.clone())
        .await
        .map_err(|err| ClusterError::nats("creating a bucket", err))?;
    // A bucket made by a node with another heartbeat lifetime keeps it unless told.
    if enforce_max_age && stream.cached_info().config.max_age != max_age {
        js.update_stream(config)
            .await
            .map_err(|err| ClusterError::nats("updating a bucket", err))?;
    }
    js.get_key_value(name)
        .await
        .map_err(|err| ClusterError::nats("opening a bucket", err))
}

/// A request the server answers itself (JetStream's account information, whatever it says):
/// when it returns, the server has read everything this connection sent before it.
async fn round_trip(client: &async_nats::Client) -> Result<(), async_nats::RequestError> {
    client
        .request("$JS.API.INFO", Bytes::new())
        .await
        .map(|_| ())
}

/// An entry that holds a value (not a deletion marker).
/// The keys `store` (bucket `bucket`) has held, from its stream's subjects: one request, no
/// consumer (a consumer listing keys can wait forever for an entry a newer one replaced while it
/// was being delivered). Deleted keys may be among them; reading them answers `None`.
async fn keys_of(
    store: &kv::Store,
    bucket: &str,
    operation: &'static str,
) -> Result<Vec<String>, ClusterError> {
    let prefix = format!("$KV.{bucket}.");
    let mut subjects = store
        .stream
        .info_with_subjects(format!("{prefix}>"))
        .await
        .map_err(|err| ClusterError::nats(operation, err))?;
    let mut keys = Vec::new();
    while let Some(subject) = subjects.next().await {
        let (subject, _) = subject.map_err(|err| ClusterError::nats(operation, err))?;
        if let Some(key) = subject.strip_prefix(&prefix) {
            keys.push(key.to_owned());
        }
    }
    Ok(keys)
}

fn live(entry: Option<kv::Entry>) -> Option<kv::Entry> {
    entry.filter(|e| e.operation == kv::Operation::Put)
}

fn room_subject(room: &RoomKey) -> String {
    format!("sightline.room.{room}.host")
}

fn command_subject(node: &NodeId) -> String {
    format!("sightline.node.{node}.command")
}

fn state_code(state: NodeState) -> u8 {
    match state {
        NodeState::Serving => 0,
        NodeState::Draining => 1,
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Bytes, ClusterError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|err| ClusterError::Corrupt {
            what: "value to write",
            message: err.to_string(),
        })
}

fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, ClusterError> {
    serde_json::from_slice(bytes).map_err(|err| ClusterError::Corrupt {
        what,
        message: err.to_string(),
    })
}

/// A random index below `n` (`n` > 0) for the power of two choices.
fn random_below(n: usize) -> usize {
    let drawn = getrandom::u64().unwrap_or(0);
    usize::try_from(drawn % n.max(1) as u64).unwrap_or(0)
}
