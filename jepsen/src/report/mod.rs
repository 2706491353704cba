//! Reports: per run `verdict.json` and `index.html`, across runs `summary.json` and
//! `summary.html`.
//!
//! A run directory is the runner's output and the report's input:
//!
//! ```text
//! run-dir/
//!   history.jsonl   the history (required)
//!   run.json        seed, versions, nemeses (optional, see `run_info`)
//!   logs/           every node's log, any layout (optional; each file gets a link)
//!   verdict.json    written here
//!   index.html      written here
//! ```
//!
//! # Layout
//! - `run_page`: index.html; `summary`: the cross-run summary.
//! - `series`: the send points and throughput bins the plots draw.
//! - `svg`: the plot frame; `html`: escaping, tables, the page shell.

mod html;
mod run_page;
mod series;
mod summary;
mod svg;

pub use summary::{FaultSummary, RunRow, SUMMARY_HTML, SUMMARY_JSON, Summary, Totals, summarize};

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::checker::{self, CheckError, Verdict};
use crate::history::{HistoryError, read_history};
use crate::run_info::RunInfo;

pub const HISTORY_FILE: &str = "history.jsonl";
pub const VERDICT_FILE: &str = "verdict.json";
pub const INDEX_FILE: &str = "index.html";
pub const LOGS_DIR: &str = "logs";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("{path}: {source}")]
    Check {
        path: PathBuf,
        #[source]
        source: CheckError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ReportError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> ReportError + '_ {
        move |source| ReportError::Io { path: path.to_path_buf(), source }
    }
}

/// A checked run.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub dir: PathBuf,
    /// From run.json, else the directory name.
    pub name: String,
    pub info: Option<RunInfo>,
    pub verdict: Verdict,
}

/// Checks the run in `dir` and writes `verdict.json` and `index.html` into it.
pub fn report_run(dir: &Path) -> Result<RunReport, ReportError> {
    let history_path = dir.join(HISTORY_FILE);
    let history = read_history(&history_path)?;
    let verdict =
        checker::check(&history).map_err(|source| ReportError::Check { path: history_path.clone(), source })?;
    let info = RunInfo::load(dir).map_err(ReportError::io(&dir.join(crate::run_info::RUN_FILE)))?;
    let name = info.as_ref().and_then(|i| i.name.clone()).unwrap_or_else(|| dir_name(dir));
    let logs = list_logs(dir).map_err(ReportError::io(&dir.join(LOGS_DIR)))?;

    let verdict_path = dir.join(VERDICT_FILE);
    let json = serde_json::to_vec_pretty(&verdict).map_err(io::Error::other).map_err(ReportError::io(&verdict_path))?;
    fs::write(&verdict_path, json).map_err(ReportError::io(&verdict_path))?;

    let page =
        run_page::RunPage { name: &name, info: info.as_ref(), verdict: &verdict, history: &history, logs: &logs };
    let index_path = dir.join(INDEX_FILE);
    fs::write(&index_path, page.render()).map_err(ReportError::io(&index_path))?;
    Ok(RunReport { dir: dir.to_path_buf(), name, info, verdict })
}

fn dir_name(dir: &Path) -> String {
    dir.canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string())
}

/// Every file under `dir/logs`, as sorted `/`-separated paths relative to `dir`.
fn list_logs(dir: &Path) -> io::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::from(LOGS_DIR)];
    while let Some(rel) = pending.pop() {
        let entries = match fs::read_dir(dir.join(&rel)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let path = rel.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else {
                let parts: Vec<String> =
                    path.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                found.push(parts.join("/"));
            }
        }
    }
    found.sort();
    Ok(found)
}
