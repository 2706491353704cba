//! `raftmq-jepsen suite`: several runs with consecutive seeds, rotating through nemesis mixes,
//! then a summary across them.

use std::path::PathBuf;

use super::{RunArgs, RunError, WorkloadKind};
use crate::report;

#[derive(clap::Args, Clone, Debug)]
pub struct SuiteArgs {
    /// How many runs.
    #[arg(long, default_value_t = 5)]
    pub runs: u64,
    /// Seconds under faults per run.
    #[arg(long, default_value_t = 60)]
    pub time_limit: u64,
    /// Seed of the first run; run `i` uses `seed + i` [default: random].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Directory of the runs and the summary [default: runs/suite-<unix time>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value = "target/release/raftmq-broker")]
    pub broker_bin: PathBuf,
    #[arg(long, default_value = "target/release/raftmq-namesrv")]
    pub namesrv_bin: PathBuf,
    #[arg(long, default_value = "sync")]
    pub durability: String,
    /// The fault-test broker for kill-lose-unsynced (its mixes skip that fault without it).
    #[arg(long, default_value = "target/release/raftmq-broker-faults")]
    pub fault_broker_bin: PathBuf,
    /// libfaketime for clock-skew (its mixes skip that fault without it).
    #[arg(long, default_value = super::DEFAULT_FAKETIME_LIB)]
    pub faketime_lib: PathBuf,
}

/// The mixes run `i` takes in turn: (nodes, nemeses). Ring and bridge need 5 nodes to mean
/// anything; the rest run on 3.
pub const MIXES: [(usize, &str); 6] = [
    (3, "partition-leader,kill-leader"),
    (3, "partition-random-halves,pause-leader"),
    (5, "bridge,partition-majorities-ring,partition-leader-one-way"),
    (3, "kill-majority,member-remove,transfer-leader"),
    (3, "kill-lose-unsynced,clock-skew,partition-leader"),
    (
        5,
        "partition-leader,kill-leader,partition-random-halves,pause-leader,bridge,partition-majorities-ring,\
         partition-leader-one-way,kill-majority,member-remove,transfer-leader,kill-lose-unsynced,clock-skew",
    ),
];

/// The workloads runs take in turn.
pub const WORKLOADS: [WorkloadKind; 3] = [WorkloadKind::Queue, WorkloadKind::Fifo, WorkloadKind::Delay];

/// The workload of run `i`: queue, fifo and delay in turn, shifted by one each time the mixes
/// wrap around, so every mix meets every workload (over three times `MIXES.len()` runs).
pub fn workload_of(i: u64) -> WorkloadKind {
    WORKLOADS[((i + i / MIXES.len() as u64) % WORKLOADS.len() as u64) as usize]
}

impl SuiteArgs {
    /// The arguments of run `i` (0-based) of the suite. A fault whose prerequisite is missing
    /// here (the fault-test broker, libfaketime) leaves the mix, with a message saying so.
    pub fn run_args(&self, i: u64, base_seed: u64, dir: &std::path::Path) -> RunArgs {
        let (nodes, mix) = MIXES[(i % MIXES.len() as u64) as usize];
        let seed = base_seed.wrapping_add(i);
        let mut run = RunArgs {
            workload: workload_of(i),
            nodes,
            time_limit: self.time_limit,
            seed: Some(seed),
            nemesis: mix.split(',').map(str::to_string).collect(),
            out: Some(dir.join(format!("{i:02}-seed{seed}"))),
            quick: false,
            broker_bin: self.broker_bin.clone(),
            namesrv_bin: self.namesrv_bin.clone(),
            producers: 4,
            queues: 4,
            durability: self.durability.clone(),
            sdk_retries: 2,
            fault_broker_bin: self.fault_broker_bin.clone(),
            faketime_lib: self.faketime_lib.clone(),
        };
        let mix = std::mem::take(&mut run.nemesis);
        run.nemesis = mix
            .into_iter()
            .filter(|name| {
                let missing = name.parse().ok().and_then(|f| run.missing_prerequisite(f));
                if let Some(why) = &missing {
                    eprintln!("suite: run {}: skipping {name}: {why}", i + 1);
                }
                missing.is_none()
            })
            .collect();
        run
    }
}

/// Runs the suite; a run that fails to complete is reported and the suite goes on (the summary
/// lists it as unreadable). Ctrl-C stops the suite.
pub async fn suite(args: SuiteArgs) -> Result<report::Summary, RunError> {
    let base = args.seed.unwrap_or_else(rand::random);
    let dir = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("runs/suite-{}", super::unix_ms() / 1000)));
    std::fs::create_dir_all(&dir).map_err(|e| RunError::Setup(format!("{}: {e}", dir.display())))?;
    for i in 0..args.runs {
        let run = args.run_args(i, base, &dir);
        eprintln!(
            "suite: run {} of {}: {} workload, {} nodes, {}",
            i + 1,
            args.runs,
            run.workload.name(),
            run.nodes,
            run.nemesis.join(",")
        );
        match super::run(run).await {
            Ok(r) => println!("{}: {}", r.name, r.verdict.one_line()),
            Err(RunError::Interrupted) => return Err(RunError::Interrupted),
            Err(e) => eprintln!("suite: run {} could not complete: {e}", i + 1),
        }
    }
    Ok(report::summarize(&dir)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        suite: SuiteArgs,
    }

    #[test]
    fn runs_rotate_through_the_mixes_with_consecutive_seeds() {
        let s = Wrap::parse_from(["x", "--runs", "7", "--time-limit", "30"]).suite;
        let dir = std::path::Path::new("/tmp/s");
        let runs: Vec<RunArgs> = (0..7).map(|i| s.run_args(i, 100, dir)).collect();
        assert_eq!(runs[0].seed, Some(100));
        assert_eq!(runs[6].seed, Some(106));
        assert_eq!(runs[1].out, Some(dir.join("01-seed101")));
        assert_eq!(runs[MIXES.len()].nemesis, runs[0].nemesis, "the mixes wrap around");
        let first: Vec<WorkloadKind> = runs[..3].iter().map(|r| r.workload).collect();
        assert_eq!(first, WORKLOADS);
        let rounds = (WORKLOADS.len() * MIXES.len()) as u64;
        let pairs: std::collections::BTreeSet<(usize, &str)> =
            (0..rounds).map(|i| ((i % MIXES.len() as u64) as usize, workload_of(i).name())).collect();
        assert_eq!(pairs.len(), WORKLOADS.len() * MIXES.len(), "every mix meets every workload");
        for r in runs {
            assert_eq!(r.time_limit, 30);
            let (_, faults) = r.resolve().expect("every mix parses");
            assert!(!faults.is_empty());
        }
    }

    #[test]
    fn faults_without_their_prerequisites_leave_the_mix() {
        let s = Wrap::parse_from([
            "x",
            "--fault-broker-bin",
            "/nonexistent/raftmq-broker-faults",
            "--faketime-lib",
            "/nonexistent/libfaketime.so.1",
        ])
        .suite;
        let mix = MIXES.iter().position(|(_, m)| m.starts_with("kill-lose-unsynced")).expect("the mix") as u64;
        let run = s.run_args(mix, 1, std::path::Path::new("/tmp/s"));
        assert_eq!(run.nemesis, ["partition-leader"]);
    }
}
