//! Running candidates' code on the server, contained.
//!
//! - [`job`]: what a run is (language, code, stdin, limits) and what came of it; pure data
//!   and the rules that turn a finished process into a [`Verdict`].
//! - [`Sandbox`]: the seam between the queue and the thing that isolates a process.
//!   [`Bubblewrap`] is the one we ship: no network, a read-only view of a few host paths,
//!   a fresh size-limited tmpfs work directory, rlimits on CPU, data memory, processes and
//!   file size, a wall-clock kill, and output capped while it is read.
//! - [`Runner`]: the per-server queue in front of a sandbox: a fixed number of runs at once,
//!   a bounded queue behind them ("queued" is reported, a full queue is "busy", never a
//!   crash), and one sandbox user id per slot when the server runs as root.
//! - `cgroup`: as root, each slot's runs also share a cgroup capping their memory in all
//!   (shared mappings and tmpfs included) and their tasks.

mod bwrap;
mod cgroup;
pub mod job;
mod queue;

use std::future::Future;
use std::pin::Pin;

pub use bwrap::{Bubblewrap, BubblewrapConfig};
pub use job::{Job, Language, Limits, Outcome, Verdict};
pub use queue::{Runner, Started, Ticket, running_as_root};

/// What can go wrong around a run (a run that fails is an [`Outcome`], not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// The queue is full.
    #[error("the code runner is busy; try again in a moment")]
    Busy,
    /// The sandbox could not be started (bubblewrap missing, no user namespaces, ...).
    #[error("the sandbox could not start: {0}")]
    Sandbox(String),
    /// The runner is shutting down.
    #[error("the code runner is shutting down")]
    Closed,
}

/// A future a [`Sandbox`] returns.
pub type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<Outcome, RunnerError>> + Send + 'a>>;

/// Something that runs one job in isolation.
pub trait Sandbox: Send + Sync + 'static {
    /// Runs `job`; `uid`, when given, is the host user id the run is started as.
    fn run<'a>(&'a self, job: &'a Job, uid: Option<u32>) -> RunFuture<'a>;
}
