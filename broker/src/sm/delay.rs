//! Delayed messages (`message_type DELAY`, a `delivery_timestamp` ahead of
//! the store time).
//!
//! A delayed message is written to the CommitLog with its entry like any
//! other, so it is as durable as any other once acknowledged. It joins its
//! consume queue (and gets its queue offset) only when it is due: until then
//! it waits here, in the replicated state. The leader's timer proposes
//! `FireDelayed{now_ms}`; applying it moves every message due by that time
//! into its queue, in (due time, CommitLog position) order. Whether a message
//! is delayed is decided from the entry alone (its delivery time against the
//! store time the leader stamped), and firing from the command alone, so
//! every replica assigns the same offsets.

use std::collections::BTreeMap;

use raftmq_proto::broker::DelayedMessage;
use raftmq_store::consume_queue::CqUnit;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delayed {
    pub topic: String,
    pub queue_id: i32,
    pub unit: CqUnit,
}

/// Messages waiting for their delivery time, by (due ms, CommitLog position).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DelayQueue {
    waiting: BTreeMap<(i64, u64), Delayed>,
}

impl DelayQueue {
    pub fn push(&mut self, due_ms: i64, d: Delayed) {
        self.waiting.insert((due_ms, d.unit.position), d);
    }

    /// When the next message is due, if any waits.
    pub fn next_due(&self) -> Option<i64> {
        self.waiting.first_key_value().map(|((due, _), _)| *due)
    }

    /// Takes every message due by `now_ms`, earliest first.
    pub fn take_due(&mut self, now_ms: i64) -> Vec<Delayed> {
        let later = self.waiting.split_off(&(now_ms.saturating_add(1), 0));
        std::mem::replace(&mut self.waiting, later).into_values().collect()
    }

    pub fn remove_topic(&mut self, topic: &str) {
        self.waiting.retain(|_, d| d.topic != topic);
    }

    /// Drops the messages whose records lie before CommitLog `position` (retention).
    pub fn drop_stored_before(&mut self, position: u64) {
        self.waiting.retain(|_, d| d.unit.position >= position);
    }

    /// The lowest CommitLog position of a waiting message (retention stops before it).
    pub fn min_position(&self) -> Option<u64> {
        self.waiting.values().map(|d| d.unit.position).min()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    pub fn to_pb(&self) -> Vec<DelayedMessage> {
        self.waiting
            .iter()
            .map(|((due_ms, _), d)| DelayedMessage {
                topic: d.topic.clone(),
                queue_id: d.queue_id,
                due_ms: *due_ms,
                position: d.unit.position,
                size: d.unit.size,
                tag_hash: d.unit.tag_hash,
                store_timestamp_ms: d.unit.store_timestamp_ms,
            })
            .collect()
    }

    pub fn from_pb(list: &[DelayedMessage]) -> Self {
        let mut q = Self::default();
        for m in list {
            let unit = CqUnit {
                position: m.position,
                size: m.size,
                tag_hash: m.tag_hash,
                store_timestamp_ms: m.store_timestamp_ms,
            };
            q.push(m.due_ms, Delayed { topic: m.topic.clone(), queue_id: m.queue_id, unit });
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delayed(topic: &str, position: u64) -> Delayed {
        Delayed {
            topic: topic.into(),
            queue_id: 0,
            unit: CqUnit { position, size: 10, tag_hash: 0, store_timestamp_ms: 1 },
        }
    }

    #[test]
    fn due_messages_come_out_in_due_then_position_order() {
        let mut q = DelayQueue::default();
        q.push(300, delayed("t", 5));
        q.push(100, delayed("t", 9));
        q.push(100, delayed("u", 2));
        q.push(200, delayed("t", 1));
        assert_eq!(q.next_due(), Some(100));
        assert!(q.take_due(99).is_empty());
        let first: Vec<u64> = q.take_due(200).iter().map(|d| d.unit.position).collect();
        assert_eq!(first, vec![2, 9, 1]);
        assert_eq!(q.next_due(), Some(300));
        assert_eq!(DelayQueue::from_pb(&q.to_pb()), q);
        q.remove_topic("t");
        assert!(q.is_empty());
    }
}
