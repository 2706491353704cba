//! raftmq fault testing: the history format, the checker and the report.
//!
//! A Jepsen-style test runs clients against a real cluster while a nemesis injects faults, and
//! records every operation in a history ([`history`]). Afterwards the checker ([`checker`])
//! decides, from the history alone, whether the broker kept its promises (no acknowledged
//! message lost, no offset holding two messages, no consumer offset going backwards, ...) and
//! how available it stayed during each fault; the report ([`report`]) turns that into
//! `verdict.json` and an HTML page per run, and a summary across runs.
//!
//! The runner (processes in network namespaces, nemeses) and the workload clients are not
//! here yet; they produce histories in this format. The outcome rules and anomaly definitions
//! are in this crate's README.
//!
//! # Layout
//! - [`history`]: the JSONL format, [`history::HistoryWriter`], [`history::read_history`].
//! - [`checker`]: [`checker::check`] and the anomaly families, one file each.
//! - [`report`]: `verdict.json`, `index.html` with SVG plots, `summary.html`/`summary.json`.
//! - [`run_info`]: `run.json`, the run's seed, versions and nemeses.

pub mod checker;
pub mod history;
pub mod report;
pub mod run_info;
