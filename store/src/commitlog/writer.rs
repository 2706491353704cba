//! The append path: encode the whole batch into one buffer, `pwrite` it once per segment
//! touched, publish the new locations, hand the callback to the flusher. Nothing here waits
//! for a disk: no `fsync`, and no segment creation unless the background spare is late.
//!
//! The layout is computed before any I/O, from positions alone, so a batch that fails
//! validation (a gap, a term going backwards, an entry larger than a segment) writes nothing.
//! When a record does not fit in the rest of the active segment, a Pad record fills it (or,
//! if fewer than 32 bytes remain, zeros), and the record starts the next segment. Pad bodies
//! and short tails must be zeros on every replica for byte identity, so bytes that may be
//! stale (`dirty_end`, after truncation or recovery) are overwritten with zeros explicitly;
//! on a freshly zero-filled segment only the Pad header is written.

use std::ops::Range;
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use raftmq_raft::{Entry, TypeConfig};

use super::Inner;
use super::config::Durability;
use super::error::StoreError;
use super::flusher::Completion;
use super::record::{self, HEADER_LEN};
use super::segment::Segment;
use super::table::Loc;

/// Encode buffers above this are released after the batch instead of kept for reuse.
const BUF_KEEP_BYTES: usize = 16 << 20;

/// Mutable state of the single writer, behind `Inner::writer`.
pub(crate) struct Writer {
    buf: Vec<u8>,
    pieces: Vec<Piece>,
    locs: Vec<Loc>,
    /// Where the next record goes.
    pub write_pos: u64,
    /// The segment holding `write_pos` (or ending exactly at it).
    pub active: Arc<Segment>,
    /// Bytes of `active` in `[write_pos, dirty_end)` may be non-zero leftovers.
    pub dirty_end: u64,
    /// Index the next entry must have; `None` on a log that never held or purged anything.
    pub next_index: Option<u64>,
    /// Term of the last record physically before `write_pos` (terms never go backwards).
    pub last_term: u64,
}

/// A contiguous run of `buf` going to one segment.
struct Piece {
    base: u64,
    pos: u64,
    range: Range<usize>,
}

struct Layout {
    end_pos: u64,
    dirty_end: u64,
    first_index: Option<u64>,
    next_index: Option<u64>,
    last_term: u64,
}

impl Writer {
    pub fn new(active: Arc<Segment>, write_pos: u64, dirty_end: u64, next_index: Option<u64>, last_term: u64) -> Self {
        Self {
            buf: Vec::new(),
            pieces: Vec::new(),
            locs: Vec::new(),
            write_pos,
            active,
            dirty_end,
            next_index,
            last_term,
        }
    }

    /// Phase 1, no I/O: validate and encode every entry, splitting at segment ends.
    fn encode_batch<I>(&mut self, entries: I, segment_bytes: u64) -> Result<Layout, StoreError>
    where
        I: IntoIterator<Item = Entry>,
    {
        self.buf.clear();
        self.pieces.clear();
        self.locs.clear();
        let (mut pos, mut base, mut dirty_end) = (self.write_pos, self.active.base, self.dirty_end);
        let (mut piece_pos, mut piece_start) = (pos, 0);
        let (mut next, mut term, mut first) = (self.next_index, self.last_term, None);
        for entry in entries {
            let id = entry.log_id();
            let (index, t) = (id.index, id.leader_id.term);
            if let Some(n) = next
                && index != n
            {
                return Err(StoreError::NonConsecutive { got: index, term: t, why: format!("expected index {n}") });
            }
            if t < term {
                return Err(StoreError::NonConsecutive {
                    got: index,
                    term: t,
                    why: format!("term went back from {term}"),
                });
            }
            let len = record::record_len(&entry);
            if len > segment_bytes {
                let max = segment_bytes - HEADER_LEN as u64;
                return Err(StoreError::EntryTooLarge { index, size: len - HEADER_LEN as u64, max });
            }
            if pos + len > base + segment_bytes {
                fill_segment_tail(&mut self.buf, pos, base + segment_bytes, dirty_end);
                self.pieces.push(Piece { base, pos: piece_pos, range: piece_start..self.buf.len() });
                base += segment_bytes;
                (pos, dirty_end, piece_pos, piece_start) = (base, base, base, self.buf.len());
            }
            record::encode_entry(&mut self.buf, &entry);
            // `len <= segment_bytes < 2^32` (config validation), so it fits the u32 field.
            self.locs.push(Loc { pos, term: t, len: len as u32 });
            pos += len;
            (next, term) = (Some(index + 1), t);
            first.get_or_insert(index);
        }
        self.pieces.push(Piece { base, pos: piece_pos, range: piece_start..self.buf.len() });
        Ok(Layout {
            end_pos: pos,
            dirty_end: dirty_end.max(pos),
            first_index: first,
            next_index: next,
            last_term: term,
        })
    }
}

/// Closes a segment at `pos`: a Pad to `end`, or zeros if fewer than 32 bytes remain; only
/// bytes that may be stale (below `dirty_end`) need explicit zeros.
fn fill_segment_tail(buf: &mut Vec<u8>, pos: u64, end: u64, dirty_end: u64) {
    let remaining = end - pos;
    let stale_to = dirty_end.min(end);
    if remaining >= HEADER_LEN as u64 {
        // remaining < segment_bytes < 2^32.
        buf.extend_from_slice(&record::pad_header(remaining as u32));
        let body_from = pos + HEADER_LEN as u64;
        if stale_to > body_from {
            buf.resize(buf.len() + (stale_to - body_from) as usize, 0);
        }
    } else if stale_to > pos {
        buf.resize(buf.len() + (stale_to - pos) as usize, 0);
    }
}

impl Inner {
    pub(crate) fn append<I>(&self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), StoreError>
    where
        I: IntoIterator<Item = Entry>,
    {
        let mut guard = self.lock_writer();
        let w = &mut *guard;
        let prepared = self.poison.check().and_then(|()| w.encode_batch(entries, self.cfg.segment_bytes));
        let layout = match prepared {
            Ok(layout) => layout,
            Err(e) => {
                callback.io_completed(Err(std::io::Error::other(e.to_string())));
                return Err(e);
            }
        };

        // Phase 2: one pwrite per segment touched.
        let mut written: Vec<Arc<Segment>> = Vec::with_capacity(w.pieces.len());
        let mut active = w.active.clone();
        for piece in &w.pieces {
            if piece.base != active.base {
                active = match self.allocator.take(piece.base) {
                    Ok(seg) => seg,
                    Err(e) => {
                        let e = self.poison.fail("rolling to a new segment", std::io::Error::other(e.to_string()));
                        callback.io_completed(Err(self.poison.io_error()));
                        return Err(e);
                    }
                };
                self.allocator.prepare(active.end());
            }
            if piece.range.is_empty() {
                continue;
            }
            if let Err(e) = active.write_at_pos(&w.buf[piece.range.clone()], piece.pos) {
                let e = self.poison.fail(&format!("pwrite to {}", active.path.display()), e);
                callback.io_completed(Err(self.poison.io_error()));
                return Err(e);
            }
            written.push(active.clone());
        }

        // Phase 3: publish. From here on the entries are readable.
        let last_index = {
            let mut t = self.write_table();
            // Every segment rolled into received at least the record that did not fit before.
            for seg in &written {
                if t.segments.back().is_none_or(|s| s.base < seg.base) {
                    t.segments.push_back(seg.clone());
                }
            }
            if t.locs.is_empty()
                && let Some(first) = layout.first_index
            {
                t.first_index = first;
            }
            t.locs.extend(w.locs.drain(..));
            t.end_pos = layout.end_pos;
            t.last_index()
        };
        w.write_pos = layout.end_pos;
        w.active = active;
        w.dirty_end = layout.dirty_end;
        w.next_index = layout.next_index;
        w.last_term = layout.last_term;
        if w.buf.capacity() > BUF_KEEP_BYTES {
            w.buf = Vec::new();
        }

        // Queued while still holding the writer lock so completions keep append order.
        match self.cfg.durability {
            Durability::Sync => self.flusher.submit(&written, last_index, Some(Completion::Flushed(callback))),
            Durability::Async { .. } => {
                self.flusher.submit(&written, last_index, None);
                drop(guard);
                callback.io_completed(Ok(()));
            }
        }
        Ok(())
    }
}
