//! The idempotent-send window: message ids stored recently, so a producer
//! that re-sends after an unknown outcome (its first attempt timed out but
//! was committed) gets the original position back instead of a second copy.
//!
//! It is replicated state like the rest of the state machine: it changes only
//! when entries are applied, it is bounded by a count and by time on a
//! [`WindowClock`] built from the leaders' stamps in the log (so identical on
//! every replica), and it is checkpointed, so every replica decides the same.
//!
//! Why not the messages' store timestamps: they come from whichever replica
//! took the send, and a replica whose clock runs a minute ahead would empty
//! the window at its first insert (found by the Jepsen clock-skew nemesis).
//! The window clock uses only differences between stamps of one leader term,
//! so no clock offset moves it.

use std::collections::{HashMap, VecDeque};

use raftmq_proto::broker::{SendEntryResult, SentId, WindowClock as PbWindowClock};

/// Time for the idempotent-send window, derived from the log only.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WindowClock {
    term: u64,
    run: u64,
    last_stamp_ms: i64,
    pub now_ms: i64,
}

impl WindowClock {
    /// An entry of `term` stamped `stamp_ms` by its leader's process `run`:
    /// within one (term, run) the clock moves by the stamps' difference
    /// (never backwards); the first stamp of another term or process moves it
    /// by nothing, since two clocks cannot be compared. (The run matters for a
    /// one-replica group: its restarted leader keeps its term, not its clock.)
    pub fn observe(&mut self, term: u64, run: u64, stamp_ms: i64) {
        if (term, run) == (self.term, self.run) {
            self.now_ms += stamp_ms.saturating_sub(self.last_stamp_ms).max(0);
        }
        (self.term, self.run, self.last_stamp_ms) = (term, run, stamp_ms);
    }

    pub fn to_pb(self) -> PbWindowClock {
        PbWindowClock { term: self.term, run: self.run, last_stamp_ms: self.last_stamp_ms, now_ms: self.now_ms }
    }

    pub fn from_pb(p: Option<&PbWindowClock>) -> Self {
        p.map(|p| Self { term: p.term, run: p.run, last_stamp_ms: p.last_stamp_ms, now_ms: p.now_ms })
            .unwrap_or_default()
    }
}

/// How long (by the window clock) a message id is remembered.
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
        let now = s.window_clock_ms;
        self.by_id.insert((s.topic.clone(), s.message_id.clone()), (s.queue_id, s.queue_offset, s.position));
        self.order.push_back(s);
        while let Some(old) = self.order.front() {
            if self.order.len() <= MAX_IDS && old.window_clock_ms >= now - WINDOW_MS {
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
            store_timestamp_ms: 0,
            window_clock_ms: ts,
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

    #[test]
    fn the_window_clock_ignores_clock_offsets_between_leaders() {
        let mut c = WindowClock::default();
        c.observe(1, 7, 1_000_000);
        c.observe(1, 7, 1_000_500);
        assert_eq!(c.now_ms, 500, "one leader: the stamps' difference");
        c.observe(1, 7, 1_000_400);
        assert_eq!(c.now_ms, 500, "a clock stepping back does not move it back");
        // A new leader 90 s ahead: its first stamp adds nothing, then its own differences count.
        c.observe(2, 8, 1_091_000);
        assert_eq!(c.now_ms, 500);
        c.observe(2, 8, 1_092_000);
        assert_eq!(c.now_ms, 1_500);
        // One 90 s behind likewise, and a restarted leader in the same term.
        c.observe(3, 9, 1_002_000);
        c.observe(3, 9, 1_002_250);
        assert_eq!(c.now_ms, 1_750);
        c.observe(3, 10, 1_200_000);
        assert_eq!(c.now_ms, 1_750);
        assert_eq!(WindowClock::from_pb(Some(&c.to_pb())), c);
    }
}
