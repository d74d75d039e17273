//! The storage primitives every backend provides.
//!
//! The store's logic (revs, translation, the migration state machine) is written once against
//! these traits; a backend only stores bytes under keys inside transactions.
//!
//! **Why synchronous.** redb, the embedded default, is synchronous, and every store operation
//! is a short transaction of CPU work (translation, validation) around a few key lookups. A sync
//! trait keeps the core free of an executor and lets a transaction be a plain closure. The
//! server calls the store from `tokio::task::spawn_blocking`, which is what it must do for redb
//! anyway. The PostgreSQL backend uses the `postgres` crate, the blocking face of
//! `tokio-postgres`, for the same reason; it locks one "feed head" row first in every write
//! transaction, which gives the same serialisation of writers against a migration's switch
//! (and gap-free sequence numbers in commit order) that redb's single writer gives.
//!
//! A write transaction's closure may be run more than once (a PostgreSQL serialisation failure
//! is retried), so it must not have effects outside the transaction: hence `FnMut`.

use crate::error::StoreError;
use crate::model::{Change, Quarantined, Record, SpaceId, SpaceStats, TypeState};
use crate::rev::Rev;

/// A storage backend: runs transactions.
pub trait Backend: Send + Sync + 'static {
    /// The backend's name, for errors and reports (`redb`, `postgres`).
    const NAME: &'static str;

    /// Whether a read transaction is cheap enough to run on an async runtime's worker thread:
    /// local page reads of a few microseconds, never a network round trip. An async caller
    /// then skips the hand-off to a blocking thread (which costs more than such a read);
    /// otherwise it must use one.
    const READS_ARE_LOCAL: bool = false;

    /// Bring the backend's query-planning statistics up to date (outside any transaction),
    /// before a long scan such as a migration. A database that plans from statistics plans a
    /// freshly bulk-loaded table blind until its background maintenance catches up; measured
    /// on PostgreSQL, a migration started right after a 1M-document import ran at 0.4 of a
    /// plain copy's speed, and at 0.94 once the table was analysed. Default: nothing to do.
    fn refresh_statistics(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Follow the commits of every process sharing the store: from a thread of the
    /// backend's, call `wake(seq)` after another process (or this one) committed a write
    /// that advanced the feed to `seq` (`seq` 0: "something may have changed", after a
    /// reconnection), and now and then with 0 to ask whether it is still wanted; stop when
    /// it returns `false`. A wake-up only, never for correctness: a notification may be
    /// lost (a dropped connection), so a caller keeps a slower poll as a safety net.
    ///
    /// Returns whether such wake-ups come at all. Default: `false` (a store only one
    /// process opens, like redb: that process's own writes are all there is to see).
    fn follow_commits(&self, wake: Box<dyn FnMut(u64) -> bool + Send>) -> Result<bool, StoreError> {
        drop(wake);
        Ok(false)
    }

    /// Run `f` in a read-only transaction (a consistent snapshot).
    fn read<R>(
        &self,
        f: impl FnOnce(&mut dyn ReadTxn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError>;

    /// Run `f` in a read-write transaction; commit if it returns `Ok`, roll back otherwise.
    /// Write transactions are serialised.
    fn write<R>(
        &self,
        f: impl FnMut(&mut dyn WriteTxn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError>;
}

/// Reads inside a transaction.
pub trait ReadTxn {
    /// The record of `id` in a space.
    fn get(
        &mut self,
        type_name: &str,
        space: SpaceId,
        id: &str,
    ) -> Result<Option<Record>, StoreError>;

    /// The record of `id` in a space as stored: its encoding ([`Record::encode`]), undecoded,
    /// for a reader that needs only part of it ([`crate::Store::get_raw`]). The default
    /// encodes what [`ReadTxn::get`] decoded; a backend that holds the bytes returns them.
    fn get_raw(
        &mut self,
        type_name: &str,
        space: SpaceId,
        id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(type_name, space, id)?
            .map(|r| r.encode())
            .transpose()
    }

    /// Up to `limit` records of a space with ids after `after`, in id (byte) order.
    fn scan(
        &mut self,
        type_name: &str,
        space: SpaceId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Record)>, StoreError>;

    /// Up to `limit` feed entries with sequences after `after`, in order.
    fn changes(&mut self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError>;

    /// The feed's last sequence (0 when empty).
    fn last_seq(&mut self) -> Result<u64, StoreError>;

    /// The stored state of a type.
    fn state(&mut self, type_name: &str) -> Result<Option<TypeState>, StoreError>;

    /// The documents of a type set aside by migrations, in id order.
    fn quarantined(&mut self, type_name: &str) -> Result<Vec<Quarantined>, StoreError>;

    /// Records and bytes in a space.
    fn space_stats(&mut self, type_name: &str, space: SpaceId) -> Result<SpaceStats, StoreError>;

    /// A value of the node's key-value table (store format, node id, settings of the layers
    /// above: tokens, replication checkpoints).
    fn meta(&mut self, key: &str) -> Result<Option<String>, StoreError>;

    /// The entries of the key-value table whose keys start with `prefix`, in key order.
    fn meta_prefix(&mut self, prefix: &str) -> Result<Vec<(String, String)>, StoreError>;
}

/// Writes inside a transaction.
pub trait WriteTxn: ReadTxn {
    /// Store `record` as `id` in a space (replacing any record there).
    fn put(
        &mut self,
        type_name: &str,
        space: SpaceId,
        id: &str,
        record: &Record,
    ) -> Result<(), StoreError>;

    /// Store many records in one space (a migration batch). The default stores them one by
    /// one; a backend with a round trip per statement does better in one statement.
    fn put_many(
        &mut self,
        type_name: &str,
        space: SpaceId,
        records: &[(&str, &Record)],
    ) -> Result<(), StoreError> {
        for (id, record) in records {
            self.put(type_name, space, id, record)?;
        }
        Ok(())
    }

    /// Remove `id` from a space.
    fn remove(&mut self, type_name: &str, space: SpaceId, id: &str) -> Result<(), StoreError>;

    /// Append a change to the feed; returns its sequence (the last one plus one).
    fn append_change(
        &mut self,
        type_name: &str,
        id: &str,
        rev: &Rev,
        deleted: bool,
    ) -> Result<u64, StoreError>;

    /// Remove the feed entry at `seq` (the document was written again: the feed lists it
    /// once, at its latest change). Removing an entry that is not there does nothing.
    fn remove_change(&mut self, seq: u64) -> Result<(), StoreError>;

    /// Store the state of a type.
    fn put_state(&mut self, type_name: &str, state: &TypeState) -> Result<(), StoreError>;

    /// Set a document aside.
    fn put_quarantine(&mut self, type_name: &str, entry: &Quarantined) -> Result<(), StoreError>;

    /// Take `id` out of the quarantine (a later write of it translated).
    fn remove_quarantine(&mut self, type_name: &str, id: &str) -> Result<(), StoreError>;

    /// Set (`Some`) or remove (`None`) an entry of the key-value table.
    fn put_meta(&mut self, key: &str, value: Option<&str>) -> Result<(), StoreError>;

    /// Empty the quarantine of a type (a new migration reports afresh).
    fn clear_quarantine(&mut self, type_name: &str) -> Result<(), StoreError>;

    /// Remove up to `limit` records from a space; returns how many were removed (fewer than
    /// `limit`: the space is now empty).
    fn clear_space(
        &mut self,
        type_name: &str,
        space: SpaceId,
        limit: usize,
    ) -> Result<usize, StoreError>;
}
