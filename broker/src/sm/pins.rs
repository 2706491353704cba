//! Pinned checkpoints: the state at some applied index, kept until retention
//! purges the log past it. A pin is the snapshot a replica hands to a peer
//! that lags behind its purged log (the peer then receives every retained
//! entry after the pin through normal replication), and the state a replica
//! recovers from when its log was purged past its regular checkpoint.
//!
//! Every `pin_interval` one of the regular checkpoints is also written here,
//! as `pin-<index>-<term>-<next position>-<leader stamp ms>.ckpt`: the name
//! carries what the leader's retention decision and openraft's snapshot meta
//! need, so opening the broker reads no pin bodies. Pins are local: each
//! replica purges only up to a pin of its own (see ARCHITECTURE.md,
//! "Retention").

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use prost::Message;
use raftmq_proto::broker::Checkpoint;

use super::checkpoint::{CheckpointError, CheckpointFile};

/// What a pin's file name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinInfo {
    pub index: u64,
    pub term: u64,
    /// CommitLog position of the record after entry `index`.
    pub next_position: u64,
    /// The wall clock (ms) of the leader that stamped the last entry before it.
    pub stamp_ms: i64,
}

impl PinInfo {
    pub fn of(c: &Checkpoint) -> Option<Self> {
        let applied = c.last_applied.as_ref()?;
        Some(Self {
            index: applied.index,
            term: applied.term,
            next_position: c.next_position,
            stamp_ms: c.window_clock.as_ref().map_or(0, |w| w.last_stamp_ms),
        })
    }

    fn file_name(&self) -> String {
        format!("pin-{:020}-{}-{}-{}.ckpt", self.index, self.term, self.next_position, self.stamp_ms)
    }

    fn parse(name: &str) -> Option<Self> {
        let mut parts = name.strip_prefix("pin-")?.strip_suffix(".ckpt")?.split('-');
        let info = Self {
            index: parts.next()?.parse().ok()?,
            term: parts.next()?.parse().ok()?,
            next_position: parts.next()?.parse().ok()?,
            stamp_ms: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(info)
    }
}

pub struct PinStore {
    dir: PathBuf,
    pins: Mutex<BTreeMap<u64, PinInfo>>,
}

impl PinStore {
    pub fn open(dir: &Path) -> Result<Self, CheckpointError> {
        let io = |source| CheckpointError::Io { path: dir.to_path_buf(), source };
        fs::create_dir_all(dir).map_err(io)?;
        let mut pins = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(io)? {
            let name = entry.map_err(io)?.file_name();
            match name.to_str().and_then(PinInfo::parse) {
                Some(p) => {
                    pins.insert(p.index, p);
                }
                // A temp file of a store that crashed, or a stranger: not a pin.
                None => tracing::debug!(?name, "ignoring a file among the pins"),
            }
        }
        Ok(Self { dir: dir.to_path_buf(), pins: Mutex::new(pins) })
    }

    fn list(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, PinInfo>> {
        self.pins.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `c` as a pin (durable when it returns).
    pub fn store(&self, c: &Checkpoint) -> Result<Option<PinInfo>, CheckpointError> {
        self.store_encoded(c, &c.encode_to_vec())
    }

    /// [`store`](Self::store) with `c` already encoded as `payload`.
    pub fn store_encoded(&self, c: &Checkpoint, payload: &[u8]) -> Result<Option<PinInfo>, CheckpointError> {
        let Some(info) = PinInfo::of(c) else { return Ok(None) };
        CheckpointFile::open_named(&self.dir, &info.file_name())?.store_encoded(payload)?;
        self.list().insert(info.index, info);
        Ok(Some(info))
    }

    pub fn load(&self, info: &PinInfo) -> Result<Checkpoint, CheckpointError> {
        let payload = self.load_encoded(info)?;
        Checkpoint::decode(&payload[..])
            .map_err(|e| CheckpointError::Corrupt { path: self.dir.join(info.file_name()), why: e.to_string() })
    }

    /// The pin's protobuf bytes (what a snapshot carries), checked.
    pub fn load_encoded(&self, info: &PinInfo) -> Result<Vec<u8>, CheckpointError> {
        let name = info.file_name();
        CheckpointFile::open_named(&self.dir, &name)?
            .load_encoded()?
            .ok_or_else(|| CheckpointError::Corrupt { path: self.dir.join(&name), why: "the pin file is gone".into() })
    }

    /// The newest pin at or before `index`.
    pub fn at_or_before(&self, index: u64) -> Option<PinInfo> {
        self.list().range(..=index).next_back().map(|(_, p)| *p)
    }

    pub fn all(&self) -> Vec<PinInfo> {
        self.list().values().copied().collect()
    }

    /// Deletes the pins before `index` (the log was purged past them).
    pub fn remove_before(&self, index: u64) -> Result<(), CheckpointError> {
        let doomed: Vec<PinInfo> = {
            let mut list = self.list();
            let keep = list.split_off(&index);
            std::mem::replace(&mut *list, keep).into_values().collect()
        };
        for p in doomed {
            let path = self.dir.join(p.file_name());
            if let Err(source) = fs::remove_file(&path)
                && source.kind() != std::io::ErrorKind::NotFound
            {
                return Err(CheckpointError::Io { path, source });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftmq_proto::broker::WindowClock;
    use raftmq_proto::raft::LogId as PbLogId;

    fn ckpt(index: u64, pos: u64) -> Checkpoint {
        Checkpoint {
            last_applied: Some(PbLogId { term: 3, index }),
            next_position: pos,
            window_clock: Some(WindowClock { last_stamp_ms: 1_700_000_000_000 + index as i64, ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn pins_survive_a_reopen_and_are_found_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let pins = PinStore::open(dir.path()).unwrap();
        for (i, pos) in [(10, 100), (20, 200), (30, 300)] {
            pins.store(&ckpt(i, pos)).unwrap();
        }
        assert!(pins.store(&Checkpoint::default()).unwrap().is_none(), "nothing applied: nothing to pin");
        let pins = PinStore::open(dir.path()).unwrap();
        assert_eq!(pins.at_or_before(25).map(|p| p.index), Some(20));
        assert_eq!(pins.at_or_before(9), None);
        let p = pins.at_or_before(30).unwrap();
        assert_eq!((p.term, p.next_position, p.stamp_ms), (3, 300, 1_700_000_000_030));
        assert_eq!(pins.load(&p).unwrap(), ckpt(30, 300));
        pins.remove_before(30).unwrap();
        assert_eq!(PinStore::open(dir.path()).unwrap().all().iter().map(|p| p.index).collect::<Vec<_>>(), vec![30]);
    }
}
