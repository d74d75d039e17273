//! Replication between mutatis nodes that may be on different schema versions.
//!
//! A replication reads a source node's changes feed in batches and applies each batch to a
//! target node (DESIGN §10). This crate holds everything but the transport:
//!
//! - [`wire`]: the messages, as they travel over HTTP;
//! - [`source`]: a batch of the feed read from a store (what `GET /replication/changes`
//!   answers);
//! - [`target`]: a batch applied to a store, translated from the source's versions under a
//!   loss policy, with the checkpoint in the same transaction (what
//!   `POST /replication/apply` does);
//! - [`session`]: the pure bookkeeping: checkpoint ids, where to resume, the tally;
//! - [`run`]: the loop over two [`Peer`]s, with retries;
//! - [`peer`]: the [`Peer`] trait and [`LocalPeer`], a store in this process. The HTTP peer
//!   is `mutatis_client::HttpPeer`.
//!
//! Guarantees, whatever the ends and however the run is cut short:
//!
//! - **Idempotent.** Documents travel with their revs and histories; a revision the target
//!   knows changes nothing there.
//! - **Resumable.** The target stores each batch and its checkpoint in one transaction, so a
//!   killed target or a cut connection costs at most the batch in flight, sent again.
//! - **Nothing silently lost.** A document the target's version cannot hold without loss is
//!   refused, carried beside the target's document, or stored with the loss counted and
//!   reported, as the replication's [`mutatis_store::LossPolicy`] says.
//!
//! ```
//! use mutatis_replication::{checkpoint_id, resume_seq, Selector};
//!
//! use mutatis_store::LossPolicy;
//!
//! let id = checkpoint_id("node-a", "node-b", &["todo".to_owned()], &Selector::new(), LossPolicy::Carry);
//! assert_eq!(id.len(), 32);
//! // The target's checkpoint is exact; a source one batch behind costs one batch.
//! assert_eq!(resume_seq(Some(1000), Some(500)), 500);
//! ```

pub mod backoff;
pub mod peer;
pub mod run;
pub mod session;
pub mod source;
pub mod target;
pub mod wire;

pub use peer::{LocalPeer, Peer, PeerError};
pub use run::{replicate, Options, Progress, ReplicationError};
pub use session::{checkpoint_id, resume_seq, NotStored, Tally};
pub use source::{changes_batch, MAX_BATCH};
pub use target::{apply_batch, checkpoint_key, ApplyError, SourceSets, WriteCheck};
pub use wire::{
    ApplyRequest, ApplyResponse, ChangesBatch, ChangesRequest, Checkpoint, NodeInfo, Outcome,
    RevisionResult, Selector, SourceRef, WireDoc, WireRevision, MANIFEST_REQUIRED,
};

use sha2::{Digest, Sha256};

/// A manifest's hash, `sha256:` and hex: how a batch names the versions its documents are in.
pub fn manifest_hash(manifest: &serde_json::Value) -> String {
    let bytes = serde_json::to_vec(manifest).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}
