//! Proposing a command through the group leader, from any replica.
//!
//! Leader changes are invisible to callers: a node that is not the leader
//! forwards to the one it knows; when there is none yet (an election), it waits
//! for one. A proposal is retried only while it is certain it was never
//! appended (no leader, refused connection, "not leader" answers); once it may
//! have reached a leader, a failure is reported as an unknown outcome.
//!
//! The leader plans the pops of a command right before it proposes it
//! ([`crate::pop_plan`]): whether the command was built on this node or
//! forwarded, the plan is made by the node that appends it.

use openraft::type_config::async_runtime::WatchReceiver;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::ReadPolicy;
use openraft::errors::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::impls::ProgressResponder;
use raftmq_proto::broker::forward_client::ForwardClient;
use raftmq_proto::broker::{CommandReply, MetaCommand, ProposeRequest, ReadIndexRequest, propose_response};
use raftmq_raft::network::Dialer;
use raftmq_raft::{Cmd, NodeId, Raft, TypeConfig};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::error::ApiError;
use crate::pop_plan::PopPlanner;
use crate::sm::{BrokerStateMachine, Shared};

/// How long to wait between attempts while no leader is known.
const ELECTION_POLL: Duration = Duration::from_millis(20);

#[derive(Clone)]
pub struct Proposer {
    group: Arc<str>,
    node_id: NodeId,
    raft: Raft<BrokerStateMachine>,
    peers: Arc<Mutex<HashMap<String, ForwardClient<Channel>>>>,
    /// This process run's id, in every entry it stamps (random unless [`Proposer::with_run_id`]).
    run: u64,
    dialer: Dialer,
    planner: Arc<PopPlanner>,
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
    /// `shared` is the replica's applied state, which pops are planned against when it leads.
    pub fn new(group: &str, node_id: NodeId, raft: Raft<BrokerStateMachine>, shared: Arc<Shared>) -> Self {
        Self::with_dialer(group, node_id, raft, shared, Dialer::tcp())
    }

    /// A proposer that forwards through `dialer`'s channels (the simulation's network).
    pub fn with_dialer(
        group: &str,
        node_id: NodeId,
        raft: Raft<BrokerStateMachine>,
        shared: Arc<Shared>,
        dialer: Dialer,
    ) -> Self {
        Self {
            group: group.into(),
            node_id,
            raft,
            peers: Arc::default(),
            run: rand::random(),
            dialer,
            planner: Arc::new(PopPlanner::new(&shared)),
        }
    }

    /// Stamps entries with `run` rather than a random run id: a simulation derives it from its
    /// seed so that a replayed seed writes the same bytes. No two process runs may share one
    /// (the idempotent-send window tells leaders apart by it, sm/dedup.rs).
    pub fn with_run_id(mut self, run: u64) -> Self {
        self.run = run;
        self
    }

    pub fn raft(&self) -> &Raft<BrokerStateMachine> {
        &self.raft
    }

    pub fn leader(&self) -> Option<LeaderInfo> {
        // Borrowed, not cloned: every proposal asks, and the metrics hold the whole
        // membership and replication state.
        let rx = self.raft.metrics();
        let m = rx.borrow_watched();
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
        match PopPlanner::with_pops(&cmd) {
            Some(m) => self.propose_planned(m, deadline).await,
            None => self.write(cmd, deadline).await,
        }
    }

    /// The leader's clock goes into the entry: the idempotent-send window
    /// measures time by one clock per term (sm/dedup.rs).
    fn stamped(&self, cmd: &Cmd) -> Cmd {
        crate::cmd::stamp(cmd, crate::cmd::Stamp { ms: crate::clock::now_ms(), run: self.run })
    }

    async fn write(&self, cmd: Cmd, deadline: Instant) -> Result<Option<CommandReply>, ApiError> {
        match tokio::time::timeout_at(deadline, self.raft.client_write(self.stamped(&cmd))).await {
            Err(_) => Err(ApiError::timeout("the write")),
            Ok(Ok(resp)) => Ok(Some(resp.data)),
            Ok(Err(RaftError::APIError(e))) => write_refused(e),
            Ok(Err(RaftError::Fatal(f))) => Err(stopped(&f)),
        }
    }

    /// A meta command holding pops: they are planned first, as leader of the
    /// current term, and the entry goes only into that term's log
    /// (`with_leader`), so the plan's claims are never carried into another
    /// term. The claims are held until the write returns.
    async fn propose_planned(&self, m: MetaCommand, deadline: Instant) -> Result<Option<CommandReply>, ApiError> {
        let Some(term) = self.leading_term() else { return Ok(None) };
        let order = self.planner.order().await;
        let planned = self.planner.plan(m, term)?;
        let (responder, applied) = ProgressResponder::complete_only();
        let write = self.raft.write(self.stamped(&planned.cmd)).with_leader(term).responder(responder);
        let sent = tokio::time::timeout_at(deadline, write).await;
        // Handed to Raft (or not): the next plan may go.
        drop(order);
        match sent {
            Err(_) => return Err(ApiError::timeout("the write")),
            Ok(Err(f)) => return Err(stopped(&f)),
            Ok(Ok(())) => {}
        }
        let outcome = tokio::time::timeout_at(deadline, applied).await;
        drop(planned.reserved);
        match outcome {
            Err(_) => Err(ApiError::timeout("the write")),
            Ok(Err(_)) => Err(ApiError::new(
                raftmq_proto::rocketmq::v2::Code::HaNotAvailable,
                "this replica stopped before the write was applied",
            )),
            Ok(Ok(Ok(resp))) => Ok(Some(resp.data)),
            Ok(Ok(Err(e))) => write_refused(e),
        }
    }

    /// The term this node leads in, if it leads.
    fn leading_term(&self) -> Option<u64> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        (m.current_leader == Some(self.node_id)).then_some(m.current_term)
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

/// `Ok(None)` when the write went to a node that does not lead (retry at the leader).
fn write_refused(e: ClientWriteError<TypeConfig>) -> Result<Option<CommandReply>, ApiError> {
    match e {
        ClientWriteError::ForwardToLeader(_) => Ok(None),
        e => Err(ApiError::internal(format!("proposal refused: {e}"))),
    }
}

fn stopped(f: &impl std::fmt::Display) -> ApiError {
    ApiError::new(raftmq_proto::rocketmq::v2::Code::HaNotAvailable, format!("this replica stopped: {f}"))
}

fn is_connect_error(s: &tonic::Status) -> bool {
    let m = s.message().to_ascii_lowercase();
    m.contains("connect") || m.contains("refused") || m.contains("dns")
}
