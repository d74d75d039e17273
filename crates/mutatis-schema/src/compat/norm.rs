//! Normal forms: a schema as a union of per-JSON-type constraint sets.
//!
//! A JSON value has exactly one type, so a schema is the disjoint union of what it accepts of
//! each type: some nulls, some booleans, and for numbers, strings, arrays and objects a
//! disjunction (DNF) of conjunctions of literals. Every literal has an exact negation that is
//! again a (small) conjunction of literals, so intersection, union and complement are all exact
//! operations on normal forms, which is what makes `not`, `oneOf` and `if`/`then`/`else`, and
//! inclusion itself (`A ⊆ B` iff `A ∧ ¬B` is empty), decidable the same way as everything else.
//!
//! Literals about parts of a value (items, property values, property names) hold their
//! subschema as a lazy [`Expr`], so normalising a recursive schema stops at one level.
//!
//! Sizes are capped. When an operation would exceed [`MAX_TERMS`] terms it returns an
//! over-approximation (a superset of the true set) and marks the result inexact; the complement
//! of an inexact form is "everything". Deciding emptiness of an over-approximation is sound for
//! inclusion, which is the only question asked: a capped check can only answer "not proven".

use std::rc::Rc;

use serde_json::Value;

use super::expr::Expr;
use super::json::json_equal;
use super::schema::types;

/// The largest number of terms a disjunction may have before it is over-approximated.
pub(crate) const MAX_TERMS: usize = 2048;

/// Records that an over-approximation was taken, so a negative verdict can say it may be an
/// artefact of the limits.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Limits {
    pub hit: bool,
}

/// A conjunction of literals about values of one JSON type.
pub(crate) trait Conj: Clone + PartialEq + Default {
    /// The conjunction of both, or `None` when it is obviously empty.
    fn meet(&self, other: &Self) -> Option<Self>;
    /// The complement as a disjunction of conjunctions (one per literal).
    fn negations(&self) -> Vec<Self>;
}

/// A disjunction of conjunctions. `exact` is false when the set is an over-approximation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dnf<C> {
    pub terms: Vec<C>,
    pub exact: bool,
}

impl<C: Conj> Dnf<C> {
    pub(crate) fn top() -> Self {
        Dnf {
            terms: vec![C::default()],
            exact: true,
        }
    }

    pub(crate) fn bottom() -> Self {
        Dnf {
            terms: Vec::new(),
            exact: true,
        }
    }

    pub(crate) fn single(c: C) -> Self {
        Dnf {
            terms: vec![c],
            exact: true,
        }
    }

    fn inexact_top(limits: &mut Limits) -> Self {
        limits.hit = true;
        Dnf {
            terms: vec![C::default()],
            exact: false,
        }
    }

    pub(crate) fn is_top(&self) -> bool {
        self.terms.iter().any(|t| *t == C::default())
    }

    fn dedup(terms: &mut Vec<C>) {
        // Quadratic, so only for small lists; duplicates in long ones only cost time.
        if terms.len() <= 64 {
            let mut out: Vec<C> = Vec::with_capacity(terms.len());
            for t in terms.drain(..) {
                if !out.contains(&t) {
                    out.push(t);
                }
            }
            *terms = out;
        }
    }

    pub(crate) fn or(&self, other: &Self, limits: &mut Limits) -> Self {
        let exact = self.exact && other.exact;
        if self.is_top() || other.is_top() {
            return Dnf {
                terms: vec![C::default()],
                exact,
            };
        }
        if self.terms.len() + other.terms.len() > MAX_TERMS {
            return Self::inexact_top(limits);
        }
        let mut terms = self.terms.clone();
        terms.extend(other.terms.iter().cloned());
        Self::dedup(&mut terms);
        Dnf { terms, exact }
    }

    pub(crate) fn and(&self, other: &Self, limits: &mut Limits) -> Self {
        let exact = self.exact && other.exact;
        if self.terms.is_empty() || other.terms.is_empty() {
            return Self::bottom();
        }
        if self.terms.len() == 1 && self.terms[0] == C::default() {
            return Dnf {
                terms: other.terms.clone(),
                exact,
            };
        }
        if other.terms.len() == 1 && other.terms[0] == C::default() {
            return Dnf {
                terms: self.terms.clone(),
                exact,
            };
        }
        if self.terms.len().saturating_mul(other.terms.len()) > MAX_TERMS {
            // Either operand contains the intersection: keep the smaller one.
            limits.hit = true;
            let smaller = if self.terms.len() <= other.terms.len() {
                self
            } else {
                other
            };
            return Dnf {
                terms: smaller.terms.clone(),
                exact: false,
            };
        }
        let mut terms = Vec::with_capacity(self.terms.len() * other.terms.len());
        for a in &self.terms {
            for b in &other.terms {
                if let Some(m) = a.meet(b) {
                    terms.push(m);
                }
            }
        }
        // Not deduplicated: comparing large conjunctions costs more than the duplicates do.
        Dnf { terms, exact }
    }

    /// `self ∧ ¬other`, term by term: each term of `self` is met with the negations of each
    /// term of `other` in turn, so contradictions prune the product as it grows (much smaller
    /// than complementing `other` on its own first).
    pub(crate) fn and_not(&self, other: &Self, limits: &mut Limits) -> Self {
        if !other.exact {
            // The complement of an over-approximation would be an under-approximation, which
            // is unsound; `self` itself is a safe over-approximation of `self ∧ ¬other`.
            return Dnf {
                terms: self.terms.clone(),
                exact: false,
            };
        }
        let mut exact = self.exact;
        let negations: Vec<Vec<C>> = other.terms.iter().map(Conj::negations).collect();
        let mut out: Vec<C> = Vec::new();
        for t in &self.terms {
            let mut acc = vec![t.clone()];
            for negs in &negations {
                if acc.len().saturating_mul(negs.len()) > MAX_TERMS {
                    // Skipping this term of `other` over-approximates.
                    limits.hit = true;
                    exact = false;
                    continue;
                }
                let mut next = Vec::with_capacity(acc.len() * negs.len());
                for a in &acc {
                    for n in negs {
                        if let Some(m) = a.meet(n) {
                            next.push(m);
                        }
                    }
                }
                acc = next;
                if acc.is_empty() {
                    break;
                }
            }
            out.extend(acc);
            if out.len() > MAX_TERMS {
                limits.hit = true;
                return Dnf {
                    terms: self.terms.clone(),
                    exact: false,
                };
            }
        }
        Dnf { terms: out, exact }
    }
}

/// A numeric bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bound {
    pub value: f64,
    pub exclusive: bool,
}

/// A number from an `enum` or `const`, with whether it was written without a fraction (draft 4
/// `integer` asks for that).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Num {
    pub value: f64,
    pub integral_spelling: bool,
}

impl Num {
    pub(crate) fn of(n: &serde_json::Number) -> Option<Num> {
        Some(Num {
            value: n.as_f64()?,
            integral_spelling: n.is_i64() || n.is_u64(),
        })
    }
}

/// Literals about numbers.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct NumConj {
    pub lo: Option<Bound>,
    pub hi: Option<Bound>,
    pub multiples: Vec<f64>,
    pub not_multiples: Vec<f64>,
    pub one_of: Option<Vec<Num>>,
    pub not_in: Vec<Num>,
    /// Draft 4 `integer`: written without a fraction (`Some(true)`) or with one.
    pub integral_spelling: Option<bool>,
}

fn tighter_lo(a: Option<Bound>, b: Option<Bound>) -> Option<Bound> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if x.value > y.value {
            x
        } else if y.value > x.value {
            y
        } else {
            Bound {
                value: x.value,
                exclusive: x.exclusive || y.exclusive,
            }
        }),
        (x, None) => x,
        (None, y) => y,
    }
}

fn tighter_hi(a: Option<Bound>, b: Option<Bound>) -> Option<Bound> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if x.value < y.value {
            x
        } else if y.value < x.value {
            y
        } else {
            Bound {
                value: x.value,
                exclusive: x.exclusive || y.exclusive,
            }
        }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Whether the interval between the bounds is empty.
pub(crate) fn interval_empty(lo: Option<Bound>, hi: Option<Bound>) -> bool {
    match (lo, hi) {
        (Some(l), Some(h)) => {
            l.value > h.value || (l.value == h.value && (l.exclusive || h.exclusive))
        }
        _ => false,
    }
}

pub(crate) fn in_interval(x: f64, lo: Option<Bound>, hi: Option<Bound>) -> bool {
    let above = lo.is_none_or(|l| {
        if l.exclusive {
            x > l.value
        } else {
            x >= l.value
        }
    });
    let below = hi.is_none_or(|h| {
        if h.exclusive {
            x < h.value
        } else {
            x <= h.value
        }
    });
    above && below
}

fn union<T: PartialEq + Clone>(a: &[T], b: &[T]) -> Vec<T> {
    let mut out = a.to_vec();
    for x in b {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}

fn intersect_by<T: Clone>(
    a: &Option<Vec<T>>,
    b: &Option<Vec<T>>,
    eq: impl Fn(&T, &T) -> bool,
) -> Option<Vec<T>> {
    match (a, b) {
        (Some(x), Some(y)) => Some(
            x.iter()
                .filter(|v| y.iter().any(|w| eq(v, w)))
                .cloned()
                .collect(),
        ),
        (Some(x), None) => Some(x.clone()),
        (None, Some(y)) => Some(y.clone()),
        (None, None) => None,
    }
}

impl Conj for NumConj {
    fn meet(&self, o: &Self) -> Option<Self> {
        let lo = tighter_lo(self.lo, o.lo);
        let hi = tighter_hi(self.hi, o.hi);
        if interval_empty(lo, hi) {
            return None;
        }
        let multiples = union(&self.multiples, &o.multiples);
        let not_multiples = union(&self.not_multiples, &o.not_multiples);
        if multiples.iter().any(|m| not_multiples.contains(m)) {
            return None;
        }
        let integral_spelling = match (self.integral_spelling, o.integral_spelling) {
            (Some(a), Some(b)) if a != b => return None,
            (a, b) => a.or(b),
        };
        let not_in = union(&self.not_in, &o.not_in);
        let one_of = intersect_by(&self.one_of, &o.one_of, |a, b| a.value == b.value).map(|vals| {
            vals.into_iter()
                .filter(|v| {
                    in_interval(v.value, lo, hi)
                        && !not_in.iter().any(|n| n.value == v.value)
                        && integral_spelling.is_none_or(|s| s == v.integral_spelling)
                })
                .collect::<Vec<_>>()
        });
        if one_of.as_ref().is_some_and(Vec::is_empty) {
            return None;
        }
        Some(NumConj {
            lo,
            hi,
            multiples,
            not_multiples,
            one_of,
            not_in,
            integral_spelling,
        })
    }

    fn negations(&self) -> Vec<Self> {
        let mut out = Vec::new();
        if let Some(b) = self.lo {
            out.push(NumConj {
                hi: Some(Bound {
                    value: b.value,
                    exclusive: !b.exclusive,
                }),
                ..NumConj::default()
            });
        }
        if let Some(b) = self.hi {
            out.push(NumConj {
                lo: Some(Bound {
                    value: b.value,
                    exclusive: !b.exclusive,
                }),
                ..NumConj::default()
            });
        }
        for &m in &self.multiples {
            out.push(NumConj {
                not_multiples: vec![m],
                ..NumConj::default()
            });
        }
        for &m in &self.not_multiples {
            out.push(NumConj {
                multiples: vec![m],
                ..NumConj::default()
            });
        }
        if let Some(vals) = &self.one_of {
            out.push(NumConj {
                not_in: vals.clone(),
                ..NumConj::default()
            });
        }
        if !self.not_in.is_empty() {
            out.push(NumConj {
                one_of: Some(self.not_in.clone()),
                ..NumConj::default()
            });
        }
        if let Some(s) = self.integral_spelling {
            out.push(NumConj {
                integral_spelling: Some(!s),
                ..NumConj::default()
            });
        }
        out
    }
}

/// A string constraint the checker does not evaluate symbolically. Two atoms are the same
/// constraint only if they are equal, including whether the dialect asserts the keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum StrAtom<'a> {
    Pattern(&'a str),
    Format(&'a str, bool),
    Encoding(&'a str, bool),
    MediaType(&'a str, bool),
}

/// Literals about strings.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct StrConj<'a> {
    pub min: u64,
    pub max: Option<u64>,
    /// Each atom with its polarity (`true`: must hold; `false`: must not).
    pub atoms: Vec<(StrAtom<'a>, bool)>,
    pub one_of: Option<Vec<&'a str>>,
    pub not_in: Vec<&'a str>,
}

fn min_max(
    min_a: u64,
    max_a: Option<u64>,
    min_b: u64,
    max_b: Option<u64>,
) -> Option<(u64, Option<u64>)> {
    let min = min_a.max(min_b);
    let max = match (max_a, max_b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if max.is_some_and(|m| m < min) {
        None
    } else {
        Some((min, max))
    }
}

impl<'a> Conj for StrConj<'a> {
    fn meet(&self, o: &Self) -> Option<Self> {
        let (min, max) = min_max(self.min, self.max, o.min, o.max)?;
        let mut atoms = union(&self.atoms, &o.atoms);
        atoms.sort();
        if atoms.windows(2).any(|w| w[0].0 == w[1].0) {
            // The same atom required and forbidden.
            return None;
        }
        let not_in = union(&self.not_in, &o.not_in);
        let one_of = intersect_by(&self.one_of, &o.one_of, |a, b| a == b).map(|vals| {
            vals.into_iter()
                .filter(|s| {
                    let len = s.chars().count() as u64;
                    len >= min && max.is_none_or(|m| len <= m) && !not_in.contains(s)
                })
                .collect::<Vec<_>>()
        });
        if one_of.as_ref().is_some_and(Vec::is_empty) {
            return None;
        }
        Some(StrConj {
            min,
            max,
            atoms,
            one_of,
            not_in,
        })
    }

    fn negations(&self) -> Vec<Self> {
        let mut out = Vec::new();
        if self.min > 0 {
            out.push(StrConj {
                max: Some(self.min - 1),
                ..StrConj::default()
            });
        }
        if let Some(m) = self.max {
            out.push(StrConj {
                min: m.saturating_add(1),
                ..StrConj::default()
            });
        }
        for &(atom, positive) in &self.atoms {
            out.push(StrConj {
                atoms: vec![(atom, !positive)],
                ..StrConj::default()
            });
        }
        if let Some(vals) = &self.one_of {
            out.push(StrConj {
                not_in: vals.clone(),
                ..StrConj::default()
            });
        }
        if !self.not_in.is_empty() {
            out.push(StrConj {
                one_of: Some(self.not_in.clone()),
                ..StrConj::default()
            });
        }
        out
    }
}

/// "Between `min` and `max` items from position `from` on are in `schema`" (`contains`,
/// `minContains`, `maxContains`), or its negation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Contains {
    pub from: usize,
    pub schema: Expr,
    pub min: u64,
    pub max: Option<u64>,
    pub positive: bool,
}

impl Contains {
    /// Plain `contains`: at least one such item.
    pub(crate) fn is_plain(&self) -> bool {
        self.min == 1 && self.max.is_none()
    }
}

/// Literals about arrays.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ArrConj<'a> {
    pub min: u64,
    pub max: Option<u64>,
    /// The item at a position, if there is one, is in the schema (sorted by position).
    pub at: Vec<(usize, Expr)>,
    /// Every item from a position on is in the schema (sorted by position).
    pub from: Vec<(usize, Expr)>,
    pub contains: Vec<Contains>,
    pub unique: Option<bool>,
    pub one_of: Option<Vec<&'a Value>>,
    pub not_in: Vec<&'a Value>,
}

/// Merge two position-sorted lists, intersecting the schemas of equal positions.
fn merge_positions(a: &[(usize, Expr)], b: &[(usize, Expr)]) -> Vec<(usize, Expr)> {
    let mut out: Vec<(usize, Expr)> = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let take_a = j >= b.len() || (i < a.len() && a[i].0 <= b[j].0);
        let (pos, e) = if take_a {
            i += 1;
            a[i - 1].clone()
        } else {
            j += 1;
            b[j - 1].clone()
        };
        match out.last_mut() {
            Some((p, prev)) if *p == pos => *prev = Expr::and([prev.clone(), e]),
            _ => out.push((pos, e)),
        }
    }
    out
}

impl<'a> Conj for ArrConj<'a> {
    fn meet(&self, o: &Self) -> Option<Self> {
        let (min, mut max) = min_max(self.min, self.max, o.min, o.max)?;
        let at = merge_positions(&self.at, &o.at);
        let from = merge_positions(&self.from, &o.from);
        // An impossible item at a position caps the length.
        for (p, e) in at.iter().chain(&from) {
            if e.is_false() {
                let cap = *p as u64;
                max = Some(max.map_or(cap, |m| m.min(cap)));
            }
        }
        if max.is_some_and(|m| m < min) {
            return None;
        }
        let unique = match (self.unique, o.unique) {
            (Some(a), Some(b)) if a != b => return None,
            (a, b) => a.or(b),
        };
        let mut contains = self.contains.clone();
        for c in &o.contains {
            if !contains.contains(c) {
                contains.push(c.clone());
            }
        }
        let not_in = union(&self.not_in, &o.not_in);
        let one_of = intersect_by(&self.one_of, &o.one_of, |a, b| json_equal(a, b)).map(|vals| {
            vals.into_iter()
                .filter(|v| !not_in.iter().any(|n| json_equal(n, v)))
                .collect::<Vec<_>>()
        });
        if one_of.as_ref().is_some_and(Vec::is_empty) {
            return None;
        }
        Some(ArrConj {
            min,
            max,
            at,
            from,
            contains,
            unique,
            one_of,
            not_in,
        })
    }

    fn negations(&self) -> Vec<Self> {
        let mut out = Vec::new();
        if self.min > 0 {
            out.push(ArrConj {
                max: Some(self.min - 1),
                ..ArrConj::default()
            });
        }
        if let Some(m) = self.max {
            out.push(ArrConj {
                min: m.saturating_add(1),
                ..ArrConj::default()
            });
        }
        for (p, e) in &self.at {
            // Not "the item at p, if any, is in S": there is an item at p, outside S.
            out.push(ArrConj {
                min: *p as u64 + 1,
                at: vec![(*p, Expr::not(e.clone()))],
                ..ArrConj::default()
            });
        }
        for (p, e) in &self.from {
            out.push(ArrConj {
                contains: vec![Contains {
                    from: *p,
                    schema: Expr::not(e.clone()),
                    min: 1,
                    max: None,
                    positive: true,
                }],
                ..ArrConj::default()
            });
        }
        for c in &self.contains {
            if c.positive && c.is_plain() {
                // Not "some item from p on is in S": every item from p on is outside S.
                out.push(ArrConj {
                    from: vec![(c.from, Expr::not(c.schema.clone()))],
                    ..ArrConj::default()
                });
            } else {
                out.push(ArrConj {
                    contains: vec![Contains {
                        positive: !c.positive,
                        ..c.clone()
                    }],
                    ..ArrConj::default()
                });
            }
        }
        if let Some(u) = self.unique {
            out.push(ArrConj {
                unique: Some(!u),
                ..ArrConj::default()
            });
        }
        if let Some(vals) = &self.one_of {
            out.push(ArrConj {
                not_in: vals.clone(),
                ..ArrConj::default()
            });
        }
        if !self.not_in.is_empty() {
            out.push(ArrConj {
                one_of: Some(self.not_in.clone()),
                ..ArrConj::default()
            });
        }
        out
    }
}

/// "Every property not named in `names` and matching none of `patterns` has its value in
/// `schema`" (`additionalProperties`), or, as an existential, "some such property has its value
/// in `schema`".
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Additional<'a> {
    pub names: Rc<[&'a str]>,
    pub patterns: Rc<[&'a str]>,
    pub schema: Expr,
}

/// A shared, immutable list that costs nothing when empty (an empty `Rc<[T]>` still
/// allocates, and most lists of most conjunctions are empty).
#[derive(Debug, Clone)]
pub(crate) struct Shared<T>(Option<Rc<[T]>>);

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Shared(None)
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.0.as_deref().unwrap_or(&[])
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T> From<Vec<T>> for Shared<T> {
    fn from(v: Vec<T>) -> Self {
        if v.is_empty() {
            Shared(None)
        } else {
            Shared(Some(v.into()))
        }
    }
}

impl<T> Shared<T> {
    /// A list of one.
    pub(crate) fn one(x: T) -> Self {
        Shared(Some(Rc::from([x])))
    }
}

/// Literals about objects. The lists are shared slices: a conjunction is mostly met with a
/// one-literal negation, which changes one list and shares the others.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ObjConj<'a> {
    pub min: u64,
    pub max: Option<u64>,
    /// A property, if present, has its value in the schema (sorted by name, unique).
    pub props: Shared<(&'a str, Expr)>,
    /// Properties that must be present (sorted, unique).
    pub required: Shared<&'a str>,
    pub additional: Shared<Additional<'a>>,
    pub has_additional: Shared<Additional<'a>>,
    /// Every property matching the pattern has its value in the schema.
    pub patterns: Shared<(&'a str, Expr)>,
    /// Some property matching the pattern has its value in the schema.
    pub has_pattern: Shared<(&'a str, Expr)>,
    /// Every property name is in the (string) schema.
    pub names: Shared<Expr>,
    /// Some property name is in the (string) schema.
    pub has_name: Shared<Expr>,
    pub one_of: Option<Shared<&'a Value>>,
    pub not_in: Shared<&'a Value>,
}

/// The union of two shared lists, sharing one of them when the other adds nothing.
fn union_rc<T: PartialEq + Clone>(a: &Shared<T>, b: &Shared<T>) -> Shared<T> {
    if b.iter().all(|x| a.contains(x)) {
        a.clone()
    } else if a.iter().all(|x| b.contains(x)) {
        b.clone()
    } else {
        union(a, b).into()
    }
}

fn merge_names<'a>(
    a: &Shared<(&'a str, Expr)>,
    b: &Shared<(&'a str, Expr)>,
) -> Shared<(&'a str, Expr)> {
    if b.is_empty() {
        return a.clone();
    }
    if a.is_empty() {
        return b.clone();
    }
    let mut out: Vec<(&'a str, Expr)> = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let take_a = j >= b.len() || (i < a.len() && a[i].0 <= b[j].0);
        let (name, e) = if take_a {
            i += 1;
            a[i - 1].clone()
        } else {
            j += 1;
            b[j - 1].clone()
        };
        match out.last_mut() {
            Some((n, prev)) if *n == name => *prev = Expr::and([prev.clone(), e]),
            _ => out.push((name, e)),
        }
    }
    out.into()
}

fn merge_sorted<'a>(a: &Shared<&'a str>, b: &Shared<&'a str>) -> Shared<&'a str> {
    if b.iter().all(|x| a.binary_search(x).is_ok()) {
        return a.clone();
    }
    if a.iter().all(|x| b.binary_search(x).is_ok()) {
        return b.clone();
    }
    let mut out: Vec<&'a str> = a.iter().chain(b.iter()).copied().collect();
    out.sort_unstable();
    out.dedup();
    out.into()
}

impl<'a> ObjConj<'a> {
    /// Whether the object obviously cannot exist, without deciding any subschema: a closed
    /// object (an `additionalProperties` that is `false` without patterns) that must have a
    /// property it forbids, or must have some "other" property when every other one is
    /// forbidden. Catching these when conjunctions are built keeps complements small.
    fn obviously_empty(&self) -> bool {
        let closed = |a: &Additional<'a>| a.patterns.is_empty() && a.schema.is_false();
        let forbids = |name: &str| {
            self.prop(name).is_some_and(Expr::is_false)
                || self
                    .additional
                    .iter()
                    .any(|a| closed(a) && a.names.binary_search(&name).is_err())
        };
        if self.additional.iter().any(closed) && self.required.iter().any(|r| forbids(r)) {
            return true;
        }
        for h in self.has_additional.iter() {
            if h.schema.is_false() {
                return true;
            }
            if !h.patterns.is_empty() || !self.additional.iter().any(closed) {
                continue;
            }
            let known = self
                .props
                .iter()
                .map(|(n, _)| *n)
                .chain(self.required.iter().copied())
                .chain(
                    self.additional
                        .iter()
                        .chain(self.has_additional.iter())
                        .flat_map(|a| a.names.iter().copied()),
                );
            let mut all_excluded = true;
            for m in known {
                if h.names.binary_search(&m).is_err() && !forbids(m) {
                    all_excluded = false;
                    break;
                }
            }
            if all_excluded {
                return true;
            }
        }
        false
    }

    /// The (merged) schema of a property's value from `properties` literals, if any.
    pub(crate) fn prop(&self, name: &str) -> Option<&Expr> {
        self.props
            .binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| &self.props[i].1)
    }
}

impl<'a> Conj for ObjConj<'a> {
    fn meet(&self, o: &Self) -> Option<Self> {
        let (min, max) = min_max(self.min, self.max, o.min, o.max)?;
        let props = merge_names(&self.props, &o.props);
        let required = merge_sorted(&self.required, &o.required);
        if max.is_some_and(|m| (required.len() as u64) > m) {
            return None;
        }
        // A required property that cannot have a value: only new when both sides bring
        // properties or requirements (each side alone was checked when it was built).
        let brings = |c: &Self| !c.props.is_empty() || !c.required.is_empty();
        let both = brings(self) && brings(o);
        if both
            && required.iter().any(|r| {
                props
                    .binary_search_by(|(n, _)| (*n).cmp(r))
                    .is_ok_and(|i| props[i].1.is_false())
            })
        {
            return None;
        }
        let not_in = union_rc(&self.not_in, &o.not_in);
        let one_of = match (&self.one_of, &o.one_of) {
            (None, None) => None,
            (a, b) => {
                let vals: Vec<&'a Value> = match (a, b) {
                    (Some(x), Some(y)) => x
                        .iter()
                        .filter(|v| y.iter().any(|w| json_equal(v, w)))
                        .copied()
                        .collect(),
                    (Some(x), None) | (None, Some(x)) => x.to_vec(),
                    (None, None) => Vec::new(),
                };
                let vals: Vec<&'a Value> = vals
                    .into_iter()
                    .filter(|v| !not_in.iter().any(|n| json_equal(n, v)))
                    .collect();
                if vals.is_empty() {
                    return None;
                }
                Some(vals.into())
            }
        };
        let conj = ObjConj {
            min,
            max,
            props,
            required,
            additional: union_rc(&self.additional, &o.additional),
            has_additional: union_rc(&self.has_additional, &o.has_additional),
            patterns: union_rc(&self.patterns, &o.patterns),
            has_pattern: union_rc(&self.has_pattern, &o.has_pattern),
            names: union_rc(&self.names, &o.names),
            has_name: union_rc(&self.has_name, &o.has_name),
            one_of,
            not_in,
        };
        if conj.obviously_empty() {
            return None;
        }
        Some(conj)
    }

    fn negations(&self) -> Vec<Self> {
        let mut out = Vec::new();
        if self.min > 0 {
            out.push(ObjConj {
                max: Some(self.min - 1),
                ..ObjConj::default()
            });
        }
        if let Some(m) = self.max {
            out.push(ObjConj {
                min: m.saturating_add(1),
                ..ObjConj::default()
            });
        }
        for (name, e) in self.props.iter() {
            let neg = Expr::not(e.clone());
            let required = self.required.binary_search(name).is_ok();
            out.push(if required {
                // Not "present, and in S" (both literals at once): if present, outside S.
                ObjConj {
                    props: Shared::one((*name, neg)),
                    ..ObjConj::default()
                }
            } else {
                // Not "if present, in S": present, and outside S.
                ObjConj {
                    required: Shared::one(*name),
                    props: if neg == Expr::True {
                        Shared::default()
                    } else {
                        Shared::one((*name, neg))
                    },
                    ..ObjConj::default()
                }
            });
        }
        for name in self.required.iter() {
            if self.prop(name).is_some() {
                // Negated together with its `properties` literal above.
                continue;
            }
            // Not "present": absent, which is "if present, in the empty set".
            out.push(ObjConj {
                props: Shared::one((*name, Expr::False)),
                ..ObjConj::default()
            });
        }
        for a in self.additional.iter() {
            out.push(ObjConj {
                has_additional: Shared::one(Additional {
                    schema: Expr::not(a.schema.clone()),
                    ..a.clone()
                }),
                ..ObjConj::default()
            });
        }
        for a in self.has_additional.iter() {
            out.push(ObjConj {
                additional: Shared::one(Additional {
                    schema: Expr::not(a.schema.clone()),
                    ..a.clone()
                }),
                ..ObjConj::default()
            });
        }
        for (p, e) in self.patterns.iter() {
            out.push(ObjConj {
                has_pattern: Shared::one((*p, Expr::not(e.clone()))),
                ..ObjConj::default()
            });
        }
        for (p, e) in self.has_pattern.iter() {
            out.push(ObjConj {
                patterns: Shared::one((*p, Expr::not(e.clone()))),
                ..ObjConj::default()
            });
        }
        for e in self.names.iter() {
            out.push(ObjConj {
                has_name: Shared::one(Expr::not(e.clone())),
                ..ObjConj::default()
            });
        }
        for e in self.has_name.iter() {
            out.push(ObjConj {
                names: Shared::one(Expr::not(e.clone())),
                ..ObjConj::default()
            });
        }
        if let Some(vals) = &self.one_of {
            out.push(ObjConj {
                not_in: vals.clone(),
                ..ObjConj::default()
            });
        }
        if !self.not_in.is_empty() {
            out.push(ObjConj {
                one_of: Some(self.not_in.clone()),
                ..ObjConj::default()
            });
        }
        out
    }
}

/// A schema in normal form: what it accepts of each JSON type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Norm<'a> {
    /// Whether `null` and `boolean` are exact (not over-approximated).
    pub scalars_exact: bool,
    pub null: bool,
    /// `[false accepted, true accepted]`.
    pub boolean: [bool; 2],
    pub number: Dnf<NumConj>,
    pub string: Dnf<StrConj<'a>>,
    pub array: Dnf<ArrConj<'a>>,
    pub object: Dnf<ObjConj<'a>>,
}

impl<'a> Norm<'a> {
    pub(crate) fn top() -> Self {
        Norm {
            scalars_exact: true,
            null: true,
            boolean: [true, true],
            number: Dnf::top(),
            string: Dnf::top(),
            array: Dnf::top(),
            object: Dnf::top(),
        }
    }

    pub(crate) fn bottom() -> Self {
        Norm {
            scalars_exact: true,
            null: false,
            boolean: [false, false],
            number: Dnf::bottom(),
            string: Dnf::bottom(),
            array: Dnf::bottom(),
            object: Dnf::bottom(),
        }
    }

    /// An over-approximation of anything: used when a limit is reached.
    pub(crate) fn inexact_top() -> Self {
        let mut n = Self::top();
        n.scalars_exact = false;
        n.number.exact = false;
        n.string.exact = false;
        n.array.exact = false;
        n.object.exact = false;
        n
    }

    /// Only objects are constrained; values of other types pass (a keyword like
    /// `required`).
    pub(crate) fn only_objects(d: Dnf<ObjConj<'a>>) -> Self {
        Norm {
            object: d,
            ..Self::top()
        }
    }

    /// The values of the listed types (`type`). Draft 4 integers must be spelled without a
    /// fraction.
    pub(crate) fn of_types(set: u8, integral_spelling: bool) -> Self {
        let has = |bit: u8| set & bit != 0;
        let number = if has(types::NUMBER) {
            Dnf::top()
        } else if has(types::INTEGER) {
            Dnf::single(NumConj {
                multiples: vec![1.0],
                integral_spelling: integral_spelling.then_some(true),
                ..NumConj::default()
            })
        } else {
            Dnf::bottom()
        };
        let pick = |bit: u8| has(bit);
        Norm {
            scalars_exact: true,
            null: pick(types::NULL),
            boolean: [pick(types::BOOLEAN); 2],
            number,
            string: if pick(types::STRING) {
                Dnf::top()
            } else {
                Dnf::bottom()
            },
            array: if pick(types::ARRAY) {
                Dnf::top()
            } else {
                Dnf::bottom()
            },
            object: if pick(types::OBJECT) {
                Dnf::top()
            } else {
                Dnf::bottom()
            },
        }
    }

    /// Exactly the listed values (`enum`, `const`).
    pub(crate) fn of_values(values: &[&'a Value]) -> Self {
        let mut n = Self::bottom();
        let mut nums = Vec::new();
        let mut strs = Vec::new();
        let mut arrs = Vec::new();
        let mut objs = Vec::new();
        for v in values {
            match v {
                Value::Null => n.null = true,
                Value::Bool(b) => n.boolean[usize::from(*b)] = true,
                Value::Number(x) => nums.extend(Num::of(x)),
                Value::String(s) => strs.push(s.as_str()),
                Value::Array(_) => arrs.push(*v),
                Value::Object(_) => objs.push(*v),
            }
        }
        if !nums.is_empty() {
            n.number = Dnf::single(NumConj {
                one_of: Some(nums),
                ..NumConj::default()
            });
        }
        if !strs.is_empty() {
            n.string = Dnf::single(StrConj {
                one_of: Some(strs),
                ..StrConj::default()
            });
        }
        if !arrs.is_empty() {
            n.array = Dnf::single(ArrConj {
                one_of: Some(arrs),
                ..ArrConj::default()
            });
        }
        if !objs.is_empty() {
            n.object = Dnf::single(ObjConj {
                one_of: Some(objs.into()),
                ..ObjConj::default()
            });
        }
        n
    }

    pub(crate) fn and(&self, o: &Self, limits: &mut Limits) -> Self {
        Norm {
            scalars_exact: self.scalars_exact && o.scalars_exact,
            null: self.null && o.null,
            boolean: [
                self.boolean[0] && o.boolean[0],
                self.boolean[1] && o.boolean[1],
            ],
            number: self.number.and(&o.number, limits),
            string: self.string.and(&o.string, limits),
            array: self.array.and(&o.array, limits),
            object: self.object.and(&o.object, limits),
        }
    }

    pub(crate) fn or(&self, o: &Self, limits: &mut Limits) -> Self {
        Norm {
            scalars_exact: self.scalars_exact && o.scalars_exact,
            null: self.null || o.null,
            boolean: [
                self.boolean[0] || o.boolean[0],
                self.boolean[1] || o.boolean[1],
            ],
            number: self.number.or(&o.number, limits),
            string: self.string.or(&o.string, limits),
            array: self.array.or(&o.array, limits),
            object: self.object.or(&o.object, limits),
        }
    }

    pub(crate) fn complement(&self, limits: &mut Limits) -> Self {
        Self::top().and_not(self, limits)
    }

    /// `self ∧ ¬other` (see [`Dnf::and_not`]).
    pub(crate) fn and_not(&self, other: &Self, limits: &mut Limits) -> Self {
        // Over-approximated scalars of `other` complement to "all of them".
        let (null, boolean) = if other.scalars_exact {
            (
                self.null && !other.null,
                [
                    self.boolean[0] && !other.boolean[0],
                    self.boolean[1] && !other.boolean[1],
                ],
            )
        } else {
            (self.null, self.boolean)
        };
        Norm {
            scalars_exact: self.scalars_exact && other.scalars_exact,
            null,
            boolean,
            number: self.number.and_not(&other.number, limits),
            string: self.string.and_not(&other.string, limits),
            array: self.array.and_not(&other.array, limits),
            object: self.object.and_not(&other.object, limits),
        }
    }

    /// Whether nothing in the form is over-approximated.
    pub(crate) fn is_exact(&self) -> bool {
        self.scalars_exact
            && self.number.exact
            && self.string.exact
            && self.array.exact
            && self.object.exact
    }

    /// Whether the form is syntactically empty (no null, no boolean, no terms).
    pub(crate) fn is_bottom(&self) -> bool {
        !self.null
            && !self.boolean[0]
            && !self.boolean[1]
            && self.number.terms.is_empty()
            && self.string.terms.is_empty()
            && self.array.terms.is_empty()
            && self.object.terms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complement_is_exact_and_involutive_on_numbers() {
        let mut l = Limits::default();
        let n = Norm {
            number: Dnf::single(NumConj {
                lo: Some(Bound {
                    value: 1.0,
                    exclusive: false,
                }),
                hi: Some(Bound {
                    value: 5.0,
                    exclusive: true,
                }),
                ..NumConj::default()
            }),
            ..Norm::top()
        };
        let c = n.complement(&mut l);
        // [1, 5) complemented within numbers: (< 1) or (>= 5).
        assert_eq!(c.number.terms.len(), 2);
        assert!(!c.null && c.string.terms.is_empty());
        assert!(n.and(&c, &mut l).is_bottom());
        assert!(!l.hit);
    }

    #[test]
    fn contradictions_are_found_syntactically() {
        let mut l = Limits::default();
        let a = Norm::of_types(types::STRING, false);
        let b = Norm::of_types(types::NUMBER, false);
        assert!(a.and(&b, &mut l).is_bottom());
        let ints = Norm::of_types(types::INTEGER, false);
        let non_ints = ints
            .complement(&mut l)
            .and(&Norm::of_types(types::NUMBER, false), &mut l);
        assert!(ints.and(&non_ints, &mut l).is_bottom());
        let obj = ObjConj {
            props: Shared::one(("a", Expr::False)),
            ..ObjConj::default()
        };
        let req = ObjConj {
            required: Shared::one("a"),
            ..ObjConj::default()
        };
        assert!(obj.meet(&req).is_none());
    }

    #[test]
    fn caps_over_approximate() {
        let mut l = Limits::default();
        let many: Vec<StrConj<'_>> = (0..60)
            .map(|i| StrConj {
                min: i,
                max: Some(i),
                ..StrConj::default()
            })
            .collect();
        let d = Dnf {
            terms: many,
            exact: true,
        };
        let p = d.and(&d, &mut l);
        assert!(!p.exact && l.hit);
        assert!(Dnf::top().and_not(&p, &mut l).is_top());
    }
}
