//! Document handlers: read, list, create, replace, patch, delete, and the access policy. Each
//! negotiates the client's version, checks roles and the document's policy, and calls the store
//! in the client's version (so an old client's write keeps what it cannot see).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::header::{ETAG, IF_NONE_MATCH, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mutatis_lens::{apply_patch, PatchError};
use mutatis_store::{Backend, Document, RawDocument, Rev, Revision, Store, StoreError, Written};
use serde_json::{json, Value};

use crate::app::{random, store_problem, AppState};
use crate::auth::{hex, AccessPolicy, Authenticated, Principal, Role};
use crate::conditional::{
    none_match, representation_etag, representation_tag, IfMatch, IfMatchError,
};
use crate::headers::etag;
use crate::http::{
    announce, caller, header, json_body, json_bytes_response, json_response, limit_param,
    negotiated, parse_json, require, require_media_type,
};
use crate::negotiate::{negotiate, Served};
use crate::problem::Problem;

/// Largest page of a list.
pub const MAX_LIMIT: usize = 1000;
/// Default page size of a list.
pub const DEFAULT_LIMIT: usize = 100;

type Query_ = Query<HashMap<String, String>>;

/// `resp` with the bare `rev` as its `ETag`: the access policy's answers, which are the same
/// in every version.
pub(crate) fn with_etag(resp: Response, rev: &Rev) -> Response {
    with_tag(resp, &rev.to_string())
}

/// `resp` with the tag of `rev` in `type_name`'s `version` as its `ETag`
/// ([`crate::conditional`]).
pub(crate) fn with_representation_etag(
    resp: Response,
    rev: &Rev,
    type_name: &str,
    version: u32,
) -> Response {
    with_tag(resp, &representation_tag(rev, type_name, version))
}

fn with_tag(mut resp: Response, opaque: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(&etag(opaque)) {
        resp.headers_mut().insert(ETAG, v);
    }
    resp
}

/// The answer to a write: `{"id","rev"}` with the new revision's tag in `served`'s version
/// as `ETag` (the bare rev when the answer is about no version: the access policy); readers
/// waiting on the feed are woken.
fn written<B: Backend + 'static>(
    state: &AppState<B>,
    status: StatusCode,
    id: &str,
    w: &Written,
    served: Option<(&str, &Served)>,
) -> Response {
    state.wrote(w.seq);
    let body = json!({"id": id, "rev": w.rev.to_string()});
    let resp = json_response(status, &body);
    match served {
        Some((type_name, s)) => with_representation_etag(resp, &w.rev, type_name, s.version),
        None => with_etag(resp, &w.rev),
    }
}

/// The revision `If-Match` names, `None` when absent; a value that names none is a 400.
fn if_match(headers: &HeaderMap) -> Result<Option<IfMatch>, Problem> {
    let Some(v) = header(headers, "if-match") else {
        return Ok(None);
    };
    IfMatch::parse(v).map(Some).map_err(|e| match e {
        IfMatchError::NotOneTag { .. } => Problem::bad_request(e.to_string()),
        IfMatchError::InvalidRev(e) => {
            Problem::new(400, "invalid-rev", "Invalid rev", e.to_string())
        }
    })
}

fn precondition_required(what: &str) -> Problem {
    Problem::new(
        428,
        "precondition-required",
        "Precondition required",
        format!("{what} needs `If-Match: \"<rev>\"` with the rev last read (the ETag)"),
    )
}

/// The 403 of a write the document's own access policy refuses `who` (the conflict routes
/// give it too).
pub(crate) fn access_denied(type_name: &str, id: &str, who: &Principal) -> Problem {
    Problem::new(
        403,
        "access-denied",
        "Access denied",
        format!(
            "{:?} may not write {type_name} document {id:?} (its access policy)",
            who.name
        ),
    )
}

fn rev_conflict(current: &Rev) -> Problem {
    Problem::new(
        412,
        "rev-conflict",
        "Rev conflict",
        format!("the document's rev is {current}, not the one in If-Match"),
    )
    .with("currentRev", current.to_string())
}

/// A conflict of a write: 412 with `If-Match`, else the document already exists (409 for POST,
/// 412 for PUT, which is `If-None-Match: *`). The current rev is named only to a caller who
/// may read the document (`readable`): to anyone else, the id is taken and nothing more.
fn write_conflict(e: &StoreError, create_status: Option<u16>, readable: bool) -> Problem {
    let current = |actual: &Option<String>| match (readable, actual) {
        (true, Some(rev)) => Value::String(rev.clone()),
        _ => Value::Null,
    };
    match (e, create_status) {
        (StoreError::Conflict { actual, .. }, Some(status)) => Problem::new(
            status,
            "already-exists",
            "Document exists",
            "a document with this id exists; send If-Match with its rev to replace it",
        )
        .with("currentRev", current(actual)),
        (StoreError::Conflict { actual, .. }, None) if !readable => {
            rev_conflict_problem(current(actual))
        }
        _ => store_problem(e),
    }
}

fn rev_conflict_problem(current: Value) -> Problem {
    Problem::new(
        412,
        "rev-conflict",
        "Rev conflict",
        "the document's rev is not the one in If-Match",
    )
    .with("currentRev", current)
}

/// Before a create: the document there now, live or deleted, if any. A caller who may not
/// write it is refused as if the id were taken by a document it cannot see (a tombstone
/// keeps its policy: recreating over it is a write over it), or with 403 when it may read
/// it. Returns whether the caller may read what is there (`true` when nothing is).
async fn check_create<B: Backend + 'static>(
    state: &AppState<B>,
    who: &Principal,
    type_name: &str,
    id: &str,
    create_status: u16,
) -> Result<bool, Problem> {
    let (t, i) = (type_name.to_owned(), id.to_owned());
    let Some(access) = state.read_store(move |s| s.access(&t, &i)).await? else {
        return Ok(true);
    };
    let policy = AccessPolicy::stored(&access);
    if policy.may_write(who) {
        return Ok(policy.may_read(who));
    }
    if policy.may_read(who) {
        return Err(access_denied(type_name, id, who));
    }
    Err(write_conflict(
        &StoreError::Conflict {
            type_name: type_name.to_owned(),
            id: id.to_owned(),
            expected: None,
            actual: None,
        },
        Some(create_status),
        false,
    ))
}

/// The live document in `version` if `who` may read it; 404 otherwise (existence not leaked).
async fn readable<B: Backend + 'static>(
    state: &AppState<B>,
    who: &Principal,
    type_name: &str,
    id: &str,
    version: u32,
) -> Result<Document, Problem> {
    let (t, i) = (type_name.to_owned(), id.to_owned());
    let doc = state.read_store(move |s| s.get(&t, &i, version)).await?;
    match doc {
        Some(d) if AccessPolicy::stored(&d.access).may_read(who) => Ok(d),
        _ => Err(Problem::not_found(type_name, id)),
    }
}

/// [`readable`], as the JSON bytes of the body ([`mutatis_store::Store::get_raw`]): what a
/// read answers, sent on without making a `Value` of it.
async fn readable_raw<B: Backend + 'static>(
    store: &Arc<Store<B>>,
    who: &Principal,
    type_name: &str,
    id: &str,
    version: u32,
) -> Result<RawDocument, Problem> {
    let doc = AppState::read_document(store, type_name, id, move |s, t, i| {
        s.get_raw(t, i, version)
    })
    .await?;
    match doc {
        Some(d) if AccessPolicy::stored(&d.access).may_read(who) => Ok(d),
        _ => Err(Problem::not_found(type_name, id)),
    }
}

/// The live document in `version` if `who` may write it and `cond` (its `If-Match`) names its
/// current rev: 404 if `who` may not even read it, 403 if not write it, 412 if `cond` is stale.
/// The write then names the rev read here to the store, which checks it again atomically.
async fn writable<B: Backend + 'static>(
    state: &AppState<B>,
    who: &Principal,
    type_name: &str,
    id: &str,
    version: u32,
    cond: &IfMatch,
) -> Result<Document, Problem> {
    let current = readable(state, who, type_name, id, version).await?;
    may_replace(who, type_name, id, &current.access, &current.rev, cond)?;
    Ok(current)
}

/// [`writable`] for a write that replaces the body: only the current rev is needed, so the
/// document is read as bytes ([`readable_raw`]), not decoded and translated into a `Value`.
async fn writable_rev<B: Backend + 'static>(
    state: &AppState<B>,
    who: &Principal,
    type_name: &str,
    id: &str,
    version: u32,
    cond: &IfMatch,
) -> Result<Rev, Problem> {
    let current = readable_raw(&state.store(), who, type_name, id, version).await?;
    may_replace(who, type_name, id, &current.access, &current.rev, cond)?;
    Ok(current.rev)
}

/// Whether `who`, who may read the document, may replace its revision `rev` under `access`
/// as `cond` asks: 403 if `who` may not write it, 412 if `cond` is stale.
fn may_replace(
    who: &Principal,
    type_name: &str,
    id: &str,
    access: &Value,
    rev: &Rev,
    cond: &IfMatch,
) -> Result<(), Problem> {
    if !AccessPolicy::stored(access).may_write(who) {
        return Err(access_denied(type_name, id, who));
    }
    if !cond.matches(rev, type_name) {
        return Err(rev_conflict(rev));
    }
    Ok(())
}

/// The access policy of the `Mutatis-Access` header, if given.
fn access_header(headers: &HeaderMap) -> Result<Option<Value>, Problem> {
    let Some(text) = header(headers, "mutatis-access") else {
        return Ok(None);
    };
    let v: Value = serde_json::from_str(text).map_err(|e| {
        Problem::new(
            400,
            "invalid-access",
            "Invalid access policy",
            format!("Mutatis-Access is not JSON: {e}"),
        )
    })?;
    policy_json(&v).map(Some)
}

fn policy_json(v: &Value) -> Result<Value, Problem> {
    AccessPolicy::parse(v).map(|p| p.to_json()).map_err(|e| {
        Problem::new(
            400,
            "invalid-access",
            "Invalid access policy",
            e.to_string(),
        )
    })
}

/// `GET /docs/{type}/{id}`.
pub async fn read<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path((type_name, id)): Path<(String, String)>,
    Query(query): Query_,
    found: Option<Extension<Authenticated>>,
    // The request itself, not a `HeaderMap` extractor, which would copy every header of
    // this, the commonest request.
    req: Request,
) -> Result<Response, Problem> {
    let who = caller(&state, found.as_deref(), req.headers(), Role::Reader).await?;
    let (head, _) = req.into_parts();
    read_as(&state, &who, &type_name, &id, &query, head.headers).await
}

/// [`read`]'s answer to `who`, a reader, once the route has found the caller: shared with the
/// read lane ([`crate::read_lane`]), which answers the plain reads (no query) beside the
/// router. `headers` are the request's: once read, their map holds the answer's.
pub(crate) async fn read_as<B: Backend + 'static>(
    state: &AppState<B>,
    who: &Principal,
    type_name: &str,
    id: &str,
    query: &HashMap<String, String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    // One schema set for the common answer (the current revision): negotiated, read and
    // labelled in it. A past revision or the backup is read through `state`, which a reload
    // in between may have swapped; both are rare reads.
    let (store, negotiations) = state.served_now();
    let served = negotiate_in(&store, &state.params, &headers, query, type_name, None)?;
    let backup = match query.get("source").map(String::as_str) {
        None | Some("current") => false,
        Some("backup") => true,
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "source={other}: expected current (the default) or backup"
            )))
        }
    };
    // The current revision, the common read, is sent as the store's bytes; a past revision
    // and the backup are read as a `Value` and serialised (the same bytes either way).
    let (rev, body) = match (query.get("rev"), backup) {
        (Some(_), true) => return Err(Problem::bad_request(
            "rev= and source=backup cannot be combined: the backup keeps one revision per document",
        )),
        (Some(rev), false) => {
            let rev: Rev = rev.parse().map_err(|e: StoreError| {
                Problem::new(400, "invalid-rev", "Invalid rev", e.to_string())
            })?;
            let doc = revision(state, who, type_name, id, &rev, served.version).await?;
            (doc.rev, doc.body.to_string().into_bytes())
        }
        (None, true) => {
            let doc = in_backup(state, who, type_name, id, served.version).await?;
            (doc.rev, doc.body.to_string().into_bytes())
        }
        (None, false) => {
            let doc = readable_raw(&store, who, type_name, id, served.version).await?;
            (doc.rev, doc.body)
        }
    };
    // The header's value is made once, and the tag compared is the text between its quotes.
    let etag_value = representation_etag(&rev, type_name, served.version);
    let tag = etag_value
        .get(1..etag_value.len().saturating_sub(1))
        .unwrap_or_default();
    // The backup may hold another body under a rev the document still has: its tag is
    // given, but never taken for the current representation's.
    let unchanged = !backup
        && none_match(
            headers
                .get_all(IF_NONE_MATCH)
                .iter()
                .filter_map(|v| v.to_str().ok()),
            tag,
        );
    let negotiation = negotiations.get(type_name, &served);
    let mut resp = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        // Its `Content-Type` and `ETag`, the negotiation's headers and the edge's.
        let room = 2 + negotiation.header_count() + crate::http::EDGE_DOCUMENT_HEADERS;
        json_bytes_response(StatusCode::OK, body, headers, room)
    };
    // As `with_tag` does, but the `String` becomes the header's bytes without a copy.
    if let Ok(v) = HeaderValue::try_from(etag_value) {
        resp.headers_mut().insert(ETAG, v);
    }
    Ok(negotiation.apply(resp))
}

/// Revision `rev` of a document in `version`, if `who` may read the document and that
/// revision; a revision that is a delete, no longer kept or never was is a 404 that says
/// which (to a reader who may read the document: anyone else learns only that there is no
/// such document).
async fn revision<B: Backend + 'static>(
    state: &AppState<B>,
    who: &Principal,
    type_name: &str,
    id: &str,
    rev: &Rev,
    version: u32,
) -> Result<Document, Problem> {
    let (t, i, r) = (type_name.to_owned(), id.to_owned(), rev.clone());
    let read = state
        .read_store(move |s| s.revision(&t, &i, &r, version))
        .await?;
    let Some(read) = read.filter(|r| AccessPolicy::stored(&r.access).may_read(who)) else {
        return Err(Problem::not_found(type_name, id));
    };
    let gone = |name: &str, title: &str, detail: String| {
        Problem::new(404, name, title, detail)
            .with("type", type_name)
            .with("id", id)
            .with("rev", rev.to_string())
    };
    let may_read = |access: &Value| AccessPolicy::stored(access).may_read(who);
    let unknown = || {
        gone(
            "unknown-revision",
            "Unknown revision",
            format!("{type_name} document {id:?} has no revision {rev}"),
        )
    };
    match read.revision {
        Revision::Found(doc) if may_read(&doc.access) => Ok(doc),
        // The revision's own policy hid it: as if it had never been.
        Revision::Found(_) | Revision::Unknown => Err(unknown()),
        // So with a delete whose own policy hides it (a conflict leaf's tombstone): saying
        // "a delete" would confirm a rev the caller may not know.
        Revision::Deleted { access } if !may_read(&access) => Err(unknown()),
        Revision::Deleted { .. } => Err(gone(
            "deleted-revision",
            "Deleted revision",
            format!("revision {rev} of {type_name} document {id:?} is a delete"),
        )),
        Revision::NotKept => Err(gone(
            "revision-not-kept",
            "Revision not kept",
            format!(
                "the body of revision {rev} of {type_name} document {id:?} is no longer kept: each document keeps its last {} revisions (`history` in the schema set's storage)",
                state.store().schema_set().storage(type_name).map_or(0, |s| s.history)
            ),
        )),
    }
}

/// A document as the retained backup of the last migration holds it, in `version`, if
/// `who` may read it there and (when it still exists) now.
async fn in_backup<B: Backend + 'static>(
    state: &AppState<B>,
    who: &Principal,
    type_name: &str,
    id: &str,
    version: u32,
) -> Result<Document, Problem> {
    let (t, i) = (type_name.to_owned(), id.to_owned());
    let found = state
        .blocking(move |s| Ok((s.get_backup(&t, &i, version), s.access(&t, &i)?)))
        .await?;
    let (doc, now) = found.map_err(|e| store_problem(&e))?;
    let doc = match doc {
        Err(StoreError::NoBackup { .. }) => {
            return Err(Problem::new(
                404,
                "no-backup",
                "No backup",
                format!("there is no backup of {type_name}: no migration has switched since the last one was dropped"),
            )
            .with("type", type_name))
        }
        other => other.map_err(|e| store_problem(&e))?,
    };
    let may_now = now.is_none_or(|a| AccessPolicy::stored(&a).may_read(who));
    match doc {
        Some(d) if may_now && AccessPolicy::stored(&d.access).may_read(who) => Ok(d),
        _ => Err(Problem::not_found(type_name, id)),
    }
}

/// The version a request for a document of `type_name` speaks, from its headers and
/// `?release=` and, for a write, its body. The conflict routes speak it too.
pub(crate) fn negotiate_for<B: Backend + 'static>(
    state: &AppState<B>,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    type_name: &str,
    body: Option<&Value>,
) -> Result<Served, Problem> {
    negotiate_in(
        &state.store(),
        &state.params,
        headers,
        query,
        type_name,
        body,
    )
}

/// [`negotiate_for`] in the schema set of `store`, one the request already holds.
fn negotiate_in<B: Backend + 'static>(
    store: &Store<B>,
    params: &mutatis_lens::Params,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    type_name: &str,
    body: Option<&Value>,
) -> Result<Served, Problem> {
    let a = announce(headers, query, store.schema_set())?;
    negotiate(store.schema_set(), params, &a, type_name, body)
}

/// `GET /docs/{type}?after=ID&limit=N`: `{"docs": [{"id","rev","doc"}], "next"}`; documents
/// the caller may not read are left out.
pub async fn list<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(type_name): Path<String>,
    Query(query): Query_,
    found: Option<Extension<Authenticated>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let who = caller(&state, found.as_deref(), &headers, Role::Reader).await?;
    let served = negotiate_for(&state, &headers, &query, &type_name, None)?;
    let limit = limit_param(&query, DEFAULT_LIMIT, MAX_LIMIT)?;
    let key = state.cursor_key;
    let after = query
        .get("after")
        .map(|a| crate::cursor::resume_after(&key, a));
    let t = type_name.clone();
    let version = served.version;
    let reader = who.clone();
    let page = state
        .read_store(move |s| {
            s.list_visible(&t, version, after.as_deref(), limit, &|access| {
                AccessPolicy::stored(access).may_read(&reader)
            })
        })
        .await?;
    let docs: Vec<Value> = page
        .docs
        .iter()
        .map(|d| json!({"id": d.id, "rev": d.rev.to_string(), "doc": d.body}))
        .collect();
    // A page ends at the last document the caller reads (`list_visible` scans past the
    // others), so `next` is an id it has just been shown. Should a page ever end anywhere
    // else, the cursor is sealed, so an id the caller may not see never reaches it.
    let next = page.next.map(|id| {
        if page.docs.last().is_some_and(|d| d.id == id) {
            id
        } else {
            let nonce = random::<16>("a cursor nonce").unwrap_or([0; 16]);
            crate::cursor::seal(&key, nonce, &id)
        }
    });
    let resp = json_response(StatusCode::OK, &json!({"docs": docs, "next": next}));
    Ok(negotiated(&state, resp, &type_name, &served))
}

/// `POST /docs/{type}[?id=ID]`: create; 201 with `Location`, `ETag` and `{"id","rev"}`.
pub async fn create<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(type_name): Path<String>,
    Query(query): Query_,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let who = require(&state, &headers, Role::Writer).await?;
    let doc = json_body(&headers, &body)?;
    let served = negotiate_for(&state, &headers, &query, &type_name, Some(&doc))?;
    let access = access_header(&headers)?;
    let id = match query.get("id") {
        Some(id) => id.clone(),
        None => hex(&random::<16>("a document id").map_err(|e| {
            tracing::error!("{e}");
            Problem::internal()
        })?),
    };
    let readable = check_create(&state, &who, &type_name, &id, 409).await?;
    let w = state
        .store()
        .put_pending(&type_name, &id, served.version, &doc, None, access.as_ref())
        .await
        .map_err(|e| write_conflict(&e, Some(409), readable))?;
    let mut resp = written(
        &state,
        StatusCode::CREATED,
        &id,
        &w,
        Some((&type_name, &served)),
    );
    if let Ok(loc) = HeaderValue::from_str(&format!(
        "/docs/{}/{}",
        encode_segment(&type_name),
        encode_segment(&id)
    )) {
        resp.headers_mut().insert(LOCATION, loc);
    }
    Ok(negotiated(&state, resp, &type_name, &served))
}

/// Percent-encode a path segment (ids may hold any printable character).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `PUT /docs/{type}/{id}`: replace with `If-Match`, else create (412 if it exists).
pub async fn replace<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path((type_name, id)): Path<(String, String)>,
    Query(query): Query_,
    found: Option<Extension<Authenticated>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let who = caller(&state, found.as_deref(), &headers, Role::Writer).await?;
    let doc = json_body(&headers, &body)?;
    let served = negotiate_for(&state, &headers, &query, &type_name, Some(&doc))?;
    let cond = if_match(&headers)?;
    let (access, readable, expected) = match &cond {
        None => (
            access_header(&headers)?,
            check_create(&state, &who, &type_name, &id, 412).await?,
            None,
        ),
        Some(cond) => {
            let rev = writable_rev(&state, &who, &type_name, &id, served.version, cond).await?;
            // The policy stays; it changes through /access.
            (None, true, Some(rev))
        }
    };
    let create = expected.is_none();
    let w = state
        .store()
        .put_pending(
            &type_name,
            &id,
            served.version,
            &doc,
            expected.as_ref(),
            access.as_ref(),
        )
        .await
        .map_err(|e| write_conflict(&e, create.then_some(412), readable))?;
    let status = if create {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let resp = written(&state, status, &id, &w, Some((&type_name, &served)));
    Ok(negotiated(&state, resp, &type_name, &served))
}

/// `PATCH /docs/{type}/{id}` (`application/json-patch+json`, `If-Match` required): the patch
/// applies to the document in the client's version, and the result is written back like a PUT.
pub async fn patch<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path((type_name, id)): Path<(String, String)>,
    Query(query): Query_,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let who = require(&state, &headers, Role::Writer).await?;
    require_media_type(&headers, "application/json-patch+json")?;
    let ops = parse_json(&body)?;
    let Some(cond) = if_match(&headers)? else {
        return Err(precondition_required("PATCH"));
    };
    let served = negotiate_for(&state, &headers, &query, &type_name, None)?;
    let current = writable(&state, &who, &type_name, &id, served.version, &cond).await?;
    let patched = apply_patch(&current.body, &ops).map_err(|e| patch_problem(&e))?;
    let w = state
        .store()
        .put_pending(
            &type_name,
            &id,
            served.version,
            &patched,
            Some(&current.rev),
            None,
        )
        .await
        .map_err(|e| store_problem(&e))?;
    let resp = written(&state, StatusCode::OK, &id, &w, Some((&type_name, &served)));
    Ok(negotiated(&state, resp, &type_name, &served))
}

/// 400 for a malformed patch, 409 for one that does not apply; both name the op and pointer.
pub fn patch_problem(e: &PatchError) -> Problem {
    let (status, name, title) = match e {
        PatchError::Malformed { .. } => (400, "invalid-patch", "Invalid JSON Patch"),
        PatchError::Conflict { .. } => (409, "patch-conflict", "JSON Patch does not apply"),
    };
    Problem::new(status, name, title, e.to_string())
        .with("op", e.index())
        .with("pointer", e.pointer())
}

/// `DELETE /docs/{type}/{id}` (`If-Match` required): 200 `{"id","rev"}`.
pub async fn delete<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path((type_name, id)): Path<(String, String)>,
    Query(query): Query_,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let who = require(&state, &headers, Role::Writer).await?;
    let Some(cond) = if_match(&headers)? else {
        return Err(precondition_required("DELETE"));
    };
    let served = negotiate_for(&state, &headers, &query, &type_name, None)?;
    let current = writable(&state, &who, &type_name, &id, served.version, &cond).await?;
    let w = state
        .store()
        .delete_pending(&type_name, &id, &current.rev)
        .await
        .map_err(|e| store_problem(&e))?;
    let resp = written(&state, StatusCode::OK, &id, &w, Some((&type_name, &served)));
    Ok(negotiated(&state, resp, &type_name, &served))
}

/// The storage version of a type: access endpoints read documents in it (they are about the
/// policy, not the body, so no version is negotiated).
async fn storage_version<B: Backend + 'static>(
    state: &AppState<B>,
    type_name: &str,
) -> Result<u32, Problem> {
    let t = type_name.to_owned();
    state
        .read_store(move |s| s.state(&t).map(|st| st.storage_version))
        .await
}

/// `GET /docs/{type}/{id}/access`: `{"id","rev","access"}`.
pub async fn get_access<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path((type_name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let who = require(&state, &headers, Role::Reader).await?;
    let version = storage_version(&state, &type_name).await?;
    let doc = readable(&state, &who, &type_name, &id, version).await?;
    let body = json!({"id": id, "rev": doc.rev.to_string(), "access": doc.access});
    Ok(with_etag(json_response(StatusCode::OK, &body), &doc.rev))
}

/// `PUT /docs/{type}/{id}/access` (`If-Match` required; write permission on the document).
pub async fn put_access<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path((type_name, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let who = require(&state, &headers, Role::Writer).await?;
    let policy = policy_json(&json_body(&headers, &body)?)?;
    let Some(cond) = if_match(&headers)? else {
        return Err(precondition_required("PUT /access"));
    };
    let version = storage_version(&state, &type_name).await?;
    let current = writable(&state, &who, &type_name, &id, version, &cond).await?;
    let (t, i, rev) = (type_name.clone(), id.clone(), current.rev);
    let w = state
        .with_store(move |s| s.set_access(&t, &i, &rev, &policy))
        .await?;
    Ok(written(&state, StatusCode::OK, &id, &w, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(encode_segment("Ab-9._~"), "Ab-9._~");
    }

    #[test]
    fn patch_problems_name_op_and_pointer() {
        let e = PatchError::Conflict {
            index: 2,
            op: "test".into(),
            pointer: "/a".into(),
            reason: "test failed".into(),
        };
        let p = patch_problem(&e);
        assert_eq!((p.status, p.name()), (409, "patch-conflict"));
        assert_eq!(p.extensions["op"], 2);
        assert_eq!(p.extensions["pointer"], "/a");
        let e = apply_patch(&json!({}), &json!([{"op": "jump", "path": "/a"}])).unwrap_err();
        let p = patch_problem(&e);
        assert_eq!((p.status, p.name()), (400, "invalid-patch"));
        assert_eq!(p.extensions["op"], 0);
        assert_eq!(p.extensions["pointer"], "/a");
    }
}
