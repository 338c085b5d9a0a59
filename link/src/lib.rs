//! The media link between two Sightline processes: a node hosting a room hands a worker (a
//! `sightline worker` recording it) the room's media taps over QUIC.
//!
//! - Both ends prove who they are with certificates from one CA the operator configures
//!   ([`LinkTls`]): a node accepts only workers with a certificate that CA signed, a worker
//!   only nodes.
//! - A worker connects for one job and presents that job's token ([`JobToken`]): the node
//!   hands the connection to whoever expects that token ([`Listener::expect`]), and closes any
//!   other. A token is valid while its job is expected, never stored, and compared by its
//!   SHA-256.
//! - The connection's first bidirectional stream, opened by the worker, carries control
//!   messages both ways, JSON frames of types the caller chooses ([`Control`]). Each further
//!   bidirectional stream, opened by the node, is one track's take: a header ([`TakeHeader`]),
//!   then the tap's packets ([`TakeSender`] → [`TakeReceiver`]); the worker asks for keyframes
//!   back on the same stream. A slow worker slows its streams (QUIC flow control), and the
//!   node's tap, bounded, drops what the stream cannot take.
//! - Packets keep their arrival time: the node states its clock's age when it accepts, and the
//!   worker places each packet's arrival on its own clock from there.
//!
//! Both ends notice the other gone within [`IDLE_TIMEOUT`] (keepalives every second).

mod endpoint;
mod error;
mod frame;
mod tls;

pub use endpoint::{
    Control, ControlReceiver, ControlSender, Dialer, Expected, HostLink, IDLE_TIMEOUT, JobToken,
    Listener, TakeAcceptor, TakeOpener, TakeReceiver, TakeSender, WorkerLink,
};
pub use error::LinkError;
pub use frame::TakeHeader;
pub use tls::LinkTls;
