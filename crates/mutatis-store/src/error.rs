//! The one error type of the store.
//!
//! Every variant names what it concerns (type, version, document id, file) so that a server can
//! map it to a status code and a CLI can print it as is, without context from the caller.

use std::path::PathBuf;

use mutatis_lens::LensError;
use mutatis_schema::{SchemaError, ValidationIssue};
use thiserror::Error;

/// Something the store refused or could not do.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The type, or a version of it, is not in the schema set.
    #[error("{0}")]
    Schema(#[from] SchemaError),

    /// A request named a version the type does not have.
    #[error("{type_name}@{version}: unknown version (the type has versions {known})")]
    UnknownVersion {
        /// The type.
        type_name: String,
        /// The version asked for.
        version: u32,
        /// The versions the type has, for the message.
        known: String,
    },

    /// A document id that cannot be stored.
    #[error("{type_name}: invalid document id {id:?}: {reason}")]
    InvalidId {
        /// The type.
        type_name: String,
        /// The id as given.
        id: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// A written body fails its version's schema.
    #[error("{type_name}@{version} document {id:?} fails its schema: {}", issues_text(.issues))]
    Invalid {
        /// The type.
        type_name: String,
        /// The version the body was written in.
        version: u32,
        /// The document id.
        id: String,
        /// Where and why (JSON pointers into the body).
        issues: Vec<ValidationIssue>,
    },

    /// Optimistic concurrency: the stored rev is not the one the writer expected.
    #[error(
        "{type_name} document {id:?}: rev conflict: expected {}, found {}",
        .expected.as_deref().unwrap_or("no document"),
        .actual.as_deref().unwrap_or("no document")
    )]
    Conflict {
        /// The type.
        type_name: String,
        /// The document id.
        id: String,
        /// The rev the writer sent (`None`: it expected to create the document).
        expected: Option<String>,
        /// The rev stored (`None`: there is no live document).
        actual: Option<String>,
    },

    /// A rev that is not `N-hash`.
    #[error("invalid rev {rev:?}: {reason}")]
    InvalidRev {
        /// The rev as given.
        rev: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A lens failed on a document.
    #[error("{type_name} document {id:?}: cannot translate from version {from} to {to}: {source}")]
    Translate {
        /// The type.
        type_name: String,
        /// The document id.
        id: String,
        /// The version translated from.
        from: u32,
        /// The version translated to.
        to: u32,
        /// The lens error (it names the op and the pointer); boxed, as it is large and rare.
        source: Box<LensError>,
    },

    /// A migration is already in flight for this type.
    #[error("{type_name}: a migration from version {from} to {to} is already in flight")]
    MigrationInFlight {
        /// The type.
        type_name: String,
        /// Its source version.
        from: u32,
        /// Its target version.
        to: u32,
    },

    /// An operation that needs a migration in flight found none.
    #[error("{type_name}: no migration in flight")]
    NoMigration {
        /// The type.
        type_name: String,
    },

    /// The type is already stored in the version a migration was asked for.
    #[error("{type_name} is already stored in version {version}")]
    AlreadyAtVersion {
        /// The type.
        type_name: String,
        /// Its storage version.
        version: u32,
    },

    /// Rollback or drop of a backup that does not exist.
    #[error("{type_name}: no backup is kept (it was dropped, or no migration switched yet)")]
    NoBackup {
        /// The type.
        type_name: String,
    },

    /// The schema set declares a storage the store cannot move to without dropping data or
    /// interrupting work in flight: the reason names the way out.
    #[error("{type_name}: mutatis.yaml declares storage version {declared}, the store holds version {stored}: {reason}")]
    StorageMismatch {
        /// The type.
        type_name: String,
        /// The declared storage version.
        declared: u32,
        /// The storage version of the stored data.
        stored: u32,
        /// Why it cannot be acted on, and what to do.
        reason: String,
    },

    /// A new migration would replace the backup of the last one; roll back or drop it first.
    #[error("{type_name}: the backup in version {version} is still kept; roll back or drop it before migrating again")]
    BackupKept {
        /// The type.
        type_name: String,
        /// The backup's version.
        version: u32,
    },

    /// A migration stopped on a document it could not translate (run it with quarantine to
    /// set such documents aside instead).
    #[error(
        "{type_name}: migration from version {from} to {to} stopped at document {id:?}: {reason}"
    )]
    MigrationStopped {
        /// The type.
        type_name: String,
        /// Source version of the document.
        from: u32,
        /// Target version.
        to: u32,
        /// The document.
        id: String,
        /// Why it could not be translated (lens or schema error, with pointers).
        reason: String,
    },

    /// A stored value could not be decoded: the file was written by something else, or damaged.
    #[error("corrupt stored {what} at {key}: {reason}")]
    Corrupt {
        /// What kind of value (`document`, `change`, `type state`, …).
        what: &'static str,
        /// Its key, for the message.
        key: String,
        /// The decoder's reason.
        reason: String,
    },

    /// The data file is not a mutatis store (or is damaged); it was left as it is.
    #[error("{}: not a usable mutatis store (the file was left untouched): {reason}", .path.display())]
    NotAStore {
        /// The file.
        path: PathBuf,
        /// What the backend said.
        reason: String,
    },

    /// Opening an existing store was asked for, and there is none (a redb file that does not
    /// exist, a PostgreSQL schema without the store's tables); nothing was created.
    #[error("{location}: there is no mutatis store here (nothing was created)")]
    NoStore {
        /// The file, or the PostgreSQL schema.
        location: String,
    },

    /// Every connection of the backend's pool stayed busy for as long as a transaction may
    /// wait for one (or none could be opened in that time): the store is overloaded or
    /// unreachable, and the request can be retried.
    #[error("{backend} backend: no free connection of the {size} in the pool within {waited_ms} ms: {reason}")]
    Busy {
        /// `postgres`, …
        backend: &'static str,
        /// The pool's size.
        size: u32,
        /// How long the transaction waited.
        waited_ms: u64,
        /// What the pool said (the last connection error, if any).
        reason: String,
    },

    /// The storage backend failed (I/O, locking, a full disk, …).
    #[error("{backend} backend: {operation}: {reason}")]
    Backend {
        /// `redb`, `postgres`, …
        backend: &'static str,
        /// What the store was doing.
        operation: &'static str,
        /// What the backend said.
        reason: String,
    },
}

fn issues_text(issues: &[ValidationIssue]) -> String {
    let mut out = String::new();
    for (i, issue) in issues.iter().take(5).enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&issue.to_string());
    }
    if issues.len() > 5 {
        out.push_str(&format!("; and {} more", issues.len() - 5));
    }
    out
}
