//! Consume queues: per (topic, queue id), a dense array of fixed-size [`CqUnit`]s pointing into
//! the CommitLog. Queue offset `N` is unit number `N`; consumers fetch by offset, then read the
//! message bytes from the CommitLog at the unit's position.
//!
//! # Durability contract
//!
//! A consume queue is *derived* state: the broker's state machine builds it from applied
//! (committed) Raft entries, in log order, with a single writer. So it is not fsynced per write:
//!
//! 1. Appends go to the page cache with `pwrite`; readers find them at once.
//! 2. Before the broker writes a state-machine checkpoint, it calls [`ConsumeQueueStore::flush`],
//!    which fdatasyncs every segment written since the last flush and every directory whose
//!    entries changed. The checkpoint then records each queue's next offset.
//! 3. After a crash, [`ConsumeQueueStore::open`] drops torn tails, the broker calls
//!    [`ConsumeQueueStore::truncate_to`] with the next offsets of its last checkpoint, and
//!    re-applies the log from there ([`ConsumeQueueStore::append_at`] tolerates units that
//!    survived).
//!
//! A failed flush poisons the store (every later flush fails): after a failed fsync the kernel
//! may have dropped the dirty pages and marked them clean, so a retry could "succeed" without the
//! data, and a checkpoint written after it would lie. Reopen and rebuild from the checkpoint.
//!
//! # On disk
//!
//! `<dir>/<escaped topic>/<queue id>/<first offset, 20 digits>`: segment files of
//! `units_per_file` units of 28 bytes each (layout in `unit.rs`); topic escaping in `dir_name.rs`.
//! Retention deletes whole segments; a queue whose every unit was trimmed keeps one empty
//! segment named by its next offset, so its offsets survive a restart.
//!
//! # Lock order
//!
//! `queues` (RwLock) → `Queue::writer` (Mutex) → `Queue::segments` (RwLock).
//! `dirs_to_sync` (Mutex) is a leaf: it may be taken under any of them, and no lock is taken
//! while it is held.

mod dir_name;
mod error;
mod queue;
mod unit;

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub use error::CqError;
pub use unit::{CqUnit, UNIT_SIZE, tag_hash};

use dir_name::{decode_topic, encode_topic};
use queue::{Queue, lock, read, sync_dir, write};

/// RocketMQ's default: 300,000 units (about 8 MiB) per segment file.
pub const DEFAULT_UNITS_PER_FILE: u64 = 300_000;

type QueueMap = HashMap<String, HashMap<i32, Arc<Queue>>>;

/// All consume queues of a broker. `Send + Sync`: one writer (the state machine) and any number
/// of readers share it behind an `Arc`.
pub struct ConsumeQueueStore {
    root: PathBuf,
    units_per_file: i64,
    queues: RwLock<QueueMap>,
    /// Directories whose entries changed (a topic or queue directory created or removed) and
    /// that the next flush must fsync.
    dirs_to_sync: Mutex<BTreeSet<PathBuf>>,
    poisoned: AtomicBool,
}

impl ConsumeQueueStore {
    /// Opens (creating if needed) the store in `dir` and recovers every queue found there.
    /// `units_per_file` must stay the same for the life of a store.
    pub fn open(dir: &Path, units_per_file: u64) -> Result<Self, CqError> {
        let units_per_file =
            i64::try_from(units_per_file).ok().filter(|u| (1..=i64::MAX / 28).contains(u)).ok_or_else(|| {
                CqError::InvalidConfig(format!(
                    "units_per_file = {units_per_file}: must be at least 1 and keep a segment's byte size in an i64"
                ))
            })?;
        let mut dirs_to_sync = BTreeSet::new();
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(|e| CqError::io(dir, e))?;
            let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
            dirs_to_sync.insert(parent.unwrap_or(Path::new(".")).to_owned());
        }
        let mut queues = QueueMap::new();
        for (topic, topic_dir) in subdirs(dir)? {
            let Some(topic) = decode_topic(&topic) else {
                tracing::warn!(dir = %topic_dir.display(), "ignoring a directory that is not an escaped topic name");
                continue;
            };
            for (qid, queue_dir) in subdirs(&topic_dir)? {
                let Some(queue_id) = qid.parse::<i32>().ok().filter(|q| q.to_string() == qid) else {
                    tracing::warn!(dir = %queue_dir.display(), "ignoring a directory that is not a queue id");
                    continue;
                };
                let queue = Queue::open(&topic, queue_id, queue_dir, units_per_file)?;
                queues.entry(topic.clone()).or_default().insert(queue_id, Arc::new(queue));
            }
        }
        Ok(ConsumeQueueStore {
            root: dir.to_owned(),
            units_per_file,
            queues: RwLock::new(queues),
            dirs_to_sync: Mutex::new(dirs_to_sync),
            poisoned: AtomicBool::new(false),
        })
    }

    /// Appends the next unit of a queue (creating the queue) and returns its offset.
    pub fn append(&self, topic: &str, queue_id: i32, unit: CqUnit) -> Result<i64, CqError> {
        self.get_or_create(topic, queue_id)?.append(&unit)
    }

    /// Appends several units to one queue with one write per file; returns the
    /// offset of the first. Same contract as [`append`](Self::append) per unit.
    pub fn append_many(&self, topic: &str, queue_id: i32, units: &[CqUnit]) -> Result<i64, CqError> {
        if units.is_empty() {
            return Ok(self.max_offset(topic, queue_id));
        }
        self.get_or_create(topic, queue_id)?.append_many(units)
    }

    /// Writes `unit` at `offset` when re-dispatching after recovery. `offset` must be the next
    /// offset, or an earlier one that already holds exactly this unit (then nothing is written).
    pub fn append_at(&self, topic: &str, queue_id: i32, offset: i64, unit: CqUnit) -> Result<(), CqError> {
        self.get_or_create(topic, queue_id)?.append_at(offset, &unit)
    }

    /// Up to `max_units` units from `offset` (raised to the min offset), never past the last
    /// completely written unit. Empty for an unknown queue or an offset at or past the end.
    pub fn read(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max_units: usize,
    ) -> Result<Vec<(i64, CqUnit)>, CqError> {
        match self.get(topic, queue_id) {
            Some(q) => q.read(offset, max_units),
            None => Ok(Vec::new()),
        }
    }

    /// The unit at exactly `offset`; `None` if the queue does not hold it (below its min
    /// offset, at or past its end, or an unknown queue). `read` would start at the min offset.
    pub fn unit_at(&self, topic: &str, queue_id: i32, offset: i64) -> Result<Option<CqUnit>, CqError> {
        let units = self.read(topic, queue_id, offset, 1)?;
        Ok(units.first().filter(|(o, _)| *o == offset).map(|(_, u)| *u))
    }

    /// The first retained offset; 0 for an unknown queue.
    pub fn min_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.get(topic, queue_id).map_or(0, |q| q.min())
    }

    /// The next offset to be written; 0 for an unknown queue.
    pub fn max_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.get(topic, queue_id).map_or(0, |q| q.next())
    }

    /// The first offset whose store time is `>= ts_ms` (a binary search, so it assumes store
    /// times do not decrease along the queue; ties are fine), or the max offset if there is none.
    /// A read error is logged and answered with the max offset: this feeds "reset consumer to
    /// time", where skipping ahead is recoverable and an error would only be retried.
    pub fn offset_for_timestamp(&self, topic: &str, queue_id: i32, ts_ms: i64) -> i64 {
        let Some(q) = self.get(topic, queue_id) else {
            return 0;
        };
        q.offset_for_timestamp(ts_ms).unwrap_or_else(|e| {
            tracing::warn!(topic, queue_id, ts_ms, error = %e, "offset_for_timestamp failed");
            q.next()
        })
    }

    /// Drops every unit at or past `next_offset` (recovery to a checkpoint). `next_offset` must
    /// lie within `[min_offset, max_offset]`; for an unknown queue only 0 is accepted.
    pub fn truncate_to(&self, topic: &str, queue_id: i32, next_offset: i64) -> Result<(), CqError> {
        match self.get(topic, queue_id) {
            Some(q) => q.truncate_to(next_offset),
            None if next_offset == 0 => Ok(()),
            None => {
                Err(CqError::TruncateOutOfRange { topic: topic.to_owned(), queue_id, next_offset, min: 0, next: 0 })
            }
        }
    }

    /// Deletes the segment files lying entirely below `offset` (retention) and returns the new
    /// min offset: the first retained one. Units never disappear past the max offset.
    pub fn trim_below(&self, topic: &str, queue_id: i32, offset: i64) -> Result<i64, CqError> {
        match self.get(topic, queue_id) {
            Some(q) => q.trim_below(offset),
            None => Ok(0),
        }
    }

    /// Replaces a queue (creating it if needed) with an empty one whose min and max offset are
    /// `first`: a Raft snapshot install, after which this replica dispatches only the entries
    /// past the snapshot. Durable with the next flush.
    pub fn reset_queue(&self, topic: &str, queue_id: i32, first: i64) -> Result<(), CqError> {
        self.get_or_create(topic, queue_id)?.reset_to(first)
    }

    /// Every known (topic, queue id).
    pub fn queues(&self) -> Vec<(String, i32)> {
        let map = read(&self.queues);
        let mut out: Vec<(String, i32)> =
            map.iter().flat_map(|(t, qs)| qs.keys().map(move |&q| (t.clone(), q))).collect();
        out.sort_unstable();
        out
    }

    /// Removes all queues of a topic and their files. Readers still holding the topic's newest
    /// segments finish; later reads of the topic see an unknown queue.
    pub fn delete_topic(&self, topic: &str) -> Result<(), CqError> {
        let Ok(name) = encode_topic(topic) else {
            return Ok(()); // no such directory can exist
        };
        let mut map = write(&self.queues);
        map.remove(topic);
        let path = self.root.join(name);
        match fs::remove_dir_all(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(CqError::io(path, e)),
            _ => {}
        }
        lock(&self.dirs_to_sync).insert(self.root.clone());
        Ok(())
    }

    /// Makes every unit appended before this call durable, with the directories that hold them.
    /// Call it before writing a checkpoint that records the queues' next offsets.
    pub fn flush(&self) -> Result<(), CqError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(CqError::Poisoned);
        }
        let queues: Vec<Arc<Queue>> = read(&self.queues).values().flat_map(|qs| qs.values().cloned()).collect();
        let result = queues.iter().try_for_each(|q| q.flush()).and_then(|()| {
            let dirs = std::mem::take(&mut *lock(&self.dirs_to_sync));
            dirs.iter().try_for_each(|d| sync_dir(d))
        });
        if let Err(e) = &result {
            // What was taken off the dirty lists is not known to be on disk any more.
            self.poisoned.store(true, Ordering::Release);
            tracing::error!(error = %e, "consume queue flush failed; store poisoned");
        }
        result
    }

    fn get(&self, topic: &str, queue_id: i32) -> Option<Arc<Queue>> {
        read(&self.queues).get(topic)?.get(&queue_id).cloned()
    }

    fn get_or_create(&self, topic: &str, queue_id: i32) -> Result<Arc<Queue>, CqError> {
        if let Some(q) = self.get(topic, queue_id) {
            return Ok(q);
        }
        let topic_dir = self.root.join(encode_topic(topic)?);
        let mut map = write(&self.queues);
        if let Some(q) = map.get(topic).and_then(|qs| qs.get(&queue_id)) {
            return Ok(Arc::clone(q));
        }
        let queue_dir = topic_dir.join(queue_id.to_string());
        let topic_is_new = !topic_dir.exists();
        fs::create_dir_all(&queue_dir).map_err(|e| CqError::io(&queue_dir, e))?;
        let queue = Arc::new(Queue::new_empty(topic, queue_id, queue_dir, self.units_per_file));
        {
            let mut dirs = lock(&self.dirs_to_sync);
            if topic_is_new {
                dirs.insert(self.root.clone());
            }
            dirs.insert(topic_dir);
        }
        map.entry(topic.to_owned()).or_default().insert(queue_id, Arc::clone(&queue));
        Ok(queue)
    }
}

/// The subdirectories of `dir` as (name, path); names that are not UTF-8 cannot be ours.
fn subdirs(dir: &Path) -> Result<Vec<(String, PathBuf)>, CqError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| CqError::io(dir, e))? {
        let entry = entry.map_err(|e| CqError::io(dir, e))?;
        let is_dir = entry.file_type().map_err(|e| CqError::io(entry.path(), e))?.is_dir();
        if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
            out.push((name.to_owned(), entry.path()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
