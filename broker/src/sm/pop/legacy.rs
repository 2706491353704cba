//! Pops without a plan: entries written by versions before the leader planned
//! pops. They are still in the log after an upgrade (and an old leader writes
//! them during a rolling one), and every replica must apply them exactly as
//! those versions did, so this decides from the consume-queue units the way
//! they decided. Refusing them instead would answer differently from a replica
//! still on the old version and split the pop state.
//!
//! This is the one place apply still reads units. It is safe only on a
//! replica that holds every unit a pop can reach, so no retention boundary
//! (a snapshot a replica may install) precedes an unplanned pop: applying one
//! records its index in `Meta::last_unplanned_pop`, and the leader's retention
//! decision only considers pins after it (`retention.rs`).

use raftmq_proto::broker::{Pop, Popped};
use raftmq_store::consume_queue::{ConsumeQueueStore, CqUnit, tag_hash};

use super::{GroupRules, Inflight, PopQueueState, dead_letter};
use crate::sm::state::Meta;

/// Pops from `queues`, in order, until `p.max` messages are taken.
pub(super) fn apply(
    cq: &ConsumeQueueStore,
    meta: &mut Meta,
    epoch: u64,
    p: &Pop,
    queues: &[i32],
) -> std::io::Result<Vec<Popped>> {
    let mut popped = Vec::new();
    for &queue_id in queues {
        if popped.len() >= p.max as usize {
            break;
        }
        let dead = pop_queue(cq, meta, epoch, p, queue_id, &mut popped)?;
        let mut units = Vec::with_capacity(dead.len());
        for offset in dead {
            units.extend(read_unit(cq, &p.topic, queue_id, offset)?);
        }
        dead_letter(cq, meta, &p.group, &units)?;
    }
    Ok(popped)
}

/// The unit at `offset`, if this replica's consume queue holds it.
pub(super) fn read_unit(
    cq: &ConsumeQueueStore,
    topic: &str,
    queue_id: i32,
    offset: i64,
) -> std::io::Result<Option<CqUnit>> {
    cq.unit_at(topic, queue_id, offset).map_err(std::io::Error::other)
}

/// Pops from one queue into `popped` until it holds `p.max`; returns the
/// offsets whose attempts ran out (to be dead-lettered).
fn pop_queue(
    cq: &ConsumeQueueStore,
    meta: &mut Meta,
    epoch: u64,
    p: &Pop,
    queue_id: i32,
    popped: &mut Vec<Popped>,
) -> std::io::Result<Vec<i64>> {
    let wanted: Vec<u64> = p.tags.iter().map(|t| tag_hash(t)).collect();
    let max = p.max as usize;
    let rules = GroupRules::of(meta, p);
    let min = meta.retained.first(&p.topic, queue_id);
    let st =
        meta.pop.entry((p.group.clone(), p.topic.clone(), queue_id)).or_insert_with(|| PopQueueState::start_at(min));
    let deadline = p.now_ms.saturating_add(p.invisible_ms);
    let mut dead = Vec::new();
    let mut expired = st.expired(p.now_ms);
    if rules.fifo {
        // Orderly: the queue is locked while any delivery of it is still
        // invisible; once all have expired they come back in offset order,
        // ahead of anything new.
        if !st.all_expired(p.now_ms) {
            return Ok(dead);
        }
        expired.sort_by_key(|(offset, _)| *offset);
    }
    // Deliveries whose invisible time ran out go first (earliest deadline
    // first; offset order for an orderly group).
    for (offset, inf) in expired {
        if popped.len() >= max {
            break;
        }
        let attempt = inf.attempt + 1;
        if attempt > rules.max_attempts {
            dead.push(offset);
            st.mark_done(offset);
            continue;
        }
        st.put_inflight(offset, Inflight { deadline_ms: deadline, attempt, epoch });
        popped.push(Popped { offset, attempt, epoch, queue_id });
    }
    // Then messages never delivered.
    let end = cq.max_offset(&p.topic, queue_id);
    st.next = st.next.max(min);
    while popped.len() < max && st.next < end {
        let units = cq.read(&p.topic, queue_id, st.next, max - popped.len()).map_err(std::io::Error::other)?;
        if units.is_empty() {
            break;
        }
        for (offset, unit) in units {
            st.next = offset + 1;
            if !wanted.is_empty() && !wanted.contains(&unit.tag_hash) {
                st.mark_done(offset); // filtered out: consumed without delivery
                continue;
            }
            st.put_inflight(offset, Inflight { deadline_ms: deadline, attempt: 1, epoch });
            popped.push(Popped { offset, attempt: 1, epoch, queue_id });
        }
    }
    Ok(dead)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    #[test]
    fn an_unplanned_pop_decides_from_the_units_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let cq = queue_with(dir.path(), 10);
        let mut m = meta(1);
        let mut p = pop("g", 3, 0, 100);
        p.tags = vec!["a".into()];
        assert_eq!(run(&cq, &mut m, 5, p), vec![(0, 1), (3, 1), (6, 1)]);
        assert_eq!(state(&m, "g").next, 7);
        // One attempt allowed: the expired deliveries go to the DLQ, read from the queue.
        assert_eq!(run(&cq, &mut m, 6, pop("g", 1, 200, 100)), vec![(7, 1)]);
        assert_eq!(dlq(&cq, "g"), vec![unit(0), unit(3), unit(6)]);
    }
}
