//! Small JSON helpers: pointer escaping, JSON Schema equality of values (numbers compare by
//! value, so `1` equals `1.0`), divisibility, and the little URI arithmetic that `$id` and
//! `$ref` need within one document.

use std::hash::{BuildHasherDefault, Hasher};

use serde_json::Value;

/// A fast, non-cryptographic hasher (the Fx hash of rustc) for the checker's caches, whose keys
/// are small and come from the schemas being compared, not from an adversary who could exploit
/// collisions: the default SipHash showed up as a tenth of the checking time.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            self.add(u64::from_le_bytes(word));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A `HashMap` with [`FxHasher`].
pub(crate) type FxMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// `parent` + `/` + the escaped `segment` (RFC 6901: `~` is `~0`, `/` is `~1`).
pub(crate) fn push(parent: &str, segment: &str) -> String {
    let mut out = String::with_capacity(parent.len() + segment.len() + 1);
    out.push_str(parent);
    out.push('/');
    for c in segment.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// `parent` + `/` + an array index.
pub(crate) fn push_index(parent: &str, index: usize) -> String {
    format!("{parent}/{index}")
}

/// Equality as JSON Schema's `enum`, `const` and `uniqueItems` define it: numbers are equal when
/// their values are, whatever their spelling; everything else is structural.
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Whether the array has two equal items (in the sense of [`json_equal`]).
pub(crate) fn has_duplicates(items: &[Value]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(i, a)| items[i + 1..].iter().any(|b| json_equal(a, b)))
}

/// Largest integer below which every integer is exactly representable as an `f64`.
const EXACT: f64 = 9_007_199_254_740_992.0;

/// Whether `x` is (exactly) an integer multiple of `m`, or `None` when floating point cannot
/// tell. `Some(true)` is only returned when it really holds, so callers may rely on it to prove
/// that a set is empty.
pub(crate) fn is_multiple(x: f64, m: f64) -> Option<bool> {
    if !(x.is_finite() && m.is_finite()) || m <= 0.0 {
        return None;
    }
    if x.fract() == 0.0 && m.fract() == 0.0 && x.abs() < EXACT && m < EXACT {
        return Some(x % m == 0.0);
    }
    let q = x / m;
    if !q.is_finite() {
        return None;
    }
    if q.fract() == 0.0 && q * m == x {
        Some(true)
    } else {
        None
    }
}

/// Whether a validator would find `x` to be a multiple of `m`: the `jsonschema` crate divides
/// and checks for a zero fractional part. Used only to evaluate concrete `enum` values.
pub(crate) fn validator_multiple(x: f64, m: f64) -> bool {
    if m <= 0.0 {
        return false;
    }
    if x.fract() == 0.0 && m.fract() == 0.0 && x.abs() < EXACT && m < EXACT {
        return x % m == 0.0;
    }
    let q = x / m;
    q.is_finite() && q.fract() == 0.0
}

/// Least common multiple of positive integers held in `f64`s, or `None` when one is not an
/// exactly representable integer or the result would overflow exact range.
pub(crate) fn lcm(values: &[f64]) -> Option<f64> {
    fn gcd(mut a: u64, mut b: u64) -> u64 {
        while b != 0 {
            let t = a % b;
            a = b;
            b = t;
        }
        a
    }
    let mut acc: u64 = 1;
    for &v in values {
        if v.fract() != 0.0 || v <= 0.0 || v >= EXACT {
            return None;
        }
        // Exact: v is a positive integer below 2^53.
        let v = v as u64;
        let g = gcd(acc, v);
        acc = (acc / g).checked_mul(v)?;
        if acc as f64 >= EXACT {
            return None;
        }
    }
    Some(acc as f64)
}

/// The scheme of a URI (`http`, `urn`), if it has one.
fn scheme(uri: &str) -> Option<&str> {
    let colon = uri.find(':')?;
    let s = &uri[..colon];
    let mut chars = s.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(s)
}

/// Resolve `reference` against `base` (RFC 3986, section 5.2, without query subtleties): enough
/// for `$id` and `$ref` values within one document, which is all this checker resolves.
pub(crate) fn resolve_uri(base: &str, reference: &str) -> String {
    if scheme(reference).is_some() || base.is_empty() {
        return remove_dot_segments(reference);
    }
    let Some(base_scheme) = scheme(base) else {
        return remove_dot_segments(reference);
    };
    if reference.is_empty() {
        return base.to_owned();
    }
    if let Some(rest) = reference.strip_prefix("//") {
        return format!("{base_scheme}://{}", remove_dot_segments(rest));
    }
    let after_scheme = &base[base_scheme.len() + 1..];
    // The authority is what follows `//` up to the next `/`.
    let (authority, path) = match after_scheme.strip_prefix("//") {
        Some(rest) => match rest.find('/') {
            Some(i) => (&after_scheme[..i + 2], &rest[i..]),
            None => (after_scheme, ""),
        },
        None => ("", after_scheme),
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let merged = if reference.starts_with('/') {
        reference.to_owned()
    } else if reference.starts_with('?') {
        format!("{path}{reference}")
    } else {
        match path.rfind('/') {
            Some(i) => format!("{}{reference}", &path[..=i]),
            None if !authority.is_empty() => format!("/{reference}"),
            None => reference.to_owned(),
        }
    };
    format!("{base_scheme}:{authority}{}", remove_dot_segments(&merged))
}

/// Drop `.` and `..` path segments (RFC 3986, section 5.2.4), approximately: enough for ids.
fn remove_dot_segments(path: &str) -> String {
    if !path.contains("/.") && !path.starts_with('.') {
        return path.to_owned();
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 || out.first().is_some_and(|s| !s.is_empty()) {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

/// Percent-decode a URI fragment (`%25` is `%`, `%7B` is `{`); invalid escapes are kept as
/// written.
pub(crate) fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value() {
        assert!(json_equal(&json!(1), &json!(1.0)));
        assert!(json_equal(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
        assert!(!json_equal(&json!([1]), &json!([1, 1])));
        assert!(has_duplicates(&[json!(1), json!("a"), json!(1.0)]));
    }

    #[test]
    fn multiples_are_exact_or_unknown() {
        assert_eq!(is_multiple(12.0, 6.0), Some(true));
        assert_eq!(is_multiple(13.0, 6.0), Some(false));
        assert_eq!(is_multiple(1.5, 0.5), Some(true));
        assert_eq!(is_multiple(0.3, 0.1), None);
        assert_eq!(lcm(&[4.0, 6.0]), Some(12.0));
        assert_eq!(lcm(&[0.5]), None);
    }

    #[test]
    fn uris_resolve() {
        assert_eq!(
            resolve_uri("http://x.org/a/b.json", "c.json"),
            "http://x.org/a/c.json"
        );
        assert_eq!(
            resolve_uri("http://x.org/a/b.json", "/c.json"),
            "http://x.org/c.json"
        );
        assert_eq!(
            resolve_uri("http://x.org/a/b.json", "../c.json"),
            "http://x.org/c.json"
        );
        assert_eq!(resolve_uri("", "urn:x"), "urn:x");
        assert_eq!(resolve_uri("http://x.org/a", "urn:y"), "urn:y");
        assert_eq!(percent_decode("a%25b%7Bc"), "a%b{c");
        assert_eq!(push("/properties", "a/b~c"), "/properties/a~1b~0c");
    }
}
