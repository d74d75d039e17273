//! The loaded schema set: types, versions, lenses, releases, storage; and what is asked of it
//! at run time (schemas, plans, release lookups, validation).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use jsonschema::Validator;
use mutatis_lens::{Lens, Plan, Transforms};
use serde_json::Value;

use crate::error::{ErrorKind, SchemaError};
use crate::graph::VersionGraph;
use crate::release::{Release, ReleaseStatus, Storage};
use crate::validate::{self, ValidationIssue};

/// One version of a type: its schema and, above the lowest version, the lens that reaches it.
#[derive(Clone)]
pub struct VersionDef {
    pub(crate) version: u32,
    pub(crate) from: Option<u32>,
    pub(crate) lens: Option<Lens>,
    pub(crate) lens_file: Option<PathBuf>,
    pub(crate) schema: Value,
    pub(crate) schema_written: bool,
    pub(crate) description: Option<String>,
    pub(crate) validator: Validator,
}

impl fmt::Debug for VersionDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VersionDef")
            .field("version", &self.version)
            .field("from", &self.from)
            .field("lens", &self.lens)
            .field("lens_file", &self.lens_file)
            .field("schema", &self.schema)
            .field("schema_written", &self.schema_written)
            .finish_non_exhaustive()
    }
}

impl VersionDef {
    /// The version number.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The version this one's lens starts from (`None` for the lowest version).
    pub fn from(&self) -> Option<u32> {
        self.from
    }

    /// The lens from [`VersionDef::from`] to this version (`None` for the lowest version).
    pub fn lens(&self) -> Option<&Lens> {
        self.lens.as_ref()
    }

    /// The Cambria lens file the lens was read from, if it was not written inline.
    pub fn lens_file(&self) -> Option<&Path> {
        self.lens_file.as_deref()
    }

    /// The version's JSON Schema (written for the lowest version, derived for the others).
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// Whether the type file wrote this version's schema out (and the loader checked it).
    pub fn is_schema_written(&self) -> bool {
        self.schema_written
    }

    /// The version's description, if the type file gave one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Check a document against this version's schema.
    pub fn validate(&self, doc: &Value) -> Result<(), Vec<ValidationIssue>> {
        let issues = validate::issues(&self.validator, doc);
        if issues.is_empty() {
            Ok(())
        } else {
            Err(issues)
        }
    }
}

/// One type: its versions and the graph of lenses between them.
#[derive(Debug)]
pub struct TypeDef {
    pub(crate) name: String,
    pub(crate) file: Option<PathBuf>,
    pub(crate) description: Option<String>,
    pub(crate) versions: BTreeMap<u32, VersionDef>,
    /// Edges run from a version's `from` to the version; the payload is nothing because the
    /// lens lives in the target's [`VersionDef`].
    pub(crate) graph: VersionGraph<u32, ()>,
    /// Compiled plans by (from, to), built on first use.
    pub(crate) plans: RwLock<HashMap<(u32, u32), Arc<Plan>>>,
}

impl TypeDef {
    /// The type's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file the type was declared in (`None` when it came from a manifest).
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The type's description, if the type file gave one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The versions, lowest first.
    pub fn versions(&self) -> impl Iterator<Item = &VersionDef> {
        self.versions.values()
    }

    /// One version.
    pub fn version(&self, version: u32) -> Option<&VersionDef> {
        self.versions.get(&version)
    }

    /// The lowest version (whose schema everything else is derived from).
    pub fn lowest(&self) -> Option<&VersionDef> {
        self.versions.values().next()
    }

    /// The highest version.
    pub fn highest(&self) -> Option<&VersionDef> {
        self.versions.values().next_back()
    }

    /// The version graph (edges from each version's `from` to it).
    pub fn graph(&self) -> &VersionGraph<u32, ()> {
        &self.graph
    }

    pub(crate) fn get(&self, version: u32) -> Result<&VersionDef, SchemaError> {
        self.versions.get(&version).ok_or_else(|| {
            SchemaError::new(ErrorKind::UnknownVersion {
                type_name: self.name.clone(),
                version,
                known: list(self.versions.keys()),
            })
            .for_type(&self.name)
            .for_version(version)
        })
    }
}

/// A schema set: the single source of truth for a distributed app's data — its types, their
/// versions, the lenses between them, the releases clients announce and how each type is stored.
///
/// Load one with [`SchemaSet::load`] (a folder), [`SchemaSet::from_sources`] (the folder's files,
/// already read) or [`SchemaSet::from_manifest`] (what a node publishes). See the crate docs.
#[derive(Debug)]
pub struct SchemaSet {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) types: BTreeMap<String, TypeDef>,
    /// Oldest first, as declared.
    pub(crate) releases: Vec<Release>,
    /// Index into `releases` of the current release. Indexing with it cannot fail: a set is
    /// only built by `parse::assemble`, from indices the settings parser found in that list.
    pub(crate) current: usize,
    /// Index into `releases` of the default release (same invariant as `current`).
    pub(crate) default: usize,
    /// A client naming no release is served by detection from the body's shape.
    pub(crate) detect: bool,
    /// With `detect`: index of the release for requests without a body.
    pub(crate) fallback: Option<usize>,
    /// One entry per type (defaults filled in at load).
    pub(crate) storage: BTreeMap<String, Storage>,
    pub(crate) transforms: Transforms,
    /// The files the set was loaded from (not for a set read from a manifest): what
    /// [`SchemaSet::as_of_again`] loads again.
    pub(crate) sources: Option<std::sync::Arc<Vec<(std::path::PathBuf, String)>>>,
    /// The date release sunsets were applied for ([`SchemaSet::as_of`]).
    pub(crate) as_of: Option<String>,
}

/// The schema set's rule for a client that names no release (`defaultRelease`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnnamedRelease<'a> {
    /// Serve this release (`defaultRelease: "5"`, or the current release by default).
    Fixed(&'a Release),
    /// `defaultRelease: {detect: body, fallback: R}`: serve the newest served release whose
    /// schema the request body validates against. Detection that finds no candidate, or
    /// candidates that would store the body differently, is refused, never guessed. Requests
    /// without a body get `fallback`, or are refused when there is none.
    Detect {
        /// The release for requests without a body.
        fallback: Option<&'a Release>,
    },
}

impl SchemaSet {
    /// The schema set's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schema set's description, if `mutatis.yaml` gave one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The types, by name.
    pub fn types(&self) -> impl Iterator<Item = &TypeDef> {
        self.types.values()
    }

    /// One type.
    pub fn type_def(&self, name: &str) -> Result<&TypeDef, SchemaError> {
        self.types.get(name).ok_or_else(|| {
            SchemaError::new(ErrorKind::UnknownType {
                name: name.to_owned(),
                known: list(self.types.keys()),
            })
            .for_type(name)
        })
    }

    /// The versions of a type, lowest first.
    pub fn versions(&self, type_name: &str) -> Result<Vec<u32>, SchemaError> {
        Ok(self.type_def(type_name)?.versions.keys().copied().collect())
    }

    /// One version of a type.
    pub fn version(&self, type_name: &str, version: u32) -> Result<&VersionDef, SchemaError> {
        self.type_def(type_name)?.get(version)
    }

    /// The JSON Schema of `type_name@version`.
    pub fn schema(&self, type_name: &str, version: u32) -> Result<&Value, SchemaError> {
        Ok(&self.version(type_name, version)?.schema)
    }

    /// The transforms the lenses were compiled with.
    pub fn transforms(&self) -> &Transforms {
        &self.transforms
    }

    /// The compiled translation of `type_name` documents from version `from` to version `to`:
    /// the lenses along the shortest path between them, each walked forward or backward,
    /// composed and fused into one plan. Plans are built once and shared.
    pub fn plan(&self, type_name: &str, from: u32, to: u32) -> Result<Arc<Plan>, SchemaError> {
        let ty = self.type_def(type_name)?;
        ty.get(from)?;
        ty.get(to)?;
        let cached = ty
            .plans
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(from, to))
            .cloned();
        if let Some(plan) = cached {
            return Ok(plan);
        }
        let plan = Arc::new(self.build_plan(ty, from, to)?);
        // Two threads may build the same plan at once; both results are equal, keep the first.
        let mut plans = ty.plans.write().unwrap_or_else(PoisonError::into_inner);
        Ok(plans.entry((from, to)).or_insert(plan).clone())
    }

    fn build_plan(&self, ty: &TypeDef, from: u32, to: u32) -> Result<Plan, SchemaError> {
        if from == to {
            return Ok(Plan::identity());
        }
        let at = |e: SchemaError| e.for_type(&ty.name);
        // Both versions exist (checked above), so the only failure left is a graph that does
        // not join them, which a loaded schema set never has; still an error, not a panic.
        let steps = ty.graph.path(&from, &to).map_err(|_| {
            at(SchemaError::new(ErrorKind::NoPath {
                from: from.to_string(),
                to: to.to_string(),
            }))
        })?;
        let mut parts: Vec<(String, &Lens, mutatis_lens::Direction)> = Vec::new();
        for step in steps {
            // The lens of an edge belongs to the version it produces.
            let target = step.edge.to;
            let def = ty.get(target)?;
            let Some(lens) = def.lens.as_ref() else {
                return Err(at(SchemaError::new(ErrorKind::MissingLens {
                    version: target,
                    from: step.edge.from,
                }))
                .for_version(target));
            };
            parts.push((format!("{}@{target}", ty.name), lens, step.direction));
        }
        Plan::compose(
            parts
                .iter()
                .map(|(label, lens, dir)| (label.as_str(), *lens, *dir)),
            &self.transforms,
        )
        .map_err(|e| at(SchemaError::new(ErrorKind::Lens(e))).for_version(to))
    }

    /// The releases, oldest first, as declared.
    pub fn releases(&self) -> &[Release] {
        &self.releases
    }

    /// The release named `name`, whatever its status.
    pub fn release(&self, name: &str) -> Option<&Release> {
        self.releases.iter().find(|r| r.name == name)
    }

    /// The one `current` release.
    pub fn current(&self) -> &Release {
        &self.releases[self.current]
    }

    /// The release served to a client that names none: `defaultRelease`, or the current one.
    /// Under detection ([`UnnamedRelease::Detect`]) it is the fallback, or the current
    /// release; a server should ask [`SchemaSet::unnamed_release`] instead.
    pub fn default_release(&self) -> &Release {
        &self.releases[self.default]
    }

    /// How a request that names no release is served (apps shipped before versioning).
    pub fn unnamed_release(&self) -> UnnamedRelease<'_> {
        if self.detect {
            UnnamedRelease::Detect {
                fallback: self.fallback.map(|i| &self.releases[i]),
            }
        } else {
            UnnamedRelease::Fixed(&self.releases[self.default])
        }
    }

    /// The set as of `today` (`YYYY-MM-DD`): every release whose `sunset` date has come
    /// (`sunset <= today`: the `Sunset` header names the start of that day) is unsupported
    /// from then on, exactly as if `mutatis.yaml` said so, and answered as such; its sunset
    /// stays, so an old app can be told when its release was retired. The current release
    /// is never retired (a set always serves one): `mutatis check` warns about its sunset
    /// instead. The crate reads no clock: the caller says what day it is.
    pub fn as_of(mut self, today: &str) -> SchemaSet {
        let current = self.current;
        for (i, r) in self.releases.iter_mut().enumerate() {
            let due = r.sunset.as_deref().is_some_and(|s| s <= today);
            if due && i != current && r.status.is_served() {
                r.status = ReleaseStatus::Unsupported;
            }
        }
        self.as_of = Some(today.to_owned());
        self
    }

    /// The date sunsets were applied for, if [`SchemaSet::as_of`] was.
    pub fn date(&self) -> Option<&str> {
        self.as_of.as_deref()
    }

    /// The earliest sunset still to come: the day the set must be taken [`SchemaSet::as_of`]
    /// again. `None` when no served release (other than the current one) has a sunset.
    pub fn next_sunset(&self) -> Option<&str> {
        self.releases
            .iter()
            .enumerate()
            .filter(|(i, r)| *i != self.current && r.status.is_served())
            .filter_map(|(_, r)| r.sunset.as_deref())
            .min()
    }

    /// The same set as of another day: loaded again from the files it was loaded from, with
    /// the same transforms, then [`SchemaSet::as_of`] `today`. `None` for a set read from a
    /// manifest (it has no files).
    pub fn as_of_again(&self, today: &str) -> Option<Result<SchemaSet, SchemaError>> {
        let sources = self.sources.as_ref()?;
        Some(
            SchemaSet::from_sources_with(sources.as_ref().clone(), &self.transforms)
                .map(|s| s.as_of(today)),
        )
    }

    /// The oldest release that is still served (current, supported or deprecated): what an
    /// unsupported client is told to update to at least.
    pub fn oldest_supported(&self) -> &Release {
        self.releases
            .iter()
            .find(|r| r.status.is_served())
            .unwrap_or_else(|| self.current())
    }

    /// The release a client announced, if it is served. Unknown and unsupported names are
    /// distinct errors ([`ErrorKind::UnknownRelease`], [`ErrorKind::UnsupportedRelease`]) so
    /// that a server can tell "no such release" from "update your app".
    pub fn resolve_release(&self, name: &str) -> Result<&Release, SchemaError> {
        let release = self.release(name).ok_or_else(|| {
            SchemaError::new(ErrorKind::UnknownRelease {
                name: name.to_owned(),
                known: list(self.releases.iter().map(|r| &r.name)),
            })
        })?;
        if !release.status.is_served() {
            return Err(SchemaError::new(ErrorKind::UnsupportedRelease {
                name: name.to_owned(),
                oldest_supported: Some(self.oldest_supported().name.clone()),
            }));
        }
        Ok(release)
    }

    /// The version of `type_name` that a served release speaks.
    pub fn release_version(&self, release: &str, type_name: &str) -> Result<u32, SchemaError> {
        self.type_def(type_name)?;
        let r = self.resolve_release(release)?;
        r.version_of(type_name).ok_or_else(|| {
            SchemaError::new(ErrorKind::TypeNotInRelease {
                release: release.to_owned(),
                type_name: type_name.to_owned(),
            })
            .for_type(type_name)
        })
    }

    /// The versions of `type_name` that some served release speaks, lowest first.
    pub fn supported_versions(&self, type_name: &str) -> Result<BTreeSet<u32>, SchemaError> {
        self.type_def(type_name)?;
        Ok(self
            .releases
            .iter()
            .filter(|r| r.status.is_served())
            .filter_map(|r| r.version_of(type_name))
            .collect())
    }

    /// How a client speaking `type_name@version` directly (without naming a release) is
    /// treated: the most favourable status among the releases that speak that version, or
    /// `None` if no release does. [`ReleaseStatus`] orders current < supported < deprecated <
    /// unsupported, so the minimum is the most favourable.
    pub fn version_status(&self, type_name: &str, version: u32) -> Option<ReleaseStatus> {
        self.releases
            .iter()
            .filter(|r| r.version_of(type_name) == Some(version))
            .map(|r| r.status)
            .min()
    }

    /// How `type_name` is kept at rest.
    pub fn storage(&self, type_name: &str) -> Result<Storage, SchemaError> {
        self.type_def(type_name)?;
        self.storage.get(type_name).copied().ok_or_else(|| {
            // Every type gets a storage entry at load; a missing one is a loader defect, and
            // an error is better than a guess.
            SchemaError::new(ErrorKind::MissingKey { key: "storage" }).for_type(type_name)
        })
    }

    /// Check a document against the schema of `type_name@version`. An unknown type or version
    /// is reported as one issue at the document's root.
    pub fn validate(
        &self,
        type_name: &str,
        version: u32,
        doc: &Value,
    ) -> Result<(), Vec<ValidationIssue>> {
        match self.version(type_name, version) {
            Ok(def) => def.validate(doc),
            Err(e) => Err(vec![ValidationIssue {
                pointer: String::new(),
                schema_pointer: String::new(),
                message: e.to_string(),
            }]),
        }
    }
}

/// `a, b, c` (or `(none)`), for error messages.
pub(crate) fn list<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let parts: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if parts.is_empty() {
        "(none)".into()
    } else {
        parts.join(", ")
    }
}
