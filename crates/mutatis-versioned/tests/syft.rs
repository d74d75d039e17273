//! NodeMetadata@1..2 (examples/syft): many optional fields, snake_case names, string enums.

mod common;

use common::example;
use mutatis_versioned::{schemars::JsonSchema, DriftDirection, Params, Versioned};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    Domain,
    Network,
    Enclave,
    Gateway,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeSideType {
    High,
    Low,
}

/// The fields both versions share, optional ones left out when `None`.
macro_rules! node_metadata {
    ($name:ident, $version:literal, $highest:ident, $lowest:ident) => {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Versioned)]
        #[versioned(type = "NodeMetadata", version = $version)]
        pub struct $name {
            pub name: String,
            pub id: String,
            pub verify_key: String,
            pub $highest: i64,
            pub $lowest: i64,
            pub syft_version: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub node_type: Option<NodeType>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub deployed_on: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub organization: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub on_board: Option<bool>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub description: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub signup_enabled: Option<bool>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub admin_email: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub node_side_type: Option<NodeSideType>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub show_warnings: Option<bool>,
        }
    };
}

node_metadata!(
    NodeMetadata1,
    1,
    highest_object_version,
    lowest_object_version
);
node_metadata!(NodeMetadata2, 2, highest_version, lowest_version);

/// Version 2 with `node_type` as `Option<T>` written as `null`: the version has no `null`.
#[derive(Debug, Serialize, Deserialize, JsonSchema, Versioned)]
#[versioned(type = "NodeMetadata", version = 2)]
struct WritesNull {
    name: String,
    id: String,
    verify_key: String,
    highest_version: i64,
    lowest_version: i64,
    syft_version: String,
    node_type: Option<NodeType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deployed_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    organization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on_board: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signup_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    admin_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node_side_type: Option<NodeSideType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    show_warnings: Option<bool>,
}

#[test]
fn both_versions_match_their_structs() {
    let set = example("syft");
    mutatis_versioned::assert_matches::<NodeMetadata1>(&set);
    mutatis_versioned::assert_matches::<NodeMetadata2>(&set);
}

#[test]
fn an_option_written_as_null_is_drift_in_the_written_direction() {
    let report = mutatis_versioned::check::<WritesNull>(&example("syft"));
    assert!(
        report
            .in_direction(DriftDirection::Writes)
            .any(|d| d.field == "/node_type"),
        "{report}"
    );
    // It reads every version-2 document (an absent field is `None`, via serde's Option rule).
    assert_eq!(
        report.in_direction(DriftDirection::Reads).count(),
        0,
        "{report}"
    );
}

fn opt<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    proptest::option::of(s)
}

fn node1() -> impl Strategy<Value = NodeMetadata1> {
    (
        (
            "[a-z]{1,6}",
            "[0-9a-f]{4}",
            "[0-9a-f]{8}",
            any::<i64>(),
            any::<i64>(),
            "0\\.[0-9]\\.[0-9]",
        ),
        (
            opt(prop_oneof![
                Just(NodeType::Domain),
                Just(NodeType::Network),
                Just(NodeType::Enclave),
                Just(NodeType::Gateway)
            ]),
            opt("[a-z]{0,5}"),
            opt("[a-z]{0,5}"),
            opt(any::<bool>()),
            opt("[a-z ]{0,9}"),
            opt(any::<bool>()),
            opt("[a-z]{1,4}@[a-z]{1,4}"),
            opt(prop_oneof![
                Just(NodeSideType::High),
                Just(NodeSideType::Low)
            ]),
            opt(any::<bool>()),
        ),
    )
        .prop_map(
            |((name, id, verify_key, hi, lo, syft_version), rest)| NodeMetadata1 {
                name,
                id,
                verify_key,
                highest_object_version: hi,
                lowest_object_version: lo,
                syft_version,
                node_type: rest.0,
                deployed_on: rest.1,
                organization: rest.2,
                on_board: rest.3,
                description: rest.4,
                signup_enabled: rest.5,
                admin_email: rest.6,
                node_side_type: rest.7,
                show_warnings: rest.8,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A rename-only lens is a bijection: up then down is the identity, optional fields
    /// absent or present, and every field arrives under its new name.
    #[test]
    fn up_and_down(v1 in node1()) {
        let set = example("syft");
        let p = Params::new();
        let v2: NodeMetadata2 = v1.migrate_to(&set, &p).unwrap();
        prop_assert_eq!(v2.highest_version, v1.highest_object_version);
        prop_assert_eq!(v2.lowest_version, v1.lowest_object_version);
        prop_assert_eq!(&v2.admin_email, &v1.admin_email);
        prop_assert_eq!(&v2.migrate_to::<NodeMetadata1>(&set, &p).unwrap(), &v1);
        prop_assert_eq!(&v2.migrate_onto(&v1, &set, &p).unwrap(), &v1);
    }
}
