//! JSON Schema translation: the schema of one version, derived from the previous version's schema
//! by the same ops that translate its documents.
//!
//! This is also how a lens is checked against the version it starts from when a schema set
//! loads: renaming, removing, hoisting, plunging or converting a property that the schema does
//! not have, adding one it already has, `in` on a scalar or `head` on a non-array are
//! [`LensError::SchemaMismatch`] errors naming the op, the place in the schema (a JSON pointer
//! into the schema as it stands when that op applies) and the properties that do exist.
//!
//! What each op does to a schema (the backward direction of an op is the op's reverse):
//!
//! | op | schema |
//! |---|---|
//! | `add` | the property, with `type`, `default` (the explicit one, else the value a document gets: the type's default for a required field, `null` for a nullable type) and the op's other keywords; the name joins `required` unless `required: false` |
//! | `remove` | drops the property and its `required` entry |
//! | `rename` | renames the property in place; a required source stays required, an optional one optional |
//! | `hoist`, `plunge` | move the property's schema out of / into the host; it is required where it lands only if it is certain to be there |
//! | `wrap` | `{type: array, default: [], items: <the schema without null>}` |
//! | `head` | `{anyOf: [{type: null}, <the items schema>]}` |
//! | `in`, `map` | the nested lens applies to `properties[name]` / `items` |
//! | `convert`, `transform` | with a destination type: `{type, default}` (the old default converted, else the type's default); without one the schema is kept |
//! | `copy` | the destination gets the source's schema; backward drops it |
//! | `split`, `join` | string parts ↔ one string whole |
//! | `set` | the property gets `const`; backward drops the `const` again |
//!
//! Nullable schemas (`type: [object, "null"]`, or an `anyOf`/`oneOf` of one schema and `null`,
//! which is what `head` produces) are looked through. A local `$ref` (`#/$defs/...`, any
//! `#`-pointer into the schema) is inlined where an op has to change what it points to, so
//! other users of the definition are untouched; other references are refused with an error.
//! A `false` schema has no documents, so it translates to itself.

use serde_json::{json, Map, Value};

use crate::error::LensError;
use crate::op::{type_default, FieldSpec, LensOp, Mapping, SplitJoin};
use crate::plan::{value_key, Direction, Plan};
use crate::pointer;

/// References followed in a row before giving up (a cycle of `$ref`s that point at each other).
const MAX_REF_CHAIN: usize = 32;

/// Nullable wrappers looked through in a row before giving up.
const MAX_WRAPPERS: usize = 16;

impl Plan {
    /// Translate a JSON Schema of the plan's source version into the schema of its target
    /// version, checking on the way that every op fits the schema it applies to.
    ///
    /// ```
    /// use mutatis_lens::{Direction, Lens, Plan, Transforms};
    /// use serde_json::json;
    ///
    /// let lens = Lens::from_file_str("lens:\n  - rename: {source: done, destination: finished}\n  - add: {name: important, type: boolean}\n").unwrap();
    /// let up = Plan::compile(&lens, Direction::Forward, &Transforms::new()).unwrap();
    /// let v1 = json!({"type": "object", "properties": {"title": {"type": "string"}, "done": {"type": "boolean"}},
    ///                 "required": ["title", "done"]});
    /// let v2 = up.translate_schema(&v1).unwrap();
    /// assert_eq!(v2, json!({"type": "object",
    ///     "properties": {"title": {"type": "string"}, "finished": {"type": "boolean"},
    ///                    "important": {"type": "boolean", "default": false}},
    ///     "required": ["title", "finished", "important"]}));
    /// // The reverse plan carries the schema back.
    /// assert_eq!(up.reverse().translate_schema(&v2).unwrap(), v1);
    /// // A lens that does not fit is refused, naming the op and the place.
    /// let err = up.translate_schema(&json!({"type": "object", "properties": {"title": {"type": "string"}}})).unwrap_err();
    /// assert!(err.to_string().contains("no property `done`"), "{err}");
    /// ```
    pub fn translate_schema(&self, schema: &Value) -> Result<Value, LensError> {
        let mut out = schema.clone();
        for d in self.ops() {
            // `$ref`s resolve against the schema as it is before the op: ops never change the
            // definitions they inline, so one snapshot serves the whole (possibly nested) op.
            let root = out.clone();
            let cx = Cx {
                origin: &d.origin,
                root: &root,
            };
            apply(&cx, &d.op, d.direction, &mut out, "")?;
        }
        Ok(out)
    }

    /// Check that the plan fits a document given without its schema, as Cambria does: the
    /// plan must fit the schema the document's own shape implies ([`infer_schema`]). A lens
    /// that renames, removes or converts a field the document does not have (a typo in the
    /// lens, or the wrong document) is then a [`LensError::SchemaMismatch`] naming the op and
    /// the fields there are, where translating would have passed the document through
    /// silently.
    ///
    /// ```
    /// use mutatis_lens::{Direction, Lens, Plan, Transforms};
    /// use serde_json::json;
    ///
    /// let lens = Lens::from_file_str("lens: [{rename: {source: nmae, destination: title}}]").unwrap();
    /// let plan = Plan::compile(&lens, Direction::Forward, &Transforms::new()).unwrap();
    /// let err = plan.check_document(&json!({"name": "milk"})).unwrap_err();
    /// assert!(err.to_string().contains("nmae"), "{err}");
    /// ```
    pub fn check_document(&self, doc: &Value) -> Result<(), LensError> {
        self.translate_schema(&infer_schema(doc)).map(|_| ())
    }
}

/// The schema a document's own shape implies, as Cambria infers one for a document given
/// without a schema: each value's JSON type, objects with their properties (none required:
/// another document may lack them), arrays with the shape of their elements (merged: objects
/// by their properties, anything else that differs as an `anyOf`).
pub fn infer_schema(doc: &Value) -> Value {
    match doc {
        Value::Null => json!({"type": "null"}),
        Value::Bool(_) => json!({"type": "boolean"}),
        Value::Number(_) => json!({"type": "number"}),
        Value::String(_) => json!({"type": "string"}),
        Value::Array(items) => {
            let mut merged: Option<Value> = None;
            for item in items {
                let s = infer_schema(item);
                merged = Some(match merged {
                    None => s,
                    Some(m) => merge_inferred(m, s),
                });
            }
            json!({"type": "array", "items": merged.unwrap_or_else(|| json!({}))})
        }
        Value::Object(m) => {
            let props: Map<String, Value> = m
                .iter()
                .map(|(k, v)| (k.clone(), infer_schema(v)))
                .collect();
            json!({"type": "object", "properties": props})
        }
    }
}

/// Two inferred element schemas as one.
fn merge_inferred(a: Value, b: Value) -> Value {
    if a == b {
        return a;
    }
    match (&a["type"], &b["type"]) {
        (Value::String(x), Value::String(y)) if x == "object" && y == "object" => {
            let mut props = a["properties"].as_object().cloned().unwrap_or_default();
            for (k, v) in b["properties"].as_object().cloned().unwrap_or_default() {
                match props.get_mut(&k) {
                    Some(existing) => *existing = merge_inferred(existing.take(), v),
                    None => {
                        props.insert(k, v);
                    }
                }
            }
            json!({"type": "object", "properties": props})
        }
        _ => json!({"anyOf": [a, b]}),
    }
}

// ---------------------------------------------------------------------------------------------
// Ops resolved in a direction (shared with patch translation)

/// One op as it acts in one direction: `add` backward is a drop, `hoist` backward a plunge…
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step<'a> {
    Rename {
        from: &'a str,
        to: &'a str,
    },
    /// `add` forward, `remove` backward.
    Add(&'a FieldSpec),
    /// `add` backward, `remove` forward, `copy` backward (drops the copy).
    Drop {
        name: &'a str,
    },
    Hoist {
        host: &'a str,
        name: &'a str,
    },
    Plunge {
        host: &'a str,
        name: &'a str,
    },
    Wrap {
        name: &'a str,
    },
    Head {
        name: &'a str,
    },
    In {
        name: &'a str,
        lens: &'a [LensOp],
    },
    Map {
        lens: &'a [LensOp],
    },
    /// `convert` and `transform`: the value changes, the type may.
    Convert {
        name: &'a str,
        from_type: Option<&'a Value>,
        to_type: Option<&'a Value>,
        /// The mapping in this direction, when the lens spells it out.
        mapping: Option<&'a Mapping>,
    },
    Copy {
        from: &'a str,
        to: &'a str,
    },
    Split(&'a SplitJoin),
    Join(&'a SplitJoin),
    Set {
        name: &'a str,
        value: &'a Value,
    },
    /// `set` backward: the field is whatever the older version stored.
    Unset {
        name: &'a str,
    },
}

/// What `op` does when run in `dir`.
pub(crate) fn directed(op: &LensOp, dir: Direction) -> Step<'_> {
    use Direction::{Backward, Forward};
    match (op, dir) {
        (
            LensOp::Rename {
                source,
                destination,
            },
            Forward,
        ) => Step::Rename {
            from: source,
            to: destination,
        },
        (
            LensOp::Rename {
                source,
                destination,
            },
            Backward,
        ) => Step::Rename {
            from: destination,
            to: source,
        },
        (LensOp::Add(spec), Forward) | (LensOp::Remove(spec), Backward) => Step::Add(spec),
        (LensOp::Add(spec), Backward) | (LensOp::Remove(spec), Forward) => {
            Step::Drop { name: &spec.name }
        }
        (LensOp::Hoist { host, name }, Forward) | (LensOp::Plunge { host, name }, Backward) => {
            Step::Hoist { host, name }
        }
        (LensOp::Hoist { host, name }, Backward) | (LensOp::Plunge { host, name }, Forward) => {
            Step::Plunge { host, name }
        }
        (LensOp::Wrap { name }, Forward) | (LensOp::Head { name }, Backward) => Step::Wrap { name },
        (LensOp::Wrap { name }, Backward) | (LensOp::Head { name }, Forward) => Step::Head { name },
        (LensOp::In { name, lens }, _) => Step::In { name, lens },
        (LensOp::Map { lens }, _) => Step::Map { lens },
        (LensOp::Convert(c), Forward) => Step::Convert {
            name: &c.name,
            from_type: c.source_type.as_ref(),
            to_type: c.destination_type.as_ref(),
            mapping: Some(&c.forward),
        },
        (LensOp::Convert(c), Backward) => Step::Convert {
            name: &c.name,
            from_type: c.destination_type.as_ref(),
            to_type: c.source_type.as_ref(),
            mapping: c.backward.as_ref(),
        },
        (LensOp::Transform(t), Forward) => Step::Convert {
            name: &t.name,
            from_type: t.source_type.as_ref(),
            to_type: t.destination_type.as_ref(),
            mapping: None,
        },
        (LensOp::Transform(t), Backward) => Step::Convert {
            name: &t.name,
            from_type: t.destination_type.as_ref(),
            to_type: t.source_type.as_ref(),
            mapping: None,
        },
        (
            LensOp::Copy {
                source,
                destination,
            },
            Forward,
        ) => Step::Copy {
            from: source,
            to: destination,
        },
        (LensOp::Copy { destination, .. }, Backward) => Step::Drop { name: destination },
        (LensOp::Split(sj), Forward) | (LensOp::Join(sj), Backward) => Step::Split(sj),
        (LensOp::Split(sj), Backward) | (LensOp::Join(sj), Forward) => Step::Join(sj),
        (LensOp::Set { name, value }, Forward) => Step::Set { name, value },
        (LensOp::Set { name, .. }, Backward) => Step::Unset { name },
    }
}

/// The ops of a nested lens in the order a plan runs them in `dir` (backward runs them last to
/// first), each with its declared index (for the op pointer `…/lens/<index>`).
pub(crate) fn nested_order(lens: &[LensOp], dir: Direction) -> Vec<(usize, &LensOp)> {
    let mut ops: Vec<(usize, &LensOp)> = lens.iter().enumerate().collect();
    if dir == Direction::Backward {
        ops.reverse();
    }
    ops
}

// ---------------------------------------------------------------------------------------------
// Application

/// What every op application needs: the op's pointer (for errors) and the schema root (for
/// `$ref`s).
struct Cx<'a> {
    origin: &'a str,
    root: &'a Value,
}

impl<'a> Cx<'a> {
    fn mismatch(&self, at: &str, reason: impl Into<String>) -> LensError {
        LensError::SchemaMismatch {
            op: self.origin.into(),
            at: at.into(),
            reason: reason.into(),
        }
    }

    /// The context of the op at `origin`, nested in this one.
    fn nested<'o>(&self, origin: &'o str) -> Cx<'o>
    where
        'a: 'o,
    {
        Cx {
            origin,
            root: self.root,
        }
    }
}

fn apply(
    cx: &Cx<'_>,
    op: &LensOp,
    dir: Direction,
    schema: &mut Value,
    at: &str,
) -> Result<(), LensError> {
    // A `false` schema admits no document, so there is nothing for the op to translate.
    if matches!(schema, Value::Bool(false)) {
        return Ok(());
    }
    let step = directed(op, dir);
    if let Step::Map { lens } = step {
        let (array, at) = resolve_mut(cx, schema, at, "array", "`map`", 0)?;
        let items = array
            .entry("items")
            .or_insert_with(|| Value::Object(Map::new()));
        let at = pointer::push(&at, "items");
        for (j, sub) in nested_order(lens, dir) {
            let origin = format!("{}/lens/{j}", cx.origin);
            apply(&cx.nested(&origin), sub, dir, items, &at)?;
        }
        return Ok(());
    }
    let what = format!("`{}`", op.name());
    let (obj, at) = resolve_mut(cx, schema, at, "object", &what, 0)?;
    apply_to_object(cx, step, dir, obj, &at)
}

fn apply_to_object(
    cx: &Cx<'_>,
    step: Step<'_>,
    dir: Direction,
    obj: &mut Map<String, Value>,
    at: &str,
) -> Result<(), LensError> {
    let props_at = pointer::push(at, "properties");
    match step {
        Step::Rename { from, to } => {
            let props = properties_mut(cx, obj, &props_at)?;
            if !props.contains_key(from) {
                return Err(missing(cx, &props_at, from, props, "cannot rename"));
            }
            if from != to && props.contains_key(to) {
                return Err(cx.mismatch(
                    &pointer::push(&props_at, to),
                    format!("cannot rename `{from}` to `{to}`: `{to}` already exists"),
                ));
            }
            // Rebuilt in order, so the property keeps its place (schemas are read by people).
            let old = std::mem::take(props);
            for (k, v) in old {
                if k == from {
                    props.insert(to.to_owned(), v);
                } else {
                    props.insert(k, v);
                }
            }
            if let Some(Value::Array(required)) = obj.get_mut("required") {
                for r in required.iter_mut() {
                    if r == from {
                        *r = Value::String(to.to_owned());
                    }
                }
            }
        }
        Step::Add(spec) => {
            let props = properties_mut(cx, obj, &props_at)?;
            if props.contains_key(&spec.name) {
                return Err(cx.mismatch(
                    &pointer::push(&props_at, &spec.name),
                    format!("cannot add `{}`: the property already exists", spec.name),
                ));
            }
            props.insert(spec.name.clone(), field_schema(spec));
            if spec.required {
                add_required(obj, &spec.name);
            }
        }
        Step::Drop { name } => {
            let props = properties_mut(cx, obj, &props_at)?;
            if props.shift_remove(name).is_none() {
                return Err(missing(cx, &props_at, name, props, "cannot remove"));
            }
            remove_required(obj, name);
        }
        Step::Hoist { host, name } => hoist(cx, obj, at, host, name)?,
        Step::Plunge { host, name } => plunge(cx, obj, at, host, name)?,
        Step::Wrap { name } => {
            let props = properties_mut(cx, obj, &props_at)?;
            let Some(prop) = props.get(name) else {
                return Err(missing(cx, &props_at, name, props, "cannot wrap"));
            };
            let prop_at = pointer::push(&props_at, name);
            let items = without_null(inline_clone(cx, prop, &prop_at)?);
            let mut wrapped = Map::new();
            wrapped.insert("type".into(), Value::String("array".into()));
            wrapped.insert("default".into(), Value::Array(Vec::new()));
            wrapped.insert("items".into(), items);
            props.insert(name.to_owned(), Value::Object(wrapped));
        }
        Step::Head { name } => {
            let props = properties_mut(cx, obj, &props_at)?;
            let Some(prop) = props.get(name) else {
                return Err(missing(
                    cx,
                    &props_at,
                    name,
                    props,
                    "cannot take the head of",
                ));
            };
            let prop_at = pointer::push(&props_at, name);
            let items = head_items(cx, prop, &prop_at, name)?;
            let mut null = Map::new();
            null.insert("type".into(), Value::String("null".into()));
            let mut head = Map::new();
            head.insert(
                "anyOf".into(),
                Value::Array(vec![Value::Object(null), items]),
            );
            props.insert(name.to_owned(), Value::Object(head));
        }
        Step::In { name, lens } => {
            let props = properties_mut(cx, obj, &props_at)?;
            let Some(prop) = props.get_mut(name) else {
                return Err(missing(cx, &props_at, name, props, "cannot go `in`to"));
            };
            let prop_at = pointer::push(&props_at, name);
            let resolved = inline_clone(cx, prop, &prop_at)?;
            if !admits(&resolved, "object") && !admits(&resolved, "array") {
                return Err(cx.mismatch(
                    &prop_at,
                    format!(
                        "`in` needs an object (or an array, for `map`), but `{name}` is {}",
                        describe(&resolved)
                    ),
                ));
            }
            for (j, sub) in nested_order(lens, dir) {
                let origin = format!("{}/lens/{j}", cx.origin);
                apply(&cx.nested(&origin), sub, dir, prop, &prop_at)?;
            }
        }
        Step::Map { .. } => {
            // `map` works on an array schema, which `apply` hands it directly.
            return Err(cx.mismatch(at, "`map` applies to an array, not to an object's fields"));
        }
        Step::Convert {
            name,
            from_type,
            to_type,
            mapping,
        } => {
            let props = properties_mut(cx, obj, &props_at)?;
            let Some(prop) = props.get_mut(name) else {
                return Err(missing(cx, &props_at, name, props, "cannot convert"));
            };
            let prop_at = pointer::push(&props_at, name);
            if let Some(from) = from_type {
                let resolved = inline_clone(cx, prop, &prop_at)?;
                if !types_overlap(&resolved, from) {
                    return Err(cx.mismatch(
                        &prop_at,
                        format!(
                            "the conversion reads `{name}` as {from}, but the schema says it is {}",
                            describe(&resolved)
                        ),
                    ));
                }
            }
            if let Some(to) = to_type {
                // The new default is the old one converted, so a field filled with the default
                // before the change reads as the same value after it.
                let converted = prop
                    .get("default")
                    .and_then(|d| mapping.and_then(|m| convert_default(m, d)));
                let mut converted_schema = Map::new();
                converted_schema.insert("type".into(), to.clone());
                converted_schema.insert(
                    "default".into(),
                    converted.unwrap_or_else(|| type_default(Some(to))),
                );
                *prop = Value::Object(converted_schema);
            }
        }
        Step::Copy { from, to } => {
            let props = properties_mut(cx, obj, &props_at)?;
            let Some(source) = props.get(from).cloned() else {
                return Err(missing(cx, &props_at, from, props, "cannot copy"));
            };
            if props.contains_key(to) {
                return Err(cx.mismatch(
                    &pointer::push(&props_at, to),
                    format!("cannot copy `{from}` to `{to}`: `{to}` already exists"),
                ));
            }
            props.insert(to.to_owned(), source);
            if is_required(obj, from) {
                add_required(obj, to);
            }
        }
        Step::Split(sj) => split(cx, obj, at, sj)?,
        Step::Join(sj) => join(cx, obj, at, sj)?,
        Step::Set { name, value } => {
            let props = properties_mut(cx, obj, &props_at)?;
            let prop_at = pointer::push(&props_at, name);
            let prop = props
                .entry(name.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if matches!(prop, Value::Bool(true)) {
                *prop = Value::Object(Map::new());
            }
            let resolved = inline_clone(cx, prop, &prop_at)?;
            if !value_fits(&resolved, value) {
                return Err(cx.mismatch(
                    &prop_at,
                    format!(
                        "cannot set `{name}` to {value}: the schema says it is {}",
                        describe(&resolved)
                    ),
                ));
            }
            match prop {
                Value::Object(m) => {
                    m.insert("const".into(), value.clone());
                }
                _ => {
                    return Err(cx.mismatch(&prop_at, format!("`{name}` admits no value")));
                }
            }
            add_required(obj, name);
        }
        Step::Unset { name } => {
            let props = properties_mut(cx, obj, &props_at)?;
            match props.get_mut(name) {
                Some(Value::Object(m)) => {
                    m.shift_remove("const");
                }
                Some(_) => {}
                None => return Err(missing(cx, &props_at, name, props, "cannot unset")),
            }
        }
    }
    Ok(())
}

fn hoist(
    cx: &Cx<'_>,
    obj: &mut Map<String, Value>,
    at: &str,
    host: &str,
    name: &str,
) -> Result<(), LensError> {
    let props_at = pointer::push(at, "properties");
    let host_required = is_required(obj, host);
    let props = properties_mut(cx, obj, &props_at)?;
    if props.contains_key(name) {
        return Err(cx.mismatch(
            &pointer::push(&props_at, name),
            format!("cannot hoist `{host}/{name}`: `{name}` already exists here"),
        ));
    }
    let Some(host_schema) = props.get_mut(host) else {
        return Err(missing(cx, &props_at, host, props, "cannot hoist out of"));
    };
    let host_at = pointer::push(&props_at, host);
    let host_nullable = allows_null(&inline_clone(cx, host_schema, &host_at)?);
    let what = format!("`hoist` out of `{host}`");
    let (host_obj, host_at) = resolve_mut(cx, host_schema, &host_at, "object", &what, 0)?;
    let host_props_at = pointer::push(&host_at, "properties");
    let host_props = properties_mut(cx, host_obj, &host_props_at)?;
    let Some(moved) = host_props.shift_remove(name) else {
        return Err(missing(
            cx,
            &host_props_at,
            name,
            host_props,
            "cannot hoist",
        ));
    };
    let was_required = remove_required(host_obj, name);
    let props = properties_mut(cx, obj, &props_at)?;
    props.insert(name.to_owned(), moved);
    // Up here the field is certain only if the host was: required and never null.
    if was_required && host_required && !host_nullable {
        add_required(obj, name);
    }
    Ok(())
}

fn plunge(
    cx: &Cx<'_>,
    obj: &mut Map<String, Value>,
    at: &str,
    host: &str,
    name: &str,
) -> Result<(), LensError> {
    let props_at = pointer::push(at, "properties");
    let was_required = is_required(obj, name);
    let props = properties_mut(cx, obj, &props_at)?;
    let Some(moved) = props.get(name).cloned() else {
        return Err(missing(cx, &props_at, name, props, "cannot plunge"));
    };
    let Some(host_schema) = props.get_mut(host) else {
        return Err(missing(cx, &props_at, host, props, "cannot plunge into"));
    };
    let host_at = pointer::push(&props_at, host);
    let what = format!("`plunge` into `{host}`");
    let (host_obj, host_at) = resolve_mut(cx, host_schema, &host_at, "object", &what, 0)?;
    let host_props_at = pointer::push(&host_at, "properties");
    let host_props = properties_mut(cx, host_obj, &host_props_at)?;
    if host_props.contains_key(name) {
        return Err(cx.mismatch(
            &pointer::push(&host_props_at, name),
            format!("cannot plunge `{name}` into `{host}`: `{host}/{name}` already exists"),
        ));
    }
    host_props.insert(name.to_owned(), moved);
    if was_required {
        add_required(host_obj, name);
    }
    let props = properties_mut(cx, obj, &props_at)?;
    props.shift_remove(name);
    remove_required(obj, name);
    Ok(())
}

fn split(
    cx: &Cx<'_>,
    obj: &mut Map<String, Value>,
    at: &str,
    sj: &SplitJoin,
) -> Result<(), LensError> {
    let props_at = pointer::push(at, "properties");
    let required = is_required(obj, &sj.whole);
    let props = properties_mut(cx, obj, &props_at)?;
    let Some(whole) = props.get(&sj.whole) else {
        return Err(missing(cx, &props_at, &sj.whole, props, "cannot split"));
    };
    let whole_at = pointer::push(&props_at, &sj.whole);
    let resolved = inline_clone(cx, whole, &whole_at)?;
    if !admits(&resolved, "string") {
        return Err(cx.mismatch(
            &whole_at,
            format!(
                "`split` needs a string, but `{}` is {}",
                sj.whole,
                describe(&resolved)
            ),
        ));
    }
    for part in &sj.parts {
        if part != &sj.whole && props.contains_key(part) {
            return Err(cx.mismatch(
                &pointer::push(&props_at, part),
                format!(
                    "cannot split `{}` into `{part}`: `{part}` already exists",
                    sj.whole
                ),
            ));
        }
    }
    let part_type = if allows_null(&resolved) {
        serde_json::json!(["string", "null"])
    } else {
        Value::String("string".into())
    };
    props.shift_remove(&sj.whole);
    for part in &sj.parts {
        let mut s = Map::new();
        s.insert("type".into(), part_type.clone());
        props.insert(part.clone(), Value::Object(s));
    }
    remove_required(obj, &sj.whole);
    if required {
        for part in &sj.parts {
            add_required(obj, part);
        }
    }
    Ok(())
}

fn join(
    cx: &Cx<'_>,
    obj: &mut Map<String, Value>,
    at: &str,
    sj: &SplitJoin,
) -> Result<(), LensError> {
    let props_at = pointer::push(at, "properties");
    let any_required = sj.parts.iter().any(|p| is_required(obj, p));
    let optional: Vec<bool> = sj.parts.iter().map(|p| !is_required(obj, p)).collect();
    // The whole is null when every part is null or absent (and one is there, as null).
    let mut all_can_be_missing = true;
    let mut some_can_be_null = false;
    let props = properties_mut(cx, obj, &props_at)?;
    for (part, optional) in sj.parts.iter().zip(optional) {
        let Some(schema) = props.get(part) else {
            return Err(missing(cx, &props_at, part, props, "cannot join"));
        };
        let part_at = pointer::push(&props_at, part);
        let resolved = inline_clone(cx, schema, &part_at)?;
        if !admits(&resolved, "string") {
            return Err(cx.mismatch(
                &part_at,
                format!(
                    "`join` needs strings, but `{part}` is {}",
                    describe(&resolved)
                ),
            ));
        }
        let nullable = allows_null(&resolved);
        some_can_be_null |= nullable;
        all_can_be_missing &= nullable || optional;
    }
    if !sj.parts.contains(&sj.whole) && props.contains_key(&sj.whole) {
        return Err(cx.mismatch(
            &pointer::push(&props_at, &sj.whole),
            format!(
                "cannot join into `{}`: the property already exists",
                sj.whole
            ),
        ));
    }
    let nullable = all_can_be_missing && some_can_be_null;
    for part in &sj.parts {
        props.shift_remove(part);
    }
    let mut s = Map::new();
    s.insert(
        "type".into(),
        if nullable {
            serde_json::json!(["string", "null"])
        } else {
            Value::String("string".into())
        },
    );
    props.insert(sj.whole.clone(), Value::Object(s));
    for part in &sj.parts {
        remove_required(obj, part);
    }
    if any_required {
        add_required(obj, &sj.whole);
    }
    Ok(())
}

/// The schema `add` gives a field: `type`, then the default a document gets, then the op's
/// other keywords. Items get a default too (Cambria's convention, so that a `head` of the
/// array has one).
fn field_schema(spec: &FieldSpec) -> Value {
    let mut s = Map::new();
    if let Some(ty) = spec.schema.get("type") {
        s.insert("type".into(), ty.clone());
    }
    // An optional field without an explicit default gets none: mutatis never fills it in, and
    // the schema must not promise otherwise.
    if let Some(default) = spec.fill_value() {
        s.insert("default".into(), default);
    }
    for (k, v) in &spec.schema {
        match k.as_str() {
            "type" => {}
            "items" => {
                s.insert(k.clone(), with_type_default(v));
            }
            _ => {
                s.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(s)
}

fn with_type_default(items: &Value) -> Value {
    match items {
        Value::Object(m) if m.contains_key("type") && !m.contains_key("default") => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(k.clone(), v.clone());
                if k == "type" {
                    out.insert("default".into(), type_default(Some(v)));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// The old default through a conversion table, if the table (or its fallback) maps it.
fn convert_default(mapping: &Mapping, default: &Value) -> Option<Value> {
    match mapping {
        Mapping::Table {
            entries,
            default: fallback,
        } => entries
            .get(&value_key(default))
            .or(fallback.as_ref())
            .cloned(),
        // Expressions may need parameters that only a translation has.
        Mapping::Expr { .. } => None,
    }
}

/// The schema of the first element of the array schema `prop` (for `head`).
fn head_items(cx: &Cx<'_>, prop: &Value, at: &str, name: &str) -> Result<Value, LensError> {
    let mut resolved = inline_clone(cx, prop, at)?;
    // Look through a nullable wrapper: the head of `null` is `null` as well.
    for _ in 0..MAX_WRAPPERS {
        let branch = match &resolved {
            Value::Object(m) => nullable_branch(m).and_then(|(key, i)| {
                m.get(key)
                    .and_then(Value::as_array)
                    .and_then(|a| a.get(i))
                    .cloned()
            }),
            _ => None,
        };
        match branch {
            Some(b) => resolved = inline_clone(cx, &b, at)?,
            None => break,
        }
    }
    let is_array = match &resolved {
        Value::Object(m) => match m.get("type") {
            Some(_) => admits(&resolved, "array"),
            None => m.contains_key("items") || m.contains_key("prefixItems"),
        },
        _ => false,
    };
    if !is_array {
        return Err(cx.mismatch(
            at,
            format!(
                "`head` needs an array, but `{name}` is {}",
                describe(&resolved)
            ),
        ));
    }
    let first = resolved
        .get("prefixItems")
        .and_then(|p| p.get(0))
        .or_else(|| match resolved.get("items") {
            Some(Value::Array(tuple)) => tuple.first(),
            other => other,
        });
    Ok(match first {
        None | Some(Value::Bool(true)) => Value::Object(Map::new()),
        Some(items) => items.clone(),
    })
}

/// `schema` without `null` among the values it admits (what `wrap` puts in `items`). A
/// `null` default becomes the default of the remaining type.
fn without_null(schema: Value) -> Value {
    let Value::Object(mut m) = schema else {
        return schema;
    };
    if let Some(ty) = m.get("type").cloned() {
        let remaining: Vec<Value> = match ty {
            Value::String(s) => vec![Value::String(s)],
            Value::Array(ts) => ts,
            _ => Vec::new(),
        }
        .into_iter()
        .filter(|t| t != "null")
        .collect();
        let new_type = match remaining.len() {
            // Only `null` was allowed: an array of nulls has no elements.
            0 => return Value::Bool(false),
            1 => remaining.into_iter().next().unwrap_or(Value::Null),
            _ => Value::Array(remaining),
        };
        if m.get("default") == Some(&Value::Null) {
            m.insert("default".into(), type_default(Some(&new_type)));
        }
        m.insert("type".into(), new_type);
    }
    if let Some(Value::Array(values)) = m.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    if m.get("const") == Some(&Value::Null) {
        return Value::Bool(false);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = m.get(key) {
            let kept: Vec<Value> = branches
                .iter()
                .filter(|b| !is_null_only(b))
                .cloned()
                .map(without_null)
                .collect();
            if kept.len() == 1 && m.len() == 1 {
                return kept.into_iter().next().unwrap_or(Value::Bool(false));
            }
            m.insert(key.into(), Value::Array(kept));
        }
    }
    Value::Object(m)
}

// ---------------------------------------------------------------------------------------------
// Schema navigation

/// The object (or array) schema at `schema`, ready to change: `true` becomes `{}`, a local
/// `$ref` is inlined, a nullable wrapper is looked through; the type must admit `want`.
fn resolve_mut<'s>(
    cx: &Cx<'_>,
    schema: &'s mut Value,
    at: &str,
    want: &'static str,
    what: &str,
    depth: usize,
) -> Result<(&'s mut Map<String, Value>, String), LensError> {
    if depth > MAX_WRAPPERS {
        return Err(cx.mismatch(at, "schema nests nullable wrappers too deeply"));
    }
    if matches!(schema, Value::Bool(true)) {
        *schema = Value::Object(Map::new());
    }
    inline_ref(cx, schema, at)?;
    let Value::Object(m) = schema else {
        return Err(cx.mismatch(
            at,
            format!("{what} needs an {want} schema, found {}", describe(schema)),
        ));
    };
    match nullable_branch(m) {
        Some((key, i)) => {
            let branch_at = pointer::push_index(&pointer::push(at, key), i);
            match m
                .get_mut(key)
                .and_then(Value::as_array_mut)
                .and_then(|a| a.get_mut(i))
            {
                Some(branch) => resolve_mut(cx, branch, &branch_at, want, what, depth + 1),
                None => Err(cx.mismatch(&branch_at, "missing schema alternative")),
            }
        }
        None => {
            if !admits_map(m, want) {
                let found = describe_map(m);
                return Err(cx.mismatch(at, format!("{what} needs an {want}, found {found}")));
            }
            Ok((m, at.to_owned()))
        }
    }
}

/// A copy of `schema` with a `$ref` at its top inlined (for reading).
fn inline_clone(cx: &Cx<'_>, schema: &Value, at: &str) -> Result<Value, LensError> {
    let mut s = schema.clone();
    inline_ref(cx, &mut s, at)?;
    Ok(s)
}

/// Replace a local `$ref` at the top of `schema` by what it points to, merged with the
/// keywords beside it.
fn inline_ref(cx: &Cx<'_>, schema: &mut Value, at: &str) -> Result<(), LensError> {
    for _ in 0..MAX_REF_CHAIN {
        let Value::Object(m) = schema else {
            return Ok(());
        };
        let Some(reference) = m.get("$ref") else {
            return Ok(());
        };
        let Some(r) = reference.as_str() else {
            return Err(cx.mismatch(&pointer::push(at, "$ref"), "`$ref` must be a string"));
        };
        let target = r
            .strip_prefix('#')
            .and_then(pointer::parse)
            .and_then(|tokens| walk(cx.root, &tokens))
            .ok_or_else(|| {
                cx.mismatch(
                    &pointer::push(at, "$ref"),
                    format!(
                        "cannot follow `$ref: {r}`: only references into this schema (`#/$defs/…`) are supported"
                    ),
                )
            })?;
        let mut merged = match target {
            Value::Object(t) => t.clone(),
            Value::Bool(true) => Map::new(),
            Value::Bool(false) => {
                *schema = Value::Bool(false);
                return Ok(());
            }
            _ => {
                return Err(cx.mismatch(
                    &pointer::push(at, "$ref"),
                    format!("`$ref: {r}` does not point at a schema"),
                ))
            }
        };
        for (k, v) in m.iter() {
            if k == "$ref" {
                continue;
            }
            match merged.get(k) {
                Some(existing) if existing != v => {
                    return Err(cx.mismatch(
                        &pointer::push(at, k),
                        format!("cannot inline `$ref: {r}`: `{k}` is given both here and in the definition"),
                    ));
                }
                Some(_) => {}
                None => {
                    merged.insert(k.clone(), v.clone());
                }
            }
        }
        *schema = Value::Object(merged);
    }
    Err(cx.mismatch(at, "`$ref`s refer to each other in a cycle"))
}

fn walk<'v>(root: &'v Value, tokens: &[String]) -> Option<&'v Value> {
    tokens.iter().try_fold(root, |v, t| match v {
        Value::Object(m) => m.get(t),
        Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// When `m` is `anyOf`/`oneOf` of exactly one non-null schema and `null`s, that schema's place.
fn nullable_branch(m: &Map<String, Value>) -> Option<(&'static str, usize)> {
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = m.get(key) {
            let mut non_null = branches
                .iter()
                .enumerate()
                .filter(|(_, b)| !is_null_only(b));
            let first = non_null.next();
            if let (Some((i, _)), None) = (first, non_null.next()) {
                if branches.len() > 1 {
                    return Some((key, i));
                }
            }
        }
    }
    None
}

fn is_null_only(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => {
            m.get("type") == Some(&Value::String("null".into()))
                || m.get("const") == Some(&Value::Null)
        }
        _ => false,
    }
}

fn properties_mut<'m>(
    cx: &Cx<'_>,
    obj: &'m mut Map<String, Value>,
    at: &str,
) -> Result<&'m mut Map<String, Value>, LensError> {
    match obj
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()))
    {
        Value::Object(m) => Ok(m),
        _ => Err(cx.mismatch(at, "`properties` must be an object")),
    }
}

fn missing(
    cx: &Cx<'_>,
    props_at: &str,
    name: &str,
    props: &Map<String, Value>,
    what: &str,
) -> LensError {
    let here = if props.is_empty() {
        "this object has no properties".to_owned()
    } else {
        let names: Vec<&str> = props.keys().map(String::as_str).collect();
        format!("its properties are: {}", names.join(", "))
    };
    cx.mismatch(
        &pointer::push(props_at, name),
        format!("{what} `{name}`: there is no property `{name}` here; {here}"),
    )
}

fn is_required(obj: &Map<String, Value>, name: &str) -> bool {
    matches!(obj.get("required"), Some(Value::Array(r)) if r.iter().any(|x| x == name))
}

fn add_required(obj: &mut Map<String, Value>, name: &str) {
    let required = obj
        .entry("required")
        .or_insert_with(|| Value::Array(Vec::new()));
    match required {
        Value::Array(r) => {
            if !r.iter().any(|x| x == name) {
                r.push(Value::String(name.to_owned()));
            }
        }
        other => *other = Value::Array(vec![Value::String(name.to_owned())]),
    }
}

/// Remove `name` from `required`; whether it was there.
fn remove_required(obj: &mut Map<String, Value>, name: &str) -> bool {
    match obj.get_mut("required") {
        Some(Value::Array(r)) => {
            let before = r.len();
            r.retain(|x| x != name);
            r.len() != before
        }
        _ => false,
    }
}

/// Whether the schema may admit instances of JSON type `want` (no `type` admits everything).
fn admits(schema: &Value, want: &str) -> bool {
    match schema {
        Value::Bool(b) => *b,
        Value::Object(m) => match nullable_branch(m) {
            Some((key, i)) => m
                .get(key)
                .and_then(|a| a.get(i))
                .is_some_and(|b| admits(b, want)),
            None => admits_map(m, want),
        },
        _ => false,
    }
}

fn admits_map(m: &Map<String, Value>, want: &str) -> bool {
    match m.get("type") {
        None => true,
        Some(Value::String(t)) => type_admits(t, want),
        Some(Value::Array(ts)) => ts
            .iter()
            .any(|t| t.as_str().is_some_and(|t| type_admits(t, want))),
        Some(_) => false,
    }
}

fn type_admits(declared: &str, want: &str) -> bool {
    declared == want || (declared == "number" && want == "integer")
}

/// Whether a document value could be null under `schema`.
pub(crate) fn allows_null(schema: &Value) -> bool {
    match schema {
        Value::Bool(b) => *b,
        Value::Object(m) => {
            let by_type = match m.get("type") {
                Some(Value::String(t)) => t == "null",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "null"),
                _ => false,
            };
            let by_alternatives = ["anyOf", "oneOf"]
                .iter()
                .any(|k| matches!(m.get(*k), Some(Value::Array(bs)) if bs.iter().any(allows_null)));
            by_type || by_alternatives
        }
        _ => false,
    }
}

/// Whether the types a property declares and the types an op expects share one.
fn types_overlap(schema: &Value, expected: &Value) -> bool {
    let expected: Vec<&str> = match expected {
        Value::String(s) => vec![s.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return true,
    };
    expected.iter().any(|t| {
        admits(schema, t)
            // An integer field fits an op that reads numbers.
            || (*t == "number" && admits(schema, "integer"))
    })
}

/// Whether `value` fits the declared `type` of `schema` (other keywords are not checked).
fn value_fits(schema: &Value, value: &Value) -> bool {
    let ty = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        // `1.0` is an integer, as JSON Schema counts it.
        Value::Number(n) if n.is_i64() || n.is_u64() || crate::json::whole(n).is_some() => {
            "integer"
        }
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    admits(schema, ty)
}

fn describe(schema: &Value) -> String {
    match schema {
        Value::Bool(true) => "unconstrained (`true`)".into(),
        Value::Bool(false) => "impossible (`false`)".into(),
        Value::Object(m) => describe_map(m),
        other => format!("not a schema ({other})"),
    }
}

fn describe_map(m: &Map<String, Value>) -> String {
    match m.get("type") {
        Some(t) => format!("of type {t}"),
        None if m.contains_key("anyOf") || m.contains_key("oneOf") => {
            "a choice of several schemas (`anyOf`/`oneOf` with more than one non-null alternative is not supported here)".into()
        }
        None => "untyped".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Lens, Transforms};
    use serde_json::json;

    fn plan(yaml: &str) -> Plan {
        let lens = Lens::from_file_str(yaml).unwrap();
        Plan::compile(&lens, Direction::Forward, &Transforms::new()).unwrap()
    }

    fn project() -> Value {
        json!({"type": "object", "additionalProperties": false,
               "properties": {"name": {"type": "string", "default": ""},
                              "summary": {"type": "string", "default": ""}},
               "required": ["name", "summary"]})
    }

    fn mismatch_at(err: &LensError) -> (&str, &str, &str) {
        match err {
            LensError::SchemaMismatch { op, at, reason } => (op, at, reason),
            other => panic!("not a schema mismatch: {other:?}"),
        }
    }

    #[test]
    fn rename_keeps_position_and_requiredness() {
        let up = plan("lens:\n  - rename: {source: name, destination: title}\n");
        let out = up.translate_schema(&project()).unwrap();
        let keys: Vec<&String> = out["properties"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["title", "summary"]);
        assert_eq!(out["required"], json!(["title", "summary"]));
        // An optional field stays optional (Cambria would make `title` required).
        let optional = json!({"type": "object", "properties": {"name": {"type": "string"}}});
        let out = up.translate_schema(&optional).unwrap();
        assert_eq!(
            out,
            json!({"type": "object", "properties": {"title": {"type": "string"}}})
        );
    }

    #[test]
    fn add_fills_defaults_like_documents_get_them() {
        let up = plan(
            "lens:
  - add: {name: n, type: number, default: 0}
  - add: {name: flag, type: boolean, default: false}
  - add: {name: maybe, type: [string, 'null']}
  - add: {name: note, type: string, required: false}
  - add: {name: tags, type: array, items: {type: string}}
",
        );
        let out = up.translate_schema(&json!({"type": "object"})).unwrap();
        assert_eq!(
            out,
            json!({"type": "object", "properties": {
                "n": {"type": "number", "default": 0},
                "flag": {"type": "boolean", "default": false},
                "maybe": {"type": ["string", "null"], "default": null},
                "note": {"type": "string"},
                "tags": {"type": "array", "default": [], "items": {"type": "string", "default": ""}}},
              "required": ["n", "flag", "maybe", "tags"]})
        );
    }

    #[test]
    fn mismatches_name_the_op_the_place_and_what_exists() {
        let cases = [
            (
                "lens:\n  - rename: {source: nope, destination: x}\n",
                "/properties/nope",
                "no property `nope`",
            ),
            (
                "lens:\n  - remove: {name: nope, type: string}\n",
                "/properties/nope",
                "cannot remove `nope`",
            ),
            (
                "lens:\n  - add: {name: name, type: string}\n",
                "/properties/name",
                "already exists",
            ),
            (
                "lens:\n  - hoist: {host: name, name: x}\n",
                "/properties/name",
                "needs an object",
            ),
            (
                "lens:\n  - plunge: {host: summary, name: nope}\n",
                "/properties/nope",
                "cannot plunge `nope`",
            ),
            (
                "lens:\n  - head: {name: name}\n",
                "/properties/name",
                "`head` needs an array",
            ),
            (
                "lens:\n  - in: {name: summary, lens: [{rename: {source: a, destination: b}}]}\n",
                "/properties/summary",
                "`in` needs an object",
            ),
            (
                "lens:\n  - convert: {name: nope, forward: {a: b}, backward: {b: a}}\n",
                "/properties/nope",
                "cannot convert",
            ),
            (
                "lens:\n  - rename: {source: name, destination: summary}\n",
                "/properties/summary",
                "already exists",
            ),
        ];
        for (yaml, at, reason) in cases {
            let err = plan(yaml).translate_schema(&project()).unwrap_err();
            let (op, got_at, got_reason) = mismatch_at(&err);
            assert_eq!(op, "/0", "{yaml}");
            assert_eq!(got_at, at, "{yaml}: {got_reason}");
            assert!(got_reason.contains(reason), "{yaml}: {got_reason}");
        }
        let err = plan("lens:\n  - rename: {source: nope, destination: x}\n")
            .translate_schema(&project())
            .unwrap_err();
        assert!(err.to_string().contains("name, summary"), "{err}");
    }

    #[test]
    fn nested_errors_point_into_the_nested_lens_and_schema() {
        let up =
            plan("lens:\n  - in: {name: meta, lens: [{rename: {source: a, destination: b}}]}\n");
        let schema = json!({"type": "object", "properties": {"meta": {"type": "object", "properties": {"c": {}}}}});
        let err = up.translate_schema(&schema).unwrap_err();
        let (op, at, reason) = mismatch_at(&err);
        assert_eq!(op, "/0/lens/0");
        assert_eq!(at, "/properties/meta/properties/a");
        assert!(reason.contains("its properties are: c"), "{reason}");
    }

    #[test]
    fn hoist_and_plunge_move_properties_and_requiredness() {
        let up = plan("lens:\n  - hoist: {host: meta, name: created}\n");
        let schema = json!({"type": "object",
            "properties": {"meta": {"type": "object", "properties": {"created": {"type": "number"}, "edited": {"type": "number"}},
                                    "required": ["created", "edited"]}},
            "required": ["meta"]});
        let out = up.translate_schema(&schema).unwrap();
        assert_eq!(
            out,
            json!({"type": "object",
                "properties": {"meta": {"type": "object", "properties": {"edited": {"type": "number"}}, "required": ["edited"]},
                               "created": {"type": "number"}},
                "required": ["meta", "created"]})
        );
        // Backward is a plunge and restores the schema (`required` is a set: its order is free).
        let back = up.reverse().translate_schema(&out).unwrap();
        assert_eq!(
            back["properties"]["meta"]["properties"],
            schema["properties"]["meta"]["properties"]
        );
        assert_eq!(
            back["properties"]["meta"]["required"],
            json!(["edited", "created"])
        );
        assert_eq!(back["required"], json!(["meta"]));
        // Out of an optional host the field is not certain to be there.
        let mut optional_host = schema.clone();
        optional_host["required"] = json!([]);
        let out = up.translate_schema(&optional_host).unwrap();
        assert_eq!(out["required"], json!([]));
    }

    #[test]
    fn wrap_and_head_round_trip_through_nullable_schemas() {
        let up = plan("lens:\n  - wrap: {name: who}\n");
        let schema = json!({"type": "object", "properties": {"who": {"type": ["string", "null"], "default": null}}});
        let out = up.translate_schema(&schema).unwrap();
        assert_eq!(
            out["properties"]["who"],
            json!({"type": "array", "default": [], "items": {"type": "string", "default": ""}})
        );
        let back = up.reverse().translate_schema(&out).unwrap();
        assert_eq!(
            back["properties"]["who"],
            json!({"anyOf": [{"type": "null"}, {"type": "string", "default": ""}]})
        );
        // Ops inside a nullable `anyOf` apply to its non-null alternative.
        let inner = plan("lens:\n  - in: {name: who, lens: [{add: {name: age, type: number}}]}\n");
        let schema = json!({"type": "object", "properties": {"who": {"anyOf": [{"type": "null"}, {"type": "object"}]}}});
        let out = inner.translate_schema(&schema).unwrap();
        assert_eq!(
            out["properties"]["who"]["anyOf"][1],
            json!({"type": "object", "properties": {"age": {"type": "number", "default": 0}}, "required": ["age"]})
        );
    }

    #[test]
    fn local_refs_are_inlined_where_an_op_changes_them() {
        let up = plan(
            "lens:\n  - in: {name: home, lens: [{rename: {source: street, destination: road}}]}\n",
        );
        let schema = json!({"type": "object",
            "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"}}, "required": ["street"]}},
            "properties": {"home": {"$ref": "#/$defs/address"}, "work": {"$ref": "#/$defs/address"}}});
        let out = up.translate_schema(&schema).unwrap();
        assert_eq!(
            out["properties"]["home"],
            json!({"type": "object", "properties": {"road": {"type": "string"}}, "required": ["road"]})
        );
        // The definition and its other user are untouched.
        assert_eq!(
            out["properties"]["work"],
            json!({"$ref": "#/$defs/address"})
        );
        assert_eq!(out["$defs"], schema["$defs"]);
        // A remote reference is refused clearly.
        let remote = json!({"type": "object", "properties": {"home": {"$ref": "https://example.com/a.json"}}});
        let err = up.translate_schema(&remote).unwrap_err();
        let (_, at, reason) = mismatch_at(&err);
        assert_eq!(at, "/properties/home/$ref");
        assert!(
            reason.contains("only references into this schema"),
            "{reason}"
        );
    }

    #[test]
    fn convert_changes_type_and_converts_the_default() {
        let up = plan(
            "lens:\n  - convert: {name: done, sourceType: boolean, destinationType: string, forward: {'true': done, 'false': open}, backward: {done: true, open: false}}\n",
        );
        let schema = json!({"type": "object", "properties": {"done": {"type": "boolean", "default": false}}, "required": ["done"]});
        let out = up.translate_schema(&schema).unwrap();
        assert_eq!(
            out["properties"]["done"],
            json!({"type": "string", "default": "open"})
        );
        assert_eq!(up.reverse().translate_schema(&out).unwrap(), schema);
        // The declared source type must fit the property.
        let wrong = json!({"type": "object", "properties": {"done": {"type": "string"}}});
        let err = up.translate_schema(&wrong).unwrap_err();
        assert!(
            mismatch_at(&err).2.contains("reads `done` as \"boolean\""),
            "{err}"
        );
        // Without a destination type the schema stays.
        let same = plan("lens:\n  - convert: {name: done, forward: {a: b}, backward: {b: a}}\n");
        assert_eq!(same.translate_schema(&wrong).unwrap(), wrong);
    }

    #[test]
    fn copy_split_join_and_set() {
        let up = plan(
            "lens:
  - copy: {source: name, destination: display}
  - split: {name: name, into: [first, last]}
  - set: {name: kind, value: person}
",
        );
        let schema = json!({"type": "object", "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
                            "required": ["name"]});
        let out = up.translate_schema(&schema).unwrap();
        assert_eq!(
            out,
            json!({"type": "object",
                "properties": {"kind": {"type": "string", "const": "person"}, "display": {"type": "string"},
                               "first": {"type": "string"}, "last": {"type": "string"}},
                "required": ["display", "first", "last", "kind"]})
        );
        let back = up.reverse().translate_schema(&out).unwrap();
        assert_eq!(back["properties"]["kind"], json!({"type": "string"}));
        assert_eq!(back["properties"]["name"], json!({"type": "string"}));
        assert!(back["properties"].get("display").is_none());
        assert!(back["required"]
            .as_array()
            .unwrap()
            .contains(&json!("name")));
        // `set` checks the constant against the declared type.
        let bad = plan("lens:\n  - set: {name: kind, value: 3}\n");
        let err = bad.translate_schema(&schema).unwrap_err();
        assert!(
            mismatch_at(&err).2.contains("cannot set `kind` to 3"),
            "{err}"
        );
    }

    #[test]
    fn boolean_schemas() {
        let up = plan("lens:\n  - add: {name: a, type: string}\n");
        assert_eq!(up.translate_schema(&json!(false)).unwrap(), json!(false));
        assert_eq!(
            up.translate_schema(&json!(true)).unwrap(),
            json!({"properties": {"a": {"type": "string", "default": ""}}, "required": ["a"]})
        );
    }
}
