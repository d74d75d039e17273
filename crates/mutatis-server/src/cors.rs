//! CORS (the Fetch standard's cross-origin resource sharing), so that a browser app served
//! from another origin can call the API (`mutatis serve --cors-origin ORIGIN`).
//!
//! Off unless configured: without a [`CorsConfig`] no response carries an
//! `Access-Control-*` header, and a browser keeps its same-origin rule. When configured, the
//! layer is the outermost one of the router ([`apply`]), so every answer carries the headers:
//! documents, problems from the edge, 401s from authentication, 404s for unknown paths. A
//! preflight (`OPTIONS`) is answered by the layer itself, before the edge and before
//! authentication: a browser sends it without credentials, and it must not be refused for
//! lacking them.
//!
//! The rules are tower-http's [`CorsLayer`]; this module decides what they are, and checks the
//! origins an operator gives, since a typo (a path, a trailing slash) would otherwise silently
//! never match the `Origin` a browser sends.

use std::time::Duration;

use std::convert::Infallible;

use axum::extract::Request;
use axum::http::header::{HeaderName, HeaderValue};
use axum::http::Method;
use axum::response::Response;
use tower_http::cors::{AllowCredentials, AllowOrigin, Cors, CorsLayer};

use crate::one_of::OneOf;

/// The request headers a browser app may send: the API's negotiation and concurrency
/// headers, the token, a request id of the app's own, and what `fetch`, `EventSource` and
/// PouchDB set.
pub const ALLOWED_HEADERS: [&str; 10] = [
    "authorization",
    "content-type",
    "accept",
    "if-match",
    "if-none-match",
    "last-event-id",
    "mutatis-release",
    "mutatis-versions",
    "mutatis-access",
    "x-request-id",
];

/// The response headers a browser app may read (the CORS-safelisted ones, such as
/// `Content-Type`, are readable anyway). Listed one by one: a wildcard is not allowed with
/// credentials, and a list says what the API promises.
pub const EXPOSED_HEADERS: [&str; 11] = [
    "etag",
    "location",
    "deprecation",
    "sunset",
    "link",
    "retry-after",
    "www-authenticate",
    "mutatis-release",
    "mutatis-versions",
    "mutatis-access",
    "x-request-id",
];

/// The methods the API routes take.
pub const ALLOWED_METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

/// Which origins may call the server from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Any origin (`*`), without credentials: the Fetch standard forbids credentials with a
    /// wildcard. A token in `Authorization` set by the app's own code still goes through
    /// (the header is allowed); cookies and HTTP authentication the browser adds do not.
    Any,
    /// These origins exactly (`scheme://host[:port]`, as browsers send them), with
    /// credentials.
    List(Vec<HeaderValue>),
}

/// The CORS settings of a server ([`crate::ServerConfig::cors`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsConfig {
    /// Who may call.
    pub origins: AllowedOrigins,
    /// How long a browser may cache a preflight's answer (`Access-Control-Max-Age`); `None`:
    /// the browser's default (5 s in Chromium and Firefox).
    pub max_age: Option<Duration>,
}

/// Why a CORS setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorsError {
    /// No origin given.
    #[error("no CORS origin given")]
    NoOrigins,
    /// `*` together with named origins: one of them would be ignored.
    #[error("the CORS origin `*` allows every origin; give it alone, not with {0:?}")]
    WildcardAndList(String),
    /// Not `scheme://host[:port]`.
    #[error("the CORS origin {origin:?} is not an origin ({why}); expected scheme://host[:port], e.g. https://app.example.com")]
    BadOrigin {
        /// As given.
        origin: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

impl CorsConfig {
    /// The settings for `origins` as given on the command line (each an origin, or `*`
    /// alone). Origins are compared by browsers' serialisation: the scheme and host in lower
    /// case, no path, no trailing slash (refused rather than silently never matching).
    pub fn new(origins: &[String], max_age: Option<Duration>) -> Result<CorsConfig, CorsError> {
        if origins.is_empty() {
            return Err(CorsError::NoOrigins);
        }
        if origins.iter().any(|o| o.trim() == "*") {
            if let Some(other) = origins.iter().find(|o| o.trim() != "*") {
                return Err(CorsError::WildcardAndList(other.clone()));
            }
            return Ok(CorsConfig {
                origins: AllowedOrigins::Any,
                max_age,
            });
        }
        let mut list = Vec::with_capacity(origins.len());
        for o in origins {
            let v = normalise_origin(o)?;
            if !list.contains(&v) {
                list.push(v);
            }
        }
        Ok(CorsConfig {
            origins: AllowedOrigins::List(list),
            max_age,
        })
    }

    /// The tower-http layer for these settings.
    pub fn layer(&self) -> CorsLayer {
        let layer = CorsLayer::new()
            .allow_methods(ALLOWED_METHODS)
            .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
            .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static));
        let layer = match self.max_age {
            Some(age) => layer.max_age(age),
            None => layer,
        };
        match &self.origins {
            // Never with credentials: tower-http refuses (panics on) that combination, as
            // the standard does.
            AllowedOrigins::Any => layer.allow_origin(AllowOrigin::any()),
            AllowedOrigins::List(list) => {
                let allowed = list.clone();
                layer
                    .allow_origin(AllowOrigin::list(list.iter().cloned()))
                    // Only to an allowed origin: another one learns nothing from the answer.
                    .allow_credentials(AllowCredentials::predicate(move |origin, _| {
                        allowed.contains(origin)
                    }))
            }
        }
    }
}

/// `service` with the CORS layer outermost when `config` is given, else as it is (no CORS
/// header at all). Called last in [`crate::http::app`], so the layer wraps the edge.
pub fn apply<S>(service: S, config: Option<&CorsConfig>) -> OneOf<Cors<S>, S>
where
    S: tower_service::Service<Request, Response = Response, Error = Infallible>,
{
    match config {
        Some(c) => OneOf::First(tower_layer::Layer::layer(&c.layer(), service)),
        None => OneOf::Second(service),
    }
}

/// `origin` as browsers serialise it in the `Origin` header.
fn normalise_origin(origin: &str) -> Result<HeaderValue, CorsError> {
    let bad = |why| CorsError::BadOrigin {
        origin: origin.to_owned(),
        why,
    };
    let o = origin.trim();
    let (scheme, rest) = o.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(bad("the scheme is not http or https"));
    }
    if rest.is_empty() {
        return Err(bad("no host"));
    }
    if rest.contains(['/', '?', '#']) {
        return Err(bad("an origin has no path, query or trailing slash"));
    }
    if rest.contains('@') {
        return Err(bad("an origin has no user information"));
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
    {
        return Err(bad(
            "the host has characters a browser would have encoded (use the punycode form)",
        ));
    }
    let text = format!("{scheme}://{}", rest.to_ascii_lowercase());
    HeaderValue::from_str(&text).map_err(|_| bad("not a header value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_and_normalised() {
        let c = CorsConfig::new(&["HTTPS://App.Example.com:8443".into()], None).unwrap();
        assert_eq!(
            c.origins,
            AllowedOrigins::List(vec![HeaderValue::from_static(
                "https://app.example.com:8443"
            )])
        );
        for bad in [
            "app.example.com",
            "ftp://x",
            "https://x/",
            "https://x/app",
            "https://u@x",
            "https://",
            "https://bücher.de",
        ] {
            assert!(
                matches!(
                    CorsConfig::new(&[bad.into()], None),
                    Err(CorsError::BadOrigin { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(CorsConfig::new(&[], None), Err(CorsError::NoOrigins));
        assert!(matches!(
            CorsConfig::new(&["*".into(), "https://x".into()], None),
            Err(CorsError::WildcardAndList(_))
        ));
        let any = CorsConfig::new(&["*".into()], Some(Duration::from_secs(60))).unwrap();
        assert_eq!(any.origins, AllowedOrigins::Any);
    }

    #[tokio::test]
    async fn layers_build_for_both_kinds_without_panicking() {
        use axum::routing::get;
        // tower-http checks its rules when the service is first polled: serve one request
        // through each kind of layer.
        for origins in [vec!["*".to_owned()], vec!["http://a.test".to_owned()]] {
            let c = CorsConfig::new(&origins, Some(Duration::from_secs(5))).unwrap();
            let app = apply(
                axum::Router::new().route("/", get(|| async { "ok" })),
                Some(&c),
            );
            let req = axum::http::Request::builder()
                .uri("/")
                .header("origin", "http://a.test")
                .body(axum::body::Body::empty())
                .unwrap();
            let resp = tower::ServiceExt::oneshot(app, req).await.unwrap();
            let h = resp.headers();
            assert!(h.contains_key("access-control-allow-origin"), "{origins:?}");
            assert_eq!(
                h.contains_key("access-control-allow-credentials"),
                origins[0] != "*"
            );
        }
    }
}
