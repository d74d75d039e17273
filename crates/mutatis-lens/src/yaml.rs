//! YAML (and JSON, which is YAML's flow style) into `serde_json::Value`, with a map from every
//! JSON pointer to its line, so that errors found after parsing still name the line.
//!
//! Scalars resolve by the YAML 1.2 core schema: `null`/`~`/empty, `true`/`false`, integers,
//! floats; quoted scalars are always strings. Keys are the text of scalar keys, so the
//! `1:` of `versions: {1: …}` and the `true:` of a `convert` table both become strings.
//! A number is read exactly or refused (the rule of [`crate::json`]: a 64-bit integer, or a
//! decimal that a 64-bit float holds to the digit); a float keeps its float form (`1.0`), since
//! schema keywords are compared as written.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

use crate::error::LensError;
use crate::pointer;

/// Nesting deeper than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 128;

/// Where each node of a parsed YAML text starts.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    lines: HashMap<String, (usize, usize)>,
}

impl SourceMap {
    /// The 1-based line and column of the node at `pointer`, or of its nearest ancestor.
    pub fn locate(&self, pointer: &str) -> Option<(usize, usize)> {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.lines.get(p) {
                return Some(*pos);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }

    /// The 1-based line of the node at `pointer`, or of its nearest ancestor.
    pub fn line(&self, pointer: &str) -> Option<usize> {
        self.locate(pointer).map(|(l, _)| l)
    }
}

/// Parse one YAML document. An empty text is `null`.
pub fn parse_yaml(text: &str) -> Result<(Value, SourceMap), LensError> {
    let mut reader = Reader {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        map: SourceMap::default(),
        peeked: None,
    };
    let mut value = Value::Null;
    let mut documents = 0;
    loop {
        let (event, span) = reader.next()?;
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(syntax(
                        "a file holds one YAML document; found a second",
                        span,
                    ));
                }
                value = reader.node("", 0)?;
            }
            _ => return Err(syntax("unexpected YAML event", span)),
        }
    }
    Ok((value, reader.map))
}

fn syntax(message: impl Into<String>, span: Span) -> LensError {
    LensError::Syntax {
        message: message.into(),
        line: Some(span.start.line()),
        column: Some(span.start.col() + 1),
    }
}

struct Reader<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Value>,
    map: SourceMap,
    peeked: Option<(Event<'a>, Span)>,
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), LensError> {
        if let Some(e) = self.peeked.take() {
            return Ok(e);
        }
        match self.parser.next_event() {
            Some(Ok(e)) => Ok(e),
            Some(Err(e)) => Err(LensError::Syntax {
                message: e.info().to_owned(),
                line: Some(e.marker().line()),
                column: Some(e.marker().col() + 1),
            }),
            None => Err(LensError::Syntax {
                message: "unexpected end of input".into(),
                line: None,
                column: None,
            }),
        }
    }

    fn node(&mut self, at: &str, depth: usize) -> Result<Value, LensError> {
        let (event, span) = self.next()?;
        if depth > MAX_DEPTH {
            return Err(syntax(
                format!("nesting deeper than {MAX_DEPTH} levels"),
                span,
            ));
        }
        // A mapping entry was already placed at its key's line, which is where a reader looks
        // for it (the value of `key:` followed by a block starts on the next line).
        self.map
            .lines
            .entry(at.to_owned())
            .or_insert((span.start.line(), span.start.col() + 1));
        let (value, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let forced_string = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let v = if style == ScalarStyle::Plain && !forced_string {
                    resolve_plain(&text).map_err(|reason| syntax(reason, span))?
                } else {
                    Value::String(text.into_owned())
                };
                (v, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (e, s) = self.next()?;
                    if matches!(e, Event::SequenceEnd) {
                        break;
                    }
                    self.peeked = Some((e, s));
                    let child = pointer::push_index(at, items.len());
                    items.push(self.node(&child, depth + 1)?);
                }
                (Value::Array(items), anchor)
            }
            Event::MappingStart(anchor, _) => {
                let mut map = Map::new();
                loop {
                    let (e, s) = self.next()?;
                    let key = match e {
                        Event::MappingEnd => break,
                        Event::Scalar(text, ..) => text.into_owned(),
                        _ => return Err(syntax("a mapping key must be a plain value", s)),
                    };
                    if map.contains_key(&key) {
                        return Err(syntax(format!("duplicate key `{key}`"), s));
                    }
                    let child = pointer::push(at, &key);
                    self.map
                        .lines
                        .insert(child.clone(), (s.start.line(), s.start.col() + 1));
                    let v = self.node(&child, depth + 1)?;
                    map.insert(key, v);
                }
                (Value::Object(map), anchor)
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(v) => (v.clone(), 0),
                None => return Err(syntax("alias to an unknown anchor", span)),
            },
            _ => return Err(syntax("unexpected YAML event", span)),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        Ok(value)
    }
}

/// Resolve a plain scalar by the YAML 1.2 core schema; a number that cannot be held exactly
/// is an error.
fn resolve_plain(text: &str) -> Result<Value, String> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = text.trim_start_matches('+').parse::<u64>() {
            return Ok(Value::from(u));
        }
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return Ok(Value::from(i));
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if let Ok(i) = i64::from_str_radix(oct, 8) {
            return Ok(Value::from(i));
        }
    }
    if looks_like_float(text) {
        return match crate::json::check_number(text) {
            // Read as a float, as written: `1.0` stays `1.0` in a schema or a lens.
            Ok(()) => Ok(text
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map_or_else(|| Value::String(text.to_owned()), Value::Number)),
            Err(why) => Err(format!("the number {text} {why}")),
        };
    }
    Ok(Value::String(text.to_owned()))
}

fn looks_like_float(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mantissa_ok = {
        let mut parts = mantissa.splitn(2, '.');
        let int = parts.next().unwrap_or("");
        let frac = parts.next();
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        all_digits(int)
            && frac.is_none_or(all_digits)
            && (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()))
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_resolve_by_the_core_schema() {
        let (v, _) = parse_yaml(
            "a: 1\nb: -2.5\nc: true\nd: ~\ne: '1'\nf: 2027-03-01\ng: hello world\nh: 1e3\n",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"a": 1, "b": -2.5, "c": true, "d": null, "e": "1", "f": "2027-03-01",
                   "g": "hello world", "h": 1000.0})
        );
    }

    #[test]
    fn keys_are_strings_and_lines_are_kept() {
        let text = "versions:\n  1:\n    schema: {type: object}\n  2:\n    lens:\n      - add: {name: x}\n";
        let (v, map) = parse_yaml(text).unwrap();
        assert_eq!(v["versions"]["2"]["lens"][0]["add"]["name"], "x");
        assert_eq!(map.line("/versions/2/lens/0"), Some(6));
        // A key whose value is a block is placed at the key's own line.
        assert_eq!(map.line("/versions/2"), Some(4));
        assert_eq!(map.line("/versions/2/lens"), Some(5));
        assert_eq!(map.line("/versions/1/schema/type"), Some(3));
        // A pointer that doesn't exist falls back to its nearest ancestor.
        assert_eq!(map.line("/versions/2/lens/0/nope"), Some(6));
    }

    #[test]
    fn json_parses_too() {
        let (v, _) = parse_yaml(r#"{"a": [1, "two", {"b": null}], "c": "\u00e9"}"#).unwrap();
        assert_eq!(v, json!({"a": [1, "two", {"b": null}], "c": "é"}));
    }

    #[test]
    fn malformed_input_names_the_line() {
        let err = parse_yaml("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        let LensError::Syntax { line, .. } = err else {
            panic!("{err:?}")
        };
        assert!(line.is_some());
        let err = parse_yaml("a: 1\na: 2\n").unwrap_err();
        assert!(err.to_string().contains("duplicate key `a`"), "{err}");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn aliases_are_copied() {
        let (v, _) = parse_yaml("a: &x {k: 1}\nb: *x\n").unwrap();
        assert_eq!(v["b"], json!({"k": 1}));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = "[".repeat(10_000);
        assert!(parse_yaml(&text).is_err());
    }

    #[test]
    fn numbers_are_read_exactly_or_refused_with_the_line() {
        let (v, _) =
            parse_yaml("a: 18446744073709551615\nb: 1.0\nc: 0.1\nd: -9223372036854775808\n")
                .unwrap();
        assert_eq!(v["a"], json!(18446744073709551615u64));
        // A float keeps its float form in a lens or type file.
        assert!(v["b"].is_f64());
        assert_eq!(v["c"], json!(0.1));
        for (text, line) in [
            ("a: 1\ndefault: 123456789012345678901234567890\n", 2),
            ("a: 1\nb: 2\nmaximum: 2000.0000000000000000001\n", 3),
            ("x: [1e400]\n", 1),
        ] {
            let err = parse_yaml(text).unwrap_err();
            let LensError::Syntax { line: Some(l), .. } = &err else {
                panic!("{err:?}")
            };
            assert_eq!(*l, line, "{err}");
            assert!(err.to_string().contains("64-bit"), "{err}");
        }
    }
}
