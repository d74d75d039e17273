//! The one error type of the lens engine.
//!
//! Every variant says *where*: `op` is a JSON pointer into the lens (`/2/lens/0` is the first op
//! nested in the third op), `at` is a JSON pointer into the document, schema or patch being
//! translated. The schema-set layer wraps these with the type and versions.

use thiserror::Error;

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
    /// Prefix every lens pointer in this error with `prefix` (used when a lens is nested or
    /// when ops of several lenses are composed into one plan).
    #[must_use]
    pub fn within_op(mut self, prefix: &str) -> Self {
        match &mut self {
            LensError::UnknownOp { op, .. }
            | LensError::InvalidOp { op, .. }
            | LensError::Irreversible { op, .. }
            | LensError::UnknownTransform { op, .. }
            | LensError::SchemaMismatch { op, .. }
            | LensError::TypeMismatch { op, .. }
            | LensError::NoMapping { op, .. }
            | LensError::ExpressionParse { op, .. }
            | LensError::Expression { op, .. }
            | LensError::Transform { op, .. }
            | LensError::Untranslatable { op, .. } => op.insert_str(0, prefix),
            LensError::AtLine { source, .. } => {
                let inner = std::mem::replace(
                    source.as_mut(),
                    LensError::InvalidInput {
                        at: String::new(),
                        reason: String::new(),
                    },
                );
                **source = inner.within_op(prefix);
            }
            LensError::Syntax { .. } | LensError::InvalidInput { .. } => {}
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
