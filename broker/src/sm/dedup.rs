//! The idempotent-send window: message ids stored recently, so a producer
//! that re-sends after an unknown outcome (its first attempt timed out but
//! was committed) gets the original position back instead of a second copy.
//!
//! It is replicated state like the rest of the state machine: it changes only
//! when entries are applied, it is bounded by the stored messages' own
//! timestamps (set by the proposer, so identical on every replica) and by a
//! count, and it is checkpointed, so every replica decides the same.

use std::collections::{HashMap, VecDeque};

use raftmq_proto::broker::{SendEntryResult, SentId};

/// How long (by store timestamp) a message id is remembered.
pub const WINDOW_MS: i64 = 60_000;
/// At most this many ids are remembered (the oldest go first).
pub const MAX_IDS: usize = 200_000;

#[derive(Debug, Default, Clone)]
pub struct SentIds {
    order: VecDeque<SentId>,
    by_id: HashMap<(String, String), (i32, i64, u64)>,
}

impl SentIds {
    /// Where `topic`/`message_id` was stored, if within the window.
    pub fn get(&self, topic: &str, message_id: &str) -> Option<SendEntryResult> {
        self.by_id.get(&(topic.to_string(), message_id.to_string())).map(|(q, o, p)| SendEntryResult {
            queue_id: *q,
            queue_offset: *o,
            position: *p,
            error: None,
        })
    }

    pub fn insert(&mut self, s: SentId) {
        if s.message_id.is_empty() {
            return;
        }
        let now = s.store_timestamp_ms;
        self.by_id.insert((s.topic.clone(), s.message_id.clone()), (s.queue_id, s.queue_offset, s.position));
        self.order.push_back(s);
        while let Some(old) = self.order.front() {
            if self.order.len() <= MAX_IDS && old.store_timestamp_ms >= now - WINDOW_MS {
                break;
            }
            if let Some(old) = self.order.pop_front() {
                let key = (old.topic, old.message_id);
                // A later re-insert of the same id keeps its own entry.
                if self.by_id.get(&key).is_some_and(|v| *v == (old.queue_id, old.queue_offset, old.position)) {
                    self.by_id.remove(&key);
                }
            }
        }
    }

    pub fn remove_topic(&mut self, topic: &str) {
        self.order.retain(|s| s.topic != topic);
        self.by_id.retain(|(t, _), _| t != topic);
    }

    pub fn to_pb(&self) -> Vec<SentId> {
        self.order.iter().cloned().collect()
    }

    pub fn from_pb(ids: &[SentId]) -> Self {
        let mut s = Self::default();
        for id in ids {
            s.insert(id.clone());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: &str, offset: i64, ts: i64) -> SentId {
        SentId {
            topic: "t".into(),
            message_id: n.into(),
            queue_id: 0,
            queue_offset: offset,
            position: 0,
            store_timestamp_ms: ts,
        }
    }

    #[test]
    fn remembers_within_the_window_and_forgets_after() {
        let mut s = SentIds::default();
        s.insert(id("a", 0, 1_000));
        assert_eq!(s.get("t", "a").map(|r| r.queue_offset), Some(0));
        assert!(s.get("u", "a").is_none());
        s.insert(id("b", 1, 1_000 + WINDOW_MS + 1));
        assert!(s.get("t", "a").is_none(), "older than the window");
        assert!(s.get("t", "b").is_some());
        let back = SentIds::from_pb(&s.to_pb());
        assert_eq!(back.get("t", "b").map(|r| r.queue_offset), Some(1));
    }
}
