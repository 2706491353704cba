//! [`RealIo`]: `std::fs` with `pwrite`/`pread` (`std::os::unix::fs::FileExt`).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use super::{IoBackend, SegmentFile};

/// Zero-fill chunk: one sync's worth ([`super::paced`]), small enough not to matter in memory.
const ZERO_CHUNK: usize = super::paced::SYNC_EVERY;

/// The production backend: plain files on the local filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealIo;

impl RealIo {
    pub fn new() -> Self {
        Self
    }
}

/// An open file of [`RealIo`].
#[derive(Debug)]
pub struct RealFile {
    file: File,
}

impl RealFile {
    fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Self { file })
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Reserves `len` bytes of `file` (empty) as allocated-but-unwritten extents: they read as
/// zeros, later writes need no block allocation, and nothing is written now. Returns false
/// where the filesystem cannot (tmpfs, some network filesystems).
fn preallocate(file: &File, len: u64) -> io::Result<bool> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Zero-fills through the page cache, synced as it goes (`write_all_synced`).
fn zero_fill_buffered(file: &File, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; ZERO_CHUNK.min(usize::try_from(len).unwrap_or(ZERO_CHUNK))];
    let mut off = 0u64;
    while off < len {
        let n = zeros.len().min(usize::try_from(len - off).unwrap_or(zeros.len()));
        super::write_all_synced(file, &zeros[..n], off)?;
        off += n as u64;
    }
    Ok(())
}

impl IoBackend for RealIo {
    fn create_zeroed(&self, path: &Path, len: u64) -> io::Result<Arc<dyn SegmentFile>> {
        // Fill under a temporary name so a crash never leaves a short file under the final
        // name: recovery may then trust that every named segment has its full size.
        let tmp = tmp_path(path);
        {
            let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&tmp)?;
            if !preallocate(&file, len)? {
                zero_fill_buffered(&file, len)?;
            }
            file.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        self.sync_dir(parent_dir(path))?;
        Ok(Arc::new(RealFile::open(path)?))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn SegmentFile>> {
        Ok(Arc::new(RealFile::open(path)?))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        fs::create_dir_all(dir)?;
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

impl SegmentFile for RealFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn file_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn map_readonly(&self) -> io::Result<Mmap> {
        // SAFETY: memmap2 requires that the mapped file is not truncated or modified in ways
        // that break the reader's assumptions while the map lives. The CommitLog never shrinks
        // or truncates a segment (they are preallocated at full size and only unlinked), so no
        // page of the mapping can fall past EOF. Bytes are only modified through `pwrite` in
        // regions readers are not handed out for: past the published end of the log, or an
        // uncommitted tail after `truncate_after` (see `commitlog` module docs).
        unsafe { Mmap::map(&self.file) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways of making a segment give a file of the full size that reads as zeros: the
    /// `fallocate` reservation (ext4, xfs) and the synced zero-fill it falls back to.
    #[test]
    fn a_new_segment_is_all_zeros_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let len = 2 * (ZERO_CHUNK as u64) + 4096 * 3 + 5;
        let seg = RealIo.create_zeroed(&dir.path().join("a"), len).unwrap();
        assert_eq!(seg.file_len().unwrap(), len);
        let back = fs::read(dir.path().join("a")).unwrap();
        assert!(back.len() as u64 == len && back.iter().all(|&b| b == 0));

        let path = dir.path().join("b");
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        zero_fill_buffered(&file, len).unwrap();
        let back = fs::read(&path).unwrap();
        assert!(back.len() as u64 == len && back.iter().all(|&b| b == 0));
    }
}
