//! The routes every client may call, supported or not: `/health`, `/livez`, `/readyz`, `/meta`, `/schema`,
//! `/openapi.json`, `/compatibility` (no token), and `/metrics` (reader, or public).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mutatis_schema::deploy::{self, Policy};
use mutatis_schema::{Release, SchemaSet, Storage};
use mutatis_store::Backend;
use serde_json::{json, Map, Value};

use crate::app::{run_blocking, AppState};
use crate::auth::Role;
use crate::http::{json_body, json_response, require};
use crate::problem::Problem;

/// `GET /health`: `{"status": "ok"}` once the store answers.
pub async fn health<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
) -> Result<Response, Problem> {
    let seq = state.read_store(|s| s.last_seq()).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"status": "ok", "lastSeq": seq}),
    ))
}

/// How long `/readyz` waits for the store's answer before saying the node is not ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /livez`: 200 `{"status":"live"}` while the process answers at all; nothing is asked
/// of the store (a store outage is `/readyz`'s to report: restarting the process would not
/// cure it).
pub async fn livez() -> Response {
    json_response(StatusCode::OK, &json!({"status": "live"}))
}

/// `GET /readyz`: 200 `{"status":"ready","lastSeq":N}` when the store answers a trivial read
/// within [`READY_TIMEOUT`]; else 503 problem+json `not-ready`, so a load balancer sends the
/// node no traffic until its store is back. The schema set is loaded before the server
/// accepts its first connection (and a reload swaps it whole), so a node that answers has
/// one.
pub async fn readyz<B: Backend + 'static>(State(state): State<Arc<AppState<B>>>) -> Response {
    let read = tokio::time::timeout(READY_TIMEOUT, state.read_store(|s| s.last_seq())).await;
    let detail = match read {
        Ok(Ok(seq)) => {
            return json_response(StatusCode::OK, &json!({"status": "ready", "lastSeq": seq}))
        }
        Ok(Err(p)) => format!("the store failed a trivial read: {}", p.detail),
        Err(_) => format!(
            "the store did not answer a trivial read within {} s",
            READY_TIMEOUT.as_secs_f64()
        ),
    };
    // Outside the edge (see `http::router`): the body is written here, whole.
    let p = Problem::new(503, "not-ready", "Not ready", detail);
    let body = p.body("/readyz").to_string();
    let mut resp = p.into_response();
    resp.extensions_mut().remove::<Problem>();
    *resp.body_mut() = axum::body::Body::from(body);
    resp
}

/// `GET /meta`: `{"nodeId", "mutatis", "schemaSet", "types": {T: {"versions", "storage":
/// {"version", "strategy"}}}, "releases": [{"name","types","status","sunset"?}],
/// "currentRelease", "defaultRelease"}`.
pub async fn meta<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
) -> Result<Response, Problem> {
    let store = state.store();
    let names: Vec<String> = store
        .schema_set()
        .types()
        .map(|t| t.name().to_owned())
        .collect();
    // The storage actually in use (a migration may not have switched yet).
    let states = state
        .with_store(move |s| {
            names
                .iter()
                .map(|n| s.state(n).map(|st| (n.clone(), st)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    let set = store.schema_set();
    let mut types = Map::new();
    for (name, st) in states {
        let versions: Vec<u32> = set
            .supported_versions(&name)
            .map(|v| v.into_iter().collect())
            .unwrap_or_default();
        let storage = Storage {
            version: st.storage_version,
            strategy: st.strategy,
            history: set
                .storage(&name)
                .map_or(Storage::DEFAULT_HISTORY, |s| s.history),
        };
        types.insert(
            name,
            json!({"versions": versions, "storage": storage.to_json()}),
        );
    }
    // Rendered as the manifest renders them, so `/meta` and `/schema` agree.
    let releases: Vec<Value> = set.releases().iter().map(Release::to_json).collect();
    let body = json!({
        "nodeId": state.node_id,
        "mutatis": env!("CARGO_PKG_VERSION"),
        "schemaSet": set.name(),
        "types": types,
        "releases": releases,
        "currentRelease": set.current().name,
        "defaultRelease": set.unnamed_release().to_json(),
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /schema`: the manifest of the schema set served.
pub async fn schema<B: Backend + 'static>(State(state): State<Arc<AppState<B>>>) -> Response {
    json_response(StatusCode::OK, &state.store().schema_set().manifest())
}

/// `GET /openapi.json?release=R`: the API as a client of release R sees it (unknown or absent:
/// the current release).
pub async fn openapi<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let store = state.store();
    let set = store.schema_set();
    let release = query
        .get("release")
        .and_then(|r| set.release(r))
        .unwrap_or_else(|| set.current());
    json_response(
        StatusCode::OK,
        &crate::openapi::openapi_document(set, release),
    )
}

/// `GET /metrics`: the OpenMetrics text format (`crate::metrics`).
pub async fn metrics<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    if !state.config.public_metrics {
        require(&state, &headers, Role::Reader).await?;
    }
    Ok((
        StatusCode::OK,
        [(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response())
}

/// The deployment diff of the running set (deployed) against `proposed` (local), in the JSON
/// of `mutatis check --json --against`.
pub fn compatibility_json(
    proposed: &SchemaSet,
    running: &SchemaSet,
    proposed_source: &str,
) -> Result<(Value, bool), Problem> {
    let diff = deploy::diff(proposed, running, &Policy::default()).map_err(|e| {
        Problem::new(
            422,
            "incomparable-schema-set",
            "Schema sets cannot be compared",
            e.to_string(),
        )
    })?;
    let mut out = Map::new();
    out.insert(
        "local".into(),
        json!({"name": proposed.name(), "source": proposed_source}),
    );
    out.insert(
        "deployed".into(),
        json!({"name": running.name(), "source": "this node"}),
    );
    if let Value::Object(rest) = diff.to_json() {
        out.extend(rest);
    }
    Ok((Value::Object(out), diff.is_breaking()))
}

/// `POST /compatibility`: body = a proposed manifest; answer = the deployment diff.
pub async fn compatibility<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let manifest = json_body(&headers, &body)?;
    let store = state.store();
    let (value, _) = run_blocking("the compatibility task", move || {
        let proposed = SchemaSet::from_manifest(&manifest).map_err(|e| {
            Problem::new(
                422,
                "invalid-manifest",
                "Invalid manifest",
                format!("the proposed manifest does not load: {e}"),
            )
        })?;
        compatibility_json(&proposed, store.schema_set(), "request")
    })
    .await??;
    Ok(json_response(StatusCode::OK, &value))
}
