//! The HTTP shell: builds requests from the pure plan ([`crate::plan`]), sends them with
//! reqwest, maps problems to [`Error`]s and runs the client-side translation
//! ([`crate::translate`]) when the server is older.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mutatis_lens::Params;
use mutatis_schema::SchemaSet;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, IF_MATCH};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::deprecation::{deprecation_link, parse_deprecation, sunset_date, Deprecation};
use crate::error::{problem_type, BuildError, Error, Problem};
use crate::meta::Meta;
use crate::model::{Change, Changes, ChangesOptions, Doc, Page, Written};
use crate::plan::{self, Negotiation, Route};
use crate::translate::{self, OutgoingPatch};

/// Request header naming the client's release.
pub const RELEASE_HEADER: &str = "mutatis-release";
/// Request header naming per-type versions (`Student=3, todo=2`).
pub const VERSIONS_HEADER: &str = "mutatis-versions";

/// Default per-request timeout (a long poll gets its own wait on top).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Documents remembered in the server's version, so a write through an older server can be
/// merged onto what the server holds without reading it again.
const WIRE_CACHE_CAPACITY: usize = 256;

type DeprecationHook = Arc<dyn Fn(&Deprecation) + Send + Sync>;

/// A client of one mutatis server, speaking one release of its own schema set.
///
/// Cheap to clone (clones share the connection pool, the cached `/meta` and the deprecation
/// notices already given). See the crate docs for an example.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    set: Arc<SchemaSet>,
    release: String,
    auth: Option<HeaderValue>,
    params: Params,
    timeout: Duration,
    on_deprecation: Option<DeprecationHook>,
    meta: Mutex<Option<Arc<Meta>>>,
    /// Releases whose deprecation was already reported: the callback runs once per release.
    notified: Mutex<HashSet<String>>,
    wire_cache: Mutex<WireCache>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base.as_str())
            .field("schema_set", &self.inner.set.name())
            .field("release", &self.inner.release)
            .finish_non_exhaustive()
    }
}

enum SetSource {
    Set(Arc<SchemaSet>),
    Manifest(PathBuf),
}

/// Configures a [`Client`]; from [`Client::builder`].
pub struct ClientBuilder {
    url: String,
    set: Option<SetSource>,
    release: Option<String>,
    token: Option<String>,
    on_deprecation: Option<DeprecationHook>,
    params: Option<Params>,
    timeout: Duration,
    http: Option<reqwest::Client>,
}

impl ClientBuilder {
    /// The client's own schema set (compiled in with `include_str!` and
    /// [`SchemaSet::from_sources`], or loaded however the app likes).
    pub fn schema_set(mut self, set: Arc<SchemaSet>) -> Self {
        self.set = Some(SetSource::Set(set));
        self
    }

    /// Load the client's schema set from a manifest file ([`SchemaSet::from_manifest`]) when
    /// the client is built.
    pub fn manifest_file(mut self, path: impl AsRef<Path>) -> Self {
        self.set = Some(SetSource::Manifest(path.as_ref().to_path_buf()));
        self
    }

    /// The client's release, by name, in its own schema set.
    pub fn release(mut self, release: impl Into<String>) -> Self {
        self.release = Some(release.into());
        self
    }

    /// The bearer token sent with every request.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Called once per release when the server says the release the client speaks is
    /// deprecated (the `Deprecation`/`Sunset` headers), with the sunset date.
    pub fn on_deprecation(mut self, hook: impl Fn(&Deprecation) + Send + Sync + 'static) -> Self {
        self.on_deprecation = Some(Arc::new(hook));
        self
    }

    /// Translation parameters for the client-side lenses (those whose expressions read, say,
    /// `referenceYear`). Default: `referenceDate` and `referenceYear` of today, UTC, taken when
    /// the client is built.
    pub fn params(mut self, params: Params) -> Self {
        self.params = Some(params);
        self
    }

    /// Per-request timeout (default 30 s). A long poll waits its own time on top of it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Use this reqwest client (proxies, TLS roots, connection pool shared with the app).
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Check the configuration and build the client. Makes no request: `/meta` is fetched by
    /// the first call that needs it.
    pub fn build(self) -> Result<Client, BuildError> {
        let invalid = |reason: &str| BuildError::InvalidUrl {
            url: self.url.clone(),
            reason: reason.to_owned(),
        };
        let mut base = Url::parse(&self.url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid("the URL must be http:// or https://"));
        }
        base.set_query(None);
        base.set_fragment(None);
        let set = match self.set {
            None => return Err(BuildError::MissingSchemaSet),
            Some(SetSource::Set(set)) => set,
            Some(SetSource::Manifest(path)) => Arc::new(load_manifest(&path)?),
        };
        let release = self.release.ok_or(BuildError::MissingRelease)?;
        if set.release(&release).is_none() {
            let known: Vec<&str> = set.releases().iter().map(|r| r.name.as_str()).collect();
            return Err(BuildError::UnknownRelease {
                release,
                known: known.join(", "),
            });
        }
        let auth = self
            .token
            .map(|t| {
                let mut v = HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|_| BuildError::InvalidToken)?;
                v.set_sensitive(true);
                Ok::<_, BuildError>(v)
            })
            .transpose()?;
        let http = match self.http {
            Some(http) => http,
            None => crate::tls::http_client_builder().build()?,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                set,
                release,
                auth,
                params: self.params.unwrap_or_else(today_params),
                timeout: self.timeout,
                on_deprecation: self.on_deprecation,
                meta: Mutex::new(None),
                notified: Mutex::new(HashSet::new()),
                wire_cache: Mutex::new(WireCache::default()),
            }),
        })
    }
}

fn load_manifest(path: &Path) -> Result<SchemaSet, BuildError> {
    let text = std::fs::read(path).map_err(|source| BuildError::ManifestRead {
        path: path.to_path_buf(),
        source,
    })?;
    let value: Value =
        serde_json::from_slice(&text).map_err(|source| BuildError::ManifestJson {
            path: path.to_path_buf(),
            source,
        })?;
    SchemaSet::from_manifest(&value).map_err(|source| BuildError::ManifestSchema {
        path: path.to_path_buf(),
        source,
    })
}

/// `referenceDate`/`referenceYear` of today (UTC): the lens engine reads no clock, so the
/// client, which does I/O anyway, supplies "now" as the command line and the server do, and
/// derives the parameters the same way ([`mutatis_lens::calendar::reference_params`]).
fn today_params() -> Params {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    mutatis_lens::calendar::reference_params(secs)
}

/// One request, before it is sent.
struct Call<'a> {
    method: Method,
    segments: Vec<&'a str>,
    query: Vec<(&'static str, String)>,
    negotiation: Option<&'a Negotiation>,
    if_match: Option<&'a str>,
    body: Option<(Vec<u8>, &'static str)>,
    type_name: Option<&'a str>,
    extra_wait: Duration,
}

impl<'a> Call<'a> {
    fn new(method: Method, segments: Vec<&'a str>) -> Self {
        Call {
            method,
            segments,
            query: Vec::new(),
            negotiation: None,
            if_match: None,
            body: None,
            type_name: None,
            extra_wait: Duration::ZERO,
        }
    }

    fn negotiated(mut self, type_name: Option<&'a str>, negotiation: &'a Negotiation) -> Self {
        self.type_name = type_name;
        self.negotiation = Some(negotiation);
        self
    }

    fn json(mut self, body: &Value, content_type: &'static str) -> Self {
        // Serialising a `Value` cannot fail (its map keys are strings).
        self.body = Some((body.to_string().into_bytes(), content_type));
        self
    }
}

/// A successful answer.
struct Answer {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| self.protocol(format!("bad JSON: {e}")))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn protocol(&self, reason: impl Into<String>) -> Error {
        Error::Protocol {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// The revision in the `ETag` header: `"1-abc;Student@3"` (the revision in one version,
    /// as servers tag a representation) or `"1-abc"` (older servers), weak or not.
    fn etag(&self) -> Result<String, Error> {
        let tag = self
            .header("etag")
            .ok_or_else(|| self.protocol("no ETag on a document"))?;
        let opaque = tag.trim_start_matches("W/").trim_matches('"');
        Ok(opaque.split(';').next().unwrap_or(opaque).to_owned())
    }

    /// Make sure the server answered in the version asked for: translating a body from the
    /// wrong version would corrupt it silently.
    fn check_version(&self, type_name: &str, expected: u32) -> Result<(), Error> {
        let Some(header) = self.header(VERSIONS_HEADER) else {
            return Ok(());
        };
        match plan::parse_versions_header(header).get(type_name) {
            Some(&got) if got != expected => Err(self.protocol(format!(
                "asked for {type_name}@{expected}, the server answered in {type_name}@{got}"
            ))),
            _ => Ok(()),
        }
    }
}

#[derive(Deserialize)]
struct WrittenWire {
    id: String,
    rev: String,
}

impl From<WrittenWire> for Written {
    fn from(w: WrittenWire) -> Written {
        Written {
            id: w.id,
            rev: w.rev,
        }
    }
}

#[derive(Deserialize)]
struct ListWire {
    docs: Vec<ListEntryWire>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct ListEntryWire {
    id: String,
    rev: String,
    doc: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangesWire {
    results: Vec<ChangeWire>,
    last_seq: u64,
}

#[derive(Deserialize)]
struct ChangeWire {
    seq: u64,
    #[serde(rename = "type")]
    type_name: String,
    id: String,
    rev: String,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    doc: Option<Value>,
}

impl Client {
    /// Start configuring a client of the server at `url` (`http://127.0.0.1:7878`).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            set: None,
            release: None,
            token: None,
            on_deprecation: None,
            params: None,
            timeout: DEFAULT_TIMEOUT,
            http: None,
        }
    }

    /// The client's schema set.
    pub fn schema_set(&self) -> &Arc<SchemaSet> {
        &self.inner.set
    }

    /// The client's release.
    pub fn release(&self) -> &str {
        &self.inner.release
    }

    /// The server's `/meta`, fetched once and cached. It is fetched again after the server
    /// answers that a version the client asked for does not exist (it was reloaded with
    /// another schema set), or on [`Client::refresh_meta`].
    pub async fn meta(&self) -> Result<Arc<Meta>, Error> {
        if let Some(meta) = lock(&self.inner.meta).clone() {
            return Ok(meta);
        }
        self.refresh_meta().await
    }

    /// Fetch `/meta` again and cache it.
    pub async fn refresh_meta(&self) -> Result<Arc<Meta>, Error> {
        let answer = self.send(Call::new(Method::GET, vec!["meta"])).await?;
        let meta = Arc::new(answer.parse::<Meta>()?);
        *lock(&self.inner.meta) = Some(meta.clone());
        Ok(meta)
    }

    /// How documents of `type_name` travel to this server: spoken as they are, or translated
    /// on the client's side because the server is older.
    pub async fn route(&self, type_name: &str) -> Result<Route, Error> {
        let meta = self.meta().await?;
        plan::route(&self.inner.set, &self.inner.release, &meta, type_name)
    }

    /// Read a document, in the client's version.
    pub async fn get(&self, type_name: &str, id: &str) -> Result<Doc, Error> {
        self.with_meta(|meta| self.get_once(meta, type_name, id))
            .await
    }

    /// Create a document (`id` generated by the server when `None`).
    pub async fn create(
        &self,
        type_name: &str,
        id: Option<&str>,
        body: &Value,
    ) -> Result<Written, Error> {
        self.with_meta(|meta| self.create_once(meta, type_name, id, body))
            .await
    }

    /// Replace a document at revision `rev`, or create it at `id` when `rev` is `None` (which
    /// fails with [`Error::Conflict`] if it exists).
    pub async fn put(
        &self,
        type_name: &str,
        id: &str,
        body: &Value,
        rev: Option<&str>,
    ) -> Result<Written, Error> {
        self.with_meta(|meta| self.put_once(meta, type_name, id, body, rev))
            .await
    }

    /// Apply a JSON Patch (RFC 6902, written in the client's version) to a document at
    /// revision `rev`.
    pub async fn patch(
        &self,
        type_name: &str,
        id: &str,
        patch: &Value,
        rev: &str,
    ) -> Result<Written, Error> {
        self.with_meta(|meta| self.patch_once(meta, type_name, id, patch, rev))
            .await
    }

    /// Delete a document at revision `rev`.
    pub async fn delete(&self, type_name: &str, id: &str, rev: &str) -> Result<Written, Error> {
        self.with_meta(|meta| self.delete_once(meta, type_name, id, rev))
            .await
    }

    /// One page of a type's documents, in id order, starting after `after`.
    pub async fn list(
        &self,
        type_name: &str,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page, Error> {
        self.with_meta(|meta| self.list_once(meta, type_name, after, limit))
            .await
    }

    /// The changes after sequence `since`.
    pub async fn changes(&self, since: u64, options: &ChangesOptions) -> Result<Changes, Error> {
        self.with_meta(|meta| self.changes_once(meta, since, options))
            .await
    }

    // -----------------------------------------------------------------------------------------

    /// Run `op` with the cached `/meta`; if the server says a version asked for does not exist,
    /// its schema set changed: fetch `/meta` again and retry once. Safe for writes: the
    /// server refuses during negotiation, before it writes anything.
    async fn with_meta<T, F, Fut>(&self, mut op: F) -> Result<T, Error>
    where
        F: FnMut(Arc<Meta>) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let meta = self.meta().await?;
        match op(meta).await {
            Err(e) if e.problem_type() == Some(problem_type::UNKNOWN_VERSION) => {
                let meta = self.refresh_meta().await?;
                op(meta).await
            }
            other => other,
        }
    }

    fn route_of(&self, meta: &Meta, type_name: &str) -> Result<(Route, Negotiation), Error> {
        let route = plan::route(&self.inner.set, &self.inner.release, meta, type_name)?;
        let routes = BTreeMap::from([(type_name.to_owned(), route)]);
        let negotiation = plan::negotiate(&self.inner.set, &self.inner.release, meta, &routes);
        Ok((route, negotiation))
    }

    async fn get_once(&self, meta: Arc<Meta>, type_name: &str, id: &str) -> Result<Doc, Error> {
        let (route, negotiation) = self.route_of(&meta, type_name)?;
        let (rev, wire) = self.fetch(type_name, id, route, &negotiation).await?;
        let body =
            translate::incoming(&self.inner.set, &self.inner.params, type_name, route, wire)?;
        Ok(Doc {
            id: id.to_owned(),
            rev,
            body,
        })
    }

    /// Read a document in the wire version (remembered for a later local write).
    async fn fetch(
        &self,
        type_name: &str,
        id: &str,
        route: Route,
        negotiation: &Negotiation,
    ) -> Result<(String, Value), Error> {
        let answer = self
            .send(
                Call::new(Method::GET, vec!["docs", type_name, id])
                    .negotiated(Some(type_name), negotiation),
            )
            .await?;
        answer.check_version(type_name, route.wire_version())?;
        let rev = answer.etag()?;
        let body: Value = answer.parse()?;
        if route.is_local() {
            self.remember(type_name, id, route, &rev, &body);
        }
        Ok((rev, body))
    }

    async fn create_once(
        &self,
        meta: Arc<Meta>,
        type_name: &str,
        id: Option<&str>,
        body: &Value,
    ) -> Result<Written, Error> {
        let (route, negotiation) = self.route_of(&meta, type_name)?;
        let wire = translate::outgoing(
            &self.inner.set,
            &self.inner.params,
            type_name,
            route,
            body,
            None,
        )?;
        let mut call = Call::new(Method::POST, vec!["docs", type_name])
            .negotiated(Some(type_name), &negotiation)
            .json(&wire, "application/json");
        if let Some(id) = id {
            call.query.push(("id", id.to_owned()));
        }
        let answer = self.send(call).await?;
        let written: Written = answer.parse::<WrittenWire>()?.into();
        if route.is_local() {
            self.remember(type_name, &written.id, route, &written.rev, &wire);
        }
        Ok(written)
    }

    async fn put_once(
        &self,
        meta: Arc<Meta>,
        type_name: &str,
        id: &str,
        body: &Value,
        rev: Option<&str>,
    ) -> Result<Written, Error> {
        let (route, negotiation) = self.route_of(&meta, type_name)?;
        let stored = match (route.is_local(), rev) {
            (true, Some(rev)) => Some(self.stored(type_name, id, rev, route, &negotiation).await?),
            _ => None,
        };
        let wire = translate::outgoing(
            &self.inner.set,
            &self.inner.params,
            type_name,
            route,
            body,
            stored.as_ref(),
        )?;
        self.write(type_name, id, &wire, rev, route, &negotiation)
            .await
    }

    /// The server's current document at `rev`, in the wire version: from the cache, or read.
    /// A document that moved past `rev` is a conflict, as the server would say.
    async fn stored(
        &self,
        type_name: &str,
        id: &str,
        rev: &str,
        route: Route,
        negotiation: &Negotiation,
    ) -> Result<Value, Error> {
        if let Some(body) = self.recall(type_name, id, route, rev) {
            return Ok(body);
        }
        let (current, body) = self.fetch(type_name, id, route, negotiation).await?;
        if current != rev {
            return Err(Error::Conflict {
                path: format!("/docs/{type_name}/{id}"),
                current_rev: Some(current),
            });
        }
        Ok(body)
    }

    /// PUT a body already in the wire version.
    async fn write(
        &self,
        type_name: &str,
        id: &str,
        wire: &Value,
        rev: Option<&str>,
        route: Route,
        negotiation: &Negotiation,
    ) -> Result<Written, Error> {
        let mut call = Call::new(Method::PUT, vec!["docs", type_name, id])
            .negotiated(Some(type_name), negotiation)
            .json(wire, "application/json");
        call.if_match = rev;
        let answer = self.send(call).await?;
        let written: Written = answer.parse::<WrittenWire>()?.into();
        if route.is_local() {
            self.remember(type_name, id, route, &written.rev, wire);
        }
        Ok(written)
    }

    async fn patch_once(
        &self,
        meta: Arc<Meta>,
        type_name: &str,
        id: &str,
        patch: &Value,
        rev: &str,
    ) -> Result<Written, Error> {
        let (route, negotiation) = self.route_of(&meta, type_name)?;
        match translate::outgoing_patch(
            &self.inner.set,
            &self.inner.params,
            type_name,
            route,
            patch,
        )? {
            OutgoingPatch::Send(wire_patch) => {
                let mut call = Call::new(Method::PATCH, vec!["docs", type_name, id])
                    .negotiated(Some(type_name), &negotiation)
                    .json(&wire_patch, "application/json-patch+json");
                call.if_match = Some(rev);
                let answer = self.send(call).await?;
                // The server applied the patch: what it holds is no longer what was cached.
                self.forget(type_name, id);
                Ok(answer.parse::<WrittenWire>()?.into())
            }
            OutgoingPatch::ReadModifyWrite => {
                let stored = self.stored(type_name, id, rev, route, &negotiation).await?;
                let ours = translate::incoming(
                    &self.inner.set,
                    &self.inner.params,
                    type_name,
                    route,
                    stored.clone(),
                )?;
                let patched = mutatis_lens::apply_patch(&ours, patch)?;
                let wire = translate::outgoing(
                    &self.inner.set,
                    &self.inner.params,
                    type_name,
                    route,
                    &patched,
                    Some(&stored),
                )?;
                self.write(type_name, id, &wire, Some(rev), route, &negotiation)
                    .await
            }
        }
    }

    async fn delete_once(
        &self,
        meta: Arc<Meta>,
        type_name: &str,
        id: &str,
        rev: &str,
    ) -> Result<Written, Error> {
        let (_, negotiation) = self.route_of(&meta, type_name)?;
        let mut call = Call::new(Method::DELETE, vec!["docs", type_name, id])
            .negotiated(Some(type_name), &negotiation);
        call.if_match = Some(rev);
        let answer = self.send(call).await?;
        self.forget(type_name, id);
        Ok(answer.parse::<WrittenWire>()?.into())
    }

    async fn list_once(
        &self,
        meta: Arc<Meta>,
        type_name: &str,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page, Error> {
        let (route, negotiation) = self.route_of(&meta, type_name)?;
        let mut call = Call::new(Method::GET, vec!["docs", type_name])
            .negotiated(Some(type_name), &negotiation);
        if let Some(after) = after {
            call.query.push(("after", after.to_owned()));
        }
        if let Some(limit) = limit {
            call.query.push(("limit", limit.to_string()));
        }
        let answer = self.send(call).await?;
        answer.check_version(type_name, route.wire_version())?;
        let page: ListWire = answer.parse()?;
        let mut docs = Vec::with_capacity(page.docs.len());
        for entry in page.docs {
            if route.is_local() {
                self.remember(type_name, &entry.id, route, &entry.rev, &entry.doc);
            }
            let body = translate::incoming(
                &self.inner.set,
                &self.inner.params,
                type_name,
                route,
                entry.doc,
            )?;
            docs.push(Doc {
                id: entry.id,
                rev: entry.rev,
                body,
            });
        }
        Ok(Page {
            docs,
            next: page.next,
        })
    }

    async fn changes_once(
        &self,
        meta: Arc<Meta>,
        since: u64,
        options: &ChangesOptions,
    ) -> Result<Changes, Error> {
        let types: Vec<String> = match &options.types {
            Some(types) => types.clone(),
            None => self
                .inner
                .set
                .release(&self.inner.release)
                .map(|r| {
                    r.types
                        .keys()
                        .filter(|t| meta.types.contains_key(*t))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
        };
        let mut routes = BTreeMap::new();
        for t in &types {
            routes.insert(
                t.clone(),
                plan::route(&self.inner.set, &self.inner.release, &meta, t)?,
            );
        }
        let negotiation = plan::negotiate(&self.inner.set, &self.inner.release, &meta, &routes);
        let mut call = Call::new(Method::GET, vec!["changes"]).negotiated(None, &negotiation);
        call.query.push(("since", since.to_string()));
        call.query.push(("types", types.join(",")));
        if options.include_docs {
            call.query.push(("include_docs", "true".to_owned()));
        }
        match options.longpoll {
            Some(wait) => {
                call.query.push(("feed", "longpoll".to_owned()));
                call.query.push(("timeout", wait.as_millis().to_string()));
                call.extra_wait = wait;
            }
            None => call.query.push(("feed", "normal".to_owned())),
        }
        if let Some(limit) = options.limit {
            call.query.push(("limit", limit.to_string()));
        }
        let answer = self.send(call).await?;
        let wire: ChangesWire = answer.parse()?;
        let mut results = Vec::with_capacity(wire.results.len());
        for c in wire.results {
            let Some(&route) = routes.get(&c.type_name) else {
                return Err(answer.protocol(format!(
                    "the feed returned a change of type {}, which was not asked for",
                    c.type_name
                )));
            };
            // Not remembered for later writes: the feed's doc is the document as it is now,
            // which may be newer than this change's revision.
            let doc = match c.doc {
                Some(doc) if !c.deleted => Some(translate::incoming(
                    &self.inner.set,
                    &self.inner.params,
                    &c.type_name,
                    route,
                    doc,
                )?),
                _ => None,
            };
            results.push(Change {
                seq: c.seq,
                type_name: c.type_name,
                id: c.id,
                rev: c.rev,
                deleted: c.deleted,
                doc,
            });
        }
        Ok(Changes {
            results,
            last_seq: wire.last_seq,
        })
    }

    // -----------------------------------------------------------------------------------------

    fn url(&self, segments: &[&str], query: &[(&'static str, String)]) -> Url {
        let mut url = self.inner.base.clone();
        // The base was checked to be http(s) at build, so it has path segments.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    async fn send(&self, call: Call<'_>) -> Result<Answer, Error> {
        let url = self.url(&call.segments, &call.query);
        let path = url.path().to_owned();
        let mut request = self
            .inner
            .http
            .request(call.method, url)
            .header(ACCEPT, "application/json, application/problem+json")
            .timeout(self.inner.timeout + call.extra_wait);
        if let Some(auth) = &self.inner.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        if let Some(n) = call.negotiation {
            if let Some(release) = &n.release {
                request = request.header(RELEASE_HEADER, release.as_str());
            }
            if let Some(versions) = n.versions_header() {
                request = request.header(VERSIONS_HEADER, versions);
            }
        }
        if let Some(rev) = call.if_match {
            request = request.header(IF_MATCH, format!("\"{rev}\""));
        }
        if let Some((body, content_type)) = call.body {
            request = request.header(CONTENT_TYPE, content_type).body(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await?.to_vec();
        if let Some(n) = call.negotiation {
            self.notice_deprecation(&headers, n);
        }
        if !(200..300).contains(&status) {
            let problem = Problem::from_body(status, &body);
            return Err(Error::from_problem(&path, call.type_name, problem));
        }
        Ok(Answer {
            path,
            headers,
            body,
        })
    }

    /// Report a deprecation once per release.
    fn notice_deprecation(&self, headers: &HeaderMap, negotiation: &Negotiation) {
        let Some(hook) = &self.inner.on_deprecation else {
            return;
        };
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (deprecation, sunset) = (header("deprecation"), header("sunset"));
        if deprecation.is_none() && sunset.is_none() {
            return;
        }
        let release = header(RELEASE_HEADER)
            .map(str::to_owned)
            .unwrap_or_else(|| negotiation.label());
        if !lock(&self.inner.notified).insert(release.clone()) {
            return;
        }
        let sunset = sunset
            .map(|s| sunset_date(s).unwrap_or_else(|| s.to_owned()))
            .or_else(|| {
                // No Sunset header: the server's /meta may still know the date.
                lock(&self.inner.meta)
                    .as_ref()
                    .and_then(|m| m.release(&release).and_then(|r| r.sunset.clone()))
            });
        let link = header("link").and_then(deprecation_link).map(|target| {
            self.inner
                .base
                .join(&target)
                .map(String::from)
                .unwrap_or(target)
        });
        let notice = Deprecation {
            release,
            deprecated_at: deprecation.and_then(parse_deprecation),
            sunset,
            link,
        };
        // Called outside every lock: the hook may call back into the client.
        hook(&notice);
    }

    fn remember(&self, type_name: &str, id: &str, route: Route, rev: &str, body: &Value) {
        lock(&self.inner.wire_cache).put(
            (type_name.to_owned(), id.to_owned()),
            WireEntry {
                rev: rev.to_owned(),
                version: route.wire_version(),
                body: body.clone(),
            },
        );
    }

    fn recall(&self, type_name: &str, id: &str, route: Route, rev: &str) -> Option<Value> {
        lock(&self.inner.wire_cache)
            .get(&(type_name.to_owned(), id.to_owned()))
            .filter(|e| e.rev == rev && e.version == route.wire_version())
            .map(|e| e.body.clone())
    }

    fn forget(&self, type_name: &str, id: &str) {
        lock(&self.inner.wire_cache).remove(&(type_name.to_owned(), id.to_owned()));
    }
}

/// A lock that survives a panic elsewhere: every value behind these locks is valid at any
/// point (a cache, a set of names), so a poisoned one is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

type DocKey = (String, String);

struct WireEntry {
    rev: String,
    version: u32,
    body: Value,
}

/// Documents last seen in the server's version, keyed by type and id, bounded; the oldest
/// entry goes first.
#[derive(Default)]
struct WireCache {
    entries: HashMap<DocKey, WireEntry>,
    order: VecDeque<DocKey>,
}

impl WireCache {
    fn get(&self, key: &DocKey) -> Option<&WireEntry> {
        self.entries.get(key)
    }

    fn put(&mut self, key: DocKey, entry: WireEntry) {
        if self.entries.insert(key.clone(), entry).is_none() {
            self.order.push_back(key);
        }
        while self.entries.len() > WIRE_CACHE_CAPACITY {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
    }

    fn remove(&mut self, key: &DocKey) {
        if self.entries.remove(key).is_some() {
            self.order.retain(|k| k != key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_cache_is_bounded_and_evicts_the_oldest() {
        let mut cache = WireCache::default();
        for i in 0..WIRE_CACHE_CAPACITY + 10 {
            cache.put(
                ("t".into(), i.to_string()),
                WireEntry {
                    rev: "1-a".into(),
                    version: 1,
                    body: Value::Null,
                },
            );
        }
        assert_eq!(cache.entries.len(), WIRE_CACHE_CAPACITY);
        assert!(cache.get(&("t".into(), "0".into())).is_none());
        assert!(cache
            .get(&("t".into(), (WIRE_CACHE_CAPACITY + 9).to_string()))
            .is_some());
        cache.remove(&("t".into(), (WIRE_CACHE_CAPACITY + 9).to_string()));
        assert_eq!(cache.order.len(), WIRE_CACHE_CAPACITY - 1);
    }

    #[test]
    fn build_checks_the_configuration() {
        let set = Arc::new(
            SchemaSet::from_sources(vec![
                (
                    PathBuf::from("mutatis.yaml"),
                    "name: s\nreleases:\n  - {name: \"1\", types: {t: 1}, status: current}\n"
                        .to_owned(),
                ),
                (
                    PathBuf::from("types/t.yaml"),
                    "type: t\nversions:\n  1:\n    schema: {type: object}\n".to_owned(),
                ),
            ])
            .unwrap(),
        );
        let ok = Client::builder("http://127.0.0.1:1/prefix?x=1")
            .schema_set(set.clone())
            .release("1")
            .build()
            .unwrap();
        assert_eq!(
            ok.url(&["docs", "t", "a/b c"], &[("after", "x&y".into())])
                .as_str(),
            "http://127.0.0.1:1/prefix/docs/t/a%2Fb%20c?after=x%26y"
        );
        assert!(matches!(
            Client::builder("ftp://x")
                .schema_set(set.clone())
                .release("1")
                .build(),
            Err(BuildError::InvalidUrl { .. })
        ));
        assert!(matches!(
            Client::builder("http://x").release("1").build(),
            Err(BuildError::MissingSchemaSet)
        ));
        assert!(matches!(
            Client::builder("http://x")
                .schema_set(set.clone())
                .release("9")
                .build(),
            Err(BuildError::UnknownRelease { .. })
        ));
        assert!(matches!(
            Client::builder("http://x")
                .schema_set(set)
                .release("1")
                .token("bad\ntoken")
                .build(),
            Err(BuildError::InvalidToken)
        ));
        assert!(matches!(
            Client::builder("http://x")
                .manifest_file("/nonexistent/manifest.json")
                .release("1")
                .build(),
            Err(BuildError::ManifestRead { .. })
        ));
    }
}
