//! Hostile clients against the real `mutatis serve` (`examples/students`): what a client sends
//! can neither grow the server (metrics series, memory) nor hold a connection before it has
//! shown a token, bodies are bounded in size and in time before a handler waits on them, and
//! every malformed edge (repeated or empty negotiation headers, oversized request heads, bad
//! token names) is an exact problem+json. The command line refuses impossible dates, empty
//! data files and PostgreSQL's own schemas.
//!
//! Requests that reqwest would tidy up (two `Authorization` headers, a body that never comes,
//! non-ASCII bytes) are written byte for byte on a raw connection.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use support::{example, Node, NodeOptions, ADMIN_TOKEN, REFERENCE_DATE};

/// "At once": far below the 30 s request timeout that a request without its body used to wait
/// for, and generous for a loaded machine.
const AT_ONCE: Duration = Duration::from_secs(5);

/// A `students` node on a fresh store with `extra` arguments; the folder goes with it.
fn node(extra: &[&str]) -> (Node, tempfile::TempDir) {
    let scratch = tempfile::tempdir().expect("a scratch folder");
    let mut args = vec!["--reference-date".to_owned(), REFERENCE_DATE.to_owned()];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let node = Node::start_with(
        &example("students"),
        &scratch.path().join("data.redb"),
        NodeOptions {
            extra_args: args,
            ..NodeOptions::default()
        },
    );
    (node, scratch)
}

/// One response read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// From the connection's start to the end of the response head.
    took: Duration,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Assert a problem+json answer of `status` and kind `name`; its body.
    fn problem(&self, status: u16, name: &str) -> Value {
        let text = String::from_utf8_lossy(&self.body);
        assert_eq!(self.status, status, "{text}");
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{text}"
        );
        let v: Value = serde_json::from_slice(&self.body).expect("a JSON problem");
        assert_eq!(v["type"], format!("urn:mutatis:problem:{name}"), "{v}");
        assert_eq!(v["status"], status, "{v}");
        v
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Write `head` then `body` on a new connection to `addr` and read one response.
fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> Answer {
    raw_bytes(addr, head.as_bytes(), body)
}

fn raw_bytes(addr: SocketAddr, head: &[u8], body: &[u8]) -> Answer {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).expect("a connection");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(head).expect("the request head is sent");
    // The server may answer and close before taking all of a body it refuses.
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).expect("an answer");
        assert!(
            n > 0,
            "the connection closed without an answer: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let took = started.elapsed();
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line, got {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = s.read(&mut chunk).expect("the answer's body");
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Answer {
        status,
        headers,
        body: buf[head_end..(head_end + length).min(buf.len())].to_vec(),
        took,
    }
}

/// A request head: `request_line`, `Host`, the `headers` lines, and the blank line.
fn head(addr: SocketAddr, request_line: &str, headers: &[&str]) -> String {
    let mut h = format!("{request_line}\r\nHost: {addr}\r\n");
    for line in headers {
        h.push_str(line);
        h.push_str("\r\n");
    }
    h.push_str("\r\n");
    h
}

fn bearer() -> String {
    format!("Authorization: Bearer {ADMIN_TOKEN}")
}

// ------------------------------------------------------------------------ metrics, memory

/// xorshift64*: a fixed seed, so a failure reproduces; no dependency for a test's dice.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A word of `min..=max` characters from `alphabet`.
    fn word(&mut self, alphabet: &[u8], min: u64, max: u64) -> String {
        let len = min + self.below(max - min + 1);
        (0..len)
            .map(|_| char::from(alphabet[self.below(alphabet.len() as u64) as usize]))
            .collect()
    }
}

const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// One request of the hostile mix: a made-up method (mostly), a made-up path, type or
/// release, made-up headers; with the admin token half of the time.
fn hostile_request(node: &Node, http: &reqwest::blocking::Client, dice: &mut Dice) {
    let method = match dice.below(10) {
        0 => Method::GET,
        1 => Method::PUT,
        2 => Method::DELETE,
        _ => {
            let name = format!("M{}", dice.word(UPPER, 3, 12));
            Method::from_bytes(name.as_bytes()).expect("a token is a method")
        }
    };
    let word = dice.word(LOWER, 1, 16);
    let path = match dice.below(5) {
        0 => format!("/docs/Student/{word}"),
        1 => format!("/docs/{word}/x"),
        2 => format!("/{word}/{}", dice.word(LOWER, 1, 8)),
        3 => format!("/changes?release={word}"),
        _ => format!("/docs/{word}?release={}", dice.word(LOWER, 1, 8)),
    };
    let mut req = http.request(method, format!("{}{path}", node.url));
    match dice.below(4) {
        0 => {}
        1 => req = req.header("Mutatis-Release", "5"),
        _ => req = req.header("Mutatis-Release", dice.word(LOWER, 1, 20)),
    }
    for _ in 0..dice.below(4) {
        req = req.header(
            format!("X-{}", dice.word(LOWER, 1, 12)),
            dice.word(LOWER, 0, 24),
        );
    }
    if dice.below(2) == 0 {
        req = req.bearer_auth(ADMIN_TOKEN);
    }
    let resp = req.send().expect("an answer");
    assert!(resp.status().as_u16() < 500, "{path}: {}", resp.status());
    let _ = resp.bytes();
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

fn label_values<'t>(metrics: &'t str, label: &str) -> std::collections::BTreeSet<&'t str> {
    let key = format!("{label}=\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("mutatis_requests_total{"))
        .filter_map(|l| l.split(&key).nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect()
}

/// 10,000 requests with made-up methods, paths, types, releases and headers leave the
/// metrics small (every request-derived label comes from a closed set) and the server's
/// memory where it was after a warm-up of the same mix.
#[test]
fn made_up_methods_paths_and_releases_grow_neither_metrics_nor_memory() {
    let (node, _scratch) = node(&[]);
    let pid = node.pid().expect("a running node");
    let http = support::http();
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    // The warm-up takes the allocator, the runtime's threads and the connection to their
    // steady state, so the baseline is the server's, not its start-up's.
    for _ in 0..2_000 {
        hostile_request(&node, &http, &mut dice);
    }
    let baseline = rss_kib(pid);
    for _ in 0..10_000 {
        hostile_request(&node, &http, &mut dice);
    }
    let metrics = node.get("/metrics").text().expect("the metrics");
    let after = rss_kib(pid);
    eprintln!(
        "/metrics: {} bytes; resident memory {baseline} KiB after the warm-up, {after} KiB after",
        metrics.len()
    );
    assert!(
        metrics.len() < 100 * 1024,
        "/metrics is {} bytes; labels: methods {:?}",
        metrics.len(),
        label_values(&metrics, "method").len()
    );
    let methods = label_values(&metrics, "method");
    let allowed = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
    ];
    assert!(methods.iter().all(|m| allowed.contains(m)), "{methods:?}");
    assert!(methods.contains("other"), "{methods:?}");
    let releases = label_values(&metrics, "release");
    let known = ["", "1", "2", "3", "4", "5", "other"];
    assert!(releases.iter().all(|r| known.contains(r)), "{releases:?}");
    assert!(releases.contains("other"), "{releases:?}");
    let types = label_values(&metrics, "type");
    assert!(
        types.iter().all(|t| ["", "Student", "other"].contains(t)),
        "{types:?}"
    );
    assert!(
        after * 10 <= baseline * 12,
        "resident memory grew from {baseline} KiB to {after} KiB"
    );
}

// ------------------------------------------------------------------------------- bodies

/// A client without a token is refused before its body is read: `Content-Length: 100` and
/// no body used to hold the connection for the 30 s request timeout (then a 503).
#[test]
fn requests_without_a_token_are_refused_before_their_body_is_read() {
    let (node, _scratch) = node(&[]);
    for line in [
        "PUT /docs/Student/x HTTP/1.1",
        "POST /docs/Student HTTP/1.1",
        "PATCH /docs/Student/x HTTP/1.1",
        "POST /replication/apply HTTP/1.1",
        "POST /admin/tokens HTTP/1.1",
    ] {
        let a = raw(
            node.addr,
            &head(
                node.addr,
                line,
                &["Content-Type: application/json", "Content-Length: 100"],
            ),
            b"",
        );
        a.problem(401, "unauthenticated");
        assert!(a.took < AT_ONCE, "{line}: answered after {:?}", a.took);
        assert!(a.header("www-authenticate").is_some(), "{line}");
    }
    // An unknown token is no better than none.
    let a = raw(
        node.addr,
        &head(
            node.addr,
            "PUT /docs/Student/x HTTP/1.1",
            &[
                "Authorization: Bearer mutatis_0000000000000000000000000000000000000000000000000000000000000000",
                "Content-Type: application/json",
                "Content-Length: 100",
            ],
        ),
        b"",
    );
    a.problem(401, "unauthenticated");
    assert!(a.took < AT_ONCE, "answered after {:?}", a.took);
}

/// A body announced over its route's limit is refused at once (before authentication, and
/// before a byte of it), with the route's own limit: `/replication/apply` takes more.
#[test]
fn announced_bodies_over_the_limit_are_refused_at_once() {
    let (node, _scratch) = node(&[
        "--body-limit",
        "1000",
        "--replication-body-limit",
        "100000",
        "--body-timeout",
        "1",
    ]);
    let auth = bearer();
    for (line, token) in [
        ("PUT /docs/Student/x HTTP/1.1", None),
        ("PUT /docs/Student/x HTTP/1.1", Some(auth.as_str())),
        ("POST /compatibility HTTP/1.1", None),
        ("POST /replication/apply HTTP/1.1", Some(auth.as_str())),
    ] {
        let mut headers = vec![
            "Content-Type: application/json",
            "Content-Length: 10000000000",
        ];
        headers.extend(token);
        let a = raw(node.addr, &head(node.addr, line, &headers), b"");
        let p = a.problem(413, "body-too-large");
        assert!(a.took < AT_ONCE, "{line}: answered after {:?}", a.took);
        assert_eq!(p["contentLength"], 10_000_000_000u64, "{p}");
        assert_eq!(a.header("connection"), Some("close"));
    }
    // 2000 bytes: over the documents' limit, within the replication one (whose body is then
    // waited for, and times out: it never comes).
    let a = raw(
        node.addr,
        &head(
            node.addr,
            "PUT /docs/Student/x HTTP/1.1",
            &[
                &auth,
                "Content-Type: application/json",
                "Content-Length: 2000",
            ],
        ),
        b"",
    );
    assert_eq!(a.problem(413, "body-too-large")["limit"], 1000);
    let a = raw(
        node.addr,
        &head(
            node.addr,
            "POST /replication/apply HTTP/1.1",
            &[
                &auth,
                "Content-Type: application/json",
                "Content-Length: 2000",
            ],
        ),
        b"",
    );
    a.problem(408, "body-timeout");
    let a = raw(
        node.addr,
        &head(
            node.addr,
            "POST /replication/apply HTTP/1.1",
            &[
                &auth,
                "Content-Type: application/json",
                "Content-Length: 200000",
            ],
        ),
        b"",
    );
    assert_eq!(a.problem(413, "body-too-large")["limit"], 100_000);
}

/// A chunked body announces no length: it is cut off at the limit all the same.
#[test]
fn chunked_bodies_are_bounded_by_the_limit() {
    let (node, _scratch) = node(&["--body-limit", "1000"]);
    let auth = bearer();
    let doc = format!(
        "{{\"firstName\": \"{}\", \"lastName\": \"B\", \"yearOfBirth\": 1990}}",
        "a".repeat(3000)
    );
    let body = format!("{:x}\r\n{doc}\r\n0\r\n\r\n", doc.len());
    let a = raw(
        node.addr,
        &head(
            node.addr,
            "PUT /docs/Student/x HTTP/1.1",
            &[
                &auth,
                "Content-Type: application/json",
                "Transfer-Encoding: chunked",
            ],
        ),
        body.as_bytes(),
    );
    assert_eq!(a.problem(413, "body-too-large")["limit"], 1000);
    // Within the limit, chunked is fine.
    let doc = r#"{"firstName": "A", "lastName": "B", "yearOfBirth": 1990}"#;
    let body = format!("{:x}\r\n{doc}\r\n0\r\n\r\n", doc.len());
    let a = raw(
        node.addr,
        &head(
            node.addr,
            "PUT /docs/Student/y HTTP/1.1",
            &[
                &auth,
                "Content-Type: application/json",
                "Mutatis-Release: 5",
                "Transfer-Encoding: chunked",
            ],
        ),
        body.as_bytes(),
    );
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
}

/// A body that stops arriving is answered 408 after the body timeout, well before the
/// request timeout (30 s).
#[test]
fn a_stalled_body_times_out_with_408() {
    let (node, _scratch) = node(&["--body-timeout", "1"]);
    let auth = bearer();
    for line in [
        "PUT /docs/Student/x HTTP/1.1",
        "POST /admin/tokens HTTP/1.1",
    ] {
        let a = raw(
            node.addr,
            &head(
                node.addr,
                line,
                &[
                    &auth,
                    "Content-Type: application/json",
                    "Content-Length: 100",
                ],
            ),
            // Part of it, then nothing.
            b"{\"firstName\": ",
        );
        let p = a.problem(408, "body-timeout");
        assert!(a.took < AT_ONCE, "{line}: answered after {:?}", a.took);
        assert!(p["detail"].as_str().unwrap().contains("1 s"), "{p}");
    }
}

// ---------------------------------------------------------------------------- loose edges

/// Headers that may appear once are refused when repeated, whichever of them it is; empty or
/// non-ASCII release names and `Mutatis-Versions` that name no type of the set are refused
/// rather than read as "the default".
#[test]
fn repeated_empty_and_unknown_negotiation_headers_are_refused() {
    let (node, _scratch) = node(&[]);
    let auth = bearer();
    let get = "GET /docs/Student/x HTTP/1.1";
    for (twice, name) in [
        (
            ["Mutatis-Release: 5", "Mutatis-Release: 3"],
            "mutatis-release",
        ),
        (
            ["Mutatis-Versions: Student=5", "Mutatis-Versions: Student=3"],
            "mutatis-versions",
        ),
        (
            [auth.as_str(), "Authorization: Bearer nope"],
            "authorization",
        ),
        (["If-Match: \"1-a\"", "If-Match: \"2-b\""], "if-match"),
    ] {
        let mut headers = vec![auth.as_str()];
        if name == "authorization" {
            headers.clear();
        }
        headers.extend(twice);
        let a = raw(node.addr, &head(node.addr, get, &headers), b"");
        let p = a.problem(400, "duplicate-header");
        assert_eq!(p["header"], name, "{p}");
    }
    for value in ["", "   "] {
        let line = format!("Mutatis-Release: {value}");
        let a = raw(node.addr, &head(node.addr, get, &[&auth, &line]), b"");
        a.problem(400, "bad-release-header");
    }
    // `é` in UTF-8, which hyper passes on as opaque bytes.
    let mut bytes = head(node.addr, get, &[&auth]).into_bytes();
    bytes.truncate(bytes.len() - 2);
    bytes.extend_from_slice(b"Mutatis-Release: r\xc3\xa9\r\n\r\n");
    raw_bytes(node.addr, &bytes, b"").problem(400, "bad-release-header");

    let versions = |value: &str| {
        node.request(Method::GET, "/docs/Student/x")
            .header("Mutatis-Versions", value)
            .send()
            .expect("an answer")
    };
    let body = |r: reqwest::blocking::Response, status: u16, name: &str| -> Value {
        assert_eq!(r.status().as_u16(), status);
        let v: Value = r.json().expect("a problem");
        assert_eq!(v["type"], format!("urn:mutatis:problem:{name}"), "{v}");
        v
    };
    let p = body(versions("Nope=1"), 400, "bad-versions-header");
    assert_eq!(p["type"], "urn:mutatis:problem:bad-versions-header");
    assert!(p["detail"].as_str().unwrap().contains("Nope"), "{p}");
    assert_eq!(p["knownTypes"], json!(["Student"]));
    let p = body(versions("Student=3,"), 400, "bad-versions-header");
    assert!(p["detail"].as_str().unwrap().contains("empty entry"), "{p}");
    body(versions("Student=99"), 400, "unknown-version");
    // The feed reads the same headers the same way.
    let r = node
        .request(Method::GET, "/changes")
        .header("Mutatis-Versions", "Nope=1")
        .send()
        .unwrap();
    body(r, 400, "bad-versions-header");
    // Still fine: one of each, well formed.
    let r = node
        .request(Method::GET, "/docs/Student/x")
        .header("Mutatis-Release", "5")
        .header("Mutatis-Versions", "Student=5")
        .send()
        .unwrap();
    body(r, 404, "not-found");
}

/// What the HTTP layer refuses on a request's head is problem+json too: a request target or
/// header section over the server's limits.
#[test]
fn oversized_request_heads_are_problems() {
    let (node, _scratch) = node(&[]);
    let auth = bearer();
    let long = format!("GET /docs/Student/{} HTTP/1.1", "x".repeat(9000));
    let a = raw(node.addr, &head(node.addr, &long, &[&auth]), b"");
    assert_eq!(a.problem(414, "uri-too-long")["limit"], 8192);

    let big = format!("X-Padding: {}", "p".repeat(40 * 1024));
    let a = raw(
        node.addr,
        &head(node.addr, "GET /meta HTTP/1.1", &[&big]),
        b"",
    );
    assert_eq!(a.problem(431, "headers-too-large")["limit"], 32 * 1024);

    let many: Vec<String> = (0..150).map(|i| format!("X-Field-{i}: {i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let a = raw(
        node.addr,
        &head(node.addr, "GET /meta HTTP/1.1", &many),
        b"",
    );
    assert_eq!(a.problem(431, "headers-too-large")["limit"], 100);

    // Under the limits all is well.
    let a = raw(
        node.addr,
        &head(node.addr, "GET /health HTTP/1.1", &[]),
        b"",
    );
    assert_eq!(a.status, 200);
}

/// A token name that is not a name is a bad request (400), not a conflict with an existing
/// token (409, which stays for a name that is taken).
#[test]
fn invalid_token_names_are_bad_requests() {
    let (node, _scratch) = node(&[]);
    let create = |name: &str| {
        node.request(Method::POST, "/admin/tokens")
            .json(&json!({"name": name, "role": "reader"}))
            .send()
            .expect("an answer")
    };
    for bad in ["", "*", "a\u{7}b", &"n".repeat(129)] {
        let r = create(bad);
        assert_eq!(r.status().as_u16(), 400, "{bad:?}");
        let v: Value = r.json().unwrap();
        assert_eq!(v["type"], "urn:mutatis:problem:invalid-token-name", "{v}");
    }
    assert_eq!(create("ci").status().as_u16(), 201);
    let r = create("ci");
    assert_eq!(r.status().as_u16(), 409);
    let v: Value = r.json().unwrap();
    assert_eq!(v["type"], "urn:mutatis:problem:token-exists", "{v}");
}

// --------------------------------------------------------------------------- command line

/// `mutatis serve` with `args`, which must refuse to start: its output, once it exited (a
/// server that starts is killed after a while and fails the test).
fn serve_refused(args: &[&str]) -> Output {
    let mut child = Command::new(support::bin())
        .arg("serve")
        .arg(example("students"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("MUTATIS_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mutatis serve runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("a status").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("its output");
            panic!(
                "mutatis serve {args:?} started: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("its output");
    assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_command_line_refuses_impossible_dates_empty_files_and_system_schemas() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data.redb");
    let data_arg = data.to_str().unwrap();
    for date in ["2026-02-31", "2026-02-29", "2026-04-31"] {
        let out = serve_refused(&["--data", data_arg, "--reference-date", date]);
        assert!(stderr(&out).contains("calendar date"), "{}", stderr(&out));
    }
    assert!(!data.exists(), "a refused start created {}", data.display());

    let empty = scratch.path().join("empty.redb");
    std::fs::write(&empty, b"").unwrap();
    let out = serve_refused(&["--data", empty.to_str().unwrap()]);
    assert!(stderr(&out).contains("empty"), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0, "written to");

    // Refused before connecting: no server needs to be there.
    for schema in ["information_schema", "pg_catalog", "pg_toast"] {
        let out = serve_refused(&[
            "--postgres",
            "postgres://postgres@127.0.0.1:1/none",
            "--pg-schema",
            schema,
        ]);
        assert!(
            stderr(&out).contains("PostgreSQL's own"),
            "{}",
            stderr(&out)
        );
    }

    let out = serve_refused(&["--data", data_arg, "--body-timeout", "30"]);
    assert!(stderr(&out).contains("--body-timeout"), "{}", stderr(&out));
    assert!(!Path::new(&data).exists());
}
