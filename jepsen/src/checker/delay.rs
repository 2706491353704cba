//! Delayed messages: `early-delivery` (read before its delivery time) and `lost-delayed` (an
//! acknowledged delayed send never delivered), and the delivery lateness figures.
//!
//! A delayed send carries its due time on the history clock (`due_ns`). The runner reads the
//! history clock, then the wall clock, and asks the broker for the wall time rounded up to the
//! next millisecond plus the delay, so the broker's delivery time is never before `due_ns`.
//!
//! **Early.** A read's poll completed at `c`; the broker released the message before `c`. It is
//! early when `c + tolerance < due`. The tolerance (`CheckOptions::delay_tolerance_ns`, 100 ms)
//! stands for the difference between the runner's clock and the brokers' when no clock is
//! skewed. In a run every process shares one host clock and the broker compares whole
//! milliseconds against a due time rounded up, so the true bound is 0; what remains is that the
//! history clock is monotonic while the brokers read the wall clock (the two part only when the
//! wall clock is stepped, e.g. by NTP). 100 ms absorbs such a step and is far below the delays
//! drawn (seconds), so a broker firing on the wrong due time is still caught. Between hosts it
//! would have to be the clock synchronisation bound.
//!
//! **Clock skew.** The broker judges due times by its own wall clock: the replica taking a send
//! stamps its store time (a message already due by then is placed at once) and the leader's
//! timer fires what its clock says is due. A node whose clock runs `s` ahead may therefore
//! release a message up to `s` early, at a moment `f` while it ran skewed; the read follows
//! (`f <= c`). So a read is also excused when, for some `clock-skew` start with offset `s > 0`,
//! `due <= min(c, until) + s + tolerance` and `c >= from`, where `until` is the completion of
//! the matching stop (the node restarted with the true clock; never, if the stop did not
//! complete `ok`) and `from` is the completion of the nemesis's previous operation: the nemesis
//! is one sequential process that writes a start's invocation only after applying the fault
//! (so it can name the targets), so the skewed node may have run from then on. A start without
//! `clock_offset_s` (older histories) counts as [`MAX_CLOCK_SKEW_S`] either way; a `fail`ed
//! start that names a target as never healed (its node may be running skewed).
//!
//! **Lost.** A delayed send acknowledged with offset -1 has no position, so `lost` and `unseen`
//! cannot see it. It is `lost-delayed` when its value is never read, the final drain completed
//! `ok`, the send completed before the drain was invoked, and the drain began at least the grace
//! (`delay_grace_ns`, 5 s: the timer's 100 ms tick, a commit, an election) after the due time,
//! plus the offset of any clock still skewed behind when the drain began. Others are counted as
//! unchecked in the stats (and a note). A delayed send placed at once (offset >= 0: due by its
//! store time) is an ordinary send for `lost` and `unseen`.
//!
//! Lateness: per delayed value read, its first read's poll completion minus its due time.
//!
//! One pass over the sends and one over the ok polls; the skew windows are few (one per
//! `clock-skew` start) and only reads already found early are compared with them.

use super::anomaly::{Anomaly, AnomalyKind, Collector};
use super::availability::quantiles;
use super::model::{Model, Outcome};
use super::verdict::{DelayStats, OutcomeCounts};
use crate::history::{Call, FaultAction, OpType, Process};

/// How far the clock-skew nemesis sets a clock off at most, either way, in seconds; assumed for
/// a `clock-skew` start that does not record its offset.
pub const MAX_CLOCK_SKEW_S: i64 = 120;
/// Default tolerance for reading a delayed message before its due time, without clock skew.
pub const DELAY_TOLERANCE_NS: u64 = 100_000_000;
/// Default time a final drain must begin after a delayed message's due time for a missing
/// message to count as `lost-delayed`.
pub const DELAY_GRACE_NS: u64 = 5_000_000_000;

const CLOCK_SKEW: &str = "clock-skew";
const S: u64 = 1_000_000_000;

/// When a node may have run with a skewed clock, and how far off.
struct Skew {
    from_ns: u64,
    /// `u64::MAX`: never known to be healed.
    until_ns: u64,
    ahead_ns: u64,
    behind_ns: u64,
}

fn skews(m: &Model<'_>) -> Vec<Skew> {
    let mut out: Vec<Skew> = Vec::new();
    let mut open = std::collections::VecDeque::new();
    let mut prev_done = m.history.first().map_or(0, |e| e.time_ns);
    for op in &m.ops {
        let (Process::NEMESIS, Call::Nemesis(f)) = (op.invoke.process, &op.invoke.call) else { continue };
        let done = op.done.map_or(op.invoke.time_ns, |d| d.time_ns);
        if f.fault == CLOCK_SKEW {
            match f.action {
                FaultAction::Start if op.outcome() != Outcome::Fail || !f.targets.is_empty() => {
                    let s = f.clock_offset_s.map(|s| (s.max(0), (-s).max(0)));
                    let (ahead, behind) = s.unwrap_or((MAX_CLOCK_SKEW_S, MAX_CLOCK_SKEW_S));
                    if op.outcome() != Outcome::Fail {
                        open.push_back(out.len());
                    }
                    out.push(Skew {
                        from_ns: prev_done,
                        until_ns: u64::MAX,
                        ahead_ns: ahead as u64 * S,
                        behind_ns: behind as u64 * S,
                    });
                }
                FaultAction::Start => {}
                FaultAction::Stop => {
                    if let Some(w) = open.pop_front()
                        && op.outcome() == Outcome::Ok
                    {
                        out[w].until_ns = done;
                    }
                }
            }
        }
        prev_done = done;
    }
    out
}

/// Whether clock skew explains a read completing at `read_ns` of a message due at `due_ns`.
fn skew_explains(skews: &[Skew], read_ns: u64, due_ns: u64, tolerance_ns: u64) -> bool {
    skews.iter().any(|w| {
        w.ahead_ns > 0
            && read_ns >= w.from_ns
            && due_ns <= read_ns.min(w.until_ns).saturating_add(w.ahead_ns).saturating_add(tolerance_ns)
    })
}

pub(crate) fn check(m: &Model<'_>, tolerance_ns: u64, grace_ns: u64, out: &mut Collector) -> Option<DelayStats> {
    if m.sends.iter().all(|s| s.due_ns.is_none() && s.unplaced.is_none()) {
        return None;
    }
    let skews = skews(m);
    let mut stats = DelayStats { tolerance_ns, grace_ns, ..DelayStats::default() };
    // Per value: when a poll first returned it (completion time), for delayed values only.
    let mut first_read_ns: Vec<Option<u64>> = vec![None; m.values.len()];
    let mut reads = m.reads.iter();
    for e in m.history {
        let (OpType::Ok, Call::Poll(poll)) = (e.kind, &e.call) else { continue };
        for r in reads.by_ref().take(poll.msgs.len()) {
            let Some(n) = m.send_of_value[r.value as usize] else { continue };
            let s = &m.sends[n];
            let Some(due_ns) = s.due_ns else { continue };
            let first = &mut first_read_ns[r.value as usize];
            if first.is_some() {
                continue;
            }
            *first = Some(e.time_ns);
            // Reads come in completion order, so each value's first read is its earliest: if it
            // is not early, no later read is.
            if e.time_ns.saturating_add(tolerance_ns) < due_ns
                && !skew_explains(&skews, e.time_ns, due_ns, tolerance_ns)
            {
                out.push(AnomalyKind::EarlyDelivery, || Anomaly::EarlyDelivery {
                    value: m.value(r.value),
                    at: m.position(r.pos),
                    send_index: m.send_op(s).invoke.index,
                    due_ns,
                    read_index: r.index,
                    read_ns: e.time_ns,
                    early_by_ns: due_ns - e.time_ns,
                });
            }
        }
    }
    let drain = m.final_read.zip(m.final_read_ns);
    // A clock still behind when the drain began holds back what it alone would fire.
    let behind_ns = drain.map_or(0, |(_, at)| {
        skews.iter().filter(|w| w.from_ns <= at && w.until_ns > at).map(|w| w.behind_ns).max().unwrap_or(0)
    });
    let mut lateness = Vec::new();
    for s in &m.sends {
        if let Some(due_ns) = s.due_ns {
            let c: &mut OutcomeCounts = &mut stats.sends;
            match s.outcome {
                Outcome::Ok => c.ok += 1,
                Outcome::Fail => c.fail += 1,
                Outcome::Info => c.info += 1,
            }
            if let Some(read_ns) = first_read_ns[s.value as usize] {
                stats.delivered += 1;
                let late = read_ns as i64 - due_ns as i64;
                stats.earliest_ns = Some(stats.earliest_ns.map_or(late, |e| e.min(late)));
                if late < 0 {
                    stats.before_due += 1;
                }
                lateness.push(late.max(0) as u64);
            }
        }
        let Some(queue) = s.unplaced else { continue };
        stats.unplaced += 1;
        if m.first_read[s.value as usize].is_some() {
            continue;
        }
        let op = m.send_op(s);
        // Offset -1 without a delay: nothing to wait for.
        let due_ns = s.due_ns.unwrap_or(op.invoke.time_ns);
        match drain {
            Some((index, at)) if op.done_index() < index && at >= due_ns.saturating_add(grace_ns + behind_ns) => {
                out.push(AnomalyKind::LostDelayed, || Anomaly::LostDelayed {
                    value: m.value(s.value),
                    queue: m.queue(queue),
                    send_index: op.invoke.index,
                    due_ns,
                    final_read_index: index,
                });
            }
            _ => stats.unchecked += 1,
        }
    }
    stats.lateness = quantiles(&mut lateness);
    Some(stats)
}
