//! Request ids and the request log line: every request has an `x-request-id` (a client's own,
//! when it is a valid one, else one made here: a UUID v4), echoed on the answer and in its
//! problem+json body (`requestId`), and one `INFO` line per answer in a `request` span naming
//! the id, method, path, release served, status and latency.
//!
//! Both are on every request's path, so both are cheap: the ids are one tower service
//! ([`RequestIdLayer`]) that draws no randomness per request (see [`RequestIdMaker`]), and the
//! log line's layer (tower-http's `TraceLayer`) is only in the stack when the log filter lets
//! `INFO` lines of this module through: with `RUST_LOG=warn` a request pays for no span.
//!
//! The path is logged without its query string: a query carries replication selectors and
//! list cursors, which are the caller's business, and on `/couch` a client library may put
//! credentials there.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Response};
use tower_http::trace::TraceLayer;
use tower_layer::Layer as _;
use tracing::Span;

use crate::http::Tags;
use crate::one_of::OneOf;

/// The header a request id travels in.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id kept from a client.
pub const MAX_REQUEST_ID: usize = 128;

/// Whether a client's request id is kept: 1 to [`MAX_REQUEST_ID`] letters, digits and
/// `-_.:/+=@` (a UUID, a W3C trace id, a load balancer's `Root=1-…`). Anything else — spaces,
/// quotes, control characters — would let a client write into the server's log lines as it
/// likes; it is replaced by an id of the server's.
pub fn valid_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(b))
}

/// `service` (the router with its edge) with request ids and, when the log filter lets its
/// `INFO` lines through, the request log (outermost first: the id kept or made and copied
/// onto the answer, then the span and log line). Which of the two is chosen once, here.
#[allow(clippy::type_complexity)]
pub fn around<S>(
    service: S,
) -> OneOf<
    RequestIds<S>,
    RequestIds<
        impl tower_service::Service<
                Request,
                Response = Response<Body>,
                Error = Infallible,
                Future: Send + 'static,
            > + Clone
            + Send
            + Sync
            + 'static,
    >,
>
where
    S: tower_service::Service<Request, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let ids = RequestIdLayer::new();
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request<Body>| {
            let id = req
                .headers()
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!(
                "request",
                id,
                method = %req.method(),
                path = req.uri().path(),
                release = tracing::field::Empty,
            )
        })
        .on_response(|resp: &Response<Body>, latency: Duration, span: &Span| {
            // The release the handler served (or the request named, closed over the set's
            // releases: see `http::request_tags`), recorded once known.
            if let Some(tags) = resp.extensions().get::<Tags>() {
                span.record("release", &*tags.release);
            }
            tracing::info!(
                status = resp.status().as_u16(),
                latency_ms = latency.as_secs_f64() * 1000.0,
                "answered"
            );
        })
        // The answered line above says the status, 5xx included; tower-http's own failure
        // line would say it twice.
        .on_failure(());
    // The log's body wrapper is a body like any other: the answer is axum's again.
    let traced = tower::ServiceExt::map_response(trace.layer(service.clone()), |r: Response<_>| {
        r.map(Body::new)
    });
    if tracing::enabled!(tracing::Level::INFO) {
        OneOf::Second(ids.layer(traced))
    } else {
        OneOf::First(ids.layer(service))
    }
}

/// Request ids of this process: UUIDs (version 4 in form) made of a random 128-bit value
/// drawn once and a counter, so making one is an addition and a format, not a system call for
/// fresh randomness on every request (`getrandom` was one syscall per request). Ids are unique
/// in the process (the counter is spread over the low 64 bits by an odd multiplier, a
/// bijection) and, by the random start, across processes; they name a request in logs and
/// problem bodies, and nothing relies on their being unpredictable.
#[derive(Debug)]
pub struct RequestIdMaker {
    start: u128,
    next: AtomicU64,
}

impl RequestIdMaker {
    /// A maker whose ids start at a random point (a fixed one if the system has no randomness
    /// to give, which only makes ids of different processes likelier to meet).
    pub fn new() -> RequestIdMaker {
        let mut seed = [0u8; 16];
        if getrandom::fill(&mut seed).is_err() {
            tracing::warn!("no randomness for request ids: they start at a fixed point");
        }
        RequestIdMaker {
            start: u128::from_le_bytes(seed),
            next: AtomicU64::new(0),
        }
    }

    /// The next id, as a header value.
    pub fn make(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // Odd multipliers: distinct counters give distinct low halves (the 2 bits the UUID
        // variant takes aside, until 2^62 ids); the high half changes too, so ids do not
        // share a long visible prefix.
        let spread = (u128::from(n.wrapping_mul(0xD1B5_4A32_D192_ED03)) << 64)
            | u128::from(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let bytes = self.start.wrapping_add(spread).to_be_bytes();
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = id.hyphenated().encode_lower(&mut text);
        // Lowercase hex and hyphens: always a valid header value.
        HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
}

impl Default for RequestIdMaker {
    fn default() -> Self {
        RequestIdMaker::new()
    }
}

/// The layer that gives every request an id ([`RequestIds`]).
#[derive(Debug, Clone)]
pub struct RequestIdLayer {
    maker: Arc<RequestIdMaker>,
}

impl RequestIdLayer {
    /// A layer with its own [`RequestIdMaker`].
    pub fn new() -> RequestIdLayer {
        RequestIdLayer {
            maker: Arc::new(RequestIdMaker::new()),
        }
    }
}

impl Default for RequestIdLayer {
    fn default() -> Self {
        RequestIdLayer::new()
    }
}

impl<S> tower_layer::Layer<S> for RequestIdLayer {
    type Service = RequestIds<S>;

    fn layer(&self, inner: S) -> RequestIds<S> {
        RequestIds {
            inner,
            maker: Arc::clone(&self.maker),
        }
    }
}

/// Keeps a client's valid `x-request-id` ([`valid_request_id`]; an invalid one, or more than
/// one, is dropped), else sets one of the server's, before `S` sees the request; copies it
/// onto the answer unless `S` set one there.
#[derive(Debug, Clone)]
pub struct RequestIds<S> {
    inner: S,
    maker: Arc<RequestIdMaker>,
}

impl<S, B> tower_service::Service<Request> for RequestIds<S>
where
    S: tower_service::Service<Request, Response = Response<B>, Error = Infallible>,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = WithRequestId<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let id = kept_request_id(&req).unwrap_or_else(|| {
            let made = self.maker.make();
            req.headers_mut().insert(REQUEST_ID, made.clone());
            made
        });
        WithRequestId {
            answer: self.inner.call(req),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`RequestIds`]' inner service, with the request's id copied onto it
    /// (not boxed: this is on every request's way).
    pub struct WithRequestId<F> {
        #[pin]
        answer: F,
        id: Option<HeaderValue>,
    }
}

impl<F, B> Future for WithRequestId<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
{
    type Output = Result<Response<B>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut resp) = std::task::ready!(this.answer.poll(cx));
        if let Some(id) = this.id.take() {
            if !resp.headers().contains_key(&REQUEST_ID) {
                resp.headers_mut().insert(REQUEST_ID, id);
            }
        }
        Poll::Ready(Ok(resp))
    }
}

/// The client's request id, if it sent exactly one and a valid one; anything else is removed
/// from `req`.
fn kept_request_id(req: &Request) -> Option<HeaderValue> {
    let mut given = req.headers().get_all(&REQUEST_ID).iter();
    match (given.next(), given.next()) {
        (None, _) => None,
        (Some(id), None) if valid_request_id(id.as_bytes()) => Some(id.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_bounded_request_ids_are_kept() {
        for ok in [
            "0b5e7c52-8f1f-4f7e-9d3c-1e1f2a3b4c5d",
            "Root=1-67891233-abcdef012345678912345678",
            "a",
            &"x".repeat(MAX_REQUEST_ID),
        ] {
            assert!(valid_request_id(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "two words",
            "quote\"d",
            "line\nbreak",
            "é",
            &"x".repeat(MAX_REQUEST_ID + 1),
        ] {
            assert!(!valid_request_id(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn made_ids_are_distinct_v4_uuids_a_client_could_have_sent() {
        let maker = RequestIdMaker::new();
        let ids: Vec<String> = (0..10_000)
            .map(|_| maker.make().to_str().unwrap().to_owned())
            .collect();
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        for id in &ids[..100] {
            let parsed = uuid::Uuid::try_parse(id).unwrap();
            assert_eq!(parsed.get_version_num(), 4, "{id}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert!(valid_request_id(id.as_bytes()), "{id}");
        }
        // Two processes start at different points.
        assert_ne!(RequestIdMaker::new().make(), RequestIdMaker::new().make());
    }
}
