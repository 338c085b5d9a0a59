//! Mutual TLS for the link: one CA the operator runs signs the nodes' and the workers'
//! certificates; each end presents its own and accepts only the other's signed by that CA.

use std::path::Path;
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::error::LinkError;

/// The protocol both ends name in the handshake: a worker and a node of versions that do not
/// speak the same link fail there, with a reason, rather than mid-recording.
pub(crate) const ALPN: &[u8] = b"sightline-link/1";

/// One end's certificate, key and the CA it trusts, loaded from PEM files.
pub struct LinkTls {
    ca: RootCertStore,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for LinkTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkTls")
            .field("ca_roots", &self.ca.len())
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl LinkTls {
    /// Reads the CA's certificate(s), this end's certificate chain and its private key.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<LinkTls, LinkError> {
        let mut roots = RootCertStore::empty();
        for found in CertificateDer::pem_file_iter(ca).map_err(|e| tls_error("CA", ca, e))? {
            let found = found.map_err(|e| tls_error("CA", ca, e))?;
            roots.add(found).map_err(|e| tls_error("CA", ca, e))?;
        }
        if roots.is_empty() {
            return Err(tls_error("CA", ca, "no certificate in the file"));
        }
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| tls_error("certificate", cert, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error("certificate", cert, e))?;
        if chain.is_empty() {
            return Err(tls_error("certificate", cert, "no certificate in the file"));
        }
        let private = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_error("key", key, e))?;
        Ok(LinkTls {
            ca: roots,
            chain,
            key: private,
        })
    }

    /// The node's side: its certificate, and a worker's required.
    pub(crate) fn server(&self) -> Result<QuicServerConfig, LinkError> {
        let provider = provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(self.ca.clone()),
            provider.clone(),
        )
        .build()
        .map_err(|e| LinkError::Endpoint(format!("client verifier: {e}")))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| LinkError::Endpoint(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| LinkError::Endpoint(format!("certificate and key: {e}")))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        QuicServerConfig::try_from(config).map_err(|e| LinkError::Endpoint(e.to_string()))
    }

    /// The worker's side: its certificate, and the node's checked against the CA.
    pub(crate) fn client(&self) -> Result<QuicClientConfig, LinkError> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| LinkError::Endpoint(e.to_string()))?
            .with_root_certificates(self.ca.clone())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| LinkError::Endpoint(format!("certificate and key: {e}")))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        QuicClientConfig::try_from(config).map_err(|e| LinkError::Endpoint(e.to_string()))
    }
}

fn tls_error(what: &'static str, path: &Path, err: impl std::fmt::Display) -> LinkError {
    LinkError::Tls {
        what,
        path: path.display().to_string(),
        message: err.to_string(),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
