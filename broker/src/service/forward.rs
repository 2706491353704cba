//! `raftmq.broker.v1.Forward`: the leader side of forwarding. A follower sends
//! the encoded command here; only the leader proposes it (no second hop, so a
//! stale view can never make a request circle between nodes).

use raftmq_proto::broker::forward_server::Forward;
use raftmq_proto::broker::{NotLeader, ProposeRequest, ProposeResponse, propose_response};
use raftmq_raft::Cmd;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::deadline_of;
use crate::proposer::Proposer;

pub struct ForwardService {
    proposer: Proposer,
    group: String,
}

impl ForwardService {
    pub fn new(group: &str, proposer: Proposer) -> Self {
        Self { proposer, group: group.to_string() }
    }
}

#[tonic::async_trait]
impl Forward for ForwardService {
    async fn propose(&self, request: Request<ProposeRequest>) -> Result<Response<ProposeResponse>, Status> {
        let deadline: Instant = deadline_of(&request);
        let req = request.into_inner();
        if req.group != self.group {
            return Err(Status::failed_precondition(format!(
                "forward for group '{}' reached group '{}'",
                req.group, self.group
            )));
        }
        let not_leader = || {
            let l = self.proposer.leader();
            propose_response::Result::NotLeader(NotLeader {
                leader_id: l.as_ref().map(|l| l.id).unwrap_or(0),
                leader_addr: l.map(|l| l.addr).unwrap_or_default(),
            })
        };
        let result = if !self.proposer.is_leader() {
            not_leader()
        } else {
            match self.proposer.propose_local(Cmd(req.command), deadline).await {
                Ok(Some(reply)) => propose_response::Result::Reply(reply),
                Ok(None) => not_leader(),
                Err(e) => propose_response::Result::Error(raftmq_proto::broker::Error {
                    code: e.code as i32,
                    message: e.message,
                }),
            }
        };
        Ok(Response::new(ProposeResponse { result: Some(result) }))
    }
}
