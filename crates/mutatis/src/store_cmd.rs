//! The commands over a document store, `import` and `export`, and what every command on a
//! store shares (`migrate`, `status`, `token`, `serve`): opening it and claiming it for the
//! schema set. Each opens the store named by `--data PATH` (embedded redb) or `--postgres
//! URL`, then calls `mutatis-store`; or, with `--server URL`, goes through the running node
//! that holds it ([`crate::remote`]).
//!
//! Every store is opened through [`with_store!`]: commands that only read never create one
//! ([`Access::Read`]), and the schema set's name is recorded and checked in one place
//! ([`claim`]).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use mutatis_schema::SchemaSet;
use mutatis_server::app::{claim_schema_set, Claimed, SetClaim};
use mutatis_store::{
    Backend, ImportDoc, PostgresBackend, RedbBackend, RedbOptions, Rev, Store, StoreError,
};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::cli::{Export, Import};
use crate::error::CliError;
use crate::io::{Input, Output};
use crate::remote::Remote;

/// Documents per import transaction: big enough to amortise the commit, small enough that a
/// concurrent writer never waits long.
const IMPORT_BATCH: usize = 1_000;
/// Documents per export page (the most `GET /docs/T` answers at once, too).
const EXPORT_PAGE: usize = 1_000;

pub(crate) fn store_err(e: StoreError) -> CliError {
    CliError::Store(Box::new(e))
}

/// What a command does with the store it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// It writes (`import`, `migrate`, `token`): a store is created where there is none, and
    /// the schema set's name is recorded.
    Write,
    /// It only reads (`export`, `status`): a missing store is an error, and nothing is ever
    /// written.
    Read,
}

/// Run `f` on the store `StoreArgs` name, whichever backend it is, opened for `Access` and
/// claimed for the schema set ([`claim`]).
macro_rules! with_store {
    ($args:expr, $set:expr, $access:expr, |$store:ident| $body:expr) => {{
        let args: &$crate::cli::StoreArgs = $args;
        let access: $crate::store_cmd::Access = $access;
        let set: std::sync::Arc<mutatis_schema::SchemaSet> = $set;
        match (&args.data, args.postgres.url()?) {
            (Some(path), None) => {
                let $store =
                    mutatis_store::Store::new($crate::store_cmd::open_redb(path, access)?, set);
                $crate::store_cmd::claim(&$store, access, args.force_set)?;
                $body
            }
            (None, Some(url)) => {
                let backend = $crate::store_cmd::open_postgres(url, &args.postgres.pg_schema, access)?;
                let $store = mutatis_store::Store::new(backend, set);
                $crate::store_cmd::claim(&$store, access, args.force_set)?;
                $body
            }
            _ => Err($crate::error::CliError::Usage(
                "name the store with --data PATH or --postgres URL (export, import, migrate, status and releases also take --server URL)"
                    .into(),
            )),
        }
    }};
}
pub(crate) use with_store;

/// The redb store at `path`; for [`Access::Read`], only one that exists.
pub(crate) fn open_redb(path: &Path, access: Access) -> Result<RedbBackend, CliError> {
    let options = RedbOptions {
        create: access == Access::Write,
        ..RedbOptions::default()
    };
    RedbBackend::open(path, options).map_err(|e| match e {
        // redb is one process's: say how to reach a store a server holds.
        StoreError::Backend {
            backend: "redb",
            operation: "open",
            ref reason,
        } => CliError::StoreRefused(format!(
            "{reason}; if `mutatis serve` holds it, go through the server instead: --server URL (with an admin token in MUTATIS_TOKEN)"
        )),
        e => store_err(e),
    })
}

/// The PostgreSQL store in `schema`; for [`Access::Read`], only one that exists.
pub(crate) fn open_postgres(
    url: &str,
    schema: &str,
    access: Access,
) -> Result<PostgresBackend, CliError> {
    match access {
        Access::Write => PostgresBackend::connect(url, schema),
        Access::Read => PostgresBackend::open(url, schema),
    }
    .map_err(store_err)
}

/// Check the store against the schema set it is opened with, and record the set's name when
/// the command writes (`mutatis_server::app::claim_schema_set`, which `mutatis serve` uses
/// too). `force` (`--force-set`) adopts a store recorded under another name, or reads it.
pub(crate) fn claim<B: Backend>(
    store: &Store<B>,
    access: Access,
    force: bool,
) -> Result<(), CliError> {
    let how = match (access, force) {
        (Access::Write, false) => SetClaim::Write,
        (Access::Write, true) => SetClaim::Adopt,
        (Access::Read, false) => SetClaim::Read,
        (Access::Read, true) => SetClaim::ReadAnyway,
    };
    match claim_schema_set(store, how) {
        Ok(Claimed::Other(old)) if access == Access::Write => {
            eprintln!(
                "note: the store was kept under schema set {old:?}; it is {:?}'s from now on (--force-set)",
                store.schema_set().name()
            );
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(mutatis_server::ServerError::Store(e)) => Err(store_err(e)),
        Err(e @ mutatis_server::ServerError::ForeignSchemaSet { .. }) => {
            Err(CliError::StoreRefused(format!(
                "{e}; check DIR and the store, or pass --force-set to use it anyway"
            )))
        }
        Err(e) => Err(CliError::Usage(e.to_string())),
    }
}

pub(crate) fn load(
    dir: &Path,
    params: &crate::cli::ParamArgs,
) -> Result<(Arc<SchemaSet>, mutatis_lens::Params), CliError> {
    let set = SchemaSet::load(dir).map_err(CliError::InvalidSet)?;
    let params = crate::params::build(params.reference_date.as_deref(), &params.params)?;
    Ok((Arc::new(set), params))
}

/// The version documents are read or written in when none is given: the one the current
/// release speaks, or else the type's highest.
fn default_version(set: &SchemaSet, type_name: &str, given: Option<u32>) -> Result<u32, CliError> {
    if let Some(v) = given {
        return Ok(v);
    }
    if let Some(v) = set.current().version_of(type_name) {
        return Ok(v);
    }
    let t = set.type_def(type_name).map_err(CliError::Schema)?;
    t.highest()
        .map(|v| v.version())
        .ok_or_else(|| CliError::Usage(format!("type {type_name} has no versions")))
}

// ---------------------------------------------------------------------------------- import

/// `mutatis import DIR (--data PATH | --postgres URL | --server URL) --type T [--version V]
/// [--id-field F] [FILE|-]`.
pub fn import(args: &Import) -> Result<ExitCode, CliError> {
    let (set, params) = load(&args.dir, &args.params)?;
    let version = default_version(&set, &args.r#type, args.version)?;
    if let Some(url) = &args.target.server {
        let remote = Remote::from_args(url, &args.target)?;
        // The type and version are checked here too, so a typo fails before any reading.
        set.versions(&args.r#type).map_err(CliError::Schema)?;
        remote.check_set(set.name(), args.target.store.force_set)?;
        return remote_import(&remote, args, version);
    }
    with_store!(&args.target.store, set, Access::Write, |store| {
        let store = store.with_params(params);
        run_import(&store, args, version)
    })
}

/// Read the input's lines as documents (`--id-field`) or envelopes, calling `take` with
/// each and its line.
fn read_docs(
    args: &Import,
    mut take: impl FnMut(ImportDoc, usize) -> Result<(), CliError>,
) -> Result<(String, usize), CliError> {
    let input = Input::open(args.input.as_deref())?;
    let name = input.name.clone();
    let bad = |line: usize, message: String| CliError::Record {
        input: name.clone(),
        line,
        message,
        translation: false,
    };
    let mut count = 0usize;
    input.for_each_line(|bytes, line| {
        let value = mutatis_lens::json::from_slice(bytes).map_err(|e| bad(line, e.to_string()))?;
        let doc = match &args.id_field {
            Some(field) => {
                let id = match value.get(field) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => {
                        return Err(bad(
                            line,
                            format!(
                                "the document has no string or number field `{field}` for its id"
                            ),
                        ))
                    }
                };
                ImportDoc {
                    id,
                    rev: None,
                    body: value,
                }
            }
            None => envelope(value).map_err(|m| bad(line, m))?,
        };
        count += 1;
        take(doc, line)
    })?;
    Ok((name, count))
}

fn run_import<B: Backend>(
    store: &Store<B>,
    args: &Import,
    version: u32,
) -> Result<ExitCode, CliError> {
    let name = Input::name_of(args.input.as_deref());
    let mut batch: Vec<ImportDoc> = Vec::with_capacity(IMPORT_BATCH);
    let mut first_line = 0;
    let flush = |batch: &mut Vec<ImportDoc>, first_line: usize| -> Result<(), CliError> {
        if batch.is_empty() {
            return Ok(());
        }
        store
            .import(&args.r#type, version, batch)
            .map_err(|e| CliError::Record {
                input: name.clone(),
                line: first_line,
                message: format!("in the batch starting here: {e}"),
                translation: true,
            })?;
        batch.clear();
        Ok(())
    };
    let (_, count) = read_docs(args, |doc, line| {
        if batch.is_empty() {
            first_line = line;
        }
        batch.push(doc);
        if batch.len() >= IMPORT_BATCH {
            flush(&mut batch, first_line)?;
        }
        Ok(())
    })?;
    flush(&mut batch, first_line)?;
    eprintln!(
        "imported {count} {} documents (written in version {version})",
        args.r#type
    );
    Ok(ExitCode::SUCCESS)
}

/// An import envelope: `{"id": "…", "rev": "…", "doc": {…}}`, `rev` optional.
fn envelope(value: Value) -> Result<ImportDoc, String> {
    let Value::Object(mut map) = value else {
        return Err("expected an envelope {\"id\", \"rev\"?, \"doc\"} (or use --id-field for bare documents)".into());
    };
    for key in map.keys() {
        if !matches!(key.as_str(), "id" | "rev" | "doc") {
            return Err(format!("unknown envelope key `{key}`; expected id, rev, doc (or use --id-field for bare documents)"));
        }
    }
    let id = match map.remove("id") {
        Some(Value::String(s)) => s,
        _ => return Err("the envelope needs a string `id`".into()),
    };
    let rev = match map.remove("rev") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.parse::<Rev>().map_err(|e| e.to_string())?),
        Some(_) => return Err("`rev` must be a string like \"3-0123abcd…\"".into()),
    };
    let body = map.remove("doc").ok_or("the envelope needs a `doc`")?;
    Ok(ImportDoc { id, rev, body })
}

/// The envelope of a document as `export` prints it and `POST /admin/import` reads it.
fn envelope_json(id: &str, rev: Option<&str>, body: &Value) -> Value {
    match rev {
        Some(rev) => json!({"id": id, "rev": rev, "doc": body}),
        None => json!({"id": id, "doc": body}),
    }
}

/// `import --server`: the documents in batches of `POST /admin/import` (each one
/// transaction on the node, all or nothing), each batch below the node's body limit.
fn remote_import(remote: &Remote, args: &Import, version: u32) -> Result<ExitCode, CliError> {
    let mut sender = BatchSender {
        remote,
        input: Input::name_of(args.input.as_deref()),
        type_name: &args.r#type,
        version,
        // The node's default limit, with room for the request's own members; a node started
        // with a smaller one says so (413 with its `limit`), and batches shrink to fit.
        max_bytes: mutatis_server::DEFAULT_BODY_LIMIT / 4 * 3,
        pending: Vec::new(),
        pending_bytes: 0,
    };
    let (_, count) = read_docs(args, |doc, line| {
        let rev = doc.rev.as_ref().map(Rev::to_string);
        let bytes = serde_json::to_vec(&envelope_json(&doc.id, rev.as_deref(), &doc.body))
            .map_err(|e| CliError::Usage(format!("cannot encode a document: {e}")))?;
        if !sender.pending.is_empty()
            && (sender.pending_bytes + bytes.len() + 1 > sender.max_bytes
                || sender.pending.len() >= IMPORT_BATCH)
        {
            sender.flush()?;
        }
        sender.pending_bytes += bytes.len() + 1;
        sender.pending.push((line, bytes));
        Ok(())
    })?;
    sender.flush()?;
    eprintln!(
        "imported {count} {} documents (written in version {version}) through {}",
        args.r#type,
        remote.url()
    );
    Ok(ExitCode::SUCCESS)
}

/// Documents waiting to be sent to `POST /admin/import`, each with its input line.
struct BatchSender<'a> {
    remote: &'a Remote,
    input: String,
    type_name: &'a str,
    version: u32,
    max_bytes: usize,
    pending: Vec<(usize, Vec<u8>)>,
    pending_bytes: usize,
}

impl BatchSender<'_> {
    fn flush(&mut self) -> Result<(), CliError> {
        let docs = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        self.send(&docs)
    }

    /// Send `docs` as one import; a body over the node's limit is split in two (nothing of a
    /// refused batch was written, so sending its halves is the same import).
    fn send(&mut self, docs: &[(usize, Vec<u8>)]) -> Result<(), CliError> {
        let Some(&(first_line, _)) = docs.first() else {
            return Ok(());
        };
        // The envelopes are already JSON: the body is put together around them, not
        // parsed and written again.
        let head = json!({"type": self.type_name, "version": self.version}).to_string();
        let mut body = Vec::with_capacity(self.max_bytes.min(16 << 20));
        body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        body.extend_from_slice(b",\"docs\":[");
        for (i, (_, d)) in docs.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(d);
        }
        body.extend_from_slice(b"]}");
        let body_len = body.len();
        let url = self.remote.url_of(&["admin", "import"]);
        let what = format!("POST {url}");
        let req = self
            .remote
            .request(Method::POST, url)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        let resp = self.remote.send(&what, req)?;
        match crate::remote::answer(&what, resp) {
            Ok(_) => Ok(()),
            Err(CliError::Remote { problem, .. })
                if problem.status == StatusCode::PAYLOAD_TOO_LARGE.as_u16() =>
            {
                let limit = problem
                    .extensions
                    .get("limit")
                    .and_then(Value::as_u64)
                    .and_then(|l| usize::try_from(l).ok());
                if docs.len() == 1 {
                    return Err(CliError::Record {
                        input: self.input.clone(),
                        line: first_line,
                        message: format!(
                            "the document alone is larger than what {} takes in one request{} (its --body-limit)",
                            self.remote.url(),
                            limit.map(|l| format!(" ({l} bytes)")).unwrap_or_default()
                        ),
                        translation: false,
                    });
                }
                self.max_bytes = match limit {
                    Some(l) => (l / 4 * 3).min(body_len / 2),
                    None => body_len / 2,
                }
                .max(1);
                let (a, b) = docs.split_at(docs.len() / 2);
                self.send(a)?;
                self.send(b)
            }
            Err(CliError::Remote { request, problem }) => {
                let translation = matches!(
                    problem.type_uri.as_str(),
                    "urn:mutatis:problem:invalid-document" | "urn:mutatis:problem:untranslatable"
                );
                Err(CliError::Record {
                    input: self.input.clone(),
                    line: first_line,
                    message: format!(
                        "in the batch starting here, nothing of which was imported: {}",
                        CliError::Remote { request, problem }
                    ),
                    translation,
                })
            }
            Err(e) => Err(e),
        }
    }
}

// ---------------------------------------------------------------------------------- export

/// `mutatis export DIR (--data PATH | --postgres URL | --server URL) --type T [--version V]`.
pub fn export(args: &Export) -> Result<ExitCode, CliError> {
    let (set, params) = load(&args.dir, &args.params)?;
    let version = default_version(&set, &args.r#type, args.version)?;
    if let Some(url) = &args.target.server {
        let remote = Remote::from_args(url, &args.target)?;
        set.versions(&args.r#type).map_err(CliError::Schema)?;
        remote.check_set(set.name(), args.target.store.force_set)?;
        return remote_export(&remote, &args.r#type, version);
    }
    with_store!(&args.target.store, set, Access::Read, |store| {
        let store = store.with_params(params);
        run_export(&store, &args.r#type, version)
    })
}

fn run_export<B: Backend>(
    store: &Store<B>,
    type_name: &str,
    version: u32,
) -> Result<ExitCode, CliError> {
    let mut out = Output::stdout();
    let mut after: Option<String> = None;
    let mut buf = Vec::with_capacity(4096);
    loop {
        let page = store
            .list(type_name, version, after.as_deref(), EXPORT_PAGE)
            .map_err(store_err)?;
        for doc in &page.docs {
            buf.clear();
            let rev = doc.rev.to_string();
            // Serialising a Value into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut buf, &envelope_json(&doc.id, Some(&rev), &doc.body));
            out.line(&buf)?;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}

/// `export --server`: the pages of `GET /docs/T` in version `version`
/// (`Mutatis-Versions: T=V`), printed as the same envelopes as a local export.
fn remote_export(remote: &Remote, type_name: &str, version: u32) -> Result<ExitCode, CliError> {
    let mut out = Output::stdout();
    let mut after: Option<String> = None;
    let mut buf = Vec::with_capacity(4096);
    let versions = format!("{type_name}={version}");
    loop {
        let mut url = remote.url_of(&["docs", type_name]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("limit", &EXPORT_PAGE.to_string());
            if let Some(a) = &after {
                q.append_pair("after", a);
            }
        }
        let what = format!("GET {url}");
        let req = remote
            .request(Method::GET, url)
            .header("Mutatis-Versions", &versions);
        let (_, page) = crate::remote::answer(&what, remote.send(&what, req)?)?;
        let malformed = || CliError::Fetch {
            url: what.clone(),
            reason: "the answer is not a page of documents {\"docs\", \"next\"}".into(),
        };
        for doc in page
            .get("docs")
            .and_then(Value::as_array)
            .ok_or_else(malformed)?
        {
            let (Some(id), Some(rev), Some(body)) = (
                doc.get("id").and_then(Value::as_str),
                doc.get("rev").and_then(Value::as_str),
                doc.get("doc"),
            ) else {
                return Err(malformed());
            };
            buf.clear();
            let _ = serde_json::to_writer(&mut buf, &envelope_json(id, Some(rev), body));
            out.line(&buf)?;
        }
        match page.get("next") {
            Some(Value::String(next)) => after = Some(next.clone()),
            Some(Value::Null) | None => break,
            Some(_) => return Err(malformed()),
        }
    }
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}
