//! [`FaultyIo`]: a [`RealIo`] wrapper that injects the failures a log must survive.
//!
//! The files are real files, so a [`SegmentFile::map_readonly`] mapping sees every injected
//! effect, including a [`FaultyIo::crash`] revert, exactly as the CommitLog's readers would.
//!
//! Model:
//! - Every `write_at` first records the pre-image of the bytes it overwrites (an undo record).
//!   A successful `sync_data` of that file forgets its undo records: those bytes are durable.
//! - [`FaultyIo::crash`] is power loss: it writes every pre-image back, newest first, so each
//!   file holds what it held at its last successful sync. Then the "process" is dead.
//! - [`FaultyIo::tear_next_write`] is a torn write: the next `write_at` stores only its first
//!   `n` bytes (and those bytes count as having reached the disk), then the process dies.
//! - A dead process fails every later operation, so the CommitLog instance that was running
//!   cannot touch the files any more; the test then reopens the directory with a fresh backend.
//! - [`FaultyIo::fail_next_sync`] / [`FaultyIo::fail_all_syncs`] make `sync_data` fail. A failed
//!   sync keeps its undo records: after fsyncgate the data must be assumed lost.
//! - [`FaultyIo::pause_syncs`] makes `sync_data` block until [`FaultyIo::resume_syncs`] (or a
//!   crash), so a test can hold data in the "written, not yet durable" state deterministically.
//!
//! Files created by `create_zeroed` are durable at creation (the inner backend syncs them), and
//! directory operations are passed through: unlinks are not reverted by `crash`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::{fmt, io};

use memmap2::Mmap;

use super::{IoBackend, RealIo, SegmentFile};

/// Fault-injecting backend for crash tests. Cloning shares the same fault state.
#[derive(Clone, Default)]
pub struct FaultyIo {
    state: Arc<FaultState>,
}

#[derive(Default)]
struct FaultState {
    /// Operations hold it shared; `crash` holds it exclusively so no write races the revert.
    gate: RwLock<()>,
    dead: AtomicBool,
    fail_next_sync: AtomicBool,
    fail_all_syncs: AtomicBool,
    /// `usize::MAX` means "no torn write armed".
    tear_next_write: AtomicUsize,
    syncs: AtomicUsize,
    files: Mutex<Vec<Arc<FaultyFile>>>,
    syncs_paused: Mutex<bool>,
    syncs_resumed: Condvar,
}

struct FaultyFile {
    inner: Arc<dyn SegmentFile>,
    state: Arc<FaultState>,
    /// Pre-images of writes since the last successful sync, oldest first.
    undo: Mutex<Vec<(u64, Vec<u8>)>>,
}

fn dead_error() -> io::Error {
    io::Error::other("process died (fault injection)")
}

impl fmt::Debug for FaultyIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyIo").field("dead", &self.is_dead()).finish_non_exhaustive()
    }
}

impl FaultyIo {
    pub fn new() -> Self {
        let state = FaultState { tear_next_write: AtomicUsize::new(usize::MAX), ..FaultState::default() };
        Self { state: Arc::new(state) }
    }

    /// The next `sync_data` on any file fails.
    pub fn fail_next_sync(&self) {
        self.state.fail_next_sync.store(true, Ordering::SeqCst);
    }

    /// Every `sync_data` from now on fails.
    pub fn fail_all_syncs(&self) {
        self.state.fail_all_syncs.store(true, Ordering::SeqCst);
    }

    /// The next `write_at` on any file persists only its first `n` bytes, then the process dies.
    pub fn tear_next_write(&self, n: usize) {
        self.state.tear_next_write.store(n, Ordering::SeqCst);
    }

    /// `sync_data` blocks from now on until [`resume_syncs`](Self::resume_syncs) or a crash.
    pub fn pause_syncs(&self) {
        *self.state.syncs_paused.lock().unwrap_or_else(PoisonError::into_inner) = true;
    }

    pub fn resume_syncs(&self) {
        *self.state.syncs_paused.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.state.syncs_resumed.notify_all();
    }

    /// The process dies without losing the page cache (SIGKILL): later operations fail.
    pub fn kill(&self) {
        self.state.dead.store(true, Ordering::SeqCst);
        self.wake_paused_syncs();
    }

    /// A dead process has no sync left to hold: lifting the pause releases every waiter,
    /// whatever it last saw of `dead` (crash_10 once hung at its runtime's drop with a flusher
    /// still parked in a paused sync after the crash, a worker blocked behind it).
    fn wake_paused_syncs(&self) {
        self.resume_syncs();
    }

    /// Power loss: every file reverts to its content at its last successful sync, and the
    /// process dies.
    pub fn crash(&self) -> io::Result<()> {
        self.state.dead.store(true, Ordering::SeqCst);
        // Paused syncs hold no gate while waiting; woken, they see `dead` and fail.
        self.wake_paused_syncs();
        let _exclusive = self.state.gate.write().unwrap_or_else(PoisonError::into_inner);
        let files = self.state.files.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for file in files {
            let mut undo = file.undo.lock().unwrap_or_else(PoisonError::into_inner);
            for (offset, pre_image) in undo.drain(..).rev() {
                file.inner.write_at(&pre_image, offset)?;
            }
        }
        Ok(())
    }

    pub fn is_dead(&self) -> bool {
        self.state.dead.load(Ordering::SeqCst)
    }

    /// Number of successful `sync_data` calls so far, for tests of group commit.
    pub fn sync_count(&self) -> usize {
        self.state.syncs.load(Ordering::SeqCst)
    }

    fn check_alive(&self) -> io::Result<()> {
        if self.is_dead() { Err(dead_error()) } else { Ok(()) }
    }

    fn wrap(&self, inner: Arc<dyn SegmentFile>) -> Arc<dyn SegmentFile> {
        let file = Arc::new(FaultyFile { inner, state: self.state.clone(), undo: Mutex::new(Vec::new()) });
        self.state.files.lock().unwrap_or_else(PoisonError::into_inner).push(file.clone());
        file
    }
}

impl IoBackend for FaultyIo {
    fn create_zeroed(&self, path: &Path, len: u64) -> io::Result<Arc<dyn SegmentFile>> {
        let _shared = self.state.gate.read().unwrap_or_else(PoisonError::into_inner);
        self.check_alive()?;
        Ok(self.wrap(RealIo.create_zeroed(path, len)?))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn SegmentFile>> {
        self.check_alive()?;
        Ok(self.wrap(RealIo.open(path)?))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let _shared = self.state.gate.read().unwrap_or_else(PoisonError::into_inner);
        self.check_alive()?;
        RealIo.remove(path)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.check_alive()?;
        RealIo.list_dir(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let _shared = self.state.gate.read().unwrap_or_else(PoisonError::into_inner);
        self.check_alive()?;
        RealIo.sync_dir(dir)
    }
}

impl FaultyFile {
    fn check_alive(&self) -> io::Result<()> {
        if self.state.dead.load(Ordering::SeqCst) { Err(dead_error()) } else { Ok(()) }
    }

    fn pre_image(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let file_len = self.inner.file_len()?;
        let available = usize::try_from(file_len.saturating_sub(offset)).unwrap_or(usize::MAX).min(len);
        let mut pre = vec![0u8; available];
        self.inner.read_at(&mut pre, offset)?;
        Ok(pre)
    }
}

impl SegmentFile for FaultyFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let _shared = self.state.gate.read().unwrap_or_else(PoisonError::into_inner);
        self.check_alive()?;
        let torn = self.state.tear_next_write.swap(usize::MAX, Ordering::SeqCst);
        if torn != usize::MAX {
            // The first `torn` bytes made it to the platter; nothing after them did.
            self.inner.write_at(&buf[..torn.min(buf.len())], offset)?;
            self.state.dead.store(true, Ordering::SeqCst);
            return Err(io::Error::other("torn write: process died mid-write (fault injection)"));
        }
        // Hold the undo list across the write so a concurrent `sync_data` either sees both
        // the record and the write (and covers them) or neither.
        let mut undo = self.undo.lock().unwrap_or_else(PoisonError::into_inner);
        let pre = self.pre_image(offset, buf.len())?;
        undo.push((offset, pre));
        self.inner.write_at(buf, offset)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let _shared = self.state.gate.read().unwrap_or_else(PoisonError::into_inner);
        self.check_alive()?;
        self.inner.read_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        {
            let mut paused = self.state.syncs_paused.lock().unwrap_or_else(PoisonError::into_inner);
            while *paused && !self.state.dead.load(Ordering::SeqCst) {
                paused = self.state.syncs_resumed.wait(paused).unwrap_or_else(PoisonError::into_inner);
            }
        }
        let _shared = self.state.gate.read().unwrap_or_else(PoisonError::into_inner);
        self.check_alive()?;
        let fail_next = self.state.fail_next_sync.swap(false, Ordering::SeqCst);
        if fail_next || self.state.fail_all_syncs.load(Ordering::SeqCst) {
            return Err(io::Error::other("fsync failed (fault injection)"));
        }
        // Take the undo records before syncing: every write they describe has completed, so
        // this sync covers it. A write that starts later keeps its own record.
        let covered = std::mem::take(&mut *self.undo.lock().unwrap_or_else(PoisonError::into_inner));
        if let Err(e) = self.inner.sync_data() {
            let mut undo = self.undo.lock().unwrap_or_else(PoisonError::into_inner);
            let newer = std::mem::replace(&mut *undo, covered);
            undo.extend(newer);
            return Err(e);
        }
        self.state.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn file_len(&self) -> io::Result<u64> {
        self.inner.file_len()
    }

    fn map_readonly(&self) -> io::Result<Mmap> {
        self.check_alive()?;
        self.inner.map_readonly()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    #[test]
    fn crash_reverts_to_the_last_sync_and_mappings_see_it() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("f");
        let io = FaultyIo::new();
        let f = io.create_zeroed(&path, 16).unwrap();
        let map = f.map_readonly().unwrap();
        f.write_at(b"aaaa", 0).unwrap();
        f.sync_data().unwrap();
        f.write_at(b"bb", 2).unwrap();
        f.write_at(b"cc", 8).unwrap();
        assert_eq!(&map[..10], b"aabb\0\0\0\0cc");
        io.crash().unwrap();
        assert_eq!(&read(&path)[..10], b"aaaa\0\0\0\0\0\0");
        assert_eq!(&map[..10], b"aaaa\0\0\0\0\0\0");
        assert!(f.write_at(b"x", 0).is_err(), "dead after the crash");
    }

    #[test]
    fn torn_write_keeps_a_prefix_and_kills() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("f");
        let io = FaultyIo::new();
        let f = io.create_zeroed(&path, 8).unwrap();
        io.tear_next_write(3);
        assert!(f.write_at(b"abcdef", 0).is_err());
        assert!(io.is_dead());
        io.crash().unwrap();
        assert_eq!(read(&path), b"abc\0\0\0\0\0");
    }

    #[test]
    fn failed_sync_keeps_data_revertible() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("f");
        let io = FaultyIo::new();
        let f = io.create_zeroed(&path, 4).unwrap();
        f.write_at(b"zz", 0).unwrap();
        io.fail_next_sync();
        assert!(f.sync_data().is_err());
        f.sync_data().unwrap();
        assert_eq!(io.sync_count(), 1);
        io.fail_all_syncs();
        assert!(f.sync_data().is_err());
    }
}
