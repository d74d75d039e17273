//! The store's replication primitives: replicated writes, conflicts and their resolution, and
//! what a replication source reads. The decisions are [`crate::replica`]'s pure functions;
//! here is one transaction around them, with the translation and validation a write needs.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Store, Written};
use crate::backend::{Backend, WriteTxn};
use crate::error::StoreError;
use crate::model::{Record, TypeState};
use crate::replica::{
    self, Applied, ConflictLeaf, Replicated, ReplicatedDoc, ReplicationDoc, Resolution,
};
use crate::rev::Rev;

impl<B: Backend> Store<B> {
    /// Store a revision that comes from another node (CouchDB's `new_edits=false`): its rev
    /// and history are kept as given. The body, in `incoming.version`, is validated there and
    /// translated to the storage version (onto the local document when the revision descends
    /// from it, as a write would be). A concurrent edit becomes a conflict with a
    /// deterministic winner; a known revision changes nothing. Every other outcome appends
    /// the document's winner to the feed.
    pub fn apply_replicated(
        &self,
        type_name: &str,
        id: &str,
        incoming: Replicated,
    ) -> Result<Applied, StoreError> {
        let docs = [ReplicatedDoc {
            type_name: type_name.to_owned(),
            id: id.to_owned(),
            doc: incoming,
        }];
        self.check_replicated(&docs)?;
        let mut applied = self.write_doc(|txn| self.apply_in(txn, &docs))?;
        // One document in, one outcome out.
        Ok(applied.pop().unwrap_or(Applied::AlreadyKnown))
    }

    /// [`Store::apply_replicated`] for a batch, of any types, in one transaction: all are
    /// checked first and nothing is written if one is refused. Outcomes are in input order;
    /// a revision repeated within the batch is `AlreadyKnown` the second time.
    pub fn apply_replicated_batch(
        &self,
        docs: &[ReplicatedDoc],
    ) -> Result<Vec<Applied>, StoreError> {
        self.check_replicated(docs)?;
        self.write(|txn| self.apply_in(txn, docs))
    }

    /// Everything that can be refused without the stored data: the version, the id, the
    /// history's shape, the body against its version's schema.
    fn check_replicated(&self, docs: &[ReplicatedDoc]) -> Result<(), StoreError> {
        for d in docs {
            self.check_version(&d.type_name, d.doc.version)?;
            Self::check_id(&d.type_name, &d.id)?;
            replica::check_history(&d.doc.rev, &d.doc.history).map_err(|reason| {
                StoreError::InvalidRev {
                    rev: d.doc.rev.to_string(),
                    reason,
                }
            })?;
            if !d.doc.deleted {
                self.check_body(&d.type_name, &d.id, d.doc.version, &d.doc.body)?;
            }
        }
        Ok(())
    }

    fn apply_in(
        &self,
        txn: &mut dyn WriteTxn,
        docs: &[ReplicatedDoc],
    ) -> Result<Vec<Applied>, StoreError> {
        let mut states: BTreeMap<&str, TypeState> = BTreeMap::new();
        let mut out = Vec::with_capacity(docs.len());
        for d in docs {
            let state = match states.get(d.type_name.as_str()) {
                Some(s) => s.clone(),
                None => {
                    let s = self.write_state(txn, &d.type_name)?;
                    states.insert(&d.type_name, s.clone());
                    s
                }
            };
            let local = txn.get(&d.type_name, state.primary, &d.id)?;
            if local.as_ref().is_some_and(|r| r.knows(&d.doc.rev)) {
                out.push(Applied::AlreadyKnown);
                continue;
            }
            let leaf = self.replicated_leaf(&state, &d.type_name, &d.id, &d.doc, local.as_ref())?;
            let Some((record, applied)) = replica::merge_replicated(local.as_ref(), leaf) else {
                out.push(Applied::AlreadyKnown);
                continue;
            };
            self.store_record(txn, &state, &d.type_name, &d.id, &record)?;
            out.push(applied);
        }
        Ok(out)
    }

    /// The incoming revision as a leaf in the storage version.
    fn replicated_leaf(
        &self,
        state: &TypeState,
        type_name: &str,
        id: &str,
        doc: &Replicated,
        local: Option<&Record>,
    ) -> Result<ConflictLeaf, StoreError> {
        let target = state.storage_version;
        let body = if doc.deleted {
            Value::Null
        } else {
            // An update of the local winner keeps what the source's version cannot express,
            // as a local write does; a concurrent edit has nothing of ours to keep.
            let onto = local.filter(|r| !r.deleted && doc.history.contains(&r.rev));
            match onto {
                Some(r) if doc.version != target => {
                    let stored = self.translate(type_name, id, r, target)?;
                    let plan = self.set.plan(type_name, doc.version, target)?;
                    plan.translate_onto(&doc.body, &stored, &self.params)
                        .map_err(|source| StoreError::Translate {
                            type_name: type_name.to_owned(),
                            id: id.to_owned(),
                            from: doc.version,
                            to: target,
                            source: Box::new(source),
                        })?
                }
                _ => self.translate_body(type_name, id, doc.version, &doc.body, target)?,
            }
        };
        Ok(ConflictLeaf {
            rev: doc.rev.clone(),
            version: target,
            deleted: doc.deleted,
            access: doc.access.clone(),
            body,
            history: replica::bound(doc.history.clone()),
        })
    }

    /// Write a document's new record, its `multi` copies and its feed entry (the winner).
    fn store_record(
        &self,
        txn: &mut dyn WriteTxn,
        state: &TypeState,
        type_name: &str,
        id: &str,
        record: &Record,
    ) -> Result<u64, StoreError> {
        txn.put(type_name, state.primary, id, record)?;
        self.write_copies(txn, type_name, id, state, record)?;
        txn.append_change(type_name, id, &record.rev, record.deleted)
    }

    /// The losing leaves of a document, best first, each in the version it is stored in
    /// (empty when there is no conflict or no document).
    pub fn conflicts(&self, type_name: &str, id: &str) -> Result<Vec<ConflictLeaf>, StoreError> {
        self.set.type_def(type_name)?;
        Self::check_id(type_name, id)?;
        self.backend.read(|txn| {
            let state = self.read_state(txn, type_name)?;
            Ok(txn
                .get(type_name, state.primary, id)?
                .map(|r| r.conflicts)
                .unwrap_or_default())
        })
    }

    /// End a document's conflicts with a new rev that descends from the winner and from every
    /// losing leaf (so the losers are resolved on every node the rev reaches), keeping one
    /// leaf's content or writing a merged body. `expected_winner` is the winner the caller
    /// looked at: if another write moved it, or the kept leaf is gone (resolved elsewhere),
    /// the call is refused with [`StoreError::Conflict`]. The document's access data stays
    /// the winner's. On a document without conflicts it is a plain write descending from the
    /// winner (a retried resolution is refused instead, by its stale `expected_winner`).
    pub fn resolve_conflict(
        &self,
        type_name: &str,
        id: &str,
        expected_winner: &Rev,
        resolution: Resolution,
    ) -> Result<Written, StoreError> {
        self.set.type_def(type_name)?;
        Self::check_id(type_name, id)?;
        if let Resolution::Merge { version, body } = &resolution {
            self.check_version(type_name, *version)?;
            self.check_body(type_name, id, *version, body)?;
        }
        let conflict = |expected: &Rev, actual: Option<&Rev>| StoreError::Conflict {
            type_name: type_name.to_owned(),
            id: id.to_owned(),
            expected: Some(expected.to_string()),
            actual: actual.map(Rev::to_string),
        };
        self.write_doc(|txn| {
            let state = self.write_state(txn, type_name)?;
            let Some(current) = txn.get(type_name, state.primary, id)? else {
                return Err(conflict(expected_winner, None));
            };
            if current.rev != *expected_winner {
                return Err(conflict(expected_winner, Some(&current.rev)));
            }
            let target = state.storage_version;
            let (body, deleted) = match &resolution {
                Resolution::Keep(rev) => {
                    let leaf = replica::find_leaf(&current, rev)
                        .ok_or_else(|| conflict(rev, Some(&current.rev)))?;
                    if leaf.deleted {
                        (Value::Null, true)
                    } else {
                        let body =
                            self.translate_body(type_name, id, leaf.version, &leaf.body, target)?;
                        (body, false)
                    }
                }
                Resolution::Merge { version, body } => {
                    let plan = self.set.plan(type_name, *version, target)?;
                    let merged = if current.deleted {
                        plan.translate(body, &self.params)
                    } else {
                        let stored = self.translate(type_name, id, &current, target)?;
                        plan.translate_onto(body, &stored, &self.params)
                    };
                    let merged = merged.map_err(|source| StoreError::Translate {
                        type_name: type_name.to_owned(),
                        id: id.to_owned(),
                        from: *version,
                        to: target,
                        source: Box::new(source),
                    })?;
                    (merged, false)
                }
            };
            let rev = Rev::next(Some(replica::resolution_parent(&current)), &body, deleted);
            let record = replica::resolved(ConflictLeaf {
                rev: rev.clone(),
                version: target,
                deleted,
                access: current.access.clone(),
                body,
                history: replica::resolution_history(&current),
            });
            let seq = self.store_record(txn, &state, type_name, id, &record)?;
            Ok(Written { rev, seq })
        })
    }

    /// What a replication source sends for one document: the winner in `version`,
    /// tombstones included (replication must carry deletes), its history and access data,
    /// and the conflict leaves translated to `version` too. `None`: no such document.
    pub fn replication_doc(
        &self,
        type_name: &str,
        id: &str,
        version: u32,
    ) -> Result<Option<ReplicationDoc>, StoreError> {
        self.check_version(type_name, version)?;
        Self::check_id(type_name, id)?;
        self.backend.read(|txn| {
            let state = self.read_state(txn, type_name)?;
            let Some(record) = txn.get(type_name, state.primary, id)? else {
                return Ok(None);
            };
            let body = if record.deleted {
                Value::Null
            } else {
                self.translate(type_name, id, &record, version)?
            };
            let conflicts = record
                .conflicts
                .iter()
                .map(|leaf| {
                    let body = if leaf.deleted {
                        Value::Null
                    } else {
                        self.translate_body(type_name, id, leaf.version, &leaf.body, version)?
                    };
                    Ok(ConflictLeaf {
                        version,
                        body,
                        ..leaf.clone()
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok(Some(ReplicationDoc {
                rev: record.rev,
                history: record.history,
                deleted: record.deleted,
                version,
                body,
                access: record.access,
                conflicts,
            }))
        })
    }
}
