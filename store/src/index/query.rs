//! Lookups: walk one chain per file and confirm each candidate against its record.
//!
//! A chain runs from the newest position to the oldest, and files hold ascending position
//! ranges, so both lookups can stop early: at the retention bound, and (`by_key`) at files
//! whose newest timestamp cannot beat the hits already found.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashSet};
use std::sync::Arc;

use super::file::FileView;
use super::format::{self, Entry};
use super::record::Record;
use super::{HashFn, IndexError, IndexHit};

/// What the lookups share: a snapshot of the file list and the retention bound.
pub(super) struct Lookup<'a> {
    pub files: &'a [Arc<FileView>],
    pub hash: HashFn,
    pub removed_below: u64,
}

impl Lookup<'_> {
    /// Every live hit for `message_id` (in `topic`, if given), in position order.
    pub fn by_message_id(&self, topic: Option<&str>, message_id: &str) -> Result<Vec<IndexHit>, IndexError> {
        let h = (self.hash)(format::ID, "", message_id);
        let mut hits = Vec::new();
        let mut buf = Vec::new();
        for view in self.files {
            for entry in view.chain(h) {
                let entry = entry?;
                if entry.position < self.removed_below {
                    break;
                }
                let rec = view.file.record(entry.record, &mut buf)?;
                if rec.message_id == message_id && topic.is_none_or(|t| t == rec.topic) {
                    hits.push(hit(&entry, &rec));
                }
            }
        }
        hits.sort_unstable_by_key(|h| h.position);
        // One message could match twice only through a 64-bit collision of its id and key.
        hits.dedup_by_key(|h| h.position);
        Ok(hits)
    }

    /// The `max` newest hits of (`topic`, `key`) stored within `begin..=end`, newest first:
    /// by timestamp, then position, as the sled index ordered them.
    pub fn by_key(
        &self,
        topic: &str,
        key: &str,
        max: usize,
        begin: i64,
        end: i64,
    ) -> Result<Vec<IndexHit>, IndexError> {
        let h = (self.hash)(format::KEY, topic, key);
        let mut best = Best { max, heap: BinaryHeap::new(), seen: HashSet::new() };
        let mut buf = Vec::new();
        for view in self.files.iter().rev() {
            let (lo, hi) = view.ts_range();
            // Every hit found so far is at a higher position than anything in this file, so
            // an entry here beats the worst of a full set only with a strictly newer timestamp.
            if hi < begin || lo > end || best.floor().is_some_and(|(ts, _)| hi <= ts) {
                continue;
            }
            for entry in view.chain(h) {
                let entry = entry?;
                if entry.position < self.removed_below {
                    break;
                }
                if !(begin..=end).contains(&entry.timestamp) || !best.wants(entry.timestamp, entry.position) {
                    continue;
                }
                let rec = view.file.record(entry.record, &mut buf)?;
                if rec.topic == topic && rec.has_key(key) {
                    best.add(hit(&entry, &rec));
                }
            }
        }
        Ok(best.heap.into_sorted_vec().into_iter().map(|Reverse(r)| r.hit).collect())
    }
}

fn hit(entry: &Entry, rec: &Record<'_>) -> IndexHit {
    IndexHit {
        topic: rec.topic.to_owned(),
        queue_id: rec.queue_id,
        queue_offset: rec.queue_offset,
        position: entry.position,
        size: rec.size,
        store_timestamp_ms: entry.timestamp,
        message_id: rec.message_id.to_owned(),
    }
}

/// The `max` greatest hits by (timestamp, position): a min-heap whose top is the one to drop.
struct Best {
    max: usize,
    heap: BinaryHeap<Reverse<Ranked>>,
    /// Positions taken, so that a message matched twice (a collision) counts once.
    seen: HashSet<u64>,
}

impl Best {
    /// The worst hit kept, once there are `max` of them.
    fn floor(&self) -> Option<(i64, u64)> {
        (self.heap.len() >= self.max).then(|| self.heap.peek().map(|Reverse(r)| r.key)).flatten()
    }

    fn wants(&self, ts: i64, position: u64) -> bool {
        self.max > 0 && self.floor().is_none_or(|floor| (ts, position) > floor)
    }

    fn add(&mut self, hit: IndexHit) {
        if !self.seen.insert(hit.position) {
            return;
        }
        self.heap.push(Reverse(Ranked { key: (hit.store_timestamp_ms, hit.position), hit }));
        if self.heap.len() > self.max {
            self.heap.pop();
        }
    }
}

struct Ranked {
    key: (i64, u64),
    hit: IndexHit,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}
