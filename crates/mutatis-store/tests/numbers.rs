//! Numbers through the store, on the students example (`Student@5` keeps `yearOfBirth`;
//! `Student@3` reads `age` = referenceYear − yearOfBirth through a CEL `convert`): what one
//! version accepts, every other version reads, whichever way an integer was written; and the
//! revs of ordinary numbers are what they always were.

use std::path::Path;
use std::sync::Arc;

use mutatis_lens::calendar::date_params;
use mutatis_schema::SchemaSet;
use mutatis_store::{RedbBackend, RedbOptions, Rev, Store};
use serde_json::{json, Value};

fn students() -> (tempfile::TempDir, Store<RedbBackend>) {
    let dir = tempfile::tempdir().unwrap();
    let set =
        SchemaSet::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/students"))
            .unwrap();
    let backend = RedbBackend::open(dir.path().join("store.redb"), RedbOptions::default()).unwrap();
    let store = Store::new(backend, Arc::new(set)).with_params(date_params(2026, 6, 1));
    (dir, store)
}

fn body(store: &Store<RedbBackend>, id: &str, version: u32) -> Value {
    store.get("Student", id, version).unwrap().unwrap().body
}

#[test]
fn an_integer_written_as_a_float_is_read_in_every_version() {
    let (_dir, store) = students();
    // JSON Schema calls 1990.0 an integer, so `Student@5` accepts it; an embedding program
    // (or an older node) may hand the store such a `Value`.
    let doc = json!({"firstName": "Ada", "lastName": "Lovelace", "yearOfBirth": 1990.0});
    store.put("Student", "ada", 5, &doc, None).unwrap();
    for (version, field, value) in [
        (5, "yearOfBirth", json!(1990.0)),
        (4, "age", json!(36)),
        (3, "age", json!(36)),
    ] {
        assert_eq!(
            body(&store, "ada", version)[field],
            value,
            "Student@{version}"
        );
    }
    // Written back at release 3 with its age unchanged, the stored year is kept as it was.
    let rev = store.rev("Student", "ada").unwrap().unwrap();
    let v3 = body(&store, "ada", 3);
    store.put("Student", "ada", 3, &v3, Some(&rev)).unwrap();
    assert_eq!(body(&store, "ada", 5), doc);
    // And a release-3 write of `36.0` is the age 36.
    let rev = store.rev("Student", "ada").unwrap().unwrap();
    let older = json!({"fistAndLastName": "Ada Lovelace", "age": 36.0});
    store.put("Student", "ada", 3, &older, Some(&rev)).unwrap();
    assert_eq!(body(&store, "ada", 5)["yearOfBirth"], json!(1990));
}

#[test]
fn integers_at_the_edges_of_64_bits_are_stored_exactly() {
    let (_dir, store) = students();
    for (id, year) in [
        ("max", json!(i64::MAX)),
        ("min", json!(i64::MIN)),
        ("umax", json!(u64::MAX)),
    ] {
        let doc = json!({"firstName": "A", "lastName": "B", "yearOfBirth": year});
        store.put("Student", id, 5, &doc, None).unwrap();
        assert_eq!(body(&store, id, 5), doc, "{id}");
        // Release 3 computes 2026 − year in int64: exact, or a clean error when it overflows
        // (never a rounded age).
        match store.get("Student", id, 3) {
            Ok(Some(d)) => assert_eq!(
                d.body["age"].as_i64().map(i128::from),
                year.as_i64().map(|y| 2026 - i128::from(y)),
                "{id}"
            ),
            Ok(None) => panic!("{id} vanished"),
            Err(e) => assert!(e.to_string().contains("yearOfBirth"), "{id}: {e}"),
        }
    }
}

#[test]
fn revs_of_ordinary_numbers_are_unchanged() {
    // The rev hashes the canonical body: numbers as serde_json writes them, as before exact
    // numbers. Stored revs of existing data therefore stay valid, and nodes of different
    // builds agree on them.
    let (_dir, store) = students();
    let doc = json!({"firstName": "A", "lastName": "B", "yearOfBirth": 1990});
    let w = store.put("Student", "a", 5, &doc, None).unwrap();
    assert_eq!(w.rev, Rev::next(None, &doc, false));
    let body = json!({"i": 7, "n": -3, "f": 0.1, "e": 1.5e300, "u": u64::MAX, "w": 2.0});
    let rev = Rev::next(None, &body, false);
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(br#"L{"e":1.5e+300,"f":0.1,"i":7,"n":-3,"u":18446744073709551615,"w":2.0}"#);
    let expect: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(rev.hash(), expect);
}
