//! [`read_history`]: parses a JSONL history, naming the line of the first malformed one.
//!
//! Parsing stops at the first bad line rather than skipping it: a history with a hole in it
//! could hide exactly the operation that makes a run invalid, so a torn or hand-edited file is
//! an error to fix, not something to check around. Blank lines are allowed.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::Entry;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot read history {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `line` counts from 1, as editors do.
    #[error("history line {line} is malformed: {message}")]
    Malformed { line: usize, message: String },
}

/// Reads a whole history file.
pub fn read_history(path: &Path) -> Result<Vec<Entry>, HistoryError> {
    let io_err = |source| HistoryError::Io { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(io_err)?;
    parse_history(BufReader::new(file)).map_err(|e| match e {
        HistoryError::Io { source, .. } => io_err(source),
        other => other,
    })
}

/// Parses history lines from any reader (I/O errors carry an empty path).
pub fn parse_history(input: impl BufRead) -> Result<Vec<Entry>, HistoryError> {
    let mut entries = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|source| HistoryError::Io { path: PathBuf::new(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        let entry =
            serde_json::from_str(&line).map_err(|e| HistoryError::Malformed { line: n + 1, message: e.to_string() })?;
        entries.push(entry);
    }
    Ok(entries)
}
