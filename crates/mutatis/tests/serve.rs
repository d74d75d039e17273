//! `mutatis serve`, driven over HTTP: the real binary on a free port, a temporary store, the
//! `examples/students` schema set (releases 1–2 unsupported, 3–4 deprecated with sunsets, 5
//! current).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::Method;
use serde_json::{json, Value};

const ADMIN: &str = "mutatis_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn students() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/students")
}

/// A running `mutatis serve`, killed on drop.
struct Server {
    child: Child,
    base: String,
    http: Client,
    /// The server's log lines, when started with [`Server::logged`].
    log: Option<std::sync::Mutex<std::sync::mpsc::Receiver<String>>>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// On a fresh redb store.
    fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.redb");
        let mut args = vec!["--data", data.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut s = Server::spawn(&args, Some(ADMIN));
        s._dir = Some(dir);
        s
    }

    fn spawn(args: &[&str], admin: Option<&str>) -> Server {
        Server::spawn_set(&students(), args, admin)
    }

    /// On a fresh redb store, logging with `RUST_LOG=filter` into [`Server::log`].
    fn logged(filter: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.redb");
        let args = ["--data", data.to_str().unwrap()];
        let mut s = Server::spawn_with(&students(), &args, Some(ADMIN), Some(filter));
        s._dir = Some(dir);
        s
    }

    /// Wait up to `limit` for the server to exit, which it must do with success; `held` says
    /// what it means if it does not.
    fn exits_cleanly_within(&mut self, limit: Duration, held: &str) {
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "{held}");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status:?}");
    }

    /// The next log line holding every one of `parts`, within a generous minute.
    fn log_line(&self, parts: &[&str]) -> String {
        let log = self
            .log
            .as_ref()
            .expect("a server started with Server::logged")
            .lock()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = log
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line with {parts:?}"));
            if parts.iter().all(|p| line.contains(p)) {
                return line;
            }
        }
    }

    fn spawn_set(set: &Path, args: &[&str], admin: Option<&str>) -> Server {
        Server::spawn_with(set, args, admin, None)
    }

    fn spawn_with(set: &Path, args: &[&str], admin: Option<&str>, log: Option<&str>) -> Server {
        mutatis_client::tls::install_crypto_provider();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mutatis"));
        cmd.arg("serve")
            .arg(set)
            .args(["--listen", "127.0.0.1:0", "--reference-date", "2026-06-01"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(if log.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        if let Some(filter) = log {
            cmd.env("RUST_LOG", filter);
        }
        match admin {
            Some(t) => cmd.env("MUTATIS_ADMIN_TOKEN", t),
            None => cmd.env_remove("MUTATIS_ADMIN_TOKEN"),
        };
        let mut child = cmd.spawn().unwrap();
        let log = child.stderr.take().map(|stderr| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    // Nobody listening any more: keep draining, so the server never blocks.
                    let _ = tx.send(line);
                }
            });
            std::sync::Mutex::new(rx)
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        let base = first
            .split(" at ")
            .nth(1)
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .trim()
            .to_owned();
        assert!(first.starts_with("mutatis ") && first.contains(" serving "));
        let mut second = String::new();
        out.read_line(&mut second).unwrap();
        assert!(second.starts_with("data: "), "{second}");
        Server {
            child,
            base,
            http: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            log,
            _dir: None,
        }
    }

    fn req(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.req(method, path, Some(ADMIN))
    }

    /// A new token with `role`, named `name`.
    fn token(&self, name: &str, role: &str) -> String {
        let r = self
            .admin(Method::POST, "/admin/tokens")
            .json(&json!({"name": name, "role": role}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().unwrap();
        assert_eq!(v["name"], name);
        v["token"].as_str().unwrap().to_owned()
    }

    /// Create a release-5 student as admin.
    fn create(&self, id: &str, doc: Value) -> String {
        let r = self
            .admin(Method::POST, &format!("/docs/Student?id={id}"))
            .header("Mutatis-Release", "5")
            .json(&doc)
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text());
        let v: Value = r.json().unwrap();
        v["rev"].as_str().unwrap().to_owned()
    }
}

fn header(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// Assert a problem+json answer of `status` and kind `name`; returns the body.
fn problem(r: Response, status: u16, name: &str) -> Value {
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(
        header(&r, "content-type").as_deref(),
        Some("application/problem+json")
    );
    let v: Value = r.json().unwrap();
    assert_eq!(v["type"], format!("urn:mutatis:problem:{name}"), "{v}");
    assert_eq!(v["status"], status);
    assert!(v["instance"].as_str().unwrap().starts_with('/'));
    v
}

fn ada() -> Value {
    json!({"firstName": "Mary Ann", "lastName": "Smith", "yearOfBirth": 1990})
}

#[test]
fn old_and_new_clients_share_a_document_and_nothing_is_lost() {
    let s = Server::start(&[]);
    let rev1 = s.create("mary", ada());

    // Release 3 reads in its own version, with the deprecation headers.
    let r = s
        .admin(Method::GET, "/docs/Student/mary")
        .header("Mutatis-Release", "3")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "etag"), Some(format!("\"{rev1};Student@3\"")));
    assert_eq!(header(&r, "mutatis-release").as_deref(), Some("3"));
    assert_eq!(header(&r, "mutatis-versions").as_deref(), Some("Student=3"));
    assert_eq!(header(&r, "deprecation").as_deref(), Some("@1772323200")); // 2026-03-01, the release's `deprecated` date
    assert_eq!(
        header(&r, "sunset").as_deref(),
        Some("Wed, 01 Sep 2027 00:00:00 GMT")
    );
    assert_eq!(
        header(&r, "link").as_deref(),
        Some("</meta>; rel=\"deprecation\"; type=\"application/json\"")
    );
    let v3: Value = r.json().unwrap();
    assert_eq!(v3, json!({"fistAndLastName": "Mary Ann Smith", "age": 36}));

    // Release 3 writes a birthday; it cannot say where the first name ends.
    let r = s
        .admin(Method::PUT, "/docs/Student/mary")
        .header("Mutatis-Release", "3")
        .header("If-Match", format!("\"{rev1}\""))
        .json(&json!({"fistAndLastName": "Mary Ann Smith", "age": 37}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let rev2 = r.json::<Value>().unwrap()["rev"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(rev1, rev2);

    // Release 5 sees the change and keeps the split it wrote.
    let r = s
        .admin(Method::GET, "/docs/Student/mary")
        .header("Mutatis-Release", "5")
        .send()
        .unwrap();
    assert_eq!(header(&r, "deprecation"), None);
    assert_eq!(header(&r, "etag"), Some(format!("\"{rev2};Student@5\"")));
    assert_eq!(
        r.json::<Value>().unwrap(),
        json!({"firstName": "Mary Ann", "lastName": "Smith", "yearOfBirth": 1989})
    );
}

/// One revision has a representation per version: each its own `ETag`, `Vary` on what chooses
/// it, 304 for the tag a client holds (weakly compared, in a list or `*`), and `If-Match`
/// taking the tag of any version of the current revision, strongly compared.
#[test]
fn etags_name_the_version_and_conditional_requests_follow_them() {
    let s = Server::start(&[]);
    let rev = s.create("mary", ada());
    let read = |method: Method, release: &str, none_match: Option<&str>| {
        let mut r = s
            .admin(method, "/docs/Student/mary")
            .header("Mutatis-Release", release);
        if let Some(v) = none_match {
            r = r.header("If-None-Match", v);
        }
        r.send().unwrap()
    };
    let r3 = read(Method::GET, "3", None);
    let r5 = read(Method::GET, "5", None);
    let (t3, t5) = (header(&r3, "etag").unwrap(), header(&r5, "etag").unwrap());
    assert_eq!(t3, format!("\"{rev};Student@3\""));
    assert_eq!(t5, format!("\"{rev};Student@5\""));
    let vary = |r: &Response| -> Vec<String> {
        r.headers()
            .get_all("vary")
            .iter()
            .flat_map(|v| v.to_str().unwrap().split(','))
            .map(|v| v.trim().to_ascii_lowercase())
            .collect()
    };
    for name in ["mutatis-release", "mutatis-versions", "authorization"] {
        assert!(
            vary(&r5).iter().any(|v| v == name),
            "{name}: {:?}",
            vary(&r5)
        );
    }
    let body5 = r5.bytes().unwrap();

    // The tag it holds: 304 with the same tag, Vary and negotiation headers, and no body.
    for held in [t5.clone(), format!("\"1-00\", W/{t5}"), "*".to_owned()] {
        let r = read(Method::GET, "5", Some(&held));
        assert_eq!(r.status(), 304, "{held}");
        assert_eq!(header(&r, "etag").as_ref(), Some(&t5));
        assert_eq!(header(&r, "mutatis-versions").as_deref(), Some("Student=5"));
        assert!(vary(&r).iter().any(|v| v == "mutatis-release"));
        assert!(r.bytes().unwrap().is_empty());
    }
    let r = read(Method::HEAD, "3", Some(&t3));
    assert_eq!(r.status(), 304);
    assert_eq!(header(&r, "deprecation").as_deref(), Some("@1772323200"));
    // Another version's tag, or the bare rev, is another representation: the full answer.
    for other in [t3.as_str(), &format!("\"{rev}\"")] {
        let r = read(Method::GET, "5", Some(other));
        assert_eq!(r.status(), 200, "{other}");
        assert_eq!(r.bytes().unwrap(), body5);
    }

    // Release 3 writes with the tag it read; the answer tags the new revision in its version.
    let r = s
        .admin(Method::PUT, "/docs/Student/mary")
        .header("Mutatis-Release", "3")
        .header("If-Match", &t3)
        .json(&json!({"fistAndLastName": "Mary Ann Smith", "age": 37}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let rev2 = header(&r, "etag").unwrap();
    let rev2 = rev2.trim_matches('"').strip_suffix(";Student@3").unwrap();
    assert_eq!(r.json::<Value>().unwrap()["rev"], rev2);
    // What release 5 held is stale now: read in full, refused as a precondition.
    assert_eq!(read(Method::GET, "5", Some(&t5)).status(), 200);
    let put5 = |if_match: &str| {
        s.admin(Method::PUT, "/docs/Student/mary")
            .header("Mutatis-Release", "5")
            .header("If-Match", if_match)
            .json(&ada())
            .send()
            .unwrap()
    };
    problem(put5(&t5), 412, "rev-conflict");
    // A weak tag never matches strongly; a tag of another type names another document.
    problem(
        put5(&format!("W/\"{rev2};Student@5\"")),
        412,
        "rev-conflict",
    );
    problem(put5(&format!("\"{rev2};Course@5\"")), 412, "rev-conflict");
    // The bare rev (clients before tags per version) still writes.
    assert_eq!(put5(&format!("\"{rev2}\"")).status(), 200);
}

#[test]
fn negotiation_defaults_versions_and_refusals() {
    let s = Server::start(&[]);
    s.create("mary", ada());
    // No release named: the default (current) release 5.
    let r = s.admin(Method::GET, "/docs/Student/mary").send().unwrap();
    assert_eq!(header(&r, "mutatis-release").as_deref(), Some("5"));
    assert_eq!(r.json::<Value>().unwrap(), ada());
    // Query parameter, for browsers.
    let r = s
        .admin(Method::GET, "/docs/Student/mary?release=4")
        .send()
        .unwrap();
    assert_eq!(header(&r, "mutatis-release").as_deref(), Some("4"));
    assert_eq!(
        r.json::<Value>().unwrap(),
        json!({"firstName": "Mary Ann", "lastName": "Smith", "age": 36})
    );
    // Per-type versions.
    let r = s
        .admin(Method::GET, "/docs/Student/mary")
        .header("Mutatis-Versions", "Student=3")
        .send()
        .unwrap();
    assert_eq!(header(&r, "mutatis-versions").as_deref(), Some("Student=3"));
    assert_eq!(header(&r, "mutatis-release"), None);
    assert_eq!(header(&r, "deprecation").as_deref(), Some("@1772323200")); // 2026-03-01, the release's `deprecated` date
    assert_eq!(
        r.json::<Value>().unwrap()["fistAndLastName"],
        "Mary Ann Smith"
    );

    let r = s
        .admin(Method::GET, "/docs/Student/mary")
        .header("Mutatis-Release", "2")
        .send()
        .unwrap();
    let p = problem(r, 400, "unsupported-release");
    assert_eq!(p["oldestSupported"], "3");
    assert_eq!(p["currentRelease"], "5");
    assert_eq!(p["release"], "2");
    let r = s
        .admin(Method::GET, "/docs/Student/mary")
        .header("Mutatis-Versions", "Student=1")
        .send()
        .unwrap();
    problem(r, 400, "unsupported-release");
    let r = s
        .admin(Method::GET, "/docs/Student/mary")
        .header("Mutatis-Versions", "Student=9")
        .send()
        .unwrap();
    problem(r, 400, "unknown-version");
    let r = s
        .admin(Method::GET, "/docs/Student/mary")
        .header("Mutatis-Release", "77")
        .send()
        .unwrap();
    problem(r, 400, "unknown-release");
    let r = s
        .admin(Method::GET, "/docs/Student/mary?release=4")
        .header("Mutatis-Release", "5")
        .send()
        .unwrap();
    problem(r, 400, "conflicting-release");
    // The metadata answers everyone, unsupported clients included.
    let r = s
        .req(Method::GET, "/meta", None)
        .header("Mutatis-Release", "1")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let meta: Value = r.json().unwrap();
    assert_eq!(meta["currentRelease"], "5");
    assert_eq!(meta["defaultRelease"], "5");
    assert_eq!(meta["types"]["Student"]["versions"], json!([3, 4, 5]));
    assert_eq!(meta["types"]["Student"]["storage"]["strategy"], "lazy");
    assert_eq!(meta["releases"][2]["sunset"], "2027-09-01");
    assert!(meta["nodeId"].as_str().unwrap().len() >= 16);
}

#[test]
fn revs_patch_and_delete() {
    let s = Server::start(&[]);
    let rev1 = s.create("mary", ada());
    let put = |if_match: Option<&str>, body: Value| {
        let mut r = s
            .admin(Method::PUT, "/docs/Student/mary")
            .header("Mutatis-Release", "5")
            .json(&body);
        if let Some(m) = if_match {
            r = r.header("If-Match", m);
        }
        r.send().unwrap()
    };
    // Without If-Match, PUT creates: the document exists.
    problem(put(None, ada()), 412, "already-exists");
    // Unquoted revs are accepted.
    let r = put(
        Some(&rev1),
        json!({"firstName": "M", "lastName": "S", "yearOfBirth": 1990}),
    );
    assert_eq!(r.status(), 200);
    let rev2 = r.json::<Value>().unwrap()["rev"]
        .as_str()
        .unwrap()
        .to_owned();
    let p = problem(put(Some(&rev1), ada()), 412, "rev-conflict");
    assert_eq!(p["currentRev"], rev2.as_str());
    // POST over an existing id: 409.
    let r = s
        .admin(Method::POST, "/docs/Student?id=mary")
        .json(&ada())
        .send()
        .unwrap();
    problem(r, 409, "already-exists");

    let patch = |if_match: Option<&str>, ctype: &str, body: &str| {
        let mut r = s
            .admin(Method::PATCH, "/docs/Student/mary")
            .header("Mutatis-Release", "3")
            .header("Content-Type", ctype)
            .body(body.to_owned());
        if let Some(m) = if_match {
            r = r.header("If-Match", format!("\"{m}\""));
        }
        r.send().unwrap()
    };
    let ok = r#"[{"op": "test", "path": "/age", "value": 36}, {"op": "replace", "path": "/age", "value": 40}]"#;
    problem(
        patch(None, "application/json-patch+json", ok),
        428,
        "precondition-required",
    );
    problem(
        patch(Some(&rev2), "application/json", ok),
        415,
        "unsupported-media-type",
    );
    let p = problem(
        patch(
            Some(&rev2),
            "application/json-patch+json",
            r#"[{"op": "replace", "path": "/age", "value": 1}, {"op": "test", "path": "/age", "value": 2}]"#,
        ),
        409,
        "patch-conflict",
    );
    assert_eq!(
        (p["op"].clone(), p["pointer"].clone()),
        (json!(1), json!("/age"))
    );
    let p = problem(
        patch(
            Some(&rev2),
            "application/json-patch+json",
            r#"{"op": "add"}"#,
        ),
        400,
        "invalid-patch",
    );
    assert_eq!(p["op"], 0);
    problem(
        patch(
            Some(&rev2),
            "application/json-patch+json",
            r#"[{"op": "nope", "path": "/a"}]"#,
        ),
        400,
        "invalid-patch",
    );
    // A patch whose result fails the schema: 422 with the pointer.
    let p = problem(
        patch(
            Some(&rev2),
            "application/json-patch+json",
            r#"[{"op": "replace", "path": "/age", "value": "old"}]"#,
        ),
        422,
        "invalid-document",
    );
    assert_eq!(p["errors"][0]["pointer"], "/age");
    let r = patch(Some(&rev2), "application/json-patch+json", ok);
    assert_eq!(r.status(), 200);
    let rev3 = r.json::<Value>().unwrap()["rev"]
        .as_str()
        .unwrap()
        .to_owned();
    let doc: Value = s
        .admin(Method::GET, "/docs/Student/mary")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(doc["yearOfBirth"], 1986);

    let r = s
        .admin(Method::DELETE, "/docs/Student/mary")
        .send()
        .unwrap();
    problem(r, 428, "precondition-required");
    let r = s
        .admin(Method::DELETE, "/docs/Student/mary")
        .header("If-Match", format!("\"{rev3}\""))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["id"], "mary");
    let r = s.admin(Method::GET, "/docs/Student/mary").send().unwrap();
    problem(r, 404, "not-found");
}

#[test]
fn lists_page_through_documents() {
    let s = Server::start(&[]);
    for id in ["a", "b", "c", "d", "e"] {
        s.create(id, ada());
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/docs/Student?limit=2&after={a}&release=3"),
            None => "/docs/Student?limit=2&release=3".to_owned(),
        };
        let r = s.admin(Method::GET, &path).send().unwrap();
        assert_eq!(header(&r, "mutatis-release").as_deref(), Some("3"));
        let v: Value = r.json().unwrap();
        for d in v["docs"].as_array().unwrap() {
            assert_eq!(d["doc"]["fistAndLastName"], "Mary Ann Smith");
            assert!(d["rev"].as_str().unwrap().starts_with("1-"));
            seen.push(d["id"].as_str().unwrap().to_owned());
        }
        pages += 1;
        match v["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    assert_eq!(pages, 3);
    let r = s
        .admin(Method::GET, "/docs/Student?limit=0")
        .send()
        .unwrap();
    problem(r, 400, "bad-request");
    let r = s
        .admin(Method::GET, "/docs/Student?limit=1001")
        .send()
        .unwrap();
    problem(r, 400, "bad-request");
}

#[test]
fn changes_feed_normal_longpoll_and_sse() {
    let s = Server::start(&[]);
    s.create("a", ada());
    s.create("b", ada());
    let r = s
        .admin(Method::GET, "/changes?include_docs=true&release=3")
        .send()
        .unwrap();
    assert_eq!(header(&r, "mutatis-release").as_deref(), Some("3"));
    assert_eq!(header(&r, "mutatis-versions").as_deref(), Some("Student=3"));
    assert_eq!(header(&r, "deprecation").as_deref(), Some("@1772323200")); // 2026-03-01, the release's `deprecated` date
    let v: Value = r.json().unwrap();
    assert_eq!(v["lastSeq"], 2);
    assert_eq!(v["results"][0]["id"], "a");
    assert_eq!(v["results"][0]["doc"]["fistAndLastName"], "Mary Ann Smith");
    assert_eq!(v["results"][1]["seq"], 2);
    let v: Value = s
        .admin(Method::GET, "/changes?since=1&limit=1")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 1);
    assert!(v["results"][0].get("doc").is_none());
    assert_eq!(v["lastSeq"], 2);

    // Longpoll: waits for the next write.
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            s.admin(Method::GET, "/changes?feed=longpoll&since=2&timeout=20000")
                .send()
                .unwrap()
                .json::<Value>()
                .unwrap()
        });
        std::thread::sleep(Duration::from_millis(300));
        s.create("c", ada());
        let v = waiter.join().unwrap();
        assert_eq!(v["results"][0]["id"], "c");
        assert_eq!(v["lastSeq"], 3);
    });
    // Longpoll with nothing new: returns empty at the timeout.
    let v: Value = s
        .admin(Method::GET, "/changes?feed=longpoll&since=3&timeout=200")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v, json!({"results": [], "lastSeq": 3}));

    // SSE from Last-Event-ID 1: events 2 and 3, then the stream ends at its timeout.
    let mut r = s
        .admin(Method::GET, "/changes?feed=sse&timeout=1500")
        .header("Last-Event-ID", "1")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let mut text = String::new();
    r.read_to_string(&mut text).unwrap();
    let ids: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .map(str::trim)
        .collect();
    assert_eq!(ids, ["2", "3"], "{text}");
    let data: Value = serde_json::from_str(
        text.lines()
            .find_map(|l| l.strip_prefix("data:"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    assert_eq!(data["id"], "b");

    let r = s
        .admin(Method::GET, "/changes?feed=sometimes")
        .send()
        .unwrap();
    problem(r, 400, "bad-request");
}

/// What an answer says, for comparing two answers to the same request: the status, every
/// header but the ones that differ by nature (`x-request-id`, `date`), and the body, with the
/// problem body's `requestId` left out.
fn answer_said(r: Response) -> (u16, Vec<(String, String)>, Value) {
    let status = r.status().as_u16();
    let mut headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .filter(|(name, _)| !["x-request-id", "date"].contains(&name.as_str()))
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    headers.sort();
    let bytes = r.bytes().unwrap();
    let mut body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    if let Some(members) = body.as_object_mut() {
        if let Some(id) = members.remove("requestId") {
            assert!(id.as_str().is_some_and(|id| !id.is_empty()), "{id}");
        }
    }
    (status, headers, body)
}

/// The plain read of one document (`GET /docs/{type}/{id}`, no query) is answered beside the
/// router, by the same functions; `?source=current` names the default and so sends the same
/// read through the router. Every answer must be the same, refusals included.
#[test]
fn plain_reads_answer_as_the_router_does() {
    let s = Server::start(&[]);
    let alice = s.token("alice", "writer");
    let reader = s.token("carol", "reader");
    let revoked = s.token("dave", "reader");
    let r = s
        .admin(Method::DELETE, "/admin/tokens/dave")
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());
    s.create("open", ada());
    let r = s
        .req(Method::POST, "/docs/Student?id=secret", Some(&alice))
        .header("Mutatis-Release", "5")
        .header(
            "Mutatis-Access",
            r#"{"read": ["alice"], "write": ["alice"]}"#,
        )
        .json(&ada())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let tag = header(
        &s.admin(Method::GET, "/docs/Student/open")
            .header("Mutatis-Release", "3")
            .send()
            .unwrap(),
        "etag",
    )
    .unwrap();
    let too_long = format!("Student/{}", "x".repeat(600));

    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (
            "current release",
            "Student/open",
            Some(ADMIN),
            vec![("Mutatis-Release", "5")],
        ),
        (
            "deprecated release",
            "Student/open",
            Some(ADMIN),
            vec![("Mutatis-Release", "3")],
        ),
        ("the default release", "Student/open", Some(ADMIN), vec![]),
        (
            "versions",
            "Student/open",
            Some(ADMIN),
            vec![("Mutatis-Versions", "Student=4")],
        ),
        (
            "unchanged",
            "Student/open",
            Some(ADMIN),
            vec![("Mutatis-Release", "3"), ("If-None-Match", &tag)],
        ),
        (
            "changed",
            "Student/open",
            Some(ADMIN),
            vec![("Mutatis-Release", "5"), ("If-None-Match", &tag)],
        ),
        (
            "unsupported release",
            "Student/open",
            Some(ADMIN),
            vec![("Mutatis-Release", "1")],
        ),
        (
            "unknown release",
            "Student/open",
            Some(ADMIN),
            vec![("Mutatis-Release", "9")],
        ),
        (
            "no token",
            "Student/open",
            None,
            vec![("Mutatis-Release", "5")],
        ),
        (
            "unknown token",
            "Student/open",
            Some("mutatis_nope"),
            vec![],
        ),
        ("revoked token", "Student/open", Some(&revoked), vec![]),
        ("a reader", "Student/open", Some(&reader), vec![]),
        (
            "another's private document",
            "Student/secret",
            Some(&reader),
            vec![],
        ),
        (
            "its owner",
            "Student/secret",
            Some(&alice),
            vec![("Mutatis-Release", "4")],
        ),
        ("no such document", "Student/nobody", Some(ADMIN), vec![]),
        ("no such type", "Teacher/open", Some(ADMIN), vec![]),
        ("an id too long", &too_long, Some(ADMIN), vec![]),
        (
            "two tokens",
            "Student/open",
            Some(ADMIN),
            vec![("Authorization", "Bearer x")],
        ),
        (
            "a release that is not text",
            "Student/open",
            Some(ADMIN),
            vec![("Mutatis-Release", "\u{e9}")],
        ),
    ];
    let mut statuses = std::collections::BTreeSet::new();
    for (what, path, token, headers) in &cases {
        let ask = |target: String| {
            // A header of the request's own: the answer is written into the request's
            // emptied header map, and must carry none of what it held.
            let mut r = s
                .req(Method::GET, &target, *token)
                .header("X-Probe", "request-only");
            for (name, value) in headers {
                r = r.header(*name, *value);
            }
            answer_said(r.send().unwrap())
        };
        let lane = ask(format!("/docs/{path}"));
        let router = ask(format!("/docs/{path}?source=current"));
        assert_eq!(lane, router, "{what}");
        for (name, value) in &lane.1 {
            assert!(
                ![
                    "x-probe",
                    "authorization",
                    "if-none-match",
                    "host",
                    "accept"
                ]
                .contains(&name.as_str())
                    && !value.contains("request-only")
                    && token.is_none_or(|t| !value.contains(t)),
                "{what}: the answer carries the request's {name}: {value}"
            );
        }
        statuses.insert(lane.0);
    }
    // The cases reach every kind of answer a read gives.
    for status in [200, 304, 400, 401, 404] {
        assert!(
            statuses.contains(&status),
            "no case answered {status}: {statuses:?}"
        );
    }
}

#[test]
fn tokens_roles_and_access_policies() {
    let s = Server::start(&[]);
    let r = s.req(Method::GET, "/docs/Student", None).send().unwrap();
    assert!(header(&r, "www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    problem(r, 401, "unauthenticated");
    let r = s
        .req(Method::GET, "/docs/Student", Some("mutatis_nope"))
        .send()
        .unwrap();
    problem(r, 401, "unauthenticated");
    let reader = s.token("carol", "reader");
    let alice = s.token("alice", "writer");
    let bob = s.token("bob", "writer");
    let r = s
        .admin(Method::POST, "/admin/tokens")
        .json(&json!({"name": "alice", "role": "reader"}))
        .send()
        .unwrap();
    problem(r, 409, "token-exists");
    let listed: Value = s
        .admin(Method::GET, "/admin/tokens")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(listed.to_string().contains("\"alice\""));
    assert!(!listed.to_string().contains(&alice));
    let r = s
        .req(Method::GET, "/admin/tokens", Some(&alice))
        .send()
        .unwrap();
    problem(r, 403, "forbidden");

    // A reader cannot write.
    let r = s
        .req(Method::POST, "/docs/Student?id=x", Some(&reader))
        .json(&ada())
        .send()
        .unwrap();
    problem(r, 403, "forbidden");

    // Alice's private document, and one everyone reads but only she writes.
    let create = |id: &str, access: &str| {
        let r = s
            .req(
                Method::POST,
                &format!("/docs/Student?id={id}"),
                Some(&alice),
            )
            .header("Mutatis-Access", access)
            .json(&ada())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().unwrap()["rev"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let secret_rev = create("secret", r#"{"read": ["alice"], "write": ["alice"]}"#);
    let shared_rev = create("shared", r#"{"read": ["*"], "write": ["alice"]}"#);
    s.create("open", ada());

    for who in [&bob, &reader] {
        let r = s
            .req(Method::GET, "/docs/Student/secret", Some(who))
            .send()
            .unwrap();
        problem(r, 404, "not-found");
        let r = s
            .req(Method::GET, "/docs/Student/shared", Some(who))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = s
        .req(Method::GET, "/docs/Student/secret", Some(&alice))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .req(Method::PUT, "/docs/Student/shared", Some(&bob))
        .header("If-Match", shared_rev.as_str())
        .json(&ada())
        .send()
        .unwrap();
    problem(r, 403, "access-denied");
    let r = s
        .req(Method::PUT, "/docs/Student/secret", Some(&bob))
        .header("If-Match", secret_rev.as_str())
        .json(&ada())
        .send()
        .unwrap();
    problem(r, 404, "not-found");

    // Lists leave the secret out for others.
    let ids = |token: &str| -> Vec<String> {
        let v: Value = s
            .req(Method::GET, "/docs/Student", Some(token))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["docs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&reader), ["open", "shared"]);
    assert_eq!(ids(&alice), ["open", "secret", "shared"]);

    // Alice opens the shared one to bob's writes through /access.
    let r = s
        .req(Method::PUT, "/docs/Student/shared/access", Some(&alice))
        .header("If-Match", shared_rev.as_str())
        .json(&json!({"read": ["*"], "write": ["alice", "bob"]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let shared_rev2 = r.json::<Value>().unwrap()["rev"]
        .as_str()
        .unwrap()
        .to_owned();
    let access: Value = s
        .req(Method::GET, "/docs/Student/shared/access", Some(&bob))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(access["access"]["write"], json!(["alice", "bob"]));
    let r = s
        .req(Method::PUT, "/docs/Student/shared", Some(&bob))
        .header("If-Match", shared_rev2.as_str())
        .json(&ada())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    // Alice deletes the secret: the tombstone keeps the policy.
    let r = s
        .req(Method::DELETE, "/docs/Student/secret", Some(&alice))
        .header("If-Match", secret_rev.as_str())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let feed_ids = |token: &str| -> Vec<String> {
        let v: Value = s
            .req(Method::GET, "/changes?include_docs=true", Some(token))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let seen = feed_ids(&reader);
    assert!(!seen.contains(&"secret".to_owned()), "{seen:?}");
    assert!(seen.contains(&"shared".to_owned()));
    assert!(feed_ids(&alice).contains(&"secret".to_owned()));
    assert!(feed_ids(ADMIN).contains(&"secret".to_owned()));

    // Revoking a token takes effect at once in this process.
    let r = s
        .admin(Method::DELETE, "/admin/tokens/carol")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .req(Method::GET, "/docs/Student", Some(&reader))
        .send()
        .unwrap();
    problem(r, 401, "unauthenticated");
}

#[test]
fn bad_input_gets_exact_problems_never_a_500() {
    let s = Server::start(&["--body-limit", "4096"]);
    let post = |body: Vec<u8>, ctype: Option<&str>| {
        let mut r = s
            .admin(Method::POST, "/docs/Student?id=x")
            .header("Mutatis-Release", "5")
            .body(body);
        if let Some(c) = ctype {
            r = r.header("Content-Type", c);
        }
        r.send().unwrap()
    };
    let p = problem(
        post(
            b"{\n  \"firstName\": ,\n}".to_vec(),
            Some("application/json"),
        ),
        400,
        "malformed-json",
    );
    assert_eq!(p["line"], 2);
    let p = problem(
        post(
            br#"{"firstName": "A", "lastName": "B", "yearOfBirth": "x"}"#.to_vec(),
            Some("application/json"),
        ),
        422,
        "invalid-document",
    );
    assert_eq!(p["errors"][0]["pointer"], "/yearOfBirth");
    problem(
        post(b"{}".to_vec(), Some("text/plain")),
        415,
        "unsupported-media-type",
    );
    problem(post(b"{}".to_vec(), None), 415, "unsupported-media-type");
    let huge = format!("{{\"firstName\": \"{}\"}}", "a".repeat(10_000));
    problem(
        post(huge.into_bytes(), Some("application/json")),
        413,
        "body-too-large",
    );
    let r = s.admin(Method::GET, "/docs/Nobody/x").send().unwrap();
    problem(r, 404, "unknown-type");
    let r = s.admin(Method::GET, "/no/such/route").send().unwrap();
    problem(r, 404, "no-route");
    let r = s.admin(Method::DELETE, "/meta").send().unwrap();
    problem(r, 405, "method-not-allowed");
    let r = s
        .admin(Method::PUT, "/docs/Student/x")
        .header("If-Match", "\"not-a-rev\"")
        .json(&ada())
        .send()
        .unwrap();
    problem(r, 400, "invalid-rev");
    let r = s
        .admin(Method::POST, "/docs/Student?id=y")
        .header("Mutatis-Access", r#"{"raed": ["x"]}"#)
        .json(&ada())
        .send()
        .unwrap();
    problem(r, 400, "invalid-access");
}

#[test]
fn schema_openapi_metrics_compatibility_and_admin() {
    let s = Server::start(&[]);
    s.create("a", ada());
    let manifest: Value = s
        .req(Method::GET, "/schema", None)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(manifest["name"], "student-register");
    let r = s
        .req(Method::GET, "/openapi.json?release=3", None)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().unwrap().is_object());
    assert_eq!(
        s.req(Method::GET, "/health", None).send().unwrap().status(),
        200
    );

    // The deployed set against itself: compatible, in `check --json` shape.
    let diff: Value = s
        .req(Method::POST, "/compatibility", None)
        .json(&manifest)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(diff["outcome"], "compatible", "{diff}");
    assert_eq!(diff["deployed"]["name"], "student-register");
    // Dropping release 5 breaks its clients.
    let mut fewer = manifest.clone();
    let releases = fewer["releases"].as_array_mut().unwrap();
    releases.retain(|r| r["name"] != "5");
    if let Some(last) = releases.last_mut() {
        last["status"] = json!("current");
        let last = last.as_object_mut().unwrap();
        last.remove("sunset");
        last.remove("deprecated");
    }
    fewer["defaultRelease"] = json!("4");
    let diff: Value = s
        .req(Method::POST, "/compatibility", None)
        .json(&fewer)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(diff["outcome"], "breaking", "{diff}");

    let r = s.req(Method::GET, "/metrics", None).send().unwrap();
    problem(r, 401, "unauthenticated");
    let text = s
        .admin(Method::GET, "/metrics")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(text.contains("release=\"5\""), "{text}");

    let m: Value = s
        .admin(Method::GET, "/admin/migrations")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(m["types"][0]["type"], "Student");
    assert_eq!(m["types"][0]["storageVersion"], 5);
    let r = s.admin(Method::POST, "/admin/reload").send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["schemaSet"], "student-register");
    let r = s
        .admin(Method::POST, "/admin/migrations/Student/abort")
        .send()
        .unwrap();
    problem(r, 409, "migration-conflict");
    // Student is stored lazily: a migration switches the storage version at once.
    let r = s
        .admin(Method::POST, "/admin/migrations")
        .json(&json!({"type": "Student", "to": 4}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["storageVersion"], 4);
    let m: Value = s
        .admin(Method::GET, "/admin/migrations/Student")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (m["storageVersion"].clone(), m["migration"].clone()),
        (json!(4), Value::Null)
    );
    let doc: Value = s
        .admin(Method::GET, "/docs/Student/a")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(doc, ada());
    let r = s
        .req(
            Method::POST,
            "/admin/migrations",
            Some(&s.token("w", "writer")),
        )
        .json(&json!({"type": "Student", "to": 5}))
        .send()
        .unwrap();
    problem(r, 403, "forbidden");
}

#[test]
fn a_generated_admin_token_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.redb");
    let run = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mutatis"))
            .arg("serve")
            .arg(students())
            .args(["--listen", "127.0.0.1:0", "--data", data.to_str().unwrap()])
            .env_remove("MUTATIS_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        for _ in 0..2 {
            let mut l = String::new();
            out.read_line(&mut l).unwrap();
            lines.push(l);
        }
        // The token line, if any, comes with the others in one write.
        std::thread::sleep(Duration::from_millis(200));
        let _ = child.kill();
        let mut rest = String::new();
        let _ = out.read_to_string(&mut rest);
        let _ = child.wait();
        rest
    };
    let first = run();
    assert!(
        first.starts_with("admin token (shown once, stored hashed): mutatis_"),
        "{first}"
    );
    assert_eq!(run(), "");
}

/// Two processes on one PostgreSQL schema: writes, tokens and the feed are shared.
#[test]
fn two_servers_share_one_postgres_store() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            !ci,
            "CI must run the PostgreSQL tests, but DATABASE_URL is not set"
        );
        eprintln!("WARNING: DATABASE_URL is not set: PostgreSQL test `two_servers_share_one_postgres_store` NOT RUN");
        return;
    };
    let schema = format!(
        "serve_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    struct DropSchema(String, String);
    impl Drop for DropSchema {
        fn drop(&mut self) {
            if let Ok(mut c) = postgres::Client::connect(&self.0, postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.1));
            }
        }
    }
    let _cleanup = DropSchema(url.clone(), schema.clone());
    let args = ["--postgres", url.as_str(), "--pg-schema", schema.as_str()];
    let one = Server::spawn(&args, Some(ADMIN));
    let two = Server::spawn(&args, Some(ADMIN));
    let meta = |s: &Server| -> Value {
        s.req(Method::GET, "/meta", None)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(meta(&one)["nodeId"], meta(&two)["nodeId"]);

    let rev = one.create("mary", ada());
    let r = two
        .admin(Method::GET, "/docs/Student/mary")
        .header("Mutatis-Release", "3")
        .send()
        .unwrap();
    assert_eq!(header(&r, "etag"), Some(format!("\"{rev};Student@3\"")));
    assert_eq!(
        r.json::<Value>().unwrap()["fistAndLastName"],
        "Mary Ann Smith"
    );

    let token = one.token("dora", "writer");
    let r = two
        .req(Method::GET, "/docs/Student/mary", Some(&token))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    // A write through one wakes a longpoll on the other (by its poll).
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            two.admin(Method::GET, "/changes?feed=longpoll&since=1&timeout=20000")
                .send()
                .unwrap()
                .json::<Value>()
                .unwrap()
        });
        std::thread::sleep(Duration::from_millis(300));
        one.create("nora", ada());
        assert_eq!(waiter.join().unwrap()["results"][0]["id"], "nora");
    });
}

const TODO_SET: &str = "
name: todos
releases:
  - {name: '1', types: {todo: 1}, status: supported}
  - {name: '2', types: {todo: 2}, status: current}
storage: {todo: {version: 1, strategy: eager}}
";

const TODO_TYPE: &str = "
type: todo
versions:
  1: {schema: {type: object, properties: {title: {type: string}, done: {type: boolean}}, required: [title], additionalProperties: false}}
  2: {lens: [{rename: {source: done, destination: finished}}]}
";

#[test]
fn migrations_run_in_the_background_and_roll_back() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set");
    std::fs::create_dir_all(set.join("types")).unwrap();
    std::fs::write(set.join("mutatis.yaml"), TODO_SET).unwrap();
    std::fs::write(set.join("types/todo.yaml"), TODO_TYPE).unwrap();
    let data = dir.path().join("d.redb");
    let s = Server::spawn_set(&set, &["--data", data.to_str().unwrap()], Some(ADMIN));
    for i in 0..30 {
        let r = s
            .admin(Method::POST, &format!("/docs/todo?id=t{i:02}"))
            .header("Mutatis-Release", "1")
            .json(&json!({"title": format!("t{i}"), "done": i % 2 == 0}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let state = || -> Value {
        s.admin(Method::GET, "/admin/migrations/todo")
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    // Polls until the background run is over (bounded: a stuck run fails the test).
    let settle = || -> Value {
        for _ in 0..200 {
            let v = state();
            if v["migration"].is_null() && v["running"] == false {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the migration did not finish: {}", state());
    };
    let r = s
        .admin(Method::POST, "/admin/migrations")
        .json(&json!({"type": "todo", "to": 2, "batchSize": 7}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        header(&r, "location").as_deref(),
        Some("/admin/migrations/todo")
    );
    let v = settle();
    assert_eq!(v["storageVersion"], 2);
    assert_eq!(v["backup"]["version"], 1);
    assert_eq!(v["lastError"], Value::Null);
    let doc: Value = s
        .admin(Method::GET, "/docs/todo/t04")
        .header("Mutatis-Release", "1")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(doc, json!({"title": "t4", "done": true}));
    let metrics = s
        .admin(Method::GET, "/metrics")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("todo"), "{metrics}");

    let r = s
        .admin(Method::POST, "/admin/migrations/todo/rollback")
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let v = settle();
    assert_eq!(v["storageVersion"], 1);
    let r = s
        .admin(Method::DELETE, "/admin/migrations/todo/backup")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["backup"], Value::Null);
    let v: Value = s
        .admin(Method::GET, "/docs/todo?limit=1000")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["docs"].as_array().unwrap().len(), 30);

    // Reload: retiring supported release 1 without deprecating it first is refused...
    std::fs::write(
        set.join("mutatis.yaml"),
        TODO_SET.replace("  - {name: '1', types: {todo: 1}, status: supported}\n", ""),
    )
    .unwrap();
    let r = s.admin(Method::POST, "/admin/reload").send().unwrap();
    let p = problem(r, 409, "reload-refused");
    assert_eq!(p["diff"]["outcome"], "breaking");
    let r = s
        .admin(Method::GET, "/docs/todo/t04")
        .header("Mutatis-Release", "1")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // ...unless forced; then release 1 is gone.
    let r = s
        .admin(Method::POST, "/admin/reload?force=true")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .admin(Method::GET, "/docs/todo/t04")
        .header("Mutatis-Release", "1")
        .send()
        .unwrap();
    problem(r, 400, "unknown-release");
}

#[test]
fn offline_tokens_are_created_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.redb");
    let token_cmd = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mutatis"))
            .arg("token")
            .arg(args[0])
            .arg(students())
            .args(["--data", data.to_str().unwrap()])
            .args(&args[1..])
            .output()
            .unwrap()
    };
    let out = token_cmd(&["create", "--name", "ci", "--role", "writer"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        token.starts_with("mutatis_") && token.len() == 72,
        "{token}"
    );
    let out = token_cmd(&["create", "--name", "ci"]);
    assert_eq!(out.status.code(), Some(2));
    let out = token_cmd(&["list"]);
    let listed = String::from_utf8(out.stdout).unwrap();
    let line: Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(
        (line["name"].clone(), line["role"].clone()),
        (json!("ci"), json!("writer"))
    );
    assert!(!listed.contains(&token));

    {
        let s = Server::spawn(&["--data", data.to_str().unwrap()], Some(ADMIN));
        let r = s
            .req(Method::GET, "/docs/Student", Some(&token))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = s
            .req(Method::GET, "/admin/tokens", Some(&token))
            .send()
            .unwrap();
        problem(r, 403, "forbidden");
    }
    assert!(token_cmd(&["revoke", "--name", "ci"]).status.success());
    assert_eq!(
        token_cmd(&["revoke", "--name", "ci"]).status.code(),
        Some(2)
    );
    let s = Server::spawn(&["--data", data.to_str().unwrap()], Some(ADMIN));
    let r = s
        .req(Method::GET, "/docs/Student", Some(&token))
        .send()
        .unwrap();
    problem(r, 401, "unauthenticated");
}

const NOTE_SET: &str = "
name: notes
releases:
  - {name: a, types: {note: 1}, status: supported}
  - {name: b, types: {note: 2}, status: supported}
  - {name: c, types: {note: 2}, status: current}
defaultRelease: {detect: body}
storage: {note: {version: 2, strategy: lazy}}
";

const NOTE_TYPE: &str = "
type: note
versions:
  1: {schema: {type: object, properties: {text: {type: string}}, required: [text]}}
  2: {lens: [{rename: {source: text, destination: body}}]}
";

/// Clients that name no release, under `defaultRelease: {detect: body}`.
#[test]
fn unnamed_clients_are_detected_from_the_body_never_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set");
    std::fs::create_dir_all(set.join("types")).unwrap();
    std::fs::write(set.join("mutatis.yaml"), NOTE_SET).unwrap();
    std::fs::write(set.join("types/note.yaml"), NOTE_TYPE).unwrap();
    let data = dir.path().join("d.redb");
    let s = Server::spawn_set(
        &set,
        &["--data", data.to_str().unwrap(), "--public-metrics"],
        Some(ADMIN),
    );
    let post = |id: &str, body: Value| {
        s.admin(Method::POST, &format!("/docs/note?id={id}"))
            .json(&body)
            .send()
            .unwrap()
    };
    let r = post("old", json!({"text": "hi"}));
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "mutatis-release").as_deref(), Some("a"));
    let r = post("new", json!({"body": "hi"}));
    assert_eq!(header(&r, "mutatis-release").as_deref(), Some("c"));
    let p = problem(
        post("both", json!({"text": "x", "body": "y"})),
        400,
        "ambiguous-release",
    );
    assert_eq!(p["candidates"], json!(["a", "b", "c"]));
    let p = problem(
        post("none", json!({"title": 1})),
        400,
        "release-detection-failed",
    );
    assert_eq!(p["tried"].as_array().unwrap().len(), 3);
    // No body and no fallback: the client must say.
    let r = s.admin(Method::GET, "/docs/note/old").send().unwrap();
    problem(r, 400, "release-required");
    let r = s
        .admin(Method::GET, "/docs/note/old")
        .header("Mutatis-Release", "c")
        .send()
        .unwrap();
    assert_eq!(r.json::<Value>().unwrap(), json!({"body": "hi"}));
    let meta: Value = s
        .req(Method::GET, "/meta", None)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(meta["defaultRelease"], json!({"detect": "body"}));
    // --public-metrics: no token needed.
    let r = s.req(Method::GET, "/metrics", None).send().unwrap();
    assert_eq!(r.status(), 200);
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut s = Server::start(&[]);
    assert_eq!(
        s.req(Method::GET, "/health", None).send().unwrap().status(),
        200
    );
    let pid = s.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = s.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// SIGTERM ends the feeds that wait — an event stream and a five-minute long-poll — with a
/// proper end of their answers, so the server stops without waiting them out. (The client
/// gives up after 30 s: a feed that held the shutdown would fail the test.)
#[cfg(unix)]
#[test]
fn sigterm_ends_waiting_feeds() {
    let mut s = Server::logged("info,tower_http=debug");
    let sse = s.admin(Method::GET, "/changes?feed=sse&timeout=300000");
    let sse = std::thread::spawn(move || {
        let r = sse.send().unwrap();
        assert_eq!(r.status(), 200);
        r.text()
    });
    let longpoll = s.admin(Method::GET, "/changes?feed=longpoll&timeout=300000");
    let longpoll = std::thread::spawn(move || longpoll.send().and_then(|r| r.json::<Value>()));
    // Both requests are in the server before it is told to stop.
    for _ in 0..2 {
        s.log_line(&["started processing request", "/changes"]);
    }
    let pid = s.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());

    let events = sse
        .join()
        .unwrap()
        .expect("the event stream ends, not cut off");
    assert!(!events.contains("event: change"), "{events}");
    let answer = longpoll.join().unwrap().expect("the long-poll is answered");
    assert_eq!(answer["results"], json!([]), "{answer}");
    s.exits_cleanly_within(Duration::from_secs(60), "the server did not stop");
}

/// A client that stops reading its answers does not hold a stopping server up: past the
/// request timeout and a second's margin, its connection is dropped and the server exits.
/// The client here pipelines requests for far more than the socket buffers hold and reads
/// nothing, so the server is stuck writing when it is told to stop.
#[cfg(unix)]
#[test]
fn sigterm_drops_a_client_that_stopped_reading() {
    use std::io::Write as _;
    let mut s = Server::start(&["--request-timeout", "1", "--body-timeout", "0.5"]);
    let addr = s.base.trim_start_matches("http://").to_owned();
    let one = format!("GET /openapi.json HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let size = s
        .req(Method::GET, "/openapi.json", None)
        .send()
        .unwrap()
        .bytes()
        .unwrap()
        .len();
    // Answers worth 64 MB: far past what the two sockets' buffers hold.
    let count = (64 << 20) / size.max(1) + 1;
    let mut silent = std::net::TcpStream::connect(&addr).unwrap();
    let writer = {
        let mut w = silent.try_clone().unwrap();
        let requests = one.repeat(count);
        // The server stops reading requests once its answers back up: the rest waits here
        // until the connection is dropped.
        std::thread::spawn(move || {
            let _ = w.write_all(requests.as_bytes());
        })
    };
    // The server answers until the buffers are full.
    std::thread::sleep(Duration::from_secs(2));
    let pid = s.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    // Far past the request timeout and the margin: a server still running then was held up.
    s.exits_cleanly_within(
        Duration::from_secs(30),
        "a client that stopped reading held the stopping server up",
    );
    // It was held up by this client: the connection ended before the answers did.
    let mut got = Vec::new();
    let _ = silent.read_to_end(&mut got);
    let answered = got.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count();
    assert!(
        answered < count,
        "all {count} answers were sent: the client never held the server up"
    );
    let _ = writer.join();
}

/// Every request has an id — the client's when it is a valid one, else the server's — on its
/// answer, in a problem's body and in its log line, which names method, path (never the
/// query), release, status and latency.
#[test]
fn each_request_has_an_id_and_a_log_line() {
    let s = Server::logged("info");
    let r = s
        .admin(Method::GET, "/docs/Student/nobody?after=QUERY-SECRET")
        .header("Mutatis-Release", "3")
        .header("X-Request-Id", "client-id-42")
        .send()
        .unwrap();
    assert_eq!(header(&r, "x-request-id").as_deref(), Some("client-id-42"));
    let p = problem(r, 404, "not-found");
    assert_eq!(p["requestId"], "client-id-42", "{p}");
    let line = s.log_line(&["client-id-42", "answered"]);
    for part in [
        "GET",
        "/docs/Student/nobody",
        "release=\"3\"",
        "status=404",
        "latency_ms=",
    ] {
        assert!(line.contains(part), "{part}: {line}");
    }
    assert!(!line.contains("QUERY-SECRET"), "{line}");

    // An id that could forge log lines is replaced by one of the server's.
    let r = s
        .admin(Method::GET, "/docs/Student/nobody")
        .header("X-Request-Id", "two words\" status=200")
        .send()
        .unwrap();
    let made = header(&r, "x-request-id").unwrap();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    assert_eq!(problem(r, 404, "not-found")["requestId"], made.as_str());
    // Without one, each request gets its own.
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let r = s.req(Method::GET, "/health", None).send().unwrap();
            assert_eq!(r.status(), 200);
            header(&r, "x-request-id").unwrap()
        })
        .collect();
    assert_ne!(ids[0], ids[1]);
    s.log_line(&[ids[1].as_str(), "/health", "status=200"]);
}

/// `/readyz` follows the store: 503 `not-ready` while the server's PostgreSQL role may not
/// log in (its connections killed), 200 again once it may; `/livez` says the process answers
/// throughout, and neither needs a token.
#[test]
fn readiness_follows_the_store_and_liveness_the_process() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            !ci,
            "CI must run the PostgreSQL tests, but DATABASE_URL is not set"
        );
        eprintln!("WARNING: DATABASE_URL is not set: PostgreSQL test `readiness_follows_the_store_and_liveness_the_process` NOT RUN");
        return;
    };
    let unique = format!(
        "ready_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!(
            "CREATE ROLE {unique} LOGIN; CREATE SCHEMA {unique} AUTHORIZATION {unique}; \
             DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO {unique}', \
             current_database()); END $$;"
        ))
        .unwrap();
    struct DropRole(String, String);
    impl Drop for DropRole {
        fn drop(&mut self) {
            if let Ok(mut c) = postgres::Client::connect(&self.0, postgres::NoTls) {
                let _ = c.batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {0} CASCADE; \
                     SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{0}'; \
                     DROP OWNED BY {0}; DROP ROLE IF EXISTS {0};",
                    self.1
                ));
            }
        }
    }
    let _cleanup = DropRole(url.clone(), unique.clone());
    // The same database, as the new role.
    let mut as_role: reqwest::Url = url.parse().unwrap();
    as_role.set_username(&unique).unwrap();
    as_role.set_password(None).unwrap();
    let as_role = as_role.to_string();
    let s = Server::spawn(
        &["--postgres", &as_role, "--pg-schema", &unique],
        Some(ADMIN),
    );
    let probe = |path: &str| s.req(Method::GET, path, None).send().unwrap();
    let r = probe("/readyz");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["status"], "ready");

    admin
        .batch_execute(&format!(
            "ALTER ROLE {unique} NOLOGIN; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{unique}';"
        ))
        .unwrap();
    let p = problem(probe("/readyz"), 503, "not-ready");
    assert!(p["detail"].as_str().unwrap().contains("store"), "{p}");
    let r = probe("/livez");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["status"], "live");

    admin
        .batch_execute(&format!("ALTER ROLE {unique} LOGIN;"))
        .unwrap();
    let r = probe("/readyz");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["status"], "ready");
}

/// Metrics count every response under the release and type the request named, failures
/// included (that is how an operator sees who still calls a release before retiring it), and
/// the feed names the release it served when the client named none, as `/docs` does.
#[test]
fn metrics_count_failures_per_release_and_the_feed_names_its_default() {
    let s = Server::start(&[]);
    let r = s
        .admin(Method::GET, "/docs/Student/nobody")
        .header("Mutatis-Release", "3")
        .send()
        .unwrap();
    problem(r, 404, "not-found");
    let r = s
        .admin(Method::GET, "/docs/Student/nobody")
        .header("Mutatis-Release", "2")
        .send()
        .unwrap();
    problem(r, 400, "unsupported-release");
    // A name the set does not know is no label.
    let r = s
        .admin(Method::GET, "/docs/Student/nobody")
        .header("Mutatis-Release", "made-up")
        .send()
        .unwrap();
    problem(r, 400, "unknown-release");
    let text = s
        .admin(Method::GET, "/metrics")
        .send()
        .unwrap()
        .text()
        .unwrap();
    let count = |release: &str, status: &str| {
        text.lines().any(|l| {
            l.starts_with("mutatis_requests_total{")
                && l.contains(&format!("release=\"{release}\""))
                && l.contains("type=\"Student\"")
                && l.contains(&format!("status=\"{status}\""))
        })
    };
    assert!(count("3", "404"), "{text}");
    assert!(count("2", "400"), "{text}");
    assert!(!text.contains("made-up"), "{text}");

    let r = s.admin(Method::GET, "/changes").send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "mutatis-release").as_deref(), Some("5"));
}
