//! `mutatis replicate --from URL --to URL`: one replication between two nodes over HTTP
//! (`mutatis_replication::replicate` over two `mutatis_client::HttpPeer`s), with progress on
//! stderr and a summary on stdout.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use mutatis_client::HttpPeer;
use mutatis_replication::{
    replicate as run_replication, Options, Outcome, PeerError, Progress, ReplicationError, Selector,
};
use mutatis_store::LossPolicy;
use serde_json::{json, Value};

use crate::cli::Replicate;
use crate::error::CliError;
use crate::logging::LogFormat;
use crate::serve_cmd::stop_signal;
use tracing_subscriber::filter::LevelFilter;

/// The source's token, when `--from-token` is not given.
const FROM_TOKEN_ENV: &str = "MUTATIS_FROM_TOKEN";
/// The target's token, when `--to-token` is not given.
const TO_TOKEN_ENV: &str = "MUTATIS_TO_TOKEN";

/// How often a line of progress is written when stderr is not a terminal (no bar).
const QUIET_REPORT_EVERY: Duration = Duration::from_secs(5);

/// The end of `mutatis replicate --help`: tokens, resuming, the output and the exit codes.
pub const AFTER_HELP: &str = "\
Tokens: the source needs a reader token, the target a writer token. Give them in the
environment, MUTATIS_FROM_TOKEN and MUTATIS_TO_TOKEN: --from-token/--to-token (which win
over the environment) put them on the command line, where other users can see them.

Resuming: the target stores each batch with the replication's checkpoint in one
transaction. Running the same replication again (same nodes, types, selector and policy) sends
only what changed since; an interrupted run loses at most the batch in flight.

Counts are per revision (a document with conflicts travels as each of its leaves):
stored (new on the target), fast-forward (replaced the target's older revision), already
known, conflicts (concurrent with the target's revision: both kept), refused (the target's
version cannot hold it under --policy refuse, or it cannot be translated: not stored),
forbidden (the target token may not write it: not stored), lossy / carried (stored with
fields dropped / kept beside it). Refused and forbidden documents are listed by name; they do
not make the exit code non-zero, and the checkpoint moves past them: they are sent again when
they change on the source, or by a run under another policy (a policy has its own checkpoint,
so `--policy carry` after a `--policy refuse` run sends everything again; what the target
already holds is counted as already known).

--json prints one object (with --continuous: one line per batch, then the final one):
  source, target     the URLs
  checkpoint         the replication's checkpoint id
  policy             refuse | carry | lossy
  resumedFrom        the source sequence the run started after
  seq                the last source sequence applied
  head               the source's feed head at the last batch
  written            stored + fastForward + conflicts
  interrupted        true when --continuous was stopped by a signal
  tally              batches, docs (documents sent), stored, fastForward, alreadyKnown,
                     conflicts, refused, forbidden, lossy, carried, filtered (feed entries the
                     source left out: another type, not the selector, not readable),
                     notStored: [{type, id, rev, outcome: refused|forbidden, lost: [...]}]
                     (at most 1000; `lost` holds JSON pointers the target's version cannot
                     hold, or the translation error)

Exit codes: 0 the replication finished (or --continuous was stopped); 1 a node refused a
request (a bad token, a missing route…) or stayed unreachable past the retries; 2 usage.";

/// The replication's settings, checked.
struct Plan {
    from: HttpPeer,
    to: HttpPeer,
    options: Options,
    json: bool,
}

/// `mutatis replicate --from URL --to URL [--types A,B] [--selector JSON] [--continuous]
/// [--policy P] [--batch-size N] [--json]`.
pub fn replicate(args: &Replicate, log_format: LogFormat) -> Result<ExitCode, CliError> {
    let plan = plan(args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Usage(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run(&plan, log_format))
}

fn plan(args: &Replicate) -> Result<Plan, CliError> {
    let policy: LossPolicy = args.policy.parse().map_err(CliError::Usage)?;
    let selector = match &args.selector {
        Some(text) => parse_selector(text)?,
        None => Selector::new(),
    };
    let types: Vec<String> = args
        .types
        .iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    let from_token = token(args.from_token.as_deref());
    let to_token = token(args.to_token.as_deref());
    let peer = |flag: &str, url: &str, token: Option<String>| {
        HttpPeer::new(url, token).map_err(|e| CliError::Usage(format!("--{flag} {url}: {e}")))
    };
    Ok(Plan {
        from: peer("from", &args.from, from_token)?,
        to: peer("to", &args.to, to_token)?,
        options: Options {
            types,
            selector,
            policy,
            // Within the 1..=5000 clap allows.
            batch_size: args.batch_size as usize,
            continuous: args.continuous,
            // A continuous job outlives a node's restart; a one-off run reports it.
            max_retries: if args.continuous { None } else { Some(8) },
        },
        json: args.json,
    })
}

/// The token of the flag or its environment variable (blank counts as none).
fn token(given: Option<&str>) -> Option<String> {
    given.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

/// `--selector`: a JSON object whose keys are JSON pointers.
fn parse_selector(text: &str) -> Result<Selector, CliError> {
    let usage = |why: String| CliError::Usage(format!("--selector {text}: {why}"));
    let value: Value = serde_json::from_str(text).map_err(|e| usage(format!("not JSON ({e})")))?;
    let Value::Object(members) = value else {
        return Err(usage(
            "expected a JSON object of JSON pointer → value, e.g. {\"/school\": \"Hogwarts\"}"
                .to_owned(),
        ));
    };
    let mut selector = Selector::new();
    for (pointer, value) in members {
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            return Err(usage(format!(
                "{pointer:?} is not a JSON pointer (write \"/{pointer}\")"
            )));
        }
        selector.insert(pointer, value);
    }
    Ok(selector)
}

async fn run(plan: &Plan, log_format: LogFormat) -> Result<ExitCode, CliError> {
    let bar = progress_bar();
    init_logging(&bar, log_format);
    let mut reporter = Reporter {
        bar: bar.clone(),
        plan,
        batches_printed: 0,
        last_quiet_report: Instant::now(),
        last: None,
        write_error: None,
    };
    let outcome = {
        let replication = run_replication(&plan.from, &plan.to, &plan.options, |p| {
            reporter.on_batch(p);
        });
        if plan.options.continuous {
            tokio::select! {
                done = replication => Some(done),
                () = stop_signal() => None,
            }
        } else {
            Some(replication.await)
        }
    };
    bar.finish_and_clear();
    if let Some(error) = reporter.write_error.take() {
        return Err(stdout_error(error));
    }
    let (progress, interrupted) = match outcome {
        Some(Ok(progress)) => (progress, false),
        // Stopped by a signal: the last batch's progress is where the run stands.
        None => match reporter.last.take() {
            Some(progress) => (progress, true),
            None => return Ok(ExitCode::SUCCESS),
        },
        Some(Err(error)) => {
            if let Some(p) = reporter.last.as_ref().filter(|p| p.tally.batches > 0) {
                eprintln!(
                    "before failing: {} batches applied, up to source sequence {} (a rerun resumes there)",
                    p.tally.batches, p.seq
                );
            }
            return Err(failure(plan, error));
        }
    };
    let text = if plan.json {
        format!("{}\n", progress_json(plan, &progress, interrupted))
    } else {
        summary(plan, &progress, interrupted)
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(stdout_error)?;
    Ok(ExitCode::SUCCESS)
}

/// Shows progress as a bar on a terminal; with `--continuous`, prints a line per batch.
struct Reporter<'a> {
    bar: ProgressBar,
    plan: &'a Plan,
    batches_printed: u64,
    last_quiet_report: Instant,
    /// The latest progress: what a run stopped by a signal reports.
    last: Option<Progress>,
    /// The first failure writing stdout (the replication goes on; the run then fails).
    write_error: Option<std::io::Error>,
}

impl Reporter<'_> {
    fn on_batch(&mut self, p: &Progress) {
        let t = &p.tally;
        self.bar
            .set_length(p.head.saturating_sub(p.resumed_from).max(1));
        self.bar.set_position(p.seq.saturating_sub(p.resumed_from));
        self.bar.set_message(format!(
            "seq {}/{}: {} sent, {} written, {} not stored",
            p.seq,
            p.head,
            t.docs,
            t.written(),
            t.refused + t.forbidden
        ));
        if self.plan.options.continuous {
            if t.batches > self.batches_printed {
                self.batches_printed = t.batches;
                let line = if self.plan.json {
                    progress_json(self.plan, p, false).to_string()
                } else {
                    batch_line(p)
                };
                self.print_line(&line);
            }
        } else if self.bar.is_hidden() && self.last_quiet_report.elapsed() >= QUIET_REPORT_EVERY {
            // Not a terminal (CI, a log file): a line now and then instead of a bar.
            eprintln!("{}", batch_line(p));
            self.last_quiet_report = Instant::now();
        }
        self.last = Some(p.clone());
    }

    fn print_line(&mut self, line: &str) {
        if self.write_error.is_some() {
            return;
        }
        let written = self.bar.suspend(|| {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}").and_then(|()| out.flush())
        });
        if let Err(e) = written {
            self.write_error = Some(e);
        }
    }
}

fn batch_line(p: &Progress) -> String {
    let t = &p.tally;
    format!(
        "batch {}: seq {}/{}, {} docs sent: {} stored, {} fast-forward, {} already known, {} conflicts, {} refused, {} forbidden",
        t.batches, p.seq, p.head, t.docs, t.stored, t.fast_forward, t.already_known, t.conflicts, t.refused, t.forbidden
    )
}

fn progress_bar() -> ProgressBar {
    // Hidden by indicatif itself when stderr is not a terminal.
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} feed entries ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Warnings (a node retried) to stderr, filtered by `RUST_LOG` (`warn` by default), written
/// around the progress bar rather than through it.
fn init_logging(bar: &ProgressBar, format: LogFormat) {
    let bar = bar.clone();
    crate::logging::init(format, LevelFilter::WARN, move || BarWriter(bar.clone()));
}

/// Writes to stderr with the progress bar cleared for the time of the write.
struct BarWriter(ProgressBar);

impl std::io::Write for BarWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .suspend(|| std::io::stderr().write_all(buf))
            .map(|()| buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn stdout_error(error: std::io::Error) -> CliError {
    CliError::Write {
        path: PathBuf::from("<stdout>"),
        error,
    }
}

/// The `--json` object (fields documented in [`AFTER_HELP`]).
fn progress_json(plan: &Plan, p: &Progress, interrupted: bool) -> Value {
    json!({
        "source": plan.from.base_url(),
        "target": plan.to.base_url(),
        "checkpoint": p.checkpoint,
        "policy": plan.options.policy.as_str(),
        "resumedFrom": p.resumed_from,
        "seq": p.seq,
        "head": p.head,
        "written": p.tally.written(),
        "interrupted": interrupted,
        // A struct of numbers and strings always serialises.
        "tally": serde_json::to_value(&p.tally).unwrap_or(Value::Null),
    })
}

/// The text summary.
fn summary(plan: &Plan, p: &Progress, interrupted: bool) -> String {
    let t = &p.tally;
    let mut s = String::new();
    let how = if interrupted {
        "stopped (signal)"
    } else {
        "finished"
    };
    s.push_str(&format!(
        "replication {} → {} {how}\n",
        plan.from.base_url(),
        plan.to.base_url()
    ));
    s.push_str(&format!(
        "checkpoint {}, policy {}; source sequence {} → {} (feed head {}), {} batches\n",
        p.checkpoint, plan.options.policy, p.resumed_from, p.seq, p.head, t.batches
    ));
    s.push_str(&format!("documents sent:  {}\n", t.docs));
    s.push_str("revisions:\n");
    for (label, n) in [
        ("stored", t.stored),
        ("fast-forward", t.fast_forward),
        ("already known", t.already_known),
        ("conflicts", t.conflicts),
        ("refused", t.refused),
        ("forbidden", t.forbidden),
        ("lossy", t.lossy),
        ("carried", t.carried),
    ] {
        s.push_str(&format!("  {label:<14} {n}\n"));
    }
    s.push_str(&format!(
        "filtered out by the source (type, selector or access): {}\n",
        t.filtered
    ));
    if t.lossy > 0 {
        s.push_str(&format!(
            "{} revisions were stored WITHOUT fields the target's version cannot hold (--policy lossy)\n",
            t.lossy
        ));
    }
    let not_stored = t.refused + t.forbidden;
    if not_stored > 0 {
        s.push_str(&format!(
            "NOT STORED on the target: {not_stored} revisions ({} refused, {} forbidden); the checkpoint has moved past them, so they are sent again when they change on the source or by a run under another --policy:\n",
            t.refused, t.forbidden
        ));
        for d in &t.not_stored {
            s.push_str(&format!(
                "  {}/{} {}: {}\n",
                d.type_name,
                d.id,
                d.rev,
                why_not_stored(d.outcome, &d.lost, plan.options.policy)
            ));
        }
        let unlisted = not_stored.saturating_sub(t.not_stored.len() as u64);
        if unlisted > 0 {
            s.push_str(&format!("  … and {unlisted} more\n"));
        }
    }
    s
}

fn why_not_stored(outcome: Outcome, lost: &[String], policy: LossPolicy) -> String {
    match outcome {
        Outcome::Forbidden => {
            "forbidden: the target's access policy does not let the --to token write it".to_owned()
        }
        _ if !lost.is_empty() && lost.iter().all(|l| l.starts_with('/')) => format!(
            "refused under --policy {policy}: the target's version cannot hold {}",
            lost.join(", ")
        ),
        _ if !lost.is_empty() => format!("refused: cannot be translated: {}", lost.join("; ")),
        _ => "refused by the target".to_owned(),
    }
}

/// The error a failed replication ends the command with, with a hint when the cause is
/// a usual one (a token).
fn failure(plan: &Plan, error: ReplicationError) -> CliError {
    let (from, to) = (plan.from.base_url(), plan.to.base_url());
    let peer_error = match error {
        ReplicationError::SameNode(node) => {
            return CliError::Usage(format!(
                "--from {from} and --to {to} are the same node ({node}): nothing to replicate"
            ))
        }
        ReplicationError::Peer(e) => e,
    };
    let is_source = |peer: &str| peer == from;
    let hint = match &peer_error {
        PeerError::Refused { peer, status, .. } if *status == 401 || *status == 403 => {
            let (side, role, env, flag) = if is_source(peer) {
                ("source", "reader", FROM_TOKEN_ENV, "--from-token")
            } else {
                ("target", "writer", TO_TOKEN_ENV, "--to-token")
            };
            if *status == 401 {
                format!("\nhint: the {side} ({peer}) does not accept the token given for it: set {env} (or {flag}) to a {role} token of that node")
            } else {
                format!("\nhint: the {side}'s token ({env} or {flag}) needs at least the {role} role on {peer}")
            }
        }
        // Only the first request (`GET /replication`) finding nothing says the node lacks
        // the protocol; a later 404 (an unknown type in --types) explains itself.
        PeerError::Refused {
            peer,
            status: 404,
            detail,
            ..
        } if detail.split(": ").next().is_some_and(|request| {
            request.starts_with("GET ") && request.ends_with("/replication")
        }) =>
        {
            format!("\nhint: is {peer} a mutatis node that serves the replication protocol (GET /replication)?")
        }
        PeerError::Unavailable { peer, .. } => format!(
            "\nhint: {peer} did not answer after {} retries; is it running at that URL?",
            plan.options.max_retries.unwrap_or(0)
        ),
        _ => String::new(),
    };
    CliError::Replicate {
        from: from.to_owned(),
        to: to.to_owned(),
        reason: peer_error.to_string(),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_objects_of_pointers() {
        let s = parse_selector(r#"{"/school/name": "Hogwarts", "/year": 3}"#).unwrap();
        assert_eq!(s.get("/school/name"), Some(&json!("Hogwarts")));
        assert_eq!(s.get("/year"), Some(&json!(3)));
        let e = parse_selector(r#"{"school": 1}"#).unwrap_err().to_string();
        assert!(e.contains("not a JSON pointer"), "{e}");
        assert!(parse_selector("[1]").is_err());
        assert!(parse_selector("{").is_err());
    }

    #[test]
    fn why_a_document_was_not_stored_is_spelled_out() {
        let why = why_not_stored(
            Outcome::Refused,
            &["/nickname".into(), "/email".into()],
            LossPolicy::Refuse,
        );
        assert_eq!(
            why,
            "refused under --policy refuse: the target's version cannot hold /nickname, /email"
        );
        let why = why_not_stored(
            Outcome::Refused,
            &["lens error at /x".into()],
            LossPolicy::Carry,
        );
        assert!(why.starts_with("refused: cannot be translated"), "{why}");
        assert!(why_not_stored(Outcome::Forbidden, &[], LossPolicy::Carry).contains("--to token"));
    }
}
