//! Cross-crate tests for Sightline. The tests live in `it/` (one integration binary that starts
//! the real server on port 0 against SQLite and PostgreSQL) and `e2e/` (browser tests in headless
//! Chromium, run by `scripts/test`). This library target is empty on purpose.
