//! Pop consumption state: for each (consumer group, topic, queue), which
//! offsets are consumed, which are in flight (delivered, invisible until a
//! deadline) and which were never delivered. It is changed only by Raft
//! commands (pop, ack, change of invisible time), so after a failover no
//! acknowledged message is delivered again as new and no unacknowledged one
//! is lost.
//!
//! Redelivery happens in place: an in-flight message whose deadline passed is
//! delivered again by the next pop with `attempt + 1` (the invisible time is
//! the back-off); after `max_attempts` deliveries it is appended to the
//! group's dead-letter queue `%DLQ%{group}` instead (a consume-queue unit that
//! points at the same CommitLog bytes) and counts as consumed.

use std::collections::{BTreeMap, BTreeSet};

use raftmq_proto::broker::{
    AckResult, ChangeInvisible, Error as PbError, Inflight as PbInflight, Pop, PopQueue, PopResult, PopTarget, Popped,
    TopicConfig, command_reply,
};
use raftmq_proto::rocketmq::v2::{Code, MessageType, Permission};
use raftmq_store::consume_queue::tag_hash;

use super::Shared;
use super::apply::error_reply;
use super::state::Meta;

/// (consumer group, topic, queue id)
pub type PopKey = (String, String, i32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inflight {
    pub deadline_ms: i64,
    pub attempt: i32,
    pub epoch: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PopQueueState {
    pub consumed: i64,
    pub next: i64,
    pub inflight: BTreeMap<i64, Inflight>,
    pub done: BTreeSet<i64>,
}

impl PopQueueState {
    fn start_at(offset: i64) -> Self {
        Self { consumed: offset, next: offset, ..Default::default() }
    }

    /// Marks `offset` consumed and advances `consumed` over the contiguous prefix.
    fn mark_done(&mut self, offset: i64) {
        self.inflight.remove(&offset);
        if offset != self.consumed {
            self.done.insert(offset);
            return;
        }
        self.consumed += 1;
        while self.done.remove(&self.consumed) {
            self.consumed += 1;
        }
    }

    pub fn to_pb(&self, (group, topic, queue_id): &PopKey) -> PopQueue {
        PopQueue {
            group: group.clone(),
            topic: topic.clone(),
            queue_id: *queue_id,
            consumed: self.consumed,
            next: self.next,
            inflight: self
                .inflight
                .iter()
                .map(|(o, i)| PbInflight { offset: *o, deadline_ms: i.deadline_ms, attempt: i.attempt, epoch: i.epoch })
                .collect(),
            done: self.done.iter().copied().collect(),
        }
    }

    pub fn from_pb(p: &PopQueue) -> (PopKey, Self) {
        let st = Self {
            consumed: p.consumed,
            next: p.next,
            inflight: p
                .inflight
                .iter()
                .map(|i| (i.offset, Inflight { deadline_ms: i.deadline_ms, attempt: i.attempt, epoch: i.epoch }))
                .collect(),
            done: p.done.iter().copied().collect(),
        };
        ((p.group.clone(), p.topic.clone(), p.queue_id), st)
    }
}

pub fn dlq_topic(group: &str) -> String {
    format!("%DLQ%{group}")
}

fn invalid_handle() -> PbError {
    PbError { code: Code::InvalidReceiptHandle as i32, message: "the receipt handle is stale or unknown".into() }
}

fn ok() -> PbError {
    PbError { code: Code::Ok as i32, message: "OK".into() }
}

/// Applies a pop at log index `epoch`.
pub fn apply_pop(shared: &Shared, meta: &mut Meta, epoch: u64, p: Pop) -> std::io::Result<command_reply::Result> {
    let Some(topic) = meta.topics.get(&p.topic) else {
        return Ok(error_reply(
            Code::TopicNotFound,
            format!("topic '{}' does not exist on this broker group", p.topic),
        ));
    };
    if p.queue_id < 0 || p.queue_id as u32 >= topic.queue_count || p.group.is_empty() || p.max <= 0 {
        return Ok(error_reply(Code::BadRequest, format!("bad pop of {}:{} for '{}'", p.topic, p.queue_id, p.group)));
    }
    let cq = &shared.cq;
    let key = (p.group.clone(), p.topic.clone(), p.queue_id);
    let min = cq.min_offset(&p.topic, p.queue_id);
    let st = meta.pop.entry(key).or_insert_with(|| PopQueueState::start_at(min));
    let (max, deadline) = (p.max as usize, p.now_ms.saturating_add(p.invisible_ms));
    let mut popped = Vec::new();
    let mut dead = Vec::new();
    // Deliveries whose invisible time ran out go first, in offset order.
    let expired: Vec<(i64, Inflight)> =
        st.inflight.iter().filter(|(_, i)| i.deadline_ms <= p.now_ms).map(|(o, i)| (*o, *i)).collect();
    for (offset, inf) in expired {
        if popped.len() >= max {
            break;
        }
        let attempt = inf.attempt + 1;
        if attempt > p.max_attempts.max(1) {
            dead.push(offset);
            st.mark_done(offset);
            continue;
        }
        st.inflight.insert(offset, Inflight { deadline_ms: deadline, attempt, epoch });
        popped.push(Popped { offset, attempt, epoch });
    }
    // Then messages never delivered.
    let wanted: Vec<u64> = p.tags.iter().map(|t| tag_hash(t)).collect();
    let end = cq.max_offset(&p.topic, p.queue_id);
    st.next = st.next.max(min);
    while popped.len() < max && st.next < end {
        let units = cq.read(&p.topic, p.queue_id, st.next, max - popped.len()).map_err(std::io::Error::other)?;
        if units.is_empty() {
            break;
        }
        for (offset, unit) in units {
            st.next = offset + 1;
            if !wanted.is_empty() && !wanted.contains(&unit.tag_hash) {
                st.mark_done(offset); // filtered out: consumed without delivery
                continue;
            }
            st.inflight.insert(offset, Inflight { deadline_ms: deadline, attempt: 1, epoch });
            popped.push(Popped { offset, attempt: 1, epoch });
        }
    }
    dead_letter(shared, meta, &p, &dead)?;
    Ok(command_reply::Result::Pop(PopResult { popped }))
}

/// A consumer gives up on one delivery (ForwardMessageToDeadLetterQueue).
pub fn apply_dead_letter(shared: &Shared, meta: &mut Meta, t: PopTarget) -> std::io::Result<command_reply::Result> {
    let valid = target_state(meta, &t).is_some_and(|st| st.inflight.get(&t.offset).is_some_and(|i| i.epoch == t.epoch));
    if !valid {
        return Ok(command_reply::Result::Error(invalid_handle()));
    }
    if let Some(st) = target_state(meta, &t) {
        st.mark_done(t.offset);
    }
    let p = Pop { group: t.group, topic: t.topic, queue_id: t.queue_id, ..Default::default() };
    dead_letter(shared, meta, &p, &[t.offset])?;
    Ok(command_reply::Result::Ok(true))
}

/// Appends the messages at `offsets` of the popped queue to `%DLQ%{group}`.
fn dead_letter(shared: &Shared, meta: &mut Meta, p: &Pop, offsets: &[i64]) -> std::io::Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let dlq = dlq_topic(&p.group);
    meta.topics.entry(dlq.clone()).or_insert_with(|| TopicConfig {
        name: dlq.clone(),
        queue_count: 1,
        message_types: vec![MessageType::Normal as i32, MessageType::Fifo as i32, MessageType::Delay as i32],
        permission: Permission::ReadWrite as i32,
    });
    for &offset in offsets {
        let unit = shared.cq.read(&p.topic, p.queue_id, offset, 1).map_err(std::io::Error::other)?;
        if let Some((_, unit)) = unit.first() {
            shared.cq.append(&dlq, 0, *unit).map_err(std::io::Error::other)?;
        }
    }
    Ok(())
}

fn target_state<'a>(meta: &'a mut Meta, t: &PopTarget) -> Option<&'a mut PopQueueState> {
    meta.pop.get_mut(&(t.group.clone(), t.topic.clone(), t.queue_id))
}

pub fn apply_ack(meta: &mut Meta, targets: Vec<PopTarget>) -> command_reply::Result {
    let results = targets
        .iter()
        .map(|t| match target_state(meta, t) {
            Some(st) if st.inflight.get(&t.offset).is_some_and(|i| i.epoch == t.epoch) => {
                st.mark_done(t.offset);
                ok()
            }
            _ => invalid_handle(),
        })
        .collect();
    command_reply::Result::Ack(AckResult { results })
}

/// A new deadline for one delivery; the old handle becomes stale.
pub fn apply_change_invisible(meta: &mut Meta, epoch: u64, c: ChangeInvisible) -> command_reply::Result {
    let Some(t) = c.target else {
        return error_reply(Code::BadRequest, "change of invisible time without a target".into());
    };
    match target_state(meta, &t).and_then(|st| st.inflight.get_mut(&t.offset)).filter(|i| i.epoch == t.epoch) {
        Some(inf) => {
            inf.deadline_ms = c.now_ms.saturating_add(c.invisible_ms);
            inf.epoch = epoch;
            command_reply::Result::Pop(PopResult {
                popped: vec![Popped { offset: t.offset, attempt: inf.attempt, epoch }],
            })
        }
        None => command_reply::Result::Error(invalid_handle()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumed_advances_over_contiguous_done_offsets() {
        let mut st = PopQueueState::start_at(5);
        st.next = 9;
        st.mark_done(7);
        st.mark_done(6);
        assert_eq!(st.consumed, 5);
        st.mark_done(5);
        assert_eq!(st.consumed, 8);
        assert!(st.done.is_empty());
        let key = ("g".to_string(), "t".to_string(), 0);
        assert_eq!(PopQueueState::from_pb(&st.to_pb(&key)), (key, st));
    }
}
