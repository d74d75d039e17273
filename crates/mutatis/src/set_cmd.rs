//! The commands over a schema-set folder: `translate`, `init` (`check` is in `check_cmd`).

use std::path::Path;
use std::process::ExitCode;

use mutatis_lens::LensError;
use mutatis_schema::{SchemaSet, ValidationIssue};

use crate::cli::{Init, Translate};
use crate::error::CliError;
use crate::io::{Input, Output};

fn load(dir: &Path) -> Result<SchemaSet, CliError> {
    SchemaSet::load(dir).map_err(CliError::InvalidSet)
}

/// Where `translate` gets its schema set, and which input it reads.
fn translate_sources(args: &Translate) -> Result<(SchemaSet, Option<&Path>), CliError> {
    let input = args.input.as_deref();
    let Some(source) = &args.manifest else {
        let Some(dir) = &args.dir else {
            return Err(CliError::Usage(
                "give the schema-set folder (DIR) or --manifest FILE|URL".into(),
            ));
        };
        return Ok((load(dir)?, input));
    };
    // With --manifest there is no folder: the one positional argument is the input.
    let input = match (args.dir.as_deref(), input) {
        (Some(_), Some(_)) => {
            return Err(CliError::Usage(
                "give either a schema-set folder or --manifest, not both".into(),
            ))
        }
        (Some(p), None) if p.is_dir() => {
            return Err(CliError::Usage(format!(
                "{} is a folder: give either a schema-set folder or --manifest, not both",
                p.display()
            )))
        }
        (Some(p), None) => Some(p),
        (None, i) => i,
    };
    let timeout = std::time::Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "--timeout {}: expected a positive number of seconds",
                args.timeout
            ))
        })?;
    Ok((crate::check_cmd::load_manifest(source, timeout)?, input))
}

/// `mutatis translate (DIR | --manifest FILE|URL) --type T --from V --to W [FILE|-]`.
pub fn translate(args: &Translate) -> Result<ExitCode, CliError> {
    let (set, input) = translate_sources(args)?;
    let ty = args.r#type.as_str();
    let plan = set.plan(ty, args.from, args.to).map_err(CliError::Schema)?;
    let source = set.version(ty, args.from).map_err(CliError::Schema)?;
    let target = set.version(ty, args.to).map_err(CliError::Schema)?;
    let params = crate::params::build(args.params.reference_date.as_deref(), &args.params.params)?;
    let input = Input::open(input)?;
    let input_name = input.name.clone();
    let record = |line: usize, translation: bool, message: String| CliError::Record {
        input: input_name.clone(),
        line,
        message,
        translation,
    };
    let mut out = Output::stdout();
    let mut buf = Vec::with_capacity(4096);
    input.for_each_line(|bytes, line| {
        buf.clear();
        if args.no_validate {
            plan.translate_bytes(bytes, &params, &mut buf)
                .map_err(|e| {
                    record(
                        line,
                        !matches!(e, LensError::InvalidInput { .. }),
                        e.to_string(),
                    )
                })?;
        } else {
            let doc = mutatis_lens::json::from_slice(bytes)
                .map_err(|e| record(line, false, e.to_string()))?;
            source
                .validate(&doc)
                .map_err(|issues| record(line, true, invalid(ty, args.from, &issues)))?;
            let translated = plan
                .translate(&doc, &params)
                .map_err(|e| record(line, true, format!("{ty}@{}→{}: {e}", args.from, args.to)))?;
            target.validate(&translated).map_err(|issues| {
                record(
                    line,
                    true,
                    format!(
                        "the translation is not valid: {}",
                        invalid(ty, args.to, &issues)
                    ),
                )
            })?;
            // Serialising a Value into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut buf, &translated);
        }
        out.line(&buf)
    })?;
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}

fn invalid(ty: &str, version: u32, issues: &[ValidationIssue]) -> String {
    let details: Vec<String> = issues
        .iter()
        .map(|i| {
            let at = if i.pointer.is_empty() {
                "/"
            } else {
                i.pointer.as_str()
            };
            format!("at {at}: {}", i.message)
        })
        .collect();
    format!(
        "document is not a valid {ty}@{version}: {}",
        details.join("; ")
    )
}

const INIT_MUTATIS_YAML: &str = r#"# A mutatis schema set: the single source of truth for your app's data versions.
# Releases are listed oldest first; each maps a type to the version its apps speak.
name: my-app
releases:
  - {name: "1", types: {note: 1}, status: deprecated, sunset: 2030-01-01}
  - {name: "2", types: {note: 2}, status: current}
storage:
  # The version a node keeps notes in at rest, and how stored notes move to it.
  note: {version: 2, strategy: eager}
"#;

const INIT_TYPE_YAML: &str = r#"# One type: its first version's JSON Schema, then one lens per later version.
type: note
versions:
  1:
    schema:
      type: object
      properties:
        text: {type: string}
        pinned: {type: boolean}
      required: [text, pinned]
      additionalProperties: false
  2:
    # Each lens is declared once; mutatis derives both directions from it.
    lens:
      - rename: {source: text, destination: body}
      - add: {name: tags, type: array, items: {type: string}, default: []}
"#;

/// `mutatis init DIR`: a new schema set with one example type.
pub fn init(args: &Init) -> Result<ExitCode, CliError> {
    let dir = &args.dir;
    if dir.exists() {
        let non_empty = std::fs::read_dir(dir)
            .map_err(|error| CliError::Read {
                path: dir.clone(),
                error,
            })?
            .next()
            .is_some();
        if non_empty {
            return Err(CliError::Usage(format!(
                "{} already exists and is not empty; choose a new folder",
                dir.display()
            )));
        }
    }
    let types = dir.join("types");
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|error| CliError::Write {
            path: path.to_path_buf(),
            error,
        })
    };
    std::fs::create_dir_all(&types).map_err(|error| CliError::Write {
        path: types.clone(),
        error,
    })?;
    write(&dir.join("mutatis.yaml"), INIT_MUTATIS_YAML)?;
    write(&types.join("note.yaml"), INIT_TYPE_YAML)?;
    // What init writes must itself load: a broken template would be the first thing a user sees.
    load(dir)?;
    println!("created schema set in {}", dir.display());
    println!("  {}", dir.join("mutatis.yaml").display());
    println!("  {}", types.join("note.yaml").display());
    println!("next: mutatis check {}", dir.display());
    Ok(ExitCode::SUCCESS)
}
