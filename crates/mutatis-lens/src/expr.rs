//! CEL expressions in `convert` ops: compiled once, evaluated per value.
//!
//! An expression sees `value` (the field being converted), `doc` (the object that holds it) and
//! every translation parameter by name (e.g. `referenceYear`). The pure core never reads a clock:
//! anything time-dependent comes in as a parameter.
//!
//! A missing reverse is derived when the expression is `value ± k` or `k ± value` with `k` not
//! mentioning `value`; anything else must be given both ways.
//!
//! **Numbers.** CEL keeps `int`, `uint` and `double` apart (`2026 - 1990.0` has no overload),
//! while JSON has one kind of number and JSON Schema calls `1990.0` an integer. So a number is
//! given to CEL by its value, not its spelling: a whole number within 64-bit integers is an
//! `int` (a `uint` above the `int` range), any other a `double`. When the `convert` declares
//! its input `number` (`sourceType` forward, `destinationType` backward), `value` is a
//! `double` instead, whole or not, so `value * 1.5` works for `3` as for `3.5` (an integer a
//! double cannot hold exactly, beyond 2⁵³, stays an `int`: exact, or a clean error). A result
//! goes back to JSON by the same rule: a whole `double` within 64-bit integers is written as
//! an integer. Every number mutatis accepts is an exact `int`, `uint` or `double`
//! ([`crate::json`]), so no expression ever sees a rounded one.

use std::sync::{Arc, OnceLock};

use cel::common::ast::{Expr, IdedExpr};
use cel::{Context, Env, Program};
use serde_json::{Map, Number, Value};

/// A compiled CEL expression, or a derived inverse of one.
#[derive(Debug, Clone)]
pub struct Expression {
    source: Arc<str>,
    kind: Arc<Kind>,
    /// How `value` is given to CEL when it is a number.
    numbers: Numbers,
    /// Whether the expression may read `doc`. When it cannot, `doc` is not bound, and a
    /// translation need not build the enclosing object for it (nor parse its other fields).
    reads_doc: bool,
}

/// How a number in `value` is given to CEL (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Numbers {
    /// Whole numbers as `int` (`uint` above it), others as `double`.
    #[default]
    ByValue,
    /// As `double` whenever a double holds the number exactly.
    Double,
}

impl Numbers {
    /// The binding for an input declared with JSON Schema type `ty` (a name or a list of
    /// names): `number` without `integer` is a `double`.
    pub fn for_type(ty: Option<&Value>) -> Numbers {
        let names: Vec<&str> = match ty {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if names.contains(&"number") && !names.contains(&"integer") {
            Numbers::Double
        } else {
            Numbers::ByValue
        }
    }
}

#[derive(Debug)]
enum Kind {
    Program(Program),
    /// `value` was `outer(value, k)`; this computes the inverse from `k` and the input.
    Inverse {
        k: IdedExpr,
        inverse: InverseOp,
    },
}

#[derive(Debug, Clone, Copy)]
enum InverseOp {
    /// `value - k`
    SubK,
    /// `value + k`
    AddK,
    /// `k - value`
    KSub,
}

impl InverseOp {
    /// The inverse's arithmetic on the input `y` and the constant `k`.
    fn apply(self, y: cel::Value, k: cel::Value) -> cel::ResolveResult {
        match self {
            InverseOp::SubK => y - k,
            InverseOp::AddK => y + k,
            InverseOp::KSub => k - y,
        }
    }
}

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib())).clone()
}

impl Expression {
    /// Compile `source`; the error is the parser's message.
    pub fn compile(source: &str) -> Result<Expression, String> {
        let program = Program::compile(source).map_err(|e| e.to_string())?;
        let reads_doc = mentions_doc(program.expression());
        Ok(Expression {
            source: source.into(),
            kind: Arc::new(Kind::Program(program)),
            numbers: Numbers::ByValue,
            reads_doc,
        })
    }

    /// The same expression, giving numbers in `value` to CEL as `numbers` says.
    #[must_use]
    pub fn with_numbers(mut self, numbers: Numbers) -> Expression {
        self.numbers = numbers;
        self
    }

    /// Whether the expression may read `doc`, the object that holds the value. `false` only
    /// when no identifier in it names `doc` (struct literals and unknown forms count as
    /// reading it), so the value and the parameters alone decide the result.
    pub fn reads_doc(&self) -> bool {
        self.reads_doc
    }

    /// The expression as written (for a derived inverse, a description of it).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The inverse of this expression, when it is `value ± k` or `k ± value`.
    pub fn derive_inverse(&self) -> Option<Expression> {
        let Kind::Program(program) = &*self.kind else {
            return None;
        };
        let root = program.expression();
        let Expr::Call(call) = &root.expr else {
            return None;
        };
        if call.target.is_some() || call.args.len() != 2 {
            return None;
        }
        let is_value = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(n) if n == "value");
        let (a, b) = (&call.args[0], &call.args[1]);
        let (k, inverse) = match (call.func_name.as_str(), is_value(a), is_value(b)) {
            ("_+_", true, false) => (b, InverseOp::SubK),
            ("_+_", false, true) => (a, InverseOp::SubK),
            ("_-_", true, false) => (b, InverseOp::AddK),
            ("_-_", false, true) => (a, InverseOp::KSub),
            _ => return None,
        };
        if mentions_value(k) {
            return None;
        }
        Some(Expression {
            source: format!("inverse of `{}`", self.source).into(),
            reads_doc: mentions_doc(k),
            kind: Arc::new(Kind::Inverse {
                k: k.clone(),
                inverse,
            }),
            numbers: Numbers::ByValue,
        })
    }

    /// Evaluate with `value`, `doc` and the parameters bound.
    pub fn eval(
        &self,
        value: &Value,
        doc: &Value,
        params: &Map<String, Value>,
    ) -> Result<Value, String> {
        if let Kind::Inverse { k, inverse } = &*self.kind {
            // The common derived reverse, `parameter - value` (the students' year of birth):
            // the constant is one parameter, so no context needs building. `doc` and `value`
            // are bound over any parameter of that name, so they take the general path.
            if let Expr::Ident(name) = &k.expr {
                if name != "doc" && name != "value" {
                    if let Some(p) = params.get(name) {
                        let y = value_to_cel(value, self.numbers);
                        return from_cel(&inverse.apply(y, to_cel(p)).map_err(|e| e.to_string())?);
                    }
                }
            }
        }
        let mut ctx = Context::with_env(env());
        for (k, v) in params {
            ctx.add_variable_from_value(k.as_str(), to_cel(v));
        }
        if self.reads_doc {
            // Converting the whole object costs more than most expressions; only bind it
            // when the expression can see it.
            ctx.add_variable_from_value("doc", to_cel(doc));
        }
        let y = value_to_cel(value, self.numbers);
        ctx.add_variable_from_value("value", y.clone());
        let result = match &*self.kind {
            Kind::Program(p) => p.execute(&ctx).map_err(|e| e.to_string())?,
            Kind::Inverse { k, inverse } => {
                let k = cel::Value::resolve(k, &ctx).map_err(|e| e.to_string())?;
                inverse.apply(y, k).map_err(|e| e.to_string())?
            }
        };
        from_cel(&result)
    }
}

fn mentions_value(e: &IdedExpr) -> bool {
    match &e.expr {
        Expr::Ident(n) => n == "value",
        Expr::Call(c) => {
            c.target.as_deref().is_some_and(mentions_value) || c.args.iter().any(mentions_value)
        }
        Expr::Select(s) => mentions_value(&s.operand),
        Expr::List(l) => l.elements.iter().any(mentions_value),
        Expr::Literal(_) => false,
        // Comprehensions and struct literals: assume the worst.
        _ => true,
    }
}

/// Whether `e` may read `doc`: any identifier whose first segment is `doc` (however it is
/// qualified), and, to be safe, any form this walk does not look into.
fn mentions_doc(e: &IdedExpr) -> bool {
    match &e.expr {
        Expr::Ident(n) => n.trim_start_matches('.').split('.').next() == Some("doc"),
        Expr::Call(c) => {
            c.target.as_deref().is_some_and(mentions_doc) || c.args.iter().any(mentions_doc)
        }
        Expr::Select(s) => mentions_doc(&s.operand),
        Expr::List(l) => l.elements.iter().any(mentions_doc),
        Expr::Map(m) => m.entries.iter().any(|entry| match &entry.expr {
            cel::common::ast::EntryExpr::MapEntry(me) => {
                mentions_doc(&me.key) || mentions_doc(&me.value)
            }
            cel::common::ast::EntryExpr::StructField(_) => true,
        }),
        Expr::Comprehension(c) => {
            [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ]
            .into_iter()
            .any(mentions_doc)
                || c.iter_var == "doc"
                || c.accu_var == "doc"
        }
        Expr::Literal(_) => false,
        // Struct literals and unset expressions: assume the worst.
        _ => true,
    }
}

/// `value` as CEL sees it: a number bound as `numbers` says, anything else as [`to_cel`].
fn value_to_cel(v: &Value, numbers: Numbers) -> cel::Value {
    match (v, numbers) {
        (Value::Number(n), Numbers::Double) => {
            // Within ±2⁵³ every integer is a double; beyond, the integer stays exact.
            const EXACT: u64 = 1 << 53;
            let exact = match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => (i.unsigned_abs() <= EXACT).then_some(i as f64),
                (None, Some(u)) => (u <= EXACT).then_some(u as f64),
                (None, None) => n.as_f64(),
            };
            match exact {
                Some(f) => cel::Value::Float(f),
                None => to_cel(v),
            }
        }
        _ => to_cel(v),
    }
}

/// JSON → CEL. A whole number is an `int` however it is written (`1990` and `1990.0`
/// alike), so `2026 - value` is integer arithmetic; see the module documentation.
pub fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => {
            let whole = crate::json::whole(n);
            let n = whole.as_ref().unwrap_or(n);
            if let Some(i) = n.as_i64() {
                cel::Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                cel::Value::UInt(u)
            } else {
                cel::Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => {
            let m: std::collections::HashMap<String, cel::Value> =
                map.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            cel::Value::Map(m.into())
        }
    }
}

/// CEL → JSON; values JSON cannot hold (bytes, functions, NaN) are errors.
pub fn from_cel(v: &cel::Value) -> Result<Value, String> {
    Ok(match v {
        cel::Value::Null => Value::Null,
        cel::Value::Bool(b) => Value::Bool(*b),
        cel::Value::Int(i) => Value::from(*i),
        cel::Value::UInt(u) => Value::from(*u),
        // A whole result is an integer, as a whole input is (`1990.0` → `1990`).
        cel::Value::Float(f) => Value::Number(match crate::json::whole_f64(*f) {
            Some(n) => n,
            None => {
                Number::from_f64(*f).ok_or_else(|| format!("result {f} is not a JSON number"))?
            }
        }),
        cel::Value::String(s) => Value::String(s.to_string()),
        cel::Value::List(items) => {
            Value::Array(items.iter().map(from_cel).collect::<Result<_, _>>()?)
        }
        cel::Value::Map(m) => {
            let mut out = Map::new();
            let mut entries: Vec<_> = m.map.iter().collect();
            entries.sort_by_key(|(k, _)| key_text(k));
            for (k, v) in entries {
                out.insert(key_text(k), from_cel(v)?);
            }
            Value::Object(out)
        }
        other => return Err(format!("result {other:?} cannot be written as JSON")),
    })
}

fn key_text(k: &cel::objects::Key) -> String {
    match k {
        cel::objects::Key::Int(i) => i.to_string(),
        cel::objects::Key::Uint(u) => u.to_string(),
        cel::objects::Key::Bool(b) => b.to_string(),
        cel::objects::Key::String(s) => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params() -> Map<String, Value> {
        json!({"referenceYear": 2026}).as_object().unwrap().clone()
    }

    #[test]
    fn evaluates_with_value_doc_and_params() {
        let e = Expression::compile("referenceYear - value").unwrap();
        assert_eq!(
            e.eval(&json!(30), &json!({}), &params()).unwrap(),
            json!(1996)
        );
        let e = Expression::compile("doc.first + ' ' + value").unwrap();
        assert_eq!(
            e.eval(&json!("b"), &json!({"first": "a"}), &params())
                .unwrap(),
            json!("a b")
        );
    }

    #[test]
    fn derives_inverses_of_plus_and_minus() {
        for (src, x) in [
            ("referenceYear - value", 30),
            ("value + 7", 3),
            ("7 + value", 3),
            ("value - 7", 3),
        ] {
            let e = Expression::compile(src).unwrap();
            let inv = e
                .derive_inverse()
                .unwrap_or_else(|| panic!("{src} should invert"));
            let y = e.eval(&json!(x), &json!({}), &params()).unwrap();
            assert_eq!(
                inv.eval(&y, &json!({}), &params()).unwrap(),
                json!(x),
                "{src}"
            );
        }
        for src in ["value * 2", "value + value", "size(value)", "value"] {
            assert!(
                Expression::compile(src).unwrap().derive_inverse().is_none(),
                "{src}"
            );
        }
    }

    #[test]
    fn whole_numbers_are_ints_however_written() {
        let e = Expression::compile("referenceYear - value").unwrap();
        for year in [json!(1990), json!(1990.0)] {
            assert_eq!(
                e.eval(&year, &json!({}), &params()).unwrap(),
                json!(36),
                "{year}"
            );
        }
        let inv = e.derive_inverse().unwrap();
        assert_eq!(
            inv.eval(&json!(36.0), &json!({}), &params()).unwrap(),
            json!(1990)
        );
        // `doc` and the parameters follow the same rule.
        let e = Expression::compile("doc.a + referenceYear").unwrap();
        let params = json!({"referenceYear": 2026.0})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(
            e.eval(&json!(0), &json!({"a": 1.0}), &params).unwrap(),
            json!(2027)
        );
        // A fraction is a double.
        let e = Expression::compile("value * 2.0").unwrap();
        assert_eq!(
            e.eval(&json!(1.25), &json!({}), &Map::new()).unwrap(),
            json!(2.5)
        );
    }

    #[test]
    fn integers_beyond_int64_stay_exact() {
        let e = Expression::compile("value").unwrap();
        for v in [
            json!(u64::MAX),
            json!(i64::MIN),
            json!(9_007_199_254_740_993u64),
        ] {
            assert_eq!(e.eval(&v, &json!({}), &Map::new()).unwrap(), v);
        }
        // int64 arithmetic that overflows is an error, not a wrapped or rounded number.
        let e = Expression::compile("value + 1").unwrap();
        assert!(e.eval(&json!(i64::MAX), &json!({}), &Map::new()).is_err());
    }

    #[test]
    fn a_declared_number_is_a_double() {
        let e = Expression::compile("value * 1.5").unwrap();
        // By value, `3` is an int, and CEL has no int × double.
        assert!(e.eval(&json!(3), &json!({}), &Map::new()).is_err());
        let e = e.with_numbers(Numbers::for_type(Some(&json!("number"))));
        assert_eq!(
            e.eval(&json!(3), &json!({}), &Map::new()).unwrap(),
            json!(4.5)
        );
        assert_eq!(
            e.eval(&json!(3.5), &json!({}), &Map::new()).unwrap(),
            json!(5.25)
        );
        // A whole result is written as an integer.
        assert_eq!(
            e.eval(&json!(2), &json!({}), &Map::new()).unwrap(),
            json!(3)
        );
        // Beyond 2⁵³ a double would round the integer; it stays an int (and CEL refuses the
        // mixed arithmetic rather than compute on another number).
        assert!(e
            .eval(&json!(9_007_199_254_740_993u64), &json!({}), &Map::new())
            .is_err());
        assert_eq!(
            Numbers::for_type(Some(&json!(["number", "null"]))),
            Numbers::Double
        );
        assert_eq!(
            Numbers::for_type(Some(&json!(["integer", "number"]))),
            Numbers::ByValue
        );
        assert_eq!(Numbers::for_type(Some(&json!("integer"))), Numbers::ByValue);
        assert_eq!(Numbers::for_type(None), Numbers::ByValue);
    }

    #[test]
    fn reading_doc_is_found_wherever_it_hides() {
        for src in [
            "doc.first + value",
            "size(doc) + value",
            "has(doc.a) ? 1 : value",
            "[1, doc][0] + value",
            "{'k': doc}.k",
            "{doc: 1}",
            "[1, 2].exists(x, x == doc.a)",
            "doc",
            ".doc.a",
        ] {
            let e = Expression::compile(src).unwrap();
            assert!(e.reads_doc(), "{src}");
        }
        for src in [
            "referenceYear - value",
            "value + 1",
            "value.size() > 2 ? value : 'x'",
            "[1, 2].exists(x, x == value)",
            "document + value",
        ] {
            let e = Expression::compile(src).unwrap();
            assert!(!e.reads_doc(), "{src}");
        }
        // A derived inverse reads what its constant reads.
        let e = Expression::compile("referenceYear - value").unwrap();
        assert!(!e.derive_inverse().unwrap().reads_doc());
        let e = Expression::compile("doc.offset + value").unwrap();
        assert!(e.derive_inverse().unwrap().reads_doc());
        // Not binding `doc` changes nothing for an expression that does not read it.
        let e = Expression::compile("referenceYear - value").unwrap();
        assert_eq!(
            e.eval(&json!(30), &json!({"big": [1, 2, 3]}), &params())
                .unwrap(),
            json!(1996)
        );
    }

    #[test]
    fn errors_are_messages_not_panics() {
        assert!(Expression::compile("value +").is_err());
        let e = Expression::compile("value / 0").unwrap();
        assert!(e.eval(&json!(1), &json!({}), &Map::new()).is_err());
        let e = Expression::compile("nope + 1").unwrap();
        assert!(e.eval(&json!(1), &json!({}), &Map::new()).is_err());
    }
}
