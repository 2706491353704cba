//! [`StoreError`]: the CommitLog's error type at the crate boundary.
//!
//! Two families are kept apart: caller mistakes (`EntryTooLarge`, `NonConsecutive`,
//! `OutOfRange`, `NotEmpty`, `Config`) leave the log usable, while `Poisoned`, `Io` on a write
//! path and `Corrupt` mean this node's storage can no longer be trusted. openraft sees all of
//! them as `std::io::Error` (the `From` impl below) and stops the node on any of them.

use std::io;
use std::path::PathBuf;

use super::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid commitlog config: {0}")]
    Config(#[from] ConfigError),

    /// An earlier sync or write failed; durability of everything since is unknown.
    #[error("log poisoned: {0}")]
    Poisoned(String),

    #[error("I/O error while {context}: {source}")]
    Io { context: String, source: io::Error },

    /// On-disk data that recovery or a read refuses to interpret.
    #[error("corrupt commitlog {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },

    #[error("entry {index} is {size} bytes; the largest entry is {max} bytes (segment size - 32)")]
    EntryTooLarge { index: u64, size: u64, max: u64 },

    #[error("append of entry {got} (term {term}) does not follow the log: {why}")]
    NonConsecutive { got: u64, term: u64, why: String },

    #[error("{what} is outside the log")]
    OutOfRange { what: String },

    #[error("set_base needs an empty log, but it holds entries {first}..={last}")]
    NotEmpty { first: u64, last: u64 },
}

impl StoreError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Corrupt { path: path.into(), reason: reason.into() }
    }
}

impl From<StoreError> for io::Error {
    fn from(e: StoreError) -> Self {
        let kind = match &e {
            StoreError::Io { source, .. } => source.kind(),
            StoreError::Corrupt { .. } => io::ErrorKind::InvalidData,
            StoreError::Config(_)
            | StoreError::EntryTooLarge { .. }
            | StoreError::NonConsecutive { .. }
            | StoreError::OutOfRange { .. }
            | StoreError::NotEmpty { .. } => io::ErrorKind::InvalidInput,
            StoreError::Poisoned(_) => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
