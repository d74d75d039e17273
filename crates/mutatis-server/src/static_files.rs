//! A folder of static files under a path of the server (`mutatis serve --static DIR
//! --static-path /app`): a browser app served by the node it talks to, same origin, so it
//! needs no CORS.
//!
//! The files are public (no token: a browser loads a page before it has one) and read-only
//! (`GET`/`HEAD`). tower-http's `ServeDir` does the serving (content types from the file
//! name, `index.html` for a folder, ranges, conditional requests, the file streamed in
//! 64 KiB chunks so a large file never sits in memory). This module maps the path onto the
//! folder and makes leaving the folder impossible: a `..`, a root or drive component, in
//! the path as sent or once percent-decoded (`%2e%2e`, `%2f`), is a 404 before the file
//! system is asked; and a file whose real path (symbolic links resolved) lies outside the
//! folder is a 404 too. Requests pass through the edge like every other (limits, timeout,
//! metrics, problem+json for a 404 or 405).

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{HeaderValue, LOCATION};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::services::ServeDir;

use crate::problem::Problem;

/// The first path segments of the API's own routes: a static path may not start with one,
/// or the two would overlap (`couch` is the CouchDB-compatible endpoint's, `ui` the
/// dashboard's, [`crate::dashboard`]).
pub const RESERVED_SEGMENTS: [&str; 12] = [
    "health",
    "meta",
    "schema",
    "openapi.json",
    "compatibility",
    "metrics",
    "docs",
    "changes",
    "replication",
    "admin",
    "couch",
    "ui",
];

/// The default of `--static-path`.
pub const DEFAULT_STATIC_PATH: &str = "/app";

/// A folder served under a path ([`crate::ServerConfig::static_files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticFiles {
    /// The folder, canonical (symbolic links resolved), so that every served file can be
    /// checked to lie inside it.
    pub dir: PathBuf,
    /// The path it is served under: `/` and segments, no trailing slash (`/app`).
    pub path: String,
}

/// Why a static-files setting was refused.
#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    /// The folder cannot be read.
    #[error("cannot serve {dir}: {source}")]
    Dir {
        /// As given.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The folder is a file.
    #[error("cannot serve {0}: not a folder")]
    NotADir(PathBuf),
    /// The path is not one the router can hold.
    #[error("the static path {path:?} {why}")]
    BadPath {
        /// As given.
        path: String,
        /// What is wrong with it.
        why: String,
    },
}

impl StaticFiles {
    /// `dir` served under `path` (`/app`; a trailing slash is dropped). The path must be
    /// `/`-separated segments of letters, digits, `-`, `_` and `.` (not `.` or `..`) whose
    /// first is not one of the API's ([`RESERVED_SEGMENTS`]); the root itself is refused,
    /// since every API path would shadow part of it.
    pub fn new(dir: &Path, path: &str) -> Result<StaticFiles, StaticError> {
        let canonical = std::fs::canonicalize(dir).map_err(|source| StaticError::Dir {
            dir: dir.to_path_buf(),
            source,
        })?;
        if !canonical.is_dir() {
            return Err(StaticError::NotADir(dir.to_path_buf()));
        }
        let bad = |why: &str| StaticError::BadPath {
            path: path.to_owned(),
            why: why.to_owned(),
        };
        let trimmed = path.trim_end_matches('/');
        let Some(rest) = trimmed.strip_prefix('/') else {
            return Err(bad("does not start with /"));
        };
        if rest.is_empty() {
            return Err(bad(
                "is the root, where the API lives; choose a path such as /app",
            ));
        }
        for seg in rest.split('/') {
            if seg.is_empty() || seg == "." || seg == ".." {
                return Err(bad("has an empty, `.` or `..` segment"));
            }
            if !seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(bad("may hold only letters, digits, -, _ and ."));
            }
        }
        let first = rest.split('/').next().unwrap_or_default();
        if RESERVED_SEGMENTS.contains(&first) {
            return Err(bad(&format!(
                "overlaps the API's /{first} routes; choose another, such as /app"
            )));
        }
        Ok(StaticFiles {
            dir: canonical,
            path: trimmed.to_owned(),
        })
    }
}

/// `router` with the files of `files` under their path (public routes), or as it is.
pub fn mount<S>(router: Router<S>, files: Option<&StaticFiles>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let Some(files) = files else { return router };
    let prefix = files.path.clone();
    let at_root = files.clone();
    let below = files.clone();
    let serve_below = move |req: Request| serve(below.clone(), req);
    router
        // `/app` itself: the page's relative links (`app.js`) only resolve under `/app/`.
        .route(
            &prefix,
            get(move |req: Request| async move { to_folder(&at_root, req.uri()) }),
        )
        .route(&format!("{prefix}/"), get(serve_below.clone()))
        .route(&format!("{prefix}/{{*file}}"), get(serve_below))
}

/// 308 from the bare path to the folder (`/app` → `/app/`), keeping the query.
fn to_folder(files: &StaticFiles, uri: &Uri) -> Response {
    let location = match uri.query() {
        Some(q) => format!("{}/?{q}", files.path),
        None => format!("{}/", files.path),
    };
    redirect(&location)
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::PERMANENT_REDIRECT, [(LOCATION, v)]).into_response(),
        Err(_) => not_found(),
    }
}

fn not_found() -> Response {
    Problem::new(404, "not-found", "Not found", "no such file".to_owned()).into_response()
}

/// One file (or a folder's `index.html`) of `files` for `req`, whose path starts with
/// `files.path` + `/` (the routes say so).
async fn serve(files: StaticFiles, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let path = path.as_str();
    let Some(rest) = path.strip_prefix(files.path.as_str()) else {
        return not_found();
    };
    let Some(inside) = inside_folder(&files.dir, rest) else {
        tracing::debug!(path, "a static path that leaves the folder, refused");
        return not_found();
    };
    // A symbolic link inside the folder may point out of it: the real path must stay in.
    match tokio::fs::canonicalize(&inside).await {
        Ok(real) if !real.starts_with(&files.dir) => {
            tracing::debug!(path, "a static file outside the folder (a link), refused");
            return not_found();
        }
        // Missing files are ServeDir's to answer (404).
        _ => {}
    }
    // ServeDir sees the path below the prefix, as if the folder were the root.
    let below = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    let Ok(uri) = below.parse::<Uri>() else {
        return not_found();
    };
    let (mut parts, body) = req.into_parts();
    parts.uri = uri;
    let req = Request::from_parts(parts, body);
    let mut dir = ServeDir::new(&files.dir).append_index_html_on_directories(true);
    match dir.try_call(req).await {
        // ServeDir's own 404 has no body: the edge would call it `no-route`.
        Ok(resp) if resp.status() == StatusCode::NOT_FOUND => not_found(),
        Ok(resp) => {
            let mut resp = resp.map(Body::new);
            // A folder asked for without its slash: ServeDir redirects to the path it saw,
            // which lacks the prefix. (Only a redirect with a Location: a 304 Not Modified
            // is a 3xx too, and must stay one, or a browser's revalidation fails.)
            if let Some(location) = resp.headers().get(LOCATION) {
                let fixed = location
                    .to_str()
                    .ok()
                    .filter(|l| l.starts_with('/'))
                    .map(|l| format!("{}{l}", files.path));
                match fixed.and_then(|l| HeaderValue::from_str(&l).ok()) {
                    Some(l) => {
                        resp.headers_mut().insert(LOCATION, l);
                    }
                    None => return not_found(),
                }
            }
            // The files are the app's, not uploads, but a browser must still not guess
            // another type than the one named.
            resp.headers_mut().insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            resp
        }
        // A name the file system refuses (a NUL byte…) names no file.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => not_found(),
        Err(e) => {
            tracing::warn!(path, "reading a static file failed: {e}");
            Problem::internal().into_response()
        }
    }
}

/// The file `rest` (a request path below the prefix, percent-encoded) names inside `dir`, or
/// `None` when it would leave it: any component that is not a plain name (`..`, a root, a
/// drive prefix), before or after percent-decoding.
fn inside_folder(dir: &Path, rest: &str) -> Option<PathBuf> {
    let decoded = percent_decode(rest)?;
    let mut out = dir.to_path_buf();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => return None,
            s if s.contains('\\') || s.contains('\0') => return None,
            s => {
                let mut comps = Path::new(s).components();
                match (comps.next(), comps.next()) {
                    (Some(Component::Normal(n)), None) => out.push(n),
                    _ => return None,
                }
            }
        }
    }
    Some(out)
}

/// `%XX` decoding of a path; `None` for a malformed escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_folder_are_refused() {
        let dir = Path::new("/srv/app");
        assert_eq!(
            inside_folder(dir, "/index.html"),
            Some(PathBuf::from("/srv/app/index.html"))
        );
        assert_eq!(
            inside_folder(dir, "/a/./b.js"),
            Some(PathBuf::from("/srv/app/a/b.js"))
        );
        for bad in [
            "/../etc/passwd",
            "/a/../../x",
            "/%2e%2e/x",
            "/%2E%2E%2Fx",
            "/a%2f..%2f..%2fx",
            "/..%5cx",
            "/%00",
            "/%zz",
            "/%c3",
        ] {
            assert_eq!(inside_folder(dir, bad), None, "{bad}");
        }
    }

    #[test]
    fn static_paths_are_checked() {
        let dir = std::env::temp_dir();
        assert_eq!(StaticFiles::new(&dir, "/app/").unwrap().path, "/app");
        assert_eq!(
            StaticFiles::new(&dir, "/a/b-c_d.e").unwrap().path,
            "/a/b-c_d.e"
        );
        for bad in [
            "/", "", "app", "/docs", "/couch/x", "/ui", "/ui/app", "/a//b", "/a/..", "/a b",
        ] {
            assert!(
                matches!(
                    StaticFiles::new(&dir, bad),
                    Err(StaticError::BadPath { .. })
                ),
                "{bad}"
            );
        }
        assert!(StaticFiles::new(Path::new("/no/such/folder"), "/app").is_err());
    }
}
