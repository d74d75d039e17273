//! The deployment diff: verdicts per release and type, field changes, modes and policies.

use std::path::PathBuf;

use mutatis_schema::compat::CompatMode;
use mutatis_schema::deploy::{self, DeployError, FieldChangeKind, Policy, Verdict};
use mutatis_schema::SchemaSet;
use serde_json::json;

/// A schema set with one type `item` whose versions are given as YAML (the body under
/// `versions:`), and releases as YAML list items.
fn set(versions: &str, releases: &str) -> SchemaSet {
    let files = vec![
        (
            PathBuf::from("mutatis.yaml"),
            format!("name: app\nreleases:\n{releases}"),
        ),
        (
            PathBuf::from("types/item.yaml"),
            format!("type: item\nversions:\n{versions}"),
        ),
    ];
    SchemaSet::from_sources(files).unwrap_or_else(|e| panic!("fixture: {e}"))
}

const V1: &str = "  1:
    schema:
      type: object
      properties:
        title: {type: string}
        done: {type: boolean}
        note: {type: string}
      required: [title, done]
      additionalProperties: false
";

fn deployed() -> SchemaSet {
    set(
        &format!("{V1}  2:\n    lens: [{{rename: {{source: note, destination: comment}}}}]\n"),
        "  - {name: r1, types: {item: 1}, status: deprecated}\n  - {name: r2, types: {item: 2}, status: current}\n",
    )
}

fn with_v3(lens: &str) -> SchemaSet {
    set(
        &format!(
            "{V1}  2:\n    lens: [{{rename: {{source: note, destination: comment}}}}]\n  3:\n    lens: {lens}\n"
        ),
        "  - {name: r1, types: {item: 1}, status: deprecated}\n  - {name: r2, types: {item: 2}, status: supported}\n  - {name: r3, types: {item: 3}, status: current}\n",
    )
}

fn verdicts(d: &deploy::DeployDiff) -> Vec<(String, u32, &'static str)> {
    d.releases
        .iter()
        .flat_map(|r| {
            r.types
                .iter()
                .map(move |t| (r.name.clone(), t.version, t.verdict.as_str()))
        })
        .collect()
}

#[test]
fn the_same_set_is_supported_everywhere_and_compatible() {
    let d = deploy::diff(&deployed(), &deployed(), &Policy::default()).unwrap();
    assert!(!d.is_breaking(), "{:?}", d.problems());
    assert_eq!(
        verdicts(&d),
        [("r1".into(), 1, "supported"), ("r2".into(), 2, "supported")]
    );
    assert!(d.types[0].checks.is_empty());
    assert_eq!(d.to_json()["outcome"], json!("compatible"));
}

#[test]
fn a_new_required_field_breaks_backward_and_the_policy_decides() {
    let local = with_v3("[{add: {name: owner, type: string}}]");
    let d = deploy::diff(&local, &deployed(), &Policy::default()).unwrap();
    assert_eq!(verdicts(&d)[2], ("r3".into(), 3, "new"));
    let t = &d.types[0];
    let [check] = &t.checks[..] else {
        panic!("{:?}", t.checks)
    };
    assert_eq!((check.from, check.to), (2, 3));
    assert!(!check.result.backward && !check.compatible);
    let [change] = &check.changes[..] else {
        panic!("{:?}", check.changes)
    };
    assert_eq!(change.kind, FieldChangeKind::Added);
    assert_eq!(change.path, "/owner");
    assert!(change.required && change.breaks_backward && change.breaking);
    assert!(d.is_breaking());
    assert!(d.problems()[0].contains("item@2 → item@3 is not BACKWARD compatible"));

    // NONE: nothing is required of the type.
    let none = Policy {
        default: CompatMode::None,
        ..Policy::default()
    };
    let d = deploy::diff(&local, &deployed(), &none).unwrap();
    assert!(!d.is_breaking(), "{:?}", d.problems());
    assert!(!d.types[0].checks[0].changes[0].breaking);
}

#[test]
fn an_optional_field_is_backward_but_not_forward_compatible_on_a_closed_object() {
    let local = with_v3("[{add: {name: owner, type: string, required: false}}]");
    let d = deploy::diff(&local, &deployed(), &Policy::default()).unwrap();
    assert!(!d.is_breaking(), "{:?}", d.problems());
    let forward = Policy::from_yaml_str("types: {item: FORWARD}").unwrap();
    let d = deploy::diff(&local, &deployed(), &forward).unwrap();
    assert!(d.is_breaking());
    let change = &d.types[0].checks[0].changes[0];
    assert!(change.breaks_forward && !change.breaks_backward && change.breaking);
}

#[test]
fn transitive_modes_check_every_lower_version() {
    let local = with_v3("[{add: {name: owner, type: string, required: false}}]");
    let policy = Policy::from_yaml_str("default: BACKWARD_TRANSITIVE").unwrap();
    let d = deploy::diff(&local, &deployed(), &policy).unwrap();
    let pairs: Vec<(u32, u32)> = d.types[0].checks.iter().map(|c| (c.from, c.to)).collect();
    assert_eq!(pairs, [(1, 3), (2, 3)]);
    // item@1 has `note`, item@3 calls it `comment`: closed objects, so v1 documents do not
    // validate under v3.
    assert!(!d.types[0].checks[0].compatible);
    assert!(d.types[0].checks[1].compatible);
}

#[test]
fn lens_renames_are_named_and_other_matches_are_probable() {
    let local = with_v3("[{rename: {source: title, destination: headline}}]");
    let d = deploy::diff(&local, &deployed(), &Policy::default()).unwrap();
    let changes = &d.types[0].checks[0].changes;
    assert_eq!(
        changes[0].kind,
        FieldChangeKind::Renamed {
            from: "/title".into(),
            probably: false
        }
    );
    assert_eq!(changes[0].path, "/headline");
    // Schema-wise a rename of a required field breaks backward compatibility.
    assert!(changes[0].breaks_backward);

    // Changed in place without a lens: the same schema under a new name is "probably renamed".
    let edited = set(
        &V1.replace("note: {type: string}", "remark: {type: string}"),
        "  - {name: r1, types: {item: 1}, status: current}\n",
    );
    let base = set(V1, "  - {name: r1, types: {item: 1}, status: current}\n");
    let d = deploy::diff(&edited, &base, &Policy::default()).unwrap();
    let Verdict::IncorrectlySupported(m) = &d.types[0].versions[0].verdict else {
        panic!("{:?}", d.types[0].versions[0].verdict)
    };
    assert_eq!(m.differences, ["/properties/remark", "/properties/note"]);
    assert_eq!(
        m.changes[0].kind,
        FieldChangeKind::Renamed {
            from: "/note".into(),
            probably: true
        }
    );
}

#[test]
fn a_schema_changed_in_place_is_incorrectly_supported_side_by_side() {
    let edited = set(
        &V1.replace("done: {type: boolean}", "done: {type: string}")
            .replace("required: [title, done]", "required: [title, done, note]"),
        "  - {name: r1, types: {item: 1}, status: current}\n",
    );
    let base = set(V1, "  - {name: r1, types: {item: 1}, status: current}\n");
    let d = deploy::diff(&edited, &base, &Policy::default()).unwrap();
    assert!(d.is_breaking());
    assert_eq!(verdicts(&d), [("r1".into(), 1, "incorrectly_supported")]);
    let Verdict::IncorrectlySupported(m) = &d.releases[0].types[0].verdict else {
        panic!()
    };
    assert_eq!(m.expected["properties"]["done"], json!({"type": "string"}));
    assert_eq!(m.actual["properties"]["done"], json!({"type": "boolean"}));
    assert_eq!(m.differences, ["/properties/done/type", "/required"]);
    let kinds: Vec<(&str, &str)> = m
        .changes
        .iter()
        .map(|c| (c.kind.as_str(), c.path.as_str()))
        .collect();
    assert_eq!(kinds, [("retyped", "/done"), ("made_required", "/note")]);
    assert!(m.changes.iter().all(|c| c.breaks_backward));
    assert!(d.problems()[0].starts_with(
        "item@1 was changed in place (at /properties/done/type, /required); served to releases r1"
    ));
    let j = d.to_json();
    assert_eq!(
        j["releases"][0]["types"][0]["verdict"],
        json!("incorrectly_supported")
    );
    assert_eq!(j["types"][0]["versions"][0]["expected"], m.expected);
    assert_eq!(
        j["types"][0]["versions"][0]["changes"][0]["kind"],
        json!("retyped")
    );
}

#[test]
fn a_release_that_switched_versions_is_incorrectly_supported() {
    // Locally release r1 now speaks item@2.
    let local = set(
        &format!("{V1}  2:\n    lens: [{{rename: {{source: note, destination: comment}}}}]\n"),
        "  - {name: r1, types: {item: 2}, status: deprecated}\n  - {name: r2, types: {item: 2}, status: current}\n",
    );
    let d = deploy::diff(&local, &deployed(), &Policy::default()).unwrap();
    let t = &d.releases[0].types[0];
    assert_eq!((t.version, t.deployed_version), (2, Some(1)));
    let Verdict::IncorrectlySupported(m) = &t.verdict else {
        panic!("{:?}", t.verdict)
    };
    assert_eq!(m.deployed_version, 1);
    assert!(t.breaking);
    assert!(d.problems()[0].starts_with("release r1 speaks item@2 locally but item@1"));
}

#[test]
fn retiring_a_release_breaks_unless_it_was_deprecated() {
    let only_r2 = set(
        &format!("{V1}  2:\n    lens: [{{rename: {{source: note, destination: comment}}}}]\n"),
        "  - {name: r2, types: {item: 2}, status: current}\n",
    );
    // r1 was deprecated: its sunset.
    let d = deploy::diff(&only_r2, &deployed(), &Policy::default()).unwrap();
    assert_eq!(d.retired.len(), 1);
    assert!(!d.retired[0].breaking && !d.is_breaking());
    // r1 supported and then dropped: breaking.
    let supported_r1 = set(
        &format!("{V1}  2:\n    lens: [{{rename: {{source: note, destination: comment}}}}]\n"),
        "  - {name: r1, types: {item: 1}, status: supported}\n  - {name: r2, types: {item: 2}, status: current}\n",
    );
    let d = deploy::diff(&only_r2, &supported_r1, &Policy::default()).unwrap();
    assert!(d.retired[0].breaking);
    assert!(d.problems()[0].contains("deprecate it before retiring it"));
}

#[test]
fn unsupported_and_new() {
    // The deployed node refuses r1 and never had item@1's successor chain below 2.
    let refusing = set(
        &format!("{V1}  2:\n    lens: [{{rename: {{source: note, destination: comment}}}}]\n"),
        "  - {name: r1, types: {item: 1}, status: unsupported}\n  - {name: r2, types: {item: 2}, status: current}\n",
    );
    let d = deploy::diff(&deployed(), &refusing, &Policy::default()).unwrap();
    let Verdict::Unsupported(reason) = &d.releases[0].types[0].verdict else {
        panic!("{:?}", d.releases[0].types[0].verdict)
    };
    assert!(
        reason.contains("unsupported on the deployed node"),
        "{reason}"
    );

    // A deployed set whose lowest version is 2 cannot serve item@1.
    let pruned = set(
        "  2:
    schema:
      type: object
      properties: {title: {type: string}, done: {type: boolean}, comment: {type: string}}
      required: [title, done]
      additionalProperties: false
",
        "  - {name: r2, types: {item: 2}, status: current}\n",
    );
    let d = deploy::diff(&deployed(), &pruned, &Policy::default()).unwrap();
    assert_eq!(d.types[0].versions[0].verdict.as_str(), "unsupported");
    assert_eq!(d.types[0].versions[1].verdict.as_str(), "supported");
    // A type the deployed node lacks is new, with nothing to check.
    let other = SchemaSet::from_sources(vec![
        (
            PathBuf::from("mutatis.yaml"),
            "name: other\nreleases: [{name: x, types: {thing: 1}, status: current}]\n".into(),
        ),
        (
            PathBuf::from("types/thing.yaml"),
            "type: thing\nversions:\n  1:\n    schema: {type: object}\n".into(),
        ),
    ])
    .unwrap();
    let d = deploy::diff(&deployed(), &other, &Policy::default()).unwrap();
    assert_eq!(
        verdicts(&d),
        [("r1".into(), 1, "new"), ("r2".into(), 2, "new")]
    );
    assert!(d.types[0].checks.is_empty());
}

#[test]
fn a_lens_changed_under_the_same_schema_is_breaking() {
    let table = |started: &str| {
        set(
            &format!(
                "{V1}  2:\n    lens:\n      - convert: {{name: done, sourceType: boolean, destinationType: string, forward: {{'true': yes, 'false': no}}, backward: {{yes: true, no: false, {started}: false}}}}\n"
            ),
            "  - {name: r1, types: {item: 2}, status: current}\n",
        )
    };
    let d = deploy::diff(&table("maybe"), &table("later"), &Policy::default()).unwrap();
    let v2 = &d.types[0].versions[1];
    assert_eq!(v2.verdict, Verdict::Supported);
    let change = v2.lens_change.as_ref().unwrap();
    assert_ne!(change.expected, change.actual);
    assert!(d.is_breaking());
    assert!(d.problems()[0].contains("the lens that produces item@2 differs"));
}

#[test]
fn a_policy_must_name_known_types() {
    let policy = Policy::from_yaml_str("types: {itme: FULL}").unwrap();
    let err = deploy::diff(&deployed(), &deployed(), &policy).unwrap_err();
    assert!(matches!(err, DeployError::PolicyUnknownType { .. }));
    assert!(err.to_string().contains("`itme`"), "{err}");
}

#[test]
fn a_deployed_manifest_diffs_like_its_folder() {
    let local = with_v3("[{add: {name: owner, type: string}}]");
    let from_manifest = SchemaSet::from_manifest(&deployed().manifest()).unwrap();
    let a = deploy::diff(&local, &deployed(), &Policy::default()).unwrap();
    let b = deploy::diff(&local, &from_manifest, &Policy::default()).unwrap();
    assert_eq!(a.to_json(), b.to_json());
}

#[test]
fn a_release_that_drops_a_type_breaks_its_clients() {
    let two_types = |with_thing: bool| {
        let thing = if with_thing { ", thing: 1" } else { "" };
        let mut files = vec![
            (
                PathBuf::from("mutatis.yaml"),
                format!("name: app\nreleases: [{{name: r1, types: {{item: 1{thing}}}, status: current}}]\n"),
            ),
            (
                PathBuf::from("types/item.yaml"),
                format!("type: item\nversions:\n{V1}"),
            ),
        ];
        if with_thing {
            files.push((
                PathBuf::from("types/thing.yaml"),
                "type: thing\nversions:\n  1:\n    schema: {type: object}\n".into(),
            ));
        }
        SchemaSet::from_sources(files).unwrap()
    };
    let d = deploy::diff(&two_types(false), &two_types(true), &Policy::default()).unwrap();
    assert_eq!(d.releases[0].dropped, [("thing".to_owned(), 1)]);
    assert_eq!(d.removed_types, ["thing"]);
    assert!(d.is_breaking());
    assert!(d.problems()[0].contains("release r1 no longer includes thing"));
    assert_eq!(d.to_json()["removedTypes"], json!(["thing"]));
}
