//! `raftmq`: the command line.
//!
//! - `raftmq dev`: a nameserver and a 3-replica broker group on loopback, data in a local folder.
//! - `raftmq topic create|route`, `raftmq send`, `raftmq read`, `raftmq status`: talk to a cluster.
//! - `raftmq consume`, `raftmq consumer-progress`: consume as a group; a group's offsets and lag.
//! - `raftmq bench`: the benchmark (publish throughput/latency in both durability modes, failover time).

use raftmq_cli::{bench, commands, consume};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "raftmq", about = "raftmq: a Raft-replicated, RocketMQ-compatible message broker")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a local cluster: a nameserver and a 3-replica broker group on loopback.
    Dev {
        /// Broker groups to start (each with `replicas` replicas).
        #[arg(long, default_value_t = 1)]
        groups: usize,
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        #[arg(long, default_value = "./raftmq-data")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 9876)]
        namesrv_port: u16,
        #[arg(long, default_value_t = 8081)]
        base_port: u16,
        /// `sync` (fsync on each replica before ack) or `async`.
        #[arg(long, default_value = "sync", value_parser = ["sync", "async"])]
        durability: String,
    },
    /// Create a topic or show its route.
    Topic {
        #[command(subcommand)]
        cmd: commands::TopicCmd,
        #[arg(long, default_value = "127.0.0.1:9876", global = true)]
        namesrv: String,
    },
    /// Create a consumer group (orderly or concurrent) on the broker groups.
    ConsumerGroup {
        #[command(subcommand)]
        cmd: commands::ConsumerGroupCmd,
        #[arg(long, default_value = "127.0.0.1:9876", global = true)]
        namesrv: String,
    },
    /// Send messages (with a progress bar and a latency summary).
    Send(commands::SendArgs),
    /// Read a queue by offset.
    Read(commands::ReadArgs),
    /// Consume a topic as a consumer group (simple, push or pull), with a summary.
    Consume(consume::ConsumeArgs),
    /// Per queue of a topic: offsets, the group's committed offset and pop progress, lag.
    ConsumerProgress(commands::ProgressArgs),
    /// Show every broker group: leader, and each replica's term and log indexes.
    Status {
        #[arg(long, default_value = "127.0.0.1:9876")]
        namesrv: String,
    },
    /// Benchmark a local 3-replica group: publish throughput and latency, failover time.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,openraft=error".into()),
        )
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("raftmq: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.cmd {
            Cmd::Dev { groups, replicas, data_dir, namesrv_port, base_port, durability } => {
                commands::dev(groups, replicas, data_dir, namesrv_port, base_port, &durability).await
            }
            Cmd::Topic { cmd, namesrv } => commands::topic(cmd, &namesrv).await,
            Cmd::ConsumerGroup { cmd, namesrv } => commands::consumer_group(cmd, &namesrv).await,
            Cmd::Send(a) => commands::send(a).await,
            Cmd::Read(a) => commands::read(a).await,
            Cmd::Consume(a) => consume::consume(a).await.map(|_| ()),
            Cmd::ConsumerProgress(a) => commands::consumer_progress(a).await,
            Cmd::Status { namesrv } => commands::status(&namesrv).await,
            Cmd::Bench(a) => bench::run(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raftmq: {e}");
            ExitCode::FAILURE
        }
    }
}
