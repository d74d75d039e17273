//! # mutatis-client
//!
//! The Rust client of a mutatis server. Its one job: let an app read and write documents in
//! *its own* version of each type, whatever version the server is at.
//!
//! The client carries its own schema set (compiled in, or a manifest file) and knows its
//! release. It reads the server's `GET /meta` once (cached) and plans each type
//! ([`plan::route`], pure and unit-tested):
//!
//! - the server serves the client's version → the client names its release (or the version)
//!   and the **server translates**;
//! - the server is **older** (it has never heard of the client's version and serves only older
//!   ones) → the client speaks the newest version both sides know and **translates on its own
//!   side** with its set's lenses: bodies go down before they are sent (merged onto the
//!   server's current document, so fields the server keeps are not erased), come back up when
//!   read, and JSON Patches are translated op by op (or, when the lenses cannot carry them,
//!   applied read–modify–write with [`mutatis_lens::apply_patch`], as the server applies them);
//! - no version in common → [`Error::NoCommonVersion`].
//!
//! Errors are typed from the server's problem documents: [`Error::Unsupported`] (the release is
//! retired — lock the app and ask for an update), [`Error::Conflict`], [`Error::Invalid`] with
//! JSON pointers, [`Error::NotFound`], [`Error::Unauthenticated`], [`Error::Forbidden`].
//! A deprecated release is reported once to the [`ClientBuilder::on_deprecation`] callback,
//! with its sunset date.
//!
//! With the `replication` cargo feature, `HttpPeer` is a node over HTTP as one end of a
//! replication (`mutatis_replication::Peer`): what `mutatis replicate` runs between two
//! servers. With `offline`, `OfflineReplica` is a local redb store an app reads and writes
//! offline, synced both ways with a server. Both are off by default: a client of a server
//! needs no store (no redb, no PostgreSQL driver).
//!
//! Runs on tokio (through reqwest). Plain `http://` by default; the `rustls` cargo feature
//! adds `https://` (rustls with the aws-lc-rs provider), off by default to keep builds lean.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mutatis_client::{Client, ChangesOptions};
//! use mutatis_schema::SchemaSet;
//! use serde_json::json;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // The app's own schema set, e.g. built from `include_str!`ed files.
//! let set = Arc::new(SchemaSet::load("examples/students")?);
//! let client = Client::builder("http://127.0.0.1:7878")
//!     .schema_set(set)
//!     .release("5")
//!     .token("mutatis_…")
//!     .on_deprecation(|d| eprintln!("release {} is deprecated, sunset {:?}", d.release, d.sunset))
//!     .build()?;
//!
//! let written = client
//!     .create("Student", Some("ada"), &json!({"firstName": "Ada", "lastName": "Lovelace", "yearOfBirth": 1815}))
//!     .await?;
//! let doc = client.get("Student", "ada").await?;        // in Student@5, whatever the server runs
//! assert_eq!(doc.rev, written.rev);
//! let patch = json!([{"op": "replace", "path": "/lastName", "value": "King"}]);
//! client.patch("Student", "ada", &patch, &doc.rev).await?;
//! let feed = client.changes(0, &ChangesOptions { include_docs: true, ..Default::default() }).await?;
//! println!("{} changes, resume from {}", feed.results.len(), feed.last_seq);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod client;
pub mod deprecation;
mod error;
pub mod meta;
mod model;
#[cfg(feature = "offline")]
pub mod offline;
#[cfg(feature = "replication")]
pub mod peer;
pub mod plan;
pub mod tls;
pub mod translate;

pub use client::{Client, ClientBuilder, RELEASE_HEADER, VERSIONS_HEADER};
pub use deprecation::Deprecation;
pub use error::{problem_type, BuildError, Error, FieldError, Problem};
pub use meta::Meta;
pub use model::{Change, Changes, ChangesOptions, Doc, Page, Written};
#[cfg(feature = "offline")]
pub use offline::{OfflineError, OfflineReplica, SyncReport};
#[cfg(feature = "replication")]
pub use peer::HttpPeer;

pub use plan::Route;
