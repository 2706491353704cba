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
use crate::consumer_group::{default_group, validate_group_name};

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
    /// Private so that `by_deadline` always indexes exactly these.
    inflight: BTreeMap<i64, Inflight>,
    /// (deadline, offset) of every in-flight delivery: finding the expired
    /// ones costs O(expired), not O(in flight), for a slow consumer group
    /// with many messages out.
    by_deadline: BTreeSet<(i64, i64)>,
    pub done: BTreeSet<i64>,
}

impl PopQueueState {
    fn start_at(offset: i64) -> Self {
        Self { consumed: offset, next: offset, ..Default::default() }
    }

    fn put_inflight(&mut self, offset: i64, inf: Inflight) {
        if let Some(old) = self.inflight.insert(offset, inf) {
            self.by_deadline.remove(&(old.deadline_ms, offset));
        }
        self.by_deadline.insert((inf.deadline_ms, offset));
    }

    fn take_inflight(&mut self, offset: i64) -> Option<Inflight> {
        let old = self.inflight.remove(&offset)?;
        self.by_deadline.remove(&(old.deadline_ms, offset));
        Some(old)
    }

    /// The in-flight delivery of `offset` if `epoch` names it (a live handle).
    pub fn live(&self, offset: i64, epoch: u64) -> Option<Inflight> {
        self.inflight.get(&offset).copied().filter(|i| i.epoch == epoch)
    }

    /// Deliveries whose invisible time ran out by `now_ms`, earliest deadline first.
    fn expired(&self, now_ms: i64) -> Vec<(i64, Inflight)> {
        self.by_deadline
            .range(..=(now_ms, i64::MAX))
            .filter_map(|(_, o)| self.inflight.get(o).map(|i| (*o, *i)))
            .collect()
    }

    pub fn has_expired(&self, now_ms: i64) -> bool {
        self.by_deadline.first().is_some_and(|(d, _)| *d <= now_ms)
    }

    /// Every in-flight delivery's invisible time ran out (an orderly queue is unlocked).
    pub fn all_expired(&self, now_ms: i64) -> bool {
        self.by_deadline.last().is_none_or(|(d, _)| *d <= now_ms)
    }

    pub fn inflight_count(&self) -> usize {
        self.inflight.len()
    }

    /// Marks `offset` consumed and advances `consumed` over the contiguous prefix.
    fn mark_done(&mut self, offset: i64) {
        self.take_inflight(offset);
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
        let mut st =
            Self { consumed: p.consumed, next: p.next, done: p.done.iter().copied().collect(), ..Self::default() };
        for i in &p.inflight {
            st.put_inflight(i.offset, Inflight { deadline_ms: i.deadline_ms, attempt: i.attempt, epoch: i.epoch });
        }
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

/// Applies a pop at log index `epoch`: up to `max` messages from the listed
/// queues, in order (expired deliveries of a queue before its new messages).
pub fn apply_pop(shared: &Shared, meta: &mut Meta, epoch: u64, p: Pop) -> std::io::Result<command_reply::Result> {
    let Some(queue_count) = meta.topics.get(&p.topic).map(|t| t.queue_count) else {
        return Ok(error_reply(
            Code::TopicNotFound,
            format!("topic '{}' does not exist on this broker group", p.topic),
        ));
    };
    if !meta.groups.contains_key(&p.group) {
        if let Err(e) = validate_group_name(&p.group) {
            return Ok(error_reply(e.code(), e.to_string()));
        }
        if !p.create_group {
            return Ok(error_reply(
                Code::ConsumerGroupNotFound,
                format!("consumer group '{}' does not exist", p.group),
            ));
        }
        meta.groups.insert(p.group.clone(), default_group(&p.group));
    }
    let queues = if p.queue_ids.is_empty() { vec![p.queue_id] } else { p.queue_ids.clone() };
    let bad_queue = queues.iter().find(|q| **q < 0 || **q as u32 >= queue_count);
    if bad_queue.is_some() || p.group.is_empty() || p.max <= 0 {
        return Ok(error_reply(Code::BadRequest, format!("bad pop of {}:{queues:?} for '{}'", p.topic, p.group)));
    }
    meta.pop_attempts.expire(p.now_ms);
    // Only orderly groups keep attempts: there a lost batch locks its queues
    // until the invisible time ends. A concurrent group's lost batch just comes
    // back later, and remembering every batch would cost memory and checkpoint
    // bytes on the hot consume path.
    let keep_attempt = !p.attempt_id.is_empty() && meta.groups.get(&p.group).is_some_and(|g| g.fifo);
    if keep_attempt && let Some(again) = retried_attempt(meta, &p) {
        return Ok(command_reply::Result::Pop(PopResult { popped: again }));
    }
    let mut popped = Vec::new();
    for queue_id in queues {
        if popped.len() >= p.max as usize {
            break;
        }
        let dead = pop_queue(shared, meta, epoch, &p, queue_id, &mut popped)?;
        dead_letter(shared, meta, &p.group, &p.topic, queue_id, &dead)?;
    }
    if keep_attempt && !popped.is_empty() {
        let expires = p.now_ms.saturating_add(p.invisible_ms);
        meta.pop_attempts.record(&p.group, &p.attempt_id, &p.topic, popped.clone(), expires);
    }
    Ok(command_reply::Result::Pop(PopResult { popped }))
}

/// The deliveries of an earlier pop with the same attempt id that are still
/// in flight under the same epoch (so their receipt handles are still valid);
/// `None` if there are none, and the retry pops afresh.
fn retried_attempt(meta: &Meta, p: &Pop) -> Option<Vec<Popped>> {
    let earlier = meta.pop_attempts.get(&p.group, &p.attempt_id, &p.topic)?;
    let live: Vec<Popped> = earlier
        .iter()
        .filter(|d| {
            meta.pop
                .get(&(p.group.clone(), p.topic.clone(), d.queue_id))
                .and_then(|st| st.live(d.offset, d.epoch))
                .is_some_and(|inf| inf.attempt == d.attempt)
        })
        .cloned()
        .collect();
    (!live.is_empty()).then_some(live)
}

/// Pops from one queue into `popped` until it holds `p.max`; returns the
/// offsets whose attempts ran out (to be dead-lettered).
fn pop_queue(
    shared: &Shared,
    meta: &mut Meta,
    epoch: u64,
    p: &Pop,
    queue_id: i32,
    popped: &mut Vec<Popped>,
) -> std::io::Result<Vec<i64>> {
    let cq = &shared.cq;
    let wanted: Vec<u64> = p.tags.iter().map(|t| tag_hash(t)).collect();
    let max = p.max as usize;
    let group = meta.groups.get(&p.group);
    let fifo = group.is_some_and(|g| g.fifo);
    let max_attempts = match group.map(|g| g.max_delivery_attempts) {
        Some(a) if a > 0 => a,
        _ => p.max_attempts.max(1),
    };
    let min = cq.min_offset(&p.topic, queue_id);
    let st =
        meta.pop.entry((p.group.clone(), p.topic.clone(), queue_id)).or_insert_with(|| PopQueueState::start_at(min));
    let deadline = p.now_ms.saturating_add(p.invisible_ms);
    let mut dead = Vec::new();
    let mut expired = st.expired(p.now_ms);
    if fifo {
        // Orderly: the queue is locked while any delivery of it is still
        // invisible; once all have expired they come back in offset order,
        // ahead of anything new.
        if !st.all_expired(p.now_ms) {
            return Ok(dead);
        }
        expired.sort_by_key(|(offset, _)| *offset);
    }
    // Deliveries whose invisible time ran out go first (earliest deadline
    // first; offset order for an orderly group).
    for (offset, inf) in expired {
        if popped.len() >= max {
            break;
        }
        let attempt = inf.attempt + 1;
        if attempt > max_attempts {
            dead.push(offset);
            st.mark_done(offset);
            continue;
        }
        st.put_inflight(offset, Inflight { deadline_ms: deadline, attempt, epoch });
        popped.push(Popped { offset, attempt, epoch, queue_id });
    }
    // Then messages never delivered.
    let end = cq.max_offset(&p.topic, queue_id);
    st.next = st.next.max(min);
    while popped.len() < max && st.next < end {
        let units = cq.read(&p.topic, queue_id, st.next, max - popped.len()).map_err(std::io::Error::other)?;
        if units.is_empty() {
            break;
        }
        for (offset, unit) in units {
            st.next = offset + 1;
            if !wanted.is_empty() && !wanted.contains(&unit.tag_hash) {
                st.mark_done(offset); // filtered out: consumed without delivery
                continue;
            }
            st.put_inflight(offset, Inflight { deadline_ms: deadline, attempt: 1, epoch });
            popped.push(Popped { offset, attempt: 1, epoch, queue_id });
        }
    }
    Ok(dead)
}

/// A consumer gives up on one delivery (ForwardMessageToDeadLetterQueue).
pub fn apply_dead_letter(shared: &Shared, meta: &mut Meta, t: PopTarget) -> std::io::Result<command_reply::Result> {
    match target_state(meta, &t) {
        Some(st) if st.live(t.offset, t.epoch).is_some() => st.mark_done(t.offset),
        _ => return Ok(command_reply::Result::Error(invalid_handle())),
    }
    dead_letter(shared, meta, &t.group, &t.topic, t.queue_id, &[t.offset])?;
    Ok(command_reply::Result::Ok(true))
}

/// Appends the messages at `offsets` of one queue to `%DLQ%{group}`.
fn dead_letter(
    shared: &Shared,
    meta: &mut Meta,
    group: &str,
    topic: &str,
    queue_id: i32,
    offsets: &[i64],
) -> std::io::Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let dlq = dlq_topic(group);
    meta.topics.entry(dlq.clone()).or_insert_with(|| TopicConfig {
        name: dlq.clone(),
        queue_count: 1,
        message_types: vec![MessageType::Normal as i32, MessageType::Fifo as i32, MessageType::Delay as i32],
        permission: Permission::ReadWrite as i32,
    });
    for &offset in offsets {
        let unit = shared.cq.read(topic, queue_id, offset, 1).map_err(std::io::Error::other)?;
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
            Some(st) if st.live(t.offset, t.epoch).is_some() => {
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
    let Some(st) = target_state(meta, &t) else { return command_reply::Result::Error(invalid_handle()) };
    let Some(inf) = st.live(t.offset, t.epoch) else { return command_reply::Result::Error(invalid_handle()) };
    let epoch = if c.keep_handle { t.epoch } else { epoch };
    let renewed = Inflight { deadline_ms: c.now_ms.saturating_add(c.invisible_ms), epoch, ..inf };
    st.put_inflight(t.offset, renewed);
    command_reply::Result::Pop(PopResult {
        popped: vec![Popped { offset: t.offset, attempt: inf.attempt, epoch, queue_id: t.queue_id }],
    })
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

    #[test]
    fn deadline_index_follows_every_change() {
        let mut st = PopQueueState::start_at(0);
        st.next = 4;
        for (offset, deadline) in [(0, 300), (1, 100), (2, 200), (3, 100)] {
            st.put_inflight(offset, Inflight { deadline_ms: deadline, attempt: 1, epoch: 7 });
        }
        assert!(!st.has_expired(99));
        let at = |st: &PopQueueState, now| st.expired(now).into_iter().map(|(o, _)| o).collect::<Vec<_>>();
        assert_eq!(at(&st, 200), vec![1, 3, 2], "earliest deadline first, then offset");
        // A renewal moves the deadline; an ack removes it.
        st.put_inflight(1, Inflight { deadline_ms: 500, attempt: 1, epoch: 9 });
        st.mark_done(3);
        assert_eq!(at(&st, 200), vec![2]);
        assert_eq!(st.live(1, 7), None, "the renewal made the old handle stale");
        assert!(st.live(1, 9).is_some());
        assert_eq!(st.inflight_count(), 3);
        assert_eq!(st.by_deadline.len(), 3);
        // A checkpoint round trip rebuilds the index.
        let key = ("g".to_string(), "t".to_string(), 0);
        let (_, back) = PopQueueState::from_pb(&st.to_pb(&key));
        assert_eq!(back, st);
        assert_eq!(at(&back, 1_000), vec![2, 0, 1]);
    }
}
