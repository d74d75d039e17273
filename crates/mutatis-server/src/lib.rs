//! # mutatis-server
//!
//! The mutatis HTTP server: one process answers clients of every supported release of a
//! schema set at once, over one versioned store ([`mutatis_store::Store`], redb or
//! PostgreSQL). Each request names its release (or per-type versions); bodies are read and
//! written in that version, and the store translates and conserves.
//!
//! ## Shape
//!
//! The decisions are pure modules, unit-tested without a server:
//! [`negotiate`](mod@negotiate) (which version a request speaks, release detection), [`headers`] (HTTP dates,
//! `Deprecation`, `If-Match`, `Mutatis-Versions`), [`auth`] (tokens, roles, access policies),
//! [`problem`] (RFC 9457 bodies). JSON Patches are applied by [`mutatis_lens::apply_patch`]
//! (the applier the client shares), and dates come from [`mutatis_lens::calendar`]. The axum
//! handlers ([`docs`], [`conflicts`], [`feed`], [`replication`], [`meta`], [`admin`]) are
//! thin: negotiate, check, call the store on the blocking pool ([`AppState::with_store`]),
//! answer. [`app`] holds the shared state; [`http`] the router and the edge layer that makes
//! every error problem+json and records [`metrics`] and [`usage`] (per release, kept in the
//! store; [`retire`] judges from it which release can be retired). Background work a node
//! does on its own: replication jobs ([`jobs`], `/admin/replications`) and change
//! notifications ([`webhooks`], `/admin/webhooks`), both stored as settings and resumed by
//! [`serve`]; usage counts added to the store every few seconds and at shutdown. The
//! operator's [`dashboard`] (`/ui`) is a page built into the binary that reads all of this
//! through the same API, with the operator's token.
//!
//! Nothing that matters lives only in process memory: tokens (hashed), the node id,
//! migration state, replication jobs and webhooks are in the store, so several processes on
//! one PostgreSQL store agree.
//!
//! ```no_run
//! # async fn run(store: mutatis_store::Store<mutatis_store::RedbBackend>) -> Result<(), Box<dyn std::error::Error>> {
//! use mutatis_server::{AppState, ServerConfig};
//! let state = AppState::new(store, None, mutatis_lens::Params::new(), ServerConfig::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! mutatis_server::serve(listener, state, std::future::pending()).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod admin;
pub mod app;
pub mod auth;
mod background;
pub mod changelog;
pub mod conditional;
pub mod conflicts;
mod connection_timer;
pub mod cors;
pub mod couch;
pub mod cursor;
pub mod dashboard;
pub mod docs;
pub mod feed;
pub mod http;
pub mod jobs;
pub mod lease;
pub mod meta;
pub mod metrics;
pub mod one_of;
pub mod openapi;
pub mod read_lane;
pub mod replication;
pub mod request_log;
pub mod retire;
pub mod static_files;
pub mod tls;
pub mod usage;
pub mod webhooks;

// Negotiation, its headers and its problems live in `mutatis-negotiate` (shared with
// `mutatis-axum`); the server's modules of the same names are that crate's.
pub use mutatis_negotiate::{headers, negotiate, problem};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use app::{
    ensure_admin_token, today, AppState, ReplicationConfig, ServerConfig, ServerError,
    DEFAULT_BODY_LIMIT, DEFAULT_BODY_TIMEOUT, DEFAULT_REPLICATION_BODY_LIMIT,
    DEFAULT_REQUEST_TIMEOUT,
};
pub use http::router;
pub use problem::Problem;

use mutatis_store::Backend;

/// The most header fields hyper parses: its own default, above the edge's
/// [`http::MAX_HEADERS`], so that a request with ordinarily too many reaches the edge and gets
/// a problem+json 431; past this hyper answers 431 itself, with an empty body. It is hyper's
/// default on purpose: hyper parses up to that many into an array on the stack, and any other
/// cap into two arrays allocated and filled for every request head. (Hyper's other head limits
/// are its own: a request target of 65,534 bytes and a head of about 400 KiB, both far above
/// the edge's.)
pub const HYPER_MAX_HEADERS: usize = 100;
const _: () = assert!(http::MAX_HEADERS < HYPER_MAX_HEADERS);

/// How long past the request timeout a shutdown waits for its connections before closing
/// them: every request ends within the timeout, so what is left is stuck on its client.
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(1);

/// How often a running server looks whether a release's sunset has come.
pub const SUNSET_CHECK: Duration = Duration::from_secs(60);

/// Serve `state` on `listener` until `shutdown` completes, then finish the requests in flight.
/// First every type's stored state is brought in line with the storage the schema set
/// declares ([`AppState::reconcile_storage`]: migrations left in flight resume, a changed
/// storage version migrates in the background; a state that cannot be brought in line is an
/// error, and nothing is served), and the stored replication jobs ([`jobs`]) and webhooks
/// ([`webhooks`]) are started.
///
/// Connections are served by hyper's HTTP/1 with the limits axum's own `serve` does not let
/// one set: a request head (or the next request on an idle
/// keep-alive connection) must arrive within [`ServerConfig::request_timeout`], else the
/// connection is closed; a client trickling its headers holds nothing for longer.
///
/// The store is synchronous and may not be dropped on a runtime thread (the PostgreSQL
/// client runs a runtime of its own): keep a clone of `state` and drop it after the runtime.
pub async fn serve<B: Backend + 'static>(
    listener: tokio::net::TcpListener,
    state: Arc<AppState<B>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    serve_with_tls(listener, state, shutdown, None).await
}

/// [`serve`], over HTTPS when `tls` is given (from [`tls::acceptor_from_pem_files`]): each
/// accepted connection's TLS handshake must complete within [`ServerConfig::request_timeout`]
/// (as a request head must), else it is closed; a client that does not speak TLS (plain http
/// to the HTTPS port) fails its handshake and is closed.
pub async fn serve_with_tls<B: Backend + 'static>(
    listener: tokio::net::TcpListener,
    state: Arc<AppState<B>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<(), ServerError> {
    let reconcile = Arc::clone(&state);
    tokio::task::spawn_blocking(move || reconcile.reconcile_storage())
        .await
        .map_err(|e| ServerError::Io {
            what: "reconciling the declared storage".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
    // Replication jobs and webhooks are stored settings: they outlive the process that
    // created them.
    // Each runs in one process of the cluster, the holder of its lease: take what can be
    // taken now, and keep renewing and taking over.
    state.resume_jobs().await?;
    state.resume_webhooks().await?;
    if state.config.reference_date.is_none() {
        // Release sunsets are judged by the clock: a release whose day comes is retired
        // while the server runs. Looking once a minute costs a comparison of two dates.
        let watch = Arc::downgrade(&state);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SUNSET_CHECK).await;
                let Some(state) = watch.upgrade() else { return };
                let _ = tokio::task::spawn_blocking(move || state.apply_sunsets()).await;
            }
        });
    }
    if state.usage.enabled() {
        // Usage is added to the store every few seconds (and once more below, at shutdown).
        let watch = Arc::downgrade(&state);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(usage::FLUSH_EVERY).await;
                let Some(state) = watch.upgrade() else { return };
                let _ = tokio::task::spawn_blocking(move || flush_usage(&state)).await;
            }
        });
    }
    let head_timeout = state.config.request_timeout;
    let flush_at_end = Arc::clone(&state);
    let app = http::app(Arc::clone(&state));
    // Dropped to tell every connection to finish its request in flight and close.
    let (stop, stopped) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let app = app.clone();
                    let stopped = stopped.clone();
                    match tls.clone() {
                        None => {
                            connections.spawn(connection(stream, app, head_timeout, stopped));
                        }
                        Some(acceptor) => {
                            connections.spawn(async move {
                                // The handshake runs in the connection's task, so a slow one
                                // holds up no other client, and is bounded like a head.
                                match tokio::time::timeout(head_timeout, acceptor.accept(stream))
                                    .await
                                {
                                    Ok(Ok(stream)) => {
                                        connection(stream, app, head_timeout, stopped).await;
                                    }
                                    Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                                    Err(_) => tracing::debug!(
                                        "TLS handshake did not complete in {head_timeout:?}"
                                    ),
                                }
                            });
                        }
                    }
                }
                // Out of file descriptors and the like: passing; accepting again at once
                // would only spin.
                Err(e) => {
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Finished connections are reaped as they end, so the set holds live ones only.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Waiting feeds answer now, so the requests in flight all finish promptly.
    state.begin_shutdown();
    drop(stop);
    // Every request in flight ends within the request timeout (the feeds end now); what is
    // left after that is a client that stopped reading its answer, and it does not hold the
    // process up: its connection is dropped.
    let drained = tokio::time::timeout(head_timeout + SHUTDOWN_MARGIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "connections still open {:?} after shutdown began; closing them",
            head_timeout + SHUTDOWN_MARGIN
        );
        connections.shutdown().await;
    }
    if flush_at_end.usage.enabled() {
        let _ = tokio::task::spawn_blocking(move || flush_usage(&flush_at_end)).await;
    }
    Ok(())
}

/// Add this process's usage counts to the store; a failure is logged and the counts wait for
/// the next flush.
fn flush_usage<B: Backend + 'static>(state: &AppState<B>) {
    let today = app::unix_now().div_euclid(86_400);
    if let Err(e) = state.usage.flush(&state.store(), today) {
        tracing::warn!("recording usage per release failed (kept for the next try): {e}");
    }
}

/// One HTTP/1 connection, until the client closes it, it fails, or `stopped` says the server
/// is shutting down (then the request in flight is finished first).
async fn connection<S, A>(
    stream: S,
    app: A,
    head_timeout: Duration,
    mut stopped: tokio::sync::watch::Receiver<()>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    A: tower_service::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    A::Future: Send + 'static,
{
    // Hyper's request body becomes axum's, as axum's own `serve` does.
    let app = tower::ServiceExt::map_request(app, |req: hyper::Request<hyper::body::Incoming>| {
        req.map(axum::body::Body::new)
    });
    let service = hyper_util::service::TowerToHyperService::new(app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        // One tokio timer entry for all the connection's head timeouts, not one per request.
        .timer(connection_timer::ConnectionTimer::default())
        // No `max_headers`: [`HYPER_MAX_HEADERS`] is hyper's default, and setting any cap,
        // even that one, costs each request head two arrays of that many entries.
        .header_read_timeout(head_timeout);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        served = conn.as_mut() => {
            if let Err(e) = served {
                // A client that went away, a malformed request (answered by hyper), a head
                // that did not arrive in time: the client's business, not the server's.
                tracing::debug!("connection ended: {e}");
            }
            return;
        }
        // The sender is never used to send: dropping it is the signal.
        _ = stopped.changed() => {}
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::debug!("connection ended during shutdown: {e}");
    }
}
