//! raftmq fault testing: the history format, the checker and the report.
//!
//! A Jepsen-style test runs clients against a real cluster while a nemesis injects faults, and
//! records every operation in a history ([`history`]). Afterwards the checker ([`checker`])
//! decides, from the history alone, whether the broker kept its promises (no acknowledged
//! message lost, no offset holding two messages, no consumer offset going backwards, ...) and
//! how available it stayed during each fault; the report ([`report`]) turns that into
//! `verdict.json` and an HTML page per run, and a summary across runs.
//!
//! The runner ([`run`]) starts real broker processes in network namespaces, drives the
//! workload's clients and a seeded nemesis, and writes histories in this format. The outcome
//! rules and anomaly definitions are in this crate's README.
//!
//! # Layout
//! - [`history`]: the JSONL format, [`history::HistoryWriter`], [`history::read_history`].
//! - [`checker`]: [`checker::check`] and the anomaly families, one file each.
//! - [`report`]: `verdict.json`, `index.html` with SVG plots, `summary.html`/`summary.json`.
//! - [`run`]: `raftmq-jepsen run`: network namespaces, processes, nemeses, the workload.
//! - [`run_info`]: `run.json`, the run's seed, versions and nemeses.
//! - [`testkit`]: a builder for hand-made histories (the checker's tests use it).

pub mod checker;
pub mod history;
pub mod report;
pub mod run;
pub mod run_info;
pub mod testkit;
