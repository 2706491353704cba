//! Pop consumption over the v2 API: ReceiveMessage, AckMessage and
//! ChangeInvisibleDuration. Every state change is a Raft command (see
//! `sm/pop.rs`); this module validates input, picks queues, long-polls and
//! turns results into wire messages.

use std::time::Duration;

use std::sync::atomic::Ordering;

use raftmq_proto::broker::{
    AckBatch, ChangeInvisible, CommandReply, MetaCommand, Pop, PopTarget, Popped, QueueUnit, command_reply,
    meta_command,
};
use raftmq_proto::rocketmq::v2::{self as v2, Code};
use tokio::time::Instant;

use super::messaging::MessagingServiceImpl;
use super::receipt::{self, Target};
use super::{convert, read_barrier};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::sm::pop::{dlq_topic, unit_to_pb};
use raftmq_store::consume_queue::CqUnit;

pub const MIN_INVISIBLE: Duration = Duration::from_secs(1);
pub const MAX_INVISIBLE: Duration = Duration::from_secs(12 * 3600);
pub const MAX_POLL: Duration = Duration::from_secs(20);
/// Longest ReceiveMessageRequest.attempt_id kept in the replicated pop state.
pub const MAX_ATTEMPT_ID_BYTES: usize = 256;
/// How often a long poll re-checks for deliveries whose invisible time ran out.
const EXPIRY_RECHECK: Duration = Duration::from_millis(200);

fn to_duration(d: &prost_types::Duration) -> Option<Duration> {
    (d.seconds >= 0 && d.nanos >= 0).then(|| Duration::new(d.seconds as u64, d.nanos as u32))
}

fn invisible(d: Option<&prost_types::Duration>, auto_renew: bool, renewed: Duration) -> Result<Duration, ApiError> {
    let bad = |what: String| ApiError::new(Code::IllegalInvisibleTime, what);
    match d {
        None if auto_renew => Ok(renewed),
        None => Err(bad("invisible_duration is required when auto_renew is off".into())),
        Some(d) => {
            let d = to_duration(d).ok_or_else(|| bad("invisible_duration is negative".into()))?;
            if d < MIN_INVISIBLE || d > MAX_INVISIBLE {
                return Err(bad(format!("invisible_duration {d:?} is outside [{MIN_INVISIBLE:?}, {MAX_INVISIBLE:?}]")));
            }
            Ok(d)
        }
    }
}

impl MessagingServiceImpl {
    /// Pops up to `batch` messages across the topic's queues on this group,
    /// long-polling until `poll_until` when there are none.
    /// `client` (the `x-mq-client-id`) is needed for `auto_renew`: the server
    /// renews those deliveries while this replica knows the client.
    pub(crate) async fn receive(
        &self,
        req: &v2::ReceiveMessageRequest,
        client: Option<&str>,
        deadline: Instant,
    ) -> Result<Vec<v2::Message>, ApiError> {
        let group = Self::group_name(req.group.as_ref())?;
        let mq = req.message_queue.as_ref().ok_or_else(|| ApiError::bad_request("message_queue is required"))?;
        let topic = mq.topic.as_ref().map(|t| t.name.clone()).unwrap_or_default();
        let queues = self.shared.meta().topics.get(&topic).map(|t| t.queue_count).ok_or_else(|| {
            ApiError::new(Code::TopicNotFound, format!("topic '{topic}' does not exist on this broker group"))
        })?;
        if !self.policy.auto_create_groups && !self.shared.meta().groups.contains_key(&group) {
            return Err(ApiError::new(Code::ConsumerGroupNotFound, format!("consumer group '{group}' does not exist")));
        }
        let invisible = invisible(req.invisible_duration.as_ref(), req.auto_renew, self.renewer.policy.invisible)?;
        // Only a client this replica knows (it opened Telemetry) can be
        // renewed for: its going away is what ends the renewals.
        let renew_for = client.filter(|c| req.auto_renew && self.clients.contains(c));
        let tags = match &req.filter_expression {
            Some(f) if f.r#type == v2::FilterType::Sql as i32 => {
                return Err(ApiError::new(Code::IllegalFilterExpression, "SQL92 filters are not supported yet"));
            }
            Some(f) => tag_list(&f.expression)?,
            None => Vec::new(),
        };
        let poll = match &req.long_polling_timeout {
            Some(d) => to_duration(d)
                .ok_or_else(|| ApiError::new(Code::IllegalPollingTime, "long_polling_timeout is negative"))?,
            None => MAX_POLL,
        };
        // End the poll before the caller's deadline: the Rust client sets its
        // gRPC deadline equal to the long-polling timeout.
        let poll_until = (Instant::now() + poll.min(MAX_POLL)).min(deadline);
        let batch = if req.batch_size <= 0 { 32 } else { req.batch_size.min(1024) } as usize;
        let mut applied = self.shared.subscribe_applied();
        // Start at a rotating queue so that no queue is starved when there is
        // more to deliver than one batch.
        let start = self.round_robin.fetch_add(1, Ordering::Relaxed);
        let attempt_id = req.attempt_id.clone().unwrap_or_default();
        if attempt_id.len() > MAX_ATTEMPT_ID_BYTES {
            return Err(ApiError::bad_request(format!(
                "attempt_id is {} bytes, more than {MAX_ATTEMPT_ID_BYTES}",
                attempt_id.len()
            )));
        }
        // A retried attempt must reach the state machine even when no queue
        // has anything new: it answers the first attempt's deliveries. Only
        // orderly groups keep attempts (sm/attempts.rs).
        let mut retry = !attempt_id.is_empty() && {
            let meta = self.shared.meta();
            meta.groups.get(&group).is_some_and(|g| g.fifo)
                && meta.pop_attempts.get(&group, &attempt_id, &topic).is_some()
        };
        loop {
            let mut candidates: Vec<i32> = (0..queues)
                .map(|i| ((start.wrapping_add(i)) % queues) as i32)
                .filter(|q| self.pop_may_find(&group, &topic, *q))
                .collect();
            if candidates.is_empty() && std::mem::take(&mut retry) {
                candidates.push((start % queues) as i32);
            }
            if let Some(&first) = candidates.first() {
                let pop = Pop {
                    group: group.clone(),
                    topic: topic.clone(),
                    queue_id: first,
                    queue_ids: candidates,
                    max: batch as i32,
                    now_ms: now_ms(),
                    invisible_ms: invisible.as_millis() as i64,
                    tags: tags.clone(),
                    max_attempts: self.policy.max_delivery_attempts,
                    create_group: self.policy.auto_create_groups,
                    attempt_id: attempt_id.clone(),
                    plan: None, // the leader plans it (pop_plan/)
                };
                let reply = self.meta_one(meta_command::Cmd::Pop(pop), deadline).await?;
                // A pop forwarded to the leader is answered once the leader applied
                // it; this replica reads the messages from its own queues, so it
                // must have applied the pop too (else it would skip the units it
                // does not hold yet, and they would stay invisible for nothing).
                super::wait_applied(&self.shared, reply.index, deadline).await?;
                let out = match reply.result {
                    Some(command_reply::Result::Pop(p)) => {
                        if let Some(c) = renew_for {
                            self.renewer.lease(c, p.popped.iter().map(|d| pop_target(&group, &topic, d)));
                        }
                        self.deliver(&group, &topic, &p.popped)?
                    }
                    Some(command_reply::Result::Error(e)) => return Err(ApiError::from_reply(&e)),
                    _ => return Err(ApiError::internal("unexpected reply to a pop")),
                };
                if !out.is_empty() {
                    return Ok(out);
                }
            }
            if Instant::now() >= poll_until {
                return Ok(Vec::new());
            }
            let wake = poll_until.min(Instant::now() + EXPIRY_RECHECK);
            let _ = tokio::time::timeout_at(wake, applied.changed()).await;
        }
    }

    /// Proposes one pop-state command in an entry shared with concurrent ones.
    async fn meta_one(&self, cmd: meta_command::Cmd, deadline: Instant) -> Result<CommandReply, ApiError> {
        let mut replies = self.metas.submit(vec![MetaCommand { cmd: Some(cmd) }], deadline).await?;
        replies.pop().ok_or_else(|| ApiError::internal("no reply to a pop-state command"))
    }

    /// A cheap local check so an empty poll does not write a Raft entry: are
    /// there undelivered messages, or deliveries whose invisible time ran out?
    /// (For an orderly group, nothing while the queue is locked.)
    fn pop_may_find(&self, group: &str, topic: &str, queue: i32) -> bool {
        let end = self.shared.cq.max_offset(topic, queue);
        let meta = self.shared.meta();
        let fifo = meta.groups.get(group).is_some_and(|g| g.fifo);
        match meta.pop.get(&(group.to_string(), topic.to_string(), queue)) {
            None => end > self.shared.first_offset(topic, queue),
            Some(st) if fifo && st.inflight_count() > 0 => st.all_expired(now_ms()),
            Some(st) => st.next < end || st.has_expired(now_ms()),
        }
    }

    /// The consume-queue unit of each popped message, `None` where the queue no longer has it.
    /// One read per run of consecutive offsets of one queue (a pop is usually a single run):
    /// one read per message cost a syscall each.
    fn units_of(&self, topic: &str, popped: &[Popped]) -> Result<Vec<Option<CqUnit>>, ApiError> {
        let mut out = Vec::with_capacity(popped.len());
        for run in popped.chunk_by(|a, b| b.queue_id == a.queue_id && b.offset == a.offset + 1) {
            let first = run[0].offset;
            let units = self
                .shared
                .cq
                .read(topic, run[0].queue_id, first, run.len())
                .map_err(|e| ApiError::internal(e.to_string()))?;
            // `read` starts at the queue's first retained offset if that is later than `first`.
            let start = units.first().map_or(first, |(o, _)| *o);
            out.extend(run.iter().map(|p| {
                let at = usize::try_from(p.offset - start).ok()?;
                units.get(at).filter(|(o, _)| *o == p.offset).map(|(_, u)| *u)
            }));
        }
        Ok(out)
    }

    fn deliver(&self, group: &str, topic: &str, popped: &[Popped]) -> Result<Vec<v2::Message>, ApiError> {
        let mut out = Vec::with_capacity(popped.len());
        for (p, unit) in popped.iter().zip(self.units_of(topic, popped)?) {
            let Some(unit) = unit else { continue };
            let Some(mut stored) = crate::reader::read_stored(&self.shared, &unit)? else { continue };
            stored.reconsume_times = p.attempt - 1;
            if topic == dlq_topic(group) {
                stored.topic = topic.to_string();
            }
            let target = Target { group, topic, queue_id: p.queue_id, offset: p.offset, epoch: p.epoch };
            let mut m = convert::to_delivered(stored, p.offset, &self.self_addr);
            if let Some(sys) = m.system_properties.as_mut() {
                sys.receipt_handle = Some(receipt::encode(&self.group, target));
            }
            out.push(m);
        }
        Ok(out)
    }

    fn target(&self, group: &str, handle: &str) -> Result<PopTarget, ApiError> {
        let (broker_group, t) = receipt::decode(handle)?;
        if broker_group != self.group {
            return Err(ApiError::new(
                Code::InvalidReceiptHandle,
                format!("the receipt handle belongs to broker group '{broker_group}', not '{}'", self.group),
            ));
        }
        if t.group != group {
            return Err(ApiError::new(
                Code::InvalidReceiptHandle,
                "the receipt handle belongs to another consumer group",
            ));
        }
        Ok(t)
    }

    /// One result per entry, in order.
    pub(crate) async fn ack(
        &self,
        req: &v2::AckMessageRequest,
        deadline: Instant,
    ) -> Result<Vec<Result<(), ApiError>>, ApiError> {
        let group = Self::group_name(req.group.as_ref())?;
        if req.entries.is_empty() {
            return Err(ApiError::bad_request("AckMessage carries no entries"));
        }
        // The targets go into the command; what stays is whether each entry parsed.
        let mut targets = Vec::with_capacity(req.entries.len());
        let mut parsed: Vec<Result<(), ApiError>> = Vec::with_capacity(req.entries.len());
        for e in &req.entries {
            parsed.push(self.target(&group, &e.receipt_handle).map(|t| targets.push(t)));
        }
        self.renewer.release(&targets);
        let mut results = Vec::new().into_iter();
        if !targets.is_empty() {
            match self.meta_one(meta_command::Cmd::Ack(AckBatch { targets }), deadline).await?.result {
                Some(command_reply::Result::Ack(a)) => results = a.results.into_iter(),
                Some(command_reply::Result::Error(e)) => return Err(ApiError::from_reply(&e)),
                _ => return Err(ApiError::internal("unexpected reply to an ack")),
            }
        }
        Ok(parsed
            .into_iter()
            .map(|p| {
                p.and_then(|_| match results.next() {
                    Some(e) if e.code == Code::Ok as i32 => Ok(()),
                    Some(e) => Err(ApiError::from_reply(&e)),
                    None => Err(ApiError::internal("missing ack result")),
                })
            })
            .collect())
    }

    /// The new receipt handle.
    pub(crate) async fn change_invisible(
        &self,
        req: &v2::ChangeInvisibleDurationRequest,
        deadline: Instant,
    ) -> Result<String, ApiError> {
        let group = Self::group_name(req.group.as_ref())?;
        let target = self.target(&group, &req.receipt_handle)?;
        let d = req
            .invisible_duration
            .as_ref()
            .and_then(to_duration)
            .ok_or_else(|| ApiError::new(Code::IllegalInvisibleTime, "invisible_duration is required"))?;
        if d > MAX_INVISIBLE {
            return Err(ApiError::new(
                Code::IllegalInvisibleTime,
                format!("invisible_duration {d:?} is above {MAX_INVISIBLE:?}"),
            ));
        }
        // A nack or an explicit extension: the client now manages this delivery.
        self.renewer.release([&target]);
        let c = ChangeInvisible {
            target: Some(target.clone()),
            now_ms: now_ms(),
            invisible_ms: d.as_millis() as i64,
            keep_handle: false,
        };
        match self.meta_one(meta_command::Cmd::ChangeInvisible(c), deadline).await?.result {
            Some(command_reply::Result::Pop(p)) => {
                let epoch =
                    p.popped.first().map(|p| p.epoch).ok_or_else(|| ApiError::internal("empty change result"))?;
                Ok(receipt::encode(&self.group, Target { epoch, ..Target::from(&target) }))
            }
            Some(command_reply::Result::Error(e)) => Err(ApiError::from_reply(&e)),
            _ => Err(ApiError::internal("unexpected reply to a change of invisible time")),
        }
    }
}

impl MessagingServiceImpl {
    /// ForwardMessageToDeadLetterQueue: the delivery named by the handle goes
    /// to `%DLQ%{group}` and counts as consumed.
    pub(crate) async fn forward_to_dlq(
        &self,
        req: &v2::ForwardMessageToDeadLetterQueueRequest,
        deadline: Instant,
    ) -> Result<(), ApiError> {
        let group = Self::group_name(req.group.as_ref())?;
        let mut target = self.target(&group, &req.receipt_handle)?;
        self.renewer.release([&target]);
        target.unit = Some(self.delivered_unit(&target, deadline).await?);
        match self.meta_one(meta_command::Cmd::DeadLetter(target), deadline).await?.result {
            Some(command_reply::Result::Ok(_)) => Ok(()),
            Some(command_reply::Result::Error(e)) => Err(ApiError::from_reply(&e)),
            _ => Err(ApiError::internal("unexpected reply to a dead-letter move")),
        }
    }

    /// The unit of the message a delivery names, which the dead-letter command
    /// carries so that apply reads no unit. The delivery's pop was applied at
    /// `epoch` and the unit existed before it, so it is here once this replica
    /// applied that far; a lagging replica first catches up to the leader's
    /// read index. An epoch beyond that was never committed: a forged handle.
    async fn delivered_unit(&self, t: &PopTarget, deadline: Instant) -> Result<QueueUnit, ApiError> {
        let invalid = || ApiError::new(Code::InvalidReceiptHandle, "the receipt handle is stale or unknown");
        if self.shared.applied_index() < t.epoch {
            read_barrier(&self.proposer, &self.shared, deadline).await?;
            if self.shared.applied_index() < t.epoch {
                return Err(invalid());
            }
        }
        let unit = self
            .shared
            .cq
            .unit_at(&t.topic, t.queue_id, t.offset)
            .map_err(|e| ApiError::internal(e.to_string()))?
            .ok_or_else(invalid)?;
        Ok(unit_to_pb(&unit))
    }
}

/// The receipt handle's content for one delivery of a pop.
fn pop_target(group: &str, topic: &str, d: &Popped) -> PopTarget {
    PopTarget {
        group: group.to_string(),
        topic: topic.to_string(),
        queue_id: d.queue_id,
        offset: d.offset,
        epoch: d.epoch,
        unit: None,
    }
}

/// `*`/empty → all; `a||b` → those tags.
fn tag_list(expr: &str) -> Result<Vec<String>, ApiError> {
    match crate::reader::TagFilter::parse(expr)? {
        crate::reader::TagFilter::All => Ok(Vec::new()),
        crate::reader::TagFilter::Tags(t) => Ok(t.into_iter().map(|(_, s)| s).collect()),
    }
}
