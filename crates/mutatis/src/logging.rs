//! The logs of the long-running commands (`serve`, `replicate`): filtered by `RUST_LOG`, a
//! `tracing_subscriber` EnvFilter (a default level, levels per target, span filters), written
//! as text lines or JSON lines.

use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{Layer, Registry};

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (a time, the level, the target, the message and fields).
    #[default]
    Text,
    /// One JSON object a line, for a log collector.
    Json,
}

/// Logs to `writer` in `format`, filtered by `RUST_LOG`, or at `default_level` when it is
/// unset or not a filter (said on stderr: a typo must not silence the logs).
pub(crate) fn init<W>(format: LogFormat, default_level: LevelFilter, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::prelude::*;
    let filter = EnvFilter::builder()
        .with_default_directive(default_level.into())
        .from_env()
        .unwrap_or_else(|e| {
            eprintln!("warning: RUST_LOG is not a filter ({e}); logging at {default_level}");
            EnvFilter::new(default_level.to_string())
        });
    let lines = tracing_subscriber::fmt::layer().with_writer(writer);
    let layer: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => lines.with_filter(filter).boxed(),
        LogFormat::Json => lines.json().with_filter(filter).boxed(),
    };
    // A second initialisation (impossible in this binary) would only keep the first.
    let _ = tracing_subscriber::registry().with(layer).try_init();
}
