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
//! [`negotiate`] (which version a request speaks, release detection), [`headers`] (HTTP dates,
//! `Deprecation`, `If-Match`, `Mutatis-Versions`), [`auth`] (tokens, roles, access policies),
//! [`problem`] (RFC 9457 bodies). JSON Patches are applied by [`mutatis_lens::apply_patch`]
//! (the applier the client shares), and dates come from [`mutatis_lens::calendar`]. The axum
//! handlers ([`docs`], [`conflicts`], [`feed`], [`replication`], [`meta`], [`admin`]) are
//! thin: negotiate, check, call the store on the blocking pool ([`AppState::with_store`]),
//! answer. [`app`] holds the shared state; [`http`] the router and the edge layer that makes
//! every error problem+json and records [`metrics`]. Background work a node does on its own:
//! replication jobs ([`jobs`], `/admin/replications`) and change notifications ([`webhooks`],
//! `/admin/webhooks`), both stored as settings and resumed by [`serve`].
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
pub mod conflicts;
pub mod docs;
pub mod feed;
pub mod headers;
pub mod http;
pub mod jobs;
pub mod meta;
pub mod metrics;
pub mod negotiate;
pub mod openapi;
pub mod problem;
pub mod replication;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;

pub use app::{
    ensure_admin_token, AppState, ReplicationConfig, ServerConfig, ServerError,
    DEFAULT_REPLICATION_BODY_LIMIT,
};
pub use http::router;
pub use problem::Problem;

use mutatis_store::Backend;

/// Serve `state` on `listener` until `shutdown` completes, then finish the requests in flight.
/// Migrations left in flight by a stopped process are resumed first, and the stored
/// replication jobs ([`jobs`]) and webhooks ([`webhooks`]) are started.
///
/// The store is synchronous and may not be dropped on a runtime thread (the PostgreSQL
/// client runs a runtime of its own): keep a clone of `state` and drop it after the runtime.
pub async fn serve<B: Backend + 'static>(
    listener: tokio::net::TcpListener,
    state: Arc<AppState<B>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let resume = Arc::clone(&state);
    tokio::task::spawn_blocking(move || resume.resume_migrations())
        .await
        .map_err(|e| ServerError::Io {
            what: "resuming migrations".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
    // Replication jobs and webhooks are stored settings: they outlive the process that
    // created them.
    state.resume_jobs().await?;
    state.resume_webhooks().await?;
    let app = router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServerError::Io {
            what: "serving HTTP".into(),
            source,
        })
}
