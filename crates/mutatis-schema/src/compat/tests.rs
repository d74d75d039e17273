//! Behaviour of the checker on typical schema edits: verdicts, labels, pointers, errors.

use serde_json::{json, Value};

use super::*;

fn run(old: &Value, new: &Value) -> Compatibility {
    check(old, new).unwrap_or_else(|e| panic!("check failed: {e}"))
}

fn find(c: &Compatibility, kind: ChangeKind) -> &Change {
    c.changes
        .iter()
        .find(|ch| ch.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} in {:#?}", c.changes))
}

fn valid(schema: &Value, instance: &Value) -> bool {
    jsonschema::validator_for(schema)
        .map(|v| v.is_valid(instance))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn adding_a_property_breaks_backward_on_open_objects_and_forward_on_closed_ones() {
    let open = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let added = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}});
    let c = run(&open, &added);
    // {"b": "x"} was valid and no longer is.
    assert!(!c.backward && c.forward);
    let ch = find(&c, ChangeKind::PropertyAdded);
    assert_eq!(ch.pointer, "/properties/b");
    assert!(ch.breaks_backward && !ch.breaks_forward);
    assert_eq!(ch.new, Some(json!({"type": "integer"})));

    let closed = json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false});
    let c = run(&closed, &added);
    assert!(c.backward && !c.forward);
    let ch = find(&c, ChangeKind::PropertyAdded);
    assert!(!ch.breaks_backward && ch.breaks_forward);
    assert!(c
        .changes
        .iter()
        .any(|ch| ch.kind == ChangeKind::AdditionalPropertiesAllowed));
}

#[test]
fn removing_a_property_is_reported_at_its_old_place() {
    let old = json!({"$defs": {"x": {"type": "string"}}, "properties": {"gone": {"$ref": "#/$defs/x"}, "kept": {}}, "additionalProperties": false});
    let new = json!({"properties": {"kept": {}}, "additionalProperties": false});
    let c = run(&old, &new);
    assert!(!c.backward && c.forward);
    let ch = find(&c, ChangeKind::PropertyRemoved);
    assert_eq!(ch.pointer, "/properties/gone");
    assert!(ch.breaks_backward && !ch.breaks_forward);
}

#[test]
fn required_changes_are_labelled_with_the_property() {
    let old = json!({"type": "object", "properties": {"name": {"type": "string"}}});
    let new =
        json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]});
    let c = run(&old, &new);
    assert!(!c.backward && c.forward);
    let ch = find(&c, ChangeKind::RequiredAdded);
    assert_eq!(
        (ch.pointer.as_str(), ch.new.clone()),
        ("/required", Some(json!("name")))
    );
    assert!(ch.breaks_backward);
    let back = run(&new, &old);
    assert!(back.backward && !back.forward);
    assert!(find(&back, ChangeKind::RequiredRemoved).breaks_forward);
}

#[test]
fn nested_type_changes_point_at_the_keyword() {
    let old = json!({"properties": {"a": {"properties": {"b": {"type": ["string", "null"]}}}}});
    let new = json!({"properties": {"a": {"properties": {"b": {"type": "string"}}}}});
    let c = run(&old, &new);
    assert!(!c.backward && c.forward);
    let ch = find(&c, ChangeKind::TypeNarrowed);
    assert_eq!(ch.pointer, "/properties/a/properties/b/type");
    assert_eq!(ch.old, Some(json!(["null", "string"])));
    let c = run(&json!({"type": "string"}), &json!({"type": "number"}));
    assert!(!c.backward && !c.forward);
    let ch = find(&c, ChangeKind::TypeChanged);
    assert!(ch.breaks_backward && ch.breaks_forward);
}

#[test]
fn enums_and_bounds() {
    let c = run(
        &json!({"enum": ["a", "b"]}),
        &json!({"enum": ["b", "a", "c"]}),
    );
    assert!(c.backward && !c.forward);
    assert!(find(&c, ChangeKind::EnumExtended).breaks_forward);

    let c = run(
        &json!({"type": "integer", "minimum": 0}),
        &json!({"type": "integer", "exclusiveMinimum": 0}),
    );
    assert!(!c.backward && c.forward);
    let ch = find(&c, ChangeKind::BoundTightened);
    assert_eq!(ch.pointer, "/exclusiveMinimum");
    // Integers above -1 exclusive are the integers from 0: the same set.
    let c = run(
        &json!({"type": "integer", "minimum": 0}),
        &json!({"type": "integer", "exclusiveMinimum": -1}),
    );
    assert!(c.full, "{:#?}", c.changes);
    let c = run(
        &json!({"type": "string", "maxLength": 5}),
        &json!({"type": "string", "maxLength": 8}),
    );
    assert!(c.backward && !c.forward);
    assert_eq!(find(&c, ChangeKind::BoundLoosened).pointer, "/maxLength");
    let c = run(&json!({"multipleOf": 10}), &json!({"multipleOf": 5}));
    assert!(c.backward && !c.forward);
}

#[test]
fn patterns_and_formats_are_equal_or_conservative() {
    let s = |p: &str| json!({"type": "string", "pattern": p});
    assert!(run(&s("^a+$"), &s("^a+$")).full);
    let c = run(&s("^a+$"), &s("^a*$"));
    // Maybe true, but not provable without comparing regular languages: conservative.
    assert!(!c.backward && !c.forward);
    assert_eq!(find(&c, ChangeKind::PatternChanged).pointer, "/pattern");
    let c = run(
        &json!({"type": "string", "format": "email"}),
        &json!({"type": "string"}),
    );
    assert!(c.backward && !c.forward);
    assert!(find(&c, ChangeKind::FormatChanged).breaks_forward);
    // Enum values are checked against patterns by the validator's own regex engine.
    let c = run(&json!({"enum": ["abc", "ab"]}), &s("^ab"));
    assert!(c.backward);
}

#[test]
fn refs_recursion_and_ref_changes() {
    let tree = |leaf: Value| {
        json!({"$defs": {"node": {"type": "object", "properties": {
            "name": leaf, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
            "$ref": "#/$defs/node"})
    };
    let old = tree(json!({"type": "string"}));
    let new = tree(json!({"type": "string", "minLength": 1}));
    let c = run(&old, &new);
    assert!(!c.backward && c.forward);
    let ch = find(&c, ChangeKind::BoundTightened);
    assert_eq!(ch.pointer, "/$defs/node/properties/name/minLength");
    assert!(run(&old, &old.clone()).full);
    // The same tree, written inline at the root: equivalent.
    let inline = json!({"type": "object", "properties": {"name": {"type": "string"},
        "children": {"type": "array", "items": {"$ref": "#"}}}});
    assert!(run(&old, &inline).full);

    let two = |target: &str| {
        json!({"$defs": {"a": {"type": "string"}, "b": {"type": "string", "maxLength": 3}},
               "properties": {"x": {"$ref": target}}})
    };
    let c = run(&two("#/$defs/a"), &two("#/$defs/b"));
    assert!(!c.backward && c.forward);
    let ch = find(&c, ChangeKind::RefChanged);
    assert_eq!(ch.pointer, "/$defs/b");
    assert!(ch.breaks_backward);
}

#[test]
fn unknown_keywords_are_reported_and_make_the_affected_direction_false() {
    let old = json!({"type": "string"});
    let new = json!({"type": "string", "x-checked-by": "backend"});
    let c = run(&old, &new);
    assert!(!c.backward && c.forward);
    assert_eq!(
        c.unknown_keywords,
        vec![UnknownKeyword {
            keyword: "x-checked-by".to_owned(),
            pointer: "/x-checked-by".to_owned(),
            side: Role::New
        }]
    );
    assert!(find(&c, ChangeKind::UnknownKeyword).breaks_backward);
    // Under `not`, an unknown keyword widens its schema: the other direction is affected.
    let c = run(
        &json!({"not": {"type": "null", "x-y": 1}}),
        &json!({"not": {"type": "null"}}),
    );
    assert!(!c.backward);
    // Keywords from another draft are not keywords there.
    let c = run(
        &json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "array"}),
        &json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "array", "prefixItems": [{"type": "string"}]}),
    );
    assert!(!c.backward && c.unknown_keywords[0].keyword == "prefixItems");
    // Identical schemas accept the same instances, whatever they contain.
    assert!(run(&new, &new.clone()).full);
}

#[test]
fn one_of_exclusivity_is_respected() {
    let old = json!({"type": "string"});
    let new = json!({"oneOf": [{"type": "string"}, {"maxLength": 5}]});
    let c = run(&old, &new);
    // "ab" matches both branches of the new oneOf, so it is invalid there.
    assert!(valid(&old, &json!("ab")) && !valid(&new, &json!("ab")));
    assert!(!c.backward);
    let disjoint = json!({"oneOf": [{"type": "string"}, {"type": "number"}]});
    assert!(run(&old, &disjoint).backward);
}

#[test]
fn draft_4_integers_are_spelled_without_a_fraction() {
    let d7 = json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "integer"});
    let d4 = json!({"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"});
    // 1.0 is an integer in draft 7, not in draft 4.
    assert!(valid(&d7, &json!(1.0)) && !valid(&d4, &json!(1.0)));
    let c = run(&d7, &d4);
    assert!(!c.backward && c.forward);
}

#[test]
fn errors_name_the_side_and_pointer() {
    let e = check(&json!({}), &json!({"properties": {"a": {"required": 3}}})).err();
    assert_eq!(
        e.as_ref().and_then(CompatError::side),
        Some(SchemaSide::New)
    );
    assert_eq!(
        e.as_ref().and_then(CompatError::pointer),
        Some("/properties/a/required")
    );
    let msg = e.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.starts_with("new schema is not valid JSON Schema at /properties/a/required"),
        "{msg}"
    );

    let e = check(
        &json!({"items": {"$ref": "#/definitions/nope"}}),
        &json!({}),
    )
    .err();
    assert!(
        matches!(&e, Some(CompatError::UnresolvableRef { side: SchemaSide::Old, pointer, .. }) if pointer == "/items/$ref"),
        "{e:?}"
    );
    let e = check(&json!({"$schema": "https://example.com/mine"}), &json!({})).err();
    assert!(matches!(e, Some(CompatError::UnknownDialect { .. })));
    let e = check(&json!({}), &json!({"type": "strnig"})).err();
    assert!(matches!(
        e,
        Some(CompatError::InvalidSchema {
            side: SchemaSide::New,
            ..
        })
    ));
}

#[test]
fn json_shape_is_stable() {
    let c = run(
        &json!({"type": "string"}),
        &json!({"type": ["string", "null"]}),
    );
    let v = c.to_json();
    assert_eq!(v["backward"], json!(true));
    assert_eq!(v["forward"], json!(false));
    assert_eq!(v["full"], json!(false));
    let ch = &v["changes"][0];
    assert_eq!(ch["kind"], json!("type_widened"));
    assert_eq!(ch["pointer"], json!("/type"));
    assert_eq!(ch["breaks_backward"], json!(false));
    assert_eq!(ch["breaks_forward"], json!(true));
    assert!(ch["detail"].is_string());
    assert_eq!(v["unknown_keywords"], json!([]));
}

#[test]
fn limits_make_answers_conservative_and_say_so() {
    // 8 anyOfs of 4 disjoint length ranges: 4^8 combinations, beyond the caps.
    let ranges = |shift: u64| json!({"anyOf": (0..4u64).map(|i| json!({"type": "string", "minLength": 10 * i + shift, "maxLength": 10 * i + shift + 3})).collect::<Vec<_>>()});
    let old = json!({"allOf": (0..8u64).map(ranges).collect::<Vec<_>>()});
    let new = json!({"allOf": [old.clone()]});
    let start = std::time::Instant::now();
    let c = run(&old, &new);
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
    if !c.backward {
        assert!(c
            .changes
            .iter()
            .any(|ch| ch.kind == ChangeKind::AnalysisLimit && ch.breaks_backward));
    }
    // Over-approximation still proves what it can.
    assert!(run(&old, &json!({"type": "string"})).backward);
}

#[test]
fn rewritings_found_by_fuzzing_are_equivalent() {
    // Each schema against `{"allOf": [itself]}`: equal sets, which the reasoning (not the text
    // comparison) must prove. These once hit the size caps.
    for a in [
        json!({"oneOf": [{"properties": {"a": {}}, "additionalProperties": false},
                         {"properties": {"a": {}, "b": {}}, "additionalProperties": false}]}),
        json!({"oneOf": [{"not": {"properties": {"b": {"required": ["ab"]}}, "additionalProperties": {"type": ["array"]}}},
                         {"dependentRequired": {"a": ["a", "ab"]}}]}),
        json!({"oneOf": [{"not": {"properties": {"b": {"required": ["ab"]}, "c": {"type": ["number"]}}, "additionalProperties": {}}},
                         {"dependentRequired": {"a": ["a", "ab"]}}]}),
    ] {
        let wrapped = json!({"allOf": [a.clone()]});
        let c = run(&a, &wrapped);
        assert!(c.full, "{a}: {:#?}", c.changes);
    }
}

#[test]
fn deep_schemas_stay_within_bounds() {
    // 60 levels of nested properties (serde_json parses at most 128 levels of JSON).
    fn nest(depth: usize, leaf: Value) -> Value {
        (0..depth).fold(
            leaf,
            |inner, _| json!({"type": "object", "properties": {"x": inner}, "required": ["x"]}),
        )
    }
    let old = nest(60, json!({"type": "string"}));
    let new = nest(60, json!({"type": "string", "maxLength": 3}));
    let c = run(&old, &new);
    assert!(!c.backward && c.forward);
    let c = run(&new, &{
        let mut v = new.clone();
        // An equivalent spelling at the root defeats the text comparison.
        v["title"] = json!("same");
        v
    });
    assert!(c.full);
}

#[test]
fn long_ref_chains_stay_within_bounds() {
    // A chain of 300 definitions, each a `$ref` to the next plus a constraint.
    let defs = |bound: u64| {
        let mut defs = serde_json::Map::new();
        for i in 0..300 {
            let next = if i + 1 < 300 {
                json!({"$ref": format!("#/$defs/d{}", i + 1)})
            } else {
                json!(true)
            };
            defs.insert(
                format!("d{i}"),
                json!({"allOf": [next, {"maxLength": bound + i}]}),
            );
        }
        json!({"$defs": defs, "$ref": "#/$defs/d0"})
    };
    let start = std::time::Instant::now();
    let c = run(&defs(10), &defs(5));
    assert!(!c.backward);
    let c = run(&defs(5), &defs(10));
    assert!(
        c.backward
            || c.changes
                .iter()
                .any(|ch| ch.kind == ChangeKind::AnalysisLimit)
    );
    assert!(start.elapsed().as_secs() < 20);
}

#[test]
fn unrolled_recursion_is_equivalent() {
    // A recursive list compared with a once-unrolled spelling of itself.
    let list = json!({"type": "object", "properties": {"head": {"type": "integer"}, "tail": {"$ref": "#"}}});
    let unrolled = json!({"$defs": {"list": list.clone()}, "type": "object", "properties": {
        "head": {"type": "integer"}, "tail": {"$ref": "#/$defs/list"}}});
    assert!(run(&list, &unrolled).full);
}

#[test]
fn wide_unions_complete_quickly() {
    let branch = |i: usize| {
        json!({"type": "object", "properties": {"kind": {"const": format!("k{i}")}, "a": {"type": "string"},
               "b": {"type": "integer", "maximum": i}}, "required": ["kind", "a"], "additionalProperties": false})
    };
    let forward: Vec<Value> = (0..40).map(branch).collect();
    let mut backward = forward.clone();
    backward.reverse();
    for keyword in ["anyOf", "oneOf"] {
        let start = std::time::Instant::now();
        let c = run(
            &json!({ keyword: forward.clone() }),
            &json!({ keyword: backward.clone() }),
        );
        assert!(
            start.elapsed().as_secs() < 20,
            "{keyword} took {:?}",
            start.elapsed()
        );
        // The same union in another order: equal, or conservatively "not proven" with a reason.
        assert!(
            c.full
                || c.changes
                    .iter()
                    .any(|ch| ch.kind == ChangeKind::AnalysisLimit),
            "{keyword}: {:#?}",
            c.changes
        );
    }
}
