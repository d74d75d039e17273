//! Typed versions: a serde struct bound to `Type@version` of a schema set.
//!
//! A team's own Rust code names each version of a type as its own struct; the schema set's
//! lenses move a value between them (`migrate_to`), and any version's JSON is accepted and
//! brought to the one a caller works with (`from_any`).

use serde::{de::DeserializeOwned, Serialize};

/// A Rust type that is one version of a schema set's type.
///
/// Usually derived: `#[derive(Versioned)] #[versioned(type = "Student", version = 5)]`.
pub trait Versioned: Serialize + DeserializeOwned {
    /// The type's name in the schema set (`Student`).
    const TYPE: &'static str;
    /// The version of that type this struct is (`5` for `Student@5`).
    const VERSION: u32;
}
