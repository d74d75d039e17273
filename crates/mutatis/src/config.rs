//! `mutatis serve --config FILE`: a TOML file of settings whose keys are the long names of
//! `serve`'s flags (`listen = "0.0.0.0:7878"`, `public-metrics = true`,
//! `cors-origin = ["https://a.example"]`).
//!
//! The keys and values are checked against the clap definition of `serve` itself, and each
//! setting becomes the `--name=value` argument it stands for, so a flag added to `serve` is a
//! key of the file with no code here. Settings are added only for flags the command line and
//! the environment left unset: the command line wins over the environment, which wins over
//! the file, which wins over the defaults.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory as _};
use toml::de::{DeTable, DeValue};

use crate::cli::Cli;
use crate::error::CliError;

/// Flags that are no settings: the file itself, and clap's own.
const NOT_SETTINGS: [&str; 3] = ["config", "help", "version"];

/// The arguments `argv` stands for, with the settings of the config file of `serve` (if it
/// names one) appended. Arguments clap refuses are returned as they are, for clap to report.
pub fn with_config_file(mut argv: Vec<OsString>) -> Result<Vec<OsString>, CliError> {
    let cli = Cli::command();
    let Ok(matches) = cli.clone().try_get_matches_from(&argv) else {
        return Ok(argv);
    };
    let Some(("serve", given)) = matches.subcommand() else {
        return Ok(argv);
    };
    let Some(path) = given.get_one::<std::path::PathBuf>("config") else {
        return Ok(argv);
    };
    let serve = cli
        .find_subcommand("serve")
        .expect("the command tree has serve");
    let text = std::fs::read_to_string(path).map_err(|error| CliError::Read {
        path: path.clone(),
        error,
    })?;
    argv.extend(settings(path, &text, serve, given)?);
    Ok(argv)
}

/// The `--name=value` arguments of the file's settings that `given` left unset.
fn settings(
    path: &Path,
    text: &str,
    serve: &Command,
    given: &ArgMatches,
) -> Result<Vec<OsString>, CliError> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let table = DeTable::parse(text).map_err(|e| CliError::Config {
        path: path.to_owned(),
        line: e.span().map_or(1, |s| line_of(s.start)),
        message: e.message().trim().to_owned(),
    })?;
    let mut args = Vec::new();
    for (key, value) in table.get_ref() {
        let name: &str = key.get_ref();
        let fail = |message: String| CliError::Config {
            path: path.to_owned(),
            line: line_of(key.span().start),
            message,
        };
        let arg = setting(serve, name).ok_or_else(|| {
            fail(format!(
                "unknown setting {name:?}; the settings are: {}",
                setting_names(serve).join(", ")
            ))
        })?;
        let values = scalars(value.get_ref())
            .ok_or_else(|| fail(format!("{name}: expected a string, number or boolean")))?;
        if values.len() != 1 && !matches!(arg.get_action(), ArgAction::Append) {
            return Err(fail(format!("{name}: expected one value, not a list")));
        }
        // Checked whether or not it is used: a bad file is refused whatever overrides it.
        for v in &values {
            check_value(arg, v).map_err(|why| fail(format!("{name} = {v:?}: {why}")))?;
        }
        let overridden = matches!(
            given.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if overridden {
            continue;
        }
        if matches!(arg.get_action(), ArgAction::SetTrue) {
            if values == ["true"] {
                args.push(OsString::from(format!("--{name}")));
            }
            continue;
        }
        for v in values {
            args.push(OsString::from(format!("--{name}={v}")));
        }
    }
    Ok(args)
}

/// The flag of `serve` a key names: its long name.
fn setting<'c>(serve: &'c Command, name: &str) -> Option<&'c Arg> {
    serve
        .get_arguments()
        .filter(|a| !NOT_SETTINGS.contains(&a.get_id().as_str()))
        .find(|a| a.get_long() == Some(name))
}

/// Every key the file may have, for the message of an unknown one.
fn setting_names(serve: &Command) -> Vec<&str> {
    serve
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !NOT_SETTINGS.contains(&a.get_id().as_str()))
        .filter_map(Arg::get_long)
        .collect()
}

/// A value as the text of its arguments: a scalar is one, an array of scalars each of its
/// items; a table or date is none.
fn scalars(value: &DeValue<'_>) -> Option<Vec<String>> {
    Some(match value {
        DeValue::String(s) => vec![s.to_string()],
        DeValue::Integer(i) => vec![i64::from_str_radix(i.as_str(), i.radix()).ok()?.to_string()],
        DeValue::Float(f) => vec![f.as_str().to_owned()],
        DeValue::Boolean(b) => vec![b.to_string()],
        DeValue::Array(items) => {
            let mut all = Vec::new();
            for item in items {
                match item.get_ref() {
                    DeValue::Array(_) | DeValue::Table(_) => return None,
                    v => all.extend(scalars(v)?),
                }
            }
            all
        }
        DeValue::Datetime(_) | DeValue::Table(_) => return None,
    })
}

/// Whether `value` is one the flag takes, by the flag's own value parser; a switch takes a
/// boolean.
fn check_value(arg: &Arg, value: &str) -> Result<(), String> {
    if matches!(arg.get_action(), ArgAction::SetTrue) {
        return match value {
            "true" | "false" => Ok(()),
            _ => Err("expected true or false".into()),
        };
    }
    // The flag's value alone, by its parser (its relations to other flags left out), in a
    // command of its own.
    let probe = Arg::new(arg.get_id().clone())
        .action(ArgAction::Set)
        .allow_hyphen_values(true)
        .value_parser(arg.get_value_parser().clone());
    Command::new("serve")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from([OsStr::new(value)])
        .map(drop)
        .map_err(|e| {
            // clap's message is a whole report ("error: invalid value … For more
            // information, try '--help'"); its first line says what is wrong.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let first = first.trim_start_matches("error: ");
            // It names the probe (" for '[body_limit]'"); the caller names the setting.
            match (first.find(" for '"), first.find("': ")) {
                (Some(a), Some(b)) if a < b => format!("{}{}", &first[..a], &first[b + 1..]),
                _ => first.to_owned(),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve() -> Command {
        let mut cli = Cli::command();
        cli.build();
        cli.find_subcommand("serve").unwrap().clone()
    }

    /// Every flag of `serve` is a setting of the file: it has a long name, which `setting`
    /// finds. A flag added with only a short name, or an id the file cannot name, fails here.
    #[test]
    fn every_flag_of_serve_is_a_setting() {
        let serve = serve();
        let mut count = 0;
        for arg in serve.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_positional() || NOT_SETTINGS.contains(&id) || arg.is_global_set() {
                continue;
            }
            let long = arg
                .get_long()
                .unwrap_or_else(|| panic!("{id} has no long name"));
            assert!(setting(&serve, long).is_some(), "{long} is no setting");
            count += 1;
        }
        assert!(count >= 15, "only {count} settings");
    }

    #[test]
    fn values_are_checked_by_the_flags_parsers() {
        let serve = serve();
        let arg = |n| setting(&serve, n).unwrap();
        assert!(check_value(arg("body-limit"), "1024").is_ok());
        let why = check_value(arg("body-limit"), "lots").unwrap_err();
        assert!(why.contains("lots"), "{why}");
        assert!(check_value(arg("public-metrics"), "yes").is_err());
    }
}
