//! RFC 9457 problem details: every error the server (and a `mutatis-axum` service) answers is
//! one of these.
//!
//! A [`Problem`] is a plain value (built and unit-tested without a server). Handlers return it
//! as an error; the response layer fills `instance` with the request path, which handlers do
//! not need to carry around.

use serde_json::{json, Map, Value};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem: a stable `type` URN, an HTTP status, a human title and detail, and extension
/// members a program can act on (`oldestSupported`, `currentRev`, `errors`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// HTTP status code.
    pub status: u16,
    /// Stable URN naming the kind of problem (`urn:mutatis:problem:…`).
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// What went wrong this time, precisely.
    pub detail: String,
    /// Extension members, merged into the body (boxed: a problem travels in `Err`, which
    /// should stay small).
    pub extensions: Box<Map<String, Value>>,
    /// Extra response headers (`WWW-Authenticate`, …).
    pub headers: Vec<(&'static str, String)>,
}

impl Problem {
    /// A problem of kind `urn:mutatis:problem:<name>`.
    pub fn new(status: u16, name: &str, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            kind: format!("urn:mutatis:problem:{name}"),
            title: title.to_owned(),
            detail: detail.into(),
            extensions: Box::default(),
            headers: Vec::new(),
        }
    }

    /// Add an extension member.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Problem {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// Add a response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Problem {
        self.headers.push((name, value.into()));
        self
    }

    /// The short name after `urn:mutatis:problem:` (for logs and tests).
    pub fn name(&self) -> &str {
        self.kind
            .strip_prefix("urn:mutatis:problem:")
            .unwrap_or(&self.kind)
    }

    /// The JSON body, with `instance` set to the request path.
    pub fn body(&self, instance: &str) -> Value {
        self.body_at(Some(instance))
    }

    /// The JSON body, with `instance` when the request path is known.
    pub fn body_at(&self, instance: Option<&str>) -> Value {
        let mut out = Map::new();
        out.insert("type".into(), json!(self.kind));
        out.insert("title".into(), json!(self.title));
        out.insert("status".into(), json!(self.status));
        out.insert("detail".into(), json!(self.detail));
        if let Some(instance) = instance {
            out.insert("instance".into(), json!(instance));
        }
        for (k, v) in self.extensions.iter() {
            // Extensions never override the standard members.
            out.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(out)
    }

    /// 400 malformed JSON, naming line and column.
    pub fn malformed_json(e: &serde_json::Error) -> Problem {
        Problem::new(
            400,
            "malformed-json",
            "Malformed JSON",
            format!("the request body is not valid JSON: {e}"),
        )
        .with("line", e.line())
        .with("column", e.column())
    }

    /// A body that [`mutatis_lens::json::from_slice`] refuses: 400 malformed JSON, or 422
    /// `invalid-document` naming the pointer of a number mutatis cannot hold exactly (stored,
    /// it would be another number), in the `errors` form a schema violation has.
    pub fn json(e: &mutatis_lens::json::JsonError) -> Problem {
        use mutatis_lens::json::JsonError;
        match e {
            JsonError::Syntax(e) => Problem::malformed_json(e),
            JsonError::Inexact { at, number, why } => Problem::new(
                422,
                "invalid-document",
                "Invalid document",
                format!("the body holds a number that cannot be stored as written: {e}"),
            )
            .with(
                "errors",
                json!([{"pointer": at, "message": format!("the number {number} {why}")}]),
            ),
        }
    }

    /// 422 `invalid-document`: a body its version's JSON Schema refuses, each issue in
    /// `errors` with its pointer.
    pub fn invalid_document(
        detail: impl Into<String>,
        issues: &[mutatis_schema::ValidationIssue],
    ) -> Problem {
        Problem::new(422, "invalid-document", "Invalid document", detail).with(
            "errors",
            Value::Array(
                issues
                    .iter()
                    .map(|i| json!({"pointer": i.pointer, "message": i.message}))
                    .collect(),
            ),
        )
    }

    /// 415 for a body of the wrong media type.
    pub fn unsupported_media_type(got: Option<&str>, expected: &str) -> Problem {
        Problem::new(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            match got {
                Some(g) => format!("the body is `{g}`; this endpoint takes `{expected}`"),
                None => {
                    format!("the request has no Content-Type; this endpoint takes `{expected}`")
                }
            },
        )
        .with("expected", expected)
    }

    /// 400 for a bad query parameter or header value.
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(400, "bad-request", "Bad request", detail)
    }

    /// 404 for a document that does not exist or that the caller may not read.
    pub fn not_found(type_name: &str, id: &str) -> Problem {
        Problem::new(
            404,
            "not-found",
            "Not found",
            format!("there is no {type_name} document {id:?}"),
        )
    }

    /// 503: the storage failed. The detail never carries the backend's internals (they go to
    /// the log).
    pub fn unavailable() -> Problem {
        Problem::new(
            503,
            "unavailable",
            "Service unavailable",
            "the store could not be reached or failed; the request can be retried",
        )
    }

    /// 500: a bug (a panic, a task that died). The detail says nothing internal.
    pub fn internal() -> Problem {
        Problem::new(
            500,
            "internal",
            "Internal server error",
            "the server failed on this request; it was logged",
        )
    }

    /// The problem for a status that a layer below the handlers produced on its own
    /// (an unknown route, a method not allowed, a body over the limit).
    pub fn for_status(status: u16, detail: &str) -> Problem {
        let (name, title) = match status {
            404 => ("no-route", "No such endpoint"),
            405 => ("method-not-allowed", "Method not allowed"),
            408 => ("body-timeout", "Request body timed out"),
            413 => ("body-too-large", "Request body too large"),
            414 => ("uri-too-long", "Request target too long"),
            415 => ("unsupported-media-type", "Unsupported media type"),
            422 => ("unprocessable", "Unprocessable request"),
            431 => ("headers-too-large", "Request header fields too large"),
            400..=499 => ("bad-request", "Bad request"),
            503 => ("unavailable", "Service unavailable"),
            _ => ("internal", "Internal server error"),
        };
        let detail = if detail.trim().is_empty() {
            title.to_owned()
        } else {
            detail.trim().to_owned()
        };
        Problem::new(status, name, title, detail)
    }
}

/// A problem as an axum response: its status, `application/problem+json`, its headers and
/// its body without `instance`. The problem itself rides along in the response's extensions,
/// so a layer that knows the request path can write the body again with `instance` (the
/// server's edge layer does).
#[cfg(feature = "axum")]
impl axum::response::IntoResponse for Problem {
    fn into_response(self) -> axum::response::Response {
        use axum::http::{header::CONTENT_TYPE, HeaderName, HeaderValue, StatusCode};
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = self.body_at(None).to_string();
        let mut resp = (status, [(CONTENT_TYPE, PROBLEM_JSON)], body).into_response();
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                resp.headers_mut().append(HeaderName::from_static(name), v);
            }
        }
        resp.extensions_mut().insert(self);
        resp
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.name(), self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_rfc_9457_members_and_extensions() {
        let p =
            Problem::new(412, "rev-conflict", "Rev conflict", "stale").with("currentRev", "2-ab");
        let b = p.body("/docs/t/1");
        assert_eq!(b["type"], "urn:mutatis:problem:rev-conflict");
        assert_eq!(b["status"], 412);
        assert_eq!(b["instance"], "/docs/t/1");
        assert_eq!(b["currentRev"], "2-ab");
        assert_eq!(p.name(), "rev-conflict");
    }

    #[test]
    fn extensions_cannot_override_standard_members() {
        let p = Problem::new(400, "x", "X", "d").with("status", 200);
        assert_eq!(p.body("/")["status"], 400);
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let e = serde_json::from_str::<Value>("{\n  \"a\": ,}").unwrap_err();
        let b = Problem::malformed_json(&e).body("/");
        assert_eq!(b["line"], 2);
        assert!(b["column"].as_u64().unwrap() > 0);
    }

    #[test]
    fn an_inexact_number_is_an_invalid_document_naming_its_pointer() {
        let e = mutatis_lens::json::from_slice(br#"{"a": [1, 1e400]}"#).unwrap_err();
        let p = Problem::json(&e);
        assert_eq!((p.status, p.name()), (422, "invalid-document"));
        let b = p.body("/");
        assert_eq!(b["errors"][0]["pointer"], "/a/1");
        assert!(b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("1e400"));
        let e = mutatis_lens::json::from_slice(b"{\n  \"a\": ,}").unwrap_err();
        assert_eq!(Problem::json(&e).body("/")["line"], 2);
    }

    #[test]
    fn layer_statuses_get_distinct_kinds() {
        assert_eq!(Problem::for_status(405, "").name(), "method-not-allowed");
        assert_eq!(Problem::for_status(413, "too big").detail, "too big");
        assert_eq!(Problem::for_status(404, "").name(), "no-route");
    }
}
