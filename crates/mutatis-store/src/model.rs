//! What the store keeps: document records, changes, per-type state, quarantined documents.
//!
//! These are plain values with a stable JSON encoding, so that every backend stores the same
//! bytes (a redb file and a PostgreSQL table can be compared, and a dump of one loads into the
//! other).

use std::collections::BTreeMap;
use std::fmt;

use mutatis_schema::Strategy;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::StoreError;
use crate::migrate::Migration;
use crate::replica::ConflictLeaf;
use crate::rev::Rev;

/// A storage space of a type: a set of `(id → record)`. A type's documents live in its primary
/// space; a migration fills a new space and switches to it; the old one is kept as the backup;
/// the `multi` strategy keeps a space per materialised version. Spaces are numbered per type and
/// never reused, so a backup can never be mistaken for the target of a later migration.
pub type SpaceId = u32;

/// One stored document (or tombstone) in one space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Its revision. Migration keeps it: a rev names a write, not the shape it is stored in,
    /// so a client's expected rev stays valid across a storage switch.
    pub rev: Rev,
    /// The version `body` is in.
    pub version: u32,
    /// A tombstone: the document was deleted (kept so the feed and replication see it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Access-control data, opaque to the store (the server decides its shape).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub access: Value,
    /// The document (`null` for a tombstone).
    pub body: Value,
    /// The revs this one descends from, most recent first, at most
    /// [`crate::REVS_LIMIT`]: how replication tells an update from a concurrent edit.
    /// Records written before histories existed decode with none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Rev>,
    /// Bodies of newer versions kept beside this one (the `carry` replication policy):
    /// see [`crate::Carried`]. Part of the winning leaf.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carry: Vec<crate::replica::Carried>,
    /// The losing leaves of concurrent edits, best first, kept until resolved. `rev` …
    /// `carry` above are the winning leaf.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<ConflictLeaf>,
    /// The feed sequence of the document's latest change (0: written before the record
    /// kept it). The feed lists a document once, at its latest change: a write removes the
    /// entry this names.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seq: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The space of a type that keeps the bodies of earlier revisions (`history` in the schema
/// set's storage entry), keyed by [`revision_key`]. Spaces a type allocates count up from 0
/// and never reach it.
pub const REVISIONS_SPACE: SpaceId = SpaceId::MAX;

/// The key of revision `rev` of document `id` in [`REVISIONS_SPACE`]: ids never hold control
/// characters, so the separator cannot occur in one.
pub fn revision_key(id: &str, rev: &Rev) -> String {
    format!("{id}\u{1}{rev}")
}

impl Record {
    /// Encode for storage.
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        encode(self, "document")
    }

    /// Decode a stored record; `key` names it in the error.
    pub fn decode(bytes: &[u8], key: impl fmt::Display) -> Result<Record, StoreError> {
        decode(bytes, "document", key)
    }
}

/// A document as read or written through the API, in the version the caller speaks.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Its type.
    pub type_name: String,
    /// Its id.
    pub id: String,
    /// Its revision.
    pub rev: Rev,
    /// The version of `body` (the caller's).
    pub version: u32,
    /// The document.
    pub body: Value,
    /// Access-control data, opaque to the store.
    pub access: Value,
}

/// A live document read as JSON bytes in the version the caller speaks
/// ([`crate::Store::get_raw`]): what a server sends on as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDocument {
    /// Its revision.
    pub rev: Rev,
    /// The version of `body` (the caller's).
    pub version: u32,
    /// The document, compact JSON: the same bytes as `serde_json::to_vec` of
    /// [`Document::body`] read in the same version.
    pub body: Vec<u8>,
    /// Access-control data, opaque to the store.
    pub access: Value,
}

/// The parts of a stored [`Record`] a raw read needs, borrowed from its encoding: the body
/// stays bytes, and what a read does not look at (history, conflicts) is skipped unparsed.
#[derive(Deserialize)]
pub(crate) struct RecordView<'a> {
    pub rev: Rev,
    pub version: u32,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub access: Value,
    #[serde(borrow)]
    pub body: &'a serde_json::value::RawValue,
    /// Present only when the record carries bodies (it is left out when empty).
    #[serde(default, borrow)]
    pub carry: Option<&'a serde_json::value::RawValue>,
}

impl<'a> RecordView<'a> {
    /// The view of a stored record's bytes; `key` names it in the error.
    pub(crate) fn decode(bytes: &'a [u8], key: impl fmt::Display) -> Result<Self, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            what: "document",
            key: key.to_string(),
            reason: e.to_string(),
        })
    }

    /// Whether the record carries bodies of other versions (an empty list counts as none).
    pub(crate) fn carries(&self) -> bool {
        self.carry.is_some_and(|c| c.get().trim() != "[]")
    }
}

/// One entry of the changes feed: a write (or delete) committed on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Its sequence number: strictly increasing per node, never reused.
    #[serde(skip)]
    pub seq: u64,
    /// The document's type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The document's id.
    pub id: String,
    /// The rev written.
    pub rev: Rev,
    /// Whether the write was a delete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl Change {
    /// Encode for storage (the sequence is the key, not part of the value).
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        encode(self, "change")
    }

    /// Decode a stored change at `seq`.
    pub fn decode(bytes: &[u8], seq: u64) -> Result<Change, StoreError> {
        let mut change: Change = decode(bytes, "change", seq)?;
        change.seq = seq;
        Ok(change)
    }
}

/// The retained copy of a type's data from before its last switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// The space holding it.
    pub space: SpaceId,
    /// Its storage version.
    pub version: u32,
    /// The last feed sequence folded into it: changes after this one happened after the switch
    /// and are what a rollback replays.
    pub switched_at: u64,
}

/// How a type is kept at rest on this node, and what is happening to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeState {
    /// The version new writes are stored in.
    pub storage_version: u32,
    /// The strategy.
    #[serde(with = "strategy_serde")]
    pub strategy: Strategy,
    /// The space the live documents are in.
    pub primary: SpaceId,
    /// The next unused space number.
    pub next_space: SpaceId,
    /// The migration in flight, with its checkpoint.
    #[serde(default)]
    pub migration: Option<Migration>,
    /// The retained pre-switch copy.
    #[serde(default)]
    pub backup: Option<Backup>,
    /// `multi`: the space of each materialised version other than the storage version.
    #[serde(default)]
    pub copies: BTreeMap<u32, SpaceId>,
    /// Spaces left to empty (an aborted migration's target, a dropped backup). Emptying is done
    /// in batches so that writers never wait for more than one; this list makes it resumable.
    #[serde(default)]
    pub garbage: Vec<SpaceId>,
    /// `multi`: copies being filled after they were added, with the checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill: Option<crate::store::CopyFill>,
}

impl TypeState {
    /// The state of a type the store has never seen: everything in space 0, at `version`.
    pub fn new(version: u32, strategy: Strategy) -> TypeState {
        TypeState {
            storage_version: version,
            strategy,
            primary: 0,
            next_space: 1,
            migration: None,
            backup: None,
            copies: BTreeMap::new(),
            garbage: Vec::new(),
            fill: None,
        }
    }

    /// A fresh space number. (Space numbers stop short of [`REVISIONS_SPACE`]; a type would
    /// need four billion migrations to reach it.)
    pub fn allocate_space(&mut self) -> SpaceId {
        let space = self.next_space.min(REVISIONS_SPACE - 1);
        self.next_space = space.saturating_add(1).min(REVISIONS_SPACE - 1);
        space
    }

    /// Encode for storage.
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        encode(self, "type state")
    }

    /// Decode the stored state of `type_name`.
    pub fn decode(bytes: &[u8], type_name: &str) -> Result<TypeState, StoreError> {
        decode(bytes, "type state", type_name)
    }
}

/// A document a migration could not translate and set aside instead of stopping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quarantined {
    /// The document id.
    pub id: String,
    /// The version it could not be translated from.
    pub from: u32,
    /// The version it could not be translated to.
    pub to: u32,
    /// Why (a lens or schema error, with pointers).
    pub reason: String,
    /// The record as it was, so nothing is lost.
    pub record: Record,
}

impl Quarantined {
    /// Encode for storage.
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        encode(self, "quarantined document")
    }

    /// Decode a stored quarantine entry.
    pub fn decode(bytes: &[u8], key: impl fmt::Display) -> Result<Quarantined, StoreError> {
        decode(bytes, "quarantined document", key)
    }
}

/// Documents and bytes in one space: what the `multi` strategy costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpaceStats {
    /// Records (tombstones included).
    pub records: u64,
    /// Encoded bytes of keys and values.
    pub bytes: u64,
}

fn encode<T: Serialize>(value: &T, what: &'static str) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
        what,
        key: "(being written)".to_owned(),
        reason: e.to_string(),
    })
}

fn decode<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    what: &'static str,
    key: impl fmt::Display,
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what,
        key: key.to_string(),
        reason: e.to_string(),
    })
}

impl Serialize for Rev {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Revs are read leniently (only their shape): a stored record keeps whatever rev it has,
/// and a replicated one is held to [`Rev::check`] per document when it is applied, so one bad
/// rev refuses its own document, not the batch it came in.
impl<'de> Deserialize<'de> for Rev {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rev, D::Error> {
        let s = String::deserialize(d)?;
        Rev::parse_stored(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("invalid rev {s:?}: expected GENERATION-HASH"))
        })
    }
}

mod strategy_serde {
    use mutatis_schema::Strategy;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &Strategy, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Strategy, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|()| {
            serde::de::Error::custom(format!(
                "unknown strategy {s:?} (expected {})",
                Strategy::NAMES
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The stored encoding is a contract between backends and builds: a redb file written
    /// today must decode tomorrow, and PostgreSQL stores the same JSON.
    #[test]
    fn record_and_change_encodings_are_stable() {
        let rev: Rev = "3-00112233445566ff".parse().unwrap();
        let record = Record {
            rev: rev.clone(),
            version: 2,
            deleted: false,
            access: Value::Null,
            body: json!({"b": 1, "a": [true]}),
            history: Vec::new(),
            carry: Vec::new(),
            conflicts: Vec::new(),
            seq: 0,
        };
        let bytes = record.encode().unwrap();
        // A record without history or conflicts is encoded as before they existed, and such
        // old records decode with empty ones.
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"rev":"3-00112233445566ff","version":2,"body":{"b":1,"a":[true]}}"#
        );
        assert_eq!(Record::decode(&bytes, "k").unwrap(), record);
        let parent: Rev = "2-aa".parse().unwrap();
        let loser: Rev = "3-bb".parse().unwrap();
        let replicated = Record {
            history: vec![parent.clone()],
            conflicts: vec![ConflictLeaf {
                rev: loser,
                version: 1,
                deleted: true,
                access: Value::Null,
                body: Value::Null,
                history: vec![parent],
                carry: Vec::new(),
            }],
            ..record.clone()
        };
        let bytes = replicated.encode().unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"rev":"3-00112233445566ff","version":2,"body":{"b":1,"a":[true]},"history":["2-aa"],"conflicts":[{"rev":"3-bb","version":1,"deleted":true,"body":null,"history":["2-aa"]}]}"#
        );
        assert_eq!(Record::decode(&bytes, "k").unwrap(), replicated);
        let change = Change {
            seq: 9,
            type_name: "todo".into(),
            id: "x".into(),
            rev,
            deleted: true,
        };
        let bytes = change.encode().unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"type":"todo","id":"x","rev":"3-00112233445566ff","deleted":true}"#
        );
        assert_eq!(Change::decode(&bytes, 9).unwrap(), change);
    }

    #[test]
    fn garbage_is_a_typed_error_naming_the_key() {
        let err = Record::decode(b"\xff not json", "todo/0/a").unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { what: "document", key, .. } if key == "todo/0/a"),
            "{err}"
        );
        let err = TypeState::decode(
            br#"{"storage_version":1,"strategy":"sideways","primary":0,"next_space":1}"#,
            "todo",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown strategy"), "{err}");
    }

    #[test]
    fn type_state_round_trips_with_its_checkpoint() {
        let mut state = TypeState::new(1, Strategy::Multi);
        let space = state.allocate_space();
        assert_eq!((space, state.next_space), (1, 2));
        state.migration = Some(Migration::forward(
            1,
            2,
            0,
            space,
            5,
            10,
            crate::migrate::OnError::Quarantine,
            100,
        ));
        let back = TypeState::decode(&state.encode().unwrap(), "todo").unwrap();
        assert_eq!(back, state);
    }
}
