//! `mutatis serve DIR`: the HTTP server (`mutatis-server`) over a redb file or a PostgreSQL
//! store, until SIGINT or SIGTERM.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mutatis_schema::SchemaSet;
use mutatis_server::cors::CorsConfig;
use mutatis_server::static_files::StaticFiles;
use mutatis_server::tls::TlsAcceptor;
use mutatis_server::{ensure_admin_token, AppState, ServerConfig};
use mutatis_store::{Backend, PoolOptions, PostgresBackend, Store};

use crate::cli::Serve;
use crate::error::CliError;
use crate::logging::LogFormat;
use crate::store_cmd::{claim, open_redb, store_err, Access};
use tracing_subscriber::filter::LevelFilter;

fn serve_err(e: mutatis_server::ServerError) -> CliError {
    match e {
        mutatis_server::ServerError::Store(se) => store_err(se),
        other => CliError::Serve(Box::new(other)),
    }
}

/// `mutatis serve DIR [--config FILE] [--data PATH | --postgres [URL] [--pg-schema S]]
/// [--listen ADDR] …`.
pub fn serve(args: &Serve, log_format: LogFormat) -> Result<ExitCode, CliError> {
    // A certificate or key that cannot be served with stops the start before anything opens.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            mutatis_server::tls::acceptor_from_pem_files(cert, key)
                .map_err(|e| CliError::Usage(e.to_string()))?,
        ),
        _ => None,
    };
    // Logs to stderr, filtered by RUST_LOG (`info` by default).
    crate::logging::init(log_format, LevelFilter::INFO, std::io::stderr);
    let params = crate::params::build(args.params.reference_date.as_deref(), &args.params.params)?;
    // Release sunsets are judged by the reference date, or by the clock day by day.
    let pinned = args
        .params
        .reference_date
        .as_ref()
        .and_then(|_| params.get("referenceDate"))
        .and_then(|d| d.as_str())
        .map(str::to_owned);
    let today = pinned.clone().unwrap_or_else(mutatis_server::today);
    let set = Arc::new(
        SchemaSet::load(&args.dir)
            .map_err(CliError::InvalidSet)?
            .as_of(&today),
    );
    let timeout = seconds("--request-timeout", args.request_timeout)?;
    let body_timeout = seconds("--body-timeout", args.body_timeout)?;
    if body_timeout >= timeout {
        // The whole-request timeout would answer first (503), and a stalled body would never
        // be told apart from a slow handler.
        return Err(CliError::Usage(format!(
            "--body-timeout {} must be shorter than --request-timeout {}",
            args.body_timeout, args.request_timeout
        )));
    }
    let cors = if args.cors_origins.is_empty() {
        None
    } else {
        let max_age = args.cors_max_age.map(Duration::from_secs);
        Some(
            CorsConfig::new(&args.cors_origins, max_age)
                .map_err(|e| CliError::Usage(format!("--cors-origin: {e}")))?,
        )
    };
    let static_files = match &args.static_dir {
        Some(dir) => Some(
            StaticFiles::new(dir, &args.static_path)
                .map_err(|e| CliError::Usage(format!("--static: {e}")))?,
        ),
        None => None,
    };
    let config = ServerConfig {
        body_limit: args.body_limit,
        request_timeout: timeout,
        body_timeout,
        public_metrics: args.public_metrics,
        reference_date: pinned,
        cors,
        static_files,
        feed_poll: args.feed_poll_ms.map(Duration::from_millis),
        usage: args.usage == "on",
        ui: args.ui == "on",
    };
    match args.postgres.url()? {
        Some(url) => {
            let pool = PoolOptions {
                size: args.pg_pool_size,
                wait: Duration::from_millis(args.pg_pool_wait_ms),
            };
            let backend = PostgresBackend::connect_with(url, &args.postgres.pg_schema, pool)
                .map_err(store_err)?;
            let store = Store::new(backend, set).with_params(params.clone());
            run(
                store,
                args,
                params,
                config,
                format!("postgres (schema {})", args.postgres.pg_schema),
                tls,
            )
        }
        None => {
            let path = match &args.data {
                Some(p) => p.clone(),
                None => {
                    let dir = PathBuf::from(".mutatis");
                    std::fs::create_dir_all(&dir).map_err(|error| CliError::Write {
                        path: dir.clone(),
                        error,
                    })?;
                    dir.join(format!("{}.redb", set.name()))
                }
            };
            let store =
                Store::new(open_redb(&path, Access::Write)?, set).with_params(params.clone());
            run(store, args, params, config, path.display().to_string(), tls)
        }
    }
}

/// A positive number of seconds given as `flag`.
fn seconds(flag: &str, value: f64) -> Result<Duration, CliError> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "{flag} {value}: expected a positive number of seconds"
            ))
        })
}

fn run<B: Backend + 'static>(
    store: Store<B>,
    args: &Serve,
    params: mutatis_lens::Params,
    config: ServerConfig,
    data: String,
    tls: Option<TlsAcceptor>,
) -> Result<ExitCode, CliError> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Before anything is written: a store of another application is refused untouched.
    claim(&store, Access::Write, args.force_set)?;
    let given_token = args
        .admin_token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let generated = ensure_admin_token(&store, given_token).map_err(serve_err)?;
    let set_name = store.schema_set().name().to_owned();
    let replication = mutatis_server::ReplicationConfig {
        body_limit: args.replication_body_limit,
    };
    let state =
        AppState::with_replication(store, Some(args.dir.clone()), params, config, replication)
            .map_err(serve_err)?;
    // The store must be dropped outside the runtime (see `mutatis_server::serve`).
    let keep = Arc::clone(&state);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Usage(format!("cannot start the async runtime: {e}")))?;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|error| CliError::Listen {
                addr: args.listen.clone(),
                error,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::Usage(format!("cannot read the bound address: {e}")))?;
        let mut out = std::io::stdout().lock();
        let mut lines = format!(
            "mutatis {} serving {set_name} at {scheme}://{addr}\ndata: {data}\n",
            env!("CARGO_PKG_VERSION")
        );
        if let Some(files) = &keep.config.static_files {
            lines.push_str(&format!(
                "static files: {} at {scheme}://{addr}{}/\n",
                files.dir.display(),
                files.path
            ));
        }
        if let Some(token) = &generated {
            lines.push_str(&format!(
                "admin token (shown once, stored hashed): {token}\n"
            ));
        }
        // Tests and supervisors read these lines: they must not wait in a buffer.
        out.write_all(lines.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|error| CliError::Write {
                path: PathBuf::from("<stdout>"),
                error,
            })?;
        drop(out);
        tracing::info!("listening on {addr}");
        mutatis_server::serve_with_tls(listener, state, shutdown_signal(), tls)
            .await
            .map_err(serve_err)
    });
    drop(runtime);
    drop(keep);
    served?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGINT or SIGTERM, after saying the server is shutting down.
async fn shutdown_signal() {
    stop_signal().await;
    tracing::info!("shutting down: finishing the requests in flight");
}

/// Completes on SIGINT or SIGTERM: how `mutatis serve` and `mutatis replicate --continuous`
/// are asked to stop.
pub(crate) async fn stop_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
