//! `/admin/replications` (admin role): replication jobs this node runs in the background.
//!
//! A job replicates from a source to a target, either of which may be this node (`"self"`)
//! or another node by URL; with neither, the node is a replicator between two others. The
//! loop is [`mutatis_replication::replicate`]; this node's end is a
//! [`mutatis_replication::LocalPeer`] on its store, wrapped so that its feed wakes local
//! subscribers and waits like `GET /replication/changes?waitMs` does.
//!
//! A job's configuration is a store setting (`replication/job/<id>`), so it survives a
//! restart: [`AppState::resume_jobs`] starts every job again at start-up (one-shot jobs
//! that finished are marked `replication/job/<id>/finished` and are not run again). The
//! progress lives in the process running the job. Remote tokens are stored as given: the
//! job must be able to use them after a restart. Settings are reachable only by admins and
//! whoever holds the database.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use mutatis_client::HttpPeer;
use mutatis_replication::{
    replicate, ApplyRequest, ApplyResponse, ChangesBatch, ChangesRequest, LocalPeer, NodeInfo,
    Options, Outcome, Peer, PeerError, Progress, Selector,
};
use mutatis_store::{Backend, LossPolicy, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::app::{unix_now, AppState};
use crate::background::{self, lock, Background, Registry, Stored};
use crate::problem::Problem;

/// The prefix of the settings that hold the jobs (`replication/job/<id>`).
pub const JOB_SETTING_PREFIX: &str = "replication/job/";

/// What a job's end names to mean this node.
pub const SELF: &str = "self";

/// Feed entries per batch of a job.
const JOB_BATCH: usize = 500;

/// The settings key of a job's configuration.
pub fn job_key(id: &str) -> String {
    format!("{JOB_SETTING_PREFIX}{id}")
}

/// Replication jobs as a kind of background task: a one-shot job that finished is marked
/// `replication/job/<id>/finished` (not run again at start-up).
struct JobTasks;

impl Background for JobTasks {
    type Config = JobConfig;
    type Status = JobStatus;
    const PREFIX: &'static str = JOB_SETTING_PREFIX;
    const MARK: &'static str = "finished";
    const NOUN: &'static str = "replication job";
    const ID_PURPOSE: &'static str = "a replication job id";
    const ROUTE: &'static str = "/admin/replications";
    const LIST_MEMBER: &'static str = "replications";
    const READING: &'static str = "reading replication jobs";

    fn registry<B: Backend + 'static>(state: &AppState<B>) -> &Registry<JobConfig, JobStatus> {
        &state.jobs.0
    }

    fn invalid(detail: String) -> Problem {
        invalid(detail)
    }

    fn show(id: &str, stored: &Stored<JobConfig>, status: Option<&JobStatus>) -> Value {
        job_json(id, stored, status)
    }

    fn status_json(status: &JobStatus) -> Value {
        json!({
            "state": status.state.as_str(),
            "error": status.error,
            "progress": status.progress.as_ref().map_or(Value::Null, progress_json),
        })
    }

    fn wanted(stored: &Stored<JobConfig>) -> bool {
        stored.config.is_some() && stored.mark.is_none()
    }

    fn start<B: Backend + 'static>(state: &Arc<AppState<B>>, id: &str, stored: &Stored<JobConfig>) {
        if let Some(config) = &stored.config {
            state.spawn_job(id, config.clone());
        }
    }
}

/// A job's end, fenced by the job's lease: a batch is applied and a checkpoint written only
/// while this process holds the lease (a paused old holder that wakes after another process
/// took the job over stops at its next batch, with nothing applied twice by it).
struct Fenced<P, B: Backend + 'static> {
    inner: P,
    state: Arc<AppState<B>>,
    lease: String,
}

impl<P: Peer, B: Backend + 'static> Fenced<P, B> {
    fn new(inner: P, state: &Arc<AppState<B>>, id: &str) -> Fenced<P, B> {
        Fenced {
            inner,
            state: Arc::clone(state),
            lease: JobTasks::lease_key(id),
        }
    }

    async fn check(&self) -> Result<(), PeerError> {
        let (store, key, me) = (
            self.state.store(),
            self.lease.clone(),
            self.state.holder.clone(),
        );
        let mine = tokio::task::spawn_blocking(move || {
            store
                .setting(&key)
                .map(|l| crate::lease::is_mine(l.as_ref(), &me, crate::lease::now_ms()))
        })
        .await;
        match mine {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(PeerError::Refused {
                peer: self.inner.name(),
                status: 409,
                problem: "lease-lost".into(),
                detail: "another process of the cluster holds this job's lease now".into(),
            }),
            Ok(Err(e)) => Err(PeerError::Unavailable {
                peer: self.inner.name(),
                message: format!("reading the job's lease: {e}"),
                retry_after: None,
            }),
            Err(e) => Err(PeerError::Unavailable {
                peer: self.inner.name(),
                message: format!("reading the job's lease: {e}"),
                retry_after: None,
            }),
        }
    }
}

impl<P: Peer, B: Backend + 'static> Peer for Fenced<P, B> {
    fn name(&self) -> String {
        self.inner.name()
    }

    async fn info(&self) -> Result<NodeInfo, PeerError> {
        self.inner.info().await
    }

    async fn manifest(&self) -> Result<Value, PeerError> {
        self.inner.manifest().await
    }

    async fn changes(&self, req: &ChangesRequest) -> Result<ChangesBatch, PeerError> {
        self.inner.changes(req).await
    }

    async fn apply(&self, req: &ApplyRequest) -> Result<ApplyResponse, PeerError> {
        self.check().await?;
        self.inner.apply(req).await
    }

    async fn checkpoint(&self, id: &str) -> Result<Option<u64>, PeerError> {
        self.inner.checkpoint(id).await
    }

    async fn put_checkpoint(&self, id: &str, seq: u64) -> Result<(), PeerError> {
        self.check().await?;
        self.inner.put_checkpoint(id, seq).await
    }
}

/// A job as stored: what `POST /admin/replications` was given, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobConfig {
    /// `"self"` or the source node's URL.
    pub source: String,
    /// `"self"` or the target node's URL.
    pub target: String,
    /// The bearer token for a remote source (stored as given: the job needs it to run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_token: Option<String>,
    /// The bearer token for a remote target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_token: Option<String>,
    /// Only these types (empty: all).
    #[serde(default)]
    pub types: Vec<String>,
    /// Only documents matching this selector.
    #[serde(default)]
    pub selector: Selector,
    /// What the target does with documents its version cannot hold.
    #[serde(default)]
    pub policy: LossPolicy,
    /// Keep following the source's feed once caught up.
    #[serde(default)]
    pub continuous: bool,
    /// When the job was created (RFC 3339).
    #[serde(default)]
    pub created: String,
}

/// The body of `POST /admin/replications`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JobRequest {
    source: String,
    target: String,
    #[serde(default)]
    source_token: Option<String>,
    #[serde(default)]
    target_token: Option<String>,
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    selector: Selector,
    #[serde(default)]
    policy: LossPolicy,
    #[serde(default)]
    continuous: bool,
}

/// One end of a job, checked.
enum End {
    /// This node's store.
    Local,
    /// Another node.
    Remote(HttpPeer),
}

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::new(400, "invalid-job", "Invalid replication job", detail)
}

/// Check one end of a job: `"self"` (no token) or an http(s) URL.
fn end(which: &str, url: &str, token: Option<&String>) -> Result<End, Problem> {
    if url == SELF {
        if token.is_some() {
            return Err(invalid(format!(
                "`{which}Token` is for a remote {which}; this node needs none"
            )));
        }
        return Ok(End::Local);
    }
    // By the parsed scheme, as the peer will use it: `HTTPS://` (or leading blanks, which
    // URL parsing drops) is https too.
    let https = reqwest::Url::parse(url).is_ok_and(|u| u.scheme() == "https");
    if https && !cfg!(feature = "rustls") {
        return Err(invalid(format!(
            "{which} {url}: this server was built without TLS (the `rustls` feature); use http://"
        )));
    }
    HttpPeer::new(url, token.cloned())
        .map(End::Remote)
        .map_err(|e| invalid(format!("{which}: {e}")))
}

impl JobConfig {
    /// Check the configuration and build its two ends.
    fn ends(&self) -> Result<(End, End), Problem> {
        if self.source == SELF && self.target == SELF {
            return Err(invalid(
                "the source and the target are both this node; one of them must be another node's URL",
            ));
        }
        if let Some(p) = self
            .selector
            .keys()
            .find(|p| !p.is_empty() && !p.starts_with('/'))
        {
            return Err(invalid(format!(
                "selector: {p:?} is not a JSON pointer (it must start with `/`)"
            )));
        }
        Ok((
            end("source", &self.source, self.source_token.as_ref())?,
            end("target", &self.target, self.target_token.as_ref())?,
        ))
    }

    fn options(&self) -> Options {
        Options {
            types: self.types.clone(),
            selector: self.selector.clone(),
            policy: self.policy,
            batch_size: JOB_BATCH,
            continuous: self.continuous,
            // A continuous job outlives any outage of a peer; a one-shot job gives up like
            // `mutatis replicate` does.
            max_retries: if self.continuous {
                None
            } else {
                Options::default().max_retries
            },
        }
    }
}

/// Where a job stands in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Replicating (or, continuous, waiting for changes).
    Running,
    /// A one-shot job that caught up.
    Finished,
    /// Stopped by an error a retry will not mend (a refusal, or a peer unavailable past
    /// the retries of a one-shot job).
    Failed,
}

impl JobState {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Finished => "finished",
            JobState::Failed => "failed",
        }
    }
}

/// A job's state and progress, updated by its task.
#[derive(Debug, Clone)]
struct JobStatus {
    state: JobState,
    error: Option<String>,
    progress: Option<Progress>,
}

/// The jobs this process runs, by id (a job whose configuration was refused is kept, failed,
/// without a task).
#[derive(Default)]
pub struct Jobs(Registry<JobConfig, JobStatus>);

/// This node as an end of its own job: its store, with the feed's waiting and waking that
/// the HTTP routes give a remote replicator.
struct SelfPeer<B: Backend + 'static> {
    local: LocalPeer<B>,
    state: Arc<AppState<B>>,
}

impl<B: Backend + 'static> SelfPeer<B> {
    fn new(state: &Arc<AppState<B>>) -> SelfPeer<B> {
        SelfPeer {
            local: LocalPeer::new(state.store(), "this node", state.node_id.clone()),
            state: Arc::clone(state),
        }
    }

    fn store(&self) -> Arc<Store<B>> {
        Arc::clone(self.local.store())
    }
}

impl<B: Backend + 'static> Peer for SelfPeer<B> {
    fn name(&self) -> String {
        self.local.name()
    }

    async fn info(&self) -> Result<NodeInfo, PeerError> {
        self.local.info().await
    }

    async fn manifest(&self) -> Result<Value, PeerError> {
        self.local.manifest().await
    }

    /// A batch; with `wait_ms` and nothing new, wait for a write as
    /// `GET /replication/changes` does (a [`LocalPeer`] answers at once, which would make a
    /// caught-up continuous job spin).
    async fn changes(&self, req: &ChangesRequest) -> Result<ChangesBatch, PeerError> {
        let deadline = Instant::now() + Duration::from_millis(req.wait_ms.unwrap_or(0));
        let mut rx = self.state.feed_watch();
        loop {
            rx.borrow_and_update();
            let batch = self.local.changes(req).await?;
            let now = Instant::now();
            if batch.last_seq > req.since || now >= deadline {
                return Ok(batch);
            }
            // Woken by a write of this process, or after the poll interval for writes of
            // other processes sharing the store.
            let _ = tokio::time::timeout(self.state.feed_poll().min(deadline - now), rx.changed())
                .await;
        }
    }

    /// Apply a batch, then wake this node's feed readers if it wrote anything (as
    /// `POST /replication/apply` does).
    async fn apply(&self, req: &ApplyRequest) -> Result<ApplyResponse, PeerError> {
        let resp = self.local.apply(req).await?;
        let wrote = resp.results.iter().any(|r| {
            matches!(
                r.outcome,
                Outcome::Stored | Outcome::FastForward | Outcome::Conflict
            )
        });
        if wrote {
            let store = self.store();
            match tokio::task::spawn_blocking(move || store.last_seq()).await {
                Ok(Ok(seq)) => self.state.wrote(seq),
                // The batch is stored; readers still see it within the poll interval.
                Ok(Err(e)) => tracing::warn!("reading the feed head after a batch: {e}"),
                Err(e) => tracing::warn!("reading the feed head after a batch: {e}"),
            }
        }
        Ok(resp)
    }

    async fn checkpoint(&self, id: &str) -> Result<Option<u64>, PeerError> {
        self.local.checkpoint(id).await
    }

    async fn put_checkpoint(&self, id: &str, seq: u64) -> Result<(), PeerError> {
        self.local.put_checkpoint(id, seq).await
    }
}

/// This node as an end of job `id`, fenced by the job's lease.
fn fence_self<B: Backend + 'static>(state: &Arc<AppState<B>>, id: &str) -> Fenced<SelfPeer<B>, B> {
    Fenced::new(SelfPeer::new(state), state, id)
}

/// `peer`, naming this node's current release with every request: the other node counts the
/// job's traffic in its usage per release under the release this node's apps speak. A job
/// between two other nodes names none (the documents are neither end's of this node).
fn speaking_as_this_node<B: Backend + 'static>(state: &AppState<B>, peer: HttpPeer) -> HttpPeer {
    let store = state.store();
    let release = &store.schema_set().current().name;
    match peer.clone().speaking(release) {
        Ok(speaking) => speaking,
        Err(e) => {
            tracing::debug!("replication job: {e}; its traffic is not counted under a release");
            peer
        }
    }
}

/// Run a job to its end (a continuous one runs until its task is aborted), recording its
/// progress in `status`.
async fn run_job<B: Backend + 'static>(
    state: Arc<AppState<B>>,
    id: String,
    config: JobConfig,
    ends: (End, End),
    status: Arc<Mutex<JobStatus>>,
) {
    let opts = config.options();
    let progress = Arc::clone(&status);
    let on_batch = move |p: &Progress| {
        lock(&progress).progress = Some(p.clone());
    };
    let fence = |p| Fenced::new(p, &state, &id);
    let result = match ends {
        (End::Local, End::Remote(target)) => {
            replicate(
                &fence_self(&state, &id),
                &Fenced::new(speaking_as_this_node(&state, target), &state, &id),
                &opts,
                on_batch,
            )
            .await
        }
        (End::Remote(source), End::Local) => {
            replicate(
                &Fenced::new(speaking_as_this_node(&state, source), &state, &id),
                &fence_self(&state, &id),
                &opts,
                on_batch,
            )
            .await
        }
        (End::Remote(source), End::Remote(target)) => {
            replicate(&fence(source), &fence(target), &opts, on_batch).await
        }
        (End::Local, End::Local) => {
            // Refused when the job was created or loaded; kept as a failure, not a panic.
            let mut s = lock(&status);
            s.state = JobState::Failed;
            s.error = Some("the source and the target are both this node".into());
            return;
        }
    };
    match result {
        Ok(done) => {
            tracing::info!(job = %id, seq = done.seq, "replication job finished");
            {
                let mut s = lock(&status);
                s.state = JobState::Finished;
                s.progress = Some(done.clone());
            }
            let store = state.store();
            let (key, lease, status_key) = (
                JobTasks::mark_key(&id),
                JobTasks::lease_key(&id),
                JobTasks::status_key(&id),
            );
            let mark = json!({"at": crate::headers::rfc3339(unix_now()), "seq": done.seq});
            let shown = JobTasks::status_json(&lock(&status));
            let me = state.holder.clone();
            let marked = tokio::task::spawn_blocking(move || {
                store.update_settings(|s| {
                    if crate::lease::held(s, &lease, &me)? {
                        s.put(&key, Some(&mark))?;
                        s.put(&status_key, Some(&shown))?;
                    }
                    Ok(())
                })
            })
            .await;
            if !matches!(marked, Ok(Ok(()))) {
                // It runs again after a restart: harmless, it resumes from its checkpoint.
                tracing::warn!(job = %id, "cannot mark the job finished");
            }
        }
        Err(e) => {
            tracing::warn!(job = %id, error = %e, "replication job failed");
            let mut s = lock(&status);
            s.state = JobState::Failed;
            s.error = Some(e.to_string());
        }
    }
}

impl<B: Backend + 'static> AppState<B> {
    /// Start job `id` on the runtime (replacing a task of the same id, if any). A
    /// configuration that does not check out is recorded as a failed job.
    fn spawn_job(self: &Arc<Self>, id: &str, config: JobConfig) {
        let (status, ends) = match config.ends() {
            Ok(ends) => (
                JobStatus {
                    state: JobState::Running,
                    error: None,
                    progress: None,
                },
                Some(ends),
            ),
            Err(p) => (
                JobStatus {
                    state: JobState::Failed,
                    error: Some(p.detail),
                    progress: None,
                },
                None,
            ),
        };
        let status = Arc::new(Mutex::new(status));
        let task = ends.map(|ends| {
            tokio::spawn(run_job(
                Arc::clone(self),
                id.to_owned(),
                config.clone(),
                ends,
                Arc::clone(&status),
            ))
            .abort_handle()
        });
        self.jobs.0.insert(id, config, status, task);
    }

    /// Start again the running jobs with an end on this node, after `POST /admin/reload`:
    /// this node's end speaks the schema set it was started with, and a job must name the
    /// manifest its documents are in. They resume from their checkpoints.
    pub fn restart_local_jobs(self: &Arc<Self>) {
        let local = self.jobs.0.started_where(|config, status| {
            status.state == JobState::Running && (config.source == SELF || config.target == SELF)
        });
        for (id, config) in local {
            tracing::info!(job = %id, "restarting replication job on the reloaded schema set");
            self.spawn_job(&id, config);
        }
    }

    /// Start the stored replication jobs that are not finished and whose lease this process
    /// can take (at start-up), and keep renewing and taking over leases. Must be called on
    /// the runtime. Returns the ids started here.
    pub async fn resume_jobs(self: &Arc<Self>) -> Result<Vec<String>, StoreError> {
        background::balance::<JobTasks, B>(self).await?;
        background::keep_balancing::<JobTasks, B>(self);
        Ok(self.jobs.0.ids())
    }
}

fn progress_json(p: &Progress) -> Value {
    json!({
        "checkpoint": p.checkpoint,
        "resumedFrom": p.resumed_from,
        "seq": p.seq,
        "head": p.head,
        "tally": serde_json::to_value(&p.tally).unwrap_or(Value::Null),
    })
}

/// A job as the API shows it: its configuration without tokens, its state and progress.
fn job_json(id: &str, job: &Stored<JobConfig>, status: Option<&JobStatus>) -> Value {
    let mut out = json!({"id": id});
    if let Some(c) = &job.config {
        out["source"] = json!(c.source);
        out["target"] = json!(c.target);
        out["sourceAuthenticated"] = json!(c.source_token.is_some());
        out["targetAuthenticated"] = json!(c.target_token.is_some());
        out["types"] = json!(c.types);
        out["selector"] = json!(c.selector);
        out["policy"] = json!(c.policy.as_str());
        out["continuous"] = json!(c.continuous);
        out["created"] = json!(c.created);
    }
    match status {
        Some(s) => {
            out["state"] = json!(s.state.as_str());
            if let Some(e) = &s.error {
                out["error"] = json!(e);
            }
            out["progress"] = s.progress.as_ref().map_or(Value::Null, progress_json);
        }
        None => match &job.mark {
            // Finished before this process started: only the last sequence is known.
            Some(mark) => {
                out["state"] = json!(JobState::Finished.as_str());
                out["finishedAt"] = mark.get("at").cloned().unwrap_or(Value::Null);
                out["progress"] = json!({"seq": mark.get("seq").cloned().unwrap_or(Value::Null)});
            }
            // Run by another process sharing the store: what it last stored.
            None => match &job.status {
                Some(st) => {
                    out["state"] = st.get("state").cloned().unwrap_or(json!("elsewhere"));
                    if let Some(e) = st.get("error").filter(|e| !e.is_null()) {
                        out["error"] = e.clone();
                    }
                    out["progress"] = st.get("progress").cloned().unwrap_or(Value::Null);
                }
                None => {
                    out["state"] = json!("elsewhere");
                    out["progress"] = Value::Null;
                }
            },
        },
    }
    out
}

/// `GET /admin/replications`: `{"replications": [job…]}`.
pub async fn list<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    background::list::<JobTasks, B>(&state, &headers).await
}

/// `GET /admin/replications/{id}`.
pub async fn get<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    background::get::<JobTasks, B>(&state, &headers, &id).await
}

/// `POST /admin/replications` `{"source","target","sourceToken"?,"targetToken"?,"types"?,
/// "selector"?,"policy"?,"continuous"?}` → 201 with the job, which runs in the background.
pub async fn create<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let req: JobRequest =
        background::create_request::<JobTasks, B, _>(&state, &headers, &body).await?;
    let config = JobConfig {
        source: req.source,
        target: req.target,
        source_token: req.source_token,
        target_token: req.target_token,
        types: req.types,
        selector: req.selector,
        policy: req.policy,
        continuous: req.continuous,
        created: crate::headers::rfc3339(unix_now()),
    };
    config.ends()?;
    if config.source == SELF {
        // This node's types are known: a misspelt one would replicate nothing, silently.
        let store = state.store();
        let set = store.schema_set();
        for t in &config.types {
            set.type_def(t)
                .map_err(|_| crate::negotiate::unknown_type(set, t))?;
        }
    }
    let (id, value) = background::new_task::<JobTasks>(&config)?;
    let key = job_key(&id);
    let st = Arc::clone(&state);
    let start = async move {
        st.with_store(move |s| s.put_setting(&key, Some(&value)))
            .await?;
        // Taken here at once (unless another process's lease loop was quicker).
        background::balance::<JobTasks, B>(&st)
            .await
            .map_err(|e| crate::app::store_problem(&e))?;
        Ok(())
    };
    background::create::<JobTasks, B>(&state, &id, start).await
}

/// `DELETE /admin/replications/{id}`: stop the job and forget it. 204; 404 if there is none.
pub async fn delete<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    background::delete::<JobTasks, B>(&state, &headers, &id).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::background::valid_id;

    fn config(source: &str, target: &str) -> JobConfig {
        JobConfig {
            source: source.into(),
            target: target.into(),
            source_token: None,
            target_token: None,
            types: Vec::new(),
            selector: Selector::new(),
            policy: LossPolicy::default(),
            continuous: true,
            created: String::new(),
        }
    }

    #[test]
    fn one_end_at_most_is_this_node() {
        let p = config("self", "self").ends().err().map(|p| p.status);
        assert_eq!(p, Some(400));
        assert!(matches!(
            config("self", "http://b.example:7878").ends(),
            Ok((End::Local, End::Remote(_)))
        ));
        assert!(matches!(
            config("http://a.example", "http://b.example").ends(),
            Ok((End::Remote(_), End::Remote(_)))
        ));
        assert!(config("ftp://a.example", "self").ends().is_err());
        let mut with_token = config("self", "http://b.example");
        with_token.source_token = Some("mutatis_x".into());
        assert!(with_token.ends().is_err());
    }

    #[test]
    fn tokens_are_stored_but_never_shown() {
        let mut c = config("http://a.example", "self");
        c.source_token = Some("mutatis_secret".into());
        let stored = serde_json::to_value(&c).unwrap();
        assert_eq!(stored["sourceToken"], "mutatis_secret");
        let back: JobConfig = serde_json::from_value(stored).unwrap();
        assert_eq!(back, c);
        let shown = job_json(
            "ab",
            &Stored {
                config: Some(c),
                ..Stored::default()
            },
            None,
        );
        assert!(!shown.to_string().contains("mutatis_secret"));
        assert_eq!(shown["sourceAuthenticated"], true);
    }

    #[test]
    fn job_ids_are_plain() {
        assert!(valid_id("0123abcd"));
        assert!(!valid_id("a/finished"));
        assert!(!valid_id(""));
    }
}
