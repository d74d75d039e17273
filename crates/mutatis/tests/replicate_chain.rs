//! Replication along a chain of real nodes on different versions of `examples/dataone`: each
//! node is a `mutatis serve` process on its own redb file, serving a copy of the schema set
//! trimmed to version 1, 2 or 3 (a v1 node has never heard of v2 or v3), and every
//! replication is the `mutatis replicate` command. What a v1 node cannot hold is refused,
//! dropped and counted, or carried (per `--policy`); carried fields come back on newer nodes,
//! byte for byte, and an old node's edit reaches a new node without erasing anything.

mod support;

use std::path::PathBuf;

use serde_json::{json, Value};
use support::{trimmed_set, Node, Replication, SYSMETA};

/// The fields v1 lacks: v2's, then v3's.
const NEWER_FIELDS: [&str; 5] = ["seriesId", "mediaType", "fileName", "license", "keywords"];
/// The fields v2 lacks.
const V3_FIELDS: [&str; 2] = ["license", "keywords"];

const ID: &str = "knb-lter-sbc.7";

/// A v3 record with every field v1 and v2 lack.
fn record_v3() -> Value {
    json!({
        "serialVersion": 3,
        "identifier": "doi:10.6073/pasta/1f1b8d7c3a",
        "formatId": "eml://ecoinformatics.org/eml-2.1.1",
        "size": 20375,
        "checksum": {"algorithm": "SHA-256", "value": "4d7a2f0c1e8b9a3d5c6e7f8091a2b3c4"},
        "submitter": "http://orcid.org/0000-0002-1825-0097",
        "rightsHolder": "CN=knb-data-admins,DC=dataone,DC=org",
        "accessPolicy": {"allow": [{"subject": ["public"], "permission": ["read"]}]},
        "dateUploaded": "2015-06-11T17:12:05.000+00:00",
        "originMemberNode": "urn:node:KNB",
        "authoritativeMemberNode": "urn:node:KNB",
        "seriesId": "doi:10.6073/pasta/series-7",
        "mediaType": {"name": "text/csv", "property": [{"name": "delimiter", "value": ","}]},
        "fileName": "plots-2015.csv",
        "license": {"id": "CC-BY-4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
        "keywords": ["kelp forest", "long-term ecological research"]
    })
}

/// `record` without `fields`.
fn without(record: &Value, fields: &[&str]) -> Value {
    let mut out = record.clone();
    let obj = out.as_object_mut().expect("an object");
    for f in fields {
        obj.remove(*f);
    }
    out
}

/// Nodes on trimmed copies of the example, in one temporary folder.
struct Lab {
    tmp: tempfile::TempDir,
    sets: [PathBuf; 3],
    nodes: usize,
}

impl Lab {
    fn new() -> Lab {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let sets = [1, 2, 3].map(|v| trimmed_set(&tmp.path().join(format!("set-v{v}")), v));
        Lab {
            tmp,
            sets,
            nodes: 0,
        }
    }

    /// A fresh node at `version`, on its own store file.
    fn node(&mut self, version: u32) -> Node {
        self.nodes += 1;
        let data = self
            .tmp
            .path()
            .join(format!("node-{}-v{version}.redb", self.nodes));
        Node::start(&self.sets[version as usize - 1], &data)
    }
}

fn replicate(from: &Node, to: &Node, policy: &str) -> Replication {
    let run = support::replicate(from, to, &["--policy", policy]);
    run.assert_success();
    run
}

/// The body a node serves in `release`, and its rev; panics when it is not there.
fn read(node: &Node, release: &str) -> (String, Value) {
    node.get_doc(SYSMETA, ID, release)
        .unwrap_or_else(|| panic!("{ID} is not on {}", node.url))
}

#[test]
fn the_trimmed_sets_know_only_their_versions() {
    let lab = Lab::new();
    for (i, dir) in lab.sets.iter().enumerate() {
        let set = mutatis_schema::SchemaSet::load(dir).expect("the trimmed set loads");
        let versions: Vec<u32> = (1..=i as u32 + 1).collect();
        assert_eq!(set.versions(SYSMETA).expect("the type"), versions);
        assert_eq!(set.current().name, format!("v{}", i + 1));
    }
}

#[test]
fn a_v1_node_refuses_drops_or_carries_what_it_cannot_hold() {
    let mut lab = Lab::new();
    let a = lab.node(3);
    let rev = a.create_doc(SYSMETA, ID, "v3", &record_v3());
    let v1_view = without(&record_v3(), &NEWER_FIELDS);

    // refuse: not stored, reported with what v1 cannot hold; the replication itself succeeds.
    let refusing = lab.node(1);
    let run = replicate(&a, &refusing, "refuse");
    assert_eq!(run.count("refused"), 1, "{:?}", run.progress);
    assert_eq!(run.count("stored"), 0, "{:?}", run.progress);
    assert_eq!(refusing.get_doc(SYSMETA, ID, "v1"), None);
    let not_stored = run.not_stored();
    assert_eq!(not_stored.len(), 1, "{:?}", run.progress);
    assert_eq!(not_stored[0]["id"], ID);
    assert_eq!(not_stored[0]["outcome"], "refused");
    let lost: Vec<&str> = not_stored[0]["lost"]
        .as_array()
        .expect("lost pointers")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for field in NEWER_FIELDS {
        assert!(
            lost.iter()
                .any(|p| *p == format!("/{field}") || p.starts_with(&format!("/{field}/"))),
            "/{field} is reported lost: {lost:?}"
        );
    }
    assert!(
        !lost.iter().any(|p| p.starts_with("/formatId")),
        "only what v1 lacks is lost: {lost:?}"
    );

    // lossy: stored without the fields, counted.
    let lossy = lab.node(1);
    let run = replicate(&a, &lossy, "lossy");
    assert_eq!(run.count("stored"), 1, "{:?}", run.progress);
    assert_eq!(run.count("lossy"), 1, "{:?}", run.progress);
    assert_eq!(run.count("carried"), 0, "{:?}", run.progress);
    assert_eq!(read(&lossy, "v1").1, v1_view);

    // carry: stored with the same rev; v1 clients see the v1 body.
    let carrying = lab.node(1);
    let run = replicate(&a, &carrying, "carry");
    assert_eq!(run.count("stored"), 1, "{:?}", run.progress);
    assert_eq!(run.count("carried"), 1, "{:?}", run.progress);
    assert_eq!(run.count("lossy"), 0, "{:?}", run.progress);
    assert_eq!(read(&carrying, "v1"), (rev, v1_view));
}

#[test]
fn a_record_carried_through_a_v1_node_comes_back_byte_identical() {
    let mut lab = Lab::new();
    let a = lab.node(3);
    let b = lab.node(1);
    let c = lab.node(3);
    a.create_doc(SYSMETA, ID, "v3", &record_v3());

    replicate(&a, &b, "carry");
    let run = replicate(&b, &c, "carry");
    assert_eq!(run.count("stored"), 1, "{:?}", run.progress);

    let on_a = a.get_raw(SYSMETA, ID, "v3");
    let on_c = c.get_raw(SYSMETA, ID, "v3");
    assert_eq!((on_a.status, on_c.status), (200, 200));
    assert_eq!(on_c.rev, on_a.rev, "the rev travels unchanged");
    assert_eq!(
        String::from_utf8_lossy(&on_c.bytes),
        String::from_utf8_lossy(&on_a.bytes),
        "C serves A's v3 document byte for byte"
    );
}

#[test]
fn carried_fields_come_back_on_each_node_that_knows_them() {
    let mut lab = Lab::new();
    let a = lab.node(3);
    let b = lab.node(1);
    let d = lab.node(2);
    let e = lab.node(3);
    let rev = a.create_doc(SYSMETA, ID, "v3", &record_v3());

    replicate(&a, &b, "carry");
    // v1 → v2: the v2 fields come back; v3's stay carried (v2 cannot hold them).
    replicate(&b, &d, "carry");
    let (d_rev, on_d) = read(&d, "v2");
    assert_eq!(d_rev, rev);
    assert_eq!(on_d, without(&record_v3(), &V3_FIELDS));
    for field in ["seriesId", "mediaType", "fileName"] {
        assert_eq!(
            on_d[field],
            record_v3()[field],
            "{field} restored on the v2 node"
        );
    }

    // v2 → v3: the v3 fields come back too.
    replicate(&d, &e, "carry");
    let (e_rev, on_e) = read(&e, "v3");
    assert_eq!(e_rev, rev);
    assert_eq!(on_e, record_v3());
    assert_eq!(
        e.get_raw(SYSMETA, ID, "v3").bytes,
        a.get_raw(SYSMETA, ID, "v3").bytes
    );
}

#[test]
fn an_old_nodes_edit_reaches_a_new_node_without_erasing_anything() {
    let mut lab = Lab::new();
    let a = lab.node(3);
    let b = lab.node(1);
    a.create_doc(SYSMETA, ID, "v3", &record_v3());
    replicate(&a, &b, "carry");

    // A v1 client on B changes the format; it has never seen the newer fields.
    let (rev, mut v1_body) = read(&b, "v1");
    assert!(v1_body.get("seriesId").is_none() && v1_body.get("license").is_none());
    v1_body["formatId"] = json!("https://eml.ecoinformatics.org/eml-2.2.0");
    let edited = b.update_doc(SYSMETA, ID, "v1", &rev, &v1_body);

    let run = replicate(&b, &a, "carry");
    assert_eq!(run.count("fastForward"), 1, "{:?}", run.progress);
    let (a_rev, on_a) = read(&a, "v3");
    assert_eq!(a_rev, edited, "A has B's edit");
    let mut expected = record_v3();
    expected["formatId"] = json!("https://eml.ecoinformatics.org/eml-2.2.0");
    assert_eq!(on_a, expected, "the edit, and every v2 and v3 field kept");
}
