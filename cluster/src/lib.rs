//! Several Sightline servers as one: each node announces itself with heartbeats, and each room is
//! placed on one node, both in NATS JetStream key-value buckets.
//!
//! - [`node`]: typed names ([`NodeId`], [`Region`], [`RoomKey`]) and what a heartbeat says
//!   ([`Heartbeat`], [`Load`], [`NodeState`]).
//! - [`placement`]: the decisions, without I/O: which node takes a new room (power of two
//!   choices among the serving nodes of its region), and when a placed room may move (only when
//!   its host's heartbeat has expired *and* nobody answers on the room's subject).
//! - [`NatsAuth`], [`NatsTls`]: how a node logs in to NATS and protects the connection.
//! - [`Cluster`]: the NATS shell: joining, the heartbeat task, placing, guarding and releasing
//!   rooms, and the counters `/metrics` shows.
//! - [`JobQueue`]: work for `sightline worker` processes, a JetStream work queue: a job goes
//!   to one worker, and to another when its worker stops renewing it.
//! - [`relay`]: sessions between two nodes over NATS subjects ([`Cluster::dial`],
//!   [`Cluster::listen`]), numbered and kept alive, so a client's connection held by one node
//!   reaches the room its host runs.
//!
//! Without a `[cluster]` section none of this runs: the embedded default is one node.

mod access;
mod error;
mod jobs;
mod nats;
pub mod node;
pub mod placement;
pub mod relay;

pub use access::{NatsAuth, NatsTls};
pub use error::ClusterError;
pub use jobs::{Job, JobQueue, JobTaker, Lease, Posted, ProctoringJob, RecordingJob};
pub use nats::{Cluster, ClusterConfig, ClusterStats, CommandReply, NodeCommands, RoomGuard};
pub use node::{Heartbeat, Load, NodeId, NodeState, Region, RoomKey};
pub use placement::Placement;
pub use relay::{Dial, Dialed, Dials, Link, LinkEnd, Service};
