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
                assert_ne!(v["phase"], "error", "the browser script failed: {v}");
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

/// `web_todo.mjs` running, its stdout lines on a channel; killed on drop.
struct Script {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Script {
    /// Start the script on the page at `url`, in `mode` (`""` or `cross`).
    fn start(url: &str, mode: &str) -> Script {
        let mut child = Command::new(node_bin().expect("checked by skip()"))
            .arg(workspace().join("crates/mutatis/tests/browser/web_todo.mjs"))
            .current_dir(workspace())
            .env("WEB_TODO_URL", url)
            .env("WEB_TODO_SHOTS", shots_dir())
            .env("WEB_TODO_MODE", mode)
            .env("CHROMIUM", CHROMIUM)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Script {
            child,
            stdin,
            lines: rx,
        }
    }

    /// The script's next JSON message, within `timeout`.
    fn next(&self, timeout: Duration) -> Value {
        let v = next_message(&self.lines, timeout);
        eprintln!("web_todo.mjs: {v}");
        v
    }

    /// A line for the script to read.
    fn tell(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").expect("the script reads its stdin");
    }

    /// Close its stdin and wait for it to exit successfully.
    fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("the script ends");
        assert!(status.success(), "the browser script exited {status:?}");
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the browser test must be skipped (said loudly); under `CI` a missing tool fails.
fn skip() -> bool {
    let Some(what) = missing() else { return false };
    let ci = std::env::var_os("CI").is_some();
    // Straight to the process's stderr, past libtest's capture: a passing test's
    // `eprintln!` output is never shown, and this must be seen.
    let bar = "=".repeat(78);
    let _ = writeln!(
        std::io::stderr(),
        "\n{bar}\nSKIPPED: the browser test of examples/web-todo did not run: missing {what}\n{bar}"
    );
    assert!(!ci, "CI is set: the browser test must run (missing {what})");
    true
}

#[test]
fn web_todo_offline_then_synced_then_locked() {
    if skip() {
        return;
    }
    let scratch = tempfile::tempdir().expect("a temporary folder");
    let data = scratch.path().join("todo.redb");
    let mut node = Node::start_with(&example("todo"), &data, node_options(None, DEPRECATED_DAY));
    let writer = node.new_token("web-todo", "writer");
    let shots = shots_dir();
    let mut script = Script::start(&format!("{}/app/?token={writer}", node.url), "");
    let synced = script.next(Duration::from_secs(180));

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
    script.tell("locked");
    let locked = script.next(Duration::from_secs(120));
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
    script.finish();
    drop(node);
}

#[test]
fn web_todo_from_another_origin_through_cors() {
    if skip() {
        return;
    }
    // The page comes from one node (only its static files are used)…
    let pages_scratch = tempfile::tempdir().expect("a temporary folder");
    let pages = Node::start_with(
        &example("todo"),
        &pages_scratch.path().join("pages.redb"),
        node_options(None, DEPRECATED_DAY),
    );
    // …and talks to another, which allows that origin.
    let api_scratch = tempfile::tempdir().expect("a temporary folder");
    let api = Node::start_with(
        &example("todo"),
        &api_scratch.path().join("api.redb"),
        NodeOptions {
            extra_args: vec![
                "--cors-origin".into(),
                pages.url.clone(),
                "--reference-date".into(),
                DEPRECATED_DAY.into(),
            ],
            ..NodeOptions::default()
        },
    );
    let writer = api.new_token("web-todo", "writer");
    let script = Script::start(
        &format!("{}/app/?server={}&token={writer}", pages.url, api.url),
        "cross",
    );
    let cross = script.next(Duration::from_secs(180));
    // The notice came from the API's own response headers, which CORS let the page read.
    assert_eq!(cross["start"]["deprecationSource"], "headers", "{cross}");
    assert!(cross["start"]["deprecation"]
        .as_str()
        .unwrap_or_default()
        .contains("2027-03-01"));
    let todos = cross["added"]["todos"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(todos.len(), 1, "{cross}");
    let id = todos[0]["id"]
        .as_str()
        .and_then(|i| i.strip_prefix("todo:"))
        .expect("a todo:ID");
    let body = eventually(Duration::from_secs(60), || {
        api.get_doc("todo", id, "4")
            .map(|(_, b)| b)
            .ok_or_else(|| format!("the API node does not hold todo {id}"))
    });
    assert_eq!(
        body,
        serde_json::json!({"title": "across origins", "done": false, "important": true})
    );
    // The page's own node got nothing.
    assert_eq!(pages.get_doc("todo", id, "4"), None);
    script.finish();
}
