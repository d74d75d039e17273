//! The OpenAPI document of every release of every example schema set: it has every path of
//! the contract, every `$ref` resolves inside it, and the type schemas it embeds, compiled in
//! place with the `jsonschema` crate, accept the documents of their version and refuse others.
//! The replication messages' schemas accept what `mutatis_replication::wire` sends, and every
//! documented operation is one the server's router answers.

use std::collections::BTreeSet;
use std::path::PathBuf;

use mutatis_lens::Params;
use mutatis_schema::{Release, ReleaseStatus, SchemaSet};
use mutatis_server::openapi::openapi_document;
use serde_json::{json, Value};

const EXAMPLES: &[&str] = &["todo", "students", "dataone", "syft"];

fn example(name: &str) -> SchemaSet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    SchemaSet::load(&dir).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A valid document of each example type in its lowest version (from the examples' own
/// data and READMEs), which is translated to the version under test.
fn lowest_sample(type_name: &str) -> (Value, Params) {
    let mut params = Params::new();
    let doc = match type_name {
        "todo" => json!({"title": "buy milk", "done": false}),
        "Student" => {
            params.insert("referenceYear".into(), json!(2026));
            json!({"name": "Ada Lovelace"})
        }
        "SystemMetadata" => json!({
            "identifier": "doi:10.5063/F1",
            "formatId": "eml://ecoinformatics.org/eml-2.1.1",
            "size": 1024,
            "checksum": {"algorithm": "SHA-256", "value": "ab12"},
            "rightsHolder": "CN=Ada",
            "dateUploaded": "2024-01-02T03:04:05Z",
        }),
        "NodeMetadata" => json!({
            "name": "domain-1",
            "id": "a1b2",
            "verify_key": "ed25519:abc",
            "highest_object_version": 3,
            "lowest_object_version": 1,
            "syft_version": "0.8.1",
        }),
        other => panic!("no sample for type {other}"),
    };
    (doc, params)
}

/// A valid document of `type_name@version`, checked against the schema set itself.
fn sample(set: &SchemaSet, type_name: &str, version: u32) -> Value {
    let (doc, params) = lowest_sample(type_name);
    let lowest = set.versions(type_name).unwrap()[0];
    let doc = set
        .plan(type_name, lowest, version)
        .unwrap()
        .translate(&doc, &params)
        .unwrap();
    set.validate(type_name, version, &doc)
        .unwrap_or_else(|e| panic!("{type_name}@{version} sample {doc} is invalid: {e:?}"));
    doc
}

/// The component `name` compiled in place: the whole OpenAPI document is the root resource
/// (so every rewritten reference resolves against it) and a root `$ref` selects the schema.
///
/// It is compiled by the `jsonschema` crate the way the schema set compiles its own schemas
/// (draft 2020-12, nothing fetched): as the only version of a one-type schema set. A schema
/// that does not compile fails the load.
fn validator(doc: &Value, name: &str) -> Compiled {
    let mut root = doc.clone();
    root["$ref"] = json!(format!("#/components/schemas/{name}"));
    // JSON is YAML: the type file carries the schema as one JSON line.
    let type_file = format!("type: probe\nversions:\n  1:\n    schema: {root}\n");
    let files = vec![
        (
            PathBuf::from("mutatis.yaml"),
            "name: probe\nreleases:\n  - {name: \"1\", types: {probe: 1}, status: current}\n"
                .to_owned(),
        ),
        (PathBuf::from("types/probe.yaml"), type_file),
    ];
    let set = SchemaSet::from_sources(files)
        .unwrap_or_else(|e| panic!("{name} does not compile in place: {e}"));
    Compiled(set)
}

/// A schema compiled by [`validator`].
struct Compiled(SchemaSet);

impl Compiled {
    fn is_valid(&self, doc: &Value) -> bool {
        self.0.validate("probe", 1, doc).is_ok()
    }

    fn errors(&self, doc: &Value) -> Vec<String> {
        match self.0.validate("probe", 1, doc) {
            Ok(()) => Vec::new(),
            Err(issues) => issues.iter().map(|i| i.to_string()).collect(),
        }
    }
}

/// Every `"$ref"` string in `value`, with the pointer to where it is.
fn refs(value: &Value, at: String, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    if let Value::String(r) = v {
                        out.push((at.clone(), r.clone()));
                    }
                }
                let seg = k.replace('~', "~0").replace('/', "~1");
                refs(v, format!("{at}/{seg}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Every `$anchor` defined anywhere in `value`.
fn anchors(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(a)) = map.get("$anchor") {
                out.insert(a.clone());
            }
            map.values().for_each(|v| anchors(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| anchors(v, out)),
        _ => {}
    }
}

fn assert_refs_resolve(doc: &Value, what: &str) {
    let mut found = Vec::new();
    refs(doc, String::new(), &mut found);
    assert!(!found.is_empty(), "{what}: no references at all");
    let mut defined = BTreeSet::new();
    anchors(doc, &mut defined);
    for (at, r) in found {
        let fragment = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{what}: {at} refers outside the document: {r}"));
        if fragment.starts_with('/') || fragment.is_empty() {
            assert!(
                doc.pointer(fragment).is_some(),
                "{what}: {at} refers to {r}, which is not in the document"
            );
        } else {
            assert!(
                defined.contains(fragment),
                "{what}: {at} refers to anchor {r}, which is not defined"
            );
        }
    }
}

fn component_of(doc: &Value, path: &str, method: &str, pointer: &str) -> String {
    let r = doc["paths"][path][method]
        .pointer(pointer)
        .and_then(|s| s["$ref"].as_str())
        .unwrap_or_else(|| panic!("{method} {path}: no schema reference at {pointer}"));
    r.strip_prefix("#/components/schemas/").unwrap().to_owned()
}

#[test]
fn every_release_of_every_example_is_described() {
    for name in EXAMPLES {
        let set = example(name);
        for release in set.releases() {
            let what = format!("{name} release {}", release.name);
            let doc = openapi_document(&set, release);

            assert_eq!(doc["openapi"], "3.1.0", "{what}");
            assert_eq!(doc["info"]["title"], set.name(), "{what}");
            assert_eq!(doc["info"]["version"], release.name.as_str(), "{what}");
            let description = doc["info"]["description"].as_str().unwrap();
            assert!(description.contains(release.status.as_str()), "{what}");
            if let Some(sunset) = &release.sunset {
                assert!(description.contains(sunset.as_str()), "{what}");
            }

            // (a) Every path of the contract.
            let paths = doc["paths"].as_object().unwrap();
            let mut expected = vec![
                ("/changes".to_owned(), vec!["get"]),
                ("/meta".to_owned(), vec!["get"]),
                ("/schema".to_owned(), vec!["get"]),
                ("/health".to_owned(), vec!["get"]),
                ("/compatibility".to_owned(), vec!["post"]),
                ("/replication".to_owned(), vec!["get"]),
                ("/replication/changes".to_owned(), vec!["get"]),
                ("/replication/apply".to_owned(), vec!["post"]),
                (
                    "/replication/checkpoints/{id}".to_owned(),
                    vec!["get", "put"],
                ),
                ("/admin/replications".to_owned(), vec!["get", "post"]),
                ("/admin/replications/{id}".to_owned(), vec!["get", "delete"]),
                ("/admin/webhooks".to_owned(), vec!["get", "post"]),
                ("/admin/webhooks/{id}".to_owned(), vec!["get", "delete"]),
                ("/admin/import".to_owned(), vec!["post"]),
            ];
            for type_name in release.types.keys() {
                expected.push((format!("/docs/{type_name}"), vec!["get", "post"]));
                expected.push((
                    format!("/docs/{type_name}/{{id}}"),
                    vec!["get", "put", "patch", "delete"],
                ));
                expected.push((
                    format!("/docs/{type_name}/{{id}}/access"),
                    vec!["get", "put"],
                ));
                expected.push((format!("/docs/{type_name}/{{id}}/conflicts"), vec!["get"]));
                expected.push((
                    format!("/docs/{type_name}/{{id}}/conflicts/resolve"),
                    vec!["post"],
                ));
            }
            for (path, methods) in &expected {
                for method in methods {
                    assert!(
                        paths.get(path).and_then(|p| p.get(*method)).is_some(),
                        "{what}: no {method} {path}"
                    );
                }
            }

            // (b) Every reference resolves inside the document.
            assert_refs_resolve(&doc, &what);

            // (c) The document schemas compile in place and accept their version's documents.
            for (type_name, &version) in &release.types {
                let component = format!("{type_name}_v{version}");
                let path = format!("/docs/{type_name}/{{id}}");
                let body = "/requestBody/content/application~1json/schema";
                let response = "/responses/200/content/application~1json/schema";
                assert_eq!(component_of(&doc, &path, "put", body), component, "{what}");
                assert_eq!(component_of(&doc, &path, "get", response), component);
                let collection = format!("/docs/{type_name}");
                assert_eq!(component_of(&doc, &collection, "post", body), component);
                // Conflicts are shown and merged in the release's version too.
                let conflicts = format!("/docs/{type_name}/{{id}}/conflicts");
                let leaf_body =
                    format!("{response}/properties/conflicts/items/properties/body/anyOf/0");
                assert_eq!(component_of(&doc, &conflicts, "get", &leaf_body), component);
                let merge = format!("{body}/oneOf/1/properties/merge");
                assert_eq!(
                    component_of(&doc, &format!("{conflicts}/resolve"), "post", &merge),
                    component
                );

                let v = validator(&doc, &component);
                let valid = sample(&set, type_name, version);
                assert!(
                    v.is_valid(&valid),
                    "{what}: {component} refuses {valid}: {:?}",
                    v.errors(&valid)
                );
                // Not a vacuous schema: it refuses what the set's own schema refuses.
                for bad in [json!("a string"), json!({})] {
                    assert_eq!(
                        v.is_valid(&bad),
                        set.validate(type_name, version, &bad).is_ok(),
                        "{what}: {component} disagrees with the set about {bad}"
                    );
                }
            }

            // Errors are problems, and deprecated releases say so on every operation.
            let get = &doc["paths"]["/changes"]["get"];
            assert_eq!(
                get["responses"]["401"]["$ref"],
                "#/components/responses/Problem401"
            );
            let problem = &doc["components"]["responses"]["Problem401"]["content"];
            assert!(problem.get("application/problem+json").is_some(), "{what}");
            let deprecated = release.status == ReleaseStatus::Deprecated;
            assert_eq!(get["deprecated"].as_bool().unwrap_or(false), deprecated);
            let headers = get["responses"]["200"]["headers"].as_object().unwrap();
            assert_eq!(headers.contains_key("Deprecation"), deprecated, "{what}");
            assert_eq!(
                headers.contains_key("Sunset"),
                deprecated && release.sunset.is_some(),
                "{what}"
            );
        }
    }
}

#[test]
fn the_document_is_deterministic_and_the_release_is_its_own() {
    let set = example("students");
    let r3 = set.release("3").unwrap();
    let once = serde_json::to_string(&openapi_document(&set, r3)).unwrap();
    let again = serde_json::to_string(&openapi_document(&set, &r3.clone())).unwrap();
    assert_eq!(once, again);

    let doc: Value = serde_json::from_str(&once).unwrap();
    let param = &doc["components"]["parameters"]["MutatisRelease"];
    assert_eq!(param["in"], "header");
    assert_eq!(param["schema"]["enum"], json!(["3"]));
    let five = openapi_document(&set, set.release("5").unwrap());
    assert_ne!(doc, five);
    assert!(five["components"]["schemas"].get("Student_v5").is_some());
    assert!(five["components"]["schemas"].get("Student_v3").is_none());
}

/// A type whose schema keeps its definitions in `$defs` and refers to them (and to itself):
/// once moved into the document, the references still reach them, so the schema still
/// refuses what it refused.
#[test]
fn definitions_and_local_references_survive_the_move() {
    let files = vec![
        (
            PathBuf::from("mutatis.yaml"),
            r#"
name: defs
releases:
  - {name: "1", types: {thing: 1}, status: current}
"#
            .to_owned(),
        ),
        (
            PathBuf::from("types/thing.yaml"),
            r##"
type: thing
versions:
  1:
    schema:
      $schema: "https://json-schema.org/draft/2020-12/schema"
      type: object
      properties:
        name: {$ref: "#/$defs/shortName"}
        parts: {type: array, items: {$ref: "#"}}
        alias: {$ref: "#/properties/name"}
      required: [name]
      $defs:
        shortName: {type: string, maxLength: 5}
"##
            .to_owned(),
        ),
    ];
    let set = SchemaSet::from_sources(files).unwrap();
    let release: &Release = set.current();
    let doc = openapi_document(&set, release);
    assert_refs_resolve(&doc, "defs");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    assert!(schemas.contains_key("thing_v1.shortName"), "{schemas:?}");
    assert!(schemas["thing_v1"].get("$defs").is_none());

    let v = validator(&doc, "thing_v1");
    let good = json!({"name": "ab", "alias": "cd", "parts": [{"name": "e"}]});
    assert!(v.is_valid(&good));
    for bad in [
        json!({"name": "much too long"}),
        json!({"name": "ab", "alias": "much too long"}),
        json!({"name": "ab", "parts": [{"name": "much too long"}]}),
        json!({"name": "ab", "parts": [{}]}),
    ] {
        assert!(!v.is_valid(&bad), "accepted {bad}");
        assert!(
            set.validate("thing", 1, &bad).is_err(),
            "the set accepts {bad}"
        );
    }
    assert!(set.validate("thing", 1, &good).is_ok());
}

/// The replication and admin operations are the node's, not a release's: no `Mutatis-Release`,
/// never deprecated with a release, and only for token holders.
#[test]
fn node_operations_are_the_same_in_every_release() {
    let set = example("students");
    let documents: Vec<Value> = set
        .releases()
        .iter()
        .map(|r| openapi_document(&set, r))
        .collect();
    let node_paths = [
        "/replication",
        "/replication/changes",
        "/replication/apply",
        "/replication/checkpoints/{id}",
        "/admin/replications",
        "/admin/replications/{id}",
        "/admin/webhooks",
        "/admin/webhooks/{id}",
        "/admin/import",
    ];
    for doc in &documents {
        for path in node_paths {
            assert_eq!(
                doc["paths"][path], documents[0]["paths"][path],
                "{path} differs between releases"
            );
            for (method, op) in doc["paths"][path].as_object().unwrap() {
                let what = format!("{method} {path}");
                assert!(op.get("deprecated").is_none(), "{what}");
                // The document-wide `bearer` security applies: no `security` override.
                assert!(op.get("security").is_none(), "{what}");
                assert_eq!(
                    op["responses"]["401"]["$ref"], "#/components/responses/Problem401",
                    "{what}"
                );
                let params = op["parameters"].as_array().unwrap();
                assert!(
                    !params.contains(&json!({"$ref": "#/components/parameters/MutatisRelease"})),
                    "{what}"
                );
            }
        }
        let job = &doc["paths"]["/admin/replications"]["post"]["responses"]["201"];
        assert_eq!(job["links"]["read"]["operationId"], "get_replication");
        assert!(job["headers"]["Location"]["required"].as_bool().unwrap());
        assert_eq!(
            doc["paths"]["/replication/apply"]["post"]["responses"]["409"]["$ref"],
            "#/components/responses/Problem409"
        );
    }
}

/// What the server's edge answers before any handler (a header twice, a request head over
/// the limits; a body over the limit or stalled) is documented on every operation it can
/// reach, and each operation's responses are in status order.
#[test]
fn every_operation_lists_the_edge_responses() {
    let set = example("students");
    let doc = openapi_document(&set, set.current());
    let mut with_body = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{method} {path}");
            let responses = op["responses"].as_object().unwrap();
            let mut expected = vec!["400", "414", "431"];
            if op.get("requestBody").is_some() {
                with_body += 1;
                expected.extend(["408", "413"]);
            } else {
                assert!(responses.get("408").is_none(), "{what}");
            }
            for status in expected {
                assert_eq!(
                    responses[status]["$ref"],
                    format!("#/components/responses/Problem{status}"),
                    "{what}: {status}"
                );
            }
            let statuses: Vec<u16> = responses.keys().map(|k| k.parse().unwrap()).collect();
            assert!(
                statuses.windows(2).all(|w| w[0] < w[1]),
                "{what}: {statuses:?}"
            );
        }
    }
    assert!(with_body > 5, "{with_body} operations with a body");
    for status in [408, 413, 414, 431] {
        let name = format!("Problem{status}");
        assert!(
            doc["components"]["responses"][&name]["content"]["application/problem+json"]
                .is_object(),
            "{name}"
        );
    }
}

fn rev(s: &str) -> mutatis_store::Rev {
    s.parse().unwrap()
}

/// The schemas of the replication messages accept what `mutatis_replication::wire` sends and
/// receives, and refuse what it would not parse.
#[test]
fn replication_messages_match_their_schemas() {
    use mutatis_replication::wire::StoredCheckpoint;
    use mutatis_replication::{
        ApplyRequest, ApplyResponse, ChangesBatch, Checkpoint, NodeInfo, Outcome, RevisionResult,
        SourceRef, WireDoc, WireRevision,
    };
    use mutatis_store::{Carried, LossPolicy};

    let set = example("students");
    let doc = openapi_document(&set, set.current());
    let valid = |component: &str, value: Value| {
        let v = validator(&doc, component);
        assert!(
            v.is_valid(&value),
            "{component} refuses {value}: {:?}",
            v.errors(&value)
        );
        v
    };

    let winner = WireRevision {
        rev: rev("3-0123456789abcdef"),
        history: vec![rev("2-00000000000000aa"), rev("1-00000000000000bb")],
        version: 5,
        deleted: false,
        body: json!({"name": "Ada"}),
        access: json!({"read": ["alice"], "write": null}),
        carry: vec![Carried {
            version: 6,
            body: json!({"name": "Ada", "born": 1815}),
        }],
    };
    let loser = WireRevision {
        rev: rev("3-fedcba9876543210"),
        history: Vec::new(),
        version: 5,
        deleted: true,
        body: Value::Null,
        access: Value::Null,
        carry: Vec::new(),
    };
    let wire_doc = WireDoc {
        type_name: "Student".into(),
        id: "ada".into(),
        seq: 7,
        revisions: vec![winner, loser],
    };
    valid(
        "NodeInfo",
        wire(&NodeInfo {
            node_id: "n1".into(),
            manifest: "sha256:00ff".into(),
            last_seq: 7,
        }),
    );
    valid(
        "ChangesBatch",
        wire(&ChangesBatch {
            node_id: "n1".into(),
            manifest: "sha256:00ff".into(),
            last_seq: 9,
            head: 12,
            docs: vec![wire_doc.clone()],
            filtered: 2,
        }),
    );
    let request = ApplyRequest {
        source: SourceRef {
            node_id: "n1".into(),
            manifest: "sha256:00ff".into(),
            schema: Some(json!({"name": "students"})),
        },
        policy: LossPolicy::Lossy,
        checkpoint: Some(Checkpoint {
            id: "0123abcd".into(),
            seq: 9,
        }),
        docs: vec![wire_doc],
    };
    let v = valid("ApplyRequest", wire(&request));
    let mut bad = wire(&request);
    bad["policy"] = json!("keep");
    assert!(!v.is_valid(&bad), "a policy the target does not know");
    let mut bad = wire(&request);
    bad["docs"][0]["revisions"][0]["rev"] = json!("three");
    assert!(!v.is_valid(&bad), "a rev that is not N-hex");
    let mut bad = wire(&request);
    bad["source"].as_object_mut().unwrap().remove("manifest");
    assert!(!v.is_valid(&bad), "a source without its manifest");
    assert!(serde_json::from_value::<ApplyRequest>(bad).is_err());

    valid(
        "ApplyResponse",
        wire(&ApplyResponse {
            node_id: "n2".into(),
            results: vec![
                RevisionResult {
                    type_name: "Student".into(),
                    id: "ada".into(),
                    rev: rev("3-0123456789abcdef"),
                    outcome: Outcome::Conflict,
                    winner: Some(rev("3-fedcba9876543210")),
                    lost: vec!["/born".into()],
                    lost_in: Some(6),
                },
                RevisionResult {
                    type_name: "Student".into(),
                    id: "bob".into(),
                    rev: rev("1-0123456789abcdef"),
                    outcome: Outcome::FastForward,
                    winner: None,
                    lost: Vec::new(),
                    lost_in: None,
                },
            ],
        }),
    );
    let v = valid(
        "StoredCheckpoint",
        wire(&StoredCheckpoint { seq: u64::MAX }),
    );
    assert!(!v.is_valid(&json!({"seq": -1})));
    assert!(!v.is_valid(&json!({})));

    // The admin bodies: what API.md documents, and not a body the server refuses as unknown.
    let v = valid(
        "JobRequest",
        json!({"source": "self", "target": "http://b.example:7878", "targetToken": "mutatis_x",
               "types": ["Student"], "selector": {"/year": 2026}, "policy": "refuse",
               "continuous": true}),
    );
    assert!(!v.is_valid(&json!({"source": "self"})));
    assert!(!v.is_valid(&json!({"source": "self", "target": "http://b", "extra": 1})));
    assert!(!v.is_valid(&json!({"source": "self", "target": "http://b",
                                 "selector": {"year": 2026}})));
    let v = valid(
        "WebhookRequest",
        json!({"url": "http://hooks.example/in", "types": ["Student"], "release": "5",
               "secret": "s3cret"}),
    );
    assert!(!v.is_valid(&json!({"url": "http://hooks.example/in", "secret": ""})));
    let v = valid(
        "ImportRequest",
        json!({"type": "Student", "version": 5, "docs": [
            {"id": "mary", "rev": "1-0123456789abcdef", "doc": {"firstName": "Mary"}},
            {"id": "ann", "doc": {}},
        ]}),
    );
    assert!(!v.is_valid(&json!({"type": "Student", "version": 5})));
    assert!(!v.is_valid(&json!({"type": "Student", "version": 5, "docs": [{"id": "a"}]})));
    assert!(!v.is_valid(&json!({"type": "Student", "version": 5,
                                 "docs": [{"id": "a", "doc": {}, "extra": 1}]})));
    valid(
        "ImportResult",
        json!({"type": "Student", "version": 5, "imported": 2}),
    );
}

/// A wire message as JSON.
fn wire<T: serde::Serialize>(message: &T) -> Value {
    serde_json::to_value(message).unwrap()
}

/// Every operation of every release's document is routed by the server: asked without a
/// token (or a body), the real router answers each with something other than "no such
/// endpoint" or "method not allowed", and with 401 exactly when the document says the
/// operation needs a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    use mutatis_server::app::{AppState, ServerConfig};
    use mutatis_store::{RedbBackend, RedbOptions, Store};
    use std::sync::Arc;

    let set = Arc::new(example("students"));
    let dir = std::env::temp_dir().join(format!(
        "mutatis-openapi-routes-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let backend = RedbBackend::open(dir.join("store.redb"), RedbOptions::default()).unwrap();
    let store = Store::new(backend, Arc::clone(&set));
    let state = AppState::new(store, None, Params::new(), ServerConfig::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, mutatis_server::router(state))
            .await
            .unwrap()
    });

    let http = mutatis_client::tls::http_client_builder().build().unwrap();
    let mut asked = 0;
    for release in set.releases() {
        let doc = openapi_document(&set, release);
        for (path, item) in doc["paths"].as_object().unwrap() {
            // Every path parameter is named `id`; a plain value reaches the handler.
            let url = format!("{base}{}", path.replace("{id}", "x1"));
            for method in item.as_object().unwrap().keys() {
                let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let resp = http.request(m, &url).send().await.unwrap();
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                let what = format!("{method} {path}: {status} {body}");
                assert_ne!(status, 405, "{what}");
                assert_ne!(body["type"], "urn:mutatis:problem:no-route", "{what}");
                // The document's security: `[]` for the open operations, the document-wide
                // `bearer` otherwise, which the server enforces before anything else.
                let open = item[method].get("security") == Some(&json!([]));
                assert_eq!(status == 401, !open, "{what}");
                asked += 1;
            }
        }
    }
    assert!(asked > 40, "only {asked} operations asked");
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
