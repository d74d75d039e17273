//! `Store::get_raw` (a document read as JSON bytes, translated with `translate_bytes`) against
//! `Store::get` (the `Value` path, serialised): on the examples' schema sets, for documents
//! written in every version and read in every version, the bytes are the same, and so are
//! the rev, the access data and the errors. `carry_props.rs` checks the same across random
//! lens chains and carried bodies.

use std::path::Path;
use std::sync::Arc;

use mutatis_lens::calendar::date_params;
use mutatis_schema::SchemaSet;
use mutatis_store::{MigrationOptions, RedbBackend, RedbOptions, Store, StoreError};
use serde_json::{json, Value};

fn store(example: &str) -> (tempfile::TempDir, Store<RedbBackend>) {
    let dir = tempfile::tempdir().unwrap();
    let set = SchemaSet::load(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(example),
    )
    .unwrap();
    let backend = RedbBackend::open(dir.path().join("store.redb"), RedbOptions::default()).unwrap();
    let store = Store::new(backend, Arc::new(set)).with_params(date_params(2026, 6, 1));
    (dir, store)
}

/// Both reads of `id` in `version` agree: the same bytes (those of the `Value` serialised),
/// rev and access data, or the same error. Returns the body, if any.
fn same_both_ways(store: &Store<RedbBackend>, ty: &str, id: &str, version: u32) -> Option<Value> {
    let value = store.get(ty, id, version);
    let raw = store.get_raw(ty, id, version);
    match (value, raw) {
        (Ok(doc), Ok(raw)) => {
            let expected = doc
                .as_ref()
                .map(|d| (&d.rev, serde_json::to_vec(&d.body).unwrap(), &d.access));
            let got = raw.as_ref().map(|r| (&r.rev, r.body.clone(), &r.access));
            assert_eq!(
                got.as_ref()
                    .map(|(r, b, a)| (*r, String::from_utf8_lossy(b), *a)),
                expected
                    .as_ref()
                    .map(|(r, b, a)| (*r, String::from_utf8_lossy(b), *a)),
                "{ty}/{id} in version {version}"
            );
            if let Some(raw) = &raw {
                assert_eq!(raw.version, version);
            }
            doc.map(|d| d.body)
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), b.to_string(), "{ty}/{id} in {version}");
            None
        }
        (a, b) => panic!("{ty}/{id} in version {version}: get {a:?}, get_raw {b:?}"),
    }
}

/// Student documents in each version: names with spaces, escapes and non-ASCII text, and the
/// numbers at the edges (floats that are integers, 64-bit limits).
fn students_in(version: u32) -> Vec<Value> {
    let names = [
        "Ada Lovelace",
        "Mary Ann Evans",
        "Zoë \"Zed\" Ökonom",
        "Single",
        "tab\there \\ \u{1F600}",
    ];
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let age = [json!(36), json!(0), json!(36.0), json!(-4), json!(120)][i].clone();
        let year = [
            json!(1990),
            json!(1990.0),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(-1),
        ][i]
            .clone();
        let (first, last) = name.split_once(' ').unwrap_or((name, ""));
        out.push(match version {
            1 => json!({"name": name}),
            2 => json!({"name": name, "age": age}),
            3 => json!({"fistAndLastName": name, "age": age}),
            4 => json!({"firstName": first, "lastName": last, "age": age}),
            _ => json!({"firstName": first, "lastName": last, "yearOfBirth": year}),
        });
    }
    out
}

#[test]
fn students_written_in_every_version_read_the_same_both_ways_in_every_version() {
    let (_dir, store) = store("students");
    let mut ids = Vec::new();
    for written in 1..=5 {
        for (i, doc) in students_in(written).into_iter().enumerate() {
            let id = format!("w{written}-{i}");
            match store.put("Student", &id, written, &doc, None) {
                Ok(_) => ids.push(id),
                // A body no lens can bring to storage is refused whole: nothing to read.
                Err(StoreError::Translate { .. }) => {}
                Err(e) => panic!("{id}: {e}"),
            }
        }
    }
    assert!(ids.len() >= 20, "only {} documents written", ids.len());
    let mut translated = 0;
    for id in &ids {
        for version in 1..=5 {
            if same_both_ways(&store, "Student", id, version).is_some() {
                translated += 1;
            }
        }
    }
    assert!(translated >= 80, "only {translated} reads gave a body");
    // A deleted document is gone both ways; an unknown id too.
    let rev = store.rev("Student", &ids[0]).unwrap().unwrap();
    store.delete("Student", &ids[0], &rev).unwrap();
    assert!(same_both_ways(&store, "Student", &ids[0], 3).is_none());
    assert!(same_both_ways(&store, "Student", "nobody", 5).is_none());
}

#[test]
fn access_data_and_revs_come_with_the_raw_body() {
    let (_dir, store) = store("students");
    let doc = json!({"firstName": "Ada", "lastName": "Lovelace", "yearOfBirth": 1990});
    let access = json!({"read": ["bob"]});
    store
        .put_with_access("Student", "ada", 5, &doc, None, Some(&access))
        .unwrap();
    let raw = store.get_raw("Student", "ada", 3).unwrap().unwrap();
    assert_eq!(raw.access, access);
    assert_eq!(
        serde_json::from_slice::<Value>(&raw.body).unwrap(),
        json!({"fistAndLastName": "Ada Lovelace", "age": 36})
    );
    same_both_ways(&store, "Student", "ada", 3);
    same_both_ways(&store, "Student", "ada", 5);
}

#[test]
fn todo_items_read_the_same_both_ways_across_a_migration() {
    let (_dir, store) = store("todo");
    let lines = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/todo/data/todo-v1.jsonl"),
    )
    .unwrap();
    let mut ids = Vec::new();
    for line in lines.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line).unwrap();
        let id = entry["id"].as_str().unwrap().to_owned();
        store.put("todo", &id, 1, &entry["doc"], None).unwrap();
        ids.push(id);
    }
    let check = |store: &Store<RedbBackend>| {
        for id in &ids {
            for version in 1..=3 {
                assert!(same_both_ways(store, "todo", id, version).is_some());
            }
        }
    };
    check(&store);
    // Written in v3 with a status v2's boolean cannot hold: the v2 and v1 reads derive it.
    let rev = store.rev("todo", &ids[0]).unwrap();
    let v3 = store.get("todo", &ids[0], 3).unwrap().unwrap().body;
    let mut started = v3.clone();
    if let Some(status) = started.get_mut("status") {
        *status = json!("started");
    }
    if store
        .put("todo", &ids[0], 3, &started, rev.as_ref())
        .is_ok()
    {
        check(&store);
    }
    // Migrated down and up again: every document is read from another stored version.
    for to in [2, 3] {
        if store.state("todo").unwrap().backup.is_some() {
            store.drop_backup("todo").unwrap();
        }
        store
            .start_migration("todo", to, MigrationOptions::default())
            .unwrap();
        store.run_migration("todo", |_| {}).unwrap();
        check(&store);
    }
}
