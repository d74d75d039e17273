//! The deploy lifecycle from the command line, through the real binary: `mutatis migrate`
//! that can be run again (and rolls back, drops the backup, aborts), `mutatis status`, commands
//! that only read creating nothing, a store kept under one schema set, the store commands
//! through a running node (`--server`), and the README's import/export example as written.
//! Both backends where it applies: the PostgreSQL cases need `DATABASE_URL` (without it they
//! say loudly that they did not run; under `CI` they fail).

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mutatis_schema::SchemaSet;
use mutatis_store::{ImportDoc, MigrationOptions, RedbBackend, RedbOptions, Store};
use serde_json::{json, Value};
use support::{example, Node, ADMIN_TOKEN};

fn todo() -> PathBuf {
    example("todo")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `mutatis ARGS` with `stdin`, `env` set (and `MUTATIS_TOKEN` unset unless given).
fn run_env(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mutatis"));
    cmd.args(args)
        .env_remove("MUTATIS_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the binary starts");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.as_bytes().to_vec();
    // Written from a thread: the command may answer (an error) before reading it all.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("the binary finishes");
    let _ = writer.join();
    out
}

fn run(args: &[&str], stdin: &str) -> Output {
    run_env(args, stdin, &[])
}

fn err(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: &Output) -> &Output {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        err(out)
    );
    out
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&ok(out).stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn v1_docs(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": format!("t{i:05}"), "doc": {"title": format!("item {i}"), "done": i % 3 == 0}}))
        .collect()
}

fn jsonl(values: &[Value]) -> String {
    values.iter().map(|v| format!("{v}\n")).collect()
}

fn bodies(envelopes: &[Value]) -> Vec<Value> {
    envelopes.iter().map(|e| e["doc"].clone()).collect()
}

/// The arguments that name a store: `--data PATH`, or `--postgres URL --pg-schema S`.
#[derive(Clone)]
struct StoreRef(Vec<String>);

impl StoreRef {
    fn args(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }
}

/// `mutatis SUBCOMMAND SET <store args> REST…`.
fn cmd(sub: &str, set: &Path, store: &StoreRef, rest: &[&str], stdin: &str) -> Output {
    let mut args = vec![sub, set.to_str().unwrap()];
    args.extend(store.args());
    args.extend(rest);
    run(&args, stdin)
}

fn status_json(set: &Path, store: &StoreRef) -> Value {
    let out = cmd("status", set, store, &["--json"], "");
    serde_json::from_slice(&ok(&out).stdout).expect("status --json is JSON")
}

// ------------------------------------------------------------------------------ PostgreSQL

/// A fresh PostgreSQL schema for one test, dropped afterwards; `None` (said loudly) without
/// `DATABASE_URL`, which CI must set.
struct PgSchema {
    url: String,
    schema: String,
}

impl PgSchema {
    fn new(test: &str) -> Option<PgSchema> {
        let Ok(url) = std::env::var("DATABASE_URL") else {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
            assert!(
                !ci,
                "CI must run the PostgreSQL tests, but DATABASE_URL is not set ({test})"
            );
            eprintln!("WARNING: DATABASE_URL is not set: PostgreSQL test `{test}` NOT RUN");
            return None;
        };
        let schema = format!(
            "lifecycle_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        Some(PgSchema { url, schema })
    }

    fn store(&self) -> StoreRef {
        StoreRef(vec![
            "--postgres".into(),
            self.url.clone(),
            "--pg-schema".into(),
            self.schema.clone(),
        ])
    }

    fn exists(&self) -> bool {
        let mut c = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        c.query_one(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
            &[&self.schema],
        )
        .unwrap()
        .get::<_, i64>(0)
            > 0
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

// ------------------------------------------------------------------- migrate, every mode

/// Run again, `--to V` at V does nothing and exits 0; a migration keeps a backup that blocks
/// the next one until it is rolled back onto or dropped, and both modes finish what they
/// start; a rollback carries back a write made after the switch.
fn migrate_finishes_what_it_starts(store: &StoreRef) {
    let set = todo();
    let docs = v1_docs(300);
    ok(&cmd(
        "import",
        &set,
        store,
        &["--type", "todo", "--version", "1"],
        &jsonl(&docs),
    ));
    let migrate = |rest: &[&str]| {
        let mut args = vec!["--type", "todo"];
        args.extend(rest);
        cmd("migrate", &set, store, &args, "")
    };
    // todo is stored in version 3 (the set's storage); down to 2.
    let out = migrate(&["--to", "2", "--batch-size", "50"]);
    assert!(
        err(ok(&out)).contains("switched to version 2"),
        "{}",
        err(&out)
    );
    // The note: serve would move it back to the declared version.
    assert!(
        err(&out).contains("declares todo in version 3"),
        "{}",
        err(&out)
    );
    // Idempotent: a deploy script that retries after a crash succeeds.
    let out = migrate(&["--to", "2"]);
    assert!(
        err(ok(&out)).contains("already stored in version 2"),
        "{}",
        err(&out)
    );
    // Another version while the backup is kept: refused, naming both ways out.
    let out = migrate(&["--to", "1"]);
    assert_eq!(code(&out), Some(2), "{}", err(&out));
    assert!(err(&out).contains("--rollback") && err(&out).contains("--drop-backup"));

    // A write after the switch, in version 1: the rollback carries it back.
    let changed =
        json!({"id": "t00001", "doc": {"title": "changed after the switch", "done": true}});
    ok(&cmd(
        "import",
        &set,
        store,
        &["--type", "todo", "--version", "1"],
        &jsonl(std::slice::from_ref(&changed)),
    ));
    let out = migrate(&["--rollback"]);
    assert!(err(ok(&out)).contains("rolled back"), "{}", err(&out));
    let st = status_json(&set, store);
    let t = &st["types"][0];
    assert_eq!(t["storageVersion"], 3, "{st}");
    assert_eq!(t["backup"]["version"], 2, "{st}");
    assert_eq!(t["migration"], Value::Null, "{st}");
    let v1 = lines(&cmd(
        "export",
        &set,
        store,
        &["--type", "todo", "--version", "1"],
        "",
    ));
    let mut expected = bodies(&docs);
    expected[1] = changed["doc"].clone();
    assert_eq!(bodies(&v1), expected);

    // Drop the backup; again: nothing to drop, still exit 0. Then no rollback is possible.
    let out = migrate(&["--drop-backup"]);
    assert!(err(ok(&out)).contains("dropped the backup in version 2"));
    let out = migrate(&["--drop-backup"]);
    assert!(err(ok(&out)).contains("nothing to drop"), "{}", err(&out));
    let out = migrate(&["--rollback"]);
    assert_eq!(code(&out), Some(2), "{}", err(&out));
    assert!(err(&out).contains("no backup is kept"), "{}", err(&out));
    assert_eq!(status_json(&set, store)["types"][0]["backup"], Value::Null);

    // And the next migration can start.
    ok(&migrate(&["--to", "2"]));
    // `--to` the backup's version is a rollback onto it, and safe to run again.
    let out = migrate(&["--to", "3"]);
    assert!(
        err(ok(&out)).contains("rolling back onto it"),
        "{}",
        err(&out)
    );
    let out = migrate(&["--to", "3"]);
    assert!(err(ok(&out)).contains("already stored in version 3"));
    let v1 = lines(&cmd(
        "export",
        &set,
        store,
        &["--type", "todo", "--version", "1"],
        "",
    ));
    assert_eq!(bodies(&v1), expected);

    // Exactly one mode.
    let out = migrate(&["--to", "2", "--rollback"]);
    assert_eq!(code(&out), Some(2));
    let out = migrate(&[]);
    assert_eq!(code(&out), Some(2));
}

#[test]
fn migrate_finishes_what_it_starts_on_redb() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("todo.redb");
    migrate_finishes_what_it_starts(&StoreRef(vec![
        "--data".into(),
        data.to_str().unwrap().into(),
    ]));
}

#[test]
fn migrate_finishes_what_it_starts_on_postgres() {
    let Some(pg) = PgSchema::new("migrate_finishes_what_it_starts_on_postgres") else {
        return;
    };
    migrate_finishes_what_it_starts(&pg.store());
}

/// A store with a migration (or rollback) left in flight, as a killed run leaves it.
fn interrupted(path: &Path, rollback: bool) -> Store<RedbBackend> {
    let set = Arc::new(SchemaSet::load(todo()).unwrap());
    let store = Store::new(
        RedbBackend::open(path, RedbOptions::default()).unwrap(),
        set,
    );
    let docs: Vec<ImportDoc> = (0..500)
        .map(|i| ImportDoc {
            id: format!("d{i:04}"),
            rev: None,
            body: json!({"title": format!("t{i}"), "done": false}),
        })
        .collect();
    store.import("todo", 1, &docs).unwrap();
    let options = MigrationOptions {
        batch_size: 50,
        ..MigrationOptions::default()
    };
    store.start_migration("todo", 2, options).unwrap();
    if rollback {
        store.run_migration("todo", |_| {}).unwrap();
        store.import("todo", 1, &docs[..200]).unwrap();
        store.start_rollback("todo", options).unwrap();
    }
    store.step_migration("todo").unwrap();
    assert!(store.migration("todo").unwrap().is_some());
    store
}

#[test]
fn abort_stops_a_migration_in_flight_and_leaves_the_data_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    drop(interrupted(&path, false));
    let (set, data) = (todo(), path.to_str().unwrap().to_owned());
    let store = StoreRef(vec!["--data".into(), data]);
    let before = lines(&cmd("export", &set, &store, &["--type", "todo"], ""));
    // Another target while one is in flight: refused, naming both ways out.
    let out = cmd(
        "migrate",
        &set,
        &store,
        &["--type", "todo", "--to", "1"],
        "",
    );
    assert_eq!(code(&out), Some(2));
    assert!(err(&out).contains("--to 2") && err(&out).contains("--abort"));
    let st = status_json(&set, &store);
    assert_eq!(st["types"][0]["migration"]["to"], 2, "{st}");
    assert_eq!(st["types"][0]["migration"]["kind"], "forward", "{st}");

    let out = cmd("migrate", &set, &store, &["--type", "todo", "--abort"], "");
    assert!(err(ok(&out)).contains("aborted the migration from version 3 to 2"));
    let st = status_json(&set, &store);
    let t = &st["types"][0];
    assert_eq!(
        (t["migration"].clone(), t["storageVersion"].clone()),
        (Value::Null, json!(3))
    );
    // The aborted target's space is emptied: only the live documents take room.
    assert_eq!(t["space"]["migration"], Value::Null, "{st}");
    assert_eq!(t["space"]["primary"]["records"], 500, "{st}");
    assert_eq!(
        lines(&cmd("export", &set, &store, &["--type", "todo"], "")),
        before
    );
    let out = cmd("migrate", &set, &store, &["--type", "todo", "--abort"], "");
    assert!(err(ok(&out)).contains("nothing to abort"));
}

#[test]
fn a_rollback_left_in_flight_is_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    drop(interrupted(&path, true));
    let (set, data) = (todo(), path.to_str().unwrap().to_owned());
    let store = StoreRef(vec!["--data".into(), data]);
    // A drop would take the backup the rollback is filling: refused.
    let out = cmd(
        "migrate",
        &set,
        &store,
        &["--type", "todo", "--drop-backup"],
        "",
    );
    assert_eq!(code(&out), Some(2), "{}", err(&out));
    assert!(
        err(&out).contains("rollback from version 2 to 3"),
        "{}",
        err(&out)
    );
    let out = cmd(
        "migrate",
        &set,
        &store,
        &["--type", "todo", "--rollback"],
        "",
    );
    assert!(
        err(ok(&out)).contains("resuming the rollback of todo from version 2 to 3"),
        "{}",
        err(&out)
    );
    let st = status_json(&set, &store);
    assert_eq!(st["types"][0]["storageVersion"], 3, "{st}");
    assert_eq!(st["types"][0]["backup"]["version"], 2, "{st}");
    assert_eq!(
        lines(&cmd("export", &set, &store, &["--type", "todo"], "")).len(),
        500
    );
}

// ----------------------------------------------------------------------------------- status

/// `mutatis status`: per type, what is stored, what mutatis.yaml declares and what
/// reconciling would do (or why it cannot), the backup, quarantine and space; text and JSON.
fn status_shows_the_storage(store: &StoreRef) {
    let set = todo();
    ok(&cmd(
        "import",
        &set,
        store,
        &["--type", "todo", "--version", "1"],
        &jsonl(&v1_docs(40)),
    ));
    let st = status_json(&set, store);
    assert_eq!(st["schemaSet"], "todo-app");
    let t = &st["types"][0];
    assert_eq!(t["type"], "todo");
    assert_eq!(
        (t["storageVersion"].clone(), t["strategy"].clone()),
        (json!(3), json!("eager"))
    );
    assert_eq!(
        t["declared"],
        json!({"version": 3, "strategy": "eager", "actions": [], "problem": null})
    );
    assert_eq!(t["migration"], Value::Null);
    assert_eq!(t["running"], false);
    assert_eq!(t["backup"], Value::Null);
    assert_eq!(t["copies"], json!([]));
    assert_eq!(t["filling"], false);
    assert_eq!(t["quarantined"], 0);
    assert_eq!(t["space"]["primary"]["records"], 40);
    assert!(t["space"]["totalBytes"].as_u64().unwrap() > 0);

    ok(&cmd(
        "migrate",
        &set,
        store,
        &["--type", "todo", "--to", "2"],
        "",
    ));
    let st = status_json(&set, store);
    let t = &st["types"][0];
    assert_eq!(t["backup"]["version"], 3);
    assert_eq!(t["declared"]["actions"][0]["action"], "rollback", "{st}");
    assert_eq!(t["declared"]["actions"][0]["to"], 3, "{st}");
    let out = cmd("status", &set, store, &[], "");
    let text = String::from_utf8_lossy(&ok(&out).stdout).into_owned();
    assert!(text.contains("schema set todo-app"), "{text}");
    assert!(text.contains("stored        version 2, eager"), "{text}");
    assert!(
        text.contains("rolling back from version 2 onto the kept backup in version 3"),
        "{text}"
    );
    assert!(text.contains("backup        version 3"), "{text}");

    // A declared storage the store cannot reach is a problem shown, not a failure: at 1
    // with the backup in 2, mutatis.yaml's 3 needs the backup dropped first.
    ok(&cmd(
        "migrate",
        &set,
        store,
        &["--type", "todo", "--drop-backup"],
        "",
    ));
    ok(&cmd(
        "migrate",
        &set,
        store,
        &["--type", "todo", "--to", "1"],
        "",
    ));
    let st = status_json(&set, store);
    let problem = st["types"][0]["declared"]["problem"]
        .as_str()
        .unwrap_or_default();
    assert!(problem.contains("--drop-backup"), "{st}");
    let out = cmd("status", &set, store, &["--type", "todo"], "");
    let text = String::from_utf8_lossy(&ok(&out).stdout).into_owned();
    assert!(text.contains("cannot be reached"), "{text}");
    // An unknown type is a usage error.
    let out = cmd("status", &set, store, &["--type", "nope"], "");
    assert_eq!(code(&out), Some(2));
}

#[test]
fn status_shows_the_storage_on_redb() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("todo.redb");
    status_shows_the_storage(&StoreRef(vec![
        "--data".into(),
        data.to_str().unwrap().into(),
    ]));
}

#[test]
fn status_shows_the_storage_on_postgres() {
    let Some(pg) = PgSchema::new("status_shows_the_storage_on_postgres") else {
        return;
    };
    status_shows_the_storage(&pg.store());
}

// -------------------------------------------------------------------- reading creates nothing

#[test]
fn export_and_status_of_a_missing_redb_file_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.redb");
    let store = StoreRef(vec!["--data".into(), typo.to_str().unwrap().into()]);
    for out in [
        cmd("export", &todo(), &store, &["--type", "todo"], ""),
        cmd("status", &todo(), &store, &[], ""),
    ] {
        // Exit 4: no store there.
        assert_eq!(code(&out), Some(4), "{}", err(&out));
        assert!(err(&out).contains("typo.redb"), "{}", err(&out));
        assert!(err(&out).contains("no mutatis store"), "{}", err(&out));
        assert!(out.stdout.is_empty());
    }
    assert!(
        !typo.exists(),
        "a store was created by a command that only reads"
    );
    // A command that writes does create it.
    ok(&cmd(
        "import",
        &todo(),
        &store,
        &["--type", "todo", "--version", "1"],
        &jsonl(&v1_docs(2)),
    ));
    assert_eq!(
        lines(&cmd("export", &todo(), &store, &["--type", "todo"], "")).len(),
        2
    );
}

#[test]
fn export_and_status_of_a_missing_postgres_store_create_nothing() {
    let Some(pg) = PgSchema::new("export_and_status_of_a_missing_postgres_store_create_nothing")
    else {
        return;
    };
    let store = pg.store();
    for out in [
        cmd("export", &todo(), &store, &["--type", "todo"], ""),
        cmd("status", &todo(), &store, &["--json"], ""),
    ] {
        assert_eq!(code(&out), Some(4), "{}", err(&out));
        assert!(err(&out).contains(&pg.schema), "{}", err(&out));
        assert!(err(&out).contains("no mutatis store"), "{}", err(&out));
    }
    assert!(
        !pg.exists(),
        "a schema was created by a command that only reads"
    );
    ok(&cmd(
        "import",
        &todo(),
        &store,
        &["--type", "todo", "--version", "1"],
        &jsonl(&v1_docs(2)),
    ));
    assert_eq!(
        lines(&cmd("export", &todo(), &store, &["--type", "todo"], "")).len(),
        2
    );
}

// --------------------------------------------------------------------- one store, one set

/// `mutatis serve SET --data PATH` exits (it must not start) within a few seconds.
fn serve_exit(set: &Path, data: &Path, extra: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mutatis"))
        .arg("serve")
        .arg(set)
        .arg("--data")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .env("MUTATIS_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mutatis serve started on a store of another schema set");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_store_of_another_schema_set_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("todo.redb");
    let (todo, students) = (todo(), example("students"));
    let store = StoreRef(vec!["--data".into(), path.to_str().unwrap().into()]);
    let docs = v1_docs(3);
    // A store made before names were recorded: it is read under any set, and the first
    // command that writes records its set.
    {
        let s = Store::new(
            RedbBackend::open(&path, RedbOptions::default()).unwrap(),
            Arc::new(SchemaSet::load(&todo).unwrap()),
        );
        s.put(
            "todo",
            "old",
            1,
            &json!({"title": "old", "done": true}),
            None,
        )
        .unwrap();
    }
    ok(&cmd("status", &students, &store, &[], ""));
    ok(&cmd(
        "import",
        &todo,
        &store,
        &["--type", "todo", "--version", "1"],
        &jsonl(&docs),
    ));
    // What a refused command must not change: every setting (the recorded set, tokens, the
    // node id a server would write) and the documents. (The file's bytes do change: redb
    // writes its header on every writable open.)
    let settings = || {
        let s = Store::new(
            RedbBackend::open(&path, RedbOptions::default()).unwrap(),
            Arc::new(SchemaSet::load(&todo).unwrap()),
        );
        (s.settings("").unwrap(), s.last_seq().unwrap())
    };
    let before = settings();

    let refused = |out: &Output| {
        // Exit 4: a store refused.
        assert_eq!(code(out), Some(4), "{}", err(out));
        let e = err(out);
        assert!(
            e.contains("\"todo-app\"") && e.contains("\"student-register\""),
            "{e}"
        );
        assert!(e.contains("--force-set"), "{e}");
    };
    refused(&cmd(
        "export",
        &students,
        &store,
        &["--type", "Student"],
        "",
    ));
    refused(&cmd("status", &students, &store, &[], ""));
    refused(&cmd(
        "import",
        &students,
        &store,
        &["--type", "Student", "--id-field", "id"],
        "",
    ));
    refused(&cmd(
        "migrate",
        &students,
        &store,
        &["--type", "Student", "--to", "4"],
        "",
    ));
    refused(&run(
        &[
            "token",
            "list",
            students.to_str().unwrap(),
            "--data",
            path.to_str().unwrap(),
        ],
        "",
    ));
    refused(&serve_exit(&students, &path, &[]));
    assert!(settings() == before, "a refused command wrote");

    // Read anyway: nothing recorded, the store is still todo-app's.
    let out = cmd(
        "export",
        &students,
        &store,
        &["--type", "Student", "--force-set"],
        "",
    );
    assert!(lines(&out).is_empty());
    assert_eq!(
        lines(&cmd("export", &todo, &store, &["--type", "todo"], "")).len(),
        4
    );

    // Adopted by a command that writes: the store is student-register's from now on.
    let out = cmd(
        "import",
        &students,
        &store,
        &["--type", "Student", "--id-field", "id", "--force-set"],
        "",
    );
    assert!(
        err(ok(&out)).contains("it is \"student-register\"'s from now on"),
        "{}",
        err(&out)
    );
    ok(&cmd("status", &students, &store, &[], ""));
    refused(&cmd("export", &todo, &store, &["--type", "todo"], ""));
}

// ------------------------------------------------------------------------- through a node

/// A node serving `examples/todo` on a fresh store, started with the admin token.
fn todo_node(extra: &[&str]) -> (Node, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(
        &todo(),
        &dir.path().join("node.redb"),
        support::NodeOptions {
            extra_args: extra.iter().map(|s| (*s).to_owned()).collect(),
            ..support::NodeOptions::default()
        },
    );
    (node, dir)
}

/// `mutatis SUB examples/todo --server URL REST…` with the admin token in MUTATIS_TOKEN.
fn through(node: &Node, sub: &str, rest: &[&str], stdin: &str) -> Output {
    let set = todo();
    let mut args = vec![sub, set.to_str().unwrap(), "--server", node.url.as_str()];
    args.extend(rest);
    run_env(&args, stdin, &[("MUTATIS_TOKEN", ADMIN_TOKEN)])
}

#[test]
fn the_store_commands_work_through_a_running_node() {
    // A dump from a store read directly.
    let dir = tempfile::tempdir().unwrap();
    let local = StoreRef(vec![
        "--data".into(),
        dir.path().join("local.redb").to_str().unwrap().into(),
    ]);
    let set = todo();
    ok(&cmd(
        "import",
        &set,
        &local,
        &["--type", "todo", "--version", "1"],
        &jsonl(&v1_docs(1_500)),
    ));
    let dump = cmd("export", &set, &local, &["--type", "todo"], "");
    let dump_v2 = cmd(
        "export",
        &set,
        &local,
        &["--type", "todo", "--version", "2"],
        "",
    );
    let dump_text = String::from_utf8_lossy(&ok(&dump).stdout).into_owned();

    let (node, _dir) = todo_node(&[]);
    // The dump loads through the node, revs kept: its export is the local one, byte for byte.
    let out = through(
        &node,
        "import",
        &["--type", "todo", "--version", "3"],
        &dump_text,
    );
    assert!(
        err(ok(&out)).contains("imported 1500 todo documents"),
        "{}",
        err(&out)
    );
    let again = through(&node, "export", &["--type", "todo"], "");
    assert_eq!(ok(&again).stdout, dump.stdout);
    let again = through(&node, "export", &["--type", "todo", "--version", "2"], "");
    assert_eq!(ok(&again).stdout, ok(&dump_v2).stdout);

    // Status through the node: the server's own report.
    let out = through(&node, "status", &["--json"], "");
    let st: Value = serde_json::from_slice(&ok(&out).stdout).unwrap();
    assert_eq!(st["schemaSet"], "todo-app");
    assert_eq!(st["store"], node.url.as_str());
    let t = &st["types"][0];
    assert_eq!(t["storageVersion"], 3, "{st}");
    assert_eq!(t["space"]["primary"]["records"], 1500, "{st}");
    let out = through(&node, "status", &[], "");
    assert!(String::from_utf8_lossy(&ok(&out).stdout).contains("stored        version 3"));

    // Migrate through the node: the command returns once the node switched, and the node
    // keeps the version asked for (it does not go back to mutatis.yaml's until it restarts).
    let out = through(
        &node,
        "migrate",
        &["--type", "todo", "--to", "2", "--batch-size", "100"],
        "",
    );
    assert!(
        err(ok(&out)).contains("switched to version 2"),
        "{}",
        err(&out)
    );
    let st = node.get_json("/admin/migrations/todo");
    assert_eq!(
        (st["storageVersion"].clone(), st["migration"].clone()),
        (json!(2), Value::Null),
        "{st}"
    );
    assert_eq!(st["backup"]["version"], 3, "{st}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(node.get_json("/admin/migrations/todo")["storageVersion"], 2);
    let out = through(&node, "migrate", &["--type", "todo", "--to", "2"], "");
    assert!(err(ok(&out)).contains("already stored in version 2"));
    // Stored in version 2 now, read in 3: the same documents (key order aside).
    assert_eq!(
        lines(&through(&node, "export", &["--type", "todo"], "")),
        lines(&dump)
    );
    let out = through(&node, "migrate", &["--type", "todo", "--to", "1"], "");
    assert_eq!(code(&out), Some(2), "{}", err(&out));
    let out = through(&node, "migrate", &["--type", "todo", "--rollback"], "");
    assert!(err(ok(&out)).contains("rolled back"), "{}", err(&out));
    assert_eq!(node.get_json("/admin/migrations/todo")["storageVersion"], 3);
    let out = through(&node, "migrate", &["--type", "todo", "--drop-backup"], "");
    assert!(err(ok(&out)).contains("dropped the backup in version 2"));
    let out = through(&node, "migrate", &["--type", "todo", "--abort"], "");
    assert!(err(ok(&out)).contains("nothing to abort"));
    assert_eq!(
        node.get_json("/admin/migrations/todo")["backup"],
        Value::Null
    );

    // Problems the node answers are shown readably.
    let out = run_env(
        &["status", set.to_str().unwrap(), "--server", &node.url],
        "",
        &[(
            "MUTATIS_TOKEN",
            "mutatis_0000000000000000000000000000000000000000000000000000000000000000",
        )],
    );
    assert_eq!(code(&out), Some(2));
    assert!(
        err(&out).contains("401") && err(&out).contains("MUTATIS_TOKEN"),
        "{}",
        err(&out)
    );
    let bad = jsonl(&[
        json!({"id": "fine", "doc": {"title": "ok", "done": true}}),
        json!({"id": "broken", "doc": {"title": 3, "done": true}}),
    ]);
    let out = through(&node, "import", &["--type", "todo", "--version", "1"], &bad);
    assert_eq!(code(&out), Some(1), "{}", err(&out));
    assert!(
        err(&out).contains("<stdin>:1") && err(&out).contains("\"broken\""),
        "{}",
        err(&out)
    );
    assert!(
        node.get_doc("todo", "fine", "5").is_none(),
        "a refused batch was partly written"
    );
    // A set the node does not serve.
    let out = run_env(
        &[
            "export",
            example("students").to_str().unwrap(),
            "--server",
            &node.url,
            "--type",
            "Student",
        ],
        "",
        &[("MUTATIS_TOKEN", ADMIN_TOKEN)],
    );
    assert_eq!(code(&out), Some(2));
    assert!(
        err(&out).contains("serves schema set \"todo-app\""),
        "{}",
        err(&out)
    );
}

/// `POST /admin/import` itself: admin only, strict about its body, all or nothing, revs kept.
#[test]
fn the_import_endpoint_is_admin_only_strict_and_keeps_revs() {
    use reqwest::Method;
    let (node, _dir) = todo_node(&[]);
    let post = |token: &str, body: &Value| {
        let r = node
            .request_as(Method::POST, "/admin/import", token)
            .json(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().unwrap_or(Value::Null))
    };
    let doc = |id: &str, title: Value| json!({"id": id, "rev": "7-0123456789abcdef", "doc": {"title": title, "done": true}});
    let body = json!({"type": "todo", "version": 1, "docs": [doc("a", json!("a"))]});
    let writer = node.new_token("w", "writer");
    assert_eq!(post(&writer, &body).0, 403);
    let (status, p) = post(
        &node.token,
        &json!({"type": "todo", "version": 1, "docs": [], "extra": 1}),
    );
    assert_eq!(
        (status, p["type"].as_str()),
        (400, Some("urn:mutatis:problem:invalid-import")),
        "{p}"
    );
    let (status, p) = post(
        &node.token,
        &json!({"type": "nope", "version": 1, "docs": []}),
    );
    assert_eq!(
        (status, p["type"].as_str()),
        (404, Some("urn:mutatis:problem:unknown-type")),
        "{p}"
    );
    let two =
        json!({"type": "todo", "version": 1, "docs": [doc("b", json!("b")), doc("c", json!(3))]});
    let (status, p) = post(&node.token, &two);
    assert_eq!(
        (status, p["type"].as_str()),
        (422, Some("urn:mutatis:problem:invalid-document")),
        "{p}"
    );
    assert!(
        node.get_doc("todo", "b", "5").is_none(),
        "half of a refused import was written"
    );
    let (status, answer) = post(&node.token, &body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"type": "todo", "version": 1, "imported": 1}));
    let (rev, stored) = node.get_doc("todo", "a", "5").expect("imported");
    assert_eq!(rev, "7-0123456789abcdef");
    assert_eq!(stored["title"], "a");
}

#[test]
fn import_through_a_node_fits_its_batches_to_the_body_limit() {
    // A node that takes small bodies: batches shrink to its limit, and every document
    // arrives once.
    let (node, _dir) = todo_node(&["--body-limit", "20000"]);
    let docs = v1_docs(700);
    let out = through(
        &node,
        "import",
        &["--type", "todo", "--version", "1"],
        &jsonl(&docs),
    );
    assert!(
        err(ok(&out)).contains("imported 700 todo documents"),
        "{}",
        err(&out)
    );
    let exported = lines(&through(
        &node,
        "export",
        &["--type", "todo", "--version", "2"],
        "",
    ));
    assert_eq!(exported.len(), 700);
    // One document larger than the limit is named by its line.
    let big = json!({"id": "big", "doc": {"title": "x".repeat(30_000), "done": false}});
    let out = through(
        &node,
        "import",
        &["--type", "todo", "--version", "1"],
        &jsonl(&[big]),
    );
    assert_eq!(code(&out), Some(2), "{}", err(&out));
    assert!(
        err(&out).contains("<stdin>:1") && err(&out).contains("larger"),
        "{}",
        err(&out)
    );
}

/// Asking a node again for the migration in flight is not a conflict: the same migration is
/// resumed (what `migrate --server` relies on when it runs again).
#[test]
fn asking_a_node_again_for_the_migration_in_flight_resumes_it() {
    use reqwest::Method;
    let (node, _dir) = todo_node(&[]);
    ok(&through(
        &node,
        "import",
        &["--type", "todo", "--version", "1"],
        &jsonl(&v1_docs(3_000)),
    ));
    let start = || {
        node.request(Method::POST, "/admin/migrations")
            .json(&json!({"type": "todo", "to": 2, "batchSize": 1}))
            .send()
            .unwrap()
    };
    assert_eq!(start().status().as_u16(), 202);
    let again = start();
    let status = again.status().as_u16();
    let body: Value = again.json().unwrap();
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["migration"]["to"], 2, "{body}");
    // Another target while it runs is still a conflict.
    let r = node
        .request(Method::POST, "/admin/migrations")
        .json(&json!({"type": "todo", "to": 1}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    // And the command finishes it.
    let out = through(&node, "migrate", &["--type", "todo", "--to", "2"], "");
    assert!(
        err(ok(&out)).contains("switched to version 2"),
        "{}",
        err(&out)
    );
    assert_eq!(node.get_json("/admin/migrations/todo")["storageVersion"], 2);
}

#[test]
fn migrate_through_a_node_follows_a_long_migration_to_its_switch() {
    let (node, _dir) = todo_node(&[]);
    let docs = v1_docs(20_000);
    ok(&through(
        &node,
        "import",
        &["--type", "todo", "--version", "1"],
        &jsonl(&docs),
    ));
    let started = Instant::now();
    let out = through(
        &node,
        "migrate",
        &["--type", "todo", "--to", "2", "--batch-size", "50"],
        "",
    );
    assert!(
        err(ok(&out)).contains("switched to version 2"),
        "{}",
        err(&out)
    );
    let st = node.get_json("/admin/migrations/todo");
    assert_eq!(st["storageVersion"], 2, "{st}");
    assert_eq!(st["migration"], Value::Null, "{st}");
    assert_eq!(st["running"], false, "{st}");
    eprintln!(
        "migrated 20000 documents through the node in {:?}",
        started.elapsed()
    );
    let v1 = lines(&through(
        &node,
        "export",
        &["--type", "todo", "--version", "2"],
        "",
    ));
    assert_eq!(v1.len(), 20_000);
}

// --------------------------------------------------------------------------------- README

/// The README's import/export example, run exactly as written (from a folder holding the
/// repository's `examples`, as a clone's root does): each command succeeds, the export in
/// version 1 gives back what was imported, and the store ends as the example says.
#[test]
fn the_readme_import_and_export_example_runs() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("mutatis import examples/todo")
        .expect("the README's import example");
    let block = &readme[start
        ..readme[start..]
            .find("```")
            .map_or(readme.len(), |e| start + e)];
    let commands: Vec<Vec<String>> = block
        .lines()
        .filter(|l| l.starts_with("mutatis "))
        .map(|l| {
            l.split('#')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .skip(1)
                .map(str::to_owned)
                .collect()
        })
        .collect();
    assert!(commands.len() >= 3, "{block}");
    let cwd = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo().join("examples"), cwd.path().join("examples")).unwrap();
    let mut exported = None;
    for args in &commands {
        let out = Command::new(env!("CARGO_BIN_EXE_mutatis"))
            .args(args)
            .current_dir(cwd.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`mutatis {}` failed: {}",
            args.join(" "),
            err(&out)
        );
        if args[0] == "export" {
            exported = Some(lines(&out));
        }
    }
    // The example ends where mutatis.yaml declares the type, without a backup.
    let out = Command::new(env!("CARGO_BIN_EXE_mutatis"))
        .args(["status", "examples/todo", "--data", "todo.redb", "--json"])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let st: Value = serde_json::from_slice(&ok(&out).stdout).unwrap();
    assert_eq!(st["types"][0]["storageVersion"], 3, "{st}");
    assert_eq!(st["types"][0]["backup"], Value::Null, "{st}");
    let file = std::fs::read_to_string(repo().join("examples/todo/data/todo-v1.jsonl")).unwrap();
    let imported: Vec<Value> = file
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut exported = exported.expect("the example exports");
    let key = |v: &Value| v["id"].as_str().unwrap_or_default().to_owned();
    exported.sort_by_key(key);
    let mut imported = imported;
    imported.sort_by_key(key);
    assert_eq!(
        bodies(&exported),
        bodies(&imported),
        "the export is what was imported"
    );
}
