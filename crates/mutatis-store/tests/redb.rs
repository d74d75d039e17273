//! The shared suite against the redb backend, and what only a file-backed store can be asked:
//! corrupt and foreign files.

#[macro_use]
mod suite;

use std::path::PathBuf;
use std::sync::Arc;

use mutatis_schema::SchemaSet;
use mutatis_store::{RedbBackend, RedbOptions, Store, StoreError};
use suite::{todo_set, Harness};

/// A redb store in a temporary folder, reopened on every `open`.
struct Redb {
    dir: tempfile::TempDir,
}

impl Redb {
    fn new() -> Redb {
        Redb {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("store.redb")
    }
}

impl Harness for Redb {
    type B = RedbBackend;

    fn open(&self, set: Arc<SchemaSet>) -> Store<RedbBackend> {
        Store::new(
            RedbBackend::open(self.path(), RedbOptions::default()).unwrap(),
            set,
        )
    }

    fn open_peer(&self, name: &str, set: Arc<SchemaSet>) -> Store<RedbBackend> {
        Store::new(
            RedbBackend::open(
                self.dir.path().join(format!("{name}.redb")),
                RedbOptions::default(),
            )
            .unwrap(),
            set,
        )
    }
}

macro_rules! redb_suite {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                suite::$name(&Redb::new());
            }
        )*
    };
}

suite_tests!(redb_suite);

fn refused_untouched(path: &std::path::Path) -> String {
    let before = std::fs::read(path).unwrap();
    let err = match RedbBackend::open(path, RedbOptions::default()) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => e,
    };
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err}");
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "the file was written to"
    );
    err.to_string()
}

#[test]
fn an_existing_empty_file_is_not_a_store() {
    let h = Redb::new();
    std::fs::write(h.path(), b"").unwrap();
    let msg = refused_untouched(&h.path());
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn a_file_that_is_not_redb_is_refused_and_left_alone() {
    let h = Redb::new();
    std::fs::write(
        h.path(),
        b"{\"these are\": \"not the bytes you are looking for\"}\n".repeat(200),
    )
    .unwrap();
    let msg = refused_untouched(&h.path());
    assert!(msg.contains("store.redb"), "{msg}");
    assert!(msg.contains("untouched"), "{msg}");
}

#[test]
fn another_programs_redb_file_is_refused_and_left_alone() {
    let h = Redb::new();
    {
        let db = redb::Database::create(h.path()).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("theirs");
            txn.open_table(def).unwrap().insert("k", 1).unwrap();
        }
        txn.commit().unwrap();
    }
    let msg = refused_untouched(&h.path());
    assert!(msg.contains("without a mutatis store"), "{msg}");
}

#[test]
fn a_damaged_store_is_refused_and_left_alone() {
    let h = Redb::new();
    {
        let store = h.open(todo_set(3, "eager"));
        for i in 0..200 {
            store
                .put(
                    "todo",
                    &format!("d{i}"),
                    1,
                    &serde_json::json!({"title": "x".repeat(200), "done": false}),
                    None,
                )
                .unwrap();
        }
    }
    let mut bytes = std::fs::read(h.path()).unwrap();
    // Damage the pages past the header (redb's header and its two commit slots are in the
    // first pages; the B-tree pages are after them).
    let len = bytes.len();
    for b in &mut bytes[len / 3..len / 3 + 4096] {
        *b ^= 0x5a;
    }
    std::fs::write(h.path(), &bytes).unwrap();
    refused_untouched(&h.path());
}

#[test]
fn a_store_reopens_with_its_data() {
    let h = Redb::new();
    let rev = {
        let store = h.open(todo_set(3, "eager"));
        store
            .put(
                "todo",
                "a",
                1,
                &serde_json::json!({"title": "x", "done": true}),
                None,
            )
            .unwrap()
            .rev
    };
    let store = h.open(todo_set(3, "eager"));
    assert_eq!(store.rev("todo", "a").unwrap(), Some(rev));
    assert_eq!(store.last_seq().unwrap(), 1);
}

#[test]
fn a_store_open_elsewhere_is_reported_as_in_use() {
    let h = Redb::new();
    let _first = h.open(todo_set(3, "eager"));
    let before = std::fs::read(h.path()).unwrap();
    let err = match RedbBackend::open(h.path(), RedbOptions::default()) {
        Ok(_) => panic!("opened twice"),
        Err(e) => e,
    };
    assert!(
        matches!(
            err,
            StoreError::Backend {
                operation: "open",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("already open"), "{err}");
    assert_eq!(std::fs::read(h.path()).unwrap(), before);
}

/// A caller that only reads opens without `create`: a path where nothing is stays empty,
/// and an existing store opens as usual.
#[test]
fn an_open_without_create_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.redb");
    let existing = RedbOptions {
        create: false,
        ..RedbOptions::default()
    };
    let err = match RedbBackend::open(&path, existing) {
        Ok(_) => panic!("a store was opened where there is none"),
        Err(e) => e,
    };
    assert!(matches!(err, StoreError::NoStore { .. }), "{err}");
    assert!(err.to_string().contains("typo.redb"), "{err}");
    assert!(!path.exists(), "a file was created");
    drop(RedbBackend::open(&path, RedbOptions::default()).unwrap());
    assert!(RedbBackend::open(&path, existing).is_ok());
}
