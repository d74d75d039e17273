//! Regular expressions and formats, decided by the validator itself. Whether a literal property
//! name matches a `patternProperties` key, or whether an `enum` value satisfies a `pattern`, must
//! be answered exactly as the validator answers it (ECMA-262 regular expressions, with the
//! `jsonschema` crate's translation), so the checker asks the `jsonschema` crate rather than
//! re-implementing regular expressions.
//!
//! Compiled validators are cached per thread, across comparisons: the same patterns recur in
//! every version of a type, and compiling one costs more than comparing two small schemas. The
//! cache is a pure memo (its answers do not depend on what was asked before) and is bounded.

use std::cell::RefCell;
use std::collections::HashMap;

use jsonschema::{Draft, Validator};
use serde_json::{json, Value};

/// Beyond this many entries a cache is emptied before the next insertion.
const MAX_CACHED: usize = 4096;

thread_local! {
    static PATTERNS: RefCell<HashMap<String, Result<Validator, String>>> = RefCell::new(HashMap::new());
    static FORMATS: RefCell<HashMap<String, Option<(Validator, bool)>>> = RefCell::new(HashMap::new());
}

/// Access to the validator's regular expressions and formats.
#[derive(Default)]
pub(crate) struct Oracle;

impl Oracle {
    /// Run `f` on the compiled `pattern`, or return the validator's complaint about it.
    fn with_pattern<T>(pattern: &str, f: impl FnOnce(&Validator) -> T) -> Result<T, String> {
        PATTERNS.with(|cell| {
            let mut cache = cell.borrow_mut();
            if !cache.contains_key(pattern) {
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
                let compiled = jsonschema::validator_for(&json!({ "pattern": pattern }))
                    .map_err(|e| format!("{pattern:?} is not a valid regular expression ({e})"));
                cache.insert(pattern.to_owned(), compiled);
            }
            match cache.get(pattern) {
                Some(Ok(v)) => Ok(f(v)),
                Some(Err(e)) => Err(e.clone()),
                None => Err(format!("{pattern:?} could not be compiled")),
            }
        })
    }

    /// Check that `pattern` is a regular expression the validator accepts; the error is the
    /// validator's message.
    pub(crate) fn check_pattern(&self, pattern: &str) -> Result<(), String> {
        Self::with_pattern(pattern, |_| ())
    }

    /// Whether `text` matches `pattern` (unanchored, as JSON Schema's `pattern`), or `None` when
    /// the pattern does not compile (it was rejected at parse time, so this does not happen).
    pub(crate) fn matches(&self, pattern: &str, text: &str) -> Option<bool> {
        Self::with_pattern(pattern, |v| v.is_valid(&Value::String(text.to_owned()))).ok()
    }

    /// Whether `text` is valid in `format`: `Some(true)` or `Some(false)` when the validator
    /// knows the format, `None` when it does not (an unknown format constrains nothing a
    /// validator knows of, but the checker treats it as an opaque assertion).
    pub(crate) fn format_valid(&self, format: &str, text: &str) -> Option<bool> {
        FORMATS.with(|cell| {
            let mut cache = cell.borrow_mut();
            if !cache.contains_key(format) {
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
                let options = jsonschema::options()
                    .with_draft(Draft::Draft202012)
                    .should_validate_formats(true);
                let known = options.is_known_format(Draft::Draft202012, format);
                let compiled = options
                    .build(&json!({ "format": format }))
                    .ok()
                    .map(|v| (v, known));
                cache.insert(format.to_owned(), compiled);
            }
            match cache.get(format) {
                Some(Some((v, true))) => Some(v.is_valid(&Value::String(text.to_owned()))),
                _ => None,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_formats_follow_the_validator() {
        let o = Oracle;
        assert_eq!(o.matches("^S_", "S_name"), Some(true));
        assert_eq!(o.matches("^S_", "I_name"), Some(false));
        assert!(o.check_pattern("(").is_err());
        assert_eq!(o.format_valid("date", "2024-01-31"), Some(true));
        assert_eq!(o.format_valid("date", "yesterday"), Some(false));
        assert_eq!(o.format_valid("no-such-format", "x"), None);
    }
}
