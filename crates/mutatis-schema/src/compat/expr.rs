//! Lazy schema expressions. A literal of a normalised schema ("every item is in S", "property
//! `a`, if present, is in S") refers to its subschema by expression rather than by its normal
//! form, so a recursive schema normalises one level at a time, and two literals about the same
//! place combine into one expression (`S1 ∧ ¬S2`) whose emptiness is decided on demand.

use std::rc::Rc;

use super::schema::NodeId;

/// A set of JSON values described by boolean combinations of subschemas.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Expr {
    /// Every value.
    True,
    /// No value.
    False,
    /// The values valid under a subschema.
    Node(NodeId),
    /// The complement.
    Not(Rc<Expr>),
    /// The intersection (at least two operands, sorted, no duplicates).
    And(Rc<[Expr]>),
}

impl Expr {
    /// The complement, simplified: `¬¬x` is `x`, `¬true` is `false`.
    pub(crate) fn not(e: Expr) -> Expr {
        match e {
            Expr::True => Expr::False,
            Expr::False => Expr::True,
            Expr::Not(inner) => (*inner).clone(),
            other => Expr::Not(Rc::new(other)),
        }
    }

    /// The intersection, flattened, sorted and deduplicated so that equal sets of operands give
    /// equal expressions (the emptiness cache and the coinductive assumptions rely on it).
    pub(crate) fn and(items: impl IntoIterator<Item = Expr>) -> Expr {
        let mut out: Vec<Expr> = Vec::new();
        for e in items {
            match e {
                Expr::True => {}
                Expr::False => return Expr::False,
                Expr::And(inner) => out.extend(inner.iter().cloned()),
                other => out.push(other),
            }
        }
        out.sort();
        out.dedup();
        // x ∧ ¬x is empty.
        if out
            .iter()
            .any(|e| matches!(e, Expr::Not(inner) if out.binary_search(inner).is_ok()))
        {
            return Expr::False;
        }
        match out.len() {
            0 => Expr::True,
            1 => out.pop().unwrap_or(Expr::True),
            _ => Expr::And(out.into()),
        }
    }

    /// Whether this is syntactically the empty set.
    pub(crate) fn is_false(&self) -> bool {
        matches!(self, Expr::False)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_simplify() {
        let a = Expr::Node(1);
        let b = Expr::Node(2);
        assert_eq!(Expr::not(Expr::not(a.clone())), a);
        assert_eq!(Expr::and([a.clone(), Expr::True]), a);
        assert_eq!(Expr::and([a.clone(), Expr::not(a.clone())]), Expr::False);
        assert_eq!(
            Expr::and([b.clone(), a.clone()]),
            Expr::and([a.clone(), Expr::and([b.clone(), a.clone()])])
        );
    }
}
