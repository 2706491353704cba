//! `raftmq.broker.v1.Admin`: topics, group status, membership and leader
//! transfer. Topic changes are Raft entries proposed through the leader like
//! any write; membership changes run on the leader (forwarded there).

use openraft::type_config::async_runtime::WatchReceiver;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, ServerState};
use raftmq_proto::broker::admin_client::AdminClient;
use raftmq_proto::broker::admin_server::Admin;
use raftmq_proto::broker::*;
use raftmq_proto::rocketmq::v2::Code;
use raftmq_raft::network::peer_channel;
use tonic::{Request, Response, Status};

use super::{deadline_of, read_barrier};
use crate::cmd;
use crate::consumer_group::{validate_group_config, validate_group_name};
use crate::error::ApiError;
use crate::proposer::Proposer;
use crate::sm::Shared;
use crate::topic::{validate_topic_config, validate_topic_name, with_defaults};

pub struct AdminService {
    group: String,
    shared: Arc<Shared>,
    proposer: Proposer,
}

fn err(e: &ApiError) -> Error {
    Error { code: e.code as i32, message: e.message.clone() }
}

impl AdminService {
    pub fn new(group: &str, shared: Arc<Shared>, proposer: Proposer) -> Self {
        Self { group: group.to_string(), shared, proposer }
    }

    /// The error, if the command failed.
    async fn propose_meta(&self, cmd: meta_command::Cmd, deadline: tokio::time::Instant) -> Option<Error> {
        let reply = self.proposer.propose(cmd::encode_meta(&MetaCommand { cmd: Some(cmd) }), deadline).await;
        match reply {
            Ok(CommandReply { result: Some(command_reply::Result::Error(e)), .. }) => Some(e),
            Ok(_) => None,
            Err(e) => Some(err(&e)),
        }
    }

    async fn put_group(
        &self,
        request: Request<ConsumerGroupRequest>,
        cmd: fn(ConsumerGroupConfig) -> meta_command::Cmd,
    ) -> Result<Response<ConsumerGroupResponse>, Status> {
        let deadline = deadline_of(&request);
        let g = request.into_inner().group.unwrap_or_default();
        let error = match validate_group_config(&g) {
            Err(e) => Some(err(&ApiError::new(e.code(), e.to_string()))),
            Ok(()) => self.propose_meta(cmd(g), deadline).await,
        };
        Ok(Response::new(ConsumerGroupResponse { error }))
    }

    fn self_status(&self) -> NodeStatusResponse {
        let m = self.proposer.raft().metrics().borrow_watched().clone();
        let me = m.id;
        let addr = m.membership_config.membership().get_node(&me).map(|n| n.addr.clone()).unwrap_or_default();
        let leader = self.proposer.leader();
        NodeStatusResponse {
            group: self.group.clone(),
            self_: Some(ReplicaStatus {
                node_id: me,
                addr,
                role: role_name(m.state).into(),
                term: m.current_term,
                last_log_index: m.last_log_index.unwrap_or(0),
                committed_index: m.local_committed.map(|c| c.index).unwrap_or(0),
                applied_index: m.last_applied.map(|c| c.index).unwrap_or(0),
                matched_index: None,
                voter: m.membership_config.membership().voter_ids().any(|v| v == me),
            }),
            leader_id: leader.as_ref().map(|l| l.id).unwrap_or(0),
            leader_addr: leader.map(|l| l.addr).unwrap_or_default(),
        }
    }

    /// Runs a membership operation on the leader: here if this node leads,
    /// otherwise by calling the same RPC on the leader.
    async fn on_leader<F, Fut>(
        &self,
        local: F,
        remote: impl AsyncFnOnce(AdminClient<tonic::transport::Channel>) -> Result<MembershipResponse, Status>,
    ) -> Result<Response<MembershipResponse>, Status>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), ApiError>>,
    {
        if self.proposer.is_leader() {
            let error = local().await.err().map(|e| err(&e));
            let status = self.group_status_inner().await;
            return Ok(Response::new(MembershipResponse { error, status: Some(status) }));
        }
        let leader = self.proposer.leader().ok_or_else(|| Status::unavailable("no leader is known; retry"))?;
        let ch = peer_channel(&leader.addr).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(remote(AdminClient::new(ch)).await?))
    }

    async fn group_status_inner(&self) -> GroupStatusResponse {
        let m = self.proposer.raft().metrics().borrow_watched().clone();
        let membership = m.membership_config.membership().clone();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let mut replicas = Vec::new();
        for (id, node) in membership.nodes() {
            let matched = m.replication.as_ref().and_then(|r| r.get(id)).map(|l| l.map(|l| l.index).unwrap_or(0));
            let mut st = if *id == m.id {
                self.self_status().self_.unwrap_or_default()
            } else {
                remote_status(&node.addr).await.unwrap_or_else(|| ReplicaStatus {
                    node_id: *id,
                    addr: node.addr.clone(),
                    role: "unreachable".into(),
                    ..Default::default()
                })
            };
            st.matched_index = matched;
            st.voter = voters.contains(id);
            replicas.push(st);
        }
        let leader = self.proposer.leader();
        GroupStatusResponse {
            group: self.group.clone(),
            leader_id: leader.as_ref().map(|l| l.id).unwrap_or(0),
            leader_addr: leader.map(|l| l.addr).unwrap_or_default(),
            replicas,
        }
    }
}

fn role_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

async fn remote_status(addr: &str) -> Option<ReplicaStatus> {
    let mut c = AdminClient::new(peer_channel(addr).ok()?);
    let mut req = Request::new(NodeStatusRequest {});
    req.set_timeout(Duration::from_millis(500));
    c.node_status(req).await.ok()?.into_inner().self_
}

fn raft_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(Code::InternalError, e.to_string())
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_topic(&self, request: Request<CreateTopicRequest>) -> Result<Response<TopicAdminResponse>, Status> {
        let deadline = deadline_of(&request);
        let t = with_defaults(request.into_inner().topic.unwrap_or_default());
        if let Err(e) = validate_topic_config(&t) {
            return Ok(Response::new(TopicAdminResponse { error: Some(err(&ApiError::new(e.code(), e.to_string()))) }));
        }
        Ok(Response::new(TopicAdminResponse {
            error: self.propose_meta(meta_command::Cmd::CreateTopic(t), deadline).await,
        }))
    }

    async fn update_topic(&self, request: Request<UpdateTopicRequest>) -> Result<Response<TopicAdminResponse>, Status> {
        let deadline = deadline_of(&request);
        let t = with_defaults(request.into_inner().topic.unwrap_or_default());
        if let Err(e) = validate_topic_config(&t) {
            return Ok(Response::new(TopicAdminResponse { error: Some(err(&ApiError::new(e.code(), e.to_string()))) }));
        }
        Ok(Response::new(TopicAdminResponse {
            error: self.propose_meta(meta_command::Cmd::UpdateTopic(t), deadline).await,
        }))
    }

    async fn delete_topic(&self, request: Request<DeleteTopicRequest>) -> Result<Response<TopicAdminResponse>, Status> {
        let deadline = deadline_of(&request);
        let name = request.into_inner().name;
        if let Err(e) = validate_topic_name(&name) {
            return Ok(Response::new(TopicAdminResponse { error: Some(err(&ApiError::new(e.code(), e.to_string()))) }));
        }
        Ok(Response::new(TopicAdminResponse {
            error: self.propose_meta(meta_command::Cmd::DeleteTopic(name), deadline).await,
        }))
    }

    async fn list_topics(&self, _r: Request<ListTopicsRequest>) -> Result<Response<ListTopicsResponse>, Status> {
        let topics: Vec<TopicConfig> = self.shared.meta().topics.values().cloned().collect();
        let topics = topics
            .into_iter()
            .map(|config| {
                let queues = (0..config.queue_count as i32)
                    .map(|q| QueueStatus {
                        queue_id: q,
                        min_offset: self.shared.first_offset(&config.name, q),
                        max_offset: self.shared.cq.max_offset(&config.name, q),
                    })
                    .collect();
                TopicStatus { config: Some(config), queues }
            })
            .collect();
        Ok(Response::new(ListTopicsResponse { topics }))
    }

    async fn create_consumer_group(
        &self,
        request: Request<ConsumerGroupRequest>,
    ) -> Result<Response<ConsumerGroupResponse>, Status> {
        self.put_group(request, meta_command::Cmd::CreateConsumerGroup).await
    }

    async fn update_consumer_group(
        &self,
        request: Request<ConsumerGroupRequest>,
    ) -> Result<Response<ConsumerGroupResponse>, Status> {
        self.put_group(request, meta_command::Cmd::UpdateConsumerGroup).await
    }

    async fn delete_consumer_group(
        &self,
        request: Request<DeleteConsumerGroupRequest>,
    ) -> Result<Response<ConsumerGroupResponse>, Status> {
        let deadline = deadline_of(&request);
        let name = request.into_inner().name;
        let error = match validate_group_name(&name) {
            Err(e) => Some(err(&ApiError::new(e.code(), e.to_string()))),
            Ok(()) => self.propose_meta(meta_command::Cmd::DeleteConsumerGroup(name), deadline).await,
        };
        Ok(Response::new(ConsumerGroupResponse { error }))
    }

    async fn list_consumer_groups(
        &self,
        _r: Request<ListConsumerGroupsRequest>,
    ) -> Result<Response<ListConsumerGroupsResponse>, Status> {
        let groups = self.shared.meta().groups.values().cloned().collect();
        Ok(Response::new(ListConsumerGroupsResponse { groups }))
    }

    async fn consumer_progress(
        &self,
        request: Request<ConsumerProgressRequest>,
    ) -> Result<Response<ConsumerProgressResponse>, Status> {
        let deadline = deadline_of(&request);
        let req = request.into_inner();
        if let Err(e) = read_barrier(&self.proposer, &self.shared, deadline).await {
            return Ok(Response::new(ConsumerProgressResponse { error: Some(err(&e)), queues: Vec::new() }));
        }
        let meta = self.shared.meta();
        let Some(topic) = meta.topics.get(&req.topic) else {
            let e = ApiError::new(Code::TopicNotFound, format!("topic '{}' does not exist here", req.topic));
            return Ok(Response::new(ConsumerProgressResponse { error: Some(err(&e)), queues: Vec::new() }));
        };
        let queues = (0..topic.queue_count as i32)
            .map(|q| {
                let key = (req.group.clone(), req.topic.clone(), q);
                let pop = meta.pop.get(&key);
                QueueProgress {
                    queue_id: q,
                    min_offset: self.shared.first_offset(&req.topic, q),
                    max_offset: self.shared.cq.max_offset(&req.topic, q),
                    committed_offset: meta.offsets.get(&key).copied(),
                    pop_consumed: pop.map(|p| p.consumed),
                    pop_next: pop.map_or(0, |p| p.next),
                    inflight: pop.map_or(0, |p| p.inflight_count() as i32),
                }
            })
            .collect();
        Ok(Response::new(ConsumerProgressResponse { error: None, queues }))
    }

    async fn node_status(&self, _r: Request<NodeStatusRequest>) -> Result<Response<NodeStatusResponse>, Status> {
        Ok(Response::new(self.self_status()))
    }

    async fn group_status(&self, _r: Request<GroupStatusRequest>) -> Result<Response<GroupStatusResponse>, Status> {
        Ok(Response::new(self.group_status_inner().await))
    }

    async fn add_replica(&self, request: Request<AddReplicaRequest>) -> Result<Response<MembershipResponse>, Status> {
        let req = request.into_inner();
        if req.node_id == 0 || req.addr.is_empty() {
            return Err(Status::invalid_argument("add replica needs node_id > 0 and an address"));
        }
        let raft = self.proposer.raft().clone();
        let (id, addr) = (req.node_id, req.addr.clone());
        self.on_leader(
            || async move {
                // Blocking add_learner returns once the learner has caught up,
                // so it never becomes a voter that slows the quorum down.
                raft.add_learner(id, BasicNode { addr }, true).await.map_err(raft_err)?;
                raft.change_membership(openraft::ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
                    .map_err(raft_err)?;
                Ok(())
            },
            async move |mut c| Ok(c.add_replica(req).await?.into_inner()),
        )
        .await
    }

    async fn remove_replica(
        &self,
        request: Request<RemoveReplicaRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let req = request.into_inner();
        let raft = self.proposer.raft().clone();
        let id = req.node_id;
        self.on_leader(
            || async move {
                let voters: BTreeSet<u64> =
                    raft.metrics().borrow_watched().membership_config.membership().voter_ids().collect();
                if !voters.contains(&id) {
                    return Err(ApiError::bad_request(format!("node {id} is not a voter of this group")));
                }
                if voters.len() <= 1 {
                    return Err(ApiError::bad_request("cannot remove the last voter"));
                }
                raft.change_membership(openraft::ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                    .await
                    .map_err(raft_err)?;
                raft.change_membership(openraft::ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                    .await
                    .map_err(raft_err)?;
                Ok(())
            },
            async move |mut c| Ok(c.remove_replica(req).await?.into_inner()),
        )
        .await
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let req = request.into_inner();
        let raft = self.proposer.raft().clone();
        let to = req.node_id;
        self.on_leader(
            || async move {
                let voters: BTreeSet<u64> =
                    raft.metrics().borrow_watched().membership_config.membership().voter_ids().collect();
                if !voters.contains(&to) {
                    return Err(ApiError::bad_request(format!("node {to} is not a voter of this group")));
                }
                raft.trigger().transfer_leader(to).await.map_err(raft_err)?;
                // Wait (briefly) for the new leader so the answer reflects it.
                let mut rx = raft.metrics();
                let _ = tokio::time::timeout(Duration::from_secs(3), async {
                    while rx.borrow_and_update().current_leader != Some(to) {
                        if rx.changed().await.is_err() {
                            return;
                        }
                    }
                })
                .await;
                Ok(())
            },
            async move |mut c| Ok(c.transfer_leader(req).await?.into_inner()),
        )
        .await
    }
}
