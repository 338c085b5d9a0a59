//! Sightline's room state and signaling protocol.
//!
//! - [`grants`](Grants): who a participant is in an interview ([`InterviewRole`]) and what that
//!   lets them do in a room. The API puts grants into room join tokens.
//! - [`protocol`]: the typed, versioned JSON messages of the `/rtc` WebSocket, with size limits.
//! - [`Room`]: one interview's room as a plain state machine. It checks every request against
//!   the requester's grants and returns [`Effect`]s (messages, subscriptions, disconnections) for
//!   the caller to carry out; it has no I/O and takes time as an argument.
//!
//! Status: the WebSocket endpoint and the glue that carries out effects against the SFU's
//! workers are not built yet.
//!
//! This crate knows nothing of HTTP, JWT or SQL: the API verifies tokens and hands over grants.

mod grants;
pub mod protocol;
mod room;

pub use grants::{Grants, InterviewRole, ParseRoleError, RoomId, TrackSource};
pub use room::{Effect, Member, RESUME_WINDOW, Room, RoomError};
