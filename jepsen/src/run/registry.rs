//! What each run created, on disk, so a crashed run's leftovers can be removed by id.
//!
//! `/run/raftmq-jepsen/<id>.json` names the runner's PID, the network ([`Topology`]) and every
//! process started (PID and binary). A record whose runner is gone is a leftover: `cleanup` (and
//! every `run` at startup) kills its processes by PID, deletes its namespaces and link, and
//! removes the record. Namespaces named like ours but without a live record are leftovers too.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::net::{self, Topology};
use super::procs;

const DIR: &str = "/run/raftmq-jepsen";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Record {
    pub id: u8,
    pub nodes: usize,
    pub runner_pid: i32,
    pub run_dir: PathBuf,
    /// Every process started, with its binary (checked before any signal).
    pub procs: Vec<(i32, PathBuf)>,
}

impl Record {
    fn path(id: u8) -> PathBuf {
        Path::new(DIR).join(format!("{id}.json"))
    }

    pub fn save(&self) -> Result<(), String> {
        fs::create_dir_all(DIR).map_err(|e| format!("{DIR}: {e}"))?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        fs::write(Self::path(self.id), json).map_err(|e| format!("{}: {e}", Self::path(self.id).display()))
    }

    pub fn remove(&self) {
        let _ = fs::remove_file(Self::path(self.id));
    }

    fn runner_alive(&self) -> bool {
        self.runner_pid != std::process::id() as i32
            && procs::alive(self.runner_pid)
            && fs::read_to_string(format!("/proc/{}/cmdline", self.runner_pid))
                .is_ok_and(|c| c.contains("raftmq-jepsen"))
    }
}

fn records() -> Vec<Record> {
    let Ok(dir) = fs::read_dir(DIR) else { return Vec::new() };
    dir.filter_map(Result::ok)
        .filter_map(|e| fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<Record>(&b).ok())
        .collect()
}

/// Ids in use by live runs, or by anything on the machine that carries the id.
fn ids_in_use() -> BTreeSet<u8> {
    let mut used: BTreeSet<u8> = records().iter().map(|r| r.id).collect();
    used.extend(net::list_namespaces().iter().filter_map(|n| net::run_id_of(n)));
    used.extend(net::list_root_links().iter().filter_map(|n| net::run_id_of(n)));
    used
}

/// A free run id (its /24 and names are unused).
pub fn allocate() -> Result<u8, String> {
    let used = ids_in_use();
    (1..=250u8).find(|i| !used.contains(i)).ok_or_else(|| "all 250 run ids are in use; run `cleanup`".into())
}

/// Kills a run's processes by PID and deletes its network.
pub async fn destroy(topo: &Topology, procs_started: &[(i32, PathBuf)]) {
    for (pid, bin) in procs_started {
        procs::kill_and_wait(*pid, bin).await;
    }
    // Anything else still inside our namespaces was started there by this tool.
    for ns in topo.namespaces() {
        for pid in net::namespace_pids(&ns) {
            // SAFETY: kill(2) has no memory-safety preconditions; the PID lives in our namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    for ns in topo.namespaces() {
        for _ in 0..100 {
            if net::namespace_pids(&ns).is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    topo.teardown();
}

/// Removes every leftover of runs whose runner is gone. Returns the ids cleaned.
pub async fn cleanup_leftovers() -> Vec<u8> {
    let mut cleaned = Vec::new();
    let mut live = BTreeSet::new();
    for r in records() {
        if r.runner_alive() {
            live.insert(r.id);
            continue;
        }
        destroy(&Topology::new(r.id, r.nodes), &r.procs).await;
        r.remove();
        cleaned.push(r.id);
    }
    // Namespaces or links without a record (the runner died before writing it).
    let mut orphans: BTreeSet<u8> = net::list_namespaces().iter().filter_map(|n| net::run_id_of(n)).collect();
    orphans.extend(net::list_root_links().iter().filter_map(|n| net::run_id_of(n)));
    for id in orphans {
        if live.contains(&id) {
            continue;
        }
        let nodes = net::list_namespaces()
            .iter()
            .filter(|n| net::run_id_of(n) == Some(id) && n.contains("-n") && !n.ends_with("-ns"))
            .count();
        destroy(&Topology::new(id, nodes.max(9)), &[]).await;
        if !cleaned.contains(&id) {
            cleaned.push(id);
        }
    }
    cleaned
}
