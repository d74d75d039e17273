//! Translation of raw JSON bytes that touches only what the plan names.
//!
//! The pipeline, per document:
//! 1. **Scan.** A strict, allocation-light scanner reads the top-level object into borrowed
//!    `(key, raw value)` entries, validating the whole input as a parser would (grammar,
//!    UTF-8, escapes, number range, depth). Whatever it refuses goes to `serde_json` for the
//!    precise error, so it may be stricter than needed but never looser. Each key gets the id
//!    of the field name the plan gives it, or none.
//! 2. **Shape.** The sequence of ids is the object's *shape*. When a body is compiled, its
//!    fused steps become a [`Program`] of ops over ids; the first object of each shape runs
//!    these ops on symbols to get a recipe (which input member or constant each output member
//!    holds, under which key, through which conversions), and the recipe is cached. Documents
//!    of one type nearly always share their shape, so per document only the value
//!    conversions remain, whatever the number of renames, adds and removes.
//! 3. **Convert.** Only values an op must look into are touched: a table `convert` looks the
//!    value up by its raw text (`true`, `4`, an unescaped string) and points at the table's
//!    own, pre-serialised value; an `in` reads its nested object the same way (in the same
//!    pass when nothing renames it first); any other step parses just the fields it names and
//!    runs the ordinary `Value` code.
//! 4. **Write.** Members that came in compact and unchanged are copied back as they came, runs
//!    of adjacent ones in one copy; changed members are written from their key and value.
//!
//! Objects without a recipe (a step with no raw form, a conversion of a copied value) run the
//! ops on the entries directly: removal leaves a tombstone and insertion appends, which keeps
//! members in exactly the order a [`serde_json::Map`] would. Either way the output is the
//! `Value` path's output, key order included, except that untouched values keep their
//! original spelling.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::error::LensError;
use crate::op::SplitJoin;
use crate::plan::{self, Body, Params, Plan, Step, StepKind, ValueFn};
use crate::pointer;

impl Plan {
    /// Translate one JSON document from `input`, appending the result to `out`.
    ///
    /// Fields the plan does not name pass through as their original bytes; a plan that
    /// changes nothing checks that `input` is valid JSON and copies it. On error, `out` is left
    /// as it was.
    pub fn translate_bytes(
        &self,
        input: &[u8],
        params: &Params,
        out: &mut Vec<u8>,
    ) -> Result<(), LensError> {
        if self.is_identity() {
            // Validate exactly as strictly as a translation would (UTF-8, escapes, depth,
            // numbers held exactly), then copy. Anything the scanner refuses goes to the
            // reader for its precise error.
            if !validate(input) {
                crate::json::from_slice(input)?;
            }
            out.extend_from_slice(input);
            return Ok(());
        }
        let Some(program) = self.raw_program() else {
            // Some step reads the whole object (an expression, a `map`): parse it all.
            return self.translate_parsed(input, params, out);
        };
        let hint = program.latest_shape();
        let Some((mut fields, hinted)) = scan(program, input, hint.as_deref()) else {
            // Not an object, or not JSON: the full parse gives the precise error.
            return self.translate_parsed(input, params, out);
        };
        let shape = match &hint {
            Some(h) if hinted && h.ids.len() == fields.entries.len() => {
                h.recipe.is_some().then(|| h.clone())
            }
            _ => program.shape_of(&fields),
        };
        let start = out.len();
        out.reserve(input.len() + 64);
        let written = match shape {
            Some(shape) => program
                .apply_shape(&shape, &mut fields, params)
                .and_then(|()| write_shaped(&fields, &shape, out)),
            None => program
                .run(&mut fields, params, Path::Root)
                .and_then(|()| write_object(&fields, out)),
        };
        written.inspect_err(|_| out.truncate(start))
    }

    fn translate_parsed(
        &self,
        input: &[u8],
        params: &Params,
        out: &mut Vec<u8>,
    ) -> Result<(), LensError> {
        let mut v = crate::json::from_slice(input)?;
        self.translate_in_place(&mut v, params)?;
        let start = out.len();
        serde_json::to_writer(&mut *out, &v)
            .map_err(json_error)
            .inspect_err(|_| out.truncate(start))
    }
}

/// The id of a field name no op mentions.
const UNNAMED: u32 = u32::MAX;

/// Up to this many entries, a `convert` table is searched linearly.
const SMALL_TABLE: usize = 16;

/// Names longer than this share the last length bucket.
const LEN_BUCKETS: usize = 32;

/// Programs naming at most this many fields keep an id → position index per object.
const INDEXED: usize = 32;

/// "No entry" in that index (and the first position it cannot hold).
const NO_ENTRY: u8 = u8::MAX;

/// The fused steps of one body as ops over field ids.
pub(crate) struct Program {
    /// Field names by id.
    names: Vec<String>,
    /// `"name":` for each name, escaped once here instead of for every document.
    heads: Vec<String>,
    /// Ids by name length: a key is compared only with the names of its own length.
    by_len: Vec<Vec<u32>>,
    /// By id: the body of an `in` that sees the field exactly as it comes in (no earlier op
    /// touches it), so the scanner can read that nested object in the same pass.
    nested: Vec<Option<Arc<Body>>>,
    ops: Vec<Op>,
    /// Shapes of input objects seen lately, with what the ops make of each (see [`Shape`]).
    shapes: Mutex<Vec<Arc<Shape>>>,
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Program")
            .field("names", &self.names)
            .field("ops", &self.ops.len())
            .finish()
    }
}

enum Op {
    Rename {
        from: u32,
        to: u32,
    },
    Insert {
        name: u32,
        fill: Option<Json>,
    },
    Delete {
        name: u32,
    },
    Set {
        name: u32,
        value: Json,
    },
    Copy {
        from: u32,
        to: u32,
    },
    /// A table `convert`; `step` is kept for the op's origin in errors.
    Table {
        name: u32,
        table: Table,
        step: Step,
    },
    In {
        name: u32,
        sub: Arc<Body>,
    },
    /// A `convert` by an expression that does not read `doc` (nor does its reverse): only
    /// the field's value is parsed, and the expression sees it and the parameters.
    Expr {
        name: u32,
        step: Step,
    },
    /// `join` (with no stored document): the parts are parsed, the whole is written.
    Join {
        parts: Vec<u32>,
        whole: u32,
        step: Step,
    },
    /// `split` (with no stored document): the whole is parsed, the parts are written.
    Split {
        whole: u32,
        parts: Vec<u32>,
        step: Step,
    },
    /// Any other step: its fields are parsed and it runs on them as `Value`s.
    Other {
        step: Step,
        fields: Vec<u32>,
    },
}

impl Program {
    /// Compile fused steps; `None` when a step may read fields it does not name (an
    /// expression sees the whole object, `map` works on an array), which needs a full parse.
    pub(crate) fn compile(steps: &[Step]) -> Option<Program> {
        let mut program = Program {
            names: Vec::new(),
            heads: Vec::new(),
            by_len: vec![Vec::new(); LEN_BUCKETS + 1],
            nested: Vec::new(),
            ops: Vec::with_capacity(steps.len()),
            shapes: Mutex::new(Vec::new()),
        };
        // Ids some earlier op reads or writes: an `in` after such an op may not see the field
        // as scanned, so its object is not read ahead.
        let mut seen: Vec<u32> = Vec::new();
        for step in steps {
            let fields = plan::step_fields(&step.kind)?;
            let ids: Vec<u32> = fields.iter().map(|f| program.intern(f)).collect();
            let first = ids.first().copied().unwrap_or(UNNAMED);
            let second = ids.get(1).copied().unwrap_or(UNNAMED);
            let op = match &step.kind {
                StepKind::Rename { .. } => Op::Rename {
                    from: first,
                    to: second,
                },
                StepKind::Copy { .. } => Op::Copy {
                    from: first,
                    to: second,
                },
                StepKind::Insert { fill: None, .. } => Op::Insert {
                    name: first,
                    fill: None,
                },
                StepKind::Insert {
                    fill: Some(fill), ..
                } => Op::Insert {
                    name: first,
                    fill: Some(Json::new(fill)?),
                },
                StepKind::Delete { .. } => Op::Delete { name: first },
                StepKind::Set { value, .. } => Op::Set {
                    name: first,
                    value: Json::new(value)?,
                },
                StepKind::In { sub, .. } => {
                    if !seen.contains(&first) && sub.raw.is_some() {
                        program.nested.resize(program.names.len(), None);
                        if let Some(slot) = program.nested.get_mut(first as usize) {
                            *slot = Some(sub.clone());
                        }
                    }
                    Op::In {
                        name: first,
                        sub: sub.clone(),
                    }
                }
                StepKind::Convert { fwd, .. } => match fwd.as_ref() {
                    ValueFn::Table { entries, default } => Op::Table {
                        name: first,
                        table: Table::new(entries, default.as_ref())?,
                        step: step.clone(),
                    },
                    // `step_fields` names an expression's field only when neither
                    // direction reads `doc`.
                    ValueFn::Expr { .. } => Op::Expr {
                        name: first,
                        step: step.clone(),
                    },
                    _ => Op::Other {
                        step: step.clone(),
                        fields: ids.clone(),
                    },
                },
                StepKind::Join(sj) => Op::Join {
                    parts: sj.parts.iter().map(|p| program.id(p.as_bytes())).collect(),
                    whole: program.id(sj.whole.as_bytes()),
                    step: step.clone(),
                },
                StepKind::Split(sj) => Op::Split {
                    whole: program.id(sj.whole.as_bytes()),
                    parts: sj.parts.iter().map(|p| program.id(p.as_bytes())).collect(),
                    step: step.clone(),
                },
                _ => {
                    // Each field once, even when a step names one twice (`plunge` a field into
                    // itself, `split` into a repeated part): `run_other` puts each field back
                    // once and would delete it on meeting it a second time.
                    let mut unique: Vec<u32> = Vec::with_capacity(ids.len());
                    for id in &ids {
                        if !unique.contains(id) {
                            unique.push(*id);
                        }
                    }
                    Op::Other {
                        step: step.clone(),
                        fields: unique,
                    }
                }
            };
            seen.extend(ids);
            program.ops.push(op);
        }
        Some(program)
    }

    fn intern(&mut self, name: &str) -> u32 {
        let id = self.id(name.as_bytes());
        if id != UNNAMED {
            return id;
        }
        // A body never names anywhere near u32::MAX fields; saturating keeps this total.
        let id = u32::try_from(self.names.len()).unwrap_or(UNNAMED - 1);
        self.names.push(name.to_owned());
        // Serialising a string cannot fail; the fallback is the same text.
        let quoted = serde_json::to_string(name).unwrap_or_else(|_| format!("{name:?}"));
        self.heads.push(format!("{quoted}:"));
        if let Some(bucket) = self.by_len.get_mut(name.len().min(LEN_BUCKETS)) {
            bucket.push(id);
        }
        id
    }

    /// The id of `key`, or [`UNNAMED`].
    fn id(&self, key: &[u8]) -> u32 {
        let Some(bucket) = self.by_len.get(key.len().min(LEN_BUCKETS)) else {
            return UNNAMED;
        };
        for &id in bucket {
            if self
                .names
                .get(id as usize)
                .is_some_and(|n| n.as_bytes() == key)
            {
                return id;
            }
        }
        UNNAMED
    }

    fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }

    /// The program of the `in` that reads field `id` ahead, if any.
    fn nested(&self, id: u32) -> Option<&Program> {
        self.nested.get(id as usize)?.as_ref()?.raw.as_ref()
    }

    fn entry<'a>(&'a self, id: u32, slot: Slot<'a>) -> Entry<'a> {
        Entry {
            key: Cow::Borrowed(self.name(id).as_bytes()),
            head: 0,
            id,
            slot: Some(slot),
            src: (0, 0),
        }
    }

    /// Run the ops over the fields of one object. `path` is where the object sits in the
    /// document; it is only rendered into a pointer when an error needs one.
    fn run<'a>(
        &'a self,
        fields: &mut Fields<'a>,
        params: &Params,
        path: Path<'_>,
    ) -> Result<(), LensError> {
        for op in &self.ops {
            match op {
                Op::Rename { from, to } => {
                    if let Some(slot) = fields.take(*from) {
                        fields.put(*to, slot);
                    }
                }
                Op::Insert { name, fill } => {
                    if let (None, Some(fill)) = (fields.find(*name), fill) {
                        fields.push(self.entry(*name, Slot::Const(fill)));
                    }
                }
                Op::Delete { name } => {
                    fields.take(*name);
                }
                Op::Set { name, value } => fields.put(*name, Slot::Const(value)),
                Op::Copy { from, to } => {
                    if let Some(slot) = fields.get(*from).cloned() {
                        fields.put(*to, slot);
                    }
                }
                Op::Table { name, table, step } => {
                    if let Some(slot) = fields.get(*name) {
                        let at = Path::Field(&path, self.name(*name));
                        let converted = table.convert(step, slot, at)?;
                        fields.put(*name, converted);
                    }
                }
                Op::In { name, sub } => {
                    if let Some(i) = fields.find(*name) {
                        let at = Path::Field(&path, self.name(*name));
                        if let Some(slot) = fields.take_slot(i) {
                            let translated = run_in(sub, slot, params, at)?;
                            fields.set(i, translated);
                        }
                    }
                }
                Op::Expr { name, step } => {
                    if let Some(i) = fields.find(*name) {
                        if let Some(slot) = fields.take_slot(i) {
                            let at = Path::Field(&path, self.name(*name));
                            fields.set(i, convert_expr(step, slot, params, at)?);
                        }
                    }
                }
                Op::Join { parts, whole, step } => {
                    if parts.iter().any(|p| fields.find(*p).is_some()) {
                        let mut values = Vec::with_capacity(parts.len());
                        for &p in parts {
                            let x = match fields.take(p) {
                                Some(slot) => slot.into_value()?,
                                None => Value::Null,
                            };
                            values.push(join_part(step, x, path, self.name(p))?);
                        }
                        let joined = plan::join_whole(sj(step)?, &values);
                        fields.put(*whole, Slot::Owned(Box::new(joined)));
                    }
                }
                Op::Split { whole, parts, step } => {
                    if let Some(slot) = fields.take(*whole) {
                        let x = slot.into_value()?;
                        let at = Path::Field(&path, self.name(*whole));
                        let values = split(step, &x, at)?;
                        for (&p, v) in parts.iter().zip(values) {
                            fields.put(p, Slot::Owned(Box::new(v)));
                        }
                    }
                }
                Op::Other { step, fields: ids } => {
                    self.run_other(step, ids, fields, params, path)?
                }
            }
        }
        Ok(())
    }

    /// Run a step with no raw form on its fields, parsed, with the ordinary `Value` code, then
    /// put the results back where a `Map` would have them.
    fn run_other<'a>(
        &'a self,
        step: &Step,
        ids: &[u32],
        fields: &mut Fields<'a>,
        params: &Params,
        path: Path<'_>,
    ) -> Result<(), LensError> {
        let mut taken = Map::new();
        for &id in ids {
            if let Some(i) = fields.find(id) {
                if let Some(slot) = fields.take_slot(i) {
                    taken.insert(self.name(id).to_owned(), slot.into_value()?);
                }
            }
        }
        let mut object = Value::Object(taken);
        plan::apply(step, &mut object, None, params, &path.render())?;
        let Value::Object(mut after) = object else {
            // Named steps only ever change an object's members, never the object itself.
            return Err(plan::mismatch(step, &path.render(), "an object", &object));
        };
        for &id in ids {
            if let Some(i) = fields.find(id) {
                match after.shift_remove(self.name(id)) {
                    Some(v) => fields.set(i, Slot::Owned(Box::new(v))),
                    None => {
                        fields.remove_at(i);
                    }
                }
            }
        }
        // What is left was created by the step, in the order a `Map` appends it.
        for (k, v) in after {
            let id = self.id(k.as_bytes());
            let entry = match id {
                UNNAMED => Entry {
                    head: 0,
                    key: Cow::Owned(k.into_bytes()),
                    id,
                    slot: Some(Slot::Owned(Box::new(v))),
                    src: (0, 0),
                },
                _ => self.entry(id, Slot::Owned(Box::new(v))),
            };
            fields.push(entry);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes: the ops run once per shape of input, not once per document

/// How many shapes a program remembers (documents of one type mostly share a few).
const SHAPES: usize = 8;

/// What a program's ops do to objects of one shape, worked out once by running the ops on
/// symbols instead of values. Documents of one type nearly always have the same members in
/// the same order, so per document only the value conversions (tables, `in`) remain, and
/// the output is written straight from this recipe.
///
/// The shape of an object is the sequence of its members' ids ([`UNNAMED`] for members no
/// op names, whatever their keys). Renames, adds, removes, sets and copies depend on nothing
/// else, so the recipe holds for every object of that shape.
struct Shape {
    ids: Vec<u32>,
    /// The keys of the object the shape was first seen in: the scanner of the next document
    /// checks its keys against these first (a same-length compare that predicts well)
    /// instead of looking each one up.
    keys: Vec<Box<[u8]>>,
    /// `None`: the ops cannot be followed symbolically here (a step with no raw form, a
    /// conversion of a constant or of a copied value); such objects run the ops.
    recipe: Option<Recipe>,
}

struct Recipe {
    /// The output members, in order.
    items: Vec<Item>,
    /// What computes values, in op order.
    actions: Vec<Action>,
    /// Members computed per document (`join` and `split` results), after the input's: member
    /// `ids.len() + j` is the `j`th.
    computed: usize,
}

/// One value computation of a recipe.
enum Action {
    /// Member `member` converted in place by op `op` (a table, an expression, an `in`).
    Convert { member: usize, op: usize },
    /// Op `op` (a `join`) reads its parts from these members (`None`: absent, `null`) and
    /// writes the whole into member `out`.
    Join {
        op: usize,
        inputs: Vec<Option<usize>>,
        out: usize,
    },
    /// Op `op` (a `split`) reads the whole from `input` and writes the parts into `outs`.
    Split {
        op: usize,
        input: usize,
        outs: Vec<usize>,
    },
}

#[derive(Clone, Copy, PartialEq)]
enum Source {
    /// The value of input member `i` (after its conversions).
    Member(usize),
    /// The constant of op `k` (an `add` fill or a `set` value).
    Const(usize),
}

#[derive(Clone, Copy)]
struct Item {
    /// The named field this is, or [`UNNAMED`].
    id: u32,
    /// Input member whose key this item keeps, if any; else the key is the program's name.
    key: Option<usize>,
    value: Source,
    /// The input member passes through untouched (its bytes can be copied as they came).
    pristine: bool,
}

impl Program {
    /// The recipe for `fields`' shape, from the cache or worked out now. `None` when the ops
    /// must run on this object (the cache is busy in another thread, or no recipe exists).
    fn shape_of(&self, fields: &Fields<'_>) -> Option<Arc<Shape>> {
        let same = |shape: &Shape| {
            shape.ids.len() == fields.entries.len()
                && shape
                    .ids
                    .iter()
                    .zip(&fields.entries)
                    .all(|(id, e)| *id == e.id)
        };
        if let Ok(mut shapes) = self.shapes.try_lock() {
            if let Some(i) = shapes.iter().position(|s| same(s)) {
                let shape = shapes.remove(i);
                // Most recent last: it is the next document's hint.
                shapes.push(shape.clone());
                return shape.recipe.is_some().then_some(shape);
            }
        }
        let ids: Vec<u32> = fields.entries.iter().map(|e| e.id).collect();
        let keys = fields
            .entries
            .iter()
            .map(|e| e.key.as_ref().into())
            .collect();
        let recipe = self.recipe(&ids);
        let shape = Arc::new(Shape { ids, keys, recipe });
        // Another thread holding the lock only means this shape is not remembered yet.
        if let Ok(mut shapes) = self.shapes.try_lock() {
            if shapes.len() >= SHAPES {
                shapes.remove(0);
            }
            shapes.push(shape.clone());
        }
        shape.recipe.is_some().then_some(shape)
    }

    /// The shape seen last: most likely the next document's too.
    fn latest_shape(&self) -> Option<Arc<Shape>> {
        self.shapes.try_lock().ok()?.last().cloned()
    }

    /// Run the ops on symbols: which input member or constant each output member holds,
    /// under which key, and which conversions each input value goes through.
    fn recipe(&self, ids: &[u32]) -> Option<Recipe> {
        #[derive(Clone, Copy)]
        struct Sym {
            id: u32,
            key: Option<usize>,
            value: Source,
        }
        let mut syms: Vec<Option<Sym>> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                Some(Sym {
                    id,
                    key: Some(i),
                    value: Source::Member(i),
                })
            })
            .collect();
        // Per input member: converted yet (its bytes no longer pass through).
        let mut converted = vec![false; ids.len()];
        let mut actions = Vec::new();
        // The next computed member (see `Recipe::computed`).
        let mut next = ids.len();
        let find = |syms: &[Option<Sym>], id: u32| {
            if id == UNNAMED {
                return None;
            }
            syms.iter().position(|s| s.is_some_and(|s| s.id == id))
        };
        // `Map::insert`: in place (keeping the key) if present, else appended.
        let put = |syms: &mut Vec<Option<Sym>>, id: u32, value: Source| match find(syms, id) {
            Some(j) => {
                if let Some(Some(s)) = syms.get_mut(j) {
                    s.value = value;
                }
            }
            None => syms.push(Some(Sym {
                id,
                key: None,
                value,
            })),
        };
        for (k, op) in self.ops.iter().enumerate() {
            match op {
                Op::Rename { from, to } => {
                    let taken = find(&syms, *from)
                        .and_then(|i| syms.get_mut(i))
                        .and_then(Option::take);
                    if let Some(s) = taken {
                        put(&mut syms, *to, s.value);
                    }
                }
                Op::Insert { name, fill } => {
                    if fill.is_some() && find(&syms, *name).is_none() {
                        put(&mut syms, *name, Source::Const(k));
                    }
                }
                Op::Delete { name } => {
                    if let Some(sym) = find(&syms, *name).and_then(|i| syms.get_mut(i)) {
                        *sym = None;
                    }
                }
                Op::Set { name, .. } => put(&mut syms, *name, Source::Const(k)),
                Op::Copy { from, to } => {
                    if let Some(s) = find(&syms, *from).and_then(|i| syms.get(i).copied().flatten())
                    {
                        put(&mut syms, *to, s.value);
                    }
                }
                Op::Table { name, .. } | Op::In { name, .. } | Op::Expr { name, .. } => {
                    let Some(sym) = find(&syms, *name).and_then(|i| syms.get(i).copied().flatten())
                    else {
                        continue;
                    };
                    // A conversion changes the member's value in place, so no other live
                    // symbol may share it (a copy), and constants are left to the ops.
                    let Source::Member(m) = sym.value else {
                        return None;
                    };
                    let shared = syms
                        .iter()
                        .flatten()
                        .filter(|s| s.value == Source::Member(m))
                        .count();
                    if shared > 1 {
                        return None;
                    }
                    if let Some(c) = converted.get_mut(m) {
                        *c = true;
                    }
                    actions.push(Action::Convert { member: m, op: k });
                }
                Op::Join { parts, whole, .. } => {
                    if parts.iter().all(|p| find(&syms, *p).is_none()) {
                        continue;
                    }
                    // As `shift_remove` of each part, then `insert` of the whole.
                    let mut inputs = Vec::with_capacity(parts.len());
                    for &p in parts {
                        let taken = find(&syms, p)
                            .and_then(|i| syms.get_mut(i))
                            .and_then(Option::take);
                        match taken.map(|s| s.value) {
                            None => inputs.push(None),
                            Some(Source::Member(m)) => inputs.push(Some(m)),
                            // A constant part: left to the ops.
                            Some(Source::Const(_)) => return None,
                        }
                    }
                    let out = next;
                    next += 1;
                    put(&mut syms, *whole, Source::Member(out));
                    actions.push(Action::Join { op: k, inputs, out });
                }
                Op::Split { whole, parts, .. } => {
                    let taken = find(&syms, *whole)
                        .and_then(|i| syms.get_mut(i))
                        .and_then(Option::take);
                    let Some(sym) = taken else {
                        continue;
                    };
                    let Source::Member(input) = sym.value else {
                        return None;
                    };
                    let outs: Vec<usize> = (next..next + parts.len()).collect();
                    next += parts.len();
                    for (&p, &o) in parts.iter().zip(&outs) {
                        put(&mut syms, p, Source::Member(o));
                    }
                    actions.push(Action::Split { op: k, input, outs });
                }
                Op::Other { .. } => return None,
            }
        }
        let items = syms
            .into_iter()
            .flatten()
            .map(|s| Item {
                id: s.id,
                key: s.key,
                value: s.value,
                pristine: matches!(
                    (s.key, s.value),
                    (Some(i), Source::Member(m)) if i == m && converted.get(m) == Some(&false)
                ),
            })
            .collect();
        Some(Recipe {
            items,
            actions,
            computed: next - ids.len(),
        })
    }

    /// The value conversions of a recipe, in op order, in place.
    fn apply_shape<'a>(
        &'a self,
        shape: &Shape,
        fields: &mut Fields<'a>,
        params: &Params,
    ) -> Result<(), LensError> {
        let Some(recipe) = &shape.recipe else {
            return Ok(());
        };
        // The computed members, empty until their op fills them. No op looks them up by
        // id: only the recipe refers to them, by position.
        for _ in 0..recipe.computed {
            fields.entries.push(Entry {
                key: Cow::Borrowed(b""),
                head: 0,
                id: UNNAMED,
                slot: None,
                src: (0, 0),
            });
        }
        for action in &recipe.actions {
            match action {
                &Action::Convert { member: m, op: k } => {
                    let Some(slot) = fields.take_slot(m) else {
                        continue;
                    };
                    let converted = match self.ops.get(k) {
                        Some(Op::Table { name, table, step }) => table.convert(
                            step,
                            &slot,
                            Path::Field(&Path::Root, self.name(*name)),
                        )?,
                        Some(Op::In { name, sub }) => run_in(
                            sub,
                            slot,
                            params,
                            Path::Field(&Path::Root, self.name(*name)),
                        )?,
                        Some(Op::Expr { name, step }) => convert_expr(
                            step,
                            slot,
                            params,
                            Path::Field(&Path::Root, self.name(*name)),
                        )?,
                        _ => slot,
                    };
                    fields.set(m, converted);
                }
                Action::Join { op, inputs, out } => {
                    let Some(Op::Join { parts, step, .. }) = self.ops.get(*op) else {
                        return Err(internal("a join action without its op"));
                    };
                    let mut values = Vec::with_capacity(inputs.len());
                    for (&p, input) in parts.iter().zip(inputs) {
                        let x = match input {
                            Some(m) => member_value(fields, *m)?,
                            None => Value::Null,
                        };
                        values.push(join_part(step, x, Path::Root, self.name(p))?);
                    }
                    let joined = plan::join_whole(sj(step)?, &values);
                    fields.set(*out, Slot::Owned(Box::new(joined)));
                }
                Action::Split { op, input, outs } => {
                    let Some(Op::Split { whole, step, .. }) = self.ops.get(*op) else {
                        return Err(internal("a split action without its op"));
                    };
                    let x = member_value(fields, *input)?;
                    let at = Path::Field(&Path::Root, self.name(*whole));
                    let values = split(step, &x, at)?;
                    for (&o, v) in outs.iter().zip(values) {
                        fields.set(o, Slot::Owned(Box::new(v)));
                    }
                }
            }
        }
        Ok(())
    }

    /// The constant that op `k` writes.
    fn constant(&self, k: usize) -> Option<&Json> {
        match self.ops.get(k)? {
            Op::Insert { fill, .. } => fill.as_ref(),
            Op::Set { value, .. } => Some(value),
            _ => None,
        }
    }
}

/// `in` on one field's value: a raw object runs the nested program on its own fields; anything
/// else (a value already parsed, a non-object, a nested body that needs a full parse) runs the
/// `Value` steps, which also report a non-object the way the `Value` path does.
fn run_in<'a>(
    sub: &'a Body,
    slot: Slot<'a>,
    params: &Params,
    at: Path<'_>,
) -> Result<Slot<'a>, LensError> {
    if slot.is_null() {
        return Ok(slot);
    }
    let Some(program) = &sub.raw else {
        return run_in_value(sub, slot, params, at);
    };
    if program.ops.is_empty() {
        return Ok(slot);
    }
    let mut fields = match slot {
        Slot::Raw(text) => match scan(program, text, None) {
            Some((fields, _)) => Box::new(fields),
            None => return run_in_value(sub, Slot::Raw(text), params, at),
        },
        Slot::Object(mut fields) => {
            // Read ahead for this `in`, or translated by an earlier one with other ids.
            if !std::ptr::eq(fields.program, program) {
                fields.rekey(program);
            }
            fields
        }
        other => return run_in_value(sub, other, params, at),
    };
    program.run(&mut fields, params, at)?;
    Ok(Slot::Object(fields))
}

fn run_in_value<'a>(
    sub: &Body,
    slot: Slot<'a>,
    params: &Params,
    at: Path<'_>,
) -> Result<Slot<'a>, LensError> {
    let mut v = slot.into_value()?;
    plan::run(&sub.fused, &mut v, None, params, &at.render())?;
    Ok(Slot::Owned(Box::new(v)))
}

/// The value of member `m` as a `Value` (it stays in place: another output member may
/// share it).
fn member_value(fields: &Fields<'_>, m: usize) -> Result<Value, LensError> {
    match fields.entries.get(m).and_then(|e| e.slot.as_ref()) {
        Some(slot) => slot.to_value(),
        None => Err(internal("a recipe reads a missing member")),
    }
}

/// A `convert` by an expression that does not read `doc`: the value alone is parsed.
fn convert_expr<'a>(
    step: &Step,
    slot: Slot<'a>,
    params: &Params,
    at: Path<'_>,
) -> Result<Slot<'a>, LensError> {
    let StepKind::Convert { fwd, .. } = &step.kind else {
        return Err(internal("an expression op without its convert"));
    };
    let x = slot.into_value()?;
    let y = plan::eval_at(fwd, step, &x, &Value::Null, params, &|| at.render())?;
    Ok(Slot::Owned(Box::new(y)))
}

/// The `split`/`join` of a step compiled into [`Op::Join`] or [`Op::Split`].
fn sj(step: &Step) -> Result<&SplitJoin, LensError> {
    match &step.kind {
        StepKind::Split(sj) | StepKind::Join(sj) => Ok(sj),
        _ => Err(internal("a split or join op without its step")),
    }
}

/// The parts of a `split` of `x`, as the `Value` path splits it (the pointer `at` is
/// rendered only for the error).
fn split(step: &Step, x: &Value, at: Path<'_>) -> Result<Vec<Value>, LensError> {
    let at = match x {
        Value::String(_) | Value::Null => String::new(),
        _ => at.render(),
    };
    plan::split_value(step, sj(step)?, x, &at)
}

/// A part of a `join` checked as the `Value` path checks it (the pointer is rendered only
/// for the error).
fn join_part(step: &Step, x: Value, path: Path<'_>, name: &str) -> Result<Value, LensError> {
    match &x {
        Value::String(_) | Value::Null => Ok(x),
        other => Err(plan::mismatch(
            step,
            &Path::Field(&path, name).render(),
            "a string",
            other,
        )),
    }
}

/// A value the plan writes (a fill, a `set` value, a table entry) with its JSON text,
/// serialised once when the plan is compiled.
struct Json {
    value: Value,
    text: String,
}

impl Json {
    /// `None` if the value cannot be serialised (never for a `Value`); the step then runs
    /// through the `Value` path instead.
    fn new(value: &Value) -> Option<Json> {
        Some(Json {
            text: serde_json::to_string(value).ok()?,
            value: value.clone(),
        })
    }
}

/// A `convert` table, keyed as `plan::value_key` keys values.
struct Table {
    entries: Vec<(String, Json)>,
    /// Positions by key, for tables too long to search.
    by_key: Option<std::collections::HashMap<String, usize>>,
    default: Option<Json>,
}

impl Table {
    fn new(entries: &Map<String, Value>, default: Option<&Value>) -> Option<Table> {
        let entries: Vec<(String, Json)> = entries
            .iter()
            .map(|(k, v)| Some((k.clone(), Json::new(v)?)))
            .collect::<Option<_>>()?;
        let by_key = (entries.len() > SMALL_TABLE).then(|| {
            let mut by_key = std::collections::HashMap::with_capacity(entries.len());
            for (i, (k, _)) in entries.iter().enumerate() {
                // A `Map` has no repeated keys, so no position is overwritten.
                by_key.entry(k.clone()).or_insert(i);
            }
            by_key
        });
        let default = match default {
            Some(d) => Some(Json::new(d)?),
            None => None,
        };
        Some(Table {
            entries,
            by_key,
            default,
        })
    }

    /// Convert one value. The key is the value's text (see `plan::value_key`); for the
    /// common raw values that text is the input itself, so the lookup needs no parse and no
    /// allocation, and the result points at the table's own value.
    fn convert<'a>(
        &'a self,
        step: &Step,
        slot: &Slot<'a>,
        at: Path<'_>,
    ) -> Result<Slot<'a>, LensError> {
        let (key, is_null): (Cow<'_, [u8]>, bool) = match slot {
            Slot::Raw(text) => match raw_key(text) {
                Some(key) => (Cow::Borrowed(key), *text == b"null"),
                None => {
                    let v = slot.to_value()?;
                    (Cow::Owned(plan::value_key(&v).into_bytes()), v.is_null())
                }
            },
            Slot::Const(c) => (
                Cow::Owned(plan::value_key(&c.value).into_bytes()),
                c.value.is_null(),
            ),
            Slot::Owned(v) => (Cow::Owned(plan::value_key(v).into_bytes()), v.is_null()),
            Slot::Object(_) => (
                Cow::Owned(plan::value_key(&slot.to_value()?).into_bytes()),
                false,
            ),
        };
        // Tables are small: comparing a few short strings beats hashing the key.
        let found = match &self.by_key {
            None => self
                .entries
                .iter()
                .find(|(k, _)| k.as_bytes() == key.as_ref()),
            Some(by_key) => std::str::from_utf8(&key)
                .ok()
                .and_then(|k| by_key.get(k))
                .and_then(|&i| self.entries.get(i)),
        };
        if let Some((_, v)) = found {
            return Ok(Slot::Const(v));
        }
        match &self.default {
            Some(d) => Ok(Slot::Const(d)),
            // An absent value stays absent: a nullable field needs no mapping for null.
            None if is_null => Ok(Slot::Raw(b"null")),
            None => Err(LensError::NoMapping {
                op: step.origin.to_string(),
                at: at.render(),
                value: slot.to_value()?.to_string(),
            }),
        }
    }
}

/// The table key of a raw value when it can be read off the text: literals, integers in
/// canonical form, strings without escapes. `None`: parse the value to get its key.
fn raw_key(text: &[u8]) -> Option<&[u8]> {
    let bytes = text;
    match bytes.first()? {
        b't' | b'f' | b'n' => Some(text),
        b'"' => {
            let inner = text.get(1..text.len().checked_sub(1)?)?;
            (!inner.contains(&b'\\')).then_some(inner)
        }
        b'-' | b'0'..=b'9' => {
            let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
            // What `Number`'s `Display` writes back unchanged: no fraction, exponent, leading
            // zero or `-0`, and few enough digits to be an exact 64-bit integer.
            let canonical = !digits.is_empty()
                && digits.len() <= 18
                && digits.iter().all(u8::is_ascii_digit)
                && (digits.first() != Some(&b'0') || digits == b"0")
                && !(digits == b"0" && bytes.len() > 1);
            canonical.then_some(text)
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Fields of one object

/// The members of one object, in order. A removed member stays as a tombstone (no slot, no
/// id), so removal keeps the others' order without shifting them, as `Map::shift_remove`
/// does; a new member is appended, as `Map::insert` does.
#[derive(Clone)]
struct Fields<'a> {
    /// The program whose ids the entries carry.
    program: &'a Program,
    /// The JSON text that the entries' spans point into.
    text: &'a [u8],
    entries: Vec<Entry<'a>>,
    /// Position by id, while the program names few enough fields and the positions fit;
    /// `None`: search the entries.
    index: Option<[u8; INDEXED]>,
}

#[derive(Clone)]
struct Entry<'a> {
    /// The key, unescaped (UTF-8, as the scanner checked).
    key: Cow<'a, [u8]>,
    /// Where `"key":` starts in the object's text when it came in compact and unescaped, so
    /// it can be copied back; `0` when the key comes from the program (or must be escaped).
    head: u32,
    /// The program's id of the key, or [`UNNAMED`] (also for tombstones).
    id: u32,
    slot: Option<Slot<'a>>,
    /// `"key":value` as it came in, compact and unchanged, as a byte range of the object's
    /// text (`0..0` once anything changed): written back with one copy, together with
    /// adjacent members that are also unchanged.
    src: (u32, u32),
}

#[derive(Clone)]
enum Slot<'a> {
    /// A value as it came in: validated JSON text, written out unchanged.
    Raw(&'a [u8]),
    /// A value the plan holds (a fill, a `set` value, a table entry).
    Const(&'a Json),
    /// A value parsed and changed by a step.
    Owned(Box<Value>),
    /// A nested object scanned for `in`, still mostly raw.
    Object(Box<Fields<'a>>),
}

impl<'a> Fields<'a> {
    fn new(program: &'a Program, text: &'a [u8], capacity: usize) -> Fields<'a> {
        Fields {
            program,
            text,
            entries: Vec::with_capacity(capacity),
            index: (program.names.len() <= INDEXED).then_some([NO_ENTRY; INDEXED]),
        }
    }

    fn find(&self, id: u32) -> Option<usize> {
        if id == UNNAMED {
            return None;
        }
        match &self.index {
            Some(index) => {
                let i = *index.get(id as usize)?;
                (i != NO_ENTRY).then_some(i as usize)
            }
            None => self.entries.iter().position(|e| e.id == id),
        }
    }

    fn get(&self, id: u32) -> Option<&Slot<'a>> {
        self.entries.get(self.find(id)?)?.slot.as_ref()
    }

    /// Append a member whose id is not present yet.
    fn push(&mut self, entry: Entry<'a>) {
        if let Some(index) = &mut self.index {
            match (
                index.get_mut(entry.id as usize),
                u8::try_from(self.entries.len()),
            ) {
                (Some(i), Ok(pos)) if pos != NO_ENTRY => *i = pos,
                // Not a named field: nothing looks it up.
                (None, _) => {}
                // More members than the index can point at: search from now on.
                (Some(_), _) => self.index = None,
            }
        }
        self.entries.push(entry);
    }

    /// Replace the value at `i` (the member is no longer as it came in).
    fn set(&mut self, i: usize, slot: Slot<'a>) {
        if let Some(e) = self.entries.get_mut(i) {
            e.slot = Some(slot);
            e.src = (0, 0);
        }
    }

    /// Take the value at `i` out, to be `set` back.
    fn take_slot(&mut self, i: usize) -> Option<Slot<'a>> {
        let e = self.entries.get_mut(i)?;
        e.src = (0, 0);
        e.slot.take()
    }

    /// Remove the member at `i`, leaving a tombstone.
    fn remove_at(&mut self, i: usize) -> Option<Slot<'a>> {
        let e = self.entries.get_mut(i)?;
        if let Some(slot) = self.index.as_mut().and_then(|ix| ix.get_mut(e.id as usize)) {
            *slot = NO_ENTRY;
        }
        e.id = UNNAMED;
        e.src = (0, 0);
        e.slot.take()
    }

    /// Remove the member `id` (`shift_remove`).
    fn take(&mut self, id: u32) -> Option<Slot<'a>> {
        let i = self.find(id)?;
        self.remove_at(i)
    }

    /// Set the member `id`, in place if present, else at the end (`insert`).
    fn put(&mut self, id: u32, slot: Slot<'a>) {
        match self.find(id) {
            Some(i) => self.set(i, slot),
            None => self.push(self.program.entry(id, slot)),
        }
    }

    /// Re-derive ids (and the index) for another program. Members that become the same
    /// named field merge as a `Map` would merge them: first position, last value.
    fn rekey(&mut self, program: &'a Program) {
        let entries = std::mem::take(&mut self.entries);
        *self = Fields::new(program, self.text, entries.len() + program.ops.len());
        for mut e in entries {
            if e.slot.is_none() {
                continue;
            }
            e.id = program.id(&e.key);
            match self.find(e.id) {
                Some(i) => {
                    if let Some(slot) = e.slot {
                        self.set(i, slot);
                    }
                }
                None => self.push(e),
            }
        }
    }
}

impl<'a> Slot<'a> {
    fn is_null(&self) -> bool {
        match self {
            Slot::Raw(text) => *text == b"null",
            Slot::Const(c) => c.value.is_null(),
            Slot::Owned(v) => v.is_null(),
            Slot::Object(_) => false,
        }
    }

    fn into_value(self) -> Result<Value, LensError> {
        match self {
            Slot::Owned(v) => Ok(*v),
            other => other.to_value(),
        }
    }

    fn to_value(&self) -> Result<Value, LensError> {
        match self {
            Slot::Raw(text) => Ok(crate::json::from_slice(text)?),
            Slot::Const(c) => Ok(c.value.clone()),
            Slot::Owned(v) => Ok((**v).clone()),
            Slot::Object(fields) => {
                let mut map = Map::new();
                for e in &fields.entries {
                    if let Some(slot) = &e.slot {
                        map.insert(key_text(&e.key)?.to_owned(), slot.to_value()?);
                    }
                }
                Ok(Value::Object(map))
            }
        }
    }
}

/// Where an object sits in the document, rendered into a JSON pointer only for an error.
#[derive(Clone, Copy)]
enum Path<'p> {
    Root,
    Field(&'p Path<'p>, &'p str),
}

impl Path<'_> {
    fn render(&self) -> String {
        match self {
            Path::Root => String::new(),
            Path::Field(parent, token) => pointer::push(&parent.render(), token),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Output

fn write_object(fields: &Fields<'_>, out: &mut Vec<u8>) -> Result<(), LensError> {
    out.push(b'{');
    let text = fields.text;
    let mut first = true;
    // Members that came in compact and unchanged, next to each other: copied in one go.
    let mut run: Option<(usize, usize)> = None;
    for e in &fields.entries {
        let Some(slot) = &e.slot else { continue };
        let (start, end) = (e.src.0 as usize, e.src.1 as usize);
        if end > start {
            match &mut run {
                Some((_, run_end))
                    if *run_end + 1 == start && text.get(*run_end) == Some(&b',') =>
                {
                    *run_end = end;
                }
                _ => {
                    flush(&mut run, text, out, &mut first)?;
                    run = Some((start, end));
                }
            }
            continue;
        }
        flush(&mut run, text, out, &mut first)?;
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        write_key(fields, e, out)?;
        write_slot(slot, out)?;
    }
    flush(&mut run, text, out, &mut first)?;
    out.push(b'}');
    Ok(())
}

/// Write an object by its recipe (see [`Shape`]).
fn write_shaped(fields: &Fields<'_>, shape: &Shape, out: &mut Vec<u8>) -> Result<(), LensError> {
    let Some(recipe) = &shape.recipe else {
        return write_object(fields, out);
    };
    let program = fields.program;
    let text = fields.text;
    out.push(b'{');
    let mut first = true;
    let mut run: Option<(usize, usize)> = None;
    for item in &recipe.items {
        let member = match item.value {
            Source::Member(m) => fields.entries.get(m),
            Source::Const(_) => None,
        };
        if item.pristine {
            if let Some(e) = member {
                let (start, end) = (e.src.0 as usize, e.src.1 as usize);
                if end > start {
                    match &mut run {
                        Some((_, run_end))
                            if *run_end + 1 == start && text.get(*run_end) == Some(&b',') =>
                        {
                            *run_end = end;
                        }
                        _ => {
                            flush(&mut run, text, out, &mut first)?;
                            run = Some((start, end));
                        }
                    }
                    continue;
                }
            }
        }
        flush(&mut run, text, out, &mut first)?;
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        match item.key.and_then(|i| fields.entries.get(i)) {
            Some(e) => write_key(fields, e, out)?,
            None => match program.heads.get(item.id as usize) {
                Some(head) => out.extend_from_slice(head.as_bytes()),
                None => return Err(internal("an output member has no key")),
            },
        }
        match (item.value, member.and_then(|e| e.slot.as_ref())) {
            (Source::Member(_), Some(slot)) => write_slot(slot, out)?,
            (Source::Const(k), _) => match program.constant(k) {
                Some(c) => out.extend_from_slice(c.text.as_bytes()),
                None => return Err(internal("an output constant is missing")),
            },
            (Source::Member(_), None) => return Err(internal("an output value is missing")),
        }
    }
    flush(&mut run, text, out, &mut first)?;
    out.push(b'}');
    Ok(())
}

#[inline]
fn write_key(fields: &Fields<'_>, e: &Entry<'_>, out: &mut Vec<u8>) -> Result<(), LensError> {
    let start = e.head as usize;
    // `"` + key + `":`
    let copied = (start != 0)
        .then(|| fields.text.get(start..start + e.key.len() + 3))
        .flatten();
    if let Some(head) = copied {
        out.extend_from_slice(head);
    } else if let Some(head) = fields.program.heads.get(e.id as usize) {
        out.extend_from_slice(head.as_bytes());
    } else {
        serde_json::to_writer(&mut *out, key_text(&e.key)?).map_err(json_error)?;
        out.push(b':');
    }
    Ok(())
}

/// A key as text. Keys are checked UTF-8 when scanned, so this never fails in practice.
fn key_text(key: &[u8]) -> Result<&str, LensError> {
    std::str::from_utf8(key).map_err(|_| internal("a key is not UTF-8"))
}

#[inline]
fn write_slot(slot: &Slot<'_>, out: &mut Vec<u8>) -> Result<(), LensError> {
    match slot {
        Slot::Raw(value) => out.extend_from_slice(value),
        Slot::Const(c) => out.extend_from_slice(c.text.as_bytes()),
        Slot::Owned(v) => serde_json::to_writer(&mut *out, v.as_ref()).map_err(json_error)?,
        Slot::Object(nested) => write_object(nested, out)?,
    }
    Ok(())
}

/// An invariant of this module broken: reported, never a panic.
fn internal(what: &str) -> LensError {
    LensError::InvalidInput {
        at: String::new(),
        reason: format!("internal error in the raw translator: {what}"),
    }
}

#[inline]
fn flush(
    run: &mut Option<(usize, usize)>,
    text: &[u8],
    out: &mut Vec<u8>,
    first: &mut bool,
) -> Result<(), LensError> {
    let Some((start, end)) = run.take() else {
        return Ok(());
    };
    let Some(bytes) = text.get(start..end) else {
        // The scanner took the span from this very text.
        return Err(internal("a member's span lies outside the document"));
    };
    if !std::mem::take(first) {
        out.push(b',');
    }
    out.extend_from_slice(bytes);
    Ok(())
}

fn json_error(e: serde_json::Error) -> LensError {
    LensError::InvalidInput {
        at: String::new(),
        reason: format!("invalid JSON: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Input

/// How deep containers may nest: `serde_json` refuses a 128th level when it parses a `Value`,
/// so the raw path refuses it too and lets the full parse report it.
pub(crate) const MAX_DEPTH: u32 = 127;

/// Scan one JSON object (the whole of `text`, surrounding whitespace allowed) into fields,
/// looking each key's id up in `program`.
///
/// This is a strict validator: whatever it accepts, `serde_json` parses into a `Value` too.
/// `None` means "not sure": the caller then parses with `serde_json`, which either reports the
/// precise error or translates the document the ordinary way. Being stricter (lone surrogate
/// escapes, depth) only ever costs speed, never correctness. `text` is already valid UTF-8.
///
/// With a `hint` (the shape of an earlier document), each top-level key is first compared
/// with the hint's key at its position; the flag returned says whether every one matched,
/// in which case the object has the hint's shape.
fn scan<'a>(
    program: &'a Program,
    text: &'a [u8],
    hint: Option<&'a Shape>,
) -> Option<(Fields<'a>, bool)> {
    let mut s = Scanner {
        bytes: text,
        pos: 0,
        hint,
        hinted: hint.is_some(),
    };
    s.ws();
    let fields = s.object(program, 1)?;
    s.ws();
    (s.pos == s.bytes.len()).then_some((fields, s.hinted))
}

/// Whether `input` is one JSON value (surrounding whitespace allowed) that
/// [`crate::json::from_slice`] reads. `false` may also mean "not sure" (see [`scan`]).
fn validate(input: &[u8]) -> bool {
    let mut s = Scanner::new(input);
    s.ws();
    if s.value(0).is_none() {
        return false;
    }
    s.ws();
    s.pos == s.bytes.len()
}

/// The strict JSON scanner of the raw path, also the tokenizer of [`crate::json`]'s reader.
pub(crate) struct Scanner<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) pos: usize,
    /// The shape the top-level object probably has.
    hint: Option<&'a Shape>,
    /// Every top-level key so far matched the hint.
    hinted: bool,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

impl<'a> Scanner<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Scanner<'a> {
        Scanner {
            bytes,
            pos: 0,
            hint: None,
            hinted: false,
        }
    }

    /// One object at nesting level `level` (the top is 1), from its `{`.
    fn object(&mut self, program: &'a Program, level: u32) -> Option<Fields<'a>> {
        if level > MAX_DEPTH {
            return None;
        }
        self.eat(b'{')?;
        // Room for a typical document's members (a shaped object gains none: its output is
        // written from the recipe); nested objects tend to be small. Kept under 1 kB, which
        // allocators serve fastest.
        let members = if level == 1 { 12 } else { 4 };
        let mut fields = Fields::new(program, self.bytes, members);
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Some(fields);
        }
        loop {
            self.ws();
            let key_start = self.pos;
            let escaped = self.string()?;
            let key_end = self.pos;
            let quoted = self.bytes.get(key_start..key_end)?;
            let key = if escaped {
                // Rare: let serde_json undo the escapes (and check them as a `Value` parse would).
                Cow::Owned(serde_json::from_slice::<String>(quoted).ok()?.into_bytes())
            } else {
                Cow::Borrowed(quoted.get(1..quoted.len() - 1)?)
            };
            self.ws();
            self.eat(b':')?;
            self.ws();
            let value_start = self.pos;
            let id = match self.hint {
                Some(hint) if level == 1 && self.hinted => {
                    let at = fields.entries.len();
                    match (hint.keys.get(at), hint.ids.get(at)) {
                        (Some(k), Some(&id)) if **k == *key => id,
                        _ => {
                            self.hinted = false;
                            program.id(&key)
                        }
                    }
                }
                _ => program.id(&key),
            };
            let slot = match program.nested(id) {
                Some(sub) if self.peek() == Some(b'{') => {
                    Slot::Object(Box::new(self.object(sub, level + 1)?))
                }
                _ => {
                    self.value(level)?;
                    Slot::Raw(self.bytes.get(value_start..self.pos)?)
                }
            };
            // Compact (`"key":value`): the member can be copied back as it is, and its key
            // with it when the member changes. An escaped key is written back escaped anew.
            let compact = value_start == key_end + 1;
            let (head, src) = match (u32::try_from(key_start), u32::try_from(self.pos)) {
                (Ok(start), Ok(end)) if compact => (if escaped { 0 } else { start }, (start, end)),
                _ => (0, (0, 0)),
            };
            // A repeated key the plan names keeps its first position and its last value, as
            // parsing into a `Map` would; other repeats pass through as they came.
            match fields.find(id) {
                Some(i) => fields.set(i, slot),
                None => fields.push(Entry {
                    key,
                    head,
                    id,
                    slot: Some(slot),
                    src,
                }),
            }
            self.ws();
            match self.next()? {
                b',' => {}
                b'}' => return Some(fields),
                _ => return None,
            }
        }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    pub(crate) fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    pub(crate) fn eat(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// Skip one value; `depth` counts the containers around it.
    fn value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.pos += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    self.string()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => {}
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.pos += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => {}
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    pub(crate) fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos.checked_add(word.len())?;
        (self.bytes.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// One number, which [`crate::json::number`] must hold exactly: the raw path copies
    /// numbers as their bytes, so it refuses what the reader refuses (and lets the reader name
    /// the number and its pointer).
    fn number(&mut self) -> Option<()> {
        let start = self.pos;
        let exact = self.number_grammar()?;
        // Most numbers are surely exact and skip the check.
        if !exact {
            let text = self
                .bytes
                .get(start..self.pos)
                .and_then(|t| std::str::from_utf8(t).ok())?;
            crate::json::check_number(text).ok()?;
        }
        Some(())
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`. `Some(true)` when the number
    /// is surely one mutatis holds exactly, without looking closer: an integer of at most 18
    /// digits, which no 64-bit integer overflows, or a decimal without exponent of at most 15
    /// digits in all (see [`crate::json::number`]).
    pub(crate) fn number_grammar(&mut self) -> Option<bool> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let integer = match self.next()? {
            b'0' => 1,
            b'1'..=b'9' => 1 + self.digits(),
            _ => return None,
        };
        let mut exact = integer <= 18;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            let fraction = self.digits();
            if fraction == 0 {
                return None;
            }
            exact = integer + fraction <= crate::json::FLOAT_DIGITS;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            exact = false;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        // `01`, `1.5.2`, `2x`: whatever follows must end the number.
        if let Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') = self.peek() {
            return None;
        }
        Some(exact)
    }

    /// Skip a string from its opening quote; `Some(true)` if it had escapes. Checks that
    /// the string is UTF-8 (outside strings the grammar admits ASCII only, so this checks the
    /// whole document).
    pub(crate) fn string(&mut self) -> Option<bool> {
        self.eat(b'"')?;
        let mut escaped = false;
        loop {
            self.skip_plain();
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(escaped);
                }
                b'\\' => {
                    self.pos += 1;
                    escaped = true;
                    self.escape()?;
                }
                0x80..=0xFF => self.utf8_char()?,
                // A control character, which JSON requires to be escaped.
                _ => return None,
            }
        }
    }

    /// Advance to the next `"`, `\`, control character or non-ASCII byte, eight bytes at a
    /// time.
    fn skip_plain(&mut self) {
        while let Some(chunk) = self.bytes.get(self.pos..self.pos + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let v = u64::from_le_bytes(word);
            let quote = v ^ (ONES * u64::from(b'"'));
            let backslash = v ^ (ONES * u64::from(b'\\'));
            // Classic SWAR tests: a byte is zero / below 0x20 / has its high bit set. Borrows
            // can only flag bytes *after* the first real hit, and only the first one is used.
            let hits = (quote.wrapping_sub(ONES) & !quote)
                | (backslash.wrapping_sub(ONES) & !backslash)
                | (v.wrapping_sub(ONES * 0x20) & !v)
                | v;
            let hits = hits & HIGHS;
            if hits != 0 {
                self.pos += (hits.trailing_zeros() / 8) as usize;
                return;
            }
            self.pos += 8;
        }
        while let Some(b) = self.peek() {
            if b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b) {
                return;
            }
            self.pos += 1;
        }
    }

    /// One multi-byte UTF-8 character, from its lead byte: the well-formed sequences of the
    /// Unicode standard (no overlong forms, no surrogates, nothing above U+10FFFF).
    fn utf8_char(&mut self) -> Option<()> {
        let (more, lo, hi) = match self.next()? {
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
            0xED => (2, 0x80, 0x9F),
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            0xF4 => (3, 0x80, 0x8F),
            _ => return None,
        };
        if !(lo..=hi).contains(&self.next()?) {
            return None;
        }
        for _ in 1..more {
            if !(0x80..=0xBF).contains(&self.next()?) {
                return None;
            }
        }
        Some(())
    }

    /// One escape after its backslash. `\u` escapes must form valid code points: a lone
    /// surrogate is refused, as `serde_json` refuses it when it parses a string.
    fn escape(&mut self) -> Option<()> {
        match self.next()? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(()),
            b'u' => {
                let unit = self.hex4()?;
                match unit {
                    0xD800..=0xDBFF => {
                        self.eat(b'\\')?;
                        self.eat(b'u')?;
                        matches!(self.hex4()?, 0xDC00..=0xDFFF).then_some(())
                    }
                    0xDC00..=0xDFFF => None,
                    _ => Some(()),
                }
            }
            _ => None,
        }
    }

    fn hex4(&mut self) -> Option<u16> {
        let end = self.pos.checked_add(4)?;
        let digits = self.bytes.get(self.pos..end)?;
        let mut unit = 0u16;
        for &d in digits {
            let v = (d as char).to_digit(16)?;
            unit = unit * 16 + v as u16;
        }
        self.pos = end;
        Some(unit)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Direction, Lens, LensError, Params, Plan, Transforms};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn plan(yaml: &str) -> Plan {
        let mut transforms = Transforms::new();
        transforms.register_fn(
            "upper",
            |v: &Value, _: &Value| Ok(json!(v.as_str().unwrap_or("").to_uppercase())),
            |v: &Value, _: &Value| Ok(json!(v.as_str().unwrap_or("").to_lowercase())),
        );
        Plan::compile(
            &Lens::from_file_str(yaml).unwrap(),
            Direction::Forward,
            &transforms,
        )
        .unwrap()
    }

    fn bytes(p: &Plan, input: &[u8]) -> Result<String, LensError> {
        let mut out = Vec::new();
        p.translate_bytes(input, &Params::new(), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    /// What `translate_bytes` must give: a full parse by the exact reader, then the `Value`
    /// path.
    fn via_value(p: &Plan, input: &[u8]) -> Result<Value, ()> {
        let v = crate::json::from_slice(input).map_err(|_| ())?;
        p.translate(&v, &Params::new()).map_err(|_| ())
    }

    /// Equal errors; for a CEL failure, equal but for the reason's text, which prints maps
    /// in hash order.
    fn same_error(a: &LensError, b: &LensError) -> bool {
        match (a, b) {
            (
                LensError::Expression { op, at, expr, .. },
                LensError::Expression {
                    op: op2,
                    at: at2,
                    expr: expr2,
                    ..
                },
            ) => op == op2 && at == at2 && expr == expr2,
            _ => a == b,
        }
    }

    fn keys(v: &Value) -> Vec<String> {
        match v {
            Value::Object(m) => m.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Every op kind, so that each has its raw form (or its `Value` fallback) exercised.
    const LENSES: &[&str] = &[
        "lens:\n  - rename: {source: a, destination: b}\n",
        "lens:\n  - rename: {source: a, destination: b}\n  - add: {name: z, type: string, default: zz}\n  - remove: {name: c, type: number}\n",
        "lens:\n  - convert: {name: a, forward: {'true': yes, 'false': no, '1': one, 'x': ex}, forwardDefault: other, backward: {yes: true, no: false, one: 1, ex: x}}\n",
        "lens:\n  - convert: {name: a, forward: {'1': one, 'null': nothing}, backward: {one: 1, nothing: null}}\n",
        "lens:\n  - in: {name: n, lens: [{rename: {source: x, destination: y}}, {add: {name: w, type: boolean}}]}\n",
        "lens:\n  - copy: {source: a, destination: d}\n  - set: {name: k, value: [1, {q: 2}]}\n",
        "lens:\n  - hoist: {host: n, name: x}\n  - plunge: {host: n, name: b}\n",
        "lens:\n  - wrap: {name: a}\n  - head: {name: c}\n",
        "lens:\n  - split: {name: s, into: [s1, s2]}\n  - transform: {name: b, using: upper}\n",
        "lens:\n  - convert: {name: c, forward: 'value + 1'}\n",
        "lens:\n  - rename: {source: a, destination: t}\n  - rename: {source: b, destination: a}\n  - rename: {source: t, destination: b}\n",
        "lens:\n  - in: {name: n, lens: [{rename: {source: x, destination: y}}]}\n  - rename: {source: n, destination: m}\n  - in: {name: m, lens: [{convert: {name: y, forward: {'1': one}, forwardDefault: many, backward: {one: 1}}}]}\n",
        "lens:\n  - copy: {source: a, destination: d}\n  - convert: {name: a, forward: {'1': one}, forwardDefault: many, backward: {one: 1}}\n",
        "lens:\n  - in: {name: n, lens: [{in: {name: x, lens: [{rename: {source: a, destination: z}}]}}, {rename: {source: b, destination: bb}}]}\n",
        "lens:\n  - in: {name: n, lens: [{convert: {name: x, forward: {'1': one, 'true': yes}, backward: {one: 1, yes: true}}}, {add: {name: k, type: number}}]}\n  - rename: {source: a, destination: t}\n",
        // Byte recipes for `join`, `split` and expressions that read only `value`: the
        // students' shape (join the names, rename and convert the year), a join whose whole
        // is one of its parts with a copy sharing that part and a table on the joined value,
        // a split into a repeated part with an expression on a part, a split joined back.
        "lens:\n  - join: {names: [a, b], into: s, separator: ' '}\n  - rename: {source: c, destination: t}\n  - convert: {name: t, forward: '2026 - value'}\n",
        "lens:\n  - copy: {source: a, destination: d}\n  - join: {names: [b, a], into: a, separator: '/'}\n  - convert: {name: a, forward: {'x': ex}, forwardDefault: other, backward: {ex: x}}\n",
        "lens:\n  - split: {name: s, into: [a, a, b], separator: ' '}\n  - convert: {name: b, forward: \"value + '!'\", backward: value}\n",
        "lens:\n  - split: {name: s, into: [x, y]}\n  - join: {names: [y, x], into: t, separator: '+'}\n  - add: {name: k, type: string, default: kk}\n",
        "lens:\n  - convert: {name: c, forward: 'value * 2', backward: 'value / 2'}\n  - in: {name: n, lens: [{join: {names: [x, b], into: j}}, {convert: {name: j, forward: \"value + '.'\", backward: value}}]}\n",
        // An expression that reads `doc` keeps the full parse, and stays where it is.
        "lens:\n  - rename: {source: b, destination: t}\n  - convert: {name: c, forward: 'size(doc) + value', backward: 'value - size(doc)'}\n  - rename: {source: t, destination: x}\n",
    ];

    /// `join`, `split` and an expression that reads only `value` get a recipe (the document
    /// is not parsed beyond the fields they name); an expression that reads `doc` does not.
    #[test]
    fn join_split_and_value_expressions_have_byte_recipes() {
        let recipe_of = |lens: &str, doc: &str| {
            let p = plan(lens);
            let mut out = Vec::new();
            p.translate_bytes(doc.as_bytes(), &Params::new(), &mut out)
                .unwrap();
            let program = p.raw_program()?;
            let shapes = program.shapes.lock().unwrap();
            Some(shapes.last().unwrap().recipe.is_some())
        };
        let students = LENSES[15];
        assert_eq!(
            recipe_of(students, r#"{"a":"Ada","b":"Lovelace","c":1815,"z":[1]}"#),
            Some(true)
        );
        for lens in &LENSES[16..20] {
            assert_eq!(
                recipe_of(lens, r#"{"s":"p q r s","a":"x","b":"y","c":3}"#),
                Some(true),
                "{lens}"
            );
        }
        assert_eq!(recipe_of(LENSES[20], r#"{"b":1,"c":2}"#), None);
        let p = plan(students);
        assert_eq!(
            bytes(&p, br#"{"a":"Ada","b":"Lovelace","c":1815,"z":[1, 2]}"#).unwrap(),
            r#"{"z":[1, 2],"s":"Ada Lovelace","t":211}"#
        );
    }

    #[test]
    fn untouched_fields_keep_their_bytes() {
        let p = plan(LENSES[0]);
        // Spaced members are re-keyed; their values still pass through as written.
        let input = br#"{"x": [1,  2.50, {"deep": "\u00e9"}], "a": 1, "k\"ey": null}"#;
        assert_eq!(
            bytes(&p, input).unwrap(),
            r#"{"x":[1,  2.50, {"deep": "\u00e9"}],"k\"ey":null,"b":1}"#
        );
        // Compact members are copied whole, runs of them in one piece.
        let input = r#"{"x":[1,  2.50],"a":1,"y":"é\n","w":{"a":1}}"#.as_bytes();
        assert_eq!(
            bytes(&p, input).unwrap(),
            r#"{"x":[1,  2.50],"y":"é\n","w":{"a":1},"b":1}"#
        );
    }

    #[test]
    fn raw_and_value_paths_agree_on_every_op_kind() {
        let docs = [
            r#"{"a":1,"b":"x","c":3,"n":{"x":1,"b":2},"s":"p q r","k":0}"#,
            r#"{"a":true,"n":{"x":{"deep":[1]}},"c":[7,8],"s":null}"#,
            r#"{"a":"x","b":"lower","n":null,"z":"kept","d":1}"#,
            r#"{"a":null,"c":null,"n":{"y":0,"x":"1"}}"#,
            r#"{ "a" : 1 , "n" : { "x" : 1 } , "b" : "y" }"#,
            r#"{"b":"only"}"#,
            r#"{"n":{"x":{"a":1,"q":2},"b":3},"a":1}"#,
            r#"{"n":{"x":true,"b":[]},"a":{"n":{}}}"#,
            r#"{}"#,
        ];
        for lens in LENSES {
            let p = plan(lens);
            for doc in docs {
                // Twice: the second run takes the cached shape.
                for _ in 0..2 {
                    let got = bytes(&p, doc.as_bytes());
                    let want = via_value(&p, doc.as_bytes());
                    match (&got, &want) {
                        (Ok(got), Ok(want)) => {
                            let got = crate::json::from_str(got).unwrap();
                            assert_eq!(&got, want, "{lens} on {doc}");
                            assert_eq!(keys(&got), keys(want), "{lens} on {doc}");
                        }
                        (Err(_), Err(_)) => {}
                        _ => panic!("{lens} on {doc}: bytes {got:?}, value {want:?}"),
                    }
                }
            }
        }
    }

    /// Release 3 of the students example reads `age` = referenceYear − yearOfBirth: every
    /// number a version accepts is read exactly by every path, or refused with its pointer.
    #[test]
    fn numbers_are_exact_on_every_path_or_refused_with_their_pointer() {
        let lens = Lens::from_file_str(
            "lens:\n  - rename: {source: age, destination: yearOfBirth}\n  - convert: {name: yearOfBirth, sourceType: integer, destinationType: integer, forward: referenceYear - value}\n",
        )
        .unwrap();
        let up = Plan::compile(&lens, Direction::Forward, &Transforms::new()).unwrap();
        let down = up.reverse();
        let mut params = Params::new();
        params.insert("referenceYear".into(), json!(2026));
        let run = |p: &Plan, doc: &[u8]| {
            let mut out = Vec::new();
            p.translate_bytes(doc, &params, &mut out)
                .map(|()| String::from_utf8(out).unwrap())
        };
        // `1990.0` is the integer 1990 (JSON Schema's reading), in a lens as in a schema.
        assert_eq!(
            run(&down, br#"{"name":"Ada","yearOfBirth":1990.0}"#).unwrap(),
            r#"{"name":"Ada","age":36}"#
        );
        assert_eq!(
            run(&up, br#"{"name":"Ada","age":36.0}"#).unwrap(),
            r#"{"name":"Ada","yearOfBirth":1990}"#
        );
        // The same when the stored document is a `Value` holding a float.
        let stored = json!({"name": "Ada", "yearOfBirth": 1990.0});
        assert_eq!(
            down.translate(&stored, &params).unwrap(),
            json!({"name": "Ada", "age": 36})
        );
        assert_eq!(
            up.translate_onto(&json!({"name": "Ada", "age": 36}), &stored, &params)
                .unwrap(),
            stored
        );
        // Numbers no 64-bit integer or float holds are refused wherever they are, touched by
        // the lens or not, on the raw path and the identity path alike.
        for (doc, at) in [
            (
                &br#"{"name":"Ada","yearOfBirth":123456789012345678901234567890}"#[..],
                "/yearOfBirth",
            ),
            (
                br#"{"name":"Ada","yearOfBirth":-9223372036854775809}"#,
                "/yearOfBirth",
            ),
            (
                br#"{"x":{"y":[18446744073709551616]},"yearOfBirth":1990}"#,
                "/x/y/0",
            ),
            (
                br#"{"x":2000.0000000000000000001,"yearOfBirth":1990}"#,
                "/x",
            ),
        ] {
            for plan in [&down, &Plan::identity()] {
                let err = run(plan, doc).unwrap_err();
                let LensError::InvalidInput { at: got, reason } = &err else {
                    panic!("{err:?}")
                };
                assert_eq!(got, at, "{err}");
                assert!(reason.contains("64-bit"), "{err}");
            }
        }
        // Exact numbers at the edges pass untouched fields byte for byte.
        let doc = br#"{"n":18446744073709551615,"m":-9223372036854775808,"f":0.30000000000000004,"yearOfBirth":1990}"#;
        assert_eq!(
            run(&down, doc).unwrap(),
            r#"{"n":18446744073709551615,"m":-9223372036854775808,"f":0.30000000000000004,"age":36}"#
        );
        // A table looks a whole number up as the integer it is.
        let table =
            plan("lens:\n  - convert: {name: n, forward: {'3': three}, backward: {three: 3}}\n");
        assert_eq!(bytes(&table, br#"{"n":3.0}"#).unwrap(), r#"{"n":"three"}"#);
        assert_eq!(
            table.translate(&json!({"n": 3.0}), &Params::new()).unwrap(),
            json!({"n": "three"})
        );
    }

    #[test]
    fn errors_are_the_value_paths_errors() {
        let p = plan("lens:\n  - convert: {name: a, forward: {'1': one}, backward: {one: 1}}\n  - in: {name: n, lens: [{head: {name: l}}]}\n");
        let cases: [&[u8]; 3] = [br#"{"a":2}"#, br#"{"n":{"l":3}}"#, br#"{"a":1,"n":7}"#];
        for doc in cases {
            let mut out = b"kept".to_vec();
            let err = p
                .translate_bytes(doc, &Params::new(), &mut out)
                .unwrap_err();
            let want = p
                .translate(&serde_json::from_slice(doc).unwrap(), &Params::new())
                .unwrap_err();
            assert_eq!(err, want);
            // A failed translation leaves the output as it was.
            assert_eq!(out, b"kept");
        }
    }

    #[test]
    fn identity_validates_and_copies() {
        let p = Plan::identity();
        assert_eq!(bytes(&p, br#"{"a": 1}"#).unwrap(), r#"{"a": 1}"#);
        assert_eq!(bytes(&p, b" [1, \"\xc3\xa9\"] ").unwrap(), " [1, \"é\"] ");
        for bad in [
            &b"{\"a\": 1"[..],
            b"{\"a\":\"\xff\"}",
            b"\"\\ud800\"",
            b"1e400",
            b"",
        ] {
            assert!(
                bytes(&p, bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn repeated_keys_merge_as_a_map_does() {
        let p = plan(LENSES[0]);
        let doc = br#"{"a":1,"x":0,"a":2}"#;
        let got: Value = serde_json::from_str(&bytes(&p, doc).unwrap()).unwrap();
        assert_eq!(got, via_value(&p, doc).unwrap());
        assert_eq!(got, json!({"x": 0, "b": 2}));
    }

    /// Inputs at the edges of the JSON grammar and of the numbers mutatis holds: the raw path
    /// must accept exactly what the exact reader accepts, and translate what it accepts the
    /// same way.
    #[test]
    fn scanner_accepts_exactly_what_the_reader_accepts() {
        let nested = |depth: usize| {
            let mut s = String::from("{\"a\":1,\"n\":");
            s.push_str(&"[".repeat(depth));
            s.push_str(&"]".repeat(depth));
            s.push('}');
            s.into_bytes()
        };
        let mut cases: Vec<Vec<u8>> = [
            &br#"{"a":1}"#[..],
            b" \t\r\n{\"a\" :\n1 }\n",
            br#"{"a":-0,"b":0.5e-3,"c":1E+2,"d":-1234567890123456789}"#,
            br#"{"a":-0,"b":0.5e-3,"c":1E+2,"d":-12345678901234567890}"#,
            br#"{"a":1,"n":123456789012345678901234567890}"#,
            br#"{"a":1,"n":18446744073709551615,"m":18446744073709551616}"#,
            br#"{"a":1,"n":-9223372036854775808,"m":-9223372036854775809}"#,
            br#"{"a":1,"n":2000.0000000000000000001}"#,
            br#"{"a":1,"n":[{"x":1e-400}]}"#,
            br#"{"a":1,"n":[1.0,1e2,0.1,123456789012345678.0]}"#,
            br#"{"a":1e400}"#,
            br#"{"a":-1e400}"#,
            br#"{"a":01}"#,
            br#"{"a":1.}"#,
            br#"{"a":.5}"#,
            br#"{"a":+1}"#,
            br#"{"a":1e}"#,
            br#"{"a":--1}"#,
            br#"{"a":1,}"#,
            br#"{"a":1 "b":2}"#,
            br#"{"a"}"#,
            br#"{a:1}"#,
            br#"{"a":tru}"#,
            br#"{"a":nulll}"#,
            br#"{"a":"\ud83d\ude00"}"#,
            br#"{"a":"\ud800"}"#,
            br#"{"a":"\udc00"}"#,
            br#"{"a":"\ud800\u0041"}"#,
            br#"{"a":"\x"}"#,
            br#"{"a":"\u12"}"#,
            br#"{"a":"\u12G4"}"#,
            br#"{"\u0061":1}"#,
            br#"{"\ud800":1}"#,
            b"{\"a\":\"tab\there\"}",
            b"{\"a\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"\xc0\xaf\"}",
            b"{\"a\":\"\xed\xa0\x80\"}",
            b"{\"a\":\"\xf4\x90\x80\x80\"}",
            b"{\"a\":\"\xe2\x82\"}",
            b"{\"a\":1}\xc3\xa9",
            br#"{"a":1} {"a":2}"#,
            br#"{"a":[1,[2,{"b":null}],{}],"c":{}}"#,
            br#"{"a":[1,]}"#,
            br#"{"a":"unterminated}"#,
            br#"[1,2]"#,
            b"",
        ]
        .iter()
        .map(|c| c.to_vec())
        .collect();
        cases.extend([nested(125), nested(126), nested(127), nested(200)]);
        let p = plan(LENSES[1]);
        for case in &cases {
            let got = bytes(&p, case).map(|s| crate::json::from_str(&s).unwrap());
            assert_eq!(
                got.ok(),
                via_value(&p, case).ok(),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-z\u{e9}\"\\\\ /\n]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[abcnsxyz]{1,2}", inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Documents whose keys are mostly the ones the lenses name.
    fn document() -> impl Strategy<Value = Value> {
        prop::collection::vec(
            (
                prop::sample::select(vec![
                    "a", "b", "c", "d", "k", "n", "s", "t", "x", "q\"", "é",
                ]),
                json_value(),
            ),
            0..8,
        )
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// The raw path and the `Value` path give the same document, key order included,
        /// or both fail, for compact and pretty input, on every op kind.
        #[test]
        fn raw_path_matches_value_path(doc in document(), lens in 0..LENSES.len(), pretty in any::<bool>()) {
            let p = plan(LENSES[lens]);
            let input = if pretty {
                serde_json::to_vec_pretty(&doc).unwrap()
            } else {
                serde_json::to_vec(&doc).unwrap()
            };
            let want = p.translate(&doc, &Params::new());
            let mut out = Vec::new();
            let got = p.translate_bytes(&input, &Params::new(), &mut out);
            match (got, want) {
                (Ok(()), Ok(want)) => {
                    if !pretty {
                        // Compact input passes through as the `Value` path would write it.
                        let written = serde_json::to_string(&want).unwrap();
                        prop_assert_eq!(String::from_utf8_lossy(&out), written.as_str());
                    }
                    let got: Value = serde_json::from_slice(&out).unwrap();
                    prop_assert_eq!(keys(&got), keys(&want));
                    prop_assert_eq!(got, want);
                }
                (Err(got), Err(want)) => prop_assert!(same_error(&got, &want), "{:?} vs {:?}", got, want),
                (got, want) => prop_assert!(false, "bytes {:?}, value {:?}", got, want),
            }
        }

        /// The byte recipes of `join`, `split` and `value`-only expressions, on documents
        /// whose fields are mostly strings (so that joins and splits succeed), compact and
        /// pretty: the same bytes as the `Value` path for compact input, the same errors.
        #[test]
        fn byte_recipes_match_value_path(
            kv in prop::collection::vec((
                prop::sample::select(vec!["a", "b", "c", "d", "s", "t", "x", "y", "n"]),
                prop_oneof![
                    4 => "[a-c \u{e9}/+\\\"]{0,5}".prop_map(Value::String),
                    1 => Just(Value::Null),
                    1 => (1900i64..2030).prop_map(Value::from),
                    1 => json_value(),
                    1 => prop::collection::vec(("[bjx]", "[a-c ]{0,3}"), 0..3).prop_map(|kv| {
                        Value::Object(kv.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
                    }),
                ],
            ), 0..7),
            lens in 15..LENSES.len(),
            pretty in any::<bool>(),
        ) {
            let doc = Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
            let p = plan(LENSES[lens]);
            let input = if pretty {
                serde_json::to_vec_pretty(&doc).unwrap()
            } else {
                serde_json::to_vec(&doc).unwrap()
            };
            let want = p.translate(&doc, &Params::new());
            // Twice: the second run takes the cached shape.
            for _ in 0..2 {
                let mut out = Vec::new();
                let got = p.translate_bytes(&input, &Params::new(), &mut out);
                match (got, &want) {
                    (Ok(()), Ok(want)) => {
                        let got: Value = serde_json::from_slice(&out).unwrap();
                        prop_assert_eq!(keys(&got), keys(want));
                        prop_assert_eq!(&got, want);
                        if !pretty {
                            let written = serde_json::to_string(want).unwrap();
                            prop_assert_eq!(String::from_utf8_lossy(&out), written.as_str());
                        }
                    }
                    (Err(got), Err(want)) => prop_assert!(same_error(&got, want), "{:?} vs {:?}", got, want),
                    (got, want) => prop_assert!(false, "bytes {:?}, value {:?}", got, want),
                }
            }
        }

        /// Random damage to a valid document: the raw path accepts it exactly when a full
        /// parse does, and then translates it the same way.
        #[test]
        fn damaged_input_is_judged_like_a_full_parse(
            doc in document(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![
                None, Some(b'"'), Some(b'\\'), Some(b'{'), Some(b'}'), Some(b','), Some(b':'),
                Some(b'0'), Some(b'e'), Some(b'-'), Some(b'u'), Some(0x80), Some(0xc3), Some(0xff),
                Some(0x01), Some(b' '),
            ])), 1..4),
        ) {
            let mut input = serde_json::to_vec(&doc).unwrap();
            for (at, byte) in edits {
                if input.is_empty() {
                    break;
                }
                let i = at.index(input.len());
                match byte {
                    None => {
                        input.remove(i);
                    }
                    Some(b) => input[i] = b,
                }
            }
            let p = plan(LENSES[1]);
            let got = bytes(&p, &input).map(|s| crate::json::from_str(&s).unwrap());
            prop_assert_eq!(got.ok(), via_value(&p, &input).ok());
            let identity_ok = bytes(&Plan::identity(), &input).is_ok();
            prop_assert_eq!(identity_ok, crate::json::from_slice(&input).is_ok());
        }
    }
}
