//! `raftmq-namesrv`: runs one nameserver until Ctrl-C or SIGTERM.
//!
//! Exit codes: 0 after a clean shutdown, 2 for a bad command line or config,
//! 1 when the server cannot start or fails while running.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use raftmq_namesrv::{Config, ConfigError, ServeError, serve};
use tracing_subscriber::EnvFilter;

/// raftmq nameserver: broker registration and route queries.
#[derive(Debug, Parser)]
#[command(name = "raftmq-namesrv", version)]
struct Args {
    /// TOML config file; the flags below override its values.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:9876].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Forget a broker node after this long without a heartbeat [default: 10000].
    #[arg(long, value_name = "MS")]
    broker_expiry_ms: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing();
    let config = match load(&args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("raftmq-namesrv: {err}");
            return ExitCode::from(2);
        }
    };
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(ServeError::Config(err)) => {
            eprintln!("raftmq-namesrv: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("raftmq-namesrv: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The file (or the defaults), then the flags on top, then validation.
fn load(args: &Args) -> Result<Config, ConfigError> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(ms) = args.broker_expiry_ms {
        config.broker_expiry = Duration::from_millis(ms);
    }
    config.validate()?;
    Ok(config)
}

async fn run(config: Config) -> Result<(), ServeError> {
    serve(config, shutdown_signal()).await?.wait().await
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`); colours only
/// on a terminal, so log files written by launchers stay plain text.
fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Resolves on the first Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
