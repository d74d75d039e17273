//! A small blocking HTTP/1.1 GET, enough to fetch a node's manifest (`GET /schema`).
//!
//! Plain `http://` only (no TLS yet), one request per connection (`Connection: close`), a
//! deadline over the whole exchange (connecting, sending, reading), bodies by
//! `Content-Length`, chunked transfer coding or end of stream, and a size cap. A dedicated
//! client library would bring a dependency tree for what is one request per run.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The largest manifest accepted (a schema set is small; this only stops a runaway server).
const MAX_BODY: usize = 64 << 20;

/// The largest status line plus headers accepted.
const MAX_HEAD: usize = 64 << 10;

/// Why a fetch failed. Every message says what was being done when it failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("not an http:// URL: {0}")]
    BadUrl(String),
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Io(String),
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
    #[error("the server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the response is larger than {MAX_BODY} bytes")]
    TooLarge,
}

/// A parsed `http://host[:port]/path` URL.
#[derive(Debug, PartialEq)]
pub struct Url {
    /// The `Host` header value (`host` or `host:port`, as written).
    pub authority: String,
    pub host: String,
    pub port: u16,
    pub path: String,
}

/// Parse `url`. A URL with no path (or `/`) means the node's manifest, `/schema`.
pub fn parse_url(url: &str) -> Result<Url, FetchError> {
    let bad = |why: &str| FetchError::BadUrl(format!("{url} ({why})"));
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if url.starts_with("https://") {
        return Err(bad(
            "https is not supported yet: fetch the manifest with another tool and pass the file",
        ));
    } else {
        return Err(bad("expected http://HOST[:PORT][/PATH]"));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("expected a host name, without user information"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        // `[::1]:8080`, `host:8080`; a bare IPv6 literal has its colons inside brackets.
        Some((h, p)) if !p.contains(']') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| bad("the port is not a number"))?;
            (h, port)
        }
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("expected a host name"));
    }
    let path = match path {
        "" | "/" => "/schema".to_owned(),
        p if p.starts_with('?') => format!("/schema{p}"),
        p => p.to_owned(),
    };
    Ok(Url {
        authority: authority.to_owned(),
        host: host.to_owned(),
        port,
        path,
    })
}

/// GET `url` and return the body of a `200` response. The whole exchange must finish within
/// `timeout`.
pub fn get(url: &str, timeout: Duration) -> Result<Vec<u8>, FetchError> {
    let url = parse_url(url)?;
    let deadline = Instant::now() + timeout;
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| FetchError::Resolve {
            host: url.host.clone(),
            reason: e.to_string(),
        })?
        .collect();
    let mut last = None;
    let mut stream = None;
    for addr in &addrs {
        let left = remaining(deadline, timeout)?;
        match TcpStream::connect_timeout(addr, left) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(FetchError::Timeout(timeout))
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    let mut stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some((addr, e))) => {
            return Err(FetchError::Connect {
                addr: addr.to_string(),
                reason: e.to_string(),
            })
        }
        (None, None) => {
            return Err(FetchError::Resolve {
                host: url.host.clone(),
                reason: "no address".into(),
            })
        }
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nUser-Agent: mutatis/{}\r\nConnection: close\r\n\r\n",
        url.path,
        url.authority,
        env!("CARGO_PKG_VERSION")
    );
    stream
        .set_write_timeout(Some(remaining(deadline, timeout)?))
        .map_err(io)?;
    stream
        .write_all(request.as_bytes())
        .map_err(|e| timeout_or(e, timeout))?;
    let raw = read_all(&mut stream, deadline, timeout)?;
    parse_response(&raw)
}

fn io(e: std::io::Error) -> FetchError {
    FetchError::Io(e.to_string())
}

fn timeout_or(e: std::io::Error, timeout: Duration) -> FetchError {
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            FetchError::Timeout(timeout)
        }
        _ => io(e),
    }
}

fn remaining(deadline: Instant, timeout: Duration) -> Result<Duration, FetchError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(FetchError::Timeout(timeout))
    } else {
        Ok(left)
    }
}

/// Read until the server closes the connection (it was asked to), within the deadline.
fn read_all(
    stream: &mut TcpStream,
    deadline: Instant,
    timeout: Duration,
) -> Result<Vec<u8>, FetchError> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        stream
            .set_read_timeout(Some(remaining(deadline, timeout)?))
            .map_err(io)?;
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(timeout_or(e, timeout)),
        };
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() > MAX_BODY + MAX_HEAD {
            return Err(FetchError::TooLarge);
        }
    }
}

/// The body of a complete HTTP/1.x response, if its status is 200.
pub fn parse_response(raw: &[u8]) -> Result<Vec<u8>, FetchError> {
    let malformed = |why: &str| FetchError::Malformed(why.to_owned());
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| malformed("the connection closed before the headers ended"))?;
    if head_end > MAX_HEAD {
        return Err(malformed("the headers are too large"));
    }
    let head = std::str::from_utf8(&raw[..head_end])
        .map_err(|_| malformed("the headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(malformed(&format!(
            "unexpected status line `{status_line}`"
        )));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed(&format!("unexpected status line `{status_line}`")))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(malformed(&format!("header line without a colon: `{line}`")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| malformed("Content-Length is not a number"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .split(',')
                .any(|c| c.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    let rest = &raw[head_end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        if rest.len() < n {
            return Err(malformed(&format!(
                "the body ended after {} of {n} bytes",
                rest.len()
            )));
        }
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    if status != 200 {
        let text = String::from_utf8_lossy(&body);
        let mut snippet: String = text.chars().take(300).collect();
        if text.chars().count() > 300 {
            snippet.push('…');
        }
        return Err(FetchError::Status {
            status,
            body: snippet,
        });
    }
    Ok(body)
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, FetchError> {
    let malformed = |why: &str| FetchError::Malformed(format!("chunked body: {why}"));
    let mut out = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| malformed("a chunk size line does not end"))?;
        let line = std::str::from_utf8(&rest[..line_end])
            .map_err(|_| malformed("a chunk size is not text"))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| malformed(&format!("bad chunk size `{size_text}`")))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        // `size` comes from the wire: compare without overflowing.
        if rest.len().saturating_sub(2) < size {
            return Err(malformed("a chunk is cut short"));
        }
        out.extend_from_slice(&rest[..size]);
        if out.len() > MAX_BODY {
            return Err(FetchError::TooLarge);
        }
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_default_to_the_schema_path() {
        let u = parse_url("http://node:8080").unwrap();
        assert_eq!(
            u,
            Url {
                authority: "node:8080".into(),
                host: "node".into(),
                port: 8080,
                path: "/schema".into()
            }
        );
        assert_eq!(parse_url("http://node/").unwrap().path, "/schema");
        assert_eq!(
            parse_url("http://node/api/schema").unwrap().path,
            "/api/schema"
        );
        assert_eq!(parse_url("http://[::1]:9/").unwrap().host, "::1");
        assert!(parse_url("https://node")
            .unwrap_err()
            .to_string()
            .contains("https"));
        assert!(parse_url("ftp://node").is_err());
        assert!(parse_url("http://node:x").is_err());
    }

    #[test]
    fn responses_by_length_chunks_and_status() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra";
        assert_eq!(parse_response(r).unwrap(), b"{}");
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{\"\r\n3\r\na\":\r\n1\r\n1\r\n0\r\n\r\n";
        assert_eq!(parse_response(r).unwrap(), b"{\"a\":1");
        let r = b"HTTP/1.1 404 Not Found\r\n\r\nno such path";
        let err = parse_response(r).unwrap_err().to_string();
        assert!(err.contains("404") && err.contains("no such path"), "{err}");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
        let huge = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab";
        assert!(parse_response(huge).is_err());
    }
}
