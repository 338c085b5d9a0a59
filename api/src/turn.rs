//! TURN credentials for clients, in the form of the TURN REST API draft that coturn checks with
//! `use-auth-secret`: the username is `<expiry unix seconds>:<participant id>` and the password
//! the base64 HMAC-SHA1 of that username under the secret Sightline and coturn share.
//!
//! Credentials are issued for one connection at a time (every `joined` and `media_reset`) and
//! expire after `turn.credential_ttl_secs`: nothing long-lived ever reaches a browser. The
//! participant id is opaque (no name, no email), so the TURN server's logs hold nothing personal.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::ExposeSecret;
use sha1::Sha1;
use sightline_config::TurnSettings;
use sightline_signaling::protocol::IceServer;

/// The TURN servers for one connection of `participant`, valid from `now` (unix seconds) for the
/// configured time; none when TURN is not configured.
pub fn ice_servers(settings: &TurnSettings, participant: &str, now: i64) -> Vec<IceServer> {
    let Some(secret) = &settings.shared_secret else {
        return Vec::new();
    };
    if settings.urls.is_empty() {
        return Vec::new();
    }
    let ttl = i64::try_from(settings.credential_ttl_secs).unwrap_or(i64::MAX);
    let username = format!("{}:{participant}", now.saturating_add(ttl));
    let credential = credential(secret.expose_secret().as_bytes(), &username);
    vec![IceServer {
        urls: settings.urls.clone(),
        username,
        credential,
    }]
}

/// How often a connected client gets fresh credentials (`ice_servers`): at half their lifetime,
/// so an ICE restart late in a long interview still has a relay. `None` without TURN.
pub fn refresh_period(settings: &TurnSettings) -> Option<Duration> {
    (settings.shared_secret.is_some() && !settings.urls.is_empty())
        .then(|| Duration::from_secs(settings.credential_ttl_secs / 2))
}

/// The password for `username`: base64 of its HMAC-SHA1 under `secret`.
pub fn credential(secret: &[u8], username: &str) -> String {
    // HMAC takes a key of any length; this cannot fail.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn settings(urls: &[&str], secret: Option<&str>) -> TurnSettings {
        TurnSettings {
            urls: urls.iter().map(|u| (*u).to_owned()).collect(),
            shared_secret: secret.map(|s| SecretString::from(s.to_owned())),
            credential_ttl_secs: 600,
        }
    }

    #[test]
    fn the_credential_is_rfc_2202s_hmac_sha1_in_base64() {
        // RFC 2202, test case 2: HMAC-SHA1("Jefe", "what do ya want for nothing?").
        assert_eq!(
            credential(b"Jefe", "what do ya want for nothing?"),
            STANDARD.encode([
                0xef, 0xfc, 0xdf, 0x6a, 0xe5, 0xeb, 0x2f, 0xa2, 0xd2, 0x74, 0x16, 0xd5, 0xf1, 0x84,
                0xdf, 0x9c, 0x25, 0x9a, 0x7c, 0x79
            ])
        );
    }

    #[test]
    fn servers_carry_an_expiring_username_for_the_participant() {
        let turn = settings(
            &["turn:127.0.0.1:3478?transport=udp"],
            Some("0123456789abcdef"),
        );
        let servers = ice_servers(&turn, "p-7", 1_000);
        let [server] = servers.as_slice() else {
            panic!("one server: {servers:?}");
        };
        assert_eq!(server.urls, ["turn:127.0.0.1:3478?transport=udp"]);
        assert_eq!(server.username, "1600:p-7");
        assert_eq!(
            server.credential,
            credential(b"0123456789abcdef", "1600:p-7")
        );
        assert_ne!(
            ice_servers(&turn, "p-7", 1_001)[0].credential,
            server.credential,
            "a later issue is a new credential"
        );
        assert!(ice_servers(&settings(&[], Some("0123456789abcdef")), "p", 0).is_empty());
        assert_eq!(
            refresh_period(&settings(&["turn:h"], Some("0123456789abcdef"))),
            Some(Duration::from_secs(300)),
            "half of the 600 s a credential lasts"
        );
        assert_eq!(refresh_period(&settings(&["turn:h"], None)), None);
        assert!(ice_servers(&settings(&["turn:h"], None), "p", 0).is_empty());
    }
}
