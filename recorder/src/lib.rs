//! Sightline's server-side recorder.
//!
//! Status: not built yet. This crate will consume RTP from the SFU's media taps, write each track
//! without transcoding through GStreamer in short segments, and store the segments and a
//! per-recording manifest in object storage (a local directory or S3).
//!
//! Invariant: the recorder knows no HTTP and no SQL; it is given taps and a storage handle.
