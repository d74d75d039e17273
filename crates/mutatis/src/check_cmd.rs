//! `mutatis check DIR [--against DIR|FILE|URL] [--policy FILE] [--mode MODE] [--json]`:
//! validate a schema set and, with `--against`, diff it against a deployed one.
//!
//! Exit codes: 0 valid (and compatible), 1 breaking, 2 an error (the set does not load, the
//! deployed side cannot be read, a bad policy). The `--json` shape is documented in
//! `crates/mutatis/docs/check-json.md`.

mod fetch;

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use mutatis_schema::deploy::{self, DeployDiff, FieldChange, Policy, Verdict};
use mutatis_schema::{LifecycleWarning, SchemaSet};
use serde_json::{json, Value};

use crate::cli::Check;
use crate::error::CliError;

/// `mutatis check`.
pub fn check(args: &Check) -> Result<ExitCode, CliError> {
    let local = SchemaSet::load(&args.dir).map_err(CliError::Schema)?;
    let today = crate::params::today(args.reference_date.as_deref())?;
    let warnings = local.lifecycle_warnings(&today);
    let Some(against) = &args.against else {
        if args.policy.is_some() || !args.mode.is_empty() {
            return Err(CliError::Usage(
                "--policy and --mode apply to a deployment diff: give --against DIR|FILE|URL"
                    .into(),
            ));
        }
        return validate_only(args, &local, &warnings);
    };
    let policy = policy(args)?;
    let timeout = Duration::try_from_secs_f64(args.timeout).map_err(|_| {
        CliError::Usage(format!(
            "--timeout {}: expected a number of seconds, 0 or more",
            args.timeout
        ))
    })?;
    let deployed = load_against(against, timeout)?;
    let diff =
        deploy::diff(&local, &deployed, &policy).map_err(|e| CliError::Check(e.to_string()))?;
    let breaking = diff.is_breaking();
    // Releases this change stops serving whose apps still call the node: said on stderr, so
    // the diff's output (and its JSON) stays as it is.
    if is_url(against) {
        for line in crate::releases_cmd::live_retirements(
            &local,
            &deployed,
            against,
            args.token.as_deref(),
            timeout,
        ) {
            eprintln!("warning: {line}");
        }
    }
    let local_name = args.dir.display().to_string();
    if args.json {
        let mut out = serde_json::Map::new();
        out.insert(
            "local".into(),
            json!({"name": local.name(), "source": local_name}),
        );
        out.insert(
            "deployed".into(),
            json!({"name": deployed.name(), "source": against}),
        );
        if let Value::Object(rest) = diff.to_json() {
            out.extend(rest);
        }
        out.insert("warnings".into(), warnings_json(&warnings));
        emit_json(&Value::Object(out))?;
    } else {
        let style = Style::for_stdout();
        let mut text = render(&diff, &style, (&local_name, &local), (against, &deployed));
        text.push_str(&warnings_text(&warnings, &style));
        emit(&text)?;
    }
    // The process ends right after this: freeing two schema sets (thousands of compiled
    // validators for a large one) would only add to the run time, by a seventh on the
    // 200-type benchmark.
    std::mem::forget(local);
    std::mem::forget(deployed);
    Ok(if breaking {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The policy from `--policy FILE` and `--mode [TYPE=]MODE` (flags win over the file).
fn policy(args: &Check) -> Result<Policy, CliError> {
    let mut policy = match &args.policy {
        Some(path) => {
            let text = crate::io::read_text(path)?;
            Policy::from_yaml_str(&text)
                .map_err(|e| CliError::Check(format!("{}: {e}", path.display())))?
        }
        None => Policy::default(),
    };
    for m in &args.mode {
        let (type_name, name) = match m.split_once('=') {
            Some((t, n)) => (Some(t.trim()), n.trim()),
            None => (None, m.trim()),
        };
        let mode =
            deploy::parse_mode(name).map_err(|e| CliError::Usage(format!("--mode {m}: {e}")))?;
        match type_name {
            Some(t) => {
                policy.types.insert(t.to_owned(), mode);
            }
            None => policy.default = mode,
        }
    }
    Ok(policy)
}

/// The deployed schema set: a node's manifest (`http://…`), a manifest file or a folder.
fn load_against(against: &str, timeout: Duration) -> Result<SchemaSet, CliError> {
    if !is_url(against) && Path::new(against).is_dir() {
        // Errors from a folder already name its files.
        return SchemaSet::load(Path::new(against)).map_err(CliError::Schema);
    }
    load_manifest(against, timeout)
}

fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// A published manifest (`GET /schema`'s body) read back as a schema set: from a node's URL
/// (`http://HOST[:PORT]`, whose `/schema` is fetched, or a full URL) or a JSON file. Shared
/// by `check --against` and `translate --manifest`.
pub(crate) fn load_manifest(source: &str, timeout: Duration) -> Result<SchemaSet, CliError> {
    if is_url(source) {
        let body = fetch::get(source, timeout).map_err(|e| CliError::Fetch {
            url: source.to_owned(),
            reason: e.to_string(),
        })?;
        return manifest(source, &body);
    }
    let path = Path::new(source);
    let bytes = std::fs::read(path).map_err(|error| CliError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    manifest(source, &bytes)
}

fn manifest(source: &str, bytes: &[u8]) -> Result<SchemaSet, CliError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        CliError::Check(format!(
            "{source}:{}:{}: not a JSON manifest: {e}",
            e.line(),
            e.column()
        ))
    })?;
    SchemaSet::from_manifest(&value).map_err(|e| CliError::Against {
        origin: source.to_owned(),
        error: e,
    })
}

/// The lifecycle warnings as `--json` lists them.
fn warnings_json(warnings: &[LifecycleWarning]) -> Value {
    Value::Array(warnings.iter().map(LifecycleWarning::to_json).collect())
}

/// The lifecycle warnings as text, one per line (nothing when there are none).
fn warnings_text(warnings: &[LifecycleWarning], style: &Style) -> String {
    let mut out = String::new();
    for w in warnings {
        let _ = writeln!(out, "{} {}", style.warn("warning:"), w.message);
    }
    out
}

/// `mutatis check DIR [--json]` without `--against`: load and validate one schema set.
fn validate_only(
    args: &Check,
    set: &SchemaSet,
    warnings: &[LifecycleWarning],
) -> Result<ExitCode, CliError> {
    if args.json {
        let mut out = summary(set);
        out["warnings"] = warnings_json(warnings);
        emit_json(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = format!(
        "{}: schema set `{}` is valid\n",
        args.dir.display(),
        set.name()
    );
    for t in set.types() {
        let versions: Vec<String> = t.versions().map(|v| v.version().to_string()).collect();
        let _ = writeln!(out, "  type {}: versions {}", t.name(), versions.join(", "));
    }
    for r in set.releases() {
        let types: Vec<String> = r.types.iter().map(|(t, v)| format!("{t}@{v}")).collect();
        let sunset = r
            .sunset
            .as_deref()
            .map(|s| format!(", sunset {s}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  release {}: {} ({}{sunset})",
            r.name,
            types.join(", "),
            r.status.as_str()
        );
    }
    out.push_str(&warnings_text(warnings, &Style::for_stdout()));
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Write `text` to standard output. A closed pipe (`mutatis check … | head`) is an error
/// like any other write failure, never a panic.
pub(crate) fn emit(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|error| CliError::Write {
            path: "<stdout>".into(),
            error,
        })
}

/// Write `value` as pretty JSON and a newline.
pub(crate) fn emit_json(value: &Value) -> Result<(), CliError> {
    // Serialising a `Value` cannot fail (its keys are strings).
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    emit(&text)
}

fn summary(set: &SchemaSet) -> Value {
    json!({
        "valid": true,
        "name": set.name(),
        "types": set.types().map(|t| json!({
            "name": t.name(),
            "versions": t.versions().map(|v| v.version()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "releases": set.releases().iter().map(|r| json!({
            "name": r.name,
            "status": r.status.as_str(),
            "sunset": r.sunset,
            "types": r.types,
        })).collect::<Vec<_>>(),
    })
}

// ------------------------------------------------------------------------------------- text

/// ANSI colours, on only when standard output is a terminal and `NO_COLOR` is unset.
pub(crate) struct Style {
    on: bool,
}

impl Style {
    pub(crate) fn for_stdout() -> Style {
        Style {
            on: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub(crate) fn good(&self, t: &str) -> String {
        self.paint("32", t)
    }
    pub(crate) fn bad(&self, t: &str) -> String {
        self.paint("1;31", t)
    }
    pub(crate) fn warn(&self, t: &str) -> String {
        self.paint("33", t)
    }
    pub(crate) fn info(&self, t: &str) -> String {
        self.paint("36", t)
    }
    pub(crate) fn dim(&self, t: &str) -> String {
        self.paint("2", t)
    }
    pub(crate) fn bold(&self, t: &str) -> String {
        self.paint("1", t)
    }
}

fn verdict_word(v: &Verdict, s: &Style) -> String {
    match v {
        Verdict::Supported => s.good("supported"),
        Verdict::IncorrectlySupported(_) => s.bad("incorrectly supported"),
        Verdict::Unsupported(_) => s.warn("unsupported"),
        Verdict::New => s.info("new"),
    }
}

/// A value at `pointer` in `schema`, as short one-line JSON.
fn at_pointer(schema: &Value, pointer: &str) -> String {
    match schema.pointer(pointer) {
        None => "(absent)".into(),
        Some(v) => {
            let text = v.to_string();
            if text.chars().count() > 60 {
                let cut: String = text.chars().take(57).collect();
                format!("{cut}...")
            } else {
                text
            }
        }
    }
}

fn change_line(c: &FieldChange, s: &Style) -> String {
    let flag = if c.breaking {
        s.bad("breaks old clients")
    } else if c.breaks_backward || c.breaks_forward {
        let which = match (c.breaks_backward, c.breaks_forward) {
            (true, true) => "backward and forward",
            (true, false) => "backward",
            _ => "forward",
        };
        s.warn(&format!("not {which} compatible (allowed by the mode)"))
    } else {
        s.good("compatible")
    };
    format!("{}  {flag}", c.describe())
}

fn mismatch_lines(m: &deploy::Mismatch, s: &Style, indent: &str, out: &mut String) {
    let width = m.differences.iter().map(|p| p.len()).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "{indent}{}",
        s.dim(&format!(
            "{:width$}  expected (local)  |  actual (deployed)",
            "pointer"
        ))
    );
    for p in &m.differences {
        let _ = writeln!(
            out,
            "{indent}{p:width$}  {}  |  {}",
            at_pointer(&m.expected, p),
            at_pointer(&m.actual, p)
        );
    }
    changes_lines(&m.changes, &m.result, s, indent, out);
}

/// Field changes, then the checker's changes that no field change explains.
fn changes_lines(
    changes: &[FieldChange],
    result: &mutatis_schema::compat::Compatibility,
    s: &Style,
    indent: &str,
    out: &mut String,
) {
    for c in changes {
        let _ = writeln!(out, "{indent}{}", change_line(c, s));
    }
    for c in deploy::unexplained(changes, result) {
        let breaks = match (c.breaks_backward, c.breaks_forward) {
            (true, true) => s.bad("breaks backward and forward"),
            (true, false) => s.bad("breaks backward"),
            (false, true) => s.warn("breaks forward"),
            (false, false) => s.good("compatible"),
        };
        let at = if c.pointer.is_empty() {
            "/"
        } else {
            c.pointer.as_str()
        };
        let _ = writeln!(out, "{indent}{} at {at}: {}  {breaks}", c.kind, c.detail);
    }
}

/// The human report of a diff.
fn render(
    diff: &DeployDiff,
    s: &Style,
    (local_source, local): (&str, &SchemaSet),
    (deployed_source, deployed): (&str, &SchemaSet),
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {local_source} ({}) against {deployed_source} ({})",
        s.bold("checking"),
        local.name(),
        deployed.name()
    );
    let _ = writeln!(out, "\n{}", s.bold("releases"));
    for r in &diff.releases {
        let deployed_status = r.deployed_status.map_or_else(
            || "not deployed".to_owned(),
            |d| format!("{} deployed", d.as_str()),
        );
        let _ = writeln!(
            out,
            "  {} {} {}",
            s.bold(&r.name),
            r.status.as_str(),
            s.dim(&format!("({deployed_status})"))
        );
        for t in &r.types {
            let _ = write!(
                out,
                "    {}@{}  {}",
                t.type_name,
                t.version,
                verdict_word(&t.verdict, s)
            );
            match &t.verdict {
                Verdict::Unsupported(reason) => {
                    let _ = writeln!(out, ": {reason}");
                }
                Verdict::IncorrectlySupported(m) if m.deployed_version == t.version => {
                    let _ = writeln!(
                        out,
                        ": the deployed {}@{} has another schema (see the type below)",
                        t.type_name, t.version
                    );
                }
                Verdict::IncorrectlySupported(m) => {
                    let _ = writeln!(
                        out,
                        ": the deployed release speaks {}@{}",
                        t.type_name, m.deployed_version
                    );
                    mismatch_lines(m, s, "      ", &mut out);
                }
                _ => out.push('\n'),
            }
        }
        for (t, v) in &r.dropped {
            let _ = writeln!(
                out,
                "    {t}@{v}  {}: the deployed release serves it, the local one no longer includes {t}",
                s.warn("dropped")
            );
        }
    }
    if !diff.retired.is_empty() {
        let _ = writeln!(out, "\n{}", s.bold("retired releases"));
        for r in &diff.retired {
            let now = r.status.map_or("removed", |st| st.as_str());
            let verdict = if r.breaking {
                s.bad("breaks its clients: deprecate it first")
            } else {
                s.good("deprecated first: fine")
            };
            let _ = writeln!(
                out,
                "  {}: {} on the deployed node, {now} locally  {verdict}",
                r.name,
                r.deployed_status.as_str()
            );
        }
    }
    let _ = writeln!(out, "\n{}", s.bold("types"));
    for t in &diff.types {
        let _ = writeln!(
            out,
            "  {} {}  deployed {}  local {}",
            s.bold(&t.name),
            s.dim(&format!("(mode {})", t.mode.as_str())),
            versions(&t.deployed_versions),
            versions(&t.local_versions)
        );
        for v in &t.versions {
            if let Some(l) = &v.lens_change {
                let from = |f: Option<u32>| f.map_or_else(|| "-".to_owned(), |f| f.to_string());
                let _ = writeln!(
                    out,
                    "    {}@{}  {}: nodes would translate it differently",
                    t.name,
                    v.version,
                    s.bad("lens changed")
                );
                let _ = writeln!(
                    out,
                    "      expected (local):    from {} {}",
                    from(l.expected_from),
                    l.expected
                );
                let _ = writeln!(
                    out,
                    "      actual (deployed):   from {} {}",
                    from(l.actual_from),
                    l.actual
                );
            }
            match &v.verdict {
                Verdict::Supported => {}
                Verdict::IncorrectlySupported(m) => {
                    let _ = writeln!(
                        out,
                        "    {}@{}  {}: changed in place",
                        t.name,
                        v.version,
                        verdict_word(&v.verdict, s)
                    );
                    mismatch_lines(m, s, "      ", &mut out);
                }
                Verdict::Unsupported(reason) => {
                    let _ = writeln!(
                        out,
                        "    {}@{}  {}: {reason}",
                        t.name,
                        v.version,
                        verdict_word(&v.verdict, s)
                    );
                }
                Verdict::New => {
                    let _ = writeln!(
                        out,
                        "    {}@{}  {}",
                        t.name,
                        v.version,
                        verdict_word(&v.verdict, s)
                    );
                }
            }
        }
        if !t.removed_versions.is_empty() {
            let _ = writeln!(
                out,
                "    {}",
                s.warn(&format!(
                    "deployed versions no longer declared: {}",
                    versions(&t.removed_versions)
                ))
            );
        }
        for c in &t.checks {
            let verdict = if c.compatible {
                s.good(&format!("{} compatible", t.mode.as_str()))
            } else {
                s.bad(&format!("not {} compatible", t.mode.as_str()))
            };
            let _ = writeln!(
                out,
                "    {}@{} → {}@{}  {verdict}  {}",
                t.name,
                c.from,
                t.name,
                c.to,
                s.dim(&format!(
                    "(backward {}, forward {}, full {})",
                    yes_no(c.result.backward),
                    yes_no(c.result.forward),
                    yes_no(c.result.full)
                ))
            );
            changes_lines(&c.changes, &c.result, s, "      ", &mut out);
            let unknown = deploy::unknown_keywords(&c.result);
            if !unknown.is_empty() {
                let _ = writeln!(
                    out,
                    "      {}",
                    s.warn(&format!(
                        "keywords the checker does not know (judged conservatively): {}",
                        unknown.join(", ")
                    ))
                );
            }
        }
    }
    if !diff.removed_types.is_empty() {
        let _ = writeln!(
            out,
            "  {}",
            s.warn(&format!(
                "deployed types the local set no longer declares: {}",
                diff.removed_types.join(", ")
            ))
        );
    }
    let problems = diff.problems();
    out.push('\n');
    if problems.is_empty() {
        let _ = writeln!(
            out,
            "{}: nothing the deployed node serves breaks",
            s.good("compatible")
        );
    } else {
        let n = problems.len();
        let _ = writeln!(
            out,
            "{}: {n} problem{}",
            s.bad("BREAKING"),
            if n == 1 { "" } else { "s" }
        );
        for p in problems {
            let _ = writeln!(out, "  - {p}");
        }
    }
    out
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn versions(v: &[u32]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    let parts: Vec<String> = v.iter().map(u32::to_string).collect();
    parts.join(", ")
}
