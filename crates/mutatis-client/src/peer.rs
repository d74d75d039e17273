//! A mutatis node over HTTP as one end of a replication ([`mutatis_replication::Peer`]).
//!
//! [`HttpPeer`] speaks the replication routes of `mutatis-server`:
//!
//! | call                   | request                                                    |
//! |------------------------|------------------------------------------------------------|
//! | `info`                 | `GET /replication`                                         |
//! | `manifest`             | `GET /schema`                                              |
//! | `changes`              | `GET /replication/changes?since&limit&types&selector&waitMs` |
//! | `apply`                | `POST /replication/apply`                                  |
//! | `checkpoint`           | `GET /replication/checkpoints/{id}` (404: none)            |
//! | `put_checkpoint`       | `PUT /replication/checkpoints/{id}`                        |
//!
//! Failures are sorted by what the replication loop should do about them
//! ([`PeerError::is_retryable`]): a connection error, a timeout, a 5xx, a 408 or a 429 is
//! [`PeerError::Unavailable`] (retried with back-off); a 409
//! `urn:mutatis:problem:manifest-required` is [`PeerError::ManifestRequired`] (the loop sends
//! the source's manifest with the batch); any other 4xx, or an answer that does not follow
//! the protocol, is [`PeerError::Refused`] with the problem's type and detail.

use std::time::Duration;

use mutatis_replication::wire::StoredCheckpoint;
use mutatis_replication::{
    ApplyRequest, ApplyResponse, ChangesBatch, ChangesRequest, NodeInfo, Peer, PeerError,
    MANIFEST_REQUIRED,
};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{BuildError, Problem};

/// How long one request may take. Longer than the longest long-poll the replication loop
/// asks for (20 s), so a quiet feed is never mistaken for an unreachable node; a long-poll
/// gets its own wait on top of it anyway.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The problem type given to an answer that does not follow the replication protocol (not
/// JSON, or not the expected shape): not the node's fault to retry, nor the request's.
const BAD_RESPONSE: &str = "urn:mutatis:problem:bad-response";

/// A mutatis node over HTTP, as the source or the target of a replication.
///
/// ```no_run
/// use mutatis_client::HttpPeer;
/// use mutatis_replication::{replicate, Options};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let source = HttpPeer::new("http://a.example:7878", Some("mutatis_…".to_owned()))?;
/// let target = HttpPeer::new("http://b.example:7878", Some("mutatis_…".to_owned()))?;
/// let done = replicate(&source, &target, &Options::default(), |_| {}).await?;
/// println!("{} documents sent, {} revisions written", done.tally.docs, done.tally.written());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HttpPeer {
    http: reqwest::Client,
    base: Url,
    name: String,
    auth: Option<HeaderValue>,
    /// `Mutatis-Release`, sent with every request when this side names the release it
    /// speaks ([`HttpPeer::speaking`]): the node counts the traffic under it.
    release: Option<HeaderValue>,
}

impl std::fmt::Debug for HttpPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token stays out of debug output.
        f.debug_struct("HttpPeer")
            .field("base", &self.name)
            .field("authenticated", &self.auth.is_some())
            .field("release", &self.release)
            .finish_non_exhaustive()
    }
}

impl HttpPeer {
    /// A peer at `base_url` (`http://host:port`, optionally with a path prefix), sending
    /// `token` as its bearer token. Makes no request.
    pub fn new(base_url: impl Into<String>, token: Option<String>) -> Result<HttpPeer, BuildError> {
        let url = base_url.into();
        let invalid = |reason: &str| BuildError::InvalidUrl {
            url: url.clone(),
            reason: reason.to_owned(),
        };
        let mut base = Url::parse(&url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid("the URL must be http:// or https://"));
        }
        base.set_query(None);
        base.set_fragment(None);
        let auth = token
            .map(|t| {
                let mut v = HeaderValue::from_str(&format!("Bearer {}", t.trim()))
                    .map_err(|_| BuildError::InvalidToken)?;
                v.set_sensitive(true);
                Ok::<_, BuildError>(v)
            })
            .transpose()?;
        let http = crate::tls::http_client_builder().build()?;
        Ok(HttpPeer {
            http,
            name: base.as_str().trim_end_matches('/').to_owned(),
            base,
            auth,
            release: None,
        })
    }

    /// The same peer, telling the node with every request that this side speaks `release`
    /// (the `Mutatis-Release` header), so the node counts the replication traffic in its
    /// usage per release (`GET /admin/releases`). A node that does not know the release
    /// counts nothing for it; replication itself never depends on it.
    pub fn speaking(mut self, release: &str) -> Result<HttpPeer, BuildError> {
        let value = HeaderValue::from_str(release.trim())
            .map_err(|_| BuildError::InvalidRelease(release.to_owned()))?;
        self.release = Some(value);
        Ok(self)
    }

    /// The node's base URL.
    pub fn base_url(&self) -> &str {
        &self.name
    }

    fn url(&self, segments: &[&str], query: &[(&'static str, String)]) -> Url {
        let mut url = self.base.clone();
        // The base was checked to be http(s) in `new`, so it has path segments.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// Send one request; a success status gives its body, anything else a [`PeerError`].
    async fn send(&self, request: Request<'_>) -> Result<Success, PeerError> {
        let url = self.url(request.segments, &request.query);
        let what = format!("{} {}", request.method, url.path());
        let mut builder = self
            .http
            .request(request.method, url)
            .header(ACCEPT, "application/json, application/problem+json")
            .timeout(REQUEST_TIMEOUT + request.extra_wait);
        if let Some(auth) = &self.auth {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        if let Some(release) = &self.release {
            builder = builder.header("mutatis-release", release.clone());
        }
        if let Some(body) = request.body {
            builder = builder.header(CONTENT_TYPE, "application/json").body(body);
        }
        let unavailable = |e: reqwest::Error| PeerError::Unavailable {
            peer: self.name.clone(),
            // The URL is already in `what`, and in the peer's name.
            message: format!("{what}: {}", transport_message(&e.without_url())),
            retry_after: None,
        };
        let response = builder.send().await.map_err(unavailable)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(mutatis_replication::backoff::parse_retry_after);
        let body = response.bytes().await.map_err(unavailable)?;
        if status.is_success() {
            Ok(Success {
                what,
                body: body.to_vec(),
            })
        } else {
            Err(error_from_response(&self.name, &what, status, &body).with_retry_after(retry_after))
        }
    }

    async fn get_json<T: DeserializeOwned>(&self, request: Request<'_>) -> Result<T, PeerError> {
        let answer = self.send(request).await?;
        answer.parse(&self.name)
    }
}

/// One request, before it is sent.
struct Request<'a> {
    method: Method,
    segments: &'a [&'a str],
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    /// Time the server may legitimately wait before answering (a long poll).
    extra_wait: Duration,
}

impl<'a> Request<'a> {
    fn new(method: Method, segments: &'a [&'a str]) -> Self {
        Request {
            method,
            segments,
            query: Vec::new(),
            body: None,
            extra_wait: Duration::ZERO,
        }
    }
}

/// A success status's body, and the request it answers (for messages).
struct Success {
    what: String,
    body: Vec<u8>,
}

impl Success {
    fn parse<T: DeserializeOwned>(&self, peer: &str) -> Result<T, PeerError> {
        let refused = |e: &dyn std::fmt::Display| PeerError::Refused {
            peer: peer.to_owned(),
            status: 200,
            problem: BAD_RESPONSE.to_owned(),
            detail: format!(
                "{}: the answer is not the replication protocol's: {e}",
                self.what
            ),
        };
        // Documents a peer sends are stored here: their numbers are read exactly, as a
        // document written to this node would be, or the batch is refused.
        let value = mutatis_lens::json::from_slice(&self.body).map_err(|e| refused(&e))?;
        serde_json::from_value(value).map_err(|e| refused(&e))
    }
}

/// A transport error's message with its causes (reqwest's own message alone is often just
/// "error sending request").
fn transport_message(e: &reqwest::Error) -> String {
    let mut message = if e.is_timeout() {
        format!("timed out after {} s", REQUEST_TIMEOUT.as_secs())
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

/// Sort an error status into what the replication loop does about it: retry
/// (`Unavailable`), send the manifest (`ManifestRequired`) or stop (`Refused`).
fn error_from_response(peer: &str, what: &str, status: StatusCode, body: &[u8]) -> PeerError {
    let problem = Problem::from_body(status.as_u16(), body);
    let detail = problem
        .detail
        .clone()
        .or_else(|| problem.title.clone())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("no detail").to_owned());
    // 408 and 429 say "later", not "never"; 5xx is the node's own failure.
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        return PeerError::Unavailable {
            peer: peer.to_owned(),
            message: format!("{what}: {} {}: {detail}", status.as_u16(), problem.type_uri),
            retry_after: None,
        };
    }
    if status == StatusCode::CONFLICT && problem.type_uri == MANIFEST_REQUIRED {
        return PeerError::ManifestRequired {
            peer: peer.to_owned(),
        };
    }
    PeerError::Refused {
        peer: peer.to_owned(),
        status: status.as_u16(),
        problem: problem.type_uri,
        detail: format!("{what}: {detail}"),
    }
}

/// The query of `GET /replication/changes`: `types` comma-joined, `selector` as a JSON
/// object (pointer → value), `waitMs` only for a long poll.
fn changes_query(req: &ChangesRequest) -> Vec<(&'static str, String)> {
    let mut query = vec![
        ("since", req.since.to_string()),
        ("limit", req.limit.to_string()),
    ];
    if !req.types.is_empty() {
        query.push(("types", req.types.join(",")));
    }
    if !req.selector.is_empty() {
        // A map of strings to JSON values always serialises.
        query.push((
            "selector",
            serde_json::to_string(&req.selector).unwrap_or_default(),
        ));
    }
    if let Some(wait) = req.wait_ms {
        query.push(("waitMs", wait.to_string()));
    }
    query
}

fn json_body<T: serde::Serialize>(peer: &str, what: &str, value: &T) -> Result<Vec<u8>, PeerError> {
    // The protocol's messages are plain data; a failure here is a bug, reported, not hidden.
    serde_json::to_vec(value).map_err(|e| PeerError::Refused {
        peer: peer.to_owned(),
        status: 0,
        problem: BAD_RESPONSE.to_owned(),
        detail: format!("{what}: the request could not be encoded: {e}"),
    })
}

impl Peer for HttpPeer {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn info(&self) -> Result<NodeInfo, PeerError> {
        self.get_json(Request::new(Method::GET, &["replication"]))
            .await
    }

    async fn manifest(&self) -> Result<Value, PeerError> {
        self.get_json(Request::new(Method::GET, &["schema"])).await
    }

    async fn changes(&self, req: &ChangesRequest) -> Result<ChangesBatch, PeerError> {
        let mut request = Request::new(Method::GET, &["replication", "changes"]);
        request.query = changes_query(req);
        request.extra_wait = Duration::from_millis(req.wait_ms.unwrap_or(0));
        self.get_json(request).await
    }

    async fn apply(&self, req: &ApplyRequest) -> Result<ApplyResponse, PeerError> {
        let mut request = Request::new(Method::POST, &["replication", "apply"]);
        request.body = Some(json_body(&self.name, "POST /replication/apply", req)?);
        self.get_json(request).await
    }

    async fn checkpoint(&self, id: &str) -> Result<Option<u64>, PeerError> {
        let segments = ["replication", "checkpoints", id];
        match self.send(Request::new(Method::GET, &segments)).await {
            Ok(answer) => Ok(Some(answer.parse::<StoredCheckpoint>(&self.name)?.seq)),
            // No checkpoint: this replication has not run against this node yet.
            Err(PeerError::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn put_checkpoint(&self, id: &str, seq: u64) -> Result<(), PeerError> {
        let segments = ["replication", "checkpoints", id];
        let mut request = Request::new(Method::PUT, &segments);
        request.body = Some(json_body(
            &self.name,
            "PUT /replication/checkpoints",
            &StoredCheckpoint { seq },
        )?);
        self.send(request).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(e: PeerError) -> (u16, String, String) {
        match e {
            PeerError::Refused {
                status,
                problem,
                detail,
                ..
            } => (status, problem, detail),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_new_peer_checks_its_url_and_token() {
        assert!(matches!(
            HttpPeer::new("ftp://example.org", None),
            Err(BuildError::InvalidUrl { .. })
        ));
        assert!(matches!(
            HttpPeer::new("not a url", None),
            Err(BuildError::InvalidUrl { .. })
        ));
        assert!(matches!(
            HttpPeer::new("http://a.example", Some("bad\ntoken".into())),
            Err(BuildError::InvalidToken)
        ));
        let p = HttpPeer::new("http://a.example:7878/base/?x=1#f", Some("t".into())).unwrap();
        assert_eq!(p.base_url(), "http://a.example:7878/base");
        assert_eq!(
            p.url(&["replication", "checkpoints", "a/b"], &[]).as_str(),
            "http://a.example:7878/base/replication/checkpoints/a%2Fb"
        );
        assert!(!format!("{p:?}").contains("Bearer"));
    }

    #[test]
    fn changes_queries_join_types_and_encode_the_selector_as_json() {
        let mut req = ChangesRequest {
            since: 7,
            limit: 50,
            ..ChangesRequest::default()
        };
        assert_eq!(
            changes_query(&req),
            vec![("since", "7".to_owned()), ("limit", "50".to_owned())]
        );
        req.types = vec!["Student".into(), "todo".into()];
        req.selector
            .insert("/school/name".into(), json!("Ørsted & Co"));
        req.wait_ms = Some(20_000);
        let query = changes_query(&req);
        assert_eq!(query[2], ("types", "Student,todo".to_owned()));
        assert_eq!(query[3].0, "selector");
        let selector: Value = serde_json::from_str(&query[3].1).unwrap();
        assert_eq!(selector, json!({"/school/name": "Ørsted & Co"}));
        assert_eq!(query[4], ("waitMs", "20000".to_owned()));
        // Percent-encoded on the wire, and decoded back to the same JSON.
        let p = HttpPeer::new("http://a.example", None).unwrap();
        let url = p.url(&["replication", "changes"], &query);
        let decoded: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(decoded[3].1, query[3].1);
        assert!(!url.as_str().contains(' '));
    }

    #[test]
    fn statuses_sort_into_retry_manifest_and_refusal() {
        let what = "POST /replication/apply";
        let problem = |kind: &str, detail: &str| {
            json!({"type": kind, "status": 0, "title": "t", "detail": detail})
                .to_string()
                .into_bytes()
        };
        let e = error_from_response(
            "http://b",
            what,
            StatusCode::CONFLICT,
            &problem(MANIFEST_REQUIRED, "send it"),
        );
        assert!(matches!(e, PeerError::ManifestRequired { ref peer } if peer == "http://b"));

        let e = error_from_response(
            "http://b",
            what,
            StatusCode::UNAUTHORIZED,
            &problem("urn:mutatis:problem:unauthenticated", "unknown token"),
        );
        assert!(!e.is_retryable());
        let (status, kind, detail) = refused(e);
        assert_eq!(status, 401);
        assert_eq!(kind, "urn:mutatis:problem:unauthenticated");
        assert_eq!(detail, "POST /replication/apply: unknown token");

        // Another 409 is a refusal, not a manifest request.
        let e = error_from_response(
            "http://b",
            what,
            StatusCode::CONFLICT,
            &problem("urn:mutatis:problem:rev-conflict", "x"),
        );
        assert_eq!(refused(e).0, 409);

        for status in [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::REQUEST_TIMEOUT,
            StatusCode::TOO_MANY_REQUESTS,
        ] {
            let e = error_from_response("http://b", what, status, b"<html>busy</html>");
            assert!(e.is_retryable(), "{status}");
            assert!(e.to_string().contains("busy"), "{e}");
        }

        // A body that is no problem document still gives a readable refusal.
        let (status, kind, detail) = refused(error_from_response(
            "http://b",
            "GET /replication",
            StatusCode::NOT_FOUND,
            b"",
        ));
        assert_eq!((status, kind.as_str()), (404, "about:blank"));
        assert_eq!(detail, "GET /replication: Not Found");
    }

    #[test]
    fn an_answer_off_the_protocol_is_refused_not_retried() {
        let answer = Success {
            what: "GET /replication".into(),
            body: b"{\"hello\": 1}".to_vec(),
        };
        let (_, kind, detail) = refused(answer.parse::<NodeInfo>("http://a").unwrap_err());
        assert_eq!(kind, BAD_RESPONSE);
        assert!(detail.starts_with("GET /replication: "), "{detail}");
    }
}
