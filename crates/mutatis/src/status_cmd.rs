//! `mutatis status DIR (--data PATH | --postgres URL | --server URL) [--type T] [--json]`:
//! how each type is stored and what is happening to it. The JSON of every type is the
//! server's TypeState (`GET /admin/migrations`), built by the same function
//! (`mutatis_server::admin::type_status`) when the store is read directly, so the two never
//! drift apart; the text is made from that JSON either way.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use mutatis_schema::SchemaSet;
use mutatis_server::admin::type_status;
use mutatis_store::{Backend, Store};
use reqwest::Method;
use serde_json::{json, Value};

use crate::cli::Status;
use crate::error::CliError;
use crate::remote::Remote;
use crate::store_cmd::{store_err, with_store, Access};

/// `mutatis status`.
pub fn status(args: &Status) -> Result<ExitCode, CliError> {
    let set = Arc::new(SchemaSet::load(&args.dir).map_err(CliError::InvalidSet)?);
    let types: Vec<String> = match &args.r#type {
        Some(t) => {
            set.type_def(t).map_err(CliError::Schema)?;
            vec![t.clone()]
        }
        None => set.types().map(|t| t.name().to_owned()).collect(),
    };
    let report = match &args.target.server {
        Some(url) => {
            let remote = Remote::from_args(url, &args.target)?;
            remote.check_set(set.name(), args.target.store.force_set)?;
            let mut u = remote.url_of(&["admin", "migrations"]);
            u.query_pairs_mut().append_pair("space", "true");
            let all = remote.json(Method::GET, u, None)?;
            let listed = all
                .get("types")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let kept: Vec<Value> = listed
                .into_iter()
                .filter(|t| {
                    t.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|n| types.iter().any(|w| w == n))
                })
                .collect();
            json!({
                "schemaSet": all.get("schemaSet").cloned().unwrap_or(json!(set.name())),
                "store": remote.url(),
                "types": kept,
            })
        }
        None => {
            let store_args = &args.target.store;
            let where_ = match (&store_args.data, &store_args.postgres.url) {
                (Some(p), _) => p.display().to_string(),
                (None, Some(_)) => format!("PostgreSQL schema {}", store_args.postgres.pg_schema),
                (None, None) => String::new(),
            };
            let name = set.name().to_owned();
            let statuses =
                with_store!(store_args, set, Access::Read, |store| local(&store, &types))?;
            json!({"schemaSet": name, "store": where_, "types": statuses})
        }
    };
    let text = if args.json {
        format!("{report}\n")
    } else {
        human(&report)
    };
    crate::check_cmd::emit(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Each type's TypeState from a store read directly: no process of this command runs a
/// migration, so `running` is false and there is no last error to tell.
fn local<B: Backend>(store: &Store<B>, types: &[String]) -> Result<Vec<Value>, CliError> {
    types
        .iter()
        .map(|t| type_status(store, t, false, None, true).map_err(store_err))
        .collect()
}

/// The report as text: a block per type.
fn human(report: &Value) -> String {
    let mut out = String::new();
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let n = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let _ = writeln!(
        out,
        "schema set {}, store {}",
        s(report, "schemaSet"),
        s(report, "store")
    );
    for t in report
        .get("types")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = writeln!(out, "\n{}", s(t, "type"));
        let _ = writeln!(
            out,
            "  stored        version {}, {}",
            n(t, "storageVersion"),
            s(t, "strategy")
        );
        let declared = t.get("declared").cloned().unwrap_or(Value::Null);
        let mut line = format!(
            "version {}, {}",
            n(&declared, "version"),
            s(&declared, "strategy")
        );
        let actions: Vec<String> = declared
            .get("actions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|a| s(a, "description"))
            .collect();
        match declared.get("problem").and_then(Value::as_str) {
            Some(problem) => {
                let _ = write!(
                    line,
                    "\n                cannot be reached as things are: {problem}"
                );
            }
            None if actions.is_empty() => line.push_str(" (as stored)"),
            None => {
                let _ = write!(
                    line,
                    "; at the server's next start or reload: {}",
                    actions.join("; ")
                );
            }
        }
        let _ = writeln!(out, "  declared      {line}");
        let migration = match t.get("migration").filter(|m| !m.is_null()) {
            None => "none in flight".to_owned(),
            Some(m) => {
                let (done, total) = (n(m, "done"), n(m, "total"));
                let pct = (done * 100).checked_div(total.max(done)).unwrap_or(0);
                let mut text = format!(
                    "{} from version {} to {}, {} {done}/{total} ({pct}%), {} quarantined",
                    if s(m, "kind") == "rollback" {
                        "rollback"
                    } else {
                        "migration"
                    },
                    n(m, "from"),
                    n(m, "to"),
                    s(m, "phase"),
                    n(m, "quarantined"),
                );
                if t.get("running").and_then(Value::as_bool) == Some(true) {
                    text.push_str(", running");
                } else if s(m, "kind") == "rollback" {
                    text.push_str(", not running here (resume: mutatis migrate --rollback)");
                } else {
                    text.push_str(&format!(
                        ", not running here (resume: mutatis migrate --to {})",
                        n(m, "to")
                    ));
                }
                text
            }
        };
        let _ = writeln!(out, "  migration     {migration}");
        if let Some(err) = t.get("lastError").and_then(Value::as_str) {
            let _ = writeln!(out, "  last error    {err}");
        }
        let backup = match t.get("backup").filter(|b| !b.is_null()) {
            None => "none".to_owned(),
            Some(b) => format!(
                "version {} (kept since feed sequence {}; --rollback goes back to it, --drop-backup frees it)",
                n(b, "version"),
                n(b, "switchedAt")
            ),
        };
        let _ = writeln!(out, "  backup        {backup}");
        let copies: Vec<String> = t
            .get("copies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .map(|v| v.to_string())
            .collect();
        if !copies.is_empty() {
            let filling = if t.get("filling").and_then(Value::as_bool) == Some(true) {
                " (being filled)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  copies        versions {}{filling}",
                copies.join(", ")
            );
        }
        let _ = writeln!(out, "  quarantined   {}", n(t, "quarantined"));
        if let Some(space) = t.get("space").filter(|v| !v.is_null()) {
            let part = |name: &str, v: Option<&Value>| {
                v.filter(|v| !v.is_null()).map(|v| {
                    format!(
                        "{name} {} records, {}",
                        n(v, "records"),
                        bytes(n(v, "bytes"))
                    )
                })
            };
            let mut parts: Vec<String> = [
                part("primary", space.get("primary")),
                part("backup", space.get("backup")),
                part("migration target", space.get("migration")),
            ]
            .into_iter()
            .flatten()
            .collect();
            if let Some(copies) = space.get("copies").and_then(Value::as_object) {
                for (v, c) in copies {
                    parts.extend(part(&format!("copy {v}"), Some(c)));
                }
            }
            let _ = writeln!(
                out,
                "  space         {} in all: {}",
                bytes(n(space, "totalBytes")),
                parts.join("; ")
            );
        }
    }
    out
}

/// A byte count as a person reads it.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
