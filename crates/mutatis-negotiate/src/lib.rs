//! # mutatis-negotiate
//!
//! Release negotiation as pure functions, shared by every HTTP front of mutatis (the
//! `mutatis serve` server and the `mutatis-axum` extractors): which version of a type a
//! request speaks ([`negotiate`]: `Mutatis-Release`, `Mutatis-Versions`, `?release=`, the
//! default release, detection from the body), what its answer must say about it
//! ([`headers`]: `Mutatis-Release`, `Mutatis-Versions`, `Deprecation`, `Sunset`, `Link`), and
//! the RFC 9457 problems it produces ([`problem`], `unsupported-release` among them).
//!
//! Header values are taken as text (`Option<&str>`), so the crate depends on no HTTP stack;
//! the `axum` feature adds `impl IntoResponse for Problem`.

#![warn(missing_docs)]

pub mod headers;
pub mod negotiate;
pub mod problem;

pub use negotiate::{negotiate, Announce, Deprecated, Served};
pub use problem::{Problem, PROBLEM_JSON};
