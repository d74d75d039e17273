//! Cambria's own test suite, run against mutatis-lens.
//!
//! `tests/conformance/cambria/cases.jsonl` holds the cases recorded from Cambria's mocha suite
//! (see `tests/conformance/README.md`). Every case of kind `doc`, `schema`, `patch` and
//! `expandPatch` runs here; `graph` and `graphSchemas` cases ask for lens graphs over several
//! versions, which the schema-set crate (`mutatis-schema`) builds, so they are run there.
//!
//! A case passes when mutatis gives Cambria's result: the sub-values the upstream test asserted
//! (`asserted`), or the whole recorded `expected` when upstream asserted nothing narrower, or an
//! error when Cambria threw. `required` lists in schemas are compared as sets (their order has
//! no meaning in JSON Schema). Where mutatis deliberately differs, the case is listed in
//! [`DEVIATIONS`] with the reason, and the same table is in `CONFORMANCE.md`. The test fails when
//! a case outside the list fails, and also when a listed case starts to pass, so the list stays
//! honest.

use std::collections::BTreeMap;
use std::io::Write;

use mutatis_lens::{
    expand_patch, infer_schema, Direction, Lens, LensError, Params, Plan, Transforms,
};
use serde_json::{json, Map, Value};

const CASES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/conformance/cambria/cases.jsonl"
));

/// Why a case Cambria passes is not matched. Keep in step with `CONFORMANCE.md`.
const DEVIATIONS: &[(&str, &str)] = &[
    (
        "cambria-004",
        "partial input: Cambria merges a partial document onto the stored one as a patch (fields \
         the input omits are kept); mutatis translates whole documents, so a field the writer's \
         version has but the input omits is absent (partial writes are JSON Patches)",
    ),
    (
        "cambria-019",
        "upstream-skipped: the intended result drops the `default` and `required` of the wrapped \
         object; mutatis keeps the item schema whole (as Cambria actually does)",
    ),
    (
        "cambria-024",
        "upstream-skipped: Cambria garbles a plunged object (its children vanish) and the intended \
         result lists `summary` as required in `metadata`; mutatis moves the subschema unchanged",
    ),
    (
        "cambria-028",
        "adds `metadata`, which the schema already has: Cambria silently replaces the property's \
         schema; mutatis refuses the lens (SchemaMismatch)",
    ),
    (
        "cambria-033",
        "rename makes an optional field required in Cambria; mutatis keeps it optional",
    ),
    (
        "cambria-035",
        "Cambria fills every schema default into a translated document (`tasks`, `complete`, \
         `metadata`); mutatis never invents values for optional fields the document lacks",
    ),
    (
        "cambria-041",
        "Cambria fills every schema default into a translated document (`otherparent`); mutatis \
         never invents values for optional fields the document lacks",
    ),
    (
        "cambria-043",
        "rename makes an optional field required in Cambria; mutatis keeps it optional",
    ),
    (
        "cambria-045",
        "RFC 6902: after `replace /metadata {}` the member `/metadata/name` does not exist, so \
         mutatis writes it with `add` (Cambria's `replace` fails in a conforming applier)",
    ),
    (
        "cambria-047",
        "rename makes an optional field required in Cambria; mutatis keeps it optional",
    ),
    (
        "cambria-050",
        "upstream-skipped: Cambria crashes plunging into an existing object; mutatis plunges \
         (`{tags: {color: orange}}`)",
    ),
    (
        "cambria-067",
        "RFC 6902: the members of a replaced container are written with `add`, not `replace`",
    ),
    (
        "cambria-068",
        "RFC 6902: the members of a replaced container are written with `add`, not `replace`",
    ),
    (
        "cambria-069",
        "RFC 6902: the members of a replaced container are written with `add`, not `replace`",
    ),
    (
        "cambria-070",
        "RFC 6902: the members of a replaced container are written with `add`, not `replace`",
    ),
];

/// Kinds run by `mutatis-schema`, not here.
const ELSEWHERE: &[&str] = &["graph", "graphSchemas"];

#[derive(Default)]
struct Tally {
    passed: usize,
    deviations: usize,
}

#[test]
fn cambria_conformance() {
    let mut by_kind: BTreeMap<String, Tally> = BTreeMap::new();
    let mut skipped = 0;
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    let mut deviating = Vec::new();
    for (n, line) in CASES.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let case: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("cases.jsonl line {}: {e}", n + 1));
        let id = case["id"].as_str().expect("case id").to_owned();
        let kind = case["kind"].as_str().expect("case kind").to_owned();
        seen.push(id.clone());
        if ELSEWHERE.contains(&kind.as_str()) {
            skipped += 1;
            continue;
        }
        let outcome = run_case(&case);
        let deviation = DEVIATIONS.iter().find(|(d, _)| *d == id);
        let tally = by_kind.entry(kind).or_default();
        match (outcome, deviation) {
            (Ok(()), None) => tally.passed += 1,
            (Err(why), Some(_)) => {
                tally.deviations += 1;
                let short: String = why.split_whitespace().collect::<Vec<_>>().join(" ");
                let short: String = short.chars().take(160).collect();
                deviating.push(format!("  deviation {id}: {short}"));
            }
            (Err(why), None) => problems.push(format!("{id} fails: {why}")),
            (Ok(()), Some((_, reason))) => problems.push(format!(
                "{id} is listed as a deviation ({reason}) but now matches Cambria: \
                 remove it from DEVIATIONS and CONFORMANCE.md"
            )),
        }
    }
    for (id, _) in DEVIATIONS {
        if !seen.iter().any(|s| s == id) {
            problems.push(format!("deviation {id} names no case"));
        }
    }
    let passed: usize = by_kind.values().map(|t| t.passed).sum();
    let deviations: usize = by_kind.values().map(|t| t.deviations).sum();
    // The counts go to the real stderr, which the test harness does not capture, so that every
    // CI log shows them.
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "cambria conformance: {passed} passed, {deviations} deviations, {skipped} graph cases run by mutatis-schema"
    );
    for (kind, t) in &by_kind {
        let _ = writeln!(
            err,
            "  {kind}: {} passed, {} deviations",
            t.passed, t.deviations
        );
    }
    drop(err);
    for d in &deviating {
        println!("{d}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The runner must actually have run the suite.
    assert!(
        passed + deviations > 60,
        "only {} cases ran",
        passed + deviations
    );
}

/// What mutatis gives for a case: a value, or the error it raised.
fn actual(case: &Value) -> Result<Value, LensError> {
    let kind = case["kind"].as_str().unwrap_or_default();
    if kind == "expandPatch" {
        return expand_patch(&case["input"]);
    }
    let lens = Lens::from_ops_json(&case["lens"], "")?;
    let forward = Plan::compile(&lens, Direction::Forward, &Transforms::new())?;
    let plan = match case["direction"].as_str() {
        Some("backward") => forward.reverse(),
        _ => forward,
    };
    let input = &case["input"];
    let schema = case.get("schema").filter(|s| !s.is_null());
    match kind {
        "schema" => plan.translate_schema(input),
        "patch" => plan.translate_patch(input, schema),
        "doc" => {
            // As Cambria does, a document without a schema is checked against the schema its
            // own shape implies (what `mutatis lens apply` does too), so a lens that does not
            // fit it is an error.
            match schema {
                Some(s) => plan.translate_schema(s).map(|_| ())?,
                None => plan.check_document(input)?,
            }
            match case.get("base").filter(|b| !b.is_null()) {
                Some(base) => plan.translate_onto(input, base, &Params::new()),
                None => plan.translate(input, &Params::new()),
            }
        }
        other => panic!("unexpected case kind {other}"),
    }
}

fn run_case(case: &Value) -> Result<(), String> {
    let got = actual(case);
    let asserted: Vec<&Value> = case["asserted"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let expects_error = case.get("expected_error").is_some_and(|e| !e.is_null())
        || asserted.iter().any(|a| a.get("throws").is_some());
    let got = match (got, expects_error) {
        (Err(_), true) => return Ok(()),
        (Ok(v), true) => return Err(format!("Cambria throws, mutatis gives {v}")),
        (Err(e), false) => return Err(format!("mutatis fails: {e}")),
        (Ok(v), false) => v,
    };
    let schema_kind = case["kind"] == "schema";
    let norm = |v: &Value| {
        if schema_kind {
            sort_required(v)
        } else {
            v.clone()
        }
    };
    let checks: Vec<(&str, &Value)> = if asserted.is_empty() {
        vec![("", &case["expected"])]
    } else {
        asserted
            .iter()
            .filter_map(|a| Some((a["at"].as_str()?, a.get("expected")?)))
            .collect()
    };
    for (at, expected) in checks {
        let found = got.pointer(at).map(norm);
        if found.as_ref() != Some(&norm(expected)) {
            return Err(format!(
                "at `{at}`:\n    expected {expected}\n    got      {}",
                found.map_or_else(|| "nothing".to_owned(), |f| f.to_string())
            ));
        }
    }
    Ok(())
}

/// `required` is a set: sort every `required` list so that order does not count.
fn sort_required(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                let x = match (k.as_str(), x) {
                    ("required", Value::Array(items)) => {
                        let mut items = items.clone();
                        items.sort_by_key(|i| i.to_string());
                        Value::Array(items)
                    }
                    _ => sort_required(x),
                };
                out.insert(k.clone(), x);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sort_required).collect()),
        other => other.clone(),
    }
}

#[test]
fn inferred_schemas_follow_the_document() {
    let doc = json!({"a": 1, "b": [{"x": "s"}, {"y": null}], "c": {"d": true}});
    assert_eq!(
        infer_schema(&doc),
        json!({"type": "object", "properties": {
            "a": {"type": "number"},
            "b": {"type": "array", "items": {"type": "object", "properties": {
                "x": {"type": "string"}, "y": {"type": "null"}}}},
            "c": {"type": "object", "properties": {"d": {"type": "boolean"}}}}})
    );
}

/// Case 004's deviation is one of input shape only: given the whole document the newer
/// version's client holds (the stored document translated, with its edits), `translate_onto`
/// gives exactly Cambria's result.
#[test]
fn case_004_with_a_whole_document_matches_cambria() {
    let case = CASES
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|c| c["id"] == "cambria-004")
        .expect("case 004");
    let lens = Lens::from_ops_json(&case["lens"], "").unwrap();
    let up = Plan::compile(&lens, Direction::Forward, &Transforms::new()).unwrap();
    let base = &case["base"];
    let mut edited = up.translate(base, &Params::new()).unwrap();
    for (k, v) in case["input"].as_object().unwrap() {
        edited[k.as_str()] = v.clone();
    }
    let written = up
        .reverse()
        .translate_onto(&edited, base, &Params::new())
        .unwrap();
    assert_eq!(written, case["expected"]);
}

/// Cases 035 and 041's deviation is only about filling optional fields: every field the input
/// has is translated as Cambria translates it, and Cambria's extra fields are schema defaults.
#[test]
fn cases_035_and_041_differ_only_by_filled_defaults() {
    for id in ["cambria-035", "cambria-041"] {
        let case = CASES
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|c| c["id"] == id)
            .expect("case");
        let lens = Lens::from_ops_json(&case["lens"], "").unwrap();
        let up = Plan::compile(&lens, Direction::Forward, &Transforms::new()).unwrap();
        let got = up.translate(&case["input"], &Params::new()).unwrap();
        let expected = case["expected"].as_object().unwrap();
        let target = up.translate_schema(&case["schema"]).unwrap();
        let required = target["required"].as_array().cloned().unwrap_or_default();
        for (k, v) in expected {
            match got.get(k) {
                Some(g) => assert_eq!(g, v, "{id}: field {k}"),
                // Only optional fields are missing.
                None => assert!(!required.contains(&json!(k)), "{id}: required {k} missing"),
            }
        }
        assert!(got
            .as_object()
            .unwrap()
            .keys()
            .all(|k| expected.contains_key(k)));
    }
}
