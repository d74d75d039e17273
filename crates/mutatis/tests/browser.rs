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

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use support::browser::{self, eventually, shots_dir, workspace, Script};
use support::{example, Node, NodeOptions};

/// A day on which release 4 of examples/todo is deprecated (sunset 2027-03-01)…
const DEPRECATED_DAY: &str = "2026-06-01";
/// …and one on which it is no longer served.
const RETIRED_DAY: &str = "2027-03-02";

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

/// `web_todo.mjs` on the page at `url`, in `mode` (`""` or `cross`).
fn web_todo(url: &str, mode: &str) -> Script {
    Script::start(
        "web_todo.mjs",
        &[
            ("WEB_TODO_URL", url.to_owned()),
            ("WEB_TODO_SHOTS", shots_dir().display().to_string()),
            ("WEB_TODO_MODE", mode.to_owned()),
        ],
    )
}

/// Whether the browser test must be skipped (said loudly); under `CI` a missing tool fails.
fn skip() -> bool {
    browser::skip("examples/web-todo")
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
    let mut script = web_todo(&format!("{}/app/?token={writer}", node.url), "");
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
    let script = web_todo(
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
