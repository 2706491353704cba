//! `purge(upto)` (retention) and `set_base` (restart after a snapshot install).
//!
//! Purge first makes `last_purged` durable in the meta file, then unlinks whole segments whose
//! entries are all `<= upto`, then `fsync`s the directory (the same order as raft-log: the
//! purge record is durable before any file disappears, so a crash in between only leaves
//! extra, already-purged records behind). A segment still holding a retained entry stays,
//! as does the active segment: purging never moves the write position, so positions stay a
//! function of the log prefix.
//!
//! `set_base` exists because after a snapshot install the local log is empty and the next
//! entry must land at the *leader's* position for it, not wherever this replica's log ended.

use super::Inner;
use super::error::StoreError;
use super::meta::Base;
use super::segment::Segment;
use raftmq_raft::LogId;
use std::sync::Arc;

impl Inner {
    pub(crate) fn purge(&self, upto: LogId) -> Result<(), StoreError> {
        let mut w = self.lock_writer();
        self.poison.check()?;
        if self.read_table().last_purged.is_some_and(|lp| lp.index >= upto.index) {
            return Ok(());
        }
        self.meta
            .update(|m| m.last_purged = Some(upto))
            .map_err(|e| self.poison.fail("writing last_purged to the meta file", e))?;
        let removed = {
            let mut t = self.write_table();
            t.last_purged = Some(upto);
            let drop_n = (upto.index + 1).saturating_sub(t.first_index).min(t.locs.len() as u64);
            t.locs.drain(..drop_n as usize);
            t.first_index += drop_n;
            if t.locs.is_empty() {
                t.first_index = t.first_index.max(upto.index + 1);
            }
            // The first segment to keep: the one holding the first retained entry, else the
            // active one.
            let keep_base = match t.locs.front() {
                Some(l) => t.segment_for(l.pos).map_or(w.active.base, |s| s.base),
                None => w.active.base,
            };
            let mut removed = Vec::new();
            while t.segments.front().is_some_and(|s| s.base < keep_base) {
                removed.extend(t.segments.pop_front());
            }
            if let Some(first) = t.segments.front()
                && !removed.is_empty()
            {
                t.start_pos = first.base;
            }
            removed
        };
        if self.read_table().locs.is_empty() {
            w.next_index = Some(w.next_index.map_or(upto.index + 1, |n| n.max(upto.index + 1)));
        }
        w.last_term = w.last_term.max(upto.leader_id.term);
        for seg in &removed {
            self.io.remove(&seg.path).map_err(|e| self.poison.fail(&format!("unlink {}", seg.path.display()), e))?;
        }
        if !removed.is_empty() {
            self.io.sync_dir(&self.dir).map_err(|e| self.poison.fail("fsync of the log directory", e))?;
        }
        Ok(())
    }

    pub(crate) fn set_base(&self, next_index: u64, next_position: u64) -> Result<(), StoreError> {
        let mut w = self.lock_writer();
        self.poison.check()?;
        let last_purged = {
            let t = self.read_table();
            if let (Some(first), Some(last)) = (t.first_present(), t.last_index()) {
                return Err(StoreError::NotEmpty { first, last });
            }
            t.last_purged
        };
        if let Some(lp) = last_purged
            && next_index <= lp.index
        {
            return Err(StoreError::OutOfRange { what: format!("set_base({next_index}) at or below purged {lp}") });
        }
        if w.next_index == Some(next_index) && w.write_pos == next_position {
            return Ok(());
        }
        let seg_bytes = self.cfg.segment_bytes;
        let base = next_position - next_position % seg_bytes;

        // Old segments first (newest first), then the new one, then the meta record: a crash
        // at any point leaves an empty log that `set_base` can simply be called on again.
        self.allocator.discard_unless(None).map_err(|e| self.poison_with("set_base", e))?;
        let old: Vec<Arc<Segment>> = self.write_table().segments.drain(..).rev().collect();
        for seg in &old {
            self.io.remove(&seg.path).map_err(|e| self.poison.fail(&format!("unlink {}", seg.path.display()), e))?;
        }
        self.io.sync_dir(&self.dir).map_err(|e| self.poison.fail("fsync of the log directory", e))?;
        let seg = Arc::new(
            Segment::create(&*self.io, &self.dir, base, seg_bytes).map_err(|e| self.poison_with("set_base", e))?,
        );
        self.meta
            .update(|m| m.base = Some(Base { index: next_index, position: next_position }))
            .map_err(|e| self.poison.fail("writing the base to the meta file", e))?;
        {
            let mut t = self.write_table();
            t.segments.push_back(seg.clone());
            t.start_pos = next_position;
            t.end_pos = next_position;
            t.first_index = next_index;
        }
        self.allocator.prepare(seg.end());
        w.write_pos = next_position;
        w.dirty_end = base;
        w.active = seg;
        w.next_index = Some(next_index);
        w.last_term = last_purged.map_or(0, |lp| lp.leader_id.term);
        Ok(())
    }
}
