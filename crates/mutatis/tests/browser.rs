//! `examples/web-todo` in a real browser: headless Chromium (Debian's `/usr/bin/chromium`)
//! driven by `playwright-core` (`tests/browser/web_todo.mjs`) opens the page as
//! `mutatis serve examples/todo --static examples/web-todo` serves it, adds todos while the
//! browser is offline, comes back online, and this test checks that the node holds them (in
//! release 4's shape, through `/docs` and through `/couch/4`). Then the node is restarted
//! on the same address with release 4 past its sunset, and the reloaded page must lock
//! itself and keep the todos it holds. Screenshots go to `target/browser-test/`.
//!
//! Needs `node`, the root `node_modules` (`npm ci`) and `/usr/bin/chromium`: without them
//! the test says so loudly on stderr and passes, except under `CI`, where it fails.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use support::{example, Node, NodeOptions};

const CHROMIUM: &str = "/usr/bin/chromium";

/// A day on which release 4 of examples/todo is deprecated (sunset 2027-03-01)…
const DEPRECATED_DAY: &str = "2026-06-01";
/// …and one on which it is no longer served.
const RETIRED_DAY: &str = "2027-03-02";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `node` on the PATH.
fn node_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("node"))
        .find(|p| p.is_file())
}

/// What is missing to run the browser, if anything.
fn missing() -> Option<String> {
    let mut missing = Vec::new();
    if node_bin().is_none() {
        missing.push("`node` on the PATH".to_owned());
    }
    if !workspace()
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        missing.push("node_modules/playwright-core (run `npm ci` at the workspace root)".into());
    }
    if !Path::new(CHROMIUM).is_file() {
        missing.push(format!("{CHROMIUM} (Debian's `chromium` package)"));
    }
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// `target/browser-test/`, where the screenshots go.
fn shots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|target| target.join("browser-test"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-test"));
    std::fs::create_dir_all(&dir).expect("the screenshot folder");
    dir
}

fn node_options(listen: Option<String>, day: &str) -> NodeOptions {
    let site = workspace().join("examples/web-todo");
    NodeOptions {
        listen,
        extra_args: vec![
            "--static".into(),
            site.display().to_string(),
            "--reference-date".into(),
            day.into(),
        ],
        ..NodeOptions::default()
    }
}

/// The script's next JSON line, within `timeout`.
fn next_message(rx: &mpsc::Receiver<String>, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the browser script said nothing within {timeout:?}"));
        // Anything that is not one of its JSON lines (a warning of node's) is passed on.
        match serde_json::from_str::<Value>(&line) {
            Ok(v) if v.get("phase").is_some() => {
                assert_ne!(
                    v["phase"], "error",
                    "the browser script failed: {}",
                    v["message"]
                );
                return v;
            }
            _ => eprintln!("web_todo.mjs: {line}"),
        }
    }
}

/// Polls until `check` holds, up to `timeout`; the last value it saw otherwise.
fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => panic!("{e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

#[test]
fn web_todo_offline_then_synced_then_locked() {
    if let Some(what) = missing() {
        let ci = std::env::var_os("CI").is_some();
        eprintln!();
        eprintln!("==================================================================");
        eprintln!("SKIPPED: the browser test of examples/web-todo did not run: missing {what}");
        eprintln!("==================================================================");
        assert!(!ci, "CI is set: the browser test must run (missing {what})");
        return;
    }
    let scratch = tempfile::tempdir().expect("a temporary folder");
    let data = scratch.path().join("todo.redb");
    let mut node = Node::start_with(&example("todo"), &data, node_options(None, DEPRECATED_DAY));
    let writer = node.new_token("web-todo", "writer");
    let url = format!("{}/app/?token={writer}", node.url);
    let shots = shots_dir();

    let mut child = Command::new(node_bin().expect("checked above"))
        .arg(workspace().join("crates/mutatis/tests/browser/web_todo.mjs"))
        .current_dir(workspace())
        .env("WEB_TODO_URL", &url)
        .env("WEB_TODO_SHOTS", &shots)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Kill the browser whatever happens below.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Reap(child);

    let synced = next_message(&rx, Duration::from_secs(180));
    eprintln!("web_todo.mjs: {synced}");

    // The deprecation notice: release 4 is deprecated on this day, with its sunset.
    let notice = synced["start"]["deprecation"].as_str().unwrap_or_default();
    assert!(notice.contains("deprecated"), "notice: {notice:?}");
    assert!(notice.contains("2027-03-01"), "notice: {notice:?}");
    assert_eq!(synced["start"]["locked"], Value::Null);

    // Offline, the page held the todos itself.
    let todos = synced["offline"]["todos"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(todos.len(), 3, "{todos:?}");
    assert_eq!(synced["offline"]["status"], "offline");

    // Back online, the node holds each one, as release 4 reads it, under the id after
    // `todo:`.
    for t in &todos {
        let couch_id = t["id"].as_str().expect("an id");
        let id = couch_id.strip_prefix("todo:").expect("ids are todo:ID");
        let got = eventually(Duration::from_secs(60), || {
            node.get_doc("todo", id, "4")
                .ok_or_else(|| format!("the node does not hold todo {id} (synced: {synced})"))
                .and_then(|(_, body)| {
                    let want = serde_json::json!({
                        "title": t["title"],
                        "done": t["done"],
                        "important": t["important"],
                    });
                    if body == want {
                        Ok(body)
                    } else {
                        Err(format!("todo {id} is {body}, not {want}"))
                    }
                })
        });
        // Stored at todo@3, where `done` became `status`: the node translated.
        let (_, v3) = node
            .get_doc("todo", id, "5")
            .expect("readable in release 5");
        assert_eq!(
            v3["status"],
            if got["done"] == true { "done" } else { "open" },
            "{v3}"
        );
    }
    assert!(todos.iter().any(|t| t["done"] == true));
    // The CouchDB view agrees: the three documents under their CouchDB ids.
    let all: Value = node
        .request(Method::GET, "/couch/4/_all_docs")
        .send()
        .expect("_all_docs")
        .json()
        .expect("JSON");
    let ids: Vec<&str> = all["rows"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r["id"].as_str()).collect())
        .unwrap_or_default();
    for t in &todos {
        assert!(ids.contains(&t["id"].as_str().unwrap_or_default()), "{all}");
    }
    assert!(shots.join("web-todo.png").is_file());

    // Release 4 retired: the same node, on the same address (the page's origin, so its
    // local database), a day after the sunset.
    let addr = node.addr.to_string();
    node.kill();
    let node = Node::start_with(
        &example("todo"),
        &data,
        node_options(Some(addr), RETIRED_DAY),
    );
    writeln!(stdin, "locked").expect("the script reads its stdin");
    let locked = next_message(&rx, Duration::from_secs(120));
    eprintln!("web_todo.mjs: {locked}");
    let text = locked["locked"]["locked"].as_str().unwrap_or_default();
    assert!(
        text.contains("this app version is no longer supported, please update")
            || text.contains("This app version is no longer supported, please update"),
        "{text:?}"
    );
    assert_eq!(locked["locked"]["addDisabled"], true);
    assert_eq!(locked["locked"]["status"], "locked");
    // The todos on the device are kept, and shown.
    assert_eq!(
        locked["locked"]["todos"].as_array().map(Vec::len),
        Some(3),
        "{locked}"
    );
    assert!(shots.join("web-todo-locked.png").is_file());
    drop(stdin);
    let status = child.0.wait().expect("the script ends");
    assert!(status.success(), "the browser script exited {status:?}");
    drop(node);
}
