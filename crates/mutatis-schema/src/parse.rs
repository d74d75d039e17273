//! Reading a schema set from its files (or a manifest) into a checked [`SchemaSet`].
//!
//! Every check that can be made when the set is loaded is made here, so that a running node
//! never discovers a broken lens on a live request: keys are checked against the format, every
//! lens is parsed and compiled both ways, every version's schema is derived (and compared with
//! the one written out, if any) and compiled into a validator, and every release and storage
//! entry is checked against the types and versions it names.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::RwLock;

use mutatis_lens::yaml::{parse_yaml, SourceMap};
use mutatis_lens::{pointer, Direction, Lens, LensError, Plan, Transforms};
use serde_json::{Map, Value};

use crate::diff::differences;
use crate::error::{ErrorKind, SchemaError};
use crate::graph::VersionGraph;
use crate::release::{check_date, Release, ReleaseStatus, Storage, Strategy};
use crate::set::{list, SchemaSet, TypeDef, VersionDef};
use crate::validate;

/// The settings file at the root of a schema-set folder.
pub const SETTINGS_FILE: &str = "mutatis.yaml";
/// The folder (inside the schema-set folder) that holds one file per type.
pub const TYPES_DIR: &str = "types";
/// The extensions of type and lens files.
pub const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

const TYPE_FILE_KEYS: &[&str] = &["type", "description", "versions"];
const MANIFEST_TYPE_KEYS: &[&str] = &["description", "versions"];
const VERSION_KEYS: &[&str] = &["schema", "lens", "lensFile", "from", "description"];
pub(crate) const SETTINGS_KEYS: &[&str] = &[
    "name",
    "description",
    "releases",
    "storage",
    "defaultRelease",
];
const RELEASE_KEYS: &[&str] = &["name", "types", "status", "sunset", "deprecated"];
const STORAGE_KEYS: &[&str] = &["version", "strategy", "history"];

/// Files by their path relative to the schema-set folder (normalised).
pub(crate) type Files = BTreeMap<PathBuf, String>;

/// Where the values being read came from, so that errors can say so.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    pub file: Option<&'a Path>,
    pub map: Option<&'a SourceMap>,
    pub type_name: Option<&'a str>,
    pub version: Option<u32>,
}

impl<'a> Source<'a> {
    pub fn new(file: Option<&'a Path>, map: Option<&'a SourceMap>) -> Self {
        Source {
            file,
            map,
            type_name: None,
            version: None,
        }
    }

    fn with_type(self, type_name: &'a str) -> Self {
        Source {
            type_name: Some(type_name),
            ..self
        }
    }

    fn with_version(self, version: u32) -> Self {
        Source {
            version: Some(version),
            ..self
        }
    }

    /// An error of `kind` at `pointer`, with everything this source knows.
    pub fn err(&self, kind: ErrorKind, pointer: &str) -> SchemaError {
        let mut e = SchemaError::new(kind).at_pointer(pointer);
        if let Some(file) = self.file {
            e = e.in_file(file);
        }
        if let Some((line, column)) = self.map.and_then(|m| m.locate(pointer)) {
            e = e.at_line(line, column);
        }
        if let Some(t) = self.type_name {
            e = e.for_type(t);
        }
        if let Some(v) = self.version {
            e = e.for_version(v);
        }
        e
    }

    fn shape(&self, pointer: &str, message: String) -> SchemaError {
        self.err(ErrorKind::Shape(message), pointer)
    }

    pub fn object<'v>(
        &self,
        value: &'v Value,
        at: &str,
        what: &str,
    ) -> Result<&'v Map<String, Value>, SchemaError> {
        match value {
            Value::Object(m) => Ok(m),
            other => Err(self.shape(
                at,
                format!("{what} must be a map, found {}", json_type(other)),
            )),
        }
    }

    /// Reject keys outside `allowed`.
    pub fn keys(
        &self,
        map: &Map<String, Value>,
        at: &str,
        allowed: &[&str],
    ) -> Result<(), SchemaError> {
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(self.err(
                    ErrorKind::UnknownKey {
                        key: key.clone(),
                        expected: allowed.join(", "),
                    },
                    &pointer::push(at, key),
                ));
            }
        }
        Ok(())
    }

    pub fn required<'v>(
        &self,
        map: &'v Map<String, Value>,
        at: &str,
        key: &'static str,
    ) -> Result<&'v Value, SchemaError> {
        map.get(key)
            .ok_or_else(|| self.err(ErrorKind::MissingKey { key }, at))
    }

    pub fn string(&self, value: &Value, at: &str, what: &str) -> Result<String, SchemaError> {
        match value {
            Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
            Value::String(_) => Err(self.shape(at, format!("{what} must not be empty"))),
            other => Err(self.shape(
                at,
                format!("{what} must be a string, found {}", json_type(other)),
            )),
        }
    }

    /// A name used in URLs and headers (a type or a release): letters, digits, `_`, `.`, `-`.
    /// A YAML integer (`name: 5`) is taken as its digits.
    pub fn name(&self, value: &Value, at: &str, what: &str) -> Result<String, SchemaError> {
        let name = match value {
            Value::Number(n) if n.is_u64() => n.to_string(),
            other => self.string(other, at, what)?,
        };
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(self.shape(
                at,
                format!("{what} `{name}` may hold only letters, digits, `_`, `.` and `-`"),
            ));
        }
        Ok(name)
    }

    /// A version written as a value (`from: 1`, `types: {todo: 1}`).
    pub fn version_value(&self, value: &Value, at: &str) -> Result<u32, SchemaError> {
        value
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .filter(|&v| v >= 1)
            .ok_or_else(|| {
                self.err(
                    ErrorKind::BadVersion {
                        found: value.to_string(),
                    },
                    at,
                )
            })
    }

    /// A version written as a map key (`versions: {1: …}`): digits, no leading zero.
    fn version_key(&self, key: &str, at: &str) -> Result<u32, SchemaError> {
        let canonical =
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) && !key.starts_with('0');
        canonical
            .then(|| key.parse::<u32>().ok())
            .flatten()
            .ok_or_else(|| {
                self.err(
                    ErrorKind::BadVersion {
                        found: key.to_owned(),
                    },
                    at,
                )
            })
    }
}

/// A version as read, before the type is checked as a whole.
struct RawVersion {
    version: u32,
    at: String,
    from: Option<(u32, String)>,
    lens: Option<RawLens>,
    schema: Option<(Value, String)>,
    description: Option<String>,
}

/// A lens as read.
struct RawLens {
    lens: Lens,
    /// Prefix of op pointers within the lens's own numbering (`/lens` for a Cambria file).
    label: String,
    site: LensSite,
}

/// Where a lens is written, to locate its errors.
struct LensSite {
    /// Pointer, within the file that holds it, of the node the op pointers are relative to.
    prefix: String,
    /// The lens file it came from (with its source map), or `None` when inline.
    file: Option<(PathBuf, SourceMap)>,
}

impl LensSite {
    /// The source that locates this lens's errors (the lens file's, or the type file's).
    fn source<'a>(&'a self, type_src: Source<'a>) -> Source<'a> {
        match &self.file {
            Some((path, map)) => Source {
                file: Some(path),
                map: Some(map),
                ..type_src
            },
            None => type_src,
        }
    }

    /// A lens error, located in the file that holds the lens.
    fn err(
        &self,
        type_src: Source<'_>,
        kind: impl FnOnce(LensError) -> ErrorKind,
        e: LensError,
    ) -> SchemaError {
        let at = format!(
            "{}{}",
            self.prefix,
            lens_error_pointer(&e).unwrap_or_default()
        );
        self.source(type_src).err(kind(e), &at)
    }
}

/// The pointer (into a lens) that a lens error names, if any.
pub(crate) fn lens_error_pointer(e: &LensError) -> Option<String> {
    match e {
        LensError::InvalidInput { at, .. } => Some(at.clone()),
        LensError::AtLine { source, .. } => lens_error_pointer(source),
        other => other.op().map(str::to_owned),
    }
}

/// A YAML syntax error in `file`, at the line the parser gave.
pub(crate) fn yaml_error(file: Option<&Path>, e: LensError) -> SchemaError {
    // The parser's message is kept without its own location prefix: the error's location
    // already says file, line and column.
    let (message, line, column) = match e {
        LensError::Syntax {
            message,
            line,
            column,
        } => (message, line, column),
        LensError::TooLarge {
            reason,
            line,
            column,
        } => (reason, Some(line), Some(column)),
        other => (other.to_string(), None, None),
    };
    let mut err = SchemaError::new(ErrorKind::Yaml { message });
    if let Some(f) = file {
        err = err.in_file(f);
    }
    if let Some(l) = line {
        err = err.at_line(l, column.unwrap_or(1));
    }
    err
}

/// Read a type: from a type file (`at` = `""`, name from its `type` key) or from a manifest
/// (`at` = `/types/NAME`, name given). `files` is `None` for a manifest, where lenses are inline.
pub(crate) fn parse_type(
    value: &Value,
    at: &str,
    src: Source<'_>,
    given_name: Option<&str>,
    files: Option<&Files>,
    transforms: &Transforms,
) -> Result<TypeDef, SchemaError> {
    let map = src.object(value, at, "a type")?;
    let name = match given_name {
        Some(n) => {
            src.keys(map, at, MANIFEST_TYPE_KEYS)?;
            src.name(&Value::String(n.to_owned()), at, "a type name")?
        }
        None => {
            src.keys(map, at, TYPE_FILE_KEYS)?;
            let t = src.required(map, at, "type")?;
            src.name(t, &pointer::push(at, "type"), "a type name")?
        }
    };
    let tsrc = src.with_type(&name);
    let description = optional_string(tsrc, map, at, "description")?;
    let versions_at = pointer::push(at, "versions");
    let versions = tsrc.object(
        tsrc.required(map, at, "versions")?,
        &versions_at,
        "`versions`",
    )?;
    if versions.is_empty() {
        return Err(tsrc.err(ErrorKind::NoVersions, &versions_at));
    }
    let mut raw = BTreeMap::new();
    for (key, body) in versions {
        let vat = pointer::push(&versions_at, key);
        let version = tsrc.version_key(key, &vat)?;
        let v = parse_version(body, &vat, tsrc.with_version(version), version, files)?;
        raw.insert(version, v);
    }
    build_type(name.clone(), raw, &versions_at, tsrc, transforms).map(|mut t| {
        t.file = src.file.map(Path::to_path_buf);
        t.description = description;
        t
    })
}

fn optional_string(
    src: Source<'_>,
    map: &Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<Option<String>, SchemaError> {
    map.get(key)
        .map(|v| src.string(v, &pointer::push(at, key), &format!("`{key}`")))
        .transpose()
}

fn parse_version(
    body: &Value,
    at: &str,
    src: Source<'_>,
    version: u32,
    files: Option<&Files>,
) -> Result<RawVersion, SchemaError> {
    let map = src.object(body, at, "a version")?;
    src.keys(map, at, VERSION_KEYS)?;
    let from = match map.get("from") {
        Some(v) => {
            let fat = pointer::push(at, "from");
            Some((src.version_value(v, &fat)?, fat))
        }
        None => None,
    };
    let lens = match (map.get("lens"), map.get("lensFile")) {
        (Some(_), Some(_)) => {
            return Err(src.shape(
                &pointer::push(at, "lensFile"),
                "give either `lens` or `lensFile`, not both".into(),
            ))
        }
        (Some(ops), None) => {
            let site = LensSite {
                prefix: pointer::push(at, "lens"),
                file: None,
            };
            let lens =
                Lens::from_ops_json(ops, "").map_err(|e| site.err(src, ErrorKind::Lens, e))?;
            Some(RawLens {
                lens,
                label: String::new(),
                site,
            })
        }
        (None, Some(path)) => Some(read_lens_file(
            path,
            &pointer::push(at, "lensFile"),
            src,
            files,
        )?),
        (None, None) => None,
    };
    let schema = map
        .get("schema")
        .map(|s| (s.clone(), pointer::push(at, "schema")));
    Ok(RawVersion {
        version,
        at: at.to_owned(),
        from,
        lens,
        schema,
        description: optional_string(src, map, at, "description")?,
    })
}

/// Read a `lensFile: path` (relative to the type file) as a lens file: mutatis's own form or
/// Cambria's (`schemaName` + `lens`), exactly as [`Lens::from_file_str`] reads it.
fn read_lens_file(
    path: &Value,
    at: &str,
    src: Source<'_>,
    files: Option<&Files>,
) -> Result<RawLens, SchemaError> {
    let written = src.string(path, at, "`lensFile`")?;
    let Some(files) = files else {
        return Err(src.shape(
            at,
            "a manifest carries every lens inline; `lensFile` belongs in a schema-set folder"
                .into(),
        ));
    };
    let base = src.file.and_then(Path::parent).unwrap_or(Path::new(""));
    let resolved = normalize(&base.join(&written)).ok_or_else(|| {
        src.err(
            ErrorKind::MissingFile {
                file: written.clone(),
                reason: "a lens file must be inside the schema-set folder".into(),
            },
            at,
        )
    })?;
    let text = files.get(&resolved).ok_or_else(|| {
        src.err(
            ErrorKind::MissingFile {
                file: resolved.display().to_string(),
                reason: format!(
                    "named by `lensFile: {written}` (paths are relative to the type file)"
                ),
            },
            at,
        )
    })?;
    let (value, map) = parse_yaml(text).map_err(|e| {
        let mut err = yaml_error(Some(&resolved), e);
        if let Some(t) = src.type_name {
            err = err.for_type(t);
        }
        if let Some(v) = src.version {
            err = err.for_version(v);
        }
        err
    })?;
    let site = LensSite {
        prefix: String::new(),
        file: Some((resolved, map)),
    };
    let lens = Lens::from_file_json(&value).map_err(|e| site.err(src, ErrorKind::Lens, e))?;
    // `from_file_json` numbers the ops of a `{lens: [...]}` file under `/lens`.
    let label = if value.is_object() {
        "/lens".into()
    } else {
        String::new()
    };
    Ok(RawLens { lens, label, site })
}

/// Resolve `.` and `..` without touching the file system; `None` if the path climbs out of
/// the schema-set folder or is absolute.
pub(crate) fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Check a type as a whole and derive its schemas: the lowest version is written out, every
/// other version is reached by its lens from its parent (`from`, or the previous version).
fn build_type(
    name: String,
    raw: BTreeMap<u32, RawVersion>,
    versions_at: &str,
    src: Source<'_>,
    transforms: &Transforms,
) -> Result<TypeDef, SchemaError> {
    let known = || list(raw.keys());
    let Some((&root, root_raw)) = raw.iter().next() else {
        return Err(src.err(ErrorKind::NoVersions, versions_at));
    };
    if root_raw.schema.is_none() || root_raw.lens.is_some() || root_raw.from.is_some() {
        return Err(src
            .with_version(root)
            .err(ErrorKind::RootNeedsSchema { version: root }, &root_raw.at));
    }

    // Each version's parent: `from`, or the previous existing version.
    let mut parent: BTreeMap<u32, u32> = BTreeMap::new();
    let mut previous = root;
    for (&v, r) in raw.iter().skip(1) {
        let vsrc = src.with_version(v);
        let p = match &r.from {
            Some((f, fat)) => {
                if *f == v || !raw.contains_key(f) {
                    return Err(vsrc.err(
                        ErrorKind::BadFrom {
                            type_name: name.clone(),
                            from: *f,
                            known: known(),
                        },
                        fat,
                    ));
                }
                *f
            }
            None => previous,
        };
        if r.lens.is_none() {
            return Err(vsrc.err(
                ErrorKind::MissingLens {
                    version: v,
                    from: p,
                },
                &r.at,
            ));
        }
        parent.insert(v, p);
        previous = v;
    }
    check_cycles(&parent, &raw, src)?;

    // Derive parents before children: order by depth below the root.
    let depth = |mut v: u32| {
        let mut d = 0usize;
        while let Some(&p) = parent.get(&v) {
            d += 1;
            v = p;
        }
        d
    };
    let mut order: Vec<u32> = raw.keys().copied().collect();
    order.sort_by_key(|&v| (depth(v), v));

    let mut graph = VersionGraph::new();
    for &v in raw.keys() {
        graph.add_node(v);
    }
    let mut defs: BTreeMap<u32, VersionDef> = BTreeMap::new();
    let mut raw = raw;
    for v in order {
        let Some(r) = raw.remove(&v) else { continue };
        let vsrc = src.with_version(v);
        let def = match parent.get(&v) {
            None => root_version(r, vsrc)?,
            Some(&p) => {
                let Some(parent_schema) = defs.get(&p).map(|d| d.schema.clone()) else {
                    // Parents come first in `order`; reaching here would be a loader defect.
                    return Err(vsrc.err(
                        ErrorKind::MissingLens {
                            version: v,
                            from: p,
                        },
                        &r.at,
                    ));
                };
                // Each version has one parent and the parents form no cycle, so this edge
                // is new; the check stays so that a defect shows as an error.
                graph.add_edge(p, v, ()).map_err(|_| {
                    vsrc.err(
                        ErrorKind::DuplicateEdge {
                            from: p.to_string(),
                            to: v.to_string(),
                        },
                        &r.at,
                    )
                })?;
                derived_version(r, p, &parent_schema, vsrc, transforms)?
            }
        };
        defs.insert(v, def);
    }
    Ok(TypeDef {
        name,
        file: None,
        description: None,
        versions: defs,
        graph,
        plans: RwLock::new(HashMap::new()),
    })
}

/// Report versions whose `from` links never reach the lowest version.
fn check_cycles(
    parent: &BTreeMap<u32, u32>,
    raw: &BTreeMap<u32, RawVersion>,
    src: Source<'_>,
) -> Result<(), SchemaError> {
    for &start in parent.keys() {
        let mut path = vec![start];
        let mut v = start;
        while let Some(&p) = parent.get(&v) {
            if let Some(i) = path.iter().position(|&x| x == p) {
                let cycle = &path[i..];
                let first = cycle.iter().copied().min().unwrap_or(start);
                let text: Vec<String> = cycle
                    .iter()
                    .map(|c| format!("{c} from {}", parent.get(c).copied().unwrap_or(*c)))
                    .collect();
                let at = raw
                    .get(&first)
                    .and_then(|r| r.from.as_ref().map(|(_, fat)| fat.clone()))
                    .unwrap_or_default();
                return Err(src.with_version(first).err(
                    ErrorKind::Cycle {
                        cycle: text.join(", "),
                    },
                    &at,
                ));
            }
            path.push(p);
            v = p;
        }
    }
    Ok(())
}

fn root_version(r: RawVersion, src: Source<'_>) -> Result<VersionDef, SchemaError> {
    let Some((schema, sat)) = r.schema else {
        return Err(src.err(ErrorKind::RootNeedsSchema { version: r.version }, &r.at));
    };
    let validator = compile_schema(&schema, &sat, src)?;
    Ok(VersionDef {
        version: r.version,
        from: None,
        lens: None,
        lens_file: None,
        schema,
        schema_written: true,
        description: r.description,
        validator,
    })
}

fn derived_version(
    r: RawVersion,
    parent: u32,
    parent_schema: &Value,
    src: Source<'_>,
    transforms: &Transforms,
) -> Result<VersionDef, SchemaError> {
    let Some(raw_lens) = r.lens else {
        return Err(src.err(
            ErrorKind::MissingLens {
                version: r.version,
                from: parent,
            },
            &r.at,
        ));
    };
    // Compiling builds both directions, so an op with no reverse fails here, at load.
    let plan = Plan::compose(
        [(raw_lens.label.as_str(), &raw_lens.lens, Direction::Forward)],
        transforms,
    )
    .map_err(|e| raw_lens.site.err(src, ErrorKind::Lens, e))?;
    let derived = plan.translate_schema(parent_schema).map_err(|e| {
        raw_lens.site.err(
            src,
            |source| ErrorKind::LensMismatch {
                from: parent,
                source,
            },
            e,
        )
    })?;
    let schema_written = r.schema.is_some();
    if let Some((written, sat)) = &r.schema {
        compile_schema(written, sat, src)?;
        let diffs = differences(written, &derived);
        if let Some(first) = diffs.first() {
            let at = format!("{sat}{first}");
            return Err(src.err(ErrorKind::SchemaDiffers { pointers: diffs }, &at));
        }
    }
    // A derived schema that does not compile comes from the lens (an `add` with a bad keyword),
    // so the error points at the lens.
    let validator = compile_schema(&derived, &raw_lens.site.prefix, raw_lens.site.source(src))?;
    Ok(VersionDef {
        version: r.version,
        from: Some(parent),
        lens: Some(raw_lens.lens),
        lens_file: raw_lens.site.file.map(|(p, _)| p),
        schema: derived,
        schema_written,
        description: r.description,
        validator,
    })
}

fn compile_schema(
    schema: &Value,
    at: &str,
    src: Source<'_>,
) -> Result<jsonschema::Validator, SchemaError> {
    validate::compile(schema).map_err(|(inner, reason)| {
        src.err(ErrorKind::InvalidSchema { reason }, &format!("{at}{inner}"))
    })
}

/// The settings of a schema set (`mutatis.yaml`, or the same keys at the top of a manifest).
pub(crate) struct Settings {
    pub name: String,
    pub description: Option<String>,
    pub releases: Vec<Release>,
    pub current: usize,
    pub default: usize,
    /// `defaultRelease: {detect: body}`: a client naming no release is served by detection.
    pub detect: bool,
    /// With `detect`: the release for requests without a body, if the set names one.
    pub fallback: Option<usize>,
    pub storage: BTreeMap<String, Storage>,
}

/// Read and check the settings against the loaded types. `allowed` is the key set of the
/// enclosing document (`mutatis.yaml`, or a manifest, which has more keys).
pub(crate) fn parse_settings(
    value: &Value,
    src: Source<'_>,
    types: &BTreeMap<String, TypeDef>,
    allowed: &[&str],
) -> Result<Settings, SchemaError> {
    let map = src.object(value, "", "the settings file")?;
    src.keys(map, "", allowed)?;
    let name = src.string(src.required(map, "", "name")?, "/name", "`name`")?;
    let description = optional_string(src, map, "", "description")?;

    let releases_v = src.required(map, "", "releases")?;
    let Value::Array(items) = releases_v else {
        return Err(src.shape(
            "/releases",
            format!("`releases` must be a list, found {}", json_type(releases_v)),
        ));
    };
    let mut releases: Vec<Release> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = pointer::push_index("/releases", i);
        let release = parse_release(item, &at, src, types)?;
        if releases.iter().any(|r| r.name == release.name) {
            return Err(src.err(
                ErrorKind::DuplicateRelease { name: release.name },
                &pointer::push(&at, "name"),
            ));
        }
        releases.push(release);
    }
    let currents: Vec<usize> = releases
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == ReleaseStatus::Current)
        .map(|(i, _)| i)
        .collect();
    let [current] = currents[..] else {
        return Err(src.err(
            ErrorKind::CurrentCount {
                count: currents.len(),
            },
            "/releases",
        ));
    };

    let served_release = |v: &Value, at: &str| -> Result<usize, SchemaError> {
        let name = src.name(v, at, "`defaultRelease`")?;
        let Some(i) = releases.iter().position(|r| r.name == name) else {
            return Err(src.err(
                ErrorKind::UnknownRelease {
                    name,
                    known: list(releases.iter().map(|r| &r.name)),
                },
                at,
            ));
        };
        if !releases[i].status.is_served() {
            return Err(src.shape(
                at,
                format!("`defaultRelease` names release `{name}`, which is unsupported"),
            ));
        }
        Ok(i)
    };
    let (default, detect, fallback) = match map.get("defaultRelease") {
        None => (current, false, None),
        // `{detect: body, fallback: R}`: detection from the body's shape.
        Some(Value::Object(rule)) => {
            for key in rule.keys() {
                if key != "detect" && key != "fallback" {
                    return Err(src.shape(
                        &pointer::push("/defaultRelease", key),
                        format!(
                            "unknown key `{key}` in `defaultRelease` (expected `detect`, `fallback`)"
                        ),
                    ));
                }
            }
            match rule.get("detect") {
                Some(Value::String(s)) if s == "body" => {}
                _ => {
                    return Err(src.shape(
                        "/defaultRelease/detect",
                        "`defaultRelease` as a map needs `detect: body` (detection from the \
                         request body's shape)"
                            .to_owned(),
                    ))
                }
            }
            let fallback = match rule.get("fallback") {
                Some(v) => Some(served_release(v, "/defaultRelease/fallback")?),
                None => None,
            };
            (fallback.unwrap_or(current), true, fallback)
        }
        Some(v) => (served_release(v, "/defaultRelease")?, false, None),
    };

    let mut storage = BTreeMap::new();
    if let Some(v) = map.get("storage") {
        let smap = src.object(v, "/storage", "`storage`")?;
        for (type_name, entry) in smap {
            let at = pointer::push("/storage", type_name);
            let ty = known_type(types, type_name, &at, src)?;
            storage.insert(type_name.clone(), parse_storage(entry, &at, src, ty)?);
        }
    }
    // A type with no storage entry is kept in the version the current release speaks (or its
    // highest version if the current release leaves it out), lazily: nothing is migrated in
    // the background unless the schema set asks for it.
    for (type_name, ty) in types {
        if storage.contains_key(type_name) {
            continue;
        }
        let version = releases[current]
            .version_of(type_name)
            .or_else(|| ty.highest().map(|d| d.version));
        if let Some(version) = version {
            storage.insert(type_name.clone(), Storage::new(version, Strategy::Lazy));
        }
    }
    Ok(Settings {
        name,
        description,
        releases,
        current,
        default,
        detect,
        fallback,
        storage,
    })
}

fn known_type<'t>(
    types: &'t BTreeMap<String, TypeDef>,
    type_name: &str,
    at: &str,
    src: Source<'_>,
) -> Result<&'t TypeDef, SchemaError> {
    types.get(type_name).ok_or_else(|| {
        src.with_type(type_name).err(
            ErrorKind::UnknownType {
                name: type_name.to_owned(),
                known: list(types.keys()),
            },
            at,
        )
    })
}

fn known_version(
    ty: &TypeDef,
    value: &Value,
    at: &str,
    src: Source<'_>,
) -> Result<u32, SchemaError> {
    let tsrc = src.with_type(&ty.name);
    let v = tsrc.version_value(value, at)?;
    if ty.versions.contains_key(&v) {
        Ok(v)
    } else {
        Err(tsrc.with_version(v).err(
            ErrorKind::UnknownVersion {
                type_name: ty.name.clone(),
                version: v,
                known: list(ty.versions.keys()),
            },
            at,
        ))
    }
}

fn parse_release(
    value: &Value,
    at: &str,
    src: Source<'_>,
    types: &BTreeMap<String, TypeDef>,
) -> Result<Release, SchemaError> {
    let map = src.object(value, at, "a release")?;
    src.keys(map, at, RELEASE_KEYS)?;
    let name = src.name(
        src.required(map, at, "name")?,
        &pointer::push(at, "name"),
        "a release name",
    )?;
    let status_at = pointer::push(at, "status");
    let status_v = src.required(map, at, "status")?;
    let status = status_v
        .as_str()
        .and_then(|s| s.parse::<ReleaseStatus>().ok())
        .ok_or_else(|| {
            src.shape(
                &status_at,
                format!(
                    "`status` must be one of {}, found {status_v}",
                    ReleaseStatus::NAMES
                ),
            )
        })?;
    let mut release_types = BTreeMap::new();
    if let Some(tv) = map.get("types") {
        let tat = pointer::push(at, "types");
        for (type_name, version) in src.object(tv, &tat, "`types`")? {
            let vat = pointer::push(&tat, type_name);
            let ty = known_type(types, type_name, &vat, src)?;
            release_types.insert(type_name.clone(), known_version(ty, version, &vat, src)?);
        }
    }
    // Both dates belong to deprecated releases only.
    let date_of = |key: &str| -> Result<Option<String>, SchemaError> {
        let Some(v) = map.get(key) else {
            return Ok(None);
        };
        let sat = pointer::push(at, key);
        if status != ReleaseStatus::Deprecated {
            return Err(src.err(
                ErrorKind::Sunset {
                    reason: format!(
                        "only a deprecated release has a `{key}` date; release `{name}` is {status}"
                    ),
                },
                &sat,
            ));
        }
        let date = src.string(v, &sat, &format!("`{key}`"))?;
        check_date(&date).map_err(|reason| src.err(ErrorKind::Sunset { reason }, &sat))?;
        Ok(Some(date))
    };
    let deprecated = date_of("deprecated")?;
    let sunset = match map.get("sunset") {
        None => None,
        Some(v) => {
            let sat = pointer::push(at, "sunset");
            if status != ReleaseStatus::Deprecated {
                return Err(src.err(
                    ErrorKind::Sunset {
                        reason: format!(
                            "only a deprecated release has a sunset; release `{name}` is {status}"
                        ),
                    },
                    &sat,
                ));
            }
            let date = src.string(v, &sat, "`sunset`")?;
            check_date(&date).map_err(|reason| src.err(ErrorKind::Sunset { reason }, &sat))?;
            Some(date)
        }
    };
    if let (Some(since), Some(until)) = (&deprecated, &sunset) {
        // `YYYY-MM-DD` compares as text in calendar order.
        if since > until {
            return Err(src.err(
                ErrorKind::Sunset {
                    reason: format!(
                        "release `{name}` is deprecated on {since}, after its sunset {until}"
                    ),
                },
                &pointer::push(at, "deprecated"),
            ));
        }
    }
    Ok(Release {
        name,
        types: release_types,
        status,
        sunset,
        deprecated,
    })
}

fn parse_storage(
    value: &Value,
    at: &str,
    src: Source<'_>,
    ty: &TypeDef,
) -> Result<Storage, SchemaError> {
    let tsrc = src.with_type(&ty.name);
    let map = tsrc.object(value, at, "a storage entry")?;
    tsrc.keys(map, at, STORAGE_KEYS)?;
    let version = known_version(
        ty,
        tsrc.required(map, at, "version")?,
        &pointer::push(at, "version"),
        src,
    )?;
    let strategy = match map.get("strategy") {
        None => Strategy::Lazy,
        Some(v) => v
            .as_str()
            .and_then(|s| s.parse::<Strategy>().ok())
            .ok_or_else(|| {
                tsrc.shape(
                    &pointer::push(at, "strategy"),
                    format!("`strategy` must be one of {}, found {v}", Strategy::NAMES),
                )
            })?,
    };
    let history = match map.get("history") {
        None => Storage::DEFAULT_HISTORY,
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n <= Storage::MAX_HISTORY)
            .ok_or_else(|| {
                tsrc.shape(
                    &pointer::push(at, "history"),
                    format!(
                        "`history` is how many earlier revisions keep their bodies: a whole number from 0 to {}, found {v}",
                        Storage::MAX_HISTORY
                    ),
                )
            })?,
    };
    Ok(Storage {
        version,
        strategy,
        history,
    })
}

/// Load a schema set from its files (paths relative to the folder). Pure: the caller reads.
pub(crate) fn from_sources(
    files: Vec<(PathBuf, String)>,
    transforms: &Transforms,
) -> Result<SchemaSet, SchemaError> {
    let mut by_path: Files = BTreeMap::new();
    for (path, text) in files {
        // A path that climbs out of the folder cannot be named by anything; skip it.
        if let Some(p) = normalize(&path) {
            by_path.insert(p, text);
        }
    }
    let settings_path = PathBuf::from(SETTINGS_FILE);
    let Some(settings_text) = by_path.get(&settings_path) else {
        return Err(SchemaError::new(ErrorKind::MissingFile {
            file: SETTINGS_FILE.into(),
            reason: "a schema-set folder holds `mutatis.yaml` (name, releases, storage) and `types/*.yaml`".into(),
        }));
    };

    let mut types: BTreeMap<String, TypeDef> = BTreeMap::new();
    for (path, text) in &by_path {
        if !is_type_file(path) {
            continue;
        }
        let (value, map) = parse_yaml(text).map_err(|e| yaml_error(Some(path), e))?;
        let src = Source::new(Some(path), Some(&map));
        let ty = parse_type(&value, "", src, None, Some(&by_path), transforms)?;
        if let Some(other) = types.get(&ty.name) {
            let other = other
                .file
                .as_deref()
                .map(|f| f.display().to_string())
                .unwrap_or_default();
            return Err(src.with_type(&ty.name).err(
                ErrorKind::DuplicateType {
                    name: ty.name.clone(),
                    other,
                },
                "/type",
            ));
        }
        types.insert(ty.name.clone(), ty);
    }

    let (value, map) =
        parse_yaml(settings_text).map_err(|e| yaml_error(Some(&settings_path), e))?;
    let src = Source::new(Some(&settings_path), Some(&map));
    let settings = parse_settings(&value, src, &types, SETTINGS_KEYS)?;
    let mut set = assemble(settings, types, transforms);
    set.sources = Some(std::sync::Arc::new(by_path.into_iter().collect()));
    Ok(set)
}

pub(crate) fn assemble(
    settings: Settings,
    types: BTreeMap<String, TypeDef>,
    transforms: &Transforms,
) -> SchemaSet {
    SchemaSet {
        name: settings.name,
        description: settings.description,
        types,
        releases: settings.releases,
        current: settings.current,
        default: settings.default,
        detect: settings.detect,
        fallback: settings.fallback,
        storage: settings.storage,
        transforms: transforms.clone(),
        sources: None,
        as_of: None,
    }
}

/// `types/NAME.yaml` (or `.yml`, `.json`) directly inside the types folder.
fn is_type_file(path: &Path) -> bool {
    let in_types = path.parent() == Some(Path::new(TYPES_DIR));
    let ext_ok = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e));
    in_types && ext_ok
}

/// The JSON type name of a value, for error messages.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}
