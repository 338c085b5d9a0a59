//! How a node proves itself to NATS and protects the connection: a user and password, a
//! token or an NKey, and TLS with the operator's CA and, for servers that verify clients, this node's
//! certificate. A cluster's NATS carries joins, room commands and placements, so anything that
//! can publish there can act for a node: production clusters should use both.
//!
//! Only turns settings into `async_nats::ConnectOptions`; reads no files itself (the client
//! reads the PEM files when it connects, and a bad one fails the join).

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

/// Who this node is to the NATS server.
#[derive(Debug, Clone, Default)]
pub enum NatsAuth {
    /// No credentials (a NATS server that requires none).
    #[default]
    None,
    /// The server's `authorization { user, password }`.
    UserPassword {
        /// User name.
        user: String,
        /// Password.
        password: SecretString,
    },
    /// The server's `authorization { token }`.
    Token(SecretString),
    /// An NKey user of the server's `authorization { users = [{ nkey: U… }] }`: the seed
    /// (`SU…`) signs the server's challenge and never leaves the node.
    NKey(SecretString),
}

/// TLS towards the NATS server.
#[derive(Debug, Clone, Default)]
pub struct NatsTls {
    /// Use TLS even if the URL says `nats://` and the server does not ask for it. (A `tls://`
    /// URL, a CA file or a client certificate turns TLS on too.)
    pub required: bool,
    /// PEM file of the CA that signed the server's certificate; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate and key this node presents (servers with `verify: true`).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl NatsTls {
    /// Whether anything here asks for TLS.
    pub fn wanted(&self) -> bool {
        self.required || self.ca_file.is_some() || self.client_cert.is_some()
    }
}

/// `options` with the credentials and TLS settings applied for the server at `url`. A `tls://`
/// URL requires TLS on every connection, reconnections to other servers of a NATS cluster
/// included (which the server may announce as `nats://`).
pub(crate) fn apply(
    mut options: async_nats::ConnectOptions,
    url: &str,
    auth: &NatsAuth,
    tls: &NatsTls,
) -> async_nats::ConnectOptions {
    options = match auth {
        NatsAuth::None => options,
        NatsAuth::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.expose_secret().to_owned())
        }
        NatsAuth::Token(token) => options.token(token.expose_secret().to_owned()),
        NatsAuth::NKey(seed) => options.nkey(seed.expose_secret().to_owned()),
    };
    if tls.wanted() || url.starts_with("tls://") {
        options = options.require_tls(true);
    }
    if let Some(ca) = &tls.ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &tls.client_cert {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    options
}
