//! The message-id and key index: find a message by its id (`UNIQ_KEY`) or by one of its keys
//! (`KEYS`, split by the caller), as RocketMQ's `IndexService` does.
//!
//! # Durability contract
//!
//! The index lives in sled 0.34, which holds only state that can be rebuilt from the log
//! (reference §11): it is never the only copy of anything, every hit points at a CommitLog
//! position, and if sled fails to open or returns corrupt data the broker deletes the directory
//! and re-indexes the retained log.
//!
//! The broker's state machine feeds it applied entries in batches ([`MessageIndex::insert_batch`]),
//! each tagged with the Raft log index it came from. That watermark is written in the *same*
//! sled batch as the entries (one tree holds both, and a sled batch on one tree is atomic), so
//! whenever the watermark says `n`, every entry applied at or below `n` is indexed. sled writes
//! reach disk on [`MessageIndex::flush`] (or its own 500 ms timer); after a crash the broker
//! re-indexes from [`MessageIndex::indexed_upto`] + 1. Re-indexing an entry rewrites the same
//! keys, because each key ends with the message's CommitLog position.
//!
//! Key layout and the retention journal: see `layout.rs`. `insert_batch` and `remove_below` may
//! run on different threads; neither needs the other's lock, because both only ever write keys
//! derived from immutable CommitLog positions.

mod error;
mod layout;

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use error::IndexError;

/// sled's default page cache is 1 GiB; a 2-core host runs three replicas, and index lookups are
/// rare admin queries, so keep it small.
const CACHE_BYTES: u64 = 64 << 20;
/// How long `open` waits for a just-dropped handle to release sled's directory lock.
const LOCK_WAIT: Duration = Duration::from_secs(2);
const TREE: &str = "message_index";
/// Records per sled batch when deleting, so a large purge does not build one huge batch.
const DELETE_CHUNK: usize = 64;
/// Keys per sled batch when clearing.
const CLEAR_CHUNK: usize = 4096;

/// One message to index, as the state machine applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub topic: String,
    /// The client-side unique id (`UNIQ_KEY`); empty means "not indexed by id".
    pub message_id: String,
    /// The message's keys, already split; empty strings are skipped.
    pub keys: Vec<String>,
    pub position: u64,
    pub size: u32,
    pub store_timestamp_ms: i64,
    pub queue_id: i32,
    pub queue_offset: i64,
}

/// Where an indexed message lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexHit {
    pub topic: String,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub position: u64,
    pub size: u32,
    pub store_timestamp_ms: i64,
    pub message_id: String,
}

/// The index. Cheap to clone (sled handles are reference counted); clones share the watermark.
#[derive(Clone)]
pub struct MessageIndex {
    db: sled::Db,
    tree: sled::Tree,
    /// The highest applied index written so far, mirrored from key `W`. Its lock also serialises
    /// writers, so the watermark never moves backwards and `clear` cannot interleave an insert.
    watermark: Arc<Mutex<Option<u64>>>,
}

impl MessageIndex {
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .mode(sled::Mode::LowSpace);
        let db = open_db(&config, dir)?;
        let tree = db.open_tree(TREE)?;
        let watermark = match tree.get(layout::WATERMARK)? {
            Some(v) => Some(decode_watermark(&v)?),
            None => None,
        };
        Ok(MessageIndex {
            db,
            tree,
            watermark: Arc::new(Mutex::new(watermark)),
        })
    }

    /// Indexes `entries`, all applied at or below Raft log index `applied_index`, in one atomic
    /// sled batch that also raises the watermark. Idempotent: re-inserting an entry rewrites the
    /// same keys. An entry whose strings are too long fails the whole batch before any write.
    pub fn insert_batch(
        &self,
        entries: &[IndexEntry],
        applied_index: u64,
    ) -> Result<(), IndexError> {
        entries.iter().try_for_each(layout::check)?;
        let mut batch = sled::Batch::default();
        let mut indexed = Vec::with_capacity(entries.len());
        for e in entries {
            let mut any = false;
            for (key, text) in layout::pointer_keys(
                &e.topic,
                &e.message_id,
                &e.keys,
                e.store_timestamp_ms,
                e.position,
            ) {
                batch.insert(key, layout::encode_hit(e, text));
                any = true;
            }
            if any {
                indexed.push(e);
            }
        }
        for run in indexed.chunks(layout::JOURNAL_CHUNK) {
            let (first, last) = position_span(run.iter().map(|e| e.position));
            let record = layout::encode_journal(run.iter().map(|&e| e.into()));
            batch.insert(&layout::journal_key(first, last)[..], record);
        }
        let mut watermark = lock(&self.watermark);
        let raised = watermark.map_or(applied_index, |w| w.max(applied_index));
        batch.insert(layout::WATERMARK, &raised.to_be_bytes()[..]);
        self.tree.apply_batch(batch)?;
        *watermark = Some(raised);
        Ok(())
    }

    /// Every entry applied at or below this Raft log index is indexed (durably, once
    /// [`flush`](Self::flush) has returned). `None` before the first batch or after `clear`.
    pub fn indexed_upto(&self) -> Option<u64> {
        *lock(&self.watermark)
    }

    pub fn flush(&self) -> Result<(), IndexError> {
        self.db.flush()?;
        Ok(())
    }

    /// The messages with this id, in every topic (retry and DLQ copies keep the id) or only in
    /// `topic`, ordered by position.
    pub fn by_message_id(
        &self,
        topic: Option<&str>,
        message_id: &str,
    ) -> Result<Vec<IndexHit>, IndexError> {
        let Some(prefix) = layout::id_prefix(message_id) else {
            return Ok(Vec::new());
        };
        let mut hits = Vec::new();
        for item in self.tree.scan_prefix(&prefix) {
            let (key, value) = item?;
            // The length prefix makes every match exactly `prefix` + position.
            let Some(position) = layout::trailing_position(&key) else {
                continue;
            };
            let hit = layout::decode_hit(position, &value, None, Some(message_id))?;
            if topic.is_none_or(|t| t == hit.topic) {
                hits.push(hit);
            }
        }
        Ok(hits)
    }

    /// Up to `max` messages of `topic` carrying `key` and stored within
    /// `begin_ts..=end_ts` (ms), newest first, as RocketMQ's `queryMessage` returns them.
    pub fn by_key(
        &self,
        topic: &str,
        key: &str,
        max: usize,
        begin_ts: i64,
        end_ts: i64,
    ) -> Result<Vec<IndexHit>, IndexError> {
        let Some(prefix) = layout::key_prefix(topic, key) else {
            return Ok(Vec::new());
        };
        if max == 0 || begin_ts > end_ts || key.is_empty() {
            return Ok(Vec::new());
        }
        let lo = layout::with_ts_pos(prefix.clone(), begin_ts, 0);
        let hi = layout::with_ts_pos(prefix, end_ts, u64::MAX);
        let mut hits = Vec::new();
        for item in self.tree.range(lo..=hi).rev().take(max) {
            let (k, value) = item?;
            let Some(position) = layout::trailing_position(&k) else {
                continue;
            };
            hits.push(layout::decode_hit(position, &value, Some(topic), None)?);
        }
        Ok(hits)
    }

    /// Drops every hit stored below CommitLog `position` (its segments were purged) and returns
    /// how many messages that was. Does not touch the watermark.
    pub fn remove_below(&self, position: u64) -> Result<u64, IndexError> {
        let (lo, hi) = (layout::journal_key(0, 0), layout::journal_key(position, 0));
        // Journal records come in order of their first position, and a re-indexed run repeats
        // positions an earlier record already covered: count a position only past the highest
        // one counted, which needs no memory per message.
        let (mut removed, mut counted_upto) = (0u64, None::<u64>);
        loop {
            let mut batch = sled::Batch::default();
            let mut records = 0;
            for item in self.tree.range(lo..hi).take(DELETE_CHUNK) {
                let (key, value) = item?;
                records += 1;
                let first = layout::trailing_position(&key[..9]).unwrap_or(0);
                let entries = match layout::decode_journal(first, &value) {
                    Ok(entries) => entries,
                    Err(e) => {
                        // Its hits can no longer be found to delete; they stay until the next
                        // rebuild. Dropping the record keeps retention from stalling on it.
                        tracing::warn!(error = %e, "dropping a corrupt index journal record");
                        batch.remove(key);
                        continue;
                    }
                };
                let (mut gone, kept): (Vec<_>, Vec<_>) =
                    entries.into_iter().partition(|e| e.position < position);
                gone.sort_unstable_by_key(|e| e.position);
                for e in &gone {
                    e.pointer_keys().for_each(|k| batch.remove(k));
                    if counted_upto.is_none_or(|c| e.position > c) {
                        removed += 1;
                        counted_upto = Some(e.position);
                    }
                }
                batch.remove(key);
                if !kept.is_empty() {
                    // The rest of a run that straddles `position` moves to a key at or above
                    // it, so the next call does not scan it again.
                    let (first, last) = position_span(kept.iter().map(|e| e.position));
                    let record = layout::encode_journal(kept.iter().map(Into::into));
                    batch.insert(&layout::journal_key(first, last)[..], record);
                }
            }
            if records == 0 {
                return Ok(removed);
            }
            self.tree.apply_batch(batch)?;
        }
    }

    /// Empties the index for a full rebuild. The watermark goes first, so a crash half way
    /// leaves an index that claims nothing.
    pub fn clear(&self) -> Result<(), IndexError> {
        let mut watermark = lock(&self.watermark);
        self.tree.remove(layout::WATERMARK)?;
        *watermark = None;
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for key in self.tree.iter().keys().take(CLEAR_CHUNK) {
                batch.remove(key?);
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
            self.tree.apply_batch(batch)?;
        }
    }
}

/// The lowest and highest of some positions (a run is in log order, but need not be).
fn position_span(positions: impl Iterator<Item = u64>) -> (u64, u64) {
    positions.fold((u64::MAX, 0), |(lo, hi), p| (lo.min(p), hi.max(p)))
}

/// Opens sled, riding out the lock of a handle to the same directory that was just dropped.
///
/// sled 0.34 releases its directory lock only when its flusher thread exits, some time after the
/// last `Db` is dropped (sled #1234, #1289), so an in-process restart can briefly see
/// "could not acquire lock". A lock held by a live process is held far longer than
/// [`LOCK_WAIT`], so a real double open still fails.
fn open_db(config: &sled::Config, dir: &Path) -> Result<sled::Db, IndexError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        // sled 0.34 can panic on a corrupt store (sled #1533). The index is disposable, so turn
        // that into an error the broker answers by deleting the directory and rebuilding.
        match std::panic::catch_unwind(AssertUnwindSafe(|| config.open())) {
            Ok(Ok(db)) => return Ok(db),
            Ok(Err(source)) if is_lock_contention(&source) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(Err(source)) => {
                return Err(IndexError::Open {
                    path: dir.to_owned(),
                    source,
                });
            }
            Err(_) => {
                return Err(IndexError::OpenPanicked {
                    path: dir.to_owned(),
                });
            }
        }
    }
}

fn is_lock_contention(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock"))
}

fn decode_watermark(v: &[u8]) -> Result<u64, IndexError> {
    let mut b = [0u8; 8];
    if v.len() != 8 {
        return Err(IndexError::Corrupt {
            position: 0,
            reason: "the watermark is not 8 bytes",
        });
    }
    b.copy_from_slice(v);
    Ok(u64::from_be_bytes(b))
}

/// A panic in another writer leaves nothing half done here: the batch was atomic.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
