//! The manifest: a schema set published as one JSON document, which a node serves
//! (`GET /schema`) and a client or checker loads back to translate on its own side.
//!
//! Its shape is the schema-set folder folded into one document, with every lens inline in
//! canonical form, every version's schema written out and, under each version that has a
//! lens, the lens's analysis (see [`crate::LensAnalysis`]):
//!
//! ```json
//! {
//!   "mutatisManifest": 1,
//!   "name": "todo-app",
//!   "types": {"todo": {"versions": {
//!       "1": {"schema": {...}},
//!       "2": {"from": 1, "lens": [{"add": {...}}], "schema": {...},
//!             "analysis": {"exact": true, "reverseExact": true,
//!                          "loss": {"forward": [],
//!                                   "backward": [{"kind": "field", "pointer": "/properties/important",
//!                                                 "path": "/important", "op": "/0", "opName": "add",
//!                                                 "detail": "...", "default": false}]}}}}}},
//!   "releases": [{"name": "5", "types": {"todo": 2}, "status": "current"}],
//!   "defaultRelease": "5",
//!   "storage": {"todo": {"version": 2, "strategy": "eager"}}
//! }
//! ```
//!
//! Loading a manifest runs every check a folder load runs: lenses are compiled, schemas are
//! derived again and must equal the published ones, so a manifest produced by a lens engine
//! that derives differently is refused rather than silently mistranslated.
//!
//! **`analysis` is informative and not read back.** It is derived data: a reader that loads
//! the manifest has compiled the lenses and recomputes it ([`SchemaSet::lens_analysis`],
//! [`SchemaSet::loss`]) rather than trusting a copy that another engine (or another version of
//! this one, with a finer analysis) wrote. It is published for readers that do not run a lens
//! engine. On read it must be a map; its content is not checked, so a newer mutatis may add to
//! it freely.
//!
//! **Format versioning.** `mutatisManifest` is the format number ([`MANIFEST_VERSION`]). A
//! manifest of this format is read strictly: an unknown key is an error naming it. A manifest
//! of a higher format (from a newer mutatis) is read if every field in it is one this reader
//! knows (a newer writer that used nothing new); otherwise it is refused with
//! [`ErrorKind::NewerManifest`], which lists every unknown field by JSON pointer and key, since
//! reading on would silently drop what they say. A missing or non-integer marker, or format 0,
//! is [`ErrorKind::ManifestFormat`].

use std::collections::BTreeMap;

use mutatis_lens::{pointer, Transforms};
use serde_json::{json, Map, Value};

use crate::error::{ErrorKind, SchemaError};
use crate::loss::analyse_version;
use crate::parse::{self, Source, SETTINGS_KEYS};
use crate::release::Release;
use crate::set::{SchemaSet, UnnamedRelease};

/// The manifest format this crate writes and reads (the `mutatisManifest` marker).
pub const MANIFEST_VERSION: u64 = 1;

/// The key of the format marker.
const FORMAT_KEY: &str = "mutatisManifest";

/// The key of a version's (informative) lens analysis.
const ANALYSIS_KEY: &str = "analysis";

/// The fields of format [`MANIFEST_VERSION`], where they may appear. Used to name the fields of
/// a newer manifest that this reader does not know; the parser's own key checks stay the
/// authority for this format (a test keeps the two in step with what [`SchemaSet::manifest`]
/// writes).
const TOP_KEYS: &[&str] = &[
    FORMAT_KEY,
    "name",
    "description",
    "types",
    "releases",
    "defaultRelease",
    "storage",
];
const TYPE_KEYS: &[&str] = &["description", "versions"];
const VERSION_KEYS: &[&str] = &["description", "from", "lens", "schema", ANALYSIS_KEY];
const RELEASE_KEYS: &[&str] = &["name", "types", "status", "sunset", "deprecated"];
const STORAGE_KEYS: &[&str] = &["version", "strategy", "history"];

impl UnnamedRelease<'_> {
    /// The `defaultRelease` member, as the manifest and a node's `GET /meta` publish it: a
    /// release name, or `{"detect": "body", "fallback"?}`.
    pub fn to_json(&self) -> Value {
        match self {
            UnnamedRelease::Fixed(r) => json!(r.name),
            UnnamedRelease::Detect { fallback: Some(r) } => {
                json!({"detect": "body", "fallback": r.name})
            }
            UnnamedRelease::Detect { fallback: None } => json!({"detect": "body"}),
        }
    }
}

impl SchemaSet {
    /// The machine-readable publication of this schema set.
    pub fn manifest(&self) -> Value {
        let mut out = Map::new();
        out.insert(FORMAT_KEY.into(), json!(MANIFEST_VERSION));
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
                // The version exists (it is being iterated), so the analysis cannot fail; a
                // version without a lens has none.
                if let Ok(Some(analysis)) = analyse_version(self, ty, def.version) {
                    v.insert(ANALYSIS_KEY.into(), analysis.to_json());
                }
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
        let releases: Vec<Value> = self.releases.iter().map(Release::to_json).collect();
        out.insert("releases".into(), Value::Array(releases));
        out.insert("defaultRelease".into(), self.unnamed_release().to_json());
        let storage: Map<String, Value> = self
            .storage
            .iter()
            .map(|(t, s)| (t.clone(), s.to_json()))
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
        let format_v = map.get(FORMAT_KEY).ok_or_else(|| {
            src.err(
                ErrorKind::ManifestFormat {
                    found: format!("nothing (no `{FORMAT_KEY}`: not a mutatis manifest)"),
                    known: MANIFEST_VERSION,
                },
                "",
            )
        })?;
        let format = format_v.as_u64().filter(|&f| f >= 1).ok_or_else(|| {
            src.err(
                ErrorKind::ManifestFormat {
                    found: format_v.to_string(),
                    known: MANIFEST_VERSION,
                },
                &pointer::push("", FORMAT_KEY),
            )
        })?;
        if format > MANIFEST_VERSION {
            let mut fields = Vec::new();
            unknown_fields(map, &mut fields);
            if let Some((first, _)) = fields.first() {
                let first = first.clone();
                return Err(src.err(
                    ErrorKind::NewerManifest {
                        found: format,
                        known: MANIFEST_VERSION,
                        fields,
                    },
                    &first,
                ));
            }
        }
        let types_v = src.required(map, "", "types")?;
        let mut types = BTreeMap::new();
        for (name, body) in src.object(types_v, "/types", "`types`")? {
            let at = pointer::push("/types", name);
            let body = without_analysis(body, &at, src)?;
            let ty = parse::parse_type(&body, &at, src, Some(name), None, transforms)?;
            types.insert(ty.name.clone(), ty);
        }
        let mut allowed: Vec<&str> = SETTINGS_KEYS.to_vec();
        allowed.extend([FORMAT_KEY, "types"]);
        let settings = parse::parse_settings(manifest, src, &types, &allowed)?;
        Ok(parse::assemble(settings, types, transforms))
    }
}

/// A type's manifest entry without the versions' `analysis` maps (informative, not read back;
/// see the module docs), which the type parser does not know. Each must be a map.
fn without_analysis(body: &Value, at: &str, src: Source<'_>) -> Result<Value, SchemaError> {
    let mut body = body.clone();
    if let Some(Value::Object(versions)) = body.get_mut("versions") {
        for (key, version) in versions.iter_mut() {
            if let Value::Object(v) = version {
                if let Some(analysis) = v.shift_remove(ANALYSIS_KEY) {
                    let vat = pointer::push(&pointer::push(at, "versions"), key);
                    src.object(&analysis, &pointer::push(&vat, ANALYSIS_KEY), "`analysis`")?;
                }
            }
        }
    }
    Ok(body)
}

/// Every field of `manifest` that format [`MANIFEST_VERSION`] does not have, as (JSON pointer,
/// key), in document order. Schemas, lenses and analyses are not entered: their content is
/// checked by their own rules.
fn unknown_fields(manifest: &Map<String, Value>, out: &mut Vec<(String, String)>) {
    check_keys(manifest, "", TOP_KEYS, out);
    if let Some(Value::Object(types)) = manifest.get("types") {
        for (name, ty) in types {
            let tat = pointer::push("/types", name);
            let Value::Object(ty) = ty else { continue };
            check_keys(ty, &tat, TYPE_KEYS, out);
            let Some(Value::Object(versions)) = ty.get("versions") else {
                continue;
            };
            for (key, v) in versions {
                if let Value::Object(v) = v {
                    let vat = pointer::push(&pointer::push(&tat, "versions"), key);
                    check_keys(v, &vat, VERSION_KEYS, out);
                }
            }
        }
    }
    if let Some(Value::Array(releases)) = manifest.get("releases") {
        for (i, r) in releases.iter().enumerate() {
            if let Value::Object(r) = r {
                check_keys(r, &pointer::push_index("/releases", i), RELEASE_KEYS, out);
            }
        }
    }
    if let Some(Value::Object(storage)) = manifest.get("storage") {
        for (name, s) in storage {
            if let Value::Object(s) = s {
                check_keys(s, &pointer::push("/storage", name), STORAGE_KEYS, out);
            }
        }
    }
}

fn check_keys(map: &Map<String, Value>, at: &str, known: &[&str], out: &mut Vec<(String, String)>) {
    for key in map.keys() {
        if !known.contains(&key.as_str()) {
            out.push((pointer::push(at, key), key.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn set() -> SchemaSet {
        let files = vec![
            (
                PathBuf::from("mutatis.yaml"),
                "name: a\ndescription: d\ndefaultRelease: '2'\nreleases:\n  - {name: '1', types: {t: 1}, status: deprecated, sunset: 2030-01-01}\n  - {name: '2', types: {t: 2}, status: current}\nstorage: {t: {version: 2, strategy: eager}}\n".to_owned(),
            ),
            (
                PathBuf::from("types/t.yaml"),
                "type: t\ndescription: d\nversions:\n  1:\n    description: d\n    schema: {type: object, properties: {a: {type: string}}}\n  2:\n    from: 1\n    lens: [{add: {name: b, type: integer}}]\n".to_owned(),
            ),
        ];
        SchemaSet::from_sources(files).unwrap()
    }

    #[test]
    fn every_field_the_writer_emits_is_known() {
        let m = set().manifest();
        let mut fields = Vec::new();
        unknown_fields(m.as_object().unwrap(), &mut fields);
        assert!(fields.is_empty(), "{fields:?}");
        // The fixture uses every optional key, so the lists are exercised, not vacuous.
        assert!(m["types"]["t"]["versions"]["2"].get(ANALYSIS_KEY).is_some());
        assert!(m["releases"][0].get("sunset").is_some());
    }

    #[test]
    fn a_newer_manifest_with_only_known_fields_is_read() {
        let mut m = set().manifest();
        m[FORMAT_KEY] = json!(MANIFEST_VERSION + 1);
        assert!(SchemaSet::from_manifest(&m).is_ok());
    }
}
