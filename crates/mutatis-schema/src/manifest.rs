//! The manifest: a schema set published as one JSON document, which a node serves
//! (`GET /schema`) and a client or checker loads back to translate on its own side.
//!
//! Its shape is the schema-set folder folded into one document, with every lens inline in
//! canonical form and every version's schema written out:
//!
//! ```json
//! {
//!   "manifestVersion": 1,
//!   "name": "todo-app",
//!   "types": {"todo": {"versions": {
//!       "1": {"schema": {...}},
//!       "2": {"from": 1, "lens": [{"add": {...}}], "schema": {...}}}}},
//!   "releases": [{"name": "5", "types": {"todo": 2}, "status": "current"}],
//!   "defaultRelease": "5",
//!   "storage": {"todo": {"version": 2, "strategy": "eager"}}
//! }
//! ```
//!
//! Loading a manifest runs every check a folder load runs: lenses are compiled, schemas are
//! derived again and must equal the published ones, so a manifest produced by a lens engine
//! that derives differently is refused rather than silently mistranslated.

use std::collections::BTreeMap;

use mutatis_lens::{pointer, Transforms};
use serde_json::{json, Map, Value};

use crate::error::{ErrorKind, SchemaError};
use crate::parse::{self, Source, SETTINGS_KEYS};
use crate::set::SchemaSet;

/// The manifest format this crate writes and reads.
pub const MANIFEST_VERSION: u64 = 1;

impl SchemaSet {
    /// The machine-readable publication of this schema set.
    pub fn manifest(&self) -> Value {
        let mut out = Map::new();
        out.insert("manifestVersion".into(), json!(MANIFEST_VERSION));
        out.insert("name".into(), json!(self.name));
        if let Some(d) = &self.description {
            out.insert("description".into(), json!(d));
        }
        let mut types = Map::new();
        for ty in self.types.values() {
            let mut versions = Map::new();
            for def in ty.versions.values() {
                let mut v = Map::new();
                if let Some(d) = &def.description {
                    v.insert("description".into(), json!(d));
                }
                if let Some(from) = def.from {
                    v.insert("from".into(), json!(from));
                }
                if let Some(lens) = &def.lens {
                    v.insert("lens".into(), lens.to_json());
                }
                v.insert("schema".into(), def.schema.clone());
                versions.insert(def.version.to_string(), Value::Object(v));
            }
            let mut t = Map::new();
            if let Some(d) = &ty.description {
                t.insert("description".into(), json!(d));
            }
            t.insert("versions".into(), Value::Object(versions));
            types.insert(ty.name.clone(), Value::Object(t));
        }
        out.insert("types".into(), Value::Object(types));
        let releases: Vec<Value> = self
            .releases
            .iter()
            .map(|r| {
                let mut m = Map::new();
                m.insert("name".into(), json!(r.name));
                m.insert("types".into(), json!(r.types));
                m.insert("status".into(), json!(r.status.as_str()));
                if let Some(s) = &r.sunset {
                    m.insert("sunset".into(), json!(s));
                }
                Value::Object(m)
            })
            .collect();
        out.insert("releases".into(), Value::Array(releases));
        out.insert("defaultRelease".into(), json!(self.default_release().name));
        let storage: Map<String, Value> = self
            .storage
            .iter()
            .map(|(t, s)| {
                (
                    t.clone(),
                    json!({"version": s.version, "strategy": s.strategy.as_str()}),
                )
            })
            .collect();
        out.insert("storage".into(), Value::Object(storage));
        Value::Object(out)
    }

    /// Load a schema set from its manifest. Errors carry JSON pointers into the manifest.
    pub fn from_manifest(manifest: &Value) -> Result<SchemaSet, SchemaError> {
        SchemaSet::from_manifest_with(manifest, &Transforms::new())
    }

    /// [`SchemaSet::from_manifest`] with registered transforms (a manifest names transforms
    /// by name; the code behind them must be registered by the reader).
    pub fn from_manifest_with(
        manifest: &Value,
        transforms: &Transforms,
    ) -> Result<SchemaSet, SchemaError> {
        let src = Source::new(None, None);
        let map = src.object(manifest, "", "a manifest")?;
        let format = src.required(map, "", "manifestVersion")?;
        if format.as_u64() != Some(MANIFEST_VERSION) {
            return Err(src.err(
                ErrorKind::ManifestFormat {
                    found: format.to_string(),
                    known: MANIFEST_VERSION,
                },
                "/manifestVersion",
            ));
        }
        let types_v = src.required(map, "", "types")?;
        let mut types = BTreeMap::new();
        for (name, body) in src.object(types_v, "/types", "`types`")? {
            let at = pointer::push("/types", name);
            let ty = parse::parse_type(body, &at, src, Some(name), None, transforms)?;
            types.insert(ty.name.clone(), ty);
        }
        let mut allowed: Vec<&str> = SETTINGS_KEYS.to_vec();
        allowed.extend(["manifestVersion", "types"]);
        let settings = parse::parse_settings(manifest, src, &types, &allowed)?;
        Ok(parse::assemble(settings, types, transforms))
    }
}
