//! The store's replication primitives: replicated writes, conflicts and their resolution, and
//! what a replication source reads. The decisions are [`crate::replica`]'s pure functions;
//! here is one transaction around them, with the translation and validation a write needs.

use std::collections::BTreeMap;

use serde_json::Value;

use mutatis_schema::SchemaSet;

use super::{setting_key, Store, Written};
use crate::backend::{Backend, WriteTxn};
use crate::error::StoreError;
use crate::held;
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
        self.check_replicated(&SourceContext::default(), docs)?;
        let out = self.apply_replicated_from(SourceContext::default(), docs, None)?;
        Ok(out.into_iter().map(|o| o.applied).collect())
    }

    /// A replicated batch from a source that may speak versions this node does not know
    /// (translated down through the source's own schema set) under a loss policy, with the
    /// replication checkpoint written in the same transaction: a batch and its checkpoint
    /// are stored together or not at all, so a resumed replication re-sends at most the
    /// batch that was in flight. `checkpoint` is a node setting `(key, value)`.
    ///
    /// Each document is judged on its own, so one bad document never stalls a replication:
    /// a rev or history that breaks the rules ([`Rev::check`], histories most recent first),
    /// a bad id, a body that fails its version's schema, a type or version neither set knows,
    /// a document that cannot be translated or would lose data under [`LossPolicy::Refuse`]:
    /// each is refused alone ([`Applied::Refused`], the reason in `lost`) and the rest of the
    /// batch is applied.
    pub fn apply_replicated_from(
        &self,
        source: SourceContext<'_>,
        docs: &[ReplicatedDoc],
        checkpoint: Option<(&str, &Value)>,
    ) -> Result<Vec<ApplyOutcome>, StoreError> {
        let mut refused: Vec<Option<ApplyOutcome>> = Vec::with_capacity(docs.len());
        let mut good: Vec<ReplicatedDoc> = Vec::new();
        for d in docs {
            match self.check_one(&source, d) {
                Ok(()) => {
                    refused.push(None);
                    good.push(d.clone());
                }
                Err(e) => refused.push(Some(ApplyOutcome {
                    applied: Applied::Refused,
                    lost: vec![e.to_string()],
                    lost_in: Some(d.doc.version),
                })),
            }
        }
        let checkpoint = checkpoint.map(|(k, v)| (setting_key(k), v.to_string()));
        let applied = self.write(|txn| {
            let out = self.apply_in(txn, &source, &good)?;
            if let Some((key, value)) = &checkpoint {
                txn.put_meta(key, Some(value))?;
            }
            Ok(out)
        })?;
        let mut applied = applied.into_iter();
        Ok(refused
            .into_iter()
            .map(|r| match r {
                Some(outcome) => outcome,
                // One outcome per document applied, in order.
                None => applied.next().unwrap_or(ApplyOutcome {
                    applied: Applied::AlreadyKnown,
                    lost: Vec::new(),
                    lost_in: None,
                }),
            })
            .collect())
    }

    /// Everything that can be refused without the stored data, for every document: the first
    /// failure refuses the call ([`Store::apply_replicated`] and
    /// [`Store::apply_replicated_batch`] are all or nothing).
    fn check_replicated(
        &self,
        source: &SourceContext<'_>,
        docs: &[ReplicatedDoc],
    ) -> Result<(), StoreError> {
        docs.iter().try_for_each(|d| self.check_one(source, d))
    }

    /// What can be refused of one document without the stored data: the version, the id,
    /// the rev and its history ([`Rev::check`] for each, most recent first), the body against
    /// its version's schema (in the source's set when this node does not know the version).
    fn check_one(&self, source: &SourceContext<'_>, d: &ReplicatedDoc) -> Result<(), StoreError> {
        let set = self.set_knowing(source, &d.type_name, d.doc.version)?;
        Self::check_id(&d.type_name, &d.id)?;
        for rev in std::iter::once(&d.doc.rev).chain(&d.doc.history) {
            rev.check().map_err(|reason| StoreError::InvalidRev {
                rev: rev.to_string(),
                reason,
            })?;
        }
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
            self.store_record(txn, &state, &d.type_name, &d.id, local.as_ref(), record)?;
            out.push(ApplyOutcome {
                applied,
                lost,
                lost_in,
            });
        }
        Ok(out)
    }

    /// The incoming revision in the storage version. Its held bodies (the body, and what it
    /// carries in versions this node knows with the same schema) land as a local write's
    /// body does ([`crate::held`]): onto the local winner when the revision descends from it,
    /// with what the storage version cannot hold carried. A body in a version this node does
    /// not know is first translated down through the source's set to the newest version both
    /// know alike; that step is checked on this document by a round trip, and under
    /// [`LossPolicy::Carry`] the source's versions on the way keep their bodies. What the
    /// storage version could not hold of the revision is reported in `lost` and then
    /// carried, refused or dropped as the policy says.
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
        let views = self.views(type_name, id);
        // A version number this node knows holds the same documents here as at the source
        // only if both sets give it the same schema.
        let alike = |v: u32| {
            views.knows(v)
                && source.set.is_none_or(|f| match f.schema(type_name, v) {
                    Ok(theirs) => self
                        .set
                        .schema(type_name, v)
                        .is_ok_and(|ours| ours == theirs),
                    Err(_) => true,
                })
        };
        // Carried bodies may be older than the body they travel with (a node that does not
        // know their version wrote the document since): they are complements, folded onto
        // the body, never taken as they are. A fresh one folds back to itself (the lens law
        // put(get(s), s) = s).
        let mut complements: BTreeMap<u32, &Value> = BTreeMap::new();
        let mut foreign: BTreeMap<u32, Value> = BTreeMap::new();
        for c in &d.doc.carry {
            if c.version == d.doc.version {
                continue;
            }
            if alike(c.version) {
                complements.insert(c.version, &c.body);
            } else if !views.knows(c.version) {
                foreign.insert(c.version, c.body.clone());
            }
            // A version both sets number alike but define differently cannot be held
            // here under its number (it would be read as this node's): the source's
            // body in the version handed over carries what this node can take of it.
        }
        let mut lost = Vec::new();
        let mut lost_in = None;
        let at = d.doc.version;
        let (base, base_body) = if alike(at) {
            (at, d.doc.body.clone())
        } else {
            let set = self.set_knowing(source, type_name, at)?;
            let common = common_version(&self.set, set, type_name, at).ok_or_else(|| {
                StoreError::UnknownVersion {
                    type_name: type_name.to_owned(),
                    version: at,
                    known: self
                        .set
                        .versions(type_name)
                        .unwrap_or_default()
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })?;
            let body = &d.doc.body;
            let down = set
                .plan(type_name, at, common)?
                .translate(body, &self.params)
                .map_err(|e| lens_error(type_name, id, at, common, e))?;
            let lossless = *losses
                .entry((false, type_name.to_owned(), at, common))
                .or_insert_with(|| {
                    set.loss(type_name, at, common)
                        .is_ok_and(|r| r.is_lossless())
                });
            if !lossless {
                let back = set
                    .plan(type_name, common, at)?
                    .translate(&down, &self.params)
                    .map_err(|e| lens_error(type_name, id, common, at, e))?;
                // Most documents come back whole: comparing first spares the walk that
                // names the differences.
                let missing = if back == *body {
                    Vec::new()
                } else {
                    mutatis_schema::differences(body, &back)
                };
                if !missing.is_empty() {
                    lost_in = Some(at);
                    lost = missing;
                    if source.policy == LossPolicy::Carry {
                        // Every version of the source's on the way down that this node
                        // does not know keeps its body, so a node at any of them restores
                        // what it can hold.
                        for v in set.versions(type_name)? {
                            if v > common && v <= at && !views.knows(v) {
                                let at_v = if v == at {
                                    body.clone()
                                } else {
                                    set.plan(type_name, at, v)?
                                        .translate(body, &self.params)
                                        .map_err(|e| lens_error(type_name, id, at, v, e))?
                                };
                                foreign.insert(v, at_v);
                            }
                        }
                    }
                }
            }
            (common, down)
        };
        let mut written = BTreeMap::new();
        for up in [true, false] {
            let (mut prev, mut prev_body) = (base, &base_body);
            let range: Box<dyn Iterator<Item = (&u32, &&Value)>> = if up {
                Box::new(complements.range(base.saturating_add(1)..))
            } else {
                Box::new(complements.range(..base).rev())
            };
            let mut folded = Vec::new();
            for (&v, complement) in range {
                folded.push((v, views.translate_onto(prev, v, prev_body, complement)?));
                prev = v;
                prev_body = &folded[folded.len() - 1].1;
            }
            written.extend(folded);
        }
        written.insert(base, base_body);
        // An update of the local winner keeps what the incoming versions cannot express,
        // as a local write does.
        let onto = local.filter(|r| !r.deleted && d.doc.history.contains(&r.rev));
        let old = onto.map(|r| views.held(r.version, &r.body, &r.carry));
        let incoming: BTreeMap<u32, Value> = written.clone();
        let (body, mut carry) = views.settle(written, old.as_ref(), target)?;
        // The incoming versions the storage version could not hold alone.
        let short: Vec<u32> = carry
            .iter()
            .map(|c| c.version)
            .filter(|v| incoming.contains_key(v))
            .collect();
        if !short.is_empty() && lost.is_empty() {
            let stored = BTreeMap::from([(target, &body)]);
            for v in &short {
                let alone = views.view(&stored, *v)?;
                let missing = mutatis_schema::differences(&incoming[v], &alone);
                if !missing.is_empty() {
                    lost = missing;
                    lost_in = Some(*v);
                    break;
                }
            }
            if lost.is_empty() {
                // Held apart, yet no pointer differs alone: the document as a whole.
                lost = vec![String::new()];
                lost_in = short.first().copied();
            }
        }
        if source.policy == LossPolicy::Lossy {
            carry.retain(|c| !short.contains(&c.version));
        }
        carry.extend(
            foreign
                .into_iter()
                .filter(|(v, _)| *v > target)
                .map(|(version, body)| Carried { version, body }),
        );
        Ok(Landed {
            body,
            lost,
            lost_in,
            carry,
        })
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
        self.resolve_conflict_among(type_name, id, expected_winner, resolution, &|_| true)
    }

    /// [`Store::resolve_conflict`] among the losing leaves whose access data `visible`
    /// accepts (the winner's is the caller's to check): those are the leaves its caller may
    /// see. A leaf it refuses is not the caller's to end: it cannot be kept (naming it is
    /// refused as naming no leaf is), it stays a conflict leaf beside the resolution, and
    /// neither its rev nor its generation goes into the resolution, so nothing of it reaches
    /// whoever resolved.
    pub fn resolve_conflict_among(
        &self,
        type_name: &str,
        id: &str,
        expected_winner: &Rev,
        resolution: Resolution,
        visible: &dyn Fn(&Value) -> bool,
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
            // The document as the caller sees it; the leaves it may not see are set aside.
            let (seen, untouched): (Vec<ConflictLeaf>, Vec<ConflictLeaf>) = current
                .conflicts
                .iter()
                .cloned()
                .partition(|leaf| visible(&leaf.access));
            let view = Record {
                conflicts: seen,
                ..current.clone()
            };
            let target = state.storage_version;
            let views = self.views(type_name, id);
            let (body, deleted, carry) = match &resolution {
                Resolution::Keep(rev) => {
                    let leaf = replica::find_leaf(&view, rev)
                        .ok_or_else(|| conflict(rev, Some(&current.rev)))?;
                    if leaf.deleted {
                        (Value::Null, true, Vec::new())
                    } else {
                        // The kept leaf's held bodies are the document now, as they are.
                        let written = views
                            .held(leaf.version, &leaf.body, &leaf.carry)
                            .into_iter()
                            .map(|(v, b)| (v, b.clone()))
                            .collect();
                        let (body, mut carry) = views.settle(written, None, target)?;
                        carry.extend(held::foreign(&views, &leaf.carry));
                        (body, false, carry)
                    }
                }
                Resolution::Merge { version, body } => {
                    // A merge is a write over the winner: what its version cannot see is
                    // kept, as for any write.
                    let old = (!current.deleted)
                        .then(|| views.held(current.version, &current.body, &current.carry));
                    let written = BTreeMap::from([(*version, body.clone())]);
                    let (merged, mut carry) = views.settle(written, old.as_ref(), target)?;
                    carry.extend(held::foreign(&views, &current.carry));
                    (merged, false, carry)
                }
            };
            let rev = super::next_rev(
                Some(replica::resolution_parent(&view)),
                &body,
                &carry,
                deleted,
            );
            let record = replica::resolved(
                ConflictLeaf {
                    rev: rev.clone(),
                    version: target,
                    deleted,
                    access: current.access.clone(),
                    body,
                    history: replica::resolution_history(&view),
                    carry,
                },
                untouched,
            );
            let seq = self.store_record(txn, &state, type_name, id, Some(&current), record)?;
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
                    self.translate_leaf(
                        type_name,
                        id,
                        leaf.version,
                        &leaf.body,
                        &leaf.carry,
                        version,
                    )?
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
