//! Availability: operation counts, ok-send latency quantiles, and per fault window the sends
//! that failed or went unknown and the time until sends succeeded again (RTO).
//!
//! Windows come from `nemesis` ops: a `start` opens a window for its fault name and the next
//! `stop` of the same name closes it (a `fail`ed nemesis op never took effect and is skipped).
//! Everything is computed from sorted time arrays with prefix sums, so a run with hundreds of
//! windows costs a few binary searches per window.

use std::collections::{HashMap, VecDeque};

use super::model::{Model, Outcome};
use super::verdict::{OutcomeCounts, Quantiles, Stats, WindowStats};
use crate::history::{Call, FaultAction};

pub(crate) fn stats(m: &Model<'_>) -> Stats {
    let mut s = Stats { operations: m.ops.len() as u64, ..Stats::default() };
    if let (Some(first), Some(last)) = (m.history.first(), m.history.last()) {
        s.duration_ns = last.time_ns - first.time_ns;
    }
    let mut latencies = Vec::with_capacity(m.sends.len());
    for op in &m.ops {
        let counts = match op.call() {
            Call::Send(_) => &mut s.sends,
            Call::Poll(_) => &mut s.polls,
            Call::CommitOffset(_) => &mut s.commit_offsets,
            Call::FetchOffset(_) => &mut s.fetch_offsets,
            Call::Ack(_) => &mut s.acks,
            Call::Nemesis(_) | Call::FinalRead => continue,
        };
        match op.outcome() {
            Outcome::Ok => counts.ok += 1,
            Outcome::Fail => counts.fail += 1,
            Outcome::Info => counts.info += 1,
        }
        if let (Call::Send(_), Some(done)) = (op.call(), op.done.filter(|_| op.outcome() == Outcome::Ok)) {
            latencies.push(done.time_ns - op.invoke.time_ns);
        }
    }
    s.messages_read = m.reads.len() as u64;
    s.distinct_values_read = m.first_read.iter().filter(|r| r.is_some()).count() as u64;
    s.final_read = m.final_read.is_some();
    s.send_latency = quantiles(&mut latencies);
    s
}

/// Nearest rank: the smallest sample with at least q of the samples at or below it.
pub(crate) fn quantiles(samples: &mut [u64]) -> Option<Quantiles> {
    let max_ns = *samples.iter().max()?;
    let mut at = |q: f64| {
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        *samples.select_nth_unstable(rank - 1).1
    };
    Some(Quantiles { p50_ns: at(0.5), p99_ns: at(0.99), p999_ns: at(0.999), max_ns })
}

pub(crate) fn windows(m: &Model<'_>) -> Vec<WindowStats> {
    let end_of_history = m.history.last().map_or(0, |e| e.time_ns);
    let mut windows: Vec<WindowStats> = Vec::new();
    let mut open: HashMap<&str, VecDeque<usize>> = HashMap::new();
    for op in &m.ops {
        let Call::Nemesis(fault) = &op.invoke.call else { continue };
        if op.outcome() == Outcome::Fail {
            continue;
        }
        let at = op.done.unwrap_or(op.invoke).time_ns;
        match fault.action {
            FaultAction::Start => {
                open.entry(fault.fault.as_str()).or_default().push_back(windows.len());
                windows.push(WindowStats {
                    fault: fault.fault.clone(),
                    targets: fault.targets.clone(),
                    start_ns: at,
                    end_ns: end_of_history,
                    stopped: false,
                    sends: OutcomeCounts::default(),
                    rto_ns: None,
                    recovery_after_stop_ns: None,
                });
            }
            FaultAction::Stop => {
                if let Some(w) = open.get_mut(fault.fault.as_str()).and_then(VecDeque::pop_front) {
                    windows[w].end_ns = at;
                    windows[w].stopped = true;
                }
            }
        }
    }
    let timeline = Timeline::new(m);
    for w in &mut windows {
        w.sends = timeline.completed_between(w.start_ns, w.end_ns);
        w.rto_ns = timeline.first_ok_after(w.start_ns);
        w.recovery_after_stop_ns = if w.stopped { timeline.first_ok_after(w.end_ns) } else { None };
    }
    windows
}

/// Sends arranged for range queries by time.
struct Timeline {
    /// Completion times (invocation time if never completed), ascending, with prefix counts.
    done: Vec<u64>,
    prefix: Vec<OutcomeCounts>,
    /// Invocation times of ok sends, ascending (history order is invocation order).
    ok_invoked: Vec<u64>,
    /// `earliest_done[i]`: the earliest completion among ok sends `i..`.
    earliest_done: Vec<u64>,
}

impl Timeline {
    fn new(m: &Model<'_>) -> Self {
        let mut done: Vec<(u64, Outcome)> = Vec::with_capacity(m.sends.len());
        let (mut ok_invoked, mut ok_done) = (Vec::new(), Vec::new());
        for s in &m.sends {
            let op = m.send_op(s);
            done.push((op.done.unwrap_or(op.invoke).time_ns, s.outcome));
            if let (Outcome::Ok, Some(d)) = (s.outcome, op.done) {
                ok_invoked.push(op.invoke.time_ns);
                ok_done.push(d.time_ns);
            }
        }
        // Nearly sorted already (sends complete roughly in invocation order).
        done.sort_by_key(|(t, _)| *t);
        let mut prefix = Vec::with_capacity(done.len() + 1);
        let mut acc = OutcomeCounts::default();
        prefix.push(acc);
        for (_, outcome) in &done {
            match outcome {
                Outcome::Ok => acc.ok += 1,
                Outcome::Fail => acc.fail += 1,
                Outcome::Info => acc.info += 1,
            }
            prefix.push(acc);
        }
        let mut earliest_done = ok_done;
        for i in (0..earliest_done.len().saturating_sub(1)).rev() {
            earliest_done[i] = earliest_done[i].min(earliest_done[i + 1]);
        }
        Self { done: done.into_iter().map(|(t, _)| t).collect(), prefix, ok_invoked, earliest_done }
    }

    fn completed_between(&self, from: u64, to: u64) -> OutcomeCounts {
        let lo = self.done.partition_point(|t| *t < from);
        let hi = self.done.partition_point(|t| *t <= to).max(lo);
        let (a, b) = (self.prefix[lo], self.prefix[hi]);
        OutcomeCounts { ok: b.ok - a.ok, fail: b.fail - a.fail, info: b.info - a.info }
    }

    fn first_ok_after(&self, t: u64) -> Option<u64> {
        let i = self.ok_invoked.partition_point(|inv| *inv < t);
        self.earliest_done.get(i).map(|done| done - t)
    }
}
