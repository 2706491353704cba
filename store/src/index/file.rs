//! One index file ([`IndexFile`]) and what readers see of it ([`FileView`]).
//!
//! The fixed part of a file (header, slot table, entries) is mapped read-only once: a chain
//! walk is a few loads per hop instead of a `pread` each, which matters for a key with a long
//! chain. Writes never go through the mapping: they are `pwrite`s, which the shared mapping
//! sees as soon as they return, and which fail with an error (not SIGBUS) on a full disk.
//! Records are read with `pread`, only for candidates whose hash matched.
//!
//! A reader never reads a byte that may be being written: in the active file it follows only
//! published entries (see [`LiveSlots`]); a sealed file is never written again.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use memmap2::{Mmap, MmapOptions};

use super::IndexError;
use super::format::{ENTRY_LEN, Entry, Geometry, HEADER_LEN, Header, Stats, get_u32};
use super::record::{self, Record};

pub(super) fn file_name(seq: u64) -> String {
    format!("{seq:020}.idx")
}

/// The sequence number of an index file name, `None` for any other name.
pub(super) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".idx")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
}

pub(super) struct IndexFile {
    pub seq: u64,
    pub path: PathBuf,
    pub geo: Geometry,
    file: File,
    /// Header, slot table and entries; the heap grows past it and is not mapped.
    map: Mmap,
}

impl IndexFile {
    /// Creates (or truncates a leftover of) file `seq` with an empty, unsealed header. Nothing
    /// is synced: the next flush syncs the file and the directory before the meta names it.
    pub fn create(dir: &Path, seq: u64, geo: Geometry) -> Result<IndexFile, IndexError> {
        let path = dir.join(file_name(seq));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(IndexError::io("create", &path))?;
        file.set_len(geo.heap_start()).map_err(IndexError::io("set_len", &path))?;
        let header = Header { seq, geo, sealed: false, stats: Stats::EMPTY };
        file.write_all_at(&header.encode(), 0).map_err(IndexError::io("write", &path))?;
        let map = map(&file, &path, geo)?;
        Ok(IndexFile { seq, path, geo, file, map })
    }

    /// Opens file `seq` and checks its header: magic, CRC, sequence number, and a fixed part
    /// that the file is long enough to hold.
    pub fn open(dir: &Path, seq: u64) -> Result<(IndexFile, Header), IndexError> {
        let path = dir.join(file_name(seq));
        let file = OpenOptions::new().read(true).write(true).open(&path).map_err(IndexError::io("open", &path))?;
        let len = file.metadata().map_err(IndexError::io("stat", &path))?.len();
        let mut b = [0u8; HEADER_LEN];
        if len < HEADER_LEN as u64 {
            return Err(IndexError::corrupt(path, 0, "shorter than a header"));
        }
        file.read_exact_at(&mut b, 0).map_err(IndexError::io("read", &path))?;
        let header = Header::decode(&b).ok_or_else(|| IndexError::corrupt(&path, 0, "bad header magic or CRC"))?;
        let geo = header.geo;
        if header.seq != seq || geo.slots == 0 || geo.capacity == 0 {
            return Err(IndexError::corrupt(path, 0, "header does not match the file name or is empty"));
        }
        if len < geo.heap_start() {
            return Err(IndexError::corrupt(path, len, "shorter than its slot table and entries"));
        }
        let map = map(&file, &path, geo)?;
        Ok((IndexFile { seq, path, geo, file, map }, header))
    }

    /// Checks that `stats` (from the header or the meta) fit this file as it is on disk.
    pub fn check_holds(&self, stats: &Stats) -> Result<(), IndexError> {
        let len = self.file.metadata().map_err(IndexError::io("stat", &self.path))?.len();
        if stats.entries > self.geo.capacity || stats.messages > stats.entries {
            return Err(IndexError::corrupt(&self.path, 0, "more entries than the file holds"));
        }
        if len < self.geo.heap_start() + u64::from(stats.heap_len) {
            return Err(IndexError::corrupt(&self.path, len, "shorter than its committed records"));
        }
        Ok(())
    }

    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), IndexError> {
        self.file.write_all_at(buf, offset).map_err(IndexError::io("write", &self.path))
    }

    pub fn sync(&self) -> Result<(), IndexError> {
        self.file.sync_data().map_err(IndexError::io("fdatasync", &self.path))
    }

    /// Entry `n` (1-based), which the caller knows was written.
    pub fn entry(&self, n: u32) -> Result<Entry, IndexError> {
        let at = self.geo.entry_offset(n);
        let b = &self.map[at as usize..at as usize + ENTRY_LEN];
        Entry::decode(b).ok_or_else(|| IndexError::corrupt(&self.path, at, "entry fails its CRC"))
    }

    /// The slot as last written to the file (by a seal or a flush).
    pub fn mapped_slot(&self, slot: usize) -> u32 {
        get_u32(&self.map, self.geo.slot_offset(slot) as usize)
    }

    /// Reads the record at heap offset `offset` into `buf`.
    pub fn record<'b>(&self, offset: u32, buf: &'b mut Vec<u8>) -> Result<Record<'b>, IndexError> {
        let at = self.geo.heap_start() + u64::from(offset);
        let corrupt = || IndexError::corrupt(&self.path, at, "bad message record");
        buf.resize(8, 0);
        self.file.read_exact_at(buf, at).map_err(IndexError::io("read", &self.path))?;
        let len = get_u32(buf, 0) as usize;
        if !(record::FIXED..=record::MAX_RECORD).contains(&len) {
            return Err(corrupt());
        }
        buf.resize(len, 0);
        self.file.read_exact_at(&mut buf[8..], at + 8).map_err(IndexError::io("read", &self.path))?;
        Record::parse(buf).ok_or_else(corrupt)
    }
}

fn map(file: &File, path: &Path, geo: Geometry) -> Result<Mmap, IndexError> {
    let len = usize::try_from(geo.heap_start()).map_err(|_| IndexError::Config("index file too large to map"))?;
    // SAFETY: the mapping is read-only and the index never shrinks its files (it only unlinks
    // them, which keeps the mapping valid); the directory lock keeps other index instances
    // out. Bytes change under the mapping only where no reader looks (see the module docs).
    unsafe { MmapOptions::new().len(len).map(file) }.map_err(IndexError::io("mmap", path))
}

/// The slot table and counts of the file being written, as readers may see them.
///
/// The writer stores `entries` (Release) and then the changed slots (Release), after the
/// `pwrite` of the entries and records returned. A reader loads a slot (Acquire) and then
/// `entries` (Acquire), so every entry it can reach from the slot is written and counted.
pub(super) struct LiveSlots {
    pub slots: Box<[AtomicU32]>,
    pub entries: AtomicU32,
    pub min_ts: AtomicI64,
    pub max_ts: AtomicI64,
}

impl LiveSlots {
    pub fn new(slots: &[u32], stats: &Stats) -> LiveSlots {
        LiveSlots {
            slots: slots.iter().map(|&s| AtomicU32::new(s)).collect(),
            entries: AtomicU32::new(stats.entries),
            min_ts: AtomicI64::new(stats.min_ts),
            max_ts: AtomicI64::new(stats.max_ts),
        }
    }
}

pub(super) enum FileState {
    Sealed(Stats),
    Live(Arc<LiveSlots>),
}

/// One file as readers see it. The writer replaces a file's view when it seals it; a reader
/// holding the old (live) view keeps using it, which stays correct because nothing writes to
/// a sealed file's slots again.
pub(super) struct FileView {
    pub file: Arc<IndexFile>,
    pub state: FileState,
}

impl FileView {
    pub fn is_live(&self) -> bool {
        matches!(self.state, FileState::Live(_))
    }

    pub fn entries(&self) -> u32 {
        match &self.state {
            FileState::Sealed(s) => s.entries,
            FileState::Live(l) => l.entries.load(Ordering::Acquire),
        }
    }

    /// The range of `store_timestamp_ms` in the file; `min > max` when empty.
    pub fn ts_range(&self) -> (i64, i64) {
        match &self.state {
            FileState::Sealed(s) => (s.min_ts, s.max_ts),
            FileState::Live(l) => (l.min_ts.load(Ordering::Acquire), l.max_ts.load(Ordering::Acquire)),
        }
    }

    /// The entries with this hash, newest first.
    pub fn chain(&self, hash: u64) -> Chain<'_> {
        let slot = self.file.geo.slot_of(hash);
        let head = match &self.state {
            FileState::Sealed(_) => self.file.mapped_slot(slot),
            FileState::Live(l) => l.slots[slot].load(Ordering::Acquire),
        };
        Chain { file: &self.file, hash, next: head, bound: self.entries() }
    }

    /// The number of messages in this file stored below CommitLog `position`.
    pub fn messages_below(&self, position: u64) -> Result<u32, IndexError> {
        // Entries are in position order: binary search for the first at or above `position`.
        let (mut lo, mut hi) = (1u32, self.entries() + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.file.entry(mid)?.position < position { lo = mid + 1 } else { hi = mid }
        }
        if lo == 1 { Ok(0) } else { Ok(self.file.entry(lo - 1)?.message) }
    }

    /// The highest position in the file, `None` if it is empty.
    pub fn max_position(&self) -> Result<Option<u64>, IndexError> {
        match self.entries() {
            0 => Ok(None),
            n => Ok(Some(self.file.entry(n)?.position)),
        }
    }
}

/// Walks one slot's chain, yielding the entries whose hash is `hash`.
pub(super) struct Chain<'a> {
    file: &'a IndexFile,
    hash: u64,
    next: u32,
    /// Entries past this were not written when the walk began; a link to one is corruption.
    bound: u32,
}

impl Iterator for Chain<'_> {
    type Item = Result<Entry, IndexError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.next != 0 {
            let n = self.next;
            if n > self.bound {
                self.next = 0;
                let at = self.file.geo.entry_offset(n);
                return Some(Err(IndexError::corrupt(&self.file.path, at, "chain links past the last entry")));
            }
            let entry = match self.file.entry(n) {
                Ok(e) => e,
                Err(e) => {
                    self.next = 0;
                    return Some(Err(e));
                }
            };
            if entry.prev >= n {
                // Links always point back; one that does not would loop.
                self.next = 0;
                let at = self.file.geo.entry_offset(n);
                return Some(Err(IndexError::corrupt(&self.file.path, at, "chain link points forward")));
            }
            self.next = entry.prev;
            if entry.hash == self.hash {
                return Some(Ok(entry));
            }
        }
        None
    }
}
