//! # mutatis-axum
//!
//! Versioned endpoints for any axum service, negotiated exactly as `mutatis serve` negotiates
//! (through the same crate, [`mutatis_negotiate`]). A handler is written against the newest
//! Rust types only; clients of every served release keep speaking their own version:
//!
//! - [`VersionedJson<T>`] (an extractor) reads the caller's release — `Mutatis-Release`,
//!   `Mutatis-Versions`, `?release=`, else the schema set's default release or detection from
//!   the body's shape — and reads the body as `T` with [`Versioned::from_any`]: validated
//!   against that version's JSON Schema, translated through the lenses up to `T::VERSION`,
//!   validated there and deserialised.
//!   It refuses with an RFC 9457 `application/problem+json` body: 415 for another media type,
//!   400 for malformed JSON and the negotiation problems (`unsupported-release`, with
//!   `oldestSupported`, so an app can lock itself; `unknown-release`, …), 422
//!   `invalid-document` (with the `errors` pointers) or `untranslatable`.
//! - [`VersionedResponse<R>`] (made by [`Caller::respond`]) translates a value of `R`
//!   down to the caller's version of `R::TYPE` ([`Versioned::to_any`]) and answers with the headers the server sends:
//!   `Mutatis-Release`, `Mutatis-Versions`, and `Deprecation`/`Sunset`/`Link` for a deprecated
//!   release.
//! - [`OpenApi`] describes the service's own routes per release (`GET /openapi.json?release=N`)
//!   from the same types and schema set.
//!
//! The schema set and the translation parameters come from the router's state: a
//! [`Negotiation`], or any state `S` with `Negotiation: FromRef<S>`.

#![warn(missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRef, FromRequest, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use mutatis_lens::Params;
use mutatis_negotiate::{negotiate, Announce, Problem, Served};
use mutatis_schema::{Release, SchemaSet};
use mutatis_versioned::{Versioned, VersionedError};
use serde_json::{json, Map, Value};

pub use mutatis_negotiate as negotiation;

/// The schema set a service negotiates with, and the parameters its lenses are run with
/// (`referenceYear`, …). Cheap to clone; put it in the router's state (directly, or through
/// `FromRef` from the app's own state).
#[derive(Clone)]
pub struct Negotiation {
    set: Arc<SchemaSet>,
    params: Arc<Params>,
}

impl Negotiation {
    /// Negotiate with `set`, running lenses with `params`.
    pub fn new(set: Arc<SchemaSet>, params: Params) -> Negotiation {
        Negotiation {
            set,
            params: Arc::new(params),
        }
    }

    /// Negotiate with `set` as of `today` (`YYYY-MM-DD`): releases whose sunset has come are
    /// retired, and the lenses get `referenceDate`/`referenceYear` of that day. `None` when
    /// `today` is not a date.
    pub fn as_of(set: SchemaSet, today: &str) -> Option<Negotiation> {
        let unix = mutatis_negotiate::headers::date_to_unix(today)?;
        Some(Negotiation::new(
            Arc::new(set.as_of(today)),
            mutatis_lens::calendar::reference_params(unix),
        ))
    }

    /// The schema set.
    pub fn set(&self) -> &SchemaSet {
        &self.set
    }

    /// The parameters lenses are run with.
    pub fn params(&self) -> &Params {
        &self.params
    }
}

/// A refusal: the problem, answered as `application/problem+json` with `instance` set to the
/// request path.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// What went wrong.
    pub problem: Problem,
    /// The request path.
    pub instance: String,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let body = self.problem.body(&self.instance).to_string();
        let mut resp = self.problem.into_response();
        *resp.body_mut() = Body::from(body);
        resp
    }
}

/// Who is calling, as negotiated for a request: the announcement it made and what was served
/// for the request's type. [`Caller::respond`] answers it in its own version.
#[derive(Clone)]
pub struct Caller {
    negotiation: Negotiation,
    announce: Announce,
    served: Served,
    instance: String,
}

impl Caller {
    /// What was negotiated for the request's body: the release (named or detected), the
    /// version it spoke, and whether it is deprecated.
    pub fn served(&self) -> &Served {
        &self.served
    }

    /// Answer `value` with `status`, translated to the caller's version of `R::TYPE`.
    pub fn respond<R: Versioned>(&self, status: StatusCode, value: R) -> VersionedResponse<R> {
        VersionedResponse {
            caller: self.clone(),
            status,
            value,
        }
    }

    /// What the caller is served for `type_name`: the release negotiated for the request
    /// (named or detected) decides, unless `Mutatis-Versions` names the type.
    fn served_for(&self, type_name: &str) -> Result<Served, Problem> {
        let announce = Announce {
            release: self
                .served
                .release
                .clone()
                .or_else(|| self.announce.release.clone()),
            versions: self.announce.versions.clone(),
        };
        negotiate(
            self.negotiation.set(),
            self.negotiation.params(),
            &announce,
            type_name,
            None,
        )
    }

    fn reject(&self, problem: Problem) -> Response {
        Rejection {
            problem,
            instance: self.instance.clone(),
        }
        .into_response()
    }
}

/// A JSON body of any served version of `T::TYPE`, brought to `T` (see the crate's
/// documentation for what it refuses).
pub struct VersionedJson<T> {
    /// The body, as the head version `T`.
    pub value: T,
    /// The caller, to answer in its version.
    pub caller: Caller,
}

impl<T, S> FromRequest<S> for VersionedJson<T>
where
    T: Versioned,
    Negotiation: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let negotiation = Negotiation::from_ref(state);
        let instance = req.uri().path().to_owned();
        let reject = |problem: Problem| Rejection {
            problem,
            instance: instance.clone(),
        };
        let announce = announce(req.headers(), req.uri(), negotiation.set()).map_err(reject)?;
        require_json(req.headers()).map_err(reject)?;
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| reject(Problem::for_status(e.status().as_u16(), &e.body_text())))?;
        let body = mutatis_lens::json::from_slice(&bytes).map_err(|e| reject(Problem::json(&e)))?;
        let (served, value) = to_head::<T>(&negotiation, &announce, body).map_err(reject)?;
        Ok(VersionedJson {
            value,
            caller: Caller {
                negotiation,
                announce,
                served,
                instance,
            },
        })
    }
}

/// The announcement of a request: its headers and `?release=`.
fn announce(
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    set: &SchemaSet,
) -> Result<Announce, Problem> {
    let query: HashMap<String, String> = match Query::try_from_uri(uri) {
        Ok(Query(q)) => q,
        Err(e) => return Err(Problem::bad_request(e.body_text())),
    };
    Announce::read(
        headers.get("mutatis-release").map(HeaderValue::as_bytes),
        query.get("release").map(String::as_str),
        headers.get("mutatis-versions").map(HeaderValue::as_bytes),
        set,
    )
}

/// 415 unless the body is `application/json` (parameters such as `charset` aside).
fn require_json(headers: &HeaderMap) -> Result<(), Problem> {
    let got = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let essence = got.map(|v| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    if essence.as_deref() == Some("application/json") {
        Ok(())
    } else {
        Err(Problem::unsupported_media_type(got, "application/json"))
    }
}

/// Negotiate `body`'s version of `T::TYPE`, then read it as `T` through
/// [`Versioned::from_any`] (checked in its version, translated, checked in `T::VERSION`).
fn to_head<T: Versioned>(
    negotiation: &Negotiation,
    announce: &Announce,
    body: Value,
) -> Result<(Served, T), Problem> {
    let (set, params) = (negotiation.set(), negotiation.params());
    let served = negotiate(set, params, announce, T::TYPE, Some(&body))?;
    let value = T::from_any(body, served.version, set, params)
        .map_err(|e| versioned_problem(&e, served.version))?;
    Ok((served, value))
}

/// The problem of a body that could not be read as its head version. `body_version` is the
/// version the body was in: a document invalid there is the client's mistake as sent, one
/// invalid in another version failed once translated.
fn versioned_problem(e: &VersionedError, body_version: u32) -> Problem {
    match e {
        VersionedError::Invalid {
            type_name,
            version,
            issues,
            ..
        } => Problem::invalid_document(
            if *version == body_version {
                format!("the body is not a valid {type_name}@{version}")
            } else {
                format!("the body, valid as {type_name}@{body_version}, is not a valid {type_name}@{version} once translated")
            },
            issues,
        ),
        VersionedError::Lens { pointer, .. } => Problem::new(
            422,
            "untranslatable",
            "Document cannot be translated",
            e.to_string(),
        )
        .with("pointer", pointer.as_str()),
        VersionedError::Deserialize { path, .. } => {
            Problem::new(422, "invalid-document", "Invalid document", e.to_string())
                .with("path", path.as_str())
        }
        // The type or version is not the set's: the service's own mistake, not the client's.
        _ => Problem::internal().with("reason", e.to_string()),
    }
}

/// A value of `R` answered in the caller's version of `R::TYPE`, with the negotiation headers
/// (see [`Caller::respond`]).
pub struct VersionedResponse<R> {
    caller: Caller,
    status: StatusCode,
    value: R,
}

impl<R: Versioned> IntoResponse for VersionedResponse<R> {
    fn into_response(self) -> Response {
        let caller = &self.caller;
        let served = match caller.served_for(R::TYPE) {
            Ok(s) => s,
            Err(p) => return caller.reject(p),
        };
        let (set, params) = (caller.negotiation.set(), caller.negotiation.params());
        let body = match self.value.to_any(served.version, set, params) {
            Ok(b) => b,
            // The handler's own value: a failure is the service's, not the client's.
            Err(e) => return caller.reject(Problem::internal().with("reason", e.to_string())),
        };
        let mut resp = (
            self.status,
            [(CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        for (name, value) in served.headers(R::TYPE) {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(HeaderName::from_static(name), v);
            }
        }
        resp
    }
}

/// One route of a service, as its OpenAPI document describes it.
#[derive(Debug, Clone)]
struct Route {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    request: &'static str,
    status: u16,
    response: &'static str,
}

/// The OpenAPI 3.1 documents of a service's versioned routes, one per release: each route's
/// request and response bodies are the release's versions of their types, so a client of
/// release 3 reads release 3's schemas. A route whose types a release lacks is left out of
/// its document.
#[derive(Debug, Clone, Default)]
pub struct OpenApi {
    title: String,
    routes: Vec<Route>,
}

impl OpenApi {
    /// An empty description titled `title`.
    pub fn new(title: impl Into<String>) -> OpenApi {
        OpenApi {
            title: title.into(),
            routes: Vec::new(),
        }
    }

    /// A route taking a [`VersionedJson<Req>`] and answering `status` with a
    /// [`VersionedResponse<Res>`].
    pub fn route<Req: Versioned, Res: Versioned>(
        mut self,
        method: &'static str,
        path: &'static str,
        summary: &'static str,
        status: u16,
    ) -> OpenApi {
        self.routes.push(Route {
            method,
            path,
            summary,
            request: Req::TYPE,
            status,
            response: Res::TYPE,
        });
        self
    }

    /// The document for `release` of `set`.
    pub fn document(&self, set: &SchemaSet, release: &Release) -> Value {
        let mut schemas = Map::new();
        let mut component = |type_name: &str| -> Option<Value> {
            let version = release.version_of(type_name)?;
            let schema = set.schema(type_name, version).ok()?;
            let name = format!("{type_name}_v{version}");
            schemas.insert(name.clone(), schema.clone());
            Some(json!({"$ref": format!("#/components/schemas/{name}")}))
        };
        let mut paths = Map::new();
        for r in &self.routes {
            let (Some(request), Some(response)) = (component(r.request), component(r.response))
            else {
                continue;
            };
            let mut op = Map::new();
            op.insert("summary".into(), json!(r.summary));
            op.insert(
                "parameters".into(),
                json!([{
                    "name": "Mutatis-Release",
                    "in": "header",
                    "description": "The release the client speaks; without it the service applies its default release (or detects it from the body).",
                    "schema": {"type": "string", "enum": [release.name]},
                }]),
            );
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": request}}}),
            );
            let problem = json!({
                "description": "A problem (RFC 9457)",
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
            });
            op.insert(
                "responses".into(),
                json!({
                    r.status.to_string(): {
                        "description": format!("{} in release {}'s version", r.response, release.name),
                        "headers": {
                            "Mutatis-Release": {"schema": {"type": "string"}},
                            "Mutatis-Versions": {"schema": {"type": "string"}},
                        },
                        "content": {"application/json": {"schema": response}},
                    },
                    "400": problem,
                    "415": problem,
                    "422": problem,
                }),
            );
            let path = paths.entry(r.path).or_insert_with(|| json!({}));
            path[r.method.to_ascii_lowercase()] = Value::Object(op);
        }
        schemas.insert(
            "Problem".into(),
            json!({
                "type": "object",
                "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"},
                    "status": {"type": "integer"}, "detail": {"type": "string"},
                    "instance": {"type": "string"},
                },
                "required": ["type", "title", "status", "detail"],
            }),
        );
        json!({
            "openapi": "3.1.0",
            "info": {
                "title": self.title,
                "version": release.name,
                "description": format!("Release {} ({:?}) of schema set {}", release.name, release.status, set.name()),
            },
            "paths": paths,
            "components": {"schemas": schemas},
        })
    }

    /// A router serving `GET /openapi.json?release=N`: the document of release `N`, or of the
    /// current release when none (or an unknown one) is named, as `mutatis serve` does.
    pub fn router<S>(self) -> Router<S>
    where
        Negotiation: FromRef<S>,
        S: Clone + Send + Sync + 'static,
    {
        let api = Arc::new(self);
        Router::new().route(
            "/openapi.json",
            get(
                move |State(negotiation): State<Negotiation>,
                      Query(query): Query<HashMap<String, String>>| {
                    let api = Arc::clone(&api);
                    async move {
                        let set = negotiation.set();
                        let release = query
                            .get("release")
                            .and_then(|r| set.release(r))
                            .unwrap_or_else(|| set.current());
                        (
                            [(CONTENT_TYPE, "application/json")],
                            api.document(set, release).to_string(),
                        )
                    }
                },
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use axum::routing::post;
    use serde::{Deserialize, Serialize};
    use tower::ServiceExt;

    use super::*;

    /// `Task@3`, the head: `label` was `text` (v1), `priority` came in v3.
    #[derive(Serialize, Deserialize, Versioned)]
    #[versioned(type = "task", version = 3)]
    struct Task {
        label: String,
        priority: i64,
    }

    fn negotiation() -> Negotiation {
        let set = SchemaSet::from_sources(vec![
            (
                PathBuf::from("mutatis.yaml"),
                "
name: tasks
releases:
  - {name: old, types: {task: 1}, status: unsupported}
  - {name: mid, types: {task: 2}, status: deprecated, deprecated: 2026-01-01, sunset: 2030-01-01}
  - {name: new, types: {task: 3}, status: current}
defaultRelease: {detect: body, fallback: new}
storage: {task: {version: 3, strategy: lazy}}
"
                .to_owned(),
            ),
            (
                PathBuf::from("types/task.yaml"),
                "
type: task
versions:
  1: {schema: {type: object, properties: {text: {type: string}}, required: [text], additionalProperties: false}}
  2: {lens: [{rename: {source: text, destination: label}}]}
  3: {lens: [{add: {name: priority, type: integer, default: 1}}]}
"
                .to_owned(),
            ),
        ])
        .unwrap();
        Negotiation::as_of(set, "2026-06-01").unwrap()
    }

    /// A handler on the head only: it doubles the priority and shouts the label.
    async fn bump(VersionedJson { value, caller }: VersionedJson<Task>) -> VersionedResponse<Task> {
        let task = Task {
            label: value.label.to_uppercase(),
            priority: value.priority * 2,
        };
        caller.respond(StatusCode::CREATED, task)
    }

    async fn call(headers: &[(&str, &str)], body: &str) -> (StatusCode, HeaderMap, Value) {
        let app = Router::new()
            .route("/tasks", post(bump))
            .with_state(negotiation());
        let mut req = Request::post("/tasks");
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let resp = app
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (parts.status, parts.headers, value)
    }

    const JSON: (&str, &str) = ("content-type", "application/json");

    #[tokio::test]
    async fn an_old_body_reaches_the_head_and_its_answer_goes_back_down() {
        // Named, deprecated: the answer is in v2 and flagged.
        let (status, h, body) =
            call(&[JSON, ("mutatis-release", "mid")], r#"{"label": "a"}"#).await;
        assert_eq!((status, body), (StatusCode::CREATED, json!({"label": "A"})));
        assert_eq!(h["mutatis-release"], "mid");
        assert_eq!(h["mutatis-versions"], "task=2");
        assert_eq!(h["deprecation"], "@1767225600");
        assert_eq!(h["sunset"], "Tue, 01 Jan 2030 00:00:00 GMT");
        assert!(h.contains_key("link"));
        // Detected from the body's shape: the same.
        let (status, h, body) = call(&[JSON], r#"{"label": "a"}"#).await;
        assert_eq!((status, body), (StatusCode::CREATED, json!({"label": "A"})));
        assert_eq!(h["mutatis-release"], "mid");
        assert!(h.contains_key("deprecation"));
        let (_, h, body) = call(&[JSON], r#"{"label": "b", "priority": 5}"#).await;
        assert_eq!(body, json!({"label": "B", "priority": 10}));
        assert_eq!(h["mutatis-release"], "new");
    }

    #[tokio::test]
    async fn refusals_are_problems_with_the_request_path() {
        for (headers, body, status, kind) in [
            (&[JSON][..], r#"{"text": "a"}"#, 400, "unsupported-release"),
            (
                &[JSON, ("mutatis-release", "old")],
                r#"{"label": "a"}"#,
                400,
                "unsupported-release",
            ),
            (
                &[JSON, ("mutatis-release", "new")],
                r#"{"label": 1}"#,
                422,
                "invalid-document",
            ),
            (
                &[JSON, ("mutatis-release", "")],
                r#"{"label": "a"}"#,
                400,
                "bad-release-header",
            ),
            (
                &[("content-type", "text/plain")],
                r#"{"label": "a"}"#,
                415,
                "unsupported-media-type",
            ),
            (&[JSON], r#"{"label": "#, 400, "malformed-json"),
        ] {
            let (got, h, problem) = call(headers, body).await;
            assert_eq!(got.as_u16(), status, "{problem}");
            assert_eq!(h["content-type"], PROBLEM_JSON_TYPE);
            assert_eq!(
                problem["type"],
                format!("urn:mutatis:problem:{kind}"),
                "{problem}"
            );
            assert_eq!(problem["instance"], "/tasks");
        }
    }

    const PROBLEM_JSON_TYPE: &str = mutatis_negotiate::PROBLEM_JSON;

    #[test]
    fn openapi_documents_follow_the_release() {
        let n = negotiation();
        let api = OpenApi::new("tasks").route::<Task, Task>("POST", "/tasks", "Bump a task", 201);
        let mid = api.document(n.set(), n.set().release("mid").unwrap());
        let op = &mid["paths"]["/tasks"]["post"];
        assert_eq!(
            op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/task_v2"
        );
        assert_eq!(op["parameters"][0]["schema"]["enum"], json!(["mid"]));
        assert!(mid["components"]["schemas"]["task_v2"]["properties"]["label"].is_object());
    }
}
