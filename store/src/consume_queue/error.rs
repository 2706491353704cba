//! Errors of the consume-queue store.

use std::path::PathBuf;

/// Why a consume-queue operation failed.
///
/// `Gap`, `Conflict`, `Trimmed` and `TruncateOutOfRange` mean the caller's view of the queue
/// disagrees with what is on disk (a recovery bug, or a checkpoint that does not match the files);
/// the cure is to rebuild the queue from the log. `Io` and `Poisoned` mean this node's disk is in
/// trouble.
#[derive(Debug, thiserror::Error)]
pub enum CqError {
    #[error("consume queue I/O failed on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid topic name {topic:?}: {reason}")]
    InvalidTopic { topic: String, reason: &'static str },
    #[error("invalid consume queue config: {0}")]
    InvalidConfig(String),
    #[error("{topic}/{queue_id}: cannot write offset {offset}, the next offset is {next}; units must be contiguous")]
    Gap { topic: String, queue_id: i32, offset: i64, next: i64 },
    #[error(
        "{topic}/{queue_id}: offset {offset} already holds a different unit: on disk {existing:?}, re-dispatched {new:?}"
    )]
    Conflict { topic: String, queue_id: i32, offset: i64, existing: Box<super::CqUnit>, new: Box<super::CqUnit> },
    #[error("{topic}/{queue_id}: offset {offset} is below the min offset {min}; that unit was trimmed")]
    Trimmed { topic: String, queue_id: i32, offset: i64, min: i64 },
    #[error("{topic}/{queue_id}: cannot truncate to next offset {next_offset}; the queue holds [{min}, {next})")]
    TruncateOutOfRange { topic: String, queue_id: i32, next_offset: i64, min: i64, next: i64 },
    #[error(
        "an earlier consume queue fsync failed, so what is on disk is unknown; reopen the store and rebuild from the last checkpoint"
    )]
    Poisoned,
}

impl CqError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CqError::Io { path: path.into(), source }
    }
}
