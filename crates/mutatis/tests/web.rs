//! Browsers and `mutatis serve`: CORS (`--cors-origin`, `--cors-max-age`) and static files
//! (`--static`, `--static-path`), on the real binary.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reqwest::blocking::Response;
use reqwest::Method;
use support::{example, Node, NodeOptions};

const ALLOWED: &str = "https://app.example.com";
const OTHER: &str = "https://evil.example.net";

/// A todo node on a store of its own with `extra` arguments; the store's folder lives as
/// long as the returned guard.
fn node(extra: &[&str]) -> (Node, tempfile::TempDir) {
    let scratch = tempfile::tempdir().expect("a temporary folder");
    let node = Node::start_with(
        &example("todo"),
        &scratch.path().join("data.redb"),
        NodeOptions {
            extra_args: extra.iter().map(|s| (*s).to_owned()).collect(),
            ..NodeOptions::default()
        },
    );
    (node, scratch)
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The `Access-Control-*` headers of a response.
fn cors_headers(resp: &Response) -> Vec<String> {
    resp.headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

fn preflight(node: &Node, path: &str, origin: &str) -> Response {
    support::http()
        .request(Method::OPTIONS, format!("{}{path}", node.url))
        .header("origin", origin)
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "authorization, content-type, if-match, mutatis-release",
        )
        .send()
        .expect("the preflight is answered")
}

fn get_from(node: &Node, path: &str, origin: &str, token: Option<&str>) -> Response {
    let mut req = support::http()
        .get(format!("{}{path}", node.url))
        .header("origin", origin);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().expect("answered")
}

#[test]
fn cors_for_an_allowed_origin_on_every_answer() {
    let (node, _scratch) = node(&["--cors-origin", ALLOWED, "--cors-max-age", "600"]);

    // The preflight is answered before authentication: no token, yet 2xx and the rules.
    let pre = preflight(&node, "/docs/todo/a", ALLOWED);
    assert!(pre.status().is_success(), "{}", pre.status());
    assert_eq!(
        header(&pre, "access-control-allow-origin").as_deref(),
        Some(ALLOWED)
    );
    assert_eq!(
        header(&pre, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(
        header(&pre, "access-control-max-age").as_deref(),
        Some("600")
    );
    let methods = header(&pre, "access-control-allow-methods").unwrap_or_default();
    for m in ["GET", "PUT", "POST", "PATCH", "DELETE"] {
        assert!(methods.contains(m), "{m} in {methods}");
    }
    let allowed = header(&pre, "access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for h in [
        "authorization",
        "content-type",
        "if-match",
        "mutatis-release",
        "mutatis-versions",
        "x-request-id",
    ] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }

    // An actual request: a document read in release 4 (deprecated) exposes its headers.
    node.create_doc(
        "todo",
        "a",
        "4",
        &serde_json::json!({"title": "milk", "done": false, "important": true}),
    );
    let resp = support::http()
        .get(format!("{}/docs/todo/a", node.url))
        .header("origin", ALLOWED)
        .header("mutatis-release", "4")
        .bearer_auth(&node.token)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some(ALLOWED)
    );
    assert_eq!(
        header(&resp, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let exposed = header(&resp, "access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for h in [
        "etag",
        "deprecation",
        "sunset",
        "link",
        "mutatis-release",
        "mutatis-versions",
        "x-request-id",
    ] {
        assert!(exposed.contains(h), "{h} in {exposed}");
    }
    assert!(header(&resp, "deprecation").is_some());

    // Errors carry them too: a 401 from authentication, a 404 of the edge, a 404 document.
    for (path, token, status) in [
        ("/docs/todo", None, 401),
        ("/no/such/route", None, 404),
        ("/docs/todo/missing", Some(node.token.as_str()), 404),
    ] {
        let resp = get_from(&node, path, ALLOWED, token);
        assert_eq!(resp.status(), status, "{path}");
        assert_eq!(
            header(&resp, "access-control-allow-origin").as_deref(),
            Some(ALLOWED),
            "{path}"
        );
        assert_eq!(
            header(&resp, "content-type").as_deref(),
            Some("application/problem+json"),
            "{path}"
        );
    }
}

#[test]
fn a_disallowed_origin_gets_no_allow_origin() {
    let (node, _scratch) = node(&["--cors-origin", ALLOWED]);
    let pre = preflight(&node, "/docs/todo/a", OTHER);
    assert_eq!(header(&pre, "access-control-allow-origin"), None);
    assert_eq!(header(&pre, "access-control-allow-credentials"), None);
    for path in ["/meta", "/docs/todo"] {
        let resp = get_from(&node, path, OTHER, None);
        assert_eq!(header(&resp, "access-control-allow-origin"), None, "{path}");
        assert_eq!(
            header(&resp, "access-control-allow-credentials"),
            None,
            "{path}"
        );
    }
}

#[test]
fn a_wildcard_origin_is_without_credentials() {
    let (node, _scratch) = node(&["--cors-origin", "*"]);
    let resp = get_from(&node, "/meta", OTHER, None);
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_eq!(header(&resp, "access-control-allow-credentials"), None);
}

#[test]
fn no_cors_headers_when_not_configured() {
    let (node, _scratch) = node(&[]);
    let pre = preflight(&node, "/docs/todo/a", ALLOWED);
    assert_eq!(cors_headers(&pre), Vec::<String>::new());
    for (path, token) in [
        ("/meta", None),
        ("/docs/todo", None),
        ("/docs/todo", Some(node.token.as_str())),
    ] {
        let resp = get_from(&node, path, ALLOWED, token);
        assert_eq!(cors_headers(&resp), Vec::<String>::new(), "{path}");
    }
}

#[test]
fn bad_cors_and_static_flags_are_refused() {
    for args in [
        vec!["--cors-origin", "https://app.example.com/"],
        vec!["--cors-origin", "app.example.com"],
        vec!["--cors-origin", "*", "--cors-origin", ALLOWED],
        vec!["--static", "/no/such/folder"],
        vec!["--static", ".", "--static-path", "/docs"],
        vec!["--static", ".", "--static-path", "/"],
    ] {
        let scratch = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(support::bin())
            .arg("serve")
            .arg(example("todo"))
            .arg("--data")
            .arg(scratch.path().join("d.redb"))
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--cors-origin") || err.contains("--static"),
            "{args:?}: {err}"
        );
    }
}

/// A raw request, so that the path reaches the server exactly as written (an HTTP client
/// would resolve `..` and `%2e%2e` first); the status and the whole answer.
fn raw_get(node: &Node, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(node.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        node.addr
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn site() -> tempfile::TempDir {
    let site = tempfile::tempdir().unwrap();
    let p = site.path();
    std::fs::write(p.join("index.html"), "<!doctype html><title>t</title>").unwrap();
    std::fs::write(p.join("app.js"), "console.log('app')").unwrap();
    std::fs::write(p.join("style.css"), "body{}").unwrap();
    std::fs::create_dir(p.join("sub")).unwrap();
    std::fs::write(p.join("sub").join("data.json"), "{}").unwrap();
    site
}

#[test]
fn static_files_are_served_without_a_token_and_never_outside_their_folder() {
    // A secret beside the served folder: no request may reach it.
    let outer = tempfile::tempdir().unwrap();
    let site_dir = outer.path().join("site");
    std::fs::create_dir(&site_dir).unwrap();
    let template = site();
    for entry in std::fs::read_dir(template.path()).unwrap() {
        let entry = entry.unwrap();
        let to = site_dir.join(entry.file_name());
        std::fs::rename(entry.path(), to).unwrap();
    }
    std::fs::write(outer.path().join("secret.txt"), "SECRET-42").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(outer.path().join("secret.txt"), site_dir.join("link.txt")).unwrap();

    let (node, _scratch) = node(&["--static", site_dir.to_str().unwrap()]);
    let http = support::http();
    for (path, ctype) in [
        ("/app/", "text/html"),
        ("/app/index.html", "text/html"),
        ("/app/app.js", "text/javascript"),
        ("/app/style.css", "text/css"),
        ("/app/sub/data.json", "application/json"),
    ] {
        let resp = http.get(format!("{}{path}", node.url)).send().unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let got = header(&resp, "content-type").unwrap_or_default();
        assert!(got.starts_with(ctype), "{path}: {got}");
    }
    // The bare path leads to the folder, so the page's relative links resolve.
    let (status, text) = raw_get(&node, "/app?x=1");
    assert_eq!(status, 308, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("location: /app/?x=1"),
        "{text}"
    );

    for path in [
        "/app/../secret.txt",
        "/app/%2e%2e/secret.txt",
        "/app/%2E%2E%2Fsecret.txt",
        "/app/sub/../../secret.txt",
        "/app/..%2fsecret.txt",
        "/app/link.txt",
        "/app/nope.js",
    ] {
        let (status, text) = raw_get(&node, path);
        assert_eq!(status, 404, "{path}: {text}");
        assert!(!text.contains("SECRET-42"), "{path}");
        assert!(text.contains("application/problem+json"), "{path}: {text}");
    }
    // A browser revalidating what it cached gets 304, not an error (a reload depends on it).
    let first = http.get(format!("{}/app/app.js", node.url)).send().unwrap();
    let modified = header(&first, "last-modified").expect("a Last-Modified");
    let again = http
        .get(format!("{}/app/app.js", node.url))
        .header("if-modified-since", &modified)
        .send()
        .unwrap();
    assert_eq!(again.status(), 304);
    let head = http
        .head(format!("{}/app/app.js", node.url))
        .send()
        .unwrap();
    assert_eq!(head.status(), 200);
    assert!(header(&head, "content-type")
        .unwrap_or_default()
        .starts_with("text/javascript"));

    // Read-only.
    let resp = http
        .post(format!("{}/app/app.js", node.url))
        .body("x")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 405);
    // The API is untouched beside them.
    assert_eq!(
        http.get(format!("{}/docs/todo", node.url))
            .send()
            .unwrap()
            .status(),
        401
    );
}

#[test]
fn static_files_under_another_path() {
    let site = site();
    let (node, _scratch) = node(&[
        "--static",
        site.path().to_str().unwrap(),
        "--static-path",
        "/site/v2",
    ]);
    let http = support::http();
    let resp = http.get(format!("{}/site/v2/", node.url)).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().unwrap().contains("<title>t</title>"));
    assert_eq!(
        http.get(format!("{}/app/", node.url))
            .send()
            .unwrap()
            .status(),
        404
    );
    // A folder without its slash is sent to it, under the prefix.
    let (status, text) = raw_get(&node, "/site/v2/sub");
    assert!(matches!(status, 301..=308), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("location: /site/v2/sub/"),
        "{text}"
    );
}
