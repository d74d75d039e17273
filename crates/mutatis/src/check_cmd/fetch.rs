//! One blocking GET, enough to fetch a node's manifest (`GET /schema`) over http or https
//! (reqwest, with the process's trust: `mutatis_client::tls`).
//!
//! A deadline over the whole exchange (connecting, the TLS handshake, sending, reading the
//! body) and a size cap on the body.

use std::io::Read;
use std::time::Duration;

use reqwest::Url;

/// The largest manifest accepted (a schema set is small; this only stops a runaway server).
const MAX_BODY: usize = 64 << 20;

/// How much of an error body is quoted.
const SNIPPET: usize = 300;

/// Why a fetch failed. Every message says what was being done when it failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("not an http(s):// URL: {0}")]
    BadUrl(String),
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Io(String),
    #[error("the server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the response is larger than {MAX_BODY} bytes")]
    TooLarge,
}

/// Parse `url` (`http://` or `https://`). A URL with no path (or `/`) means the node's
/// manifest, `/schema`.
pub fn parse_url(url: &str) -> Result<Url, FetchError> {
    let bad = |why: &str| FetchError::BadUrl(format!("{url} ({why})"));
    let mut parsed = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("expected http(s)://HOST[:PORT][/PATH]"));
    }
    if !parsed.has_host() || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("expected a host name, without user information"));
    }
    if parsed.path() == "/" {
        parsed.set_path("/schema");
    }
    Ok(parsed)
}

/// GET `url` and return the body of a `200` response. The whole exchange must finish within
/// `timeout`.
pub fn get(url: &str, timeout: Duration) -> Result<Vec<u8>, FetchError> {
    let url = parse_url(url)?;
    let addr = match url.port_or_known_default() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let client = reqwest::blocking::Client::builder()
        .tls_certs_merge(mutatis_client::tls::trusted_cas())
        .timeout(timeout)
        .user_agent(concat!("mutatis/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FetchError::Io(format!("cannot make an HTTP client: {e}")))?;
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            FetchError::Timeout(timeout)
        } else if e.is_connect() {
            FetchError::Connect {
                addr: addr.clone(),
                reason: chain(&e),
            }
        } else {
            FetchError::Io(chain(&e))
        }
    };
    let response = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .map_err(failed)?;
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(FetchError::TooLarge);
    }
    let status = response.status();
    // One byte past the cap tells a body at the cap from a larger one.
    let mut body = Vec::new();
    response
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| {
            // The blocking body reports reqwest's own errors (a timeout) as I/O errors.
            match e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
            {
                Some(re) if re.is_timeout() => FetchError::Timeout(timeout),
                _ => FetchError::Io(e.to_string()),
            }
        })?;
    if body.len() > MAX_BODY {
        return Err(FetchError::TooLarge);
    }
    if status != reqwest::StatusCode::OK {
        return Err(FetchError::Status {
            status: status.as_u16(),
            body: snippet(&body),
        });
    }
    Ok(body)
}

/// An error with its causes (reqwest's own message alone says only "error sending request";
/// the cause says which: a refused connection, an unknown certificate authority, …).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The start of an error body, to quote.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut snippet: String = text.chars().take(SNIPPET).collect();
    if text.chars().count() > SNIPPET {
        snippet.push('…');
    }
    snippet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_default_to_the_schema_path() {
        let u = parse_url("http://node:8080").unwrap();
        assert_eq!(u.as_str(), "http://node:8080/schema");
        assert_eq!(parse_url("http://node/").unwrap().path(), "/schema");
        assert_eq!(
            parse_url("http://node/api/schema").unwrap().path(),
            "/api/schema"
        );
        assert_eq!(
            parse_url("https://node?x=1").unwrap().as_str(),
            "https://node/schema?x=1"
        );
        assert_eq!(
            parse_url("http://[::1]:9/").unwrap().host_str(),
            Some("[::1]")
        );
        assert!(parse_url("ftp://node").is_err());
        assert!(parse_url("http://node:x").is_err());
        assert!(parse_url("http://user@node").is_err());
    }

    #[test]
    fn error_bodies_are_quoted_short() {
        assert_eq!(snippet(b"no such path"), "no such path");
        let long = "x".repeat(SNIPPET + 10);
        let quoted = snippet(long.as_bytes());
        assert_eq!(quoted.chars().count(), SNIPPET + 1);
        assert!(quoted.ends_with('…'));
    }
}
