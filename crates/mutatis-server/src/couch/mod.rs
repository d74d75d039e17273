//! Every release as a CouchDB-compatible database: `/couch/{release}` speaks the CouchDB
//! replication protocol (what PouchDB 9 calls to `replicate`, `sync` and use a remote
//! database), in that release's versions.
//!
//! A document's CouchDB id is `TYPE:ID`; its body is the type's version in the release plus
//! CouchDB's members. Writes go through the store as `/docs` writes do (a new edit is a
//! `put` in the release's version, translated onto the stored document, so an old release
//! never erases what a newer one wrote) and replicated revisions (`new_edits: false`)
//! through `apply_replicated_from` with the `carry` policy, so rev trees stay as the client
//! made them. Roles and per-document access policies apply on every route as on `/docs`: a
//! document the caller may not read answers as a missing one and never shows in the feed,
//! `_all_docs` or `_revs_diff`. Errors are the server's problem+json with CouchDB's `error`
//! and `reason` members added (`couch_layer`). The pure parts are in [`proto`].

pub mod proto;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use mutatis_schema::{Release, ReleaseStatus, SchemaSet};
use mutatis_store::{
    Applied, Backend, LossPolicy, Replicated, ReplicatedDoc, ReplicationDoc, Rev, Revision,
    SourceContext, Store, StoreError,
};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::app::{run_blocking, store_problem, AppState};
use crate::auth::{self, AccessPolicy, Principal, Role};
use crate::headers::{self, DEPRECATION_LINK};
// Only the metrics tags' type from the edge: the handlers here need nothing else of it.
use crate::http::Tags;
use crate::negotiate::{named_release, Announce};
use crate::problem::{Problem, PROBLEM_JSON};
use proto::CouchError;

type Q = Query<HashMap<String, String>>;

/// The longest a long-poll `_changes` waits when the client names no `timeout` (CouchDB's
/// default is 60 s; the server's whole-request timeout caps it below, see [`wait_bound`]).
const DEFAULT_LONGPOLL: Duration = Duration::from_secs(60);

/// Feed entries read per store call while a `_changes` request fills its page.
const FEED_BATCH: usize = 1000;

/// Store calls one `_changes` request makes at most to fill its page: the feed entries it
/// skips (other types, hidden documents) are bounded too.
const FEED_BATCHES: usize = 20;

/// The `/couch` routes. Merged into the server's router by `http.rs`; kept out of the
/// OpenAPI document (they are CouchDB's API, not mutatis's).
pub fn router<B: Backend + 'static>(state: &Arc<AppState<B>>) -> Router<Arc<AppState<B>>> {
    Router::new()
        .route("/couch", get(welcome::<B>))
        .route("/couch/", get(welcome::<B>))
        .route(
            "/couch/{db}",
            get(info::<B>).put(create_db::<B>).post(post_doc::<B>),
        )
        .route(
            "/couch/{db}/",
            get(info::<B>).put(create_db::<B>).post(post_doc::<B>),
        )
        .route(
            "/couch/{db}/_local/{id}",
            get(get_local::<B>)
                .put(put_local::<B>)
                .delete(delete_local::<B>),
        )
        .route("/couch/{db}/_changes", get(changes::<B>).post(changes::<B>))
        .route("/couch/{db}/_revs_diff", post(revs_diff::<B>))
        .route("/couch/{db}/_bulk_get", post(bulk_get::<B>))
        .route("/couch/{db}/_bulk_docs", post(bulk_docs::<B>))
        .route(
            "/couch/{db}/_all_docs",
            get(all_docs::<B>).post(all_docs::<B>),
        )
        .route("/couch/{db}/_ensure_full_commit", post(full_commit))
        .route(
            "/couch/{db}/{docid}",
            get(get_doc::<B>).put(put_doc::<B>).delete(delete_doc::<B>),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(state),
            couch_layer::<B>,
        ))
}

// ---------------------------------------------------------------------------------------
// The layer: release policy, deprecation headers, CouchDB error members.

/// Around every `/couch` route: a release that is unknown (404 `not_found`, as CouchDB
/// answers a missing database) or no longer served (the `unsupported-release` problem) is
/// refused before anything else, so a replication fails with a status the app can act on;
/// a deprecated release's answers carry `Deprecation`, `Sunset` and `Link` as `/docs` does;
/// every error gets CouchDB's `error` and `reason` members beside the problem's own.
async fn couch_layer<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    req: Request,
    next: Next,
) -> Response {
    let name = req
        .uri()
        .path()
        .strip_prefix("/couch/")
        .and_then(|rest| rest.split('/').next())
        .filter(|s| !s.is_empty())
        .map(percent_decode);
    let release = match name {
        None => None,
        Some(name) => {
            let store = state.store();
            match release_of(store.schema_set(), &name) {
                Ok(r) => Some(r),
                Err(p) => return couch_errors(p.into_response()).await,
            }
        }
    };
    let mut resp = couch_errors(next.run(req).await).await;
    if let Some(r) = release {
        let h = resp.headers_mut();
        let mut set = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(HeaderName::from_static(name), v);
            }
        };
        set("mutatis-release", &r.name);
        if r.status == ReleaseStatus::Deprecated {
            let since = r.deprecated.as_deref().and_then(headers::date_to_unix);
            set("deprecation", &headers::deprecation_header(since));
            if let Some(s) = r.sunset.as_deref().and_then(headers::sunset_header) {
                set("sunset", &s);
            }
            set("link", DEPRECATION_LINK);
        }
        resp.extensions_mut().insert(Tags {
            release: r.name.as_str().into(),
            type_name: "".into(),
        });
    }
    resp
}

/// Percent-decoding of a path segment (release names are plain, but a client may encode).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'%'), Some(&a), Some(&b)) if hex(a).is_some() && hex(b).is_some() => {
                let v = hex(a).unwrap_or(0) * 16 + hex(b).unwrap_or(0);
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 3;
            }
            (Some(&b), _, _) => {
                out.push(b);
                i += 1;
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An error response with CouchDB's `error`/`reason` members: added to a handler's
/// [`Problem`] (the edge writes its body), or a problem made for an error axum produced
/// below the handler (a malformed path, a method not allowed).
async fn couch_errors(mut resp: Response) -> Response {
    if let Some(p) = resp.extensions_mut().get_mut::<Problem>() {
        add_couch_members(p);
        return resp;
    }
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return resp;
    }
    let detail = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let mut p = Problem::for_status(status.as_u16(), &detail);
    add_couch_members(&mut p);
    p.into_response()
}

fn add_couch_members(p: &mut Problem) {
    let error = proto::error_name(p.name(), p.status);
    p.extensions
        .entry("error".to_owned())
        .or_insert_with(|| json!(error));
    let reason = p.detail.clone();
    p.extensions
        .entry("reason".to_owned())
        .or_insert_with(|| json!(reason));
}

/// The release a database name names, if it is served.
fn release_of(set: &SchemaSet, name: &str) -> Result<Release, Problem> {
    let Some(release) = set.release(name) else {
        return Err(Problem::new(
            404,
            "not-found",
            "Not found",
            format!("Database does not exist: there is no release {name:?}"),
        )
        .with("reason", "Database does not exist."));
    };
    let announce = Announce {
        release: Some(name.to_owned()),
        versions: BTreeMap::new(),
    };
    named_release(set, &announce)?;
    Ok(release.clone())
}

// ---------------------------------------------------------------------------------------
// Shared helpers.

/// A database request's store and release, taken together.
struct Db {
    release: Release,
}

fn open<B: Backend + 'static>(state: &AppState<B>, name: &str) -> Result<Db, Problem> {
    let store = state.store();
    let release = release_of(store.schema_set(), name)?;
    Ok(Db { release })
}

/// The caller, who must hold at least `role`: `Authorization: Bearer TOKEN`, or HTTP Basic
/// with the token as the password (what PouchDB sends for `auth: {username, password}`).
async fn caller<B: Backend + 'static>(
    state: &AppState<B>,
    headers: &HeaderMap,
    role: Role,
) -> Result<Principal, Problem> {
    let unauthorized = |detail: &str| {
        Problem::new(401, "unauthenticated", "Unauthenticated", detail)
            // Bearer, not Basic: a browser would prompt for a password on a Basic challenge.
            .with_header("www-authenticate", "Bearer realm=\"mutatis\"")
    };
    let Some(value) = header(headers, "authorization") else {
        return Err(unauthorized(
            "this database needs a token: `Authorization: Bearer mutatis_…`, or HTTP Basic with the token as the password",
        ));
    };
    let token = match auth::bearer(value) {
        Some(t) => t.to_owned(),
        None => proto::basic_password(value).ok_or_else(|| {
            unauthorized("the Authorization header is neither `Bearer <token>` nor HTTP Basic")
        })?,
    };
    let Some(p) = state.principal(&token).await? else {
        return Err(unauthorized("the token is unknown or was revoked"));
    };
    p.at_least(role)
}

fn may_read(who: &Principal, access: &Value) -> bool {
    who.role == Role::Admin || AccessPolicy::stored(access).may_read(who)
}

fn may_write(who: &Principal, access: Option<&Value>) -> bool {
    who.role == Role::Admin || access.is_none_or(|a| AccessPolicy::stored(a).may_write(who))
}

fn bad(e: &CouchError) -> Problem {
    Problem::bad_request(e.to_string())
}

fn missing(couch_id: &str, reason: &str) -> Problem {
    Problem::new(
        404,
        "not-found",
        "Not found",
        format!("there is no document {couch_id:?} in this database"),
    )
    .with("reason", reason)
}

/// Type, id and version of a CouchDB id in `release`; `None` when the id names no type of
/// the release (to a reader: a missing document).
fn locate(release: &Release, couch_id: &str) -> Result<Option<(String, String, u32)>, CouchError> {
    let (t, id) = proto::split_id(couch_id)?;
    Ok(release
        .version_of(t)
        .map(|v| (t.to_owned(), id.to_owned(), v)))
}

/// The type and version a write to `couch_id` goes to: 400 when the id is no `TYPE:ID` of
/// the release.
fn locate_write(release: &Release, couch_id: &str) -> Result<(String, String, u32), Problem> {
    match locate(release, couch_id) {
        Ok(Some(l)) => Ok(l),
        Ok(None) => Err(Problem::bad_request(format!(
            "document id {couch_id:?}: release {} has no type {:?}",
            release.name,
            couch_id.split(':').next().unwrap_or("")
        ))),
        Err(e) => Err(bad(&e)),
    }
}

/// A header's value as text, if present and readable.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// JSON read as every request body is (numbers exactly, or refused naming them).
fn parse_json(bytes: &[u8]) -> Result<Value, Problem> {
    mutatis_lens::json::from_slice(bytes).map_err(|e| Problem::json(&e))
}

fn json_ok(status: StatusCode, v: &Value) -> Response {
    (status, [(CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, Problem> {
    match q.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(
            Problem::bad_request(format!("{name}={other}: expected true or false"))
                .with("parameter", name),
        ),
    }
}

/// A JSON body (any media type: PouchDB sends `application/json`, other clients may not).
fn body_json(body: &Bytes) -> Result<Value, Problem> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    parse_json(body)
}

/// A document's rev tree as this node holds it, in `version`, if the caller may read it.
async fn read_tree<B: Backend + 'static>(
    state: &AppState<B>,
    who: &Principal,
    t: &str,
    id: &str,
    version: u32,
) -> Result<Option<ReplicationDoc>, Problem> {
    let (t, i) = (t.to_owned(), id.to_owned());
    let doc = state
        .read_store(move |s| s.replication_doc(&t, &i, version))
        .await?;
    Ok(doc.filter(|d| may_read(who, &d.access)))
}

/// One leaf (or earlier revision) of a document, as CouchDB serves it.
struct Found {
    rev: Rev,
    deleted: bool,
    body: Value,
    history: Vec<Rev>,
}

/// The leaves of a tree the caller may read, winner first.
fn leaves(doc: &ReplicationDoc, who: &Principal) -> Vec<Found> {
    let mut out = vec![Found {
        rev: doc.rev.clone(),
        deleted: doc.deleted,
        body: doc.body.clone(),
        history: doc.history.clone(),
    }];
    out.extend(
        doc.conflicts
            .iter()
            .filter(|l| may_read(who, &l.access))
            .map(|l| Found {
                rev: l.rev.clone(),
                deleted: l.deleted,
                body: l.body.clone(),
                history: l.history.clone(),
            }),
    );
    out
}

/// Whether a tree knows `rev` (a leaf the caller may read, or an ancestor of one): a leaf
/// hidden by its own policy is not confirmed to a caller who names its rev.
fn knows(doc: &ReplicationDoc, rev: &Rev, who: &Principal) -> bool {
    leaves(doc, who)
        .iter()
        .any(|l| l.rev == *rev || l.history.contains(rev))
}

/// Revision `rev` of a document: a leaf, or an earlier revision whose body is still kept
/// (its history is the rest of the history of a leaf that descends from it).
async fn find_rev<B: Backend + 'static>(
    state: &AppState<B>,
    who: &Principal,
    (t, id, version): (&str, &str, u32),
    doc: &ReplicationDoc,
    rev: &Rev,
) -> Result<Option<Found>, Problem> {
    let all = leaves(doc, who);
    if let Some(pos) = all.iter().position(|l| l.rev == *rev) {
        return Ok(all.into_iter().nth(pos));
    }
    let Some(history) = all.iter().find_map(|l| {
        l.history.iter().position(|r| r == rev).map(|at| {
            l.history
                .get(at + 1..)
                .map(<[Rev]>::to_vec)
                .unwrap_or_default()
        })
    }) else {
        return Ok(None);
    };
    let (tt, ii, r) = (t.to_owned(), id.to_owned(), rev.clone());
    let read = state
        .read_store(move |s| s.revision(&tt, &ii, &r, version))
        .await?;
    Ok(match read.map(|r| r.revision) {
        Some(Revision::Found(d)) => Some(Found {
            rev: rev.clone(),
            deleted: false,
            body: d.body,
            history,
        }),
        Some(Revision::Deleted { .. }) => Some(Found {
            rev: rev.clone(),
            deleted: true,
            body: Value::Null,
            history,
        }),
        _ => None,
    })
}

/// A revision as a CouchDB document (`_revisions` when `revs`).
fn shape(couch_id: &str, f: &Found, revs: bool) -> Result<Value, Problem> {
    let mut doc = proto::outgoing(couch_id, &f.rev, &f.body, f.deleted).ok_or_else(|| {
        Problem::new(
            422,
            "untranslatable",
            "Document cannot be served",
            format!("{couch_id}: its body in this release is not a JSON object"),
        )
    })?;
    if revs {
        doc["_revisions"] = proto::revisions(&f.rev, &f.history);
    }
    Ok(doc)
}

// ---------------------------------------------------------------------------------------
// Server and database.

/// `GET /couch`: CouchDB's welcome. Public, like `/meta`; the uuid is derived from the node
/// id (stable per node, revealing nothing of it).
async fn welcome<B: Backend + 'static>(State(state): State<Arc<AppState<B>>>) -> Response {
    let digest = Sha256::digest(format!("couch-uuid\n{}", state.node_id).as_bytes());
    let uuid = auth::hex(digest.get(..16).unwrap_or(&[]));
    json_ok(
        StatusCode::OK,
        &json!({
            "couchdb": "Welcome",
            "version": env!("CARGO_PKG_VERSION"),
            "uuid": uuid,
            "vendor": {"name": "mutatis", "version": env!("CARGO_PKG_VERSION")},
            "features": [],
        }),
    )
}

/// `GET /couch/{release}`: the database's info. `doc_count` is left out: counting what a
/// caller may see would cost a scan of every document, and a count of all of them would
/// tell a caller about documents it may not see.
async fn info<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(db): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let d = open(&state, &db)?;
    caller(&state, &headers, Role::Reader).await?;
    let seq = state.read_store(|s| s.last_seq()).await?;
    Ok(json_ok(
        StatusCode::OK,
        &json!({
            "db_name": d.release.name,
            "update_seq": seq,
            "committed_update_seq": seq,
            "purge_seq": 0,
            "doc_del_count": 0,
            "instance_start_time": "0",
            "compact_running": false,
            "disk_format_version": 8,
            "mutatis": {"release": d.release.name, "types": d.release.types},
        }),
    ))
}

/// `PUT /couch/{release}`: a database exists for every served release and no other: 412
/// `file_exists`, which PouchDB's setup takes as "already there".
async fn create_db<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(db): Path<String>,
) -> Result<Response, Problem> {
    open(&state, &db)?;
    Err(Problem::new(
        412,
        "file-exists",
        "Database exists",
        "The database could not be created, the file already exists.",
    )
    .with("error", "file_exists"))
}

/// `POST /couch/{release}/_ensure_full_commit`: every write is durable when answered.
async fn full_commit() -> Response {
    json_ok(
        StatusCode::CREATED,
        &json!({"ok": true, "instance_start_time": "0"}),
    )
}

// ---------------------------------------------------------------------------------------
// Local (non-replicated) documents: replication checkpoints, in the store's settings.

/// Where a `_local` document is kept: per release and per token name, so one client's
/// checkpoints are never another's to read or overwrite (a replication whose checkpoint was
/// moved by someone else could skip changes).
fn local_key(db: &str, who: &Principal, id: &str) -> String {
    format!("couch/{db}/local/{}/{id}", who.name)
}

fn check_local_id(id: &str) -> Result<(), Problem> {
    if id.is_empty() || id.len() > mutatis_store::MAX_ID_BYTES || id.chars().any(char::is_control) {
        return Err(Problem::bad_request(
            "a _local document id must be 1 to 512 bytes without control characters",
        ));
    }
    Ok(())
}

async fn get_local<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path((db, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let d = open(&state, &db)?;
    let who = caller(&state, &headers, Role::Reader).await?;
    check_local_id(&id)?;
    let key = local_key(&d.release.name, &who, &id);
    match state.read_store(move |s| s.setting(&key)).await? {
        Some(v) => Ok(json_ok(StatusCode::OK, &v)),
        None => Err(missing(&format!("_local/{id}"), "missing")),
    }
}

/// The rev of a `_local` document: `0-N`, N counting its writes (as CouchDB does).
fn local_rev_number(v: &Value) -> u64 {
    v.get("_rev")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("0-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn put_local<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path((db, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let d = open(&state, &db)?;
    let who = caller(&state, &headers, Role::Writer).await?;
    check_local_id(&id)?;
    let Value::Object(mut doc) = body_json(&body)? else {
        return Err(bad(&CouchError::NotObject));
    };
    let key = local_key(&d.release.name, &who, &id);
    let couch = format!("_local/{id}");
    let given = doc.get("_rev").and_then(Value::as_str).map(str::to_owned);
    let out = state
        .blocking(move |s| {
            let stored = s.setting(&key)?;
            // A checkpoint written over another one it did not read is a conflict, as in
            // CouchDB (two replications sharing an id).
            if let Some(stored) = &stored {
                let current = stored.get("_rev").and_then(Value::as_str);
                if given.is_some() && given.as_deref() != current {
                    return Ok(None);
                }
            }
            let next = format!("0-{}", stored.as_ref().map_or(0, local_rev_number) + 1);
            doc.insert("_id".into(), json!(couch));
            doc.insert("_rev".into(), json!(next));
            s.put_setting(&key, Some(&Value::Object(doc)))?;
            Ok(Some(next))
        })
        .await?
        .map_err(|e| store_problem(&e))?;
    match out {
        Some(rev) => Ok(json_ok(
            StatusCode::CREATED,
            &json!({"ok": true, "id": format!("_local/{id}"), "rev": rev}),
        )),
        None => Err(conflict(&format!("_local/{id}"))),
    }
}

async fn delete_local<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path((db, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let d = open(&state, &db)?;
    let who = caller(&state, &headers, Role::Writer).await?;
    check_local_id(&id)?;
    let key = local_key(&d.release.name, &who, &id);
    let existed = state
        .with_store(move |s| {
            let had = s.setting(&key)?.is_some();
            s.put_setting(&key, None)?;
            Ok(had)
        })
        .await?;
    if !existed {
        return Err(missing(&format!("_local/{id}"), "missing"));
    }
    Ok(json_ok(
        StatusCode::OK,
        &json!({"ok": true, "id": format!("_local/{id}"), "rev": "0-0"}),
    ))
}

fn conflict(couch_id: &str) -> Problem {
    Problem::new(
        409,
        "rev-conflict",
        "Rev conflict",
        format!("{couch_id}: Document update conflict."),
    )
    .with("reason", "Document update conflict.")
}

// ---------------------------------------------------------------------------------------
// Documents.

async fn get_doc<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path((db, docid)): Path<(String, String)>,
    Query(q): Q,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let d = open(&state, &db)?;
    let who = caller(&state, &headers, Role::Reader).await?;
    let revs = flag(&q, "revs")?;
    let with_conflicts = flag(&q, "conflicts")?;
    let latest = flag(&q, "latest")?;
    let located = match locate(&d.release, &docid) {
        Ok(Some(l)) => Some(l),
        Ok(None) | Err(_) => None,
    };
    let tree = match &located {
        Some((t, id, v)) => read_tree(&state, &who, t, id, *v).await?,
        None => None,
    };
    if let Some(open_revs) = q.get("open_revs") {
        return open_revs_answer(
            &state,
            &who,
            &docid,
            located.as_ref(),
            tree.as_ref(),
            open_revs,
            revs,
            latest,
        )
        .await;
    }
    let (Some((t, id, v)), Some(tree)) = (&located, &tree) else {
        return Err(missing(&docid, "missing"));
    };
    let found = match q.get("rev") {
        Some(r) => {
            let rev = proto::parse_rev(r).map_err(|e| bad(&e))?;
            find_rev(&state, &who, (t, id, *v), tree, &rev)
                .await?
                .ok_or_else(|| missing(&docid, "missing"))?
        }
        None => {
            if tree.deleted {
                return Err(missing(&docid, "deleted"));
            }
            leaves(tree, &who)
                .into_iter()
                .next()
                .ok_or_else(|| missing(&docid, "missing"))?
        }
    };
    let mut doc = shape(&docid, &found, revs)?;
    if with_conflicts && found.rev == tree.rev {
        let live: Vec<Value> = leaves(tree, &who)
            .iter()
            .skip(1)
            .filter(|l| !l.deleted)
            .map(|l| json!(l.rev.to_string()))
            .collect();
        if !live.is_empty() {
            doc["_conflicts"] = Value::Array(live);
        }
    }
    let mut resp = json_ok(StatusCode::OK, &doc);
    if let Ok(v) = HeaderValue::from_str(&headers::etag(&found.rev.to_string())) {
        resp.headers_mut().insert(axum::http::header::ETAG, v);
    }
    Ok(resp)
}

/// `GET …/{docid}?open_revs=all|[revs]`: a JSON array of `{"ok": doc}` and `{"missing": rev}`.
#[allow(clippy::too_many_arguments)]
async fn open_revs_answer<B: Backend + 'static>(
    state: &AppState<B>,
    who: &Principal,
    docid: &str,
    located: Option<&(String, String, u32)>,
    tree: Option<&ReplicationDoc>,
    open_revs: &str,
    revs: bool,
    latest: bool,
) -> Result<Response, Problem> {
    let wanted: Option<Vec<String>> = if open_revs == "all" {
        None
    } else {
        let v: Value = parse_json(open_revs.as_bytes())?;
        let list = v
            .as_array()
            .filter(|a| a.len() <= proto::MAX_OPEN_REVS)
            .ok_or_else(|| {
                Problem::bad_request(format!(
                    "open_revs must be `all` or a JSON array of at most {} revs",
                    proto::MAX_OPEN_REVS
                ))
            })?;
        Some(
            list.iter()
                .map(|r| r.as_str().unwrap_or_default().to_owned())
                .collect(),
        )
    };
    let mut out = Vec::new();
    match (located, tree) {
        (Some((t, id, v)), Some(tree)) => match wanted {
            None => {
                for l in leaves(tree, who) {
                    out.push(json!({"ok": shape(docid, &l, revs)?}));
                }
            }
            Some(list) => {
                for r in list {
                    let Ok(rev) = proto::parse_rev(&r) else {
                        out.push(json!({"missing": r}));
                        continue;
                    };
                    // `latest`: a rev that is an ancestor of a leaf answers with the leaf.
                    let rev = if latest {
                        leaves(tree, who)
                            .into_iter()
                            .find(|l| l.rev == rev || l.history.contains(&rev))
                            .map_or(rev, |l| l.rev)
                    } else {
                        rev
                    };
                    match find_rev(state, who, (t, id, *v), tree, &rev).await? {
                        Some(f) => out.push(json!({"ok": shape(docid, &f, revs)?})),
                        None => out.push(json!({"missing": rev.to_string()})),
                    }
                }
            }
        },
        _ => match wanted {
            None => return Err(missing(docid, "missing")),
            Some(list) => out.extend(list.into_iter().map(|r| json!({"missing": r}))),
        },
    }
    Ok(json_ok(StatusCode::OK, &Value::Array(out)))
}

/// What one new edit (`new_edits: true`) did.
enum EditOutcome {
    Ok(Rev),
    Failed(Problem),
}

/// One new edit of a document, as `/docs` writes: a put in the release's version (translated
/// onto the stored document, so fields this release cannot see are kept) or a delete, with
/// the rev the client last read; the document's policy checked against what is there.
async fn edit<B: Backend + 'static>(
    state: &AppState<B>,
    who: &Principal,
    release: &Release,
    couch_id: &str,
    doc: proto::Incoming,
) -> Result<EditOutcome, Problem> {
    let (t, id, v) = match locate_write(release, couch_id) {
        Ok(l) => l,
        Err(p) => return Ok(EditOutcome::Failed(p)),
    };
    let (tt, ii) = (t.clone(), id.clone());
    // The policy of what is there (a tombstone keeps its document's) and the live rev.
    let (access, live_rev) = state
        .read_store(move |s| Ok((s.access(&tt, &ii)?, s.rev(&tt, &ii)?)))
        .await?;
    if let Some(access) = &access {
        let readable = may_read(who, access);
        if !may_write(who, Some(access)) {
            // A caller who may not even read it is told only that the id is taken.
            return Ok(EditOutcome::Failed(if readable {
                Problem::new(
                    403,
                    "access-denied",
                    "Access denied",
                    format!(
                        "{:?} may not write {couch_id} (its access policy)",
                        who.name
                    ),
                )
            } else {
                conflict(couch_id)
            }));
        }
    }
    if doc.deleted {
        let Some(rev) = doc.rev else {
            return Ok(EditOutcome::Failed(conflict(couch_id)));
        };
        if live_rev.as_ref() != Some(&rev) {
            return Ok(EditOutcome::Failed(conflict(couch_id)));
        }
        let r = state.blocking(move |s| s.delete(&t, &id, &rev)).await?;
        return Ok(match r {
            Ok(w) => {
                state.wrote(w.seq);
                EditOutcome::Ok(w.rev)
            }
            Err(StoreError::Conflict { .. }) => EditOutcome::Failed(conflict(couch_id)),
            Err(e) => EditOutcome::Failed(store_problem(&e)),
        });
    }
    // A create over a tombstone: without a rev (CouchDB), or with one (PouchDB names the
    // tombstone's; any rev is taken, the tombstone being no live document to conflict with).
    let expected = match (&doc.rev, &live_rev) {
        (Some(r), Some(live)) if r == live => Some(r.clone()),
        (None, None) => None,
        // Over a tombstone: a new document on its branch.
        (Some(_), None) if access.is_some() => None,
        _ => return Ok(EditOutcome::Failed(conflict(couch_id))),
    };
    let body = doc.body;
    let r = state
        .blocking(move |s| s.put(&t, &id, v, &body, expected.as_ref()))
        .await?;
    Ok(match r {
        Ok(w) => {
            state.wrote(w.seq);
            EditOutcome::Ok(w.rev)
        }
        Err(StoreError::Conflict { .. }) => EditOutcome::Failed(conflict(couch_id)),
        Err(e) => EditOutcome::Failed(store_problem(&e)),
    })
}

fn edited(couch_id: &str, outcome: EditOutcome) -> Result<Response, Problem> {
    match outcome {
        EditOutcome::Ok(rev) => Ok(json_ok(
            StatusCode::CREATED,
            &json!({"ok": true, "id": couch_id, "rev": rev.to_string()}),
        )),
        EditOutcome::Failed(p) => Err(p),
    }
}

async fn put_doc<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path((db, docid)): Path<(String, String)>,
    Query(q): Q,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let d = open(&state, &db)?;
    let who = caller(&state, &headers, Role::Writer).await?;
    let mut doc = proto::incoming(body_json(&body)?).map_err(|e| bad(&e))?;
    if doc.id.as_deref().is_some_and(|i| i != docid) {
        return Err(Problem::bad_request(
            "the document's _id is not the one in the URL",
        ));
    }
    if doc.rev.is_none() {
        if let Some(r) = q.get("rev") {
            doc.rev = Some(proto::parse_rev(r).map_err(|e| bad(&e))?);
        }
    }
    if q.get("new_edits").map(String::as_str) == Some("false") {
        let rev = doc.rev.as_ref().map(Rev::to_string);
        let results = replicate_in(&state, &who, &d.release, vec![(docid.clone(), doc)]).await?;
        if let Some(p) = results.into_iter().next().flatten() {
            return Err(p);
        }
        return Ok(json_ok(
            StatusCode::CREATED,
            &json!({"ok": true, "id": docid, "rev": rev}),
        ));
    }
    let outcome = edit(&state, &who, &d.release, &docid, doc).await?;
    edited(&docid, outcome)
}

async fn delete_doc<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path((db, docid)): Path<(String, String)>,
    Query(q): Q,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let d = open(&state, &db)?;
    let who = caller(&state, &headers, Role::Writer).await?;
    let rev = match q
        .get("rev")
        .map(String::as_str)
        .or_else(|| header(&headers, "if-match").and_then(headers::if_match_rev))
    {
        Some(r) => Some(proto::parse_rev(r).map_err(|e| bad(&e))?),
        None => None,
    };
    let doc = proto::Incoming {
        id: Some(docid.clone()),
        rev,
        deleted: true,
        revisions: None,
        body: Value::Null,
    };
    let outcome = edit(&state, &who, &d.release, &docid, doc).await?;
    let mut resp = edited(&docid, outcome)?;
    *resp.status_mut() = StatusCode::OK;
    Ok(resp)
}

async fn post_doc<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(db): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let d = open(&state, &db)?;
    let who = caller(&state, &headers, Role::Writer).await?;
    let doc = proto::incoming(body_json(&body)?).map_err(|e| bad(&e))?;
    // The id names the type: a document without one cannot be placed.
    let Some(docid) = doc.id.clone() else {
        return Err(Problem::bad_request(
            "a document posted here needs an _id of the form TYPE:ID",
        ));
    };
    let outcome = edit(&state, &who, &d.release, &docid, doc).await?;
    edited(&docid, outcome)
}

// ---------------------------------------------------------------------------------------
// Replication: _revs_diff, _bulk_get, _bulk_docs.

async fn revs_diff<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(db): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let d = open(&state, &db)?;
    let who = caller(&state, &headers, Role::Reader).await?;
    let Value::Object(asked) = body_json(&body)? else {
        return Err(Problem::bad_request(
            "expected an object of document ids to arrays of revs",
        ));
    };
    let total: usize = asked
        .values()
        .map(|v| v.as_array().map_or(1, Vec::len))
        .sum();
    if total > proto::MAX_REVS_DIFF {
        return Err(Problem::bad_request(format!(
            "_revs_diff asks about {total} revs; at most {} per request",
            proto::MAX_REVS_DIFF
        )));
    }
    // The trees of the ids that name a document of this release, in one read.
    let mut wanted: Vec<(String, String)> = Vec::new();
    for cid in asked.keys() {
        if let Ok(Some((t, id, _))) = locate(&d.release, cid) {
            wanted.push((t, id));
        }
    }
    let w = wanted.clone();
    let trees = state
        .read_store(move |s| {
            let pairs: Vec<(&str, &str)> =
                w.iter().map(|(t, i)| (t.as_str(), i.as_str())).collect();
            s.replication_docs(&pairs)
        })
        .await?;
    let by_id: HashMap<String, ReplicationDoc> = wanted
        .into_iter()
        .zip(trees)
        .filter_map(|((t, id), doc)| Some((proto::couch_id(&t, &id), doc?)))
        // A tree the caller may not read answers as no tree: every rev is missing.
        .filter(|(_, doc)| may_read(&who, &doc.access))
        .collect();
    let mut out = Map::new();
    for (cid, revs) in asked {
        let revs: Vec<String> = revs
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let tree = by_id.get(&cid);
        let mut miss = Vec::new();
        let mut ancestors: HashSet<String> = HashSet::new();
        for r in revs {
            let rev = match proto::parse_rev(&r) {
                Ok(rev) => rev,
                Err(e) => return Err(bad(&e)),
            };
            let known = tree.is_some_and(|t| knows(t, &rev, &who));
            if !known {
                if let Some(t) = tree {
                    for l in leaves(t, &who) {
                        if l.rev.generation() < rev.generation() {
                            ancestors.insert(l.rev.to_string());
                        }
                    }
                }
                miss.push(json!(rev.to_string()));
            }
        }
        if !miss.is_empty() {
            let mut entry = json!({"missing": miss});
            if !ancestors.is_empty() {
                let mut a: Vec<String> = ancestors.into_iter().collect();
                a.sort();
                entry["possible_ancestors"] = json!(a);
            }
            out.insert(cid, entry);
        }
    }
    Ok(json_ok(StatusCode::OK, &Value::Object(out)))
}

async fn bulk_get<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(db): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let d = open(&state, &db)?;
    let who = caller(&state, &headers, Role::Reader).await?;
    let revs = flag(&q, "revs")?;
    let req = body_json(&body)?;
    let docs = req
        .get("docs")
        .and_then(Value::as_array)
        .ok_or_else(|| Problem::bad_request("expected {\"docs\": [{\"id\", \"rev\"}, …]}"))?;
    if docs.len() > proto::MAX_BULK_GET {
        return Err(Problem::bad_request(format!(
            "_bulk_get asks for {} documents; at most {} per request",
            docs.len(),
            proto::MAX_BULK_GET
        )));
    }
    let mut trees: HashMap<String, Option<ReplicationDoc>> = HashMap::new();
    let mut results = Vec::with_capacity(docs.len());
    for entry in docs {
        let cid = entry
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let rev_text = entry.get("rev").and_then(Value::as_str).map(str::to_owned);
        let error = |rev: Option<&str>, reason: &str| json!({"error": {"id": cid, "rev": rev.unwrap_or("undefined"), "error": "not_found", "reason": reason}});
        let located = locate(&d.release, &cid).ok().flatten();
        let Some((t, id, v)) = located else {
            results.push(json!({"id": cid, "docs": [error(rev_text.as_deref(), "missing")]}));
            continue;
        };
        if !trees.contains_key(&cid) {
            let tree = match read_tree(&state, &who, &t, &id, v).await {
                Ok(tree) => tree,
                // A document this release's version cannot show is an error of its own
                // entry, not of the batch: PouchDB then keeps its checkpoint behind it
                // rather than skipping it.
                Err(p) if p.status == 422 => {
                    let rev = rev_text.as_deref().unwrap_or("undefined");
                    results.push(json!({"id": cid, "docs": [{"error": {"id": cid, "rev": rev, "error": "untranslatable", "reason": p.detail}}]}));
                    continue;
                }
                Err(p) => return Err(p),
            };
            trees.insert(cid.clone(), tree);
        }
        let Some(Some(tree)) = trees.get(&cid) else {
            results.push(json!({"id": cid, "docs": [error(rev_text.as_deref(), "missing")]}));
            continue;
        };
        let found = match &rev_text {
            None => leaves(tree, &who).into_iter().next(),
            Some(r) => match proto::parse_rev(r) {
                Ok(rev) => find_rev(&state, &who, (&t, &id, v), tree, &rev).await?,
                Err(_) => None,
            },
        };
        let item = match found {
            Some(f) => json!({"ok": shape(&cid, &f, revs)?}),
            None => error(rev_text.as_deref(), "missing"),
        };
        results.push(json!({"id": cid, "docs": [item]}));
    }
    Ok(json_ok(StatusCode::OK, &json!({"results": results})))
}

/// Replicated revisions (`new_edits: false`) applied as given, rev and history kept, through
/// the store's replicated path with the `carry` policy. Each takes the access policy the
/// document has here (a PouchDB cannot set one, and a revision winning must not drop it).
/// Returns per document `None` (stored, already known, or a conflict kept as CouchDB keeps
/// it) or why it was refused.
async fn replicate_in<B: Backend + 'static>(
    state: &AppState<B>,
    who: &Principal,
    release: &Release,
    docs: Vec<(String, proto::Incoming)>,
) -> Result<Vec<Option<Problem>>, Problem> {
    let mut out: Vec<Option<Problem>> = Vec::with_capacity(docs.len());
    let mut batch: Vec<(usize, ReplicatedDoc)> = Vec::new();
    for (i, (cid, doc)) in docs.into_iter().enumerate() {
        let prepared = (|| {
            let (t, id, v) = locate_write(release, &cid)?;
            let rev = doc.rev.clone().ok_or_else(|| {
                Problem::bad_request(format!("{cid}: new_edits=false needs _rev"))
            })?;
            let history = match &doc.revisions {
                Some(r) => proto::history_from_revisions(&rev, r).map_err(|e| bad(&e))?,
                None => Vec::new(),
            };
            Ok::<_, Problem>(ReplicatedDoc {
                type_name: t,
                id,
                doc: Replicated {
                    rev,
                    history,
                    version: v,
                    body: if doc.deleted { Value::Null } else { doc.body },
                    deleted: doc.deleted,
                    access: Value::Null,
                    carry: Vec::new(),
                },
            })
        })();
        match prepared {
            Ok(r) => {
                out.push(None);
                batch.push((i, r));
            }
            Err(p) => out.push(Some(p)),
        }
    }
    let who = who.clone();
    let store = state.store();
    let params = state.params.clone();
    let (refused, at, outcomes, seq) = run_blocking("a couch replicated batch", move || {
        let mut refused: Vec<(usize, Problem)> = Vec::new();
        let mut docs = Vec::with_capacity(batch.len());
        let mut at = Vec::with_capacity(batch.len());
        for (i, mut d) in batch {
            // As the replication target does: the policy of what is here decides.
            let local = match store.access(&d.type_name, &d.id) {
                Ok(a) => a,
                Err(e @ StoreError::InvalidId { .. }) => {
                    refused.push((i, store_problem(&e)));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !may_write(&who, local.as_ref()) {
                refused.push((
                    i,
                    Problem::new(
                        403,
                        "access-denied",
                        "Access denied",
                        format!("{:?} may not write {}:{}", who.name, d.type_name, d.id),
                    ),
                ));
                continue;
            }
            d.doc.access = local.unwrap_or(Value::Null);
            onto_parent(&store, &params, &mut d)?;
            at.push(i);
            docs.push(d);
        }
        let outcomes = if docs.is_empty() {
            Vec::new()
        } else {
            store.apply_replicated_from(
                SourceContext {
                    set: None,
                    policy: LossPolicy::Carry,
                },
                &docs,
                None,
            )?
        };
        let seq = store.last_seq()?;
        Ok::<_, StoreError>((refused, at, outcomes, seq))
    })
    .await?
    .map_err(|e| store_problem(&e))?;
    state.wrote(seq);
    for (i, p) in refused {
        if let Some(slot) = out.get_mut(i) {
            *slot = Some(p);
        }
    }
    for (i, o) in at.into_iter().zip(outcomes) {
        if o.applied == Applied::Refused {
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(
                    Problem::new(
                        403,
                        "refused",
                        "Revision refused",
                        format!("the revision was refused: {}", o.lost.join("; ")),
                    )
                    .with("error", "forbidden"),
                );
            }
        }
    }
    Ok(out)
}

/// Conservation for a replicated revision whose parent is not the winner (an edit made
/// offline, concurrent with one that reached the node first): the store translates a
/// revision onto the winner it descends from, and here one that descends from another kept
/// revision is translated onto that revision's body, so an old release's branch keeps the
/// fields it cannot see as its edit of the winner would. The body then travels in the
/// storage version. Left to the store as it came when the parent is the winner, when the
/// release's version is above storage (the store carries that body), or when the parent's
/// body is no longer kept; a body its version refuses is left for the store to refuse.
fn onto_parent<B: Backend>(
    store: &Store<B>,
    params: &mutatis_lens::Params,
    d: &mut ReplicatedDoc,
) -> Result<(), StoreError> {
    let Some(parent) = d.doc.history.first().cloned() else {
        return Ok(());
    };
    if d.doc.deleted {
        return Ok(());
    }
    let (t, id) = (d.type_name.as_str(), d.id.as_str());
    let storage = store.state(t)?.storage_version;
    if d.doc.version > storage || store.rev(t, id)?.as_ref() == Some(&parent) {
        return Ok(());
    }
    let set = store.schema_set();
    if set.validate(t, d.doc.version, &d.doc.body).is_err() {
        return Ok(());
    }
    let Some(Revision::Found(p)) = store.revision(t, id, &parent, storage)?.map(|r| r.revision)
    else {
        return Ok(());
    };
    let onto = set
        .plan(t, d.doc.version, storage)
        .ok()
        .and_then(|plan| plan.translate_onto(&d.doc.body, &p.body, params).ok());
    if let Some(body) = onto {
        d.doc.body = body;
        d.doc.version = storage;
    }
    Ok(())
}

async fn bulk_docs<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(db): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let d = open(&state, &db)?;
    let who = caller(&state, &headers, Role::Writer).await?;
    let req = body_json(&body)?;
    let docs = req
        .get("docs")
        .and_then(Value::as_array)
        .ok_or_else(|| Problem::bad_request("expected {\"docs\": [...]}"))?;
    if docs.len() > proto::MAX_BULK_DOCS {
        return Err(Problem::bad_request(format!(
            "_bulk_docs carries {} documents; at most {} per request",
            docs.len(),
            proto::MAX_BULK_DOCS
        )));
    }
    let new_edits = req
        .get("new_edits")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mut parsed: Vec<Result<(String, proto::Incoming), (String, Problem)>> = Vec::new();
    for doc in docs {
        let cid = doc
            .get("_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match proto::incoming(doc.clone()) {
            Ok(inc) if !cid.is_empty() => parsed.push(Ok((cid, inc))),
            Ok(_) => parsed.push(Err((
                cid,
                Problem::bad_request("every document needs an _id of the form TYPE:ID"),
            ))),
            Err(e) => parsed.push(Err((cid, bad(&e)))),
        }
    }
    let row_error = |cid: &str, p: &Problem| {
        let mut p = p.clone();
        add_couch_members(&mut p);
        json!({"id": cid, "error": p.extensions["error"], "reason": p.extensions["reason"]})
    };
    let mut rows = Vec::new();
    if new_edits {
        for item in parsed {
            match item {
                Err((cid, p)) => rows.push(row_error(&cid, &p)),
                Ok((cid, doc)) => match edit(&state, &who, &d.release, &cid, doc).await? {
                    EditOutcome::Ok(rev) => {
                        rows.push(json!({"ok": true, "id": cid, "rev": rev.to_string()}))
                    }
                    EditOutcome::Failed(p) => rows.push(row_error(&cid, &p)),
                },
            }
        }
    } else {
        // CouchDB answers a replicated batch with the documents that failed only.
        let mut good = Vec::new();
        for item in parsed {
            match item {
                Err((cid, p)) => rows.push(row_error(&cid, &p)),
                Ok(pair) => good.push(pair),
            }
        }
        let ids: Vec<String> = good.iter().map(|(c, _)| c.clone()).collect();
        let outcomes = replicate_in(&state, &who, &d.release, good).await?;
        for (cid, o) in ids.iter().zip(outcomes) {
            if let Some(p) = o {
                rows.push(row_error(cid, &p));
            }
        }
    }
    Ok(json_ok(StatusCode::CREATED, &Value::Array(rows)))
}

// ---------------------------------------------------------------------------------------
// _all_docs.

async fn all_docs<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(db): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let d = open(&state, &db)?;
    let who = caller(&state, &headers, Role::Reader).await?;
    let include_docs = flag(&q, "include_docs")?;
    let with_conflicts = flag(&q, "conflicts")?;
    if flag(&q, "descending")? {
        return Err(Problem::bad_request("descending=true is not supported"));
    }
    let json_param = |name: &str| -> Result<Option<Value>, Problem> {
        match q.get(name) {
            None => Ok(None),
            Some(s) => parse_json(s.as_bytes()).map(Some),
        }
    };
    let body = body_json(&body)?;
    let keys = match body.get("keys").cloned().or(json_param("keys")?) {
        None => None,
        Some(Value::Array(k)) => Some(k),
        Some(_) => return Err(Problem::bad_request("keys must be a JSON array")),
    };
    let limit = match q.get("limit") {
        None => proto::MAX_KEYS,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= proto::MAX_KEYS)
            .ok_or_else(|| {
                Problem::bad_request(format!(
                    "limit={s}: expected a whole number up to {}",
                    proto::MAX_KEYS
                ))
            })?,
    };
    let mut rows = Vec::new();
    if let Some(keys) = keys {
        if keys.len() > proto::MAX_KEYS {
            return Err(Problem::bad_request(format!(
                "{} keys; at most {} per request",
                keys.len(),
                proto::MAX_KEYS
            )));
        }
        for key in keys {
            let cid = key.as_str().unwrap_or_default().to_owned();
            let tree = match locate(&d.release, &cid).ok().flatten() {
                Some((t, id, v)) => read_tree(&state, &who, &t, &id, v).await?,
                None => None,
            };
            let Some(tree) = tree else {
                rows.push(json!({"key": key, "error": "not_found"}));
                continue;
            };
            let mut row = json!({"id": cid, "key": cid, "value": {"rev": tree.rev.to_string()}});
            if tree.deleted {
                row["value"]["deleted"] = json!(true);
                if include_docs {
                    row["doc"] = Value::Null;
                }
            } else if include_docs {
                row["doc"] = all_docs_doc(&cid, &tree, &who, with_conflicts)?;
            }
            rows.push(row);
        }
    } else {
        let text = |name: &str, alt: &str| -> Result<Option<String>, Problem> {
            Ok(json_param(name)?
                .or(json_param(alt)?)
                .and_then(|v| v.as_str().map(str::to_owned)))
        };
        let start = text("startkey", "start_key")?;
        let end = text("endkey", "end_key")?;
        let inclusive_end = q.get("inclusive_end").map(String::as_str) != Some("false");
        // Types in the order of their ids' prefix `TYPE:`, so rows are in CouchDB id order.
        let mut types: Vec<(String, u32)> = d
            .release
            .types
            .iter()
            .map(|(t, v)| (t.clone(), *v))
            .collect();
        types.sort_by_key(|(t, _)| format!("{t}:"));
        for (t, v) in types {
            if rows.len() >= limit {
                break;
            }
            let prefix = format!("{t}:");
            // Skip a type wholly before the start or after the end.
            if start
                .as_deref()
                .is_some_and(|s| s > prefix.as_str() && !s.starts_with(&prefix))
            {
                continue;
            }
            if end.as_deref().is_some_and(|e| prefix.as_str() > e) {
                continue;
            }
            // Where to begin inside the type: `after` is exclusive, so the start id itself
            // is looked up on its own.
            let mut after: Option<String> = None;
            if let Some(s) = start.as_deref().filter(|s| s.starts_with(&prefix)) {
                let first = s
                    .strip_prefix(prefix.as_str())
                    .unwrap_or_default()
                    .to_owned();
                if !first.is_empty() {
                    let cid = s.to_owned();
                    if let Some(tree) = read_tree(&state, &who, &t, &first, v).await? {
                        let before_end = end
                            .as_deref()
                            .is_none_or(|e| cid.as_str() < e || (inclusive_end && cid == e));
                        if !tree.deleted && before_end {
                            rows.push(all_docs_row(
                                &cid,
                                &tree,
                                &who,
                                include_docs,
                                with_conflicts,
                            )?);
                        }
                    }
                    after = Some(first);
                }
            }
            loop {
                if rows.len() >= limit {
                    break;
                }
                let (tt, aa, w) = (t.clone(), after.clone(), who.clone());
                let want = limit - rows.len();
                let page = state
                    .read_store(move |s| {
                        s.list_visible(&tt, v, aa.as_deref(), want, &|a| may_read(&w, a))
                    })
                    .await?;
                let mut past_end = false;
                for doc in &page.docs {
                    let cid = proto::couch_id(&t, &doc.id);
                    if let Some(e) = end.as_deref() {
                        if cid.as_str() > e || (!inclusive_end && cid == e) {
                            past_end = true;
                            break;
                        }
                    }
                    let mut row =
                        json!({"id": cid, "key": cid, "value": {"rev": doc.rev.to_string()}});
                    if include_docs {
                        let f = Found {
                            rev: doc.rev.clone(),
                            deleted: false,
                            body: doc.body.clone(),
                            history: Vec::new(),
                        };
                        row["doc"] = shape(&cid, &f, false)?;
                        if with_conflicts {
                            // The page's document has no leaves: read the tree for them.
                            if let Some(tree) = read_tree(&state, &who, &t, &doc.id, v).await? {
                                row["doc"] = all_docs_doc(&cid, &tree, &who, true)?;
                            }
                        }
                    }
                    rows.push(row);
                }
                match page.next {
                    Some(n) if !past_end => after = Some(n),
                    _ => break,
                }
            }
        }
    }
    rows.truncate(limit);
    Ok(json_ok(
        StatusCode::OK,
        // `total_rows` is the rows answered: the count of every document would scan them all
        // and tell a caller about documents it may not see.
        &json!({"total_rows": rows.len(), "offset": 0, "rows": rows}),
    ))
}

fn all_docs_row(
    cid: &str,
    tree: &ReplicationDoc,
    who: &Principal,
    include_docs: bool,
    with_conflicts: bool,
) -> Result<Value, Problem> {
    let mut row = json!({"id": cid, "key": cid, "value": {"rev": tree.rev.to_string()}});
    if include_docs {
        row["doc"] = all_docs_doc(cid, tree, who, with_conflicts)?;
    }
    Ok(row)
}

fn all_docs_doc(
    cid: &str,
    tree: &ReplicationDoc,
    who: &Principal,
    with_conflicts: bool,
) -> Result<Value, Problem> {
    let all = leaves(tree, who);
    let Some(winner) = all.first() else {
        return Ok(Value::Null);
    };
    let mut doc = shape(cid, winner, false)?;
    if with_conflicts {
        let live: Vec<Value> = all
            .iter()
            .skip(1)
            .filter(|l| !l.deleted)
            .map(|l| json!(l.rev.to_string()))
            .collect();
        if !live.is_empty() {
            doc["_conflicts"] = Value::Array(live);
        }
    }
    Ok(doc)
}

// ---------------------------------------------------------------------------------------
// _changes.

/// What a `_changes` request asks for.
#[derive(Clone)]
struct FeedAsk {
    who: Principal,
    types: BTreeMap<String, u32>,
    all_docs: bool,
    include_docs: bool,
    conflicts: bool,
    doc_ids: Option<HashSet<String>>,
    limit: usize,
}

/// The longest a long poll may wait: what the client asked (`timeout`, else CouchDB's 60 s),
/// no longer than its `heartbeat` (an empty answer serves as one: the client asks again), and
/// a second below the server's whole-request timeout, which would cut it off.
fn wait_bound(q: &HashMap<String, String>, request_timeout: Duration) -> Result<Duration, Problem> {
    let ms = |name: &str| -> Result<Option<Duration>, Problem> {
        match q.get(name) {
            None => Ok(None),
            Some(s) => s
                .parse::<u64>()
                .map(|n| Some(Duration::from_millis(n)))
                .map_err(|_| {
                    Problem::bad_request(format!("{name}={s}: expected milliseconds"))
                        .with("parameter", name)
                }),
        }
    };
    let mut wait = ms("timeout")?.unwrap_or(DEFAULT_LONGPOLL);
    if let Some(h) = ms("heartbeat")?.filter(|h| !h.is_zero()) {
        wait = wait.min(h);
    }
    Ok(wait.min(request_timeout.saturating_sub(Duration::from_secs(1))))
}

async fn changes<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(db): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let d = open(&state, &db)?;
    let who = caller(&state, &headers, Role::Reader).await?;
    let feed = match q.get("feed").map(String::as_str) {
        None | Some("normal") => Feed::Normal,
        Some("longpoll") => Feed::Longpoll,
        Some("continuous") => Feed::Continuous,
        Some("eventsource") => Feed::EventSource,
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "feed={other}: expected normal, longpoll, continuous or eventsource"
            ))
            .with("parameter", "feed"))
        }
    };
    // Answered in feed order only: a reversed feed would need another scan.
    if flag(&q, "descending")? {
        return Err(Problem::bad_request("descending=true is not supported")
            .with("parameter", "descending"));
    }
    let all_docs = match q.get("style").map(String::as_str) {
        None | Some("main_only") => false,
        Some("all_docs") => true,
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "style={other}: expected main_only or all_docs"
            )))
        }
    };
    let doc_ids = match q.get("filter").map(String::as_str) {
        None => None,
        Some("_doc_ids") => {
            let from_body = body_json(&body)?.get("doc_ids").cloned();
            let list = match from_body {
                Some(v) => Some(v),
                None => match q.get("doc_ids") {
                    Some(s) => Some(parse_json(s.as_bytes())?),
                    None => None,
                },
            };
            let ids = list
                .as_ref()
                .and_then(Value::as_array)
                .filter(|a| a.len() <= proto::MAX_KEYS)
                .ok_or_else(|| {
                    Problem::bad_request(format!(
                        "filter=_doc_ids needs doc_ids: an array of at most {} ids",
                        proto::MAX_KEYS
                    ))
                })?;
            Some(
                ids.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect::<HashSet<_>>(),
            )
        }
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "filter={other}: this server answers only filter=_doc_ids"
            )))
        }
    };
    let limit = match q.get("limit") {
        None => proto::MAX_CHANGES,
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| Problem::bad_request(format!("limit={s}: expected a whole number")))?
            .clamp(1, proto::MAX_CHANGES),
    };
    let since = match q.get("since") {
        None => Some(0),
        Some(s) => proto::parse_since(s).map_err(Problem::bad_request)?,
    };
    let since = match since {
        Some(n) => n,
        None => state.read_store(|s| s.last_seq()).await?,
    };
    let ask = Arc::new(FeedAsk {
        who,
        types: d.release.types.clone(),
        all_docs,
        include_docs: flag(&q, "include_docs")?,
        conflicts: flag(&q, "conflicts")?,
        doc_ids,
        limit,
    });
    if matches!(feed, Feed::Continuous | Feed::EventSource) {
        let (timeout, heartbeat) = stream_bounds(&q)?;
        let deadline = Instant::now() + timeout;
        return Ok(stream_feed(state, ask, since, deadline, heartbeat, feed));
    }
    let deadline = Instant::now() + wait_bound(&q, state.config.request_timeout)?;
    let mut rx = state.feed_watch();
    let mut after = since;
    loop {
        rx.borrow_and_update();
        let (rows, last) = examine(&state, &ask, after).await?;
        let now = Instant::now();
        if !rows.is_empty() || feed == Feed::Normal || now >= deadline {
            return Ok(json_ok(
                StatusCode::OK,
                &json!({"results": rows, "last_seq": last}),
            ));
        }
        after = last;
        let wait = state.feed_poll().min(deadline - now);
        // Woken by a write of this process, or after the poll interval for other processes'.
        let _ = tokio::time::timeout(wait, rx.changed()).await;
    }
}

/// How a `_changes` request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    /// At once.
    Normal,
    /// When there is a row, or at the timeout.
    Longpoll,
    /// A stream of rows, one JSON object a line, ending with `{"last_seq"}` at the timeout.
    Continuous,
    /// The same rows as server-sent events.
    EventSource,
}

/// The longest a streamed feed stays open (as `/changes`'s SSE).
const MAX_STREAM: Duration = Duration::from_secs(300);

/// A streamed feed's timeout (`timeout`, default 60 s, at most [`MAX_STREAM`]) and heartbeat
/// (`heartbeat` ms, at least one second; none when absent).
fn stream_bounds(q: &HashMap<String, String>) -> Result<(Duration, Option<Duration>), Problem> {
    let ms = |name: &str| -> Result<Option<u64>, Problem> {
        q.get(name)
            .map(|s| {
                s.parse::<u64>().map_err(|_| {
                    Problem::bad_request(format!("{name}={s}: expected milliseconds"))
                        .with("parameter", name)
                })
            })
            .transpose()
    };
    let timeout = ms("timeout")?
        .map_or(DEFAULT_LONGPOLL, Duration::from_millis)
        .min(MAX_STREAM);
    let heartbeat = ms("heartbeat")?
        .filter(|h| *h > 0)
        .map(|h| Duration::from_millis(h.max(1000)));
    Ok((timeout, heartbeat))
}

/// A continuous or event-source feed: rows as they come, a heartbeat when idle, until the
/// deadline or the request's `limit` of rows. Its body outlives the handler, so the
/// whole-request timeout does not cut it: the deadline bounds it instead.
fn stream_feed<B: Backend + 'static>(
    state: Arc<AppState<B>>,
    ask: Arc<FeedAsk>,
    since: u64,
    deadline: Instant,
    heartbeat: Option<Duration>,
    feed: Feed,
) -> Response {
    struct Cursor<B: Backend + 'static> {
        state: Arc<AppState<B>>,
        ask: Arc<FeedAsk>,
        after: u64,
        sent: usize,
        beat: Instant,
        rx: tokio::sync::watch::Receiver<u64>,
        done: bool,
    }
    let sse = feed == Feed::EventSource;
    let end = move |after: u64| -> Bytes {
        if sse {
            Bytes::new()
        } else {
            Bytes::from(format!("{}\n", json!({"last_seq": after})))
        }
    };
    let rx = state.feed_watch();
    let cursor = Cursor {
        state,
        ask,
        after: since,
        sent: 0,
        beat: Instant::now(),
        rx,
        done: false,
    };
    let stream = futures_util::stream::unfold(cursor, move |mut c| async move {
        if c.done {
            return None;
        }
        loop {
            c.rx.borrow_and_update();
            let left = c.ask.limit.saturating_sub(c.sent);
            let ask = Arc::new(FeedAsk {
                limit: left.max(1),
                ..(*c.ask).clone()
            });
            let (rows, last) = match examine(&c.state, &ask, c.after).await {
                Ok(r) => r,
                Err(p) => {
                    // The head is sent: the stream can only end, saying where it was.
                    tracing::warn!("a streamed _changes feed ended on an error: {p}");
                    c.done = true;
                    let out = end(c.after);
                    return Some((Ok::<_, std::convert::Infallible>(out), c));
                }
            };
            c.after = last;
            let now = Instant::now();
            if !rows.is_empty() {
                c.sent += rows.len();
                c.beat = now;
                let mut text = String::new();
                for row in &rows {
                    if sse {
                        let seq = row.get("seq").and_then(Value::as_u64).unwrap_or(last);
                        text.push_str(&format!("data: {row}\nid: {seq}\n\n"));
                    } else {
                        text.push_str(&format!("{row}\n"));
                    }
                }
                if c.sent >= c.ask.limit {
                    c.done = true;
                    text.push_str(&String::from_utf8_lossy(&end(c.after)));
                }
                return Some((Ok(Bytes::from(text)), c));
            }
            if now >= deadline {
                c.done = true;
                let out = end(c.after);
                return Some((Ok(out), c));
            }
            if let Some(h) = heartbeat {
                if now.duration_since(c.beat) >= h {
                    c.beat = now;
                    let beat = if sse {
                        "event: heartbeat\ndata: \n\n"
                    } else {
                        "\n"
                    };
                    return Some((Ok(Bytes::from_static(beat.as_bytes())), c));
                }
            }
            let mut wait = c.state.feed_poll().min(deadline - now);
            if let Some(h) = heartbeat {
                wait = wait.min(h.saturating_sub(now.duration_since(c.beat)));
            }
            // Woken by a write of this process, or after the poll interval for others'.
            let _ = tokio::time::timeout(wait, c.rx.changed()).await;
        }
    });
    // One JSON text a line is not one JSON text: not `application/json` (CouchDB's label),
    // which promises a body that parses whole.
    let media = if sse {
        "text/event-stream"
    } else {
        "application/x-ndjson"
    };
    (
        StatusCode::OK,
        [(CONTENT_TYPE, media)],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// Rows of the feed after `since` the caller may see, up to its limit, and the sequence to
/// continue from: the last row's when the page filled (the entries after it are still to
/// come), else the last entry read (the ones skipped are not the caller's).
async fn examine<B: Backend + 'static>(
    state: &AppState<B>,
    ask: &Arc<FeedAsk>,
    since: u64,
) -> Result<(Vec<Value>, u64), Problem> {
    let mut rows: Vec<Value> = Vec::new();
    let mut after = since;
    for _ in 0..FEED_BATCHES {
        let a = Arc::clone(ask);
        let want = ask.limit.saturating_sub(rows.len());
        let (mut found, last, ended) = state
            .read_store(move |s| feed_rows(s, &a, after, want))
            .await?;
        rows.append(&mut found);
        if rows.len() >= ask.limit {
            let seq = rows
                .last()
                .and_then(|r| r.get("seq"))
                .and_then(Value::as_u64)
                .unwrap_or(last);
            return Ok((rows, seq));
        }
        after = last;
        if ended {
            break;
        }
    }
    Ok((rows, after))
}

/// One store read of the feed: up to `want` rows after `after`, the last sequence read, and
/// whether the feed ended there.
fn feed_rows<B: Backend>(
    s: &Store<B>,
    ask: &FeedAsk,
    after: u64,
    want: usize,
) -> Result<(Vec<Value>, u64, bool), StoreError> {
    let (entries, last) = s.feed(after, FEED_BATCH)?;
    // Nothing read past `after`: the feed ends here. (A read may return fewer entries than
    // asked without ending it: entries superseded by later writes are left out.)
    let ended = last == after;
    let mut rows = Vec::new();
    for e in entries {
        let seq = e.change.seq;
        let Some(&v) = ask.types.get(&e.change.type_name) else {
            continue;
        };
        let Some(rec) = e.record else {
            continue;
        };
        if !may_read(&ask.who, &rec.access) {
            continue;
        }
        let cid = proto::couch_id(&e.change.type_name, &e.change.id);
        if ask.doc_ids.as_ref().is_some_and(|ids| !ids.contains(&cid)) {
            continue;
        }
        let leaves: Vec<&mutatis_store::ConflictLeaf> = rec
            .conflicts
            .iter()
            .filter(|l| may_read(&ask.who, &l.access))
            .collect();
        let mut revs = vec![json!({"rev": rec.rev.to_string()})];
        if ask.all_docs {
            revs.extend(leaves.iter().map(|l| json!({"rev": l.rev.to_string()})));
        }
        let mut row = json!({"seq": seq, "id": cid, "changes": revs});
        if rec.deleted {
            row["deleted"] = json!(true);
        }
        if ask.include_docs {
            let body = if rec.deleted {
                Value::Null
            } else {
                s.view(&e.change.type_name, &e.change.id, &rec, v)?
            };
            let mut doc =
                proto::outgoing(&cid, &rec.rev, &body, rec.deleted).unwrap_or(Value::Null);
            if ask.conflicts {
                let live: Vec<Value> = leaves
                    .iter()
                    .filter(|l| !l.deleted)
                    .map(|l| json!(l.rev.to_string()))
                    .collect();
                if !live.is_empty() {
                    doc["_conflicts"] = Value::Array(live);
                }
            }
            row["doc"] = doc;
        }
        rows.push(row);
        if rows.len() >= want {
            // The page is full: the rest of this read is for the next request.
            return Ok((rows, seq, false));
        }
    }
    Ok((rows, last, ended))
}
