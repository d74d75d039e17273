//! Many `mutatis serve` processes on one PostgreSQL database: each process's connection pool
//! stays within its bound (`--pg-pool-size`, counted in `pg_stat_activity` by the
//! connections' `application_name`), and a request that finds every connection busy is
//! answered 503 `store-busy` instead of hanging; a write on one process wakes a waiting
//! feed on another (PostgreSQL `NOTIFY`).
//!
//! Every test here needs PostgreSQL: without `DATABASE_URL` it says loudly that it did not
//! run (and fails under CI).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use support::{example, node_on, Node, NodeOptions, Store, REFERENCE_DATE};

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
