//! `/admin/webhooks` (admin role): change notifications POSTed to a URL.
//!
//! Each webhook follows this node's changes feed from its own checkpoint in a background
//! task: batches of up to [`WEBHOOK_BATCH`] changes of its types, each POSTed as
//! `{"webhook": id, "release": R, "changes": [{"seq","type","id","rev","deleted","doc"}]}`,
//! `doc` being the document's body in the webhook's release's version (`null` for a delete,
//! or a type the release lacks). A batch is sent again, with exponential back-off and jitter
//! ([`FIRST_RETRY`] doubling up to [`MAX_RETRY`], each wait plus up to its own length at
//! random) or as long as the receiver's `Retry-After` asks, until the receiver answers 2xx;
//! only then is the checkpoint moved. Delivery is therefore at least once, in feed order.
//!
//! With a secret, each delivery carries `Mutatis-Signature: sha256=<hex>`, the
//! HMAC-SHA256 of the body under the secret ([`hmac_sha256`]).
//!
//! The configuration is a setting (`webhook/<id>`) and so is the checkpoint
//! (`webhook/<id>/seq`): [`AppState::resume_webhooks`] starts every webhook again at
//! start-up, where it left off. The secret is stored as given (it signs every delivery).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use backon::ExponentialBackoff;
use mutatis_replication::backoff::{backoff, next_wait, parse_retry_after};
use mutatis_store::{Backend, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::app::{unix_now, AppState};
use crate::auth;
use crate::background::{self, lock, Background, Registry, Stored};
use crate::problem::Problem;

/// The prefix of the webhook settings (`webhook/<id>`, `webhook/<id>/seq`).
pub const WEBHOOK_SETTING_PREFIX: &str = "webhook/";

/// The most changes one delivery carries.
pub const WEBHOOK_BATCH: usize = 100;

/// The first wait before a failed delivery is sent again.
pub const FIRST_RETRY: Duration = Duration::from_millis(200);

/// The longest wait between two attempts of a failing delivery.
pub const MAX_RETRY: Duration = Duration::from_secs(30);

/// How long one delivery may take before it counts as failed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// The header that carries a delivery's signature.
pub const SIGNATURE_HEADER: &str = "mutatis-signature";

/// Webhooks as a kind of background task: the mark beside a webhook's configuration is its
/// checkpoint, `webhook/<id>/seq`.
struct WebhookTasks;

impl Background for WebhookTasks {
    type Config = WebhookConfig;
    type Status = HookStatus;
    const PREFIX: &'static str = WEBHOOK_SETTING_PREFIX;
    const MARK: &'static str = "seq";
    const NOUN: &'static str = "webhook";
    const ID_PURPOSE: &'static str = "a webhook id";
    const ROUTE: &'static str = "/admin/webhooks";
    const LIST_MEMBER: &'static str = "webhooks";
    const READING: &'static str = "reading webhooks";

    fn registry<B: Backend + 'static>(state: &AppState<B>) -> &Registry<WebhookConfig, HookStatus> {
        &state.webhooks.0
    }

    fn invalid(detail: String) -> Problem {
        invalid(detail)
    }

    fn show(id: &str, stored: &Stored<WebhookConfig>, status: Option<&HookStatus>) -> Value {
        webhook_json(id, stored, status)
    }

    fn status_json(s: &HookStatus) -> Value {
        json!({
            "seq": s.seq,
            "failures": s.failures,
            "consecutiveFailures": s.consecutive_failures,
            "lastError": s.last_error,
            "lastDelivery": s.last_delivery,
        })
    }

    fn start<B: Backend + 'static>(
        state: &Arc<AppState<B>>,
        id: &str,
        stored: &Stored<WebhookConfig>,
    ) {
        if let Some(config) = &stored.config {
            // Failures counted by earlier holders carry on.
            let earlier = stored.status.as_ref();
            let count = |k: &str| earlier.and_then(|s| s.get(k)).and_then(Value::as_u64);
            let status = HookStatus {
                seq: checkpoint(stored),
                failures: count("failures").unwrap_or(0),
                ..HookStatus::default()
            };
            state.spawn_webhook(id, config.clone(), status);
        }
    }
}

pub use crate::auth::hmac_sha256;

/// The `Mutatis-Signature` value of a delivery body: `sha256=<hex HMAC-SHA256>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        auth::hex(&hmac_sha256(secret.as_bytes(), body))
    )
}

/// A webhook as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfig {
    /// Where deliveries are POSTed.
    pub url: String,
    /// Only changes of these types (empty: all).
    #[serde(default)]
    pub types: Vec<String>,
    /// The release whose versions the documents are sent in.
    pub release: String,
    /// The signing secret (stored as given: it signs every delivery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// When the webhook was created (RFC 3339).
    #[serde(default)]
    pub created: String,
}

/// The body of `POST /admin/webhooks`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WebhookRequest {
    url: String,
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    release: Option<String>,
    #[serde(default)]
    secret: Option<String>,
}

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::new(400, "invalid-webhook", "Invalid webhook", detail)
}

/// Check a webhook's URL: absolute http(s).
fn check_url(url: &str) -> Result<(), Problem> {
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(format!("url {url:?}: {e}")))?;
    match parsed.scheme() {
        "http" => Ok(()),
        "https" if cfg!(feature = "rustls") => Ok(()),
        "https" => Err(invalid(format!(
            "url {url}: this server was built without TLS (the `rustls` feature); use http://"
        ))),
        other => Err(invalid(format!(
            "url {url}: the scheme is {other}; a webhook is http:// or https://"
        ))),
    }
}

/// A webhook's delivery state in this process.
#[derive(Debug, Clone, Default)]
struct HookStatus {
    /// The last sequence delivered (or skipped, having no change of the webhook's types).
    seq: u64,
    /// Failed attempts since the task started.
    failures: u64,
    /// Failed attempts of the batch in flight (0: delivering fine).
    consecutive_failures: u64,
    /// The last failure.
    last_error: Option<String>,
    /// When the last batch was delivered (RFC 3339).
    last_delivery: Option<String>,
}

/// The webhooks this process delivers, by id.
#[derive(Default)]
pub struct Webhooks(Registry<WebhookConfig, HookStatus>);

/// One batch read from the feed: the changes to deliver and the last sequence examined.
struct Batch {
    changes: Vec<Value>,
    last_seq: u64,
}

/// Whether a store error is the store failing (worth retrying) rather than a document the
/// release cannot show.
fn is_store_failure(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Backend { .. }
            | StoreError::Busy { .. }
            | StoreError::Corrupt { .. }
            | StoreError::NotAStore { .. }
    )
}

/// Up to [`WEBHOOK_BATCH`] feed entries after `since`, those of the webhook's types with
/// their documents in the release's versions.
fn read_batch<B: Backend>(
    store: &Store<B>,
    config: &WebhookConfig,
    since: u64,
) -> Result<Batch, StoreError> {
    let entries = store.changes(since, WEBHOOK_BATCH)?;
    let last_seq = entries.last().map_or(since, |c| c.seq);
    // The release as the schema set served now defines it (a reload may change it).
    let release = store.schema_set().release(&config.release).cloned();
    let mut changes = Vec::with_capacity(entries.len());
    for c in &entries {
        if !config.types.is_empty() && !config.types.contains(&c.type_name) {
            continue;
        }
        let version = release.as_ref().and_then(|r| r.version_of(&c.type_name));
        let doc = match version {
            Some(v) if !c.deleted => match store.get(&c.type_name, &c.id, v) {
                // The document as it is now: a later change of it follows in the feed.
                Ok(Some(d)) => d.body,
                Ok(None) => Value::Null,
                Err(e) if is_store_failure(&e) => return Err(e),
                Err(e) => {
                    tracing::warn!(
                        "webhook: {}/{} cannot be shown in release {}: {e}",
                        c.type_name,
                        c.id,
                        config.release
                    );
                    Value::Null
                }
            },
            _ => Value::Null,
        };
        changes.push(json!({
            "seq": c.seq,
            "type": c.type_name,
            "id": c.id,
            "rev": c.rev.to_string(),
            "deleted": c.deleted,
            "doc": doc,
        }));
    }
    Ok(Batch { changes, last_seq })
}

/// Run `f` on the store on the blocking pool; a task that died is an error like the store's.
async fn on_store<B, R, F>(state: &AppState<B>, f: F) -> Result<R, String>
where
    B: Backend + 'static,
    R: Send + 'static,
    F: FnOnce(&Store<B>) -> Result<R, StoreError> + Send + 'static,
{
    let store = state.store();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(format!("store: {e}")),
        Err(e) => Err(format!("a store task failed: {e}")),
    }
}

/// The delivery loop of one webhook: forever (until its task is aborted).
async fn run_webhook<B: Backend + 'static>(
    state: Arc<AppState<B>>,
    id: String,
    config: WebhookConfig,
    since: u64,
    status: Arc<Mutex<HookStatus>>,
) {
    let mut fail = Failing::new(Arc::clone(&status));
    let http = match mutatis_client::tls::http_client_builder()
        .timeout(DELIVERY_TIMEOUT)
        .user_agent(concat!("mutatis/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(webhook = %id, "cannot build an HTTP client: {e}");
            fail.fail(format!("cannot build an HTTP client: {e}"), None);
            return;
        }
    };
    let mut since = since;
    let mut rx = state.feed_watch();
    loop {
        rx.borrow_and_update();
        let cfg = config.clone();
        let batch = match on_store(&state, move |s| read_batch(s, &cfg, since)).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(webhook = %id, "reading the feed: {e}");
                tokio::time::sleep(fail.fail(e, None)).await;
                continue;
            }
        };
        if batch.last_seq <= since {
            // Caught up: woken by a write of this process, or after the poll interval for
            // writes of other processes sharing the store.
            let _ = tokio::time::timeout(state.feed_poll(), rx.changed()).await;
            continue;
        }
        if !batch.changes.is_empty() {
            // Only the holder delivers: a process paused past its lease finds out here.
            let (lease, me) = (WebhookTasks::lease_key(&id), state.holder.clone());
            let mine = on_store(&state, move |s| {
                Ok(crate::lease::is_mine(
                    s.setting(&lease)?.as_ref(),
                    &me,
                    crate::lease::now_ms(),
                ))
            })
            .await;
            if mine == Ok(false) {
                tracing::warn!(webhook = %id, "the lease moved to another process; stopping here");
                state.webhooks.0.stop(&id);
                return;
            }
            let body = json!({
                "webhook": id,
                "release": config.release,
                "changes": batch.changes,
            })
            .to_string();
            deliver(&http, &id, &config, body, &mut fail).await;
            fail.recovered();
            lock(&status).last_delivery = Some(crate::headers::rfc3339(unix_now()));
        }
        // Delivered (or nothing of its types to deliver): the checkpoint moves on, with the
        // status, only while this process holds the lease. Until it is stored, a restart
        // (or the next holder) sends the batch again (at least once).
        let seq = batch.last_seq;
        loop {
            let (key, lease, status_key) = (
                WebhookTasks::mark_key(&id),
                WebhookTasks::lease_key(&id),
                WebhookTasks::status_key(&id),
            );
            let mut shown = WebhookTasks::status_json(&lock(&status));
            shown["seq"] = json!(seq);
            let me = state.holder.clone();
            match on_store(&state, move |s| {
                s.update_settings(|st| {
                    if !crate::lease::held(st, &lease, &me)? {
                        return Ok(false);
                    }
                    st.put(&key, Some(&json!({"seq": seq})))?;
                    st.put(&status_key, Some(&shown))?;
                    Ok(true)
                })
            })
            .await
            {
                Ok(true) => break,
                Ok(false) => {
                    tracing::warn!(webhook = %id, "the lease moved to another process; stopping here");
                    state.webhooks.0.stop(&id);
                    return;
                }
                Err(e) => {
                    tracing::warn!(webhook = %id, "storing the checkpoint: {e}");
                    let wait = fail.fail(e, None);
                    tokio::time::sleep(wait).await;
                }
            }
        }
        since = batch.last_seq;
        lock(&status).seq = since;
    }
}

/// A webhook's failures in a row: counted in its status, and waited on with back-off.
struct Failing {
    status: Arc<Mutex<HookStatus>>,
    delays: ExponentialBackoff,
}

impl Failing {
    fn new(status: Arc<Mutex<HookStatus>>) -> Failing {
        Failing {
            status,
            delays: backoff(FIRST_RETRY, MAX_RETRY),
        }
    }

    /// Count a failure; how long to wait before the next attempt (what the receiver asked
    /// for with `Retry-After`, else the next back-off delay).
    fn fail(&mut self, message: String, asked: Option<Duration>) -> Duration {
        let mut s = lock(&self.status);
        s.failures += 1;
        s.consecutive_failures += 1;
        s.last_error = Some(message);
        next_wait(&mut self.delays, asked)
    }

    /// The batch went through: the next failure starts backing off afresh.
    fn recovered(&mut self) {
        lock(&self.status).consecutive_failures = 0;
        self.delays = backoff(FIRST_RETRY, MAX_RETRY);
    }
}

/// POST `body` until the receiver answers 2xx, waiting what `fail` says between attempts.
async fn deliver(
    http: &reqwest::Client,
    id: &str,
    config: &WebhookConfig,
    body: String,
    fail: &mut Failing,
) {
    let sig = config
        .secret
        .as_deref()
        .map(|s| signature(s, body.as_bytes()));
    loop {
        let mut req = http
            .post(&config.url)
            .header("content-type", "application/json")
            .header("mutatis-webhook", id)
            .body(body.clone());
        if let Some(sig) = &sig {
            req = req.header(SIGNATURE_HEADER, sig);
        }
        let (error, asked) = match req.send().await {
            Ok(resp) if resp.status().is_success() => return,
            Ok(resp) => (
                format!("{} answered {}", config.url, resp.status()),
                resp.headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after),
            ),
            Err(e) => {
                // reqwest's own message is only "error sending request": its causes say
                // what failed (a refused connection, a certificate not trusted, …).
                let e = e.without_url();
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    text.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                (format!("{}: {text}", config.url), None)
            }
        };
        let wait = fail.fail(error.clone(), asked);
        tracing::warn!(webhook = %id, ?wait, "delivery failed: {error}");
        tokio::time::sleep(wait).await;
    }
}

impl<B: Backend + 'static> AppState<B> {
    /// Start delivering webhook `id` from `status.seq` (replacing a task of the same id).
    fn spawn_webhook(self: &Arc<Self>, id: &str, config: WebhookConfig, status: HookStatus) {
        let since = status.seq;
        let status = Arc::new(Mutex::new(status));
        let task = tokio::spawn(run_webhook(
            Arc::clone(self),
            id.to_owned(),
            config.clone(),
            since,
            Arc::clone(&status),
        ))
        .abort_handle();
        self.webhooks.0.insert(id, config, status, Some(task));
    }

    /// Start the stored webhooks whose lease this process can take, from their checkpoints
    /// (at start-up), and keep renewing and taking over leases. Must be called on the
    /// runtime. Returns the ids started here.
    pub async fn resume_webhooks(self: &Arc<Self>) -> Result<Vec<String>, StoreError> {
        background::balance::<WebhookTasks, B>(self).await?;
        background::keep_balancing::<WebhookTasks, B>(self);
        Ok(self.webhooks.0.ids())
    }
}

/// A webhook's stored checkpoint (0: nothing delivered yet).
fn checkpoint(hook: &Stored<WebhookConfig>) -> u64 {
    hook.mark
        .as_ref()
        .and_then(|m| m.get("seq"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// A webhook as the API shows it: its configuration without the secret, and its delivery
/// state.
fn webhook_json(id: &str, hook: &Stored<WebhookConfig>, status: Option<&HookStatus>) -> Value {
    let seq = checkpoint(hook);
    let mut out = json!({"id": id});
    if let Some(c) = &hook.config {
        out["url"] = json!(c.url);
        out["types"] = json!(c.types);
        out["release"] = json!(c.release);
        out["signed"] = json!(c.secret.is_some());
        out["created"] = json!(c.created);
    }
    match status {
        Some(s) => {
            out["state"] = json!("running");
            // The stored checkpoint may be ahead when another process delivers it too.
            out["seq"] = json!(s.seq.max(seq));
            out["failures"] = json!(s.failures);
            out["consecutiveFailures"] = json!(s.consecutive_failures);
            out["lastError"] = json!(s.last_error);
            out["lastDelivery"] = json!(s.last_delivery);
        }
        // Delivered by another process: what it last stored.
        None => {
            let stored = hook.status.as_ref();
            let get = |k: &str| stored.and_then(|s| s.get(k)).cloned();
            out["state"] = json!("elsewhere");
            out["seq"] = json!(seq);
            out["failures"] = get("failures").unwrap_or(json!(0));
            out["consecutiveFailures"] = get("consecutiveFailures").unwrap_or(json!(0));
            out["lastError"] = get("lastError").unwrap_or(Value::Null);
            out["lastDelivery"] = get("lastDelivery").unwrap_or(Value::Null);
        }
    }
    out
}

/// `GET /admin/webhooks`: `{"webhooks": [webhook…]}`.
pub async fn list<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    background::list::<WebhookTasks, B>(&state, &headers).await
}

/// `GET /admin/webhooks/{id}`.
pub async fn get<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    background::get::<WebhookTasks, B>(&state, &headers, &id).await
}

/// `POST /admin/webhooks` `{"url","types"?,"release"?,"secret"?}` → 201 with the webhook.
/// It delivers the changes made from now on (its checkpoint starts at the feed's head).
pub async fn create<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let req: WebhookRequest =
        background::create_request::<WebhookTasks, B, _>(&state, &headers, &body).await?;
    check_url(&req.url)?;
    if req.secret.as_deref().is_some_and(str::is_empty) {
        return Err(invalid(
            "secret: an empty secret signs nothing; leave it out",
        ));
    }
    let store = state.store();
    let set = store.schema_set();
    for t in &req.types {
        set.type_def(t)
            .map_err(|_| crate::negotiate::unknown_type(set, t))?;
    }
    let release = match req.release {
        Some(name) => {
            let named = crate::negotiate::Announce {
                release: Some(name.clone()),
                versions: BTreeMap::new(),
            };
            // Unknown and unsupported releases are the problems every negotiated route gives.
            crate::negotiate::named_release(set, &named)?;
            name
        }
        None => set.current().name.clone(),
    };
    let config = WebhookConfig {
        url: req.url,
        types: req.types,
        release,
        secret: req.secret,
        created: crate::headers::rfc3339(unix_now()),
    };
    let (id, value) = background::new_task::<WebhookTasks>(&config)?;
    let (ck, sk) = (WebhookTasks::config_key(&id), WebhookTasks::mark_key(&id));
    // It starts at the feed's head: it notifies of changes from now on.
    let st = Arc::clone(&state);
    let start = async move {
        st.with_store(move |s| {
            let head = s.last_seq()?;
            s.put_setting(&sk, Some(&json!({"seq": head})))?;
            s.put_setting(&ck, Some(&value))?;
            Ok(head)
        })
        .await?;
        // Taken here at once (unless another process's lease loop was quicker).
        background::balance::<WebhookTasks, B>(&st)
            .await
            .map_err(|e| crate::app::store_problem(&e))?;
        Ok(())
    };
    background::create::<WebhookTasks, B>(&state, &id, start).await
}

/// `DELETE /admin/webhooks/{id}`: stop it and forget it (and its checkpoint). 204; 404 if
/// there is none.
pub async fn delete<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    background::delete::<WebhookTasks, B>(&state, &headers, &id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2: a key shorter than the block.
        assert_eq!(
            auth::hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 1: 20 bytes of 0x0b.
        assert_eq!(
            auth::hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            auth::hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn signatures_name_their_algorithm() {
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn webhook_urls_are_http() {
        assert!(check_url("http://127.0.0.1:9/hook").is_ok());
        assert!(check_url("ftp://example.com/").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn secrets_are_stored_but_never_shown() {
        let c = WebhookConfig {
            url: "http://example.com/hook".into(),
            types: vec!["Student".into()],
            release: "3".into(),
            secret: Some("s3cret".into()),
            created: String::new(),
        };
        let stored = serde_json::to_value(&c).unwrap();
        assert_eq!(stored["secret"], "s3cret");
        let shown = webhook_json(
            "ab",
            &Stored {
                config: Some(c),
                mark: Some(json!({"seq": 7})),
                ..Stored::default()
            },
            None,
        );
        assert!(!shown.to_string().contains("s3cret"));
        assert_eq!(
            (shown["signed"].clone(), shown["seq"].clone()),
            (json!(true), json!(7))
        );
    }
}
