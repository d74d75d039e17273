//! `mutatis lens apply`.

use std::process::ExitCode;

use mutatis_lens::{at_line, Direction, Lens, LensError, Plan, Transforms};
use serde_json::Value;

use crate::cli::LensApply;
use crate::error::CliError;
use crate::io::{read_text, Input, Output};

pub fn apply(args: &LensApply) -> Result<ExitCode, CliError> {
    let lens_name = args.lens.display().to_string();
    let text = read_text(&args.lens)?;
    let lens_err = |error: LensError| CliError::Lens {
        file: lens_name.clone(),
        error,
    };
    let (value, lines) = mutatis_lens::yaml::parse_yaml(&text).map_err(lens_err)?;
    let lens = Lens::from_file_json(&value).map_err(|e| lens_err(at_line(e, &lines)))?;
    let direction = if args.reverse {
        Direction::Backward
    } else {
        Direction::Forward
    };
    // Op pointers in compile errors are relative to the op list; in a `{lens: [...]}` file
    // that list sits at `/lens`, which is what the source map knows.
    let ops_at = if value.is_array() { "" } else { "/lens" };
    let plan = Plan::compose([(ops_at, &lens, direction)], &Transforms::new())
        .map_err(|e| lens_err(at_line(e, &lines)))?;
    let input_schema = match &args.input_schema {
        Some(path) => {
            let name = path.display().to_string();
            let (schema, _) =
                mutatis_lens::yaml::parse_yaml(&read_text(path)?).map_err(|error| {
                    CliError::Lens {
                        file: name.clone(),
                        error,
                    }
                })?;
            // Check the lens fits the schema before touching any data.
            plan.translate_schema(&schema).map_err(lens_err)?;
            Some(schema)
        }
        None => None,
    };
    let params = crate::params::build(args.params.reference_date.as_deref(), &args.params.params)?;
    let input = Input::open(args.input.as_deref())?;
    let input_name = input.name.clone();
    let record_err = |line: usize, e: LensError| CliError::Record {
        input: input_name.clone(),
        line,
        translation: !matches!(e, LensError::InvalidInput { .. }),
        message: e.to_string(),
    };
    let parse = |bytes: &[u8], line: usize| -> Result<Value, CliError> {
        mutatis_lens::json::from_slice(bytes).map_err(|e| CliError::Record {
            input: input_name.clone(),
            line,
            translation: false,
            message: e.to_string(),
        })
    };
    // Without `--input-schema`, each document stands for its schema, as in Cambria: the lens
    // must fit the schema the document's shape implies, so a lens that renames a field the
    // document does not have (a typo) is refused rather than passing the document through.
    // Documents of one kind share their shape; the last shape that fitted is not checked again.
    let mut fitted: Option<Value> = None;
    let mut fits = |doc: &Value, line: usize| -> Result<(), CliError> {
        let shape = mutatis_lens::infer_schema(doc);
        if fitted.as_ref() != Some(&shape) {
            plan.translate_schema(&shape)
                .map_err(|e| CliError::Record {
                    input: input_name.clone(),
                    line,
                    // The lens and the document disagree: bad input, as with `--input-schema`.
                    translation: false,
                    message: format!(
                        "the lens {lens_name} does not fit the document: {}",
                        at_line(e, &lines)
                    ),
                })?;
            fitted = Some(shape);
        }
        Ok(())
    };
    let mut out = Output::stdout();
    let mut buf = Vec::with_capacity(4096);
    input.for_each_line(|bytes, line| {
        buf.clear();
        if args.schema {
            let v = plan
                .translate_schema(&parse(bytes, line)?)
                .map_err(|e| record_err(line, e))?;
            write_json(&mut buf, &v);
        } else if args.patch {
            let v = plan
                .translate_patch(&parse(bytes, line)?, input_schema.as_ref())
                .map_err(|e| record_err(line, e))?;
            write_json(&mut buf, &v);
        } else {
            if input_schema.is_none() {
                fits(&parse(bytes, line)?, line)?;
            }
            plan.translate_bytes(bytes, &params, &mut buf)
                .map_err(|e| record_err(line, e))?;
        }
        out.line(&buf)
    })?;
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}

fn write_json(buf: &mut Vec<u8>, v: &Value) {
    // Serialising a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(buf, v);
}
