//! [`Poison`]: once a sync or a write fails, the log stops accepting writes for good.
//!
//! After a failed `fdatasync` the kernel may already have dropped the dirty pages (and marked
//! them clean), so retrying the sync can "succeed" without the data ever reaching the disk
//! ("fsyncgate"). The only safe reaction is to stop, restart, and recover from what is
//! actually on disk. The first failure's reason is kept for every later error.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use super::error::StoreError;

#[derive(Debug, Default)]
pub(crate) struct Poison {
    poisoned: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl Poison {
    /// Poisons the log; the first reason wins.
    pub fn set(&self, reason: impl Into<String>) {
        let mut slot = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            let reason = reason.into();
            tracing::error!(%reason, "commitlog poisoned: refusing all further writes");
            *slot = Some(reason);
        }
        self.poisoned.store(true, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    fn reason(&self) -> String {
        self.reason.lock().unwrap_or_else(PoisonError::into_inner).clone().unwrap_or_default()
    }

    pub fn check(&self) -> Result<(), StoreError> {
        if self.is_set() { Err(StoreError::Poisoned(self.reason())) } else { Ok(()) }
    }

    /// The error handed to `IOFlushed` callbacks (io::Error is not `Clone`: one per callback).
    pub fn io_error(&self) -> io::Error {
        io::Error::other(StoreError::Poisoned(self.reason()))
    }

    /// Poisons with `context: err` and returns the matching error.
    pub fn fail(&self, context: &str, err: io::Error) -> StoreError {
        self.set(format!("{context}: {err}"));
        StoreError::Poisoned(self.reason())
    }
}
