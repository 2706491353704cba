//! `truncate_after(last)`: drop a conflicting, uncommitted tail after a leader change.
//!
//! Steps: find position `p` of entry `last.index + 1`; unlink the segments after the one
//! holding `p` and `fsync` the directory; zero the 32-byte header at `p` so recovery stops
//! there; make `p` the write position. Segments are never shrunk (`ftruncate` under a live
//! mapping would SIGBUS readers).
//!
//! The truncation itself need not be durable: the dropped entries were never committed, so if
//! a crash brings them back, the leader truncates them again. Stale bytes of the old tail past
//! the new records cannot be mistaken for entries: recovery requires `index == prev + 1`, a
//! non-decreasing term and a matching CRC, and a stale record that passes all three is the
//! same entry (Raft's log matching), hence the same bytes.

use raftmq_raft::LogId;

use super::Inner;
use super::error::StoreError;
use super::record::HEADER_LEN;

impl Inner {
    pub(crate) fn truncate_after(&self, last: Option<LogId>) -> Result<(), StoreError> {
        let mut w = self.lock_writer();
        self.poison.check()?;
        let (p, removed, new_last_term) = {
            let mut t = self.write_table();
            let Some(last_index) = t.last_index() else { return Ok(()) };
            let keep = last.map(|l| l.index);
            if let (Some(lp), Some(k)) = (t.last_purged, keep)
                && k < lp.index
            {
                return Err(StoreError::OutOfRange { what: format!("truncate_after({k}) below last purged {lp}") });
            }
            if last.is_none() && t.last_purged.is_some() {
                return Err(StoreError::OutOfRange { what: "truncate_after(None) on a purged log".into() });
            }
            let from = keep.map_or(t.first_index, |k| (k + 1).max(t.first_index));
            if from > last_index {
                return Ok(());
            }
            let Some(p) = t.loc(from).map(|l| l.pos) else {
                return Err(StoreError::OutOfRange { what: format!("entry {from}") });
            };
            let keep_n = (from - t.first_index) as usize;
            t.locs.truncate(keep_n);
            let Some(keep_base) = t.segment_for(p).map(|s| s.base) else {
                return Err(StoreError::corrupt(&self.dir, format!("no segment holds position {p}")));
            };
            let mut removed = Vec::new();
            while t.segments.back().is_some_and(|s| s.base > keep_base) {
                removed.extend(t.segments.pop_back());
            }
            t.end_pos = p;
            let term = t.locs.back().map(|l| l.term).or(t.last_purged.map(|lp| lp.leader_id.term));
            (p, removed, term.unwrap_or(0))
        };
        let Some(active) = self.read_table().segment_for(p).cloned() else {
            return Err(StoreError::corrupt(&self.dir, format!("no segment holds position {p}")));
        };

        // From here a failure leaves disk and memory disagreeing: poison.
        let spare_removed =
            self.allocator.discard_unless(Some(active.end())).map_err(|e| self.poison_with("truncate_after", e))?;
        for seg in &removed {
            self.io.remove(&seg.path).map_err(|e| self.poison.fail(&format!("unlink {}", seg.path.display()), e))?;
        }
        if spare_removed || !removed.is_empty() {
            self.io.sync_dir(&self.dir).map_err(|e| self.poison.fail("fsync of the log directory", e))?;
        }
        let n = (active.end() - p).min(HEADER_LEN as u64) as usize;
        if n > 0 {
            active
                .write_at_pos(&[0u8; HEADER_LEN][..n], p)
                .map_err(|e| self.poison.fail(&format!("zeroing the header at {p}"), e))?;
        }
        self.allocator.prepare(active.end());

        w.write_pos = p;
        // Anything past `p` in this segment may be leftovers of the dropped tail.
        w.dirty_end = active.end();
        w.active = active.clone();
        // `None` only on a never-purged log (checked above): any index may come next.
        w.next_index = last.map(|l| l.index + 1);
        w.last_term = new_last_term;
        // The zeroed header becomes durable with the next group commit; nobody waits for it.
        self.flusher.submit(&[active], self.read_table().last_index(), None);
        Ok(())
    }

    pub(crate) fn poison_with(&self, context: &str, e: StoreError) -> StoreError {
        self.poison.set(format!("{context}: {e}"));
        e
    }
}
