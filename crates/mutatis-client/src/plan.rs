//! Which version to speak to a server, per type, and which negotiation headers say so. Pure:
//! a function of the client's schema set, its release and the server's `/meta`, tested without
//! HTTP.
//!
//! The rule, per type (the client's version is its release's version of the type):
//!
//! 1. The server serves the client's version → speak it; the server translates.
//! 2. The server is *older*: every version it serves is below the client's, and none of its
//!    releases (served or not) speaks the client's version → speak the newest version the
//!    server serves that the client's own set also has, and translate on the client's side.
//!    No such version → [`Error::NoCommonVersion`].
//! 3. Otherwise the server knows the client's version or has moved past it → speak it anyway
//!    and let the server decide: it refuses a retired version with the unsupported-release
//!    problem, which is what tells an old app to lock and ask for an update. The client never
//!    translates *up* to dodge that refusal.

use std::collections::BTreeMap;

use mutatis_schema::SchemaSet;

use crate::error::Error;
use crate::meta::Meta;

/// How documents of one type travel between this client and a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The client speaks `version` on the wire and the server translates.
    Server {
        /// The client's version, spoken as it is.
        version: u32,
    },
    /// The server is older: the client speaks `server` on the wire and translates to and
    /// from its own `client` version with its schema set's lenses.
    Local {
        /// The client's version.
        client: u32,
        /// The version spoken on the wire.
        server: u32,
    },
}

impl Route {
    /// The version spoken on the wire.
    pub fn wire_version(self) -> u32 {
        match self {
            Route::Server { version } => version,
            Route::Local { server, .. } => server,
        }
    }

    /// The client's own version of the type.
    pub fn client_version(self) -> u32 {
        match self {
            Route::Server { version } => version,
            Route::Local { client, .. } => client,
        }
    }

    /// Whether the client translates.
    pub fn is_local(self) -> bool {
        matches!(self, Route::Local { .. })
    }
}

/// The client's version of `type_name`: its release's version in its own set.
pub fn client_version(set: &SchemaSet, release: &str, type_name: &str) -> Result<u32, Error> {
    set.release(release)
        .and_then(|r| r.version_of(type_name))
        .ok_or_else(|| Error::UnknownType {
            type_name: type_name.to_owned(),
            release: release.to_owned(),
        })
}

/// The route of `type_name` for a client of `release` (in `set`) talking to the server that
/// published `meta`. See the module docs for the rule.
pub fn route(set: &SchemaSet, release: &str, meta: &Meta, type_name: &str) -> Result<Route, Error> {
    let client = client_version(set, release, type_name)?;
    let served = meta.versions(type_name);
    if served.contains(&client) {
        return Ok(Route::Server { version: client });
    }
    let older = served.iter().all(|&v| v < client) && !meta.knows_version(type_name, client);
    if !older {
        return Ok(Route::Server { version: client });
    }
    let ours = set.versions(type_name)?;
    served
        .iter()
        .copied()
        .filter(|v| ours.contains(v))
        .max()
        .map(|server| Route::Local { client, server })
        .ok_or_else(|| Error::NoCommonVersion {
            type_name: type_name.to_owned(),
            client,
            server: served.to_vec(),
        })
}

/// The negotiation headers of one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Negotiation {
    /// `Mutatis-Release`, when the server has the client's release with the same type map.
    pub release: Option<String>,
    /// `Mutatis-Versions` entries: the types whose version the release header does not
    /// already say.
    pub versions: BTreeMap<String, u32>,
}

impl Negotiation {
    /// The `Mutatis-Versions` header value (`A=1, B=2`), if any type needs one.
    pub fn versions_header(&self) -> Option<String> {
        if self.versions.is_empty() {
            return None;
        }
        let parts: Vec<String> = self
            .versions
            .iter()
            .map(|(t, v)| format!("{t}={v}"))
            .collect();
        Some(parts.join(", "))
    }

    /// A stable label of what was spoken, for messages and for keying deprecation notices
    /// when the server names no release.
    pub fn label(&self) -> String {
        match (&self.release, self.versions_header()) {
            (Some(r), None) => r.clone(),
            (Some(r), Some(v)) => format!("{r} ({v})"),
            (None, Some(v)) => v,
            (None, None) => String::new(),
        }
    }
}

/// The headers for a request that touches `routes` (type → route). The release is named when
/// the server lists a release of that name with exactly the client's type map (so the name
/// means the same thing on both sides); types it does not cover as spoken — all of them
/// otherwise — go into `Mutatis-Versions`.
pub fn negotiate(
    set: &SchemaSet,
    release: &str,
    meta: &Meta,
    routes: &BTreeMap<String, Route>,
) -> Negotiation {
    let same_release = match (set.release(release), meta.release(release)) {
        (Some(ours), Some(theirs)) => ours.types == theirs.types,
        _ => false,
    };
    let versions = routes
        .iter()
        .filter(|(_, route)| !same_release || route.is_local())
        .map(|(t, route)| (t.clone(), route.wire_version()))
        .collect();
    Negotiation {
        release: same_release.then(|| release.to_owned()),
        versions,
    }
}

/// Parse a `Mutatis-Versions` header (`A=1, B=2`) into type → version; malformed entries are
/// skipped (the header is advisory on a response).
pub fn parse_versions_header(value: &str) -> BTreeMap<String, u32> {
    value
        .split(',')
        .filter_map(|part| {
            let (t, v) = part.split_once('=')?;
            Some((t.trim().to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    /// A set with `Student` versions `versions` and one release per version, named after it.
    fn set(versions: &[u32], statuses: &[(u32, &str)]) -> SchemaSet {
        let mut releases = String::new();
        for v in versions {
            let status = statuses
                .iter()
                .find(|(r, _)| r == v)
                .map(|(_, s)| *s)
                .unwrap_or("supported");
            releases.push_str(&format!(
                "  - {{name: \"{v}\", types: {{Student: {v}}}, status: {status}}}\n"
            ));
        }
        let mut type_file = String::from("type: Student\nversions:\n");
        for (i, v) in versions.iter().enumerate() {
            if i == 0 {
                type_file.push_str(&format!(
                    "  {v}:\n    schema: {{type: object, properties: {{f{v}: {{type: string}}}}}}\n"
                ));
            } else {
                type_file.push_str(&format!(
                    "  {v}:\n    lens:\n      - add: {{name: f{v}, type: string, default: ''}}\n"
                ));
            }
        }
        let storage = versions.last().copied().unwrap_or(1);
        SchemaSet::from_sources(vec![
            (
                PathBuf::from("mutatis.yaml"),
                format!("name: s\nreleases:\n{releases}storage:\n  Student: {{version: {storage}, strategy: lazy}}\n"),
            ),
            (PathBuf::from("types/Student.yaml"), type_file),
        ])
        .unwrap()
    }

    /// The `/meta` a server running `set` would publish.
    fn meta_of(set: &SchemaSet) -> Meta {
        let types: serde_json::Map<String, serde_json::Value> = set
            .types()
            .map(|t| {
                let v: Vec<u32> = set
                    .supported_versions(t.name())
                    .unwrap()
                    .into_iter()
                    .collect();
                (t.name().to_owned(), json!({"versions": v}))
            })
            .collect();
        let releases: Vec<_> = set
            .releases()
            .iter()
            .map(|r| json!({"name": r.name, "types": r.types, "status": r.status.as_str()}))
            .collect();
        serde_json::from_value(json!({"types": types, "releases": releases})).unwrap()
    }

    fn routes(pairs: &[(&str, Route)]) -> BTreeMap<String, Route> {
        pairs.iter().map(|(t, r)| ((*t).to_owned(), *r)).collect()
    }

    #[test]
    fn same_server_speaks_the_release() {
        let client = set(&[3, 4, 5], &[(5, "current")]);
        let meta = meta_of(&client);
        let r = route(&client, "4", &meta, "Student").unwrap();
        assert_eq!(r, Route::Server { version: 4 });
        let n = negotiate(&client, "4", &meta, &routes(&[("Student", r)]));
        assert_eq!(n.release.as_deref(), Some("4"));
        assert_eq!(n.versions_header(), None);
    }

    #[test]
    fn newer_server_translates_for_us() {
        let client = set(&[3, 4], &[(4, "current")]);
        let server = set(&[3, 4, 5], &[(5, "current")]);
        let meta = meta_of(&server);
        let r = route(&client, "4", &meta, "Student").unwrap();
        assert_eq!(r, Route::Server { version: 4 });
        // Same name, same type map: the release header is enough.
        let n = negotiate(&client, "4", &meta, &routes(&[("Student", r)]));
        assert_eq!(n.release.as_deref(), Some("4"));
        assert!(n.versions.is_empty());
    }

    #[test]
    fn a_release_name_meaning_something_else_is_not_sent() {
        let client = set(&[3, 4], &[(4, "current")]);
        // The server's release "4" speaks Student 5: the name means another version there.
        let server = SchemaSet::from_sources(vec![
            (
                PathBuf::from("mutatis.yaml"),
                "name: s\nreleases:\n  - {name: \"3\", types: {Student: 4}, status: supported}\n  - {name: \"4\", types: {Student: 5}, status: current}\nstorage:\n  Student: {version: 5, strategy: lazy}\n".to_owned(),
            ),
            (
                PathBuf::from("types/Student.yaml"),
                "type: Student\nversions:\n  4:\n    schema: {type: object}\n  5:\n    lens:\n      - add: {name: x, type: string, default: ''}\n".to_owned(),
            ),
        ])
        .unwrap();
        let meta = meta_of(&server);
        let r = route(&client, "4", &meta, "Student").unwrap();
        assert_eq!(r, Route::Server { version: 4 });
        let n = negotiate(&client, "4", &meta, &routes(&[("Student", r)]));
        assert_eq!(n.release, None);
        assert_eq!(n.versions_header().as_deref(), Some("Student=4"));
    }

    #[test]
    fn older_server_makes_the_client_translate() {
        let client = set(&[3, 4, 5], &[(5, "current")]);
        let server = set(&[3, 4], &[(4, "current")]);
        let meta = meta_of(&server);
        let r = route(&client, "5", &meta, "Student").unwrap();
        assert_eq!(
            r,
            Route::Local {
                client: 5,
                server: 4
            }
        );
        assert_eq!(r.wire_version(), 4);
        let n = negotiate(&client, "5", &meta, &routes(&[("Student", r)]));
        assert_eq!(n.release, None);
        assert_eq!(n.versions_header().as_deref(), Some("Student=4"));
        // An older client of the same set still goes through the server.
        assert_eq!(
            route(&client, "3", &meta, "Student").unwrap(),
            Route::Server { version: 3 }
        );
    }

    #[test]
    fn older_server_picks_the_newest_version_we_also_have() {
        // The client's set starts at version 3 (say, loaded from a trimmed manifest): the
        // server's 4 is common, its 2 is not.
        let client = set(&[3, 4, 6], &[(6, "current")]);
        let server = set(&[2, 4], &[(4, "current")]);
        let meta = meta_of(&server);
        assert_eq!(
            route(&client, "6", &meta, "Student").unwrap(),
            Route::Local {
                client: 6,
                server: 4
            }
        );
    }

    #[test]
    fn disjoint_versions_are_a_typed_error() {
        let client = set(&[5, 6], &[(6, "current")]);
        let server = set(&[1, 2], &[(2, "current")]);
        let meta = meta_of(&server);
        let err = route(&client, "6", &meta, "Student").unwrap_err();
        assert!(
            matches!(&err, Error::NoCommonVersion { type_name, client: 6, server } if type_name == "Student" && server == &[1, 2]),
            "{err:?}"
        );
    }

    #[test]
    fn a_type_the_server_lacks_has_no_common_version() {
        let client = set(&[1], &[(1, "current")]);
        let meta: Meta = serde_json::from_value(json!({"types": {}})).unwrap();
        assert!(matches!(
            route(&client, "1", &meta, "Student"),
            Err(Error::NoCommonVersion { client: 1, .. })
        ));
    }

    #[test]
    fn a_retired_version_is_left_to_the_server_to_refuse() {
        // Release 2 is unsupported on the server: the client must not translate up to dodge
        // the refusal; it speaks 2 and the server answers with the unsupported problem.
        let client = set(&[2, 3, 4], &[(2, "unsupported"), (4, "current")]);
        let meta = meta_of(&client);
        let r = route(&client, "2", &meta, "Student").unwrap();
        assert_eq!(r, Route::Server { version: 2 });
        let n = negotiate(&client, "2", &meta, &routes(&[("Student", r)]));
        assert_eq!(n.release.as_deref(), Some("2"));
        // A version the server dropped without a trace is below all it serves: still its call.
        let server = set(&[3, 4], &[(4, "current")]);
        assert_eq!(
            route(&client, "2", &meta_of(&server), "Student").unwrap(),
            Route::Server { version: 2 }
        );
    }

    #[test]
    fn a_type_outside_the_release_is_refused() {
        let client = set(&[1], &[(1, "current")]);
        let meta = meta_of(&client);
        assert!(matches!(
            route(&client, "1", &meta, "todo"),
            Err(Error::UnknownType { .. })
        ));
    }

    #[test]
    fn mixed_routes_name_the_release_and_the_local_types() {
        let client = set(&[3, 4, 5], &[(5, "current")]);
        let meta = meta_of(&client);
        let n = negotiate(
            &client,
            "5",
            &meta,
            &routes(&[
                ("Student", Route::Server { version: 5 }),
                (
                    "Other",
                    Route::Local {
                        client: 2,
                        server: 1,
                    },
                ),
            ]),
        );
        assert_eq!(n.release.as_deref(), Some("5"));
        assert_eq!(n.versions_header().as_deref(), Some("Other=1"));
        assert_eq!(n.label(), "5 (Other=1)");
    }

    #[test]
    fn versions_header_round_trips() {
        let parsed = parse_versions_header("Student=3, todo=2,bad, x=y");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed["Student"], 3);
        assert_eq!(parsed["todo"], 2);
    }
}
