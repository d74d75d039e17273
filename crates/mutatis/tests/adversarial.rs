//! The adversarial suite: the real `mutatis serve`, on redb and on PostgreSQL, against a
//! hostile client. Each case is named after what the client tries (the findings of the
//! "hostile clients" review are named as such) and checks status codes, problem types and
//! that nothing leaks: every response body and header a caller gets is searched for the ids,
//! field values and revs of documents it may not read, and on every route a hidden document
//! must answer exactly as a missing one does (the same status, headers and body once the id
//! is swapped), so no signal but timing tells them apart.
//!
//! The cases are a table run by one test ([`adversarial_suite`]): the redb half and the
//! PostgreSQL half run side by side, each case on nodes of its own (a node starts in a tenth
//! of a second), and the suite prints a line per case and a tally to the test's stderr
//! (written past libtest's capture, so CI logs show it): `N passed, 0 failed`. A failing case
//! names what broke; the others still run. `MUTATIS_ADVERSARIAL=word` runs only the cases
//! whose name holds `word`. Without `DATABASE_URL` the PostgreSQL half says loudly that it
//! did not run; under `CI` it fails.
//!
//! Requests that reqwest would tidy up (two `Authorization` headers, a body that never comes,
//! non-ASCII bytes, conflicting framing) are written byte for byte on a raw connection.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use reqwest::blocking::RequestBuilder;
use reqwest::Method;
use serde_json::{json, Value};
use support::{example, Node, NodeOptions, ADMIN_TOKEN, REFERENCE_DATE};

/// "At once": far below the 30 s request timeout that a request without its body used to wait
/// for, and generous for a loaded machine.
const AT_ONCE: Duration = Duration::from_secs(5);

// =================================================================================== the table

/// Where a case's nodes keep their data.
#[derive(Debug, Clone)]
enum Backend {
    Redb,
    Postgres { url: String },
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Redb => "redb",
            Backend::Postgres { .. } => "postgres",
        }
    }
}

/// Which halves run a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Once per backend: it starts nodes.
    EachBackend,
    /// Once (in the redb half): the command line refusing to start, no store involved.
    Once,
}

/// A case: what a hostile client tries and what must hold. Its body panics, with a message
/// that says what broke, when something does not hold.
struct Case {
    name: &'static str,
    scope: Scope,
    run: fn(&Env),
}

const fn each(name: &'static str, run: fn(&Env)) -> Case {
    Case {
        name,
        scope: Scope::EachBackend,
        run,
    }
}

const fn once(name: &'static str, run: fn(&Env)) -> Case {
    Case {
        name,
        scope: Scope::Once,
        run,
    }
}

const CASES: &[Case] = &[
    // Finding 1: what a client sends never adds a metrics series, nor memory.
    each(
        "finding 1: 10,000 made-up methods, paths, headers and releases leave /metrics under 100 KB and memory within 20%",
        metrics_and_memory_stay_bounded,
    ),
    // Finding 2: rev poisoning.
    each(
        "finding 2: a poisoned rev is refused alone, local edits go on, and replication from the node delivers later documents",
        poisoned_revs_do_not_stall_replication,
    ),
    // Finding 3: access leaks.
    each(
        "finding 3: list pages and cursors never name, count or bisect a hidden id",
        lists_do_not_reveal_hidden_ids,
    ),
    each(
        "finding 3: every read route answers a hidden document or tombstone exactly as a missing one",
        read_routes_answer_hidden_as_missing,
    ),
    each(
        "finding 3: every write route with If-Match answers a hidden document exactly as a missing one",
        write_routes_answer_hidden_as_missing,
    ),
    each(
        "finding 3: a create over a hidden id or tombstone says only that the id is taken (no rev, body or policy)",
        creates_over_hidden_ids_say_only_taken,
    ),
    each(
        "finding 3: recreating over a restricted tombstone keeps its policy, and a writer who may not write it is refused",
        recreating_over_a_tombstone_keeps_its_policy,
    ),
    each(
        "finding 3: the feeds (/changes normal, longpoll, SSE, include_docs; /replication/changes, selectors) and /metrics show nothing hidden",
        feeds_show_nothing_hidden,
    ),
    each(
        "finding 3: conflict leaves hidden by their own policy stay hidden (/conflicts, ?rev=, the feeds, resolve)",
        hidden_conflict_leaves_stay_hidden,
    ),
    each(
        "finding 3: a migration's backup answers a hidden document as a missing one (?source=backup)",
        the_backup_answers_hidden_as_missing,
    ),
    // Finding 4: slow and missing bodies, huge announced bodies.
    each(
        "finding 4: no token, or an unknown one, is 401 before the body is read",
        no_token_is_refused_before_the_body,
    ),
    each(
        "finding 4: a Content-Length over the route's limit is 413 at once, before authentication",
        announced_bodies_over_the_limit_are_refused_at_once,
    ),
    each(
        "finding 4: a chunked body over the limit is cut off: 413",
        chunked_bodies_are_bounded,
    ),
    each(
        "finding 4: a stalled body is 408 after --body-timeout, not 30 s later",
        stalled_bodies_time_out,
    ),
    each(
        "finding 4: a head left half-written, or a kept-alive connection left idle, is closed after --request-timeout; one that keeps asking is not",
        stalled_heads_are_cut_off,
    ),
    // Finding 5: YAML alias bombs.
    each(
        "finding 5: a schema set holding a YAML alias bomb is refused by POST /admin/reload at once, and the node serves on",
        reload_refuses_an_alias_bomb,
    ),
    once(
        "finding 5: a lens file holding a YAML alias bomb is refused at once (lens apply)",
        lens_apply_refuses_an_alias_bomb,
    ),
    // Finding 6: numbers.
    each(
        "finding 6: numbers are stored exactly as written or refused naming their pointer",
        numbers_are_exact_or_refused,
    ),
    // Finding 7: loose edges.
    each(
        "finding 7: singleton headers given twice are 400 duplicate-header",
        repeated_headers_are_refused,
    ),
    each(
        "finding 7: empty, blank or non-ASCII releases, Mutatis-Versions Nope=1 and Student=3, are 400",
        empty_and_unknown_negotiation_headers_are_refused,
    ),
    each(
        "finding 7: a request target or header section over the limits is a 414 or 431 problem",
        oversized_request_heads_are_problems,
    ),
    each(
        "finding 7: a token name that is not a name is 400, a taken one 409",
        token_names_are_checked,
    ),
    once(
        "finding 7: impossible dates, an empty store file, PostgreSQL's own schemas and a body timeout past the request timeout stop serve",
        the_command_line_refuses_bad_starts,
    ),
    once(
        "finding 7: lens apply refuses a lens that renames a field the input lacks (cambria-076)",
        lens_apply_refuses_a_lens_that_does_not_fit,
    ),
    // Smuggling and absurd values.
    each(
        "smuggling: Content-Length beside Transfer-Encoding is read as chunked and the connection closed; nothing smuggled is answered",
        content_length_beside_chunked_smuggles_nothing,
    ),
    each(
        "smuggling: conflicting, negative, huge or listed Content-Length, unknown Transfer-Encoding, folded or NUL headers are 400 and close",
        ambiguous_framing_is_refused,
    ),
    each(
        "absurd parameters, revs, ids, policies, media types and nesting: each its own 4xx problem+json",
        absurd_values_are_problems,
    ),
];

/// Runs every case of [`CASES`] on redb and on PostgreSQL and prints the tally.
#[test]
fn adversarial_suite() {
    let only = std::env::var("MUTATIS_ADVERSARIAL").ok();
    let selected: Vec<&Case> = CASES
        .iter()
        .filter(|c| only.as_deref().is_none_or(|w| c.name.contains(w)))
        .collect();
    let postgres = database_url().map(|url| Backend::Postgres { url });
    quiet_panics();
    let started = Instant::now();
    // The halves side by side: each runs its cases one after the other, so the memory case
    // measures a node nobody else talks to.
    let results: Vec<Outcome> = std::thread::scope(|scope| {
        let redb = scope.spawn(|| run_half(&Backend::Redb, &selected, true));
        let pg = postgres
            .as_ref()
            .map(|b| scope.spawn(|| run_half(b, &selected, false)));
        let mut all = redb.join().unwrap_or_default();
        if let Some(pg) = pg {
            all.extend(pg.join().unwrap_or_default());
        }
        all
    });
    let failed: Vec<&Outcome> = results.iter().filter(|o| o.failure.is_some()).collect();
    let mut err = std::io::stderr().lock();
    // Past libtest's capture (it takes only the print macros), so the tally is in the log.
    let _ = writeln!(
        err,
        "\nadversarial suite: {} passed, {} failed ({} cases on redb{}, {:.1} s)",
        results.len() - failed.len(),
        failed.len(),
        results.iter().filter(|o| o.backend == "redb").count(),
        if postgres.is_some() {
            format!(
                " and {} on PostgreSQL",
                results.iter().filter(|o| o.backend == "postgres").count()
            )
        } else {
            ", PostgreSQL NOT RUN".to_owned()
        },
        started.elapsed().as_secs_f64()
    );
    for f in &failed {
        let _ = writeln!(
            err,
            "FAILED [{}] {}: {}",
            f.backend,
            f.name,
            f.failure.as_deref().unwrap_or_default()
        );
    }
    drop(err);
    assert!(
        failed.is_empty(),
        "{} adversarial case(s) failed: {}",
        failed.len(),
        failed
            .iter()
            .map(|f| format!("[{}] {}", f.backend, f.name))
            .collect::<Vec<_>>()
            .join("; ")
    );
}

/// How one case ended on one backend.
#[derive(Debug)]
struct Outcome {
    backend: &'static str,
    name: &'static str,
    failure: Option<String>,
}

std::thread_local! {
    /// Where the last panic of this thread happened (set by the suite's panic hook).
    static PANICKED_AT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// A case's panic is its failure, reported by the suite with its message: the hook only
/// remembers where it happened (the default hook would print it, with a backtrace under
/// `RUST_BACKTRACE`, from both halves at once).
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        PANICKED_AT.with(|p| *p.borrow_mut() = at);
    }));
}

fn run_half(backend: &Backend, cases: &[&Case], with_once: bool) -> Vec<Outcome> {
    let env = Env {
        backend: backend.clone(),
    };
    let mut out = Vec::new();
    for case in cases {
        if case.scope == Scope::Once && !with_once {
            continue;
        }
        let started = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.run)(&env)));
        let failure = result.err().map(|payload| {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "the case panicked".to_owned());
            let at = PANICKED_AT.with(|p| p.borrow().clone());
            format!("{message}\n    (at {at})")
        });
        let _ = writeln!(
            std::io::stderr().lock(),
            "{} [{}] {} ({:.1} s)",
            if failure.is_none() {
                "ok    "
            } else {
                "FAILED"
            },
            backend.name(),
            case.name,
            started.elapsed().as_secs_f64()
        );
        out.push(Outcome {
            backend: backend.name(),
            name: case.name,
            failure,
        });
    }
    out
}

/// `DATABASE_URL`, or `None` said loudly; under `CI` its absence fails the suite.
fn database_url() -> Option<String> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Some(url);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "CI must run the PostgreSQL half of the adversarial suite, but DATABASE_URL is not set"
    );
    let _ = writeln!(
        std::io::stderr(),
        "WARNING: DATABASE_URL is not set: the PostgreSQL half of the adversarial suite NOT RUN"
    );
    None
}

// ====================================================================================== nodes

/// What a case runs on.
struct Env {
    backend: Backend,
}

/// A fresh PostgreSQL schema for one node, dropped after it.
struct PgSchema {
    url: String,
    name: String,
}

impl PgSchema {
    fn new(url: &str) -> PgSchema {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "adversarial_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        PgSchema {
            url: url.to_owned(),
            name,
        }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// A node on a store of its own; killed, then its store removed, when dropped.
struct TestNode {
    // Fields drop in order: the process first, then its store.
    node: Node,
    _pg: Option<PgSchema>,
    _scratch: tempfile::TempDir,
}

impl Deref for TestNode {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.node
    }
}

impl Env {
    /// A node serving the schema-set folder `set` on a fresh store of this half's backend,
    /// with `extra` arguments.
    fn node_at(&self, set: &Path, extra: &[&str]) -> TestNode {
        let scratch = tempfile::tempdir().expect("a scratch folder");
        let mut args = vec!["--reference-date".to_owned(), REFERENCE_DATE.to_owned()];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let (pg, store_args) = match &self.backend {
            Backend::Redb => (None, None),
            Backend::Postgres { url } => {
                let schema = PgSchema::new(url);
                let args = vec![
                    "--postgres".to_owned(),
                    url.clone(),
                    "--pg-schema".to_owned(),
                    schema.name.clone(),
                ];
                (Some(schema), Some(args))
            }
        };
        let node = Node::start_with(
            set,
            &scratch.path().join("data.redb"),
            NodeOptions {
                extra_args: args,
                store_args,
                ..NodeOptions::default()
            },
        );
        TestNode {
            node,
            _pg: pg,
            _scratch: scratch,
        }
    }

    /// A node serving `examples/students`.
    fn students(&self, extra: &[&str]) -> TestNode {
        self.node_at(&example("students"), extra)
    }
}

// ================================================================================== responses

/// One response, as the client got it.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// From the request's start to the end of the response head (raw requests only).
    took: Duration,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[track_caller]
    fn json(&self, what: &str) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{what}: the answer is not JSON ({e}): {}", self.text()))
    }

    /// Assert a 2xx or other plain `status`; the body as JSON.
    #[track_caller]
    fn ok(&self, what: &str, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "{what}: expected {status}, got {}: {}",
            self.status,
            self.text()
        );
        self.json(what)
    }

    /// Assert a problem+json answer of `status` and kind `name`; its body.
    #[track_caller]
    fn problem(&self, what: &str, status: u16, name: &str) -> Value {
        assert_eq!(
            (self.status, self.header("content-type")),
            (status, Some("application/problem+json")),
            "{what}: expected a {status} {name} problem: {}",
            self.text()
        );
        let v = self.json(what);
        assert_eq!(
            v["type"],
            format!("urn:mutatis:problem:{name}"),
            "{what}: the problem type: {v}"
        );
        assert_eq!(v["status"], status, "{what}: {v}");
        v
    }

    /// Everything a caller reads of it: the header lines and the body.
    fn everything(&self) -> String {
        let mut all = String::new();
        for (n, v) in &self.headers {
            all.push_str(n);
            all.push_str(": ");
            all.push_str(v);
            all.push('\n');
        }
        all.push_str(&self.text());
        all
    }

    /// The reply with `from` written as `to` everywhere, its own request id (each request
    /// has another) as a placeholder, and without the `date` and `content-length` headers:
    /// what is left must be the same for a hidden and a missing document.
    fn normalised(&self, swaps: &[(&str, &str)]) -> (u16, Vec<(String, String)>, String) {
        let request_id = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("x-request-id"))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty());
        let swap = |s: &str| {
            let s = match request_id {
                Some(id) => s.replace(id, "<request-id>"),
                None => s.to_owned(),
            };
            swaps
                .iter()
                .fold(s, |acc, (from, to)| acc.replace(from, to))
        };
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            // The date moves; the length follows the body, compared below.
            .filter(|(n, _)| {
                !n.eq_ignore_ascii_case("date") && !n.eq_ignore_ascii_case("content-length")
            })
            .map(|(n, v)| (n.to_ascii_lowercase(), swap(v)))
            .collect();
        headers.sort();
        (self.status, headers, swap(&self.text()))
    }
}

/// Send a request built with reqwest and read all of its answer.
#[track_caller]
fn send(what: &str, req: RequestBuilder) -> Reply {
    let started = Instant::now();
    let resp = req
        .send()
        .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    let took = started.elapsed();
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = resp
        .bytes()
        .unwrap_or_else(|e| panic!("{what}: the body: {e}"))
        .to_vec();
    Reply {
        status,
        headers,
        body,
        took,
    }
}

/// Assert that nothing of `secrets` appears anywhere in `reply` (headers and body).
#[track_caller]
fn assert_hides(what: &str, reply: &Reply, secrets: &[&str]) {
    let all = reply.everything();
    for s in secrets {
        assert!(
            !all.contains(s),
            "{what}: the answer shows {s:?}, which the caller may not see: {all}"
        );
    }
}

/// Assert that `hidden` (about a document the caller may not read) is `missing` (about one
/// that never was) once each side's own names are swapped for placeholders.
#[track_caller]
fn assert_same(
    what: &str,
    hidden: &Reply,
    hidden_swaps: &[(&str, &str)],
    missing: &Reply,
    missing_swaps: &[(&str, &str)],
) {
    let h = hidden.normalised(hidden_swaps);
    let m = missing.normalised(missing_swaps);
    assert_eq!(
        h, m,
        "{what}: a hidden document answers otherwise than a missing one\n  hidden:  {h:?}\n  missing: {m:?}"
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Write `head` then `body` on a new connection to `addr` and read one response.
fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> Reply {
    raw_bytes(addr, head.as_bytes(), body)
}

fn raw_bytes(addr: SocketAddr, head: &[u8], body: &[u8]) -> Reply {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).expect("a connection");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a read timeout");
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
    let (status, headers) = parse_head(&buf[..head_end]);
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
    Reply {
        status,
        headers,
        body: buf[head_end..(head_end + length).min(buf.len())].to_vec(),
        took,
    }
}

fn parse_head(head: &[u8]) -> (u16, Vec<(String, String)>) {
    let head = String::from_utf8_lossy(head).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line, got {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

/// Everything the server sends on one connection after `bytes`, until it closes it (or stays
/// silent for a while: `closed` is false then).
struct Stream {
    bytes: Vec<u8>,
    closed: bool,
}

impl Stream {
    /// The status of every response in the stream.
    fn statuses(&self) -> Vec<u16> {
        let text = String::from_utf8_lossy(&self.bytes);
        text.match_indices("HTTP/1.1 ")
            .filter(|(i, _)| *i == 0 || text[..*i].ends_with('\n') || text[..*i].ends_with('}'))
            .filter_map(|(i, _)| text[i + 9..].get(..3).and_then(|s| s.parse().ok()))
            .collect()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

fn raw_stream(addr: SocketAddr, bytes: &[u8]) -> Stream {
    let mut s = TcpStream::connect(addr).expect("a connection");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("a read timeout");
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let closed = loop {
        match s.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            // A reset after the answer is a close too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    Stream { bytes: out, closed }
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

// ============================================================================ documents, people

/// A Student in release 5.
fn student(first: &str, last: &str, year: i64) -> Value {
    json!({"firstName": first, "lastName": last, "yearOfBirth": year})
}

/// The policy of the hidden documents: alice alone.
const ALICE_ONLY: &str = r#"{"read":["alice"]}"#;

/// The tokens a case acts with, besides the admin's.
struct People {
    /// A writer the hidden documents' policy names.
    alice: String,
    /// A writer it does not name.
    bob: String,
    /// A reader it does not name.
    rita: String,
}

impl People {
    fn on(node: &Node) -> People {
        People {
            alice: node.new_token("alice", "writer"),
            bob: node.new_token("bob", "writer"),
            rita: node.new_token("rita", "reader"),
        }
    }

    /// Those who may not read the hidden documents, by name.
    fn outsiders(&self) -> [(&'static str, &str); 2] {
        [("bob (writer)", &self.bob), ("rita (reader)", &self.rita)]
    }
}

/// A request on `node` as `token`, in release 5.
fn as_(node: &Node, token: &str, method: Method, path: &str) -> RequestBuilder {
    node.request_as(method, path, token)
        .header("Mutatis-Release", "5")
}

/// `PUT /docs/Student/ID` (a create) as admin with `access` (or none): its rev.
fn create(node: &Node, id: &str, access: Option<&str>, body: &Value) -> String {
    let mut req = as_(
        node,
        &node.token,
        Method::PUT,
        &format!("/docs/Student/{id}"),
    )
    .json(body);
    if let Some(a) = access {
        req = req.header("Mutatis-Access", a);
    }
    let r = send(&format!("create {id}"), req);
    r.ok(&format!("create {id}"), 201)["rev"]
        .as_str()
        .expect("a rev")
        .to_owned()
}

/// `PUT /docs/Student/ID` with `If-Match: rev` as `token`: the new rev.
fn update(node: &Node, token: &str, id: &str, rev: &str, body: &Value) -> String {
    let r = send(
        &format!("update {id}"),
        as_(node, token, Method::PUT, &format!("/docs/Student/{id}"))
            .header("If-Match", format!("\"{rev}\""))
            .json(body),
    );
    r.ok(&format!("update {id}"), 200)["rev"]
        .as_str()
        .expect("a rev")
        .to_owned()
}

/// `DELETE /docs/Student/ID` with `If-Match: rev` as `token`: the tombstone's rev.
fn delete(node: &Node, token: &str, id: &str, rev: &str) -> String {
    let r = send(
        &format!("delete {id}"),
        as_(node, token, Method::DELETE, &format!("/docs/Student/{id}"))
            .header("If-Match", format!("\"{rev}\"")),
    );
    r.ok(&format!("delete {id}"), 200)["rev"]
        .as_str()
        .expect("a rev")
        .to_owned()
}

/// A document a case hides, with everything about it an outsider must never see.
struct Hidden {
    id: String,
    /// Its field values, revs (every one it had) and any other id it brings.
    secrets: Vec<String>,
    /// Its current rev.
    rev: String,
    /// Its first rev.
    first_rev: String,
}

impl Hidden {
    fn secrets(&self) -> Vec<&str> {
        self.secrets.iter().map(String::as_str).collect()
    }
}

/// A hidden document (alice only), written twice; its secrets include its id.
fn hidden_doc(node: &Node, id: &str) -> Hidden {
    let first = format!("Secret{}", id.len());
    let last = format!("Payroll-{id}");
    let first_rev = create(node, id, Some(ALICE_ONLY), &student(&first, &last, 1971));
    let rev = update(
        node,
        &node.token,
        id,
        &first_rev,
        &student(&first, &last, 1972),
    );
    Hidden {
        id: id.to_owned(),
        secrets: vec![id.to_owned(), last, first, first_rev.clone(), rev.clone()],
        rev,
        first_rev,
    }
}

/// A hidden tombstone (alice only): created, then deleted by alice.
fn hidden_tombstone(node: &Node, alice: &str, id: &str) -> Hidden {
    let last = format!("Payroll-{id}");
    let first_rev = create(node, id, Some(ALICE_ONLY), &student("Gone", &last, 1960));
    let rev = delete(node, alice, id, &first_rev);
    Hidden {
        id: id.to_owned(),
        secrets: vec![id.to_owned(), last, first_rev.clone(), rev.clone()],
        rev,
        first_rev,
    }
}

/// The node's manifest hash (`GET /replication`).
fn manifest(node: &Node) -> String {
    node.get_json("/replication")["manifest"]
        .as_str()
        .expect("a manifest hash")
        .to_owned()
}

/// `POST /replication/apply` of `docs` as `token`, from a made-up peer on the node's own
/// manifest.
fn apply(node: &Node, token: &str, docs: Value) -> Reply {
    let batch = json!({
        "source": {"nodeId": "hostile-peer", "manifest": manifest(node)},
        "docs": docs,
    });
    send(
        "POST /replication/apply",
        node.request_as(Method::POST, "/replication/apply", token)
            .json(&batch),
    )
}

/// One wire document of Student in version 5.
fn wire(id: &str, revisions: Value) -> Value {
    json!({"type": "Student", "id": id, "seq": 1, "revisions": revisions})
}

fn revision(rev: &str, body: Value, access: Value) -> Value {
    json!({"rev": rev, "version": 5, "body": body, "access": access})
}

// ================================================================== finding 1: metrics, memory

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
fn metrics_and_memory_stay_bounded(env: &Env) {
    let node = env.students(&[]);
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
        "resident memory grew from {baseline} KiB to {after} KiB (/metrics: {} bytes)",
        metrics.len()
    );
}

// ======================================================================= finding 2: poisoned revs

const POISON_U64: &str = "18446744073709551615-abcdef0123456789";

/// A hostile peer (a writer) sends revs no document could grow from: each such document is
/// refused on its own, the rest of the batch is stored, local edits continue, and a
/// replication from this node to another delivers every later document, even when a
/// document sits at the highest generation the rule lets in and is then edited (that
/// document alone is refused by the target).
fn poisoned_revs_do_not_stall_replication(env: &Env) {
    let node = env.students(&[]);
    let target = support::students_node();
    let bob = node.new_token("bob", "writer");
    let body = || student("Poison", "Ivy", 1990);
    let hex65 = "a".repeat(65);
    let poisons = [
        ("poison-u64", revision(POISON_U64, body(), Value::Null)),
        (
            "poison-2pow53",
            revision("9007199254740991-abcdef0123456789", body(), Value::Null),
        ),
        (
            "poison-hash",
            revision(&format!("1-{hex65}"), body(), Value::Null),
        ),
        (
            "poison-zero",
            revision("0-abcdef0123456789", body(), Value::Null),
        ),
        (
            "poison-history",
            json!({"rev": "2-abcdef0123456789", "history": [POISON_U64], "version": 5, "body": body()}),
        ),
    ];
    let mut docs: Vec<Value> = poisons.iter().map(|(id, r)| wire(id, json!([r]))).collect();
    docs.push(wire(
        "fine",
        json!([revision("1-abcdef0123456789", body(), Value::Null)]),
    ));
    let r = apply(&node, &bob, Value::Array(docs));
    let v = r.ok("the poisoned batch", 200);
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), poisons.len() + 1, "{v}");
    for (res, (id, _)) in results.iter().zip(&poisons) {
        assert_eq!(res["id"], *id, "{v}");
        assert_eq!(res["outcome"], "refused", "{id}: {res}");
        assert!(
            res["lost"].to_string().contains("rev"),
            "{id}: the refusal names the rev: {res}"
        );
    }
    assert_eq!(results[poisons.len()]["outcome"], "stored", "{v}");
    for (id, _) in &poisons {
        send(
            id,
            as_(&node, &bob, Method::GET, &format!("/docs/Student/{id}")),
        )
        .problem(&format!("GET {id}"), 404, "not-found");
    }
    // The rev rule holds wherever a rev comes in: If-Match, ?rev=, an import.
    send(
        "If-Match with a poisoned rev",
        as_(&node, &bob, Method::PUT, "/docs/Student/fine")
            .header("If-Match", format!("\"{POISON_U64}\""))
            .json(&body()),
    )
    .problem("If-Match with a poisoned rev", 400, "invalid-rev");
    send(
        "?rev= a poisoned rev",
        as_(
            &node,
            &bob,
            Method::GET,
            &format!("/docs/Student/fine?rev={POISON_U64}"),
        ),
    )
    .problem("?rev= a poisoned rev", 400, "invalid-rev");
    send(
        "an import with a poisoned rev",
        node.request(Method::POST, "/admin/import").json(&json!({
            "type": "Student", "version": 5,
            "docs": [{"id": "imp", "rev": POISON_U64, "doc": body()}],
        })),
    )
    .problem("an import with a poisoned rev", 400, "invalid-rev");

    // Local edits go on from the stored document.
    let rev = update(
        &node,
        &bob,
        "fine",
        "1-abcdef0123456789",
        &student("Fine", "Again", 1991),
    );
    assert!(rev.starts_with("2-"), "{rev}");
    for i in 1..=3 {
        create(
            &node,
            &format!("later-{i}"),
            None,
            &student("Later", "Doc", 2000),
        );
    }
    let run = support::replicate(&node, &target, &[]);
    run.assert_success();
    let got = target.list_docs("Student");
    let ids: Vec<&str> = got.keys().map(String::as_str).collect();
    assert_eq!(ids, ["fine", "later-1", "later-2", "later-3"], "{run:?}");
    assert_eq!(got["fine"].0, rev, "the edit arrived as written");

    // The highest generation the rule lets in (2^53 - 2) is stored; an edit takes it to the
    // limit, where other nodes refuse it: that document alone, and what follows arrives.
    let edge = "9007199254740990-abcdef0123456789";
    let r = apply(
        &node,
        &bob,
        json!([wire("edge", json!([revision(edge, body(), Value::Null)]))]),
    );
    assert_eq!(
        r.ok("the edge batch", 200)["results"][0]["outcome"],
        "stored"
    );
    let at_limit = update(&node, &bob, "edge", edge, &student("Edge", "Case", 1999));
    assert!(at_limit.starts_with("9007199254740991-"), "{at_limit}");
    create(&node, "later-4", None, &student("Later", "Still", 2001));
    let run = support::replicate(&node, &target, &[]);
    run.assert_success();
    assert_eq!(run.count("refused"), 1, "{run:?}");
    assert!(
        run.not_stored().iter().any(|n| n["id"] == "edge"),
        "{:?}",
        run.not_stored()
    );
    assert!(
        target.get_doc("Student", "later-4", "5").is_some(),
        "a document written after the refused one did not arrive: {run:?}"
    );
    assert!(target.get_doc("Student", "edge", "5").is_none());
}

// ================================================================== finding 3: access leaks

/// A page of `GET /docs/Student` as `token`.
fn page(node: &Node, token: &str, query: &str) -> Reply {
    send(
        &format!("GET /docs/Student?{query}"),
        as_(node, token, Method::GET, &format!("/docs/Student?{query}")),
    )
}

/// Every page of the list as `token` with `limit`: the ids and the `next` values seen.
fn walk(node: &Node, token: &str, limit: usize, secrets: &[&str]) -> (Vec<String>, Vec<String>) {
    let (mut ids, mut cursors) = (Vec::new(), Vec::new());
    let mut after: Option<String> = None;
    for _ in 0..100 {
        let query = match &after {
            None => format!("limit={limit}"),
            Some(a) => format!("limit={limit}&after={a}"),
        };
        let r = page(node, token, &query);
        assert_hides(&format!("list {query}"), &r, secrets);
        let v = r.ok(&format!("list {query}"), 200);
        for d in v["docs"].as_array().expect("docs") {
            ids.push(d["id"].as_str().expect("an id").to_owned());
        }
        match v["next"].as_str() {
            None => return (ids, cursors),
            Some(n) => {
                cursors.push(n.to_owned());
                after = Some(n.to_owned());
            }
        }
    }
    panic!("the list as a {limit}-page walk never ends");
}

/// A reader pages with every limit and probes `after=` between the documents it sees, as
/// one would bisect for an id: every answer is the one it would get if the hidden documents
/// (and tombstones) were not there. Finding 3's `next: "zz-hidden-payroll-4471"`, and the
/// sealed cursor's "something is here" after it.
fn lists_do_not_reveal_hidden_ids(env: &Env) {
    let node = env.students(&[]);
    let people = People::on(&node);
    create(&node, "aaa-open", None, &student("Ada", "Open", 1990));
    let h1 = hidden_doc(&node, "hid-payroll-4471");
    let h2 = hidden_doc(&node, "hid-zz-9");
    let t = hidden_tombstone(&node, &people.alice, "hid-tomb-0001");
    let gone = create(&node, "mmm-gone", None, &student("Gone", "Open", 1990));
    delete(&node, &node.token, "mmm-gone", &gone);
    create(&node, "zzz-open", None, &student("Zed", "Open", 1990));
    let mut secrets = h1.secrets();
    secrets.extend(h2.secrets());
    secrets.extend(t.secrets());
    for (who, token) in people.outsiders() {
        for limit in 1..=6 {
            let (ids, cursors) = walk(&node, token, limit, &secrets);
            assert_eq!(
                ids,
                ["aaa-open", "zzz-open"],
                "{who}, pages of {limit}: the documents listed"
            );
            // A cursor names the last document listed, never anything else.
            for c in &cursors {
                assert!(
                    ids.contains(c),
                    "{who}, pages of {limit}: cursor {c:?} is not a listed id"
                );
            }
        }
        // Bisecting with `after=`: between the two documents it sees, every probe answers
        // the same, whatever hidden ids or tombstones lie there.
        let reference = page(&node, token, "limit=1&after=aaa-open");
        let v = reference.ok(&format!("{who}: the page after aaa-open"), 200);
        assert_eq!(
            v,
            json!({"docs": [v["docs"][0]], "next": "zzz-open"}),
            "{who}"
        );
        assert_eq!(v["docs"][0]["id"], "zzz-open", "{who}: {v}");
        for probe in [
            "b",
            "hid",
            "hid-payroll-447",
            "hid-payroll-4471",
            "hid-payroll-4472",
            "hid-tomb",
            "hid-zz",
            "mmm-gone",
            "n",
        ] {
            for limit in [1, 2, 3] {
                let r = page(&node, token, &format!("limit={limit}&after={probe}"));
                let expected = page(&node, token, &format!("limit={limit}&after=aaa-open"));
                assert_same(
                    &format!("{who}: page of {limit} after {probe}"),
                    &r,
                    &[],
                    &expected,
                    &[],
                );
            }
        }
        for probe in ["zzz-open", "zzz-open-", "~", "~00"] {
            let r = page(&node, token, &format!("limit=1&after={probe}"));
            let v = r.ok(&format!("{who}: page after {probe}"), 200);
            assert_eq!(v, json!({"docs": [], "next": null}), "{who}: after {probe}");
        }
    }
    // The policy's own reader sees the hidden documents (the probes above hid something).
    let (ids, _) = walk(&node, &people.alice, 2, &[]);
    assert_eq!(
        ids,
        ["aaa-open", "hid-payroll-4471", "hid-zz-9", "zzz-open"],
        "alice's list"
    );
}

/// A hidden document, a hidden tombstone and their never-written twins, with the swaps that
/// make their answers comparable.
struct Twins {
    node: TestNode,
    people: People,
    doc: Hidden,
    tomb: Hidden,
}

const HIDDEN_ID: &str = "hid-payroll-4471";
const MISSING_ID: &str = "mis-payroll-4471";
const TOMB_ID: &str = "hid-tomb-0001";
const MISSING_TOMB_ID: &str = "mis-tomb-0001";

fn twins(env: &Env) -> Twins {
    let node = env.students(&[]);
    let people = People::on(&node);
    create(&node, "open-1", None, &student("Ada", "Open", 1990));
    let doc = hidden_doc(&node, HIDDEN_ID);
    let tomb = hidden_tombstone(&node, &people.alice, TOMB_ID);
    Twins {
        node,
        people,
        doc,
        tomb,
    }
}

/// Reads of a hidden document (and of a hidden tombstone) by a reader and a writer the policy
/// does not name answer exactly as reads of ids that never were: `GET`, `?rev=` (its real
/// revs and a made-up one), `?source=backup`, `/access`, `/conflicts`, in a deprecated
/// release too.
fn read_routes_answer_hidden_as_missing(env: &Env) {
    let t = twins(env);
    let node = &t.node;
    for (hidden, missing) in [(&t.doc, MISSING_ID), (&t.tomb, MISSING_TOMB_ID)] {
        let h_swaps = [(hidden.id.as_str(), "{id}")];
        let m_swaps = [(missing, "{id}")];
        let secrets = hidden.secrets();
        let routes = [
            String::new(),
            format!("?rev={}", hidden.rev),
            format!("?rev={}", hidden.first_rev),
            "?rev=1-0123456789abcdef".to_owned(),
            "?source=backup".to_owned(),
            "/access".to_owned(),
            "/conflicts".to_owned(),
        ];
        for (who, token) in t.people.outsiders() {
            for release in ["5", "3"] {
                for route in &routes {
                    let (path_h, path_m) = match route.strip_prefix('?') {
                        Some(q) => (
                            format!("/docs/Student/{}?{q}", hidden.id),
                            format!("/docs/Student/{missing}?{q}"),
                        ),
                        None => (
                            format!("/docs/Student/{}{route}", hidden.id),
                            format!("/docs/Student/{missing}{route}"),
                        ),
                    };
                    let get = |path: &str| {
                        send(
                            path,
                            node.request_as(Method::GET, path, token)
                                .header("Mutatis-Release", release),
                        )
                    };
                    let h = get(&path_h);
                    let what = format!("{who}, release {release}: GET {path_h}");
                    // The caller named the id and the revs: those may come back, nothing else.
                    let named: Vec<&str> = secrets
                        .iter()
                        .copied()
                        .filter(|s| *s != hidden.id && !route.contains(s))
                        .collect();
                    assert_hides(&what, &h, &named);
                    assert!(h.status >= 400, "{what}: {}", h.text());
                    assert_same(&what, &h, &h_swaps, &get(&path_m), &m_swaps);
                }
            }
        }
    }
    // The policy's own reader does read it (the hidden document is there to be hidden).
    let r = send(
        "alice reads",
        as_(
            node,
            &t.people.alice,
            Method::GET,
            &format!("/docs/Student/{HIDDEN_ID}"),
        ),
    );
    assert!(r.ok("alice reads", 200)["lastName"]
        .as_str()
        .is_some_and(|l| l.starts_with("Payroll")));
}

/// A write to try on an id.
type Attempt<'a> = Box<dyn Fn(&str) -> RequestBuilder + 'a>;

/// Writes with `If-Match` over a hidden document (its real rev, so only access stands in the
/// way) answer exactly as over an id that never was: PUT, PATCH, DELETE, PUT /access and both
/// kinds of conflict resolution. Nothing is written.
fn write_routes_answer_hidden_as_missing(env: &Env) {
    let t = twins(env);
    let node = &t.node;
    let hidden = &t.doc;
    let rev = hidden.rev.as_str();
    let if_match = format!("\"{rev}\"");
    let h_swaps = [(HIDDEN_ID, "{id}")];
    let m_swaps = [(MISSING_ID, "{id}")];
    let secrets: Vec<&str> = hidden
        .secrets()
        .into_iter()
        .filter(|s| *s != HIDDEN_ID && *s != rev)
        .collect();
    let body = student("Mallory", "Overwrite", 1999);
    for (who, token) in t.people.outsiders() {
        let attempts: Vec<(&str, Attempt<'_>)> = vec![
            (
                "PUT If-Match",
                Box::new(|id: &str| {
                    as_(node, token, Method::PUT, &format!("/docs/Student/{id}"))
                        .header("If-Match", &if_match)
                        .json(&body)
                }),
            ),
            (
                "PATCH If-Match",
                Box::new(|id: &str| {
                    as_(node, token, Method::PATCH, &format!("/docs/Student/{id}"))
                        .header("If-Match", &if_match)
                        .header("Content-Type", "application/json-patch+json")
                        .body(r#"[{"op": "replace", "path": "/lastName", "value": "X"}]"#)
                }),
            ),
            (
                "DELETE If-Match",
                Box::new(|id: &str| {
                    as_(node, token, Method::DELETE, &format!("/docs/Student/{id}"))
                        .header("If-Match", &if_match)
                }),
            ),
            (
                "PUT /access If-Match",
                Box::new(|id: &str| {
                    as_(
                        node,
                        token,
                        Method::PUT,
                        &format!("/docs/Student/{id}/access"),
                    )
                    .header("If-Match", &if_match)
                    .json(&json!({"read": ["*"]}))
                }),
            ),
            (
                "resolve keep",
                Box::new(|id: &str| {
                    as_(
                        node,
                        token,
                        Method::POST,
                        &format!("/docs/Student/{id}/conflicts/resolve"),
                    )
                    .json(&json!({"winner": rev, "keep": rev}))
                }),
            ),
            (
                "resolve merge",
                Box::new(|id: &str| {
                    as_(
                        node,
                        token,
                        Method::POST,
                        &format!("/docs/Student/{id}/conflicts/resolve"),
                    )
                    .json(&json!({"winner": rev, "merge": body}))
                }),
            ),
        ];
        for (name, build) in &attempts {
            let what = format!("{who}: {name} {HIDDEN_ID}");
            let h = send(&what, build(HIDDEN_ID));
            assert_hides(&what, &h, &secrets);
            assert!(h.status >= 400, "{what}: {}", h.text());
            let m = send(&what, build(MISSING_ID));
            assert_same(&what, &h, &h_swaps, &m, &m_swaps);
        }
    }
    // Nothing was written.
    let r = send(
        "admin reads",
        node.request(Method::GET, &format!("/docs/Student/{HIDDEN_ID}")),
    );
    r.ok("admin reads", 200);
    assert_eq!(
        r.header("etag"),
        Some(format!("\"{rev};Student@5\"").as_str())
    );
    assert!(node.get_doc("Student", MISSING_ID, "5").is_none());
}

/// A writer the policy does not name creates over a hidden document or a hidden tombstone
/// (`POST ?id=`, `PUT` without `If-Match`, a replicated document): it learns that the id is
/// taken — unique ids make that unavoidable — but not the rev (`currentRev` is null), body or
/// policy, and a live document answers exactly as a tombstone does. A document it may read
/// still names its rev.
fn creates_over_hidden_ids_say_only_taken(env: &Env) {
    let t = twins(env);
    let node = &t.node;
    let bob = &t.people.bob;
    let body = student("Mallory", "Create", 1999);
    let mut secrets = t.doc.secrets();
    secrets.extend(t.tomb.secrets());
    secrets.retain(|s| *s != HIDDEN_ID && *s != TOMB_ID);
    let post = |id: &str| {
        send(
            "POST ?id=",
            as_(node, bob, Method::POST, &format!("/docs/Student?id={id}")).json(&body),
        )
    };
    let put = |id: &str| {
        send(
            "PUT without If-Match",
            as_(node, bob, Method::PUT, &format!("/docs/Student/{id}")).json(&body),
        )
    };
    let replicated = |id: &str| {
        apply(
            node,
            bob,
            json!([wire(
                id,
                json!([revision("1-0123456789abcdef", body.clone(), Value::Null)])
            )]),
        )
    };
    for (what, hidden) in [
        ("a hidden document", &t.doc),
        ("a hidden tombstone", &t.tomb),
    ] {
        let id = hidden.id.as_str();
        let r = post(id);
        assert_hides(&format!("POST ?id= over {what}"), &r, &secrets);
        let p = r.problem(&format!("POST ?id= over {what}"), 409, "already-exists");
        assert_eq!(p["currentRev"], Value::Null, "{what}: {p}");
        let r = put(id);
        assert_hides(&format!("PUT over {what}"), &r, &secrets);
        let p = r.problem(&format!("PUT over {what}"), 412, "already-exists");
        assert_eq!(p["currentRev"], Value::Null, "{what}: {p}");
        let r = replicated(id);
        assert_hides(&format!("a replicated document over {what}"), &r, &secrets);
        let v = r.ok(&format!("a replicated document over {what}"), 200);
        assert_eq!(
            v["results"][0],
            json!({"type": "Student", "id": id, "rev": "1-0123456789abcdef", "outcome": "forbidden"}),
            "{what}"
        );
    }
    // A live hidden document and a hidden tombstone cannot be told apart.
    let swaps_doc = [(HIDDEN_ID, "{id}")];
    let swaps_tomb = [(TOMB_ID, "{id}")];
    assert_same(
        "POST ?id=",
        &post(HIDDEN_ID),
        &swaps_doc,
        &post(TOMB_ID),
        &swaps_tomb,
    );
    assert_same(
        "PUT",
        &put(HIDDEN_ID),
        &swaps_doc,
        &put(TOMB_ID),
        &swaps_tomb,
    );
    assert_same(
        "replicated",
        &replicated(HIDDEN_ID),
        &swaps_doc,
        &replicated(TOMB_ID),
        &swaps_tomb,
    );
    // A document bob may read: the conflict names its rev (he could read it anyway).
    let open = create(node, "open-2", None, &student("Ada", "Open", 1990));
    let p = post("open-2").problem("POST ?id= over a readable document", 409, "already-exists");
    assert_eq!(p["currentRev"], open.as_str(), "{p}");
    // Nothing was written over the hidden ones.
    let r = send(
        "admin reads",
        node.request(Method::GET, &format!("/docs/Student/{HIDDEN_ID}")),
    );
    r.ok("admin reads", 200);
    assert_eq!(
        r.header("etag"),
        Some(format!("\"{};Student@5\"", t.doc.rev).as_str())
    );
}

/// Recreating a document over its restricted tombstone: a writer the tombstone's policy does
/// not name is refused (as over a taken id), and the one it names recreates a document that
/// keeps the policy (finding 3: it used to come back with none, open to all).
fn recreating_over_a_tombstone_keeps_its_policy(env: &Env) {
    let t = twins(env);
    let node = &t.node;
    let body = student("Again", "Restricted", 1980);
    let r = send(
        "bob recreates",
        as_(
            node,
            &t.people.bob,
            Method::PUT,
            &format!("/docs/Student/{TOMB_ID}"),
        )
        .json(&body),
    );
    r.problem("bob recreates over the tombstone", 412, "already-exists");
    let r = send(
        "alice recreates",
        as_(
            node,
            &t.people.alice,
            Method::PUT,
            &format!("/docs/Student/{TOMB_ID}"),
        )
        .json(&body),
    );
    r.ok("alice recreates over the tombstone", 201);
    let access = send(
        "alice reads the policy",
        as_(
            node,
            &t.people.alice,
            Method::GET,
            &format!("/docs/Student/{TOMB_ID}/access"),
        ),
    )
    .ok("alice reads the policy", 200);
    assert_eq!(access["access"], json!({"read": ["alice"]}), "{access}");
    for (who, token) in t.people.outsiders() {
        send(
            who,
            as_(
                node,
                token,
                Method::GET,
                &format!("/docs/Student/{TOMB_ID}"),
            ),
        )
        .problem(
            &format!("{who} reads the recreated document"),
            404,
            "not-found",
        );
        let (ids, _) = walk(node, token, 10, &["Restricted", TOMB_ID]);
        assert_eq!(ids, ["open-1"], "{who}'s list");
    }
}

/// The changes feed (every mode, with documents), the replication feed (with selectors that
/// match the hidden document's values and that match nothing: the same answer) and the
/// metrics show an outsider nothing of a hidden document or tombstone.
fn feeds_show_nothing_hidden(env: &Env) {
    let t = twins(env);
    let node = &t.node;
    let mut secrets = t.doc.secrets();
    secrets.extend(t.tomb.secrets());
    // The last visible change, after which only hidden ones follow.
    let open_seq = node.get_json("/changes?limit=1")["results"][0]["seq"]
        .as_u64()
        .expect("the first change");
    for (who, token) in t.people.outsiders() {
        let get = |path: &str| send(path, as_(node, token, Method::GET, path));
        for path in [
            "/changes".to_owned(),
            "/changes?include_docs=true".to_owned(),
            "/changes?include_docs=true&types=Student&limit=1000".to_owned(),
            format!("/changes?feed=longpoll&timeout=300&include_docs=true&since={open_seq}"),
            "/changes?feed=sse&timeout=500&include_docs=true".to_owned(),
            "/replication/changes".to_owned(),
            "/replication/changes?types=Student&limit=5000".to_owned(),
            "/metrics".to_owned(),
        ] {
            let r = get(&path);
            assert_eq!(r.status, 200, "{who}: {path}: {}", r.text());
            assert_hides(&format!("{who}: {path}"), &r, &secrets);
            if !path.starts_with("/metrics") && !path.contains("longpoll") {
                assert!(
                    r.text().contains("open-1"),
                    "{who}: {path} shows the open document: {}",
                    r.text()
                );
            }
        }
        // A selector on the hidden document's value answers as one on a value nobody has.
        let selector = |value: &str| {
            let s = json!({"/lastName": value}).to_string();
            let q: String = s
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            get(&format!("/replication/changes?selector={q}"))
        };
        let secret_value = format!("Payroll-{HIDDEN_ID}");
        let nobody = format!("Nobodys-{HIDDEN_ID}");
        assert_same(
            &format!("{who}: a selector on a hidden value"),
            &selector(&secret_value),
            &[],
            &selector(&nobody),
            &[],
        );
    }
    // The policy's own reader sees it on the feed.
    let r = send(
        "alice's feed",
        as_(
            node,
            &t.people.alice,
            Method::GET,
            "/changes?include_docs=true",
        ),
    );
    assert!(r.text().contains(HIDDEN_ID), "alice's feed: {}", r.text());
}

/// A document whose winner is open but whose conflict leaves (one live, one deleted) carry a
/// policy of their own that hides them: an outsider sees neither leaf on `/conflicts`, the
/// changes and replication feeds; `?rev=` of either answers as a made-up rev; a resolution
/// that names either as `keep` answers as a rev that is no leaf, and one that keeps the
/// winner leaves the hidden leaves as they were (they are not the caller's to end), so their
/// revs never reach the caller through the resolution's history.
fn hidden_conflict_leaves_stay_hidden(env: &Env) {
    let node = env.students(&[]);
    let people = People::on(&node);
    let winner = "3-3333333333333333";
    let live = "2-2222222222222222";
    let dead = "4-4444444444444444";
    let alice_only = json!({"read": ["alice"]});
    let r = apply(
        &node,
        &node.token,
        json!([wire(
            "cfl-0001",
            json!([
                revision(winner, student("Open", "Winner", 1990), Value::Null),
                revision(live, student("Secret", "Leaf-7731", 1971), alice_only.clone()),
                {"rev": dead, "version": 5, "deleted": true, "body": null, "access": alice_only},
            ])
        )]),
    );
    r.ok("the conflict batch", 200);
    // The admin sees both leaves: there is something to hide.
    let all = node.get_json("/docs/Student/cfl-0001/conflicts");
    assert_eq!(all["rev"], winner, "{all}");
    assert_eq!(all["conflicts"].as_array().map(Vec::len), Some(2), "{all}");
    let secrets = [live, dead, "Leaf-7731", "2-22222", "4-44444"];
    // Made-up revs of the same shape: swapped with the real ones, the answers must agree.
    let fake_live = "2-2222222222222229";
    let fake_dead = "4-4444444444444449";
    for (who, token) in people.outsiders() {
        let get = |path: &str| send(path, as_(&node, token, Method::GET, path));
        let r = get("/docs/Student/cfl-0001/conflicts");
        assert_hides(&format!("{who}: /conflicts"), &r, &secrets);
        let v = r.ok(&format!("{who}: /conflicts"), 200);
        assert_eq!(v["conflicts"], json!([]), "{who}: {v}");
        for path in [
            "/changes?include_docs=true",
            "/replication/changes",
            "/docs/Student?limit=10",
        ] {
            let r = get(path);
            assert_hides(&format!("{who}: {path}"), &r, &secrets);
            assert!(r.text().contains("cfl-0001"), "{who}: {path}: {}", r.text());
        }
        for (real, fake) in [(live, fake_live), (dead, fake_dead)] {
            let what = format!("{who}: ?rev= of a hidden leaf");
            let h = get(&format!("/docs/Student/cfl-0001?rev={real}"));
            let m = get(&format!("/docs/Student/cfl-0001?rev={fake}"));
            h.problem(&what, 404, "unknown-revision");
            assert_same(&what, &h, &[(real, "{rev}")], &m, &[(fake, "{rev}")]);
        }
    }
    let bob = &people.bob;
    let resolve = |body: Value| {
        send(
            "resolve",
            as_(
                &node,
                bob,
                Method::POST,
                "/docs/Student/cfl-0001/conflicts/resolve",
            )
            .json(&body),
        )
    };
    for (real, fake) in [(live, fake_live), (dead, fake_dead)] {
        let what = "bob keeps a hidden leaf";
        let h = resolve(json!({"winner": winner, "keep": real}));
        let m = resolve(json!({"winner": winner, "keep": fake}));
        assert_hides(what, &h, &["Leaf-7731"]);
        h.problem(what, 412, "rev-conflict");
        assert_same(what, &h, &[(real, "{rev}")], &m, &[(fake, "{rev}")]);
    }
    // Bob resolves what he sees: the hidden leaves are not his to end.
    let r = resolve(json!({"winner": winner, "merge": student("Open", "Merged", 1990)}));
    let new_rev = r.ok("bob merges", 200)["rev"]
        .as_str()
        .expect("a rev")
        .to_owned();
    assert!(
        new_rev.starts_with("4-"),
        "the resolution counts on from the winner: {new_rev}"
    );
    let all = node.get_json("/docs/Student/cfl-0001/conflicts");
    assert_eq!(all["rev"], new_rev.as_str(), "{all}");
    let left: Vec<&str> = all["conflicts"]
        .as_array()
        .expect("conflicts")
        .iter()
        .filter_map(|c| c["rev"].as_str())
        .collect();
    assert_eq!(left, [live, dead], "alice's leaves are still there: {all}");
    for (who, token) in people.outsiders() {
        for path in ["/replication/changes", "/docs/Student/cfl-0001/conflicts"] {
            let r = send(path, as_(&node, token, Method::GET, path));
            assert_hides(&format!("{who}: {path} after the merge"), &r, &secrets);
        }
    }
    // Alice, who sees everything, ends it all.
    let r = send(
        "alice resolves",
        as_(
            &node,
            &people.alice,
            Method::POST,
            "/docs/Student/cfl-0001/conflicts/resolve",
        )
        .json(&json!({"winner": new_rev, "keep": new_rev})),
    );
    r.ok("alice resolves", 200);
    let all = node.get_json("/docs/Student/cfl-0001/conflicts");
    assert_eq!(all["conflicts"], json!([]), "{all}");
}

/// A type migrated with its backup kept: `?source=backup` of a hidden document answers as
/// of a missing one (the todo example, stored eagerly: a migration keeps a backup).
fn the_backup_answers_hidden_as_missing(env: &Env) {
    let node = env.node_at(&example("todo"), &[]);
    let people = People::on(&node);
    let todo = |title: &str| json!({"title": title, "status": "open", "important": false});
    let put = |id: &str, access: Option<&str>, body: &Value| {
        let mut req = node
            .request(Method::PUT, &format!("/docs/todo/{id}"))
            .header("Mutatis-Release", "5")
            .json(body);
        if let Some(a) = access {
            req = req.header("Mutatis-Access", a);
        }
        send(id, req).ok(&format!("create {id}"), 201);
    };
    put("open-1", None, &todo("open"));
    put(HIDDEN_ID, Some(ALICE_ONLY), &todo("Payroll-secret-4471"));
    let r = send(
        "migrate",
        node.request(Method::POST, "/admin/migrations")
            .json(&json!({"type": "todo", "to": 2})),
    );
    assert!(r.status == 202 || r.status == 200, "migrate: {}", r.text());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = node.get_json("/admin/migrations/todo");
        if st["backup"].is_object() && st["migration"].is_null() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the migration did not switch: {st}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let get = |token: &str, id: &str| {
        let path = format!("/docs/todo/{id}?source=backup");
        send(&path, as_(&node, token, Method::GET, &path))
    };
    for (who, token) in people.outsiders() {
        let what = format!("{who}: ?source=backup of a hidden document");
        let h = get(token, HIDDEN_ID);
        assert_hides(&what, &h, &["Payroll-secret-4471"]);
        h.problem(&what, 404, "not-found");
        assert_same(
            &what,
            &h,
            &[(HIDDEN_ID, "{id}")],
            &get(token, MISSING_ID),
            &[(MISSING_ID, "{id}")],
        );
        get(token, "open-1").ok(&format!("{who}: the open document's backup"), 200);
    }
    let v = get(&people.alice, HIDDEN_ID).ok("alice reads the backup", 200);
    assert_eq!(v["title"], "Payroll-secret-4471", "{v}");
}

// ================================================================= finding 4: bodies, timeouts

/// A client without a token is refused before its body is read: `Content-Length: 100` and
/// no body used to hold the connection for the 30 s request timeout (then a 503).
fn no_token_is_refused_before_the_body(env: &Env) {
    let node = env.students(&[]);
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
        a.problem(line, 401, "unauthenticated");
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
    a.problem("an unknown token", 401, "unauthenticated");
    assert!(a.took < AT_ONCE, "answered after {:?}", a.took);
}

/// A body announced over its route's limit is refused at once (before authentication, and
/// before a byte of it), with the route's own limit: `/replication/apply` takes more.
fn announced_bodies_over_the_limit_are_refused_at_once(env: &Env) {
    let node = env.students(&[
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
        let p = a.problem(line, 413, "body-too-large");
        assert!(a.took < AT_ONCE, "{line}: answered after {:?}", a.took);
        assert_eq!(p["contentLength"], 10_000_000_000u64, "{p}");
        assert_eq!(a.header("connection"), Some("close"), "{line}");
    }
    // 2000 bytes: over the documents' limit, within the replication one (whose body is then
    // waited for, and times out: it never comes).
    let announce = |line: &str, length: &str| {
        raw(
            node.addr,
            &head(
                node.addr,
                line,
                &[&auth, "Content-Type: application/json", length],
            ),
            b"",
        )
    };
    let a = announce("PUT /docs/Student/x HTTP/1.1", "Content-Length: 2000");
    assert_eq!(
        a.problem("2000 bytes to a document", 413, "body-too-large")["limit"],
        1000
    );
    let a = announce("POST /replication/apply HTTP/1.1", "Content-Length: 2000");
    a.problem(
        "2000 bytes to /replication/apply, never sent",
        408,
        "body-timeout",
    );
    let a = announce("POST /replication/apply HTTP/1.1", "Content-Length: 200000");
    assert_eq!(
        a.problem("200000 bytes to /replication/apply", 413, "body-too-large")["limit"],
        100_000
    );
}

/// A chunked body announces no length: it is cut off at the limit all the same.
fn chunked_bodies_are_bounded(env: &Env) {
    let node = env.students(&["--body-limit", "1000"]);
    let auth = bearer();
    let chunked = |id: &str, doc: &str| {
        let body = format!("{:x}\r\n{doc}\r\n0\r\n\r\n", doc.len());
        raw(
            node.addr,
            &head(
                node.addr,
                &format!("PUT /docs/Student/{id} HTTP/1.1"),
                &[
                    &auth,
                    "Content-Type: application/json",
                    "Mutatis-Release: 5",
                    "Transfer-Encoding: chunked",
                ],
            ),
            body.as_bytes(),
        )
    };
    let big = format!(
        "{{\"firstName\": \"{}\", \"lastName\": \"B\", \"yearOfBirth\": 1990}}",
        "a".repeat(3000)
    );
    let a = chunked("x", &big);
    assert_eq!(
        a.problem("a chunked body of 3 KB", 413, "body-too-large")["limit"],
        1000
    );
    // Within the limit, chunked is fine.
    let a = chunked(
        "y",
        r#"{"firstName": "A", "lastName": "B", "yearOfBirth": 1990}"#,
    );
    assert_eq!(a.status, 201, "{}", a.text());
}

/// A body that stops arriving is answered 408 after the body timeout, well before the
/// request timeout (30 s).
fn stalled_bodies_time_out(env: &Env) {
    let node = env.students(&["--body-timeout", "1"]);
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
        let p = a.problem(line, 408, "body-timeout");
        assert!(a.took < AT_ONCE, "{line}: answered after {:?}", a.took);
        assert!(
            p["detail"].as_str().is_some_and(|d| d.contains("1 s")),
            "{p}"
        );
    }
}

/// The head timeout (`--request-timeout` bounds how long a request head may take, and with it
/// how long a kept-alive connection may wait for its next one) holds for each head on its own:
/// a client that trickles half a head, or goes quiet between requests, loses its connection,
/// and one that keeps asking past several timeouts keeps it.
fn stalled_heads_are_cut_off(env: &Env) {
    let node = env.students(&["--request-timeout", "1", "--body-timeout", "0.5"]);
    let timeout = Duration::from_secs(1);
    let connect = || {
        let s = TcpStream::connect(node.addr).expect("a connection");
        // Far past the timeout: a read that waits this long means the server never closed.
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("a read timeout");
        s
    };
    // Whether the server closed `s` (what it may say first, hyper's 408, aside) and when.
    let closed = |s: &mut TcpStream, since: Instant| {
        let mut chunk = [0u8; 1024];
        loop {
            match s.read(&mut chunk) {
                Ok(0) => return Some(since.elapsed()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Some(since.elapsed())
                }
                Err(_) => return None,
            }
        }
    };
    let ask = head(node.addr, "GET /livez HTTP/1.1", &[]);

    // Half a head, then nothing.
    // Taken before connecting: the server's clock for the head starts after this.
    let since = Instant::now();
    let mut half = connect();
    half.write_all(b"GET /livez HTTP/1.1\r\nHost: a\r\n")
        .expect("half a head");
    let took = closed(&mut half, since).expect("a half-written head was never cut off");
    assert!(
        took >= timeout,
        "cut off after {took:?}, before the timeout"
    );

    // A request a third of the timeout after the last, for three timeouts: every one is
    // answered on the same connection.
    let mut busy = connect();
    let since = Instant::now();
    let mut answered = 0;
    while since.elapsed() < timeout * 3 {
        busy.write_all(ask.as_bytes()).expect("a request");
        assert_eq!(
            answer_on(&mut busy),
            Some(200),
            "request {answered} on a busy connection, {:?} in",
            since.elapsed()
        );
        answered += 1;
        std::thread::sleep(timeout / 3);
    }
    assert!(answered >= 6, "only {answered} requests in three timeouts");

    // Then quiet: closed after the timeout, counted from the last answer.
    let since = Instant::now();
    let took = closed(&mut busy, since).expect("an idle kept-alive connection stayed open");
    assert!(
        took >= timeout / 2,
        "an idle connection was cut off after {took:?}"
    );
}

/// The status of the next answer on kept-alive `s` (read to the end of its body, so the next
/// one can follow), or `None` if the connection closed or garbled it.
fn answer_on(s: &mut TcpStream) -> Option<u16> {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => return None,
        }
    }
    let (status, headers) = parse_head(&got);
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())?;
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).ok()?;
    Some(status)
}

// ============================================================================ finding 5: YAML

/// The "billion laughs": each level an anchored list of ten aliases to the one before.
fn alias_bomb(levels: usize) -> String {
    let mut text = String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..=levels {
        let prev = format!("*l{}", i - 1);
        let items = [prev.as_str(); 10].join(", ");
        text.push_str(&format!("l{i}: &l{i} [{items}]\n"));
    }
    text
}

/// Copy a schema-set folder (two levels: the set and its `types/`).
fn copy_set(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("types")).expect("a folder");
    for sub in ["", "types"] {
        for entry in std::fs::read_dir(from.join(sub)).expect("the set's folder") {
            let path = entry.expect("an entry").path();
            if path.is_file() {
                let name = path.file_name().expect("a file name");
                std::fs::copy(&path, to.join(sub).join(name)).expect("a copy");
            }
        }
    }
}

/// An operator's schema set gains a type file that is an alias bomb: the reload is refused
/// at once, naming the file, and the node goes on serving the set it had.
fn reload_refuses_an_alias_bomb(env: &Env) {
    let scratch = tempfile::tempdir().expect("a scratch folder");
    let set = scratch.path().join("students");
    copy_set(&example("students"), &set);
    let node = env.node_at(&set, &[]);
    create(&node, "before", None, &student("Ada", "Before", 1990));
    std::fs::write(
        set.join("types/Bomb.yaml"),
        format!(
            "{}type: Bomb\nversions:\n  1:\n    schema: {{type: object}}\n",
            alias_bomb(9)
        ),
    )
    .expect("the bomb");
    let started = Instant::now();
    let r = send("reload", node.request(Method::POST, "/admin/reload"));
    let took = started.elapsed();
    let p = r.problem("reload with an alias bomb", 422, "invalid-schema-set");
    assert!(took < AT_ONCE, "the reload took {took:?}");
    assert!(p["detail"].to_string().contains("Bomb.yaml"), "{p}");
    assert!(node.get_doc("Student", "before", "5").is_some());
    let meta = node.get_json("/meta");
    assert!(meta["types"].get("Bomb").is_none(), "{meta}");
}

fn lens_apply_refuses_an_alias_bomb(_: &Env) {
    let scratch = tempfile::tempdir().expect("a scratch folder");
    let lens = scratch.path().join("bomb.yaml");
    std::fs::write(&lens, format!("{}lens: []\n", alias_bomb(9))).expect("the bomb");
    let started = Instant::now();
    let out = mutatis(
        &["lens", "apply", &lens.display().to_string()],
        b"{\"a\": 1}\n",
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(took < AT_ONCE, "lens apply took {took:?}");
    let err = stderr(&out);
    assert!(err.contains("bomb.yaml") && err.contains("line"), "{err}");
    assert!(out.stdout.is_empty());
}

/// Cambria's case 076: a rename of a field the document lacks (a typo in the lens) is
/// refused, naming the lens's line, instead of passing the document through unchanged.
fn lens_apply_refuses_a_lens_that_does_not_fit(_: &Env) {
    let scratch = tempfile::tempdir().expect("a scratch folder");
    let lens = scratch.path().join("typo.yml");
    std::fs::write(
        &lens,
        "lens:\n  - add: {name: kind, type: string, default: person}\n  - rename: {source: nonexistent, destination: ghost}\n",
    )
    .expect("the lens");
    let out = mutatis(
        &["lens", "apply", &lens.display().to_string()],
        b"{\"name\": \"hello\", \"details\": {\"age\": 23}}\n",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    let err = stderr(&out);
    assert!(
        err.contains("line 3") && err.contains("nonexistent"),
        "{err}"
    );
}

/// `mutatis ARGS` with `stdin`.
fn mutatis(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(support::bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mutatis runs");
    if let Some(mut input) = child.stdin.take() {
        // It may exit before reading everything.
        let _ = input.write_all(stdin);
    }
    child.wait_with_output().expect("its output")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ========================================================================= finding 6: numbers

/// Numbers are stored as written or refused with their pointer, never rounded.
fn numbers_are_exact_or_refused(env: &Env) {
    let node = env.students(&[]);
    let put = |id: &str, year: &str| {
        send(
            id,
            node.request(Method::PUT, &format!("/docs/Student/{id}"))
                .header("Mutatis-Release", "5")
                .header("Content-Type", "application/json")
                .body(format!(
                    r#"{{"firstName": "N", "lastName": "M", "yearOfBirth": {year}}}"#
                )),
        )
    };
    for (i, year) in [
        "123456789012345678901234567890",
        "1990.0000000000000000001",
        "1e400",
        "-1e400",
    ]
    .iter()
    .enumerate()
    {
        let p = put(&format!("n{i}"), year).problem(year, 422, "invalid-document");
        assert_eq!(p["errors"][0]["pointer"], "/yearOfBirth", "{year}: {p}");
        assert!(
            node.get_doc("Student", &format!("n{i}"), "5").is_none(),
            "{year} stored"
        );
    }
    for (id, year) in [("w1", "1990.0"), ("w2", "199e1"), ("w3", "1990")] {
        put(id, year).ok(year, 201);
        let raw = node.get_raw("Student", id, "5");
        assert!(
            String::from_utf8_lossy(&raw.bytes).contains("\"yearOfBirth\":1990"),
            "{year}: {}",
            String::from_utf8_lossy(&raw.bytes)
        );
    }
}

// ====================================================================== finding 7: loose edges

/// Headers that may appear once are refused when repeated, whichever of them it is, before
/// the token is looked at.
fn repeated_headers_are_refused(env: &Env) {
    let node = env.students(&[]);
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
        (
            [r#"Mutatis-Access: {"read":["a"]}"#, r#"Mutatis-Access: {}"#],
            "mutatis-access",
        ),
        (
            ["Content-Type: application/json", "Content-Type: text/plain"],
            "content-type",
        ),
    ] {
        let mut headers = vec![auth.as_str()];
        if name == "authorization" {
            headers.clear();
        }
        headers.extend(twice);
        let a = raw(node.addr, &head(node.addr, get, &headers), b"");
        let p = a.problem(&format!("{name} twice"), 400, "duplicate-header");
        assert_eq!(p["header"], name, "{p}");
    }
    // Host twice: a proxy in front may route by the other one.
    let a = raw(
        node.addr,
        &format!(
            "GET /meta HTTP/1.1\r\nHost: {}\r\nHost: evil.example\r\n\r\n",
            node.addr
        ),
        b"",
    );
    let p = a.problem("Host twice", 400, "duplicate-header");
    assert_eq!(p["header"], "host", "{p}");
}

/// Empty or non-ASCII release names and `Mutatis-Versions` that name no type of the set are
/// refused rather than read as "the default".
fn empty_and_unknown_negotiation_headers_are_refused(env: &Env) {
    let node = env.students(&[]);
    let auth = bearer();
    let get = "GET /docs/Student/x HTTP/1.1";
    for value in ["", "   "] {
        let line = format!("Mutatis-Release: {value}");
        let a = raw(node.addr, &head(node.addr, get, &[&auth, &line]), b"");
        a.problem(
            &format!("Mutatis-Release {value:?}"),
            400,
            "bad-release-header",
        );
    }
    // `é` in UTF-8, which hyper passes on as opaque bytes.
    let mut bytes = head(node.addr, get, &[&auth]).into_bytes();
    bytes.truncate(bytes.len() - 2);
    bytes.extend_from_slice(b"Mutatis-Release: r\xc3\xa9\r\n\r\n");
    raw_bytes(node.addr, &bytes, b"").problem("a non-ASCII release", 400, "bad-release-header");

    let versions = |path: &str, value: &str| {
        send(
            value,
            node.request(Method::GET, path)
                .header("Mutatis-Versions", value),
        )
    };
    let p = versions("/docs/Student/x", "Nope=1").problem("Nope=1", 400, "bad-versions-header");
    assert!(
        p["detail"].as_str().is_some_and(|d| d.contains("Nope")),
        "{p}"
    );
    assert_eq!(p["knownTypes"], json!(["Student"]), "{p}");
    let p =
        versions("/docs/Student/x", "Student=3,").problem("Student=3,", 400, "bad-versions-header");
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("empty entry")),
        "{p}"
    );
    versions("/docs/Student/x", "Student=99").problem("Student=99", 400, "unknown-version");
    // The feed reads the same headers the same way.
    versions("/changes", "Nope=1").problem("the feed, Nope=1", 400, "bad-versions-header");
    // Still fine: one of each, well formed.
    send(
        "well formed",
        node.request(Method::GET, "/docs/Student/x")
            .header("Mutatis-Release", "5")
            .header("Mutatis-Versions", "Student=5"),
    )
    .problem("well-formed headers", 404, "not-found");
}

/// What the HTTP layer refuses on a request's head is problem+json too: a request target or
/// header section over the server's limits.
fn oversized_request_heads_are_problems(env: &Env) {
    let node = env.students(&[]);
    let auth = bearer();
    let long = format!("GET /docs/Student/{} HTTP/1.1", "x".repeat(9000));
    let a = raw(node.addr, &head(node.addr, &long, &[&auth]), b"");
    assert_eq!(
        a.problem("a 9 KB target", 414, "uri-too-long")["limit"],
        8192
    );

    let big = format!("X-Padding: {}", "p".repeat(40 * 1024));
    let a = raw(
        node.addr,
        &head(node.addr, "GET /meta HTTP/1.1", &[&big]),
        b"",
    );
    assert_eq!(
        a.problem("a 40 KB header", 431, "headers-too-large")["limit"],
        32 * 1024
    );

    let many: Vec<String> = (0..80).map(|i| format!("X-Field-{i}: {i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let a = raw(
        node.addr,
        &head(node.addr, "GET /meta HTTP/1.1", &many),
        b"",
    );
    assert_eq!(
        a.problem("80 header fields", 431, "headers-too-large")["limit"],
        64
    );
    // Past the 100 hyper parses, hyper answers by itself, with no body.
    let many: Vec<String> = (0..150).map(|i| format!("X-Field-{i}: {i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let a = raw(
        node.addr,
        &head(node.addr, "GET /meta HTTP/1.1", &many),
        b"",
    );
    assert_eq!(a.status, 431, "150 header fields");

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
fn token_names_are_checked(env: &Env) {
    let node = env.students(&[]);
    let create = |name: &str| {
        send(
            name,
            node.request(Method::POST, "/admin/tokens")
                .json(&json!({"name": name, "role": "reader"})),
        )
    };
    for bad in ["", "*", "a\u{7}b", &"n".repeat(129)] {
        create(bad).problem(&format!("token name {bad:?}"), 400, "invalid-token-name");
    }
    create("ci").ok("token ci", 201);
    create("ci").problem("token ci again", 409, "token-exists");
}

/// `mutatis serve` with `args`, which must refuse to start with exit `code`: its output,
/// once it exited (a server that starts is killed after a while and fails the case).
fn serve_refused(args: &[&str], code: i32) -> Output {
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
    assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
    out
}

fn the_command_line_refuses_bad_starts(_: &Env) {
    let scratch = tempfile::tempdir().expect("a scratch folder");
    let data = scratch.path().join("data.redb");
    let data_arg = data.display().to_string();
    for date in ["2026-02-31", "2026-02-29", "2026-04-31"] {
        let out = serve_refused(&["--data", &data_arg, "--reference-date", date], 2);
        assert!(stderr(&out).contains("calendar date"), "{}", stderr(&out));
    }
    assert!(!data.exists(), "a refused start created {}", data.display());

    let empty = scratch.path().join("empty.redb");
    std::fs::write(&empty, b"").expect("an empty file");
    // Not a store (4).
    let out = serve_refused(&["--data", &empty.display().to_string()], 4);
    assert!(stderr(&out).contains("empty"), "{}", stderr(&out));
    assert_eq!(
        std::fs::metadata(&empty).map(|m| m.len()).ok(),
        Some(0),
        "the empty file was written to"
    );

    // Refused before connecting: no server needs to be there.
    for schema in ["information_schema", "pg_catalog", "pg_toast"] {
        let out = serve_refused(
            &[
                "--postgres",
                "postgres://postgres@127.0.0.1:1/none",
                "--pg-schema",
                schema,
            ],
            4,
        );
        assert!(
            stderr(&out).contains("PostgreSQL's own"),
            "{}",
            stderr(&out)
        );
    }

    let out = serve_refused(&["--data", &data_arg, "--body-timeout", "30"], 2);
    assert!(stderr(&out).contains("--body-timeout"), "{}", stderr(&out));
    assert!(!PathBuf::from(&data).exists());
}

// ==================================================================== smuggling, absurd values

/// `Content-Length` beside `Transfer-Encoding: chunked` (the CL.TE smuggling shape): the body
/// is read as chunked (RFC 9112 §6.3), the answer closes the connection, and the request
/// hidden after the chunked body is never answered.
fn content_length_beside_chunked_smuggles_nothing(env: &Env) {
    let node = env.students(&[]);
    let smuggled = format!(
        "GET /admin/tokens HTTP/1.1\r\nHost: {}\r\n{}\r\n\r\n",
        node.addr,
        bearer()
    );
    let doc = r#"{"firstName": "A", "lastName": "B", "yearOfBirth": 1990}"#;
    for (what, body) in [
        ("an empty chunked body", "0\r\n\r\n".to_owned()),
        (
            "a chunked document",
            format!("{:x}\r\n{doc}\r\n0\r\n\r\n", doc.len()),
        ),
    ] {
        let head = head(
            node.addr,
            "POST /docs/Student HTTP/1.1",
            &[
                &bearer(),
                "Content-Type: application/json",
                "Mutatis-Release: 5",
                "Content-Length: 4",
                "Transfer-Encoding: chunked",
            ],
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        bytes.extend_from_slice(smuggled.as_bytes());
        let s = raw_stream(node.addr, &bytes);
        let statuses = s.statuses();
        assert_eq!(statuses.len(), 1, "{what}: one answer only: {}", s.text());
        assert!(s.closed, "{what}: the connection stays open: {}", s.text());
        assert!(
            !s.text().contains("\"tokens\""),
            "{what}: the smuggled request was answered: {}",
            s.text()
        );
    }
}

/// Framing a server and a proxy could read differently is refused by the HTTP layer with a
/// 400 that closes the connection, so nothing after it is read as a request.
fn ambiguous_framing_is_refused(env: &Env) {
    let node = env.students(&[]);
    let post = |headers: &str, body: &str| {
        format!(
            "POST /compatibility HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{headers}\r\n{body}GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
            node.addr
        )
    };
    let cases = [
        (
            "two differing Content-Lengths",
            post("Content-Length: 2\r\nContent-Length: 3\r\n", "{}"),
        ),
        (
            "a negative Content-Length",
            post("Content-Length: -1\r\n", "{}"),
        ),
        (
            "a Content-Length past 2^64",
            post("Content-Length: 99999999999999999999999\r\n", "{}"),
        ),
        (
            "a listed Content-Length",
            post("Content-Length: 2, 2\r\n", "{}"),
        ),
        (
            "a Content-Length with a sign",
            post("Content-Length: +2\r\n", "{}"),
        ),
        (
            "Transfer-Encoding: gzip alone",
            post("Transfer-Encoding: gzip\r\n", "{}"),
        ),
        (
            "chunked, then identity",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
                "0\r\n\r\n",
            ),
        ),
        (
            "a space before the colon",
            post("Transfer-Encoding : chunked\r\n", "0\r\n\r\n"),
        ),
        (
            "xchunked",
            post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"),
        ),
        (
            "a folded header",
            post("X-Fold: a\r\n b\r\nContent-Length: 2\r\n", "{}"),
        ),
        (
            "a NUL in a header",
            post("X-Nul: a\0b\r\nContent-Length: 2\r\n", "{}"),
        ),
    ];
    for (what, request) in cases {
        let s = raw_stream(node.addr, request.as_bytes());
        let statuses = s.statuses();
        assert_eq!(statuses, [400], "{what}: {}", s.text());
        assert!(s.closed, "{what}: the connection stays open: {}", s.text());
    }
    // A chunk size past any body: the guard's problem, not a hang.
    let s = raw_stream(
        node.addr,
        format!(
            "POST /compatibility HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
            node.addr
        )
        .as_bytes(),
    );
    assert_eq!(s.statuses(), [400], "a huge chunk size: {}", s.text());
    assert!(
        s.text().contains("application/problem+json"),
        "{}",
        s.text()
    );
    send("health", node.request(Method::GET, "/health")).ok("the node serves on", 200);
}

/// Nonsense in every parameter, header and body a client controls: each is a 4xx
/// problem+json of its own kind, never a 500 and never a guess.
fn absurd_values_are_problems(env: &Env) {
    let node = env.students(&[]);
    let rev = create(&node, "x1", None, &student("Ada", "Absurd", 1990));
    let nested = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let json = |method: Method, path: &str| {
        node.request(method, path)
            .header("Mutatis-Release", "5")
            .header("Content-Type", "application/json")
    };
    let get = |path: &str| node.request(Method::GET, path);
    let if_match = |value: &str| {
        json(Method::PUT, "/docs/Student/x1")
            .header("If-Match", value)
            .body(r#"{"firstName": "A", "lastName": "B", "yearOfBirth": 1990}"#)
    };
    let long_id = "i".repeat(513);
    let hex65 = "a".repeat(65);
    let cases: Vec<(&str, RequestBuilder, u16, &str)> = vec![
        ("limit=0", get("/docs/Student?limit=0"), 400, "bad-request"),
        ("limit=1001", get("/docs/Student?limit=1001"), 400, "bad-request"),
        ("limit past 2^64", get("/docs/Student?limit=18446744073709551616"), 400, "bad-request"),
        ("limit=-1", get("/docs/Student?limit=-1"), 400, "bad-request"),
        ("since=-1", get("/changes?since=-1"), 400, "bad-request"),
        ("since past 2^64", get("/changes?since=18446744073709551616"), 400, "bad-request"),
        ("timeout=1e9", get("/changes?feed=longpoll&timeout=1e9"), 400, "bad-request"),
        ("timeout past the cap", get("/changes?feed=longpoll&timeout=300001"), 400, "bad-request"),
        ("feed=nope", get("/changes?feed=nope"), 400, "bad-request"),
        ("include_docs=yes", get("/changes?include_docs=yes"), 400, "bad-request"),
        ("types=Nope", get("/changes?types=Nope"), 404, "unknown-type"),
        ("Last-Event-ID: x", get("/changes?feed=sse").header("Last-Event-ID", "x"), 400, "bad-request"),
        ("replication limit=5001", get("/replication/changes?limit=5001"), 400, "bad-request"),
        ("waitMs=soon", get("/replication/changes?waitMs=soon"), 400, "bad-request"),
        ("selector=[1]", get("/replication/changes?selector=%5B1%5D"), 400, "bad-request"),
        ("selector key not a pointer", get("/replication/changes?selector=%7B%22a%22%3A1%7D"), 400, "bad-request"),
        ("replication types=Nope", get("/replication/changes?types=Nope"), 404, "unknown-type"),
        ("?rev= 2^64-1", get(&format!("/docs/Student/x1?rev={POISON_U64}")), 400, "invalid-rev"),
        ("?rev=0-abc", get("/docs/Student/x1?rev=0-abc"), 400, "invalid-rev"),
        ("?rev= a 65-digit hash", get(&format!("/docs/Student/x1?rev=1-{hex65}")), 400, "invalid-rev"),
        ("?rev=-", get("/docs/Student/x1?rev=-"), 400, "invalid-rev"),
        ("?rev and backup", get(&format!("/docs/Student/x1?rev={rev}&source=backup")), 400, "bad-request"),
        ("?source=elsewhere", get("/docs/Student/x1?source=elsewhere"), 400, "bad-request"),
        ("If-Match 2^64-1", if_match(&format!("\"{POISON_U64}\"")), 400, "invalid-rev"),
        ("If-Match *", if_match("*"), 400, "bad-request"),
        ("If-Match two revs", if_match(&format!("\"{rev}\", \"{rev}\"")), 400, "bad-request"),
        ("If-Match not a rev", if_match("\"yesterday\""), 400, "invalid-rev"),
        ("an id of 513 bytes", json(Method::PUT, &format!("/docs/Student/{long_id}")).body("{}"), 400, "invalid-id"),
        ("an id with NUL", json(Method::PUT, "/docs/Student/a%00b").body(r#"{"firstName": "A", "lastName": "B", "yearOfBirth": 1990}"#), 400, "invalid-id"),
        ("a text/plain body", node.request(Method::PUT, "/docs/Student/x2").header("Content-Type", "text/plain").body("{}"), 415, "unsupported-media-type"),
        ("no Content-Type", node.request(Method::PUT, "/docs/Student/x2").body("{}"), 415, "unsupported-media-type"),
        ("invalid UTF-8", json(Method::PUT, "/docs/Student/x2").body(vec![b'{', b'"', 0xff, b'"', b':', b'1', b'}']), 400, "malformed-json"),
        ("200 levels of nesting", json(Method::PUT, "/docs/Student/x2").body(nested.clone()), 400, "malformed-json"),
        ("an empty body", json(Method::PUT, "/docs/Student/x2"), 400, "malformed-json"),
        ("two JSON values", json(Method::PUT, "/docs/Student/x2").body("{} {}"), 400, "malformed-json"),
        ("a body that is not an object", json(Method::PUT, "/docs/Student/x2").body("[]"), 422, "invalid-document"),
        ("Mutatis-Access not JSON", json(Method::PUT, "/docs/Student/x2").header("Mutatis-Access", "alice").body(r#"{"firstName": "A", "lastName": "B", "yearOfBirth": 1990}"#), 400, "invalid-access"),
        ("Mutatis-Access with a string list", json(Method::PUT, "/docs/Student/x2").header("Mutatis-Access", r#"{"read": "alice"}"#).body(r#"{"firstName": "A", "lastName": "B", "yearOfBirth": 1990}"#), 400, "invalid-access"),
        ("PATCH as JSON", json(Method::PATCH, "/docs/Student/x1").header("If-Match", format!("\"{rev}\"")).body("[]"), 415, "unsupported-media-type"),
        ("PATCH without If-Match", node.request(Method::PATCH, "/docs/Student/x1").header("Content-Type", "application/json-patch+json").body("[]"), 428, "precondition-required"),
        ("a patch of an unknown op", node.request(Method::PATCH, "/docs/Student/x1").header("Content-Type", "application/json-patch+json").header("If-Match", format!("\"{rev}\"")).body(r#"[{"op": "jump", "path": "/a"}]"#), 400, "invalid-patch"),
        ("DELETE without If-Match", node.request(Method::DELETE, "/docs/Student/x1"), 428, "precondition-required"),
        ("an unknown type", json(Method::POST, "/docs/Nope").body("{}"), 404, "unknown-type"),
        ("?release=99", get("/docs/Student/x1?release=99"), 400, "unknown-release"),
        ("an unsupported release", get("/docs/Student/x1").header("Mutatis-Release", "1"), 400, "unsupported-release"),
        ("header and query disagree", get("/docs/Student/x1?release=3").header("Mutatis-Release", "5"), 400, "conflicting-release"),
        ("a batch of nonsense", node.request(Method::POST, "/replication/apply").header("Content-Type", "application/json").body(r#"{"docs": 5}"#), 400, "invalid-batch"),
        ("a batch with a bad policy", node.request(Method::POST, "/replication/apply").json(&json!({"source": {"nodeId": "n", "manifest": "sha256:00"}, "docs": [wire("p", json!([revision("1-ab", student("A", "B", 1990), json!({"read": 7}))]))]})), 400, "invalid-batch"),
        ("a checkpoint id with a slash", node.request(Method::PUT, "/replication/checkpoints/a%2Fb").json(&json!({"seq": 1})), 400, "bad-request"),
        ("a checkpoint of -1", node.request(Method::PUT, "/replication/checkpoints/a").json(&json!({"seq": -1})), 400, "bad-request"),
        ("an import with a poisoned rev", node.request(Method::POST, "/admin/import").json(&json!({"type": "Student", "version": 5, "docs": [{"id": "i", "rev": POISON_U64, "doc": student("A", "B", 1990)}]})), 400, "invalid-rev"),
        ("an import with an unknown member", node.request(Method::POST, "/admin/import").json(&json!({"type": "Student", "version": 5, "docs": [], "extra": 1})), 400, "invalid-import"),
        ("resolve with two answers", json(Method::POST, "/docs/Student/x1/conflicts/resolve").body(format!(r#"{{"winner": "{rev}", "keep": "{rev}", "merge": {{}}}}"#)), 400, "bad-request"),
        ("resolve a poisoned winner", json(Method::POST, "/docs/Student/x1/conflicts/resolve").body(format!(r#"{{"winner": "{POISON_U64}", "keep": "{rev}"}}"#)), 400, "invalid-rev"),
        ("a migration to version 99", node.request(Method::POST, "/admin/migrations").json(&json!({"type": "Student", "to": 99})), 400, "unknown-version"),
        ("a token of an unknown role", node.request(Method::POST, "/admin/tokens").json(&json!({"name": "x", "role": "root"})), 400, "bad-request"),
        ("a webhook to a file URL", node.request(Method::POST, "/admin/webhooks").json(&json!({"url": "file:///etc/passwd"})), 400, "invalid-webhook"),
        ("a job between two selves", node.request(Method::POST, "/admin/replications").json(&json!({"source": "self", "target": "self"})), 400, "invalid-job"),
        ("a wrong method", get("/docs/Student/x1/conflicts/resolve"), 405, "method-not-allowed"),
        ("a made-up method", node.request(Method::from_bytes(b"BREW").expect("a method"), "/docs/Student/x1"), 405, "method-not-allowed"),
        ("no such route", get("/nope"), 404, "no-route"),
        ("a path with a NUL", get("/docs/Student/%00"), 400, "invalid-id"),
    ];
    for (what, req, status, name) in cases {
        let r = send(what, req);
        r.problem(what, status, name);
    }
    // The document is as it was.
    let r = node.get_raw("Student", "x1", "5");
    assert_eq!(r.rev.as_deref(), Some(rev.as_str()));
}
