//! Opaque random tokens (refresh tokens, invite links) and the hashes stored in their place.
//!
//! A token is 256 bits from the operating system's CSPRNG, written in unpadded base64url
//! (43 characters). The database keeps only SHA-256 of it: a leaked database does not let anyone
//! sign in or use an invite. A plain hash is enough (no salt or slow hash) because the input is
//! uniformly random, not a password.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Length of an encoded token.
pub const TOKEN_LEN: usize = 43;

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new random token.
pub fn generate() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    Ok(encode(&bytes))
}

/// Whether `token` has the shape of one of ours (checked before touching the database).
pub fn is_well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The stored form of a token: hex SHA-256.
pub fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_well_formed() {
        let a = generate().expect("token");
        let b = generate().expect("token");
        assert_ne!(a, b);
        assert!(is_well_formed(&a), "{a}");
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).expect("base64url").len(), 32);
    }

    #[test]
    fn malformed_tokens_are_recognised() {
        assert!(!is_well_formed(""));
        assert!(!is_well_formed(&"a".repeat(44)));
        assert!(!is_well_formed(&format!("{}/", "a".repeat(42))));
    }

    #[test]
    fn hash_is_stable_hex_and_not_the_token() {
        let token = generate().expect("token");
        let stored = hash(&token);
        assert_eq!(stored, hash(&token));
        assert_eq!(stored.len(), 64);
        assert!(!stored.contains(&token));
    }
}
