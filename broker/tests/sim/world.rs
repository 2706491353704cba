//! What the test thread shares with the simulated hosts: the running replicas' handles, the
//! client history, and per-node boot counters. Everything runs on one OS thread (turmoil steps
//! the hosts one after another), so plain mutexes are never contended.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use raftmq_broker::sm::{BrokerStateMachine, Shared};
use raftmq_raft::Raft;
use raftmq_store::io::FaultyIo;

pub const GROUP: &str = "sim";
pub const TOPIC: &str = "sim-topic";
pub const QUEUES: i32 = 2;
pub const NODES: [u64; 3] = [1, 2, 3];

pub fn host(id: u64) -> String {
    format!("n{id}")
}

/// One running replica, as the checker sees it.
#[derive(Clone)]
pub struct Replica {
    pub raft: Raft<BrokerStateMachine>,
    pub shared: Arc<Shared>,
    /// The CommitLog's I/O: `crash()` reverts every file to its last sync (power loss).
    pub io: FaultyIo,
    pub boot: u32,
}

/// What clients were told, by value (every sent value is unique).
#[derive(Default)]
pub struct History {
    pub sent: BTreeMap<String, Outcome>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    /// Acknowledged at (queue, offset).
    Acked(i32, i64),
    /// Refused by the state machine: stored nowhere.
    Refused,
    /// A timeout or a lost connection: it may or may not be stored.
    Unknown,
}

pub struct World {
    pub seed: u64,
    pub dir: PathBuf,
    pub producing: AtomicBool,
    replicas: Mutex<BTreeMap<u64, Replica>>,
    boots: Mutex<BTreeMap<u64, u32>>,
    history: Mutex<History>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl World {
    pub fn new(seed: u64, dir: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            seed,
            dir,
            producing: AtomicBool::new(true),
            replicas: Mutex::default(),
            boots: Mutex::default(),
            history: Mutex::default(),
        })
    }

    pub fn next_boot(&self, id: u64) -> u32 {
        let mut boots = lock(&self.boots);
        let b = boots.entry(id).or_insert(0);
        *b += 1;
        *b
    }

    /// A number unique to (seed, node, boot): that boot's workload RNG seed and its proposer's
    /// run id, so a replayed seed sends and stamps the same.
    pub fn boot_seed(&self, id: u64, boot: u32) -> u64 {
        self.seed ^ (id << 48) ^ (u64::from(boot) << 32)
    }

    pub fn register(&self, id: u64, r: Replica) {
        lock(&self.replicas).insert(id, r);
    }

    /// Forgets a replica the simulation is about to crash.
    pub fn unregister(&self, id: u64) -> Option<Replica> {
        lock(&self.replicas).remove(&id)
    }

    pub fn replicas(&self) -> BTreeMap<u64, Replica> {
        lock(&self.replicas).clone()
    }

    pub fn producing(&self) -> bool {
        self.producing.load(Ordering::Relaxed)
    }

    pub fn history(&self) -> MutexGuard<'_, History> {
        lock(&self.history)
    }
}
