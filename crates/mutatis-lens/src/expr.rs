//! CEL expressions in `convert` ops: compiled once, evaluated per value.
//!
//! An expression sees `value` (the field being converted), `doc` (the object that holds it) and
//! every translation parameter by name (e.g. `referenceYear`). The pure core never reads a clock:
//! anything time-dependent comes in as a parameter.
//!
//! A missing reverse is derived when the expression is `value ± k` or `k ± value` with `k` not
//! mentioning `value`; anything else must be given both ways.

use std::sync::{Arc, OnceLock};

use cel::common::ast::{Expr, IdedExpr};
use cel::{Context, Env, Program};
use serde_json::{Map, Number, Value};

/// A compiled CEL expression, or a derived inverse of one.
#[derive(Debug, Clone)]
pub struct Expression {
    source: Arc<str>,
    kind: Arc<Kind>,
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

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib())).clone()
}

impl Expression {
    /// Compile `source`; the error is the parser's message.
    pub fn compile(source: &str) -> Result<Expression, String> {
        let program = Program::compile(source).map_err(|e| e.to_string())?;
        Ok(Expression {
            source: source.into(),
            kind: Arc::new(Kind::Program(program)),
        })
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
            kind: Arc::new(Kind::Inverse {
                k: k.clone(),
                inverse,
            }),
        })
    }

    /// Evaluate with `value`, `doc` and the parameters bound.
    pub fn eval(
        &self,
        value: &Value,
        doc: &Value,
        params: &Map<String, Value>,
    ) -> Result<Value, String> {
        let mut ctx = Context::with_env(env());
        for (k, v) in params {
            ctx.add_variable_from_value(k.as_str(), to_cel(v));
        }
        ctx.add_variable_from_value("doc", to_cel(doc));
        ctx.add_variable_from_value("value", to_cel(value));
        let result = match &*self.kind {
            Kind::Program(p) => p.execute(&ctx).map_err(|e| e.to_string())?,
            Kind::Inverse { k, inverse } => {
                let k = cel::Value::resolve(k, &ctx).map_err(|e| e.to_string())?;
                let y = to_cel(value);
                let r = match inverse {
                    InverseOp::SubK => y - k,
                    InverseOp::AddK => y + k,
                    InverseOp::KSub => k - y,
                };
                r.map_err(|e| e.to_string())?
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

/// JSON → CEL. Integers stay integers so `2026 - value` is integer arithmetic.
pub fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => {
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
        cel::Value::Float(f) => Value::Number(
            Number::from_f64(*f).ok_or_else(|| format!("result {f} is not a JSON number"))?,
        ),
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
    fn errors_are_messages_not_panics() {
        assert!(Expression::compile("value +").is_err());
        let e = Expression::compile("value / 0").unwrap();
        assert!(e.eval(&json!(1), &json!({}), &Map::new()).is_err());
        let e = Expression::compile("nope + 1").unwrap();
        assert!(e.eval(&json!(1), &json!({}), &Map::new()).is_err());
    }
}
