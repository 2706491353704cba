//! The checkpoint file: written to a temp file, fsynced, renamed over the old
//! one, and the directory fsynced, so a crash leaves either the old or the new
//! checkpoint, never a torn one.
//!
//! Layout: `magic u32 | crc32c u32 (of the payload) | len u32 | Checkpoint protobuf`, little-endian.

use std::fs;
use std::path::{Path, PathBuf};

use prost::Message;
use raftmq_proto::broker::Checkpoint;

const MAGIC: u32 = 0x524d_434b; // "RMCK"
const FILE: &str = "state.ckpt";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint I/O at {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("checkpoint {path} is corrupt: {why}")]
    Corrupt { path: PathBuf, why: String },
}

impl CheckpointError {
    /// Maps an I/O error on `path`.
    pub(super) fn io(path: &Path) -> impl Fn(std::io::Error) -> Self + '_ {
        move |source| CheckpointError::Io { path: path.to_path_buf(), source }
    }
}

pub struct CheckpointFile {
    dir: PathBuf,
    file: String,
}

impl CheckpointFile {
    pub fn open(dir: &Path) -> Result<Self, CheckpointError> {
        Self::open_named(dir, FILE)
    }

    /// A checkpoint file of another name in `dir` (a pin, `sm/pins.rs`).
    pub fn open_named(dir: &Path, file: &str) -> Result<Self, CheckpointError> {
        fs::create_dir_all(dir).map_err(|source| CheckpointError::Io { path: dir.into(), source })?;
        Ok(Self { dir: dir.to_path_buf(), file: file.to_owned() })
    }

    pub fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let Some(payload) = self.load_encoded()? else { return Ok(None) };
        let path = self.dir.join(&self.file);
        Checkpoint::decode(&payload[..]).map(Some).map_err(|e| CheckpointError::Corrupt { path, why: e.to_string() })
    }

    /// The checkpoint's protobuf bytes, checked against the header's length and CRC.
    pub fn load_encoded(&self) -> Result<Option<Vec<u8>>, CheckpointError> {
        let path = self.dir.join(&self.file);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CheckpointError::Io { path, source }),
        };
        let corrupt = |why: &str| CheckpointError::Corrupt { path: path.clone(), why: why.to_string() };
        let word = |at: usize| -> Result<u32, CheckpointError> {
            let s = bytes.get(at..at + 4).ok_or_else(|| corrupt("short header"))?;
            Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        };
        if word(0)? != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let (crc, len) = (word(4)?, word(8)? as usize);
        let payload = bytes.get(12..12 + len).ok_or_else(|| corrupt("short payload"))?;
        if crc32c::crc32c(payload) != crc {
            return Err(corrupt("crc mismatch"));
        }
        Ok(Some(payload.to_vec()))
    }

    /// Moves the checkpoint aside (kept for inspection as
    /// `state.ckpt.ahead-of-log-<applied>`), so the next load finds none.
    pub fn set_aside(&self, applied: u64) -> Result<(), CheckpointError> {
        let (from, to) = (self.dir.join(&self.file), self.dir.join(format!("{}.ahead-of-log-{applied}", self.file)));
        let io = |source| CheckpointError::Io { path: from.clone(), source };
        fs::rename(&from, &to).map_err(io)?;
        fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io)
    }

    pub fn store(&self, c: &Checkpoint) -> Result<(), CheckpointError> {
        self.store_encoded(&c.encode_to_vec())
    }

    /// Stores a checkpoint already encoded (a checkpoint and its pin share one encoding).
    pub fn store_encoded(&self, payload: &[u8]) -> Result<(), CheckpointError> {
        let mut buf = Vec::with_capacity(12 + payload.len());
        buf.extend_from_slice(&MAGIC.to_le_bytes());
        buf.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buf.extend_from_slice(payload);
        let tmp = self.dir.join(format!("{}.tmp", self.file));
        let io = CheckpointError::io;
        let f = fs::File::create(&tmp).map_err(io(&tmp))?;
        // Synced as it is written: a large checkpoint (the idempotent-send window) written in
        // one go held up the CommitLog's fdatasyncs (raftmq_store::io::write_all_synced).
        raftmq_store::io::write_all_synced(&f, &buf, 0).map_err(io(&tmp))?;
        fs::rename(&tmp, self.dir.join(&self.file)).map_err(io(&tmp))?;
        fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io(&self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_load_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let f = CheckpointFile::open(dir.path()).unwrap();
        assert!(f.load().unwrap().is_none());
        let c = Checkpoint { next_position: 77, ..Default::default() };
        f.store(&c).unwrap();
        assert_eq!(f.load().unwrap().unwrap().next_position, 77);
        let path = dir.path().join(FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        assert!(matches!(f.load(), Err(CheckpointError::Corrupt { .. })));
    }
}
