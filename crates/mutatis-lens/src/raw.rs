//! Translation of raw JSON bytes that touches only what the plan names.
//!
//! The input's top-level object is scanned once into borrowed `(key, raw value)` pairs; this
//! validates the whole input, as any parser would. Only the fields a plan reads or writes are
//! parsed into values and run through its steps; every other field is copied to the output as
//! the bytes it came in. A plan that changes nothing validates and copies.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::Deserializer;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::LensError;
use crate::plan::{Params, Plan};

impl Plan {
    /// Translate one JSON document from `input`, appending the result to `out`.
    ///
    /// Fields the plan does not name pass through as their original bytes; a plan that
    /// changes nothing checks that `input` is valid JSON and copies it.
    pub fn translate_bytes(
        &self,
        input: &[u8],
        params: &Params,
        out: &mut Vec<u8>,
    ) -> Result<(), LensError> {
        if self.is_identity() {
            serde_json::from_slice::<de::IgnoredAny>(input).map_err(json_error)?;
            out.extend_from_slice(input);
            return Ok(());
        }
        let touched = match self.fused_touched() {
            Some(t) => t,
            None => return self.translate_parsed(input, params, out),
        };
        let Ok(top) = serde_json::from_slice::<TopLevel<'_>>(input) else {
            // Not an object, or not JSON: the full parse gives the precise error.
            return self.translate_parsed(input, params, out);
        };
        let is_touched = |k: &str| touched.iter().any(|t| t == k);
        let mut partial = Map::new();
        for (k, raw) in &top.0 {
            if is_touched(k) {
                let v: Value = serde_json::from_str(raw.get()).map_err(json_error)?;
                partial.insert(k.to_string(), v);
            }
        }
        let mut changed = Value::Object(partial);
        self.translate_in_place(&mut changed, params)?;
        let Value::Object(mut changed) = changed else {
            unreachable!("steps on an object leave an object")
        };
        out.push(b'{');
        let mut first = true;
        let mut comma = |out: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
        };
        for (k, raw) in &top.0 {
            if !is_touched(k) {
                comma(out);
                write_key(out, k);
                out.extend_from_slice(raw.get().as_bytes());
            } else if let Some(v) = changed.shift_remove(k.as_ref()) {
                comma(out);
                write_key(out, k);
                serde_json::to_writer(&mut *out, &v).map_err(json_error)?;
            }
        }
        for (k, v) in &changed {
            comma(out);
            write_key(out, k);
            serde_json::to_writer(&mut *out, v).map_err(json_error)?;
        }
        out.push(b'}');
        Ok(())
    }

    fn translate_parsed(
        &self,
        input: &[u8],
        params: &Params,
        out: &mut Vec<u8>,
    ) -> Result<(), LensError> {
        let mut v: Value = serde_json::from_slice(input).map_err(json_error)?;
        self.translate_in_place(&mut v, params)?;
        serde_json::to_writer(out, &v).map_err(json_error)
    }
}

fn write_key(out: &mut Vec<u8>, k: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, k);
    out.push(b':');
}

fn json_error(e: serde_json::Error) -> LensError {
    LensError::InvalidInput {
        at: String::new(),
        reason: format!("invalid JSON: {e}"),
    }
}

/// The top-level object of a document as borrowed fields.
struct TopLevel<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = TopLevel<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(k) = map.next_key_seed(KeySeed)? {
            let v: &'de RawValue = map.next_value()?;
            fields.push((k, v));
        }
        Ok(TopLevel(fields))
    }
}

/// A key that borrows from the input unless it had escapes to undo.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Direction, Lens, Params, Plan, Transforms};
    use serde_json::Value;

    fn plan(yaml: &str) -> Plan {
        Plan::compile(
            &Lens::from_file_str(yaml).unwrap(),
            Direction::Forward,
            &Transforms::new(),
        )
        .unwrap()
    }

    fn bytes(p: &Plan, input: &str) -> Result<String, crate::LensError> {
        let mut out = Vec::new();
        p.translate_bytes(input.as_bytes(), &Params::new(), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn untouched_fields_keep_their_bytes() {
        let p = plan("lens:\n  - rename: {source: a, destination: b}\n");
        let input = r#"{"x": [1,  2.50, {"deep": "\u00e9"}], "a": 1, "k\"ey": null}"#;
        let out = bytes(&p, input).unwrap();
        assert_eq!(
            out,
            r#"{"x":[1,  2.50, {"deep": "\u00e9"}],"k\"ey":null,"b":1}"#
        );
    }

    #[test]
    fn raw_and_value_paths_agree() {
        let p = plan(
            "lens:\n  - rename: {source: a, destination: b}\n  - in: {name: n, lens: [{add: {name: z, type: number}}]}\n  - convert: {name: c, forward: 'value + 1'}\n",
        );
        let input = r#"{"a":1,"n":{"y":2},"c":3,"d":"keep"}"#;
        let via_bytes: Value = serde_json::from_str(&bytes(&p, input).unwrap()).unwrap();
        let via_value = p
            .translate(&serde_json::from_str(input).unwrap(), &Params::new())
            .unwrap();
        assert_eq!(via_bytes, via_value);
    }

    #[test]
    fn identity_validates_and_copies() {
        let p = Plan::identity();
        assert_eq!(bytes(&p, r#"{"a": 1}"#).unwrap(), r#"{"a": 1}"#);
        assert!(bytes(&p, r#"{"a": 1"#).is_err());
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let p = plan("lens:\n  - rename: {source: a, destination: b}\n");
        assert!(bytes(&p, "[1,2]").is_err());
        assert!(bytes(&p, "{\"a\": }").is_err());
        assert!(bytes(&p, "").is_err());
    }
}
