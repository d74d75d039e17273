//! `mutatis replicate`, driven end to end: two real `mutatis serve examples/students` nodes
//! on free ports, documents written on the first over HTTP, the real `mutatis replicate`
//! binary between them, and the second node read back over HTTP.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::{fresh_node, replicate_command, replicate_text_command, Node};

const ADMIN_A: &str = "mutatis_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ADMIN_B: &str = "mutatis_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A node serving `examples/students` on a fresh store, with its own admin token.
fn start(admin: &str) -> Node {
    start_set(&support::example("students"), admin)
}

/// A node serving the schema set `set` on a fresh store.
fn start_set(set: &Path, admin: &str) -> Node {
    fresh_node(set, Some(admin))
}

/// Create a release-5 student.
fn create(node: &Node, id: &str, first: &str, year: u32) {
    node.create_doc(
        "Student",
        id,
        "5",
        &json!({"firstName": first, "lastName": "Lovelace", "yearOfBirth": year}),
    );
}

/// A student in release 5: its rev (the ETag) and body; `None` when not found.
fn get(node: &Node, id: &str) -> Option<(String, Value)> {
    node.get_doc("Student", id, "5")
}

/// Run `mutatis replicate --from A --to B` with the tokens in the environment.
fn replicate(from: &Node, to: &Node, from_token: &str, to_token: &str, extra: &[&str]) -> Output {
    replicate_text_command(&from.url, from_token, &to.url, to_token)
        .args(extra)
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
    let a = start(ADMIN_A);
    let b = start(ADMIN_B);
    // The least each side needs: read the source, write the target.
    let reader = a.new_token("replicator", "reader");
    let writer = b.new_token("replicator", "writer");
    let ids = ["ada", "grace", "hedy", "katherine", "margaret"];
    for (i, id) in ids.iter().enumerate() {
        create(&a, id, id, 1900 + i as u32);
    }

    let first = replicate_json(&a, &b, &reader, &writer);
    assert_eq!(first["source"], a.url.as_str());
    assert_eq!(first["target"], b.url.as_str());
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
        let on_a = get(&a, id).unwrap();
        assert_eq!(get(&b, id), Some(on_a), "{id} differs on the target");
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
        create(&a, id, id, 1950 + i as u32);
    }
    let third = replicate_json(&a, &b, &reader, &writer);
    assert_eq!(third["resumedFrom"], first["seq"]);
    assert_eq!(third["tally"]["docs"], 3, "{third}");
    assert_eq!(third["tally"]["stored"], 3);
    assert_eq!(third["tally"]["alreadyKnown"], 0);
    for id in ["barbara", "frances", "radia"] {
        assert_eq!(get(&b, id), get(&a, id), "{id} differs on the target");
        assert!(get(&b, id).is_some());
    }
}

#[test]
fn the_text_summary_counts_what_was_stored() {
    let a = start(ADMIN_A);
    let b = start(ADMIN_B);
    create(&a, "ada", "Ada", 1815);
    create(&a, "grace", "Grace", 1906);
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
    assert_eq!(get(&b, "grace"), get(&a, "grace"));
}

#[test]
fn a_bad_token_fails_with_a_readable_message() {
    let a = start(ADMIN_A);
    let b = start(ADMIN_B);
    create(&a, "ada", "Ada", 1815);

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
            a.url, b.url, b.url
        )),
        "{stderr}"
    );
    assert!(stderr.contains("hint: the target"), "{stderr}");
    assert!(stderr.contains("MUTATIS_TO_TOKEN"), "{stderr}");
    assert_eq!(get(&b, "ada"), None);

    // A reader token cannot write the target.
    let reader_b = b.new_token("peek", "reader");
    let out = replicate(&a, &b, ADMIN_A, &reader_b, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(": 403 urn:mutatis:problem:"), "{stderr}");
    assert!(stderr.contains("writer role"), "{stderr}");
    assert_eq!(get(&b, "ada"), None);
}

#[test]
fn the_same_node_at_both_ends_is_a_usage_error() {
    let a = start(ADMIN_A);
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
    let src = support::example("students");
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
    let a = start(ADMIN_A);
    let set = students_stored_in_v3();
    // "Mary Ann Smith" in one field cannot be split back into "Mary Ann" and "Smith".
    a.create_doc(
        "Student",
        "mary",
        "5",
        &json!({"firstName": "Mary Ann", "lastName": "Smith", "yearOfBirth": 1990}),
    );
    a.create_doc(
        "Student",
        "ada",
        "5",
        &json!({"firstName": "Ada", "lastName": "Lovelace", "yearOfBirth": 1815}),
    );

    let b = start_set(set.path(), ADMIN_B);
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
        b.get_doc("Student", "ada", "3").unwrap().1,
        json!({"fistAndLastName": "Ada Lovelace", "age": 211})
    );
    assert_eq!(get(&b, "mary"), None);

    // The text summary says it loudly, and names the document and the fields.
    let c = start_set(set.path(), ADMIN_B);
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
    let a = start(ADMIN_A);
    let b = start(ADMIN_B);
    create(&a, "ada", "Ada", 1815);
    let mut child = replicate_command(&a.url, ADMIN_A, &b.url, ADMIN_B, &["--continuous"])
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
    create(&a, "grace", "Grace", 1906);
    let mut latest = next();
    while latest["tally"]["docs"] != 2 {
        latest = next();
    }
    assert_eq!(get(&b, "grace"), get(&a, "grace"));
    assert!(get(&b, "grace").is_some());

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
