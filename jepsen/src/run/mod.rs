//! `raftmq-jepsen run`: start a cluster in network namespaces, drive the workload while the
//! nemesis plays a seeded fault schedule, drain every queue, and judge the history.
//!
//! Phases (each narrated on stderr): check requirements, clean leftovers of crashed runs, build
//! the network, start the nameserver and brokers, create the topic, run producers, consumers
//! and the nemesis for `--time-limit` seconds, stop the producers, heal everything, wait for a
//! leader, run the final read, tear everything down, check.
//!
//! # Layout
//! - [`schedule`]: the seeded fault schedule.
//! - [`net`]: namespaces, veths, the bridge, nftables faults.
//! - [`procs`]: starting processes in a namespace and signalling them by PID.
//! - [`registry`]: what each run created, for cleanup by id.
//! - [`testbed`]: the running cluster and its verbs (leader, kill, restart, pause, isolate).
//! - [`nemesis`]: plays the schedule and records nemesis ops.
//! - [`workload`]: producers, consumers with offset commits, the final read.
//! - [`fifo`]: the fifo workload's orderly consumer group (pops and acks).
//! - [`delay`]: the delay workload's delivery times and consumer group.
//! - [`suite`]: several runs over nemesis mixes, then a summary.

pub mod delay;
pub mod fifo;
pub mod nemesis;
pub mod net;
pub mod procs;
pub mod registry;
pub mod schedule;
pub mod suite;
pub mod testbed;
pub mod workload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::history::HistoryWriter;
use crate::report::{self, HISTORY_FILE};
use crate::run_info::RunInfo;
use net::Topology;
use schedule::{FaultKind, Timing};
use testbed::{Settings, Testbed};
use workload::Workload;

/// Where Debian's `faketime` package puts the library.
pub const DEFAULT_FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// What the clients do (the README's "Workload" and "The fifo workload").
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// Plain sends; one consumer per queue reads by offset and commits offsets.
    Queue,
    /// Sends in message groups, each group's one at a time; an orderly consumer group pops and acks.
    Fifo,
    /// Most sends delayed 1-30 s; a consumer group pops and acks; nothing may come before it is due.
    Delay,
}

impl WorkloadKind {
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Queue => "queue",
            WorkloadKind::Fifo => "fifo",
            WorkloadKind::Delay => "delay",
        }
    }
}

#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// The workload: queue, fifo or delay.
    #[arg(long, value_enum, default_value_t = WorkloadKind::Queue)]
    pub workload: WorkloadKind,
    /// Broker replicas in the one broker group.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Seconds of workload under faults (setup and the final read come on top).
    #[arg(long, default_value_t = 60)]
    pub time_limit: u64,
    /// Seeds the fault schedule and the nemesis's choices; random when absent.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Faults to draw from, comma-separated: partition-leader, kill-leader,
    /// partition-random-halves (random-halves), pause-leader (pause), ... (jepsen/README.md);
    /// kill-lose-unsynced needs --fault-broker-bin, clock-skew needs --faketime-lib.
    #[arg(long, value_delimiter = ',', default_value = "partition-leader,kill-leader")]
    pub nemesis: Vec<String>,
    /// The run directory [default: runs/<seed>-<unix time>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// CI preset: 3 nodes, 40 s of faults (about a minute in all), partition-leader and
    /// kill-leader.
    #[arg(long)]
    pub quick: bool,
    #[arg(long, default_value = "target/release/raftmq-broker")]
    pub broker_bin: PathBuf,
    #[arg(long, default_value = "target/release/raftmq-namesrv")]
    pub namesrv_bin: PathBuf,
    /// The fault-test broker (`cargo build --release -p raftmq-broker --features fault-journal
    /// --bin raftmq-broker-faults`): every broker runs it, with the undo journal, when the
    /// nemeses include kill-lose-unsynced.
    #[arg(long, default_value = "target/release/raftmq-broker-faults")]
    pub fault_broker_bin: PathBuf,
    /// libfaketime, for clock-skew (`apt-get install faketime`).
    #[arg(long, default_value = DEFAULT_FAKETIME_LIB)]
    pub faketime_lib: PathBuf,
    /// Concurrent producers, each sending one value at a time.
    #[arg(long, default_value_t = 4)]
    pub producers: u64,
    /// Queues of the test topic; one consumer reads each.
    #[arg(long, default_value_t = 4)]
    pub queues: u32,
    /// The brokers' durability policy: sync or async.
    #[arg(long, default_value = "sync")]
    pub durability: String,
    /// The SDK producer's retries on another queue after a retriable error (the SDK default).
    #[arg(long, default_value_t = 2)]
    pub sdk_retries: usize,
}

impl RunArgs {
    /// Applies `--quick` and checks the values.
    pub fn resolve(mut self) -> Result<(Self, Vec<FaultKind>), String> {
        if self.quick {
            self.nodes = 3;
            self.time_limit = 40;
            self.nemesis = vec!["partition-leader".into(), "kill-leader".into()];
        }
        if !(1..=9).contains(&self.nodes) {
            return Err(format!("--nodes must be 1..=9, not {}", self.nodes));
        }
        if self.queues == 0 || self.producers == 0 {
            return Err("--queues and --producers must be at least 1".into());
        }
        let faults = self.nemesis.iter().filter(|s| !s.is_empty()).map(|s| s.parse()).collect::<Result<_, _>>()?;
        Ok((self, faults))
    }

    /// What a fault needs beyond root, `ip` and `nft`, if it is missing here.
    pub fn missing_prerequisite(&self, fault: FaultKind) -> Option<String> {
        match fault {
            FaultKind::KillLoseUnsynced if !self.fault_broker_bin.is_file() => Some(format!(
                "{} not found: cargo build --release -p raftmq-broker --features fault-journal \
                 --bin raftmq-broker-faults (or pass --fault-broker-bin)",
                self.fault_broker_bin.display()
            )),
            FaultKind::ClockSkew if !self.faketime_lib.is_file() => Some(format!(
                "{} not found: apt-get install faketime (or pass --faketime-lib)",
                self.faketime_lib.display()
            )),
            _ => None,
        }
    }
}

/// Why a run could not produce a verdict.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Requirement(String),
    #[error("{0}")]
    Setup(String),
    #[error("history: {0}")]
    Io(#[from] std::io::Error),
    #[error("interrupted")]
    Interrupted,
    #[error("{0}")]
    Report(#[from] report::ReportError),
}

/// Root, `ip`, `nft`, both binaries and each fault's own prerequisites, with what to do about
/// each one missing.
pub fn check_requirements(args: &RunArgs, faults: &[FaultKind]) -> Result<(), RunError> {
    if let Some(missing) = faults.iter().find_map(|f| args.missing_prerequisite(*f)) {
        return Err(RunError::Requirement(missing));
    }
    if !procs::is_root() {
        return Err(RunError::Requirement(
            "run needs root: it creates network namespaces, veths and nftables rules \
             (try: sudo target/release/raftmq-jepsen run ...)"
                .into(),
        ));
    }
    if !procs::on_path("ip") {
        return Err(RunError::Requirement("`ip` not found: apt-get install iproute2".into()));
    }
    if !procs::on_path("nft") {
        return Err(RunError::Requirement("`nft` not found: apt-get install nftables".into()));
    }
    for b in [&args.broker_bin, &args.namesrv_bin] {
        if !b.is_file() {
            return Err(RunError::Requirement(format!(
                "{} not found: cargo build --release -p raftmq-broker -p raftmq-namesrv (or pass --broker-bin/--namesrv-bin)",
                b.display()
            )));
        }
    }
    Ok(())
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn versions(args: &RunArgs) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    if let Ok(sha) = net::sh(&["git".into(), "rev-parse".into(), "HEAD".into()]) {
        v.insert("raftmq".into(), sha.trim().to_string());
    }
    if let Ok(k) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        v.insert("kernel".into(), k.trim().to_string());
    }
    v.insert("raftmq-jepsen".into(), env!("CARGO_PKG_VERSION").into());
    v.insert("broker_bin".into(), args.broker_bin.display().to_string());
    v
}

/// The broker binary a run starts: the fault-test build when a nemesis needs its undo journal.
fn broker_bin(args: &RunArgs, undo_journal: bool) -> &Path {
    if undo_journal { &args.fault_broker_bin } else { &args.broker_bin }
}

/// Runs one test and checks it. Returns the report; the caller prints the verdict.
pub async fn run(args: RunArgs) -> Result<report::RunReport, RunError> {
    let (mut args, faults) = args.resolve().map_err(RunError::Requirement)?;
    check_requirements(&args, &faults)?;
    let undo_journal = faults.contains(&FaultKind::KillLoseUnsynced);
    let cleaned = registry::cleanup_leftovers().await;
    if !cleaned.is_empty() {
        eprintln!("cleaned leftovers of crashed runs: ids {cleaned:?}");
    }
    let seed = args.seed.unwrap_or_else(rand::random);
    args.seed = Some(seed);
    let started = unix_ms();
    let dir = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("runs/{seed}-{}", started / 1000)));
    if dir.join(HISTORY_FILE).exists() {
        return Err(RunError::Setup(format!("{} already holds a run; pick another --out", dir.display())));
    }
    for sub in ["logs", "data", "pids"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| RunError::Setup(format!("{}: {e}", dir.display())))?;
    }
    let dir = std::fs::canonicalize(&dir).map_err(|e| RunError::Setup(e.to_string()))?;
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let topo = Topology::new(registry::allocate().map_err(RunError::Setup)?, args.nodes);
    let steps = schedule::schedule(seed, &faults, Duration::from_secs(args.time_limit), Timing::default());
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    let info = RunInfo {
        name,
        seed: Some(seed),
        started_unix_ms: Some(started),
        workload: Some(args.workload.name().into()),
        nemeses: faults.iter().map(|f| f.name().to_string()).collect(),
        versions: {
            let mut v = versions(&args);
            v.insert("broker_bin".into(), broker_bin(&args, undo_journal).display().to_string());
            v
        },
        nodes: (1..=args.nodes).map(Testbed::node_name).collect(),
        config: BTreeMap::from([
            ("durability".into(), args.durability.clone()),
            ("replicas".into(), args.nodes.to_string()),
            ("time_limit_s".into(), args.time_limit.to_string()),
            ("producers".into(), args.producers.to_string()),
            ("queues".into(), args.queues.to_string()),
            (
                "message_groups".into(),
                match args.workload {
                    WorkloadKind::Queue | WorkloadKind::Delay => "none".into(),
                    WorkloadKind::Fifo => format!("{} per producer", fifo::GROUPS_PER_PRODUCER),
                },
            ),
            (
                "delays".into(),
                match args.workload {
                    WorkloadKind::Delay => format!(
                        "1 in {} sent at once, else {}-{} s ahead, due at most {} s after the time limit",
                        delay::IMMEDIATE_ONE_IN,
                        delay::MIN_DELAY.as_secs(),
                        delay::MAX_DELAY.as_secs(),
                        delay::LAST_DUE_AFTER_LIMIT.as_secs()
                    ),
                    _ => "none".into(),
                },
            ),
            ("sdk_retries".into(), args.sdk_retries.to_string()),
            ("subnet".into(), format!("10.231.{}.0/24", topo.id)),
            (
                "addresses".into(),
                (1..=args.nodes).map(|i| format!("n{i}={}", topo.broker_addr(i))).collect::<Vec<_>>().join(" "),
            ),
            ("namesrv".into(), topo.namesrv_addr()),
            ("schedule".into(), format!("{} faults", steps.len())),
            ("io_backend".into(), if undo_journal { "undo-journal" } else { "real" }.into()),
        ]),
    };
    info.save(&dir)?;
    eprintln!("run {} (seed {seed}, net id {}): {} faults scheduled", dir.display(), topo.id, steps.len());
    let settings = Settings {
        broker_bin: abs(broker_bin(&args, undo_journal)),
        namesrv_bin: abs(&args.namesrv_bin),
        run_dir: dir.clone(),
        durability: args.durability.clone(),
        undo_journal,
        faketime_lib: faults.contains(&FaultKind::ClockSkew).then(|| abs(&args.faketime_lib)),
    };
    let bed = Arc::new(Testbed::new(topo, settings).map_err(RunError::Setup)?);
    let outcome = tokio::select! {
        r = drive(&bed, &args, &steps, &dir) => r,
        _ = tokio::signal::ctrl_c() => Err(RunError::Interrupted),
    };
    eprintln!("tearing down the cluster and network");
    bed.destroy().await;
    outcome?;
    Ok(report::report_run(&dir)?)
}

/// Everything between building the network and tearing it down.
async fn drive(bed: &Arc<Testbed>, args: &RunArgs, steps: &[schedule::Step], dir: &Path) -> Result<(), RunError> {
    bed.topo.setup().map_err(RunError::Setup)?;
    bed.start().await.map_err(RunError::Setup)?;
    let leader = bed.wait_for_leader(Duration::from_secs(30)).await;
    let leader = leader.ok_or_else(|| RunError::Setup("no leader elected within 30 s; see logs/".into()))?;
    eprintln!("cluster up, leader n{leader}");
    let cluster =
        raftmq_client::Cluster::new(&[bed.topo.namesrv_addr()]).map_err(|e| RunError::Setup(e.to_string()))?;
    create_topic(&cluster, args.queues, args.workload).await?;

    let history = Arc::new(HistoryWriter::create(&dir.join(HISTORY_FILE))?);
    let message_groups = if args.workload == WorkloadKind::Fifo { fifo::GROUPS_PER_PRODUCER } else { 0 };
    let last_due = unix_ms() + (args.time_limit + delay::LAST_DUE_AFTER_LIMIT.as_secs()) * 1000;
    let plan =
        (args.workload == WorkloadKind::Delay).then(|| delay::DelayPlan::new(args.seed.unwrap_or_default(), last_due));
    let wl = Workload {
        cluster,
        history: history.clone(),
        queues: args.queues,
        sdk_retries: args.sdk_retries,
        message_groups,
        delay: plan.clone(),
    };
    let (stop_producers, producers_stop) = watch::channel(false);
    let (stop_consumers, consumers_stop) = watch::channel(false);
    let mut producers = Vec::new();
    for p in 0..args.producers {
        producers.push(tokio::spawn(wl.clone().producer(p, producers_stop.clone())));
    }
    let mut consumers = Vec::new();
    match args.workload {
        WorkloadKind::Fifo => {
            for i in 0..fifo::FIFO_CONSUMERS {
                consumers.push(tokio::spawn(wl.clone().fifo_consumer(i, consumers_stop.clone())));
            }
        }
        WorkloadKind::Delay => {
            for i in 0..delay::DELAY_CONSUMERS {
                let c = wl.clone().pop_consumer(i, delay::DELAY_GROUP, false, format!("d{i}"), consumers_stop.clone());
                consumers.push(tokio::spawn(c));
            }
        }
        WorkloadKind::Queue => {
            for q in 0..args.queues {
                consumers.push(tokio::spawn(wl.clone().consumer(q, consumers_stop.clone())));
            }
        }
    }
    let t0 = tokio::time::Instant::now();
    let nemesis = nemesis::Nemesis { bed: bed.clone(), history: history.clone() };
    nemesis.play(steps, t0).await?;
    tokio::time::sleep_until(t0 + Duration::from_secs(args.time_limit)).await;

    eprintln!("time limit reached: stopping producers");
    let _ = stop_producers.send(true);
    join_all(producers).await?;
    bed.heal_all().await.map_err(RunError::Setup)?;
    let leader = bed.wait_for_leader(Duration::from_secs(30)).await;
    eprintln!("healed; leader {}", leader.map_or("none".into(), |l| format!("n{l}")));
    // Let the consumers catch up on what is committed before the drain starts.
    match args.workload {
        WorkloadKind::Fifo => {
            let done = wl.group_caught_up(fifo::FIFO_GROUP, Duration::from_secs(60)).await;
            eprintln!("orderly group {}", if done { "consumed every queue" } else { "did NOT catch up in 60 s" });
        }
        WorkloadKind::Delay => {
            // Past the latest delivery time and the checker's grace, so every delayed message
            // acknowledged is due and judged by the drain.
            if let Some(latest) = plan.as_ref().and_then(delay::DelayPlan::latest) {
                let grace = crate::checker::DELAY_GRACE_NS / 1_000_000 + 1000;
                let wait = (latest + grace).saturating_sub(unix_ms());
                eprintln!("waiting {:.1} s for the last delayed messages to be due", wait as f64 / 1000.0);
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            let done = wl.group_caught_up(delay::DELAY_GROUP, Duration::from_secs(60)).await;
            eprintln!("consumer group {}", if done { "consumed every queue" } else { "did NOT catch up in 60 s" });
        }
        WorkloadKind::Queue => tokio::time::sleep(Duration::from_secs(3)).await,
    }
    let _ = stop_consumers.send(true);
    join_all(consumers).await?;
    let complete = wl.final_read(Duration::from_secs(60)).await?;
    eprintln!("final read {}", if complete { "complete" } else { "INCOMPLETE" });
    history.flush()?;
    Ok(())
}

/// Creates the topic (accepting FIFO messages only for the fifo workload, normal and delayed
/// ones for the delay workload) and the workload's consumer group (orderly for fifo), retrying
/// for 30 s. "Already exists" counts as done: a retry after an attempt whose answer was lost
/// finds its own work.
async fn create_topic(cluster: &raftmq_client::Cluster, queues: u32, kind: WorkloadKind) -> Result<(), RunError> {
    use raftmq_client::MessageType;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (types, group): (&[MessageType], _) = match kind {
        WorkloadKind::Queue => (&[], None),
        WorkloadKind::Fifo => (&[MessageType::Fifo], Some((fifo::FIFO_GROUP, true))),
        WorkloadKind::Delay => (&[MessageType::Normal, MessageType::Delay], Some((delay::DELAY_GROUP, false))),
    };
    let done = |r: Result<(), raftmq_client::Error>| match r {
        Err(e) if e.to_string().contains("already exists") => Ok(()),
        r => r,
    };
    let (mut topic, mut group_done) = (false, group.is_none());
    loop {
        let mut r = Ok(());
        if !topic {
            r = done(cluster.create_topic_accepting(workload::TOPIC, queues, types, &[]).await);
            topic = r.is_ok();
        }
        if let (true, false, Some((name, orderly))) = (topic, group_done, group) {
            // The broker's maximum attempts: nothing reaches the dead-letter queue in a run.
            r = done(cluster.create_consumer_group(name, orderly, fifo::MAX_ATTEMPTS, &[]).await);
            group_done = r.is_ok();
        }
        match r {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("creating the topic: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(RunError::Setup(format!("creating topic {}: {e}", workload::TOPIC))),
        }
    }
}

async fn join_all(tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>) -> Result<(), RunError> {
    for t in tasks {
        t.await.map_err(|e| RunError::Setup(format!("a workload task panicked: {e}")))??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn quick_overrides_to_the_ci_preset() {
        let w = Wrap::parse_from(["x", "--quick", "--nodes", "5", "--nemesis", "pause"]);
        let (args, faults) = w.run.resolve().expect("valid");
        assert_eq!(args.nodes, 3);
        assert_eq!(args.time_limit, 40);
        assert_eq!(faults, [FaultKind::PartitionLeader, FaultKind::KillLeader]);
    }

    #[test]
    fn nemesis_lists_parse_and_bad_names_are_refused() {
        let w = Wrap::parse_from(["x", "--nemesis", "partition-leader,kill-leader,random-halves,pause"]);
        let (args, faults) = w.run.resolve().expect("valid");
        assert_eq!(args.broker_bin, PathBuf::from("target/release/raftmq-broker"));
        assert_eq!(faults.len(), 4);
        assert!(Wrap::parse_from(["x", "--nemesis", "nope"]).run.resolve().is_err());
        assert!(Wrap::parse_from(["x", "--nodes", "0"]).run.resolve().is_err());
    }

    #[test]
    fn the_new_faults_name_what_they_miss() {
        let w = Wrap::parse_from([
            "x",
            "--fault-broker-bin",
            "/nonexistent/raftmq-broker-faults",
            "--faketime-lib",
            "/nonexistent/libfaketime.so.1",
        ]);
        let unsynced = w.run.missing_prerequisite(FaultKind::KillLoseUnsynced).expect("missing");
        assert!(unsynced.contains("--features fault-journal"), "{unsynced}");
        let skew = w.run.missing_prerequisite(FaultKind::ClockSkew).expect("missing");
        assert!(skew.contains("apt-get install faketime"), "{skew}");
        assert_eq!(w.run.missing_prerequisite(FaultKind::KillLeader), None);
    }
}
