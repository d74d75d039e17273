//! What the HTTP load generators (`http_load`, `service_load`) share: starting the servers
//! under test (pinned with `taskset`), reading their CPU time from `/proc/PID/stat`,
//! keep-alive hyper connections, and medians and percentiles.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Why a benchmark run failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
    /// The schema set could not be loaded or does not have what the benchmark needs.
    #[error("schema set {dir}: {message}")]
    Schema {
        /// The folder.
        dir: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A server could not be started or did not say where it listens.
    #[error("{server}: {message}")]
    Server {
        /// Which server.
        server: &'static str,
        /// What went wrong, with the tail of its log where there is one.
        message: String,
    },
    /// A request failed at the HTTP level or answered what it should not.
    #[error("{scenario}: {message}")]
    Http {
        /// The scenario or setup step.
        scenario: String,
        /// What went wrong.
        message: String,
    },
    /// An OS call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Maps an OS error to [`LoadError::Io`], saying what was being done.
pub fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LoadError {
    let what = what.into();
    move |source| LoadError::Io { what, source }
}

/// A server child process, killed when dropped.
pub struct Server {
    /// What the reports call it.
    pub name: &'static str,
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already exited is fine: nothing to clean up then.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines of a server's log, to quote in an error.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    if tail.is_empty() {
        "(its log is empty)".into()
    } else {
        format!("its log ends with:\n{tail}")
    }
}

impl Server {
    /// Start `program args…` (under `taskset -c cpus` if given), with stderr to `log`, and
    /// wait for the stdout line that names its address (`… http://ADDR`), or, when
    /// `listens_at` is given (a server that prints nothing, told its port), until that
    /// address accepts a TCP connection.
    pub fn start(
        name: &'static str,
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        cpus: Option<&str>,
        log: PathBuf,
        listens_at: Option<SocketAddr>,
    ) -> Result<Server, LoadError> {
        if !program.is_file() {
            return Err(LoadError::Server {
                server: name,
                message: format!(
                    "{} does not exist: build it first (`cargo build --release -p …`)",
                    program.display()
                ),
            });
        }
        let mut command = match cpus {
            // `taskset` execs the program, so the child's pid is the server's own.
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(program);
                c
            }
            None => Command::new(program),
        };
        let stderr =
            std::fs::File::create(&log).map_err(io_err(format!("create {}", log.display())))?;
        command
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = command
            .spawn()
            .map_err(io_err(format!("start {}", program.display())))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err(LoadError::Server {
                server: name,
                message: "no stdout pipe".into(),
            });
        };
        let (tx, rx) = mpsc::channel();
        // Reads the address line, then keeps draining stdout so the server never blocks on
        // a full pipe.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some((_, rest)) = line.split_once("http://") {
                        let addr = rest.trim().trim_end_matches('/').parse::<SocketAddr>();
                        sent = tx.send(addr.map_err(|e| format!("`{line}`: {e}"))).is_ok();
                    }
                }
            }
        });
        let mut server = Server {
            name,
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        if let Some(addr) = listens_at {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                    server.addr = addr;
                    return Ok(server);
                }
                if let Ok(Some(status)) = server.child.try_wait() {
                    return Err(server.failed(format!("exited ({status}) before listening")));
                }
                if Instant::now() >= deadline {
                    return Err(server.failed(format!("did not listen on {addr} within 60 s")));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(addr)) => {
                server.addr = addr;
                Ok(server)
            }
            Ok(Err(message)) => Err(server.failed(format!("cannot read its address: {message}"))),
            Err(_) => {
                Err(server
                    .failed("did not print `… http://ADDR` within 60 s (or exited)".to_owned()))
            }
        }
    }

    pub fn failed(&self, message: String) -> LoadError {
        LoadError::Server {
            server: self.name,
            message: format!("{message}; {}", log_tail(&self.log)),
        }
    }

    /// The server process's id (the `taskset` wrapper execs it, so it is the server's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`): the unit of `/proc/PID/stat`.
pub fn clock_ticks() -> Result<f64, LoadError> {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .map_err(io_err("run `getconf CLK_TCK`"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().parse::<f64>() {
        Ok(t) if t > 0.0 => Ok(t),
        _ => Err(LoadError::Io {
            what: format!("`getconf CLK_TCK` printed `{}`", text.trim()),
            source: std::io::Error::other("not a positive number"),
        }),
    }
}

/// User + system CPU time of every thread of `pid` (`self` for this process), in ticks.
pub fn cpu_ticks(pid: &str) -> Result<u64, LoadError> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(io_err(format!("read {path}")))?;
    stat_cpu_ticks(&stat).ok_or_else(|| LoadError::Io {
        what: format!("parse {path}"),
        source: std::io::Error::other("no utime/stime fields"),
    })
}

/// utime + stime of a `/proc/PID/stat` line.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count from the last `)`.
    // After it come field 3 (state) onwards; utime and stime are fields 14 and 15.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// Pin every thread of this process to `cpus` (before the runtime starts its threads, which
/// then inherit it).
pub fn pin_self(cpus: &str) -> Result<(), LoadError> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .map_err(io_err("run taskset"))?;
    if status.success() {
        Ok(())
    } else {
        Err(LoadError::Io {
            what: format!("taskset -a -p -c {cpus} (this process)"),
            source: std::io::Error::other(status.to_string()),
        })
    }
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` has them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Open one keep-alive HTTP/1.1 connection (`TCP_NODELAY`), its driver spawned on the
/// current runtime.
pub async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; an error then surfaces on
        // the sender as a failed request, which is counted there.
        let _ = connection.await;
    });
    Ok(sender)
}

/// The `p`th percentile (nearest rank) of sorted nanoseconds, in milliseconds.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e6
}

/// The median, NaNs skipped (NaN if nothing is left).
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // A real line's shape, with a command name that holds `) ` itself.
        let line = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    1234 567 0 0 20 0 9 0 100 0 0";
        assert_eq!(stat_cpu_ticks(line), Some(1234 + 567));
        assert_eq!(stat_cpu_ticks("4242 (x) S 1 2"), None);
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(cpu_ticks("self").is_ok());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let ns: Vec<u64> = (1..=100).map(|i| i * 1_000_000).collect();
        assert_eq!(percentile(&ns, 50.0), 50.0);
        assert_eq!(percentile(&ns, 99.0), 99.0);
        assert_eq!(percentile(&ns[..1], 99.0), 1.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn median_averages_the_middle_pair_and_skips_nan() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
        assert_eq!(median([f64::NAN, 5.0].into_iter()), 5.0);
    }
}
