//! How one PostgreSQL connection is made: plain or TLS, as libpq's `sslmode` in the URL says.
//!
//! | `sslmode`          | encrypted                    | server certificate checked                   |
//! |--------------------|------------------------------|----------------------------------------------|
//! | `disable`          | never                        | –                                            |
//! | `prefer` (default) | if the server offers TLS     | no                                           |
//! | `require`          | always                       | no                                           |
//! | `verify-ca`        | always                       | against `sslrootcert=FILE`                   |
//! | `verify-full`      | always                       | against `sslrootcert=FILE`, and the host name |
//!
//! The `postgres` crate parses only `disable`, `prefer` and `require`, and no `sslrootcert`:
//! [`split_tls_params`] takes both out of the URL, the crate gets the rest (with `require` for
//! the verify modes), and the rustls verifier (the `ring` provider) does the checking.

use std::str::FromStr;
use std::sync::Arc;

use postgres::config::SslMode as CrateSslMode;
use postgres::{Client, Config, NoTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::backend::Backend;
use crate::error::StoreError;
use crate::postgres_backend::PostgresBackend;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A connection string with its TLS parameters taken out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TlsParams {
    pub mode: SslMode,
    /// `sslrootcert`: the CA file the verify modes check the server's certificate against.
    pub root_cert: Option<String>,
    /// The connection string without `sslmode` and `sslrootcert`, for the `postgres` crate.
    pub rest: String,
}

/// Take `sslmode` and `sslrootcert` out of `url`: a URL (`postgres://…?sslmode=verify-full&
/// sslrootcert=/ca.pem`) or libpq's `key=value` form (`host=… sslmode=require`). Pure; an
/// unknown `sslmode`, or a verify mode without `sslrootcert`, is an error saying so.
pub(crate) fn split_tls_params(url: &str) -> Result<TlsParams, String> {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let mut mode = None;
    let mut root_cert = None;
    let rest = if is_url {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, query),
            None => (url, ""),
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => mode = Some(percent_decode(value)?),
                "sslrootcert" => root_cert = Some(percent_decode(value)?),
                _ => kept.push(pair),
            }
        }
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        let mut kept = Vec::new();
        for token in url.split_whitespace() {
            match token.split_once('=') {
                Some(("sslmode", value)) => mode = Some(value.trim_matches('\'').to_owned()),
                Some(("sslrootcert", value)) => {
                    root_cert = Some(value.trim_matches('\'').to_owned())
                }
                _ => kept.push(token),
            }
        }
        kept.join(" ")
    };
    let mode = match mode.as_deref() {
        None | Some("prefer") => SslMode::Prefer,
        Some("disable") => SslMode::Disable,
        Some("require") => SslMode::Require,
        Some("verify-ca") => SslMode::VerifyCa,
        Some("verify-full") => SslMode::VerifyFull,
        // libpq's `allow` (plain unless the server insists) is not offered by the crate.
        Some(other) => {
            return Err(format!(
            "sslmode={other} is not supported (disable, prefer, require, verify-ca, verify-full)"
        ))
        }
    };
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
        return Err(format!(
            "sslmode={} needs sslrootcert=FILE (the CA to check the server's certificate against)",
            if mode == SslMode::VerifyCa {
                "verify-ca"
            } else {
                "verify-full"
            }
        ));
    }
    Ok(TlsParams {
        mode,
        root_cert,
        rest,
    })
}

/// `%XX` escapes in a URL's query value (a file path may hold `/` as `%2F`, spaces as `%20`).
fn percent_decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {value:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{value:?} is not UTF-8 once decoded"))
}

/// Connect one client to `url`, encrypted as its `sslmode` says.
pub(crate) fn connect(url: &str) -> Result<Client, StoreError> {
    let fail = |reason: String| StoreError::Backend {
        backend: <PostgresBackend as Backend>::NAME,
        operation: "connect",
        reason,
    };
    let params = split_tls_params(url).map_err(&fail)?;
    let mut config = Config::from_str(&params.rest).map_err(|e| fail(e.to_string()))?;
    let connected = match params.mode {
        SslMode::Disable => config.ssl_mode(CrateSslMode::Disable).connect(NoTls),
        mode => {
            let crate_mode = if mode == SslMode::Prefer {
                CrateSslMode::Prefer
            } else {
                CrateSslMode::Require
            };
            let tls = client_config(mode, params.root_cert.as_deref()).map_err(&fail)?;
            config
                .ssl_mode(crate_mode)
                .connect(MakeRustlsConnect::new(tls))
        }
    };
    connected.map_err(|e| fail(with_causes(&e)))
}

/// An error with its causes: the `postgres` crate's own message says only "error performing
/// TLS handshake"; its cause says why (an unknown issuer, a name the certificate lacks).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let cause = s.to_string();
        // Some errors repeat their cause in their own message.
        if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = s.source();
    }
    text
}

/// The rustls client configuration for `mode` (not `Disable`).
fn client_config(mode: SslMode, root_cert: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, root_cert) {
        (SslMode::VerifyCa | SslMode::VerifyFull, Some(path)) => {
            let roots = root_store(path)?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            if mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
        _ => Arc::new(Unchecked(Arc::clone(&provider))),
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The CAs in the PEM file `path`.
fn root_store(path: &str) -> Result<RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| format!("sslrootcert {path}: {e}"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("sslrootcert {path}: not PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {path}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "sslrootcert {path}: no PEM certificate in the file"
        ));
    }
    Ok(roots)
}

/// `verify-ca`: the chain must lead to a trusted CA, whatever host name it was issued for.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name is checked last, once the chain is good: a name error means all else held.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require`: encrypted, the certificate taken as it comes (libpq's meaning);
/// the handshake's own signatures are still checked.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> TlsParams {
        split_tls_params(url).unwrap()
    }

    #[test]
    fn prefer_is_the_default_and_the_url_is_left_alone() {
        let p = split("postgres://postgres@127.0.0.1:5432/test");
        assert_eq!(p.mode, SslMode::Prefer);
        assert_eq!(p.root_cert, None);
        assert_eq!(p.rest, "postgres://postgres@127.0.0.1:5432/test");
    }

    #[test]
    fn ssl_parameters_are_taken_out_and_the_others_kept() {
        let p = split(
            "postgresql://u@h/db?connect_timeout=5&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20x.pem&application_name=m",
        );
        assert_eq!(p.mode, SslMode::VerifyFull);
        assert_eq!(p.root_cert.as_deref(), Some("/etc/ca x.pem"));
        assert_eq!(
            p.rest,
            "postgresql://u@h/db?connect_timeout=5&application_name=m"
        );
        let p = split("postgres://h/db?sslmode=verify-ca&sslrootcert=/ca.pem");
        assert_eq!(p.mode, SslMode::VerifyCa);
        assert_eq!(p.rest, "postgres://h/db");
        assert_eq!(
            split("postgres://h/db?sslmode=disable").mode,
            SslMode::Disable
        );
        assert_eq!(
            split("postgres://h/db?sslmode=require").mode,
            SslMode::Require
        );
    }

    #[test]
    fn the_key_value_form_too() {
        let p = split("host=127.0.0.1 user=postgres sslmode=verify-full sslrootcert=/ca.pem");
        assert_eq!(p.mode, SslMode::VerifyFull);
        assert_eq!(p.root_cert.as_deref(), Some("/ca.pem"));
        assert_eq!(p.rest, "host=127.0.0.1 user=postgres");
    }

    #[test]
    fn unknown_modes_and_verification_without_a_ca_are_refused() {
        let e = split_tls_params("postgres://h/db?sslmode=allow").unwrap_err();
        assert!(e.contains("sslmode=allow"), "{e}");
        let e = split_tls_params("postgres://h/db?sslmode=verify-full").unwrap_err();
        assert!(e.contains("sslrootcert"), "{e}");
        let e = split_tls_params("postgres://h/db?sslmode=verify-ca").unwrap_err();
        assert!(e.contains("verify-ca"), "{e}");
        assert!(split_tls_params("postgres://h/db?sslrootcert=%zz").is_err());
    }

    /// `DATABASE_URL` and `MUTATIS_PG_CA` (`.ci/postgres-tls`), or a loud skip; under CI a
    /// failure.
    fn pg_tls_env() -> Option<(String, String)> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        match (get("DATABASE_URL"), get("MUTATIS_PG_CA")) {
            (Some(url), Some(ca)) => Some((url, ca)),
            _ => {
                let ci = get("CI").is_some_and(|v| v != "false" && v != "0");
                assert!(
                    !ci,
                    "CI must run the PostgreSQL TLS test: DATABASE_URL or MUTATIS_PG_CA is not set"
                );
                eprintln!("SKIPPED: DATABASE_URL or MUTATIS_PG_CA is not set: the PostgreSQL TLS test did NOT run");
                None
            }
        }
    }

    fn encrypted(client: &mut Client) -> bool {
        client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .expect("pg_stat_ssl")
            .get(0)
    }

    #[test]
    fn each_sslmode_connects_as_libpq_would() {
        let Some((url, ca)) = pg_tls_env() else {
            return;
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let with = |params: &str| format!("{url}{sep}{params}");
        let full = with(&format!("sslmode=verify-full&sslrootcert={ca}"));
        assert!(encrypted(
            &mut connect(&full).expect("verify-full with the server's CA")
        ));
        let chain = with(&format!("sslmode=verify-ca&sslrootcert={ca}"));
        assert!(encrypted(
            &mut connect(&chain).expect("verify-ca with the server's CA")
        ));
        assert!(encrypted(
            &mut connect(&with("sslmode=require")).expect("require")
        ));
        // The default (prefer): encrypted, as the server offers TLS.
        assert!(encrypted(&mut connect(&url).expect("prefer")));
        assert!(!encrypted(
            &mut connect(&with("sslmode=disable")).expect("disable")
        ));
        // A CA that did not sign the server's certificate: refused, saying why.
        let err = connect(&with("sslmode=verify-full&sslrootcert=/no/such/ca.pem"))
            .err()
            .expect("a missing CA file fails")
            .to_string();
        assert!(err.contains("/no/such/ca.pem"), "{err}");
    }
}
