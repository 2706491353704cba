//! The side meta file: vote, committed, last purged, base position, segment size.
//!
//! These never go into the segments: a record's position must be a pure function of the
//! committed prefix, so replicas stay byte-identical, and inline vote/purge markers would
//! break that. The file holds two 4 KiB slots written alternately, each stamped with a
//! sequence number and CRC'd. A write goes to the slot *not* holding the current state and is
//! `fdatasync`ed before it counts, so a torn write can only damage the slot being written:
//! open picks the valid slot with the highest sequence number. Layout of a slot (LE):
//!
//! ```text
//!  0 magic u32 "RMQM" | 4 crc u32 of [8, 96) | 8 ver u8 = 1 | 9 flags u8 | 10 rsv u16 | 12 rsv u32
//! 16 seq u64 | 24 segment_bytes u64 | 32 vote term | 40 vote node | 48 committed term
//! 56 committed index | 64 purged term | 72 purged index | 80 base index | 88 base position
//! flags: 1 vote, 2 vote committed, 4 committed, 8 last_purged, 16 base
//! ```
//!
//! `committed` is written lazily by the flusher (see [`MetaStore::persist_committed_if_due`]):
//! a stale value is safe because committed is monotone, and recovery clamps it to the log.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use raftmq_raft::{LogId, Vote};

use super::error::StoreError;
use crate::io::{IoBackend, SegmentFile};

pub(crate) const META_FILE: &str = "meta";
const SLOT_BYTES: u64 = 4096;
const SLOT_USED: usize = 96;
const MAGIC: [u8; 4] = *b"RMQM";
const VERSION: u8 = 1;
const F_VOTE: u8 = 1;
const F_VOTE_COMMITTED: u8 = 2;
const F_COMMITTED: u8 = 4;
const F_PURGED: u8 = 8;
const F_BASE: u8 = 16;

/// How often, at most, the flusher spends an extra `fdatasync` on persisting `committed`.
pub(crate) const COMMITTED_PERSIST_INTERVAL: Duration = Duration::from_millis(100);

/// Where the log restarts after a snapshot install ([`super::CommitLog::set_base`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Base {
    pub index: u64,
    pub position: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MetaState {
    pub segment_bytes: u64,
    pub vote: Option<Vote>,
    pub committed: Option<LogId>,
    pub last_purged: Option<LogId>,
    pub base: Option<Base>,
}

pub(crate) struct MetaStore {
    file: Arc<dyn SegmentFile>,
    inner: Mutex<MetaInner>,
}

struct MetaInner {
    state: MetaState,
    seq: u64,
    /// Latest value given to `save_committed`; `state.committed` is what is on disk.
    pending_committed: Option<LogId>,
    last_committed_write: Option<Instant>,
}

fn put(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get(buf: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(a)
}

fn encode(state: &MetaState, seq: u64) -> [u8; SLOT_USED] {
    let mut b = [0u8; SLOT_USED];
    b[0..4].copy_from_slice(&MAGIC);
    b[8] = VERSION;
    let mut flags = 0;
    put(&mut b, 16, seq);
    put(&mut b, 24, state.segment_bytes);
    if let Some(v) = &state.vote {
        flags |= F_VOTE | if v.committed { F_VOTE_COMMITTED } else { 0 };
        put(&mut b, 32, v.leader_id.term);
        put(&mut b, 40, v.leader_id.voted_for);
    }
    if let Some(c) = &state.committed {
        flags |= F_COMMITTED;
        put(&mut b, 48, c.leader_id.term);
        put(&mut b, 56, c.index);
    }
    if let Some(p) = &state.last_purged {
        flags |= F_PURGED;
        put(&mut b, 64, p.leader_id.term);
        put(&mut b, 72, p.index);
    }
    if let Some(base) = &state.base {
        flags |= F_BASE;
        put(&mut b, 80, base.index);
        put(&mut b, 88, base.position);
    }
    b[9] = flags;
    let crc = crc32c::crc32c(&b[8..]);
    b[4..8].copy_from_slice(&crc.to_le_bytes());
    b
}

/// `Ok(None)` for a never-written (all-zero) slot; `Err` for a damaged one.
fn decode(b: &[u8]) -> Result<Option<(u64, MetaState)>, String> {
    if b.iter().all(|&x| x == 0) {
        return Ok(None);
    }
    if b[0..4] != MAGIC || b[8] != VERSION || b[4..8] != crc32c::crc32c(&b[8..SLOT_USED]).to_le_bytes() {
        return Err("bad magic, version or CRC".into());
    }
    let flags = b[9];
    let log_id = |flag: u8, at: usize| (flags & flag != 0).then(|| LogId::new_term_index(get(b, at), get(b, at + 8)));
    let state = MetaState {
        segment_bytes: get(b, 24),
        vote: (flags & F_VOTE != 0).then(|| {
            let (term, node) = (get(b, 32), get(b, 40));
            if flags & F_VOTE_COMMITTED != 0 { Vote::new_committed(term, node) } else { Vote::new(term, node) }
        }),
        committed: log_id(F_COMMITTED, 48),
        last_purged: log_id(F_PURGED, 64),
        base: (flags & F_BASE != 0).then(|| Base { index: get(b, 80), position: get(b, 88) }),
    };
    Ok(Some((get(b, 16), state)))
}

impl MetaStore {
    /// Opens (or creates) the meta file of `dir`; refuses a different segment size.
    pub fn open(io: &dyn IoBackend, dir: &Path, exists: bool, segment_bytes: u64) -> Result<Self, StoreError> {
        let path = dir.join(META_FILE);
        let ctx = |what: &str| format!("{what} {}", path.display());
        let file = if exists { io.open(&path) } else { io.create_zeroed(&path, 2 * SLOT_BYTES) }
            .map_err(|e| StoreError::io(ctx("opening"), e))?;
        let mut best: Option<(u64, MetaState)> = None;
        let mut damaged = 0;
        for slot in 0..2 {
            let mut b = [0u8; SLOT_USED];
            file.read_at(&mut b, slot * SLOT_BYTES).map_err(|e| StoreError::io(ctx("reading"), e))?;
            match decode(&b) {
                Ok(Some((seq, st))) if best.as_ref().is_none_or(|(s, _)| seq > *s) => best = Some((seq, st)),
                Ok(_) => {}
                Err(why) => {
                    tracing::warn!(slot, %why, "ignoring damaged meta slot (torn write of the other slot)");
                    damaged += 1;
                }
            }
        }
        if damaged == 2 {
            return Err(StoreError::corrupt(&path, "both meta slots are damaged"));
        }
        let (seq, state) = best.unwrap_or_default();
        if seq > 0 && state.segment_bytes != segment_bytes {
            return Err(StoreError::corrupt(
                &path,
                format!("log was written with segment_bytes {} but config says {segment_bytes}", state.segment_bytes),
            ));
        }
        let store = Self {
            file,
            inner: Mutex::new(MetaInner { pending_committed: state.committed, state, seq, last_committed_write: None }),
        };
        if seq == 0 {
            // Record the segment size at once, so a restart with another size is refused
            // even before the first vote.
            store.update(|m| m.segment_bytes = segment_bytes).map_err(|e| StoreError::io(ctx("writing"), e))?;
        }
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, MetaInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn state(&self) -> MetaState {
        self.lock().state.clone()
    }

    pub fn vote(&self) -> Option<Vote> {
        self.lock().state.vote
    }

    /// Applies `f` to a copy of the state and makes it durable (slot write + `fdatasync`)
    /// before the in-memory state changes.
    pub fn update(&self, f: impl FnOnce(&mut MetaState)) -> std::io::Result<()> {
        let mut inner = self.lock();
        let mut next = inner.state.clone();
        f(&mut next);
        Self::write(&self.file, &mut inner, next)
    }

    fn write(file: &Arc<dyn SegmentFile>, inner: &mut MetaInner, next: MetaState) -> std::io::Result<()> {
        let seq = inner.seq + 1;
        file.write_at(&encode(&next, seq), (seq % 2) * SLOT_BYTES)?;
        file.sync_data()?;
        inner.seq = seq;
        inner.state = next;
        Ok(())
    }

    pub fn set_pending_committed(&self, committed: Option<LogId>) {
        self.lock().pending_committed = committed;
    }

    /// The last value given to `save_committed` (what openraft expects to read back).
    pub fn pending_committed(&self) -> Option<LogId> {
        self.lock().pending_committed
    }

    /// When the pending `committed` should next be written, if it is newer than the durable
    /// one and covered by the synced log (`synced_last_index`).
    pub fn committed_due_at(&self, synced_last_index: Option<u64>) -> Option<Instant> {
        let inner = self.lock();
        let pending = inner.pending_committed?;
        if Some(pending) == inner.state.committed || synced_last_index.is_none_or(|i| pending.index > i) {
            return None;
        }
        Some(inner.last_committed_write.map_or_else(Instant::now, |t| t + COMMITTED_PERSIST_INTERVAL))
    }

    /// Writes the pending `committed` if it is due (or `force`, at shutdown).
    pub fn persist_committed_if_due(&self, synced_last_index: Option<u64>, force: bool) -> std::io::Result<()> {
        let Some(due) = self.committed_due_at(synced_last_index) else { return Ok(()) };
        if !force && due > Instant::now() {
            return Ok(());
        }
        let mut inner = self.lock();
        let mut next = inner.state.clone();
        next.committed = inner.pending_committed;
        Self::write(&self.file, &mut inner, next)?;
        inner.last_committed_write = Some(Instant::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_round_trip() {
        let st = MetaState {
            segment_bytes: 65536,
            vote: Some(Vote::new_committed(5, 2)),
            committed: Some(LogId::new_term_index(5, 100)),
            last_purged: None,
            base: Some(Base { index: 7, position: 123 }),
        };
        let b = encode(&st, 9);
        assert_eq!(decode(&b).unwrap(), Some((9, st)));
        let mut torn = b;
        torn[50] ^= 1;
        assert!(decode(&torn).is_err());
        assert_eq!(decode(&[0u8; SLOT_USED]).unwrap(), None);
    }
}
