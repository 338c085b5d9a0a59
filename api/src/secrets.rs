//! The JWT signing secret: from settings, or generated once and kept in the data directory.
//!
//! The generated secret is written with mode 0600 and never logged; restarting the server keeps
//! it, so tokens issued before a restart stay valid.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sightline_config::{MIN_JWT_SECRET_BYTES, Settings};

use crate::error::ApiError;

/// File name of the generated secret inside `data.dir`.
pub const SECRET_FILE: &str = "jwt_secret";

/// The configured secret, or the one kept in (or newly written to) the data directory.
pub fn jwt_secret(settings: &Settings) -> Result<SecretString, ApiError> {
    if let Some(secret) = &settings.auth.jwt_secret {
        return Ok(secret.clone());
    }
    load_or_create(&settings.data.dir.join(SECRET_FILE))
}

fn load_or_create(path: &Path) -> Result<SecretString, ApiError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = SecretString::from(text.trim().to_owned());
            if secret.expose_secret().len() < MIN_JWT_SECRET_BYTES {
                return Err(ApiError::Internal(format!(
                    "{} is shorter than {MIN_JWT_SECRET_BYTES} bytes; delete it to regenerate",
                    path.display()
                )));
            }
            Ok(secret)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 48];
            getrandom::fill(&mut bytes)
                .map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
            let secret = URL_SAFE_NO_PAD.encode(bytes);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| ApiError::Internal(format!("writing {}: {e}", path.display())))?;
            file.write_all(secret.as_bytes())
                .map_err(|e| ApiError::Internal(format!("writing {}: {e}", path.display())))?;
            Ok(SecretString::from(secret))
        }
        Err(err) => Err(ApiError::Internal(format!(
            "reading {}: {err}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn generated_once_private_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(SECRET_FILE);
        let first = load_or_create(&path).expect("created");
        assert!(first.expose_secret().len() >= MIN_JWT_SECRET_BYTES);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = load_or_create(&path).expect("read back");
        assert_eq!(first.expose_secret(), second.expose_secret());
    }

    #[test]
    fn short_secret_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(SECRET_FILE);
        std::fs::write(&path, "short").expect("write");
        assert!(load_or_create(&path).is_err());
    }
}
