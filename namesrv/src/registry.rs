//! The in-memory registry: which broker nodes are registered, which are alive,
//! who leads each group and which topics each group serves.
//!
//! Pure: no I/O and no clock of its own. Every call that depends on time takes
//! `now`, so unit tests drive time with explicit instants and the server passes
//! `tokio::time::Instant::now()` (which honours paused time in tests).
//!
//! Liveness is decided when reading (`now - last heartbeat < expiry`), not only
//! by the sweep: a node that stops heartbeating leaves every route exactly at
//! its expiry, whatever the sweep interval. [`Registry::expire`] only reclaims
//! the memory of nodes that are already invisible.

mod group;
mod leader;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use raftmq_proto::namesrv::{RaftRole, TopicInfo};
use tokio::time::Instant;

use group::Group;
pub use group::{GroupView, Leader, NodeView};

/// What a broker node says about itself in a registration or heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    pub cluster: String,
    pub group: String,
    /// Raft node id within the group; 0 is reserved for "no node".
    pub node_id: u64,
    /// host:port clients and peers use to reach this node.
    pub addr: String,
    pub role: RaftRole,
    pub term: u64,
    /// The leader this node knows of (0 = none). Its address is taken from
    /// the leader's own registration, which is what it tells clients to use.
    pub leader_id: u64,
    pub applied_index: u64,
    /// Topics applied on this node's state machine.
    pub topics: Vec<TopicInfo>,
}

/// One group that serves a queried topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRoute {
    pub group: GroupView,
    pub topic: TopicInfo,
}

/// One group with every topic it serves, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTopics {
    pub group: GroupView,
    pub topics: Vec<TopicInfo>,
}

/// Why the registry refused a call. Nothing is changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("cluster must not be empty")]
    EmptyCluster,
    #[error("group must not be empty (cluster '{cluster}')")]
    EmptyGroup { cluster: String },
    #[error("node_id must not be 0, which means 'no node' (group '{group}')")]
    ZeroNodeId { group: String },
    #[error("addr must not be empty (group '{group}', node {node_id})")]
    EmptyAddr { group: String, node_id: u64 },
    #[error("a topic reported by group '{group}', node {node_id} has an empty name")]
    EmptyTopicName { group: String, node_id: u64 },
    #[error("topic must not be empty")]
    EmptyTopic,
    #[error("topic '{0}' not found on any broker group")]
    TopicNotFound(String),
}

/// Groups are keyed and therefore listed by cluster, then group name.
type GroupKey = (String, String);

#[derive(Debug)]
pub struct Registry {
    expiry: Duration,
    groups: BTreeMap<GroupKey, Group>,
}

impl Registry {
    /// A registry that forgets a node `expiry` after its last heartbeat.
    pub fn new(expiry: Duration) -> Self {
        Self { expiry, groups: BTreeMap::new() }
    }

    pub fn expiry(&self) -> Duration {
        self.expiry
    }

    /// Registers a node or refreshes its heartbeat; the report replaces
    /// everything the node said before.
    pub fn register(&mut self, report: NodeReport, now: Instant) -> Result<(), RegistryError> {
        validate(&report)?;
        let key = (report.cluster.clone(), report.group.clone());
        self.groups.entry(key).or_default().upsert(report, now);
        Ok(())
    }

    /// Removes a node at once (a clean broker shutdown). Returns whether it
    /// was registered; removing an unknown node is not an error, so a broker
    /// may retry its unregistration.
    pub fn unregister(&mut self, cluster: &str, group: &str, node_id: u64) -> Result<bool, RegistryError> {
        validate_identity(cluster, group, node_id)?;
        let key = (cluster.to_owned(), group.to_owned());
        let Some(state) = self.groups.get_mut(&key) else {
            return Ok(false);
        };
        let removed = state.remove(node_id);
        if state.is_empty() {
            self.groups.remove(&key);
        }
        if removed {
            tracing::info!(cluster, group, node_id, "broker node unregistered");
        }
        Ok(removed)
    }

    /// Forgets every node whose last heartbeat is `expiry` or more before
    /// `now`, and groups left without nodes. Returns how many nodes went.
    pub fn expire(&mut self, now: Instant) -> usize {
        let expiry = self.expiry;
        let mut expired = 0;
        self.groups.retain(|(cluster, group), state| {
            for node_id in state.expire(now, expiry) {
                tracing::info!(cluster, group, node_id, "broker node expired");
                expired += 1;
            }
            !state.is_empty()
        });
        expired
    }

    /// Every group whose live nodes serve `topic`, by cluster then group.
    pub fn route(&self, topic: &str, now: Instant) -> Result<Vec<TopicRoute>, RegistryError> {
        if topic.is_empty() {
            return Err(RegistryError::EmptyTopic);
        }
        let routes: Vec<TopicRoute> = self
            .groups
            .iter()
            .filter_map(|((cluster, group), state)| {
                let topic = state.topic(topic, now, self.expiry)?;
                let group = state.view(cluster, group, now, self.expiry)?;
                Some(TopicRoute { group, topic })
            })
            .collect();
        if routes.is_empty() {
            return Err(RegistryError::TopicNotFound(topic.to_owned()));
        }
        Ok(routes)
    }

    /// Every group with at least one live node, by cluster then group.
    pub fn cluster_info(&self, now: Instant) -> Vec<GroupTopics> {
        self.groups
            .iter()
            .filter_map(|((cluster, group), state)| {
                let group = state.view(cluster, group, now, self.expiry)?;
                let topics = state.topics(now, self.expiry);
                Some(GroupTopics { group, topics })
            })
            .collect()
    }

    /// Nodes held in memory, live or expired but not yet swept.
    pub fn node_count(&self) -> usize {
        self.groups.values().map(Group::len).sum()
    }
}

fn validate(report: &NodeReport) -> Result<(), RegistryError> {
    validate_identity(&report.cluster, &report.group, report.node_id)?;
    if report.addr.is_empty() {
        return Err(RegistryError::EmptyAddr { group: report.group.clone(), node_id: report.node_id });
    }
    if report.topics.iter().any(|t| t.name.is_empty()) {
        return Err(RegistryError::EmptyTopicName { group: report.group.clone(), node_id: report.node_id });
    }
    Ok(())
}

fn validate_identity(cluster: &str, group: &str, node_id: u64) -> Result<(), RegistryError> {
    if cluster.is_empty() {
        return Err(RegistryError::EmptyCluster);
    }
    if group.is_empty() {
        return Err(RegistryError::EmptyGroup { cluster: cluster.to_owned() });
    }
    if node_id == 0 {
        return Err(RegistryError::ZeroNodeId { group: group.to_owned() });
    }
    Ok(())
}
