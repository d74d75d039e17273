//! JSON Patch (RFC 6902) translation: an edit made in one version, carried to another, so that an
//! old client can PATCH a newer server and replication can ship edits between versions.
//!
//! Each operation's path is rewritten op by op through the lens (`rename` renames a segment,
//! `in`/`map` descend by whole segments, `hoist`/`plunge` move it, `wrap`/`head` add or drop the
//! array index), values are translated exactly as documents are (a whole object written at a
//! path goes through the ops below that path), writes to what the other version does not have
//! are dropped, and finally every write of an object or array is expanded into the container
//! write followed by one write per member ([`expand_patch`]). Given the writer's schema, a newly
//! created object also gets a write for each required property of the target schema, with its
//! default, before its own members (so a new array item is valid in the reader's version).
//!
//! A patch operation the lens cannot carry over without seeing the document is refused with
//! [`LensError::Untranslatable`] rather than translated into something else: a write to one part
//! of a `join`, an append through `head`, a `move`/`copy` between places the lens translates
//! differently, a `test` of a value the lens changes.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::{type_name, LensError};
use crate::op::LensOp;
use crate::plan::{Direction, Params, Plan};
use crate::pointer;
use crate::schema::{allows_null, directed, nested_order, Step};

/// Object nesting followed when expanding a value or filling defaults; deeper is refused.
const MAX_DEPTH: usize = 128;

/// `$ref`s followed in a row when looking up a schema.
const MAX_REF_CHAIN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Add,
    Remove,
    Replace,
    Move,
    Copy,
    Test,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "add" => Kind::Add,
            "remove" => Kind::Remove,
            "replace" => Kind::Replace,
            "move" => Kind::Move,
            "copy" => Kind::Copy,
            "test" => Kind::Test,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Add => "add",
            Kind::Remove => "remove",
            Kind::Replace => "replace",
            Kind::Move => "move",
            Kind::Copy => "copy",
            Kind::Test => "test",
        }
    }
}

/// One patch operation; paths are unescaped reference tokens (relative to the level being
/// translated while a lens runs over it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Op {
    pub(crate) kind: Kind,
    pub(crate) path: Vec<String>,
    /// The source of a `move` or `copy` (always present for them, never for the others).
    pub(crate) from: Option<Vec<String>>,
    /// The value of an `add`, `replace` or `test` (always present for them).
    pub(crate) value: Option<Value>,
}

impl Op {
    fn to_json(&self) -> Value {
        op_json(
            self.kind,
            &pointer::join(&self.path),
            self.from.as_deref().map(pointer::join).as_deref(),
            self.value.as_ref(),
        )
    }
}

fn op_json(kind: Kind, path: &str, from: Option<&str>, value: Option<&Value>) -> Value {
    let mut m = Map::new();
    m.insert("op".into(), Value::String(kind.name().into()));
    if let Some(from) = from {
        m.insert("from".into(), Value::String(from.into()));
    }
    m.insert("path".into(), Value::String(path.into()));
    if let Some(v) = value {
        m.insert("value".into(), v.clone());
    }
    Value::Object(m)
}

impl Plan {
    /// Translate a JSON Patch (an array of RFC 6902 operations) written against the plan's
    /// source version into one for its target version.
    ///
    /// `schema` is the writer's (source version's) JSON Schema. With it, the lens is first
    /// checked against the schema (see [`Plan::translate_schema`]), and every object the patch
    /// creates gets the required properties of the target schema filled with their defaults.
    ///
    /// ```
    /// use mutatis_lens::{Direction, Lens, Plan, Transforms};
    /// use serde_json::json;
    ///
    /// let lens = Lens::from_file_str("lens:\n  - rename: {source: title, destination: name}\n  - in: {name: tags, lens: [{map: {lens: [{add: {name: color, type: string, default: '#fff'}}]}}]}\n").unwrap();
    /// let up = Plan::compile(&lens, Direction::Forward, &Transforms::new()).unwrap();
    /// let patch = json!([{"op": "replace", "path": "/title", "value": "milk"},
    ///                    {"op": "add", "path": "/tags/0", "value": {"label": "urgent"}}]);
    /// assert_eq!(up.translate_patch(&patch, None).unwrap(), json!([
    ///     {"op": "replace", "path": "/name", "value": "milk"},
    ///     {"op": "add", "path": "/tags/0", "value": {}},
    ///     {"op": "add", "path": "/tags/0/label", "value": "urgent"},
    ///     {"op": "add", "path": "/tags/0/color", "value": "#fff"},
    /// ]));
    /// ```
    pub fn translate_patch(
        &self,
        patch: &Value,
        schema: Option<&Value>,
    ) -> Result<Value, LensError> {
        self.translate_patch_with_params(patch, schema, &Params::new())
    }

    /// [`Plan::translate_patch`] with translation parameters, for conversions by expressions
    /// that read them (e.g. `referenceYear`).
    pub fn translate_patch_with_params(
        &self,
        patch: &Value,
        schema: Option<&Value>,
        params: &Params,
    ) -> Result<Value, LensError> {
        let ops = parse_patch(patch)?;
        let target = schema.map(|s| self.translate_schema(s)).transpose()?;
        let level = top_level(self);
        let mut out = Vec::new();
        for (i, op) in ops.into_iter().enumerate() {
            let cx = Cx {
                plan: self,
                params,
                at: pointer::push_index("", i),
            };
            match op.kind {
                Kind::Add | Kind::Remove | Kind::Replace => {
                    for w in write_level(&cx, &level, op, &[])? {
                        emit_write(&mut out, &w, target.as_ref())?;
                    }
                }
                Kind::Test => translate_test(&cx, &level, op, &mut out)?,
                Kind::Move | Kind::Copy => translate_move(&cx, &level, op, &mut out)?,
            }
        }
        Ok(Value::Array(out))
    }
}

/// Expand a patch (an array of operations, or one operation): each `add` or `replace` of an
/// object or array becomes the write of an empty container followed by an `add` of each member,
/// recursively. Other operations are kept as they are, and so is an append (a path ending in
/// `/-`), since `-` names no element once the element is added.
///
/// Members are written with `add`, also under a `replace`: RFC 6902's `replace` needs its target
/// to exist, and after the container is reset its members do not.
///
/// ```
/// use mutatis_lens::expand_patch;
/// use serde_json::json;
///
/// let op = json!({"op": "replace", "path": "/obj", "value": {"a": [5]}});
/// assert_eq!(expand_patch(&op).unwrap(), json!([
///     {"op": "replace", "path": "/obj", "value": {}},
///     {"op": "add", "path": "/obj/a", "value": []},
///     {"op": "add", "path": "/obj/a/0", "value": 5},
/// ]));
/// ```
pub fn expand_patch(patch: &Value) -> Result<Value, LensError> {
    let ops = match patch {
        Value::Object(_) => vec![parse_op(patch, None)?],
        _ => parse_patch(patch)?,
    };
    let mut out = Vec::new();
    for op in &ops {
        emit_write(&mut out, op, None)?;
    }
    Ok(Value::Array(out))
}

// ---------------------------------------------------------------------------------------------
// Parsing (shared with [`crate::apply_patch`]: one reading of RFC 6902 for translating and
// applying)

fn invalid(at: &str, reason: impl Into<String>) -> LensError {
    LensError::InvalidInput {
        at: at.into(),
        reason: reason.into(),
    }
}

/// Why a JSON Patch is not well formed: which operation, which of its members, and what is
/// wrong. Translation reports it as a pointer into the patch ([`ParseFault::at`]); applying
/// reports the operation's index and pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseFault {
    /// The operation's index; `None` when the patch is not an array (or is one bare
    /// operation, as [`expand_patch`] accepts).
    pub(crate) index: Option<usize>,
    /// The member at fault (`op`, `path`, `from`), `None` for the operation as a whole.
    pub(crate) member: Option<&'static str>,
    /// What is wrong.
    pub(crate) reason: String,
}

impl ParseFault {
    fn new(index: Option<usize>, member: Option<&'static str>, reason: impl Into<String>) -> Self {
        ParseFault {
            index,
            member,
            reason: reason.into(),
        }
    }

    /// The JSON pointer into the patch of what is at fault (`/3/path`).
    pub(crate) fn at(&self) -> String {
        let op = self
            .index
            .map_or_else(String::new, |i| pointer::push_index("", i));
        match self.member {
            Some(member) => pointer::push(&op, member),
            None => op,
        }
    }
}

impl From<ParseFault> for LensError {
    fn from(fault: ParseFault) -> Self {
        invalid(&fault.at(), fault.reason)
    }
}

/// Parse a patch (an array of operations) into [`Op`]s, refusing the first malformed one.
pub(crate) fn parse_patch(patch: &Value) -> Result<Vec<Op>, ParseFault> {
    let Value::Array(items) = patch else {
        return Err(ParseFault::new(
            None,
            None,
            format!(
                "a JSON Patch is an array of operations, found {}",
                type_name(patch)
            ),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| parse_op(v, Some(i)))
        .collect()
}

fn parse_op(v: &Value, index: Option<usize>) -> Result<Op, ParseFault> {
    let fault = |member, reason: String| ParseFault::new(index, member, reason);
    let Value::Object(m) = v else {
        return Err(fault(
            None,
            format!("a patch operation is an object, found {}", type_name(v)),
        ));
    };
    let kind = match m.get("op") {
        Some(Value::String(s)) => Kind::parse(s).ok_or_else(|| {
            fault(
                Some("op"),
                format!(
                    "unknown operation `{s}`; expected add, remove, replace, move, copy or test"
                ),
            )
        })?,
        Some(other) => {
            return Err(fault(
                Some("op"),
                format!("`op` must be a string, found {}", type_name(other)),
            ))
        }
        None => return Err(fault(None, "missing `op`".into())),
    };
    let path = parse_pointer(m.get("path")).map_err(|r| fault(Some("path"), r))?;
    let from = match kind {
        Kind::Move | Kind::Copy => {
            Some(parse_pointer(m.get("from")).map_err(|r| fault(Some("from"), r))?)
        }
        _ => None,
    };
    let value = match kind {
        Kind::Add | Kind::Replace | Kind::Test => Some(
            m.get("value")
                .cloned()
                .ok_or_else(|| fault(None, format!("`{}` needs a `value`", kind.name())))?,
        ),
        _ => None,
    };
    Ok(Op {
        kind,
        path,
        from,
        value,
    })
}

fn parse_pointer(v: Option<&Value>) -> Result<Vec<String>, String> {
    match v {
        Some(Value::String(s)) => strict_tokens(s).ok_or_else(|| {
            if s.is_empty() || s.starts_with('/') {
                format!("`{s}` is not a JSON pointer (a `~` must be followed by 0 or 1)")
            } else {
                format!("`{s}` is not a JSON pointer (it must be empty or start with `/`)")
            }
        }),
        Some(other) => Err(format!(
            "a JSON pointer is a string, found {}",
            type_name(other)
        )),
        None => Err("missing".into()),
    }
}

/// The reference tokens of an RFC 6901 pointer, refusing a `~` that is not `~0` or `~1` (which
/// [`pointer::parse`] lets through): a patch with such a pointer is malformed, and reading
/// it as some other pointer would edit the wrong place.
fn strict_tokens(text: &str) -> Option<Vec<String>> {
    let escapes_ok = text
        .split('~')
        .skip(1)
        .all(|after| after.starts_with('0') || after.starts_with('1'));
    if escapes_ok {
        pointer::parse(text)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Lens ops by level

/// What translating one patch operation needs.
struct Cx<'p> {
    plan: &'p Plan,
    params: &'p Params,
    /// The operation's pointer in the patch (`/3`), for errors.
    at: String,
}

impl Cx<'_> {
    fn untranslatable(&self, origin: &str, reason: String) -> LensError {
        LensError::Untranslatable {
            op: origin.into(),
            at: self.at.clone(),
            reason,
        }
    }
}

/// One lens op at one nesting level, with what finds its compiled step.
struct LevelOp<'a> {
    op: &'a LensOp,
    dir: Direction,
    origin: String,
    /// Its place among the plan's steps (see [`Plan::apply_step_at`]).
    index: Vec<usize>,
}

fn top_level(plan: &Plan) -> Vec<LevelOp<'_>> {
    plan.ops()
        .iter()
        .enumerate()
        .map(|(k, d)| LevelOp {
            op: &d.op,
            dir: d.direction,
            origin: d.origin.clone(),
            index: vec![k],
        })
        .collect()
}

fn nested_level<'a>(parent: &LevelOp<'a>, lens: &'a [LensOp]) -> Vec<LevelOp<'a>> {
    nested_order(lens, parent.dir)
        .into_iter()
        .enumerate()
        .map(|(pos, (j, op))| {
            let mut index = parent.index.clone();
            index.push(pos);
            LevelOp {
                op,
                dir: parent.dir,
                origin: format!("{}/lens/{j}", parent.origin),
                index,
            }
        })
        .collect()
}

/// An array index token (`0`, `12`; not `-`, not `01`).
fn is_index(token: &str) -> bool {
    !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'))
}

fn describe(w: &Op, abs: &[String]) -> String {
    let mut path: Vec<&str> = abs.iter().map(String::as_str).collect();
    path.extend(w.path.iter().map(String::as_str));
    format!("`{} {}`", w.kind.name(), pointer::join(&path))
}

// ---------------------------------------------------------------------------------------------
// add / remove / replace

/// Run the ops of one level over a write whose path is relative to that level (`abs` is the
/// level's place in the document).
fn write_level(
    cx: &Cx<'_>,
    ops: &[LevelOp<'_>],
    w: Op,
    abs: &[String],
) -> Result<Vec<Op>, LensError> {
    let mut batch = vec![w];
    for lop in ops {
        let mut next = Vec::with_capacity(batch.len());
        for w in batch {
            write_op(cx, lop, w, abs, &mut next)?;
        }
        batch = next;
    }
    Ok(batch)
}

fn write_op(
    cx: &Cx<'_>,
    lop: &LevelOp<'_>,
    mut w: Op,
    abs: &[String],
    out: &mut Vec<Op>,
) -> Result<(), LensError> {
    let step = directed(lop.op, lop.dir);
    let Some(head) = w.path.first().cloned() else {
        // The write replaces the whole value this level works on: translate it as a document.
        if let Some(v) = w.value.as_mut().filter(|v| !v.is_null()) {
            cx.plan
                .apply_step_at(&lop.index, v, cx.params, &pointer::join(abs))?;
        }
        out.push(w);
        return Ok(());
    };
    let whole = w.path.len() == 1;
    match step {
        Step::Rename { from, to } => {
            if head == from {
                w.path[0] = to.to_owned();
            }
            out.push(w);
        }
        // An added field, or one the older version keeps as it was, passes through.
        Step::Add(_) | Step::Unset { .. } => out.push(w),
        // What the other version does not have, or always has as a constant, is not written.
        Step::Drop { name } | Step::Set { name, .. } => {
            if head != name {
                out.push(w);
            }
        }
        Step::Hoist { host, name } => {
            if head != host {
                out.push(w);
            } else if !whole && w.path[1] == name {
                w.path.remove(0);
                out.push(w);
            } else if whole {
                // The host is written whole: its `name` goes up, next to it.
                let hoisted = match (w.kind, w.value.as_mut()) {
                    (Kind::Add | Kind::Replace, Some(Value::Object(m))) => m.shift_remove(name),
                    _ => None,
                };
                let Some(hoisted) = hoisted else {
                    return Err(cx.untranslatable(
                        &lop.origin,
                        format!(
                            "{}: the lens moves `{host}/{name}` up to `{name}`; this write does not give `{name}`, and a patch cannot remove `{name}` without knowing it is there. Write the members of `{host}` one by one",
                            describe(&w, abs)
                        ),
                    ));
                };
                out.push(w);
                out.push(Op {
                    kind: Kind::Add,
                    path: vec![name.to_owned()],
                    from: None,
                    value: Some(hoisted),
                });
            } else {
                out.push(w);
            }
        }
        Step::Plunge { host, name } => {
            if head == name {
                w.path.insert(0, host.to_owned());
                out.push(w);
            } else if head == host && (whole || w.path[1] == name) {
                return Err(cx.untranslatable(
                    &lop.origin,
                    format!(
                        "{}: the lens keeps `{name}` inside `{host}`, so writing or removing `{host}` whole would overwrite or drop it. Write the members of `{host}` one by one",
                        describe(&w, abs)
                    ),
                ));
            } else {
                out.push(w);
            }
        }
        Step::Wrap { name } => {
            if head == name {
                if whole && w.kind != Kind::Remove && w.value.as_ref().is_some_and(Value::is_null) {
                    // The scalar is cleared: the array loses its element.
                    w = Op {
                        kind: Kind::Remove,
                        path: vec![name.to_owned(), "0".into()],
                        from: None,
                        value: None,
                    };
                } else if !whole || w.kind != Kind::Remove {
                    w.path.insert(1, "0".into());
                }
            }
            out.push(w);
        }
        Step::Head { name } => {
            if head != name {
                out.push(w);
            } else if whole {
                if let Some(v) = w.value.as_mut() {
                    *v = match std::mem::take(v) {
                        Value::Array(items) => items.into_iter().next().unwrap_or(Value::Null),
                        Value::Null => Value::Null,
                        other => {
                            return Err(LensError::TypeMismatch {
                                op: lop.origin.clone(),
                                at: pointer::join(&[abs, &w.path[..]].concat()),
                                expected: "an array",
                                found: type_name(&other),
                            })
                        }
                    };
                }
                out.push(w);
            } else {
                let index = w.path[1].as_str();
                if index == "0" {
                    w.path.remove(1);
                    if w.path.len() == 1 && w.kind == Kind::Remove {
                        // The first element goes: the scalar becomes null.
                        w.kind = Kind::Replace;
                        w.value = Some(Value::Null);
                    }
                    out.push(w);
                } else if is_index(index) {
                    // Other elements are not visible through `head`: nothing to write.
                } else if index == "-" {
                    return Err(cx.untranslatable(
                        &lop.origin,
                        format!(
                            "{}: the other version keeps only the first element of `{name}`, and whether an appended element is the first depends on the array being empty. Write index 0 or the whole array",
                            describe(&w, abs)
                        ),
                    ));
                } else {
                    return Err(cx.untranslatable(
                        &lop.origin,
                        format!(
                            "{}: `{name}` is an array, and `{index}` is not an index",
                            describe(&w, abs)
                        ),
                    ));
                }
            }
        }
        Step::In { name, lens } => {
            if head == name {
                let sub = nested_level(lop, lens);
                let mut sub_abs = abs.to_vec();
                sub_abs.push(head.clone());
                w.path.remove(0);
                for mut inner in write_level(cx, &sub, w, &sub_abs)? {
                    inner.path.insert(0, head.clone());
                    out.push(inner);
                }
            } else {
                out.push(w);
            }
        }
        Step::Map { lens } => {
            if !is_index(&head) && head != "-" {
                return Err(cx.untranslatable(
                    &lop.origin,
                    format!(
                        "{}: `map` works on an array, and `{head}` is not an index",
                        describe(&w, abs)
                    ),
                ));
            }
            let sub = nested_level(lop, lens);
            let mut sub_abs = abs.to_vec();
            sub_abs.push(head.clone());
            w.path.remove(0);
            for mut inner in write_level(cx, &sub, w, &sub_abs)? {
                inner.path.insert(0, head.clone());
                out.push(inner);
            }
        }
        Step::Convert { name, .. } => {
            if head != name {
                out.push(w);
            } else if !whole {
                return Err(cx.untranslatable(
                    &lop.origin,
                    format!(
                        "{}: the lens converts whole values of `{name}`, not parts of one. Write `{name}` whole",
                        describe(&w, abs)
                    ),
                ));
            } else {
                if let Some(v) = w.value.take() {
                    w.value = Some(convert_field(cx, lop, name, v, abs)?);
                }
                out.push(w);
            }
        }
        Step::Copy { from, to } => {
            if head == from {
                let mut copy = w.clone();
                copy.path[0] = to.to_owned();
                out.push(w);
                out.push(copy);
            } else {
                out.push(w);
            }
        }
        Step::Split(sj) => {
            if head != sj.whole {
                out.push(w);
            } else if !whole {
                return Err(cx.untranslatable(
                    &lop.origin,
                    format!(
                        "{}: `{head}` is a string, it has no members",
                        describe(&w, abs)
                    ),
                ));
            } else if let Some(v) = w.value.take() {
                // Each part is written with `add`, which sets a member whether or not it exists.
                let mut holder = Map::new();
                holder.insert(sj.whole.clone(), v);
                let mut holder = Value::Object(holder);
                cx.plan
                    .apply_step_at(&lop.index, &mut holder, cx.params, &pointer::join(abs))?;
                if let Value::Object(parts) = holder {
                    for part in &sj.parts {
                        if let Some(value) = parts.get(part) {
                            out.push(Op {
                                kind: Kind::Add,
                                path: vec![part.clone()],
                                from: None,
                                value: Some(value.clone()),
                            });
                        }
                    }
                }
            } else {
                for part in &sj.parts {
                    out.push(Op {
                        kind: Kind::Remove,
                        path: vec![part.clone()],
                        from: None,
                        value: None,
                    });
                }
            }
        }
        Step::Join(sj) => {
            if sj.parts.contains(&head) {
                return Err(cx.untranslatable(
                    &lop.origin,
                    format!(
                        "{}: the lens joins {} into `{}`, which cannot be computed from one part alone. Write the object holding them whole",
                        describe(&w, abs),
                        sj.parts.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", "),
                        sj.whole
                    ),
                ));
            }
            out.push(w);
        }
    }
    Ok(())
}

/// The value of field `name` after the op, when `value` is written there (the field is
/// translated inside an object of its own, exactly as a document's field would be).
fn convert_field(
    cx: &Cx<'_>,
    lop: &LevelOp<'_>,
    name: &str,
    value: Value,
    abs: &[String],
) -> Result<Value, LensError> {
    let mut holder = Map::new();
    holder.insert(name.to_owned(), value);
    let mut holder = Value::Object(holder);
    cx.plan
        .apply_step_at(&lop.index, &mut holder, cx.params, &pointer::join(abs))?;
    Ok(match holder {
        Value::Object(mut m) => m.shift_remove(name).unwrap_or(Value::Null),
        _ => Value::Null,
    })
}

// ---------------------------------------------------------------------------------------------
// test / move / copy

/// Where a pointer lands in the other version, and which ops change the value there.
enum Located {
    At {
        path: Vec<String>,
        /// The ops that change the value (or some value inside it), by step index, with their
        /// pointers for errors. Empty: the value is carried over unchanged.
        changed_by: Vec<(Vec<usize>, String)>,
    },
    /// The other version has no such place (the op at this pointer drops it).
    Gone(String),
}

fn locate(ops: &[LevelOp<'_>], path: Vec<String>) -> Located {
    let mut changed_by = Vec::new();
    match locate_level(ops, path, &mut changed_by) {
        Ok(path) => Located::At { path, changed_by },
        Err(origin) => Located::Gone(origin),
    }
}

fn locate_level(
    ops: &[LevelOp<'_>],
    mut path: Vec<String>,
    changed_by: &mut Vec<(Vec<usize>, String)>,
) -> Result<Vec<String>, String> {
    for lop in ops {
        let step = directed(lop.op, lop.dir);
        let Some(head) = path.first().cloned() else {
            // Every op changes something inside the whole value this level works on.
            let empty =
                matches!(step, Step::In { lens, .. } | Step::Map { lens } if lens.is_empty());
            if !empty {
                changed_by.push((lop.index.clone(), lop.origin.clone()));
            }
            continue;
        };
        let whole = path.len() == 1;
        let mut changes = false;
        match step {
            Step::Rename { from, to } => {
                if head == from {
                    path[0] = to.to_owned();
                } else if head == to {
                    changes = true;
                }
            }
            Step::Add(_) => {}
            Step::Drop { name } => {
                if head == name {
                    return Err(lop.origin.clone());
                }
            }
            Step::Set { name, .. } | Step::Unset { name } | Step::Convert { name, .. } => {
                changes = head == name;
            }
            Step::Hoist { host, name } => {
                if head == host {
                    if !whole && path[1] == name {
                        path.remove(0);
                    } else if whole {
                        changes = true;
                    }
                } else if head == name {
                    changes = true;
                }
            }
            Step::Plunge { host, name } => {
                if head == name {
                    path.insert(0, host.to_owned());
                } else if head == host && (whole || path[1] == name) {
                    changes = true;
                }
            }
            Step::Wrap { name } => {
                if head == name {
                    if whole {
                        changes = true;
                    } else {
                        path.insert(1, "0".into());
                    }
                }
            }
            Step::Head { name } => {
                if head == name {
                    if whole {
                        changes = true;
                    } else if path[1] == "0" {
                        path.remove(1);
                    } else {
                        return Err(lop.origin.clone());
                    }
                }
            }
            Step::In { name, lens } => {
                if head == name {
                    let sub = nested_level(lop, lens);
                    let inner = locate_level(&sub, path[1..].to_vec(), changed_by)?;
                    path.truncate(1);
                    path.extend(inner);
                }
            }
            Step::Map { lens } => {
                if !is_index(&head) && head != "-" {
                    return Err(lop.origin.clone());
                }
                let sub = nested_level(lop, lens);
                let inner = locate_level(&sub, path[1..].to_vec(), changed_by)?;
                path.truncate(1);
                path.extend(inner);
            }
            Step::Copy { from, to } => changes = head == from || head == to,
            Step::Split(sj) | Step::Join(sj) => {
                changes = head == sj.whole || sj.parts.contains(&head);
            }
        }
        if changes {
            changed_by.push((lop.index.clone(), lop.origin.clone()));
        }
    }
    Ok(path)
}

fn translate_test(
    cx: &Cx<'_>,
    level: &[LevelOp<'_>],
    op: Op,
    out: &mut Vec<Value>,
) -> Result<(), LensError> {
    let shown = pointer::join(&op.path);
    match locate(level, op.path.clone()) {
        Located::At { path, changed_by } => match changed_by.first() {
            None => {
                out.push(op_json(Kind::Test, &pointer::join(&path), None, op.value.as_ref()));
                Ok(())
            }
            Some((_, origin)) => Err(cx.untranslatable(
                origin,
                format!("`test {shown}`: the lens changes the tested value, so the same test cannot be made in the other version"),
            )),
        },
        Located::Gone(origin) => Err(cx.untranslatable(
            &origin,
            format!("`test {shown}`: the other version has no such value to test"),
        )),
    }
}

fn translate_move(
    cx: &Cx<'_>,
    level: &[LevelOp<'_>],
    op: Op,
    out: &mut Vec<Value>,
) -> Result<(), LensError> {
    let from_tokens = op.from.clone().unwrap_or_default();
    let shown = format!(
        "`{} {} -> {}`",
        op.kind.name(),
        pointer::join(&from_tokens),
        pointer::join(&op.path)
    );
    let from = locate(level, from_tokens);
    let to = locate(level, op.path.clone());
    match (from, to) {
        (Located::Gone(origin), _) => Err(cx.untranslatable(
            &origin,
            format!("{shown}: the other version does not have the value at the source; write the destination with its value instead"),
        )),
        // The value lands where the other version cannot see it: a copy changes nothing
        // there, a move only removes the source (if nothing else depends on it).
        (Located::At { path, changed_by }, Located::Gone(origin)) => {
            if op.kind == Kind::Move {
                if let Some((_, by)) = changed_by.first() {
                    return Err(cx.untranslatable(
                        by,
                        format!("{shown}: the destination does not exist in the other version (lens op {origin}), and the lens changes the source, so removing it cannot be carried over"),
                    ));
                }
                out.push(op_json(Kind::Remove, &pointer::join(&path), None, None));
            }
            Ok(())
        }
        (
            Located::At {
                path: from,
                changed_by: from_changes,
            },
            Located::At {
                path: to,
                changed_by: to_changes,
            },
        ) => {
            // Moving a value is moving its translation only when both places translate it the
            // same way (both untouched, or two elements of one mapped array).
            let same = from_changes.len() == to_changes.len()
                && from_changes.iter().zip(&to_changes).all(|(a, b)| a.0 == b.0);
            if !same {
                let origin = from_changes
                    .iter()
                    .chain(&to_changes)
                    .map(|(_, o)| o.clone())
                    .next()
                    .unwrap_or_default();
                return Err(cx.untranslatable(
                    &origin,
                    format!("{shown}: the lens translates the source and the destination differently; remove and add the value instead"),
                ));
            }
            out.push(op_json(
                op.kind,
                &pointer::join(&to),
                Some(&pointer::join(&from)),
                None,
            ));
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Expansion and defaults

fn emit_write(out: &mut Vec<Value>, w: &Op, target: Option<&Value>) -> Result<(), LensError> {
    match (w.kind, &w.value) {
        (Kind::Add | Kind::Replace, Some(v)) => {
            emit(out, w.kind, &pointer::join(&w.path), v, target, 0)
        }
        _ => {
            out.push(w.to_json());
            Ok(())
        }
    }
}

/// Write `value` at `path` as a container write and one `add` per member; with a target
/// schema, a written object first gets its required properties' defaults.
fn emit(
    out: &mut Vec<Value>,
    kind: Kind,
    path: &str,
    value: &Value,
    target: Option<&Value>,
    depth: usize,
) -> Result<(), LensError> {
    if depth > MAX_DEPTH {
        return Err(invalid(path, "the value nests too deeply"));
    }
    if (value.is_object() || value.is_array()) && path.ends_with("/-") {
        // An append: `-` names no element afterwards, so the members cannot be written one by
        // one. The new element is written whole, with the defaults merged in.
        let completed = match (target, pointer::parse(path)) {
            (Some(root), Some(tokens)) => complete(value, root, &tokens, depth)?,
            _ => value.clone(),
        };
        out.push(op_json(kind, path, None, Some(&completed)));
        return Ok(());
    }
    match value {
        Value::Object(members) => {
            out.push(op_json(kind, path, None, Some(&Value::Object(Map::new()))));
            let filled = match target {
                Some(root) => fill_defaults(out, root, path, depth)?,
                None => HashMap::new(),
            };
            for (k, v) in members {
                let p = pointer::push(path, k);
                // A member equal to the default just written would only repeat it.
                if !v.is_object() && !v.is_array() && filled.get(&p) == Some(v) {
                    continue;
                }
                emit(out, Kind::Add, &p, v, target, depth + 1)?;
            }
        }
        Value::Array(items) => {
            out.push(op_json(kind, path, None, Some(&Value::Array(Vec::new()))));
            for (i, v) in items.iter().enumerate() {
                emit(
                    out,
                    Kind::Add,
                    &pointer::push_index(path, i),
                    v,
                    target,
                    depth + 1,
                )?;
            }
        }
        scalar => out.push(op_json(kind, path, None, Some(scalar))),
    }
    Ok(())
}

/// `value` (to be written at `tokens`) with the defaults of missing required properties merged
/// in, at every depth: what [`fill_defaults`] writes, as one value.
fn complete(
    value: &Value,
    root: &Value,
    tokens: &[String],
    depth: usize,
) -> Result<Value, LensError> {
    if depth > MAX_DEPTH {
        return Err(invalid(
            &pointer::join(tokens),
            "the value nests too deeply",
        ));
    }
    let child = |key: String| {
        let mut t = tokens.to_vec();
        t.push(key);
        t
    };
    Ok(match value {
        Value::Object(members) => {
            let mut out = Map::new();
            if let Some(schema) = schema_at(root, tokens) {
                let required: Vec<&str> = match schema.get("required") {
                    Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                if let Some(Value::Object(props)) = schema.get("properties") {
                    for (name, prop) in props {
                        if members.contains_key(name) || !required.contains(&name.as_str()) {
                            continue;
                        }
                        if let Some(default) = resolve(root, prop).and_then(|p| default_of(&p)) {
                            let filled = complete(&default, root, &child(name.clone()), depth + 1)?;
                            out.insert(name.clone(), filled);
                        }
                    }
                }
            }
            for (k, v) in members {
                out.insert(k.clone(), complete(v, root, &child(k.clone()), depth + 1)?);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| complete(v, root, &child(i.to_string()), depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        scalar => scalar.clone(),
    })
}

/// Write the defaults of the required properties of the object schema at `path` of the target
/// schema; returns the scalar defaults written, by pointer.
fn fill_defaults(
    out: &mut Vec<Value>,
    root: &Value,
    path: &str,
    depth: usize,
) -> Result<HashMap<String, Value>, LensError> {
    let mut filled = HashMap::new();
    let Some(schema) = pointer::parse(path).and_then(|tokens| schema_at(root, &tokens)) else {
        return Ok(filled);
    };
    let required: Vec<&str> = match schema.get("required") {
        Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(filled),
    };
    let Some(Value::Object(props)) = schema.get("properties") else {
        return Ok(filled);
    };
    for (name, prop) in props {
        if !required.contains(&name.as_str()) {
            continue;
        }
        let Some(default) = resolve(root, prop).and_then(|p| default_of(&p)) else {
            continue;
        };
        let p = pointer::push(path, name);
        if !default.is_object() && !default.is_array() {
            filled.insert(p.clone(), default.clone());
        }
        emit(out, Kind::Add, &p, &default, Some(root), depth + 1)?;
    }
    Ok(filled)
}

/// The value a required property starts with: its `default`, an empty container for an object
/// or array, `null` if it may be null; `None` when the schema gives no value to invent.
fn default_of(schema: &Map<String, Value>) -> Option<Value> {
    if let Some(d) = schema.get("default") {
        return Some(d.clone());
    }
    match schema.get("type") {
        Some(Value::String(t)) if t == "object" => Some(Value::Object(Map::new())),
        Some(Value::String(t)) if t == "array" => Some(Value::Array(Vec::new())),
        _ if allows_null(&Value::Object(schema.clone())) => Some(Value::Null),
        _ => None,
    }
}

/// The (resolved) schema of the value at `tokens` in documents of schema `root`.
fn schema_at(root: &Value, tokens: &[String]) -> Option<Map<String, Value>> {
    let mut cur = resolve(root, root)?;
    for t in tokens {
        let next = match cur.get("properties").and_then(|p| p.get(t)) {
            Some(s) => s.clone(),
            None => {
                let index = t.parse::<usize>().ok();
                match (cur.get("prefixItems"), cur.get("items"), index) {
                    (Some(Value::Array(prefix)), _, Some(i)) if i < prefix.len() => {
                        prefix[i].clone()
                    }
                    (_, Some(items @ (Value::Object(_) | Value::Bool(true))), _)
                        if index.is_some() || t == "-" =>
                    {
                        items.clone()
                    }
                    _ => return None,
                }
            }
        };
        cur = resolve(root, &next)?;
    }
    Some(cur)
}

/// `schema` as a keyword map: local `$ref`s followed, a nullable `anyOf`/`oneOf` looked
/// through, `true` as `{}`. `None` for `false` or what cannot be followed.
fn resolve(root: &Value, schema: &Value) -> Option<Map<String, Value>> {
    let mut cur = schema.clone();
    for _ in 0..MAX_REF_CHAIN {
        match cur {
            Value::Bool(true) => return Some(Map::new()),
            Value::Object(ref m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    let tokens = r.strip_prefix('#').and_then(pointer::parse)?;
                    let target = tokens.iter().try_fold(root, |v, t| match v {
                        Value::Object(o) => o.get(t),
                        Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
                        _ => None,
                    })?;
                    cur = target.clone();
                    continue;
                }
                let branch = ["anyOf", "oneOf"].iter().find_map(|k| match m.get(*k) {
                    Some(Value::Array(bs)) if bs.len() > 1 => {
                        let mut non_null = bs.iter().filter(|b| !is_null_only(b));
                        match (non_null.next(), non_null.next()) {
                            (Some(b), None) => Some(b.clone()),
                            _ => None,
                        }
                    }
                    _ => None,
                });
                match branch {
                    Some(b) => cur = b,
                    None => return Some(m.clone()),
                }
            }
            _ => return None,
        }
    }
    None
}

fn is_null_only(schema: &Value) -> bool {
    matches!(schema, Value::Object(m) if m.get("type") == Some(&Value::String("null".into())))
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

    fn untranslatable(err: &LensError) -> (&str, &str, &str) {
        match err {
            LensError::Untranslatable { op, at, reason } => (op, at, reason),
            other => panic!("not untranslatable: {other:?}"),
        }
    }

    #[test]
    fn in_matches_whole_segments_only() {
        let up = plan(
            "lens:\n  - in: {name: meta, lens: [{rename: {source: t, destination: title}}]}\n",
        );
        let patch = json!([
            {"op": "replace", "path": "/meta/t", "value": 1},
            {"op": "replace", "path": "/metadata/t", "value": 2},
            {"op": "remove", "path": "/meta/t"},
        ]);
        assert_eq!(
            up.translate_patch(&patch, None).unwrap(),
            json!([
                {"op": "replace", "path": "/meta/title", "value": 1},
                {"op": "replace", "path": "/metadata/t", "value": 2},
                {"op": "remove", "path": "/meta/title"},
            ])
        );
    }

    #[test]
    fn whole_values_are_translated_as_documents() {
        let up = plan(
            "lens:
  - in: {name: meta, lens: [{rename: {source: t, destination: title}}, {remove: {name: old, type: string}}]}
  - convert: {name: done, forward: {'true': closed, 'false': open}, backward: {closed: true, open: false}}
",
        );
        let patch = json!([{"op": "add", "path": "", "value": {"meta": {"t": "x", "old": "y"}, "done": true}}]);
        assert_eq!(
            up.translate_patch(&patch, None).unwrap(),
            json!([
                {"op": "add", "path": "", "value": {}},
                {"op": "add", "path": "/meta", "value": {}},
                {"op": "add", "path": "/meta/title", "value": "x"},
                {"op": "add", "path": "/done", "value": "closed"},
            ])
        );
        // Converted values go through the table, fallback included, and unmapped ones fail.
        let err = up
            .translate_patch(
                &json!([{"op": "replace", "path": "/done", "value": 3}]),
                None,
            )
            .unwrap_err();
        assert!(
            matches!(&err, LensError::NoMapping { at, .. } if at == "/done"),
            "{err:?}"
        );
        // With a fallback, an unmapped value takes it.
        let fallback = plan("lens:\n  - convert: {name: done, forward: {'true': closed}, forwardDefault: open, backward: {closed: true}}\n");
        assert_eq!(
            fallback
                .translate_patch(
                    &json!([{"op": "add", "path": "/done", "value": false}]),
                    None
                )
                .unwrap(),
            json!([{"op": "add", "path": "/done", "value": "open"}])
        );
        // A write inside a converted value cannot be converted.
        let err = up
            .translate_patch(
                &json!([{"op": "replace", "path": "/done/x", "value": 3}]),
                None,
            )
            .unwrap_err();
        assert_eq!(untranslatable(&err).0, "/1");
    }

    #[test]
    fn added_fields_are_filled_and_removed_fields_dropped() {
        let up = plan(
            "lens:\n  - in: {name: tags, lens: [{map: {lens: [{add: {name: color, type: string, default: red}}]}}]}\n  - remove: {name: legacy, type: string}\n",
        );
        let patch = json!([
            {"op": "add", "path": "/tags/-", "value": {"name": "a"}},
            {"op": "replace", "path": "/legacy", "value": "x"},
        ]);
        assert_eq!(
            up.translate_patch(&patch, None).unwrap(),
            // An append is written whole: `-` names no element once it is added.
            json!([{"op": "add", "path": "/tags/-", "value": {"name": "a", "color": "red"}}])
        );
        // Backward, the added field is dropped and the removed one comes back on new objects.
        let down = up.reverse();
        let patch = json!([
            {"op": "replace", "path": "/tags/0/color", "value": "blue"},
            {"op": "add", "path": "", "value": {"tags": []}},
        ]);
        assert_eq!(
            down.translate_patch(&patch, None).unwrap(),
            json!([
                {"op": "add", "path": "", "value": {}},
                {"op": "add", "path": "/tags", "value": []},
                {"op": "add", "path": "/legacy", "value": ""},
            ])
        );
    }

    #[test]
    fn schema_defaults_fill_new_objects_once() {
        let up = plan("lens:\n  - in: {name: tags, lens: [{map: {lens: [{add: {name: important, type: boolean, default: false}}]}}]}\n");
        let schema = json!({"type": "object", "properties": {"tags": {"type": "array", "items": {
            "type": "object", "properties": {"name": {"type": "string", "default": ""}, "note": {"type": "string", "default": "-"}},
            "required": ["name"]}}}});
        let patch = json!([{"op": "add", "path": "/tags/0", "value": {"name": "bug"}}]);
        assert_eq!(
            up.translate_patch(&patch, Some(&schema)).unwrap(),
            json!([
                {"op": "add", "path": "/tags/0", "value": {}},
                // Required properties only: `note` is optional and stays unset.
                {"op": "add", "path": "/tags/0/name", "value": ""},
                {"op": "add", "path": "/tags/0/important", "value": false},
                {"op": "add", "path": "/tags/0/name", "value": "bug"},
            ])
        );
        // An appended item is written whole, completed with the same defaults.
        let append = json!([{"op": "add", "path": "/tags/-", "value": {"note": "n"}}]);
        assert_eq!(
            up.translate_patch(&append, Some(&schema)).unwrap(),
            json!([{"op": "add", "path": "/tags/-", "value": {"name": "", "important": false, "note": "n"}}])
        );
        // The lens is checked against the schema first.
        let wrong = json!({"type": "object", "properties": {"tags": {"type": "string"}}});
        let err = up.translate_patch(&patch, Some(&wrong)).unwrap_err();
        assert!(matches!(err, LensError::SchemaMismatch { .. }), "{err:?}");
    }

    #[test]
    fn hoist_and_plunge_move_paths_and_refuse_whole_host_writes() {
        let up = plan("lens:\n  - hoist: {host: meta, name: created}\n");
        let patch = json!([
            {"op": "replace", "path": "/meta/created", "value": 1},
            {"op": "replace", "path": "/meta/edited", "value": 2},
            {"op": "replace", "path": "/meta", "value": {"created": 3, "edited": 4}},
        ]);
        assert_eq!(
            up.translate_patch(&patch, None).unwrap(),
            json!([
                {"op": "replace", "path": "/created", "value": 1},
                {"op": "replace", "path": "/meta/edited", "value": 2},
                {"op": "replace", "path": "/meta", "value": {}},
                {"op": "add", "path": "/meta/edited", "value": 4},
                {"op": "add", "path": "/created", "value": 3},
            ])
        );
        let err = up
            .translate_patch(&json!([{"op": "remove", "path": "/meta"}]), None)
            .unwrap_err();
        let (op, at, reason) = untranslatable(&err);
        assert_eq!((op, at), ("/0", "/0"));
        assert!(reason.contains("`remove /meta`"), "{reason}");
        // Backward it is a plunge: writing the host whole would drop what was plunged into it.
        let down = up.reverse();
        assert_eq!(
            down.translate_patch(
                &json!([{"op": "add", "path": "/created", "value": 5}]),
                None
            )
            .unwrap(),
            json!([{"op": "add", "path": "/meta/created", "value": 5}])
        );
        let err = down
            .translate_patch(
                &json!([{"op": "replace", "path": "/meta", "value": {}}]),
                None,
            )
            .unwrap_err();
        assert!(
            untranslatable(&err).2.contains("members of `meta`"),
            "{err}"
        );
    }

    #[test]
    fn wrap_and_head_index_rules() {
        let head = plan("lens:\n  - head: {name: xs}\n");
        let patch = json!([
            {"op": "replace", "path": "/xs", "value": ["a", "b"]},
            {"op": "replace", "path": "/xs", "value": []},
            {"op": "add", "path": "/xs/0", "value": "c"},
            {"op": "replace", "path": "/xs/3", "value": "d"},
            {"op": "remove", "path": "/xs/0"},
            {"op": "remove", "path": "/xs"},
        ]);
        assert_eq!(
            head.translate_patch(&patch, None).unwrap(),
            json!([
                {"op": "replace", "path": "/xs", "value": "a"},
                {"op": "replace", "path": "/xs", "value": null},
                {"op": "add", "path": "/xs", "value": "c"},
                {"op": "replace", "path": "/xs", "value": null},
                {"op": "remove", "path": "/xs"},
            ])
        );
        let err = head
            .translate_patch(&json!([{"op": "add", "path": "/xs/-", "value": 1}]), None)
            .unwrap_err();
        assert!(untranslatable(&err).2.contains("appended"), "{err}");
        let err = head
            .translate_patch(&json!([{"op": "replace", "path": "/xs", "value": 1}]), None)
            .unwrap_err();
        assert!(
            matches!(&err, LensError::TypeMismatch { at, .. } if at == "/xs"),
            "{err:?}"
        );
        let wrap = plan("lens:\n  - wrap: {name: x}\n");
        // Whole segments only: `/xy` is another field (Cambria's prefix regex would wrap it).
        assert_eq!(
            wrap.translate_patch(&json!([{"op": "replace", "path": "/xy", "value": 1}]), None)
                .unwrap(),
            json!([{"op": "replace", "path": "/xy", "value": 1}])
        );
        let patch = json!([
            {"op": "replace", "path": "/x", "value": {"a": 1}},
            {"op": "replace", "path": "/x", "value": null},
            {"op": "remove", "path": "/x"},
        ]);
        assert_eq!(
            wrap.translate_patch(&patch, None).unwrap(),
            json!([
                {"op": "replace", "path": "/x/0", "value": {}},
                {"op": "add", "path": "/x/0/a", "value": 1},
                {"op": "remove", "path": "/x/0"},
                {"op": "remove", "path": "/x"},
            ])
        );
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
        let patch = json!([
            {"op": "replace", "path": "/name", "value": "Ada Lovelace"},
            {"op": "replace", "path": "/kind", "value": "robot"},
            {"op": "remove", "path": "/name"},
        ]);
        assert_eq!(
            up.translate_patch(&patch, None).unwrap(),
            json!([
                {"op": "add", "path": "/first", "value": "Ada"},
                {"op": "add", "path": "/last", "value": "Lovelace"},
                {"op": "replace", "path": "/display", "value": "Ada Lovelace"},
                {"op": "remove", "path": "/first"},
                {"op": "remove", "path": "/last"},
                {"op": "remove", "path": "/display"},
            ])
        );
        // Backward the split is a join: one part alone cannot be joined.
        let err = up
            .reverse()
            .translate_patch(
                &json!([{"op": "replace", "path": "/last", "value": "Byron"}]),
                None,
            )
            .unwrap_err();
        let (op, _, reason) = untranslatable(&err);
        assert_eq!(op, "/1");
        assert!(reason.contains("`first`, `last`"), "{reason}");
        // The whole object joins fine.
        assert_eq!(
            up.reverse()
                .translate_patch(
                    &json!([{"op": "add", "path": "", "value": {"first": "Ada", "last": "Byron", "display": "A"}}]),
                    None
                )
                .unwrap(),
            json!([{"op": "add", "path": "", "value": {}}, {"op": "add", "path": "/name", "value": "Ada Byron"}])
        );
    }

    #[test]
    fn move_copy_and_test_are_translated_only_when_sound() {
        let up = plan(
            "lens:
  - rename: {source: a, destination: b}
  - convert: {name: c, forward: {'1': one}, backward: {one: 1}}
  - in: {name: items, lens: [{map: {lens: [{rename: {source: t, destination: title}}]}}]}
",
        );
        let patch = json!([
            {"op": "test", "path": "/a", "value": 1},
            {"op": "move", "from": "/a", "path": "/z"},
            {"op": "move", "from": "/items/2", "path": "/items/0"},
            {"op": "copy", "from": "/items/0/t", "path": "/items/1/t"},
        ]);
        assert_eq!(
            up.translate_patch(&patch, None).unwrap(),
            json!([
                {"op": "test", "path": "/b", "value": 1},
                {"op": "move", "from": "/b", "path": "/z"},
                {"op": "move", "from": "/items/2", "path": "/items/0"},
                {"op": "copy", "from": "/items/0/title", "path": "/items/1/title"},
            ])
        );
        for (op, blamed) in [
            (json!({"op": "test", "path": "/c", "value": 1}), "/1"),
            (json!({"op": "move", "from": "/c", "path": "/z"}), "/1"),
            (
                json!({"op": "copy", "from": "/items/0", "path": "/z"}),
                "/2/lens/0/lens/0",
            ),
            // The whole array: the `map` changes every element.
            (
                json!({"op": "test", "path": "/items", "value": []}),
                "/2/lens/0",
            ),
        ] {
            let err = up.translate_patch(&json!([op]), None).unwrap_err();
            assert_eq!(untranslatable(&err).0, blamed, "{op}: {err}");
        }
    }

    #[test]
    fn malformed_patches_name_the_place() {
        let up = plan("lens:\n  - rename: {source: a, destination: b}\n");
        let cases = [
            (json!({"op": "add"}), ""),
            (json!([{"op": "frob", "path": "/a"}]), "/0/op"),
            (json!([{"op": "add", "path": "a", "value": 1}]), "/0/path"),
            (json!([{"op": "add", "path": "/a"}]), "/0"),
            (json!([{"op": "move", "path": "/a"}]), "/0/from"),
            (json!([1]), "/0"),
        ];
        for (patch, at) in cases {
            let err = up.translate_patch(&patch, None).unwrap_err();
            assert!(
                matches!(&err, LensError::InvalidInput { at: a, .. } if a == at),
                "{patch}: {err:?}"
            );
        }
    }

    /// A strict RFC 6902 applier (a `replace` or `remove` target must exist), for the tests.
    fn apply_patch(doc: &mut Value, patch: &Value) -> Result<(), String> {
        fn parent<'v>(doc: &'v mut Value, tokens: &[String]) -> Result<&'v mut Value, String> {
            let mut cur = doc;
            for t in tokens {
                cur = match cur {
                    Value::Object(m) => m.get_mut(t).ok_or(format!("no member {t}"))?,
                    Value::Array(a) => {
                        let i: usize = t.parse().map_err(|_| format!("bad index {t}"))?;
                        a.get_mut(i).ok_or(format!("no element {t}"))?
                    }
                    _ => return Err(format!("cannot descend into {t}")),
                };
            }
            Ok(cur)
        }
        fn put(doc: &mut Value, path: &str, v: Value, insert: bool) -> Result<(), String> {
            let tokens = pointer::parse(path).ok_or("bad pointer")?;
            let Some((last, init)) = tokens.split_last() else {
                *doc = v;
                return Ok(());
            };
            match parent(doc, init)? {
                Value::Object(m) => {
                    if !insert && !m.contains_key(last) {
                        return Err(format!("replace of missing {path}"));
                    }
                    m.insert(last.clone(), v);
                }
                Value::Array(a) => {
                    let i = if last == "-" {
                        a.len()
                    } else {
                        last.parse().map_err(|_| "index")?
                    };
                    match (insert, i <= a.len(), i < a.len()) {
                        (true, true, _) => a.insert(i, v),
                        (false, _, true) => a[i] = v,
                        _ => return Err(format!("index out of range at {path}")),
                    }
                }
                _ => return Err(format!("no container at {path}")),
            }
            Ok(())
        }
        fn take(doc: &mut Value, path: &str) -> Result<Value, String> {
            let tokens = pointer::parse(path).ok_or("bad pointer")?;
            let (last, init) = tokens.split_last().ok_or("cannot remove the root")?;
            match parent(doc, init)? {
                Value::Object(m) => m
                    .shift_remove(last)
                    .ok_or(format!("remove of missing {path}")),
                Value::Array(a) => {
                    let i: usize = last.parse().map_err(|_| "index")?;
                    (i < a.len())
                        .then(|| a.remove(i))
                        .ok_or(format!("remove of missing {path}"))
                }
                _ => Err(format!("no container at {path}")),
            }
        }
        for op in patch.as_array().ok_or("not a patch")? {
            let path = op["path"].as_str().ok_or("no path")?;
            let value = op.get("value").cloned().unwrap_or(Value::Null);
            match op["op"].as_str().ok_or("no op")? {
                "add" => put(doc, path, value, true)?,
                "replace" => put(doc, path, value, false)?,
                "remove" => {
                    take(doc, path)?;
                }
                "move" | "copy" => {
                    let from = op["from"].as_str().ok_or("no from")?;
                    let v = if op["op"] == "move" {
                        take(doc, from)?
                    } else {
                        doc.pointer(from).cloned().ok_or("copy of missing")?
                    };
                    put(doc, path, v, true)?;
                }
                "test" => {
                    if doc.pointer(path) != Some(&value) {
                        return Err(format!("test failed at {path}"));
                    }
                }
                other => return Err(format!("unknown op {other}")),
            }
        }
        Ok(())
    }

    /// The defining property: applying the translated patch to the translated document gives
    /// the translation of the patched document, in both directions, with a strict applier.
    #[test]
    fn translated_patches_commute_with_translation() {
        let params = Params::new();
        let up = plan(
            "lens:
  - rename: {source: title, destination: name}
  - add: {name: important, type: boolean}
  - in: {name: meta, lens: [{rename: {source: t, destination: created}}]}
  - hoist: {host: meta, name: created}
  - plunge: {host: meta, name: owner}
  - in: {name: tasks, lens: [{map: {lens: [{rename: {source: x, destination: text}}, {add: {name: done, type: boolean, default: false}}]}}]}
  - convert: {name: state, forward: {'true': closed, 'false': open}, forwardDefault: open, backward: {closed: true, open: false}}
  - copy: {source: name, destination: label}
  - wrap: {name: tag}
  - remove: {name: legacy, type: string}
",
        );
        let doc = json!({"title": "a", "meta": {"t": 1, "other": 2}, "owner": "me",
                         "tasks": [{"x": "p"}, {"x": "q"}], "state": true, "tag": "t", "legacy": "l"});
        let patches = [
            json!([{"op": "replace", "path": "/title", "value": "b"}]),
            json!([{"op": "replace", "path": "/meta/t", "value": 5}]),
            json!([{"op": "replace", "path": "/meta/other", "value": {"deep": [1, {"k": null}]}}]),
            json!([{"op": "replace", "path": "/owner", "value": "you"}]),
            json!([{"op": "add", "path": "/tasks/1", "value": {"x": "new"}}]),
            json!([{"op": "add", "path": "/tasks/-", "value": {"x": "last", "extra": {"a": 1}}}]),
            json!([{"op": "replace", "path": "/tasks/0", "value": {"x": "r"}}]),
            json!([{"op": "remove", "path": "/tasks/0"}]),
            json!([{"op": "replace", "path": "/tasks/1/x", "value": "s"}]),
            json!([{"op": "replace", "path": "/tasks", "value": [{"x": "only"}]}]),
            json!([{"op": "replace", "path": "/state", "value": false}]),
            json!([{"op": "replace", "path": "/state", "value": "unheard of"}]),
            json!([{"op": "replace", "path": "/tag", "value": {"a": "b"}}]),
            json!([{"op": "replace", "path": "/legacy", "value": "gone"}]),
            json!([{"op": "add", "path": "/fresh", "value": {"x": [1, 2]}}]),
            json!([{"op": "move", "from": "/tasks/1", "path": "/tasks/0"}]),
            json!([{"op": "copy", "from": "/meta/other", "path": "/spare"}]),
            json!([{"op": "test", "path": "/meta/other", "value": 2}, {"op": "remove", "path": "/meta/other"}]),
            json!([{"op": "replace", "path": "", "value": {"title": "z", "meta": {"t": 9}, "tasks": []}}]),
        ];
        for patch in &patches {
            let mut patched = doc.clone();
            apply_patch(&mut patched, patch).unwrap();
            let expected = up.translate(&patched, &params).unwrap();
            let mut got = up.translate(&doc, &params).unwrap();
            let translated = up.translate_patch(patch, None).unwrap();
            apply_patch(&mut got, &translated)
                .unwrap_or_else(|e| panic!("{patch} -> {translated}: {e}"));
            assert_eq!(got, expected, "{patch} -> {translated}");
        }
        // And back: an edit in the new version, carried to the old one.
        let down = up.reverse();
        let new_doc = up.translate(&doc, &params).unwrap();
        let patches = [
            json!([{"op": "replace", "path": "/name", "value": "c"}]),
            json!([{"op": "replace", "path": "/created", "value": 7}]),
            json!([{"op": "replace", "path": "/meta/owner", "value": "them"}]),
            json!([{"op": "replace", "path": "/tasks/0/text", "value": "t"}]),
            json!([{"op": "replace", "path": "/state", "value": "closed"}]),
            json!([{"op": "replace", "path": "/tag/0", "value": "u"}]),
            json!([{"op": "replace", "path": "/important", "value": true}]),
        ];
        let old_doc = down.translate(&new_doc, &params).unwrap();
        for patch in &patches {
            let mut patched = new_doc.clone();
            apply_patch(&mut patched, patch).unwrap();
            let expected = down.translate(&patched, &params).unwrap();
            let mut got = old_doc.clone();
            let translated = down.translate_patch(patch, None).unwrap();
            apply_patch(&mut got, &translated)
                .unwrap_or_else(|e| panic!("{patch} -> {translated}: {e}"));
            assert_eq!(got, expected, "{patch} -> {translated}");
        }
    }

    #[test]
    fn expansion_escapes_keys_and_keeps_other_ops() {
        let patch = json!([
            {"op": "add", "path": "/o", "value": {"a/b": {"~": [true]}}},
            {"op": "remove", "path": "/x"},
        ]);
        assert_eq!(
            expand_patch(&patch).unwrap(),
            json!([
                {"op": "add", "path": "/o", "value": {}},
                {"op": "add", "path": "/o/a~1b", "value": {}},
                {"op": "add", "path": "/o/a~1b/~0", "value": []},
                {"op": "add", "path": "/o/a~1b/~0/0", "value": true},
                {"op": "remove", "path": "/x"},
            ])
        );
    }
}
