//! The command tree (clap derive) and dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::error::CliError;
pub use crate::logging::LogFormat;

/// mutatis keeps distributed software working while its data schema changes: every schema
/// change is one bidirectional lens, and every client reads and writes in its own version.
#[derive(Debug, Parser)]
#[command(name = "mutatis", version, about, long_about = None)]
pub struct Cli {
    /// Trust the CA certificates in this PEM file (besides the platform's roots) for every
    /// outgoing HTTPS call: replication peers and jobs, webhooks, `check --against`,
    /// `translate --manifest`, `--server`. For nodes behind a private CA.
    #[arg(long, global = true, value_name = "PEM", env = "MUTATIS_CA_CERT")]
    ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
    /// How `serve` and `replicate` write their logs (filtered by RUST_LOG, an
    /// EnvFilter: `warn,mutatis_server=debug`): text lines, or JSON lines.
    #[arg(long, global = true, value_enum, value_name = "FORMAT", env = "MUTATIS_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new schema set with one example type.
    Init(Init),
    /// Validate a schema set: every file, lens, schema and release; with --against, diff it
    /// against a deployed one (exit 0 compatible, 1 breaking, 2 error).
    Check(Check),
    /// Compare two JSON Schemas: backward, forward and full compatibility, and every change
    /// (exit 0 compatible in the required mode, 1 not, 2 error).
    Compat(Compat),
    /// Translate JSON-lines documents of one type between two versions.
    Translate(Translate),
    /// Bulk-load JSON lines of one type into a store, in any version.
    Import(Import),
    /// Dump the documents of one type from a store as JSON lines, in any version.
    Export(Export),
    /// Migrate a type's stored documents to another version, with progress, until the
    /// switch (a migration left in flight by an interrupted run is resumed; a type already
    /// in that version is left as it is); or roll back onto the kept backup, drop it, or
    /// abort the migration in flight.
    #[command(after_long_help = MIGRATE_HELP)]
    Migrate(Migrate),
    /// Show how each type is stored: its version and strategy, what mutatis.yaml declares
    /// and what reconciling would do, the migration in flight, the kept backup, copies,
    /// quarantined documents and space.
    #[command(after_long_help = STATUS_HELP)]
    Status(Status),
    /// Serve the schema set over HTTP to clients of every supported release, over a store.
    Serve(Serve),
    /// Replicate documents from one node to another over HTTP, translating between their
    /// schema versions; resumable (exit 0 done, 1 a node refused or stayed unreachable, 2
    /// usage).
    #[command(after_long_help = crate::replicate_cmd::AFTER_HELP)]
    Replicate(Replicate),
    /// Which releases apps still call, and which can be retired: per release its status,
    /// dates, share of requests over 7 and 30 days, last seen, distinct tokens and a verdict
    /// with its reason, from the usage a node records.
    #[command(after_long_help = crate::releases_cmd::AFTER_HELP)]
    Releases(Releases),
    /// The changelog of a schema set, release by release: per type what changed from the
    /// previous release in words, derived from the lenses, and whether it breaks old apps
    /// (by the JSON Schema compatibility checker and the lens loss analysis).
    Changelog(Changelog),
    /// Manage the server's bearer tokens offline, on the store (e.g. a lost admin token).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Work with a single lens file (mutatis's format or Cambria's).
    Lens {
        #[command(subcommand)]
        command: LensCommand,
    },
    /// Print a completion script for SHELL (bash, elvish, fish, powershell, zsh), e.g.
    /// `mutatis completions bash > /etc/bash_completion.d/mutatis`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Print the man page of mutatis (roff), or with --dir write one page per command into DIR
    /// (mutatis.1, mutatis-serve.1, …).
    Man {
        /// The folder to write the pages into (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once (only its hash is stored).
    Create(TokenArgs),
    /// List the tokens (names, roles, creation dates; never the secrets), as JSON lines.
    List(TokenArgs),
    /// Revoke the tokens with a name.
    Revoke(TokenArgs),
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The schema-set folder.
    pub dir: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
    /// The token's name (the principal access policies list); needed by create and revoke.
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// The token's role: reader, writer or admin.
    #[arg(long, value_name = "R", default_value = "reader")]
    pub role: String,
}

/// The end of `mutatis migrate --help`.
const MIGRATE_HELP: &str = "\
Every mode can be run again safely: --to V when the type is already stored in V (and nothing is
in flight) says so and exits 0, and a migration or rollback left in flight by an interrupted
run is resumed; --abort with nothing in flight and --drop-backup with no backup kept exit 0.
--to V where V is the kept backup's version rolls back onto it (as --rollback does; and unlike
--rollback, run again it does nothing more: after a rollback the backup holds the version
rolled back from, so a second --rollback would go forward again).

A migration that switches keeps the version it left as a backup, and the next migration waits
until it is rolled back onto (--rollback) or dropped (--drop-backup). `mutatis serve` brings
each type to the storage mutatis.yaml declares when it starts: migrate to the declared version,
or change `storage:` to keep another.

With --server URL the node does the work (POST /admin/migrations and the rollback, abort and
backup routes) and the command follows it with the same progress until it switches; the token
(an admin's) comes from MUTATIS_TOKEN, or --token.

Exit codes: 0 done (or nothing to do); 1 the migration stopped on a document it cannot
translate (rerun with --quarantine to set such documents aside); 2 usage, a store or server
that refused.";

/// The end of `mutatis translate --help`.
const TRANSLATE_HELP: &str = "\
Either a schema-set folder (mutatis translate DIR --type T --from V --to W [FILE|-]) or a
published manifest (mutatis translate --manifest FILE|URL --type T --from V --to W [FILE|-]):
a program that is not written in Rust can translate with what a node publishes, without the
folder. With --manifest the only positional argument is the input.

Exit codes: 0 every line translated; 1 a document that is not valid or cannot be translated;
2 usage, a folder, file, URL or manifest that cannot be read.";

/// The end of `mutatis status --help`.
const STATUS_HELP: &str = "\
--json prints one object: {\"schemaSet\", \"store\", \"types\": [TypeState]}, where TypeState
is the shape of the server's GET /admin/migrations (crates/mutatis-server/API.md) with its
`space`:
  type, storageVersion, strategy       how the type is stored now
  declared {version, strategy,         what mutatis.yaml declares, what reconciling it (at the
    actions: [{action, description,    server's start or reload) would do — actions resume,
      from?, to?, version?, added?,    migrate, rollback, setVersion, setStrategy, upgrade,
      removed?}],                      copies — and why it cannot be done, if so (problem)
    problem}
  migration                            null, or {kind, phase, from, to, done, total, quarantined}
  running, lastError                   whether a server process runs it, and its last error
  backup                               null, or {version, switchedAt}
  copies, filling                      the versions kept as multi copies; copies being filled
  quarantined                          documents the last migration set aside
  space                                {primary, backup, migration, copies: {V: ...}, totalBytes},
                                       each {records, bytes}

Reading a store directly never writes to it (a store file `mutatis serve` holds is read
through the server: --server URL, with an admin token in MUTATIS_TOKEN).";

#[derive(Debug, Args)]
pub struct Serve {
    /// The schema-set folder.
    pub dir: PathBuf,
    /// A TOML file of settings: its keys are the long names of these flags (`listen =
    /// "0.0.0.0:7878"`, `public-metrics = true`, `cors-origin = ["https://a.example"]`).
    /// The command line wins over the environment, which wins over the file.
    #[arg(long, value_name = "FILE", env = "MUTATIS_CONFIG")]
    pub config: Option<PathBuf>,
    /// The embedded store file (redb); default `.mutatis/<schema-set name>.redb` under the
    /// current directory.
    #[arg(
        long,
        value_name = "PATH",
        env = "MUTATIS_DATA",
        conflicts_with = "postgres"
    )]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub postgres: PostgresArgs,
    /// The most PostgreSQL connections this process holds at once (keep the sum over every
    /// process sharing the database under its max_connections).
    #[arg(long, value_name = "N", env = "MUTATIS_PG_POOL_SIZE",
          default_value_t = mutatis_store::DEFAULT_POOL_SIZE,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub pg_pool_size: u32,
    /// How long a request waits for a free PostgreSQL connection before it is answered 503
    /// `store-busy`, in milliseconds.
    #[arg(
        long,
        value_name = "MS",
        env = "MUTATIS_PG_POOL_WAIT_MS",
        default_value_t = 5000
    )]
    pub pg_pool_wait_ms: u64,
    /// How often a waiting changes feed looks for other processes' writes, in milliseconds.
    /// Default: 5000 on PostgreSQL, where their writes wake it at once (NOTIFY) and this is
    /// only the safety net; 500 on a database without NOTIFY.
    #[arg(long, value_name = "MS", env = "MUTATIS_FEED_POLL_MS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub feed_poll_ms: Option<u64>,
    /// The address to listen on (port 0: any free port, printed at start).
    #[arg(
        long,
        value_name = "ADDR",
        env = "MUTATIS_LISTEN",
        default_value = "127.0.0.1:7878"
    )]
    pub listen: String,
    /// Serve HTTPS with this certificate chain (PEM, the node's certificate first); needs
    /// --tls-key. Without both, plain HTTP.
    #[arg(
        long,
        value_name = "PEM",
        requires = "tls_key",
        env = "MUTATIS_TLS_CERT"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(
        long,
        value_name = "PEM",
        requires = "tls_cert",
        env = "MUTATIS_TLS_KEY"
    )]
    pub tls_key: Option<PathBuf>,
    /// The first admin token, instead of a generated one (used when the store has no admin
    /// yet). Prefer the environment variable: a command line is visible to every user of
    /// the machine.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MUTATIS_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// The largest request body accepted, in bytes.
    #[arg(long, value_name = "BYTES", env = "MUTATIS_BODY_LIMIT", default_value_t = mutatis_server::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,

    /// The largest `POST /replication/apply` body accepted, in bytes (a batch of documents
    /// with all their leaves).
    #[arg(long, value_name = "BYTES", env = "MUTATIS_REPLICATION_BODY_LIMIT", default_value_t = mutatis_server::DEFAULT_REPLICATION_BODY_LIMIT)]
    pub replication_body_limit: usize,
    /// The longest a request may take, in seconds (the changes feed has its own timeout);
    /// also how long a client may take to send a request's head, and keep an idle
    /// connection open.
    #[arg(
        long,
        value_name = "SECS",
        env = "MUTATIS_REQUEST_TIMEOUT",
        default_value_t = 30.0
    )]
    pub request_timeout: f64,
    /// The longest a request body may go without a byte arriving, in seconds (answered 408);
    /// shorter than --request-timeout.
    #[arg(
        long,
        value_name = "SECS",
        env = "MUTATIS_BODY_TIMEOUT",
        default_value_t = 10.0
    )]
    pub body_timeout: f64,
    /// Serve /metrics without a token.
    #[arg(long, env = "MUTATIS_PUBLIC_METRICS")]
    pub public_metrics: bool,
    /// Record usage per release, type and day in the store (what `mutatis releases` and
    /// GET /admin/releases judge retirement by): on, or off.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = ["on", "off"])]
    pub usage: String,
    /// Serve the operator's dashboard at /ui (its page is public; every figure it shows is
    /// read from the API with the admin token typed into it): on, or off.
    #[arg(long, value_name = "on|off", env = "MUTATIS_UI", default_value = "on", value_parser = ["on", "off"])]
    pub ui: String,
    /// Serve a store recorded under another schema set's name, and record this set's name
    /// instead (a store holds one application's documents; by default it is refused).
    #[arg(long)]
    pub force_set: bool,
    /// Let browser apps from ORIGIN (scheme://host[:port]) call the server, with credentials;
    /// repeatable. `*` alone lets any origin call, without credentials (an app still sends
    /// its token in Authorization). Without it, no CORS header is sent.
    #[arg(
        long = "cors-origin",
        value_name = "ORIGIN",
        env = "MUTATIS_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// How long a browser may cache a CORS preflight's answer, in seconds.
    #[arg(long, value_name = "SECS", requires = "cors_origins")]
    pub cors_max_age: Option<u64>,
    /// Serve the static files of DIR (a browser app; index.html for a folder) without a
    /// token, under --static-path.
    #[arg(long = "static", value_name = "DIR")]
    pub static_dir: Option<PathBuf>,
    /// The path the --static files are served under.
    #[arg(long, value_name = "PATH", default_value = mutatis_server::static_files::DEFAULT_STATIC_PATH, requires = "static_dir")]
    pub static_path: String,
    #[command(flatten)]
    pub params: ParamArgs,
}

#[derive(Debug, Args)]
pub struct Replicate {
    /// The source node's URL (http://HOST:PORT): its changes feed is read.
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// The target node's URL: the documents are written there, in its own versions.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// A reader token for the source. Prefer the MUTATIS_FROM_TOKEN environment variable:
    /// a command line is visible to every user of the machine.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MUTATIS_FROM_TOKEN",
        hide_env_values = true
    )]
    pub from_token: Option<String>,
    /// A writer token for the target. Prefer the MUTATIS_TO_TOKEN environment variable.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MUTATIS_TO_TOKEN",
        hide_env_values = true
    )]
    pub to_token: Option<String>,
    /// Only these types, comma-separated (default: all).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Only documents whose body (in the source's storage version) holds these values: a
    /// JSON object of JSON pointer → value, e.g. '{"/school": "Hogwarts"}'.
    #[arg(long, value_name = "JSON")]
    pub selector: Option<String>,
    /// Keep following the source's feed after catching up, a line per batch, until SIGINT
    /// or SIGTERM; an unreachable node is retried for ever.
    #[arg(long)]
    pub continuous: bool,
    /// What the target does with a document its version cannot hold without loss: refuse it
    /// (report it, store nothing), carry the fields it cannot hold beside it, or store it
    /// lossy (report what was dropped).
    #[arg(long, value_name = "POLICY", default_value = "carry", value_parser = ["refuse", "carry", "lossy"])]
    pub policy: String,
    /// Source feed entries per batch (each batch is one transaction on the target, with the
    /// checkpoint).
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub batch_size: u32,
    /// Print the result as JSON (see below for the fields).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
enum LensCommand {
    /// Apply a lens to JSON lines: documents by default, or JSON Schemas, or JSON Patches.
    Apply(LensApply),
}

/// Translation parameters shared by the commands that translate documents.
#[derive(Debug, Args)]
pub struct ParamArgs {
    /// The date lenses see as `referenceDate`/`referenceYear` (default: today, UTC).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub reference_date: Option<String>,
    /// A parameter for lens expressions, as NAME=VALUE (VALUE is JSON, or else a string).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LensApply {
    /// The lens file.
    pub lens: PathBuf,
    /// Apply the lens backward (new → old).
    #[arg(long)]
    pub reverse: bool,
    /// The input lines are JSON Schemas.
    #[arg(long, conflicts_with = "patch")]
    pub schema: bool,
    /// The input lines are JSON Patches (RFC 6902).
    #[arg(long)]
    pub patch: bool,
    /// The JSON Schema of the input: the lens is checked against it before anything runs,
    /// and patches use it to fill defaults into new objects. Without it, the lens is checked
    /// against each document's own shape (as Cambria does).
    #[arg(long, value_name = "S.json")]
    pub input_schema: Option<PathBuf>,
    #[command(flatten)]
    pub params: ParamArgs,
    /// JSON lines to read (`-` or nothing: standard input).
    pub input: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct Init {
    /// The folder to create (must be new or empty).
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct Check {
    /// The schema-set folder.
    pub dir: PathBuf,
    /// The deployed schema set to diff against: a node's URL (http://HOST[:PORT], whose
    /// `GET /schema` manifest is fetched), a manifest JSON file, or another schema-set folder.
    #[arg(long, value_name = "DIR|FILE|URL")]
    pub against: Option<String>,
    /// A policy file (YAML): `{default: MODE, types: {NAME: MODE}}`.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The required compatibility mode: MODE for every type, or TYPE=MODE for one; repeatable;
    /// wins over the policy file. Modes: NONE, BACKWARD (the default), FORWARD, FULL and their
    /// _TRANSITIVE forms.
    #[arg(long, value_name = "[TYPE=]MODE")]
    pub mode: Vec<String>,
    /// How long to wait for a URL, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub timeout: f64,
    /// The day release sunsets are judged by (default: today, UTC).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub reference_date: Option<String>,
    /// An admin token of the node --against names: with it, a change that stops serving a
    /// release is weighed against that release's usage (`GET /admin/releases`). Prefer the
    /// environment variable: a command line is visible to every user of the machine.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MUTATIS_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print JSON instead of text (shape: crates/mutatis/docs/check-json.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Compat {
    /// The old JSON Schema (a JSON file).
    pub old: PathBuf,
    /// The new JSON Schema (a JSON file).
    pub new: PathBuf,
    /// The mode the pair must satisfy for exit code 0 (NONE, BACKWARD, FORWARD, FULL; the
    /// _TRANSITIVE forms mean the same for one pair).
    #[arg(long, value_name = "MODE", default_value = "BACKWARD")]
    pub mode: String,
    /// Print JSON: {"backward", "forward", "full", "changes", ...}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(after_long_help = TRANSLATE_HELP)]
pub struct Translate {
    /// The schema-set folder (left out with --manifest).
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Translate with a published manifest instead of a schema-set folder: a JSON file (a
    /// node's `GET /schema`), or a node's URL (http://HOST[:PORT], whose /schema is fetched).
    #[arg(long, value_name = "FILE|URL")]
    pub manifest: Option<String>,
    /// How long to wait for a --manifest URL, in seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10.0,
        requires = "manifest"
    )]
    pub timeout: f64,
    /// The document type.
    #[arg(long = "type", value_name = "T")]
    pub r#type: String,
    /// The version the documents are in.
    #[arg(long, value_name = "V")]
    pub from: u32,
    /// The version to translate them to.
    #[arg(long, value_name = "W")]
    pub to: u32,
    /// Skip validating each document against its version's schema (and the result against
    /// the target's); untouched fields are then copied as raw bytes.
    #[arg(long)]
    pub no_validate: bool,
    #[command(flatten)]
    pub params: ParamArgs,
    /// JSON lines to read (`-` or nothing: standard input).
    pub input: Option<PathBuf>,
}

/// Which store a command works on, opened directly.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The embedded store file (redb). Commands that write create it where nothing is;
    /// export and status never do.
    #[arg(long, value_name = "PATH", conflicts_with = "postgres")]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub postgres: PostgresArgs,
    /// Use a store recorded under another schema set's name (a command that writes records
    /// this set's name instead; one that reads only reads). Without it such a store is
    /// refused: it holds another application's documents. With --server: do not compare
    /// this set's name with the server's.
    #[arg(long)]
    pub force_set: bool,
}

/// A PostgreSQL store: `--postgres URL`, or a bare `--postgres` and the URL in
/// `DATABASE_URL`, which keeps its password off the command line (visible to every user of
/// the machine).
#[derive(Debug, Args)]
pub struct PostgresArgs {
    /// A PostgreSQL store, shared by many mutatis processes (URL:
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DB). A bare --postgres takes the URL from the
    /// DATABASE_URL environment variable, which keeps its password off the command line.
    #[arg(long = "postgres", id = "postgres", value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub url: Option<String>,
    /// The URL a bare --postgres stands for.
    #[arg(
        long = "database-url",
        value_name = "URL",
        env = "DATABASE_URL",
        hide = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// The PostgreSQL schema the store's tables live in.
    #[arg(
        long,
        value_name = "NAME",
        env = "MUTATIS_PG_SCHEMA",
        default_value = "mutatis"
    )]
    pub pg_schema: String,
}

impl PostgresArgs {
    /// The PostgreSQL URL, when a PostgreSQL store is named.
    pub fn url(&self) -> Result<Option<&str>, CliError> {
        match self.url.as_deref() {
            None => Ok(None),
            Some("") => self
                .database_url
                .as_deref()
                .filter(|u| !u.trim().is_empty())
                .map(Some)
                .ok_or_else(|| {
                    CliError::Usage(
                        "--postgres without a URL takes it from DATABASE_URL, which is not set"
                            .into(),
                    )
                }),
            Some(url) => Ok(Some(url)),
        }
    }
}

/// A store opened directly, or a running node that holds it.
#[derive(Debug, Args)]
pub struct TargetArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// A running node (http://HOST:PORT) to go through instead of opening its store (a redb
    /// file is held by the server that serves it). The token, an admin's, comes from the
    /// MUTATIS_TOKEN environment variable.
    #[arg(long, value_name = "URL", conflicts_with_all = ["data", "postgres"])]
    pub server: Option<String>,
    /// The token for --server. Prefer the environment variable: a command line is visible to
    /// every user of the machine.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MUTATIS_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct Import {
    /// The schema-set folder.
    pub dir: PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
    /// The document type.
    #[arg(long = "type", value_name = "T")]
    pub r#type: String,
    /// The version the documents are written in (default: the current release's).
    #[arg(long, value_name = "V")]
    pub version: Option<u32>,
    /// Read bare documents and take each id from this field, instead of envelopes
    /// `{"id", "rev"?, "doc"}`.
    #[arg(long, value_name = "F")]
    pub id_field: Option<String>,
    #[command(flatten)]
    pub params: ParamArgs,
    /// JSON lines to read (`-` or nothing: standard input).
    pub input: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct Export {
    /// The schema-set folder.
    pub dir: PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
    /// The document type.
    #[arg(long = "type", value_name = "T")]
    pub r#type: String,
    /// The version to write the documents in (default: the current release's).
    #[arg(long, value_name = "V")]
    pub version: Option<u32>,
    #[command(flatten)]
    pub params: ParamArgs,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("mode")
        .required(true)
        .args(["to", "rollback", "drop_backup", "abort"])
))]
pub struct Migrate {
    /// The schema-set folder.
    pub dir: PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
    /// The document type.
    #[arg(long = "type", value_name = "T")]
    pub r#type: String,
    /// The storage version to migrate to.
    #[arg(long, value_name = "V")]
    pub to: Option<u32>,
    /// Roll back onto the backup the last migration kept (its changes since are carried
    /// back); a rollback left in flight is resumed.
    #[arg(long)]
    pub rollback: bool,
    /// Drop the backup the last migration kept (after this, no rollback), so that the next
    /// migration can start.
    #[arg(long)]
    pub drop_backup: bool,
    /// Abort the migration (or rollback) in flight: the live data stays as it was.
    #[arg(long)]
    pub abort: bool,
    /// Documents per batch (per transaction: the longest a writer waits).
    #[arg(long, default_value_t = 500)]
    pub batch_size: u32,
    /// Set aside documents that fail to translate (and report them) instead of stopping.
    #[arg(long)]
    pub quarantine: bool,
    #[command(flatten)]
    pub params: ParamArgs,
}

#[derive(Debug, Args)]
pub struct Status {
    /// The schema-set folder.
    pub dir: PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Only this type (default: every type of the set).
    #[arg(long = "type", value_name = "T")]
    pub r#type: Option<String>,
    /// Print JSON (the shape is below).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Changelog {
    /// The schema-set folder.
    pub dir: PathBuf,
    /// Print JSON (the shape of GET /changelog) instead of Markdown.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Releases {
    /// The schema-set folder.
    pub dir: PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the node's JSON (`GET /admin/releases`) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    mutatis_client::tls::install_crypto_provider();
    if let Some(ca) = &cli.ca_cert {
        mutatis_client::tls::add_trusted_ca_file(ca).map_err(|e| CliError::Usage(e.to_string()))?;
    }
    let log_format = cli.log_format;
    match cli.command {
        Command::Lens {
            command: LensCommand::Apply(args),
        } => crate::lens_cmd::apply(&args),
        Command::Init(args) => crate::set_cmd::init(&args),
        Command::Check(args) => crate::check_cmd::check(&args),
        Command::Compat(args) => crate::compat_cmd::compat(&args),
        Command::Translate(args) => crate::set_cmd::translate(&args),
        Command::Import(args) => crate::store_cmd::import(&args),
        Command::Export(args) => crate::store_cmd::export(&args),
        Command::Migrate(args) => crate::migrate_cmd::migrate(&args),
        Command::Status(args) => crate::status_cmd::status(&args),
        Command::Serve(args) => crate::serve_cmd::serve(&args, log_format),
        Command::Replicate(args) => crate::replicate_cmd::replicate(&args, log_format),
        Command::Completions { shell } => generate_completions(shell),
        Command::Man { dir } => generate_man(dir.as_deref()),
        Command::Releases(args) => crate::releases_cmd::releases(&args),
        Command::Changelog(args) => crate::releases_cmd::changelog(&args),
        Command::Token { command } => crate::token_cmd::token(&command),
    }
}

/// `mutatis completions SHELL`: the shell's completion script, from the clap definitions.
fn generate_completions(shell: clap_complete::Shell) -> Result<ExitCode, CliError> {
    use clap::CommandFactory as _;
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "mutatis", &mut out);
    write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// `mutatis man [--dir DIR]`: the roff man page of the command, or one page per command
/// (`mutatis.1`, `mutatis-serve.1`, `mutatis-token-create.1`, …) written into DIR.
fn generate_man(dir: Option<&std::path::Path>) -> Result<ExitCode, CliError> {
    use clap::CommandFactory as _;
    let cmd = Cli::command();
    let Some(dir) = dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut out)
            .map_err(stdout_error)?;
        write_stdout(&out)?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).map_err(|error| CliError::Write {
        path: dir.to_owned(),
        error,
    })?;
    clap_mangen::generate_to(cmd, dir).map_err(|error| CliError::Write {
        path: dir.to_owned(),
        error,
    })?;
    Ok(ExitCode::SUCCESS)
}

fn stdout_error(error: std::io::Error) -> CliError {
    CliError::Write {
        path: PathBuf::from("<stdout>"),
        error,
    }
}

fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}
