//! The planner against the apply rules: plans of concurrent pops do not
//! overlap, and applying plans reads no unit (I35).

use raftmq_proto::broker::{AckBatch, MetaBatch, MetaCommand, Pop, PopPlan, meta_command};
use raftmq_store::consume_queue::ConsumeQueueStore;

use super::reservations::Reservations;
use super::{MAX_SCAN, plan_meta, plan_pop};
use crate::cmd::Command;
use crate::sm::pop::testkit::*;
use crate::sm::state::Meta;

/// `p` planned against `meta`/`cq` under `ticket`'s claims.
fn plan(meta: &Meta, cq: &ConsumeQueueStore, res: &mut Reservations, ticket: u64, mut p: Pop) -> Pop {
    p.plan = Some(plan_pop(meta, cq, res, ticket, &p));
    p
}

fn the_plan(p: &Pop) -> &PopPlan {
    p.plan.as_ref().expect("planned")
}

#[test]
fn a_plan_names_expired_deliveries_first_then_new_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let cq = queue_with(dir.path(), 10);
    let mut m = meta(16);
    let mut res = Reservations::default();
    let t = res.begin(1);
    let p = plan(&m, &cq, &mut res, t, pop("g", 3, 0, 100));
    let part = &the_plan(&p).queues[0];
    assert_eq!((part.start, part.new_from, part.new_to), (Some(0), 0, 3));
    res.release(t);
    assert_eq!(run(&cq, &mut m, 5, p), delivered(0..3, 1));
    ack(&mut m, "g", &[1]);
    let t = res.begin(1);
    let p = plan(&m, &cq, &mut res, t, pop("g", 4, 200, 100));
    let part = &the_plan(&p).queues[0];
    assert_eq!(part.start, None);
    assert_eq!(part.redeliver.iter().map(|r| (r.offset, r.attempt)).collect::<Vec<_>>(), vec![(0, 1), (2, 1)]);
    assert_eq!((part.new_from, part.new_to), (3, 5));
    assert_eq!(run(&cq, &mut m, 6, p), vec![(0, 2), (2, 2), (3, 1), (4, 1)]);
}

#[test]
fn concurrent_plans_claim_disjoint_offsets_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let cq = queue_with(dir.path(), 20);
    let mut m = meta(16);
    let mut res = Reservations::default();
    let first = plan(&m, &cq, &mut Reservations::default(), 0, pop("g", 2, 0, 100));
    run(&cq, &mut m, 4, first);
    // Three pops planned before any applies; a and b share one entry (one ticket).
    let ta = res.begin(1);
    let a = plan(&m, &cq, &mut res, ta, pop("g", 4, 200, 100));
    let b = plan(&m, &cq, &mut res, ta, pop("g", 4, 200, 100));
    let tc = res.begin(1);
    let c = plan(&m, &cq, &mut res, tc, pop("g", 4, 200, 100));
    let parts = [&a, &b, &c].map(|p| the_plan(p).queues[0].clone());
    assert_eq!(parts[0].redeliver.len(), 2, "a redelivers 0 and 1");
    assert!(parts[1].redeliver.is_empty() && parts[2].redeliver.is_empty(), "nobody else does");
    let ranges: Vec<(i64, i64)> = parts.iter().map(|q| (q.new_from, q.new_to)).collect();
    assert_eq!(ranges, vec![(2, 4), (4, 8), (8, 12)]);
    // Applied in log order, every offset is delivered exactly once.
    let mut got = run(&cq, &mut m, 5, a);
    got.extend(run(&cq, &mut m, 5, b));
    got.extend(run(&cq, &mut m, 6, c));
    assert_eq!(got, [vec![(0, 2), (1, 2)], delivered(2..12, 1)].concat());
    // Released, the next plan starts from the applied state.
    res.release(ta);
    res.release(tc);
    assert!(res.is_empty());
    let t = res.begin(1);
    let d = plan(&m, &cq, &mut res, t, pop("g", 4, 200, 100));
    assert_eq!((the_plan(&d).queues[0].new_from, the_plan(&d).queues[0].new_to), (12, 16));
}

#[test]
fn a_failed_proposals_offsets_are_planned_again_and_a_later_one_is_refused_as_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let cq = queue_with(dir.path(), 20);
    let mut m = meta(16);
    let mut res = Reservations::default();
    let ta = res.begin(1);
    let _lost = plan(&m, &cq, &mut res, ta, pop("g", 4, 0, 100));
    let tb = res.begin(1);
    let b = plan(&m, &cq, &mut res, tb, pop("g", 4, 0, 100));
    assert_eq!(the_plan(&b).queues[0].new_from, 4);
    // a never reached the log: b would skip [0, 4), so apply refuses it.
    res.release(ta);
    assert_eq!(run(&cq, &mut m, 5, b), vec![]);
    res.release(tb);
    let t = res.begin(1);
    let again = plan(&m, &cq, &mut res, t, pop("g", 4, 0, 100));
    assert_eq!(run(&cq, &mut m, 6, again), delivered(0..4, 1));
}

#[test]
fn an_orderly_queue_is_locked_by_a_delivering_claim_and_a_new_term_forgets_claims() {
    let dir = tempfile::tempdir().unwrap();
    let cq = queue_with(dir.path(), 20);
    let m = meta(16);
    let mut res = Reservations::default();
    let t = res.begin(1);
    let a = plan(&m, &cq, &mut res, t, pop("fifo", 4, 0, 100));
    assert_eq!((the_plan(&a).queues[0].new_from, the_plan(&a).queues[0].new_to), (0, 4));
    let t = res.begin(1);
    let b = plan(&m, &cq, &mut res, t, pop("fifo", 4, 0, 100));
    let part = &the_plan(&b).queues[0];
    assert_eq!((part.start, part.new_from, part.new_to), (Some(0), 0, 0), "locked: nothing but the start");
    // A new leader term plans from the applied state, where nothing is in flight.
    let t = res.begin(2);
    let c = plan(&m, &cq, &mut res, t, pop("fifo", 4, 0, 100));
    assert_eq!((the_plan(&c).queues[0].new_from, the_plan(&c).queues[0].new_to), (0, 4));
}

#[test]
fn a_filtered_plan_lists_matching_offsets_and_scans_a_bounded_stretch() {
    let dir = tempfile::tempdir().unwrap();
    let cq = queue_with(dir.path(), 20);
    let m = meta(16);
    let mut res = Reservations::default();
    let t = res.begin(1);
    let mut p = pop("g", 3, 0, 100);
    p.tags = vec!["a".into()];
    let part = the_plan(&plan(&m, &cq, &mut res, t, p)).queues[0].clone();
    assert_eq!(part.matched, vec![0, 3, 6]);
    assert_eq!((part.new_from, part.new_to), (0, 7), "stops after the last match it can deliver");
    res.release(t);
    // A tag nothing carries: one pop consumes at most MAX_SCAN units.
    let big = ConsumeQueueStore::open(&dir.path().join("big"), 100_000).unwrap();
    let units: Vec<_> = (0..MAX_SCAN as i64 + 100).map(unit).collect();
    big.append_many(TOPIC, 0, &units).unwrap();
    let t = res.begin(1);
    let mut p = pop("g", 3, 0, 100);
    p.tags = vec!["none".into()];
    let part = the_plan(&plan(&m, &big, &mut res, t, p)).queues[0].clone();
    assert_eq!((part.new_from, part.new_to, part.matched.len()), (0, MAX_SCAN as i64, 0));
}

#[test]
fn the_pops_of_one_batch_plan_after_each_other_and_survive_the_entrys_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let cq = queue_with(dir.path(), 20);
    let mut m = meta(16);
    let mut res = Reservations::default();
    let one = |p: Pop| MetaCommand { cmd: Some(meta_command::Cmd::Pop(p)) };
    let ack = MetaCommand { cmd: Some(meta_command::Cmd::Ack(AckBatch::default())) };
    let batch = MetaBatch { cmds: vec![one(pop("g", 3, 0, 100)), ack, one(pop("g", 3, 0, 100))] };
    let mut cmd = MetaCommand { cmd: Some(meta_command::Cmd::Batch(batch)) };
    let t = res.begin(1);
    plan_meta(&mut cmd, &m, &cq, &mut res, t);
    let entry = crate::cmd::encode_meta(&cmd);
    let Ok((None, Command::Meta(decoded))) = crate::cmd::decode(&entry.0) else { panic!("not a meta command") };
    let Some(meta_command::Cmd::Batch(b)) = decoded.cmd else { panic!("not a batch") };
    let mut got = Vec::new();
    for c in b.cmds {
        if let Some(meta_command::Cmd::Pop(p)) = c.cmd {
            got.push(run(&cq, &mut m, 5, p));
        }
    }
    assert_eq!(got, vec![delivered(0..3, 1), delivered(3..6, 1)]);
}

/// I35: a replica whose consume queue lacks the units below a boundary (one
/// that installed a snapshot there) applies planned pops, redeliveries, DLQ
/// moves and filtered pops into exactly the pop state of one that has them.
#[test]
fn planned_pops_apply_the_same_without_the_units_below_a_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let full = queue_with(&dir.path().join("full"), 24);
    let trimmed = queue_with(&dir.path().join("trimmed"), 24);
    assert_eq!(trimmed.trim_below(TOPIC, 0, 12).unwrap(), 12);
    assert!(trimmed.read(TOPIC, 0, 0, 1).unwrap().first().is_some_and(|(o, _)| *o == 12));
    let (mut a, mut b) = (meta(2), meta(2));
    let mut res = Reservations::default();
    let mut epoch = 10;
    // The leader holds every unit; each planned pop goes to both replicas.
    let mut step = |a: &mut Meta, b: &mut Meta, p: Pop| {
        epoch += 1;
        let t = res.begin(1);
        let p = plan(a, &full, &mut res, t, p);
        res.release(t);
        let (got_a, got_b) = (run(&full, a, epoch, p.clone()), run(&trimmed, b, epoch, p));
        assert_eq!(got_a, got_b, "the same deliveries");
        got_a
    };
    assert_eq!(step(&mut a, &mut b, pop("g", 5, 0, 100)), delivered(0..5, 1));
    for m in [&mut a, &mut b] {
        ack(m, "g", &[0, 1]);
    }
    assert_eq!(step(&mut a, &mut b, pop("g", 5, 50, 100)), delivered(5..10, 1));
    // 2, 3, 4 expired at 100 and 5..10 at 150: redelivered with attempt 2 of 2.
    assert_eq!(step(&mut a, &mut b, pop("g", 5, 200, 100)), delivered(2..7, 2));
    // 7..10 expired first (at 150) and come back; 2..7 are out of attempts and
    // go to the DLQ with the units the plan carries; then new offsets below 12.
    let got = step(&mut a, &mut b, pop("g", 5, 400, 100));
    assert_eq!(got, vec![(7, 2), (8, 2), (9, 2), (10, 1), (11, 1)]);
    let mut filtered = pop("f", 4, 400, 100);
    filtered.tags = vec!["a".into()];
    assert_eq!(step(&mut a, &mut b, filtered), delivered([0, 3, 6, 9], 1));
    assert_eq!(a.pop, b.pop, "the same pop state");
    assert_eq!(dlq(&full, "g"), (2..7).map(unit).collect::<Vec<_>>());
    assert_eq!(dlq(&full, "g"), dlq(&trimmed, "g"), "the same DLQ units");
    assert_eq!(a.topics, b.topics);
    // Deciding from the units instead (an unplanned pop) diverges here.
    let mut late = pop("late", 2, 400, 100);
    late.create_group = true;
    assert_ne!(run(&full, &mut a, 99, late.clone()), run(&trimmed, &mut b, 99, late));
}
