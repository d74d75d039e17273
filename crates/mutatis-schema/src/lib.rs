//! # mutatis-schema
//!
//! The schema set of a mutatis app, loaded and checked: its one job is to turn the folder that
//! declares an app's data (types, their versions, the lenses between versions, the releases
//! clients announce, how each type is stored) into a [`SchemaSet`] that answers, without
//! further checks, everything the rest of mutatis asks of it:
//!
//! - the JSON Schema of every version ([`SchemaSet::schema`]), the lowest one written out, the
//!   others derived by applying each version's lens (and compared with a written-out copy);
//! - the compiled translation between any two versions of a type ([`SchemaSet::plan`]): the
//!   lenses on the shortest path of the [`VersionGraph`], composed, fused and cached;
//! - the releases and their policy ([`SchemaSet::resolve_release`] tells an unknown release from
//!   an unsupported one), the versions each type is served in and stored in;
//! - whether a document is valid in its version ([`SchemaSet::validate`], JSON Schema draft
//!   2020-12 with validators compiled once at load);
//! - the manifest, the set as one JSON document that a node publishes and a client or checker
//!   loads back ([`SchemaSet::manifest`], [`SchemaSet::from_manifest`]).
//!
//! Everything that can be checked is checked at load, so a broken lens is a message with a file
//! and a line ([`SchemaError`]), never a failed request. The folder format is documented in
//! `docs/schema-set.md` beside this crate.
//!
//! The crate is pure but for one thing: [`SchemaSet::load`] reads the folder. The loader itself
//! ([`SchemaSet::from_sources`]) takes the files' text, so it runs anywhere, including on text
//! that never touched a disk. No clock, no randomness, no network: values that depend on the
//! moment (a reference year) are translation parameters.
//!
//! ```
//! use std::path::PathBuf;
//! use mutatis_lens::Params;
//! use mutatis_schema::{ErrorKind, SchemaSet};
//! use serde_json::json;
//!
//! let files = vec![
//!     (PathBuf::from("mutatis.yaml"), r#"
//! name: todo-app
//! releases:
//!   - {name: "1", types: {todo: 1}, status: deprecated, sunset: 2027-03-01}
//!   - {name: "2", types: {todo: 2}, status: current}
//! storage:
//!   todo: {version: 2, strategy: eager}
//! "#.to_owned()),
//!     (PathBuf::from("types/todo.yaml"), r#"
//! type: todo
//! versions:
//!   1:
//!     schema:
//!       type: object
//!       properties: {title: {type: string}, done: {type: boolean}}
//!       required: [title, done]
//!   2:
//!     lens:
//!       - rename: {source: done, destination: finished}
//! "#.to_owned()),
//! ];
//! let set = SchemaSet::from_sources(files)?;
//!
//! // The derived schema of version 2 and a translation from version 1.
//! assert!(set.schema("todo", 2)?["properties"].get("finished").is_some());
//! let up = set.plan("todo", 1, 2)?;
//! let doc = up.translate(&json!({"title": "milk", "done": true}), &Params::new())?;
//! assert_eq!(doc, json!({"title": "milk", "finished": true}));
//! assert!(set.validate("todo", 2, &doc).is_ok());
//!
//! // A document that does not fit its version is told where.
//! let issues = set.validate("todo", 2, &json!({"title": 3, "finished": true})).unwrap_err();
//! assert_eq!(issues[0].pointer, "/title");
//!
//! // Releases and policy.
//! assert_eq!(set.default_release().name, "2");
//! assert_eq!(set.release_version("1", "todo")?, 1);
//! assert!(matches!(set.resolve_release("0").unwrap_err().kind(), ErrorKind::UnknownRelease { .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod changelog;
pub mod compat;
pub mod deploy;
mod diff;
mod error;
mod graph;
mod lifecycle;
mod load;
mod loss;
mod manifest;
mod parse;
mod release;
mod schema_nav;
mod set;
mod validate;

pub use changelog::{Changelog, ReleaseChanges, TypeChanges};
pub use diff::differences;
pub use error::{ErrorKind, Location, SchemaError};
pub use graph::{Edge, GraphError, Step, VersionGraph};
pub use lifecycle::{LifecycleWarning, WarningKind};
pub use loss::{lens_losses, LensAnalysis, Loss, LossKind, LossReport, LossStep};
pub use manifest::MANIFEST_VERSION;
pub use parse::{EXTENSIONS, SETTINGS_FILE, TYPES_DIR};
pub use release::{Release, ReleaseStatus, Storage, Strategy};
pub use set::{SchemaSet, TypeDef, UnnamedRelease, VersionDef};
pub use validate::{ValidationIssue, MAX_ISSUES};
