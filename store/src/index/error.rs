//! Errors of the message index.

use std::path::PathBuf;

/// Why a message-index operation failed. The index is derived state: for `OpenPanicked` and
/// `Corrupt` the cure is to delete the directory (or [`clear`](super::MessageIndex::clear)) and
/// re-index from the log.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("cannot open the message index at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error(
        "sled panicked while opening the message index at {path}; delete the directory and rebuild the index from the log"
    )]
    OpenPanicked { path: PathBuf },
    #[error("message index (sled) operation failed: {0}")]
    Sled(#[from] sled::Error),
    #[error(
        "cannot index the message at position {position}: its {field} is {len} (at most 65535 fit the key layout)"
    )]
    TooLong {
        position: u64,
        field: &'static str,
        len: usize,
    },
    #[error(
        "corrupt message index record for position {position}: {reason}; rebuild the index from the log"
    )]
    Corrupt { position: u64, reason: &'static str },
}
