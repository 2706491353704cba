//! The flusher thread: group commit.
//!
//! `append` writes into the page cache and queues its `IOFlushed` callback here together with
//! the segments it dirtied. The flusher takes *everything* queued, issues one `fdatasync` per
//! dirty segment, then completes the callbacks in queue order. It syncs again as soon as the
//! previous sync returns if more work arrived meanwhile: the batch grows with the load and no
//! fixed linger adds latency at low load (RocksDB and raft-log make the same choice).
//!
//! `Durability::Async` acknowledges appends right after the `pwrite`; the flusher then syncs
//! dirty segments every `flush_interval`. In both modes a *barrier* (used by `save_vote`,
//! `CommitLog::flush`) is completed only after every segment dirtied before it is synced:
//! that is how a vote never becomes durable ahead of entries appended before it (openraft's
//! io-ordering rule).
//!
//! A failed sync poisons the log: that batch and every later one complete with an error, and
//! no sync is ever retried. A dedicated OS thread (not a tokio task) because `fdatasync`
//! blocks for 0.1–5 ms and must not stall runtime workers.
//!
//! Under `BackgroundIo::SimulatedTasks` (the deterministic simulation only) the worker is a task
//! on the current tokio runtime instead: woken by work, it waits `sync_latency` of tokio's
//! clock, then takes and syncs everything queued, and persists `committed` at every batch.
//! Same ordering and completion rules; only the clock that times them differs.

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use openraft::storage::IOFlushed;
use raftmq_raft::TypeConfig;
use tokio::sync::oneshot;

use super::config::{BackgroundIo, Durability};
use super::meta::MetaStore;
use super::poison::Poison;
use super::segment::Segment;

/// What to signal once the work queued before it is durable.
pub(crate) enum Completion {
    Flushed(IOFlushed<TypeConfig>),
    Barrier(oneshot::Sender<io::Result<()>>),
}

impl Completion {
    fn complete(self, result: io::Result<()>) {
        match self {
            Completion::Flushed(cb) => cb.io_completed(result),
            Completion::Barrier(tx) => {
                // The waiter may have gone away (its future dropped): nothing to tell.
                let _ = tx.send(result);
            }
        }
    }
}

#[derive(Default)]
struct Queue {
    done: Vec<Completion>,
    dirty: Vec<Arc<Segment>>,
    /// Index of the last entry in the log as of the newest queued work (for `committed`).
    last_index: Option<u64>,
    shutdown: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

pub(crate) struct Flusher {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    task: Option<FlusherTask>,
}

/// The worker as a task on the tokio runtime (`BackgroundIo::SimulatedTasks`).
struct FlusherTask {
    worker: Arc<Mutex<Worker>>,
    work: Arc<tokio::sync::Notify>,
    handle: tokio::task::JoinHandle<()>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, Queue> {
    shared.queue.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Flusher {
    pub fn start(
        durability: Durability,
        background: BackgroundIo,
        poison: Arc<Poison>,
        meta: Arc<MetaStore>,
        last_index: Option<u64>,
    ) -> io::Result<Self> {
        let shared = Arc::new(Shared { queue: Mutex::new(Queue::default()), wake: Condvar::new() });
        let worker = Worker { shared: shared.clone(), durability, poison, meta, synced_last_index: last_index };
        let BackgroundIo::SimulatedTasks { sync_latency } = background else {
            let thread = std::thread::Builder::new().name("raftmq-flusher".into()).spawn(move || worker.run())?;
            return Ok(Self { shared, thread: Mutex::new(Some(thread)), task: None });
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let worker = Arc::new(Mutex::new(worker));
        let work = Arc::new(tokio::sync::Notify::new());
        let (w, n, s) = (worker.clone(), work.clone(), shared.clone());
        let handle = runtime.spawn(async move {
            loop {
                n.notified().await;
                tokio::time::sleep(sync_latency).await;
                let batch = take_batch(&mut lock(&s));
                if w.lock().unwrap_or_else(PoisonError::into_inner).process(batch, true) {
                    return;
                }
            }
        });
        Ok(Self { shared, thread: Mutex::new(None), task: Some(FlusherTask { worker, work, handle }) })
    }

    fn notify(&self) {
        match &self.task {
            Some(t) => t.work.notify_one(),
            None => self.shared.wake.notify_one(),
        }
    }

    /// Records segments written by an append (or a truncation) and, optionally, what to
    /// complete once they are durable.
    pub fn submit(&self, dirty: &[Arc<Segment>], last_index: Option<u64>, done: Option<Completion>) {
        let mut q = lock(&self.shared);
        for seg in dirty {
            if !q.dirty.iter().any(|d| Arc::ptr_eq(d, seg)) {
                q.dirty.push(seg.clone());
            }
        }
        q.last_index = last_index;
        if let Some(done) = done {
            q.done.push(done);
        }
        drop(q);
        self.notify();
    }

    /// Resolves once everything submitted before this call is durable.
    pub fn barrier(&self) -> oneshot::Receiver<io::Result<()>> {
        let (tx, rx) = oneshot::channel();
        let mut q = lock(&self.shared);
        if q.shutdown {
            drop(q);
            let _ = tx.send(Err(io::Error::other("commitlog is closed")));
            return rx;
        }
        q.done.push(Completion::Barrier(tx));
        drop(q);
        self.notify();
        rx
    }

    /// Re-evaluates timers (a new `committed` to persist).
    pub fn wake(&self) {
        self.notify();
    }

    /// Flushes what is queued, persists `committed`, and stops the thread.
    pub fn shutdown(&self) {
        lock(&self.shared).shutdown = true;
        if let Some(t) = &self.task {
            t.handle.abort();
            let batch = take_batch(&mut lock(&self.shared));
            t.worker.lock().unwrap_or_else(PoisonError::into_inner).process(batch, true);
            return;
        }
        self.shared.wake.notify_one();
        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("commitlog flusher thread panicked");
        }
    }
}

struct Worker {
    shared: Arc<Shared>,
    durability: Durability,
    poison: Arc<Poison>,
    meta: Arc<MetaStore>,
    synced_last_index: Option<u64>,
}

struct Batch {
    done: Vec<Completion>,
    dirty: Vec<Arc<Segment>>,
    last_index: Option<u64>,
    shutdown: bool,
}

/// Everything queued, as one batch.
fn take_batch(q: &mut Queue) -> Batch {
    Batch {
        done: std::mem::take(&mut q.done),
        dirty: std::mem::take(&mut q.dirty),
        last_index: q.last_index,
        shutdown: q.shutdown,
    }
}

impl Worker {
    fn run(mut self) {
        let mut last_sync = Instant::now();
        loop {
            let batch = self.next_batch(last_sync);
            if !batch.dirty.is_empty() {
                last_sync = Instant::now();
            }
            let shutdown = batch.shutdown;
            if self.process(batch, shutdown) {
                return;
            }
        }
    }

    /// Syncs a batch, persists `committed` (if due, or at once with `persist_now`), completes
    /// the batch's callbacks in order; returns whether the flusher is shutting down.
    fn process(&mut self, batch: Batch, persist_now: bool) -> bool {
        let result = self.sync(&batch);
        if result.is_ok() {
            self.synced_last_index = batch.last_index;
            self.persist_committed(persist_now);
        }
        for done in batch.done {
            done.complete(match &result {
                Ok(()) => Ok(()),
                Err(_) => Err(self.poison.io_error()),
            });
        }
        batch.shutdown
    }

    /// Waits for work: queued completions (always flushed at once), dirty segments whose
    /// async interval elapsed, a due `committed`, or shutdown.
    fn next_batch(&self, last_sync: Instant) -> Batch {
        let mut q = lock(&self.shared);
        loop {
            if q.shutdown || !q.done.is_empty() {
                break;
            }
            let mut deadline =
                if self.poison.is_set() { None } else { self.meta.committed_due_at(self.synced_last_index) };
            if let Durability::Async { flush_interval } = self.durability
                && !q.dirty.is_empty()
            {
                let at = last_sync + flush_interval;
                deadline = Some(deadline.map_or(at, |d| d.min(at)));
            }
            let now = Instant::now();
            match deadline {
                Some(at) if at <= now => break,
                Some(at) => q = self.shared.wake.wait_timeout(q, at - now).unwrap_or_else(PoisonError::into_inner).0,
                None => q = self.shared.wake.wait(q).unwrap_or_else(PoisonError::into_inner),
            }
        }
        take_batch(&mut q)
    }

    fn sync(&self, batch: &Batch) -> Result<(), ()> {
        if self.poison.is_set() {
            return Err(());
        }
        for seg in &batch.dirty {
            if let Err(e) = seg.file.sync_data() {
                self.poison.set(format!("fdatasync of {} failed: {e}", seg.path.display()));
                return Err(());
            }
        }
        Ok(())
    }

    fn persist_committed(&self, force: bool) {
        if let Err(e) = self.meta.persist_committed_if_due(self.synced_last_index, force) {
            self.poison.set(format!("writing committed to the meta file failed: {e}"));
        }
    }
}
