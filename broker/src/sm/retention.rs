//! Retention in the replicated state: what has expired, as decided by the
//! leader's `Retain` entries.
//!
//! A `Retain{index, position, firsts}` says that every record before CommitLog
//! `position` has expired. Applying it is a pure function of the entry and the
//! state (the leader read the queues' first offsets, so applying reads no
//! consume-queue units): each queue's first offset rises, pop cursors and
//! consumer offsets move up to it, deliveries below it are forgotten, and
//! delayed messages stored before `position` are dropped. After that no entry
//! refers to an expired record, and each replica may purge its log up to a
//! pinned checkpoint at or before `index` (the node's purger, `retention.rs`).

use std::collections::BTreeMap;

use raftmq_proto::broker::{QueueFirst, Retain};

use super::state::Meta;

/// The last applied `Retain`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retained {
    /// The pinned checkpoint's index (0: nothing expired yet).
    pub index: u64,
    /// Records before this CommitLog position have expired.
    pub position: u64,
    /// The log index of the `Retain` entry.
    pub applied_at: u64,
    /// First retained offset per (topic, queue); queues not listed start at 0.
    firsts: BTreeMap<(String, i32), i64>,
}

impl Retained {
    /// The first offset of a queue that may still be read.
    pub fn first(&self, topic: &str, queue_id: i32) -> i64 {
        self.firsts.get(&(topic.to_owned(), queue_id)).copied().unwrap_or(0)
    }

    pub fn remove_topic(&mut self, topic: &str) {
        self.firsts.retain(|(t, _), _| t != topic);
    }

    pub fn to_pb(&self) -> Retain {
        Retain {
            index: self.index,
            position: self.position,
            applied_at: self.applied_at,
            firsts: self
                .firsts
                .iter()
                .map(|((topic, queue_id), offset)| QueueFirst {
                    topic: topic.clone(),
                    queue_id: *queue_id,
                    offset: *offset,
                })
                .collect(),
        }
    }

    pub fn from_pb(r: Option<&Retain>) -> Self {
        let Some(r) = r else { return Self::default() };
        Self {
            index: r.index,
            position: r.position,
            applied_at: r.applied_at,
            firsts: r.firsts.iter().map(|f| ((f.topic.clone(), f.queue_id), f.offset)).collect(),
        }
    }
}

/// Applies a `Retain` at log index `at`. Returns false (and changes nothing)
/// for one that expires nothing new: a stale or repeated decision.
pub fn apply_retain(meta: &mut Meta, at: u64, r: Retain) -> bool {
    if r.index <= meta.retained.index || r.position < meta.retained.position {
        return false;
    }
    let retained = &mut meta.retained;
    retained.index = r.index;
    retained.position = r.position;
    retained.applied_at = at;
    for f in r.firsts {
        if !meta.topics.contains_key(&f.topic) {
            continue; // deleted since the leader looked: its queues went with it
        }
        let first = retained.firsts.entry((f.topic, f.queue_id)).or_insert(0);
        *first = (*first).max(f.offset);
    }
    for ((_, topic, queue_id), st) in meta.pop.iter_mut() {
        st.forget_below(retained.first(topic, *queue_id));
    }
    for ((_, topic, queue_id), offset) in meta.offsets.iter_mut() {
        *offset = (*offset).max(retained.first(topic, *queue_id));
    }
    meta.delays.drop_stored_before(r.position);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sm::delay::Delayed;
    use raftmq_proto::broker::TopicConfig;
    use raftmq_store::consume_queue::CqUnit;

    fn retain(index: u64, position: u64, firsts: &[(&str, i32, i64)]) -> Retain {
        Retain {
            index,
            position,
            firsts: firsts
                .iter()
                .map(|(t, q, o)| QueueFirst { topic: (*t).into(), queue_id: *q, offset: *o })
                .collect(),
            applied_at: 0,
        }
    }

    fn delayed(position: u64) -> Delayed {
        Delayed {
            topic: "t".into(),
            queue_id: 0,
            unit: CqUnit { position, size: 10, tag_hash: 0, store_timestamp_ms: 1 },
        }
    }

    #[test]
    fn retain_raises_firsts_cursors_and_offsets_and_drops_expired_delays() {
        let mut m = Meta::default();
        m.topics.insert("t".into(), TopicConfig { name: "t".into(), queue_count: 2, ..Default::default() });
        m.offsets.insert(("g".into(), "t".into(), 0), 3);
        m.offsets.insert(("g".into(), "t".into(), 1), 50);
        m.delays.push(10, delayed(100));
        m.delays.push(20, delayed(5_000));

        assert!(apply_retain(&mut m, 40, retain(30, 1_000, &[("t", 0, 7), ("t", 1, 2), ("gone", 0, 9)])));
        assert_eq!((m.retained.index, m.retained.position, m.retained.applied_at), (30, 1_000, 40));
        assert_eq!((m.retained.first("t", 0), m.retained.first("t", 1), m.retained.first("gone", 0)), (7, 2, 0));
        assert_eq!(m.offsets[&("g".into(), "t".into(), 0)], 7, "a consumer offset below the first moves up");
        assert_eq!(m.offsets[&("g".into(), "t".into(), 1)], 50);
        assert_eq!(m.delays.next_due(), Some(20), "the delayed message stored before the cut is gone");

        // A stale decision changes nothing; firsts never move back.
        assert!(!apply_retain(&mut m, 41, retain(30, 1_000, &[("t", 0, 99)])));
        assert!(apply_retain(&mut m, 42, retain(31, 1_100, &[("t", 0, 5)])));
        assert_eq!(m.retained.first("t", 0), 7);
        assert_eq!(Retained::from_pb(Some(&m.retained.to_pb())), m.retained);
    }
}
