//! Broker configuration: a plain struct with one source of defaults, read from
//! TOML (unknown keys are errors) and checked by [`BrokerConfig::validate`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use raftmq_raft::RaftConfig;
use raftmq_store::commitlog::{CommitLogConfig, Durability};
use serde::Deserialize;

/// One replica of one broker group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Cluster name reported to nameservers. Default `DefaultCluster`.
    pub cluster: String,
    /// Broker group (= Raft group) name; also the broker name in routes. Default `broker-a`.
    pub group: String,
    /// This replica's node id within the group, > 0. Default 1.
    pub node_id: u64,
    /// Address the gRPC server binds (client API, Raft, admin). Default `127.0.0.1:8081`.
    pub listen: SocketAddr,
    /// Address other nodes and clients use to reach this one. Default: `listen`.
    pub advertise: Option<String>,
    /// Where the CommitLog, consume queues, index and checkpoints live. Default `./raftmq-data`.
    pub data_dir: PathBuf,
    /// Nameserver addresses (host:port); the broker registers with every one. Default none.
    pub namesrv: Vec<String>,
    /// Heartbeat period to nameservers, in ms. Default 2000.
    pub namesrv_heartbeat_ms: u64,
    /// `sync` (default: fsync on each replica before it acks) or `async` (page cache on a quorum).
    pub durability: DurabilityMode,
    /// Flush period in `async` mode, in ms. Default 100.
    pub async_flush_interval_ms: u64,
    /// CommitLog segment size in bytes. Default 128 MiB.
    pub segment_bytes: u64,
    /// Largest message body accepted, in bytes. Default 4 MiB.
    pub max_body_bytes: usize,
    /// State-machine checkpoint period, in ms. Default 5000.
    pub checkpoint_interval_ms: u64,
    /// How long a message is kept, in ms: the CommitLog is purged (whole
    /// segments) once every message before a pinned checkpoint is older. A
    /// delayed message still waiting holds retention back. Default 72 h, as
    /// RocketMQ.
    pub retention_ms: u64,
    /// Also purge the oldest messages, however young, beyond the newest this
    /// many bytes (0: no cap): the log then holds about this much, plus up to
    /// one pin interval of traffic and one segment. Default 0.
    pub retention_bytes: u64,
    /// A checkpoint is kept as a pin (a possible retention boundary and
    /// snapshot) at most this often, in ms: the granularity of retention.
    /// Default 600000 (10 min).
    pub pin_interval_ms: u64,
    /// Send proposals under way at once per replica; sends arriving meanwhile
    /// share the next Raft entry. Default 4.
    pub max_inflight_proposals: usize,
    /// Whether a receive from an unknown consumer group creates it with
    /// default settings (concurrent, 17 attempts), as RocketMQ's
    /// `autoCreateSubscriptionGroup`. When off, groups come from the admin API
    /// and an unknown one gets CONSUMER_GROUP_NOT_FOUND. Default true.
    pub auto_create_consumer_groups: bool,
    /// Invisible time of an `auto_renew` delivery (official push consumers),
    /// given on receive and on each server renewal, in ms. Default 60000.
    pub auto_renew_invisible_ms: u64,
    /// The server renews an `auto_renew` delivery when less than this is left, in ms. Default 10000.
    pub auto_renew_ahead_ms: u64,
    /// No renewal this long after the receive, in ms. Default 3 h.
    pub auto_renew_max_ms: u64,
    /// Raft timing.
    pub raft: RaftSection,
    /// The group's founding members. A node whose log is empty and whose id is
    /// listed here initializes the group with exactly these members; list the
    /// same members on every founding node. Empty = join later via AddReplica.
    pub initial_members: Vec<Member>,
    /// How the CommitLog reaches its files: `real` (default), or `undo-journal`, a fault-test
    /// backend that journals pre-images in `<data_dir>/undo-journal` so a SIGKILL can be
    /// turned into a loss of unsynced writes (`raftmq-broker-faults --replay-undo-journal`).
    /// Only a build with the cargo feature `fault-journal` accepts `undo-journal`.
    pub io_backend: IoBackendKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoBackendKind {
    Real,
    UndoJournal,
}

impl IoBackendKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "real" => Some(Self::Real),
            "undo-journal" => Some(Self::UndoJournal),
            _ => None,
        }
    }
}

/// Where the `undo-journal` backend keeps its journals (outside every directory the stores list).
pub const UNDO_JOURNAL_DIR: &str = "undo-journal";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    Sync,
    Async,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub id: u64,
    pub addr: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSection {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
}

impl Default for RaftSection {
    fn default() -> Self {
        let r = RaftConfig::default();
        Self {
            heartbeat_ms: r.heartbeat_ms,
            election_timeout_min_ms: r.election_timeout_min_ms,
            election_timeout_max_ms: r.election_timeout_max_ms,
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            cluster: "DefaultCluster".into(),
            group: "broker-a".into(),
            node_id: 1,
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            advertise: None,
            data_dir: PathBuf::from("./raftmq-data"),
            namesrv: Vec::new(),
            namesrv_heartbeat_ms: 2000,
            durability: DurabilityMode::Sync,
            async_flush_interval_ms: 100,
            segment_bytes: 128 * 1024 * 1024,
            max_body_bytes: 4 * 1024 * 1024,
            checkpoint_interval_ms: 5000,
            retention_ms: 72 * 3600 * 1000,
            retention_bytes: 0,
            pin_interval_ms: 600_000,
            max_inflight_proposals: 4,
            auto_create_consumer_groups: true,
            auto_renew_invisible_ms: 60_000,
            auto_renew_ahead_ms: 10_000,
            auto_renew_max_ms: 3 * 3600 * 1000,
            raft: RaftSection::default(),
            initial_members: Vec::new(),
            io_backend: IoBackendKind::Real,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("bad config file {path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("{0}")]
    Invalid(String),
}

impl BrokerConfig {
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), source: Box::new(e) })
    }

    pub fn advertised_addr(&self) -> String {
        self.advertise.clone().unwrap_or_else(|| self.listen.to_string())
    }

    pub fn raft_config(&self) -> RaftConfig {
        RaftConfig {
            heartbeat_ms: self.raft.heartbeat_ms,
            election_timeout_min_ms: self.raft.election_timeout_min_ms,
            election_timeout_max_ms: self.raft.election_timeout_max_ms,
            ..RaftConfig::default()
        }
    }

    pub fn renew_policy(&self) -> crate::service::renew::RenewPolicy {
        crate::service::renew::RenewPolicy {
            invisible: Duration::from_millis(self.auto_renew_invisible_ms),
            ahead: Duration::from_millis(self.auto_renew_ahead_ms),
            max_total: Duration::from_millis(self.auto_renew_max_ms),
        }
    }

    pub fn commitlog_config(&self) -> CommitLogConfig {
        CommitLogConfig {
            segment_bytes: self.segment_bytes,
            durability: match self.durability {
                DurabilityMode::Sync => Durability::Sync,
                DurabilityMode::Async => {
                    Durability::Async { flush_interval: Duration::from_millis(self.async_flush_interval_ms) }
                }
            },
            ..CommitLogConfig::default()
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.node_id == 0 {
            return bad("node_id must be > 0".into());
        }
        if !valid_name(&self.group) {
            return bad(format!("group '{}' must be 1-127 characters of [A-Za-z0-9_-]", self.group));
        }
        if self.cluster.is_empty() {
            return bad("cluster must not be empty".into());
        }
        if self.namesrv_heartbeat_ms == 0 || self.checkpoint_interval_ms == 0 || self.async_flush_interval_ms == 0 {
            return bad("namesrv_heartbeat_ms, checkpoint_interval_ms and async_flush_interval_ms must be > 0".into());
        }
        let (inv, ahead) = (self.auto_renew_invisible_ms, self.auto_renew_ahead_ms);
        let min_inv = crate::service::consume::MIN_INVISIBLE.as_millis() as u64;
        let max_inv = crate::service::consume::MAX_INVISIBLE.as_millis() as u64;
        if !(min_inv..=max_inv).contains(&inv) || ahead == 0 || ahead >= inv || self.auto_renew_max_ms < inv {
            return bad(format!(
                "auto_renew_invisible_ms ({inv}) must lie in [{min_inv}, {max_inv}], auto_renew_ahead_ms ({ahead}) \
                 in (0, auto_renew_invisible_ms), and auto_renew_max_ms ({}) must be at least auto_renew_invisible_ms",
                self.auto_renew_max_ms
            ));
        }
        if self.retention_ms == 0 || self.pin_interval_ms == 0 || self.pin_interval_ms > self.retention_ms {
            return bad(format!(
                "retention_ms ({}) must be > 0 and pin_interval_ms ({}) in (0, retention_ms]",
                self.retention_ms, self.pin_interval_ms
            ));
        }
        if self.retention_bytes != 0 && self.retention_bytes < 2 * self.segment_bytes {
            return bad(format!(
                "retention_bytes ({}) must be 0 (no cap) or at least two segments ({} bytes)",
                self.retention_bytes,
                2 * self.segment_bytes
            ));
        }
        if self.max_inflight_proposals == 0 {
            return bad("max_inflight_proposals must be > 0".into());
        }
        if self.max_body_bytes == 0 || (self.max_body_bytes as u64) * 2 > self.segment_bytes {
            return bad(format!(
                "max_body_bytes ({}) must be > 0 and at most half of segment_bytes ({})",
                self.max_body_bytes, self.segment_bytes
            ));
        }
        if self.io_backend == IoBackendKind::UndoJournal && !cfg!(feature = "fault-journal") {
            return bad("io_backend \"undo-journal\" is a fault-test backend this build does not contain: \
                 build raftmq-broker-faults (cargo build --release -p raftmq-broker --features fault-journal \
                 --bin raftmq-broker-faults)"
                .into());
        }
        self.commitlog_config().validate().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        self.raft_config().validate().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let mut ids: Vec<u64> = self.initial_members.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != self.initial_members.len() || ids.contains(&0) {
            return bad("initial_members must have distinct ids > 0".into());
        }
        if !self.initial_members.is_empty() && !ids.contains(&self.node_id) {
            return bad(format!("initial_members does not list this node's id {}", self.node_id));
        }
        Ok(())
    }
}

/// Group and cluster names share RocketMQ's topic alphabet, without `%` and `|`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 127 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_toml_overrides() {
        BrokerConfig::default().validate().unwrap();
        let c: BrokerConfig = toml::from_str(
            "group = \"g2\"\nnode_id = 3\ndurability = \"async\"\n[[initial_members]]\nid = 3\naddr = \"h:1\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.durability, DurabilityMode::Async);
    }

    #[test]
    fn invalid_configs_say_what_is_wrong() {
        let c = BrokerConfig { node_id: 0, ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("node_id"));
        let c = BrokerConfig { group: "a b".into(), ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("group"));
        let c = BrokerConfig { initial_members: vec![Member { id: 2, addr: "x:1".into() }], ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("does not list"));
        assert!(toml::from_str::<BrokerConfig>("bogus = 1").is_err());
    }

    #[test]
    fn the_undo_journal_backend_needs_the_fault_journal_build() {
        let c: BrokerConfig = toml::from_str("io_backend = \"undo-journal\"").unwrap();
        assert_eq!(c.io_backend, IoBackendKind::UndoJournal);
        assert_eq!(c.validate().is_ok(), cfg!(feature = "fault-journal"));
        if !cfg!(feature = "fault-journal") {
            assert!(c.validate().unwrap_err().to_string().contains("--features fault-journal"));
        }
        assert_eq!(IoBackendKind::parse("real"), Some(IoBackendKind::Real));
        assert_eq!(IoBackendKind::parse("journal"), None);
    }
}
