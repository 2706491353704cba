//! The client side of the gRPC Raft network: one [`PeerClient`] per target node.
//!
//! Channels are created lazily and shared per address, with HTTP/2 keepalive so a
//! silently dead peer is noticed within about two seconds, and every unary RPC
//! carries a deadline from openraft's [`RPCOption`]. Without both, a partitioned
//! peer can wedge replication for a long time (see raft-and-storage.md §12.1).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use openraft::base::{BoxFuture, BoxStream};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendError, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend};
use raftmq_proto::raft as pb;
use raftmq_proto::raft::raft_service_client::RaftServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::pb as conv;
use crate::types::{NodeId, SnapshotData, TypeConfig, Vote};

type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotData>;

/// How long a peer that could not be reached is left alone (see [`PeerClient::backoff`]).
const UNREACHABLE_PAUSE: Duration = Duration::from_millis(200);

/// Largest gRPC message a peer accepts: AppendEntries batches are byte-capped by
/// the log store well below this.
pub const MAX_RAFT_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Creates a [`Channel`] to `addr` (host:port) with the keepalive and timeouts all
/// internal RPCs use. The channel connects lazily and reconnects by itself.
pub fn peer_channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(peer_endpoint(addr)?.connect_lazy())
}

/// The [`Endpoint`] behind [`peer_channel`]: keepalive and timeouts, not yet connected.
pub fn peer_endpoint(addr: &str) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_millis(500))
        .http2_keep_alive_interval(Duration::from_millis(500))
        .keep_alive_timeout(Duration::from_millis(1000))
        .keep_alive_while_idle(true)
        .tcp_nodelay(true))
}

/// Opens the channel to a peer address. [`Dialer::tcp`] ([`peer_channel`]) in production; the
/// deterministic simulation (`broker/tests/sim`) dials through its simulated network with
/// [`Dialer::custom`], usually `peer_endpoint(addr)?.connect_with_connector_lazy(..)`.
#[derive(Clone)]
pub struct Dialer(Arc<DialFn>);

type DialFn = dyn Fn(&str) -> Result<Channel, tonic::transport::Error> + Send + Sync;

impl Dialer {
    pub fn tcp() -> Self {
        Self(Arc::new(peer_channel))
    }

    pub fn custom(dial: impl Fn(&str) -> Result<Channel, tonic::transport::Error> + Send + Sync + 'static) -> Self {
        Self(Arc::new(dial))
    }

    pub fn dial(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        (self.0)(addr)
    }
}

impl Default for Dialer {
    fn default() -> Self {
        Self::tcp()
    }
}

/// Builds [`PeerClient`]s, sharing one channel per peer address.
#[derive(Clone)]
pub struct GrpcNetworkFactory {
    group: Arc<str>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    dialer: Dialer,
}

impl GrpcNetworkFactory {
    pub fn new(group: &str) -> Self {
        Self::with_dialer(group, Dialer::tcp())
    }

    pub fn with_dialer(group: &str, dialer: Dialer) -> Self {
        Self { group: group.into(), channels: Arc::default(), dialer }
    }

    fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ch) = map.get(addr) {
            return Ok(ch.clone());
        }
        let ch = self.dialer.dial(addr)?;
        map.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        let client = self.channel(&node.addr).map(|ch| {
            RaftServiceClient::new(ch)
                .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES)
        });
        PeerClient { group: self.group.clone(), target, addr: node.addr.clone(), client }
    }
}

/// The connection to one peer, as openraft sees it.
pub struct PeerClient {
    group: Arc<str>,
    target: NodeId,
    addr: String,
    /// An invalid address is reported as `Unreachable` on every call.
    client: Result<RaftServiceClient<Channel>, tonic::transport::Error>,
}

impl PeerClient {
    fn client(&self) -> Result<RaftServiceClient<Channel>, Unreachable<TypeConfig>> {
        match &self.client {
            Ok(c) => Ok(c.clone()),
            Err(e) => Err(Unreachable::from_string(format!("bad peer address {}: {e}", self.addr))),
        }
    }

    fn timeout(&self, action: RPCTypes, option: &RPCOption) -> Timeout<TypeConfig> {
        Timeout { action, id: 0, target: self.target, timeout: option.soft_ttl() }
    }

    /// Runs one unary call under the soft deadline and maps transport failures.
    async fn unary<T, F>(&self, action: RPCTypes, option: &RPCOption, call: F) -> Result<T, RPCError<TypeConfig>>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(option.soft_ttl(), call).await {
            Err(_) => Err(RPCError::Timeout(self.timeout(action, option))),
            Ok(Err(status)) => Err(status_to_rpc_error(&self.addr, status)),
            Ok(Ok(resp)) => Ok(resp.into_inner()),
        }
    }
}

impl PeerClient {
    async fn vote_rpc(
        &self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
        pre: bool,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut client = self.client()?;
        let req = conv::vote_req_to_pb(&self.group, &rpc);
        let resp = if pre {
            self.unary(RPCTypes::Vote, &option, client.pre_vote(req)).await?
        } else {
            self.unary(RPCTypes::Vote, &option, client.vote(req)).await?
        };
        conv::vote_resp_from_pb(&resp).map_err(decode_error)
    }
}

/// Connection failures mean "unreachable" (openraft backs off); anything else
/// the peer answered is a network error.
fn status_to_rpc_error(addr: &str, status: tonic::Status) -> RPCError<TypeConfig> {
    let msg = format!("peer {addr}: {}: {}", status.code(), status.message());
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown => RPCError::Unreachable(Unreachable::from_string(msg)),
        _ => RPCError::Network(NetworkError::from_string(msg)),
    }
}

fn decode_error(e: conv::DecodeError) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(&e))
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut client = self.client()?;
        let req = conv::append_req_to_pb(&self.group, &rpc);
        let resp = self.unary(RPCTypes::AppendEntries, &option, client.append_entries(req)).await?;
        conv::append_resp_from_pb(resp).map_err(decode_error)
    }

    /// Native gRPC bidirectional streaming: requests are pipelined and
    /// responses come back in order. A response overdue by more than the soft
    /// TTL while requests are outstanding ends the stream with a timeout.
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>, RPCError<TypeConfig>>,
    >
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
    {
        Box::pin(async move {
            let mut client = self.client()?;
            let group = self.group.clone();
            let sent = Arc::new(AtomicU64::new(0));
            let sent_in = sent.clone();
            let requests = input.map(move |r| {
                sent_in.fetch_add(1, Ordering::Release);
                conv::append_req_to_pb(&group, &r)
            });
            let ttl = option.soft_ttl();
            let timeout = self.timeout(RPCTypes::AppendEntries, &option);
            let responses = match tokio::time::timeout(ttl, client.stream_append(requests)).await {
                Err(_) => return Err(RPCError::Timeout(timeout)),
                Ok(Err(status)) => {
                    let err = status_to_rpc_error(&self.addr, status);
                    if matches!(err, RPCError::Unreachable(_)) {
                        // openraft applies its backoff while it feeds the request stream,
                        // which a stream that never opened does not poll: without this
                        // pause a refused connection is retried in a tight loop (found by
                        // the simulation, broker/tests/sim).
                        tokio::time::sleep(UNREACHABLE_PAUSE).await;
                    }
                    return Err(err);
                }
                Ok(Ok(r)) => r.into_inner(),
            };
            let addr = self.addr.clone();
            let state = (responses, 0u64, sent);
            let out = futures::stream::unfold(Some(state), move |st| {
                let addr = addr.clone();
                let timeout = timeout.clone();
                async move {
                    let (mut responses, mut received, sent) = st?;
                    loop {
                        match tokio::time::timeout(ttl, responses.next()).await {
                            Err(_) if sent.load(Ordering::Acquire) == received => continue, // idle, not late
                            Err(_) => return Some((Err(RPCError::Timeout(timeout)), None)),
                            Ok(None) => return None,
                            Ok(Some(Err(status))) => return Some((Err(status_to_rpc_error(&addr, status)), None)),
                            Ok(Some(Ok(resp))) => {
                                received += 1;
                                let item = stream_result_from_pb(resp);
                                let next = item.is_ok().then_some((responses, received, sent));
                                return Some((item, next));
                            }
                        }
                    }
                }
            });
            Ok(Box::pin(out) as BoxStream<'s, _>)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.vote_rpc(rpc, option, false).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.vote_rpc(rpc, option, true).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut client = self.client()?;
        let meta = &snapshot.meta;
        let req = pb::InstallSnapshotRequest {
            group: self.group.to_string(),
            vote: Some(conv::vote_to_pb(&vote)),
            meta: Some(pb::SnapshotMeta {
                last_log_id: conv::opt_log_id_to_pb(meta.last_log_id.as_ref()),
                membership_log_id: conv::opt_log_id_to_pb(meta.last_membership.log_id().as_ref()),
                membership: Some(conv::membership_to_pb(meta.last_membership.membership())),
                snapshot_id: String::new(),
            }),
            data: snapshot.snapshot.clone(),
        };
        // The snapshot is a small metadata checkpoint; a generous fixed deadline
        // on top of the configured one covers a slow disk on the receiver.
        let deadline = option.hard_ttl().max(Duration::from_secs(10));
        let call = client.install_snapshot(req);
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            r = tokio::time::timeout(deadline, call) => match r {
                Err(_) => Err(StreamingError::Timeout(self.timeout(RPCTypes::InstallSnapshot, &option))),
                Ok(Err(status)) => Err(match status_to_rpc_error(&self.addr, status) {
                    RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                    RPCError::Timeout(t) => StreamingError::Timeout(t),
                    other => StreamingError::Network(NetworkError::from_string(other.to_string())),
                }),
                Ok(Ok(resp)) => {
                    let vote = resp.into_inner().vote.ok_or_else(|| NetworkError::from_string("snapshot response without vote"))?;
                    Ok(SnapshotResponse::new(conv::vote_from_pb(&vote)))
                }
            },
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut client = self.client()?;
        let pb_req = pb::TransferLeaderRequest {
            group: self.group.to_string(),
            from_leader: Some(conv::vote_to_pb(req.from_leader())),
            to_node_id: *req.to_node_id(),
            last_log_id: conv::opt_log_id_to_pb(req.last_log_id()),
        };
        self.unary(RPCTypes::TransferLeader, &option, client.transfer_leader(pb_req)).await?;
        Ok(Ok(()))
    }

    fn backoff(&self) -> Option<Backoff> {
        // A down peer is retried every 200 ms: fast enough that a restarted
        // replica catches up at once, slow enough not to spin on 2 cores.
        Some(Backoff::new(std::iter::repeat(UNREACHABLE_PAUSE)))
    }
}

fn stream_result_from_pb(
    resp: pb::StreamAppendResponse,
) -> Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>> {
    use pb::stream_append_response::Result as R;
    match resp.result {
        Some(R::Matching(m)) => Ok(Ok(conv::opt_log_id_from_pb(m.matching.as_ref()))),
        Some(R::Conflict(id)) => Ok(Err(StreamAppendError::Conflict(conv::log_id_from_pb(&id)))),
        Some(R::HigherVote(v)) => Ok(Err(StreamAppendError::HigherVote(conv::vote_from_pb(&v)))),
        None => Err(RPCError::Network(NetworkError::from_string("stream append response without result"))),
    }
}
