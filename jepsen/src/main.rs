//! `raftmq-jepsen`: check recorded runs and summarize them.
//!
//! - `raftmq-jepsen check <run-dir>`: writes `verdict.json` and `index.html`, prints a one-line
//!   verdict; exit 0 valid, 1 invalid, 2 if the run could not be checked.
//! - `raftmq-jepsen run [--quick] [--seed S] [--nemesis a,b] [--out DIR]`: runs a cluster in
//!   network namespaces under a fault schedule, writes the run directory and checks it; exit 0
//!   valid, 1 invalid, 2 if the run could not be completed (as root; see the README).
//! - `raftmq-jepsen suite --runs N --time-limit T`: N runs over rotating nemesis mixes, then a
//!   summary of them (exit as `summarize`).
//! - `raftmq-jepsen cleanup`: removes namespaces, links and processes left by crashed runs.
//! - `raftmq-jepsen summarize <dir>`: checks every run directory under `dir`, writes
//!   `summary.json` and `summary.html`; exit 0 if every run is valid, 1 otherwise, 2 on error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use raftmq_jepsen::report;
use raftmq_jepsen::run::suite::SuiteArgs;
use raftmq_jepsen::run::{self, RunArgs};

#[derive(Parser)]
#[command(name = "raftmq-jepsen", about = "raftmq fault testing: check histories, write reports")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a cluster in network namespaces under a seeded fault schedule, then check it.
    Run(Box<RunArgs>),
    /// Several runs with consecutive seeds over nemesis mixes, then `summarize` them.
    Suite(Box<SuiteArgs>),
    /// Remove what crashed runs left behind (namespaces, links, processes), by run id.
    Cleanup,
    /// Check one run directory (holding history.jsonl) and write its report.
    Check { run_dir: PathBuf },
    /// Check every run directory under DIR and write summary.json and summary.html there.
    Summarize { dir: PathBuf },
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Run(args) => match runtime().map_err(run::RunError::Io).and_then(|rt| rt.block_on(run::run(*args))) {
            Ok(run) => {
                println!("{}: {}", run.name, run.verdict.one_line());
                println!("report: {}", run.dir.join("index.html").display());
                if run.verdict.valid { ExitCode::SUCCESS } else { ExitCode::from(1) }
            }
            Err(e) => {
                eprintln!("raftmq-jepsen run: {e}");
                ExitCode::from(if matches!(e, run::RunError::Interrupted) { 130 } else { 2 })
            }
        },
        Cmd::Suite(args) => {
            match runtime().map_err(run::RunError::Io).and_then(|rt| rt.block_on(run::suite::suite(*args))) {
                Ok(s) => {
                    let t = &s.totals;
                    println!(
                        "suite: {} of {} runs valid ({} invalid, {} unreadable); {} anomalies",
                        t.valid, t.runs, t.invalid, t.unreadable, t.anomalies
                    );
                    if s.all_valid() { ExitCode::SUCCESS } else { ExitCode::from(1) }
                }
                Err(e) => {
                    eprintln!("raftmq-jepsen suite: {e}");
                    ExitCode::from(if matches!(e, run::RunError::Interrupted) { 130 } else { 2 })
                }
            }
        }
        Cmd::Cleanup => match runtime() {
            Ok(rt) => {
                let ids = rt.block_on(run::registry::cleanup_leftovers());
                println!("cleaned run ids: {ids:?}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("raftmq-jepsen cleanup: {e}");
                ExitCode::from(2)
            }
        },
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

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}
