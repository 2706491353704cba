//! Consumer offsets must not move backwards: `offset-regression`.
//!
//! A `fetch_offset` that returns less than the highest commit acknowledged before the fetch was
//! invoked (or nothing at all) has lost that commit, unless the lower value was itself written
//! by a commit that could be ordered after the high one: a commit of exactly that value, invoked
//! before the fetch completed, whose own completion came after the high commit was invoked (so
//! the two overlapped, and the low one may have won). `info` commits count as overlapping
//! everything after their invocation; `fail` commits never happened.
//!
//! This is register linearizability restricted to the one write that matters, which is enough
//! for workloads that commit rising offsets, and one sweep over the history.

use super::anomaly::{Anomaly, AnomalyKind, Collector};
use super::hasher::FastMap;
use super::model::{Model, Outcome};
use crate::history::{Call, OpType, Queue};

type Key<'h> = (&'h str, &'h Queue);

/// The highest acknowledged commit so far: offset, invoke index, completion index.
#[derive(Clone, Copy)]
struct Commit {
    offset: u64,
    invoked: u64,
    done: u64,
}

pub(crate) fn check(m: &Model<'_>, out: &mut Collector) {
    let mut highest: FastMap<Key<'_>, Commit> = FastMap::default();
    // (key, offset) -> latest completion index of a commit of that offset invoked so far.
    let mut writers: FastMap<(Key<'_>, u64), u64> = FastMap::default();
    // Fetch op -> the highest commit when it was invoked.
    let mut pending: FastMap<usize, Option<Commit>> = FastMap::default();
    for (line, e) in m.history.iter().enumerate() {
        let slot = m.line_op[line];
        let op = &m.ops[slot];
        match (&op.invoke.call, e.kind) {
            (Call::CommitOffset(c), kind) => {
                let Some(offset) = c.offset else { continue };
                let key = (c.group.as_str(), &c.queue);
                if kind == OpType::Invoke && op.outcome() != Outcome::Fail {
                    let done = writers.entry((key, offset)).or_insert(0);
                    *done = (*done).max(op.done_index());
                } else if kind == OpType::Ok {
                    let commit = Commit { offset, invoked: op.invoke.index, done: e.index };
                    let high = highest.entry(key).or_insert(commit);
                    if offset >= high.offset {
                        *high = commit;
                    }
                }
            }
            (Call::FetchOffset(c), OpType::Invoke) => {
                pending.insert(slot, highest.get(&(c.group.as_str(), &c.queue)).copied());
            }
            (Call::FetchOffset(c), OpType::Ok) => {
                let Some(Some(high)) = pending.remove(&slot) else { continue };
                let key = (c.group.as_str(), &c.queue);
                let observed = match &e.call {
                    Call::FetchOffset(answer) => answer.offset,
                    _ => None,
                };
                let explained = observed
                    .is_some_and(|v| v >= high.offset || writers.get(&(key, v)).is_some_and(|d| *d > high.invoked));
                if !explained {
                    out.push(AnomalyKind::OffsetRegression, || Anomaly::OffsetRegression {
                        group: c.group.clone(),
                        queue: c.queue.clone(),
                        committed: high.offset,
                        commit_index: high.done,
                        observed,
                        fetch_index: e.index,
                    });
                }
            }
            _ => {}
        }
    }
}
