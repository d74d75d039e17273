//! A lens: the ordered ops that carry one version of a document to the next.

use serde_json::Value;

use crate::error::LensError;
use crate::op::{lens_from_json, lens_to_json, LensOp};
use crate::yaml::{parse_yaml, SourceMap};

/// An ordered list of ops, as declared. Compile it into a [`crate::Plan`] to run it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lens {
    ops: Vec<LensOp>,
}

impl Lens {
    /// A lens of these ops.
    pub fn new(ops: Vec<LensOp>) -> Self {
        Lens { ops }
    }

    /// The ops, in order.
    pub fn ops(&self) -> &[LensOp] {
        &self.ops
    }

    /// Whether the lens changes nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Parse a list of ops (`[{rename: …}, …]`). `at` prefixes op pointers in errors.
    pub fn from_ops_json(value: &Value, at: &str) -> Result<Lens, LensError> {
        lens_from_json(value, at).map(Lens::new)
    }

    /// Parse a lens file's content: a bare list of ops, `{lens: [...]}`, or Cambria's
    /// `{schemaName: …, lens: [...]}`.
    pub fn from_file_json(value: &Value) -> Result<Lens, LensError> {
        match value {
            Value::Array(_) => Lens::from_ops_json(value, ""),
            Value::Object(map) => {
                for key in map.keys() {
                    if !matches!(
                        key.as_str(),
                        "lens" | "schemaName" | "description" | "from" | "to"
                    ) {
                        return Err(LensError::InvalidInput {
                            at: crate::pointer::push("", key),
                            reason: format!(
                                "unknown key `{key}` in a lens file; expected `lens` (and optionally `schemaName`)"
                            ),
                        });
                    }
                }
                match map.get("lens") {
                    Some(ops) => Lens::from_ops_json(ops, "/lens"),
                    None => Err(LensError::InvalidInput {
                        at: String::new(),
                        reason: "a lens file needs a `lens` list of ops".into(),
                    }),
                }
            }
            other => Err(LensError::InvalidInput {
                at: String::new(),
                reason: format!(
                    "a lens file is a list of ops or a map with `lens`, found {}",
                    crate::error::type_name(other)
                ),
            }),
        }
    }

    /// Parse a lens file (YAML or JSON). Errors carry the line of the offending op.
    pub fn from_file_str(text: &str) -> Result<Lens, LensError> {
        let (value, map) = parse_yaml(text)?;
        Lens::from_file_json(&value).map_err(|e| at_line(e, &map))
    }

    /// The lens in canonical JSON form (a list of `{op: {args}}` maps).
    pub fn to_json(&self) -> Value {
        lens_to_json(&self.ops)
    }
}

/// Attach the line of the error's op (or input pointer) from a parsed file's source map.
pub fn at_line(err: LensError, map: &SourceMap) -> LensError {
    let pointer = match &err {
        // Already located.
        LensError::AtLine { .. } => return err,
        LensError::InvalidInput { at, .. } => at.clone(),
        other => match other.op() {
            Some(op) => op.to_owned(),
            None => return err,
        },
    };
    match map.locate(&pointer) {
        Some((line, column)) => LensError::AtLine {
            line,
            column,
            source: Box::new(err),
        },
        None => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cambria_files() {
        let lens = Lens::from_file_str(
            "schemaName: Project\nlens:\n  - rename:\n      source: title\n      destination: name\n  - add: {name: done, type: boolean}\n",
        )
        .unwrap();
        assert_eq!(lens.ops().len(), 2);
        assert_eq!(
            Lens::from_file_json(&serde_json::json!({"lens": lens.to_json()})).unwrap(),
            lens
        );
    }

    #[test]
    fn unknown_op_error_names_the_line() {
        let err = Lens::from_file_str(
            "lens:\n  - rename: {source: a, destination: b}\n  - frobnicate: {name: x}\n",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("frobnicate"), "{msg}");
    }
}
