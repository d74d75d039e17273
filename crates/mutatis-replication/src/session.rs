//! The replication's pure bookkeeping: which checkpoint a replication uses, where it resumes,
//! and what it has done so far.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::wire::{ApplyResponse, Outcome, Selector};

/// A replication's checkpoint id: the same source, target, types, selector and loss policy
/// always give the same id, so a rerun of the same replication resumes where the last one
/// stopped, and a different one starts its own. The policy is part of it because it decides
/// what was stored: a rerun under `carry` after a `refuse` run sends again what was refused.
pub fn checkpoint_id(
    source_node: &str,
    target_node: &str,
    types: &[String],
    selector: &Selector,
    policy: mutatis_store::LossPolicy,
) -> String {
    let mut types = types.to_vec();
    types.sort();
    types.dedup();
    let mut h = Sha256::new();
    for part in [source_node, target_node] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for t in &types {
        h.update(t.as_bytes());
        h.update([1]);
    }
    h.update(
        serde_json::to_string(selector)
            .unwrap_or_default()
            .as_bytes(),
    );
    h.update([2]);
    h.update(policy.as_str().as_bytes());
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a replication resumes, from the checkpoint each side holds. The target writes its
/// checkpoint with each batch, so it is exact; the source's is written after, and may be one
/// batch behind (a crash between the two) or missing (a read-only source). Taking the lower
/// one when both exist re-sends at most that one batch, and never skips one; with no
/// target checkpoint the target has no record of this replication and everything is sent
/// (replication is idempotent, so that costs time, not correctness).
pub fn resume_seq(target: Option<u64>, source: Option<u64>) -> u64 {
    match (target, source) {
        (Some(t), Some(s)) => t.min(s),
        (Some(t), None) => t,
        (None, _) => 0,
    }
}

/// A document the target did not store, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotStored {
    /// The type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The id.
    pub id: String,
    /// The rev.
    pub rev: String,
    /// Refused or forbidden.
    pub outcome: Outcome,
    /// What the target's version cannot hold (or the translation error).
    pub lost: Vec<String>,
}

/// What a replication has done, counted per revision.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    /// Batches applied.
    pub batches: u64,
    /// Documents sent.
    pub docs: u64,
    /// Revisions new on the target.
    pub stored: u64,
    /// Revisions that replaced the target's winner.
    pub fast_forward: u64,
    /// Revisions the target already had (a re-sent batch, or a document that came back).
    pub already_known: u64,
    /// Revisions that made a conflict.
    pub conflicts: u64,
    /// Revisions refused (`refuse` policy, or untranslatable).
    pub refused: u64,
    /// Revisions the replicator's credentials may not write on the target.
    pub forbidden: u64,
    /// Revisions stored with fields dropped (`lossy`).
    pub lossy: u64,
    /// Revisions stored with fields carried beside them (`carry`).
    pub carried: u64,
    /// Feed entries the source left out (type, selector, access).
    pub filtered: u64,
    /// The first documents not stored, with the reasons (at most [`MAX_NOT_STORED`]).
    pub not_stored: Vec<NotStored>,
}

/// How many refused or forbidden documents a [`Tally`] lists by name.
pub const MAX_NOT_STORED: usize = 1000;

impl Tally {
    /// Count a batch's results.
    pub fn add(
        &mut self,
        policy: mutatis_store::LossPolicy,
        filtered: u64,
        docs: usize,
        resp: &ApplyResponse,
    ) {
        self.batches += 1;
        self.docs += docs as u64;
        self.filtered += filtered;
        for r in &resp.results {
            match r.outcome {
                Outcome::Stored => self.stored += 1,
                Outcome::FastForward => self.fast_forward += 1,
                Outcome::AlreadyKnown => self.already_known += 1,
                Outcome::Conflict => self.conflicts += 1,
                Outcome::Refused => self.refused += 1,
                Outcome::Forbidden => self.forbidden += 1,
            }
            let stored = matches!(
                r.outcome,
                Outcome::Stored | Outcome::FastForward | Outcome::Conflict
            );
            if stored && !r.lost.is_empty() {
                match policy {
                    mutatis_store::LossPolicy::Carry => self.carried += 1,
                    _ => self.lossy += 1,
                }
            }
            if matches!(r.outcome, Outcome::Refused | Outcome::Forbidden)
                && self.not_stored.len() < MAX_NOT_STORED
            {
                self.not_stored.push(NotStored {
                    type_name: r.type_name.clone(),
                    id: r.id.clone(),
                    rev: r.rev.to_string(),
                    outcome: r.outcome,
                    lost: r.lost.clone(),
                });
            }
        }
    }

    /// Revisions written on the target.
    pub fn written(&self) -> u64 {
        self.stored + self.fast_forward + self.conflicts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_ids_name_the_replication() {
        use mutatis_store::LossPolicy::{Carry, Refuse};
        let sel = Selector::new();
        let ab: Vec<String> = vec!["a".into(), "b".into()];
        let a = checkpoint_id("n1", "n2", &["b".into(), "a".into()], &sel, Carry);
        assert_eq!(a, checkpoint_id("n1", "n2", &ab, &sel, Carry));
        assert_ne!(a, checkpoint_id("n2", "n1", &ab, &sel, Carry));
        assert_ne!(a, checkpoint_id("n1", "n2", &["a".into()], &sel, Carry));
        assert_ne!(a, checkpoint_id("n1", "n2", &ab, &sel, Refuse));
        let mut other = Selector::new();
        other.insert("/x".into(), serde_json::json!(1));
        assert_ne!(a, checkpoint_id("n1", "n2", &ab, &other, Carry));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn resume_takes_the_lower_checkpoint() {
        assert_eq!(resume_seq(Some(900), Some(800)), 800);
        assert_eq!(resume_seq(Some(900), None), 900);
        assert_eq!(resume_seq(None, Some(800)), 0);
        assert_eq!(resume_seq(None, None), 0);
    }
}
