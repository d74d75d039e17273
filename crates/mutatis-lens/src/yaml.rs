//! YAML (and JSON, which is YAML's flow style) into `serde_json::Value`, with a map from every
//! JSON pointer to its line, so that errors found after parsing still name the line.
//!
//! Scalars resolve by the YAML 1.2 core schema: `null`/`~`/empty, `true`/`false`, integers,
//! floats; quoted scalars are always strings. Keys are the text of scalar keys, so the
//! `1:` of `versions: {1: …}` and the `true:` of a `convert` table both become strings.
//! A number is read exactly or refused (the rule of [`crate::json`]: a 64-bit integer, or a
//! decimal that a 64-bit float holds to the digit); a float keeps its float form (`1.0`), since
//! schema keywords are compared as written.
//!
//! Every file mutatis reads (lens files, type files, `mutatis.yaml`, policies) comes through
//! here, from people and from tools alike, so the reader bounds what a text can cost:
//!
//! - **Nesting**: at most [`MAX_DEPTH`] levels, counted in the value produced (an alias counts
//!   as deep as what it copies), so neither this reader nor anything that walks the value
//!   later (schema compilation, serialisation, `Drop`) can run out of stack.
//! - **Aliases**: each `*alias` copies its anchor's value, so a few lines of nested aliases
//!   (`&a [*a, *a, …]`, the "billion laughs") would otherwise expand to gigabytes. The copies
//!   an anchor or alias makes are counted in nodes plus bytes of text (keys and strings), and
//!   their total may not exceed [`ALIAS_BUDGET_PER_BYTE`] times the text's length, or
//!   [`ALIAS_BUDGET_MIN`] for a short text. A file that uses anchors for what they are for —
//!   sharing a schema fragment a handful of times — stays far below that; the check is made
//!   before the copy, so a bomb is refused after at most the budget's worth of work.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

use crate::error::LensError;
use crate::pointer;

/// Nesting deeper than this is refused rather than risking the stack (serde_json refuses the
/// same depth in a JSON document).
pub const MAX_DEPTH: usize = 128;

/// Copies made for anchors and aliases may cost this many units (a node, or a byte of a key or
/// string) per byte of the text…
pub const ALIAS_BUDGET_PER_BYTE: usize = 2;

/// …and at least this many, so a short file may still share a fragment a few times.
pub const ALIAS_BUDGET_MIN: usize = 100_000;

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
        budget: text
            .len()
            .saturating_mul(ALIAS_BUDGET_PER_BYTE)
            .max(ALIAS_BUDGET_MIN),
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

fn too_large(reason: String, span: Span) -> LensError {
    LensError::TooLarge {
        reason,
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

/// An anchored value with what copying it costs.
struct Anchor {
    value: Value,
    /// Nodes plus bytes of keys and strings.
    cost: usize,
    /// Levels below the value's own (0 for a scalar).
    height: usize,
}

struct Reader<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Anchor>,
    map: SourceMap,
    peeked: Option<(Event<'a>, Span)>,
    /// What copies for anchors and aliases may still cost.
    budget: usize,
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

    /// Spend `cost` units of the alias budget, or refuse at `span`.
    fn spend(&mut self, cost: usize, span: Span) -> Result<(), LensError> {
        match self.budget.checked_sub(cost) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => Err(too_large(
                "anchors and aliases expand to more than this text may hold (a YAML alias \
                 bomb?); write the repeated parts out, or share fewer copies"
                    .into(),
                span,
            )),
        }
    }

    fn node(&mut self, at: &str, depth: usize) -> Result<Value, LensError> {
        let (event, span) = self.next()?;
        if depth > MAX_DEPTH {
            return Err(too_large(
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
            Event::Alias(id) => {
                let Some(a) = self.anchors.get(&id) else {
                    return Err(syntax("alias to an unknown anchor", span));
                };
                // Both checks come before the copy, so refusing costs nothing.
                if depth + a.height > MAX_DEPTH {
                    return Err(too_large(
                        format!("nesting deeper than {MAX_DEPTH} levels (through an alias)"),
                        span,
                    ));
                }
                let cost = a.cost;
                self.spend(cost, span)?;
                let copy = self.anchors.get(&id).map(|a| a.value.clone());
                (copy.unwrap_or(Value::Null), 0)
            }
            _ => return Err(syntax("unexpected YAML event", span)),
        };
        if anchor != 0 {
            // Keeping the anchor's copy costs what it holds; nested anchors would otherwise
            // copy the same nodes once per level.
            let (cost, height) = measure(&value);
            self.spend(cost, span)?;
            self.anchors.insert(
                anchor,
                Anchor {
                    value: value.clone(),
                    cost,
                    height,
                },
            );
        }
        Ok(value)
    }
}

/// What copying `v` costs (nodes plus bytes of keys and strings) and its height. `v` was read
/// within [`MAX_DEPTH`], so the recursion is bounded.
fn measure(v: &Value) -> (usize, usize) {
    match v {
        Value::String(s) => (1 + s.len(), 0),
        Value::Array(items) => items.iter().fold((1, 0), |(cost, height), item| {
            let (c, h) = measure(item);
            (cost.saturating_add(c), height.max(h + 1))
        }),
        Value::Object(map) => map.iter().fold((1, 0), |(cost, height), (k, item)| {
            let (c, h) = measure(item);
            (
                cost.saturating_add(c).saturating_add(k.len()),
                height.max(h + 1),
            )
        }),
        _ => (1, 0),
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
    fn ordinary_anchors_and_aliases_still_work() {
        // A schema fragment shared by several properties, an anchored scalar, an alias inside
        // an anchored value, and an anchor defined again later (the later one counts).
        let text = "\
address: &address
  type: object
  properties: {street: {type: string}, city: {type: string}, zip: &zip {type: string, pattern: '^[0-9]{5}$'}}
home: *address
work: *address
billing: {type: object, properties: {zip: *zip}}
name: &n {type: string}
names: [*n, *n, *n]
both: &pair [*address, *zip]
again: *pair
n2: &n {type: integer}
last: *n
";
        let (v, map) = parse_yaml(text).unwrap();
        assert_eq!(v["home"], v["address"]);
        assert_eq!(v["work"]["properties"]["zip"]["pattern"], "^[0-9]{5}$");
        assert_eq!(
            v["billing"]["properties"]["zip"],
            v["address"]["properties"]["zip"]
        );
        assert_eq!(
            v["names"],
            json!([{"type": "string"}, {"type": "string"}, {"type": "string"}])
        );
        assert_eq!(v["again"][0], v["address"]);
        assert_eq!(v["last"], json!({"type": "integer"}));
        // A node copied by an alias is placed at the alias's line.
        assert_eq!(map.line("/work/properties/city"), Some(5));
        // Hundreds of copies of a small fragment are well within the budget.
        let mut many = String::from("f: &f {type: string, minLength: 1, maxLength: 80}\nlist:\n");
        for _ in 0..1000 {
            many.push_str("  - *f\n");
        }
        let (v, _) = parse_yaml(&many).unwrap();
        assert_eq!(v["list"].as_array().map(Vec::len), Some(1000));
    }

    /// The "billion laughs": each level an anchored list of ten aliases to the one before.
    fn alias_bomb(levels: usize) -> String {
        let mut text = String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..=levels {
            let prev = format!("*l{}", i - 1);
            let items = [prev.as_str(); 10].join(", ");
            text.push_str(&format!("l{i}: &l{i} [{items}]\n"));
        }
        text
    }

    /// The error is `TooLarge`, at a line of the text, pointing at an alias.
    fn refused_at_an_alias(text: &str) -> (usize, String) {
        let err = parse_yaml(text).unwrap_err();
        let LensError::TooLarge {
            line,
            column,
            reason,
        } = &err
        else {
            panic!("{err:?}")
        };
        let at = text
            .lines()
            .nth(line - 1)
            .and_then(|l| l.chars().nth(column - 1));
        assert_eq!(at, Some('*'), "{err}");
        assert!(err.to_string().contains(&format!("line {line}")), "{err}");
        (*line, reason.clone())
    }

    #[test]
    fn alias_bombs_are_refused_with_the_line() {
        // Seven levels were 10⁷ strings (gigabytes), nine ran past half a minute; both are
        // refused once the copies reach the budget, a few levels in.
        for levels in [7, 9] {
            let text = alias_bomb(levels);
            let (line, reason) = refused_at_an_alias(&text);
            assert!((2..=levels + 1).contains(&line), "line {line}");
            assert!(reason.contains("aliases"), "{reason}");
        }
        // The same through the readers built on this one.
        let lens = format!("{}lens: []\n", alias_bomb(9));
        let err = crate::Lens::from_file_str(&lens).unwrap_err();
        assert!(matches!(err, LensError::TooLarge { .. }), "{err:?}");
    }

    #[test]
    fn long_strings_count_towards_the_budget() {
        // Few nodes, but each copy a 10 kB string: 2,000 copies are 20 MB from a 30 kB text.
        let big = "x".repeat(10_000);
        let mut text = format!("s: &s {big}\nl:\n");
        for _ in 0..2_000 {
            text.push_str("  - *s\n");
        }
        let (_, reason) = refused_at_an_alias(&text);
        assert!(reason.contains("aliases"), "{reason}");
    }

    #[test]
    fn aliases_cannot_nest_past_the_depth_limit() {
        // Each level is shallow, but each alias adds its anchor's depth.
        let mut text = String::from("a0: &a0 [[[[[[[[[[[[[[[[[[[[x]]]]]]]]]]]]]]]]]]]]\n");
        for i in 1..10 {
            text.push_str(&format!(
                "a{i}: &a{i} [[[[[[[[[[[[[[[[[[[[*a{}]]]]]]]]]]]]]]]]]]]]\n",
                i - 1
            ));
        }
        let (line, reason) = refused_at_an_alias(&text);
        assert!(reason.contains("nesting deeper than 128"), "{reason}");
        assert_eq!(line, 7);
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        for text in [
            "[".repeat(10_000),
            "{a: ".repeat(10_000),
            (0..10_000)
                .map(|i| format!("{}- \n", "  ".repeat(i % 300)))
                .collect(),
        ] {
            let err = parse_yaml(&text).unwrap_err();
            assert!(
                matches!(
                    err,
                    LensError::TooLarge { line: 1.., .. } | LensError::Syntax { .. }
                ),
                "{err:?}"
            );
        }
        // Below the parser's own limit on flow nesting (255), this reader's applies.
        let err = parse_yaml(&"[".repeat(200)).unwrap_err();
        assert!(
            matches!(err, LensError::TooLarge { line: 1, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("nesting deeper than 128 levels"),
            "{err}"
        );
        // 100 levels are fine.
        let ok = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(parse_yaml(&ok).is_ok());
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
