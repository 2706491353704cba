//! [`JournalIo`]: a [`RealIo`] that keeps an on-disk undo journal, so a process killed with
//! SIGKILL can be made to lose exactly the writes it had not synced (feature `fault-journal`).
//!
//! [`FaultyIo::crash`](super::FaultyIo::crash) reverts unsynced writes from pre-images it keeps
//! in memory, which a killed process cannot do. This backend writes those pre-images to a file
//! instead, and [`replay_undo_journal`] applies them after the kill, before the restart: the
//! data files then hold what a power loss at the moment of the kill would have left.
//!
//! Model (the same as `FaultyIo`'s, per file):
//! - Before each `write_at`, the bytes it overwrites are appended to the file's journal as one
//!   record `(offset, pre-image)`. The journal append, the data write, and their order are kept
//!   under one lock, so a concurrent `sync_data` sees both or neither.
//! - A successful `sync_data` forgets the records that were in the journal when it started (it
//!   covers their writes). If writes arrived meanwhile, their records survive the forgetting.
//! - A SIGKILL keeps the page cache, so the journal is never synced: it only has to survive the
//!   process, not the machine. A kill between the data `fdatasync` and the forgetting leaves
//!   records that sync already covered; replaying them is a power loss *during* that sync
//!   (which never returned, so nobody was told the data was durable): still a legal outcome.
//! - A kill in the middle of a journal append leaves a torn last record (bad CRC or short);
//!   its data write had not started, so replay ignores it.
//! - `create_zeroed` files are durable at creation and `remove` is not reverted, as in
//!   `FaultyIo`. Writes past the end of a file are not modelled (the CommitLog preallocates
//!   every file it writes): only the bytes that existed are journalled.
//!
//! A journal left by a killed process that was restarted *without* a replay (a plain
//! `kill -9`) is kept and appended to: its writes are still unsynced page cache that a later
//! power loss could lose, until the restarted process syncs that file.
//!
//! Journal file (`<dir>/<data file name>-<crc of its path>.undo`), little-endian:
//!
//! ```text
//! header:  "RMQUNDO1" | path_len u32 | crc32c(path) u32 | path (the data file, absolute)
//! record:  len u32 | crc u32 of [offset, pre-image] | offset u64 | pre-image (len bytes)
//! ```

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use memmap2::Mmap;

use super::{IoBackend, RealIo, SegmentFile};

const MAGIC: &[u8; 8] = b"RMQUNDO1";
const RECORD_HEADER: usize = 16;
const JOURNAL_EXT: &str = "undo";

/// The undo-journaling backend. Cloning shares the journals.
#[derive(Clone)]
pub struct JournalIo {
    dir: PathBuf,
    inner: Arc<dyn IoBackend>,
    /// One journal per data file, shared by every open handle of it.
    journals: Arc<Mutex<HashMap<PathBuf, Weak<Journal>>>>,
}

#[derive(Debug)]
struct Journal {
    path: PathBuf,
    state: Mutex<JournalState>,
}

#[derive(Debug)]
struct JournalState {
    file: File,
    /// Bytes of the header; the journal holds no records when `len == header_len`.
    header_len: u64,
    len: u64,
}

struct JournalFile {
    inner: Arc<dyn SegmentFile>,
    journal: Arc<Journal>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn encode_header(data_path: &Path) -> Vec<u8> {
    let path = data_path.as_os_str().as_bytes();
    let mut h = Vec::with_capacity(16 + path.len());
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&(path.len() as u32).to_le_bytes());
    h.extend_from_slice(&crc32c::crc32c(path).to_le_bytes());
    h.extend_from_slice(path);
    h
}

fn encode_record(offset: u64, pre_image: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(RECORD_HEADER + pre_image.len());
    r.extend_from_slice(&(pre_image.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&offset.to_le_bytes()), pre_image);
    r.extend_from_slice(&crc.to_le_bytes());
    r.extend_from_slice(&offset.to_le_bytes());
    r.extend_from_slice(pre_image);
    r
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A journal's data file and its valid records, oldest first. `None` if the header is torn
/// (the process died creating the journal, before any record could follow it).
struct Parsed {
    data_path: PathBuf,
    header_len: usize,
    /// (offset, pre-image), oldest first.
    records: Vec<(u64, Vec<u8>)>,
    /// Bytes up to the end of the last valid record.
    valid_len: usize,
}

fn parse(bytes: &[u8]) -> Option<Parsed> {
    if bytes.get(..8)? != MAGIC {
        return None;
    }
    let path_len = u32_at(bytes, 8)? as usize;
    let path = bytes.get(16..16 + path_len)?;
    if u32_at(bytes, 12)? != crc32c::crc32c(path) {
        return None;
    }
    let data_path = PathBuf::from(std::ffi::OsStr::from_bytes(path));
    let header_len = 16 + path_len;
    let mut at = header_len;
    let mut records = Vec::new();
    while let (Some(len), Some(crc)) = (u32_at(bytes, at), u32_at(bytes, at + 4)) {
        let len = len as usize;
        let Some(body) = bytes.get(at + 8..at + RECORD_HEADER + len) else { break };
        if crc32c::crc32c(body) != crc {
            break;
        }
        let offset = u64::from_le_bytes(body[..8].try_into().ok()?);
        records.push((offset, body[8..].to_vec()));
        at += RECORD_HEADER + len;
    }
    Some(Parsed { data_path, header_len, records, valid_len: at })
}

impl std::fmt::Debug for JournalIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalIo").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl JournalIo {
    /// Journals go to `dir` (created if needed). Keep it out of every directory the CommitLog
    /// lists; the broker uses `<data_dir>/undo-journal`.
    pub fn new(dir: &Path) -> io::Result<Self> {
        Self::over(dir, Arc::new(RealIo))
    }

    /// Journals the writes made through `inner` (tests stack it on a `FaultyIo` to hold syncs
    /// back deterministically).
    pub fn over(dir: &Path, inner: Arc<dyn IoBackend>) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(Self { dir: dir.to_path_buf(), inner, journals: Arc::default() })
    }

    fn journal_path(&self, data_path: &Path) -> PathBuf {
        let name = data_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let crc = crc32c::crc32c(data_path.as_os_str().as_bytes());
        self.dir.join(format!("{name}-{crc:08x}.{JOURNAL_EXT}"))
    }

    fn journal_for(&self, data_path: &Path) -> io::Result<Arc<Journal>> {
        let data_path = fs::canonicalize(data_path)?;
        let mut journals = lock(&self.journals);
        if let Some(j) = journals.get(&data_path).and_then(Weak::upgrade) {
            return Ok(j);
        }
        let path = self.journal_path(&data_path);
        let state = JournalState::open(&path, &data_path)?;
        let j = Arc::new(Journal { path, state: Mutex::new(state) });
        journals.retain(|_, w| w.strong_count() > 0);
        journals.insert(data_path, Arc::downgrade(&j));
        Ok(j)
    }

    fn wrap(&self, path: &Path, inner: Arc<dyn SegmentFile>) -> io::Result<Arc<dyn SegmentFile>> {
        Ok(Arc::new(JournalFile { inner, journal: self.journal_for(path)? }))
    }
}

impl JournalState {
    /// Opens the journal of `data_path`, keeping the valid records of an earlier process (see
    /// the module docs) and dropping a torn tail; creates it if absent or its header is torn.
    fn open(path: &Path, data_path: &Path) -> io::Result<Self> {
        let header = encode_header(data_path);
        if let Ok(bytes) = fs::read(path)
            && let Some(p) = parse(&bytes)
        {
            if p.data_path != data_path {
                return Err(io::Error::other(format!(
                    "undo journal {} belongs to {}, not {}",
                    path.display(),
                    p.data_path.display(),
                    data_path.display()
                )));
            }
            let file = OpenOptions::new().read(true).write(true).open(path)?;
            file.set_len(p.valid_len as u64)?;
            return Ok(Self { file, header_len: p.header_len as u64, len: p.valid_len as u64 });
        }
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        file.write_all_at(&header, 0)?;
        Ok(Self { file, header_len: header.len() as u64, len: header.len() as u64 })
    }
}

impl Journal {
    /// Forgets the records before `mark` (a sync covered their writes). Records appended
    /// since are kept: they move to a fresh journal that replaces this one by rename, so a
    /// kill at any point leaves either the old journal or the new one, never a mix.
    fn forget_before(&self, mark: u64) -> io::Result<()> {
        let mut s = lock(&self.state);
        if s.len == mark {
            s.file.set_len(s.header_len)?;
            s.len = s.header_len;
            return Ok(());
        }
        let mut header = vec![0u8; s.header_len as usize];
        s.file.read_exact_at(&mut header, 0)?;
        let mut tail = vec![0u8; (s.len - mark) as usize];
        s.file.read_exact_at(&mut tail, mark)?;
        let mut tmp_name = self.path.as_os_str().to_os_string();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&tmp)?;
        file.write_all_at(&header, 0)?;
        file.write_all_at(&tail, s.header_len)?;
        fs::rename(&tmp, &self.path)?;
        s.len = s.header_len + tail.len() as u64;
        s.file = file;
        Ok(())
    }
}

impl IoBackend for JournalIo {
    fn create_zeroed(&self, path: &Path, len: u64) -> io::Result<Arc<dyn SegmentFile>> {
        let file = self.inner.create_zeroed(path, len)?;
        // A journal left by an earlier file of the same name describes bytes that no longer
        // exist: the new file is all zeros and durable.
        let _ = fs::remove_file(self.journal_path(&fs::canonicalize(path)?));
        self.wrap(path, file)
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn SegmentFile>> {
        let file = self.inner.open(path)?;
        self.wrap(path, file)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let journal = fs::canonicalize(path).map(|p| self.journal_path(&p));
        self.inner.remove(path)?;
        if let Ok(j) = journal {
            match fs::remove_file(j) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
}

impl SegmentFile for JournalFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut s = lock(&self.journal.state);
        let available = usize::try_from(self.inner.file_len()?.saturating_sub(offset)).unwrap_or(usize::MAX);
        let mut pre = vec![0u8; available.min(buf.len())];
        self.inner.read_at(&mut pre, offset)?;
        let record = encode_record(offset, &pre);
        s.file.write_all_at(&record, s.len)?;
        s.len += record.len() as u64;
        self.inner.write_at(buf, offset)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        // Every record before `mark` belongs to a write that has completed (records and
        // writes happen under the lock), so this sync covers it.
        let mark = lock(&self.journal.state).len;
        self.inner.sync_data()?;
        self.journal.forget_before(mark)
    }

    fn file_len(&self) -> io::Result<u64> {
        self.inner.file_len()
    }

    fn map_readonly(&self) -> io::Result<Mmap> {
        self.inner.map_readonly()
    }
}

/// What [`replay_undo_journal`] reverted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    /// Data files that had unsynced writes.
    pub files: usize,
    /// Pre-images written back.
    pub records: usize,
    pub bytes: u64,
}

/// Applies every journal in `dir`, newest record first, so each data file holds what it held
/// at its last successful sync; syncs the data files and deletes the journals. Run it only
/// while the process that wrote the journals is dead. A missing `dir` is an empty journal.
pub fn replay_undo_journal(dir: &Path) -> io::Result<ReplayStats> {
    let mut stats = ReplayStats::default();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(stats),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.ends_with(".tmp") {
            // A compaction that never got renamed into place: the journal beside it is whole.
            fs::remove_file(&path)?;
            continue;
        }
        if !name.ends_with(&format!(".{JOURNAL_EXT}")) {
            continue;
        }
        let Some(p) = parse(&fs::read(&path)?) else {
            fs::remove_file(&path)?;
            continue;
        };
        if !p.records.is_empty() {
            match OpenOptions::new().write(true).open(&p.data_path) {
                Ok(data) => {
                    for (offset, pre_image) in p.records.iter().rev() {
                        data.write_all_at(pre_image, *offset)?;
                        stats.bytes += pre_image.len() as u64;
                    }
                    data.sync_data()?;
                    stats.files += 1;
                    stats.records += p.records.len();
                }
                // The file was unlinked after its writes: nothing to revert.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        fs::remove_file(&path)?;
    }
    File::open(dir)?.sync_all()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_torn_tail_is_ignored() {
        let path = Path::new("/data/commitlog/00000000000000000000");
        let mut j = encode_header(path);
        j.extend(encode_record(7, b"abc"));
        j.extend(encode_record(4096, b""));
        let whole = j.len();
        j.extend(&encode_record(9, b"torn")[..10]);
        let p = parse(&j).unwrap();
        assert_eq!(p.data_path, path);
        assert_eq!(p.records, vec![(7, b"abc".to_vec()), (4096, Vec::new())]);
        assert_eq!(p.valid_len, whole);
        let mut bad = encode_header(path);
        bad.extend(encode_record(7, b"abc"));
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(parse(&bad).unwrap().records.is_empty(), "a record failing its CRC ends the journal");
        assert!(parse(&encode_header(path)[..12]).is_none(), "a torn header");
    }

    /// A sync forgets only the records it covers: a write that arrived while it ran (after its
    /// mark) is still reverted by a replay.
    #[test]
    fn writes_after_the_sync_mark_stay_journalled() {
        let tmp = tempfile::TempDir::new().unwrap();
        let data = tmp.path().join("data");
        let io = JournalIo::new(&tmp.path().join("undo")).unwrap();
        let f = io.create_zeroed(&data, 8).unwrap();
        f.write_at(b"AA", 0).unwrap();
        let journal = io.journal_for(&data).unwrap();
        let mark = lock(&journal.state).len;
        f.write_at(b"BB", 4).unwrap();
        f.write_at(b"CC", 5).unwrap();
        journal.forget_before(mark).unwrap();
        let kept = parse(&fs::read(&journal.path).unwrap()).unwrap();
        assert_eq!(kept.records, vec![(4, vec![0, 0]), (5, vec![b'B', 0])]);
        f.write_at(b"D", 7).unwrap();
        drop((f, journal, io));
        let stats = replay_undo_journal(&tmp.path().join("undo")).unwrap();
        assert_eq!(stats, ReplayStats { files: 1, records: 3, bytes: 5 });
        assert_eq!(fs::read(&data).unwrap(), b"AA\0\0\0\0\0\0");
        assert_eq!(fs::read_dir(tmp.path().join("undo")).unwrap().count(), 0, "journals are deleted");
    }
}
