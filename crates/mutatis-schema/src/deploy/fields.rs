//! Field changes between two schemas of one type: added, removed, renamed (by a lens, or
//! "probably" by a heuristic), retyped, made required, made optional.
//!
//! The walk collects every property the schema names (nested objects through `properties`,
//! array elements as `*`, through local `$ref`s and nullable wrappers) and compares the two
//! sets. Renames come first from the lens between the versions (`rename`, `hoist` and `plunge`
//! move a field), then from a heuristic: a property removed and one added under the same
//! parent with equal schemas are reported as probably renamed, when the match is unique.

use std::collections::{BTreeMap, BTreeSet};

use mutatis_lens::{pointer, Direction, LensOp};
use serde_json::{json, Value};

use crate::diff::differences;
use crate::schema_nav::{unwrap, MAX_REF_CHAIN};

/// Nesting followed before the walk stops (a schema is written by hand; deeper is a cycle
/// the reference check did not catch, or not worth reporting field by field).
const MAX_DEPTH: usize = 32;

/// What happened to a field.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldChangeKind {
    /// The field is new.
    Added,
    /// The field is gone.
    Removed,
    /// The field moved from the path `from`; `probably` when only a heuristic says so (a
    /// property removed and one added under the same parent with equal schemas), `false` when
    /// a lens `rename` (or `hoist`/`plunge`) moved it.
    Renamed { from: String, probably: bool },
    /// The field's `type` changed (`None`: any type).
    Retyped {
        from: Option<Value>,
        to: Option<Value>,
    },
    /// The field became required.
    MadeRequired,
    /// The field became optional.
    MadeOptional,
}

impl FieldChangeKind {
    /// The name used in `--json` output.
    pub fn as_str(&self) -> &'static str {
        match self {
            FieldChangeKind::Added => "added",
            FieldChangeKind::Removed => "removed",
            FieldChangeKind::Renamed { probably: true, .. } => "probably_renamed",
            FieldChangeKind::Renamed { .. } => "renamed",
            FieldChangeKind::Retyped { .. } => "retyped",
            FieldChangeKind::MadeRequired => "made_required",
            FieldChangeKind::MadeOptional => "made_optional",
        }
    }
}

/// One field change between an old and a new schema of a type.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    /// What happened.
    pub kind: FieldChangeKind,
    /// The field's place in a document (the new place for a renamed field), `*` for every
    /// array element.
    pub path: String,
    /// The field's schema pointer in the old schema (none for an added field).
    pub old_pointer: Option<String>,
    /// The field's schema pointer in the new schema (none for a removed field).
    pub new_pointer: Option<String>,
    /// Whether the field is required where it is (in the new schema; in the old one for a
    /// removed field).
    pub required: bool,
    /// Whether the change breaks backward compatibility (a reader on the new schema rejects
    /// some document valid under the old one), per the compatibility checker.
    pub breaks_backward: bool,
    /// Whether it breaks forward compatibility (a reader on the old schema rejects some
    /// document valid under the new one).
    pub breaks_forward: bool,
    /// Whether it breaks old clients under the type's required compatibility mode.
    pub breaking: bool,
}

impl FieldChange {
    /// A sentence for people.
    pub fn describe(&self) -> String {
        match &self.kind {
            FieldChangeKind::Added if self.required => format!("{} added (required)", self.path),
            FieldChangeKind::Added => format!("{} added (optional)", self.path),
            FieldChangeKind::Removed if self.required => {
                format!("{} removed (it was required)", self.path)
            }
            FieldChangeKind::Removed => format!("{} removed", self.path),
            FieldChangeKind::Renamed {
                from,
                probably: false,
            } => format!("{from} renamed to {} (by the lens)", self.path),
            FieldChangeKind::Renamed {
                from,
                probably: true,
            } => format!(
                "{from} probably renamed to {} (same schema; no lens says so)",
                self.path
            ),
            FieldChangeKind::Retyped { from, to } => format!(
                "{} retyped from {} to {}",
                self.path,
                type_text(from),
                type_text(to)
            ),
            FieldChangeKind::MadeRequired => format!("{} made required", self.path),
            FieldChangeKind::MadeOptional => format!("{} made optional", self.path),
        }
    }

    /// The change as it appears in `--json` output (see `docs/check-json.md`).
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("kind".into(), json!(self.kind.as_str()));
        m.insert("path".into(), json!(self.path));
        match &self.kind {
            FieldChangeKind::Renamed { from, .. } => {
                m.insert("from".into(), json!(from));
            }
            FieldChangeKind::Retyped { from, to } => {
                m.insert("fromType".into(), from.clone().unwrap_or(Value::Null));
                m.insert("toType".into(), to.clone().unwrap_or(Value::Null));
            }
            _ => {}
        }
        m.insert("oldPointer".into(), json!(self.old_pointer));
        m.insert("newPointer".into(), json!(self.new_pointer));
        m.insert("required".into(), json!(self.required));
        m.insert("breaksBackward".into(), json!(self.breaks_backward));
        m.insert("breaksForward".into(), json!(self.breaks_forward));
        m.insert("breaking".into(), json!(self.breaking));
        m.insert("detail".into(), json!(self.describe()));
        Value::Object(m)
    }
}

fn type_text(t: &Option<Value>) -> String {
    match t {
        None => "any".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A document path: property names, `*` for every element of an array.
pub(crate) type Path = Vec<String>;

/// One property a schema names.
#[derive(Debug)]
struct Field<'v> {
    pointer: String,
    schema: &'v Value,
    required: bool,
    types: Option<BTreeSet<String>>,
}

/// The moves (old path → new path) that the lens from one version to the next makes, in the
/// order it makes them: `rename`, `hoist` and `plunge`, at any nesting (`in`, `map`).
pub(crate) fn lens_moves(ops: &[LensOp], direction: Direction) -> Vec<(Path, Path)> {
    let mut out = Vec::new();
    moves_in(ops, direction, &[], &mut out);
    out
}

fn moves_in(ops: &[LensOp], dir: Direction, scope: &[String], out: &mut Vec<(Path, Path)>) {
    let at = |name: &str| {
        let mut p = scope.to_vec();
        p.push(name.to_owned());
        p
    };
    let ordered: Vec<&LensOp> = match dir {
        Direction::Forward => ops.iter().collect(),
        Direction::Backward => ops.iter().rev().collect(),
    };
    for op in ordered {
        match (op, dir) {
            (
                LensOp::Rename {
                    source,
                    destination,
                },
                Direction::Forward,
            ) => out.push((at(source), at(destination))),
            (
                LensOp::Rename {
                    source,
                    destination,
                },
                Direction::Backward,
            ) => out.push((at(destination), at(source))),
            (LensOp::Hoist { host, name }, Direction::Forward)
            | (LensOp::Plunge { host, name }, Direction::Backward) => {
                let mut from = at(host);
                from.push(name.clone());
                out.push((from, at(name)));
            }
            (LensOp::Hoist { host, name }, Direction::Backward)
            | (LensOp::Plunge { host, name }, Direction::Forward) => {
                let mut to = at(host);
                to.push(name.clone());
                out.push((at(name), to));
            }
            (LensOp::In { name, lens }, _) => moves_in(lens, dir, &at(name), out),
            (LensOp::Map { lens }, _) => moves_in(lens, dir, &at("*"), out),
            _ => {}
        }
    }
}

/// The field changes from `old` to `new`. `moves` are the lens's moves between them (empty
/// when no lens joins the two, e.g. one version whose schema was changed in place). The
/// breaking flags are left `false`: the caller sets them from the compatibility checker.
pub(crate) fn field_changes(old: &Value, new: &Value, moves: &[(Path, Path)]) -> Vec<FieldChange> {
    let old_fields = collect(old);
    let new_fields = collect(new);
    // Old paths as they are called in the new schema, through the lens's moves in order.
    let mut renamed_from: BTreeMap<Path, Path> = BTreeMap::new();
    let mut mapped: BTreeMap<Path, &Field<'_>> = BTreeMap::new();
    let mut lens_renames: Vec<(Path, Path)> = Vec::new();
    for (path, field) in &old_fields {
        let mut p = path.clone();
        for (from, to) in moves {
            if starts_with(&p, from) {
                let mut q = to.clone();
                q.extend_from_slice(&p[from.len()..]);
                if p.len() == from.len() {
                    lens_renames.push((path.clone(), q.clone()));
                }
                p = q;
            }
        }
        renamed_from.insert(p.clone(), path.clone());
        mapped.insert(p, field);
    }
    let mut out = Vec::new();
    let change =
        |kind, path: &[String], old: Option<&Field<'_>>, new: Option<&Field<'_>>| FieldChange {
            kind,
            path: pointer::join(path),
            old_pointer: old.map(|f| f.pointer.clone()),
            new_pointer: new.map(|f| f.pointer.clone()),
            required: new.or(old).is_some_and(|f| f.required),
            breaks_backward: false,
            breaks_forward: false,
            breaking: false,
        };
    // Lens renames whose field exists on both sides (a renamed-then-removed field is a removal).
    for (from, to) in &lens_renames {
        if let (Some(o), Some(n)) = (old_fields.get(from), new_fields.get(to)) {
            out.push(change(
                FieldChangeKind::Renamed {
                    from: pointer::join(from),
                    probably: false,
                },
                to,
                Some(o),
                Some(n),
            ));
        }
    }
    let removed: Vec<&Path> = mapped
        .keys()
        .filter(|p| !new_fields.contains_key(*p))
        .filter(|p| !has_parent_in(p, &mapped, &new_fields))
        .collect();
    let added: Vec<&Path> = new_fields
        .keys()
        .filter(|p| !mapped.contains_key(*p))
        .filter(|p| !has_parent_in(p, &new_fields, &mapped))
        .collect();
    // The heuristic: same parent, equal schemas, and the match is unique both ways.
    let new_refs: BTreeMap<Path, &Field<'_>> =
        new_fields.iter().map(|(k, v)| (k.clone(), v)).collect();
    let mut paired_removed: BTreeSet<Path> = BTreeSet::new();
    let mut paired_added: BTreeSet<Path> = BTreeSet::new();
    for r in &removed {
        let [a] = same_schema_siblings(r, &added, &mapped, &new_refs)[..] else {
            continue;
        };
        if same_schema_siblings(a, &removed, &new_refs, &mapped).len() != 1 {
            continue;
        }
        let (Some(o), Some(n)) = (mapped.get(*r), new_fields.get(a)) else {
            continue;
        };
        let original = renamed_from
            .get(*r)
            .cloned()
            .unwrap_or_else(|| (*r).clone());
        out.push(change(
            FieldChangeKind::Renamed {
                from: pointer::join(&original),
                probably: true,
            },
            a,
            Some(o),
            Some(n),
        ));
        if o.required != n.required {
            let kind = if n.required {
                FieldChangeKind::MadeRequired
            } else {
                FieldChangeKind::MadeOptional
            };
            out.push(change(kind, a, Some(o), Some(n)));
        }
        paired_removed.insert((*r).clone());
        paired_added.insert((*a).clone());
    }
    for r in removed.iter().filter(|r| !paired_removed.contains(**r)) {
        let original = renamed_from
            .get(*r)
            .cloned()
            .unwrap_or_else(|| (*r).clone());
        out.push(change(
            FieldChangeKind::Removed,
            &original,
            mapped.get(*r).copied(),
            None,
        ));
    }
    for a in added.iter().filter(|a| !paired_added.contains(**a)) {
        out.push(change(FieldChangeKind::Added, a, None, new_fields.get(*a)));
    }
    for (path, o) in &mapped {
        let Some(n) = new_fields.get(path) else {
            continue;
        };
        if o.types != n.types {
            out.push(change(
                FieldChangeKind::Retyped {
                    from: o.types.as_ref().map(types_value),
                    to: n.types.as_ref().map(types_value),
                },
                path,
                Some(o),
                Some(n),
            ));
        }
        if o.required != n.required {
            let kind = if n.required {
                FieldChangeKind::MadeRequired
            } else {
                FieldChangeKind::MadeOptional
            };
            out.push(change(kind, path, Some(o), Some(n)));
        }
    }
    out
}

/// The paths in `pool` under the same parent as `p` whose schema (in `to`) equals `p`'s (in
/// `from`).
fn same_schema_siblings<'p>(
    p: &Path,
    pool: &[&'p Path],
    from: &BTreeMap<Path, &Field<'_>>,
    to: &BTreeMap<Path, &Field<'_>>,
) -> Vec<&'p Path> {
    let Some(mine) = from.get(p) else {
        return Vec::new();
    };
    pool.iter()
        .copied()
        .filter(|a| a.split_last().map(|(_, up)| up) == p.split_last().map(|(_, up)| up))
        .filter(|a| {
            to.get(*a)
                .is_some_and(|f| differences(mine.schema, f.schema).is_empty())
        })
        .collect()
}

/// Whether an ancestor of `p` is also in `here` and missing from `there` (so `p` is part of a
/// field already reported as a whole).
fn has_parent_in<A, B>(p: &[String], here: &BTreeMap<Path, A>, there: &BTreeMap<Path, B>) -> bool {
    (1..p.len()).any(|n| {
        let anc = &p[..n];
        here.contains_key(anc) && !there.contains_key(anc)
    })
}

fn starts_with(p: &[String], prefix: &[String]) -> bool {
    p.len() >= prefix.len() && p[..prefix.len()] == *prefix
}

fn types_value(t: &BTreeSet<String>) -> Value {
    match t.len() {
        1 => t
            .iter()
            .next()
            .map(|s| Value::String(s.clone()))
            .unwrap_or(Value::Null),
        _ => Value::Array(t.iter().map(|s| Value::String(s.clone())).collect()),
    }
}

/// Every property `root` names, by document path.
fn collect(root: &Value) -> BTreeMap<Path, Field<'_>> {
    let mut out = BTreeMap::new();
    let mut refs = Vec::new();
    walk(
        root,
        root,
        String::new(),
        &mut Vec::new(),
        &mut refs,
        &mut out,
    );
    out
}

fn walk<'v>(
    root: &'v Value,
    s: &'v Value,
    at: String,
    path: &mut Path,
    refs: &mut Vec<String>,
    out: &mut BTreeMap<Path, Field<'v>>,
) {
    if path.len() > MAX_DEPTH {
        return;
    }
    let depth = refs.len();
    let Some((s, at)) = unwrap(root, s, at, Some(refs)) else {
        refs.truncate(depth);
        return;
    };
    let Some(obj) = s.as_object() else {
        refs.truncate(depth);
        return;
    };
    let required: Vec<&str> = obj
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(Value::Object(props)) = obj.get("properties") {
        let props_at = pointer::push(&at, "properties");
        for (name, sub) in props {
            let sub_at = pointer::push(&props_at, name);
            path.push(name.clone());
            out.insert(
                path.clone(),
                Field {
                    pointer: sub_at.clone(),
                    schema: sub,
                    required: required.contains(&name.as_str()),
                    types: types(root, sub),
                },
            );
            walk(root, sub, sub_at, path, refs, out);
            path.pop();
        }
    }
    if let Some(items) = obj.get("items").filter(|i| i.is_object()) {
        path.push("*".into());
        walk(root, items, pointer::push(&at, "items"), path, refs, out);
        path.pop();
    }
    refs.truncate(depth);
}

/// The JSON types a schema admits, from `type` (through `$ref`s and `anyOf`/`oneOf`
/// unions); `None` when it does not restrict the type.
fn types(root: &Value, s: &Value) -> Option<BTreeSet<String>> {
    types_at(root, s, 0)
}

fn types_at(root: &Value, s: &Value, depth: usize) -> Option<BTreeSet<String>> {
    if depth > MAX_REF_CHAIN {
        return None;
    }
    let obj = s.as_object()?;
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let t = root.pointer(r.strip_prefix('#')?)?;
        return types_at(root, t, depth + 1);
    }
    match obj.get("type") {
        Some(Value::String(t)) => return Some(BTreeSet::from([t.clone()])),
        Some(Value::Array(ts)) => {
            return Some(
                ts.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            )
        }
        _ => {}
    }
    for k in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = obj.get(k) {
            let mut all = BTreeSet::new();
            for b in branches {
                all.extend(types_at(root, b, depth + 1)?);
            }
            return Some(all);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kinds(changes: &[FieldChange]) -> Vec<(String, String)> {
        changes
            .iter()
            .map(|c| (c.kind.as_str().to_owned(), c.path.clone()))
            .collect()
    }

    #[test]
    fn each_kind_of_change_is_found() {
        let old = json!({"type": "object", "properties": {
            "a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "boolean"},
            "d": {"type": "string"}, "gone": {"type": "object", "properties": {"x": {"type": "string"}}}},
            "required": ["a", "d"]});
        let new = json!({"type": "object", "properties": {
            "a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "boolean"},
            "d": {"type": "string"}, "fresh": {"type": "number"}},
            "required": ["c"]});
        let changes = field_changes(&old, &new, &[]);
        let mut k = kinds(&changes);
        k.sort();
        assert_eq!(
            k,
            [
                ("added".into(), "/fresh".into()),
                ("made_optional".into(), "/a".into()),
                ("made_optional".into(), "/d".into()),
                ("made_required".into(), "/c".into()),
                ("removed".into(), "/gone".into()),
                ("retyped".into(), "/b".into()),
            ]
        );
        let retyped = changes.iter().find(|c| c.path == "/b").unwrap();
        assert_eq!(
            retyped.kind,
            FieldChangeKind::Retyped {
                from: Some(json!("integer")),
                to: Some(json!("string"))
            }
        );
        assert_eq!(retyped.old_pointer.as_deref(), Some("/properties/b"));
    }

    #[test]
    fn lens_renames_and_probable_renames() {
        let old = json!({"properties": {"done": {"type": "boolean"}, "nick": {"type": "string"}}});
        let new =
            json!({"properties": {"status": {"type": "boolean"}, "alias": {"type": "string"}}});
        let ops = vec![LensOp::Rename {
            source: "done".into(),
            destination: "status".into(),
        }];
        let changes = field_changes(&old, &new, &lens_moves(&ops, Direction::Forward));
        assert_eq!(
            changes[0].kind,
            FieldChangeKind::Renamed {
                from: "/done".into(),
                probably: false
            }
        );
        assert_eq!(changes[0].path, "/status");
        assert_eq!(
            changes[1].kind,
            FieldChangeKind::Renamed {
                from: "/nick".into(),
                probably: true
            }
        );
        assert_eq!(changes.len(), 2, "{changes:?}");
    }

    #[test]
    fn ambiguous_matches_are_not_guessed() {
        let old = json!({"properties": {"a": {"type": "string"}, "b": {"type": "string"}}});
        let new = json!({"properties": {"c": {"type": "string"}, "d": {"type": "string"}}});
        let mut k = kinds(&field_changes(&old, &new, &[]));
        k.sort();
        assert_eq!(k.iter().filter(|(k, _)| k == "removed").count(), 2);
        assert_eq!(k.iter().filter(|(k, _)| k == "added").count(), 2);
    }

    #[test]
    fn nested_and_recursive_schemas() {
        let old = json!({"$defs": {"node": {"type": "object", "properties": {
                "name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
            "$ref": "#/$defs/node"});
        let new = json!({"$defs": {"node": {"type": "object", "properties": {
                "name": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
            "$ref": "#/$defs/node"});
        let changes = field_changes(&old, &new, &[]);
        assert_eq!(kinds(&changes), [("retyped".into(), "/name".into())]);
        assert_eq!(
            changes[0].new_pointer.as_deref(),
            Some("/$defs/node/properties/name")
        );
    }

    #[test]
    fn moves_follow_nesting_and_direction() {
        let ops = vec![LensOp::In {
            name: "meta".into(),
            lens: vec![LensOp::Rename {
                source: "a".into(),
                destination: "b".into(),
            }],
        }];
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Path>();
        assert_eq!(
            lens_moves(&ops, Direction::Forward),
            [(s(&["meta", "a"]), s(&["meta", "b"]))]
        );
        assert_eq!(
            lens_moves(&ops, Direction::Backward),
            [(s(&["meta", "b"]), s(&["meta", "a"]))]
        );
    }
}
