//! The fuzzing harness, run over generated inputs on every `cargo test`.
//!
//! `fuzz/` holds cargo-fuzz targets that need nightly compiler flags and minutes of running.
//! Their checks live in `fuzz/src/lib.rs` as plain functions over bytes; this test compiles that
//! very file and feeds it a few thousand inputs: the checked-in seeds, mutations of them,
//! arbitrary bytes, and lenses and documents built from the lens grammar (valid and not). So
//! the promise "nothing panics on any input, and the raw and parsed paths agree" is checked
//! by every test run, and the deeper fuzzing in CI starts from a harness known to work.

#[path = "../../../fuzz/src/lib.rs"]
mod harness;

use std::path::PathBuf;

use mutatis_lens::yaml::parse_yaml;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// `cases` per property, unless `PROPTEST_CASES` asks for a deeper run.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        // A failure prints its minimised input; no files are written into the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            (path, bytes)
        })
        .collect();
    out.sort();
    out
}

/// Every seed passes its target's checks, and the seeds are the real thing: the Cambria lenses
/// parse, and most of the seeded documents translate.
#[test]
fn seeds_pass_the_harness() {
    let lens_files = seeds("lens_file");
    assert!(
        lens_files.len() >= 70,
        "only {} lens_file seeds",
        lens_files.len()
    );
    let mut rejected = Vec::new();
    for (path, bytes) in &lens_files {
        harness::lens_file(bytes);
        let text = std::str::from_utf8(bytes).expect("seeds are UTF-8");
        if harness::check_lens_text(text).is_none() {
            rejected.push(path.file_name().map(|n| n.to_string_lossy().into_owned()));
        }
    }
    // Cambria's suite has one lens that is meant to be refused (`add` without a name).
    assert_eq!(
        rejected,
        [Some("cambria-009".to_owned())],
        "seeds that do not parse"
    );

    let translations = seeds("translate");
    assert!(
        translations.len() >= 60,
        "only {} translate seeds",
        translations.len()
    );
    let mut translated = 0;
    for (path, bytes) in &translations {
        harness::translate(bytes);
        let split = bytes
            .iter()
            .position(|&b| b == harness::SEPARATOR)
            .unwrap_or_else(|| panic!("seed {} has no separator", path.display()));
        let Ok(text) = std::str::from_utf8(&bytes[..split]) else {
            panic!("seed {} has a lens that is not UTF-8", path.display());
        };
        // Cambria's refused lens (see above) is seeded with its documents too.
        let Ok(lens) = mutatis_lens::Lens::from_file_str(text) else {
            continue;
        };
        let plan = mutatis_lens::Plan::compile(
            &lens,
            mutatis_lens::Direction::Forward,
            &harness::transforms(),
        )
        .unwrap_or_else(|e| panic!("seed {}: {e}", path.display()));
        let mut out = Vec::new();
        if plan
            .translate_bytes(&bytes[split + 1..], &harness::params(), &mut out)
            .is_ok()
        {
            translated += 1;
        }
    }
    assert!(
        translated * 2 > translations.len(),
        "only {translated} of {} translate seeds translate: the seeds no longer reach the engine",
        translations.len()
    );
}

/// Inputs the generators below once found, kept as fixed regressions.
#[test]
fn inputs_found_by_fuzzing() {
    let found: [(&str, &str); 3] = [
        // The raw path deleted a field that a step names twice (host and field of a `plunge`).
        (
            r#"[{"plunge": {"host": "b", "name": "b"}}]"#,
            r#"{"b": {"c": 1}, "a": 2}"#,
        ),
        (
            r#"[{"split": {"name": "w", "into": ["p", "p"]}}]"#,
            r#"{"w": "x y", "p": 1}"#,
        ),
        // A float serde_json reads back one unit in the last place off (not a disagreement).
        (
            r#"[{"set": {"name": "a", "value": [-9.267078619933378e-119]}}]"#,
            "{}",
        ),
    ];
    for (lens, doc) in found {
        let mut input = lens.as_bytes().to_vec();
        input.push(harness::SEPARATOR);
        input.extend_from_slice(doc.as_bytes());
        harness::translate(&input);
    }
}

// ---------------------------------------------------------------------------------------------
// Generators from the lens grammar

const OPS: [&str; 16] = [
    "rename",
    "add",
    "remove",
    "hoist",
    "plunge",
    "wrap",
    "head",
    "in",
    "map",
    "convert",
    "copy",
    "split",
    "join",
    "set",
    "transform",
    "frobnicate",
];

const KEYS: [&str; 22] = [
    "name",
    "source",
    "destination",
    "type",
    "default",
    "required",
    "host",
    "lens",
    "forward",
    "backward",
    "forwardDefault",
    "backwardDefault",
    "mapping",
    "sourceType",
    "destinationType",
    "into",
    "names",
    "separator",
    "value",
    "using",
    "args",
    "items",
];

const EXPRESSIONS: [&str; 12] = [
    "value + 1",
    "1 + value",
    "value - offset",
    "referenceYear - value",
    "value * 2",
    "doc.a",
    "value +",
    "size(value)",
    "value / 0",
    "'x' + value",
    "value ? 1 : 2",
    "[value, value]",
];

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "a", "b", "c", "tags", "meta", "x y", "a/b", "t~1", "é", ""
        ])
        .prop_map(str::to_owned),
        "[a-c]{1,2}",
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-5i64..5).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        field_name().prop_map(Value::from),
        proptest::sample::select(EXPRESSIONS.to_vec()).prop_map(Value::from),
        proptest::sample::select(vec![
            "string", "integer", "number", "boolean", "array", "object", "null", "bogus",
        ])
        .prop_map(Value::from),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((field_name(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn names_list() -> impl Strategy<Value = Value> {
    proptest::collection::vec(field_name().prop_map(Value::from), 0..4).prop_map(Value::Array)
}

fn table() -> impl Strategy<Value = Value> {
    proptest::collection::vec((field_name(), scalar()), 0..4)
        .prop_map(|kv| Value::Object(kv.into_iter().collect()))
}

/// Mostly well-formed ops (the right keys for the op, values of roughly the right kind), so
/// generated lenses get past the parser into compilation and translation.
fn well_formed_op(lens: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    let n = field_name;
    let named = |op: &'static str| n().prop_map(move |name| json!({ op: {"name": name} }));
    let typed = |op: &'static str| {
        (n(), scalar(), proptest::option::of(scalar()), any::<bool>()).prop_map(
            move |(name, ty, default, required)| {
                let mut args = Map::new();
                args.insert("name".into(), json!(name));
                args.insert("type".into(), ty);
                if let Some(d) = default {
                    args.insert("default".into(), d);
                }
                if !required {
                    args.insert("required".into(), json!(false));
                }
                json!({ op: args })
            },
        )
    };
    let mapping = || {
        prop_oneof![
            table(),
            proptest::sample::select(EXPRESSIONS.to_vec()).prop_map(Value::from),
        ]
    };
    prop_oneof![
        (n(), n()).prop_map(|(s, d)| json!({"rename": {"source": s, "destination": d}})),
        (n(), n()).prop_map(|(s, d)| json!({"copy": {"source": s, "destination": d}})),
        typed("add"),
        typed("remove"),
        (n(), n()).prop_map(|(h, f)| json!({"hoist": {"host": h, "name": f}})),
        (n(), n()).prop_map(|(h, f)| json!({"plunge": {"host": h, "name": f}})),
        named("wrap"),
        named("head"),
        (n(), lens.clone()).prop_map(|(name, lens)| json!({"in": {"name": name, "lens": lens}})),
        lens.prop_map(|lens| json!({"map": {"lens": lens}})),
        (
            n(),
            mapping(),
            proptest::option::of(mapping()),
            proptest::option::of(scalar())
        )
            .prop_map(|(name, forward, backward, default)| {
                let mut args = Map::new();
                args.insert("name".into(), json!(name));
                args.insert("forward".into(), forward);
                if let Some(b) = backward {
                    args.insert("backward".into(), b);
                }
                if let Some(d) = default {
                    args.insert("backwardDefault".into(), d);
                }
                json!({ "convert": args })
            }),
        (n(), names_list(), "[ ,:-]{0,2}").prop_map(
            |(name, into, sep)| json!({"split": {"name": name, "into": into, "separator": sep}})
        ),
        (n(), names_list())
            .prop_map(|(into, names)| json!({"join": {"names": names, "into": into}})),
        (n(), any_json()).prop_map(|(name, value)| json!({"set": {"name": name, "value": value}})),
        (
            n(),
            proptest::sample::select(vec!["negate", "reject", "missing"])
        )
            .prop_map(|(name, using)| json!({"transform": {"name": name, "using": using}})),
    ]
}

/// Ops with arbitrary keys and values: the parser's error paths.
fn noisy_op() -> impl Strategy<Value = Value> {
    (
        proptest::sample::select(OPS.to_vec()),
        proptest::collection::vec((proptest::sample::select(KEYS.to_vec()), any_json()), 0..5),
        any::<bool>(),
    )
        .prop_map(|(op, args, tagged)| {
            let mut map: Map<String, Value> =
                args.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            if tagged {
                map.insert("op".into(), json!(op));
                Value::Object(map)
            } else {
                json!({ op: map })
            }
        })
}

fn lens_ops() -> BoxedStrategy<Value> {
    let leaf = proptest::collection::vec(
        prop_oneof![3 => well_formed_op(Just(json!([])).boxed()), 1 => noisy_op()],
        0..4,
    )
    .prop_map(Value::Array);
    leaf.prop_recursive(2, 12, 4, |inner| {
        proptest::collection::vec(
            prop_oneof![3 => well_formed_op(inner), 1 => noisy_op()],
            0..4,
        )
        .prop_map(Value::Array)
    })
    .boxed()
}

/// A lens file's text: JSON, or YAML flow style with bare words where YAML reads them as
/// strings.
fn lens_text() -> impl Strategy<Value = String> {
    (lens_ops(), any::<bool>(), any::<bool>()).prop_map(|(ops, wrapped, yaml)| {
        let file = if wrapped {
            json!({"schemaName": "fuzz", "lens": ops})
        } else {
            ops
        };
        if yaml {
            let mut out = String::new();
            yaml_flow(&file, &mut out);
            out
        } else {
            file.to_string()
        }
    })
}

fn yaml_flow(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            let bare = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !matches!(
                    s.to_ascii_lowercase().as_str(),
                    "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
                );
            if bare {
                out.push_str(s);
            } else {
                out.push_str(&Value::from(s.as_str()).to_string());
            }
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                yaml_flow(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                yaml_flow(&Value::from(k.as_str()), out);
                out.push_str(": ");
                yaml_flow(item, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A document's bytes: mostly JSON objects over the generators' field names.
fn document() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => (proptest::collection::vec((field_name(), any_json()), 0..6), any::<bool>()).prop_map(
            |(fields, pretty)| {
                let doc = Value::Object(fields.into_iter().collect());
                let text = if pretty {
                    serde_json::to_vec_pretty(&doc)
                } else {
                    serde_json::to_vec(&doc)
                };
                text.expect("a Value serialises")
            }
        ),
        1 => any_json().prop_map(|v| v.to_string().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

/// A seed with a few bytes changed, inserted or removed.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::sample::select(seeds),
        proptest::collection::vec((any::<prop::sample::Index>(), 0..3u8, any::<u8>()), 1..6),
    )
        .prop_map(|(mut bytes, edits)| {
            for (at, kind, byte) in edits {
                if bytes.is_empty() {
                    bytes.push(byte);
                    continue;
                }
                let i = at.index(bytes.len());
                match kind {
                    0 => bytes[i] = byte,
                    1 => bytes.insert(i, byte),
                    _ => {
                        bytes.remove(i);
                    }
                }
            }
            bytes
        })
}

fn seed_bytes(target: &str) -> Vec<Vec<u8>> {
    seeds(target).into_iter().map(|(_, b)| b).collect()
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn lens_file_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        harness::lens_file(&bytes);
    }

    #[test]
    fn lens_file_on_generated_lenses(text in lens_text()) {
        harness::lens_file(text.as_bytes());
    }

    #[test]
    fn translate_on_generated_lenses_and_documents(text in lens_text(), doc in document()) {
        let mut input = text.into_bytes();
        input.push(harness::SEPARATOR);
        input.extend(doc);
        harness::translate(&input);
    }

    /// `parse_yaml` never panics on any string, and an error names a line within the text.
    #[test]
    fn parse_yaml_never_panics(text in any::<String>()) {
        check_yaml(&text)?;
    }

    /// The same on YAML-looking text (indentation, flow and block syntax, anchors, tags),
    /// which arbitrary strings rarely are.
    #[test]
    fn parse_yaml_never_panics_on_yaml_like_text(
        parts in proptest::collection::vec(proptest::sample::select(vec![
            "a", ": ", "- ", "\n", "  ", "{", "}", "[", "]", ", ", "&x ", "*x", "!!str ", "!!map ",
            "? ", "|\n", ">-\n", "'q'", "\"q\\u00e9\"", "#c", "---\n", "...\n", "~", "1", "1.5e3",
            "true", "null", "\t", "%YAML 1.2\n", "<<: ", "\"",
        ]), 0..40)
    ) {
        check_yaml(&parts.concat())?;
    }

    /// JSON is YAML: any JSON text reads to the very value serde_json reads.
    #[test]
    fn parse_yaml_reads_json_as_json(value in any_json()) {
        let text = value.to_string();
        match parse_yaml(&text) {
            Ok((read, _)) => prop_assert_eq!(read, value, "{}", text),
            Err(e) => prop_assert!(false, "JSON text {} did not parse as YAML: {}", text, e),
        }
    }
}

fn check_yaml(text: &str) -> Result<(), TestCaseError> {
    if let Err(e) = parse_yaml(text) {
        let message = e.to_string();
        prop_assert!(!message.is_empty());
        let line = match e {
            mutatis_lens::LensError::Syntax {
                line: Some(line), ..
            }
            | mutatis_lens::LensError::TooLarge { line, .. } => Some(line),
            _ => None,
        };
        if let Some(line) = line {
            let lines = text.split('\n').count();
            prop_assert!(
                line >= 1 && line <= lines + 1,
                "error at line {} of a {}-line text: {}",
                line,
                lines,
                message
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn lens_file_on_mutated_seeds(bytes in mutated(seed_bytes("lens_file"))) {
        harness::lens_file(&bytes);
    }

    #[test]
    fn translate_on_mutated_seeds(bytes in mutated(seed_bytes("translate"))) {
        harness::translate(&bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// JSON Patch: the applier the server and the client share, and patch translation

#[test]
fn patch_seeds_pass_the_harness() {
    let found = seeds("patch");
    assert!(found.len() >= 5, "only {} patch seeds", found.len());
    for (_, bytes) in &found {
        harness::patch(bytes);
    }
}

fn pointer_strategy() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("o".to_owned()),
        Just("x".to_owned()),
        Just("-".to_owned()),
        Just("0".to_owned()),
        Just("1".to_owned()),
        Just("01".to_owned()),
        Just("~0".to_owned()),
        Just("~1".to_owned()),
        Just("~2".to_owned()),
        Just(String::new()),
    ];
    prop::collection::vec(token, 0..4)
        .prop_map(|t| t.iter().map(|s| format!("/{s}")).collect::<String>())
}

fn small_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..3).prop_map(Value::from),
        "[a-c]{0,2}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[abox]", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn op_strategy() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        Just("add"),
        Just("remove"),
        Just("replace"),
        Just("move"),
        Just("copy"),
        Just("test"),
        Just("nope"),
    ];
    (
        name,
        pointer_strategy(),
        pointer_strategy(),
        small_value(),
        any::<u8>(),
    )
        .prop_map(|(op, path, from, value, drop)| {
            let mut m = Map::new();
            m.insert("op".into(), json!(op));
            if drop % 7 != 0 {
                m.insert("path".into(), json!(path));
            }
            if matches!(op, "move" | "copy") || drop % 5 == 0 {
                m.insert("from".into(), json!(from));
            }
            if matches!(op, "add" | "replace" | "test") || drop % 3 == 0 {
                m.insert("value".into(), value);
            }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(config(400))]

    /// Generated documents and patches (valid and not): nothing panics, applying is
    /// deterministic and all-or-nothing, translation of the patch never panics.
    #[test]
    fn generated_patches_pass_the_harness(
        doc in small_value(),
        ops in prop::collection::vec(op_strategy(), 0..5),
    ) {
        let mut input = serde_json::to_vec(&doc).unwrap();
        input.push(harness::SEPARATOR);
        input.extend_from_slice(&serde_json::to_vec(&Value::from(ops)).unwrap());
        harness::patch(&input);
    }
}
