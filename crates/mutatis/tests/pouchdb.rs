//! PouchDB 9 (memory adapter) syncing with the real `mutatis serve` binary through
//! `/couch/{release}`: the scenarios in `tests/pouchdb/*.mjs`, run with Node on redb and on
//! PostgreSQL (`DATABASE_URL`). Without `node` or the root's `node_modules` (`npm ci`) the
//! tests print `SKIPPED: …` and pass, except under `CI`, where they fail.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{ci, example, node_on, Store, StoreNode};

/// How long one scenario may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

/// The workspace root, if Node and PouchDB are there to run the scenarios; else says loudly
/// that they did not run (and fails under `CI`).
fn pouchdb_ready(what: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let modules = ["pouchdb", "pouchdb-adapter-memory"].iter().all(|m| {
        root.join("node_modules")
            .join(m)
            .join("package.json")
            .exists()
    });
    if node && modules {
        return Some(root);
    }
    let why = if node {
        "node_modules lacks pouchdb or pouchdb-adapter-memory (run `npm ci` at the workspace root)"
    } else {
        "`node` is not on the PATH"
    };
    assert!(!ci(), "CI must run the PouchDB scenario {what}, but {why}");
    // Written to stderr itself, past libtest's capture of `eprintln!`: the line must show.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: PouchDB scenario {what} NOT RUN: {why}"
    );
    None
}

/// Run `tests/pouchdb/{script}` against `node` with `env`; `on_command` does what the script
/// asks (`CMD …` lines on its stdout) before the script is told `ok`. Panics with the
/// script's output if it fails.
fn run_script(
    script: &str,
    node: &mut StoreNode,
    env: &[(&str, &str)],
    mut on_command: impl FnMut(&str, &mut StoreNode),
) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pouchdb");
    let mut cmd = Command::new("node");
    cmd.arg(dir.join(script))
        .current_dir(&dir)
        .env("MUTATIS_URL", &node.url)
        .env("MUTATIS_ADMIN", &node.token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("node starts");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            s.push_str(&line);
            s.push('\n');
        }
        s
    });
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let mut out = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                eprintln!("  [{script}] {line}");
                out.push_str(&line);
                out.push('\n');
                if let Some(c) = line.strip_prefix("CMD ") {
                    on_command(c.trim(), node);
                    writeln!(stdin, "ok").expect("the script reads its stdin");
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("{script} took longer than {SCRIPT_TIMEOUT:?}:\n{out}");
            }
        }
    }
    let status = child.wait().expect("node exits");
    let err = errors.join().unwrap_or_default();
    assert!(
        status.success() && out.lines().any(|l| l == "PASS"),
        "{script} on {} failed ({status}):\n{out}\n{err}",
        node.url
    );
}

fn for_each_store(what: &str, test: impl Fn(&Store)) {
    if pouchdb_ready(what).is_none() {
        return;
    }
    for store in Store::all(&format!("the PouchDB scenario {what}")) {
        eprintln!("PouchDB scenario {what} on {}", store.name());
        test(&store);
    }
}

fn todo_node(store: &Store) -> StoreNode {
    node_on(store, &example("todo"), &[])
}

#[test]
fn a_release_4_app_and_a_release_5_app_share_their_edits() {
    for_each_store("two releases", |store| {
        let mut node = todo_node(store);
        let writer = node.new_token("app", "writer");
        run_script(
            "two_releases.mjs",
            &mut node,
            &[("WRITER", &writer)],
            |_, _| {},
        );
    });
}

#[test]
fn concurrent_offline_edits_conflict_alike_everywhere_and_resolve_everywhere() {
    for_each_store("conflict", |store| {
        let mut node = todo_node(store);
        let writer = node.new_token("app", "writer");
        run_script("conflict.mjs", &mut node, &[("WRITER", &writer)], |_, _| {});
    });
}

#[test]
fn live_sync_survives_a_killed_node() {
    for_each_store("live sync across a SIGKILL", |store| {
        let mut node = todo_node(store);
        let writer = node.new_token("app", "writer");
        run_script(
            "live_restart.mjs",
            &mut node,
            &[("WRITER", &writer)],
            |cmd, node| match cmd {
                "kill-restart-begin" => node.kill(),
                "kill-restart-end" => node.restart(),
                other => panic!("unknown command {other}"),
            },
        );
    });
}

#[test]
fn roles_and_policies_hold_through_pouchdb() {
    for_each_store("roles and policies", |store| {
        let mut node = todo_node(store);
        let reader = node.new_token("rita", "reader");
        let bob = node.new_token("bob", "writer");
        let alice = node.new_token("alice", "writer");
        node.create_doc(
            "todo",
            "public",
            "5",
            &json!({"title": "p", "status": "open", "important": false}),
        );
        node.create_doc_with_access(
            "todo",
            "secret",
            "5",
            r#"{"read": ["alice"], "write": ["alice"]}"#,
            &json!({"title": "s", "status": "open", "important": false}),
        );
        run_script(
            "auth.mjs",
            &mut node,
            &[("READER", &reader), ("BOB", &bob), ("ALICE", &alice)],
            |_, _| {},
        );
    });
}

/// A copy of `examples/todo` in `dir`: with release 4 still supported (`months_later`
/// false), or after a deployment that added todo@4 (a due date) and release 6 and
/// deprecated release 4 (sunset 2027-03-01).
fn todo_set(dir: &Path, months_later: bool) -> PathBuf {
    let types = dir.join("types");
    std::fs::create_dir_all(&types).expect("a schema-set folder");
    let mut todo =
        std::fs::read_to_string(example("todo").join("types/todo.yaml")).expect("todo.yaml");
    let releases = if months_later {
        todo.push_str(
            "  4:\n    description: Items can have a due date.\n    lens:\n      - add: {name: due, type: string, default: \"\"}\n",
        );
        "  - {name: \"4\", types: {todo: 2}, status: deprecated, sunset: 2027-03-01}\n  - {name: \"5\", types: {todo: 3}, status: supported}\n  - {name: \"6\", types: {todo: 4}, status: current}\n"
    } else {
        "  - {name: \"4\", types: {todo: 2}, status: supported}\n  - {name: \"5\", types: {todo: 3}, status: current}\n"
    };
    std::fs::write(types.join("todo.yaml"), todo).expect("todo.yaml written");
    std::fs::write(
        dir.join("mutatis.yaml"),
        format!(
            "name: todo-app\nreleases:\n  - {{name: \"3\", types: {{todo: 1}}, status: unsupported}}\n{releases}storage:\n  todo: {{version: 3, strategy: eager}}\n"
        ),
    )
    .expect("mutatis.yaml written");
    dir.to_owned()
}

#[test]
fn an_app_offline_for_months_comes_back_until_its_release_is_retired() {
    for_each_store("months offline", |store| {
        let sets = tempfile::tempdir().expect("a scratch folder");
        let before = todo_set(&sets.path().join("before"), false);
        let after = todo_set(&sets.path().join("after"), true);
        let mut node = node_on(store, &before, &[]);
        let writer = node.new_token("app", "writer");
        run_script(
            "offline_months.mjs",
            &mut node,
            &[("WRITER", &writer)],
            |cmd, node| {
                let day = match cmd {
                    "deploy-release-6" => support::REFERENCE_DATE,
                    "past-sunset" => "2027-03-02",
                    other => panic!("unknown command {other}"),
                };
                node.restart_as(&after, vec!["--reference-date".into(), day.into()]);
            },
        );
    });
}
