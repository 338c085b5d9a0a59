//! Sightline's room state and signaling protocol.
//!
//! - [`grants`](Grants): who a participant is in an interview ([`InterviewRole`]) and what that
//!   lets them do in a room. The API puts grants into room join tokens.
//! - [`protocol`]: the typed, versioned JSON messages of the `/rtc` WebSocket, with size limits.
//! - [`Room`]: one interview's room as a plain state machine. It checks every request against
//!   the requester's grants and returns [`Effect`]s (messages, subscriptions, disconnections) for
//!   the caller to carry out; it has no I/O and takes time as an argument.
//!
//! - [`Hub`]: the async shell. One task per room owns its `Room`, carries out its effects against
//!   the room's SFU worker (pinned by room id) and routes the worker's events back; a transport
//!   (the API's WebSocket) moves parsed messages through a [`Session`].
//!
//! This crate knows nothing of HTTP, JWT or SQL: the API verifies tokens and hands over grants.

mod grants;
mod hub;
pub mod protocol;
mod room;

pub use grants::{CodeGrants, Grants, InterviewRole, ParseRoleError, RoomId, TrackSource};
pub use hub::{ConnectError, Hub, HubLoad, RoomActivity, Session, SessionSender, TapError};
pub use protocol::{
    LeaveReason, ProctoringEvent, ProctoringHint, ProctoringNotice, RecordingNotice, RecordingState,
};
pub use room::{Effect, Member, PresenceChange, RESUME_WINDOW, Room, RoomError, RoomOverview};
