//! Conversions between openraft's types and the `raftmq.raft.v1` wire messages.
//!
//! Decoding is fallible: a peer that sends a message with a required field
//! missing gets `InvalidArgument`, never a panic.

use std::collections::BTreeSet;

use openraft::BasicNode;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use raftmq_proto::raft as pb;

use crate::types::{Cmd, Entry, EntryPayload, LogId, Membership, NodeId, TypeConfig, Vote};

/// A wire message could not be turned into an openraft value.
#[derive(Debug, thiserror::Error)]
#[error("malformed raft message: {0}")]
pub struct DecodeError(pub String);

impl From<DecodeError> for tonic::Status {
    fn from(e: DecodeError) -> Self {
        tonic::Status::invalid_argument(e.0)
    }
}

fn missing(what: &str) -> DecodeError {
    DecodeError(format!("missing field `{what}`"))
}

pub fn log_id_to_pb(id: &LogId) -> pb::LogId {
    pb::LogId { term: id.leader_id.term, index: id.index }
}

pub fn log_id_from_pb(id: &pb::LogId) -> LogId {
    LogId::new_term_index(id.term, id.index)
}

pub fn opt_log_id_to_pb(id: Option<&LogId>) -> Option<pb::LogId> {
    id.map(log_id_to_pb)
}

pub fn opt_log_id_from_pb(id: Option<&pb::LogId>) -> Option<LogId> {
    id.map(log_id_from_pb)
}

pub fn vote_to_pb(v: &Vote) -> pb::Vote {
    pb::Vote { term: v.leader_id.term, node_id: v.leader_id.voted_for, committed: v.committed }
}

pub fn vote_from_pb(v: &pb::Vote) -> Vote {
    if v.committed { Vote::new_committed(v.term, v.node_id) } else { Vote::new(v.term, v.node_id) }
}

fn req_vote(v: Option<&pb::Vote>) -> Result<Vote, DecodeError> {
    v.map(vote_from_pb).ok_or_else(|| missing("vote"))
}

pub fn membership_to_pb(m: &Membership) -> pb::Membership {
    pb::Membership {
        configs: m.get_joint_config().iter().map(|c| pb::NodeIdSet { node_ids: c.iter().copied().collect() }).collect(),
        nodes: m.nodes().map(|(id, n)| pb::Node { node_id: *id, addr: n.addr.clone() }).collect(),
    }
}

pub fn membership_from_pb(m: &pb::Membership) -> Result<Membership, DecodeError> {
    let configs: Vec<BTreeSet<NodeId>> = m.configs.iter().map(|c| c.node_ids.iter().copied().collect()).collect();
    let nodes: std::collections::BTreeMap<NodeId, BasicNode> =
        m.nodes.iter().map(|n| (n.node_id, BasicNode { addr: n.addr.clone() })).collect();
    Membership::new(configs, nodes).map_err(|e| DecodeError(format!("bad membership: {e}")))
}

pub fn entry_to_pb(e: &Entry) -> pb::Entry {
    use pb::entry::Payload;
    let payload = match &e.payload {
        EntryPayload::Blank => Payload::Blank(true),
        EntryPayload::Normal(cmd) => Payload::Normal(cmd.0.clone()),
        EntryPayload::Membership(m) => Payload::Membership(membership_to_pb(m)),
    };
    pb::Entry { log_id: Some(log_id_to_pb(&e.log_id)), payload: Some(payload) }
}

pub fn entry_from_pb(e: pb::Entry) -> Result<Entry, DecodeError> {
    use pb::entry::Payload;
    let log_id = log_id_from_pb(e.log_id.as_ref().ok_or_else(|| missing("entry.log_id"))?);
    let payload = match e.payload.ok_or_else(|| missing("entry.payload"))? {
        Payload::Blank(_) => EntryPayload::Blank,
        Payload::Normal(b) => EntryPayload::Normal(Cmd(b)),
        Payload::Membership(m) => EntryPayload::Membership(membership_from_pb(&m)?),
    };
    Ok(Entry { log_id, payload })
}

pub fn append_req_to_pb(group: &str, r: &AppendEntriesRequest<TypeConfig>) -> pb::AppendEntriesRequest {
    pb::AppendEntriesRequest {
        group: group.to_string(),
        vote: Some(vote_to_pb(&r.vote)),
        prev_log_id: opt_log_id_to_pb(r.prev_log_id.as_ref()),
        entries: r.entries.iter().map(entry_to_pb).collect(),
        leader_commit: opt_log_id_to_pb(r.leader_commit.as_ref()),
    }
}

pub fn append_req_from_pb(r: pb::AppendEntriesRequest) -> Result<AppendEntriesRequest<TypeConfig>, DecodeError> {
    Ok(AppendEntriesRequest {
        vote: req_vote(r.vote.as_ref())?,
        prev_log_id: opt_log_id_from_pb(r.prev_log_id.as_ref()),
        entries: r.entries.into_iter().map(entry_from_pb).collect::<Result<_, _>>()?,
        leader_commit: opt_log_id_from_pb(r.leader_commit.as_ref()),
    })
}

pub fn append_resp_to_pb(r: &AppendEntriesResponse<TypeConfig>) -> pb::AppendEntriesResponse {
    use pb::append_entries_response::Result as R;
    let result = match r {
        AppendEntriesResponse::Success => R::Success(true),
        AppendEntriesResponse::PartialSuccess(m) => {
            R::PartialSuccess(pb::PartialSuccess { matching: opt_log_id_to_pb(m.as_ref()) })
        }
        AppendEntriesResponse::Conflict => R::Conflict(true),
        AppendEntriesResponse::HigherVote(v) => R::HigherVote(vote_to_pb(v)),
    };
    pb::AppendEntriesResponse { result: Some(result) }
}

pub fn append_resp_from_pb(r: pb::AppendEntriesResponse) -> Result<AppendEntriesResponse<TypeConfig>, DecodeError> {
    use pb::append_entries_response::Result as R;
    Ok(match r.result.ok_or_else(|| missing("result"))? {
        R::Success(_) => AppendEntriesResponse::Success,
        R::PartialSuccess(p) => AppendEntriesResponse::PartialSuccess(opt_log_id_from_pb(p.matching.as_ref())),
        R::Conflict(_) => AppendEntriesResponse::Conflict,
        R::HigherVote(v) => AppendEntriesResponse::HigherVote(vote_from_pb(&v)),
    })
}

pub fn vote_req_to_pb(group: &str, r: &VoteRequest<TypeConfig>) -> pb::VoteRequest {
    pb::VoteRequest {
        group: group.to_string(),
        vote: Some(vote_to_pb(&r.vote)),
        last_log_id: opt_log_id_to_pb(r.last_log_id.as_ref()),
        leadership_transfer: r.leadership_transfer,
    }
}

pub fn vote_req_from_pb(r: &pb::VoteRequest) -> Result<VoteRequest<TypeConfig>, DecodeError> {
    let mut req = VoteRequest::new(req_vote(r.vote.as_ref())?, opt_log_id_from_pb(r.last_log_id.as_ref()));
    req.leadership_transfer = r.leadership_transfer;
    Ok(req)
}

pub fn vote_resp_to_pb(r: &VoteResponse<TypeConfig>) -> pb::VoteResponse {
    pb::VoteResponse {
        vote: Some(vote_to_pb(&r.vote)),
        vote_granted: r.vote_granted,
        last_log_id: opt_log_id_to_pb(r.last_log_id.as_ref()),
    }
}

pub fn vote_resp_from_pb(r: &pb::VoteResponse) -> Result<VoteResponse<TypeConfig>, DecodeError> {
    Ok(VoteResponse::new(req_vote(r.vote.as_ref())?, opt_log_id_from_pb(r.last_log_id.as_ref()), r.vote_granted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let m = Membership::new(
            vec![BTreeSet::from([1, 2, 3])],
            std::collections::BTreeMap::from([
                (1, BasicNode { addr: "a:1".into() }),
                (2, BasicNode { addr: "a:2".into() }),
                (3, BasicNode { addr: "a:3".into() }),
            ]),
        )
        .unwrap();
        let entries = vec![
            Entry { log_id: LogId::new_term_index(1, 1), payload: EntryPayload::Blank },
            Entry {
                log_id: LogId::new_term_index(2, 2),
                payload: EntryPayload::Normal(Cmd(bytes::Bytes::from_static(b"\x01abc"))),
            },
            Entry { log_id: LogId::new_term_index(2, 3), payload: EntryPayload::Membership(m) },
        ];
        for e in entries {
            let back = entry_from_pb(entry_to_pb(&e)).unwrap();
            assert_eq!(back, e);
        }
    }

    #[test]
    fn votes_round_trip() {
        for v in [Vote::new(3, 2), Vote::new_committed(7, 1)] {
            assert_eq!(vote_from_pb(&vote_to_pb(&v)), v);
        }
    }

    #[test]
    fn missing_fields_are_errors() {
        let r = pb::AppendEntriesRequest::default();
        assert!(append_req_from_pb(r).is_err());
        let e = pb::Entry::default();
        assert!(entry_from_pb(e).is_err());
    }
}
