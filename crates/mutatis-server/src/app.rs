//! The server's shared state and its start-up work (node id, first admin token, resuming
//! migrations), plus the bridge from the synchronous store to async handlers.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mutatis_lens::Params;
use mutatis_replication::SourceSets;
use mutatis_schema::ErrorKind;
use mutatis_store::{
    Backend, MigrationOptions, MigrationPacer, Step, StorageAction, Store, StoreError,
};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::auth::{self, Principal, Role, TokenRecord};
use crate::metrics::Metrics;
use crate::problem::Problem;

/// How long a token lookup is cached in a process. Revoking a token reaches the other
/// processes sharing the store within this time (the revoking process drops it at once).
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);

/// How often a waiting feed reader looks for writes of other processes when the store does
/// not tell of them (a PostgreSQL-compatible database without `NOTIFY`): this process's own
/// writes wake it at once.
pub const FEED_POLL: Duration = Duration::from_millis(500);

/// How often a waiting feed reader looks for writes of other processes when the store tells
/// of them ([`Backend::follow_commits`], PostgreSQL's `NOTIFY`): only the safety net for a
/// lost notification.
pub const FEED_SAFETY_POLL: Duration = Duration::from_secs(5);

/// The settings key of the node id.
pub const NODE_ID_KEY: &str = "node/id";

/// The settings key of the key list cursors are sealed with ([`crate::cursor`]).
pub const CURSOR_KEY: &str = "node/cursor-key";

/// The settings key that makes the first admin token a one-time event across processes.
pub const ADMIN_BOOTSTRAP_KEY: &str = "bootstrap/admin-token";

/// The settings key of the name of the schema set the store is kept under (`mutatis.yaml`'s
/// `name`), recorded by [`claim_schema_set`].
pub const SCHEMA_SET_KEY: &str = "node/schema-set";

/// The default of [`ServerConfig::body_limit`]: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// The default of [`ServerConfig::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The default of [`ServerConfig::body_timeout`]: a client that sends nothing of its body for
/// this long is not on a slow link but stalled (or hostile), and holds a connection and a
/// task for nothing.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Server limits and switches.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest accepted request body, in bytes (`POST /replication/apply` has
    /// [`ReplicationConfig::body_limit`]). A larger `Content-Length` is refused before the
    /// body is read; a body without one is cut off at the limit.
    pub body_limit: usize,
    /// Longest a request may take (the changes feed has its own bounded `timeout`); also how
    /// long a client may take to send a request head (and keep an idle connection open).
    pub request_timeout: Duration,
    /// Longest a request body may go without a byte arriving (408 `body-timeout`). Meant to
    /// be shorter than `request_timeout`, which would answer first otherwise.
    pub body_timeout: Duration,
    /// Serve `/metrics` without a token.
    pub public_metrics: bool,
    /// The day release sunsets are judged by (`YYYY-MM-DD`), when it is pinned (the
    /// command line's `--reference-date`); `None`: the server's clock, day by day.
    pub reference_date: Option<String>,
    /// CORS for browser apps on other origins (`--cors-origin`); `None`: no CORS header at
    /// all, and browsers keep their same-origin rule.
    pub cors: Option<crate::cors::CorsConfig>,
    /// A folder of static files served without a token (`--static`); `None`: none.
    pub static_files: Option<crate::static_files::StaticFiles>,
    /// How often a waiting feed reader looks for other processes' writes (`--feed-poll-ms`);
    /// `None`: [`FEED_SAFETY_POLL`] when the store tells of them, else [`FEED_POLL`].
    pub feed_poll: Option<Duration>,
    /// Record usage per release in the store ([`crate::usage`]; `--usage off` turns it off).
    pub usage: bool,
    /// Serve the operator's dashboard at `/ui` ([`crate::dashboard`]; `--ui off` leaves it
    /// out).
    pub ui: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            public_metrics: false,
            reference_date: None,
            cors: None,
            static_files: None,
            feed_poll: None,
            usage: true,
            ui: true,
        }
    }
}

/// The default largest body of `POST /replication/apply`: a batch carries up to
/// [`mutatis_replication::MAX_BATCH`] documents with all their leaves, far more than one
/// document's body.
pub const DEFAULT_REPLICATION_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Settings of the replication endpoints.
#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    /// Largest accepted body of `POST /replication/apply`, in bytes (every other route keeps
    /// [`ServerConfig::body_limit`]).
    pub body_limit: usize,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            body_limit: DEFAULT_REPLICATION_BODY_LIMIT,
        }
    }
}

/// Errors of starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store failed during start-up.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The operating system has no randomness to give.
    #[error("cannot get random bytes for {what}: {reason}")]
    Random {
        /// What the bytes were for.
        what: &'static str,
        /// The OS error.
        reason: String,
    },
    /// The store was recorded under another schema set than the one it is opened with
    /// ([`claim_schema_set`]).
    #[error("the store belongs to schema set {stored:?}, not to {opened:?} (the set it was opened with)")]
    ForeignSchemaSet {
        /// The name the store recorded.
        stored: String,
        /// The name of the set it was opened with.
        opened: String,
    },
    /// `MUTATIS_ADMIN_TOKEN` is not a mutatis token.
    #[error("MUTATIS_ADMIN_TOKEN is not a mutatis token (expected `mutatis_` and 64 hex digits)")]
    BadAdminToken,
    /// Listening or serving failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Random bytes from the operating system.
pub fn random<const N: usize>(what: &'static str) -> Result<[u8; N], ServerError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| ServerError::Random {
        what,
        reason: e.to_string(),
    })?;
    Ok(buf)
}

/// Run `f` on the blocking pool: store calls, and loading or diffing schema sets, which must
/// not hold a runtime thread. A task that died (`what` it was) is a bug: logged, and a 500.
pub async fn run_blocking<R, F>(what: &'static str, f: F) -> Result<R, Problem>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!("{what} failed: {e}");
        Problem::internal()
    })
}

/// Seconds since the epoch, now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Today (`YYYY-MM-DD`, UTC) by the clock: what release sunsets are judged by.
pub fn today() -> String {
    match mutatis_lens::calendar::reference_params(unix_now()).get("referenceDate") {
        Some(Value::String(d)) => d.clone(),
        // `reference_params` always names the day; an empty date retires nothing.
        _ => String::new(),
    }
}

/// The store as served now, with the hash of its schema set's manifest: one value, so a
/// request never pairs a store with another schema set's hash across a reload.
struct Current<B: Backend + 'static> {
    store: Arc<Store<B>>,
    manifest_hash: Arc<str>,
    /// The negotiation headers of this schema set's answers, built once each.
    negotiated: Arc<crate::http::NegotiatedHeaders>,
}

impl<B: Backend + 'static> Current<B> {
    fn new(store: Arc<Store<B>>) -> Current<B> {
        // Computed once per schema set: every replication request names it.
        let manifest_hash =
            mutatis_replication::manifest_hash(&store.schema_set().manifest()).into();
        Current {
            store,
            manifest_hash,
            negotiated: Arc::default(),
        }
    }
}

/// What the server shares between requests. Nothing that matters lives only here: tokens,
/// the node id and migrations are in the store, so processes sharing a PostgreSQL store agree.
pub struct AppState<B: Backend + 'static> {
    current: RwLock<Current<B>>,
    /// The schema-set folder, re-read by `POST /admin/reload`.
    pub dir: Option<PathBuf>,
    /// Translation parameters (`referenceYear`…), for detection and patches.
    pub params: Params,
    /// Limits and switches.
    pub config: ServerConfig,
    /// Request and migration metrics.
    pub metrics: Arc<Metrics>,
    /// Usage per release, counted here and added to the store every few seconds.
    pub usage: Arc<crate::usage::Usage>,
    /// This node's id (stored, shared by every process of the node).
    pub node_id: String,
    /// The key list cursors are sealed with (stored, shared by every process of the node).
    pub cursor_key: [u8; 32],
    /// Replication settings.
    pub replication: ReplicationConfig,
    /// The schema sets of replication sources on other releases, by manifest hash (kept
    /// across reloads: they describe the sources, not this node).
    pub source_sets: Arc<SourceSets>,
    /// Recently seen tokens by digest ([`auth::token_digest`]): who holds each, and since when.
    tokens: Mutex<foldhash::HashMap<[u8; 32], (Principal, Instant)>>,
    feed: watch::Sender<u64>,
    /// `true` once the server begins shutting down ([`AppState::begin_shutdown`]).
    stopping: watch::Sender<bool>,
    /// How often waiting feed readers look for other processes' writes.
    feed_poll: Duration,
    runners: Mutex<HashSet<String>>,
    migration_errors: Mutex<HashMap<String, String>>,
    /// The replication jobs this process runs (`/admin/replications`).
    pub(crate) jobs: crate::jobs::Jobs,
    /// The webhooks this process delivers (`/admin/webhooks`).
    pub(crate) webhooks: crate::webhooks::Webhooks,
    /// Who this process is when it holds a background task's lease ([`crate::lease`]).
    pub holder: crate::lease::Holder,
}

impl<B: Backend + 'static> AppState<B> {
    /// State over `store` (whose parameters must be `params`): reads or creates the node id.
    /// Replication uses its defaults ([`AppState::with_replication`] sets them).
    pub fn new(
        store: Store<B>,
        dir: Option<PathBuf>,
        params: Params,
        config: ServerConfig,
    ) -> Result<Arc<AppState<B>>, ServerError> {
        Self::with_replication(store, dir, params, config, ReplicationConfig::default())
    }

    /// State over `store` (whose parameters must be `params`) with replication settings:
    /// reads or creates the node id.
    pub fn with_replication(
        store: Store<B>,
        dir: Option<PathBuf>,
        params: Params,
        config: ServerConfig,
        replication: ReplicationConfig,
    ) -> Result<Arc<AppState<B>>, ServerError> {
        let candidate = auth::hex(&random::<16>("the node id")?);
        let node_id = match store.init_setting(NODE_ID_KEY, &json!(candidate))? {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let candidate = auth::hex(&random::<32>("the cursor key")?);
        let stored = store.init_setting(CURSOR_KEY, &json!(candidate))?;
        let cursor_key = stored
            .as_str()
            .and_then(|h| {
                let bytes: Option<Vec<u8>> = (0..h.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
                    .collect();
                <[u8; 32]>::try_from(bytes?).ok()
            })
            .ok_or(ServerError::Store(StoreError::Corrupt {
                what: "setting",
                key: CURSOR_KEY.to_owned(),
                reason: "not 32 bytes of hex".to_owned(),
            }))?;
        let last = store.last_seq()?;
        let (feed, _) = watch::channel(last);
        let usage = Arc::new(crate::usage::Usage::new(config.usage));
        // Other processes' writes wake this one's feed readers, for as long as the state
        // lives (it exists only once built, below; until then there is nobody to wake).
        let waker: Arc<OnceLock<Weak<AppState<B>>>> = Arc::default();
        let wakes = Arc::clone(&waker);
        let told = store
            .backend()
            .follow_commits(Box::new(move |seq| match wakes.get() {
                None => true,
                Some(weak) => match weak.upgrade() {
                    Some(state) => {
                        state.wrote(seq);
                        true
                    }
                    None => false,
                },
            }))?;
        let feed_poll = config
            .feed_poll
            .unwrap_or(if told { FEED_SAFETY_POLL } else { FEED_POLL });
        let state = Arc::new(AppState {
            current: RwLock::new(Current::new(Arc::new(store))),
            dir,
            params,
            config,
            metrics: Arc::new(Metrics::default()),
            usage,
            node_id,
            cursor_key,
            replication,
            source_sets: Arc::default(),
            tokens: Mutex::default(),
            feed,
            stopping: watch::Sender::new(false),
            runners: Mutex::new(HashSet::new()),
            migration_errors: Mutex::new(HashMap::new()),
            jobs: crate::jobs::Jobs::default(),
            webhooks: crate::webhooks::Webhooks::default(),
            feed_poll,
            holder: crate::lease::Holder {
                id: auth::hex(&random::<8>("the lease holder id")?),
                pid: std::process::id(),
            },
        });
        let _ = waker.set(Arc::downgrade(&state));
        Ok(state)
    }

    /// The store as it is now (a reload swaps it; requests in flight keep the one they took).
    pub fn store(&self) -> Arc<Store<B>> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .store,
        )
    }

    /// The store as it is now and the hash of its manifest
    /// ([`mutatis_replication::manifest_hash`]), taken together.
    pub fn store_and_manifest(&self) -> (Arc<Store<B>>, Arc<str>) {
        let served = self.current.read().unwrap_or_else(PoisonError::into_inner);
        (Arc::clone(&served.store), Arc::clone(&served.manifest_hash))
    }

    /// The store and the negotiation headers of the schema set served now, taken together:
    /// a request that holds both negotiates, reads and labels its answer in one schema set
    /// even if a reload swaps it meanwhile, and takes the lock once.
    pub fn served_now(&self) -> (Arc<Store<B>>, Arc<crate::http::NegotiatedHeaders>) {
        let served = self.current.read().unwrap_or_else(PoisonError::into_inner);
        (Arc::clone(&served.store), Arc::clone(&served.negotiated))
    }

    /// The negotiation headers of the schema set served now ([`crate::http::negotiated`]).
    pub fn negotiated_headers(&self) -> Arc<crate::http::NegotiatedHeaders> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .negotiated,
        )
    }

    /// Swap in a store seen through a new schema set (its manifest hash is computed here,
    /// once).
    pub fn replace_store(&self, store: Store<B>) {
        let next = Current::new(Arc::new(store));
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
    }

    /// The day release sunsets are judged by: the pinned reference date, or today.
    pub fn today(&self) -> String {
        self.config.reference_date.clone().unwrap_or_else(today)
    }

    /// Retire the releases whose sunset has come since the schema set was loaded: the set
    /// is taken again as of today ([`mutatis_schema::SchemaSet::as_of_again`]), nothing else
    /// changes. Returns the releases retired.
    pub fn apply_sunsets(&self) -> Vec<String> {
        let today = self.today();
        let store = self.store();
        let set = store.schema_set();
        if set.next_sunset().is_none_or(|s| s > today.as_str()) {
            return Vec::new();
        }
        let next = match set.as_of_again(&today) {
            Some(Ok(next)) => next,
            Some(Err(e)) => {
                tracing::error!("cannot apply the release sunsets of {today}: {e}");
                return Vec::new();
            }
            None => return Vec::new(),
        };
        let retired: Vec<String> = set
            .releases()
            .iter()
            .filter(|r| r.status.is_served())
            .filter(|r| next.release(&r.name).is_some_and(|n| !n.status.is_served()))
            .map(|r| r.name.clone())
            .collect();
        for name in &retired {
            tracing::info!("release {name} reached its sunset and is no longer served");
        }
        let swapped = store
            .with_schema_set(Arc::new(next))
            .with_params(self.params.clone());
        self.replace_store(swapped);
        retired
    }

    /// Wake the feed's waiting readers after a write of this process.
    pub fn wrote(&self, seq: u64) {
        self.feed.send_if_modified(|s| {
            let newer = seq > *s;
            if newer {
                *s = seq;
            }
            newer
        });
    }

    /// A receiver that is told of this process's writes, and of other processes' writes
    /// when the store tells of them ([`Backend::follow_commits`]).
    pub fn feed_watch(&self) -> watch::Receiver<u64> {
        self.feed.subscribe()
    }

    /// Say that the server is shutting down: answers that wait for changes (long-polls, event
    /// streams, replication's `waitMs`) end now rather than hold the shutdown for minutes.
    pub fn begin_shutdown(&self) {
        self.stopping.send_replace(true);
    }

    /// Completes once the server is shutting down (at once if it already is).
    pub async fn stopping(&self) {
        let mut rx = self.stopping.subscribe();
        // The sender lives as long as `self`: `wait_for` fails only without it.
        let _ = rx.wait_for(|stopping| *stopping).await;
    }

    /// How long a waiting feed reader waits before looking again for other processes'
    /// writes, if nothing woke it.
    pub fn feed_poll(&self) -> Duration {
        self.feed_poll
    }

    /// Run `f` on the store on the blocking pool. The outer error is a task that died (a bug:
    /// 500); the inner one is the store's, for a handler that answers some store errors its
    /// own way (see [`AppState::with_store`] for the usual case).
    pub async fn blocking<R, F>(&self, f: F) -> Result<Result<R, StoreError>, Problem>
    where
        R: Send + 'static,
        F: FnOnce(&Store<B>) -> Result<R, StoreError> + Send + 'static,
    {
        let store = self.store();
        run_blocking("a store task", move || f(&store)).await
    }

    /// Run `f` on the store on the blocking pool, answering a store error with its problem
    /// ([`store_problem`]).
    pub async fn with_store<R, F>(&self, f: F) -> Result<R, Problem>
    where
        R: Send + 'static,
        F: FnOnce(&Store<B>) -> Result<R, StoreError> + Send + 'static,
    {
        self.blocking(f).await?.map_err(|e| store_problem(&e))
    }

    /// Run a read-only `f` on the store: on this worker when the backend's reads are local
    /// ([`Backend::READS_ARE_LOCAL`], redb: a read of a few microseconds costs less than the
    /// hand-off to a blocking thread, measured at about 10 µs per request), else on the
    /// blocking pool like [`AppState::with_store`].
    pub async fn read_store<R, F>(&self, f: F) -> Result<R, Problem>
    where
        R: Send + 'static,
        F: FnOnce(&Store<B>) -> Result<R, StoreError> + Send + 'static,
    {
        if B::READS_ARE_LOCAL {
            let store = self.store();
            return f(&store).map_err(|e| store_problem(&e));
        }
        self.with_store(f).await
    }

    /// Run a read-only `f` of one document (`type_name`, `id`) on `store`, a store the
    /// request already holds: in place, borrowing the names, where the backend's reads are
    /// local (as [`AppState::read_store`]); else on the blocking pool, with copies of them.
    pub async fn read_document<R, F>(
        store: &Arc<Store<B>>,
        type_name: &str,
        id: &str,
        f: F,
    ) -> Result<R, Problem>
    where
        R: Send + 'static,
        F: FnOnce(&Store<B>, &str, &str) -> Result<R, StoreError> + Send + 'static,
    {
        if B::READS_ARE_LOCAL {
            return f(store, type_name, id).map_err(|e| store_problem(&e));
        }
        let (store, t, i) = (Arc::clone(store), type_name.to_owned(), id.to_owned());
        run_blocking("a store task", move || f(&store, &t, &i))
            .await?
            .map_err(|e| store_problem(&e))
    }

    /// Who holds `token`: from the cache, or the store.
    pub async fn principal(&self, token: &str) -> Result<Option<Principal>, Problem> {
        if !auth::is_well_formed(token) {
            return Ok(None);
        }
        let digest = auth::token_digest(token);
        {
            let cache = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((who, at)) = cache.get(&digest) {
                if at.elapsed() < TOKEN_CACHE_TTL {
                    return Ok(Some(who.clone()));
                }
            }
        }
        let lookup = auth::digest_key(&digest);
        let found = self.read_store(move |s| s.setting(&lookup)).await?;
        // Misses are not cached: a token just created by another process must work at once.
        let Some(rec) = found.as_ref().and_then(TokenRecord::from_json) else {
            return Ok(None);
        };
        let p = Principal {
            name: rec.name.as_str().into(),
            role: rec.role,
        };
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(digest, (p.clone(), Instant::now()));
        Ok(Some(p))
    }

    /// Forget cached tokens (after a revocation in this process).
    pub fn forget_tokens(&self) {
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The last error of a background migration of `type_name` in this process.
    pub fn migration_error(&self, type_name: &str) -> Option<String> {
        self.migration_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(type_name)
            .cloned()
    }

    /// Whether this process is running the migration of `type_name`.
    pub fn migration_running(&self, type_name: &str) -> bool {
        self.runners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(type_name)
    }

    /// Run the migration in flight of `type_name` to its switch on a thread of its own
    /// (unless this process already runs it), with progress into the metrics, then what the
    /// switch calls for (`AppState::run_migration`).
    pub fn spawn_migration(self: &Arc<Self>, type_name: &str) {
        {
            let mut runners = self.runners.lock().unwrap_or_else(PoisonError::into_inner);
            if !runners.insert(type_name.to_owned()) {
                return;
            }
        }
        self.migration_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(type_name);
        let state = Arc::clone(self);
        let ty = type_name.to_owned();
        let spawned = std::thread::Builder::new()
            .name(format!("migrate-{ty}"))
            .spawn(move || {
                let result = state.run_migration(&ty);
                if let Err(e) = &result {
                    tracing::warn!("migration of {ty} stopped: {e}");
                    state
                        .migration_errors
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(ty.clone(), e.to_string());
                }
                state
                    .runners
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&ty);
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a migration thread for {type_name}: {e}");
            self.runners
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(type_name);
        }
    }

    /// The background work of `type_name`: the migration in flight to its switch, then
    /// what the declared storage still asks for once it is done (the `multi` copies of the
    /// new storage version, a changed strategy), and the copies to fill.
    ///
    /// A switch never starts another migration: a migration an operator asked for
    /// (`POST /admin/migrations`, `mutatis migrate --server`) to a version `mutatis.yaml`
    /// does not declare would otherwise be rolled back the moment it switched. The declared
    /// version is acted on at the next start or reload, and `GET /admin/migrations` shows
    /// what that would do meanwhile.
    fn run_migration(&self, ty: &str) -> Result<(), StoreError> {
        loop {
            self.run_migration_steps(ty)?;
            let store = self.store();
            let moves = store.storage_plan(ty).map(|plan| {
                plan.into_iter()
                    .filter(|a| {
                        matches!(
                            a,
                            StorageAction::Migrate { .. }
                                | StorageAction::Rollback { .. }
                                | StorageAction::Upgrade { .. }
                        )
                    })
                    .collect::<Vec<_>>()
            });
            match moves {
                Ok(moves) if moves.is_empty() => {}
                Ok(moves) => {
                    for a in &moves {
                        tracing::info!(
                            "{ty}: mutatis.yaml declares other storage; at the next start or reload: {a}"
                        );
                    }
                    return Ok(());
                }
                // What cannot be acted on (a backup in the way) waits for the operator too.
                Err(e @ StoreError::StorageMismatch { .. }) => {
                    tracing::info!("{e}");
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
            let actions = store.reconcile_storage(ty, MigrationOptions::default())?;
            for a in &actions {
                tracing::info!("{ty}: {a}");
            }
            if store.filling(ty)? {
                let total = store.space_report(ty)?.primary.records;
                let metrics = Arc::clone(&self.metrics);
                let filled = store.run_fill(ty, |done| {
                    metrics.set_migration_progress(ty, done, total.max(done), "filling copies")
                })?;
                metrics_done(&self.metrics, ty, filled);
                tracing::info!("{ty}: copies filled ({filled} documents)");
            }
            if store.migration(ty)?.is_none() {
                return Ok(());
            }
        }
    }

    fn run_migration_steps(&self, ty: &str) -> Result<(), StoreError> {
        // Batches sized to the store's time budget, so writers arriving during a migration
        // wait for at most about one budget's batch.
        let mut pacer = MigrationPacer::default();
        loop {
            // Take the store per batch, so a reload is seen between batches.
            let store = self.store();
            let step = match store.step_migration_paced(ty, &mut pacer) {
                Ok(s) => s,
                // Aborted (here or by another process), or finished by another process.
                Err(StoreError::NoMigration { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            if let Ok(seq) = store.last_seq() {
                self.wrote(seq);
            }
            match step {
                Step::Running(p) => {
                    self.metrics
                        .set_migration_progress(ty, p.done, p.total, p.phase);
                }
                Step::Switched(p) => {
                    metrics_done(&self.metrics, ty, p.done);
                    tracing::info!("{ty}: switched to version {}", p.to);
                    return store.collect_garbage(ty);
                }
            }
        }
    }

    /// Bring every type's stored state in line with the storage its schema set declares
    /// (at start, and after a reload): migrations are started or resumed and run in the
    /// background with copies to fill, each action logged. A type whose stored state cannot
    /// be brought in line is [`StoreError::StorageMismatch`]: the server does not start (a
    /// reload is refused first, see `AppState::storage_plans`).
    pub fn reconcile_storage(self: &Arc<Self>) -> Result<Vec<(String, StorageAction)>, StoreError> {
        let store = self.store();
        let mut done = Vec::new();
        for ty in store.schema_set().types() {
            let name = ty.name();
            let actions = store.reconcile_storage(name, MigrationOptions::default())?;
            for a in &actions {
                tracing::info!("{name}: {a}");
            }
            if store.migration(name)?.is_some() || store.filling(name)? {
                self.spawn_migration(name);
            }
            done.extend(actions.into_iter().map(|a| (name.to_owned(), a)));
        }
        Ok(done)
    }
}

/// Record a finished migration or fill in the metrics.
fn metrics_done(metrics: &Metrics, ty: &str, done: u64) {
    metrics.set_migration_progress(ty, done, done, "switched");
}

/// What every type of `store` would need to be kept as its schema set declares, or the first
/// type that cannot be: how a reload is checked before it is made.
pub fn storage_plans<B: Backend>(
    store: &Store<B>,
) -> Result<Vec<(String, StorageAction)>, StoreError> {
    let mut out = Vec::new();
    for ty in store.schema_set().types() {
        for a in store.storage_plan(ty.name())? {
            out.push((ty.name().to_owned(), a));
        }
    }
    Ok(out)
}

/// How a command uses a store it opens under a schema set, for [`claim_schema_set`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetClaim {
    /// It writes (`serve`, `import`, `migrate`, `token`): the set's name is recorded if the
    /// store has none yet; a store recorded under another name is refused.
    Write,
    /// It writes, and adopts a store recorded under another name: the set's name replaces
    /// the recorded one (what `--force-set` asks for).
    Adopt,
    /// It only reads (`export`, `status`): a store recorded under another name is refused,
    /// and nothing is ever written.
    Read,
    /// It only reads, whatever name the store recorded.
    ReadAnyway,
}

/// What [`claim_schema_set`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// The store is recorded under the set's name (now, or from before).
    Same,
    /// A store that recorded no name (new, or older than the record): read as it is.
    Unrecorded,
    /// The store was recorded under this other name; it was adopted (or read anyway).
    Other(String),
}

/// Check that `store` is kept under its schema set's name, and record the name the first
/// time a command that writes opens it. A store holds the documents of one application: its
/// types, versions and migration states mean something only under that application's schema
/// set, and a set that happens to share a type name (`todo`, `User`) would read, write and
/// migrate them as its own. One place for this, so every command and the server agree:
/// [`ServerError::ForeignSchemaSet`] names both sets.
pub fn claim_schema_set<B: Backend>(
    store: &Store<B>,
    claim: SetClaim,
) -> Result<Claimed, ServerError> {
    let name = store.schema_set().name();
    let recorded = |v: Option<Value>| v.and_then(|v| v.as_str().map(str::to_owned));
    // Looked at first, so that a refused store is left untouched (not even a write
    // transaction that changes nothing).
    let stored = match recorded(store.setting(SCHEMA_SET_KEY)?) {
        Some(s) => s,
        None if matches!(claim, SetClaim::Read | SetClaim::ReadAnyway) => {
            return Ok(Claimed::Unrecorded)
        }
        // The first process to open a store records its set, race-free across processes.
        None => {
            recorded(Some(store.init_setting(SCHEMA_SET_KEY, &json!(name))?)).unwrap_or_default()
        }
    };
    if stored == name {
        return Ok(Claimed::Same);
    }
    match claim {
        SetClaim::Write | SetClaim::Read => Err(ServerError::ForeignSchemaSet {
            stored,
            opened: name.to_owned(),
        }),
        SetClaim::Adopt => {
            store.put_setting(SCHEMA_SET_KEY, Some(&json!(name)))?;
            Ok(Claimed::Other(stored))
        }
        SetClaim::ReadAnyway => Ok(Claimed::Other(stored)),
    }
}

/// Make sure an admin token exists. With `env_token` (`MUTATIS_ADMIN_TOKEN`), that token is
/// stored as admin `admin` (nothing to print). Otherwise, if no admin token exists, one is
/// generated and returned, once: `init_setting` on [`ADMIN_BOOTSTRAP_KEY`] makes sure two
/// processes starting together generate only one (the loser prints nothing).
pub fn ensure_admin_token<B: Backend>(
    store: &Store<B>,
    env_token: Option<&str>,
) -> Result<Option<String>, ServerError> {
    let record = TokenRecord {
        name: "admin".into(),
        role: Role::Admin,
        created: crate::headers::rfc3339(unix_now()),
    };
    if let Some(token) = env_token {
        if !auth::is_well_formed(token) {
            return Err(ServerError::BadAdminToken);
        }
        store.init_setting(&auth::token_key(token), &record.to_json())?;
        return Ok(None);
    }
    let has_admin = store
        .settings(auth::TOKEN_SETTING_PREFIX)?
        .iter()
        .filter_map(|(_, v)| TokenRecord::from_json(v))
        .any(|r| r.role == Role::Admin);
    if has_admin {
        return Ok(None);
    }
    let token = auth::token_from_random(&random::<32>("the admin token")?);
    let hash = auth::hash_token(&token);
    let winner = store.init_setting(ADMIN_BOOTSTRAP_KEY, &json!({"hash": hash}))?;
    if winner.get("hash").and_then(Value::as_str) != Some(hash.as_str()) {
        // Another process generated it (and printed it), or an earlier run did and it was
        // revoked since: `mutatis token create` recovers from that.
        return Ok(None);
    }
    store.put_setting(&auth::token_key(&token), Some(&record.to_json()))?;
    Ok(Some(token))
}

/// The problem for a store error. Conflicts default to 412 (a stale `If-Match`); handlers that
/// create map them to 409 themselves. Backend failures are logged and answered 503 without
/// their internals.
pub fn store_problem(e: &StoreError) -> Problem {
    match e {
        StoreError::Schema(se) => match se.kind() {
            ErrorKind::UnknownType { name, .. } => Problem::new(
                404,
                "unknown-type",
                "Unknown type",
                format!("there is no type {name:?}"),
            )
            .with("type", name.as_str()),
            _ => Problem::bad_request(se.to_string()),
        },
        StoreError::UnknownVersion {
            type_name, version, ..
        } => Problem::new(400, "unknown-version", "Unknown version", e.to_string())
            .with("type", type_name.as_str())
            .with("version", *version),
        StoreError::InvalidId { .. } => {
            Problem::new(400, "invalid-id", "Invalid document id", e.to_string())
        }
        StoreError::Invalid { issues, .. } => Problem::invalid_document(e.to_string(), issues),
        StoreError::Conflict { actual, .. } => {
            Problem::new(412, "rev-conflict", "Rev conflict", e.to_string()).with(
                "currentRev",
                actual.clone().map_or(Value::Null, Value::String),
            )
        }
        StoreError::InvalidRev { .. } => {
            Problem::new(400, "invalid-rev", "Invalid rev", e.to_string())
        }
        StoreError::Translate { .. } => Problem::new(
            422,
            "untranslatable",
            "Document cannot be translated",
            e.to_string(),
        ),
        StoreError::StorageMismatch {
            type_name,
            declared,
            stored,
            ..
        } => Problem::new(409, "storage-mismatch", "Storage mismatch", e.to_string())
            .with("type", type_name.as_str())
            .with("declared", *declared)
            .with("stored", *stored),
        StoreError::MigrationInFlight { .. }
        | StoreError::NoMigration { .. }
        | StoreError::AlreadyAtVersion { .. }
        | StoreError::NoBackup { .. }
        | StoreError::BackupKept { .. }
        | StoreError::MigrationStopped { .. } => Problem::new(
            409,
            "migration-conflict",
            "Migration conflict",
            e.to_string(),
        ),
        StoreError::Busy {
            size, waited_ms, ..
        } => {
            tracing::warn!("store busy: {e}");
            Problem::new(
                503,
                "store-busy",
                "Store busy",
                format!(
                    "all {size} connections to the store stayed busy for {waited_ms} ms; \
                     the request can be retried"
                ),
            )
            .with("poolSize", *size)
            .with_header("retry-after", "1")
        }
        StoreError::Corrupt { .. }
        | StoreError::NotAStore { .. }
        | StoreError::NoStore { .. }
        | StoreError::Backend { .. } => {
            tracing::error!("store failure: {e}");
            Problem::unavailable()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_stable_problems() {
        let e = StoreError::Conflict {
            type_name: "t".into(),
            id: "1".into(),
            expected: Some("1-a".into()),
            actual: Some("2-b".into()),
        };
        let p = store_problem(&e);
        assert_eq!((p.status, p.name()), (412, "rev-conflict"));
        assert_eq!(p.extensions["currentRev"], "2-b");
        let e = StoreError::Backend {
            backend: "redb",
            operation: "commit",
            reason: "secret internals".into(),
        };
        let p = store_problem(&e);
        assert_eq!(p.status, 503);
        assert!(!p.detail.contains("secret"));
        let e = StoreError::Busy {
            backend: "postgres",
            size: 2,
            waited_ms: 5000,
            reason: "timed out waiting for connection".into(),
        };
        let p = store_problem(&e);
        assert_eq!((p.status, p.name()), (503, "store-busy"));
        assert_eq!(p.extensions["poolSize"], 2);
        let e = StoreError::Invalid {
            type_name: "t".into(),
            version: 1,
            id: "1".into(),
            issues: vec![mutatis_schema::ValidationIssue {
                pointer: "/a".into(),
                schema_pointer: "/properties/a/type".into(),
                message: "not a string".into(),
            }],
        };
        let p = store_problem(&e);
        assert_eq!((p.status, p.name()), (422, "invalid-document"));
        assert_eq!(p.extensions["errors"][0]["pointer"], "/a");
        // A conflict resolution naming a rev it cannot use, and one that is not a rev.
        let e = StoreError::Conflict {
            type_name: "t".into(),
            id: "1".into(),
            expected: Some("9-ab".into()),
            actual: Some("2-cd".into()),
        };
        assert_eq!(store_problem(&e).name(), "rev-conflict");
        let e = "nine".parse::<mutatis_store::Rev>().unwrap_err();
        let p = store_problem(&e);
        assert_eq!((p.status, p.name()), (400, "invalid-rev"));
    }
}
