//! `run.json`: what a run was (seed, versions, nemeses), written by the runner at the start.
//!
//! Kept apart from the history so the history stays a pure record of operations, and so a run
//! can be reproduced from its seed and versions alone. Every field is optional: a hand-made
//! run directory with only a `history.jsonl` still gets a report.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// File name inside a run directory.
pub const RUN_FILE: &str = "run.json";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunInfo {
    /// Shown in reports; the run directory's name when absent.
    pub name: Option<String>,
    /// Seeds every random choice of the runner (schedule, targets, values).
    pub seed: Option<u64>,
    pub started_unix_ms: Option<u64>,
    /// The workload, e.g. `queue` or `fifo`.
    pub workload: Option<String>,
    /// The fault kinds scheduled, e.g. `partition-leader`, `kill-leader`, `lost-unsynced`.
    pub nemeses: Vec<String>,
    /// Versions of what ran: `raftmq` (git commit), `rustc`, `kernel`, ...
    pub versions: BTreeMap<String, String>,
    /// Node names; each node's log lives under `logs/`.
    pub nodes: Vec<String>,
    /// Settings worth seeing next to the verdict: durability mode, replicas, duration, ...
    pub config: BTreeMap<String, String>,
}

impl RunInfo {
    /// Reads `dir/run.json`; `Ok(None)` if there is none.
    pub fn load(dir: &Path) -> io::Result<Option<RunInfo>> {
        match fs::read(dir.join(RUN_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        fs::write(dir.join(RUN_FILE), json)
    }
}
