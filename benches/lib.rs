//! Bench crate.
