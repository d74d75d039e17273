//! Navigation inside a JSON Schema shared by the analyses that read schemas structurally
//! (per-lens loss, the deployment diff's field changes).

use mutatis_lens::pointer;
use serde_json::Value;

/// How many `$ref`s and nullable wrappers are followed before giving up: enough for any real
/// schema, and a bound on a reference cycle.
pub(crate) const MAX_REF_CHAIN: usize = 32;

/// Follow local `$ref`s and step into the one non-null branch of a nullable `anyOf`/`oneOf`,
/// so that the schema underneath can be read; `at` tracks its pointer.
///
/// With `refs`, a reference already in it is not followed again (`None`: a recursive schema,
/// whose fields were collected the first time round), and each followed one is added.
pub(crate) fn unwrap<'v>(
    root: &'v Value,
    mut s: &'v Value,
    mut at: String,
    mut refs: Option<&mut Vec<String>>,
) -> Option<(&'v Value, String)> {
    for _ in 0..MAX_REF_CHAIN {
        let obj = s.as_object()?;
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            let target = r.strip_prefix('#')?;
            if let Some(refs) = refs.as_deref_mut() {
                if refs.iter().any(|x| x == target) {
                    return None;
                }
                refs.push(target.to_owned());
            }
            s = root.pointer(target)?;
            at = target.to_owned();
            continue;
        }
        let branch = ["anyOf", "oneOf"].iter().find_map(|k| {
            let list = obj.get(*k)?.as_array()?;
            let non_null: Vec<(usize, &Value)> = list
                .iter()
                .enumerate()
                .filter(|(_, b)| !is_null_schema(b))
                .collect();
            match non_null[..] {
                [(i, b)] if list.len() == 2 && obj.get("properties").is_none() => {
                    Some((b, pointer::push_index(&pointer::push(&at, k), i)))
                }
                _ => None,
            }
        });
        match branch {
            Some((b, bat)) => {
                s = b;
                at = bat;
            }
            None => return Some((s, at)),
        }
    }
    None
}

/// Whether a schema admits only `null`.
pub(crate) fn is_null_schema(s: &Value) -> bool {
    s.get("type").and_then(Value::as_str) == Some("null") || s.get("const") == Some(&Value::Null)
}
