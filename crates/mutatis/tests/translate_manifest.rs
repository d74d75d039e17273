//! `mutatis translate --manifest FILE|URL`: translating with what a node publishes
//! (`GET /schema`) instead of the schema-set folder, so that a program without the folder
//! (or not written in Rust) can translate. The result must equal the folder's, line for line.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use support::{example, fresh_node};

fn translate(source: &[&str], args: &[&str], input: &str) -> Output {
    let mut child = Command::new(support::bin())
        .arg("translate")
        .args(source)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mutatis translate starts");
    let mut stdin = child.stdin.take().expect("piped stdin");
    // A command that fails before reading may close its end first.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    child.wait_with_output().expect("mutatis translate ends")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

/// Todo documents in each version, and the translations to make of them.
const CASES: [(&str, &str, &str); 4] = [
    (
        "1",
        "3",
        "{\"title\":\"milk\",\"done\":true}\n{\"title\":\"eggs\",\"done\":false}\n",
    ),
    ("1", "2", "{\"title\":\"milk\",\"done\":true}\n"),
    (
        "3",
        "1",
        "{\"title\":\"milk\",\"status\":\"started\",\"important\":true}\n",
    ),
    (
        "2",
        "3",
        "{\"title\":\"bread\",\"done\":false,\"important\":true}\n",
    ),
];

fn assert_same_as_folder(source: &[&str]) {
    let dir = example("todo");
    let dir = dir.to_str().expect("a UTF-8 path");
    for (from, to, input) in CASES {
        let args = ["--type", "todo", "--from", from, "--to", to];
        let expected = stdout(&translate(&[dir], &args, input));
        assert_eq!(expected.lines().count(), input.lines().count());
        let got = stdout(&translate(source, &args, input));
        assert_eq!(got, expected, "{source:?} todo {from}→{to}");
    }
}

#[test]
fn a_manifest_file_translates_as_the_folder_does() {
    let node = fresh_node(&example("todo"), None);
    let manifest = support::http()
        .get(format!("{}/schema", node.url))
        .send()
        .expect("GET /schema")
        .bytes()
        .expect("its body");
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("manifest.json");
    std::fs::write(&file, &manifest).unwrap();
    let file = file.to_str().unwrap();
    assert_same_as_folder(&["--manifest", file]);

    // With --manifest the one positional argument is the input file.
    let input = scratch.path().join("in.jsonl");
    std::fs::write(&input, CASES[0].2).unwrap();
    let out = translate(
        &["--manifest", file, input.to_str().unwrap()],
        &["--type", "todo", "--from", "1", "--to", "3"],
        "",
    );
    assert_eq!(stdout(&out).lines().count(), 2);

    // An invalid document is still refused (exit 1), as with the folder.
    let out = translate(
        &["--manifest", file],
        &["--type", "todo", "--from", "1", "--to", "3"],
        "{\"title\": 5, \"done\": true}\n",
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_running_nodes_url_translates_as_the_folder_does() {
    let node = fresh_node(&example("todo"), None);
    // The node's URL means its /schema; the full URL works too.
    assert_same_as_folder(&["--manifest", &node.url]);
    assert_same_as_folder(&["--manifest", &format!("{}/schema", node.url)]);
}

fn assert_refused(source: &[&str], expect_in_error: &str) {
    let out = translate(
        source,
        &["--type", "todo", "--from", "1", "--to", "3"],
        "{\"title\":\"milk\",\"done\":true}\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{source:?}: {err}");
    assert!(out.stdout.is_empty(), "{source:?}");
    assert!(
        err.contains(expect_in_error),
        "{source:?}: {expect_in_error:?} not in {err}"
    );
}

#[test]
fn bad_manifests_are_refused_clearly() {
    let scratch = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = scratch.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let missing = scratch.path().join("missing.json");
    let missing = missing.to_str().unwrap();
    assert_refused(&["--manifest", missing], "cannot read");
    let not_json = write("not-json.json", "types: {}\n");
    assert_refused(&["--manifest", &not_json], "not a JSON manifest");
    let not_manifest = write("other.json", "{\"name\": \"x\"}");
    assert_refused(&["--manifest", &not_manifest], "not a mutatis manifest");
    // A manifest whose todo type has lost its versions.
    let node = fresh_node(&example("todo"), None);
    let mut m: serde_json::Value = support::http()
        .get(format!("{}/schema", node.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    m["types"]["todo"]["versions"] = serde_json::json!({});
    let broken = write("broken.json", &m.to_string());
    let out = translate(
        &["--manifest", &broken],
        &["--type", "todo", "--from", "1", "--to", "3"],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.json"));

    // URLs: nothing listening, not a node's manifest, not http.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    assert_refused(&["--manifest", &format!("http://{closed}")], "cannot fetch");
    assert_refused(
        &["--manifest", &format!("{}/no-such-page", node.url)],
        "404",
    );
    assert_refused(
        &["--manifest", "ftp://example.invalid/m.json"],
        "cannot read",
    );

    // The folder and a manifest together, or neither.
    let dir = example("todo");
    assert_refused(
        &["--manifest", &node.url, dir.to_str().unwrap()],
        "not both",
    );
    assert_refused(&[], "--manifest");
}
