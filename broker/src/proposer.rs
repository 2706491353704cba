//! Proposing a command through the group leader, from any replica.
//!
//! Leader changes are invisible to callers: a node that is not the leader
//! forwards to the one it knows; when there is none yet (an election), it waits
//! for one. A proposal is retried only while it is certain it was never
//! appended (no leader, refused connection, "not leader" answers); once it may
//! have reached a leader, a failure is reported as an unknown outcome.

use openraft::type_config::async_runtime::WatchReceiver;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::ReadPolicy;
use openraft::errors::{ClientWriteError, LinearizableReadError, RaftError};
use raftmq_proto::broker::forward_client::ForwardClient;
use raftmq_proto::broker::{CommandReply, ProposeRequest, ReadIndexRequest, propose_response};
use raftmq_raft::network::Dialer;
use raftmq_raft::{Cmd, NodeId, Raft};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::error::ApiError;
use crate::sm::BrokerStateMachine;

/// How long to wait between attempts while no leader is known.
const ELECTION_POLL: Duration = Duration::from_millis(20);

#[derive(Clone)]
pub struct Proposer {
    group: Arc<str>,
    node_id: NodeId,
    raft: Raft<BrokerStateMachine>,
    peers: Arc<Mutex<HashMap<String, ForwardClient<Channel>>>>,
    /// This process run's id, in every entry it stamps.
    run: u64,
    dialer: Dialer,
}

/// What goes through the leader.
enum Op {
    Propose(Cmd),
    ReadIndex,
}

/// The reply that carries a read index (a `ReadIndex` answered like a proposal).
pub(crate) fn index_reply(index: u64) -> CommandReply {
    CommandReply { index, result: Some(raftmq_proto::broker::command_reply::Result::Ok(true)) }
}

/// Where the current leader is, as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    pub id: NodeId,
    pub addr: String,
}

impl Proposer {
    pub fn new(group: &str, node_id: NodeId, raft: Raft<BrokerStateMachine>) -> Self {
        Self::with_dialer(group, node_id, raft, Dialer::tcp())
    }

    /// A proposer that forwards through `dialer`'s channels (the simulation's network).
    pub fn with_dialer(group: &str, node_id: NodeId, raft: Raft<BrokerStateMachine>, dialer: Dialer) -> Self {
        Self { group: group.into(), node_id, raft, peers: Arc::default(), run: rand::random(), dialer }
    }

    pub fn raft(&self) -> &Raft<BrokerStateMachine> {
        &self.raft
    }

    pub fn leader(&self) -> Option<LeaderInfo> {
        let m = self.raft.metrics().borrow_watched().clone();
        let id = m.current_leader?;
        let addr = m.membership_config.membership().get_node(&id)?.addr.clone();
        Some(LeaderInfo { id, addr })
    }

    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow_watched().current_leader == Some(self.node_id)
    }

    fn client(&self, addr: &str) -> Result<ForwardClient<Channel>, ApiError> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = peers.get(addr) {
            return Ok(c.clone());
        }
        let ch = self.dialer.dial(addr).map_err(|e| ApiError::internal(format!("bad peer address {addr}: {e}")))?;
        let c = ForwardClient::new(ch).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20);
        peers.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Proposes `cmd` and waits until it is committed and applied, or `deadline`.
    pub async fn propose(&self, cmd: Cmd, deadline: Instant) -> Result<CommandReply, ApiError> {
        self.through_leader(&Op::Propose(cmd), deadline).await
    }

    /// The leader's read index (it confirms its leadership with a quorum
    /// first): once this replica has applied up to it, a read here is
    /// linearizable. Nothing is written to the log.
    pub async fn read_index(&self, deadline: Instant) -> Result<u64, ApiError> {
        Ok(self.through_leader(&Op::ReadIndex, deadline).await?.index)
    }

    async fn through_leader(&self, op: &Op, deadline: Instant) -> Result<CommandReply, ApiError> {
        loop {
            if Instant::now() >= deadline {
                return Err(ApiError::no_leader(&self.group));
            }
            let Some(leader) = self.leader() else {
                self.wait_for_leader(deadline).await;
                continue;
            };
            if leader.id == self.node_id {
                let local = match op {
                    Op::Propose(cmd) => self.propose_local(cmd.clone(), deadline).await,
                    Op::ReadIndex => self.read_index_local(deadline).await.map(|i| i.map(index_reply)),
                };
                match local {
                    Ok(Some(reply)) => return Ok(reply),
                    // Not done here: leadership was lost, or this leader's lease expired (it
                    // is cut off from a quorum and still calls itself leader). Retrying at once
                    // spun a core until the deadline (found by the simulation, tests/sim).
                    Ok(None) => {
                        tokio::time::sleep(ELECTION_POLL).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            match self.forward(&leader.addr, op, deadline).await? {
                Some(reply) => return Ok(reply),
                None => tokio::time::sleep(ELECTION_POLL).await,
            }
        }
    }

    /// `Ok(None)`: this node is not the leader.
    pub async fn read_index_local(&self, deadline: Instant) -> Result<Option<u64>, ApiError> {
        match tokio::time::timeout_at(deadline, self.raft.get_read_linearizer(ReadPolicy::ReadIndex)).await {
            Err(_) => Err(ApiError::timeout("confirming leadership for a read")),
            Ok(Ok(l)) => Ok(Some(l.read_log_id().index())),
            Ok(Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(_)))) => Ok(None),
            Ok(Err(RaftError::APIError(e))) => Err(ApiError::new(
                raftmq_proto::rocketmq::v2::Code::HaNotAvailable,
                format!("the leader cannot confirm its leadership: {e}"),
            )),
            Ok(Err(RaftError::Fatal(f))) => Err(ApiError::new(
                raftmq_proto::rocketmq::v2::Code::HaNotAvailable,
                format!("this replica stopped: {f}"),
            )),
        }
    }

    /// `Ok(None)`: this node is not the leader (the entry was not appended).
    pub async fn propose_local(&self, cmd: Cmd, deadline: Instant) -> Result<Option<CommandReply>, ApiError> {
        // The leader's clock goes into the entry: the idempotent-send window
        // measures time by one clock per term (sm/dedup.rs).
        let stamp = crate::cmd::Stamp { ms: crate::service::messaging::now_ms(), run: self.run };
        let cmd = crate::cmd::stamp(&cmd, stamp);
        match tokio::time::timeout_at(deadline, self.raft.client_write(cmd)).await {
            Err(_) => Err(ApiError::timeout("the write")),
            Ok(Ok(resp)) => Ok(Some(resp.data)),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => Ok(None),
            Ok(Err(RaftError::APIError(e))) => Err(ApiError::internal(format!("proposal refused: {e}"))),
            Ok(Err(RaftError::Fatal(f))) => Err(ApiError::new(
                raftmq_proto::rocketmq::v2::Code::HaNotAvailable,
                format!("this replica stopped: {f}"),
            )),
        }
    }

    /// `Ok(None)`: the target was not the leader or could not be reached before sending.
    async fn forward(&self, addr: &str, op: &Op, deadline: Instant) -> Result<Option<CommandReply>, ApiError> {
        let mut client = self.client(addr)?;
        let timeout = deadline.saturating_duration_since(Instant::now());
        let group = self.group.to_string();
        let sent = match op {
            Op::Propose(cmd) => {
                let mut req = tonic::Request::new(ProposeRequest { group, command: cmd.0.clone() });
                req.set_timeout(timeout);
                client.propose(req).await
            }
            Op::ReadIndex => {
                let mut req = tonic::Request::new(ReadIndexRequest { group });
                req.set_timeout(timeout);
                client.read_index(req).await
            }
        };
        match sent {
            Ok(resp) => match resp.into_inner().result {
                Some(propose_response::Result::Reply(r)) => Ok(Some(r)),
                Some(propose_response::Result::NotLeader(_)) => Ok(None),
                Some(propose_response::Result::Error(e)) => Err(ApiError::from_reply(&e)),
                None => Err(ApiError::internal("empty forward response")),
            },
            // Nothing was sent: the leader's port refused the connection.
            Err(s) if s.code() == tonic::Code::Unavailable && is_connect_error(&s) => Ok(None),
            Err(s) if s.code() == tonic::Code::DeadlineExceeded => Err(ApiError::timeout("the forwarded request")),
            Err(s) => Err(ApiError::timeout(&format!("the request forwarded to {addr} ({})", s.message()))),
        }
    }

    async fn wait_for_leader(&self, deadline: Instant) {
        let mut rx = self.raft.metrics();
        let _ = tokio::time::timeout_at(deadline.min(Instant::now() + Duration::from_millis(200)), async {
            while rx.borrow_and_update().current_leader.is_none() {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        if self.leader().is_none() {
            tokio::time::sleep(ELECTION_POLL).await;
        }
    }
}

fn is_connect_error(s: &tonic::Status) -> bool {
    let m = s.message().to_ascii_lowercase();
    m.contains("connect") || m.contains("refused") || m.contains("dns")
}
