//! Replication's pure core: rev histories, conflict leaves and the deterministic winner.
//!
//! A stored [`Record`] is the *winning leaf* of its document (its rev, body, history) plus the
//! losing leaves of concurrent edits ([`Record::conflicts`]). Every leaf carries its history:
//! the revs it descends from, most recent first, bounded by [`REVS_LIMIT`]. Everything that
//! changes leaves goes through one rule, so every node ends in the same state whatever order
//! the revs arrive in:
//!
//! - a rev already among the leaves or their histories is *known*: applying it again changes
//!   nothing (replication is idempotent);
//! - a new rev replaces every leaf it descends from (the leaves in its history) and joins the
//!   others;
//! - the winner is the live leaf with the highest generation, then the highest hash; a deleted
//!   leaf wins only when every leaf is deleted (CouchDB: a delete does not beat an edit). The
//!   losers are kept in a fixed order (best first), so two nodes holding the same leaves hold
//!   equal records.
//!
//! A resolution is a rev whose history names the winner *and* the losers (a merge descends from
//! all of them), so a node receiving it drops the losers too, and a loser arriving later from a
//! third node is already known instead of reopening the conflict.
//!
//! Nothing here does I/O or translation: the [`crate::Store`] shell translates bodies to the
//! storage version and hands finished leaves in.

use std::cmp::Ordering;
use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::Record;
use crate::rev::Rev;

/// The most ancestors a history keeps (CouchDB's `revs_limit`): older ones are dropped. A rev
/// whose common ancestor with another lies further back than this is treated as unrelated to
/// it, and the two become a conflict.
pub const REVS_LIMIT: usize = 1000;

/// One leaf of a document's rev tree that lost to the winner: a concurrent edit kept until it
/// is resolved. It is stored in its own version, like a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConflictLeaf {
    /// The leaf's rev.
    pub rev: Rev,
    /// The version `body` is in.
    pub version: u32,
    /// A deleted leaf (a delete concurrent with an edit).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The access data written with the leaf: it applies if the leaf becomes the winner (the
    /// winner's delete replicates in, or the leaf is kept by a resolution).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub access: Value,
    /// The document (`null` for a deleted leaf).
    pub body: Value,
    /// The revs the leaf descends from, most recent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Rev>,
    /// What newer versions hold that this leaf's version cannot: see [`Carried`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carry: Vec<Carried>,
}

/// A document as a newer version held it, kept beside a leaf stored in an older version
/// (the `carry` replication policy): what the older version cannot represent survives the
/// stay, and a node that knows the newer version restores it by translating the leaf onto
/// this body ([`mutatis_lens::Plan::translate_onto`]), so edits made meanwhile are kept
/// too. A leaf carries at most one body per version, oldest version first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Carried {
    /// The version `body` is in (one the storing node may not know).
    pub version: u32,
    /// The document in that version.
    pub body: Value,
}

/// What a replication target does with a document its storage version cannot hold without
/// loss (a field its version lacks, with a value). DESIGN §10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossPolicy {
    /// Do not store it; report it (DataONE's "NOT ALLOWED").
    Refuse,
    /// Store it, keeping what the target cannot represent beside it ([`Carried`]).
    #[default]
    Carry,
    /// Store what the target can represent; report what was dropped.
    Lossy,
}

impl LossPolicy {
    /// The policy's name on the command line and the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            LossPolicy::Refuse => "refuse",
            LossPolicy::Carry => "carry",
            LossPolicy::Lossy => "lossy",
        }
    }
}

impl std::str::FromStr for LossPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<LossPolicy, String> {
        match s {
            "refuse" => Ok(LossPolicy::Refuse),
            "carry" => Ok(LossPolicy::Carry),
            "lossy" => Ok(LossPolicy::Lossy),
            other => Err(format!(
                "unknown replication policy {other:?} (expected refuse, carry or lossy)"
            )),
        }
    }
}

impl std::fmt::Display for LossPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A document revision arriving from another node (CouchDB's `new_edits=false`): its rev and
/// history are stored as given, never recomputed.
#[derive(Debug, Clone, PartialEq)]
pub struct Replicated {
    /// The rev, as the source stored it.
    pub rev: Rev,
    /// The revs it descends from, most recent first (the source's [`Record::history`]).
    pub history: Vec<Rev>,
    /// The version `body` is in; the store translates it to its storage version.
    pub version: u32,
    /// The document; ignored for a delete.
    pub body: Value,
    /// A delete (the source's tombstone).
    pub deleted: bool,
    /// Access data, opaque to the store (`null`: none).
    pub access: Value,
    /// Bodies of newer versions the source kept beside the document ([`Carried`]).
    pub carry: Vec<Carried>,
}

/// One document of a replicated batch ([`crate::Store::apply_replicated_batch`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicatedDoc {
    /// Its type.
    pub type_name: String,
    /// Its id.
    pub id: String,
    /// The revision.
    pub doc: Replicated,
}

/// What applying a replicated revision did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The document was new here.
    Stored,
    /// The revision descends from the local winner and replaced it. (If it is a delete and
    /// the document has a live conflict leaf, that leaf is the winner now.)
    FastForward,
    /// The revision was already here (the winner, one of its ancestors, or a conflict leaf or
    /// one of theirs): nothing was written, nothing appended to the feed.
    AlreadyKnown,
    /// The storage version cannot hold the revision without loss and the policy is
    /// [`LossPolicy::Refuse`]: nothing was written.
    Refused,
    /// The revision is concurrent with the local winner: both are kept, the loser as a
    /// conflict leaf.
    Conflict {
        /// The rev that wins (on every node).
        winner: Rev,
        /// The rev kept as a conflict leaf.
        loser: Rev,
    },
}

/// How [`crate::Store::resolve_conflict`] ends a conflict.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// Keep this leaf's content (the winner's or a loser's; a deleted leaf deletes the
    /// document).
    Keep(Rev),
    /// Write a merged body, in `version`.
    Merge {
        /// The version `body` is written in.
        version: u32,
        /// The merged document.
        body: Value,
    },
}

/// What a replication source reads for one document ([`crate::Store::replication_doc`]): the
/// winner, tombstones included, and the conflict leaves, all in one version.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicationDoc {
    /// The winner's rev.
    pub rev: Rev,
    /// The winner's history, most recent first.
    pub history: Vec<Rev>,
    /// The winner is a tombstone.
    pub deleted: bool,
    /// The version of `body` and of the leaves' bodies.
    pub version: u32,
    /// The winner's body (`null` for a tombstone).
    pub body: Value,
    /// Access data, opaque to the store.
    pub access: Value,
    /// The losing leaves, best first.
    pub conflicts: Vec<ConflictLeaf>,
    /// The winner's carried bodies of newer versions.
    pub carry: Vec<Carried>,
}

impl ReplicationDoc {
    /// Every leaf as a revision to send, winner first: what a target applies (in any order)
    /// to end with the same record.
    pub fn revisions(&self) -> Vec<Replicated> {
        let mut out = Vec::with_capacity(1 + self.conflicts.len());
        out.push(Replicated {
            rev: self.rev.clone(),
            history: self.history.clone(),
            version: self.version,
            body: self.body.clone(),
            deleted: self.deleted,
            access: self.access.clone(),
            carry: self.carry.clone(),
        });
        out.extend(self.conflicts.iter().map(|leaf| Replicated {
            rev: leaf.rev.clone(),
            history: leaf.history.clone(),
            version: leaf.version,
            body: leaf.body.clone(),
            deleted: leaf.deleted,
            access: leaf.access.clone(),
            carry: leaf.carry.clone(),
        }));
        out
    }
}

/// Why a history is refused (the rev it belongs to is named by the caller's error).
pub(crate) fn check_history(rev: &Rev, history: &[Rev]) -> Result<(), &'static str> {
    let mut seen = HashSet::with_capacity(history.len());
    let mut previous = rev.generation();
    for ancestor in history {
        if ancestor.generation() >= rev.generation() {
            return Err("its history names a rev that is not older than it (an ancestor's generation must be lower)");
        }
        if ancestor.generation() > previous {
            return Err("its history is not most recent first (generations must not increase)");
        }
        if !seen.insert(ancestor) {
            return Err("its history names a rev twice");
        }
        previous = ancestor.generation();
    }
    Ok(())
}

/// The history of a rev written over `parent`: the parent, then its own history, bounded.
pub(crate) fn ancestry(parent: Option<&Record>) -> Vec<Rev> {
    let Some(parent) = parent else {
        return Vec::new();
    };
    let mut history = Vec::with_capacity((parent.history.len() + 1).min(REVS_LIMIT));
    history.push(parent.rev.clone());
    history.extend(parent.history.iter().take(REVS_LIMIT - 1).cloned());
    history
}

/// Drop the oldest ancestors beyond [`REVS_LIMIT`].
pub(crate) fn bound(mut history: Vec<Rev>) -> Vec<Rev> {
    history.truncate(REVS_LIMIT);
    history
}

/// `a` against `b`: live before deleted, then the higher generation, then the higher hash.
fn rank(a: &ConflictLeaf, b: &ConflictLeaf) -> Ordering {
    (!a.deleted)
        .cmp(&!b.deleted)
        .then(a.rev.generation().cmp(&b.rev.generation()))
        .then_with(|| a.rev.hash().cmp(b.rev.hash()))
}

impl Record {
    /// The winner as a leaf.
    fn winning_leaf(&self) -> ConflictLeaf {
        ConflictLeaf {
            rev: self.rev.clone(),
            version: self.version,
            deleted: self.deleted,
            access: self.access.clone(),
            body: self.body.clone(),
            history: self.history.clone(),
            carry: self.carry.clone(),
        }
    }

    /// Whether `rev` is already part of this document: a leaf, or an ancestor of one.
    pub fn knows(&self, rev: &Rev) -> bool {
        self.rev == *rev
            || self.history.contains(rev)
            || self
                .conflicts
                .iter()
                .any(|leaf| leaf.rev == *rev || leaf.history.contains(rev))
    }

    /// The record holding `leaves`: the best one wins, the others are its conflicts, best
    /// first. `None` when there are no leaves.
    fn from_leaves(mut leaves: Vec<ConflictLeaf>) -> Option<Record> {
        leaves.sort_by(|a, b| rank(b, a));
        leaves.dedup_by(|a, b| a.rev == b.rev);
        let mut leaves = leaves.into_iter();
        let winner = leaves.next()?;
        Some(Record {
            rev: winner.rev,
            version: winner.version,
            deleted: winner.deleted,
            access: winner.access,
            body: winner.body,
            history: winner.history,
            carry: winner.carry,
            conflicts: leaves.collect(),
            // Set when the record is stored.
            seq: 0,
        })
    }
}

/// A leaf as the only leaf of a record.
fn single(leaf: ConflictLeaf) -> Record {
    Record {
        rev: leaf.rev,
        version: leaf.version,
        deleted: leaf.deleted,
        access: leaf.access,
        body: leaf.body,
        history: leaf.history,
        carry: leaf.carry,
        conflicts: Vec::new(),
        // Set when the record is stored.
        seq: 0,
    }
}

/// A local write: `leaf` (whose history is [`ancestry`] of `current`, or whatever the caller
/// decided for an import with a rev) replaces the winner; the conflict leaves stay. The winner
/// is chosen again, since a local delete loses to a live conflict leaf.
pub(crate) fn write_local(current: Option<&Record>, leaf: ConflictLeaf) -> Record {
    let Some(current) = current else {
        return single(leaf);
    };
    let mut leaves = Vec::with_capacity(1 + current.conflicts.len());
    leaves.push(leaf);
    leaves.extend(current.conflicts.iter().cloned());
    // There is always at least the new leaf.
    Record::from_leaves(leaves).unwrap_or_else(|| current.clone())
}

/// Apply a replicated leaf to the local record. `None`: the rev is known, nothing to write.
pub(crate) fn merge_replicated(
    local: Option<&Record>,
    incoming: ConflictLeaf,
) -> Option<(Record, Applied)> {
    let Some(local) = local else {
        return Some((single(incoming), Applied::Stored));
    };
    if local.knows(&incoming.rev) {
        return None;
    }
    let mut incoming = incoming;
    let fast_forward = incoming.history.contains(&local.rev);
    let incoming_rev = incoming.rev.clone();
    let (replaced, mut leaves): (Vec<ConflictLeaf>, Vec<ConflictLeaf>) =
        std::iter::once(local.winning_leaf())
            .chain(local.conflicts.iter().cloned())
            .partition(|leaf| incoming.history.contains(&leaf.rev));
    // The ancestors of a replaced leaf are the new leaf's too. A source may send a shorter
    // history than this node holds (it was bounded, or the source learnt the rev through
    // another path); without them this node would forget revs it knew, and the same rev
    // sent again would come back as a conflict instead of being already known.
    if replaced.iter().any(|leaf| !leaf.history.is_empty()) {
        let mut seen: HashSet<Rev> = incoming.history.iter().cloned().collect();
        for leaf in &replaced {
            for rev in &leaf.history {
                if seen.insert(rev.clone()) {
                    incoming.history.push(rev.clone());
                }
            }
        }
        incoming
            .history
            .sort_by_key(|r| std::cmp::Reverse(r.generation()));
        incoming.history = bound(std::mem::take(&mut incoming.history));
    }
    leaves.push(incoming);
    let record = Record::from_leaves(leaves)?;
    let applied = if fast_forward {
        Applied::FastForward
    } else if record.rev == incoming_rev {
        Applied::Conflict {
            winner: incoming_rev,
            loser: local.rev.clone(),
        }
    } else {
        Applied::Conflict {
            winner: record.rev.clone(),
            loser: incoming_rev,
        }
    };
    Some((record, applied))
}

/// The leaf of `record` named `rev` (the winner or a loser).
pub(crate) fn find_leaf(record: &Record, rev: &Rev) -> Option<ConflictLeaf> {
    if record.rev == *rev {
        return Some(record.winning_leaf());
    }
    record
        .conflicts
        .iter()
        .find(|leaf| leaf.rev == *rev)
        .cloned()
}

/// The rev a resolution's generation continues from: the newest leaf, so the resolution
/// outranks every leaf it replaces (a deleted loser may be newer than a live winner).
pub(crate) fn resolution_parent(record: &Record) -> &Rev {
    record
        .conflicts
        .iter()
        .map(|leaf| &leaf.rev)
        .fold(&record.rev, |best, rev| {
            if rev.generation() > best.generation() {
                rev
            } else {
                best
            }
        })
}

/// The history of a resolution: every leaf and its ancestors, most recent first (the winner
/// first among equal generations), without repeats, bounded. Naming the losers is what
/// resolves them on every node the resolution reaches.
pub(crate) fn resolution_history(record: &Record) -> Vec<Rev> {
    let mut seen = HashSet::new();
    let mut all: Vec<Rev> = Vec::new();
    let branches = std::iter::once((&record.rev, &record.history)).chain(
        record
            .conflicts
            .iter()
            .map(|leaf| (&leaf.rev, &leaf.history)),
    );
    for (rev, history) in branches {
        for r in std::iter::once(rev).chain(history) {
            if seen.insert(r.clone()) {
                all.push(r.clone());
            }
        }
    }
    // Stable: among equal generations the winner's branch stays first.
    all.sort_by_key(|r| std::cmp::Reverse(r.generation()));
    bound(all)
}

/// The record a resolution writes: its leaf, and the leaves it did not end (those hidden from
/// whoever resolved), which stay conflicts — or win, should they outrank it.
pub(crate) fn resolved(leaf: ConflictLeaf, untouched: Vec<ConflictLeaf>) -> Record {
    if untouched.is_empty() {
        return single(leaf);
    }
    let mut leaves = Vec::with_capacity(1 + untouched.len());
    leaves.push(leaf.clone());
    leaves.extend(untouched);
    // There is always at least the resolution's own leaf.
    Record::from_leaves(leaves).unwrap_or_else(|| single(leaf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn leaf(rev: &Rev, history: Vec<Rev>, body: Value, deleted: bool) -> ConflictLeaf {
        ConflictLeaf {
            rev: rev.clone(),
            version: 1,
            deleted,
            access: Value::Null,
            body,
            history,
            carry: Vec::new(),
        }
    }

    /// The winner CouchDB and PouchDB pick (`winningRev`: live first, then the higher
    /// generation, then the greater rev id as text), written out independently of `rank`.
    fn couchdb_winner(leaves: &[ConflictLeaf]) -> Rev {
        let key = |l: &ConflictLeaf| (!l.deleted, l.rev.generation(), l.rev.hash().to_owned());
        leaves
            .iter()
            .max_by_key(|l| key(l))
            .map(|l| l.rev.clone())
            .unwrap()
    }

    #[test]
    fn the_winner_is_the_one_couchdb_and_pouchdb_pick() {
        let r = |s: &str| s.parse::<Rev>().unwrap();
        let root = r("1-00aa");
        // Same generation, a 16-hex mutatis rev against 32-hex PouchDB revs: compared as
        // text, as PouchDB compares rev ids (so "f…" of 16 digits beats "0…" of 32).
        let cases = [
            vec![
                ("2-ffffffffffffffff", false),
                ("2-0000000000000000ffffffffffffffff", false),
            ],
            vec![
                ("2-0123456789abcdef", false),
                ("2-0123456789abcdef0", false),
            ],
            vec![("2-aa", false), ("3-00", true)],
            vec![("3-00", true), ("2-00", true)],
            vec![("2-9", false), ("2-10", false), ("4-1", true)],
        ];
        for case in cases {
            let leaves: Vec<ConflictLeaf> = case
                .iter()
                .map(|(rev, deleted)| leaf(&r(rev), vec![root.clone()], json!({}), *deleted))
                .collect();
            let want = couchdb_winner(&leaves);
            // Whatever order the leaves arrive in.
            for rotate in 0..leaves.len() {
                let mut order = leaves.clone();
                order.rotate_left(rotate);
                let record = Record::from_leaves(order).unwrap();
                assert_eq!(record.rev, want, "{case:?}");
            }
        }
    }

    #[test]
    fn a_short_history_does_not_make_a_node_forget_what_it_knew() {
        // 1 ← 2 ← 3, but 3 arrives naming only 2 (a source whose history was cut short).
        let revs = chain(&[json!(1), json!(2), json!(3)]);
        let two = leaf(&revs[1], vec![revs[0].clone()], json!(2), false);
        let (record, _) = merge_replicated(None, two).unwrap();
        let three = leaf(&revs[2], vec![revs[1].clone()], json!(3), false);
        let (record, applied) = merge_replicated(Some(&record), three).unwrap();
        assert_eq!(applied, Applied::FastForward);
        assert_eq!(record.history, vec![revs[1].clone(), revs[0].clone()]);
        // Rev 1 is still known: sending it again changes nothing.
        let one = leaf(&revs[0], vec![], json!(1), false);
        assert!(merge_replicated(Some(&record), one).is_none());
    }

    fn chain(bodies: &[Value]) -> Vec<Rev> {
        let mut out: Vec<Rev> = Vec::new();
        for b in bodies {
            out.push(Rev::next(out.last(), b, false));
        }
        out
    }

    #[test]
    fn histories_must_be_older_most_recent_first_and_without_repeats() {
        let revs = chain(&[json!(1), json!(2), json!(3)]);
        let (r1, r2, r3) = (&revs[0], &revs[1], &revs[2]);
        assert!(check_history(r3, &[r2.clone(), r1.clone()]).is_ok());
        // Truncated histories are fine: only the shape is checked.
        assert!(check_history(r3, std::slice::from_ref(r1)).is_ok());
        assert!(check_history(r2, std::slice::from_ref(r3)).is_err());
        assert!(check_history(r3, std::slice::from_ref(r3)).is_err());
        assert!(check_history(r3, &[r1.clone(), r2.clone()]).is_err());
        assert!(check_history(r3, &[r2.clone(), r2.clone()]).is_err());
    }

    #[test]
    fn the_winner_does_not_depend_on_arrival_order() {
        let base = chain(&[json!("a")]);
        let a2 = Rev::next(Some(&base[0]), &json!("left"), false);
        let b2 = Rev::next(Some(&base[0]), &json!("right"), false);
        let b3 = Rev::next(Some(&b2), &json!("right again"), false);
        let root = single(leaf(&base[0], vec![], json!("a"), false));
        let la2 = leaf(&a2, vec![base[0].clone()], json!("left"), false);
        let lb2 = leaf(&b2, vec![base[0].clone()], json!("right"), false);
        let lb3 = leaf(&b3, vec![b2.clone(), base[0].clone()], json!("r"), false);
        let orders = [
            vec![la2.clone(), lb2.clone(), lb3.clone()],
            vec![lb3.clone(), la2.clone(), lb2.clone()],
            vec![lb2.clone(), lb3.clone(), la2.clone()],
        ];
        let results: Vec<Record> = orders
            .into_iter()
            .map(|order| {
                let mut rec = root.clone();
                for l in order {
                    if let Some((r, _)) = merge_replicated(Some(&rec), l) {
                        rec = r;
                    }
                }
                rec
            })
            .collect();
        assert_eq!(results[0].rev, b3, "the higher generation wins");
        assert_eq!(results[0].conflicts.len(), 1);
        assert_eq!(results[0].conflicts[0].rev, a2);
        assert!(results.iter().all(|r| *r == results[0]));
    }

    #[test]
    fn a_delete_loses_to_an_edit_and_a_resolution_names_every_leaf() {
        let base = chain(&[json!("a")]);
        let edit = Rev::next(Some(&base[0]), &json!("b"), false);
        let mut del = Rev::next(Some(&base[0]), &Value::Null, true);
        // A deleted leaf even one generation newer loses to a live one.
        del = Rev::next(Some(&del), &Value::Null, true);
        let root = single(leaf(&base[0], vec![], json!("a"), false));
        let (rec, _) = merge_replicated(
            Some(&root),
            leaf(&edit, vec![base[0].clone()], json!("b"), false),
        )
        .unwrap();
        let (rec, applied) = merge_replicated(
            Some(&rec),
            leaf(&del, vec![base[0].clone()], Value::Null, true),
        )
        .unwrap();
        assert_eq!(rec.rev, edit);
        assert_eq!(
            applied,
            Applied::Conflict {
                winner: edit.clone(),
                loser: del.clone()
            }
        );
        assert_eq!(resolution_parent(&rec), &del);
        let history = resolution_history(&rec);
        assert_eq!(history[0], del);
        assert!(history.contains(&edit) && history.contains(&base[0]));
        assert!(check_history(&Rev::next(Some(&del), &json!("m"), false), &history).is_ok());
    }
}
