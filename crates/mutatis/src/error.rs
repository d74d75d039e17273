//! The command line's errors: each says which file (and line) it is about.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CliError {
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{file}: {error}")]
    Lens {
        file: String,
        error: mutatis_lens::LensError,
    },
    /// A record of a JSON-lines input that failed (line is 1-based).
    #[error("{input}:{line}: {message}")]
    Record {
        input: String,
        line: usize,
        message: String,
        /// Whether the failure is in the data (exit 1) rather than its syntax (exit 2).
        translation: bool,
    },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Schema(mutatis_schema::SchemaError),
    #[error(transparent)]
    Store(Box<mutatis_store::StoreError>),
    /// The server could not start or stopped with an error (`mutatis serve`).
    #[error(transparent)]
    Serve(Box<mutatis_server::ServerError>),
    /// The deployed schema set of `check --against` (a folder, file or URL) does not load.
    #[error("{origin}: {error}")]
    Against {
        origin: String,
        error: mutatis_schema::SchemaError,
    },
    /// A URL that could not be fetched (unreachable, timed out, not a 200).
    #[error("cannot fetch {url}: {reason}")]
    Fetch { url: String, reason: String },
    /// A replication that could not finish (`mutatis replicate`): a node refused a request,
    /// or stayed unreachable past the retries. `hint` says what to try, when known.
    #[error("replication from {from} to {to} failed: {reason}{hint}")]
    Replicate {
        from: String,
        to: String,
        reason: String,
        hint: String,
    },
    /// A check that cannot be made: a bad policy, a schema the checker cannot read (the message
    /// names the file and the JSON pointer).
    #[error("{0}")]
    Check(String),
}

impl CliError {
    /// Whether this is a write to a pipe whose reader has gone away.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Write { error, .. } if error.kind() == std::io::ErrorKind::BrokenPipe)
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Record {
                translation: true, ..
            } => 1,
            // The arguments were fine; a node said no, or never answered.
            CliError::Replicate { .. } => 1,
            _ => 2,
        }
    }
}
