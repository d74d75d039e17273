//! Criterion benches of the translation hot path, over the seeded fixture of
//! `mutatis_benches`: each iteration translates every document once, so the reported
//! throughput is documents (and bytes) per second on one core.
//!
//! `cargo bench -p mutatis-benches` runs them; `cargo run --release -p mutatis-benches --bin
//! compare` prints the same figures side by side as one table (see BENCHMARKS.md).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mutatis_benches::{documents, lenses, plan_from_v1, total_bytes, SEED};
use mutatis_lens::Params;
use mutatis_schema::SchemaSet;
use serde::de::IgnoredAny;
use serde_json::Value;

/// Fewer documents than `compare` uses, so a criterion sample stays short; the per-document
/// figures do not depend on the count once the batch is well past the cache sizes.
const BENCH_DOCS: usize = 20_000;

fn translate(c: &mut Criterion) {
    let docs = documents(SEED, BENCH_DOCS);
    let lenses = match lenses() {
        Ok(l) => l,
        Err(e) => panic!("the fixture's lenses do not parse: {e}"),
    };
    let params = Params::new();
    let mut group = c.benchmark_group("translate");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(total_bytes(&docs) as u64));

    group.bench_function("ceiling: validate only (IgnoredAny)", |b| {
        b.iter(|| {
            for doc in &docs {
                let _ = black_box(serde_json::from_slice::<IgnoredAny>(doc));
            }
        })
    });
    group.bench_function("floor: Value parse + serialize", |b| {
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            for doc in &docs {
                out.clear();
                if let Ok(v) = serde_json::from_slice::<Value>(doc) {
                    let _ = serde_json::to_writer(&mut out, &v);
                }
                black_box(&out);
            }
        })
    });
    for (name, to) in [
        ("mutatis identity (v1→v1)", 1),
        ("mutatis v1→v2", 2),
        ("mutatis v1→v4", 4),
        ("mutatis v1→v10", 10),
    ] {
        let plan = match plan_from_v1(&lenses, to) {
            Ok(p) => p,
            Err(e) => panic!("v1→v{to} does not compile: {e}"),
        };
        group.bench_function(name, |b| {
            let mut out = Vec::with_capacity(1024);
            b.iter(|| {
                for doc in &docs {
                    out.clear();
                    let _ = black_box(plan.translate_bytes(doc, &params, &mut out));
                }
            })
        });
    }
    // The `Value` API for comparison: what a caller that already holds a parsed document pays.
    let v10 = match plan_from_v1(&lenses, 10) {
        Ok(p) => p,
        Err(e) => panic!("v1→v10 does not compile: {e}"),
    };
    let parsed: Vec<Value> = docs
        .iter()
        .filter_map(|d| serde_json::from_slice(d).ok())
        .collect();
    group.bench_function(
        "mutatis v1→v10 on a parsed Value (translate_in_place)",
        |b| {
            b.iter_batched_ref(
                || parsed.clone(),
                |values| {
                    for v in values.iter_mut() {
                        let _ = black_box(v10.translate_in_place(v, &params));
                    }
                },
                BatchSize::LargeInput,
            )
        },
    );
    group.finish();
}

/// `examples/students`: a `Student@5` document (the storage version) read in release 3's
/// `Student@3`, two lens steps down (`join` of the names, `rename` and a CEL `convert` of the
/// year of birth), as `GET oldest` of the HTTP benchmark does it, beside reading it in
/// `Student@5` (a validated copy) and the `Value` path (parse, translate, serialise).
fn students(c: &mut Criterion) {
    const FIRST: [&str; 6] = ["Ada", "Grace", "Katherine", "Émile", "Zoë", "Alan"];
    const LAST: [&str; 5] = ["Lovelace", "Hopper", "Johnson", "Müller", "Turing"];
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/students");
    let set = match SchemaSet::load(dir) {
        Ok(s) => s,
        Err(e) => panic!("examples/students does not load: {e}"),
    };
    let (down, same) = match (set.plan("Student", 5, 3), set.plan("Student", 5, 5)) {
        (Ok(d), Ok(s)) => (d, s),
        (Err(e), _) | (_, Err(e)) => panic!("no Student plan: {e}"),
    };
    let mut params = Params::new();
    params.insert("referenceYear".into(), Value::from(2026));
    let docs: Vec<Vec<u8>> = (0..BENCH_DOCS)
        .map(|i| {
            let doc = serde_json::json!({
                "firstName": FIRST[i % FIRST.len()],
                "lastName": LAST[(i / FIRST.len()) % LAST.len()],
                "yearOfBirth": 1990 + (i % 20),
            });
            serde_json::to_vec(&doc).unwrap_or_default()
        })
        .collect();
    let mut group = c.benchmark_group("students");
    group.sample_size(20);
    group.throughput(Throughput::Elements(docs.len() as u64));
    group.bench_function("Student@5 read at @5 (validated copy)", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            for doc in &docs {
                out.clear();
                let _ = black_box(same.translate_bytes(doc, &params, &mut out));
            }
        })
    });
    group.bench_function("Student@5 read at @3 (translate_bytes)", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            for doc in &docs {
                out.clear();
                let _ = black_box(down.translate_bytes(doc, &params, &mut out));
            }
        })
    });
    group.bench_function(
        "Student@5 read at @3 (Value: parse, translate, serialise)",
        |b| {
            let mut out = Vec::with_capacity(256);
            b.iter(|| {
                for doc in &docs {
                    out.clear();
                    if let Ok(v) = mutatis_lens::json::from_slice(doc) {
                        if let Ok(t) = down.translate(&v, &params) {
                            let _ = serde_json::to_writer(&mut out, &t);
                        }
                    }
                    black_box(&out);
                }
            })
        },
    );
    group.finish();
}

criterion_group!(benches, translate, students);
criterion_main!(benches);
