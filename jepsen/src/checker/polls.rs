//! Each consumer's view of a queue must advance one offset at a time: `poll-skip` (it jumped
//! over offsets that hold messages) and `nonmonotonic-poll` (it went back, or re-read).
//!
//! The stream checked is every message a consumer received, within and across its ok polls, per
//! queue. A poll marked `reassigned` resets the consumer's positions first: after a rebalance
//! or a seek, starting elsewhere is legal. An offset "holds a message" if some poll read it or
//! some send was acknowledged at it; gaps nobody ever saw are not held against the consumer.
//!
//! Pops by a consumer group (`pop` or `orderly` polls) are not a consumer's stream: the broker
//! chooses what comes next, a redelivery batch legally skips what was acked in between, and a
//! non-orderly pop skips what another consumer holds. They are skipped here; `order.rs` checks
//! them.

use super::anomaly::{Anomaly, AnomalyKind, Collector};
use super::hasher::FastMap;
use super::model::{Model, QueueId};
use crate::history::{Call, OpType};

/// Skipped offsets listed in an anomaly; the count covers all of them.
const LISTED: usize = 8;

pub(crate) fn check(m: &Model<'_>, out: &mut Collector) {
    let known = known_offsets(m);
    let mut consumers: FastMap<&str, FastMap<QueueId, u64>> = FastMap::default();
    let mut reads = m.reads.iter();
    for e in m.history {
        let (OpType::Ok, Call::Poll(poll)) = (e.kind, &e.call) else { continue };
        // `m.reads` holds these same messages, in this order, already interned.
        let polled = reads.by_ref().take(poll.msgs.len());
        if poll.is_pop() {
            polled.for_each(drop);
            continue;
        }
        let last = consumers.entry(poll.consumer.as_str()).or_default();
        if poll.reassigned {
            last.clear();
        }
        for r in polled {
            let (q, to) = (r.pos.queue, r.pos.offset);
            if let Some(from) = last.insert(q, to) {
                let consumer = || poll.consumer.clone();
                if to <= from {
                    out.push(AnomalyKind::NonmonotonicPoll, || Anomaly::NonmonotonicPoll {
                        consumer: consumer(),
                        queue: m.queue(q),
                        from_offset: from,
                        to_offset: to,
                        read_index: r.index,
                    });
                } else if to > from + 1 {
                    let offsets = &known[q as usize];
                    let lo = offsets.partition_point(|o| *o <= from);
                    let hi = offsets.partition_point(|o| *o < to);
                    if hi > lo {
                        out.push(AnomalyKind::PollSkip, || Anomaly::PollSkip {
                            consumer: consumer(),
                            queue: m.queue(q),
                            from_offset: from,
                            to_offset: to,
                            skipped: offsets[lo..hi.min(lo + LISTED)].to_vec(),
                            skipped_count: (hi - lo) as u64,
                            read_index: r.index,
                        });
                    }
                }
            }
        }
    }
}

/// Per queue, the sorted offsets known to hold a message (read, or acknowledged to a send).
fn known_offsets(m: &Model<'_>) -> Vec<Vec<u64>> {
    let mut known = vec![Vec::new(); m.queues.len()];
    for pos in m.reads_at.keys().chain(m.sends.iter().filter_map(|s| s.ack.as_ref())) {
        known[pos.queue as usize].push(pos.offset);
    }
    for offsets in &mut known {
        offsets.sort_unstable();
        offsets.dedup();
    }
    known
}
