//! `apache.rocketmq.v2.MessagingService`: what clients call.
//!
//! Outcomes travel in the body's `Status` (gRPC status OK), as the RocketMQ 5
//! API and its official clients expect. RPCs that are not built yet answer
//! gRPC UNIMPLEMENTED with a message naming what is missing.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::Stream;
use raftmq_proto::broker::{MetaCommand, OffsetUpdate, command_reply, meta_command};
use raftmq_proto::rocketmq::v2;
use raftmq_proto::rocketmq::v2::messaging_service_server::MessagingService;
use raftmq_proto::rocketmq::v2::{Code, Status as V2Status};
use tokio::time::Instant;
use tonic::{Request, Response, Status, Streaming};

use super::renew::AutoRenewer;
use super::{convert, deadline_of, read_barrier, telemetry};
use crate::batcher::{MetaBatcher, SendBatcher};
use crate::clients::{ClientRegistry, ServerPolicy};
use crate::clock::now_ms;
use crate::cmd;
use crate::config::BrokerConfig;
use crate::consumer_group::validate_group_name;
use crate::error::{ApiError, ok_status};
use crate::proposer::Proposer;
use crate::reader::{TagFilter, read_queue};
use crate::routes::Routes;
use crate::sm::Shared;
use crate::validate::{message_type, validate_message};

pub struct MessagingServiceImpl {
    pub(crate) shared: Arc<Shared>,
    pub(crate) proposer: Proposer,
    pub(crate) routes: Routes,
    pub(crate) self_addr: String,
    pub(crate) max_body_bytes: usize,
    /// This replica's broker group (receipt handles name it).
    pub(crate) group: String,
    batcher: SendBatcher,
    /// Pops, acks and changes of invisible time share entries through this.
    pub(crate) metas: MetaBatcher,
    pub(crate) clients: ClientRegistry,
    pub(crate) policy: ServerPolicy,
    pub(crate) round_robin: AtomicU32,
    /// Leases on `auto_renew` deliveries this replica handed out.
    pub(crate) renewer: AutoRenewer,
}

impl MessagingServiceImpl {
    pub fn new(
        shared: Arc<Shared>,
        proposer: Proposer,
        config: &BrokerConfig,
        routes: Routes,
        self_addr: &str,
    ) -> Self {
        let max_body_bytes = config.max_body_bytes;
        let metas = MetaBatcher::start(proposer.clone(), config.max_inflight_proposals);
        let clients = ClientRegistry::default();
        Self {
            batcher: SendBatcher::start(proposer.clone(), config.max_inflight_proposals),
            renewer: AutoRenewer::start(config.renew_policy(), metas.clone(), clients.clone()),
            metas,
            shared,
            proposer,
            self_addr: self_addr.to_string(),
            max_body_bytes,
            group: routes.group().to_string(),
            clients,
            policy: ServerPolicy {
                max_body_bytes,
                auto_create_groups: config.auto_create_consumer_groups,
                ..ServerPolicy::default()
            },
            round_robin: AtomicU32::new(0),
            routes,
        }
    }

    /// Stores the messages; the answer, and the queue each was stored in.
    async fn send(
        &self,
        req: v2::SendMessageRequest,
        deadline: Instant,
    ) -> Result<(v2::SendMessageResponse, Vec<i32>), ApiError> {
        let first = req.messages.first().ok_or_else(|| ApiError::bad_request("SendMessage carries no messages"))?;
        let topic_name = first.topic.as_ref().map(|t| t.name.clone()).unwrap_or_default();
        let now = now_ms();
        for m in &req.messages {
            validate_message(m, self.max_body_bytes, now)?;
            if m.topic.as_ref().map(|t| t.name.as_str()) != Some(topic_name.as_str()) {
                return Err(ApiError::bad_request("all messages of one SendMessage must have the same topic"));
            }
        }
        let topic = self.shared.meta().topics.get(&topic_name).cloned().ok_or_else(|| {
            ApiError::new(Code::TopicNotFound, format!("topic '{topic_name}' does not exist on this broker group"))
        })?;
        let mut stored = Vec::with_capacity(req.messages.len());
        let mut ids = Vec::with_capacity(req.messages.len());
        for m in req.messages {
            let ty = message_type(&m);
            if !topic.message_types.contains(&(ty as i32)) {
                return Err(ApiError::new(
                    Code::MessagePropertyConflictWithType,
                    format!("topic '{topic_name}' does not accept {} messages", ty.as_str_name()),
                ));
            }
            let queue = self.pick_queue(&m, topic.queue_count);
            ids.push(m.system_properties.as_ref().map(|s| s.message_id.clone()).unwrap_or_default());
            stored.push(convert::to_stored(m, queue, now));
        }
        let results = self.batcher.submit(stored, deadline).await?;
        // A re-send answered from the idempotent-send window has its original queue here.
        let queues = results.iter().map(|e| e.queue_id).collect();
        let entries = results
            .iter()
            .zip(ids)
            .map(|(e, id)| v2::SendResultEntry {
                status: Some(ok_status()),
                message_id: id,
                offset: e.queue_offset,
                ..Default::default()
            })
            .collect();
        Ok((v2::SendMessageResponse { status: Some(ok_status()), entries }, queues))
    }

    /// FIFO messages are placed by the server from their message group
    /// (`raftmq_proto::placement`), so producers in any language agree; others keep the client's choice when it
    /// names a queue of this group, else round-robin.
    fn pick_queue(&self, m: &v2::Message, queue_count: u32) -> i32 {
        let sys = m.system_properties.as_ref();
        if let Some(group) = sys.and_then(|s| s.message_group.as_ref()) {
            return raftmq_proto::placement::message_group_queue(group, queue_count);
        }
        match sys.map(|s| s.queue_id) {
            Some(q) if q >= 0 && (q as u32) < queue_count => q,
            _ => (self.round_robin.fetch_add(1, Ordering::Relaxed) % queue_count) as i32,
        }
    }

    fn queue_of<'a>(&self, mq: Option<&'a v2::MessageQueue>) -> Result<(&'a str, i32), ApiError> {
        let mq = mq.ok_or_else(|| ApiError::bad_request("message_queue is required"))?;
        let topic = mq.topic.as_ref().map(|t| t.name.as_str()).unwrap_or("");
        let meta = self.shared.meta();
        let t = meta.topics.get(topic).ok_or_else(|| {
            ApiError::new(Code::TopicNotFound, format!("topic '{topic}' does not exist on this broker group"))
        })?;
        if mq.id < 0 || mq.id as u32 >= t.queue_count {
            return Err(ApiError::bad_request(format!(
                "queue {} does not exist; topic '{topic}' has {} queues on this group",
                mq.id, t.queue_count
            )));
        }
        Ok((topic, mq.id))
    }

    async fn pull(&self, req: &v2::PullMessageRequest, deadline: Instant) -> Result<(Vec<v2::Message>, i64), ApiError> {
        let (topic, queue) = self.queue_of(req.message_queue.as_ref())?;
        let filter = match &req.filter_expression {
            Some(f) if f.r#type == v2::FilterType::Sql as i32 => {
                return Err(ApiError::new(
                    Code::IllegalFilterExpression,
                    "SQL92 filters are not supported yet; use a tag expression",
                ));
            }
            Some(f) => TagFilter::parse(&f.expression)?,
            None => TagFilter::All,
        };
        let max_offset = self.shared.cq.max_offset(topic, queue);
        if req.offset < 0 || req.offset > max_offset {
            return Err(ApiError::bad_request(format!(
                "offset {} is outside queue {topic}:{queue} (max offset {max_offset})",
                req.offset
            )));
        }
        let batch = match req.batch_size {
            n if n <= 0 => 32,
            n => (n as usize).min(1024),
        };
        let poll =
            req.long_polling_timeout.as_ref().map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32));
        let poll_until = poll.map(|p| (Instant::now() + p).min(deadline)).unwrap_or_else(Instant::now);
        let mut applied = self.shared.subscribe_applied();
        loop {
            let r = read_queue(&self.shared, topic, queue, req.offset, batch, &filter)?;
            if !r.messages.is_empty() || Instant::now() >= poll_until {
                let msgs =
                    r.messages.into_iter().map(|(off, m)| convert::to_delivered(m, off, &self.self_addr)).collect();
                return Ok((msgs, r.next_offset));
            }
            // Long poll: wait for the next applied entry, then read again.
            if tokio::time::timeout_at(poll_until, applied.changed()).await.is_err() {
                continue;
            }
        }
    }

    pub(crate) fn group_name(g: Option<&v2::Resource>) -> Result<String, ApiError> {
        match g.map(|g| g.name.trim()) {
            Some(n) if !n.is_empty() => {
                validate_group_name(n).map_err(|e| ApiError::new(e.code(), e.to_string()))?;
                Ok(n.to_string())
            }
            _ => Err(ApiError::new(Code::IllegalConsumerGroup, "consumer group is required")),
        }
    }
}

fn status(r: Result<(), &ApiError>) -> Option<V2Status> {
    Some(match r {
        Ok(()) => ok_status(),
        Err(e) => e.status(),
    })
}

/// The leading status of a receive/pull stream: MESSAGE_NOT_FOUND is an
/// empty result, not a failure.
fn found_status(empty: bool) -> V2Status {
    if empty { V2Status { code: Code::MessageNotFound as i32, message: "no new messages".into() } } else { ok_status() }
}

fn unimplemented(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not implemented by this raftmq version yet (transactions, recall, assignments and dead-letter forwarding come with the full v2 API)"
    ))
}

pub(crate) fn address_of(endpoint: &str) -> v2::Endpoints {
    let (host, port) = endpoint.rsplit_once(':').unwrap_or((endpoint, "0"));
    let scheme = if host.parse::<std::net::Ipv4Addr>().is_ok() {
        v2::AddressScheme::IPv4
    } else if host.trim_matches(['[', ']']).parse::<std::net::Ipv6Addr>().is_ok() {
        v2::AddressScheme::IPv6
    } else {
        v2::AddressScheme::DomainName
    };
    v2::Endpoints {
        scheme: scheme as i32,
        addresses: vec![v2::Address { host: host.to_string(), port: port.parse().unwrap_or(0) }],
    }
}

type PullStream = Pin<Box<dyn Stream<Item = Result<v2::PullMessageResponse, Status>> + Send>>;
type ReceiveStream = Pin<Box<dyn Stream<Item = Result<v2::ReceiveMessageResponse, Status>> + Send>>;

#[tonic::async_trait]
impl MessagingService for MessagingServiceImpl {
    async fn query_route(
        &self,
        request: Request<v2::QueryRouteRequest>,
    ) -> Result<Response<v2::QueryRouteResponse>, Status> {
        let req = request.into_inner();
        let topic = req.topic.as_ref().map(|t| t.name.clone()).unwrap_or_default();
        if let Err(e) = crate::topic::validate_topic_name(&topic) {
            let e = ApiError::new(Code::IllegalTopic, e.to_string());
            return Ok(Response::new(v2::QueryRouteResponse { status: status(Err(&e)), message_queues: vec![] }));
        }
        let groups = self.routes.route(&topic, &self.shared).await;
        if groups.is_empty() {
            let e = ApiError::new(Code::TopicNotFound, format!("topic '{topic}' does not exist on any broker group"));
            return Ok(Response::new(v2::QueryRouteResponse { status: status(Err(&e)), message_queues: vec![] }));
        }
        let mut queues = Vec::new();
        for g in groups {
            let accept = g.topic.message_types.to_vec();
            for id in 0..g.topic.queue_count as i32 {
                queues.push(v2::MessageQueue {
                    topic: req.topic.clone(),
                    id,
                    permission: g.topic.permission,
                    broker: Some(v2::Broker { name: g.group.clone(), id: 0, endpoints: Some(address_of(&g.endpoint)) }),
                    accept_message_types: accept.clone(),
                });
            }
        }
        Ok(Response::new(v2::QueryRouteResponse { status: Some(ok_status()), message_queues: queues }))
    }

    async fn heartbeat(&self, r: Request<v2::HeartbeatRequest>) -> Result<Response<v2::HeartbeatResponse>, Status> {
        // Answered OK even before the client's settings arrive (the Java proxy
        // refuses then, which only makes clients log errors).
        if let Some(id) = telemetry::client_id(&r) {
            self.clients.touch(&id);
        }
        Ok(Response::new(v2::HeartbeatResponse { status: Some(ok_status()) }))
    }

    type TelemetryStream = telemetry::TelemetryStream;

    async fn telemetry(
        &self,
        r: Request<Streaming<v2::TelemetryCommand>>,
    ) -> Result<Response<Self::TelemetryStream>, Status> {
        // Weak: a telemetry stream lives as long as its client, and must not keep
        // a stopped replica's stores open.
        let shared = Arc::downgrade(&self.shared);
        let groups: telemetry::GroupLookup =
            Arc::new(move |name: &str| shared.upgrade().and_then(|s| s.meta().groups.get(name).cloned()));
        Ok(Response::new(telemetry::open(r, self.clients.clone(), self.policy.clone(), groups)?))
    }

    async fn notify_client_termination(
        &self,
        r: Request<v2::NotifyClientTerminationRequest>,
    ) -> Result<Response<v2::NotifyClientTerminationResponse>, Status> {
        if let Some(id) = telemetry::client_id(&r) {
            self.clients.remove(&id);
        }
        Ok(Response::new(v2::NotifyClientTerminationResponse { status: Some(ok_status()) }))
    }

    async fn send_message(
        &self,
        request: Request<v2::SendMessageRequest>,
    ) -> Result<Response<v2::SendMessageResponse>, Status> {
        let deadline = deadline_of(&request);
        let count = request.get_ref().messages.len();
        let (resp, queues) = match self.send(request.into_inner(), deadline).await {
            Ok(r) => r,
            Err(e) => (
                v2::SendMessageResponse {
                    status: status(Err(&e)),
                    // The Rust client indexes entries[0]: always answer one entry per message.
                    entries: (0..count.max(1))
                        .map(|_| v2::SendResultEntry { status: status(Err(&e)), ..Default::default() })
                        .collect(),
                },
                Vec::new(),
            ),
        };
        let mut resp = Response::new(resp);
        // SendResultEntry has no queue field: the queues travel in a header
        // that upstream clients ignore (raftmq_proto::placement).
        if !queues.is_empty()
            && let Ok(v) = raftmq_proto::placement::format_queue_ids(&queues).parse()
        {
            resp.metadata_mut().insert(raftmq_proto::placement::QUEUE_IDS_HEADER, v);
        }
        Ok(resp)
    }

    async fn end_transaction(
        &self,
        _r: Request<v2::EndTransactionRequest>,
    ) -> Result<Response<v2::EndTransactionResponse>, Status> {
        Err(unimplemented("EndTransaction"))
    }

    async fn recall_message(
        &self,
        _r: Request<v2::RecallMessageRequest>,
    ) -> Result<Response<v2::RecallMessageResponse>, Status> {
        Err(unimplemented("RecallMessage"))
    }

    /// Push consumers pop from a whole broker: one assignment per broker group
    /// that serves the topic readably, with queue id -1 ("any queue").
    async fn query_assignment(
        &self,
        request: Request<v2::QueryAssignmentRequest>,
    ) -> Result<Response<v2::QueryAssignmentResponse>, Status> {
        let req = request.into_inner();
        let topic = req.topic.as_ref().map(|t| t.name.clone()).unwrap_or_default();
        let fail =
            |e: ApiError| Response::new(v2::QueryAssignmentResponse { status: status(Err(&e)), assignments: vec![] });
        if let Err(e) = crate::topic::validate_topic_name(&topic) {
            return Ok(fail(ApiError::new(Code::IllegalTopic, e.to_string())));
        }
        if let Err(e) = Self::group_name(req.group.as_ref()) {
            return Ok(fail(e));
        }
        let readable = |p: i32| p == v2::Permission::Read as i32 || p == v2::Permission::ReadWrite as i32;
        let groups = self.routes.route(&topic, &self.shared).await;
        if groups.is_empty() {
            return Ok(fail(ApiError::new(
                Code::TopicNotFound,
                format!("topic '{topic}' does not exist on any broker group"),
            )));
        }
        let assignments: Vec<v2::Assignment> = groups
            .into_iter()
            .filter(|g| readable(g.topic.permission))
            .map(|g| v2::Assignment {
                message_queue: Some(v2::MessageQueue {
                    topic: req.topic.clone(),
                    id: -1,
                    permission: g.topic.permission,
                    broker: Some(v2::Broker { name: g.group, id: 0, endpoints: Some(address_of(&g.endpoint)) }),
                    accept_message_types: g.topic.message_types,
                }),
            })
            .collect();
        if assignments.is_empty() {
            return Ok(fail(ApiError::new(Code::Forbidden, format!("topic '{topic}' has no readable queue"))));
        }
        Ok(Response::new(v2::QueryAssignmentResponse { status: Some(ok_status()), assignments }))
    }

    type ReceiveMessageStream = ReceiveStream;

    async fn receive_message(
        &self,
        request: Request<v2::ReceiveMessageRequest>,
    ) -> Result<Response<Self::ReceiveMessageStream>, Status> {
        use v2::receive_message_response::Content;
        let deadline = deadline_of(&request);
        let client = telemetry::client_id(&request);
        let req = request.into_inner();
        let items: Vec<Content> = match self.receive(&req, client.as_deref(), deadline).await {
            Err(e) => vec![Content::Status(e.status())],
            Ok(msgs) => {
                let head = found_status(msgs.is_empty());
                std::iter::once(Content::Status(head))
                    .chain(msgs.into_iter().map(Content::Message))
                    .chain(std::iter::once(Content::DeliveryTimestamp(convert::ms_to_ts(now_ms()))))
                    .collect()
            }
        };
        let stream =
            futures::stream::iter(items.into_iter().map(|c| Ok(v2::ReceiveMessageResponse { content: Some(c) })));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn ack_message(
        &self,
        request: Request<v2::AckMessageRequest>,
    ) -> Result<Response<v2::AckMessageResponse>, Status> {
        let deadline = deadline_of(&request);
        let req = request.into_inner();
        let outcome = self.ack(&req, deadline).await;
        // Each answer entry takes its request entry's id and handle (moved, not copied).
        let answer = |e: v2::AckMessageEntry, status| v2::AckMessageResultEntry {
            message_id: e.message_id,
            receipt_handle: e.receipt_handle,
            status,
        };
        let resp = match outcome {
            Err(e) => {
                let mut entries: Vec<_> = req.entries.into_iter().map(|x| answer(x, status(Err(&e)))).collect();
                // The Rust client reads entries[0]: answer one per entry, at least one.
                if entries.is_empty() {
                    entries.push(answer(v2::AckMessageEntry::default(), status(Err(&e))));
                }
                v2::AckMessageResponse { status: status(Err(&e)), entries }
            }
            Ok(results) => {
                let failed: Vec<&ApiError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
                let top = match (failed.len(), results.len()) {
                    (0, _) => ok_status(),
                    (1, 1) => failed[0].status(),
                    _ => V2Status {
                        code: Code::MultipleResults as i32,
                        message: format!("{} of {} acks failed", failed.len(), results.len()),
                    },
                };
                v2::AckMessageResponse {
                    status: Some(top),
                    entries: req
                        .entries
                        .into_iter()
                        .zip(&results)
                        .map(|(e, r)| answer(e, status(r.as_ref().map(|_| ()))))
                        .collect(),
                }
            }
        };
        Ok(Response::new(resp))
    }

    async fn change_invisible_duration(
        &self,
        request: Request<v2::ChangeInvisibleDurationRequest>,
    ) -> Result<Response<v2::ChangeInvisibleDurationResponse>, Status> {
        let deadline = deadline_of(&request);
        let req = request.into_inner();
        let resp = match self.change_invisible(&req, deadline).await {
            Ok(handle) => v2::ChangeInvisibleDurationResponse { status: Some(ok_status()), receipt_handle: handle },
            Err(e) => v2::ChangeInvisibleDurationResponse { status: Some(e.status()), receipt_handle: String::new() },
        };
        Ok(Response::new(resp))
    }

    async fn forward_message_to_dead_letter_queue(
        &self,
        request: Request<v2::ForwardMessageToDeadLetterQueueRequest>,
    ) -> Result<Response<v2::ForwardMessageToDeadLetterQueueResponse>, Status> {
        let deadline = deadline_of(&request);
        let result = self.forward_to_dlq(request.get_ref(), deadline).await;
        Ok(Response::new(v2::ForwardMessageToDeadLetterQueueResponse { status: status(result.as_ref().map(|_| ())) }))
    }

    type PullMessageStream = PullStream;

    async fn pull_message(
        &self,
        request: Request<v2::PullMessageRequest>,
    ) -> Result<Response<Self::PullMessageStream>, Status> {
        use v2::pull_message_response::Content;
        let deadline = deadline_of(&request);
        let req = request.into_inner();
        let items: Vec<Content> = match self.pull(&req, deadline).await {
            Err(e) => vec![Content::Status(e.status())],
            Ok((msgs, next)) => {
                let head = found_status(msgs.is_empty());
                std::iter::once(Content::Status(head))
                    .chain(msgs.into_iter().map(Content::Message))
                    .chain(std::iter::once(Content::NextOffset(next)))
                    .collect()
            }
        };
        let stream = futures::stream::iter(items.into_iter().map(|c| Ok(v2::PullMessageResponse { content: Some(c) })));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn update_offset(
        &self,
        request: Request<v2::UpdateOffsetRequest>,
    ) -> Result<Response<v2::UpdateOffsetResponse>, Status> {
        let deadline = deadline_of(&request);
        let req = request.into_inner();
        let result = async {
            let group = Self::group_name(req.group.as_ref())?;
            let (topic, queue_id) = self.queue_of(req.message_queue.as_ref())?;
            let cmd = cmd::encode_meta(&MetaCommand {
                cmd: Some(meta_command::Cmd::UpdateOffset(OffsetUpdate {
                    group,
                    topic: topic.to_string(),
                    queue_id,
                    offset: req.offset,
                })),
            });
            match self.proposer.propose(cmd, deadline).await?.result {
                Some(command_reply::Result::Error(e)) => Err(ApiError::from_reply(&e)),
                _ => Ok(()),
            }
        }
        .await;
        Ok(Response::new(v2::UpdateOffsetResponse { status: status(result.as_ref().map(|_| ())) }))
    }

    async fn get_offset(
        &self,
        request: Request<v2::GetOffsetRequest>,
    ) -> Result<Response<v2::GetOffsetResponse>, Status> {
        let deadline = deadline_of(&request);
        let req = request.into_inner();
        let barrier = read_barrier(&self.proposer, &self.shared, deadline).await;
        let result = barrier.and_then(|()| {
            let group = Self::group_name(req.group.as_ref())?;
            let (topic, queue) = self.queue_of(req.message_queue.as_ref())?;
            self.shared.meta().offsets.get(&(group.clone(), topic.to_string(), queue)).copied().ok_or_else(|| {
                ApiError::new(Code::NotFound, format!("group '{group}' has no committed offset for {topic}:{queue}"))
            })
        });
        Ok(Response::new(match result {
            Ok(offset) => v2::GetOffsetResponse { status: Some(ok_status()), offset },
            Err(e) => v2::GetOffsetResponse { status: Some(e.status()), offset: 0 },
        }))
    }

    async fn query_offset(
        &self,
        request: Request<v2::QueryOffsetRequest>,
    ) -> Result<Response<v2::QueryOffsetResponse>, Status> {
        let deadline = deadline_of(&request);
        let req = request.into_inner();
        let barrier = read_barrier(&self.proposer, &self.shared, deadline).await;
        let result = barrier.and_then(|()| {
            let (topic, queue) = self.queue_of(req.message_queue.as_ref())?;
            let cq = &self.shared.cq;
            match v2::QueryOffsetPolicy::try_from(req.query_offset_policy) {
                Ok(v2::QueryOffsetPolicy::Beginning) => Ok(self.shared.first_offset(topic, queue)),
                Ok(v2::QueryOffsetPolicy::End) => Ok(cq.max_offset(topic, queue)),
                Ok(v2::QueryOffsetPolicy::Timestamp) => {
                    let ts = req
                        .timestamp
                        .as_ref()
                        .ok_or_else(|| ApiError::bad_request("TIMESTAMP policy needs a timestamp"))?;
                    let ms = ts.seconds.saturating_mul(1000) + i64::from(ts.nanos) / 1_000_000;
                    Ok(cq.offset_for_timestamp(topic, queue, ms))
                }
                Err(_) => {
                    Err(ApiError::bad_request(format!("unknown query offset policy {}", req.query_offset_policy)))
                }
            }
        });
        Ok(Response::new(match result {
            Ok(offset) => v2::QueryOffsetResponse { status: Some(ok_status()), offset },
            Err(e) => v2::QueryOffsetResponse { status: Some(e.status()), offset: 0 },
        }))
    }

    async fn sync_lite_subscription(
        &self,
        _r: Request<v2::SyncLiteSubscriptionRequest>,
    ) -> Result<Response<v2::SyncLiteSubscriptionResponse>, Status> {
        Err(unimplemented("SyncLiteSubscription"))
    }
}
