//! `raftmq-jepsen`: check recorded runs and summarize them.
//!
//! - `raftmq-jepsen check <run-dir>`: writes `verdict.json` and `index.html`, prints a one-line
//!   verdict; exit 0 valid, 1 invalid, 2 if the run could not be checked.
//! - `raftmq-jepsen summarize <dir>`: checks every run directory under `dir`, writes
//!   `summary.json` and `summary.html`; exit 0 if every run is valid, 1 otherwise, 2 on error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use raftmq_jepsen::report;

#[derive(Parser)]
#[command(name = "raftmq-jepsen", about = "raftmq fault testing: check histories, write reports")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

// The runner (`run`: start the cluster in network namespaces, drive the workload, inject the
// nemesis schedule, write the run directory) joins this enum when it exists.
#[derive(Subcommand)]
enum Cmd {
    /// Check one run directory (holding history.jsonl) and write its report.
    Check { run_dir: PathBuf },
    /// Check every run directory under DIR and write summary.json and summary.html there.
    Summarize { dir: PathBuf },
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Check { run_dir } => match report::report_run(&run_dir) {
            Ok(run) => {
                println!("{}: {}", run.name, run.verdict.one_line());
                if run.verdict.valid { ExitCode::SUCCESS } else { ExitCode::from(1) }
            }
            Err(e) => {
                eprintln!("raftmq-jepsen: {e}");
                ExitCode::from(2)
            }
        },
        Cmd::Summarize { dir } => match report::summarize(&dir) {
            Ok(s) => {
                let t = &s.totals;
                println!(
                    "{} of {} runs valid ({} invalid, {} unreadable); {} anomalies; report: {}",
                    t.valid,
                    t.runs,
                    t.invalid,
                    t.unreadable,
                    t.anomalies,
                    dir.join(report::SUMMARY_HTML).display()
                );
                if s.all_valid() { ExitCode::SUCCESS } else { ExitCode::from(1) }
            }
            Err(e) => {
                eprintln!("raftmq-jepsen: {e}");
                ExitCode::from(2)
            }
        },
    }
}
