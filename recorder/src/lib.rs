//! Sightline's server-side recorder: every published track of an interview, written without
//! transcoding, in segments, to object storage.
//!
//! - [`writer`]: one take (a published track from start to end) as RTP into a GStreamer
//!   pipeline that writes WebM (Matroska for H.264) segments of about ten seconds.
//! - [`finalize`]: a take's segments joined into one seekable file.
//! - [`manifest`]: the per-recording manifest (versioned JSON) and the clock that puts every
//!   take on one session timeline.
//! - [`store`]: object storage behind one trait, a local directory or S3.
//! - [`health`]: whether the store answers, from the outcome of every operation on it.
//! - [`session`]: a recording in progress ([`Recorder`], [`Recording`]): takes fed from media
//!   taps, segments uploaded as they close (spooled on disk while the store is unreachable), the
//!   finish, and recovery of recordings a crash interrupted.
//!
//! Invariant: the recorder knows no HTTP and no SQL; it is given taps and a storage handle.

mod error;
pub mod finalize;
pub mod health;
pub mod manifest;
pub mod session;
pub mod store;
pub mod writer;

pub use error::RecorderError;
pub use health::Outage;
pub use manifest::{Manifest, MediaKind, ParticipantEntry, RecordingStatus};
pub use session::{PacketSource, Recorder, Recording, TakeInfo};
pub use store::{LocalStore, ObjectStore, S3Config, S3Store, Usage};
