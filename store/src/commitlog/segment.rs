//! One segment file: a fixed-size, zero-preallocated file named by the physical position of
//! its first byte (20-digit zero-padded decimal, as RocketMQ names commitlog files).
//!
//! Segment bases are multiples of the segment size, so the segment holding any position is
//! found by arithmetic. Writes go through `pwrite` ([`SegmentFile::write_at`]); reads go
//! through one read-only mapping of the whole file, wrapped once in a [`Bytes`] so each entry
//! body handed to openraft or a consumer is a refcounted slice (no copy, no allocation).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::error::StoreError;
use crate::io::{IoBackend, SegmentFile};

/// Length of a segment file name.
const NAME_DIGITS: usize = 20;

pub(crate) struct Segment {
    pub base: u64,
    pub path: PathBuf,
    pub file: Arc<dyn SegmentFile>,
    /// The whole file, mapped read-only. Never outlives the mapping (the owner is the map).
    pub data: Bytes,
}

pub(crate) fn segment_name(base: u64) -> String {
    format!("{base:0NAME_DIGITS$}")
}

pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    if name.len() == NAME_DIGITS && name.bytes().all(|b| b.is_ascii_digit()) { name.parse().ok() } else { None }
}

impl Segment {
    /// Zero-fills a new segment (durably, directory included) and maps it.
    pub fn create(io: &dyn IoBackend, dir: &Path, base: u64, size: u64) -> Result<Self, StoreError> {
        let path = dir.join(segment_name(base));
        let file = io
            .create_zeroed(&path, size)
            .map_err(|e| StoreError::io(format!("creating segment {}", path.display()), e))?;
        Self::map(path, base, file, size)
    }

    /// Opens an existing segment, which must have exactly the configured size.
    pub fn open(io: &dyn IoBackend, dir: &Path, base: u64, size: u64) -> Result<Self, StoreError> {
        let path = dir.join(segment_name(base));
        let file = io.open(&path).map_err(|e| StoreError::io(format!("opening segment {}", path.display()), e))?;
        Self::map(path, base, file, size)
    }

    fn map(path: PathBuf, base: u64, file: Arc<dyn SegmentFile>, size: u64) -> Result<Self, StoreError> {
        let len = file.file_len().map_err(|e| StoreError::io(format!("sizing {}", path.display()), e))?;
        if len != size {
            return Err(StoreError::corrupt(
                &path,
                format!("segment is {len} bytes but segment_bytes is {size} (segment size cannot change)"),
            ));
        }
        let map = file.map_readonly().map_err(|e| StoreError::io(format!("mapping {}", path.display()), e))?;
        Ok(Self { base, path, file, data: Bytes::from_owner(map) })
    }

    /// Physical position one past the last byte of this segment.
    pub fn end(&self) -> u64 {
        self.base + self.data.len() as u64
    }

    /// Offset of absolute position `pos` within this segment's mapping.
    pub fn offset(&self, pos: u64) -> usize {
        (pos - self.base) as usize
    }

    /// `pwrite` at absolute log position `pos` (which must lie in this segment).
    pub fn write_at_pos(&self, buf: &[u8], pos: u64) -> std::io::Result<()> {
        self.file.write_at(buf, pos - self.base)
    }

    /// Whether the segment holds no record at its start (unused preallocated space).
    pub fn starts_empty(&self) -> bool {
        self.data.iter().take(super::record::HEADER_LEN).all(|&b| b == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_20_digit_positions() {
        assert_eq!(segment_name(65536), "00000000000000065536");
        assert_eq!(parse_segment_name("00000000000000065536"), Some(65536));
        assert_eq!(parse_segment_name("00000000000000065536.tmp"), None);
        assert_eq!(parse_segment_name("meta"), None);
    }
}
