//! The operator's dashboard (`/ui`) in a real browser: headless Chromium driven by
//! `playwright-core` (`tests/browser/dashboard.mjs`) opens the page served by `mutatis serve
//! examples/todo`. Without a token it shows only the login form, and a wrong token the
//! server's own refusal; with the admin token it shows the releases with the usage this test
//! made (the same figures as `GET /admin/releases`), follows a migration over enough documents
//! to watch its progress bar move until the switch, the changelog as `GET /changelog` words it
//! and one release's API from `/openapi.json?release=4`. Any console error or uncaught page
//! error fails the script. Screenshots go to `target/browser-test/dashboard-*.png`.
//!
//! Needs `node`, the root `node_modules` (`npm ci`) and `/usr/bin/chromium`: without them the
//! test says so loudly on stderr and passes, except under `CI`, where it fails.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::browser::{self, shots_dir, Script};
use support::{example, Node};

/// Documents imported before the migration: enough that, one document per batch, it runs for
/// many of the page's one-second polls (about 30 s on a debug build).
const DOCS: usize = 4_000;
/// Documents per import request (well under the default body limit).
const IMPORT_CHUNK: usize = 2_000;

/// The known mix of requests, per release: (release, token name, reads).
const MIX: [(&str, &str, u64); 3] = [("5", "app-5", 7), ("4", "app-4", 3), ("4", "app-4b", 2)];

fn import_docs(node: &Node) {
    for start in (0..DOCS).step_by(IMPORT_CHUNK) {
        let docs: Vec<Value> = (start..(start + IMPORT_CHUNK).min(DOCS))
            .map(|i| {
                json!({
                    "id": format!("t{i:05}"),
                    "doc": {"title": format!("todo {i}"), "status": if i % 3 == 0 { "done" } else { "open" }, "important": i % 7 == 0},
                })
            })
            .collect();
        let r = node
            .request(Method::POST, "/admin/import")
            .json(&json!({"type": "todo", "version": 3, "docs": docs}))
            .send()
            .expect("POST /admin/import");
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
    }
}

/// The figures of a release as the page shows them: thousands separated, shares in percent.
fn shown(n: &Value) -> String {
    let n = n.as_u64().expect("a count");
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn percent(share: &Value) -> String {
    let p = share.as_f64().unwrap_or(0.0) * 100.0;
    if p >= 10.0 || p == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

#[test]
fn the_dashboard_shows_usage_follows_a_migration_and_reads_the_changelog() {
    if browser::skip("the dashboard") {
        return;
    }
    let scratch = tempfile::tempdir().expect("a temporary folder");
    let node = Node::start(&example("todo"), &scratch.path().join("todo.redb"));
    // A webhook nobody answers (created first, so the imported documents are its to deliver):
    // the page has failing deliveries to show.
    let r = node
        .request(Method::POST, "/admin/webhooks")
        .json(&json!({"url": "http://127.0.0.1:9/hook", "release": "5"}))
        .send()
        .expect("POST /admin/webhooks");
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
    let hook_id = r.json::<Value>().expect("the webhook")["id"]
        .as_str()
        .expect("its id")
        .to_owned();
    import_docs(&node);

    // The mix: readers of releases 4 and 5, each read counted under the release it spoke.
    let mut tokens = BTreeMap::new();
    for (release, name, reads) in MIX {
        let token = tokens
            .entry(name)
            .or_insert_with(|| node.new_token(name, "reader"))
            .clone();
        for i in 0..reads {
            let r = node
                .request_as(Method::GET, &format!("/docs/todo/t{i:05}"), &token)
                .header("Mutatis-Release", release)
                .send()
                .expect("a read");
            assert_eq!(r.status().as_u16(), 200, "release {release}");
        }
    }
    // The usage is flushed by the answer itself (`GET /admin/releases` adds what the node
    // counted first).
    let before = node.get_json("/admin/releases");
    let by_release = |report: &Value, name: &str| -> Value {
        report["releases"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["release"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("release {name} in {report}"))
    };
    assert_eq!(by_release(&before, "5")["requests30d"], 7, "{before}");
    assert_eq!(by_release(&before, "4")["requests30d"], 5, "{before}");
    assert_eq!(by_release(&before, "4")["tokens30d"], 2, "{before}");

    let shots = shots_dir();
    let wrong = format!("mutatis_{}", "0".repeat(64));
    let mut script = Script::start(
        "dashboard.mjs",
        &[
            ("DASH_URL", node.url.clone()),
            ("DASH_TOKEN", node.token.clone()),
            ("DASH_WRONG_TOKEN", wrong),
            ("DASH_SHOTS", shots.display().to_string()),
        ],
    );

    // Without a token: the login form only.
    let login = script.expect("login", Duration::from_secs(120));
    assert_eq!(login["loginVisible"], true, "{login}");
    assert_eq!(login["appVisible"], false, "{login}");
    assert_eq!(login["panelsWithContent"], 0, "{login}");

    // A wrong token: the server's detail, and the token not kept.
    let wrong = script.expect("wrong", Duration::from_secs(60));
    let refused: Value = node
        .request_as(
            Method::GET,
            "/admin/migrations",
            &format!("mutatis_{}", "0".repeat(64)),
        )
        .send()
        .expect("a refused request")
        .json()
        .expect("a problem");
    assert_eq!(wrong["error"], refused["detail"], "{wrong} vs {refused}");
    assert_eq!(wrong["appVisible"], false, "{wrong}");
    assert_eq!(wrong["stored"], 0, "{wrong}");
    // Chromium logs the refused request as a console error (the one the script lets pass);
    // nothing else may be logged.
    assert!(wrong["consoleRefusals"].as_u64() <= Some(1), "{wrong}");

    // Signed in: every release's figures as the API gives them.
    let shown_releases = script.expect("releases", Duration::from_secs(60));
    let api = node.get_json("/admin/releases");
    let rows = shown_releases["rows"].as_array().expect("rows");
    let api_rows = api["releases"].as_array().expect("releases");
    assert_eq!(rows.len(), api_rows.len(), "{shown_releases} vs {api}");
    for (row, want) in rows.iter().zip(api_rows) {
        assert_eq!(row["release"], want["release"]);
        assert_eq!(
            row["requests7d"],
            shown(&want["requests7d"]),
            "{row} vs {want}"
        );
        assert_eq!(
            row["requests30d"],
            shown(&want["requests30d"]),
            "{row} vs {want}"
        );
        assert_eq!(
            row["tokens30d"],
            shown(&want["tokens30d"]),
            "{row} vs {want}"
        );
        assert_eq!(
            row["share30d"],
            percent(&want["share30d"]),
            "{row} vs {want}"
        );
        let verdict = row["verdict"].as_str().unwrap_or_default();
        assert!(
            verdict.starts_with(want["verdict"].as_str().unwrap_or("?"))
                && verdict.ends_with(want["reason"].as_str().unwrap_or("?")),
            "{row} vs {want}"
        );
    }
    // What the test made is what the page shows.
    let five = rows
        .iter()
        .find(|r| r["release"] == "5")
        .expect("release 5");
    assert_eq!(five["requests30d"], "7", "{five}");
    // Today's bar: one per release that was called.
    assert_eq!(shown_releases["bars"], 2, "{shown_releases}");

    // The migration, started once the page is watching: todo@3 → todo@2, one document per
    // batch.
    script.expect("migrations", Duration::from_secs(60));
    let r = node
        .request(Method::POST, "/admin/migrations")
        .json(&json!({"type": "todo", "to": 2, "batchSize": 1}))
        .send()
        .expect("POST /admin/migrations");
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().unwrap_or_default());
    script.tell("started");
    let migrated = script.expect("migrated", Duration::from_secs(240));
    let samples = migrated["samples"].as_array().expect("samples");
    let running: Vec<(u64, u64)> = samples
        .iter()
        .filter(|s| s["state"] == "running")
        .map(|s| {
            (
                s["done"].as_u64().unwrap_or(0),
                s["total"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    // The bar moved: at least two different points short of the end, in order.
    let partial: Vec<_> = running.iter().filter(|(d, t)| *t > 0 && d < t).collect();
    assert!(
        partial.len() >= 2,
        "the progress bar did not move: {migrated}"
    );
    assert!(
        partial
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 || w[0].1 != w[1].1),
        "progress went backwards within a phase: {migrated}"
    );
    let last = samples.last().expect("a last sample");
    assert_eq!(last["state"], "switched", "{migrated}");
    assert_eq!(last["width"], "100%", "{migrated}");
    assert!(
        last["text"].as_str().unwrap_or_default().contains("to v2"),
        "{migrated}"
    );
    let state = node.get_json("/admin/migrations/todo");
    assert_eq!(state["storageVersion"], 2, "{state}");
    assert_eq!(state["migration"], Value::Null, "{state}");

    // The webhook's failed deliveries, as the API counts them (it keeps retrying, so the page's
    // count is at most the API's a moment later).
    let sync = script.expect("sync", Duration::from_secs(60));
    let hooks = node.get_json("/admin/webhooks");
    let api_hook = hooks["webhooks"]
        .as_array()
        .and_then(|hs| hs.iter().find(|h| h["id"] == hook_id.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("webhook {hook_id} in {hooks}"));
    let shown_hook = sync["webhooks"]
        .as_array()
        .and_then(|hs| hs.iter().find(|h| h["id"] == hook_id.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("webhook {hook_id} on the page: {sync}"));
    let failures: u64 = shown_hook["failures"]
        .as_str()
        .and_then(|f| f.split_whitespace().next())
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("a failure count: {shown_hook}"));
    assert!(failures >= 1, "{shown_hook}");
    assert!(
        failures <= api_hook["failures"].as_u64().unwrap_or(0),
        "{shown_hook} vs {api_hook}"
    );
    assert!(
        !shown_hook["lastError"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{shown_hook}"
    );

    // The changelog: every release, the breaking ones marked as the API says.
    let shown_log = script.expect("changelog", Duration::from_secs(60));
    let log = node.get_json("/changelog");
    let mut want: Vec<(String, String, bool, usize)> = Vec::new();
    for r in log["releases"].as_array().expect("releases") {
        for t in r["types"].as_array().expect("types") {
            want.push((
                r["release"].as_str().unwrap_or_default().to_owned(),
                t["type"].as_str().unwrap_or_default().to_owned(),
                t["breaking"] == true,
                t["changes"].as_array().map_or(0, Vec::len),
            ));
        }
    }
    let mut got: Vec<(String, String, bool, usize)> = Vec::new();
    for r in shown_log["releases"].as_array().expect("releases") {
        for t in r["types"].as_array().expect("types") {
            got.push((
                r["release"].as_str().unwrap_or_default().to_owned(),
                t["type"].as_str().unwrap_or_default().to_owned(),
                t["breaking"] == true,
                t["changes"].as_array().map_or(0, Vec::len),
            ));
        }
    }
    want.sort();
    got.sort();
    assert_eq!(got, want, "{shown_log} vs {log}");
    assert!(
        want.iter().any(|w| w.2),
        "examples/todo has a breaking release: {log}"
    );
    // The words are the API's, code spans and all (backticks dropped).
    let words = |v: &Value| -> Vec<String> {
        v["releases"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["types"].as_array().cloned().unwrap_or_default())
            .flat_map(|t| t["changes"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c.as_str().map(|s| s.replace('`', "")))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    assert_eq!(words(&shown_log), words(&log));

    // Release 4's API: its title and every operation of its document.
    let shown_api = script.expect("api", Duration::from_secs(60));
    let doc = node.get_json("/openapi.json?release=4");
    assert_eq!(shown_api["title"], doc["info"]["title"], "{shown_api}");
    assert_eq!(shown_api["version"], "4", "{shown_api}");
    assert_eq!(doc["info"]["version"], "4", "{doc}");
    let mut operations: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "patch", "delete", "head", "options"] {
            if item.get(method).is_some() {
                operations.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let mut shown_ops: Vec<String> = shown_api["operations"]
        .as_array()
        .expect("operations")
        .iter()
        .filter_map(|o| o.as_str().map(str::to_owned))
        .collect();
    operations.sort();
    shown_ops.sort();
    assert_eq!(shown_ops, operations);
    assert_eq!(
        shown_api["schemas"].as_u64(),
        doc["components"]["schemas"]
            .as_object()
            .map(|s| s.len() as u64)
    );

    // Signed out: the token is gone, and a reload shows the login form again.
    let done = script.expect("done", Duration::from_secs(60));
    assert_eq!(done["stored"], 0, "{done}");
    assert_eq!(done["loginVisible"], true, "{done}");
    assert_eq!(done["appVisible"], false, "{done}");
    script.finish();

    for shot in [
        "dashboard-login.png",
        "dashboard-wrong-token.png",
        "dashboard-releases.png",
        "dashboard-migration-running.png",
        "dashboard-migration-switched.png",
        "dashboard-changelog.png",
        "dashboard-api.png",
    ] {
        assert!(shots.join(shot).is_file(), "{shot}");
    }
}

/// On (the default), the page comes with its security headers and a tag that a revalidation
/// answers 304; `--ui off` (or `ui = "off"` in the config file): no dashboard, the path is no
/// route.
#[test]
fn the_dashboard_is_served_with_its_headers_and_can_be_turned_off() {
    let scratch = tempfile::tempdir().expect("a temporary folder");
    let node = Node::start(&example("todo"), &scratch.path().join("on.redb"));
    let http = support::http();
    let r = http
        .get(format!("{}/ui", node.url))
        .send()
        .expect("GET /ui");
    // Redirects are followed: /ui → /ui/.
    assert_eq!(r.url().path(), "/ui/");
    assert_eq!(r.status().as_u16(), 200);
    let h = r.headers().clone();
    let header = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    let csp = header("content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-cache");
    let etag = header("etag");
    assert!(etag.starts_with('"'), "{etag}");
    let page = r.text().expect("the page");
    assert!(page.contains("id=\"login\""), "{page}");
    // Every asset the page names is served, with its type.
    for (file, kind) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let r = http
            .get(format!("{}/ui/{file}", node.url))
            .send()
            .expect("an asset");
        assert_eq!(r.status().as_u16(), 200, "{file}");
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap_or_default(),
            kind,
            "{file}"
        );
    }
    let again = http
        .get(format!("{}/ui/", node.url))
        .header("If-None-Match", &etag)
        .send()
        .expect("a revalidation");
    assert_eq!(again.status().as_u16(), 304);
    let missing = http
        .get(format!("{}/ui/nothing.js", node.url))
        .send()
        .expect("GET /ui/nothing.js");
    assert_eq!(missing.status().as_u16(), 404);
    assert_eq!(
        missing.headers()["content-type"]
            .to_str()
            .unwrap_or_default(),
        "application/problem+json"
    );
    // The page is public; its data is not: the API it calls still wants the token.
    let r = http
        .get(format!("{}/admin/releases", node.url))
        .send()
        .expect("GET /admin/releases");
    assert_eq!(r.status().as_u16(), 401);
    drop(node);

    // Off by the flag, and by the config file's `ui` setting (the same clap argument).
    let off_scratch = tempfile::tempdir().expect("a temporary folder");
    let config = off_scratch.path().join("mutatis.toml");
    std::fs::write(&config, "ui = \"off\"\n").expect("the config file");
    for (name, extra_args) in [
        ("the flag", vec!["--ui".to_owned(), "off".to_owned()]),
        (
            "the config file",
            vec!["--config".to_owned(), config.display().to_string()],
        ),
    ] {
        let off = Node::start_with(
            &example("todo"),
            &off_scratch.path().join(format!(
                "off-{}.redb",
                extra_args[0].trim_start_matches('-')
            )),
            support::NodeOptions {
                extra_args,
                ..support::NodeOptions::default()
            },
        );
        let r = http
            .get(format!("{}/ui/", off.url))
            .send()
            .expect("GET /ui/ turned off");
        assert_eq!(r.status().as_u16(), 404, "{name}");
        let body: Value = r.json().expect("a problem");
        assert_eq!(
            body["type"], "urn:mutatis:problem:no-route",
            "{name}: {body}"
        );
        // The API is still there.
        assert_eq!(off.get("/admin/releases").status().as_u16(), 200, "{name}");
    }
}
