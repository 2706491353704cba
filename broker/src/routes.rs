//! Which broker groups serve a topic, and where their leaders are.
//!
//! Asked of the nameservers (the first that answers wins; they are independent
//! and equal), with this node's own group filled in from local state so a
//! route is right even before the first heartbeat reaches a nameserver.

use std::time::Duration;

use raftmq_proto::namesrv::name_server_client::NameServerClient;
use raftmq_proto::namesrv::{GroupRoute, QueryRouteRequest, TopicInfo};
use raftmq_raft::network::peer_channel;
use tonic::transport::Channel;

use crate::sm::Shared;

/// One group's part of a topic's route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTopicRoute {
    pub group: String,
    /// Where clients should send: this node for its own group, else the group's
    /// leader (or any live replica if none is known).
    pub endpoint: String,
    pub topic: TopicInfo,
}

#[derive(Clone)]
pub struct Routes {
    group: String,
    self_addr: String,
    namesrv: Vec<NameServerClient<Channel>>,
}

impl Routes {
    pub fn new(group: &str, self_addr: &str, namesrv_addrs: &[String]) -> Self {
        let namesrv = namesrv_addrs.iter().filter_map(|a| peer_channel(a).ok().map(NameServerClient::new)).collect();
        Self { group: group.to_string(), self_addr: self_addr.to_string(), namesrv }
    }

    /// This node's broker group.
    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn namesrv_clients(&self) -> &[NameServerClient<Channel>] {
        &self.namesrv
    }

    /// The groups serving `topic`; empty when no group has it.
    pub async fn route(&self, topic: &str, shared: &Shared) -> Vec<GroupTopicRoute> {
        let mut out: Vec<GroupTopicRoute> = Vec::new();
        for client in &self.namesrv {
            let mut client = client.clone();
            let mut req = tonic::Request::new(QueryRouteRequest { topic: topic.to_string() });
            req.set_timeout(Duration::from_millis(500));
            match client.query_route(req).await {
                Ok(resp) => {
                    out = resp.into_inner().groups.into_iter().filter_map(from_namesrv).collect();
                    break;
                }
                Err(s) if s.code() == tonic::Code::NotFound => break,
                Err(s) => tracing::debug!("nameserver route query failed: {s}"),
            }
        }
        out.retain(|r| r.group != self.group);
        if let Some(local) = self.local(topic, shared) {
            out.push(local);
        }
        out.sort_by(|a, b| a.group.cmp(&b.group));
        out
    }

    fn local(&self, topic: &str, shared: &Shared) -> Option<GroupTopicRoute> {
        let t = shared.meta().topics.get(topic)?.clone();
        // This node: the client reached it, and it forwards to whichever node
        // leads, so the address stays valid across leader changes (official
        // clients cache routes forever).
        let endpoint = self.self_addr.clone();
        Some(GroupTopicRoute {
            group: self.group.clone(),
            endpoint,
            topic: TopicInfo {
                name: t.name,
                queue_count: t.queue_count,
                message_types: t.message_types,
                permission: t.permission,
            },
        })
    }
}

fn from_namesrv(g: GroupRoute) -> Option<GroupTopicRoute> {
    let endpoint = if g.leader_addr.is_empty() { g.nodes.first()?.addr.clone() } else { g.leader_addr };
    Some(GroupTopicRoute { group: g.group, endpoint, topic: g.topic? })
}
