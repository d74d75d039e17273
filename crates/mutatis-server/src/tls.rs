//! Serving HTTPS: the certificate chain and private key a node presents (`mutatis serve
//! --tls-cert PEM --tls-key PEM`), loaded into a rustls acceptor (the `ring` provider) that
//! [`serve_with_tls`](crate::serve_with_tls) wraps every accepted connection in.
//!
//! Any problem with the files (missing, not PEM, no key, a key that is not the certificate's)
//! is found here, before the node listens, and named with the file.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
pub use tokio_rustls::TlsAcceptor;

/// A certificate or key file that cannot be served with.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The certificate file is missing, unreadable, or holds no PEM certificate.
    #[error("TLS certificate {path}: {reason}")]
    Certificate {
        /// The file named.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file is missing, unreadable, or holds no PEM private key.
    #[error("TLS private key {path}: {reason}")]
    Key {
        /// The file named.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key does not belong to the certificate, or rustls refuses the pair.
    #[error("TLS certificate {cert} with key {key}: {reason}")]
    Pair {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// Why the pair was refused.
        reason: String,
    },
}

/// A TLS acceptor presenting the chain in `cert` (PEM, the node's certificate first) with the
/// private key in `key` (PEM: PKCS#8, PKCS#1 or SEC1).
pub fn acceptor_from_pem_files(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsConfigError> {
    let cert_shown = cert.display().to_string();
    let key_shown = key.display().to_string();
    // Read first, so that a missing file says so plainly (the PEM parser's error would not).
    let cert_pem = std::fs::read(cert).map_err(|e| TlsConfigError::Certificate {
        path: cert_shown.clone(),
        reason: e.to_string(),
    })?;
    let key_pem = std::fs::read(key).map_err(|e| TlsConfigError::Key {
        path: key_shown.clone(),
        reason: e.to_string(),
    })?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::Certificate {
            path: cert_shown.clone(),
            reason: format!("not a PEM certificate chain: {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsConfigError::Certificate {
            path: cert_shown,
            reason: "no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".into(),
        });
    }
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsConfigError::Key {
        path: key_shown.clone(),
        reason: format!("no PEM private key in the file ({e})"),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pair_error = |reason: String| TlsConfigError::Pair {
        cert: cert_shown.clone(),
        key: key_shown.clone(),
        reason,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| pair_error(e.to_string()))?
        .with_no_client_auth()
        // Checks that the key is the certificate's: a mismatched pair fails here, at start,
        // not at every client's handshake.
        .with_single_cert(chain, private_key)
        .map_err(|e| pair_error(e.to_string()))?;
    // The server speaks HTTP/1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
