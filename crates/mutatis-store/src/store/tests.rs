//! Group commit, seen from the store: writes queued together share one transaction, each
//! gets its own result, and one refused write does not take the others with it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use mutatis_schema::SchemaSet;
use serde_json::json;

use super::*;
use crate::redb_backend::{RedbBackend, RedbOptions};

/// redb, counting write transactions, whose next write can be held at its start (a gate)
/// until the test lets it go: the test then knows who waits behind it.
struct Gated {
    inner: RedbBackend,
    writes: AtomicUsize,
    /// (closed, a write is held at the gate)
    gate: Mutex<(bool, bool)>,
    moved: Condvar,
}

impl Gated {
    fn set_closed(&self, closed: bool) {
        self.gate.lock().unwrap().0 = closed;
        self.moved.notify_all();
    }

    fn wait_until_held(&self) {
        let mut g = self.gate.lock().unwrap();
        while !g.1 {
            g = self.moved.wait(g).unwrap();
        }
    }
}

impl Backend for Gated {
    const NAME: &'static str = "gated redb";

    fn read<R>(
        &self,
        f: impl FnOnce(&mut dyn ReadTxn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.inner.read(f)
    }

    fn write<R>(
        &self,
        f: impl FnMut(&mut dyn WriteTxn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut g = self.gate.lock().unwrap();
        while g.0 {
            g.1 = true;
            self.moved.notify_all();
            g = self.moved.wait(g).unwrap();
        }
        g.1 = false;
        drop(g);
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.write(f)
    }
}

fn todo_set() -> Arc<SchemaSet> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/todo");
    let todo = std::fs::read_to_string(root.join("types/todo.yaml")).unwrap();
    let settings = "name: group-commit
releases:
  - {name: \"1\", types: {todo: 1}, status: current}
storage:
  todo: {version: 1, strategy: eager}
";
    Arc::new(
        SchemaSet::from_sources(vec![
            (PathBuf::from("mutatis.yaml"), settings.to_owned()),
            (PathBuf::from("types/todo.yaml"), todo),
        ])
        .unwrap(),
    )
}

#[test]
fn writes_queued_together_share_one_commit_and_keep_their_own_results() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Gated {
        inner: RedbBackend::open(dir.path().join("store.redb"), RedbOptions::default()).unwrap(),
        writes: AtomicUsize::new(0),
        gate: Mutex::new((false, false)),
        moved: Condvar::new(),
    };
    let store = Arc::new(Store::new(backend, todo_set()));
    let body = |title: &str| json!({"title": title, "done": false});
    let taken = store.put("todo", "taken", 1, &body("taken"), None).unwrap();

    // The first writer leads a group of its own and is held inside its transaction, so
    // everyone else queues behind it.
    store.backend().set_closed(true);
    let first = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || store.put("todo", "first", 1, &body("first"), None))
    };
    store.backend().wait_until_held();
    let mut queued = Vec::new();
    for i in 0..8 {
        let store = Arc::clone(&store);
        queued.push(std::thread::spawn(move || {
            store.put("todo", &format!("doc-{i}"), 1, &body("queued"), None)
        }));
    }
    // Creates a document that exists: refused, alone.
    let refused = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || store.put("todo", "taken", 1, &body("again"), None))
    };
    while store.turnstile.lock().queue.waiting() < 9 {
        std::thread::yield_now();
    }
    store.backend().set_closed(false);

    let first = first.join().unwrap().unwrap();
    let written: Vec<Written> = queued
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    let refused = refused.join().unwrap();
    assert!(
        matches!(refused, Err(StoreError::Conflict { .. })),
        "{refused:?}"
    );
    assert_eq!(
        store.backend().writes.load(Ordering::SeqCst),
        3,
        "the setup write, the first writer's, and one for the nine queued behind it"
    );

    // Every acknowledged write is there with its rev, and the feed has no gap.
    for (i, w) in written.iter().enumerate() {
        let doc = store.get("todo", &format!("doc-{i}"), 1).unwrap().unwrap();
        assert_eq!(doc.rev, w.rev);
    }
    assert_eq!(
        store.get("todo", "taken", 1).unwrap().unwrap().rev,
        taken.rev
    );
    let mut seqs: Vec<u64> = written.iter().map(|w| w.seq).collect();
    seqs.extend([taken.seq, first.seq]);
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=10).collect::<Vec<u64>>());
    let (feed, last) = store.feed(0, 100).unwrap();
    assert_eq!((feed.len(), last), (10, 10));
}

fn gated(path: &Path) -> Gated {
    Gated {
        inner: RedbBackend::open(path, RedbOptions::default()).unwrap(),
        writes: AtomicUsize::new(0),
        gate: Mutex::new((false, false)),
        moved: Condvar::new(),
    }
}

#[test]
fn pending_writes_need_no_thread_each_and_the_closed_store_frees_its_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let store = Store::new(gated(&path), todo_set());
    let body = |title: &str| json!({"title": title, "done": false});
    let taken = store.put("todo", "taken", 1, &body("taken"), None).unwrap();

    // One thread queues every write: the committer runs them, nobody blocks per write.
    store.backend().set_closed(true);
    let first = store.put_pending("todo", "first", 1, &body("first"), None, None);
    store.backend().wait_until_held();
    let queued: Vec<PendingWrite> = (0..20)
        .map(|i| store.put_pending("todo", &format!("doc-{i}"), 1, &body("q"), None, None))
        .collect();
    let refused = store.put_pending("todo", "taken", 1, &body("again"), None, None);
    let invalid = store.put_pending("todo", "bad", 1, &json!({"title": 5}), None, None);
    assert_eq!(
        store.turnstile.lock().queue.waiting(),
        21,
        "refused before queueing"
    );
    store.backend().set_closed(false);

    let first = first.wait().unwrap();
    let written: Vec<Written> = queued.into_iter().map(|p| p.wait().unwrap()).collect();
    assert!(matches!(refused.wait(), Err(StoreError::Conflict { .. })));
    assert!(matches!(invalid.wait(), Err(StoreError::Invalid { .. })));
    assert_eq!(
        store.backend().writes.load(Ordering::SeqCst),
        3,
        "the setup write, the first, and one for the twenty-one queued behind it"
    );
    let mut seqs: Vec<u64> = written.iter().map(|w| w.seq).collect();
    seqs.extend([taken.seq, first.seq]);
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=22).collect::<Vec<u64>>());

    // Every acknowledged write is durable, and the committer does not keep the database
    // open once the store is gone: it opens again at once.
    drop(store);
    let store = Store::new(gated(&path), todo_set());
    for (i, w) in written.iter().enumerate() {
        let doc = store.get("todo", &format!("doc-{i}"), 1).unwrap().unwrap();
        assert_eq!(doc.rev, w.rev);
    }
}

#[test]
fn a_transaction_of_its_own_runs_in_turn_between_groups() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::new(gated(&dir.path().join("s.redb")), todo_set()));
    let body = |title: &str| json!({"title": title, "done": false});

    store.backend().set_closed(true);
    let first = store.put_pending("todo", "first", 1, &body("first"), None, None);
    store.backend().wait_until_held();
    let before = store.put_pending("todo", "before", 1, &body("before"), None, None);
    let import = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            let doc = ImportDoc {
                id: "imported".to_owned(),
                rev: None,
                body: body("imported"),
            };
            store.import("todo", 1, &[doc])
        })
    };
    while store.turnstile.lock().queue.waiting() < 2 {
        std::thread::yield_now();
    }
    let after = store.put_pending("todo", "after", 1, &body("after"), None, None);
    store.backend().set_closed(false);

    let seqs = [
        first.wait().unwrap().seq,
        before.wait().unwrap().seq,
        import.join().unwrap().unwrap()[0].seq,
        after.wait().unwrap().seq,
    ];
    assert_eq!(seqs, [1, 2, 3, 4], "in arrival order");
    assert_eq!(
        store.backend().writes.load(Ordering::SeqCst),
        4,
        "no group reaches past the import"
    );
}
