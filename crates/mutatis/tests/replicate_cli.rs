//! `mutatis replicate`, driven end to end: two real `mutatis serve examples/students` nodes
//! on free ports, documents written on the first over HTTP, the real `mutatis replicate`
//! binary between them, and the second node read back over HTTP.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

const ADMIN_A: &str = "mutatis_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ADMIN_B: &str = "mutatis_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn students() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/students")
}

/// A running `mutatis serve examples/students` on a fresh redb store, killed on drop.
struct Node {
    child: Child,
    base: String,
    admin: &'static str,
    http: Client,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn start(admin: &'static str) -> Node {
        Node::start_set(&students(), admin)
    }

    fn start_set(set: &Path, admin: &'static str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.redb");
        let mut child = Command::new(env!("CARGO_BIN_EXE_mutatis"))
            .arg("serve")
            .arg(set)
            .args(["--listen", "127.0.0.1:0", "--reference-date", "2026-06-01"])
            .arg("--data")
            .arg(&data)
            .env("MUTATIS_ADMIN_TOKEN", admin)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        let base = first
            .split(" at ")
            .nth(1)
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .trim()
            .to_owned();
        Node {
            child,
            base,
            admin,
            http: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            _dir: dir,
        }
    }

    /// Create a release-5 student.
    fn create(&self, id: &str, first: &str, year: u32) {
        self.create_body(
            id,
            &json!({"firstName": first, "lastName": "Lovelace", "yearOfBirth": year}),
        );
    }

    /// Create a release-5 student with this body.
    fn create_body(&self, id: &str, body: &Value) {
        let r = self
            .http
            .post(format!("{}/docs/Student?id={id}", self.base))
            .bearer_auth(self.admin)
            .header("Mutatis-Release", "5")
            .json(body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text());
    }

    /// A student in release 5: its rev (the ETag) and body; `None` when not found.
    fn get(&self, id: &str) -> Option<(String, Value)> {
        self.get_in(id, "5")
    }

    /// A student in `release`.
    fn get_in(&self, id: &str, release: &str) -> Option<(String, Value)> {
        let r = self
            .http
            .get(format!("{}/docs/Student/{id}", self.base))
            .bearer_auth(self.admin)
            .header("Mutatis-Release", release)
            .send()
            .unwrap();
        if r.status() == 404 {
            return None;
        }
        assert_eq!(r.status(), 200, "{:?}", r.text());
        let etag = r.headers()["etag"]
            .to_str()
            .unwrap()
            .trim_matches('"')
            .to_owned();
        Some((etag, r.json().unwrap()))
    }

    /// A new token with `role`.
    fn token(&self, name: &str, role: &str) -> String {
        let r = self
            .http
            .request(Method::POST, format!("{}/admin/tokens", self.base))
            .bearer_auth(self.admin)
            .json(&json!({"name": name, "role": role}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Run `mutatis replicate --from A --to B` with the tokens in the environment.
fn replicate(from: &Node, to: &Node, from_token: &str, to_token: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mutatis"))
        .args(["replicate", "--from", &from.base, "--to", &to.base])
        .args(extra)
        .env("MUTATIS_FROM_TOKEN", from_token)
        .env("MUTATIS_TO_TOKEN", to_token)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// Replicate with `--json`, expect success, and return the summary.
fn replicate_json(from: &Node, to: &Node, from_token: &str, to_token: &str) -> Value {
    let out = replicate(from, to, from_token, to_token, &["--json"]);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn replicate_copies_documents_and_resumes_from_its_checkpoint() {
    let a = Node::start(ADMIN_A);
    let b = Node::start(ADMIN_B);
    // The least each side needs: read the source, write the target.
    let reader = a.token("replicator", "reader");
    let writer = b.token("replicator", "writer");
    let ids = ["ada", "grace", "hedy", "katherine", "margaret"];
    for (i, id) in ids.iter().enumerate() {
        a.create(id, id, 1900 + i as u32);
    }

    let first = replicate_json(&a, &b, &reader, &writer);
    assert_eq!(first["source"], a.base.as_str());
    assert_eq!(first["target"], b.base.as_str());
    assert_eq!(first["policy"], "carry");
    assert_eq!(first["resumedFrom"], 0);
    assert_eq!(first["interrupted"], false);
    assert_eq!(first["seq"], first["head"]);
    let t = &first["tally"];
    assert_eq!(t["docs"], 5, "{first}");
    assert_eq!(t["stored"], 5);
    assert_eq!(t["fastForward"], 0);
    assert_eq!(t["alreadyKnown"], 0);
    assert_eq!(t["conflicts"], 0);
    assert_eq!(t["refused"], 0);
    assert_eq!(t["forbidden"], 0);
    assert_eq!(t["notStored"], json!([]));
    assert_eq!(first["written"], 5);
    for id in ids {
        let on_a = a.get(id).unwrap();
        assert_eq!(b.get(id), Some(on_a), "{id} differs on the target");
    }

    // Nothing changed: the checkpoint filters everything out.
    let again = replicate_json(&a, &b, &reader, &writer);
    assert_eq!(again["checkpoint"], first["checkpoint"]);
    assert_eq!(again["resumedFrom"], first["seq"]);
    assert_eq!(again["tally"]["docs"], 0, "{again}");
    assert_eq!(again["tally"]["stored"], 0);
    assert_eq!(again["written"], 0);

    // Three more: exactly those three travel.
    for (i, id) in ["barbara", "frances", "radia"].iter().enumerate() {
        a.create(id, id, 1950 + i as u32);
    }
    let third = replicate_json(&a, &b, &reader, &writer);
    assert_eq!(third["resumedFrom"], first["seq"]);
    assert_eq!(third["tally"]["docs"], 3, "{third}");
    assert_eq!(third["tally"]["stored"], 3);
    assert_eq!(third["tally"]["alreadyKnown"], 0);
    for id in ["barbara", "frances", "radia"] {
        assert_eq!(b.get(id), a.get(id), "{id} differs on the target");
        assert!(b.get(id).is_some());
    }
}

#[test]
fn the_text_summary_counts_what_was_stored() {
    let a = Node::start(ADMIN_A);
    let b = Node::start(ADMIN_B);
    a.create("ada", "Ada", 1815);
    a.create("grace", "Grace", 1906);
    let out = replicate(&a, &b, ADMIN_A, ADMIN_B, &["--types", "Student"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" finished\n"), "{stdout}");
    assert!(stdout.contains("documents sent:  2\n"), "{stdout}");
    assert!(stdout.contains("  stored         2\n"), "{stdout}");
    assert!(stdout.contains("  refused        0\n"), "{stdout}");
    assert!(!stdout.contains("NOT STORED"), "{stdout}");
    assert_eq!(b.get("grace"), a.get("grace"));
}

#[test]
fn a_bad_token_fails_with_a_readable_message() {
    let a = Node::start(ADMIN_A);
    let b = Node::start(ADMIN_B);
    a.create("ada", "Ada", 1815);

    // The target does not know the token given for it.
    let out = replicate(&a, &b, ADMIN_A, "mutatis_not-a-token", &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: replication from {} to {} failed: {}: 401 urn:mutatis:problem:unauthenticated",
            a.base, b.base, b.base
        )),
        "{stderr}"
    );
    assert!(stderr.contains("hint: the target"), "{stderr}");
    assert!(stderr.contains("MUTATIS_TO_TOKEN"), "{stderr}");
    assert_eq!(b.get("ada"), None);

    // A reader token cannot write the target.
    let reader_b = b.token("peek", "reader");
    let out = replicate(&a, &b, ADMIN_A, &reader_b, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(": 403 urn:mutatis:problem:"), "{stderr}");
    assert!(stderr.contains("writer role"), "{stderr}");
    assert_eq!(b.get("ada"), None);
}

#[test]
fn the_same_node_at_both_ends_is_a_usage_error() {
    let a = Node::start(ADMIN_A);
    let out = replicate(&a, &a, ADMIN_A, ADMIN_A, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("are the same node"), "{stderr}");
}

/// The students schema set with Student stored in version 3 (one name field, an age): a
/// node that cannot hold a first name with a space in it apart from the last name.
fn students_stored_in_v3() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("types")).unwrap();
    let src = students();
    std::fs::copy(
        src.join("types/Student.yaml"),
        dir.path().join("types/Student.yaml"),
    )
    .unwrap();
    let manifest = std::fs::read_to_string(src.join("mutatis.yaml")).unwrap();
    let old = "Student: {version: 5, strategy: lazy}";
    assert!(manifest.contains(old));
    std::fs::write(
        dir.path().join("mutatis.yaml"),
        manifest.replace(old, "Student: {version: 3, strategy: lazy}"),
    )
    .unwrap();
    dir
}

#[test]
fn refused_documents_are_reported_by_name_without_failing() {
    let a = Node::start(ADMIN_A);
    let set = students_stored_in_v3();
    // "Mary Ann Smith" in one field cannot be split back into "Mary Ann" and "Smith".
    a.create_body(
        "mary",
        &json!({"firstName": "Mary Ann", "lastName": "Smith", "yearOfBirth": 1990}),
    );
    a.create_body(
        "ada",
        &json!({"firstName": "Ada", "lastName": "Lovelace", "yearOfBirth": 1815}),
    );

    let b = Node::start_set(set.path(), ADMIN_B);
    let out = replicate(&a, &b, ADMIN_A, ADMIN_B, &["--policy", "refuse", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["policy"], "refuse");
    let t = &v["tally"];
    assert_eq!(
        (t["docs"].as_u64(), t["stored"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    assert_eq!(t["refused"], 1);
    let not_stored = t["notStored"].as_array().unwrap();
    assert_eq!(not_stored.len(), 1, "{v}");
    assert_eq!(not_stored[0]["type"], "Student");
    assert_eq!(not_stored[0]["id"], "mary");
    assert_eq!(not_stored[0]["outcome"], "refused");
    assert!(not_stored[0]["lost"]
        .as_array()
        .unwrap()
        .contains(&json!("/firstName")));
    // The target's version holds Ada whole: she arrived, in its own version.
    assert_eq!(
        b.get_in("ada", "3").unwrap().1,
        json!({"fistAndLastName": "Ada Lovelace", "age": 211})
    );
    assert_eq!(b.get("mary"), None);

    // The text summary says it loudly, and names the document and the fields.
    let c = Node::start_set(set.path(), ADMIN_B);
    let out = replicate(&a, &c, ADMIN_A, ADMIN_B, &["--policy", "refuse"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("NOT STORED on the target: 1 revisions"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Student/mary 1-")
            && stdout.contains(
                "refused under --policy refuse: the target's version cannot hold /firstName"
            ),
        "{stdout}"
    );
}

#[test]
fn continuous_replication_follows_the_feed_until_sigterm() {
    let a = Node::start(ADMIN_A);
    let b = Node::start(ADMIN_B);
    a.create("ada", "Ada", 1815);
    let mut child = Command::new(env!("CARGO_BIN_EXE_mutatis"))
        .args([
            "replicate",
            "--continuous",
            "--json",
            "--from",
            &a.base,
            "--to",
            &b.base,
        ])
        .env("MUTATIS_FROM_TOKEN", ADMIN_A)
        .env("MUTATIS_TO_TOKEN", ADMIN_B)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Lines arrive on a thread, so a hang fails the test instead of blocking it for ever.
    let (lines_tx, lines) = std::sync::mpsc::channel::<Value>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if lines_tx.send(v).is_err() {
                break;
            }
        }
    });
    let next = || lines.recv_timeout(Duration::from_secs(60)).unwrap();
    let first = next();
    assert_eq!(first["tally"]["docs"], 1, "{first}");
    assert_eq!(first["interrupted"], false);

    // Written after the replicator caught up: it arrives without a rerun.
    a.create("grace", "Grace", 1906);
    let mut latest = next();
    while latest["tally"]["docs"] != 2 {
        latest = next();
    }
    assert_eq!(b.get("grace"), a.get("grace"));
    assert!(b.get("grace").is_some());

    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let last = next();
    assert_eq!(last["interrupted"], true, "{last}");
    assert_eq!(last["tally"]["docs"], 2);
    assert_eq!(last["tally"]["stored"], 2);
    reader.join().unwrap();
}
