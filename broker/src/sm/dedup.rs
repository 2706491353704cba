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

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use foldhash::HashMap;
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

/// Ids are kept in sealed runs of this many, shared with checkpoint captures.
const RUN: usize = 1024;

/// A sealed run's id: unique within the process (every window of every replica draws from
/// one counter), so a run written to a side file (`window_runs.rs`) is never mistaken for
/// another, even after a snapshot install replaced the whole window.
pub type RunId = u64;

static NEXT_RUN: AtomicU64 = AtomicU64::new(1);

/// A sealed run: immutable once sealed, shared by captures.
#[derive(Debug, Clone)]
pub struct SealedRun {
    pub id: RunId,
    pub ids: Arc<[SentId]>,
}

/// The window's ids in insertion order, plus a lookup by (topic, message id).
///
/// The order is kept as sealed runs behind `Arc`s and a short open tail, so
/// [`capture`](Self::capture) (on the applying task, every checkpoint) copies at most one run
/// however many ids the window holds (up to [`MAX_IDS`]); encoding happens off that task.
#[derive(Debug, Default, Clone)]
pub struct SentIds {
    sealed: VecDeque<SealedRun>,
    /// How many ids at the front of `sealed[0]` were forgotten already.
    front_skip: usize,
    tail: VecDeque<SentId>,
    len: usize,
    /// topic → message id → (queue, offset, position); nested so a lookup allocates nothing.
    /// foldhash, seeded per process: every send of every replica inserts an id here and the
    /// table rehashes its keys as ids expire, which SipHash made a sizeable share of apply.
    by_id: HashMap<String, HashMap<String, (i32, i64, u64)>>,
}

/// The window's ids at one applied index, to encode off the applying task.
#[derive(Debug, Default)]
pub struct SentIdsCapture {
    sealed: Vec<SealedRun>,
    front_skip: usize,
    tail: Vec<SentId>,
}

impl SentIdsCapture {
    pub fn to_pb(&self) -> Vec<SentId> {
        self.iter().cloned().collect()
    }

    /// Each id, oldest first, borrowed.
    pub fn for_each(&self, f: impl FnMut(&SentId)) {
        self.iter().for_each(f);
    }

    /// The sealed runs, oldest first; the first one's first [`front_skip`](Self::front_skip)
    /// ids are no longer in the window.
    pub fn sealed(&self) -> &[SealedRun] {
        &self.sealed
    }

    pub fn front_skip(&self) -> usize {
        self.front_skip
    }

    /// The ids after the sealed runs, oldest first.
    pub fn tail(&self) -> &[SentId] {
        &self.tail
    }

    fn iter(&self) -> impl Iterator<Item = &SentId> {
        let sealed = self.sealed.iter().enumerate().flat_map(|(i, run)| {
            let skip = if i == 0 { self.front_skip } else { 0 };
            run.ids[skip..].iter()
        });
        sealed.chain(&self.tail)
    }
}

impl SentIds {
    /// Where `topic`/`message_id` was stored, if within the window.
    pub fn get(&self, topic: &str, message_id: &str) -> Option<SendEntryResult> {
        self.by_id.get(topic)?.get(message_id).map(|(q, o, p)| SendEntryResult {
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
        let at = (s.queue_id, s.queue_offset, s.position);
        match self.by_id.get_mut(&s.topic) {
            Some(ids) => {
                ids.insert(s.message_id.clone(), at);
            }
            None => {
                self.by_id.insert(s.topic.clone(), HashMap::from_iter([(s.message_id.clone(), at)]));
            }
        }
        self.push_ordered(s);
        while let Some(old) = self.front() {
            if self.len <= MAX_IDS && old.window_clock_ms >= now - WINDOW_MS {
                break;
            }
            self.forget_front();
        }
    }

    fn front(&self) -> Option<&SentId> {
        match self.sealed.front() {
            Some(run) => run.ids.get(self.front_skip),
            None => self.tail.front(),
        }
    }

    /// Forgets the oldest id (its lookup too, unless a later re-insert of the id owns it).
    /// Borrows it from its run: no copy on the apply path, where every insert into a full
    /// window forgets one.
    fn forget_front(&mut self) {
        let old = match self.sealed.front() {
            Some(run) => &run.ids[self.front_skip],
            None => match self.tail.front() {
                Some(old) => old,
                None => return,
            },
        };
        if let Some(ids) = self.by_id.get_mut(&old.topic) {
            if ids.get(&old.message_id).is_some_and(|v| *v == (old.queue_id, old.queue_offset, old.position)) {
                ids.remove(&old.message_id);
            }
            if ids.is_empty() {
                self.by_id.remove(&old.topic);
            }
        }
        match self.sealed.front() {
            Some(run) => {
                self.front_skip += 1;
                if self.front_skip == run.ids.len() {
                    self.sealed.pop_front();
                    self.front_skip = 0;
                }
            }
            None => {
                self.tail.pop_front();
            }
        }
        self.len -= 1;
    }

    pub fn remove_topic(&mut self, topic: &str) {
        let kept: Vec<SentId> = self.capture().to_pb().into_iter().filter(|s| s.topic != topic).collect();
        self.by_id.remove(topic);
        *self = Self { by_id: std::mem::take(&mut self.by_id), ..Self::default() };
        for s in kept {
            self.push_ordered(s);
        }
    }

    /// Appends to the order only (the lookup is already right).
    fn push_ordered(&mut self, s: SentId) {
        self.tail.push_back(s);
        self.len += 1;
        if self.tail.len() >= RUN {
            let ids: Vec<SentId> = self.tail.drain(..).collect();
            self.sealed.push_back(SealedRun { id: NEXT_RUN.fetch_add(1, Ordering::Relaxed), ids: ids.into() });
        }
    }

    /// The ids as they are now: shares the sealed runs, copies only the open tail.
    pub fn capture(&self) -> SentIdsCapture {
        SentIdsCapture {
            sealed: self.sealed.iter().cloned().collect(),
            front_skip: self.front_skip,
            tail: self.tail.iter().cloned().collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
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
        let back = SentIds::from_pb(&s.capture().to_pb());
        assert_eq!(back.get("t", "b").map(|r| r.queue_offset), Some(1));
    }

    #[test]
    fn a_capture_holds_the_window_in_order_across_runs_and_forgetting() {
        let mut s = SentIds::default();
        let n = MAX_IDS + 3 * RUN + 17;
        for i in 0..n {
            s.insert(id(&format!("m{i}"), i as i64, 1_000));
        }
        assert_eq!(s.len(), MAX_IDS, "the count bound holds");
        let captured = s.capture();
        // Later inserts and forgetting do not change what was captured.
        for i in n..n + RUN {
            s.insert(id(&format!("m{i}"), i as i64, 1_000));
        }
        let ids = captured.to_pb();
        assert_eq!(ids.len(), MAX_IDS);
        let first = n - MAX_IDS;
        assert!(ids.iter().enumerate().all(|(k, x)| x.queue_offset == (first + k) as i64), "in insertion order");
        assert!(s.get("t", &format!("m{}", first)).is_none(), "forgotten by count");
        assert!(s.get("t", &format!("m{}", n + RUN - 1)).is_some());

        // Time forgets everything older than the window, sealed runs and tail alike.
        s.insert(id("late", 0, 1_000 + WINDOW_MS + 1));
        assert_eq!(s.len(), 1);
        assert_eq!(s.capture().to_pb().len(), 1);
        assert!(s.get("t", "late").is_some());
    }

    #[test]
    fn removing_a_topic_forgets_its_ids_and_keeps_the_rest_in_order() {
        let mut s = SentIds::default();
        for i in 0..(2 * RUN + 5) {
            let mut x = id(&format!("m{i}"), i as i64, 1_000);
            if i % 2 == 1 {
                x.topic = "u".into();
            }
            s.insert(x);
        }
        s.remove_topic("u");
        assert!(s.get("u", "m1").is_none());
        assert_eq!(s.get("t", "m2").map(|r| r.queue_offset), Some(2));
        let ids = s.capture().to_pb();
        assert_eq!(ids.len(), RUN + 3);
        assert!(ids.windows(2).all(|w| w[0].queue_offset < w[1].queue_offset));
        assert_eq!(s.len(), RUN + 3);
    }

    #[test]
    fn a_re_sent_id_keeps_its_newer_position_when_the_older_is_forgotten() {
        let mut s = SentIds::default();
        s.insert(id("a", 0, 1_000));
        s.insert(id("a", 5, 2_000));
        s.insert(id("b", 6, 1_000 + WINDOW_MS + 500));
        assert_eq!(s.get("t", "a").map(|r| r.queue_offset), Some(5), "the newer insert survives");
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
