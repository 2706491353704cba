//! Large writes that reach the disk as a stream of small flushes.
//!
//! A file written whole and then synced once goes to the device in one burst, and every other
//! fdatasync on that device (the CommitLog's own, and on a shared disk every replica's) waits
//! behind it: a 128 MiB segment's zeros held the log's syncs for ~50 ms, a 15 MB checkpoint for
//! ~15 ms, and each was a spike in send latency. Syncing every [`SYNC_EVERY`] bytes as they
//! are written keeps what is queued at the device small.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes written between two syncs.
pub const SYNC_EVERY: usize = 2 << 20;

/// Writes `data` at `offset`, syncing (`fdatasync`) after every [`SYNC_EVERY`] bytes and at
/// the end: when it returns, all of `data` is durable.
pub fn write_all_synced(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    let mut at = offset;
    for piece in data.chunks(SYNC_EVERY) {
        file.write_all_at(piece, at)?;
        file.sync_data()?;
        at += piece.len() as u64;
    }
    if data.is_empty() {
        file.sync_data()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_everything_at_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        let data: Vec<u8> = (0..SYNC_EVERY * 2 + 12345).map(|i| (i % 251) as u8).collect();
        write_all_synced(&file, &data, 7).unwrap();
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len(), 7 + data.len());
        assert_eq!(&back[7..], &data[..]);
        assert_eq!(&back[..7], &[0u8; 7]);
    }
}
