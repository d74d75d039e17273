//! The HTTP edge: the router, the layer that screens every request before a handler sees it
//! (request-target and header limits, singleton headers, body size and body read timeout),
//! authentication before any body is read, problem+json for every error (axum's own
//! rejections included), metrics with closed label sets, and the response helpers the
//! handlers share.
//!
//! The layers, outermost first: CORS when configured (`cors.rs`), the probes `/livez` and
//! `/readyz` (sent aside, in front of everything below: `Probes`), request ids and the
//! request log (`request_log.rs`), the read lane for plain reads of one document
//! (`read_lane.rs`, which runs the same steps as below without the router), `edge`
//! (screening, the whole-request timeout, problem bodies, `Vary` on documents, metrics:
//! `around_handler`) → the panic catcher → routing → `authenticated` on the routes that need
//! a token → the handler, which reads the body through the edge's guard. Everything from the
//! request ids to the panic catcher wraps the router once, as one service.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body::{Frame, SizeHint};
use mutatis_store::Backend;
use serde_json::Value;
use tower_http::catch_panic::CatchPanicLayer;
use tower_layer::Layer as _;

use crate::app::AppState;
use crate::auth::{self, Authenticated, Caller, Principal, Role};
use crate::negotiate::{Announce, Served};
use crate::problem::{Problem, PROBLEM_JSON};
use crate::{admin, conflicts, docs, feed, jobs, meta, replication, webhooks};

/// Error bodies produced below the handlers are read up to this size for their detail.
const REJECTION_BODY_LIMIT: usize = 4096;

/// The longest request target (path and query, with the authority of an absolute-form
/// target) answered: longer is 414 `uri-too-long`. Ids are at most 512 bytes and the longest
/// query a client needs (a replication selector) is far below this.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The most header fields a request may carry: more is 431 `headers-too-large`. Below the
/// [`crate::HYPER_MAX_HEADERS`] hyper parses, so that ordinary excess gets a problem+json
/// answer. A browser sends about 15, and proxies in front add a few each.
pub const MAX_HEADERS: usize = 64;

/// The largest header section (each field's name and value, plus 4 bytes for `: ` and the
/// line end) a request may carry: larger is 431 `headers-too-large`.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Headers a request may carry at most once. Two of them is 400 `duplicate-header`: which
/// one would win (the first, for a `HeaderMap` lookup) is an accident of the
/// implementation, and a proxy in front may pick the other (request smuggling's shape).
/// `Host` and `Content-Type` are singletons by HTTP itself (RFC 9112 §3.2 requires a 400 for
/// two `Host` lines; RFC 9110 §8.3 allows one media type): a proxy routing or screening by
/// the other one would see another request than this server.
pub const SINGLETON_HEADERS: [HeaderName; 7] = [
    axum::http::header::AUTHORIZATION,
    HeaderName::from_static("mutatis-release"),
    HeaderName::from_static("mutatis-versions"),
    HeaderName::from_static("mutatis-access"),
    axum::http::header::IF_MATCH,
    axum::http::header::HOST,
    CONTENT_TYPE,
];

/// The HTTP methods the metrics name; any other is counted as `other`.
const METHOD_LABELS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The label standing for a request-derived value outside its closed set.
const OTHER_LABEL: &str = "other";

/// What a response reports to the metrics (release and type served). Shared names: the
/// tags of an answer in a negotiated version are built once per schema set
/// ([`NegotiatedHeaders`]) and cloned onto each answer.
#[derive(Debug, Clone)]
pub struct Tags {
    /// The release served (`""` if none).
    pub release: Arc<str>,
    /// The document type (`""` for other routes).
    pub type_name: Arc<str>,
}

/// What an answer in one negotiated version of one type carries: its headers
/// (`Mutatis-Release`, `Mutatis-Versions`, and `Deprecation`, `Sunset`, `Link` for a
/// deprecated release) and its metrics tags.
#[derive(Debug)]
pub struct ServedHeaders {
    headers: Vec<(HeaderName, HeaderValue)>,
    tags: Tags,
}

impl ServedHeaders {
    /// How many header fields [`ServedHeaders::apply`] adds.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// Add the negotiation headers and the metrics tags to `resp`.
    pub fn apply(&self, mut resp: Response) -> Response {
        let h = resp.headers_mut();
        for (name, value) in &self.headers {
            h.insert(name.clone(), value.clone());
        }
        resp.extensions_mut().insert(self.tags.clone());
        resp
    }

    fn new(type_name: &str, served: &Served) -> ServedHeaders {
        let headers = served
            .headers(type_name)
            .into_iter()
            .filter_map(|(name, value)| {
                let value = HeaderValue::from_str(&value).ok()?;
                Some((HeaderName::from_static(name), value))
            })
            .collect();
        ServedHeaders {
            headers,
            tags: Tags {
                release: served.release.as_deref().unwrap_or_default().into(),
                type_name: type_name.into(),
            },
        }
    }
}

/// The negotiation headers of every (type, negotiated version) answered, each built once per
/// schema set: their values (dates formatted, the versions map written out) depend only on
/// the set, so a request clones them instead of formatting them again. A reload starts a new
/// one with the new set ([`AppState::replace_store`]). Bounded by the set: negotiation only
/// ever serves its releases and versions.
#[derive(Debug, Default)]
pub struct NegotiatedHeaders {
    by_type: std::sync::RwLock<HeadersByType>,
}

/// Per type, each served version's headers.
type HeadersByType = foldhash::HashMap<String, Vec<(Served, Arc<ServedHeaders>)>>;

impl NegotiatedHeaders {
    /// The headers and tags of an answer in `type_name` served as `served`.
    pub fn get(&self, type_name: &str, served: &Served) -> Arc<ServedHeaders> {
        let find = |map: &HeadersByType| {
            map.get(type_name)
                .and_then(|all| all.iter().find(|(s, _)| s == served))
                .map(|(_, h)| Arc::clone(h))
        };
        let read = self
            .by_type
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(found) = find(&read) {
            return found;
        }
        drop(read);
        let mut write = self
            .by_type
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(found) = find(&write) {
            return found;
        }
        let built = Arc::new(ServedHeaders::new(type_name, served));
        write
            .entry(type_name.to_owned())
            .or_default()
            .push((served.clone(), Arc::clone(&built)));
        built
    }

    /// Add the negotiation headers and the metrics tags of `type_name` served as `served`.
    pub fn apply(&self, resp: Response, type_name: &str, served: &Served) -> Response {
        self.get(type_name, served).apply(resp)
    }
}

/// The router over `state`, as an axum [`Router`] ([`app`] inside one), for callers that want
/// one (a test's `axum::serve`, the fuzzing harness).
pub fn router<B: Backend + 'static>(state: Arc<AppState<B>>) -> Router<()> {
    Router::new().fallback_service(app(state))
}

/// Every request's way through the server over `state` (what [`crate::serve`] hands hyper):
/// the layers described in the module's documentation, chosen when it is built.
pub fn app<B: Backend + 'static>(
    state: Arc<AppState<B>>,
) -> impl tower_service::Service<
    Request,
    Response = Response,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone
       + Send
       + Sync
       + 'static {
    // Answered to every client, unsupported and unauthenticated ones included.
    let mut public: Router<Arc<AppState<B>>> = Router::new()
        .route("/health", get(meta::health::<B>))
        .route("/meta", get(meta::meta::<B>))
        .route("/schema", get(meta::schema::<B>))
        .route("/openapi.json", get(meta::openapi::<B>))
        .route("/compatibility", post(meta::compatibility::<B>))
        .route("/changelog", get(crate::changelog::changelog::<B>));
    public = crate::static_files::mount(public, state.config.static_files.as_ref());
    public = crate::dashboard::mount(public, state.config.ui);
    let mut protected: Router<Arc<AppState<B>>> = Router::new();
    if state.config.public_metrics {
        public = public.route("/metrics", get(meta::metrics::<B>));
    } else {
        protected = protected.route("/metrics", get(meta::metrics::<B>));
    }
    let protected = protected
        .route("/docs/{type}", get(docs::list::<B>).post(docs::create::<B>))
        .route(
            "/docs/{type}/{id}",
            get(docs::read::<B>)
                .put(docs::replace::<B>)
                .patch(docs::patch::<B>)
                .delete(docs::delete::<B>),
        )
        .route(
            "/docs/{type}/{id}/access",
            get(docs::get_access::<B>).put(docs::put_access::<B>),
        )
        .route("/docs/{type}/{id}/conflicts", get(conflicts::list::<B>))
        .route(
            "/docs/{type}/{id}/conflicts/resolve",
            post(conflicts::resolve::<B>),
        )
        .route("/changes", get(feed::changes::<B>))
        .route("/replication", get(replication::info::<B>))
        .route("/replication/changes", get(replication::changes::<B>))
        // A batch is many documents: its own, larger body limit ([`body_limit`]).
        .route("/replication/apply", post(replication::apply::<B>))
        .route(
            "/replication/checkpoints/{id}",
            get(replication::get_checkpoint::<B>).put(replication::put_checkpoint::<B>),
        )
        .route(
            "/admin/migrations",
            get(admin::migrations::<B>).post(admin::start_migration::<B>),
        )
        .route("/admin/migrations/{type}", get(admin::migration::<B>))
        .route(
            "/admin/migrations/{type}/abort",
            post(admin::abort_migration::<B>),
        )
        .route(
            "/admin/migrations/{type}/rollback",
            post(admin::rollback::<B>),
        )
        .route(
            "/admin/migrations/{type}/backup",
            axum::routing::delete(admin::drop_backup::<B>),
        )
        .route(
            "/admin/tokens",
            get(admin::tokens::<B>).post(admin::create_token_route::<B>),
        )
        .route(
            "/admin/tokens/{name}",
            axum::routing::delete(admin::revoke_token_route::<B>),
        )
        .route("/admin/releases", get(admin::releases::<B>))
        .route("/admin/reload", post(admin::reload::<B>))
        .route("/admin/import", post(admin::import::<B>))
        .route(
            "/admin/replications",
            get(jobs::list::<B>).post(jobs::create::<B>),
        )
        .route(
            "/admin/replications/{id}",
            get(jobs::get::<B>).delete(jobs::delete::<B>),
        )
        .route(
            "/admin/webhooks",
            get(webhooks::list::<B>).post(webhooks::create::<B>),
        )
        .route(
            "/admin/webhooks/{id}",
            get(webhooks::get::<B>).delete(webhooks::delete::<B>),
        )
        // Only on matched routes: an unknown path is still 404 and a wrong method 405,
        // token or not.
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            authenticated::<B>,
        ));
    let cors = state.config.cors.clone();
    let routes = public
        .merge(protected)
        .merge(crate::couch::router(&state))
        .fallback(no_route)
        .with_state(Arc::clone(&state));
    // The layers around the routes wrap the router as one service, not each route:
    // `Router::layer` wraps every route on its own, and each such layer costs a request a
    // boxed clone of the service beneath it and a boxed future.
    //
    // The edge's body guard bounds every body by its route's limit ([`body_limit`]);
    // axum's own default (2 MB) would otherwise cut replication batches short.
    let routes = DefaultBodyLimit::disable().layer(routes);
    let routes = CatchPanicLayer::custom(panicked).layer(routes);
    let routes = axum::middleware::from_fn_with_state(Arc::clone(&state), edge::<B>).layer(routes);
    // The commonest request, a plain read of one document, is answered beside the router,
    // by the same functions, without its per-request costs ([`crate::read_lane`]).
    let routes = crate::read_lane::ReadLane::new(Arc::clone(&state), routes);
    // The probes, beside the edge, the request log and the metrics: an orchestrator asks
    // every few seconds, which is not API traffic, and `/livez` must answer even when the
    // edge's work could not be done.
    let probes: Router<()> = Router::new()
        .route("/livez", get(meta::livez))
        .route("/readyz", get(meta::readyz::<B>))
        .with_state(state);
    // Around the edge: the request id is set before the edge reads it for problem bodies,
    // and the log line sees the final answer.
    let api = crate::request_log::around(routes);
    let app = Probes { probes, api };
    // Outermost: every answer carries the CORS headers, and a preflight is answered before
    // the edge and authentication.
    crate::cors::apply(app, cors.as_ref())
}

/// The probes ([`crate::meta::livez`], [`crate::meta::readyz`]) beside the API: one
/// comparison of the path sends a request to one or the other, with no route table in front
/// of the API's own.
#[derive(Clone)]
struct Probes<A> {
    probes: Router,
    api: A,
}

impl<A> tower_service::Service<Request> for Probes<A>
where
    A: tower_service::Service<Request, Response = Response, Error = std::convert::Infallible>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::Either<
        <Router as tower_service::Service<Request>>::Future,
        A::Future,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), std::convert::Infallible>> {
        // A router is always ready: only the API's readiness is news.
        self.api.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if matches!(req.uri().path(), "/livez" | "/readyz") {
            futures_util::future::Either::Left(self.probes.call(req))
        } else {
            futures_util::future::Either::Right(self.api.call(req))
        }
    }
}

async fn no_route(req: Request) -> Problem {
    Problem::new(
        404,
        "no-route",
        "No such endpoint",
        format!(
            "{} {} is not an endpoint of this server",
            req.method(),
            req.uri().path()
        ),
    )
}

/// The answer to a handler that panicked: a 500 (the process goes on serving).
pub(crate) fn panicked(_: Box<dyn std::any::Any + Send>) -> Response {
    tracing::error!("a request handler panicked");
    Problem::internal().into_response()
}

/// Screening, timeout, problem bodies and metrics around every request the router answers.
async fn edge<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    req: Request,
    next: Next,
) -> Response {
    around_handler(&state, req, |req| next.run(req)).await
}

/// The edge's work around `handler`, which answers the request once screened: the one
/// definition of it, for the router ([`edge`]) and for the read lane
/// ([`crate::read_lane`]).
pub(crate) async fn around_handler<B, H, F>(
    state: &AppState<B>,
    req: Request,
    handler: H,
) -> Response
where
    B: Backend + 'static,
    H: FnOnce(Request) -> F,
    F: Future<Output = Response>,
{
    let started = Instant::now();
    // Cheap clones (shared bytes), not copies: this runs on every request.
    let uri = req.uri().clone();
    let method = req.method().clone();
    let named_release = req.headers().get("mutatis-release").cloned();
    let request_id = req.headers().get(&crate::request_log::REQUEST_ID).cloned();
    // Who called, for usage per release: the header is kept (a cheap clone) only if usage
    // is recorded.
    let authorization = if state.usage.enabled() {
        req.headers().get("authorization").cloned()
    } else {
        None
    };
    let resp = match admit(state, req) {
        Err(refused) => refused.into_response(),
        Ok((req, fault)) => {
            let resp = within_request_timeout(state, uri.path(), started, handler(req)).await;
            // A body the guard cut off (too large, stalled) makes the handler fail somehow
            // (a rejection, malformed JSON…); the answer is what really happened.
            match fault.as_ref().and_then(|f| f.get()) {
                Some(f) => f.problem().into_response(),
                None => resp,
            }
        }
    };
    let mut resp = problem_body(resp, uri.path(), request_id.as_ref()).await;
    if uri.path().starts_with("/docs/") {
        // Every answer about a document — its body, a 304, a 404 — depends on the version
        // negotiated and on the caller: a shared cache must keep them apart.
        resp.headers_mut().append(
            axum::http::header::VARY,
            HeaderValue::from_static(crate::conditional::DOCUMENT_VARY),
        );
    }
    // A response its handler did not tag (an error before or after negotiation) counts under
    // the release and type the request named, if this set knows them.
    // Kept on the answer for the request log (`request_log.rs`).
    if resp.extensions().get::<Tags>().is_none() {
        let tags = request_tags(state, &uri, named_release.as_ref());
        resp.extensions_mut().insert(tags);
    }
    if let Some(tags) = resp.extensions().get::<Tags>() {
        state.metrics.observe_request(
            &tags.release,
            &tags.type_name,
            method_label(&method),
            resp.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
        if state.usage.enabled() {
            let caller = resp.extensions().get::<Caller>();
            record_usage(state, tags, caller, authorization.as_ref(), resp.status()).await;
        }
    }
    resp
}

/// Count the request in the usage of the release it was served in (or named), if the schema
/// set has that release; the caller is the token's name, or anonymous when it has none or the
/// request was refused for want of a valid one. The name is the one the route's
/// authentication found (`caller`); only routes that authenticate on their own (the CouchDB
/// protocol's) have their token looked up here.
async fn record_usage<B: Backend + 'static>(
    state: &AppState<B>,
    tags: &Tags,
    caller: Option<&Caller>,
    authorization: Option<&HeaderValue>,
    status: StatusCode,
) {
    if tags.release.is_empty() || &*tags.release == OTHER_LABEL {
        return;
    }
    let looked_up;
    let token: Option<&str> = match (caller, authorization.and_then(|v| v.to_str().ok())) {
        _ if status == StatusCode::UNAUTHORIZED => None,
        (Some(Caller(name)), _) => Some(&**name),
        (None, Some(value)) => {
            let token = auth::bearer(value)
                .map(str::to_owned)
                .or_else(|| crate::couch::proto::basic_password(value));
            looked_up = match token {
                // Cached for a few seconds: the request's own authentication has just put it
                // there, so this costs a hash and a lookup.
                Some(t) => state.principal(&t).await.ok().flatten().map(|p| p.name),
                None => None,
            };
            looked_up.as_deref()
        }
        (None, None) => None,
    };
    let type_name = if &*tags.type_name == OTHER_LABEL {
        ""
    } else {
        &tags.type_name
    };
    state
        .usage
        .record(&tags.release, type_name, token, crate::app::unix_now());
}

/// `run` bounded by the whole-request timeout, counted from `started` (503 `timeout`),
/// except on the changes feeds, which bound their own waiting (`timeout`, at most five
/// minutes; `waitMs`, at most a minute).
async fn within_request_timeout<B: Backend + 'static>(
    state: &AppState<B>,
    path: &str,
    started: Instant,
    run: impl Future<Output = Response>,
) -> Response {
    if matches!(path, "/changes" | "/replication/changes") {
        return run.await;
    }
    // Most answers are ready at the first poll (a read of redb never waits): only one that
    // has to wait is given a timer, so the others pay for no timer entry at all.
    let mut run = std::pin::pin!(run);
    if let Poll::Ready(done) = std::future::poll_fn(|cx| Poll::Ready(run.as_mut().poll(cx))).await {
        return done;
    }
    // A timeout too far away to be an instant is no timeout.
    let Some(deadline) = started.checked_add(state.config.request_timeout) else {
        return run.await;
    };
    match tokio::time::timeout_at(deadline.into(), run).await {
        Ok(r) => r,
        Err(_) => Problem::new(
            503,
            "timeout",
            "Request timed out",
            format!(
                "the request took longer than {} s",
                state.config.request_timeout.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

/// The largest body the route of `path` takes: `/replication/apply` has its own, larger limit
/// (a batch is many documents); every other route the server's. The one place that says
/// which route takes how much.
pub fn body_limit<B: Backend + 'static>(state: &AppState<B>, path: &str) -> usize {
    if path == "/replication/apply" {
        state.replication.body_limit
    } else {
        state.config.body_limit
    }
}

/// What the edge refuses before routing, from the request head alone: a request target over
/// [`MAX_URI_BYTES`] (414), more than [`MAX_HEADERS`] fields or [`MAX_HEADER_BYTES`] of them
/// (431), a [`SINGLETON_HEADERS`] header given twice (400), a `Content-Length` over the
/// route's [`body_limit`] (413, before a byte of the body is read). What passes gets its body
/// guarded: cut off past the limit (a chunked body announces no length) and after
/// [`crate::ServerConfig::body_timeout`] without a byte; the guard records which, so the
/// answer says so whatever the handler made of the cut.
///
/// Hyper refuses what is far past these limits itself, with an empty body (see
/// `SECURITY.md`): its own limits are set above ours so that ordinary excess reaches here.
fn admit<B: Backend + 'static>(
    state: &AppState<B>,
    req: Request,
) -> Result<(Request, Option<FaultSlot>), Problem> {
    let uri = req.uri();
    let target = uri.path_and_query().map_or(0, |pq| pq.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if target > MAX_URI_BYTES {
        return Err(Problem::new(
            414,
            "uri-too-long",
            "Request target too long",
            format!(
                "the request target is {target} bytes; this server takes at most {MAX_URI_BYTES}"
            ),
        )
        .with("limit", MAX_URI_BYTES));
    }
    let headers = req.headers();
    let too_large = |detail: String, limit: usize| {
        Problem::new(
            431,
            "headers-too-large",
            "Request header fields too large",
            detail,
        )
        .with("limit", limit)
    };
    if headers.len() > MAX_HEADERS {
        return Err(too_large(
            format!(
                "the request has {} header fields; this server takes at most {MAX_HEADERS}",
                headers.len()
            ),
            MAX_HEADERS,
        ));
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(too_large(
            format!(
                "the request's header fields take {header_bytes} bytes; this server takes at most {MAX_HEADER_BYTES}"
            ),
            MAX_HEADER_BYTES,
        ));
    }
    // A map with as many names as fields has no name twice: the common request skips the
    // lookups. Names, not strings, otherwise: a `&str` lookup would parse the name each time.
    if headers.keys_len() != headers.len() {
        for name in &SINGLETON_HEADERS {
            let n = headers.get_all(name).iter().count();
            if n > 1 {
                return Err(Problem::new(
                    400,
                    "duplicate-header",
                    "Duplicate header",
                    format!(
                        "the request carries the {name} header {n} times; it may carry it once"
                    ),
                )
                .with("header", name.as_str()));
            }
        }
    }
    let limit = body_limit(state, uri.path());
    // Hyper has checked that a Content-Length is one number (else it answered 400 itself).
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = announced {
        if len > u64::try_from(limit).unwrap_or(u64::MAX) {
            return Err(BodyFault::TooLarge { limit }
                .problem()
                .with("contentLength", len));
        }
    }
    if req.body().is_end_stream() {
        return Ok((req, None));
    }
    let fault = Arc::new(OnceLock::new());
    let guard = Arc::clone(&fault);
    let idle = state.config.body_timeout;
    let req = req.map(move |body| {
        Body::new(Guarded {
            inner: body,
            limit,
            read: 0,
            idle,
            stall: None,
            fault: guard,
        })
    });
    Ok((req, Some(fault)))
}

/// Where a body's guard records why it cut the body off, for the edge to answer.
type FaultSlot = Arc<OnceLock<BodyFault>>;

/// Why the edge's guard cut a request body off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum BodyFault {
    /// More bytes than the route takes.
    #[error("the request body is larger than this endpoint's limit of {limit} bytes")]
    TooLarge {
        /// The route's limit.
        limit: usize,
    },
    /// No byte for the body read timeout.
    #[error("no byte of the request body arrived for {} s", .idle.as_secs_f64())]
    Stalled {
        /// The body read timeout.
        idle: Duration,
    },
}

impl BodyFault {
    /// 413 `body-too-large` or 408 `body-timeout`. Either way the rest of the body will not
    /// be read, so the connection cannot carry another request: it is closed.
    fn problem(self) -> Problem {
        let p = match self {
            BodyFault::TooLarge { limit } => Problem::new(
                413,
                "body-too-large",
                "Request body too large",
                self.to_string(),
            )
            .with("limit", limit),
            BodyFault::Stalled { .. } => Problem::new(
                408,
                "body-timeout",
                "Request body timed out",
                self.to_string(),
            ),
        };
        p.with_header("connection", "close")
    }
}

/// A request body that fails once it passes `limit` bytes or goes `idle` without a frame,
/// recording why in `fault` for the edge.
struct Guarded {
    inner: Body,
    limit: usize,
    read: usize,
    idle: Duration,
    /// Started at the first read that has to wait, reset by every frame: a handler that
    /// reads the body late (after the store answered) is not charged for its own work.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    fault: FaultSlot,
}

impl Guarded {
    fn fail(&self, fault: BodyFault) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        // The first fault is the one that happened; a later poll cannot change it.
        let _ = self.fault.set(fault);
        Poll::Ready(Some(Err(axum::Error::new(fault))))
    }
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        // Every field is `Unpin` (the timer is boxed).
        let this = self.get_mut();
        if let Some(fault) = this.fault.get() {
            return Poll::Ready(Some(Err(axum::Error::new(*fault))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.read = this.read.saturating_add(data.len());
                    if this.read > this.limit {
                        return this.fail(BodyFault::TooLarge { limit: this.limit });
                    }
                }
                if let Some(stall) = &mut this.stall {
                    stall
                        .as_mut()
                        .reset(tokio::time::Instant::now() + this.idle);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match stall.as_mut().poll(cx) {
                    Poll::Ready(()) => this.fail(BodyFault::Stalled { idle }),
                    Poll::Pending => Poll::Pending,
                }
            }
            done => done,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The method as a metrics label: one of [`METHOD_LABELS`], else `other` (a client may send
/// any token as a method; each would otherwise be a new series).
fn method_label(method: &Method) -> &'static str {
    METHOD_LABELS
        .iter()
        .find(|m| **m == method.as_str())
        .copied()
        .unwrap_or(OTHER_LABEL)
}

/// The release (header, else `?release=`) and document type a request named, closed over
/// the schema set: a name it knows is its own label, any other name is `other`, none is
/// `""`. This is the one place request-derived labels are made (the method's is
/// [`method_label`]; handlers tag with names the set resolved), so what a client sends can
/// never add a series beyond the set's releases and types.
fn request_tags<B: Backend + 'static>(
    state: &AppState<B>,
    uri: &axum::http::Uri,
    named_release: Option<&HeaderValue>,
) -> Tags {
    let store = state.store();
    let set = store.schema_set();
    // Percent-decoded as the handlers' `Query` decodes it: `?release=%35` is served as
    // release 5, and counted under it.
    let query_release = || {
        uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "release")
                .map(|(_, v)| v)
        })
    };
    let release = match named_release {
        // Not text: named, and no release of any set.
        Some(v) => Some(std::borrow::Cow::Borrowed(
            v.to_str().map_or(OTHER_LABEL, str::trim),
        )),
        None => query_release(),
    };
    let release: Arc<str> = match release.as_deref() {
        None | Some("") => "".into(),
        Some(r) if set.release(r).is_some() => r.into(),
        Some(_) => OTHER_LABEL.into(),
    };
    let type_name: Arc<str> = match uri
        .path()
        .strip_prefix("/docs/")
        .and_then(|rest| rest.split('/').next())
    {
        None | Some("") => "".into(),
        Some(t) if set.type_def(t).is_ok() => t.into(),
        Some(_) => OTHER_LABEL.into(),
    };
    Tags { release, type_name }
}

/// Write the body of a handler's [`Problem`], or convert an error response made below the
/// handlers (axum's rejections: a 405, a body over the limit, a bad path) into one. The
/// request's id is in the body as `requestId`, so a client reporting a failure can quote it.
async fn problem_body(resp: Response, path: &str, request_id: Option<&HeaderValue>) -> Response {
    let problem_json = |p: &Problem| {
        let mut body = p.body(path);
        if let (Some(id), Some(members)) = (
            request_id.and_then(|v| v.to_str().ok()),
            body.as_object_mut(),
        ) {
            members.insert("requestId".into(), Value::String(id.to_owned()));
        }
        Body::from(body.to_string())
    };
    if let Some(p) = resp.extensions().get::<Problem>().cloned() {
        let (mut parts, _) = resp.into_parts();
        parts.extensions.remove::<Problem>();
        // The router set the length of the body replaced here.
        parts.headers.remove(axum::http::header::CONTENT_LENGTH);
        return Response::from_parts(parts, problem_json(&p));
    }
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_problem = resp
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let detail = axum::body::to_bytes(body, REJECTION_BODY_LIMIT)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let p = Problem::for_status(status.as_u16(), &detail);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, problem_json(&p))
}

/// A header's value as text, if present and readable.
pub fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The token check of every route that needs one, before its handler runs and so before a
/// byte of the body is read: a client without a valid token is answered 401 at once, and
/// cannot hold the connection by sending its body slowly. (The role is the handler's to
/// check, with [`require`].)
async fn authenticated<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    req: Request,
    next: Next,
) -> Response {
    match authenticate(&state, req.headers()).await {
        Ok(who) => {
            // Found once here: the handler takes it from the request ([`caller`]) and the
            // edge from the answer (usage per token), neither hashing the token again.
            let name = Arc::clone(&who.name);
            let mut req = req;
            req.extensions_mut().insert(Authenticated(who));
            let mut resp = next.run(req).await;
            resp.extensions_mut().insert(Caller(name));
            resp
        }
        Err(p) => p.into_response(),
    }
}

/// The caller, who must hold at least `role`: the principal the route's authentication
/// found ([`Authenticated`], on every route behind `authenticated`), or, where there is
/// none, the request's token looked up as [`require`] does.
pub async fn caller<B: Backend + 'static>(
    state: &AppState<B>,
    found: Option<&Authenticated>,
    headers: &HeaderMap,
    role: Role,
) -> Result<Principal, Problem> {
    match found {
        Some(Authenticated(who)) => who.clone().at_least(role),
        None => require(state, headers, role).await,
    }
}

/// The caller, who must hold at least `role`. 401 without a (known) token, 403 below the role.
pub async fn require<B: Backend + 'static>(
    state: &AppState<B>,
    headers: &HeaderMap,
    role: Role,
) -> Result<Principal, Problem> {
    let p = authenticate(state, headers).await?;
    p.at_least(role)
}

/// Who holds the request's bearer token: 401 without a (known) token.
pub async fn authenticate<B: Backend + 'static>(
    state: &AppState<B>,
    headers: &HeaderMap,
) -> Result<Principal, Problem> {
    let unauthenticated = |detail: &str| {
        Problem::new(401, "unauthenticated", "Unauthenticated", detail)
            .with_header("www-authenticate", "Bearer realm=\"mutatis\"")
    };
    let Some(value) = header(headers, "authorization") else {
        return Err(unauthenticated(
            "this endpoint needs a bearer token: `Authorization: Bearer mutatis_…`",
        ));
    };
    let Some(token) = auth::bearer(value) else {
        return Err(unauthenticated(
            "the Authorization header is not `Bearer <token>`",
        ));
    };
    let Some(p) = state.principal(token).await? else {
        return Err(unauthenticated("the token is unknown or was revoked"));
    };
    Ok(p)
}

/// The client's announcement from its headers and `?release=`, checked against `set` (the
/// types and versions `Mutatis-Versions` names must be the set's). A header value that is
/// not visible ASCII names nothing a schema set can hold and is refused, never read as
/// absent (which would serve the default release).
pub fn announce(
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    set: &mutatis_schema::SchemaSet,
) -> Result<Announce, Problem> {
    Announce::read(
        headers.get("mutatis-release").map(HeaderValue::as_bytes),
        query.get("release").map(String::as_str),
        headers.get("mutatis-versions").map(HeaderValue::as_bytes),
        set,
    )
}

/// Check the body's media type (parameters such as `charset` are ignored).
pub fn require_media_type(headers: &HeaderMap, expected: &str) -> Result<(), Problem> {
    let got = header(headers, "content-type");
    let essence = got
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if essence == expected {
        Ok(())
    } else {
        Err(Problem::unsupported_media_type(got, expected))
    }
}

/// Parse a JSON body (after the media type check).
pub fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, Problem> {
    require_media_type(headers, "application/json")?;
    parse_json(body)
}

/// Parse a JSON request body as mutatis reads every document: each number exactly, or the
/// request is refused naming it (see [`mutatis_lens::json`]).
pub fn parse_json(body: &[u8]) -> Result<Value, Problem> {
    mutatis_lens::json::from_slice(body).map_err(|e| Problem::json(&e))
}

/// A JSON response.
pub fn json_response(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// A JSON response whose body is already serialised (a document as the store reads it), its
/// headers written into `map` (emptied first), with room for `room` header fields in all
/// (its `Content-Type` and what it gathers on its way out).
///
/// `map` is the request's, read and done with: its allocation carries the answer's headers.
/// Hyper keeps an answer's emptied map for the next request on the connection, so a
/// connection's reads go on with one map and allocate none; a new map for each answer would
/// cost an allocation and, for a map of more than six fields (twelve slots, over a kilobyte),
/// a trip through the shared heap past the allocator's per-thread cache.
pub fn json_bytes_response(
    status: StatusCode,
    body: Vec<u8>,
    mut map: HeaderMap,
    room: usize,
) -> Response {
    map.clear();
    // Exactly the room needed: the map never grows (a rehash each time).
    map.reserve(room);
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = map;
    resp
}

/// The header fields the edge adds to every answer about a document: `Vary` and the request
/// id.
pub const EDGE_DOCUMENT_HEADERS: usize = 2;

/// Add the negotiation headers (`Mutatis-Release`, `Mutatis-Versions`, deprecation) and the
/// metrics tags for `type_name` served as `served`, as built for the schema set served now.
pub fn negotiated<B: Backend + 'static>(
    state: &AppState<B>,
    resp: Response,
    type_name: &str,
    served: &Served,
) -> Response {
    state.negotiated_headers().apply(resp, type_name, served)
}

/// A query parameter parsed as a number in `1..=max` (default when absent).
pub fn limit_param(
    query: &HashMap<String, String>,
    default: usize,
    max: usize,
) -> Result<usize, Problem> {
    match query.get("limit") {
        None => Ok(default),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(Problem::bad_request(format!(
                "limit={s}: expected a whole number from 1 to {max}"
            ))
            .with("parameter", "limit")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_labels_only_from_a_closed_set() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for made_up in ["MFOOBAR", "get", "PROPFIND", "TRACE", "CONNECT"] {
            let m = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&m), OTHER_LABEL, "{made_up}");
        }
    }

    fn guarded(body: Body, limit: usize, idle: Duration) -> (Body, FaultSlot) {
        let fault = FaultSlot::default();
        let body = Body::new(Guarded {
            inner: body,
            limit,
            read: 0,
            idle,
            stall: None,
            fault: Arc::clone(&fault),
        });
        (body, fault)
    }

    #[tokio::test]
    async fn a_guarded_body_is_cut_off_past_its_limit() {
        let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 100])));
        let stream = futures_util::stream::iter(chunks);
        let (body, fault) = guarded(Body::from_stream(stream), 950, Duration::from_secs(5));
        assert!(axum::body::to_bytes(body, usize::MAX).await.is_err());
        assert_eq!(fault.get(), Some(&BodyFault::TooLarge { limit: 950 }));
        let p = BodyFault::TooLarge { limit: 950 }.problem();
        assert_eq!((p.status, p.name()), (413, "body-too-large"));
        assert_eq!(p.extensions["limit"], 950);

        // At the limit exactly, it is whole.
        let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 100])));
        let stream = futures_util::stream::iter(chunks);
        let (body, fault) = guarded(Body::from_stream(stream), 1000, Duration::from_secs(5));
        assert_eq!(
            axum::body::to_bytes(body, usize::MAX).await.unwrap().len(),
            1000
        );
        assert_eq!(fault.get(), None);
    }

    #[tokio::test]
    async fn a_guarded_body_that_stalls_times_out() {
        let first = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from("{"))]);
        let stream = futures_util::StreamExt::chain(first, futures_util::stream::pending());
        let idle = Duration::from_millis(50);
        let (body, fault) = guarded(Body::from_stream(stream), 1000, idle);
        assert!(axum::body::to_bytes(body, usize::MAX).await.is_err());
        assert_eq!(fault.get(), Some(&BodyFault::Stalled { idle }));
        let p = BodyFault::Stalled { idle }.problem();
        assert_eq!((p.status, p.name()), (408, "body-timeout"));
        assert!(p.headers.contains(&("connection", "close".to_owned())));
    }

    #[test]
    fn limits_are_bounded() {
        let q = |v: &str| HashMap::from([("limit".to_owned(), v.to_owned())]);
        assert_eq!(limit_param(&HashMap::new(), 100, 1000).ok(), Some(100));
        assert_eq!(limit_param(&q("1000"), 100, 1000).ok(), Some(1000));
        assert!(limit_param(&q("0"), 100, 1000).is_err());
        assert!(limit_param(&q("1001"), 100, 1000).is_err());
        assert!(limit_param(&q("ten"), 100, 1000).is_err());
    }

    #[test]
    fn media_types_ignore_parameters_and_case() {
        let mut h = HeaderMap::new();
        assert_eq!(
            require_media_type(&h, "application/json").map_err(|p| p.status),
            Err(415)
        );
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        assert!(require_media_type(&h, "application/json").is_ok());
        assert!(require_media_type(&h, "application/json-patch+json").is_err());
        let p = json_body(&h, b"{\"a\": }").unwrap_err();
        assert_eq!(p.name(), "malformed-json");
    }

    #[test]
    fn negotiated_responses_carry_release_versions_and_deprecation() {
        let served = Served {
            release: Some("3".into()),
            version: 3,
            deprecated: Some(crate::negotiate::Deprecated {
                sunset: Some("2026-09-01".into()),
                since: Some("2026-03-01".into()),
            }),
        };
        let cache = NegotiatedHeaders::default();
        let r = cache.apply(
            json_response(StatusCode::OK, &Value::Null),
            "Student",
            &served,
        );
        let h = r.headers();
        assert_eq!(h["mutatis-release"], "3");
        assert_eq!(h["mutatis-versions"], "Student=3");
        assert_eq!(h["deprecation"], "@1772323200");
        assert_eq!(h["sunset"], "Tue, 01 Sep 2026 00:00:00 GMT");
        assert_eq!(h["link"], crate::headers::DEPRECATION_LINK);
        let plain = Served {
            release: None,
            version: 5,
            deprecated: None,
        };
        let r = cache.apply(
            json_response(StatusCode::OK, &Value::Null),
            "Student",
            &plain,
        );
        assert!(r.headers().get("mutatis-release").is_none());
        assert!(r.headers().get("deprecation").is_none());
        assert_eq!(r.headers()["mutatis-versions"], "Student=5");
        // Built once per (type, served version): a second answer shares them.
        let again = cache.apply(
            json_response(StatusCode::OK, &Value::Null),
            "Student",
            &served,
        );
        assert_eq!(again.headers()["sunset"], "Tue, 01 Sep 2026 00:00:00 GMT");
        assert_eq!(again.headers()["mutatis-release"], "3");
        let tags = again.extensions().get::<Tags>().unwrap();
        assert_eq!((&*tags.release, &*tags.type_name), ("3", "Student"));
        assert_eq!(cache.by_type.read().unwrap()["Student"].len(), 2);
    }
}
