//! Version negotiation, pure: which version of a type a request speaks, and what the response
//! must say about it (the release served, deprecation).
//!
//! A client names its release (`Mutatis-Release` header or `?release=` query), or per-type
//! versions (`Mutatis-Versions: Student=3`), or nothing; then the schema set's rule for unnamed
//! clients applies ([`SchemaSet::unnamed_release`]): a fixed release, or detection from the
//! body's shape, which never guesses (see [`detect`]).

use std::collections::BTreeMap;

use mutatis_lens::Params;
use mutatis_schema::{Release, ReleaseStatus, SchemaSet, UnnamedRelease};
use serde_json::{json, Value};

use crate::headers::{self, parse_versions, DEPRECATION_LINK};
use crate::problem::Problem;

/// What the client announced, read from its headers and query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Announce {
    /// The release named (header, or query when no header).
    pub release: Option<String>,
    /// Per-type versions from `Mutatis-Versions`.
    pub versions: BTreeMap<String, u32>,
}

impl Announce {
    /// Read the announcement. A header and a query naming different releases is a conflict
    /// (400 `conflicting-release`), never resolved silently. A `Mutatis-Release` header that
    /// names nothing (empty, or blanks) is 400 `bad-release-header`: a client that sends the
    /// header means to name a release, and serving it the default one would hide its bug.
    /// (An empty `?release=` is still "none named": browsers send empty form fields.)
    pub fn parse(
        release_header: Option<&str>,
        release_query: Option<&str>,
        versions_header: Option<&str>,
    ) -> Result<Announce, Problem> {
        let header = match release_header.map(str::trim) {
            Some("") => {
                return Err(bad_release_header(
                    "the Mutatis-Release header is empty; name a release, or leave the header out for the default one",
                ))
            }
            other => other,
        };
        let query = release_query.map(str::trim).filter(|s| !s.is_empty());
        let release = match (header, query) {
            (Some(h), Some(q)) if h != q => {
                return Err(Problem::new(
                    400,
                    "conflicting-release",
                    "Conflicting release",
                    format!(
                        "the Mutatis-Release header names release {h:?} but the query names {q:?}"
                    ),
                )
                .with("header", h)
                .with("query", q))
            }
            (Some(h), _) => Some(h.to_owned()),
            (None, q) => q.map(str::to_owned),
        };
        let versions = match versions_header {
            Some(v) => parse_versions(v).map_err(|e| {
                bad_versions_header(format!("Mutatis-Versions: {e}; expected `TYPE=VERSION, …`"))
            })?,
            None => BTreeMap::new(),
        };
        Ok(Announce { release, versions })
    }

    /// Read the announcement from the raw bytes of the `Mutatis-Release` and
    /// `Mutatis-Versions` headers and the `?release=` query, checked against `set`
    /// ([`Announce::known`]). A header value that is not visible ASCII names nothing a schema
    /// set can hold and is refused, never read as absent (which would serve the default
    /// release).
    pub fn read(
        release_header: Option<&[u8]>,
        release_query: Option<&str>,
        versions_header: Option<&[u8]>,
        set: &SchemaSet,
    ) -> Result<Announce, Problem> {
        let release = header_text("mutatis-release", release_header).map_err(bad_release_header)?;
        let versions =
            header_text("mutatis-versions", versions_header).map_err(bad_versions_header)?;
        Announce::parse(release, release_query, versions)?.known(set)
    }

    /// The announcement, if every entry of `Mutatis-Versions` names a type and a version of
    /// `set`: 400 `bad-versions-header` (with `type`, `knownTypes`) for a type the set lacks,
    /// 400 `unknown-version` for a version its type lacks. Checked for the whole header, not
    /// only for the type a request is about, so a typo never passes unnoticed.
    pub fn known(self, set: &SchemaSet) -> Result<Announce, Problem> {
        for (type_name, &version) in &self.versions {
            let Ok(versions) = set.versions(type_name) else {
                let known: Vec<&str> = set.types().map(|t| t.name()).collect();
                return Err(bad_versions_header(format!(
                    "Mutatis-Versions names type {type_name:?}, which this schema set does not have; known types: {}",
                    known.join(", ")
                ))
                .with("type", type_name.as_str())
                .with("knownTypes", json!(known)));
            };
            if !versions.contains(&version) {
                return Err(unknown_version(type_name, version, &versions, |known| {
                    format!("Mutatis-Versions names {type_name}={version}, but type {type_name} has versions {known}")
                }));
            }
        }
        Ok(self)
    }
}

/// A header's value as text: visible ASCII and tabs (what `http::HeaderValue::to_str` reads),
/// else an error naming the header.
fn header_text<'a>(name: &str, value: Option<&'a [u8]>) -> Result<Option<&'a str>, String> {
    let Some(bytes) = value else {
        return Ok(None);
    };
    let visible = bytes
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
    match std::str::from_utf8(bytes) {
        Ok(text) if visible => Ok(Some(text)),
        _ => Err(format!(
            "the {name} header is not visible ASCII; release and type names are"
        )),
    }
}

/// 400 `bad-release-header`: a `Mutatis-Release` value that names no release (empty, or not
/// visible ASCII).
pub fn bad_release_header(detail: impl Into<String>) -> Problem {
    Problem::new(
        400,
        "bad-release-header",
        "Bad Mutatis-Release header",
        detail,
    )
}

/// 400 `bad-versions-header`: a `Mutatis-Versions` value that is not `TYPE=VERSION, …` of
/// this schema set.
pub fn bad_versions_header(detail: impl Into<String>) -> Problem {
    Problem::new(
        400,
        "bad-versions-header",
        "Bad Mutatis-Versions header",
        detail,
    )
}

/// How the response must flag a deprecated release or version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deprecated {
    /// The sunset date (`YYYY-MM-DD`), if the release has one.
    pub sunset: Option<String>,
    /// Since when (`YYYY-MM-DD`), if the schema set records it.
    pub since: Option<String>,
}

/// The outcome of negotiating one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The release served, when one was resolved (not for a bare `Mutatis-Versions` entry).
    pub release: Option<String>,
    /// The version the request and response bodies are in.
    pub version: u32,
    /// Set when the release (or the version) is deprecated.
    pub deprecated: Option<Deprecated>,
}

impl Served {
    /// The headers an answer in this version of `type_name` carries: `Mutatis-Release` (when
    /// a release was resolved), `Mutatis-Versions`, and for a deprecated release or version
    /// `Deprecation`, `Sunset` (when it has one) and `Link` (names in lower case).
    pub fn headers(&self, type_name: &str) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(r) = &self.release {
            out.push(("mutatis-release", r.clone()));
        }
        out.push((
            "mutatis-versions",
            headers::format_versions([(type_name, self.version)]),
        ));
        if let Some(d) = &self.deprecated {
            out.push((
                "deprecation",
                headers::deprecation_header(d.since.as_deref().and_then(headers::date_to_unix)),
            ));
            if let Some(s) = d.sunset.as_deref().and_then(headers::sunset_header) {
                out.push(("sunset", s));
            }
            out.push(("link", DEPRECATION_LINK.to_owned()));
        }
        out
    }
}

/// The release the request names, resolved: unknown and unsupported names are distinct
/// problems. `None` when no release is named.
pub fn named_release<'s>(
    set: &'s SchemaSet,
    announce: &Announce,
) -> Result<Option<&'s Release>, Problem> {
    let Some(name) = &announce.release else {
        return Ok(None);
    };
    let Some(release) = set.release(name) else {
        let known: Vec<&str> = set.releases().iter().map(|r| r.name.as_str()).collect();
        return Err(Problem::new(
            400,
            "unknown-release",
            "Unknown release",
            format!(
                "there is no release {name:?}; known releases: {}",
                known.join(", ")
            ),
        )
        .with("release", name.as_str())
        .with("knownReleases", json!(known)));
    };
    check_served(set, release)?;
    Ok(Some(release))
}

/// 400 `unsupported-release` for a release that is no longer served.
fn check_served(set: &SchemaSet, release: &Release) -> Result<(), Problem> {
    if release.status.is_served() {
        return Ok(());
    }
    Err(retired(set, release))
}

/// The problem of an unsupported release: retired by `mutatis.yaml`, or by its sunset date
/// having come (then it names the date, so the app can say since when).
fn retired(set: &SchemaSet, release: &Release) -> Problem {
    let update = format!("update to release {} or later", set.oldest_supported().name);
    let past_sunset = release
        .sunset
        .as_deref()
        .filter(|s| set.date().is_some_and(|today| *s <= today));
    match past_sunset {
        Some(sunset) => unsupported(
            set,
            &release.name,
            format!(
                "release {} is no longer supported: its sunset was {sunset}; {update}",
                release.name
            ),
        )
        .with("sunset", sunset),
        None => unsupported(
            set,
            &release.name,
            format!("release {} is no longer supported; {update}", release.name),
        ),
    }
}

fn unsupported(set: &SchemaSet, release: &str, detail: String) -> Problem {
    Problem::new(400, "unsupported-release", "Unsupported release", detail)
        .with("release", release)
        .with("oldestSupported", set.oldest_supported().name.as_str())
        .with("currentRelease", set.current().name.as_str())
}

fn deprecation_of(release: &Release) -> Option<Deprecated> {
    (release.status == ReleaseStatus::Deprecated).then(|| Deprecated {
        sunset: release.sunset.clone(),
        since: release.deprecated.clone(),
    })
}

fn from_release(release: &Release, type_name: &str) -> Result<Served, Problem> {
    let version = release.version_of(type_name).ok_or_else(|| {
        Problem::new(
            400,
            "type-not-in-release",
            "Type not in release",
            format!("release {} does not include type {type_name}", release.name),
        )
        .with("release", release.name.as_str())
        .with("type", type_name)
    })?;
    Ok(Served {
        release: Some(release.name.clone()),
        version,
        deprecated: deprecation_of(release),
    })
}

/// 400 `unknown-version`: `version` is not one of `type_name`'s `versions`; `detail` gets
/// them as a list (`1, 2, 3`).
fn unknown_version(
    type_name: &str,
    version: u32,
    versions: &[u32],
    detail: impl FnOnce(&str) -> String,
) -> Problem {
    let known = versions
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Problem::new(400, "unknown-version", "Unknown version", detail(&known))
        .with("type", type_name)
        .with("version", version)
        .with("knownVersions", json!(versions))
}

/// A version named directly (`Mutatis-Versions`): it must exist, and some served release must
/// speak it; a version only deprecated releases speak is deprecated.
fn from_version(set: &SchemaSet, type_name: &str, version: u32) -> Result<Served, Problem> {
    let versions = set
        .versions(type_name)
        .map_err(|_| unknown_type(set, type_name))?;
    if !versions.contains(&version) {
        return Err(unknown_version(type_name, version, &versions, |known| {
            format!("type {type_name} has no version {version}; it has {known}")
        }));
    }
    let speakers: Vec<&Release> = set
        .releases()
        .iter()
        .filter(|r| r.version_of(type_name) == Some(version))
        .collect();
    match set.version_status(type_name, version) {
        Some(ReleaseStatus::Unsupported) => {
            let newest = speakers.last().map_or(String::new(), |r| r.name.clone());
            Err(unsupported(
                set,
                &newest,
                format!(
                    "{type_name}@{version} is only spoken by releases that are no longer supported; update to release {} or later",
                    set.oldest_supported().name
                ),
            )
            .with("type", type_name)
            .with("version", version))
        }
        Some(ReleaseStatus::Deprecated) => {
            // The latest sunset among the deprecated releases speaking it: the version is
            // served until then.
            let deprecated_speakers = || {
                speakers
                    .iter()
                    .filter(|r| r.status == ReleaseStatus::Deprecated)
            };
            let sunset = deprecated_speakers().filter_map(|r| r.sunset.clone()).max();
            // Deprecated once its last speaker was.
            let since = deprecated_speakers()
                .filter_map(|r| r.deprecated.clone())
                .max();
            Ok(Served {
                release: None,
                version,
                deprecated: Some(Deprecated { sunset, since }),
            })
        }
        // Served by a current or supported release, or by none (a version between releases:
        // valid for the type, nothing to warn about).
        _ => Ok(Served {
            release: None,
            version,
            deprecated: None,
        }),
    }
}

/// 404 `unknown-type`.
pub fn unknown_type(set: &SchemaSet, type_name: &str) -> Problem {
    let known: Vec<&str> = set.types().map(|t| t.name()).collect();
    Problem::new(
        404,
        "unknown-type",
        "Unknown type",
        format!(
            "there is no type {type_name:?}; known types: {}",
            known.join(", ")
        ),
    )
    .with("type", type_name)
    .with("knownTypes", json!(known))
}

/// Negotiate the version of `type_name` for a request. `body` is the request body when there
/// is one (only detection looks at it).
pub fn negotiate(
    set: &SchemaSet,
    params: &Params,
    announce: &Announce,
    type_name: &str,
    body: Option<&Value>,
) -> Result<Served, Problem> {
    set.type_def(type_name)
        .map_err(|_| unknown_type(set, type_name))?;
    let release = named_release(set, announce)?;
    if let Some(&v) = announce.versions.get(type_name) {
        let mut served = from_version(set, type_name, v)?;
        // A named release is still the one served (its other types follow it).
        served.release = release.map(|r| r.name.clone());
        return Ok(served);
    }
    if let Some(r) = release {
        return from_release(r, type_name);
    }
    match set.unnamed_release() {
        UnnamedRelease::Fixed(r) => {
            check_served(set, r)?;
            from_release(r, type_name)
        }
        UnnamedRelease::Detect { fallback } => match body {
            Some(body) => detect(set, params, type_name, body),
            None => match fallback {
                Some(r) => {
                    check_served(set, r)?;
                    from_release(r, type_name)
                }
                None => Err(Problem::new(
                    400,
                    "release-required",
                    "Release required",
                    "this request has no body to detect a release from: name one with the Mutatis-Release header",
                )),
            },
        },
    }
}

/// Release detection from a body: the candidates are the served releases whose version of the
/// type validates the body. None: refused, listing each release tried with its first
/// validation error. Several: they must all store the body identically (translated to the
/// storage version), and the newest is served; otherwise refused as ambiguous. Never a guess.
pub fn detect(
    set: &SchemaSet,
    params: &Params,
    type_name: &str,
    body: &Value,
) -> Result<Served, Problem> {
    let mut tried = Vec::new();
    let mut candidates: Vec<&Release> = Vec::new();
    for r in set.releases().iter().filter(|r| r.status.is_served()) {
        let Some(v) = r.version_of(type_name) else {
            continue;
        };
        match set.validate(type_name, v, body) {
            Ok(()) => candidates.push(r),
            Err(issues) => {
                let first = issues.first();
                tried.push(json!({
                    "release": r.name,
                    "version": v,
                    "pointer": first.map_or("", |i| i.pointer.as_str()),
                    "message": first.map_or("", |i| i.message.as_str()),
                }));
            }
        }
    }
    let Some(newest) = candidates.last() else {
        // A body only an unsupported release's version accepts comes from an app that must
        // update: it is told so, the same way as one that names its release.
        let retired_match = set
            .releases()
            .iter()
            .rev()
            .filter(|r| !r.status.is_served())
            .find(|r| {
                r.version_of(type_name)
                    .is_some_and(|v| set.validate(type_name, v, body).is_ok())
            });
        if let Some(r) = retired_match {
            return Err(retired(set, r).with("detected", true));
        }
        return Err(Problem::new(
            400,
            "release-detection-failed",
            "Release detection failed",
            format!("the body of this {type_name} request matches no supported release; name one with the Mutatis-Release header"),
        )
        .with("tried", Value::Array(tried)));
    };
    if candidates.len() > 1 {
        let storage = set
            .storage(type_name)
            .map_err(|_| unknown_type(set, type_name))?
            .version;
        let mut stored: Option<Value> = None;
        let mut agree = true;
        for r in &candidates {
            let Some(v) = r.version_of(type_name) else {
                continue;
            };
            let translated = set
                .plan(type_name, v, storage)
                .ok()
                .and_then(|p| p.translate(body, params).ok());
            match (&stored, translated) {
                (_, None) => agree = false,
                (None, Some(t)) => stored = Some(t),
                (Some(s), Some(t)) => agree &= *s == t,
            }
            if !agree {
                break;
            }
        }
        if !agree {
            let names: Vec<&str> = candidates.iter().map(|r| r.name.as_str()).collect();
            return Err(Problem::new(
                400,
                "ambiguous-release",
                "Ambiguous release",
                format!(
                    "the body of this {type_name} request is valid in releases {} and they would store it differently; name one with the Mutatis-Release header",
                    names.join(", ")
                ),
            )
            .with("candidates", json!(names)));
        }
    }
    from_release(newest, type_name)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn set(default_release: &str) -> SchemaSet {
        SchemaSet::from_sources(vec![
            (
                PathBuf::from("mutatis.yaml"),
                format!(
                    "
name: app
releases:
  - {{name: '1', types: {{todo: 1}}, status: unsupported}}
  - {{name: '2', types: {{todo: 2}}, status: deprecated, sunset: 2027-01-01}}
  - {{name: '3', types: {{todo: 3}}, status: current}}
{default_release}
storage: {{todo: {{version: 3, strategy: lazy}}}}
"
                ),
            ),
            (
                PathBuf::from("types/todo.yaml"),
                "
type: todo
versions:
  1: {schema: {type: object, properties: {title: {type: string}, done: {type: boolean}}, required: [title], additionalProperties: false}}
  2: {lens: [{rename: {source: done, destination: finished}}]}
  3: {lens: [{add: {name: tags, type: array, items: {type: string}, default: []}}]}
"
                .to_owned(),
            ),
        ])
        .unwrap()
    }

    fn announce(r: Option<&str>, q: Option<&str>, v: Option<&str>) -> Announce {
        Announce::parse(r, q, v).unwrap()
    }

    #[test]
    fn header_wins_only_when_it_agrees_with_the_query() {
        assert_eq!(
            announce(Some("2"), Some("2"), None).release.as_deref(),
            Some("2")
        );
        assert_eq!(
            announce(None, Some("3"), None).release.as_deref(),
            Some("3")
        );
        let p = Announce::parse(Some("2"), Some("3"), None).unwrap_err();
        assert_eq!(p.name(), "conflicting-release");
        assert_eq!(
            Announce::parse(None, None, Some("todo"))
                .unwrap_err()
                .name(),
            "bad-versions-header"
        );
    }

    #[test]
    fn header_bytes_must_be_visible_ascii() {
        let s = set("");
        let p = Announce::read(Some(b"3\xff"), None, None, &s).unwrap_err();
        assert_eq!(p.name(), "bad-release-header");
        let p = Announce::read(None, None, Some(b"todo=\x013"), &s).unwrap_err();
        assert_eq!(p.name(), "bad-versions-header");
        let a = Announce::read(Some(b"3"), Some("3"), Some(b"todo=2"), &s).unwrap();
        assert_eq!((a.release.as_deref(), a.versions["todo"]), (Some("3"), 2));
    }

    #[test]
    fn an_empty_release_header_is_refused_not_defaulted() {
        for empty in ["", "  "] {
            let p = Announce::parse(Some(empty), None, None).unwrap_err();
            assert_eq!((p.status, p.name()), (400, "bad-release-header"));
        }
        // An empty query parameter names nothing, as before.
        assert_eq!(announce(None, Some(""), None).release, None);
    }

    #[test]
    fn versions_headers_name_types_and_versions_of_the_set() {
        let s = set("");
        let p = Announce::parse(None, None, Some("todo=3,")).unwrap_err();
        assert_eq!(p.name(), "bad-versions-header");
        assert!(p.detail.contains("empty entry"), "{}", p.detail);
        let p = announce(None, None, Some("Nope=1")).known(&s).unwrap_err();
        assert_eq!((p.status, p.name()), (400, "bad-versions-header"));
        assert_eq!(p.extensions["type"], "Nope");
        assert_eq!(p.extensions["knownTypes"], json!(["todo"]));
        let p = announce(None, None, Some("todo=9")).known(&s).unwrap_err();
        assert_eq!((p.status, p.name()), (400, "unknown-version"));
        assert_eq!(p.extensions["knownVersions"], json!([1, 2, 3]));
        let a = announce(Some("3"), None, Some("todo=2")).known(&s).unwrap();
        assert_eq!(a.versions["todo"], 2);
    }

    #[test]
    fn named_releases_resolve_with_deprecation() {
        let s = set("");
        let p = Params::new();
        let served = negotiate(&s, &p, &announce(Some("2"), None, None), "todo", None).unwrap();
        assert_eq!(served.version, 2);
        assert_eq!(served.release.as_deref(), Some("2"));
        assert_eq!(
            served.deprecated.unwrap().sunset.as_deref(),
            Some("2027-01-01")
        );
        let cur = negotiate(&s, &p, &announce(Some("3"), None, None), "todo", None).unwrap();
        assert_eq!(cur.deprecated, None);
    }

    #[test]
    fn unsupported_and_unknown_are_distinct() {
        let s = set("");
        let p = Params::new();
        let e = negotiate(&s, &p, &announce(Some("1"), None, None), "todo", None).unwrap_err();
        assert_eq!(e.name(), "unsupported-release");
        assert_eq!(e.extensions["oldestSupported"], "2");
        assert_eq!(e.extensions["currentRelease"], "3");
        let e = negotiate(&s, &p, &announce(Some("9"), None, None), "todo", None).unwrap_err();
        assert_eq!(e.name(), "unknown-release");
        let e = negotiate(&s, &p, &announce(None, None, None), "nope", None).unwrap_err();
        assert_eq!(e.name(), "unknown-type");
    }

    #[test]
    fn versions_header_names_versions_directly() {
        let s = set("");
        let p = Params::new();
        let v = negotiate(&s, &p, &announce(None, None, Some("todo=2")), "todo", None).unwrap();
        assert_eq!((v.version, v.release.clone()), (2, None));
        assert!(v.deprecated.is_some());
        let e = negotiate(&s, &p, &announce(None, None, Some("todo=7")), "todo", None).unwrap_err();
        assert_eq!(e.name(), "unknown-version");
        let e = negotiate(&s, &p, &announce(None, None, Some("todo=1")), "todo", None).unwrap_err();
        assert_eq!(e.name(), "unsupported-release");
        // A release plus a per-type override: the override wins for its type.
        let v = negotiate(
            &s,
            &p,
            &announce(Some("3"), None, Some("todo=2")),
            "todo",
            None,
        )
        .unwrap();
        assert_eq!((v.version, v.release.as_deref()), (2, Some("3")));
    }

    #[test]
    fn no_release_named_uses_the_default() {
        let s = set("defaultRelease: '2'");
        let v = negotiate(&s, &Params::new(), &Announce::default(), "todo", None).unwrap();
        assert_eq!(v.release.as_deref(), Some("2"));
        let s = set("");
        let v = negotiate(&s, &Params::new(), &Announce::default(), "todo", None).unwrap();
        assert_eq!(v.release.as_deref(), Some("3"));
    }

    #[test]
    fn detection_picks_the_only_matching_release() {
        let s = set("defaultRelease: {detect: body, fallback: '3'}");
        let p = Params::new();
        let a = Announce::default();
        // `finished` exists only in version 2.
        let v = negotiate(
            &s,
            &p,
            &a,
            "todo",
            Some(&json!({"title": "t", "finished": true})),
        )
        .unwrap();
        assert_eq!(v.release.as_deref(), Some("2"));
        // `tags` only in version 3.
        let v = negotiate(&s, &p, &a, "todo", Some(&json!({"title": "t", "tags": []}))).unwrap();
        assert_eq!(v.release.as_deref(), Some("3"));
        // No body: the fallback.
        let v = negotiate(&s, &p, &a, "todo", None).unwrap();
        assert_eq!(v.release.as_deref(), Some("3"));
    }

    /// Releases `b` and `c` speak the same version; `note@1` allows extra members.
    fn note_set() -> SchemaSet {
        SchemaSet::from_sources(vec![
            (
                PathBuf::from("mutatis.yaml"),
                "
name: notes
releases:
  - {name: a, types: {note: 1}, status: supported}
  - {name: b, types: {note: 2}, status: supported}
  - {name: c, types: {note: 2}, status: current}
defaultRelease: {detect: body}
storage: {note: {version: 2, strategy: lazy}}
"
                .to_owned(),
            ),
            (
                PathBuf::from("types/note.yaml"),
                "
type: note
versions:
  1: {schema: {type: object, properties: {text: {type: string}}, required: [text]}}
  2: {lens: [{rename: {source: text, destination: body}}]}
"
                .to_owned(),
            ),
        ])
        .unwrap()
    }

    #[test]
    fn detection_refuses_to_guess() {
        let s = set("defaultRelease: {detect: body, fallback: '3'}");
        let p = Params::new();
        let a = Announce::default();
        let e = negotiate(&s, &p, &a, "todo", Some(&json!({"nope": 1}))).unwrap_err();
        assert_eq!(e.name(), "release-detection-failed");
        assert_eq!(e.extensions["tried"].as_array().unwrap().len(), 2);

        let s = note_set();
        // Valid in version 1 (extra members allowed) and 2, stored differently: refused.
        let e =
            negotiate(&s, &p, &a, "note", Some(&json!({"text": "a", "body": "b"}))).unwrap_err();
        assert_eq!(e.name(), "ambiguous-release");
        assert_eq!(e.extensions["candidates"], json!(["a", "b", "c"]));
        // Valid for b and c only, which store it identically: the newest is served.
        let v = negotiate(&s, &p, &a, "note", Some(&json!({"body": "b"}))).unwrap();
        assert_eq!(v.release.as_deref(), Some("c"));
        let v = negotiate(&s, &p, &a, "note", Some(&json!({"text": "a"}))).unwrap();
        assert_eq!((v.release.as_deref(), v.version), (Some("a"), 1));
    }

    #[test]
    fn a_body_only_a_retired_release_accepts_is_told_to_update() {
        let s = set("defaultRelease: {detect: body, fallback: '3'}");
        // `done` exists only in version 1, which release 1 spoke: it is no longer served.
        let e = negotiate(
            &s,
            &Params::new(),
            &Announce::default(),
            "todo",
            Some(&json!({"title": "t", "done": true})),
        )
        .unwrap_err();
        assert_eq!((e.status, e.name()), (400, "unsupported-release"));
        assert_eq!(e.extensions["release"], "1");
        assert_eq!(e.extensions["oldestSupported"], "2");
        assert_eq!(e.extensions["detected"], true);
    }

    #[test]
    fn a_release_past_its_sunset_is_unsupported_and_the_problem_names_the_date() {
        let a = announce(Some("2"), None, None);
        let p = Params::new();
        let served = negotiate(&set("").as_of("2026-12-31"), &p, &a, "todo", None).unwrap();
        assert_eq!(
            served.deprecated.and_then(|d| d.sunset).as_deref(),
            Some("2027-01-01")
        );
        let e = negotiate(&set("").as_of("2027-01-01"), &p, &a, "todo", None).unwrap_err();
        assert_eq!((e.status, e.name()), (400, "unsupported-release"));
        assert_eq!(e.extensions["sunset"], "2027-01-01");
        assert!(e.detail.contains("sunset was 2027-01-01"), "{}", e.detail);
        // Asking for its version directly is refused the same way.
        let v = announce(None, None, Some("todo=2"));
        let e = negotiate(&set("").as_of("2027-01-01"), &p, &v, "todo", None).unwrap_err();
        assert_eq!(e.name(), "unsupported-release");
    }

    #[test]
    fn detection_without_fallback_needs_a_body() {
        let s = set("defaultRelease: {detect: body}");
        let e = negotiate(&s, &Params::new(), &Announce::default(), "todo", None).unwrap_err();
        assert_eq!(e.name(), "release-required");
    }
}
