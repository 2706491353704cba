//! Time series for the run page's plots: one point per completed send, and ok sends per second.

use std::collections::HashMap;

use crate::history::{Call, Entry, OpType};

pub(crate) struct SendPoint {
    /// Completion time, seconds since the first history line.
    pub at_s: f64,
    pub latency_ms: f64,
    pub outcome: OpType,
}

pub(crate) struct Series {
    /// `time_ns` of the first history line: the plots' zero.
    pub t0_ns: u64,
    pub duration_s: f64,
    /// In completion order.
    pub points: Vec<SendPoint>,
}

/// Pairs send invocations with their completions (sends never completed have no point).
pub(crate) fn sends(history: &[Entry]) -> Series {
    let t0_ns = history.first().map_or(0, |e| e.time_ns);
    let end = history.last().map_or(0, |e| e.time_ns);
    let mut invoked: HashMap<u64, u64> = HashMap::new();
    let mut points = Vec::new();
    for e in history.iter().filter(|e| matches!(e.call, Call::Send(_))) {
        if e.kind == OpType::Invoke {
            invoked.insert(e.op, e.time_ns);
        } else if let Some(start) = invoked.remove(&e.op) {
            points.push(SendPoint {
                at_s: secs(e.time_ns - t0_ns),
                latency_ms: (e.time_ns - start) as f64 / 1e6,
                outcome: e.kind,
            });
        }
    }
    Series { t0_ns, duration_s: secs(end - t0_ns), points }
}

pub(crate) fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Ok sends per second, in 1 s bins (wider for long runs, narrower for runs under 20 s, so
/// there are at most 300): returns the bin width (s) and `(bin start, rate)` pairs.
pub(crate) fn throughput(series: &Series) -> (f64, Vec<(f64, f64)>) {
    let bin = [0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0]
        .into_iter()
        .find(|b| series.duration_s / b <= 300.0 && (*b >= 1.0 || series.duration_s < 20.0))
        .unwrap_or(60.0);
    let n = (series.duration_s / bin).floor() as usize + 1;
    let mut counts = vec![0u64; n];
    for p in series.points.iter().filter(|p| p.outcome == OpType::Ok) {
        let i = ((p.at_s / bin) as usize).min(n - 1);
        counts[i] += 1;
    }
    let rates = counts.iter().enumerate().map(|(i, c)| (i as f64 * bin, *c as f64 / bin)).collect();
    (bin, rates)
}
