//! The client's errors: one typed variant per problem an application reacts to differently
//! (lock and ask for an update, reload and retry, show a form error…), the rest kept whole.

use std::path::PathBuf;

use mutatis_lens::{LensError, PatchError};
use mutatis_schema::SchemaError;
use serde_json::{Map, Value};
use thiserror::Error;

/// Problem types (RFC 9457 `type` URIs) of the mutatis server that the client maps to typed
/// errors.
pub mod problem_type {
    /// The release (or version) the client speaks is no longer served.
    pub const UNSUPPORTED_RELEASE: &str = "urn:mutatis:problem:unsupported-release";
    /// A stale `If-Match` revision.
    pub const REV_CONFLICT: &str = "urn:mutatis:problem:rev-conflict";
    /// A document that fails its version's schema.
    pub const INVALID_DOCUMENT: &str = "urn:mutatis:problem:invalid-document";
    /// No such document (or one the caller may not read).
    pub const NOT_FOUND: &str = "urn:mutatis:problem:not-found";
    /// No or an unknown bearer token.
    pub const UNAUTHENTICATED: &str = "urn:mutatis:problem:unauthenticated";
    /// The token's role is too low.
    pub const FORBIDDEN: &str = "urn:mutatis:problem:forbidden";
    /// The document's access policy refuses the caller.
    pub const ACCESS_DENIED: &str = "urn:mutatis:problem:access-denied";
    /// A version in `Mutatis-Versions` that the server's type lacks: the server changed since
    /// the client read `/meta`.
    pub const UNKNOWN_VERSION: &str = "urn:mutatis:problem:unknown-version";
}

/// An `application/problem+json` body (RFC 9457) as the server sent it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Problem {
    /// The problem type URI (`about:blank` when the body was not a problem document).
    pub type_uri: String,
    /// Short summary of the problem type.
    pub title: Option<String>,
    /// The HTTP status the server gave.
    pub status: u16,
    /// What went wrong in this occurrence.
    pub detail: Option<String>,
    /// The request path the problem is about.
    pub instance: Option<String>,
    /// Extension members (`oldestSupported`, `currentRev`, `errors`…).
    pub extensions: Map<String, Value>,
}

impl Problem {
    /// Read a response body: a problem document if it is one, else a blank problem carrying
    /// the start of the body as its detail (so a proxy's HTML error page is still reported).
    pub fn from_body(status: u16, body: &[u8]) -> Problem {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(mut members)) => {
                let mut take_str = |key: &str| match members.remove(key) {
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                };
                let type_uri = take_str("type").unwrap_or_else(|| "about:blank".to_owned());
                let title = take_str("title");
                let detail = take_str("detail");
                let instance = take_str("instance");
                members.remove("status");
                Problem {
                    type_uri,
                    title,
                    status,
                    detail,
                    instance,
                    extensions: members,
                }
            }
            _ => {
                // Keep error messages short: a body is shown only to tell what answered.
                let text = String::from_utf8_lossy(body);
                let detail: String = text.chars().take(200).collect();
                Problem {
                    type_uri: "about:blank".to_owned(),
                    status,
                    detail: (!detail.is_empty()).then_some(detail),
                    ..Problem::default()
                }
            }
        }
    }

    /// An extension member that is a string.
    pub fn extension_str(&self, key: &str) -> Option<&str> {
        self.extensions.get(key).and_then(Value::as_str)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.type_uri, self.status)?;
        if let Some(title) = &self.title {
            write!(f, " {title}")?;
        }
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

/// One schema violation of a document: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON pointer into the document (`""` for the root).
    pub pointer: String,
    /// What the schema expected there.
    pub message: String,
}

/// Everything a client call can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The client's release is no longer served: lock the app and ask the user to update to
    /// at least `oldest_supported`.
    #[error("release {release} is no longer supported by the server (oldest supported: {})", .oldest_supported.as_deref().unwrap_or("unknown"))]
    Unsupported {
        /// The release (or `Type=version` list) the client spoke.
        release: String,
        /// The oldest release the server still serves.
        oldest_supported: Option<String>,
        /// The server's current release.
        current_release: Option<String>,
    },
    /// A write against a revision that is no longer the document's current one (or a create
    /// over a document that exists).
    #[error("revision conflict at {path} (current revision: {})", .current_rev.as_deref().unwrap_or("unknown"))]
    Conflict {
        /// The request path.
        path: String,
        /// The document's current revision, when the server told it.
        current_rev: Option<String>,
    },
    /// The document does not fit its version's schema.
    #[error("invalid {type_name} document: {}", summary(.errors))]
    Invalid {
        /// The document's type.
        type_name: String,
        /// Each violation, with its pointer into the document the client sent. When the
        /// client translates for an older server, its own version is checked first, so these
        /// point into the application's document; only a body that passes that check and is
        /// still refused by the server carries pointers into the server's version.
        errors: Vec<FieldError>,
    },
    /// No such document (or one the caller may not read).
    #[error("not found: {path}")]
    NotFound {
        /// The request path.
        path: String,
    },
    /// No token, or one the server does not know.
    #[error("unauthenticated: {}", .problem)]
    Unauthenticated {
        /// The server's problem document.
        problem: Box<Problem>,
    },
    /// The token's role, or the document's access policy, refuses the request.
    #[error("forbidden: {}", .problem)]
    Forbidden {
        /// The server's problem document.
        problem: Box<Problem>,
    },
    /// Any other error status.
    #[error("HTTP {status}: {problem}")]
    Http {
        /// The response status.
        status: u16,
        /// The server's problem document.
        problem: Box<Problem>,
    },
    /// The request never got an answer (connection refused, timeout, TLS…).
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server is older than the client for `type_name` and none of the versions it serves
    /// is known to the client's schema set, so neither side can translate.
    #[error("no common version of {type_name}: the client speaks {client}, the server serves {server:?}")]
    NoCommonVersion {
        /// The type.
        type_name: String,
        /// The client's version of it.
        client: u32,
        /// The versions the server serves.
        server: Vec<u32>,
    },
    /// The client's release has no version of the type asked for.
    #[error("type {type_name} is not in release {release} of the client's schema set")]
    UnknownType {
        /// The type.
        type_name: String,
        /// The client's release.
        release: String,
    },
    /// Translating between the client's version and the server's failed on the client side.
    #[error("translating {type_name} from version {from} to {to}: {source}")]
    Translate {
        /// The type.
        type_name: String,
        /// The version translated from.
        from: u32,
        /// The version translated to.
        to: u32,
        /// What the lens engine said.
        #[source]
        source: Box<LensError>,
    },
    /// The client's schema set could not give a plan or schema it needed.
    #[error("schema set: {0}")]
    Schema(#[from] SchemaError),
    /// A JSON Patch that could not be applied on the client side (the read–modify–write path
    /// taken when a patch does not translate to the server's version).
    #[error("patch operation {index} ({pointer}): {reason}")]
    Patch {
        /// Index of the failing operation in the patch.
        index: usize,
        /// The operation's path.
        pointer: String,
        /// Why it failed.
        reason: String,
    },
    /// The server answered something that does not follow the mutatis HTTP contract.
    #[error("unexpected response from {path}: {reason}")]
    Protocol {
        /// The request path.
        path: String,
        /// What was wrong with the response.
        reason: String,
    },
}

impl Error {
    /// Map an error response to a typed error by its problem type (and, for a server that does
    /// not say, by status).
    pub fn from_problem(path: &str, type_name: Option<&str>, problem: Problem) -> Error {
        use problem_type as p;
        let path = problem.instance.clone().unwrap_or_else(|| path.to_owned());
        match problem.type_uri.as_str() {
            p::UNSUPPORTED_RELEASE => Error::Unsupported {
                release: problem
                    .extension_str("release")
                    .unwrap_or_default()
                    .to_owned(),
                oldest_supported: problem.extension_str("oldestSupported").map(str::to_owned),
                current_release: problem.extension_str("currentRelease").map(str::to_owned),
            },
            p::REV_CONFLICT => Error::Conflict {
                path,
                current_rev: problem.extension_str("currentRev").map(str::to_owned),
            },
            p::INVALID_DOCUMENT => Error::Invalid {
                type_name: type_name.unwrap_or_default().to_owned(),
                errors: field_errors(problem.extensions.get("errors")),
            },
            p::NOT_FOUND => Error::NotFound { path },
            p::UNAUTHENTICATED => Error::Unauthenticated {
                problem: Box::new(problem),
            },
            p::FORBIDDEN | p::ACCESS_DENIED => Error::Forbidden {
                problem: Box::new(problem),
            },
            // A create over an existing document, or a server that does not type its problems.
            _ if problem.status == 409 || problem.status == 412 => Error::Conflict {
                path,
                current_rev: problem.extension_str("currentRev").map(str::to_owned),
            },
            _ if problem.status == 401 => Error::Unauthenticated {
                problem: Box::new(problem),
            },
            _ if problem.status == 403 => Error::Forbidden {
                problem: Box::new(problem),
            },
            _ => Error::Http {
                status: problem.status,
                problem: Box::new(problem),
            },
        }
    }

    /// The server's problem type URI, for an error that came from a problem document.
    pub fn problem_type(&self) -> Option<&str> {
        match self {
            Error::Http { problem, .. }
            | Error::Unauthenticated { problem }
            | Error::Forbidden { problem } => Some(&problem.type_uri),
            _ => None,
        }
    }
}

/// A patch the client applied itself ([`mutatis_lens::apply_patch`]) and that failed: the
/// failing operation's index and pointer, and why.
impl From<PatchError> for Error {
    fn from(e: PatchError) -> Self {
        Error::Patch {
            index: e.index(),
            pointer: e.pointer().to_owned(),
            reason: e.reason().to_owned(),
        }
    }
}

fn field_errors(errors: Option<&Value>) -> Vec<FieldError> {
    errors
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|e| FieldError {
                    pointer: e
                        .get("pointer")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    message: e
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn summary(errors: &[FieldError]) -> String {
    match errors.first() {
        None => "no details".to_owned(),
        Some(first) => {
            let at = if first.pointer.is_empty() {
                "(root)"
            } else {
                &first.pointer
            };
            let more = match errors.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            format!("{at}: {}{more}", first.message)
        }
    }
}

/// What can go wrong while building a [`crate::Client`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The server URL does not parse, or is not http(s).
    #[error("invalid server URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// Neither `schema_set` nor `manifest_file` was given.
    #[error("the client needs its schema set: call schema_set() or manifest_file()")]
    MissingSchemaSet,
    /// No `release` was given.
    #[error("the client needs its release: call release()")]
    MissingRelease,
    /// The release is not in the client's own schema set.
    #[error("release {release} is not in the client's schema set (known: {known})")]
    UnknownRelease {
        /// The release given.
        release: String,
        /// The releases the set has.
        known: String,
    },
    /// The manifest file could not be read.
    #[error("reading manifest {path}: {source}")]
    ManifestRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The manifest file is not JSON.
    #[error("manifest {path} is not JSON: {source}")]
    ManifestJson {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The manifest is JSON but not a schema set.
    #[error("manifest {path}: {source}")]
    ManifestSchema {
        /// The file.
        path: PathBuf,
        /// What the schema loader said.
        #[source]
        source: SchemaError,
    },
    /// The token cannot be sent in an HTTP header.
    #[error("the token contains characters an HTTP header cannot carry")]
    InvalidToken,
    /// The release name cannot be sent in an HTTP header.
    #[error("release `{0}` contains characters an HTTP header cannot carry")]
    InvalidRelease(String),
    /// The HTTP client could not be built (TLS backend initialisation…).
    #[error("building the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problem(v: Value, status: u16) -> Problem {
        Problem::from_body(status, v.to_string().as_bytes())
    }

    #[test]
    fn unsupported_release_carries_the_oldest_supported() {
        let p = problem(
            json!({"type": problem_type::UNSUPPORTED_RELEASE, "status": 400, "title": "t",
                   "release": "2", "oldestSupported": "3", "currentRelease": "5"}),
            400,
        );
        let e = Error::from_problem("/docs/Student/a", Some("Student"), p);
        assert!(
            matches!(e, Error::Unsupported { release, oldest_supported: Some(o), current_release: Some(c) }
            if release == "2" && o == "3" && c == "5")
        );
    }

    #[test]
    fn invalid_document_lists_pointers() {
        let p = problem(
            json!({"type": problem_type::INVALID_DOCUMENT, "status": 422,
                   "errors": [{"pointer": "/age", "message": "not an integer"}]}),
            422,
        );
        let e = Error::from_problem("/docs/Student", Some("Student"), p);
        let Error::Invalid { type_name, errors } = e else {
            panic!("not Invalid")
        };
        assert_eq!(type_name, "Student");
        assert_eq!(
            errors,
            vec![FieldError {
                pointer: "/age".into(),
                message: "not an integer".into()
            }]
        );
    }

    #[test]
    fn conflicts_by_type_and_by_status() {
        let p = problem(
            json!({"type": problem_type::REV_CONFLICT, "currentRev": "2-ab"}),
            412,
        );
        assert!(matches!(Error::from_problem("/x", None, p),
            Error::Conflict { current_rev: Some(r), .. } if r == "2-ab"));
        let p = problem(json!({"type": "urn:mutatis:problem:exists"}), 409);
        assert!(matches!(
            Error::from_problem("/x", None, p),
            Error::Conflict {
                current_rev: None,
                ..
            }
        ));
    }

    #[test]
    fn patch_failures_name_the_operation_and_pointer() {
        let doc = json!({"a": 1});
        let e: Error = mutatis_lens::apply_patch(
            &doc,
            &json!([{"op": "replace", "path": "/a", "value": 5},
                    {"op": "test", "path": "/a", "value": 1}]),
        )
        .unwrap_err()
        .into();
        assert!(matches!(e, Error::Patch { index: 1, ref pointer, .. } if pointer == "/a"));
        assert!(
            e.to_string()
                .starts_with("patch operation 1 (/a): test failed"),
            "{e}"
        );
    }

    #[test]
    fn a_non_problem_body_is_kept_as_detail() {
        let p = Problem::from_body(502, b"<html>bad gateway</html>");
        assert_eq!(p.type_uri, "about:blank");
        assert_eq!(p.detail.as_deref(), Some("<html>bad gateway</html>"));
        assert!(matches!(
            Error::from_problem("/meta", None, p),
            Error::Http { status: 502, .. }
        ));
    }
}
