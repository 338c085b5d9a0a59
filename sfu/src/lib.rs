//! Sightline's selective forwarding unit: the media plane.
//!
//! Status: not built yet. This crate will hold the sans-IO forwarding core on `str0m` (one `Rtc`
//! per peer connection, RTP-level forwarding with sequence and timestamp rewriting, simulcast
//! layer selection) and a thin tokio shell of per-core workers that own the UDP sockets.
//!
//! Invariant, kept from the first line of code: this crate depends on no other Sightline crate
//! and knows nothing of HTTP, JWT, SQL or what a room means to the business.
