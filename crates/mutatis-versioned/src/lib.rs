//! Typed versions: a serde struct bound to `Type@version` of a schema set.
//!
//! A team's own Rust code names each version of a type as its own struct; the schema set's
//! lenses move a value between them ([`Versioned::migrate_to`], or [`Versioned::migrate_onto`]
//! to keep what the target held that the source cannot express), and any version's JSON is
//! accepted and brought to the one a caller works with ([`Versioned::from_any`]).
//!
//! Whether a struct still matches its version is checked, not trusted: [`check`] compares the
//! struct's own JSON Schema (from `schemars`) with the version's, both ways, and lists every
//! drifted field; [`assert_matches`] is the test helper.
//!
//! The crate is pure: no I/O, no clock. It depends on `mutatis-schema` and `mutatis-lens` only
//! (and serde, schemars); the caller loads the [`SchemaSet`] and passes the lens [`Params`].
//!
//! ```
//! use std::path::PathBuf;
//! use mutatis_lens::Params;
//! use mutatis_schema::SchemaSet;
//! use mutatis_versioned::{schemars::JsonSchema, Versioned};
//! use serde::{Deserialize, Serialize};
//!
//! let set = SchemaSet::from_sources(vec![
//!     (PathBuf::from("mutatis.yaml"), r#"
//! name: todo-app
//! releases:
//!   - {name: "1", types: {todo: 1}, status: supported}
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
//!       additionalProperties: false
//!   2:
//!     lens:
//!       - rename: {source: done, destination: finished}
//! "#.to_owned()),
//! ])?;
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema, Versioned)]
//! #[schemars(crate = "mutatis_versioned::schemars")]
//! #[versioned(type = "todo", version = 1)]
//! struct Todo1 { title: String, done: bool }
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema, Versioned)]
//! #[schemars(crate = "mutatis_versioned::schemars")]
//! #[versioned(type = "todo", version = 2)]
//! struct Todo2 { title: String, finished: bool }
//!
//! let old = Todo1 { title: "milk".into(), done: true };
//! let new: Todo2 = old.migrate_to(&set, &Params::new())?;
//! assert_eq!(new, Todo2 { title: "milk".into(), finished: true });
//! assert_eq!(new.migrate_to::<Todo1>(&set, &Params::new())?, old);
//!
//! // Any version's JSON, read as version 2.
//! let read = Todo2::from_any(serde_json::json!({"title": "tea", "done": false}), 1, &set, &Params::new())?;
//! assert!(!read.finished);
//!
//! // Both structs match their versions' schemas.
//! mutatis_versioned::assert_matches::<Todo1>(&set);
//! mutatis_versioned::assert_matches::<Todo2>(&set);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Deriving `JsonSchema` needs `schemars` by that name in the deriving crate: depend on the
//! same version (1.x) or point the derive at the re-export, as above.
//!
//! ## The derive's errors
//!
//! A missing or malformed `#[versioned(...)]` is a compile error at the offending tokens:
//!
//! ```compile_fail
//! #[derive(serde::Serialize, serde::Deserialize, mutatis_versioned::Versioned)]
//! struct NoAttribute { x: u8 } // `#[derive(Versioned)]` needs `#[versioned(type = "Name", version = N)]`
//! ```
//!
//! ```compile_fail
//! #[derive(serde::Serialize, serde::Deserialize, mutatis_versioned::Versioned)]
//! #[versioned(type = "Student", version = "5")] // `version` takes an integer: `version = 5`
//! struct Quoted { x: u8 }
//! ```
//!
//! ```compile_fail
//! #[derive(serde::Serialize, serde::Deserialize, mutatis_versioned::Versioned)]
//! #[versioned(type = "Student")] // `#[versioned(...)]` lacks `version = N`
//! struct NoVersion { x: u8 }
//! ```

mod drift;
mod error;

pub use drift::{assert_matches, check, Drift, DriftDirection, DriftReport};
pub use error::VersionedError;
/// `#[derive(Versioned)]` with `#[versioned(type = "Student", version = 5)]`.
pub use mutatis_versioned_derive::Versioned;
/// The `schemars` this crate reads struct schemas with (derive `JsonSchema` through it with
/// `#[schemars(crate = "mutatis_versioned::schemars")]`, or depend on the same version).
pub use schemars;

pub use mutatis_lens::Params;
pub use mutatis_schema::SchemaSet;

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

/// A Rust type that is one version of a schema set's type.
///
/// Usually derived: `#[derive(Versioned)] #[versioned(type = "Student", version = 5)]`.
pub trait Versioned: Serialize + DeserializeOwned {
    /// The type's name in the schema set (`Student`).
    const TYPE: &'static str;
    /// The version of that type this struct is (`5` for `Student@5`).
    const VERSION: u32;

    /// This value as its version's JSON, checked against the version's JSON Schema (a struct
    /// that serialises to something its version refuses has drifted: see [`check`]).
    fn to_version_json(&self, set: &SchemaSet) -> Result<Value, VersionedError> {
        let value =
            serde_path_to_error::serialize(self, serde_json::value::Serializer).map_err(|e| {
                VersionedError::Serialize {
                    type_name: Self::TYPE.to_owned(),
                    version: Self::VERSION,
                    path: e.path().to_string(),
                    message: e.inner().to_string(),
                }
            })?;
        validate(set, Self::TYPE, Self::VERSION, &value)?;
        Ok(value)
    }

    /// Read a document of this very version: validated against its JSON Schema, then
    /// deserialised (a failure names the serde path).
    fn from_version_json(value: Value, set: &SchemaSet) -> Result<Self, VersionedError> {
        validate(set, Self::TYPE, Self::VERSION, &value)?;
        deserialize(value)
    }

    /// This value translated to version `U::VERSION` through the schema set's lenses, up or
    /// down: serialised, translated, validated against the target version, deserialised.
    fn migrate_to<U: Versioned>(
        &self,
        set: &SchemaSet,
        params: &Params,
    ) -> Result<U, VersionedError> {
        same_type::<Self, U>()?;
        let doc = self.to_version_json(set)?;
        let plan = plan(set, Self::TYPE, Self::VERSION, U::VERSION)?;
        let out = plan
            .translate(&doc, params)
            .map_err(|e| lens_error(Self::TYPE, Self::VERSION, U::VERSION, e))?;
        U::from_version_json(out, set)
    }

    /// Like [`migrate_to`](Versioned::migrate_to), merged onto `stored`, a value already in the
    /// target version (the lens engine's `translate_onto`): whatever this version cannot hold
    /// is kept from `stored`. So a value taken down and brought back up onto its original
    /// keeps the fields the lower version lacks: `v.migrate_to::<Old>()?.migrate_onto(&v)? == v`.
    fn migrate_onto<U: Versioned>(
        &self,
        stored: &U,
        set: &SchemaSet,
        params: &Params,
    ) -> Result<U, VersionedError> {
        same_type::<Self, U>()?;
        let doc = self.to_version_json(set)?;
        let base = stored.to_version_json(set)?;
        let plan = plan(set, Self::TYPE, Self::VERSION, U::VERSION)?;
        let out = plan
            .translate_onto(&doc, &base, params)
            .map_err(|e| lens_error(Self::TYPE, Self::VERSION, U::VERSION, e))?;
        U::from_version_json(out, set)
    }

    /// This value as the JSON of any version of its type (`version`): translated through the
    /// lenses and validated there. For answering a caller in the version it speaks without a
    /// struct for that version.
    fn to_any(
        &self,
        version: u32,
        set: &SchemaSet,
        params: &Params,
    ) -> Result<Value, VersionedError> {
        let doc = self.to_version_json(set)?;
        let plan = plan(set, Self::TYPE, Self::VERSION, version)?;
        let out = plan
            .translate(&doc, params)
            .map_err(|e| lens_error(Self::TYPE, Self::VERSION, version, e))?;
        validate(set, Self::TYPE, version, &out)?;
        Ok(out)
    }

    /// Read a document of any version of this type (`version`) as this struct: validated in
    /// its own version, translated to this one, validated again and deserialised.
    fn from_any(
        value: Value,
        version: u32,
        set: &SchemaSet,
        params: &Params,
    ) -> Result<Self, VersionedError> {
        validate(set, Self::TYPE, version, &value)?;
        let plan = plan(set, Self::TYPE, version, Self::VERSION)?;
        let out = plan
            .translate(&value, params)
            .map_err(|e| lens_error(Self::TYPE, version, Self::VERSION, e))?;
        Self::from_version_json(out, set)
    }
}

fn same_type<T: Versioned, U: Versioned>() -> Result<(), VersionedError> {
    if T::TYPE == U::TYPE {
        Ok(())
    } else {
        Err(VersionedError::TypeMismatch {
            from_type: T::TYPE,
            from: T::VERSION,
            to_type: U::TYPE,
            to: U::VERSION,
        })
    }
}

fn plan(
    set: &SchemaSet,
    type_name: &str,
    from: u32,
    to: u32,
) -> Result<std::sync::Arc<mutatis_lens::Plan>, VersionedError> {
    set.plan(type_name, from, to)
        .map_err(|source| VersionedError::Schema {
            type_name: type_name.to_owned(),
            version: if set.version(type_name, from).is_err() {
                from
            } else {
                to
            },
            source,
        })
}

fn lens_error(
    type_name: &str,
    from: u32,
    to: u32,
    source: mutatis_lens::LensError,
) -> VersionedError {
    VersionedError::Lens {
        type_name: type_name.to_owned(),
        from,
        to,
        pointer: error::lens_pointer(&source),
        source: Box::new(source),
    }
}

fn validate(
    set: &SchemaSet,
    type_name: &str,
    version: u32,
    value: &Value,
) -> Result<(), VersionedError> {
    let def = set
        .version(type_name, version)
        .map_err(|source| VersionedError::Schema {
            type_name: type_name.to_owned(),
            version,
            source,
        })?;
    def.validate(value)
        .map_err(|issues| VersionedError::Invalid {
            type_name: type_name.to_owned(),
            version,
            pointer: issues
                .first()
                .map(|i| i.pointer.clone())
                .unwrap_or_default(),
            issues,
        })
}

fn deserialize<T: Versioned>(value: Value) -> Result<T, VersionedError> {
    serde_path_to_error::deserialize(value).map_err(|e| VersionedError::Deserialize {
        type_name: T::TYPE.to_owned(),
        version: T::VERSION,
        rust_type: std::any::type_name::<T>(),
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}
