//! Reads: entries for openraft, raw bytes for consumers, prefix CRCs for replica checks.
//!
//! Everything is served from the segment mappings: the page cache *is* the cache, so there is
//! no separate hot-entry cache to keep coherent with truncation. A read takes the table's read
//! lock only to copy out locations and refcounted slices; decoding a Normal entry is a header
//! check plus a `Bytes::slice` (no copy, no allocation). The header is re-checked against the
//! table on every read, so a table/disk mismatch surfaces as an error rather than a wrong or
//! silently missing entry (a short read would hide appended entries from openraft). CRCs are
//! verified by recovery, not on every read.

use std::ops::{Bound, RangeBounds};

use bytes::Bytes;
use raftmq_raft::Entry;

use super::Inner;
use super::error::StoreError;
use super::record;

/// `[start, end)` of a `RangeBounds<u64>`.
pub(crate) fn index_bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl Inner {
    /// Entries with index in `[start, end)` that the log holds. With `byte_cap`, stops before
    /// the entry that would take the total record bytes past the cap, but always returns at
    /// least one entry if any is in range.
    pub(crate) fn read_entries(&self, start: u64, end: u64, byte_cap: Option<usize>) -> Result<Vec<Entry>, StoreError> {
        let t = self.read_table();
        let Some(last) = t.last_index() else { return Ok(Vec::new()) };
        let from = start.max(t.first_index);
        let to = end.min(last + 1);
        if from >= to {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity((to - from).min(1024) as usize);
        let mut bytes = 0usize;
        for index in from..to {
            let Some(loc) = t.loc(index) else { break };
            if let Some(cap) = byte_cap
                && !out.is_empty()
                && bytes + loc.len as usize > cap
            {
                break;
            }
            let seg = t.segment_for(loc.pos).ok_or_else(|| {
                StoreError::corrupt(&self.dir, format!("no segment for entry {index} at {}", loc.pos))
            })?;
            let entry = record::decode_entry(&seg.data, seg.offset(loc.pos), loc.term, index)
                .map_err(|why| StoreError::corrupt(&seg.path, why))?;
            out.push(entry);
            bytes += loc.len as usize;
        }
        Ok(out)
    }

    pub(crate) fn read_bytes(&self, pos: u64, len: usize) -> Result<Bytes, StoreError> {
        let t = self.read_table();
        let end = pos.checked_add(len as u64);
        let out_of_range = || StoreError::OutOfRange { what: format!("bytes [{pos}, +{len})") };
        if pos < t.start_pos || end.is_none_or(|e| e > t.end_pos) {
            return Err(out_of_range());
        }
        let seg = t.segment_for(pos).ok_or_else(out_of_range)?;
        if pos + len as u64 > seg.end() {
            return Err(StoreError::OutOfRange { what: format!("bytes [{pos}, +{len}) span two segments") });
        }
        let off = seg.offset(pos);
        Ok(seg.data.slice(off..off + len))
    }

    pub(crate) fn prefix_crc(&self, upto_index: u64) -> Result<(u64, u32), StoreError> {
        // Copy out refcounted slices under the lock; CRC the (possibly large) range without it.
        let slices: Vec<Bytes> = {
            let t = self.read_table();
            let loc = t.loc(upto_index).ok_or(StoreError::OutOfRange { what: format!("entry {upto_index}") })?;
            let (from, to) = (t.start_pos, loc.pos + u64::from(loc.len));
            t.segments
                .iter()
                .filter_map(|seg| {
                    let (a, b) = (from.max(seg.base), to.min(seg.end()));
                    (a < b).then(|| seg.data.slice(seg.offset(a)..seg.offset(b)))
                })
                .collect()
        };
        let mut crc = 0u32;
        let mut n = 0u64;
        for s in &slices {
            crc = crc32c::crc32c_append(crc, s);
            n += s.len() as u64;
        }
        Ok((n, crc))
    }
}
