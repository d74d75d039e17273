//! `GET /meta`: what a server tells every client, supported or not — the versions it serves
//! per type and its releases. The client plans its requests from it.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A server's `/meta` document.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// The server node's id.
    #[serde(default)]
    pub node_id: String,
    /// The server's mutatis version.
    #[serde(default)]
    pub mutatis: String,
    /// The name of the schema set the server runs.
    #[serde(default)]
    pub schema_set: String,
    /// Per type: the versions served and how it is stored.
    pub types: BTreeMap<String, TypeMeta>,
    /// The server's releases, oldest first, unsupported ones included.
    #[serde(default)]
    pub releases: Vec<ReleaseMeta>,
    /// The server's current release.
    #[serde(default)]
    pub current_release: Option<String>,
    /// The release the server serves to a client that names none.
    #[serde(default)]
    pub default_release: Option<String>,
}

/// One type in `/meta`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeMeta {
    /// The versions some served release speaks, lowest first.
    pub versions: Vec<u32>,
    /// The version and strategy the type is stored in.
    #[serde(default)]
    pub storage: Option<StorageMeta>,
}

/// How a type is stored on the server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StorageMeta {
    /// The storage version.
    pub version: u32,
    /// `eager`, `lazy` or `multi`.
    pub strategy: String,
}

/// One release in `/meta`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReleaseMeta {
    /// The release's name.
    pub name: String,
    /// Type → version.
    pub types: BTreeMap<String, u32>,
    /// `current`, `supported`, `deprecated` or `unsupported`.
    pub status: String,
    /// The sunset date, for a deprecated release.
    #[serde(default)]
    pub sunset: Option<String>,
}

impl Meta {
    /// The release named `name`, whatever its status.
    pub fn release(&self, name: &str) -> Option<&ReleaseMeta> {
        self.releases.iter().find(|r| r.name == name)
    }

    /// The versions of `type_name` the server serves (empty for a type it does not have).
    pub fn versions(&self, type_name: &str) -> &[u32] {
        self.types
            .get(type_name)
            .map(|t| t.versions.as_slice())
            .unwrap_or_default()
    }

    /// Whether any of the server's releases, served or not, speaks `type_name@version`: the
    /// server knows that version, so a client speaking it must let the server decide (it
    /// translates, or refuses it as unsupported).
    pub fn knows_version(&self, type_name: &str, version: u32) -> bool {
        self.versions(type_name).contains(&version)
            || self
                .releases
                .iter()
                .any(|r| r.types.get(type_name) == Some(&version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_documented_shape() {
        let meta: Meta = serde_json::from_value(json!({
            "nodeId": "n1", "mutatis": "0.1.0", "schemaSet": "student-register",
            "types": {"Student": {"versions": [3, 4, 5], "storage": {"version": 5, "strategy": "lazy"}}},
            "releases": [
                {"name": "2", "types": {"Student": 2}, "status": "unsupported"},
                {"name": "3", "types": {"Student": 3}, "status": "deprecated", "sunset": "2026-09-01"},
                {"name": "5", "types": {"Student": 5}, "status": "current"}
            ],
            "currentRelease": "5", "defaultRelease": "5"
        }))
        .unwrap();
        assert_eq!(meta.versions("Student"), &[3, 4, 5]);
        assert!(meta.versions("todo").is_empty());
        assert!(meta.knows_version("Student", 2));
        assert!(!meta.knows_version("Student", 6));
        assert_eq!(
            meta.release("3").and_then(|r| r.sunset.as_deref()),
            Some("2026-09-01")
        );
    }
}
