//! The replication protocol, served (DESIGN §10): this node as a source (`GET /replication`,
//! `GET /replication/changes`) and as a target (`POST /replication/apply`), and the
//! replications' checkpoints (`/replication/checkpoints/{id}`).
//!
//! The handlers are thin: parse, check roles, run [`mutatis_replication`]'s source or target
//! side on the blocking pool with the caller's per-document access as a filter, answer. The
//! client side is `mutatis_client::HttpPeer`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mutatis_replication::wire::StoredCheckpoint;
use mutatis_replication::{
    apply_batch, changes_batch, target, ApplyError, ApplyRequest, ChangesRequest, NodeInfo,
    Outcome, Selector, WriteCheck, MANIFEST_REQUIRED, MAX_BATCH,
};
use mutatis_store::Backend;
use serde::Serialize;
use serde_json::Value;

use crate::app::{run_blocking, store_problem, AppState};
use crate::auth::{AccessPolicy, Principal, Role};
use crate::http::{json_body, json_response, limit_param, parse_json, require, require_media_type};
use crate::problem::Problem;

/// The longest a replicator may wait for a change (`waitMs`).
pub const MAX_WAIT_MS: u64 = 60_000;

/// Feed entries per batch when the replicator names no `limit`.
pub const DEFAULT_BATCH: usize = 500;

/// The longest checkpoint id accepted (ids made by [`mutatis_replication::checkpoint_id`] are
/// 32 hex digits).
const MAX_CHECKPOINT_ID: usize = 128;

fn bad(param: &str, detail: String) -> Problem {
    Problem::bad_request(detail).with("parameter", param)
}

fn json_of<T: Serialize>(status: StatusCode, value: &T) -> Result<Response, Problem> {
    let v = serde_json::to_value(value).map_err(|e| {
        tracing::error!("a replication answer does not serialise: {e}");
        Problem::internal()
    })?;
    Ok(json_response(status, &v))
}

/// `GET /replication`: `{"nodeId","manifest","lastSeq"}`.
pub async fn info<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require(&state, &headers, Role::Reader).await?;
    let (_, manifest) = state.store_and_manifest();
    let last_seq = state.read_store(|s| s.last_seq()).await?;
    json_of(
        StatusCode::OK,
        &NodeInfo {
            node_id: state.node_id.clone(),
            manifest: manifest.to_string(),
            last_seq,
        },
    )
}

/// The [`ChangesRequest`] of `GET /replication/changes`'s query.
fn changes_request<B: Backend + 'static>(
    state: &AppState<B>,
    query: &HashMap<String, String>,
) -> Result<ChangesRequest, Problem> {
    let since = match query.get("since") {
        None => 0,
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| bad("since", format!("since={s}: expected a sequence number")))?,
    };
    let limit = limit_param(query, DEFAULT_BATCH, MAX_BATCH)?;
    let types: Vec<String> = query
        .get("types")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    // A type this node does not have is a mistake of the replicator, not an empty stream.
    let store = state.store();
    let set = store.schema_set();
    for t in &types {
        set.type_def(t)
            .map_err(|_| crate::negotiate::unknown_type(set, t))?;
    }
    let selector = match query.get("selector") {
        None => Selector::new(),
        Some(text) => serde_json::from_str::<Selector>(text).map_err(|e| {
            bad(
                "selector",
                format!(
                    "selector: expected a JSON object of JSON pointers to values \
                     ({{\"/formatId\": \"eml\"}}): {e}"
                ),
            )
        })?,
    };
    if let Some(p) = selector
        .keys()
        .find(|p| !p.is_empty() && !p.starts_with('/'))
    {
        return Err(bad(
            "selector",
            format!("selector: {p:?} is not a JSON pointer (it must start with `/`)"),
        ));
    }
    let wait_ms = match query.get("waitMs") {
        None => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| bad("waitMs", format!("waitMs={s}: expected milliseconds")))?
                .min(MAX_WAIT_MS),
        ),
    };
    Ok(ChangesRequest {
        since,
        limit,
        types,
        selector,
        wait_ms,
    })
}

/// `GET /replication/changes?since=N&limit=N&types=A,B&selector=JSON&waitMs=N`: a
/// [`mutatis_replication::ChangesBatch`]. Documents the caller may not read are left out and
/// counted in `filtered`. With `waitMs` and nothing after `since`, the answer waits (at most
/// [`MAX_WAIT_MS`]) for a write.
pub async fn changes<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let who = require(&state, &headers, Role::Reader).await?;
    let req = Arc::new(changes_request(&state, &query)?);
    let who = Arc::new(who);
    let deadline = Instant::now() + Duration::from_millis(req.wait_ms.unwrap_or(0));
    let mut rx = state.feed_watch();
    loop {
        rx.borrow_and_update();
        let (store, manifest) = state.store_and_manifest();
        let (r, w, node) = (Arc::clone(&req), Arc::clone(&who), state.node_id.clone());
        let batch = run_blocking("a replication source batch", move || {
            changes_batch(&store, &node, &manifest, &r, &|access| may_read(&w, access))
        })
        .await?
        .map_err(|e| store_problem(&e))?;
        let now = Instant::now();
        // Anything read, even if all of it was filtered out, moves the replicator on.
        if batch.last_seq > req.since || now >= deadline {
            return json_of(StatusCode::OK, &batch);
        }
        // Woken by a write of this process, or after the poll interval for writes of others;
        // a shutdown answers the empty batch at once.
        tokio::select! {
            _ = tokio::time::timeout(state.feed_poll().min(deadline - now), rx.changed()) => {}
            () = state.stopping() => return json_of(StatusCode::OK, &batch),
        }
    }
}

fn may_read(who: &Principal, access: &Value) -> bool {
    who.role == Role::Admin || AccessPolicy::stored(access).may_read(who)
}

/// Whether `who` may write a replicated document: against the local document's policy; a
/// document new here may be created with whatever policy it brings, as a writer may create
/// one with `Mutatis-Access`.
fn may_write(who: &Principal, local: Option<&Value>) -> bool {
    match local {
        None => true,
        Some(access) => AccessPolicy::stored(access).may_write(who),
    }
}

/// `POST /replication/apply`: an [`ApplyRequest`] → [`mutatis_replication::ApplyResponse`].
/// Documents the caller may not write here come back `forbidden`. The body limit is the
/// replication one ([`crate::app::ReplicationConfig::body_limit`]), and the body is read
/// only once the caller is known to be a writer.
pub async fn apply<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    req: Request,
) -> Result<Response, Problem> {
    let who = require(&state, req.headers(), Role::Writer).await?;
    require_media_type(req.headers(), "application/json")?;
    let body = Bytes::from_request(req, &()).await.map_err(|rejection| {
        Problem::for_status(rejection.status().as_u16(), &rejection.body_text())
    })?;
    // Read as every document is (numbers exactly), then as a batch.
    let batch: ApplyRequest = serde_json::from_value(parse_json(&body)?)
        .map_err(|e| invalid_batch(format!("the body is not a replication batch: {e}")))?;
    check_policies(&batch)?;
    let (store, manifest) = state.store_and_manifest();
    let (node, sets) = (state.node_id.clone(), Arc::clone(&state.source_sets));
    let (resp, written_seq) = run_blocking("a replication batch", move || {
        let check = |local: Option<&Value>, _incoming: &Value| may_write(&who, local);
        // An admin may write every document: no per-document reads.
        let check: Option<WriteCheck<'_>> = if who.role == Role::Admin {
            None
        } else {
            Some(&check)
        };
        let resp = apply_batch(&store, &node, &manifest, &sets, &batch, check)?;
        let wrote = resp.results.iter().any(|r| {
            matches!(
                r.outcome,
                Outcome::Stored | Outcome::FastForward | Outcome::Conflict
            )
        });
        let seq = if wrote { Some(store.last_seq()?) } else { None };
        Ok::<_, ApplyError>((resp, seq))
    })
    .await?
    .map_err(|e| apply_problem(&e))?;
    if let Some(seq) = written_seq {
        // Local feed readers (long-poll, SSE, replicators) see replicated changes at once.
        state.wrote(seq);
    }
    json_of(StatusCode::OK, &resp)
}

fn invalid_batch(detail: String) -> Problem {
    Problem::new(400, "invalid-batch", "Invalid replication batch", detail)
}

/// Every revision's access policy must be one this node enforces (`null` or
/// `{"read","write"}` lists): a malformed one would be stored as sent and shown as it is by
/// `GET /docs/T/ID/access`, while the node reads it as closed to all but admins.
fn check_policies(batch: &ApplyRequest) -> Result<(), Problem> {
    for doc in &batch.docs {
        for revision in &doc.revisions {
            if let Err(e) = AccessPolicy::parse(&revision.access) {
                return Err(invalid_batch(format!(
                    "{} {:?} rev {}: `access`: {e}",
                    doc.type_name, doc.id, revision.rev
                )));
            }
        }
    }
    Ok(())
}

/// The problem of a batch that cannot be applied.
pub fn apply_problem(e: &ApplyError) -> Problem {
    match e {
        ApplyError::ManifestRequired {
            type_name,
            version,
            manifest,
        } => {
            let name = MANIFEST_REQUIRED
                .strip_prefix("urn:mutatis:problem:")
                .unwrap_or(MANIFEST_REQUIRED);
            Problem::new(409, name, "Source manifest required", e.to_string())
                .with("type", type_name.as_str())
                .with("version", *version)
                .with("manifest", manifest.as_str())
        }
        ApplyError::BadManifest(_) => Problem::new(
            400,
            "bad-manifest",
            "Unusable source manifest",
            e.to_string(),
        ),
        ApplyError::Store(se) => store_problem(se),
    }
}

/// A checkpoint id from the path: what [`mutatis_replication::checkpoint_id`] makes, or any
/// short name of letters, digits, `-`, `_` and `.` (it becomes a store setting's key).
fn checkpoint_id(id: &str) -> Result<&str, Problem> {
    let ok = !id.is_empty()
        && id.len() <= MAX_CHECKPOINT_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(id)
    } else {
        Err(bad(
            "id",
            format!(
                "checkpoint id {id:?}: expected 1 to {MAX_CHECKPOINT_ID} letters, digits, `-`, `_` or `.`"
            ),
        ))
    }
}

/// `GET /replication/checkpoints/{id}`: `{"seq": N}`, or 404 `not-found`.
pub async fn get_checkpoint<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require(&state, &headers, Role::Reader).await?;
    let key = checkpoint_id(&id)?.to_owned();
    let found = state
        .read_store(move |s| target::read_checkpoint(s, &key))
        .await?;
    match found {
        Some(cp) => json_of(StatusCode::OK, &cp),
        None => Err(Problem::new(
            404,
            "not-found",
            "Not found",
            format!("this node has no checkpoint {id:?}"),
        )),
    }
}

/// `PUT /replication/checkpoints/{id}` body `{"seq": N}`: 204.
pub async fn put_checkpoint<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    require(&state, &headers, Role::Writer).await?;
    let key = checkpoint_id(&id)?.to_owned();
    let value = json_body(&headers, &body)?;
    let cp: StoredCheckpoint = serde_json::from_value(value)
        .map_err(|e| Problem::bad_request(format!("expected {{\"seq\": N}}: {e}")))?;
    state
        .with_store(move |s| target::write_checkpoint(s, &key, cp.seq))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_required_is_the_protocol_problem() {
        let p = apply_problem(&ApplyError::ManifestRequired {
            type_name: "Student".into(),
            version: 9,
            manifest: "sha256:00".into(),
        });
        assert_eq!(p.status, 409);
        assert_eq!(p.kind, MANIFEST_REQUIRED);
        assert_eq!(p.extensions["version"], 9);
        let p = apply_problem(&ApplyError::BadManifest("it hashes to x".into()));
        assert_eq!((p.status, p.name()), (400, "bad-manifest"));
    }

    #[test]
    fn checkpoint_ids_are_short_plain_names() {
        assert!(checkpoint_id("0123abcd").is_ok());
        assert!(checkpoint_id("a.b-c_d").is_ok());
        assert!(checkpoint_id("").is_err());
        assert!(checkpoint_id("a/b").is_err());
        assert!(checkpoint_id(&"a".repeat(MAX_CHECKPOINT_ID + 1)).is_err());
    }

    #[test]
    fn replicated_writes_follow_the_local_policy() {
        let bob = Principal {
            name: "bob".into(),
            role: Role::Writer,
        };
        assert!(may_write(&bob, None));
        assert!(may_write(&bob, Some(&Value::Null)));
        let alice_only = serde_json::json!({"write": ["alice"]});
        assert!(!may_write(&bob, Some(&alice_only)));
        assert!(!may_read(&bob, &serde_json::json!({"read": ["alice"]})));
    }
}
