//! Document revisions: `N-hash`, a generation and a content hash.
//!
//! The generation counts the writes of one document (a delete is a write, so a re-created
//! document continues the count). The hash is the first 16 hex digits of the SHA-256 of the
//! parent rev (for any write but the first), the deleted flag and the document's canonical
//! form (keys sorted, no whitespace), so that two machines that store the same write compute
//! the same rev, and two writes on different branches never share one: replication compares revs across
//! nodes, and a `preserve_order` map would otherwise make the hash depend on key order.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// Hex digits of the content hash kept in a rev: 64 bits, plenty to tell two versions of one
/// document apart (it is not a security boundary).
pub const HASH_DIGITS: usize = 16;

/// The highest generation a rev may have: 2^53 − 1, the largest integer every JSON client
/// (JavaScript included: PouchDB compares generations as numbers) counts exactly. A rev that
/// arrives at or above it is refused: its document could not be written again with a
/// generation that grows, so edits would repeat revs and replication would see its history
/// running backwards.
pub const MAX_GENERATION: u64 = (1 << 53) - 1;

/// The longest hash a rev may carry, in hex digits (this store writes [`HASH_DIGITS`]; other
/// systems' revs, such as CouchDB's 32, fit).
pub const MAX_HASH_DIGITS: usize = 64;

/// A document revision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rev {
    generation: u64,
    hash: String,
}

impl Rev {
    /// The rev of the write that follows `previous` (`None`: the first write) and stores `body`
    /// (`deleted`: a tombstone).
    pub fn next(previous: Option<&Rev>, body: &Value, deleted: bool) -> Rev {
        // Revs past the limit are refused on the way in, so this only saturates for a record
        // stored before the limit existed.
        let generation = previous.map_or(1, |r| r.generation.saturating_add(1));
        let mut hasher = Sha256::new();
        // The parent is part of the write: two writes of the same content at the same
        // generation on different branches (a delete on each side of a conflict) are two
        // revs, never one that replication would take for both.
        if let Some(parent) = previous {
            hasher.update(parent.to_string().as_bytes());
            hasher.update(b"\n");
        }
        hasher.update(if deleted { b"D" } else { b"L" });
        let mut canonical = Vec::new();
        write_canonical(body, &mut canonical);
        hasher.update(&canonical);
        let digest = hasher.finalize();
        let mut hash = String::with_capacity(HASH_DIGITS);
        for byte in digest.iter().take(HASH_DIGITS / 2) {
            hash.push_str(&format!("{byte:02x}"));
        }
        Rev { generation, hash }
    }

    /// How many writes the document has seen.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The content hash, in hex.
    pub fn hash(&self) -> &str {
        &self.hash
    }
}

impl fmt::Display for Rev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.generation, self.hash)
    }
}

impl FromStr for Rev {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Rev, StoreError> {
        let bad = |reason| StoreError::InvalidRev {
            rev: s.to_owned(),
            reason,
        };
        let (generation, hash) = s
            .split_once('-')
            .ok_or_else(|| bad("expected GENERATION-HASH"))?;
        let generation: u64 = generation
            .parse()
            .map_err(|_| bad("the generation is not a number"))?;
        if hash.is_empty() || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the hash is not hexadecimal"));
        }
        let rev = Rev {
            generation,
            hash: hash.to_ascii_lowercase(),
        };
        rev.check().map_err(bad)?;
        Ok(rev)
    }
}

impl Rev {
    /// The one rule every rev entering this node passes, however it comes (a header, an
    /// import, a replicated revision and its history): a generation from 1 to
    /// [`MAX_GENERATION`] − 1, so the document can still be written, and a hash of at most
    /// [`MAX_HASH_DIGITS`] hex digits. Stored records are read without it, so a node holding a
    /// rev from before the rule still serves (and replicates) its documents.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.generation == 0 {
            return Err("generations start at 1");
        }
        if self.generation >= MAX_GENERATION {
            return Err("the generation is too high to grow (at most 2^53 - 2 is accepted)");
        }
        if self.hash.len() > MAX_HASH_DIGITS {
            return Err("the hash is longer than 64 hex digits");
        }
        Ok(())
    }

    /// Parse a rev as stored, without [`Rev::check`]'s limits (only the shape is checked).
    pub(crate) fn parse_stored(s: &str) -> Option<Rev> {
        let (generation, hash) = s.split_once('-')?;
        let generation = generation.parse().ok()?;
        (!hash.is_empty() && hash.bytes().all(|b| b.is_ascii_hexdigit())).then(|| Rev {
            generation,
            hash: hash.to_ascii_lowercase(),
        })
    }
}

/// Serialise `v` with object keys sorted at every level and no whitespace.
fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(k.clone()), out);
                out.push(b':');
                if let Some(child) = map.get(k) {
                    write_canonical(child, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(v: &Value, out: &mut Vec<u8>) {
    // Serialising a scalar into a Vec cannot fail (no I/O, no non-string map keys); should
    // serde_json ever disagree, hashing its Display form still gives a stable rev.
    if serde_json::to_writer(&mut *out, v).is_err() {
        out.extend_from_slice(v.to_string().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a = Rev::next(None, &json!({"a": 1, "b": {"x": [1, 2], "y": null}}), false);
        let b = Rev::next(None, &json!({"b": {"y": null, "x": [1, 2]}, "a": 1}), false);
        assert_eq!(a, b);
        assert_eq!(a.generation(), 1);
        assert_eq!(a.hash().len(), HASH_DIGITS);
    }

    #[test]
    fn content_generation_and_deletion_change_the_rev() {
        let one = Rev::next(None, &json!({"a": 1}), false);
        let two = Rev::next(Some(&one), &json!({"a": 1}), false);
        assert_eq!(two.generation(), 2);
        // The parent is part of the write.
        assert_ne!(one.hash(), two.hash());
        let other = Rev::next(None, &json!({"a": 9}), false);
        let (del_one, del_other) = (
            Rev::next(Some(&one), &Value::Null, true),
            Rev::next(Some(&other), &Value::Null, true),
        );
        assert_eq!(del_one.generation(), del_other.generation());
        assert_ne!(del_one, del_other, "deletes on two branches are two revs");
        assert_ne!(one.hash(), Rev::next(None, &json!({"a": 2}), false).hash());
        assert_ne!(one.hash(), Rev::next(None, &json!({"a": 1}), true).hash());
    }

    #[test]
    fn parses_its_own_display_and_refuses_garbage() {
        let rev = Rev::next(None, &json!("x"), false);
        assert_eq!(rev.to_string().parse::<Rev>().unwrap(), rev);
        for bad in ["", "1", "0-ab", "x-ab", "1-", "1-zz"] {
            assert!(matches!(
                bad.parse::<Rev>(),
                Err(StoreError::InvalidRev { .. })
            ));
        }
    }

    #[test]
    fn a_rev_whose_generation_cannot_grow_is_refused() {
        for bad in [
            "18446744073709551615-abcdef0123456789",
            "9007199254740991-ab",
            "0-ab",
            &format!("3-{}", "a".repeat(65)),
        ] {
            assert!(bad.parse::<Rev>().is_err(), "{bad}");
        }
        let top: Rev = "9007199254740990-ab".parse().unwrap();
        assert_eq!(
            Rev::next(Some(&top), &Value::Null, false).generation(),
            MAX_GENERATION
        );
        // Stored data is read as it is: a node holding such a rev still serves it.
        let stored: Rev = serde_json::from_str("\"18446744073709551615-ab\"").unwrap();
        assert!(stored.check().is_err());
    }

    #[test]
    fn hash_is_stable_across_machines() {
        // SHA-256 of "L" + `{"a":1}`; a change of hashing would break replication between
        // nodes running different builds.
        let rev = Rev::next(None, &json!({"a": 1}), false);
        let mut h = Sha256::new();
        h.update(b"L{\"a\":1}");
        let expect: String = h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(rev.hash(), expect);
    }
}
