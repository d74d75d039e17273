//! Drives the real `mutatis` binary: arguments in, JSON lines and exit codes out.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example(name: &str) -> PathBuf {
    repo().join("examples").join(name)
}

/// Run `mutatis ARGS` with `stdin` as its standard input.
fn mutatis(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mutatis"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("stdin accepts the input");
    child.wait_with_output().expect("the binary finishes")
}

fn stdout_lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "mutatis failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mutatis-cli-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fn jsonl(values: &[Value]) -> String {
    values.iter().map(|v| format!("{v}\n")).collect()
}

#[test]
fn translate_todo_up_and_back() {
    let dir = example("todo");
    let dir = dir.to_str().unwrap();
    let v1 = vec![
        json!({"title": "milk", "done": true}),
        json!({"title": "eggs", "done": false}),
    ];
    let up = mutatis(
        &[
            "translate",
            dir,
            "--type",
            "todo",
            "--from",
            "1",
            "--to",
            "3",
        ],
        &jsonl(&v1),
    );
    let v3 = stdout_lines(&up);
    assert_eq!(
        v3,
        vec![
            json!({"title": "milk", "important": false, "status": "done"}),
            json!({"title": "eggs", "important": false, "status": "open"}),
        ]
    );
    let down = mutatis(
        &[
            "translate",
            dir,
            "--type",
            "todo",
            "--from",
            "3",
            "--to",
            "1",
        ],
        &jsonl(&v3),
    );
    assert_eq!(stdout_lines(&down), v1);
    // The raw path gives the same documents.
    let raw = mutatis(
        &[
            "translate",
            dir,
            "--type",
            "todo",
            "--from",
            "1",
            "--to",
            "3",
            "--no-validate",
        ],
        &jsonl(&v1),
    );
    assert_eq!(stdout_lines(&raw), v3);
}

#[test]
fn students_year_of_birth_comes_from_the_reference_date() {
    let dir = example("students");
    let dir = dir.to_str().unwrap();
    let v3 = json!({"fistAndLastName": "Ada Lovelace", "age": 36});
    let args = [
        "translate",
        dir,
        "--type",
        "Student",
        "--from",
        "3",
        "--to",
        "5",
        "--reference-date",
        "2026-11-22",
    ];
    let v5 = stdout_lines(&mutatis(&args, &jsonl(std::slice::from_ref(&v3))));
    assert_eq!(
        v5,
        vec![json!({"firstName": "Ada", "lastName": "Lovelace", "yearOfBirth": 1990})]
    );
    let args = [
        "translate",
        dir,
        "--type",
        "Student",
        "--from",
        "5",
        "--to",
        "3",
        "--reference-date",
        "2026-11-22",
    ];
    assert_eq!(stdout_lines(&mutatis(&args, &jsonl(&v5))), vec![v3]);
}

#[test]
fn an_invalid_document_is_exit_1_with_line_and_pointer() {
    let dir = example("todo");
    let input = jsonl(&[
        json!({"title": "ok", "done": true}),
        json!({"title": 3, "done": true}),
    ]);
    let out = mutatis(
        &[
            "translate",
            dir.to_str().unwrap(),
            "--type",
            "todo",
            "--from",
            "1",
            "--to",
            "3",
        ],
        &input,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("<stdin>:2:"), "{err}");
    assert!(err.contains("/title"), "{err}");
    assert!(err.contains("todo@1"), "{err}");
}

#[test]
fn malformed_json_input_is_exit_2() {
    let dir = example("todo");
    let out = mutatis(
        &[
            "translate",
            dir.to_str().unwrap(),
            "--type",
            "todo",
            "--from",
            "1",
            "--to",
            "3",
        ],
        "{\"title\": \n",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("invalid JSON"), "{}", stderr(&out));
}

#[test]
fn unknown_type_or_version_is_a_clear_error() {
    let dir = example("todo");
    let dir = dir.to_str().unwrap();
    let out = mutatis(
        &[
            "translate",
            dir,
            "--type",
            "nope",
            "--from",
            "1",
            "--to",
            "3",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
    let out = mutatis(
        &[
            "translate",
            dir,
            "--type",
            "todo",
            "--from",
            "1",
            "--to",
            "9",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains('9'), "{}", stderr(&out));
}

#[test]
fn check_reports_file_and_line_of_a_broken_set() {
    let dir = scratch("broken");
    std::fs::create_dir_all(dir.join("types")).unwrap();
    std::fs::write(
        dir.join("mutatis.yaml"),
        "name: broken\nreleases:\n  - {name: \"1\", types: {item: 1}, status: current}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("types/item.yaml"),
        "type: item\nversions:\n  1:\n    schema: {type: object, properties: {a: {type: string}}}\n  2:\n    lens:\n      - rename: {source: a, destination: b}\n      - frobnicate: {name: x}\n",
    )
    .unwrap();
    let out = mutatis(&["check", dir.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("item.yaml:8"), "{err}");
    assert!(err.contains("frobnicate"), "{err}");

    // A lens that does not fit the previous schema names the type and version.
    std::fs::write(
        dir.join("types/item.yaml"),
        "type: item\nversions:\n  1:\n    schema: {type: object, properties: {a: {type: string}}}\n  2:\n    lens:\n      - rename: {source: missing, destination: b}\n",
    )
    .unwrap();
    let out = mutatis(&["check", dir.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("item@2"), "{err}");
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn check_json_summarises_the_set() {
    let out = mutatis(&["check", example("todo").to_str().unwrap(), "--json"], "");
    let summary: Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_eq!(summary["valid"], true);
    assert_eq!(summary["types"][0]["versions"], json!([1, 2, 3]));
    assert_eq!(summary["releases"][0]["status"], "unsupported");
}

#[test]
fn every_example_checks() {
    for name in ["todo", "students", "dataone", "syft"] {
        let out = mutatis(&["check", example(name).to_str().unwrap()], "");
        assert!(out.status.success(), "{name}: {}", stderr(&out));
    }
}

#[test]
fn init_creates_a_set_that_loads_and_refuses_a_non_empty_folder() {
    let dir = scratch("init").join("fresh");
    let out = mutatis(&["init", dir.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let check = mutatis(&["check", dir.to_str().unwrap()], "");
    assert!(check.status.success(), "{}", stderr(&check));
    // The example type translates.
    let up = mutatis(
        &[
            "translate",
            dir.to_str().unwrap(),
            "--type",
            "note",
            "--from",
            "1",
            "--to",
            "2",
        ],
        &jsonl(&[json!({"text": "hi", "pinned": false})]),
    );
    assert_eq!(
        stdout_lines(&up),
        vec![json!({"body": "hi", "pinned": false, "tags": []})]
    );
    let again = mutatis(&["init", dir.to_str().unwrap()], "");
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
}

#[test]
fn lens_apply_reads_cambria_files_both_ways() {
    let dir = scratch("lens");
    let lens = dir.join("project.lens.yml");
    std::fs::write(
        &lens,
        "schemaName: Project\nlens:\n  - rename: {source: title, destination: name}\n  - add: {name: description, type: string}\n",
    )
    .unwrap();
    let lens = lens.to_str().unwrap();
    let up = mutatis(
        &["lens", "apply", lens],
        &jsonl(&[json!({"title": "x", "other": [1, 2]})]),
    );
    assert_eq!(
        stdout_lines(&up),
        vec![json!({"other": [1, 2], "name": "x", "description": ""})]
    );
    let down = mutatis(
        &["lens", "apply", lens, "--reverse"],
        &jsonl(&[json!({"name": "x", "description": "d"})]),
    );
    assert_eq!(stdout_lines(&down), vec![json!({"title": "x"})]);

    let schema = json!({"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]});
    let s = mutatis(
        &["lens", "apply", lens, "--schema"],
        &jsonl(std::slice::from_ref(&schema)),
    );
    let out = stdout_lines(&s);
    assert!(out[0]["properties"].get("name").is_some(), "{}", out[0]);
    assert!(out[0]["properties"].get("title").is_none(), "{}", out[0]);

    let p = mutatis(
        &["lens", "apply", lens, "--patch"],
        &jsonl(&[json!([{"op": "replace", "path": "/title", "value": "y"}])]),
    );
    assert_eq!(
        stdout_lines(&p),
        vec![json!([{"op": "replace", "path": "/name", "value": "y"}])]
    );

    // The lens is checked against an input schema before any data is read.
    let schema_file = dir.join("s.json");
    std::fs::write(
        &schema_file,
        r#"{"type": "object", "properties": {"other": {"type": "string"}}}"#,
    )
    .unwrap();
    let out = mutatis(
        &[
            "lens",
            "apply",
            lens,
            "--input-schema",
            schema_file.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("title"), "{}", stderr(&out));
}

/// Cambria's case 076: without `--input-schema`, the lens must fit the schema the document's
/// own shape implies, so a rename of a field the document does not have (a typo in the lens)
/// is refused, naming the lens's line and the fields there are, instead of passing the
/// document through unchanged.
#[test]
fn lens_apply_refuses_a_lens_that_does_not_fit_the_document() {
    let dir = scratch("typo");
    let lens = dir.join("typo.yml");
    std::fs::write(
        &lens,
        "lens:\n  - add: {name: kind, type: string, default: person}\n  - rename: {source: nonexistent, destination: ghost}\n",
    )
    .unwrap();
    let lens = lens.to_str().unwrap();
    let doc = json!({"name": "hello", "details": {"age": 23, "height": 64}});
    let out = mutatis(&["lens", "apply", lens], &jsonl(std::slice::from_ref(&doc)));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.contains("<stdin>:1"), "{err}");
    assert!(err.contains("typo.yml"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("nonexistent"), "{err}");
    assert!(err.contains("details"), "{err}");

    // A lens that fits goes on translating, documents of several shapes included; the first
    // document that does not fit stops it at its line.
    std::fs::write(
        dir.join("ok.yml"),
        "lens:\n  - rename: {source: name, destination: title}\n",
    )
    .unwrap();
    let ok = dir.join("ok.yml");
    let ok = ok.to_str().unwrap();
    let docs = [
        json!({"name": "a"}),
        json!({"name": "b", "n": 1}),
        json!({"name": "c"}),
    ];
    let out = mutatis(&["lens", "apply", ok], &jsonl(&docs));
    assert_eq!(
        stdout_lines(&out),
        vec![
            json!({"title": "a"}),
            json!({"title": "b", "n": 1}),
            json!({"title": "c"})
        ]
    );
    let out = mutatis(
        &["lens", "apply", ok],
        &jsonl(&[json!({"name": "a"}), json!({"nmae": "b"})]),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("<stdin>:2"), "{}", stderr(&out));
}

/// A document's numbers are read exactly or refused naming the line and the pointer, never
/// rounded on the way through.
#[test]
fn numbers_pass_through_exactly_or_are_refused() {
    let dir = scratch("numbers");
    let lens = dir.join("l.yml");
    std::fs::write(&lens, "lens:\n  - rename: {source: a, destination: b}\n").unwrap();
    let lens = lens.to_str().unwrap();
    let out = mutatis(
        &["lens", "apply", lens],
        "{\"a\":1,\"n\":18446744073709551615,\"m\":-9223372036854775808,\"f\":0.1}\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"n\":18446744073709551615,\"m\":-9223372036854775808,\"f\":0.1,\"b\":1}\n"
    );
    for number in [
        "123456789012345678901234567890",
        "18446744073709551616",
        "-9223372036854775809",
        "2000.0000000000000000001",
    ] {
        let out = mutatis(
            &["lens", "apply", lens],
            &format!("{{\"a\":1}}\n{{\"a\":1,\"x\":{{\"y\":{number}}}}}\n"),
        );
        assert_eq!(out.status.code(), Some(2), "{number}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("<stdin>:2"), "{err}");
        assert!(err.contains("/x/y"), "{err}");
        assert!(err.contains(number), "{err}");
    }
    // `translate` and `import` read documents the same way.
    let students = example("students");
    let out = mutatis(
        &[
            "translate",
            students.to_str().unwrap(),
            "--type",
            "Student",
            "--from",
            "5",
            "--to",
            "3",
            "--reference-date",
            "2026-06-01",
        ],
        "{\"firstName\":\"Ada\",\"lastName\":\"L\",\"yearOfBirth\":123456789012345678901234567890}\n",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("/yearOfBirth"), "{}", stderr(&out));
    // An integer written `1990.0` is the integer 1990: the release-3 age is computed from it.
    let out = mutatis(
        &[
            "translate",
            students.to_str().unwrap(),
            "--type",
            "Student",
            "--from",
            "5",
            "--to",
            "3",
            "--reference-date",
            "2026-06-01",
        ],
        "{\"firstName\":\"Ada\",\"lastName\":\"L\",\"yearOfBirth\":1990.0}\n",
    );
    assert_eq!(
        stdout_lines(&out),
        vec![json!({"fistAndLastName": "Ada L", "age": 36})]
    );
}

#[test]
fn lens_apply_names_the_line_of_an_unknown_op() {
    let dir = scratch("badlens");
    let lens = dir.join("bad.yml");
    std::fs::write(
        &lens,
        "lens:\n  - rename: {source: a, destination: b}\n  - renam: {source: b}\n",
    )
    .unwrap();
    let out = mutatis(&["lens", "apply", lens.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("bad.yml"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("renam"), "{err}");
}

#[test]
fn a_value_with_no_mapping_fails_with_its_pointer() {
    let dir = scratch("nomap");
    let lens = dir.join("l.yml");
    std::fs::write(
        &lens,
        "lens:\n  - convert: {name: s, forward: {a: 1}, backward: {'1': a}}\n",
    )
    .unwrap();
    let out = mutatis(
        &["lens", "apply", lens.to_str().unwrap()],
        &jsonl(&[json!({"s": "zzz"})]),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("/s"), "{err}");
    assert!(err.contains("no mapping"), "{err}");
}

#[test]
fn a_failing_expression_is_reported() {
    let dir = scratch("expr");
    let lens = dir.join("l.yml");
    std::fs::write(
        &lens,
        "lens:\n  - convert: {name: n, forward: 'value +', backward: 'value'}\n",
    )
    .unwrap();
    let out = mutatis(&["lens", "apply", lens.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not parse"), "{}", stderr(&out));
    std::fs::write(
        &lens,
        "lens:\n  - convert: {name: n, forward: 'value / 0', backward: 'value * 0'}\n",
    )
    .unwrap();
    let out = mutatis(
        &["lens", "apply", lens.to_str().unwrap()],
        &jsonl(&[json!({"n": 1})]),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/n"), "{}", stderr(&out));
}

/// The README's first command is the main job; run exactly its arguments (plus a free port
/// and a scratch data file, so the test touches neither 7878 nor the checkout) so the README
/// stays true: the server starts on the example, prints its URL and a one-time admin token,
/// and answers a release-5 and a release-3 client on one document.
#[test]
fn the_readme_main_job_runs() {
    use std::io::BufRead;

    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let line = readme
        .lines()
        .find(|l| l.starts_with("cargo run") && l.contains("-p mutatis --"))
        .expect("the README names the main-job command");
    let mut args: Vec<String> = line
        .split_once(" -- ")
        .expect("the command passes arguments to mutatis")
        .1
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(args[0], "serve", "the main job is `mutatis serve`");
    let data = tempfile::tempdir().unwrap();
    let store = data.path().join("main-job.redb");
    args.extend([
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--data".to_owned(),
        store.to_str().unwrap().to_owned(),
    ]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_mutatis"))
        .args(&args)
        .current_dir(repo())
        .env_remove("MUTATIS_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary runs");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let _guard = Kill(child);
    let (mut url, mut token) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(at) = line.split_once(" at ") {
            url = Some(at.1.trim().to_owned());
        }
        if let Some(t) = line.split_once("stored hashed): ") {
            token = Some(t.1.trim().to_owned());
            break;
        }
    }
    let (url, token) = (url.expect("a URL"), token.expect("a one-time admin token"));
    mutatis_client::tls::install_crypto_provider();
    let http = reqwest::blocking::Client::new();
    let meta: Value = http
        .get(format!("{url}/meta"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(meta["currentRelease"], json!("5"));

    let put = http
        .put(format!("{url}/docs/Student/mary"))
        .bearer_auth(&token)
        .header("Mutatis-Release", "5")
        .json(&json!({"firstName": "Mary Ann", "lastName": "Smith", "yearOfBirth": 2008}))
        .send()
        .unwrap();
    assert_eq!(put.status().as_u16(), 201);
    let old = http
        .get(format!("{url}/docs/Student/mary"))
        .bearer_auth(&token)
        .header("Mutatis-Release", "3")
        .send()
        .unwrap();
    assert_eq!(old.status().as_u16(), 200);
    assert!(old.headers().contains_key("deprecation"));
    let body: Value = old.json().unwrap();
    assert_eq!(body["fistAndLastName"], json!("Mary Ann Smith"));
}
