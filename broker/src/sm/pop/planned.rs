//! Applying a planned pop: the leader decided what to deliver against its
//! applied state (`crate::pop_plan`); between that and this entry's apply,
//! other entries may have changed the pop state (an ack, a change of invisible
//! time, a pop planned by an earlier leader, a planned pop that failed). So
//! every part of the plan is checked against the state here, and a part that
//! no longer holds is dropped: the reply has fewer messages, never a wrong or
//! duplicate one, and no offset is skipped.
//!
//! A pure function of the entry and the pop state: no consume-queue unit is
//! read (the DLQ units travel in the plan); `max_offset`, which every replica
//! has at the same value at the same log index, bounds the new range.
//!
//! The rules, per queue part:
//! - no state and no `start`: the state was deleted after planning; dropped.
//! - orderly group: dropped unless every in-flight delivery has expired.
//! - dead letter: only if that offset is still in flight with the planned
//!   attempt, expired by the pop's `now_ms`, and `attempt + 1` exceeds the
//!   group's attempts; then marked consumed and its unit appended to the DLQ.
//! - redelivery: likewise in flight, same attempt, expired, and an attempt
//!   left; delivered with `attempt + 1`.
//! - new range `[from, to)`: refused if `from > next` (a gap: an earlier
//!   planned pop did not apply) or `to > max_offset`; otherwise applied from
//!   `next` (the overlap of a stale plan is trimmed), matching offsets
//!   delivered, the others consumed.

use raftmq_proto::broker::{Pop, PopPlan, Popped, QueuePlan};
use raftmq_store::consume_queue::{ConsumeQueueStore, CqUnit};

use super::{GroupRules, Inflight, PopQueueState, dead_letter, unit_from_pb};
use crate::sm::state::Meta;

/// Applies `plan` for `p` (already validated: topic, group, queues, max).
pub(super) fn apply(
    cq: &ConsumeQueueStore,
    meta: &mut Meta,
    epoch: u64,
    p: &Pop,
    queues: &[i32],
    plan: PopPlan,
) -> std::io::Result<Vec<Popped>> {
    let rules = GroupRules::of(meta, p);
    let mut popped = Vec::new();
    for part in plan.queues {
        // Only the queues the pop names (they were checked against the topic).
        if !queues.contains(&part.queue_id) {
            continue;
        }
        let end = cq.max_offset(&p.topic, part.queue_id);
        let key = (p.group.clone(), p.topic.clone(), part.queue_id);
        if !meta.pop.contains_key(&key) {
            // No `start`: the leader saw a state that has been deleted since.
            let Some(start) = part.start else { continue };
            meta.pop.insert(key.clone(), PopQueueState::start_at(start));
        }
        let Some(st) = meta.pop.get_mut(&key) else { continue };
        let dead = apply_part(st, rules, epoch, p, &part, end, &mut popped);
        dead_letter(cq, meta, &p.group, &dead)?;
    }
    Ok(popped)
}

/// Applies one queue's part to its state; returns the units to dead-letter.
fn apply_part(
    st: &mut PopQueueState,
    rules: GroupRules,
    epoch: u64,
    p: &Pop,
    part: &QueuePlan,
    end: i64,
    popped: &mut Vec<Popped>,
) -> Vec<CqUnit> {
    let (now, max, queue_id) = (p.now_ms, p.max as usize, part.queue_id);
    if rules.fifo && !st.all_expired(now) {
        return Vec::new();
    }
    let deadline = now.saturating_add(p.invisible_ms);
    let mut dead = Vec::new();
    for d in &part.dead_letter {
        let out_of_attempts = d.attempt.saturating_add(1) > rules.max_attempts;
        if let Some(unit) = d.unit.as_ref().filter(|_| out_of_attempts && st.expired_delivery(d.offset, d.attempt, now))
        {
            st.mark_done(d.offset);
            dead.push(unit_from_pb(unit));
        }
    }
    for r in &part.redeliver {
        if popped.len() >= max {
            break;
        }
        let attempt = r.attempt.saturating_add(1);
        if attempt <= rules.max_attempts && st.expired_delivery(r.offset, r.attempt, now) {
            st.put_inflight(r.offset, Inflight { deadline_ms: deadline, attempt, epoch });
            popped.push(Popped { offset: r.offset, attempt, epoch, queue_id });
        }
    }
    let (from, to) = (part.new_from, part.new_to);
    if from >= to || from > st.next || to > end {
        // Nothing new planned, a gap before `from`, or offsets not stored.
        return dead;
    }
    let filtered = !p.tags.is_empty();
    let mut offset = st.next;
    while offset < to {
        if filtered && part.matched.binary_search(&offset).is_err() {
            st.mark_done(offset); // filtered out: consumed without delivery
        } else if popped.len() >= max {
            break;
        } else {
            st.put_inflight(offset, Inflight { deadline_ms: deadline, attempt: 1, epoch });
            popped.push(Popped { offset, attempt: 1, epoch, queue_id });
        }
        offset += 1;
        st.next = offset;
    }
    dead
}

#[cfg(test)]
mod tests {
    use raftmq_proto::broker::{ChangeInvisible, PlannedDeadLetter, PlannedDelivery, PopTarget};

    use super::super::testkit::*;
    use super::super::{apply_change_invisible, dlq_topic, unit_to_pb};
    use super::*;

    fn new_range(from: i64, to: i64) -> QueuePlan {
        QueuePlan { queue_id: 0, new_from: from, new_to: to, ..Default::default() }
    }

    /// The first pop of a group on the queue: its state starts at 0.
    fn first(from: i64, to: i64) -> QueuePlan {
        QueuePlan { start: Some(0), ..new_range(from, to) }
    }

    fn redeliver(offsets_attempt: &[(i64, i32)]) -> QueuePlan {
        QueuePlan {
            redeliver: offsets_attempt.iter().map(|&(offset, attempt)| PlannedDelivery { offset, attempt }).collect(),
            ..new_range(0, 0)
        }
    }

    fn planned(mut p: Pop, parts: Vec<QueuePlan>) -> Pop {
        p.plan = Some(PopPlan { queues: parts });
        p
    }

    fn change_invisible(meta: &mut Meta, epoch: u64, offset: i64, now_ms: i64, invisible_ms: i64) {
        let st = state(meta, "g");
        let live = st.inflight.get(&offset).map(|i| i.epoch).expect("in flight");
        let target = PopTarget { group: "g".into(), topic: TOPIC.into(), queue_id: 0, offset, epoch: live, unit: None };
        let c = ChangeInvisible { target: Some(target), now_ms, invisible_ms, keep_handle: false };
        apply_change_invisible(meta, epoch, c);
    }

    #[test]
    fn a_stale_plans_overlap_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let cq = queue_with(dir.path(), 10);
        let mut m = meta(16);
        assert_eq!(run(&cq, &mut m, 5, planned(pop("g", 4, 0, 100), vec![first(0, 4)])), delivered(0..4, 1));
        // Planned (by an earlier leader, say) before that pop applied.
        assert_eq!(run(&cq, &mut m, 6, planned(pop("g", 4, 0, 100), vec![first(2, 6)])), delivered(4..6, 1));
        assert_eq!(run(&cq, &mut m, 7, planned(pop("g", 4, 0, 100), vec![new_range(0, 6)])), vec![]);
        let st = state(&m, "g");
        assert_eq!((st.consumed, st.next, st.inflight_count()), (0, 6, 6));
        assert_eq!(st.inflight.get(&4).map(|i| i.epoch), Some(6), "the trimmed plan's epoch");
    }

    #[test]
    fn a_gap_or_a_range_past_the_queue_end_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cq = queue_with(dir.path(), 10);
        let mut m = meta(16);
        run(&cq, &mut m, 5, planned(pop("g", 4, 0, 100), vec![first(0, 4)]));
        // [4, 6) was planned by a proposal that failed: [6, 8) must not skip it.
        assert_eq!(run(&cq, &mut m, 6, planned(pop("g", 4, 0, 100), vec![new_range(6, 8)])), vec![]);
        assert_eq!(state(&m, "g").next, 4);
        assert_eq!(run(&cq, &mut m, 7, planned(pop("g", 8, 0, 100), vec![new_range(4, 11)])), vec![], "11 > 10");
        assert_eq!(run(&cq, &mut m, 8, planned(pop("g", 8, 0, 100), vec![new_range(4, 10)])), delivered(4..10, 1));
        assert_eq!(state(&m, "g").next, 10);
    }

    #[test]
    fn a_redelivery_raced_by_an_ack_or_a_change_of_invisible_time_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cq = queue_with(dir.path(), 10);
        let mut m = meta(16);
        run(&cq, &mut m, 5, planned(pop("g", 3, 0, 100), vec![first(0, 3)]));
        // The leader saw 0, 1 and 2 expired at 200; before the pop applied,
        // 0 was acked and 1 got 500 ms more.
        ack(&mut m, "g", &[0]);
        change_invisible(&mut m, 6, 1, 50, 500);
        let plan = redeliver(&[(0, 1), (1, 1), (2, 1)]);
        assert_eq!(run(&cq, &mut m, 7, planned(pop("g", 3, 200, 100), vec![plan])), vec![(2, 2)]);
        // The same plan again (a second leader's): 2 is on attempt 2 now.
        let plan = redeliver(&[(2, 1)]);
        assert_eq!(run(&cq, &mut m, 8, planned(pop("g", 3, 400, 100), vec![plan])), vec![]);
        // Once 1's new invisible time ran out, it comes back with attempt 2.
        let plan = redeliver(&[(1, 1)]);
        assert_eq!(run(&cq, &mut m, 9, planned(pop("g", 3, 600, 100), vec![plan])), vec![(1, 2)]);
        let st = state(&m, "g");
        assert_eq!(st.live(1, 9).map(|i| (i.attempt, i.deadline_ms)), Some((2, 700)));
        assert_eq!(st.live(2, 7).map(|i| i.attempt), Some(2));
    }

    #[test]
    fn a_dead_letter_move_needs_an_expired_delivery_with_no_attempt_left() {
        let dir = tempfile::tempdir().unwrap();
        let cq = queue_with(dir.path(), 10);
        let mut m = meta(2);
        let dead = |offset: i64, attempt: i32, with_unit: bool| PlannedDeadLetter {
            offset,
            attempt,
            unit: with_unit.then(|| unit_to_pb(&unit(offset))),
        };
        let dead_letter = |d: Vec<PlannedDeadLetter>| QueuePlan { dead_letter: d, ..new_range(0, 0) };
        run(&cq, &mut m, 5, planned(pop("g", 2, 0, 100), vec![first(0, 2)]));
        // Attempt 1 of 2: there is one left.
        assert_eq!(
            run(&cq, &mut m, 6, planned(pop("g", 2, 200, 100), vec![dead_letter(vec![dead(0, 1, true)])])),
            vec![]
        );
        assert_eq!(run(&cq, &mut m, 7, planned(pop("g", 2, 200, 100), vec![redeliver(&[(0, 1), (1, 1)])])).len(), 2);
        // Attempt 2 of 2, but still invisible at 250.
        assert_eq!(
            run(&cq, &mut m, 8, planned(pop("g", 2, 250, 100), vec![dead_letter(vec![dead(0, 2, true)])])),
            vec![]
        );
        assert!(dlq(&cq, "g").is_empty());
        // At 400: 0 moves; 1 is named with the wrong attempt, then without its unit.
        let plan = dead_letter(vec![dead(0, 2, true), dead(1, 1, true), dead(1, 2, false)]);
        assert_eq!(run(&cq, &mut m, 9, planned(pop("g", 2, 400, 100), vec![plan])), vec![]);
        assert_eq!(dlq(&cq, "g"), vec![unit(0)]);
        assert!(m.topics.contains_key(&dlq_topic("g")));
        let st = state(&m, "g");
        assert_eq!((st.consumed, st.inflight_count()), (1, 1), "0 consumed, 1 still in flight");
    }

    #[test]
    fn an_orderly_queue_part_is_dropped_while_any_delivery_is_invisible() {
        let dir = tempfile::tempdir().unwrap();
        let cq = queue_with(dir.path(), 10);
        let mut m = meta(16);
        run(&cq, &mut m, 5, planned(pop("fifo", 2, 0, 100), vec![first(0, 2)]));
        // 1 gets more time, so the queue stays locked though 0 expired.
        let target =
            PopTarget { group: "fifo".into(), topic: TOPIC.into(), queue_id: 0, offset: 1, epoch: 5, unit: None };
        apply_change_invisible(
            &mut m,
            6,
            ChangeInvisible { target: Some(target), now_ms: 0, invisible_ms: 500, keep_handle: false },
        );
        let part = || QueuePlan { new_from: 2, new_to: 4, ..redeliver(&[(0, 1)]) };
        assert_eq!(run(&cq, &mut m, 7, planned(pop("fifo", 4, 200, 100), vec![part()])), vec![]);
        assert_eq!(state(&m, "fifo").next, 2, "nothing new either");
        let part = QueuePlan { new_from: 2, new_to: 4, ..redeliver(&[(0, 1), (1, 1)]) };
        let got = run(&cq, &mut m, 8, planned(pop("fifo", 4, 600, 100), vec![part]));
        assert_eq!(got, vec![(0, 2), (1, 2), (2, 1), (3, 1)]);
    }

    #[test]
    fn tag_filtered_offsets_are_consumed_without_delivery() {
        let dir = tempfile::tempdir().unwrap();
        let cq = queue_with(dir.path(), 10);
        let mut m = meta(16);
        let mut p = pop("g", 8, 0, 100);
        p.tags = vec!["a".into()];
        let part = QueuePlan { matched: vec![0, 3, 6], ..first(0, 7) };
        assert_eq!(run(&cq, &mut m, 5, planned(p, vec![part])), vec![(0, 1), (3, 1), (6, 1)]);
        let st = state(&m, "g");
        assert_eq!((st.consumed, st.next), (0, 7));
        assert_eq!(st.done.iter().copied().collect::<Vec<_>>(), vec![1, 2, 4, 5]);
        ack(&mut m, "g", &[0, 3, 6]);
        let st = state(&m, "g");
        assert_eq!((st.consumed, st.done.len()), (7, 0));
    }

    #[test]
    fn a_plan_is_held_to_max_and_to_the_queues_and_state_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let cq = queue_with(dir.path(), 10);
        let mut m = meta(16);
        // No state and no start: the state was deleted after planning.
        assert_eq!(run(&cq, &mut m, 4, planned(pop("g", 2, 0, 100), vec![new_range(0, 2)])), vec![]);
        assert!(!m.pop.contains_key(&key("g")));
        // Queue 1 is not among the pop's queues.
        let other = QueuePlan { queue_id: 1, start: Some(0), ..Default::default() };
        assert_eq!(run(&cq, &mut m, 5, planned(pop("g", 2, 0, 100), vec![other, first(0, 5)])), delivered(0..2, 1));
        assert_eq!(state(&m, "g").next, 2);
        assert!(!m.pop.contains_key(&("g".into(), TOPIC.into(), 1)));
    }
}
