//! Authentication: who is calling, and the tokens that say so.
//!
//! - [`password`]: argon2id hashing, run off the async threads.
//! - [`opaque`]: random tokens (refresh, invite) and the hashes we store instead of them.
//! - [`tokens`]: signed JWTs: access tokens for the API, join tokens for one room.
//! - [`principal`]: extractors that turn a bearer token into a [`Principal`].
//! - [`rate_limit`]: brute-force protection for sign-in.

pub mod opaque;
pub mod password;
pub mod principal;
pub mod rate_limit;
pub mod tokens;

pub use principal::{AuthUser, MaybePrincipal, Principal};
pub use tokens::{JoinClaims, TokenKeys};
