//! The summary across runs: every run directory under one folder is checked (refreshing its
//! own report, so the summary's links work) and the results are added up into
//! `summary.json` and `summary.html`.
//!
//! A run that cannot be checked (unreadable or malformed history) is listed with its error and
//! counted as `unreadable`, never silently left out: a missing run could be the failing one.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::html::{esc, href, opt_ms, page, table};
use super::{HISTORY_FILE, INDEX_FILE, ReportError, RunReport, report_run};
use crate::checker::AnomalyKind;

pub const SUMMARY_JSON: &str = "summary.json";
pub const SUMMARY_HTML: &str = "summary.html";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub totals: Totals,
    /// Every kind, zero included, so "0 lost over 40 runs" is stated, not implied.
    pub anomalies_by_kind: BTreeMap<AnomalyKind, u64>,
    /// Per fault name.
    pub faults: BTreeMap<String, FaultSummary>,
    pub runs: Vec<RunRow>,
}

impl Summary {
    /// Every run was checked and found valid.
    pub fn all_valid(&self) -> bool {
        self.totals.invalid == 0 && self.totals.unreadable == 0
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub runs: u64,
    pub valid: u64,
    pub invalid: u64,
    pub unreadable: u64,
    /// Fault windows.
    pub faults: u64,
    pub operations: u64,
    /// Ok sends.
    pub acknowledged: u64,
    pub anomalies: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSummary {
    pub windows: u64,
    pub recovered: u64,
    /// Windows after whose start no send ever succeeded.
    pub not_recovered: u64,
    /// Over recovered windows.
    pub median_rto_ns: Option<u64>,
    pub worst_rto_ns: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRow {
    pub name: String,
    /// The run directory's name inside the summarized folder.
    pub dir: String,
    pub seed: Option<u64>,
    /// `None` when the run could not be checked (see `error`).
    pub valid: Option<bool>,
    pub error: Option<String>,
    pub operations: u64,
    pub acknowledged: u64,
    pub faults: u64,
    pub anomalies: u64,
}

/// Checks every run directory (a subfolder holding `history.jsonl`) under `dir` and writes
/// `summary.json` and `summary.html` into `dir`.
pub fn summarize(dir: &Path) -> Result<Summary, ReportError> {
    let mut runs: Vec<String> = Vec::new();
    for entry in fs::read_dir(dir).map_err(ReportError::io(dir))? {
        let entry = entry.map_err(ReportError::io(dir))?;
        if entry.path().join(HISTORY_FILE).is_file() {
            runs.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    runs.sort();
    let mut summary = Summary::default();
    let mut rtos: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for kind in AnomalyKind::ALL {
        summary.anomalies_by_kind.insert(kind, 0);
    }
    for run in runs {
        summary.totals.runs += 1;
        let row = match report_run(&dir.join(&run)) {
            Ok(report) => tally(&mut summary, &mut rtos, &run, &report),
            Err(e) => {
                summary.totals.unreadable += 1;
                RunRow { name: run.clone(), dir: run.clone(), error: Some(e.to_string()), ..RunRow::default() }
            }
        };
        summary.totals.faults += row.faults;
        summary.totals.operations += row.operations;
        summary.totals.acknowledged += row.acknowledged;
        summary.totals.anomalies += row.anomalies;
        summary.runs.push(row);
    }
    for (fault, mut samples) in rtos {
        samples.sort_unstable();
        let f = summary.faults.entry(fault).or_default();
        f.recovered = samples.len() as u64;
        f.median_rto_ns = samples.get(samples.len().saturating_sub(1) / 2).copied();
        f.worst_rto_ns = samples.last().copied();
    }
    write(dir, &summary)?;
    Ok(summary)
}

/// Adds one checked run's anomalies and fault windows to the summary; returns its row.
fn tally(summary: &mut Summary, rtos: &mut BTreeMap<String, Vec<u64>>, dir: &str, report: &RunReport) -> RunRow {
    let v = &report.verdict;
    if v.valid {
        summary.totals.valid += 1;
    } else {
        summary.totals.invalid += 1;
    }
    for (kind, found) in &v.anomalies {
        *summary.anomalies_by_kind.entry(*kind).or_default() += found.count;
    }
    for w in &v.windows {
        let fault = summary.faults.entry(w.fault.clone()).or_default();
        fault.windows += 1;
        match w.rto_ns {
            Some(rto) => rtos.entry(w.fault.clone()).or_default().push(rto),
            None => fault.not_recovered += 1,
        }
    }
    RunRow {
        name: report.name.clone(),
        dir: dir.to_string(),
        seed: report.info.as_ref().and_then(|i| i.seed),
        valid: Some(v.valid),
        error: None,
        operations: v.stats.operations,
        acknowledged: v.stats.sends.ok,
        faults: v.windows.len() as u64,
        anomalies: v.anomaly_count(),
    }
}

fn write(dir: &Path, summary: &Summary) -> Result<(), ReportError> {
    let json_path = dir.join(SUMMARY_JSON);
    let json = serde_json::to_vec_pretty(summary).map_err(io::Error::other).map_err(ReportError::io(&json_path))?;
    fs::write(&json_path, json).map_err(ReportError::io(&json_path))?;
    let html_path = dir.join(SUMMARY_HTML);
    fs::write(&html_path, render(summary)).map_err(ReportError::io(&html_path))
}

fn render(s: &Summary) -> String {
    let t = &s.totals;
    let class = if s.all_valid() { "valid" } else { "invalid" };
    let mut body = String::from("<h1>raftmq Jepsen summary</h1>\n");
    let _ = writeln!(
        body,
        "<p id=\"verdict\" class=\"{class}\"><strong>{} of {} runs valid, {} invalid, {} unreadable</strong></p>",
        t.valid, t.runs, t.invalid, t.unreadable
    );
    body.push_str("<h2 id=\"totals\">Totals</h2>\n");
    let row = [[t.runs, t.faults, t.operations, t.acknowledged, t.anomalies].map(|n| n.to_string()).to_vec()];
    body.push_str(&table(&["runs", "faults", "operations", "acknowledged messages", "anomalies"], &row));

    body.push_str("<h2 id=\"anomalies\">Anomalies by kind</h2>\n");
    let rows: Vec<Vec<String>> =
        s.anomalies_by_kind.iter().map(|(k, n)| vec![k.to_string(), n.to_string(), esc(k.definition())]).collect();
    body.push_str(&table(&["kind", "count", "definition"], &rows));

    body.push_str("<h2 id=\"faults\">Recovery time per fault kind</h2>\n");
    let rows: Vec<Vec<String>> = s
        .faults
        .iter()
        .map(|(name, f)| {
            vec![
                esc(name),
                f.windows.to_string(),
                f.not_recovered.to_string(),
                opt_ms(f.median_rto_ns, "-"),
                opt_ms(f.worst_rto_ns, "-"),
            ]
        })
        .collect();
    body.push_str(&table(&["fault", "windows", "not recovered", "median RTO", "worst RTO"], &rows));

    body.push_str("<h2 id=\"runs\">Runs</h2>\n");
    let rows: Vec<Vec<String>> = s
        .runs
        .iter()
        .map(|r| {
            let link = format!("<a href=\"{}/{INDEX_FILE}\">{}</a>", href(&r.dir), esc(&r.name));
            let verdict = match (r.valid, &r.error) {
                (Some(true), _) => "valid".to_string(),
                (Some(false), _) => "<strong>INVALID</strong>".to_string(),
                (None, e) => format!("unreadable: {}", esc(e.as_deref().unwrap_or_default())),
            };
            let seed = r.seed.map_or_else(|| "-".to_string(), |s| s.to_string());
            let nums = [r.operations, r.acknowledged, r.faults, r.anomalies].map(|n| n.to_string());
            [vec![link, seed, verdict], nums.to_vec()].concat()
        })
        .collect();
    let headers = ["run", "seed", "verdict", "operations", "acknowledged", "faults", "anomalies"];
    body.push_str(&table(&headers, &rows));
    page("raftmq Jepsen summary", &body)
}
