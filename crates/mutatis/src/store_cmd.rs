//! The commands over a document store: `import`, `export`, `migrate`. Each opens the store
//! named by `--data PATH` (embedded redb) or `--postgres URL`, then calls `mutatis-store`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use mutatis_schema::SchemaSet;
use mutatis_store::{
    Backend, ImportDoc, MigrationOptions, OnError, PostgresBackend, ProgressMeter, RedbBackend,
    RedbOptions, Rev, Step, Store, StoreError,
};
use serde_json::{json, Value};

use crate::cli::{Export, Import, Migrate};
use crate::error::CliError;
use crate::io::{Input, Output};

/// Documents per import transaction: big enough to amortise the commit, small enough that a
/// concurrent writer never waits long.
const IMPORT_BATCH: usize = 1_000;
/// Documents per export page.
const EXPORT_PAGE: usize = 1_000;

pub(crate) fn store_err(e: StoreError) -> CliError {
    CliError::Store(Box::new(e))
}

/// Run `f` on the store the arguments name, whichever backend it is.
macro_rules! with_store {
    ($args:expr, $set:expr, |$store:ident| $body:expr) => {{
        let set: Arc<SchemaSet> = $set;
        match (&$args.data, &$args.postgres) {
            (Some(path), None) => {
                let $store = Store::new(open_redb(path)?, set);
                $body
            }
            (None, Some(url)) => {
                let backend = PostgresBackend::connect(url, &$args.pg_schema).map_err(store_err)?;
                let $store = Store::new(backend, set);
                $body
            }
            _ => Err(CliError::Usage(
                "name the store with exactly one of --data PATH or --postgres URL".into(),
            )),
        }
    }};
}

pub(crate) fn open_redb(path: &Path) -> Result<RedbBackend, CliError> {
    RedbBackend::open(path, RedbOptions::default()).map_err(store_err)
}

fn load(
    dir: &Path,
    params: &crate::cli::ParamArgs,
) -> Result<(Arc<SchemaSet>, mutatis_lens::Params), CliError> {
    let set = SchemaSet::load(dir).map_err(CliError::Schema)?;
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

/// `mutatis import DIR (--data PATH | --postgres URL) --type T [--version V] [--id-field F] [FILE|-]`.
pub fn import(args: &Import) -> Result<ExitCode, CliError> {
    let (set, params) = load(&args.dir, &args.params)?;
    let version = default_version(&set, &args.r#type, args.version)?;
    with_store!(args.store, set, |store| {
        let store = store.with_params(params);
        run_import(&store, args, version)
    })
}

fn run_import<B: Backend>(
    store: &Store<B>,
    args: &Import,
    version: u32,
) -> Result<ExitCode, CliError> {
    let input = Input::open(args.input.as_deref())?;
    let name = input.name.clone();
    let bad = |line: usize, message: String| CliError::Record {
        input: name.clone(),
        line,
        message,
        translation: false,
    };
    let mut batch: Vec<ImportDoc> = Vec::with_capacity(IMPORT_BATCH);
    let mut first_line = 0;
    let mut count = 0usize;
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
    input.for_each_line(|bytes, line| {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(line, format!("invalid JSON: {e}")))?;
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
        if batch.is_empty() {
            first_line = line;
        }
        batch.push(doc);
        count += 1;
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

/// `mutatis export DIR (--data PATH | --postgres URL) --type T [--version V]`.
pub fn export(args: &Export) -> Result<ExitCode, CliError> {
    let (set, params) = load(&args.dir, &args.params)?;
    let version = default_version(&set, &args.r#type, args.version)?;
    with_store!(args.store, set, |store| {
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
            let envelope = json!({"id": doc.id, "rev": doc.rev.to_string(), "doc": doc.body});
            // Serialising a Value into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut buf, &envelope);
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

/// `mutatis migrate DIR (--data PATH | --postgres URL) --type T --to V`: run the migration to
/// its switch with a progress bar; a migration left in flight by a killed run is resumed.
pub fn migrate(args: &Migrate) -> Result<ExitCode, CliError> {
    let (set, params) = load(&args.dir, &args.params)?;
    with_store!(args.store, set, |store| {
        let store = store.with_params(params);
        run_migrate(&store, args)
    })
}

fn run_migrate<B: Backend>(store: &Store<B>, args: &Migrate) -> Result<ExitCode, CliError> {
    let ty = args.r#type.as_str();
    let options = MigrationOptions {
        batch_size: args.batch_size,
        on_error: if args.quarantine {
            OnError::Quarantine
        } else {
            OnError::Stop
        },
    };
    let progress = match store.migration(ty).map_err(store_err)? {
        Some(p) if p.to == args.to => {
            eprintln!("resuming the migration of {ty} from version {} to {} ({} of {} done)", p.from, p.to, p.done, p.total);
            p
        }
        Some(p) => {
            return Err(CliError::Usage(format!(
                "{ty}: a migration from version {} to {} is in flight; run `mutatis migrate` with --to {} to finish it first",
                p.from, p.to, p.to
            )))
        }
        None => match store.start_migration(ty, args.to, options).map_err(store_err)? {
            Some(p) => p,
            None => {
                eprintln!("{ty} is stored lazily: its storage version is now {}; documents are upgraded as they are written", args.to);
                return Ok(ExitCode::SUCCESS);
            }
        },
    };
    let bar = ProgressBar::new(progress.total.max(1));
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!(
        "{ty} {}→{} {}",
        progress.from, progress.to, progress.phase
    ));
    bar.set_position(progress.done);
    let started = Instant::now();
    let mut meter = ProgressMeter::new();
    let mut last_report = Instant::now();
    let done = loop {
        let step = store.step_migration(ty).map_err(store_err)?;
        let (p, switched) = match step {
            Step::Running(p) => (p, false),
            Step::Switched(p) => (p, true),
        };
        meter.observe(p.done, started.elapsed().as_secs_f64());
        bar.set_length(p.total.max(p.done).max(1));
        bar.set_position(p.done);
        bar.set_message(format!("{ty} {}→{} {}", p.from, p.to, p.phase));
        if bar.is_hidden() && last_report.elapsed() >= Duration::from_secs(5) {
            // Not a terminal (CI, a log file): a line every few seconds instead of a bar.
            let rate = meter
                .rate()
                .map(|r| format!(", {r:.0}/s"))
                .unwrap_or_default();
            eprintln!(
                "{ty} {}→{} {}: {}/{}{rate}",
                p.from, p.to, p.phase, p.done, p.total
            );
            last_report = Instant::now();
        }
        if switched {
            break p;
        }
    };
    bar.finish_and_clear();
    let rate = meter
        .rate()
        .map(|r| format!(" at {r:.0} docs/s"))
        .unwrap_or_default();
    eprintln!(
        "{ty}: switched to version {} ({} documents and changes{rate}, {} quarantined); version {} is kept as a backup",
        done.to, done.done, done.quarantined, done.from
    );
    Ok(ExitCode::SUCCESS)
}
