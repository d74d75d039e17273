//! SystemMetadata@1..3 (examples/dataone): nested objects, arrays with bounds, string enums,
//! formats, optional fields, and open objects (held with a flattened map of the rest).

mod common;

use std::collections::BTreeMap;

use common::example;
use mutatis_versioned::{schemars::JsonSchema, DriftDirection, Params, Versioned};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Checksum {
    pub algorithm: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Permission {
    Read,
    Write,
    ChangePermission,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AccessRule {
    #[schemars(length(min = 1))]
    pub subject: Vec<String>,
    #[schemars(length(min = 1))]
    pub permission: Vec<Permission>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AccessPolicy {
    pub allow: Vec<AccessRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_allowed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_replicas: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_member_node: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_member_node: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplicationStatus {
    Queued,
    Requested,
    Completed,
    Failed,
    Invalidated,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Replica {
    pub replica_member_node: String,
    pub replication_status: ReplicationStatus,
    #[schemars(extend("format" = "date-time"))]
    pub replica_verified: String,
}

/// `mediaType` is an open object in the version: what it does not list is kept in `rest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MediaType {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<Vec<MediaTypeProperty>>,
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MediaTypeProperty {
    pub name: String,
    pub value: String,
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct License {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(url)]
    pub url: Option<String>,
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// The fields of version 1, then those a version adds.
macro_rules! system_metadata {
    ($name:ident, $version:literal { $($extra:tt)* }) => {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Versioned)]
        #[serde(rename_all = "camelCase")]
        #[versioned(type = "SystemMetadata", version = $version)]
        pub struct $name {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub serial_version: Option<u64>,
            #[schemars(length(min = 1))]
            pub identifier: String,
            #[schemars(length(min = 1))]
            pub format_id: String,
            pub size: u64,
            pub checksum: Checksum,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub submitter: Option<String>,
            pub rights_holder: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub access_policy: Option<AccessPolicy>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub replication_policy: Option<ReplicationPolicy>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub obsoletes: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub obsoleted_by: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub archived: Option<bool>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(extend("format" = "date-time"))]
            pub date_uploaded: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(extend("format" = "date-time"))]
            pub date_sys_metadata_modified: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub origin_member_node: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub authoritative_member_node: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub replica: Option<Vec<Replica>>,
            $($extra)*
        }
    };
}

system_metadata!(SystemMetadata1, 1 {});
system_metadata!(SystemMetadata2, 2 {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
});
system_metadata!(SystemMetadata3, 3 {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<License>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(length(min = 1)))]
    pub keywords: Option<Vec<String>>,
});

/// Version 2's `mediaType` without the map of the rest: a version-2 document loses what it
/// does not list.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct ClosedMediaType {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    property: Option<Vec<MediaTypeProperty>>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema, Versioned)]
#[serde(rename_all = "camelCase")]
#[versioned(type = "SystemMetadata", version = 2)]
struct DropsMediaTypeFields {
    identifier: String,
    format_id: String,
    size: u64,
    checksum: Checksum,
    rights_holder: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<ClosedMediaType>,
}

#[test]
fn every_version_matches_its_struct() {
    let set = example("dataone");
    mutatis_versioned::assert_matches::<SystemMetadata1>(&set);
    mutatis_versioned::assert_matches::<SystemMetadata2>(&set);
    mutatis_versioned::assert_matches::<SystemMetadata3>(&set);
}

#[test]
fn a_struct_that_drops_fields_is_reported_for_each() {
    let report = mutatis_versioned::check::<DropsMediaTypeFields>(&example("dataone"));
    assert!(!report.matches());
    // Fields of the version the struct does not have at all…
    assert!(
        report
            .in_direction(DriftDirection::Reads)
            .any(|d| d.field == "/replica"),
        "{report}"
    );
    assert!(
        report
            .in_direction(DriftDirection::Reads)
            .any(|d| d.field == "/seriesId"),
        "{report}"
    );
    // …and the open `mediaType`, whose unlisted members it drops.
    assert!(
        report
            .in_direction(DriftDirection::Reads)
            .any(|d| d.field.starts_with("/mediaType")),
        "{report}"
    );
    // Without `length(min = 1)` it can write an empty identifier, which version 2 refuses.
    let writes: Vec<&str> = report
        .in_direction(DriftDirection::Writes)
        .map(|d| d.field.as_str())
        .collect();
    assert_eq!(writes, ["/identifier", "/formatId"], "{report}");
}

fn v3() -> SystemMetadata3 {
    serde_json::from_value(json!({
        "serialVersion": 3,
        "identifier": "doi:10.5063/F1",
        "formatId": "text/csv",
        "size": 1024,
        "checksum": {"algorithm": "SHA-256", "value": "ab12"},
        "rightsHolder": "CN=alice",
        "accessPolicy": {"allow": [{"subject": ["public"], "permission": ["read"]}]},
        "replicationPolicy": {"replicationAllowed": true, "numberReplicas": 2},
        "dateUploaded": "2026-01-02T03:04:05Z",
        "replica": [{"replicaMemberNode": "urn:node:A", "replicationStatus": "completed",
                     "replicaVerified": "2026-01-03T00:00:00Z"}],
        "seriesId": "series-1",
        "mediaType": {"name": "text/csv", "property": [{"name": "charset", "value": "utf-8"}],
                      "x-note": "kept"},
        "fileName": "data.csv",
        "license": {"id": "CC-BY-4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
        "keywords": ["soil", "carbon"]
    }))
    .unwrap()
}

#[test]
fn every_pair_and_conservation() {
    let set = example("dataone");
    let p = Params::new();
    let s3 = v3();
    assert_eq!(s3.media_type.as_ref().unwrap().rest["x-note"], "kept");
    let s2: SystemMetadata2 = s3.migrate_to(&set, &p).unwrap();
    let s1: SystemMetadata1 = s3.migrate_to(&set, &p).unwrap();
    assert_eq!(s2.series_id.as_deref(), Some("series-1"));
    assert_eq!(s1.identifier, s3.identifier);
    assert_eq!(s1.replica, s3.replica);
    assert_eq!(s2.migrate_to::<SystemMetadata1>(&set, &p).unwrap(), s1);
    // Up without the stored value: the added fields are absent, not invented.
    let up: SystemMetadata3 = s1.migrate_to(&set, &p).unwrap();
    assert_eq!((up.series_id, up.license, up.keywords), (None, None, None));
    let up: SystemMetadata3 = s2.migrate_to(&set, &p).unwrap();
    assert_eq!(up.media_type, s3.media_type);
    // Onto the stored value: nothing lost.
    assert_eq!(s1.migrate_onto(&s3, &set, &p).unwrap(), s3);
    assert_eq!(s2.migrate_onto(&s3, &set, &p).unwrap(), s3);
    assert_eq!(s1.migrate_onto(&s2, &set, &p).unwrap(), s2);
}

#[test]
fn an_invalid_nested_value_names_its_pointer() {
    let set = example("dataone");
    let mut s3 = v3();
    s3.access_policy.as_mut().unwrap().allow[0].subject.clear();
    let err = s3
        .migrate_to::<SystemMetadata1>(&set, &Params::new())
        .unwrap_err();
    assert_eq!(
        err.pointer(),
        Some("/accessPolicy/allow/0/subject"),
        "{err}"
    );
}
