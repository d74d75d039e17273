//! Usage per release, driven over HTTP on the real binary: a known mix of requests across the
//! releases of `examples/students` (refused ones, the CouchDB protocol and anonymous callers
//! included) is counted per release, type, day and token, survives a restart (counts flushed
//! at shutdown), is shared by two processes on one PostgreSQL store, and is what
//! `mutatis releases` judges retirement by. And the changelog: `GET /changelog` and
//! `mutatis changelog` give the same one (its words are checked in mutatis-schema's tests).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Method;
use serde_json::{json, Value};

const ADMIN: &str = "mutatis_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn students() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/students")
}

fn mutatis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mutatis"))
}

/// A running `mutatis serve`, killed on drop unless stopped.
struct Server {
    child: Child,
    base: String,
    http: Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn spawn(args: &[&str]) -> Server {
        let mut child = mutatis()
            .arg("serve")
            .arg(students())
            .args(["--listen", "127.0.0.1:0", "--reference-date", "2026-06-01"])
            .args(args)
            .env("MUTATIS_ADMIN_TOKEN", ADMIN)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        let base = first
            .split(" at ")
            .nth(1)
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .trim()
            .to_owned();
        // reqwest is built with rustls and no provider of its own: the process installs one.
        mutatis_client::tls::install_crypto_provider();
        Server {
            child,
            base,
            http: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    fn req(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn token(&self, name: &str, role: &str) -> String {
        let r = self
            .req(Method::POST, "/admin/tokens", Some(ADMIN))
            .json(&json!({"name": name, "role": role}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `GET /docs/Student/mary` in `release` by `token`, expecting `status`.
    fn read(&self, release: &str, token: Option<&str>, status: u16) {
        let r = self
            .req(Method::GET, "/docs/Student/mary", token)
            .header("Mutatis-Release", release)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "release {release}");
    }

    fn releases(&self) -> Value {
        let r = self
            .req(Method::GET, "/admin/releases?history=true", Some(ADMIN))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().unwrap()
    }

    /// SIGTERM, and wait for a clean exit (what flushes the last counts).
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(mutatis_kill_term(&pid));
        assert!(self.child.wait().unwrap().success());
    }
}

fn mutatis_kill_term(pid: &str) -> bool {
    Command::new("kill")
        .args(["-TERM", pid])
        .status()
        .unwrap()
        .success()
}

/// Today's stored row of `release` in a `GET /admin/releases?history=true` answer.
fn today_row(report: &Value, release: &str) -> Value {
    let today = report["today"].as_str().unwrap();
    let r = release_of(report, release);
    r["history"]["days"][today].clone()
}

fn release_of(report: &Value, release: &str) -> Value {
    report["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["release"] == release)
        .unwrap_or_else(|| panic!("no release {release} in {report}"))
        .clone()
}

/// The mix every test sends: release 3 read three times by alice, release 4 twice by bob
/// and once by alice, refused release 1 twice by alice, one anonymous (refused) read in 5,
/// a release-5 write by the admin, and the CouchDB protocol's database of release 3 by bob.
fn send_mix(s: &Server, alice: &str, bob: &str) {
    for _ in 0..3 {
        s.read("3", Some(alice), 200);
    }
    s.read("4", Some(bob), 200);
    s.read("4", Some(bob), 200);
    s.read("4", Some(alice), 200);
    s.read("1", Some(alice), 400);
    s.read("1", Some(alice), 400);
    s.read("5", None, 401);
    let r = s.req(Method::GET, "/couch/3", Some(bob)).send().unwrap();
    assert_eq!(r.status(), 200);
}

fn create_mary(s: &Server) {
    let r = s
        .req(Method::POST, "/docs/Student?id=mary", Some(ADMIN))
        .header("Mutatis-Release", "5")
        .json(&json!({"firstName": "Mary", "lastName": "Smith", "yearOfBirth": 1990}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
}

/// The counts `send_mix` (sent `times` times) and one `create_mary` leave.
fn assert_counts(report: &Value, times: u64) {
    let r3 = today_row(report, "3");
    assert_eq!(
        r3["requests"],
        json!({"Student": 3 * times, "(none)": times})
    );
    assert_eq!(r3["tokens"], json!(["alice", "bob"]));
    assert_eq!(r3["anonymous"], 0);
    let r4 = today_row(report, "4");
    assert_eq!(r4["requests"], json!({"Student": 3 * times}));
    assert_eq!(r4["tokens"], json!(["alice", "bob"]));
    let r1 = today_row(report, "1");
    assert_eq!(r1["requests"], json!({"Student": 2 * times}));
    assert_eq!(r1["tokens"], json!(["alice"]));
    let r5 = today_row(report, "5");
    assert_eq!(r5["requests"], json!({"Student": 1 + times}));
    assert_eq!(r5["tokens"], json!(["admin"]));
    assert_eq!(r5["anonymous"], times);
    assert_eq!(today_row(report, "2"), Value::Null);
}

#[test]
fn usage_is_counted_per_release_kept_across_a_restart_and_judged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.redb");
    let data_arg = data.to_str().unwrap();

    let s = Server::spawn(&["--data", data_arg]);
    let alice = s.token("alice", "reader");
    let bob = s.token("bob", "reader");
    create_mary(&s);
    send_mix(&s, &alice, &bob);
    // Stopped before anything asked for the counts: what the process held reaches the store
    // at shutdown.
    s.stop();

    let s = Server::spawn(&["--data", data_arg]);
    let report = s.releases();
    assert_counts(&report, 1);
    send_mix(&s, &alice, &bob);
    let report = s.releases();
    assert_counts(&report, 2);
    assert_eq!(report["recording"], true);

    // Shares over every release's requests: 3 has 8 of 21 (6 reads, 2 database reads).
    let r3 = release_of(&report, "3");
    assert_eq!(r3["requests30d"], 8);
    assert_eq!(r3["requests7d"], 8);
    assert!((r3["share30d"].as_f64().unwrap() - 8.0 / 21.0).abs() < 1e-9);
    assert_eq!(r3["tokens30d"], 2);
    assert_eq!(r3["status"], "deprecated");
    assert_eq!(r3["sunset"], "2027-09-01");
    assert_eq!(r3["verdict"], "keep");
    assert_eq!(
        r3["reason"],
        "38% of requests, 2 tokens, last seen today: keep"
    );
    let r1 = release_of(&report, "1");
    assert_eq!(r1["verdict"], "retired");
    assert_eq!(
        r1["reason"],
        "unsupported, yet 4 refused requests in 30 days (last seen today): apps still call it"
    );
    assert_eq!(
        release_of(&report, "2")["reason"],
        "unsupported; no request in 30 days"
    );
    assert!(r1["history"]["firstSeen"]
        .as_str()
        .unwrap()
        .starts_with(report["today"].as_str().unwrap()));

    // The command line: a table through the node, and the same JSON.
    let out = mutatis()
        .arg("releases")
        .arg(students())
        .args(["--server", &s.base])
        .env("MUTATIS_TOKEN", ADMIN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("RELEASE  STATUS"), "{table}");
    let row3 = lines.iter().find(|l| l.starts_with("3 ")).unwrap();
    assert!(
        row3.contains("deprecated")
            && row3.contains("2026-03-01")
            && row3.contains("2027-09-01")
            && row3.contains("38%")
            && row3.ends_with("keep     38% of requests, 2 tokens, last seen today: keep"),
        "{table}"
    );
    let out = mutatis()
        .arg("releases")
        .arg(students())
        .args(["--server", &s.base, "--json"])
        .env("MUTATIS_TOKEN", ADMIN)
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(release_of(&json, "4")["requests30d"], 6);

    // `check --against` the node warns before a change retires a release apps still call.
    let next = tempfile::tempdir().unwrap();
    std::fs::create_dir(next.path().join("types")).unwrap();
    let yaml = std::fs::read_to_string(students().join("mutatis.yaml")).unwrap();
    let retired = yaml.replace(
        r#"{name: "3", types: {Student: 3}, status: deprecated, deprecated: 2026-03-01, sunset: 2027-09-01}"#,
        r#"{name: "3", types: {Student: 3}, status: unsupported}"#,
    );
    assert_ne!(retired, yaml);
    std::fs::write(next.path().join("mutatis.yaml"), retired).unwrap();
    std::fs::copy(
        students().join("types/Student.yaml"),
        next.path().join("types/Student.yaml"),
    )
    .unwrap();
    let check = |token: Option<&str>| {
        let mut cmd = mutatis();
        cmd.arg("check")
            .arg(next.path())
            .args(["--against", &s.base]);
        match token {
            Some(t) => cmd.env("MUTATIS_TOKEN", t),
            None => cmd.env_remove("MUTATIS_TOKEN"),
        };
        let out = cmd.output().unwrap();
        assert_ne!(
            out.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    };
    assert!(
        check(Some(ADMIN)).contains(
            "warning: release 3 would stop being served, but the node's usage says keep: 38% of \
             requests, 2 tokens, last seen today: keep"
        ),
        "{}",
        check(Some(ADMIN))
    );
    assert!(check(None).contains(
        "warning: release(s) 3 would stop being served; set MUTATIS_TOKEN to an admin token"
    ));
    s.stop();

    // The store read directly, with no node running, says the same.
    let out = mutatis()
        .arg("releases")
        .arg(students())
        .args(["--data", data_arg, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(release_of(&json, "3")["requests30d"], 8);
    assert_eq!(release_of(&json, "5")["requests30d"], 3);

    // Switched off, nothing more is counted.
    let s = Server::spawn(&["--data", data_arg, "--usage", "off"]);
    send_mix(&s, &alice, &bob);
    let report = s.releases();
    assert_eq!(report["recording"], false);
    assert_counts(&report, 2);
}

/// Two processes on one PostgreSQL store add to the same rows.
#[test]
fn two_processes_on_postgres_add_to_the_same_counts() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            !ci,
            "CI must run the PostgreSQL tests, but DATABASE_URL is not set"
        );
        eprintln!("SKIPPED: DATABASE_URL is not set: PostgreSQL test `two_processes_on_postgres_add_to_the_same_counts` NOT RUN");
        return;
    };
    let schema = format!(
        "usage_test_{}_{}",
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
    let one = Server::spawn(&args);
    let two = Server::spawn(&args);
    let alice = one.token("alice", "reader");
    let bob = one.token("bob", "reader");
    create_mary(&one);
    send_mix(&one, &alice, &bob);
    send_mix(&two, &alice, &bob);
    // The second process's counts reach the store when it stops; the first adds its own
    // before answering.
    two.stop();
    assert_counts(&one.releases(), 2);
}

#[test]
fn the_changelog_is_served_and_printed_alike() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.redb");
    let s = Server::spawn(&["--data", data.to_str().unwrap()]);
    let r = s.req(Method::GET, "/changelog", None).send().unwrap();
    assert_eq!(r.status(), 200);
    let served: Value = r.json().unwrap();
    let out = mutatis()
        .arg("changelog")
        .arg(students())
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The node serves the set as of its reference date; every release's status is the same
    // on 2026-06-01 as today, so the two agree whole.
    assert_eq!(served, printed);
    assert_eq!(
        served["releases"][4]["types"][0]["changes"],
        json!(["`age` renamed to `yearOfBirth`, converted with `referenceYear - value`"])
    );

    let r = s
        .req(Method::GET, "/changelog?format=markdown", None)
        .send()
        .unwrap();
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/markdown; charset=utf-8"
    );
    let markdown = r.text().unwrap();
    let out = mutatis().arg("changelog").arg(students()).output().unwrap();
    assert_eq!(markdown, String::from_utf8(out.stdout).unwrap());
    assert!(markdown.starts_with("# Changelog of student-register\n\n## Release 5 (current)\n"));

    let r = s
        .req(Method::GET, "/changelog?format=yaml", None)
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let p: Value = r.json().unwrap();
    assert_eq!(p["type"], "urn:mutatis:problem:bad-request");
    assert_eq!(p["parameter"], "format");
}
