//! `service_load`: `examples/students-service` against the same service written with Cadwyn
//! 8.2 (`benches/cadwyn/students_app.py`) and against the same axum handler with no
//! versioning (`students_floor`), side by side on one machine in one run.
//!
//! ```text
//! cargo build --release -p mutatis-benches -p students-service
//! target/release/service_load [--python PATH] [--connections C] [--seconds S] [--rounds R] ...
//! ```
//!
//! All three serve one endpoint, `POST /students`, answering the created student with an id
//! the server makes. students-service and Cadwyn serve releases 3, 4 and 5 (rename + add:
//! `fistAndLastName` split into `firstName` + `lastName`, `age` turned into `yearOfBirth`);
//! each is measured at the newest release (release 5 bodies, no translation) and at the
//! oldest (release 3 bodies, two steps translated up on the way in and down on the way
//! out). The floor takes release 5 bodies only.
//!
//! The method is `http_load`'s (`mutatis_benches::load`): a closed loop of `C` keep-alive
//! connections per scenario, scenarios interleaved round after round, each scenario's median
//! round reported; server CPU from `/proc/PID/stat`; servers pinned to core 0 and this
//! program to core 1. Before timing, every scenario's server is checked to answer each body
//! with exactly that body plus an id, so a broken server cannot post a fast number.
//!
//! Cadwyn runs under `PATH -m uvicorn` (one worker, `--log-level warning`,
//! `--no-access-log`); without `--python`, or if PATH does not exist, its scenarios are
//! skipped with a message.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use serde_json::{json, Value};

use mutatis_benches::load::{
    clock_ticks, connect, cpu_ticks, io_err, load_average, median, percentile, pin_self, LoadError,
    Server,
};

const USAGE: &str = "usage: service_load [--service PATH] [--floor PATH] [--python PATH] \
[--cadwyn-app DIR] [--connections C] [--seconds S] [--warmup S] [--rounds R] \
[--server-cpus LIST|none] [--client-cpus LIST|none] [--only TEXT]";

/// The command line.
struct Options {
    service: PathBuf,
    floor: PathBuf,
    /// The Python with Cadwyn 8.2 and uvicorn installed; `None`: no Cadwyn scenarios.
    python: Option<PathBuf>,
    /// The folder holding `students_app.py`.
    cadwyn_app: PathBuf,
    connections: usize,
    seconds: f64,
    warmup: f64,
    rounds: usize,
    server_cpus: Option<String>,
    client_cpus: Option<String>,
    only: Option<String>,
}

fn options() -> Result<Options, LoadError> {
    let mut o = Options {
        service: PathBuf::from("target/release/students-service"),
        floor: PathBuf::from("target/release/students_floor"),
        python: None,
        cadwyn_app: PathBuf::from("benches/cadwyn"),
        connections: 16,
        seconds: 3.0,
        warmup: 1.0,
        rounds: 5,
        server_cpus: Some("0".into()),
        client_cpus: Some("1".into()),
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| LoadError::Usage(format!("{name} needs a value")))
        };
        let count = |name: &str, v: String| match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(LoadError::Usage(format!(
                "{name} takes a whole number of at least 1, got `{v}`"
            ))),
        };
        let seconds = |name: &str, v: String| match v.parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
            _ => Err(LoadError::Usage(format!(
                "{name} takes a number of seconds, got `{v}`"
            ))),
        };
        let cpus = |v: String| (v != "none" && !v.is_empty()).then_some(v);
        match a.as_str() {
            "--service" => o.service = PathBuf::from(value("--service")?),
            "--floor" => o.floor = PathBuf::from(value("--floor")?),
            "--python" => o.python = Some(PathBuf::from(value("--python")?)),
            "--cadwyn-app" => o.cadwyn_app = PathBuf::from(value("--cadwyn-app")?),
            "--connections" => o.connections = count("--connections", value("--connections")?)?,
            "--rounds" => o.rounds = count("--rounds", value("--rounds")?)?,
            "--seconds" => o.seconds = seconds("--seconds", value("--seconds")?)?,
            "--warmup" => o.warmup = seconds("--warmup", value("--warmup")?)?,
            "--server-cpus" => o.server_cpus = cpus(value("--server-cpus")?),
            "--client-cpus" => o.client_cpus = cpus(value("--client-cpus")?),
            "--only" => o.only = Some(value("--only")?),
            other => return Err(LoadError::Usage(format!("unknown argument `{other}`"))),
        }
    }
    if o.seconds <= 0.0 {
        return Err(LoadError::Usage("--seconds must be more than 0".into()));
    }
    Ok(o)
}

/// The current UTC year: the reference year both versioned services convert `age` with.
fn current_year() -> i64 {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
        / 86_400;
    // Civil year from days since 1970 (Howard Hinnant's algorithm, year part only).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(month <= 2)
}

const FIRST: [&str; 8] = [
    "Ada", "Zoë", "Kwame", "Ingrid", "Rafael", "Mei", "Olusegun", "Léa",
];
const LAST: [&str; 8] = [
    "Lovelace",
    "Müller",
    "Mensah",
    "Johansson",
    "Nadal",
    "Wang",
    "Obasanjo",
    "Dubois",
];

/// The request bodies, each with the answer it must get (less the id).
struct Bodies {
    /// Release 5 (Student@5).
    newest: Vec<(Bytes, Value)>,
    /// Release 3 (Student@3).
    oldest: Vec<(Bytes, Value)>,
}

fn bodies(reference_year: i64) -> Bodies {
    let mut newest = Vec::new();
    let mut oldest = Vec::new();
    for i in 0..64usize {
        let (first, last) = (FIRST[i % 8], LAST[(i / 8) % 8]);
        let year = 1980 + (i as i64 % 25);
        let new = json!({"firstName": first, "lastName": last, "yearOfBirth": year});
        let old =
            json!({"fistAndLastName": format!("{first} {last}"), "age": reference_year - year});
        let enc = |v: &Value| Bytes::from(v.to_string());
        newest.push((enc(&new), new));
        oldest.push((enc(&old), old));
    }
    Bodies { newest, oldest }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Service,
    Cadwyn,
    Floor,
}

/// One measured request mix.
#[derive(Clone)]
struct Scenario {
    name: &'static str,
    target: Target,
    /// The version header and its value (`None` on the floor).
    header: Option<(&'static str, &'static str)>,
    oldest: bool,
}

fn all_scenarios() -> Vec<Scenario> {
    let s = |name, target, header, oldest| Scenario {
        name,
        target,
        header,
        oldest,
    };
    vec![
        s(
            "students-service newest (release 5)",
            Target::Service,
            Some(("mutatis-release", "5")),
            false,
        ),
        s(
            "students-service oldest (release 3)",
            Target::Service,
            Some(("mutatis-release", "3")),
            true,
        ),
        s(
            "Cadwyn newest (version 5)",
            Target::Cadwyn,
            Some(("x-api-version", "5")),
            false,
        ),
        s(
            "Cadwyn oldest (version 3)",
            Target::Cadwyn,
            Some(("x-api-version", "3")),
            true,
        ),
        s("floor (axum, no versioning)", Target::Floor, None, false),
    ]
}

async fn post(
    sender: &mut SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    header: Option<(&str, &str)>,
    body: Bytes,
) -> Result<(StatusCode, Bytes), String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection lost: {e}"))?;
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/students")
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::ACCEPT, "application/json")
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| format!("build request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("read response body: {e}"))?
        .to_bytes();
    Ok((status, body))
}

/// Is `answer` exactly `sent` plus a string `id`?
fn check_answer(status: StatusCode, answer: &[u8], sent: &Value) -> Result<(), String> {
    let text = String::from_utf8_lossy(answer);
    if status != StatusCode::CREATED {
        return Err(format!("expected 201, got {status} {text}"));
    }
    let mut got: Value =
        serde_json::from_slice(answer).map_err(|e| format!("not JSON ({e}): {text}"))?;
    let id = got.as_object_mut().and_then(|o| o.remove("id"));
    if !id.as_ref().is_some_and(Value::is_string) {
        return Err(format!("no string `id` in {text}"));
    }
    if &got != sent {
        return Err(format!("sent {sent}, got {text}"));
    }
    Ok(())
}

/// One connection's results.
#[derive(Default)]
struct Tally {
    latencies_ns: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

async fn drive(
    addr: SocketAddr,
    mut sender: SendRequest<Full<Bytes>>,
    scenario: Scenario,
    bodies: Arc<Bodies>,
    start_at: usize,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let set = if scenario.oldest {
        &bodies.oldest
    } else {
        &bodies.newest
    };
    let mut k = start_at;
    while Instant::now() < deadline {
        let body = set[k % set.len()].0.clone();
        k += 1;
        let start = Instant::now();
        let result = post(&mut sender, addr, scenario.header, body).await;
        tally
            .latencies_ns
            .push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
        let problem = match result {
            Ok((StatusCode::CREATED, _)) => continue,
            Ok((status, body)) => format!("{status} {}", String::from_utf8_lossy(&body)),
            Err(e) => {
                // The connection may be gone: open a new one rather than fail every request.
                match connect(addr).await {
                    Ok(s) => sender = s,
                    Err(c) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert(format!("{e}; {c}"));
                        break;
                    }
                }
                e
            }
        };
        tally.errors += 1;
        tally.first_error.get_or_insert(problem);
    }
    tally
}

/// One scenario run.
struct Sample {
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    server_cpu_us: f64,
}

/// A running server and its pid.
struct Running {
    server: Server,
    pid: String,
}

async fn run_scenario(
    scenario: &Scenario,
    running: &Running,
    bodies: &Arc<Bodies>,
    connections: usize,
    seconds: f64,
    ticks_per_second: f64,
) -> Result<Sample, LoadError> {
    let http = |message: String| LoadError::Http {
        scenario: scenario.name.to_owned(),
        message,
    };
    let addr = running.server.addr;
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        senders.push(connect(addr).await.map_err(http)?);
    }
    let before = cpu_ticks(&running.pid)?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(c, sender)| {
            tokio::spawn(drive(
                addr,
                sender,
                scenario.clone(),
                Arc::clone(bodies),
                c * 7,
                deadline,
            ))
        })
        .collect();
    let mut latencies = Vec::new();
    let (mut errors, mut first_error) = (0, None);
    for task in tasks {
        let tally = task
            .await
            .map_err(|e| http(format!("a connection task failed: {e}")))?;
        latencies.extend(tally.latencies_ns);
        errors += tally.errors;
        if first_error.is_none() {
            first_error = tally.first_error;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(&running.pid)?.saturating_sub(before)) as f64 / ticks_per_second;
    latencies.sort_unstable();
    let requests = latencies.len() as u64;
    Ok(Sample {
        requests,
        errors,
        first_error,
        seconds: elapsed,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        server_cpu_us: cpu * 1e6 / requests.max(1) as f64,
    })
}

/// Before timing: every body of a scenario gets exactly itself back plus an id.
async fn check(scenario: &Scenario, running: &Running, bodies: &Bodies) -> Result<(), LoadError> {
    let http = |message: String| LoadError::Http {
        scenario: format!("checking {}", scenario.name),
        message,
    };
    let addr = running.server.addr;
    let mut sender = connect(addr).await.map_err(http)?;
    let set = if scenario.oldest {
        &bodies.oldest
    } else {
        &bodies.newest
    };
    for (body, sent) in set {
        let (status, answer) = post(&mut sender, addr, scenario.header, body.clone())
            .await
            .map_err(http)?;
        check_answer(status, &answer, sent).map_err(http)?;
    }
    Ok(())
}

/// A free local port for uvicorn, which is told its port rather than printing it.
fn free_port() -> Result<SocketAddr, LoadError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(io_err("find a free port"))?;
    listener.local_addr().map_err(io_err("find a free port"))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("service_load: {e}");
            if matches!(e, LoadError::Usage(_)) {
                eprintln!("{USAGE}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), LoadError> {
    let o = options()?;
    if let Some(cpus) = &o.client_cpus {
        pin_self(cpus)?;
    }
    let mut scenarios = all_scenarios();
    scenarios.retain(|s| o.only.as_deref().is_none_or(|only| s.name.contains(only)));
    let python = match &o.python {
        Some(p) if p.is_file() => Some(p.clone()),
        Some(p) => {
            eprintln!(
                "service_load: {} does not exist: Cadwyn skipped (create the venv as BENCHMARKS.md says)",
                p.display()
            );
            None
        }
        None => {
            eprintln!(
                "service_load: no --python given: Cadwyn skipped (pass the venv's python, see BENCHMARKS.md)"
            );
            None
        }
    };
    if python.is_none() {
        scenarios.retain(|s| s.target != Target::Cadwyn);
    }
    if scenarios.is_empty() {
        return Err(LoadError::Usage(format!(
            "--only {:?} matches no scenario",
            o.only
        )));
    }
    let reference_year = current_year();
    let bodies = Arc::new(bodies(reference_year));
    let ticks_per_second = clock_ticks()?;
    let dir = tempfile::tempdir().map_err(io_err("create a temporary folder"))?;
    let cpus = o.server_cpus.as_deref();
    let wants = |t: Target| scenarios.iter().any(|s| s.target == t);
    let mut servers: Vec<(Target, Running)> = Vec::new();
    let mut keep = |target: Target, server: Server| {
        let pid = server.pid().to_string();
        servers.push((target, Running { server, pid }));
    };
    if wants(Target::Service) {
        let server = Server::start(
            "students-service",
            &o.service,
            &["--listen", "127.0.0.1:0"],
            &[("RUST_LOG", "warn")],
            cpus,
            dir.path().join("students-service.log"),
            None,
        )?;
        keep(Target::Service, server);
    }
    if wants(Target::Floor) {
        let server = Server::start(
            "students_floor",
            &o.floor,
            &["--listen", "127.0.0.1:0"],
            &[],
            cpus,
            dir.path().join("students_floor.log"),
            None,
        )?;
        keep(Target::Floor, server);
    }
    if let Some(python) = &python {
        let addr = free_port()?;
        let port = addr.port().to_string();
        let app_dir = o.cadwyn_app.to_string_lossy().into_owned();
        let year = reference_year.to_string();
        let server = Server::start(
            "Cadwyn (uvicorn)",
            python,
            &[
                "-m",
                "uvicorn",
                "students_app:app",
                "--app-dir",
                &app_dir,
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--workers",
                "1",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            &[("STUDENTS_REFERENCE_YEAR", &year)],
            cpus,
            dir.path().join("cadwyn.log"),
            Some(addr),
        )?;
        keep(Target::Cadwyn, server);
    }
    let running = |t: Target| {
        servers
            .iter()
            .find(|(target, _)| *target == t)
            .map(|(_, r)| r)
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err("start the tokio runtime"))?;
    let load_before = load_average();
    let results = runtime.block_on(async {
        let server_of = |s: &Scenario| {
            running(s.target).ok_or_else(|| LoadError::Http {
                scenario: s.name.to_owned(),
                message: "its server was not started".into(),
            })
        };
        for s in &scenarios {
            check(s, server_of(s)?, &bodies).await?;
        }
        eprintln!("service_load: every server answers every body as it should");
        if o.warmup > 0.0 {
            for s in &scenarios {
                run_scenario(
                    s,
                    server_of(s)?,
                    &bodies,
                    o.connections,
                    o.warmup,
                    ticks_per_second,
                )
                .await?;
            }
        }
        let mut results: Vec<Vec<Sample>> = scenarios.iter().map(|_| Vec::new()).collect();
        for round in 0..o.rounds {
            for k in 0..scenarios.len() {
                let i = (round + k) % scenarios.len();
                let s = &scenarios[i];
                let sample = run_scenario(
                    s,
                    server_of(s)?,
                    &bodies,
                    o.connections,
                    o.seconds,
                    ticks_per_second,
                )
                .await?;
                eprintln!(
                    "service_load: round {}/{} {:<36} {:>8.0} req/s  p50 {:.2} ms  server {:.1} µs CPU/req  errors {}",
                    round + 1,
                    o.rounds,
                    s.name,
                    sample.requests as f64 / sample.seconds,
                    sample.p50_ms,
                    sample.server_cpu_us,
                    sample.errors
                );
                results[i].push(sample);
            }
        }
        Ok::<_, LoadError>(results)
    })?;
    let load_after = load_average();
    print_report(
        &o,
        &scenarios,
        &results,
        reference_year,
        &load_before,
        &load_after,
    );
    drop(servers);
    Ok(())
}

/// A scenario's median round.
struct Summary {
    rps: f64,
    rps_min: f64,
    rps_max: f64,
    p50_ms: f64,
    p99_ms: f64,
    server_cpu_us: f64,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
}

fn summarise(samples: &[Sample]) -> Summary {
    let rps: Vec<f64> = samples
        .iter()
        .map(|s| s.requests as f64 / s.seconds)
        .collect();
    Summary {
        rps: median(rps.iter().copied()),
        rps_min: rps.iter().copied().fold(f64::INFINITY, f64::min),
        rps_max: rps.iter().copied().fold(0.0, f64::max),
        p50_ms: median(samples.iter().map(|s| s.p50_ms)),
        p99_ms: median(samples.iter().map(|s| s.p99_ms)),
        server_cpu_us: median(samples.iter().map(|s| s.server_cpu_us)),
        requests: samples.iter().map(|s| s.requests).sum(),
        errors: samples.iter().map(|s| s.errors).sum(),
        first_error: samples.iter().find_map(|s| s.first_error.clone()),
    }
}

fn print_report(
    o: &Options,
    scenarios: &[Scenario],
    results: &[Vec<Sample>],
    reference_year: i64,
    load_before: &str,
    load_after: &str,
) {
    let summaries: Vec<Summary> = results.iter().map(|r| summarise(r)).collect();
    let pin = match (&o.server_cpus, &o.client_cpus) {
        (Some(s), Some(c)) => format!("servers pinned to CPU {s}, load generator to CPU {c}"),
        (Some(s), None) => format!("servers pinned to CPU {s}, load generator not pinned"),
        (None, Some(c)) => format!("servers not pinned, load generator pinned to CPU {c}"),
        (None, None) => "nothing pinned".into(),
    };
    println!(
        "POST /students; {} keep-alive connections, closed loop; {} s per scenario × {} rounds \
         (after {} s of warm-up each), scenarios interleaved, each round starting with the next; \
         {pin}; reference year {reference_year}; load average {load_before} before, \
         {load_after} after; figures are each scenario's median round",
        o.connections, o.seconds, o.rounds, o.warmup
    );
    println!();
    println!(
        "| scenario | req/s (min–max) | p50 ms | p99 ms | server CPU µs/req | req per server CPU-s | errors/requests |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|");
    for (s, m) in scenarios.iter().zip(&summaries) {
        println!(
            "| {} | {:.0} ({:.0}–{:.0}) | {:.2} | {:.2} | {:.1} | {:.0} | {}/{} |",
            s.name,
            m.rps,
            m.rps_min,
            m.rps_max,
            m.p50_ms,
            m.p99_ms,
            m.server_cpu_us,
            1e6 / m.server_cpu_us,
            m.errors,
            m.requests
        );
    }
    let find = |target: Target, oldest: bool| {
        scenarios
            .iter()
            .zip(&summaries)
            .find(|(s, _)| s.target == target && s.oldest == oldest)
            .map(|(_, m)| m)
    };
    let pairs = [
        (
            "students-service ÷ Cadwyn, newest release",
            find(Target::Service, false),
            find(Target::Cadwyn, false),
        ),
        (
            "students-service ÷ Cadwyn, oldest release",
            find(Target::Service, true),
            find(Target::Cadwyn, true),
        ),
        (
            "students-service newest ÷ floor",
            find(Target::Service, false),
            find(Target::Floor, false),
        ),
        (
            "students-service oldest ÷ floor",
            find(Target::Service, true),
            find(Target::Floor, false),
        ),
        (
            "Cadwyn oldest ÷ Cadwyn newest",
            find(Target::Cadwyn, true),
            find(Target::Cadwyn, false),
        ),
    ];
    println!();
    println!("| ratio | req/s | req per server CPU-s |");
    println!("|---|--:|--:|");
    for (what, a, b) in pairs {
        let (Some(a), Some(b)) = (a, b) else { continue };
        println!(
            "| {what} | {:.2} | {:.2} |",
            a.rps / b.rps,
            b.server_cpu_us / a.server_cpu_us
        );
    }
    for (s, m) in scenarios.iter().zip(&summaries) {
        if let Some(e) = &m.first_error {
            println!();
            println!(
                "{}: {} of {} requests failed; the first: {e}",
                s.name, m.errors, m.requests
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_bodies_are_release_3_of_the_newest() {
        let b = bodies(2026);
        assert_eq!(b.newest.len(), b.oldest.len());
        let (new, old) = (&b.newest[3].1, &b.oldest[3].1);
        assert_eq!(new["firstName"], "Ingrid");
        assert_eq!(old["fistAndLastName"], "Ingrid Lovelace");
        assert_eq!(
            old["age"].as_i64(),
            new["yearOfBirth"].as_i64().map(|y| 2026 - y)
        );
    }

    #[test]
    fn an_answer_must_be_the_body_plus_a_string_id() {
        let sent = json!({"firstName": "Ada", "lastName": "Lovelace", "yearOfBirth": 1990});
        let ok =
            br#"{"id":"student-1","firstName":"Ada","lastName":"Lovelace","yearOfBirth":1990}"#;
        assert!(check_answer(StatusCode::CREATED, ok, &sent).is_ok());
        assert!(check_answer(StatusCode::OK, ok, &sent).is_err());
        let no_id = br#"{"firstName":"Ada","lastName":"Lovelace","yearOfBirth":1990}"#;
        assert!(check_answer(StatusCode::CREATED, no_id, &sent).is_err());
        let wrong = br#"{"id":"s","firstName":"Ada","lastName":"Lovelace","age":36}"#;
        assert!(check_answer(StatusCode::CREATED, wrong, &sent).is_err());
    }
}
