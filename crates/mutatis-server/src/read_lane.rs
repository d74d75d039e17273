//! The read lane: the commonest request, a plain read of one document (`GET
//! /docs/{type}/{id}` with no query string), answered beside the router.
//!
//! Through the router such a read pays for machinery it does not use: the edge's and the
//! authentication's `from_fn` middleware (each a boxed future and a clone of the service
//! beneath), the panic catcher, the route table, and the extractors (the path's two
//! `String`s, the query's map, an `Extension` clone). The lane recognises the request from
//! its method and path alone and runs the same steps as plain calls, in the same order:
//!
//! 1. the edge's screening, timeout, problem bodies, `Vary`, metrics and usage
//!    (`crate::http::around_handler`, which is also what the router's edge runs);
//! 2. the token check of every protected route ([`crate::http::authenticate`]), whose
//!    principal is kept on the answer for usage ([`Caller`]), as the route's middleware does;
//! 3. the read handler's own work at the reader role (`crate::docs::read_as`, which is also
//!    what `GET /docs/{type}/{id}` through the router runs);
//! 4. a panic in any of it answers 500, as the router's panic catcher does.
//!
//! So the lane adds no rule of its own: whatever it answers, the router answers the same
//! (`tests/serve.rs` holds the two side by side, refusals included). What it does not
//! recognise (another method, a query, a percent-escape in the path, any other path) goes to
//! the router untouched.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use futures_util::FutureExt as _;
use mutatis_store::Backend;

use crate::app::AppState;
use crate::auth::{Caller, Role};
use crate::problem::Problem;

/// Where the type and id of a plain document read start in its path (read back with
/// `segments`): `GET /docs/{type}/{id}`, no query string (not even an empty one), both
/// segments non-empty and free of `%` (so they are what the router's path extractor would
/// decode them to). `None` for anything else.
pub fn plain_read(method: &Method, uri: &axum::http::Uri) -> Option<(usize, usize)> {
    if *method != Method::GET || uri.query().is_some() {
        return None;
    }
    let path = uri.path();
    let rest = path.strip_prefix("/docs/")?;
    let (type_name, id) = rest.split_once('/')?;
    if type_name.is_empty() || id.is_empty() || id.contains('/') || rest.contains('%') {
        return None;
    }
    // Where the two segments start: the path is read again, by these offsets, once the
    // request has moved into the handler.
    let type_at = "/docs/".len();
    Some((type_at, type_at + type_name.len() + 1))
}

/// The type and id of [`plain_read`], sliced from `path` by its offsets.
fn segments(path: &str, (type_at, id_at): (usize, usize)) -> Option<(&str, &str)> {
    let type_name = path.get(type_at..id_at.checked_sub(1)?)?;
    let id = path.get(id_at..)?;
    Some((type_name, id))
}

/// The router's stack (`rest`) with plain document reads answered beside it.
pub struct ReadLane<B: Backend + 'static, S> {
    state: Arc<AppState<B>>,
    rest: S,
}

impl<B: Backend + 'static, S: Clone> Clone for ReadLane<B, S> {
    fn clone(&self) -> Self {
        ReadLane {
            state: Arc::clone(&self.state),
            rest: self.rest.clone(),
        }
    }
}

impl<B: Backend + 'static, S> ReadLane<B, S> {
    /// `rest` (the router with its edge) for every request but the plain reads of `state`'s
    /// documents.
    pub fn new(state: Arc<AppState<B>>, rest: S) -> ReadLane<B, S> {
        ReadLane { state, rest }
    }
}

/// The lane's answer to one read.
type LaneFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<B, S> tower_service::Service<Request> for ReadLane<B, S>
where
    B: Backend + 'static,
    S: tower_service::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<LaneFuture, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The lane itself is always ready; `rest` is asked so that a request sent to it
        // finds it ready (the router always is).
        self.rest.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match plain_read(req.method(), req.uri()) {
            Some(at) => {
                let state = Arc::clone(&self.state);
                Either::Left(Box::pin(async move { Ok(answer(&state, req, at).await) }))
            }
            None => Either::Right(self.rest.call(req)),
        }
    }
}

/// The edge's work around the read (see the module's documentation).
async fn answer<B: Backend + 'static>(
    state: &AppState<B>,
    req: Request,
    at: (usize, usize),
) -> Response {
    // The handler's future is boxed where it is made: it is the largest part of the answer's
    // state, and the edge's timeout and this lane's own box would otherwise each copy it.
    crate::http::around_handler(state, req, |req| {
        Box::pin(async move {
            // A read has no body to read: the head is all the handler needs (and, unlike the
            // body, it may be shared across the awaits).
            let (head, _) = req.into_parts();
            AssertUnwindSafe(read(state, head, at))
                .catch_unwind()
                .await
                .unwrap_or_else(crate::http::panicked)
        })
    })
    .await
}

/// The protected route's token check and the read handler, as the router runs them.
async fn read<B: Backend + 'static>(
    state: &AppState<B>,
    req: axum::http::request::Parts,
    at: (usize, usize),
) -> Response {
    let Some((type_name, id)) = segments(req.uri.path(), at) else {
        // The path was matched by these offsets before the request moved here.
        return Problem::internal().into_response();
    };
    let who = match crate::http::authenticate(state, &req.headers).await {
        Ok(who) => who,
        Err(refused) => return refused.into_response(),
    };
    let name = Arc::clone(&who.name);
    // No query: the map the router's `Query` extractor would have made is empty, and an
    // empty map allocates nothing.
    let no_query = HashMap::new();
    let answered = match who.at_least(Role::Reader) {
        // The request's headers go on to hold the answer's (`json_bytes_response`).
        Ok(who) => crate::docs::read_as(state, &who, type_name, id, &no_query, req.headers).await,
        Err(refused) => Err(refused),
    };
    let mut resp = answered.into_response();
    resp.extensions_mut().insert(Caller(name));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched(method: Method, target: &str) -> Option<(String, String)> {
        let uri: axum::http::Uri = target.parse().unwrap();
        let at = plain_read(&method, &uri)?;
        let (t, i) = segments(uri.path(), at).unwrap();
        Some((t.to_owned(), i.to_owned()))
    }

    #[test]
    fn only_plain_reads_of_one_document_take_the_lane() {
        assert_eq!(
            matched(Method::GET, "/docs/Student/s-1"),
            Some(("Student".into(), "s-1".into()))
        );
        assert_eq!(
            matched(Method::GET, "http://host:9/docs/T/x.y_z"),
            Some(("T".into(), "x.y_z".into()))
        );
        for (method, target) in [
            (Method::HEAD, "/docs/T/x"),
            (Method::PUT, "/docs/T/x"),
            (Method::GET, "/docs/T/x?release=3"),
            (Method::GET, "/docs/T/x?"),
            (Method::GET, "/docs/T"),
            (Method::GET, "/docs/T/"),
            (Method::GET, "/docs//x"),
            (Method::GET, "/docs/T/x/access"),
            (Method::GET, "/docs/T/x/"),
            (Method::GET, "/docs/T/a%2Fb"),
            (Method::GET, "/docs/%54/x"),
            (Method::GET, "/docsT/x"),
            (Method::GET, "/couch/5/x"),
        ] {
            assert_eq!(matched(method.clone(), target), None, "{method} {target}");
        }
    }
}
