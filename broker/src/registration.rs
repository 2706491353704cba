//! Registers this replica with every nameserver, every heartbeat period and at
//! once on a leader change, so routes follow a failover within one RPC.

use openraft::type_config::async_runtime::WatchReceiver;
use std::time::Duration;

use openraft::ServerState;
use raftmq_proto::namesrv::{RaftRole, RegisterBrokerRequest, TopicInfo, UnregisterBrokerRequest};
use tokio::sync::watch;

use crate::proposer::Proposer;
use crate::routes::Routes;
use crate::sm::Shared;

pub struct Registration {
    pub cluster: String,
    pub group: String,
    pub node_id: u64,
    pub addr: String,
    pub period: Duration,
}

impl Registration {
    fn request(&self, shared: &Shared, proposer: &Proposer) -> RegisterBrokerRequest {
        let m = proposer.raft().metrics().borrow_watched().clone();
        let role = match m.state {
            ServerState::Leader => RaftRole::Leader,
            ServerState::Follower => RaftRole::Follower,
            ServerState::Candidate => RaftRole::Candidate,
            _ => RaftRole::Learner,
        };
        let leader = proposer.leader();
        let topics = shared
            .meta()
            .topics
            .values()
            .map(|t| TopicInfo {
                name: t.name.clone(),
                queue_count: t.queue_count,
                message_types: t.message_types.clone(),
                permission: t.permission,
            })
            .collect();
        RegisterBrokerRequest {
            cluster: self.cluster.clone(),
            group: self.group.clone(),
            node_id: self.node_id,
            addr: self.addr.clone(),
            role: role as i32,
            term: m.current_term,
            leader_id: leader.as_ref().map(|l| l.id).unwrap_or(0),
            leader_addr: leader.map(|l| l.addr).unwrap_or_default(),
            topics,
            applied_index: shared.applied_index(),
        }
    }

    /// Runs until `stop` flips to true, then unregisters.
    pub async fn run(
        self,
        shared: std::sync::Arc<Shared>,
        proposer: Proposer,
        routes: Routes,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut metrics = proposer.raft().metrics();
        let mut last_leader = None;
        loop {
            let req = self.request(&shared, &proposer);
            last_leader = Some(req.leader_id).or(last_leader);
            for c in routes.namesrv_clients() {
                let mut c = c.clone();
                let mut r = tonic::Request::new(req.clone());
                r.set_timeout(Duration::from_millis(1000));
                if let Err(e) = c.register_broker(r).await {
                    tracing::debug!("nameserver registration failed: {e}");
                }
            }
            let sleep = tokio::time::sleep(self.period);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    _ = stop.changed() => {
                        self.unregister(&routes).await;
                        return;
                    }
                    changed = metrics.changed() => {
                        if changed.is_err() { return; }
                        let leader = metrics.borrow_and_update().current_leader.unwrap_or(0);
                        if Some(leader) != last_leader { break; }
                    }
                }
            }
        }
    }

    async fn unregister(&self, routes: &Routes) {
        for c in routes.namesrv_clients() {
            let mut c = c.clone();
            let mut r = tonic::Request::new(UnregisterBrokerRequest {
                cluster: self.cluster.clone(),
                group: self.group.clone(),
                node_id: self.node_id,
            });
            r.set_timeout(Duration::from_millis(500));
            let _ = c.unregister_broker(r).await;
        }
    }
}
