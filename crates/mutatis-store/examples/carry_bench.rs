//! The cost of carrying: writes and reads in a version above the storage version, whose
//! documents the storage version cannot hold whole (they carry their body beside the stored
//! one), against the same at the storage version, side by side in one run.
//!
//! The schema set is `examples/students` plus `Student@6` (an email address), stored at
//! `Student@5`. Half the documents are written at version 5, the other half at version 6 with
//! an email, so every version-6 write carries. Rounds interleave the scenarios (each round
//! starts with the next one); the figures are each scenario's median round: wall time per
//! operation (what a caller waits, a durable redb commit included) and CPU time per operation
//! of the calling thread (the store's own work: translation, carrying, encoding).
//!
//! `cargo run --release -p mutatis-store --example carry_bench -- [DOCS [ROUNDS]]`
//! (defaults 2000 documents, 7 rounds).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mutatis_lens::Params;
use mutatis_schema::SchemaSet;
use mutatis_store::{Backend, RedbBackend, RedbOptions, Rev, Store};
use serde_json::{json, Value};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn set() -> Result<Arc<SchemaSet>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/students");
    let mut student = std::fs::read_to_string(root.join("types/Student.yaml"))?;
    student.push_str("  6:\n    lens:\n      - add: {name: email, type: string, default: \"\"}\n");
    let settings = "name: carry-bench
releases:
  - {name: \"5\", types: {Student: 5}, status: supported}
  - {name: \"6\", types: {Student: 6}, status: current}
storage:
  Student: {version: 5, strategy: eager}
";
    Ok(Arc::new(SchemaSet::from_sources(vec![
        (PathBuf::from("mutatis.yaml"), settings.to_owned()),
        (PathBuf::from("types/Student.yaml"), student),
    ])?))
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    // utime + stime in clock ticks (fields 14 and 15 of /proc/thread-self/stat).
    let text = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the ")": state is field 0, so utime (14th overall) is 11 and stime 12.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Put,
    Get,
}

struct Scenario {
    name: &'static str,
    op: Op,
    version: u32,
    /// Documents `d{first}..d{first + n}`.
    first: usize,
}

fn body(i: usize, version: u32, variant: usize) -> Value {
    let first = ["Ada", "Mary Ann", "Jo", "Lee Anne"][i % 4];
    let year = 1990 + (i % 20) as i64 + variant as i64;
    let mut b = json!({"firstName": first, "lastName": format!("L{i}"), "yearOfBirth": year});
    if version == 6 {
        b["email"] = json!(format!("s{i}.{variant}@school.example"));
    }
    b
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let docs: usize = args.first().map_or(Ok(2000), |s| s.parse())?;
    let rounds: usize = args.get(1).map_or(Ok(7), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let mut params = Params::new();
    params.insert("referenceYear".into(), json!(2026));
    let store = Store::new(
        RedbBackend::open(dir.path().join("carry.redb"), RedbOptions::default())?,
        set()?,
    )
    .with_params(params);
    let half = docs / 2;
    let mut revs: Vec<Rev> = Vec::with_capacity(docs);
    for i in 0..docs {
        let version = if i < half { 5 } else { 6 };
        revs.push(
            store
                .put(
                    "Student",
                    &format!("d{i}"),
                    version,
                    &body(i, version, 0),
                    None,
                )?
                .rev,
        );
    }
    let carried = (half..docs)
        .filter(|i| {
            store
                .backend()
                .read(|t| t.get("Student", 0, &format!("d{i}")))
                .ok()
                .flatten()
                .is_some_and(|r| !r.carry.is_empty())
        })
        .count();
    assert_eq!(carried, docs - half, "every version-6 document carries");
    let scenarios = [
        Scenario {
            name: "PUT at the storage version (Student@5)",
            op: Op::Put,
            version: 5,
            first: 0,
        },
        Scenario {
            name: "PUT above it, carried (Student@6)",
            op: Op::Put,
            version: 6,
            first: half,
        },
        Scenario {
            name: "GET at the storage version (Student@5)",
            op: Op::Get,
            version: 5,
            first: 0,
        },
        Scenario {
            name: "GET above it, carried (Student@6)",
            op: Op::Get,
            version: 6,
            first: half,
        },
        Scenario {
            name: "GET above it, not carried (Student@6 of a @5 write)",
            op: Op::Get,
            version: 6,
            first: 0,
        },
    ];
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); scenarios.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); scenarios.len()];
    let mut variant = 0;
    for round in 0..rounds {
        for k in 0..scenarios.len() {
            let s = &scenarios[(round + k) % scenarios.len()];
            let idx = (round + k) % scenarios.len();
            variant += 1;
            let (w0, c0) = (Instant::now(), thread_cpu());
            for (i, rev) in revs.iter_mut().enumerate().skip(s.first).take(half) {
                let id = format!("d{i}");
                match s.op {
                    Op::Put => {
                        let b = body(i, s.version, variant);
                        *rev = store.put("Student", &id, s.version, &b, Some(rev))?.rev;
                    }
                    Op::Get => {
                        std::hint::black_box(store.get("Student", &id, s.version)?);
                    }
                }
            }
            let n = half as f64;
            wall[idx].push(w0.elapsed().as_secs_f64() * 1e6 / n);
            cpu[idx].push(thread_cpu().saturating_sub(c0).as_secs_f64() * 1e6 / n);
        }
    }
    // Each written version still reads back exactly.
    for i in [0, half] {
        let version = if i < half { 5 } else { 6 };
        let got = store
            .get("Student", &format!("d{i}"), version)?
            .map(|d| d.body);
        assert!(got.is_some_and(|g| g["lastName"] == format!("L{i}")));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let m: Vec<(f64, f64)> = (0..scenarios.len())
        .map(|k| (median(&mut wall[k]), median(&mut cpu[k])))
        .collect();
    println!("{docs} documents ({half} per group, every Student@6 one carried), {rounds} rounds, redb, release build\n");
    println!("| scenario | wall µs/op | thread CPU µs/op |");
    println!("|---|--:|--:|");
    for (s, (w, c)) in scenarios.iter().zip(&m) {
        println!("| {} | {w:.1} | {c:.1} |", s.name);
    }
    println!();
    println!("| ratio | wall | CPU |");
    println!("|---|--:|--:|");
    println!(
        "| PUT carried / PUT at storage | {:.2} | {:.2} |",
        m[1].0 / m[0].0,
        m[1].1 / m[0].1
    );
    println!(
        "| GET carried / GET at storage | {:.2} | {:.2} |",
        m[3].0 / m[2].0,
        m[3].1 / m[2].1
    );
    println!(
        "| GET above, not carried / GET at storage | {:.2} | {:.2} |",
        m[4].0 / m[2].0,
        m[4].1 / m[2].1
    );
    Ok(())
}
