//! `raftmq.broker.v1.Forward`: the leader side of forwarding. A follower sends
//! the encoded command here; only the leader proposes it (no second hop, so a
//! stale view can never make a request circle between nodes).

use raftmq_proto::broker::forward_server::Forward;
use raftmq_proto::broker::{
    CommandReply, NotLeader, ProposeRequest, ProposeResponse, ReadIndexRequest, propose_response,
};
use raftmq_raft::Cmd;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::deadline_of;
use crate::proposer::{Proposer, index_reply};

pub struct ForwardService {
    proposer: Proposer,
    group: String,
}

impl ForwardService {
    pub fn new(group: &str, proposer: Proposer) -> Self {
        Self { proposer, group: group.to_string() }
    }

    fn check_group(&self, group: &str) -> Result<(), Status> {
        if group == self.group {
            return Ok(());
        }
        Err(Status::failed_precondition(format!("forward for group '{group}' reached group '{}'", self.group)))
    }

    fn not_leader(&self) -> propose_response::Result {
        let l = self.proposer.leader();
        propose_response::Result::NotLeader(NotLeader {
            leader_id: l.as_ref().map(|l| l.id).unwrap_or(0),
            leader_addr: l.map(|l| l.addr).unwrap_or_default(),
        })
    }

    /// Answers `local`'s outcome, or NotLeader when this node does not lead.
    fn respond(&self, outcome: Result<Option<CommandReply>, crate::error::ApiError>) -> Response<ProposeResponse> {
        let result = match outcome {
            Ok(Some(reply)) => propose_response::Result::Reply(reply),
            Ok(None) => self.not_leader(),
            Err(e) => {
                propose_response::Result::Error(raftmq_proto::broker::Error { code: e.code as i32, message: e.message })
            }
        };
        Response::new(ProposeResponse { result: Some(result) })
    }
}

#[tonic::async_trait]
impl Forward for ForwardService {
    async fn propose(&self, request: Request<ProposeRequest>) -> Result<Response<ProposeResponse>, Status> {
        let deadline: Instant = deadline_of(&request);
        let req = request.into_inner();
        self.check_group(&req.group)?;
        if !self.proposer.is_leader() {
            return Ok(self.respond(Ok(None)));
        }
        Ok(self.respond(self.proposer.propose_local(Cmd(req.command), deadline).await))
    }

    async fn read_index(&self, request: Request<ReadIndexRequest>) -> Result<Response<ProposeResponse>, Status> {
        let deadline: Instant = deadline_of(&request);
        let req = request.into_inner();
        self.check_group(&req.group)?;
        let outcome = self.proposer.read_index_local(deadline).await.map(|index| index.map(index_reply));
        Ok(self.respond(outcome))
    }
}
