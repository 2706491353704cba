//! The segment allocator thread: creates the *next* segment in the background.
//!
//! Creating a 128 MiB segment (reserve with `fallocate`, or zero-fill where that is not
//! supported; `fsync`, rename, directory `fsync`) can take far longer
//! than an append, so the writer asks for segment `active.end()` as soon as a segment becomes
//! active, and a roll normally just takes the ready file (RocketMQ's
//! `AllocateMappedFileService`). If the spare is not ready the roll waits for it, or creates
//! the segment inline if nobody is preparing it. One spare at most: the log rolls at most once
//! per segment's worth of appends.
//!
//! The spare exists on disk under its final name while unused. That is safe: it is all zeros,
//! so recovery sees an empty trailing segment and removes it.
//!
//! Without the thread (`BackgroundIo::SimulatedTasks`, the deterministic simulation) nothing is
//! prepared ahead and every roll creates its segment on the calling task.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use super::error::StoreError;
use super::segment::Segment;
use crate::io::IoBackend;

#[derive(Default)]
struct State {
    want: Option<u64>,
    busy: Option<u64>,
    ready: Option<(u64, Result<Arc<Segment>, String>)>,
    shutdown: bool,
}

struct Shared {
    io: Arc<dyn IoBackend>,
    dir: PathBuf,
    segment_bytes: u64,
    state: Mutex<State>,
    changed: Condvar,
}

pub(crate) struct Allocator {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// No thread: segments are created by `take`.
    inline: bool,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Allocator {
    pub fn start(io: Arc<dyn IoBackend>, dir: PathBuf, segment_bytes: u64, thread: bool) -> std::io::Result<Self> {
        let shared =
            Arc::new(Shared { io, dir, segment_bytes, state: Mutex::new(State::default()), changed: Condvar::new() });
        if !thread {
            return Ok(Self { shared, thread: Mutex::new(None), inline: true });
        }
        let worker = shared.clone();
        let thread = std::thread::Builder::new().name("raftmq-segalloc".into()).spawn(move || run(&worker))?;
        Ok(Self { shared, thread: Mutex::new(Some(thread)), inline: false })
    }

    /// Starts preparing the segment at `base` unless it is already ready or in progress.
    pub fn prepare(&self, base: u64) {
        if self.inline {
            return;
        }
        let mut st = lock(&self.shared);
        let have = st.ready.as_ref().is_some_and(|(b, _)| *b == base) || st.busy == Some(base);
        if !have {
            st.want = Some(base);
            drop(st);
            self.shared.changed.notify_all();
        }
    }

    /// The segment at `base`: the prepared spare if it is that one, else created inline.
    pub fn take(&self, base: u64) -> Result<Arc<Segment>, StoreError> {
        let mut st = lock(&self.shared);
        loop {
            if st.ready.as_ref().is_some_and(|(b, _)| *b == base) {
                if let Some((_, Ok(seg))) = st.ready.take() {
                    return Ok(seg);
                }
                // A failed background attempt: retry once inline below, reporting that error.
                break;
            }
            if st.busy == Some(base) || (st.want == Some(base) && !st.shutdown) {
                st = self.shared.changed.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            break;
        }
        if let Err(e) = self.remove_stale_spare(&mut st) {
            // Harmless: an unused spare is all zeros and recovery removes it.
            tracing::warn!(error = %e, "could not remove a stale spare segment");
        }
        drop(st);
        let seg = Segment::create(&*self.shared.io, &self.shared.dir, base, self.shared.segment_bytes)?;
        Ok(Arc::new(seg))
    }

    /// Drops the spare unless it is the segment at `keep` (after truncation or `set_base` the
    /// log may continue somewhere else). Returns whether a file was removed, so the caller
    /// syncs the directory. Waits for an allocation in progress.
    pub fn discard_unless(&self, keep: Option<u64>) -> Result<bool, StoreError> {
        let mut st = lock(&self.shared);
        if st.want != keep {
            st.want = None;
        }
        while st.busy.is_some() && st.busy != keep {
            st = self.shared.changed.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        if st.ready.as_ref().is_some_and(|(b, _)| Some(*b) == keep) {
            return Ok(false);
        }
        self.remove_stale_spare(&mut st).map_err(|e| StoreError::io("removing the spare segment", e))
    }

    fn remove_stale_spare(&self, st: &mut State) -> std::io::Result<bool> {
        match st.ready.take() {
            Some((_, Ok(seg))) => {
                self.shared.io.remove(&seg.path)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    pub fn shutdown(&self) {
        lock(&self.shared).shutdown = true;
        self.shared.changed.notify_all();
        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("commitlog segment allocator thread panicked");
        }
    }
}

fn run(shared: &Shared) {
    loop {
        let base = {
            let mut st = lock(shared);
            loop {
                if st.shutdown {
                    return;
                }
                if let Some(base) = st.want.take() {
                    st.busy = Some(base);
                    break base;
                }
                st = shared.changed.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let made = Segment::create(&*shared.io, &shared.dir, base, shared.segment_bytes)
            .map(Arc::new)
            .map_err(|e| e.to_string());
        if let Err(e) = &made {
            tracing::warn!(base, error = %e, "preallocating the next segment failed; the roll will retry inline");
        }
        let mut st = lock(shared);
        st.busy = None;
        // A spare nobody wants any more (the log moved on) is left for recovery to remove:
        // keeping the newest one is enough, and the writer removes stale ones on `take`.
        if let Some((_, Ok(old))) = st.ready.replace((base, made)) {
            drop(st);
            let _ = shared.io.remove(&old.path);
        } else {
            drop(st);
        }
        shared.changed.notify_all();
    }
}
