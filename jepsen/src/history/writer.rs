//! [`HistoryWriter`]: appends history lines from many client tasks at once.
//!
//! The index, the op id and the timestamp are all taken under one lock, in the same critical
//! section that writes the line. That is what makes the file's line order, `index` order and
//! `time_ns` order agree, which the checker relies on to decide what happened before what.
//!
//! A `std::sync::Mutex`, not a tokio one: the critical section never awaits and only copies a
//! line into a `BufWriter` (a write syscall every 64 KiB), so holding it from an async task is
//! cheaper than a channel hop and keeps the ordering argument trivial.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::{Call, Entry, OpType, Process};

/// Shared by every client task (wrap it in an `Arc`).
pub struct HistoryWriter {
    clock: Instant,
    inner: Mutex<Inner>,
}

struct Inner {
    out: Box<dyn Write + Send>,
    next_index: u64,
    next_op: u64,
}

/// A started operation. Complete it with [`HistoryWriter::ok`], [`HistoryWriter::fail`] or
/// [`HistoryWriter::info`]; an invocation that is dropped instead (a cancelled task) stays open
/// in the history and the checker treats it as `info`.
#[derive(Debug)]
#[must_use = "complete the operation with ok, fail or info"]
pub struct Invocation {
    op: u64,
    process: Process,
}

impl Invocation {
    pub fn op(&self) -> u64 {
        self.op
    }
}

impl HistoryWriter {
    /// Creates (truncates) `path`; the run's clock starts now.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self::from_writer(File::create(path)?))
    }

    pub fn from_writer(out: impl Write + Send + 'static) -> Self {
        let out: Box<dyn Write + Send> = Box::new(BufWriter::with_capacity(64 * 1024, out));
        Self { clock: Instant::now(), inner: Mutex::new(Inner { out, next_index: 0, next_op: 0 }) }
    }

    /// The history clock now: what `time_ns` a line written at this moment would at least get.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records the start of an operation; `call` holds its arguments.
    pub fn invoke(&self, process: Process, call: Call) -> io::Result<Invocation> {
        let mut inner = self.lock();
        let op = inner.next_op;
        inner.next_op += 1;
        self.append(&mut inner, op, process, OpType::Invoke, call, None)?;
        Ok(Invocation { op, process })
    }

    /// The operation definitely happened; `call` carries its result (`at`, `msgs`, `offset`).
    pub fn ok(&self, inv: Invocation, call: Call) -> io::Result<()> {
        self.complete(inv, OpType::Ok, call, None)
    }

    /// The operation definitely did not happen (for a send: rejected before any proposal).
    pub fn fail(&self, inv: Invocation, call: Call, error: impl Into<String>) -> io::Result<()> {
        self.complete(inv, OpType::Fail, call, Some(error.into()))
    }

    /// The outcome is unknown (timeout, connection reset mid-call).
    pub fn info(&self, inv: Invocation, call: Call, error: impl Into<String>) -> io::Result<()> {
        self.complete(inv, OpType::Info, call, Some(error.into()))
    }

    /// Pushes buffered lines to the file. Also done on drop, ignoring errors there.
    pub fn flush(&self) -> io::Result<()> {
        self.lock().out.flush()
    }

    fn complete(&self, inv: Invocation, kind: OpType, call: Call, error: Option<String>) -> io::Result<()> {
        let mut inner = self.lock();
        self.append(&mut inner, inv.op, inv.process, kind, call, error)
    }

    fn append(
        &self,
        inner: &mut Inner,
        op: u64,
        process: Process,
        kind: OpType,
        call: Call,
        error: Option<String>,
    ) -> io::Result<()> {
        let time_ns = self.now_ns();
        let entry = Entry { index: inner.next_index, op, time_ns, process, kind, call, error };
        let mut line = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        line.push(b'\n');
        inner.out.write_all(&line)?;
        inner.next_index += 1;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock can only have come from the sink; the counters are
        // still consistent, and a torn line is reported by the reader with its line number.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for HistoryWriter {
    fn drop(&mut self) {
        let _ = self.lock().out.flush();
    }
}
