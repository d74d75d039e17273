//! An offline replica: a local redb store that the application reads and writes while
//! offline, synced both ways with a server through the replication protocol.
//!
//! The replica holds the application's *own* schema set. The app reads and writes in the
//! version its release names for each type; the local store keeps its set's storage versions,
//! as any mutatis store does. [`OfflineReplica::sync`] then replicates (DESIGN §10):
//!
//! 1. it reads the server's `GET /meta`, and stops with [`crate::Error::Unsupported`] if the
//!    server no longer serves the app's release (nothing is synced: an app the server has
//!    retired must update before its edits are accepted);
//! 2. it **pulls** the server's changes into the replica, then **pushes** the replica's
//!    changes to the server, each a [`mutatis_replication::replicate`] run with its own
//!    checkpoint (so each resumes where it stopped), under the `carry` loss policy: what one
//!    side's version cannot hold travels beside the document instead of being dropped.
//!
//! The two sides may be on different schema versions: documents travel in the sender's
//! storage version and are translated by the receiver (through the sender's manifest when the
//! receiver does not know that version). Concurrent edits become conflicts with the same
//! winner on both sides; [`OfflineReplica::conflicts`] lists the losing leaves and
//! [`OfflineReplica::resolve`] ends them (the resolution replicates like any write).
//!
//! Local reads and writes are **synchronous** calls on the redb file: each is one short local
//! transaction, so they are fine to call from the UI thread or an async task for single
//! documents. For large loops inside an async runtime, run them in
//! [`tokio::task::spawn_blocking`] (the replica is `Send + Sync`: share it in an `Arc`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use mutatis_client::offline::{OfflineReplica, OfflineError};
//! use mutatis_client::Error;
//! use mutatis_schema::SchemaSet;
//! use serde_json::json;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let set = Arc::new(SchemaSet::load("examples/students")?);
//! let replica = OfflineReplica::open(
//!     "students.redb",
//!     set,
//!     "5",
//!     "http://127.0.0.1:7878",
//!     Some("mutatis_…".to_owned()),
//! )?;
//!
//! // Offline: reads and writes in Student@5, against the local file.
//! let written = replica.create("Student", "ada", &json!({"firstName": "Ada", "lastName": "Lovelace", "yearOfBirth": 1815}))?;
//! let doc = replica.get("Student", "ada")?.expect("just written");
//! assert_eq!(doc.rev, written.rev);
//! replica.put("Student", "ada", &json!({"firstName": "Ada", "lastName": "King", "yearOfBirth": 1815}), &doc.rev)?;
//!
//! // Back online.
//! match replica.sync().await {
//!     Ok(report) => println!(
//!         "pulled {} revisions, pushed {}, {} new conflicts",
//!         report.pull.written(),
//!         report.push.written(),
//!         report.pull.conflicts + report.push.conflicts,
//!     ),
//!     Err(OfflineError::Server(Error::Unsupported { oldest_supported, .. })) => {
//!         eprintln!("this app is too old: update to release {oldest_supported:?} or later");
//!     }
//!     Err(e) => return Err(e.into()),
//! }
//! for leaf in replica.conflicts("Student", "ada")? {
//!     println!("conflicting edit {}: {}", leaf.rev, leaf.body);
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mutatis_lens::Params;
use mutatis_replication::{replicate, LocalPeer, Options, ReplicationError};
use mutatis_schema::SchemaSet;
use mutatis_store::{LossPolicy, RedbBackend, RedbOptions, Store, StoreError};
use serde_json::{json, Value};

use crate::meta::Meta;
use crate::peer::HttpPeer;
use crate::{BuildError, Client};

pub use mutatis_replication::Tally;
pub use mutatis_store::{ConflictLeaf, Document, Page, Resolution, Rev, Written};

/// The store setting that holds the replica's node id: the same key a `mutatis serve` node
/// keeps its own under, so the file keeps one identity whoever opens it.
pub const NODE_ID_KEY: &str = "node/id";

/// What an offline replica can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineError {
    /// The local store could not be opened (or its node id not read or written).
    #[error("opening the offline replica at {path}: {source}")]
    Open {
        /// The redb file.
        path: PathBuf,
        /// What the store said.
        #[source]
        source: StoreError,
    },
    /// The server URL, token or release is unusable.
    #[error("offline replica: {0}")]
    Build(#[from] BuildError),
    /// The app's release has no version of the type.
    #[error("type {type_name} is not in release {release} of the app's schema set")]
    UnknownType {
        /// The type asked for.
        type_name: String,
        /// The app's release.
        release: String,
    },
    /// A local read or write failed: a stale rev ([`StoreError::Conflict`]), an invalid
    /// document ([`StoreError::Invalid`]), a storage error.
    #[error("offline replica: {0}")]
    Store(#[from] StoreError),
    /// The server answered `/meta` with an error, could not be reached, or no longer
    /// supports the app's release ([`crate::Error::Unsupported`]: nothing was synced).
    #[error(transparent)]
    Server(#[from] crate::Error),
    /// Pulling the server's changes into the replica failed. What was applied before the
    /// failure is kept, with its checkpoint: the next sync resumes there.
    #[error("pulling from {server}: {source}")]
    Pull {
        /// The server's URL.
        server: String,
        /// Why the replication stopped.
        #[source]
        source: ReplicationError,
    },
    /// Pushing the replica's changes to the server failed (the pull before it is kept).
    #[error("pushing to {server}: {source}")]
    Push {
        /// The server's URL.
        server: String,
        /// Why the replication stopped.
        #[source]
        source: ReplicationError,
    },
}

impl OfflineError {
    /// Whether the server no longer supports the app's release: the app should lock itself
    /// and ask for an update (its local data stays, and syncs once updated).
    pub fn is_unsupported(&self) -> bool {
        matches!(self, OfflineError::Server(crate::Error::Unsupported { .. }))
    }
}

/// What one [`OfflineReplica::sync`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncReport {
    /// Server → replica.
    pub pull: Tally,
    /// Replica → server.
    pub push: Tally,
    /// The types synced: those of the app's release that the server also has.
    pub types: Vec<String>,
    /// The server's status for the app's release (`current`, `supported`, `deprecated`);
    /// `None` when the server does not know the release (the app is newer than the server).
    pub release_status: Option<String>,
    /// The day the server stops serving the app's release, when it is deprecated.
    pub sunset: Option<String>,
}

/// A local replica of a server's documents, read and written offline in the app's release
/// and synced both ways with [`OfflineReplica::sync`]. See the [module docs](self).
pub struct OfflineReplica {
    store: Arc<Store<RedbBackend>>,
    local: LocalPeer<RedbBackend>,
    server: HttpPeer,
    client: Client,
    server_url: String,
    release: String,
    /// Type → the version the app's release speaks.
    versions: BTreeMap<String, u32>,
    node_id: String,
    name: String,
}

impl std::fmt::Debug for OfflineReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineReplica")
            .field("name", &self.name)
            .field("node_id", &self.node_id)
            .field("release", &self.release)
            .field("server", &self.server_url)
            .finish_non_exhaustive()
    }
}

impl OfflineReplica {
    /// Open (or create) the replica at `path`: a redb store for the app's schema set `set`,
    /// read and written in release `release` of that set, synced with the server at
    /// `server_url` with `token` (a bearer token with the writer role, to push). The
    /// replica's node id is created on first open and kept in the file.
    ///
    /// Translations that depend on the date (`referenceYear`…) use today's date; see
    /// [`OfflineReplica::with_params`]. Makes no request.
    pub fn open(
        path: impl AsRef<Path>,
        set: Arc<SchemaSet>,
        release: &str,
        server_url: impl Into<String>,
        token: Option<String>,
    ) -> Result<OfflineReplica, OfflineError> {
        let path = path.as_ref();
        let server_url = server_url.into();
        let mut builder = Client::builder(server_url.clone())
            .schema_set(Arc::clone(&set))
            .release(release);
        if let Some(token) = &token {
            builder = builder.token(token.clone());
        }
        // The client checks the URL, the token and that the release is in the app's set.
        let client = builder.build()?;
        // The node counts the sync under the app's release, as it counts the app's own requests.
        let server = HttpPeer::new(server_url.clone(), token)?.speaking(release)?;
        let versions = set
            .release(release)
            .map(|r| r.types.clone())
            .unwrap_or_default();
        let open_error = |source| OfflineError::Open {
            path: path.to_path_buf(),
            source,
        };
        let backend = RedbBackend::open(path, RedbOptions::default()).map_err(open_error)?;
        let store = Store::new(backend, set).with_params(today_params());
        let node_id = match store
            .init_setting(NODE_ID_KEY, &json!(random_node_id()))
            .map_err(open_error)?
        {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let store = Arc::new(store);
        let name = format!("offline replica {}", path.display());
        Ok(OfflineReplica {
            local: LocalPeer::new(Arc::clone(&store), name.clone(), node_id.clone()),
            store,
            server,
            client,
            server_url,
            release: release.to_owned(),
            versions,
            node_id,
            name,
        })
    }

    /// The same replica translating with `params` (`referenceYear`, `referenceDate`…)
    /// instead of today's: for an app that must agree with a server run with a fixed
    /// `--reference-date`.
    pub fn with_params(self, params: Params) -> OfflineReplica {
        let set = Arc::clone(self.store.schema_set());
        let store = Arc::new(self.store.with_schema_set(set).with_params(params));
        OfflineReplica {
            local: LocalPeer::new(Arc::clone(&store), self.name.clone(), self.node_id.clone()),
            store,
            ..self
        }
    }

    /// The replica's node id (stable for the life of its file).
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The app's release.
    pub fn release(&self) -> &str {
        &self.release
    }

    /// The local store, for what this API does not cover (the changes feed, settings).
    pub fn store(&self) -> &Arc<Store<RedbBackend>> {
        &self.store
    }

    /// The version of `type_name` the app reads and writes in.
    pub fn version(&self, type_name: &str) -> Result<u32, OfflineError> {
        self.versions
            .get(type_name)
            .copied()
            .ok_or_else(|| OfflineError::UnknownType {
                type_name: type_name.to_owned(),
                release: self.release.clone(),
            })
    }

    /// A live document in the app's version (`None`: none, or deleted).
    pub fn get(&self, type_name: &str, id: &str) -> Result<Option<Document>, OfflineError> {
        let version = self.version(type_name)?;
        Ok(self.store.get(type_name, id, version)?)
    }

    /// Live documents of a type in id order, in the app's version, up to `limit` at a time;
    /// pass the page's `next` as `after` for the next page.
    pub fn list(
        &self,
        type_name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, OfflineError> {
        let version = self.version(type_name)?;
        Ok(self.store.list(type_name, version, after, limit)?)
    }

    /// Create a document, written in the app's version. Refused
    /// ([`StoreError::Conflict`]) if a live document has the id.
    pub fn create(&self, type_name: &str, id: &str, body: &Value) -> Result<Written, OfflineError> {
        let version = self.version(type_name)?;
        Ok(self.store.put(type_name, id, version, body, None)?)
    }

    /// Replace a document whose current rev is `expected` with `body`, in the app's
    /// version. Fields the app's version cannot express are kept (conservation); a stale
    /// `expected` is refused ([`StoreError::Conflict`]).
    pub fn put(
        &self,
        type_name: &str,
        id: &str,
        body: &Value,
        expected: &Rev,
    ) -> Result<Written, OfflineError> {
        let version = self.version(type_name)?;
        Ok(self
            .store
            .put(type_name, id, version, body, Some(expected))?)
    }

    /// Delete a document whose current rev is `expected` (a tombstone stays, so the delete
    /// syncs).
    pub fn delete(
        &self,
        type_name: &str,
        id: &str,
        expected: &Rev,
    ) -> Result<Written, OfflineError> {
        self.version(type_name)?;
        Ok(self.store.delete(type_name, id, expected)?)
    }

    /// The losing leaves of a document's conflict, best first, with their bodies in the
    /// app's version (empty: no conflict). The winner is what [`OfflineReplica::get`] reads.
    pub fn conflicts(&self, type_name: &str, id: &str) -> Result<Vec<ConflictLeaf>, OfflineError> {
        let version = self.version(type_name)?;
        // The replication view translates every leaf to one version; the plain
        // `Store::conflicts` would hand each leaf over in whatever version it is stored in.
        Ok(self
            .store
            .replication_doc(type_name, id, version)?
            .map(|doc| doc.conflicts)
            .unwrap_or_default())
    }

    /// End a document's conflict: keep one leaf ([`Resolution::Keep`]) or write a merged
    /// body ([`Resolution::Merge`], in any version of the app's set; usually
    /// [`OfflineReplica::version`]). `winner` is the rev the app saw winning; if another write
    /// or a sync moved it, the call is refused ([`StoreError::Conflict`]). The resolution
    /// reaches the server with the next sync and resolves the conflict there too.
    pub fn resolve(
        &self,
        type_name: &str,
        id: &str,
        winner: &Rev,
        resolution: Resolution,
    ) -> Result<Written, OfflineError> {
        self.version(type_name)?;
        Ok(self
            .store
            .resolve_conflict(type_name, id, winner, resolution)?)
    }

    /// Sync with the server: check that it still supports the app's release, then pull its
    /// changes and push the replica's (see the [module docs](self)). Safe to interrupt and to
    /// repeat: both directions are checkpointed and idempotent.
    pub async fn sync(&self) -> Result<SyncReport, OfflineError> {
        // Fresh every time: the server may have retired the release since the last sync.
        let meta = self.client.refresh_meta().await?;
        let server_release = meta.release(&self.release);
        if let Some(r) = server_release.filter(|r| r.status == "unsupported") {
            return Err(crate::Error::Unsupported {
                release: r.name.clone(),
                oldest_supported: oldest_supported(&meta),
                current_release: meta.current_release.clone(),
            }
            .into());
        }
        let types = self.shared_types(&meta);
        let mut report = SyncReport {
            pull: Tally::default(),
            push: Tally::default(),
            types: types.clone(),
            release_status: server_release.map(|r| r.status.clone()),
            sunset: server_release.and_then(|r| r.sunset.clone()),
        };
        // An empty type list means "every type" to the replication: with nothing in common
        // there is nothing to sync.
        if types.is_empty() {
            return Ok(report);
        }
        let opts = Options {
            types,
            policy: LossPolicy::Carry,
            ..Options::default()
        };
        report.pull = replicate(&self.server, &self.local, &opts, |_| {})
            .await
            .map_err(|source| OfflineError::Pull {
                server: self.server_url.clone(),
                source,
            })?
            .tally;
        report.push = replicate(&self.local, &self.server, &opts, |_| {})
            .await
            .map_err(|source| OfflineError::Push {
                server: self.server_url.clone(),
                source,
            })?
            .tally;
        tracing::info!(
            pulled = report.pull.written(),
            pushed = report.push.written(),
            conflicts = report.pull.conflicts + report.push.conflicts,
            "offline replica synced"
        );
        Ok(report)
    }

    /// The types of the app's release that the server has, sorted (the checkpoint ids
    /// depend on the list).
    fn shared_types(&self, meta: &Meta) -> Vec<String> {
        self.versions
            .keys()
            .filter(|t| meta.types.contains_key(*t))
            .cloned()
            .collect()
    }
}

/// The oldest release the server still serves (`/meta` lists releases oldest first).
fn oldest_supported(meta: &Meta) -> Option<String> {
    meta.releases
        .iter()
        .find(|r| r.status != "unsupported")
        .map(|r| r.name.clone())
}

/// Translation parameters for today, from the system clock.
fn today_params() -> Params {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    mutatis_lens::calendar::reference_params(secs)
}

/// A fresh node id: 32 hex digits. It must be unique, not secret, so the standard library's
/// randomly keyed hasher (keys from the OS's random source) over the clock and the process id
/// is enough, without a random-number dependency.
fn random_node_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (0u8..2)
        .map(|half| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u8(half);
            h.write_u128(nanos);
            h.write_u32(std::process::id());
            format!("{:016x}", h.finish())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_fresh_hex() {
        let a = random_node_id();
        let b = random_node_id();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn the_oldest_supported_release_skips_retired_ones() {
        let meta: Meta = serde_json::from_value(json!({
            "types": {"Student": {"versions": [3, 4, 5]}},
            "releases": [
                {"name": "2", "types": {"Student": 2}, "status": "unsupported"},
                {"name": "3", "types": {"Student": 3}, "status": "unsupported"},
                {"name": "4", "types": {"Student": 4}, "status": "deprecated", "sunset": "2027-03-01"},
                {"name": "5", "types": {"Student": 5}, "status": "current"}
            ]
        }))
        .unwrap_or_else(|e| panic!("meta: {e}"));
        assert_eq!(oldest_supported(&meta).as_deref(), Some("4"));
    }
}
