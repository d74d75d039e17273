//! What each lens loses: per lens (version edge) and direction, the fields and values of the
//! source version that the target version cannot represent, and whether the lens carries the
//! previous schema exactly onto the next.
//!
//! Replication and writes rely on this: a document that crosses a lossy edge with a value the
//! target cannot hold must be refused, carried beside the document, or dropped knowingly
//! (DESIGN §10). The analysis is derived from the lens ops and the source version's schema
//! alone; it reads no documents.
//!
//! What counts as lost, op by op (the backward direction of an op is its reverse):
//!
//! | op, direction | loss |
//! |---|---|
//! | `remove` forward, `add` backward | the field ([`LossKind::Field`]); `default` is the value it comes back with |
//! | `copy` backward | the copy: it is rebuilt from its source, so an edit made to the copy alone is lost |
//! | `head` forward, `wrap` backward | the array's elements after the first ([`LossKind::Values`]) |
//! | `convert` by tables | every source value whose round trip (this direction's table, then the other's) does not give it back; values outside the table that fall to a default; values with no mapping at all ([`LossKind::Refused`]) |
//! | `convert` by expression | nothing when the reverse is derived (`value ± k`); [`LossKind::Unverified`] when both directions are written by hand |
//! | `transform` | [`LossKind::Unverified`]: code registered by the program, not analysable |
//! | `set` forward | the previous value, overwritten by the constant |
//! | `split` forward, `join` backward | a whole whose trailing parts are empty (e.g. one ending in the separator) comes back without them |
//! | `join` forward, `split` backward | a part (other than the last) that contains the separator is split differently on the way back |
//! | `rename`, `hoist`, `plunge`, `wrap` forward, `add` forward, `remove` backward, `copy` forward, `set` backward | nothing |
//!
//! Pointers name the field in the **source** version of the direction: a field renamed earlier
//! in the same lens is reported under its name in the source, and a field the lens itself
//! created (an `add` followed by a `remove`) loses nothing of the source, so it is not
//! reported. Value domains come from the source schema: a `convert` over a boolean or an
//! `enum` is checked value by value; over an open type (any string), the table's own entries
//! are checked and every other value is "other values".

use std::collections::BTreeSet;

use mutatis_lens::{pointer, Direction, Lens, LensOp, Mapping, SplitJoin};
use serde_json::{json, Map, Value};

use crate::diff::differences;
use crate::error::{ErrorKind, SchemaError};
use crate::schema_nav::{unwrap, MAX_REF_CHAIN};
use crate::set::{SchemaSet, TypeDef};

/// What kind of thing a direction of a lens loses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LossKind {
    /// The whole field: the target version has no place for it.
    Field,
    /// Some values of the field: the target version maps them so that they cannot be told
    /// apart (or cuts them short) and they do not come back as they were.
    Values,
    /// Some values of the field cannot be translated at all (no mapping and no default): a
    /// translation of such a document fails rather than losing them silently.
    Refused,
    /// The round trip depends on code or hand-written expressions the analysis cannot check:
    /// treat as possibly lossy.
    Unverified,
}

impl LossKind {
    /// The name used in the manifest and in `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            LossKind::Field => "field",
            LossKind::Values => "values",
            LossKind::Refused => "refused",
            LossKind::Unverified => "unverified",
        }
    }
}

/// One thing a direction of a lens loses.
#[derive(Debug, Clone, PartialEq)]
pub struct Loss {
    /// What is lost.
    pub kind: LossKind,
    /// The field's JSON pointer into the source version's schema (`/properties/done`), through
    /// `$ref`s and nullable wrappers where the schema has them.
    pub pointer: String,
    /// The field's place in a source document, as a JSON pointer where `*` stands for every
    /// element of an array (`/tags/*/label`).
    pub path: String,
    /// The op that loses it: its pointer within the lens (`/1`, `/0/lens/2` for a nested op).
    pub op: String,
    /// The op's name (`remove`, `convert`, …).
    pub op_name: &'static str,
    /// A sentence for people.
    pub detail: String,
    /// The source values that are lost, when they can be listed.
    pub values: Vec<Value>,
    /// Whether values other than [`Loss::values`] are lost too (e.g. every string outside a
    /// table that falls to a default).
    pub other_values: bool,
    /// For a dropped field: the value it takes when the document comes back (a document
    /// holding exactly this value loses nothing).
    pub default: Option<Value>,
}

impl Loss {
    /// The loss as it appears in the manifest (see the module docs of [`crate::SchemaSet::manifest`]).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), json!(self.kind.as_str()));
        m.insert("pointer".into(), json!(self.pointer));
        m.insert("path".into(), json!(self.path));
        m.insert("op".into(), json!(self.op));
        m.insert("opName".into(), json!(self.op_name));
        m.insert("detail".into(), json!(self.detail));
        if !self.values.is_empty() {
            m.insert("values".into(), Value::Array(self.values.clone()));
        }
        if self.other_values {
            m.insert("otherValues".into(), Value::Bool(true));
        }
        if let Some(d) = &self.default {
            m.insert("default".into(), d.clone());
        }
        Value::Object(m)
    }
}

/// The analysis of one lens: the one that produces version `to` from version `from`.
#[derive(Debug, Clone, PartialEq)]
pub struct LensAnalysis {
    /// The version the lens starts from.
    pub from: u32,
    /// The version the lens produces (whose definition holds it).
    pub to: u32,
    /// Whether the lens carries `from`'s schema exactly onto `to`'s (applying it forward gives
    /// `to`'s schema, up to the order of `required`/`enum`/`type` lists). A loaded set always
    /// has this (the loader refuses a written-out schema that differs from the derived one;
    /// [`crate::VersionDef::is_schema_written`] says whether there was one to compare); it is
    /// recomputed here rather than assumed.
    pub exact: bool,
    /// Whether the lens carries `to`'s schema exactly back onto `from`'s. Some lenses do not
    /// (a `head` and then a `wrap` gives a nullable item schema, not the original array), which
    /// is worth knowing before relying on round trips of schemas.
    pub reverse_exact: bool,
    /// Where the backward schema differs from `from`'s (pointers into either), or why it could
    /// not be derived.
    pub reverse_differences: Vec<String>,
    /// What translating `from` → `to` loses (pointers into `from`'s schema).
    pub forward: Vec<Loss>,
    /// What translating `to` → `from` loses (pointers into `to`'s schema).
    pub backward: Vec<Loss>,
}

impl LensAnalysis {
    /// The losses of one direction (forward: `from` → `to`).
    pub fn losses(&self, direction: Direction) -> &[Loss] {
        match direction {
            Direction::Forward => &self.forward,
            Direction::Backward => &self.backward,
        }
    }

    /// The analysis as written under `analysis` in the manifest:
    ///
    /// ```json
    /// {"exact": true, "reverseExact": true,
    ///  "loss": {"forward": [], "backward": [{"kind": "field", "pointer": "/properties/important", ...}]}}
    /// ```
    /// (`reverseDifferences` only when the reverse is not exact.)
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("exact".into(), json!(self.exact));
        m.insert("reverseExact".into(), json!(self.reverse_exact));
        if !self.reverse_differences.is_empty() {
            m.insert("reverseDifferences".into(), json!(self.reverse_differences));
        }
        let list = |l: &[Loss]| Value::Array(l.iter().map(Loss::to_json).collect());
        m.insert(
            "loss".into(),
            json!({"forward": list(&self.forward), "backward": list(&self.backward)}),
        );
        Value::Object(m)
    }
}

/// One lens walked in one direction on the way between two versions, and what it loses.
#[derive(Debug, Clone, PartialEq)]
pub struct LossStep {
    /// The version this step starts from (the losses' pointers are into its schema).
    pub from: u32,
    /// The version this step reaches.
    pub to: u32,
    /// Which way the lens is walked: forward from its `from` to the version that declares it.
    pub direction: Direction,
    /// What the step loses.
    pub losses: Vec<Loss>,
}

/// What translating a type from one version to another loses, step by step along the path of
/// lenses between them ([`SchemaSet::loss`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LossReport {
    /// The type.
    pub type_name: String,
    /// The version translated from.
    pub from: u32,
    /// The version translated to.
    pub to: u32,
    /// The lenses on the path, in order. Empty when `from == to`.
    pub steps: Vec<LossStep>,
}

impl LossReport {
    /// Whether nothing is lost (and nothing is unverified) on the whole path.
    pub fn is_lossless(&self) -> bool {
        self.steps.iter().all(|s| s.losses.is_empty())
    }

    /// Every loss on the path, with the step it happens in.
    pub fn losses(&self) -> impl Iterator<Item = (&LossStep, &Loss)> {
        self.steps
            .iter()
            .flat_map(|s| s.losses.iter().map(move |l| (s, l)))
    }
}

impl SchemaSet {
    /// The analysis of the lens that produces `type_name@version`, or `None` for the lowest
    /// version (which has no lens).
    pub fn lens_analysis(
        &self,
        type_name: &str,
        version: u32,
    ) -> Result<Option<LensAnalysis>, SchemaError> {
        let ty = self.type_def(type_name)?;
        analyse_version(self, ty, version)
    }

    /// What translating `type_name` documents from version `from` to version `to` loses, lens
    /// by lens along the path the translation takes ([`SchemaSet::plan`] follows the same one).
    ///
    /// ```
    /// # use std::path::PathBuf;
    /// use mutatis_schema::{LossKind, SchemaSet};
    /// let set = SchemaSet::from_sources(vec![
    ///     (PathBuf::from("mutatis.yaml"), "name: a\nreleases: [{name: '1', types: {t: 2}, status: current}]\n".into()),
    ///     (PathBuf::from("types/t.yaml"), "type: t\nversions:\n  1:\n    schema: {type: object, properties: {a: {type: string}}}\n  2:\n    lens: [{add: {name: b, type: integer}}]\n".into()),
    /// ])?;
    /// assert!(set.loss("t", 1, 2)?.is_lossless());
    /// let down = set.loss("t", 2, 1)?;
    /// let (_, loss) = down.losses().next().unwrap();
    /// assert_eq!((loss.kind, loss.pointer.as_str()), (LossKind::Field, "/properties/b"));
    /// # Ok::<(), mutatis_schema::SchemaError>(())
    /// ```
    pub fn loss(&self, type_name: &str, from: u32, to: u32) -> Result<LossReport, SchemaError> {
        let ty = self.type_def(type_name)?;
        ty.get(from)?;
        ty.get(to)?;
        let path = ty.graph.path(&from, &to).map_err(|_| {
            SchemaError::new(ErrorKind::NoPath {
                from: from.to_string(),
                to: to.to_string(),
            })
            .for_type(type_name)
        })?;
        let mut steps = Vec::with_capacity(path.len());
        for step in path {
            // The lens of an edge belongs to the version it produces.
            let declared = step.edge.to;
            let def = ty.get(declared)?;
            let (Some(lens), Some(parent)) = (def.lens.as_ref(), def.from) else {
                return Err(SchemaError::new(ErrorKind::MissingLens {
                    version: declared,
                    from: step.edge.from,
                })
                .for_type(type_name)
                .for_version(declared));
            };
            let (start, end, source) = match step.direction {
                Direction::Forward => (parent, declared, &ty.get(parent)?.schema),
                Direction::Backward => (declared, parent, &def.schema),
            };
            steps.push(LossStep {
                from: start,
                to: end,
                direction: step.direction,
                losses: lens_losses(lens, step.direction, source),
            });
        }
        Ok(LossReport {
            type_name: type_name.to_owned(),
            from,
            to,
            steps,
        })
    }
}

/// The analysis of the lens that produces `version` (`None` for a version without a lens).
pub(crate) fn analyse_version(
    set: &SchemaSet,
    ty: &TypeDef,
    version: u32,
) -> Result<Option<LensAnalysis>, SchemaError> {
    let def = ty.get(version)?;
    let (Some(lens), Some(parent)) = (def.lens.as_ref(), def.from) else {
        return Ok(None);
    };
    let parent_schema = &ty.get(parent)?.schema;
    // The schema checks use the set's compiled (and cached) plan for this edge; a plan or a
    // schema translation that fails is recorded as "not exact" with the reason, never raised:
    // the loss analysis is still worth having.
    let (exact, reverse) = match set.plan(&ty.name, parent, version) {
        Ok(plan) => {
            let exact = plan
                .translate_schema(parent_schema)
                .map(|s| differences(&s, &def.schema).is_empty())
                .unwrap_or(false);
            let reverse = match plan.reverse().translate_schema(&def.schema) {
                Ok(back) => differences(&back, parent_schema),
                Err(e) => vec![format!("cannot translate the schema back: {e}")],
            };
            (exact, reverse)
        }
        Err(e) => (false, vec![format!("cannot compile the lens: {e}")]),
    };
    Ok(Some(LensAnalysis {
        from: parent,
        to: version,
        exact,
        reverse_exact: reverse.is_empty(),
        reverse_differences: reverse,
        forward: lens_losses(lens, Direction::Forward, parent_schema),
        backward: lens_losses(lens, Direction::Backward, &def.schema),
    }))
}

/// What running `lens` in `direction` over documents of `source` (the schema of the
/// direction's source version) loses.
pub fn lens_losses(lens: &Lens, direction: Direction, source: &Value) -> Vec<Loss> {
    let mut walk = Walk {
        source,
        dir: direction,
        traces: Vec::new(),
        out: Vec::new(),
    };
    walk.ops(lens.ops(), &[], "");
    walk.out
}

// ---------------------------------------------------------------------------------------------
// The walk

/// A document path: property names, `*` for every element of an array.
type Path = Vec<String>;

/// How a field of the current (intermediate) shape came to be, recorded op by op so that a
/// later op's field can be traced back to the source version.
enum Trace {
    /// Everything under `from` now lives under `to` (rename, hoist, plunge, wrap, head).
    Move { from: Path, to: Path },
    /// `at` was made by the lens (add, copy): it holds nothing of the source.
    Created { at: Path },
    /// `to` is derived from the source field `from`, with a different value (split, join).
    Derived { from: Path, to: Path },
    /// The value at `at` was changed; `domain` lists what it can now be, when that is finite.
    Changed {
        at: Path,
        domain: Option<Vec<Value>>,
    },
}

/// The values a field can hold where an op reads it.
enum Domain {
    /// Whatever the source schema allows at the traced path.
    Source,
    /// A finite list fixed by an earlier op of the lens.
    Known(Vec<Value>),
    /// Not known (an earlier op changed the value in a way the walk cannot follow).
    Unknown,
}

/// A current field traced back to the source version.
struct Origin {
    path: Path,
    domain: Domain,
}

struct Walk<'a> {
    source: &'a Value,
    dir: Direction,
    traces: Vec<Trace>,
    out: Vec<Loss>,
}

fn at(scope: &[String], name: &str) -> Path {
    let mut p = scope.to_vec();
    p.push(name.to_owned());
    p
}

fn starts_with(p: &[String], prefix: &[String]) -> bool {
    p.len() >= prefix.len() && p[..prefix.len()] == *prefix
}

fn rebase(p: &[String], from: &[String], to: &[String]) -> Path {
    let mut out = to.to_vec();
    out.extend_from_slice(&p[from.len()..]);
    out
}

impl Walk<'_> {
    fn ops(&mut self, ops: &[LensOp], scope: &[String], origin: &str) {
        let indexed: Vec<(usize, &LensOp)> = match self.dir {
            Direction::Forward => ops.iter().enumerate().collect(),
            Direction::Backward => ops.iter().enumerate().rev().collect(),
        };
        for (i, op) in indexed {
            self.op(op, scope, &pointer::push_index(origin, i));
        }
    }

    /// Trace a field of the current shape back to the source, or `None` if the lens made it.
    fn origin(&self, current: &[String]) -> Option<Origin> {
        let mut p = current.to_vec();
        let mut domain = Domain::Source;
        let mut settled = false;
        for t in self.traces.iter().rev() {
            match t {
                Trace::Move { from, to } => {
                    if starts_with(&p, to) {
                        p = rebase(&p, to, from);
                    }
                }
                Trace::Created { at } => {
                    if starts_with(&p, at) {
                        return None;
                    }
                }
                Trace::Derived { from, to } => {
                    if starts_with(&p, to) {
                        p = rebase(&p, to, from);
                        if !settled {
                            domain = Domain::Unknown;
                            settled = true;
                        }
                    }
                }
                Trace::Changed { at, domain: d } => {
                    if !settled && starts_with(&p, at) {
                        domain = match d {
                            Some(values) if p == *at => Domain::Known(values.clone()),
                            _ => Domain::Unknown,
                        };
                        settled = true;
                    }
                }
            }
        }
        Some(Origin { path: p, domain })
    }

    /// The values the field at `current` can hold, when finite.
    fn domain(&self, o: &Origin) -> Option<Vec<Value>> {
        match &o.domain {
            Domain::Known(v) => Some(v.clone()),
            Domain::Unknown => None,
            Domain::Source => locate(self.source, &o.path).1.and_then(|s| {
                let mut out = Vec::new();
                finite_domain(self.source, s, 0, &mut out).then_some(out)
            }),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn lose(
        &mut self,
        current: &[String],
        kind: LossKind,
        op: &str,
        op_name: &'static str,
        detail: String,
        values: Vec<Value>,
        other_values: bool,
        default: Option<Value>,
    ) {
        let Some(o) = self.origin(current) else {
            // A field the lens made holds nothing of the source.
            return;
        };
        let (pointer, _) = locate(self.source, &o.path);
        self.out.push(Loss {
            kind,
            pointer,
            path: pointer::join(&o.path),
            op: op.to_owned(),
            op_name,
            detail,
            values,
            other_values,
            default,
        });
    }

    fn op(&mut self, op: &LensOp, scope: &[String], origin: &str) {
        use Direction::{Backward, Forward};
        let name = op.name();
        match (op, self.dir) {
            (
                LensOp::Rename {
                    source,
                    destination,
                },
                dir,
            ) => {
                let (a, b) = if dir == Forward {
                    (source, destination)
                } else {
                    (destination, source)
                };
                self.traces.push(Trace::Move {
                    from: at(scope, a),
                    to: at(scope, b),
                });
            }
            (LensOp::Add(spec), Forward) | (LensOp::Remove(spec), Backward) => {
                self.traces.push(Trace::Created {
                    at: at(scope, &spec.name),
                });
            }
            (LensOp::Add(spec), Backward) | (LensOp::Remove(spec), Forward) => {
                let field = at(scope, &spec.name);
                let fill = spec.fill_value();
                let back = match &fill {
                    Some(v) => format!("it comes back as {v}"),
                    None => "it comes back absent".to_owned(),
                };
                let detail = format!(
                    "the target version has no `{}`: its value is dropped ({back})",
                    spec.name
                );
                self.lose(
                    &field,
                    LossKind::Field,
                    origin,
                    name,
                    detail,
                    Vec::new(),
                    false,
                    fill,
                );
                self.traces.push(Trace::Created { at: field });
            }
            (
                LensOp::Copy {
                    source,
                    destination,
                },
                Forward,
            ) => {
                let _ = source;
                self.traces.push(Trace::Created {
                    at: at(scope, destination),
                });
            }
            (
                LensOp::Copy {
                    source,
                    destination,
                },
                Backward,
            ) => {
                let field = at(scope, destination);
                let detail = format!(
                    "the target version has no `{destination}`: it is rebuilt from `{source}`, so an edit made to `{destination}` alone is lost"
                );
                self.lose(
                    &field,
                    LossKind::Field,
                    origin,
                    name,
                    detail,
                    Vec::new(),
                    false,
                    None,
                );
                self.traces.push(Trace::Created { at: field });
            }
            (LensOp::Hoist { host, name: field }, Forward)
            | (LensOp::Plunge { host, name: field }, Backward) => {
                self.traces.push(Trace::Move {
                    from: at(&at(scope, host), field),
                    to: at(scope, field),
                });
            }
            (LensOp::Hoist { host, name: field }, Backward)
            | (LensOp::Plunge { host, name: field }, Forward) => {
                self.traces.push(Trace::Move {
                    from: at(scope, field),
                    to: at(&at(scope, host), field),
                });
            }
            (LensOp::Wrap { name: field }, Forward) | (LensOp::Head { name: field }, Backward) => {
                let f = at(scope, field);
                self.traces.push(Trace::Move {
                    from: f.clone(),
                    to: at(&f, "*"),
                });
            }
            (LensOp::Head { name: field }, Forward) | (LensOp::Wrap { name: field }, Backward) => {
                let f = at(scope, field);
                let detail = format!(
                    "the target version holds one `{field}`: only the first element of the array is kept"
                );
                self.lose(
                    &f,
                    LossKind::Values,
                    origin,
                    name,
                    detail,
                    Vec::new(),
                    true,
                    None,
                );
                self.traces.push(Trace::Move {
                    from: at(&f, "*"),
                    to: f,
                });
            }
            (LensOp::In { name: field, lens }, _) => {
                let inner = at(scope, field);
                self.ops(lens, &inner, &pointer::push(origin, "lens"));
            }
            (LensOp::Map { lens }, _) => {
                let inner = at(scope, "*");
                self.ops(lens, &inner, &pointer::push(origin, "lens"));
            }
            (LensOp::Convert(c), dir) => self.convert(c, dir, scope, origin),
            (LensOp::Transform(t), _) => {
                let f = at(scope, &t.name);
                let detail = format!(
                    "`{}` is converted by the registered transform `{}`, whose round trip cannot be checked here",
                    t.name, t.using
                );
                self.lose(
                    &f,
                    LossKind::Unverified,
                    origin,
                    name,
                    detail,
                    Vec::new(),
                    true,
                    None,
                );
                self.traces.push(Trace::Changed {
                    at: f,
                    domain: None,
                });
            }
            (LensOp::Split(sj), Forward) | (LensOp::Join(sj), Backward) => {
                self.split(sj, scope, origin, name)
            }
            (LensOp::Split(sj), Backward) | (LensOp::Join(sj), Forward) => {
                self.join(sj, scope, origin, name)
            }
            (LensOp::Set { name: field, value }, Forward) => {
                let f = at(scope, field);
                let already = self
                    .origin(&f)
                    .and_then(|o| self.domain(&o))
                    .is_some_and(|d| d.iter().all(|x| x == value));
                if !already {
                    let detail = format!(
                        "`{field}` is overwritten with the constant {value}: its previous value is lost"
                    );
                    self.lose(
                        &f,
                        LossKind::Values,
                        origin,
                        name,
                        detail,
                        Vec::new(),
                        true,
                        None,
                    );
                }
                self.traces.push(Trace::Changed {
                    at: f,
                    domain: Some(vec![value.clone()]),
                });
            }
            (LensOp::Set { name: field, .. }, Backward) => {
                // The older version keeps whatever it stored: nothing of the newer one's
                // constant is lost, but the value is no longer known.
                self.traces.push(Trace::Changed {
                    at: at(scope, field),
                    domain: None,
                });
            }
        }
    }

    fn split(&mut self, sj: &SplitJoin, scope: &[String], origin: &str, name: &'static str) {
        let whole = at(scope, &sj.whole);
        let detail = format!(
            "`{}` is split at {:?} into {}: a value whose last parts are empty (e.g. one ending in {:?}) comes back without them",
            sj.whole,
            sj.separator,
            names(&sj.parts),
            sj.separator
        );
        self.lose(
            &whole,
            LossKind::Values,
            origin,
            name,
            detail,
            Vec::new(),
            true,
            None,
        );
        for p in &sj.parts {
            self.traces.push(Trace::Derived {
                from: whole.clone(),
                to: at(scope, p),
            });
        }
    }

    fn join(&mut self, sj: &SplitJoin, scope: &[String], origin: &str, name: &'static str) {
        let last = sj.parts.len().saturating_sub(1);
        for p in &sj.parts[..last] {
            let detail = format!(
                "`{}` is joined with {:?} into `{}`: a `{p}` that contains {:?} is split differently on the way back",
                names(&sj.parts),
                sj.separator,
                sj.whole,
                sj.separator
            );
            self.lose(
                &at(scope, p),
                LossKind::Values,
                origin,
                name,
                detail,
                Vec::new(),
                true,
                None,
            );
        }
        if let Some(first) = sj.parts.first() {
            self.traces.push(Trace::Derived {
                from: at(scope, first),
                to: at(scope, &sj.whole),
            });
        }
    }

    fn convert(
        &mut self,
        c: &mutatis_lens::Convert,
        dir: Direction,
        scope: &[String],
        origin: &str,
    ) {
        let f = at(scope, &c.name);
        // This direction's mapping and the other one's, each `None` when derived from the
        // other (the engine derives the reverse of an expression `value ± k` or of a table
        // that maps no two values to one).
        let (this, back, source_type) = match dir {
            Direction::Forward => (Some(&c.forward), c.backward.as_ref(), &c.source_type),
            Direction::Backward => (c.backward.as_ref(), Some(&c.forward), &c.destination_type),
        };
        let source_is_string = matches!(source_type, Some(Value::String(t)) if t == "string");
        let target_is_string = {
            let t = match dir {
                Direction::Forward => &c.destination_type,
                Direction::Backward => &c.source_type,
            };
            matches!(t, Some(Value::String(t)) if t == "string")
        };
        let this = match this {
            Some(m) => Fun::from(m),
            None => Fun::inverse_of(&c.forward, target_is_string),
        };
        let back = match back {
            Some(m) => Fun::from(m),
            None => Fun::inverse_of(&c.forward, source_is_string),
        };
        let domain = self.origin(&f).and_then(|o| self.domain(&o));
        let image = match (&this, &domain) {
            (Fun::Table { entries, default }, Some(d)) => Some(dedup(
                d.iter().filter_map(|v| table_apply(entries, default, v)),
            )),
            (Fun::Table { entries, default }, None) => Some(dedup(
                entries.values().cloned().chain(default.iter().cloned()),
            )),
            _ => None,
        };
        match (&this, &back) {
            (Fun::Table { entries, default }, Fun::Table { .. }) => {
                let listed: Vec<Value> = match &domain {
                    Some(d) => d.clone(),
                    None => entries
                        .keys()
                        .map(|k| key_value(k, source_is_string))
                        .collect(),
                };
                let mut lost = Vec::new();
                let mut how = Vec::new();
                let mut refused = Vec::new();
                for v in &listed {
                    let Some(t) = table_apply(entries, default, v) else {
                        refused.push(v.clone());
                        continue;
                    };
                    let returned = back.apply(&t);
                    let same = returned
                        .as_ref()
                        .is_some_and(|r| value_key(r) == value_key(v));
                    if !same {
                        let comes_back = match &returned {
                            Some(r) => format!("comes back as {r}"),
                            None => "has no way back".to_owned(),
                        };
                        how.push(format!("{v} becomes {t}, which {comes_back}"));
                        lost.push(v.clone());
                    }
                }
                // Values outside a listed (finite) domain do not occur; outside the table's
                // own keys (open domain) they fall to the default or have no mapping.
                let open = domain.is_none();
                let others_lost = open && default.is_some();
                if !lost.is_empty() || others_lost {
                    if let (true, Some(d)) = (others_lost, default) {
                        how.push(format!("any other value becomes {d}"));
                    }
                    let detail = format!(
                        "`{}` is converted by table and the target version cannot tell these values apart: {}",
                        c.name,
                        how.join("; ")
                    );
                    self.lose(
                        &f,
                        LossKind::Values,
                        origin,
                        "convert",
                        detail,
                        lost,
                        others_lost,
                        None,
                    );
                }
                let others_refused = open && default.is_none();
                if !refused.is_empty() || others_refused {
                    let what = if refused.is_empty() {
                        "values the table does not name".to_owned()
                    } else {
                        let listed: Vec<String> = refused.iter().map(Value::to_string).collect();
                        let mut s = listed.join(", ");
                        if others_refused {
                            s.push_str(" and any value the table does not name");
                        }
                        s
                    };
                    let detail = format!(
                        "`{}` is converted by table with no default: {what} cannot be translated (the translation fails)",
                        c.name
                    );
                    self.lose(
                        &f,
                        LossKind::Refused,
                        origin,
                        "convert",
                        detail,
                        refused,
                        others_refused,
                        None,
                    );
                }
            }
            (Fun::Expr { derived: a }, Fun::Expr { derived: b }) if *a || *b => {
                // One expression and its derived inverse (`value ± k`): exact both ways.
            }
            _ => {
                let detail = format!(
                    "`{}` is converted by hand-written mappings in both directions (expressions or a table and an expression), whose round trip cannot be checked here",
                    c.name
                );
                self.lose(
                    &f,
                    LossKind::Unverified,
                    origin,
                    "convert",
                    detail,
                    Vec::new(),
                    true,
                    None,
                );
            }
        }
        self.traces.push(Trace::Changed {
            at: f,
            domain: image,
        });
    }
}

/// A `convert` mapping as the analysis sees it.
enum Fun {
    Table {
        entries: Map<String, Value>,
        default: Option<Value>,
    },
    /// An expression; `derived` when the engine derived it from the other direction's.
    Expr { derived: bool },
}

impl Fun {
    fn from(m: &Mapping) -> Fun {
        match m {
            Mapping::Table { entries, default } => Fun::Table {
                entries: entries.clone(),
                default: default.clone(),
            },
            Mapping::Expr { .. } => Fun::Expr { derived: false },
        }
    }

    /// The reverse the engine derives from `m` (as `mutatis-lens` does: a table is inverted
    /// entry by entry, keys read as JSON unless the inverse's values are strings).
    fn inverse_of(m: &Mapping, values_are_strings: bool) -> Fun {
        match m {
            Mapping::Table { entries, .. } => Fun::Table {
                entries: entries
                    .iter()
                    .map(|(k, v)| (value_key(v), key_value(k, values_are_strings)))
                    .collect(),
                default: None,
            },
            Mapping::Expr { .. } => Fun::Expr { derived: true },
        }
    }

    fn apply(&self, v: &Value) -> Option<Value> {
        match self {
            Fun::Table { entries, default } => table_apply(entries, default, v),
            Fun::Expr { .. } => None,
        }
    }
}

/// A table lookup as the engine runs it: by the value's key, else the default; `null` with no
/// default stays `null`; anything else has no mapping (`None`).
fn table_apply(entries: &Map<String, Value>, default: &Option<Value>, v: &Value) -> Option<Value> {
    match entries.get(&value_key(v)) {
        Some(t) => Some(t.clone()),
        None => match default {
            Some(d) => Some(d.clone()),
            None if v.is_null() => Some(Value::Null),
            None => None,
        },
    }
}

/// The key a value is looked up by in a table: a string is itself, anything else its JSON
/// text (the engine's rule).
fn value_key(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The value a table key stands for: the string itself when the field holds strings,
/// otherwise the key read as JSON (`"true"` is `true`), falling back to the string.
fn key_value(k: &str, is_string: bool) -> Value {
    if is_string {
        return Value::String(k.to_owned());
    }
    serde_json::from_str(k).unwrap_or_else(|_| Value::String(k.to_owned()))
}

fn dedup(values: impl Iterator<Item = Value>) -> Vec<Value> {
    let mut seen = BTreeSet::new();
    values.filter(|v| seen.insert(v.to_string())).collect()
}

fn names(parts: &[String]) -> String {
    let quoted: Vec<String> = parts.iter().map(|p| format!("`{p}`")).collect();
    quoted.join(" + ")
}

// ---------------------------------------------------------------------------------------------
// Schemas

/// The schema pointer of the field at document path `path` in `root`, and its schema when the
/// schema names it. Looks through local `$ref`s and nullable wrappers (`anyOf`/`oneOf` of one
/// schema and `{type: null}`); where the schema does not name the field the pointer continues
/// the way a plain schema would (`/properties/x`, `/items`).
pub(crate) fn locate<'v>(root: &'v Value, path: &[String]) -> (String, Option<&'v Value>) {
    let mut here: Option<(&'v Value, String)> = Some((root, String::new()));
    let mut naive = String::new();
    for seg in path {
        let key = if seg == "*" { None } else { Some(seg.as_str()) };
        here = here.and_then(|(s, p)| {
            let (s, p) = unwrap(root, s, p, None)?;
            let obj = s.as_object()?;
            match key {
                Some(k) => {
                    let child = obj.get("properties")?.get(k)?;
                    Some((child, pointer::push(&pointer::push(&p, "properties"), k)))
                }
                None => {
                    let child = obj.get("items")?;
                    Some((child, pointer::push(&p, "items")))
                }
            }
        });
        naive = match (&here, key) {
            (Some((_, p)), _) => p.clone(),
            (None, Some(k)) => pointer::push(&pointer::push(&naive, "properties"), k),
            (None, None) => pointer::push(&naive, "items"),
        };
    }
    match here {
        Some((s, p)) => (p, Some(s)),
        None => (naive, None),
    }
}

/// The values a schema admits, when it admits finitely many (`const`, `enum`, `boolean`,
/// `null` and unions of those). Returns `false` for an open schema.
fn finite_domain(root: &Value, s: &Value, depth: usize, out: &mut Vec<Value>) -> bool {
    if depth > MAX_REF_CHAIN {
        return false;
    }
    let push = |out: &mut Vec<Value>, v: &Value| {
        if !out.contains(v) {
            out.push(v.clone());
        }
    };
    let obj = match s {
        Value::Bool(false) => return true,
        Value::Object(o) => o,
        _ => return false,
    };
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        return r
            .strip_prefix('#')
            .and_then(|t| root.pointer(t))
            .is_some_and(|t| finite_domain(root, t, depth + 1, out));
    }
    if let Some(c) = obj.get("const") {
        push(out, c);
        return true;
    }
    if let Some(Value::Array(e)) = obj.get("enum") {
        for v in e {
            push(out, v);
        }
        return true;
    }
    for k in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = obj.get(k) {
            return branches
                .iter()
                .all(|b| finite_domain(root, b, depth + 1, out));
        }
    }
    let types: Vec<&str> = match obj.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return false,
    };
    for t in types {
        match t {
            "boolean" => {
                push(out, &Value::Bool(false));
                push(out, &Value::Bool(true));
            }
            "null" => push(out, &Value::Null),
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lens(ops: Value) -> Lens {
        Lens::from_ops_json(&ops, "").unwrap()
    }

    #[test]
    fn locate_follows_refs_and_nullable_wrappers() {
        let s = json!({
            "type": "object",
            "properties": {
                "a": {"$ref": "#/$defs/A"},
                "n": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"x": {"type": "string"}}}]},
                "list": {"type": "array", "items": {"type": "object", "properties": {"y": {"type": "boolean"}}}}
            },
            "$defs": {"A": {"type": "object", "properties": {"b": {"type": "integer"}}}}
        });
        let p = |segs: &[&str]| {
            let segs: Vec<String> = segs.iter().map(|s| s.to_string()).collect();
            locate(&s, &segs).0
        };
        assert_eq!(p(&["a", "b"]), "/$defs/A/properties/b");
        assert_eq!(p(&["n", "x"]), "/properties/n/anyOf/1/properties/x");
        assert_eq!(
            p(&["list", "*", "y"]),
            "/properties/list/items/properties/y"
        );
        // Not named by the schema: the plain form.
        assert_eq!(p(&["zz", "q"]), "/properties/zz/properties/q");
    }

    #[test]
    fn convert_round_trip_finds_the_value_that_cannot_come_back() {
        let l = lens(json!([
            {"rename": {"source": "done", "destination": "status"}},
            {"convert": {"name": "status", "sourceType": "boolean", "destinationType": "string",
                         "forward": {"true": "done", "false": "open"},
                         "backward": {"done": true, "open": false, "started": false},
                         "backwardDefault": false}}
        ]));
        let v2 = json!({"type": "object", "properties": {"done": {"type": "boolean"}}});
        assert!(lens_losses(&l, Direction::Forward, &v2).is_empty());
        let v3 = json!({"type": "object", "properties": {"status": {"type": "string"}}});
        let back = lens_losses(&l, Direction::Backward, &v3);
        assert_eq!(back.len(), 1, "{back:?}");
        assert_eq!(back[0].kind, LossKind::Values);
        assert_eq!(back[0].pointer, "/properties/status");
        assert_eq!(back[0].op, "/1");
        assert_eq!(back[0].values, vec![json!("started")]);
        assert!(back[0].other_values, "other strings fall to the default");
        assert!(
            back[0].detail.contains("\"started\" becomes false"),
            "{}",
            back[0].detail
        );
    }

    #[test]
    fn a_closed_enum_is_checked_value_by_value() {
        let l = lens(json!([{"convert": {"name": "s",
            "forward": {"a": 1, "b": 1, "c": 2}, "backward": {"1": "a", "2": "c"}}}]));
        let src = json!({"properties": {"s": {"enum": ["a", "b", "c"]}}});
        let out = lens_losses(&l, Direction::Forward, &src);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].values, vec![json!("b")]);
        assert!(!out[0].other_values);
    }

    #[test]
    fn a_field_renamed_earlier_in_the_lens_is_reported_under_its_source_name() {
        let l = lens(json!([
            {"rename": {"source": "old", "destination": "new"}},
            {"remove": {"name": "new", "type": "string"}}
        ]));
        let src = json!({"properties": {"old": {"type": "string"}}});
        let out = lens_losses(&l, Direction::Forward, &src);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].kind, out[0].pointer.as_str()),
            (LossKind::Field, "/properties/old")
        );
        assert_eq!(out[0].default, Some(json!("")));
        // Backward, `remove` adds the field back: nothing is lost.
        assert!(lens_losses(&l, Direction::Backward, &json!({"properties": {}})).is_empty());
    }

    #[test]
    fn nested_ops_report_nested_pointers() {
        let l = lens(json!([
            {"in": {"name": "meta", "lens": [{"head": {"name": "tags"}}]}},
            {"in": {"name": "items", "lens": [{"map": {"lens": [{"add": {"name": "x", "type": "string"}}]}}]}}
        ]));
        let src = json!({"properties": {
            "meta": {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}},
            "items": {"type": "array", "items": {"type": "object", "properties": {}}}}});
        let fwd = lens_losses(&l, Direction::Forward, &src);
        assert_eq!(fwd.len(), 1, "{fwd:?}");
        assert_eq!(fwd[0].pointer, "/properties/meta/properties/tags");
        assert_eq!(fwd[0].op, "/0/lens/0");
        let bwd = lens_losses(&l, Direction::Backward, &src);
        let pointers: Vec<&str> = bwd.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(pointers, ["/items/*/x"]);
    }

    #[test]
    fn add_then_remove_in_one_lens_loses_nothing_of_the_source() {
        let l = lens(json!([
            {"add": {"name": "tmp", "type": "string"}},
            {"remove": {"name": "tmp", "type": "string"}}
        ]));
        assert!(lens_losses(&l, Direction::Forward, &json!({})).is_empty());
    }

    #[test]
    fn expressions_with_a_derived_inverse_are_exact_and_hand_written_pairs_unverified() {
        let derived = lens(json!([{"convert": {"name": "n", "forward": "value + 1"}}]));
        assert!(lens_losses(&derived, Direction::Forward, &json!({})).is_empty());
        assert!(lens_losses(&derived, Direction::Backward, &json!({})).is_empty());
        let both = lens(
            json!([{"convert": {"name": "n", "forward": "value * 2", "backward": "value / 2"}}]),
        );
        let out = lens_losses(&both, Direction::Forward, &json!({}));
        assert_eq!(out[0].kind, LossKind::Unverified);
    }

    #[test]
    fn set_split_join_copy_and_head() {
        let l = lens(json!([{"set": {"name": "k", "value": 1}}]));
        assert_eq!(
            lens_losses(&l, Direction::Forward, &json!({}))[0].kind,
            LossKind::Values
        );
        let same = json!({"properties": {"k": {"const": 1}}});
        assert!(lens_losses(&l, Direction::Forward, &same).is_empty());
        assert!(lens_losses(&l, Direction::Backward, &json!({})).is_empty());

        let l = lens(json!([{"split": {"name": "full", "into": ["first", "last"]}}]));
        let fwd = lens_losses(&l, Direction::Forward, &json!({}));
        assert_eq!(fwd[0].path, "/full");
        let bwd = lens_losses(&l, Direction::Backward, &json!({}));
        assert_eq!(bwd.len(), 1, "only the first part can hide a separator");
        assert_eq!(bwd[0].path, "/first");

        let l = lens(json!([{"copy": {"source": "a", "destination": "b"}}]));
        assert!(lens_losses(&l, Direction::Forward, &json!({})).is_empty());
        assert_eq!(
            lens_losses(&l, Direction::Backward, &json!({}))[0].path,
            "/b"
        );

        let l = lens(json!([{"wrap": {"name": "tag"}}]));
        assert!(lens_losses(&l, Direction::Forward, &json!({})).is_empty());
        assert_eq!(
            lens_losses(&l, Direction::Backward, &json!({}))[0].path,
            "/tag"
        );
    }

    #[test]
    fn a_table_with_no_default_refuses_what_it_does_not_name() {
        let l = lens(
            json!([{"convert": {"name": "s", "forward": {"a": "x"}, "backward": {"x": "a"}}}]),
        );
        let out = lens_losses(
            &l,
            Direction::Forward,
            &json!({"properties": {"s": {"type": "string"}}}),
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].kind, LossKind::Refused);
        assert!(out[0].other_values);
        let closed = json!({"properties": {"s": {"enum": ["a", "b"]}}});
        let out = lens_losses(&l, Direction::Forward, &closed);
        assert_eq!(out[0].values, vec![json!("b")]);
        assert!(!out[0].other_values);
    }
}
