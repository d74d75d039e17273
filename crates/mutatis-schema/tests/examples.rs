//! The example schema sets in /examples: each loads, every sample document travels through
//! every version and back, and every translation is valid in the version it lands in.

use std::path::PathBuf;

use mutatis_lens::Params;
use mutatis_schema::{ErrorKind, ReleaseStatus, SchemaSet, Storage, Strategy};
use serde_json::{json, Value};

fn example(name: &str) -> SchemaSet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    SchemaSet::load(&dir).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn params(pairs: &[(&str, Value)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// Translate `doc` (in `from`) to every version of the type, check each result against its
/// version's schema, and return them by version.
fn everywhere(
    set: &SchemaSet,
    ty: &str,
    from: u32,
    doc: &Value,
    params: &Params,
) -> Vec<(u32, Value)> {
    set.validate(ty, from, doc)
        .unwrap_or_else(|e| panic!("{ty}@{from} sample is invalid: {e:?}"));
    set.versions(ty)
        .unwrap()
        .into_iter()
        .map(|to| {
            let out = set
                .plan(ty, from, to)
                .unwrap()
                .translate(doc, params)
                .unwrap_or_else(|e| panic!("{ty}@{from} -> {to}: {e}"));
            set.validate(ty, to, &out)
                .unwrap_or_else(|e| panic!("{ty}@{from} -> {to} gave {out}, invalid: {e:?}"));
            (to, out)
        })
        .collect()
}

/// Every translation of `doc` comes back to `doc` exactly (the path loses nothing).
fn assert_lossless(set: &SchemaSet, ty: &str, from: u32, doc: &Value, params: &Params) {
    for (to, there) in everywhere(set, ty, from, doc, params) {
        let back = set
            .plan(ty, to, from)
            .unwrap()
            .translate(&there, params)
            .unwrap();
        assert_eq!(&back, doc, "{ty}@{from} -> {to} -> {from} via {there}");
    }
}

/// Writing any version's translation back onto the stored document restores it exactly
/// (`put(get(s), s) == s`), lossy path or not: an old writer erases nothing it could not see.
fn assert_conserved(set: &SchemaSet, ty: &str, from: u32, doc: &Value, params: &Params) {
    for (to, there) in everywhere(set, ty, from, doc, params) {
        let written = set
            .plan(ty, to, from)
            .unwrap()
            .translate_onto(&there, doc, params)
            .unwrap();
        assert_eq!(
            &written, doc,
            "{ty}@{from} -> {to} written back onto the original"
        );
    }
}

// ------------------------------------------------------------------------------------- todo

#[test]
fn todo_loads_with_its_releases_and_storage() {
    let set = example("todo");
    assert_eq!(set.name(), "todo-app");
    assert_eq!(set.versions("todo").unwrap(), [1, 2, 3]);
    assert_eq!(set.current().name, "5");
    assert_eq!(set.default_release().name, "5");
    assert_eq!(set.oldest_supported().name, "4");
    let r4 = set.resolve_release("4").unwrap();
    assert_eq!(r4.status, ReleaseStatus::Deprecated);
    assert_eq!(r4.sunset.as_deref(), Some("2027-03-01"));
    assert_eq!(set.release_version("5", "todo").unwrap(), 3);
    let err = set.resolve_release("3").unwrap_err();
    assert_eq!(
        err.kind(),
        &ErrorKind::UnsupportedRelease {
            name: "3".into(),
            oldest_supported: Some("4".into())
        }
    );
    assert_eq!(
        set.supported_versions("todo")
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(
        set.storage("todo").unwrap(),
        Storage::new(3, Strategy::Eager)
    );
    // Version 3's schema is written out in the type file, and matched the derived one.
    assert!(set.version("todo", 3).unwrap().is_schema_written());
    assert!(!set.version("todo", 2).unwrap().is_schema_written());
}

#[test]
fn todo_documents_go_up_and_come_back() {
    let set = example("todo");
    let p = Params::new();
    for doc in [
        json!({"title": "milk", "done": true}),
        json!({"title": "eggs", "done": false}),
    ] {
        assert_lossless(&set, "todo", 1, &doc, &p);
        assert_conserved(&set, "todo", 1, &doc, &p);
    }
    let v3 = set
        .plan("todo", 1, 3)
        .unwrap()
        .translate(&json!({"title": "milk", "done": true}), &p)
        .unwrap();
    assert_eq!(
        v3,
        json!({"title": "milk", "status": "done", "important": false})
    );
}

#[test]
fn todo_old_writers_keep_what_they_cannot_see() {
    let set = example("todo");
    let p = Params::new();
    let stored = json!({"title": "paint", "status": "started", "important": true});
    // Read down to version 1: `started` is not done, and importance is not visible.
    let v1 = set
        .plan("todo", 3, 1)
        .unwrap()
        .translate(&stored, &p)
        .unwrap();
    assert_eq!(v1, json!({"title": "paint", "done": false}));
    // Plain translation back up loses the status and the flag (the path is lossy)…
    let naive = set.plan("todo", 1, 3).unwrap().translate(&v1, &p).unwrap();
    assert_ne!(naive, stored);
    // …but writing it back onto the stored document keeps both.
    assert_conserved(&set, "todo", 3, &stored, &p);
    assert_conserved(
        &set,
        "todo",
        3,
        &json!({"title": "dust", "status": "open", "important": false}),
        &p,
    );
    // An edit from an old client changes only what it can see.
    let up = set.plan("todo", 1, 3).unwrap();
    let renamed = up
        .translate_onto(
            &json!({"title": "paint the shed", "done": false}),
            &stored,
            &p,
        )
        .unwrap();
    assert_eq!(
        renamed,
        json!({"title": "paint the shed", "status": "started", "important": true})
    );
    let finished = up
        .translate_onto(&json!({"title": "paint", "done": true}), &stored, &p)
        .unwrap();
    assert_eq!(
        finished,
        json!({"title": "paint", "status": "done", "important": true})
    );
    assert!(set.validate("todo", 3, &finished).is_ok());
}

// --------------------------------------------------------------------------------- students

#[test]
fn students_releases_follow_the_policy() {
    let set = example("students");
    for (name, status) in [
        ("1", ReleaseStatus::Unsupported),
        ("2", ReleaseStatus::Unsupported),
        ("3", ReleaseStatus::Deprecated),
        ("4", ReleaseStatus::Deprecated),
        ("5", ReleaseStatus::Current),
    ] {
        assert_eq!(set.release(name).unwrap().status, status, "release {name}");
    }
    assert!(set.release("3").unwrap().sunset.is_some());
    assert_eq!(set.oldest_supported().name, "3");
    assert!(matches!(
        set.resolve_release("2").unwrap_err().kind(),
        ErrorKind::UnsupportedRelease { oldest_supported: Some(o), .. } if o == "3"
    ));
    assert_eq!(
        set.version_status("Student", 4),
        Some(ReleaseStatus::Deprecated)
    );
    assert_eq!(
        set.version_status("Student", 1),
        Some(ReleaseStatus::Unsupported)
    );
}

#[test]
fn students_round_trip_through_all_versions() {
    let set = example("students");
    let p = params(&[("referenceYear", json!(2025))]);
    // From version 1: every version can carry a plain name, so nothing is lost.
    for doc in [
        json!({"name": "Ada Lovelace"}),
        json!({"name": "Cher"}),
        json!({"name": "Jean Claude Van Damme"}),
    ] {
        assert_lossless(&set, "Student", 1, &doc, &p);
    }
    // From version 3 up, the age (or year of birth) survives every version that has it;
    // versions 1 and 2 are on the way for the full round trip, so check conservation there.
    let v3 = json!({"fistAndLastName": "Grace Hopper", "age": 119});
    let all = everywhere(&set, "Student", 3, &v3, &p);
    assert_eq!(
        all[4],
        (
            5,
            json!({"firstName": "Grace", "lastName": "Hopper", "yearOfBirth": 1906})
        )
    );
    assert_eq!(all[0], (1, json!({"name": "Grace Hopper"})));
    for to in [2, 4, 5] {
        let there = set
            .plan("Student", 3, to)
            .unwrap()
            .translate(&v3, &p)
            .unwrap();
        let back = set
            .plan("Student", to, 3)
            .unwrap()
            .translate(&there, &p)
            .unwrap();
        assert_eq!(back, v3, "Student@3 -> {to} -> 3");
    }
    assert_conserved(&set, "Student", 3, &v3, &p);
    let v5 = json!({"firstName": "Grace", "lastName": "Hopper", "yearOfBirth": 1906});
    assert_conserved(&set, "Student", 5, &v5, &p);
}

#[test]
fn students_year_comes_from_the_parameter_not_a_clock() {
    let set = example("students");
    let v4 = json!({"firstName": "Alan", "lastName": "Turing", "age": 41});
    let up = set.plan("Student", 4, 5).unwrap();
    let in_1953 = up
        .translate(&v4, &params(&[("referenceYear", json!(1953))]))
        .unwrap();
    assert_eq!(in_1953["yearOfBirth"], json!(1912));
    let in_1960 = up
        .translate(&v4, &params(&[("referenceYear", json!(1960))]))
        .unwrap();
    assert_eq!(in_1960["yearOfBirth"], json!(1919));
    // Without the parameter the expression cannot run, and the error names the lens.
    let err = up.translate(&v4, &Params::new()).unwrap_err();
    assert!(err.to_string().contains("Student@5"), "{err}");
}

// ---------------------------------------------------------------------------------- dataone

fn sysmeta_v1() -> Value {
    json!({
        "serialVersion": 3,
        "identifier": "urn:uuid:6b3f7a4e-2c55-4d54-9c0b-6f9d1c7a8e21",
        "formatId": "eml://ecoinformatics.org/eml-2.1.1",
        "size": 20375,
        "checksum": {"algorithm": "SHA-256", "value": "4d7a2f0c1e8b9a3d5c6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4"},
        "submitter": "http://orcid.org/0000-0002-1825-0097",
        "rightsHolder": "CN=knb-data-admins,DC=dataone,DC=org",
        "accessPolicy": {"allow": [
            {"subject": ["public"], "permission": ["read"]},
            {"subject": ["CN=knb-data-admins,DC=dataone,DC=org"], "permission": ["write", "changePermission"]}
        ]},
        "replicationPolicy": {"replicationAllowed": true, "numberReplicas": 2,
                              "preferredMemberNode": ["urn:node:mnUCSB1"], "blockedMemberNode": []},
        "obsoletes": "urn:uuid:0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9",
        "archived": false,
        "dateUploaded": "2015-06-11T17:12:05.000+00:00",
        "dateSysMetadataModified": "2016-02-01T09:30:00.000+00:00",
        "originMemberNode": "urn:node:KNB",
        "authoritativeMemberNode": "urn:node:KNB",
        "replica": [{"replicaMemberNode": "urn:node:mnUCSB1", "replicationStatus": "completed",
                     "replicaVerified": "2015-06-12T01:00:00.000+00:00"}]
    })
}

#[test]
fn dataone_v1_records_read_as_v2_without_invented_values() {
    let set = example("dataone");
    let p = Params::new();
    let v1 = sysmeta_v1();
    let v2 = set
        .plan("SystemMetadata", 1, 2)
        .unwrap()
        .translate(&v1, &p)
        .unwrap();
    // No seriesId, mediaType or fileName appears from nowhere.
    assert_eq!(v2, v1);
    assert!(set.validate("SystemMetadata", 2, &v2).is_ok());
    assert_lossless(&set, "SystemMetadata", 1, &v1, &p);
    assert_eq!(
        set.storage("SystemMetadata").unwrap().strategy,
        Strategy::Multi
    );
}

#[test]
fn dataone_v2_fields_survive_a_v1_write_back() {
    let set = example("dataone");
    let p = Params::new();
    let mut v2 = sysmeta_v1();
    v2["seriesId"] = json!("doi:10.5063/F1QN64NZ");
    v2["mediaType"] =
        json!({"name": "text/csv", "property": [{"name": "delimiter", "value": ","}]});
    v2["fileName"] = json!("plots-2015.csv");
    assert!(set.validate("SystemMetadata", 2, &v2).is_ok());
    // A v1 node sees the record without the v2 fields; the v1 schema refuses them.
    let v1 = set
        .plan("SystemMetadata", 2, 1)
        .unwrap()
        .translate(&v2, &p)
        .unwrap();
    assert_eq!(v1, sysmeta_v1());
    assert!(set.validate("SystemMetadata", 1, &v2).is_err());
    assert_conserved(&set, "SystemMetadata", 2, &v2, &p);
    // The v1 node archives the object; the v2 fields are kept on the write back.
    let mut edited = v1.clone();
    edited["archived"] = json!(true);
    let written = set
        .plan("SystemMetadata", 1, 2)
        .unwrap()
        .translate_onto(&edited, &v2, &p)
        .unwrap();
    let mut expected = v2.clone();
    expected["archived"] = json!(true);
    assert_eq!(written, expected);
}

// ------------------------------------------------------------------------------------- syft

#[test]
fn syft_node_metadata_renames_the_version_range() {
    let set = example("syft");
    let p = Params::new();
    let v1 = json!({
        "name": "canada-domain",
        "id": "5a4f2c7e9b3d4e1fa2b6c8d0e1f3a5b7",
        "verify_key": "4c1d9a6e0b7f3e2d8a5c9b1f0e7d3a6c2b8f4e1d9a0c7b5e3f2d1a8c6b4e9f0",
        "highest_object_version": 2,
        "lowest_object_version": 1,
        "syft_version": "0.8.1",
        "node_type": "domain",
        "deployed_on": "11/02/2023",
        "organization": "OpenMined",
        "on_board": true,
        "description": "A domain node for the census data",
        "signup_enabled": false,
        "admin_email": "info@openmined.org",
        "node_side_type": "high",
        "show_warnings": true
    });
    let v2 = set
        .plan("NodeMetadata", 1, 2)
        .unwrap()
        .translate(&v1, &p)
        .unwrap();
    assert_eq!(v2["highest_version"], json!(2));
    assert_eq!(v2["lowest_version"], json!(1));
    assert!(v2.get("highest_object_version").is_none());
    assert_lossless(&set, "NodeMetadata", 1, &v1, &p);
    assert_lossless(&set, "NodeMetadata", 2, &v2, &p);
    // The lens came from a Cambria lens file.
    let def = set.version("NodeMetadata", 2).unwrap();
    assert_eq!(
        def.lens_file(),
        Some(PathBuf::from("lenses/NodeMetadataV1-to-V2.lens.yml").as_path())
    );
    assert_eq!(def.lens().map(|l| l.ops().len()), Some(2));
}

// --------------------------------------------------------------------------------- manifests

#[test]
fn every_example_survives_its_manifest() {
    for name in ["todo", "students", "dataone", "syft"] {
        let set = example(name);
        let manifest = set.manifest();
        let back = SchemaSet::from_manifest(&manifest).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back.manifest(), manifest, "{name}: manifest is stable");
        assert_eq!(back.name(), set.name());
        assert_eq!(back.releases(), set.releases(), "{name}");
        assert_eq!(back.default_release(), set.default_release(), "{name}");
        for ty in set.types() {
            let versions = set.versions(ty.name()).unwrap();
            assert_eq!(back.versions(ty.name()).unwrap(), versions, "{name}");
            assert_eq!(
                back.storage(ty.name()).unwrap(),
                set.storage(ty.name()).unwrap()
            );
            for &v in &versions {
                assert_eq!(
                    back.schema(ty.name(), v).unwrap(),
                    set.schema(ty.name(), v).unwrap(),
                    "{name}: {}@{v}",
                    ty.name()
                );
                for &w in &versions {
                    let a = set.plan(ty.name(), v, w).unwrap();
                    let b = back.plan(ty.name(), v, w).unwrap();
                    assert_eq!(a.ops(), b.ops(), "{name}: {}@{v} -> {w}", ty.name());
                }
            }
        }
    }
}
