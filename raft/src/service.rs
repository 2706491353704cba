//! The server side of the gRPC Raft network: hands peer RPCs to the local
//! [`Raft`](crate::types::Raft) of one broker group.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use openraft::raft::StreamAppendError;
use raftmq_proto::raft as pb;
use raftmq_proto::raft::raft_service_server::RaftService;
use tonic::{Request, Response, Status, Streaming};

use crate::pb as conv;
use openraft::storage::RaftStateMachine;

use crate::types::{Raft, SnapshotData, StoredMembership, TypeConfig};

/// Serves `raftmq.raft.v1.RaftService` for one replica.
pub struct RaftGrpcService<SM: RaftStateMachine<TypeConfig>> {
    group: String,
    raft: Raft<SM>,
}

impl<SM: RaftStateMachine<TypeConfig>> Clone for RaftGrpcService<SM> {
    fn clone(&self) -> Self {
        Self { group: self.group.clone(), raft: self.raft.clone() }
    }
}

impl<SM: RaftStateMachine<TypeConfig>> RaftGrpcService<SM> {
    pub fn new(group: &str, raft: Raft<SM>) -> Self {
        Self { group: group.to_string(), raft }
    }

    /// A peer of another group (a misconfigured address) must not touch this log.
    fn check_group(&self, group: &str) -> Result<(), Status> {
        if group == self.group {
            Ok(())
        } else {
            Err(Status::failed_precondition(format!(
                "raft rpc for group '{group}' reached a replica of group '{}'",
                self.group
            )))
        }
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

type StreamAppendOut = Pin<Box<dyn Stream<Item = Result<pb::StreamAppendResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<SM> RaftService for RaftGrpcService<SM>
where
    SM: RaftStateMachine<TypeConfig, SnapshotData = SnapshotData>,
{
    async fn append_entries(
        &self,
        request: Request<pb::AppendEntriesRequest>,
    ) -> Result<Response<pb::AppendEntriesResponse>, Status> {
        let req = request.into_inner();
        self.check_group(&req.group)?;
        let resp = self.raft.append_entries(conv::append_req_from_pb(req)?).await.map_err(internal)?;
        Ok(Response::new(conv::append_resp_to_pb(&resp)))
    }

    type StreamAppendStream = StreamAppendOut;

    async fn stream_append(
        &self,
        request: Request<Streaming<pb::AppendEntriesRequest>>,
    ) -> Result<Response<Self::StreamAppendStream>, Status> {
        let group = self.group.clone();
        // A malformed or misrouted request ends the input; the error is logged
        // and the leader reopens the stream.
        let input = request
            .into_inner()
            .map(move |r| {
                let req = r.ok()?;
                if req.group != group {
                    tracing::warn!(group = %req.group, "stream append for another group refused");
                    return None;
                }
                conv::append_req_from_pb(req).map_err(|e| tracing::warn!("{e}")).ok()
            })
            .take_while(|r| futures::future::ready(r.is_some()))
            .filter_map(futures::future::ready);
        let out = self.raft.stream_append(input).map(|r| {
            use pb::stream_append_response::Result as R;
            let result = match r.map_err(internal)? {
                Ok(matching) => R::Matching(pb::PartialSuccess { matching: conv::opt_log_id_to_pb(matching.as_ref()) }),
                Err(StreamAppendError::Conflict(id)) => R::Conflict(conv::log_id_to_pb(&id)),
                Err(StreamAppendError::HigherVote(v)) => R::HigherVote(conv::vote_to_pb(&v)),
            };
            Ok(pb::StreamAppendResponse { result: Some(result) })
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn vote(&self, request: Request<pb::VoteRequest>) -> Result<Response<pb::VoteResponse>, Status> {
        let req = request.into_inner();
        self.check_group(&req.group)?;
        let resp = self.raft.vote(conv::vote_req_from_pb(&req)?).await.map_err(internal)?;
        Ok(Response::new(conv::vote_resp_to_pb(&resp)))
    }

    async fn pre_vote(&self, request: Request<pb::VoteRequest>) -> Result<Response<pb::VoteResponse>, Status> {
        let req = request.into_inner();
        self.check_group(&req.group)?;
        let resp = self.raft.pre_vote(conv::vote_req_from_pb(&req)?).await.map_err(internal)?;
        Ok(Response::new(conv::vote_resp_to_pb(&resp)))
    }

    async fn install_snapshot(
        &self,
        request: Request<pb::InstallSnapshotRequest>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        let req = request.into_inner();
        self.check_group(&req.group)?;
        let vote = conv::vote_from_pb(req.vote.as_ref().ok_or_else(|| Status::invalid_argument("missing vote"))?);
        let meta = req.meta.ok_or_else(|| Status::invalid_argument("missing snapshot meta"))?;
        let membership = conv::membership_from_pb(
            meta.membership.as_ref().ok_or_else(|| Status::invalid_argument("missing snapshot membership"))?,
        )?;
        let snapshot = openraft::type_config::alias::SnapshotOf::<TypeConfig, SnapshotData> {
            meta: openraft::type_config::alias::SnapshotMetaOf::<TypeConfig> {
                last_log_id: conv::opt_log_id_from_pb(meta.last_log_id.as_ref()),
                last_membership: StoredMembership::new(
                    conv::opt_log_id_from_pb(meta.membership_log_id.as_ref()),
                    membership,
                ),
            },
            snapshot: req.data,
        };
        let resp = self.raft.install_full_snapshot(vote, snapshot).await.map_err(internal)?;
        Ok(Response::new(pb::InstallSnapshotResponse { vote: Some(conv::vote_to_pb(&resp.vote)) }))
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        let req = request.into_inner();
        self.check_group(&req.group)?;
        let from = conv::vote_from_pb(
            req.from_leader.as_ref().ok_or_else(|| Status::invalid_argument("missing from_leader"))?,
        );
        let r = openraft::raft::TransferLeaderRequest::new(
            from,
            req.to_node_id,
            conv::opt_log_id_from_pb(req.last_log_id.as_ref()),
        );
        match self.raft.handle_transfer_leader(r).await.map_err(internal)? {
            Ok(()) => Ok(Response::new(pb::TransferLeaderResponse {})),
            Err(e) => Err(Status::failed_precondition(e.to_string())),
        }
    }
}
