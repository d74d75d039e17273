//! Compiled lenses: the ops of one or more lenses, each in a direction, turned into steps that
//! run over documents.
//!
//! A [`Plan`] keeps two step lists:
//! - `steps`, one per op, used when a translation merges onto a stored document (conservation
//!   needs each op's own view of what it would lose);
//! - `fused`, the same steps after fusion (renames compose, add-then-remove cancels, nested ops
//!   on one field group under one `in`), used for plain reads, where speed matters.
//!
//! Both directions of every op are compiled up front, so an op that cannot be reversed is
//! reported when the plan is built, never when a document happens to need it.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::{type_name, LensError};
use crate::expr::{Expression, Numbers};
use crate::lens::Lens;
use crate::op::{Convert, FieldSpec, LensOp, Mapping, SplitJoin, TransformOp};
use crate::pointer;
use crate::transform::{Transform, Transforms};

/// Parameters a translation passes to expressions (e.g. `referenceYear`). The pure core reads
/// no clock: a caller that needs "now" passes it here.
pub type Params = Map<String, Value>;

/// Which way a lens is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Old version → new version.
    Forward,
    /// New version → old version.
    Backward,
}

impl Direction {
    /// The other direction.
    pub fn flip(self) -> Direction {
        match self {
            Direction::Forward => Direction::Backward,
            Direction::Backward => Direction::Forward,
        }
    }
}

/// One op of a plan, with the direction it runs in and where it was declared.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectedOp {
    pub op: LensOp,
    pub direction: Direction,
    /// Where the op was declared (a JSON pointer into its lens, prefixed by the lens's label).
    pub origin: String,
}

/// A compiled translation from one document shape to another.
///
/// ```
/// use mutatis_lens::{Lens, Plan, Direction, Params, Transforms};
/// use serde_json::json;
///
/// let lens = Lens::from_file_str("lens:\n  - rename: {source: done, destination: finished}\n  - add: {name: important, type: boolean}\n").unwrap();
/// let up = Plan::compile(&lens, Direction::Forward, &Transforms::new()).unwrap();
/// let doc = up.translate(&json!({"title": "a", "done": true}), &Params::new()).unwrap();
/// assert_eq!(doc, json!({"title": "a", "finished": true, "important": false}));
///
/// // An old client's write is merged onto the stored document: `important` survives.
/// let stored = json!({"title": "a", "finished": false, "important": true});
/// let written = up.translate_onto(&json!({"title": "b", "done": true}), &stored, &Params::new()).unwrap();
/// assert_eq!(written, json!({"title": "b", "finished": true, "important": true}));
/// ```
#[derive(Clone, Debug)]
pub struct Plan {
    ops: Arc<[DirectedOp]>,
    body: Arc<Body>,
    reverse: Arc<Body>,
}

#[derive(Debug)]
pub(crate) struct Body {
    steps: Vec<Step>,
    /// Steps in the opposite direction, in reverse order: they carry a stored document back
    /// to each intermediate shape.
    rev: Vec<Step>,
    pub(crate) fused: Vec<Step>,
    /// Top-level fields the fused steps read or write; `None` when some step reads the whole
    /// object (then the raw path materialises everything).
    touched: Option<Vec<String>>,
    /// The fused steps compiled for raw bytes (`None` exactly when `touched` is).
    pub(crate) raw: Option<crate::raw::Program>,
}

impl Body {
    /// A body from its per-op steps and their reverses; fuses the steps once, here, so that
    /// every translation reuses the result.
    fn new(steps: Vec<Step>, rev: Vec<Step>) -> Body {
        let fused = fuse(steps.clone());
        let touched = touched_fields(&fused);
        let raw = crate::raw::Program::compile(&fused);
        Body {
            steps,
            rev,
            fused,
            touched,
            raw,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) kind: StepKind,
    pub(crate) origin: Arc<str>,
}

#[derive(Debug, Clone)]
pub(crate) enum StepKind {
    Rename {
        from: String,
        to: String,
    },
    /// Add `name` if absent: from the stored document if it has it, else `fill`.
    Insert {
        name: String,
        fill: Option<Value>,
    },
    Delete {
        name: String,
    },
    Hoist {
        host: String,
        name: String,
    },
    Plunge {
        host: String,
        name: String,
    },
    Wrap {
        name: String,
    },
    Head {
        name: String,
    },
    In {
        name: String,
        sub: Arc<Body>,
    },
    Map {
        sub: Arc<Body>,
    },
    /// The value functions are boxed: a table or an expression is far larger than any
    /// other step, and every step would otherwise be as large.
    Convert {
        name: String,
        fwd: Box<ValueFn>,
        bwd: Box<ValueFn>,
    },
    Copy {
        from: String,
        to: String,
    },
    Split(SplitJoin),
    Join(SplitJoin),
    Set {
        name: String,
        value: Value,
    },
    /// The reverse of `set`: restore the stored value where one is known.
    Keep {
        name: String,
    },
}

#[derive(Clone)]
pub(crate) enum ValueFn {
    Table {
        entries: Map<String, Value>,
        default: Option<Value>,
    },
    Expr {
        expr: Expression,
        default: Option<Value>,
    },
    Transform {
        t: Arc<dyn Transform>,
        using: String,
        args: Value,
        backward: bool,
    },
}

impl ValueFn {
    /// Whether computing a value may read the object that holds it (an expression naming
    /// `doc`); otherwise the value and the parameters alone decide it.
    pub(crate) fn reads_doc(&self) -> bool {
        match self {
            ValueFn::Expr { expr, .. } => expr.reads_doc(),
            ValueFn::Table { .. } | ValueFn::Transform { .. } => false,
        }
    }
}

impl std::fmt::Debug for ValueFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueFn::Table { entries, default } => f
                .debug_struct("Table")
                .field("entries", entries)
                .field("default", default)
                .finish(),
            ValueFn::Expr { expr, .. } => write!(f, "Expr({})", expr.source()),
            ValueFn::Transform {
                using, backward, ..
            } => {
                write!(f, "Transform({using}, backward: {backward})")
            }
        }
    }
}

impl Plan {
    /// The plan that changes nothing (the current version read in the current version).
    pub fn identity() -> Plan {
        let empty = || Arc::new(Body::new(Vec::new(), Vec::new()));
        Plan {
            ops: Arc::from(Vec::new()),
            body: empty(),
            reverse: empty(),
        }
    }

    /// Compile one lens in one direction.
    pub fn compile(
        lens: &Lens,
        direction: Direction,
        transforms: &Transforms,
    ) -> Result<Plan, LensError> {
        Plan::compose([("", lens, direction)], transforms)
    }

    /// Compile several lenses, applied in order, each in its own direction, into one plan.
    /// Each label (e.g. `todo 1→2`) prefixes the op pointers of its lens in errors.
    pub fn compose<'a, I>(lenses: I, transforms: &Transforms) -> Result<Plan, LensError>
    where
        I: IntoIterator<Item = (&'a str, &'a Lens, Direction)>,
    {
        let mut ops = Vec::new();
        for (label, lens, direction) in lenses {
            let indexed: Vec<(usize, &LensOp)> = lens.ops().iter().enumerate().collect();
            let ordered: Box<dyn Iterator<Item = (usize, &LensOp)>> = match direction {
                Direction::Forward => Box::new(indexed.into_iter()),
                Direction::Backward => Box::new(indexed.into_iter().rev()),
            };
            for (i, op) in ordered {
                ops.push(DirectedOp {
                    op: op.clone(),
                    direction,
                    origin: format!("{label}/{i}"),
                });
            }
        }
        Plan::from_directed(ops, transforms)
    }

    /// Compile a sequence of already-directed ops.
    pub fn from_directed(ops: Vec<DirectedOp>, transforms: &Transforms) -> Result<Plan, LensError> {
        let forward: Vec<(&LensOp, Direction, &str)> = ops
            .iter()
            .map(|d| (&d.op, d.direction, d.origin.as_str()))
            .collect();
        let backward: Vec<(&LensOp, Direction, &str)> = ops
            .iter()
            .rev()
            .map(|d| (&d.op, d.direction.flip(), d.origin.as_str()))
            .collect();
        let body = Arc::new(compile_body(&forward, transforms)?);
        let reverse = Arc::new(compile_body(&backward, transforms)?);
        Ok(Plan {
            ops: ops.into(),
            body,
            reverse,
        })
    }

    /// The same translation the other way round.
    pub fn reverse(&self) -> Plan {
        let ops: Vec<DirectedOp> = self
            .ops
            .iter()
            .rev()
            .map(|d| DirectedOp {
                op: d.op.clone(),
                direction: d.direction.flip(),
                origin: d.origin.clone(),
            })
            .collect();
        Plan {
            ops: ops.into(),
            body: self.reverse.clone(),
            reverse: self.body.clone(),
        }
    }

    /// The directed ops this plan runs, in order (schema and patch translation walk these).
    pub fn ops(&self) -> &[DirectedOp] {
        &self.ops
    }

    /// Whether the plan changes nothing at all.
    pub fn is_identity(&self) -> bool {
        self.body.fused.is_empty()
    }

    /// Top-level fields this plan reads or writes, or `None` if it needs the whole document.
    pub fn touched_fields(&self) -> Option<&[String]> {
        self.body.touched.as_deref()
    }

    /// Translate a document.
    pub fn translate(&self, doc: &Value, params: &Params) -> Result<Value, LensError> {
        let mut out = doc.clone();
        run(&self.body.fused, &mut out, None, params, "")?;
        Ok(out)
    }

    /// Translate a document in place.
    pub fn translate_in_place(&self, doc: &mut Value, params: &Params) -> Result<(), LensError> {
        run(&self.body.fused, doc, None, params, "")
    }

    /// Translate `doc` and merge it onto `stored`, a document already in the target shape:
    /// whatever the source shape cannot express is kept from `stored` (conservation). This is
    /// how an old client writes without erasing the fields it cannot see.
    pub fn translate_onto(
        &self,
        doc: &Value,
        stored: &Value,
        params: &Params,
    ) -> Result<Value, LensError> {
        let mut out = doc.clone();
        run_onto(&self.body, &mut out, stored, params, "")?;
        Ok(out)
    }

    /// The fused steps compiled for raw bytes, if no step needs the whole document.
    pub(crate) fn raw_program(&self) -> Option<&crate::raw::Program> {
        self.body.raw.as_ref()
    }
}

/// Run a body's per-op steps with a stored document: carry `stored` back through the reverse
/// steps to get its shape after each forward step, then run each forward step against it.
fn run_onto(
    body: &Body,
    doc: &mut Value,
    stored: &Value,
    params: &Params,
    at: &str,
) -> Result<(), LensError> {
    let n = body.steps.len();
    // bases[i] is the stored document in the shape that follows forward step i.
    let mut bases: Vec<Value> = Vec::with_capacity(n);
    let mut b = stored.clone();
    for (i, step) in body.rev.iter().enumerate() {
        bases.push(b.clone());
        if i + 1 < n {
            apply(step, &mut b, None, params, at)?;
        }
    }
    bases.reverse();
    for (step, base) in body.steps.iter().zip(&bases) {
        apply(step, doc, Some(base), params, at)?;
    }
    Ok(())
}

pub(crate) fn run(
    steps: &[Step],
    doc: &mut Value,
    base: Option<&Value>,
    params: &Params,
    at: &str,
) -> Result<(), LensError> {
    for step in steps {
        apply(step, doc, base, params, at)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Compilation

type OpRef<'a> = (&'a LensOp, Direction, &'a str);

fn compile_body(ops: &[OpRef<'_>], transforms: &Transforms) -> Result<Body, LensError> {
    let mut steps = Vec::with_capacity(ops.len());
    for (op, dir, origin) in ops {
        steps.push(compile_step(op, *dir, origin, transforms)?);
    }
    let mut rev = Vec::with_capacity(ops.len());
    for (op, dir, origin) in ops.iter().rev() {
        rev.push(compile_step(op, dir.flip(), origin, transforms)?);
    }
    Ok(Body::new(steps, rev))
}

fn nested(
    lens: &[LensOp],
    dir: Direction,
    origin: &str,
    transforms: &Transforms,
) -> Result<Arc<Body>, LensError> {
    let origins: Vec<String> = (0..lens.len())
        .map(|i| format!("{origin}/lens/{i}"))
        .collect();
    let mut refs: Vec<OpRef<'_>> = lens
        .iter()
        .zip(&origins)
        .map(|(op, o)| (op, dir, o.as_str()))
        .collect();
    if dir == Direction::Backward {
        refs.reverse();
    }
    Ok(Arc::new(compile_body(&refs, transforms)?))
}

fn compile_step(
    op: &LensOp,
    dir: Direction,
    origin: &str,
    transforms: &Transforms,
) -> Result<Step, LensError> {
    use Direction::{Backward, Forward};
    let irreversible = |reason: &str| LensError::Irreversible {
        name: op.name().into(),
        op: origin.into(),
        reason: reason.into(),
    };
    let kind = match (op, dir) {
        (
            LensOp::Rename {
                source,
                destination,
            },
            Forward,
        ) => StepKind::Rename {
            from: source.clone(),
            to: destination.clone(),
        },
        (
            LensOp::Rename {
                source,
                destination,
            },
            Backward,
        ) => StepKind::Rename {
            from: destination.clone(),
            to: source.clone(),
        },
        (LensOp::Add(spec), Forward) | (LensOp::Remove(spec), Backward) => {
            if matches!(op, LensOp::Remove(_)) && !spec.has_type() {
                return Err(irreversible(
                    "a `remove` needs the field's `type` (or a `default`) so that the field can be restored",
                ));
            }
            insert_step(spec)
        }
        (LensOp::Add(spec), Backward) | (LensOp::Remove(spec), Forward) => {
            if matches!(op, LensOp::Remove(_)) && !spec.has_type() {
                return Err(irreversible(
                    "a `remove` needs the field's `type` (or a `default`) so that the field can be restored",
                ));
            }
            StepKind::Delete {
                name: spec.name.clone(),
            }
        }
        (LensOp::Hoist { host, name }, Forward) | (LensOp::Plunge { host, name }, Backward) => {
            StepKind::Hoist {
                host: host.clone(),
                name: name.clone(),
            }
        }
        (LensOp::Hoist { host, name }, Backward) | (LensOp::Plunge { host, name }, Forward) => {
            StepKind::Plunge {
                host: host.clone(),
                name: name.clone(),
            }
        }
        (LensOp::Wrap { name }, Forward) | (LensOp::Head { name }, Backward) => {
            StepKind::Wrap { name: name.clone() }
        }
        (LensOp::Wrap { name }, Backward) | (LensOp::Head { name }, Forward) => {
            StepKind::Head { name: name.clone() }
        }
        (LensOp::In { name, lens }, _) => StepKind::In {
            name: name.clone(),
            sub: nested(lens, dir, origin, transforms)?,
        },
        (LensOp::Map { lens }, _) => StepKind::Map {
            sub: nested(lens, dir, origin, transforms)?,
        },
        (LensOp::Convert(c), _) => {
            let (f, b) = convert_fns(c, origin)?;
            let (fwd, bwd) = if dir == Forward { (f, b) } else { (b, f) };
            StepKind::Convert {
                name: c.name.clone(),
                fwd: Box::new(fwd),
                bwd: Box::new(bwd),
            }
        }
        (
            LensOp::Copy {
                source,
                destination,
            },
            Forward,
        ) => StepKind::Copy {
            from: source.clone(),
            to: destination.clone(),
        },
        (LensOp::Copy { destination, .. }, Backward) => StepKind::Delete {
            name: destination.clone(),
        },
        (LensOp::Split(sj), Forward) | (LensOp::Join(sj), Backward) => StepKind::Split(sj.clone()),
        (LensOp::Split(sj), Backward) | (LensOp::Join(sj), Forward) => StepKind::Join(sj.clone()),
        (LensOp::Set { name, value }, Forward) => StepKind::Set {
            name: name.clone(),
            value: value.clone(),
        },
        (LensOp::Set { name, .. }, Backward) => StepKind::Keep { name: name.clone() },
        (LensOp::Transform(t), _) => transform_step(t, dir, origin, transforms)?,
    };
    Ok(Step {
        kind,
        origin: origin.into(),
    })
}

fn insert_step(spec: &FieldSpec) -> StepKind {
    StepKind::Insert {
        name: spec.name.clone(),
        fill: spec.fill_value(),
    }
}

fn transform_step(
    t: &TransformOp,
    dir: Direction,
    origin: &str,
    transforms: &Transforms,
) -> Result<StepKind, LensError> {
    let imp = transforms
        .get(&t.using)
        .ok_or_else(|| LensError::UnknownTransform {
            transform: t.using.clone(),
            op: origin.into(),
        })?;
    let make = |backward| ValueFn::Transform {
        t: imp.clone(),
        using: t.using.clone(),
        args: t.args.clone(),
        backward,
    };
    let backward = dir == Direction::Backward;
    Ok(StepKind::Convert {
        name: t.name.clone(),
        fwd: Box::new(make(backward)),
        bwd: Box::new(make(!backward)),
    })
}

/// The forward and backward value functions of a `convert`, deriving a missing reverse.
fn convert_fns(c: &Convert, origin: &str) -> Result<(ValueFn, ValueFn), LensError> {
    let compile = |m: &Mapping, numbers: Numbers| -> Result<ValueFn, LensError> {
        Ok(match m {
            Mapping::Table { entries, default } => ValueFn::Table {
                entries: entries.clone(),
                default: default.clone(),
            },
            Mapping::Expr { source, default } => ValueFn::Expr {
                expr: Expression::compile(source)
                    .map_err(|reason| LensError::ExpressionParse {
                        op: origin.into(),
                        expr: source.clone(),
                        reason,
                    })?
                    .with_numbers(numbers),
                default: default.clone(),
            },
        })
    };
    // Each direction reads the type it declares for its input.
    let numbers = Numbers::for_type(c.source_type.as_ref());
    let fwd = compile(&c.forward, numbers)?;
    let numbers = Numbers::for_type(c.destination_type.as_ref());
    let bwd = match &c.backward {
        Some(b) => compile(b, numbers)?,
        None => derive_reverse(&fwd, c).map_err(|reason| LensError::Irreversible {
            name: "convert".into(),
            op: origin.into(),
            reason,
        })?,
    };
    Ok((fwd, bwd))
}

fn derive_reverse(fwd: &ValueFn, c: &Convert) -> Result<ValueFn, String> {
    match fwd {
        ValueFn::Expr { expr, .. } => expr.derive_inverse().map(|expr| ValueFn::Expr { expr: expr.with_numbers(Numbers::for_type(c.destination_type.as_ref())), default: None }).ok_or_else(|| {
            format!(
                "give `backward`: the reverse of `{}` cannot be derived (only `value ± k` and `k ± value` are)",
                expr.source()
            )
        }),
        ValueFn::Table { entries, .. } => {
            let source_is_string = matches!(&c.source_type, Some(Value::String(t)) if t == "string");
            let mut inverse = Map::new();
            for (k, v) in entries {
                let key = value_key(v);
                if inverse.contains_key(&key) {
                    return Err(format!(
                        "give `backward`: the table maps two values to {v}, so it has no unique reverse"
                    ));
                }
                let original = if source_is_string {
                    Value::String(k.clone())
                } else {
                    serde_json::from_str(k).unwrap_or_else(|_| Value::String(k.clone()))
                };
                inverse.insert(key, original);
            }
            Ok(ValueFn::Table {
                entries: inverse,
                default: None,
            })
        }
        ValueFn::Transform { .. } => Err("transforms are reversed by their own code".into()),
    }
}

/// The key a value is looked up by in a `convert` table: a string is itself, anything else
/// its JSON text (`true`, `3`, `null`), as Cambria's tables are written.
pub(crate) fn value_key(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        // A whole number is looked up as the integer it is (`3.0` finds `"3"`), as JSON
        // Schema's `enum` and `const` compare numbers by value.
        Value::Number(n) => match crate::json::whole(n) {
            Some(i) => i.to_string(),
            None => n.to_string(),
        },
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Fusion

/// The top-level fields a step reads or writes; `None` if it may read the whole object.
pub(crate) fn step_fields(kind: &StepKind) -> Option<Vec<&str>> {
    Some(match kind {
        StepKind::Rename { from, to } | StepKind::Copy { from, to } => vec![from, to],
        StepKind::Insert { name, .. }
        | StepKind::Delete { name }
        | StepKind::Wrap { name }
        | StepKind::Head { name }
        | StepKind::In { name, .. }
        | StepKind::Set { name, .. }
        | StepKind::Keep { name } => vec![name],
        StepKind::Hoist { host, name } | StepKind::Plunge { host, name } => vec![host, name],
        StepKind::Convert { name, fwd, bwd } => {
            // An expression naming `doc` reads the whole enclosing object (the reverse too:
            // `translate_onto` evaluates it on the stored document).
            if fwd.reads_doc() || bwd.reads_doc() {
                return None;
            }
            vec![name]
        }
        StepKind::Split(sj) | StepKind::Join(sj) => {
            let mut v: Vec<&str> = sj.parts.iter().map(String::as_str).collect();
            v.push(&sj.whole);
            v
        }
        StepKind::Map { .. } => return None,
    })
}

fn touched_fields(steps: &[Step]) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for s in steps {
        for f in step_fields(&s.kind)? {
            if !out.iter().any(|o| o == f) {
                out.push(f.to_owned());
            }
        }
    }
    Some(out)
}

fn overlaps(a: &Option<Vec<&str>>, b: &Option<Vec<&str>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.iter().any(|x| b.contains(x)),
        _ => true,
    }
}

/// Fuse steps: compose renames, cancel add-then-remove, merge `in`s on one field. Two steps fuse
/// only when every step between them touches none of their fields, so moving them together
/// changes nothing.
fn fuse(mut steps: Vec<Step>) -> Vec<Step> {
    'again: loop {
        for i in 0..steps.len() {
            let fi = step_fields(&steps[i].kind);
            for j in i + 1..steps.len() {
                let fj = step_fields(&steps[j].kind);
                if !overlaps(&fi, &fj) {
                    continue;
                }
                // The steps in between must leave the second step's fields alone too, or moving
                // it next to the first would change what it sees.
                let clear = steps[i + 1..j]
                    .iter()
                    .all(|m| !overlaps(&step_fields(&m.kind), &fj));
                if !clear {
                    break;
                }
                if let Some(merged) = fuse_pair(&steps[i], &steps[j]) {
                    steps.remove(j);
                    match merged {
                        Some(step) => steps[i] = step,
                        None => {
                            steps.remove(i);
                        }
                    }
                    continue 'again;
                }
                break;
            }
        }
        return steps;
    }
}

/// `Some(Some(s))`: the pair becomes `s`; `Some(None)`: the pair cancels; `None`: no fusion.
fn fuse_pair(a: &Step, b: &Step) -> Option<Option<Step>> {
    let step = |kind| {
        Some(Some(Step {
            kind,
            origin: a.origin.clone(),
        }))
    };
    match (&a.kind, &b.kind) {
        (StepKind::Rename { from: a1, to: b1 }, StepKind::Rename { from: b2, to: c2 })
            if b1 == b2 =>
        {
            if a1 == c2 {
                Some(None)
            } else {
                step(StepKind::Rename {
                    from: a1.clone(),
                    to: c2.clone(),
                })
            }
        }
        (StepKind::Insert { name: n1, .. }, StepKind::Delete { name: n2 }) if n1 == n2 => {
            // Deleting right after inserting leaves the document as it was only when the field
            // was absent; when present, the delete still applies. So: just delete.
            step(StepKind::Delete { name: n1.clone() })
        }
        (StepKind::Delete { name: n1 }, StepKind::Delete { name: n2 }) if n1 == n2 => {
            step(StepKind::Delete { name: n1.clone() })
        }
        (StepKind::In { name: n1, sub: s1 }, StepKind::In { name: n2, sub: s2 }) if n1 == n2 => {
            let mut steps = s1.steps.clone();
            steps.extend(s2.steps.iter().cloned());
            let mut rev = s2.rev.clone();
            rev.extend(s1.rev.iter().cloned());
            step(StepKind::In {
                name: n1.clone(),
                sub: Arc::new(Body::new(steps, rev)),
            })
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Application

pub(crate) fn mismatch(step: &Step, at: &str, expected: &'static str, found: &Value) -> LensError {
    LensError::TypeMismatch {
        op: step.origin.to_string(),
        at: at.into(),
        expected,
        found: type_name(found),
    }
}

/// The object a named-field step works on. `null` at the root is a missing document: an error.
fn object_mut<'v>(
    step: &Step,
    v: &'v mut Value,
    at: &str,
) -> Result<&'v mut Map<String, Value>, LensError> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(mismatch(step, at, "an object", other)),
    }
}

fn base_field<'b>(base: Option<&'b Value>, name: &str) -> Option<&'b Value> {
    base.and_then(|b| b.as_object()).and_then(|m| m.get(name))
}

pub(crate) fn apply(
    step: &Step,
    v: &mut Value,
    base: Option<&Value>,
    params: &Params,
    at: &str,
) -> Result<(), LensError> {
    // `convert` on a bare value (inside `map`) is not named; named steps need an object.
    if let StepKind::Map { sub } = &step.kind {
        return match v {
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let at = pointer::push_index(at, i);
                    let b = base.and_then(|b| b.as_array()).and_then(|a| a.get(i));
                    match b {
                        Some(b) => run_onto(sub, item, b, params, &at)?,
                        None => run(&sub.fused, item, None, params, &at)?,
                    }
                }
                Ok(())
            }
            Value::Null => Ok(()),
            other => Err(mismatch(step, at, "an array", other)),
        };
    }
    let obj = object_mut(step, v, at)?;
    match &step.kind {
        StepKind::Rename { from, to } => {
            if let Some(x) = obj.shift_remove(from) {
                obj.insert(to.clone(), x);
            }
        }
        StepKind::Insert { name, fill } => {
            if !obj.contains_key(name) {
                if let Some(x) = base_field(base, name).or(fill.as_ref()) {
                    obj.insert(name.clone(), x.clone());
                }
            }
        }
        StepKind::Delete { name } => {
            obj.shift_remove(name);
        }
        StepKind::Hoist { host, name } => match obj.get_mut(host) {
            Some(Value::Object(h)) => {
                if let Some(x) = h.shift_remove(name) {
                    obj.insert(name.clone(), x);
                }
            }
            Some(Value::Null) | None => {}
            Some(other) => {
                return Err(mismatch(step, &pointer::push(at, host), "an object", other))
            }
        },
        StepKind::Plunge { host, name } => {
            if let Some(x) = obj.shift_remove(name) {
                let h = obj
                    .entry(host.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if h.is_null() {
                    *h = Value::Object(Map::new());
                }
                match h {
                    Value::Object(h) => {
                        h.insert(name.clone(), x);
                    }
                    other => {
                        return Err(mismatch(step, &pointer::push(at, host), "an object", other))
                    }
                }
            }
        }
        StepKind::Wrap { name } => {
            if let Some(x) = obj.get_mut(name) {
                let scalar = x.take();
                *x = match base_field(base, name) {
                    // Only the head was visible: replace it and keep the rest of the stored
                    // list. A `null` reads as "no head", so it keeps the list only when the
                    // stored head is `null` too (an unchanged write-back, so GetPut holds);
                    // otherwise the writer cleared the field.
                    Some(Value::Array(stored))
                        if stored
                            .first()
                            .is_some_and(|h| !scalar.is_null() || h.is_null()) =>
                    {
                        let mut arr = stored.clone();
                        arr[0] = scalar;
                        Value::Array(arr)
                    }
                    _ if scalar.is_null() => Value::Array(Vec::new()),
                    _ => Value::Array(vec![scalar]),
                };
            }
        }
        StepKind::Head { name } => {
            if let Some(x) = obj.get_mut(name) {
                match x {
                    Value::Array(items) => {
                        let first = if items.is_empty() {
                            Value::Null
                        } else {
                            items.swap_remove(0)
                        };
                        *x = first;
                    }
                    Value::Null => {}
                    other => {
                        return Err(mismatch(step, &pointer::push(at, name), "an array", other))
                    }
                }
            }
        }
        StepKind::In { name, sub } => {
            if let Some(x) = obj.get_mut(name) {
                if !x.is_null() {
                    let at = pointer::push(at, name);
                    match base_field(base, name) {
                        Some(b) => run_onto(sub, x, b, params, &at)?,
                        None => run(&sub.fused, x, None, params, &at)?,
                    }
                }
            }
        }
        StepKind::Map { .. } => unreachable!("handled above"),
        StepKind::Convert { name, fwd, bwd } => {
            if obj.contains_key(name) {
                // The enclosing object is copied only for an expression that reads it.
                let whole;
                let (x, doc) = if fwd.reads_doc() || bwd.reads_doc() {
                    whole = Value::Object(obj.clone());
                    (&whole[name.as_str()], &whole)
                } else {
                    (obj.get(name).unwrap_or(&Value::Null), &Value::Null)
                };
                let at_field = pointer::push(at, name);
                let kept = match base_field(base, name) {
                    Some(stored) => match eval(bwd, step, stored, doc, params, &at_field) {
                        Ok(back) if back == *x => Some(stored.clone()),
                        _ => None,
                    },
                    None => None,
                };
                let out = match kept {
                    Some(s) => s,
                    None => eval(fwd, step, x, doc, params, &at_field)?,
                };
                obj.insert(name.clone(), out);
            }
        }
        StepKind::Copy { from, to } => {
            if let Some(x) = obj.get(from) {
                let unchanged = base_field(base, from) == Some(x);
                let out = match base_field(base, to) {
                    Some(stored) if unchanged => stored.clone(),
                    _ => x.clone(),
                };
                obj.insert(to.clone(), out);
            }
        }
        StepKind::Split(sj) => {
            if let Some(x) = obj.shift_remove(&sj.whole) {
                let at_field = pointer::push(at, &sj.whole);
                let parts: Vec<Value> = match &x {
                    Value::String(s) => {
                        let stored: Option<Vec<&Value>> =
                            sj.parts.iter().map(|p| base_field(base, p)).collect();
                        match stored {
                            Some(stored)
                                if join_values(&stored, &sj.separator).as_deref()
                                    == Some(s.as_str()) =>
                            {
                                stored.into_iter().cloned().collect()
                            }
                            _ => split_string(s, &sj.separator, sj.parts.len()),
                        }
                    }
                    _ => split_value(step, sj, &x, &at_field)?,
                };
                for (name, part) in sj.parts.iter().zip(parts) {
                    obj.insert(name.clone(), part);
                }
            }
        }
        StepKind::Join(sj) => {
            if sj.parts.iter().any(|p| obj.contains_key(p)) {
                let mut values = Vec::with_capacity(sj.parts.len());
                for p in &sj.parts {
                    let x = obj.shift_remove(p).unwrap_or(Value::Null);
                    values.push(join_part(step, x, at, p)?);
                }
                let refs: Vec<&Value> = values.iter().collect();
                let joined = join_values(&refs, &sj.separator);
                let out = match (base_field(base, &sj.whole), joined) {
                    (_, None) => Value::Null,
                    (Some(Value::String(stored)), Some(j))
                        if split_string(stored, &sj.separator, sj.parts.len())
                            == values_or_empty(&values) =>
                    {
                        let _ = j;
                        Value::String(stored.clone())
                    }
                    (_, Some(j)) => Value::String(j),
                };
                obj.insert(sj.whole.clone(), out);
            }
        }
        StepKind::Set { name, value } => {
            obj.insert(name.clone(), value.clone());
        }
        StepKind::Keep { name } => {
            if let Some(stored) = base_field(base, name) {
                obj.insert(name.clone(), stored.clone());
            }
        }
    }
    Ok(())
}

/// `split` of `x` (the whole, present) with no stored document: its parts, in the order of
/// `sj.parts`. Shared with the raw translator, so both report the same errors.
pub(crate) fn split_value(
    step: &Step,
    sj: &SplitJoin,
    x: &Value,
    at_field: &str,
) -> Result<Vec<Value>, LensError> {
    match x {
        Value::String(s) => Ok(split_string(s, &sj.separator, sj.parts.len())),
        Value::Null => Ok(vec![Value::Null; sj.parts.len()]),
        other => Err(mismatch(step, at_field, "a string", other)),
    }
}

/// One part of a `join` (`null` when absent), checked to be a string or `null`; `at` is the
/// object's pointer, `name` the part's field.
fn join_part(step: &Step, x: Value, at: &str, name: &str) -> Result<Value, LensError> {
    match &x {
        Value::String(_) | Value::Null => Ok(x),
        other => Err(mismatch(step, &pointer::push(at, name), "a string", other)),
    }
}

/// The whole a `join` writes from its checked parts when there is no stored document.
pub(crate) fn join_whole(sj: &SplitJoin, values: &[Value]) -> Value {
    let refs: Vec<&Value> = values.iter().collect();
    match join_values(&refs, &sj.separator) {
        Some(j) => Value::String(j),
        None => Value::Null,
    }
}

fn values_or_empty(values: &[Value]) -> Vec<Value> {
    values
        .iter()
        .map(|v| {
            if v.is_null() {
                Value::String(String::new())
            } else {
                v.clone()
            }
        })
        .collect()
}

/// Split at the first `n - 1` separators; missing parts are empty strings.
fn split_string(s: &str, sep: &str, n: usize) -> Vec<Value> {
    let mut parts: Vec<Value> = s
        .splitn(n, sep)
        .map(|p| Value::String(p.to_owned()))
        .collect();
    parts.resize(n, Value::String(String::new()));
    parts
}

/// Join parts with `sep`, dropping trailing empty parts (so `Cher` + `""` joins back to `Cher`).
/// All-null parts join to `None` (the whole is null).
fn join_values(parts: &[&Value], sep: &str) -> Option<String> {
    if parts.iter().all(|p| p.is_null()) {
        return None;
    }
    let mut texts: Vec<&str> = parts.iter().map(|p| p.as_str().unwrap_or("")).collect();
    while texts.len() > 1 && texts.last().is_some_and(|t| t.is_empty()) {
        texts.pop();
    }
    Some(texts.join(sep))
}

fn eval(
    f: &ValueFn,
    step: &Step,
    x: &Value,
    doc: &Value,
    params: &Params,
    at: &str,
) -> Result<Value, LensError> {
    eval_at(f, step, x, doc, params, &|| at.to_owned())
}

/// [`eval`] with the pointer rendered only for an error (the raw translator's hot path).
pub(crate) fn eval_at(
    f: &ValueFn,
    step: &Step,
    x: &Value,
    doc: &Value,
    params: &Params,
    at: &dyn Fn() -> String,
) -> Result<Value, LensError> {
    match f {
        ValueFn::Table { entries, default } => match entries.get(&value_key(x)) {
            Some(v) => Ok(v.clone()),
            None => match default {
                Some(d) => Ok(d.clone()),
                // An absent value stays absent: a nullable field needs no mapping for null.
                None if x.is_null() => Ok(Value::Null),
                None => Err(LensError::NoMapping {
                    op: step.origin.to_string(),
                    at: at(),
                    value: x.to_string(),
                }),
            },
        },
        ValueFn::Expr { expr, default } => match expr.eval(x, doc, params) {
            Ok(v) => Ok(v),
            Err(reason) => match default {
                Some(d) => Ok(d.clone()),
                None => Err(LensError::Expression {
                    op: step.origin.to_string(),
                    at: at(),
                    expr: expr.source().into(),
                    reason,
                }),
            },
        },
        ValueFn::Transform {
            t,
            using,
            args,
            backward,
        } => {
            let r = if *backward {
                t.backward(x, args)
            } else {
                t.forward(x, args)
            };
            r.map_err(|reason| LensError::Transform {
                op: step.origin.to_string(),
                at: at(),
                transform: using.clone(),
                reason,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Single steps, for patch translation

impl Plan {
    /// Run one op's document semantics (no stored document) on `value`. The op is found by its
    /// position: `index[0]` is its place among this plan's per-op steps, each further index its
    /// place among the steps of the nested `in`/`map` body before it. Patch translation uses it
    /// to translate the values a patch writes exactly as documents are translated.
    pub(crate) fn apply_step_at(
        &self,
        index: &[usize],
        value: &mut Value,
        params: &Params,
        at: &str,
    ) -> Result<(), LensError> {
        let missing = || LensError::InvalidInput {
            at: at.into(),
            reason: format!("internal: the plan has no step at {index:?}"),
        };
        let mut body: &Body = &self.body;
        let mut rest = index;
        loop {
            let (&i, tail) = rest.split_first().ok_or_else(missing)?;
            let step = body.steps.get(i).ok_or_else(missing)?;
            if tail.is_empty() {
                return apply(step, value, None, params, at);
            }
            body = match &step.kind {
                StepKind::In { sub, .. } | StepKind::Map { sub } => sub,
                _ => return Err(missing()),
            };
            rest = tail;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(yaml: &str) -> Plan {
        let lens = Lens::from_file_str(yaml).unwrap();
        Plan::compile(&lens, Direction::Forward, &Transforms::new()).unwrap()
    }

    fn p() -> Params {
        Params::new()
    }

    #[test]
    fn every_cambria_op_forward_and_back() {
        let up = plan(
            "lens:
  - rename: {source: title, destination: name}
  - add: {name: important, type: boolean}
  - hoist: {host: meta, name: created}
  - plunge: {host: meta, name: owner}
  - wrap: {name: tag}
  - head: {name: assignees}
  - in: {name: details, lens: [{rename: {source: h, destination: height}}]}
  - in: {name: tasks, lens: [{map: {lens: [{rename: {source: t, destination: text}}]}}]}
  - convert: {name: done, forward: {'true': closed, 'false': open}, backward: {closed: true, open: false}}
  - remove: {name: legacy, type: string}
",
        );
        let v1 = json!({"title": "x", "meta": {"created": 1}, "owner": "me", "tag": "a",
                        "assignees": ["p", "q"], "details": {"h": 3}, "tasks": [{"t": "a"}, {"t": "b"}],
                        "done": true, "legacy": "old"});
        let v2 = up.translate(&v1, &p()).unwrap();
        assert_eq!(
            v2,
            json!({"name": "x", "important": false, "meta": {"owner": "me"}, "created": 1, "tag": ["a"],
                   "assignees": "p", "details": {"height": 3}, "tasks": [{"text": "a"}, {"text": "b"}],
                   "done": "closed"})
        );
        let down = up.reverse();
        let back = down.translate(&v2, &p()).unwrap();
        // `legacy` comes back with its type default; `q` was lost by `head`.
        assert_eq!(
            back,
            json!({"title": "x", "meta": {"created": 1}, "owner": "me", "tag": "a", "assignees": ["p"],
                   "details": {"h": 3}, "tasks": [{"t": "a"}, {"t": "b"}], "done": true, "legacy": ""})
        );
        // With the original as the stored document, nothing is lost.
        assert_eq!(down.translate_onto(&v2, &v1, &p()).unwrap(), v1);
    }

    #[test]
    fn conservation_keeps_what_the_old_version_cannot_see() {
        let up = plan(
            "lens:
  - add: {name: important, type: boolean}
  - rename: {source: done, destination: status}
  - convert: {name: status, forward: {'true': done, 'false': open}, backward: {done: true, open: false, started: false}}
",
        );
        let stored = json!({"title": "t", "important": true, "status": "started"});
        let old_view = up.reverse().translate(&stored, &p()).unwrap();
        assert_eq!(old_view, json!({"title": "t", "done": false}));
        // Unchanged write-back: everything stays (GetPut).
        assert_eq!(up.translate_onto(&old_view, &stored, &p()).unwrap(), stored);
        // A real edit: the title changes, `important` and the finer status survive.
        let edit = json!({"title": "new", "done": false});
        assert_eq!(
            up.translate_onto(&edit, &stored, &p()).unwrap(),
            json!({"title": "new", "important": true, "status": "started"})
        );
        // Marking done changes the status.
        let edit = json!({"title": "t", "done": true});
        assert_eq!(
            up.translate_onto(&edit, &stored, &p()).unwrap()["status"],
            "done"
        );
    }

    #[test]
    fn unmapped_value_is_a_typed_error_and_default_is_a_fallback() {
        let up = plan("lens:\n  - convert: {name: s, forward: {a: 1}, backward: {'1': a}}\n");
        let err = up.translate(&json!({"s": "zzz"}), &p()).unwrap_err();
        assert!(
            matches!(&err, LensError::NoMapping { at, .. } if at == "/s"),
            "{err:?}"
        );
        let up = plan("lens:\n  - convert: {name: s, forward: {a: 1}, forwardDefault: 0, backward: {'1': a}}\n");
        assert_eq!(
            up.translate(&json!({"s": "zzz"}), &p()).unwrap(),
            json!({"s": 0})
        );
    }

    #[test]
    fn expressions_use_params_and_derive_reverse() {
        let up = plan(
            "lens:\n  - rename: {source: age, destination: yearOfBirth}\n  - convert: {name: yearOfBirth, forward: 'referenceYear - value'}\n",
        );
        let params: Params = json!({"referenceYear": 2026}).as_object().unwrap().clone();
        let v = up.translate(&json!({"age": 30}), &params).unwrap();
        assert_eq!(v, json!({"yearOfBirth": 1996}));
        assert_eq!(
            up.reverse().translate(&v, &params).unwrap(),
            json!({"age": 30})
        );
        let err = up
            .translate(&json!({"age": 30}), &Params::new())
            .unwrap_err();
        assert!(matches!(err, LensError::Expression { .. }), "{err:?}");
    }

    #[test]
    fn irreversible_ops_are_rejected_when_compiled() {
        let lens = Lens::from_file_str("lens:\n  - remove: {name: x}\n").unwrap();
        let err = Plan::compile(&lens, Direction::Forward, &Transforms::new()).unwrap_err();
        assert!(matches!(err, LensError::Irreversible { .. }), "{err:?}");
        let lens =
            Lens::from_file_str("lens:\n  - convert: {name: x, forward: 'value * 2'}\n").unwrap();
        let err = Plan::compile(&lens, Direction::Forward, &Transforms::new()).unwrap_err();
        assert!(matches!(err, LensError::Irreversible { .. }), "{err:?}");
        let lens =
            Lens::from_file_str("lens:\n  - convert: {name: x, forward: 'value +'}\n").unwrap();
        let err = Plan::compile(&lens, Direction::Forward, &Transforms::new()).unwrap_err();
        assert!(matches!(err, LensError::ExpressionParse { .. }), "{err:?}");
        let lens = Lens::from_file_str("lens:\n  - transform: {name: x, using: nope}\n").unwrap();
        let err = Plan::compile(&lens, Direction::Forward, &Transforms::new()).unwrap_err();
        assert!(matches!(err, LensError::UnknownTransform { .. }), "{err:?}");
    }

    #[test]
    fn split_join_copy_set_and_transforms() {
        let mut transforms = Transforms::new();
        transforms.register_fn(
            "upper",
            |v: &Value, _: &Value| Ok(json!(v.as_str().unwrap_or("").to_uppercase())),
            |v: &Value, _: &Value| Ok(json!(v.as_str().unwrap_or("").to_lowercase())),
        );
        let lens = Lens::from_file_str(
            "lens:
  - split: {name: full, into: [first, last]}
  - copy: {source: first, destination: display}
  - set: {name: kind, value: person}
  - transform: {name: code, using: upper}
",
        )
        .unwrap();
        let up = Plan::compile(&lens, Direction::Forward, &transforms).unwrap();
        let v = up
            .translate(
                &json!({"full": "Mary Ann Smith", "kind": "?", "code": "ab"}),
                &p(),
            )
            .unwrap();
        assert_eq!(
            v,
            json!({"kind": "person", "code": "AB", "first": "Mary", "last": "Ann Smith", "display": "Mary"})
        );
        let back = up.reverse().translate(&v, &p()).unwrap();
        assert_eq!(
            back,
            json!({"kind": "person", "code": "ab", "full": "Mary Ann Smith"})
        );
        // A single name has no separator and joins back without one.
        let v = up.translate(&json!({"full": "Cher"}), &p()).unwrap();
        assert_eq!(
            up.reverse().translate(&v, &p()).unwrap(),
            json!({"kind": "person", "full": "Cher"})
        );
    }

    #[test]
    fn type_mismatch_names_the_pointer() {
        let up = plan("lens:\n  - in: {name: a, lens: [{head: {name: list}}]}\n");
        let err = up.translate(&json!({"a": {"list": 3}}), &p()).unwrap_err();
        assert!(
            matches!(&err, LensError::TypeMismatch { at, .. } if at == "/a/list"),
            "{err:?}"
        );
        let err = up.translate(&json!([1]), &p()).unwrap_err();
        assert!(matches!(err, LensError::TypeMismatch { .. }), "{err:?}");
    }

    #[test]
    fn fusion_composes_renames_and_cancels() {
        let up = plan(
            "lens:
  - rename: {source: a, destination: b}
  - add: {name: tmp, type: string}
  - rename: {source: b, destination: c}
  - remove: {name: tmp, type: string}
  - in: {name: n, lens: [{rename: {source: x, destination: y}}]}
  - in: {name: n, lens: [{rename: {source: y, destination: z}}]}
",
        );
        assert_eq!(up.body.fused.len(), 3, "{:#?}", up.body.fused);
        assert_eq!(up.touched_fields().unwrap(), &["a", "c", "tmp", "n"]);
        let v = up
            .translate(&json!({"a": 1, "n": {"x": 2}, "keep": 3}), &p())
            .unwrap();
        assert_eq!(v, json!({"c": 1, "n": {"z": 2}, "keep": 3}));
        // Renames that come back to where they started vanish.
        let round = plan("lens:\n  - rename: {source: a, destination: b}\n  - rename: {source: b, destination: a}\n");
        assert!(round.is_identity());
        // A step in between that touches the second rename's target blocks fusion.
        let blocked = plan(
            "lens:\n  - rename: {source: a, destination: b}\n  - remove: {name: c, type: string}\n  - rename: {source: b, destination: c}\n",
        );
        assert_eq!(blocked.body.fused.len(), 3);
        assert_eq!(
            blocked.translate(&json!({"a": 1, "c": "x"}), &p()).unwrap(),
            json!({"c": 1})
        );
    }
}
