//! JSON Schema compatibility with instance-set semantics.
//!
//! [`check`] compares two JSON Schemas the way a schema registry does, but by what they accept
//! rather than how they are written:
//!
//! - **backward**: every instance valid under `old` is valid under `new` (a reader on the new
//!   schema accepts everything written under the old one);
//! - **forward**: every instance valid under `new` is valid under `old`;
//! - **full**: both.
//!
//! The verdict is *sound*: `backward: true` is only said when it holds. When the checker cannot
//! prove an inclusion (a changed `pattern` whose languages it cannot compare, a limit reached)
//! it says `false` and a [`Change`] says why. Every difference is labelled ([`ChangeKind`]) with
//! the JSON pointer of the keyword in the schema and whether it breaks either direction.
//!
//! Understood: `type`, `enum`, `const`, the numeric bounds and `multipleOf`, string lengths,
//! `pattern`, `format` and the `content*` keywords (equal means equal; otherwise treated as
//! opaque assertions), `items`/`prefixItems`/`additionalItems`, `minItems`/`maxItems`,
//! `uniqueItems`, `contains`/`minContains`/`maxContains`, `properties`, `required`,
//! `additionalProperties`, `patternProperties`, `propertyNames`, `minProperties`/
//! `maxProperties`, `dependencies`/`dependentRequired`/`dependentSchemas`, `allOf`, `anyOf`,
//! `oneOf`, `not`, `if`/`then`/`else`, local `$ref`s with `$defs`/`definitions`/`$id`/`$anchor`,
//! boolean schemas, and the annotations. Each schema is read in its own draft (`$schema`;
//! 2020-12 by default). Any other keyword is listed in [`Compatibility::unknown_keywords`] and
//! makes the direction it could affect `false`: it is never silently ignored. (Two identical
//! documents are fully compatible whatever they contain: the same text accepts the same
//! instances.) `format` and the `content*` keywords are treated as assertions even in drafts
//! where validators only annotate with them, which can only make a verdict more conservative.
//!
//! How: each schema is normalised into a union of per-JSON-type constraint sets, and `A ⊆ B` is
//! decided as "`A ∧ ¬B` accepts nothing", with exact complements, coinduction for recursive
//! schemas, and caps that fall back to "not proven" (see the `norm` and `decide` modules). A
//! `$ref` is resolved within its own document only, never fetched.
//!
//! [`check_chain`] applies the registry modes (`BACKWARD`, `FORWARD_TRANSITIVE`, ...) to a
//! version history: the newest schema against the previous one, or against every earlier one;
//! [`check_history`] replays a whole history, every version as it was added. Both list the
//! pairs they checked.
//!
//! ```
//! use mutatis_schema::compat::{check, check_chain, ChangeKind, CompatMode};
//! use serde_json::json;
//!
//! let v1 = json!({"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]});
//! let v2 = json!({"type": "object", "properties": {"age": {"type": "number"}}, "required": ["age"]});
//! let c = check(&v1, &v2)?;
//! // Every integer is a number: old data still reads; new data (1.5) does not read on v1.
//! assert!(c.backward && !c.forward && !c.full);
//! let widened = c.changes.iter().find(|ch| ch.kind == ChangeKind::TypeWidened).unwrap();
//! assert_eq!(widened.pointer, "/properties/age/type");
//! assert!(widened.breaks_forward && !widened.breaks_backward);
//! assert_eq!(c.to_json()["backward"], json!(true));
//!
//! // A required property added breaks backward compatibility.
//! let v3 = json!({"type": "object", "properties": {"age": {"type": "number"}, "name": {"type": "string"}},
//!                 "required": ["age", "name"]});
//! let chain = check_chain(&[v1, v2, v3], "BACKWARD_TRANSITIVE".parse::<CompatMode>()?)?;
//! assert!(!chain.compatible);
//! assert_eq!(chain.checks.iter().map(|p| (p.older, p.newer)).collect::<Vec<_>>(), [(0, 2), (1, 2)]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod chain;
mod changes;
mod decide;
mod dialect;
mod error;
mod expr;
mod json;
mod norm;
mod oracle;
mod schema;

use serde_json::{json, Value};

pub use chain::{check_chain, check_history, ChainVerdict, CompatMode, PairCheck};
pub use error::{CompatError, SchemaSide};

use decide::Decider;
use schema::{Arena, DocId};

/// The verdict on a pair of schemas, and what differs.
#[derive(Debug, Clone, PartialEq)]
pub struct Compatibility {
    /// Every instance valid under the old schema is valid under the new one.
    pub backward: bool,
    /// Every instance valid under the new schema is valid under the old one.
    pub forward: bool,
    /// Both.
    pub full: bool,
    /// The labelled differences. When a direction is `false`, at least one change breaks it.
    pub changes: Vec<Change>,
    /// Keywords the checker does not understand, in either schema.
    pub unknown_keywords: Vec<UnknownKeyword>,
}

/// One labelled difference.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// What changed.
    pub kind: ChangeKind,
    /// JSON pointer of the keyword (or subschema) in the new schema (in the old schema for a
    /// removed property).
    pub pointer: String,
    /// Whether it makes some instance valid under the old schema invalid under the new one.
    pub breaks_backward: bool,
    /// Whether it makes some instance valid under the new schema invalid under the old one.
    pub breaks_forward: bool,
    /// A sentence for people.
    pub detail: String,
    /// The old keyword value or subschema, if there was one.
    pub old: Option<Value>,
    /// The new keyword value or subschema, if there is one.
    pub new: Option<Value>,
}

/// The labels of [`Change`]. Their `snake_case` names ([`ChangeKind::as_str`]) are part of the
/// stable `--json` output of `mutatis compat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A property is listed in `properties` that was not.
    PropertyAdded,
    /// A property is no longer listed in `properties`.
    PropertyRemoved,
    /// `type` accepts fewer types.
    TypeNarrowed,
    /// `type` accepts more types.
    TypeWidened,
    /// `type` accepts some new types and drops others.
    TypeChanged,
    /// A property became required.
    RequiredAdded,
    /// A property is no longer required.
    RequiredRemoved,
    /// `enum` accepts more values (or was removed).
    EnumExtended,
    /// `enum` accepts fewer values (or was added).
    EnumNarrowed,
    /// `enum` gained some values and lost others.
    EnumChanged,
    /// `const` changed, was added or removed.
    ConstChanged,
    /// A bound (`minimum`, `maxLength`, `minItems`, `multipleOf`...) got stricter or was added.
    BoundTightened,
    /// A bound got looser or was removed.
    BoundLoosened,
    /// A bound changed in a way that is neither (e.g. `multipleOf` 7 to 13).
    BoundChanged,
    /// `additionalProperties` accepts less.
    AdditionalPropertiesRestricted,
    /// `additionalProperties` accepts more.
    AdditionalPropertiesAllowed,
    /// `additionalProperties` accepts some new values and rejects some old ones.
    AdditionalPropertiesChanged,
    /// A `patternProperties` entry was added or removed.
    PatternPropertiesChanged,
    /// `propertyNames` was added or removed.
    PropertyNamesChanged,
    /// `dependencies`, `dependentRequired` or `dependentSchemas` changed.
    DependencyChanged,
    /// Item schemas changed (positional items added or removed, `items`/`additionalItems`).
    ItemsChanged,
    /// `contains` was added or removed.
    ContainsChanged,
    /// `uniqueItems` changed.
    UniqueItemsChanged,
    /// `pattern` changed, was added or removed.
    PatternChanged,
    /// `format` changed, was added or removed.
    FormatChanged,
    /// `contentEncoding` or `contentMediaType` changed.
    ContentChanged,
    /// `allOf`, `anyOf`, `oneOf`, `not` or `if`/`then`/`else` changed.
    CompositionChanged,
    /// A `$ref` points elsewhere.
    RefChanged,
    /// The subschema accepts fewer instances, in a way no single keyword explains.
    SchemaNarrowed,
    /// The subschema accepts more instances, in a way no single keyword explains.
    SchemaWidened,
    /// A keyword the checker does not understand: the direction it could affect is `false`.
    UnknownKeyword,
    /// An analysis limit was reached: the verdict in the flagged direction is conservative.
    AnalysisLimit,
}

impl ChangeKind {
    /// The stable `snake_case` name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::PropertyAdded => "property_added",
            ChangeKind::PropertyRemoved => "property_removed",
            ChangeKind::TypeNarrowed => "type_narrowed",
            ChangeKind::TypeWidened => "type_widened",
            ChangeKind::TypeChanged => "type_changed",
            ChangeKind::RequiredAdded => "required_added",
            ChangeKind::RequiredRemoved => "required_removed",
            ChangeKind::EnumExtended => "enum_extended",
            ChangeKind::EnumNarrowed => "enum_narrowed",
            ChangeKind::EnumChanged => "enum_changed",
            ChangeKind::ConstChanged => "const_changed",
            ChangeKind::BoundTightened => "bound_tightened",
            ChangeKind::BoundLoosened => "bound_loosened",
            ChangeKind::BoundChanged => "bound_changed",
            ChangeKind::AdditionalPropertiesRestricted => "additional_properties_restricted",
            ChangeKind::AdditionalPropertiesAllowed => "additional_properties_allowed",
            ChangeKind::AdditionalPropertiesChanged => "additional_properties_changed",
            ChangeKind::PatternPropertiesChanged => "pattern_properties_changed",
            ChangeKind::PropertyNamesChanged => "property_names_changed",
            ChangeKind::DependencyChanged => "dependency_changed",
            ChangeKind::ItemsChanged => "items_changed",
            ChangeKind::ContainsChanged => "contains_changed",
            ChangeKind::UniqueItemsChanged => "unique_items_changed",
            ChangeKind::PatternChanged => "pattern_changed",
            ChangeKind::FormatChanged => "format_changed",
            ChangeKind::ContentChanged => "content_changed",
            ChangeKind::CompositionChanged => "composition_changed",
            ChangeKind::RefChanged => "ref_changed",
            ChangeKind::SchemaNarrowed => "schema_narrowed",
            ChangeKind::SchemaWidened => "schema_widened",
            ChangeKind::UnknownKeyword => "unknown_keyword",
            ChangeKind::AnalysisLimit => "analysis_limit",
        }
    }
}

impl std::fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which schema of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The old schema.
    Old,
    /// The new schema.
    New,
}

impl Role {
    /// `"old"` or `"new"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Old => "old",
            Role::New => "new",
        }
    }
}

/// A keyword the checker does not understand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKeyword {
    /// The keyword.
    pub keyword: String,
    /// Its JSON pointer.
    pub pointer: String,
    /// The schema it is in.
    pub side: Role,
}

impl Change {
    /// The change as JSON: `{"kind", "pointer", "breaks_backward", "breaks_forward", "detail"}`
    /// plus `"old"`/`"new"` when known.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "kind": self.kind.as_str(),
            "pointer": self.pointer,
            "breaks_backward": self.breaks_backward,
            "breaks_forward": self.breaks_forward,
            "detail": self.detail,
        });
        if let Some(map) = v.as_object_mut() {
            if let Some(old) = &self.old {
                map.insert("old".to_owned(), old.clone());
            }
            if let Some(new) = &self.new {
                map.insert("new".to_owned(), new.clone());
            }
        }
        v
    }
}

impl Compatibility {
    /// The verdict as JSON, the stable shape of `mutatis compat --json`:
    /// `{"backward", "forward", "full", "changes": [...], "unknown_keywords": [...]}`.
    pub fn to_json(&self) -> Value {
        json!({
            "backward": self.backward,
            "forward": self.forward,
            "full": self.full,
            "changes": self.changes.iter().map(Change::to_json).collect::<Vec<_>>(),
            "unknown_keywords": self.unknown_keywords.iter().map(|u| json!({
                "keyword": u.keyword,
                "pointer": u.pointer,
                "side": u.side.as_str(),
            })).collect::<Vec<_>>(),
        })
    }

    /// The changes that break backward compatibility.
    pub fn backward_breaks(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.breaks_backward)
    }

    /// The changes that break forward compatibility.
    pub fn forward_breaks(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.breaks_forward)
    }
}

/// Compare two JSON Schemas (see the module documentation).
///
/// Errors name the schema (old or new) and the JSON pointer: a keyword with a value of the
/// wrong kind, an unknown `$schema`, an unresolvable `$ref`, a `$ref` cycle that never descends
/// into the instance.
pub fn check(old: &Value, new: &Value) -> Result<Compatibility, CompatError> {
    let mut arena = Arena::default();
    let o = arena.load(old, SchemaSide::Old)?;
    let n = arena.load(new, SchemaSide::New)?;
    let mut decider = Decider::new(&arena);
    Ok(compare(&arena, &mut decider, o, n))
}

/// Compare two loaded documents.
pub(crate) fn compare<'s, 'a>(
    arena: &'s Arena<'a>,
    decider: &mut Decider<'s, 'a>,
    old: DocId,
    new: DocId,
) -> Compatibility {
    let (od, nd) = (&arena.docs[old], &arena.docs[new]);
    let mut unknown_keywords: Vec<UnknownKeyword> = Vec::new();
    for (doc, side) in [(od, Role::Old), (nd, Role::New)] {
        unknown_keywords.extend(doc.unknown.iter().map(|u| UnknownKeyword {
            keyword: u.keyword.clone(),
            pointer: u.pointer.clone(),
            side,
        }));
    }
    if od.value == nd.value && od.dialect == nd.dialect {
        // The same text accepts the same instances, whatever it contains.
        return Compatibility {
            backward: true,
            forward: true,
            full: true,
            changes: Vec::new(),
            unknown_keywords,
        };
    }

    decider.reset_budget();
    let mut backward = decider.includes(od.root, nd.root);
    let backward_limited = decider.limits.hit;
    decider.reset_budget();
    let mut forward = decider.includes(nd.root, od.root);
    let forward_limited = decider.limits.hit;

    let mut changes = changes::Differ::run(arena, decider, od.root, nd.root);

    // An unknown keyword restricts its schema in an unknown way: where it restricts the schema
    // that must accept (new for backward, old for forward) the inclusion is unproven. Under a
    // negation it widens its schema instead, which affects the other direction.
    for (doc, side) in [(od, Role::Old), (nd, Role::New)] {
        for u in &doc.unknown {
            let restricts_sup = u.positive;
            let widens_sub = u.negative;
            let (bb, bf) = match side {
                Role::New => (restricts_sup, widens_sub),
                Role::Old => (widens_sub, restricts_sup),
            };
            backward &= !bb;
            forward &= !bf;
            changes.push(Change {
                kind: ChangeKind::UnknownKeyword,
                pointer: u.pointer.clone(),
                breaks_backward: bb,
                breaks_forward: bf,
                detail: format!(
                    "the {} schema uses {:?}, which this checker does not understand{}",
                    side.as_str(),
                    u.keyword,
                    if u.negative {
                        " (under a negation)"
                    } else {
                        ""
                    }
                ),
                old: None,
                new: None,
            });
        }
    }
    for (limited, holds, bb) in [
        (backward_limited, backward, true),
        (forward_limited, forward, false),
    ] {
        if limited && !holds {
            changes.push(Change {
                kind: ChangeKind::AnalysisLimit,
                pointer: String::new(),
                breaks_backward: bb,
                breaks_forward: !bb,
                detail: format!(
                    "the schemas are too large or too combinatorial to compare exactly; {} compatibility is reported false conservatively",
                    if bb { "backward" } else { "forward" }
                ),
                old: None,
                new: None,
            });
        }
    }
    // The walk explains every failing direction at the root; keep the invariant explicit.
    if !backward && !changes.iter().any(|c| c.breaks_backward) {
        changes.push(Change {
            kind: ChangeKind::SchemaNarrowed,
            pointer: String::new(),
            breaks_backward: true,
            breaks_forward: false,
            detail: "some instances valid under the old schema are invalid under the new one"
                .to_owned(),
            old: None,
            new: None,
        });
    }
    if !forward && !changes.iter().any(|c| c.breaks_forward) {
        changes.push(Change {
            kind: ChangeKind::SchemaWidened,
            pointer: String::new(),
            breaks_backward: false,
            breaks_forward: true,
            detail: "some instances valid under the new schema are invalid under the old one"
                .to_owned(),
            old: None,
            new: None,
        });
    }
    // A change can only break a direction that is broken.
    for c in &mut changes {
        c.breaks_backward &= !backward;
        c.breaks_forward &= !forward;
    }
    Compatibility {
        backward,
        forward,
        full: backward && forward,
        changes,
        unknown_keywords,
    }
}

#[cfg(test)]
mod tests;
