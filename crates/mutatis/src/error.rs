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
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Record {
                translation: true, ..
            } => 1,
            _ => 2,
        }
    }
}
