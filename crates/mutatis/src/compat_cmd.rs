//! `mutatis compat OLD.json NEW.json [--mode MODE] [--json]`: JSON Schema compatibility of a
//! pair, with instance-set semantics (`mutatis_schema::compat`).
//!
//! Exit codes: 0 the pair satisfies `--mode` (default `BACKWARD`: a reader on NEW accepts
//! everything valid under OLD), 1 it does not, 2 an error (a file that is not JSON, a schema
//! that is not valid JSON Schema, an unresolvable `$ref`: each names the file and the JSON
//! pointer). With `--json` the output is `Compatibility::to_json` plus `mode` and
//! `compatible`: `{"backward", "forward", "full", "changes": [...], "unknown_keywords": [...],
//! "mode", "compatible"}`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use mutatis_schema::compat::{self, CompatMode, SchemaSide};
use serde_json::{json, Value};

use crate::check_cmd::{emit, emit_json, Style};
use crate::cli::Compat;
use crate::error::CliError;

/// `mutatis compat`.
pub fn compat(args: &Compat) -> Result<ExitCode, CliError> {
    let mode: CompatMode = args
        .mode
        .parse()
        .map_err(|e| CliError::Usage(format!("--mode: {e}")))?;
    let old = read_schema(&args.old)?;
    let new = read_schema(&args.new)?;
    let result = compat::check(&old, &new).map_err(|e| {
        // The checker names the side; the user knows files.
        let file = match e.side() {
            Some(SchemaSide::New) => &args.new,
            _ => &args.old,
        };
        CliError::Check(format!("{}: {e}", file.display()))
    })?;
    let compatible = mode.accepts(&result);
    if args.json {
        let mut out = result.to_json();
        if let Value::Object(m) = &mut out {
            m.insert("mode".into(), json!(mode.as_str()));
            m.insert("compatible".into(), json!(compatible));
        }
        emit_json(&out)?;
    } else {
        emit(&render(
            args,
            &result,
            mode,
            compatible,
            &Style::for_stdout(),
        ))?;
    }
    Ok(if compatible {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn read_schema(path: &Path) -> Result<Value, CliError> {
    let text = crate::io::read_text(path)?;
    serde_json::from_str(&text).map_err(|e| {
        CliError::Check(format!(
            "{}:{}:{}: not JSON: {e}",
            path.display(),
            e.line(),
            e.column()
        ))
    })
}

fn render(
    args: &Compat,
    c: &compat::Compatibility,
    mode: CompatMode,
    compatible: bool,
    s: &Style,
) -> String {
    let (old, new) = (args.old.display(), args.new.display());
    let yes = |b: bool| if b { s.good("yes") } else { s.bad("no") };
    let mut out = String::new();
    let _ = writeln!(out, "{} {old} → {new}", s.bold("compat"));
    let _ = writeln!(
        out,
        "  backward  {}  {}",
        yes(c.backward),
        s.dim(&format!(
            "(a reader on {new} accepts everything valid under {old})"
        ))
    );
    let _ = writeln!(
        out,
        "  forward   {}  {}",
        yes(c.forward),
        s.dim(&format!(
            "(a reader on {old} accepts everything valid under {new})"
        ))
    );
    let _ = writeln!(out, "  full      {}", yes(c.full));
    if !c.changes.is_empty() {
        let _ = writeln!(out, "{}", s.bold("changes"));
        for ch in &c.changes {
            let breaks = match (ch.breaks_backward, ch.breaks_forward) {
                (true, true) => s.bad("breaks backward and forward"),
                (true, false) => s.bad("breaks backward"),
                (false, true) => s.warn("breaks forward"),
                (false, false) => s.good("compatible"),
            };
            let at = if ch.pointer.is_empty() {
                "/"
            } else {
                ch.pointer.as_str()
            };
            let _ = writeln!(out, "  {} {at}  {breaks}: {}", ch.kind, ch.detail);
        }
    }
    if !c.unknown_keywords.is_empty() {
        let list: Vec<String> = c
            .unknown_keywords
            .iter()
            .map(|u| {
                format!(
                    "{} (at {} in {})",
                    u.keyword,
                    u.pointer,
                    if u.side == compat::Role::Old {
                        &args.old
                    } else {
                        &args.new
                    }
                    .display()
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            s.warn(&format!(
                "keywords the checker does not know (judged conservatively): {}",
                list.join(", ")
            ))
        );
    }
    let verdict = if compatible {
        s.good(&format!("compatible in {} mode", mode.as_str()))
    } else {
        s.bad(&format!("not compatible in {} mode", mode.as_str()))
    };
    let _ = writeln!(out, "{verdict}");
    out
}
