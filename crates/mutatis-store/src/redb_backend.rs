//! The embedded backend: one redb file, crash-safe (every commit is durable before it returns).
//!
//! Tables:
//! - `documents`: `(type, space, id)` → record (JSON);
//! - `changes`: `seq` → change (JSON), the node's feed;
//! - `type_state`: `type` → state (JSON) with the migration checkpoint;
//! - `quarantine`: `(type, id)` → quarantined document (JSON);
//! - `meta`: `format` → the store format, so that another program's redb file is recognised and
//!   left alone instead of being filled with tables.

use std::fmt::Display;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use redb::{
    Database, ReadOnlyTable, ReadableDatabase, ReadableTable, Table, TableDefinition, TableError,
};

use crate::backend::{Backend, ReadTxn, WriteTxn};
use crate::error::StoreError;
use crate::model::{Change, Quarantined, Record, SpaceId, SpaceStats, TypeState};
use crate::rev::Rev;

type DocKey = (&'static str, u32, &'static str);
type QKey = (&'static str, &'static str);

const DOCUMENTS: TableDefinition<DocKey, &[u8]> = TableDefinition::new("documents");
const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
const TYPE_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("type_state");
const QUARANTINE: TableDefinition<QKey, &[u8]> = TableDefinition::new("quarantine");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

/// The value of `meta["format"]` this code writes and accepts.
pub const FORMAT: &str = "mutatis-store/1";

/// How to open a redb store.
#[derive(Debug, Clone, Copy)]
pub struct RedbOptions {
    /// Verify the whole file when opening an existing one. redb trusts a cleanly closed file
    /// and may panic on one damaged behind its back; the check turns that into an error at the
    /// cost of reading the file once. On by default: a store must never panic on its input.
    pub check_integrity: bool,
    /// Create the store when no file is at the path (the default). Off for a caller that
    /// only reads: a mistyped path is then [`StoreError::NoStore`] instead of a new, empty
    /// store that answers "no documents".
    pub create: bool,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            check_integrity: true,
            create: true,
        }
    }
}

/// A store in one redb file.
pub struct RedbBackend {
    db: Database,
}

fn err(operation: &'static str) -> impl FnOnce(&dyn Display) -> StoreError {
    move |e| StoreError::Backend {
        backend: RedbBackend::NAME,
        operation,
        reason: e.to_string(),
    }
}

macro_rules! be {
    ($op:literal) => {
        |e| err($op)(&e)
    };
}

impl RedbBackend {
    /// Open the store at `path`, creating it if no file is there (unless
    /// [`RedbOptions::create`] is off: then [`StoreError::NoStore`]). A file that is not a redb
    /// database (an empty one included), is damaged, or is a redb database of another
    /// program is refused with [`StoreError::NotAStore`] and not written to.
    ///
    /// An existing empty file is not taken as "create here": it is what a mistyped path to
    /// some other file, a truncated copy or a placeholder looks like, and writing a store
    /// into it would hide that. Remove it to create a store at that path.
    pub fn open(path: impl AsRef<Path>, options: RedbOptions) -> Result<RedbBackend, StoreError> {
        let path = path.as_ref();
        let not_a_store = |reason: String| StoreError::NotAStore {
            path: PathBuf::from(path),
            reason,
        };
        let existing = match std::fs::metadata(path) {
            Ok(m) if m.is_file() && m.len() == 0 => {
                return Err(not_a_store(
                    "the file is empty; remove it to create a new store there".into(),
                ))
            }
            Ok(_) => true,
            Err(_) => false,
        };
        if !existing && !options.create {
            return Err(StoreError::NoStore {
                location: path.display().to_string(),
            });
        }
        if existing {
            // Look before touching: a read-only open never writes, so a foreign or damaged file
            // is refused as it is. (A writable open would commit, even just to check integrity.)
            match redb::Builder::new().open_read_only(path) {
                Ok(db) => check_format(&db, &not_a_store)?,
                // A store whose writer was killed needs redb's repair, which only a writable
                // open does; the marker is checked right after it.
                Err(redb::DatabaseError::RepairAborted) => {}
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(in_use(path)),
                Err(e) => return Err(not_a_store(e.to_string())),
            }
            let db = redb::Builder::new()
                .set_check_integrity_on_open(options.check_integrity)
                .open(path)
                .map_err(|e| match e {
                    redb::DatabaseError::DatabaseAlreadyOpen => in_use(path),
                    e => not_a_store(e.to_string()),
                })?;
            check_format(&db, &not_a_store)?;
            return Ok(RedbBackend { db });
        }
        let db = Database::create(path).map_err(|e| not_a_store(e.to_string()))?;
        let txn = db.begin_write().map_err(be!("create tables"))?;
        {
            txn.open_table(DOCUMENTS).map_err(be!("create tables"))?;
            txn.open_table(CHANGES).map_err(be!("create tables"))?;
            txn.open_table(TYPE_STATE).map_err(be!("create tables"))?;
            txn.open_table(QUARANTINE).map_err(be!("create tables"))?;
            let mut meta = txn.open_table(META).map_err(be!("create tables"))?;
            meta.insert("format", FORMAT)
                .map_err(be!("create tables"))?;
        }
        txn.commit().map_err(be!("create tables"))?;
        Ok(RedbBackend { db })
    }
}

/// The file is locked by another open store (this process or another one).
fn in_use(path: &Path) -> StoreError {
    StoreError::Backend {
        backend: RedbBackend::NAME,
        operation: "open",
        reason: format!(
            "{} is already open (by another mutatis process, or twice in this one)",
            path.display()
        ),
    }
}

/// Refuse a database that does not carry this store's format marker.
fn check_format(
    db: &impl ReadableDatabase,
    not_a_store: &dyn Fn(String) -> StoreError,
) -> Result<(), StoreError> {
    let txn = db.begin_read().map_err(|e| not_a_store(e.to_string()))?;
    let format = match txn.open_table(META) {
        Ok(meta) => meta
            .get("format")
            .map_err(|e| not_a_store(e.to_string()))?
            .map(|v| v.value().to_owned()),
        Err(TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(not_a_store(e.to_string())),
    };
    match format.as_deref() {
        Some(FORMAT) => Ok(()),
        Some(other) => Err(not_a_store(format!(
            "store format {other:?}, this build reads {FORMAT:?}"
        ))),
        None => Err(not_a_store(
            "a redb database without a mutatis store in it".to_owned(),
        )),
    }
}

struct Tables<D, C, S, Q, M> {
    docs: D,
    changes: C,
    state: S,
    quarantine: Q,
    meta: M,
}

type ReadTables = Tables<
    ReadOnlyTable<DocKey, &'static [u8]>,
    ReadOnlyTable<u64, &'static [u8]>,
    ReadOnlyTable<&'static str, &'static [u8]>,
    ReadOnlyTable<QKey, &'static [u8]>,
    ReadOnlyTable<&'static str, &'static str>,
>;

type WriteTables<'t> = Tables<
    Table<'t, DocKey, &'static [u8]>,
    Table<'t, u64, &'static [u8]>,
    Table<'t, &'static str, &'static [u8]>,
    Table<'t, QKey, &'static [u8]>,
    Table<'t, &'static str, &'static str>,
>;

impl Backend for RedbBackend {
    const NAME: &'static str = "redb";
    // Reads come from redb's page cache or the local file.
    const READS_ARE_LOCAL: bool = true;

    fn read<R>(
        &self,
        f: impl FnOnce(&mut dyn ReadTxn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let txn = self.db.begin_read().map_err(be!("begin read"))?;
        let mut tables: ReadTables = Tables {
            docs: txn.open_table(DOCUMENTS).map_err(be!("open table"))?,
            changes: txn.open_table(CHANGES).map_err(be!("open table"))?,
            state: txn.open_table(TYPE_STATE).map_err(be!("open table"))?,
            quarantine: txn.open_table(QUARANTINE).map_err(be!("open table"))?,
            meta: txn.open_table(META).map_err(be!("open table"))?,
        };
        f(&mut tables)
    }

    fn write<R>(
        &self,
        mut f: impl FnMut(&mut dyn WriteTxn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let txn = self.db.begin_write().map_err(be!("begin write"))?;
        let result = {
            let mut tables: WriteTables<'_> = Tables {
                docs: txn.open_table(DOCUMENTS).map_err(be!("open table"))?,
                changes: txn.open_table(CHANGES).map_err(be!("open table"))?,
                state: txn.open_table(TYPE_STATE).map_err(be!("open table"))?,
                quarantine: txn.open_table(QUARANTINE).map_err(be!("open table"))?,
                meta: txn.open_table(META).map_err(be!("open table"))?,
            };
            f(&mut tables)
        };
        match result {
            Ok(value) => {
                txn.commit().map_err(be!("commit"))?;
                Ok(value)
            }
            Err(e) => {
                // Nothing of a failed transaction may reach the file.
                txn.abort().map_err(be!("abort"))?;
                Err(e)
            }
        }
    }
}

fn get_doc(
    docs: &impl ReadableTable<DocKey, &'static [u8]>,
    type_name: &str,
    space: SpaceId,
    id: &str,
) -> Result<Option<Record>, StoreError> {
    match docs
        .get((type_name, space, id))
        .map_err(be!("get document"))?
    {
        Some(v) => Ok(Some(Record::decode(
            v.value(),
            format_args!("{type_name}/{space}/{id}"),
        )?)),
        None => Ok(None),
    }
}

fn scan_docs(
    docs: &impl ReadableTable<DocKey, &'static [u8]>,
    type_name: &str,
    space: SpaceId,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<(String, Record)>, StoreError> {
    let lower = match after {
        Some(id) => Bound::Excluded((type_name, space, id)),
        None => Bound::Included((type_name, space, "")),
    };
    let range = docs
        .range::<(&str, u32, &str)>((lower, Bound::Unbounded))
        .map_err(be!("scan documents"))?;
    let mut out = Vec::new();
    for entry in range {
        if out.len() >= limit {
            break;
        }
        let (k, v) = entry.map_err(be!("scan documents"))?;
        let (t, s, id) = k.value();
        if t != type_name || s != space {
            break;
        }
        out.push((
            id.to_owned(),
            Record::decode(v.value(), format_args!("{type_name}/{space}/{id}"))?,
        ));
    }
    Ok(out)
}

fn read_changes(
    changes: &impl ReadableTable<u64, &'static [u8]>,
    after: u64,
    limit: usize,
) -> Result<Vec<Change>, StoreError> {
    let mut out = Vec::new();
    let range = changes
        .range((Bound::Excluded(after), Bound::Unbounded))
        .map_err(be!("read changes"))?;
    for entry in range.take(limit) {
        let (k, v) = entry.map_err(be!("read changes"))?;
        out.push(Change::decode(v.value(), k.value())?);
    }
    Ok(out)
}

fn last_seq(changes: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64, StoreError> {
    Ok(changes
        .last()
        .map_err(be!("read changes"))?
        .map_or(0, |(k, _)| k.value()))
}

fn get_state(
    state: &impl ReadableTable<&'static str, &'static [u8]>,
    type_name: &str,
) -> Result<Option<TypeState>, StoreError> {
    match state.get(type_name).map_err(be!("get type state"))? {
        Some(v) => Ok(Some(TypeState::decode(v.value(), type_name)?)),
        None => Ok(None),
    }
}

fn list_quarantine(
    q: &impl ReadableTable<QKey, &'static [u8]>,
    type_name: &str,
) -> Result<Vec<Quarantined>, StoreError> {
    let range = q
        .range::<(&str, &str)>((Bound::Included((type_name, "")), Bound::Unbounded))
        .map_err(be!("read quarantine"))?;
    let mut out = Vec::new();
    for entry in range {
        let (k, v) = entry.map_err(be!("read quarantine"))?;
        let (t, id) = k.value();
        if t != type_name {
            break;
        }
        out.push(Quarantined::decode(v.value(), format_args!("{t}/{id}"))?);
    }
    Ok(out)
}

fn stats(
    docs: &impl ReadableTable<DocKey, &'static [u8]>,
    type_name: &str,
    space: SpaceId,
) -> Result<SpaceStats, StoreError> {
    let range = docs
        .range::<(&str, u32, &str)>((Bound::Included((type_name, space, "")), Bound::Unbounded))
        .map_err(be!("space statistics"))?;
    let mut stats = SpaceStats::default();
    for entry in range {
        let (k, v) = entry.map_err(be!("space statistics"))?;
        let (t, s, id) = k.value();
        if t != type_name || s != space {
            break;
        }
        stats.records += 1;
        stats.bytes += (t.len() + 4 + id.len() + v.value().len()) as u64;
    }
    Ok(stats)
}

fn meta_prefix(
    meta: &impl ReadableTable<&'static str, &'static str>,
    prefix: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let range = meta.range(prefix..).map_err(be!("read meta"))?;
    let mut out = Vec::new();
    for entry in range {
        let (k, v) = entry.map_err(be!("read meta"))?;
        if !k.value().starts_with(prefix) {
            break;
        }
        out.push((k.value().to_owned(), v.value().to_owned()));
    }
    Ok(out)
}

macro_rules! impl_read {
    ($ty:ty) => {
        impl ReadTxn for $ty {
            fn get(
                &mut self,
                type_name: &str,
                space: SpaceId,
                id: &str,
            ) -> Result<Option<Record>, StoreError> {
                get_doc(&self.docs, type_name, space, id)
            }

            fn get_raw(
                &mut self,
                type_name: &str,
                space: SpaceId,
                id: &str,
            ) -> Result<Option<Vec<u8>>, StoreError> {
                Ok(self
                    .docs
                    .get((type_name, space, id))
                    .map_err(be!("get document"))?
                    .map(|v| v.value().to_vec()))
            }

            fn scan(
                &mut self,
                type_name: &str,
                space: SpaceId,
                after: Option<&str>,
                limit: usize,
            ) -> Result<Vec<(String, Record)>, StoreError> {
                scan_docs(&self.docs, type_name, space, after, limit)
            }

            fn changes(&mut self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
                read_changes(&self.changes, after, limit)
            }

            fn last_seq(&mut self) -> Result<u64, StoreError> {
                last_seq(&self.changes)
            }

            fn state(&mut self, type_name: &str) -> Result<Option<TypeState>, StoreError> {
                get_state(&self.state, type_name)
            }

            fn quarantined(&mut self, type_name: &str) -> Result<Vec<Quarantined>, StoreError> {
                list_quarantine(&self.quarantine, type_name)
            }

            fn space_stats(
                &mut self,
                type_name: &str,
                space: SpaceId,
            ) -> Result<SpaceStats, StoreError> {
                stats(&self.docs, type_name, space)
            }

            fn meta(&mut self, key: &str) -> Result<Option<String>, StoreError> {
                Ok(self
                    .meta
                    .get(key)
                    .map_err(be!("read meta"))?
                    .map(|v| v.value().to_owned()))
            }

            fn meta_prefix(&mut self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
                meta_prefix(&self.meta, prefix)
            }
        }
    };
}

impl_read!(ReadTables);
impl_read!(WriteTables<'_>);

impl WriteTxn for WriteTables<'_> {
    fn put(
        &mut self,
        type_name: &str,
        space: SpaceId,
        id: &str,
        record: &Record,
    ) -> Result<(), StoreError> {
        let bytes = record.encode()?;
        self.docs
            .insert((type_name, space, id), bytes.as_slice())
            .map_err(be!("put document"))?;
        Ok(())
    }

    fn put_meta(&mut self, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        match value {
            Some(v) => {
                self.meta.insert(key, v).map_err(be!("put meta"))?;
            }
            None => {
                self.meta.remove(key).map_err(be!("remove meta"))?;
            }
        }
        Ok(())
    }

    fn remove(&mut self, type_name: &str, space: SpaceId, id: &str) -> Result<(), StoreError> {
        self.docs
            .remove((type_name, space, id))
            .map_err(be!("remove document"))?;
        Ok(())
    }

    fn append_change(
        &mut self,
        type_name: &str,
        id: &str,
        rev: &Rev,
        deleted: bool,
    ) -> Result<u64, StoreError> {
        let seq = last_seq(&self.changes)?
            .checked_add(1)
            .ok_or(StoreError::Backend {
                backend: RedbBackend::NAME,
                operation: "append change",
                reason: "the feed's sequence numbers are exhausted".to_owned(),
            })?;
        let change = Change {
            seq,
            type_name: type_name.to_owned(),
            id: id.to_owned(),
            rev: rev.clone(),
            deleted,
        };
        let bytes = change.encode()?;
        self.changes
            .insert(seq, bytes.as_slice())
            .map_err(be!("append change"))?;
        Ok(seq)
    }

    fn remove_change(&mut self, seq: u64) -> Result<(), StoreError> {
        self.changes.remove(seq).map_err(be!("remove change"))?;
        Ok(())
    }

    fn put_state(&mut self, type_name: &str, state: &TypeState) -> Result<(), StoreError> {
        let bytes = state.encode()?;
        self.state
            .insert(type_name, bytes.as_slice())
            .map_err(be!("put type state"))?;
        Ok(())
    }

    fn put_quarantine(&mut self, type_name: &str, entry: &Quarantined) -> Result<(), StoreError> {
        let bytes = entry.encode()?;
        self.quarantine
            .insert((type_name, entry.id.as_str()), bytes.as_slice())
            .map_err(be!("put quarantine"))?;
        Ok(())
    }

    fn remove_quarantine(&mut self, type_name: &str, id: &str) -> Result<(), StoreError> {
        self.quarantine
            .remove((type_name, id))
            .map_err(be!("remove quarantine"))?;
        Ok(())
    }

    fn clear_quarantine(&mut self, type_name: &str) -> Result<(), StoreError> {
        let ids: Vec<String> = list_quarantine(&self.quarantine, type_name)?
            .into_iter()
            .map(|q| q.id)
            .collect();
        for id in &ids {
            self.quarantine
                .remove((type_name, id.as_str()))
                .map_err(be!("clear quarantine"))?;
        }
        Ok(())
    }

    fn clear_space(
        &mut self,
        type_name: &str,
        space: SpaceId,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let ids: Vec<String> = scan_docs(&self.docs, type_name, space, None, limit)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        for id in &ids {
            self.docs
                .remove((type_name, space, id.as_str()))
                .map_err(be!("clear space"))?;
        }
        Ok(ids.len())
    }
}
