//! Helpers for CommitLog tests: entry builders, appends that wait for (or hand back) their
//! `IOFlushed` result, and small directory utilities. Compiled only with the `testkit`
//! feature, which this crate's own integration tests turn on.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::commitlog::{CommitLog, CommitLogConfig, Durability};
use crate::io::{IoBackend, RealIo};
use bytes::Bytes;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use openraft::{BasicNode, RaftLogReader};
use raftmq_raft::{Cmd, Entry, LogId, Membership, TypeConfig};

pub const SEG: u64 = 64 * 1024;

pub fn cfg() -> CommitLogConfig {
    CommitLogConfig {
        segment_bytes: SEG,
        durability: Durability::Sync,
        max_read_bytes: 4 << 20,
        background_io: Default::default(),
    }
}

pub fn async_cfg(flush_interval: Duration) -> CommitLogConfig {
    CommitLogConfig { durability: Durability::Async { flush_interval }, ..cfg() }
}

pub fn log_id(term: u64, index: u64) -> LogId {
    LogId::new_term_index(term, index)
}

/// A Normal entry whose Cmd is `len` bytes derived from (term, index), first byte = kind 1.
pub fn normal(term: u64, index: u64, len: usize) -> Entry {
    let mut body = vec![1u8; len.max(1)];
    for (i, b) in body.iter_mut().enumerate().skip(1) {
        *b = (index as usize).wrapping_mul(31).wrapping_add(i).wrapping_add(term as usize) as u8;
    }
    Entry::new_normal(log_id(term, index), Cmd(Bytes::from(body)))
}

pub fn blank(term: u64, index: u64) -> Entry {
    Entry::new_blank(log_id(term, index))
}

pub fn membership(term: u64, index: u64, voters: &[u64]) -> Entry {
    let nodes = voters.iter().map(|&id| (id, BasicNode { addr: format!("127.0.0.1:{}", 9000 + id) }));
    let m =
        Membership::new(vec![voters.iter().copied().collect()], nodes.collect::<std::collections::BTreeMap<_, _>>())
            .expect("valid membership");
    Entry::new_membership(log_id(term, index), m)
}

/// `n` Normal entries of `len` bytes, indexes `from..from+n`, all in `term`.
pub fn normals(term: u64, from: u64, n: u64, len: usize) -> Vec<Entry> {
    (from..from + n).map(|i| normal(term, i, len)).collect()
}

pub async fn open(dir: &Path, cfg: CommitLogConfig) -> CommitLog {
    CommitLog::open(dir, cfg, Arc::new(RealIo)).await.expect("open")
}

pub async fn open_with(dir: &Path, cfg: CommitLogConfig, io: Arc<dyn IoBackend>) -> CommitLog {
    CommitLog::open(dir, cfg, io).await.expect("open")
}

/// Appends and returns the receiver of the `IOFlushed` result without waiting for it.
pub async fn append_nowait(
    log: &mut CommitLog,
    entries: Vec<Entry>,
) -> io::Result<tokio::sync::oneshot::Receiver<io::Result<()>>> {
    let (tx, rx) = TypeConfig::oneshot();
    log.append(entries, IOFlushed::signal(tx)).await?;
    Ok(rx)
}

/// Appends and waits until the callback reports the entries durable.
pub async fn append(log: &mut CommitLog, entries: Vec<Entry>) -> io::Result<()> {
    let rx = append_nowait(log, entries).await?;
    rx.await.map_err(|_| io::Error::other("callback dropped"))?
}

/// `n` Normal entries of 3000..7000 bytes in term 1: a few per 64 KiB segment, so a crash test
/// spans segment rolls.
pub fn varied(n: u64) -> Vec<Entry> {
    (1..=n).map(|i| normal(1, i, 3000 + (i as usize * 977) % 4000)).collect()
}

/// Appends `entries` five at a time, each batch acknowledged (durable) before the next.
pub async fn append_acked(log: &mut CommitLog, entries: &[Entry]) {
    for chunk in entries.chunks(5) {
        append(log, chunk.to_vec()).await.expect("acknowledged append");
    }
}

/// Appends `entries` five at a time without waiting; returns each batch's pending callback.
pub async fn append_pending(
    log: &mut CommitLog,
    entries: &[Entry],
) -> Vec<tokio::sync::oneshot::Receiver<io::Result<()>>> {
    let mut pending = Vec::new();
    for chunk in entries.chunks(5) {
        pending.push(append_nowait(log, chunk.to_vec()).await.expect("append"));
    }
    pending
}

pub async fn read_all(log: &mut CommitLog) -> Vec<Entry> {
    log.try_get_log_entries(..).await.expect("read")
}

pub fn indexes(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.log_id().index).collect()
}

pub fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    names.sort();
    names
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

/// Lets the allocator thread finish a spare so directory listings are stable.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}
