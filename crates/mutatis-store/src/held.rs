//! A document's held bodies: how a record keeps, in every version it was written in, exactly
//! what was written, whatever the storage version.
//!
//! A record stores its body in one version (the storage version, or for `lazy` the version it
//! was last stored in). Translating a write down to that version can lose what the version
//! cannot represent: a field a newer version added, the exact spelling of a value a `convert`
//! maps many-to-one, a value an expression derives from the date. So beside the body a record
//! may *carry* bodies of other versions ([`Carried`]): together they are the document's **held
//! bodies**, each the exact document as a reader of its version must see it.
//!
//! Three rules keep them right, all pure functions of the schema set:
//!
//! - **Reading** a version that is held returns that body. Any other version is derived from
//!   its nearest held neighbours: translated down from the nearest held version above it, with
//!   what that one cannot express filled in from the nearest held version below it
//!   ([`mutatis_lens::Plan::translate_onto`]); with only one neighbour, translated from it.
//!   With no carried bodies this is the plain translation from the stored version, so a
//!   document that never needed carrying costs nothing extra.
//! - **Writing** in version `w` makes the written body the held body of `w`, and every other
//!   held version (and the storage version) is brought up to date from it *onto* its old
//!   view, so a writer never erases what its version cannot see (conservation, extended from
//!   the storage version to every held version).
//! - **Pruning**: a carried body that the others already derive exactly is dropped, so only
//!   documents that would lose something carry anything.
//!
//! Bodies carried in versions this node's schema set does not know (they come from a newer
//! node through replication) are not interpreted here: they travel on unchanged.

use std::collections::BTreeMap;

use mutatis_lens::Params;
use mutatis_schema::SchemaSet;
use serde_json::Value;

use crate::error::StoreError;
use crate::replica::Carried;

/// Held bodies by version, borrowed from a record or leaf.
pub(crate) type Held<'a> = BTreeMap<u32, &'a Value>;

/// The views of one document through the schema set: translation between held bodies.
pub(crate) struct Views<'a> {
    pub set: &'a SchemaSet,
    pub params: &'a Params,
    pub type_name: &'a str,
    pub id: &'a str,
}

impl Views<'_> {
    fn lens_error(&self, from: u32, to: u32, source: mutatis_lens::LensError) -> StoreError {
        StoreError::Translate {
            type_name: self.type_name.to_owned(),
            id: self.id.to_owned(),
            from,
            to,
            source: Box::new(source),
        }
    }

    /// `body`, in `from`, translated to `to`.
    pub fn translate(&self, from: u32, to: u32, body: &Value) -> Result<Value, StoreError> {
        if from == to {
            return Ok(body.clone());
        }
        self.set
            .plan(self.type_name, from, to)?
            .translate(body, self.params)
            .map_err(|e| self.lens_error(from, to, e))
    }

    /// `body`, in `from`, translated to `to` onto `onto` (already in `to`): what `from`
    /// cannot express is taken from `onto`.
    pub fn translate_onto(
        &self,
        from: u32,
        to: u32,
        body: &Value,
        onto: &Value,
    ) -> Result<Value, StoreError> {
        if from == to {
            return Ok(body.clone());
        }
        self.set
            .plan(self.type_name, from, to)?
            .translate_onto(body, onto, self.params)
            .map_err(|e| self.lens_error(from, to, e))
    }

    /// Whether this node's schema set knows `version` of the type.
    pub fn knows(&self, version: u32) -> bool {
        self.set
            .type_def(self.type_name)
            .is_ok_and(|t| t.version(version).is_some())
    }

    /// The held bodies of a leaf stored in `version` with `carry`: the body, and the carried
    /// bodies of versions this node knows. Carried bodies of unknown versions are not held
    /// here; they travel on as they are.
    pub fn held<'r>(&self, version: u32, body: &'r Value, carry: &'r [Carried]) -> Held<'r> {
        let mut held = Held::new();
        for c in carry {
            if c.version != version && self.knows(c.version) {
                held.insert(c.version, &c.body);
            }
        }
        held.insert(version, body);
        held
    }

    /// The document in version `at`, from its held bodies (see the module docs).
    pub fn view(&self, held: &Held<'_>, at: u32) -> Result<Value, StoreError> {
        if let Some(body) = held.get(&at) {
            return Ok((*body).clone());
        }
        let above = held.range(at.saturating_add(1)..).next();
        let below = held.range(..at).next_back();
        match (above, below) {
            (Some((&up, up_body)), Some((&down, down_body))) => {
                // The version above knows the newer shape; what it cannot express (fields
                // its lenses dropped on the way down) comes from the version below.
                match self.translate(down, at, down_body) {
                    Ok(base) => self.translate_onto(up, at, up_body, &base),
                    // The lower body cannot reach `at` (a value its lens cannot map): the
                    // version above alone still gives the document.
                    Err(_) => self.translate(up, at, up_body),
                }
            }
            (Some((&from, body)), None) | (None, Some((&from, body))) => {
                self.translate(from, at, body)
            }
            // A leaf always holds its own body; an empty map is a caller's mistake, reported
            // as a translation that has nothing to start from.
            (None, None) => Err(StoreError::Corrupt {
                what: "document",
                key: format!("{}/{}", self.type_name, self.id),
                reason: "a live document without a body".to_owned(),
            }),
        }
    }

    /// The held bodies after a write. `written` are the bodies written, by version, each
    /// exact (a local write writes one; a replicated revision may bring several). `old` is
    /// what the document held before (`None`: it is new, or was deleted). Every other version
    /// `old` held, and `target` (the storage version), is brought up to date from the nearest
    /// written version onto its old view, so nothing a writer's version cannot see is
    /// erased. Then carried bodies that the rest derive exactly are dropped.
    ///
    /// Returns the body in `target` and the carried bodies (every other held version).
    pub fn settle(
        &self,
        written: BTreeMap<u32, Value>,
        old: Option<&Held<'_>>,
        target: u32,
    ) -> Result<(Value, Vec<Carried>), StoreError> {
        let mut all = written;
        let mut others: std::collections::BTreeSet<u32> =
            old.map(|o| o.keys().copied().collect()).unwrap_or_default();
        others.insert(target);
        others.retain(|v| !all.contains_key(v));
        let mut refreshed = BTreeMap::new();
        for v in others {
            let value = match old {
                Some(old) => {
                    let before = self.view(old, v)?;
                    let (from, body) = nearest(&all, v);
                    self.translate_onto(from, v, body, &before)?
                }
                None => {
                    let held: Held<'_> = all.iter().map(|(v, b)| (*v, b)).collect();
                    self.view(&held, v)?
                }
            };
            refreshed.insert(v, value);
        }
        // Which written versions were written (rather than refreshed) decides pruning order:
        // refreshed ones go first, as they are the likeliest to be derivable.
        let written_versions: Vec<u32> = all.keys().copied().collect();
        all.extend(refreshed);
        let mut candidates: Vec<u32> = all.keys().copied().filter(|v| *v != target).collect();
        candidates.sort_by_key(|v| (written_versions.contains(v), v.abs_diff(target)));
        for c in candidates {
            let Some(kept) = all.remove(&c) else { continue };
            let rest: Held<'_> = all.iter().map(|(v, b)| (*v, b)).collect();
            // A derivation that fails means the body cannot be derived: keep it.
            let derivable = self.view(&rest, c).is_ok_and(|d| d == kept);
            if !derivable {
                all.insert(c, kept);
            }
        }
        let body = all.remove(&target).unwrap_or(Value::Null);
        let carry = all
            .into_iter()
            .map(|(version, body)| Carried { version, body })
            .collect();
        Ok((body, carry))
    }
}

/// The written body nearest to `v` (the higher of two at the same distance): the best source
/// for refreshing `v`. `written` is never empty.
fn nearest(written: &BTreeMap<u32, Value>, v: u32) -> (u32, &Value) {
    let mut best: Option<(u32, &Value)> = None;
    for (&w, body) in written {
        let better = match best {
            None => true,
            Some((b, _)) => w.abs_diff(v) <= b.abs_diff(v),
        };
        if better {
            best = Some((w, body));
        }
    }
    // `written` always has an entry; fall back to `v` itself for the type checker's sake.
    best.unwrap_or((v, &Value::Null))
}

/// Carried bodies of versions this node does not know: they travel with the document as
/// they are.
pub(crate) fn foreign(views: &Views<'_>, carry: &[Carried]) -> Vec<Carried> {
    carry
        .iter()
        .filter(|c| !views.knows(c.version))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn set() -> SchemaSet {
        SchemaSet::from_sources(vec![
            (
                PathBuf::from("mutatis.yaml"),
                "name: t\nreleases: [{name: '1', types: {p: 3}, status: current}]\nstorage: {p: {version: 1, strategy: eager}}\n".to_owned(),
            ),
            (
                PathBuf::from("types/p.yaml"),
                "type: p
versions:
  1:
    schema: {type: object, properties: {name: {type: string}}, required: [name]}
  2:
    lens: [{add: {name: email, type: string, default: ''}}]
  3:
    lens: [{remove: {name: email, type: string, default: ''}}, {add: {name: phone, type: string, default: ''}}]
"
                .to_owned(),
            ),
        ])
        .unwrap()
    }

    fn views(set: &SchemaSet) -> Views<'_> {
        static PARAMS: std::sync::OnceLock<Params> = std::sync::OnceLock::new();
        Views {
            set,
            params: PARAMS.get_or_init(Params::new),
            type_name: "p",
            id: "x",
        }
    }

    fn held_of<'a>(body: &'a Value, version: u32, carry: &'a [Carried]) -> Held<'a> {
        let mut h: Held<'a> = carry.iter().map(|c| (c.version, &c.body)).collect();
        h.insert(version, body);
        h
    }

    #[test]
    fn a_write_above_storage_carries_what_storage_cannot_hold() {
        let set = set();
        let v = views(&set);
        let written = BTreeMap::from([(2, serde_json::json!({"name": "a", "email": "a@b"}))]);
        let (body, carry) = v.settle(written, None, 1).unwrap();
        assert_eq!(body, serde_json::json!({"name": "a"}));
        assert_eq!(carry.len(), 1);
        let held = held_of(&body, 1, &carry);
        assert_eq!(
            v.view(&held, 2).unwrap(),
            serde_json::json!({"name": "a", "email": "a@b"})
        );
        // A write that storage holds whole carries nothing.
        let written = BTreeMap::from([(2, serde_json::json!({"name": "a", "email": ""}))]);
        let (_, carry) = v.settle(written, None, 1).unwrap();
        assert!(carry.is_empty(), "{carry:?}");
    }

    #[test]
    fn an_older_writer_keeps_the_carried_fields_and_a_newer_one_keeps_the_older_ones() {
        let set = set();
        let v = views(&set);
        let (body, carry) = v
            .settle(
                BTreeMap::from([(2, serde_json::json!({"name": "a", "email": "e"}))]),
                None,
                1,
            )
            .unwrap();
        let old = held_of(&body, 1, &carry);
        // A version-1 writer cannot see email: it survives in version 2's view.
        let (body, carry) = v
            .settle(
                BTreeMap::from([(1, serde_json::json!({"name": "b"}))]),
                Some(&old),
                1,
            )
            .unwrap();
        let held = held_of(&body, 1, &carry);
        assert_eq!(
            v.view(&held, 2).unwrap(),
            serde_json::json!({"name": "b", "email": "e"})
        );
        // Version 3 cannot see email; writing it keeps email for version 2.
        let (body, carry) = v
            .settle(
                BTreeMap::from([(3, serde_json::json!({"name": "c", "phone": "p"}))]),
                Some(&held),
                1,
            )
            .unwrap();
        let held = held_of(&body, 1, &carry);
        assert_eq!(
            v.view(&held, 3).unwrap(),
            serde_json::json!({"name": "c", "phone": "p"})
        );
        assert_eq!(
            v.view(&held, 2).unwrap(),
            serde_json::json!({"name": "c", "email": "e"})
        );
        assert_eq!(v.view(&held, 1).unwrap(), serde_json::json!({"name": "c"}));
    }
}
