//! `GET /changes`: the changes feed, `normal` (at once), `longpoll` (until a visible change or
//! the timeout) or `sse` (server-sent events). A change of a document the caller may not read
//! is never shown, deletions included (a tombstone keeps its document's policy).

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use mutatis_store::{Backend, Store, StoreError};
use serde_json::{json, Value};

use crate::app::AppState;
use crate::auth::{AccessPolicy, Principal, Role};
use crate::headers::{self, DEPRECATION_LINK};
use crate::http::{announce, header, json_response, limit_param, require, Tags};
use crate::negotiate::{named_release, negotiate, Announce};
use crate::problem::Problem;

/// Default and largest `timeout` of a waiting feed, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
/// Largest `timeout` of a waiting feed: five minutes.
pub const MAX_TIMEOUT_MS: u64 = 300_000;
/// Default and largest `limit`.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// How often an idle event stream sends a comment so that proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What one feed request may see and how it wants it.
#[derive(Clone)]
struct Filter {
    who: Principal,
    types: Option<HashSet<String>>,
    include_docs: bool,
    announce: Announce,
    limit: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    Longpoll,
    Sse,
}

fn bad(param: &str, detail: String) -> Problem {
    Problem::bad_request(detail).with("parameter", param)
}

/// `GET /changes?since=SEQ&types=a,b&feed=normal|longpoll|sse&limit=N&include_docs=true&timeout=MS`.
/// Normal and longpoll answer `{"results": [{"seq","type","id","rev","deleted","doc"?}],
/// "lastSeq"}`, `lastSeq` being the last sequence examined (resume from it even when every
/// change examined was filtered out).
pub async fn changes<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let who = require(&state, &headers, Role::Reader).await?;
    let mode = match query.get("feed").map(String::as_str) {
        None | Some("normal") => Mode::Normal,
        Some("longpoll") => Mode::Longpoll,
        Some("sse") => Mode::Sse,
        Some(other) => {
            return Err(bad(
                "feed",
                format!("feed={other}: expected normal, longpoll or sse"),
            ))
        }
    };
    let mut since = match query.get("since") {
        None => 0,
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| bad("since", format!("since={s}: expected a sequence number")))?,
    };
    if mode == Mode::Sse {
        if let Some(id) = header(&headers, "last-event-id") {
            since = id.trim().parse().map_err(|_| {
                Problem::bad_request(format!("Last-Event-ID: {id}: expected a sequence number"))
            })?;
        }
    }
    let timeout_ms = match query.get("timeout") {
        None => DEFAULT_TIMEOUT_MS,
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|&t| t <= MAX_TIMEOUT_MS)
            .ok_or_else(|| {
                bad(
                    "timeout",
                    format!("timeout={s}: expected milliseconds, at most {MAX_TIMEOUT_MS}"),
                )
            })?,
    };
    let include_docs = match query.get("include_docs").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(bad(
                "include_docs",
                format!("include_docs={other}: expected true or false"),
            ))
        }
    };
    let types = query.get("types").map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect::<HashSet<_>>()
    });
    let store = state.store();
    let set = store.schema_set();
    let announce = announce(&headers, &query, set)?;
    if let Some(types) = &types {
        for t in types {
            set.type_def(t)
                .map_err(|_| crate::negotiate::unknown_type(set, t))?;
        }
    }
    // An unknown or unsupported release is refused up front, as on every negotiated route.
    // A client naming nothing is served the schema set's default release, as on `/docs`
    // (under body detection, its fallback: a feed request has no body to detect from).
    let release = match named_release(set, &announce)? {
        Some(r) => Some(r.clone()),
        None if announce.versions.is_empty() => match set.unnamed_release() {
            mutatis_schema::UnnamedRelease::Fixed(r) => Some(r.clone()),
            mutatis_schema::UnnamedRelease::Detect { fallback } => fallback.cloned(),
        },
        None => None,
    };
    // With documents, the versions they come in (types the release lacks carry no doc).
    let versions = include_docs.then(|| {
        let mut names: Vec<&str> = match &types {
            Some(t) => t.iter().map(String::as_str).collect(),
            None => set.types().map(|t| t.name()).collect(),
        };
        names.sort_unstable();
        headers::format_versions(names.into_iter().filter_map(|t| {
            negotiate(set, &state.params, &announce, t, None)
                .ok()
                .map(|s| (t, s.version))
        }))
    });
    let filter = Arc::new(Filter {
        who,
        types,
        include_docs,
        announce,
        limit: limit_param(&query, DEFAULT_LIMIT, MAX_LIMIT)?,
    });
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    let mut resp = match mode {
        Mode::Normal => {
            let (results, last) = examine(&state, &filter, since).await?;
            json_response(
                StatusCode::OK,
                &json!({"results": results, "lastSeq": last}),
            )
        }
        Mode::Longpoll => {
            let (results, last) = longpoll(&state, &filter, since, deadline).await?;
            json_response(
                StatusCode::OK,
                &json!({"results": results, "lastSeq": last}),
            )
        }
        Mode::Sse => sse(Arc::clone(&state), filter, since, deadline),
    };
    if let Some(v) = versions.filter(|v| !v.is_empty()) {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert("mutatis-versions", v);
        }
    }
    if let Some(r) = &release {
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&r.name) {
            h.insert("mutatis-release", v);
        }
        if r.status == mutatis_schema::ReleaseStatus::Deprecated {
            let since = r.deprecated.as_deref().and_then(headers::date_to_unix);
            if let Ok(v) = HeaderValue::from_str(&headers::deprecation_header(since)) {
                h.insert("deprecation", v);
            }
            if let Some(s) = r.sunset.as_deref().and_then(headers::sunset_header) {
                if let Ok(v) = HeaderValue::from_str(&s) {
                    h.insert("sunset", v);
                }
            }
            h.insert("link", HeaderValue::from_static(DEPRECATION_LINK));
        }
    }
    resp.extensions_mut().insert(Tags {
        release: release.map_or_else(|| "".into(), |r| r.name.into()),
        type_name: "".into(),
    });
    Ok(resp)
}

/// Wait until a visible change exists after `since`, or the deadline.
async fn longpoll<B: Backend + 'static>(
    state: &Arc<AppState<B>>,
    filter: &Arc<Filter>,
    mut since: u64,
    deadline: Instant,
) -> Result<(Vec<Value>, u64), Problem> {
    let mut rx = state.feed_watch();
    loop {
        rx.borrow_and_update();
        let (results, last) = examine(state, filter, since).await?;
        let now = Instant::now();
        if !results.is_empty() || now >= deadline {
            return Ok((results, last));
        }
        if last != since {
            // A full batch, all filtered out: look further at once.
            since = last;
            continue;
        }
        let wait = state.feed_poll().min(deadline - now);
        // Woken by a write of this process, or after the poll interval for writes of others;
        // a shutdown answers what there is (nothing) at once.
        tokio::select! {
            _ = tokio::time::timeout(wait, rx.changed()) => {}
            () = state.stopping() => return Ok((results, last)),
        }
    }
}

/// One event per visible change, `id: <seq>`, until the deadline; keep-alive comments between.
fn sse<B: Backend + 'static>(
    state: Arc<AppState<B>>,
    filter: Arc<Filter>,
    since: u64,
    deadline: Instant,
) -> Response {
    struct Cursor<B: Backend + 'static> {
        state: Arc<AppState<B>>,
        filter: Arc<Filter>,
        since: u64,
        buffer: VecDeque<Value>,
        rx: tokio::sync::watch::Receiver<u64>,
    }
    let rx = state.feed_watch();
    let cursor = Cursor {
        state,
        filter,
        since,
        buffer: VecDeque::new(),
        rx,
    };
    let stream = futures_util::stream::unfold(cursor, move |mut c| async move {
        loop {
            if let Some(item) = c.buffer.pop_front() {
                let seq = item.get("seq").and_then(Value::as_u64).unwrap_or(0);
                let event = Event::default()
                    .id(seq.to_string())
                    .event("change")
                    .data(item.to_string());
                return Some((Ok::<Event, Infallible>(event), c));
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            c.rx.borrow_and_update();
            match examine(&c.state, &c.filter, c.since).await {
                Ok((results, last)) => {
                    let progressed = last != c.since;
                    c.since = last;
                    c.buffer.extend(results);
                    if c.buffer.is_empty() && !progressed {
                        let wait = c.state.feed_poll().min(deadline - now);
                        // A shutdown ends the stream (a client reconnects with Last-Event-ID).
                        tokio::select! {
                            _ = tokio::time::timeout(wait, c.rx.changed()) => {}
                            () = c.state.stopping() => return None,
                        }
                    }
                }
                Err(p) => {
                    tracing::warn!("event stream stopped: {p}");
                    return None;
                }
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// Examine up to `limit` changes after `since`: the visible ones, and the last sequence
/// examined.
async fn examine<B: Backend + 'static>(
    state: &AppState<B>,
    filter: &Arc<Filter>,
    since: u64,
) -> Result<(Vec<Value>, u64), Problem> {
    let f = Arc::clone(filter);
    let params = state.params.clone();
    state
        .with_store(move |s| visible_changes(s, &params, &f, since))
        .await
}

fn visible_changes<B: Backend>(
    store: &Store<B>,
    params: &mutatis_lens::Params,
    f: &Filter,
    since: u64,
) -> Result<(Vec<Value>, u64), StoreError> {
    // Each entry with the record it wrote, in one snapshot: a document written again since
    // shows up later in the feed, never here with a newer body.
    let (entries, last) = store.feed(since, f.limit)?;
    let set = store.schema_set();
    let mut versions: HashMap<String, Option<u32>> = HashMap::new();
    let mut out = Vec::new();
    for entry in &entries {
        let c = &entry.change;
        if f.types.as_ref().is_some_and(|t| !t.contains(&c.type_name)) {
            continue;
        }
        // A type the schema set no longer has is not served.
        let Some(record) = &entry.record else {
            continue;
        };
        // The record, tombstone included: its policy decides.
        if f.who.role != Role::Admin && !AccessPolicy::stored(&record.access).may_read(&f.who) {
            continue;
        }
        let mut item = json!({
            "seq": c.seq,
            "type": c.type_name,
            "id": c.id,
            "rev": c.rev.to_string(),
            "deleted": c.deleted,
        });
        if f.include_docs && !c.deleted {
            let version = *versions.entry(c.type_name.clone()).or_insert_with(|| {
                negotiate(set, params, &f.announce, &c.type_name, None)
                    .ok()
                    .map(|s| s.version)
            });
            if let Some(v) = version {
                if !record.deleted {
                    item["doc"] = store.view(&c.type_name, &c.id, record, v)?;
                }
            }
        }
        out.push(item);
    }
    Ok((out, last))
}
