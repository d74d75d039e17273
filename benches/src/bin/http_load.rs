//! `http_load`: `mutatis serve` measured over HTTP against a floor server, side by side in
//! one run.
//!
//! ```text
//! cargo build --release -p mutatis -p mutatis-benches
//! target/release/http_load [--docs N] [--connections C] [--seconds S] [--rounds R] ...
//! ```
//!
//! It builds nothing itself. It starts `mutatis serve` on the `students` example (release 5
//! current, Student@5 stored; release 3 the oldest supported, two lens steps away) and the
//! `floor_server` (the same store, no negotiation, no translation), seeds both with the same
//! documents, then runs six scenarios: GET and PUT of one document, each at the current
//! release, at the oldest supported release, and on the floor. With `--baseline PATH`, a
//! second `mutatis serve` of another binary (an earlier build) runs the same mutatis
//! scenarios in the same rounds; with `--postgres URL`, the mutatis servers store in
//! PostgreSQL (a schema each, dropped at the end) instead of redb.
//!
//! Each scenario is a closed loop of `C` keep-alive connections for a fixed time: every
//! connection sends its next request as soon as the previous answer is read in full. A PUT
//! connection writes only its own documents, with the rev it got back (`If-Match`), so no
//! write conflicts. The scenarios take turns in every round, each round starting with a
//! different one, and the table shows each scenario's median round, so noise from other
//! processes on the machine lands on all of them alike.
//!
//! The server's CPU time is read from `/proc/<pid>/stat` (user + system time of all its
//! threads, in clock ticks) before and after each scenario, which gives CPU microseconds per
//! request. By default the servers are pinned to core 0 and this program to core 1
//! (`taskset`), so the load generator never takes CPU from the server it measures.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use mutatis_lens::Params;
use mutatis_schema::SchemaSet;
use serde_json::{json, Value};

use mutatis_benches::load::{
    clock_ticks, connect, cpu_ticks, io_err, load_average, median, percentile, pin_self, LoadError,
    Server,
};

/// The document type the students example serves.
const TYPE: &str = "Student";

/// The Python peer's CPU cost per request that the issue compares against.
const PYTHON_CPU_US: f64 = 550.0;

/// The issue's targets.
const OLDEST_VS_CURRENT: f64 = 0.85;
/// Recording usage per release costs at most 5 % (issue 15).
const USAGE_ON_VS_OFF: f64 = 0.95;
const CURRENT_VS_FLOOR: f64 = 0.90;
const CHEAPER_THAN_PYTHON: f64 = 20.0;

const USAGE: &str = "usage: http_load [--mutatis PATH] [--baseline PATH] [--postgres URL] \
[--floor PATH] [--set DIR] [--docs N] [--connections C] [--seconds S] [--warmup S] [--rounds R] \
[--server-cpus LIST|none] [--client-cpus LIST|none] [--only TEXT] [--floor-arg ARG]... [--usage-off]";

/// What this build's `PUT current` must reach against `--baseline`'s (req/s).
const PUT_VS_BASELINE: f64 = 3.0;

/// The command line.
#[derive(Debug, Clone)]
struct Options {
    mutatis: PathBuf,
    /// Another `mutatis` binary (an earlier build) measured beside `mutatis`, scenario by
    /// scenario, in the same run.
    baseline: Option<PathBuf>,
    /// Run the `mutatis` servers on this PostgreSQL database (a schema each, dropped at the
    /// end) instead of redb files.
    postgres: Option<String>,
    floor: PathBuf,
    set: PathBuf,
    docs: usize,
    connections: usize,
    seconds: f64,
    warmup: f64,
    rounds: usize,
    /// CPU list for `taskset -c` of the servers; `None`: not pinned.
    server_cpus: Option<String>,
    /// CPU list for this process; `None`: not pinned.
    client_cpus: Option<String>,
    /// Run only the scenarios whose name contains this.
    only: Option<String>,
    /// Extra arguments for the floor server (`--floor-arg --blocking-reads`).
    floor_args: Vec<String>,
    /// Also run a second `mutatis serve` with `--usage off`, side by side, to measure what
    /// recording usage per release costs.
    usage_off: bool,
}

fn options_default() -> Options {
    Options {
        mutatis: PathBuf::from("target/release/mutatis"),
        baseline: None,
        postgres: None,
        floor: PathBuf::from("target/release/floor_server"),
        set: PathBuf::from("examples/students"),
        docs: 1_000,
        connections: 16,
        seconds: 3.0,
        warmup: 1.0,
        rounds: 5,
        server_cpus: Some("0".into()),
        client_cpus: Some("1".into()),
        only: None,
        floor_args: Vec::new(),
        usage_off: false,
    }
}

fn options() -> Result<Options, LoadError> {
    let mut o = options_default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| LoadError::Usage(format!("{name} needs a value")))
        };
        let count = |name: &str, v: String| -> Result<usize, LoadError> {
            match v.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(LoadError::Usage(format!(
                    "{name} takes a whole number of at least 1, got `{v}`"
                ))),
            }
        };
        let seconds = |name: &str, v: String| -> Result<f64, LoadError> {
            match v.parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
                _ => Err(LoadError::Usage(format!(
                    "{name} takes a number of seconds, got `{v}`"
                ))),
            }
        };
        let cpus = |v: String| (v != "none" && !v.is_empty()).then_some(v);
        match a.as_str() {
            "--mutatis" => o.mutatis = PathBuf::from(value("--mutatis")?),
            "--baseline" => o.baseline = Some(PathBuf::from(value("--baseline")?)),
            "--postgres" => o.postgres = Some(value("--postgres")?),
            "--floor" => o.floor = PathBuf::from(value("--floor")?),
            "--set" => o.set = PathBuf::from(value("--set")?),
            "--docs" => o.docs = count("--docs", value("--docs")?)?,
            "--connections" => o.connections = count("--connections", value("--connections")?)?,
            "--rounds" => o.rounds = count("--rounds", value("--rounds")?)?,
            "--seconds" => o.seconds = seconds("--seconds", value("--seconds")?)?,
            "--warmup" => o.warmup = seconds("--warmup", value("--warmup")?)?,
            "--server-cpus" => o.server_cpus = cpus(value("--server-cpus")?),
            "--client-cpus" => o.client_cpus = cpus(value("--client-cpus")?),
            "--only" => o.only = Some(value("--only")?),
            "--floor-arg" => o.floor_args.push(value("--floor-arg")?),
            "--usage-off" => o.usage_off = true,
            other => return Err(LoadError::Usage(format!("unknown argument `{other}`"))),
        }
    }
    if o.seconds <= 0.0 {
        return Err(LoadError::Usage("--seconds must be more than 0".into()));
    }
    if o.docs < o.connections {
        return Err(LoadError::Usage(format!(
            "--docs ({}) must be at least --connections ({}): each connection owns its documents",
            o.docs, o.connections
        )));
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------

/// Which server a scenario talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Mutatis,
    /// `mutatis serve` of the `--baseline` binary.
    Baseline,
    Floor,
    /// `mutatis serve --usage off` (with `--usage-off`).
    MutatisUsageOff,
}

/// A throwaway admin token in the format `mutatis serve` accepts
/// (`mutatis_` + 64 hex digits); it only lives as long as the benchmark's temporary store.
fn bench_token() -> String {
    let mut x = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id()).rotate_left(32);
    let mut token = String::from("mutatis_");
    for _ in 0..4 {
        // SplitMix64.
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        token.push_str(&format!("{z:016x}"));
    }
    token
}

// ---------------------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------------------

/// The request bodies for one document: two variants (so consecutive PUTs really change
/// it), in the current version and in the oldest supported version.
struct DocBodies {
    id: String,
    current: [Bytes; 2],
    oldest: [Bytes; 2],
    /// What a GET at the oldest release must return for the seeded (variant 0) document.
    oldest_value: Value,
    current_value: Value,
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

/// The year the server is told "now" is (`mutatis serve` passes the current UTC year as
/// `referenceYear`); only the oldest release's bodies depend on it, through the `age` ↔
/// `yearOfBirth` lens.
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

/// Everything the scenarios need from the schema set.
struct Fixture {
    current_release: String,
    current_version: u32,
    oldest_release: String,
    oldest_version: u32,
    docs: Vec<DocBodies>,
}

fn fixture(o: &Options) -> Result<Fixture, LoadError> {
    let bad = |message: String| LoadError::Schema {
        dir: o.set.clone(),
        message,
    };
    let set = SchemaSet::load(&o.set).map_err(|e| bad(e.to_string()))?;
    let current = set.current();
    let oldest = set.oldest_supported();
    let current_version = current
        .version_of(TYPE)
        .ok_or_else(|| bad(format!("release {} has no {TYPE}", current.name)))?;
    let oldest_version = oldest
        .version_of(TYPE)
        .ok_or_else(|| bad(format!("release {} has no {TYPE}", oldest.name)))?;
    let plan = set
        .plan(TYPE, current_version, oldest_version)
        .map_err(|e| bad(e.to_string()))?;
    let mut params = Params::new();
    params.insert("referenceYear".into(), Value::from(current_year()));
    let encode = |v: &Value| serde_json::to_vec(v).map(Bytes::from);
    let mut docs = Vec::with_capacity(o.docs);
    for i in 0..o.docs {
        let body = |variant: i64| {
            json!({
                "firstName": FIRST[i % FIRST.len()],
                "lastName": LAST[(i / FIRST.len()) % LAST.len()],
                "yearOfBirth": 1990 + (i as i64 % 20) + variant,
            })
        };
        let (a, b) = (body(0), body(1));
        let down = |v: &Value| {
            plan.translate(v, &params)
                .map_err(|e| bad(format!("{TYPE}@{current_version} → @{oldest_version}: {e}")))
        };
        let (old_a, old_b) = (down(&a)?, down(&b)?);
        let enc = |v: &Value| encode(v).map_err(|e| bad(e.to_string()));
        docs.push(DocBodies {
            id: format!("s{i:06}"),
            current: [enc(&a)?, enc(&b)?],
            oldest: [enc(&old_a)?, enc(&old_b)?],
            oldest_value: old_a,
            current_value: a,
        });
    }
    Ok(Fixture {
        current_release: current.name.clone(),
        current_version,
        oldest_release: oldest.name.clone(),
        oldest_version,
        docs,
    })
}

// ---------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------

/// One measured request mix.
#[derive(Debug, Clone)]
struct Scenario {
    name: String,
    target: Target,
    write: bool,
    /// The release named in `Mutatis-Release` (`None` on the floor).
    release: Option<String>,
    /// Which body set a PUT sends.
    oldest: bool,
    /// `Type@version` the bodies are in, for the table.
    speaks: String,
}

/// What one connection knows between scenarios: its documents and their revs on each
/// target (PUTs move them on).
struct Connection {
    /// Indexes into `Fixture::docs`.
    docs: Vec<usize>,
    revs: BTreeMap<Target, Vec<Stored>>,
}

/// What a target holds of one document, as far as its connection knows.
struct Stored {
    rev: String,
    /// Which of the two body variants it holds (the next PUT sends the other one).
    variant: usize,
}

/// One connection's results of one scenario run.
#[derive(Default)]
struct Tally {
    latencies_ns: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
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
    client_cpu_us: f64,
}

/// Where to send and how to authenticate.
#[derive(Clone)]
struct Endpoint {
    addr: SocketAddr,
    authorization: Option<String>,
}

/// The answer to one request: status, `ETag` (unquoted) and body.
struct Answer {
    status: StatusCode,
    etag: Option<String>,
    body: Bytes,
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    endpoint: &Endpoint,
    method: Method,
    path: &str,
    release: Option<&str>,
    if_match: Option<&str>,
    body: Bytes,
) -> Result<Answer, String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection lost: {e}"))?;
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, endpoint.addr.to_string())
        .header(hyper::header::ACCEPT, "application/json");
    if let Some(auth) = &endpoint.authorization {
        request = request.header(hyper::header::AUTHORIZATION, auth);
    }
    if let Some(release) = release {
        request = request.header("mutatis-release", release);
    }
    if let Some(rev) = if_match {
        request = request.header(hyper::header::IF_MATCH, format!("\"{rev}\""));
    }
    if !body.is_empty() {
        request = request.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| format!("build request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let etag = response
        .headers()
        .get(hyper::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_start_matches("W/").trim_matches('"').to_owned());
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("read response body: {e}"))?
        .to_bytes();
    Ok(Answer { status, etag, body })
}

fn describe(answer: &Answer, what: &str) -> String {
    let body = String::from_utf8_lossy(&answer.body);
    let body: String = body.chars().take(300).collect();
    format!("{what}: {} {body}", answer.status)
}

/// Run one connection of a scenario until `deadline` (`None`: one pass over its documents,
/// for seeding). Returns the connection's state and tally.
async fn drive(
    endpoint: Endpoint,
    mut sender: SendRequest<Full<Bytes>>,
    scenario: Scenario,
    fixture: std::sync::Arc<Fixture>,
    mut connection: Connection,
    deadline: Option<Instant>,
) -> (Connection, Tally) {
    let mut tally = Tally::default();
    let note = |tally: &mut Tally, message: String| {
        tally.errors += 1;
        tally.first_error.get_or_insert(message);
    };
    let seeding = deadline.is_none();
    let mut k = 0usize;
    loop {
        let slot = k % connection.docs.len();
        if seeding && k == connection.docs.len() {
            break;
        }
        if let Some(deadline) = deadline {
            if Instant::now() >= deadline {
                break;
            }
        }
        let doc = &fixture.docs[connection.docs[slot]];
        let path = format!("/docs/{TYPE}/{}", doc.id);
        let start = Instant::now();
        let result = if scenario.write {
            let stored = connection
                .revs
                .get(&scenario.target)
                .and_then(|r| r.get(slot))
                .filter(|_| !seeding);
            // Seeding creates variant 0; after that every PUT sends the variant the document
            // does not hold, so every write really changes it.
            let variant = stored.map_or(0, |s| 1 - s.variant);
            let bodies = if scenario.oldest {
                &doc.oldest
            } else {
                &doc.current
            };
            let sent = send(
                &mut sender,
                &endpoint,
                Method::PUT,
                &path,
                scenario.release.as_deref(),
                stored.map(|s| s.rev.as_str()),
                bodies[variant].clone(),
            )
            .await;
            sent.map(|answer| (answer, variant))
        } else {
            send(
                &mut sender,
                &endpoint,
                Method::GET,
                &path,
                scenario.release.as_deref(),
                None,
                Bytes::new(),
            )
            .await
            .map(|answer| (answer, 0))
        };
        let elapsed = start.elapsed();
        tally
            .latencies_ns
            .push(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        match result {
            Ok((answer, variant)) if answer.status.is_success() => {
                if scenario.write {
                    let revs = connection.revs.entry(scenario.target).or_default();
                    match (answer.etag, revs.get_mut(slot)) {
                        (Some(rev), Some(stored)) => *stored = Stored { rev, variant },
                        (Some(rev), None) if seeding => revs.push(Stored { rev, variant }),
                        _ => note(&mut tally, describe_missing_etag(&path)),
                    }
                }
            }
            Ok((answer, _)) => note(&mut tally, describe(&answer, &path)),
            Err(e) => {
                note(&mut tally, format!("{path}: {e}"));
                // The connection may be gone: open a new one rather than fail every request.
                match connect(endpoint.addr).await {
                    Ok(s) => sender = s,
                    Err(e) => {
                        note(&mut tally, e);
                        break;
                    }
                }
            }
        }
        k += 1;
    }
    (connection, tally)
}

fn describe_missing_etag(path: &str) -> String {
    format!("{path}: the answer to a PUT had no ETag")
}

/// Everything a scenario run needs.
struct Bench {
    fixture: std::sync::Arc<Fixture>,
    connections: Vec<Option<Connection>>,
    endpoints: BTreeMap<Target, (Endpoint, String)>,
    ticks_per_second: f64,
}

impl Bench {
    /// Run `scenario` on every connection, for `seconds` (`None`: seed once).
    async fn run(
        &mut self,
        scenario: &Scenario,
        seconds: Option<f64>,
    ) -> Result<Sample, LoadError> {
        let http = |message: String| LoadError::Http {
            scenario: scenario.name.clone(),
            message,
        };
        let (endpoint, pid) = self
            .endpoints
            .get(&scenario.target)
            .cloned()
            .ok_or_else(|| http("its server was not started".into()))?;
        // Connect first, so connection set-up is not timed.
        let mut senders = Vec::with_capacity(self.connections.len());
        for _ in 0..self.connections.len() {
            senders.push(connect(endpoint.addr).await.map_err(http)?);
        }
        let server_before = cpu_ticks(&pid)?;
        let client_before = cpu_ticks("self")?;
        let start = Instant::now();
        let deadline = seconds.map(|s| start + Duration::from_secs_f64(s));
        let mut tasks = Vec::with_capacity(senders.len());
        for (slot, sender) in self.connections.iter_mut().zip(senders) {
            let connection = slot
                .take()
                .ok_or_else(|| http("a connection's state was lost".into()))?;
            tasks.push(tokio::spawn(drive(
                endpoint.clone(),
                sender,
                scenario.clone(),
                std::sync::Arc::clone(&self.fixture),
                connection,
                deadline,
            )));
        }
        let mut latencies = Vec::new();
        let mut errors = 0;
        let mut first_error = None;
        for (slot, task) in self.connections.iter_mut().zip(tasks) {
            let (connection, tally) = task
                .await
                .map_err(|e| http(format!("a connection task failed: {e}")))?;
            *slot = Some(connection);
            latencies.extend(tally.latencies_ns);
            errors += tally.errors;
            if first_error.is_none() {
                first_error = tally.first_error;
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        let server_cpu = (cpu_ticks(&pid)? - server_before) as f64 / self.ticks_per_second;
        let client_cpu =
            (cpu_ticks("self")?.saturating_sub(client_before)) as f64 / self.ticks_per_second;
        latencies.sort_unstable();
        let requests = latencies.len() as u64;
        let per_request = |cpu: f64| cpu * 1e6 / requests.max(1) as f64;
        Ok(Sample {
            requests,
            errors,
            first_error,
            seconds: elapsed,
            p50_ms: percentile(&latencies, 50.0),
            p99_ms: percentile(&latencies, 99.0),
            server_cpu_us: per_request(server_cpu),
            client_cpu_us: per_request(client_cpu),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Checks, report
// ---------------------------------------------------------------------------------------

/// Before timing: a GET at each release returns the document in that release's version, so
/// the benchmark measures translation and not an error path.
async fn check_answers(bench: &Bench, scenarios: &[Scenario]) -> Result<(), LoadError> {
    let doc = bench
        .fixture
        .docs
        .first()
        .ok_or_else(|| LoadError::Usage("no documents".into()))?;
    for s in scenarios.iter().filter(|s| !s.write) {
        let http = |message: String| LoadError::Http {
            scenario: format!("checking {}", s.name),
            message,
        };
        let Some((endpoint, _)) = bench.endpoints.get(&s.target) else {
            continue;
        };
        let mut sender = connect(endpoint.addr).await.map_err(http)?;
        let path = format!("/docs/{TYPE}/{}", doc.id);
        let answer = send(
            &mut sender,
            endpoint,
            Method::GET,
            &path,
            s.release.as_deref(),
            None,
            Bytes::new(),
        )
        .await
        .map_err(http)?;
        if !answer.status.is_success() {
            return Err(http(describe(&answer, &path)));
        }
        let got: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| http(format!("{path}: the answer is not JSON: {e}")))?;
        let want = if s.oldest {
            &doc.oldest_value
        } else {
            &doc.current_value
        };
        if &got != want {
            return Err(http(format!("{path}: got {got}, expected {want}")));
        }
    }
    Ok(())
}

/// A scenario's summary over its rounds.
struct Summary {
    rps: f64,
    rps_min: f64,
    rps_max: f64,
    p50_ms: f64,
    p99_ms: f64,
    server_cpu_us: f64,
    client_cpu_us: f64,
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
        client_cpu_us: median(samples.iter().map(|s| s.client_cpu_us)),
        requests: samples.iter().map(|s| s.requests).sum(),
        errors: samples.iter().map(|s| s.errors).sum(),
        first_error: samples.iter().find_map(|s| s.first_error.clone()),
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http_load: {e}");
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
    let fixture = fixture(&o)?;
    let scenarios = scenarios(
        &fixture,
        o.only.as_deref(),
        o.baseline.is_some(),
        o.usage_off,
    );
    if scenarios.is_empty() {
        return Err(LoadError::Usage(format!(
            "--only {:?} matches no scenario",
            o.only
        )));
    }
    let ticks_per_second = clock_ticks()?;
    let dir = tempfile::tempdir().map_err(io_err("create a temporary folder"))?;
    let token = bench_token();
    let set = o.set.to_string_lossy().into_owned();
    let server_cpus = o.server_cpus.as_deref();
    let mut servers = Vec::new();
    let mut endpoints = BTreeMap::new();
    // A PostgreSQL schema per server, named after this process so that runs never meet.
    let mut pg_schemas = PgSchemas {
        url: o.postgres.clone(),
        names: Vec::new(),
    };
    for (target, binary) in [
        (Target::Mutatis, Some(&o.mutatis)),
        (Target::Baseline, o.baseline.as_ref()),
    ] {
        let Some(binary) = binary else { continue };
        if !scenarios.iter().any(|s| s.target == target) {
            continue;
        }
        let label = format!("{target:?}").to_lowercase();
        let mut args: Vec<String> = vec!["serve".into(), set.clone()];
        match &o.postgres {
            Some(url) => {
                let schema = format!("http_load_{}_{label}", std::process::id());
                pg_schemas.names.push(schema.clone());
                args.extend([
                    "--postgres".into(),
                    url.clone(),
                    "--pg-schema".into(),
                    schema,
                ]);
            }
            None => {
                let data = dir.path().join(format!("{label}.redb"));
                args.extend(["--data".into(), data.to_string_lossy().into_owned()]);
            }
        }
        args.extend(["--listen".into(), "127.0.0.1:0".into()]);
        let server = Server::start(
            "mutatis serve",
            binary,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            // Request logging off for all servers: the floor has none.
            &[("MUTATIS_ADMIN_TOKEN", &token), ("RUST_LOG", "warn")],
            server_cpus,
            dir.path().join(format!("{label}.log")),
            None,
        )?;
        let endpoint = Endpoint {
            addr: server.addr,
            authorization: Some(format!("Bearer {token}")),
        };
        endpoints.insert(target, (endpoint, server.pid().to_string()));
        servers.push(server);
    }
    if scenarios
        .iter()
        .any(|s| s.target == Target::MutatisUsageOff)
    {
        let data = dir
            .path()
            .join("mutatis-usage-off.redb")
            .to_string_lossy()
            .into_owned();
        let server = Server::start(
            "mutatis serve --usage off",
            &o.mutatis,
            &[
                "serve",
                &set,
                "--data",
                &data,
                "--listen",
                "127.0.0.1:0",
                "--usage",
                "off",
            ],
            &[("MUTATIS_ADMIN_TOKEN", &token), ("RUST_LOG", "warn")],
            server_cpus,
            dir.path().join("mutatis-usage-off.log"),
            None,
        )?;
        let endpoint = Endpoint {
            addr: server.addr,
            authorization: Some(format!("Bearer {token}")),
        };
        endpoints.insert(
            Target::MutatisUsageOff,
            (endpoint, server.pid().to_string()),
        );
        servers.push(server);
    }
    if scenarios.iter().any(|s| s.target == Target::Floor) {
        let data = dir.path().join("floor.redb").to_string_lossy().into_owned();
        let server = Server::start(
            "floor_server",
            &o.floor,
            &[&set, "--data", &data, "--listen", "127.0.0.1:0"]
                .into_iter()
                .chain(o.floor_args.iter().map(String::as_str))
                .collect::<Vec<_>>(),
            &[("RUST_LOG", "warn")],
            server_cpus,
            dir.path().join("floor.log"),
            None,
        )?;
        let endpoint = Endpoint {
            addr: server.addr,
            authorization: None,
        };
        endpoints.insert(Target::Floor, (endpoint, server.pid().to_string()));
        servers.push(server);
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err("start the tokio runtime"))?;
    let load_before = load_average();
    let connections = (0..o.connections)
        .map(|c| {
            Some(Connection {
                docs: (c..o.docs).step_by(o.connections).collect(),
                revs: BTreeMap::new(),
            })
        })
        .collect();
    let mut bench = Bench {
        fixture: std::sync::Arc::new(fixture),
        connections,
        endpoints,
        ticks_per_second,
    };
    let results = runtime.block_on(measure(&mut bench, &scenarios, &o))?;
    let load_after = load_average();
    print_report(
        &o,
        &bench.fixture,
        &scenarios,
        &results,
        &load_before,
        &load_after,
    );
    // Servers are stopped here, after the report; a server that died mid-run shows up as
    // errors in the table.
    drop(servers);
    drop(pg_schemas);
    Ok(())
}

/// The PostgreSQL schemas the servers of a run used; dropped with them.
struct PgSchemas {
    url: Option<String>,
    names: Vec<String>,
}

impl Drop for PgSchemas {
    fn drop(&mut self) {
        let Some(url) = &self.url else { return };
        if self.names.is_empty() {
            return;
        }
        let dropped = postgres::Client::connect(url, postgres::NoTls).and_then(|mut c| {
            for name in &self.names {
                c.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))?;
            }
            Ok(())
        });
        if let Err(e) = dropped {
            eprintln!(
                "http_load: could not drop the schemas {:?}: {e}",
                self.names
            );
        }
    }
}

fn scenarios(f: &Fixture, only: Option<&str>, baseline: bool, usage_off: bool) -> Vec<Scenario> {
    let mut all = Vec::new();
    for write in [false, true] {
        let method = if write { "PUT" } else { "GET" };
        all.push(Scenario {
            name: format!("{method} current (release {})", f.current_release),
            target: Target::Mutatis,
            write,
            release: Some(f.current_release.clone()),
            oldest: false,
            speaks: format!("{TYPE}@{}", f.current_version),
        });
        all.push(Scenario {
            name: format!("{method} oldest (release {})", f.oldest_release),
            target: Target::Mutatis,
            write,
            release: Some(f.oldest_release.clone()),
            oldest: true,
            speaks: format!("{TYPE}@{}", f.oldest_version),
        });
        all.push(Scenario {
            name: format!("{method} floor (no translation)"),
            target: Target::Floor,
            write,
            release: None,
            oldest: false,
            speaks: format!("{TYPE}@{} (stored)", f.current_version),
        });
        if usage_off {
            all.push(Scenario {
                name: format!(
                    "{method} current (release {}), usage off",
                    f.current_release
                ),
                target: Target::MutatisUsageOff,
                write,
                release: Some(f.current_release.clone()),
                oldest: false,
                speaks: format!("{TYPE}@{}", f.current_version),
            });
        }
    }
    if baseline {
        let theirs: Vec<Scenario> = all
            .iter()
            .filter(|s| s.target == Target::Mutatis)
            .map(|s| Scenario {
                name: format!("{} [baseline]", s.name),
                target: Target::Baseline,
                ..s.clone()
            })
            .collect();
        all.extend(theirs);
    }
    all.retain(|s| only.is_none_or(|o| s.name.contains(o)));
    all
}

async fn measure(
    bench: &mut Bench,
    scenarios: &[Scenario],
    o: &Options,
) -> Result<Vec<Vec<Sample>>, LoadError> {
    let targets: Vec<Target> = bench.endpoints.keys().copied().collect();
    for target in targets {
        let seed = Scenario {
            name: format!("seeding {target:?}"),
            target,
            write: true,
            release: scenarios
                .iter()
                .find(|s| s.target == target && !s.oldest)
                .and_then(|s| s.release.clone()),
            oldest: false,
            speaks: String::new(),
        };
        let sample = bench.run(&seed, None).await?;
        if sample.errors > 0 {
            return Err(LoadError::Http {
                scenario: seed.name,
                message: format!(
                    "{} of {} writes failed; the first: {}",
                    sample.errors,
                    sample.requests,
                    sample.first_error.unwrap_or_default()
                ),
            });
        }
        eprintln!(
            "http_load: seeded {} documents on {target:?} ({:.1} s)",
            sample.requests, sample.seconds
        );
    }
    check_answers(bench, scenarios).await?;
    if o.warmup > 0.0 {
        for s in scenarios {
            bench.run(s, Some(o.warmup)).await?;
        }
    }
    let mut results: Vec<Vec<Sample>> = scenarios.iter().map(|_| Vec::new()).collect();
    for round in 0..o.rounds {
        for k in 0..scenarios.len() {
            let i = (round + k) % scenarios.len();
            let sample = bench.run(&scenarios[i], Some(o.seconds)).await?;
            eprintln!(
                "http_load: round {}/{} {:<34} {:>8.0} req/s  p50 {:.2} ms  p99 {:.2} ms  server {:.1} µs CPU/req  errors {}",
                round + 1,
                o.rounds,
                scenarios[i].name,
                sample.requests as f64 / sample.seconds,
                sample.p50_ms,
                sample.p99_ms,
                sample.server_cpu_us,
                sample.errors
            );
            results[i].push(sample);
        }
    }
    Ok(results)
}

fn print_report(
    o: &Options,
    fixture: &Fixture,
    scenarios: &[Scenario],
    results: &[Vec<Sample>],
    load_before: &str,
    load_after: &str,
) {
    let summaries: Vec<Summary> = results.iter().map(|r| summarise(r)).collect();
    let find = |write: bool, target: Target, oldest: bool| {
        scenarios
            .iter()
            .zip(&summaries)
            .find(|(s, _)| s.write == write && s.target == target && s.oldest == oldest)
            .map(|(_, m)| m)
    };
    let pin = match (&o.server_cpus, &o.client_cpus) {
        (Some(s), Some(c)) => format!("servers pinned to CPU {s}, load generator to CPU {c}"),
        (Some(s), None) => format!("servers pinned to CPU {s}, load generator not pinned"),
        (None, Some(c)) => format!("servers not pinned, load generator pinned to CPU {c}"),
        (None, None) => "nothing pinned".into(),
    };
    let pin = if o.floor_args.is_empty() {
        pin
    } else {
        format!("{pin}; floor_server run with `{}`", o.floor_args.join(" "))
    };
    println!(
        "{} documents; {} keep-alive connections, closed loop; {} s per scenario × {} rounds \
         (after {} s of warm-up each), scenarios interleaved, each round starting with the next; \
         {pin}; load average {load_before} before, {load_after} after; figures are each \
         scenario's median round",
        fixture.docs.len(),
        o.connections,
        o.seconds,
        o.rounds,
        o.warmup
    );
    println!();
    println!(
        "| scenario | speaks | req/s (min–max) | p50 ms | p99 ms | server CPU µs/req | req per server CPU-s | × cheaper than Python (550 µs) | req/s vs current | req/s vs floor | load gen CPU µs/req | errors/requests |"
    );
    println!("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (s, m) in scenarios.iter().zip(&summaries) {
        let current = find(s.write, Target::Mutatis, false).map_or(f64::NAN, |c| c.rps);
        let floor = find(s.write, Target::Floor, false).map_or(f64::NAN, |f| f.rps);
        println!(
            "| {} | {} | {:.0} ({:.0}–{:.0}) | {:.2} | {:.2} | {:.1} | {:.0} | {} | {} | {} | {:.1} | {}/{} |",
            s.name,
            s.speaks,
            m.rps,
            m.rps_min,
            m.rps_max,
            m.p50_ms,
            m.p99_ms,
            m.server_cpu_us,
            1e6 / m.server_cpu_us,
            ratio(PYTHON_CPU_US, m.server_cpu_us),
            ratio(m.rps, current),
            ratio(m.rps, floor),
            m.client_cpu_us,
            m.errors,
            m.requests
        );
    }
    println!();
    // The index of a scenario, to pair its rounds with another's.
    let index = |write: bool, target: Target, oldest: bool| {
        scenarios
            .iter()
            .position(|s| s.write == write && s.target == target && s.oldest == oldest)
    };
    // Three readings of one throughput ratio: of the median rounds; the median of the ratios
    // within each round (the two ran minutes apart at most, so they saw similar noise); and
    // the inverse ratio of server CPU per request, which is what the throughput ratio comes
    // to when the server is CPU-bound, and which other processes disturb least.
    let readings = |a: usize, b: usize| {
        let (ra, rb) = (&results[a], &results[b]);
        let rps = |s: &Sample| s.requests as f64 / s.seconds;
        let per_round = median(ra.iter().zip(rb).map(|(x, y)| rps(x) / rps(y)));
        let (sa, sb) = (&summaries[a], &summaries[b]);
        (
            sa.rps / sb.rps,
            per_round,
            sb.server_cpu_us / sa.server_cpu_us,
        )
    };
    println!(
        "| target | median rounds | per-round ratios, median | server CPU per request | required | |"
    );
    println!("|---|--:|--:|--:|--:|---|");
    for write in [false, true] {
        let method = if write { "PUT" } else { "GET" };
        let current = index(write, Target::Mutatis, false);
        let pairs = [
            (
                index(write, Target::Mutatis, true),
                current,
                "oldest release / current release",
                OLDEST_VS_CURRENT,
            ),
            (
                current,
                index(write, Target::Floor, false),
                "current release / floor",
                CURRENT_VS_FLOOR,
            ),
            (
                current,
                index(write, Target::MutatisUsageOff, false),
                "current, usage recorded / usage off",
                USAGE_ON_VS_OFF,
            ),
        ];
        for (a, b, what, required) in pairs {
            let (Some(a), Some(b)) = (a, b) else { continue };
            let (medians, per_round, cpu) = readings(a, b);
            println!(
                "| {method} req/s: {what} | {medians:.3} | {per_round:.3} | {cpu:.3} | ≥ {required:.2} | {} |",
                verdict(medians >= required)
            );
        }
    }
    for write in [false, true] {
        let method = if write { "PUT" } else { "GET" };
        for oldest in [false, true] {
            let (Some(a), Some(b)) = (
                index(write, Target::Mutatis, oldest),
                index(write, Target::Baseline, oldest),
            ) else {
                continue;
            };
            let (medians, per_round, cpu) = readings(a, b);
            let p99 = summaries[a].p99_ms / summaries[b].p99_ms;
            let release = if oldest { "oldest" } else { "current" };
            // Only PUT has a target (group commit); GET is shown to see nothing else moved.
            let (required, judged) = if write && !oldest {
                (
                    format!("≥ {PUT_VS_BASELINE:.2}, p99 ≤ 1"),
                    verdict(medians >= PUT_VS_BASELINE && p99 <= 1.0),
                )
            } else {
                ("-".to_owned(), "")
            };
            println!(
                "| {method} {release} req/s: this build / baseline (p99 ratio {p99:.2}) | {medians:.3} | {per_round:.3} | {cpu:.3} | {required} | {judged} |"
            );
        }
    }
    for (s, m) in scenarios.iter().zip(&summaries) {
        if s.target == Target::Mutatis {
            let x = PYTHON_CPU_US / m.server_cpu_us;
            println!(
                "| {}: server CPU per request vs the Python peer's 550 µs | | | {:.1} µs ({x:.1}× cheaper) | ≤ {:.1} µs (≥ {CHEAPER_THAN_PYTHON:.0}×) | {} |",
                s.name,
                m.server_cpu_us,
                PYTHON_CPU_US / CHEAPER_THAN_PYTHON,
                verdict(x >= CHEAPER_THAN_PYTHON)
            );
        }
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
    fn the_token_has_the_servers_format() {
        let t = bench_token();
        let hex = t.strip_prefix("mutatis_").unwrap_or_default();
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn the_fixture_speaks_both_releases() {
        let o = Options {
            set: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/students")),
            docs: 20,
            ..options_default()
        };
        let f = fixture(&o).unwrap();
        assert_eq!((f.current_version, f.oldest_version), (5, 3));
        let old = &f.docs[3].oldest_value;
        assert_eq!(old["fistAndLastName"], "Ingrid Lovelace");
        assert_eq!(old["age"], current_year() - 1993);
        let s = scenarios(&f, None, false, false);
        assert_eq!(s.len(), 6);
        assert_eq!(scenarios(&f, Some("floor"), false, false).len(), 2);
        let with_baseline = scenarios(&f, Some("PUT current"), true, false);
        let targets: Vec<Target> = with_baseline.iter().map(|s| s.target).collect();
        assert_eq!(targets, vec![Target::Mutatis, Target::Baseline]);
        assert_eq!(scenarios(&f, Some("usage off"), false, true).len(), 2);
    }
}
