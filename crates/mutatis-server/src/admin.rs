//! `/admin/*` (admin role): migrations, tokens, schema reload.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use mutatis_schema::SchemaSet;
use mutatis_store::{
    Backend, ImportDoc, MigrationKind, MigrationOptions, OnError, Progress, Rev, SpaceStats,
    StorageAction, Store, StoreError,
};
use serde_json::{json, Value};

use crate::app::{random, run_blocking, store_problem, unix_now, AppState};
use crate::auth::{self, Role, TokenRecord};
use crate::http::{json_body, json_response, require};
use crate::meta::compatibility_json;
use crate::problem::Problem;
use crate::retire::{advice_json, advise};
use crate::usage::{format_day, history_json, read_histories};

fn progress_json(p: &Progress) -> Value {
    json!({
        "kind": match p.kind {
            MigrationKind::Forward => "forward",
            MigrationKind::Rollback => "rollback",
        },
        "phase": p.phase,
        "from": p.from,
        "to": p.to,
        "done": p.done,
        "total": p.total,
        "quarantined": p.quarantined,
    })
}

/// One thing reconciling the declared storage would do, for a machine (`action` and its
/// versions) and a person (`description`).
pub fn storage_action_json(action: &StorageAction) -> Value {
    let mut v = match action {
        StorageAction::Resume { from, to } => json!({"action": "resume", "from": from, "to": to}),
        StorageAction::Migrate { from, to } => {
            json!({"action": "migrate", "from": from, "to": to})
        }
        StorageAction::Rollback { from, to } => {
            json!({"action": "rollback", "from": from, "to": to})
        }
        StorageAction::SetVersion { from, to } => {
            json!({"action": "setVersion", "from": from, "to": to})
        }
        StorageAction::SetStrategy { from, to } => {
            json!({"action": "setStrategy", "from": from.as_str(), "to": to.as_str()})
        }
        StorageAction::Upgrade { version } => json!({"action": "upgrade", "version": version}),
        StorageAction::Copies { added, removed } => {
            json!({"action": "copies", "added": added, "removed": removed})
        }
    };
    v["description"] = json!(action.to_string());
    v
}

fn space_json(s: &SpaceStats) -> Value {
    json!({"records": s.records, "bytes": s.bytes})
}

/// How `type_name` is stored and what is happening to it: the TypeState of
/// `GET /admin/migrations` (see `API.md`), built in one place for the server and for
/// `mutatis status`, which reads a store directly. `running` and `last_error` are what the
/// caller knows of a migration run by its own process; `space` adds the space each part of
/// the type takes (a scan of the type's records, so only on request).
///
/// A declared storage the store cannot be brought to ([`StoreError::StorageMismatch`]) is
/// part of the answer (`declared.problem`), not an error: it is what an operator asks the
/// status for.
pub fn type_status<B: Backend>(
    store: &Store<B>,
    type_name: &str,
    running: bool,
    last_error: Option<String>,
    space: bool,
) -> Result<Value, StoreError> {
    let st = store.state(type_name)?;
    let declared = store.schema_set().storage(type_name)?;
    let (actions, problem) = match store.storage_plan(type_name) {
        Ok(plan) => (plan.iter().map(storage_action_json).collect(), Value::Null),
        Err(e @ StoreError::StorageMismatch { .. }) => (Vec::new(), json!(e.to_string())),
        Err(e) => return Err(e),
    };
    let mut out = json!({
        "type": type_name,
        "storageVersion": st.storage_version,
        "strategy": st.strategy.as_str(),
        "declared": {
            "version": declared.version,
            "strategy": declared.strategy.as_str(),
            "actions": actions,
            "problem": problem,
        },
        "migration": st.migration.as_ref().map(|m| progress_json(&m.progress())),
        "running": running,
        "lastError": last_error,
        "backup": st.backup.as_ref().map(|b| json!({"version": b.version, "switchedAt": b.switched_at})),
        "copies": st.copies.keys().collect::<Vec<_>>(),
        "filling": st.fill.is_some(),
        "quarantined": store.quarantined(type_name)?.len(),
    });
    if space {
        let r = store.space_report(type_name)?;
        let copies: serde_json::Map<String, Value> = r
            .copies
            .iter()
            .map(|(v, s)| (v.to_string(), space_json(s)))
            .collect();
        out["space"] = json!({
            "primary": space_json(&r.primary),
            "backup": r.backup.as_ref().map(space_json),
            "migration": r.migration.as_ref().map(space_json),
            "copies": copies,
            "totalBytes": r.total_bytes(),
        });
    }
    Ok(out)
}

/// The migration report of a type as it is now (read after an admin action, so it shows the
/// action's effect).
async fn type_report<B: Backend + 'static>(
    state: &AppState<B>,
    type_name: &str,
    space: bool,
) -> Result<Value, Problem> {
    let t = type_name.to_owned();
    let running = state.migration_running(type_name);
    let last_error = state.migration_error(type_name);
    state
        .with_store(move |s| type_status(s, &t, running, last_error, space))
        .await
}

/// Whether `?space=true` asks for the space each part of a type takes.
fn wants_space(query: &HashMap<String, String>) -> Result<bool, Problem> {
    match query.get("space").map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => {
            Err(Problem::bad_request("space must be true or false").with("parameter", "space"))
        }
    }
}

/// Run a synchronous migration `action` on `type_name`, then answer 200 with the type's report
/// as the action left it.
async fn act_and_report<B, F>(
    state: &AppState<B>,
    type_name: &str,
    action: F,
) -> Result<Response, Problem>
where
    B: Backend + 'static,
    F: FnOnce(&Store<B>, &str) -> Result<(), StoreError> + Send + 'static,
{
    let t = type_name.to_owned();
    state.with_store(move |s| action(s, &t)).await?;
    Ok(json_response(
        StatusCode::OK,
        &type_report(state, type_name, false).await?,
    ))
}

/// `GET /admin/migrations[?space=true]`: `{"schemaSet", "types": [TypeState]}` (see
/// [`type_status`]).
pub async fn migrations<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require(&state, &headers, Role::Admin).await?;
    let space = wants_space(&query)?;
    let names: Vec<String> = state
        .store()
        .schema_set()
        .types()
        .map(|t| t.name().to_owned())
        .collect();
    let mut out = Vec::new();
    for n in names {
        out.push(type_report(&state, &n, space).await?);
    }
    let set = state.store().schema_set().name().to_owned();
    Ok(json_response(
        StatusCode::OK,
        &json!({"schemaSet": set, "types": out}),
    ))
}

/// `GET /admin/migrations/{type}[?space=true]`: TypeState.
pub async fn migration<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(type_name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require(&state, &headers, Role::Admin).await?;
    let space = wants_space(&query)?;
    Ok(json_response(
        StatusCode::OK,
        &type_report(&state, &type_name, space).await?,
    ))
}

fn options(body: &Value) -> Result<MigrationOptions, Problem> {
    let mut o = MigrationOptions::default();
    if let Some(b) = body.get("batchSize") {
        o.batch_size = b
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| Problem::bad_request("batchSize must be a positive whole number"))?;
    }
    if let Some(e) = body.get("onError") {
        o.on_error = match e.as_str() {
            Some("stop") => OnError::Stop,
            Some("quarantine") => OnError::Quarantine,
            _ => {
                return Err(Problem::bad_request(
                    "onError must be \"stop\" or \"quarantine\"",
                ))
            }
        };
    }
    Ok(o)
}

/// The string member `key` of a request body; a 400 naming it when it is missing.
fn required_str(body: &Value, key: &str) -> Result<String, Problem> {
    body.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Problem::bad_request(format!("the body needs a string `{key}`")))
}

fn accepted(type_name: &str, body: &Value) -> Response {
    let mut resp = json_response(StatusCode::ACCEPTED, body);
    if let Ok(v) = HeaderValue::from_str(&format!("/admin/migrations/{type_name}")) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp
}

/// `POST /admin/migrations` `{"type","to","batchSize"?,"onError"?}`: 202 and the migration
/// runs in the background (a lazy type switches at once: 200). The same migration already in
/// flight (left by a stopped run, or running) is resumed, also 202: asking twice is safe.
pub async fn start_migration<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    require(&state, &headers, Role::Admin).await?;
    let body = json_body(&headers, &body)?;
    let type_name = required_str(&body, "type")?;
    let to = body
        .get("to")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| Problem::bad_request("the body needs a version number `to`"))?;
    let opts = options(&body)?;
    let t = type_name.clone();
    let started = state
        .with_store(move |s| {
            let st = s.state(&t)?;
            match &st.migration {
                // An upgrade in place (lazy to eager) goes to the version it is in: asking
                // for that version again resumes it too.
                Some(m) if m.kind == MigrationKind::Forward && m.to_version == to => {
                    Ok(Some(m.progress()))
                }
                _ => s.start_migration(&t, to, opts),
            }
        })
        .await?;
    let report = type_report(&state, &type_name, false).await?;
    match started {
        None => Ok(json_response(StatusCode::OK, &report)),
        Some(p) => {
            state
                .metrics
                .set_migration_progress(&type_name, p.done, p.total, p.phase);
            state.spawn_migration(&type_name);
            Ok(accepted(&type_name, &report))
        }
    }
}

/// `POST /admin/migrations/{type}/abort`.
pub async fn abort_migration<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(type_name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require(&state, &headers, Role::Admin).await?;
    act_and_report(&state, &type_name, |s, t| s.abort_migration(t)).await
}

/// `POST /admin/migrations/{type}/rollback` (optional body `{"batchSize","onError"}`): 202. A
/// rollback already in flight is resumed.
pub async fn rollback<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(type_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    require(&state, &headers, Role::Admin).await?;
    let opts = if body.is_empty() {
        MigrationOptions::default()
    } else {
        options(&json_body(&headers, &body)?)?
    };
    let t = type_name.clone();
    state
        .with_store(move |s| match s.state(&t)?.migration {
            Some(m) if m.kind == MigrationKind::Rollback => Ok(()),
            _ => s.start_rollback(&t, opts).map(|_| ()),
        })
        .await?;
    state.spawn_migration(&type_name);
    Ok(accepted(
        &type_name,
        &type_report(&state, &type_name, false).await?,
    ))
}

/// `DELETE /admin/migrations/{type}/backup`.
pub async fn drop_backup<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(type_name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require(&state, &headers, Role::Admin).await?;
    act_and_report(&state, &type_name, |s, t| s.drop_backup(t)).await
}

/// The body of `POST /admin/import`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportRequest {
    #[serde(rename = "type")]
    type_name: String,
    version: u32,
    docs: Vec<ImportEnvelope>,
}

/// One document of an import: `mutatis export`'s envelope.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportEnvelope {
    id: String,
    #[serde(default)]
    rev: Option<String>,
    doc: Value,
}

/// `POST /admin/import` `{"type","version","docs":[{"id","rev"?,"doc"}]}`: load documents
/// written in `version` in one transaction, all or nothing, as `mutatis import` does on a
/// store it opens itself (`mutatis import --server` sends its batches here): each body is
/// validated against its version, a document with a rev is stored under that rev as given
/// (a dump re-imports as it was), one without becomes the next write of whatever is stored.
/// 200 `{"type","version","imported"}`. No negotiation: any version of the type, as an
/// operator's dump holds it. Bounded by the body limit like every route.
pub async fn import<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    require(&state, &headers, Role::Admin).await?;
    let body = json_body(&headers, &body)?;
    let request: ImportRequest = serde_json::from_value(body).map_err(|e| {
        Problem::new(400, "invalid-import", "Invalid import", format!("{e}; expected {{\"type\", \"version\", \"docs\": [{{\"id\", \"rev\"?, \"doc\"}}]}}"))
    })?;
    let mut docs = Vec::with_capacity(request.docs.len());
    for d in request.docs {
        let rev = match d.rev {
            None => None,
            Some(r) => Some(r.parse::<Rev>().map_err(|e| store_problem(&e))?),
        };
        docs.push(ImportDoc {
            id: d.id,
            rev,
            body: d.doc,
        });
    }
    let (type_name, version) = (request.type_name, request.version);
    let imported = docs.len();
    let t = type_name.clone();
    let seq = state
        .with_store(move |s| {
            s.import(&t, version, &docs)?;
            s.last_seq()
        })
        .await?;
    // Feed readers of this process wait for writes; an import is some.
    state.wrote(seq);
    Ok(json_response(
        StatusCode::OK,
        &json!({"type": type_name, "version": version, "imported": imported}),
    ))
}

/// Every token record, with its settings key (`token/<hash>`).
pub fn list_tokens<B: Backend>(store: &Store<B>) -> Result<Vec<(String, TokenRecord)>, StoreError> {
    Ok(store
        .settings(auth::TOKEN_SETTING_PREFIX)?
        .into_iter()
        .filter_map(|(k, v)| TokenRecord::from_json(&v).map(|r| (k, r)))
        .collect())
}

/// Why a token was not created: the request's fault, each with its own problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefused {
    /// The name is not 1 to 128 printable characters, or is `*` (which policies read as
    /// "any principal"). 400 `invalid-token-name`.
    #[error("invalid token name {0:?}: 1 to 128 printable characters, not `*`")]
    InvalidName(String),
    /// A token of that name exists. 409 `token-exists`.
    #[error("a token named {0:?} exists; revoke it first")]
    Exists(String),
}

impl TokenRefused {
    /// The problem answering a `POST /admin/tokens` refused for this reason.
    pub fn problem(&self) -> Problem {
        match self {
            TokenRefused::InvalidName(name) => Problem::new(
                400,
                "invalid-token-name",
                "Invalid token name",
                self.to_string(),
            )
            .with("name", name.as_str()),
            TokenRefused::Exists(name) => {
                Problem::new(409, "token-exists", "Token not created", self.to_string())
                    .with("name", name.as_str())
            }
        }
    }
}

/// Create a token named `name` with `role`; refused if the name is invalid or taken. Returns
/// the token (shown once: only its hash is stored).
pub fn create_token<B: Backend>(
    store: &Store<B>,
    name: &str,
    role: Role,
) -> Result<Result<String, TokenRefused>, crate::app::ServerError> {
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) || name == "*" {
        return Ok(Err(TokenRefused::InvalidName(name.to_owned())));
    }
    if list_tokens(store)?.iter().any(|(_, r)| r.name == name) {
        return Ok(Err(TokenRefused::Exists(name.to_owned())));
    }
    let token = auth::token_from_random(&random::<32>("a token")?);
    let record = TokenRecord {
        name: name.to_owned(),
        role,
        created: crate::headers::rfc3339(unix_now()),
    };
    store.put_setting(&auth::token_key(&token), Some(&record.to_json()))?;
    Ok(Ok(token))
}

/// Revoke every token named `name`; how many were.
pub fn revoke_token<B: Backend>(store: &Store<B>, name: &str) -> Result<usize, StoreError> {
    let mut n = 0;
    for (key, r) in list_tokens(store)? {
        if r.name == name {
            store.put_setting(&key, None)?;
            n += 1;
        }
    }
    Ok(n)
}

/// `GET /admin/releases[?history=true]`: per release of the served schema set its status,
/// deprecation and sunset dates, recorded usage (requests and shares over 7 and 30 days, last
/// seen, distinct tokens) and the retirement verdict with its reason ([`crate::retire`]);
/// with `history`, the stored daily and monthly rows too. This process's counts are added to
/// the store first, so the answer includes every request it answered before this one.
pub async fn releases<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    require(&state, &headers, Role::Admin).await?;
    let with_history = match query.get("history").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(
                Problem::bad_request(format!("history={other}: expected true or false"))
                    .with("parameter", "history"),
            )
        }
    };
    let usage = Arc::clone(&state.usage);
    let today = unix_now().div_euclid(86_400);
    let (releases, histories) = state
        .with_store(move |s| {
            usage.flush(s, today)?;
            Ok((s.schema_set().releases().to_vec(), read_histories(s)?))
        })
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &releases_report(
            &releases,
            &histories,
            today,
            state.usage.enabled(),
            with_history,
        ),
    ))
}

/// The answer of `GET /admin/releases` (and `mutatis releases` on a store read directly):
/// `{"today", "recording", "releases": [advice, with its `history` if asked]}`.
pub fn releases_report(
    releases: &[mutatis_schema::Release],
    histories: &std::collections::BTreeMap<String, crate::usage::History>,
    today: i64,
    recording: bool,
    with_history: bool,
) -> Value {
    let list: Vec<Value> = advise(releases, histories, today)
        .iter()
        .map(|a| {
            let mut v = advice_json(a);
            if with_history {
                let h = histories.get(&a.release).cloned().unwrap_or_default();
                v["history"] = history_json(&h);
            }
            v
        })
        .collect();
    json!({
        "today": format_day(today),
        "recording": recording,
        "releases": list,
    })
}

/// `GET /admin/tokens`: `{"tokens": [{"name","role","created"}]}` (no secrets).
pub async fn tokens<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require(&state, &headers, Role::Admin).await?;
    let mut list = state.with_store(|s| list_tokens(s)).await?;
    list.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    let out: Vec<Value> = list.iter().map(|(_, r)| r.to_json()).collect();
    Ok(json_response(StatusCode::OK, &json!({"tokens": out})))
}

/// `POST /admin/tokens` `{"name","role"}` → 201 `{"name","role","token"}`.
pub async fn create_token_route<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    require(&state, &headers, Role::Admin).await?;
    let body = json_body(&headers, &body)?;
    let name = required_str(&body, "name")?;
    let role: Role = body
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or("reader")
        .parse()
        .map_err(Problem::bad_request)?;
    let n = name.clone();
    let store = state.store();
    let created = run_blocking("creating a token", move || create_token(&store, &n, role))
        .await?
        .map_err(|e| match e {
            crate::app::ServerError::Store(se) => store_problem(&se),
            other => {
                tracing::error!("{other}");
                Problem::internal()
            }
        })?;
    let token = created.map_err(|refused| refused.problem())?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"name": name, "role": role.as_str(), "token": token}),
    ))
}

/// `DELETE /admin/tokens/{name}`: `{"name","revoked": N}`; 404 if there was none.
pub async fn revoke_token_route<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require(&state, &headers, Role::Admin).await?;
    let n = name.clone();
    let revoked = state.with_store(move |s| revoke_token(s, &n)).await?;
    state.forget_tokens();
    if revoked == 0 {
        return Err(Problem::new(
            404,
            "not-found",
            "Not found",
            format!("there is no token named {name:?}"),
        ));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"name": name, "revoked": revoked}),
    ))
}

/// `POST /admin/reload[?force=true]`: re-read the schema set, diff it against the running one,
/// and swap it in unless it would break a supported release (409 with the diff; `force=true`
/// swaps anyway). 200 `{"schemaSet", "diff"}`.
pub async fn reload<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require(&state, &headers, Role::Admin).await?;
    let force = query.get("force").is_some_and(|f| f == "true");
    let Some(dir) = state.dir.clone() else {
        return Err(Problem::new(
            409,
            "reload-unavailable",
            "Reload unavailable",
            "this server was not started from a schema-set folder",
        ));
    };
    let store = state.store();
    let today = state.today();
    let (new_set, diff, breaking, warnings) = run_blocking("reloading the schema set", move || {
        let loaded = SchemaSet::load(&dir).map_err(|e| {
            Problem::new(
                422,
                "invalid-schema-set",
                "Invalid schema set",
                format!("{}: {e}", dir.display()),
            )
        })?;
        // Warned about as the files say it (a sunset that has passed included), served as of
        // today.
        let warnings: Vec<Value> = loaded
            .lifecycle_warnings(&today)
            .iter()
            .map(mutatis_schema::LifecycleWarning::to_json)
            .collect();
        let new_set = loaded.as_of(&today);
        let (diff, breaking) =
            compatibility_json(&new_set, store.schema_set(), &dir.display().to_string())?;
        Ok::<_, Problem>((new_set, diff, breaking, warnings))
    })
    .await??;
    if breaking && !force {
        return Err(Problem::new(
            409,
            "reload-refused",
            "Reload refused",
            "the new schema set would break clients or nodes of the running one; fix it, or reload with ?force=true",
        )
        .with("diff", diff));
    }
    let name = new_set.name().to_owned();
    let next = state
        .store()
        .with_schema_set(Arc::new(new_set))
        .with_params(state.params.clone());
    // The declared storage is acted on after the swap; one that cannot be is refused before.
    let (next, planned) = run_blocking("checking the declared storage", move || {
        let planned = crate::app::storage_plans(&next);
        (next, planned)
    })
    .await?;
    planned.map_err(|e| store_problem(&e))?;
    state.replace_store(next);
    // The store is kept under the reloaded set from now on (the diff above vouched for it,
    // should its name have changed).
    let adopting = state.store();
    run_blocking("recording the schema set", move || {
        crate::app::claim_schema_set(&adopting, crate::app::SetClaim::Adopt)
    })
    .await?
    .map_err(|e| match e {
        crate::app::ServerError::Store(se) => store_problem(&se),
        other => {
            tracing::error!("{other}");
            Problem::internal()
        }
    })?;
    // Jobs ending at this node speak its schema set: they start again on the new one.
    state.restart_local_jobs();
    let reconciling = Arc::clone(&state);
    let done = run_blocking("reconciling the declared storage", move || {
        reconciling.reconcile_storage()
    })
    .await?
    .map_err(|e| store_problem(&e))?;
    let storage: Vec<Value> = done
        .iter()
        .map(|(ty, action)| json!({"type": ty, "action": action.to_string()}))
        .collect();
    tracing::info!("schema set reloaded: {name}");
    Ok(json_response(
        StatusCode::OK,
        &json!({"schemaSet": name, "diff": diff, "storage": storage, "warnings": warnings}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_token_name_is_a_bad_request_not_a_conflict() {
        let p = TokenRefused::InvalidName("*".into()).problem();
        assert_eq!((p.status, p.name()), (400, "invalid-token-name"));
        assert_eq!(p.extensions["name"], "*");
        let p = TokenRefused::Exists("ci".into()).problem();
        assert_eq!((p.status, p.name()), (409, "token-exists"));
    }
}
