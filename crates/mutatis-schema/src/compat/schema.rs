//! Schemas parsed for comparison: every subschema of every loaded document becomes one [`Node`]
//! in an [`Arena`], with its keywords checked and decoded in the document's dialect, its `$ref`
//! resolved to another node (within the document only: nothing is ever fetched), and the
//! keywords the checker does not understand recorded with the polarity they are reached with.
//!
//! Parsing is iterative (a work queue, not recursion), so a deeply nested or self-referencing
//! schema cannot exhaust the stack, and every node is parsed once however often it is
//! referenced.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Map, Value};

use super::dialect::Dialect;
use super::error::{CompatError, SchemaSide};
use super::json::{percent_decode, push, push_index, resolve_uri, FxMap};
use super::oracle::Oracle;

/// Index of a subschema in the [`Arena`].
pub(crate) type NodeId = u32;

/// Index of a loaded document in the [`Arena`].
pub(crate) type DocId = usize;

/// JSON types as bits, so a `type` keyword is one byte.
pub(crate) mod types {
    pub(crate) const NULL: u8 = 1;
    pub(crate) const BOOLEAN: u8 = 2;
    pub(crate) const INTEGER: u8 = 4;
    pub(crate) const NUMBER: u8 = 8;
    pub(crate) const STRING: u8 = 16;
    pub(crate) const ARRAY: u8 = 32;
    pub(crate) const OBJECT: u8 = 64;
    pub(crate) const ALL: u8 = NULL | BOOLEAN | INTEGER | NUMBER | STRING | ARRAY | OBJECT;

    /// The bit of a type name.
    pub(crate) fn bit(name: &str) -> Option<u8> {
        Some(match name {
            "null" => NULL,
            "boolean" => BOOLEAN,
            "integer" => INTEGER,
            "number" => NUMBER,
            "string" => STRING,
            "array" => ARRAY,
            "object" => OBJECT,
            _ => return None,
        })
    }

    /// The set as type names, `number` standing for `integer` too.
    pub(crate) fn names(set: u8) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (bit, name) in [
            (NULL, "null"),
            (BOOLEAN, "boolean"),
            (INTEGER, "integer"),
            (NUMBER, "number"),
            (STRING, "string"),
            (ARRAY, "array"),
            (OBJECT, "object"),
        ] {
            if set & bit != 0 && !(bit == INTEGER && set & NUMBER != 0) {
                out.push(name);
            }
        }
        out
    }

    /// The set with `integer` added wherever `number` is (every integer is a number), so sets
    /// compare by inclusion.
    pub(crate) fn closed(set: u8) -> u8 {
        if set & NUMBER != 0 {
            set | INTEGER
        } else {
            set
        }
    }
}

/// A `$ref` and the node it resolves to.
#[derive(Debug, Clone)]
pub(crate) struct Reference<'a> {
    /// As written.
    pub raw: &'a str,
    /// The node it resolves to.
    pub target: NodeId,
}

/// The decoded keywords of an object schema. Only assertion and applicator keywords are kept;
/// annotations are dropped, and keywords the checker does not understand are listed by name.
#[derive(Debug, Default)]
pub(crate) struct Keywords<'a> {
    pub types: Option<u8>,
    pub enumeration: Option<Vec<&'a Value>>,
    pub constant: Option<&'a Value>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: Option<f64>,
    pub exclusive_maximum: Option<f64>,
    pub multiple_of: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub pattern: Option<&'a str>,
    pub format: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub content_media_type: Option<&'a str>,
    /// Positional item schemas (`prefixItems`, or the array form of `items` before 2020-12).
    pub prefix_items: Vec<NodeId>,
    /// The schema of every item after the positional ones (`items`, or `additionalItems` when
    /// `items` is an array).
    pub items: Option<NodeId>,
    /// Whether the positional items were written as an `items` array (draft 7 style), which
    /// decides the keyword names in pointers.
    pub tuple_items: bool,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub unique_items: bool,
    pub contains: Option<NodeId>,
    pub min_contains: Option<u64>,
    pub max_contains: Option<u64>,
    pub properties: Vec<(&'a str, NodeId)>,
    pub pattern_properties: Vec<(&'a str, NodeId)>,
    pub additional_properties: Option<NodeId>,
    pub required: Vec<&'a str>,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub property_names: Option<NodeId>,
    /// `dependentRequired`, and the array form of `dependencies`, with the keyword used.
    pub dependent_required: Vec<(&'a str, Vec<&'a str>, &'static str)>,
    /// `dependentSchemas`, and the schema form of `dependencies`, with the keyword used.
    pub dependent_schemas: Vec<(&'a str, NodeId, &'static str)>,
    pub all_of: Vec<NodeId>,
    pub any_of: Vec<NodeId>,
    pub one_of: Vec<NodeId>,
    pub not: Option<NodeId>,
    pub if_: Option<NodeId>,
    pub then_: Option<NodeId>,
    pub else_: Option<NodeId>,
    pub reference: Option<Reference<'a>>,
    /// Up to draft 7 a `$ref` hides its siblings: the node is exactly its target.
    pub ref_only: bool,
    /// Keywords this checker does not understand (or that mean nothing in this dialect).
    pub unknown: Vec<&'a str>,
}

impl Keywords<'_> {
    /// Whether the only constraints are `type`, `properties`, `required` and
    /// `additionalProperties` (the shape of most stored documents), with no `$ref`.
    pub(crate) fn is_plain_object(&self) -> bool {
        // Destructured in full, so that a new keyword cannot be forgotten here.
        let Keywords {
            types: _,
            enumeration,
            constant,
            minimum,
            maximum,
            exclusive_minimum,
            exclusive_maximum,
            multiple_of,
            min_length,
            max_length,
            pattern,
            format,
            content_encoding,
            content_media_type,
            prefix_items,
            items,
            tuple_items: _,
            min_items,
            max_items,
            unique_items,
            contains,
            min_contains: _,
            max_contains: _,
            properties: _,
            pattern_properties,
            additional_properties: _,
            required: _,
            min_properties,
            max_properties,
            property_names,
            dependent_required,
            dependent_schemas,
            all_of,
            any_of,
            one_of,
            not,
            if_,
            then_: _,
            else_: _,
            reference,
            ref_only: _,
            unknown: _,
        } = self;
        enumeration.is_none()
            && constant.is_none()
            && minimum.is_none()
            && maximum.is_none()
            && exclusive_minimum.is_none()
            && exclusive_maximum.is_none()
            && multiple_of.is_none()
            && min_length.is_none()
            && max_length.is_none()
            && pattern.is_none()
            && format.is_none()
            && content_encoding.is_none()
            && content_media_type.is_none()
            && prefix_items.is_empty()
            && items.is_none()
            && min_items.is_none()
            && max_items.is_none()
            && !unique_items
            && contains.is_none()
            && pattern_properties.is_empty()
            && min_properties.is_none()
            && max_properties.is_none()
            && property_names.is_none()
            && dependent_required.is_empty()
            && dependent_schemas.is_empty()
            && all_of.is_empty()
            && any_of.is_empty()
            && one_of.is_empty()
            && not.is_none()
            && if_.is_none()
            && reference.is_none()
    }

    /// Whether no keyword constrains anything (`{}`, or only annotations and keywords the
    /// checker does not understand, which are accounted for separately).
    pub(crate) fn is_unconstrained(&self) -> bool {
        self.is_plain_object()
            && self.types.is_none()
            && self.properties.is_empty()
            && self.required.is_empty()
            && self.additional_properties.is_none()
    }
}

/// A subschema: `true`, `false` or an object of keywords.
#[derive(Debug)]
pub(crate) enum NodeSchema<'a> {
    Bool(bool),
    Object(Box<Keywords<'a>>),
}

/// One subschema of a loaded document.
#[derive(Debug)]
pub(crate) struct Node<'a> {
    pub doc: DocId,
    /// JSON pointer of the subschema within its document.
    pub pointer: String,
    /// The subschema as written.
    pub raw: &'a Value,
    pub schema: NodeSchema<'a>,
    /// Whether the subschema contains a `$ref` anywhere (then equal text does not mean equal
    /// meaning across documents, because the targets may differ).
    pub has_ref: bool,
}

/// A keyword the checker does not understand, where it is, and how it is reached: positively
/// (it restricts the schema), under a negation (`not`, `if`, the other branches of `oneOf`), or
/// both. A document's [`Doc::unknown`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownUse {
    pub keyword: String,
    pub pointer: String,
    pub positive: bool,
    pub negative: bool,
}

/// A `$id` scope: a subschema with its own base URI, and the anchors declared within it.
#[derive(Debug)]
struct Resource {
    uri: String,
    pointer: String,
    anchors: HashMap<String, String>,
}

/// A loaded document.
#[derive(Debug)]
pub(crate) struct Doc<'a> {
    pub value: &'a Value,
    pub side: SchemaSide,
    pub dialect: Dialect,
    pub root: NodeId,
    resources: Vec<Resource>,
    pub unknown: Vec<UnknownUse>,
}

/// All loaded documents and their subschemas.
#[derive(Default)]
pub(crate) struct Arena<'a> {
    pub nodes: Vec<Node<'a>>,
    pub docs: Vec<Doc<'a>>,
    pub oracle: Oracle,
    /// Per document, the node of each pointer.
    index: Vec<FxMap<String, NodeId>>,
    queue: VecDeque<NodeId>,
}

/// Keywords that only annotate (or only identify): they never change which instances are valid.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "id",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "readOnly",
    "writeOnly",
    "deprecated",
    "$anchor",
    "$dynamicAnchor",
    "$recursiveAnchor",
    "$vocabulary",
];

/// Keywords whose value is an object of subschemas.
const SCHEMA_MAPS: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

/// Keywords whose value is an array of subschemas.
const SCHEMA_LISTS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];

/// Keywords whose value is one subschema.
const SCHEMA_SINGLES: &[&str] = &[
    "additionalItems",
    "additionalProperties",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
    "contentSchema",
    "unevaluatedItems",
    "unevaluatedProperties",
];

impl<'a> Arena<'a> {
    pub(crate) fn node(&self, id: NodeId) -> &Node<'a> {
        // Ids are only ever made by `alloc`, as indexes into `nodes`.
        &self.nodes[id as usize]
    }

    pub(crate) fn doc_of(&self, id: NodeId) -> &Doc<'a> {
        &self.docs[self.node(id).doc]
    }

    pub(crate) fn dialect(&self, id: NodeId) -> Dialect {
        self.doc_of(id).dialect
    }

    /// The keywords of a node, or `None` for a boolean schema.
    pub(crate) fn keywords(&self, id: NodeId) -> Option<&Keywords<'a>> {
        match &self.node(id).schema {
            NodeSchema::Object(k) => Some(k),
            NodeSchema::Bool(_) => None,
        }
    }

    /// Load one document: check and decode all its subschemas, resolve its references, and
    /// list the keywords the checker does not understand.
    pub(crate) fn load(
        &mut self,
        value: &'a Value,
        side: SchemaSide,
    ) -> Result<DocId, CompatError> {
        let dialect = match value.get("$schema") {
            None => Dialect::Draft2020,
            Some(Value::String(uri)) => {
                Dialect::from_uri(uri).ok_or_else(|| CompatError::UnknownDialect {
                    side,
                    pointer: "/$schema".to_owned(),
                    uri: uri.clone(),
                })?
            }
            Some(other) => {
                return Err(CompatError::InvalidSchema {
                    side,
                    pointer: "/$schema".to_owned(),
                    reason: format!("$schema must be a string, found {other}"),
                })
            }
        };
        let doc = self.docs.len();
        self.docs.push(Doc {
            value,
            side,
            dialect,
            root: 0,
            resources: index_resources(value, dialect),
            unknown: Vec::new(),
        });
        let first = self.nodes.len();
        let root = self.alloc(doc, String::new(), value);
        self.docs[doc].root = root;
        while let Some(id) = self.queue.pop_front() {
            self.parse(id)?;
        }
        self.mark_refs(first);
        self.check_cycles(first)?;
        self.docs[doc].unknown = self.unknown_uses(root);
        Ok(doc)
    }

    /// The node of the subschema at `pointer` (made and queued for parsing if new).
    fn alloc(&mut self, doc: DocId, pointer: String, raw: &'a Value) -> NodeId {
        if self.index.len() <= doc {
            self.index.resize_with(doc + 1, FxMap::default);
        }
        if let Some(&id) = self.index[doc].get(pointer.as_str()) {
            return id;
        }
        // More than u32::MAX subschemas cannot come from a document that fits in memory twice
        // over; saturating keeps the conversion total all the same.
        let id = NodeId::try_from(self.nodes.len()).unwrap_or(NodeId::MAX);
        self.nodes.push(Node {
            doc,
            pointer: pointer.clone(),
            raw,
            schema: NodeSchema::Bool(true),
            has_ref: false,
        });
        self.index[doc].insert(pointer, id);
        self.queue.push_back(id);
        id
    }

    fn invalid(&self, doc: DocId, pointer: &str, reason: String) -> CompatError {
        CompatError::InvalidSchema {
            side: self.docs[doc].side,
            pointer: pointer.to_owned(),
            reason,
        }
    }

    /// Decode one node's keywords.
    fn parse(&mut self, id: NodeId) -> Result<(), CompatError> {
        let (doc, pointer, raw) = {
            let n = self.node(id);
            (n.doc, n.pointer.clone(), n.raw)
        };
        let schema = match raw {
            Value::Bool(b) => NodeSchema::Bool(*b),
            Value::Object(map) => {
                NodeSchema::Object(Box::new(self.parse_object(doc, &pointer, map)?))
            }
            other => {
                return Err(self.invalid(
                    doc,
                    &pointer,
                    format!(
                        "a schema must be an object or a boolean, found {}",
                        describe(other)
                    ),
                ))
            }
        };
        self.nodes[id as usize].schema = schema;
        Ok(())
    }

    fn schema_child(
        &mut self,
        doc: DocId,
        pointer: String,
        v: &'a Value,
    ) -> Result<NodeId, CompatError> {
        match v {
            Value::Bool(_) | Value::Object(_) => Ok(self.alloc(doc, pointer, v)),
            other => Err(self.invalid(
                doc,
                &pointer,
                format!(
                    "a schema must be an object or a boolean, found {}",
                    describe(other)
                ),
            )),
        }
    }

    fn schema_list(
        &mut self,
        doc: DocId,
        pointer: &str,
        key: &str,
        v: &'a Value,
    ) -> Result<Vec<NodeId>, CompatError> {
        let Value::Array(items) = v else {
            return Err(self.invalid(
                doc,
                pointer,
                format!("{key} must be an array of schemas, found {}", describe(v)),
            ));
        };
        if items.is_empty() && key != "prefixItems" {
            return Err(self.invalid(doc, pointer, format!("{key} must not be empty")));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| self.schema_child(doc, push_index(pointer, i), item))
            .collect()
    }

    fn schema_map(
        &mut self,
        doc: DocId,
        pointer: &str,
        key: &str,
        v: &'a Value,
    ) -> Result<Vec<(&'a str, NodeId)>, CompatError> {
        let Value::Object(map) = v else {
            return Err(self.invalid(
                doc,
                pointer,
                format!("{key} must be an object of schemas, found {}", describe(v)),
            ));
        };
        map.iter()
            .map(|(k, item)| Ok((k.as_str(), self.schema_child(doc, push(pointer, k), item)?)))
            .collect()
    }

    fn nonneg(&self, doc: DocId, pointer: &str, key: &str, v: &Value) -> Result<u64, CompatError> {
        if let Some(n) = v.as_u64() {
            return Ok(n);
        }
        // Draft 6 and later accept `2.0` where an integer is expected.
        match v.as_f64() {
            Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 => Ok(f as u64),
            _ => Err(self.invalid(
                doc,
                pointer,
                format!("{key} must be a non-negative integer, found {v}"),
            )),
        }
    }

    fn number(&self, doc: DocId, pointer: &str, key: &str, v: &Value) -> Result<f64, CompatError> {
        v.as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| self.invalid(doc, pointer, format!("{key} must be a number, found {v}")))
    }

    fn string(
        &self,
        doc: DocId,
        pointer: &str,
        key: &str,
        v: &'a Value,
    ) -> Result<&'a str, CompatError> {
        v.as_str()
            .ok_or_else(|| self.invalid(doc, pointer, format!("{key} must be a string, found {v}")))
    }

    fn strings(
        &self,
        doc: DocId,
        pointer: &str,
        key: &str,
        v: &'a Value,
    ) -> Result<Vec<&'a str>, CompatError> {
        let bad = || {
            self.invalid(
                doc,
                pointer,
                format!("{key} must be an array of strings, found {v}"),
            )
        };
        let Value::Array(items) = v else {
            return Err(bad());
        };
        items.iter().map(|i| i.as_str().ok_or_else(bad)).collect()
    }

    fn parse_object(
        &mut self,
        doc: DocId,
        pointer: &str,
        map: &'a Map<String, Value>,
    ) -> Result<Keywords<'a>, CompatError> {
        let d = self.docs[doc].dialect;
        let mut k = Keywords::default();
        if let Some(r) = map.get("$ref") {
            let at = push(pointer, "$ref");
            let raw = self.string(doc, &at, "$ref", r)?;
            let target_pointer = self.resolve(doc, pointer, &at, raw)?;
            let target_value = self.docs[doc]
                .value
                .pointer(&target_pointer)
                .ok_or_else(|| CompatError::UnresolvableRef {
                    side: self.docs[doc].side,
                    pointer: at.clone(),
                    reference: raw.to_owned(),
                    reason: format!("{target_pointer:?} does not exist in the document"),
                })?;
            let target = self.schema_child(doc, target_pointer, target_value)?;
            k.reference = Some(Reference { raw, target });
            if d.ref_hides_siblings() {
                // Up to draft 7 the siblings of `$ref` are not keywords at all.
                k.ref_only = true;
                return Ok(k);
            }
        }
        // Draft 4 spells an exclusive bound as a flag beside `minimum`/`maximum`.
        let mut exclusive_min_flag = false;
        let mut exclusive_max_flag = false;
        let mut additional_items = None;
        for (key, v) in map {
            let at = push(pointer, key);
            match key.as_str() {
                "$ref" => {}
                "$schema" | "$id" | "$anchor" | "$dynamicAnchor" | "$comment" | "title"
                | "description" => {
                    self.string(doc, &at, key, v)?;
                }
                k2 if ANNOTATIONS.contains(&k2) => {}
                "definitions" | "$defs" => {
                    // Parsed so that an invalid definition is reported, even if unused.
                    self.schema_map(doc, &at, key, v)?;
                }
                "contentSchema" if d >= Dialect::Draft2019 => {
                    // An annotation from 2019-09 on: checked, never asserted.
                    self.schema_child(doc, at, v)?;
                }
                "type" => k.types = Some(self.parse_types(doc, &at, v)?),
                "enum" => match v {
                    Value::Array(items) => k.enumeration = Some(items.iter().collect()),
                    other => {
                        return Err(self.invalid(doc, &at, format!("enum must be an array, found {other}")))
                    }
                },
                "const" if d >= Dialect::Draft6 => k.constant = Some(v),
                "minimum" => k.minimum = Some(self.number(doc, &at, key, v)?),
                "maximum" => k.maximum = Some(self.number(doc, &at, key, v)?),
                "exclusiveMinimum" | "exclusiveMaximum" if d == Dialect::Draft4 => {
                    let Value::Bool(b) = v else {
                        return Err(self.invalid(
                            doc,
                            &at,
                            format!("{key} must be a boolean in draft 4, found {v}"),
                        ));
                    };
                    if key == "exclusiveMinimum" {
                        exclusive_min_flag = *b;
                    } else {
                        exclusive_max_flag = *b;
                    }
                }
                "exclusiveMinimum" => k.exclusive_minimum = Some(self.number(doc, &at, key, v)?),
                "exclusiveMaximum" => k.exclusive_maximum = Some(self.number(doc, &at, key, v)?),
                "multipleOf" => {
                    let m = self.number(doc, &at, key, v)?;
                    if m <= 0.0 {
                        return Err(self.invalid(doc, &at, format!("multipleOf must be greater than 0, found {v}")));
                    }
                    k.multiple_of = Some(m);
                }
                "minLength" => k.min_length = Some(self.nonneg(doc, &at, key, v)?),
                "maxLength" => k.max_length = Some(self.nonneg(doc, &at, key, v)?),
                "minItems" => k.min_items = Some(self.nonneg(doc, &at, key, v)?),
                "maxItems" => k.max_items = Some(self.nonneg(doc, &at, key, v)?),
                "minProperties" => k.min_properties = Some(self.nonneg(doc, &at, key, v)?),
                "maxProperties" => k.max_properties = Some(self.nonneg(doc, &at, key, v)?),
                "minContains" if d >= Dialect::Draft2019 => {
                    k.min_contains = Some(self.nonneg(doc, &at, key, v)?)
                }
                "maxContains" if d >= Dialect::Draft2019 => {
                    k.max_contains = Some(self.nonneg(doc, &at, key, v)?)
                }
                "pattern" => {
                    let p = self.string(doc, &at, key, v)?;
                    self.oracle.check_pattern(p).map_err(|e| self.invalid(doc, &at, e))?;
                    k.pattern = Some(p);
                }
                "format" => k.format = Some(self.string(doc, &at, key, v)?),
                "contentEncoding" if d >= Dialect::Draft6 => {
                    k.content_encoding = Some(self.string(doc, &at, key, v)?)
                }
                "contentMediaType" if d >= Dialect::Draft6 => {
                    k.content_media_type = Some(self.string(doc, &at, key, v)?)
                }
                "items" => match v {
                    Value::Array(_) if d == Dialect::Draft2020 => {
                        return Err(self.invalid(
                            doc,
                            &at,
                            "items must be a schema in draft 2020-12 (use prefixItems for positional items)".to_owned(),
                        ))
                    }
                    Value::Array(_) => {
                        k.prefix_items = self.schema_list(doc, &at, key, v)?;
                        k.tuple_items = true;
                    }
                    _ => k.items = Some(self.schema_child(doc, at, v)?),
                },
                "prefixItems" if d == Dialect::Draft2020 => {
                    k.prefix_items = self.schema_list(doc, &at, key, v)?
                }
                "additionalItems" if d <= Dialect::Draft2019 => {
                    additional_items = Some(self.schema_child(doc, at, v)?)
                }
                "uniqueItems" => match v {
                    Value::Bool(b) => k.unique_items = *b,
                    other => {
                        return Err(self.invalid(doc, &at, format!("uniqueItems must be a boolean, found {other}")))
                    }
                },
                "contains" if d >= Dialect::Draft6 => k.contains = Some(self.schema_child(doc, at, v)?),
                "properties" => k.properties = self.schema_map(doc, &at, key, v)?,
                "patternProperties" => {
                    let pats = self.schema_map(doc, &at, key, v)?;
                    for (p, _) in &pats {
                        self.oracle
                            .check_pattern(p)
                            .map_err(|e| self.invalid(doc, &push(&at, p), e))?;
                    }
                    k.pattern_properties = pats;
                }
                "additionalProperties" => {
                    k.additional_properties = Some(self.schema_child(doc, at, v)?)
                }
                "required" => k.required = self.strings(doc, &at, key, v)?,
                "propertyNames" if d >= Dialect::Draft6 => {
                    k.property_names = Some(self.schema_child(doc, at, v)?)
                }
                "dependencies" => {
                    let Value::Object(deps) = v else {
                        return Err(self.invalid(doc, &at, format!("dependencies must be an object, found {v}")));
                    };
                    for (name, dep) in deps {
                        let dep_at = push(&at, name);
                        match dep {
                            Value::Array(_) => k.dependent_required.push((
                                name.as_str(),
                                self.strings(doc, &dep_at, "a property dependency", dep)?,
                                "dependencies",
                            )),
                            _ => k.dependent_schemas.push((
                                name.as_str(),
                                self.schema_child(doc, dep_at, dep)?,
                                "dependencies",
                            )),
                        }
                    }
                }
                "dependentRequired" if d >= Dialect::Draft2019 => {
                    let Value::Object(deps) = v else {
                        return Err(self.invalid(doc, &at, format!("dependentRequired must be an object, found {v}")));
                    };
                    for (name, dep) in deps {
                        let names = self.strings(doc, &push(&at, name), "a dependentRequired entry", dep)?;
                        k.dependent_required.push((name.as_str(), names, "dependentRequired"));
                    }
                }
                "dependentSchemas" if d >= Dialect::Draft2019 => {
                    for (name, id) in self.schema_map(doc, &at, key, v)? {
                        k.dependent_schemas.push((name, id, "dependentSchemas"));
                    }
                }
                "allOf" => k.all_of = self.schema_list(doc, &at, key, v)?,
                "anyOf" => k.any_of = self.schema_list(doc, &at, key, v)?,
                "oneOf" => k.one_of = self.schema_list(doc, &at, key, v)?,
                "not" => k.not = Some(self.schema_child(doc, at, v)?),
                "if" if d >= Dialect::Draft7 => k.if_ = Some(self.schema_child(doc, at, v)?),
                "then" if d >= Dialect::Draft7 => k.then_ = Some(self.schema_child(doc, at, v)?),
                "else" if d >= Dialect::Draft7 => k.else_ = Some(self.schema_child(doc, at, v)?),
                _ => k.unknown.push(key.as_str()),
            }
        }
        if exclusive_min_flag {
            k.exclusive_minimum = k.minimum.take();
        }
        if exclusive_max_flag {
            k.exclusive_maximum = k.maximum.take();
        }
        // `additionalItems` means something only beside an array-form `items`; otherwise a
        // validator ignores it.
        if k.tuple_items {
            k.items = additional_items;
        }
        // `then` and `else` without `if` are ignored by validators.
        if k.if_.is_none() {
            k.then_ = None;
            k.else_ = None;
        }
        Ok(k)
    }

    fn parse_types(&self, doc: DocId, pointer: &str, v: &Value) -> Result<u8, CompatError> {
        let one = |name: &Value| -> Result<u8, CompatError> {
            let s = name.as_str().ok_or_else(|| {
                self.invalid(
                    doc,
                    pointer,
                    format!("type must be a type name or an array of them, found {v}"),
                )
            })?;
            types::bit(s).ok_or_else(|| {
                self.invalid(
                    doc,
                    pointer,
                    format!("{s:?} is not a JSON Schema type (expected null, boolean, object, array, number, string or integer)"),
                )
            })
        };
        match v {
            Value::Array(names) => names.iter().try_fold(0u8, |acc, n| Ok(acc | one(n)?)),
            other => one(other),
        }
    }

    /// The JSON pointer a `$ref` written in the subschema at `pointer` resolves to.
    fn resolve(
        &self,
        doc: DocId,
        pointer: &str,
        at: &str,
        reference: &str,
    ) -> Result<String, CompatError> {
        let d = &self.docs[doc];
        let unresolvable = |reason: String| CompatError::UnresolvableRef {
            side: d.side,
            pointer: at.to_owned(),
            reference: reference.to_owned(),
            reason,
        };
        let (uri_part, fragment) = match reference.find('#') {
            Some(i) => (&reference[..i], &reference[i + 1..]),
            None => (reference, ""),
        };
        let current = resource_of(&d.resources, pointer);
        let resource = if uri_part.is_empty() {
            current
        } else {
            let base = current.map(|r| r.uri.as_str()).unwrap_or_default();
            let wanted = resolve_uri(base, uri_part);
            d.resources
                .iter()
                .find(|r| r.uri == wanted || r.uri.trim_end_matches('#') == wanted)
                .ok_or_else(|| unresolvable(format!("no $id in this document is {wanted:?}")))
                .map(Some)?
        };
        let Some(resource) = resource else {
            return Err(unresolvable("the document has no root resource".to_owned()));
        };
        let fragment = percent_decode(fragment);
        if fragment.is_empty() {
            Ok(resource.pointer.clone())
        } else if fragment.starts_with('/') {
            Ok(format!("{}{fragment}", resource.pointer))
        } else {
            resource
                .anchors
                .get(&fragment)
                .cloned()
                .ok_or_else(|| unresolvable(format!("no anchor {fragment:?} is declared")))
        }
    }

    /// Set `has_ref` on the nodes from `first` on: a node has a reference if it, or any
    /// subschema written inside it, has a `$ref`.
    fn mark_refs(&mut self, first: usize) {
        let mut ids: Vec<usize> = (first..self.nodes.len()).collect();
        // Subschemas written inside a node have longer pointers, so longest first settles
        // children before parents.
        ids.sort_by_key(|&i| std::cmp::Reverse(self.nodes[i].pointer.len()));
        for i in ids {
            let own = match &self.nodes[i].schema {
                NodeSchema::Object(k) => k.reference.is_some(),
                NodeSchema::Bool(_) => false,
            };
            let children = self.structural_children(i as NodeId);
            let any = own || children.iter().any(|&c| self.nodes[c as usize].has_ref);
            self.nodes[i].has_ref = any;
        }
    }

    /// The subschemas written inside a node (not reached through `$ref`).
    fn structural_children(&self, id: NodeId) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = self.edges(id).into_iter().map(|(c, _)| c).collect();
        if let Some(k) = self.keywords(id) {
            if let Some(r) = &k.reference {
                out.retain(|&c| c != r.target);
            }
        }
        out
    }

    /// Every subschema a node applies, each with whether it applies to the same instance
    /// (`true`: `allOf`, `not`, `$ref`...) rather than to a part of it (`false`: `properties`,
    /// `items`...).
    pub(crate) fn edges(&self, id: NodeId) -> Vec<(NodeId, bool)> {
        let mut out = Vec::new();
        let Some(k) = self.keywords(id) else {
            return out;
        };
        if let Some(r) = &k.reference {
            out.push((r.target, true));
        }
        let same = k.all_of.iter().chain(&k.any_of).chain(&k.one_of).copied();
        out.extend(same.map(|c| (c, true)));
        out.extend(
            [k.not, k.if_, k.then_, k.else_]
                .into_iter()
                .flatten()
                .map(|c| (c, true)),
        );
        out.extend(k.dependent_schemas.iter().map(|(_, c, _)| (*c, true)));
        let deeper = k
            .prefix_items
            .iter()
            .copied()
            .chain(k.items)
            .chain(k.contains)
            .chain(k.properties.iter().map(|(_, c)| *c))
            .chain(k.pattern_properties.iter().map(|(_, c)| *c))
            .chain(k.additional_properties)
            .chain(k.property_names);
        out.extend(deeper.map(|c| (c, false)));
        out
    }

    /// Reject a `$ref` cycle that never descends into the instance: validation of such a
    /// schema would not terminate, and neither would any reasoning about it.
    fn check_cycles(&self, first: usize) -> Result<(), CompatError> {
        // Iterative depth-first search over same-instance edges; 0 = unseen, 1 = on the
        // stack, 2 = done.
        let mut state = vec![0u8; self.nodes.len()];
        for start in first..self.nodes.len() {
            if state[start] != 0 {
                continue;
            }
            let same_level = |id: NodeId| -> Vec<NodeId> {
                self.edges(id)
                    .into_iter()
                    .filter_map(|(c, same)| same.then_some(c))
                    .collect()
            };
            // Each frame: a node, its same-level children, and the next child to visit.
            let mut stack: Vec<(NodeId, Vec<NodeId>, usize)> =
                vec![(start as NodeId, same_level(start as NodeId), 0)];
            state[start] = 1;
            while let Some((id, same, next)) = stack.last_mut() {
                let id = *id;
                if *next < same.len() {
                    let child = same[*next];
                    *next += 1;
                    match state[child as usize] {
                        0 => {
                            state[child as usize] = 1;
                            stack.push((child, same_level(child), 0));
                        }
                        1 => {
                            // On the stack: a cycle. Name a `$ref` on it (there always is
                            // one, since written subschemas nest strictly).
                            let on_cycle = stack
                                .iter()
                                .map(|(n, _, _)| *n)
                                .skip_while(|&n| n != child)
                                .find_map(|n| {
                                    self.keywords(n)
                                        .and_then(|k| k.reference.as_ref())
                                        .map(|r| (n, r.raw))
                                });
                            let (n, raw) = on_cycle.unwrap_or((id, ""));
                            let node = self.node(n);
                            return Err(CompatError::RefCycle {
                                side: self.docs[node.doc].side,
                                pointer: push(&node.pointer, "$ref"),
                                reference: raw.to_owned(),
                            });
                        }
                        _ => {}
                    }
                } else {
                    state[id as usize] = 2;
                    stack.pop();
                }
            }
        }
        Ok(())
    }

    /// The unknown keywords reachable from `root`, with the polarity they are reached with.
    fn unknown_uses(&self, root: NodeId) -> Vec<UnknownUse> {
        let mut seen: HashSet<(NodeId, bool)> = HashSet::new();
        let mut work = vec![(root, true)];
        let mut found: Vec<UnknownUse> = Vec::new();
        while let Some((id, positive)) = work.pop() {
            if !seen.insert((id, positive)) {
                continue;
            }
            let Some(k) = self.keywords(id) else {
                continue;
            };
            let node = self.node(id);
            for kw in &k.unknown {
                let pointer = push(&node.pointer, kw);
                match found.iter_mut().find(|u| u.pointer == pointer) {
                    Some(u) => {
                        u.positive |= positive;
                        u.negative |= !positive;
                    }
                    None => found.push(UnknownUse {
                        keyword: (*kw).to_owned(),
                        pointer,
                        positive,
                        negative: !positive,
                    }),
                }
            }
            // `not` flips the polarity; `if` and every `oneOf` branch are used both ways
            // (`oneOf` needs "exactly one", so each branch is also negated).
            for (child, _) in self.edges(id) {
                let flips = k.not == Some(child);
                let both = k.if_ == Some(child) || k.one_of.contains(&child);
                if both {
                    work.push((child, true));
                    work.push((child, false));
                } else {
                    work.push((child, positive != flips));
                }
            }
        }
        found.sort_by(|a, b| a.pointer.cmp(&b.pointer));
        found
    }
}

/// The innermost resource containing `pointer`.
fn resource_of<'r>(resources: &'r [Resource], pointer: &str) -> Option<&'r Resource> {
    resources
        .iter()
        .filter(|r| {
            pointer == r.pointer
                || (pointer.starts_with(&r.pointer) && pointer[r.pointer.len()..].starts_with('/'))
        })
        .max_by_key(|r| r.pointer.len())
}

/// Find every `$id` scope and anchor of a document, walking subschema positions only.
fn index_resources(root: &Value, dialect: Dialect) -> Vec<Resource> {
    let mut resources = vec![Resource {
        uri: String::new(),
        pointer: String::new(),
        anchors: HashMap::new(),
    }];
    // Most documents declare no identifiers at all: find out without building pointers.
    if !declares_ids(root, dialect) {
        if let Some(Value::String(id)) = root.get(if dialect == Dialect::Draft4 {
            "id"
        } else {
            "$id"
        }) {
            resources[0].uri = resolve_uri("", id.split('#').next().unwrap_or_default());
        }
        return resources;
    }
    index_all(root, dialect, resources)
}

/// Whether any subschema below the root declares an `$id`, `id` or anchor.
fn declares_ids(root: &Value, dialect: Dialect) -> bool {
    let id_key = if dialect == Dialect::Draft4 {
        "id"
    } else {
        "$id"
    };
    let mut work: Vec<&Value> = vec![root];
    let mut first = true;
    while let Some(value) = work.pop() {
        let Value::Object(map) = value else {
            continue;
        };
        let is_root = std::mem::take(&mut first);
        let id = map.get(id_key).and_then(Value::as_str);
        if id.is_some_and(|id| !is_root || id.starts_with('#'))
            || map.contains_key("$anchor")
            || map.contains_key("$dynamicAnchor")
        {
            return true;
        }
        for (key, v) in map {
            if SCHEMA_MAPS.contains(&key.as_str()) || key == "dependencies" {
                if let Value::Object(m) = v {
                    work.extend(m.values());
                }
            } else if SCHEMA_LISTS.contains(&key.as_str()) || key == "items" {
                match v {
                    Value::Array(items) => work.extend(items.iter()),
                    other if key == "items" => work.push(other),
                    _ => {}
                }
            } else if SCHEMA_SINGLES.contains(&key.as_str()) {
                work.push(v);
            }
        }
    }
    false
}

/// Index every resource and anchor, with pointers.
fn index_all(root: &Value, dialect: Dialect, mut resources: Vec<Resource>) -> Vec<Resource> {
    let id_key = if dialect == Dialect::Draft4 {
        "id"
    } else {
        "$id"
    };
    let mut work: Vec<(&Value, String)> = vec![(root, String::new())];
    while let Some((value, pointer)) = work.pop() {
        let Value::Object(map) = value else {
            continue;
        };
        if dialect.ref_hides_siblings() && map.contains_key("$ref") {
            // The siblings of `$ref` (including `$id`) mean nothing up to draft 7.
            continue;
        }
        let current = resources
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                pointer == r.pointer
                    || (pointer.starts_with(&r.pointer)
                        && pointer[r.pointer.len()..].starts_with('/'))
            })
            .max_by_key(|(_, r)| r.pointer.len())
            .map(|(i, _)| i)
            .unwrap_or(0);
        if let Some(Value::String(id)) = map.get(id_key) {
            if let Some(anchor) = id.strip_prefix('#') {
                if !anchor.is_empty() {
                    resources[current]
                        .anchors
                        .insert(anchor.to_owned(), pointer.clone());
                }
            } else {
                let base = resources[current].uri.clone();
                let without_fragment = id.split('#').next().unwrap_or_default();
                let uri = resolve_uri(&base, without_fragment);
                if pointer.is_empty() {
                    resources[0].uri = uri;
                } else {
                    resources.push(Resource {
                        uri,
                        pointer: pointer.clone(),
                        anchors: HashMap::new(),
                    });
                }
            }
        }
        let scope = resources
            .iter()
            .rposition(|r| r.pointer == pointer)
            .unwrap_or(current);
        for key in ["$anchor", "$dynamicAnchor"] {
            if dialect >= Dialect::Draft2019 {
                if let Some(Value::String(a)) = map.get(key) {
                    resources[scope].anchors.insert(a.clone(), pointer.clone());
                }
            }
        }
        for (key, v) in map {
            let at = push(&pointer, key);
            if SCHEMA_MAPS.contains(&key.as_str()) || key == "dependencies" {
                if let Value::Object(m) = v {
                    work.extend(m.iter().map(|(k, s)| (s, push(&at, k))));
                }
            } else if SCHEMA_LISTS.contains(&key.as_str()) || key == "items" {
                match v {
                    Value::Array(items) => work.extend(
                        items
                            .iter()
                            .enumerate()
                            .map(|(i, s)| (s, push_index(&at, i))),
                    ),
                    other if key == "items" => work.push((other, at)),
                    _ => {}
                }
            } else if SCHEMA_SINGLES.contains(&key.as_str()) {
                work.push((v, at));
            }
        }
    }
    resources
}

/// A short description of a JSON value for error messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(v: &Value) -> Result<(Arena<'_>, DocId), CompatError> {
        let mut a = Arena::default();
        let d = a.load(v, SchemaSide::Old)?;
        Ok((a, d))
    }

    #[test]
    fn bad_keyword_values_name_the_pointer() {
        let v = json!({"properties": {"a": {"required": 3}}});
        let e = load(&v)
            .err()
            .map(|e| (e.pointer().map(str::to_owned), e.to_string()));
        let (p, msg) = e.unwrap_or_default();
        assert_eq!(p.as_deref(), Some("/properties/a/required"));
        assert!(msg.contains("old schema"), "{msg}");
        let v = json!({"type": "strnig"});
        let e = load(&v).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("\"strnig\" is not a JSON Schema type"), "{e}");
    }

    #[test]
    fn refs_resolve_locally_or_fail() {
        let v =
            json!({"$defs": {"a": {"type": "string"}}, "properties": {"x": {"$ref": "#/$defs/a"}}});
        let (arena, doc) = load(&v)
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        let root = arena.docs[doc].root;
        let x = arena.keywords(root).map(|k| k.properties[0].1).unwrap_or(0);
        let target = arena
            .keywords(x)
            .and_then(|k| k.reference.as_ref())
            .map(|r| r.target);
        assert_eq!(
            target.map(|t| arena.node(t).pointer.clone()).as_deref(),
            Some("/$defs/a")
        );

        let v = json!({"properties": {"x": {"$ref": "#/$defs/missing"}}});
        let e = load(&v).err();
        assert!(
            matches!(e, Some(CompatError::UnresolvableRef { ref pointer, .. }) if pointer == "/properties/x/$ref")
        );
        let v = json!({"$ref": "http://example.com/remote.json"});
        assert!(matches!(
            load(&v).err(),
            Some(CompatError::UnresolvableRef { .. })
        ));
    }

    #[test]
    fn anchors_and_ids_resolve() {
        let v = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "definitions": {"A": {"$id": "#Addr", "type": "string"}},
            "properties": {"a": {"$ref": "#Addr"}}
        });
        assert!(load(&v).is_ok());
        let v = json!({
            "$id": "http://x.org/root.json",
            "$defs": {"b": {"$id": "b.json", "$defs": {"c": {"type": "string"}}}},
            "properties": {"a": {"$ref": "b.json#/$defs/c"}, "z": {"$ref": "http://x.org/root.json#/$defs/b"}}
        });
        assert!(load(&v).is_ok());
    }

    #[test]
    fn cycles_without_descent_are_errors_recursion_is_not() {
        assert!(matches!(
            load(&json!({"$ref": "#"})).err(),
            Some(CompatError::RefCycle { .. })
        ));
        assert!(matches!(
            load(&json!({"anyOf": [{"$ref": "#"}, {"type": "string"}]})).err(),
            Some(CompatError::RefCycle { .. })
        ));
        assert!(load(&json!({"properties": {"child": {"$ref": "#"}}})).is_ok());
    }

    #[test]
    fn unknown_keywords_carry_their_polarity() {
        let v = json!({"x-pos": 1, "not": {"x-neg": 2}, "oneOf": [{"x-both": 3}]});
        let (arena, doc) = load(&v)
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        let u = &arena.docs[doc].unknown;
        let find = |k: &str| {
            u.iter()
                .find(|x| x.keyword == k)
                .map(|x| (x.positive, x.negative))
        };
        assert_eq!(find("x-pos"), Some((true, false)));
        assert_eq!(find("x-neg"), Some((false, true)));
        assert_eq!(find("x-both"), Some((true, true)));
    }

    #[test]
    fn draft_specific_keywords() {
        // Draft 4 boolean exclusive bounds become exclusive numbers.
        let v = json!({"$schema": "http://json-schema.org/draft-04/schema#", "minimum": 3, "exclusiveMinimum": true, "const": 1});
        let (arena, doc) = load(&v)
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        let k = arena.keywords(arena.docs[doc].root);
        assert_eq!(k.and_then(|k| k.exclusive_minimum), Some(3.0));
        assert_eq!(k.map(|k| k.unknown.clone()), Some(vec!["const"]));
        // An array `items` is a tuple up to 2019-09 and an error in 2020-12.
        assert!(load(&json!({"items": [{"type": "string"}]})).is_err());
        let v = json!({"$schema": "http://json-schema.org/draft-07/schema#", "items": [true], "additionalItems": false});
        assert!(load(&v).is_ok());
    }
}
