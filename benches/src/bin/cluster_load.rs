//! Throughput of `mutatis serve` processes sharing one PostgreSQL store: one process against
//! three, side by side in one run, under the same closed-loop load (a fixed number of
//! keep-alive connections spread round-robin over the processes, each doing two reads in
//! release 3 or 4 for every write in release 5 of `examples/students`).
//!
//! ```text
//! DATABASE_URL=postgres://… target/release/cluster_load [SECONDS] [ROUNDS] [CONNECTIONS]
//! ```
//!
//! Build `target/release/mutatis` first (`cargo build --release -p mutatis`; `MUTATIS=PATH`
//! names another binary). Each round
//! starts the processes on a fresh schema (dropped after), warms up for a second, and
//! counts the requests answered 2xx in SECONDS (default 5); the figures are medians over
//! ROUNDS (default 3), the two configurations alternating.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use mutatis_benches::load::{connect, load_average, median, LoadError, Server};

const TOKEN: &str = "mutatis_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster_load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn arg(n: usize, default: u64) -> Result<u64, LoadError> {
    match std::env::args().nth(n) {
        None => Ok(default),
        Some(a) => a
            .parse()
            .map_err(|_| LoadError::Usage(format!("argument {n}: {a:?} is not a number"))),
    }
}

fn run() -> Result<(), LoadError> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| LoadError::Usage("DATABASE_URL must name the PostgreSQL database".into()))?;
    let seconds = arg(1, 5)?;
    let rounds = arg(2, 3)?;
    let connections = arg(3, 24)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mutatis = std::env::var_os("MUTATIS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/mutatis"));
    let students = root.join("examples/students");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| LoadError::Usage(format!("a runtime: {e}")))?;
    let mut results: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        for (slot, processes) in [1usize, 3].into_iter().enumerate() {
            let schema = format!("bench_cluster_{}_{round}_{processes}", std::process::id());
            let log_dir = tempfile::tempdir().map_err(|e| LoadError::Io {
                what: "a log folder".into(),
                source: e,
            })?;
            let mut servers = Vec::new();
            for p in 0..processes {
                let args = [
                    "serve",
                    students.to_str().unwrap_or_default(),
                    "--postgres",
                    &url,
                    "--pg-schema",
                    &schema,
                    "--listen",
                    "127.0.0.1:0",
                    "--reference-date",
                    "2026-06-01",
                ];
                servers.push(Server::start(
                    "mutatis serve",
                    &mutatis,
                    &args,
                    &[("MUTATIS_ADMIN_TOKEN", TOKEN), ("RUST_LOG", "error")],
                    None,
                    log_dir.path().join(format!("{p}.log")),
                    None,
                )?);
            }
            let addrs: Vec<_> = servers.iter().map(|s| s.addr).collect();
            let rate = runtime
                .block_on(drive(&addrs, connections, Duration::from_secs(seconds)))
                .map_err(|message| LoadError::Http {
                    scenario: format!("{processes} process(es)"),
                    message,
                })?;
            drop(servers);
            drop_schema(&url, &schema);
            eprintln!("round {round}: {processes} process(es): {rate:.0} requests/s");
            results[slot].push(rate);
        }
    }
    let one = median(results[0].iter().copied());
    let three = median(results[1].iter().copied());
    println!("| processes | requests/s (median of {rounds}) | ratio |");
    println!("|---|---|---|");
    println!("| 1 | {one:.0} | 1.00 |");
    println!("| 3 | {three:.0} | {:.2} |", three / one);
    println!();
    println!(
        "{connections} connections, {seconds} s a round, 2 reads : 1 write; load average {}",
        load_average()
    );
    Ok(())
}

/// Drop a round's schema (the store leaves it behind); a failure only leaves it there.
fn drop_schema(url: &str, schema: &str) {
    match postgres::Client::connect(url, postgres::NoTls) {
        Ok(mut c) => {
            if let Err(e) = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")) {
                eprintln!("cluster_load: dropping {schema}: {e}");
            }
        }
        Err(e) => eprintln!("cluster_load: dropping {schema}: {e}"),
    }
}

/// `connections` closed-loop clients over `addrs` (round-robin) for a warm-up second and
/// then `time`; requests answered 2xx per second in `time`.
async fn drive(
    addrs: &[std::net::SocketAddr],
    connections: u64,
    time: Duration,
) -> Result<f64, String> {
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..connections {
        let addr = addrs[usize::try_from(c).unwrap_or(0) % addrs.len()];
        let (counting, stop, done) = (Arc::clone(&counting), Arc::clone(&stop), Arc::clone(&done));
        let mut sender = connect(addr).await?;
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("c{c}-{}", i / 3);
                let (method, release, body) = if i % 3 == 0 {
                    let body = format!(
                        r#"{{"firstName":"Client {c}","lastName":"No {i}","yearOfBirth":1990}}"#
                    );
                    (Method::PUT, "5", Bytes::from(body))
                } else {
                    (
                        Method::GET,
                        ["3", "4"][usize::from(i % 3 == 1)],
                        Bytes::new(),
                    )
                };
                i += 1;
                sender
                    .ready()
                    .await
                    .map_err(|e| format!("connection lost: {e}"))?;
                let request = Request::builder()
                    .method(method)
                    .uri(format!("/docs/Student/{id}"))
                    .header(hyper::header::HOST, addr.to_string())
                    .header(hyper::header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .header("mutatis-release", release)
                    .body(Full::new(body))
                    .map_err(|e| format!("build request: {e}"))?;
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| format!("request failed: {e}"))?;
                let ok = response.status().is_success();
                let status = response.status();
                let _ = response.into_body().collect().await;
                if !ok {
                    return Err(format!("answered {status}"));
                }
                if counting.load(Ordering::Relaxed) {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<(), String>(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    counting.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(time).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64())
}
