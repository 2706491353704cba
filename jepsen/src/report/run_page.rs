//! `index.html` for one run: verdict, run facts, anomalies with examples, counts and latency,
//! the two plots with fault windows shaded, the recovery table and links to node logs.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::html::{esc, href, ms, opt_ms, page, secs, table};
use super::series::{self, Series};
use super::svg::{FAIL, Frame, INFO, OK, Scale, Shade, fault_color};
use crate::checker::{AnomalyKind, DelayStats, OutcomeCounts, Verdict};
use crate::history::{Entry, OpType};
use crate::run_info::RunInfo;

/// Points drawn per outcome in the latency plot; beyond it ok sends are sampled evenly.
const MAX_POINTS: usize = 20_000;

pub(crate) struct RunPage<'a> {
    pub name: &'a str,
    pub info: Option<&'a RunInfo>,
    pub verdict: &'a Verdict,
    pub history: &'a [Entry],
    /// Paths relative to the run directory, e.g. `logs/n1.log`.
    pub logs: &'a [String],
}

impl RunPage<'_> {
    pub(crate) fn render(&self) -> String {
        let v = self.verdict;
        let series = series::sends(self.history);
        let colors = fault_colors(v);
        let mut body = format!("<h1>raftmq Jepsen run: {}</h1>\n", esc(self.name));
        let class = if v.valid { "valid" } else { "invalid" };
        let _ = writeln!(body, "<p id=\"verdict\" class=\"{class}\"><strong>{}</strong></p>", esc(&v.one_line()));
        for note in &v.notes {
            let _ = writeln!(body, "<p><em>Note:</em> {}</p>", esc(note));
        }
        body.push_str(&self.run_facts());
        body.push_str(&anomalies(v));
        body.push_str(&stats(v));
        body.push_str(&latency_plot(&series, v, &colors));
        body.push_str(&throughput_plot(&series, v, &colors));
        body.push_str(&windows_table(v, series.t0_ns));
        body.push_str(&self.logs_list());
        page(&format!("raftmq Jepsen: {}", self.name), &body)
    }

    fn run_facts(&self) -> String {
        let mut rows = Vec::new();
        let info = self.info.cloned().unwrap_or_default();
        let mut row = |k: &str, v: String| rows.push(vec![esc(k), esc(&v)]);
        row("seed", info.seed.map_or_else(|| "unknown".to_string(), |s| s.to_string()));
        row("started (unix ms)", info.started_unix_ms.map_or_else(|| "unknown".to_string(), |s| s.to_string()));
        row("workload", info.workload.unwrap_or_else(|| "unknown".to_string()));
        row("nemeses", info.nemeses.join(", "));
        row("nodes", info.nodes.join(", "));
        for (k, v) in &info.versions {
            row(&format!("version: {k}"), v.clone());
        }
        for (k, v) in &info.config {
            row(&format!("config: {k}"), v.clone());
        }
        let missing = if self.info.is_none() { "<p>No run.json in this run directory.</p>\n" } else { "" };
        format!("<h2 id=\"run\">Run</h2>\n{missing}{}", table(&["field", "value"], &rows))
    }

    fn logs_list(&self) -> String {
        let mut out = String::from("<h2 id=\"logs\">Node logs</h2>\n");
        if self.logs.is_empty() {
            out.push_str("<p>No node logs (logs/ is empty or absent).</p>\n");
            return out;
        }
        out.push_str("<ul>\n");
        for log in self.logs {
            let _ = writeln!(out, "<li><a href=\"{}\">{}</a></li>", href(log), esc(log));
        }
        out.push_str("</ul>\n");
        out
    }
}

/// One color per fault name, in order of first appearance.
fn fault_colors(v: &Verdict) -> BTreeMap<String, &'static str> {
    let mut colors = BTreeMap::new();
    for w in &v.windows {
        let next = colors.len();
        colors.entry(w.fault.clone()).or_insert_with(|| fault_color(next));
    }
    colors
}

fn anomalies(v: &Verdict) -> String {
    let mut out = String::from("<h2 id=\"anomalies\">Anomalies</h2>\n");
    let rows: Vec<Vec<String>> = AnomalyKind::ALL
        .iter()
        .map(|k| {
            let count = v.anomalies.get(k).map_or(0, |f| f.count);
            let name = if count > 0 { format!("<a href=\"#anomaly-{k}\">{k}</a>") } else { k.to_string() };
            vec![name, count.to_string(), esc(k.definition())]
        })
        .collect();
    out.push_str(&table(&["kind", "count", "definition"], &rows));
    for (kind, found) in &v.anomalies {
        let shown = found.examples.len();
        let _ = writeln!(out, "<h3 id=\"anomaly-{kind}\">{kind}: {} (first {shown} shown)</h3>\n<ul>", found.count);
        for a in &found.examples {
            let json = serde_json::to_string_pretty(a).unwrap_or_default();
            let _ = writeln!(
                out,
                "<li>{}<details><summary>evidence</summary><pre>{}</pre></details></li>",
                esc(&a.to_string()),
                esc(&json)
            );
        }
        out.push_str("</ul>\n");
    }
    out
}

fn stats(v: &Verdict) -> String {
    let s = &v.stats;
    let counts = |name: &str, c: &OutcomeCounts| {
        vec![esc(name), c.total().to_string(), c.ok.to_string(), c.fail.to_string(), c.info.to_string()]
    };
    let rows = [
        counts("send", &s.sends),
        counts("poll", &s.polls),
        counts("commit_offset", &s.commit_offsets),
        counts("fetch_offset", &s.fetch_offsets),
        counts("ack", &s.acks),
    ];
    let mut out = String::from("<h2 id=\"stats\">Operations</h2>\n");
    out.push_str(&table(&["f", "total", "ok", "fail", "info"], &rows));
    let lat = s.send_latency.unwrap_or_default();
    let rows = [vec![
        s.operations.to_string(),
        secs(s.duration_ns),
        s.messages_read.to_string(),
        s.distinct_values_read.to_string(),
        if s.final_read { "yes" } else { "no" }.to_string(),
        ms(lat.p50_ns),
        ms(lat.p99_ns),
        ms(lat.p999_ns),
        ms(lat.max_ns),
    ]];
    let headers = ["operations", "duration", "read", "distinct read", "final drain", "p50", "p99", "p99.9", "max"];
    out.push_str(&table(&headers, &rows));
    if let Some(d) = &s.delay {
        out.push_str(&delay_stats(d));
    }
    out
}

/// Delayed messages: how they were acknowledged, and how late they were first read.
fn delay_stats(d: &DelayStats) -> String {
    let mut out = String::from("<h3 id=\"delay\">Delayed messages</h3>\n");
    let _ = writeln!(
        out,
        "<p>Lateness: each delayed value's first read (its poll's completion) minus its due time, consumer lag \
         included; a read before the due time counts 0. Tolerance for early reads without clock skew: {}.</p>",
        ms(d.tolerance_ns)
    );
    let lat = d.lateness.unwrap_or_default();
    let earliest = d
        .earliest_ns
        .map_or_else(|| "-".to_string(), |e| if e < 0 { format!("-{}", ms(e.unsigned_abs())) } else { ms(e as u64) });
    let rows = [vec![
        d.sends.total().to_string(),
        d.sends.ok.to_string(),
        d.unplaced.to_string(),
        d.delivered.to_string(),
        d.before_due.to_string(),
        earliest,
        ms(lat.p50_ns),
        ms(lat.p99_ns),
        ms(lat.p999_ns),
        ms(lat.max_ns),
        d.unchecked.to_string(),
    ]];
    let headers = [
        "delayed sends",
        "ok",
        "ok at offset -1",
        "delivered",
        "before due",
        "earliest vs due",
        "late p50",
        "p99",
        "p99.9",
        "max",
        "not checked",
    ];
    out.push_str(&table(&headers, &rows));
    out
}

fn shades<'a>(series: &Series, v: &'a Verdict, colors: &'a BTreeMap<String, &'static str>) -> Vec<Shade<'a>> {
    let at = |ns: u64| series::secs(ns.saturating_sub(series.t0_ns));
    v.windows
        .iter()
        .map(|w| Shade {
            from: at(w.start_ns),
            to: at(w.end_ns),
            label: &w.fault,
            color: colors.get(&w.fault).copied().unwrap_or("#ccc"),
        })
        .collect()
}

fn legend<'a>(colors: &'a BTreeMap<String, &'static str>) -> Vec<(&'a str, &'a str)> {
    colors.iter().map(|(name, color)| (name.as_str(), *color)).collect()
}

fn latency_plot(series: &Series, v: &Verdict, colors: &BTreeMap<String, &'static str>) -> String {
    let lat = series.points.iter().map(|p| p.latency_ms).filter(|l| *l > 0.0);
    let (lo, hi) = lat.fold((f64::MAX, 0f64), |(lo, hi), l| (lo.min(l), hi.max(l)));
    let min_exp = if hi > 0.0 { (lo.log10().floor() as i32).max(-3) } else { -1 };
    let max_exp = if hi > 0.0 { (hi.log10().ceil() as i32).max(min_exp + 1) } else { 3 };
    let frame = Frame::new(series.duration_s, Scale::Log { min_exp, max_exp });
    let mut svg = frame.begin("latency", "Send latency over time");
    svg.push_str(&frame.shade(&shades(series, v, colors)));
    svg.push_str(&frame.fault_legend(&legend(colors)));
    svg.push_str(&frame.axes("time (s)", "latency (ms, log)"));
    let ok_total = series.points.iter().filter(|p| p.outcome == OpType::Ok).count();
    let stride = ok_total.div_ceil(MAX_POINTS).max(1);
    for (outcome, color) in [(OpType::Ok, OK), (OpType::Info, INFO), (OpType::Fail, FAIL)] {
        let pts = series.points.iter().filter(|p| p.outcome == outcome);
        let step = if outcome == OpType::Ok { stride } else { 1 };
        for p in pts.step_by(step).take(MAX_POINTS) {
            svg.push_str(&frame.dot(p.at_s, p.latency_ms, color));
        }
        svg.push('\n');
    }
    svg.push_str(&frame.legend(&[("ok", OK), ("info", INFO), ("fail", FAIL)]));
    svg.push_str(frame.end());
    let sampled = if stride > 1 { format!(" One in {stride} ok sends is drawn.") } else { String::new() };
    format!(
        "<h2 id=\"latency-plot\">Latency</h2>\n<p>Each completed send at its completion time; shaded bands are fault windows.{sampled}</p>\n{svg}"
    )
}

fn throughput_plot(series: &Series, v: &Verdict, colors: &BTreeMap<String, &'static str>) -> String {
    let (bin, rates) = series::throughput(series);
    let max = rates.iter().map(|(_, r)| *r).fold(1.0, f64::max) * 1.1;
    let frame = Frame::new(series.duration_s, Scale::Linear { max });
    let mut svg = frame.begin("throughput", "Acknowledged sends per second");
    svg.push_str(&frame.shade(&shades(series, v, colors)));
    svg.push_str(&frame.fault_legend(&legend(colors)));
    svg.push_str(&frame.axes("time (s)", "ok sends / s"));
    svg.push_str(&frame.steps(&rates, series.duration_s, OK));
    svg.push_str(frame.end());
    format!("<h2 id=\"throughput-plot\">Throughput</h2>\n<p>Ok sends per second, in {bin} s bins.</p>\n{svg}")
}

fn windows_table(v: &Verdict, t0: u64) -> String {
    let mut out = String::from("<h2 id=\"faults\">Fault windows and recovery</h2>\n");
    if v.windows.is_empty() {
        out.push_str("<p>No faults were injected.</p>\n");
        return out;
    }
    out.push_str("<p>RTO: from the fault being in effect to the first acknowledged send invoked after it. After stop: the same, from the heal.</p>\n");
    let rows: Vec<Vec<String>> = v
        .windows
        .iter()
        .map(|w| {
            vec![
                esc(&w.fault),
                esc(&w.targets.join(", ")),
                secs(w.start_ns.saturating_sub(t0)),
                if w.stopped { secs(w.end_ns.saturating_sub(t0)) } else { "never stopped".to_string() },
                w.sends.ok.to_string(),
                w.sends.fail.to_string(),
                w.sends.info.to_string(),
                opt_ms(w.rto_ns, "not recovered"),
                if w.stopped { opt_ms(w.recovery_after_stop_ns, "not recovered") } else { "-".to_string() },
            ]
        })
        .collect();
    let headers = ["fault", "targets", "start", "stop", "ok", "fail", "info", "RTO", "after stop"];
    out.push_str(&table(&headers, &rows));
    out
}
