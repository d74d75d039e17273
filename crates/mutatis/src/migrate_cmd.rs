//! `mutatis migrate`: move a type's stored documents to another version with a progress bar
//! until the switch, roll back onto the kept backup, drop it, or abort the migration in
//! flight — on a store opened directly (through `store_cmd`'s `with_store!`), or through a
//! running node with `--server` (the admin migration routes, followed until the switch). Each
//! mode is decided from the type's state, so a deploy script can run it again after a crash:
//! what is done already is said and exits 0, what is in flight is resumed.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use mutatis_schema::SchemaSet;
use mutatis_store::{
    Backend, MigrationKind, MigrationOptions, OnError, ProgressMeter, Step, Store, StoreError,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::cli::Migrate;
use crate::error::CliError;
use crate::remote::Remote;
use crate::store_cmd::{load, store_err, with_store, Access};

/// How often `migrate --server` asks the node how its migration goes.
const POLL: Duration = Duration::from_millis(200);

/// What `mutatis migrate` was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    To(u32),
    Rollback,
    DropBackup,
    Abort,
}

impl Mode {
    fn of(args: &Migrate) -> Result<Mode, CliError> {
        // clap's group makes exactly one of them present.
        match (args.to, args.rollback, args.drop_backup, args.abort) {
            (Some(v), false, false, false) => Ok(Mode::To(v)),
            (None, true, false, false) => Ok(Mode::Rollback),
            (None, false, true, false) => Ok(Mode::DropBackup),
            (None, false, false, true) => Ok(Mode::Abort),
            _ => Err(CliError::Usage(
                "give exactly one of --to V, --rollback, --drop-backup, --abort".into(),
            )),
        }
    }
}

/// `mutatis migrate DIR (--data PATH | --postgres URL | --server URL) --type T
/// (--to V | --rollback | --drop-backup | --abort)`: run the migration (or rollback) to its
/// switch with a progress bar; one left in flight by a killed run is resumed.
pub fn migrate(args: &Migrate) -> Result<ExitCode, CliError> {
    let mode = Mode::of(args)?;
    let (set, params) = load(&args.dir, &args.params)?;
    // A typo in the type is an error before anything is opened.
    set.type_def(&args.r#type).map_err(CliError::Schema)?;
    if let Some(url) = &args.target.server {
        let remote = Remote::from_args(url, &args.target)?;
        remote.check_set(set.name(), args.target.store.force_set)?;
        return remote_migrate(&remote, &set, args, mode);
    }
    with_store!(&args.target.store, set, Access::Write, |store| {
        let store = store.with_params(params);
        run_migrate(&store, args, mode)
    })
}

fn kind_word(kind: MigrationKind) -> &'static str {
    match kind {
        MigrationKind::Forward => "migration",
        MigrationKind::Rollback => "rollback",
    }
}

fn in_flight(ty: &str, what: &str, from: u32, to: u32) -> CliError {
    CliError::Usage(format!(
        "{ty}: a {what} from version {from} to {to} is in flight; finish it first (`mutatis migrate … --to {to}`) or stop it (`--abort`)"
    ))
}

fn backup_kept(ty: &str, version: u32) -> CliError {
    CliError::Usage(format!(
        "{ty}: the backup the last migration kept (version {version}) is in the way; roll back onto it (`mutatis migrate … --rollback`) or drop it (`--drop-backup`), then migrate again"
    ))
}

fn no_backup(ty: &str) -> CliError {
    CliError::Usage(format!(
        "{ty}: no backup is kept, so there is nothing to roll back onto (a migration keeps one when it switches, until it is dropped)"
    ))
}

/// After a switch: say when mutatis.yaml declares another version, which `mutatis serve`
/// would move the type back to at its start.
fn note_declared(set: &SchemaSet, ty: &str, stored: u32) {
    if let Ok(declared) = set.storage(ty) {
        if declared.version != stored {
            eprintln!(
                "note: mutatis.yaml declares {ty} in version {}; `mutatis serve` moves it there when it starts or reloads (change `storage:` to keep version {stored})",
                declared.version
            );
        }
    }
}

fn run_migrate<B: Backend>(
    store: &Store<B>,
    args: &Migrate,
    mode: Mode,
) -> Result<ExitCode, CliError> {
    let ty = args.r#type.as_str();
    let options = MigrationOptions {
        batch_size: args.batch_size,
        on_error: if args.quarantine {
            OnError::Quarantine
        } else {
            OnError::Stop
        },
    };
    let st = store.state(ty).map_err(store_err)?;
    let started = match (mode, &st.migration) {
        (Mode::Abort, None) => {
            eprintln!("{ty}: no migration is in flight; nothing to abort");
            return Ok(ExitCode::SUCCESS);
        }
        (Mode::Abort, Some(m)) => {
            store.abort_migration(ty).map_err(store_err)?;
            eprintln!(
                "{ty}: aborted the {} from version {} to {}; version {} stays live",
                kind_word(m.kind),
                m.from_version,
                m.to_version,
                st.storage_version
            );
            return Ok(ExitCode::SUCCESS);
        }
        (Mode::DropBackup, Some(m)) if m.kind == MigrationKind::Rollback => {
            return Err(in_flight(ty, "rollback", m.from_version, m.to_version));
        }
        (Mode::DropBackup, _) => {
            match &st.backup {
                None => {
                    // A drop interrupted while emptying the backup's space finishes here.
                    store.collect_garbage(ty).map_err(store_err)?;
                    eprintln!("{ty}: no backup is kept; nothing to drop");
                }
                Some(b) => {
                    store.drop_backup(ty).map_err(store_err)?;
                    eprintln!(
                        "{ty}: dropped the backup in version {}; the next migration can start",
                        b.version
                    );
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        // The same migration (or rollback) asked for again: resumed.
        (Mode::To(_) | Mode::Rollback, Some(m))
            if mode == Mode::To(m.to_version)
                || (mode == Mode::Rollback && m.kind == MigrationKind::Rollback) =>
        {
            let p = m.progress();
            eprintln!(
                "resuming the {} of {ty} from version {} to {} ({} of {} done)",
                kind_word(m.kind),
                p.from,
                p.to,
                p.done,
                p.total
            );
            p
        }
        (_, Some(m)) => {
            return Err(in_flight(
                ty,
                kind_word(m.kind),
                m.from_version,
                m.to_version,
            ));
        }
        (Mode::To(v), None) if st.storage_version == v => {
            eprintln!("{ty} is already stored in version {v}; nothing to do");
            return Ok(ExitCode::SUCCESS);
        }
        (Mode::To(v), None) if st.backup.as_ref().is_some_and(|b| b.version == v) => {
            eprintln!(
                "{ty}: version {v} is the backup the last migration kept: rolling back onto it"
            );
            store.start_rollback(ty, options).map_err(store_err)?
        }
        (Mode::Rollback, None) => {
            if st.backup.is_none() {
                return Err(no_backup(ty));
            }
            store.start_rollback(ty, options).map_err(store_err)?
        }
        (Mode::To(v), None) => match store.start_migration(ty, v, options) {
            Ok(Some(p)) => p,
            Ok(None) => {
                eprintln!("{ty} is stored lazily: its storage version is now {v}; documents are upgraded as they are written");
                note_declared(store.schema_set(), ty, v);
                return Ok(ExitCode::SUCCESS);
            }
            Err(StoreError::BackupKept { version, .. }) => return Err(backup_kept(ty, version)),
            Err(e) => return Err(store_err(e)),
        },
    };
    let mut bar = MigrationBar::new(ty);
    bar.update(
        started.from,
        started.to,
        started.phase,
        started.done,
        started.total,
    );
    let done = loop {
        let step = store.step_migration(ty).map_err(store_err)?;
        let (p, switched) = match step {
            Step::Running(p) => (p, false),
            Step::Switched(p) => (p, true),
        };
        bar.update(p.from, p.to, p.phase, p.done, p.total);
        if switched {
            break p;
        }
    };
    let rate = bar.finish();
    // Spaces the switch set free (a replaced copy) are emptied now, as a server would.
    store.collect_garbage(ty).map_err(store_err)?;
    match done.kind {
        MigrationKind::Forward => eprintln!(
            "{ty}: switched to version {} ({} documents and changes{rate}, {} quarantined); version {} is kept as a backup",
            done.to, done.done, done.quarantined, done.from
        ),
        MigrationKind::Rollback => eprintln!(
            "{ty}: rolled back, switched to version {} ({} changes carried back{rate}, {} quarantined); version {} is kept as a backup",
            done.to, done.done, done.quarantined, done.from
        ),
    }
    note_declared(store.schema_set(), ty, done.to);
    Ok(ExitCode::SUCCESS)
}

/// The progress of a migration on stderr: a bar on a terminal, a line every few seconds
/// otherwise (CI, a log file). Local and `--server` migrations share it.
struct MigrationBar {
    ty: String,
    bar: ProgressBar,
    meter: ProgressMeter,
    started: Instant,
    last_report: Instant,
}

impl MigrationBar {
    fn new(ty: &str) -> MigrationBar {
        let bar = ProgressBar::new(1);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        MigrationBar {
            ty: ty.to_owned(),
            bar,
            meter: ProgressMeter::new(),
            started: Instant::now(),
            last_report: Instant::now(),
        }
    }

    fn update(&mut self, from: u32, to: u32, phase: &str, done: u64, total: u64) {
        let ty = &self.ty;
        self.meter
            .observe(done, self.started.elapsed().as_secs_f64());
        self.bar.set_length(total.max(done).max(1));
        self.bar.set_position(done);
        self.bar.set_message(format!("{ty} {from}→{to} {phase}"));
        if self.bar.is_hidden() && self.last_report.elapsed() >= Duration::from_secs(5) {
            let rate = self
                .meter
                .rate()
                .map(|r| format!(", {r:.0}/s"))
                .unwrap_or_default();
            eprintln!("{ty} {from}→{to} {phase}: {done}/{total}{rate}");
            self.last_report = Instant::now();
        }
    }

    /// Clear the bar; the rate, as text to append to the summary.
    fn finish(&self) -> String {
        self.bar.finish_and_clear();
        self.meter
            .rate()
            .filter(|r| *r >= 1.0)
            .map(|r| format!(" at {r:.0} docs/s"))
            .unwrap_or_default()
    }
}

/// `migrate --server`: the node runs the migration (the admin routes); this follows it with
/// `GET /admin/migrations/{type}` until it switches.
fn remote_migrate(
    remote: &Remote,
    set: &SchemaSet,
    args: &Migrate,
    mode: Mode,
) -> Result<ExitCode, CliError> {
    let ty = args.r#type.as_str();
    let state_url = remote.url_of(&["admin", "migrations", ty]);
    let st = remote.json(Method::GET, state_url.clone(), None)?;
    let storage = st
        .get("storageVersion")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let backup = st.pointer("/backup/version").and_then(Value::as_u64);
    let flight = st.get("migration").filter(|m| !m.is_null()).map(|m| {
        (
            m.get("kind").and_then(Value::as_str).unwrap_or("forward") == "rollback",
            m.get("from").and_then(Value::as_u64).unwrap_or(0),
            m.get("to").and_then(Value::as_u64).unwrap_or(0),
        )
    });
    let options = json!({
        "batchSize": args.batch_size,
        "onError": if args.quarantine { "quarantine" } else { "stop" },
    });
    let what_of = |rollback: bool| if rollback { "rollback" } else { "migration" };
    let u = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    let rollback_url = remote.url_of(&["admin", "migrations", ty, "rollback"]);
    match (mode, flight) {
        (Mode::Abort, None) => {
            eprintln!("{ty}: no migration is in flight; nothing to abort");
            Ok(ExitCode::SUCCESS)
        }
        (Mode::Abort, Some((rollback, from, to))) => {
            remote.json(
                Method::POST,
                remote.url_of(&["admin", "migrations", ty, "abort"]),
                None,
            )?;
            eprintln!(
                "{ty}: aborted the {} from version {from} to {to}; version {storage} stays live",
                what_of(rollback)
            );
            Ok(ExitCode::SUCCESS)
        }
        (Mode::DropBackup, Some((true, from, to))) => {
            Err(in_flight(ty, "rollback", u(from), u(to)))
        }
        (Mode::DropBackup, _) => {
            match backup {
                None => eprintln!("{ty}: no backup is kept; nothing to drop"),
                Some(b) => {
                    remote.json(
                        Method::DELETE,
                        remote.url_of(&["admin", "migrations", ty, "backup"]),
                        None,
                    )?;
                    eprintln!(
                        "{ty}: dropped the backup in version {b}; the next migration can start"
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        (Mode::Rollback, Some((true, from, to))) => {
            eprintln!("resuming the rollback of {ty} from version {from} to {to}");
            remote.json(Method::POST, rollback_url, Some(&options))?;
            follow(remote, set, ty, state_url, u(to), true)
        }
        (Mode::To(v), Some((rollback, from, to))) if u64::from(v) == to => {
            eprintln!(
                "resuming the {} of {ty} from version {from} to {to}",
                what_of(rollback)
            );
            if rollback {
                remote.json(Method::POST, rollback_url, Some(&options))?;
            } else {
                let mut body = options.clone();
                body["type"] = json!(ty);
                body["to"] = json!(v);
                remote.json(
                    Method::POST,
                    remote.url_of(&["admin", "migrations"]),
                    Some(&body),
                )?;
            }
            follow(remote, set, ty, state_url, v, rollback)
        }
        (_, Some((rollback, from, to))) => Err(in_flight(ty, what_of(rollback), u(from), u(to))),
        (Mode::To(v), None) if storage == u64::from(v) => {
            eprintln!("{ty} is already stored in version {v}; nothing to do");
            Ok(ExitCode::SUCCESS)
        }
        (Mode::To(v), None) if backup == Some(u64::from(v)) => {
            eprintln!(
                "{ty}: version {v} is the backup the last migration kept: rolling back onto it"
            );
            remote.json(Method::POST, rollback_url, Some(&options))?;
            follow(remote, set, ty, state_url, v, true)
        }
        (Mode::Rollback, None) => match backup {
            None => Err(no_backup(ty)),
            Some(b) => {
                remote.json(Method::POST, rollback_url, Some(&options))?;
                follow(remote, set, ty, state_url, u(b), true)
            }
        },
        (Mode::To(v), None) => {
            if let Some(b) = backup {
                return Err(backup_kept(ty, u(b)));
            }
            let mut body = options.clone();
            body["type"] = json!(ty);
            body["to"] = json!(v);
            let url = remote.url_of(&["admin", "migrations"]);
            let what = format!("POST {url}");
            let req = remote.request(Method::POST, url).json(&body);
            let (status, _) = crate::remote::answer(&what, remote.send(&what, req)?)?;
            if status == StatusCode::OK {
                eprintln!("{ty} is stored lazily: its storage version is now {v}; documents are upgraded as they are written");
                note_declared(set, ty, v);
                return Ok(ExitCode::SUCCESS);
            }
            follow(remote, set, ty, state_url, v, false)
        }
    }
}

/// Follow the node's migration (or rollback) of `ty` to `target` until it is over, with the
/// progress bar. A run the node stopped (a document it cannot translate) is an error with
/// the node's reason; one left in flight with no process of the node running it (the node
/// restarted) is resumed.
fn follow(
    remote: &Remote,
    set: &SchemaSet,
    ty: &str,
    state_url: reqwest::Url,
    target: u32,
    rollback: bool,
) -> Result<ExitCode, CliError> {
    let mut bar = MigrationBar::new(ty);
    let mut last_resume = Instant::now();
    let mut unreachable_since: Option<Instant> = None;
    let st = loop {
        let st = match remote.json(Method::GET, state_url.clone(), None) {
            Ok(st) => {
                unreachable_since = None;
                st
            }
            // A node restarting (or a blip) is waited for a while, not given up on at once.
            Err(CliError::Fetch { .. })
                if unreachable_since.is_none_or(|t| t.elapsed() < Duration::from_secs(60)) =>
            {
                unreachable_since.get_or_insert_with(Instant::now);
                std::thread::sleep(POLL * 5);
                continue;
            }
            Err(e) => return Err(e),
        };
        let running = st.get("running").and_then(Value::as_bool).unwrap_or(false);
        match st.get("migration").filter(|m| !m.is_null()) {
            None if !running => break st,
            None => {}
            Some(m) => {
                let n = |k: &str| m.get(k).and_then(Value::as_u64).unwrap_or(0);
                let phase = m.get("phase").and_then(Value::as_str).unwrap_or("");
                bar.update(
                    u32::try_from(n("from")).unwrap_or(0),
                    u32::try_from(n("to")).unwrap_or(0),
                    phase,
                    n("done"),
                    n("total"),
                );
                if !running {
                    if let Some(err) = st.get("lastError").and_then(Value::as_str) {
                        bar.finish();
                        return Err(CliError::Remote {
                            request: format!("GET {state_url}"),
                            problem: Box::new(mutatis_client::Problem {
                                type_uri: "urn:mutatis:problem:untranslatable".into(),
                                title: Some("Migration stopped".into()),
                                status: 200,
                                detail: Some(format!(
                                    "{err} (the migration is still in flight: fix the document, or rerun with --quarantine after --abort)"
                                )),
                                ..mutatis_client::Problem::default()
                            }),
                        });
                    }
                    // In flight, and no process of the node runs it: it restarted. Ask it to
                    // resume (the routes resume the same migration).
                    if last_resume.elapsed() >= Duration::from_secs(2) {
                        last_resume = Instant::now();
                        let rollback = m.get("kind").and_then(Value::as_str) == Some("rollback");
                        if rollback {
                            remote.json(
                                Method::POST,
                                remote.url_of(&["admin", "migrations", ty, "rollback"]),
                                None,
                            )?;
                        } else {
                            remote.json(
                                Method::POST,
                                remote.url_of(&["admin", "migrations"]),
                                Some(&json!({"type": ty, "to": n("to")})),
                            )?;
                        }
                    }
                }
            }
        }
        std::thread::sleep(POLL);
    };
    let rate = bar.finish();
    let stored = st
        .get("storageVersion")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if stored != u64::from(target) {
        return Err(CliError::Usage(format!(
            "{ty}: the node's run ended without switching to version {target} (aborted by someone?): {ty} is stored in version {stored}"
        )));
    }
    let quarantined = st.get("quarantined").and_then(Value::as_u64).unwrap_or(0);
    let backup = st
        .pointer("/backup/version")
        .and_then(Value::as_u64)
        .map(|b| format!("; version {b} is kept as a backup"))
        .unwrap_or_default();
    let what = if rollback {
        "rolled back, switched"
    } else {
        "switched"
    };
    eprintln!(
        "{ty}: {what} to version {target} on {}{rate} ({quarantined} quarantined){backup}",
        remote.url()
    );
    note_declared(set, ty, target);
    Ok(ExitCode::SUCCESS)
}
