//! Many `mutatis serve` processes on one PostgreSQL database: each process's connection pool
//! stays within its bound (`--pg-pool-size`, counted in `pg_stat_activity` by the
//! connections' `application_name`), and a request that finds every connection busy is
//! answered 503 `store-busy` instead of hanging; a write on one process wakes a waiting
//! feed on another (PostgreSQL `NOTIFY`); and three processes under a round-robin load,
//! one SIGKILLed and restarted mid-run, lose no acknowledged write, serve the same
//! gap-free feed, and run a webhook and a replication job once (the lease moving to another
//! process within 10 s of the kill).
//!
//! Every test here needs PostgreSQL: without `DATABASE_URL` it says loudly that it did not
//! run (and fails under CI).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};

use reqwest::Method;
use serde_json::{json, Value};
use support::{example, node_on, students_node, Node, NodeOptions, Store, REFERENCE_DATE};

/// The PostgreSQL URL, or `None` (after saying so) when the test cannot run here.
fn database_url(what: &str) -> Option<String> {
    Store::all(what).into_iter().find_map(|s| match s {
        Store::Postgres(url) => Some(url),
        Store::Redb => None,
    })
}

fn student(i: usize) -> Value {
    json!({"firstName": format!("Student {i}"), "lastName": "Pool", "yearOfBirth": 1990})
}

/// The connections of the store in `schema` that its pool opened (the name the pool gives
/// them: `mutatis/<schema>`).
fn pool_connections(db: &mut postgres::Client, schema: &str) -> i64 {
    db.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
        &[&format!("mutatis/{schema}")],
    )
    .expect("pg_stat_activity")
    .get(0)
}

/// With `--pg-pool-size 2` and sixteen clients writing and reading at once, the process
/// never holds more than two connections, and every request is served.
#[test]
fn the_pool_bounds_a_process_connections() {
    let Some(url) = database_url("the_pool_bounds_a_process_connections") else {
        return;
    };
    let node = node_on(
        &Store::Postgres(url.clone()),
        &example("students"),
        &["--pg-pool-size", "2"],
    );
    let schema = node.pg_schema().expect("a PostgreSQL node").to_owned();
    let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("a connection");
    const CLIENTS: usize = 16;
    const EACH: usize = 10;
    let done = AtomicBool::new(false);
    let most = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut most = 0;
            while !done.load(Ordering::Relaxed) {
                most = most.max(pool_connections(&mut db, &schema));
                std::thread::sleep(Duration::from_millis(5));
            }
            most
        });
        let workers: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let node = &node;
                scope.spawn(move || {
                    for k in 0..EACH {
                        let i = c * EACH + k;
                        let r = node
                            .request(Method::PUT, &format!("/docs/Student/s{i}"))
                            .header("Mutatis-Release", "5")
                            .json(&student(i))
                            .send()
                            .expect("PUT");
                        assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
                        let r = node.get(&format!("/docs/Student/s{i}"));
                        assert_eq!(r.status().as_u16(), 200);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("a client");
        }
        done.store(true, Ordering::Relaxed);
        sampler.join().expect("the sampler")
    });
    assert!(
        most >= 1,
        "the pool's connections are named in pg_stat_activity"
    );
    assert!(most <= 2, "{most} connections open with --pg-pool-size 2");
    assert_eq!(node.count_docs("Student"), CLIENTS * EACH);
}

/// With the one connection of the pool held by a write that waits on a lock, a read waits
/// `--pg-pool-wait-ms` and is answered 503 `store-busy` with `Retry-After`; once the lock is
/// released the write completes.
#[test]
fn a_request_finding_every_connection_busy_is_answered_503() {
    let Some(url) = database_url("a_request_finding_every_connection_busy_is_answered_503") else {
        return;
    };
    let node = node_on(
        &Store::Postgres(url.clone()),
        &example("students"),
        &["--pg-pool-size", "1", "--pg-pool-wait-ms", "300"],
    );
    let schema = node.pg_schema().expect("a PostgreSQL node").to_owned();
    node.create_doc("Student", "ada", "5", &student(0));

    // Hold the feed head's row lock, which every write transaction takes first.
    let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("a connection");
    let mut holder = db.transaction().expect("BEGIN");
    holder
        .batch_execute(&format!(
            "SELECT seq FROM {schema}.feed_head WHERE one = 1 FOR UPDATE"
        ))
        .expect("lock the feed head");
    let mut watch = postgres::Client::connect(&url, postgres::NoTls).expect("a connection");
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let r = node
                .request(Method::PUT, "/docs/Student/bob")
                .header("Mutatis-Release", "5")
                .json(&student(1))
                .send()
                .expect("PUT");
            r.status().as_u16()
        });
        // Until the write holds the pool's connection, waiting on the lock.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let waiting: i64 = watch
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE application_name = $1 AND wait_event_type = 'Lock'",
                    &[&format!("mutatis/{schema}")],
                )
                .expect("pg_stat_activity")
                .get(0);
            if waiting == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the write never waited on the lock"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let r = node.get("/docs/Student/ada");
        assert_eq!(r.status().as_u16(), 503);
        assert_eq!(
            r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
            Some("1")
        );
        let problem: Value = r.json().expect("a problem");
        assert_eq!(problem["type"], "urn:mutatis:problem:store-busy");
        assert_eq!(problem["poolSize"], 1);
        holder.commit().expect("release the lock");
        assert_eq!(writer.join().expect("the writer"), 201);
    });
    assert_eq!(node.get("/docs/Student/ada").status().as_u16(), 200);
}

/// Another process on the store of `first` (same schema), with `extra` arguments.
fn second_process(first: &support::StoreNode, url: &str, extra: &[&str]) -> Node {
    let schema = first.pg_schema().expect("a PostgreSQL node");
    let mut args: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
    args.extend(["--reference-date".to_owned(), REFERENCE_DATE.to_owned()]);
    Node::start_with(
        &example("students"),
        &first.data,
        NodeOptions {
            extra_args: args,
            store_args: Some(vec![
                "--postgres".to_owned(),
                url.to_owned(),
                "--pg-schema".to_owned(),
                schema.to_owned(),
            ]),
            ..NodeOptions::default()
        },
    )
}

/// A long-poll on process B returns with a write made on process A, although B looks for
/// other processes' writes by itself only every ten minutes (`--feed-poll-ms`) and the
/// long-poll's timeout is five: the write's notification woke it.
#[test]
fn a_write_on_one_process_wakes_a_long_poll_on_another() {
    let Some(url) = database_url("a_write_on_one_process_wakes_a_long_poll_on_another") else {
        return;
    };
    let a = node_on(&Store::Postgres(url.clone()), &example("students"), &[]);
    let b = second_process(&a, &url, &["--feed-poll-ms", "600000"]);
    a.create_doc("Student", "first", "5", &student(0));
    let since = b.get_json("/changes")["lastSeq"].as_u64().expect("lastSeq");
    std::thread::scope(|scope| {
        // The long-poll would wait five minutes, and B would not look by itself for ten: it
        // answers within the minute this client waits only if the write woke it.
        let waiter = scope.spawn(|| {
            let r = b
                .request(
                    Method::GET,
                    &format!("/changes?feed=longpoll&since={since}&timeout=300000"),
                )
                .timeout(Duration::from_secs(60))
                .send()
                .expect("the long-poll answers (woken by the write)");
            assert_eq!(r.status().as_u16(), 200);
            r.json::<Value>().expect("JSON")
        });
        // Give the long-poll a moment to be waiting (were the write first, it would answer
        // at once, and the test would prove less, never fail).
        std::thread::sleep(Duration::from_millis(300));
        a.create_doc("Student", "second", "5", &student(1));
        let answer = waiter.join().expect("the long-poll");
        let ids: Vec<&str> = answer["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter_map(|r| r["id"].as_str())
            .collect();
        assert_eq!(ids, ["second"], "{answer}");
    });
}

/// Wait until `probe` gives something (up to a minute), or fail naming `what`.
fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(t) = probe() {
            return t;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The webhook secret of the load test.
const SECRET: &str = "cluster-secret";

/// A webhook receiver that checks each delivery's signature itself (HMAC-SHA256 of the
/// body under [`SECRET`], computed here with the `hmac` crate) and keeps the changes of
/// the deliveries that were signed right.
struct Receiver {
    url: String,
    changes: Arc<Mutex<Vec<Value>>>,
    bad_signatures: Arc<Mutex<usize>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("an address"));
        let changes = Arc::new(Mutex::new(Vec::new()));
        let bad_signatures = Arc::new(Mutex::new(0));
        let (log, bad) = (Arc::clone(&changes), Arc::clone(&bad_signatures));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some((headers, body)) = read_request(&stream) else {
                    continue;
                };
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes())
                    .expect("any key length");
                mac.update(&body);
                let expected: String = mac
                    .finalize()
                    .into_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                if headers.get("mutatis-signature") == Some(&format!("sha256={expected}")) {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let got = v["changes"].as_array().cloned().unwrap_or_default();
                    log.lock().expect("the log").extend(got);
                } else {
                    *bad.lock().expect("the count") += 1;
                }
                let mut s = &stream;
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = s.flush();
            }
        });
        Receiver {
            url,
            changes,
            bad_signatures,
        }
    }

    fn changes(&self) -> Vec<Value> {
        self.changes.lock().expect("the log").clone()
    }
}

fn read_request(stream: &TcpStream) -> Option<(BTreeMap<String, String>, Vec<u8>)> {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some((headers, body))
}

/// `POST path` with a JSON body as admin, asserting 201; the answer.
fn create(node: &Node, path: &str, body: &Value) -> Value {
    let r = node
        .request(Method::POST, path)
        .json(body)
        .send()
        .expect("POST");
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    assert_eq!(status, 201, "POST {path}: {text}");
    serde_json::from_str(&text).expect("JSON")
}

/// The process id of the holder of the lease of the task at `path`, when it is live.
fn lease_pid(node: &Node, path: &str) -> Option<u64> {
    let r = node.get(path);
    if r.status().as_u16() != 200 {
        return None;
    }
    let task: Value = r.json().ok()?;
    let lease = &task["lease"];
    (lease["expired"] == false).then(|| lease["pid"].as_u64())?
}

/// `(id, rev)` of every feed entry of a process, in order.
fn feed(node: &Node) -> Vec<(String, String)> {
    let page = node.get_json("/changes?since=0&limit=1000");
    page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_owned(),
                c["rev"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Three processes on one schema under a round-robin load of writes (release 5) and reads
/// (releases 3, 4 and 5); the holder of the webhook's lease is SIGKILLed mid-run and
/// restarted. No acknowledged write is lost, every process serves the same feed holding
/// every write, the lease moves to a live process within 10 s, and once settled each new
/// change reaches the webhook once (not once per process) and the job's target.
#[test]
fn three_processes_survive_a_killed_lease_holder() {
    let Some(url) = database_url("three_processes_survive_a_killed_lease_holder") else {
        return;
    };
    let first = node_on(&Store::Postgres(url.clone()), &example("students"), &[]);
    let mut nodes: Vec<Node> = vec![
        second_process(&first, &url, &[]),
        second_process(&first, &url, &[]),
    ];
    let target = students_node();
    let receiver = Receiver::start();
    let hook = create(
        &first,
        "/admin/webhooks",
        &json!({"url": receiver.url, "types": ["Student"], "secret": SECRET}),
    );
    let hook_path = format!("/admin/webhooks/{}", hook["id"].as_str().expect("an id"));
    let job = create(
        &first,
        "/admin/replications",
        &json!({"source": "self", "target": target.url, "targetToken": target.token,
                "types": ["Student"], "continuous": true}),
    );
    let job_path = format!("/admin/replications/{}", job["id"].as_str().expect("an id"));
    // `first` is a StoreNode (it owns the schema); the others are plain nodes on it.
    let mut first = first;

    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let mut killed: Option<(usize, u64, Instant)> = None;
    const OPS: usize = 120;
    for op in 0..OPS {
        if op == 40 {
            // SIGKILL the webhook's lease holder.
            let pid = eventually("a live webhook lease", || lease_pid(&nodes[0], &hook_path));
            let which = if first.pid().map(u64::from) == Some(pid) {
                0
            } else {
                1 + nodes
                    .iter()
                    .position(|n| n.pid().map(u64::from) == Some(pid))
                    .expect("the holder is one of the three")
            };
            match which {
                0 => first.kill(),
                n => nodes[n - 1].kill(),
            }
            killed = Some((which, pid, Instant::now()));
        }
        if op == 80 {
            let (which, pid, at) = killed.expect("killed at op 40");
            // The lease moved to a live process within the stated time.
            let live = if which == 0 { &nodes[0] } else { &*first };
            let new_pid = eventually("the lease taken over", || {
                lease_pid(live, &hook_path).filter(|p| *p != pid)
            });
            let took = at.elapsed();
            assert!(
                took < Duration::from_secs(10),
                "the lease moved from {pid} to {new_pid} after {took:?}"
            );
            match which {
                0 => first.restart(),
                n => nodes[n - 1].restart(),
            }
        }
        let down = killed.filter(|_| op < 80).map(|(which, _, _)| which);
        let mut order = (0..3).filter(|n| Some(*n) != down).cycle().skip(op % 3);
        let n = order.next().expect("a live process");
        let node: &Node = if n == 0 { &first } else { &nodes[n - 1] };
        if op % 2 == 0 {
            let id = format!("s{op}");
            let r = node
                .request(Method::PUT, &format!("/docs/Student/{id}"))
                .header("Mutatis-Release", "5")
                .json(&student(op))
                .send()
                .expect("PUT");
            assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
            let rev = r
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .expect("an ETag")
                .trim_matches('"');
            // The entity tag is the rev and the version served (`REV;Type@N`).
            let rev = rev.split(';').next().unwrap_or(rev).to_owned();
            acked.insert(id, rev);
        } else if let Some((id, rev)) = acked.iter().nth(op % acked.len().max(1)) {
            let release = ["3", "4", "5"][op % 3];
            let r = node
                .request(Method::GET, &format!("/docs/Student/{id}"))
                .header("Mutatis-Release", release)
                .send()
                .expect("GET");
            assert_eq!(r.status().as_u16(), 200, "{id} in release {release}");
            let etag = r.headers().get("etag").and_then(|v| v.to_str().ok());
            // Release N of the students example speaks Student@N.
            assert_eq!(
                etag,
                Some(format!("\"{rev};Student@{release}\"")).as_deref(),
                "{id} in release {release}"
            );
        }
    }

    // Nothing acknowledged is lost, and every process serves the same feed, holding every
    // write.
    let all: Vec<&Node> = std::iter::once(&*first).chain(nodes.iter()).collect();
    let reference = feed(all[0]);
    let in_feed: BTreeMap<String, String> = reference.iter().cloned().collect();
    assert_eq!(
        in_feed, acked,
        "the feed holds exactly the acknowledged writes"
    );
    for node in &all {
        assert_eq!(feed(node), reference, "{} serves the same feed", node.url);
        for (id, rev) in &acked {
            let doc = node.get_doc("Student", id, "5").map(|(r, _)| r);
            assert_eq!(doc.as_deref(), Some(rev.as_str()), "{id} on {}", node.url);
        }
    }

    // Steady state: every write so far reaches the receiver and the job's target; new
    // writes then each reach the receiver once.
    eventually("every write at the webhook", || {
        let got: BTreeSet<String> = receiver
            .changes()
            .iter()
            .filter_map(|c| c["id"].as_str().map(str::to_owned))
            .collect();
        acked.keys().all(|id| got.contains(id)).then_some(())
    });
    eventually("every write at the job's target", || {
        (target.count_docs("Student") == acked.len()).then_some(())
    });
    let before = receiver.changes().len();
    for k in 0..9 {
        let node = all[k % 3];
        node.create_doc("Student", &format!("steady{k}"), "5", &student(k));
    }
    eventually("the steady writes at the webhook", || {
        let got = receiver.changes();
        let steady = got[before..]
            .iter()
            .filter(|c| c["id"].as_str().is_some_and(|i| i.starts_with("steady")))
            .count();
        (steady >= 9).then_some(())
    });
    // One more lease period, so that a second deliverer would have shown itself.
    std::thread::sleep(Duration::from_secs(3));
    let got = receiver.changes();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &got[before..] {
        *counts
            .entry(c["id"].as_str().unwrap_or_default())
            .or_default() += 1;
    }
    assert!(
        counts.values().all(|&n| n == 1) && counts.len() == 9,
        "each steady write delivered once: {counts:?}"
    );
    assert_eq!(*receiver.bad_signatures.lock().expect("the count"), 0);
    eventually("the steady writes at the job's target", || {
        (target.count_docs("Student") == acked.len() + 9).then_some(())
    });

    // Every process shows the same job and webhook: one live holder, the same progress.
    let shown: Vec<(Value, Value)> = all
        .iter()
        .map(|n| {
            let h = n.get_json(&hook_path);
            (h["lease"]["holder"].clone(), h["failures"].clone())
        })
        .collect();
    assert!(shown.iter().all(|s| s == &shown[0]), "{shown:?}");
    assert!(shown[0].0.is_string());
    let jobs: Vec<Value> = all
        .iter()
        .map(|n| n.get_json(&job_path)["lease"]["holder"].clone())
        .collect();
    assert!(
        jobs.iter().all(|j| j == &jobs[0] && j.is_string()),
        "{jobs:?}"
    );
}
