//! The HTTP edge: the router, the layer that turns every error into problem+json (axum's own
//! rejections included) and records metrics, and the response helpers the handlers share.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use mutatis_store::Backend;
use serde_json::Value;
use tower_http::catch_panic::CatchPanicLayer;

use crate::app::AppState;
use crate::auth::{self, Principal, Role};
use crate::headers::{self, DEPRECATION_LINK};
use crate::negotiate::{Announce, Served};
use crate::problem::{Problem, PROBLEM_JSON};
use crate::{admin, conflicts, docs, feed, jobs, meta, replication, webhooks};

/// Error bodies produced below the handlers are read up to this size for their detail.
const REJECTION_BODY_LIMIT: usize = 4096;

/// What a response reports to the metrics (release and type served).
#[derive(Debug, Clone, Default)]
pub struct Tags {
    /// The release served (`""` if none).
    pub release: String,
    /// The document type (`""` for other routes).
    pub type_name: String,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, [(CONTENT_TYPE, PROBLEM_JSON)]).into_response();
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                resp.headers_mut().append(HeaderName::from_static(name), v);
            }
        }
        // The body is written by the edge layer, which knows the request path (`instance`).
        resp.extensions_mut().insert(self);
        resp
    }
}

/// The router over `state`.
pub fn router<B: Backend + 'static>(state: Arc<AppState<B>>) -> Router {
    let limit = state.config.body_limit;
    Router::new()
        .route("/health", get(meta::health::<B>))
        .route("/meta", get(meta::meta::<B>))
        .route("/schema", get(meta::schema::<B>))
        .route("/openapi.json", get(meta::openapi::<B>))
        .route("/metrics", get(meta::metrics::<B>))
        .route("/compatibility", post(meta::compatibility::<B>))
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
        .route(
            "/replication/apply",
            // A batch is many documents: its own, larger limit (this layer is inner, so it
            // overrides the router's).
            post(replication::apply::<B>)
                .layer(DefaultBodyLimit::max(state.replication.body_limit)),
        )
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
        .route("/admin/reload", post(admin::reload::<B>))
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
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(limit))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                tracing::error!("a request handler panicked");
                Problem::internal().into_response()
            },
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            edge::<B>,
        ))
        .with_state(state)
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

/// Timeout, problem bodies and metrics around every request.
async fn edge<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    // Cheap clones (shared bytes), not copies: this runs on every request.
    let uri = req.uri().clone();
    let method = req.method().clone();
    let named_release = req.headers().get("mutatis-release").cloned();
    // The changes feeds bound their own waiting (`timeout`, at most five minutes; `waitMs`,
    // at most a minute).
    let resp = if matches!(uri.path(), "/changes" | "/replication/changes") {
        next.run(req).await
    } else {
        match tokio::time::timeout(state.config.request_timeout, next.run(req)).await {
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
    };
    let resp = problem_body(resp, uri.path()).await;
    // A response its handler did not tag (an error before or after negotiation) counts under
    // the release and type the request named, if this set knows them.
    let tags = match resp.extensions().get::<Tags>() {
        Some(t) => t.clone(),
        None => request_tags(&state, &uri, named_release.as_ref()),
    };
    state.metrics.observe_request(
        &tags.release,
        &tags.type_name,
        method.as_str(),
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// The release (header, else `?release=`) and document type a request named, as far as the
/// schema set knows them (unknown names are not labels: a client could otherwise grow the
/// metrics' series at will).
fn request_tags<B: Backend + 'static>(
    state: &AppState<B>,
    uri: &axum::http::Uri,
    named_release: Option<&HeaderValue>,
) -> Tags {
    let store = state.store();
    let set = store.schema_set();
    let query_release = uri.query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "release")
            .map(|(_, v)| v.to_owned())
    });
    let release = named_release
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .or(query_release)
        .filter(|r| set.release(r).is_some())
        .unwrap_or_default();
    let type_name = uri
        .path()
        .strip_prefix("/docs/")
        .and_then(|rest| rest.split('/').next())
        .filter(|t| set.type_def(t).is_ok())
        .unwrap_or_default()
        .to_owned();
    Tags { release, type_name }
}

/// Write the body of a handler's [`Problem`], or convert an error response made below the
/// handlers (axum's rejections: a 405, a body over the limit, a bad path) into one.
async fn problem_body(resp: Response, path: &str) -> Response {
    if let Some(p) = resp.extensions().get::<Problem>().cloned() {
        let (mut parts, _) = resp.into_parts();
        parts.extensions.remove::<Problem>();
        return Response::from_parts(parts, Body::from(p.body(path).to_string()));
    }
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
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
    Response::from_parts(parts, Body::from(p.body(path).to_string()))
}

/// A header's value as text, if present and readable.
pub fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The caller, who must hold at least `role`. 401 without a (known) token, 403 below the role.
pub async fn require<B: Backend + 'static>(
    state: &AppState<B>,
    headers: &HeaderMap,
    role: Role,
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
    if p.role < role {
        return Err(Problem::new(
            403,
            "forbidden",
            "Forbidden",
            format!(
                "this needs the {role} role; token {:?} has the {} role",
                p.name, p.role
            ),
        )
        .with("required", role.as_str())
        .with("role", p.role.as_str()));
    }
    Ok(p)
}

/// The client's announcement from its headers and `?release=`.
pub fn announce(headers: &HeaderMap, query: &HashMap<String, String>) -> Result<Announce, Problem> {
    Announce::parse(
        header(headers, "mutatis-release"),
        query.get("release").map(String::as_str),
        header(headers, "mutatis-versions"),
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
    serde_json::from_slice(body).map_err(|e| Problem::malformed_json(&e))
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

/// Add the negotiation headers (`Mutatis-Release`, `Mutatis-Versions`, deprecation) and the
/// metrics tags for `type_name` served as `served`.
pub fn negotiated(mut resp: Response, type_name: &str, served: &Served) -> Response {
    let h = resp.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    if let Some(r) = &served.release {
        set("mutatis-release", r.clone());
    }
    set(
        "mutatis-versions",
        headers::format_versions([(type_name, served.version)]),
    );
    if let Some(d) = &served.deprecated {
        set(
            "deprecation",
            headers::deprecation_header(d.since.as_deref().and_then(headers::date_to_unix)),
        );
        if let Some(s) = d.sunset.as_deref().and_then(headers::sunset_header) {
            set("sunset", s);
        }
        set("link", DEPRECATION_LINK.to_owned());
    }
    resp.extensions_mut().insert(Tags {
        release: served.release.clone().unwrap_or_default(),
        type_name: type_name.to_owned(),
    });
    resp
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
        let r = negotiated(
            json_response(StatusCode::OK, &Value::Null),
            "Student",
            &served,
        );
        let h = r.headers();
        assert_eq!(h["mutatis-release"], "3");
        assert_eq!(h["mutatis-versions"], "Student=3");
        assert_eq!(h["deprecation"], "@1772323200");
        assert_eq!(h["sunset"], "Tue, 01 Sep 2026 00:00:00 GMT");
        assert_eq!(h["link"], DEPRECATION_LINK);
        let plain = Served {
            release: None,
            version: 5,
            deprecated: None,
        };
        let r = negotiated(
            json_response(StatusCode::OK, &Value::Null),
            "Student",
            &plain,
        );
        assert!(r.headers().get("mutatis-release").is_none());
        assert!(r.headers().get("deprecation").is_none());
    }
}
