//! The command line's errors: each says which file (and line) it is about.

use std::path::PathBuf;

use thiserror::Error;

/// The exit codes of `mutatis` (README, "Exit codes"). 0 is success; clap's own usage errors
/// exit 2 too.
pub mod exit {
    /// The work failed on its data: a document that cannot be translated, a breaking change
    /// (`check`, `compat`), a replication a node refused.
    pub const FAILURE: u8 = 1;
    /// Bad arguments, input or settings.
    pub const USAGE: u8 = 2;
    /// `serve` cannot listen on its address (in use, not this host's, not permitted).
    pub const LISTEN: u8 = 3;
    /// The store is unreachable (PostgreSQL down, a bad password), not a store, or refused:
    /// another schema set's, held by another process.
    pub const STORE: u8 = 4;
    /// The schema set does not load (`check` reports it as its own 2: it cannot check).
    pub const INVALID_SET: u8 = 5;
}

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
    /// A setting of `serve --config FILE` that is not a flag, or not a value of it.
    #[error("{}:{line}: {message}", .path.display())]
    Config {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// `mutatis serve` could not listen on its address (in use, not this host's, a port
    /// below 1024 without the right).
    #[error("cannot listen on {addr}: {error}{}", listen_hint(.error))]
    Listen { addr: String, error: std::io::Error },
    /// A store that cannot be used as it is: recorded under another schema set, or held by
    /// another process.
    #[error("{0}")]
    StoreRefused(String),
    /// The schema set a command works with does not load.
    #[error(transparent)]
    InvalidSet(mutatis_schema::SchemaError),
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
            CliError::Listen { .. } => exit::LISTEN,
            CliError::StoreRefused(_) => exit::STORE,
            CliError::Store(e)
                if matches!(
                    **e,
                    mutatis_store::StoreError::Backend { .. }
                        | mutatis_store::StoreError::NotAStore { .. }
                        | mutatis_store::StoreError::NoStore { .. }
                        | mutatis_store::StoreError::Corrupt { .. }
                ) =>
            {
                exit::STORE
            }
            CliError::InvalidSet(_) => exit::INVALID_SET,
            CliError::Record {
                translation: true, ..
            } => exit::FAILURE,
            // The arguments were fine; a node said no, or never answered.
            CliError::Replicate { .. } => exit::FAILURE,
            // A document that cannot be translated stopped the migration: the data's fault.
            CliError::Store(e)
                if matches!(**e, mutatis_store::StoreError::MigrationStopped { .. }) =>
            {
                exit::FAILURE
            }
            // The same, said by a node.
            CliError::Remote { problem, .. }
                if matches!(
                    problem.type_uri.as_str(),
                    "urn:mutatis:problem:invalid-document" | "urn:mutatis:problem:untranslatable"
                ) =>
            {
                exit::FAILURE
            }
            _ => exit::USAGE,
        }
    }
}

/// What a failed bind most often needs.
fn listen_hint(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another process listens there: stop it, or choose another --listen address)"
        }
        std::io::ErrorKind::AddrNotAvailable => " (not an address of this host)",
        std::io::ErrorKind::PermissionDenied => {
            " (a port below 1024 needs privileges: choose a higher port)"
        }
        _ => "",
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
