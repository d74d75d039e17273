//! The replication protocol's messages, as they travel over HTTP (JSON, camelCase).
//!
//! A replication reads batches of documents from a source's changes feed
//! ([`ChangesRequest`] → [`ChangesBatch`]) and hands each batch to the target
//! ([`ApplyRequest`] → [`ApplyResponse`]), which stores it together with the checkpoint. A
//! document travels as every leaf of its rev tree ([`WireRevision`]: the winner first, then
//! the conflict leaves), each in the source's storage version, with the source's manifest
//! named by its hash; the target translates into its own storage version.

use mutatis_store::{
    Carried, LossPolicy, Replicated, ReplicatedDoc, ReplicationDoc, Rev, StoreError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a node says about itself to a replicator (`GET /replication`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// The node's id (stable for the life of its store).
    pub node_id: String,
    /// The hash of the node's manifest ([`crate::manifest_hash`]).
    pub manifest: String,
    /// The feed's last sequence.
    pub last_seq: u64,
}

/// A selector on documents: every JSON pointer must hold the given value in the body, in
/// the source's storage version. An empty selector matches every document.
pub type Selector = std::collections::BTreeMap<String, Value>;

/// Which changes a replicator asks a source for.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangesRequest {
    /// Changes after this feed sequence.
    pub since: u64,
    /// At most this many feed entries are read (documents written twice count once).
    pub limit: usize,
    /// Only these types (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// Only documents matching this selector.
    #[serde(default, skip_serializing_if = "Selector::is_empty")]
    pub selector: Selector,
    /// When there is nothing new, wait up to this many milliseconds for a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// One batch from a source's feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangesBatch {
    /// The source's node id.
    pub node_id: String,
    /// The hash of the source's manifest: the versions `docs` are in are defined there.
    pub manifest: String,
    /// The last feed sequence this batch covers (read, whether sent or filtered out): the
    /// checkpoint once the batch is applied.
    pub last_seq: u64,
    /// The source's feed head when the batch was read (for progress).
    pub head: u64,
    /// The documents changed in `(since, last_seq]` that pass the filters.
    pub docs: Vec<WireDoc>,
    /// Feed entries in the range that were not sent: another type, not matching the
    /// selector, or not readable with the replicator's credentials.
    #[serde(default)]
    pub filtered: u64,
}

/// One document in a batch: every leaf of its rev tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireDoc {
    /// Its type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Its id.
    pub id: String,
    /// The source feed sequence it was read at.
    pub seq: u64,
    /// The winner first, then the conflict leaves.
    pub revisions: Vec<WireRevision>,
}

/// One leaf of a document's rev tree, as the source stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireRevision {
    /// The rev.
    pub rev: Rev,
    /// Its ancestors, most recent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Rev>,
    /// The version `body` is in (the source's storage version).
    pub version: u32,
    /// A delete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The document (`null` for a delete).
    pub body: Value,
    /// The document's access policy (`null`: none).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub access: Value,
    /// Bodies of newer versions carried beside it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carry: Vec<Carried>,
}

impl WireDoc {
    /// The wire form of what a store reads for replication.
    pub fn from_store(type_name: &str, id: &str, seq: u64, doc: &ReplicationDoc) -> WireDoc {
        WireDoc {
            type_name: type_name.to_owned(),
            id: id.to_owned(),
            seq,
            revisions: doc
                .revisions()
                .into_iter()
                .map(|r| WireRevision {
                    rev: r.rev,
                    history: r.history,
                    version: r.version,
                    deleted: r.deleted,
                    body: r.body,
                    access: r.access,
                    carry: r.carry,
                })
                .collect(),
        }
    }

    /// The revisions as a store applies them.
    pub fn to_store(&self) -> impl Iterator<Item = ReplicatedDoc> + '_ {
        self.revisions.iter().map(|r| ReplicatedDoc {
            type_name: self.type_name.clone(),
            id: self.id.clone(),
            doc: Replicated {
                rev: r.rev.clone(),
                history: r.history.clone(),
                version: r.version,
                body: r.body.clone(),
                deleted: r.deleted,
                access: r.access.clone(),
                carry: r.carry.clone(),
            },
        })
    }
}

/// Where a batch comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceRef {
    /// The source's node id.
    pub node_id: String,
    /// The hash of its manifest.
    pub manifest: String,
    /// The manifest itself, sent when the target asked for it
    /// (`urn:mutatis:problem:manifest-required`); the target keeps it by hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
}

/// A checkpoint to store with a batch, on the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// The replication's checkpoint id ([`crate::checkpoint_id`]).
    pub id: String,
    /// The last source feed sequence applied.
    pub seq: u64,
}

/// A batch for a target to apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRequest {
    /// Where the documents come from.
    pub source: SourceRef,
    /// What to do with a document the target's version cannot hold without loss.
    #[serde(default)]
    pub policy: LossPolicy,
    /// Stored in the same transaction as the documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// The documents.
    pub docs: Vec<WireDoc>,
}

/// What the target did with one revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// New on the target.
    Stored,
    /// Replaced the target's winner, which it descends from.
    FastForward,
    /// Already there: nothing written.
    AlreadyKnown,
    /// Concurrent with the target's winner: both kept, one as a conflict leaf.
    Conflict,
    /// Not stored: the target's version cannot hold it under the `refuse` policy, or it
    /// cannot be translated at all.
    Refused,
    /// Not stored: the replicator's credentials may not write this document on the target.
    Forbidden,
}

/// The target's answer for one revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionResult {
    /// The type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The id.
    pub id: String,
    /// The revision.
    pub rev: Rev,
    /// What happened.
    pub outcome: Outcome,
    /// For a conflict: the rev that won.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner: Option<Rev>,
    /// JSON pointers into the body (in `lostIn`) that the target's version cannot hold:
    /// dropped under `lossy`, carried under `carry`, the reason under `refuse`. For a
    /// document that cannot be translated, the error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<String>,
    /// The version `lost` points into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_in: Option<u32>,
}

/// The target's answer for a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResponse {
    /// The target's node id.
    pub node_id: String,
    /// One per revision, in request order.
    pub results: Vec<RevisionResult>,
}

/// A stored checkpoint (`GET /replication/checkpoints/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredCheckpoint {
    /// The last source feed sequence applied.
    pub seq: u64,
}

/// A store error's wire form is the server's problem; this names the one a target returns
/// when it needs the source's manifest.
pub const MANIFEST_REQUIRED: &str = "urn:mutatis:problem:manifest-required";

/// Whether a store error is a fault of the request (the source sent something this target
/// refuses) rather than of the node.
pub fn is_request_error(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::UnknownVersion { .. }
            | StoreError::InvalidId { .. }
            | StoreError::Invalid { .. }
            | StoreError::InvalidRev { .. }
            | StoreError::Schema(_)
    )
}
