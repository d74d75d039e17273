//! Documents checked against a version's JSON Schema (draft 2020-12), with the `jsonschema`
//! crate. Validators are compiled once, when the schema set is loaded; nothing is fetched: the
//! crate is built without its network and file resolvers, so a `$ref` to anything outside the
//! schema itself is a load error, not a request.

use std::fmt;

use jsonschema::{Draft, Validator};
use serde_json::Value;

/// At most this many issues are reported for one document: enough to fix it, and a bound on
/// the work a hostile document can cause.
pub const MAX_ISSUES: usize = 100;

/// One way a document fails its version's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationIssue {
    /// JSON pointer to the offending value in the document (`""` is the whole document).
    pub pointer: String,
    /// JSON pointer to the schema keyword that failed (`/properties/done/type`).
    pub schema_pointer: String,
    /// What is wrong, without repeating the (possibly large) offending value.
    pub message: String,
}

impl fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() {
            "the document"
        } else {
            &self.pointer
        };
        write!(f, "at {at}: {}", self.message)
    }
}

impl std::error::Error for ValidationIssue {}

/// Compile `schema` as draft 2020-12. The error names the pointer within the schema (if the
/// validator gave one) and the reason, which quotes the offending schema fragment: it is the
/// author's own text, and the most useful part of the message.
pub(crate) fn compile(schema: &Value) -> Result<Validator, (String, String)> {
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .build(schema)
        .map_err(|e| (e.instance_path().as_str().to_owned(), e.to_string()))
}

/// Every issue (up to [`MAX_ISSUES`]) of `doc` under `validator`.
pub(crate) fn issues(validator: &Validator, doc: &Value) -> Vec<ValidationIssue> {
    // Nearly every document is valid: `is_valid` short-circuits without building errors and
    // is several times cheaper than an empty `iter_errors` (measured on the migration path).
    if validator.is_valid(doc) {
        return Vec::new();
    }
    validator
        .iter_errors(doc)
        .take(MAX_ISSUES)
        .map(|e| ValidationIssue {
            pointer: e.instance_path().as_str().to_owned(),
            schema_pointer: e.schema_path().as_str().to_owned(),
            message: e.masked().to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn issues_name_the_pointer() {
        let v = compile(
            &json!({"type": "object", "properties": {"a": {"type": "array",
                 "items": {"type": "string"}}}}),
        )
        .unwrap();
        let found = issues(&v, &json!({"a": ["x", 2]}));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].pointer, "/a/1");
        assert_eq!(found[0].schema_pointer, "/properties/a/items/type");
        assert!(found[0].message.contains("string"), "{}", found[0].message);
        assert!(issues(&v, &json!({"a": ["x"]})).is_empty());
    }

    #[test]
    fn remote_refs_are_not_fetched() {
        let err = compile(&json!({"$ref": "https://example.invalid/schema.json"})).unwrap_err();
        assert!(!err.1.is_empty());
    }

    #[test]
    fn schemas_naming_an_older_draft_compile_without_fetching() {
        // Cambria's schemas name draft-07; the known meta-schemas ship with the validator.
        let v = compile(&json!({"$schema": "http://json-schema.org/draft-07/schema",
                                "type": "object", "required": ["a"]}))
        .unwrap();
        assert_eq!(issues(&v, &json!({})).len(), 1);
    }

    #[test]
    fn invalid_schemas_are_refused() {
        let err = compile(&json!({"properties": {"a": {"type": "strnig"}}})).unwrap_err();
        assert_eq!(err.0, "/properties/a/type");
        assert!(err.1.contains("strnig"), "{err:?}");
    }
}
