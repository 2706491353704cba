//! openraft's `RaftLogStorage` and `RaftLogReader`, implemented directly on [`CommitLog`].
//!
//! Thin on purpose: each method maps to one `Inner` operation and converts [`StoreError`]
//! into `io::Error` (openraft's storage error type in 0.10). The log reader is the
//! `CommitLog` itself (a cheap `Arc` clone), so every reader sees an append the moment it
//! returns.
//!
//! [`StoreError`]: super::StoreError

use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use raftmq_raft::{Entry, LogId, TypeConfig, Vote};

use super::CommitLog;
use super::reader::index_bounds;

impl RaftLogReader<TypeConfig> for CommitLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = index_bounds(&range);
        Ok(self.inner.read_entries(start, end, None)?)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.inner.meta.vote())
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, io::Error> {
        Ok(self.inner.read_entries(start, end, Some(self.inner.cfg.max_read_bytes))?)
    }
}

impl RaftLogStorage<TypeConfig> for CommitLog {
    type LogReader = CommitLog;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let t = self.inner.read_table();
        Ok(LogState { last_purged_log_id: t.last_purged, last_log_id: t.last_log_id() })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        Ok(self.inner.save_vote(vote).await?)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Lazily persisted by the flusher: a stale committed is safe, it only means a restart
        // re-applies less before the leader tells us more.
        self.inner.meta.set_pending_committed(committed);
        self.inner.flusher.wake();
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.inner.meta.pending_committed())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        Ok(self.inner.append(entries, callback)?)
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        Ok(self.inner.truncate_after(last_log_id)?)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        Ok(self.inner.purge(log_id)?)
    }
}
