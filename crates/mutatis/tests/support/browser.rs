//! Running a browser script (`tests/browser/*.mjs`): headless Chromium (Debian's
//! `/usr/bin/chromium`) driven by `playwright-core` from the root `node_modules`, talking to
//! the test one JSON line at a time. Without node, `node_modules` or Chromium a test skips
//! loudly on stderr, except under `CI`, where it fails.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The workspace root (where `node_modules` is).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `node` on the PATH.
pub fn node_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("node"))
        .find(|p| p.is_file())
}

/// What is missing to run the browser, if anything.
pub fn missing() -> Option<String> {
    let mut missing = Vec::new();
    if node_bin().is_none() {
        missing.push("`node` on the PATH".to_owned());
    }
    if !workspace()
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        missing.push("node_modules/playwright-core (run `npm ci` at the workspace root)".into());
    }
    if !Path::new(CHROMIUM).is_file() {
        missing.push(format!("{CHROMIUM} (Debian's `chromium` package)"));
    }
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// Whether the browser test of `what` must be skipped (said loudly); under `CI` a missing
/// tool fails.
pub fn skip(what: &str) -> bool {
    let Some(missing) = missing() else {
        return false;
    };
    let ci = std::env::var_os("CI").is_some();
    // Straight to the process's stderr, past libtest's capture: a passing test's
    // `eprintln!` output is never shown, and this must be seen.
    let bar = "=".repeat(78);
    let _ = writeln!(
        std::io::stderr(),
        "\n{bar}\nSKIPPED: the browser test of {what} did not run: missing {missing}\n{bar}"
    );
    assert!(
        !ci,
        "CI is set: the browser test must run (missing {missing})"
    );
    true
}

/// `target/browser-test/`, where the screenshots go.
pub fn shots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|target| target.join("browser-test"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-test"));
    std::fs::create_dir_all(&dir).expect("the screenshot folder");
    dir
}

/// Polls until `check` holds, up to `timeout`; panics with the last complaint otherwise.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => panic!("{e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// A browser script running, its stdout lines on a channel; killed on drop.
pub struct Script {
    name: String,
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Script {
    /// Start `tests/browser/{file}` with `env` (and `CHROMIUM`).
    pub fn start(file: &str, env: &[(&str, String)]) -> Script {
        let mut cmd = Command::new(node_bin().expect("checked by skip()"));
        cmd.arg(workspace().join("crates/mutatis/tests/browser").join(file))
            .current_dir(workspace())
            .env("CHROMIUM", CHROMIUM)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("node starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Script {
            name: file.to_owned(),
            child,
            stdin,
            lines: rx,
        }
    }

    /// The script's next JSON message (one with a `phase`), within `timeout`; a message of
    /// phase `error` fails the test.
    pub fn next(&self, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "the browser script {} said nothing within {timeout:?}",
                    self.name
                )
            });
            // Anything that is not one of its JSON lines (a warning of node's) is passed on.
            match serde_json::from_str::<Value>(&line) {
                Ok(v) if v.get("phase").is_some() => {
                    eprintln!("{}: {v}", self.name);
                    assert_ne!(v["phase"], "error", "the browser script failed: {v}");
                    return v;
                }
                _ => eprintln!("{}: {line}", self.name),
            }
        }
    }

    /// The next message, which must be of `phase`.
    pub fn expect(&self, phase: &str, timeout: Duration) -> Value {
        let v = self.next(timeout);
        assert_eq!(v["phase"], phase, "{v}");
        v
    }

    /// A line for the script to read.
    pub fn tell(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").expect("the script reads its stdin");
    }

    /// Close its stdin and wait for it to exit successfully.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("the script ends");
        assert!(status.success(), "the browser script exited {status:?}");
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
