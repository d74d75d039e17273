//! The deployment diff: a local schema set compared with a deployed one (what a running node
//! publishes, a manifest file, or another folder such as the last release's), so that a
//! developer or a CI job learns, before a change ships, which clients and nodes it breaks.
//!
//! Three views, all pure:
//!
//! - **per release and type** ([`ReleaseDiff`]): the local release's version of the type is
//!   [`Verdict::Supported`] by the deployed node (same version, same schema),
//!   [`Verdict::IncorrectlySupported`] (the deployed node has that release/type/version but with
//!   another schema, or speaks another version in that release: expected and actual schema side
//!   by side with the differing pointers), [`Verdict::Unsupported`] (the deployed node cannot
//!   serve it: it lacks an older version, or refuses the release) or [`Verdict::New`] (not
//!   deployed yet);
//! - **per type** ([`TypeDiff`]): the same verdict for every version, and for every new version
//!   the compatibility checks its [`CompatMode`] asks for (against its lens parent; transitive
//!   modes against every lower version), each with its field changes (added, removed, renamed
//!   by a lens or probably renamed, retyped, made required, made optional) and whether they
//!   break old clients;
//! - **retired releases** ([`RetiredRelease`]): releases the deployed node serves that the
//!   local set no longer serves; and types a release (or the whole set) no longer includes.
//!
//! The outcome is breaking ([`DeployDiff::is_breaking`]) when a served release's type is
//! incorrectly supported, a deployed version's schema (or the lens that produces it) was
//! changed in place, a new version fails its type's mode, a served release drops a type, or a
//! release the deployed node serves without deprecation is retired (deprecate it first: a
//! deprecated release may be retired, that is its sunset).
//! Schemas of a version on the deployed side are taken from the deployed set, so the checks
//! compare against what clients actually speak.

mod fields;
mod policy;

use std::collections::BTreeSet;

use mutatis_lens::Direction;
use serde_json::{json, Map, Value};
use thiserror::Error;

use crate::compat::{self, Change, CompatError, CompatMode, Compatibility};
use crate::diff::differences;
use crate::release::ReleaseStatus;
use crate::set::{SchemaSet, TypeDef};

pub use fields::{FieldChange, FieldChangeKind};
pub use policy::{parse_mode, Policy, PolicyError};

/// The version of the `--json` shape of [`DeployDiff::to_json`].
pub const DIFF_FORMAT: u64 = 1;

/// Why a deployment diff could not be made.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DeployError {
    /// The policy names a type the local schema set does not have (a typo would otherwise
    /// silently leave the type on the default mode).
    #[error("the policy names type `{name}`, which the local schema set does not declare; it declares {known}")]
    PolicyUnknownType { name: String, known: String },
    /// Two schemas that the compatibility checker cannot compare.
    #[error("{type_name}: comparing version {old} ({old_side}) with version {new} ({new_side}): {source}")]
    Compat {
        type_name: String,
        old: u32,
        old_side: Side,
        new: u32,
        new_side: Side,
        /// Boxed: the checker's error is large and this one travels in every `Result`.
        #[source]
        source: Box<CompatError>,
    },
}

/// Which schema set a schema was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The local schema set (the change being checked).
    Local,
    /// The deployed one.
    Deployed,
}

impl Side {
    /// `local` or `deployed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Local => "local",
            Side::Deployed => "deployed",
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version's schema as the local set expects it and as the deployed node has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// The deployed version (differs from the local one when a release changed version).
    pub deployed_version: u32,
    /// The local schema.
    pub expected: Value,
    /// The deployed schema.
    pub actual: Value,
    /// The pointers at which they differ ([`crate::differences`]).
    pub differences: Vec<String>,
    /// The field changes from the deployed schema to the local one.
    pub changes: Vec<FieldChange>,
    /// The checker's verdict from the deployed schema (old) to the local one (new).
    pub result: Compatibility,
}

/// What the deployed node does for a version the local set declares.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Same version, same schema.
    Supported,
    /// Same release/type/version, another schema (or another version in the same release).
    IncorrectlySupported(Box<Mismatch>),
    /// The deployed node cannot serve it (the reason says why).
    Unsupported(String),
    /// Not deployed yet.
    New,
}

impl Verdict {
    /// `supported`, `incorrectly_supported`, `unsupported` or `new`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::IncorrectlySupported(_) => "incorrectly_supported",
            Verdict::Unsupported(_) => "unsupported",
            Verdict::New => "new",
        }
    }
}

/// One type of one local release.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseType {
    /// The type.
    pub type_name: String,
    /// The version the local release speaks.
    pub version: u32,
    /// The version the deployed release of the same name speaks, if it has one.
    pub deployed_version: Option<u32>,
    /// What the deployed node does for it.
    pub verdict: Verdict,
    /// Whether this breaks clients of the release (a served release, incorrectly supported).
    pub breaking: bool,
}

/// One local release, type by type.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseDiff {
    /// The release name.
    pub name: String,
    /// Its local status.
    pub status: ReleaseStatus,
    /// Its status on the deployed node (`None`: not deployed).
    pub deployed_status: Option<ReleaseStatus>,
    /// Its types, by name.
    pub types: Vec<ReleaseType>,
    /// Types the deployed release of the same name serves that the local one no longer
    /// includes, with the version it serves: its clients lose them.
    pub dropped: Vec<(String, u32)>,
}

/// A release the deployed node serves that the local set does not.
#[derive(Debug, Clone, PartialEq)]
pub struct RetiredRelease {
    /// The release name.
    pub name: String,
    /// Its deployed status.
    pub deployed_status: ReleaseStatus,
    /// Its local status (`None`: removed from the local set).
    pub status: Option<ReleaseStatus>,
    /// Whether it is retired without having been deprecated first.
    pub breaking: bool,
}

/// One version of a type.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionDiff {
    /// The version.
    pub version: u32,
    /// What the deployed node does for it.
    pub verdict: Verdict,
    /// Set when both sides have the version but reach it by different lenses: the schema may
    /// be the same, but the nodes would translate documents differently.
    pub lens_change: Option<LensChange>,
}

/// A version that the local set and the deployed one reach by different lenses.
#[derive(Debug, Clone, PartialEq)]
pub struct LensChange {
    /// The local `from` and lens (canonical JSON).
    pub expected_from: Option<u32>,
    pub expected: Value,
    /// The deployed `from` and lens.
    pub actual_from: Option<u32>,
    pub actual: Value,
}

/// One compatibility check between two versions of a type.
#[derive(Debug, Clone, PartialEq)]
pub struct CompatCheck {
    /// The older version.
    pub from: u32,
    /// Where its schema was taken from.
    pub from_side: Side,
    /// The new version.
    pub to: u32,
    /// The checker's verdict.
    pub result: Compatibility,
    /// Whether the pair satisfies the type's mode.
    pub compatible: bool,
    /// The field changes from `from` to `to`, with breaking flags.
    pub changes: Vec<FieldChange>,
}

/// One type: its versions on both sides and the checks of its new versions.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeDiff {
    /// The type.
    pub name: String,
    /// The mode the policy asks of it.
    pub mode: CompatMode,
    /// The deployed versions (empty: a new type).
    pub deployed_versions: Vec<u32>,
    /// The local versions.
    pub local_versions: Vec<u32>,
    /// Every local version's verdict.
    pub versions: Vec<VersionDiff>,
    /// Deployed versions the local set no longer declares.
    pub removed_versions: Vec<u32>,
    /// The compatibility checks of the new versions.
    pub checks: Vec<CompatCheck>,
}

impl TypeDiff {
    /// Whether the type breaks: a version changed in place, or a check that fails the mode.
    pub fn is_breaking(&self) -> bool {
        self.versions.iter().any(|v| {
            matches!(v.verdict, Verdict::IncorrectlySupported(_)) || v.lens_change.is_some()
        }) || self.checks.iter().any(|c| !c.compatible)
    }
}

/// The whole diff.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployDiff {
    /// The local releases, as declared.
    pub releases: Vec<ReleaseDiff>,
    /// Releases the deployed node serves that the local set does not.
    pub retired: Vec<RetiredRelease>,
    /// The local types, by name.
    pub types: Vec<TypeDiff>,
    /// Types the deployed set has that the local one does not.
    pub removed_types: Vec<String>,
}

/// Compare `local` with `deployed` under `policy`.
pub fn diff(
    local: &SchemaSet,
    deployed: &SchemaSet,
    policy: &Policy,
) -> Result<DeployDiff, DeployError> {
    for name in policy.types.keys() {
        if local.type_def(name).is_err() {
            return Err(DeployError::PolicyUnknownType {
                name: name.clone(),
                known: crate::set::list(local.types().map(TypeDef::name)),
            });
        }
    }
    let mut types = Vec::new();
    for ty in local.types() {
        types.push(type_diff(ty, deployed, policy.mode(ty.name()))?);
    }
    let mut releases = Vec::new();
    for r in local.releases() {
        let deployed_r = deployed.release(&r.name);
        let mut rtypes = Vec::new();
        for (t, &v) in &r.types {
            let site = ReleaseSite {
                local,
                deployed,
                types: &types,
                mode: policy.mode(t),
                status: r.status,
                deployed_release: deployed_r,
            };
            rtypes.push(site.release_type(t, v)?);
        }
        let dropped = deployed_r
            .map(|d| {
                d.types
                    .iter()
                    .filter(|(t, _)| !r.types.contains_key(*t))
                    .map(|(t, &v)| (t.clone(), v))
                    .collect()
            })
            .unwrap_or_default();
        releases.push(ReleaseDiff {
            name: r.name.clone(),
            status: r.status,
            deployed_status: deployed_r.map(|d| d.status),
            types: rtypes,
            dropped,
        });
    }
    let retired = deployed
        .releases()
        .iter()
        .filter(|d| d.status.is_served())
        .filter_map(|d| {
            let status = local.release(&d.name).map(|r| r.status);
            if status.is_some_and(ReleaseStatus::is_served) {
                return None;
            }
            Some(RetiredRelease {
                name: d.name.clone(),
                deployed_status: d.status,
                status,
                breaking: d.status != ReleaseStatus::Deprecated,
            })
        })
        .collect();
    let removed_types = deployed
        .types()
        .filter(|t| local.type_def(t.name()).is_err())
        .map(|t| t.name().to_owned())
        .collect();
    Ok(DeployDiff {
        releases,
        retired,
        types,
        removed_types,
    })
}

/// The schema of `type_name@version` on one side, if that side has it.
fn schema_of<'s>(set: &'s SchemaSet, type_name: &str, version: u32) -> Option<&'s Value> {
    set.schema(type_name, version).ok()
}

/// The mismatch between a local schema and a deployed one, or `None` when they are equal.
fn mismatch(
    type_name: &str,
    (version, expected): (u32, &Value),
    (deployed_version, actual): (u32, &Value),
    mode: CompatMode,
) -> Result<Option<Mismatch>, DeployError> {
    let diffs = differences(expected, actual);
    if diffs.is_empty() {
        return Ok(None);
    }
    let result = check_pair(
        type_name,
        (deployed_version, Side::Deployed, actual),
        (version, expected),
    )?;
    let mut changes = fields::field_changes(actual, expected, &[]);
    flag_changes(&mut changes, &result, mode_or_backward(mode));
    Ok(Some(Mismatch {
        deployed_version,
        expected: expected.clone(),
        actual: actual.clone(),
        differences: diffs,
        changes,
        result,
    }))
}

/// What a release's verdicts are computed from.
struct ReleaseSite<'a> {
    local: &'a SchemaSet,
    deployed: &'a SchemaSet,
    /// The type view, whose per-version verdicts a release repeats.
    types: &'a [TypeDiff],
    mode: CompatMode,
    status: ReleaseStatus,
    deployed_release: Option<&'a crate::release::Release>,
}

impl ReleaseSite<'_> {
    fn release_type(&self, type_name: &str, version: u32) -> Result<ReleaseType, DeployError> {
        let deployed_version = self.deployed_release.and_then(|d| d.version_of(type_name));
        let verdict = match (self.deployed_release, deployed_version) {
            (Some(d), Some(dv)) if dv != version => {
                // The same release speaks another version on the deployed node: its clients
                // send and expect that version's documents.
                match (
                    schema_of(self.local, type_name, version),
                    schema_of(self.deployed, type_name, dv),
                ) {
                    (Some(expected), Some(actual)) => {
                        match mismatch(type_name, (version, expected), (dv, actual), self.mode)? {
                            Some(m) => Verdict::IncorrectlySupported(Box::new(m)),
                            // Another number for the same schema: the release's documents
                            // read and write the same.
                            None => Verdict::Supported,
                        }
                    }
                    _ => Verdict::Unsupported(format!(
                        "release {} speaks {type_name}@{dv} on the deployed node",
                        d.name
                    )),
                }
            }
            (Some(d), _) if !d.status.is_served() => match self.type_verdict(type_name, version) {
                Verdict::Supported => Verdict::Unsupported(format!(
                    "release {} is unsupported on the deployed node",
                    d.name
                )),
                other => other,
            },
            _ => self.type_verdict(type_name, version),
        };
        let breaking =
            self.status.is_served() && matches!(verdict, Verdict::IncorrectlySupported(_));
        Ok(ReleaseType {
            type_name: type_name.to_owned(),
            version,
            deployed_version,
            verdict,
            breaking,
        })
    }

    /// The type view's verdict for a version.
    fn type_verdict(&self, type_name: &str, version: u32) -> Verdict {
        self.types
            .iter()
            .find(|t| t.name == type_name)
            .and_then(|t| t.versions.iter().find(|v| v.version == version))
            .map(|v| v.verdict.clone())
            // Releases only name versions the local set declares, which the type view covers.
            .unwrap_or_else(|| {
                Verdict::Unsupported(format!("the local set has no {type_name}@{version}"))
            })
    }
}

fn type_diff(
    ty: &TypeDef,
    deployed: &SchemaSet,
    mode: CompatMode,
) -> Result<TypeDiff, DeployError> {
    let name = ty.name();
    let local_versions: Vec<u32> = ty.versions().map(|v| v.version()).collect();
    let deployed_versions = deployed.versions(name).unwrap_or_default();
    let newest_deployed = deployed_versions.last().copied();
    let mut versions = Vec::new();
    for def in ty.versions() {
        let v = def.version();
        let deployed_def = deployed.version(name, v).ok();
        let verdict = match deployed_def {
            Some(d) => match mismatch(name, (v, def.schema()), (v, d.schema()), mode)? {
                None => Verdict::Supported,
                Some(m) => Verdict::IncorrectlySupported(Box::new(m)),
            },
            None => match newest_deployed {
                Some(n) if v <= n => Verdict::Unsupported(format!(
                    "the deployed node has no {name}@{v} (its newest is {name}@{n})"
                )),
                _ => Verdict::New,
            },
        };
        let lens_json =
            |d: &crate::set::VersionDef| d.lens().map(|l| l.to_json()).unwrap_or(Value::Null);
        let lens_change = deployed_def.and_then(|d| {
            let (expected, actual) = (lens_json(def), lens_json(d));
            (def.from() != d.from() || expected != actual).then(|| LensChange {
                expected_from: def.from(),
                expected,
                actual_from: d.from(),
                actual,
            })
        });
        versions.push(VersionDiff {
            version: v,
            verdict,
            lens_change,
        });
    }
    let removed_versions: Vec<u32> = deployed_versions
        .iter()
        .copied()
        .filter(|v| !local_versions.contains(v))
        .collect();
    let mut checks = Vec::new();
    // A type the deployed node does not have has no clients yet: nothing to be compatible with.
    if newest_deployed.is_some() {
        for def in ty.versions() {
            let v = def.version();
            let is_new = versions
                .iter()
                .any(|d| d.version == v && d.verdict == Verdict::New);
            if !is_new {
                continue;
            }
            let mut against: BTreeSet<u32> = BTreeSet::new();
            if let Some(parent) = def.from() {
                against.insert(parent);
            }
            if mode.is_transitive() {
                against.extend(
                    local_versions
                        .iter()
                        .chain(&deployed_versions)
                        .copied()
                        .filter(|&o| o < v),
                );
            }
            for old in against {
                // What clients speak: the deployed schema where the deployed node has the
                // version, else the local one.
                let (old_schema, side) = match deployed.schema(name, old) {
                    Ok(s) => (s, Side::Deployed),
                    Err(_) => match ty.version(old) {
                        Some(d) => (d.schema(), Side::Local),
                        None => continue,
                    },
                };
                let result = check_pair(name, (old, side, old_schema), (v, def.schema()))?;
                // The lens's own renames name the moves when the pair is the lens's edge.
                let moves = match (def.from(), def.lens()) {
                    (Some(p), Some(lens)) if p == old => {
                        fields::lens_moves(lens.ops(), Direction::Forward)
                    }
                    _ => Vec::new(),
                };
                let mut changes = fields::field_changes(old_schema, def.schema(), &moves);
                flag_changes(&mut changes, &result, mode);
                checks.push(CompatCheck {
                    from: old,
                    from_side: side,
                    to: v,
                    compatible: mode.accepts(&result),
                    result,
                    changes,
                });
            }
        }
    }
    Ok(TypeDiff {
        name: name.to_owned(),
        mode,
        deployed_versions,
        local_versions,
        versions,
        removed_versions,
        checks,
    })
}

fn check_pair(
    type_name: &str,
    (old, old_side, old_schema): (u32, Side, &Value),
    (new, new_schema): (u32, &Value),
) -> Result<Compatibility, DeployError> {
    compat::check(old_schema, new_schema).map_err(|e| DeployError::Compat {
        type_name: type_name.to_owned(),
        old,
        old_side,
        new,
        new_side: Side::Local,
        source: Box::new(e),
    })
}

/// A version changed in place breaks its clients whatever the mode; its field changes are
/// flagged as `BACKWARD` would flag them when the type asks for nothing.
fn mode_or_backward(mode: CompatMode) -> CompatMode {
    if mode == CompatMode::None {
        CompatMode::Backward
    } else {
        mode
    }
}

/// Set each field change's breaking flags from the checker's changes at or under the field
/// (in either schema) and at the parent's `required` list for the field.
fn flag_changes(changes: &mut [FieldChange], result: &Compatibility, mode: CompatMode) {
    let (needs_backward, needs_forward) = (mode.requires_backward(), mode.requires_forward());
    for fc in changes.iter_mut() {
        let related: Vec<&Change> = result
            .changes
            .iter()
            .filter(|c| {
                [&fc.old_pointer, &fc.new_pointer]
                    .into_iter()
                    .flatten()
                    .any(|p| concerns(&c.pointer, p))
            })
            .collect();
        fc.breaks_backward = related.iter().any(|c| c.breaks_backward);
        fc.breaks_forward = related.iter().any(|c| c.breaks_forward);
        fc.breaking =
            (needs_backward && fc.breaks_backward) || (needs_forward && fc.breaks_forward);
    }
}

/// The checker's changes that no field change explains (a bound, a format, an `enum`...),
/// so that a report can show them beside the field changes.
pub fn unexplained<'c>(changes: &[FieldChange], result: &'c Compatibility) -> Vec<&'c Change> {
    result
        .changes
        .iter()
        .filter(|c| {
            !changes.iter().any(|fc| {
                [&fc.old_pointer, &fc.new_pointer]
                    .into_iter()
                    .flatten()
                    .any(|p| concerns(&c.pointer, p))
            })
        })
        .collect()
}

/// Whether a checker change at `change` concerns the field whose schema is at `field`
/// (`/properties/a`): the field's schema or anything in it, or the `required` list of the
/// object that holds the field.
fn concerns(change: &str, field: &str) -> bool {
    if change == field || change.starts_with(&format!("{field}/")) {
        return true;
    }
    let Some((holder, _)) = field.rsplit_once("/properties/") else {
        return false;
    };
    let required = format!("{holder}/required");
    change == required || change.starts_with(&format!("{required}/"))
}

impl DeployDiff {
    /// Whether the local set breaks clients or nodes of the deployed one (see the module docs).
    pub fn is_breaking(&self) -> bool {
        !self.problems().is_empty()
    }

    /// Each reason the diff is breaking, as a sentence.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.releases {
            for t in r.types.iter().filter(|t| t.breaking) {
                // A release that kept its version but whose schema changed is the type view's
                // "changed in place"; here only a release that switched versions.
                if let Verdict::IncorrectlySupported(m) = &t.verdict {
                    if m.deployed_version != t.version {
                        out.push(format!(
                            "release {} speaks {}@{} locally but {}@{} on the deployed node, with another schema (at {})",
                            r.name,
                            t.type_name,
                            t.version,
                            t.type_name,
                            m.deployed_version,
                            m.differences.join(", ")
                        ));
                    }
                }
            }
        }
        // Clients exist only where the deployed node serves the release.
        for r in self.releases.iter().filter(|r| {
            r.status.is_served() && r.deployed_status.is_some_and(ReleaseStatus::is_served)
        }) {
            for (t, v) in &r.dropped {
                out.push(format!(
                    "release {} no longer includes {t} (the deployed node serves {t}@{v} to it)",
                    r.name
                ));
            }
        }
        for r in self.retired.iter().filter(|r| r.breaking) {
            out.push(format!(
                "release {} is {} on the deployed node and {} locally: deprecate it before retiring it",
                r.name,
                r.deployed_status.as_str(),
                r.status.map_or("removed", |s| s.as_str())
            ));
        }
        for t in &self.types {
            for v in &t.versions {
                let served = self.served_in(&t.name, v.version);
                let served = if served.is_empty() {
                    String::new()
                } else {
                    format!("; served to releases {}", served.join(", "))
                };
                if let Verdict::IncorrectlySupported(m) = &v.verdict {
                    out.push(format!(
                        "{}@{} was changed in place (at {}){served}",
                        t.name,
                        v.version,
                        m.differences.join(", ")
                    ));
                }
                if v.lens_change.is_some() {
                    out.push(format!(
                        "the lens that produces {}@{} differs from the deployed one: nodes would translate it differently{served}",
                        t.name, v.version
                    ));
                }
            }
            for c in t.checks.iter().filter(|c| !c.compatible) {
                out.push(format!(
                    "{}@{} → {}@{} is not {} compatible",
                    t.name,
                    c.from,
                    t.name,
                    c.to,
                    t.mode.as_str()
                ));
            }
        }
        out
    }

    /// The served local releases that speak `type_name@version`.
    fn served_in(&self, type_name: &str, version: u32) -> Vec<String> {
        self.releases
            .iter()
            .filter(|r| r.status.is_served())
            .filter(|r| {
                r.types
                    .iter()
                    .any(|t| t.type_name == type_name && t.version == version)
            })
            .map(|r| r.name.clone())
            .collect()
    }

    /// The diff as JSON, in the stable shape documented in `crates/mutatis/docs/check-json.md`
    /// (without the `local`/`deployed` source names, which the caller knows).
    pub fn to_json(&self) -> Value {
        let problems = self.problems();
        json!({
            "format": DIFF_FORMAT,
            "outcome": if problems.is_empty() { "compatible" } else { "breaking" },
            "problems": problems,
            "releases": self.releases.iter().map(release_json).collect::<Vec<_>>(),
            "retiredReleases": self.retired.iter().map(|r| json!({
                "name": r.name,
                "deployedStatus": r.deployed_status.as_str(),
                "status": r.status.map(ReleaseStatus::as_str),
                "breaking": r.breaking,
            })).collect::<Vec<_>>(),
            "types": self.types.iter().map(type_json).collect::<Vec<_>>(),
            "removedTypes": self.removed_types,
        })
    }
}

/// The keywords the checker did not understand in a pair, as `keyword (at /pointer in the
/// old|new schema)`: the verdict is conservative where they are.
pub fn unknown_keywords(c: &Compatibility) -> Vec<String> {
    c.unknown_keywords
        .iter()
        .map(|u| {
            format!(
                "{} (at {} in the {} schema)",
                u.keyword,
                u.pointer,
                u.side.as_str()
            )
        })
        .collect()
}

fn verdict_json(v: &Verdict, out: &mut Map<String, Value>) {
    out.insert("verdict".into(), json!(v.as_str()));
    match v {
        Verdict::Unsupported(reason) => {
            out.insert("reason".into(), json!(reason));
        }
        Verdict::IncorrectlySupported(m) => {
            out.insert("deployedVersion".into(), json!(m.deployed_version));
            out.insert("differences".into(), json!(m.differences));
            out.insert("expected".into(), m.expected.clone());
            out.insert("actual".into(), m.actual.clone());
            out.insert(
                "changes".into(),
                Value::Array(m.changes.iter().map(FieldChange::to_json).collect()),
            );
            out.insert(
                "schemaChanges".into(),
                Value::Array(m.result.changes.iter().map(Change::to_json).collect()),
            );
        }
        Verdict::Supported | Verdict::New => {}
    }
}

fn release_json(r: &ReleaseDiff) -> Value {
    let types: Vec<Value> = r
        .types
        .iter()
        .map(|t| {
            let mut m = Map::new();
            m.insert("type".into(), json!(t.type_name));
            m.insert("version".into(), json!(t.version));
            m.insert("deployedVersion".into(), json!(t.deployed_version));
            verdict_json(&t.verdict, &mut m);
            m.insert("breaking".into(), json!(t.breaking));
            Value::Object(m)
        })
        .collect();
    json!({
        "name": r.name,
        "status": r.status.as_str(),
        "deployedStatus": r.deployed_status.map(ReleaseStatus::as_str),
        "types": types,
        "dropped": r.dropped.iter().map(|(t, v)| json!({"type": t, "deployedVersion": v})).collect::<Vec<_>>(),
    })
}

fn type_json(t: &TypeDiff) -> Value {
    let versions: Vec<Value> = t
        .versions
        .iter()
        .map(|v| {
            let mut m = Map::new();
            m.insert("version".into(), json!(v.version));
            verdict_json(&v.verdict, &mut m);
            if let Some(l) = &v.lens_change {
                m.insert(
                    "lensChanged".into(),
                    json!({"expectedFrom": l.expected_from, "expected": l.expected,
                           "actualFrom": l.actual_from, "actual": l.actual}),
                );
            }
            Value::Object(m)
        })
        .collect();
    let checks: Vec<Value> = t
        .checks
        .iter()
        .map(|c| {
            json!({
                "from": c.from,
                "fromSide": c.from_side.as_str(),
                "to": c.to,
                "backward": c.result.backward,
                "forward": c.result.forward,
                "full": c.result.full,
                "compatible": c.compatible,
                "changes": c.changes.iter().map(FieldChange::to_json).collect::<Vec<_>>(),
                "schemaChanges": c.result.changes.iter().map(Change::to_json).collect::<Vec<_>>(),
                "unknownKeywords": c.result.to_json()["unknown_keywords"].clone(),
            })
        })
        .collect();
    json!({
        "type": t.name,
        "mode": t.mode.as_str(),
        "deployedVersions": t.deployed_versions,
        "localVersions": t.local_versions,
        "removedVersions": t.removed_versions,
        "versions": versions,
        "checks": checks,
        "breaking": t.is_breaking(),
    })
}
