//! Property tests of the compatibility checker on generated schemas:
//!
//! - a schema is fully compatible with itself, and with an equivalent rewriting of itself;
//! - `backward(a, b)` is `forward(b, a)`;
//! - soundness: when `backward(a, b)` holds, every generated instance valid under `a` (per the
//!   `jsonschema` crate) is valid under `b`, and the same for forward;
//! - arbitrary JSON values as schemas give `Ok` or `Err` quickly, never a panic or a hang.
//!
//! Plus the speed requirement: 200 types × 10 versions of realistic object schemas.

use std::time::{Duration, Instant};

use mutatis_schema::compat::{check, check_chain, check_history, CompatMode};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const NAMES: &[&str] = &["a", "b", "c", "ab"];
const PATTERNS: &[&str] = &["^a", "b$", "^[a-z]*$"];
const TYPES: &[&str] = &[
    "null", "boolean", "integer", "number", "string", "array", "object",
];

fn small_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..6).prop_map(|n| json!(n)),
        prop::sample::select(vec![0.5, 1.5, -2.5, 2.0]).prop_map(|f| json!(f)),
        prop::sample::select(vec!["", "a", "ab", "abc", "ba", "b", "zzzzzz"])
            .prop_map(|s| json!(s)),
    ]
}

/// Instances: scalars, and arrays and objects of them (keys from the names schemas use).
fn instance() -> impl Strategy<Value = Value> {
    small_value().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(NAMES.to_vec()), inner, 0..4)
                .prop_map(|m| {
                    Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
        ]
    })
}

/// Schemas without references, over the keywords the checker supports.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(true)),
        Just(json!(false)),
        Just(json!({})),
        prop::sample::subsequence(TYPES.to_vec(), 1..3).prop_map(|t| json!({ "type": t })),
        prop::collection::vec(small_value(), 0..4).prop_map(|v| json!({ "enum": v })),
        small_value().prop_map(|v| json!({ "const": v })),
        (-2i64..4, 0i64..4)
            .prop_map(|(lo, w)| json!({"type": "number", "minimum": lo, "maximum": lo + w})),
        (-2i64..4).prop_map(|lo| json!({ "exclusiveMinimum": lo })),
        (-2i64..4).prop_map(|hi| json!({ "exclusiveMaximum": hi })),
        prop::sample::select(vec![1, 2, 3]).prop_map(|m| json!({ "multipleOf": m })),
        (0u64..3, 0u64..3).prop_map(|(lo, w)| json!({"minLength": lo, "maxLength": lo + w})),
        prop::sample::select(PATTERNS.to_vec())
            .prop_map(|p| json!({ "type": "string", "pattern": p })),
        (0u64..3, 0u64..3)
            .prop_map(|(lo, w)| json!({"type": "array", "minItems": lo, "maxItems": lo + w})),
        any::<bool>().prop_map(|u| json!({ "uniqueItems": u })),
        prop::sample::subsequence(NAMES.to_vec(), 0..3).prop_map(|r| json!({ "required": r })),
        (0u64..3).prop_map(|n| json!({ "maxProperties": n })),
        (0u64..3).prop_map(|n| json!({ "minProperties": n })),
    ]
}

fn schema() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 32, 3, |inner| {
        let name = prop::sample::select(NAMES.to_vec());
        prop_oneof![
            prop::collection::btree_map(name.clone(), inner.clone(), 1..3).prop_map(|m| {
                json!({"type": "object", "properties": m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>()})
            }),
            (prop::collection::btree_map(name.clone(), inner.clone(), 0..3), inner.clone()).prop_map(|(m, ap)| {
                json!({"properties": m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>(), "additionalProperties": ap})
            }),
            (prop::sample::select(PATTERNS.to_vec()), inner.clone())
                .prop_map(|(p, s)| json!({ "patternProperties": { p: s } })),
            inner.clone().prop_map(|s| json!({ "propertyNames": s })),
            (name.clone(), prop::sample::subsequence(NAMES.to_vec(), 1..3))
                .prop_map(|(k, r)| json!({ "dependentRequired": { k: r } })),
            inner.clone().prop_map(|s| json!({ "type": "array", "items": s })),
            (prop::collection::vec(inner.clone(), 1..3), inner.clone())
                .prop_map(|(p, s)| json!({ "prefixItems": p, "items": s })),
            inner.clone().prop_map(|s| json!({ "contains": s })),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({ "allOf": v })),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({ "anyOf": v })),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({ "oneOf": v })),
            inner.clone().prop_map(|s| json!({ "not": s })),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(i, t, e)| json!({"if": i, "then": t, "else": e})),
            (inner.clone(), leaf()).prop_map(|(a, b)| merge(a, b)),
        ]
    })
}

/// A recursive schema: the root is an object whose property `r` holds a schema in which `#`
/// may appear wherever a subschema may (always below a property, so the recursion descends).
fn recursive_schema() -> impl Strategy<Value = Value> {
    let with_ref = prop_oneof![3 => leaf(), 1 => Just(json!({"$ref": "#"}))].prop_recursive(
        2,
        12,
        2,
        |inner| {
            prop_oneof![
                inner
                    .clone()
                    .prop_map(|s| json!({"type": "array", "items": s})),
                (prop::sample::select(NAMES.to_vec()), inner.clone())
                    .prop_map(|(k, s)| json!({"type": "object", "properties": { k: s }})),
                prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({ "anyOf": v })),
            ]
        },
    );
    (with_ref, leaf())
        .prop_map(|(r, extra)| merge(json!({"type": "object", "properties": {"r": r}}), extra))
}

/// The keywords of both (the second wins on a clash); a boolean schema is kept as it is.
fn merge(a: Value, b: Value) -> Value {
    match (a, b) {
        (Value::Object(mut x), Value::Object(y)) => {
            for (k, v) in y {
                x.insert(k, v);
            }
            Value::Object(x)
        }
        (a, _) => a,
    }
}

/// Where a JSON value sits in a schema, so that edits keep the schema valid.
#[derive(Clone, Copy)]
enum Place {
    Schema,
    SchemaMap,
    SchemaList,
    Other,
}

/// The place of the value of `keyword` in a schema object.
fn place_of(keyword: &str) -> Place {
    match keyword {
        "properties" | "patternProperties" | "$defs" | "dependentSchemas" => Place::SchemaMap,
        "allOf" | "anyOf" | "oneOf" | "prefixItems" => Place::SchemaList,
        "items"
        | "additionalProperties"
        | "contains"
        | "propertyNames"
        | "not"
        | "if"
        | "then"
        | "else" => Place::Schema,
        _ => Place::Other,
    }
}

/// A small, deterministic edit driven by `choices`: loosen or tighten a number, drop a
/// keyword, change a type, or edit a subschema, so that pairs are often related (and often
/// compatible). Edits keep the schema valid.
fn mutate(v: &Value, choices: &[u8]) -> Value {
    fn go(
        v: &Value,
        place: Place,
        key: &str,
        choices: &mut std::slice::Iter<'_, u8>,
        depth: usize,
    ) -> Value {
        let c = *choices.next().unwrap_or(&0);
        match (v, place) {
            (Value::Object(map), Place::Schema | Place::SchemaMap) if !map.is_empty() => {
                let keys: Vec<&String> = map.keys().collect();
                let target = keys[c as usize % keys.len()].clone();
                let child_place = match place {
                    Place::SchemaMap => Place::Schema,
                    _ => place_of(&target),
                };
                let mut out = map.clone();
                match (c / 16) % 4 {
                    0 if target != "$ref" => {
                        out.remove(&target);
                    }
                    3 if matches!(place, Place::Schema) => {
                        out.insert("type".to_owned(), json!(TYPES[c as usize % TYPES.len()]));
                    }
                    _ if depth < 6 => {
                        out.insert(
                            target.clone(),
                            go(&map[&target], child_place, &target, choices, depth + 1),
                        );
                    }
                    _ => {}
                }
                Value::Object(out)
            }
            (Value::Array(items), Place::SchemaList) if !items.is_empty() => {
                let mut out = items.clone();
                let i = c as usize % items.len();
                out[i] = go(&items[i], Place::Schema, key, choices, depth + 1);
                Value::Array(out)
            }
            (Value::Bool(b), Place::Schema | Place::Other) => {
                Value::Bool(if c % 2 == 0 { !b } else { *b })
            }
            (Value::Number(n), Place::Other) => match n.as_i64() {
                Some(n) => {
                    let moved = n + i64::from(c % 3) - 1;
                    let floor = match key {
                        "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => moved,
                        "multipleOf" => moved.max(1),
                        _ => moved.max(0),
                    };
                    json!(floor)
                }
                None => v.clone(),
            },
            (other, _) => other.clone(),
        }
    }
    go(v, Place::Schema, "", &mut choices.iter(), 0)
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::validator_for(schema)
        .unwrap_or_else(|e| panic!("generated schema {schema} does not compile: {e}"))
}

fn related_pair() -> impl Strategy<Value = (Value, Value)> {
    let base = prop_oneof![3 => schema(), 1 => recursive_schema()];
    (base, prop::collection::vec(any::<u8>(), 1..8), schema()).prop_flat_map(
        |(a, choices, other)| {
            let mutated = mutate(&a, &choices);
            prop_oneof![
                4 => Just((a.clone(), mutated.clone())),
                1 => Just((mutated, a.clone())),
                1 => Just((a.clone(), json!({"anyOf": [a.clone(), other.clone()]}))),
                1 => Just((a.clone(), json!({"allOf": [a.clone(), other.clone()]}))),
                1 => Just((a.clone(), other)),
            ]
        },
    )
}

/// The number of cases: moderate by default (CI has two cores), more with `PROPTEST_CASES`.
/// Failures are not persisted to a file: the interesting ones become unit tests in the crate
/// (`compat::tests::rewritings_found_by_fuzzing_are_equivalent`).
fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn a_schema_is_fully_compatible_with_itself(a in prop_oneof![schema(), recursive_schema()]) {
        let c = check(&a, &a).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(c.full && c.changes.is_empty());
        // An equivalent rewriting exercises the reasoning rather than the text comparison.
        let wrapped = json!({"allOf": [a.clone()]});
        let c = check(&a, &wrapped).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(c.full, "{} vs its allOf wrapping: {:#?}", a, c.changes);
    }

    #[test]
    fn backward_is_forward_reversed((a, b) in related_pair()) {
        let ab = check(&a, &b).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let ba = check(&b, &a).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(ab.backward, ba.forward, "old {} new {}", a, b);
        prop_assert_eq!(ab.forward, ba.backward, "old {} new {}", a, b);
        prop_assert_eq!(ab.full, ab.backward && ab.forward);
        // A failing direction is always explained.
        prop_assert!(ab.backward || ab.changes.iter().any(|c| c.breaks_backward));
        prop_assert!(ab.forward || ab.changes.iter().any(|c| c.breaks_forward));
    }

    #[test]
    fn verdicts_are_sound_on_instances(
        (a, b) in related_pair(),
        instances in prop::collection::vec(instance(), 24),
    ) {
        let c = check(&a, &b).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (va, vb) = (validator(&a), validator(&b));
        for i in &instances {
            let (in_a, in_b) = (va.is_valid(i), vb.is_valid(i));
            prop_assert!(!(c.backward && in_a && !in_b), "said backward, but {} is valid under {} and not under {}", i, a, b);
            prop_assert!(!(c.forward && in_b && !in_a), "said forward, but {} is valid under {} and not under {}", i, b, a);
        }
    }
}

/// The same schema spelled in draft 7: `prefixItems`/`items` become `items` (an array) and
/// `additionalItems`, `dependentRequired` becomes `dependencies`.
fn to_draft_07(v: &Value) -> Value {
    fn go(v: &Value) -> Value {
        let Value::Object(map) = v else {
            return v.clone();
        };
        let mut out = Map::new();
        for (k, x) in map {
            let converted = match x {
                Value::Object(m)
                    if matches!(k.as_str(), "properties" | "patternProperties" | "$defs") =>
                {
                    Value::Object(m.iter().map(|(n, s)| (n.clone(), go(s))).collect())
                }
                Value::Array(items)
                    if matches!(k.as_str(), "allOf" | "anyOf" | "oneOf" | "prefixItems") =>
                {
                    Value::Array(items.iter().map(go).collect())
                }
                Value::Array(_) => x.clone(),
                _ if matches!(
                    k.as_str(),
                    "items"
                        | "additionalProperties"
                        | "contains"
                        | "propertyNames"
                        | "not"
                        | "if"
                        | "then"
                        | "else"
                ) =>
                {
                    go(x)
                }
                _ => x.clone(),
            };
            match k.as_str() {
                "prefixItems" => {
                    out.insert("items".into(), converted);
                }
                "items" if map.contains_key("prefixItems") => {
                    out.insert("additionalItems".into(), converted);
                }
                "dependentRequired" => {
                    out.insert("dependencies".into(), converted);
                }
                _ => {
                    out.insert(k.clone(), converted);
                }
            }
        }
        Value::Object(out)
    }
    match go(v) {
        Value::Object(mut m) => {
            m.insert(
                "$schema".into(),
                json!("http://json-schema.org/draft-07/schema#"),
            );
            Value::Object(m)
        }
        other => other,
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn dialects_are_read_as_the_validator_reads_them(
        a in schema(),
        instances in prop::collection::vec(instance(), 16),
    ) {
        // Only schemas whose root is an object can carry `$schema`; `$ref` and `if` mean the same in both.
        prop_assume!(a.is_object());
        let b = to_draft_07(&a);
        let (va, vb) = (validator(&a), validator(&b));
        for i in &instances {
            // The conversion itself is faithful (per the validator)...
            prop_assert_eq!(va.is_valid(i), vb.is_valid(i), "{} on {} vs {}", i, a, b);
        }
        // ...so the checker must not tell them apart, unless it says it reached a limit.
        let c = check(&a, &b).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let limited = c.changes.iter().any(|ch| ch.kind == mutatis_schema::compat::ChangeKind::AnalysisLimit);
        prop_assert!(c.full || limited, "{} vs {}: {:#?}", a, b, c.changes);
    }
}

/// Arbitrary JSON built from schema keywords and random values: often not a valid schema.
fn keyword_soup() -> impl Strategy<Value = Value> {
    const KEYS: &[&str] = &[
        "type",
        "enum",
        "const",
        "minimum",
        "exclusiveMinimum",
        "multipleOf",
        "maxLength",
        "pattern",
        "items",
        "prefixItems",
        "additionalItems",
        "contains",
        "minContains",
        "properties",
        "patternProperties",
        "additionalProperties",
        "required",
        "dependentRequired",
        "dependentSchemas",
        "dependencies",
        "propertyNames",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "$ref",
        "$defs",
        "definitions",
        "$id",
        "$anchor",
        "$schema",
        "x-unknown",
    ];
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        prop::sample::select(vec![
            "#",
            "#/$defs/a",
            "#/definitions/a",
            "#/properties/a",
            "#a",
            "string",
            "integer",
            "(",
            "^a",
            "http://json-schema.org/draft-07/schema#",
            "https://json-schema.org/draft/2020-12/schema",
            "http://json-schema.org/draft-04/schema#",
            "a",
        ])
        .prop_map(|s| json!(s)),
    ];
    scalar.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(KEYS.to_vec()), inner.clone(), 0..5)
                .prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            prop::collection::btree_map(prop::sample::select(vec!["a", "b"]), inner, 0..3)
                .prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
        ]
    })
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn arbitrary_values_never_panic_or_hang(a in keyword_soup(), b in keyword_soup()) {
        let start = Instant::now();
        let r = check(&a, &b);
        prop_assert!(start.elapsed() < Duration::from_secs(5), "took {:?} on {} / {}", start.elapsed(), a, b);
        if let Ok(c) = r {
            prop_assert_eq!(c.full, c.backward && c.forward);
        }
        let chain = check_chain(&[a.clone(), b.clone(), a], CompatMode::FullTransitive);
        prop_assert!(start.elapsed() < Duration::from_secs(10));
        if let Ok(v) = chain {
            prop_assert_eq!(v.checks.len(), 2);
        }
    }
}

/// One version of one type: an object with some required fields, an enum, bounds, an array of
/// objects, and a `$ref` to a shared definition; closed, as stored types usually are. Version `v`
/// adds an optional field and loosens a bound, so every step is backward compatible.
fn realistic(t: usize, v: usize) -> Value {
    let mut props = Map::new();
    props.insert(
        "id".into(),
        json!({"type": "string", "pattern": "^[a-z0-9-]+$"}),
    );
    props.insert(
        "kind".into(),
        json!({"enum": ["a", "b", "c", format!("k{t}")]}),
    );
    props.insert(
        "count".into(),
        json!({"type": "integer", "minimum": 0, "maximum": 1000 + v}),
    );
    props.insert(
        "tags".into(),
        json!({"type": "array", "items": {"type": "string", "maxLength": 32}, "uniqueItems": true}),
    );
    props.insert("owner".into(), json!({"$ref": "#/$defs/person"}));
    props.insert(
        "lines".into(),
        json!({"type": "array", "items": {"type": "object", "properties": {
            "sku": {"type": "string"}, "qty": {"type": "number", "exclusiveMinimum": 0}},
            "required": ["sku"]}}),
    );
    for f in 0..v {
        props.insert(
            format!("field{f}"),
            json!({"type": ["string", "null"], "maxLength": 100 + t}),
        );
    }
    json!({
        "$defs": {"person": {"type": "object", "properties": {"name": {"type": "string"}, "email": {"type": "string", "format": "email"}}, "required": ["name"]}},
        "type": "object",
        "properties": props,
        "required": ["id", "kind"],
        "additionalProperties": false,
    })
}

/// CPU time of the current thread (Linux), so that tests running in parallel on the same cores
/// do not count against this one; `None` elsewhere.
fn thread_cpu_time() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

#[test]
fn two_hundred_types_by_ten_versions_is_fast() {
    let histories: Vec<Vec<Value>> = (0..200)
        .map(|t| (0..10).map(|v| realistic(t, v)).collect())
        .collect();
    let (wall, cpu) = (Instant::now(), thread_cpu_time());
    let mut pairs = 0;
    for h in &histories {
        // What a registry does for the newest version, and the whole history replayed.
        let verdict =
            check_chain(h, CompatMode::BackwardTransitive).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            verdict.compatible,
            "{:#?}",
            verdict
                .checks
                .iter()
                .find(|p| !p.compatible)
                .map(|p| &p.result.changes)
        );
        pairs += verdict.checks.len();
        let history = check_history(h, CompatMode::Backward).unwrap_or_else(|e| panic!("{e}"));
        assert!(history.compatible);
        pairs += history.checks.len();
    }
    let wall = wall.elapsed();
    let cpu = cpu.and_then(|start| Some(thread_cpu_time()? - start));
    println!("200 types x 10 versions: {pairs} pairwise checks in {wall:?} wall, {cpu:?} CPU");
    // Speed is measured, not asserted: the figure is printed here and reported in
    // BENCHMARKS.md (run this test with `--release -- --nocapture`).
}
