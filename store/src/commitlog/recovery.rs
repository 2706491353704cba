//! Recovery on open: rebuild the table from the segments and decide where the log ends.
//!
//! Segments are scanned in position order from the first retained position. Each record must
//! have a structurally valid header, fit in its segment, match its CRC, and (for entries)
//! have `index == prev + 1` and `term >= prev term`; a Pad must end exactly at the segment
//! end. The first record that fails, or the first all-zero header, ends the log.
//!
//! - If the log ends in the last non-empty segment, whatever follows is a torn or unsynced
//!   tail: it is dropped, and an invalid header there is zeroed so it stays dropped.
//! - If a later segment holds data, the damage is in the middle of the log, where a crash
//!   cannot put it. Dropping it would silently lose acknowledged entries, so open refuses.
//! - Trailing segments that start with a zero header (an unused preallocated spare) are
//!   removed; the allocator makes a new spare.
//!
//! Then the meta file is applied: entries up to `last_purged` leave the table (their records
//! may remain physically), a `base` decides where scanning starts, and a saved `committed`
//! past the recovered log is clamped (it can only be ahead after losing unsynced data in
//! `Durability::Async`; every index up to the clamp is still committed).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use raftmq_raft::LogId;

use super::config::CommitLogConfig;
use super::error::StoreError;
use super::meta::{META_FILE, MetaStore};
use super::record::{self, HEADER_LEN, HeaderCheck, RecordKind};
use super::segment::{Segment, parse_segment_name};
use super::table::{Loc, Table};
use super::writer::Writer;
use crate::io::IoBackend;

pub(crate) struct Recovered {
    pub meta: MetaStore,
    pub table: Table,
    pub writer: Writer,
}

/// Result of scanning the segments.
struct Scan {
    /// First position scanned, and the index expected there if the meta file says so.
    start: u64,
    expected: Option<u64>,
    first_index: Option<u64>,
    locs: VecDeque<Loc>,
    /// Index and term of the last record scanned (purged or not).
    last: Option<(u64, u64)>,
    end: u64,
    end_seg: usize,
    torn: Option<String>,
}

enum Verdict {
    End,
    Torn(String),
    Pad,
    Entry(record::RecordHeader),
}

pub(crate) fn recover(io: &Arc<dyn IoBackend>, dir: &Path, cfg: &CommitLogConfig) -> Result<Recovered, StoreError> {
    let seg_bytes = cfg.segment_bytes;
    let names = io.list_dir(dir).map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
    let mut dir_changed = false;
    for name in names.iter().filter(|n| n.ends_with(".tmp")) {
        // An interrupted segment or meta creation: never renamed into place, never used.
        io.remove(&dir.join(name)).map_err(|e| StoreError::io(format!("removing {name}"), e))?;
        dir_changed = true;
    }
    let meta = MetaStore::open(&**io, dir, names.iter().any(|n| n == META_FILE), seg_bytes)?;
    let ms = meta.state();

    let mut bases: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    bases.sort_unstable();
    for (i, &b) in bases.iter().enumerate() {
        if !b.is_multiple_of(seg_bytes) || (i > 0 && b != bases[i - 1] + seg_bytes) {
            return Err(StoreError::corrupt(
                dir,
                format!("segment bases {bases:?} are not contiguous multiples of {seg_bytes}"),
            ));
        }
    }
    let mut segments = Vec::with_capacity(bases.len().max(1));
    for b in bases {
        segments.push(Arc::new(Segment::open(&**io, dir, b, seg_bytes)?));
    }

    let (start, expected) = match (segments.first(), ms.base) {
        (Some(f), Some(b)) if (f.base..f.end()).contains(&b.position) => (b.position, Some(b.index)),
        (Some(f), Some(b)) if b.position < f.base => (f.base, None),
        (Some(f), Some(b)) => {
            return Err(StoreError::corrupt(&f.path, format!("segment lies below the base position {}", b.position)));
        }
        (Some(f), None) => (f.base, None),
        (None, base) => {
            let start = base.map_or(0, |b| b.position);
            segments.push(Arc::new(Segment::create(&**io, dir, start - start % seg_bytes, seg_bytes)?));
            (start, base.map(|b| b.index))
        }
    };

    let scan = scan(&segments, start, expected, ms.last_purged);
    if let Some(later) = segments[scan.end_seg + 1..].iter().find(|s| !s.starts_empty()) {
        let why = scan.torn.as_deref().unwrap_or("an all-zero header");
        return Err(StoreError::corrupt(
            &later.path,
            format!("the log ends at position {} ({why}) but this later segment holds data", scan.end),
        ));
    }
    for seg in segments.drain(scan.end_seg + 1..) {
        io.remove(&seg.path).map_err(|e| StoreError::io(format!("removing empty {}", seg.path.display()), e))?;
        dir_changed = true;
    }
    if dir_changed {
        io.sync_dir(dir).map_err(|e| StoreError::io("fsync of the log directory", e))?;
    }
    let active = segments[scan.end_seg].clone();
    if let Some(why) = &scan.torn {
        tracing::warn!(position = scan.end, reason = %why, "commitlog: dropping a torn tail");
        let n = (active.end() - scan.end).min(HEADER_LEN as u64) as usize;
        active
            .write_at_pos(&[0u8; HEADER_LEN][..n], scan.end)
            .and_then(|()| active.file.sync_data())
            .map_err(|e| StoreError::io("zeroing the torn tail", e))?;
    }

    build(meta, segments, scan, cfg, dir)
}

fn build(
    meta: MetaStore,
    segments: Vec<Arc<Segment>>,
    scan: Scan,
    cfg: &CommitLogConfig,
    dir: &Path,
) -> Result<Recovered, StoreError> {
    let ms = meta.state();
    let active = segments[scan.end_seg].clone();
    let base_index = scan.expected;
    let lp = ms.last_purged;
    let (mut locs, mut first) = (scan.locs, scan.first_index.unwrap_or(0));
    if let Some(lp) = lp {
        while !locs.is_empty() && first <= lp.index {
            locs.pop_front();
            first += 1;
        }
        if !locs.is_empty() && first > lp.index + 1 && base_index != Some(first) {
            return Err(StoreError::corrupt(dir, format!("hole: last purged is {lp} but the first entry is {first}")));
        }
    }
    let next_index = if locs.is_empty() {
        let candidates = [scan.last.map(|(i, _)| i + 1), lp.map(|l| l.index + 1), base_index];
        candidates.into_iter().flatten().max()
    } else {
        Some(first + locs.len() as u64)
    };
    if locs.is_empty() {
        first = next_index.unwrap_or(0);
    }
    let table = Table {
        segment_bytes: cfg.segment_bytes,
        segments: segments.into(),
        start_pos: scan.start,
        end_pos: scan.end,
        first_index: first,
        locs,
        last_purged: lp,
    };
    if let Some(c) = ms.committed {
        let last = table.last_log_id();
        if last.is_none_or(|l| l.index < c.index) {
            tracing::warn!(committed = %c, last = ?last, "saved committed is past the recovered log; clamping");
            meta.set_pending_committed(last);
        }
    }
    let last_term = scan.last.map(|(_, t)| t).max(lp.map(|l| l.leader_id.term)).unwrap_or(0);
    // Bytes past the end may be leftovers (a torn record, a truncated tail): not known zero.
    let writer = Writer::new(active.clone(), scan.end, active.end(), next_index, last_term);
    Ok(Recovered { meta, table, writer })
}

fn scan(segments: &[Arc<Segment>], start: u64, expected: Option<u64>, lp: Option<LogId>) -> Scan {
    let mut s = Scan {
        start,
        expected,
        first_index: None,
        locs: VecDeque::new(),
        last: None,
        end: start,
        end_seg: 0,
        torn: None,
    };
    let mut pos = start;
    for (i, seg) in segments.iter().enumerate() {
        pos = pos.max(seg.base);
        (s.end, s.end_seg) = (pos, i);
        while seg.end() - pos >= HEADER_LEN as u64 {
            match check(seg, pos, s.last, expected, lp) {
                Verdict::End => return s,
                Verdict::Torn(why) => {
                    s.torn = Some(why);
                    return s;
                }
                Verdict::Pad => pos = seg.end(),
                Verdict::Entry(h) => {
                    if s.last.is_some_and(|(i, _)| h.index != i + 1) {
                        // The purged-past-the-end jump: everything before is purged, and the
                        // table must stay contiguous.
                        s.locs.clear();
                        s.first_index = None;
                    }
                    s.first_index.get_or_insert(h.index);
                    s.locs.push_back(Loc { pos, term: h.term, len: h.len });
                    s.last = Some((h.index, h.term));
                    pos += u64::from(h.len);
                }
            }
            s.end = pos;
        }
    }
    s
}

fn check(seg: &Segment, pos: u64, prev: Option<(u64, u64)>, expected: Option<u64>, lp: Option<LogId>) -> Verdict {
    let off = seg.offset(pos);
    let remaining = seg.end() - pos;
    let h = match record::parse_header(&seg.data[off..off + HEADER_LEN]) {
        HeaderCheck::Zero => return Verdict::End,
        HeaderCheck::Invalid(why) => return Verdict::Torn(format!("{why} at position {pos}")),
        HeaderCheck::Valid(h) => h,
    };
    if u64::from(h.len) > remaining {
        return Verdict::Torn(format!("record of {} bytes at {pos} runs past the segment end", h.len));
    }
    if !record::crc_matches(&seg.data[off..off + h.len as usize]) {
        return Verdict::Torn(format!("CRC mismatch at position {pos}"));
    }
    if h.kind == RecordKind::Pad {
        if u64::from(h.len) != remaining || h.term != 0 || h.index != 0 {
            return Verdict::Torn(format!("misplaced Pad at position {pos}"));
        }
        return Verdict::Pad;
    }
    let follows = match prev {
        None => expected.is_none_or(|e| h.index == e),
        // The one allowed jump: the log was purged past its end, then appended to.
        Some((pi, _)) => h.index == pi + 1 || lp.is_some_and(|lp| pi <= lp.index && h.index == lp.index + 1),
    };
    if !follows {
        return Verdict::Torn(format!("entry {} at {pos} does not follow {prev:?}", h.index));
    }
    if prev.is_some_and(|(_, t)| h.term < t) {
        return Verdict::Torn(format!("term of entry {} at {pos} goes backwards", h.index));
    }
    Verdict::Entry(h)
}
