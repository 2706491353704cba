//! [`Testbed`]: the running cluster and its verbs (`start`, `leader`, `kill`, `restart`,
//! `pause`, `resume`, `isolate`, `heal`, `lose_unsynced`, `restart_with_skew`), shared by the
//! nemesis and the runner.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use raftmq_client::Cluster;
use raftmq_proto::broker::{
    AddReplicaRequest, MembershipResponse, NodeStatusRequest, RemoveReplicaRequest, TransferLeaderRequest,
};

use super::net::{Member, Topology};
use super::procs::{self, Launch};
use super::registry::{self, Record};

/// The broker group every node belongs to.
pub const GROUP: &str = "broker-a";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Up,
    Killed,
    Paused,
}

pub struct Settings {
    pub broker_bin: PathBuf,
    pub namesrv_bin: PathBuf,
    pub run_dir: PathBuf,
    pub durability: String,
    /// Start every broker with `--io-backend undo-journal` (`broker_bin` must then be the
    /// `raftmq-broker-faults` build), so `lose_unsynced` can revert unsynced writes.
    pub undo_journal: bool,
    /// libfaketime, for `restart_with_skew`.
    pub faketime_lib: Option<PathBuf>,
}

pub struct Testbed {
    pub topo: Topology,
    settings: Settings,
    /// Admin calls (leader lookup); the workload has its own clients.
    admin: Cluster,
    state: Mutex<State>,
}

struct State {
    /// Index 0 is the nameserver, then brokers 1..=n.
    pids: Vec<Option<i32>>,
    nodes: Vec<NodeState>,
    /// Brokers removed from the group's membership (they keep running).
    removed: Vec<usize>,
    /// Each broker's wall-clock offset in seconds (0: the true clock), applied at its next start.
    skew: Vec<i64>,
    record: Record,
}

impl Testbed {
    pub fn new(topo: Topology, settings: Settings) -> Result<Self, String> {
        let admin = Cluster::new(&[topo.namesrv_addr()]).map_err(|e| e.to_string())?;
        let record = Record {
            id: topo.id,
            nodes: topo.nodes,
            runner_pid: std::process::id() as i32,
            run_dir: settings.run_dir.clone(),
            procs: Vec::new(),
        };
        record.save()?;
        let n = topo.nodes;
        Ok(Self {
            topo,
            settings,
            admin,
            state: Mutex::new(State {
                pids: vec![None; n + 1],
                nodes: vec![NodeState::Up; n],
                removed: Vec::new(),
                skew: vec![0; n],
                record,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn node_name(i: usize) -> String {
        format!("n{i}")
    }

    pub fn broker_launch(&self, i: usize) -> Launch {
        let t = &self.topo;
        let dir = &self.settings.run_dir;
        let mut args = vec![
            "--group".to_string(),
            GROUP.into(),
            "--node-id".into(),
            i.to_string(),
            "--listen".into(),
            t.broker_addr(i),
            "--advertise".into(),
            t.broker_addr(i),
            "--data-dir".into(),
            self.data_dir(i).display().to_string(),
            "--namesrv".into(),
            t.namesrv_addr(),
            "--durability".into(),
            self.settings.durability.clone(),
        ];
        for m in 1..=t.nodes {
            args.push("--member".into());
            args.push(format!("{m}={}", t.broker_addr(m)));
        }
        if self.settings.undo_journal {
            args.extend(["--io-backend".into(), "undo-journal".into()]);
        }
        let skew = self.lock().skew[i - 1];
        Launch {
            ns: t.ns(Member::Broker(i)),
            binary: self.settings.broker_bin.clone(),
            args,
            pidfile: dir.join("pids").join(format!("{}.pid", Self::node_name(i))),
            log: dir.join("logs").join(format!("{}.log", Self::node_name(i))),
            env: match (&self.settings.faketime_lib, skew) {
                (Some(lib), s) if s != 0 => faketime_env(lib, s),
                _ => Vec::new(),
            },
        }
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.settings.run_dir.join("data").join(Self::node_name(i))
    }

    pub fn namesrv_launch(&self) -> Launch {
        let dir = &self.settings.run_dir;
        Launch {
            ns: self.topo.ns(Member::Namesrv),
            binary: self.settings.namesrv_bin.clone(),
            args: vec!["--listen".into(), self.topo.namesrv_addr(), "--broker-expiry-ms".into(), "5000".into()],
            pidfile: dir.join("pids").join("namesrv.pid"),
            log: dir.join("logs").join("namesrv.log"),
            env: Vec::new(),
        }
    }

    async fn spawn(&self, slot: usize, launch: Launch) -> Result<(), String> {
        let pid = launch.spawn().await?;
        let mut s = self.lock();
        s.pids[slot] = Some(pid);
        s.record.procs.push((pid, launch.binary.clone()));
        s.record.save()
    }

    /// Starts the nameserver and every broker.
    pub async fn start(&self) -> Result<(), String> {
        std::fs::create_dir_all(self.settings.run_dir.join("pids")).map_err(|e| e.to_string())?;
        self.spawn(0, self.namesrv_launch()).await?;
        for i in 1..=self.topo.nodes {
            self.spawn(i, self.broker_launch(i)).await?;
        }
        Ok(())
    }

    pub fn state(&self, i: usize) -> NodeState {
        self.lock().nodes[i - 1]
    }

    /// The leader as the replicas see it: the node claiming leadership with the highest term,
    /// among the nodes that answer within 1 s. `None` while there is none (or none reachable).
    pub async fn leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        let asks = (1..=self.topo.nodes).filter(|i| self.state(*i) == NodeState::Up).map(|i| async move {
            let mut admin = self.admin.admin(&self.topo.broker_addr(i)).ok()?;
            let mut req = tonic::Request::new(NodeStatusRequest {});
            req.set_timeout(Duration::from_secs(1));
            let resp = tokio::time::timeout(Duration::from_millis(1500), admin.node_status(req)).await.ok()?.ok()?;
            let me = resp.into_inner().self_?;
            (me.role == "leader").then_some((me.term, i))
        });
        for (term, i) in futures::future::join_all(asks).await.into_iter().flatten() {
            if best.is_none_or(|(t, _)| term > t) {
                best = Some((term, i));
            }
        }
        best.map(|(_, i)| i)
    }

    /// Waits up to `limit` for a leader.
    pub async fn wait_for_leader(&self, limit: Duration) -> Option<usize> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(l) = self.leader().await {
                return Some(l);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn kill(&self, i: usize) -> Result<(), String> {
        let pid = self.lock().pids[i].ok_or(format!("n{i} has no process"))?;
        procs::kill_and_wait(pid, &self.settings.broker_bin).await;
        let mut s = self.lock();
        s.pids[i] = None;
        s.nodes[i - 1] = NodeState::Killed;
        Ok(())
    }

    /// SIGKILLs node `i`, then reverts every write it had not fsynced, from the undo journal
    /// of the fault-test broker (`raftmq-broker-faults --replay-undo-journal`): its disk is then
    /// what a power loss at the kill would have left. Returns the replay's summary line. The
    /// node stays down until [`restart`](Self::restart).
    pub async fn lose_unsynced(&self, i: usize) -> Result<String, String> {
        if !self.settings.undo_journal {
            return Err("the brokers run without the undo journal (needs the fault-test broker)".into());
        }
        self.kill(i).await?;
        let out = tokio::process::Command::new(&self.settings.broker_bin)
            .arg("--data-dir")
            .arg(self.data_dir(i))
            .arg("--replay-undo-journal")
            .output()
            .await
            .map_err(|e| format!("running {} --replay-undo-journal: {e}", self.settings.broker_bin.display()))?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
        if !out.status.success() {
            return Err(format!("replaying n{i}'s undo journal failed: {}", text(&out.stderr)));
        }
        Ok(text(&out.stdout))
    }

    /// Stops node `i` cleanly (SIGTERM, SIGKILL after 5 s) and starts it again with its wall
    /// clock `secs` off (0: the true clock), through libfaketime.
    pub async fn restart_with_skew(&self, i: usize, secs: i64) -> Result<(), String> {
        if secs != 0 && self.settings.faketime_lib.is_none() {
            return Err("no libfaketime (apt-get install faketime)".into());
        }
        let pid = self.lock().pids[i].ok_or(format!("n{i} has no process"))?;
        procs::stop_and_wait(pid, &self.settings.broker_bin, Duration::from_secs(5)).await;
        {
            let mut s = self.lock();
            s.pids[i] = None;
            s.nodes[i - 1] = NodeState::Killed;
            s.skew[i - 1] = secs;
        }
        // The node is down now: a start that failed here would leave it down under a `fail`
        // (never took effect) record, so a failed spawn is retried before giving up.
        let mut last = Ok(());
        for _ in 0..3 {
            last = self.restart(i).await;
            if last.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        last
    }

    /// Nodes running with a skewed clock.
    pub fn skewed(&self) -> Vec<usize> {
        let s = self.lock();
        (1..=self.topo.nodes).filter(|i| s.skew[i - 1] != 0).collect()
    }

    /// Restarts a killed node on its data dir.
    pub async fn restart(&self, i: usize) -> Result<(), String> {
        self.spawn(i, self.broker_launch(i)).await?;
        self.lock().nodes[i - 1] = NodeState::Up;
        Ok(())
    }

    fn signal(&self, i: usize, sig: i32, then: NodeState) -> Result<(), String> {
        let mut s = self.lock();
        let pid = s.pids[i].ok_or(format!("n{i} has no process"))?;
        if !procs::signal(pid, &self.settings.broker_bin, sig) {
            return Err(format!("n{i} (pid {pid}) is not running"));
        }
        s.nodes[i - 1] = then;
        Ok(())
    }

    pub fn pause(&self, i: usize) -> Result<(), String> {
        self.signal(i, libc::SIGSTOP, NodeState::Paused)
    }

    pub fn resume(&self, i: usize) -> Result<(), String> {
        self.signal(i, libc::SIGCONT, NodeState::Up)
    }

    /// Makes broker `i` drop all traffic to and from the brokers in `from`.
    pub fn isolate(&self, i: usize, from: &[usize]) -> Result<(), String> {
        self.drop_traffic(i, from, true, true)
    }

    /// Makes broker `i` drop traffic from (`inbound`) and/or to (`outbound`) the brokers in `from`.
    pub fn drop_traffic(&self, i: usize, from: &[usize], inbound: bool, outbound: bool) -> Result<(), String> {
        let peers: Vec<Member> = from.iter().map(|p| Member::Broker(*p)).collect();
        self.topo.nft_apply(Member::Broker(i), &self.topo.drop_script(&peers, inbound, outbound))
    }

    /// Runs a membership call on any answering node (the broker forwards it to the leader).
    async fn membership<F, Fut>(&self, what: &str, call: F) -> Result<(), String>
    where
        F: Fn(raftmq_proto::broker::admin_client::AdminClient<tonic::transport::Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<MembershipResponse>, tonic::Status>>,
    {
        let mut last = format!("{what}: no node answered");
        for i in (1..=self.topo.nodes).filter(|i| self.state(*i) == NodeState::Up) {
            let admin = self.admin.admin(&self.topo.broker_addr(i)).map_err(|e| e.to_string())?;
            match tokio::time::timeout(Duration::from_secs(15), call(admin)).await {
                Ok(Ok(r)) => {
                    return match r.into_inner().error {
                        None => Ok(()),
                        Some(e) => Err(format!("{what}: {} ({})", e.message, e.code)),
                    };
                }
                Ok(Err(s)) => last = format!("{what} via n{i}: {}", s.message()),
                Err(_) => last = format!("{what} via n{i}: no answer in 15 s"),
            }
        }
        Err(last)
    }

    pub async fn remove_replica(&self, i: usize) -> Result<(), String> {
        let id = i as u64;
        self.membership(&format!("remove n{i}"), |mut a| async move {
            a.remove_replica(RemoveReplicaRequest { node_id: id }).await
        })
        .await?;
        self.lock().removed.push(i);
        Ok(())
    }

    pub async fn add_replica(&self, i: usize) -> Result<(), String> {
        let (id, addr) = (i as u64, self.topo.broker_addr(i));
        self.membership(&format!("add n{i}"), |mut a| {
            let addr = addr.clone();
            async move { a.add_replica(AddReplicaRequest { node_id: id, addr }).await }
        })
        .await?;
        self.lock().removed.retain(|r| *r != i);
        Ok(())
    }

    pub async fn transfer_leader(&self, to: usize) -> Result<(), String> {
        let id = to as u64;
        self.membership(&format!("transfer leadership to n{to}"), |mut a| async move {
            a.transfer_leader(TransferLeaderRequest { node_id: id }).await
        })
        .await
    }

    /// Brokers currently removed from the membership.
    pub fn removed(&self) -> Vec<usize> {
        self.lock().removed.clone()
    }

    /// Removes every network fault from every broker.
    pub fn heal_network(&self) {
        for i in 1..=self.topo.nodes {
            self.topo.nft_heal(Member::Broker(i));
        }
    }

    /// Heals everything: network, paused and killed nodes, skewed clocks.
    pub async fn heal_all(&self) -> Result<(), String> {
        self.heal_network();
        for i in 1..=self.topo.nodes {
            match self.state(i) {
                NodeState::Up => {}
                NodeState::Paused => self.resume(i)?,
                NodeState::Killed => {
                    self.lock().skew[i - 1] = 0;
                    self.restart(i).await?
                }
            }
        }
        for i in self.skewed() {
            self.restart_with_skew(i, 0).await?;
        }
        // Adding needs a leader, which a restart may not have yet.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        for i in self.removed() {
            while let Err(e) = self.add_replica(i).await {
                if tokio::time::Instant::now() >= deadline {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Ok(())
    }

    /// Kills every process started and deletes the network.
    pub async fn destroy(&self) {
        let record = self.lock().record.clone();
        registry::destroy(&self.topo, &record.procs).await;
        record.remove();
    }
}

/// libfaketime's environment for a wall clock `secs` off. Only `CLOCK_REALTIME` moves: the
/// broker's timers (Raft elections, heartbeats, deadlines) run on the monotonic clock, and a
/// skewed node in production has a wrong wall clock, not a wrong notion of elapsed time. File
/// timestamps are left alone.
pub fn faketime_env(lib: &std::path::Path, secs: i64) -> Vec<(String, String)> {
    vec![
        ("LD_PRELOAD".into(), lib.display().to_string()),
        ("FAKETIME".into(), format!("{secs:+}")),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ("NO_FAKE_STAT".into(), "1".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faketime_offsets_carry_their_sign() {
        let env = faketime_env(std::path::Path::new("/l/libfaketime.so.1"), -42);
        assert!(env.contains(&("FAKETIME".into(), "-42".into())));
        assert!(faketime_env(std::path::Path::new("/l"), 7).contains(&("FAKETIME".into(), "+7".into())));
        assert!(env.contains(&("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into())));
    }
}
