//! HTTP routes, one module per resource, each with its own `router()`.

pub mod admin;
pub mod auth;
pub mod candidates;
pub mod interviews;
pub mod invites;
pub mod live;
pub mod me;
pub mod ops;
pub mod phone;
pub mod proctoring;
pub mod questions;
pub mod recordings;
pub mod scorecards;
mod stored_json;
pub mod workspace;
