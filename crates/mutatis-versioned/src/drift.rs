//! Drift: does a struct still match its version's JSON Schema?
//!
//! The struct's own schema comes from `schemars` (which honours serde's attributes: renames,
//! `default`, `skip_serializing_if`, `flatten`, enum representations), once for what it
//! serialises and once for what it deserialises. Each is compared with the version's schema by
//! the compatibility checker of `mutatis-schema`:
//!
//! - [`DriftDirection::Writes`]: every document the struct serialises to is valid in the version;
//! - [`DriftDirection::Reads`]: every document valid in the version deserialises into the struct,
//!   and no field of it is dropped on the way (a struct that ignores a field the version has
//!   loses it).
//!
//! Before comparing, the struct's schema is brought to what serde really does with JSON:
//! objects with listed properties are closed (`additionalProperties: false`: a struct writes no
//! other field, and one it does not read is dropped); schemars' integer formats become the
//! bounds they mean (`uint8` is 0…255), except the 64-bit ones, which hold every integer a
//! mutatis version does in practice (i64: values past 2^63 − 1 fail at deserialisation, with
//! their path); float formats are dropped. In the written direction a property that is not
//! required is taken to be left out rather than written as `null` (schemars marks a field
//! optional there only for `skip_serializing_if`, which for an `Option` is `Option::is_none`).

use std::fmt;

use mutatis_schema::compat::{self, ChangeKind};
use mutatis_schema::SchemaSet;
use schemars::{generate::SchemaSettings, JsonSchema};
use serde_json::{json, Map, Value};

use crate::Versioned;

/// Which way a struct and its version disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriftDirection {
    /// The struct can serialise to a document its version refuses.
    Writes,
    /// The version has documents the struct cannot deserialise, or whose fields it drops.
    Reads,
}

impl fmt::Display for DriftDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DriftDirection::Writes => "struct writes what the version refuses",
            DriftDirection::Reads => "version holds what the struct cannot read",
        })
    }
}

/// One drifted place.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    /// Which way it breaks.
    pub direction: DriftDirection,
    /// The field as a JSON pointer in the document (`/yearOfBirth`, `/tags/*` for the items of
    /// an array; `""` is the whole document).
    pub field: String,
    /// The JSON pointer in the schema the compatibility checker reported.
    pub schema_pointer: String,
    /// The checker's label (`type_changed`, `property_removed`…).
    pub kind: ChangeKind,
    /// The checker's sentence.
    pub detail: String,
}

/// The result of [`check`]: every drifted field of a struct against its version.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftReport {
    /// The struct (`std::any::type_name`).
    pub rust_type: &'static str,
    /// `Versioned::TYPE`.
    pub type_name: &'static str,
    /// `Versioned::VERSION`.
    pub version: u32,
    /// Every drift found, writes first.
    pub drifts: Vec<Drift>,
    /// What kept the check from being made (an unknown type or version, a schema the checker
    /// cannot read). A report with errors does not match.
    pub errors: Vec<String>,
}

impl DriftReport {
    /// No drift and no error: the struct and its version accept the same documents.
    pub fn matches(&self) -> bool {
        self.drifts.is_empty() && self.errors.is_empty()
    }

    /// The drifts in one direction.
    pub fn in_direction(&self, direction: DriftDirection) -> impl Iterator<Item = &Drift> {
        self.drifts.iter().filter(move |d| d.direction == direction)
    }

    /// Whether some drift names `field` (a JSON pointer such as `/yearOfBirth`).
    pub fn names_field(&self, field: &str) -> bool {
        self.drifts.iter().any(|d| d.field == field)
    }
}

impl fmt::Display for DriftReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.matches() {
            return write!(
                f,
                "{} matches {}@{}",
                self.rust_type, self.type_name, self.version
            );
        }
        writeln!(
            f,
            "{} does not match {}@{} (each change reads from the version to the struct):",
            self.rust_type, self.type_name, self.version
        )?;
        for e in &self.errors {
            writeln!(f, "  error: {e}")?;
        }
        for d in &self.drifts {
            let field = if d.field.is_empty() {
                "(document)"
            } else {
                &d.field
            };
            writeln!(
                f,
                "  {field}: {} ({}) [{}, schema {}]",
                d.detail, d.kind, d.direction, d.schema_pointer
            )?;
        }
        Ok(())
    }
}

/// Compare `T`'s own JSON Schema with the schema of `T::TYPE@T::VERSION` in `set`, both ways.
pub fn check<T: Versioned + JsonSchema>(set: &SchemaSet) -> DriftReport {
    let mut report = DriftReport {
        rust_type: std::any::type_name::<T>(),
        type_name: T::TYPE,
        version: T::VERSION,
        drifts: Vec::new(),
        errors: Vec::new(),
    };
    let version_schema = match set.schema(T::TYPE, T::VERSION) {
        Ok(s) => s,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    for direction in [DriftDirection::Writes, DriftDirection::Reads] {
        let struct_schema = struct_schema::<T>(direction);
        match compat::check(version_schema, &struct_schema) {
            Err(e) => report.errors.push(format!("{direction}: {e}")),
            Ok(c) => {
                let holds = match direction {
                    DriftDirection::Writes => c.forward,
                    DriftDirection::Reads => c.backward,
                };
                let before = report.drifts.len();
                for ch in c.changes {
                    let breaks = match direction {
                        DriftDirection::Writes => ch.breaks_forward,
                        DriftDirection::Reads => ch.breaks_backward,
                    };
                    if breaks {
                        report.drifts.push(Drift {
                            direction,
                            field: field_of_change(&ch),
                            schema_pointer: ch.pointer,
                            kind: ch.kind,
                            detail: ch.detail,
                        });
                    }
                }
                if !holds && report.drifts.len() == before {
                    report.errors.push(format!(
                        "{direction}: the checker found no inclusion but named no change"
                    ));
                }
            }
        }
    }
    report
}

/// Panic with the readable [`DriftReport`] unless `T` matches its version. For tests.
#[track_caller]
pub fn assert_matches<T: Versioned + JsonSchema>(set: &SchemaSet) {
    let report = check::<T>(set);
    assert!(report.matches(), "{report}");
}

/// `T`'s schema for one direction, brought to what serde does with JSON.
pub(crate) fn struct_schema<T: JsonSchema>(direction: DriftDirection) -> Value {
    let settings = SchemaSettings::draft2020_12();
    let settings = match direction {
        DriftDirection::Writes => settings.for_serialize(),
        DriftDirection::Reads => settings.for_deserialize(),
    };
    let mut schema = settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    normalise(&mut schema, direction, false);
    schema
}

fn normalise(schema: &mut Value, direction: DriftDirection, in_all_of: bool) {
    let Value::Object(map) = schema else {
        if let Value::Array(items) = schema {
            for item in items {
                normalise(item, direction, false);
            }
        }
        return;
    };
    integer_format(map);
    if direction == DriftDirection::Writes {
        drop_null_of_optional(map);
    }
    let composed = ["allOf", "anyOf", "oneOf", "$ref"]
        .iter()
        .any(|k| map.contains_key(*k));
    if map.contains_key("properties")
        && !composed
        && !in_all_of
        && !map.contains_key("additionalProperties")
        && !map.contains_key("patternProperties")
        && !map.contains_key("unevaluatedProperties")
    {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    for (key, value) in map.iter_mut() {
        match key.as_str() {
            // Annotations and constants hold data, not schemas.
            "enum" | "const" | "default" | "examples" | "required" | "title" | "description" => {}
            "allOf" => normalise(value, direction, true),
            "properties" | "$defs" | "definitions" | "patternProperties" | "dependentSchemas" => {
                if let Value::Object(subs) = value {
                    for sub in subs.values_mut() {
                        normalise(sub, direction, false);
                    }
                }
            }
            _ => normalise(value, direction, false),
        }
    }
}

fn integer_format(map: &mut Map<String, Value>) {
    let Some(format) = map.get("format").and_then(Value::as_str) else {
        return;
    };
    let bounds: Option<(i64, i64)> = match format {
        "int8" => Some((i8::MIN.into(), i8::MAX.into())),
        "int16" => Some((i16::MIN.into(), i16::MAX.into())),
        "int32" => Some((i32::MIN.into(), i32::MAX.into())),
        "uint8" => Some((0, u8::MAX.into())),
        "uint16" => Some((0, u16::MAX.into())),
        "uint32" => Some((0, u32::MAX.into())),
        "int64" | "uint64" | "int" | "uint" | "int128" | "uint128" | "float" | "double" => None,
        _ => return,
    };
    map.remove("format");
    if let Some((lo, hi)) = bounds {
        map.entry("minimum").or_insert(json!(lo));
        map.entry("maximum").or_insert(json!(hi));
    }
}

/// In the written direction, an optional property's `null` is never written.
fn drop_null_of_optional(map: &mut Map<String, Value>) {
    let required: Vec<String> = map
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let Some(Value::Object(props)) = map.get_mut("properties") else {
        return;
    };
    for (name, prop) in props.iter_mut() {
        if required.contains(name) {
            continue;
        }
        let Value::Object(p) = prop else { continue };
        if let Some(Value::Array(types)) = p.get_mut("type") {
            types.retain(|t| t != "null");
            if types.len() == 1 {
                let only = types[0].clone();
                p.insert("type".into(), only);
            }
        }
        if let Some(Value::Array(branches)) = p.get_mut("anyOf") {
            branches.retain(|b| b != &json!({"type": "null"}));
            if branches.len() == 1 {
                let only = branches.pop().unwrap_or(Value::Bool(true));
                p.remove("anyOf");
                p.insert("allOf".into(), json!([only]));
            }
        }
    }
}

/// The field a change is about: for a change of `required`, the property that became or
/// stopped being required (the checker gives its name as the old or new value); otherwise the
/// one its schema pointer leads to.
fn field_of_change(change: &compat::Change) -> String {
    let at = field_of(&change.pointer);
    if matches!(
        change.kind,
        ChangeKind::RequiredAdded | ChangeKind::RequiredRemoved
    ) {
        if let Some(name) = change
            .new
            .as_ref()
            .or(change.old.as_ref())
            .and_then(Value::as_str)
        {
            return format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
        }
    }
    at
}

/// `/properties/name/properties/first/type` → `/name/first`; `/properties/tags/items` →
/// `/tags/*`. A pointer into `$defs` loses its context and is kept as the schema pointer.
fn field_of(pointer: &str) -> String {
    let segments: Vec<&str> = pointer.split('/').skip(1).collect();
    let mut out = String::new();
    let mut i = 0;
    while i < segments.len() {
        match segments[i] {
            "properties" if i + 1 < segments.len() => {
                out.push('/');
                out.push_str(segments[i + 1]);
                i += 2;
            }
            "items" | "additionalProperties" | "prefixItems" | "contains" => {
                out.push_str("/*");
                i += if segments[i] == "prefixItems" { 2 } else { 1 };
            }
            "$defs" | "definitions" => return pointer.to_owned(),
            _ => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn fields_from_schema_pointers() {
        assert_eq!(field_of("/properties/yearOfBirth/type"), "/yearOfBirth");
        assert_eq!(field_of("/properties/a/properties/b"), "/a/b");
        assert_eq!(field_of("/properties/tags/items/type"), "/tags/*");
        assert_eq!(field_of("/required"), "");
    }
}
