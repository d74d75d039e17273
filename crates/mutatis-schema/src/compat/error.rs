//! Errors of the compatibility checker: a schema that is not valid JSON Schema, a `$ref` that
//! cannot be resolved without fetching anything, a `$ref` cycle that never descends into the
//! instance, and an unknown compatibility mode. Each names the schema (old, new, or its place in
//! a chain) and the JSON pointer of the offending keyword, so a message is enough to fix it.

use std::fmt;

use thiserror::Error;

/// Which schema a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaSide {
    /// The old schema of a pair ([`super::check`]).
    Old,
    /// The new schema of a pair.
    New,
    /// The schema at this index (0 = oldest) of a chain ([`super::check_chain`]).
    Version(usize),
}

impl fmt::Display for SchemaSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaSide::Old => f.write_str("old schema"),
            SchemaSide::New => f.write_str("new schema"),
            SchemaSide::Version(i) => write!(f, "schema #{i} of the chain"),
        }
    }
}

/// The root pointer is the empty string, which reads badly in a sentence.
fn at(pointer: &str) -> &str {
    if pointer.is_empty() {
        "the root"
    } else {
        pointer
    }
}

/// Why two schemas could not be compared.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CompatError {
    /// A keyword has a value of the wrong kind (`required: 3`, `type: "strnig"`), a subschema is
    /// neither an object nor a boolean, a `pattern` is not a regular expression, and so on.
    #[error("{side} is not valid JSON Schema at {}: {reason}", at(.pointer))]
    InvalidSchema {
        /// The schema concerned.
        side: SchemaSide,
        /// JSON pointer of the offending keyword within that schema.
        pointer: String,
        /// What is wrong, quoting the offending value.
        reason: String,
    },
    /// `$schema` names a dialect this checker does not know (only drafts 4, 6, 7, 2019-09 and
    /// 2020-12 are known; meta-schemas are never fetched).
    #[error("{side} declares an unknown dialect {uri:?} at {}: expected draft-04, -06, -07, 2019-09 or 2020-12", at(.pointer))]
    UnknownDialect {
        /// The schema concerned.
        side: SchemaSide,
        /// JSON pointer of the `$schema` keyword.
        pointer: String,
        /// The `$schema` value.
        uri: String,
    },
    /// A `$ref` points at nothing within its own document. References are never fetched, so a
    /// remote reference is unresolvable too.
    #[error("{side}: the $ref {reference:?} at {} cannot be resolved: {reason} (references are never fetched)", at(.pointer))]
    UnresolvableRef {
        /// The schema concerned.
        side: SchemaSide,
        /// JSON pointer of the `$ref` keyword.
        pointer: String,
        /// The reference as written.
        reference: String,
        /// Why it does not resolve.
        reason: String,
    },
    /// A `$ref` leads back to the schema it is in without descending into the instance (through
    /// `allOf`, `anyOf`, `oneOf`, `not`, `if`/`then`/`else`, `dependentSchemas` or another `$ref`
    /// only), so validation would never terminate.
    #[error("{side}: the $ref {reference:?} at {} leads back to itself without descending into the instance", at(.pointer))]
    RefCycle {
        /// The schema concerned.
        side: SchemaSide,
        /// JSON pointer of a `$ref` keyword on the cycle.
        pointer: String,
        /// The reference as written.
        reference: String,
    },
    /// A compatibility mode name that is not one of `NONE`, `BACKWARD`, `FORWARD`, `FULL`,
    /// `BACKWARD_TRANSITIVE`, `FORWARD_TRANSITIVE`, `FULL_TRANSITIVE`.
    #[error("unknown compatibility mode {mode:?}: expected one of NONE, BACKWARD, FORWARD, FULL, BACKWARD_TRANSITIVE, FORWARD_TRANSITIVE, FULL_TRANSITIVE")]
    UnknownMode {
        /// The name as given.
        mode: String,
    },
}

impl CompatError {
    /// The schema the error is about, if it is about one.
    pub fn side(&self) -> Option<SchemaSide> {
        match self {
            CompatError::InvalidSchema { side, .. }
            | CompatError::UnknownDialect { side, .. }
            | CompatError::UnresolvableRef { side, .. }
            | CompatError::RefCycle { side, .. } => Some(*side),
            CompatError::UnknownMode { .. } => None,
        }
    }

    /// The JSON pointer within the schema, if the error is about one.
    pub fn pointer(&self) -> Option<&str> {
        match self {
            CompatError::InvalidSchema { pointer, .. }
            | CompatError::UnknownDialect { pointer, .. }
            | CompatError::UnresolvableRef { pointer, .. }
            | CompatError::RefCycle { pointer, .. } => Some(pointer),
            CompatError::UnknownMode { .. } => None,
        }
    }
}
