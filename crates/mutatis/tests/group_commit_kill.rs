//! Group commit under SIGKILL: many writers on a real `mutatis serve` share commits; the
//! server is killed mid-run and restarted on its store. Every write it acknowledged must be
//! there with the rev it acknowledged (or, for a document whose next write was in flight at
//! the kill, that next write, whole), nothing else is stored, and the store takes writes again.
//!
//! On redb and, with `DATABASE_URL`, on PostgreSQL (without it that half says loudly that it
//! did not run; under `CI` it fails instead).

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::{json, Value};
use support::{example, http, Node, NodeOptions, ADMIN_TOKEN};

/// Concurrent writers (the server queues their writes for its committer side by side, so
/// they share commits).
const WRITERS: usize = 16;
/// Documents per writer: each writer cycles over its own, so there are no rev conflicts.
const DOCS_PER_WRITER: usize = 4;
/// Acknowledged writes before the kill.
const ACKED_BEFORE_KILL: usize = 200;

/// What the writers learnt of one document.
#[derive(Debug, Default, Clone)]
struct Known {
    /// The last acknowledged write: its rev and the body sent.
    acked: Option<(String, Value)>,
    /// A write sent and not acknowledged (the server died under it): its body.
    in_flight: Option<Value>,
}

fn body(writer: usize, n: usize) -> Value {
    json!({"title": format!("writer {writer} write {n}"), "status": "open", "important": n % 2 == 0})
}

fn generation(rev: &str) -> u64 {
    rev.split_once('-')
        .and_then(|(g, _)| g.parse().ok())
        .unwrap_or_else(|| panic!("a rev N-hash, got {rev}"))
}

/// Run the writers against `node` and SIGKILL it once [`ACKED_BEFORE_KILL`] writes are
/// acknowledged, while they all still write.
fn write_and_kill(node: &mut Node, known: &Arc<Mutex<BTreeMap<String, Known>>>) {
    let acked = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (url, known, acked) = (node.url.clone(), Arc::clone(known), Arc::clone(&acked));
            std::thread::spawn(move || {
                let client = http();
                // Until the server is gone (a failed request ends the writer).
                for n in 1.. {
                    let id = format!("w{w}-d{}", n % DOCS_PER_WRITER);
                    let sent = body(w, n);
                    let rev = {
                        let mut k = known.lock().unwrap();
                        let entry = k.entry(id.clone()).or_default();
                        entry.in_flight = Some(sent.clone());
                        entry.acked.as_ref().map(|(r, _)| r.clone())
                    };
                    let mut req = client
                        .request(Method::PUT, format!("{url}/docs/todo/{id}"))
                        .bearer_auth(ADMIN_TOKEN)
                        .header("Mutatis-Release", "5")
                        .json(&sent);
                    if let Some(rev) = &rev {
                        req = req.header("If-Match", format!("\"{rev}\""));
                    }
                    let Ok(answer) = req.send() else { return };
                    let status = answer.status().as_u16();
                    let Ok(text) = answer.text() else { return };
                    assert!(status == 200 || status == 201, "PUT {id}: {status} {text}");
                    let v: Value = serde_json::from_str(&text).expect("a JSON answer");
                    let new_rev = v["rev"].as_str().expect("a rev").to_owned();
                    let mut k = known.lock().unwrap();
                    let entry = k.get_mut(&id).expect("entered above");
                    entry.acked = Some((new_rev, sent));
                    entry.in_flight = None;
                    drop(k);
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    while acked.load(Ordering::SeqCst) < ACKED_BEFORE_KILL {
        assert!(
            !writers.iter().all(|w| w.is_finished()),
            "the writers stopped before the kill"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    node.kill();
    for w in writers {
        w.join().expect("a writer panicked");
    }
}

/// After a restart: every document holds its last acknowledged write, or the write that
/// was in flight at the kill (one generation on, its body whole); nothing else is stored.
fn check_survivors(node: &Node, known: &BTreeMap<String, Known>) -> (usize, usize) {
    let (mut as_acked, mut in_flight_landed) = (0, 0);
    for (id, k) in known {
        let stored = node.get_doc("todo", id, "5");
        match (&k.acked, &k.in_flight, stored) {
            (Some((rev, sent)), _, Some((stored_rev, stored_body))) if *rev == stored_rev => {
                assert_eq!(&stored_body, sent, "{id}: the acknowledged body");
                as_acked += 1;
            }
            (acked, Some(sent), Some((stored_rev, stored_body))) => {
                let was = acked.as_ref().map_or(0, |(r, _)| generation(r));
                assert_eq!(
                    generation(&stored_rev),
                    was + 1,
                    "{id}: stored {stored_rev}, acknowledged {acked:?}"
                );
                assert_eq!(&stored_body, sent, "{id}: the in-flight write, whole");
                in_flight_landed += 1;
            }
            (None, _, None) => {}
            (acked, in_flight, stored) => {
                panic!("{id}: acknowledged {acked:?}, in flight {in_flight:?}, stored {stored:?}")
            }
        }
    }
    for id in node.list_docs("todo").keys() {
        assert!(
            known.contains_key(id),
            "{id} is stored and was never written"
        );
    }
    (as_acked, in_flight_landed)
}

fn kill_and_check(mut node: Node, backend: &str) {
    let known = Arc::new(Mutex::new(BTreeMap::new()));
    for round in 1..=2 {
        write_and_kill(&mut node, &known);
        node.restart();
        let mut k = known.lock().unwrap();
        let (as_acked, landed) = check_survivors(&node, &k);
        eprintln!(
            "{backend}, kill {round}: {as_acked} documents as acknowledged, {landed} with the \
             write in flight at the kill"
        );
        // What is stored now is what the writers go on from.
        for (id, entry) in k.iter_mut() {
            if let Some((rev, body)) = node.get_doc("todo", id, "5") {
                entry.acked = Some((rev, body));
            }
            entry.in_flight = None;
        }
    }
    // The store takes writes again after the kills.
    let k = known.lock().unwrap();
    let (id, entry) = k.iter().next().expect("documents were written");
    let rev = &entry.acked.as_ref().expect("acknowledged").0;
    let new_rev = node.update_doc("todo", id, "5", rev, &body(99, 1));
    assert_eq!(generation(&new_rev), generation(rev) + 1);
}

#[test]
fn acknowledged_writes_survive_sigkill_under_group_commit_on_redb() {
    let scratch = tempfile::tempdir().unwrap();
    let node = Node::start(&example("todo"), &scratch.path().join("data.redb"));
    kill_and_check(node, "redb");
}

#[test]
fn acknowledged_writes_survive_sigkill_under_group_commit_on_postgres() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            !ci,
            "CI must run the PostgreSQL tests, but DATABASE_URL is not set"
        );
        eprintln!("WARNING: DATABASE_URL is not set: PostgreSQL test `acknowledged_writes_survive_sigkill_under_group_commit_on_postgres` NOT RUN");
        return;
    };
    let schema = format!(
        "group_commit_kill_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    struct DropSchema(String, String);
    impl Drop for DropSchema {
        fn drop(&mut self) {
            if let Ok(mut c) = postgres::Client::connect(&self.0, postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.1));
            }
        }
    }
    let _cleanup = DropSchema(url.clone(), schema.clone());
    let scratch = tempfile::tempdir().unwrap();
    let node = Node::start_with(
        &example("todo"),
        &scratch.path().join("unused.redb"),
        NodeOptions {
            store_args: Some(vec!["--postgres".into(), url, "--pg-schema".into(), schema]),
            ..NodeOptions::default()
        },
    );
    kill_and_check(node, "postgres");
}
