//! Password hashing with argon2id (the crate's defaults: 19 MiB, 2 passes).
//!
//! Hashing takes tens of milliseconds of CPU by design, so it runs on tokio's blocking pool and
//! never stalls the threads serving other requests.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::error::ApiError;

/// A hash of a random password, verified against when an account does not exist so that a
/// failed sign-in takes as long whether or not the email is known.
static DECOY_HASH: LazyLock<Option<String>> = LazyLock::new(|| {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).ok()?;
    hash_now(&super::opaque::encode(&secret)).ok()
});

fn hash_now(password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| ApiError::Internal(format!("salt encoding: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| ApiError::Internal(format!("password hashing: {e}")))
}

fn verify_now(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Hashes a password into a PHC string.
pub async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| ApiError::Internal(format!("hashing task: {e}")))?
}

/// Checks a password against a stored hash; `None` burns the same time against a decoy hash and
/// fails.
pub async fn verify(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match hash {
        Some(hash) => verify_now(&password, &hash),
        None => {
            if let Some(decoy) = DECOY_HASH.as_deref() {
                verify_now(&password, decoy);
            }
            false
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_only_the_right_password() {
        let stored = hash("correct horse battery".into()).await.expect("hash");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse battery".into(), Some(stored.clone())).await);
        assert!(!verify("wrong horse battery".into(), Some(stored)).await);
        assert!(!verify("correct horse battery".into(), None).await);
    }

    #[tokio::test]
    async fn same_password_gets_different_salts() {
        let a = hash("same password here".into()).await.expect("hash");
        let b = hash("same password here".into()).await.expect("hash");
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn garbage_hash_never_verifies() {
        assert!(!verify("anything".into(), Some("not-a-phc-string".into())).await);
    }
}
