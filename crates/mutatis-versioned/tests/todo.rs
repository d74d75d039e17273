//! todo@1..3 (examples/todo) as structs: they match, migrate between every pair, and obey the
//! lens laws through the many-to-one status conversion.

mod common;

use common::example;
use mutatis_versioned::{schemars::JsonSchema, DriftDirection, Params, Versioned, VersionedError};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Versioned)]
#[versioned(type = "todo", version = 1)]
pub struct Todo1 {
    pub title: String,
    pub done: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Versioned)]
#[versioned(type = "todo", version = 2)]
pub struct Todo2 {
    pub title: String,
    pub done: bool,
    pub important: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Versioned)]
#[versioned(type = "todo", version = 3)]
pub struct Todo3 {
    pub title: String,
    /// `open`, `started` or `done` by convention; the schema says only "a string".
    pub status: String,
    pub important: bool,
}

#[test]
fn every_version_matches_its_struct() {
    let set = example("todo");
    mutatis_versioned::assert_matches::<Todo1>(&set);
    mutatis_versioned::assert_matches::<Todo2>(&set);
    mutatis_versioned::assert_matches::<Todo3>(&set);
}

/// Version 2 reading a missing `important` as `false`: it still matches (it reads every
/// version-2 document, and always writes the field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Versioned)]
#[versioned(type = "todo", version = 2)]
struct Todo2Defaulted {
    title: String,
    done: bool,
    #[serde(default)]
    important: bool,
}

/// Version 2 skipping `important` when false: it can write a document without it, which the
/// version requires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Versioned)]
#[versioned(type = "todo", version = 2)]
struct Todo2Skipping {
    title: String,
    done: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    important: bool,
}

#[test]
fn defaults_and_skipped_fields() {
    let set = example("todo");
    mutatis_versioned::assert_matches::<Todo2Defaulted>(&set);
    let report = mutatis_versioned::check::<Todo2Skipping>(&set);
    let fields: Vec<_> = report
        .drifts
        .iter()
        .map(|d| (d.direction, d.field.as_str()))
        .collect();
    assert_eq!(fields, [(DriftDirection::Writes, "/important")], "{report}");
}

#[test]
fn every_pair_round_trips() {
    let set = example("todo");
    let p = Params::new();
    for done in [false, true] {
        let t1 = Todo1 {
            title: "milk".into(),
            done,
        };
        let t2 = Todo2 {
            title: "milk".into(),
            done,
            important: false,
        };
        let status = if done { "done" } else { "open" };
        let t3 = Todo3 {
            title: "milk".into(),
            status: status.into(),
            important: false,
        };
        assert_eq!(t1.migrate_to::<Todo1>(&set, &p).unwrap(), t1);
        assert_eq!(t1.migrate_to::<Todo2>(&set, &p).unwrap(), t2);
        assert_eq!(t1.migrate_to::<Todo3>(&set, &p).unwrap(), t3);
        assert_eq!(t2.migrate_to::<Todo1>(&set, &p).unwrap(), t1);
        assert_eq!(t2.migrate_to::<Todo3>(&set, &p).unwrap(), t3);
        assert_eq!(t3.migrate_to::<Todo1>(&set, &p).unwrap(), t1);
        assert_eq!(t3.migrate_to::<Todo2>(&set, &p).unwrap(), t2);
        assert_eq!(t3.migrate_to::<Todo3>(&set, &p).unwrap(), t3);
    }
}

#[test]
fn down_then_up_onto_the_original_keeps_what_the_lower_version_lacks() {
    let set = example("todo");
    let p = Params::new();
    let t3 = Todo3 {
        title: "tea".into(),
        status: "started".into(),
        important: true,
    };
    let t1: Todo1 = t3.migrate_to(&set, &p).unwrap();
    assert_eq!(
        t1,
        Todo1 {
            title: "tea".into(),
            done: false
        }
    );
    // Plain migrate_to loses `started` and `important`…
    assert_eq!(
        t1.migrate_to::<Todo3>(&set, &p).unwrap(),
        Todo3 {
            title: "tea".into(),
            status: "open".into(),
            important: false
        }
    );
    // …migrate_onto keeps them.
    assert_eq!(t1.migrate_onto(&t3, &set, &p).unwrap(), t3);
    // An edit made in version 1 still comes through.
    let finished = Todo1 { done: true, ..t1 };
    assert_eq!(
        finished.migrate_onto(&t3, &set, &p).unwrap(),
        Todo3 {
            status: "done".into(),
            ..t3
        }
    );
}

#[test]
fn from_any_reads_every_version() {
    let set = example("todo");
    let p = Params::new();
    let v1 = serde_json::json!({"title": "a", "done": true});
    let v2 = serde_json::json!({"title": "a", "done": true, "important": true});
    assert_eq!(Todo3::from_any(v1, 1, &set, &p).unwrap().status, "done");
    assert!(Todo3::from_any(v2.clone(), 2, &set, &p).unwrap().important);
    // The version a document claims is checked: a v2 document is not a v1 document.
    let err = Todo3::from_any(v2, 1, &set, &p).unwrap_err();
    assert!(
        matches!(&err, VersionedError::Invalid { version: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("todo@1"), "{err}");
}

fn todo3() -> impl Strategy<Value = Todo3> {
    (
        "[a-z ]{0,12}",
        prop_oneof![
            Just("open".to_owned()),
            Just("started".to_owned()),
            Just("done".to_owned()),
            "[a-z]{1,6}"
        ],
        any::<bool>(),
    )
        .prop_map(|(title, status, important)| Todo3 {
            title,
            status,
            important,
        })
}

fn todo1() -> impl Strategy<Value = Todo1> {
    ("[a-z ]{0,12}", any::<bool>()).prop_map(|(title, done)| Todo1 { title, done })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn get_put(s in todo3()) {
        let set = example("todo");
        let p = Params::new();
        let v: Todo1 = s.migrate_to(&set, &p).unwrap();
        prop_assert_eq!(&v.migrate_onto(&s, &set, &p).unwrap(), &s);
        let v: Todo2 = s.migrate_to(&set, &p).unwrap();
        prop_assert_eq!(&v.migrate_onto(&s, &set, &p).unwrap(), &s);
    }

    #[test]
    fn put_get(v in todo1(), s in todo3()) {
        let set = example("todo");
        let p = Params::new();
        let put: Todo3 = v.migrate_onto(&s, &set, &p).unwrap();
        prop_assert_eq!(&put.migrate_to::<Todo1>(&set, &p).unwrap(), &v);
    }
}
