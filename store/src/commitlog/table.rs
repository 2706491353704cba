//! The in-memory index→position table and the list of live segments: everything a reader
//! needs, behind one `RwLock` in `Inner`.
//!
//! Rebuilt by recovery on open (a scan of the segments), then kept in step by the writer.
//! Locations are 24 bytes per entry; the table holds only entries openraft still considers
//! present (index > last purged), although purged records may still be physically present in
//! a partially purged first segment.

use std::collections::VecDeque;
use std::sync::Arc;

use raftmq_raft::LogId;

use super::segment::Segment;

/// Where one entry's record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub pos: u64,
    pub term: u64,
    pub len: u32,
}

pub(crate) struct Table {
    pub segment_bytes: u64,
    /// Contiguous live segments, oldest first. Never empty once open.
    pub segments: VecDeque<Arc<Segment>>,
    /// First retained physical position (a segment base, or the position given to `set_base`).
    pub start_pos: u64,
    /// End of the published records: readers never look at or past it.
    pub end_pos: u64,
    /// Index of `locs[0]`; when `locs` is empty, the index the next entry will get (if known).
    pub first_index: u64,
    pub locs: VecDeque<Loc>,
    pub last_purged: Option<LogId>,
}

impl Table {
    pub fn last_index(&self) -> Option<u64> {
        (!self.locs.is_empty()).then(|| self.first_index + self.locs.len() as u64 - 1)
    }

    pub fn first_present(&self) -> Option<u64> {
        (!self.locs.is_empty()).then_some(self.first_index)
    }

    pub fn loc(&self, index: u64) -> Option<Loc> {
        let i = index.checked_sub(self.first_index)?;
        self.locs.get(usize::try_from(i).ok()?).copied()
    }

    /// openraft's notion of the last log id: the last present entry, else the last purged one.
    pub fn last_log_id(&self) -> Option<LogId> {
        match self.locs.back() {
            Some(l) => Some(LogId::new_term_index(l.term, self.first_index + self.locs.len() as u64 - 1)),
            None => self.last_purged,
        }
    }

    pub fn segment_for(&self, pos: u64) -> Option<&Arc<Segment>> {
        let first = self.segments.front()?;
        let i = pos.checked_sub(first.base)? / self.segment_bytes;
        self.segments.get(usize::try_from(i).ok()?)
    }
}
