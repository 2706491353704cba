//! Opening a queue directory after a restart or a crash.
//!
//! Segments are not fsynced per write, so a crash can leave a torn unit at the end of a
//! segment, zeroes where the file grew but the data never landed, or a later segment that
//! survived while the end of an earlier one did not. Everything past the first such hole is
//! dropped: the broker truncates to its checkpoint and re-applies the log anyway, and what it
//! flushed before the checkpoint is a prefix that recovery always keeps.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Queue, Segments, UNIT, lock, open_rw, remove_file, to_u64, write};
use crate::consume_queue::CqError;
use crate::consume_queue::unit::UNIT_SIZE;

impl Queue {
    /// Opens an existing queue directory, dropping whatever a crash left half written: a
    /// trailing partial unit, trailing all-zero units, and every segment after the first short
    /// or missing one (units must be contiguous).
    pub(crate) fn open(topic: &str, queue_id: i32, dir: PathBuf, units_per_file: i64) -> Result<Self, CqError> {
        let queue = Queue::new_empty(topic, queue_id, dir, units_per_file);
        let bases = queue.list_segments()?;
        let Some(&first) = bases.first() else {
            lock(&queue.writer).dir_dirty = false;
            return Ok(queue);
        };
        let mut segs = Segments::default();
        let mut next = first;
        let mut repaired = false;
        let mut end = bases.len();
        for (i, &base) in bases.iter().enumerate() {
            if base != next {
                tracing::warn!(queue = %queue.name(), base, expected = next, "gap in consume queue segments; dropping the rest");
                end = i;
                break;
            }
            let path = queue.segment_path(base);
            let file = open_rw(&path)?;
            let (units, cut) = queue.recover_segment(&file, &path)?;
            repaired |= cut;
            segs.bases.insert(base);
            segs.tail = Some((base, Arc::new(file)));
            next = base + units;
            if units < queue.units_per_file {
                end = i + 1;
                break;
            }
        }
        for &base in &bases[end..] {
            tracing::warn!(queue = %queue.name(), base, "dropping consume queue segment past the recovered end");
            remove_file(&queue.segment_path(base))?;
            repaired = true;
        }
        queue.min.store(first, Ordering::Release);
        queue.next.store(next, Ordering::Release);
        *write(&queue.segments) = segs;
        lock(&queue.writer).dir_dirty = repaired;
        Ok(queue)
    }

    /// Returns the number of valid units in a segment, cutting off a torn tail.
    fn recover_segment(&self, file: &File, path: &Path) -> Result<(i64, bool), CqError> {
        let len = file.metadata().map_err(|e| CqError::io(path, e))?.len();
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        if len > self.units_per_file * UNIT {
            return Err(CqError::InvalidConfig(format!(
                "{} holds {len} bytes, more than units_per_file = {} allows; \
                 the store was written with a different units_per_file",
                path.display(),
                self.units_per_file
            )));
        }
        let units = last_nonzero_unit(file, len / UNIT).map_err(|e| CqError::io(path, e))?;
        if units * UNIT == len {
            return Ok((units, false));
        }
        tracing::warn!(queue = %self.name(), path = %path.display(), len, units, "cutting a torn consume queue tail");
        file.set_len(to_u64(units * UNIT)).map_err(|e| CqError::io(path, e))?;
        Ok((units, true))
    }

    fn list_segments(&self) -> Result<Vec<i64>, CqError> {
        let rd = fs::read_dir(&self.dir).map_err(|e| CqError::io(&self.dir, e))?;
        let mut bases = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| CqError::io(&self.dir, e))?;
            let name = entry.file_name();
            let parsed = name
                .to_str()
                .filter(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<i64>().ok());
            match parsed {
                Some(base) => bases.push(base),
                None => {
                    tracing::warn!(dir = %self.dir.display(), ?name, "ignoring a stray file in a consume queue directory")
                }
            }
        }
        bases.sort_unstable();
        // Segments hold `units_per_file` units each from the first one's base (a multiple of it
        // unless retention emptied the queue or a snapshot install reset it).
        if let Some(&first) = bases.first()
            && let Some(base) = bases.iter().find(|&&b| (b - first) % self.units_per_file != 0)
        {
            return Err(CqError::InvalidConfig(format!(
                "segment {base} in {} is not a multiple of units_per_file = {} past the first segment ({first}); \
                 the store was written with a different units_per_file",
                self.dir.display(),
                self.units_per_file
            )));
        }
        Ok(bases)
    }
}

/// The number of units up to and including the last one that is not all zeroes. Reads backwards
/// in growing chunks: normally the last unit is valid and one 28-byte read settles it.
fn last_nonzero_unit(file: &File, units: i64) -> io::Result<i64> {
    let mut end = units;
    let mut chunk = 1;
    while end > 0 {
        let n = chunk.min(end);
        let start = end - n;
        let mut buf = vec![0u8; usize::try_from(n * UNIT).unwrap_or(0)];
        file.read_exact_at(&mut buf, to_u64(start * UNIT))?;
        if let Some(i) = buf.chunks_exact(UNIT_SIZE).rposition(|c| c.iter().any(|&b| b != 0)) {
            return Ok(start + i64::try_from(i).unwrap_or(0) + 1);
        }
        end = start;
        chunk = (chunk * 16).min(4096);
    }
    Ok(0)
}
