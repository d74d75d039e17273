//! The OpenAPI 3.1 document of one release: the HTTP contract exactly as a client of that
//! release sees it, with the release's own version of every type as the document schemas.
//!
//! The document is a pure function of the schema set and the release (no clock, no state), and
//! its bytes are deterministic: every map is filled in a fixed order (types by name, paths in
//! contract order), and `serde_json` keeps insertion order.
//!
//! Each type's version schema (JSON Schema 2020-12, which OpenAPI 3.1 speaks natively) moves
//! into `components/schemas` as `<Type>_v<version>`. Moving a schema changes what its local
//! references point at, so `relocate` rewrites them: `#` and `#/…` references of the schema's
//! own resource are prefixed with the component's location, root `$defs` (and draft-07
//! `definitions`) are hoisted into components of their own (`<Type>_v<version>.<name>`, which
//! tools that only resolve `#/components/schemas/X` understand), and `$anchor`s are prefixed
//! with the component name so that two versions defining the same anchor do not clash once
//! they share one document. Subschemas with their own `$id` are separate resources whose
//! references already resolve against that `$id`: they are left as they are.

use std::collections::{BTreeMap, BTreeSet};

use mutatis_schema::{Release, ReleaseStatus, SchemaSet};
use serde_json::{json, Map, Value};

/// The largest `limit` the list and changes endpoints accept.
const MAX_LIMIT: u64 = 1000;
/// The default `limit` of the list and changes endpoints.
const DEFAULT_LIMIT: u64 = 100;
/// The longest `timeout` (milliseconds) a long-poll or SSE feed may ask for: 5 minutes.
const MAX_FEED_TIMEOUT_MS: u64 = 300_000;
/// The largest `limit` of `/replication/changes`.
const MAX_REPLICATION_BATCH: usize = mutatis_replication::MAX_BATCH;
/// The default `limit` of `/replication/changes`.
const DEFAULT_REPLICATION_BATCH: usize = crate::replication::DEFAULT_BATCH;

/// The OpenAPI 3.1 document describing the HTTP API as seen by a client of `release`.
///
/// It covers every path of the contract a release's client uses: for each type the release
/// speaks, `/docs/<Type>` (list, create), `/docs/<Type>/{id}` (read, replace, patch, delete),
/// `/docs/<Type>/{id}/access` and `/docs/<Type>/{id}/conflicts` (list, `/resolve`), written as
/// concrete paths because each type has its own document schema; then `/changes`, the
/// replication protocol (`/replication`, `/replication/changes`, `/replication/apply`,
/// `/replication/checkpoints/{id}`), `/meta`, `/schema`, `/openapi.json`, `/metrics`,
/// `/health`, `/compatibility`, and the replication jobs and webhooks
/// (`/admin/replications[/{id}]`, `/admin/webhooks[/{id}]`), which programs replicating with
/// or listening to the node drive, and the bulk import (`/admin/import`), which loads a dump
/// into a running node. Request and response bodies of documents are the
/// release's version schemas; the replication messages carry documents in the storage
/// version, so their bodies are any JSON; every error is an `application/problem+json`
/// `Problem`.
///
/// Left out on purpose:
/// - the other admin paths (`/admin/migrations`, `/admin/tokens`, `/admin/reload`,
///   `/admin/releases`) and `/changelog`: they are operator tools, not part of any release's
///   client contract, and they do not depend on the release;
/// - the dashboard's files under `/ui` ([`crate::dashboard`]) and `--static` files: pages for
///   a browser, not an API;
/// - the `Mutatis-Versions` request header and the `release` query parameter: this document
///   *is* one release's contract, which its clients announce with `Mutatis-Release` (declared
///   on every negotiated operation with the release's name as its only value). A per-type
///   version map would make the document schemas below wrong.
///
/// A release that is `unsupported` still gets a document (so a tool can show what the app
/// spoke), whose description says that every negotiated request is refused.
pub fn openapi_document(set: &SchemaSet, release: &Release) -> Value {
    let mut components = Components::default();
    // Types by name (`Release::types` is a BTreeMap): deterministic order.
    let mut served: Vec<TypeEntry> = Vec::new();
    for (type_name, &version) in &release.types {
        // A loaded schema set has a schema for every version a release names (the loader
        // checks it); a type without one is left out rather than described wrongly.
        let Ok(schema) = set.schema(type_name, version) else {
            continue;
        };
        let component = components.add_type_schema(type_name, version, schema);
        served.push(TypeEntry {
            name: type_name.clone(),
            version,
            component,
        });
    }

    let ctx = Context {
        release,
        deprecated: release.status == ReleaseStatus::Deprecated,
    };

    let mut paths = Map::new();
    for entry in &served {
        let base = format!("/docs/{}", encode_path_segment(&entry.name));
        paths.insert(base.clone(), collection_path(&ctx, entry));
        paths.insert(format!("{base}/{{id}}"), document_path(&ctx, entry));
        paths.insert(format!("{base}/{{id}}/access"), access_path(&ctx, entry));
        paths.insert(
            format!("{base}/{{id}}/conflicts"),
            conflicts_path(&ctx, entry),
        );
        paths.insert(
            format!("{base}/{{id}}/conflicts/resolve"),
            resolve_path(&ctx, entry),
        );
    }
    paths.insert("/changes".into(), changes_path(&ctx, &served));
    paths.insert("/replication".into(), replication_info_path());
    paths.insert("/replication/changes".into(), replication_changes_path());
    paths.insert("/replication/apply".into(), replication_apply_path());
    paths.insert("/replication/checkpoints/{id}".into(), checkpoint_path());
    paths.insert("/meta".into(), meta_path());
    paths.insert("/schema".into(), schema_path());
    paths.insert("/openapi.json".into(), openapi_path());
    paths.insert("/metrics".into(), metrics_path());
    paths.insert("/health".into(), health_path());
    paths.insert("/compatibility".into(), compatibility_path());
    paths.insert("/admin/replications".into(), jobs_path());
    paths.insert("/admin/replications/{id}".into(), job_path());
    paths.insert("/admin/webhooks".into(), webhooks_path());
    paths.insert("/admin/webhooks/{id}".into(), webhook_path());
    paths.insert("/admin/import".into(), import_path());

    for path in paths.values_mut() {
        add_edge_responses(path);
    }

    let mut schemas = components.schemas;
    for (name, schema) in fixed_schemas() {
        schemas.insert(name.into(), schema);
    }
    // A bulk import names any type of the node's schema set (not only the release's): the
    // same in every release's document.
    let all_types: Vec<&str> = set.types().map(|t| t.name()).collect();
    if let Some(t) = schemas.get_mut("ImportRequest") {
        t["properties"]["type"] = json!({"enum": all_types});
    }

    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": info(set, release),
        "tags": [
            {"name": "documents", "description": "Documents, in this release's versions."},
            {"name": "changes", "description": "The changes feed."},
            {"name": "replication", "description": "The replication protocol: this node as \
                                                     a source and as a target."},
            {"name": "node", "description": "What the node serves; answered to every client."},
            {"name": "admin", "description": "Replication jobs, webhooks and bulk import (admin role)."},
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": parameters(release),
            "headers": headers(&ctx),
            "responses": problem_responses(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A mutatis token (`mutatis_…`); roles: reader < writer < admin.",
                },
            },
        },
        "security": [{"bearer": []}],
    })
}

/// One type the release speaks, with the component its version schema became.
struct TypeEntry {
    name: String,
    version: u32,
    component: String,
}

/// What every path builder needs to know about the release.
struct Context<'a> {
    release: &'a Release,
    deprecated: bool,
}

impl Context<'_> {
    /// `Mutatis-Versions` as the server sends it for a response about one type.
    fn versions_header(&self, entry: &TypeEntry) -> String {
        format!("{}={}", entry.name, entry.version)
    }
}

// ------------------------------------------------------------------------------------- info

fn info(set: &SchemaSet, release: &Release) -> Value {
    let mut description = String::new();
    if let Some(d) = set.description() {
        description.push_str(d.trim());
        description.push_str("\n\n");
    }
    description.push_str(&format!(
        "The HTTP API of `{}` as a client of release `{}` sees it. ",
        set.name(),
        release.name
    ));
    description.push_str(&match release.status {
        ReleaseStatus::Current => "This is the current release.".to_owned(),
        ReleaseStatus::Supported => "This release is supported.".to_owned(),
        ReleaseStatus::Deprecated => match &release.sunset {
            Some(sunset) => format!(
                "This release is deprecated and is not served from {sunset} on (its sunset): \
                 responses carry `Deprecation`, `Sunset` and `Link` headers."
            ),
            None => "This release is deprecated: responses carry `Deprecation` and `Link` \
                     headers."
                .to_owned(),
        },
        ReleaseStatus::Unsupported => format!(
            "This release is unsupported: every request naming it is refused with the problem \
             `urn:mutatis:problem:unsupported-release`, which names the oldest supported \
             release (`{}`).",
            set.oldest_supported().name
        ),
    });
    description.push_str(&format!(
        "\n\nClients announce the release with the header `Mutatis-Release: {}`. Document \
         bodies are in this release's version of each type; the server translates them to and \
         from its storage version and keeps the fields a newer version added. The replication \
         routes and the admin routes of replication jobs, webhooks and bulk import are the \
         node's, the same in every release. The other admin paths and the per-type `Mutatis-Versions` header are \
         not part of this document.",
        release.name
    ));
    let mut info = json!({
        "title": set.name(),
        "version": release.name,
        "description": description,
        "x-mutatis-release": {
            "name": release.name,
            "status": release.status.as_str(),
            "types": release.types,
        },
    });
    if let Some(sunset) = &release.sunset {
        info["x-mutatis-release"]["sunset"] = json!(sunset);
    }
    info
}

// ------------------------------------------------------------------------------------ paths

/// The request header naming this document's release.
fn release_param() -> Value {
    json!({"$ref": "#/components/parameters/MutatisRelease"})
}

fn id_param() -> Value {
    json!({"$ref": "#/components/parameters/DocumentId"})
}

/// `{"$ref": "#/components/responses/<name>"}` for each error status, in ascending order.
fn errors(statuses: &[u16]) -> Vec<(String, Value)> {
    statuses
        .iter()
        .map(|status| {
            (
                status.to_string(),
                json!({"$ref": format!("#/components/responses/Problem{status}")}),
            )
        })
        .collect()
}

/// The responses the server's edge may give any operation before its handler runs
/// (`http.rs`): 400 (a header given twice), 414 and 431 (a request head over the limits);
/// and, to an operation with a request body, 408 (the body stalled) and 413 (over the
/// limit). Added to every operation of a path item here, in one place, and then its
/// responses put in status order (successes first).
fn add_edge_responses(path: &mut Value) {
    let Some(operations) = path.as_object_mut() else {
        return;
    };
    for op in operations.values_mut() {
        let has_body = op.get("requestBody").is_some();
        let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
            continue;
        };
        let mut statuses = vec![400, 414, 431];
        if has_body {
            statuses.extend([408, 413]);
        }
        for (status, response) in errors(&statuses) {
            responses.entry(status).or_insert(response);
        }
        let mut sorted: Vec<(String, Value)> = std::mem::take(responses).into_iter().collect();
        sorted.sort_by_key(|(status, _)| status.parse::<u16>().unwrap_or(u16::MAX));
        responses.extend(sorted);
    }
}

/// The headers of a successful negotiated response about one type.
fn negotiated_headers(ctx: &Context<'_>, entry: Option<&TypeEntry>) -> Map<String, Value> {
    let mut headers = Map::new();
    headers.insert(
        "Mutatis-Release".into(),
        json!({"$ref": "#/components/headers/MutatisRelease"}),
    );
    if let Some(entry) = entry {
        headers.insert(
            "Mutatis-Versions".into(),
            json!({
                "description": "The version of the type in the response.",
                "required": true,
                "schema": {"type": "string", "enum": [ctx.versions_header(entry)]},
            }),
        );
    }
    if ctx.deprecated {
        for (name, component) in [("Deprecation", "Deprecation"), ("Link", "DeprecationLink")] {
            headers.insert(
                name.into(),
                json!({"$ref": format!("#/components/headers/{component}")}),
            );
        }
        if ctx.release.sunset.is_some() {
            headers.insert(
                "Sunset".into(),
                json!({"$ref": "#/components/headers/Sunset"}),
            );
        }
    }
    headers
}

/// A response with a JSON body and the given headers.
fn json_response(description: &str, schema: Value, headers: Map<String, Value>) -> Value {
    json!({
        "description": description,
        "headers": headers,
        "content": {"application/json": {"schema": schema}},
    })
}

/// An operation object; `responses` are in the order given (success first, then errors).
fn operation(
    ctx: &Context<'_>,
    operation_id: String,
    tag: &str,
    summary: String,
    parameters: Vec<Value>,
    request_body: Option<Value>,
    responses: Vec<(String, Value)>,
) -> Value {
    let mut op = Map::new();
    op.insert("operationId".into(), json!(operation_id));
    op.insert("tags".into(), json!([tag]));
    op.insert("summary".into(), json!(summary));
    if ctx.deprecated {
        op.insert("deprecated".into(), json!(true));
    }
    op.insert("parameters".into(), Value::Array(parameters));
    if let Some(body) = request_body {
        op.insert("requestBody".into(), body);
    }
    op.insert(
        "responses".into(),
        Value::Object(responses.into_iter().collect()),
    );
    Value::Object(op)
}

/// OpenAPI links from a write's response (`{"id","rev"}` + `ETag`) to the operations on the
/// written document, so that a client generator or a stateful fuzzer can chain them.
fn write_links(key: &str) -> Value {
    let id = json!("$response.body#/id");
    let if_match = json!("$response.header.ETag");
    json!({
        "read": {"operationId": format!("get_{key}"), "parameters": {"id": id}},
        "replace": {
            "operationId": format!("put_{key}"),
            "parameters": {"id": id, "header.If-Match": if_match},
        },
        "patch": {
            "operationId": format!("patch_{key}"),
            "parameters": {"id": id, "header.If-Match": if_match},
        },
        "delete": {
            "operationId": format!("delete_{key}"),
            "parameters": {"id": id, "header.If-Match": if_match},
        },
        "readAccess": {"operationId": format!("get_access_{key}"), "parameters": {"id": id}},
        "replaceAccess": {
            "operationId": format!("put_access_{key}"),
            "parameters": {"id": id, "header.If-Match": if_match},
        },
        "readConflicts": {
            "operationId": format!("get_conflicts_{key}"),
            "parameters": {"id": id},
        },
        "resolveConflicts": {
            "operationId": format!("resolve_conflicts_{key}"),
            "parameters": {"id": id},
        },
    })
}

/// `response` with `links`.
fn with_links(mut response: Value, links: Value) -> Value {
    response["links"] = links;
    response
}

fn doc_ref(entry: &TypeEntry) -> Value {
    json!({"$ref": format!("#/components/schemas/{}", entry.component)})
}

/// A JSON request body holding one document of the type.
fn doc_body(entry: &TypeEntry) -> Value {
    json!({
        "required": true,
        "content": {"application/json": {"schema": doc_ref(entry)}},
    })
}

/// `/docs/<Type>`: list and create.
fn collection_path(ctx: &Context<'_>, entry: &TypeEntry) -> Value {
    let key = operation_key(&entry.component);
    let list_schema = json!({
        "type": "object",
        "required": ["docs", "next"],
        "properties": {
            "docs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "rev", "doc"],
                    "properties": {
                        "id": {"type": "string"},
                        "rev": {"$ref": "#/components/schemas/Rev"},
                        "doc": doc_ref(entry),
                    },
                },
            },
            "next": {
                "type": ["string", "null"],
                "description": "Pass as `after` to get the next page; `null` on the last page.",
            },
        },
    });
    let list = operation(
        ctx,
        format!("list_{key}"),
        "documents",
        format!("List `{}` documents by id", entry.name),
        vec![
            release_param(),
            json!({"$ref": "#/components/parameters/After"}),
            json!({"$ref": "#/components/parameters/Limit"}),
        ],
        None,
        [(
            "200".to_owned(),
            json_response(
                "One page of documents the caller may read, by id.",
                list_schema,
                negotiated_headers(ctx, Some(entry)),
            ),
        )]
        .into_iter()
        .chain(errors(&[400, 401, 403, 404, 503]))
        .collect(),
    );

    let mut created_headers = negotiated_headers(ctx, Some(entry));
    created_headers.insert(
        "Location".into(),
        json!({"$ref": "#/components/headers/Location"}),
    );
    created_headers.insert("ETag".into(), json!({"$ref": "#/components/headers/ETag"}));
    let create = operation(
        ctx,
        format!("create_{key}"),
        "documents",
        format!("Create a `{}` document", entry.name),
        vec![
            release_param(),
            json!({
                "name": "id",
                "in": "query",
                "required": false,
                "description": "The new document's id; generated when absent.",
                "schema": {"$ref": "#/components/schemas/DocumentId"},
            }),
            json!({"$ref": "#/components/parameters/MutatisAccess"}),
        ],
        Some(doc_body(entry)),
        [(
            "201".to_owned(),
            with_links(
                json_response(
                    "Created.",
                    json!({"$ref": "#/components/schemas/WriteResult"}),
                    created_headers,
                ),
                write_links(&key),
            ),
        )]
        .into_iter()
        .chain(errors(&[400, 401, 403, 404, 409, 413, 415, 422, 503]))
        .collect(),
    );
    json!({"get": list, "post": create})
}

/// `/docs/<Type>/{id}`: read, replace or create, patch, delete.
fn document_path(ctx: &Context<'_>, entry: &TypeEntry) -> Value {
    let key = operation_key(&entry.component);
    let mut read_headers = negotiated_headers(ctx, Some(entry));
    read_headers.insert("ETag".into(), json!({"$ref": "#/components/headers/ETag"}));
    let written = |description: &str| {
        with_links(
            json_response(
                description,
                json!({"$ref": "#/components/schemas/WriteResult"}),
                read_headers.clone(),
            ),
            write_links(&key),
        )
    };

    let get = operation(
        ctx,
        format!("get_{key}"),
        "documents",
        format!(
            "Read a `{}` document in version {}",
            entry.name, entry.version
        ),
        vec![
            release_param(),
            id_param(),
            json!({"$ref": "#/components/parameters/Rev"}),
            json!({"$ref": "#/components/parameters/Source"}),
            json!({"$ref": "#/components/parameters/IfNoneMatch"}),
        ],
        None,
        [
            (
                "200".to_owned(),
                json_response("The document.", doc_ref(entry), read_headers.clone()),
            ),
            (
                "304".to_owned(),
                json!({
                    "description": "Not modified: `If-None-Match` names this representation. \
                                    No body; the same `ETag` and negotiation headers.",
                    "headers": read_headers.clone(),
                }),
            ),
        ]
        .into_iter()
        .chain(errors(&[400, 401, 403, 404, 409, 422, 503]))
        .collect(),
    );
    let put = operation(
        ctx,
        format!("put_{key}"),
        "documents",
        format!(
            "Replace a `{}` document (with `If-Match`) or create it (without)",
            entry.name
        ),
        vec![
            release_param(),
            id_param(),
            json!({"$ref": "#/components/parameters/IfMatchOptional"}),
            json!({"$ref": "#/components/parameters/MutatisAccess"}),
        ],
        Some(doc_body(entry)),
        vec![
            ("200".to_owned(), written("Replaced.")),
            ("201".to_owned(), written("Created.")),
        ]
        .into_iter()
        .chain(errors(&[400, 401, 403, 404, 409, 412, 413, 415, 422, 503]))
        .collect(),
    );
    let patch = operation(
        ctx,
        format!("patch_{key}"),
        "documents",
        format!(
            "Apply a JSON Patch (RFC 6902) to a `{}` document, in version {}",
            entry.name, entry.version
        ),
        vec![
            release_param(),
            id_param(),
            json!({"$ref": "#/components/parameters/IfMatchRequired"}),
        ],
        Some(json!({
            "required": true,
            "content": {
                "application/json-patch+json": {
                    "schema": {"$ref": "#/components/schemas/JsonPatch"},
                },
            },
        })),
        [("200".to_owned(), written("Patched."))]
            .into_iter()
            .chain(errors(&[
                400, 401, 403, 404, 409, 412, 413, 415, 422, 428, 503,
            ]))
            .collect(),
    );
    let delete = operation(
        ctx,
        format!("delete_{key}"),
        "documents",
        format!("Delete a `{}` document", entry.name),
        vec![
            release_param(),
            id_param(),
            json!({"$ref": "#/components/parameters/IfMatchRequired"}),
        ],
        None,
        [("200".to_owned(), written("Deleted."))]
            .into_iter()
            .chain(errors(&[400, 401, 403, 404, 412, 428, 503]))
            .collect(),
    );
    json!({"get": get, "put": put, "patch": patch, "delete": delete})
}

/// `/docs/<Type>/{id}/access`: the document's access policy. These operations are about the
/// policy, not the body, so the server negotiates no version for them: their responses carry
/// no `Mutatis-Release`/`Mutatis-Versions` (and they need no `Mutatis-Release` header).
fn access_path(ctx: &Context<'_>, entry: &TypeEntry) -> Value {
    let key = operation_key(&entry.component);
    let mut headers = Map::new();
    headers.insert("ETag".into(), json!({"$ref": "#/components/headers/ETag"}));
    let get = operation(
        ctx,
        format!("get_access_{key}"),
        "documents",
        format!("Read the access policy of a `{}` document", entry.name),
        vec![id_param()],
        None,
        [(
            "200".to_owned(),
            json_response(
                "The document's id, rev and policy (`null`: open to every role that may read \
                 or write the type).",
                json!({
                    "type": "object",
                    "required": ["id", "rev", "access"],
                    "properties": {
                        "id": {"type": "string"},
                        "rev": {"$ref": "#/components/schemas/Rev"},
                        "access": {"$ref": "#/components/schemas/AccessPolicyOrOpen"},
                    },
                }),
                headers.clone(),
            ),
        )]
        .into_iter()
        .chain(errors(&[400, 401, 403, 404, 503]))
        .collect(),
    );
    let put = operation(
        ctx,
        format!("put_access_{key}"),
        "documents",
        format!("Replace the access policy of a `{}` document", entry.name),
        vec![
            id_param(),
            json!({"$ref": "#/components/parameters/IfMatchRequired"}),
        ],
        Some(json!({
            "required": true,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/AccessPolicyOrOpen"},
                },
            },
        })),
        [(
            "200".to_owned(),
            json_response(
                "Replaced.",
                json!({"$ref": "#/components/schemas/WriteResult"}),
                headers,
            ),
        )]
        .into_iter()
        .chain(errors(&[
            400, 401, 403, 404, 409, 412, 413, 415, 422, 428, 503,
        ]))
        .collect(),
    );
    json!({"get": get, "put": put})
}

/// `/changes`: the feed, in this release's versions.
fn changes_path(ctx: &Context<'_>, served: &[TypeEntry]) -> Value {
    // With `include_docs`, a change's document is in the release's version of its type; a
    // deletion carries none.
    let mut doc_choices: Vec<Value> = served.iter().map(doc_ref).collect();
    doc_choices.push(json!({"type": "null"}));
    let feed = json!({
        "type": "object",
        "required": ["results", "lastSeq"],
        "properties": {
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["seq", "type", "id", "rev", "deleted"],
                    "properties": {
                        "seq": {"type": "integer", "minimum": 1},
                        // Every type's changes appear (filter with `types`), not only the
                        // release's.
                        "type": {"type": "string"},
                        "id": {"type": "string"},
                        "rev": {"$ref": "#/components/schemas/Rev"},
                        "deleted": {"type": "boolean"},
                        "doc": {"anyOf": doc_choices},
                    },
                },
            },
            "lastSeq": {
                "type": "integer",
                "minimum": 0,
                "description": "The last sequence examined: resume from it with `since`.",
            },
        },
    });
    let mut ok = json_response(
        "The changes after `since` that the caller may read (`feed=normal|longpoll`), or a \
         stream of them (`feed=sse`: one event per change, `id: <seq>`).",
        feed,
        negotiated_headers(ctx, None),
    );
    // One event per change; keep-alive comments carry no event.
    ok["content"]["text/event-stream"] = json!({
        "schema": {
            "type": "object",
            "required": ["event", "id", "data"],
            "properties": {
                "event": {"const": "change"},
                "id": {"type": "string", "pattern": "^[0-9]+$"},
                "data": {
                    "type": "string",
                    "description": "One element of `results`, as JSON.",
                    "contentMediaType": "application/json",
                },
            },
        },
    });
    let get = operation(
        ctx,
        "changes".to_owned(),
        "changes",
        "The changes feed".to_owned(),
        vec![
            release_param(),
            json!({"$ref": "#/components/parameters/Since"}),
            json!({
                "name": "types",
                "in": "query",
                "required": false,
                "description": "Only changes of these types (comma-separated).",
                "schema": {"type": "string"},
            }),
            json!({
                "name": "feed",
                "in": "query",
                "required": false,
                "schema": {"type": "string", "enum": ["normal", "longpoll", "sse"],
                           "default": "normal"},
            }),
            json!({"$ref": "#/components/parameters/Limit"}),
            json!({
                "name": "include_docs",
                "in": "query",
                "required": false,
                "description": "Include each changed document, in this release's version.",
                "schema": {"type": "boolean", "default": false},
            }),
            json!({
                "name": "timeout",
                "in": "query",
                "required": false,
                "description": "How long (milliseconds) a long-poll or SSE feed waits.",
                "schema": {"type": "integer", "minimum": 0, "maximum": MAX_FEED_TIMEOUT_MS},
            }),
            json!({
                "name": "Last-Event-ID",
                "in": "header",
                "required": false,
                "description": "SSE: resume after this sequence (overrides `since`).",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }),
        ],
        None,
        [("200".to_owned(), ok)]
            .into_iter()
            .chain(errors(&[400, 401, 403, 404, 503]))
            .collect(),
    );
    json!({"get": get})
}

/// A node-level operation, answered to every client without a token and without negotiation.
fn open_operation(
    operation_id: &str,
    summary: &str,
    responses: Vec<(String, Value)>,
    request_body: Option<Value>,
) -> Value {
    let mut op = Map::new();
    op.insert("operationId".into(), json!(operation_id));
    op.insert("tags".into(), json!(["node"]));
    op.insert("summary".into(), json!(summary));
    op.insert("security".into(), json!([]));
    if let Some(body) = request_body {
        op.insert("requestBody".into(), body);
    }
    op.insert(
        "responses".into(),
        Value::Object(responses.into_iter().collect()),
    );
    Value::Object(op)
}

fn plain_json(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn meta_path() -> Value {
    let get = open_operation(
        "meta",
        "What the node serves: types, versions, releases",
        vec![(
            "200".into(),
            plain_json(
                "Node metadata.",
                json!({"$ref": "#/components/schemas/Meta"}),
            ),
        )],
        None,
    );
    json!({"get": get})
}

fn schema_path() -> Value {
    let get = open_operation(
        "schema",
        "The schema set's manifest (schemas, lenses, releases, storage)",
        vec![(
            "200".into(),
            plain_json(
                "The manifest.",
                json!({"$ref": "#/components/schemas/Manifest"}),
            ),
        )],
        None,
    );
    json!({"get": get})
}

fn openapi_path() -> Value {
    let mut get = open_operation(
        "openapi",
        "The OpenAPI document of a release (the current one when absent or unknown)",
        vec![(
            "200".into(),
            plain_json("An OpenAPI 3.1 document.", json!({"type": "object"})),
        )],
        None,
    );
    get["parameters"] = json!([{
        "name": "release",
        "in": "query",
        "required": false,
        "schema": {"type": "string"},
    }]);
    json!({"get": get})
}

fn metrics_path() -> Value {
    let get = json!({
        "operationId": "metrics",
        "tags": ["node"],
        "summary": "Prometheus metrics (OpenMetrics text format); reader role or above",
        "responses": {
            "200": {
                "description": "The metrics.",
                "content": {"application/openmetrics-text": {"schema": {"type": "string"}}},
            },
            "401": {"$ref": "#/components/responses/Problem401"},
            "403": {"$ref": "#/components/responses/Problem403"},
        },
    });
    json!({"get": get})
}

fn health_path() -> Value {
    let get = open_operation(
        "health",
        "Whether the node can reach its store",
        vec![
            (
                "200".into(),
                plain_json(
                    "The store answers.",
                    json!({
                        "type": "object",
                        "required": ["status"],
                        "properties": {
                            "status": {"const": "ok"},
                            "lastSeq": {"type": "integer", "minimum": 0},
                        },
                    }),
                ),
            ),
            (
                "503".into(),
                json!({"$ref": "#/components/responses/Problem503"}),
            ),
        ],
        None,
    );
    json!({"get": get})
}

fn compatibility_path() -> Value {
    let report = json!({
        "type": "object",
        "description": "The deployment diff of the deployed schema set against the proposed \
                        one: the JSON of `mutatis check --json --against`.",
        "required": ["format", "outcome", "problems", "releases", "types"],
        "properties": {
            "format": {"type": "integer"},
            "outcome": {"type": "string", "enum": ["compatible", "breaking"]},
            "problems": {"type": "array", "items": {"type": "string"}},
            "releases": {"type": "array", "items": {"type": "object"}},
            "retiredReleases": {"type": "array", "items": {"type": "object"}},
            "types": {"type": "array", "items": {"type": "object"}},
            "removedTypes": {"type": "array", "items": {"type": "string"}},
        },
    });
    let post = open_operation(
        "compatibility",
        "Check a proposed schema set (its manifest) against the deployed one",
        [("200".to_owned(), plain_json("The deployment diff.", report))]
            .into_iter()
            .chain(errors(&[400, 413, 415, 422]))
            .collect(),
        Some(json!({
            "required": true,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Manifest"}},
            },
        })),
    );
    json!({"post": post})
}

/// `/docs/<Type>/{id}/conflicts`: the losing leaves of concurrent edits, in this release's
/// version.
fn conflicts_path(ctx: &Context<'_>, entry: &TypeEntry) -> Value {
    let key = operation_key(&entry.component);
    let mut headers = negotiated_headers(ctx, Some(entry));
    headers.insert("ETag".into(), json!({"$ref": "#/components/headers/ETag"}));
    let conflicts = json!({
        "type": "object",
        "required": ["rev", "deleted", "conflicts"],
        "properties": {
            "rev": {"$ref": "#/components/schemas/Rev"},
            "deleted": {"type": "boolean", "description": "Whether the winner is a delete."},
            "conflicts": {
                "type": "array",
                "description": "The losing leaves, best first.",
                "items": {
                    "type": "object",
                    "required": ["rev", "deleted", "body", "access"],
                    "properties": {
                        "rev": {"$ref": "#/components/schemas/Rev"},
                        "deleted": {"type": "boolean"},
                        "body": {
                            "description": "The leaf in this release's version (`null`: a \
                                            deleted leaf).",
                            "anyOf": [doc_ref(entry), {"type": "null"}],
                        },
                        "access": {"$ref": "#/components/schemas/AccessPolicyOrOpen"},
                    },
                },
            },
        },
    });
    let get = operation(
        ctx,
        format!("get_conflicts_{key}"),
        "documents",
        format!(
            "The replication conflicts of a `{}` document, in version {}",
            entry.name, entry.version
        ),
        vec![release_param(), id_param()],
        None,
        [(
            "200".to_owned(),
            json_response(
                "The winner's rev (also the `ETag`) and the losing leaves (none when the \
                 document has no conflict).",
                conflicts,
                headers,
            ),
        )]
        .into_iter()
        .chain(errors(&[400, 401, 403, 404, 503]))
        .collect(),
    );
    json!({"get": get})
}

/// `/docs/<Type>/{id}/conflicts/resolve`: end a document's conflicts with a new rev that
/// descends from the winner and every loser.
fn resolve_path(ctx: &Context<'_>, entry: &TypeEntry) -> Value {
    let key = operation_key(&entry.component);
    let mut headers = negotiated_headers(ctx, Some(entry));
    headers.insert("ETag".into(), json!({"$ref": "#/components/headers/ETag"}));
    let rev = json!({"$ref": "#/components/schemas/Rev"});
    let body = json!({
        "required": true,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "description": "Keep one leaf's content (a deleted leaf deletes \
                                            the document).",
                            "required": ["winner", "keep"],
                            "properties": {"winner": rev, "keep": rev},
                            "additionalProperties": false,
                        },
                        {
                            "type": "object",
                            "description": "Write a merged document, in this release's \
                                            version.",
                            "required": ["winner", "merge"],
                            "properties": {"winner": rev, "merge": doc_ref(entry)},
                            "additionalProperties": false,
                        },
                    ],
                },
            },
        },
    });
    let post = operation(
        ctx,
        format!("resolve_conflicts_{key}"),
        "documents",
        format!(
            "Resolve the conflicts of a `{}` document (`winner`: the winner the caller saw)",
            entry.name
        ),
        vec![release_param(), id_param()],
        Some(body),
        [(
            "200".to_owned(),
            json_response(
                "Resolved: the new rev.",
                json!({
                    "type": "object",
                    "required": ["rev"],
                    "properties": {"rev": {"$ref": "#/components/schemas/Rev"}},
                }),
                headers,
            ),
        )]
        .into_iter()
        .chain(errors(&[400, 401, 403, 404, 409, 412, 413, 415, 422, 503]))
        .collect(),
    );
    json!({"post": post})
}

/// An operation on the node rather than on a release's documents (replication, admin): it
/// needs a token (the document's `bearer` security) but no `Mutatis-Release`, its bodies do
/// not depend on the release, and a deprecated release does not deprecate it.
fn node_operation(
    operation_id: &str,
    tag: &str,
    summary: &str,
    parameters: Vec<Value>,
    request_body: Option<Value>,
    responses: Vec<(String, Value)>,
) -> Value {
    let mut op = Map::new();
    op.insert("operationId".into(), json!(operation_id));
    op.insert("tags".into(), json!([tag]));
    op.insert("summary".into(), json!(summary));
    op.insert("parameters".into(), Value::Array(parameters));
    if let Some(body) = request_body {
        op.insert("requestBody".into(), body);
    }
    op.insert(
        "responses".into(),
        Value::Object(responses.into_iter().collect()),
    );
    Value::Object(op)
}

/// A required JSON request body of the component schema `name`.
fn component_body(name: &str) -> Value {
    json!({
        "required": true,
        "content": {
            "application/json": {
                "schema": {"$ref": format!("#/components/schemas/{name}")},
            },
        },
    })
}

/// A JSON response whose body is the component schema `name`.
fn component_response(description: &str, name: &str) -> Value {
    plain_json(
        description,
        json!({"$ref": format!("#/components/schemas/{name}")}),
    )
}

/// A response without a body.
fn no_content(description: &str) -> Value {
    json!({"description": description})
}

/// `success` followed by the problem responses of `statuses`.
fn responses(success: Vec<(&str, Value)>, statuses: &[u16]) -> Vec<(String, Value)> {
    success
        .into_iter()
        .map(|(status, response)| (status.to_owned(), response))
        .chain(errors(statuses))
        .collect()
}

/// `/replication`: what this node says about itself to a replicator.
fn replication_info_path() -> Value {
    let get = node_operation(
        "replication_info",
        "replication",
        "This node's id, manifest hash and feed head (reader role)",
        Vec::new(),
        None,
        responses(
            vec![("200", component_response("The node.", "NodeInfo"))],
            &[401, 403, 503],
        ),
    );
    json!({"get": get})
}

/// `/replication/changes`: one batch of this node's feed, as a replication source.
fn replication_changes_path() -> Value {
    let get = node_operation(
        "replication_changes",
        "replication",
        "A batch of changed documents, every leaf in the storage version (reader role)",
        vec![
            json!({"$ref": "#/components/parameters/Since"}),
            json!({
                "name": "limit",
                "in": "query",
                "required": false,
                "description": "At most this many feed entries are read (a document written \
                                several times in the range is sent once).",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_REPLICATION_BATCH,
                           "default": DEFAULT_REPLICATION_BATCH},
            }),
            json!({
                "name": "types",
                "in": "query",
                "required": false,
                "description": "Only documents of these types (comma-separated); an unknown \
                                type is `urn:mutatis:problem:unknown-type`.",
                "schema": {"type": "string"},
            }),
            json!({
                "name": "selector",
                "in": "query",
                "required": false,
                "description": "Only documents whose body holds these values at these JSON \
                                pointers, in the storage version (deletes always pass).",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Selector"}},
                },
            }),
            json!({
                "name": "waitMs",
                "in": "query",
                "required": false,
                "description": "When nothing follows `since`, wait this long (milliseconds) \
                                for a write; more than 60 000 is capped to it.",
                "schema": {"type": "integer", "minimum": 0},
            }),
        ],
        None,
        responses(
            vec![(
                "200",
                component_response(
                    "The documents changed after `since` that pass the filters; `lastSeq` is \
                     the next `since`.",
                    "ChangesBatch",
                ),
            )],
            &[400, 401, 403, 404, 503],
        ),
    );
    json!({"get": get})
}

/// `/replication/apply`: store a batch, as a replication target.
fn replication_apply_path() -> Value {
    let post = node_operation(
        "replication_apply",
        "replication",
        "Apply a batch of replicated documents and its checkpoint in one transaction \
         (writer role; body limit 64 MiB by default)",
        Vec::new(),
        Some(component_body("ApplyRequest")),
        responses(
            vec![(
                "200",
                component_response(
                    "What became of each revision, in request order (documents the caller \
                     may not write here are `forbidden`).",
                    "ApplyResponse",
                ),
            )],
            &[400, 401, 403, 404, 409, 413, 415, 422, 503],
        ),
    );
    json!({"post": post})
}

/// `/replication/checkpoints/{id}`: a replication's checkpoint on this node.
fn checkpoint_path() -> Value {
    let id = json!({
        "name": "id",
        "in": "path",
        "required": true,
        "description": "The replication's checkpoint id.",
        "schema": {"$ref": "#/components/schemas/CheckpointId"},
    });
    let get = node_operation(
        "get_checkpoint",
        "replication",
        "A replication's checkpoint (reader role)",
        vec![id.clone()],
        None,
        responses(
            vec![(
                "200",
                component_response("The last source sequence applied.", "StoredCheckpoint"),
            )],
            &[400, 401, 403, 404, 503],
        ),
    );
    let put = node_operation(
        "put_checkpoint",
        "replication",
        "Store a replication's checkpoint (writer role)",
        vec![id],
        Some(component_body("StoredCheckpoint")),
        responses(
            vec![(
                "204",
                with_links(
                    no_content("Stored."),
                    json!({
                        "read": {
                            "operationId": "get_checkpoint",
                            "parameters": {"id": "$request.path.id"},
                        },
                    }),
                ),
            )],
            &[400, 401, 403, 413, 415, 503],
        ),
    );
    json!({"get": get, "put": put})
}

/// The `{id}` path parameter of a replication job or a webhook: ids are made by the server
/// (hex digits); anything that cannot be one is 404.
fn admin_id_param(what: &str) -> Value {
    json!({
        "name": "id",
        "in": "path",
        "required": true,
        "description": format!("The {what}'s id, as its creation answered it."),
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9]{1,64}$"},
    })
}

/// The `201` of a created job or webhook: its JSON, `Location`, and links to read and delete
/// it.
fn created(description: &str, schema: &str, location: &str, key: &str) -> Value {
    let mut response = component_response(description, schema);
    response["headers"] = json!({
        "Location": {
            "description": format!("Its path: `{location}/<id>`."),
            "required": true,
            "schema": {"type": "string", "pattern": format!("^{location}/[A-Za-z0-9]+$")},
        },
    });
    let id = json!("$response.body#/id");
    with_links(
        response,
        json!({
            "read": {"operationId": format!("get_{key}"), "parameters": {"id": id}},
            "delete": {"operationId": format!("delete_{key}"), "parameters": {"id": id}},
        }),
    )
}

/// `/admin/replications`: the replication jobs this node runs.
fn jobs_path() -> Value {
    let list = node_operation(
        "list_replications",
        "admin",
        "The replication jobs stored on this node (admin role)",
        Vec::new(),
        None,
        responses(
            vec![(
                "200",
                plain_json(
                    "Every job, by id.",
                    json!({
                        "type": "object",
                        "required": ["replications"],
                        "properties": {
                            "replications": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Job"},
                            },
                        },
                    }),
                ),
            )],
            &[401, 403, 503],
        ),
    );
    let create = node_operation(
        "create_replication",
        "admin",
        "Start a replication job in the background (admin role)",
        Vec::new(),
        Some(component_body("JobRequest")),
        responses(
            vec![(
                "201",
                created(
                    "Stored and started.",
                    "Job",
                    "/admin/replications",
                    "replication",
                ),
            )],
            &[400, 401, 403, 404, 413, 415, 422, 503],
        ),
    );
    json!({"get": list, "post": create})
}

/// `/admin/replications/{id}`: one replication job.
fn job_path() -> Value {
    let get = node_operation(
        "get_replication",
        "admin",
        "A replication job, its state and progress (admin role)",
        vec![admin_id_param("job")],
        None,
        responses(
            vec![("200", component_response("The job.", "Job"))],
            &[401, 403, 404, 503],
        ),
    );
    let delete = node_operation(
        "delete_replication",
        "admin",
        "Stop a replication job and forget it (admin role)",
        vec![admin_id_param("job")],
        None,
        responses(
            vec![("204", no_content("Stopped and forgotten."))],
            &[401, 403, 404, 503],
        ),
    );
    json!({"get": get, "delete": delete})
}

/// `/admin/webhooks`: the webhooks this node delivers.
fn webhooks_path() -> Value {
    let list = node_operation(
        "list_webhooks",
        "admin",
        "The webhooks stored on this node (admin role)",
        Vec::new(),
        None,
        responses(
            vec![(
                "200",
                plain_json(
                    "Every webhook, by id.",
                    json!({
                        "type": "object",
                        "required": ["webhooks"],
                        "properties": {
                            "webhooks": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Webhook"},
                            },
                        },
                    }),
                ),
            )],
            &[401, 403, 503],
        ),
    );
    let create = node_operation(
        "create_webhook",
        "admin",
        "POST this node's changes from now on to a URL (admin role)",
        Vec::new(),
        Some(component_body("WebhookRequest")),
        responses(
            vec![(
                "201",
                created(
                    "Stored and started.",
                    "Webhook",
                    "/admin/webhooks",
                    "webhook",
                ),
            )],
            &[400, 401, 403, 404, 413, 415, 422, 503],
        ),
    );
    json!({"get": list, "post": create})
}

/// `/admin/import`: bulk-load documents in one transaction (`mutatis import --server`).
fn import_path() -> Value {
    let post = node_operation(
        "import",
        "admin",
        "Load documents of one type, written in any of its versions, in one transaction: all \
         or nothing; revs are kept as given (admin role)",
        Vec::new(),
        Some(component_body("ImportRequest")),
        responses(
            vec![(
                "200",
                component_response("Every document was stored.", "ImportResult"),
            )],
            &[400, 401, 403, 404, 413, 415, 422, 503],
        ),
    );
    json!({"post": post})
}

/// `/admin/webhooks/{id}`: one webhook.
fn webhook_path() -> Value {
    let get = node_operation(
        "get_webhook",
        "admin",
        "A webhook and its delivery state (admin role)",
        vec![admin_id_param("webhook")],
        None,
        responses(
            vec![("200", component_response("The webhook.", "Webhook"))],
            &[401, 403, 404, 503],
        ),
    );
    let delete = node_operation(
        "delete_webhook",
        "admin",
        "Stop a webhook and forget it with its checkpoint (admin role)",
        vec![admin_id_param("webhook")],
        None,
        responses(
            vec![("204", no_content("Stopped and forgotten."))],
            &[401, 403, 404, 503],
        ),
    );
    json!({"get": get, "delete": delete})
}

// ------------------------------------------------------------------------------- components

fn parameters(release: &Release) -> Value {
    json!({
        "MutatisRelease": {
            "name": "Mutatis-Release",
            "in": "header",
            "required": true,
            "description": "The release the client speaks: this document's release.",
            "schema": {"type": "string", "enum": [release.name]},
        },
        "DocumentId": {
            "name": "id",
            "in": "path",
            "required": true,
            "description": "The document's id.",
            "schema": {"$ref": "#/components/schemas/DocumentId"},
        },
        "IfMatchRequired": {
            "name": "If-Match",
            "in": "header",
            "required": true,
            "description": "The revision the change is based on (`\"<rev>\"`, quotes optional).",
            "schema": {"$ref": "#/components/schemas/IfMatch"},
        },
        "Rev": {
            "name": "rev",
            "in": "query",
            "required": false,
            "description": "Read this revision instead of the current one: the winner, a \
                            conflict leaf, or one of the last revisions whose bodies are kept \
                            (`history` in the schema set's storage; 404 `revision-not-kept` \
                            past them).",
            "schema": {"type": "string", "pattern": "^[0-9]+-[0-9a-f]+$"},
        },
        "Source": {
            "name": "source",
            "in": "query",
            "required": false,
            "description": "`backup`: read the document as the backup kept by the last \
                            migration holds it (404 `no-backup` when there is none).",
            "schema": {"type": "string", "enum": ["current", "backup"]},
        },
        "IfMatchOptional": {
            "name": "If-Match",
            "in": "header",
            "required": false,
            "description": "The revision the replacement is based on. Without it the request \
                            creates the document and fails if it exists.",
            "schema": {"$ref": "#/components/schemas/IfMatch"},
        },
        "IfNoneMatch": {
            "name": "If-None-Match",
            "in": "header",
            "required": false,
            "description": "ETags the client holds (a list, or `*`), compared weakly: when one \
                            is this representation's, the answer is 304 without a body.",
            "schema": {"type": "string"},
        },
        "MutatisAccess": {
            "name": "Mutatis-Access",
            "in": "header",
            "required": false,
            "description": "The new document's access policy, as compact JSON.",
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/AccessPolicyOrOpen"},
                },
            },
        },
        "After": {
            "name": "after",
            "in": "query",
            "required": false,
            "description": "Start after this id (the previous page's `next`).",
            "schema": {"type": "string"},
        },
        "Limit": {
            "name": "limit",
            "in": "query",
            "required": false,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                       "default": DEFAULT_LIMIT},
        },
        "Since": {
            "name": "since",
            "in": "query",
            "required": false,
            "description": "Changes after this sequence number.",
            "schema": {"type": "integer", "minimum": 0, "default": 0},
        },
    })
}

fn headers(ctx: &Context<'_>) -> Value {
    let mut headers = json!({
        "MutatisRelease": {
            "description": "The release the response was served in.",
            "required": true,
            "schema": {"type": "string", "enum": [ctx.release.name]},
        },
        "ETag": {
            "description": "The document's revision in the version served: `\"N-hash;Type@V\"` (on the access policy's routes, the bare `\"N-hash\"`).",
            "required": true,
            "schema": {"type": "string", "pattern": "^\"[^\"]+\"$"},
        },
        "Location": {
            "description": "The new document's path.",
            "required": true,
            "schema": {"type": "string"},
        },
    });
    if ctx.deprecated {
        headers["Deprecation"] = json!({
            "description": "RFC 9745: the release is deprecated (`@<unix seconds>`).",
            "required": true,
            "schema": {"type": "string", "pattern": "^@-?[0-9]+$"},
        });
        headers["DeprecationLink"] = json!({
            "description": "Where to read about the deprecation (`</meta>; rel=\"deprecation\"`).",
            "required": true,
            "schema": {"type": "string", "pattern": "rel=\"?deprecation\"?"},
        });
        if ctx.release.sunset.is_some() {
            headers["Sunset"] = json!({
                "description": "RFC 8594: when the release stops being served (IMF-fixdate).",
                "required": true,
                "schema": {
                    "type": "string",
                    "pattern": "^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} \
                                (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} \
                                [0-9]{2}:[0-9]{2}:[0-9]{2} GMT$",
                },
            });
        }
    }
    headers
}

/// The reason phrase and meaning of each documented error status.
const ERROR_STATUSES: &[(u16, &str)] = &[
    (
        400,
        "Bad request: an unknown or unsupported release \
         (`urn:mutatis:problem:unsupported-release` names `oldestSupported`), an empty or \
         non-ASCII `Mutatis-Release`, a `Mutatis-Versions` naming no type or version of the \
         schema set, a header that may appear once given twice \
         (`urn:mutatis:problem:duplicate-header`, with `header`), malformed JSON, an invalid \
         id or parameter, a bad patch.",
    ),
    (
        401,
        "No token, or an unknown one (`urn:mutatis:problem:unauthenticated`).",
    ),
    (
        403,
        "The token's role, or the document's access policy, does not allow this.",
    ),
    (
        404,
        "No such document, type, checkpoint, replication job or webhook, or a document the \
         caller may not read.",
    ),
    (
        409,
        "The document exists already, a patch's `test` failed, a migration is in the way, or \
         a replication target needs the source's manifest \
         (`urn:mutatis:problem:manifest-required`, with `type`, `version`, `manifest`).",
    ),
    (
        412,
        "`If-Match` names another revision (`urn:mutatis:problem:rev-conflict`, with \
         `currentRev`).",
    ),
    (
        408,
        "The request body stopped arriving for the server's body read timeout \
         (`urn:mutatis:problem:body-timeout`); the connection is closed.",
    ),
    (
        413,
        "The request body is over the endpoint's limit (`urn:mutatis:problem:body-too-large`, \
         with `limit`): refused before it is read when `Content-Length` announces it.",
    ),
    (
        414,
        "The request target (path and query) is over the server's limit \
         (`urn:mutatis:problem:uri-too-long`, with `limit`).",
    ),
    (415, "The request body's media type is not accepted."),
    (
        422,
        "The document does not match its version's schema \
         (`urn:mutatis:problem:invalid-document`, with `errors`), or a patch cannot apply.",
    ),
    (
        428,
        "`If-Match` is required (`urn:mutatis:problem:precondition-required`).",
    ),
    (
        431,
        "The request has too many header fields or too large a header section \
         (`urn:mutatis:problem:headers-too-large`, with `limit`).",
    ),
    (503, "The store is unavailable; retry later."),
];

fn problem_responses() -> Value {
    let mut responses = Map::new();
    for (status, description) in ERROR_STATUSES {
        let mut response = json!({
            "description": description,
            "content": {
                "application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/Problem"},
                },
            },
        });
        if *status == 401 {
            response["headers"] = json!({
                "WWW-Authenticate": {
                    "required": true,
                    "schema": {"type": "string", "pattern": "^Bearer"},
                },
            });
        }
        responses.insert(format!("Problem{status}"), response);
    }
    Value::Object(responses)
}

/// The schemas that do not depend on the schema set, in a fixed order.
fn fixed_schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "DocumentId",
            json!({
                "type": "string",
                "description": "A document id. The server accepts any non-empty id of up to 512 \
                                bytes without control characters; this document restricts ids \
                                in paths to URL-safe characters so they travel unescaped and \
                                no client normalises them away (`.`, `..`).",
                "pattern": "^[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,127}$",
            }),
        ),
        (
            "IfMatch",
            json!({
                "type": "string",
                "description": "A revision as an ETag gave it, in any version: \
                                `\"N-hash;Type@V\"`, or the bare `\"N-hash\"` (also unquoted). \
                                Compared strongly: a weak tag (`W/\"…\"`) never matches.",
                "pattern": "^(W/)?(\"[1-9][0-9]*-[0-9a-fA-F]+(;[A-Za-z0-9_.-]+@[0-9]+)?\"|[1-9][0-9]*-[0-9a-fA-F]+)$",
            }),
        ),
        (
            "Rev",
            json!({
                "type": "string",
                "description": "A revision: `<generation>-<content hash>`.",
                "pattern": "^[0-9]+-[0-9a-f]+$",
            }),
        ),
        (
            "WriteResult",
            json!({
                "type": "object",
                "required": ["id", "rev"],
                "properties": {
                    "id": {"type": "string"},
                    "rev": {"$ref": "#/components/schemas/Rev"},
                },
            }),
        ),
        (
            "AccessPolicy",
            json!({
                "type": "object",
                "description": "Who may read and write a document, by principal (token name); \
                                `*` is any authenticated principal; write implies read.",
                "properties": {
                    "read": {"type": ["array", "null"], "items": {"type": "string"}},
                    "write": {"type": ["array", "null"], "items": {"type": "string"}},
                },
                "additionalProperties": false,
            }),
        ),
        (
            "AccessPolicyOrOpen",
            json!({
                "anyOf": [
                    {"$ref": "#/components/schemas/AccessPolicy"},
                    {"type": "null"},
                ],
            }),
        ),
        (
            "JsonPatch",
            json!({
                "type": "array",
                "description": "An RFC 6902 JSON Patch, in this release's version of the type.",
                "items": {
                    "oneOf": [
                        {
                            "type": "object",
                            "required": ["op", "path", "value"],
                            "properties": {
                                "op": {"enum": ["add", "replace", "test"]},
                                "path": {"$ref": "#/components/schemas/JsonPointer"},
                                "value": {},
                            },
                        },
                        {
                            "type": "object",
                            "required": ["op", "path"],
                            "properties": {
                                "op": {"const": "remove"},
                                "path": {"$ref": "#/components/schemas/JsonPointer"},
                            },
                        },
                        {
                            "type": "object",
                            "required": ["op", "path", "from"],
                            "properties": {
                                "op": {"enum": ["move", "copy"]},
                                "path": {"$ref": "#/components/schemas/JsonPointer"},
                                "from": {"$ref": "#/components/schemas/JsonPointer"},
                            },
                        },
                    ],
                },
            }),
        ),
        (
            "JsonPointer",
            json!({"type": "string", "pattern": "^(/([^~/]|~[01])*)*$"}),
        ),
        (
            "Problem",
            json!({
                "type": "object",
                "description": "RFC 9457 problem details, with mutatis's extension members.",
                "required": ["type", "title", "status"],
                "properties": {
                    "type": {"type": "string", "description": "`urn:mutatis:problem:<name>`"},
                    "title": {"type": "string"},
                    "status": {"type": "integer", "minimum": 400, "maximum": 599},
                    "detail": {"type": "string"},
                    "instance": {"type": "string"},
                    "errors": {
                        "type": "array",
                        "description": "Each way the document fails its schema.",
                        "items": {
                            "type": "object",
                            "required": ["pointer", "message"],
                            "properties": {
                                "pointer": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        },
                    },
                    "release": {"type": "string"},
                    "oldestSupported": {"type": "string"},
                    "currentRelease": {"type": "string"},
                    "currentRev": {"type": "string"},
                },
            }),
        ),
        (
            "Meta",
            json!({
                "type": "object",
                "required": ["nodeId", "mutatis", "schemaSet", "types", "releases",
                             "currentRelease"],
                "properties": {
                    "nodeId": {"type": "string"},
                    "mutatis": {"type": "string"},
                    "schemaSet": {"type": "string"},
                    "types": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "required": ["versions", "storage"],
                            "properties": {
                                "versions": {"type": "array", "items": {"type": "integer"}},
                                "storage": {"type": "object"},
                            },
                        },
                    },
                    "releases": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "types", "status"],
                            "properties": {
                                "name": {"type": "string"},
                                "types": {"type": "object"},
                                "status": {"enum": ["current", "supported", "deprecated",
                                                    "unsupported"]},
                                "sunset": {"type": "string"},
                            },
                        },
                    },
                    "currentRelease": {"type": "string"},
                    "defaultRelease": {},
                },
            }),
        ),
        (
            "Manifest",
            json!({
                "type": "object",
                "description": "A schema set's manifest (`mutatis` manifest format).",
            }),
        ),
        (
            "NodeInfo",
            json!({
                "type": "object",
                "required": ["nodeId", "manifest", "lastSeq"],
                "properties": {
                    "nodeId": {"type": "string"},
                    "manifest": {"$ref": "#/components/schemas/ManifestHash"},
                    "lastSeq": {"type": "integer", "minimum": 0},
                },
            }),
        ),
        (
            "ManifestHash",
            json!({
                "type": "string",
                "description": "`sha256:<hex>` of a node's manifest (`GET /schema`).",
            }),
        ),
        (
            "Selector",
            json!({
                "type": "object",
                "description": "JSON pointers → the values the body must hold there, in the \
                                source's storage version.",
                "propertyNames": {"$ref": "#/components/schemas/JsonPointer"},
                "additionalProperties": {},
            }),
        ),
        (
            "LossPolicy",
            json!({
                "type": "string",
                "description": "What the target does with a document its storage version \
                                cannot hold without loss: keep the rest beside it (`carry`), \
                                drop it (`lossy`) or not store the document (`refuse`).",
                "enum": ["carry", "lossy", "refuse"],
                "default": "carry",
            }),
        ),
        (
            "ChangesBatch",
            json!({
                "type": "object",
                "required": ["nodeId", "manifest", "lastSeq", "head", "docs", "filtered"],
                "properties": {
                    "nodeId": {"type": "string"},
                    "manifest": {"$ref": "#/components/schemas/ManifestHash"},
                    "lastSeq": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "The last feed entry read: the next `since`, and the \
                                        checkpoint once the batch is applied.",
                    },
                    "head": {"type": "integer", "minimum": 0},
                    "docs": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/WireDoc"},
                    },
                    "filtered": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Feed entries left out: other types, not matching the \
                                        selector, or not readable by the caller.",
                    },
                },
            }),
        ),
        (
            "WireDoc",
            json!({
                "type": "object",
                "description": "One document: every leaf of its rev tree, the winner first.",
                "required": ["type", "id", "seq", "revisions"],
                "properties": {
                    "type": {"type": "string"},
                    "id": {"type": "string"},
                    "seq": {"type": "integer", "minimum": 0, "maximum": u64::MAX},
                    "revisions": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/WireRevision"},
                    },
                },
            }),
        ),
        (
            "WireRevision",
            json!({
                "type": "object",
                "description": "One leaf, in the source's storage version.",
                "required": ["rev", "version", "body"],
                "properties": {
                    "rev": {"$ref": "#/components/schemas/Rev"},
                    "history": {
                        "type": "array",
                        "description": "Its ancestors, most recent first.",
                        "items": {"$ref": "#/components/schemas/Rev"},
                    },
                    "version": {"type": "integer", "minimum": 0, "maximum": u32::MAX},
                    "deleted": {"type": "boolean", "default": false},
                    "body": {"description": "The document (`null` for a delete)."},
                    "access": {"$ref": "#/components/schemas/AccessPolicyOrOpen"},
                    "carry": {
                        "type": "array",
                        "description": "Bodies of newer versions carried beside it.",
                        "items": {
                            "type": "object",
                            "required": ["version", "body"],
                            "properties": {
                                "version": {"type": "integer", "minimum": 0,
                                            "maximum": u32::MAX},
                                "body": {},
                            },
                        },
                    },
                },
            }),
        ),
        (
            "ApplyRequest",
            json!({
                "type": "object",
                "required": ["source", "docs"],
                "properties": {
                    "source": {
                        "type": "object",
                        "required": ["nodeId", "manifest"],
                        "properties": {
                            "nodeId": {"type": "string"},
                            "manifest": {"$ref": "#/components/schemas/ManifestHash"},
                            "schema": {
                                "$ref": "#/components/schemas/Manifest",
                                "description": "The source's manifest, when the target asked \
                                                for it (`urn:mutatis:problem:manifest-required`).",
                            },
                        },
                    },
                    "policy": {"$ref": "#/components/schemas/LossPolicy"},
                    "checkpoint": {
                        "type": "object",
                        "description": "Stored in the same transaction as the documents.",
                        "required": ["id", "seq"],
                        "properties": {
                            "id": {"$ref": "#/components/schemas/CheckpointId"},
                            "seq": {"type": "integer", "minimum": 0, "maximum": u64::MAX},
                        },
                    },
                    "docs": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/WireDoc"},
                    },
                },
            }),
        ),
        (
            "ApplyResponse",
            json!({
                "type": "object",
                "required": ["nodeId", "results"],
                "properties": {
                    "nodeId": {"type": "string"},
                    "results": {
                        "type": "array",
                        "description": "One per revision, in request order.",
                        "items": {
                            "type": "object",
                            "required": ["type", "id", "rev", "outcome"],
                            "properties": {
                                "type": {"type": "string"},
                                "id": {"type": "string"},
                                "rev": {"$ref": "#/components/schemas/Rev"},
                                "outcome": {"enum": ["stored", "fastForward", "alreadyKnown",
                                                     "conflict", "refused", "forbidden"]},
                                "winner": {"$ref": "#/components/schemas/Rev"},
                                "lost": {"type": "array", "items": {"type": "string"}},
                                "lostIn": {"type": "integer", "minimum": 0},
                            },
                        },
                    },
                },
            }),
        ),
        (
            "CheckpointId",
            json!({
                "type": "string",
                "description": "A checkpoint id. The server accepts 1 to 128 of `A-Za-z0-9-_.`; \
                                this document keeps `.` from leading, so that no client \
                                normalises `.` or `..` away.",
                "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$",
            }),
        ),
        (
            "StoredCheckpoint",
            json!({
                "type": "object",
                "required": ["seq"],
                "properties": {
                    "seq": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": u64::MAX,
                        "description": "The last source feed sequence applied.",
                    },
                },
            }),
        ),
        (
            "JobRequest",
            json!({
                "type": "object",
                "description": "A replication job: at most one end is `self` (this node).",
                "required": ["source", "target"],
                "properties": {
                    "source": {"$ref": "#/components/schemas/JobEnd"},
                    "target": {"$ref": "#/components/schemas/JobEnd"},
                    "sourceToken": {
                        "$ref": "#/components/schemas/BearerToken",
                        "description": "The bearer token for a remote source (a reader); \
                                        stored as given.",
                    },
                    "targetToken": {
                        "$ref": "#/components/schemas/BearerToken",
                        "description": "The bearer token for a remote target (a writer); \
                                        stored as given.",
                    },
                    "types": {"type": "array", "items": {"type": "string"}},
                    "selector": {"$ref": "#/components/schemas/Selector"},
                    "policy": {"$ref": "#/components/schemas/LossPolicy"},
                    "continuous": {"type": "boolean", "default": false},
                },
                "additionalProperties": false,
            }),
        ),
        (
            "JobEnd",
            json!({
                "description": "`self` (this node) or another node's URL.",
                "anyOf": [
                    {"const": "self"},
                    {"$ref": "#/components/schemas/HttpUrl"},
                ],
            }),
        ),
        (
            "HttpUrl",
            json!({
                "type": "string",
                "format": "uri",
                "description": "An absolute http URL, or https when this server was built \
                                with TLS support (the `rustls` feature).",
                // What this build accepts: without TLS an https URL is refused (400).
                "pattern": if cfg!(feature = "rustls") {
                    "^[Hh][Tt][Tt][Pp][Ss]?://"
                } else {
                    "^[Hh][Tt][Tt][Pp]://"
                },
            }),
        ),
        (
            "BearerToken",
            json!({
                "type": "string",
                "description": "A bearer token as sent in `Authorization` (visible ASCII).",
                "pattern": "^[!-~]+$",
            }),
        ),
        (
            "Job",
            json!({
                "type": "object",
                "required": ["id", "state", "progress"],
                "properties": {
                    "id": {"type": "string"},
                    "source": {"$ref": "#/components/schemas/JobEnd"},
                    "target": {"$ref": "#/components/schemas/JobEnd"},
                    "sourceAuthenticated": {"type": "boolean"},
                    "targetAuthenticated": {"type": "boolean"},
                    "types": {"type": "array", "items": {"type": "string"}},
                    "selector": {"$ref": "#/components/schemas/Selector"},
                    "policy": {"$ref": "#/components/schemas/LossPolicy"},
                    "continuous": {"type": "boolean"},
                    "created": {"type": "string"},
                    "state": {
                        "enum": ["running", "finished", "failed", "elsewhere"],
                        "description": "As this process runs it, or as the process that \
                                        runs it last stored it; `elsewhere`: none stored yet.",
                    },
                    "lease": {
                        "description": "The process of the cluster that runs it (the holder \
                                        of its lease) and since when; `null`: none took it.",
                        "anyOf": [
                            {
                                "type": "object",
                                "properties": {
                                    "holder": {"type": "string"},
                                    "pid": {"type": "integer", "minimum": 0},
                                    "since": {"type": "string"},
                                    "expires": {"type": "string"},
                                    "expired": {"type": "boolean"},
                                },
                            },
                            {"type": "null"},
                        ],
                    },
                    "error": {"type": "string", "description": "Why the job failed."},
                    "finishedAt": {
                        "type": ["string", "null"],
                        "description": "When a job that finished before this process started \
                                        finished.",
                    },
                    "progress": {
                        "description": "`null` until the job has contacted both ends.",
                        "anyOf": [
                            {
                                "type": "object",
                                "required": ["seq"],
                                "properties": {
                                    "checkpoint": {"type": "string"},
                                    "resumedFrom": {"type": "integer", "minimum": 0},
                                    "seq": {"type": ["integer", "null"], "minimum": 0},
                                    "head": {"type": "integer", "minimum": 0},
                                    "tally": {"type": "object"},
                                },
                            },
                            {"type": "null"},
                        ],
                    },
                },
            }),
        ),
        (
            "ImportRequest",
            json!({
                "type": "object",
                "description": "Documents of one type, in one of its versions (any version the \
                                type has, not only a release's), as `mutatis export` writes \
                                them.",
                "required": ["type", "version", "docs"],
                "properties": {
                    "type": {"type": "string", "minLength": 1},
                    "version": {"type": "integer", "minimum": 1, "maximum": u32::MAX},
                    "docs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id", "doc"],
                            "properties": {
                                "id": {"type": "string", "minLength": 1},
                                "rev": {
                                    "description": "The rev it had where it came from: stored \
                                                    as given. Absent or null: a new write over \
                                                    whatever is stored.",
                                    "anyOf": [
                                        {"$ref": "#/components/schemas/Rev"},
                                        {"type": "null"},
                                    ],
                                },
                                "doc": {"description": "The body, in `version`."},
                            },
                            "additionalProperties": false,
                        },
                    },
                },
                "additionalProperties": false,
            }),
        ),
        (
            "ImportResult",
            json!({
                "type": "object",
                "required": ["type", "version", "imported"],
                "properties": {
                    "type": {"type": "string"},
                    "version": {"type": "integer", "minimum": 1},
                    "imported": {"type": "integer", "minimum": 0},
                },
                "additionalProperties": false,
            }),
        ),
        (
            "WebhookRequest",
            json!({
                "type": "object",
                "required": ["url"],
                "properties": {
                    "url": {
                        "$ref": "#/components/schemas/HttpUrl",
                        "description": "Where deliveries are POSTed.",
                    },
                    "types": {
                        "type": "array",
                        "description": "Only changes of these types (default: all).",
                        "items": {"type": "string"},
                    },
                    "release": {
                        "type": "string",
                        "description": "The release whose versions documents are sent in \
                                        (default: the current release).",
                    },
                    "secret": {
                        "type": "string",
                        "minLength": 1,
                        "description": "Signs each delivery (`Mutatis-Signature: \
                                        sha256=<hex HMAC-SHA256>`); stored as given.",
                    },
                },
                "additionalProperties": false,
            }),
        ),
        (
            "Webhook",
            json!({
                "type": "object",
                "required": ["id", "state", "seq", "failures", "consecutiveFailures",
                             "lastError", "lastDelivery"],
                "properties": {
                    "id": {"type": "string"},
                    "url": {"type": "string"},
                    "types": {"type": "array", "items": {"type": "string"}},
                    "release": {"type": "string"},
                    "signed": {"type": "boolean"},
                    "created": {"type": "string"},
                    "state": {"enum": ["running", "elsewhere"]},
                    "seq": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "The last sequence delivered (or skipped).",
                    },
                    "failures": {"type": "integer", "minimum": 0},
                    "consecutiveFailures": {"type": "integer", "minimum": 0},
                    "lastError": {"type": ["string", "null"]},
                    "lastDelivery": {"type": ["string", "null"]},
                    "lease": {
                        "description": "The process of the cluster that runs it (the holder \
                                        of its lease) and since when; `null`: none took it.",
                        "anyOf": [
                            {
                                "type": "object",
                                "properties": {
                                    "holder": {"type": "string"},
                                    "pid": {"type": "integer", "minimum": 0},
                                    "since": {"type": "string"},
                                    "expires": {"type": "string"},
                                    "expired": {"type": "boolean"},
                                },
                            },
                            {"type": "null"},
                        ],
                    },
                },
            }),
        ),
    ]
}

// ------------------------------------------------------------------- schemas of the set

/// The `components/schemas` built from the schema set, with the names already used.
#[derive(Default)]
struct Components {
    schemas: Map<String, Value>,
    used: BTreeSet<String>,
}

impl Components {
    /// A component name derived from `wanted` that is not taken yet (component names allow
    /// only `[A-Za-z0-9._-]`).
    fn fresh_name(&mut self, wanted: &str) -> String {
        let base: String = wanted
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let reserved = |name: &str| FIXED_NAMES.contains(&name);
        let mut name = base.clone();
        let mut n = 2;
        while self.used.contains(&name) || reserved(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.used.insert(name.clone());
        name
    }

    /// Move `type_name@version`'s schema into the components; the name of its component.
    fn add_type_schema(&mut self, type_name: &str, version: u32, schema: &Value) -> String {
        let component = self.fresh_name(&format!("{type_name}_v{version}"));
        let mut defs: Vec<(String, String, Value)> = Vec::new();
        let mut hoisted = BTreeMap::new();
        if let Value::Object(map) = schema {
            for container in ["$defs", "definitions"] {
                if let Some(Value::Object(entries)) = map.get(container) {
                    for (def_name, def) in entries {
                        let name = self.fresh_name(&format!("{component}.{def_name}"));
                        hoisted.insert((container.to_owned(), def_name.clone()), name.clone());
                        defs.push((container.to_owned(), name, def.clone()));
                    }
                }
            }
        }
        let relocator = Relocator {
            base: format!("#/components/schemas/{component}"),
            root_id: schema.get("$id").and_then(Value::as_str).map(str::to_owned),
            hoisted,
            anchor_prefix: format!("{component}__"),
        };
        let mut moved = schema.clone();
        if let Value::Object(map) = &mut moved {
            // `$schema` and `$id` belong to a resource root; the component is not one any
            // more (the document's `jsonSchemaDialect` says 2020-12). The hoisted
            // definitions live in their own components now.
            for key in ["$schema", "$id", "$defs", "definitions"] {
                map.remove(key);
            }
        }
        relocator.walk(&mut moved, true);
        self.schemas.insert(component.clone(), moved);
        for (_, name, mut def) in defs {
            relocator.walk(&mut def, true);
            self.schemas.insert(name, def);
        }
        component
    }
}

/// Names of [`fixed_schemas`], which a type's component must not take.
const FIXED_NAMES: &[&str] = &[
    "DocumentId",
    "IfMatch",
    "Rev",
    "WriteResult",
    "AccessPolicy",
    "AccessPolicyOrOpen",
    "JsonPatch",
    "JsonPointer",
    "Problem",
    "Meta",
    "Manifest",
    "NodeInfo",
    "ManifestHash",
    "Selector",
    "LossPolicy",
    "ChangesBatch",
    "WireDoc",
    "WireRevision",
    "ApplyRequest",
    "ApplyResponse",
    "CheckpointId",
    "StoredCheckpoint",
    "JobRequest",
    "JobEnd",
    "ImportRequest",
    "ImportResult",
    "HttpUrl",
    "BearerToken",
    "Job",
    "WebhookRequest",
    "Webhook",
];

/// Rewrites the references of one schema moved to `base`.
struct Relocator {
    /// `#/components/schemas/<component>`.
    base: String,
    /// The schema's own `$id`, which references may spell out before their fragment.
    root_id: Option<String>,
    /// (`$defs` or `definitions`, name) → the component a root definition was hoisted to.
    hoisted: BTreeMap<(String, String), String>,
    /// Prefix that keeps the schema's anchors apart from other components'.
    anchor_prefix: String,
}

/// Keywords whose value is one subschema.
const SCHEMA_KEYWORDS: &[&str] = &[
    "additionalProperties",
    "additionalItems",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
    "not",
    "contentSchema",
];
/// Keywords whose value is an array of subschemas.
const SCHEMA_ARRAY_KEYWORDS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];
/// Keywords whose value is an object of subschemas.
const SCHEMA_MAP_KEYWORDS: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

impl Relocator {
    /// Rewrite the references in `schema`; `in_root` is false inside a subschema that starts
    /// a resource of its own (`$id`), whose references resolve against that `$id`.
    fn walk(&self, schema: &mut Value, in_root: bool) {
        let Value::Object(map) = schema else {
            return;
        };
        let here = in_root && !map.contains_key("$id");
        if here {
            for key in ["$ref", "$dynamicRef"] {
                if let Some(Value::String(r)) = map.get_mut(key) {
                    *r = self.rewrite(r);
                }
            }
            for key in ["$anchor", "$dynamicAnchor"] {
                if let Some(Value::String(a)) = map.get_mut(key) {
                    *a = format!("{}{a}", self.anchor_prefix);
                }
            }
        }
        for (key, value) in map.iter_mut() {
            let key = key.as_str();
            if SCHEMA_KEYWORDS.contains(&key) {
                self.walk(value, here);
            } else if SCHEMA_ARRAY_KEYWORDS.contains(&key) || key == "items" {
                match value {
                    Value::Array(items) => items.iter_mut().for_each(|s| self.walk(s, here)),
                    other => self.walk(other, here),
                }
            } else if SCHEMA_MAP_KEYWORDS.contains(&key) || key == "dependencies" {
                // `dependencies` (draft 7) mixes subschemas and property lists; `walk` skips
                // anything that is not an object.
                if let Value::Object(entries) = value {
                    entries.values_mut().for_each(|s| self.walk(s, here));
                }
            }
        }
    }

    /// The reference `r` as seen from the schema's new place in the document.
    fn rewrite(&self, r: &str) -> String {
        let fragment = match (r.strip_prefix('#'), &self.root_id) {
            (Some(fragment), _) => fragment,
            (None, Some(id)) => match r.strip_prefix(id.as_str()) {
                Some("") => "",
                Some(rest) => match rest.strip_prefix('#') {
                    Some(fragment) => fragment,
                    None => return r.to_owned(),
                },
                None => return r.to_owned(),
            },
            // A reference to another resource: the schema set's validator resolves nothing
            // outside the schema, so a loaded set has none; left as written.
            (None, None) => return r.to_owned(),
        };
        if fragment.is_empty() {
            return self.base.clone();
        }
        if !fragment.starts_with('/') {
            // A plain-name fragment: an anchor, renamed with its definition.
            return format!("#{}{fragment}", self.anchor_prefix);
        }
        let mut segments = fragment[1..].splitn(3, '/');
        if let (Some(container), Some(name)) = (segments.next(), segments.next()) {
            let key = (
                unescape_pointer_segment(&percent_decode(container)),
                unescape_pointer_segment(&percent_decode(name)),
            );
            if let Some(component) = self.hoisted.get(&key) {
                return match segments.next() {
                    Some(rest) => format!("#/components/schemas/{component}/{rest}"),
                    None => format!("#/components/schemas/{component}"),
                };
            }
        }
        format!("{}{fragment}", self.base)
    }
}

/// `~1` → `/`, `~0` → `~` (RFC 6901).
fn unescape_pointer_segment(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

/// Decode `%XX` escapes (a URI fragment may carry them); anything malformed stays as is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A type name as one path segment: anything outside RFC 3986's unreserved characters is
/// percent-encoded (including `{` and `}`, which would read as a path template).
fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An operation id fragment from a component name (`Student_v3`): unique because component
/// names are.
fn operation_key(component: &str) -> String {
    component.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relocated(schema: Value) -> Map<String, Value> {
        let mut components = Components::default();
        components.add_type_schema("T", 1, &schema);
        components.schemas
    }

    #[test]
    fn root_defs_are_hoisted_and_references_follow() {
        let schemas = relocated(json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://example.com/t.json",
            "type": "object",
            "properties": {
                "a": {"$ref": "#/$defs/name"},
                "b": {"$ref": "#/properties/a"},
                "c": {"$ref": "#"},
                "d": {"$ref": "https://example.com/t.json#/$defs/name/maxLength"},
                "e": {"$ref": "#here"},
                "f": {"const": {"$ref": "#/not/a/reference"}},
            },
            "$defs": {"name": {"type": "string", "maxLength": 3, "$anchor": "here"}},
        }));
        let t = &schemas["T_v1"];
        assert!(t.get("$schema").is_none() && t.get("$id").is_none());
        assert!(t.get("$defs").is_none());
        let p = &t["properties"];
        assert_eq!(p["a"]["$ref"], "#/components/schemas/T_v1.name");
        assert_eq!(p["b"]["$ref"], "#/components/schemas/T_v1/properties/a");
        assert_eq!(p["c"]["$ref"], "#/components/schemas/T_v1");
        assert_eq!(p["d"]["$ref"], "#/components/schemas/T_v1.name/maxLength");
        assert_eq!(p["e"]["$ref"], "#T_v1__here");
        // Data is not a schema: a `$ref` inside `const` is a value and stays.
        assert_eq!(p["f"]["const"]["$ref"], "#/not/a/reference");
        assert_eq!(schemas["T_v1.name"]["$anchor"], "T_v1__here");
    }

    #[test]
    fn nested_resources_keep_their_own_references() {
        let schemas = relocated(json!({
            "properties": {
                "x": {
                    "$id": "https://example.com/x.json",
                    "$ref": "#/$defs/y",
                    "$defs": {"y": {"type": "string"}},
                },
            },
        }));
        assert_eq!(schemas["T_v1"]["properties"]["x"]["$ref"], "#/$defs/y");
    }

    #[test]
    fn component_names_are_sanitised_and_unique() {
        let mut components = Components::default();
        let a = components.add_type_schema("a b", 1, &json!(true));
        let b = components.add_type_schema("a_b", 1, &json!(true));
        let c = components.add_type_schema("Problem", 1, &json!(true));
        assert_eq!(a, "a_b_v1");
        assert_eq!(b, "a_b_v1_2");
        assert_eq!(c, "Problem_v1");
        assert_eq!(encode_path_segment("a b{c}"), "a%20b%7Bc%7D");
        assert_eq!(percent_decode("%24defs%2"), "$defs%2");
    }
}
