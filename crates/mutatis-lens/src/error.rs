//! The one error type of the lens engine.
//!
//! Every variant says *where*: `op` is a JSON pointer into the lens (`/2/lens/0` is the first op
//! nested in the third op), `at` is a JSON pointer into the document, schema or patch being
//! translated. The schema-set layer wraps these with the type and versions.

use thiserror::Error;

/// `with_op!(error, op => expr, otherwise)`: `expr` with `op` bound to the op pointer of an
/// error that names one, else `otherwise`. The one list of op-bearing variants, for shared and
/// mutable access alike, so that no accessor can forget a variant.
macro_rules! with_op {
    ($e:expr, $op:ident => $some:expr, $none:expr) => {
        match $e {
            LensError::UnknownOp { op: $op, .. }
            | LensError::InvalidOp { op: $op, .. }
            | LensError::Irreversible { op: $op, .. }
            | LensError::UnknownTransform { op: $op, .. }
            | LensError::SchemaMismatch { op: $op, .. }
            | LensError::TypeMismatch { op: $op, .. }
            | LensError::NoMapping { op: $op, .. }
            | LensError::ExpressionParse { op: $op, .. }
            | LensError::Expression { op: $op, .. }
            | LensError::Transform { op: $op, .. }
            | LensError::Untranslatable { op: $op, .. } => $some,
            LensError::Syntax { .. }
            | LensError::TooLarge { .. }
            | LensError::InvalidInput { .. }
            | LensError::AtLine { .. } => $none,
        }
    };
}

/// What went wrong while parsing, compiling or applying a lens.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum LensError {
    /// Lens text that is not valid YAML or JSON (line and column are 1-based).
    #[error("malformed lens file{}: {message}", location(*.line, *.column))]
    Syntax {
        message: String,
        line: Option<usize>,
        column: Option<usize>,
    },
    /// YAML text that would grow past what the reader allows: aliases that expand to more
    /// than the text's budget, or nesting too deep (see [`crate::yaml`]). Refused before it
    /// costs the memory or the stack.
    #[error("YAML text too large to read at line {line} column {column}: {reason}")]
    TooLarge {
        reason: String,
        line: usize,
        column: usize,
    },
    /// An op name that the engine does not know.
    #[error("unknown lens op `{name}` at {op}; expected one of: {expected}")]
    UnknownOp {
        name: String,
        op: String,
        expected: &'static str,
    },
    /// An op whose arguments are missing or of the wrong shape.
    #[error("invalid `{name}` op at {op}: {reason}")]
    InvalidOp {
        name: String,
        op: String,
        reason: String,
    },
    /// An op that has no derivable reverse (a `remove` without a type, a one-way expression).
    #[error("`{name}` op at {op} cannot be reversed: {reason}")]
    Irreversible {
        name: String,
        op: String,
        reason: String,
    },
    /// A `transform` op naming a transform that the embedding program did not register.
    #[error("`transform` op at {op} names `{transform}`, which is not registered")]
    UnknownTransform { transform: String, op: String },
    /// The lens does not fit the schema it is applied to (renaming a field that doesn't exist…).
    #[error("lens op at {op} does not fit the schema at {at}: {reason}")]
    SchemaMismatch {
        op: String,
        at: String,
        reason: String,
    },
    /// A value of the wrong JSON type where an op needs a particular one.
    #[error("lens op at {op} expected {expected} at {at}, found {found}")]
    TypeMismatch {
        op: String,
        at: String,
        expected: &'static str,
        found: &'static str,
    },
    /// A value that a `convert` table does not map, and no default was given.
    #[error("lens op at {op}: value {value} at {at} has no mapping and no default")]
    NoMapping {
        op: String,
        at: String,
        value: String,
    },
    /// A CEL expression that does not parse.
    #[error("lens op at {op}: expression `{expr}` does not parse: {reason}")]
    ExpressionParse {
        op: String,
        expr: String,
        reason: String,
    },
    /// A CEL expression that failed to evaluate (or gave a value JSON cannot hold).
    #[error("lens op at {op}: expression `{expr}` failed at {at}: {reason}")]
    Expression {
        op: String,
        at: String,
        expr: String,
        reason: String,
    },
    /// A registered transform that rejected a value.
    #[error("lens op at {op}: transform `{transform}` failed at {at}: {reason}")]
    Transform {
        op: String,
        at: String,
        transform: String,
        reason: String,
    },
    /// A valid JSON Patch operation that the lens cannot carry to the other version without
    /// knowing the document it applies to (a write to one part of a `join`, a `move` between
    /// places the lens translates differently…). Write the affected fields whole instead.
    #[error("lens op at {op} cannot translate the patch operation at {at}: {reason}")]
    Untranslatable {
        op: String,
        at: String,
        reason: String,
    },
    /// Another error, located at a line of the file it came from.
    #[error("line {line} column {column}: {source}")]
    AtLine {
        line: usize,
        column: usize,
        source: Box<LensError>,
    },
    /// A document or patch that is not valid JSON, or not of the shape translation needs.
    #[error("invalid input at {at}: {reason}")]
    InvalidInput { at: String, reason: String },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l} column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

impl LensError {
    /// The pointer of the op this error is about (into its lens, prefixed by the lens's label
    /// in a composed plan), looking through [`LensError::AtLine`]; `None` for errors about the
    /// input itself.
    pub fn op(&self) -> Option<&str> {
        match self {
            LensError::AtLine { source, .. } => source.op(),
            other => with_op!(other, op => Some(op.as_str()), None),
        }
    }

    /// Prefix every lens pointer in this error with `prefix` (used when a lens is nested or
    /// when ops of several lenses are composed into one plan).
    #[must_use]
    pub fn within_op(mut self, prefix: &str) -> Self {
        if let LensError::AtLine { source, .. } = &mut self {
            let inner = std::mem::replace(
                source.as_mut(),
                LensError::InvalidInput {
                    at: String::new(),
                    reason: String::new(),
                },
            );
            **source = inner.within_op(prefix);
        } else {
            with_op!(&mut self, op => op.insert_str(0, prefix), ());
        }
        self
    }
}

/// The JSON type name of a value, for error messages.
pub(crate) fn type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_pointer_is_found_and_prefixed_through_at_line() {
        let e = LensError::Untranslatable {
            op: "/0".into(),
            at: "/x".into(),
            reason: "r".into(),
        };
        assert_eq!(e.op(), Some("/0"));
        let located = LensError::AtLine {
            line: 3,
            column: 1,
            source: Box::new(e),
        };
        let prefixed = located.within_op("todo@2");
        assert_eq!(prefixed.op(), Some("todo@2/0"));
        assert!(matches!(prefixed, LensError::AtLine { line: 3, .. }));
        let input = LensError::InvalidInput {
            at: "/a".into(),
            reason: "r".into(),
        };
        assert_eq!(input.op(), None);
        assert_eq!(input.within_op("p").op(), None);
    }
}
