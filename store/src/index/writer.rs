//! The single writer: builds a batch's entries and records in memory, writes each in one
//! `pwrite`, publishes them to readers, rolls files over, and prepares flushes.
//!
//! Per message the hot path hashes the id and keys, encodes fixed-size entries and one record
//! into reused buffers and updates the writer's own slot table: no allocation, no syscall.
//! A batch then costs two `pwrite`s (entries, records) per file it touches. The slot table
//! is written to the file only when a flush or a seal needs it, one `pwrite` per run of
//! changed 4 KiB chunks, so random slot updates never become random small writes.

use std::collections::HashSet;
use std::mem;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use super::file::{FileState, FileView, IndexFile, LiveSlots};
use super::format::{self, Entry, Header, Meta, Stats};
use super::{HashFn, IndexConfig, IndexEntry, IndexError, record, write_lock};

/// Slots per dirty-tracking chunk: 4 KiB of slot table.
const CHUNK: usize = 1024;

pub(super) struct Writer {
    pub dir: PathBuf,
    pub config: IndexConfig,
    pub hash: HashFn,
    pub active: Active,
    pub watermark: Option<u64>,
    /// The highest position indexed (or skipped for having no id and no keys). Inserts at or
    /// below it are re-deliveries after recovery and are ignored: that is the idempotence.
    pub max_position: Option<u64>,
    pub removed_below: u64,
    pub base_seq: u64,
    /// Set by a failed write or fsync (or a panic while writing): the files no longer match
    /// this state, so nothing more is written until a reopen or `clear`.
    pub poisoned: bool,
    /// Sealed files written since the last flush; it fsyncs them before the meta moves on.
    pub unsynced: Vec<Arc<IndexFile>>,
    pub active_unsynced: bool,
    /// Bytes appended to the active file since it was last synced: it is synced every
    /// [`crate::io::paced::SYNC_EVERY`] as it fills, so a flush never sends a burst to the disk
    /// (early syncs only make durable what the kernel could have written back anyway).
    written_unsynced: usize,
    /// A file was created since the last flush, so the directory needs an fsync.
    pub dir_dirty: bool,
    scratch: Scratch,
}

/// Buffers reused across batches.
#[derive(Default)]
struct Scratch {
    entries: Vec<u8>,
    records: Vec<u8>,
    /// Slots changed by the batch being built, to publish after its `pwrite`s.
    touched: Vec<u32>,
    /// Indices of one message's distinct non-empty keys.
    keys: Vec<u32>,
    slot_bytes: Vec<u8>,
}

/// The file being appended to.
pub(super) struct Active {
    pub file: Arc<IndexFile>,
    pub live: Arc<LiveSlots>,
    /// The writer's slot table: ahead of `live` while a batch is being built.
    slots: Vec<u32>,
    /// Bitset of [`CHUNK`]s of `slots` changed since they were last written to the file.
    dirty: Vec<u64>,
    /// What readers see and the next flush commits.
    pub stats: Stats,
    /// `stats` plus the batch being built.
    pending: Stats,
}

impl Active {
    pub fn fresh(file: Arc<IndexFile>) -> Active {
        let slots = vec![0; file.geo.slots as usize];
        Active::with_slots(file, slots, Stats::EMPTY, false)
    }

    /// Resumes appending to `file`, whose first `stats.entries` entries are committed.
    ///
    /// A crash during a flush or seal can leave slot values past the committed entries (the
    /// slot table was written, the meta was not). Such a slot has lost its link to the older
    /// committed entries of its chain, which only the entries can tell again, so the whole
    /// table is rebuilt from them: each entry becomes its slot's head, and its `prev` must be
    /// the head it replaces.
    pub fn recover(file: Arc<IndexFile>, stats: Stats) -> Result<Active, IndexError> {
        let n = file.geo.slots as usize;
        let mut slots: Vec<u32> = (0..n).map(|s| file.mapped_slot(s)).collect();
        let torn = slots.iter().any(|&v| v > stats.entries);
        if torn {
            tracing::info!(file = %file.path.display(), entries = stats.entries, "rebuilding a torn slot table");
            slots.fill(0);
            for i in 1..=stats.entries {
                let e = file.entry(i)?;
                let s = file.geo.slot_of(e.hash);
                if e.prev != slots[s] {
                    let at = file.geo.entry_offset(i);
                    return Err(IndexError::corrupt(&file.path, at, "entry does not link to its slot's previous head"));
                }
                slots[s] = i;
            }
        }
        Ok(Active::with_slots(file, slots, stats, torn))
    }

    fn with_slots(file: Arc<IndexFile>, slots: Vec<u32>, stats: Stats, all_dirty: bool) -> Active {
        let live = Arc::new(LiveSlots::new(&slots, &stats));
        let words = slots.len().div_ceil(CHUNK).div_ceil(64);
        let dirty = vec![if all_dirty { u64::MAX } else { 0 }; words];
        Active { file, live, slots, dirty, stats, pending: stats }
    }

    pub fn view(&self) -> FileView {
        FileView { file: self.file.clone(), state: FileState::Live(self.live.clone()) }
    }

    fn fits(&self, entries: u32, record: usize) -> bool {
        self.pending.entries + entries <= self.file.geo.capacity
            && self.pending.heap_len as usize + record <= u32::MAX as usize
    }

    fn push(&mut self, hash: u64, e: &IndexEntry, record: u32, scratch: &mut Scratch) {
        let n = self.pending.entries + 1;
        let slot = self.file.geo.slot_of(hash);
        let prev = mem::replace(&mut self.slots[slot], n);
        scratch.touched.push(slot as u32);
        let entry = Entry {
            hash,
            position: e.position,
            timestamp: e.store_timestamp_ms,
            record,
            message: self.pending.messages,
            prev,
        };
        entry.encode_into(&mut scratch.entries);
        self.pending.entries = n;
    }
}

impl Writer {
    pub fn new(dir: PathBuf, config: IndexConfig, hash: HashFn, active: Active, meta: &Meta) -> Writer {
        Writer {
            dir,
            config,
            hash,
            active,
            watermark: meta.watermark,
            max_position: meta.max_position,
            removed_below: meta.removed_below,
            base_seq: meta.base_seq,
            poisoned: false,
            unsynced: Vec::new(),
            active_unsynced: false,
            written_unsynced: 0,
            dir_dirty: false,
            scratch: Scratch::default(),
        }
    }

    /// Appends every entry above the highest position indexed. Any failure poisons.
    pub fn insert(&mut self, entries: &[IndexEntry], files: &RwLock<Vec<Arc<FileView>>>) -> Result<(), IndexError> {
        if self.poisoned {
            return Err(IndexError::Poisoned);
        }
        let result = self.append_all(entries, files);
        self.poisoned = result.is_err();
        result
    }

    fn append_all(&mut self, entries: &[IndexEntry], files: &RwLock<Vec<Arc<FileView>>>) -> Result<(), IndexError> {
        for e in entries {
            if self.max_position.is_some_and(|m| e.position <= m) {
                continue;
            }
            distinct_keys(&e.keys, &mut self.scratch.keys);
            let count = u32::from(!e.message_id.is_empty()) + self.scratch.keys.len() as u32;
            if count > 0 {
                let record = record::encoded_len(e, &self.scratch.keys);
                if !self.active.fits(count, record) {
                    self.commit()?;
                    self.roll_over(files)?;
                    if !self.active.fits(count, record) {
                        // `record::check` rules this out; writing on would overrun the entries.
                        return Err(IndexError::Config("a message does not fit an empty index file"));
                    }
                }
                self.append(e, record);
            }
            self.max_position = Some(e.position);
        }
        self.commit()
    }

    fn append(&mut self, e: &IndexEntry, record_len: usize) {
        let hash = self.hash;
        let Writer { active, scratch, .. } = self;
        let record = active.pending.heap_len;
        record::encode_into(e, &scratch.keys, &mut scratch.records);
        active.pending.messages += 1;
        if !e.message_id.is_empty() {
            active.push(hash(format::ID, "", &e.message_id), e, record, scratch);
        }
        for i in 0..scratch.keys.len() {
            let key = &e.keys[scratch.keys[i] as usize];
            active.push(hash(format::KEY, &e.topic, key), e, record, scratch);
        }
        let p = &mut active.pending;
        p.heap_len += record_len as u32;
        p.min_ts = p.min_ts.min(e.store_timestamp_ms);
        p.max_ts = p.max_ts.max(e.store_timestamp_ms);
    }

    /// Writes the batch built so far and publishes it to readers.
    fn commit(&mut self) -> Result<(), IndexError> {
        let Writer { active: a, scratch, .. } = self;
        if a.pending == a.stats {
            return Ok(());
        }
        let geo = a.file.geo;
        a.file.write_at(&scratch.records, geo.heap_start() + u64::from(a.stats.heap_len))?;
        a.file.write_at(&scratch.entries, geo.entry_offset(a.stats.entries + 1))?;
        self.written_unsynced += scratch.records.len() + scratch.entries.len();
        if self.written_unsynced >= crate::io::paced::SYNC_EVERY {
            a.file.sync()?;
            self.written_unsynced = 0;
        }
        // The count before the slots: see `LiveSlots`.
        a.live.min_ts.store(a.pending.min_ts, Ordering::Release);
        a.live.max_ts.store(a.pending.max_ts, Ordering::Release);
        a.live.entries.store(a.pending.entries, Ordering::Release);
        for &slot in &scratch.touched {
            let slot = slot as usize;
            a.live.slots[slot].store(a.slots[slot], Ordering::Release);
            let chunk = slot / CHUNK;
            a.dirty[chunk / 64] |= 1 << (chunk % 64);
        }
        a.stats = a.pending;
        scratch.touched.clear();
        scratch.entries.clear();
        scratch.records.clear();
        self.active_unsynced = true;
        Ok(())
    }

    /// Seals the active file (whole slot table and final stats written now, fsynced by the
    /// next flush before the meta names a later file) and starts the next one.
    fn roll_over(&mut self, files: &RwLock<Vec<Arc<FileView>>>) -> Result<(), IndexError> {
        self.write_dirty_slots()?;
        let old = &self.active;
        let header = Header { seq: old.file.seq, geo: old.file.geo, sealed: true, stats: old.stats };
        old.file.write_at(&header.encode(), 0)?;
        let file = Arc::new(IndexFile::create(&self.dir, old.file.seq + 1, self.config.geometry())?);
        let old = mem::replace(&mut self.active, Active::fresh(file));
        self.written_unsynced = 0;
        self.unsynced.push(old.file.clone());
        self.dir_dirty = true;
        self.active_unsynced = true;
        let sealed = Arc::new(FileView { file: old.file.clone(), state: FileState::Sealed(old.stats) });
        let mut list = write_lock(files);
        for view in list.iter_mut().filter(|v| v.file.seq == old.file.seq) {
            *view = sealed.clone();
        }
        list.push(Arc::new(self.active.view()));
        Ok(())
    }

    /// Writes the changed chunks of the active slot table, one `pwrite` per run of them.
    fn write_dirty_slots(&mut self) -> Result<(), IndexError> {
        let a = &mut self.active;
        let chunks = a.slots.len().div_ceil(CHUNK);
        let is_dirty = |c: usize| a.dirty[c / 64] & (1 << (c % 64)) != 0;
        let mut c = 0;
        while c < chunks {
            if !is_dirty(c) {
                c += 1;
                continue;
            }
            let start = c;
            while c < chunks && is_dirty(c) {
                c += 1;
            }
            let slots = &a.slots[start * CHUNK..(c * CHUNK).min(a.slots.len())];
            let bytes = &mut self.scratch.slot_bytes;
            bytes.clear();
            slots.iter().for_each(|s| bytes.extend_from_slice(&s.to_le_bytes()));
            a.file.write_at(bytes, a.file.geo.slot_offset(start * CHUNK))?;
        }
        a.dirty.fill(0);
        Ok(())
    }

    /// Writes what the page cache lacks and hands back what the flush must fsync and commit.
    pub fn prepare_flush(&mut self) -> Result<FlushPlan, IndexError> {
        if self.poisoned {
            return Err(IndexError::Poisoned);
        }
        if let Err(e) = self.write_dirty_slots() {
            self.poisoned = true;
            return Err(e);
        }
        let mut files = mem::take(&mut self.unsynced);
        if mem::take(&mut self.active_unsynced) {
            files.push(self.active.file.clone());
            self.written_unsynced = 0;
        }
        Ok(FlushPlan { files, sync_dir: mem::take(&mut self.dir_dirty), meta: self.meta() })
    }

    pub fn meta(&self) -> Meta {
        Meta {
            watermark: self.watermark,
            max_position: self.max_position,
            removed_below: self.removed_below,
            base_seq: self.base_seq,
            active_seq: self.active.file.seq,
            active: self.active.stats,
        }
    }
}

pub(super) struct FlushPlan {
    pub files: Vec<Arc<IndexFile>>,
    pub sync_dir: bool,
    pub meta: Meta,
}

/// The indices of the distinct non-empty keys: a repeated key would otherwise be a second
/// hit for the same message. Quadratic for the usual handful of keys (no allocation), hashed
/// for many.
fn distinct_keys(keys: &[String], out: &mut Vec<u32>) {
    out.clear();
    if keys.len() <= 16 {
        let fresh = |(i, k): &(usize, &String)| !k.is_empty() && !keys[..*i].contains(k);
        out.extend(keys.iter().enumerate().filter(fresh).map(|(i, _)| i as u32));
    } else {
        let mut seen: HashSet<&str> = HashSet::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            if !k.is_empty() && seen.insert(k) {
                out.push(i as u32);
            }
        }
    }
}
