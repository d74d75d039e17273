//! A document's replication conflicts (DESIGN §10): the losing leaves of concurrent edits,
//! listed and resolved in the client's negotiated version.
//!
//! Every node holding the same leaves shows the same winner; a resolution is a new rev that
//! descends from the winner and every loser, so it ends the conflict wherever it replicates.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mutatis_store::{Backend, Resolution, Rev};
use serde_json::{json, Value};

use crate::app::AppState;
use crate::auth::{AccessPolicy, Role};
use crate::docs::{access_denied, negotiate_for, with_representation_etag};
use crate::http::{json_body, json_response, negotiated, require};
use crate::problem::Problem;

/// `GET /docs/{type}/{id}/conflicts`: `{"rev", "deleted", "conflicts": [{"rev", "deleted",
/// "body", "access"}]}`: the winner's rev and the losing leaves, best first, their bodies in
/// the client's version. 404 when the document does not exist (no leaf at all) or the caller
/// may not read it.
pub async fn list<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path((type_name, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let who = require(&state, &headers, Role::Reader).await?;
    let served = negotiate_for(&state, &headers, &query, &type_name, None)?;
    let (t, i, version) = (type_name.clone(), id.clone(), served.version);
    // The replication view: the winner, tombstone included, and every leaf translated.
    let doc = state
        .read_store(move |s| s.replication_doc(&t, &i, version))
        .await?;
    let doc = match doc {
        Some(d) if AccessPolicy::stored(&d.access).may_read(&who) => d,
        _ => return Err(Problem::not_found(&type_name, &id)),
    };
    // A deleted document without conflicts is gone, as `GET /docs/T/ID` says.
    if doc.deleted && doc.conflicts.is_empty() {
        return Err(Problem::not_found(&type_name, &id));
    }
    // A leaf whose own policy hides it from the caller is left out, as a document would be.
    let conflicts: Vec<Value> = doc
        .conflicts
        .iter()
        .filter(|leaf| AccessPolicy::stored(&leaf.access).may_read(&who))
        .map(|leaf| {
            json!({
                "rev": leaf.rev.to_string(),
                "deleted": leaf.deleted,
                "body": leaf.body,
                "access": leaf.access,
            })
        })
        .collect();
    let body = json!({
        "rev": doc.rev.to_string(),
        "deleted": doc.deleted,
        "conflicts": conflicts,
    });
    let resp = with_representation_etag(
        json_response(StatusCode::OK, &body),
        &doc.rev,
        &type_name,
        served.version,
    );
    Ok(negotiated(&state, resp, &type_name, &served))
}

/// What a resolve request asks.
#[derive(Debug)]
struct ResolveRequest {
    winner: Rev,
    keep: Option<Rev>,
    merge: Option<Value>,
}

fn parse_rev(v: &Value, member: &str) -> Result<Rev, Problem> {
    let text = v.as_str().ok_or_else(|| {
        Problem::bad_request(format!("`{member}` must be a rev (a string \"N-hash\")"))
            .with("member", member)
    })?;
    text.parse::<Rev>().map_err(|e| {
        Problem::new(400, "invalid-rev", "Invalid rev", e.to_string()).with("member", member)
    })
}

fn resolve_request(body: &Value) -> Result<ResolveRequest, Problem> {
    let Some(map) = body.as_object() else {
        return Err(Problem::bad_request(
            "expected {\"winner\": REV, \"keep\": REV} or {\"winner\": REV, \"merge\": {…}}",
        ));
    };
    if let Some(k) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "winner" | "keep" | "merge"))
    {
        return Err(Problem::bad_request(format!(
            "unknown member `{k}`; expected winner, keep or merge"
        )));
    }
    let winner = parse_rev(
        map.get("winner").ok_or_else(|| {
            Problem::bad_request("`winner` (the winning rev you saw) is required")
        })?,
        "winner",
    )?;
    let keep = map.get("keep").map(|v| parse_rev(v, "keep")).transpose()?;
    let merge = map.get("merge").cloned();
    match (&keep, &merge) {
        (Some(_), None) => {}
        (None, Some(m)) if m.is_object() => {}
        (None, Some(_)) => {
            return Err(Problem::bad_request(
                "`merge` must be the merged document (a JSON object)",
            ))
        }
        _ => {
            return Err(Problem::bad_request(
                "give exactly one of `keep` (a leaf's rev) and `merge` (a merged document)",
            ))
        }
    }
    Ok(ResolveRequest {
        winner,
        keep,
        merge,
    })
}

/// `POST /docs/{type}/{id}/conflicts/resolve` body `{"winner": REV, "keep": REV}` or
/// `{"winner": REV, "merge": {…}}` (the merged document in the client's version): 200
/// `{"rev"}`, the new rev, which descends from the winner and every losing leaf the caller
/// may read (a leaf it may not read stays, as `list` never showed it). 412 `rev-conflict`
/// when the winner moved since the caller looked, or the kept leaf is gone (or hidden).
pub async fn resolve<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path((type_name, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let who = require(&state, &headers, Role::Writer).await?;
    let req = resolve_request(&json_body(&headers, &body)?)?;
    let served = negotiate_for(&state, &headers, &query, &type_name, req.merge.as_ref())?;
    let (t, i) = (type_name.clone(), id.clone());
    // The policy of the document as it is (a tombstone with conflicts has one too).
    let access = state.read_store(move |s| s.access(&t, &i)).await?;
    let policy = match access {
        Some(a) => AccessPolicy::stored(&a),
        None => return Err(Problem::not_found(&type_name, &id)),
    };
    if !policy.may_read(&who) {
        return Err(Problem::not_found(&type_name, &id));
    }
    if !policy.may_write(&who) {
        return Err(access_denied(&type_name, &id, &who));
    }
    let resolution = match (req.keep, req.merge) {
        (Some(rev), _) => Resolution::Keep(rev),
        (None, Some(body)) => Resolution::Merge {
            version: served.version,
            body,
        },
        (None, None) => {
            return Err(Problem::bad_request(
                "give exactly one of `keep` and `merge`",
            ))
        }
    };
    let (t, i, winner) = (type_name.clone(), id.clone(), req.winner);
    // Among the leaves the caller may read: one it may not is not its to keep or to end
    // (and `GET …/conflicts` never showed it), so it stays as it is.
    let w = state
        .with_store(move |s| {
            s.resolve_conflict_among(&t, &i, &winner, resolution, &|access| {
                AccessPolicy::stored(access).may_read(&who)
            })
        })
        .await?;
    state.wrote(w.seq);
    let resp = with_representation_etag(
        json_response(StatusCode::OK, &json!({"rev": w.rev.to_string()})),
        &w.rev,
        &type_name,
        served.version,
    );
    Ok(negotiated(&state, resp, &type_name, &served))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_requests_take_one_of_keep_and_merge() {
        let r = resolve_request(&json!({"winner": "2-ab", "keep": "2-cd"})).unwrap();
        assert_eq!(r.keep.map(|k| k.to_string()).as_deref(), Some("2-cd"));
        let r = resolve_request(&json!({"winner": "2-ab", "merge": {"a": 1}})).unwrap();
        assert_eq!(r.merge, Some(json!({"a": 1})));
        let both = json!({"winner": "2-ab", "keep": "2-cd", "merge": {}});
        assert_eq!(resolve_request(&both).unwrap_err().name(), "bad-request");
        let neither = json!({"winner": "2-ab"});
        assert_eq!(resolve_request(&neither).unwrap_err().name(), "bad-request");
        let bad_rev = json!({"winner": "two", "keep": "2-cd"});
        assert_eq!(resolve_request(&bad_rev).unwrap_err().name(), "invalid-rev");
        let typo = json!({"winner": "2-ab", "kep": "2-cd"});
        assert_eq!(resolve_request(&typo).unwrap_err().name(), "bad-request");
    }
}
