//! Opening an index directory: take its lock, load the commit record, delete the files it
//! does not cover, and resume the active file where the last flush left it.
//!
//! Nothing past the meta is trusted. Entries past its count, records past its heap length
//! and files past its active one were written after the last flush and may be torn: they are
//! ignored, overwritten or deleted, and the broker re-indexes them from the log (they are
//! above [`indexed_upto`](super::MessageIndex::indexed_upto)). Committed bytes that fail
//! their check are reported as corruption, never guessed at.

use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::file::{FileState, FileView, IndexFile, parse_name};
use super::format::Meta;
use super::meta::{self, META_TMP};
use super::writer::{Active, Writer};
use super::{HashFn, IndexConfig, IndexError};

const LOCK_FILE: &str = "index.lock";
/// How long `open` waits for a just-dropped handle (say, of a broker restarting in-process)
/// to release the lock. A lock held by a live instance is held far longer.
const LOCK_WAIT: Duration = Duration::from_secs(2);

pub(super) struct Opened {
    pub lock: File,
    pub writer: Writer,
    pub files: Vec<Arc<FileView>>,
    /// The meta as on disk, so that a flush with nothing new need not rewrite it.
    pub meta: Option<Meta>,
}

pub(super) fn open(dir: &Path, config: IndexConfig, hash: HashFn) -> Result<Opened, IndexError> {
    config.validate()?;
    fs::create_dir_all(dir).map_err(IndexError::io("create", dir))?;
    let lock = lock_dir(dir)?;
    let stored = meta::load(dir)?;
    let m = stored.unwrap_or_default();

    let mut sealed = Vec::new();
    for item in fs::read_dir(dir).map_err(IndexError::io("list", dir))? {
        let item = item.map_err(IndexError::io("list", dir))?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let seq = parse_name(name);
        match seq {
            Some(s) if (m.base_seq..m.active_seq).contains(&s) => sealed.push(s),
            Some(s) if s == m.active_seq => {}
            // A rollover or `clear` that never reached the meta, or an interrupted meta write.
            Some(_) => remove(&item.path())?,
            None if name == META_TMP => remove(&item.path())?,
            None => {}
        }
    }
    sealed.sort_unstable();

    let mut files = Vec::with_capacity(sealed.len() + 1);
    for seq in sealed {
        let (file, header) = IndexFile::open(dir, seq)?;
        if !header.sealed {
            return Err(IndexError::corrupt(&file.path, 0, "a file before the active one is not sealed"));
        }
        file.check_holds(&header.stats)?;
        files.push(Arc::new(FileView { file: Arc::new(file), state: FileState::Sealed(header.stats) }));
    }
    let active = if m.active.entries == 0 {
        // Nothing of it is committed: start it afresh rather than trust a header that may
        // never have been synced.
        Active::fresh(Arc::new(IndexFile::create(dir, m.active_seq, config.geometry())?))
    } else {
        let (file, _) = IndexFile::open(dir, m.active_seq)?;
        file.check_holds(&m.active)?;
        Active::recover(Arc::new(file), m.active)?
    };
    files.push(Arc::new(active.view()));
    let mut writer = Writer::new(dir.to_owned(), config, hash, active, &m);
    // The active file may be new, or have a rebuilt slot table; the directory may have lost
    // leftovers. One extra fsync each on the first flush covers all of it.
    writer.active_unsynced = true;
    writer.dir_dirty = true;
    Ok(Opened { lock, writer, files, meta: stored })
}

fn remove(path: &Path) -> Result<(), IndexError> {
    tracing::info!(file = %path.display(), "deleting an uncommitted message index file");
    fs::remove_file(path).map_err(IndexError::io("remove", path))
}

/// Takes the directory's lock file: two instances appending to the same files would corrupt
/// them. The lock goes with the returned handle.
fn lock_dir(dir: &Path) -> Result<File, IndexError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(IndexError::io("open", &path))?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(IndexError::InUse { path }),
            Err(std::fs::TryLockError::Error(e)) => return Err(IndexError::io("lock", path)(e)),
        }
    }
}
