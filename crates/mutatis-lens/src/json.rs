//! JSON documents read exactly: a number is held as written, or refused with its pointer.
//!
//! mutatis holds a JSON number as a 64-bit integer (signed or unsigned) or a 64-bit float
//! ([`serde_json::Number`]), the range and precision that I-JSON (RFC 7493 §2.2) asks of
//! interoperable JSON. A plain `serde_json` parse rounds any other number without a word:
//! `123456789012345678901234567890` becomes `1.2345678901234568e29`,
//! `2000.0000000000000000001` becomes `2000.0`, `1e-400` becomes `0.0`. A document stored that
//! way is not the document that was written, and a lens computing on the number computes on
//! another one. So every document mutatis reads from text comes through [`from_slice`], which
//! holds each number exactly or refuses it, naming its JSON pointer. The rule ([`number`]):
//!
//! - **An integer** — a number whose value is whole, however it is written (`7`, `7.0`,
//!   `7e0`, `0.7e1`, `-0.0`) — within −2⁶³…2⁶⁴−1 is held as that integer. JSON Schema calls
//!   `7.0` an integer, so a version that accepts it must be able to compute on it as one: a
//!   CEL expression then sees an `int` whichever way the writer spelled the number.
//! - **Any other number** is held as the 64-bit float nearest to it when that float's shortest
//!   decimal form has the same value as the text (`0.1`, `2.50`, `1.5e300`, `1e30`), so what is
//!   stored and served is the number that was written.
//! - **Anything else is refused**: more significant digits than a float holds
//!   (`2000.0000000000000000001`, `18446744073709551616`), beyond its range (`1e400`), or
//!   closer to zero than it reaches (`1e-400`).
//!
//! The same rule is applied by the raw translation path ([`crate::Plan::translate_bytes`],
//! which copies untouched numbers as their bytes, so refuses what this reader refuses) and by
//! the YAML reader of lens and type files ([`crate::yaml`], which keeps a float's float form
//! there, as schema keywords are compared as written). Whatever mutatis accepts, it can
//! therefore store, serve and translate without changing a number.
//!
//! Only the number's *value* is kept, not its spelling: `1e2` is the integer `100`, `2.50` the
//! float `2.5`. (Untouched members that `translate_bytes` copies keep their bytes.)

use serde::de::Error as _;
use serde_json::{Map, Number, Value};
use thiserror::Error;

use crate::error::LensError;
use crate::pointer;
use crate::raw::{Scanner, MAX_DEPTH};

/// Why a JSON text could not be read.
#[derive(Debug, Error)]
pub enum JsonError {
    /// Not JSON: `serde_json`'s error, with its line and column.
    #[error("invalid JSON: {0}")]
    Syntax(#[source] serde_json::Error),
    /// A number mutatis cannot hold exactly (see the [module](self) documentation).
    #[error("the number {number} at {} {why}", show_pointer(at))]
    Inexact {
        /// The JSON pointer of the number.
        at: String,
        /// The number as written (shortened when very long).
        number: String,
        why: NumberError,
    },
}

impl JsonError {
    /// The JSON pointer of the refused number; `None` for a syntax error.
    pub fn pointer(&self) -> Option<&str> {
        match self {
            JsonError::Syntax(_) => None,
            JsonError::Inexact { at, .. } => Some(at),
        }
    }
}

impl From<JsonError> for LensError {
    fn from(e: JsonError) -> LensError {
        match e {
            JsonError::Syntax(e) => LensError::InvalidInput {
                at: String::new(),
                reason: format!("invalid JSON: {e}"),
            },
            JsonError::Inexact { at, number, why } => LensError::InvalidInput {
                at,
                reason: format!("the number {number} {why}"),
            },
        }
    }
}

fn show_pointer(at: &str) -> &str {
    if at.is_empty() {
        "the top level"
    } else {
        at
    }
}

/// Why a number cannot be held exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum NumberError {
    /// More significant digits than a 64-bit float holds (and not a 64-bit integer).
    #[error(
        "cannot be held exactly: it is neither a 64-bit integer nor a decimal that a 64-bit \
         float holds to the digit (send it as a string)"
    )]
    TooPrecise,
    /// Beyond ±1.8e308.
    #[error("is beyond the range of a 64-bit float")]
    OutOfRange,
    /// Non-zero but closer to zero than a 64-bit float reaches.
    #[error("is closer to zero than a 64-bit float reaches")]
    Underflow,
    /// Not a number at all.
    #[error("is not a number")]
    Malformed,
}

/// Parse one JSON document, holding every number exactly (see the [module](self)
/// documentation). Surrounding whitespace is allowed; duplicate keys keep their first
/// position and their last value, as `serde_json` does.
pub fn from_slice(input: &[u8]) -> Result<Value, JsonError> {
    let mut s = Scanner::new(input);
    s.ws();
    match read(&mut s, 0, &Path::Root) {
        Ok(v) => {
            s.ws();
            if s.pos == input.len() {
                return Ok(v);
            }
        }
        Err(Stop::Inexact { at, number, why }) => {
            return Err(JsonError::Inexact { at, number, why })
        }
        Err(Stop::Syntax) => {}
    }
    // Not JSON: serde_json words the error and places it.
    Err(JsonError::Syntax(
        match serde_json::from_slice::<Value>(input) {
            Err(e) => e,
            // The scanner is no looser than serde_json; should it be stricter somewhere, say so
            // rather than accept a text it did not read.
            Ok(_) => serde_json::Error::custom(format!(
                "unexpected input at byte {} (a construct this reader does not accept)",
                s.pos
            )),
        },
    ))
}

/// [`from_slice`] over a string.
pub fn from_str(input: &str) -> Result<Value, JsonError> {
    from_slice(input.as_bytes())
}

enum Stop {
    Syntax,
    Inexact {
        at: String,
        number: String,
        why: NumberError,
    },
}

/// Where a value sits, rendered into a pointer only for an error.
enum Path<'p> {
    Root,
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        match self {
            Path::Root => String::new(),
            Path::Key(parent, key) => pointer::push(&parent.render(), key),
            Path::Index(parent, i) => pointer::push_index(&parent.render(), *i),
        }
    }
}

/// One value; `depth` counts the containers around it (as the raw scanner does, so both
/// refuse the same nesting as `serde_json`).
fn read(s: &mut Scanner<'_>, depth: u32, at: &Path<'_>) -> Result<Value, Stop> {
    match s.peek().ok_or(Stop::Syntax)? {
        b'"' => read_string(s).map(Value::String),
        b'{' => {
            if depth >= MAX_DEPTH {
                return Err(Stop::Syntax);
            }
            s.pos += 1;
            s.ws();
            let mut map = Map::new();
            if s.peek() == Some(b'}') {
                s.pos += 1;
                return Ok(Value::Object(map));
            }
            loop {
                s.ws();
                let key = read_string(s)?;
                s.ws();
                s.eat(b':').ok_or(Stop::Syntax)?;
                s.ws();
                let v = read(s, depth + 1, &Path::Key(at, &key))?;
                map.insert(key, v);
                s.ws();
                match s.next() {
                    Some(b',') => {}
                    Some(b'}') => return Ok(Value::Object(map)),
                    _ => return Err(Stop::Syntax),
                }
            }
        }
        b'[' => {
            if depth >= MAX_DEPTH {
                return Err(Stop::Syntax);
            }
            s.pos += 1;
            s.ws();
            let mut items = Vec::new();
            if s.peek() == Some(b']') {
                s.pos += 1;
                return Ok(Value::Array(items));
            }
            loop {
                s.ws();
                let v = read(s, depth + 1, &Path::Index(at, items.len()))?;
                items.push(v);
                s.ws();
                match s.next() {
                    Some(b',') => {}
                    Some(b']') => return Ok(Value::Array(items)),
                    _ => return Err(Stop::Syntax),
                }
            }
        }
        b't' => s
            .literal(b"true")
            .map(|()| Value::Bool(true))
            .ok_or(Stop::Syntax),
        b'f' => s
            .literal(b"false")
            .map(|()| Value::Bool(false))
            .ok_or(Stop::Syntax),
        b'n' => s.literal(b"null").map(|()| Value::Null).ok_or(Stop::Syntax),
        b'-' | b'0'..=b'9' => {
            let start = s.pos;
            s.number_grammar().ok_or(Stop::Syntax)?;
            let text = s
                .bytes
                .get(start..s.pos)
                .and_then(|t| std::str::from_utf8(t).ok())
                .ok_or(Stop::Syntax)?;
            match number(text) {
                Ok(n) => Ok(Value::Number(n)),
                Err(why) => Err(Stop::Inexact {
                    at: at.render(),
                    number: shorten(text),
                    why,
                }),
            }
        }
        _ => Err(Stop::Syntax),
    }
}

fn read_string(s: &mut Scanner<'_>) -> Result<String, Stop> {
    let start = s.pos;
    let escaped = s.string().ok_or(Stop::Syntax)?;
    let quoted = s.bytes.get(start..s.pos).ok_or(Stop::Syntax)?;
    if escaped {
        // Rare: let serde_json undo the escapes.
        serde_json::from_slice::<String>(quoted).map_err(|_| Stop::Syntax)
    } else {
        let end = quoted.len().checked_sub(1).ok_or(Stop::Syntax)?;
        let inner = quoted.get(1..end).ok_or(Stop::Syntax)?;
        // The scanner checked the UTF-8; this cannot fail.
        std::str::from_utf8(inner)
            .map(str::to_owned)
            .map_err(|_| Stop::Syntax)
    }
}

/// A refused number as an error message shows it: a hostile one may be megabytes long.
fn shorten(text: &str) -> String {
    const KEEP: usize = 40;
    match text.char_indices().nth(KEEP) {
        Some((cut, _)) => format!("{}… ({} characters)", &text[..cut], text.len()),
        None => text.to_owned(),
    }
}

/// A decimal of at most this many significant digits within a float's normal range is the
/// shortest form of its nearest float (a float tells 15-digit decimals apart: `DBL_DIG`), so a
/// float holds it to the digit.
pub(crate) const FLOAT_DIGITS: usize = 15;

/// The number `text` (JSON's number grammar; YAML's `+1`, `.5` and `1.` are read too) as
/// mutatis holds it, or why it cannot be held exactly. See the [module](self) documentation.
pub fn number(text: &str) -> Result<Number, NumberError> {
    let bytes = text.as_bytes();
    let (mut digits, mut point, mut exponent) = (0usize, false, false);
    for b in bytes {
        match b {
            b'0'..=b'9' => digits += 1,
            b'.' => point = true,
            b'e' | b'E' => exponent = true,
            _ => {}
        }
    }
    if !point && !exponent {
        // Plain integers, most numbers: Rust's parse is exact.
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Number::from(i));
        }
        if let Ok(u) = text.parse::<u64>() {
            return Ok(Number::from(u));
        }
    } else if !exponent && digits <= FLOAT_DIGITS {
        // Most decimals: at most 15 digits and no exponent, so at most 15 significant digits,
        // and a non-zero value of at least 10⁻¹⁴, well within the normal range; a whole one is
        // below 10¹⁵, which a float holds exactly.
        let f: f64 = text.parse().map_err(|_| NumberError::Malformed)?;
        return whole_f64(f)
            .or_else(|| Number::from_f64(f))
            .ok_or(NumberError::Malformed);
    }
    let d = Decimal::read(bytes).ok_or(NumberError::Malformed)?;
    let Some(sig) = d.significant() else {
        // Every digit is zero: the integer 0 (`-0.0` included, as JSON Schema counts it).
        return Ok(Number::from(0u64));
    };
    if let Some(n) = sig.integer(&d) {
        return Ok(n);
    }
    let f: f64 = text.parse().map_err(|_| NumberError::Malformed)?;
    if f.is_infinite() {
        return Err(NumberError::OutOfRange);
    }
    if f == 0.0 {
        return Err(NumberError::Underflow);
    }
    // Only longer decimals, and subnormals, need the comparison with the shortest form.
    let exact = (sig.len <= FLOAT_DIGITS && f.abs() >= f64::MIN_POSITIVE) || {
        let shortest = format!("{:e}", f.abs());
        Decimal::read(shortest.as_bytes())
            .and_then(|s| Some((s.significant()?, s)))
            .is_some_and(|(ss, s)| ss.same_value(&s, &sig, &d))
    };
    if exact {
        Number::from_f64(f).ok_or(NumberError::Malformed)
    } else {
        Err(NumberError::TooPrecise)
    }
}

/// Whether `text` is a number [`number`] holds, without building it.
pub(crate) fn check_number(text: &str) -> Result<(), NumberError> {
    number(text).map(|_| ())
}

/// The integer a float stands for when its value is whole and within 64-bit integers: how
/// lenses read a number that did not come through [`from_slice`] (a `Value` built by an
/// embedding program, a document stored before this rule), so that `7.0` computes as `7`
/// however it arrived.
pub(crate) fn whole(n: &Number) -> Option<Number> {
    let f = n.as_f64().filter(|_| n.is_f64())?;
    whole_f64(f)
}

/// [`whole`] of an `f64`.
pub(crate) fn whole_f64(f: f64) -> Option<Number> {
    // 2⁶³ and 2⁶⁴, exactly representable.
    const I64_END: f64 = 9_223_372_036_854_775_808.0;
    const U64_END: f64 = 18_446_744_073_709_551_616.0;
    if !f.is_finite() || f.fract() != 0.0 {
        return None;
    }
    if (-I64_END..I64_END).contains(&f) {
        // Whole and in range: the cast is exact.
        Some(Number::from(f as i64))
    } else if (0.0..U64_END).contains(&f) {
        Some(Number::from(f as u64))
    } else {
        None
    }
}

/// A decimal number's parts as written: `-12.50e3` is negative, `12`, `50`, exponent 3.
struct Decimal<'a> {
    negative: bool,
    int: &'a [u8],
    frac: &'a [u8],
    /// The written exponent, saturated far beyond any float's range.
    exp: i64,
}

/// The significant digits of a non-zero decimal: `len` digits from position `lead` of
/// `int ++ frac`, times ten to the `scale`.
struct Significant {
    lead: usize,
    len: usize,
    scale: i64,
}

impl<'a> Decimal<'a> {
    fn read(text: &'a [u8]) -> Option<Decimal<'a>> {
        let (negative, rest) = match text.first()? {
            b'-' => (true, text.get(1..)?),
            b'+' => (false, text.get(1..)?),
            _ => (false, text),
        };
        let (mantissa, exp_text) = match rest.iter().position(|&b| b == b'e' || b == b'E') {
            Some(i) => (rest.get(..i)?, Some(rest.get(i + 1..)?)),
            None => (rest, None),
        };
        let (int, frac) = match mantissa.iter().position(|&b| b == b'.') {
            Some(i) => (mantissa.get(..i)?, mantissa.get(i + 1..)?),
            None => (mantissa, &[][..]),
        };
        if (int.is_empty() && frac.is_empty()) || !int.iter().chain(frac).all(u8::is_ascii_digit) {
            return None;
        }
        let exp = match exp_text {
            None => 0,
            Some(e) => {
                let (neg, digits) = match e.first()? {
                    b'-' => (true, e.get(1..)?),
                    b'+' => (false, e.get(1..)?),
                    _ => (false, e),
                };
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                // Past a billion the number is out of any float's range whatever its digits
                // (they are fewer than the text's length).
                let magnitude = digits.iter().fold(0i64, |acc, &d| {
                    (acc * 10 + i64::from(d - b'0')).min(1_000_000_000)
                });
                if neg {
                    -magnitude
                } else {
                    magnitude
                }
            }
        };
        Some(Decimal {
            negative,
            int,
            frac,
            exp,
        })
    }

    fn digits(&self) -> impl DoubleEndedIterator<Item = u8> + '_ {
        self.int.iter().chain(self.frac).copied()
    }

    /// `None` when every digit is zero.
    fn significant(&self) -> Option<Significant> {
        let total = self.int.len() + self.frac.len();
        let lead = self.digits().take_while(|&d| d == b'0').count();
        if lead == total {
            return None;
        }
        let trail = self.digits().rev().take_while(|&d| d == b'0').count();
        let len = total - lead - trail;
        let frac_len = i64::try_from(self.frac.len()).ok()?;
        let trail = i64::try_from(trail).ok()?;
        Some(Significant {
            lead,
            len,
            scale: self.exp.saturating_sub(frac_len).saturating_add(trail),
        })
    }
}

impl Significant {
    /// The integer `d` is, when its value is whole and within 64-bit integers.
    fn integer(&self, d: &Decimal<'_>) -> Option<Number> {
        let len = i64::try_from(self.len).ok()?;
        // At most 20 digits: below 10²⁰, well within u128.
        if self.scale < 0 || len.saturating_add(self.scale) > 20 {
            return None;
        }
        let mut v: u128 = 0;
        for digit in d.digits().skip(self.lead).take(self.len) {
            v = v * 10 + u128::from(digit - b'0');
        }
        for _ in 0..self.scale {
            v *= 10;
        }
        if d.negative {
            let v = i128::try_from(v).ok()?;
            i64::try_from(-v).ok().map(Number::from)
        } else {
            u64::try_from(v).ok().map(Number::from)
        }
    }

    /// Whether two decimals (this one of `d`, `other` of `od`) have the same absolute value.
    fn same_value(&self, d: &Decimal<'_>, other: &Significant, od: &Decimal<'_>) -> bool {
        self.len == other.len
            && self.scale == other.scale
            && d.digits()
                .skip(self.lead)
                .take(self.len)
                .eq(od.digits().skip(other.lead).take(other.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn held(text: &str) -> Result<String, NumberError> {
        number(text).map(|n| Value::Number(n).to_string())
    }

    #[test]
    fn integers_are_held_whatever_their_spelling() {
        for (text, expect) in [
            ("0", "0"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("0e10", "0"),
            ("7", "7"),
            ("7.0", "7"),
            ("7.000", "7"),
            ("7e0", "7"),
            ("0.7e1", "7"),
            ("1e2", "100"),
            ("1E+2", "100"),
            ("1990.0", "1990"),
            ("123456789012345678.0", "123456789012345678"),
            ("9223372036854775807", "9223372036854775807"),
            ("-9223372036854775808", "-9223372036854775808"),
            ("-9223372036854775808.0", "-9223372036854775808"),
            ("18446744073709551615", "18446744073709551615"),
            ("1.8446744073709551615e19", "18446744073709551615"),
            ("1e19", "10000000000000000000"),
        ] {
            assert_eq!(held(text).as_deref(), Ok(expect), "{text}");
        }
    }

    #[test]
    fn floats_are_held_when_a_float_holds_them_to_the_digit() {
        for (text, expect) in [
            ("0.1", "0.1"),
            ("2.50", "2.5"),
            ("-1.5", "-1.5"),
            ("1.5e300", "1.5e+300"),
            ("1e30", "1e+30"),
            ("1000000000000000000000000000000", "1e+30"),
            ("0.30000000000000004", "0.30000000000000004"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("2.2250738585072014e-308", "2.2250738585072014e-308"),
            ("123456.789", "123456.789"),
            ("999999999999.999", "999999999999.999"),
            ("0.00000000000001", "1e-14"),
            // YAML's spellings.
            (".5", "0.5"),
            ("+1.5", "1.5"),
            ("1.", "1"),
        ] {
            assert_eq!(held(text).as_deref(), Ok(expect), "{text}");
        }
    }

    #[test]
    fn numbers_a_float_would_change_are_refused() {
        for (text, why) in [
            ("123456789012345678901234567890", NumberError::TooPrecise),
            ("18446744073709551616", NumberError::TooPrecise),
            ("-9223372036854775809", NumberError::TooPrecise),
            ("2000.0000000000000000001", NumberError::TooPrecise),
            ("0.10000000000000001", NumberError::TooPrecise),
            ("9007199254740993.5", NumberError::TooPrecise),
            ("4.9e-324", NumberError::TooPrecise),
            ("1e400", NumberError::OutOfRange),
            ("-1e400", NumberError::OutOfRange),
            ("1e99999999999999999999", NumberError::OutOfRange),
            ("1e-400", NumberError::Underflow),
            ("1e-99999999999999999999", NumberError::Underflow),
        ] {
            assert_eq!(held(text), Err(why), "{text}");
        }
    }

    #[test]
    fn a_refused_number_is_named_by_its_pointer() {
        let err = from_slice(br#"{"a": [1, {"yearOfBirth": 123456789012345678901234567890}]}"#)
            .unwrap_err();
        assert_eq!(err.pointer(), Some("/a/1/yearOfBirth"));
        let text = err.to_string();
        assert!(text.contains("/a/1/yearOfBirth"), "{text}");
        assert!(text.contains("123456789012345678901234567890"), "{text}");
        let lens: LensError = err.into();
        assert!(matches!(&lens, LensError::InvalidInput { at, .. } if at == "/a/1/yearOfBirth"));
        // Escaped keys are unescaped in the pointer, and `/` and `~` escaped as RFC 6901 says.
        let err = from_slice(br#"{"a\/b~": 1e400}"#).unwrap_err();
        assert_eq!(err.pointer(), Some("/a~1b~0"));
        // A megabyte of digits is not repeated in the message.
        let long = format!("[{}]", "9".repeat(1 << 20));
        let err = from_slice(long.as_bytes()).unwrap_err();
        assert_eq!(err.pointer(), Some("/0"));
        assert!(err.to_string().len() < 400);
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{"a": 1, "b": [true, false, null, "s\u00e9\n"], "c": {"d": -2.5, "e": {}}, "f": []}"#,
            r#"  "top"  "#,
            "[]",
            r#"{"a": 1, "a": 2, "b": 3}"#,
            r#"{"é": "ü", "k\"ey": "\ud83d\ude00"}"#,
        ] {
            let ours = from_str(text).unwrap();
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
        }
        assert_eq!(
            from_str(r#"{"a": 1, "a": 2, "b": 3}"#).unwrap().to_string(),
            r#"{"a":2,"b":3}"#
        );
        assert_eq!(from_str("[1.0, 2e0]").unwrap(), json!([1, 2]));
    }

    #[test]
    fn refuses_what_serde_json_refuses_with_its_message() {
        for text in [
            "",
            "{",
            r#"{"a" 1}"#,
            "[1,]",
            "01",
            "1.",
            ".5",
            "+1",
            "tru",
            r#""\ud800""#,
            "\"\u{1}\"",
            "[1] x",
            &"[".repeat(200),
        ] {
            let err = from_str(text).unwrap_err();
            assert!(matches!(err, JsonError::Syntax(_)), "{text:?} gave {err:?}");
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text:?}");
        }
        let err = from_str("{\n  \"a\": ,}").unwrap_err();
        let JsonError::Syntax(e) = err else {
            panic!("{err:?}")
        };
        assert_eq!((e.line(), e.column()), (2, 8));
        // Invalid UTF-8 inside a string.
        assert!(matches!(from_slice(b"\"\xff\""), Err(JsonError::Syntax(_))));
    }

    #[test]
    fn whole_floats_are_integers() {
        assert_eq!(whole_f64(7.0), Some(Number::from(7)));
        assert_eq!(whole_f64(-0.0), Some(Number::from(0)));
        assert_eq!(whole_f64(7.5), None);
        assert_eq!(
            whole_f64(1e19),
            Some(Number::from(10_000_000_000_000_000_000u64))
        );
        assert_eq!(whole_f64(1e20), None);
        assert_eq!(whole_f64(f64::NAN), None);
        assert_eq!(whole(&Number::from(7)), None);
    }
}
