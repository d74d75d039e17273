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
    /// A node answered a request of `--server` with a problem (RFC 9457): shown as the
    /// request, the status and what the problem says.
    #[error("{request}: {}", problem_text(.problem))]
    Remote {
        /// `METHOD URL`.
        request: String,
        /// What the node answered.
        problem: Box<mutatis_client::Problem>,
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
            // A document that cannot be translated stopped the migration: the data's fault.
            CliError::Store(e)
                if matches!(**e, mutatis_store::StoreError::MigrationStopped { .. }) =>
            {
                1
            }
            // The same, said by a node.
            CliError::Remote { problem, .. }
                if matches!(
                    problem.type_uri.as_str(),
                    "urn:mutatis:problem:invalid-document" | "urn:mutatis:problem:untranslatable"
                ) =>
            {
                1
            }
            _ => 2,
        }
    }
}

/// A problem as a person reads it: the status and title, the detail, then what its
/// extensions add (the pointers of an invalid document, a limit…).
fn problem_text(p: &mutatis_client::Problem) -> String {
    let mut out = format!("{}", p.status);
    if let Some(title) = &p.title {
        out.push(' ');
        out.push_str(title);
    }
    if let Some(detail) = &p.detail {
        out.push_str(": ");
        out.push_str(detail);
    }
    if let Some(errors) = p
        .extensions
        .get("errors")
        .and_then(serde_json::Value::as_array)
    {
        for e in errors.iter().take(5) {
            let pointer = e
                .get("pointer")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            let message = e
                .get("message")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            out.push_str(&format!("\n  at {pointer:?}: {message}"));
        }
    }
    if let Some(name) = p.type_uri.strip_prefix("urn:mutatis:problem:") {
        out.push_str(&format!(" [{name}]"));
    }
    match p.status {
        401 => out.push_str(" (give an admin token in MUTATIS_TOKEN)"),
        403 => out.push_str(" (the token in MUTATIS_TOKEN needs the admin role)"),
        _ => {}
    }
    out
}
