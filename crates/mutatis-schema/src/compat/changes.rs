//! Labelled differences between two schemas.
//!
//! The verdict comes from set inclusion ([`super::decide`]); the changes explain it. The walk
//! aligns the two schemas place by place (the same property, the same item position, through
//! `$ref`s), skips every aligned pair that accepts the same instances, and labels what differs
//! at the others: a property added, a bound tightened, an enum extended. Each label says whether
//! it breaks backward and/or forward compatibility, and a label can only claim to break a
//! direction that the aligned pair as a whole really breaks (by inclusion), so the report never
//! contradicts the verdict. Where inclusion fails but no keyword-level label explains it (a
//! reshuffled `oneOf`, a boolean schema), the pair itself is labelled `schema_narrowed` or
//! `schema_widened`.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::decide::Decider;
use super::expr::Expr;
use super::json::{is_multiple, json_equal, push, push_index};
use super::schema::{types, Arena, Keywords, NodeId, NodeSchema};
use super::{Change, ChangeKind};

/// How deep the walk descends (each level is one aligned pair of subschemas).
const MAX_DEPTH: usize = 64;

/// Walks two schemas and collects [`Change`]s.
pub(crate) struct Differ<'d, 's, 'a> {
    arena: &'s Arena<'a>,
    decider: &'d mut Decider<'s, 'a>,
    changes: Vec<Change>,
    visited: HashSet<(NodeId, NodeId)>,
    depth: usize,
}

/// Local verdict of an aligned pair and the pointers to report at.
struct Here {
    old_ptr: String,
    new_ptr: String,
    backward: bool,
    forward: bool,
}

impl Here {
    /// A change at this place; its flags are cut down to what the place really breaks.
    /// `breaks` is (backward, forward), `values` is (old, new).
    fn change(
        &self,
        kind: ChangeKind,
        keyword: &str,
        (breaks_backward, breaks_forward): (bool, bool),
        detail: String,
        (old, new): (Option<Value>, Option<Value>),
    ) -> Change {
        let base = if kind == ChangeKind::PropertyRemoved {
            &self.old_ptr
        } else {
            &self.new_ptr
        };
        let pointer = if keyword.is_empty() {
            base.clone()
        } else {
            format!("{base}/{keyword}")
        };
        Change {
            kind,
            pointer,
            breaks_backward: breaks_backward && !self.backward,
            breaks_forward: breaks_forward && !self.forward,
            detail,
            old,
            new,
        }
    }
}

/// A bound's value with whether it is exclusive, for comparing `minimum` with
/// `exclusiveMinimum`.
#[derive(Clone, Copy)]
struct B {
    value: f64,
    exclusive: bool,
}

impl<'d, 's, 'a> Differ<'d, 's, 'a> {
    pub(crate) fn run(
        arena: &'s Arena<'a>,
        decider: &'d mut Decider<'s, 'a>,
        old: NodeId,
        new: NodeId,
    ) -> Vec<Change> {
        let mut d = Differ {
            arena,
            decider,
            changes: Vec::new(),
            visited: HashSet::new(),
            depth: 0,
        };
        d.pair(old, new);
        d.changes
    }

    /// Follow schemas that are nothing but a `$ref` (plus annotations) to their targets.
    fn follow(&self, mut id: NodeId) -> NodeId {
        for _ in 0..64 {
            let Some(k) = self.arena.keywords(id) else {
                return id;
            };
            let Some(r) = &k.reference else {
                return id;
            };
            let pure = k.ref_only
                || self
                    .arena
                    .node(id)
                    .raw
                    .as_object()
                    .is_some_and(|m| m.keys().all(|key| key == "$ref" || is_annotation(key)));
            if !pure {
                return id;
            }
            id = r.target;
        }
        id
    }

    fn ref_of(&self, id: NodeId) -> Option<&'a str> {
        self.arena
            .keywords(id)
            .and_then(|k| k.reference.as_ref())
            .map(|r| r.raw)
    }

    /// Compare an aligned pair of subschemas.
    fn pair(&mut self, old: NodeId, new: NodeId) {
        if self.depth >= MAX_DEPTH {
            return;
        }
        let (o, n) = (self.follow(old), self.follow(new));
        if !self.visited.insert((o, n)) {
            return;
        }
        self.decider.reset_budget();
        let backward = self.decider.includes(o, n);
        let forward = self.decider.includes(n, o);
        if backward && forward {
            return;
        }
        let here = Here {
            old_ptr: self.arena.node(o).pointer.clone(),
            new_ptr: self.arena.node(n).pointer.clone(),
            backward,
            forward,
        };
        let start = self.changes.len();
        self.depth += 1;
        let (ro, rn) = (self.ref_of(old), self.ref_of(new));
        if ro.is_some() && rn.is_some() && ro != rn {
            self.changes.push(here.change(
                ChangeKind::RefChanged,
                "",
                (true, true),
                format!(
                    "$ref changed from {:?} to {:?}",
                    ro.unwrap_or_default(),
                    rn.unwrap_or_default()
                ),
                (ro.map(|r| json!(r)), rn.map(|r| json!(r))),
            ));
        }
        let (so, sn) = (&self.arena.node(o).schema, &self.arena.node(n).schema);
        match (so, sn) {
            (NodeSchema::Bool(false), _) => self.changes.push(here.change(
                ChangeKind::SchemaWidened,
                "",
                (false, true),
                "the schema was false (no instance was valid); now some are".to_owned(),
                (Some(json!(false)), Some(self.arena.node(n).raw.clone())),
            )),
            (_, NodeSchema::Bool(false)) => self.changes.push(here.change(
                ChangeKind::SchemaNarrowed,
                "",
                (true, false),
                "the schema is now false: no instance is valid".to_owned(),
                (Some(self.arena.node(o).raw.clone()), Some(json!(false))),
            )),
            _ => {
                let empty = Keywords::default();
                let ko = self.arena.keywords(o).unwrap_or(&empty);
                let kn = self.arena.keywords(n).unwrap_or(&empty);
                self.keywords(&here, o, n, ko, kn);
            }
        }
        self.depth -= 1;
        let added = &self.changes[start..];
        let explains_backward = added.iter().any(|c| c.breaks_backward);
        let explains_forward = added.iter().any(|c| c.breaks_forward);
        if !backward && !explains_backward {
            self.changes.push(here.change(
ChangeKind::SchemaNarrowed,
"",
(true, false),
format!(
                    "some instances valid under the old schema at {} are invalid under the new one here",
                    display_ptr(&here.old_ptr)
                ),
(None, None),
));
        }
        if !forward && !explains_forward {
            self.changes.push(here.change(
                ChangeKind::SchemaWidened,
                "",
                (false, true),
                format!(
                    "some instances valid here are invalid under the old schema at {}",
                    display_ptr(&here.old_ptr)
                ),
                (None, None),
            ));
        }
    }

    fn expr_of(&self, id: Option<NodeId>) -> Expr {
        match id {
            None => Expr::True,
            Some(id) => match &self.arena.node(id).schema {
                NodeSchema::Bool(true) => Expr::True,
                NodeSchema::Bool(false) => Expr::False,
                NodeSchema::Object(_) => Expr::Node(id),
            },
        }
    }

    /// The JSON types a schema can accept at all (`integer` alone when every number it accepts
    /// is an integer), read from its normal form.
    fn accepted_types(&mut self, id: NodeId) -> u8 {
        let n = self.decider.node_norm(id);
        let mut set = 0;
        if n.null {
            set |= types::NULL;
        }
        if n.boolean[0] || n.boolean[1] {
            set |= types::BOOLEAN;
        }
        if !n.number.terms.is_empty() {
            let integers_only =
                n.number.exact && n.number.terms.iter().all(|t| t.multiples.contains(&1.0));
            set |= if integers_only {
                types::INTEGER
            } else {
                types::NUMBER | types::INTEGER
            };
        }
        for (terms_empty, bit) in [
            (n.string.terms.is_empty(), types::STRING),
            (n.array.terms.is_empty(), types::ARRAY),
            (n.object.terms.is_empty(), types::OBJECT),
        ] {
            if !terms_empty {
                set |= bit;
            }
        }
        set
    }

    /// Whether `a ⊆ b` and `b ⊆ a`, for a local label.
    fn local(&mut self, a: &Expr, b: &Expr) -> (bool, bool) {
        self.decider.reset_budget();
        let bw = self.decider.includes_expr(a, b);
        let fw = self.decider.includes_expr(b, a);
        (bw, fw)
    }

    /// The schema a property's value has under one object schema's own keywords.
    fn value_expr(&self, k: &Keywords<'a>, name: &str) -> Expr {
        let oracle = &self.arena.oracle;
        let mut parts: Vec<Expr> = Vec::new();
        let listed = k.properties.iter().find(|(n, _)| *n == name);
        if let Some((_, c)) = listed {
            parts.push(self.expr_of(Some(*c)));
        }
        let mut matched = false;
        for (p, c) in &k.pattern_properties {
            if oracle.matches(p, name) != Some(false) {
                matched = true;
                parts.push(self.expr_of(Some(*c)));
            }
        }
        if listed.is_none() && !matched {
            parts.push(self.expr_of(k.additional_properties));
        }
        Expr::and(parts)
    }

    #[allow(clippy::too_many_lines)]
    fn keywords(
        &mut self,
        here: &Here,
        o: NodeId,
        n: NodeId,
        ko: &Keywords<'a>,
        kn: &Keywords<'a>,
    ) {
        // type: the JSON types each side can accept at all, whichever keywords decide it
        // (`type`, `enum`, an `anyOf` of types...).
        let to = self.accepted_types(o);
        let tn = self.accepted_types(n);
        if to != tn {
            let (kind, bb, bf) = if to & tn == to {
                (ChangeKind::TypeWidened, false, true)
            } else if to & tn == tn {
                (ChangeKind::TypeNarrowed, true, false)
            } else {
                (ChangeKind::TypeChanged, true, true)
            };
            let names = |t: u8| json!(types::names(t));
            let keyword = if ko.types.is_some() || kn.types.is_some() {
                "type"
            } else {
                ""
            };
            self.changes.push(here.change(
                kind,
                keyword,
                (bb, bf),
                format!("accepted types changed from {} to {}", names(to), names(tn)),
                (Some(names(to)), Some(names(tn))),
            ));
        }

        // enum / const
        self.values(
            here,
            "enum",
            ko.enumeration.as_deref(),
            kn.enumeration.as_deref(),
        );
        match (ko.constant, kn.constant) {
            (a, b) if a.is_some() || b.is_some() => {
                let same = match (a, b) {
                    (Some(x), Some(y)) => json_equal(x, y),
                    _ => false,
                };
                if !same {
                    self.changes.push(here.change(
                        ChangeKind::ConstChanged,
                        "const",
                        (b.is_some(), a.is_some()),
                        match (a, b) {
                            (Some(x), Some(y)) => format!("const changed from {x} to {y}"),
                            (None, Some(y)) => format!("const {y} added"),
                            (Some(x), None) => format!("const {x} removed"),
                            (None, None) => String::new(),
                        },
                        (a.cloned(), b.cloned()),
                    ));
                }
            }
            _ => {}
        }

        // numeric bounds
        let lower = |k: &Keywords<'_>| -> Option<(B, &'static str)> {
            let inc = k.minimum.map(|v| {
                (
                    B {
                        value: v,
                        exclusive: false,
                    },
                    "minimum",
                )
            });
            let exc = k.exclusive_minimum.map(|v| {
                (
                    B {
                        value: v,
                        exclusive: true,
                    },
                    "exclusiveMinimum",
                )
            });
            match (inc, exc) {
                (Some(a), Some(b)) => Some(if b.0.value >= a.0.value { b } else { a }),
                (a, b) => a.or(b),
            }
        };
        let upper = |k: &Keywords<'_>| -> Option<(B, &'static str)> {
            let inc = k.maximum.map(|v| {
                (
                    B {
                        value: v,
                        exclusive: false,
                    },
                    "maximum",
                )
            });
            let exc = k.exclusive_maximum.map(|v| {
                (
                    B {
                        value: v,
                        exclusive: true,
                    },
                    "exclusiveMaximum",
                )
            });
            match (inc, exc) {
                (Some(a), Some(b)) => Some(if b.0.value <= a.0.value { b } else { a }),
                (a, b) => a.or(b),
            }
        };
        self.bound(here, lower(ko), lower(kn), true);
        self.bound(here, upper(ko), upper(kn), false);
        match (ko.multiple_of, kn.multiple_of) {
            (a, b) if a != b => {
                let (kind, bb, bf) = match (a, b) {
                    (None, Some(_)) => (ChangeKind::BoundTightened, true, false),
                    (Some(_), None) => (ChangeKind::BoundLoosened, false, true),
                    (Some(x), Some(y)) if is_multiple(x, y) == Some(true) => {
                        (ChangeKind::BoundLoosened, false, true)
                    }
                    (Some(x), Some(y)) if is_multiple(y, x) == Some(true) => {
                        (ChangeKind::BoundTightened, true, false)
                    }
                    _ => (ChangeKind::BoundChanged, true, true),
                };
                self.changes.push(here.change(
                    kind,
                    "multipleOf",
                    (bb, bf),
                    format!("multipleOf changed from {} to {}", opt(a), opt(b)),
                    (a.map(|x| json!(x)), b.map(|x| json!(x))),
                ));
            }
            _ => {}
        }
        for (keyword, a, b, is_min) in [
            ("minLength", ko.min_length, kn.min_length, true),
            ("maxLength", ko.max_length, kn.max_length, false),
            ("minItems", ko.min_items, kn.min_items, true),
            ("maxItems", ko.max_items, kn.max_items, false),
            ("minProperties", ko.min_properties, kn.min_properties, true),
            ("maxProperties", ko.max_properties, kn.max_properties, false),
            ("minContains", ko.min_contains, kn.min_contains, true),
            ("maxContains", ko.max_contains, kn.max_contains, false),
        ] {
            self.count_bound(here, keyword, a, b, is_min);
        }

        // string atoms
        for (keyword, kind, a, b) in [
            (
                "pattern",
                ChangeKind::PatternChanged,
                ko.pattern,
                kn.pattern,
            ),
            ("format", ChangeKind::FormatChanged, ko.format, kn.format),
            (
                "contentEncoding",
                ChangeKind::ContentChanged,
                ko.content_encoding,
                kn.content_encoding,
            ),
            (
                "contentMediaType",
                ChangeKind::ContentChanged,
                ko.content_media_type,
                kn.content_media_type,
            ),
        ] {
            if a != b {
                self.changes.push(here.change(
                    kind,
                    keyword,
                    (b.is_some(), a.is_some()),
                    match (a, b) {
                        (Some(x), Some(y)) => format!("{keyword} changed from {x:?} to {y:?}"),
                        (None, Some(y)) => format!("{keyword} {y:?} added"),
                        (Some(x), None) => format!("{keyword} {x:?} removed"),
                        (None, None) => String::new(),
                    },
                    (a.map(|x| json!(x)), b.map(|x| json!(x))),
                ));
            }
        }
        if ko.unique_items != kn.unique_items {
            self.changes.push(here.change(
                ChangeKind::UniqueItemsChanged,
                "uniqueItems",
                (kn.unique_items, ko.unique_items),
                format!(
                    "uniqueItems changed from {} to {}",
                    ko.unique_items, kn.unique_items
                ),
                (Some(json!(ko.unique_items)), Some(json!(kn.unique_items))),
            ));
        }

        self.objects(here, ko, kn);
        self.arrays(here, ko, kn);

        // composition
        for (keyword, a, b) in [
            ("allOf", &ko.all_of, &kn.all_of),
            ("anyOf", &ko.any_of, &kn.any_of),
        ] {
            if a.len() == b.len() {
                for (x, y) in a.iter().zip(b) {
                    self.pair(*x, *y);
                }
            } else {
                self.changes.push(here.change(
                    ChangeKind::CompositionChanged,
                    keyword,
                    (true, true),
                    match (a.len(), b.len()) {
                        (0, n) => format!("{keyword} with {n} branches added"),
                        (n, 0) => format!("{keyword} with {n} branches removed"),
                        (x, y) => format!("{keyword} changed from {x} to {y} branches"),
                    },
                    (None, None),
                ));
            }
        }
        let raw = |id: NodeId, key: &str| self.arena.node(id).raw.get(key).cloned();
        for keyword in ["oneOf", "not", "if", "then", "else"] {
            let (a, b) = (raw(o, keyword), raw(n, keyword));
            if a != b {
                // Not walked inside: under `not`, `if` and `oneOf` a narrower subschema can
                // widen the schema, so labels from inside would mislead.
                self.changes.push(here.change(
                    ChangeKind::CompositionChanged,
                    keyword,
                    (true, true),
                    format!("{keyword} changed"),
                    (a, b),
                ));
            }
        }
        if let (Some(a), Some(b)) = (&ko.reference, &kn.reference) {
            if !ko.ref_only && !kn.ref_only {
                if a.raw != b.raw {
                    self.changes.push(here.change(
                        ChangeKind::RefChanged,
                        "$ref",
                        (true, true),
                        format!("$ref changed from {:?} to {:?}", a.raw, b.raw),
                        (Some(json!(a.raw)), Some(json!(b.raw))),
                    ));
                }
                self.pair(a.target, b.target);
            }
        } else if ko.reference.is_some() != kn.reference.is_some() {
            let (a, b) = (
                ko.reference.as_ref().map(|r| r.raw),
                kn.reference.as_ref().map(|r| r.raw),
            );
            self.changes.push(here.change(
                ChangeKind::RefChanged,
                "$ref",
                (true, true),
                format!("$ref changed from {} to {}", opt_str(a), opt_str(b)),
                (a.map(|x| json!(x)), b.map(|x| json!(x))),
            ));
        }
    }

    fn values(&mut self, here: &Here, keyword: &str, a: Option<&[&Value]>, b: Option<&[&Value]>) {
        let contains = |set: &[&Value], v: &Value| set.iter().any(|w| json_equal(w, v));
        let list = |set: &[&Value]| Value::Array(set.iter().map(|v| (*v).clone()).collect());
        let (kind, bb, bf) = match (a, b) {
            (None, None) => return,
            (None, Some(_)) => (ChangeKind::EnumNarrowed, true, false),
            (Some(_), None) => (ChangeKind::EnumExtended, false, true),
            (Some(x), Some(y)) => {
                let removed = x.iter().any(|v| !contains(y, v));
                let added = y.iter().any(|v| !contains(x, v));
                match (removed, added) {
                    (false, false) => return,
                    (false, true) => (ChangeKind::EnumExtended, false, true),
                    (true, false) => (ChangeKind::EnumNarrowed, true, false),
                    (true, true) => (ChangeKind::EnumChanged, true, true),
                }
            }
        };
        let detail = match (a, b) {
            (Some(x), Some(y)) => {
                let removed: Vec<Value> = x
                    .iter()
                    .filter(|v| !contains(y, v))
                    .map(|v| (*v).clone())
                    .collect();
                let added: Vec<Value> = y
                    .iter()
                    .filter(|v| !contains(x, v))
                    .map(|v| (*v).clone())
                    .collect();
                format!(
                    "{keyword}: added {}, removed {}",
                    Value::Array(added),
                    Value::Array(removed)
                )
            }
            (None, Some(y)) => format!("{keyword} {} added", list(y)),
            (Some(x), None) => format!("{keyword} {} removed", list(x)),
            (None, None) => String::new(),
        };
        self.changes
            .push(here.change(kind, keyword, (bb, bf), detail, (a.map(list), b.map(list))));
    }

    fn bound(
        &mut self,
        here: &Here,
        a: Option<(B, &'static str)>,
        b: Option<(B, &'static str)>,
        lower: bool,
    ) {
        let tighter = |x: B, y: B| -> bool {
            // Whether y is strictly tighter than x.
            if lower {
                y.value > x.value || (y.value == x.value && y.exclusive && !x.exclusive)
            } else {
                y.value < x.value || (y.value == x.value && y.exclusive && !x.exclusive)
            }
        };
        let (kind, keyword) = match (a, b) {
            (None, None) => return,
            (None, Some((_, k))) => (ChangeKind::BoundTightened, k),
            (Some((_, k)), None) => (ChangeKind::BoundLoosened, k),
            (Some((x, _)), Some((y, k))) => {
                if tighter(x, y) {
                    (ChangeKind::BoundTightened, k)
                } else if tighter(y, x) {
                    (ChangeKind::BoundLoosened, k)
                } else {
                    return;
                }
            }
        };
        let show = |v: Option<(B, &str)>| match v {
            Some((b, k)) => format!("{k} {}", b.value),
            None => "none".to_owned(),
        };
        let tightened = kind == ChangeKind::BoundTightened;
        self.changes.push(here.change(
            kind,
            keyword,
            (tightened, !tightened),
            format!(
                "{} bound changed from {} to {}",
                if lower { "lower" } else { "upper" },
                show(a),
                show(b)
            ),
            (
                a.map(|(b, _)| json!(b.value)),
                b.map(|(b, _)| json!(b.value)),
            ),
        ));
    }

    fn count_bound(
        &mut self,
        here: &Here,
        keyword: &str,
        a: Option<u64>,
        b: Option<u64>,
        is_min: bool,
    ) {
        let tightened = match (a, b) {
            (None, None) => return,
            (x, y) if x == y => return,
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (Some(x), Some(y)) => (y > x) == is_min,
        };
        let kind = if tightened {
            ChangeKind::BoundTightened
        } else {
            ChangeKind::BoundLoosened
        };
        self.changes.push(here.change(
            kind,
            keyword,
            (tightened, !tightened),
            format!("{keyword} changed from {} to {}", opt(a), opt(b)),
            (a.map(|x| json!(x)), b.map(|x| json!(x))),
        ));
    }

    fn objects(&mut self, here: &Here, ko: &Keywords<'a>, kn: &Keywords<'a>) {
        for (name, c) in &kn.properties {
            match ko.properties.iter().find(|(m, _)| m == name) {
                Some((_, old)) => self.pair(*old, *c),
                None => {
                    let (before, after) = (self.value_expr(ko, name), self.value_expr(kn, name));
                    let (bw, fw) = self.local(&before, &after);
                    self.changes.push(here.change(
                        ChangeKind::PropertyAdded,
                        &push("properties", name)[..],
                        (!bw, !fw),
                        format!("property {name:?} added"),
                        (None, Some(self.arena.node(*c).raw.clone())),
                    ));
                }
            }
        }
        for (name, c) in &ko.properties {
            if !kn.properties.iter().any(|(m, _)| m == name) {
                let (before, after) = (self.value_expr(ko, name), self.value_expr(kn, name));
                let (bw, fw) = self.local(&before, &after);
                self.changes.push(here.change(
                    ChangeKind::PropertyRemoved,
                    &push("properties", name)[..],
                    (!bw, !fw),
                    format!("property {name:?} removed"),
                    (Some(self.arena.node(*c).raw.clone()), None),
                ));
            }
        }
        for name in &kn.required {
            if !ko.required.contains(name) {
                self.changes.push(here.change(
                    ChangeKind::RequiredAdded,
                    "required",
                    (true, false),
                    format!("property {name:?} is now required"),
                    (None, Some(json!(name))),
                ));
            }
        }
        for name in &ko.required {
            if !kn.required.contains(name) {
                self.changes.push(here.change(
                    ChangeKind::RequiredRemoved,
                    "required",
                    (false, true),
                    format!("property {name:?} is no longer required"),
                    (Some(json!(name)), None),
                ));
            }
        }
        match (ko.additional_properties, kn.additional_properties) {
            (Some(a), Some(b))
                if matches!(self.arena.node(a).schema, NodeSchema::Object(_))
                    && matches!(self.arena.node(b).schema, NodeSchema::Object(_)) =>
            {
                self.pair(a, b)
            }
            (a, b) => {
                let (ea, eb) = (self.expr_of(a), self.expr_of(b));
                if ea != eb {
                    let (bw, fw) = self.local(&ea, &eb);
                    let kind = match (bw, fw) {
                        (true, true) => None,
                        (false, true) => Some(ChangeKind::AdditionalPropertiesRestricted),
                        (true, false) => Some(ChangeKind::AdditionalPropertiesAllowed),
                        (false, false) => Some(ChangeKind::AdditionalPropertiesChanged),
                    };
                    if let Some(kind) = kind {
                        let raw = |id: Option<NodeId>| id.map(|i| self.arena.node(i).raw.clone());
                        self.changes.push(here.change(
                            kind,
                            "additionalProperties",
                            (!bw, !fw),
                            format!(
                                "additionalProperties changed from {} to {}",
                                raw(a).map_or("absent".to_owned(), |v| v.to_string()),
                                raw(b).map_or("absent".to_owned(), |v| v.to_string())
                            ),
                            (raw(a), raw(b)),
                        ));
                    }
                }
            }
        }
        for (p, c) in &kn.pattern_properties {
            match ko.pattern_properties.iter().find(|(q, _)| q == p) {
                Some((_, old)) => self.pair(*old, *c),
                None => self.changes.push(here.change(
                    ChangeKind::PatternPropertiesChanged,
                    &push("patternProperties", p)[..],
                    (true, true),
                    format!("patternProperties {p:?} added"),
                    (None, Some(self.arena.node(*c).raw.clone())),
                )),
            }
        }
        for (p, c) in &ko.pattern_properties {
            if !kn.pattern_properties.iter().any(|(q, _)| q == p) {
                self.changes.push(here.change(
                    ChangeKind::PatternPropertiesChanged,
                    &push("patternProperties", p)[..],
                    (true, true),
                    format!("patternProperties {p:?} removed"),
                    (Some(self.arena.node(*c).raw.clone()), None),
                ));
            }
        }
        match (ko.property_names, kn.property_names) {
            (Some(a), Some(b)) => self.pair(a, b),
            (None, None) => {}
            (a, b) => self.changes.push(here.change(
                ChangeKind::PropertyNamesChanged,
                "propertyNames",
                (b.is_some(), a.is_some()),
                format!(
                    "propertyNames {}",
                    if b.is_some() { "added" } else { "removed" }
                ),
                (
                    a.map(|i| self.arena.node(i).raw.clone()),
                    b.map(|i| self.arena.node(i).raw.clone()),
                ),
            )),
        }
        for (key, names, keyword) in &kn.dependent_required {
            let old = ko.dependent_required.iter().find(|(k, _, _)| k == key);
            let (bb, bf) = match old {
                None => (true, false),
                Some((_, before, _)) => {
                    let grew = names.iter().any(|n| !before.contains(n));
                    let shrank = before.iter().any(|n| !names.contains(n));
                    if !grew && !shrank {
                        continue;
                    }
                    (grew, shrank)
                }
            };
            self.changes.push(here.change(
                ChangeKind::DependencyChanged,
                &push(keyword, key)[..],
                (bb, bf),
                format!("the properties required with {key:?} changed"),
                (old.map(|(_, n, _)| json!(n)), Some(json!(names))),
            ));
        }
        for (key, names, keyword) in &ko.dependent_required {
            if !kn.dependent_required.iter().any(|(k, _, _)| k == key) {
                self.changes.push(here.change(
                    ChangeKind::DependencyChanged,
                    &push(keyword, key)[..],
                    (false, true),
                    format!("the properties required with {key:?} are no longer required"),
                    (Some(json!(names)), None),
                ));
            }
        }
        for (key, c, keyword) in &kn.dependent_schemas {
            match ko.dependent_schemas.iter().find(|(k, _, _)| k == key) {
                Some((_, old, _)) => self.pair(*old, *c),
                None => self.changes.push(here.change(
                    ChangeKind::DependencyChanged,
                    &push(keyword, key)[..],
                    (true, false),
                    format!("a schema dependency on {key:?} added"),
                    (None, Some(self.arena.node(*c).raw.clone())),
                )),
            }
        }
        for (key, c, keyword) in &ko.dependent_schemas {
            if !kn.dependent_schemas.iter().any(|(k, _, _)| k == key) {
                self.changes.push(here.change(
                    ChangeKind::DependencyChanged,
                    &push(keyword, key)[..],
                    (false, true),
                    format!("the schema dependency on {key:?} removed"),
                    (Some(self.arena.node(*c).raw.clone()), None),
                ));
            }
        }
    }

    fn arrays(&mut self, here: &Here, ko: &Keywords<'a>, kn: &Keywords<'a>) {
        let (pos_kw, rest_kw) = if kn.tuple_items || (kn.prefix_items.is_empty() && ko.tuple_items)
        {
            ("items", "additionalItems")
        } else {
            ("prefixItems", "items")
        };
        let positions = ko.prefix_items.len().max(kn.prefix_items.len());
        for i in 0..positions {
            match (ko.prefix_items.get(i), kn.prefix_items.get(i)) {
                (Some(a), Some(b)) => self.pair(*a, *b),
                (a, b) => {
                    let ea = a.map_or_else(|| self.expr_of(ko.items), |x| self.expr_of(Some(*x)));
                    let eb = b.map_or_else(|| self.expr_of(kn.items), |x| self.expr_of(Some(*x)));
                    let (bw, fw) = self.local(&ea, &eb);
                    if !(bw && fw) {
                        self.changes.push(here.change(
                            ChangeKind::ItemsChanged,
                            &push_index(pos_kw, i)[..],
                            (!bw, !fw),
                            format!(
                                "positional item {i} {}",
                                if b.is_some() { "added" } else { "removed" }
                            ),
                            (
                                a.map(|x| self.arena.node(*x).raw.clone()),
                                b.map(|x| self.arena.node(*x).raw.clone()),
                            ),
                        ));
                    }
                }
            }
        }
        match (ko.items, kn.items) {
            (Some(a), Some(b)) if ko.prefix_items.len() == kn.prefix_items.len() => self.pair(a, b),
            (a, b) => {
                let (ea, eb) = (self.expr_of(a), self.expr_of(b));
                if a.is_some() || b.is_some() {
                    let (bw, fw) = self.local(&ea, &eb);
                    if !(bw && fw) {
                        let raw = |id: Option<NodeId>| id.map(|i| self.arena.node(i).raw.clone());
                        self.changes.push(here.change(
                            ChangeKind::ItemsChanged,
                            rest_kw,
                            (!bw, !fw),
                            format!(
                                "{rest_kw} changed from {} to {}",
                                raw(a).map_or("absent".to_owned(), |v| v.to_string()),
                                raw(b).map_or("absent".to_owned(), |v| v.to_string())
                            ),
                            (raw(a), raw(b)),
                        ));
                    }
                }
            }
        }
        match (ko.contains, kn.contains) {
            (Some(a), Some(b)) => self.pair(a, b),
            (None, None) => {}
            (a, b) => self.changes.push(here.change(
                ChangeKind::ContainsChanged,
                "contains",
                (b.is_some(), a.is_some()),
                format!("contains {}", if b.is_some() { "added" } else { "removed" }),
                (
                    a.map(|i| self.arena.node(i).raw.clone()),
                    b.map(|i| self.arena.node(i).raw.clone()),
                ),
            )),
        }
    }
}

fn is_annotation(key: &str) -> bool {
    matches!(
        key,
        "$schema"
            | "$id"
            | "id"
            | "$comment"
            | "title"
            | "description"
            | "default"
            | "examples"
            | "readOnly"
            | "writeOnly"
            | "deprecated"
            | "$anchor"
            | "$dynamicAnchor"
            | "definitions"
            | "$defs"
    )
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "none".to_owned(), |x| x.to_string())
}

fn opt_str(v: Option<&str>) -> String {
    v.map_or_else(|| "none".to_owned(), |x| format!("{x:?}"))
}

fn display_ptr(p: &str) -> &str {
    if p.is_empty() {
        "the root"
    } else {
        p
    }
}
