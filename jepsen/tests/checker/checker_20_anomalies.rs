//! One hand-made history per anomaly kind: each is found, as exactly that kind, with the
//! evidence that proves it.

use raftmq_jepsen::checker::{Anomaly, AnomalyKind, Evidence, Verdict};
use raftmq_jepsen::history::{Call, OpType, Position, Process};
use raftmq_jepsen::testkit::{H, commit, fetch, kinds, q, send, send_in};

fn pos(queue: u32, offset: u64) -> Position {
    Position { queue: q(queue), offset }
}

fn only(v: &Verdict, kind: AnomalyKind) -> &Anomaly {
    assert!(!v.valid);
    assert_eq!(kinds(v), vec![(kind, 1)], "{:#?}", v.anomalies);
    &v.anomalies[&kind].examples[0]
}

#[test]
fn lost_when_a_later_offset_was_read() {
    let mut h = H::new();
    let a = h.send_ok(1, send("a"), 0, 0);
    h.send_ok(1, send("b"), 0, 1);
    let read = h.poll_ok(2, "c1", false, &[(0, 1, "b")]);
    let v = h.check();
    let expected =
        Anomaly::Lost { value: "a".into(), at: pos(0, 0), send_index: a, later_read: pos(0, 1), read_index: read };
    assert_eq!(only(&v, AnomalyKind::Lost), &expected);
}

#[test]
fn unseen_after_the_final_drain() {
    let mut h = H::new();
    let a = h.send_ok(1, send("a"), 0, 0);
    h.send_unacked(1, send("maybe"), OpType::Info); // never read: legal
    let drain = h.final_read();
    h.poll_ok(9, "drain", true, &[]);
    h.complete(drain, OpType::Ok, Call::FinalRead);
    let v = h.check();
    assert_eq!(only(&v, AnomalyKind::Unseen), &Anomaly::Unseen { value: "a".into(), at: pos(0, 0), send_index: a });
    assert!(v.stats.final_read);
}

#[test]
fn unseen_is_not_checked_without_a_final_drain() {
    let mut h = H::new();
    h.send_ok(1, send("a"), 0, 0);
    let v = h.check();
    assert!(v.valid);
    assert!(v.notes.iter().any(|n| n.contains("unseen not checked")));
}

#[test]
fn duplicate_value_at_two_offsets() {
    let mut h = H::new();
    h.send_ok(1, send("a"), 0, 0);
    h.poll_ok(2, "c1", false, &[(0, 0, "a"), (0, 1, "a")]);
    let v = h.check();
    let expected = Anomaly::Duplicate { value: "a".into(), positions: vec![pos(0, 0), pos(0, 1)] };
    assert_eq!(only(&v, AnomalyKind::Duplicate), &expected);
}

#[test]
fn inconsistent_offset_read_with_two_values() {
    let mut h = H::new();
    h.send_unacked(1, send("a"), OpType::Info);
    h.send_unacked(1, send("b"), OpType::Info);
    let r1 = h.poll_ok(2, "c1", false, &[(0, 0, "a")]);
    let r2 = h.poll_ok(3, "c2", false, &[(0, 0, "b")]);
    let v = h.check();
    let expected =
        Anomaly::InconsistentOffset { at: pos(0, 0), values: vec!["a".into(), "b".into()], read_indexes: vec![r1, r2] };
    assert_eq!(only(&v, AnomalyKind::InconsistentOffset), &expected);
}

#[test]
fn unexpected_value_never_sent() {
    let mut h = H::new();
    let read = h.poll_ok(2, "c1", false, &[(0, 0, "ghost")]);
    let v = h.check();
    let expected = Anomaly::Unexpected { value: "ghost".into(), at: pos(0, 0), read_index: read };
    assert_eq!(only(&v, AnomalyKind::Unexpected), &expected);
}

#[test]
fn poll_skip_over_an_existing_offset() {
    let mut h = H::new();
    for (i, value) in ["a", "b", "c"].into_iter().enumerate() {
        h.send_ok(1, send(value), 0, i as u64);
    }
    h.poll_ok(2, "c1", false, &[(0, 0, "a")]);
    h.poll_ok(3, "c2", false, &[(0, 1, "b")]);
    let read = h.poll_ok(2, "c1", false, &[(0, 2, "c")]);
    let v = h.check();
    let expected = Anomaly::PollSkip {
        consumer: "c1".into(),
        queue: q(0),
        from_offset: 0,
        to_offset: 2,
        skipped: vec![1],
        skipped_count: 1,
        read_index: read,
    };
    assert_eq!(only(&v, AnomalyKind::PollSkip), &expected);
}

#[test]
fn no_poll_skip_after_a_reassignment_or_over_unknown_offsets() {
    let mut h = H::new();
    h.send_ok(1, send("a"), 0, 0);
    h.send_ok(1, send("c"), 0, 5);
    h.poll_ok(2, "c1", false, &[(0, 0, "a")]);
    h.poll_ok(2, "c1", false, &[(0, 5, "c")]); // 1..=4 hold nothing anyone saw
    h.poll_ok(2, "c1", true, &[(0, 0, "a")]); // seek back after a rebalance
    assert!(h.check().valid, "{:#?}", h.check().anomalies);
}

#[test]
fn nonmonotonic_poll_goes_back() {
    let mut h = H::new();
    h.send_ok(1, send("a"), 0, 0);
    h.send_ok(1, send("b"), 0, 1);
    h.poll_ok(2, "c1", false, &[(0, 0, "a"), (0, 1, "b")]);
    let read = h.poll_ok(2, "c1", false, &[(0, 0, "a")]);
    let v = h.check();
    let expected = Anomaly::NonmonotonicPoll {
        consumer: "c1".into(),
        queue: q(0),
        from_offset: 1,
        to_offset: 0,
        read_index: read,
    };
    assert_eq!(only(&v, AnomalyKind::NonmonotonicPoll), &expected);
}

#[test]
fn order_violated_within_a_message_group() {
    // a is acked before b is sent, yet b sits before a: order (by reads) and
    // nonmonotonic-send (by acks) both hold.
    let mut h = H::new();
    let a = h.send_ok(1, send_in("a", "g"), 0, 1);
    let b = h.send_ok(1, send_in("b", "g"), 0, 0);
    h.poll_ok(2, "c1", false, &[(0, 0, "b"), (0, 1, "a")]);
    let v = h.check();
    assert_eq!(kinds(&v), vec![(AnomalyKind::Order, 1), (AnomalyKind::NonmonotonicSend, 1)]);
    let Anomaly::Order { process, message_group, earlier, later, split } =
        &v.anomalies[&AnomalyKind::Order].examples[0]
    else {
        panic!("not an order anomaly")
    };
    assert_eq!((*process, message_group.as_str(), *split), (Process::Client(1), "g", false));
    assert_eq!((earlier.value.as_str(), earlier.send_index, &earlier.at), ("a", a, &pos(0, 1)));
    assert_eq!((later.value.as_str(), later.send_index, &later.at), ("b", b, &pos(0, 0)));
}

#[test]
fn order_violated_when_a_group_splits_across_queues() {
    let mut h = H::new();
    h.send_ok(1, send_in("a", "g"), 0, 0);
    h.send_ok(1, send_in("b", "g"), 1, 0);
    h.poll_ok(2, "c1", false, &[(0, 0, "a"), (1, 0, "b")]);
    let v = h.check();
    let Anomaly::Order { split, earlier, later, .. } = only(&v, AnomalyKind::Order) else { panic!("not order") };
    assert!(split);
    assert_eq!((earlier.value.as_str(), later.value.as_str()), ("a", "b"));
}

/// Two sequential sends of producer 1 in message group `g`, stored in order at q0@0 and q0@1.
fn two_in_order(h: &mut H) -> (u64, u64) {
    (h.send_ok(1, send_in("a", "g"), 0, 0), h.send_ok(1, send_in("b", "g"), 0, 1))
}

fn delivery_order(v: &Verdict) -> (&str, &str, Option<u64>, u64, bool) {
    let Anomaly::DeliveryOrder {
        group, earlier, later, earlier_delivery_index, later_delivery_index, same_poll, ..
    } = only(v, AnomalyKind::DeliveryOrder)
    else {
        panic!("not delivery-order")
    };
    assert_eq!(group, "fifo");
    (earlier.value.as_str(), later.value.as_str(), *earlier_delivery_index, *later_delivery_index, *same_poll)
}

#[test]
fn delivery_order_when_the_orderly_group_gets_the_later_send_first() {
    let mut h = H::new();
    let (a, b) = two_in_order(&mut h);
    let first = h.pop_ok(10, "f0", &[(0, 1, "b")]);
    h.ack(10, "f0", OpType::Ok, (0, 1, "b"));
    let second = h.pop_ok(11, "f1", &[(0, 0, "a")]);
    let v = h.check();
    assert_eq!(delivery_order(&v), ("a", "b", Some(second), first, false));
    let Anomaly::DeliveryOrder { earlier, later, process, message_group, .. } =
        &v.anomalies[&AnomalyKind::DeliveryOrder].examples[0]
    else {
        panic!("not delivery-order")
    };
    assert_eq!((earlier.send_index, later.send_index), (a, b));
    assert_eq!((*process, message_group.as_str(), &later.at), (Process::Client(1), "g", &pos(0, 1)));
}

#[test]
fn delivery_order_when_the_earlier_send_never_reaches_the_group() {
    // The drain (a pull, not the orderly group) proves a was stored; the group only ever got b.
    let mut h = H::new();
    two_in_order(&mut h);
    let popped = h.pop_ok(10, "f0", &[(0, 1, "b")]);
    h.poll_ok(30, "drain", true, &[(0, 0, "a"), (0, 1, "b")]);
    assert_eq!(delivery_order(&h.check()), ("a", "b", None, popped, false));
}

#[test]
fn delivery_order_within_one_pop() {
    let mut h = H::new();
    two_in_order(&mut h);
    let popped = h.pop_ok(10, "f0", &[(0, 1, "b"), (0, 0, "a")]);
    assert_eq!(delivery_order(&h.check()), ("a", "b", Some(popped), popped, true));
}

#[test]
fn sends_stored_out_of_order_are_order_not_delivery_order() {
    // Delivering b first is right for where they were stored; the storage is at fault.
    let mut h = H::new();
    h.send_ok(1, send_in("a", "g"), 0, 1);
    h.send_ok(1, send_in("b", "g"), 0, 0);
    h.pop_ok(10, "f0", &[(0, 0, "b"), (0, 1, "a")]);
    h.pop_ok(11, "f1", &[(0, 0, "b")]);
    let v = h.check();
    assert_eq!(kinds(&v), vec![(AnomalyKind::Order, 1), (AnomalyKind::NonmonotonicSend, 1)]);
}

#[test]
fn redelivered_after_an_acknowledged_ack() {
    let mut h = H::new();
    two_in_order(&mut h);
    h.pop_ok(10, "f0", &[(0, 0, "a"), (0, 1, "b")]);
    h.ack(10, "f0", OpType::Info, (0, 1, "b")); // unknown: b may come back
    let acked = h.ack(10, "f0", OpType::Ok, (0, 0, "a"));
    let again = h.pop_ok(11, "f1", &[(0, 0, "a"), (0, 1, "b")]);
    let v = h.check();
    let expected = Anomaly::RedeliveredAfterAck {
        group: "fifo".into(),
        value: "a".into(),
        at: pos(0, 0),
        ack_index: acked,
        read_index: again,
    };
    assert_eq!(only(&v, AnomalyKind::RedeliveredAfterAck), &expected);
}

#[test]
fn nonmonotonic_send_acks_fall() {
    let mut h = H::new();
    let a = h.send_ok(1, send("a"), 0, 5);
    let b = h.send_ok(1, send("b"), 0, 3);
    let v = h.check();
    let Anomaly::NonmonotonicSend { process, earlier, later } = only(&v, AnomalyKind::NonmonotonicSend) else {
        panic!("not nonmonotonic-send")
    };
    assert_eq!(*process, Process::Client(1));
    assert_eq!((earlier.send_index, &earlier.at, later.send_index, &later.at), (a, &pos(0, 5), b, &pos(0, 3)));
}

#[test]
fn offset_regression_fetch_below_acked_commit() {
    let mut h = H::new();
    let c = h.op(1, commit(0, 10), OpType::Ok, commit(0, 10));
    let f = h.op(2, fetch(0, None), OpType::Ok, fetch(0, Some(5)));
    let v = h.check();
    let expected = Anomaly::OffsetRegression {
        group: "cg".into(),
        queue: q(0),
        committed: 10,
        commit_index: c,
        observed: Some(5),
        fetch_index: f,
    };
    assert_eq!(only(&v, AnomalyKind::OffsetRegression), &expected);
}

#[test]
fn offset_regression_fetch_returns_nothing() {
    let mut h = H::new();
    h.op(1, commit(0, 3), OpType::Ok, commit(0, 3));
    h.op(2, fetch(0, None), OpType::Ok, fetch(0, None));
    let v = h.check();
    let Anomaly::OffsetRegression { observed, committed, .. } = only(&v, AnomalyKind::OffsetRegression) else {
        panic!("not offset-regression")
    };
    assert_eq!((*observed, *committed), (None, 3));
}

#[test]
fn aborted_read_of_a_failed_send() {
    let mut h = H::new();
    let a = h.send_unacked(1, send("a"), OpType::Fail);
    let read = h.poll_ok(2, "c1", false, &[(0, 0, "a")]);
    let v = h.check();
    let expected = Anomaly::AbortedRead { value: "a".into(), at: pos(0, 0), send_index: a, read_index: read };
    assert_eq!(only(&v, AnomalyKind::AbortedRead), &expected);
}

#[test]
fn ack_offset_mismatch_with_a_read() {
    let mut h = H::new();
    let a = h.send_ok(1, send("a"), 0, 0);
    h.send_unacked(1, send("b"), OpType::Info);
    let read = h.poll_ok(2, "c1", false, &[(0, 0, "b")]);
    let v = h.check();
    let expected = Anomaly::AckOffsetMismatch {
        at: pos(0, 0),
        acked_value: "a".into(),
        send_index: a,
        other_value: "b".into(),
        other_index: read,
        evidence: Evidence::Read,
    };
    assert_eq!(only(&v, AnomalyKind::AckOffsetMismatch), &expected);
}

#[test]
fn ack_offset_mismatch_two_acks_one_slot() {
    // A stale leader acknowledging a write at a slot the real leader gave to another.
    let mut h = H::new();
    let a = h.send_ok(1, send("a"), 0, 0);
    let b = h.send_ok(2, send("b"), 0, 0);
    let v = h.check();
    let Anomaly::AckOffsetMismatch { acked_value, send_index, other_value, other_index, evidence, .. } =
        only(&v, AnomalyKind::AckOffsetMismatch)
    else {
        panic!("not ack-offset-mismatch")
    };
    assert_eq!((acked_value.as_str(), *send_index, other_value.as_str(), *other_index), ("b", b, "a", a));
    assert_eq!(*evidence, Evidence::Ack);
}

#[test]
fn examples_are_capped_but_counts_are_not() {
    let mut h = H::new();
    for i in 0..20 {
        h.send_unacked(1, send(&format!("v{i}")), OpType::Fail);
    }
    let msgs: Vec<(u32, u64, String)> = (0..20).map(|i| (0, i, format!("v{i}"))).collect();
    let msgs: Vec<(u32, u64, &str)> = msgs.iter().map(|(q, o, v)| (*q, *o, v.as_str())).collect();
    h.poll_ok(2, "c1", false, &msgs);
    let v = h.check();
    let found = &v.anomalies[&AnomalyKind::AbortedRead];
    assert_eq!((found.count, found.examples.len()), (20, 8));
}
