//! The `raftmq-broker` command line (flags over an optional TOML file), shared by the
//! production binary and the fault-test binary `raftmq-broker-faults` (the same program built
//! with the cargo feature `fault-journal`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::BrokerNode;
use crate::config::{BrokerConfig, DurabilityMode, IoBackendKind, Member};

#[derive(Parser, Debug)]
#[command(
    name = "raftmq-broker",
    about = "One replica of a raftmq broker group (a Raft group whose log is the CommitLog)"
)]
struct Args {
    /// TOML config file; flags override its values.
    #[arg(long, short)]
    config: Option<PathBuf>,
    #[arg(long)]
    cluster: Option<String>,
    #[arg(long)]
    group: Option<String>,
    #[arg(long)]
    node_id: Option<u64>,
    /// Address to bind, e.g. 0.0.0.0:8081.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Address peers and clients use to reach this node (default: the listen address).
    #[arg(long)]
    advertise: Option<String>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Nameserver address (repeatable).
    #[arg(long = "namesrv")]
    namesrv: Vec<String>,
    /// `sync` (fsync before ack, default) or `async`.
    #[arg(long, value_parser = ["sync", "async"])]
    durability: Option<String>,
    /// Founding member `id=host:port` (repeatable; the same list on every founding node).
    #[arg(long = "member")]
    members: Vec<String>,
    /// `real` (default) or `undo-journal` (fault tests only; needs the `fault-journal` build).
    #[arg(long, value_parser = ["real", "undo-journal"])]
    io_backend: Option<String>,
    /// Fault tests: revert the unsynced writes a killed broker left in `<data-dir>/undo-journal`
    /// (what a power loss at the kill would have lost), then exit. Run only while no broker
    /// uses the data dir.
    #[arg(long)]
    replay_undo_journal: bool,
}

fn build_config(a: Args) -> Result<BrokerConfig, String> {
    let mut c = match &a.config {
        Some(p) => BrokerConfig::from_toml_file(p).map_err(|e| e.to_string())?,
        None => BrokerConfig::default(),
    };
    if let Some(v) = a.cluster {
        c.cluster = v;
    }
    if let Some(v) = a.group {
        c.group = v;
    }
    if let Some(v) = a.node_id {
        c.node_id = v;
    }
    if let Some(v) = a.listen {
        c.listen = v;
    }
    if let Some(v) = a.advertise {
        c.advertise = Some(v);
    }
    if let Some(v) = a.data_dir {
        c.data_dir = v;
    }
    if !a.namesrv.is_empty() {
        c.namesrv = a.namesrv;
    }
    if let Some(d) = a.durability {
        c.durability = if d == "async" { DurabilityMode::Async } else { DurabilityMode::Sync };
    }
    if let Some(b) = a.io_backend.as_deref().and_then(IoBackendKind::parse) {
        c.io_backend = b;
    }
    if !a.members.is_empty() {
        c.initial_members = a
            .members
            .iter()
            .map(|m| {
                let (id, addr) = m.split_once('=').ok_or(format!("--member {m:?} must be id=host:port"))?;
                let id = id.parse().map_err(|_| format!("--member {m:?}: bad node id"))?;
                Ok(Member { id, addr: addr.to_string() })
            })
            .collect::<Result<_, String>>()?;
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

/// The whole program: parse, then run a replica until SIGINT/SIGTERM (or replay and exit).
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .init();
    let args = Args::parse();
    let replay = args.replay_undo_journal;
    let config = match build_config(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("raftmq-broker: {e}");
            return ExitCode::from(2);
        }
    };
    if replay {
        return replay_undo_journal(&config);
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("raftmq-broker: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let node = match BrokerNode::start(config).await {
            Ok(n) => n,
            Err(e) => {
                eprintln!("raftmq-broker: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("raftmq-broker {} node {} serving on {}", node.group, node.node_id, node.addr);
        wait_for_signal().await;
        node.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(feature = "fault-journal")]
fn replay_undo_journal(config: &BrokerConfig) -> ExitCode {
    let dir = config.data_dir.join(crate::config::UNDO_JOURNAL_DIR);
    match raftmq_store::io::replay_undo_journal(&dir) {
        Ok(s) => {
            println!("reverted {} unsynced writes ({} bytes) in {} files", s.records, s.bytes, s.files);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("raftmq-broker: replaying {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "fault-journal"))]
fn replay_undo_journal(_: &BrokerConfig) -> ExitCode {
    eprintln!(
        "raftmq-broker: --replay-undo-journal needs the fault-test build \
         (cargo build --release -p raftmq-broker --features fault-journal --bin raftmq-broker-faults)"
    );
    ExitCode::from(2)
}
