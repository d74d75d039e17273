//! Applying a JSON Patch (RFC 6902) to a document: the one applier the server (for `PATCH`) and
//! the client (for the read–modify–write of a patch the lenses cannot carry) share.
//!
//! The patch is read by the same parser that translates patches ([`crate::Plan::translate_patch`]),
//! so a patch is well formed for one exactly when it is for the other. The whole patch is read
//! before anything is applied: a malformed patch is refused whatever the document holds.
//!
//! Strict where RFC 6901/6902 leave no room: an array index is digits without a leading zero
//! (no sign), `-` only names the end for `add`, a `~` in a pointer is `~0` or `~1`, `replace`
//! and `remove` need their target to exist, and nothing moves into its own child.
//!
//! All or nothing (RFC 6902 §5): the patch is applied to a copy, which is returned only if every
//! operation applies.

use serde_json::Value;

use crate::patch::{parse_patch, Kind, Op, ParseFault};
use crate::pointer;

/// Why a JSON Patch was not applied. Both variants name the operation (its index in the patch)
/// and the JSON pointer concerned, so a caller can point at the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch is not a well-formed RFC 6902 document (HTTP: 400).
    #[error("operation {index}: {reason}")]
    Malformed {
        /// Index of the operation (0 when the patch is not an array at all).
        index: usize,
        /// The operation's `op` member, when it is a string (it may be an unknown name).
        op: Option<String>,
        /// The pointer concerned (the operation's `path`, or its `from` when that is what is
        /// wrong); empty when the operation has none.
        pointer: String,
        /// What is wrong.
        reason: String,
    },
    /// The patch is well formed but does not apply to this document, a failed `test` included
    /// (HTTP: 409).
    #[error("operation {index} ({op} {pointer}): {reason}")]
    Conflict {
        /// Index of the operation.
        index: usize,
        /// The operation's name (`add`, `test`…).
        op: String,
        /// The pointer that does not apply (`from` for a `move`/`copy` source that is missing).
        pointer: String,
        /// What is wrong.
        reason: String,
    },
}

impl PatchError {
    /// The index of the failing operation in the patch.
    pub fn index(&self) -> usize {
        match self {
            PatchError::Malformed { index, .. } | PatchError::Conflict { index, .. } => *index,
        }
    }

    /// The failing operation's name, when it has one.
    pub fn op(&self) -> Option<&str> {
        match self {
            PatchError::Malformed { op, .. } => op.as_deref(),
            PatchError::Conflict { op, .. } => Some(op),
        }
    }

    /// The JSON pointer concerned (empty when there is none).
    pub fn pointer(&self) -> &str {
        match self {
            PatchError::Malformed { pointer, .. } | PatchError::Conflict { pointer, .. } => pointer,
        }
    }

    /// What is wrong, without the operation's index and pointer.
    pub fn reason(&self) -> &str {
        match self {
            PatchError::Malformed { reason, .. } | PatchError::Conflict { reason, .. } => reason,
        }
    }
}

/// Apply `patch` (an RFC 6902 array of operations) to `doc`, returning the patched document.
/// `doc` itself is never changed, so a failure leaves nothing half-applied.
///
/// ```
/// use mutatis_lens::{apply_patch, PatchError};
/// use serde_json::json;
///
/// let doc = json!({"title": "milk", "tags": ["a"]});
/// let patch = json!([{"op": "add", "path": "/tags/-", "value": "b"},
///                    {"op": "replace", "path": "/title", "value": "oat milk"}]);
/// assert_eq!(apply_patch(&doc, &patch).unwrap(),
///            json!({"title": "oat milk", "tags": ["a", "b"]}));
///
/// let failing = json!([{"op": "test", "path": "/title", "value": "tea"}]);
/// let e = apply_patch(&doc, &failing).unwrap_err();
/// assert!(matches!(e, PatchError::Conflict { index: 0, .. }));
/// assert_eq!((e.op(), e.pointer()), (Some("test"), "/title"));
/// ```
pub fn apply_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = parse_patch(patch).map_err(|fault| malformed(patch, fault))?;
    let mut out = doc.clone();
    for (index, op) in ops.iter().enumerate() {
        apply_op(&mut out, op).map_err(|(pointer, reason)| PatchError::Conflict {
            index,
            op: op.kind.name().to_owned(),
            pointer,
            reason,
        })?;
    }
    Ok(out)
}

/// The error of a patch the parser refused, with the operation's name and pointer read from
/// the raw operation (the parser stops before it has them).
fn malformed(patch: &Value, fault: ParseFault) -> PatchError {
    let raw = fault.index.and_then(|i| patch.get(i));
    let member = |name: &str| raw.and_then(|r| r.get(name)).and_then(Value::as_str);
    let pointer = match fault.member {
        Some("from") => member("from").or_else(|| member("path")),
        _ => member("path"),
    };
    let reason = match fault.member {
        Some(name) => format!("{name}: {}", fault.reason),
        None => fault.reason,
    };
    PatchError::Malformed {
        index: fault.index.unwrap_or(0),
        op: member("op").map(str::to_owned),
        pointer: pointer.unwrap_or_default().to_owned(),
        reason,
    }
}

/// Why one operation does not apply: the pointer concerned, and the reason.
type Failure = (String, String);

fn fail(at: &[String], reason: impl Into<String>) -> Failure {
    (pointer::join(at), reason.into())
}

fn apply_op(doc: &mut Value, op: &Op) -> Result<(), Failure> {
    let path = &op.path;
    match (op.kind, &op.from, &op.value) {
        (Kind::Add, _, Some(value)) => add(doc, path, value.clone()),
        (Kind::Remove, _, _) => remove(doc, path).map(drop),
        (Kind::Replace, _, Some(value)) => {
            // The target must exist (RFC 6902 §4.3), which resolving it checks.
            *resolve_mut(doc, path)? = value.clone();
            Ok(())
        }
        (Kind::Move, Some(from), _) => {
            if path.len() > from.len() && path.starts_with(from) {
                return Err(fail(
                    path,
                    format!("cannot move `{}` into itself", pointer::join(from)),
                ));
            }
            let moved = remove(doc, from)?;
            add(doc, path, moved)
        }
        (Kind::Copy, Some(from), _) => {
            let copied = resolve(doc, from)?.clone();
            add(doc, path, copied)
        }
        (Kind::Test, _, Some(expected)) => {
            let actual = resolve(doc, path)?;
            if actual == expected {
                Ok(())
            } else {
                Err(fail(
                    path,
                    format!("test failed: the value is {actual}, not {expected}"),
                ))
            }
        }
        // The parser gives every operation the members its kind needs.
        (kind, _, _) => Err(fail(
            path,
            format!("`{}` lacks a member it needs", kind.name()),
        )),
    }
}

/// The index a token names in an array of `len` items. `-` (one past the end) only where
/// `for_insert`; an insert may also name `len` itself.
fn array_index(token: &str, len: usize, for_insert: bool, at: &[String]) -> Result<usize, Failure> {
    if for_insert && token == "-" {
        return Ok(len);
    }
    // RFC 6901: digits only, no leading zero, no sign.
    let well_formed = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    let i: usize = well_formed
        .then(|| token.parse().ok())
        .flatten()
        .ok_or_else(|| fail(at, format!("`{token}` is not an array index")))?;
    let in_bounds = if for_insert { i <= len } else { i < len };
    if !in_bounds {
        return Err(fail(
            at,
            format!("index {i} is out of bounds (the array has {len} items)"),
        ));
    }
    Ok(i)
}

fn resolve<'v>(doc: &'v Value, at: &[String]) -> Result<&'v Value, Failure> {
    let mut cur = doc;
    for token in at {
        cur = match cur {
            Value::Object(m) => m
                .get(token)
                .ok_or_else(|| fail(at, format!("no member `{token}`")))?,
            Value::Array(a) => &a[array_index(token, a.len(), false, at)?],
            _ => {
                return Err(fail(
                    at,
                    format!("cannot descend into a scalar at `{token}`"),
                ))
            }
        };
    }
    Ok(cur)
}

fn resolve_mut<'v>(doc: &'v mut Value, at: &[String]) -> Result<&'v mut Value, Failure> {
    let mut cur = doc;
    for token in at {
        cur = match cur {
            Value::Object(m) => m
                .get_mut(token)
                .ok_or_else(|| fail(at, format!("no member `{token}`")))?,
            Value::Array(a) => {
                let i = array_index(token, a.len(), false, at)?;
                &mut a[i]
            }
            _ => {
                return Err(fail(
                    at,
                    format!("cannot descend into a scalar at `{token}`"),
                ))
            }
        };
    }
    Ok(cur)
}

fn add(doc: &mut Value, at: &[String], value: Value) -> Result<(), Failure> {
    let Some((last, parent)) = at.split_last() else {
        *doc = value;
        return Ok(());
    };
    match resolve_mut(doc, parent).map_err(|(_, reason)| fail(at, reason))? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let i = array_index(last, a.len(), true, at)?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err(fail(at, "the parent is not an object or array")),
    }
}

fn remove(doc: &mut Value, at: &[String]) -> Result<Value, Failure> {
    let Some((last, parent)) = at.split_last() else {
        return Err(fail(at, "cannot remove the whole document"));
    };
    match resolve_mut(doc, parent).map_err(|(_, reason)| fail(at, reason))? {
        Value::Object(m) => m
            .shift_remove(last)
            .ok_or_else(|| fail(at, format!("no member `{last}`"))),
        Value::Array(a) => {
            let i = array_index(last, a.len(), false, at)?;
            Ok(a.remove(i))
        }
        _ => Err(fail(at, "the parent is not an object or array")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_six_operations_apply() {
        let doc = json!({"a": 1, "b": [1, 2], "c": {"d": "x"}});
        let patch = json!([
            {"op": "add", "path": "/b/-", "value": 3},
            {"op": "add", "path": "/b/0", "value": 0},
            {"op": "remove", "path": "/a"},
            {"op": "replace", "path": "/c/d", "value": "y"},
            {"op": "copy", "from": "/c", "path": "/e"},
            {"op": "move", "from": "/e/d", "path": "/f"},
            {"op": "test", "path": "/b", "value": [0, 1, 2, 3]},
            {"op": "add", "path": "/a~1b", "value": true},
        ]);
        assert_eq!(
            apply_patch(&doc, &patch).unwrap(),
            json!({"b": [0, 1, 2, 3], "c": {"d": "y"}, "e": {}, "f": "y", "a/b": true})
        );
    }

    #[test]
    fn applies_every_operation_in_sequence() {
        let doc = json!({"a": 1, "list": [1, 2], "o": {"x": true}});
        let out = apply_patch(
            &doc,
            &json!([
                {"op": "test", "path": "/a", "value": 1},
                {"op": "replace", "path": "/a", "value": 2},
                {"op": "add", "path": "/list/-", "value": 3},
                {"op": "add", "path": "/list/0", "value": 0},
                {"op": "remove", "path": "/list/1"},
                {"op": "copy", "from": "/o", "path": "/p"},
                {"op": "move", "from": "/o/x", "path": "/y"}
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"a": 2, "list": [0, 2, 3], "o": {}, "p": {"x": true}, "y": true})
        );
    }

    #[test]
    fn the_root_can_be_replaced_but_not_removed() {
        let doc = json!({"a": 1});
        assert_eq!(
            apply_patch(&doc, &json!([{"op": "replace", "path": "", "value": [1]}])).unwrap(),
            json!([1])
        );
        let e = apply_patch(&doc, &json!([{"op": "remove", "path": ""}])).unwrap_err();
        assert!(matches!(e, PatchError::Conflict { index: 0, .. }));
    }

    #[test]
    fn failures_name_the_op_and_pointer() {
        let doc = json!({"a": 1});
        let e = apply_patch(
            &doc,
            &json!([{"op": "test", "path": "/a", "value": 1}, {"op": "test", "path": "/a", "value": 2}]),
        )
        .unwrap_err();
        assert!(matches!(e, PatchError::Conflict { index: 1, .. }));
        assert_eq!((e.op(), e.pointer()), (Some("test"), "/a"));
        let e =
            apply_patch(&doc, &json!([{"op": "replace", "path": "/zz", "value": 1}])).unwrap_err();
        assert!(matches!(e, PatchError::Conflict { index: 0, .. }));
        assert_eq!(e.pointer(), "/zz");
        let e = apply_patch(&doc, &json!([{"op": "jump", "path": "/a"}])).unwrap_err();
        assert!(matches!(e, PatchError::Malformed { index: 0, .. }));
        assert_eq!((e.op(), e.pointer()), (Some("jump"), "/a"));
        let e = apply_patch(&doc, &json!({"op": "add"})).unwrap_err();
        assert!(matches!(e, PatchError::Malformed { index: 0, .. }));
        let e = apply_patch(&doc, &json!([{"op": "add", "path": "a", "value": 1}])).unwrap_err();
        assert!(matches!(e, PatchError::Malformed { .. }));
        assert_eq!(e.pointer(), "a");
        let e = apply_patch(
            &json!({"b": [1]}),
            &json!([{"op": "add", "path": "/b/01", "value": 1}]),
        )
        .unwrap_err();
        assert!(matches!(e, PatchError::Conflict { .. }));
        let e = apply_patch(
            &json!({"b": {"c": 1}}),
            &json!([{"op": "move", "from": "/b", "path": "/b/c/d"}]),
        )
        .unwrap_err();
        assert!(matches!(e, PatchError::Conflict { .. }));
        // A missing `from` source names `from`.
        let e = apply_patch(
            &doc,
            &json!([{"op": "copy", "from": "/nope", "path": "/b"}]),
        )
        .unwrap_err();
        assert!(matches!(e, PatchError::Conflict { index: 0, .. }));
        assert_eq!(e.pointer(), "/nope");
    }

    #[test]
    fn failures_leave_the_input_alone() {
        let doc = json!({"a": 1});
        let e = apply_patch(
            &doc,
            &json!([{"op": "replace", "path": "/a", "value": 5},
                    {"op": "test", "path": "/a", "value": 1}]),
        )
        .unwrap_err();
        assert!(matches!(e, PatchError::Conflict { index: 1, ref pointer, .. } if pointer == "/a"));
        let e =
            apply_patch(&doc, &json!([{"op": "replace", "path": "/b", "value": 1}])).unwrap_err();
        assert!(matches!(e, PatchError::Conflict { index: 0, .. }));
        assert!(apply_patch(&doc, &json!([{"op": "add", "path": "/a/01", "value": 1}])).is_err());
        assert!(apply_patch(
            &json!({"l": [1]}),
            &json!([{"op": "add", "path": "/l/01", "value": 1}])
        )
        .is_err());
        assert!(apply_patch(&doc, &json!({"op": "add"})).is_err());
        assert_eq!(doc, json!({"a": 1}));
    }

    #[test]
    fn the_whole_patch_is_read_before_anything_applies() {
        // Operation 0 would conflict, but operation 1 is malformed: the patch is refused as
        // malformed, whatever the document holds.
        let e = apply_patch(
            &json!({}),
            &json!([{"op": "remove", "path": "/a"}, {"op": "add", "path": "/b"}]),
        )
        .unwrap_err();
        assert!(matches!(e, PatchError::Malformed { index: 1, .. }));
        assert_eq!((e.op(), e.pointer()), (Some("add"), "/b"));
        let e = apply_patch(&json!({}), &json!([{"op": "move", "path": "/b"}])).unwrap_err();
        assert!(matches!(e, PatchError::Malformed { index: 0, .. }));
        assert!(e.reason().starts_with("from:"), "{e}");
    }

    #[test]
    fn indices_and_escapes_are_strict() {
        let doc = json!({"l": [1, 2]});
        for bad in ["/l/+1", "/l/-1", "/l/ 1", "/l/1.0", "/l/2", "/l/-"] {
            let e = apply_patch(&doc, &json!([{"op": "replace", "path": bad, "value": 0}]))
                .unwrap_err();
            assert!(matches!(e, PatchError::Conflict { .. }), "{bad}: {e}");
        }
        // `-` and `len` name the end only for an insert.
        assert_eq!(
            apply_patch(&doc, &json!([{"op": "add", "path": "/l/2", "value": 3}])).unwrap(),
            json!({"l": [1, 2, 3]})
        );
        for bad in ["/a~2", "/a~", "/~x"] {
            let e =
                apply_patch(&doc, &json!([{"op": "add", "path": bad, "value": 0}])).unwrap_err();
            assert!(matches!(e, PatchError::Malformed { .. }), "{bad}: {e}");
        }
        assert_eq!(
            apply_patch(
                &json!({"a~b": 1}),
                &json!([{"op": "move", "from": "/a~0b", "path": "/c"}])
            )
            .unwrap(),
            json!({"c": 1})
        );
    }

    #[test]
    fn scalars_cannot_be_descended_into() {
        let e = apply_patch(
            &json!({"a": 1}),
            &json!([{"op": "add", "path": "/a/b", "value": 0}]),
        )
        .unwrap_err();
        assert!(matches!(e, PatchError::Conflict { .. }));
        assert_eq!(e.pointer(), "/a/b");
    }
}
