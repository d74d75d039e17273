//! Lens loss analysis and the manifest's format marker, against the examples and the engine.
//!
//! The analysis is checked against what the engine actually does: every value the analysis
//! says is lost really fails to come back, and a direction it calls lossless brings sample
//! documents back exactly.

use std::path::PathBuf;

use mutatis_lens::{Direction, Params};
use mutatis_schema::{ErrorKind, LossKind, SchemaSet};
use serde_json::{json, Value};

fn example(name: &str) -> SchemaSet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    SchemaSet::load(&dir).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn round_trip(set: &SchemaSet, ty: &str, from: u32, to: u32, doc: &Value, p: &Params) -> Value {
    let there = set.plan(ty, from, to).unwrap().translate(doc, p).unwrap();
    set.plan(ty, to, from)
        .unwrap()
        .translate(&there, p)
        .unwrap()
}

#[test]
fn todo_status_loses_started_on_the_way_back_and_the_engine_agrees() {
    let set = example("todo");
    let p = Params::new();
    let report = set.loss("todo", 3, 2).unwrap();
    assert_eq!(report.steps.len(), 1);
    let step = &report.steps[0];
    assert_eq!(
        (step.from, step.to, step.direction),
        (3, 2, Direction::Backward)
    );
    let [loss] = &step.losses[..] else {
        panic!("{:?}", step.losses)
    };
    assert_eq!(loss.kind, LossKind::Values);
    assert_eq!(loss.pointer, "/properties/status");
    assert_eq!(loss.op, "/1");
    assert_eq!(loss.values, vec![json!("started")]);
    assert!(loss.other_values);

    // The engine: `started` does not come back, `done` and `open` do.
    let doc = |s: &str| json!({"title": "t", "status": s, "important": true});
    assert_eq!(
        round_trip(&set, "todo", 3, 2, &doc("started"), &p)["status"],
        json!("open")
    );
    for kept in ["done", "open"] {
        assert_eq!(round_trip(&set, "todo", 3, 2, &doc(kept), &p), doc(kept));
    }

    // Forward, nothing is lost; and the engine brings both booleans back.
    assert!(set.loss("todo", 2, 3).unwrap().is_lossless());
    for done in [true, false] {
        let d = json!({"title": "t", "done": done, "important": false});
        assert_eq!(round_trip(&set, "todo", 2, 3, &d, &p), d);
    }
}

#[test]
fn a_multi_step_path_reports_each_lens_with_pointers_into_its_own_source() {
    let set = example("todo");
    let report = set.loss("todo", 3, 1).unwrap();
    let steps: Vec<(u32, u32)> = report.steps.iter().map(|s| (s.from, s.to)).collect();
    assert_eq!(steps, [(3, 2), (2, 1)]);
    let all: Vec<(u32, &str, LossKind)> = report
        .losses()
        .map(|(s, l)| (s.from, l.pointer.as_str(), l.kind))
        .collect();
    assert_eq!(
        all,
        [
            (3, "/properties/status", LossKind::Values),
            (2, "/properties/important", LossKind::Field)
        ]
    );
    let (_, important) = report.losses().nth(1).unwrap();
    assert_eq!(important.default, Some(json!(false)));
    assert!(set.loss("todo", 1, 3).unwrap().is_lossless());
    assert!(set.loss("todo", 2, 2).unwrap().steps.is_empty());
    assert!(set.loss("todo", 1, 9).is_err());
}

#[test]
fn students_join_loses_a_first_name_with_a_space() {
    let set = example("students");
    let back = set.loss("Student", 4, 3).unwrap();
    let losses: Vec<_> = back.losses().map(|(_, l)| l).collect();
    assert_eq!(losses.len(), 1, "{losses:?}");
    assert_eq!(losses[0].pointer, "/properties/firstName");
    // The engine: "Mary Ann" + "Smith" comes back split at the first space.
    let p = Params::new();
    let doc = json!({"firstName": "Mary Ann", "lastName": "Smith", "age": 12});
    let again = round_trip(&set, "Student", 4, 3, &doc, &p);
    assert_eq!(again["firstName"], json!("Mary"));

    // Version 5's `value` expression has a derived inverse: exact both ways.
    assert!(set.loss("Student", 4, 5).unwrap().is_lossless());
    assert!(set.loss("Student", 5, 4).unwrap().is_lossless());
    // Renames lose nothing.
    assert!(set.loss("Student", 2, 3).unwrap().is_lossless());
    assert!(set.loss("Student", 3, 2).unwrap().is_lossless());
}

#[test]
fn lens_analysis_says_whether_schemas_are_carried_exactly() {
    let set = example("todo");
    assert_eq!(set.lens_analysis("todo", 1).unwrap(), None);
    let a = set.lens_analysis("todo", 2).unwrap().unwrap();
    assert!(a.exact && a.reverse_exact, "{a:?}");
    assert_eq!((a.from, a.to), (1, 2));
    assert!(a.losses(Direction::Forward).is_empty());
    assert_eq!(a.losses(Direction::Backward)[0].path, "/important");
    // Back from 3, `done` gets the converted default that 2 never declared.
    let a = set.lens_analysis("todo", 3).unwrap().unwrap();
    assert!(a.exact);
    assert!(!a.reverse_exact);
    assert_eq!(a.reverse_differences, ["/properties/done/default"]);
    assert!(set.lens_analysis("nope", 1).is_err());
}

#[test]
fn the_manifest_carries_the_analysis_and_marker() {
    let set = example("todo");
    let m = set.manifest();
    assert_eq!(m["mutatisManifest"], json!(1));
    assert!(m.get("manifestVersion").is_none());
    assert!(m["types"]["todo"]["versions"]["1"]
        .get("analysis")
        .is_none());
    let a = &m["types"]["todo"]["versions"]["3"]["analysis"];
    assert_eq!(a["exact"], json!(true));
    assert_eq!(a["reverseExact"], json!(false));
    assert_eq!(a["loss"]["forward"], json!([]));
    assert_eq!(
        a["loss"]["backward"][0],
        json!({
            "kind": "values", "pointer": "/properties/status", "path": "/status", "op": "/1",
            "opName": "convert",
            "detail": a["loss"]["backward"][0]["detail"],
            "values": ["started"], "otherValues": true
        })
    );
    let v2 = &m["types"]["todo"]["versions"]["2"]["analysis"]["loss"]["backward"][0];
    assert_eq!(v2["kind"], json!("field"));
    assert_eq!(v2["default"], json!(false));
}

#[test]
fn the_analysis_is_informative_on_read() {
    let set = example("students");
    let mut m = set.manifest();
    // Another engine's (or a newer one's) analysis does not change what this reader computes.
    m["types"]["Student"]["versions"]["4"]["analysis"] = json!({"loss": "whatever", "new": 1});
    let back = SchemaSet::from_manifest(&m).unwrap();
    assert_eq!(back.manifest(), set.manifest());
    // But it must be a map.
    m["types"]["Student"]["versions"]["4"]["analysis"] = json!([1]);
    let err = SchemaSet::from_manifest(&m).unwrap_err();
    assert_eq!(
        err.pointer(),
        Some("/types/Student/versions/4/analysis"),
        "{err}"
    );
}

#[test]
fn a_newer_manifest_with_unknown_fields_is_refused_naming_each() {
    let mut m = example("todo").manifest();
    m["mutatisManifest"] = json!(2);
    m["types"]["todo"]["versions"]["2"]["encryption"] = json!({"alg": "x"});
    m["replicationHints"] = json!([]);
    m["releases"][0]["channel"] = json!("beta");
    let err = SchemaSet::from_manifest(&m).unwrap_err();
    let ErrorKind::NewerManifest {
        found,
        known,
        fields,
    } = err.kind()
    else {
        panic!("{err:?}")
    };
    assert_eq!((*found, *known), (2, 1));
    let named: Vec<(&str, &str)> = fields
        .iter()
        .map(|(p, k)| (p.as_str(), k.as_str()))
        .collect();
    assert_eq!(
        named,
        [
            ("/replicationHints", "replicationHints"),
            ("/types/todo/versions/2/encryption", "encryption"),
            ("/releases/0/channel", "channel"),
        ]
    );
    assert_eq!(err.pointer(), Some("/replicationHints"));
    let text = err.to_string();
    assert!(
        text.contains("newer mutatis")
            && text.contains("`encryption` at /types/todo/versions/2/encryption"),
        "{text}"
    );
}

#[test]
fn this_format_is_strict_and_the_marker_is_required() {
    let good = example("todo").manifest();
    // The current format with an unknown key: the usual unknown-key error, with its pointer.
    let mut m = good.clone();
    m["types"]["todo"]["versions"]["2"]["encryption"] = json!(true);
    let err = SchemaSet::from_manifest(&m).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::UnknownKey { .. }),
        "{err:?}"
    );
    assert_eq!(err.pointer(), Some("/types/todo/versions/2/encryption"));

    let mut m = good.clone();
    m.as_object_mut().unwrap().remove("mutatisManifest");
    let err = SchemaSet::from_manifest(&m).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::ManifestFormat { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("mutatisManifest"), "{err}");

    for bad in [json!("1"), json!(-1), json!(1.5)] {
        let mut m = good.clone();
        m["mutatisManifest"] = bad;
        let err = SchemaSet::from_manifest(&m).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::ManifestFormat { .. }),
            "{err:?}"
        );
    }
}

#[test]
fn every_lossless_direction_of_every_example_brings_samples_back() {
    // Sample documents per example type and version (the lowest), translated to every other
    // version; wherever the analysis of the path says lossless, the round trip is exact.
    let p: Params = [("referenceYear".to_owned(), json!(2025))]
        .into_iter()
        .collect();
    let samples = [
        ("todo", "todo", 1, json!({"title": "milk", "done": true})),
        ("students", "Student", 1, json!({"name": "Ada Lovelace"})),
    ];
    for (example_name, ty, from, doc) in samples {
        let set = example(example_name);
        for to in set.versions(ty).unwrap() {
            let report = set.loss(ty, from, to).unwrap();
            if report.is_lossless() {
                assert_eq!(
                    round_trip(&set, ty, from, to, &doc, &p),
                    doc,
                    "{ty}@{from} -> {to} is said lossless"
                );
            }
        }
    }
}
