//! Store figures, as ratios on one run (the three benchmarks, embedded backend):
//!
//! - migration throughput (todo@1 → todo@3) against a plain copy of the same records through
//!   the same backend with no translation;
//! - write latency p50/p99 while a migration runs, against idle;
//! - the cost of reading a v1 document stored at v3 under eager/lazy and multi, against
//!   reading it in its stored version.
//!
//! `cargo run --release -p mutatis-store --example store_bench -- [DOCS [POSTGRES_URL]]`
//! (default 100000 documents; with a URL, the same figures on PostgreSQL too). With
//! `STORE_BENCH_MIGRATION_ONLY=1`, only the first: migration against plain copy.
//!
//! The migration and the plain copy also print their batches' timings: how many documents a
//! batch held and how long it took at its start, middle and end, and the documents per second
//! over each tenth of the table. Whatever grows with the table shows there: later tenths
//! slower than the first, or batches shrinking as the run goes on.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mutatis_schema::SchemaSet;
use mutatis_store::{
    Backend, ImportDoc, MigrationOptions, PostgresBackend, RedbBackend, RedbOptions, Store,
    StoreError,
};
use serde_json::json;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn todo_set(version: u32, strategy: &str) -> Result<Arc<SchemaSet>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/todo");
    let todo = std::fs::read_to_string(root.join("types/todo.yaml"))?;
    let settings = format!(
        "name: bench
releases:
  - {{name: \"1\", types: {{todo: 1}}, status: supported}}
  - {{name: \"2\", types: {{todo: 2}}, status: supported}}
  - {{name: \"3\", types: {{todo: 3}}, status: current}}
storage:
  todo: {{version: {version}, strategy: {strategy}}}
"
    );
    Ok(Arc::new(SchemaSet::from_sources(vec![
        (PathBuf::from("mutatis.yaml"), settings),
        (PathBuf::from("types/todo.yaml"), todo),
    ])?))
}

/// Opens a store named `name` (a file in the temporary folder, or a PostgreSQL schema).
trait Opener {
    type B: Backend;
    fn open(&self, name: &str, set: Arc<SchemaSet>) -> Result<Store<Self::B>>;
    /// Bring a freshly seeded store to a steady state before timing it (statistics), so that
    /// what runs first is not measured on a cold database.
    fn settle(&self, _name: &str) -> Result<()> {
        Ok(())
    }
    /// Make the freshly opened store `to` hold what store `from` holds, if this backend can
    /// do so faster than seeding it again; `false`: seed it.
    fn copy_store(&self, _from: &str, _to: &str) -> Result<bool> {
        Ok(false)
    }
}

struct RedbOpener(PathBuf);

impl Opener for RedbOpener {
    type B = RedbBackend;
    fn open(&self, name: &str, set: Arc<SchemaSet>) -> Result<Store<RedbBackend>> {
        let path = self.0.join(format!("{name}.redb"));
        Ok(Store::new(
            RedbBackend::open(path, RedbOptions::default())?,
            set,
        ))
    }
}

struct PgOpener(String);

impl Opener for PgOpener {
    type B = PostgresBackend;
    fn open(&self, name: &str, set: Arc<SchemaSet>) -> Result<Store<PostgresBackend>> {
        let schema = format!("mutatis_bench_{}", name.replace('-', "_"));
        let mut c = postgres::Client::connect(&self.0, postgres::NoTls)?;
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))?;
        Ok(Store::new(PostgresBackend::connect(&self.0, &schema)?, set))
    }

    fn settle(&self, name: &str) -> Result<()> {
        // Autovacuum gets to a freshly loaded table in its own time; until it does the
        // planner has no statistics and every scan is planned blind.
        let schema = format!("mutatis_bench_{}", name.replace('-', "_"));
        let mut c = postgres::Client::connect(&self.0, postgres::NoTls)?;
        // One statement per call: VACUUM refuses to run in a (multi-statement) transaction.
        for table in ["documents", "changes"] {
            c.batch_execute(&format!("VACUUM ANALYZE {schema}.{table}"))?;
        }
        Ok(())
    }

    fn copy_store(&self, from: &str, to: &str) -> Result<bool> {
        // Seeding through the store costs a few round trips per document (a 1M seed takes
        // a quarter of an hour here); a copy in SQL gives the same rows, in the same order.
        let from = format!("mutatis_bench_{}", from.replace('-', "_"));
        let to = format!("mutatis_bench_{}", to.replace('-', "_"));
        let mut c = postgres::Client::connect(&self.0, postgres::NoTls)?;
        c.batch_execute(&format!(
            "BEGIN;
             INSERT INTO {to}.documents SELECT * FROM {from}.documents;
             INSERT INTO {to}.changes SELECT * FROM {from}.changes;
             UPDATE {to}.feed_head SET seq = (SELECT seq FROM {from}.feed_head);
             INSERT INTO {to}.type_state SELECT * FROM {from}.type_state
                 ON CONFLICT (type_name) DO UPDATE SET state = EXCLUDED.state;
             INSERT INTO {to}.meta SELECT * FROM {from}.meta
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
             COMMIT;"
        ))?;
        Ok(true)
    }
}

fn seed<B: Backend>(store: &Store<B>, version: u32, docs: usize) -> Result<()> {
    let mut batch = Vec::with_capacity(2000);
    for i in 0..docs {
        let body = match version {
            1 => json!({"title": format!("item number {i}"), "done": i % 2 == 0}),
            _ => {
                json!({"title": format!("item number {i}"), "status": "open", "important": i % 3 == 0})
            }
        };
        batch.push(ImportDoc {
            id: format!("doc{i:08}"),
            rev: None,
            body,
        });
        if batch.len() == 2000 {
            store.import("todo", version, &batch)?;
            batch.clear();
        }
    }
    store.import("todo", version, &batch)?;
    Ok(())
}

/// The batches of one run, in order: documents moved and wall time of each.
#[derive(Default)]
struct BatchLog(Vec<(u64, Duration)>);

impl BatchLog {
    fn push(&mut self, docs: u64, took: Duration) {
        self.0.push((docs, took));
    }

    /// One line of batch sizes and times (first, median, 90th percentile, largest, last),
    /// then the rate over each tenth of the documents, in table order.
    fn print(&self, label: &str) {
        let Some(&(first_docs, first_took)) = self.0.first() else {
            println!("{label}: no batches");
            return;
        };
        let &(last_docs, last_took) = self.0.last().unwrap_or(&(first_docs, first_took));
        let mut sizes: Vec<u64> = self.0.iter().map(|&(d, _)| d).collect();
        sizes.sort_unstable();
        let mut times: Vec<Duration> = self.0.iter().map(|&(_, t)| t).collect();
        times.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{label}: {} batches; docs per batch first {first_docs}, median {}, last {last_docs}; \
             ms per batch first {:.1}, median {:.1}, p90 {:.1}, max {:.1}, last {:.1}",
            self.0.len(),
            sizes[sizes.len() / 2],
            ms(first_took),
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.9)),
            ms(percentile(&times, 1.0)),
            ms(last_took),
        );
        // Each batch counts toward the tenth of the documents its first document falls in.
        let total: u64 = self.0.iter().map(|&(d, _)| d).sum();
        let mut tenths = [(0u64, Duration::ZERO, 0usize); 10];
        let mut before = 0u64;
        for &(docs, took) in &self.0 {
            let i = usize::try_from(before * 10 / total.max(1))
                .unwrap_or(9)
                .min(9);
            tenths[i].0 += docs;
            tenths[i].1 += took;
            tenths[i].2 += 1;
            before += docs;
        }
        let rates: Vec<String> = tenths
            .iter()
            .map(|&(docs, took, batches)| {
                let rate = docs as f64 / took.as_secs_f64().max(1e-9);
                format!("{:.0}k/{}", rate / 1e3, batches)
            })
            .collect();
        println!(
            "{label}: docs/s by tenth of the table (rate/batches): {}",
            rates.join(" ")
        );
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn write_latencies<B: Backend>(
    store: &Store<B>,
    n: usize,
    stop: Option<&AtomicBool>,
) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            break;
        }
        let id = format!("doc{:08}", (i * 7919) % 1000);
        let rev = store.rev("todo", &id)?;
        let t = Instant::now();
        store.put(
            "todo",
            &id,
            1,
            &json!({"title": format!("w{i}"), "done": true}),
            rev.as_ref(),
        )?;
        out.push(t.elapsed());
    }
    out.sort();
    Ok(out)
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let docs: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    println!("== redb");
    run(&RedbOpener(dir.path().to_owned()), docs)?;
    if let Some(url) = args.next() {
        println!("== postgres");
        run(&PgOpener(url), docs)?;
    }
    Ok(())
}

fn run<O: Opener>(opener: &O, docs: usize) -> Result<()>
where
    Store<O::B>: Sync,
{
    let batch = MigrationOptions::default();
    println!("documents: {docs}, batch: {}", batch.batch_size);

    // 1. Migration throughput against a plain copy. Each runs on a freshly seeded store of its
    //    own (on PostgreSQL the second is a copy of the first in SQL), the migration first,
    //    so neither inherits the other's file growth.
    let store = opener.open("a", todo_set(1, "eager")?)?;
    seed(&store, 1, docs)?;
    let copy_store = opener.open("c", todo_set(1, "eager")?)?;
    if !opener.copy_store("a", "c")? {
        seed(&copy_store, 1, docs)?;
    }
    // Both sides run on a settled table (statistics, and on PostgreSQL the hint bits a first
    // read of freshly loaded rows would otherwise write): a steady-state database.
    opener.settle("a")?;
    let t = Instant::now();
    store.start_migration("todo", 3, batch)?;
    let setup = t.elapsed();
    let mut migrate_batches = BatchLog::default();
    let mut mark = (Instant::now(), 0u64);
    store.run_migration("todo", |p| {
        let now = Instant::now();
        migrate_batches.push(p.done - mark.1, now - mark.0);
        mark = (now, p.done);
    })?;
    let migrate = t.elapsed();
    drop(store);

    let store = copy_store;
    opener.settle("c")?;
    let primary = store.state("todo")?.primary;
    let t = Instant::now();
    let mut after: Option<String> = None;
    let mut copy_batches = BatchLog::default();
    loop {
        let started = Instant::now();
        let n = store.backend().write(|txn| {
            let records = txn.scan("todo", primary, after.as_deref(), batch.batch_size as usize)?;
            let puts: Vec<(&str, &mutatis_store::Record)> =
                records.iter().map(|(id, r)| (id.as_str(), r)).collect();
            txn.put_many("todo", 9999, &puts)?;
            Ok::<_, StoreError>((records.len(), records.last().map(|(id, _)| id.clone())))
        })?;
        copy_batches.push(n.0 as u64, started.elapsed());
        after = n.1;
        if n.0 < batch.batch_size as usize {
            break;
        }
    }
    let copy = t.elapsed();
    let copy_rate = docs as f64 / copy.as_secs_f64();
    let migrate_rate = docs as f64 / migrate.as_secs_f64();
    println!(
        "migration: {migrate_rate:.0} docs/s, plain copy: {copy_rate:.0} docs/s, ratio {:.2}",
        migrate_rate / copy_rate
    );
    println!(
        "migration setup (statistics, count, checkpoint): {:.0} ms",
        setup.as_secs_f64() * 1e3
    );
    migrate_batches.print("migration");
    copy_batches.print("plain copy");
    drop(store);
    if std::env::var_os("STORE_BENCH_MIGRATION_ONLY").is_some() {
        return Ok(());
    }

    // 2. Write latency while a migration runs, against idle.
    let store = opener.open("b", todo_set(1, "eager")?)?;
    seed(&store, 1, docs)?;
    opener.settle("b")?;
    let idle = write_latencies(&store, 2000, None)?;
    store.start_migration("todo", 3, batch)?;
    let done = AtomicBool::new(false);
    let busy = std::thread::scope(|s| -> Result<Vec<Duration>> {
        let writer =
            s.spawn(|| write_latencies(&store, 2000, Some(&done)).map_err(|e| e.to_string()));
        let result = store.run_migration("todo", |_| {});
        done.store(true, Ordering::Relaxed);
        result?;
        Ok(writer.join().map_err(|_| "writer panicked")??)
    })?;
    println!(
        "write latency idle p50 {:?} p99 {:?}; during migration ({} writes) p50 {:?} p99 {:?}; p99 ratio {:.2}",
        percentile(&idle, 0.5),
        percentile(&idle, 0.99),
        busy.len(),
        percentile(&busy, 0.5),
        percentile(&busy, 0.99),
        percentile(&busy, 0.99).as_secs_f64() / percentile(&idle, 0.99).as_secs_f64().max(1e-9)
    );
    drop(store);

    // 3. Read cost: a v1 read of a document stored at v3, per strategy.
    let reads = docs.min(20_000);
    for strategy in ["eager", "lazy", "multi"] {
        let store = opener.open(&format!("c-{strategy}"), todo_set(3, strategy)?)?;
        seed(&store, 3, reads)?;
        let time = |version: u32| -> Result<f64> {
            let t = Instant::now();
            for i in 0..reads {
                store.get("todo", &format!("doc{i:08}"), version)?;
            }
            Ok(t.elapsed().as_secs_f64() * 1e9 / reads as f64)
        };
        // Warm the cache first, so both measurements read from memory.
        time(3)?;
        let native = time(3)?;
        let old = time(1)?;
        let space = store.space_report("todo")?;
        println!(
            "{strategy:>5}: read v3 (stored) {native:.0} ns, read v1 {old:.0} ns, ratio {:.2}; space {} bytes ({} in copies)",
            old / native,
            space.total_bytes(),
            space.copies.values().map(|s| s.bytes).sum::<u64>()
        );
    }
    Ok(())
}
