//! The one error type of schema sets.
//!
//! A schema set is written by hand, so every error says where to look: the file and line, the
//! type and version it concerns, and the JSON pointer of the offending node within the file (or
//! within the manifest). Which of those are known depends on the error: a missing `mutatis.yaml`
//! has no line, an unknown release name has no file.

use std::fmt;
use std::path::{Path, PathBuf};

use mutatis_lens::LensError;
use thiserror::Error;

/// Where an error was found. Every part is optional; [`fmt::Display`] prints the known ones as
/// `file:line:column: type@version (at /pointer): `.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The file, relative to the schema-set folder when it came from [`crate::SchemaSet::from_sources`],
    /// or joined onto the folder when it came from [`crate::SchemaSet::load`].
    pub file: Option<PathBuf>,
    /// 1-based line within `file`.
    pub line: Option<usize>,
    /// 1-based column within `file`.
    pub column: Option<usize>,
    /// The type the error concerns.
    pub type_name: Option<String>,
    /// The version of `type_name` the error concerns.
    pub version: Option<u32>,
    /// A JSON pointer to the offending node of the file (or manifest).
    pub pointer: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
                if let Some(column) = self.column {
                    write!(f, ":{column}")?;
                }
            }
            f.write_str(": ")?;
        } else if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        match (&self.type_name, self.version) {
            (Some(t), Some(v)) => write!(f, "{t}@{v}")?,
            (Some(t), None) => write!(f, "{t}")?,
            (None, Some(v)) => write!(f, "version {v}")?,
            (None, None) => {}
        }
        let named = self.type_name.is_some() || self.version.is_some();
        match &self.pointer {
            // The root pointer adds nothing to a file name.
            Some(p) if !p.is_empty() => {
                if named {
                    f.write_str(" ")?;
                }
                write!(f, "(at {p}): ")?;
            }
            _ if named => f.write_str(": ")?,
            _ => {}
        }
        Ok(())
    }
}

/// An error in a schema set (or in a request against one), with where it was found.
///
/// Boxed inside, so that `Result<_, SchemaError>` stays one pointer wide on the happy path.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{}{}", .0.location, .0.kind)]
pub struct SchemaError(Box<Inner>);

#[derive(Debug, Clone, PartialEq)]
struct Inner {
    location: Location,
    kind: ErrorKind,
}

impl SchemaError {
    /// An error of this kind, with no location yet.
    pub fn new(kind: ErrorKind) -> Self {
        SchemaError(Box::new(Inner {
            location: Location::default(),
            kind,
        }))
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// Where it went wrong.
    pub fn location(&self) -> &Location {
        &self.0.location
    }

    /// The file the error was found in.
    pub fn file(&self) -> Option<&Path> {
        self.0.location.file.as_deref()
    }

    /// The 1-based line within [`SchemaError::file`].
    pub fn line(&self) -> Option<usize> {
        self.0.location.line
    }

    /// The type the error concerns.
    pub fn type_name(&self) -> Option<&str> {
        self.0.location.type_name.as_deref()
    }

    /// The version the error concerns.
    pub fn version(&self) -> Option<u32> {
        self.0.location.version
    }

    /// The JSON pointer of the offending node within the file or manifest.
    pub fn pointer(&self) -> Option<&str> {
        self.0.location.pointer.as_deref()
    }

    /// Set the file (and keep the rest).
    #[must_use]
    pub fn in_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.0.location.file = Some(file.into());
        self
    }

    /// Set the line and column.
    #[must_use]
    pub fn at_line(mut self, line: usize, column: usize) -> Self {
        self.0.location.line = Some(line);
        self.0.location.column = Some(column);
        self
    }

    /// Set the type.
    #[must_use]
    pub fn for_type(mut self, type_name: impl Into<String>) -> Self {
        self.0.location.type_name = Some(type_name.into());
        self
    }

    /// Set the version.
    #[must_use]
    pub fn for_version(mut self, version: u32) -> Self {
        self.0.location.version = Some(version);
        self
    }

    /// Set the JSON pointer.
    #[must_use]
    pub fn at_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.0.location.pointer = Some(pointer.into());
        self
    }

    /// Replace the file with `base.join(file)` (used by [`crate::SchemaSet::load`] so that
    /// errors name paths a person can open).
    #[must_use]
    pub(crate) fn under(mut self, base: &Path) -> Self {
        if let Some(file) = self.0.location.file.take() {
            self.0.location.file = Some(base.join(file));
        }
        self
    }
}

/// What went wrong. The location is in the enclosing [`SchemaError`].
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The schema-set folder (or one of its files) could not be read.
    #[error("cannot read: {reason}")]
    Io { reason: String },
    /// A file that is not valid YAML (or JSON). The line and column are in the location.
    #[error("malformed YAML: {message}")]
    Yaml { message: String },
    /// A lens that does not parse or does not compile (unknown op, bad arguments, an op with no
    /// reverse, an unregistered transform, an expression that does not parse).
    #[error("invalid lens: {0}")]
    Lens(#[source] LensError),
    /// A lens that does not fit the schema of the version it starts from.
    #[error("the lens does not fit the schema of version {from}: {source}")]
    LensMismatch {
        from: u32,
        #[source]
        source: LensError,
    },
    /// A value of the wrong shape (a list where a map belongs, a number where a name belongs…).
    #[error("{0}")]
    Shape(String),
    /// A key the format does not know: a typo must not be silently ignored.
    #[error("unknown key `{key}`; expected one of: {expected}")]
    UnknownKey { key: String, expected: String },
    /// A key the format requires.
    #[error("missing `{key}`")]
    MissingKey { key: &'static str },
    /// A required file that is not there.
    #[error("missing file `{file}`: {reason}")]
    MissingFile { file: String, reason: String },
    /// Two type files that declare the same type.
    #[error("type `{name}` is declared twice (also in {other})")]
    DuplicateType { name: String, other: String },
    /// A type name the schema set does not declare.
    #[error("unknown type `{name}`; known types: {known}")]
    UnknownType { name: String, known: String },
    /// A version that the type does not have.
    #[error("{type_name} has no version {version}; it has {known}")]
    UnknownVersion {
        type_name: String,
        version: u32,
        known: String,
    },
    /// A version key that is not a positive integer.
    #[error("a version is a positive integer, found `{found}`")]
    BadVersion { found: String },
    /// A type file with no versions.
    #[error("a type needs at least one version")]
    NoVersions,
    /// The lowest version of a type must be written out as a schema; it has nothing to derive from.
    #[error(
        "version {version} is the lowest, so it needs a `schema` (and takes no `lens` or `from`)"
    )]
    RootNeedsSchema { version: u32 },
    /// A version above the lowest one must say how it is reached.
    #[error("version {version} needs a `lens` (or a `lensFile`) from version {from}")]
    MissingLens { version: u32, from: u32 },
    /// `from` pointing at the version itself or at a version the type lacks.
    #[error("`from: {from}` names no other version of {type_name}; it has {known}")]
    BadFrom {
        type_name: String,
        from: u32,
        known: String,
    },
    /// Versions whose `from` links go round in a circle, so none of them reaches the lowest
    /// version (whose schema everything is derived from).
    #[error("versions form a cycle through `from`: {cycle}")]
    Cycle { cycle: String },
    /// A schema written out that is not what the lens derives from the previous version.
    #[error("the written schema differs from the one the lens derives, at {}", .pointers.join(", "))]
    SchemaDiffers { pointers: Vec<String> },
    /// A JSON Schema that the validator cannot compile.
    #[error("invalid JSON Schema: {reason}")]
    InvalidSchema { reason: String },
    /// Two releases with the same name.
    #[error("release `{name}` is declared twice")]
    DuplicateRelease { name: String },
    /// Not exactly one release is `current`.
    #[error("exactly one release must be `current`, found {count}")]
    CurrentCount { count: usize },
    /// A sunset that is not a date, or on a release that is not deprecated.
    #[error("invalid sunset: {reason}")]
    Sunset { reason: String },
    /// A release name that the schema set does not declare.
    #[error("unknown release `{name}`; known releases: {known}")]
    UnknownRelease { name: String, known: String },
    /// A release that exists but is no longer served.
    #[error("release `{name}` is unsupported; the oldest supported release is {}", .oldest_supported.as_deref().unwrap_or("(none)"))]
    UnsupportedRelease {
        name: String,
        oldest_supported: Option<String>,
    },
    /// A release that does not name the type asked about.
    #[error("release `{release}` does not include type `{type_name}`")]
    TypeNotInRelease { release: String, type_name: String },
    /// No path of lenses between two versions (only possible in a hand-built graph).
    #[error("no lens path from version {from} to version {to}")]
    NoPath { from: String, to: String },
    /// Two lenses registered on the same pair of versions.
    #[error("a lens between {from} and {to} is already registered")]
    DuplicateEdge { from: String, to: String },
    /// A manifest of a format this crate does not read.
    #[error("unsupported manifest format {found}; this reader knows format {known}")]
    ManifestFormat { found: String, known: u64 },
    /// A manifest from a newer mutatis (a higher `mutatisManifest`) with fields this reader
    /// does not know, each as (JSON pointer, key). Reading on would silently drop what they say.
    #[error(
        "the manifest is format {found}, written by a newer mutatis (this one reads format {known}), and has fields this one does not know: {}",
        unknown_fields(.fields)
    )]
    NewerManifest {
        found: u64,
        known: u64,
        fields: Vec<(String, String)>,
    },
}

fn unknown_fields(fields: &[(String, String)]) -> String {
    let named: Vec<String> = fields
        .iter()
        .map(|(pointer, key)| format!("`{key}` at {pointer}"))
        .collect();
    named.join(", ")
}
