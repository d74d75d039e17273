//! Translation of raw JSON bytes that touches only what the plan names.
//!
//! When a body is compiled, its fused steps are also compiled into a [`Program`]: every field
//! name the steps mention gets a small integer id, and each step becomes an op over ids. At run
//! time the input's top-level object is scanned once into borrowed `(key, raw value)` entries
//! (this validates the whole input, as any parser would); each key is looked up once to get
//! its id, and from then on ops find their fields by comparing integers.
//!
//! Values stay raw text unless an op must look inside them:
//! - `rename`, `add`, `remove`, `set` and `copy` move or create entries and never parse a value;
//! - a table `convert` looks the value up by its raw text (`true`, `4`, an unescaped string)
//!   and points at the table's own value instead of cloning it;
//! - `in` scans the nested object the same way and runs its own program on it;
//! - any other step parses just the fields it names and runs the ordinary `Value` code.
//!
//! Removal leaves a tombstone and insertion appends, which keeps fields in exactly the order a
//! [`serde_json::Map`] would, so the bytes out are the `Value` path's output except that
//! untouched values keep their original spelling.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de;
use serde_json::{Map, Value};

use crate::error::LensError;
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
            serde_json::from_slice::<de::IgnoredAny>(input).map_err(json_error)?;
            out.extend_from_slice(input);
            return Ok(());
        }
        let Some(program) = self.raw_program() else {
            // Some step reads the whole object (an expression, a `map`): parse it all.
            return self.translate_parsed(input, params, out);
        };
        // Validating UTF-8 once lets every raw value below borrow as `&str` without checking
        // its bytes again.
        let Ok(text) = std::str::from_utf8(input) else {
            return self.translate_parsed(input, params, out);
        };
        let Some(mut fields) = scan(program, text) else {
            // Not an object, or not JSON: the full parse gives the precise error.
            return self.translate_parsed(input, params, out);
        };
        program.run(&mut fields, params, Path::Root)?;
        let start = out.len();
        write_object(&fields, out).inspect_err(|_| out.truncate(start))
    }

    fn translate_parsed(
        &self,
        input: &[u8],
        params: &Params,
        out: &mut Vec<u8>,
    ) -> Result<(), LensError> {
        let mut v: Value = serde_json::from_slice(input).map_err(json_error)?;
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
    /// Whether each name can be written between quotes as it is (no `"`, `\` or control
    /// characters), which saves escaping it for every document.
    verbatim: Vec<bool>,
    /// Ids by name length: a key is compared only with the names of its own length.
    by_len: Vec<Vec<u32>>,
    /// By id: the body of an `in` that sees the field exactly as it comes in (no earlier op
    /// touches it), so the scanner can read that nested object in the same pass.
    nested: Vec<Option<Arc<Body>>>,
    ops: Vec<Op>,
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
    Rename { from: u32, to: u32 },
    Insert { name: u32, fill: Option<Value> },
    Delete { name: u32 },
    Set { name: u32, value: Value },
    Copy { from: u32, to: u32 },
    /// A table `convert` (the step holds the table and the op's origin for errors).
    Table { name: u32, step: Step },
    In { name: u32, sub: Arc<Body> },
    /// Any other step: its fields are parsed and it runs on them as `Value`s.
    Other { step: Step, fields: Vec<u32> },
}

impl Program {
    /// Compile fused steps; `None` when a step may read fields it does not name (an
    /// expression sees the whole object, `map` works on an array), which needs a full parse.
    pub(crate) fn compile(steps: &[Step]) -> Option<Program> {
        let mut program = Program {
            names: Vec::new(),
            verbatim: Vec::new(),
            by_len: vec![Vec::new(); LEN_BUCKETS + 1],
            nested: Vec::new(),
            ops: Vec::with_capacity(steps.len()),
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
                StepKind::Insert { fill, .. } => Op::Insert {
                    name: first,
                    fill: fill.clone(),
                },
                StepKind::Delete { .. } => Op::Delete { name: first },
                StepKind::Set { value, .. } => Op::Set {
                    name: first,
                    value: value.clone(),
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
                StepKind::Convert {
                    fwd: ValueFn::Table { .. },
                    ..
                } => Op::Table {
                    name: first,
                    step: step.clone(),
                },
                _ => Op::Other {
                    step: step.clone(),
                    fields: ids.clone(),
                },
            };
            seen.extend(ids);
            program.ops.push(op);
        }
        Some(program)
    }

    fn intern(&mut self, name: &str) -> u32 {
        let id = self.id(name);
        if id != UNNAMED {
            return id;
        }
        // A body never names anywhere near u32::MAX fields; saturating keeps this total.
        let id = u32::try_from(self.names.len()).unwrap_or(UNNAMED - 1);
        self.names.push(name.to_owned());
        self.verbatim.push(!name.bytes().any(needs_escape));
        self.by_len[name.len().min(LEN_BUCKETS)].push(id);
        id
    }

    /// The id of `key`, or [`UNNAMED`].
    fn id(&self, key: &str) -> u32 {
        for &id in &self.by_len[key.len().min(LEN_BUCKETS)] {
            if self.names[id as usize] == key {
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
            key: Cow::Borrowed(self.name(id)),
            verbatim: self.verbatim.get(id as usize).copied().unwrap_or(false),
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
                Op::Table { name, step } => {
                    if let Some(slot) = fields.get(*name) {
                        let at = Path::Field(&path, self.name(*name));
                        let converted = table(step, slot, at)?;
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
                Op::Other { step, fields: ids } => self.run_other(step, ids, fields, params, path)?,
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
            let id = self.id(&k);
            let entry = match id {
                UNNAMED => Entry {
                    verbatim: !k.bytes().any(needs_escape),
                    key: Cow::Owned(k),
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
        Slot::Raw(text) => match scan(program, text) {
            Some(fields) => Box::new(fields),
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

/// A table `convert` of one value. The table is keyed by a value's text (see
/// `plan::value_key`); for the common raw values that text is the input itself, so the lookup
/// needs no parse and no allocation.
fn table<'a>(step: &'a Step, slot: &Slot<'a>, at: Path<'_>) -> Result<Slot<'a>, LensError> {
    let StepKind::Convert {
        fwd: ValueFn::Table { entries, default },
        ..
    } = &step.kind
    else {
        // `Program::compile` makes `Op::Table` only from table converts.
        return Err(LensError::InvalidInput {
            at: at.render(),
            reason: format!("op at lens{} is not a table convert", step.origin),
        });
    };
    let (key, is_null): (Cow<'_, str>, bool) = match slot {
        Slot::Raw(text) => match raw_key(text) {
            Some(key) => (Cow::Borrowed(key), *text == "null"),
            None => {
                let v = slot.to_value()?;
                (Cow::Owned(plan::value_key(&v)), v.is_null())
            }
        },
        Slot::Const(v) => (Cow::Owned(plan::value_key(v)), v.is_null()),
        Slot::Owned(v) => (Cow::Owned(plan::value_key(v)), v.is_null()),
        Slot::Object(_) => (Cow::Owned(plan::value_key(&slot.to_value()?)), false),
    };
    // Tables are small: comparing a few short strings beats hashing the key (`Map` hashes
    // with SipHash), and the map's entries are contiguous in insertion order.
    let found = if entries.len() <= SMALL_TABLE {
        entries.iter().find(|(k, _)| *k == key.as_ref()).map(|(_, v)| v)
    } else {
        entries.get(key.as_ref())
    };
    if let Some(v) = found {
        return Ok(Slot::Const(v));
    }
    match default {
        Some(d) => Ok(Slot::Const(d)),
        // An absent value stays absent: a nullable field needs no mapping for null.
        None if is_null => Ok(Slot::Raw("null")),
        None => Err(LensError::NoMapping {
            op: step.origin.to_string(),
            at: at.render(),
            value: slot.to_value()?.to_string(),
        }),
    }
}

/// The table key of a raw value when it can be read off the text: literals, integers in
/// canonical form, strings without escapes. `None`: parse the value to get its key.
fn raw_key(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    match bytes.first()? {
        b't' | b'f' | b'n' => Some(text),
        b'"' => {
            let inner = text.get(1..text.len().checked_sub(1)?)?;
            (!inner.contains('\\')).then_some(inner)
        }
        b'-' | b'0'..=b'9' => {
            let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
            // What `Number`'s `Display` writes back unchanged: no fraction, exponent, leading
            // zero or `-0`, and few enough digits to be an exact 64-bit integer.
            let canonical = !digits.is_empty()
                && digits.len() <= 18
                && digits.iter().all(u8::is_ascii_digit)
                && (digits[0] != b'0' || digits == b"0")
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
    /// The text that the entries' `src` spans point into.
    text: &'a str,
    entries: Vec<Entry<'a>>,
    /// Position by id, while the program names few enough fields and the positions fit;
    /// `None`: search the entries.
    index: Option<[u8; INDEXED]>,
}

#[derive(Clone)]
struct Entry<'a> {
    key: Cow<'a, str>,
    /// The key can be written between quotes as it is.
    verbatim: bool,
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
    Raw(&'a str),
    /// A value the plan holds (a fill, a `set` value, a table entry).
    Const(&'a Value),
    /// A value parsed and changed by a step.
    Owned(Box<Value>),
    /// A nested object scanned for `in`, still mostly raw.
    Object(Box<Fields<'a>>),
}

impl<'a> Fields<'a> {
    fn new(program: &'a Program, text: &'a str, capacity: usize) -> Fields<'a> {
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
            match (index.get_mut(entry.id as usize), u8::try_from(self.entries.len())) {
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
            Slot::Raw(text) => *text == "null",
            Slot::Const(v) => v.is_null(),
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
            Slot::Raw(text) => serde_json::from_str(text).map_err(json_error),
            Slot::Const(v) => Ok((*v).clone()),
            Slot::Owned(v) => Ok((**v).clone()),
            Slot::Object(fields) => {
                let mut map = Map::new();
                for e in &fields.entries {
                    if let Some(slot) = &e.slot {
                        map.insert(e.key.to_string(), slot.to_value()?);
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
    let text = fields.text.as_bytes();
    let mut first = true;
    // Members that came in compact and unchanged, next to each other: copied in one go.
    let mut run: Option<(usize, usize)> = None;
    for e in &fields.entries {
        let Some(slot) = &e.slot else { continue };
        let (start, end) = (e.src.0 as usize, e.src.1 as usize);
        if end > start {
            match &mut run {
                Some((_, run_end)) if *run_end + 1 == start && text.get(*run_end) == Some(&b',') => {
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
        if e.verbatim {
            out.push(b'"');
            out.extend_from_slice(e.key.as_bytes());
            out.push(b'"');
        } else {
            serde_json::to_writer(&mut *out, e.key.as_ref()).map_err(json_error)?;
        }
        out.push(b':');
        match slot {
            Slot::Raw(value) => out.extend_from_slice(value.as_bytes()),
            Slot::Const(v) => serde_json::to_writer(&mut *out, v).map_err(json_error)?,
            Slot::Owned(v) => serde_json::to_writer(&mut *out, v.as_ref()).map_err(json_error)?,
            Slot::Object(nested) => write_object(nested, out)?,
        }
    }
    flush(&mut run, text, out, &mut first)?;
    out.push(b'}');
    Ok(())
}

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
        // The scanner took the span from this very text; this would be a bug here.
        return Err(LensError::InvalidInput {
            at: String::new(),
            reason: format!("internal error: member span {start}..{end} outside the document"),
        });
    };
    if !std::mem::take(first) {
        out.push(b',');
    }
    out.extend_from_slice(bytes);
    Ok(())
}

/// Whether a byte in a key must be escaped in JSON.
fn needs_escape(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
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
const MAX_DEPTH: u32 = 127;

/// Scan one JSON object (the whole of `text`, surrounding whitespace allowed) into fields,
/// looking each key's id up in `program`.
///
/// This is a strict validator: whatever it accepts, `serde_json` parses into a `Value` too.
/// `None` means "not sure": the caller then parses with `serde_json`, which either reports the
/// precise error or translates the document the ordinary way. Being stricter (lone surrogate
/// escapes, depth) only ever costs speed, never correctness. `text` is already valid UTF-8.
fn scan<'a>(program: &'a Program, text: &'a str) -> Option<Fields<'a>> {
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    s.ws();
    let fields = s.object(program, 1)?;
    s.ws();
    (s.pos == s.bytes.len()).then_some(fields)
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

impl<'a> Scanner<'a> {
    /// One object at nesting level `level` (the top is 1), from its `{`.
    fn object(&mut self, program: &'a Program, level: u32) -> Option<Fields<'a>> {
        if level > MAX_DEPTH {
            return None;
        }
        self.eat(b'{')?;
        // Room for the input's members plus what the ops append (at most one each, but for
        // a rare `split`), so the vector seldom grows mid-document.
        let mut fields = Fields::new(program, self.text, 16 + program.ops.len());
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
            let quoted = self.text.get(key_start..key_end)?;
            let (key, verbatim) = if escaped {
                // Rare: let serde_json undo the escapes (and check them as a `Value` parse would).
                (Cow::Owned(serde_json::from_str::<String>(quoted).ok()?), false)
            } else {
                (Cow::Borrowed(quoted.get(1..quoted.len() - 1)?), true)
            };
            self.ws();
            self.eat(b':')?;
            self.ws();
            let value_start = self.pos;
            let id = program.id(&key);
            let slot = match program.nested(id) {
                Some(sub) if self.peek() == Some(b'{') => {
                    Slot::Object(Box::new(self.object(sub, level + 1)?))
                }
                _ => {
                    self.value(level)?;
                    Slot::Raw(self.text.get(value_start..self.pos)?)
                }
            };
            // Compact (`"key":value`): the member can be copied back as it is.
            let src = match (u32::try_from(key_start), u32::try_from(self.pos)) {
                (Ok(start), Ok(end)) if value_start == key_end + 1 => (start, end),
                _ => (0, 0),
            };
            // A repeated key the plan names keeps its first position and its last value, as
            // parsing into a `Map` would; other repeats pass through as they came.
            match fields.find(id) {
                Some(i) => fields.set(i, slot),
                None => fields.push(Entry {
                    key,
                    verbatim,
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

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    fn ws(&mut self) {
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

    fn literal(&mut self, word: &[u8]) -> Option<()> {
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

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        // `01`, `1.5.2`, `2x`: whatever follows must end the number.
        match self.peek() {
            Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') => None,
            _ => Some(()),
        }
    }

    /// Skip a string from its opening quote; `Some(true)` if it had escapes.
    fn string(&mut self) -> Option<bool> {
        self.eat(b'"')?;
        let mut escaped = false;
        loop {
            self.skip_plain();
            match self.next()? {
                b'"' => return Some(escaped),
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                // A control character, which JSON requires to be escaped.
                _ => return None,
            }
        }
    }

    /// Advance to the next `"`, `\` or control character, eight bytes at a time.
    fn skip_plain(&mut self) {
        while let Some(chunk) = self.bytes.get(self.pos..self.pos + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let v = u64::from_le_bytes(word);
            let quote = v ^ (ONES * u64::from(b'"'));
            let backslash = v ^ (ONES * u64::from(b'\\'));
            // Classic SWAR tests: a byte is zero / below 0x20. Borrows can only flag bytes
            // *after* the first real hit, and only the first one is used.
            let hits = (quote.wrapping_sub(ONES) & !quote)
                | (backslash.wrapping_sub(ONES) & !backslash)
                | (v.wrapping_sub(ONES * 0x20) & !v);
            let hits = hits & HIGHS;
            if hits != 0 {
                self.pos += (hits.trailing_zeros() / 8) as usize;
                return;
            }
            self.pos += 8;
        }
        while let Some(b) = self.peek() {
            if b == b'"' || b == b'\\' || b < 0x20 {
                return;
            }
            self.pos += 1;
        }
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
