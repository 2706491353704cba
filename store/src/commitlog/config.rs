//! [`CommitLogConfig`]: one plain struct, one source of defaults, a typed `validate()`.

use std::time::Duration;

use super::record::HEADER_LEN;

/// Smallest segment accepted: one page. Tests use 64 KiB; production uses the default.
pub const MIN_SEGMENT_BYTES: u64 = 4096;
/// Largest segment accepted (just under 4 GiB): a record's `len` field is a `u32`, and a
/// record may fill a whole segment.
pub const MAX_SEGMENT_BYTES: u64 = (1 << 32) - 4096;

/// When an append is acknowledged to openraft (its `IOFlushed` callback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledge after the `fdatasync` that covers the entries (group commit). The default.
    Sync,
    /// Acknowledge right after the `pwrite` (page cache); a background sync runs every
    /// `flush_interval`. A machine crash can lose up to one interval of acknowledged entries,
    /// which Raft then has to re-replicate from a quorum; a process crash loses nothing.
    Async { flush_interval: Duration },
}

/// Where the CommitLog's background I/O (group-commit fsyncs, segment preallocation) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackgroundIo {
    /// A flusher thread and an allocator thread. The default, and the only production choice:
    /// `fdatasync` blocks for milliseconds and must not stall runtime workers.
    #[default]
    Threads,
    /// Deterministic simulation only (`broker/tests/sim`): no threads. The flusher is a task on
    /// the current tokio runtime that syncs `sync_latency` (of tokio's clock) after work arrives,
    /// and a segment is created when the log rolls onto it. A thread finishes at a wall-clock
    /// time that a simulated clock cannot replay; a task's progress is part of the simulation,
    /// and data stays written-but-unsynced for `sync_latency`, so a simulated crash can lose it.
    /// `open` must be called inside a tokio runtime.
    SimulatedTasks { sync_latency: Duration },
}

/// CommitLog settings. `Default` holds the production defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitLogConfig {
    /// Size of every segment file. Default 128 MiB. A multiple of 4096 in
    /// [`MIN_SEGMENT_BYTES`, `MAX_SEGMENT_BYTES`]. Record positions depend on it, so it is fixed
    /// for the life of a log: `open` refuses a directory written with another size. The largest
    /// entry the log accepts is [`max_entry_bytes`](Self::max_entry_bytes) =
    /// `segment_bytes - 32` (records never span segments).
    pub segment_bytes: u64,
    /// Default [`Durability::Sync`].
    pub durability: Durability,
    /// Cap on the record bytes one `limited_get_log_entries` call returns (at least one entry
    /// is always returned). Default 4 MiB, tonic's default maximum decoded message size.
    pub max_read_bytes: usize,
    /// Default [`BackgroundIo::Threads`].
    pub background_io: BackgroundIo,
}

impl Default for CommitLogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 128 << 20,
            durability: Durability::Sync,
            max_read_bytes: 4 << 20,
            background_io: BackgroundIo::Threads,
        }
    }
}

/// Why a [`CommitLogConfig`] was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("segment_bytes {0} is outside [{MIN_SEGMENT_BYTES}, {MAX_SEGMENT_BYTES}]")]
    SegmentSizeOutOfRange(u64),
    #[error("segment_bytes {0} is not a multiple of 4096")]
    SegmentSizeUnaligned(u64),
    #[error("max_read_bytes must be at least 1")]
    ZeroMaxReadBytes,
    #[error("Durability::Async flush_interval must be non-zero")]
    ZeroFlushInterval,
}

impl CommitLogConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(ConfigError::SegmentSizeOutOfRange(self.segment_bytes));
        }
        if !self.segment_bytes.is_multiple_of(4096) {
            return Err(ConfigError::SegmentSizeUnaligned(self.segment_bytes));
        }
        if self.max_read_bytes == 0 {
            return Err(ConfigError::ZeroMaxReadBytes);
        }
        if let Durability::Async { flush_interval } = self.durability
            && flush_interval.is_zero()
        {
            return Err(ConfigError::ZeroFlushInterval);
        }
        Ok(())
    }

    /// The largest `Cmd` (or encoded membership) one entry may carry.
    pub fn max_entry_bytes(&self) -> u64 {
        self.segment_bytes - HEADER_LEN as u64
    }
}
