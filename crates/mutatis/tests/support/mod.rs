//! Shared helpers for tests that run several real `mutatis` nodes side by side: a running
//! `mutatis serve` process ([`Node`]) that can be killed and restarted on the same data file
//! and port (on a store of its own: [`fresh_node`], [`students_node`]), blocking HTTP
//! helpers for its documents and tokens, the `mutatis replicate` command
//! ([`replicate`], [`replicate_command`]) with its `--json` progress parsed, and schema sets
//! trimmed to an older version ([`trimmed_set`]), for nodes that never heard of newer ones.
//!
//! Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::Method;
use serde_json::{json, Value};

pub mod browser;

/// The admin token nodes are started with unless a test asks for a generated one.
pub const ADMIN_TOKEN: &str =
    "mutatis_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The document type of `examples/dataone`.
pub const SYSMETA: &str = "SystemMetadata";

/// The `--reference-date` of [`fresh_node`]s: the ages `examples/students` computes count
/// from it, and its release 3 is still served on it.
pub const REFERENCE_DATE: &str = "2026-06-01";

/// How long a node may take to print its address (a redb file left by a killed process is
/// repaired on open first).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The `RUST_LOG` of the processes a test starts: `MUTATIS_TEST_LOG`, else warnings only.
fn log_filter() -> String {
    std::env::var("MUTATIS_TEST_LOG").unwrap_or_else(|_| "warn".into())
}

/// The `mutatis` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mutatis"))
}

/// An example schema set's folder.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

/// A blocking HTTP client with a timeout long enough for a large page.
pub fn http() -> Client {
    // The binary's reqwest is built without a TLS provider of its own (`mutatis_client::tls`).
    mutatis_client::tls::install_crypto_provider();
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("an HTTP client")
}

/// How a node is started.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// `--listen` (default `127.0.0.1:0`: a free port, read back from the node's output).
    pub listen: Option<String>,
    /// The admin token, set through `MUTATIS_ADMIN_TOKEN`. `None`: [`ADMIN_TOKEN`].
    /// `Some("")`: none is set, and the token the node generates is read from its output.
    pub admin_token: Option<String>,
    /// More arguments for `mutatis serve`.
    pub extra_args: Vec<String>,
    /// The arguments that name the store instead of `--data DATA` (`--postgres URL
    /// --pg-schema S`); `None`: the redb file.
    pub store_args: Option<Vec<String>>,
}

/// A running `mutatis serve` child on a redb file, killed (SIGKILL) on drop.
pub struct Node {
    child: Option<Child>,
    /// The schema-set folder it serves.
    pub dir: PathBuf,
    /// Its redb file (unused when [`NodeOptions::store_args`] named another store).
    pub data: PathBuf,
    /// The address it listens on (kept across restarts).
    pub addr: SocketAddr,
    /// `http://ADDR`.
    pub url: String,
    /// A token with the admin role.
    pub token: String,
    extra_args: Vec<String>,
    store_args: Vec<String>,
    http: Client,
    /// The folder of a [`fresh_node`]'s store, removed after the node is killed.
    _scratch: Option<tempfile::TempDir>,
}

/// What a node printed on start.
struct Started {
    child: Child,
    addr: SocketAddr,
    token: Option<String>,
}

fn spawn_serve(
    dir: &Path,
    store: &[String],
    listen: &str,
    env_token: Option<&str>,
    extra: &[String],
) -> Started {
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .arg(dir)
        .args(store)
        .args(["--listen", listen]);
    // A pinned day, so that release sunsets and ages computed from the year do not move
    // with the clock; a test may pin another.
    if !extra.iter().any(|a| a == "--reference-date") {
        cmd.args(["--reference-date", REFERENCE_DATE]);
    }
    cmd.args(extra)
        .env("RUST_LOG", log_filter())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    match env_token {
        Some(t) => cmd.env("MUTATIS_ADMIN_TOKEN", t),
        None => cmd.env_remove("MUTATIS_ADMIN_TOKEN"),
    };
    let mut child = cmd.spawn().expect("mutatis serve starts");
    let stdout = child.stdout.take().expect("piped stdout");
    // The node's stdout is drained for its whole life, so it never blocks on a full pipe.
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                // Nobody listens any more: keep draining.
                continue;
            }
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let mut addr = None;
    let mut token = None;
    let mut data_seen = false;
    // The address, data and generated-token lines are written in one write: once the data
    // line is in, a generated token's line is either there or not coming.
    while addr.is_none() || !data_seen {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "mutatis serve {} on {listen} printed no address (exit: {status:?})",
                    dir.display()
                );
            }
        };
        if let Some((_, at)) = line.split_once(" at http://") {
            addr = Some(at.trim().parse::<SocketAddr>().expect("a socket address"));
        } else if line.starts_with("data:") {
            data_seen = true;
        }
    }
    if env_token.is_none() {
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            if let Some((_, t)) = line.split_once("admin token (shown once, stored hashed):") {
                token = Some(t.trim().to_owned());
                break;
            }
        }
    }
    Started {
        child,
        addr: addr.expect("checked above"),
        token,
    }
}

impl Node {
    /// Start `mutatis serve DIR --data DATA` on a free port with [`ADMIN_TOKEN`].
    pub fn start(dir: &Path, data: &Path) -> Node {
        Node::start_with(dir, data, NodeOptions::default())
    }

    /// Start `mutatis serve DIR --data DATA` as `opts` say.
    pub fn start_with(dir: &Path, data: &Path, opts: NodeOptions) -> Node {
        let listen = opts.listen.unwrap_or_else(|| "127.0.0.1:0".to_owned());
        let env_token = match opts.admin_token.as_deref() {
            None => Some(ADMIN_TOKEN),
            Some("") => None,
            Some(t) => Some(t),
        };
        let store_args = opts
            .store_args
            .unwrap_or_else(|| vec!["--data".to_owned(), data.display().to_string()]);
        let started = spawn_serve(dir, &store_args, &listen, env_token, &opts.extra_args);
        let token = match (env_token, started.token) {
            (Some(t), _) => t.to_owned(),
            (None, Some(t)) => t,
            (None, None) => panic!(
                "{} already holds an admin token; pass it in NodeOptions::admin_token",
                data.display()
            ),
        };
        Node {
            child: Some(started.child),
            dir: dir.to_owned(),
            data: data.to_owned(),
            addr: started.addr,
            url: format!("http://{}", started.addr),
            token,
            extra_args: opts.extra_args,
            store_args,
            http: http(),
            _scratch: None,
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is alive.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL the process (no shutdown, no flush) and reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // `Child::kill` is SIGKILL on Unix.
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start the process again on the same data file, address and token. The port may still
    /// be held for a moment after a kill: binding is retried for a while.
    pub fn restart(&mut self) {
        self.kill();
        let listen = self.addr.to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Binding the port a killed process held can fail briefly; probing first keeps
            // the node's own output free of failed starts.
            if std::net::TcpListener::bind(self.addr).is_ok() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The token is in the store now: set it again so the node does not generate one.
        let started = spawn_serve(
            &self.dir,
            &self.store_args,
            &listen,
            Some(&self.token),
            &self.extra_args,
        );
        assert_eq!(started.addr, self.addr, "restarted on the same port");
        self.child = Some(started.child);
    }

    /// Restart on the same store and port serving the schema-set folder `dir` with `extra`
    /// arguments instead (a deployment of a new schema set, another `--reference-date`).
    pub fn restart_as(&mut self, dir: &Path, extra: Vec<String>) {
        self.dir = dir.to_owned();
        self.extra_args = extra;
        self.restart();
    }

    /// A request for `path` on this node with `token`, not yet sent.
    pub fn request_as(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token)
    }

    /// A request for `path` on this node with the admin token, not yet sent.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request_as(method, path, &self.token)
    }

    /// `GET path` with the admin token.
    pub fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path)
            .send()
            .unwrap_or_else(|e| panic!("GET {}{path}: {e}", self.url))
    }

    /// A new token with `role`, named `name` (`POST /admin/tokens`).
    pub fn new_token(&self, name: &str, role: &str) -> String {
        let r = self
            .request(Method::POST, "/admin/tokens")
            .json(&json!({"name": name, "role": role}))
            .send()
            .expect("POST /admin/tokens");
        assert_eq!(r.status().as_u16(), 201, "a token on {}", self.url);
        let v: Value = r.json().expect("a JSON answer");
        v["token"].as_str().expect("a token").to_owned()
    }

    /// `GET path` as JSON, asserting 200.
    pub fn get_json(&self, path: &str) -> Value {
        let r = self.get(path);
        let status = r.status();
        let text = r.text().unwrap_or_default();
        assert_eq!(status.as_u16(), 200, "GET {}{path}: {text}", self.url);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
    }

    /// Create a document in `release` (`PUT /docs/T/ID` without `If-Match`); its rev.
    pub fn create_doc(&self, type_name: &str, id: &str, release: &str, body: &Value) -> String {
        self.put_doc(type_name, id, release, None, None, body)
    }

    /// Create a document in `release` with an access policy (`Mutatis-Access`); its rev.
    pub fn create_doc_with_access(
        &self,
        type_name: &str,
        id: &str,
        release: &str,
        access: &str,
        body: &Value,
    ) -> String {
        self.put_doc(type_name, id, release, None, Some(access), body)
    }

    /// Replace a document in `release` (`PUT` with `If-Match: rev`); the new rev.
    pub fn update_doc(
        &self,
        type_name: &str,
        id: &str,
        release: &str,
        rev: &str,
        body: &Value,
    ) -> String {
        self.put_doc(type_name, id, release, Some(rev), None, body)
    }

    /// `PUT /docs/T/ID` in `release`: a create (201) without `if_match`, else a replace
    /// (200); the new rev.
    fn put_doc(
        &self,
        type_name: &str,
        id: &str,
        release: &str,
        if_match: Option<&str>,
        access: Option<&str>,
        body: &Value,
    ) -> String {
        let mut req = self
            .request(Method::PUT, &format!("/docs/{type_name}/{id}"))
            .header("Mutatis-Release", release)
            .json(body);
        if let Some(rev) = if_match {
            req = req.header("If-Match", format!("\"{rev}\""));
        }
        if let Some(access) = access {
            req = req.header("Mutatis-Access", access);
        }
        let r = req.send().expect("PUT");
        let status = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        let (expected, what) = match if_match {
            None => (201, "create"),
            Some(_) => (200, "update"),
        };
        assert_eq!(
            status, expected,
            "{what} {type_name}/{id} on {}: {text}",
            self.url
        );
        rev_of(&text)
    }

    /// `GET /docs/T/ID` in `release`, as sent: the status, the rev (from `ETag`) and the
    /// body's bytes.
    pub fn get_raw(&self, type_name: &str, id: &str, release: &str) -> RawDoc {
        let r = self
            .request(Method::GET, &format!("/docs/{type_name}/{id}"))
            .header("Mutatis-Release", release)
            .send()
            .expect("GET");
        let status = r.status().as_u16();
        let rev = r
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            // `"rev;Type@version"`: the rev is the part before the `;`.
            .and_then(|v| v.trim_matches('"').split(';').next())
            .map(str::to_owned);
        let bytes = r.bytes().expect("a body").to_vec();
        RawDoc { status, rev, bytes }
    }

    /// `GET /docs/T/ID` in `release`: `None` when it is not there (404), else its rev and
    /// body.
    pub fn get_doc(&self, type_name: &str, id: &str, release: &str) -> Option<(String, Value)> {
        let raw = self.get_raw(type_name, id, release);
        match raw.status {
            404 => None,
            200 => Some((
                raw.rev.expect("an ETag"),
                serde_json::from_slice(&raw.bytes).expect("a JSON document"),
            )),
            other => panic!(
                "GET {type_name}/{id} on {}: {other} {}",
                self.url,
                String::from_utf8_lossy(&raw.bytes)
            ),
        }
    }

    /// Every document of a type in the node's current release, by id: `(rev, body)`.
    pub fn list_docs(
        &self,
        type_name: &str,
    ) -> std::collections::BTreeMap<String, (String, Value)> {
        let mut out = std::collections::BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/docs/{type_name}?limit=1000");
            if let Some(a) = &after {
                path.push_str("&after=");
                path.push_str(&percent_encode(a));
            }
            let page = self.get_json(&path);
            for d in page["docs"].as_array().expect("docs") {
                let id = d["id"].as_str().expect("an id").to_owned();
                let rev = d["rev"].as_str().expect("a rev").to_owned();
                out.insert(id, (rev, d["doc"].clone()));
            }
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        out
    }

    /// How many documents of a type the node holds.
    pub fn count_docs(&self, type_name: &str) -> usize {
        self.list_docs(type_name).len()
    }

    /// The node's feed head (`GET /health`), or `None` if it does not answer.
    pub fn last_seq(&self) -> Option<u64> {
        probe_number(self.http.get(format!("{}/health", self.url)), "lastSeq")
    }

    /// `GET /replication`: the node's id, manifest hash and feed head.
    pub fn node_info(&self) -> Value {
        self.get_json("/replication")
    }

    /// A replication's checkpoint on this node (`None`: not there, or no answer).
    pub fn checkpoint(&self, id: &str) -> Option<u64> {
        probe_number(
            self.request(Method::GET, &format!("/replication/checkpoints/{id}")),
            "seq",
        )
    }
}

/// Send `req` (for a node that may be down: a short timeout) and read the number `member`
/// of a 2xx answer; `None` when it does not answer so.
fn probe_number(req: RequestBuilder, member: &str) -> Option<u64> {
    let r = req.timeout(Duration::from_secs(5)).send().ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json::<Value>().ok()?[member].as_u64()
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A node serving `set` on a fresh redb store of its own (removed when the node is
/// dropped), started with `--reference-date` [`REFERENCE_DATE`] and `admin_token` (`None`:
/// [`ADMIN_TOKEN`]).
pub fn fresh_node(set: &Path, admin_token: Option<&str>) -> Node {
    let scratch = tempfile::tempdir().expect("a scratch folder");
    let mut node = Node::start_with(
        set,
        &scratch.path().join("data.redb"),
        NodeOptions {
            admin_token: admin_token.map(str::to_owned),
            extra_args: vec!["--reference-date".into(), REFERENCE_DATE.into()],
            ..NodeOptions::default()
        },
    );
    node._scratch = Some(scratch);
    node
}

/// A [`fresh_node`] serving `examples/students` with [`ADMIN_TOKEN`].
pub fn students_node() -> Node {
    fresh_node(&example("students"), None)
}

/// A document as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDoc {
    /// The HTTP status.
    pub status: u16,
    /// The rev, from `ETag`.
    pub rev: Option<String>,
    /// The body, byte for byte.
    pub bytes: Vec<u8>,
}

fn rev_of(answer: &str) -> String {
    let v: Value = serde_json::from_str(answer).expect("a JSON answer");
    v["rev"].as_str().expect("a rev").to_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ------------------------------------------------------------------------------ replicate

/// One run of `mutatis replicate … --json`.
#[derive(Debug)]
pub struct Replication {
    /// How it exited.
    pub status: ExitStatus,
    /// The last JSON value it printed (the progress when it stopped), `null` if none.
    pub progress: Value,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl Replication {
    /// A counter of the tally (`stored`, `alreadyKnown`, `refused`, `carried`, `lossy`, …):
    /// under `tally` when the progress has one, else at the top.
    pub fn count(&self, key: &str) -> u64 {
        tally_count(&self.progress, key)
    }

    /// The documents not stored, with the reasons (`notStored`).
    pub fn not_stored(&self) -> Vec<Value> {
        let t = self.progress.get("tally").unwrap_or(&self.progress);
        t["notStored"].as_array().cloned().unwrap_or_default()
    }

    /// Panic with everything it printed unless it exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "mutatis replicate failed ({}):\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A counter of a `--json` progress value (see [`Replication::count`]); 0 when absent.
pub fn tally_count(progress: &Value, key: &str) -> u64 {
    let t = progress.get("tally").unwrap_or(progress);
    t.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// `mutatis replicate --from FROM --to TO --json ARGS…` with the tokens in the environment,
/// not yet started (stdout and stderr piped).
pub fn replicate_command(
    from_url: &str,
    from_token: &str,
    to_url: &str,
    to_token: &str,
    args: &[&str],
) -> Command {
    let mut cmd = replicate_text_command(from_url, from_token, to_url, to_token);
    cmd.arg("--json").args(args);
    cmd
}

/// `mutatis replicate --from FROM --to TO` (its text summary; add arguments to the command)
/// with the tokens in the environment, not yet started (stdout and stderr piped).
pub fn replicate_text_command(
    from_url: &str,
    from_token: &str,
    to_url: &str,
    to_token: &str,
) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg("replicate")
        .args(["--from", from_url, "--to", to_url])
        .env("MUTATIS_FROM_TOKEN", from_token)
        .env("MUTATIS_TO_TOKEN", to_token)
        .env("RUST_LOG", log_filter())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Parse a finished `mutatis replicate --json`.
pub fn replication_output(out: Output) -> Replication {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // One value at the end, or one per batch (JSON lines): the last one is where it stopped.
    let progress = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .map_while(Result::ok)
        .last()
        .unwrap_or(Value::Null);
    Replication {
        status: out.status,
        progress,
        stdout,
        stderr,
    }
}

/// A `mutatis replicate` running as a child, its output collected as it comes (so it never
/// blocks on a full pipe).
pub struct RunningReplication {
    child: Child,
    stdout: std::thread::JoinHandle<Vec<u8>>,
    stderr: std::thread::JoinHandle<Vec<u8>>,
}

impl RunningReplication {
    /// Start `cmd` (from [`replicate_command`]).
    pub fn spawn(mut cmd: Command) -> RunningReplication {
        let mut child = cmd.spawn().expect("mutatis replicate starts");
        let collect = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                buf
            })
        };
        let stdout = collect(Box::new(child.stdout.take().expect("piped stdout")));
        let stderr = collect(Box::new(child.stderr.take().expect("piped stderr")));
        RunningReplication {
            child,
            stdout,
            stderr,
        }
    }

    /// Whether it has exited.
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait for it to exit.
    pub fn wait(mut self) -> Replication {
        let status = self.child.wait().expect("mutatis replicate exits");
        let stdout = self.stdout.join().unwrap_or_default();
        let stderr = self.stderr.join().unwrap_or_default();
        replication_output(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// SIGKILL it and collect what it printed.
    pub fn kill(mut self) -> Replication {
        let _ = self.child.kill();
        self.wait()
    }
}

/// Replicate from one node to another with `mutatis replicate` (admin tokens on both) and
/// wait for it.
pub fn replicate(from: &Node, to: &Node, args: &[&str]) -> Replication {
    let out = replicate_command(&from.url, &from.token, &to.url, &to.token, args)
        .output()
        .expect("mutatis replicate runs");
    replication_output(out)
}

// ---------------------------------------------------------------------------- schema sets

/// Write into `dest` a copy of `examples/dataone` that holds only versions ≤ `max_version`
/// of `SystemMetadata`: its type file's `versions:` map is cut after `max_version`, and its
/// `mutatis.yaml` names only kept versions (one release per version, `v{max_version}`
/// current; storage in `max_version`, `multi`). A node serving it has never heard of newer
/// versions. Returns `dest`.
pub fn trimmed_set(dest: &Path, max_version: u32) -> PathBuf {
    assert!(max_version >= 1);
    let src = example("dataone");
    std::fs::create_dir_all(dest.join("types")).expect("a schema-set folder");
    let type_file = std::fs::read_to_string(src.join("types/SystemMetadata.yaml"))
        .expect("the dataone type file");
    let trimmed = trim_versions(&type_file, max_version);
    let highest = trimmed_highest(&trimmed);
    assert_eq!(
        highest,
        Some(max_version),
        "examples/dataone has no SystemMetadata@{max_version}"
    );
    std::fs::write(dest.join("types/SystemMetadata.yaml"), trimmed).expect("write the type");
    let mut set = String::from(
        "name: dataone-member-node\ndescription: DataONE SystemMetadata, trimmed for a test.\nreleases:\n",
    );
    for v in 1..=max_version {
        let status = if v == max_version {
            "current"
        } else {
            "supported"
        };
        set.push_str(&format!(
            "  - {{name: v{v}, types: {{SystemMetadata: {v}}}, status: {status}}}\n"
        ));
    }
    set.push_str(&format!(
        "storage:\n  SystemMetadata: {{version: {max_version}, strategy: multi}}\n"
    ));
    std::fs::write(dest.join("mutatis.yaml"), set).expect("write mutatis.yaml");
    dest.to_owned()
}

/// A version key of the type file's `versions:` map (`  3:`).
fn version_key(line: &str) -> Option<u32> {
    let key = line.strip_prefix("  ")?;
    if key.starts_with(' ') {
        return None;
    }
    key.trim_end().strip_suffix(':')?.parse().ok()
}

/// The type file's text without the versions above `max`: a version's entry runs from its
/// key to the next key or the end of the map (the map is the file's last member).
fn trim_versions(text: &str, max: u32) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_versions = false;
    let mut keep = true;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            // A top-level key ends the versions map.
            in_versions = line.starts_with("versions:");
            keep = true;
        } else if in_versions {
            if let Some(v) = version_key(line) {
                keep = v <= max;
            }
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn trimmed_highest(text: &str) -> Option<u32> {
    text.lines().filter_map(version_key).max()
}

// --------------------------------------------------------------------------------- import

/// Load documents into a store file with `mutatis import DIR --data DATA --type T
/// --id-field F` (JSON lines on stdin), before any node serves it.
pub fn import(dir: &Path, data: &Path, type_name: &str, id_field: &str, docs: &[Value]) {
    let mut lines = Vec::with_capacity(docs.len() * 400);
    for d in docs {
        serde_json::to_writer(&mut lines, d).expect("JSON");
        lines.push(b'\n');
    }
    import_lines(dir, data, type_name, id_field, lines);
}

/// [`import`] of documents already written as JSON lines.
pub fn import_lines(dir: &Path, data: &Path, type_name: &str, id_field: &str, lines: Vec<u8>) {
    use std::io::Write as _;
    let mut child = Command::new(bin())
        .arg("import")
        .arg(dir)
        .arg("--data")
        .arg(data)
        .args(["--type", type_name, "--id-field", id_field])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mutatis import starts");
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Written from a thread: import may answer (an error) before reading everything.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&lines);
    });
    let out = child.wait_with_output().expect("mutatis import runs");
    let _ = writer.join();
    assert!(
        out.status.success(),
        "mutatis import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The store a test node runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// A redb file of its own.
    Redb,
    /// A fresh schema of the PostgreSQL database at this URL.
    Postgres(String),
}

impl Store {
    /// redb, and PostgreSQL when `DATABASE_URL` is set. Without it the PostgreSQL half is
    /// said loudly not to have run (`what` names the test); under `CI` its absence fails.
    pub fn all(what: &str) -> Vec<Store> {
        let mut out = vec![Store::Redb];
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => out.push(Store::Postgres(url)),
            _ => {
                assert!(
                    !ci(),
                    "CI must run {what} on PostgreSQL, but DATABASE_URL is not set"
                );
                // Past libtest's capture of `eprintln!`: the line must show.
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: DATABASE_URL is not set: {what} did NOT run on PostgreSQL"
                );
            }
        }
        out
    }

    /// `redb` or `postgres`, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Store::Redb => "redb",
            Store::Postgres(_) => "postgres",
        }
    }
}

/// Whether the tests run under CI (`CI` set, and not `false`/`0`).
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A fresh PostgreSQL schema for one node, dropped after it.
pub struct PgSchema {
    url: String,
    /// The schema's name.
    pub name: String,
}

impl PgSchema {
    fn new(url: &str) -> PgSchema {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t_{}_{}_{}",
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
pub struct StoreNode {
    // Fields drop in order: the process first, then its store.
    /// The node.
    pub node: Node,
    _pg: Option<PgSchema>,
    _scratch: tempfile::TempDir,
}

impl StoreNode {
    /// The PostgreSQL schema the node's store is in (`None`: a redb file).
    pub fn pg_schema(&self) -> Option<&str> {
        self._pg.as_ref().map(|p| p.name.as_str())
    }
}

impl std::ops::Deref for StoreNode {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.node
    }
}

impl std::ops::DerefMut for StoreNode {
    fn deref_mut(&mut self) -> &mut Node {
        &mut self.node
    }
}

/// A node serving `set` on a fresh store of kind `store`, with `--reference-date`
/// [`REFERENCE_DATE`] unless `extra` names another, and `extra` arguments.
pub fn node_on(store: &Store, set: &Path, extra: &[&str]) -> StoreNode {
    let scratch = tempfile::tempdir().expect("a scratch folder");
    let mut args: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
    if !extra.contains(&"--reference-date") {
        args.extend(["--reference-date".to_owned(), REFERENCE_DATE.to_owned()]);
    }
    let (pg, store_args) = match store {
        Store::Redb => (None, None),
        Store::Postgres(url) => {
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
    StoreNode {
        node,
        _pg: pg,
        _scratch: scratch,
    }
}
