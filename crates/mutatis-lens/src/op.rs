//! The lens language: one [`LensOp`] per declarative change, parsed from YAML or JSON.
//!
//! Two spellings are read, so Cambria lens files load unchanged:
//! - the single-key map `{rename: {source: a, destination: b}}` (YAML files, Cambria's format);
//! - the tagged map `{op: rename, source: a, destination: b}` (Cambria's in-memory form).
//!
//! [`LensOp::to_json`] writes the first form back, which is what manifests publish.

use serde_json::{Map, Value};

use crate::error::LensError;
use crate::pointer;

/// The op names, in the order errors list them.
pub const OP_NAMES: &str =
    "rename, add, remove, hoist, plunge, wrap, head, in, map, convert, copy, split, join, set, transform";

/// One declarative change between two adjacent shapes of a document.
///
/// Every op has a forward (old → new) and a backward (new → old) meaning; both are derived from
/// this one declaration (see [`crate::Plan`]).
#[derive(Debug, Clone, PartialEq)]
pub enum LensOp {
    /// Rename field `source` to `destination`.
    Rename { source: String, destination: String },
    /// Add a field; backward removes it.
    Add(FieldSpec),
    /// Remove a field; backward adds it back with its default (so it needs a type).
    Remove(FieldSpec),
    /// Move `host.name` up to `name`.
    Hoist { host: String, name: String },
    /// Move `name` down into the object `host`.
    Plunge { host: String, name: String },
    /// Turn the scalar `name` into a one-element array (`null` becomes `[]`).
    Wrap { name: String },
    /// Turn the array `name` into its first element (`[]` becomes `null`).
    Head { name: String },
    /// Apply a nested lens to the object at `name`.
    In { name: String, lens: Vec<LensOp> },
    /// Apply a nested lens to every element of the current array.
    Map { lens: Vec<LensOp> },
    /// Convert the value of a field, by table or by CEL expression.
    Convert(Convert),
    /// Copy field `source` to `destination`; backward drops the copy.
    Copy { source: String, destination: String },
    /// Split the string field `whole` into `parts` at `separator`; backward joins them.
    Split(SplitJoin),
    /// Join the string fields `parts` into `whole` with `separator`; backward splits it.
    Join(SplitJoin),
    /// Set a field to a constant; backward restores the stored value where one is known.
    Set { name: String, value: Value },
    /// Convert a field with a transform that the embedding program registered in code.
    Transform(TransformOp),
}

/// A field that `add` creates (or `remove` drops).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    /// The field name.
    pub name: String,
    /// The field's JSON Schema: `type`, `items` and any other keyword given with the op.
    pub schema: Map<String, Value>,
    /// The explicit default. `None` means the type's default (`""`, `0`, `false`, `[]`, `{}`,
    /// `null` for nullable types) for a required field, and nothing for an optional one.
    pub default: Option<Value>,
    /// Whether the field is required in the version that has it (Cambria: always).
    pub required: bool,
}

impl FieldSpec {
    /// The value the field takes when it is added to a document that lacks it, if any.
    pub fn fill_value(&self) -> Option<Value> {
        match &self.default {
            Some(v) => Some(v.clone()),
            // A constant (or the first of an enum) is the only value a required field can take
            // when no type default would be valid.
            None if self.required => Some(
                self.schema
                    .get("const")
                    .or_else(|| self.schema.get("enum").and_then(|e| e.get(0)))
                    .cloned()
                    .unwrap_or_else(|| type_default(self.schema.get("type"))),
            ),
            None => None,
        }
    }

    /// Whether the spec names a type (needed to reverse a `remove`).
    pub fn has_type(&self) -> bool {
        self.schema.contains_key("type")
            || self.schema.contains_key("const")
            || self.schema.contains_key("enum")
            || self.default.is_some()
    }
}

/// The default value of a JSON Schema `type` (a string or an array of strings).
///
/// A nullable type (`["string", "null"]`) defaults to `null`, as Cambria does.
pub fn type_default(ty: Option<&Value>) -> Value {
    let first = match ty {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Array(types)) => {
            if types.iter().any(|t| t == "null") {
                return Value::Null;
            }
            types.first().and_then(Value::as_str).unwrap_or("null")
        }
        _ => "null",
    };
    match first {
        "string" => Value::String(String::new()),
        "number" | "integer" => Value::from(0),
        "boolean" => Value::Bool(false),
        "array" => Value::Array(Vec::new()),
        "object" => Value::Object(Map::new()),
        _ => Value::Null,
    }
}

/// How a `convert` op maps one value in one direction.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapping {
    /// A lookup table keyed by the value's text (`"true"`, `"3"`, `"done"`).
    Table {
        entries: Map<String, Value>,
        /// The fallback for values the table does not name.
        default: Option<Value>,
    },
    /// A CEL expression over `value` (the field), `doc` (the enclosing object) and the
    /// translation parameters.
    Expr {
        source: String,
        /// The fallback when evaluation fails.
        default: Option<Value>,
    },
}

/// A `convert` op.
#[derive(Debug, Clone, PartialEq)]
pub struct Convert {
    pub name: String,
    pub source_type: Option<Value>,
    pub destination_type: Option<Value>,
    pub forward: Mapping,
    /// `None`: derive the reverse (only possible for an invertible expression).
    pub backward: Option<Mapping>,
}

/// The arguments shared by `split` and `join`.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitJoin {
    pub whole: String,
    pub parts: Vec<String>,
    pub separator: String,
}

/// A `transform` op: `using` names a transform registered with [`crate::Transforms`].
#[derive(Debug, Clone, PartialEq)]
pub struct TransformOp {
    pub name: String,
    pub using: String,
    pub args: Value,
    pub source_type: Option<Value>,
    pub destination_type: Option<Value>,
}

impl LensOp {
    /// The op's name as written in lens files.
    pub fn name(&self) -> &'static str {
        match self {
            LensOp::Rename { .. } => "rename",
            LensOp::Add(_) => "add",
            LensOp::Remove(_) => "remove",
            LensOp::Hoist { .. } => "hoist",
            LensOp::Plunge { .. } => "plunge",
            LensOp::Wrap { .. } => "wrap",
            LensOp::Head { .. } => "head",
            LensOp::In { .. } => "in",
            LensOp::Map { .. } => "map",
            LensOp::Convert(_) => "convert",
            LensOp::Copy { .. } => "copy",
            LensOp::Split(_) => "split",
            LensOp::Join(_) => "join",
            LensOp::Set { .. } => "set",
            LensOp::Transform(_) => "transform",
        }
    }

    /// Parse one op from its JSON form. `at` is the op's pointer within the lens, for errors.
    pub fn from_json(value: &Value, at: &str) -> Result<LensOp, LensError> {
        let Value::Object(map) = value else {
            return Err(LensError::InvalidOp {
                name: "?".into(),
                op: at.into(),
                reason: format!(
                    "an op is a map like `{{rename: {{source: a, destination: b}}}}`, found {}",
                    crate::error::type_name(value)
                ),
            });
        };
        if let Some(tag) = map.get("op") {
            let Some(name) = tag.as_str() else {
                return Err(LensError::InvalidOp {
                    name: "?".into(),
                    op: at.into(),
                    reason: "`op` must be a string".into(),
                });
            };
            let mut args = map.clone();
            args.remove("op");
            return parse_op(name, &args, at);
        }
        let mut entries = map.iter();
        let (Some((name, args)), None) = (entries.next(), entries.next()) else {
            let keys: Vec<&str> = map.keys().map(String::as_str).collect();
            return Err(LensError::InvalidOp {
                name: "?".into(),
                op: at.into(),
                reason: format!(
                    "an op is a map with exactly one key (the op name), found keys [{}]",
                    keys.join(", ")
                ),
            });
        };
        match args {
            Value::Object(args) => parse_op(name, args, at),
            Value::Null => parse_op(name, &Map::new(), at),
            other => Err(LensError::InvalidOp {
                name: name.clone(),
                op: at.into(),
                reason: format!(
                    "the arguments must be a map, found {}",
                    crate::error::type_name(other)
                ),
            }),
        }
    }

    /// The op in its canonical JSON form (`{name: {args}}`).
    pub fn to_json(&self) -> Value {
        let mut args = Map::new();
        let s = |v: &str| Value::String(v.to_owned());
        match self {
            LensOp::Rename {
                source,
                destination,
            }
            | LensOp::Copy {
                source,
                destination,
            } => {
                args.insert("source".into(), s(source));
                args.insert("destination".into(), s(destination));
            }
            LensOp::Add(spec) | LensOp::Remove(spec) => {
                args.insert("name".into(), s(&spec.name));
                for (k, v) in &spec.schema {
                    args.insert(k.clone(), v.clone());
                }
                if let Some(d) = &spec.default {
                    args.insert("default".into(), d.clone());
                }
                if !spec.required {
                    args.insert("required".into(), Value::Bool(false));
                }
            }
            LensOp::Hoist { host, name } | LensOp::Plunge { host, name } => {
                args.insert("host".into(), s(host));
                args.insert("name".into(), s(name));
            }
            LensOp::Wrap { name } | LensOp::Head { name } => {
                args.insert("name".into(), s(name));
            }
            LensOp::In { name, lens } => {
                args.insert("name".into(), s(name));
                args.insert("lens".into(), lens_to_json(lens));
            }
            LensOp::Map { lens } => {
                args.insert("lens".into(), lens_to_json(lens));
            }
            LensOp::Convert(c) => {
                args.insert("name".into(), s(&c.name));
                if let Some(t) = &c.source_type {
                    args.insert("sourceType".into(), t.clone());
                }
                if let Some(t) = &c.destination_type {
                    args.insert("destinationType".into(), t.clone());
                }
                write_mapping(&mut args, "forward", &c.forward);
                if let Some(b) = &c.backward {
                    write_mapping(&mut args, "backward", b);
                }
            }
            LensOp::Split(sj) => {
                args.insert("name".into(), s(&sj.whole));
                args.insert("into".into(), sj.parts.iter().map(|p| s(p)).collect());
                args.insert("separator".into(), s(&sj.separator));
            }
            LensOp::Join(sj) => {
                args.insert("names".into(), sj.parts.iter().map(|p| s(p)).collect());
                args.insert("into".into(), s(&sj.whole));
                args.insert("separator".into(), s(&sj.separator));
            }
            LensOp::Set { name, value } => {
                args.insert("name".into(), s(name));
                args.insert("value".into(), value.clone());
            }
            LensOp::Transform(t) => {
                args.insert("name".into(), s(&t.name));
                args.insert("using".into(), s(&t.using));
                if !t.args.is_null() {
                    args.insert("args".into(), t.args.clone());
                }
                if let Some(ty) = &t.source_type {
                    args.insert("sourceType".into(), ty.clone());
                }
                if let Some(ty) = &t.destination_type {
                    args.insert("destinationType".into(), ty.clone());
                }
            }
        }
        let mut out = Map::new();
        out.insert(self.name().into(), Value::Object(args));
        Value::Object(out)
    }
}

/// A whole lens (a list of ops) in canonical JSON form.
pub fn lens_to_json(ops: &[LensOp]) -> Value {
    Value::Array(ops.iter().map(LensOp::to_json).collect())
}

/// Parse a list of ops. `at` is the list's pointer, for errors.
pub fn lens_from_json(value: &Value, at: &str) -> Result<Vec<LensOp>, LensError> {
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| LensOp::from_json(v, &pointer::push_index(at, i)))
            .collect(),
        Value::Null => Ok(Vec::new()),
        other => Err(LensError::InvalidOp {
            name: "lens".into(),
            op: at.into(),
            reason: format!(
                "a lens is a list of ops, found {}",
                crate::error::type_name(other)
            ),
        }),
    }
}

fn write_mapping(args: &mut Map<String, Value>, key: &str, m: &Mapping) {
    let (body, default) = match m {
        Mapping::Table { entries, default } => (Value::Object(entries.clone()), default),
        Mapping::Expr { source, default } => (Value::String(source.clone()), default),
    };
    args.insert(key.into(), body);
    if let Some(d) = default {
        args.insert(format!("{key}Default"), d.clone());
    }
}

/// Typed access to an op's argument map, with errors that name the op and its place.
struct Args<'a> {
    name: &'a str,
    at: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    fn err(&self, reason: impl Into<String>) -> LensError {
        LensError::InvalidOp {
            name: self.name.into(),
            op: self.at.into(),
            reason: reason.into(),
        }
    }

    /// Reject arguments the op does not take: a typo must not be silently ignored.
    fn only(&self, allowed: &[&str]) -> Result<(), LensError> {
        for key in self.map.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(self.err(format!(
                    "unknown argument `{key}`; `{}` takes: {}",
                    self.name,
                    allowed.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn string(&self, key: &str) -> Result<String, LensError> {
        match self.map.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::String(_)) => Err(self.err(format!("`{key}` must not be empty"))),
            Some(other) => Err(self.err(format!(
                "`{key}` must be a string, found {}",
                crate::error::type_name(other)
            ))),
            None => Err(self.err(format!("missing `{key}`"))),
        }
    }

    fn opt(&self, key: &str) -> Option<Value> {
        self.map.get(key).cloned()
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool, LensError> {
        match self.map.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.err(format!(
                "`{key}` must be true or false, found {}",
                crate::error::type_name(other)
            ))),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, LensError> {
        let Some(Value::Array(items)) = self.map.get(key) else {
            return Err(self.err(format!("`{key}` must be a list of field names")));
        };
        let parts: Vec<String> = items
            .iter()
            .map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| self.err(format!("`{key}` must be a list of non-empty strings")))?;
        if parts.len() < 2 {
            return Err(self.err(format!("`{key}` needs at least two fields")));
        }
        Ok(parts)
    }

    fn nested_lens(&self) -> Result<Vec<LensOp>, LensError> {
        match self.map.get("lens") {
            Some(v) => lens_from_json(v, &pointer::push(self.at, "lens")),
            None => Err(self.err("missing `lens`")),
        }
    }
}

fn parse_op(name: &str, map: &Map<String, Value>, at: &str) -> Result<LensOp, LensError> {
    let a = Args { name, at, map };
    let op = match name {
        "rename" => {
            a.only(&["source", "destination"])?;
            let (source, destination) = (a.string("source")?, a.string("destination")?);
            LensOp::Rename {
                source,
                destination,
            }
        }
        "copy" => {
            a.only(&["source", "destination"])?;
            let (source, destination) = (a.string("source")?, a.string("destination")?);
            if source == destination {
                return Err(a.err("`source` and `destination` must differ"));
            }
            LensOp::Copy {
                source,
                destination,
            }
        }
        "add" | "remove" => {
            let name_ = a.string("name")?;
            let mut schema = Map::new();
            let mut default = None;
            let mut required = true;
            for (k, v) in map {
                match k.as_str() {
                    "name" => {}
                    "default" => default = Some(v.clone()),
                    "required" => required = a.bool_or("required", true)?,
                    // Any other key is a JSON Schema keyword describing the field.
                    _ => {
                        schema.insert(k.clone(), v.clone());
                    }
                }
            }
            if let Some(ty) = schema.get("type") {
                check_type(&a, ty)?;
            }
            let spec = FieldSpec {
                name: name_,
                schema,
                default,
                required,
            };
            if name == "add" {
                LensOp::Add(spec)
            } else {
                LensOp::Remove(spec)
            }
        }
        "hoist" | "plunge" => {
            a.only(&["host", "name"])?;
            let (host, name_) = (a.string("host")?, a.string("name")?);
            if name == "hoist" {
                LensOp::Hoist { host, name: name_ }
            } else {
                LensOp::Plunge { host, name: name_ }
            }
        }
        "wrap" | "head" => {
            a.only(&["name"])?;
            let name_ = a.string("name")?;
            if name == "wrap" {
                LensOp::Wrap { name: name_ }
            } else {
                LensOp::Head { name: name_ }
            }
        }
        "in" => {
            a.only(&["name", "lens"])?;
            LensOp::In {
                name: a.string("name")?,
                lens: a.nested_lens()?,
            }
        }
        "map" => {
            a.only(&["lens"])?;
            LensOp::Map {
                lens: a.nested_lens()?,
            }
        }
        "convert" => parse_convert(&a)?,
        "split" => {
            a.only(&["name", "into", "separator"])?;
            LensOp::Split(SplitJoin {
                whole: a.string("name")?,
                parts: a.strings("into")?,
                separator: separator(&a)?,
            })
        }
        "join" => {
            a.only(&["names", "into", "separator"])?;
            LensOp::Join(SplitJoin {
                whole: a.string("into")?,
                parts: a.strings("names")?,
                separator: separator(&a)?,
            })
        }
        "set" => {
            a.only(&["name", "value"])?;
            LensOp::Set {
                name: a.string("name")?,
                value: a.opt("value").ok_or_else(|| a.err("missing `value`"))?,
            }
        }
        "transform" => {
            a.only(&["name", "using", "args", "sourceType", "destinationType"])?;
            LensOp::Transform(TransformOp {
                name: a.string("name")?,
                using: a.string("using")?,
                args: a.opt("args").unwrap_or(Value::Null),
                source_type: a.opt("sourceType"),
                destination_type: a.opt("destinationType"),
            })
        }
        other => {
            return Err(LensError::UnknownOp {
                name: other.into(),
                op: at.into(),
                expected: OP_NAMES,
            })
        }
    };
    Ok(op)
}

fn separator(a: &Args<'_>) -> Result<String, LensError> {
    match a.map.get("separator") {
        None => Ok(" ".into()),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(a.err("`separator` must be a non-empty string")),
    }
}

const JSON_TYPES: [&str; 7] = [
    "string", "number", "integer", "boolean", "array", "object", "null",
];

fn check_type(a: &Args<'_>, ty: &Value) -> Result<(), LensError> {
    let ok = match ty {
        Value::String(s) => JSON_TYPES.contains(&s.as_str()),
        Value::Array(ts) => ts
            .iter()
            .all(|t| t.as_str().is_some_and(|s| JSON_TYPES.contains(&s))),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(a.err(format!(
            "`type` must be one of {} or a list of them, found {ty}",
            JSON_TYPES.join(", ")
        )))
    }
}

fn parse_convert(a: &Args<'_>) -> Result<LensOp, LensError> {
    a.only(&[
        "name",
        "sourceType",
        "destinationType",
        "mapping",
        "forward",
        "backward",
        "forwardDefault",
        "backwardDefault",
    ])?;
    let name = a.string("name")?;
    let (forward, backward) = if let Some(mapping) = a.map.get("mapping") {
        // Cambria's form: `mapping: [forward table, backward table]`.
        if a.map.contains_key("forward") || a.map.contains_key("backward") {
            return Err(a.err("give either `mapping` or `forward`/`backward`, not both"));
        }
        let tables = match mapping {
            Value::Array(t) if t.len() == 2 => t,
            _ => return Err(a.err("`mapping` must be a list of two tables: [forward, backward]")),
        };
        let table = |i: usize, key: &str| -> Result<Mapping, LensError> {
            match &tables[i] {
                Value::Object(entries) => Ok(Mapping::Table {
                    entries: entries.clone(),
                    default: a.opt(&format!("{key}Default")),
                }),
                _ => Err(a.err(format!("`mapping[{i}]` must be a table"))),
            }
        };
        (table(0, "forward")?, Some(table(1, "backward")?))
    } else {
        let forward = mapping_arg(a, "forward")?
            .ok_or_else(|| a.err("missing `forward` (a table or a CEL expression)"))?;
        (forward, mapping_arg(a, "backward")?)
    };
    Ok(LensOp::Convert(Convert {
        name,
        source_type: a.opt("sourceType"),
        destination_type: a.opt("destinationType"),
        forward,
        backward,
    }))
}

fn mapping_arg(a: &Args<'_>, key: &str) -> Result<Option<Mapping>, LensError> {
    let default = a.opt(&format!("{key}Default"));
    match a.map.get(key) {
        None => Ok(None),
        Some(Value::Object(entries)) => Ok(Some(Mapping::Table {
            entries: entries.clone(),
            default,
        })),
        Some(Value::String(expr)) if !expr.trim().is_empty() => Ok(Some(Mapping::Expr {
            source: expr.clone(),
            default,
        })),
        Some(_) => Err(a.err(format!(
            "`{key}` must be a table of values or a CEL expression string"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_spellings_parse_to_the_same_op() {
        let a = LensOp::from_json(
            &json!({"rename": {"source": "a", "destination": "b"}}),
            "/0",
        )
        .unwrap();
        let b = LensOp::from_json(
            &json!({"op": "rename", "source": "a", "destination": "b"}),
            "/0",
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(LensOp::from_json(&a.to_json(), "/0").unwrap(), a);
    }

    #[test]
    fn unknown_op_names_the_place() {
        let err = LensOp::from_json(&json!({"renam": {"source": "a"}}), "/3").unwrap_err();
        assert!(
            matches!(&err, LensError::UnknownOp { name, op, .. } if name == "renam" && op == "/3")
        );
        assert!(err.to_string().contains("rename"), "{err}");
    }

    #[test]
    fn missing_and_unknown_arguments_are_errors() {
        let err = LensOp::from_json(&json!({"add": {"garbage": "input"}}), "/0").unwrap_err();
        assert!(err.to_string().contains("missing `name`"), "{err}");
        let err = LensOp::from_json(
            &json!({"rename": {"source": "a", "destination": "b", "x": 1}}),
            "/0",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown argument `x`"), "{err}");
    }

    #[test]
    fn explicit_falsy_default_is_kept() {
        let op = LensOp::from_json(
            &json!({"add": {"name": "n", "type": "number", "default": 0}}),
            "",
        )
        .unwrap();
        let LensOp::Add(spec) = op else {
            panic!("not an add")
        };
        assert_eq!(spec.fill_value(), Some(json!(0)));
        let op = LensOp::from_json(
            &json!({"add": {"name": "n", "type": "string", "default": "x"}}),
            "",
        )
        .unwrap();
        let LensOp::Add(spec) = op else {
            panic!("not an add")
        };
        assert_eq!(spec.fill_value(), Some(json!("x")));
    }

    #[test]
    fn const_and_enum_fields_fill_a_valid_value() {
        let op = LensOp::from_json(&json!({"add": {"name": "k", "const": "v1"}}), "").unwrap();
        let LensOp::Add(spec) = op else {
            panic!("not an add")
        };
        assert_eq!(spec.fill_value(), Some(json!("v1")));
        let op = LensOp::from_json(
            &json!({"add": {"name": "k", "type": "string", "enum": ["a", "b"]}}),
            "",
        )
        .unwrap();
        let LensOp::Add(spec) = op else {
            panic!("not an add")
        };
        assert_eq!(spec.fill_value(), Some(json!("a")));
    }

    #[test]
    fn nullable_type_defaults_to_null() {
        assert_eq!(type_default(Some(&json!(["string", "null"]))), Value::Null);
        assert_eq!(type_default(Some(&json!("boolean"))), json!(false));
    }

    #[test]
    fn convert_reads_cambria_and_own_forms() {
        let cambria = LensOp::from_json(
            &json!({"convert": {"name": "s", "mapping": [{"true": "done"}, {"done": true}]}}),
            "",
        )
        .unwrap();
        let own = LensOp::from_json(
            &json!({"convert": {"name": "s", "forward": {"true": "done"}, "backward": {"done": true}}}),
            "",
        )
        .unwrap();
        assert_eq!(cambria, own);
        let expr = LensOp::from_json(
            &json!({"convert": {"name": "s", "forward": "value + 1"}}),
            "",
        )
        .unwrap();
        assert!(matches!(
            expr,
            LensOp::Convert(Convert {
                forward: Mapping::Expr { .. },
                backward: None,
                ..
            })
        ));
    }
}
