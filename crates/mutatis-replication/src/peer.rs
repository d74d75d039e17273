//! One end of a replication: a node over HTTP (in `mutatis-client`), or a store in this
//! process ([`LocalPeer`]).

use std::future::Future;
use std::sync::Arc;

use mutatis_store::{Backend, Store, StoreError};
use serde_json::Value;

use crate::target::{self, ApplyError, SourceSets};
use crate::wire::{ApplyRequest, ApplyResponse, ChangesBatch, ChangesRequest, NodeInfo};

/// Why a peer could not answer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer could not be reached or failed (connection, timeout, 5xx): worth retrying.
    #[error("{peer}: {message}")]
    Unavailable {
        /// The peer (its URL).
        peer: String,
        /// What happened.
        message: String,
        /// How long the peer asked to be left alone (`Retry-After`), if it did.
        retry_after: Option<std::time::Duration>,
    },
    /// The peer refused the request (4xx): retrying the same request will not help.
    #[error("{peer}: {status} {problem}: {detail}")]
    Refused {
        /// The peer.
        peer: String,
        /// The HTTP status.
        status: u16,
        /// The problem type.
        problem: String,
        /// The problem's detail.
        detail: String,
    },
    /// The target needs the source's manifest with the batch.
    #[error("{peer}: the source's manifest is required")]
    ManifestRequired {
        /// The peer.
        peer: String,
    },
}

impl PeerError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, PeerError::Unavailable { .. })
    }

    /// The same error, with the wait the peer asked for (an unavailable peer's
    /// `Retry-After`; other errors are not retried and keep none).
    pub fn with_retry_after(mut self, wait: Option<std::time::Duration>) -> PeerError {
        if let PeerError::Unavailable { retry_after, .. } = &mut self {
            *retry_after = wait;
        }
        self
    }
}

/// What a replication needs of each end. A source answers [`Peer::changes`]; a target
/// answers [`Peer::apply`]; both keep checkpoints.
pub trait Peer: Send + Sync {
    /// How to name this peer in messages (a URL, "local replica").
    fn name(&self) -> String;
    /// The node's id, manifest hash and feed head.
    fn info(&self) -> impl Future<Output = Result<NodeInfo, PeerError>> + Send;
    /// The node's manifest.
    fn manifest(&self) -> impl Future<Output = Result<Value, PeerError>> + Send;
    /// A batch of the changes feed.
    fn changes(
        &self,
        req: &ChangesRequest,
    ) -> impl Future<Output = Result<ChangesBatch, PeerError>> + Send;
    /// Apply a batch.
    fn apply(
        &self,
        req: &ApplyRequest,
    ) -> impl Future<Output = Result<ApplyResponse, PeerError>> + Send;
    /// A replication's checkpoint on this node (`None`: none).
    fn checkpoint(&self, id: &str) -> impl Future<Output = Result<Option<u64>, PeerError>> + Send;
    /// Record a replication's checkpoint on this node (the source's copy).
    fn put_checkpoint(
        &self,
        id: &str,
        seq: u64,
    ) -> impl Future<Output = Result<(), PeerError>> + Send;
}

/// A store in this process as a peer: a node's own store in a replication job it runs, or
/// a client's offline replica. Local calls are trusted: no access checks.
pub struct LocalPeer<B: Backend + 'static> {
    store: Arc<Store<B>>,
    name: String,
    node_id: String,
    manifest: Value,
    manifest_hash: String,
    sets: Arc<SourceSets>,
}

impl<B: Backend + 'static> LocalPeer<B> {
    /// A peer over `store`, known to others as node `node_id`.
    pub fn new(store: Arc<Store<B>>, name: impl Into<String>, node_id: impl Into<String>) -> Self {
        let manifest = store.schema_set().manifest();
        let manifest_hash = crate::manifest_hash(&manifest);
        LocalPeer {
            store,
            name: name.into(),
            node_id: node_id.into(),
            manifest,
            manifest_hash,
            sets: Arc::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store<B>> {
        &self.store
    }

    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Store<B>) -> Result<R, PeerError> + Send + 'static,
    ) -> Result<R, PeerError> {
        let store = Arc::clone(&self.store);
        let name = self.name.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| PeerError::Unavailable {
                peer: name,
                message: format!("the store task failed: {e}"),
                retry_after: None,
            })?
    }

    fn store_error(name: &str, e: &StoreError) -> PeerError {
        if crate::wire::is_request_error(e) {
            PeerError::Refused {
                peer: name.to_owned(),
                status: 400,
                problem: "store".into(),
                detail: e.to_string(),
            }
        } else {
            PeerError::Unavailable {
                peer: name.to_owned(),
                message: e.to_string(),
                retry_after: None,
            }
        }
    }
}

impl<B: Backend + 'static> Peer for LocalPeer<B> {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn info(&self) -> Result<NodeInfo, PeerError> {
        let name = self.name.clone();
        let last_seq = self
            .blocking(move |s| s.last_seq().map_err(|e| Self::store_error(&name, &e)))
            .await?;
        Ok(NodeInfo {
            node_id: self.node_id.clone(),
            manifest: self.manifest_hash.clone(),
            last_seq,
        })
    }

    async fn manifest(&self) -> Result<Value, PeerError> {
        Ok(self.manifest.clone())
    }

    async fn changes(&self, req: &ChangesRequest) -> Result<ChangesBatch, PeerError> {
        let (req, name, node, hash) = (
            req.clone(),
            self.name.clone(),
            self.node_id.clone(),
            self.manifest_hash.clone(),
        );
        self.blocking(move |s| {
            crate::source::changes_batch(s, &node, &hash, &req, &|_| true)
                .map_err(|e| Self::store_error(&name, &e))
        })
        .await
    }

    async fn apply(&self, req: &ApplyRequest) -> Result<ApplyResponse, PeerError> {
        let (req, name, node, hash, sets) = (
            req.clone(),
            self.name.clone(),
            self.node_id.clone(),
            self.manifest_hash.clone(),
            Arc::clone(&self.sets),
        );
        self.blocking(move |s| {
            target::apply_batch(s, &node, &hash, &sets, &req, None).map_err(|e| match e {
                ApplyError::ManifestRequired { .. } => PeerError::ManifestRequired { peer: name },
                ApplyError::BadManifest(detail) => PeerError::Refused {
                    peer: name,
                    status: 400,
                    problem: "bad-manifest".into(),
                    detail,
                },
                ApplyError::Store(e) => Self::store_error(&name, &e),
            })
        })
        .await
    }

    async fn checkpoint(&self, id: &str) -> Result<Option<u64>, PeerError> {
        let (id, name) = (id.to_owned(), self.name.clone());
        self.blocking(move |s| {
            target::read_checkpoint(s, &id)
                .map(|c| c.map(|c| c.seq))
                .map_err(|e| Self::store_error(&name, &e))
        })
        .await
    }

    async fn put_checkpoint(&self, id: &str, seq: u64) -> Result<(), PeerError> {
        let (id, name) = (id.to_owned(), self.name.clone());
        self.blocking(move |s| {
            target::write_checkpoint(s, &id, seq).map_err(|e| Self::store_error(&name, &e))
        })
        .await
    }
}
