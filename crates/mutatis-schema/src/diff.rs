//! Where two JSON Schemas differ, as JSON pointers.
//!
//! Used to check a schema that a version writes out against the one its lens derives. The
//! comparison is structural with two allowances that JSON Schema itself makes, so that a person
//! writing the schema by hand is not held to the lens engine's ordering:
//! - `required`, `enum` and a list-valued `type` are sets: their order does not matter;
//! - numbers compare by value (`1` equals `1.0`).

use mutatis_lens::pointer;
use serde_json::Value;

/// Keywords whose list values are sets.
const SET_KEYWORDS: [&str; 3] = ["required", "enum", "type"];

/// The pointers (into either schema) at which `a` and `b` differ, outermost first, in document
/// order. Empty when they are equal.
pub fn differences(a: &Value, b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(a, b, "", None, &mut out);
    out
}

fn walk(a: &Value, b: &Value, at: &str, key: Option<&str>, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            for (k, va) in ma {
                let child = pointer::push(at, k);
                match mb.get(k) {
                    Some(vb) => walk(va, vb, &child, Some(k), out),
                    None => out.push(child),
                }
            }
            for k in mb.keys() {
                if !ma.contains_key(k) {
                    out.push(pointer::push(at, k));
                }
            }
        }
        (Value::Array(xa), Value::Array(xb)) => {
            if key.is_some_and(|k| SET_KEYWORDS.contains(&k)) {
                let same = xa.len() == xb.len()
                    && xa.iter().all(|x| xb.iter().any(|y| equal(x, y)))
                    && xb.iter().all(|y| xa.iter().any(|x| equal(x, y)));
                if !same {
                    out.push(at.to_owned());
                }
                return;
            }
            for (i, (va, vb)) in xa.iter().zip(xb).enumerate() {
                walk(va, vb, &pointer::push_index(at, i), None, out);
            }
            // Elements past the shorter list exist in one schema only.
            for i in xa.len().min(xb.len())..xa.len().max(xb.len()) {
                out.push(pointer::push_index(at, i));
            }
        }
        _ => {
            if !equal(a, b) {
                out.push(at.to_owned());
            }
        }
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(xa), Value::Array(xb)) => {
            xa.len() == xb.len() && xa.iter().zip(xb).all(|(x, y)| equal(x, y))
        }
        (Value::Object(ma), Value::Object(mb)) => {
            ma.len() == mb.len()
                && ma
                    .iter()
                    .all(|(k, va)| mb.get(k).is_some_and(|vb| equal(va, vb)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_schemas_have_no_differences() {
        let a = json!({"type": "object", "properties": {"a": {"type": ["string", "null"]}},
                       "required": ["a", "b"], "minimum": 1});
        let b = json!({"minimum": 1.0, "required": ["b", "a"], "type": "object",
                       "properties": {"a": {"type": ["null", "string"]}}});
        assert!(differences(&a, &b).is_empty());
    }

    #[test]
    fn differences_name_exact_pointers() {
        let a = json!({"properties": {"a": {"type": "string"}, "b/c": {"type": "string"}},
                       "required": ["a"], "x": [1, 2]});
        let b = json!({"properties": {"a": {"type": "boolean"}, "d": {}},
                       "required": ["a", "d"], "x": [1]});
        assert_eq!(
            differences(&a, &b),
            [
                "/properties/a/type",
                "/properties/b~1c",
                "/properties/d",
                "/required",
                "/x/1"
            ]
        );
    }

    #[test]
    fn ordinary_lists_keep_their_order() {
        let a = json!({"prefixItems": [{"type": "string"}, {"type": "number"}]});
        let b = json!({"prefixItems": [{"type": "number"}, {"type": "string"}]});
        assert_eq!(
            differences(&a, &b),
            ["/prefixItems/0/type", "/prefixItems/1/type"]
        );
    }
}
