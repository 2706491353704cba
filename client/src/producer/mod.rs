//! The producer: routes a message to a queue of one of the topic's broker
//! groups and waits for the Raft-committed answer.
//!
//! Failover: a group is reachable through any replica (each forwards to the
//! leader), so when the leader stops answering the producer moves to the next
//! replica of the same group at once, without waiting for a route refresh.
//! A send that still fails is retried on another broker group (`retries`,
//! default 2). A retry after an unknown outcome may store the message twice.
//!
//! A message with a message group ([`Message::with_message_group`]) always
//! goes to the same broker group and queue (see `placement.rs`), and its
//! retries stay there, so one group's messages are stored in send order.
//!
//! The receipt names the queue the message was stored in: the broker lists
//! the queues in a response header
//! ([`raftmq_proto::placement::QUEUE_IDS_HEADER`]); without it (an older
//! broker) the SDK reports the queue it chose, which for a message group is
//! the broker's own placement
//! ([`raftmq_proto::placement::message_group_queue`]).
//!
//! Concurrent single sends of one topic share SendMessage calls (`lane.rs`):
//! at most a few calls per topic are under way at once, and messages sent
//! meanwhile leave together in the next one, each still answered on its own.
//! An idle producer adds no wait; a busy one saves most of the per-call cost
//! (HTTP/2 framing, a broker request, a Raft proposal) of every message. Sends
//! with a message group and [`Producer::send_batch`] each make their own call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use raftmq_proto::namesrv::GroupRoute;
use raftmq_proto::placement as wire_placement;
use raftmq_proto::rocketmq::v2;

use crate::cluster::{Cluster, DEFAULT_TIMEOUT, TopicRoute};
use crate::error::Error;
use crate::placement;

mod lane;

/// Longest wait on one replica before the next is tried.
const REPLICA_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1500);

/// A message to send.
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub topic: String,
    pub body: Bytes,
    pub tag: Option<String>,
    pub keys: Vec<String>,
    pub properties: HashMap<String, String>,
    /// Messages of one group are stored in one queue, in send order.
    pub message_group: Option<String>,
    /// Not delivered before this time (a delayed message).
    pub delivery_time: Option<std::time::SystemTime>,
}

impl Message {
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self { topic: topic.into(), body: body.into(), ..Default::default() }
    }

    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// The sharding key: messages with the same group are stored on one queue
    /// in the order they were sent (a FIFO message; the topic must accept
    /// [`crate::MessageType::Fifo`], see [`crate::Cluster::create_topic_accepting`]). Wait for one send to
    /// finish before the next of the same group, or their order is the order
    /// in which the broker happened to receive them.
    pub fn with_message_group(mut self, group: impl Into<String>) -> Self {
        self.message_group = Some(group.into());
        self
    }

    /// A delayed message: stored (and acknowledged) now, delivered to
    /// consumers from `at` on (the topic must accept
    /// [`crate::MessageType::Delay`]; the broker refuses more than 24 h ahead
    /// with ILLEGAL_DELIVERY_TIME). It gets its queue offset when it is due,
    /// so its receipt's offset is -1.
    pub fn with_delivery_time(mut self, at: std::time::SystemTime) -> Self {
        self.delivery_time = Some(at);
        self
    }
}

/// Where a message was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    pub message_id: String,
    pub group: String,
    pub queue_id: i32,
    pub offset: i64,
}

pub struct Producer {
    core: Arc<Core>,
    /// One lane per topic, created by the first shared send to it.
    lanes: Mutex<HashMap<String, lane::Lane>>,
    shared_calls: usize,
}

/// What the producer's sends share, including those made by lanes' tasks.
struct Core {
    cluster: Cluster,
    routes: Mutex<HashMap<String, Arc<TopicRoute>>>,
    next_queue: AtomicUsize,
    /// Preferred replica per group, moved on failure.
    preferred: Mutex<HashMap<String, usize>>,
    retries: AtomicUsize,
    timeout_ms: AtomicU64,
    id_seq: AtomicU32,
    id_prefix: String,
}

/// SendMessage calls per topic under way at once for shared sends, by default.
///
/// Two rather than more: nearly all of a send's cost on the brokers is per Raft entry (an
/// fsync and an apply on every replica, the replication messages), so fewer, fuller calls
/// cost less per message. With 64 sends in flight in the bench, 4 calls gave ~10 messages per
/// entry, 2 gave ~18 and 1 gave ~32. In nine alternating pairs of runs, 2 calls cost 6-24 %
/// less CPU per message than 4 in eight and the same in one, with more throughput in seven
/// (docs/benchmarks.md). Two keep a call under way while the other waits for its commit, so
/// one slow call does not hold up every send of the topic.
pub const DEFAULT_SHARED_CALLS: usize = 2;

impl Producer {
    pub fn new(cluster: Cluster) -> Self {
        let host: [u8; 6] = rand::random();
        let pid = (std::process::id() & 0xffff) as u16;
        let core = Core {
            cluster,
            routes: Mutex::default(),
            next_queue: AtomicUsize::new(rand::random::<u16>() as usize),
            preferred: Mutex::default(),
            retries: AtomicUsize::new(2),
            timeout_ms: AtomicU64::new(DEFAULT_TIMEOUT.as_millis() as u64),
            id_seq: AtomicU32::new(0),
            id_prefix: format!("01{}{:04X}", bytes_hex(&host), pid),
        };
        Self { core: Arc::new(core), lanes: Mutex::default(), shared_calls: DEFAULT_SHARED_CALLS }
    }

    /// Retries on another broker group after a failed send. Default 2.
    pub fn with_retries(self, retries: usize) -> Self {
        self.core.retries.store(retries, Ordering::Relaxed);
        self
    }

    /// Per-attempt deadline. Default 3 s.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.core.timeout_ms.store(timeout.as_millis() as u64, Ordering::Relaxed);
        self
    }

    /// How many SendMessage calls per topic concurrent [`Producer::send`]s
    /// share at most (default [`DEFAULT_SHARED_CALLS`]); 0 gives every send
    /// its own call, as the official clients do.
    pub fn with_shared_calls(mut self, calls: usize) -> Self {
        self.shared_calls = calls;
        self.lanes.get_mut().unwrap_or_else(|p| p.into_inner()).clear();
        self
    }

    /// A new unique message id: `01` | host (6 bytes) | pid (2) | time (4) | sequence (4), in hex.
    pub fn new_message_id(&self) -> String {
        self.core.new_message_id()
    }

    /// Sends one message and waits for the Raft-committed answer. This is
    /// the asynchronous send: run several at once (`join_all`, or spawned
    /// tasks sharing an `Arc<Producer>`) to keep more in flight; they then
    /// share calls to the broker (see the module docs). Needs a Tokio runtime.
    pub async fn send(&self, msg: Message) -> Result<SendReceipt, Error> {
        let id = self.core.new_message_id();
        if self.shared_calls == 0 || msg.message_group.is_some() {
            return only(self.core.send_messages(&[msg], &[id], Placement::OneQueue).await?);
        }
        lane::submit(&self.lanes, &self.core, self.shared_calls, msg, id).await
    }

    /// Fire and forget: sends `msg` on a spawned task (with the usual
    /// retries) and returns at once. Nobody learns the outcome: the message is
    /// lost if every attempt fails, or if the runtime shuts down first. Use
    /// [`Producer::send`] for anything that must not be lost. Needs a Tokio
    /// runtime.
    pub fn send_oneway(self: &Arc<Self>, msg: Message) {
        let producer = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = producer.send(msg).await {
                tracing::debug!("one-way send failed, message dropped: {e}");
            }
        });
    }

    /// Sends messages of one topic as one batch: one Raft entry, stored all or
    /// nothing, in one queue. Messages with a message group must all have the same one.
    pub async fn send_batch(&self, msgs: Vec<Message>) -> Result<Vec<SendReceipt>, Error> {
        let ids: Vec<String> = msgs.iter().map(|_| self.core.new_message_id()).collect();
        self.core.send_messages(&msgs, &ids, Placement::OneQueue).await
    }
}

/// Which queues the messages of one call go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// All in one queue (a batch, or one message).
    OneQueue,
    /// Round-robin over the chosen group's queues (independent sends sharing a call).
    Spread,
}

impl Core {
    fn new_message_id(&self) -> String {
        let secs =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0);
        format!("{}{:08X}{:08X}", self.id_prefix, secs, self.id_seq.fetch_add(1, Ordering::Relaxed))
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    async fn route(&self, topic: &str, refresh: bool) -> Result<Arc<TopicRoute>, Error> {
        if !refresh && let Some(r) = self.routes.lock().unwrap_or_else(|p| p.into_inner()).get(topic) {
            return Ok(r.clone());
        }
        let r = Arc::new(self.cluster.route(topic).await?);
        if r.groups.is_empty() {
            return Err(Error::NotFound(format!("topic '{topic}' has no broker group")));
        }
        self.routes.lock().unwrap_or_else(|p| p.into_inner()).insert(topic.to_string(), r.clone());
        Ok(r)
    }

    /// Sends `msgs` (one topic) in one call per attempt, with retries on
    /// another group; `ids` are their message ids, kept across attempts.
    async fn send_messages(&self, msgs: &[Message], ids: &[String], how: Placement) -> Result<Vec<SendReceipt>, Error> {
        let topic =
            msgs.first().map(|m| m.topic.clone()).ok_or_else(|| Error::InvalidArgument("empty batch".into()))?;
        if msgs.iter().any(|m| m.topic != topic) {
            return Err(Error::InvalidArgument("a batch must have one topic".into()));
        }
        let message_group = msgs.iter().find_map(|m| m.message_group.clone());
        if msgs.iter().any(|m| m.message_group.as_ref().is_some_and(|g| Some(g) != message_group.as_ref())) {
            return Err(Error::InvalidArgument("a batch may hold messages of one message group only".into()));
        }
        let mut route = self.route(&topic, false).await?;
        let start = self.next_queue.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        // Moves on to the next group only after a failure that certainly stored
        // nothing; after an unknown outcome the same group and queue are tried
        // again, so the broker's idempotent-send window answers a re-send of a
        // message it already stored with the original position.
        let mut shift = 0;
        let mut pinned: Option<(String, i32)> = None;
        for attempt in 0..=self.retries.load(Ordering::Relaxed) {
            let queues: Vec<(usize, i32)> = route
                .groups
                .iter()
                .enumerate()
                .flat_map(|(gi, g)| {
                    (0..g.topic.as_ref().map(|t| t.queue_count).unwrap_or(0) as i32).map(move |q| (gi, q))
                })
                .collect();
            if queues.is_empty() {
                return Err(Error::NotFound(format!("topic '{topic}' has no queues")));
            }
            let pinned_at = pinned
                .as_ref()
                .and_then(|(g, q)| queues.iter().find(|(gi, qq)| route.groups[*gi].group == *g && qq == q).copied());
            // A message group never moves on after a failure: another queue
            // would let a later message overtake it.
            let by_group = message_group.as_deref().and_then(|mg| {
                let counts: Vec<(&str, u32)> = route
                    .groups
                    .iter()
                    .map(|g| (g.group.as_str(), g.topic.as_ref().map(|t| t.queue_count).unwrap_or(0)))
                    .collect();
                placement::place(mg, &counts)
            });
            let (gi, queue) = by_group
                .or(pinned_at)
                .unwrap_or_else(|| queues[(start + shift * queues.len() / route.groups.len().max(1)) % queues.len()]);
            let group = &route.groups[gi];
            let chosen: Vec<i32> = match how {
                Placement::OneQueue => vec![queue; msgs.len()],
                Placement::Spread => {
                    let count = group.topic.as_ref().map(|t| t.queue_count).unwrap_or(1).max(1) as i32;
                    (0..msgs.len()).map(|k| (queue + k as i32) % count).collect()
                }
            };
            let req = build_request(msgs, ids, &chosen);
            match self.send_to_group(group, req).await {
                Ok((resp, queues)) => return receipts(resp, &group.group, &chosen, queues, ids),
                Err(e) if e.is_retriable() => {
                    tracing::debug!(group = %group.group, attempt, "send failed, retrying: {e}");
                    if e.is_unknown_outcome() {
                        pinned = Some((group.group.clone(), queue));
                    } else if pinned.is_none() {
                        shift += 1;
                    }
                    last = Some(e);
                    route = self.route(&topic, true).await.unwrap_or(route);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::NotFound("no attempt made".into())))
    }

    /// Tries the group's replicas, starting with the one that worked last.
    async fn send_to_group(
        &self,
        g: &GroupRoute,
        req: v2::SendMessageRequest,
    ) -> Result<(v2::SendMessageResponse, Option<Vec<i32>>), Error> {
        let mut addrs: Vec<&str> = g.nodes.iter().map(|n| n.addr.as_str()).collect();
        if addrs.is_empty() && !g.leader_addr.is_empty() {
            addrs.push(&g.leader_addr);
        }
        if addrs.is_empty() {
            return Err(Error::Transport { endpoint: g.group.clone(), message: "no live replica".into() });
        }
        let first = {
            let p = self.preferred.lock().unwrap_or_else(|p| p.into_inner());
            p.get(&g.group).copied().unwrap_or_else(|| addrs.iter().position(|a| *a == g.leader_addr).unwrap_or(0))
        };
        let mut last = None;
        for i in 0..addrs.len() {
            let idx = (first + i) % addrs.len();
            let addr = addrs[idx];
            let mut client = self.cluster.messaging(addr)?;
            let mut r = tonic::Request::new(req.clone());
            // A partitioned old leader never answers; move to the next replica
            // (which forwards to the new leader) soon after an election could
            // have finished. Safe: a re-send of a stored message is answered
            // with its original position (the broker's idempotent-send window).
            r.set_timeout(self.timeout().min(REPLICA_ATTEMPT_TIMEOUT));
            match client.send_message(r).await {
                Ok(resp) => {
                    let queues = resp
                        .metadata()
                        .get(wire_placement::QUEUE_IDS_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(wire_placement::parse_queue_ids);
                    let resp = resp.into_inner();
                    match Error::from_status(resp.status.as_ref()) {
                        // Another replica may reach a leader this one cannot.
                        Err(e) if e.is_retriable() && i + 1 < addrs.len() => last = Some(e),
                        Err(e) => return Err(e),
                        Ok(()) => {
                            self.preferred.lock().unwrap_or_else(|p| p.into_inner()).insert(g.group.clone(), idx);
                            return Ok((resp, queues));
                        }
                    }
                }
                Err(s) => last = Some(Error::transport(addr, s)),
            }
        }
        Err(last.unwrap_or_else(|| Error::transport(&g.group, "no replica answered")))
    }
}

/// The receipt of a call that sent one message.
fn only(mut receipts: Vec<SendReceipt>) -> Result<SendReceipt, Error> {
    receipts.pop().ok_or_else(|| Error::Broker { code: v2::Code::InternalError, message: "empty send result".into() })
}

fn bytes_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn timestamp(t: std::time::SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

/// One message per `ids` and `queues` entry.
fn build_request(msgs: &[Message], ids: &[String], queues: &[i32]) -> v2::SendMessageRequest {
    let born = timestamp(std::time::SystemTime::now());
    v2::SendMessageRequest {
        messages: msgs
            .iter()
            .zip(ids)
            .zip(queues)
            .map(|((m, id), &queue)| v2::Message {
                topic: Some(v2::Resource { name: m.topic.clone(), ..Default::default() }),
                user_properties: m.properties.clone(),
                system_properties: Some(v2::SystemProperties {
                    tag: m.tag.clone(),
                    keys: m.keys.clone(),
                    message_id: id.clone(),
                    body_encoding: v2::Encoding::Identity as i32,
                    message_type: if m.message_group.is_some() {
                        v2::MessageType::Fifo
                    } else if m.delivery_time.is_some() {
                        v2::MessageType::Delay
                    } else {
                        v2::MessageType::Normal
                    } as i32,
                    delivery_timestamp: m.delivery_time.map(timestamp),
                    born_timestamp: Some(born),
                    queue_id: queue,
                    message_group: m.message_group.clone(),
                    ..Default::default()
                }),
                body: m.body.clone(),
            })
            .collect(),
    }
}

/// One receipt per message: the queue from the broker's header when it sent
/// one (one id per entry), else `chosen`, the one the SDK chose.
fn receipts(
    resp: v2::SendMessageResponse,
    group: &str,
    chosen: &[i32],
    queues: Option<Vec<i32>>,
    ids: &[String],
) -> Result<Vec<SendReceipt>, Error> {
    if resp.entries.len() != ids.len() {
        return Err(Error::Broker {
            code: v2::Code::InternalError,
            message: format!("{} results for {} messages", resp.entries.len(), ids.len()),
        });
    }
    let queues = queues.filter(|q| q.len() == ids.len()).unwrap_or_else(|| chosen.to_vec());
    Ok(resp
        .entries
        .into_iter()
        .zip(ids)
        .zip(queues)
        .map(|((e, id), queue_id)| SendReceipt {
            message_id: id.clone(),
            group: group.to_string(),
            queue_id,
            offset: e.offset,
        })
        .collect())
}
