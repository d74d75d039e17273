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

criterion_group!(benches, translate);
criterion_main!(benches);
