//! raftmq storage.
//!
//! # Layout
//! - [`commitlog`]: the segmented CommitLog. Its records *are* the Raft log entries
//!   (it implements openraft's `RaftLogStorage`), written once, read through memmap2.
//! - [`io`]: the file I/O seam, with a fault-injecting backend for crash tests.
//! - [`consume_queue`]: per (topic, queue) fixed-size units pointing into the CommitLog.
//! - `testkit` (feature `testkit`): helpers for CommitLog tests.
//! - [`index`]: the message-id and key index (a RocketMQ-style hash file), rebuildable from the log.

pub mod commitlog;
pub mod consume_queue;
pub mod index;
pub mod io;
#[cfg(feature = "testkit")]
pub mod testkit;
