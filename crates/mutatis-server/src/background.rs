//! What replication jobs ([`crate::jobs`]) and webhooks ([`crate::webhooks`]) share: both
//! are background tasks an admin configures, kept in store settings so they outlive the
//! process, and run by one process of the cluster at a time: the holder of the task's
//! lease ([`crate::lease`]). Every process runs [`balance`] every [`LEASE_RENEW`]: it takes
//! or renews the leases it can, starts the tasks it now holds, stops those it lost, and
//! stores the status of those it runs, so every process shows the same status.
//!
//! A task of a [`Background`] kind has these settings: its configuration (`<prefix><id>`),
//! one mark beside it (`<prefix><id>/<mark>`: a job's "finished", a webhook's checkpoint),
//! its lease (`<prefix><id>/lease`) and its last stored status (`<prefix><id>/status`). The
//! tasks this process runs are in a [`Registry`], by id. The
//! list, get and delete handlers are the same for both kinds ([`list`], [`get`],
//! [`delete`]); each kind says how it shows one task ([`Background::show`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mutatis_store::{Backend, Store, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::AbortHandle;

use crate::app::{random, AppState};
use crate::auth::{self, Role};
use crate::http::{json_body, json_response, require};
use crate::lease::{self, lease_json, lease_key, now_ms, LEASE_RENEW};
use crate::problem::Problem;

/// A mutex's guard; a task that panicked holding it leaves a status worth reading still.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A kind of admin-configured background task: where its settings are, what it is called,
/// where this process's running ones are, and how the API shows one.
pub trait Background: 'static {
    /// The stored configuration.
    type Config: Serialize + DeserializeOwned + Clone + Send + 'static;
    /// What the running task reports, updated as it goes.
    type Status: Clone + Send + 'static;
    /// The settings prefix: a task's configuration is `<PREFIX><id>`.
    const PREFIX: &'static str;
    /// The setting beside the configuration: `<PREFIX><id>/<MARK>`.
    const MARK: &'static str;
    /// What one task is called in messages ("webhook").
    const NOUN: &'static str;
    /// What a new id is drawn for, in an error about the random source.
    const ID_PURPOSE: &'static str;
    /// The collection's route (`/admin/webhooks`); a task is `<ROUTE>/<id>`.
    const ROUTE: &'static str;
    /// The member of the list answer that holds the tasks (`webhooks`).
    const LIST_MEMBER: &'static str;
    /// What reading every task's settings is, in a store error.
    const READING: &'static str;

    /// This process's running tasks of this kind.
    fn registry<B: Backend + 'static>(state: &AppState<B>)
        -> &Registry<Self::Config, Self::Status>;

    /// The 400 of a configuration that does not check out.
    fn invalid(detail: String) -> Problem;

    /// A task as the API shows it (never with its secrets); `status` when it runs here
    /// (else the status its holder stored, in `stored`).
    fn show(id: &str, stored: &Stored<Self::Config>, status: Option<&Self::Status>) -> Value;

    /// A running task's status as stored for the other processes to show.
    fn status_json(status: &Self::Status) -> Value;

    /// Whether a stored task is still to be run by someone (a job that finished is not).
    fn wanted(stored: &Stored<Self::Config>) -> bool {
        stored.config.is_some()
    }

    /// Start the task here (this process has just taken its lease).
    fn start<B: Backend + 'static>(
        state: &Arc<AppState<B>>,
        id: &str,
        stored: &Stored<Self::Config>,
    );

    /// The settings key of a task's stored status.
    fn status_key(id: &str) -> String {
        format!("{}{id}/status", Self::PREFIX)
    }

    /// The settings key of a task's lease.
    fn lease_key(id: &str) -> String {
        lease_key(&Self::config_key(id))
    }

    /// The settings key of a task's configuration.
    fn config_key(id: &str) -> String {
        format!("{}{id}", Self::PREFIX)
    }

    /// The settings key of a task's mark.
    fn mark_key(id: &str) -> String {
        format!("{}{id}/{}", Self::PREFIX, Self::MARK)
    }

    /// The 404 of an id that is not a task of this kind.
    fn not_found(id: &str) -> Problem {
        Problem::new(
            404,
            "not-found",
            "Not found",
            format!("there is no {} {id:?}", Self::NOUN),
        )
    }
}

/// Whether `id` can be a task id (what [`new_task`] makes: hex digits). Anything else is not
/// a task, and never becomes part of a settings key.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A task in this process: its configuration, its status and its task (`None`: it never
/// started, its configuration being refused).
struct Running<C, S> {
    config: C,
    status: Arc<Mutex<S>>,
    task: Option<AbortHandle>,
}

/// The tasks of one kind this process runs, by id. Dropping it stops them.
pub struct Registry<C, S> {
    running: Mutex<HashMap<String, Running<C, S>>>,
}

impl<C, S> Default for Registry<C, S> {
    fn default() -> Self {
        Registry {
            running: Mutex::new(HashMap::new()),
        }
    }
}

impl<C, S> Registry<C, S> {
    /// A task's status, if it runs here.
    pub fn status(&self, id: &str) -> Option<S>
    where
        S: Clone,
    {
        lock(&self.running).get(id).map(|r| lock(&r.status).clone())
    }

    /// Record task `id`, replacing (and stopping) one of the same id.
    pub fn insert(&self, id: &str, config: C, status: Arc<Mutex<S>>, task: Option<AbortHandle>) {
        let old = lock(&self.running).insert(
            id.to_owned(),
            Running {
                config,
                status,
                task,
            },
        );
        if let Some(t) = old.and_then(|o| o.task) {
            t.abort();
        }
    }

    /// Whether task `id` is in this process (running, or ended here).
    pub fn runs(&self, id: &str) -> bool {
        lock(&self.running).contains_key(id)
    }

    /// The ids of the tasks in this process.
    pub fn ids(&self) -> Vec<String> {
        lock(&self.running).keys().cloned().collect()
    }

    /// The status of every task in this process, by id.
    pub fn statuses(&self) -> Vec<(String, S)>
    where
        S: Clone,
    {
        lock(&self.running)
            .iter()
            .map(|(id, r)| (id.clone(), lock(&r.status).clone()))
            .collect()
    }

    /// Stop a task and forget it; whether it ran here.
    pub fn stop(&self, id: &str) -> bool {
        match lock(&self.running).remove(id) {
            Some(r) => {
                if let Some(t) = r.task {
                    t.abort();
                }
                true
            }
            None => false,
        }
    }

    /// The ids and configurations of the tasks that were started and that `keep` picks.
    pub fn started_where(&self, keep: impl Fn(&C, &S) -> bool) -> Vec<(String, C)>
    where
        C: Clone,
    {
        lock(&self.running)
            .iter()
            .filter(|(_, r)| r.task.is_some() && keep(&r.config, &lock(&r.status)))
            .map(|(id, r)| (id.clone(), r.config.clone()))
            .collect()
    }
}

impl<C, S> Drop for Registry<C, S> {
    fn drop(&mut self) {
        for r in lock(&self.running).values() {
            if let Some(t) = &r.task {
                t.abort();
            }
        }
    }
}

/// A task's stored settings.
pub struct Stored<C> {
    /// Its configuration (`None`: the setting does not parse).
    pub config: Option<C>,
    /// Its mark, if it has one.
    pub mark: Option<Value>,
    /// Its lease, if a process took it.
    pub lease: Option<Value>,
    /// The status its holder last stored.
    pub status: Option<Value>,
}

impl<C> Default for Stored<C> {
    fn default() -> Self {
        Stored {
            config: None,
            mark: None,
            lease: None,
            status: None,
        }
    }
}

/// Every task of kind `K` in the settings, by id. A mark without its configuration (the
/// task deleted while it wrote the mark) is ignored.
pub fn stored<K: Background, B: Backend>(
    store: &Store<B>,
) -> Result<BTreeMap<String, Stored<K::Config>>, StoreError> {
    let mut out: BTreeMap<String, Stored<K::Config>> = BTreeMap::new();
    let mut marks = Vec::new();
    for (key, value) in store.settings(K::PREFIX)? {
        let Some(rest) = key.strip_prefix(K::PREFIX) else {
            continue;
        };
        match rest.split_once('/') {
            None => {
                out.entry(rest.to_owned()).or_default().config = serde_json::from_value(value).ok();
            }
            Some((id, mark)) if mark == K::MARK || mark == "lease" || mark == "status" => {
                marks.push((id.to_owned(), mark.to_owned(), value))
            }
            Some(_) => {}
        }
    }
    for (id, mark, value) in marks {
        if let Some(task) = out.get_mut(&id) {
            match mark.as_str() {
                "lease" => task.lease = Some(value),
                "status" => task.status = Some(value),
                _ => task.mark = Some(value),
            }
        }
    }
    Ok(out)
}

/// Task `id` as the API shows it; 404 when there is none.
pub async fn one<K: Background, B: Backend + 'static>(
    state: &AppState<B>,
    id: &str,
) -> Result<Value, Problem> {
    if !valid_id(id) {
        return Err(K::not_found(id));
    }
    let keys = [
        K::config_key(id),
        K::mark_key(id),
        K::lease_key(id),
        K::status_key(id),
    ];
    let [config, mark, lease, status] = state
        .with_store(move |s| {
            let mut out: [Option<Value>; 4] = Default::default();
            for (slot, key) in out.iter_mut().zip(&keys) {
                *slot = s.setting(key)?;
            }
            Ok(out)
        })
        .await?;
    let Some(config) = config else {
        return Err(K::not_found(id));
    };
    let task = Stored {
        config: serde_json::from_value(config).ok(),
        mark,
        lease,
        status,
    };
    Ok(show::<K, B>(state, id, &task))
}

/// A task as the API shows it, with its lease.
fn show<K: Background, B: Backend + 'static>(
    state: &AppState<B>,
    id: &str,
    task: &Stored<K::Config>,
) -> Value {
    let mut out = K::show(id, task, K::registry(state).status(id).as_ref());
    out["lease"] = task
        .lease
        .as_ref()
        .map_or(Value::Null, |l| lease_json(l, now_ms()));
    out
}

/// One pass of the lease loop for kind `K`: take or renew the lease of every task still
/// wanted (storing, with a renewal, the status of the task running here), start the tasks
/// this process now holds, and stop those it lost or that were deleted.
pub async fn balance<K: Background, B: Backend + 'static>(
    state: &Arc<AppState<B>>,
) -> Result<(), StoreError> {
    let registry = K::registry(state);
    let store = state.store();
    let me = state.holder.clone();
    let statuses: HashMap<String, Value> = registry
        .statuses()
        .into_iter()
        .map(|(id, s)| (id, K::status_json(&s)))
        .collect();
    let claimed = tokio::task::spawn_blocking(move || {
        let tasks = stored::<K, B>(&store)?;
        let now = now_ms();
        let mut out = Vec::with_capacity(tasks.len());
        for (id, task) in tasks {
            if !K::wanted(&task) {
                out.push((id, None, task));
                continue;
            }
            let (lease, status_key) = (K::lease_key(&id), K::status_key(&id));
            let status = statuses.get(&id);
            let held = store.update_settings(|s| {
                let (held, _) = lease::claim(s, &lease, &me, now)?;
                if let (true, Some(st)) = (held, status) {
                    s.put(&status_key, Some(st))?;
                }
                Ok(held)
            })?;
            out.push((id, Some(held), task));
        }
        Ok::<_, StoreError>(out)
    })
    .await
    .map_err(|e| StoreError::Backend {
        backend: "settings",
        operation: K::READING,
        reason: e.to_string(),
    })??;
    let mut present = HashSet::new();
    for (id, held, task) in claimed {
        match held {
            Some(true) if !registry.runs(&id) => {
                tracing::info!(task = %id, kind = K::NOUN, "took the lease; starting");
                K::start(state, &id, &task);
            }
            Some(false) if registry.runs(&id) => {
                tracing::info!(task = %id, kind = K::NOUN, "another process holds the lease; stopping");
                registry.stop(&id);
            }
            _ => {}
        }
        present.insert(id);
    }
    for id in registry.ids() {
        if !present.contains(&id) {
            registry.stop(&id);
        }
    }
    Ok(())
}

/// Run [`balance`] for kind `K` every [`LEASE_RENEW`] while the state lives.
pub fn keep_balancing<K: Background, B: Backend + 'static>(state: &Arc<AppState<B>>) {
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(LEASE_RENEW).await;
            let Some(state) = weak.upgrade() else { return };
            if let Err(e) = balance::<K, B>(&state).await {
                tracing::warn!(kind = K::NOUN, "renewing leases: {e}");
            }
        }
    });
}

/// `GET <ROUTE>` (admin): `{"<LIST_MEMBER>": [task…]}`.
pub async fn list<K: Background, B: Backend + 'static>(
    state: &AppState<B>,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    require(state, headers, Role::Admin).await?;
    let tasks = state.with_store(|s| stored::<K, B>(s)).await?;
    let out: Vec<Value> = tasks
        .iter()
        .map(|(id, task)| show::<K, B>(state, id, task))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ K::LIST_MEMBER: out }),
    ))
}

/// `GET <ROUTE>/{id}` (admin).
pub async fn get<K: Background, B: Backend + 'static>(
    state: &AppState<B>,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response, Problem> {
    require(state, headers, Role::Admin).await?;
    Ok(json_response(
        StatusCode::OK,
        &one::<K, B>(state, id).await?,
    ))
}

/// `DELETE <ROUTE>/{id}` (admin): stop the task and forget it (its configuration and its
/// mark). 204; 404 if there is none.
pub async fn delete<K: Background, B: Backend + 'static>(
    state: &AppState<B>,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response, Problem> {
    require(state, headers, Role::Admin).await?;
    if !valid_id(id) {
        return Err(K::not_found(id));
    }
    let ran = K::registry(state).stop(id);
    let (config_key, mark_key) = (K::config_key(id), K::mark_key(id));
    let (lease_key, status_key) = (K::lease_key(id), K::status_key(id));
    let existed = state
        .with_store(move |s| {
            // In one transaction: the holder's next renewal finds nothing, and stops it.
            s.update_settings(|st| {
                let existed = st.get(&config_key)?.is_some();
                for key in [&config_key, &mark_key, &lease_key, &status_key] {
                    st.put(key, None)?;
                }
                Ok(existed)
            })
        })
        .await?;
    if !existed && !ran {
        return Err(K::not_found(id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The body of an admin's `POST <ROUTE>`: a `R`, or the kind's 400 saying why not.
pub async fn create_request<K: Background, B: Backend + 'static, R: DeserializeOwned>(
    state: &AppState<B>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<R, Problem> {
    require(state, headers, Role::Admin).await?;
    let body = json_body(headers, body)?;
    serde_json::from_value(body)
        .map_err(|e| K::invalid(format!("the body is not a {}: {e}", K::NOUN)))
}

/// A new task's id and its configuration as the setting to store.
pub fn new_task<K: Background>(config: &K::Config) -> Result<(String, Value), Problem> {
    let id = auth::hex(&random::<8>(K::ID_PURPOSE).map_err(|e| {
        tracing::error!("{e}");
        Problem::internal()
    })?);
    let value = serde_json::to_value(config).map_err(|e| {
        tracing::error!("a {} does not serialise: {e}", K::NOUN);
        Problem::internal()
    })?;
    Ok((id, value))
}

/// Store and start a new task with `start`, in a task of its own that runs to its end even
/// if the request is dropped: a stored task is a running one. Then answer 201 with the
/// task, and its `Location`.
pub async fn create<K: Background, B: Backend + 'static>(
    state: &AppState<B>,
    id: &str,
    start: impl Future<Output = Result<(), Problem>> + Send + 'static,
) -> Result<Response, Problem> {
    tokio::spawn(start).await.map_err(|e| {
        tracing::error!("creating a {}: {e}", K::NOUN);
        Problem::internal()
    })??;
    let report = one::<K, B>(state, id).await?;
    let mut resp = json_response(StatusCode::CREATED, &report);
    if let Ok(v) = HeaderValue::from_str(&format!("{}/{id}", K::ROUTE)) {
        resp.headers_mut().insert(LOCATION, v);
    }
    Ok(resp)
}
