//! The CommitLog: a segmented, memory-mapped log whose records *are* the Raft log entries.
//!
//! One Raft entry is one record, written once with `pwrite` into a preallocated segment and
//! read back through a read-only `mmap` (the DLedger design: no second write-ahead log). The
//! byte format is in `docs/commitlog-format.md` and `record.rs`.
//!
//! ```text
//!  openraft ──append──► writer: encode batch, pwrite per segment ──► table (index → position)
//!     ▲                   │ callback + dirty segments                  ▲ read lock
//!     │ IOFlushed         ▼                                            │
//!     └──────────── flusher thread: fdatasync per dirty segment    readers (mmap slices)
//!                         │ (lazily) committed
//!  save_vote ─barrier─────┴──► meta file (vote, committed, last purged, base; 2 CRC'd slots)
//!  allocator thread: creates segment N+1 (fallocate) while N is active
//! ```
//!
//! # Invariants
//! - A record's position is a pure function of the log prefix (and the segment size), so the
//!   committed prefix is byte-identical on every replica ([`CommitLog::prefix_crc`]). Hence
//!   no vote/purge/truncate markers in segments: they live in the meta file.
//! - Entries are consecutive, terms never decrease, records never span segments.
//! - An append is readable when `append` returns and acknowledged per [`Durability`].
//! - Write I/O is ordered: a vote is made durable only after every append queued before it
//!   (flusher barrier), as openraft's io-ordering rule demands.
//! - After a failed `fdatasync` or write the log is poisoned and refuses all writes.
//! - Segments are never shrunk while mapped; mapped bytes change only past the published end
//!   or in an uncommitted tail being truncated (a reader holding such a tail slice can see it
//!   change; committed bytes never change).
//!
//! # Lock order
//! `writer` → `table` (write, held for µs to publish) → nothing. `writer` → flusher queue,
//! allocator state, meta. Readers take only `table` (read). The flusher thread takes its queue
//! then, separately, the meta lock; it never takes `writer` or `table`.
//!
//! # Layout
//! - [`config`], [`error`]: the public settings and error type.
//! - `record`, `membership_codec`: the record format. `segment`: one file. `table`: the
//!   in-memory index. `meta`: the side meta file. `poison`: the fail-stop flag.
//! - `writer` (append), `truncate`, `purge` (purge, set_base), `reader`, `recovery`.
//! - `flusher` (group commit thread), `allocator` (segment preallocation thread); both are
//!   tasks or inline work under [`BackgroundIo::SimulatedTasks`] (the deterministic simulation).
//! - `storage_impl`: openraft's `RaftLogStorage` / `RaftLogReader`.

mod allocator;
pub mod config;
pub mod error;
mod flusher;
mod membership_codec;
mod meta;
mod poison;
mod purge;
mod reader;
mod record;
mod recovery;
mod segment;
mod storage_impl;
mod table;
mod truncate;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
pub use config::{BackgroundIo, CommitLogConfig, ConfigError, Durability};
pub use error::StoreError;
use raftmq_raft::{LogId, Vote};

use self::allocator::Allocator;
use self::flusher::Flusher;
use self::meta::MetaStore;
use self::poison::Poison;
use self::table::Table;
use self::writer::Writer;
use crate::io::IoBackend;

/// The CommitLog of one broker group. Cheap to clone (an `Arc`); implements openraft's
/// `RaftLogStorage<TypeConfig>` and is its own `LogReader`. Background threads stop when the
/// last clone is dropped, after flushing what is queued.
#[derive(Clone)]
pub struct CommitLog {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    dir: PathBuf,
    cfg: CommitLogConfig,
    io: Arc<dyn IoBackend>,
    writer: Mutex<Writer>,
    table: RwLock<Table>,
    meta: Arc<MetaStore>,
    flusher: Flusher,
    allocator: Allocator,
    poison: Arc<Poison>,
}

impl CommitLog {
    /// Byte length of a record header: a Normal entry's `Cmd` bytes start at
    /// `record_position(index) + RECORD_HEADER_LEN`.
    pub const RECORD_HEADER_LEN: usize = record::HEADER_LEN;

    /// Opens (creating if needed) the log in `dir`, running recovery. Blocking work runs on
    /// tokio's blocking pool.
    pub async fn open(dir: &Path, cfg: CommitLogConfig, io: Arc<dyn IoBackend>) -> Result<CommitLog, StoreError> {
        cfg.validate()?;
        let dir = dir.to_path_buf();
        if cfg.background_io != BackgroundIo::Threads {
            // A simulation runs everything on its own clock, so nothing may leave the runtime.
            return Self::open_blocking(dir, cfg, io);
        }
        tokio::task::spawn_blocking(move || Self::open_blocking(dir, cfg, io))
            .await
            .map_err(|e| StoreError::io("joining the open task", std::io::Error::other(e)))?
    }

    fn open_blocking(dir: PathBuf, cfg: CommitLogConfig, io: Arc<dyn IoBackend>) -> Result<CommitLog, StoreError> {
        let rec = recovery::recover(&io, &dir, &cfg)?;
        let meta = Arc::new(rec.meta);
        let poison = Arc::new(Poison::default());
        let spawn_err = |e| StoreError::io("starting a commitlog thread", e);
        let flusher =
            Flusher::start(cfg.durability, cfg.background_io, poison.clone(), meta.clone(), rec.table.last_index())
                .map_err(spawn_err)?;
        let threads = cfg.background_io == BackgroundIo::Threads;
        let allocator = Allocator::start(io.clone(), dir.clone(), cfg.segment_bytes, threads).map_err(spawn_err)?;
        allocator.prepare(rec.writer.active.end());
        let inner = Inner {
            dir,
            cfg,
            io,
            writer: Mutex::new(rec.writer),
            table: RwLock::new(rec.table),
            meta,
            flusher,
            allocator,
            poison,
        };
        Ok(CommitLog { inner: Arc::new(inner) })
    }

    /// Physical position of the record of entry `index`, if the log holds that entry.
    pub fn record_position(&self, index: u64) -> Option<u64> {
        self.inner.read_table().loc(index).map(|l| l.pos)
    }

    /// Physical position right after the record of entry `index` (where the next record goes,
    /// unless it has to roll to the next segment), if the log holds that entry.
    pub fn record_end(&self, index: u64) -> Option<u64> {
        self.inner.read_table().loc(index).map(|l| l.pos + u64::from(l.len))
    }

    /// Zero-copy slice of `len` written bytes at `pos` (within one segment, below
    /// [`end_position`](Self::end_position)). Callers must only rely on committed positions:
    /// an uncommitted tail can be truncated and overwritten.
    pub fn read_bytes(&self, pos: u64, len: usize) -> Result<Bytes, StoreError> {
        self.inner.read_bytes(pos, len)
    }

    /// `(byte count, CRC-32C)` over every byte from the first retained position through the
    /// end of record `upto_index`, pads included. Two replicas with the same retained range
    /// must agree.
    pub fn prefix_crc(&self, upto_index: u64) -> Result<(u64, u32), StoreError> {
        self.inner.prefix_crc(upto_index)
    }

    /// Makes the next appended entry get `next_index` at physical `next_position`, on an
    /// empty log (after a snapshot install and purge). Durable when it returns. Calling it
    /// again with the current values is a no-op; after a crash during `set_base` the log is
    /// simply empty again, so the broker should re-assert it from its snapshot on startup.
    pub fn set_base(&self, next_index: u64, next_position: u64) -> Result<(), StoreError> {
        self.inner.set_base(next_index, next_position)
    }

    /// After a snapshot install at `last`: drops every entry up to `last` and, when nothing is
    /// left, makes the next entry land at the leader's `next_position` (its record position
    /// for `last.index + 1`). Idempotent and durable when it returns, so a replica that crashed
    /// half way through an install can simply do it again.
    pub fn reset_to_snapshot(&self, last: LogId, next_position: u64) -> Result<(), StoreError> {
        self.inner.purge(last)?;
        if self.first_index().is_none() {
            self.inner.set_base(last.index + 1, next_position)?;
        }
        Ok(())
    }

    pub fn is_poisoned(&self) -> bool {
        self.inner.poison.is_set()
    }

    /// Index of the first entry present, `None` if the log holds no entry.
    pub fn first_index(&self) -> Option<u64> {
        self.inner.read_table().first_present()
    }

    /// openraft's last log id: the last entry present, else the last purged one.
    pub fn last_log_id(&self) -> Option<LogId> {
        self.inner.read_table().last_log_id()
    }

    pub fn last_purged(&self) -> Option<LogId> {
        self.inner.read_table().last_purged
    }

    /// Physical position of the first retained byte (everything before it was purged).
    pub fn start_position(&self) -> u64 {
        self.inner.read_table().start_pos
    }

    /// Physical position the next record will be written at (end of the published records).
    pub fn end_position(&self) -> u64 {
        self.inner.read_table().end_pos
    }

    /// Waits until everything appended so far is durable (in either durability mode).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush().await
    }

    pub fn config(&self) -> &CommitLogConfig {
        &self.inner.cfg
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}

impl Inner {
    // A panic while holding a lock cannot leave these structures half-updated in a way that
    // matters more than the panic itself, so poisoned std locks are recovered, not propagated.
    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_table(&self) -> RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_table(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(PoisonError::into_inner)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let stopped = || StoreError::Poisoned("the flusher stopped".into());
        match self.flusher.barrier().await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.poison.check().err().unwrap_or_else(stopped)),
            Err(_) => Err(stopped()),
        }
    }

    /// Durable before it returns, and never ahead of appends queued before it.
    async fn save_vote(&self, vote: &Vote) -> Result<(), StoreError> {
        self.poison.check()?;
        self.flush().await?;
        self.meta.update(|m| m.vote = Some(*vote)).map_err(|e| self.poison.fail("writing the vote to the meta file", e))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.flusher.shutdown();
        self.allocator.shutdown();
    }
}
