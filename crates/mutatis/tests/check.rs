//! `mutatis check --against DIR|FILE|URL` and `mutatis compat`, through the real binary: exit
//! codes, reports, and a node's manifest served by a small HTTP server inside the test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use mutatis_schema::SchemaSet;
use serde_json::{json, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example(name: &str) -> PathBuf {
    repo().join("examples").join(name)
}

fn mutatis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mutatis"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// A fresh scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mutatis-check-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `examples/students` copied, with a version 6 that requires a new field (so that a client
/// of the deployed release 5 that writes a student without it is refused by a v6 reader), and
/// made current.
fn students_with_required_email() -> PathBuf {
    let dir = scratch("students-v6");
    copy_dir(&example("students"), &dir);
    let ty = dir.join("types/Student.yaml");
    let mut text = std::fs::read_to_string(&ty).unwrap();
    text.push_str("  6:\n    description: Every student has an email.\n    lens:\n      - add: {name: email, type: string}\n");
    std::fs::write(&ty, text).unwrap();
    let settings = dir.join("mutatis.yaml");
    let text = std::fs::read_to_string(&settings).unwrap().replace(
        "  - {name: \"5\", types: {Student: 5}, status: current}",
        "  - {name: \"5\", types: {Student: 5}, status: supported}\n  - {name: \"6\", types: {Student: 6}, status: current}",
    );
    std::fs::write(&settings, text).unwrap();
    dir
}

/// `examples/students` copied, with the schema of version 1 edited in place: every version
/// derived from it changes under the clients that speak it.
fn students_edited_in_place() -> PathBuf {
    let dir = scratch("students-edited");
    copy_dir(&example("students"), &dir);
    let ty = dir.join("types/Student.yaml");
    let text = std::fs::read_to_string(&ty).unwrap().replace(
        "        name: {type: string}",
        "        name: {type: string, maxLength: 40}",
    );
    std::fs::write(&ty, text).unwrap();
    dir
}

fn students_manifest() -> Value {
    SchemaSet::load(example("students")).unwrap().manifest()
}

/// A one-shot-per-connection HTTP server on 127.0.0.1 that answers every request with
/// `status` and `body`, and reports each request line it received.
fn serve(status: &'static str, body: String) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let request = read_head(&mut stream);
            let _ = tx.send(request.lines().next().unwrap_or_default().to_owned());
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (url, rx)
}

fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

// ------------------------------------------------------------------------------------- URL

#[test]
fn url_mode_fetches_the_node_manifest() {
    let (url, requests) = serve("200 OK", students_manifest().to_string());
    let out = mutatis(&[
        "check",
        example("students").to_str().unwrap(),
        "--against",
        &url,
    ]);
    assert_eq!(code(&out), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("compatible"), "{}", stdout(&out));
    assert_eq!(
        requests.recv_timeout(Duration::from_secs(5)).unwrap(),
        "GET /schema HTTP/1.1"
    );

    let breaking = students_with_required_email();
    let out = mutatis(&[
        "check",
        breaking.to_str().unwrap(),
        "--against",
        &url,
        "--json",
    ]);
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(report["outcome"], json!("breaking"));
    assert_eq!(report["deployed"]["source"], json!(url));
    assert_eq!(report["deployed"]["name"], json!("student-register"));
}

#[test]
fn a_node_that_answers_an_error_is_exit_2_with_its_status() {
    let (url, _requests) = serve(
        "503 Service Unavailable",
        "{\"title\": \"starting\"}".into(),
    );
    let out = mutatis(&[
        "check",
        example("students").to_str().unwrap(),
        "--against",
        &url,
    ]);
    assert_eq!(code(&out), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot fetch {url}")) && err.contains("503"),
        "{err}"
    );
}

#[test]
fn an_unreachable_url_is_exit_2_with_a_clear_message() {
    // A port that was just free and is now closed: the connection is refused.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let out = mutatis(&[
        "check",
        example("students").to_str().unwrap(),
        "--against",
        &url,
    ]);
    assert_eq!(code(&out), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot fetch {url}")) && err.contains("cannot connect"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn a_silent_node_times_out() {
    // Accepts the connection and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        let held: Vec<TcpStream> = listener.incoming().filter_map(Result::ok).collect();
        drop(held);
    });
    let started = std::time::Instant::now();
    let out = mutatis(&[
        "check",
        example("students").to_str().unwrap(),
        "--against",
        &url,
        "--timeout",
        "0.5",
    ]);
    assert_eq!(code(&out), Some(2));
    assert!(
        stderr(&out).contains("no answer within"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    let out = mutatis(&[
        "check",
        example("students").to_str().unwrap(),
        "--against",
        &url,
        "--timeout=-1",
    ]);
    assert_eq!(code(&out), Some(2));
    assert!(stderr(&out).contains("--timeout -1"), "{}", stderr(&out));
}

// ------------------------------------------------------------------------------ FILE and DIR

#[test]
fn file_mode_reads_a_manifest_file() {
    let dir = scratch("file-mode");
    let file = dir.join("deployed.json");
    std::fs::write(&file, students_manifest().to_string()).unwrap();
    let out = mutatis(&[
        "check",
        example("students").to_str().unwrap(),
        "--against",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(0), "{}{}", stdout(&out), stderr(&out));
    let breaking = students_with_required_email();
    let out = mutatis(&[
        "check",
        breaking.to_str().unwrap(),
        "--against",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));

    std::fs::write(&file, "{\"mutatisManifest\": 1,\n  oops}").unwrap();
    let out = mutatis(&[
        "check",
        breaking.to_str().unwrap(),
        "--against",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(2));
    assert!(
        stderr(&out).contains(&format!("{}:2:", file.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_breaking_edit_to_the_students_example_is_caught_with_a_readable_report() {
    let breaking = students_with_required_email();
    let out = mutatis(&[
        "check",
        breaking.to_str().unwrap(),
        "--against",
        example("students").to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    let report = stdout(&out);
    for expected in [
        "releases",
        "Student@6  new",
        "Student@5 → Student@6  not BACKWARD compatible",
        "/email added (required)  breaks old clients",
        "BREAKING: 1 problem",
        "- Student@5 → Student@6 is not BACKWARD compatible",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in:\n{report}"
        );
    }
    // Colour only on a terminal.
    assert!(!report.contains('\u{1b}'), "{report}");
}

#[test]
fn an_edit_in_place_is_incorrectly_supported_with_both_schemas() {
    let edited = students_edited_in_place();
    let against = example("students");
    let out = mutatis(&[
        "check",
        edited.to_str().unwrap(),
        "--against",
        against.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(
        report.contains("Student@3  incorrectly supported"),
        "{report}"
    );
    assert!(
        report.contains("/properties/fistAndLastName/maxLength  40  |  (absent)"),
        "{report}"
    );
    assert!(
        report.contains("Student@3 was changed in place (at /properties/fistAndLastName/maxLength); served to releases 3"),
        "{report}"
    );

    let out = mutatis(&[
        "check",
        edited.to_str().unwrap(),
        "--against",
        against.to_str().unwrap(),
        "--json",
    ]);
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    let release3 = &j["releases"][2]["types"][0];
    assert_eq!(release3["verdict"], json!("incorrectly_supported"));
    assert_eq!(
        release3["expected"]["properties"]["fistAndLastName"]["maxLength"],
        json!(40)
    );
    assert!(release3["actual"]["properties"]["fistAndLastName"]
        .get("maxLength")
        .is_none());
    assert_eq!(
        release3["differences"],
        json!(["/properties/fistAndLastName/maxLength"])
    );
}

#[test]
fn a_manifest_from_a_newer_mutatis_names_the_unknown_field() {
    let mut m = students_manifest();
    m["mutatisManifest"] = json!(2);
    m["types"]["Student"]["versions"]["5"]["encryption"] = json!({"fields": ["lastName"]});
    let dir = scratch("newer");
    let file = dir.join("newer.json");
    std::fs::write(&file, m.to_string()).unwrap();
    let out = mutatis(&[
        "check",
        example("students").to_str().unwrap(),
        "--against",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("newer mutatis")
            && err.contains("`encryption` at /types/Student/versions/5/encryption")
            && err.contains(file.to_str().unwrap()),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------- policy

#[test]
fn the_policy_file_and_flags_pick_the_mode() {
    let breaking = students_with_required_email();
    let against = example("students");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "check",
            breaking.to_str().unwrap(),
            "--against",
            against.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        mutatis(&args)
    };
    assert_eq!(code(&run(&["--mode", "NONE"])), Some(0));
    assert_eq!(code(&run(&["--mode", "Student=none"])), Some(0));
    let dir = scratch("policy");
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, "default: BACKWARD\ntypes:\n  Student: NONE\n").unwrap();
    assert_eq!(code(&run(&["--policy", policy.to_str().unwrap()])), Some(0));
    // A flag wins over the file.
    assert_eq!(
        code(&run(&[
            "--policy",
            policy.to_str().unwrap(),
            "--mode",
            "Student=FULL"
        ])),
        Some(1)
    );

    std::fs::write(&policy, "types:\n  Studnet: NONE\n").unwrap();
    let out = run(&["--policy", policy.to_str().unwrap()]);
    assert_eq!(code(&out), Some(2));
    assert!(stderr(&out).contains("`Studnet`"), "{}", stderr(&out));

    std::fs::write(&policy, "types:\n  Student: SIDEWAYS\n").unwrap();
    let out = run(&["--policy", policy.to_str().unwrap()]);
    assert_eq!(code(&out), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(policy.to_str().unwrap())
            && err.contains("line 2")
            && err.contains("SIDEWAYS"),
        "{err}"
    );

    let out = run(&["--mode", "SOMETIMES"]);
    assert_eq!(code(&out), Some(2));

    let out = mutatis(&["check", breaking.to_str().unwrap(), "--mode", "FULL"]);
    assert_eq!(code(&out), Some(2));
    assert!(stderr(&out).contains("--against"), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------- compat

fn schema_file(dir: &Path, name: &str, schema: &Value) -> String {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(schema).unwrap()).unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn compat_prints_the_verdicts_and_changes() {
    let dir = scratch("compat");
    let old = schema_file(
        &dir,
        "old.json",
        &json!({"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}),
    );
    let new = schema_file(
        &dir,
        "new.json",
        &json!({"type": "object", "properties": {"age": {"type": "number"}}, "required": ["age"]}),
    );
    let out = mutatis(&["compat", &old, &new, "--json"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&j["backward"], &j["forward"], &j["full"]),
        (&json!(true), &json!(false), &json!(false))
    );
    let change = &j["changes"][0];
    assert_eq!(change["kind"], json!("type_widened"));
    assert_eq!(change["pointer"], json!("/properties/age/type"));
    assert_eq!(change["breaks_forward"], json!(true));
    assert_eq!(j["mode"], json!("BACKWARD"));
    assert_eq!(j["compatible"], json!(true));

    // FULL is not met: exit 1; the text says why.
    let out = mutatis(&["compat", &old, &new, "--mode", "FULL"]);
    assert_eq!(code(&out), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("forward   no") && text.contains("type_widened /properties/age/type"),
        "{text}"
    );
    assert!(text.contains("not compatible in FULL mode"), "{text}");
    // The reverse pair is not backward compatible.
    assert_eq!(code(&mutatis(&["compat", &new, &old])), Some(1));
}

#[test]
fn compat_errors_name_the_file_and_the_pointer() {
    let dir = scratch("compat-errors");
    let good = schema_file(&dir, "good.json", &json!({"type": "string"}));
    let bad = schema_file(
        &dir,
        "bad.json",
        &json!({"type": "object", "properties": {"a": {"type": "strnig"}}}),
    );
    let out = mutatis(&["compat", &good, &bad]);
    assert_eq!(code(&out), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&bad) && err.contains("/properties/a/type"),
        "{err}"
    );

    let dangling = schema_file(
        &dir,
        "dangling.json",
        &json!({"properties": {"a": {"$ref": "#/$defs/missing"}}}),
    );
    let out = mutatis(&["compat", &dangling, &good]);
    assert_eq!(code(&out), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&dangling)
            && err.contains("/properties/a/$ref")
            && err.contains("never fetched"),
        "{err}"
    );

    let not_json = dir.join("broken.json");
    std::fs::write(&not_json, "{\n  \"type\": }").unwrap();
    let out = mutatis(&["compat", &good, not_json.to_str().unwrap()]);
    assert_eq!(code(&out), Some(2));
    assert!(
        stderr(&out).contains(&format!("{}:2:", not_json.display())),
        "{}",
        stderr(&out)
    );
}
