//! `mutatis releases DIR (--server URL | --data PATH | --postgres URL) [--json]`: which
//! releases apps still call and which can be retired. Through a node it prints
//! `GET /admin/releases`; on a store read directly, the same report built by the same
//! function (`mutatis_server::admin::releases_report`) from the usage stored there. The table
//! is made from that JSON either way.
//!
//! `live_retirements` is what `mutatis check --against URL` adds from the same report: the
//! releases the new set stops serving that apps still call.
//!
//! `mutatis changelog DIR [--json]`: the set's changelog ([`SchemaSet::changelog`]), as
//! Markdown or as the JSON of `GET /changelog`.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use mutatis_schema::SchemaSet;
use mutatis_server::admin::releases_report;
use mutatis_server::retire::percent;
use mutatis_server::usage::read_histories;
use serde_json::Value;

use crate::cli::{Changelog, Releases};
use crate::error::CliError;
use crate::remote::Remote;
use crate::store_cmd::{store_err, with_store, Access};

/// The end of `mutatis releases --help`.
pub const AFTER_HELP: &str = "\
Verdicts: keep (apps call it, or it is the current release); wait (quiet for a week but called
this month, or fewer than 30 days recorded); retire (no request in 30 days: safe to mark
unsupported); retired (already unsupported; says so if apps still call it). Days are UTC.

Through a node (--server URL, an admin token in MUTATIS_TOKEN) the node first adds what it
counted to its store; read directly, a store shows what every node has flushed (every 5 s).
--json prints the node's GET /admin/releases answer (crates/mutatis-server/API.md).";

/// `mutatis releases`.
pub fn releases(args: &Releases) -> Result<ExitCode, CliError> {
    let today_date = mutatis_server::today();
    let set = Arc::new(
        SchemaSet::load(&args.dir)
            .map_err(CliError::Schema)?
            .as_of(&today_date),
    );
    let report = match &args.target.server {
        Some(url) => {
            let remote = Remote::from_args(url, &args.target)?;
            remote.check_set(set.name(), args.target.store.force_set)?;
            remote.get(&["admin", "releases"])?
        }
        None => {
            let today = mutatis_server::app::unix_now().div_euclid(86_400);
            let releases = set.releases().to_vec();
            let histories = with_store!(&args.target.store, set, Access::Read, |store| {
                read_histories(&store).map_err(store_err)
            })?;
            releases_report(&releases, &histories, today, true, false)
        }
    };
    if args.json {
        crate::check_cmd::emit_json(&report)?;
    } else {
        crate::check_cmd::emit(&table(&report))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The report as a table: a row per release, the verdict's reason last.
fn table(report: &Value) -> String {
    let text = |v: &Value, k: &str| match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    };
    let share = |v: &Value, k: &str| percent(v.get(k).and_then(Value::as_f64).unwrap_or(0.0));
    let mut rows = vec![[
        "RELEASE",
        "STATUS",
        "DEPRECATED",
        "SUNSET",
        "7D",
        "30D",
        "LAST SEEN",
        "TOKENS",
        "VERDICT",
        "REASON",
    ]
    .map(str::to_owned)
    .to_vec()];
    let empty = Vec::new();
    let list = report
        .get("releases")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for r in list {
        rows.push(vec![
            text(r, "release"),
            text(r, "status"),
            text(r, "deprecated"),
            text(r, "sunset"),
            share(r, "share7d"),
            share(r, "share30d"),
            text(r, "lastSeen"),
            text(r, "tokens30d"),
            text(r, "verdict"),
            text(r, "reason"),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if report.get("recording") == Some(&Value::Bool(false)) {
        out.push_str("(this node does not record usage: it runs with --usage off)\n");
    }
    out
}

/// `mutatis changelog`.
pub fn changelog(args: &Changelog) -> Result<ExitCode, CliError> {
    let set = SchemaSet::load(&args.dir).map_err(CliError::Schema)?;
    let log = set.changelog().map_err(CliError::Schema)?;
    if args.json {
        crate::check_cmd::emit_json(&log.to_json())
    } else {
        crate::check_cmd::emit(&log.to_markdown())
    }?;
    Ok(ExitCode::SUCCESS)
}

/// The releases `local` marks unsupported that `deployed` (the node at `url`) still serves,
/// with the node's usage of each when its verdict is not to retire (`GET /admin/releases`,
/// with the admin token in MUTATIS_TOKEN): a sentence each, for `mutatis check --against`.
/// Without a token, or when the node does not answer, one sentence says the traffic was not
/// checked.
pub(crate) fn live_retirements(
    local: &SchemaSet,
    deployed: &SchemaSet,
    url: &str,
    token: Option<&str>,
    timeout: std::time::Duration,
) -> Vec<String> {
    let retiring: Vec<&str> = local
        .releases()
        .iter()
        .filter(|r| !r.status.is_served())
        .filter(|r| {
            deployed
                .release(&r.name)
                .is_some_and(|d| d.status.is_served())
        })
        .map(|r| r.name.as_str())
        .collect();
    if retiring.is_empty() {
        return Vec::new();
    }
    let names = retiring.join(", ");
    let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
        return vec![format!(
            "release(s) {names} would stop being served; set MUTATIS_TOKEN to an admin token of {url} (or pass --token) to check whether apps still call them"
        )];
    };
    let base = if url.ends_with("/schema") {
        url.trim_end_matches("/schema")
    } else {
        url.trim_end_matches('/')
    };
    let report = reqwest::blocking::Client::builder()
        .tls_certs_merge(mutatis_client::tls::trusted_cas())
        .timeout(timeout)
        .build()
        .and_then(|c| {
            c.get(format!("{base}/admin/releases"))
                .bearer_auth(token)
                .send()
        })
        .and_then(reqwest::blocking::Response::error_for_status)
        .and_then(reqwest::blocking::Response::json::<Value>);
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            return vec![format!(
                "release(s) {names} would stop being served; whether apps still call them is unknown: GET {base}/admin/releases failed: {e}"
            )]
        }
    };
    let empty = Vec::new();
    let list = report
        .get("releases")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    retiring
        .iter()
        .filter_map(|name| {
            let r = list
                .iter()
                .find(|r| r.get("release").and_then(Value::as_str) == Some(name))?;
            let verdict = r.get("verdict").and_then(Value::as_str)?;
            (verdict != "retire").then(|| {
                format!(
                    "release {name} would stop being served, but the node's usage says {verdict}: {}",
                    r.get("reason").and_then(Value::as_str).unwrap_or("")
                )
            })
        })
        .collect()
}
