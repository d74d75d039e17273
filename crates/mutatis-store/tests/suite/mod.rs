//! The shared backend test suite: every function here takes a [`Harness`] and runs against any
//! backend. `tests/redb.rs` instantiates it for redb with [`backend_suite!`]; the PostgreSQL
//! backend instantiates it the same way.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mutatis_lens::Params;
use mutatis_schema::SchemaSet;
use mutatis_store::{
    Applied, Backend, ImportDoc, MigrationOptions, OnError, Phase, Replicated, ReplicatedDoc,
    Resolution, Rev, Step, Store, StoreError, LIST_SCAN_CHUNK,
};
use serde_json::{json, Value};

/// Opens the store under test. `open` may be called again after the previous store was
/// dropped: it must reopen the same data (that is how a crash is simulated).
pub trait Harness {
    /// The backend.
    type B: Backend;
    /// Open (or reopen) the store with `set`.
    fn open(&self, set: Arc<SchemaSet>) -> Store<Self::B>;
    /// Open (or reopen) another, independent store named `name`: a second node to replicate
    /// with.
    fn open_peer(&self, name: &str, set: Arc<SchemaSet>) -> Store<Self::B>;
}

/// Call `$each!` with the name of every suite test: the one list both backends run, so a test
/// added here runs on both. (Unused in test binaries that only borrow the fixtures.)
#[allow(unused_macros)]
macro_rules! suite_tests {
    ($each:ident) => {
        $each!(
            crud_in_every_version,
            conservation_keeps_fields_an_old_writer_cannot_see,
            rev_conflicts_are_refused,
            schema_failures_are_refused,
            unknown_versions_types_and_ids_are_refused,
            changes_feed_order_batching_and_resume,
            lazy_strategy_translates_on_read_and_upgrades_on_write,
            multi_strategy_keeps_a_copy_per_version,
            eager_migration_full_run,
            migration_resumes_after_a_crash,
            abort_leaves_the_old_data_untouched,
            rollback_after_the_switch_and_drop_backup,
            untranslatable_documents_stop_or_are_quarantined,
            conflicting_migrations_are_refused,
            concurrent_writer_and_readers_during_migration,
            import_in_bulk,
            access_data_is_kept_replaced_and_outlives_a_delete,
            settings_are_namespaced_shared_and_initialised_once,
            rev_histories_grow_and_survive_migration_and_reopen,
            replicated_writes_store_fast_forward_and_are_idempotent,
            concurrent_edits_conflict_with_the_same_winner_everywhere,
            conflicts_are_resolved_by_keeping_a_leaf_or_merging,
            bad_replicated_input_is_refused_and_nothing_is_written,
            writes_in_any_version_read_back_exactly_whatever_the_storage_version,
            multi_copies_read_back_what_was_carried,
            earlier_revisions_are_readable_while_kept,
            the_backup_is_readable_until_dropped,
            a_bad_replicated_document_is_refused_alone,
            a_visible_list_pages_past_what_it_skips,
            a_resolution_ends_only_the_leaves_its_caller_may_see,
            the_declared_storage_is_reconciled,
        );
    };
}

const TICKET: &str = r#"
type: ticket
versions:
  1:
    schema:
      type: object
      properties:
        state: {type: string}
      required: [state]
  2:
    lens:
      - convert:
          name: state
          forward: {open: o, closed: c}
          backward: {o: open, c: closed}
"#;

/// The todo example's types with every release served and the given storage.
pub fn todo_set(version: u32, strategy: &str) -> Arc<SchemaSet> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/todo");
    let todo = std::fs::read_to_string(root.join("types/todo.yaml")).unwrap();
    let settings = format!(
        "name: store-suite
releases:
  - {{name: \"1\", types: {{todo: 1, ticket: 1}}, status: supported}}
  - {{name: \"2\", types: {{todo: 2, ticket: 1}}, status: supported}}
  - {{name: \"3\", types: {{todo: 3, ticket: 2}}, status: current}}
storage:
  todo: {{version: {version}, strategy: {strategy}}}
  ticket: {{version: 1, strategy: eager}}
"
    );
    Arc::new(
        SchemaSet::from_sources(vec![
            (PathBuf::from("mutatis.yaml"), settings),
            (PathBuf::from("types/todo.yaml"), todo),
            (PathBuf::from("types/ticket.yaml"), TICKET.to_owned()),
        ])
        .unwrap(),
    )
}

fn v1(title: &str, done: bool) -> Value {
    json!({"title": title, "done": done})
}

fn translate(set: &SchemaSet, body: &Value, from: u32, to: u32) -> Value {
    set.plan("todo", from, to)
        .unwrap()
        .translate(body, &Params::new())
        .unwrap()
}

/// The stored record of a document in the primary space (what the backend holds).
fn stored<B: Backend>(store: &Store<B>, ty: &str, id: &str) -> Option<mutatis_store::Record> {
    let state = store.state(ty).unwrap();
    store
        .backend()
        .read(|t| t.get(ty, state.primary, id))
        .unwrap()
}

pub fn access_data_is_kept_replaced_and_outlives_a_delete(h: &impl Harness) {
    let store = h.open(todo_set(3, "lazy"));
    let policy = json!({"read": ["ann"], "write": ["ann"]});
    let w = store
        .put_with_access("todo", "a", 1, &v1("milk", false), None, Some(&policy))
        .unwrap();
    assert_eq!(store.get("todo", "a", 2).unwrap().unwrap().access, policy);
    // A write without access data keeps the stored policy.
    let w = store
        .put("todo", "a", 1, &v1("milk", true), Some(&w.rev))
        .unwrap();
    assert_eq!(store.get("todo", "a", 3).unwrap().unwrap().access, policy);

    // Replacing the policy is a write: next generation, same body, a feed entry.
    let before = store.last_seq().unwrap();
    let open = json!({"read": ["*"], "write": ["ann"]});
    let stale = w.rev.clone();
    let w2 = store.set_access("todo", "a", &w.rev, &open).unwrap();
    assert_eq!(w2.rev.generation(), w.rev.generation() + 1);
    assert_eq!(w2.seq, before + 1);
    let doc = store.get("todo", "a", 1).unwrap().unwrap();
    assert_eq!((doc.access, doc.body), (open.clone(), v1("milk", true)));
    assert!(matches!(
        store.set_access("todo", "a", &stale, &policy),
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store.set_access("todo", "nobody", &stale, &policy),
        Err(StoreError::Conflict { actual: None, .. })
    ));

    // The tombstone keeps the policy, so the feed can be filtered for deletes too.
    store.delete("todo", "a", &w2.rev).unwrap();
    let tomb = stored(&store, "todo", "a").unwrap();
    assert!(tomb.deleted);
    assert_eq!(tomb.access, open);
}

pub fn settings_are_namespaced_shared_and_initialised_once(h: &impl Harness) {
    let store = h.open(todo_set(1, "lazy"));
    assert_eq!(store.setting("node/id").unwrap(), None);
    let first = store.init_setting("node/id", &json!("n-1")).unwrap();
    assert_eq!(first, json!("n-1"));
    // A second initialiser (another process, a restart) gets the first value, not its own.
    // (redb admits one process per file: reopen rather than open twice.)
    drop(store);
    let store = h.open(todo_set(1, "lazy"));
    assert_eq!(
        store.init_setting("node/id", &json!("n-2")).unwrap(),
        json!("n-1")
    );

    store
        .put_setting("token/b", Some(&json!({"role": "reader"})))
        .unwrap();
    store
        .put_setting("token/a", Some(&json!({"role": "admin"})))
        .unwrap();
    store.put_setting("tokenizer", Some(&json!(1))).unwrap();
    let tokens = store.settings("token/").unwrap();
    let keys: Vec<&str> = tokens.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["token/a", "token/b"]);
    assert_eq!(tokens[0].1, json!({"role": "admin"}));
    store.put_setting("token/a", None).unwrap();
    assert_eq!(store.settings("token/").unwrap().len(), 1);
    // Settings never reach the store's own bookkeeping (its format marker): the store
    // still opens after a setting named `format` is written.
    assert_eq!(store.setting("format").unwrap(), None);
    store.put_setting("format", Some(&json!("x"))).unwrap();
    drop(store);
    let reopened = h.open(todo_set(1, "lazy"));
    assert_eq!(reopened.setting("format").unwrap(), Some(json!("x")));
}

pub fn crud_in_every_version(h: &impl Harness) {
    let set = todo_set(3, "eager");
    let store = h.open(set.clone());
    let w = store.put("todo", "a", 1, &v1("milk", true), None).unwrap();
    assert_eq!(w.rev.generation(), 1);
    for v in 1..=3 {
        let doc = store.get("todo", "a", v).unwrap().unwrap();
        assert_eq!(doc.rev, w.rev);
        assert_eq!(doc.version, v);
        assert_eq!(doc.body, translate(&set, &v1("milk", true), 1, v));
        set.validate("todo", v, &doc.body).unwrap();
    }
    // Stored in the storage version.
    assert_eq!(stored(&store, "todo", "a").unwrap().version, 3);

    let body2 = json!({"title": "oat milk", "done": false, "important": true});
    let w2 = store.put("todo", "a", 2, &body2, Some(&w.rev)).unwrap();
    assert_eq!(w2.rev.generation(), 2);
    assert_eq!(store.get("todo", "a", 2).unwrap().unwrap().body, body2);
    assert_eq!(
        store.get("todo", "a", 3).unwrap().unwrap().body,
        json!({"title": "oat milk", "status": "open", "important": true})
    );
    let body3 = json!({"title": "oat milk", "status": "started", "important": true});
    let w3 = store.put("todo", "a", 3, &body3, Some(&w2.rev)).unwrap();
    assert_eq!(store.get("todo", "a", 3).unwrap().unwrap().body, body3);
    assert_eq!(store.rev("todo", "a").unwrap(), Some(w3.rev.clone()));

    let d = store.delete("todo", "a", &w3.rev).unwrap();
    assert_eq!(d.rev.generation(), 4);
    for v in 1..=3 {
        assert_eq!(store.get("todo", "a", v).unwrap(), None);
    }
    assert_eq!(store.rev("todo", "a").unwrap(), None);
    // Re-creating continues the generation, so replicas order it after the delete.
    let again = store
        .put("todo", "a", 1, &v1("bread", false), None)
        .unwrap();
    assert_eq!(again.rev.generation(), 5);

    // Pages in id order, in the version asked for, without tombstones.
    store.put("todo", "b", 1, &v1("b", false), None).unwrap();
    let wc = store.put("todo", "c", 1, &v1("c", false), None).unwrap();
    store.delete("todo", "c", &wc.rev).unwrap();
    let page = store.list("todo", 2, None, 10).unwrap();
    let ids: Vec<&str> = page.docs.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert!(page.docs.iter().all(|d| d.body.get("important").is_some()));
    assert_eq!(page.next, None);
    let first = store.list("todo", 1, None, 1).unwrap();
    assert_eq!(first.next.as_deref(), Some("a"));
    let second = store.list("todo", 1, first.next.as_deref(), 1).unwrap();
    assert_eq!(second.docs[0].id, "b");
}

pub fn conservation_keeps_fields_an_old_writer_cannot_see(h: &impl Harness) {
    let store = h.open(todo_set(3, "eager"));
    let w = store
        .put(
            "todo",
            "t",
            3,
            &json!({"title": "fix sink", "status": "started", "important": true}),
            None,
        )
        .unwrap();
    // A v1 app renames the item; it knows nothing of `important` or of `started`.
    let seen = store.get("todo", "t", 1).unwrap().unwrap();
    assert_eq!(seen.body, v1("fix sink", false));
    store
        .put("todo", "t", 1, &v1("fix the sink", false), Some(&w.rev))
        .unwrap();
    let now = store.get("todo", "t", 3).unwrap().unwrap().body;
    assert_eq!(now["title"], "fix the sink");
    assert_eq!(now["important"], true, "a v1 write erased a v3-only field");
    assert_eq!(
        now["status"], "started",
        "`done: false` is what v1 sees of `started`: writing it back must not reset it"
    );
    // A v2 writer sees `important` and may change it; the v3-only status value survives.
    let rev = store.rev("todo", "t").unwrap().unwrap();
    store
        .put(
            "todo",
            "t",
            2,
            &json!({"title": "fix the sink", "done": false, "important": false}),
            Some(&rev),
        )
        .unwrap();
    let now = store.get("todo", "t", 3).unwrap().unwrap().body;
    assert_eq!(now["important"], false);
    assert_eq!(now["status"], "started");
}

pub fn rev_conflicts_are_refused(h: &impl Harness) {
    let store = h.open(todo_set(3, "eager"));
    let w = store.put("todo", "a", 1, &v1("x", false), None).unwrap();
    let before = store.last_seq().unwrap();
    let err = store
        .put("todo", "a", 1, &v1("y", false), None)
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { expected: None, actual: Some(a), .. } if *a == w.rev.to_string()),
        "{err}"
    );
    let w2 = store
        .put("todo", "a", 1, &v1("y", false), Some(&w.rev))
        .unwrap();
    // A writer holding the old rev would lose the other's update: refused.
    let err = store
        .put("todo", "a", 1, &v1("z", false), Some(&w.rev))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { expected: Some(e), actual: Some(a), .. }
            if *e == w.rev.to_string() && *a == w2.rev.to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("\"a\""), "{err}");
    let err = store.delete("todo", "a", &w.rev).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }));
    let missing: Rev = "1-00".parse().unwrap();
    let err = store
        .put("todo", "nope", 1, &v1("z", false), Some(&missing))
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { actual: None, .. }));
    // Nothing of the refused writes was stored or fed.
    assert_eq!(
        store.get("todo", "a", 1).unwrap().unwrap().body,
        v1("y", false)
    );
    assert_eq!(store.last_seq().unwrap(), before + 1);
}

pub fn schema_failures_are_refused(h: &impl Harness) {
    let store = h.open(todo_set(3, "eager"));
    let err = store
        .put("todo", "a", 1, &json!({"title": 3, "done": true}), None)
        .unwrap_err();
    match &err {
        StoreError::Invalid {
            type_name,
            version,
            id,
            issues,
        } => {
            assert_eq!(
                (type_name.as_str(), *version, id.as_str()),
                ("todo", 1, "a")
            );
            assert_eq!(issues[0].pointer, "/title");
        }
        other => panic!("expected Invalid, got {other}"),
    }
    assert!(err.to_string().contains("/title"), "{err}");
    // A v3 field in a v1 body is refused too (todo@1 has no additional properties).
    let err = store
        .put(
            "todo",
            "a",
            1,
            &json!({"title": "x", "done": true, "status": "open"}),
            None,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }));
    assert_eq!(store.get("todo", "a", 1).unwrap(), None);
    assert_eq!(store.last_seq().unwrap(), 0);
}

pub fn unknown_versions_types_and_ids_are_refused(h: &impl Harness) {
    let store = h.open(todo_set(3, "eager"));
    let err = store
        .put("todo", "a", 9, &v1("x", false), None)
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::UnknownVersion { version: 9, known, .. } if known == "1, 2, 3"),
        "{err}"
    );
    assert!(matches!(
        store.get("todo", "a", 0),
        Err(StoreError::UnknownVersion { version: 0, .. })
    ));
    assert!(matches!(
        store.put("nosuch", "a", 1, &v1("x", false), None),
        Err(StoreError::Schema(_))
    ));
    assert!(matches!(store.changes(0, 10), Ok(c) if c.is_empty()));
    for bad in ["", "a\nb", &"x".repeat(600)] {
        assert!(matches!(
            store.put("todo", bad, 1, &v1("x", false), None),
            Err(StoreError::InvalidId { .. })
        ));
    }
}

pub fn changes_feed_order_batching_and_resume(h: &impl Harness) {
    let store = h.open(todo_set(3, "eager"));
    let mut written = Vec::new();
    for i in 0..20 {
        let id = format!("d{}", i % 7);
        let rev = store.rev("todo", &id).unwrap();
        let w = store
            .put(
                "todo",
                &id,
                1,
                &v1(&format!("t{i}"), i % 2 == 0),
                rev.as_ref(),
            )
            .unwrap();
        written.push((w.seq, id, w.rev, false));
    }
    let rev = store.rev("todo", "d3").unwrap().unwrap();
    let d = store.delete("todo", "d3", &rev).unwrap();
    written.push((d.seq, "d3".into(), d.rev, true));
    store
        .put("ticket", "k", 1, &json!({"state": "open"}), None)
        .unwrap();

    let mut read = Vec::new();
    let mut after = 0;
    loop {
        let batch = store.changes(after, 4).unwrap();
        assert!(batch.len() <= 4);
        let Some(last) = batch.last() else { break };
        after = last.seq;
        read.extend(batch);
    }
    // Each document once, at its latest change (CouchDB's `_changes`): 7 todos and a ticket.
    let mut latest: BTreeMap<String, (u64, Rev, bool)> = BTreeMap::new();
    for (seq, id, rev, deleted) in &written {
        latest.insert(id.clone(), (*seq, rev.clone(), *deleted));
    }
    assert_eq!(read.len(), 8);
    // Strictly increasing, in commit order, each the write's own sequence.
    assert!(read.windows(2).all(|w| w[0].seq < w[1].seq));
    for c in &read[..7] {
        assert_eq!(c.type_name, "todo");
        assert_eq!(
            latest.get(&c.id),
            Some(&(c.seq, c.rev.clone(), c.deleted)),
            "{}",
            c.id
        );
    }
    assert_eq!(read[7].type_name, "ticket");
    assert_eq!(read[7].seq, 22);
    // Resume from the middle: only what changed after it.
    let tail = store.changes(15, 100).unwrap();
    assert!(tail.iter().all(|c| c.seq > 15));
    assert_eq!(
        tail.len(),
        read.iter().filter(|c| c.seq > 15).count(),
        "{tail:?}"
    );
    assert_eq!(store.last_seq().unwrap(), 22);
    // A reopened store keeps the feed as it was.
    drop(store);
    let store = h.open(todo_set(3, "eager"));
    assert_eq!(store.changes(0, 100).unwrap(), read);
    // The feed with records: every entry's record is the one its change wrote.
    let (entries, last) = store.feed(0, 100).unwrap();
    assert_eq!(last, 22);
    assert_eq!(entries.len(), 8);
    for e in &entries {
        assert_eq!(e.record.as_ref().map(|r| &r.rev), Some(&e.change.rev));
    }
}

pub fn lazy_strategy_translates_on_read_and_upgrades_on_write(h: &impl Harness) {
    let set = todo_set(1, "lazy");
    let store = h.open(set.clone());
    for i in 0..5 {
        store
            .put("todo", &format!("d{i}"), 1, &v1("x", i % 2 == 0), None)
            .unwrap();
    }
    // Nothing to move: the storage version changes at once.
    assert_eq!(
        store
            .start_migration("todo", 3, MigrationOptions::default())
            .unwrap(),
        None
    );
    let state = store.state("todo").unwrap();
    assert_eq!(state.storage_version, 3);
    assert!(state.migration.is_none());
    // Old documents stay as written, and are read in any version.
    assert_eq!(stored(&store, "todo", "d0").unwrap().version, 1);
    assert_eq!(
        store.get("todo", "d0", 3).unwrap().unwrap().body,
        translate(&set, &v1("x", true), 1, 3)
    );
    // A write upgrades the document, even from an old writer.
    let rev = store.rev("todo", "d1").unwrap();
    store
        .put("todo", "d1", 1, &v1("y", true), rev.as_ref())
        .unwrap();
    let rec = stored(&store, "todo", "d1").unwrap();
    assert_eq!(rec.version, 3);
    assert_eq!(
        rec.body,
        json!({"title": "y", "status": "done", "important": false})
    );
    assert_eq!(
        store.get("todo", "d1", 1).unwrap().unwrap().body,
        v1("y", true)
    );
    assert_eq!(stored(&store, "todo", "d2").unwrap().version, 1);
    // The optional background upgrade rewrites the rest in the storage version.
    let p = store
        .start_upgrade("todo", MigrationOptions::default())
        .unwrap();
    assert_eq!((p.from, p.to, p.total), (3, 3, 5));
    store.run_migration("todo", |_| {}).unwrap();
    for i in 0..5 {
        let id = format!("d{i}");
        let rec = stored(&store, "todo", &id).unwrap();
        assert_eq!(rec.version, 3);
        let want = if i == 1 {
            v1("y", true)
        } else {
            v1("x", i % 2 == 0)
        };
        assert_eq!(rec.body, translate(&set, &want, 1, 3), "{id}");
    }
}

pub fn multi_strategy_keeps_a_copy_per_version(h: &impl Harness) {
    let set = todo_set(3, "multi");
    let store = h.open(set.clone());
    let body = json!({"title": "x", "status": "started", "important": true});
    let w = store.put("todo", "m", 3, &body, None).unwrap();
    let state = store.state("todo").unwrap();
    assert_eq!(state.copies.keys().copied().collect::<Vec<_>>(), [1, 2]);
    for (&v, &space) in &state.copies {
        let copy = store
            .backend()
            .read(|t| t.get("todo", space, "m"))
            .unwrap()
            .unwrap();
        assert_eq!(copy.version, v);
        assert_eq!(copy.rev, w.rev);
        assert_eq!(copy.body, translate(&set, &body, 3, v));
        assert_eq!(store.get("todo", "m", v).unwrap().unwrap().body, copy.body);
    }
    let report = store.space_report("todo").unwrap();
    assert_eq!(report.primary.records, 1);
    assert_eq!(report.copies.len(), 2);
    assert!(report
        .copies
        .values()
        .all(|s| s.records == 1 && s.bytes > 0));
    assert!(report.total_bytes() > report.primary.bytes);
    // Every write keeps the copies current, deletes included.
    let w2 = store
        .put("todo", "m", 1, &v1("y", true), Some(&w.rev))
        .unwrap();
    assert_eq!(
        store.get("todo", "m", 2).unwrap().unwrap().body,
        json!({"title": "y", "done": true, "important": true})
    );
    store.delete("todo", "m", &w2.rev).unwrap();
    for v in 1..=3 {
        assert_eq!(store.get("todo", "m", v).unwrap(), None);
    }
}

fn seed_v1<B: Backend>(store: &Store<B>, n: usize) -> BTreeMap<String, Value> {
    let mut expect = BTreeMap::new();
    for i in 0..n {
        let id = format!("doc{i:05}");
        let body = v1(&format!("item {i}"), i % 3 == 0);
        store.put("todo", &id, 1, &body, None).unwrap();
        expect.insert(id, body);
    }
    expect
}

fn assert_all_at_v3<B: Backend>(
    store: &Store<B>,
    set: &SchemaSet,
    expect: &BTreeMap<String, Value>,
) {
    let mut seen = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list("todo", 3, after.as_deref(), 64).unwrap();
        for d in &page.docs {
            assert!(seen.insert(d.id.clone()), "{} listed twice", d.id);
            let want = translate(set, &expect[&d.id], 1, 3);
            assert_eq!(d.body, want, "document {}", d.id);
            assert_eq!(stored(store, "todo", &d.id).unwrap().version, 3);
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, expect.keys().cloned().collect::<BTreeSet<_>>());
}

pub fn eager_migration_full_run(h: &impl Harness) {
    let set = todo_set(1, "eager");
    let store = h.open(set.clone());
    let mut expect = seed_v1(&store, 120);
    let gone = store.rev("todo", "doc00007").unwrap().unwrap();
    store.delete("todo", "doc00007", &gone).unwrap();
    expect.remove("doc00007");
    let revs: Vec<Rev> = expect
        .keys()
        .map(|id| store.rev("todo", id).unwrap().unwrap())
        .collect();

    let started = store
        .start_migration(
            "todo",
            3,
            MigrationOptions {
                batch_size: 16,
                on_error: OnError::Stop,
            },
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        (started.from, started.to, started.done, started.total),
        (1, 3, 0, 120)
    );
    assert_eq!(store.migration("todo").unwrap().unwrap().phase, "restore");
    let mut seen = Vec::new();
    let done = store.run_migration("todo", |p| seen.push(*p)).unwrap();
    assert!(seen.len() >= 120 / 16, "one progress report per batch");
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
    assert_eq!(done.done, 120);
    assert_eq!(done.total, 120);

    let state = store.state("todo").unwrap();
    assert_eq!(state.storage_version, 3);
    assert!(state.migration.is_none());
    let backup = state.backup.clone().unwrap();
    assert_eq!(backup.version, 1);
    assert_all_at_v3(&store, &set, &expect);
    // Revs are the writes' revs: clients' expected revs stay valid across the switch.
    for (id, rev) in expect.keys().zip(&revs) {
        assert_eq!(&store.rev("todo", id).unwrap().unwrap(), rev);
    }
    assert_eq!(store.get("todo", "doc00007", 1).unwrap(), None);
    // The backup still holds the v1 originals.
    let old = store
        .backend()
        .read(|t| t.get("todo", backup.space, "doc00001"))
        .unwrap()
        .unwrap();
    assert_eq!((old.version, &old.body), (1, &expect["doc00001"]));
    assert_eq!(store.pending_migration("todo").unwrap(), Some((3, 1)));
}

pub fn migration_resumes_after_a_crash(h: &impl Harness) {
    let set = todo_set(1, "eager");
    let expect;
    {
        let store = h.open(set.clone());
        expect = seed_v1(&store, 100);
        store
            .start_migration(
                "todo",
                3,
                MigrationOptions {
                    batch_size: 10,
                    on_error: OnError::Stop,
                },
            )
            .unwrap();
        for _ in 0..4 {
            assert!(matches!(
                store.step_migration("todo").unwrap(),
                Step::Running(_)
            ));
        }
        // The store is dropped here mid-migration, as a killed process would leave it.
    }
    let store = h.open(set.clone());
    let m = store.state("todo").unwrap().migration.unwrap();
    assert_eq!(
        m.phase,
        Phase::Restore {
            after: Some("doc00039".into())
        }
    );
    assert_eq!(m.done, 40);
    let mut first = None;
    store
        .run_migration("todo", |p| {
            first.get_or_insert(p.done);
        })
        .unwrap();
    assert_eq!(
        first,
        Some(50),
        "resumed from the checkpoint, not from scratch"
    );
    assert_all_at_v3(&store, &set, &expect);
}

pub fn abort_leaves_the_old_data_untouched(h: &impl Harness) {
    let set = todo_set(1, "eager");
    let store = h.open(set.clone());
    let expect = seed_v1(&store, 50);
    let before = store.state("todo").unwrap();
    let revs: Vec<_> = expect
        .keys()
        .map(|id| store.rev("todo", id).unwrap())
        .collect();
    store
        .start_migration(
            "todo",
            3,
            MigrationOptions {
                batch_size: 8,
                on_error: OnError::Stop,
            },
        )
        .unwrap();
    store.step_migration("todo").unwrap();
    store.step_migration("todo").unwrap();
    let target = store.state("todo").unwrap().migration.unwrap().to_space;
    assert_eq!(
        store
            .backend()
            .read(|t| t.space_stats("todo", target))
            .unwrap()
            .records,
        16
    );
    store.abort_migration("todo").unwrap();
    let after = store.state("todo").unwrap();
    assert_eq!(after.storage_version, 1);
    assert_eq!(after.primary, before.primary);
    assert!(after.migration.is_none() && after.backup.is_none() && after.garbage.is_empty());
    assert_eq!(
        store
            .backend()
            .read(|t| t.space_stats("todo", target))
            .unwrap()
            .records,
        0,
        "the partial target is emptied"
    );
    for ((id, body), rev) in expect.iter().zip(&revs) {
        let rec = stored(&store, "todo", id).unwrap();
        assert_eq!(
            (rec.version, &rec.body, Some(&rec.rev)),
            (1, body, rev.as_ref())
        );
    }
    assert!(matches!(
        store.abort_migration("todo"),
        Err(StoreError::NoMigration { .. })
    ));
    // A later migration starts afresh and completes.
    store
        .start_migration("todo", 3, MigrationOptions::default())
        .unwrap();
    store.run_migration("todo", |_| {}).unwrap();
    assert_all_at_v3(&store, &set, &expect);
}

pub fn rollback_after_the_switch_and_drop_backup(h: &impl Harness) {
    let set = todo_set(1, "eager");
    let store = h.open(set.clone());
    let mut expect = seed_v1(&store, 30);
    store
        .start_migration(
            "todo",
            3,
            MigrationOptions {
                batch_size: 7,
                on_error: OnError::Stop,
            },
        )
        .unwrap();
    store.run_migration("todo", |_| {}).unwrap();
    // Writes after the switch, in the new version.
    let rev = store.rev("todo", "doc00002").unwrap();
    store
        .put(
            "todo",
            "doc00002",
            3,
            &json!({"title": "changed", "status": "done", "important": true}),
            rev.as_ref(),
        )
        .unwrap();
    store
        .put(
            "todo",
            "new",
            3,
            &json!({"title": "new", "status": "open", "important": false}),
            None,
        )
        .unwrap();
    let rev = store.rev("todo", "doc00004").unwrap().unwrap();
    store.delete("todo", "doc00004", &rev).unwrap();
    expect.insert("doc00002".into(), v1("changed", true));
    expect.insert("new".into(), v1("new", false));
    expect.remove("doc00004");

    let p = store
        .start_rollback("todo", MigrationOptions::default())
        .unwrap();
    assert_eq!((p.from, p.to), (3, 1));
    store.run_migration("todo", |_| {}).unwrap();
    let state = store.state("todo").unwrap();
    assert_eq!(state.storage_version, 1);
    assert_eq!(state.backup.as_ref().map(|b| b.version), Some(3));
    let page = store.list("todo", 1, None, 1000).unwrap();
    let got: BTreeMap<String, Value> = page.docs.into_iter().map(|d| (d.id, d.body)).collect();
    assert_eq!(got, expect);
    for id in expect.keys() {
        assert_eq!(stored(&store, "todo", id).unwrap().version, 1);
    }

    let backup_space = state.backup.unwrap().space;
    store.drop_backup("todo").unwrap();
    assert_eq!(store.state("todo").unwrap().backup, None);
    assert_eq!(
        store
            .backend()
            .read(|t| t.space_stats("todo", backup_space))
            .unwrap()
            .records,
        0
    );
    assert!(matches!(
        store.start_rollback("todo", MigrationOptions::default()),
        Err(StoreError::NoBackup { .. })
    ));
    assert!(matches!(
        store.drop_backup("todo"),
        Err(StoreError::NoBackup { .. })
    ));
}

pub fn untranslatable_documents_stop_or_are_quarantined(h: &impl Harness) {
    let store = h.open(todo_set(3, "eager"));
    for (id, state) in [("a", "open"), ("b", "weird"), ("c", "closed"), ("d", "odd")] {
        store
            .put("ticket", id, 1, &json!({"state": state}), None)
            .unwrap();
    }
    let stop = MigrationOptions {
        batch_size: 10,
        on_error: OnError::Stop,
    };
    store.start_migration("ticket", 2, stop).unwrap();
    let err = store.run_migration("ticket", |_| {}).unwrap_err();
    match &err {
        StoreError::MigrationStopped {
            id,
            reason,
            from,
            to,
            ..
        } => {
            assert_eq!((id.as_str(), *from, *to), ("b", 1, 2));
            assert!(reason.contains("no mapping"), "{reason}");
        }
        other => panic!("expected MigrationStopped, got {other}"),
    }
    // Stopped, not switched, nothing lost.
    let state = store.state("ticket").unwrap();
    assert_eq!(state.storage_version, 1);
    assert!(state.migration.is_some());
    assert_eq!(
        store.get("ticket", "b", 1).unwrap().unwrap().body,
        json!({"state": "weird"})
    );
    store.abort_migration("ticket").unwrap();

    let quarantine = MigrationOptions {
        batch_size: 10,
        on_error: OnError::Quarantine,
    };
    store.start_migration("ticket", 2, quarantine).unwrap();
    let done = store.run_migration("ticket", |_| {}).unwrap();
    assert_eq!(done.quarantined, 2);
    let q = store.quarantined("ticket").unwrap();
    let ids: Vec<&str> = q.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(ids, ["b", "d"]);
    assert!(q
        .iter()
        .all(|q| q.reason.contains("no mapping") && q.from == 1 && q.to == 2));
    assert_eq!(q[0].record.body, json!({"state": "weird"}));
    // A new migration reports afresh; a set-aside document written again with a translatable
    // value during the migration leaves the quarantine and arrives.
    store.start_rollback("ticket", quarantine).unwrap();
    store.run_migration("ticket", |_| {}).unwrap();
    assert_eq!(store.state("ticket").unwrap().storage_version, 1);
    assert!(store.quarantined("ticket").unwrap().is_empty());
    store.drop_backup("ticket").unwrap();
    store
        .start_migration(
            "ticket",
            2,
            MigrationOptions {
                batch_size: 1,
                on_error: OnError::Quarantine,
            },
        )
        .unwrap();
    for _ in 0..4 {
        store.step_migration("ticket").unwrap();
    }
    assert_eq!(store.quarantined("ticket").unwrap().len(), 2);
    let rev = store.rev("ticket", "b").unwrap();
    store
        .put("ticket", "b", 1, &json!({"state": "closed"}), rev.as_ref())
        .unwrap();
    store.run_migration("ticket", |_| {}).unwrap();
    let ids: Vec<String> = store
        .quarantined("ticket")
        .unwrap()
        .into_iter()
        .map(|q| q.id)
        .collect();
    assert_eq!(ids, ["d"]);
    assert_eq!(
        store.get("ticket", "b", 2).unwrap().unwrap().body,
        json!({"state": "c"})
    );
    // Back to the state the checks below expect.
    store.start_rollback("ticket", quarantine).unwrap();
    store.run_migration("ticket", |_| {}).unwrap();
    store.drop_backup("ticket").unwrap();
    let rev = store.rev("ticket", "b").unwrap();
    store
        .put("ticket", "b", 1, &json!({"state": "weird"}), rev.as_ref())
        .unwrap();
    store.start_migration("ticket", 2, quarantine).unwrap();
    store.run_migration("ticket", |_| {}).unwrap();
    let q = store.quarantined("ticket").unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!(
        store.get("ticket", "a", 2).unwrap().unwrap().body,
        json!({"state": "o"})
    );
    assert_eq!(
        store.get("ticket", "c", 1).unwrap().unwrap().body,
        json!({"state": "closed"})
    );
    // The set-aside documents are not live in the new version, and not lost: the backup and
    // the quarantine both hold them.
    assert_eq!(store.get("ticket", "b", 2).unwrap(), None);
    let backup = store.state("ticket").unwrap().backup.unwrap();
    assert!(store
        .backend()
        .read(|t| t.get("ticket", backup.space, "d"))
        .unwrap()
        .is_some());
}

pub fn conflicting_migrations_are_refused(h: &impl Harness) {
    let store = h.open(todo_set(1, "eager"));
    seed_v1(&store, 3);
    assert!(matches!(
        store.start_migration("todo", 7, MigrationOptions::default()),
        Err(StoreError::UnknownVersion { version: 7, .. })
    ));
    assert!(matches!(
        store.start_migration("todo", 1, MigrationOptions::default()),
        Err(StoreError::AlreadyAtVersion { version: 1, .. })
    ));
    assert!(matches!(
        store.step_migration("todo"),
        Err(StoreError::NoMigration { .. })
    ));
    store
        .start_migration("todo", 2, MigrationOptions::default())
        .unwrap();
    let err = store
        .start_migration("todo", 3, MigrationOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, StoreError::MigrationInFlight { from: 1, to: 2, .. }),
        "{err}"
    );
    assert!(matches!(
        store.start_rollback("todo", MigrationOptions::default()),
        Err(StoreError::MigrationInFlight { .. })
    ));
    store.run_migration("todo", |_| {}).unwrap();
    // The backup of the first migration must be dealt with before another one.
    assert!(matches!(
        store.start_migration("todo", 3, MigrationOptions::default()),
        Err(StoreError::BackupKept { version: 1, .. })
    ));
    store.drop_backup("todo").unwrap();
    store
        .start_migration("todo", 3, MigrationOptions::default())
        .unwrap();
    store.run_migration("todo", |_| {}).unwrap();
    assert_eq!(store.state("todo").unwrap().storage_version, 3);
}

/// A small deterministic generator, so a failure replays.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

pub fn concurrent_writer_and_readers_during_migration<H: Harness>(h: &H)
where
    Store<H::B>: Sync,
{
    let set = todo_set(1, "eager");
    let store = h.open(set.clone());
    let seeded = seed_v1(&store, 300);
    store
        .start_migration(
            "todo",
            3,
            MigrationOptions {
                batch_size: 20,
                on_error: OnError::Stop,
            },
        )
        .unwrap();
    let (expect, reads, done) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut expect: BTreeMap<String, Value> = seeded.clone();
            let mut rng = Lcg(42);
            for i in 0..400 {
                let id = format!("doc{:05}", rng.next(330));
                let rev = store.rev("todo", &id).unwrap();
                if rng.next(10) == 0 {
                    if let Some(rev) = rev {
                        store.delete("todo", &id, &rev).unwrap();
                        expect.remove(&id);
                    }
                    continue;
                }
                let body = v1(&format!("write {i}"), rng.next(2) == 0);
                // Acknowledged writes: the expectation follows exactly what the store accepted.
                store.put("todo", &id, 1, &body, rev.as_ref()).unwrap();
                expect.insert(id, body);
            }
            expect
        });
        let reader = s.spawn(|| {
            let mut rng = Lcg(7);
            let mut reads = 0;
            while store.migration("todo").unwrap().is_some() || reads < 50 {
                let id = format!("doc{:05}", rng.next(330));
                let v = 1 + rng.next(3) as u32;
                if let Some(doc) = store.get("todo", &id, v).unwrap() {
                    set.validate("todo", v, &doc.body).unwrap();
                    reads += 1;
                }
            }
            reads
        });
        let done = store.run_migration("todo", |_| {}).unwrap();
        (writer.join().unwrap(), reader.join().unwrap(), done)
    });
    assert!(reads >= 50);
    // The replay counted the writes it carried over: the writer really ran during the migration.
    assert!(done.total > 300, "{done:?}");
    // Writes that landed after the switch were stored directly in v3: still the translation
    // of the last written value.
    assert_eq!(store.state("todo").unwrap().storage_version, 3);
    assert_all_at_v3(&store, &set, &expect);
    let ids: HashSet<String> = store
        .changes(0, 100_000)
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert!(expect.keys().all(|id| ids.contains(id)));
}

pub fn import_in_bulk(h: &impl Harness) {
    let set = todo_set(3, "eager");
    let store = h.open(set.clone());
    let kept: Rev = "7-0123456789abcdef".parse().unwrap();
    let docs = vec![
        ImportDoc {
            id: "a".into(),
            rev: None,
            body: v1("a", true),
        },
        ImportDoc {
            id: "b".into(),
            rev: Some(kept.clone()),
            body: v1("b", false),
        },
    ];
    let written = store.import("todo", 1, &docs).unwrap();
    assert_eq!(written.len(), 2);
    assert_eq!(written[0].rev.generation(), 1);
    assert_eq!(written[1].rev, kept, "an imported rev is kept as given");
    assert_eq!(written[1].seq, written[0].seq + 1);
    assert_eq!(
        store.get("todo", "a", 3).unwrap().unwrap().body,
        translate(&set, &v1("a", true), 1, 3)
    );
    // Without a rev, an import is the next write of what is stored.
    let again = store
        .import(
            "todo",
            1,
            &[ImportDoc {
                id: "a".into(),
                rev: None,
                body: v1("a2", true),
            }],
        )
        .unwrap();
    assert_eq!(again[0].rev.generation(), 2);
    // One invalid body refuses the whole batch.
    let bad = vec![
        ImportDoc {
            id: "c".into(),
            rev: None,
            body: v1("c", true),
        },
        ImportDoc {
            id: "d".into(),
            rev: None,
            body: json!({"title": 1}),
        },
    ];
    assert!(matches!(
        store.import("todo", 1, &bad),
        Err(StoreError::Invalid { id, .. }) if id == "d"
    ));
    assert_eq!(store.get("todo", "c", 1).unwrap(), None);
    assert_eq!(store.last_seq().unwrap(), 3);
}

/// The PostgreSQL server the tests use, from `DATABASE_URL`.
///
/// Without it, a laptop run skips the PostgreSQL tests and says so on the real stderr (which
/// the test harness does not capture); under CI (`CI` set) the missing URL is a failure, since
/// CI must run them.
pub fn database_url(test: &str) -> Option<String> {
    use std::io::Write;
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Some(url);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "CI must run the PostgreSQL tests, but DATABASE_URL is not set ({test})"
    );
    let _ = writeln!(
        std::io::stderr(),
        "WARNING: DATABASE_URL is not set: PostgreSQL test `{test}` NOT RUN"
    );
    None
}

/// Replicate every leaf of `id` from `from` to `to`, the source reading in `version`.
fn replicate<B1: Backend, B2: Backend>(
    from: &Store<B1>,
    to: &Store<B2>,
    id: &str,
    version: u32,
) -> Vec<Applied> {
    let doc = from.replication_doc("todo", id, version).unwrap().unwrap();
    doc.revisions()
        .into_iter()
        .map(|r| to.apply_replicated("todo", id, r).unwrap())
        .collect()
}

pub fn rev_histories_grow_and_survive_migration_and_reopen(h: &impl Harness) {
    let store = h.open(todo_set(1, "eager"));
    let w1 = store.put("todo", "a", 1, &v1("a", false), None).unwrap();
    assert_eq!(
        stored(&store, "todo", "a").unwrap().history,
        Vec::<Rev>::new()
    );
    let w2 = store
        .put("todo", "a", 1, &v1("a", true), Some(&w1.rev))
        .unwrap();
    let w3 = store
        .set_access("todo", "a", &w2.rev, &json!({"read": ["*"]}))
        .unwrap();
    let w4 = store.delete("todo", "a", &w3.rev).unwrap();
    let w5 = store
        .put("todo", "a", 1, &v1("again", false), None)
        .unwrap();
    let w6 = store
        .import(
            "todo",
            1,
            &[ImportDoc {
                id: "a".into(),
                rev: None,
                body: v1("imported", false),
            }],
        )
        .unwrap()
        .remove(0);
    let expect = vec![
        w5.rev.clone(),
        w4.rev.clone(),
        w3.rev.clone(),
        w2.rev.clone(),
        w1.rev.clone(),
    ];
    let record = stored(&store, "todo", "a").unwrap();
    assert_eq!(record.rev, w6.rev);
    assert_eq!(record.history, expect, "most recent ancestor first");

    store
        .start_migration("todo", 3, MigrationOptions::default())
        .unwrap();
    store.run_migration("todo", |_| {}).unwrap();
    let migrated = stored(&store, "todo", "a").unwrap();
    assert_eq!(migrated.version, 3);
    assert_eq!((&migrated.rev, &migrated.history), (&w6.rev, &expect));
    drop(store);
    let store = h.open(todo_set(3, "eager"));
    assert_eq!(stored(&store, "todo", "a").unwrap().history, expect);
    let doc = store.replication_doc("todo", "a", 1).unwrap().unwrap();
    assert_eq!((doc.rev, doc.history), (w6.rev, expect));
}

pub fn replicated_writes_store_fast_forward_and_are_idempotent(h: &impl Harness) {
    let source = h.open(todo_set(3, "eager"));
    // The target keeps todo at version 1: every body is translated on the way in.
    let target = h.open_peer("target", todo_set(1, "eager"));
    let w1 = source
        .put(
            "todo",
            "x",
            3,
            &json!({"title": "x", "status": "started", "important": true}),
            None,
        )
        .unwrap();
    assert_eq!(replicate(&source, &target, "x", 3), [Applied::Stored]);
    let got = stored(&target, "todo", "x").unwrap();
    assert_eq!(got.rev, w1.rev, "the rev is stored as given");
    assert_eq!(got.version, 1);
    assert_eq!(got.body, json!({"title": "x", "done": false}));

    let w2 = source
        .put(
            "todo",
            "x",
            3,
            &json!({"title": "x", "status": "done", "important": true}),
            Some(&w1.rev),
        )
        .unwrap();
    assert_eq!(replicate(&source, &target, "x", 3), [Applied::FastForward]);
    let got = stored(&target, "todo", "x").unwrap();
    assert_eq!((&got.rev, &got.history), (&w2.rev, &vec![w1.rev.clone()]));
    assert_eq!(got.body, json!({"title": "x", "done": true}));
    // An older rev is known: nothing changes.
    let old = Replicated {
        rev: w1.rev.clone(),
        history: vec![],
        version: 1,
        body: v1("x", false),
        deleted: false,
        access: Value::Null,
        carry: Vec::new(),
    };
    let seq = target.last_seq().unwrap();
    assert_eq!(
        target.apply_replicated("todo", "x", old).unwrap(),
        Applied::AlreadyKnown
    );

    // A batch, twice: the second changes nothing and appends nothing.
    source.put("todo", "y", 1, &v1("y", false), None).unwrap();
    let w = source.put("todo", "z", 1, &v1("z", false), None).unwrap();
    source.delete("todo", "z", &w.rev).unwrap();
    let batch: Vec<ReplicatedDoc> = ["y", "z"]
        .iter()
        .flat_map(|id| {
            let doc = source.replication_doc("todo", id, 2).unwrap().unwrap();
            doc.revisions().into_iter().map(|r| ReplicatedDoc {
                type_name: "todo".into(),
                id: (*id).to_owned(),
                doc: r,
            })
        })
        .collect();
    assert_eq!(
        target.apply_replicated_batch(&batch).unwrap(),
        [Applied::Stored, Applied::Stored]
    );
    assert_eq!(target.last_seq().unwrap(), seq + 2);
    assert_eq!(
        target.apply_replicated_batch(&batch).unwrap(),
        [Applied::AlreadyKnown, Applied::AlreadyKnown]
    );
    assert_eq!(target.last_seq().unwrap(), seq + 2, "the feed did not grow");
    // The delete travelled as a tombstone: no document, a deleted feed entry, the rev kept.
    assert_eq!(target.get("todo", "z", 1).unwrap(), None);
    let tomb = stored(&target, "todo", "z").unwrap();
    assert!(tomb.deleted);
    assert_eq!(tomb.rev, stored(&source, "todo", "z").unwrap().rev);
    assert_eq!(tomb.history, vec![w.rev.clone()]);
    let last = target.changes(seq, 10).unwrap();
    assert_eq!(last.len(), 2);
    assert!(last[1].deleted && last[1].id == "z");

    // A delete of a document the target has: a fast-forward to the tombstone.
    let live = source.rev("todo", "x").unwrap().unwrap();
    source.delete("todo", "x", &live).unwrap();
    assert_eq!(replicate(&source, &target, "x", 1), [Applied::FastForward]);
    assert_eq!(target.get("todo", "x", 3).unwrap(), None);
    assert_eq!(target.changes(seq + 2, 10).unwrap().len(), 1);
}

/// Two nodes that share `id` at one rev, then edit it concurrently (`a` on the first, `b` on
/// the second; `a_again` is a second edit on the first).
fn diverge<B: Backend>(a: &Store<B>, b: &Store<B>, id: &str, on_a: &[Value], on_b: &[Value]) {
    let w = a.put("todo", id, 1, &v1("common", false), None).unwrap();
    assert_eq!(replicate(a, b, id, 1), [Applied::Stored]);
    let mut rev = w.rev.clone();
    for body in on_a {
        rev = a.put("todo", id, 1, body, Some(&rev)).unwrap().rev;
    }
    let mut rev = w.rev;
    for body in on_b {
        if body.is_null() {
            rev = b.delete("todo", id, &rev).unwrap().rev;
        } else {
            rev = b.put("todo", id, 1, body, Some(&rev)).unwrap().rev;
        }
    }
}

pub fn concurrent_edits_conflict_with_the_same_winner_everywhere(h: &impl Harness) {
    let a = h.open(todo_set(3, "eager"));
    let b = h.open_peer("b", todo_set(3, "eager"));
    let c = h.open_peer("c", todo_set(3, "eager"));

    // Same generation: the higher hash wins.
    diverge(&a, &b, "same", &[v1("left", false)], &[v1("right", true)]);
    let ra = a.rev("todo", "same").unwrap().unwrap();
    let rb = b.rev("todo", "same").unwrap().unwrap();
    let (winner, loser) = if ra.hash() > rb.hash() {
        (ra.clone(), rb.clone())
    } else {
        (rb.clone(), ra.clone())
    };
    let seq = a.last_seq().unwrap();
    let expect = vec![Applied::Conflict {
        winner: winner.clone(),
        loser: loser.clone(),
    }];
    assert_eq!(replicate(&b, &a, "same", 2), expect);
    assert_eq!(a.last_seq().unwrap(), seq + 1, "a conflict is a change");
    assert_eq!(
        replicate(&a, &b, "same", 1),
        [
            Applied::Conflict {
                winner: winner.clone(),
                loser: loser.clone()
            },
            Applied::AlreadyKnown
        ]
    );
    // A third node gets the leaves in the other order (loser first, from b's side).
    replicate(&b, &c, "same", 3);
    let ra_rec = stored(&a, "todo", "same").unwrap();
    let rb_rec = stored(&b, "todo", "same").unwrap();
    let rc_rec = stored(&c, "todo", "same").unwrap();
    assert_eq!(ra_rec.rev, winner);
    assert_eq!(ra_rec.conflicts.len(), 1);
    assert_eq!(ra_rec.conflicts[0].rev, loser);
    // Equal but for where each node's feed put them.
    let unsequenced = |r: &mutatis_store::Record| mutatis_store::Record {
        seq: 0,
        ..r.clone()
    };
    assert_eq!(unsequenced(&ra_rec), unsequenced(&rb_rec));
    assert_eq!(unsequenced(&ra_rec), unsequenced(&rc_rec));
    assert_eq!(a.conflicts("todo", "same").unwrap(), ra_rec.conflicts);
    // Both leaves again, in either order: nothing changes.
    let seq = b.last_seq().unwrap();
    assert_eq!(
        replicate(&a, &b, "same", 3),
        [Applied::AlreadyKnown, Applied::AlreadyKnown]
    );
    assert_eq!(b.last_seq().unwrap(), seq);

    // A longer history wins whatever the hashes.
    diverge(
        &a,
        &b,
        "longer",
        &[v1("1", false), v1("2", false)],
        &[v1("zzz", true)],
    );
    let long = a.rev("todo", "longer").unwrap().unwrap();
    replicate(&a, &b, "longer", 1);
    replicate(&b, &a, "longer", 1);
    let (ra_rec, rb_rec) = (
        stored(&a, "todo", "longer").unwrap(),
        stored(&b, "todo", "longer").unwrap(),
    );
    assert_eq!(ra_rec.rev, long);
    assert_eq!(unsequenced(&ra_rec), unsequenced(&rb_rec));

    // A delete loses to a concurrent edit, on both sides.
    diverge(&a, &b, "gone", &[v1("edited", true)], &[Value::Null]);
    let edited = a.rev("todo", "gone").unwrap().unwrap();
    replicate(&a, &b, "gone", 1);
    replicate(&b, &a, "gone", 1);
    for s in [&a, &b] {
        let rec = stored(s, "todo", "gone").unwrap();
        assert_eq!(rec.rev, edited);
        assert!(!rec.deleted);
        assert_eq!(rec.conflicts.len(), 1);
        assert!(rec.conflicts[0].deleted);
    }
    assert_eq!(
        stored(&a, "todo", "gone").map(|r| unsequenced(&r)),
        stored(&b, "todo", "gone").map(|r| unsequenced(&r))
    );
    assert_eq!(
        b.get("todo", "gone", 1).unwrap().unwrap().body,
        v1("edited", true)
    );

    // A local write over a conflicted document keeps the conflict.
    let live = a.rev("todo", "same").unwrap().unwrap();
    let w = a
        .put("todo", "same", 1, &v1("later", false), Some(&live))
        .unwrap();
    let rec = stored(&a, "todo", "same").unwrap();
    assert_eq!((&rec.rev, &rec.history[0]), (&w.rev, &live));
    assert_eq!(rec.conflicts.len(), 1);
    assert_eq!(rec.conflicts[0].rev, loser);
    // And a local delete of the winner hands the document to the live conflict leaf.
    a.delete("todo", "same", &w.rev).unwrap();
    assert_eq!(a.rev("todo", "same").unwrap(), Some(loser.clone()));
    let last = a.changes(a.last_seq().unwrap() - 1, 1).unwrap();
    assert_eq!((&last[0].rev, last[0].deleted), (&loser, false));
}

pub fn conflicts_are_resolved_by_keeping_a_leaf_or_merging(h: &impl Harness) {
    let a = h.open(todo_set(3, "eager"));
    let b = h.open_peer("b", todo_set(3, "eager"));
    let c = h.open_peer("c", todo_set(3, "eager"));

    // Keep the loser.
    diverge(&a, &b, "k", &[v1("left", false)], &[v1("right", true)]);
    replicate(&b, &c, "k", 1);
    replicate(&b, &a, "k", 1);
    replicate(&a, &b, "k", 1);
    let before = stored(&a, "todo", "k").unwrap();
    let (winner, loser) = (before.rev.clone(), before.conflicts[0].rev.clone());
    let loser_body = a
        .replication_doc("todo", "k", 1)
        .unwrap()
        .unwrap()
        .conflicts[0]
        .body
        .clone();
    let seq = a.last_seq().unwrap();
    // A stale winner or a leaf that is not there are refused, and write nothing.
    assert!(matches!(
        a.resolve_conflict("todo", "k", &loser, Resolution::Keep(loser.clone())),
        Err(StoreError::Conflict { .. })
    ));
    let stranger: Rev = "2-00000000000000aa".parse().unwrap();
    assert!(matches!(
        a.resolve_conflict("todo", "k", &winner, Resolution::Keep(stranger)),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(a.last_seq().unwrap(), seq);
    let w = a
        .resolve_conflict("todo", "k", &winner, Resolution::Keep(loser.clone()))
        .unwrap();
    let rec = stored(&a, "todo", "k").unwrap();
    assert_eq!(rec.rev, w.rev);
    assert_eq!(w.rev.generation(), winner.generation() + 1);
    assert_eq!(rec.history[0], winner, "descends from the winner");
    assert!(rec.history.contains(&loser));
    assert!(rec.conflicts.is_empty());
    assert!(a.conflicts("todo", "k").unwrap().is_empty());
    assert_eq!(a.get("todo", "k", 1).unwrap().unwrap().body, loser_body);
    let feed = a.changes(seq, 10).unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!((feed[0].id.as_str(), &feed[0].rev), ("k", &w.rev));
    // The resolution resolves the conflict wherever it goes, and the loser arriving late
    // from a node that never saw the resolution does not reopen it.
    assert_eq!(replicate(&a, &b, "k", 3), [Applied::FastForward]);
    assert_eq!(stored(&a, "todo", "k"), stored(&b, "todo", "k"));
    assert_eq!(replicate(&c, &a, "k", 1), [Applied::AlreadyKnown]);
    assert!(a.conflicts("todo", "k").unwrap().is_empty());

    // Merge.
    diverge(&a, &b, "m", &[v1("left", false)], &[v1("right", true)]);
    replicate(&b, &a, "m", 1);
    let winner = a.rev("todo", "m").unwrap().unwrap();
    let merged = json!({"title": "left and right", "status": "started", "important": true});
    let seq = a.last_seq().unwrap();
    let w = a
        .resolve_conflict(
            "todo",
            "m",
            &winner,
            Resolution::Merge {
                version: 3,
                body: merged.clone(),
            },
        )
        .unwrap();
    assert_eq!(w.seq, seq + 1);
    let rec = stored(&a, "todo", "m").unwrap();
    assert_eq!((&rec.rev, &rec.history[0]), (&w.rev, &winner));
    assert!(rec.conflicts.is_empty());
    assert_eq!(a.get("todo", "m", 3).unwrap().unwrap().body, merged);
    // A merge that fails its schema is refused before anything is written.
    assert!(matches!(
        a.resolve_conflict(
            "todo",
            "m",
            &w.rev,
            Resolution::Merge {
                version: 1,
                body: json!({"title": 3})
            }
        ),
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(a.last_seq().unwrap(), seq + 1);
}

pub fn bad_replicated_input_is_refused_and_nothing_is_written(h: &impl Harness) {
    let store = h.open(todo_set(3, "eager"));
    let r1 = Rev::next(None, &v1("a", false), false);
    let r2 = Rev::next(Some(&r1), &v1("b", false), false);
    let good = Replicated {
        rev: r2.clone(),
        history: vec![r1.clone()],
        version: 1,
        body: v1("b", false),
        deleted: false,
        access: Value::Null,
        carry: Vec::new(),
    };
    let doc = |id: &str, doc: Replicated| ReplicatedDoc {
        type_name: "todo".into(),
        id: id.into(),
        doc,
    };
    // A history entry that is not a rev does not parse at all.
    let history: Result<Vec<Rev>, StoreError> =
        ["1-ab", "one-ab"].iter().map(|s| s.parse()).collect();
    assert!(matches!(history, Err(StoreError::InvalidRev { rev, .. }) if rev == "one-ab"));
    let cases = [
        // A history that names a newer rev than the one it belongs to.
        Replicated {
            history: vec![r2.clone()],
            rev: r1.clone(),
            ..good.clone()
        },
        // Oldest first.
        Replicated {
            history: vec![r1.clone(), Rev::next(Some(&r1), &json!(0), false)],
            rev: Rev::next(Some(&r2), &json!(1), false),
            ..good.clone()
        },
        Replicated {
            body: json!({"title": 1}),
            ..good.clone()
        },
        Replicated {
            version: 9,
            ..good.clone()
        },
    ];
    for (i, bad) in cases.into_iter().enumerate() {
        let err = store
            .apply_replicated_batch(&[doc("ok", good.clone()), doc("bad", bad)])
            .unwrap_err();
        let expected = match i {
            0 | 1 => matches!(err, StoreError::InvalidRev { .. }),
            2 => matches!(&err, StoreError::Invalid { id, version: 1, .. } if id == "bad"),
            _ => matches!(err, StoreError::UnknownVersion { version: 9, .. }),
        };
        assert!(expected, "case {i}: {err}");
    }
    assert_eq!(store.last_seq().unwrap(), 0);
    assert_eq!(stored(&store, "todo", "ok"), None);
    assert_eq!(
        store.apply_replicated("todo", "ok", good).unwrap(),
        Applied::Stored
    );
    assert_eq!(store.last_seq().unwrap(), 1);
}

const PERSON: &str = r#"
type: person
versions:
  1:
    schema:
      type: object
      properties:
        name: {type: string}
        age: {type: integer}
      required: [name, age]
      additionalProperties: false
  2:
    lens:
      - add: {name: email, type: string, default: ""}
  3:
    lens:
      - split: {name: name, into: [first, last], separator: " "}
"#;

/// A person type whose newer versions hold what older ones cannot (an email; a first name
/// with a space in it), stored in `version` with `strategy`, keeping `history` earlier
/// revisions.
pub fn person_set(version: u32, strategy: &str, history: u32) -> Arc<SchemaSet> {
    let settings = format!(
        "name: person-suite
releases:
  - {{name: \"1\", types: {{person: 1}}, status: supported}}
  - {{name: \"2\", types: {{person: 2}}, status: supported}}
  - {{name: \"3\", types: {{person: 3}}, status: current}}
storage:
  person: {{version: {version}, strategy: {strategy}, history: {history}}}
"
    );
    Arc::new(
        SchemaSet::from_sources(vec![
            (PathBuf::from("mutatis.yaml"), settings),
            (PathBuf::from("types/person.yaml"), PERSON.to_owned()),
        ])
        .unwrap(),
    )
}

fn body<B: Backend>(store: &Store<B>, id: &str, version: u32) -> Value {
    store.get("person", id, version).unwrap().unwrap().body
}

fn migrate<B: Backend>(store: &Store<B>, to: u32) {
    if store.state("person").unwrap().backup.is_some() {
        store.drop_backup("person").unwrap();
    }
    store
        .start_migration("person", to, MigrationOptions::default())
        .unwrap();
    store.run_migration("person", |_| {}).unwrap();
    assert_eq!(store.state("person").unwrap().storage_version, to);
}

pub fn writes_in_any_version_read_back_exactly_whatever_the_storage_version(h: &impl Harness) {
    let set = person_set(1, "eager", 10);
    let store = h.open(set.clone());
    let mary3 = json!({"first": "Mary Ann", "last": "Smith", "age": 18, "email": "m@x"});
    let w = store.put("person", "m", 3, &mary3, None).unwrap();
    assert_eq!(body(&store, "m", 3), mary3);
    assert_eq!(
        body(&store, "m", 2),
        json!({"name": "Mary Ann Smith", "age": 18, "email": "m@x"})
    );
    assert_eq!(
        body(&store, "m", 1),
        json!({"name": "Mary Ann Smith", "age": 18})
    );
    // An old writer changes what it sees; nothing it cannot see is lost or re-split.
    let w = store
        .put(
            "person",
            "m",
            1,
            &json!({"name": "Mary Ann Smith", "age": 19}),
            Some(&w.rev),
        )
        .unwrap();
    let mary3 = json!({"first": "Mary Ann", "last": "Smith", "age": 19, "email": "m@x"});
    assert_eq!(body(&store, "m", 3), mary3);
    // A version-2 writer changes the email; version 3 sees it with its own names.
    store
        .put(
            "person",
            "m",
            2,
            &json!({"name": "Mary Ann Smith", "age": 19, "email": "mary@x"}),
            Some(&w.rev),
        )
        .unwrap();
    let mary3 = json!({"first": "Mary Ann", "last": "Smith", "age": 19, "email": "mary@x"});
    assert_eq!(body(&store, "m", 3), mary3);
    // Migrations up and down, and a reopen, change no document.
    let other = json!({"first": "Jo", "last": "Bo", "age": 3, "email": ""});
    store.put("person", "j", 3, &other, None).unwrap();
    for to in [3, 2, 1, 3] {
        migrate(&store, to);
        assert_eq!(body(&store, "m", 3), mary3, "after migrating to {to}");
        assert_eq!(body(&store, "j", 3), other, "after migrating to {to}");
    }
    migrate(&store, 1);
    drop(store);
    let store = h.open(set);
    assert_eq!(body(&store, "m", 3), mary3);
    // A rename of the whole name by an old writer is taken as written.
    let rev = store.rev("person", "m").unwrap();
    store
        .put(
            "person",
            "m",
            1,
            &json!({"name": "Jo Ann", "age": 19}),
            rev.as_ref(),
        )
        .unwrap();
    assert_eq!(
        body(&store, "m", 3),
        json!({"first": "Jo", "last": "Ann", "age": 19, "email": "mary@x"})
    );
    // Imports carry too.
    let imported = json!({"first": "Ann Marie", "last": "Lee", "age": 40, "email": "a@l"});
    store
        .import(
            "person",
            3,
            &[ImportDoc {
                id: "i".into(),
                rev: None,
                body: imported.clone(),
            }],
        )
        .unwrap();
    assert_eq!(body(&store, "i", 3), imported);
    // A document storage holds whole carries nothing.
    let plain = json!({"first": "Al", "last": "Ho", "age": 1, "email": ""});
    store.put("person", "p", 3, &plain, None).unwrap();
    assert!(stored(&store, "person", "p").unwrap().carry.is_empty());
    assert!(!stored(&store, "person", "i").unwrap().carry.is_empty());
}

pub fn multi_copies_read_back_what_was_carried(h: &impl Harness) {
    let store = h.open(person_set(1, "multi", 10));
    let ann = json!({"first": "Ann Marie", "last": "Lee", "age": 40, "email": "a@l"});
    let w = store.put("person", "a", 3, &ann, None).unwrap();
    assert_eq!(body(&store, "a", 3), ann);
    assert_eq!(
        body(&store, "a", 2),
        json!({"name": "Ann Marie Lee", "age": 40, "email": "a@l"})
    );
    store
        .put(
            "person",
            "a",
            1,
            &json!({"name": "Ann Marie Lee", "age": 41}),
            Some(&w.rev),
        )
        .unwrap();
    assert_eq!(
        body(&store, "a", 3),
        json!({"first": "Ann Marie", "last": "Lee", "age": 41, "email": "a@l"})
    );
}

pub fn earlier_revisions_are_readable_while_kept(h: &impl Harness) {
    use mutatis_store::Revision;
    let store = h.open(person_set(3, "eager", 2));
    let mut revs = Vec::new();
    let mut rev = None;
    for age in 1..=4 {
        let w = store
            .put(
                "person",
                "r",
                3,
                &json!({"first": "R", "last": "S", "age": age, "email": ""}),
                rev.as_ref(),
            )
            .unwrap();
        rev = Some(w.rev.clone());
        revs.push(w.rev);
    }
    let age_at = |rev: &Rev, version: u32| match store
        .revision("person", "r", rev, version)
        .unwrap()
        .unwrap()
        .revision
    {
        Revision::Found(d) => {
            assert_eq!(&d.rev, rev);
            Some(d.body["age"].clone())
        }
        other => {
            assert_eq!(other, Revision::NotKept, "{rev}");
            None
        }
    };
    // The current one and the last two before it; the first was pushed out.
    assert_eq!(age_at(&revs[3], 3), Some(json!(4)));
    assert_eq!(
        age_at(&revs[2], 1),
        Some(json!(3)),
        "in another version too"
    );
    assert_eq!(age_at(&revs[1], 3), Some(json!(2)));
    assert_eq!(age_at(&revs[0], 3), None);
    let stranger = Rev::next(None, &json!("x"), false);
    assert_eq!(
        store
            .revision("person", "r", &stranger, 3)
            .unwrap()
            .unwrap()
            .revision,
        Revision::Unknown
    );
    assert!(store
        .revision("person", "nobody", &stranger, 3)
        .unwrap()
        .is_none());
    // A delete: the tombstone is a revision, and the last body stays readable.
    let d = store.delete("person", "r", &revs[3]).unwrap();
    assert!(matches!(
        store
            .revision("person", "r", &d.rev, 3)
            .unwrap()
            .unwrap()
            .revision,
        Revision::Deleted { .. }
    ));
    assert_eq!(age_at(&revs[3], 3), Some(json!(4)));
    // Kept bodies survive a migration and a reopen; the history setting is read each time.
    migrate(&store, 1);
    assert_eq!(age_at(&revs[2], 3), Some(json!(3)));
}

pub fn the_backup_is_readable_until_dropped(h: &impl Harness) {
    let store = h.open(person_set(1, "eager", 10));
    let w = store
        .put(
            "person",
            "b",
            1,
            &json!({"name": "Old Name", "age": 5}),
            None,
        )
        .unwrap();
    assert!(matches!(
        store.get_backup("person", "b", 1),
        Err(StoreError::NoBackup { .. })
    ));
    migrate(&store, 3);
    store
        .put(
            "person",
            "b",
            3,
            &json!({"first": "New", "last": "Name", "age": 6, "email": ""}),
            Some(&w.rev),
        )
        .unwrap();
    // The backup holds the document as it was at the switch, readable in any version.
    assert_eq!(
        store.get_backup("person", "b", 3).unwrap().unwrap().body,
        json!({"first": "Old", "last": "Name", "age": 5, "email": ""})
    );
    assert_eq!(
        store.get_backup("person", "b", 1).unwrap().unwrap().body,
        json!({"name": "Old Name", "age": 5})
    );
    assert!(store.get_backup("person", "nobody", 1).unwrap().is_none());
    store.drop_backup("person").unwrap();
    assert!(matches!(
        store.get_backup("person", "b", 1),
        Err(StoreError::NoBackup { .. })
    ));
}

pub fn a_bad_replicated_document_is_refused_alone(h: &impl Harness) {
    use mutatis_store::SourceContext;
    let store = h.open(todo_set(3, "eager"));
    let good = |title: &str| {
        let rev = Rev::next(None, &v1(title, false), false);
        Replicated {
            rev,
            history: Vec::new(),
            version: 1,
            body: v1(title, false),
            deleted: false,
            access: Value::Null,
            carry: Vec::new(),
        }
    };
    // A rev whose generation cannot grow (as a hostile peer sends it: read leniently off
    // the wire, judged when applied).
    let poisoned: Rev = serde_json::from_str("\"18446744073709551615-abcdef0123456789\"").unwrap();
    let docs = [
        ReplicatedDoc {
            type_name: "todo".into(),
            id: "before".into(),
            doc: good("a"),
        },
        ReplicatedDoc {
            type_name: "todo".into(),
            id: "poison".into(),
            doc: Replicated {
                rev: poisoned,
                ..good("p")
            },
        },
        ReplicatedDoc {
            type_name: "todo".into(),
            id: "bad-body".into(),
            doc: Replicated {
                body: json!({"title": 1}),
                ..good("x")
            },
        },
        ReplicatedDoc {
            type_name: "nosuch".into(),
            id: "n".into(),
            doc: good("n"),
        },
        ReplicatedDoc {
            type_name: "todo".into(),
            id: "after".into(),
            doc: good("b"),
        },
    ];
    let out = store
        .apply_replicated_from(
            SourceContext::default(),
            &docs,
            Some(("cp", &json!({"seq": 5}))),
        )
        .unwrap();
    let applied: Vec<&Applied> = out.iter().map(|o| &o.applied).collect();
    assert_eq!(
        applied,
        [
            &Applied::Stored,
            &Applied::Refused,
            &Applied::Refused,
            &Applied::Refused,
            &Applied::Stored
        ]
    );
    assert!(out[1].lost[0].contains("too high"), "{:?}", out[1].lost);
    assert!(stored(&store, "todo", "poison").is_none());
    assert!(stored(&store, "todo", "after").is_some());
    assert_eq!(store.setting("cp").unwrap(), Some(json!({"seq": 5})));
}

/// A list of what a caller may see pages past what it may not (and past tombstones), more
/// than a scan chunk of them included: the pages, and where they end, are those of a store
/// holding the visible documents alone, so `after=` probes between them find nothing.
pub fn a_visible_list_pages_past_what_it_skips(h: &impl Harness) {
    let store = h.open(todo_set(1, "lazy"));
    let shown = json!({"show": true});
    let hidden: Vec<ImportDoc> = (0..LIST_SCAN_CHUNK + 100)
        .map(|i| ImportDoc {
            id: format!("b{i:05}"),
            rev: None,
            body: v1("hidden", false),
        })
        .collect();
    store.import("todo", 1, &hidden).unwrap();
    for id in ["a", "m", "z"] {
        store
            .put_with_access("todo", id, 1, &v1(id, false), None, Some(&shown))
            .unwrap();
    }
    let m = store.get("todo", "m", 1).unwrap().unwrap().rev;
    store.delete("todo", "m", &m).unwrap();
    let visible = |access: &Value| access == &json!({"show": true});
    let page = |after: Option<&str>, limit: usize| {
        let p = store
            .list_visible("todo", 1, after, limit, &visible)
            .unwrap();
        let ids: Vec<String> = p.docs.iter().map(|d| d.id.clone()).collect();
        (ids, p.next)
    };
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(page(None, 1), (vec!["a".to_owned()], some("a")));
    // Across every hidden record and the tombstone, in more than one scan chunk.
    assert_eq!(
        page(some("a").as_deref(), 1),
        (vec!["z".to_owned()], some("z"))
    );
    for probe in ["b", "b00500", "b01099", "l", "m", "n"] {
        assert_eq!(
            page(Some(probe), 1),
            (vec!["z".to_owned()], some("z")),
            "{probe}"
        );
    }
    assert_eq!(page(Some("z"), 1), (vec![], None));
    assert_eq!(
        page(None, 2),
        (vec!["a".to_owned(), "z".to_owned()], some("z"))
    );
    assert_eq!(page(None, 3), (vec!["a".to_owned(), "z".to_owned()], None));
    // Everything visible: the same pages as `list`.
    let all = store.list_visible("todo", 1, None, 5, &|_| true).unwrap();
    assert_eq!(all.docs.len(), 5);
    assert_eq!(all.next.as_deref(), Some("b00003"));
}

/// A resolution among the leaves its caller may see: a leaf it may not see cannot be kept
/// (refused as a rev that is no leaf), is not ended, and leaves no trace in the resolution
/// (its rev is not in the history, its generation does not count); a caller who sees every
/// leaf ends them all.
pub fn a_resolution_ends_only_the_leaves_its_caller_may_see(h: &impl Harness) {
    let store = h.open(todo_set(3, "eager"));
    let secret = json!({"read": ["alice"]});
    let leaf = |rev: &str, title: &str, deleted: bool, access: &Value| ReplicatedDoc {
        type_name: "todo".into(),
        id: "d".into(),
        doc: Replicated {
            rev: rev.parse().unwrap(),
            history: Vec::new(),
            version: 1,
            body: if deleted {
                Value::Null
            } else {
                v1(title, false)
            },
            deleted,
            access: access.clone(),
            carry: Vec::new(),
        },
    };
    let (open, hidden, hidden_delete): (Rev, Rev, Rev) = (
        "3-0000000000000033".parse().unwrap(),
        "2-0000000000000022".parse().unwrap(),
        "4-0000000000000044".parse().unwrap(),
    );
    store
        .apply_replicated_batch(&[
            leaf(&open.to_string(), "open", false, &Value::Null),
            leaf(&hidden.to_string(), "secret", false, &secret),
            leaf(&hidden_delete.to_string(), "", true, &secret),
        ])
        .unwrap();
    assert_eq!(stored(&store, "todo", "d").unwrap().rev, open);
    let visible = |access: &Value| access.is_null();
    let seq = store.last_seq().unwrap();
    for rev in [&hidden, &hidden_delete] {
        assert!(
            matches!(
                store.resolve_conflict_among(
                    "todo",
                    "d",
                    &open,
                    Resolution::Keep(rev.clone()),
                    &visible
                ),
                Err(StoreError::Conflict { .. })
            ),
            "{rev} was kept"
        );
    }
    assert_eq!(store.last_seq().unwrap(), seq, "a refused resolution wrote");
    let merged = json!({"title": "merged", "status": "open", "important": false});
    let w = store
        .resolve_conflict_among(
            "todo",
            "d",
            &open,
            Resolution::Merge {
                version: 3,
                body: merged.clone(),
            },
            &visible,
        )
        .unwrap();
    // It counts on from the winner, not from the hidden delete's generation.
    assert_eq!(w.rev.generation(), open.generation() + 1);
    let rec = stored(&store, "todo", "d").unwrap();
    assert_eq!(rec.rev, w.rev);
    assert_eq!(rec.history, vec![open.clone()]);
    let left: Vec<&Rev> = rec.conflicts.iter().map(|l| &l.rev).collect();
    assert_eq!(left, [&hidden, &hidden_delete], "the hidden leaves stay");
    assert_eq!(store.get("todo", "d", 3).unwrap().unwrap().body, merged);
    // Whoever sees every leaf ends them all.
    let w = store
        .resolve_conflict("todo", "d", &w.rev, Resolution::Keep(w.rev.clone()))
        .unwrap();
    let rec = stored(&store, "todo", "d").unwrap();
    assert_eq!(rec.rev, w.rev);
    assert!(rec.conflicts.is_empty(), "{:?}", rec.conflicts);
    assert!(rec.history.contains(&hidden) && rec.history.contains(&hidden_delete));
}

pub fn the_declared_storage_is_reconciled(h: &impl Harness) {
    use mutatis_store::StorageAction;
    let opts = MigrationOptions::default();
    // Stored eager at 1, as the first deploy declared.
    let store = h.open(todo_set(1, "eager"));
    for i in 0..30 {
        store
            .put(
                "todo",
                &format!("d{i:02}"),
                1,
                &v1(&format!("t{i}"), i % 2 == 0),
                None,
            )
            .unwrap();
    }
    assert_eq!(store.storage_plan("todo").unwrap(), []);
    assert_eq!(store.reconcile_storage("todo", opts).unwrap(), []);
    drop(store);

    // The next deploy declares 3: a migration starts, and a second call finds it under way.
    let store = h.open(todo_set(3, "eager"));
    assert_eq!(
        store.reconcile_storage("todo", opts).unwrap(),
        [StorageAction::Migrate { from: 1, to: 3 }]
    );
    assert_eq!(
        store.storage_plan("todo").unwrap(),
        [StorageAction::Resume { from: 1, to: 3 }]
    );
    store.run_migration("todo", |_| {}).unwrap();
    assert_eq!(store.storage_plan("todo").unwrap(), []);
    drop(store);

    // Declaring 2 with the backup of 1 kept cannot be done without dropping it: refused,
    // naming the way out, and nothing changes.
    let store = h.open(todo_set(2, "eager"));
    let err = store.reconcile_storage("todo", opts).unwrap_err();
    assert!(
        matches!(&err, StoreError::StorageMismatch { declared: 2, stored: 3, reason, .. } if reason.contains("drop-backup")),
        "{err}"
    );
    assert_eq!(store.state("todo").unwrap().storage_version, 3);
    drop(store);

    // Declaring the backup's version rolls back onto it.
    let store = h.open(todo_set(1, "eager"));
    assert_eq!(
        store.reconcile_storage("todo", opts).unwrap(),
        [StorageAction::Rollback { from: 3, to: 1 }]
    );
    store.run_migration("todo", |_| {}).unwrap();
    assert_eq!(store.state("todo").unwrap().storage_version, 1);
    store.drop_backup("todo").unwrap();
    drop(store);

    // Lazy at 2: the storage version moves at once, documents stay until written.
    let store = h.open(todo_set(2, "lazy"));
    assert_eq!(
        store.reconcile_storage("todo", opts).unwrap(),
        [
            StorageAction::SetStrategy {
                from: mutatis_schema::Strategy::Eager,
                to: mutatis_schema::Strategy::Lazy
            },
            StorageAction::SetVersion { from: 1, to: 2 }
        ]
    );
    assert_eq!(stored(&store, "todo", "d00").unwrap().version, 1);
    let rev = store.rev("todo", "d00").unwrap();
    store
        .put("todo", "d00", 1, &v1("written", true), rev.as_ref())
        .unwrap();
    assert_eq!(
        stored(&store, "todo", "d00").unwrap().version,
        2,
        "upgraded on write"
    );
    drop(store);

    // Multi at 2: a copy per other served version, filled in the background.
    let store = h.open(todo_set(2, "multi"));
    let actions = store.reconcile_storage("todo", opts).unwrap();
    assert!(
        actions.contains(&StorageAction::Copies {
            added: vec![1, 3],
            removed: vec![]
        }),
        "{actions:?}"
    );
    assert!(store.filling("todo").unwrap());
    assert_eq!(store.run_fill("todo", |_| {}).unwrap(), 30);
    assert!(!store.filling("todo").unwrap());
    let state = store.state("todo").unwrap();
    for (&v, &space) in &state.copies {
        for i in [1, 29] {
            let id = format!("d{i:02}");
            let copy = store
                .backend()
                .read(|t| t.get("todo", space, &id))
                .unwrap()
                .unwrap_or_else(|| panic!("{id} has no copy in version {v}"));
            assert_eq!(copy.version, v);
            assert_eq!(store.get("todo", &id, v).unwrap().unwrap().body, copy.body);
        }
    }
    drop(store);

    // Back to eager: the copies go.
    let store = h.open(todo_set(2, "eager"));
    let actions = store.reconcile_storage("todo", opts).unwrap();
    assert!(
        actions.contains(&StorageAction::Copies {
            added: vec![],
            removed: vec![1, 3]
        }),
        "{actions:?}"
    );
    assert!(store.state("todo").unwrap().copies.is_empty());
}
