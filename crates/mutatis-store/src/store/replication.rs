//! The store's replication primitives: replicated writes, conflicts and their resolution, and
//! what a replication source reads. The decisions are [`crate::replica`]'s pure functions;
//! here is one transaction around them, with the translation and validation a write needs.

use std::collections::BTreeMap;

use serde_json::Value;

use mutatis_schema::SchemaSet;

use super::{setting_key, Store, Written};
use crate::backend::{Backend, WriteTxn};
use crate::error::StoreError;
use crate::model::{Record, TypeState};
use crate::replica::{
    self, Applied, Carried, ConflictLeaf, LossPolicy, Replicated, ReplicatedDoc, ReplicationDoc,
    Resolution,
};
use crate::rev::Rev;

fn lens_error(
    type_name: &str,
    id: &str,
    from: u32,
    to: u32,
    source: mutatis_lens::LensError,
) -> StoreError {
    StoreError::Translate {
        type_name: type_name.to_owned(),
        id: id.to_owned(),
        from,
        to,
        source: Box::new(source),
    }
}

/// The newest version of `type_name` that both sets know with the same schema, at or below
/// `at` (where the source's set hands a document over to this node's).
fn common_version(local: &SchemaSet, foreign: &SchemaSet, type_name: &str, at: u32) -> Option<u32> {
    let ours = local.versions(type_name).ok()?;
    foreign
        .versions(type_name)
        .ok()?
        .into_iter()
        .rev()
        .filter(|v| *v <= at && ours.contains(v))
        .find(
            |v| match (local.schema(type_name, *v), foreign.schema(type_name, *v)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            },
        )
}

/// Where a replicated batch comes from, as the target needs to know it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceContext<'a> {
    /// The source's schema set (loaded from its manifest), which translates versions this
    /// node does not know down to one it does. `None`: the source speaks only versions this
    /// node knows.
    pub set: Option<&'a SchemaSet>,
    /// What to do with a document the storage version cannot hold without loss.
    pub policy: LossPolicy,
}

/// What applying one replicated revision did, with what its translation lost.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyOutcome {
    /// The outcome.
    pub applied: Applied,
    /// Where the incoming body lost information on its way to the storage version (JSON
    /// pointers into the body in the version named by `lost_in`), or why it could not be
    /// translated at all. Under [`LossPolicy::Carry`] these values are carried, not lost;
    /// under [`LossPolicy::Refuse`] they are why the revision was refused.
    pub lost: Vec<String>,
    /// The version `lost` points into.
    pub lost_in: Option<u32>,
}

/// The incoming revision's body in the storage version.
struct Landed {
    body: Value,
    lost: Vec<String>,
    lost_in: Option<u32>,
    carry: Vec<Carried>,
}

/// Loss reports per `(type, from, to)` for one batch: the analysis reads lenses, not
/// documents, so one answer serves every document of the batch.
type LossCache = BTreeMap<(bool, String, u32, u32), bool>;

impl<B: Backend> Store<B> {
    /// Store a revision that comes from another node (CouchDB's `new_edits=false`): its rev
    /// and history are kept as given. The body, in `incoming.version`, is validated there and
    /// translated to the storage version (onto the local document when the revision descends
    /// from it, as a write would be). A concurrent edit becomes a conflict with a
    /// deterministic winner; a known revision changes nothing. Every other outcome appends
    /// the document's winner to the feed. What the storage version cannot hold is carried
    /// ([`LossPolicy::Carry`]).
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
        let source = SourceContext::default();
        self.check_replicated(&source, &docs)?;
        let mut applied = self.write_doc(|txn| self.apply_in(txn, &source, &docs))?;
        // One document in, one outcome out.
        Ok(applied.pop().map_or(Applied::AlreadyKnown, |o| o.applied))
    }

    /// [`Store::apply_replicated`] for a batch, of any types, in one transaction: all are
    /// checked first and nothing is written if one is refused. Outcomes are in input order;
    /// a revision repeated within the batch is `AlreadyKnown` the second time.
    pub fn apply_replicated_batch(
        &self,
        docs: &[ReplicatedDoc],
    ) -> Result<Vec<Applied>, StoreError> {
        let out = self.apply_replicated_from(SourceContext::default(), docs, None)?;
        Ok(out.into_iter().map(|o| o.applied).collect())
    }

    /// A replicated batch from a source that may speak versions this node does not know
    /// (translated down through the source's own schema set) under a loss policy, with the
    /// replication checkpoint written in the same transaction: a batch and its checkpoint
    /// are stored together or not at all, so a resumed replication re-sends at most the
    /// batch that was in flight. `checkpoint` is a node setting `(key, value)`.
    ///
    /// Bodies that fail their version's schema, bad ids and malformed histories refuse the
    /// whole batch (the source is broken); a document that cannot be translated, or would
    /// lose data under [`LossPolicy::Refuse`], is refused alone ([`Applied::Refused`]) and
    /// reported, so one document never stalls a replication.
    pub fn apply_replicated_from(
        &self,
        source: SourceContext<'_>,
        docs: &[ReplicatedDoc],
        checkpoint: Option<(&str, &Value)>,
    ) -> Result<Vec<ApplyOutcome>, StoreError> {
        self.check_replicated(&source, docs)?;
        let checkpoint = checkpoint.map(|(k, v)| (setting_key(k), v.to_string()));
        self.write(|txn| {
            let out = self.apply_in(txn, &source, docs)?;
            if let Some((key, value)) = &checkpoint {
                txn.put_meta(key, Some(value))?;
            }
            Ok(out)
        })
    }

    /// Everything that can be refused without the stored data: the version, the id, the
    /// history's shape, the body against its version's schema (in the source's set when
    /// this node does not know the version).
    fn check_replicated(
        &self,
        source: &SourceContext<'_>,
        docs: &[ReplicatedDoc],
    ) -> Result<(), StoreError> {
        for d in docs {
            let set = self.set_knowing(source, &d.type_name, d.doc.version)?;
            Self::check_id(&d.type_name, &d.id)?;
            replica::check_history(&d.doc.rev, &d.doc.history).map_err(|reason| {
                StoreError::InvalidRev {
                    rev: d.doc.rev.to_string(),
                    reason,
                }
            })?;
            if !d.doc.deleted {
                set.validate(&d.type_name, d.doc.version, &d.doc.body)
                    .map_err(|issues| StoreError::Invalid {
                        type_name: d.type_name.clone(),
                        version: d.doc.version,
                        id: d.id.clone(),
                        issues,
                    })?;
            }
        }
        Ok(())
    }

    /// The schema set that knows `type_name@version`: this node's, else the source's.
    fn set_knowing<'a>(
        &'a self,
        source: &SourceContext<'a>,
        type_name: &str,
        version: u32,
    ) -> Result<&'a SchemaSet, StoreError> {
        // Looked up without building the unknown-version error first: on a batch from a
        // newer node every document takes the second branch.
        let knows = |set: &SchemaSet| {
            set.type_def(type_name)
                .is_ok_and(|t| t.version(version).is_some())
        };
        if knows(&self.set) {
            return Ok(&self.set);
        }
        match source.set {
            Some(set) if knows(set) => Ok(set),
            _ => self.check_version(type_name, version).map(|()| &*self.set),
        }
    }

    fn apply_in(
        &self,
        txn: &mut dyn WriteTxn,
        source: &SourceContext<'_>,
        docs: &[ReplicatedDoc],
    ) -> Result<Vec<ApplyOutcome>, StoreError> {
        let mut states: BTreeMap<&str, TypeState> = BTreeMap::new();
        let mut losses = LossCache::new();
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
            let outcome = |applied, landed: Option<&Landed>| ApplyOutcome {
                applied,
                lost: landed.map(|l| l.lost.clone()).unwrap_or_default(),
                lost_in: landed.and_then(|l| l.lost_in),
            };
            let local = txn.get(&d.type_name, state.primary, &d.id)?;
            if local.as_ref().is_some_and(|r| r.knows(&d.doc.rev)) {
                out.push(outcome(Applied::AlreadyKnown, None));
                continue;
            }
            let landed = if d.doc.deleted {
                Landed {
                    body: Value::Null,
                    lost: Vec::new(),
                    lost_in: None,
                    carry: Vec::new(),
                }
            } else {
                match self.land(source, &mut losses, &state, d, local.as_ref()) {
                    Ok(l) => l,
                    Err(e @ StoreError::Translate { .. }) => {
                        out.push(ApplyOutcome {
                            applied: Applied::Refused,
                            lost: vec![e.to_string()],
                            lost_in: Some(d.doc.version),
                        });
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            };
            if !landed.lost.is_empty() && source.policy == LossPolicy::Refuse {
                out.push(outcome(Applied::Refused, Some(&landed)));
                continue;
            }
            let Landed {
                body,
                lost,
                lost_in,
                carry,
            } = landed;
            let leaf = ConflictLeaf {
                rev: d.doc.rev.clone(),
                version: state.storage_version,
                deleted: d.doc.deleted,
                access: d.doc.access.clone(),
                body,
                history: replica::bound(d.doc.history.clone()),
                carry,
            };
            let Some((record, applied)) = replica::merge_replicated(local.as_ref(), leaf) else {
                out.push(outcome(Applied::AlreadyKnown, None));
                continue;
            };
            self.store_record(txn, &state, &d.type_name, &d.id, &record)?;
            out.push(ApplyOutcome {
                applied,
                lost,
                lost_in,
            });
        }
        Ok(out)
    }

    /// The incoming body in the storage version: carried bodies of versions this node knows
    /// restored first, then translated down (through the source's set for versions this node
    /// does not know) and, when the revision updates the local winner, onto it, as a local
    /// write is. Every step that can lose is checked on this document: what does not come
    /// back on the way up again is reported and, under [`LossPolicy::Carry`], carried.
    fn land(
        &self,
        source: &SourceContext<'_>,
        losses: &mut LossCache,
        state: &TypeState,
        d: &ReplicatedDoc,
        local: Option<&Record>,
    ) -> Result<Landed, StoreError> {
        let (type_name, id) = (d.type_name.as_str(), d.id.as_str());
        let target = state.storage_version;
        let local_type = self.set.type_def(type_name)?;
        let local_knows = |v: u32| local_type.version(v).is_some();
        let mut body = d.doc.body.clone();
        let mut at = d.doc.version;
        // Carried bodies newer than the incoming version: those this node knows are folded
        // back in (oldest first), the others travel on.
        let mut kept: BTreeMap<u32, Value> = BTreeMap::new();
        let mut carried: Vec<&Carried> = d.doc.carry.iter().filter(|c| c.version > at).collect();
        carried.sort_by_key(|c| c.version);
        for c in carried {
            if local_knows(at) && local_knows(c.version) {
                let plan = self.set.plan(type_name, at, c.version)?;
                body = plan
                    .translate_onto(&body, &c.body, &self.params)
                    .map_err(|e| lens_error(type_name, id, at, c.version, e))?;
                at = c.version;
            } else {
                kept.insert(c.version, c.body.clone());
            }
        }
        // The way down: (set, from, to) segments.
        let mut segments: Vec<(&SchemaSet, bool, u32, u32)> = Vec::with_capacity(2);
        if local_knows(at) {
            segments.push((&self.set, true, at, target));
        } else {
            let foreign = self.set_knowing(source, type_name, at)?;
            let common = common_version(&self.set, foreign, type_name, at).ok_or_else(|| {
                StoreError::UnknownVersion {
                    type_name: type_name.to_owned(),
                    version: at,
                    known: local_type
                        .versions()
                        .map(|v| v.version().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })?;
            segments.push((foreign, false, at, common));
            segments.push((&self.set, true, common, target));
        }
        let mut lost = Vec::new();
        let mut lost_in = None;
        let onto = local.filter(|r| !r.deleted && d.doc.history.contains(&r.rev));
        let last = segments.len() - 1;
        for (i, (set, is_local, from, to)) in segments.into_iter().enumerate() {
            if from == to {
                continue;
            }
            let plan = set.plan(type_name, from, to)?;
            let down = plan
                .translate(&body, &self.params)
                .map_err(|e| lens_error(type_name, id, from, to, e))?;
            let lossless = *losses
                .entry((is_local, type_name.to_owned(), from, to))
                .or_insert_with(|| set.loss(type_name, from, to).is_ok_and(|r| r.is_lossless()));
            if !lossless {
                let back = set
                    .plan(type_name, to, from)?
                    .translate(&down, &self.params)
                    .map_err(|e| lens_error(type_name, id, to, from, e))?;
                // Most documents come back whole: comparing first spares the walk that
                // names the differences.
                let missing = if back == body {
                    Vec::new()
                } else {
                    mutatis_schema::differences(&body, &back)
                };
                if !missing.is_empty() {
                    if lost.is_empty() {
                        lost_in = Some(from);
                        lost = missing;
                    }
                    if source.policy == LossPolicy::Carry {
                        // Every version on the way down keeps its body, so a node at any
                        // of them restores what it can hold.
                        for v in set.versions(type_name)? {
                            if v > to && v <= from {
                                let at_v = if v == from {
                                    body.clone()
                                } else {
                                    set.plan(type_name, from, v)?
                                        .translate(&body, &self.params)
                                        .map_err(|e| lens_error(type_name, id, from, v, e))?
                                };
                                kept.insert(v, at_v);
                            }
                        }
                    }
                }
            }
            body = match onto {
                // An update of the local winner keeps what the incoming version cannot
                // express, as a local write does.
                Some(r) if i == last => {
                    let stored = self.translate(type_name, id, r, to)?;
                    plan.translate_onto(&body, &stored, &self.params)
                        .map_err(|e| lens_error(type_name, id, from, to, e))?
                }
                _ => down,
            };
        }
        if source.policy == LossPolicy::Lossy {
            kept.retain(|v, _| !local_knows(*v));
        }
        Ok(Landed {
            body,
            lost,
            lost_in,
            carry: kept
                .into_iter()
                .filter(|(v, _)| *v > target)
                .map(|(version, body)| Carried { version, body })
                .collect(),
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
            let (body, deleted, carry) = match &resolution {
                Resolution::Keep(rev) => {
                    let leaf = replica::find_leaf(&current, rev)
                        .ok_or_else(|| conflict(rev, Some(&current.rev)))?;
                    if leaf.deleted {
                        (Value::Null, true, Vec::new())
                    } else {
                        let body =
                            self.translate_body(type_name, id, leaf.version, &leaf.body, target)?;
                        (body, false, leaf.carry)
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
                    (merged, false, current.carry.clone())
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
                carry,
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
            self.replication_doc_in(txn, &state, type_name, id, version)
        })
    }

    /// [`Store::replication_doc`] for a batch of a source's feed, each document in its type's
    /// storage version, in one read transaction (a batch of a few hundred documents pays for
    /// one snapshot, not one each). `None` for a document that does not exist, or whose type
    /// this node's schema set no longer has (it is not replicated).
    pub fn replication_docs(
        &self,
        wanted: &[(&str, &str)],
    ) -> Result<Vec<Option<ReplicationDoc>>, StoreError> {
        for (type_name, id) in wanted {
            if self.set.type_def(type_name).is_ok() {
                Self::check_id(type_name, id)?;
            }
        }
        self.backend.read(|txn| {
            let mut states: BTreeMap<&str, Option<TypeState>> = BTreeMap::new();
            let mut out = Vec::with_capacity(wanted.len());
            for &(type_name, id) in wanted {
                if !states.contains_key(type_name) {
                    let state = match self.set.type_def(type_name) {
                        Ok(_) => Some(self.read_state(txn, type_name)?),
                        Err(_) => None,
                    };
                    states.insert(type_name, state);
                }
                let doc = match states.get(type_name) {
                    Some(Some(state)) => {
                        let version = state.storage_version;
                        self.replication_doc_in(txn, state, type_name, id, version)?
                    }
                    _ => None,
                };
                out.push(doc);
            }
            Ok(out)
        })
    }

    fn replication_doc_in(
        &self,
        txn: &mut dyn crate::backend::ReadTxn,
        state: &TypeState,
        type_name: &str,
        id: &str,
        version: u32,
    ) -> Result<Option<ReplicationDoc>, StoreError> {
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
            carry: record.carry,
        }))
    }
}
