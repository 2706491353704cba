//! Conversions between the `raftmq.namesrv.v1` messages and the registry's
//! types, kept here so the handlers in `service.rs` stay thin.

use raftmq_proto::namesrv as pb;

use crate::registry::{GroupTopics, Leader, NodeReport, NodeView, TopicRoute};

impl From<pb::RegisterBrokerRequest> for NodeReport {
    fn from(req: pb::RegisterBrokerRequest) -> Self {
        Self {
            // An unknown role number (a newer broker) reads as unspecified:
            // such a node can still be named leader by its followers.
            role: req.role(),
            cluster: req.cluster,
            group: req.group,
            node_id: req.node_id,
            addr: req.addr,
            term: req.term,
            leader_id: req.leader_id,
            // `req.leader_addr` is not used: the leader's address is the one
            // the leader registered itself, so it must be live to be named.
            applied_index: req.applied_index,
            topics: req.topics,
        }
    }
}

impl From<TopicRoute> for pb::GroupRoute {
    fn from(route: TopicRoute) -> Self {
        let group = route.group;
        let (leader_id, leader_addr) = leader_fields(group.leader);
        Self {
            cluster: group.cluster,
            group: group.group,
            nodes: group.nodes.into_iter().map(broker_node).collect(),
            leader_id,
            leader_addr,
            topic: Some(route.topic),
        }
    }
}

impl From<GroupTopics> for pb::GroupInfo {
    fn from(info: GroupTopics) -> Self {
        let group = info.group;
        let (leader_id, leader_addr) = leader_fields(group.leader);
        Self {
            cluster: group.cluster,
            group: group.group,
            nodes: group.nodes.into_iter().map(broker_node).collect(),
            leader_id,
            leader_addr,
            topics: info.topics,
        }
    }
}

/// No leader is `0` and an empty address on the wire.
fn leader_fields(leader: Option<Leader>) -> (u64, String) {
    leader.map_or((0, String::new()), |l| (l.node_id, l.addr))
}

fn broker_node(node: NodeView) -> pb::BrokerNode {
    pb::BrokerNode {
        node_id: node.node_id,
        addr: node.addr,
        role: node.role.into(),
        term: node.term,
        applied_index: node.applied_index,
        last_heartbeat_ms_ago: millis(node.since_heartbeat),
    }
}

/// Whole milliseconds; the wire field is a `u64`, so saturate rather than wrap.
pub(crate) fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
