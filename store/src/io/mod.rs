//! The file I/O seam under the CommitLog.
//!
//! Every byte the CommitLog reads or writes goes through [`IoBackend`] (directory operations)
//! and [`SegmentFile`] (one open file), so that crash tests can swap [`RealIo`] for
//! [`FaultyIo`] and inject the three failures that matter for a log (redb's `StorageBackend`
//! idea):
//!
//! - a failed `fdatasync` (the log must poison itself and never retry, "fsyncgate");
//! - a torn write (the process dies after part of a `pwrite` reached the file);
//! - lost unsynced data (power loss: the page cache since the last successful sync is gone).
//!
//! The seam is deliberately small and synchronous: the CommitLog calls it from its append path
//! (a `pwrite` into the page cache), from its flusher and allocator threads (blocking syncs and
//! zero-fills), and on open. Reads do not go through `read_at` on the hot path: a segment is
//! mapped once, read-only, with [`SegmentFile::map_readonly`], and entries are zero-copy slices
//! of that mapping.
//!
//! # Simulating "lose unsynced writes on kill" in a broker test build
//!
//! [`FaultyIo::crash`] works in-process: it reverts each file to its content at that file's
//! last successful sync, using pre-images it kept in memory. A broker killed with SIGKILL cannot
//! run that code, so a test build of the broker binary would instead journal the pre-images:
//! before each `write_at`, append `(file, offset, pre-image)` to an undo journal file next to
//! the data, and truncate that file's part of the journal after each successful `sync_data`.
//! A SIGKILL does not lose the page cache, so the journal needs no fsync of its own. The test
//! harness kills the broker, then runs a `replay_undo_journal(dir)` step (applying the
//! pre-images newest first) before restarting it. The broker sees exactly what a power loss at
//! the moment of the kill would have left on disk. The only broker change is choosing the
//! backend (`Arc<dyn IoBackend>`) from a test-only flag.
//!
//! That backend is [`JournalIo`] (feature `fault-journal`; see `journal.rs` for the model and
//! the journal's format), and the broker's test binary `raftmq-broker-faults` selects it with
//! `--io-backend undo-journal` (journals in `<data_dir>/undo-journal`).

mod faulty;
#[cfg(feature = "fault-journal")]
mod journal;
pub(crate) mod paced;
mod real;

use std::io;
use std::path::Path;
use std::sync::Arc;

pub use faulty::FaultyIo;
#[cfg(feature = "fault-journal")]
pub use journal::{JournalIo, ReplayStats, replay_undo_journal};
use memmap2::Mmap;
pub use paced::write_all_synced;
pub use real::RealIo;

/// Directory-level file operations.
///
/// ### To ensure correctness:
///
/// - [`create_zeroed`](Self::create_zeroed) is atomic and durable: after it returns `Ok`, the
///   file exists under its final name with exactly `len` zero bytes, even across a crash, and a
///   crash during it leaves no file under the final name (only a `*.tmp` leftover, which the
///   caller may delete).
/// - [`remove`](Self::remove) is not durable until [`sync_dir`](Self::sync_dir) returns.
pub trait IoBackend: Send + Sync + 'static {
    /// Creates `path` holding `len` zero bytes, synced, renamed into place, directory synced.
    ///
    /// The space is reserved (`fallocate`; zeros written where that is not supported), never
    /// sparse: a read-only mapping of the file can then never SIGBUS on a hole, and a full disk
    /// shows up here, not in the middle of an append. Writing zeros ahead instead would make
    /// each later `fdatasync` data-only (into reserved, unwritten extents ext4 also writes the
    /// inode), but on the bench machine its I/O cost more send latency than it saved (see
    /// docs/benchmarks.md, sixth sitting).
    fn create_zeroed(&self, path: &Path, len: u64) -> io::Result<Arc<dyn SegmentFile>>;

    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn SegmentFile>>;

    /// Unlinks a file. Open handles and mappings of it stay valid.
    fn remove(&self, path: &Path) -> io::Result<()>;

    /// Lists the names of the entries of `dir`, creating it first if it does not exist.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Makes creations, renames and unlinks in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// One open file.
///
/// ### To ensure correctness:
///
/// - `write_at` writes all of `buf` or returns an error; data written is visible to `read_at`
///   and to every mapping of the file as soon as it returns (page cache).
/// - `sync_data` makes everything written before it durable. After it fails, the content of
///   the file is unknown: callers must not retry it and hope.
pub trait SegmentFile: Send + Sync + 'static {
    /// `pwrite` the whole buffer at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// `pread` exactly `buf.len()` bytes at `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// `fdatasync`.
    fn sync_data(&self) -> io::Result<()>;

    /// Current size of the file in bytes.
    fn file_len(&self) -> io::Result<u64>;

    /// A read-only shared mapping of the whole file as it is now.
    ///
    /// The caller must never shrink the file while the mapping (or any `Bytes` sliced from it)
    /// is alive: touching a page past EOF raises SIGBUS.
    fn map_readonly(&self) -> io::Result<Mmap>;
}
