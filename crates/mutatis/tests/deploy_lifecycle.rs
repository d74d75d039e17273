//! The deploy lifecycle against the real binary: a schema set that changes between deploys
//! (a version above storage, a changed storage, a sunset, earlier revisions), each step on a
//! real `mutatis serve` node over its redb file, restarted where a deploy restarts it.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use support::{bin, example, Node, NodeOptions};

const PATIENCE: Duration = Duration::from_secs(60);

fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(t) = probe() {
            return t;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A copy of `examples/NAME` in `dest`, to edit as a team edits its schema set.
fn copy_example(name: &str, dest: &Path) -> PathBuf {
    let src = example(name);
    std::fs::create_dir_all(dest.join("types")).expect("a folder");
    std::fs::copy(src.join("mutatis.yaml"), dest.join("mutatis.yaml")).expect("mutatis.yaml");
    for entry in std::fs::read_dir(src.join("types")).expect("types") {
        let entry = entry.expect("an entry");
        std::fs::copy(entry.path(), dest.join("types").join(entry.file_name())).expect("a type");
    }
    dest.to_owned()
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("readable");
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("writable");
}

/// `examples/students` with `Student@6` (an email) in release 6, current; storage stays at 5.
fn students_with_email(dest: &Path) -> PathBuf {
    let dir = copy_example("students", dest);
    let ty = dir.join("types/Student.yaml");
    let mut text = std::fs::read_to_string(&ty).expect("the type");
    text.push_str("  6:\n    description: An email address.\n    lens:\n      - add: {name: email, type: string, default: \"\"}\n");
    std::fs::write(&ty, text).expect("the type");
    edit(
        &dir.join("mutatis.yaml"),
        "  - {name: \"5\", types: {Student: 5}, status: current}",
        "  - {name: \"5\", types: {Student: 5}, status: supported}\n  - {name: \"6\", types: {Student: 6}, status: current}",
    );
    dir
}

fn put(node: &Node, id: &str, release: &str, rev: Option<&str>, body: &Value) -> String {
    match rev {
        None => node.create_doc("Student", id, release, body),
        Some(rev) => node.update_doc("Student", id, release, rev, body),
    }
}

fn get(node: &Node, id: &str, release: &str) -> (String, Value) {
    node.get_doc("Student", id, release)
        .unwrap_or_else(|| panic!("Student/{id} in release {release}"))
}

fn post(node: &Node, path: &str, body: &Value) -> (u16, Value) {
    let r = node
        .request(Method::POST, path)
        .json(body)
        .send()
        .expect("POST");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn a_version_above_storage_keeps_what_storage_cannot_hold() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = students_with_email(&tmp.path().join("set"));
    let mut node = Node::start(&dir, &tmp.path().join("s.redb"));

    // Release 6 writes an email Student@5 (the storage version) has no place for.
    let mary6 = json!({"firstName": "Mary Ann", "lastName": "Smith", "yearOfBirth": 2008, "email": "a@b.c"});
    let rev = put(&node, "m", "6", None, &mary6);
    assert_eq!(get(&node, "m", "6").1, mary6);
    assert_eq!(
        get(&node, "m", "5").1,
        json!({"firstName": "Mary Ann", "lastName": "Smith", "yearOfBirth": 2008})
    );
    // A release-5 app edits what it sees; the email it cannot see survives.
    let rev = put(
        &node,
        "m",
        "5",
        Some(&rev),
        &json!({"firstName": "Mary Ann", "lastName": "Smith", "yearOfBirth": 2007}),
    );
    let mary6 = json!({"firstName": "Mary Ann", "lastName": "Smith", "yearOfBirth": 2007, "email": "a@b.c"});
    assert_eq!(get(&node, "m", "6").1, mary6);
    // So does a release-3 app's edit, through a name it only knows whole.
    let (_, mary3) = get(&node, "m", "3");
    assert_eq!(mary3["fistAndLastName"], "Mary Ann Smith");
    put(&node, "m", "3", Some(&rev), &mary3);
    assert_eq!(get(&node, "m", "6").1, mary6);

    // A PATCH at release 6 is a write at release 6.
    let (rev, _) = get(&node, "m", "6");
    let r = node
        .request(Method::PATCH, "/docs/Student/m")
        .header("Mutatis-Release", "6")
        .header("If-Match", format!("\"{rev}\""))
        .header("Content-Type", "application/json-patch+json")
        .body(r#"[{"op": "replace", "path": "/email", "value": "mary@school"}]"#)
        .send()
        .expect("PATCH");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(get(&node, "m", "6").1["email"], "mary@school");

    // Storage moved down to version 1 by hand (lazy: at once): a release-5 write of a name
    // with a space in it reads back as written, not re-split.
    let (status, _) = post(
        &node,
        "/admin/migrations",
        &json!({"type": "Student", "to": 1}),
    );
    assert!(status == 200 || status == 202, "{status}");
    let ann = json!({"firstName": "Ann Marie", "lastName": "Lee", "yearOfBirth": 2010});
    put(&node, "ann", "5", None, &ann);
    assert_eq!(get(&node, "ann", "5").1, ann);
    // A restart brings storage back to what mutatis.yaml declares; nothing changes.
    node.restart();
    assert_eq!(get(&node, "ann", "5").1, ann);
    assert_eq!(get(&node, "m", "6").1["email"], "mary@school");
    let state = node.get_json("/admin/migrations/Student");
    assert_eq!(state["storageVersion"], 5, "{state}");

    // `mutatis check` says release 6 relies on carrying.
    let out = Command::new(bin())
        .args(["check", "--json"])
        .arg(&dir)
        .output()
        .expect("mutatis check");
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["warnings"][0]["kind"], "carried-writes", "{report}");
    assert_eq!(report["warnings"][0]["release"], "6");
}

/// `examples/todo` with the storage `todo: {version: V, strategy: eager}`.
fn todo_stored_at(dir: &Path, version: u32) {
    let path = dir.join("mutatis.yaml");
    let text = std::fs::read_to_string(&path).expect("mutatis.yaml");
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("todo: {version:") {
            out.push_str(&format!(
                "  todo: {{version: {version}, strategy: eager}}\n"
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(path, out).expect("mutatis.yaml");
}

fn storage_of(node: &Node) -> Value {
    node.get_json("/admin/migrations/todo")
}

fn settled_at(node: &Node, version: u64) -> Value {
    eventually(&format!("todo stored in version {version}"), || {
        let s = storage_of(node);
        (s["storageVersion"] == version && s["migration"].is_null()).then_some(s)
    })
}

#[test]
fn the_declared_storage_is_acted_on_after_a_restart_and_a_reload() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = copy_example("todo", &tmp.path().join("set"));
    // Release 3 (todo@1) is served here, so old documents can be written as they were.
    edit(
        &dir.join("mutatis.yaml"),
        "{name: \"3\", types: {todo: 1}, status: unsupported}",
        "{name: \"3\", types: {todo: 1}, status: supported}",
    );
    todo_stored_at(&dir, 2);
    let data = tmp.path().join("t.redb");
    let mut node = Node::start(&dir, &data);
    let mut revs = Vec::new();
    for i in 0..40 {
        let body = json!({"title": format!("t{i}"), "done": i % 3 == 0, "important": i % 2 == 0});
        revs.push(node.create_doc("todo", &format!("t{i}"), "4", &body));
    }
    let before = node.list_docs("todo");
    assert_eq!(storage_of(&node)["storageVersion"], 2);

    // A deploy moves storage to version 3: the restart migrates by itself.
    todo_stored_at(&dir, 3);
    node.restart();
    let s = settled_at(&node, 3);
    assert_eq!(s["backup"]["version"], 2, "{s}");
    assert_eq!(
        node.list_docs("todo"),
        before,
        "nothing changed but where it is kept"
    );

    // The backup of version 2 is in the way of another move: a reload is refused, saying
    // what to do, and nothing changes.
    todo_stored_at(&dir, 1);
    let (status, problem) = post(&node, "/admin/reload", &json!({}));
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["type"], "urn:mutatis:problem:storage-mismatch");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("drop-backup")),
        "{problem}"
    );
    assert_eq!(storage_of(&node)["storageVersion"], 3);
    // A restart with it is an error at start, not silence.
    node.kill();
    let out = Command::new(bin())
        .arg("serve")
        .arg(&dir)
        .arg("--data")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0"])
        .env("MUTATIS_ADMIN_TOKEN", &node.token)
        .stdin(Stdio::null())
        .output()
        .expect("mutatis serve");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("declares storage version 1"), "{stderr}");

    // Declaring the backup's version rolls back onto it.
    todo_stored_at(&dir, 2);
    node.restart();
    let s = settled_at(&node, 2);
    assert_eq!(s["backup"]["version"], 3, "{s}");
    assert_eq!(node.list_docs("todo"), before);

    // Dropping the backup lets the reload move storage again, in the background.
    let r = node
        .request(Method::DELETE, "/admin/migrations/todo/backup")
        .send()
        .expect("DELETE");
    assert!(r.status().is_success(), "{}", r.status());
    todo_stored_at(&dir, 1);
    let (status, reloaded) = post(&node, "/admin/reload", &json!({}));
    assert_eq!(status, 200, "{reloaded}");
    assert_eq!(reloaded["storage"][0]["type"], "todo", "{reloaded}");
    settled_at(&node, 1);
    // Version 1 has no place for `important`: carried, every document reads back whole.
    assert_eq!(node.list_docs("todo"), before);
    // And writes keep going in every release.
    let (rev, t0) = node.get_doc("todo", "t0", "5").expect("t0");
    let mut t0 = t0;
    t0["status"] = json!("started");
    node.update_doc("todo", "t0", "5", &rev, &t0);
    assert_eq!(node.get_doc("todo", "t0", "5").expect("t0").1, t0);
}

#[test]
fn a_release_past_its_sunset_is_unsupported_by_the_servers_date() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let node = Node::start_with(
        &example("students"),
        &tmp.path().join("s.redb"),
        NodeOptions {
            extra_args: vec!["--reference-date".into(), "2027-09-01".into()],
            ..NodeOptions::default()
        },
    );
    // Release 3's sunset is 2027-09-01: from that day on it is refused as unsupported,
    // naming the date, so the app can lock itself and ask for an update.
    let r = node
        .request(Method::GET, "/docs/Student")
        .header("Mutatis-Release", "3")
        .send()
        .expect("GET");
    assert_eq!(r.status().as_u16(), 400);
    let problem: Value = r.json().expect("a problem");
    assert_eq!(problem["type"], "urn:mutatis:problem:unsupported-release");
    assert_eq!(problem["sunset"], "2027-09-01");
    assert_eq!(problem["oldestSupported"], "4");
    // Release 4 is still served (its sunset is later), with its headers.
    let r = node
        .request(Method::GET, "/docs/Student")
        .header("Mutatis-Release", "4")
        .send()
        .expect("GET");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("sunset").is_some());
    // /meta says so too: every client can learn it must update.
    let meta = node.get_json("/meta");
    let r3 = meta["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .find(|r| r["name"] == "3")
        .expect("release 3")
        .clone();
    assert_eq!(r3["status"], "unsupported", "{r3}");
    // `mutatis check` as of that day warns about it.
    let out = Command::new(bin())
        .args(["check", "--json", "--reference-date", "2027-09-01"])
        .arg(example("students"))
        .output()
        .expect("mutatis check");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["warnings"][0]["kind"], "sunset-passed", "{report}");
    assert_eq!(report["warnings"][0]["release"], "3");
}

#[test]
fn earlier_revisions_and_the_backup_are_readable() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = copy_example("students", &tmp.path().join("set"));
    edit(
        &dir.join("mutatis.yaml"),
        "Student: {version: 5, strategy: lazy}",
        "Student: {version: 5, strategy: eager, history: 2}",
    );
    let node = Node::start(&dir, &tmp.path().join("s.redb"));
    let mut revs = Vec::new();
    let mut rev: Option<String> = None;
    for year in [2001, 2002, 2003, 2004] {
        let body = json!({"firstName": "Rev", "lastName": "Iew", "yearOfBirth": year});
        let r = put(&node, "r", "5", rev.as_deref(), &body);
        revs.push(r.clone());
        rev = Some(r);
    }
    let at = |rev: &str, release: &str| {
        node.request(Method::GET, &format!("/docs/Student/r?rev={rev}"))
            .header("Mutatis-Release", release)
            .send()
            .expect("GET ?rev=")
    };
    // The previous revision, in the caller's version (release 3 reads an age).
    let r = at(&revs[2], "5");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some(format!("\"{};Student@5\"", revs[2]).as_str())
    );
    assert_eq!(r.json::<Value>().expect("JSON")["yearOfBirth"], 2003);
    let old = at(&revs[1], "3").json::<Value>().expect("JSON");
    assert_eq!(old["fistAndLastName"], "Rev Iew", "{old}");
    // Pushed out of the last two: a 404 that says so; an unknown rev is another 404.
    let r = at(&revs[0], "5");
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(
        r.json::<Value>().expect("a problem")["type"],
        "urn:mutatis:problem:revision-not-kept"
    );
    let r = at("9-00000000deadbeef", "5");
    assert_eq!(
        r.json::<Value>().expect("a problem")["type"],
        "urn:mutatis:problem:unknown-revision"
    );
    let r = at("not-a-rev", "5");
    assert_eq!(r.status().as_u16(), 400);

    // After a migration, the backup holds the document as it was at the switch.
    let r = node
        .request(Method::GET, "/docs/Student/r?source=backup")
        .send()
        .expect("GET");
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(
        r.json::<Value>().expect("a problem")["type"],
        "urn:mutatis:problem:no-backup"
    );
    let (status, _) = post(
        &node,
        "/admin/migrations",
        &json!({"type": "Student", "to": 4}),
    );
    assert!(status == 200 || status == 202, "{status}");
    eventually("the switch", || {
        let s = node.get_json("/admin/migrations/Student");
        (s["storageVersion"] == 4 && s["migration"].is_null()).then_some(())
    });
    put(
        &node,
        "r",
        "5",
        rev.as_deref(),
        &json!({"firstName": "Rev", "lastName": "Iew", "yearOfBirth": 1999}),
    );
    let r = node
        .request(Method::GET, "/docs/Student/r?source=backup")
        .header("Mutatis-Release", "5")
        .send()
        .expect("GET");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().expect("JSON")["yearOfBirth"], 2004);
    assert_eq!(get(&node, "r", "5").1["yearOfBirth"], 1999);

    // The feed lists the document once, at its latest change, with that change's body.
    let feed = node.get_json("/changes?include_docs=true&release=5");
    let rs: Vec<&Value> = feed["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|c| c["id"] == "r")
        .collect();
    assert_eq!(rs.len(), 1, "{feed}");
    assert_eq!(rs[0]["doc"]["yearOfBirth"], 1999);
}
