//! Feeds the message-id/key index from a background thread, so its cost
//! stays off the apply path. The index is derived state: it may lag the
//! applied index, and a checkpoint first waits for it to catch up (`flush`).
//!
//! The thread lingers [`LINGER`] after the first job before it takes what is
//! queued: under load, applies come every few hundred microseconds on each
//! replica, and each woke the thread for a batch of its own (measured at
//! publish c=64, per replica: ~1,400 context switches and ~2,000 `pwrite`s per
//! second; with the linger ~800 and ~670). A sleeping thread is not woken by a
//! send.
//!
//! [`IndexWriter::inline`] (deterministic simulation only) starts no thread and
//! indexes on the applying task: a thread's progress is wall-clock time, which
//! a simulated clock cannot replay.

use std::sync::{Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use raftmq_store::index::{IndexEntry, MessageIndex};

/// How long the index thread waits for more applied entries before it indexes a batch: the
/// index lags apply by about this much more, which nothing waits on (a checkpoint's flush
/// takes whatever is queued).
const LINGER: Duration = Duration::from_millis(2);

enum Job {
    Entries(Vec<IndexEntry>, u64),
    Flush(mpsc::SyncSender<Result<(), String>>),
}

pub struct IndexWriter {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// Inline mode: the index and the first insert failure.
    inline: Option<(MessageIndex, Mutex<Option<String>>)>,
}

impl IndexWriter {
    pub fn start(index: MessageIndex) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("raftmq-index".into())
            .spawn(move || {
                let mut failed: Option<String> = None;
                while let Ok(job) = rx.recv() {
                    match job {
                        Job::Entries(mut entries, mut upto) => {
                            std::thread::sleep(LINGER);
                            // Coalesce whatever else is queued into one index batch.
                            let mut flush_waiters = Vec::new();
                            while let Ok(next) = rx.try_recv() {
                                match next {
                                    Job::Entries(more, u) => {
                                        entries.extend(more);
                                        upto = upto.max(u);
                                    }
                                    Job::Flush(w) => flush_waiters.push(w),
                                }
                            }
                            if let Err(e) = index.insert_batch(&entries, upto) {
                                tracing::error!("message index insert failed: {e}");
                                failed.get_or_insert(e.to_string());
                            }
                            for w in flush_waiters {
                                let _ = w.send(flush(&index, &failed));
                            }
                        }
                        Job::Flush(w) => {
                            let _ = w.send(flush(&index, &failed));
                        }
                    }
                }
            })
            .ok();
        Self { tx: Some(tx), thread, inline: None }
    }

    /// Indexes on the caller's thread, with no background thread.
    pub fn inline(index: MessageIndex) -> Self {
        Self { tx: None, thread: None, inline: Some((index, Mutex::new(None))) }
    }

    /// Queues entries applied at `applied_index` for indexing.
    pub fn submit(&self, entries: Vec<IndexEntry>, applied_index: u64) {
        if entries.is_empty() {
            return;
        }
        if let Some((index, failed)) = &self.inline {
            if let Err(e) = index.insert_batch(&entries, applied_index) {
                tracing::error!("message index insert failed: {e}");
                failed.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(e.to_string());
            }
            return;
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(Job::Entries(entries, applied_index));
        }
    }

    /// Waits until everything submitted so far is indexed and flushed to disk.
    pub fn flush(&self) -> Result<(), String> {
        if let Some((index, failed)) = &self.inline {
            return flush(index, &failed.lock().unwrap_or_else(PoisonError::into_inner));
        }
        let (wtx, wrx) = mpsc::sync_channel(1);
        let tx = self.tx.as_ref().ok_or("index writer stopped")?;
        tx.send(Job::Flush(wtx)).map_err(|_| "index writer stopped".to_string())?;
        wrx.recv().map_err(|_| "index writer stopped".to_string())?
    }
}

fn flush(index: &MessageIndex, failed: &Option<String>) -> Result<(), String> {
    if let Some(e) = failed {
        return Err(format!("an earlier index insert failed: {e}"));
    }
    index.flush().map_err(|e| e.to_string())
}

impl Drop for IndexWriter {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
