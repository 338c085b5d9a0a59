//! Sightline's proctoring checks, as plain state machines over samples (sans-IO).
//!
//! The server decodes what the SFU received from a candidate (never what the browser says) and
//! hands each sampled frame here as numbers: its luma statistics, how much it changed since the
//! previous one, and, when a face detector ran, what it found. The checks decide when something a
//! person should look at begins and ends; they never read a clock (the session time comes with
//! every sample) and know nothing of GStreamer, models, HTTP or storage.
//!
//! - [`frame`]: luma statistics of a frame and the difference between two frames.
//! - [`debounce`]: a condition that must hold for a while to open and be gone for a while to close.
//! - [`camera`]: the camera checks (`camera_dark`, `camera_frozen`, `face_absent`,
//!   `multiple_faces`) over [`camera::CameraSample`]s, with configurable thresholds.
//!
//! Invariant: a check that cannot run (no detector, a detector that failed) never opens an
//! event. Results are marks for a person to look at, never verdicts.
//!
//! Status: the rules only. Decoding the tapped tracks, the face detector, storing events and
//! showing them are not built yet (see the README's status table).

pub mod blazeface;
pub mod camera;
pub mod debounce;
pub mod decode;
pub mod error;
pub mod feed;
pub mod frame;
pub mod image;
pub mod side;
pub mod watch;

pub use blazeface::{Face, FaceDetector};
pub use camera::{CameraChecks, CameraConfig, CameraSample, Check, Faces, Transition};
pub use debounce::{Debounce, Edge};
pub use error::ProctorError;
pub use frame::{LumaStats, mean_abs_difference};
pub use image::RgbImage;
pub use side::{SideConfig, SideSample, SideViewChecks};
pub use watch::{Detectors, FaceRules, Finding, Source, Watch, WatchConfig, watch};
