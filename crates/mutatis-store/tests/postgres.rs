//! The shared suite against PostgreSQL. CI's `.ci/run` makes sure a server is up and passes
//! `DATABASE_URL`; without it these tests say so on stderr and check nothing. Each test works
//! in a schema of its own, dropped afterwards.

#[macro_use]
mod suite;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mutatis_schema::SchemaSet;
use mutatis_store::{PostgresBackend, Store, StoreError};
use suite::{todo_set, Harness};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh schema per test; `None` without `DATABASE_URL`.
struct Postgres {
    url: String,
    schema: String,
    /// Schemas of peer stores opened by the test, dropped with the main one.
    peers: Mutex<Vec<String>>,
}

impl Postgres {
    fn new() -> Option<Postgres> {
        let url = suite::database_url("postgres suite")?;
        let schema = format!(
            "mutatis_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .unwrap();
        Some(Postgres {
            url,
            schema,
            peers: Mutex::new(Vec::new()),
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let peers = self.peers.lock().map(|p| p.clone()).unwrap_or_default();
            for schema in peers.iter().chain([&self.schema]) {
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

impl Harness for Postgres {
    type B = PostgresBackend;

    fn open(&self, set: Arc<SchemaSet>) -> Store<PostgresBackend> {
        Store::new(
            PostgresBackend::connect(&self.url, &self.schema).unwrap(),
            set,
        )
    }

    fn open_peer(&self, name: &str, set: Arc<SchemaSet>) -> Store<PostgresBackend> {
        let schema = format!("{}_{name}", self.schema);
        let mut peers = self.peers.lock().unwrap();
        if !peers.contains(&schema) {
            let mut client = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .unwrap();
            peers.push(schema.clone());
        }
        Store::new(PostgresBackend::connect(&self.url, &schema).unwrap(), set)
    }
}

macro_rules! pg_suite {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                if let Some(pg) = Postgres::new() {
                    suite::$name(&pg);
                }
            }
        )*
    };
}

suite_tests!(pg_suite);

#[test]
fn a_bad_schema_name_is_refused() {
    let Some(pg) = Postgres::new() else { return };
    for bad in [
        "",
        "Robert'); DROP TABLE students;--",
        "1abc",
        "a-b",
        // PostgreSQL's own schemas.
        "information_schema",
        "pg_catalog",
        "pg_toast",
        "pg_mutatis",
    ] {
        let err = match PostgresBackend::connect(&pg.url, bad) {
            Ok(_) => panic!("{bad:?} accepted"),
            Err(e) => e,
        };
        assert!(
            matches!(
                err,
                StoreError::Backend {
                    operation: "connect",
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn two_stores_on_one_schema_share_data_and_feed() {
    let Some(pg) = Postgres::new() else { return };
    let a = pg.open(todo_set(3, "eager"));
    let b = pg.open(todo_set(3, "eager"));
    let w = a
        .put(
            "todo",
            "x",
            1,
            &serde_json::json!({"title": "x", "done": true}),
            None,
        )
        .unwrap();
    assert_eq!(b.rev("todo", "x").unwrap(), Some(w.rev.clone()));
    let w2 = b
        .put(
            "todo",
            "y",
            1,
            &serde_json::json!({"title": "y", "done": false}),
            None,
        )
        .unwrap();
    assert_eq!(w2.seq, w.seq + 1, "one feed, in commit order");
    assert!(matches!(
        b.put(
            "todo",
            "x",
            1,
            &serde_json::json!({"title": "z", "done": true}),
            None
        ),
        Err(StoreError::Conflict { .. })
    ));
}

/// The backend prepares each statement once per connection and keeps it: a statement first
/// prepared in a write that rolls back must still serve the next write on that connection
/// (prepared statements belong to the session, not to the transaction), and a write must
/// read what it wrote itself.
#[test]
fn statements_prepared_in_a_rolled_back_write_serve_the_next_one() {
    use mutatis_store::{Backend, PoolOptions};
    let Some(pg) = Postgres::new() else { return };
    let one = PoolOptions {
        size: 1,
        ..PoolOptions::default()
    };
    let backend = PostgresBackend::connect_with(&pg.url, &pg.schema, one).unwrap();
    let refused = backend.write(|txn| {
        txn.put_meta("k", Some("first"))?;
        assert_eq!(txn.meta("k")?.as_deref(), Some("first"), "its own write");
        Err::<(), _>(StoreError::Backend {
            backend: "test",
            operation: "refuse",
            reason: "roll back".to_owned(),
        })
    });
    assert!(refused.is_err());
    assert_eq!(
        backend.read(|txn| txn.meta("k")).unwrap(),
        None,
        "rolled back"
    );
    for value in ["second", "third"] {
        backend
            .write(|txn| {
                txn.put_meta("k", Some(value))?;
                assert_eq!(txn.meta("k")?.as_deref(), Some(value));
                Ok(())
            })
            .unwrap();
        assert_eq!(
            backend.read(|txn| txn.meta("k")).unwrap().as_deref(),
            Some(value)
        );
    }
}
