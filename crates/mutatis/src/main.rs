//! `mutatis`: the command line. A thin shell: every command parses its arguments, reads its
//! input, calls the library crates and prints. Exit codes: `error::exit` (0 success, 1 a
//! failed translation, a breaking change or a replication a node refused, 2 bad input or
//! usage, 3 cannot listen, 4 store unreachable or refused, 5 schema set invalid).

// `CliError` carries the library errors whole (a `LensError` is large) so that messages keep
// every detail; an error ends the run, so its size never matters on a hot path.
#![allow(clippy::result_large_err)]

mod check_cmd;
mod cli;
mod compat_cmd;
mod config;
mod error;
mod io;
mod lens_cmd;
mod logging;
mod migrate_cmd;
mod params;
mod releases_cmd;
mod remote;
mod replicate_cmd;
mod serve_cmd;
mod set_cmd;
mod status_cmd;
mod store_cmd;
mod token_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let argv = match config::with_config_file(std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(err) => return report(&err),
    };
    let args = cli::Cli::parse_from(argv);
    match cli::run(args) {
        Ok(code) => code,
        // A reader that closed the pipe (`| head`) has all it wants: stop quietly.
        Err(err) if err.is_broken_pipe() => ExitCode::SUCCESS,
        Err(err) => report(&err),
    }
}

/// Say what went wrong, with its causes, and exit with its code.
fn report(err: &error::CliError) -> ExitCode {
    eprintln!("error: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
    ExitCode::from(err.exit_code())
}
