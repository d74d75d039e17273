//! # mutatis-lens
//!
//! The lens engine of mutatis: declarative, bidirectional changes between two shapes of a JSON
//! document, and the machinery that runs them fast.
//!
//! - [`Lens`] is what a schema set declares: an ordered list of [`LensOp`]s (Cambria's set —
//!   rename, add, remove, hoist, plunge, wrap, head, in, map, convert — plus copy, split, join,
//!   set, convert-by-CEL-expression and named [`Transforms`]). Lens files are YAML or JSON, in
//!   mutatis's own form or Cambria's, read as they are.
//! - [`Plan`] is one or more lenses compiled in a [`Direction`]: both directions of every op
//!   are derived from the one declaration, ops that cannot be reversed are rejected when the
//!   plan is built, and steps are fused (renames compose, add-then-remove cancels, nested ops
//!   on one field group together).
//! - A plan translates a [`serde_json::Value`], merges a translation onto a stored document so
//!   that an old writer never erases what it cannot see ([`Plan::translate_onto`]), and
//!   translates raw JSON bytes touching only the fields it names ([`Plan::translate_bytes`]).
//! - JSON Patches (RFC 6902) are translated between versions ([`Plan::translate_patch`]) and
//!   applied ([`apply_patch`]) by one reading of the RFC.
//!
//! This crate is pure: no I/O, no clock, no randomness. Whatever depends on time (a reference
//! year) comes in through [`Params`]; [`calendar`] turns a caller's clock reading into them.
//!
//! ```
//! use mutatis_lens::{Direction, Lens, Params, Plan, Transforms};
//! use serde_json::json;
//!
//! let lens = Lens::from_file_str(r#"
//! lens:
//!   - rename: {source: done, destination: status}
//!   - convert:
//!       name: status
//!       forward: {"true": done, "false": open}
//!       backward: {done: true, open: false, started: false}
//! "#).unwrap();
//! let plan = Plan::compile(&lens, Direction::Forward, &Transforms::new()).unwrap();
//! let mut out = Vec::new();
//! plan.translate_bytes(br#"{"title":"milk","done":true}"#, &Params::new(), &mut out).unwrap();
//! assert_eq!(out, br#"{"title":"milk","status":"done"}"#);
//! let back = plan.reverse().translate(&json!({"title": "milk", "status": "started"}), &Params::new()).unwrap();
//! assert_eq!(back, json!({"title": "milk", "done": false}));
//! ```

pub mod calendar;
mod error;
mod expr;
pub mod json;
mod lens;
mod op;
mod patch;
mod patch_apply;
mod plan;
pub mod pointer;
mod raw;
mod schema;
mod transform;
pub mod yaml;

pub use error::LensError;
pub use lens::{at_line, Lens};
pub use op::{
    lens_from_json, lens_to_json, type_default, Convert, FieldSpec, LensOp, Mapping, SplitJoin,
    TransformOp, OP_NAMES,
};
pub use patch::expand_patch;
pub use patch_apply::{apply_patch, PatchError};
pub use plan::{DirectedOp, Direction, Params, Plan};
pub use schema::infer_schema;
pub use transform::{Transform, Transforms};
