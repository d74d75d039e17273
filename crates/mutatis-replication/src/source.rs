//! The source side: a batch of the changes feed, as documents to send.

use std::collections::HashMap;

use mutatis_store::{Backend, Store, StoreError};
use serde_json::Value;

use crate::wire::{ChangesBatch, ChangesRequest, Selector, WireDoc};

/// The most feed entries one batch reads, whatever the replicator asks for: a batch is one
/// request body and one target transaction.
pub const MAX_BATCH: usize = 5_000;

/// Read the batch of changes after `req.since`: each document changed in the range once (at
/// its last change), with every leaf of its rev tree in its storage version. Documents the
/// caller may not read (`can_read` on the document's access data, tombstones included),
/// of other types or not matching the selector are left out and counted; the checkpoint
/// still moves past them.
pub fn changes_batch<B: Backend>(
    store: &Store<B>,
    node_id: &str,
    manifest: &str,
    req: &ChangesRequest,
    can_read: &dyn Fn(&Value) -> bool,
) -> Result<ChangesBatch, StoreError> {
    let limit = req.limit.clamp(1, MAX_BATCH);
    let changes = store.changes(req.since, limit)?;
    let last_seq = changes.last().map_or(req.since, |c| c.seq);
    // Read after the changes (a write may land between the two reads): the head is never
    // behind what the batch holds.
    let head = store.last_seq()?.max(last_seq);
    // A document written several times in the range is sent once, at its last change.
    let mut last: HashMap<(&str, &str), u64> = HashMap::with_capacity(changes.len());
    for c in &changes {
        last.insert((c.type_name.as_str(), c.id.as_str()), c.seq);
    }
    let mut wanted: Vec<(&str, &str, u64)> = Vec::with_capacity(last.len());
    let mut filtered = 0u64;
    for c in &changes {
        if last.get(&(c.type_name.as_str(), c.id.as_str())) != Some(&c.seq) {
            continue;
        }
        if !req.types.is_empty() && !req.types.contains(&c.type_name) {
            filtered += 1;
            continue;
        }
        wanted.push((c.type_name.as_str(), c.id.as_str(), c.seq));
    }
    let keys: Vec<(&str, &str)> = wanted.iter().map(|(t, id, _)| (*t, *id)).collect();
    let found = store.replication_docs(&keys)?;
    let mut docs = Vec::with_capacity(wanted.len());
    for ((type_name, id, seq), doc) in wanted.into_iter().zip(found) {
        // A document gone from the type (a type the schema set no longer has) is not sent.
        let Some(doc) = doc else {
            filtered += 1;
            continue;
        };
        // A delete passes the selector: the target may hold the document it deletes.
        if !can_read(&doc.access) || (!doc.deleted && !matches(&req.selector, &doc.body)) {
            filtered += 1;
            continue;
        }
        // A conflict leaf has a policy of its own: one the caller may not read is not sent.
        let mut doc = doc;
        doc.conflicts.retain(|leaf| can_read(&leaf.access));
        docs.push(WireDoc::from_store(type_name, id, seq, &doc));
    }
    Ok(ChangesBatch {
        node_id: node_id.to_owned(),
        manifest: manifest.to_owned(),
        last_seq,
        head,
        docs,
        filtered,
    })
}

/// Whether `body` holds every value the selector names.
pub fn matches(selector: &Selector, body: &Value) -> bool {
    selector
        .iter()
        .all(|(pointer, value)| body.pointer(pointer) == Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_selector_matches_by_pointer() {
        let body = json!({"formatId": "eml", "size": 3, "checksum": {"algorithm": "MD5"}});
        let mut sel = Selector::new();
        assert!(matches(&sel, &body));
        sel.insert("/formatId".into(), json!("eml"));
        sel.insert("/checksum/algorithm".into(), json!("MD5"));
        assert!(matches(&sel, &body));
        sel.insert("/size".into(), json!(4));
        assert!(!matches(&sel, &body));
        let mut missing = Selector::new();
        missing.insert("/nope".into(), Value::Null);
        assert!(!matches(&missing, &body));
    }
}
