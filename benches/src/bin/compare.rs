//! `compare`: every figure of BENCHMARKS.md measured side by side in one run, on one thread.
//!
//! ```text
//! cargo run --release -p mutatis-benches --bin compare [-- --docs N --rounds R]
//! ```
//!
//! Each variant translates the whole fixture once per round. Within a round the variants take
//! turns chunk by chunk (1,000 documents each), so machine noise (frequency changes, a
//! neighbour's build) spreads over all of them instead of landing on one. The table reports
//! each variant's median round and the spread of its rounds. A separate pass with a counting
//! global allocator measures memory per document.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use mutatis_benches::{documents, lenses, op_count, plan_from_v1, total_bytes, DOCS, SEED};
use mutatis_lens::{Params, Plan};
use serde::de::IgnoredAny;
use serde_json::Value;

/// The system allocator, counting while `COUNTING` is set. When it is not, the only cost is
/// one relaxed load per call, the same for every variant.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

fn grow(by: u64) {
    ALLOCS.fetch_add(1, Relaxed);
    BYTES.fetch_add(by, Relaxed);
    let live = LIVE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(live, Relaxed);
}

fn shrink(by: u64) {
    // Blocks allocated before counting started may be freed while it runs: saturate.
    let _ = LIVE.fetch_update(Relaxed, Relaxed, |l| Some(l.saturating_sub(by)));
}

// SAFETY: every call is forwarded unchanged to `System`; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            grow(layout.size() as u64);
        }
        // SAFETY: the caller upholds `alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Relaxed) {
            shrink(layout.size() as u64);
        }
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            shrink(layout.size() as u64);
            grow(new_size as u64);
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Documents per interleaving chunk: large enough that timer reads cost nothing, small
/// enough (about 350 kB) that noise bursts spread over all variants.
const CHUNK: usize = 1_000;

/// One way of turning an input document into output bytes.
type Run<'a> = Box<dyn Fn(&[u8], &mut Vec<u8>) -> bool + 'a>;

struct Variant<'a> {
    name: String,
    ops: String,
    run: Run<'a>,
    /// Each round's total time.
    rounds: Vec<Duration>,
    /// Per chunk, its fastest time over the rounds.
    best: Vec<Duration>,
    alloc_bytes: f64,
    allocs: f64,
    peak: u64,
}

struct Options {
    docs: usize,
    rounds: usize,
    /// Time only the variants whose name contains this (for profiling one of them).
    only: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        docs: DOCS,
        rounds: 9,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> Result<usize, String> {
            let v = args
                .next()
                .ok_or_else(|| format!("{name} needs a number"))?;
            v.parse()
                .map_err(|e| format!("{name} {v}: {e}"))
                .and_then(|n: usize| {
                    if n == 0 {
                        Err(format!("{name} must be at least 1"))
                    } else {
                        Ok(n)
                    }
                })
        };
        match a.as_str() {
            "--docs" => o.docs = value("--docs")?,
            "--rounds" => o.rounds = value("--rounds")?,
            "--only" => o.only = Some(args.next().ok_or("--only needs a variant name")?),
            other => {
                return Err(format!(
                "unknown argument `{other}`; usage: compare [--docs N] [--rounds R] [--only NAME]"
            ))
            }
        }
    }
    Ok(o)
}

fn median(d: &[Duration]) -> Duration {
    let mut v = d.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let o = options()?;
    let docs = documents(SEED, o.docs);
    let bytes = total_bytes(&docs);
    let lenses = lenses().map_err(|e| format!("the fixture's lenses: {e}"))?;
    let params = Params::new();
    let plan = |to: usize| plan_from_v1(&lenses, to).map_err(|e| format!("v1→v{to}: {e}"));
    let plans: Vec<(usize, Plan)> = [1, 2, 4, 10]
        .into_iter()
        .map(|to| plan(to).map(|p| (to, p)))
        .collect::<Result<_, _>>()?;

    // The raw path must agree with the `Value` path before its speed means anything.
    for (to, p) in plans.iter().filter(|_| o.only.is_none()) {
        for (i, doc) in docs.iter().take(1_000).enumerate() {
            let mut out = Vec::new();
            p.translate_bytes(doc, &params, &mut out)
                .map_err(|e| format!("v1→v{to}, document {i}: {e}"))?;
            let got: Value = serde_json::from_slice(&out)
                .map_err(|e| format!("v1→v{to}, document {i}: output is not JSON: {e}"))?;
            let parsed: Value = serde_json::from_slice(doc).map_err(|e| e.to_string())?;
            let want = p
                .translate(&parsed, &params)
                .map_err(|e| format!("v1→v{to}, document {i}: {e}"))?;
            if got != want {
                return Err(format!(
                    "v1→v{to}, document {i}: translate_bytes gave {got}, translate gave {want}"
                ));
            }
        }
    }

    let mut variants: Vec<Variant<'_>> = vec![
        Variant {
            name: "ceiling: serde_json validate only (IgnoredAny)".into(),
            ops: "-".into(),
            run: Box::new(|d, _| serde_json::from_slice::<IgnoredAny>(d).is_ok()),
            rounds: Vec::new(),
            best: Vec::new(),
            alloc_bytes: 0.0,
            allocs: 0.0,
            peak: 0,
        },
        Variant {
            name: "floor: serde_json Value parse + serialize".into(),
            ops: "-".into(),
            run: Box::new(|d, out| match serde_json::from_slice::<Value>(d) {
                Ok(v) => serde_json::to_writer(out, &v).is_ok(),
                Err(_) => false,
            }),
            rounds: Vec::new(),
            best: Vec::new(),
            alloc_bytes: 0.0,
            allocs: 0.0,
            peak: 0,
        },
    ];
    for (to, p) in &plans {
        let params = &params;
        variants.push(Variant {
            name: if *to == 1 {
                "mutatis identity v1→v1 (Plan::identity)".into()
            } else {
                format!("mutatis v1→v{to} translate_bytes")
            },
            ops: op_count(&lenses, *to).to_string(),
            run: Box::new(move |d, out| p.translate_bytes(d, params, out).is_ok()),
            rounds: Vec::new(),
            best: Vec::new(),
            alloc_bytes: 0.0,
            allocs: 0.0,
            peak: 0,
        });
    }

    // What a request body, a patch and a translation that reads the whole object (a CEL
    // `convert`) cost: mutatis's exact reader, which refuses the numbers serde_json would
    // round, against the floor's plain serde_json parse.
    variants.push(Variant {
        name: "exact reader: mutatis_lens::json Value parse + serialize".into(),
        ops: "-".into(),
        run: Box::new(|d, out| match mutatis_lens::json::from_slice(d) {
            Ok(v) => serde_json::to_writer(out, &v).is_ok(),
            Err(_) => false,
        }),
        rounds: Vec::new(),
        best: Vec::new(),
        alloc_bytes: 0.0,
        allocs: 0.0,
        peak: 0,
    });

    if let Some(only) = &o.only {
        variants.retain(|v| v.name.contains(only.as_str()));
        let mut out = Vec::with_capacity(4096);
        for v in &variants {
            for _ in 0..o.rounds {
                for d in &docs {
                    out.clear();
                    black_box((v.run)(d, &mut out));
                }
            }
            println!("ran {} × {} documents of {}", o.rounds, docs.len(), v.name);
        }
        return Ok(());
    }
    let mut out = Vec::with_capacity(4096);
    // Warm-up: page in the fixture and the code, and size `out` once.
    for v in &variants {
        for d in &docs {
            out.clear();
            black_box((v.run)(d, &mut out));
        }
    }
    // Each round walks the fixture in chunks and runs every variant over each chunk, starting
    // with a different variant each time: a burst of noise (another process, a frequency
    // change) then lands on all variants alike, and each chunk is equally warm for each.
    let n = variants.len();
    for _ in 0..o.rounds {
        let mut spent = vec![Duration::ZERO; n];
        let mut ok = vec![0usize; n];
        for (c, chunk) in docs.chunks(CHUNK).enumerate() {
            for k in 0..n {
                let i = (c + k) % n;
                let run = &variants[i].run;
                let start = Instant::now();
                for d in chunk {
                    out.clear();
                    ok[i] += usize::from(run(black_box(d), &mut out));
                    black_box(&out);
                }
                let t = start.elapsed();
                spent[i] += t;
                let best = &mut variants[i].best;
                match best.get_mut(c) {
                    Some(b) => *b = (*b).min(t),
                    None => best.push(t),
                }
            }
        }
        for ((v, t), ok) in variants.iter_mut().zip(spent).zip(ok) {
            if ok != docs.len() {
                return Err(format!(
                    "{}: {} of {} documents failed",
                    v.name,
                    docs.len() - ok,
                    docs.len()
                ));
            }
            v.rounds.push(t);
        }
    }
    // Memory: counted in a pass of its own so that counting costs no timed round anything.
    for v in variants.iter_mut() {
        let mut peak = 0;
        ALLOCS.store(0, Relaxed);
        BYTES.store(0, Relaxed);
        COUNTING.store(true, Relaxed);
        for d in &docs {
            out.clear();
            let before = LIVE.load(Relaxed);
            PEAK.store(before, Relaxed);
            black_box((v.run)(d, &mut out));
            peak = peak.max(PEAK.load(Relaxed) - before);
        }
        COUNTING.store(false, Relaxed);
        v.allocs = ALLOCS.load(Relaxed) as f64 / docs.len() as f64;
        v.alloc_bytes = BYTES.load(Relaxed) as f64 / docs.len() as f64;
        v.peak = peak;
    }

    // The headline figure sums each chunk's fastest round: time lost to other processes only
    // ever adds, so the fastest of several tries is the closest to the code's own cost on a
    // shared machine. The median round is shown beside it.
    let best: Vec<Duration> = variants.iter().map(|v| v.best.iter().sum()).collect();
    let med: Vec<Duration> = variants.iter().map(|v| median(&v.rounds)).collect();
    let (ceiling, floor) = (best[0], best[1]);
    let n = docs.len() as f64;
    println!(
        "fixture: {} documents, {} bytes ({:.0} B/doc), seed {SEED:#x}; {} rounds; \
         headline: each {CHUNK}-document chunk's fastest round, summed",
        docs.len(),
        bytes,
        bytes as f64 / n,
        o.rounds
    );
    println!();
    println!(
        "| variant | ops | docs/s | MB/s | ns/doc | median round ns/doc (spread) | speed vs floor | time vs ceiling | alloc B/doc | allocs/doc | peak B/doc |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for ((v, b), m) in variants.iter().zip(&best).zip(&med) {
        let secs = b.as_secs_f64();
        let lo = v.rounds.iter().min().copied().unwrap_or_default();
        let hi = v.rounds.iter().max().copied().unwrap_or_default();
        let spread = (hi.as_secs_f64() - lo.as_secs_f64()) / m.as_secs_f64() * 100.0;
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} (±{:.1}%) | {:.2}× | {:.2}× | {:.0} | {:.2} | {} |",
            v.name,
            v.ops,
            n / secs,
            bytes as f64 / secs / 1e6,
            secs / n * 1e9,
            m.as_secs_f64() / n * 1e9,
            spread / 2.0,
            floor.as_secs_f64() / secs,
            secs / ceiling.as_secs_f64(),
            v.alloc_bytes,
            v.allocs,
            v.peak
        );
    }
    let time = |i: usize| best[i].as_secs_f64();
    let mtime = |i: usize| med[i].as_secs_f64();
    // Variant indices: 0 ceiling, 1 floor, 2 identity, 3 v1→v2, 4 v1→v4, 5 v1→v10, 6 the
    // exact reader.
    // (what, measured on the headline figures, on the median rounds, bound, at most?)
    let targets = [
        (
            "v1→v4 speed vs the naive floor",
            time(1) / time(4),
            mtime(1) / mtime(4),
            2.0,
            false,
        ),
        (
            "v1→v10 speed vs the naive floor",
            time(1) / time(5),
            mtime(1) / mtime(5),
            2.0,
            false,
        ),
        (
            "v1→v10 time / v1→v2 time",
            time(5) / time(3),
            mtime(5) / mtime(3),
            1.5,
            true,
        ),
        (
            "identity time / validate-only ceiling",
            time(2) / time(0),
            mtime(2) / mtime(0),
            1.1,
            true,
        ),
    ];
    println!();
    println!("| target | measured | on median rounds | required | |");
    println!("|---|--:|--:|--:|---|");
    for (what, got, on_median, bound, at_most) in targets {
        let ok = if at_most { got <= bound } else { got >= bound };
        println!(
            "| {what} | {got:.2} | {on_median:.2} | {} {bound:.2} | {} |",
            if at_most { "≤" } else { "≥" },
            if ok { "met" } else { "MISSED" }
        );
    }
    Ok(())
}
