//! One consume queue: the segment files of a (topic, queue id) and the writer's published end.
//!
//! Segment `<base:020>` holds units `base .. base + units_per_file`; unit `o` sits at byte
//! `(o - base) * 28`. Only the newest segment (the tail) is kept open; older ones are opened per
//! read, which keeps one descriptor per queue however long the retention.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::unit::{UNIT_SIZE, decode_units};
use super::{CqError, CqUnit};

mod recovery;

const UNIT: i64 = UNIT_SIZE as i64;

pub(crate) struct Queue {
    topic: String,
    queue_id: i32,
    dir: PathBuf,
    units_per_file: i64,
    /// The next offset to be written. Stored with `Release` only after the unit's pwrite has
    /// returned, and loaded with `Acquire` by readers before their pread: a reader never asks for
    /// a unit whose write has not completed, so it cannot see a torn one.
    next: AtomicI64,
    /// The first retained offset (the base of the oldest segment).
    min: AtomicI64,
    writer: Mutex<Writer>,
    /// Changed by the writer when it rolls to a new segment, and by truncate/trim; readers hold
    /// the read lock across their preads so a segment cannot be shortened or unlinked under them.
    segments: RwLock<Segments>,
}

/// State only the (single) writer and `flush` touch.
struct Writer {
    /// Segments written or shortened since the last flush, by base offset.
    dirty: Vec<(i64, Arc<File>)>,
    /// Entries of the queue directory were created or removed since the last flush.
    dir_dirty: bool,
}

#[derive(Default)]
struct Segments {
    bases: BTreeSet<i64>,
    /// The newest segment, open read-write.
    tail: Option<(i64, Arc<File>)>,
}

impl Queue {
    /// A queue with no units whose directory the caller has just created.
    pub(crate) fn new_empty(topic: &str, queue_id: i32, dir: PathBuf, units_per_file: i64) -> Self {
        Queue {
            topic: topic.to_owned(),
            queue_id,
            dir,
            units_per_file,
            next: AtomicI64::new(0),
            min: AtomicI64::new(0),
            writer: Mutex::new(Writer { dirty: Vec::new(), dir_dirty: true }),
            segments: RwLock::new(Segments::default()),
        }
    }

    pub(crate) fn min(&self) -> i64 {
        self.min.load(Ordering::Acquire)
    }

    pub(crate) fn next(&self) -> i64 {
        self.next.load(Ordering::Acquire)
    }

    pub(crate) fn append(&self, unit: &CqUnit) -> Result<i64, CqError> {
        let mut w = lock(&self.writer);
        self.append_locked(&mut w, unit)
    }

    /// Appends `units` in order, one `pwrite` per file touched; returns the
    /// first offset. Readers see the new units only once all are written.
    pub(crate) fn append_many(&self, units: &[CqUnit]) -> Result<i64, CqError> {
        let mut w = lock(&self.writer);
        let first = self.next.load(Ordering::Relaxed);
        let mut offset = first;
        let mut rest = units;
        let mut buf = Vec::with_capacity(units.len().min(4096) * UNIT as usize);
        while !rest.is_empty() {
            let (base, file) = self.tail_for(&mut w, offset)?;
            let room = (base + self.units_per_file - offset) as usize;
            let (now, later) = rest.split_at(room.min(rest.len()));
            buf.clear();
            for u in now {
                buf.extend_from_slice(&u.to_bytes());
            }
            file.write_all_at(&buf, to_u64((offset - base) * UNIT))
                .map_err(|e| CqError::io(self.segment_path(base), e))?;
            mark_dirty(&mut w, base, &file);
            offset += now.len() as i64;
            rest = later;
        }
        self.next.store(offset, Ordering::Release);
        Ok(first)
    }

    pub(crate) fn append_at(&self, offset: i64, unit: &CqUnit) -> Result<(), CqError> {
        let mut w = lock(&self.writer);
        let next = self.next();
        if offset == next {
            return self.append_locked(&mut w, unit).map(|_| ());
        }
        if offset > next {
            return Err(CqError::Gap { topic: self.topic.clone(), queue_id: self.queue_id, offset, next });
        }
        let segs = read(&self.segments);
        let min = self.min();
        if offset < min {
            return Err(CqError::Trimmed { topic: self.topic.clone(), queue_id: self.queue_id, offset, min });
        }
        let existing = SegmentReader::new(self, &segs).unit(offset)?;
        if existing == *unit {
            return Ok(());
        }
        Err(CqError::Conflict {
            topic: self.topic.clone(),
            queue_id: self.queue_id,
            offset,
            existing: Box::new(existing),
            new: Box::new(*unit),
        })
    }

    fn append_locked(&self, w: &mut Writer, unit: &CqUnit) -> Result<i64, CqError> {
        // Only the writer moves `next`, and it holds the writer lock.
        let offset = self.next.load(Ordering::Relaxed);
        let (base, file) = self.tail_for(w, offset)?;
        file.write_all_at(&unit.to_bytes(), to_u64((offset - base) * UNIT))
            .map_err(|e| CqError::io(self.segment_path(base), e))?;
        mark_dirty(w, base, &file);
        self.next.store(offset + 1, Ordering::Release);
        Ok(offset)
    }

    /// The segment that `offset` (the next offset) goes into, creating it at a file boundary.
    fn tail_for(&self, w: &mut Writer, offset: i64) -> Result<(i64, Arc<File>), CqError> {
        if let Some((base, file)) = &read(&self.segments).tail
            && offset < base + self.units_per_file
        {
            return Ok((*base, Arc::clone(file)));
        }
        // A new segment starts exactly at the next offset: segments are contiguous (recovery
        // relies on it), and a queue whose first segment is not at a multiple of
        // `units_per_file` (after `trim_below` emptied it, or `reset_to`) has unaligned bases.
        let base = offset;
        let file = Arc::new(self.create_segment(base)?);
        let mut segs = write(&self.segments);
        segs.bases.insert(base);
        segs.tail = Some((base, Arc::clone(&file)));
        w.dir_dirty = true;
        Ok((base, file))
    }

    fn create_segment(&self, base: i64) -> Result<File, CqError> {
        let path = self.segment_path(base);
        // No segment file exists at or past the next offset (truncate and recovery delete them),
        // so truncating here only ever discards a stray file.
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| CqError::io(path, e))
    }

    pub(crate) fn read(&self, offset: i64, max_units: usize) -> Result<Vec<(i64, CqUnit)>, CqError> {
        let segs = read(&self.segments);
        let start = offset.max(self.min());
        let want = i64::try_from(max_units).unwrap_or(i64::MAX);
        let end = start.saturating_add(want).min(self.next());
        if start >= end {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0));
        let mut reader = SegmentReader::new(self, &segs);
        let mut cur = start;
        while cur < end {
            let (base, file) = reader.segment(cur)?;
            let stop = end.min(base + self.units_per_file);
            let mut buf = vec![0u8; usize::try_from((stop - cur) * UNIT).unwrap_or(0)];
            file.read_exact_at(&mut buf, to_u64((cur - base) * UNIT))
                .map_err(|e| CqError::io(self.segment_path(base), e))?;
            out.extend((cur..).zip(decode_units(&buf)));
            cur = stop;
        }
        Ok(out)
    }

    /// Lower bound: the first offset whose store time is `>= ts_ms`, or `next` if none.
    pub(crate) fn offset_for_timestamp(&self, ts_ms: i64) -> Result<i64, CqError> {
        let segs = read(&self.segments);
        let (mut lo, mut hi) = (self.min(), self.next());
        let mut reader = SegmentReader::new(self, &segs);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if reader.unit(mid)?.store_timestamp_ms < ts_ms {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    pub(crate) fn truncate_to(&self, next_offset: i64) -> Result<(), CqError> {
        let mut w = lock(&self.writer);
        let mut segs = write(&self.segments);
        let (min, next) = (self.min(), self.next());
        if next_offset == next {
            return Ok(());
        }
        if next_offset > next || next_offset < min {
            return Err(CqError::TruncateOutOfRange {
                topic: self.topic.clone(),
                queue_id: self.queue_id,
                next_offset,
                min,
                next,
            });
        }
        self.next.store(next_offset, Ordering::Release);
        let doomed: Vec<i64> = segs.bases.range(next_offset + 1..).copied().collect();
        for base in doomed {
            remove_file(&self.segment_path(base))?;
            segs.bases.remove(&base);
            w.dir_dirty = true;
        }
        // min <= next_offset < next, so some segment holds next_offset. A segment based exactly
        // at next_offset is kept empty: it records `next` (and `min`) across a restart.
        let Some(&base) = segs.bases.range(..=next_offset).next_back() else {
            return Err(missing_segment(&self.dir, next_offset));
        };
        let file = match &segs.tail {
            Some((b, f)) if *b == base => Arc::clone(f),
            _ => Arc::new(open_rw(&self.segment_path(base))?),
        };
        file.set_len(to_u64((next_offset - base) * UNIT)).map_err(|e| CqError::io(self.segment_path(base), e))?;
        mark_dirty(&mut w, base, &file);
        segs.tail = Some((base, file));
        Ok(())
    }

    /// Deletes the segments that lie entirely below `offset` (clamped to `next`) and returns the
    /// new min offset.
    pub(crate) fn trim_below(&self, offset: i64) -> Result<i64, CqError> {
        let mut w = lock(&self.writer);
        let mut segs = write(&self.segments);
        let next = self.next();
        let offset = offset.min(next);
        let upf = self.units_per_file;
        let doomed: Vec<i64> = segs.bases.iter().take_while(|&&b| b + upf <= offset).copied().collect();
        if doomed.len() == segs.bases.len() && !doomed.is_empty() {
            // Every segment is full and consumed-past: leave an empty segment at `next` so the
            // offsets survive a restart, and so the writer has somewhere to go.
            let file = Arc::new(self.create_segment(next)?);
            segs.bases.insert(next);
            mark_dirty(&mut w, next, &file);
            segs.tail = Some((next, file));
        }
        for base in &doomed {
            remove_file(&self.segment_path(*base))?;
            segs.bases.remove(base);
            w.dir_dirty = true;
        }
        let min = segs.bases.first().copied().unwrap_or(next);
        self.min.store(min, Ordering::Release);
        Ok(min)
    }

    /// Replaces the whole queue with an empty one whose next (and min) offset is `first` (a
    /// Raft snapshot install: the units below belong to entries this replica never applies).
    /// Every segment file goes; one new segment starts at `first`. Durable with the next flush.
    pub(crate) fn reset_to(&self, first: i64) -> Result<(), CqError> {
        let mut w = lock(&self.writer);
        let mut segs = write(&self.segments);
        for base in std::mem::take(&mut segs.bases) {
            remove_file(&self.segment_path(base))?;
        }
        let file = Arc::new(self.create_segment(first)?);
        segs.bases.insert(first);
        w.dirty.clear();
        mark_dirty(&mut w, first, &file);
        w.dir_dirty = true;
        segs.tail = Some((first, file));
        self.min.store(first, Ordering::Release);
        self.next.store(first, Ordering::Release);
        Ok(())
    }

    /// fdatasyncs every segment written since the last flush, then the directory if segments
    /// were created or removed. Units appended before the call are durable when it returns.
    pub(crate) fn flush(&self) -> Result<(), CqError> {
        let (dirty, dir_dirty) = {
            let mut w = lock(&self.writer);
            (std::mem::take(&mut w.dirty), std::mem::take(&mut w.dir_dirty))
        };
        for (base, file) in dirty {
            file.sync_data().map_err(|e| CqError::io(self.segment_path(base), e))?;
        }
        if dir_dirty {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn segment_path(&self, base: i64) -> PathBuf {
        self.dir.join(format!("{base:020}"))
    }

    fn name(&self) -> String {
        format!("{}/{}", self.topic, self.queue_id)
    }
}

/// Resolves offsets to segment files under a held `segments` read lock, keeping the last
/// segment it opened so a binary search or a long read opens each file once.
struct SegmentReader<'a> {
    queue: &'a Queue,
    segs: &'a Segments,
    opened: Option<(i64, Arc<File>)>,
}

impl<'a> SegmentReader<'a> {
    fn new(queue: &'a Queue, segs: &'a Segments) -> Self {
        SegmentReader { queue, segs, opened: None }
    }

    fn segment(&mut self, offset: i64) -> Result<(i64, Arc<File>), CqError> {
        let Some(&base) = self.segs.bases.range(..=offset).next_back() else {
            return Err(missing_segment(&self.queue.dir, offset));
        };
        for (b, f) in self.opened.iter().chain(self.segs.tail.iter()) {
            if *b == base {
                return Ok((base, Arc::clone(f)));
            }
        }
        let path = self.queue.segment_path(base);
        let file = Arc::new(File::open(&path).map_err(|e| CqError::io(path, e))?);
        self.opened = Some((base, Arc::clone(&file)));
        Ok((base, file))
    }

    fn unit(&mut self, offset: i64) -> Result<CqUnit, CqError> {
        let (base, file) = self.segment(offset)?;
        let mut b = [0u8; UNIT_SIZE];
        file.read_exact_at(&mut b, to_u64((offset - base) * UNIT))
            .map_err(|e| CqError::io(self.queue.segment_path(base), e))?;
        Ok(CqUnit::from_bytes(&b))
    }
}

fn mark_dirty(w: &mut Writer, base: i64, file: &Arc<File>) {
    if !w.dirty.iter().any(|(_, f)| Arc::ptr_eq(f, file)) {
        w.dirty.push((base, Arc::clone(file)));
    }
}

fn open_rw(path: &Path) -> Result<File, CqError> {
    OpenOptions::new().read(true).write(true).open(path).map_err(|e| CqError::io(path, e))
}

fn remove_file(path: &Path) -> Result<(), CqError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(CqError::io(path, e)),
        _ => Ok(()),
    }
}

/// fsyncs a directory so the entries created or removed in it survive a crash. A directory that
/// is gone (its topic was deleted) has nothing left to make durable.
pub(crate) fn sync_dir(path: &Path) -> Result<(), CqError> {
    match File::open(path) {
        Ok(dir) => dir.sync_all().map_err(|e| CqError::io(path, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CqError::io(path, e)),
    }
}

fn missing_segment(dir: &Path, offset: i64) -> CqError {
    CqError::io(dir, io::Error::new(io::ErrorKind::NotFound, format!("no segment file holds offset {offset}")))
}

/// Offsets and byte positions here are never negative.
fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

// A panic while a lock is held cannot leave a queue half updated in a way readers would trust:
// `next` is published last. So a poisoned lock is used as is.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
