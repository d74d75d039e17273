//! `mutatis`: the command line. A thin shell: every command parses its arguments, reads its
//! input, calls the library crates and prints. Exit codes: 0 success, 1 a failed translation,
//! a breaking change or a replication a node refused, 2 bad input or usage.

// `CliError` carries the library errors whole (a `LensError` is large) so that messages keep
// every detail; an error ends the run, so its size never matters on a hot path.
#![allow(clippy::result_large_err)]

mod check_cmd;
mod cli;
mod compat_cmd;
mod error;
mod io;
mod lens_cmd;
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
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        // A reader that closed the pipe (`| head`) has all it wants: stop quietly.
        Err(err) if err.is_broken_pipe() => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::from(err.exit_code())
        }
    }
}
