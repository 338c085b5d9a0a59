//! Sightline's room state and signaling protocol.
//!
//! Status: only the participant model exists so far: who a participant is in an interview
//! ([`InterviewRole`]) and what that lets them do in a room ([`Grants`]). The API puts grants into
//! room join tokens; the WebSocket protocol and the room state machine that enforce them come
//! with the media work.
//!
//! This crate knows nothing of HTTP, JWT or SQL: the API verifies tokens and hands over grants.

mod grants;

pub use grants::{Grants, InterviewRole, ParseRoleError, RoomId, TrackSource};
