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
//!
//! # Who decides
//! The leader decides what a pop delivers, right before proposing it
//! (`crate::pop_plan`), and the entry carries that plan: the expired
//! deliveries to deliver again or dead-letter (with their units) and the
//! range of new offsets with the ones that pass the tag filter. Applying it
//! ([`planned`]) checks the plan against this state and reads no consume-queue
//! unit, so a replica whose queues start later (one that installed a snapshot
//! at a retention boundary) applies every pop exactly as the others did
//! (ARCHITECTURE.md, "Why retention waits"; I35). Entries written by older
//! versions carry no plan and are applied as those versions did ([`legacy`]).
//!
//! - [`planned`]: the rules a plan is checked by.
//! - [`legacy`]: unplanned pops, deciding from the units.

mod legacy;
pub mod planned;
#[cfg(test)]
pub(crate) mod testkit;

use std::collections::{BTreeMap, BTreeSet};

use raftmq_proto::broker::{
    AckResult, ChangeInvisible, Error as PbError, Inflight as PbInflight, Pop, PopQueue, PopResult, PopTarget, Popped,
    QueueUnit, TopicConfig, command_reply,
};
use raftmq_proto::rocketmq::v2::{Code, MessageType, Permission};
use raftmq_store::consume_queue::{ConsumeQueueStore, CqUnit};

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
    pub fn start_at(offset: i64) -> Self {
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
    pub fn expired(&self, now_ms: i64) -> Vec<(i64, Inflight)> {
        self.by_deadline
            .range(..=(now_ms, i64::MAX))
            .filter_map(|(_, o)| self.inflight.get(o).map(|i| (*o, *i)))
            .collect()
    }

    /// `offset` is in flight with `attempt`, and that delivery's invisible time ran out by `now_ms`.
    pub fn expired_delivery(&self, offset: i64, attempt: i32, now_ms: i64) -> bool {
        self.inflight.get(&offset).is_some_and(|i| i.attempt == attempt && i.deadline_ms <= now_ms)
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

    /// Retention moved the queue's first offset to `first`: everything below it
    /// expired, delivered or not.
    pub fn forget_below(&mut self, first: i64) {
        if self.consumed >= first {
            return;
        }
        let expired: Vec<i64> = self.inflight.range(..first).map(|(o, _)| *o).collect();
        for offset in expired {
            self.take_inflight(offset);
        }
        self.done = self.done.split_off(&first);
        self.consumed = first;
        self.next = self.next.max(first);
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

/// How a group's deliveries are handed out, as of the entry being applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRules {
    /// Orderly: a queue is locked while any of its deliveries is invisible.
    pub fifo: bool,
    /// Deliveries before a message goes to `%DLQ%{group}`.
    pub max_attempts: i32,
}

impl GroupRules {
    /// The group's settings, else the pop's defaults (an unknown group is
    /// created with the defaults by its first pop).
    pub fn of(meta: &Meta, p: &Pop) -> Self {
        let group = meta.groups.get(&p.group);
        let max_attempts = match group.map(|g| g.max_delivery_attempts) {
            Some(a) if a > 0 => a,
            _ => p.max_attempts.max(1),
        };
        Self { fifo: group.is_some_and(|g| g.fifo), max_attempts }
    }
}

/// The queues a pop visits, in order.
pub fn pop_queues(p: &Pop) -> Vec<i32> {
    if p.queue_ids.is_empty() { vec![p.queue_id] } else { p.queue_ids.clone() }
}

/// Applies a pop at log index `epoch`: up to `max` messages from the listed
/// queues, in order (expired deliveries of a queue before its new messages).
/// A planned pop (`p.plan`, every entry this version proposes) reads no
/// consume-queue unit; an unplanned one from an older version decides from
/// the units as that version did ([`legacy`]).
pub fn apply_pop(
    cq: &ConsumeQueueStore,
    meta: &mut Meta,
    epoch: u64,
    mut p: Pop,
) -> std::io::Result<command_reply::Result> {
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
    let queues = pop_queues(&p);
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
    let popped = match p.plan.take() {
        Some(plan) => planned::apply(cq, meta, epoch, &p, &queues, plan)?,
        None => {
            meta.last_unplanned_pop = epoch; // holds retention back (legacy.rs)
            legacy::apply(cq, meta, epoch, &p, &queues)?
        }
    };
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

/// A consumer gives up on one delivery (ForwardMessageToDeadLetterQueue).
/// The command carries the message's unit; one from an older version does
/// not, and the unit is read from this replica's consume queue as it was then.
pub fn apply_dead_letter(
    cq: &ConsumeQueueStore,
    meta: &mut Meta,
    mut t: PopTarget,
) -> std::io::Result<command_reply::Result> {
    match target_state(meta, &t) {
        Some(st) if st.live(t.offset, t.epoch).is_some() => st.mark_done(t.offset),
        _ => return Ok(command_reply::Result::Error(invalid_handle())),
    }
    let unit = match t.unit.take() {
        Some(u) => Some(unit_from_pb(&u)),
        None => legacy::read_unit(cq, &t.topic, t.queue_id, t.offset)?,
    };
    dead_letter(cq, meta, &t.group, unit.as_slice())?;
    Ok(command_reply::Result::Ok(true))
}

/// Appends `units` to `%DLQ%{group}` (creating the topic): they point at the
/// same CommitLog bytes as the originals.
fn dead_letter(cq: &ConsumeQueueStore, meta: &mut Meta, group: &str, units: &[CqUnit]) -> std::io::Result<()> {
    if units.is_empty() {
        return Ok(());
    }
    let dlq = dlq_topic(group);
    meta.topics.entry(dlq.clone()).or_insert_with(|| TopicConfig {
        name: dlq.clone(),
        queue_count: 1,
        message_types: vec![MessageType::Normal as i32, MessageType::Fifo as i32, MessageType::Delay as i32],
        permission: Permission::ReadWrite as i32,
    });
    cq.append_many(&dlq, 0, units).map_err(std::io::Error::other)?;
    Ok(())
}

pub fn unit_to_pb(u: &CqUnit) -> QueueUnit {
    QueueUnit { position: u.position, size: u.size, tag_hash: u.tag_hash, store_timestamp_ms: u.store_timestamp_ms }
}

pub fn unit_from_pb(u: &QueueUnit) -> CqUnit {
    CqUnit { position: u.position, size: u.size, tag_hash: u.tag_hash, store_timestamp_ms: u.store_timestamp_ms }
}

fn target_state<'a>(meta: &'a mut Meta, t: &PopTarget) -> Option<&'a mut PopQueueState> {
    meta.pop.get_mut(&(t.group.clone(), t.topic.clone(), t.queue_id))
}

pub fn apply_ack(meta: &mut Meta, targets: Vec<PopTarget>) -> command_reply::Result {
    let mut results = Vec::with_capacity(targets.len());
    // An ack batch names a few queues in long runs (one receive's messages): one state lookup
    // (and key) per run, not per message, on every replica.
    for run in targets.chunk_by(|a, b| a.queue_id == b.queue_id && a.group == b.group && a.topic == b.topic) {
        let mut st = target_state(meta, &run[0]);
        for t in run {
            results.push(match st.as_deref_mut() {
                Some(st) if st.live(t.offset, t.epoch).is_some() => {
                    st.mark_done(t.offset);
                    ok()
                }
                _ => invalid_handle(),
            });
        }
    }
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
    use super::testkit::*;
    use super::*;

    #[test]
    fn a_dead_letter_command_appends_the_unit_it_carries() {
        let dir = tempfile::tempdir().unwrap();
        let cq = queue_with(dir.path(), 8);
        let mut m = meta(16);
        assert_eq!(run(&cq, &mut m, 5, pop("g", 2, 0, 100)), delivered(0..2, 1));
        // This replica's queue no longer holds offset 1: the command's unit is what counts.
        assert_eq!(cq.trim_below(TOPIC, 0, 4).unwrap(), 4);
        let target = |offset, epoch, unit: Option<CqUnit>| PopTarget {
            unit: unit.as_ref().map(unit_to_pb),
            ..target("g", 0, offset, epoch)
        };
        let stale = apply_dead_letter(&cq, &mut m, target(1, 4, Some(unit(1)))).unwrap();
        assert!(matches!(stale, command_reply::Result::Error(e) if e.code == Code::InvalidReceiptHandle as i32));
        let moved = apply_dead_letter(&cq, &mut m, target(1, 5, Some(unit(1)))).unwrap();
        assert_eq!(moved, command_reply::Result::Ok(true));
        assert_eq!(dlq(&cq, "g"), vec![unit(1)]);
        assert_eq!(state(&m, "g").done.iter().copied().collect::<Vec<_>>(), vec![1]);
    }

    /// Acks are answered one per target, in order, whatever runs they come in: runs of two
    /// groups interleaved, a stale epoch inside a run, a queue nobody popped from.
    #[test]
    fn an_ack_batch_answers_each_target_in_order_across_runs() {
        let dir = tempfile::tempdir().unwrap();
        let cq = queue_with(dir.path(), 8);
        let mut m = meta(16);
        assert_eq!(run(&cq, &mut m, 5, pop("g", 3, 0, 100)), delivered(0..3, 1));
        assert_eq!(run(&cq, &mut m, 6, pop("g2", 2, 0, 100)), delivered(0..2, 1));
        let t = target;
        let batch = vec![
            t("g", 0, 0, 5),
            t("g", 0, 1, 4), // stale epoch
            t("g", 0, 2, 5),
            t("g2", 0, 0, 6),
            t("g", 0, 1, 5), // the same queue again, after another run
            t("g", 1, 0, 5), // nothing was popped from queue 1
            t("g2", 0, 1, 6),
        ];
        let codes: Vec<i32> = match apply_ack(&mut m, batch) {
            command_reply::Result::Ack(a) => a.results.iter().map(|e| e.code).collect(),
            other => panic!("{other:?}"),
        };
        let (ok, bad) = (Code::Ok as i32, Code::InvalidReceiptHandle as i32);
        assert_eq!(codes, vec![ok, bad, ok, ok, ok, bad, ok]);
        assert_eq!(state(&m, "g").inflight_count(), 0);
        assert_eq!(state(&m, "g2").inflight_count(), 0);
    }

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
        let mut retained = st.clone();
        retained.forget_below(2);
        assert_eq!(
            (retained.consumed, retained.next, retained.inflight_count()),
            (2, 4, 1),
            "3 was acked, 2 stays out"
        );
        assert_eq!(at(&retained, 1_000), vec![2]);
        let key = ("g".to_string(), "t".to_string(), 0);
        let (_, back) = PopQueueState::from_pb(&st.to_pb(&key));
        assert_eq!(back, st);
        assert_eq!(at(&back, 1_000), vec![2, 0, 1]);
    }
}
