//! Errors of the message index.

use std::path::PathBuf;

/// Why a message-index operation failed.
///
/// The index is derived state. `Corrupt` means committed bytes fail their check; `Poisoned`
/// means an earlier write or fsync failed and the files are in an unknown state. The cure for
/// both is [`clear`](super::MessageIndex::clear) (or deleting the directory) and re-indexing
/// the retained log; a reopen also cures `Poisoned`, since it rolls back to the last flush.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("message index I/O failed ({op} {path}): {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot index the message at position {position}: its {field} is {len} (at most {max} fit the index format)"
    )]
    TooLong { position: u64, field: &'static str, len: usize, max: usize },
    #[error("corrupt message index file {path} at byte {offset}: {reason}; rebuild the index from the log")]
    Corrupt { path: PathBuf, offset: u64, reason: &'static str },
    #[error(
        "an earlier write or fsync of the message index failed, so its files are in an unknown state; reopen or clear it"
    )]
    Poisoned,
    #[error("the message index at {path} is open elsewhere (its lock file is held)")]
    InUse { path: PathBuf },
    #[error("invalid message index config: {0}")]
    Config(&'static str),
}

impl IndexError {
    pub(super) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> IndexError {
        let path = path.into();
        move |source| IndexError::Io { op, path, source }
    }

    pub(super) fn corrupt(path: impl Into<PathBuf>, offset: u64, reason: &'static str) -> IndexError {
        IndexError::Corrupt { path: path.into(), offset, reason }
    }
}
