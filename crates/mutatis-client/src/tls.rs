//! The trust every outgoing HTTP(S) call of a process shares: replication peers, the
//! [`Client`](crate::Client), and (through `mutatis-server`) replication jobs and webhooks.
//!
//! With the `rustls` feature, HTTPS goes through rustls with the `ring` provider; a server's
//! certificate is checked against the platform's roots plus the CAs added with
//! [`add_trusted_ca_file`] (nodes behind a private CA, tests with a self-signed one). Every
//! HTTP client the crates build comes from [`http_client_builder`], so a CA added once at
//! start is trusted by all of them. Without the feature only plain http is spoken.
//!
//! A program that builds its own `reqwest` clients while the `rustls` feature is on calls
//! [`install_crypto_provider`] first (reqwest is built without a provider of its own, to
//! keep aws-lc out of the build).

#[cfg(feature = "rustls")]
use std::path::Path;
#[cfg(feature = "rustls")]
use std::sync::RwLock;

/// CAs trusted on top of the platform's roots, for the whole process.
#[cfg(feature = "rustls")]
static EXTRA_ROOTS: RwLock<Vec<reqwest::Certificate>> = RwLock::new(Vec::new());

/// A CA file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("reading CA certificate {path}: {source}")]
    Read {
        /// The file named.
        path: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file holds no PEM certificate, or one that does not parse.
    #[error("CA certificate {path}: {reason}")]
    Invalid {
        /// The file named.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Make rustls's `ring` provider the process's default (a no-op when one is installed).
pub fn install_crypto_provider() {
    #[cfg(feature = "rustls")]
    {
        // An error only says a provider is already installed, which is what is wanted.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Trust the CA certificates (PEM, one or more) in `path` for every HTTP client built after
/// this by [`http_client_builder`]. Returns how many certificates were added.
#[cfg(feature = "rustls")]
pub fn add_trusted_ca_file(path: &Path) -> Result<usize, TlsError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: shown.clone(),
        source,
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| TlsError::Invalid {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(TlsError::Invalid {
            path: shown,
            reason: "no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".into(),
        });
    }
    let n = certs.len();
    EXTRA_ROOTS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .extend(certs);
    Ok(n)
}

/// A `reqwest` client builder that speaks HTTPS with the process's trust (the platform's
/// roots and the CAs of [`add_trusted_ca_file`]); callers add their timeouts and the like.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    #[cfg(feature = "rustls")]
    {
        let extra = EXTRA_ROOTS
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if !extra.is_empty() {
            return reqwest::Client::builder().tls_certs_merge(extra);
        }
    }
    reqwest::Client::builder()
}

/// The CAs added with [`add_trusted_ca_file`], for a client built another way (a blocking
/// `reqwest` client: `ClientBuilder::tls_certs_merge`).
#[cfg(feature = "rustls")]
pub fn trusted_cas() -> Vec<reqwest::Certificate> {
    EXTRA_ROOTS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}
