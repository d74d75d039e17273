//! Replication throughput: 100k documents from one store to a fresh one, same version against
//! across versions, side by side in one run.
//!
//! ```text
//! cargo run --release -p mutatis-benches --bin replication_load -- [DOCS] [ROUNDS] [--http]
//! ```
//!
//! The source stores `todo@3` (examples/todo). Targets, each fresh, alternate:
//!
//! - **same version**: a node on the same schema set (`todo@3`);
//! - **across versions**: a node that has never heard of `todo@3` (its schema set stops at
//!   `todo@2`): every document is translated down through the source's manifest, checked for
//!   loss (the `3 → 2` lens loses the status `started`, so every document takes the round
//!   trip check) and, for a third of them, carried beside the v2 body (`carry` policy).
//!
//! By default both ends are stores in this process ([`LocalPeer`]): the figures are the
//! replication engine and the stores (redb, durable commits, one per batch of 500). With
//! `--http` every node is a `mutatis serve` process (`target/release/mutatis`: build it
//! first with `cargo build --release -p mutatis`) and this process is the replicator,
//! through [`HttpPeer`]s: what `mutatis replicate` does.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use mutatis_client::HttpPeer;
use mutatis_replication::{replicate, LocalPeer, Options, Peer, Progress};
use mutatis_schema::SchemaSet;
use mutatis_store::{ImportDoc, LossPolicy, RedbBackend, RedbOptions, Store};
use serde_json::json;

fn todo_set(max: u32) -> Result<Arc<SchemaSet>, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/todo");
    let text = std::fs::read_to_string(root.join("types/todo.yaml")).map_err(|e| e.to_string())?;
    let (settings, ty) = if max >= 3 {
        let s = std::fs::read_to_string(root.join("mutatis.yaml")).map_err(|e| e.to_string())?;
        (s, text)
    } else {
        // The type file cut before version 3: a node released before todo@3 existed.
        let cut = text
            .find("\n  3:")
            .ok_or("examples/todo/types/todo.yaml has no version 3")?;
        let settings = "name: todo-app
releases:
  - {name: \"3\", types: {todo: 1}, status: unsupported}
  - {name: \"4\", types: {todo: 2}, status: current}
storage:
  todo: {version: 2, strategy: eager}
"
        .to_owned();
        (settings, format!("{}\n", &text[..cut]))
    };
    SchemaSet::from_sources(vec![
        (PathBuf::from("mutatis.yaml"), settings),
        (PathBuf::from("types/todo.yaml"), ty),
    ])
    .map(Arc::new)
    .map_err(|e| e.to_string())
}

fn open(dir: &Path, name: &str, set: Arc<SchemaSet>) -> Result<LocalPeer<RedbBackend>, String> {
    let backend = RedbBackend::open(dir.join(format!("{name}.redb")), RedbOptions::default())
        .map_err(|e| e.to_string())?;
    Ok(LocalPeer::new(
        Arc::new(Store::new(backend, set)),
        name,
        name,
    ))
}

async fn run_between<S: Peer, T: Peer>(
    source: &S,
    target: &T,
    opts: &Options,
) -> Result<Progress, String> {
    replicate(source, target, opts, |_| {})
        .await
        .map_err(|e| e.to_string())
}

/// A folder holding the todo schema set up to `max`, for `mutatis serve`.
fn set_dir(dir: &Path, max: u32) -> Result<PathBuf, String> {
    let out = dir.join(format!("set{max}"));
    let set = todo_set(max)?;
    std::fs::create_dir_all(out.join("types")).map_err(|e| e.to_string())?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/todo");
    if max >= 3 {
        for f in ["mutatis.yaml", "types/todo.yaml"] {
            std::fs::copy(root.join(f), out.join(f)).map_err(|e| e.to_string())?;
        }
    } else {
        let text =
            std::fs::read_to_string(root.join("types/todo.yaml")).map_err(|e| e.to_string())?;
        let cut = text.find("\n  3:").ok_or("no version 3 in todo.yaml")?;
        std::fs::write(out.join("types/todo.yaml"), format!("{}\n", &text[..cut]))
            .map_err(|e| e.to_string())?;
        std::fs::write(
            out.join("mutatis.yaml"),
            "name: todo-app\nreleases:\n  - {name: \"3\", types: {todo: 1}, status: unsupported}\n  - {name: \"4\", types: {todo: 2}, status: current}\nstorage:\n  todo: {version: 2, strategy: eager}\n",
        )
        .map_err(|e| e.to_string())?;
    }
    drop(set);
    Ok(out)
}

const TOKEN: &str = "mutatis_abababababababababababababababababababababababababababababababab";

/// A `mutatis serve` child, killed on drop.
struct Server {
    child: std::process::Child,
    url: String,
}

impl Server {
    fn start(set: &Path, data: &Path) -> Result<Server, String> {
        use std::io::BufRead;
        let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/mutatis");
        let mut child = std::process::Command::new(&bin)
            .arg("serve")
            .arg(set)
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .env("MUTATIS_ADMIN_TOKEN", TOKEN)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "{}: {e} (build it: cargo build --release -p mutatis)",
                    bin.display()
                )
            })?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .ok_or("mutatis serve exited before printing its URL")?
                .map_err(|e| e.to_string())?;
            if let Some((_, url)) = line.split_once(" at ") {
                break url.trim().to_owned();
            }
        };
        Ok(Server { child, url })
    }

    fn peer(&self) -> Result<HttpPeer, String> {
        HttpPeer::new(self.url.clone(), Some(TOKEN.to_owned())).map_err(|e| e.to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("replication_load: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let docs: usize = args
        .next()
        .map_or(Ok(100_000), |a| a.parse())
        .map_err(|e| format!("DOCS: {e}"))?;
    let rounds: usize = args
        .next()
        .map_or(Ok(3), |a| a.parse())
        .map_err(|e| format!("ROUNDS: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    let source = open(dir.path(), "source", todo_set(3)?)?;
    let statuses = ["open", "done", "started"];
    let started = Instant::now();
    for chunk in (0..docs).collect::<Vec<_>>().chunks(5_000) {
        let batch: Vec<ImportDoc> = chunk
            .iter()
            .map(|i| ImportDoc {
                id: format!("item-{i:07}"),
                rev: None,
                body: json!({"title": format!("item {i}"), "status": statuses[i % 3], "important": i % 2 == 0}),
            })
            .collect();
        source
            .store()
            .import("todo", 3, &batch)
            .map_err(|e| e.to_string())?;
    }
    eprintln!(
        "loaded {docs} todo@3 documents in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let opts = Options {
        policy: LossPolicy::Carry,
        batch_size: 500,
        ..Options::default()
    };
    let http = std::env::args().any(|a| a == "--http");
    let mut same = Vec::new();
    let mut cross = Vec::new();
    // Over HTTP the source is a server on the file just loaded.
    let (source_node, local_source) = if http {
        drop(source);
        let store_path = dir.path().join("source.redb");
        (
            Some(Server::start(&set_dir(dir.path(), 3)?, &store_path)?),
            None,
        )
    } else {
        (None, Some(source))
    };
    for round in 0..rounds {
        for (label, max, out) in [("same", 3, &mut same), ("cross", 2, &mut cross)] {
            let name = format!("{label}-{round}");
            let t = Instant::now();
            let p = match (&source_node, &local_source) {
                (Some(src), _) => {
                    let target = Server::start(
                        &set_dir(dir.path(), max)?,
                        &dir.path().join(format!("{name}.redb")),
                    )?;
                    let p = rt.block_on(run_between(&src.peer()?, &target.peer()?, &opts))?;
                    drop(target);
                    p
                }
                (None, Some(local)) => {
                    let target = open(dir.path(), &name, todo_set(max)?)?;
                    rt.block_on(run_between(local, &target, &opts))?
                }
                (None, None) => return Err("no source".into()),
            };
            let secs = t.elapsed().as_secs_f64();
            let written = p.tally.written();
            if written != docs as u64 {
                return Err(format!("{label}: {written} of {docs} documents written"));
            }
            let rate = docs as f64 / secs;
            eprintln!(
                "round {round} {label:5}: {rate:>9.0} docs/s ({secs:.2} s; carried {})",
                p.tally.carried
            );
            out.push(rate);
            let _ = std::fs::remove_file(dir.path().join(format!("{name}.redb")));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (s, c) = (median(&mut same), median(&mut cross));
    let how = if http {
        "over HTTP, mutatis serve processes"
    } else {
        "stores in one process"
    };
    println!("replication of {docs} documents ({how}), batches of 500, median of {rounds} rounds");
    println!("  same version   (todo@3 -> todo@3): {s:>9.0} docs/s");
    println!("  across versions (todo@3 -> a todo@2 node): {c:>9.0} docs/s");
    println!("  across / same: {:.2} (target >= 0.80)", c / s);
    Ok(())
}
