//! Sightline's integration tests: the real server on port 0, real HTTP, real databases.
//! Each scenario runs on SQLite and on PostgreSQL (see `helpers::on_both_backends`).

mod helpers;

mod admin;
mod auth;
mod cluster;
mod data_rights;
mod email;
mod hardening;
mod http;
mod interviews;
mod invites;
mod media;
mod persistence;
mod phone;
mod proctoring;
mod questions;
mod recording;
mod recovery;
mod rtc;
mod scorecards;
mod turn;
mod webhooks;
mod workers;
mod workspace;
