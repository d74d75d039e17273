//! [`OneOf`]: one of two services behind one type, so that a stack chosen when the server
//! starts (the request log on or off, CORS configured or not) or a request's way through it
//! (a probe or the API) costs no boxing.
//!
//! axum's `Router` can hold either kind of service too, but as a boxed, type-erased fallback:
//! each request then pays for a boxed clone of the service beneath, a boxed future and two
//! route-table lookups. Here the choice is a `match`.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use futures_util::future::Either;

/// One of two services answering with axum's [`Response`], never failing (as every service of
/// this server's stack).
#[derive(Debug, Clone)]
pub enum OneOf<A, B> {
    /// The first.
    First(A),
    /// The second.
    Second(B),
}

impl<A, B> tower_service::Service<Request> for OneOf<A, B>
where
    A: tower_service::Service<Request, Response = Response, Error = Infallible>,
    B: tower_service::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<A::Future, B::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match self {
            OneOf::First(a) => a.poll_ready(cx),
            OneOf::Second(b) => b.poll_ready(cx),
        }
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match self {
            OneOf::First(a) => Either::Left(a.call(req)),
            OneOf::Second(b) => Either::Right(b.call(req)),
        }
    }
}
