//! The lens laws, property-tested over generated lenses and generated documents.
//!
//! A lens compiled forward is a plan `old → new`. In mutatis's terms the *stored* document is
//! in the new version and an old client reads and writes through the lens:
//!
//! - `get(s)    = plan.reverse().translate(s)`      the old client's view of stored `s`;
//! - `put(v, s) = plan.translate_onto(v, s)`        the old client's write `v` merged onto `s`.
//!
//! The laws, each on its domain (see below):
//!
//! - **GetPut** `put(get(s), s) == s`: writing back an unchanged view leaves the store as it was.
//! - **PutGet** `get(put(v, s)) == v`: an old writer reads back exactly what it wrote.
//! - **Round trip** `reverse(translate(d)) == d` for the documents the forward direction
//!   carries without loss.
//! - **Reverse GetPut** `reverse.translate_onto(translate(d), d) == d`: a newer client that
//!   reads a document stored in the older version and writes it back unchanged loses nothing
//!   (lazily migrated storage). This one holds on every document the lens translates.
//! - `translate_bytes` (the raw fast path) and `translate` agree on every generated document.
//!
//! ## How lenses and documents are generated
//!
//! A [`Recipe`] (what proptest generates and shrinks) is built into a [`Case`]: the lens ops
//! plus the *shape* of the old and of the new documents. Each op is built together with the
//! shapes it maps between, so every generated document fits the lens. A shape's field types have
//! two readings:
//!
//! - *strict*: the laws' domain. A law only holds where the lens can carry a value; the strict
//!   reading of a type is exactly that set, and each restriction is stated where it is made
//!   (look for "Domain:").
//! - *loose*: everything the lens translates without an error, used for the reverse GetPut and
//!   the raw-path agreement.
//!
//! Field names are drawn from awkward spellings (`a/1`, `t~2`, `q"3`, `é4`, ...) so pointer
//! escaping and raw-path key handling are exercised; documents also carry untouched extra
//! fields (`x0`..`x3`) at every object level, in shuffled order. Documents are compared as JSON
//! values: member order is not part of the laws.
//!
//! ## The domains, op by op
//!
//! GetPut, PutGet and the round trip hold on these documents (and fail outside them, for the
//! reason given); the reverse GetPut needs none of these restrictions.
//!
//! - `rename`, `copy`, `hoist`, `in`, `map`, `convert` by `value ± k` (literal or parameter,
//!   reverse given or derived), `transform`: no restriction beyond the shapes.
//! - `add`: a field that `put` fills in (it has a default, or is required) is present in the new
//!   document, or `put(get(s), s)` would add it.
//! - `remove`: the old document holds exactly the value the field is restored with (or lacks it,
//!   for an optional field without a default): the new version has nowhere to keep another.
//! - `wrap`: none. `head`: the old list has at most one element, and not `null`.
//! - `plunge`: the host exists before the plunge (in the old document, or `add`ed by the lens as
//!   in Cambria); otherwise the reverse `hoist` leaves the emptied host behind.
//! - `convert` by table: the values are the table's; `forward` is injective (new values beyond
//!   its image read back as some old value, and are conserved).
//! - `split`: the whole splits and joins back unchanged (no trailing empty part); `join`: every
//!   part but the last is free of the separator, and all are strings.
//! - `set`: both versions hold the constant (reading back without a stored document keeps it).

use mutatis_lens::{type_default, Direction, Lens, LensError, Params, Plan, Transforms};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------------------------------------
// Shapes

/// The type of one field, read strictly (the laws' domain) or loosely (what translates).
#[derive(Debug, Clone)]
enum Ty {
    /// Any small JSON value; `null` only when `nullable` (loosely: always nullable).
    Json {
        nullable: bool,
    },
    /// A word of characters that occur in no separator, or `""` (loosely: any text).
    WordOrEmpty,
    /// Any short string, separator characters included.
    Text,
    Int,
    Bool,
    /// One of these values: a `convert` table's domain.
    OneOf(Vec<Value>),
    /// Exactly this value.
    Exactly(Value),
    /// `strict` on the laws' domain, `loose` for translation.
    Either {
        strict: Box<Ty>,
        loose: Box<Ty>,
    },
    /// `null` or the inner type.
    Nullable(Box<Ty>),
    /// An object with these fields (and untouched extras).
    Obj(Vec<Field>),
    /// An array of `min..` elements; `max` bounds the length on the laws' domain only.
    Arr {
        elem: Box<Ty>,
        min: usize,
        max: Option<usize>,
    },
    /// A string that `split` into `parts` at `sep` takes apart and `join`s back unchanged
    /// (loosely: any text or null).
    Splittable {
        parts: usize,
        sep: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Presence {
    Required,
    Optional,
    /// Absent on the laws' domain, optional for translation.
    StrictlyAbsent,
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    ty: Ty,
    presence: Presence,
}

fn field(name: &str, ty: Ty, presence: Presence) -> Field {
    Field {
        name: name.to_owned(),
        ty,
        presence,
    }
}

impl Ty {
    /// Whether `null` is in the strict reading of the type.
    fn nullable(&self) -> bool {
        match self {
            Ty::Json { nullable } => *nullable,
            Ty::Nullable(_) => true,
            Ty::Exactly(v) => v.is_null(),
            Ty::OneOf(vs) => vs.iter().any(Value::is_null),
            Ty::Either { strict, .. } => strict.nullable(),
            _ => false,
        }
    }

    fn strategy(&self, strict: bool) -> BoxedStrategy<Value> {
        match self {
            Ty::Json { nullable } => json_value(*nullable || !strict),
            Ty::WordOrEmpty if strict => word(0).prop_map(Value::from).boxed(),
            Ty::WordOrEmpty | Ty::Text => text(0).prop_map(Value::from).boxed(),
            Ty::Int => (-1000i64..1000).prop_map(Value::from).boxed(),
            Ty::Bool => any::<bool>().prop_map(Value::from).boxed(),
            Ty::OneOf(values) => proptest::sample::select(values.clone()).boxed(),
            Ty::Exactly(v) => Just(v.clone()).boxed(),
            Ty::Either { strict: s, loose } => {
                if strict {
                    s.strategy(true)
                } else {
                    loose.strategy(false)
                }
            }
            Ty::Nullable(inner) => {
                prop_oneof![1 => Just(Value::Null), 3 => inner.strategy(strict)].boxed()
            }
            Ty::Obj(fields) => object(fields, strict),
            Ty::Arr { elem, min, max } => {
                let max = if strict { max.unwrap_or(3) } else { 3 }.max(*min);
                proptest::collection::vec(elem.strategy(strict), *min..=max)
                    .prop_map(Value::Array)
                    .boxed()
            }
            Ty::Splittable { parts, sep } if strict => splittable(*parts, sep.clone()),
            Ty::Splittable { .. } => Ty::Nullable(Box::new(Ty::Text)).strategy(false),
        }
    }
}

/// Characters of words: none of them occurs in any separator, so joining words never creates
/// or hides a separator.
fn word(min: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-dé0-9]{{{min},4}}")).expect("a valid regex")
}

/// Short text that may contain every separator's characters.
fn text(min: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-cé0-9 ,:-]{{{min},5}}")).expect("a valid regex")
}

const SEPARATORS: [&str; 4] = [" ", "-", ", ", "::"];

/// Domain of `split` (and of `join`'s output when read back): strings that split and join back
/// unchanged. `join` drops trailing empty parts (so `Cher` + `""` joins to `Cher`), hence a
/// string that ends in a separator within its first `parts - 1` cuts (`"a "` → `["a", ""]` →
/// `"a"`) is outside the domain. Generated: 1..=parts separator-free words joined by `sep`;
/// with all `parts` words, the last may be any non-empty text (separators included, they stay
/// in the last part), plus `""` and `null`.
fn splittable(parts: usize, sep: String) -> BoxedStrategy<Value> {
    let joined = (
        proptest::collection::vec(word(1), 1..=parts),
        text(1),
        any::<bool>(),
    )
        .prop_map(move |(mut words, tail, use_tail)| {
            if use_tail && words.len() == parts {
                if let Some(last) = words.last_mut() {
                    *last = tail;
                }
            }
            Value::from(words.join(&sep))
        });
    prop_oneof![
        1 => Just(Value::Null),
        1 => Just(Value::from("")),
        6 => joined,
    ]
    .boxed()
}

fn json_value(nullable: bool) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-50i64..50).prop_map(Value::from),
        Just(json!(1.5)),
        text(0).prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::vec(("[a-c]", inner), 0..3)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    });
    if nullable {
        value.boxed()
    } else {
        value
            .prop_map(|v| if v.is_null() { json!("n") } else { v })
            .boxed()
    }
}

/// An object with these fields, plus up to two untouched extras, in shuffled order.
fn object(fields: &[Field], strict: bool) -> BoxedStrategy<Value> {
    let parts: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .iter()
        .map(|f| {
            let name = f.name.clone();
            let value = f.ty.strategy(strict).prop_map(move |v| (name.clone(), v));
            match (f.presence, strict) {
                (Presence::Required, _) => value.prop_map(Some).boxed(),
                (Presence::StrictlyAbsent, true) => Just(None).boxed(),
                (Presence::Optional | Presence::StrictlyAbsent, _) => {
                    proptest::option::weighted(0.75, value).boxed()
                }
            }
        })
        .collect();
    let extras = proptest::collection::vec((0..4u8, json_value(true)), 0..=2);
    (parts, extras)
        .prop_map(|(parts, extras)| {
            let mut fields: Vec<(String, Value)> = parts.into_iter().flatten().collect();
            fields.extend(extras.into_iter().map(|(i, v)| (format!("x{i}"), v)));
            fields
        })
        .prop_shuffle()
        .prop_map(|fields| Value::Object(fields.into_iter().collect()))
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Recipes: what proptest generates

/// A field type for `add` and `remove`.
#[derive(Debug, Clone, Copy)]
enum Kind {
    String,
    Integer,
    Boolean,
    Array,
    Object,
    NullableString,
}

impl Kind {
    fn schema_type(self) -> Value {
        match self {
            Kind::String => json!("string"),
            Kind::Integer => json!("integer"),
            Kind::Boolean => json!("boolean"),
            Kind::Array => json!("array"),
            Kind::Object => json!("object"),
            Kind::NullableString => json!(["string", "null"]),
        }
    }

    fn ty(self) -> Ty {
        match self {
            Kind::String => Ty::Text,
            Kind::Integer => Ty::Int,
            Kind::Boolean => Ty::Bool,
            Kind::Array => Ty::Arr {
                elem: Box::new(Ty::Json { nullable: true }),
                min: 0,
                max: None,
            },
            Kind::Object => Ty::Obj(Vec::new()),
            Kind::NullableString => Ty::Nullable(Box::new(Ty::Text)),
        }
    }

    /// An explicit `default` of this kind.
    fn sample(self, seed: u8) -> Value {
        let pick = |options: Vec<Value>| options[usize::from(seed) % options.len()].clone();
        match self {
            Kind::String => pick(vec![json!(""), json!("x"), json!("é b")]),
            Kind::Integer => json!(i64::from(seed % 7) - 3),
            Kind::Boolean => json!(seed % 2 == 0),
            Kind::Array => pick(vec![json!([]), json!([1]), json!(["a", null])]),
            Kind::Object => pick(vec![json!({}), json!({"k": 1})]),
            Kind::NullableString => pick(vec![Value::Null, json!("n")]),
        }
    }
}

/// The value kinds of `convert` tables.
#[derive(Debug, Clone, Copy)]
enum Scalar {
    String,
    Integer,
    Boolean,
}

impl Scalar {
    /// Distinct values (distinct table keys too); strings that look like other JSON values
    /// check that a derived reverse honours `sourceType: string`.
    fn pool(self) -> Vec<Value> {
        match self {
            Scalar::String => vec![
                json!("open"),
                json!("true"),
                json!("3"),
                json!("null"),
                json!("é x"),
                json!("done"),
            ],
            Scalar::Integer => vec![json!(0), json!(1), json!(-7), json!(42), json!(3)],
            Scalar::Boolean => vec![json!(true), json!(false)],
        }
    }

    fn pick(self, n: usize, seed: u8) -> Vec<Value> {
        let pool = self.pool();
        let start = usize::from(seed) % pool.len();
        (0..n.min(pool.len()))
            .map(|i| pool[(start + i) % pool.len()].clone())
            .collect()
    }
}

#[derive(Debug, Clone)]
enum Leaf {
    Rename {
        optional: bool,
    },
    Add {
        kind: Kind,
        default: Option<u8>,
        required: bool,
    },
    Remove {
        kind: Kind,
        default: Option<u8>,
        required: bool,
    },
    Wrap {
        optional: bool,
    },
    Head {
        optional: bool,
    },
    Table {
        from: Scalar,
        to: Scalar,
        n: usize,
        /// New values beyond the image of `forward`, read back as one of the old values (like
        /// `started` → `false` beside `done` ↔ `true`, `open` ↔ `false`).
        extra: usize,
        seed: u8,
        /// 0: `forward` + `backward`; 1: `forward` only (reverse derived, no extras);
        /// 2: Cambria's `mapping`.
        form: u8,
    },
    Expr {
        /// 0: `value + k`, 1: `k + value`, 2: `value - k`, 3: `k - value`.
        form: u8,
        k: i64,
        /// `k` is the `offset` parameter instead of a literal.
        param: bool,
        derive: bool,
    },
    Transform,
    Copy,
    Split {
        parts: usize,
        sep: usize,
    },
    Join {
        parts: usize,
        sep: usize,
    },
    Set {
        value: u8,
    },
    /// `add` then `remove` of one scratch field: nothing changes (fusion cancels it).
    Scratch,
}

/// A further op applied to one field of the new shape.
#[derive(Debug, Clone, Copy)]
enum Then {
    Rename,
    /// Rename away and straight back (fusion removes the pair).
    RenameBack,
    Plunge {
        add_host: bool,
    },
    Hoist,
    Wrap,
    Copy,
    Convert {
        to: Scalar,
        seed: u8,
        derive: bool,
    },
}

#[derive(Debug, Clone)]
enum Recipe {
    Leaf(Leaf),
    /// Independent lenses on disjoint fields, one after the other.
    Seq(Vec<Recipe>),
    /// A further op on the field `pick` (modulo the eligible ones) of the new shape.
    Then(Box<Recipe>, Then, usize),
    /// The old shape keeps the field `pick` nested in a fresh object; a `hoist` comes first.
    HoistFirst(Box<Recipe>, usize),
    /// The lens runs inside an object field (optional or not).
    In(Box<Recipe>, bool),
    /// The lens runs on every element of an array field.
    Map(Box<Recipe>),
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::String),
        Just(Kind::Integer),
        Just(Kind::Boolean),
        Just(Kind::Array),
        Just(Kind::Object),
        Just(Kind::NullableString),
    ]
}

fn scalar() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        Just(Scalar::String),
        Just(Scalar::Integer),
        Just(Scalar::Boolean)
    ]
}

fn leaf() -> impl Strategy<Value = Leaf> {
    prop_oneof![
        any::<bool>().prop_map(|optional| Leaf::Rename { optional }),
        (kind(), proptest::option::of(any::<u8>()), any::<bool>()).prop_map(
            |(kind, default, required)| Leaf::Add {
                kind,
                default,
                required
            }
        ),
        (kind(), proptest::option::of(any::<u8>()), any::<bool>()).prop_map(
            |(kind, default, required)| Leaf::Remove {
                kind,
                default,
                required
            }
        ),
        any::<bool>().prop_map(|optional| Leaf::Wrap { optional }),
        any::<bool>().prop_map(|optional| Leaf::Head { optional }),
        (
            scalar(),
            scalar(),
            1..=4usize,
            0..=2usize,
            any::<u8>(),
            0..3u8
        )
            .prop_map(|(from, to, n, extra, seed, form)| Leaf::Table {
                from,
                to,
                n,
                extra,
                seed,
                form
            }),
        (0..4u8, -20i64..20, any::<bool>(), any::<bool>()).prop_map(|(form, k, param, derive)| {
            Leaf::Expr {
                form,
                k,
                param,
                derive,
            }
        }),
        Just(Leaf::Transform),
        Just(Leaf::Copy),
        (2..=3usize, 0..SEPARATORS.len()).prop_map(|(parts, sep)| Leaf::Split { parts, sep }),
        (2..=3usize, 0..SEPARATORS.len()).prop_map(|(parts, sep)| Leaf::Join { parts, sep }),
        any::<u8>().prop_map(|value| Leaf::Set { value }),
        Just(Leaf::Scratch),
    ]
}

fn then() -> impl Strategy<Value = Then> {
    prop_oneof![
        Just(Then::Rename),
        Just(Then::RenameBack),
        any::<bool>().prop_map(|add_host| Then::Plunge { add_host }),
        Just(Then::Hoist),
        Just(Then::Wrap),
        Just(Then::Copy),
        (scalar(), any::<u8>(), any::<bool>()).prop_map(|(to, seed, derive)| Then::Convert {
            to,
            seed,
            derive
        }),
    ]
}

fn recipe() -> impl Strategy<Value = Recipe> {
    leaf()
        .prop_map(Recipe::Leaf)
        .prop_recursive(3, 10, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 1..=3).prop_map(Recipe::Seq),
                (inner.clone(), then(), any::<usize>()).prop_map(|(r, t, pick)| Recipe::Then(
                    Box::new(r),
                    t,
                    pick
                )),
                (inner.clone(), any::<usize>())
                    .prop_map(|(r, pick)| Recipe::HoistFirst(Box::new(r), pick)),
                (inner.clone(), any::<bool>()).prop_map(|(r, opt)| Recipe::In(Box::new(r), opt)),
                inner.prop_map(|r| Recipe::Map(Box::new(r))),
            ]
        })
}

// ---------------------------------------------------------------------------------------------
// Building a case from a recipe

/// A generated lens with the shapes it maps between.
#[derive(Clone)]
struct Case {
    ops: Vec<Value>,
    old: Vec<Field>,
    new: Vec<Field>,
}

/// Failures print the lens (the shapes follow from it), so a minimised case stays readable.
impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lens {}", self.lens_json())
    }
}

struct Builder {
    next: usize,
}

impl Builder {
    /// A field name no other field of the case has. Awkward spellings on purpose; never `x…`
    /// (the untouched extras).
    fn fresh(&mut self) -> String {
        self.next += 1;
        let n = self.next;
        match n % 7 {
            0 => format!("f{n}"),
            1 => format!("a/{n}"),
            2 => format!("t~{n}"),
            3 => format!("é{n}"),
            4 => format!("q\"{n}"),
            5 => format!("sp {n}"),
            _ => format!("{n}"),
        }
    }

    fn build(&mut self, recipe: &Recipe) -> Case {
        match recipe {
            Recipe::Leaf(leaf) => self.leaf(leaf),
            Recipe::Seq(items) => {
                let mut case = Case {
                    ops: Vec::new(),
                    old: Vec::new(),
                    new: Vec::new(),
                };
                for item in items {
                    let c = self.build(item);
                    case.ops.extend(c.ops);
                    case.old.extend(c.old);
                    case.new.extend(c.new);
                }
                case
            }
            Recipe::Then(inner, then, pick) => {
                let case = self.build(inner);
                self.then(case, *then, *pick)
            }
            Recipe::HoistFirst(inner, pick) => {
                let mut case = self.build(inner);
                let eligible: Vec<usize> = (0..case.old.len())
                    .filter(|&i| case.old[i].presence == Presence::Required)
                    .collect();
                if eligible.is_empty() {
                    return case;
                }
                let moved = case.old.remove(eligible[pick % eligible.len()]);
                let host = self.fresh();
                case.ops.insert(
                    0,
                    json!({"hoist": {"host": host, "name": moved.name.clone()}}),
                );
                // The host stays behind in the new shape, holding whatever else it had.
                case.old
                    .push(field(&host, Ty::Obj(vec![moved]), Presence::Required));
                case.new
                    .push(field(&host, Ty::Obj(Vec::new()), Presence::Required));
                case
            }
            Recipe::In(inner, optional) => {
                let c = self.build(inner);
                let host = self.fresh();
                let presence = if *optional {
                    Presence::Optional
                } else {
                    Presence::Required
                };
                Case {
                    ops: vec![json!({"in": {"name": host, "lens": c.ops}})],
                    old: vec![field(&host, Ty::Obj(c.old), presence)],
                    new: vec![field(&host, Ty::Obj(c.new), presence)],
                }
            }
            Recipe::Map(inner) => {
                let c = self.build(inner);
                let host = self.fresh();
                let array = |fields| Ty::Arr {
                    elem: Box::new(Ty::Obj(fields)),
                    min: 0,
                    max: None,
                };
                Case {
                    ops: vec![json!({"in": {"name": host, "lens": [{"map": {"lens": c.ops}}]}})],
                    old: vec![field(&host, array(c.old), Presence::Required)],
                    new: vec![field(&host, array(c.new), Presence::Required)],
                }
            }
        }
    }

    fn leaf(&mut self, leaf: &Leaf) -> Case {
        use Presence::{Optional, Required, StrictlyAbsent};
        let presence = |optional: bool| if optional { Optional } else { Required };
        let f = self.fresh();
        let case = |ops: Vec<Value>, old: Vec<Field>, new: Vec<Field>| Case { ops, old, new };
        match leaf {
            Leaf::Rename { optional } => {
                let g = self.fresh();
                let ty = Ty::Json { nullable: true };
                case(
                    vec![json!({"rename": {"source": f, "destination": g}})],
                    vec![field(&f, ty.clone(), presence(*optional))],
                    vec![field(&g, ty, presence(*optional))],
                )
            }
            Leaf::Add {
                kind,
                default,
                required,
            }
            | Leaf::Remove {
                kind,
                default,
                required,
            } => {
                let default = default.map(|seed| kind.sample(seed));
                let mut args = Map::new();
                args.insert("name".into(), json!(f));
                args.insert("type".into(), kind.schema_type());
                if let Some(d) = &default {
                    args.insert("default".into(), d.clone());
                }
                if !required {
                    args.insert("required".into(), json!(false));
                }
                // The value the field takes when it is (re)created: the default, else the
                // type's default for a required field, else none.
                let fill = default
                    .clone()
                    .or_else(|| required.then(|| type_default(Some(&kind.schema_type()))));
                if matches!(leaf, Leaf::Add { .. }) {
                    // Domain (GetPut): a field that `put` fills in when missing must be present
                    // in the new document, or `put(get(s), s)` would add it.
                    let presence = if fill.is_some() { Required } else { Optional };
                    case(
                        vec![json!({ "add": args })],
                        Vec::new(),
                        vec![field(&f, kind.ty(), presence)],
                    )
                } else {
                    // Domain (PutGet, round trip): the new version cannot hold a removed field,
                    // so reading back gives its fill value (or nothing): the old document's
                    // value must be exactly that. Loosely, any value of the type.
                    let old = match fill {
                        Some(fill) => field(
                            &f,
                            Ty::Either {
                                strict: Box::new(Ty::Exactly(fill)),
                                loose: Box::new(kind.ty()),
                            },
                            Required,
                        ),
                        None => field(&f, kind.ty(), StrictlyAbsent),
                    };
                    case(vec![json!({ "remove": args })], vec![old], Vec::new())
                }
            }
            Leaf::Wrap { optional } => case(
                vec![json!({"wrap": {"name": f}})],
                vec![field(&f, Ty::Json { nullable: true }, presence(*optional))],
                // Any list: reading keeps its head only, and writing back puts the head into
                // the stored list (a `null` head included).
                vec![field(
                    &f,
                    Ty::Arr {
                        elem: Box::new(Ty::Json { nullable: true }),
                        min: 0,
                        max: None,
                    },
                    presence(*optional),
                )],
            ),
            Leaf::Head { optional } => case(
                vec![json!({"head": {"name": f}})],
                // Domain (PutGet, round trip): the new version holds one element, so the old
                // list has at most one, and it is not `null` (`[null]` reads back as `[]`).
                vec![field(
                    &f,
                    Ty::Arr {
                        elem: Box::new(Ty::Json { nullable: false }),
                        min: 0,
                        max: Some(1),
                    },
                    presence(*optional),
                )],
                vec![field(&f, Ty::Json { nullable: true }, presence(*optional))],
            ),
            Leaf::Table {
                from,
                to,
                n,
                extra,
                seed,
                form,
            } => {
                let mut olds = from.pick(*n, *seed);
                let extra = if form % 3 == 1 { 0 } else { *extra };
                let news = to.pick(olds.len() + extra, seed.wrapping_mul(7).wrapping_add(3));
                olds.truncate(news.len());
                let op = table_op(&f, *from, &olds, &news, *form);
                // Domain: the table's keys (old) and all its new values. `forward` is a
                // bijection onto its image; the extra new values read back as old values, and
                // conservation keeps them when an old writer leaves the field unchanged.
                case(
                    vec![op],
                    vec![field(&f, Ty::OneOf(olds), Required)],
                    vec![field(&f, Ty::OneOf(news), Required)],
                )
            }
            Leaf::Expr {
                form,
                k,
                param,
                derive,
            } => {
                let k = if *param {
                    "offset".to_owned()
                } else if *k < 0 {
                    format!("({k})")
                } else {
                    k.to_string()
                };
                let (forward, backward) = match form % 4 {
                    0 => (format!("value + {k}"), format!("value - {k}")),
                    1 => (format!("{k} + value"), format!("value - {k}")),
                    2 => (format!("value - {k}"), format!("value + {k}")),
                    _ => (format!("{k} - value"), format!("{k} - value")),
                };
                let mut args = Map::new();
                args.insert("name".into(), json!(f));
                args.insert("forward".into(), json!(forward));
                if !derive {
                    args.insert("backward".into(), json!(backward));
                }
                // Domain: integers (small enough that `± k` never overflows).
                case(
                    vec![json!({ "convert": args })],
                    vec![field(&f, Ty::Int, Required)],
                    vec![field(&f, Ty::Int, Required)],
                )
            }
            Leaf::Transform => case(
                vec![json!({"transform": {"name": f, "using": "negate"}})],
                vec![field(&f, Ty::Int, Required)],
                vec![field(&f, Ty::Int, Required)],
            ),
            Leaf::Copy => {
                let g = self.fresh();
                let ty = Ty::Json { nullable: true };
                // The copy is independent in the new version: a new writer may change it.
                case(
                    vec![json!({"copy": {"source": f, "destination": g}})],
                    vec![field(&f, ty.clone(), Required)],
                    vec![field(&f, ty.clone(), Required), field(&g, ty, Required)],
                )
            }
            Leaf::Split { parts, sep } => {
                let names: Vec<String> = (0..*parts).map(|_| self.fresh()).collect();
                let sep = SEPARATORS[*sep];
                let mut args = Map::new();
                args.insert("name".into(), json!(f));
                args.insert("into".into(), json!(names));
                args.insert("separator".into(), json!(sep));
                let whole = Ty::Splittable {
                    parts: *parts,
                    sep: sep.to_owned(),
                };
                // The parts are free in the new version (a separator inside one is fine: the
                // stored parts are kept when the whole is unchanged).
                let part = Ty::Nullable(Box::new(Ty::Text));
                case(
                    vec![json!({ "split": args })],
                    vec![field(&f, whole, Required)],
                    names
                        .iter()
                        .map(|n| field(n, part.clone(), Required))
                        .collect(),
                )
            }
            Leaf::Join { parts, sep } => {
                let names: Vec<String> = (0..*parts).map(|_| self.fresh()).collect();
                let sep = SEPARATORS[*sep];
                let mut args = Map::new();
                args.insert("names".into(), json!(names));
                args.insert("into".into(), json!(f));
                if sep != " " {
                    args.insert("separator".into(), json!(sep));
                }
                // Domain (PutGet, round trip): the joined parts must split back into the same
                // parts: every part but the last is free of the separator (words), and all are
                // strings (a `null` part joins as `""`). Loosely, any text or null.
                let loose = Box::new(Ty::Nullable(Box::new(Ty::Text)));
                let old = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        let strict = if i + 1 < *parts {
                            Ty::WordOrEmpty
                        } else {
                            Ty::Text
                        };
                        let ty = Ty::Either {
                            strict: Box::new(strict),
                            loose: loose.clone(),
                        };
                        field(n, ty, Required)
                    })
                    .collect();
                case(
                    vec![json!({ "join": args })],
                    old,
                    vec![field(&f, Ty::Nullable(Box::new(Ty::Text)), Required)],
                )
            }
            Leaf::Set { value } => {
                let options = [
                    json!("person"),
                    json!(1),
                    json!(true),
                    Value::Null,
                    json!({"k": [1]}),
                ];
                let c = options[usize::from(*value) % options.len()].clone();
                // Domain: `set` forgets the old value, and reading back without a stored old
                // document keeps the constant, so both versions hold exactly the constant.
                // Loosely, anything.
                let ty = Ty::Either {
                    strict: Box::new(Ty::Exactly(c.clone())),
                    loose: Box::new(Ty::Json { nullable: true }),
                };
                case(
                    vec![json!({"set": {"name": f, "value": c}})],
                    vec![field(&f, ty.clone(), Required)],
                    vec![field(&f, ty, Required)],
                )
            }
            Leaf::Scratch => case(
                vec![
                    json!({"add": {"name": f, "type": "string"}}),
                    json!({"remove": {"name": f, "type": "string"}}),
                ],
                Vec::new(),
                Vec::new(),
            ),
        }
    }

    fn then(&mut self, mut case: Case, then: Then, pick: usize) -> Case {
        let eligible: Vec<usize> = (0..case.new.len())
            .filter(|&i| {
                let f = &case.new[i];
                let required = f.presence == Presence::Required;
                match then {
                    Then::Plunge { .. } | Then::Copy => required,
                    Then::Rename | Then::RenameBack | Then::Wrap => true,
                    Then::Hoist => {
                        required
                            && matches!(&f.ty, Ty::Obj(sub) if sub.iter().any(|g| g.presence == Presence::Required))
                    }
                    Then::Convert { .. } => matches!(&f.ty, Ty::OneOf(v) if !v.is_empty()),
                }
            })
            .collect();
        if eligible.is_empty() {
            return case;
        }
        let i = eligible[pick % eligible.len()];
        let name = case.new[i].name.clone();
        match then {
            Then::Rename => {
                let to = self.fresh();
                case.ops
                    .push(json!({"rename": {"source": name, "destination": to}}));
                case.new[i].name = to;
            }
            Then::RenameBack => {
                let tmp = self.fresh();
                case.ops
                    .push(json!({"rename": {"source": name, "destination": tmp}}));
                case.ops
                    .push(json!({"op": "rename", "source": tmp, "destination": name}));
            }
            Then::Plunge { add_host } => {
                // Domain (round trip, PutGet): the host exists before the plunge. `plunge`
                // creates a missing host, but its reverse (`hoist`) cannot know it did and
                // leaves the emptied host behind. So, as in Cambria, either the old version
                // has the host (an object the earlier ops pass through untouched), or the lens
                // `add`s it first (and the reverse removes it).
                let host = self.fresh();
                if add_host {
                    case.ops
                        .push(json!({"add": {"name": host, "type": "object"}}));
                } else {
                    case.old
                        .push(field(&host, Ty::Obj(Vec::new()), Presence::Required));
                }
                case.ops
                    .push(json!({"plunge": {"host": host, "name": name}}));
                let moved = case.new.remove(i);
                case.new
                    .push(field(&host, Ty::Obj(vec![moved]), Presence::Required));
            }
            Then::Hoist => {
                if let Ty::Obj(sub) = &mut case.new[i].ty {
                    if let Some(j) = sub.iter().position(|g| g.presence == Presence::Required) {
                        let moved = sub.remove(j);
                        case.ops
                            .push(json!({"hoist": {"host": name, "name": moved.name.clone()}}));
                        case.new.push(moved);
                    }
                }
            }
            Then::Wrap => {
                case.ops.push(json!({"wrap": {"name": name}}));
                // Domain: an empty list reads back as `null`, so it needs a field type that
                // has `null`; otherwise lists have at least one element.
                let elem = std::mem::replace(&mut case.new[i].ty, Ty::Bool);
                let min = usize::from(!elem.nullable());
                case.new[i].ty = Ty::Arr {
                    elem: Box::new(elem),
                    min,
                    max: None,
                };
            }
            Then::Copy => {
                let to = self.fresh();
                case.ops
                    .push(json!({"copy": {"source": name, "destination": to}}));
                let ty = case.new[i].ty.clone();
                case.new.push(field(&to, ty, Presence::Required));
            }
            Then::Convert { to, seed, derive } => {
                let Ty::OneOf(olds) = case.new[i].ty.clone() else {
                    return case;
                };
                // A second table on the converted values: a chain of bijections.
                let to = if to.pool().len() >= olds.len() {
                    to
                } else {
                    Scalar::String
                };
                let news = to.pick(olds.len(), seed);
                let from = if olds.iter().all(Value::is_string) {
                    Scalar::String
                } else {
                    Scalar::Integer
                };
                let op = table_op(&name, from, &olds, &news, if derive { 1 } else { 0 });
                case.ops.push(op);
                case.new[i].ty = Ty::OneOf(news);
            }
        }
        case
    }
}

/// The key a `convert` table looks a value up by (a string is itself, anything else its JSON
/// text), as Cambria's tables are written.
fn table_key(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A `convert` op for the bijection `olds[i] ↔ news[i]` in one of its spellings; new values
/// past `olds.len()` map backward onto the old values in turn.
fn table_op(name: &str, from: Scalar, olds: &[Value], news: &[Value], form: u8) -> Value {
    let forward: Map<String, Value> = olds
        .iter()
        .zip(news)
        .map(|(o, n)| (table_key(o), n.clone()))
        .collect();
    let backward: Map<String, Value> = news
        .iter()
        .enumerate()
        .map(|(i, n)| (table_key(n), olds[i % olds.len()].clone()))
        .collect();
    let mut args = Map::new();
    args.insert("name".into(), json!(name));
    match form % 3 {
        0 => {
            args.insert("forward".into(), Value::Object(forward));
            args.insert("backward".into(), Value::Object(backward));
        }
        1 => {
            // The reverse is derived; string keys that look like `true` or `3` stay strings
            // only with `sourceType: string`.
            args.insert("forward".into(), Value::Object(forward));
            if matches!(from, Scalar::String) {
                args.insert("sourceType".into(), json!("string"));
            }
        }
        _ => {
            args.insert(
                "mapping".into(),
                json!([Value::Object(forward), Value::Object(backward)]),
            );
        }
    }
    json!({ "convert": args })
}

/// The same ops in Cambria's in-memory spelling, `{op: rename, source: …}`, nested lenses too.
fn tagged(op: &Value) -> Value {
    let Some((name, Value::Object(args))) = op.as_object().and_then(|m| m.iter().next()) else {
        return op.clone();
    };
    let mut out = Map::new();
    out.insert("op".into(), json!(name));
    for (k, v) in args {
        let v = match (k.as_str(), v) {
            ("lens", Value::Array(ops)) => Value::Array(ops.iter().map(tagged).collect()),
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Value::Object(out)
}

fn case() -> impl Strategy<Value = Case> {
    (recipe(), any::<bool>()).prop_map(|(recipe, use_tags)| {
        let mut case = Builder { next: 0 }.build(&recipe);
        if use_tags {
            case.ops = case.ops.iter().map(tagged).collect();
        }
        case
    })
}

// ---------------------------------------------------------------------------------------------
// Running a case

fn transforms() -> Transforms {
    let mut t = Transforms::new();
    let negate = |v: &Value, _: &Value| {
        v.as_i64()
            .and_then(i64::checked_neg)
            .map(Value::from)
            .ok_or_else(|| format!("cannot negate {v}"))
    };
    t.register_fn("negate", negate, negate);
    t
}

fn params() -> Params {
    let mut p = Params::new();
    p.insert("offset".into(), json!(7));
    p
}

impl Case {
    fn lens_json(&self) -> String {
        Value::Array(self.ops.clone()).to_string()
    }

    fn plan(&self) -> Result<Plan, TestCaseError> {
        let lens = Lens::from_ops_json(&Value::Array(self.ops.clone()), "")
            .map_err(|e| self.fail("parse", e))?;
        Plan::compile(&lens, Direction::Forward, &transforms()).map_err(|e| self.fail("compile", e))
    }

    fn fail(&self, what: &str, e: LensError) -> TestCaseError {
        TestCaseError::fail(format!("{what} failed: {e}\nlens: {}", self.lens_json()))
    }
}

fn with_new(strict: bool) -> impl Strategy<Value = (Case, Value)> {
    case().prop_flat_map(move |c| {
        let doc = object(&c.new, strict);
        (Just(c), doc)
    })
}

fn with_old(strict: bool) -> impl Strategy<Value = (Case, Value)> {
    case().prop_flat_map(move |c| {
        let doc = object(&c.old, strict);
        (Just(c), doc)
    })
}

fn with_old_and_new() -> impl Strategy<Value = (Case, Value, Value)> {
    case().prop_flat_map(|c| {
        let (v, s) = (object(&c.old, true), object(&c.new, true));
        (Just(c), v, s)
    })
}

/// `plan.translate` and `plan.translate_bytes` on `doc`, compact and pretty-printed: both
/// succeed and give the same document.
fn agree(case: &Case, plan: &Plan, doc: &Value) -> Result<(), TestCaseError> {
    let p = params();
    let via_value = plan
        .translate(doc, &p)
        .map_err(|e| case.fail("translate", e))?;
    for input in [serde_json::to_vec(doc), serde_json::to_vec_pretty(doc)] {
        let input = input.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut out = Vec::new();
        plan.translate_bytes(&input, &p, &mut out)
            .map_err(|e| case.fail("translate_bytes", e))?;
        let via_bytes: Value = serde_json::from_slice(&out).map_err(|e| {
            TestCaseError::fail(format!(
                "translate_bytes wrote invalid JSON ({e}): {}",
                String::from_utf8_lossy(&out)
            ))
        })?;
        prop_assert_eq!(
            &via_bytes,
            &via_value,
            "raw and parsed paths disagree on {}\nlens: {}",
            doc,
            case.lens_json()
        );
    }
    Ok(())
}

fn config() -> ProptestConfig {
    // `PROPTEST_CASES=5000 cargo test --test laws` for a deeper run.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(200);
    ProptestConfig {
        cases,
        // Regressions are printed (minimised) on failure; no files are written into the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// GetPut: `put(get(s), s) == s` for every new document `s` in the strict new shape.
    #[test]
    fn get_put((case, s) in with_new(true)) {
        let plan = case.plan()?;
        let view = plan.reverse().translate(&s, &params()).map_err(|e| case.fail("get", e))?;
        let written = plan.translate_onto(&view, &s, &params()).map_err(|e| case.fail("put", e))?;
        prop_assert_eq!(&written, &s, "old view {}\nlens: {}", view, case.lens_json());
    }

    /// PutGet: `get(put(v, s)) == v` for `v` in the strict old shape, `s` in the strict new one.
    #[test]
    fn put_get((case, v, s) in with_old_and_new()) {
        let plan = case.plan()?;
        let written = plan.translate_onto(&v, &s, &params()).map_err(|e| case.fail("put", e))?;
        let read = plan.reverse().translate(&written, &params()).map_err(|e| case.fail("get", e))?;
        prop_assert_eq!(&read, &v, "stored {}\nwritten {}\nlens: {}", s, written, case.lens_json());
    }

    /// Round trip: `reverse(translate(d)) == d` for `d` in the strict old shape, the documents
    /// the forward direction carries without loss.
    #[test]
    fn round_trip((case, d) in with_old(true)) {
        let plan = case.plan()?;
        let new = plan.translate(&d, &params()).map_err(|e| case.fail("translate", e))?;
        let back = plan.reverse().translate(&new, &params()).map_err(|e| case.fail("reverse", e))?;
        prop_assert_eq!(&back, &d, "translated {}\nlens: {}", new, case.lens_json());
    }

    /// Reverse GetPut: `reverse.translate_onto(translate(d), d) == d` for `d` in the loose old
    /// shape: a reader in the new version that writes back what it read loses nothing of a
    /// document stored in the old version, whatever it holds.
    #[test]
    fn reverse_get_put((case, d) in with_old(false)) {
        let plan = case.plan()?;
        let new = plan.translate(&d, &params()).map_err(|e| case.fail("translate", e))?;
        let written = plan.reverse().translate_onto(&new, &d, &params())
            .map_err(|e| case.fail("reverse put", e))?;
        prop_assert_eq!(&written, &d, "translated {}\nlens: {}", new, case.lens_json());
    }

    /// The raw path agrees with the parsed path, forward on loose old documents and backward
    /// on loose new documents.
    #[test]
    fn raw_path_agrees_forward((case, d) in with_old(false)) {
        let plan = case.plan()?;
        agree(&case, &plan, &d)?;
    }

    #[test]
    fn raw_path_agrees_backward((case, s) in with_new(false)) {
        let plan = case.plan()?;
        agree(&case, &plan.reverse(), &s)?;
    }

    /// Every generated lens reads the same from its JSON value, from its text (through the
    /// YAML reader) and from its canonical form.
    #[test]
    fn lens_reads_the_same_every_way(case in case()) {
        let ops = Value::Array(case.ops.clone());
        let lens = Lens::from_ops_json(&ops, "").map_err(|e| case.fail("parse", e))?;
        let text = json!({"schemaName": "generated", "lens": ops}).to_string();
        let from_text = Lens::from_file_str(&text).map_err(|e| case.fail("parse text", e))?;
        prop_assert_eq!(&from_text, &lens);
        let canonical = Lens::from_ops_json(&lens.to_json(), "").map_err(|e| case.fail("parse canonical", e))?;
        prop_assert_eq!(&canonical, &lens);
    }
}

/// The generators reach what they claim to: every op kind occurs, nested, in both spellings.
#[test]
fn generated_lenses_cover_every_op() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::BTreeSet::new();
    fn walk(op: &Value, seen: &mut std::collections::BTreeSet<String>) {
        let Some(map) = op.as_object() else { return };
        let (name, args) = match map.get("op").and_then(Value::as_str) {
            Some(tag) => (tag.to_owned(), op),
            None => match map.iter().next() {
                Some((k, v)) => (k.clone(), v),
                None => return,
            },
        };
        seen.insert(name);
        if let Some(Value::Array(nested)) = args.get("lens") {
            for n in nested {
                walk(n, seen);
            }
        }
    }
    for _ in 0..400 {
        let case = case().new_tree(&mut runner).expect("a case").current();
        for op in &case.ops {
            walk(op, &mut seen);
        }
    }
    for op in [
        "rename",
        "add",
        "remove",
        "hoist",
        "plunge",
        "wrap",
        "head",
        "in",
        "map",
        "convert",
        "transform",
        "copy",
        "split",
        "join",
        "set",
    ] {
        assert!(seen.contains(op), "no generated lens used `{op}`: {seen:?}");
    }
}

/// Just outside each restricted domain the laws fail, in exactly the way the domain comments
/// say: these are the losses a lens cannot avoid, not bugs hidden by the generators.
#[test]
fn domain_boundaries_are_where_the_comments_say() {
    let p = params();
    let plan = |ops: Value| {
        let lens = Lens::from_ops_json(&ops, "").unwrap();
        Plan::compile(&lens, Direction::Forward, &transforms()).unwrap()
    };
    let put_get = |plan: &Plan, v: &Value, s: &Value| {
        let written = plan.translate_onto(v, s, &p).unwrap();
        plan.reverse().translate(&written, &p).unwrap()
    };
    let round_trip = |plan: &Plan, d: &Value| {
        let new = plan.translate(d, &p).unwrap();
        plan.reverse().translate(&new, &p).unwrap()
    };

    // `remove`: the new version cannot keep the value; it reads back as the default.
    let remove = plan(json!([{"remove": {"name": "f", "type": "string", "default": "d"}}]));
    assert_eq!(
        put_get(&remove, &json!({"f": "mine"}), &json!({})),
        json!({"f": "d"})
    );
    // `head`: one element survives.
    let head = plan(json!([{"head": {"name": "f"}}]));
    assert_eq!(round_trip(&head, &json!({"f": [1, 2]})), json!({"f": [1]}));
    assert_eq!(round_trip(&head, &json!({"f": [null]})), json!({"f": []}));
    // `plunge` into a host that did not exist: the reverse leaves it, emptied.
    let plunge = plan(json!([{"plunge": {"host": "h", "name": "f"}}]));
    assert_eq!(
        round_trip(&plunge, &json!({"f": 1})),
        json!({"f": 1, "h": {}})
    );
    let plunge = plan(
        json!([{"add": {"name": "h", "type": "object"}}, {"plunge": {"host": "h", "name": "f"}}]),
    );
    assert_eq!(round_trip(&plunge, &json!({"f": 1})), json!({"f": 1}));
    // `split`: a trailing empty part does not join back.
    let split = plan(json!([{"split": {"name": "w", "into": ["a", "b"]}}]));
    assert_eq!(round_trip(&split, &json!({"w": "x "})), json!({"w": "x"}));
    // `set`: reading back without a stored document keeps the constant.
    let set = plan(json!([{"set": {"name": "k", "value": "c"}}]));
    assert_eq!(round_trip(&set, &json!({"k": "mine"})), json!({"k": "c"}));
    // ...and with one, the stored value comes back (the reverse GetPut).
    let new = set.translate(&json!({"k": "mine"}), &p).unwrap();
    assert_eq!(
        set.reverse()
            .translate_onto(&new, &json!({"k": "mine"}), &p)
            .unwrap(),
        json!({"k": "mine"})
    );
    // `wrap` with a stored list whose head is `null`: an unchanged write-back keeps the list.
    let wrap = plan(json!([{"wrap": {"name": "f"}}]));
    let stored = json!({"f": [null, 2]});
    let view = wrap.reverse().translate(&stored, &p).unwrap();
    assert_eq!(view, json!({"f": null}));
    assert_eq!(wrap.translate_onto(&view, &stored, &p).unwrap(), stored);
    // ...while clearing a non-null head clears the list.
    assert_eq!(
        wrap.translate_onto(&view, &json!({"f": [1, 2]}), &p)
            .unwrap(),
        json!({"f": []})
    );
}
