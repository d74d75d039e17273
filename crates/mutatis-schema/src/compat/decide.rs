//! Deciding inclusion: `A ⊆ B` iff `A ∧ ¬B` accepts no value.
//!
//! The [`Decider`] normalises expressions ([`super::norm`]) and decides whether a normal form is
//! empty. Emptiness is *proven* or not: every rule that answers "empty" is sound (a contradiction
//! between bounds, an item or property that can have no value, a value list whose every
//! candidate fails), and whatever it cannot prove is "not empty", which makes the inclusion
//! "not proven" and the verdict conservative.
//!
//! Recursive schemas are handled coinductively: while the emptiness of an expression is being
//! decided, meeting the same expression again assumes it empty. Every such meeting happens one
//! level down in the instance (same-level `$ref` cycles are rejected at parse time), and
//! instances are finite, so a proof built on the assumption is a proof by induction on the
//! instance's depth. Results that depended on an assumption still open are not cached.
//!
//! Work is bounded: a step budget and a depth limit turn runaway cases into "not proven" and are
//! reported, never into a hang.

use std::collections::BTreeSet;
use std::rc::Rc;

use serde_json::Value;

use super::expr::Expr;
use super::json::{has_duplicates, is_multiple, json_equal, lcm, validator_multiple, FxMap};
use super::norm::{
    in_interval, interval_empty, Additional, ArrConj, Bound, Conj, Contains, Dnf, Limits, Norm,
    Num, NumConj, ObjConj, Shared, StrAtom, StrConj, MAX_TERMS,
};
use super::schema::{types, Arena, NodeId, NodeSchema};

/// How many emptiness questions one direction of one comparison may ask.
const BUDGET: u64 = 200_000;
/// How deep normalisation of expressions may recurse.
const MAX_DEPTH: usize = 200;
/// How deep emptiness and value checks may recurse: one level per level of the instance, and
/// a parsed JSON document nests at most 128 levels, so only recursive schemas that keep
/// producing new questions get this far.
const MAX_STACK: usize = 100;
/// `oneOf` with more branches than this is over-approximated by `anyOf` (exactness costs a
/// quadratic number of complements).
const MAX_ONE_OF: usize = 8;
/// How many multiples of a step a bounded interval may hold before candidates are not
/// enumerated.
const MAX_ENUMERATED: u32 = 64;

/// Normal forms and emptiness, with caches shared by every question about the same arena.
pub(crate) struct Decider<'s, 'a> {
    arena: &'s Arena<'a>,
    node_norms: FxMap<NodeId, Rc<Norm<'a>>>,
    expr_norms: FxMap<Expr, Rc<Norm<'a>>>,
    empty_cache: FxMap<Expr, bool>,
    in_progress: FxMap<Expr, usize>,
    same: FxMap<(NodeId, NodeId), bool>,
    depth: usize,
    stack: usize,
    low: usize,
    steps: u64,
    pub(crate) limits: Limits,
}

impl<'s, 'a> Decider<'s, 'a> {
    pub(crate) fn new(arena: &'s Arena<'a>) -> Self {
        Decider {
            arena,
            node_norms: FxMap::default(),
            expr_norms: FxMap::default(),
            empty_cache: FxMap::default(),
            in_progress: FxMap::default(),
            same: FxMap::default(),
            depth: 0,
            stack: 0,
            low: usize::MAX,
            steps: 0,
            limits: Limits::default(),
        }
    }

    /// Start a fresh budget and forget whether limits were hit (the caches stay: they are
    /// valid across questions).
    pub(crate) fn reset_budget(&mut self) {
        self.steps = 0;
        self.limits = Limits::default();
    }

    /// Whether every instance valid under `sub` is valid under `sup`.
    pub(crate) fn includes(&mut self, sub: NodeId, sup: NodeId) -> bool {
        if self.same_schema(sub, sup) {
            return true;
        }
        self.includes_expr(&Expr::Node(sub), &Expr::Node(sup))
    }

    /// Whether every value in `sub` is in `sup`.
    pub(crate) fn includes_expr(&mut self, sub: &Expr, sup: &Expr) -> bool {
        self.is_empty(&Expr::and([sub.clone(), Expr::not(sup.clone())]))
    }

    /// Whether two nodes are written identically, without references (whose targets could
    /// differ), in the same dialect: then they accept the same instances.
    pub(crate) fn same_schema(&mut self, a: NodeId, b: NodeId) -> bool {
        if a == b {
            return true;
        }
        if let Some(&r) = self.same.get(&(a, b)) {
            return r;
        }
        let (na, nb) = (self.arena.node(a), self.arena.node(b));
        let r = !na.has_ref
            && !nb.has_ref
            && self.arena.dialect(a) == self.arena.dialect(b)
            && na.raw == nb.raw;
        self.same.insert((a, b), r);
        r
    }

    /// The expression of a node, simplified: `true`/`false`/`{}` are constants, and a draft 7
    /// `$ref` (which hides its siblings) is its target.
    fn node_expr(&self, mut id: NodeId) -> Expr {
        // A `$ref` chain is acyclic (`Arena::load` checks), hence at most as long as the arena.
        for _ in 0..self.arena.nodes.len() {
            match &self.arena.node(id).schema {
                NodeSchema::Bool(true) => return Expr::True,
                NodeSchema::Bool(false) => return Expr::False,
                NodeSchema::Object(k) if k.ref_only => match &k.reference {
                    Some(r) => id = r.target,
                    None => return Expr::Node(id),
                },
                // `{}` (or only annotations): every value. Unknown keywords are left out of
                // the reasoning (see `compare`), so they do not count here either.
                NodeSchema::Object(k) if k.is_unconstrained() => return Expr::True,
                NodeSchema::Object(_) => return Expr::Node(id),
            }
        }
        Expr::Node(id)
    }

    /// The normal form of a node.
    ///
    /// A node's form needs the forms of the subschemas that apply to the same instance
    /// (`allOf`, `$ref`...), which may chain for hundreds of levels: they are computed first,
    /// children before parents, with an explicit stack rather than recursion (the chain is
    /// acyclic: `Arena::load` rejects same-level cycles).
    pub(crate) fn node_norm(&mut self, id: NodeId) -> Rc<Norm<'a>> {
        if let Some(n) = self.node_norms.get(&id) {
            return n.clone();
        }
        let mut stack: Vec<(NodeId, bool)> = vec![(id, false)];
        while let Some((n, children_done)) = stack.pop() {
            if self.node_norms.contains_key(&n) {
                continue;
            }
            if children_done {
                let norm = Rc::new(self.compute_node_norm(n));
                self.node_norms.insert(n, norm);
            } else {
                stack.push((n, true));
                for (child, same_level) in self.arena.edges(n) {
                    if same_level && !self.node_norms.contains_key(&child) {
                        stack.push((child, false));
                    }
                }
            }
        }
        match self.node_norms.get(&id) {
            Some(n) => n.clone(),
            // Not reachable: the loop above inserted it.
            None => Rc::new(Norm::inexact_top()),
        }
    }

    fn compute_node_norm(&mut self, id: NodeId) -> Norm<'a> {
        let arena = self.arena;
        let k = match &arena.node(id).schema {
            NodeSchema::Bool(true) => return Norm::top(),
            NodeSchema::Bool(false) => return Norm::bottom(),
            NodeSchema::Object(k) => k,
        };
        if k.ref_only {
            if let Some(r) = &k.reference {
                return (*self.node_norm(r.target)).clone();
            }
        }
        let dialect = arena.dialect(id);
        let mut n = Norm::top();
        if let Some(t) = k.types {
            n = n.and(
                &Norm::of_types(t, dialect.integer_by_spelling()),
                &mut self.limits,
            );
        }
        if let Some(vals) = &k.enumeration {
            n = n.and(&Norm::of_values(vals), &mut self.limits);
        }
        if let Some(c) = k.constant {
            n = n.and(&Norm::of_values(&[c]), &mut self.limits);
        }

        let mut num = NumConj::default();
        for (value, exclusive) in [(k.minimum, false), (k.exclusive_minimum, true)] {
            if let Some(value) = value {
                num = num
                    .meet(&NumConj {
                        lo: Some(Bound { value, exclusive }),
                        ..NumConj::default()
                    })
                    .unwrap_or_else(empty_num);
            }
        }
        for (value, exclusive) in [(k.maximum, false), (k.exclusive_maximum, true)] {
            if let Some(value) = value {
                num = num
                    .meet(&NumConj {
                        hi: Some(Bound { value, exclusive }),
                        ..NumConj::default()
                    })
                    .unwrap_or_else(empty_num);
            }
        }
        if let Some(m) = k.multiple_of {
            num.multiples.push(m);
        }
        if num != NumConj::default() {
            let d = if interval_empty(num.lo, num.hi) {
                Dnf::bottom()
            } else {
                Dnf::single(num)
            };
            n = n.and(
                &Norm {
                    number: d,
                    ..Norm::top()
                },
                &mut self.limits,
            );
        }

        let mut s = StrConj {
            min: k.min_length.unwrap_or(0),
            max: k.max_length,
            ..StrConj::default()
        };
        let asserts = dialect.asserts_format();
        s.atoms
            .extend(k.pattern.map(|p| (StrAtom::Pattern(p), true)));
        s.atoms
            .extend(k.format.map(|f| (StrAtom::Format(f, asserts), true)));
        s.atoms.extend(
            k.content_encoding
                .map(|f| (StrAtom::Encoding(f, asserts), true)),
        );
        s.atoms.extend(
            k.content_media_type
                .map(|f| (StrAtom::MediaType(f, asserts), true)),
        );
        s.atoms.sort();
        if s != StrConj::default() {
            let d = StrConj::default()
                .meet(&s)
                .map_or_else(Dnf::bottom, Dnf::single);
            n = n.and(
                &Norm {
                    string: d,
                    ..Norm::top()
                },
                &mut self.limits,
            );
        }

        let mut a = ArrConj {
            min: k.min_items.unwrap_or(0),
            max: k.max_items,
            ..ArrConj::default()
        };
        for (i, c) in k.prefix_items.iter().enumerate() {
            let e = self.node_expr(*c);
            if e != Expr::True {
                a.at.push((i, e));
            }
        }
        if let Some(c) = k.items {
            let e = self.node_expr(c);
            if e != Expr::True {
                a.from.push((k.prefix_items.len(), e));
            }
        }
        if k.unique_items {
            a.unique = Some(true);
        }
        if let Some(c) = k.contains {
            let min = k.min_contains.unwrap_or(1);
            if min > 0 || k.max_contains.is_some() {
                a.contains.push(Contains {
                    from: 0,
                    schema: self.node_expr(c),
                    min,
                    max: k.max_contains,
                    positive: true,
                });
            }
        }
        if a != ArrConj::default() {
            let d = ArrConj::default()
                .meet(&a)
                .map_or_else(Dnf::bottom, Dnf::single);
            n = n.and(
                &Norm {
                    array: d,
                    ..Norm::top()
                },
                &mut self.limits,
            );
        }

        let mut props: Vec<(&'a str, Expr)> = Vec::new();
        for (name, c) in &k.properties {
            let e = self.node_expr(*c);
            if e != Expr::True {
                props.push((name, e));
            }
        }
        props.sort_by(|x, y| x.0.cmp(y.0));
        let mut required = k.required.clone();
        required.sort_unstable();
        required.dedup();
        let mut additional = Vec::new();
        if let Some(c) = k.additional_properties {
            let e = self.node_expr(c);
            if e != Expr::True {
                let mut names: Vec<&str> = k.properties.iter().map(|(n, _)| *n).collect();
                names.sort_unstable();
                let mut patterns: Vec<&str> =
                    k.pattern_properties.iter().map(|(p, _)| *p).collect();
                patterns.sort_unstable();
                additional.push(Additional {
                    names: names.into(),
                    patterns: patterns.into(),
                    schema: e,
                });
            }
        }
        let mut patterns = Vec::new();
        for (p, c) in &k.pattern_properties {
            let e = self.node_expr(*c);
            if e != Expr::True {
                patterns.push((*p, e));
            }
        }
        let mut names = Vec::new();
        if let Some(c) = k.property_names {
            let e = self.node_expr(c);
            if e != Expr::True {
                names.push(e);
            }
        }
        let o = ObjConj {
            min: k.min_properties.unwrap_or(0),
            max: k.max_properties,
            props: props.into(),
            required: required.into(),
            additional: additional.into(),
            patterns: patterns.into(),
            names: names.into(),
            ..ObjConj::default()
        };
        let mut obj = if o == ObjConj::default() {
            Dnf::top()
        } else {
            ObjConj::default()
                .meet(&o)
                .map_or_else(Dnf::bottom, Dnf::single)
        };
        for (key, names, _) in &k.dependent_required {
            // "If `key` is present, so are `names`": `key` absent, or all present.
            let mut required = names.clone();
            required.sort_unstable();
            required.dedup();
            let absent = ObjConj {
                props: Shared::one((*key, Expr::False)),
                ..ObjConj::default()
            };
            let present = ObjConj {
                required: required.into(),
                ..ObjConj::default()
            };
            let dep = Dnf {
                terms: vec![absent, present],
                exact: true,
            };
            obj = obj.and(&dep, &mut self.limits);
        }
        if obj != Dnf::top() {
            n = n.and(&Norm::only_objects(obj), &mut self.limits);
        }
        for (key, c, _) in &k.dependent_schemas {
            // "If `key` is present, the object is also valid under the schema."
            let dep = self.node_norm(*c);
            let absent = Dnf::single(ObjConj {
                props: Shared::one((*key, Expr::False)),
                ..ObjConj::default()
            });
            let d = absent.or(&dep.object, &mut self.limits);
            n = n.and(&Norm::only_objects(d), &mut self.limits);
        }

        for c in &k.all_of {
            if n.is_bottom() {
                return n;
            }
            let m = self.node_norm(*c);
            n = n.and(&m, &mut self.limits);
        }
        if !k.any_of.is_empty() && !n.is_bottom() {
            let mut u = Norm::bottom();
            for c in &k.any_of {
                let m = self.node_norm(*c);
                u = u.or(&m, &mut self.limits);
            }
            n = n.and(&u, &mut self.limits);
        }
        if !k.one_of.is_empty() && !n.is_bottom() {
            let u = self.one_of_norm(&k.one_of);
            n = n.and(&u, &mut self.limits);
        }
        if let Some(c) = k.not {
            if !n.is_bottom() {
                let m = self.node_norm(c);
                n = n.and_not(&m, &mut self.limits);
            }
        }
        if let Some(i) = k.if_ {
            if !n.is_bottom() {
                let cond = self.node_norm(i);
                let then = match k.then_ {
                    Some(t) => self.node_norm(t),
                    None => Rc::new(Norm::top()),
                };
                let els = match k.else_ {
                    Some(e) => self.node_norm(e),
                    None => Rc::new(Norm::top()),
                };
                let yes = cond.and(&then, &mut self.limits);
                let no = els.and_not(&cond, &mut self.limits);
                n = n.and(&yes.or(&no, &mut self.limits), &mut self.limits);
            }
        }
        if let Some(r) = &k.reference {
            if !n.is_bottom() {
                let m = self.node_norm(r.target);
                n = n.and(&m, &mut self.limits);
            }
        }
        n
    }

    /// `oneOf`: exactly one branch holds, so the union over `i` of branch `i` without the
    /// others. Null and booleans are counted exactly; beyond [`MAX_ONE_OF`] branches the rest
    /// is over-approximated by `anyOf`.
    fn one_of_norm(&mut self, branches: &[NodeId]) -> Norm<'a> {
        let norms: Vec<Rc<Norm<'a>>> = branches.iter().map(|c| self.node_norm(*c)).collect();
        if norms.len() > MAX_ONE_OF {
            self.limits.hit = true;
            let mut u = Norm::bottom();
            for m in &norms {
                u = u.or(m, &mut self.limits);
            }
            let exactly_one =
                |f: &dyn Fn(&Norm<'a>) -> bool| norms.iter().filter(|m| f(m)).count() == 1;
            u.null = exactly_one(&|m| m.null);
            u.boolean = [
                exactly_one(&|m| m.boolean[0]),
                exactly_one(&|m| m.boolean[1]),
            ];
            u.scalars_exact = norms.iter().all(|m| m.scalars_exact);
            u.number.exact = false;
            u.string.exact = false;
            u.array.exact = false;
            u.object.exact = false;
            return u;
        }
        let mut u = Norm::bottom();
        for (i, m) in norms.iter().enumerate() {
            let mut term = (**m).clone();
            for (j, other) in norms.iter().enumerate() {
                if i != j && !term.is_bottom() {
                    term = term.and_not(other, &mut self.limits);
                }
            }
            u = u.or(&term, &mut self.limits);
        }
        u
    }

    /// The normal form of an expression.
    pub(crate) fn norm(&mut self, e: &Expr) -> Rc<Norm<'a>> {
        match e {
            Expr::True => return Rc::new(Norm::top()),
            Expr::False => return Rc::new(Norm::bottom()),
            Expr::Node(id) => return self.node_norm(*id),
            _ => {}
        }
        if let Some(n) = self.expr_norms.get(e) {
            return n.clone();
        }
        if self.depth >= MAX_DEPTH {
            self.limits.hit = true;
            return Rc::new(Norm::inexact_top());
        }
        self.depth += 1;
        let n = match e {
            Expr::Not(x) => self.norm(x).complement(&mut self.limits),
            Expr::And(xs) => {
                // Positive operands first, then each negated one subtracted from the result:
                // much cheaper than complementing on its own (see `Dnf::and_not`).
                let mut acc = Norm::top();
                for x in xs.iter().filter(|x| !matches!(x, Expr::Not(_))) {
                    let m = self.norm(x);
                    acc = acc.and(&m, &mut self.limits);
                    if acc.is_bottom() {
                        break;
                    }
                }
                for x in xs.iter() {
                    if acc.is_bottom() {
                        break;
                    }
                    if let Expr::Not(inner) = x {
                        let m = self.norm(inner);
                        acc = acc.and_not(&m, &mut self.limits);
                    }
                }
                acc
            }
            Expr::True | Expr::False | Expr::Node(_) => Norm::top(),
        };
        self.depth -= 1;
        let n = Rc::new(n);
        // Complements of subschemas recur (every comparison with the same schema needs one);
        // intersections are mostly asked about once, and their emptiness is cached anyway.
        if matches!(e, Expr::Not(_)) {
            self.expr_norms.insert(e.clone(), n.clone());
        }
        n
    }

    /// Whether the expression accepts no value (proven), coinductively for recursion.
    pub(crate) fn is_empty(&mut self, e: &Expr) -> bool {
        match e {
            Expr::False => return true,
            Expr::True => return false,
            _ => {}
        }
        if let Some(&r) = self.empty_cache.get(e) {
            return r;
        }
        if let Some(&d) = self.in_progress.get(e) {
            // Met again one level down: assume empty (see the module docs).
            self.low = self.low.min(d);
            return true;
        }
        if self.identical_contradiction(e) {
            return true;
        }
        if self.steps >= BUDGET || self.stack >= MAX_STACK {
            self.limits.hit = true;
            return false;
        }
        self.steps += 1;
        let depth = self.stack;
        self.in_progress.insert(e.clone(), depth);
        self.stack += 1;
        let saved_low = self.low;
        self.low = usize::MAX;
        let result = self.plain_object_inclusion(e)
            || match e {
                Expr::And(xs) if xs.iter().any(|x| matches!(x, Expr::Not(_))) => {
                    self.difference_empty(xs)
                }
                _ => {
                    let norm = self.norm(e);
                    if !norm.is_exact() {
                        self.limits.hit = true;
                    }
                    self.norm_empty(&norm)
                }
            };
        let my_low = self.low;
        self.stack -= 1;
        self.in_progress.remove(e);
        if result && my_low < depth {
            // Depends on an assumption about an expression still being decided: valid only if
            // that one turns out empty too, so do not cache.
            self.low = saved_low.min(my_low);
        } else {
            // "Not empty" never depends on assumptions (they only ever say "empty").
            self.empty_cache.insert(e.clone(), result);
            self.low = saved_low;
        }
        result
    }

    /// A shortcut for the most common question, "is this object schema included in that
    /// one?", when both are plain (only `type`, `properties`, `required` and
    /// `additionalProperties`, besides annotations): structural subtyping is then sufficient —
    /// the types are included, every property the new schema requires is required by the old
    /// one, and every property value (listed, or under `additionalProperties`) the old schema
    /// allows is allowed by the new one. It only ever answers "included" (a proof); anything
    /// else goes to the general procedure. It avoids building the normal form of a complement,
    /// whose size grows with the number of properties.
    fn plain_object_inclusion(&mut self, e: &Expr) -> bool {
        let Expr::And(items) = e else {
            return false;
        };
        let [Expr::Node(sub), Expr::Not(sup)] = &items[..] else {
            return false;
        };
        let Expr::Node(sup) = &**sup else {
            return false;
        };
        let arena = self.arena;
        let (Some(a), Some(b)) = (arena.keywords(*sub), arena.keywords(*sup)) else {
            return false;
        };
        if !(a.is_plain_object() && b.is_plain_object()) {
            return false;
        }
        let (ta, tb) = (
            types::closed(a.types.unwrap_or(types::ALL)),
            types::closed(b.types.unwrap_or(types::ALL)),
        );
        if ta & tb != ta {
            return false;
        }
        // A draft 4 `integer` excludes `1.0`, which other drafts' integers and numbers include.
        let spelled = |id: NodeId| arena.dialect(id).integer_by_spelling();
        if spelled(*sup) && !spelled(*sub) && tb & types::NUMBER == 0 && ta & types::INTEGER != 0 {
            return false;
        }
        if ta & types::OBJECT == 0 {
            return true;
        }
        if !b.required.iter().all(|r| a.required.contains(r)) {
            return false;
        }
        let rest_a = a
            .additional_properties
            .map_or(Expr::True, |c| self.node_expr(c));
        let rest_b = b
            .additional_properties
            .map_or(Expr::True, |c| self.node_expr(c));
        for (name, c) in &b.properties {
            let value_a = match a.properties.iter().find(|(n, _)| n == name) {
                Some((_, c)) => self.node_expr(*c),
                None => rest_a.clone(),
            };
            let value_b = self.node_expr(*c);
            if !self.includes_expr(&value_a, &value_b) {
                return false;
            }
        }
        for (name, c) in &a.properties {
            if !b.properties.iter().any(|(n, _)| n == name) {
                let value_a = self.node_expr(*c);
                if !self.includes_expr(&value_a, &rest_b) {
                    return false;
                }
            }
        }
        rest_a.is_false() || self.includes_expr(&rest_a, &rest_b)
    }

    /// Emptiness of `p1 ∧ … ∧ ¬n1 ∧ …` without building its normal form: each term of the
    /// positive part is met with one negated literal of each term of each negative part in
    /// turn, depth first, stopping at the first combination that is not empty. Answers "not
    /// empty" (which was going to be found anyway) without materialising the rest of the
    /// product, and prunes contradictions as soon as they appear.
    fn difference_empty(&mut self, xs: &[Expr]) -> bool {
        let mut pos = Norm::top();
        for x in xs.iter().filter(|x| !matches!(x, Expr::Not(_))) {
            let m = self.norm(x);
            pos = pos.and(&m, &mut self.limits);
            if pos.is_bottom() {
                return true;
            }
        }
        let negs: Vec<Rc<Norm<'a>>> = xs
            .iter()
            .filter_map(|x| match x {
                Expr::Not(inner) => Some(self.norm(inner)),
                _ => None,
            })
            .collect();
        // A negated part that is over-approximated cannot be subtracted: leaving it out
        // over-approximates the difference, which is safe.
        let scalars =
            |f: &dyn Fn(&Norm<'a>) -> bool| negs.iter().all(|n| !(n.scalars_exact && f(n)));
        if (pos.null && scalars(&|n| n.null))
            || (pos.boolean[0] && scalars(&|n| n.boolean[0]))
            || (pos.boolean[1] && scalars(&|n| n.boolean[1]))
        {
            return false;
        }
        // Over-approximated parts (a limit was reached when they were built, perhaps for an
        // earlier question) make the answer conservative: say so.
        if !pos.is_exact() || negs.iter().any(|n| !n.is_exact()) {
            self.limits.hit = true;
        }
        let num: Vec<Vec<NumConj>> = negs
            .iter()
            .filter(|n| n.number.exact)
            .flat_map(|n| n.number.terms.iter().map(Conj::negations))
            .collect();
        for t in &pos.number.terms {
            if self.witness(t, &num, &mut |_, c| num_empty(c)) {
                return false;
            }
        }
        let strs: Vec<Vec<StrConj<'a>>> = negs
            .iter()
            .filter(|n| n.string.exact)
            .flat_map(|n| n.string.terms.iter().map(Conj::negations))
            .collect();
        let arena = self.arena;
        for t in &pos.string.terms {
            if self.witness(t, &strs, &mut |d, c| d.str_empty(arena, c)) {
                return false;
            }
        }
        let arrs: Vec<Vec<ArrConj<'a>>> = negs
            .iter()
            .filter(|n| n.array.exact)
            .flat_map(|n| n.array.terms.iter().map(Conj::negations))
            .collect();
        for t in &pos.array.terms {
            if self.witness(t, &arrs, &mut |d, c| d.arr_empty(c)) {
                return false;
            }
        }
        let objs: Vec<Vec<ObjConj<'a>>> = negs
            .iter()
            .filter(|n| n.object.exact)
            .flat_map(|n| n.object.terms.iter().map(Conj::negations))
            .collect();
        for t in &pos.object.terms {
            if self.witness(t, &objs, &mut |d, c| d.obj_empty(c)) {
                return false;
            }
        }
        true
    }

    /// Whether `t` met with one literal from each layer can be non-empty (see
    /// [`Self::difference_empty`]). Beyond a number of combinations it gives up, answering
    /// "maybe non-empty".
    fn witness<C: Conj>(
        &mut self,
        t: &C,
        layers: &[Vec<C>],
        empty: &mut dyn FnMut(&mut Self, &C) -> bool,
    ) -> bool {
        let mut visited = 0usize;
        self.witness_from(t, layers, empty, &mut visited)
    }

    fn witness_from<C: Conj>(
        &mut self,
        t: &C,
        layers: &[Vec<C>],
        empty: &mut dyn FnMut(&mut Self, &C) -> bool,
        visited: &mut usize,
    ) -> bool {
        *visited += 1;
        if *visited > 4 * MAX_TERMS {
            self.limits.hit = true;
            return true;
        }
        let Some((first, rest)) = layers.split_first() else {
            return !empty(self, t);
        };
        for n in first {
            if let Some(m) = t.meet(n) {
                if self.witness_from(&m, rest, empty, visited) {
                    return true;
                }
            }
        }
        false
    }

    /// `x ∧ ¬y` where `x` and `y` are written identically.
    fn identical_contradiction(&mut self, e: &Expr) -> bool {
        let Expr::And(items) = e else {
            return false;
        };
        let nodes: Vec<NodeId> = items
            .iter()
            .filter_map(|i| match i {
                Expr::Node(n) => Some(*n),
                _ => None,
            })
            .collect();
        if nodes.is_empty() {
            return false;
        }
        items.iter().any(|i| match i {
            Expr::Not(inner) => match &**inner {
                Expr::Node(m) => nodes.iter().any(|&n| self.same_schema(n, *m)),
                _ => false,
            },
            _ => false,
        })
    }

    fn norm_empty(&mut self, n: &Norm<'a>) -> bool {
        if n.null || n.boolean[0] || n.boolean[1] {
            return false;
        }
        if !n.number.terms.iter().all(num_empty) {
            return false;
        }
        let arena = self.arena;
        if !n.string.terms.iter().all(|t| self.str_empty(arena, t)) {
            return false;
        }
        for t in &n.array.terms {
            if !self.arr_empty(t) {
                return false;
            }
        }
        for t in &n.object.terms {
            if !self.obj_empty(t) {
                return false;
            }
        }
        true
    }

    fn str_empty(&self, arena: &Arena<'a>, c: &StrConj<'a>) -> bool {
        if c.max.is_some_and(|m| m < c.min) {
            return true;
        }
        if let Some(vals) = &c.one_of {
            return vals.iter().all(|s| !str_may_satisfy(arena, c, s));
        }
        if c.max == Some(0) {
            return !str_may_satisfy(arena, c, "");
        }
        false
    }

    /// The item schema at a position: positional and "from here on" literals that apply.
    fn position(c: &ArrConj<'a>, p: usize) -> Expr {
        let at = c.at.iter().filter(|(q, _)| *q == p).map(|(_, e)| e.clone());
        let from = c
            .from
            .iter()
            .filter(|(k, _)| *k <= p)
            .map(|(_, e)| e.clone());
        Expr::and(at.chain(from))
    }

    fn arr_empty(&mut self, c: &ArrConj<'a>) -> bool {
        let min = c.min;
        let mut max = c.max;
        if max.is_some_and(|m| m < min) {
            return true;
        }
        // Past this position, every position has the same item schema.
        let bound =
            c.at.iter()
                .map(|(p, _)| p + 1)
                .chain(c.from.iter().map(|(k, _)| *k))
                .chain(c.contains.iter().map(|x| x.from))
                .max()
                .unwrap_or(0);
        let mut capped = false;
        for p in 0..bound {
            if max.is_some_and(|m| p as u64 >= m) {
                capped = true;
                break;
            }
            if self.is_empty(&Self::position(c, p)) {
                max = Some(p as u64);
                capped = true;
                break;
            }
        }
        let rest = Self::position(c, bound);
        if !capped && max.is_none_or(|m| m > bound as u64) && self.is_empty(&rest) {
            max = Some(bound as u64);
        }
        if max.is_some_and(|m| m < min) {
            return true;
        }
        for ct in c.contains.iter().filter(|x| x.positive && x.min >= 1) {
            let need = (ct.from as u64).saturating_add(ct.min);
            if max.is_some_and(|m| m < need) {
                return true;
            }
            let mut any = false;
            for p in ct.from..bound {
                if max.is_some_and(|m| p as u64 >= m) {
                    break;
                }
                let e = Expr::and([Self::position(c, p), ct.schema.clone()]);
                if !self.is_empty(&e) {
                    any = true;
                    break;
                }
            }
            if !any && max.is_none_or(|m| m > bound.max(ct.from) as u64) {
                let e = Expr::and([rest.clone(), ct.schema.clone()]);
                any = !self.is_empty(&e);
            }
            if !any {
                return true;
            }
        }
        for pos in c.contains.iter().filter(|x| x.positive) {
            for neg in c.contains.iter().filter(|x| !x.positive) {
                if implies(pos, neg) {
                    return true;
                }
            }
        }
        if c.unique == Some(false) && max.is_some_and(|m| m < 2) {
            return true;
        }
        if let Some(vals) = &c.one_of {
            let vals = vals.clone();
            return vals.iter().all(|v| match v {
                Value::Array(items) => !self.arr_may_satisfy(c, items),
                _ => true,
            });
        }
        if max == Some(0) {
            return !self.arr_may_satisfy(c, &[]);
        }
        false
    }

    /// The schema the value of a literal property name certainly has to satisfy: its
    /// `properties` entries, the patterns it matches, and `additionalProperties` where it
    /// certainly applies.
    fn value_expr(&self, c: &ObjConj<'a>, name: &str) -> Expr {
        let oracle = &self.arena.oracle;
        let mut parts: Vec<Expr> = Vec::new();
        if let Some(e) = c.prop(name) {
            parts.push(e.clone());
        }
        for (p, e) in c.patterns.iter() {
            if oracle.matches(p, name) == Some(true) {
                parts.push(e.clone());
            }
        }
        for a in c.additional.iter() {
            if a.names.binary_search(&name).is_err()
                && a.patterns
                    .iter()
                    .all(|p| oracle.matches(p, name) == Some(false))
            {
                parts.push(a.schema.clone());
            }
        }
        Expr::and(parts)
    }

    fn name_allowed(&mut self, c: &ObjConj<'a>, name: &str) -> bool {
        let v = Value::String(name.to_owned());
        c.names.iter().all(|s| self.may_match(s, &v))
    }

    fn known_names(c: &ObjConj<'a>) -> BTreeSet<&'a str> {
        let mut out: BTreeSet<&'a str> = c.props.iter().map(|(n, _)| *n).collect();
        out.extend(c.required.iter().copied());
        for a in c.additional.iter().chain(c.has_additional.iter()) {
            out.extend(a.names.iter().copied());
        }
        out
    }

    /// Whether some property outside `h.names`/`h.patterns` may have its value in `h.schema`.
    fn additional_witness(&mut self, c: &ObjConj<'a>, h: &Additional<'a>) -> bool {
        for m in Self::known_names(c) {
            if h.names.contains(&m)
                || h.patterns
                    .iter()
                    .any(|p| self.arena.oracle.matches(p, m) == Some(true))
            {
                continue;
            }
            if !self.name_allowed(c, m) {
                continue;
            }
            let e = Expr::and([self.value_expr(c, m), h.schema.clone()]);
            if !self.is_empty(&e) {
                return true;
            }
        }
        // A name no literal mentions: every `additionalProperties` whose patterns are among
        // `h.patterns` certainly applies to it.
        let mut parts = vec![h.schema.clone()];
        for a in c.additional.iter() {
            if a.patterns.iter().all(|p| h.patterns.contains(p)) {
                parts.push(a.schema.clone());
            }
        }
        !self.is_empty(&Expr::and(parts))
    }

    /// Whether some property matching `pattern` may have its value in `schema`.
    fn pattern_witness(
        &mut self,
        c: &ObjConj<'a>,
        pattern: &str,
        schema: &Expr,
        closed: bool,
    ) -> bool {
        for m in Self::known_names(c) {
            if self.arena.oracle.matches(pattern, m) == Some(false) || !self.name_allowed(c, m) {
                continue;
            }
            let e = Expr::and([self.value_expr(c, m), schema.clone()]);
            if !self.is_empty(&e) {
                return true;
            }
        }
        if closed {
            // Every name outside the listed ones is forbidden.
            return false;
        }
        let mut parts = vec![schema.clone()];
        for (p, e) in c.patterns.iter() {
            if *p == pattern {
                parts.push(e.clone());
            }
        }
        !self.is_empty(&Expr::and(parts))
    }

    fn obj_empty(&mut self, c: &ObjConj<'a>) -> bool {
        if c.max
            .is_some_and(|m| m < c.min || (c.required.len() as u64) > m)
        {
            return true;
        }
        for n in c.required.iter() {
            if !self.name_allowed(c, n) {
                return true;
            }
            let v = self.value_expr(c, n);
            if self.is_empty(&v) {
                return true;
            }
        }
        // An `additionalProperties` that accepts nothing, without patterns, closes the object:
        // only its listed names can be present.
        let mut allowed: Option<BTreeSet<&'a str>> = None;
        for a in c.additional.iter() {
            if a.patterns.is_empty() && self.is_empty(&a.schema) {
                let names: BTreeSet<&'a str> = a.names.iter().copied().collect();
                allowed = Some(match allowed {
                    Some(prev) => prev.intersection(&names).copied().collect(),
                    None => names,
                });
            }
        }
        let closed = allowed.is_some();
        if let Some(names) = allowed {
            // Counting the names that can really be present costs an emptiness check per
            // name: only worth it when a minimum could exceed it.
            if c.min > names.len() as u64 {
                return true;
            }
            if c.min > 0 {
                let mut count = 0u64;
                for m in names {
                    if self.name_allowed(c, m) {
                        let v = self.value_expr(c, m);
                        if !self.is_empty(&v) {
                            count += 1;
                        }
                    }
                }
                if c.min > count {
                    return true;
                }
            }
        }
        let existential =
            !c.has_additional.is_empty() || !c.has_pattern.is_empty() || !c.has_name.is_empty();
        if existential && c.max == Some(0) {
            return true;
        }
        for h in c.has_additional.iter() {
            if !self.additional_witness(c, h) {
                return true;
            }
        }
        for (p, s) in c.has_pattern.iter() {
            if !self.pattern_witness(c, p, s, closed) {
                return true;
            }
        }
        for s in c.has_name.iter() {
            let e = Expr::and(std::iter::once(s.clone()).chain(c.names.iter().cloned()));
            if self.is_empty(&e) {
                return true;
            }
        }
        if let Some(vals) = &c.one_of {
            let vals = vals.clone();
            return vals.iter().all(|v| match v {
                Value::Object(_) => !self.obj_may_satisfy(c, v),
                _ => true,
            });
        }
        if c.max == Some(0) {
            return !self.obj_may_satisfy(c, &Value::Object(serde_json::Map::new()));
        }
        false
    }

    /// Whether `v` may be valid under `e`: `false` only when it certainly is not.
    pub(crate) fn may_match(&mut self, e: &Expr, v: &Value) -> bool {
        match e {
            Expr::True => return true,
            Expr::False => return false,
            _ => {}
        }
        if self.stack >= MAX_STACK {
            self.limits.hit = true;
            return true;
        }
        self.stack += 1;
        let n = self.norm(e);
        let arena = self.arena;
        let r = match v {
            Value::Null => n.null || !n.scalars_exact,
            Value::Bool(b) => n.boolean[usize::from(*b)] || !n.scalars_exact,
            Value::Number(x) => match Num::of(x) {
                Some(num) => n.number.terms.iter().any(|t| num_may_satisfy(t, num)),
                None => true,
            },
            Value::String(s) => n.string.terms.iter().any(|t| str_may_satisfy(arena, t, s)),
            Value::Array(items) => {
                let mut any = false;
                for t in &n.array.terms {
                    if self.arr_may_satisfy(t, items) {
                        any = true;
                        break;
                    }
                }
                any
            }
            Value::Object(_) => {
                let mut any = false;
                for t in &n.object.terms {
                    if self.obj_may_satisfy(t, v) {
                        any = true;
                        break;
                    }
                }
                any
            }
        };
        self.stack -= 1;
        r
    }

    fn arr_may_satisfy(&mut self, c: &ArrConj<'a>, items: &[Value]) -> bool {
        let len = items.len() as u64;
        if len < c.min || c.max.is_some_and(|m| len > m) {
            return false;
        }
        let as_value = || Value::Array(items.to_vec());
        if let Some(vals) = &c.one_of {
            let v = as_value();
            if !vals.iter().any(|w| json_equal(w, &v)) {
                return false;
            }
        }
        if !c.not_in.is_empty() {
            let v = as_value();
            if c.not_in.iter().any(|w| json_equal(w, &v)) {
                return false;
            }
        }
        match c.unique {
            Some(true) if has_duplicates(items) => return false,
            Some(false) if !has_duplicates(items) => return false,
            _ => {}
        }
        for (p, e) in &c.at {
            if let Some(item) = items.get(*p) {
                if !self.may_match(e, item) {
                    return false;
                }
            }
        }
        for (k, e) in &c.from {
            for item in items.iter().skip(*k) {
                if !self.may_match(e, item) {
                    return false;
                }
            }
        }
        for ct in c.contains.iter().filter(|x| x.positive) {
            let mut possible = 0u64;
            for item in items.iter().skip(ct.from) {
                if self.may_match(&ct.schema, item) {
                    possible += 1;
                }
            }
            if possible < ct.min {
                return false;
            }
        }
        true
    }

    fn obj_may_satisfy(&mut self, c: &ObjConj<'a>, v: &Value) -> bool {
        let Value::Object(map) = v else {
            return false;
        };
        let oracle = &self.arena.oracle;
        let len = map.len() as u64;
        if len < c.min || c.max.is_some_and(|m| len > m) {
            return false;
        }
        if c.required.iter().any(|r| !map.contains_key(*r)) {
            return false;
        }
        if let Some(vals) = &c.one_of {
            if !vals.iter().any(|w| json_equal(w, v)) {
                return false;
            }
        }
        if c.not_in.iter().any(|w| json_equal(w, v)) {
            return false;
        }
        for (name, e) in c.props.iter() {
            if let Some(x) = map.get(*name) {
                if !self.may_match(e, x) {
                    return false;
                }
            }
        }
        for (key, x) in map {
            for (p, e) in c.patterns.iter() {
                if oracle.matches(p, key) == Some(true) && !self.may_match(e, x) {
                    return false;
                }
            }
            for a in c.additional.iter() {
                let applies = a.names.binary_search(&key.as_str()).is_err()
                    && a.patterns
                        .iter()
                        .all(|p| oracle.matches(p, key) == Some(false));
                if applies && !self.may_match(&a.schema, x) {
                    return false;
                }
            }
            let name = Value::String(key.clone());
            for s in c.names.iter() {
                if !self.may_match(s, &name) {
                    return false;
                }
            }
        }
        for h in c.has_additional.iter() {
            let mut found = false;
            for (key, x) in map {
                let maybe_additional = h.names.binary_search(&key.as_str()).is_err()
                    && h.patterns
                        .iter()
                        .all(|p| oracle.matches(p, key) != Some(true));
                if maybe_additional && self.may_match(&h.schema, x) {
                    found = true;
                    break;
                }
            }
            if !found {
                return false;
            }
        }
        for (p, s) in c.has_pattern.iter() {
            let mut found = false;
            for (key, x) in map {
                if oracle.matches(p, key) != Some(false) && self.may_match(s, x) {
                    found = true;
                    break;
                }
            }
            if !found {
                return false;
            }
        }
        for s in c.has_name.iter() {
            let mut found = false;
            for key in map.keys() {
                if self.may_match(s, &Value::String(key.clone())) {
                    found = true;
                    break;
                }
            }
            if !found {
                return false;
            }
        }
        true
    }
}

/// A number conjunction that accepts nothing (used when bounds of one schema contradict).
fn empty_num() -> NumConj {
    NumConj {
        lo: Some(Bound {
            value: 1.0,
            exclusive: false,
        }),
        hi: Some(Bound {
            value: 0.0,
            exclusive: false,
        }),
        ..NumConj::default()
    }
}

/// Whether "between `pos.min` and `pos.max` items in S" implies "between `neg.min` and
/// `neg.max` items in S", which contradicts the negated `neg`.
fn implies(pos: &Contains, neg: &Contains) -> bool {
    pos.from == neg.from
        && pos.schema == neg.schema
        && pos.min >= neg.min
        && match neg.max {
            None => true,
            Some(nm) => pos.max.is_some_and(|pm| pm <= nm),
        }
}

fn num_may_satisfy(c: &NumConj, v: Num) -> bool {
    in_interval(v.value, c.lo, c.hi)
        && c.multiples.iter().all(|&m| validator_multiple(v.value, m))
        && !c
            .not_multiples
            .iter()
            .any(|&m| validator_multiple(v.value, m))
        && c.one_of
            .as_ref()
            .is_none_or(|vals| vals.iter().any(|w| w.value == v.value))
        && !c.not_in.iter().any(|w| w.value == v.value)
        && c.integral_spelling.is_none_or(|s| s == v.integral_spelling)
}

/// Largest magnitude at which integer arithmetic in `f64` is exact.
const EXACT: f64 = 9_007_199_254_740_992.0;

fn num_empty(c: &NumConj) -> bool {
    if interval_empty(c.lo, c.hi) {
        return true;
    }
    if let Some(vals) = &c.one_of {
        return vals.iter().all(|v| !num_may_satisfy(c, *v));
    }
    // Every multiple of m is a multiple of n: "multiple of m, not of n" is empty.
    if c.multiples.iter().any(|&m| {
        c.not_multiples
            .iter()
            .any(|&n| is_multiple(m, n) == Some(true))
    }) {
        return true;
    }
    let (Some(lo), Some(hi)) = (c.lo, c.hi) else {
        return false;
    };
    if c.multiples.is_empty() {
        // A single point is the only bounded interval a finite exclusion can empty.
        if lo.value == hi.value {
            let x = lo.value;
            return c.not_in.iter().any(|w| w.value == x)
                || c.not_multiples.iter().any(|&m| validator_multiple(x, m));
        }
        return false;
    }
    // Integer steps only: then the arithmetic below is exact.
    let Some(step) = lcm(&c.multiples) else {
        return false;
    };
    if lo.value.abs() >= EXACT || hi.value.abs() >= EXACT {
        return false;
    }
    let mut first = (lo.value / step).ceil() * step;
    while !in_interval(first, Some(lo), None) {
        first += step;
    }
    let mut x = first;
    let mut seen = 0;
    while in_interval(x, None, Some(hi)) {
        if seen >= MAX_ENUMERATED {
            return false;
        }
        let excluded = c.not_in.iter().any(|w| w.value == x)
            || c.not_multiples.iter().any(|&m| validator_multiple(x, m));
        if !excluded {
            return false;
        }
        seen += 1;
        x += step;
    }
    true
}

fn str_may_satisfy(arena: &Arena<'_>, c: &StrConj<'_>, s: &str) -> bool {
    let len = s.chars().count() as u64;
    if len < c.min || c.max.is_some_and(|m| len > m) {
        return false;
    }
    if c.one_of.as_ref().is_some_and(|vals| !vals.contains(&s)) || c.not_in.contains(&s) {
        return false;
    }
    c.atoms.iter().all(|(atom, positive)| {
        let holds = match atom {
            StrAtom::Pattern(p) => arena.oracle.matches(p, s),
            StrAtom::Format(f, true) => arena.oracle.format_valid(f, s),
            // Annotation-only formats and content keywords: undecided.
            StrAtom::Format(_, false) | StrAtom::Encoding(..) | StrAtom::MediaType(..) => None,
        };
        holds != Some(!positive)
    })
}
