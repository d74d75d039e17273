//! Replication between two real nodes when things go wrong on the way: the target is killed
//! (SIGKILL) mid-run and restarted on the same data and port, or the connection to it is cut
//! in the middle of a batch's body. Either way the replication finishes with the target
//! holding exactly the source's documents (same revs, same bodies), and at most the one batch
//! in flight is sent twice.
//!
//! Sizes: `MUTATIS_REPL_DOCS` documents (default 20 000; CI runs 100 000).

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{
    example, import_lines, replicate_command, Node, Replication, RunningReplication, SYSMETA,
};

/// Documents per batch, as the replicator is told.
const BATCH: usize = 500;

/// How long any one wait in these tests may take before it is a failure.
const PATIENCE: Duration = Duration::from_secs(600);

fn doc_count() -> usize {
    let n = std::env::var("MUTATIS_REPL_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    // A kill after the first batch must leave something to resume.
    assert!(
        n > 2 * BATCH,
        "MUTATIS_REPL_DOCS={n}: at least {} documents",
        2 * BATCH + 1
    );
    n
}

/// `n` v3 records as JSON lines; their ids are their `identifier`s.
fn records(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 700);
    for i in 0..n {
        let mut r = json!({
            "serialVersion": i % 7,
            "identifier": format!("obj-{i:07}"),
            "formatId": "eml://ecoinformatics.org/eml-2.1.1",
            "size": 1000 + i,
            "checksum": {"algorithm": "SHA-256", "value": format!("{:064x}", i * 2_654_435_761)},
            "submitter": "http://orcid.org/0000-0002-1825-0097",
            "rightsHolder": format!("CN=holder-{},DC=dataone,DC=org", i % 13),
            "accessPolicy": {"allow": [{"subject": ["public"], "permission": ["read"]}]},
            "dateUploaded": "2015-06-11T17:12:05.000+00:00",
            "originMemberNode": "urn:node:KNB",
            "authoritativeMemberNode": "urn:node:KNB"
        });
        // Some records use the newer fields, so bodies differ in shape too.
        if i % 3 == 0 {
            r["seriesId"] = json!(format!("series-{}", i / 3));
            r["fileName"] = json!(format!("data-{i}.csv"));
        }
        if i % 5 == 0 {
            r["license"] = json!({"id": "CC0-1.0", "url": "https://creativecommons.org/publicdomain/zero/1.0/"});
            r["keywords"] = json!(["kelp", format!("plot {}", i % 50)]);
        }
        serde_json::to_writer(&mut out, &r).expect("JSON");
        out.push(b'\n');
    }
    out
}

/// A source node holding `n` imported records and an empty target, both on
/// `examples/dataone`.
fn source_and_target(tmp: &Path, n: usize) -> (Node, Node) {
    let set = example("dataone");
    let source_data = tmp.join("source.redb");
    let started = Instant::now();
    import_lines(&set, &source_data, SYSMETA, "identifier", records(n));
    eprintln!(
        "replicate_faults: {n} documents imported in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let source = Node::start(&set, &source_data);
    let target = Node::start(&set, &tmp.join("target.redb"));
    assert!(source.last_seq().unwrap_or(0) >= n as u64);
    (source, target)
}

/// The target holds exactly the source's documents: same ids, revs and bodies.
fn assert_same_documents(source: &Node, target: &Node, n: usize) {
    let on_source = source.list_docs(SYSMETA);
    let on_target = target.list_docs(SYSMETA);
    assert_eq!(on_source.len(), n, "the source holds every record");
    assert_eq!(on_target.len(), n, "the target holds every record, once");
    if on_source != on_target {
        let first = first_difference(&on_source, &on_target);
        panic!("the target differs from the source, first at {first}");
    }
}

/// The target's copy of the replication's checkpoint is the source's feed head: a rerun
/// would send nothing.
fn assert_checkpoint_at_head(source: &Node, target: &Node, run: &Replication) {
    let id = run.progress["checkpoint"]
        .as_str()
        .unwrap_or_else(|| panic!("a checkpoint id in {}", run.progress));
    assert_eq!(target.checkpoint(id), source.last_seq(), "{}", run.progress);
}

fn first_difference(
    a: &BTreeMap<String, (String, Value)>,
    b: &BTreeMap<String, (String, Value)>,
) -> String {
    for (id, doc) in a {
        match b.get(id) {
            None => return format!("{id}: missing on the target"),
            Some(other) if other != doc => {
                return format!("{id}: source {doc:?}, target {other:?}")
            }
            Some(_) => {}
        }
    }
    let extra = b.keys().find(|k| !a.contains_key(*k));
    format!("{extra:?}: only on the target")
}

fn already_known(runs: &[Replication]) -> u64 {
    runs.iter().map(|r| r.count("alreadyKnown")).sum()
}

fn describe(runs: &[Replication]) -> String {
    runs.iter()
        .map(|r| format!("[{}] {}\n{}", r.status, r.progress, r.stderr))
        .collect::<Vec<_>>()
        .join("\n")
}

fn poll_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_target_killed_mid_run_resumes_where_it_stopped() {
    let n = doc_count();
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let (source, mut target) = source_and_target(tmp.path(), n);
    let batch = BATCH.to_string();
    // The target keeps its URL and token across the restart.
    let (target_url, target_token) = (target.url.clone(), target.token.clone());
    let command = || {
        replicate_command(
            &source.url,
            &source.token,
            &target_url,
            &target_token,
            &["--batch-size", &batch],
        )
    };
    let mut running = RunningReplication::spawn(command());

    // Kill the target half way through (its feed counts what it stored: it started empty).
    let half = (n / 2) as u64;
    poll_until("half of the documents reach the target", || {
        target.last_seq().is_some_and(|s| s >= half) || running.has_exited()
    });
    assert!(
        !running.has_exited(),
        "the replication ended before the target showed progress:\n{}",
        describe(&[running.wait()])
    );
    let killed = Instant::now();
    target.kill();
    target.restart();
    let at_restart = target.last_seq().expect("the restarted target answers");
    assert!(
        at_restart < n as u64,
        "the target was killed after it had everything ({at_restart}): nothing was resumed"
    );

    // The replicator retries the target until it is back; one that gave up is run again.
    let mut runs = Vec::new();
    let mut resumed: Option<Duration> = None;
    let mut current = Some(running);
    while let Some(mut run) = current.take() {
        let deadline = Instant::now() + PATIENCE;
        while !run.has_exited() {
            if resumed.is_none() && target.last_seq().is_some_and(|s| s > at_restart) {
                resumed = Some(killed.elapsed());
            }
            assert!(Instant::now() < deadline, "the replication does not end");
            std::thread::sleep(Duration::from_millis(5));
        }
        let finished = run.wait();
        let ok = finished.status.success();
        runs.push(finished);
        if !ok {
            assert!(
                runs.len() < 3,
                "the replication keeps failing:\n{}",
                describe(&runs)
            );
            current = Some(RunningReplication::spawn(command()));
        }
    }
    let resumed = resumed.unwrap_or_else(|| killed.elapsed());
    eprintln!(
        "replicate_faults: {n} documents; target killed at {at_restart} stored, first batch after the restart {:.2} s after the kill ({} run(s), {} revisions sent twice)",
        resumed.as_secs_f64(),
        runs.len(),
        already_known(&runs)
    );

    assert_same_documents(&source, &target, n);
    let last = runs.last().expect("a run");
    assert_checkpoint_at_head(&source, &target, last);
    assert!(
        already_known(&runs) <= BATCH as u64,
        "at most the batch in flight is sent twice:\n{}",
        describe(&runs)
    );
}

#[test]
fn a_connection_cut_mid_batch_costs_nothing() {
    let n = doc_count();
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let (source, target) = source_and_target(tmp.path(), n);
    let proxy = CuttingProxy::start(target.addr, 16 * 1024, 2);

    let started = Instant::now();
    let run = RunningReplication::spawn(replicate_command(
        &source.url,
        &source.token,
        &proxy.url(),
        &target.token,
        &["--batch-size", &BATCH.to_string()],
    ))
    .wait();
    run.assert_success();
    eprintln!(
        "replicate_faults: {n} documents replicated through two cut connections in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(proxy.cuts(), 2, "the proxy cut two batches");
    assert_eq!(run.count("stored"), n as u64, "{}", run.progress);
    assert!(
        run.count("alreadyKnown") <= BATCH as u64,
        "{}",
        run.progress
    );
    assert_same_documents(&source, &target, n);
    assert_checkpoint_at_head(&source, &target, &run);
}

// ---------------------------------------------------------------------------------- proxy

/// A TCP proxy to one upstream that forwards HTTP/1.1 both ways and, for the first `max_cuts`
/// `POST /replication/apply` requests whose body is longer than `cut_after` bytes, closes
/// both connections after forwarding `cut_after` bytes of the body: the request never
/// completes, as when a network drops mid-transfer.
struct CuttingProxy {
    addr: SocketAddr,
    cuts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl CuttingProxy {
    fn start(upstream: SocketAddr, cut_after: usize, max_cuts: usize) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a proxy port");
        let addr = listener.local_addr().expect("the proxy's address");
        let cuts = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (cuts2, stop2) = (Arc::clone(&cuts), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    // The upstream is down: the client sees the connection close.
                    continue;
                };
                let (Ok(mut server_read), Ok(mut client_write)) =
                    (server.try_clone(), client.try_clone())
                else {
                    continue;
                };
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server_read, &mut client_write);
                    let _ = client_write.shutdown(Shutdown::Both);
                });
                let cuts = Arc::clone(&cuts2);
                std::thread::spawn(move || {
                    forward_requests(client, server, cut_after, max_cuts, &cuts);
                });
            }
        });
        CuttingProxy { addr, cuts, stop }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Where the client → server stream is.
enum Framing {
    /// Reading a request's head.
    Head,
    /// Forwarding `left` bytes of a body; `cut_at`: close once this many are left.
    Body { left: usize, cut_at: Option<usize> },
    /// A framing this proxy does not follow (chunked): everything passes.
    Opaque,
}

/// Forward requests from `client` to `server`, cutting as [`CuttingProxy`] says.
fn forward_requests(
    mut client: TcpStream,
    mut server: TcpStream,
    cut_after: usize,
    max_cuts: usize,
    cuts: &AtomicUsize,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut framing = Framing::Head;
    let close = |client: &TcpStream, server: &TcpStream| {
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
    };
    loop {
        let read = match client.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = server.shutdown(Shutdown::Write);
                return;
            }
            Ok(k) => k,
        };
        pending.extend_from_slice(&buf[..read]);
        // Consume as much of `pending` as the framing allows.
        loop {
            match &mut framing {
                Framing::Opaque => {
                    if server.write_all(&pending).is_err() {
                        return close(&client, &server);
                    }
                    pending.clear();
                    break;
                }
                Framing::Head => {
                    let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                        break;
                    };
                    let head: Vec<u8> = pending.drain(..end + 4).collect();
                    if server.write_all(&head).is_err() {
                        return close(&client, &server);
                    }
                    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                    let apply = text.starts_with("post /replication/apply");
                    let length = text.lines().find_map(|l| {
                        l.strip_prefix("content-length:")
                            .and_then(|v| v.trim().parse::<usize>().ok())
                    });
                    let chunked = text
                        .lines()
                        .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
                    let long = chunked || length.is_some_and(|l| l > cut_after);
                    let cut = apply
                        && long
                        && cuts
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                                (c < max_cuts).then_some(c + 1)
                            })
                            .is_ok();
                    framing = match (chunked, length) {
                        (true, _) if cut => Framing::Body {
                            left: usize::MAX,
                            cut_at: Some(usize::MAX - cut_after),
                        },
                        (true, _) => Framing::Opaque,
                        (false, l) => {
                            let left = l.unwrap_or(0);
                            Framing::Body {
                                left,
                                cut_at: cut.then(|| left - cut_after),
                            }
                        }
                    };
                }
                Framing::Body { left, cut_at } => {
                    if *left == 0 {
                        framing = Framing::Head;
                        continue;
                    }
                    if pending.is_empty() {
                        break;
                    }
                    let floor = cut_at.unwrap_or(0);
                    let take = pending.len().min(*left - floor);
                    if server.write_all(&pending[..take]).is_err() {
                        return close(&client, &server);
                    }
                    pending.drain(..take);
                    *left -= take;
                    if cut_at.is_some() && *left == floor {
                        // Mid-body: drop the connection both ways.
                        return close(&client, &server);
                    }
                }
            }
        }
    }
}
