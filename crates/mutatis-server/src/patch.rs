//! Applying a JSON Patch (RFC 6902) to a document, pure. Every failure names the operation's
//! index and the pointer concerned, and says whether the patch itself is malformed (400) or
//! does not apply to this document (409, a failed `test` included).

use serde_json::Value;

/// Why a patch was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch is not a well-formed RFC 6902 document.
    #[error("operation {index}: {reason}")]
    Malformed {
        /// Index of the operation (0 when the patch is not an array at all).
        index: usize,
        /// Pointer concerned, if any.
        pointer: String,
        /// What is wrong.
        reason: String,
    },
    /// The patch is well formed but does not apply to this document.
    #[error("operation {index} ({op} {pointer}): {reason}")]
    Conflict {
        /// Index of the operation.
        index: usize,
        /// The operation's name.
        op: String,
        /// Pointer concerned.
        pointer: String,
        /// What is wrong.
        reason: String,
    },
}

impl PatchError {
    /// The operation index.
    pub fn index(&self) -> usize {
        match self {
            PatchError::Malformed { index, .. } | PatchError::Conflict { index, .. } => *index,
        }
    }

    /// The pointer concerned.
    pub fn pointer(&self) -> &str {
        match self {
            PatchError::Malformed { pointer, .. } | PatchError::Conflict { pointer, .. } => pointer,
        }
    }
}

fn malformed(index: usize, pointer: &str, reason: impl Into<String>) -> PatchError {
    PatchError::Malformed {
        index,
        pointer: pointer.to_owned(),
        reason: reason.into(),
    }
}

/// Split a JSON pointer into unescaped tokens; `None` if it is not one.
fn tokens(pointer: &str) -> Option<Vec<String>> {
    if pointer.is_empty() {
        return Some(Vec::new());
    }
    let rest = pointer.strip_prefix('/')?;
    rest.split('/')
        .map(|t| {
            // `~` must be followed by 0 or 1.
            let mut out = String::with_capacity(t.len());
            let mut chars = t.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return None,
                    }
                } else {
                    out.push(c);
                }
            }
            Some(out)
        })
        .collect()
}

fn array_index(token: &str, len: usize, allow_end: bool) -> Result<usize, String> {
    if token == "-" && allow_end {
        return Ok(len);
    }
    if token.is_empty() || (token.len() > 1 && token.starts_with('0')) {
        return Err(format!("`{token}` is not an array index"));
    }
    let i: usize = token
        .parse()
        .map_err(|_| format!("`{token}` is not an array index"))?;
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if i > max || (!allow_end && len == 0) {
        return Err(format!(
            "index {i} is out of bounds (the array has {len} items)"
        ));
    }
    Ok(i)
}

fn get<'v>(doc: &'v Value, toks: &[String]) -> Result<&'v Value, String> {
    let mut cur = doc;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m.get(t).ok_or_else(|| format!("no member `{t}`"))?,
            Value::Array(a) => &a[array_index(t, a.len(), false)?],
            _ => return Err(format!("cannot descend into a scalar at `{t}`")),
        };
    }
    Ok(cur)
}

fn parent_mut<'v>(doc: &'v mut Value, toks: &[String]) -> Result<&'v mut Value, String> {
    let mut cur = doc;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m.get_mut(t).ok_or_else(|| format!("no member `{t}`"))?,
            Value::Array(a) => {
                let i = array_index(t, a.len(), false)?;
                &mut a[i]
            }
            _ => return Err(format!("cannot descend into a scalar at `{t}`")),
        };
    }
    Ok(cur)
}

fn add(doc: &mut Value, toks: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent)) = toks.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parent)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let i = array_index(last, a.len(), true)?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err("the parent is not an object or array".into()),
    }
}

fn remove(doc: &mut Value, toks: &[String]) -> Result<Value, String> {
    let Some((last, parent)) = toks.split_last() else {
        return Err("cannot remove the whole document".into());
    };
    match parent_mut(doc, parent)? {
        Value::Object(m) => m
            .shift_remove(last)
            .ok_or_else(|| format!("no member `{last}`")),
        Value::Array(a) => {
            let i = array_index(last, a.len(), false)?;
            Ok(a.remove(i))
        }
        _ => Err("the parent is not an object or array".into()),
    }
}

/// Apply `patch` to `doc`. The document is changed only if every operation applies (atomic,
/// as RFC 6902 §5 requires).
pub fn apply_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Array(ops) = patch else {
        return Err(malformed(0, "", "a JSON Patch is an array of operations"));
    };
    let mut out = doc.clone();
    for (index, op) in ops.iter().enumerate() {
        let Value::Object(m) = op else {
            return Err(malformed(index, "", "an operation is an object"));
        };
        let name = m
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(index, "", "missing string member `op`"))?;
        let path = m
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(index, "", "missing string member `path`"))?;
        let toks = tokens(path)
            .ok_or_else(|| malformed(index, path, format!("`{path}` is not a JSON pointer")))?;
        let value = || {
            m.get("value")
                .cloned()
                .ok_or_else(|| malformed(index, path, format!("`{name}` needs a `value`")))
        };
        let from = || -> Result<(String, Vec<String>), PatchError> {
            let f = m
                .get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed(index, path, format!("`{name}` needs a string `from`")))?;
            let t = tokens(f)
                .ok_or_else(|| malformed(index, f, format!("`{f}` is not a JSON pointer")))?;
            Ok((f.to_owned(), t))
        };
        let conflict = |pointer: &str, reason: String| PatchError::Conflict {
            index,
            op: name.to_owned(),
            pointer: pointer.to_owned(),
            reason,
        };
        match name {
            "add" => add(&mut out, &toks, value()?).map_err(|r| conflict(path, r))?,
            "remove" => {
                remove(&mut out, &toks).map_err(|r| conflict(path, r))?;
            }
            "replace" => {
                let v = value()?;
                let target = parent_mut(&mut out, &toks).map_err(|r| conflict(path, r))?;
                *target = v;
            }
            "move" => {
                let (f, ft) = from()?;
                if toks.len() > ft.len() && toks[..ft.len()] == ft[..] {
                    return Err(conflict(path, format!("cannot move `{f}` into itself")));
                }
                let v = remove(&mut out, &ft).map_err(|r| conflict(&f, r))?;
                add(&mut out, &toks, v).map_err(|r| conflict(path, r))?;
            }
            "copy" => {
                let (f, ft) = from()?;
                let v = get(&out, &ft).map_err(|r| conflict(&f, r))?.clone();
                add(&mut out, &toks, v).map_err(|r| conflict(path, r))?;
            }
            "test" => {
                let expected = value()?;
                let actual = get(&out, &toks).map_err(|r| conflict(path, r))?;
                if *actual != expected {
                    return Err(conflict(
                        path,
                        format!("test failed: the value is {actual}, not {expected}"),
                    ));
                }
            }
            other => {
                return Err(malformed(
                    index,
                    path,
                    format!(
                        "unknown op `{other}`; expected add, remove, replace, move, copy or test"
                    ),
                ))
            }
        }
    }
    Ok(out)
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
    fn failures_name_the_op_and_pointer() {
        let doc = json!({"a": 1});
        let e = apply_patch(&doc, &json!([{"op": "test", "path": "/a", "value": 1}, {"op": "test", "path": "/a", "value": 2}])).unwrap_err();
        assert!(matches!(e, PatchError::Conflict { index: 1, .. }));
        assert_eq!(e.pointer(), "/a");
        let e =
            apply_patch(&doc, &json!([{"op": "replace", "path": "/zz", "value": 1}])).unwrap_err();
        assert!(matches!(e, PatchError::Conflict { index: 0, .. }));
        let e = apply_patch(&doc, &json!([{"op": "jump", "path": "/a"}])).unwrap_err();
        assert!(matches!(e, PatchError::Malformed { index: 0, .. }));
        let e = apply_patch(&doc, &json!({"op": "add"})).unwrap_err();
        assert!(matches!(e, PatchError::Malformed { .. }));
        let e = apply_patch(&doc, &json!([{"op": "add", "path": "a", "value": 1}])).unwrap_err();
        assert!(matches!(e, PatchError::Malformed { .. }));
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
    }
}
