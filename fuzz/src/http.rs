//! The HTTP request path's fuzzing harness: any request, sent to the real router.
//!
//! [`http`] reads the bytes a fuzzer hands it as one request ([`parse`]: a request line
//! `METHOD TARGET`, header lines `Name: value`, a blank line, then the body) and sends it
//! through `mutatis_server::router` over a redb store (`tower::ServiceExt::oneshot`, no
//! socket), the edge layer, authentication, negotiation, handlers and store included. It
//! panics only when the server breaks a promise:
//!
//! - nothing panics (a handler's panic, which the server catches and answers 500, is one);
//! - no answer is a 5xx: a request from outside never makes the node fail (a store error or a
//!   timeout would be 503, a caught panic 500);
//! - every error (4xx) is `application/problem+json` whose body is an RFC 9457 problem with a
//!   `urn:mutatis:problem:` type and the response's own status;
//! - every `application/json` answer is JSON.
//!
//! Requests the HTTP layer (hyper) would never pass on — a method, target or header it cannot
//! parse — are skipped, as are the few that would make the node reach out (replication jobs
//! and webhooks contact URLs) or lock the fuzzer out (revoking the fixture's tokens).
//!
//! A fuzzer cannot know a token, so `Bearer @admin`, `@alice` (a writer a document's policy
//! names), `@bob` (a writer it does not) and `@rita` (a reader) stand for the fixture's.
//! The store is made once per process (unlinked right after opening) and keeps what earlier
//! inputs wrote, as a running node does; it starts with an open document `open-1`, one only
//! alice may read (`hidden-1`), and a document with a conflict leaf only alice may read
//! (`cfl-1`).
//!
//! The changes feeds wait by design (long-poll, event streams, `waitMs`): an answer of theirs
//! that takes longer than [`FEED_PATIENCE`] is let go unchecked. Anything else gets
//! [`PATIENCE`] before it counts as a hang.
//!
//! This file is a module of the `mutatis-fuzz` crate (the cargo-fuzz target `http` calls it)
//! and is also compiled into `crates/mutatis-server/tests/fuzz_smoke.rs` with `#[path]`, so
//! every `cargo test` runs the same checks over the seeds and generated requests.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};
use mutatis_schema::SchemaSet;
use mutatis_server::auth::{token_key, Role, TokenRecord};
use mutatis_server::{AppState, ServerConfig};
use mutatis_store::{Backend, RedbBackend, RedbOptions, Replicated, ReplicatedDoc, Store};
use serde_json::{json, Value};
use tower::ServiceExt;

const SETTINGS: &str = include_str!("../../examples/students/mutatis.yaml");
const STUDENT: &str = include_str!("../../examples/students/types/Student.yaml");

/// The day the node lives on: release sunsets and ages count from it.
pub const REFERENCE_DATE: &str = "2026-06-01";
/// Its Unix time (00:00 UTC).
const REFERENCE_UNIX: i64 = 1_780_272_000;

/// The fixture's tokens, by the placeholder a request names them with.
pub const TOKENS: [(&str, &str, &str, Role); 4] = [
    (
        "@admin",
        "admin",
        "mutatis_a000000000000000000000000000000000000000000000000000000000000000",
        Role::Admin,
    ),
    (
        "@alice",
        "alice",
        "mutatis_a11ce00000000000000000000000000000000000000000000000000000000000",
        Role::Writer,
    ),
    (
        "@bob",
        "bob",
        "mutatis_b0b0000000000000000000000000000000000000000000000000000000000000",
        Role::Writer,
    ),
    (
        "@rita",
        "rita",
        "mutatis_7117a00000000000000000000000000000000000000000000000000000000000",
        Role::Reader,
    ),
];

/// How long a request may take before it counts as a hang.
pub const PATIENCE: Duration = Duration::from_secs(20);
/// How long a changes feed's answer is waited for (they wait by design).
pub const FEED_PATIENCE: Duration = Duration::from_millis(200);

/// The largest body the node takes: small, so the limit is reached by fuzzed bodies.
const BODY_LIMIT: usize = 16 * 1024;

/// The router and the runtime every input runs on.
pub struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    /// Held while an input runs (the test suite runs its tests on several threads).
    one_at_a_time: Mutex<()>,
}

/// The fixture, made on first use.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(make_fixture)
}

fn make_fixture() -> Fixture {
    let set = SchemaSet::from_sources(vec![
        (PathBuf::from("mutatis.yaml"), SETTINGS.to_owned()),
        (PathBuf::from("types/Student.yaml"), STUDENT.to_owned()),
    ])
    .unwrap_or_else(|e| panic!("the students schema set does not load: {e}"));
    let set = Arc::new(set.as_of(REFERENCE_DATE));
    let params = mutatis_lens::calendar::reference_params(REFERENCE_UNIX);
    let dir = std::env::temp_dir().join(format!("mutatis-fuzz-http-{}", std::process::id()));
    // A directory left by an earlier process with this id is stale.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let backend = RedbBackend::open(dir.join("node.redb"), RedbOptions::default())
        .unwrap_or_else(|e| panic!("opening a store in {}: {e}", dir.display()));
    // redb keeps working on the open file; unlinking it now leaves nothing behind when the
    // fuzzer exits or is killed.
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::new(backend, set).with_params(params.clone());
    seed(&store);
    let config = ServerConfig {
        body_limit: BODY_LIMIT,
        request_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(5),
        public_metrics: false,
        reference_date: Some(REFERENCE_DATE.to_owned()),
        // No CORS and no static files: the API alone.
        ..ServerConfig::default()
    };
    let state = AppState::new(store, None, params, config)
        .unwrap_or_else(|e| panic!("the server state: {e}"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a runtime: {e}"));
    Fixture {
        router: mutatis_server::router(state),
        runtime,
        one_at_a_time: Mutex::new(()),
    }
}

/// The fixture's tokens and documents.
fn seed<B: Backend>(store: &Store<B>) {
    for (_, name, token, role) in TOKENS {
        let record = TokenRecord {
            name: name.to_owned(),
            role,
            created: "2026-06-01T00:00:00Z".to_owned(),
        };
        store
            .put_setting(&token_key(token), Some(&record.to_json()))
            .unwrap_or_else(|e| panic!("storing a token: {e}"));
    }
    let student = |first: &str, last: &str| json!({"firstName": first, "lastName": last, "yearOfBirth": 1990});
    let alice_only = json!({"read": ["alice"]});
    let put = |id: &str, body: Value, access: Option<&Value>| {
        store
            .put_with_access("Student", id, 5, &body, None, access)
            .unwrap_or_else(|e| panic!("storing {id}: {e}"));
    };
    put("open-1", student("Ada", "Open"), None);
    put("hidden-1", student("Secret", "Hidden"), Some(&alice_only));
    let leaf = |rev: &str, body: Value, access: Value| ReplicatedDoc {
        type_name: "Student".into(),
        id: "cfl-1".into(),
        doc: Replicated {
            rev: rev.parse().unwrap_or_else(|e| panic!("{rev}: {e}")),
            history: Vec::new(),
            version: 5,
            body,
            deleted: false,
            access,
            carry: Vec::new(),
        },
    };
    store
        .apply_replicated_batch(&[
            leaf("3-0000000000000033", student("Open", "Winner"), Value::Null),
            leaf("2-0000000000000022", student("Secret", "Leaf"), alice_only),
        ])
        .unwrap_or_else(|e| panic!("storing a conflict: {e}"));
}

/// A request as the harness reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The method, as sent.
    pub method: Vec<u8>,
    /// The request target.
    pub target: Vec<u8>,
    /// The header lines, name and value.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Read `METHOD TARGET\nName: value\n…\n\nbody` (a line may end in `\r\n`). Without a
/// blank line everything after the request line is headers and the body is empty; a header
/// line without a colon is skipped.
pub fn parse(data: &[u8]) -> Option<Input> {
    let mut rest = data;
    let mut line = || -> Option<&[u8]> {
        if rest.is_empty() {
            return None;
        }
        let (l, r) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = r;
        Some(l.strip_suffix(b"\r").unwrap_or(l))
    };
    let first = line()?;
    let space = first.iter().position(|&b| b == b' ')?;
    let (method, target) = (first[..space].to_vec(), first[space + 1..].to_vec());
    let mut headers = Vec::new();
    while let Some(l) = line() {
        if l.is_empty() {
            break;
        }
        if let Some(colon) = l.iter().position(|&b| b == b':') {
            let value = l[colon + 1..].trim_ascii().to_vec();
            headers.push((l[..colon].to_vec(), value));
        }
    }
    Some(Input {
        method,
        target,
        headers,
        body: rest.to_vec(),
    })
}

/// The bytes of `input` in the harness's format (what [`parse`] reads back).
pub fn unparse(input: &Input) -> Vec<u8> {
    let mut out = input.method.clone();
    out.push(b' ');
    out.extend_from_slice(&input.target);
    out.push(b'\n');
    for (n, v) in &input.headers {
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(&input.body);
    out
}

/// The request `input` stands for, its token placeholders replaced; `None` when the HTTP
/// layer would refuse it before the router (or it is one the harness does not send).
pub fn request(input: &Input) -> Option<Request<Body>> {
    let method = Method::from_bytes(&input.method).ok()?;
    let uri: Uri = Uri::try_from(input.target.as_slice()).ok()?;
    let path = uri.path();
    // Background tasks that contact URLs, and revoking the fixture's own tokens.
    let reaches_out = method == Method::POST
        && (path.starts_with("/admin/replications") || path.starts_with("/admin/webhooks"));
    if reaches_out || (method == Method::DELETE && path.starts_with("/admin/tokens")) {
        return None;
    }
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in &input.headers {
        let name = HeaderName::from_bytes(name).ok()?;
        let mut value = value.clone();
        for (placeholder, _, token, _) in TOKENS {
            value = replace(&value, placeholder.as_bytes(), token.as_bytes());
        }
        let value = HeaderValue::from_bytes(&value).ok()?;
        builder = builder.header(name, value);
    }
    builder.body(Body::from(input.body.clone())).ok()
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// What came back for one request, when it came back in time.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// `http` target: arbitrary bytes, sent as a request when they are one.
pub fn http(data: &[u8]) {
    let Some(input) = parse(data) else {
        return;
    };
    let _ = send(&input);
}

/// Send `input` (if it is a request) and check the answer; the answer, `None` when the
/// request was not sent or a feed was still waiting.
pub fn send(input: &Input) -> Option<Answer> {
    let req = request(input)?;
    let what = format!(
        "{} {}",
        req.method(),
        String::from_utf8_lossy(&input.target)
    );
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let feed = path == "/changes" || path == "/replication/changes" || path.ends_with("/_changes");
    let fx = fixture();
    let _one = fx
        .one_at_a_time
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let router = fx.router.clone();
    let answered = fx.runtime.block_on(async move {
        let run = async {
            let resp = match router.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            let (parts, body) = resp.into_parts();
            (parts, axum::body::to_bytes(body, usize::MAX).await)
        };
        tokio::time::timeout(if feed { FEED_PATIENCE } else { PATIENCE }, run).await
    });
    let (parts, body) = match answered {
        Ok(done) => done,
        Err(_) if feed => return None,
        Err(_) => panic!("{what}: no answer within {PATIENCE:?}"),
    };
    let body = match body {
        Ok(b) => b.to_vec(),
        // A stream the server ended with an error: only event streams stream.
        Err(e) => panic!("{what}: the answer's body failed: {e}"),
    };
    let answer = Answer {
        status: parts.status.as_u16(),
        content_type: parts
            .headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
    };
    check(&what, &method, &answer);
    Some(answer)
}

/// The promises every answer keeps.
pub fn check(what: &str, method: &Method, a: &Answer) {
    let text = || String::from_utf8_lossy(&a.body).into_owned();
    assert!(
        a.status < 500,
        "{what}: a request from outside made the node fail: {} {}",
        a.status,
        text()
    );
    // A HEAD answer has no body to check (HTTP/1 drops it).
    if *method == Method::HEAD {
        return;
    }
    if a.status >= 400 {
        assert_eq!(
            a.content_type.as_deref(),
            Some("application/problem+json"),
            "{what}: a {} that is not problem+json: {}",
            a.status,
            text()
        );
        let v: Value = serde_json::from_slice(&a.body)
            .unwrap_or_else(|e| panic!("{what}: a problem that is not JSON ({e}): {}", text()));
        let kind = v["type"].as_str().unwrap_or_default();
        assert!(
            kind.strip_prefix("urn:mutatis:problem:")
                .is_some_and(|name| !name.is_empty()),
            "{what}: a problem without a mutatis type: {v}"
        );
        assert_eq!(v["status"], a.status, "{what}: {v}");
        assert!(
            v["title"].is_string() && v["detail"].is_string(),
            "{what}: {v}"
        );
    } else if a.content_type.as_deref() == Some("application/json") {
        if let Err(e) = serde_json::from_slice::<Value>(&a.body) {
            panic!("{what}: a JSON answer that is not JSON ({e}): {}", text());
        }
    }
}
