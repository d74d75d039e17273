//! `mutatis import`, `export` and `migrate` on an embedded store, through the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use mutatis_schema::SchemaSet;
use mutatis_store::{ImportDoc, MigrationOptions, RedbBackend, RedbOptions, Store};
use serde_json::{json, Value};

fn todo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/todo")
}

fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mutatis-store-cli-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fn mutatis(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
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
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin takes the input");
    child.wait_with_output().expect("the binary finishes")
}

fn ok_lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn v1_docs(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": format!("doc{i:05}"), "doc": {"title": format!("item {i}"), "done": i % 3 == 0}}))
        .collect()
}

fn jsonl(values: &[Value]) -> String {
    values.iter().map(|v| format!("{v}\n")).collect()
}

#[test]
fn import_export_and_migrate_round_trip() {
    let dir = scratch("round");
    let data = dir.join("store.redb");
    let (set, data) = (todo(), data.to_str().unwrap().to_owned());
    let set = set.to_str().unwrap();
    let docs = v1_docs(1_200);
    let out = mutatis(
        &[
            "import",
            set,
            "--data",
            &data,
            "--type",
            "todo",
            "--version",
            "1",
        ],
        &jsonl(&docs),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Read in today's version: translated, with the field v1 never had.
    let v3 = ok_lines(&mutatis(
        &["export", set, "--data", &data, "--type", "todo"],
        "",
    ));
    assert_eq!(v3.len(), docs.len());
    assert_eq!(
        v3[0]["doc"],
        json!({"title": "item 0", "important": false, "status": "done"})
    );
    assert!(v3[0]["rev"].as_str().is_some_and(|r| r.starts_with("1-")));

    // Migrate storage to version 2, then read version 1 back: exactly what was imported.
    let out = mutatis(
        &[
            "migrate",
            set,
            "--data",
            &data,
            "--type",
            "todo",
            "--to",
            "2",
            "--batch-size",
            "100",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("switched to version 2"));
    let v1 = ok_lines(&mutatis(
        &[
            "export",
            set,
            "--data",
            &data,
            "--type",
            "todo",
            "--version",
            "1",
        ],
        "",
    ));
    let bodies: Vec<&Value> = v1.iter().map(|e| &e["doc"]).collect();
    let expected: Vec<&Value> = docs.iter().map(|e| &e["doc"]).collect();
    assert_eq!(bodies, expected);

    // The dump re-imports as is, revs kept.
    let again = dir.join("again.redb");
    let out = mutatis(
        &[
            "import",
            set,
            "--data",
            again.to_str().unwrap(),
            "--type",
            "todo",
            "--version",
            "1",
        ],
        &jsonl(&v1),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copy = ok_lines(&mutatis(
        &[
            "export",
            set,
            "--data",
            again.to_str().unwrap(),
            "--type",
            "todo",
            "--version",
            "1",
        ],
        "",
    ));
    assert_eq!(copy, v1);
}

#[test]
fn migrate_resumes_a_migration_left_in_flight() {
    let dir = scratch("resume");
    let path = dir.join("store.redb");
    {
        // An interrupted run: the migration started and did one batch, then the process went.
        let set = Arc::new(SchemaSet::load(todo()).unwrap());
        let store = Store::new(
            RedbBackend::open(&path, RedbOptions::default()).unwrap(),
            set,
        );
        let docs: Vec<ImportDoc> = (0..1_000)
            .map(|i| ImportDoc {
                id: format!("d{i:04}"),
                rev: None,
                body: json!({"title": format!("t{i}"), "done": false}),
            })
            .collect();
        store.import("todo", 1, &docs).unwrap();
        let options = MigrationOptions {
            batch_size: 100,
            ..MigrationOptions::default()
        };
        store.start_migration("todo", 2, options).unwrap();
        store.step_migration("todo").unwrap();
        assert!(store.migration("todo").unwrap().is_some());
    }
    let set = todo();
    let data = path.to_str().unwrap();
    // Another target while one is in flight: refused, naming the one to finish.
    let out = mutatis(
        &[
            "migrate",
            set.to_str().unwrap(),
            "--data",
            data,
            "--type",
            "todo",
            "--to",
            "1",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--to 2"));
    let out = mutatis(
        &[
            "migrate",
            set.to_str().unwrap(),
            "--data",
            data,
            "--type",
            "todo",
            "--to",
            "2",
        ],
        "",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("resuming"), "{err}");
    let store = Store::new(
        RedbBackend::open(&path, RedbOptions::default()).unwrap(),
        Arc::new(SchemaSet::load(todo()).unwrap()),
    );
    assert!(store.migration("todo").unwrap().is_none());
    assert_eq!(store.state("todo").unwrap().storage_version, 2);
    assert_eq!(
        store.list("todo", 1, None, 5_000).unwrap().docs.len(),
        1_000
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = scratch("bad");
    let set = todo();
    let set = set.to_str().unwrap();
    let data = dir.join("s.redb");
    let data = data.to_str().unwrap();
    // A body that fails its schema: exit 1, the line named, nothing of the batch written.
    let input = jsonl(&[
        json!({"id": "a", "doc": {"title": "ok", "done": true}}),
        json!({"id": "b", "doc": {"title": 3, "done": true}}),
    ]);
    let out = mutatis(
        &[
            "import",
            set,
            "--data",
            data,
            "--type",
            "todo",
            "--version",
            "1",
        ],
        &input,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"b\""), "{err}");
    assert!(ok_lines(&mutatis(
        &["export", set, "--data", data, "--type", "todo"],
        ""
    ))
    .is_empty());
    // An envelope with a typo.
    let out = mutatis(
        &[
            "import",
            set,
            "--data",
            data,
            "--type",
            "todo",
            "--version",
            "1",
        ],
        "{\"id\": \"a\", \"dco\": {}}\n",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dco"));
    // A migration to a version that does not exist.
    let out = mutatis(
        &[
            "migrate", set, "--data", data, "--type", "todo", "--to", "9",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("todo@9"));
    // A file that is not a store: refused and left as it was.
    let junk = dir.join("junk.redb");
    std::fs::write(&junk, b"not a database").unwrap();
    let out = mutatis(
        &[
            "export",
            set,
            "--data",
            junk.to_str().unwrap(),
            "--type",
            "todo",
        ],
        "",
    );
    // Exit 4: the store is unusable, not the command.
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a usable mutatis store"));
    assert_eq!(std::fs::read(&junk).unwrap(), b"not a database");
    // No store named.
    let out = mutatis(&["export", set, "--type", "todo"], "");
    assert_eq!(out.status.code(), Some(2));
}

/// `mutatis migrate` killed with SIGKILL at several points and run again: each run resumes
/// from the checkpoint the killed one left (it says so, and the progress it starts from is
/// not zero), and the end state has every document once, in the new version, equal to the
/// translation of what was imported.
#[test]
fn migrate_killed_mid_run_resumes_from_its_checkpoint() {
    let dir = scratch("kill");
    let path = dir.join("store.redb");
    let set = todo();
    let (set_arg, data) = (set.to_str().unwrap(), path.to_str().unwrap());
    let docs = v1_docs(40_000);
    let out = mutatis(
        &[
            "import",
            set_arg,
            "--data",
            data,
            "--type",
            "todo",
            "--version",
            "1",
        ],
        &jsonl(&docs),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let migrate_args = [
        "migrate",
        set_arg,
        "--data",
        data,
        "--type",
        "todo",
        "--to",
        "2",
        "--batch-size",
        "200",
    ];
    let open = || {
        Store::new(
            RedbBackend::open(&path, RedbOptions::default()).unwrap(),
            Arc::new(SchemaSet::load(todo()).unwrap()),
        )
    };

    let mut kills = 0;
    let mut last_done = 0;
    let mut delay_ms = 150;
    while kills < 3 && delay_ms < 20_000 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mutatis"))
            .args(migrate_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        // SIGKILL: no destructor, no flush, no chance to tidy up.
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        let store = open();
        match store.migration("todo").unwrap() {
            Some(progress) => {
                assert!(
                    progress.done >= last_done,
                    "the checkpoint went back: {} < {last_done}",
                    progress.done
                );
                if kills > 0 {
                    let err = String::from_utf8_lossy(&out.stderr);
                    assert!(
                        err.contains("resuming"),
                        "run {kills} did not resume: {err}"
                    );
                }
                last_done = progress.done;
                kills += 1;
                delay_ms += 100;
            }
            // Killed before the migration started, or after it switched: try later or
            // stop killing.
            None if store.state("todo").unwrap().storage_version == 2 => break,
            None => delay_ms *= 2,
        }
    }
    assert!(kills >= 1, "no kill landed inside the migration");

    let out = mutatis(&migrate_args, "");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let store = open();
    assert!(store.migration("todo").unwrap().is_none());
    assert_eq!(store.state("todo").unwrap().storage_version, 2);
    // Imported documents are stored in the set's storage version (3); the migration takes
    // them to 2.
    let all = store.list("todo", 2, None, 100_000).unwrap().docs;
    assert_eq!(all.len(), docs.len(), "every document once");
    let set = SchemaSet::load(todo()).unwrap();
    let (up, down) = (
        set.plan("todo", 1, 3).unwrap(),
        set.plan("todo", 3, 2).unwrap(),
    );
    let params = mutatis_lens::Params::new();
    for (doc, src) in all.iter().zip(&docs) {
        assert_eq!(doc.id, src["id"].as_str().unwrap());
        let stored = up.translate(&src["doc"], &params).unwrap();
        let expected = down.translate(&stored, &params).unwrap();
        assert_eq!(doc.body, expected, "{}", doc.id);
    }
}
