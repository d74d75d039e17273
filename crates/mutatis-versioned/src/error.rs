//! [`VersionedError`]: what went wrong moving a typed value between versions, and where.

use mutatis_lens::LensError;
use mutatis_schema::{SchemaError, ValidationIssue};
use thiserror::Error;

/// Why a typed value could not be moved to, or read as, a version.
///
/// Every variant names the type and the version(s) involved and, where a value failed, the
/// place: a JSON pointer (`pointer`) for lens and validation failures, the serde path (`path`,
/// `.name.first` / `[2]`) for (de)serialisation failures.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum VersionedError {
    /// `migrate_to::<U>` where `U` is a version of another type.
    #[error(
        "cannot migrate {from_type}@{from} to {to_type}@{to}: they are versions of different types"
    )]
    TypeMismatch {
        from_type: &'static str,
        from: u32,
        to_type: &'static str,
        to: u32,
    },
    /// The schema set has no such type, version or path between the versions.
    #[error("{type_name}@{version} in the schema set: {source}")]
    Schema {
        type_name: String,
        version: u32,
        #[source]
        source: SchemaError,
    },
    /// The value did not serialise to JSON (a map with non-string keys, a failing `Serialize`).
    #[error("{type_name}@{version}: serialising failed at {path}: {message}")]
    Serialize {
        type_name: String,
        version: u32,
        path: String,
        message: String,
    },
    /// The lens translation failed (an expression, a conversion without a mapping…).
    #[error("{type_name}@{from} to @{to}: the lens failed at {pointer}: {source}")]
    Lens {
        type_name: String,
        from: u32,
        to: u32,
        /// JSON pointer in the document being translated (`""` when the lens names none).
        pointer: String,
        #[source]
        source: Box<LensError>,
    },
    /// A document is not valid in a version: a translated one in its target version, or the
    /// JSON a struct serialised to in its own version (the struct drifted from its schema).
    #[error("{type_name}@{version}: not valid at {pointer}: {}", describe(issues))]
    Invalid {
        type_name: String,
        version: u32,
        /// Pointer of the first issue (`""` is the whole document).
        pointer: String,
        issues: Vec<ValidationIssue>,
    },
    /// A valid document of the version did not deserialise into the struct.
    #[error("{type_name}@{version}: deserialising into {rust_type} failed at {path}: {message}")]
    Deserialize {
        type_name: String,
        version: u32,
        rust_type: &'static str,
        /// Serde path of the failing value (`.` is the whole document).
        path: String,
        message: String,
    },
}

impl VersionedError {
    /// The JSON pointer of what failed, for lens and validation errors.
    pub fn pointer(&self) -> Option<&str> {
        match self {
            VersionedError::Lens { pointer, .. } | VersionedError::Invalid { pointer, .. } => {
                Some(pointer)
            }
            _ => None,
        }
    }

    /// The serde path of what failed, for (de)serialisation errors.
    pub fn serde_path(&self) -> Option<&str> {
        match self {
            VersionedError::Serialize { path, .. } | VersionedError::Deserialize { path, .. } => {
                Some(path)
            }
            _ => None,
        }
    }
}

fn describe(issues: &[ValidationIssue]) -> String {
    let parts: Vec<String> = issues.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

/// The document pointer a lens error names, if any.
pub(crate) fn lens_pointer(e: &LensError) -> String {
    match e {
        LensError::SchemaMismatch { at, .. }
        | LensError::TypeMismatch { at, .. }
        | LensError::NoMapping { at, .. }
        | LensError::Expression { at, .. }
        | LensError::Transform { at, .. }
        | LensError::Untranslatable { at, .. }
        | LensError::InvalidInput { at, .. } => at.clone(),
        _ => String::new(),
    }
}
