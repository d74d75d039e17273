//! `floor_server`: the floor that `http_load` holds `mutatis serve` against.
//!
//! ```text
//! floor_server DIR --data PATH [--listen ADDR] [--blocking-reads]
//! ```
//!
//! It serves `GET` and `PUT /docs/{type}/{id}` over the same [`Store`] on redb that `mutatis
//! serve` uses, with the same JSON parsing and serialisation of the body, and nothing else:
//! no release negotiation, no translation (every read and write is in the type's storage
//! version, where [`Store::get`] returns the stored body as it is), no authentication, no
//! access policy, no metrics, no middleware. The difference between `mutatis serve` and this
//! server is therefore the price of what `mutatis serve` adds on top of the store. Like
//! `mutatis serve` on redb, it reads on the async worker (`Backend::READS_ARE_LOCAL`) and
//! writes on the blocking pool; `--blocking-reads` sends reads to the pool too.
//!
//! Once listening it prints `floor serving at http://ADDR` on stdout (so `--listen
//! 127.0.0.1:0` can be used), and it runs until interrupted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use mutatis_schema::SchemaSet;
use mutatis_store::{Backend, RedbBackend, RedbOptions, Rev, Store, StoreError};
use serde_json::Value;

/// Why the floor server could not start or stopped.
#[derive(Debug, thiserror::Error)]
enum FloorError {
    /// The command line is wrong.
    #[error("{0}\nusage: floor_server DIR --data PATH [--listen ADDR] [--blocking-reads]")]
    Usage(String),
    /// The schema set could not be loaded.
    #[error("schema set {dir}: {source}")]
    Schema {
        /// The folder given.
        dir: PathBuf,
        /// What the loader said.
        source: mutatis_schema::SchemaError,
    },
    /// The store could not be opened or its storage versions read.
    #[error("store {path}: {source}")]
    Store {
        /// The redb file given.
        path: PathBuf,
        /// What the store said.
        source: StoreError,
    },
    /// Socket or runtime failure.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The parsed command line.
struct Options {
    dir: PathBuf,
    data: PathBuf,
    listen: SocketAddr,
    inline_reads: bool,
}

fn options() -> Result<Options, FloorError> {
    let mut dir = None;
    let mut data = None;
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 7879));
    let mut inline_reads = RedbBackend::READS_ARE_LOCAL;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| FloorError::Usage(format!("{name} needs a value")))
        };
        match a.as_str() {
            "--data" => data = Some(PathBuf::from(value("--data")?)),
            "--blocking-reads" => inline_reads = false,
            "--listen" => {
                let v = value("--listen")?;
                listen = v
                    .parse()
                    .map_err(|e| FloorError::Usage(format!("--listen {v}: {e}")))?;
            }
            other if other.starts_with("--") => {
                return Err(FloorError::Usage(format!("unknown option `{other}`")))
            }
            other if dir.is_none() => dir = Some(PathBuf::from(other)),
            other => return Err(FloorError::Usage(format!("unexpected argument `{other}`"))),
        }
    }
    Ok(Options {
        dir: dir.ok_or_else(|| FloorError::Usage("name the schema-set folder".into()))?,
        data: data.ok_or_else(|| FloorError::Usage("--data PATH is required".into()))?,
        listen,
        inline_reads,
    })
}

/// What every handler shares.
struct Floor {
    store: Store<RedbBackend>,
    /// Type name → the version its documents are stored in, read once at start so a request
    /// costs a hash lookup and no schema-set walk.
    storage: HashMap<String, u32>,
    /// Read on the async worker instead of the blocking pool (as `mutatis serve` does on
    /// redb; `--blocking-reads` turns it off to price the `spawn_blocking` hand-off of a GET).
    /// A redb read never waits on a network; on PostgreSQL it would stall the worker.
    inline_reads: bool,
}

type Shared = Arc<Floor>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floor_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), FloorError> {
    let o = options()?;
    let floor = open(&o.dir, &o.data, o.inline_reads)?;
    // The same runtime shape as `mutatis serve`: one worker per core the process may run
    // on, store calls on the blocking pool.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| FloorError::Io {
            what: "start the tokio runtime".into(),
            source,
        })?;
    runtime.block_on(serve(floor, o.listen))
}

/// The schema set in `dir` over the redb store at `data`.
fn open(
    dir: &std::path::Path,
    data: &std::path::Path,
    inline_reads: bool,
) -> Result<Shared, FloorError> {
    let set = SchemaSet::load(dir).map_err(|source| FloorError::Schema {
        dir: dir.to_owned(),
        source,
    })?;
    let store_err = |source| FloorError::Store {
        path: data.to_owned(),
        source,
    };
    let mut storage = HashMap::new();
    for t in set.types() {
        let version = set
            .storage(t.name())
            .map_err(|e| store_err(StoreError::Schema(e)))?
            .version;
        storage.insert(t.name().to_owned(), version);
    }
    let backend = RedbBackend::open(data, RedbOptions::default()).map_err(store_err)?;
    Ok(Arc::new(Floor {
        store: Store::new(backend, Arc::new(set)),
        storage,
        inline_reads,
    }))
}

/// The floor's routes: GET and PUT of one document.
fn app(floor: Shared) -> Router {
    Router::new()
        .route("/docs/{type}/{id}", get(get_doc).put(put_doc))
        .with_state(floor)
}

async fn serve(floor: Shared, listen: SocketAddr) -> Result<(), FloorError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| FloorError::Io {
            what: format!("listen on {listen}"),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| FloorError::Io {
        what: "read the bound address".into(),
        source,
    })?;
    // `http_load` reads this line to find the port; stdout is a pipe there, so it is
    // flushed by `println!`'s line only if we say so.
    println!("floor serving at http://{bound}");
    use std::io::Write as _;
    std::io::stdout().flush().map_err(|source| FloorError::Io {
        what: "write to stdout".into(),
        source,
    })?;
    axum::serve(listener, app(floor))
        .with_graceful_shutdown(async {
            // An error installing the handler only means we cannot stop gracefully.
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|source| FloorError::Io {
            what: "serve".into(),
            source,
        })
}

/// A refused request: the floor answers errors in plain text (it has no problem+json; its
/// errors only ever show up as an error count in `http_load`).
struct Reject(StatusCode, String);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

impl From<StoreError> for Reject {
    fn from(e: StoreError) -> Reject {
        let status = match e {
            StoreError::Conflict { .. } => StatusCode::PRECONDITION_FAILED,
            StoreError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            StoreError::InvalidId { .. } | StoreError::InvalidRev { .. } => StatusCode::BAD_REQUEST,
            StoreError::Schema(_) | StoreError::UnknownVersion { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        Reject(status, e.to_string())
    }
}

fn internal(e: impl std::fmt::Display) -> Reject {
    Reject(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn json_response(status: StatusCode, rev: &Rev, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(tag) = HeaderValue::from_str(&format!("\"{rev}\"")) {
        headers.insert(header::ETAG, tag);
    }
    response
}

fn storage_version(floor: &Floor, type_name: &str) -> Result<u32, Reject> {
    floor
        .storage
        .get(type_name)
        .copied()
        .ok_or_else(|| Reject(StatusCode::NOT_FOUND, format!("unknown type {type_name}")))
}

/// `GET /docs/{type}/{id}`: the stored body as it is.
async fn get_doc(
    State(floor): State<Shared>,
    Path((type_name, id)): Path<(String, String)>,
) -> Result<Response, Reject> {
    let version = storage_version(&floor, &type_name)?;
    let read = if floor.inline_reads {
        floor.store.get(&type_name, &id, version)
    } else {
        tokio::task::spawn_blocking(move || floor.store.get(&type_name, &id, version))
            .await
            .map_err(internal)?
    };
    let doc = read?.ok_or_else(|| Reject(StatusCode::NOT_FOUND, "not found".into()))?;
    let body = serde_json::to_vec(&doc.body).map_err(internal)?;
    Ok(json_response(StatusCode::OK, &doc.rev, body))
}

/// The rev of an `If-Match` header, quotes (and a weak `W/` prefix) optional.
fn if_match(headers: &HeaderMap) -> Result<Option<Rev>, Reject> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| Reject(StatusCode::BAD_REQUEST, "If-Match is not ASCII".into()))?;
    let text = text.trim().trim_start_matches("W/").trim_matches('"');
    Ok(Some(Rev::from_str(text)?))
}

/// `PUT /docs/{type}/{id}`: write the body in the storage version; `If-Match` replaces, its
/// absence creates.
async fn put_doc(
    State(floor): State<Shared>,
    Path((type_name, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Reject> {
    let version = storage_version(&floor, &type_name)?;
    let expected = if_match(&headers)?;
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|e| Reject(StatusCode::BAD_REQUEST, e.to_string()))?;
    let status = if expected.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let (id, written) = tokio::task::spawn_blocking(move || {
        let written = floor
            .store
            .put(&type_name, &id, version, &doc, expected.as_ref());
        (id, written)
    })
    .await
    .map_err(internal)?;
    let written = written?;
    let reply = serde_json::json!({"id": id, "rev": written.rev.to_string()});
    let body = serde_json::to_vec(&reply).map_err(internal)?;
    Ok(json_response(status, &written.rev, body))
}

#[cfg(test)]
mod tests {
    //! The floor answers the requests `http_load` sends the way `mutatis serve` does (ETag,
    //! If-Match, create vs replace, schema validation), so both servers do the same work.

    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    /// A floor on a temporary store, served on a background runtime.
    struct Running {
        addr: SocketAddr,
        _runtime: tokio::runtime::Runtime,
        _dir: tempfile::TempDir,
    }

    fn start() -> Running {
        let dir = tempfile::tempdir().unwrap();
        let set =
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/students"));
        let floor = open(set, &dir.path().join("floor.redb"), false).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move { axum::serve(listener, app(floor)).await });
        Running {
            addr,
            _runtime: runtime,
            _dir: dir,
        }
    }

    struct Answer {
        status: u16,
        etag: Option<String>,
        body: String,
    }

    fn request(
        floor: &Running,
        method: &str,
        path: &str,
        if_match: Option<&str>,
        body: &str,
    ) -> Answer {
        let mut s = TcpStream::connect(floor.addr).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            floor.addr,
            body.len()
        );
        if let Some(rev) = if_match {
            head.push_str(&format!("If-Match: \"{rev}\"\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body.as_bytes()).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let etag = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("etag: ")
                    .map(str::to_owned)
            })
            .map(|v| v.trim_matches('"').to_owned());
        Answer {
            status,
            etag,
            body: body.to_owned(),
        }
    }

    #[test]
    fn create_read_replace_with_revs() {
        let running = start();
        let floor = &running;
        let path = "/docs/Student/s1";
        let doc = r#"{"firstName":"Ada","lastName":"Lovelace","yearOfBirth":1815}"#;

        assert_eq!(request(floor, "GET", path, None, "").status, 404);
        let created = request(floor, "PUT", path, None, doc);
        assert_eq!(created.status, 201, "{}", created.body);
        let rev1 = created.etag.unwrap();
        assert!(created.body.contains(&rev1));

        let read = request(floor, "GET", path, None, "");
        assert_eq!(read.status, 200);
        assert_eq!(read.etag.as_deref(), Some(rev1.as_str()));
        let body: serde_json::Value = serde_json::from_str(&read.body).unwrap();
        assert_eq!(
            body,
            serde_json::from_str::<serde_json::Value>(doc).unwrap()
        );

        // Creating over it again, or replacing with a stale rev, is refused.
        assert_eq!(request(floor, "PUT", path, None, doc).status, 412);
        let changed = r#"{"firstName":"Ada","lastName":"Lovelace","yearOfBirth":1816}"#;
        let replaced = request(floor, "PUT", path, Some(&rev1), changed);
        assert_eq!(replaced.status, 200, "{}", replaced.body);
        let rev2 = replaced.etag.unwrap();
        assert_ne!(rev1, rev2);
        assert_eq!(request(floor, "PUT", path, Some(&rev1), doc).status, 412);

        // The body is validated against the stored version's schema, as the store does for
        // `mutatis serve`.
        let v3 = r#"{"fistAndLastName":"Ada Lovelace","age":30}"#;
        assert_eq!(request(floor, "PUT", path, Some(&rev2), v3).status, 422);
        assert_eq!(request(floor, "PUT", path, Some(&rev2), "{").status, 400);
        assert_eq!(request(floor, "GET", "/docs/Nope/s1", None, "").status, 404);
    }
}
