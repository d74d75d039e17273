//! The replication loop: the thin async shell that drives two [`Peer`]s.

use std::time::Duration;

use mutatis_store::LossPolicy;
use serde_json::Value;

use crate::peer::{Peer, PeerError};
use crate::session::{checkpoint_id, resume_seq, Tally};
use crate::wire::{ApplyRequest, ChangesRequest, Checkpoint, NodeInfo, Selector, SourceRef};

/// What to replicate and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only these types (empty: all).
    pub types: Vec<String>,
    /// Only documents matching this selector.
    pub selector: Selector,
    /// What the target does with documents its version cannot hold.
    pub policy: LossPolicy,
    /// Feed entries per batch.
    pub batch_size: usize,
    /// Keep following the source's feed once caught up.
    pub continuous: bool,
    /// How many times in a row a failing peer is retried before the replication stops
    /// (`None`: forever, as a continuous job does).
    pub max_retries: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            types: Vec::new(),
            selector: Selector::new(),
            policy: LossPolicy::default(),
            batch_size: 500,
            continuous: false,
            max_retries: Some(8),
        }
    }
}

/// Where a replication stands, after each batch.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The checkpoint id.
    pub checkpoint: String,
    /// The sequence it resumed from.
    pub resumed_from: u64,
    /// The last source sequence applied.
    pub seq: u64,
    /// The source's feed head at the last batch.
    pub head: u64,
    /// What has been done.
    pub tally: Tally,
}

/// A replication that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// A peer failed for good (refused, or unavailable past the retries).
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// The two ends are the same node.
    #[error("the source and the target are the same node ({0})")]
    SameNode(String),
}

/// Replicate from `source` to `target` until caught up (or, with `continuous`, for ever:
/// drop or abort the future to stop; the checkpoints make that safe at any point).
/// `on_batch` sees the progress after every batch and after resuming.
pub async fn replicate<S: Peer, T: Peer>(
    source: &S,
    target: &T,
    opts: &Options,
    mut on_batch: impl FnMut(&Progress) + Send,
) -> Result<Progress, ReplicationError> {
    let src = retry(opts, || source.info()).await?;
    let tgt = retry(opts, || target.info()).await?;
    if src.node_id == tgt.node_id {
        return Err(ReplicationError::SameNode(src.node_id));
    }
    let id = checkpoint_id(
        &src.node_id,
        &tgt.node_id,
        &opts.types,
        &opts.selector,
        opts.policy,
    );
    let target_cp = retry(opts, || target.checkpoint(&id)).await?;
    // The source's copy is advisory: a source that will not tell is resumed from the target's.
    let source_cp = source.checkpoint(&id).await.ok().flatten();
    let since = resume_seq(target_cp, source_cp);
    tracing::info!(checkpoint = %id, since, source = %source.name(), target = %target.name(), "replication starts");
    let mut progress = Progress {
        checkpoint: id.clone(),
        resumed_from: since,
        seq: since,
        head: src.last_seq,
        tally: Tally::default(),
    };
    on_batch(&progress);
    let mut manifest: Option<Value> = None;
    // The source's copy of the checkpoint: writing it is skipped once refused (a read-only
    // credential on the source).
    let mut source_checkpoints = true;
    loop {
        let req = ChangesRequest {
            since: progress.seq,
            limit: opts.batch_size,
            types: opts.types.clone(),
            selector: opts.selector.clone(),
            wait_ms: opts.continuous.then_some(20_000),
        };
        let batch = retry(opts, || source.changes(&req)).await?;
        progress.head = batch.head;
        if batch.last_seq <= progress.seq {
            // Caught up.
            if opts.continuous {
                continue;
            }
            break;
        }
        let mut apply = ApplyRequest {
            source: SourceRef {
                node_id: batch.node_id.clone(),
                manifest: batch.manifest.clone(),
                schema: manifest.clone(),
            },
            policy: opts.policy,
            checkpoint: Some(Checkpoint {
                id: id.clone(),
                seq: batch.last_seq,
            }),
            docs: batch.docs,
        };
        let resp = match retry(opts, || target.apply(&apply)).await {
            Err(ReplicationError::Peer(PeerError::ManifestRequired { .. })) => {
                let m = retry(opts, || source.manifest()).await?;
                manifest = Some(m.clone());
                apply.source.schema = Some(m);
                retry(opts, || target.apply(&apply)).await?
            }
            other => other?,
        };
        progress
            .tally
            .add(opts.policy, batch.filtered, apply.docs.len(), &resp);
        progress.seq = batch.last_seq;
        if source_checkpoints {
            if let Err(e) = source.put_checkpoint(&id, progress.seq).await {
                tracing::debug!(error = %e, "the source keeps no copy of the checkpoint");
                source_checkpoints = false;
            }
        }
        on_batch(&progress);
    }
    Ok(progress)
}

/// Call `f` until it succeeds, backing off (with jitter, or as long as the peer's
/// `Retry-After` says) while the peer is unavailable.
async fn retry<R, F, Fut>(opts: &Options, mut f: F) -> Result<R, ReplicationError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<R, PeerError>>,
{
    let mut delays = crate::backoff::backoff(Duration::from_millis(100), Duration::from_secs(5));
    let mut attempts = 0u32;
    loop {
        match f().await {
            Ok(r) => return Ok(r),
            Err(e) if e.is_retryable() && opts.max_retries.is_none_or(|m| attempts < m) => {
                attempts += 1;
                let asked = match &e {
                    PeerError::Unavailable { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let delay = crate::backoff::next_wait(&mut delays, asked);
                tracing::warn!(error = %e, attempt = attempts, ?delay, "peer unavailable, retrying");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The node information of both ends, for a caller that reports them.
pub async fn describe<S: Peer, T: Peer>(
    source: &S,
    target: &T,
) -> Result<(NodeInfo, NodeInfo), PeerError> {
    Ok((source.info().await?, target.info().await?))
}
