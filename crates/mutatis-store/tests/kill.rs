//! Crash safety with real processes: a migration with a concurrent writer is killed with
//! SIGKILL at several points and resumed each time; afterwards every document is present once,
//! in the new version, reads back exactly as last written in the version it was written in,
//! and no acknowledged write is missing. The writer writes in the storage version and in the
//! newer one, whose `started` status the storage version cannot hold: such writes are carried
//! beside the stored document while the migration runs, and are in flight at every kill.
//!
//! The test binary runs itself as the child (the `kill_child` test, which does nothing unless
//! `MUTATIS_KILL_CHILD` names a folder). Sizes: `MUTATIS_KILL_DOCS` (default 20000) and
//! `MUTATIS_KILL_POINTS` (default 3); the full run is
//! `MUTATIS_KILL_DOCS=200000 MUTATIS_KILL_POINTS=10 cargo test --release -p mutatis-store --test kill`.

mod suite;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mutatis_store::{
    Backend, ImportDoc, MigrationOptions, OnError, PostgresBackend, RedbBackend, RedbOptions, Store,
};
use serde_json::{json, Value};
use suite::todo_set;

const CHILD_ENV: &str = "MUTATIS_KILL_CHILD";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const BACKEND_ENV: &str = "MUTATIS_KILL_BACKEND";

/// Where the store under test lives: passed to the child as `redb` or `postgres:SCHEMA`.
#[derive(Clone)]
enum Target {
    Redb,
    Postgres { url: String, schema: String },
}

impl Target {
    fn from_env() -> Target {
        match std::env::var(BACKEND_ENV)
            .ok()
            .as_deref()
            .and_then(|v| v.strip_prefix("postgres:"))
        {
            Some(schema) => Target::Postgres {
                url: std::env::var("DATABASE_URL").unwrap(),
                schema: schema.to_owned(),
            },
            None => Target::Redb,
        }
    }

    fn env_value(&self) -> String {
        match self {
            Target::Redb => "redb".to_owned(),
            Target::Postgres { schema, .. } => format!("postgres:{schema}"),
        }
    }
}

/// Run `f` with the store of `target`, whichever backend it is.
macro_rules! with_store {
    ($target:expr, $dir:expr, |$store:ident| $body:expr) => {
        match $target {
            Target::Redb => {
                let backend =
                    RedbBackend::open($dir.join("store.redb"), RedbOptions::default()).unwrap();
                let $store = Store::new(backend, todo_set(1, "eager"));
                $body
            }
            Target::Postgres { url, schema } => {
                let backend = PostgresBackend::connect(url, schema).unwrap();
                let $store = Store::new(backend, todo_set(1, "eager"));
                $body
            }
        }
    };
}

fn body(title: &str, done: bool) -> Value {
    json!({"title": title, "done": done})
}

struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// The child: resume (or start) the migration and write at a steady rate until it switched.
/// Every write is logged as an intent before it is sent and acknowledged after it returns.
#[test]
fn kill_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let docs = env_or("MUTATIS_KILL_DOCS", 20_000);
    with_store!(&Target::from_env(), dir, |store| child_run(
        &store, dir, docs
    ));
}

fn child_run<B: Backend>(store: &Store<B>, dir: &Path, docs: u64)
where
    Store<B>: Sync,
{
    let state = store.state("todo").unwrap();
    if state.migration.is_none() && state.storage_version == 1 {
        let options = MigrationOptions {
            batch_size: 100,
            on_error: OnError::Stop,
        };
        store.start_migration("todo", 3, options).unwrap();
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("writes.log"))
        .unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = Lcg(u64::from(std::process::id()));
            let mut i = 0u64;
            // Keep writing a little after the switch too: those writes go to v3 directly.
            let mut after_switch = 0;
            while after_switch < 20 {
                if done.load(Ordering::Relaxed) {
                    after_switch += 1;
                }
                i += 1;
                let id = format!("doc{:06}", rng.next(docs + docs / 10));
                let title = format!("w{}-{i}", std::process::id());
                // Half the writes come from a release on todo@3; a third of those set the
                // status todo@1 has no place for.
                let (version, value) = if rng.next(2) == 0 {
                    (1, body(&title, rng.next(2) == 0))
                } else {
                    let status = ["open", "done", "started"][rng.next(3) as usize];
                    (
                        3,
                        json!({"title": title, "status": status, "important": rng.next(2) == 0}),
                    )
                };
                // One write(2) per line on an O_APPEND file: a kill leaves whole lines.
                log.write_all(format!("I {id} {version} {value}\n").as_bytes())
                    .unwrap();
                let rev = store.rev("todo", &id).unwrap();
                store
                    .put("todo", &id, version, &value, rev.as_ref())
                    .unwrap();
                log.write_all(format!("A {id}\n").as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let progress = dir.join("progress");
        store
            .run_migration("todo", |p| {
                // Tells the parent where to kill; losing this write loses nothing else.
                let _ = std::fs::write(&progress, p.done.to_string());
            })
            .unwrap();
        done.store(true, Ordering::Relaxed);
    });
}

#[test]
fn migration_with_a_writer_survives_sigkill_on_redb() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    survive_sigkill(Target::Redb);
}

#[test]
fn migration_with_a_writer_survives_sigkill_on_postgres() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let Some(url) = suite::database_url("kill test on PostgreSQL") else {
        return;
    };
    let schema = format!("mutatis_kill_{}", std::process::id());
    let drop_schema = |url: &str| {
        let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .unwrap();
    };
    drop_schema(&url);
    survive_sigkill(Target::Postgres {
        url: url.clone(),
        schema: schema.clone(),
    });
    drop_schema(&url);
}

fn survive_sigkill(target: Target) {
    let docs = env_or("MUTATIS_KILL_DOCS", 20_000);
    let kills = env_or("MUTATIS_KILL_POINTS", 3);
    let dir = tempfile::tempdir().unwrap();
    let mut seeded: BTreeMap<String, (u32, Value)> = BTreeMap::new();
    with_store!(&target, dir.path(), |store| {
        let all: Vec<ImportDoc> = (0..docs)
            .map(|i| ImportDoc {
                id: format!("doc{i:06}"),
                rev: None,
                body: body(&format!("seed {i}"), i % 2 == 0),
            })
            .collect();
        for chunk in all.chunks(2000) {
            store.import("todo", 1, chunk).unwrap();
        }
        for d in all {
            seeded.insert(d.id, (1, d.body));
        }
    });
    let exe = std::env::current_exe().unwrap();
    let child = || {
        Command::new(&exe)
            .args(["kill_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env(BACKEND_ENV, target.env_value())
            .spawn()
            .unwrap()
    };
    let mut rng = Lcg(2026);
    let mut killed_mid_migration = 0;
    let mut last_done = 0;
    let progress = dir.path().join("progress");
    for k in 0..kills {
        // Kill at a random point of the k-th slice of the restore, whatever the machine's
        // speed: the child reports its progress after every batch.
        let slice = docs / (kills + 1);
        let at = slice * (k + 1) + rng.next(slice.max(1));
        let mut c = child();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let done: u64 = std::fs::read_to_string(&progress)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if done >= at || Instant::now() > deadline || c.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        c.kill().unwrap(); // SIGKILL on Unix
        c.wait().unwrap();
        // Reopening after a kill runs redb's repair; the checkpoint must only move forward.
        let migration = with_store!(&target, dir.path(), |store| store
            .state("todo")
            .unwrap()
            .migration);
        if let Some(m) = migration {
            killed_mid_migration += 1;
            assert!(m.done >= last_done, "checkpoint went back");
            last_done = m.done;
        }
    }
    let started = Instant::now();
    let status = child().wait().unwrap();
    assert!(status.success(), "the final run failed: {status}");
    eprintln!(
        "{docs} docs, {kills} kills ({killed_mid_migration} mid-migration), final run {:?}",
        started.elapsed()
    );
    assert!(
        killed_mid_migration > 0,
        "no kill landed during the migration; the test proved nothing"
    );

    // What each id may hold: its last acknowledged value, or a write in flight at a kill.
    let log = std::fs::read_to_string(dir.path().join("writes.log")).unwrap();
    let mut acked: BTreeMap<String, (u32, Value)> = seeded;
    let mut pending: BTreeMap<String, Vec<(u32, Value)>> = BTreeMap::new();
    for line in log.lines() {
        let mut parts = line.splitn(4, ' ');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("I"), Some(id), Some(version), Some(v)) => {
                if let (Ok(version), Ok(v)) = (version.parse(), serde_json::from_str(v)) {
                    pending.entry(id.to_owned()).or_default().push((version, v));
                }
            }
            (Some("A"), Some(id), None, None) => {
                if let Some(v) = pending.get_mut(id).and_then(Vec::pop) {
                    acked.insert(id.to_owned(), v);
                }
                pending.remove(id);
            }
            _ => {}
        }
    }
    with_store!(&target, dir.path(), |store| verify(
        &store, &acked, &pending
    ));
}

/// Every document once, in v3; each reads back exactly as its last acknowledged write wrote
/// it, in the version it was written in (or as the write in flight when a kill hit); no
/// acknowledged document missing.
fn verify<B: Backend>(
    store: &Store<B>,
    acked: &BTreeMap<String, (u32, Value)>,
    pending: &BTreeMap<String, Vec<(u32, Value)>>,
) {
    let state = store.state("todo").unwrap();
    assert_eq!(state.storage_version, 3);
    assert!(state.migration.is_none());
    let mut seen = BTreeSet::new();
    let mut carried = 0;
    let mut after: Option<String> = None;
    loop {
        let page = store.list("todo", 3, after.as_deref(), 1000).unwrap();
        for d in &page.docs {
            assert!(seen.insert(d.id.clone()), "{} present twice", d.id);
            let allowed: Vec<&(u32, Value)> = acked
                .get(&d.id)
                .into_iter()
                .chain(pending.get(&d.id).into_iter().flatten())
                .collect();
            let reads: Vec<(u32, Value)> = allowed
                .iter()
                .map(|(v, _)| (*v, store.get("todo", &d.id, *v).unwrap().unwrap().body))
                .collect();
            assert!(
                allowed
                    .iter()
                    .zip(&reads)
                    .any(|((_, want), (_, got))| want == got),
                "{}: read back {reads:?}, written one of {allowed:?}",
                d.id
            );
            if allowed.iter().any(|(_, v)| v["status"] == "started") {
                carried += 1;
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert!(
        carried > 0,
        "no write needed carrying; the test proved nothing"
    );
    // No acknowledged document is missing (and nothing appeared from nowhere).
    for id in acked.keys() {
        assert!(seen.contains(id), "acknowledged document {id} is missing");
    }
    for id in &seen {
        assert!(
            acked.contains_key(id) || pending.contains_key(id),
            "{id} from nowhere"
        );
    }
}
