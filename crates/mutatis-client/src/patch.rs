//! A strict RFC 6902 JSON Patch applier, for the one case where the client edits a document
//! itself: a patch written in the client's version that the lenses cannot carry to an older
//! server's version without seeing the document. The client then reads the document, applies
//! the patch in its own version and writes the result back (read–modify–write).
//!
//! Atomic: the patch is applied to a copy, so a failing operation leaves the input untouched.

use mutatis_lens::pointer;
use serde_json::Value;

use crate::error::Error;

/// Apply `patch` (an array of operations) to `doc`, returning the patched document.
pub fn apply(doc: &Value, patch: &Value) -> Result<Value, Error> {
    let ops = patch.as_array().ok_or_else(|| Error::Patch {
        index: 0,
        pointer: String::new(),
        reason: "a JSON Patch is an array of operations".to_owned(),
    })?;
    let mut out = doc.clone();
    for (index, op) in ops.iter().enumerate() {
        apply_op(&mut out, op).map_err(|(pointer, reason)| Error::Patch {
            index,
            pointer,
            reason,
        })?;
    }
    Ok(out)
}

type OpError = (String, String);

fn apply_op(doc: &mut Value, op: &Value) -> Result<(), OpError> {
    let field = |name: &str| -> Result<&str, OpError> {
        op.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| (String::new(), format!("missing string member `{name}`")))
    };
    let kind = field("op")?;
    let path = field("path")?;
    let value = || {
        op.get("value")
            .cloned()
            .ok_or_else(|| (path.to_owned(), format!("`{kind}` needs a `value`")))
    };
    match kind {
        "add" => insert(doc, path, value()?, Mode::Add),
        "replace" => insert(doc, path, value()?, Mode::Replace),
        "remove" => take(doc, path).map(drop),
        "move" => {
            let from = field("from")?;
            if path != from && path.starts_with(&format!("{from}/")) {
                return Err((path.to_owned(), format!("cannot move {from} into itself")));
            }
            let v = take(doc, from)?;
            insert(doc, path, v, Mode::Add)
        }
        "copy" => {
            let from = field("from")?;
            let v = get(doc, from)?.clone();
            insert(doc, path, v, Mode::Add)
        }
        "test" => {
            let expected = value()?;
            if get(doc, path)? == &expected {
                Ok(())
            } else {
                Err((path.to_owned(), format!("test failed: expected {expected}")))
            }
        }
        other => Err((path.to_owned(), format!("unknown operation `{other}`"))),
    }
}

fn tokens(path: &str) -> Result<Vec<String>, OpError> {
    pointer::parse(path).ok_or_else(|| (path.to_owned(), "not a JSON pointer".to_owned()))
}

fn index(token: &str, len: usize, path: &str, allow_end: bool) -> Result<usize, OpError> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    // RFC 6901: no leading zeros, no signs.
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    let i: usize = valid
        .then(|| token.parse().ok())
        .flatten()
        .ok_or_else(|| (path.to_owned(), format!("`{token}` is not an array index")))?;
    let limit = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if i > limit || (!allow_end && len == 0) {
        return Err((path.to_owned(), format!("index {i} is out of bounds")));
    }
    Ok(i)
}

fn get<'v>(doc: &'v Value, path: &str) -> Result<&'v Value, OpError> {
    let mut cur = doc;
    for t in tokens(path)? {
        cur = match cur {
            Value::Object(m) => m
                .get(&t)
                .ok_or_else(|| (path.to_owned(), format!("no member `{t}`")))?,
            Value::Array(a) => &a[index(&t, a.len(), path, false)?],
            _ => return Err((path.to_owned(), format!("cannot descend into `{t}`"))),
        };
    }
    Ok(cur)
}

fn parent<'v>(doc: &'v mut Value, init: &[String], path: &str) -> Result<&'v mut Value, OpError> {
    let mut cur = doc;
    for t in init {
        cur = match cur {
            Value::Object(m) => m
                .get_mut(t)
                .ok_or_else(|| (path.to_owned(), format!("no member `{t}`")))?,
            Value::Array(a) => {
                let i = index(t, a.len(), path, false)?;
                &mut a[i]
            }
            _ => return Err((path.to_owned(), format!("cannot descend into `{t}`"))),
        };
    }
    Ok(cur)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Add,
    Replace,
}

fn insert(doc: &mut Value, path: &str, v: Value, mode: Mode) -> Result<(), OpError> {
    let toks = tokens(path)?;
    let Some((last, init)) = toks.split_last() else {
        *doc = v;
        return Ok(());
    };
    match parent(doc, init, path)? {
        Value::Object(m) => {
            if mode == Mode::Replace && !m.contains_key(last) {
                return Err((path.to_owned(), "replace of a missing member".to_owned()));
            }
            m.insert(last.clone(), v);
        }
        Value::Array(a) => match mode {
            Mode::Add => {
                let i = index(last, a.len(), path, true)?;
                a.insert(i, v);
            }
            Mode::Replace => {
                let i = index(last, a.len(), path, false)?;
                a[i] = v;
            }
        },
        _ => return Err((path.to_owned(), "the parent is not a container".to_owned())),
    }
    Ok(())
}

fn take(doc: &mut Value, path: &str) -> Result<Value, OpError> {
    let toks = tokens(path)?;
    let (last, init) = toks.split_last().ok_or_else(|| {
        (
            path.to_owned(),
            "cannot remove the whole document".to_owned(),
        )
    })?;
    match parent(doc, init, path)? {
        Value::Object(m) => m
            .shift_remove(last)
            .ok_or_else(|| (path.to_owned(), "remove of a missing member".to_owned())),
        Value::Array(a) => {
            let i = index(last, a.len(), path, false)?;
            Ok(a.remove(i))
        }
        _ => Err((path.to_owned(), "the parent is not a container".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn applies_every_operation() {
        let doc = json!({"a": 1, "list": [1, 2], "o": {"x": true}});
        let out = apply(
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
    fn failures_name_the_operation_and_leave_the_input_alone() {
        let doc = json!({"a": 1});
        let err = apply(
            &doc,
            &json!([{"op": "replace", "path": "/a", "value": 5},
                    {"op": "test", "path": "/a", "value": 1}]),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Patch { index: 1, ref pointer, .. } if pointer == "/a"));
        let err = apply(&doc, &json!([{"op": "replace", "path": "/b", "value": 1}])).unwrap_err();
        assert!(matches!(err, Error::Patch { index: 0, .. }));
        assert!(apply(&doc, &json!([{"op": "add", "path": "/a/01", "value": 1}])).is_err());
        assert!(apply(
            &json!({"l": [1]}),
            &json!([{"op": "add", "path": "/l/01", "value": 1}])
        )
        .is_err());
        assert!(apply(&doc, &json!({"op": "add"})).is_err());
        assert_eq!(doc, json!({"a": 1}));
    }
}
