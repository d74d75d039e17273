//! The run-time API of a loaded schema set: plans, releases and policy, storage, validation,
//! manifests.

use std::path::PathBuf;
use std::sync::Arc;

use mutatis_lens::{Direction, Params};
use mutatis_schema::{ErrorKind, ReleaseStatus, SchemaSet, Storage, Strategy};
use serde_json::{json, Value};

const SETTINGS: &str = "\
name: shop
releases:
  - {name: \"2024-01\", types: {order: 1}, status: unsupported}
  - {name: \"2024-06\", types: {order: 2}, status: deprecated, sunset: 2026-01-31}
  - {name: \"2025-01\", types: {order: 3, customer: 1}, status: supported}
  - {name: \"2025-06\", types: {order: 3, customer: 1}, status: current}
defaultRelease: \"2025-01\"
storage:
  order: {version: 3, strategy: eager}
";

const ORDER: &str = "\
type: order
versions:
  1:
    schema:
      type: object
      properties:
        id: {type: string}
        total: {type: number}
      required: [id, total]
  2:
    lens:
      - add: {name: currency, type: string, default: EUR}
  3:
    lens:
      - rename: {source: total, destination: amount}
";

const CUSTOMER: &str = "\
type: customer
versions:
  1:
    schema:
      type: object
      properties:
        name: {type: string}
      required: [name]
";

fn shop() -> SchemaSet {
    SchemaSet::from_sources(vec![
        (PathBuf::from("mutatis.yaml"), SETTINGS.to_owned()),
        (PathBuf::from("types/order.yaml"), ORDER.to_owned()),
        (PathBuf::from("types/customer.yaml"), CUSTOMER.to_owned()),
    ])
    .unwrap()
}

#[test]
fn schema_sets_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SchemaSet>();
    let set = Arc::new(shop());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let set = Arc::clone(&set);
            std::thread::spawn(move || set.plan("order", 1, 3).unwrap())
        })
        .collect();
    let plans: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    // However the threads raced, they all end up with the one cached plan.
    let cached = set.plan("order", 1, 3).unwrap();
    assert!(plans.iter().any(|p| Arc::ptr_eq(p, &cached)));
}

#[test]
fn types_versions_and_schemas() {
    let set = shop();
    let names: Vec<&str> = set.types().map(|t| t.name()).collect();
    assert_eq!(names, ["customer", "order"]);
    assert_eq!(set.versions("order").unwrap(), [1, 2, 3]);
    let order = set.type_def("order").unwrap();
    assert_eq!(
        order.file(),
        Some(PathBuf::from("types/order.yaml").as_path())
    );
    assert_eq!(order.lowest().map(|v| v.version()), Some(1));
    assert_eq!(order.highest().map(|v| v.version()), Some(3));
    assert_eq!(order.graph().edges().len(), 2);
    assert_eq!(
        set.schema("order", 3).unwrap()["properties"]["amount"],
        json!({"type": "number"})
    );
    let err = set.type_def("invoice").unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::UnknownType { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("customer, order"), "{err}");
    let err = set.schema("order", 4).unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::UnknownVersion { version: 4, .. }
    ));
    assert_eq!((err.type_name(), err.version()), (Some("order"), Some(4)));
}

#[test]
fn plans_follow_the_graph_and_are_cached() {
    let set = shop();
    let p = Params::new();
    let up = set.plan("order", 1, 3).unwrap();
    assert!(Arc::ptr_eq(&up, &set.plan("order", 1, 3).unwrap()));
    let origins: Vec<(&str, Direction)> = up
        .ops()
        .iter()
        .map(|d| (d.origin.as_str(), d.direction))
        .collect();
    assert_eq!(
        origins,
        [
            ("order@2/0", Direction::Forward),
            ("order@3/0", Direction::Forward)
        ]
    );
    let doc = json!({"id": "o-1", "total": 12.5});
    let v3 = up.translate(&doc, &p).unwrap();
    assert_eq!(v3, json!({"id": "o-1", "currency": "EUR", "amount": 12.5}));
    let down = set.plan("order", 3, 1).unwrap();
    assert!(down
        .ops()
        .iter()
        .all(|d| d.direction == Direction::Backward));
    assert_eq!(down.translate(&v3, &p).unwrap(), doc);
    // The same version is the identity: no translation work.
    let same = set.plan("order", 2, 2).unwrap();
    assert!(same.is_identity());
    assert!(same.ops().is_empty());
    // Unknown versions are errors, not panics.
    let err = set.plan("order", 1, 9).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::UnknownVersion { version: 9, .. }),
        "{err:?}"
    );
    assert!(set.plan("invoice", 1, 2).is_err());
}

#[test]
fn documents_are_validated_against_their_version() {
    let set = shop();
    assert!(set
        .validate("order", 1, &json!({"id": "a", "total": 3}))
        .is_ok());
    let issues = set
        .validate(
            "order",
            3,
            &json!({"id": "a", "amount": "three", "currency": "EUR"}),
        )
        .unwrap_err();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].pointer, "/amount");
    assert_eq!(issues[0].schema_pointer, "/properties/amount/type");
    assert!(
        issues[0].to_string().starts_with("at /amount: "),
        "{}",
        issues[0]
    );
    // A missing required field is reported at the object that lacks it.
    let issues = set
        .validate("order", 2, &json!({"id": "a", "total": 1}))
        .unwrap_err();
    assert_eq!(issues[0].pointer, "");
    assert!(
        issues[0].message.contains("currency"),
        "{}",
        issues[0].message
    );
    // Unknown types and versions are one issue, at the root.
    let issues = set.validate("order", 7, &json!({})).unwrap_err();
    assert_eq!(issues.len(), 1);
    assert!(
        issues[0].message.contains("no version 7"),
        "{}",
        issues[0].message
    );
    // Many problems are reported together.
    let issues = set
        .validate("order", 1, &json!({"id": 1, "total": "x"}))
        .unwrap_err();
    assert_eq!(issues.len(), 2);
}

#[test]
fn releases_and_policy() {
    let set = shop();
    let names: Vec<&str> = set.releases().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["2024-01", "2024-06", "2025-01", "2025-06"]);
    assert_eq!(set.current().name, "2025-06");
    // `defaultRelease` overrides the current release for clients that name none.
    assert_eq!(set.default_release().name, "2025-01");
    assert_eq!(set.oldest_supported().name, "2024-06");

    let err = set.resolve_release("2023-01").unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::UnknownRelease { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("2024-06"), "{err}");
    let err = set.resolve_release("2024-01").unwrap_err();
    assert_eq!(
        err.kind(),
        &ErrorKind::UnsupportedRelease {
            name: "2024-01".into(),
            oldest_supported: Some("2024-06".into())
        }
    );
    assert!(
        err.to_string()
            .contains("oldest supported release is 2024-06"),
        "{err}"
    );
    assert_eq!(
        set.resolve_release("2024-06").unwrap().status,
        ReleaseStatus::Deprecated
    );

    assert_eq!(set.release_version("2025-06", "customer").unwrap(), 1);
    let err = set.release_version("2024-06", "customer").unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::TypeNotInRelease { .. }),
        "{err:?}"
    );
    assert!(set.release_version("2024-01", "order").is_err());

    assert_eq!(
        set.supported_versions("order")
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(set.version_status("order", 3), Some(ReleaseStatus::Current));
    assert_eq!(
        set.version_status("order", 2),
        Some(ReleaseStatus::Deprecated)
    );
    assert_eq!(
        set.version_status("order", 1),
        Some(ReleaseStatus::Unsupported)
    );
    assert_eq!(set.version_status("customer", 2), None);
}

#[test]
fn storage_is_declared_or_defaulted() {
    let set = shop();
    assert_eq!(
        set.storage("order").unwrap(),
        Storage::new(3, Strategy::Eager)
    );
    // No entry: the current release's version, kept lazily.
    assert_eq!(
        set.storage("customer").unwrap(),
        Storage::new(1, Strategy::Lazy)
    );
    assert!(set.storage("invoice").is_err());
}

#[test]
fn the_manifest_round_trips() {
    let set = shop();
    let manifest = set.manifest();
    assert_eq!(manifest["mutatisManifest"], json!(1));
    assert_eq!(manifest["defaultRelease"], json!("2025-01"));
    assert_eq!(
        manifest["types"]["order"]["versions"]["3"]["lens"],
        json!([{"rename": {"source": "total", "destination": "amount"}}])
    );
    assert_eq!(
        manifest["types"]["order"]["versions"]["3"]["from"],
        json!(2)
    );
    assert_eq!(
        manifest["storage"]["customer"],
        json!({"version": 1, "strategy": "lazy"})
    );
    assert_eq!(manifest["releases"][1]["sunset"], json!("2026-01-31"));
    let back = SchemaSet::from_manifest(&manifest).unwrap();
    assert_eq!(back.manifest(), manifest);
    assert_eq!(
        back.plan("order", 3, 1).unwrap().ops(),
        set.plan("order", 3, 1).unwrap().ops()
    );
    // The manifest survives being sent as text.
    let text = serde_json::to_string(&manifest).unwrap();
    let reparsed: Value = serde_json::from_str(&text).unwrap();
    assert!(SchemaSet::from_manifest(&reparsed).is_ok());
}

#[test]
fn bad_manifests_are_refused_with_pointers() {
    let good = shop().manifest();

    let mut m = good.clone();
    m["mutatisManifest"] = json!(0);
    let err = SchemaSet::from_manifest(&m).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::ManifestFormat { .. }),
        "{err:?}"
    );
    assert_eq!(err.pointer(), Some("/mutatisManifest"));

    // A published schema that the lens does not derive (a tampered or foreign manifest).
    let mut m = good.clone();
    m["types"]["order"]["versions"]["3"]["schema"]["properties"]["amount"]["type"] =
        json!("string");
    let err = SchemaSet::from_manifest(&m).unwrap_err();
    let ErrorKind::SchemaDiffers { pointers } = err.kind() else {
        panic!("{err:?}")
    };
    assert_eq!(pointers, &["/properties/amount/type"]);
    assert_eq!(
        err.pointer(),
        Some("/types/order/versions/3/schema/properties/amount/type")
    );
    assert_eq!((err.type_name(), err.version()), (Some("order"), Some(3)));
    assert_eq!(err.file(), None);

    let mut m = good.clone();
    m["types"]["order"]["versions"]["2"]["lens"] = json!([{"frobnicate": {}}]);
    let err = SchemaSet::from_manifest(&m).unwrap_err();
    assert_eq!(err.pointer(), Some("/types/order/versions/2/lens/0"));

    let mut m = good.clone();
    m["types"]["order"]["versions"]["2"]["lensFile"] = json!("x.yaml");
    m["types"]["order"]["versions"]["2"]
        .as_object_mut()
        .unwrap()
        .remove("lens");
    let err = SchemaSet::from_manifest(&m).unwrap_err();
    assert!(err.to_string().contains("inline"), "{err}");

    let mut m = good;
    m["extra"] = json!(true);
    let err = SchemaSet::from_manifest(&m).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::UnknownKey { .. }),
        "{err:?}"
    );

    assert!(SchemaSet::from_manifest(&json!([1, 2])).is_err());
}

fn shop_with_default(rule: &str) -> Result<SchemaSet, mutatis_schema::SchemaError> {
    let settings = SETTINGS.replace("defaultRelease: \"2025-01\"", rule);
    SchemaSet::from_sources(vec![
        (PathBuf::from("mutatis.yaml"), settings),
        (PathBuf::from("types/order.yaml"), ORDER.to_owned()),
        (PathBuf::from("types/customer.yaml"), CUSTOMER.to_owned()),
    ])
}

#[test]
fn unnamed_clients_get_a_fixed_release_or_detection() {
    use mutatis_schema::UnnamedRelease;

    let fixed = shop();
    assert!(matches!(
        fixed.unnamed_release(),
        UnnamedRelease::Fixed(r) if r.name == "2025-01"
    ));

    let detect =
        shop_with_default("defaultRelease: {detect: body, fallback: \"2024-06\"}").unwrap();
    let UnnamedRelease::Detect { fallback } = detect.unnamed_release() else {
        panic!("detection expected")
    };
    assert_eq!(fallback.map(|r| r.name.as_str()), Some("2024-06"));
    // The plain accessor still names a served release for callers that cannot detect.
    assert_eq!(detect.default_release().name, "2024-06");
    // The rule survives the manifest.
    let manifest = detect.manifest();
    assert_eq!(
        manifest["defaultRelease"],
        json!({"detect": "body", "fallback": "2024-06"})
    );
    let back = SchemaSet::from_manifest(&manifest).unwrap();
    assert_eq!(back.unnamed_release(), detect.unnamed_release());

    let bare = shop_with_default("defaultRelease: {detect: body}").unwrap();
    assert_eq!(
        bare.unnamed_release(),
        UnnamedRelease::Detect { fallback: None }
    );
    assert_eq!(bare.default_release().name, "2025-06");
    assert_eq!(bare.manifest()["defaultRelease"], json!({"detect": "body"}));

    // Mistakes are refused with the pointer.
    for (rule, pointer) in [
        (
            "defaultRelease: {detect: headers}",
            "/defaultRelease/detect",
        ),
        (
            "defaultRelease: {detect: body, fallback: \"2024-01\"}",
            "/defaultRelease/fallback",
        ),
        (
            "defaultRelease: {detect: body, fallback: nope}",
            "/defaultRelease/fallback",
        ),
        (
            "defaultRelease: {detect: body, guess: true}",
            "/defaultRelease/guess",
        ),
    ] {
        let err = shop_with_default(rule).unwrap_err();
        assert_eq!(err.pointer(), Some(pointer), "{rule}: {err}");
    }
}

#[test]
fn deprecated_releases_may_record_since_when() {
    let with = |release: &str| {
        let settings = SETTINGS.replace(
            "{name: \"2024-06\", types: {order: 2}, status: deprecated, sunset: 2026-01-31}",
            release,
        );
        SchemaSet::from_sources(vec![
            (PathBuf::from("mutatis.yaml"), settings),
            (PathBuf::from("types/order.yaml"), ORDER.to_owned()),
            (PathBuf::from("types/customer.yaml"), CUSTOMER.to_owned()),
        ])
    };
    let set = with("{name: \"2024-06\", types: {order: 2}, status: deprecated, deprecated: 2025-07-01, sunset: 2026-01-31}").unwrap();
    let r = set.release("2024-06").unwrap();
    assert_eq!(r.deprecated.as_deref(), Some("2025-07-01"));
    let manifest = set.manifest();
    assert_eq!(manifest["releases"][1]["deprecated"], json!("2025-07-01"));
    let back = SchemaSet::from_manifest(&manifest).unwrap();
    assert_eq!(back.release("2024-06"), Some(r));

    for (release, pointer) in [
        // Only a deprecated release has the date.
        ("{name: \"2024-06\", types: {order: 2}, status: supported, deprecated: 2025-07-01}", "/releases/1/deprecated"),
        // A calendar date.
        ("{name: \"2024-06\", types: {order: 2}, status: deprecated, deprecated: 2025-02-30}", "/releases/1/deprecated"),
        // Not after the sunset.
        ("{name: \"2024-06\", types: {order: 2}, status: deprecated, deprecated: 2026-02-01, sunset: 2026-01-31}", "/releases/1/deprecated"),
    ] {
        let err = with(release).unwrap_err();
        assert_eq!(err.pointer(), Some(pointer), "{release}: {err}");
    }
}

#[test]
fn releases_past_their_sunset_are_unsupported_as_of_a_date() {
    let set = shop();
    assert_eq!(set.date(), None);
    assert_eq!(set.next_sunset(), Some("2026-01-31"));
    // The day before: still served, deprecated.
    let before = shop().as_of("2026-01-30");
    assert_eq!(before.date(), Some("2026-01-30"));
    assert_eq!(
        before.release("2024-06").unwrap().status,
        ReleaseStatus::Deprecated
    );
    assert_eq!(before.oldest_supported().name, "2024-06");
    assert!(before.supported_versions("order").unwrap().contains(&2));
    // On the sunset day (the `Sunset` header names its start) and after: unsupported, with
    // the date kept for the problem, and nothing else changed.
    for day in ["2026-01-31", "2027-05-01"] {
        let after = shop().as_of(day);
        let r = after.release("2024-06").unwrap();
        assert_eq!(r.status, ReleaseStatus::Unsupported, "{day}");
        assert_eq!(r.sunset.as_deref(), Some("2026-01-31"));
        assert!(after.resolve_release("2024-06").is_err());
        assert_eq!(after.oldest_supported().name, "2025-01");
        assert!(!after.supported_versions("order").unwrap().contains(&2));
        assert_eq!(after.next_sunset(), None);
        assert_eq!(after.current().name, "2025-06");
    }
    // Taken again as of another day, from the files it was loaded from.
    let later = before.as_of_again("2026-02-01").unwrap().unwrap();
    assert_eq!(
        later.release("2024-06").unwrap().status,
        ReleaseStatus::Unsupported
    );
}
