//! The operator's plumbing of the real `mutatis` binary: `serve --config FILE` and its
//! precedence (command line > environment > file > default), the exit codes that say what
//! failed, `--log-format json` and `RUST_LOG`, `DATABASE_URL` for a bare `--postgres`, shell
//! completions and man pages.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mutatis"))
}

fn todo_set() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/todo")
}

/// A fresh scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mutatis-operator-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `mutatis ARGS` with none of the environment variables these tests set, unless in `env`.
fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    for var in [
        "MUTATIS_DATA",
        "MUTATIS_LISTEN",
        "MUTATIS_CONFIG",
        "MUTATIS_LOG_FORMAT",
        "MUTATIS_ADMIN_TOKEN",
        "DATABASE_URL",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(args, env)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What a started `mutatis serve` said: its `data:` line, and its log lines up to the
/// "listening" one (read while it runs; it is killed after).
struct Started {
    data: String,
    logs: Vec<String>,
}

/// Start `mutatis serve ARGS`, read what it prints at start, and kill it.
fn start_serve(args: &[&str], env: &[(&str, &str)]) -> Started {
    let mut child = command(args, env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut data = None;
    let mut line = String::new();
    while data.is_none() {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("serve {args:?} stopped before saying its data: {err}");
        }
        data = line.trim_end().strip_prefix("data: ").map(str::to_owned);
    }
    // The "listening" line is logged just after the lines on stdout (callers log at info).
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut logs = Vec::new();
    loop {
        line.clear();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        logs.push(line.trim_end().to_owned());
        if line.contains("listening on") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    Started {
        data: data.unwrap(),
        logs,
    }
}

#[test]
fn config_file_settings_yield_to_the_environment_and_the_command_line() {
    let dir = scratch("precedence");
    let [from_file, from_env, from_cli] =
        ["file", "env", "cli"].map(|n| dir.join(format!("{n}.redb")).display().to_string());
    let config = dir.join("mutatis.toml");
    std::fs::write(
        &config,
        format!(
            "# the settings of one node\nlisten = \"127.0.0.1:0\"\ndata = {from_file:?}\n\
             public-metrics = true\ncors-origin = [\"https://a.example\", \"https://b.example\"]\n\
             request-timeout = 20\n"
        ),
    )
    .unwrap();
    let set = todo_set();
    let set = set.to_str().unwrap();
    let config = config.to_str().unwrap();

    let file_only = start_serve(&["serve", set, "--config", config], &[]);
    assert_eq!(file_only.data, from_file);
    let env_wins = start_serve(
        &["serve", set, "--config", config],
        &[("MUTATIS_DATA", &from_env)],
    );
    assert_eq!(env_wins.data, from_env);
    let cli_wins = start_serve(
        &["serve", set, "--config", config, "--data", &from_cli],
        &[("MUTATIS_DATA", &from_env)],
    );
    assert_eq!(cli_wins.data, from_cli);
    // The file is named by the environment just as well.
    let file_by_env = start_serve(&["serve", set], &[("MUTATIS_CONFIG", config)]);
    assert_eq!(file_by_env.data, from_file);
}

#[test]
fn config_file_errors_name_the_file_the_line_and_the_setting() {
    let dir = scratch("config-errors");
    let set = todo_set();
    let cases = [
        (
            "unknown.toml",
            "listen = \"127.0.0.1:0\"\n\nlisten-port = 80\n",
            ":3: ",
            "listen-port",
        ),
        (
            "value.toml",
            "listen = \"127.0.0.1:0\"\nbody-limit = \"lots\"\n",
            ":2: ",
            "body-limit = \"lots\"",
        ),
        (
            "switch.toml",
            "public-metrics = \"yes\"\n",
            ":1: ",
            "public-metrics",
        ),
        ("list.toml", "listen = [\"a\", \"b\"]\n", ":1: ", "listen"),
        (
            "syntax.toml",
            "listen = \"127.0.0.1:0\"\ndata = \n",
            ":2: ",
            "",
        ),
    ];
    for (name, text, line, key) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let out = run(
            &[
                "serve",
                set.to_str().unwrap(),
                "--config",
                path.to_str().unwrap(),
            ],
            &[],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        let at = format!("{}{line}", path.display());
        assert!(err.contains(&at), "{name}: {err:?} does not name {at:?}");
        assert!(err.contains(key), "{name}: {err:?} does not name {key:?}");
    }
}

#[test]
fn a_taken_port_exits_3_and_says_so() {
    let dir = scratch("taken");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = dir.join("t.redb");
    let out = run(
        &[
            "serve",
            todo_set().to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--listen",
            &addr,
        ],
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("cannot listen on {addr}")) && err.contains("--listen"),
        "{err}"
    );
}

#[test]
fn a_schema_set_that_does_not_load_exits_5() {
    let empty = scratch("no-set");
    let data = empty.join("x.redb");
    let out = run(
        &[
            "serve",
            empty.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    // `check` keeps its own contract: 2, it cannot check.
    let out = run(&["check", empty.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_bare_postgres_takes_database_url() {
    let set = todo_set();
    let set = set.to_str().unwrap();
    let unset = run(&["status", set, "--postgres"], &[]);
    assert_eq!(unset.status.code(), Some(2), "{}", stderr(&unset));
    assert!(
        stderr(&unset).contains("DATABASE_URL"),
        "{}",
        stderr(&unset)
    );

    // Nothing listens on port 1: the URL of DATABASE_URL was used, and the store is
    // unreachable (4), without the password ever being on the command line.
    let out = run(
        &["status", set, "--postgres"],
        &[(
            "DATABASE_URL",
            "postgres://nobody:secret-password@127.0.0.1:1/none",
        )],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(!err.contains("secret-password"), "{err}");
    // --help shows the variables, never their values.
    let help = run(
        &["serve", "--help"],
        &[("MUTATIS_ADMIN_TOKEN", "hidden-secret")],
    );
    let help = String::from_utf8_lossy(&help.stdout);
    for var in [
        "MUTATIS_LISTEN",
        "MUTATIS_DATA",
        "MUTATIS_ADMIN_TOKEN",
        "DATABASE_URL",
    ] {
        assert!(help.contains(var), "{var} is not in serve --help");
    }
    assert!(!help.contains("hidden-secret"), "{help}");
}

#[test]
fn logs_are_json_lines_with_log_format_json() {
    let dir = scratch("json-logs");
    let data = dir.join("j.redb");
    let set = todo_set();
    let args = [
        "serve",
        set.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ];
    let started = start_serve(&args, &[("RUST_LOG", "info")]);
    let listening = started
        .logs
        .iter()
        .find(|l| l.contains("listening on"))
        .unwrap_or_else(|| panic!("no listening line in {:?}", started.logs));
    let line: serde_json::Value = serde_json::from_str(listening).expect("a JSON log line");
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["target"], "mutatis::serve_cmd", "{line}");
    // The same from the environment; and the default stays text.
    let started = start_serve(&args[..6], &[("MUTATIS_LOG_FORMAT", "json")]);
    assert!(
        started.logs.iter().all(|l| l.starts_with('{')),
        "{:?}",
        started.logs
    );
    let started = start_serve(&args[..6], &[]);
    assert!(
        started
            .logs
            .iter()
            .any(|l| l.contains(" INFO ") && l.contains("listening on")),
        "{:?}",
        started.logs
    );
}

/// Run `mutatis serve ARGS` until it has started, stop it with SIGTERM, and return its
/// exit code and everything it logged.
#[cfg(unix)]
fn serve_and_stop(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = command(args, env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    assert!(
        stdout.read_line(&mut line).unwrap() > 0,
        "serve stopped early"
    );
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    // Once it answers, it also listens for SIGTERM (a signal before would kill it).
    mutatis_client::tls::install_crypto_provider();
    reqwest::blocking::get(format!("{url}/meta")).expect("the server answers");
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    (child.wait().unwrap().code(), logs)
}

#[cfg(unix)]
#[test]
fn rust_log_is_an_env_filter_with_levels_per_target_and_spans() {
    let dir = scratch("env-filter");
    let data = dir.join("f.redb");
    let set = todo_set();
    let args = [
        "serve",
        set.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ];
    let (code, logs) = serve_and_stop(&args, &[("RUST_LOG", "warn,mutatis::serve_cmd=info")]);
    assert_eq!(code, Some(0), "{logs}");
    assert!(
        logs.contains("listening on") && logs.contains("stopped"),
        "{logs}"
    );
    // A span directive: only events inside a span named `nospan` (there are none at start),
    // so nothing at all is logged, and the filter is no error.
    let (code, logs) = serve_and_stop(&args, &[("RUST_LOG", "mutatis[nospan]=info")]);
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(logs, "");
    // Not a filter: said, and logged at info instead.
    let (_, logs) = serve_and_stop(&args, &[("RUST_LOG", "info,=bad=")]);
    assert!(
        logs.contains("RUST_LOG is not a filter") && logs.contains("listening on"),
        "{logs}"
    );
}

#[test]
fn completions_and_man_pages_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = run(&["completions", shell], &[]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        for sub in ["serve", "replicate", "migrate", "completions"] {
            assert!(script.contains(sub), "{shell} completions lack {sub}");
        }
    }
    let out = run(&["completions", "tcsh"], &[]);
    assert_eq!(out.status.code(), Some(2));

    let out = run(&["man"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH mutatis 1"), "{page}");
    for sub in ["serve", "replicate", "migrate"] {
        assert!(page.contains(sub), "the man page lacks {sub}");
    }
    let dir = scratch("man");
    let pages = dir.join("man1");
    let out = run(&["man", "--dir", pages.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    for page in ["mutatis.1", "mutatis-serve.1", "mutatis-token-create.1"] {
        let text =
            std::fs::read_to_string(pages.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}");
    }
    let serve = std::fs::read_to_string(pages.join("mutatis-serve.1")).unwrap();
    assert!(serve.contains("listen"), "{serve}");
}

/// A running `mutatis serve`, killed when dropped.
struct Running {
    child: std::process::Child,
    url: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_running(set: &Path, extra: &[&str]) -> Running {
    let dir = scratch("running");
    let data = dir.join("r.redb");
    let mut args = vec![
        "serve",
        set.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let mut child = command(&args, &[("RUST_LOG", "warn")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    Running { child, url }
}

/// `?release=%32` is release 2 to the handler (refused: unsupported) and to the metrics
/// alike (a splitter without percent-decoding counted it under `other`).
#[test]
fn a_percent_encoded_release_is_counted_under_its_name() {
    let set = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/students");
    let token = "mutatis_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let node = serve_running(&set, &["--public-metrics", "--admin-token", token]);
    // reqwest is built with rustls and no provider of its own: the process installs one.
    mutatis_client::tls::install_crypto_provider();
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/docs/Student/nobody?release=%32", node.url))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let problem: serde_json::Value = r.json().unwrap();
    assert_eq!(
        problem["type"], "urn:mutatis:problem:unsupported-release",
        "{problem}"
    );
    let text = reqwest::blocking::get(format!("{}/metrics", node.url))
        .unwrap()
        .text()
        .unwrap();
    let counted = text.lines().any(|l| {
        l.starts_with("mutatis_requests_total{")
            && l.contains("release=\"2\"")
            && l.contains("type=\"Student\"")
            && l.contains("status=\"400\"")
    });
    assert!(counted, "{text}");
    assert!(!text.contains("release=\"other\""), "{text}");
}
