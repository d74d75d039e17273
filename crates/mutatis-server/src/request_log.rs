//! Request ids and the request log line: every request has an `x-request-id` (a client's own,
//! when it is a valid one, else one made here: a UUID v4), echoed on the answer and in its
//! problem+json body (`requestId`), and one `INFO` line per answer in a `request` span naming
//! the id, method, path, release served, status and latency.
//!
//! The path is logged without its query string: a query carries replication selectors and
//! list cursors, which are the caller's business, and on `/couch` a client library may put
//! credentials there.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, Response};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::http::Tags;

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

/// `app` with request ids and the request log (outermost first: an invalid client id
/// dropped, an id set, the span and log line, the id copied onto the answer).
pub fn apply<S: Clone + Send + Sync + 'static>(app: Router<S>) -> Router<S> {
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
    app.layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(trace)
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_invalid_request_id))
}

async fn drop_invalid_request_id(mut req: Request) -> Request {
    let invalid = req
        .headers()
        .get_all(&REQUEST_ID)
        .iter()
        .enumerate()
        .any(|(i, v)| i > 0 || !valid_request_id(v.as_bytes()));
    if invalid {
        req.headers_mut().remove(&REQUEST_ID);
    }
    req
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
}
