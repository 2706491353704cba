//! An in-process cluster on loopback: one nameserver and one or more broker
//! groups of N replicas, each replica with its own port and data folder.
//! Used by `raftmq dev` and `raftmq bench`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use raftmq_broker::BrokerNode;
use raftmq_broker::config::{BrokerConfig, DurabilityMode, Member};
use raftmq_namesrv::server::NameServerHandle;

pub struct DevClusterSpec {
    pub groups: usize,
    pub replicas: usize,
    pub data_dir: PathBuf,
    pub namesrv_port: u16,
    /// Group g's replica r listens on base_port + 10*g + r.
    pub base_port: u16,
    pub durability: DurabilityMode,
}

impl DevClusterSpec {
    /// One group of three replicas on `base_port..`, the nameserver on `base_port + 9`, sync durability.
    pub fn three_replicas(dir: &Path, base_port: u16) -> Self {
        Self::groups_of_three(dir, base_port, 1)
    }

    /// `groups` groups of three replicas (group g on `base_port + 10 g ..`), the nameserver on
    /// `base_port + 9`, sync durability.
    pub fn groups_of_three(dir: &Path, base_port: u16, groups: usize) -> Self {
        DevClusterSpec {
            groups,
            replicas: 3,
            data_dir: dir.to_path_buf(),
            namesrv_port: base_port + 9,
            base_port,
            durability: DurabilityMode::Sync,
        }
    }
}

pub struct DevCluster {
    pub namesrv: NameServerHandle,
    pub namesrv_addr: String,
    /// `nodes[g][r]`; a killed replica is `None`.
    pub nodes: Vec<Vec<Option<BrokerNode>>>,
    configs: Vec<Vec<BrokerConfig>>,
}

pub fn group_name(g: usize) -> String {
    format!("broker-{}", (b'a' + g as u8) as char)
}

impl DevCluster {
    pub async fn start(spec: &DevClusterSpec) -> Result<Self, String> {
        Self::start_with(spec, |_| {}).await
    }

    /// As [`DevCluster::start`], with `tweak` applied to every broker's config.
    pub async fn start_with(spec: &DevClusterSpec, tweak: impl Fn(&mut BrokerConfig)) -> Result<Self, String> {
        let ns_config = raftmq_namesrv::config::Config {
            listen: ([127, 0, 0, 1], spec.namesrv_port).into(),
            broker_expiry: Duration::from_secs(6),
            ..Default::default()
        };
        let namesrv =
            raftmq_namesrv::server::serve(ns_config, std::future::pending()).await.map_err(|e| e.to_string())?;
        let namesrv_addr = namesrv.local_addr().to_string();
        let mut configs: Vec<Vec<BrokerConfig>> = Vec::new();
        for g in 0..spec.groups {
            let ports: Vec<u16> = (0..spec.replicas).map(|r| spec.base_port + (10 * g + r) as u16).collect();
            let members: Vec<Member> = ports
                .iter()
                .enumerate()
                .map(|(r, p)| Member { id: r as u64 + 1, addr: format!("127.0.0.1:{p}") })
                .collect();
            configs.push(
                ports
                    .iter()
                    .enumerate()
                    .map(|(r, p)| BrokerConfig {
                        group: group_name(g),
                        node_id: r as u64 + 1,
                        listen: ([127, 0, 0, 1], *p).into(),
                        data_dir: node_dir(&spec.data_dir, g, r),
                        namesrv: vec![namesrv_addr.clone()],
                        durability: spec.durability,
                        segment_bytes: 64 * 1024 * 1024,
                        initial_members: members.clone(),
                        ..Default::default()
                    })
                    .map(|mut c| {
                        tweak(&mut c);
                        c
                    })
                    .collect(),
            );
        }
        let mut nodes = Vec::new();
        for group in &configs {
            let started = futures::future::join_all(group.iter().map(|c| BrokerNode::start(c.clone()))).await;
            let mut g = Vec::new();
            for n in started {
                g.push(Some(n.map_err(|e| e.to_string())?));
            }
            nodes.push(g);
        }
        Ok(Self { namesrv, namesrv_addr, nodes, configs })
    }

    /// One 3-replica group in `dir` (sync durability) with a leader elected:
    /// the fixture the cluster tests start from.
    pub async fn three_replicas(dir: &Path, base_port: u16) -> Result<Self, String> {
        let c = Self::start(&DevClusterSpec::three_replicas(dir, base_port)).await?;
        c.wait_for_leaders(Duration::from_secs(10)).await?;
        Ok(c)
    }

    /// Waits until every group has a leader and the nameserver knows it (a
    /// leader's registration reaches the nameserver a moment after its election,
    /// and until then admin calls find no group); returns each group's leader
    /// (replica index).
    pub async fn wait_for_leaders(&self, timeout: Duration) -> Result<Vec<usize>, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let client =
            raftmq_client::Cluster::new(std::slice::from_ref(&self.namesrv_addr)).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for g in 0..self.nodes.len() {
            loop {
                if let Some(r) = self.leader_of(g) {
                    let registered = client.groups().await.ok().is_some_and(|groups| {
                        groups.iter().any(|i| i.group == group_name(g) && i.leader_id == self.configs[g][r].node_id)
                    });
                    if registered {
                        out.push(r);
                        break;
                    }
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(format!("group {} elected no leader known to the nameserver", group_name(g)));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(out)
    }

    /// The replica that leads group `g`: of those that believe they lead (a
    /// restarted old leader may, briefly), the one with the highest term.
    pub fn leader_of(&self, g: usize) -> Option<usize> {
        self.nodes[g]
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().filter(|n| n.is_leader()).map(|n| (n.term(), i)))
            .max()
            .map(|(_, i)| i)
    }

    pub async fn kill(&mut self, g: usize, r: usize) {
        if let Some(n) = self.nodes[g][r].take() {
            n.kill().await;
        }
    }

    /// A graceful stop of replica `r` of group `g` (SIGTERM in production).
    pub async fn stop(&mut self, g: usize, r: usize) {
        if let Some(n) = self.nodes[g][r].take() {
            n.shutdown().await;
        }
    }

    pub async fn restart(&mut self, g: usize, r: usize) -> Result<(), String> {
        let n = BrokerNode::start(self.configs[g][r].clone()).await.map_err(|e| e.to_string())?;
        self.nodes[g][r] = Some(n);
        Ok(())
    }

    /// Starts a new, empty replica of group `g` that founds nothing: it waits
    /// to be added with the admin `AddReplica` call. Returns its address.
    pub async fn start_joiner(&mut self, g: usize, node_id: u64, port: u16) -> Result<String, String> {
        let base = self.configs[g][0].clone();
        let dir = base.data_dir.parent().map(|p| p.join(format!("node-{node_id}"))).unwrap_or_default();
        let config = BrokerConfig {
            node_id,
            listen: ([127, 0, 0, 1], port).into(),
            data_dir: dir,
            initial_members: Vec::new(),
            ..base
        };
        let n = BrokerNode::start(config.clone()).await.map_err(|e| e.to_string())?;
        let addr = n.addr.clone();
        self.configs[g].push(config);
        self.nodes[g].push(Some(n));
        Ok(addr)
    }

    pub async fn shutdown(self) {
        for group in self.nodes {
            futures::future::join_all(group.into_iter().flatten().map(|n| n.shutdown())).await;
        }
        let _ = self.namesrv.shutdown().await;
    }
}

fn node_dir(base: &Path, g: usize, r: usize) -> PathBuf {
    base.join(group_name(g)).join(format!("node-{}", r + 1))
}
