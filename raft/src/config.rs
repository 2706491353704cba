//! Raft timing for a broker group, with one source of defaults and a typed
//! `validate()`, turned into an `openraft::Config`.

use std::sync::Arc;

use openraft::SnapshotPolicy;

/// How a broker group's replicas time each other out.
///
/// The defaults aim at a new leader serving writes about one second after a
/// silent leader death: followers notice after the leader lease
/// (`election_timeout_max_ms`) and elect after a random `min..max` timeout, and
/// pre-vote keeps a partitioned node from inflating the term when it returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    /// Leader → follower heartbeat period. Default 100 ms.
    pub heartbeat_ms: u64,
    /// Lower bound of the randomized election timeout. Default 400 ms.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout (also the leader lease). Default 700 ms.
    pub election_timeout_max_ms: u64,
    /// Entries per AppendEntries RPC. Default 512 (the log store also caps bytes).
    pub max_payload_entries: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        Self { heartbeat_ms: 100, election_timeout_min_ms: 400, election_timeout_max_ms: 700, max_payload_entries: 512 }
    }
}

/// A [`RaftConfig`] that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RaftConfigError {
    #[error("raft.heartbeat_ms must be > 0")]
    ZeroHeartbeat,
    #[error(
        "raft.election_timeout_min_ms ({min}) must be at least 2 x heartbeat_ms ({hb}) and below election_timeout_max_ms ({max})"
    )]
    ElectionTimeout { min: u64, max: u64, hb: u64 },
    #[error("raft.max_payload_entries must be > 0")]
    ZeroPayload,
    #[error("openraft rejected the config: {0}")]
    Openraft(String),
}

impl RaftConfig {
    pub fn validate(&self) -> Result<(), RaftConfigError> {
        if self.heartbeat_ms == 0 {
            return Err(RaftConfigError::ZeroHeartbeat);
        }
        let (min, max, hb) = (self.election_timeout_min_ms, self.election_timeout_max_ms, self.heartbeat_ms);
        if min < 2 * hb || min >= max {
            return Err(RaftConfigError::ElectionTimeout { min, max, hb });
        }
        if self.max_payload_entries == 0 {
            return Err(RaftConfigError::ZeroPayload);
        }
        Ok(())
    }

    /// The openraft config for one group.
    ///
    /// Snapshots are never built by policy and openraft never purges on its own
    /// (`max_in_snapshot_log_to_keep = u64::MAX`): the log is purged only by
    /// retention, at segment boundaries, behind a checkpoint pinned there, so a
    /// lagging replica still receives every retained entry through replication.
    pub fn to_openraft(&self, group: &str) -> Result<Arc<openraft::Config>, RaftConfigError> {
        self.validate()?;
        let cfg = openraft::Config {
            cluster_name: group.to_string(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            max_payload_entries: self.max_payload_entries,
            install_snapshot_timeout: 10_000,
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: u64::MAX,
            enable_pre_vote: Some(true),
            // A leader that restarts must win an election again. Restoring leadership in the
            // same term is unsafe with a log that loses its unsynced tail in a power loss:
            // entries the leader had already sent to followers come back as *different*
            // entries under the same (term, index), and followers append after them because
            // the log ids match (found by the simulation, broker/tests/sim, seeds 3 and 26).
            enable_leader_restore: Some(false),
            ..Default::default()
        };
        let cfg = cfg.validate().map_err(|e| RaftConfigError::Openraft(e.to_string()))?;
        Ok(Arc::new(cfg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_for_openraft() {
        RaftConfig::default().to_openraft("g1").unwrap();
    }

    #[test]
    fn bad_timeouts_are_rejected() {
        let c = RaftConfig { election_timeout_min_ms: 150, ..Default::default() };
        assert!(matches!(c.validate(), Err(RaftConfigError::ElectionTimeout { .. })));
        let c = RaftConfig { election_timeout_max_ms: 400, ..Default::default() };
        assert!(c.validate().is_err());
        let c = RaftConfig { heartbeat_ms: 0, ..Default::default() };
        assert_eq!(c.validate(), Err(RaftConfigError::ZeroHeartbeat));
    }
}
