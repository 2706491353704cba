//! One broker group: the latest report of each of its nodes, and what follows
//! from the live ones: the members, the leader and the merged topic list.

use std::collections::BTreeMap;
use std::time::Duration;

use raftmq_proto::namesrv::{RaftRole, TopicInfo};
use tokio::time::Instant;

use super::NodeReport;
use super::leader::{self, Stance};

/// A group as clients see it: live nodes only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub cluster: String,
    pub group: String,
    /// Sorted by node id.
    pub nodes: Vec<NodeView>,
    /// `None` when no live node is known to lead.
    pub leader: Option<Leader>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    pub node_id: u64,
    /// The address the leader registered itself with.
    pub addr: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub node_id: u64,
    pub addr: String,
    /// As reported, except that a deposed leader still claiming leadership
    /// reads `Follower`, so a client scanning roles never finds two leaders.
    pub role: RaftRole,
    pub term: u64,
    pub applied_index: u64,
    pub since_heartbeat: Duration,
}

#[derive(Debug, Default)]
pub(super) struct Group {
    nodes: BTreeMap<u64, Node>,
}

#[derive(Debug)]
struct Node {
    addr: String,
    role: RaftRole,
    term: u64,
    leader_id: u64,
    applied_index: u64,
    topics: BTreeMap<String, TopicInfo>,
    last_heartbeat: Instant,
}

impl Node {
    fn is_live(&self, now: Instant, expiry: Duration) -> bool {
        // Saturating: a request may read `now` just before another one
        // records a later heartbeat; that node is simply fresh.
        now.saturating_duration_since(self.last_heartbeat) < expiry
    }
}

impl Group {
    pub(super) fn upsert(&mut self, report: NodeReport, now: Instant) {
        let NodeReport { cluster, group, node_id, addr, .. } = &report;
        let node = Node {
            addr: addr.clone(),
            role: report.role,
            term: report.term,
            leader_id: report.leader_id,
            applied_index: report.applied_index,
            topics: report.topics.iter().map(|t| (t.name.clone(), t.clone())).collect(),
            last_heartbeat: now,
        };
        match self.nodes.insert(*node_id, node) {
            None => tracing::info!(cluster, group, node_id, addr, "broker node registered"),
            Some(old) if old.addr != *addr => {
                tracing::info!(cluster, group, node_id, addr, old_addr = old.addr, "broker node moved");
            }
            Some(_) => tracing::trace!(cluster, group, node_id, "broker heartbeat"),
        }
    }

    pub(super) fn remove(&mut self, node_id: u64) -> bool {
        self.nodes.remove(&node_id).is_some()
    }

    /// Drops the nodes that are no longer live and returns their ids.
    pub(super) fn expire(&mut self, now: Instant, expiry: Duration) -> Vec<u64> {
        let dead: Vec<u64> =
            self.nodes.iter().filter(|(_, node)| !node.is_live(now, expiry)).map(|(id, _)| *id).collect();
        for id in &dead {
            self.nodes.remove(id);
        }
        dead
    }

    pub(super) fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The group's live members and leader; `None` if no node is live.
    ///
    /// A node that still claims leadership after losing to a higher term is
    /// shown as a follower: it is a deposed leader that has not heard of the
    /// new term yet and will step down when it does.
    pub(super) fn view(&self, cluster: &str, group: &str, now: Instant, expiry: Duration) -> Option<GroupView> {
        let live: Vec<(u64, &Node)> = self.live(now, expiry).collect();
        if live.is_empty() {
            return None;
        }
        let stances: Vec<Stance> = live
            .iter()
            .map(|&(node_id, node)| Stance { node_id, role: node.role, term: node.term, leader_id: node.leader_id })
            .collect();
        let leader = leader::resolve(&stances)
            .and_then(|id| live.iter().find(|(node_id, _)| *node_id == id))
            .map(|&(node_id, node)| Leader { node_id, addr: node.addr.clone() });
        let leader_id = leader.as_ref().map_or(0, |l| l.node_id);
        let nodes = live
            .iter()
            .map(|&(node_id, node)| NodeView {
                node_id,
                addr: node.addr.clone(),
                role: match node.role {
                    RaftRole::Leader if node_id != leader_id => RaftRole::Follower,
                    role => role,
                },
                term: node.term,
                applied_index: node.applied_index,
                since_heartbeat: now.saturating_duration_since(node.last_heartbeat),
            })
            .collect();
        Some(GroupView { cluster: cluster.to_owned(), group: group.to_owned(), nodes, leader })
    }

    /// The group's view of one topic, if any live node has it.
    pub(super) fn topic(&self, name: &str, now: Instant, expiry: Duration) -> Option<TopicInfo> {
        let mut best: Option<(u64, &TopicInfo)> = None;
        for (_, node) in self.live(now, expiry) {
            if let Some(info) = node.topics.get(name) {
                keep_most_applied(&mut best, node.applied_index, info);
            }
        }
        best.map(|(_, info)| info.clone())
    }

    /// The union of the live nodes' topics, sorted by name.
    ///
    /// Replicas apply the log at different speeds, so for each topic the
    /// report of the node with the highest applied index wins: it has seen
    /// the latest change to that topic. A deleted topic stays until every
    /// live replica has applied the deletion.
    pub(super) fn topics(&self, now: Instant, expiry: Duration) -> Vec<TopicInfo> {
        let mut merged: BTreeMap<&str, Option<(u64, &TopicInfo)>> = BTreeMap::new();
        for (_, node) in self.live(now, expiry) {
            for (name, info) in &node.topics {
                keep_most_applied(merged.entry(name).or_default(), node.applied_index, info);
            }
        }
        merged.into_values().flatten().map(|(_, info)| info.clone()).collect()
    }

    fn live(&self, now: Instant, expiry: Duration) -> impl Iterator<Item = (u64, &Node)> {
        self.nodes.iter().filter(move |(_, node)| node.is_live(now, expiry)).map(|(id, node)| (*id, node))
    }
}

/// Keeps `candidate` if it comes from a strictly more applied node; on a tie
/// the node with the lower id, seen first, stays, so answers are stable.
fn keep_most_applied<'a>(best: &mut Option<(u64, &'a TopicInfo)>, applied_index: u64, candidate: &'a TopicInfo) {
    if best.is_none_or(|(index, _)| applied_index > index) {
        *best = Some((applied_index, candidate));
    }
}
