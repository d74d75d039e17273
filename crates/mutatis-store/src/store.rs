//! The store: versioned reads and writes, the feed, and the migration driver, over any
//! [`Backend`].
//!
//! Everything here is a short backend transaction around pure work (validation, translation,
//! one step of the [`Migration`] machine). The store's one thread of its own is the committer,
//! which runs queued document writes in groups (`Turnstile`); nothing else runs in the
//! background: a caller that wants a background migration runs [`Store::step_migration`] (or
//! [`Store::run_migration`]) on a thread of its own, and writers interleave with it one batch
//! at a time.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use mutatis_lens::Params;
use mutatis_schema::{SchemaSet, Strategy};
use serde_json::Value;

use crate::backend::{Backend, ReadTxn, WriteTxn};
use crate::commit::{leaves_group_intact, Next, Queue, Ticket, Tracked, MAX_GROUP};
use crate::error::StoreError;
use crate::held::{self, Views};
use crate::migrate::{
    Command, Migration, MigrationKind, OnError, Progress, ReplayItem, TargetWrite, Translate,
    Translated,
};
use crate::model::{
    revision_key, Backup, Change, Document, Quarantined, RawDocument, Record, RecordView, SpaceId,
    SpaceStats, TypeState, REVISIONS_SPACE,
};
use crate::pending::{PendingWrite, Reply};
use crate::replica::{self, Carried, ConflictLeaf};
use crate::rev::Rev;

mod declared;
mod replication;
#[cfg(test)]
mod tests;
pub use declared::{CopyFill, StorageAction};
pub use replication::{ApplyOutcome, SourceContext};

/// Longest accepted document id, in bytes: ids are keys in every backend and in URLs.
pub const MAX_ID_BYTES: usize = 512;

/// Records removed per transaction when a space is emptied (abort, dropped backup).
const CLEAR_BATCH: usize = 1000;

/// Records one read transaction of [`Store::list_visible`] scans at most (unless the page
/// asked for is larger): a page that skips many records reads them a chunk at a time.
pub const LIST_SCAN_CHUNK: usize = 1000;

/// The outcome of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The new rev.
    pub rev: Rev,
    /// The feed sequence of the write.
    pub seq: u64,
}

/// One document for [`Store::import`].
#[derive(Debug, Clone, PartialEq)]
pub struct ImportDoc {
    /// Its id.
    pub id: String,
    /// The rev it had where it came from; `None`: a new write.
    pub rev: Option<Rev>,
    /// The body, in the import's version.
    pub body: Value,
}

/// How a write treats the stored rev.
#[derive(Clone, Copy)]
enum Check<'a> {
    /// Optimistic concurrency: the live rev must be this one (`None`: no live document).
    Expect(Option<&'a Rev>),
    /// Import without a rev: write over whatever is there.
    Upsert,
    /// Import with a rev: store it as given.
    Keep(&'a Rev),
}

/// What [`Store::revision`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionRead {
    /// The document's access data now (its tombstone's, if deleted): whoever may not read
    /// the document may not read its revisions either.
    pub access: Value,
    /// The revision.
    pub revision: Revision,
}

/// A revision of a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Revision {
    /// Its body, in the version asked for; `access` is the revision's own.
    Found(Document),
    /// The revision is a delete.
    Deleted {
        /// The revision's access data.
        access: Value,
    },
    /// The document had this revision, but its body is no longer kept: later writes pushed
    /// it out of the kept history, or it was written before bodies were kept.
    NotKept,
    /// The document never had this revision (as far as its history goes).
    Unknown,
}

/// One entry of [`Store::feed`].
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEntry {
    /// The change.
    pub change: Change,
    /// The document's record now (the change's own write: later ones are left out).
    pub record: Option<Record>,
}

/// One page of documents, in id order.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The live documents of the page, in the version asked for.
    pub docs: Vec<Document>,
    /// Pass this as `after` for the next page; `None`: this was the last one.
    pub next: Option<String>,
}

/// How to run a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationOptions {
    /// Documents per batch (so per transaction: the longest a writer waits).
    pub batch_size: u32,
    /// Stop or quarantine on a document that cannot be translated.
    pub on_error: OnError,
}

impl Default for MigrationOptions {
    fn default() -> Self {
        MigrationOptions {
            batch_size: 500,
            on_error: OnError::Stop,
        }
    }
}

/// What one migration step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A batch was applied; more to do.
    Running(Progress),
    /// The last batch was applied and the target became primary.
    Switched(Progress),
}

/// Space used by a type (the cost of `multi`, of a kept backup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceReport {
    /// The live documents.
    pub primary: SpaceStats,
    /// The retained backup, if any.
    pub backup: Option<SpaceStats>,
    /// The migration target being filled, if any.
    pub migration: Option<SpaceStats>,
    /// `multi`: each materialised version.
    pub copies: BTreeMap<u32, SpaceStats>,
}

impl SpaceReport {
    /// Bytes over all spaces.
    pub fn total_bytes(&self) -> u64 {
        self.primary.bytes
            + self.backup.map_or(0, |s| s.bytes)
            + self.migration.map_or(0, |s| s.bytes)
            + self.copies.values().map(|s| s.bytes).sum::<u64>()
    }
}

/// A versioned document store.
pub struct Store<B: Backend> {
    backend: Arc<B>,
    set: Arc<SchemaSet>,
    params: Arc<Params>,
    turnstile: Arc<Turnstile>,
}

/// A document write waiting to be committed with others: it owns what it writes, as the
/// committer runs it on its own thread.
type GroupJob = Box<dyn FnMut(&mut dyn WriteTxn) -> Result<Written, StoreError> + Send>;

/// A queued document write and where its result goes.
type Grouped = (GroupJob, Reply);

/// First come, first served admission to write transactions, with group commit.
///
/// A backend's own writer lock need not be fair: redb's is not, and a migrator that begins
/// its next batch the moment it commits the last one can keep a writer out for the whole
/// migration (measured: a p99 write latency of 0.65 s during a 100k-document migration). In
/// the queue, a writer waits at most for what arrived before it: one migration batch and the
/// groups of writes ahead. Document writes queued together share one transaction and one
/// durable commit ([`crate::commit`]), run by one committer thread per store: a writer hands
/// its job over and waits for a [`PendingWrite`], so it needs no thread of its own while it
/// waits (with a leader among blocked writers instead, each write held a thread that slept
/// and woke around its group's commit: measured, a fifth of a contended PUT's server time
/// went to those context switches). Alone writers run on their own threads. This orders the
/// writers of one process; writers in other processes (PostgreSQL) are ordered by the
/// database's lock queue.
struct Turnstile {
    lanes: Mutex<Lanes>,
    /// An alone writer sleeps on the slot of its ticket, so a commit wakes the next head only
    /// (and the rare writer sharing a slot), not every queued writer.
    turns: [Condvar; TURN_SLOTS],
    /// The committer sleeps here when there is no group for it to run.
    work: Condvar,
    /// A moving average of how long a document write's transaction (a group's, with group
    /// commit) takes once admitted, in nanoseconds (0: none seen yet). The migration sizes
    /// its batches from it, so that the one batch a writer may wait for costs about as much
    /// as a couple of write transactions.
    doc_write_ns: std::sync::atomic::AtomicU64,
}

/// What the turnstile's mutex guards.
struct Lanes {
    queue: Queue<Grouped>,
    committer: Committer,
}

/// The committer thread's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Committer {
    /// No thread: none was needed yet, or it left after [`COMMITTER_IDLE`] with nothing to do.
    Absent,
    /// Sleeping on [`Turnstile::work`].
    Idle,
    /// Running a group, or about to look for one.
    Busy,
}

/// How long the committer waits for work before its thread ends. It holds no backend while
/// it waits (a store closed meanwhile closes its database), so this only bounds how long an
/// unused thread lingers.
const COMMITTER_IDLE: std::time::Duration = std::time::Duration::from_secs(2);

impl Default for Turnstile {
    fn default() -> Turnstile {
        Turnstile {
            lanes: Mutex::new(Lanes {
                queue: Queue::new(MAX_GROUP),
                committer: Committer::Absent,
            }),
            turns: Default::default(),
            work: Condvar::new(),
            doc_write_ns: Default::default(),
        }
    }
}

/// The turn of a writer with a transaction of its own; dropping it lets the next one go.
struct Alone<'a>(&'a Turnstile);

/// Condvars of the writer queue (arrays up to 32 have `Default`).
const TURN_SLOTS: usize = 32;

fn turn_slot(ticket: Ticket) -> usize {
    (ticket % TURN_SLOTS as u64) as usize
}

type LanesGuard<'a> = MutexGuard<'a, Lanes>;

impl Turnstile {
    fn lock(&self) -> LanesGuard<'_> {
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self, ticket: Ticket) {
        // All on the slot: a later ticket sharing it re-checks and sleeps again.
        self.turns[turn_slot(ticket)].notify_all();
    }

    /// Let whoever is at the head of the queue go, after a transaction ended (`lanes` is
    /// the queue with that transaction finished).
    fn hand_on(&self, lanes: &Lanes, next: Next) {
        match next {
            Next::Idle => {}
            Next::Alone(ticket) => self.wake(ticket),
            // With grouped jobs waiting the committer is never absent: it leaves only when
            // nothing waits, and the first job to join after that starts a new one.
            Next::Group => {
                if lanes.committer == Committer::Idle {
                    self.work.notify_one();
                }
            }
        }
    }

    /// Wait for a transaction of one's own.
    fn alone(&self) -> Alone<'_> {
        let mut lanes = self.lock();
        let me = lanes.queue.join(None);
        while !lanes.queue.turn(me) {
            lanes = self.turns[turn_slot(me)]
                .wait(lanes)
                .unwrap_or_else(PoisonError::into_inner);
        }
        Alone(self)
    }

    /// Queue `job` to be committed with whatever other document writes are queued with it,
    /// by the committer (started if there is none). The result arrives through the returned
    /// [`PendingWrite`] once the job's group has committed (or failed).
    fn grouped<B: Backend>(self: &Arc<Self>, backend: &Arc<B>, job: GroupJob) -> PendingWrite {
        let (pending, reply) = crate::pending::pending();
        let mut lanes = self.lock();
        if lanes.committer == Committer::Absent {
            // Spawned under the lock, so that a failure to spawn leaves nobody queued behind
            // a committer that does not exist.
            let (turnstile, backend) = (Arc::clone(self), Arc::downgrade(backend));
            let spawned = std::thread::Builder::new()
                .name("mutatis-commit".to_owned())
                .spawn(move || turnstile.commit_loop(&backend));
            if let Err(e) = spawned {
                drop(lanes);
                reply.send(Err(StoreError::Backend {
                    backend: B::NAME,
                    operation: "starting the committer thread",
                    reason: e.to_string(),
                }));
                return pending;
            }
            lanes.committer = Committer::Busy;
        }
        lanes.queue.join(Some((job, reply)));
        if lanes.committer == Committer::Idle && lanes.queue.next_up() == Next::Group {
            // Only a job that may go at once needs the committer woken: one queued behind a
            // running transaction is taken when that transaction ends.
            self.work.notify_one();
        }
        pending
    }

    /// The committer: run the groups at the head of the queue as they come, until nothing
    /// has come for [`COMMITTER_IDLE`]. It holds the backend only while it runs a group, so a
    /// store dropped by all its users closes its database.
    fn commit_loop<B: Backend>(&self, backend: &std::sync::Weak<B>) {
        let mut lanes = self.lock();
        loop {
            if let Some(group) = lanes.queue.lead() {
                lanes.committer = Committer::Busy;
                drop(lanes);
                self.commit_group(backend, group);
                lanes = self.lock();
                let next = lanes.queue.finish();
                self.hand_on(&lanes, next);
                continue;
            }
            lanes.committer = Committer::Idle;
            let (guard, waited) = self
                .work
                .wait_timeout(lanes, COMMITTER_IDLE)
                .unwrap_or_else(PoisonError::into_inner);
            lanes = guard;
            if waited.timed_out() && lanes.queue.is_idle() {
                lanes.committer = Committer::Absent;
                return;
            }
        }
    }

    /// Run one group and answer its writers. The jobs (which hold the store) and the
    /// backend are let go before any writer hears back, so that a writer that closes its
    /// store on hearing back really closes the database.
    fn commit_group<B: Backend>(&self, backend: &std::sync::Weak<B>, group: Vec<Grouped>) {
        let (mut jobs, replies): (Vec<GroupJob>, Vec<Reply>) = group.into_iter().unzip();
        let results = match backend.upgrade() {
            Some(backend) => {
                let led = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.lead(&*backend, &mut jobs)
                }));
                led.unwrap_or_else(|_| {
                    // The writers must hear back, and the committer must go on for the
                    // writes queued after them.
                    tracing::error!("a group commit panicked; its writes failed");
                    failed(B::NAME, replies.len(), "the write transaction panicked")
                })
            }
            None => failed(B::NAME, replies.len(), "the store was closed"),
        };
        drop(jobs);
        for (reply, result) in replies.into_iter().zip(results) {
            reply.send(result);
        }
    }

    /// Run a group: every job in one transaction, committed once; each job's result in
    /// order. A job refused before it wrote anything gets its error and the others go on. If
    /// the transaction as a whole fails (a backend error, or a job that failed after
    /// writing), nothing of it was committed, and each job runs again in a transaction of
    /// its own, in the same order, so that only the failing one fails.
    fn lead<B: Backend>(
        &self,
        backend: &B,
        group: &mut [GroupJob],
    ) -> Vec<Result<Written, StoreError>> {
        let started = std::time::Instant::now();
        let together = backend.write(|txn| {
            let mut results = Vec::with_capacity(group.len());
            for job in group.iter_mut() {
                let mut tracked = Tracked {
                    txn: &mut *txn,
                    wrote: false,
                };
                match job(&mut tracked) {
                    Ok(written) => results.push(Ok(written)),
                    Err(e) if leaves_group_intact(&e, tracked.wrote) => results.push(Err(e)),
                    Err(e) => return Err(e),
                }
            }
            Ok(results)
        });
        let results = match together {
            Ok(results) => results,
            Err(e) if group.len() == 1 => vec![Err(e)],
            Err(_) => group
                .iter_mut()
                .map(|job| backend.write(|txn| job(txn)))
                .collect(),
        };
        self.note_doc_write(started.elapsed());
        results
    }

    fn note_doc_write(&self, took: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let avg = &self.doc_write_ns;
        // An exponential average over about the last eight transactions; races between
        // writers lose an update at worst, which an average shrugs off.
        let old = avg.load(Relaxed);
        let new = if old == 0 {
            took
        } else {
            old - old / 8 + took / 8
        };
        avg.store(new, Relaxed);
    }
}

/// `n` failures of a group that could not run.
fn failed(backend: &'static str, n: usize, reason: &str) -> Vec<Result<Written, StoreError>> {
    (0..n)
        .map(|_| {
            Err(StoreError::Backend {
                backend,
                operation: "group commit",
                reason: reason.to_owned(),
            })
        })
        .collect()
}

impl Drop for Alone<'_> {
    fn drop(&mut self) {
        // Runs on unwinding too, so a panicking writer cannot stall the queue.
        let mut lanes = self.0.lock();
        let next = lanes.queue.finish();
        self.0.hand_on(&lanes, next);
    }
}

impl<B: Backend> Store<B> {
    /// A store over `backend` for the types of `set`.
    pub fn new(backend: B, set: Arc<SchemaSet>) -> Store<B> {
        Store {
            backend: Arc::new(backend),
            set,
            params: Arc::new(Params::new()),
            turnstile: Arc::default(),
        }
    }

    /// The same store (backend, writer queue, parameters) seen through another schema set:
    /// how a server reloads its schema set without closing the database. The caller checks
    /// the new set against the old one first; stored type states are kept as they are.
    pub fn with_schema_set(&self, set: Arc<SchemaSet>) -> Store<B> {
        Store {
            backend: Arc::clone(&self.backend),
            set,
            params: Arc::clone(&self.params),
            turnstile: Arc::clone(&self.turnstile),
        }
    }

    /// A write transaction of its own, admitted in arrival order.
    fn write<R>(
        &self,
        f: impl FnMut(&mut dyn WriteTxn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let _turn = self.turnstile.alone();
        self.backend.write(f)
    }

    /// A document write's transaction of its own: [`Store::write`], timed (without the wait
    /// for admission) into the average the migration paces itself by.
    fn write_doc<R>(
        &self,
        f: impl FnMut(&mut dyn WriteTxn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let _turn = self.turnstile.alone();
        let started = std::time::Instant::now();
        let result = self.backend.write(f);
        self.turnstile.note_doc_write(started.elapsed());
        result
    }

    /// A document write committed with the others queued at the same time (group commit):
    /// `job` runs in a transaction shared with them, on the store's committer thread, and
    /// the returned [`PendingWrite`] resolves once that transaction is durable. `job` is
    /// given this store (as the committer may see another schema set) and must write nothing
    /// if it fails by refusing.
    fn write_grouped(
        &self,
        mut job: impl FnMut(&Store<B>, &mut dyn WriteTxn) -> Result<Written, StoreError>
            + Send
            + 'static,
    ) -> PendingWrite {
        let store = self.with_schema_set(Arc::clone(&self.set));
        self.turnstile
            .grouped(&self.backend, Box::new(move |txn| job(&store, txn)))
    }

    /// How long a migration batch may take now: about two document writes of this process
    /// (so a writer waiting for one batch sees its latency at most about triple), within
    /// [`MIN_BATCH_TIME`] and [`BATCH_TIME_BUDGET`]. With no writes seen, the budget: nobody
    /// waits, so batches are as large as the migration allows.
    fn batch_budget(&self) -> std::time::Duration {
        let avg = self
            .turnstile
            .doc_write_ns
            .load(std::sync::atomic::Ordering::Relaxed);
        if avg == 0 {
            return BATCH_TIME_BUDGET;
        }
        std::time::Duration::from_nanos(avg.saturating_mul(2))
            .clamp(MIN_BATCH_TIME, BATCH_TIME_BUDGET)
    }

    /// Translation parameters (values that depend on the moment, such as a reference year).
    pub fn with_params(mut self, params: Params) -> Store<B> {
        self.params = Arc::new(params);
        self
    }

    /// The schema set.
    pub fn schema_set(&self) -> &Arc<SchemaSet> {
        &self.set
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    fn check_version(&self, type_name: &str, version: u32) -> Result<(), StoreError> {
        let versions = self.set.versions(type_name)?;
        if versions.contains(&version) {
            return Ok(());
        }
        Err(StoreError::UnknownVersion {
            type_name: type_name.to_owned(),
            version,
            known: versions
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    fn check_id(type_name: &str, id: &str) -> Result<(), StoreError> {
        let reason = if id.is_empty() {
            "it is empty"
        } else if id.len() > MAX_ID_BYTES {
            "it is longer than 512 bytes"
        } else if id.chars().any(char::is_control) {
            "it contains a control character"
        } else {
            return Ok(());
        };
        Err(StoreError::InvalidId {
            type_name: type_name.to_owned(),
            id: id.chars().take(64).collect(),
            reason,
        })
    }

    /// The state a type starts in: the schema set's storage version and strategy, and for
    /// `multi` a space per other supported version.
    fn initial_state(&self, type_name: &str) -> Result<TypeState, StoreError> {
        let storage = self.set.storage(type_name)?;
        let mut state = TypeState::new(storage.version, storage.strategy);
        if storage.strategy == Strategy::Multi {
            for v in self.set.supported_versions(type_name)? {
                if v != storage.version {
                    let space = state.allocate_space();
                    state.copies.insert(v, space);
                }
            }
        }
        Ok(state)
    }

    fn read_state(&self, txn: &mut dyn ReadTxn, type_name: &str) -> Result<TypeState, StoreError> {
        match txn.state(type_name)? {
            Some(s) => Ok(s),
            None => self.initial_state(type_name),
        }
    }

    fn write_state(
        &self,
        txn: &mut dyn WriteTxn,
        type_name: &str,
    ) -> Result<TypeState, StoreError> {
        match txn.state(type_name)? {
            Some(s) => Ok(s),
            None => {
                let s = self.initial_state(type_name)?;
                txn.put_state(type_name, &s)?;
                Ok(s)
            }
        }
    }

    /// How `type_name` is stored on this node now.
    pub fn state(&self, type_name: &str) -> Result<TypeState, StoreError> {
        self.set.type_def(type_name)?;
        self.backend.read(|txn| self.read_state(txn, type_name))
    }

    /// The migration the schema set asks for and the store has not done: `(from, to)` when
    /// the declared storage version differs from the one the data is in.
    pub fn pending_migration(&self, type_name: &str) -> Result<Option<(u32, u32)>, StoreError> {
        let declared = self.set.storage(type_name)?.version;
        let state = self.state(type_name)?;
        Ok((state.storage_version != declared).then_some((state.storage_version, declared)))
    }

    /// The views of document `id` through this store's schema set.
    pub(crate) fn views<'a>(&'a self, type_name: &'a str, id: &'a str) -> Views<'a> {
        Views {
            set: &self.set,
            params: &self.params,
            type_name,
            id,
        }
    }

    /// A live record's document in version `to`, from its held bodies (the stored body and
    /// what it carries): exactly what was written in `to`, if it was.
    fn translate(
        &self,
        type_name: &str,
        id: &str,
        record: &Record,
        to: u32,
    ) -> Result<Value, StoreError> {
        self.translate_leaf(
            type_name,
            id,
            record.version,
            &record.body,
            &record.carry,
            to,
        )
    }

    /// [`Store::translate`] for a leaf given by parts (a conflict leaf, a kept revision).
    fn translate_leaf(
        &self,
        type_name: &str,
        id: &str,
        version: u32,
        body: &Value,
        carry: &[Carried],
        to: u32,
    ) -> Result<Value, StoreError> {
        if carry.is_empty() {
            return self.translate_body(type_name, id, version, body, to);
        }
        let views = self.views(type_name, id);
        views.view(&views.held(version, body, carry), to)
    }

    /// `body`, in version `from`, in version `to`.
    fn translate_body(
        &self,
        type_name: &str,
        id: &str,
        from: u32,
        body: &Value,
        to: u32,
    ) -> Result<Value, StoreError> {
        self.views(type_name, id).translate(from, to, body)
    }

    fn document(
        &self,
        type_name: &str,
        id: &str,
        record: &Record,
        version: u32,
    ) -> Result<Document, StoreError> {
        Ok(Document {
            type_name: type_name.to_owned(),
            id: id.to_owned(),
            rev: record.rev.clone(),
            version,
            body: self.translate(type_name, id, record, version)?,
            access: record.access.clone(),
        })
    }

    /// Read a document in `version`. `None` if it does not exist or was deleted.
    pub fn get(
        &self,
        type_name: &str,
        id: &str,
        version: u32,
    ) -> Result<Option<Document>, StoreError> {
        self.check_version(type_name, version)?;
        Self::check_id(type_name, id)?;
        self.backend.read(|txn| {
            let state = self.read_state(txn, type_name)?;
            // `multi` reads its materialised copy; a document written before the copy existed
            // has none and is translated from the primary like any other.
            if let Some(&space) = state.copies.get(&version) {
                if let Some(copy) = txn.get(type_name, space, id)? {
                    if copy.deleted {
                        return Ok(None);
                    }
                    if copy.version == version {
                        return Ok(Some(self.document(type_name, id, &copy, version)?));
                    }
                }
            }
            match txn.get(type_name, state.primary, id)? {
                Some(r) if !r.deleted => Ok(Some(self.document(type_name, id, &r, version)?)),
                _ => Ok(None),
            }
        })
    }

    /// Read a document in `version` as JSON bytes: what [`Store::get`] reads, serialised
    /// (`serde_json::to_vec` of its body gives the same bytes), without making a `Value` of
    /// it on the way. The stored body is copied when it is already in `version`, else
    /// translated as bytes ([`mutatis_lens::Plan::translate_bytes`]), which touches only the
    /// fields the lenses name. A record that carries bodies of other versions (their views
    /// combine several held bodies), or whose body the byte translation refuses, is read
    /// through [`Store::get`]'s `Value` path instead, so the answer is always the same.
    pub fn get_raw(
        &self,
        type_name: &str,
        id: &str,
        version: u32,
    ) -> Result<Option<RawDocument>, StoreError> {
        self.check_version(type_name, version)?;
        Self::check_id(type_name, id)?;
        self.backend.read(|txn| {
            let state = self.read_state(txn, type_name)?;
            // As in `get`: `multi` reads its materialised copy when it has one in `version`.
            if let Some(&space) = state.copies.get(&version) {
                if let Some(bytes) = txn.get_raw(type_name, space, id)? {
                    let view =
                        RecordView::decode(&bytes, format_args!("{type_name}/{space}/{id}"))?;
                    if view.deleted {
                        return Ok(None);
                    }
                    if view.version == version {
                        return self.raw_document(type_name, id, space, &bytes, view, version);
                    }
                }
            }
            let space = state.primary;
            let Some(bytes) = txn.get_raw(type_name, space, id)? else {
                return Ok(None);
            };
            let view = RecordView::decode(&bytes, format_args!("{type_name}/{space}/{id}"))?;
            if view.deleted {
                return Ok(None);
            }
            self.raw_document(type_name, id, space, &bytes, view, version)
        })
    }

    /// A live record's document in `version` as bytes, from its stored encoding `bytes`
    /// (`view` is its decoded view).
    fn raw_document(
        &self,
        type_name: &str,
        id: &str,
        space: SpaceId,
        bytes: &[u8],
        view: RecordView<'_>,
        version: u32,
    ) -> Result<Option<RawDocument>, StoreError> {
        let raw = view.body.get().as_bytes();
        let body = if view.carries() {
            None
        } else if view.version == version {
            Some(raw.to_vec())
        } else {
            let plan = self.set.plan(type_name, view.version, version)?;
            let mut out = Vec::with_capacity(raw.len() + 64);
            plan.translate_bytes(raw, &self.params, &mut out)
                .ok()
                .map(|()| out)
        };
        let body = match body {
            Some(body) => body,
            // The `Value` path: held bodies, or the precise error of a translation.
            None => {
                let record = Record::decode(bytes, format_args!("{type_name}/{space}/{id}"))?;
                let value = self.translate(type_name, id, &record, version)?;
                serde_json::to_vec(&value).map_err(|e| StoreError::Corrupt {
                    what: "document",
                    key: format!("{type_name}/{id}"),
                    reason: e.to_string(),
                })?
            }
        };
        Ok(Some(RawDocument {
            rev: view.rev,
            version,
            body,
            access: view.access,
        }))
    }

    /// Revision `rev` of a document, in `version`: the current winner, a conflict leaf, or
    /// an earlier revision whose body is still kept (the last
    /// [`mutatis_schema::Storage::history`] of them). `None`: no such document, not even a
    /// tombstone.
    pub fn revision(
        &self,
        type_name: &str,
        id: &str,
        rev: &Rev,
        version: u32,
    ) -> Result<Option<RevisionRead>, StoreError> {
        self.check_version(type_name, version)?;
        Self::check_id(type_name, id)?;
        let keep = self.history_kept(type_name);
        self.backend.read(|txn| {
            let state = self.read_state(txn, type_name)?;
            let Some(record) = txn.get(type_name, state.primary, id)? else {
                return Ok(None);
            };
            let leaf = if record.rev == *rev {
                Some(Record {
                    conflicts: Vec::new(),
                    ..record.clone()
                })
            } else if let Some(l) = record.conflicts.iter().find(|l| l.rev == *rev) {
                Some(Record {
                    rev: l.rev.clone(),
                    version: l.version,
                    deleted: l.deleted,
                    access: l.access.clone(),
                    body: l.body.clone(),
                    history: l.history.clone(),
                    carry: l.carry.clone(),
                    conflicts: Vec::new(),
                    seq: 0,
                })
            } else {
                match record.history.iter().position(|r| r == rev) {
                    None => {
                        return Ok(Some(RevisionRead {
                            access: record.access,
                            revision: Revision::Unknown,
                        }))
                    }
                    Some(at) if at >= keep => None,
                    Some(_) => txn.get(type_name, REVISIONS_SPACE, &revision_key(id, rev))?,
                }
            };
            let revision = match leaf {
                None => Revision::NotKept,
                Some(l) if l.deleted => Revision::Deleted { access: l.access },
                Some(l) => Revision::Found(self.document(type_name, id, &l, version)?),
            };
            Ok(Some(RevisionRead {
                access: record.access,
                revision,
            }))
        })
    }

    /// A document as the retained backup holds it (the data from before the last
    /// migration's switch, until the backup is dropped), in `version`. `None`: the backup has
    /// no such live document.
    pub fn get_backup(
        &self,
        type_name: &str,
        id: &str,
        version: u32,
    ) -> Result<Option<Document>, StoreError> {
        self.check_version(type_name, version)?;
        Self::check_id(type_name, id)?;
        self.backend.read(|txn| {
            let state = self.read_state(txn, type_name)?;
            let Some(backup) = state.backup else {
                return Err(StoreError::NoBackup {
                    type_name: type_name.to_owned(),
                });
            };
            match txn.get(type_name, backup.space, id)? {
                Some(r) if !r.deleted => Ok(Some(self.document(type_name, id, &r, version)?)),
                _ => Ok(None),
            }
        })
    }

    /// Up to `limit` feed entries after `after`, each with the document's current record
    /// (tombstones included; `None` for a type the schema set no longer has), read in one
    /// snapshot. An entry whose document has changed since (its record names a later rev) is
    /// left out: the later change has an entry of its own further on, so a reader never
    /// pairs an entry with a newer body. The second value is the last sequence read, which is
    /// where to continue.
    pub fn feed(&self, after: u64, limit: usize) -> Result<(Vec<FeedEntry>, u64), StoreError> {
        self.backend.read(|txn| {
            let changes = txn.changes(after, limit)?;
            let last = changes.last().map_or(after, |c| c.seq);
            let mut states: BTreeMap<String, Option<TypeState>> = BTreeMap::new();
            let mut out = Vec::with_capacity(changes.len());
            for change in changes {
                if !states.contains_key(&change.type_name) {
                    let state = match self.set.type_def(&change.type_name) {
                        Ok(_) => Some(self.read_state(txn, &change.type_name)?),
                        Err(_) => None,
                    };
                    states.insert(change.type_name.clone(), state);
                }
                let record = match states.get(&change.type_name) {
                    Some(Some(state)) => txn.get(&change.type_name, state.primary, &change.id)?,
                    _ => None,
                };
                if record.as_ref().is_some_and(|r| r.rev != change.rev) {
                    continue;
                }
                out.push(FeedEntry { change, record });
            }
            Ok((out, last))
        })
    }

    /// A record's document in `version` (see [`Store::feed`]).
    pub fn view(
        &self,
        type_name: &str,
        id: &str,
        record: &Record,
        version: u32,
    ) -> Result<Value, StoreError> {
        self.check_version(type_name, version)?;
        self.translate(type_name, id, record, version)
    }

    /// The current rev of a live document.
    pub fn rev(&self, type_name: &str, id: &str) -> Result<Option<Rev>, StoreError> {
        self.set.type_def(type_name)?;
        Self::check_id(type_name, id)?;
        self.backend.read(|txn| {
            let state = self.read_state(txn, type_name)?;
            Ok(txn
                .get(type_name, state.primary, id)?
                .filter(|r| !r.deleted)
                .map(|r| r.rev))
        })
    }

    /// The access data of a document, tombstones included (`None`: no such document; `null`:
    /// none set), without translating its body: what a replication target checks a write
    /// against.
    pub fn access(&self, type_name: &str, id: &str) -> Result<Option<Value>, StoreError> {
        self.set.type_def(type_name)?;
        Self::check_id(type_name, id)?;
        self.backend.read(|txn| {
            let state = self.read_state(txn, type_name)?;
            Ok(txn.get(type_name, state.primary, id)?.map(|r| r.access))
        })
    }

    /// [`Store::list`] of the documents whose access data `visible` accepts, up to `limit`
    /// of them: the others, and tombstones, are skipped before anything is translated (so a
    /// document the caller may not see costs no translation and cannot fail one), and the
    /// scan goes on past them until the page is full or the type ends. What a page holds and
    /// where it ends therefore depend on the accepted documents alone: a page that stopped
    /// at a skipped record would say that something lies there, and probing `after=` around
    /// it would find its id. `next` is the last document of a full page.
    ///
    /// The price is a scan past every skipped record: a caller who may see few documents of
    /// many makes each page read many. Each read transaction scans at most
    /// [`LIST_SCAN_CHUNK`] records (or `limit`, if more), so none is long.
    pub fn list_visible(
        &self,
        type_name: &str,
        version: u32,
        after: Option<&str>,
        limit: usize,
        visible: &dyn Fn(&Value) -> bool,
    ) -> Result<Page, StoreError> {
        self.check_version(type_name, version)?;
        let limit = limit.max(1);
        let chunk = limit.max(LIST_SCAN_CHUNK);
        let mut docs: Vec<Document> = Vec::with_capacity(limit);
        let mut after = after.map(str::to_owned);
        loop {
            let wanted = limit - docs.len();
            let (found, last, ended) = self.backend.read(|txn| {
                let state = self.read_state(txn, type_name)?;
                let records = txn.scan(type_name, state.primary, after.as_deref(), chunk)?;
                let ended = records.len() < chunk;
                let mut found = Vec::new();
                let mut last = None;
                for (id, r) in &records {
                    last = Some(id.clone());
                    if !r.deleted && visible(&r.access) {
                        found.push(self.document(type_name, id, r, version)?);
                        if found.len() == wanted {
                            break;
                        }
                    }
                }
                Ok((found, last, ended))
            })?;
            docs.extend(found);
            if docs.len() == limit {
                let next = docs.last().map(|d| d.id.clone());
                return Ok(Page { docs, next });
            }
            match last {
                Some(id) if !ended => after = Some(id),
                _ => return Ok(Page { docs, next: None }),
            }
        }
    }

    /// Documents of a type in id order, in `version`, `limit` records at a time.
    pub fn list(
        &self,
        type_name: &str,
        version: u32,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.check_version(type_name, version)?;
        let limit = limit.max(1);
        self.backend.read(|txn| {
            let state = self.read_state(txn, type_name)?;
            let records = txn.scan(type_name, state.primary, after, limit)?;
            let next = if records.len() == limit {
                records.last().map(|(id, _)| id.clone())
            } else {
                None
            };
            let mut docs = Vec::with_capacity(records.len());
            for (id, r) in records.iter().filter(|(_, r)| !r.deleted) {
                docs.push(self.document(type_name, id, r, version)?);
            }
            Ok(Page { docs, next })
        })
    }

    /// Write a document in `version`. `expected` is the rev the writer last read (`None`: it
    /// creates the document). The body is validated against its version's schema, then
    /// translated to the storage version and merged onto the stored document, so fields the
    /// writer's version cannot express are kept.
    pub fn put(
        &self,
        type_name: &str,
        id: &str,
        version: u32,
        body: &Value,
        expected: Option<&Rev>,
    ) -> Result<Written, StoreError> {
        self.put_with_access(type_name, id, version, body, expected, None)
    }

    /// [`Store::put`], also setting the document's access data (`None`: keep what the stored
    /// document has; a new document has none). The store does not interpret it: the server
    /// decides who may read and write, and checks it against the rev it writes over, which
    /// makes the check and the write one atomic step.
    pub fn put_with_access(
        &self,
        type_name: &str,
        id: &str,
        version: u32,
        body: &Value,
        expected: Option<&Rev>,
        access: Option<&Value>,
    ) -> Result<Written, StoreError> {
        self.put_pending(type_name, id, version, body, expected, access)
            .wait()
    }

    /// [`Store::put_with_access`] for an async caller: the body is validated on the calling
    /// thread, then the write is queued for group commit and its result arrives through the
    /// returned [`PendingWrite`] (await it), so the caller needs no thread while it waits.
    pub fn put_pending(
        &self,
        type_name: &str,
        id: &str,
        version: u32,
        body: &Value,
        expected: Option<&Rev>,
        access: Option<&Value>,
    ) -> PendingWrite {
        let checked = self
            .check_version(type_name, version)
            .and_then(|()| self.check_body(type_name, id, version, body));
        if let Err(e) = checked {
            return PendingWrite::ready(Err(e));
        }
        let (type_name, id, body) = (type_name.to_owned(), id.to_owned(), body.clone());
        let (expected, access) = (expected.cloned(), access.cloned());
        self.write_grouped(move |store, txn| {
            let state = store.write_state(txn, &type_name)?;
            store.write_one(
                txn,
                &state,
                &type_name,
                &id,
                version,
                &body,
                Check::Expect(expected.as_ref()),
                access.as_ref(),
            )
        })
    }

    /// Replace the access data of a live document whose rev is `expected`. The body stays;
    /// the rev moves to the next generation and the feed records the change, so replicas and
    /// subscribers see the new policy as an update.
    pub fn set_access(
        &self,
        type_name: &str,
        id: &str,
        expected: &Rev,
        access: &Value,
    ) -> Result<Written, StoreError> {
        self.set.type_def(type_name)?;
        Self::check_id(type_name, id)?;
        let (type_name, id) = (type_name.to_owned(), id.to_owned());
        let (expected, access) = (expected.clone(), access.clone());
        self.write_grouped(move |store, txn| {
            let (type_name, id, expected, access) = (&*type_name, &*id, &expected, &access);
            let state = store.write_state(txn, type_name)?;
            let current = txn.get(type_name, state.primary, id)?;
            let live = current.as_ref().filter(|r| !r.deleted);
            check_rev(type_name, id, Some(expected), live)?;
            let Some(live) = live else {
                // Unreachable: check_rev refused a missing document with this same error.
                return Err(StoreError::Conflict {
                    type_name: type_name.to_owned(),
                    id: id.to_owned(),
                    expected: Some(expected.to_string()),
                    actual: None,
                });
            };
            let rev = next_rev(Some(&live.rev), &live.body, &live.carry, false);
            let leaf = ConflictLeaf {
                rev: rev.clone(),
                version: live.version,
                deleted: false,
                access: access.clone(),
                body: live.body.clone(),
                history: replica::ancestry(Some(live)),
                carry: live.carry.clone(),
            };
            let record = replica::write_local(Some(live), leaf);
            let seq = store.store_record(txn, &state, type_name, id, Some(live), record)?;
            Ok(Written { rev, seq })
        })
        .wait()
    }

    /// Bulk-load documents written in `version`, in one transaction (call it with batches of a
    /// few hundred to a few thousand). Each body is validated first; nothing is written if one
    /// fails. A document with a rev (from a dump or another node) is stored under that rev as
    /// is; one without becomes the next write of whatever is stored (an upsert, conserved like
    /// [`Store::put`]).
    pub fn import(
        &self,
        type_name: &str,
        version: u32,
        docs: &[ImportDoc],
    ) -> Result<Vec<Written>, StoreError> {
        self.check_version(type_name, version)?;
        for doc in docs {
            self.check_body(type_name, &doc.id, version, &doc.body)?;
        }
        self.write(|txn| {
            let state = self.write_state(txn, type_name)?;
            docs.iter()
                .map(|doc| {
                    let check = match &doc.rev {
                        Some(rev) => Check::Keep(rev),
                        None => Check::Upsert,
                    };
                    self.write_one(
                        txn, &state, type_name, &doc.id, version, &doc.body, check, None,
                    )
                })
                .collect()
        })
    }

    fn check_body(
        &self,
        type_name: &str,
        id: &str,
        version: u32,
        body: &Value,
    ) -> Result<(), StoreError> {
        Self::check_id(type_name, id)?;
        self.set
            .validate(type_name, version, body)
            .map_err(|issues| StoreError::Invalid {
                type_name: type_name.to_owned(),
                version,
                id: id.to_owned(),
                issues,
            })
    }

    /// One document write inside a transaction: rev check, translation to the storage version
    /// onto the stored document, `multi` copies, feed entry.
    #[allow(clippy::too_many_arguments)]
    fn write_one(
        &self,
        txn: &mut dyn WriteTxn,
        state: &TypeState,
        type_name: &str,
        id: &str,
        version: u32,
        body: &Value,
        check: Check<'_>,
        access: Option<&Value>,
    ) -> Result<Written, StoreError> {
        let current = txn.get(type_name, state.primary, id)?;
        let live = current.as_ref().filter(|r| !r.deleted);
        if let Check::Expect(expected) = check {
            check_rev(type_name, id, expected, live)?;
        }
        let target = state.storage_version;
        // The written body becomes what `version` holds; the storage version and every other
        // version the document holds are brought up to date onto what they held, so no
        // writer erases what its version cannot see, and what the storage version cannot
        // hold is carried beside it.
        let views = self.views(type_name, id);
        let old = live.map(|r| views.held(r.version, &r.body, &r.carry));
        let (stored_body, mut carry) = views.settle(
            BTreeMap::from([(version, body.clone())]),
            old.as_ref(),
            target,
        )?;
        if let Some(r) = live {
            carry.extend(held::foreign(&views, &r.carry));
        }
        let rev = match check {
            Check::Keep(rev) => rev.clone(),
            Check::Expect(_) | Check::Upsert => next_rev(
                current.as_ref().map(|r| &r.rev),
                &stored_body,
                &carry,
                false,
            ),
        };
        let history = match check {
            // An imported rev comes with no history: its ancestry is unknown here, unless it
            // is the rev already stored (a dump loaded twice).
            Check::Keep(rev) => match &current {
                Some(c) if c.rev == *rev => c.history.clone(),
                _ => Vec::new(),
            },
            Check::Expect(_) | Check::Upsert => replica::ancestry(current.as_ref()),
        };
        let leaf = ConflictLeaf {
            rev: rev.clone(),
            version: target,
            deleted: false,
            // A document written over its tombstone keeps the tombstone's policy unless the
            // write gives one: deleting never opens up a restricted id.
            access: match access {
                Some(a) => a.clone(),
                None => current.as_ref().map_or(Value::Null, |r| r.access.clone()),
            },
            body: stored_body,
            history,
            carry,
        };
        // Conflict leaves survive a local write (as in CouchDB): only a resolution ends them.
        let record = replica::write_local(current.as_ref(), leaf);
        let seq = self.store_record(txn, state, type_name, id, current.as_ref(), record)?;
        Ok(Written { rev, seq })
    }

    /// Delete a live document whose rev is `expected`. A tombstone stays, so the feed and
    /// replication see the delete and a later create continues the rev's generation.
    pub fn delete(&self, type_name: &str, id: &str, expected: &Rev) -> Result<Written, StoreError> {
        self.delete_pending(type_name, id, expected).wait()
    }

    /// [`Store::delete`] for an async caller, like [`Store::put_pending`].
    pub fn delete_pending(&self, type_name: &str, id: &str, expected: &Rev) -> PendingWrite {
        let checked = self
            .set
            .type_def(type_name)
            .map(|_| ())
            .map_err(StoreError::from)
            .and_then(|()| Self::check_id(type_name, id));
        if let Err(e) = checked {
            return PendingWrite::ready(Err(e));
        }
        let (type_name, id, expected) = (type_name.to_owned(), id.to_owned(), expected.clone());
        self.write_grouped(move |store, txn| {
            let (type_name, id, expected) = (&*type_name, &*id, &expected);
            let state = store.write_state(txn, type_name)?;
            let current = txn.get(type_name, state.primary, id)?;
            let live = current.as_ref().filter(|r| !r.deleted);
            check_rev(type_name, id, Some(expected), live)?;
            let rev = Rev::next(Some(expected), &Value::Null, true);
            let leaf = ConflictLeaf {
                rev: rev.clone(),
                version: state.storage_version,
                deleted: true,
                // The tombstone keeps the policy: whoever could not see the document must
                // not learn of its deletion from the feed either.
                access: live.map_or(Value::Null, |r| r.access.clone()),
                body: Value::Null,
                history: replica::ancestry(current.as_ref()),
                carry: Vec::new(),
            };
            // With a live conflict leaf, the delete loses to it (CouchDB): the feed then
            // shows the leaf, live, as the document's state.
            let record = replica::write_local(current.as_ref(), leaf);
            let seq = store.store_record(txn, &state, type_name, id, current.as_ref(), record)?;
            Ok(Written { rev, seq })
        })
    }

    /// Write a document's new record over `previous` (the record it replaces, if any): its
    /// feed entry (the one for `previous` goes, so the feed lists the document once, at its
    /// latest change), the superseded winner's body among the kept revisions, the record,
    /// and its `multi` copies. Returns the feed sequence.
    pub(crate) fn store_record(
        &self,
        txn: &mut dyn WriteTxn,
        state: &TypeState,
        type_name: &str,
        id: &str,
        previous: Option<&Record>,
        mut record: Record,
    ) -> Result<u64, StoreError> {
        // Appended before the old entry goes: the feed's last sequence never moves back.
        let seq = txn.append_change(type_name, id, &record.rev, record.deleted)?;
        if let Some(previous) = previous {
            if previous.seq != 0 && previous.seq != seq {
                txn.remove_change(previous.seq)?;
            }
            self.keep_revision(txn, type_name, id, previous, &record)?;
        }
        record.seq = seq;
        txn.put(type_name, state.primary, id, &record)?;
        self.write_copies(txn, type_name, id, state, &record)?;
        Ok(seq)
    }

    /// How many earlier revisions of a `type_name` document keep their bodies.
    fn history_kept(&self, type_name: &str) -> usize {
        let n = self
            .set
            .storage(type_name)
            .map_or(mutatis_schema::Storage::DEFAULT_HISTORY, |s| s.history);
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// Keep the body of the winner `record` supersedes (when it descends from it) among the
    /// document's earlier revisions, and let go of the ones pushed out of the last
    /// [`mutatis_schema::Storage::history`]. A winner that lost to a concurrent edit instead
    /// stays on the record as a conflict leaf.
    fn keep_revision(
        &self,
        txn: &mut dyn WriteTxn,
        type_name: &str,
        id: &str,
        previous: &Record,
        record: &Record,
    ) -> Result<(), StoreError> {
        let keep = self.history_kept(type_name);
        if previous.rev == record.rev {
            return Ok(());
        }
        if let Some(at) = record.history.iter().position(|r| *r == previous.rev) {
            if at < keep {
                let kept = Record {
                    history: Vec::new(),
                    conflicts: Vec::new(),
                    seq: 0,
                    ..previous.clone()
                };
                txn.put(
                    type_name,
                    REVISIONS_SPACE,
                    &revision_key(id, &previous.rev),
                    &kept,
                )?;
            }
        }
        // The kept bodies were the first `keep` of the old history; this write put `grown`
        // revs in front, so those now at `keep..keep + grown` are pushed out.
        let grown = record
            .history
            .len()
            .saturating_sub(previous.history.len())
            .clamp(1, 64);
        for rev in record.history.iter().skip(keep).take(grown) {
            txn.remove(type_name, REVISIONS_SPACE, &revision_key(id, rev))?;
        }
        Ok(())
    }

    /// `multi`: bring every materialised copy up to date with the primary record, in the same
    /// transaction, so that a copy is never older than the primary.
    fn write_copies(
        &self,
        txn: &mut dyn WriteTxn,
        type_name: &str,
        id: &str,
        state: &TypeState,
        record: &Record,
    ) -> Result<(), StoreError> {
        for (&version, &space) in &state.copies {
            let copy = if record.deleted {
                Record {
                    version,
                    ..record.clone()
                }
            } else {
                Record {
                    body: self.translate(type_name, id, record, version)?,
                    version,
                    ..record.clone()
                }
            };
            txn.put(type_name, space, id, &copy)?;
        }
        Ok(())
    }

    /// Up to `limit` feed entries after sequence `after`, in order.
    pub fn changes(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.backend.read(|txn| txn.changes(after, limit))
    }

    /// The feed's last sequence.
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        self.backend.read(|txn| txn.last_seq())
    }

    /// A node setting, stored beside the documents (so it is shared by every process on a
    /// PostgreSQL store, and survives restarts): tokens, the node id, replication checkpoints.
    /// Keys are namespaced apart from the store's own bookkeeping.
    pub fn setting(&self, key: &str) -> Result<Option<Value>, StoreError> {
        let key = setting_key(key);
        self.backend.read(|txn| match txn.meta(&key)? {
            Some(text) => decode_setting(&key, &text).map(Some),
            None => Ok(None),
        })
    }

    /// The settings whose keys start with `prefix`, in key order (keys without the namespace).
    pub fn settings(&self, prefix: &str) -> Result<Vec<(String, Value)>, StoreError> {
        let full = setting_key(prefix);
        self.backend.read(|txn| {
            txn.meta_prefix(&full)?
                .into_iter()
                .map(|(k, text)| {
                    let value = decode_setting(&k, &text)?;
                    Ok((k[SETTING_NAMESPACE.len()..].to_owned(), value))
                })
                .collect()
        })
    }

    /// Set (`Some`) or remove (`None`) a node setting.
    pub fn put_setting(&self, key: &str, value: Option<&Value>) -> Result<(), StoreError> {
        let key = setting_key(key);
        let text = value.map(Value::to_string);
        self.write(|txn| txn.put_meta(&key, text.as_deref()))
    }

    /// Set a node setting only if it is absent; returns the value now stored (the given one,
    /// or the one another process set first). Makes one-time initialisation (a node id, the
    /// first admin token) race-free across processes.
    pub fn init_setting(&self, key: &str, value: &Value) -> Result<Value, StoreError> {
        let key = setting_key(key);
        let text = value.to_string();
        self.write(|txn| match txn.meta(&key)? {
            Some(existing) => decode_setting(&key, &existing),
            None => {
                txn.put_meta(&key, Some(&text))?;
                Ok(value.clone())
            }
        })
    }

    /// Read and write node settings in one write transaction (serialised with every other
    /// write, across processes on PostgreSQL): how a lease is taken or renewed, and how a
    /// checkpoint is written only while its writer still holds its task's lease, and how
    /// counters kept in settings are added to rather than overwritten (usage per release).
    /// `f` may run more than once (see [`Backend::write`]): it must compute from what it reads.
    pub fn update_settings<R>(
        &self,
        mut f: impl FnMut(&mut Settings<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.write(|txn| f(&mut Settings { txn }))
    }

    /// Documents of a type that migrations set aside.
    pub fn quarantined(&self, type_name: &str) -> Result<Vec<Quarantined>, StoreError> {
        self.set.type_def(type_name)?;
        self.backend.read(|txn| txn.quarantined(type_name))
    }

    /// The space a type takes, per space.
    pub fn space_report(&self, type_name: &str) -> Result<SpaceReport, StoreError> {
        self.set.type_def(type_name)?;
        self.backend.read(|txn| {
            let state = self.read_state(txn, type_name)?;
            let primary = txn.space_stats(type_name, state.primary)?;
            let backup = match &state.backup {
                Some(b) => Some(txn.space_stats(type_name, b.space)?),
                None => None,
            };
            let migration = match &state.migration {
                Some(m) if m.kind == MigrationKind::Forward => {
                    Some(txn.space_stats(type_name, m.to_space)?)
                }
                _ => None,
            };
            let mut copies = BTreeMap::new();
            for (&v, &space) in &state.copies {
                copies.insert(v, txn.space_stats(type_name, space)?);
            }
            Ok(SpaceReport {
                primary,
                backup,
                migration,
                copies,
            })
        })
    }

    /// Start migrating `type_name` to storage version `to`. With `lazy` there is nothing to
    /// move: the storage version changes at once (documents are translated on read and
    /// upgraded when written) and `None` is returned. Otherwise the migration is set up and its
    /// progress returned; run it with [`Store::step_migration`] or [`Store::run_migration`].
    pub fn start_migration(
        &self,
        type_name: &str,
        to: u32,
        options: MigrationOptions,
    ) -> Result<Option<Progress>, StoreError> {
        // Statistics first: the migration's scans are planned from them.
        self.backend.refresh_statistics()?;
        self.begin_forward(type_name, Some(to), options)
    }

    /// Start rewriting every document of `type_name` in its current storage version: the
    /// optional background upgrade of `lazy`, whose documents otherwise stay in the version
    /// they were written in. It is a migration like any other (batches, checkpoints, backup).
    pub fn start_upgrade(
        &self,
        type_name: &str,
        options: MigrationOptions,
    ) -> Result<Progress, StoreError> {
        self.begin_forward(type_name, None, options)?
            .ok_or_else(|| StoreError::NoMigration {
                type_name: type_name.to_owned(),
            })
    }

    /// A forward migration to `to`, or (`None`) an in-place upgrade to the storage version.
    fn begin_forward(
        &self,
        type_name: &str,
        to: Option<u32>,
        options: MigrationOptions,
    ) -> Result<Option<Progress>, StoreError> {
        if let Some(to) = to {
            self.check_version(type_name, to)?;
        }
        // Counting is a full scan: done in a read transaction, so writers do not wait for it.
        // The count is only for progress; writes after it are picked up by the replay.
        let (from, total) = self.backend.read(|txn| {
            let state = self.read_state(txn, type_name)?;
            Ok((
                state.storage_version,
                txn.space_stats(type_name, state.primary)?.records,
            ))
        })?;
        let upgrade = to.is_none();
        let to = to.unwrap_or(from);
        // Refuse a translation that cannot be built before touching anything.
        self.set.plan(type_name, from, to)?;
        self.write(|txn| {
            let mut state = self.write_state(txn, type_name)?;
            if let Some(m) = &state.migration {
                return Err(StoreError::MigrationInFlight {
                    type_name: type_name.to_owned(),
                    from: m.from_version,
                    to: m.to_version,
                });
            }
            if state.storage_version == to && !upgrade {
                return Err(StoreError::AlreadyAtVersion {
                    type_name: type_name.to_owned(),
                    version: to,
                });
            }
            // An upgrade targets the storage version as it is now (the count above may be a
            // moment older; it only feeds progress).
            let to = if upgrade { state.storage_version } else { to };
            if state.strategy == Strategy::Lazy && !upgrade {
                state.storage_version = to;
                txn.put_state(type_name, &state)?;
                return Ok(None);
            }
            if let Some(b) = &state.backup {
                // Replacing the backup would drop data nobody asked to drop.
                return Err(StoreError::BackupKept {
                    type_name: type_name.to_owned(),
                    version: b.version,
                });
            }
            // The quarantine lists what the latest migration of the type set aside.
            txn.clear_quarantine(type_name)?;
            let snapshot = txn.last_seq()?;
            let to_space = state.allocate_space();
            let m = Migration::forward(
                state.storage_version,
                to,
                state.primary,
                to_space,
                snapshot,
                total,
                options.on_error,
                options.batch_size,
            );
            let progress = m.progress();
            state.migration = Some(m);
            txn.put_state(type_name, &state)?;
            Ok(Some(progress))
        })
    }

    /// Start rolling `type_name` back onto its retained backup: the changes made since the
    /// switch are replayed onto the backup (translated back, merged onto the backup's documents)
    /// and the backup becomes primary again; the current primary becomes the backup.
    pub fn start_rollback(
        &self,
        type_name: &str,
        options: MigrationOptions,
    ) -> Result<Progress, StoreError> {
        self.set.type_def(type_name)?;
        self.write(|txn| {
            let mut state = self.write_state(txn, type_name)?;
            if let Some(m) = &state.migration {
                return Err(StoreError::MigrationInFlight {
                    type_name: type_name.to_owned(),
                    from: m.from_version,
                    to: m.to_version,
                });
            }
            let Some(backup) = state.backup.clone() else {
                return Err(StoreError::NoBackup {
                    type_name: type_name.to_owned(),
                });
            };
            txn.clear_quarantine(type_name)?;
            let pending = txn.last_seq()?.saturating_sub(backup.switched_at);
            let m = Migration::rollback(
                state.storage_version,
                backup.version,
                state.primary,
                backup.space,
                backup.switched_at,
                pending,
                options.on_error,
                options.batch_size,
            );
            let progress = m.progress();
            state.migration = Some(m);
            txn.put_state(type_name, &state)?;
            Ok(progress)
        })
    }

    /// The progress of the migration in flight, if any.
    pub fn migration(&self, type_name: &str) -> Result<Option<Progress>, StoreError> {
        Ok(self.state(type_name)?.migration.map(|m| m.progress()))
    }

    /// Run one batch of the migration in flight, in one transaction with its checkpoint.
    pub fn step_migration(&self, type_name: &str) -> Result<Step, StoreError> {
        self.step_migration_at_most(type_name, u32::MAX)
    }

    /// [`Store::step_migration`] with a batch of at most `max_docs` documents (the
    /// migration's own batch size still caps it). [`Store::run_migration`] uses it to keep
    /// each batch within a time budget on a slow backend.
    pub fn step_migration_at_most(
        &self,
        type_name: &str,
        max_docs: u32,
    ) -> Result<Step, StoreError> {
        self.set.type_def(type_name)?;
        self.write(|txn| {
            let mut state = self.write_state(txn, type_name)?;
            let Some(mut m) = state.migration.clone() else {
                return Err(StoreError::NoMigration {
                    type_name: type_name.to_owned(),
                });
            };
            let translator = SetTranslator {
                set: &self.set,
                params: &self.params,
                type_name,
            };
            let stopped =
                |s: crate::migrate::Stopped, m: &Migration| StoreError::MigrationStopped {
                    type_name: type_name.to_owned(),
                    from: s.from,
                    to: m.to_version,
                    id: s.id,
                    reason: s.reason,
                };
            let replaying = matches!(m.phase, crate::migrate::Phase::Replay { .. });
            // The cap holds for this step only: the command and the reading of its result
            // must agree on the limit (a short read ends a phase), and the stored batch size
            // stays what the migration was started with.
            let stored_batch = m.batch_size;
            m.batch_size = stored_batch.min(max_docs.max(1));
            let batch = match m.next_command() {
                Command::ReadDocs {
                    space,
                    after,
                    limit,
                } => {
                    let docs = txn.scan(type_name, space, after.as_deref(), limit)?;
                    m.on_docs(&docs, &translator).map_err(|s| stopped(s, &m))?
                }
                Command::ReadChanges { after, limit } => {
                    let changes = txn.changes(after, limit)?;
                    let mut seen = HashSet::new();
                    let mut items = Vec::new();
                    for c in changes.iter().filter(|c| c.type_name == type_name) {
                        if seen.insert(c.id.as_str()) {
                            items.push(ReplayItem {
                                id: c.id.clone(),
                                source: txn.get(type_name, m.from_space, &c.id)?,
                                target: txn.get(type_name, m.to_space, &c.id)?,
                            });
                        }
                    }
                    let last = changes.last().map(|c| c.seq);
                    m.on_changes(changes.len(), last, &items, &translator)
                        .map_err(|s| stopped(s, &m))?
                }
            };
            let puts: Vec<(&str, &Record)> = batch
                .writes
                .iter()
                .filter_map(|w| match w {
                    TargetWrite::Put(id, record) => Some((id.as_str(), record)),
                    TargetWrite::Remove(_) => None,
                })
                .collect();
            // Puts and removes concern distinct ids (one item per id per batch), so their
            // order between each other does not matter.
            txn.put_many(type_name, m.to_space, &puts)?;
            for w in &batch.writes {
                match w {
                    TargetWrite::Put(id, _) if replaying => {
                        // Set aside earlier, translatable now: no longer in quarantine.
                        txn.remove_quarantine(type_name, id)?;
                    }
                    TargetWrite::Put(..) => {}
                    TargetWrite::Remove(id) => txn.remove(type_name, m.to_space, id)?,
                }
            }
            for q in &batch.quarantine {
                txn.put_quarantine(type_name, q)?;
            }
            m.batch_size = stored_batch;
            let progress = m.progress();
            if batch.switch {
                // Writers are serialised with this transaction: no write lands between the
                // last replayed change and the switch.
                let switched_at = txn.last_seq()?;
                if let Some(old) = state.backup.take() {
                    if old.space != m.to_space {
                        state.garbage.push(old.space);
                    }
                }
                state.backup = Some(Backup {
                    space: m.from_space,
                    version: m.from_version,
                    switched_at,
                });
                // `multi`: the new storage version is the primary now; a copy of it would only
                // duplicate it.
                if let Some(copy) = state.copies.remove(&m.to_version) {
                    state.garbage.push(copy);
                }
                state.primary = m.to_space;
                state.storage_version = m.to_version;
                state.migration = None;
                txn.put_state(type_name, &state)?;
                Ok(Step::Switched(progress))
            } else {
                state.migration = Some(m);
                txn.put_state(type_name, &state)?;
                Ok(Step::Running(progress))
            }
        })
    }

    /// Run one batch of the migration in flight, sized by `pacer` to the time budget a
    /// batch may hold the writers up for (smaller while writers wait), from the time the
    /// recent batches took. A caller stepping a migration itself (the server, which takes
    /// the store anew for each batch to see a reload) keeps one pacer for the whole run.
    pub fn step_migration_paced(
        &self,
        type_name: &str,
        pacer: &mut MigrationPacer,
    ) -> Result<Step, StoreError> {
        let pacer = &mut pacer.0;
        let budget = self.batch_budget();
        if budget != pacer.budget {
            pacer.budget = budget;
            pacer.resize();
        }
        let started = std::time::Instant::now();
        let step = self.step_migration_at_most(type_name, pacer.max_docs)?;
        if let Step::Running(p) = &step {
            pacer.observe(p.done, started.elapsed());
        }
        Ok(step)
    }

    /// Run the migration in flight to its switch, calling `on_progress` after every batch.
    /// Resumes from the checkpoint if a previous run was interrupted.
    pub fn run_migration(
        &self,
        type_name: &str,
        mut on_progress: impl FnMut(&Progress),
    ) -> Result<Progress, StoreError> {
        let mut pacer = MigrationPacer::default();
        loop {
            match self.step_migration_paced(type_name, &mut pacer)? {
                Step::Running(p) => on_progress(&p),
                Step::Switched(p) => {
                    on_progress(&p);
                    self.collect_garbage(type_name)?;
                    return Ok(p);
                }
            }
        }
    }

    /// Abort the migration in flight. Nothing was switched, so the live data is as it was; a
    /// forward migration's partial target is emptied. An aborted rollback leaves the backup
    /// holding some replayed changes, which a later rollback replays again (replay is
    /// idempotent), so the backup stays usable.
    pub fn abort_migration(&self, type_name: &str) -> Result<(), StoreError> {
        self.set.type_def(type_name)?;
        self.write(|txn| {
            let mut state = self.write_state(txn, type_name)?;
            let Some(m) = state.migration.take() else {
                return Err(StoreError::NoMigration {
                    type_name: type_name.to_owned(),
                });
            };
            if m.kind == MigrationKind::Forward {
                state.garbage.push(m.to_space);
            }
            txn.put_state(type_name, &state)
        })?;
        self.collect_garbage(type_name)
    }

    /// Drop the retained backup (after this, no rollback).
    pub fn drop_backup(&self, type_name: &str) -> Result<(), StoreError> {
        self.set.type_def(type_name)?;
        self.write(|txn| {
            let mut state = self.write_state(txn, type_name)?;
            if let Some(m) = &state.migration {
                if m.kind == MigrationKind::Rollback {
                    return Err(StoreError::MigrationInFlight {
                        type_name: type_name.to_owned(),
                        from: m.from_version,
                        to: m.to_version,
                    });
                }
            }
            let Some(b) = state.backup.take() else {
                return Err(StoreError::NoBackup {
                    type_name: type_name.to_owned(),
                });
            };
            state.garbage.push(b.space);
            txn.put_state(type_name, &state)
        })?;
        self.collect_garbage(type_name)
    }

    /// Empty the spaces queued for removal, one batch per transaction. Safe to call at any
    /// time (spaces are never reused) and resumable after a crash.
    pub fn collect_garbage(&self, type_name: &str) -> Result<(), StoreError> {
        loop {
            let more = self.write(|txn| {
                let mut state = self.write_state(txn, type_name)?;
                let Some(&space) = state.garbage.first() else {
                    return Ok(false);
                };
                if txn.clear_space(type_name, space, CLEAR_BATCH)? < CLEAR_BATCH {
                    state.garbage.remove(0);
                    txn.put_state(type_name, &state)?;
                }
                Ok(true)
            })?;
            if !more {
                return Ok(());
            }
        }
    }
}

/// The longest one migration batch may hold the writers back when [`Store::run_migration`]
/// drives it. A writer waits for at most one batch, so this bounds the migration's share of
/// a write's latency; a backend with a round trip per statement (PostgreSQL) gets smaller
/// batches, a fast one (redb) keeps the migration's batch size. While this process writes
/// documents, batches are sized to about two of its writes instead (at least
/// [`MIN_BATCH_TIME`]), so the wait stays proportionate to a write on any backend.
pub const BATCH_TIME_BUDGET: std::time::Duration = std::time::Duration::from_millis(15);

/// The shortest batch time the migration is paced to: below it, per-transaction costs eat
/// the migration's throughput.
pub const MIN_BATCH_TIME: std::time::Duration = std::time::Duration::from_micros(500);

/// What sizes a migration's batches ([`Store::step_migration_paced`]): kept by the caller
/// from one batch to the next.
#[derive(Debug)]
pub struct MigrationPacer(BatchPacer);

impl Default for MigrationPacer {
    fn default() -> MigrationPacer {
        MigrationPacer(BatchPacer::new(BATCH_TIME_BUDGET))
    }
}

/// Sizes migration batches to a time budget from the time the recent ones took.
///
/// The estimate is the median time per document over the last [`BatchPacer::WINDOW`]
/// batches, not the last batch alone. A batch's time is mostly proportional to its
/// documents, but now and then one waits on something that is not: a commit's flush that
/// meets a checkpoint, the database writing out pages to make room. Shrinking the next batch
/// for such a stall does not shorten the stall (a small batch meets it just as well), and
/// it costs throughput, since every batch pays a fixed cost (a durable commit: about 2.5 ms
/// on PostgreSQL here). Measured at 1M documents on PostgreSQL, a pacer that shrank after
/// any slow batch and grew back only below half the budget drifted down to batches of a
/// few dozen documents, which ran the migration at a quarter of a plain copy's speed. The
/// median ignores the odd stall and still follows a lasting change (writers arriving, a
/// loaded database) within half a window.
#[derive(Debug)]
struct BatchPacer {
    budget: std::time::Duration,
    /// The cap for the next step (`u32::MAX`: the migration's own batch size).
    max_docs: u32,
    /// `progress.done` after the previous step.
    last_done: Option<u64>,
    /// Nanoseconds per document of the recent batches, oldest first.
    recent: std::collections::VecDeque<f64>,
}

impl BatchPacer {
    /// The smallest batch: below it per-transaction costs dominate.
    const MIN_DOCS: u32 = 32;

    /// How many recent batches the estimate is taken over.
    const WINDOW: usize = 9;

    fn new(budget: std::time::Duration) -> BatchPacer {
        BatchPacer {
            budget,
            max_docs: u32::MAX,
            last_done: None,
            recent: std::collections::VecDeque::with_capacity(Self::WINDOW),
        }
    }

    fn observe(&mut self, done: u64, took: std::time::Duration) {
        let docs = self.last_done.map_or(done, |d| done.saturating_sub(d));
        self.last_done = Some(done);
        if docs == 0 {
            return;
        }
        if self.recent.len() == Self::WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(took.as_nanos() as f64 / docs as f64);
        self.resize();
    }

    /// Size the next batch to the budget (which the caller may have changed since the last
    /// batch) at the recent median time per document. The per-document time includes each
    /// batch's fixed cost, so a small batch looks slow per document and the next one is
    /// sized larger: the size settles where a batch takes about the budget.
    fn resize(&mut self) {
        let mut sorted: Vec<f64> = self.recent.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let Some(&per_doc) = sorted.get(sorted.len() / 2) else {
            return;
        };
        if per_doc <= 0.0 {
            return;
        }
        let fit = self.budget.as_nanos() as f64 / per_doc;
        // Float to integer casts saturate: a huge fit is "no cap of ours".
        self.max_docs = (fit as u32).max(Self::MIN_DOCS);
    }
}

/// Settings live under this prefix of the backend's key-value table, apart from `format`.
const SETTING_NAMESPACE: &str = "setting/";

/// Node settings inside one write transaction ([`Store::update_settings`]).
pub struct Settings<'t> {
    txn: &'t mut dyn WriteTxn,
}

impl Settings<'_> {
    /// A setting as this transaction sees it.
    pub fn get(&mut self, key: &str) -> Result<Option<Value>, StoreError> {
        let key = setting_key(key);
        match self.txn.meta(&key)? {
            Some(text) => decode_setting(&key, &text).map(Some),
            None => Ok(None),
        }
    }

    /// The settings whose keys start with `prefix`, in key order (keys without the
    /// namespace).
    pub fn prefixed(&mut self, prefix: &str) -> Result<Vec<(String, Value)>, StoreError> {
        let full = setting_key(prefix);
        self.txn
            .meta_prefix(&full)?
            .into_iter()
            .map(|(k, text)| {
                let value = decode_setting(&k, &text)?;
                Ok((k[SETTING_NAMESPACE.len()..].to_owned(), value))
            })
            .collect()
    }

    /// Set (`Some`) or remove (`None`) a setting, at the transaction's commit.
    pub fn put(&mut self, key: &str, value: Option<&Value>) -> Result<(), StoreError> {
        let key = setting_key(key);
        let text = value.map(Value::to_string);
        self.txn.put_meta(&key, text.as_deref())
    }
}

fn setting_key(key: &str) -> String {
    format!("{SETTING_NAMESPACE}{key}")
}

fn decode_setting(key: &str, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: "setting",
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// The rev of a write that stores `body` with `carry`: the content hash covers what is
/// carried too, so two writes that differ only in what the storage version cannot hold (an
/// email a newer release added) never share a rev, which replication would take for the same
/// write. Without carried bodies it is the rev of the body alone, as it always was.
pub(crate) fn next_rev(
    previous: Option<&Rev>,
    body: &Value,
    carry: &[Carried],
    deleted: bool,
) -> Rev {
    if carry.is_empty() {
        return Rev::next(previous, body, deleted);
    }
    let carried: Vec<Value> = carry
        .iter()
        .map(|c| serde_json::json!({"version": c.version, "body": c.body}))
        .collect();
    Rev::next(
        previous,
        &serde_json::json!({"body": body, "carry": carried}),
        deleted,
    )
}

fn check_rev(
    type_name: &str,
    id: &str,
    expected: Option<&Rev>,
    live: Option<&Record>,
) -> Result<(), StoreError> {
    let actual = live.map(|r| &r.rev);
    if expected == actual {
        return Ok(());
    }
    Err(StoreError::Conflict {
        type_name: type_name.to_owned(),
        id: id.to_owned(),
        expected: expected.map(Rev::to_string),
        actual: actual.map(Rev::to_string),
    })
}

/// Translation for the migrator: the schema set's plan, then the target schema, so a document
/// that translates into something invalid is caught like one that does not translate.
struct SetTranslator<'a> {
    set: &'a SchemaSet,
    params: &'a Params,
    type_name: &'a str,
}

impl Translate for SetTranslator<'_> {
    fn translate(
        &self,
        record: &Record,
        to: u32,
        onto: Option<&Record>,
    ) -> Result<Translated, String> {
        let views = Views {
            set: self.set,
            params: self.params,
            type_name: self.type_name,
            id: "",
        };
        let reason = |e: StoreError| match e {
            StoreError::Translate {
                from, to, source, ..
            } => format!("cannot translate from version {from} to {to}: {source}"),
            other => other.to_string(),
        };
        let (body, carry) = if onto.is_none() && record.carry.is_empty() {
            // The common case of a forward migration: one held body and nothing to merge
            // onto. This is what `settle` computes for it (the body translated to `to`, and
            // carried as well unless translating back gives it again), without copying the
            // body into a map first.
            let from = record.version;
            let body = views.translate(from, to, &record.body).map_err(reason)?;
            let derivable = views
                .translate(to, from, &body)
                .is_ok_and(|back| back == record.body);
            let carry = if derivable {
                Vec::new()
            } else {
                vec![Carried {
                    version: from,
                    body: record.body.clone(),
                }]
            };
            (body, carry)
        } else {
            // Every body the record holds moves as it is; the target version is derived from
            // them (onto the backup's document in a rollback, so what the newer version lacks
            // survives), and what it cannot hold stays carried. A migration to an older
            // version therefore drops nothing.
            let written: BTreeMap<u32, Value> = views
                .held(record.version, &record.body, &record.carry)
                .into_iter()
                .map(|(v, b)| (v, b.clone()))
                .collect();
            let old = onto.map(|o| views.held(o.version, &o.body, &o.carry));
            let (body, mut carry) = views.settle(written, old.as_ref(), to).map_err(reason)?;
            carry.extend(held::foreign(&views, &record.carry));
            (body, carry)
        };
        if let Err(issues) = self.set.validate(self.type_name, to, &body) {
            let text: Vec<String> = issues.iter().take(5).map(ToString::to_string).collect();
            return Err(format!(
                "the translation fails {}@{to}'s schema: {}",
                self.type_name,
                text.join("; ")
            ));
        }
        Ok(Translated { body, carry })
    }
}

#[cfg(test)]
mod pacer_tests {
    use super::BatchPacer;
    use std::time::Duration;

    #[test]
    fn batches_are_sized_to_the_budget_at_the_median_time_per_document() {
        let mut p = BatchPacer::new(Duration::from_millis(10));
        assert_eq!(p.max_docs, u32::MAX);
        // 500 documents took 40 ms (80 µs each): 125 fit the budget.
        p.observe(500, Duration::from_millis(40));
        assert_eq!(p.max_docs, 125);
        // Faster batches move the median: 125 in 2.5 ms and 125 in 2.5 ms (20 µs each).
        p.observe(625, Duration::from_micros(2500));
        p.observe(750, Duration::from_micros(2500));
        assert_eq!(p.max_docs, 500);
        // Never below the floor, however slow.
        let mut slow = BatchPacer::new(Duration::from_millis(10));
        slow.observe(100, Duration::from_secs(5));
        assert_eq!(slow.max_docs, BatchPacer::MIN_DOCS);
        // A step that moved nothing (a replay of foreign changes) teaches nothing.
        let before = p.max_docs;
        p.observe(750, Duration::from_secs(1));
        assert_eq!(p.max_docs, before);
    }

    #[test]
    fn a_lone_stall_does_not_shrink_the_batches_but_a_lasting_slowdown_does() {
        let mut p = BatchPacer::new(Duration::from_millis(15));
        let mut done = 0;
        for _ in 0..BatchPacer::WINDOW {
            done += 500;
            p.observe(done, Duration::from_millis(10));
        }
        assert_eq!(p.max_docs, 750);
        // One batch waits 200 ms on a checkpoint's flush: nothing about the next batch's
        // size would have avoided it, so the size stays.
        done += 500;
        p.observe(done, Duration::from_millis(200));
        assert_eq!(p.max_docs, 750);
        // The database slows down for good (four times slower): once slow batches are
        // most of the window, batches shrink to fit the budget again.
        for _ in 0..BatchPacer::WINDOW / 2 {
            done += 500;
            p.observe(done, Duration::from_millis(40));
        }
        assert_eq!(p.max_docs, 187);
    }

    #[test]
    fn a_smaller_budget_applies_to_the_next_batch_at_once() {
        let mut p = BatchPacer::new(Duration::from_millis(15));
        p.observe(500, Duration::from_millis(10));
        assert_eq!(p.max_docs, 750);
        // A writer appeared: the budget drops to about two of its writes.
        p.budget = Duration::from_millis(2);
        p.resize();
        assert_eq!(p.max_docs, 100);
    }
}
