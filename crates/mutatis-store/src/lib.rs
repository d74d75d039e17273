//! # mutatis-store
//!
//! The versioned document store of mutatis: documents `{type, id, rev, version, body, deleted,
//! access}` read and written in **any version** of their type, a per-node **changes feed**, and
//! per-type **migration state** with a background migrator that moves stored data to a new
//! version while writers keep writing.
//!
//! ## Shape: a Sans-IO core driven over one backend trait
//!
//! - [`Rev`] (`N-hash`: generation + SHA-256 of the canonical body), [`Record`], [`Change`],
//!   [`TypeState`] and the migration state machine [`Migration`] are pure values: no I/O, no
//!   clock. The migrator emits [`Command`]s ("read the batch after id K", "read the feed after
//!   sequence S") and turns what was read into a [`Batch`] of writes plus its own updated
//!   checkpoint; it is unit-tested without any storage.
//! - [`Backend`] is the storage primitives in transactions ([`ReadTxn`], [`WriteTxn`]): get/put
//!   a record in a *space*, scan a space in id order, append to and read the feed, type state,
//!   quarantine. [`RedbBackend`] implements it on one redb file, [`PostgresBackend`] in a
//!   PostgreSQL schema shared by many processes (see the `backend` module docs for why the
//!   trait is synchronous).
//! - [`Store`] is the thin shell: each call is one short transaction around the pure work
//!   (schema validation, lens translation, one migrator step).
//!
//! ## Reads, writes, conservation
//!
//! A read translates the stored record from its version to the caller's with the schema set's
//! plan. A write is validated against the writer's version, then translated to the storage
//! version *onto* the stored document ([`mutatis_lens::Plan::translate_onto`]), so an old
//! writer never erases fields it cannot see. Writes are conditional on the expected rev.
//!
//! ## Strategies
//!
//! - `eager`: [`Store::start_migration`] + [`Store::run_migration`] move everything to the new
//!   storage version: restore in batches from a snapshot sequence, replay the feed, switch
//!   atomically, keep the old space as a backup ([`Store::start_rollback`],
//!   [`Store::drop_backup`]); checkpointed per batch, so a crash resumes.
//! - `lazy`: documents stay in the version they were stored in and are translated on read; a
//!   write stores the storage version; changing the storage version moves nothing.
//! - `multi`: a materialised copy per supported version, written in the same transaction as
//!   the primary; reads in those versions do no translation. [`Store::space_report`] gives the
//!   cost.
//!
//! ## Replication primitives
//!
//! Every record keeps its rev **history** (the revs it descends from, most recent first, at
//! most [`REVS_LIMIT`]). [`Store::apply_replicated`] stores a revision from another node as
//! given (CouchDB's `new_edits=false`): new, fast-forward, already known (idempotent: no
//! write, no feed entry) or a **conflict** whose winner is the same on every node (live before
//! deleted, then the higher generation, then the higher hash); losers stay on the record as
//! [`ConflictLeaf`]s until [`Store::resolve_conflict`]. [`Store::replication_doc`] is what a
//! source sends. The rules are pure functions (the `replica` module); the store wraps each
//! call in one transaction.
//!
//! ```
//! use std::{path::PathBuf, sync::Arc};
//! use mutatis_schema::SchemaSet;
//! use mutatis_store::{MigrationOptions, RedbBackend, RedbOptions, Store};
//! use serde_json::json;
//!
//! let set = SchemaSet::from_sources(vec![
//!     (PathBuf::from("mutatis.yaml"), "
//! name: app
//! releases: [{name: '1', types: {todo: 1}, status: current}]
//! storage: {todo: {version: 1, strategy: eager}}
//! ".to_owned()),
//!     (PathBuf::from("types/todo.yaml"), "
//! type: todo
//! versions:
//!   1: {schema: {type: object, properties: {title: {type: string}, done: {type: boolean}}}}
//!   2: {lens: [{rename: {source: done, destination: finished}}]}
//! ".to_owned()),
//! ])?;
//! let dir = tempfile::tempdir()?;
//! let backend = RedbBackend::open(dir.path().join("data.redb"), RedbOptions::default())?;
//! let store = Store::new(backend, Arc::new(set));
//!
//! let w = store.put("todo", "milk", 1, &json!({"title": "milk", "done": true}), None)?;
//! assert_eq!(store.get("todo", "milk", 2)?.unwrap().body, json!({"title": "milk", "finished": true}));
//!
//! store.start_migration("todo", 2, MigrationOptions::default())?;
//! store.run_migration("todo", |progress| println!("{}/{}", progress.done, progress.total))?;
//! assert_eq!(store.state("todo")?.storage_version, 2);
//! // Revs survive the switch, so writers holding one carry on.
//! store.put("todo", "milk", 1, &json!({"title": "oat milk", "done": true}), Some(&w.rev))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backend;
mod commit;
mod error;
mod held;
mod migrate;
mod model;
mod pending;
#[cfg(feature = "postgres")]
mod postgres_backend;
#[cfg(feature = "postgres")]
mod postgres_tls;
mod redb_backend;
mod replica;
mod rev;
mod store;

pub use backend::{Backend, ReadTxn, WriteTxn};
pub use error::StoreError;
pub use migrate::{
    Batch, Command, Migration, MigrationKind, OnError, Phase, Progress, ProgressMeter, ReplayItem,
    Stopped, TargetWrite, Translate, Translated,
};
pub use model::{
    revision_key, Backup, Change, Document, Quarantined, RawDocument, Record, SpaceId, SpaceStats,
    TypeState, REVISIONS_SPACE,
};
pub use pending::PendingWrite;
#[cfg(feature = "postgres")]
pub use postgres_backend::{
    application_name, PoolOptions, PostgresBackend, DEFAULT_POOL_SIZE, DEFAULT_POOL_WAIT,
};
pub use redb_backend::{RedbBackend, RedbOptions, FORMAT};
pub use replica::{
    Applied, Carried, ConflictLeaf, LossPolicy, Replicated, ReplicatedDoc, ReplicationDoc,
    Resolution, REVS_LIMIT,
};
pub use rev::{Rev, HASH_DIGITS};
pub use store::{
    ApplyOutcome, CopyFill, FeedEntry, ImportDoc, MigrationOptions, MigrationPacer, Page, Revision,
    RevisionRead, Settings, SourceContext, SpaceReport, Step, StorageAction, Store, Written,
    LIST_SCAN_CHUNK, MAX_ID_BYTES,
};
