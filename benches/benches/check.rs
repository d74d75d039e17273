//! The speed of `mutatis check --against`: a generated schema set of 200 types × 10 versions
//! checked against the manifest of its previous release (the same types at 9 versions), so
//! that every type has one new version to check for compatibility, field by field.
//!
//! `cargo bench -p mutatis-benches --bench check` prints, for each phase, the fastest and the
//! median of several runs on one thread, in CPU time (Linux; so that other processes on the
//! machine do not inflate it) and wall time: reading the manifest text, loading the deployed set
//! from it (every lens compiled, every schema derived again), loading the local set from its
//! files, and the diff itself. `-- --write DIR` also writes the fixture (`DIR/local/`, a
//! schema-set folder, and `DIR/deployed.json`, the manifest) so that the command line can be
//! timed on it: `time mutatis check DIR/local --against DIR/deployed.json`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mutatis_schema::deploy::{self, Policy};
use mutatis_schema::SchemaSet;
use serde_json::{json, Value};

const TYPES: usize = 200;
const VERSIONS: usize = 10;
const RUNS: usize = 7;

/// The lens that reaches version `v` (2..=10), the same for every type.
fn lens(v: usize) -> Value {
    match v {
        2 => json!([{"add": {"name": "note", "type": "string", "default": ""}}]),
        3 => json!([{"rename": {"source": "title", "destination": "summary"}}]),
        4 => {
            json!([{"convert": {"name": "done", "sourceType": "boolean", "destinationType": "string",
                     "forward": {"true": "done", "false": "open"},
                     "backward": {"done": true, "open": false, "started": false},
                     "backwardDefault": false}}])
        }
        5 => {
            json!([{"in": {"name": "owner", "lens": [{"rename": {"source": "name", "destination": "fullName"}}]}}])
        }
        6 => json!([{"add": {"name": "priority", "type": "integer", "required": false}}]),
        7 => json!([{"remove": {"name": "count", "type": "integer"}}]),
        8 => json!([{"rename": {"source": "summary", "destination": "headline"}}]),
        9 => {
            json!([{"add": {"name": "flag", "type": "boolean", "default": false, "required": false}}])
        }
        _ => {
            json!([{"in": {"name": "owner", "lens": [{"add": {"name": "phone", "type": "string", "required": false}}]}}])
        }
    }
}

/// One type file with `versions` versions (JSON is YAML, so the loader reads it as is).
fn type_file(name: &str, versions: usize) -> String {
    let mut vs = serde_json::Map::new();
    vs.insert(
        "1".into(),
        json!({"schema": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "minLength": 1},
                "title": {"type": "string"},
                "done": {"type": "boolean"},
                "count": {"type": "integer", "minimum": 0},
                "kind": {"enum": ["a", "b", "c"]},
                "owner": {"type": "object",
                          "properties": {"name": {"type": "string"}, "email": {"type": "string", "format": "email"}},
                          "required": ["name"], "additionalProperties": false},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 20}
            },
            "required": ["id", "title", "done"],
            "additionalProperties": false
        }}),
    );
    for v in 2..=versions {
        vs.insert(v.to_string(), json!({"lens": lens(v)}));
    }
    json!({"type": name, "versions": vs}).to_string()
}

fn settings(versions: usize) -> String {
    let releases: Vec<Value> = (1..=versions)
        .map(|r| {
            let types: serde_json::Map<String, Value> =
                (0..TYPES).map(|t| (format!("t{t:03}"), json!(r))).collect();
            let status = if r == versions {
                "current"
            } else if r + 1 == versions {
                "supported"
            } else {
                "deprecated"
            };
            json!({"name": r.to_string(), "types": types, "status": status})
        })
        .collect();
    json!({"name": "bench-app", "releases": releases}).to_string()
}

/// The files of the generated schema set at `versions` versions per type.
fn sources(versions: usize) -> Vec<(PathBuf, String)> {
    let mut files = vec![(PathBuf::from("mutatis.yaml"), settings(versions))];
    for t in 0..TYPES {
        let name = format!("t{t:03}");
        files.push((
            PathBuf::from(format!("types/{name}.yaml")),
            type_file(&name, versions),
        ));
    }
    files
}

fn write_fixture(dir: &Path, local: &[(PathBuf, String)], manifest: &str) {
    let root = dir.join("local");
    for (path, text) in local {
        let p = root.join(path);
        if let Some(parent) = p.parent() {
            if let Err(e) = std::fs::create_dir_all(parent) {
                panic!("cannot create {}: {e}", parent.display());
            }
        }
        if let Err(e) = std::fs::write(&p, text) {
            panic!("cannot write {}: {e}", p.display());
        }
    }
    let m = dir.join("deployed.json");
    if let Err(e) = std::fs::write(&m, manifest) {
        panic!("cannot write {}: {e}", m.display());
    }
    println!("fixture written: {} and {}", root.display(), m.display());
}

/// The CPU time this thread has run, from Linux's `/proc/thread-self/schedstat` (nanoseconds
/// on a CPU): unlike the wall clock it does not count time spent waiting for a core that other
/// processes hold, so the figure is the one-core cost even on a busy machine. `None` elsewhere.
fn cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// (wall, CPU) per run.
fn time<T>(f: impl Fn() -> T) -> Vec<(Duration, Option<Duration>)> {
    (0..RUNS)
        .map(|_| {
            let cpu = cpu_time();
            let start = Instant::now();
            let out = black_box(f());
            let wall = start.elapsed();
            let cpu = match (cpu, cpu_time()) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                _ => None,
            };
            // Freeing the result is not part of the check (the command line never frees
            // its schema sets: the process ends).
            drop(out);
            (wall, cpu)
        })
        .collect()
}

/// Print the fastest and median wall and CPU times; return the median CPU time (the wall
/// time where CPU time is not available).
fn report(label: &str, runs: Vec<(Duration, Option<Duration>)>) -> Duration {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut wall: Vec<Duration> = runs.iter().map(|r| r.0).collect();
    wall.sort();
    let mut cpu: Vec<Duration> = runs.iter().filter_map(|r| r.1).collect();
    cpu.sort();
    let (wmin, wmed) = (wall[0], wall[wall.len() / 2]);
    match (cpu.first(), cpu.get(cpu.len() / 2)) {
        (Some(&cmin), Some(&cmed)) => {
            println!(
                "{label:<40} cpu min {:>7.1} ms  median {:>7.1} ms   (wall min {:>7.1} ms  median {:>7.1} ms)",
                ms(cmin),
                ms(cmed),
                ms(wmin),
                ms(wmed)
            );
            cmed
        }
        _ => {
            println!(
                "{label:<40} wall min {:>7.1} ms  median {:>7.1} ms",
                ms(wmin),
                ms(wmed)
            );
            wmed
        }
    }
}

fn main() {
    let write_to = std::env::args()
        .skip_while(|a| a != "--write")
        .nth(1)
        .map(PathBuf::from);
    let local_files = sources(VERSIONS);
    let deployed_files = sources(VERSIONS - 1);
    let deployed = match SchemaSet::from_sources(deployed_files) {
        Ok(s) => s,
        Err(e) => panic!("the deployed fixture does not load: {e}"),
    };
    let manifest_text = deployed.manifest().to_string();
    if let Some(dir) = &write_to {
        write_fixture(dir, &local_files, &manifest_text);
    }
    println!(
        "check: {TYPES} types x {VERSIONS} versions against a manifest of {TYPES} x {} ({} KiB), {RUNS} runs",
        VERSIONS - 1,
        manifest_text.len() / 1024
    );
    let policy = Policy::default();
    let parse = report(
        "parse the manifest JSON",
        time(|| serde_json::from_str::<Value>(&manifest_text)),
    );
    let manifest: Value = match serde_json::from_str(&manifest_text) {
        Ok(v) => v,
        Err(e) => panic!("the manifest does not parse: {e}"),
    };
    let load_deployed = report(
        "load the deployed set from it",
        time(|| SchemaSet::from_manifest(&manifest)),
    );
    let load_local = report(
        "load the local set from its files",
        time(|| SchemaSet::from_sources(local_files.clone())),
    );
    let (local, deployed) = match (
        SchemaSet::from_sources(local_files.clone()),
        SchemaSet::from_manifest(&manifest),
    ) {
        (Ok(l), Ok(d)) => (l, d),
        (Err(e), _) | (_, Err(e)) => panic!("the fixture does not load: {e}"),
    };
    let diff = match deploy::diff(&local, &deployed, &policy) {
        Ok(d) => d,
        Err(e) => panic!("the diff fails: {e}"),
    };
    let checks: usize = diff.types.iter().map(|t| t.checks.len()).sum();
    let the_diff = report(
        &format!("diff ({checks} compatibility checks)"),
        time(|| deploy::diff(&local, &deployed, &policy)),
    );
    let total = parse + load_deployed + load_local + the_diff;
    println!(
        "{:<40} {:>8.1} ms (sum of the medians, CPU time where available; the budget is 1000 ms)",
        "total",
        total.as_secs_f64() * 1e3
    );
}
