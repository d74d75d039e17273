//! The target side: a batch applied to a store, translated from the source's versions, with
//! its checkpoint in the same transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use mutatis_schema::{SchemaError, SchemaSet};
use mutatis_store::{Applied, Backend, SourceContext, Store, StoreError};
use serde_json::{json, Value};

use crate::wire::{ApplyRequest, ApplyResponse, Outcome, RevisionResult, StoredCheckpoint};

/// The node setting a replication's checkpoint is kept under.
pub fn checkpoint_key(id: &str) -> String {
    format!("replication/checkpoint/{id}")
}

/// Read a replication's checkpoint from a store.
pub fn read_checkpoint<B: Backend>(
    store: &Store<B>,
    id: &str,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    Ok(store
        .setting(&checkpoint_key(id))?
        .and_then(|v| serde_json::from_value(v).ok()))
}

/// Write a replication's checkpoint to a store (the source's copy; the target's is written
/// with each batch).
pub fn write_checkpoint<B: Backend>(
    store: &Store<B>,
    id: &str,
    seq: u64,
) -> Result<(), StoreError> {
    store.put_setting(&checkpoint_key(id), Some(&json!({"seq": seq})))
}

/// Why a batch needs more than it brought.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A document is in a version this node does not know, and the source's manifest is not
    /// at hand: the replicator sends it again with the manifest.
    #[error("{type_name}@{version} is not a version this node knows; send the source's manifest ({manifest}) with the batch")]
    ManifestRequired {
        /// The type.
        type_name: String,
        /// The version.
        version: u32,
        /// The manifest hash the batch named.
        manifest: String,
    },
    /// The manifest sent does not hash to the hash named, or does not load.
    #[error("the source's manifest is unusable: {0}")]
    BadManifest(String),
    /// The store refused the batch.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Source schema sets by manifest hash: loading a manifest compiles every lens, so a target
/// does it once per source release, not once per batch.
#[derive(Default)]
pub struct SourceSets {
    sets: Mutex<HashMap<String, Arc<SchemaSet>>>,
}

/// How many source schema sets a node keeps (each is a few sources' releases).
const MAX_SOURCE_SETS: usize = 32;

impl SourceSets {
    /// The set of a manifest already seen.
    pub fn get(&self, hash: &str) -> Option<Arc<SchemaSet>> {
        self.sets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(hash)
            .cloned()
    }

    /// Load a manifest sent under `hash` (checked) and keep it.
    pub fn load(&self, hash: &str, manifest: &Value) -> Result<Arc<SchemaSet>, ApplyError> {
        let actual = crate::manifest_hash(manifest);
        if actual != hash {
            return Err(ApplyError::BadManifest(format!(
                "it hashes to {actual}, not {hash}"
            )));
        }
        let set = SchemaSet::from_manifest(manifest)
            .map_err(|e: SchemaError| ApplyError::BadManifest(e.to_string()))?;
        let set = Arc::new(set);
        let mut sets = self.sets.lock().unwrap_or_else(PoisonError::into_inner);
        if sets.len() >= MAX_SOURCE_SETS {
            sets.clear();
        }
        sets.insert(hash.to_owned(), Arc::clone(&set));
        Ok(set)
    }
}

/// Decides whether a replicated document may be written: from its local access data (`None`:
/// the document is new here) and an incoming leaf's.
pub type WriteCheck<'a> = &'a dyn Fn(Option<&Value>, &Value) -> bool;

/// Apply a batch: each document's leaves, translated into this node's storage versions
/// (through the source's schema set for versions this node does not know), under the
/// request's loss policy, with the checkpoint in the same transaction.
///
/// `own_manifest` is this node's manifest hash (a source on the same manifest needs nothing
/// more). `can_write` decides per document from its local access data (`None`: the document
/// is new here) and the incoming leaf's; a document it refuses is reported `forbidden` and
/// not written.
pub fn apply_batch<B: Backend>(
    store: &Store<B>,
    node_id: &str,
    own_manifest: &str,
    sets: &SourceSets,
    req: &ApplyRequest,
    can_write: Option<WriteCheck<'_>>,
) -> Result<ApplyResponse, ApplyError> {
    let source_set = source_set(store.schema_set(), own_manifest, sets, req)?;
    let mut allowed: Vec<bool> = Vec::with_capacity(req.docs.len());
    for doc in &req.docs {
        let ok = match can_write {
            None => true,
            Some(check) => {
                let local = store.access(&doc.type_name, &doc.id)?;
                doc.revisions
                    .iter()
                    .all(|r| check(local.as_ref(), &r.access))
            }
        };
        allowed.push(ok);
    }
    let flat: Vec<_> = req
        .docs
        .iter()
        .zip(&allowed)
        .filter(|(_, ok)| **ok)
        .flat_map(|(d, _)| d.to_store())
        .collect();
    let checkpoint = req
        .checkpoint
        .as_ref()
        .map(|c| (checkpoint_key(&c.id), json!({"seq": c.seq})));
    let outcomes = store.apply_replicated_from(
        SourceContext {
            set: source_set.as_deref(),
            policy: req.policy,
        },
        &flat,
        checkpoint.as_ref().map(|(k, v)| (k.as_str(), v)),
    )?;
    // Results in request order: the store's outcomes for allowed documents, `forbidden` for
    // the others.
    let mut applied = flat.iter().zip(outcomes);
    let mut results = Vec::with_capacity(flat.len());
    for (doc, ok) in req.docs.iter().zip(&allowed) {
        for r in &doc.revisions {
            if !*ok {
                results.push(RevisionResult {
                    type_name: doc.type_name.clone(),
                    id: doc.id.clone(),
                    rev: r.rev.clone(),
                    outcome: Outcome::Forbidden,
                    winner: None,
                    lost: Vec::new(),
                    lost_in: None,
                });
                continue;
            }
            let Some((d, o)) = applied.next() else {
                break;
            };
            let (outcome, winner) = match o.applied {
                Applied::Stored => (Outcome::Stored, None),
                Applied::FastForward => (Outcome::FastForward, None),
                Applied::AlreadyKnown => (Outcome::AlreadyKnown, None),
                Applied::Refused => (Outcome::Refused, None),
                Applied::Conflict { winner, .. } => (Outcome::Conflict, Some(winner)),
            };
            results.push(RevisionResult {
                type_name: d.type_name.clone(),
                id: d.id.clone(),
                rev: d.doc.rev.clone(),
                outcome,
                winner,
                lost: o.lost,
                lost_in: o.lost_in,
            });
        }
    }
    Ok(ApplyResponse {
        node_id: node_id.to_owned(),
        results,
    })
}

/// The source's schema set, when the batch needs it: some revision is in a version this
/// node does not know.
fn source_set(
    local: &SchemaSet,
    own_manifest: &str,
    sets: &SourceSets,
    req: &ApplyRequest,
) -> Result<Option<Arc<SchemaSet>>, ApplyError> {
    if req.source.manifest == own_manifest {
        return Ok(None);
    }
    let unknown = req.docs.iter().find_map(|d| {
        let known = local.versions(&d.type_name).unwrap_or_default();
        d.revisions
            .iter()
            .find(|r| !known.contains(&r.version))
            .map(|r| (d.type_name.clone(), r.version))
    });
    let Some((type_name, version)) = unknown else {
        return Ok(None);
    };
    if let Some(set) = sets.get(&req.source.manifest) {
        return Ok(Some(set));
    }
    match &req.source.schema {
        Some(manifest) => sets.load(&req.source.manifest, manifest).map(Some),
        None => Err(ApplyError::ManifestRequired {
            type_name,
            version,
            manifest: req.source.manifest.clone(),
        }),
    }
}
