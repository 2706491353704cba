//! Delayed messages: `early-delivery` and `lost-delayed` found with their evidence, the
//! tolerance and clock-skew allowance, a send acknowledged at offset -1 accepted by every other
//! rule, and a clean delayed history (pops, acks, redeliveries, immediate sends mixed in).

use raftmq_jepsen::checker::{Anomaly, AnomalyKind, Verdict};
use raftmq_jepsen::history::{Call, FaultAction, OpType, Position};
use raftmq_jepsen::testkit::{H, MS, kinds, q, send, send_delayed, skew};

const S: u64 = 1_000 * MS;

fn pos(queue: u32, offset: u64) -> Position {
    Position { queue: q(queue), offset }
}

fn only(v: &Verdict, kind: AnomalyKind) -> &Anomaly {
    assert!(!v.valid);
    assert_eq!(kinds(v), vec![(kind, 1)], "{:#?}", v.anomalies);
    &v.anomalies[&kind].examples[0]
}

/// A final drain at the current time that reads `msgs`, completing ok.
fn drain(h: &mut H, msgs: &[(u32, u64, &str)]) -> u64 {
    let d = h.final_read();
    h.poll_ok(90, "final-0", false, msgs);
    h.complete(d, OpType::Ok, Call::FinalRead);
    d.index
}

#[test]
fn a_delayed_message_read_before_its_due_time_is_early() {
    let mut h = H::new();
    h.at(S);
    let a = h.send_ok_at(1, send_delayed("a", 10 * S), 0, -1);
    h.at(4 * S);
    let read = h.pop_by(101, "cg-delay", "d0", &[(0, 0, "a")]);
    // Read again later: reported once, at the first (earliest) read.
    h.at(11 * S);
    h.pop_by(102, "cg-delay", "d1", &[(0, 0, "a")]);
    let v = h.check();
    let expected = Anomaly::EarlyDelivery {
        value: "a".into(),
        at: pos(0, 0),
        send_index: a,
        due_ns: 10 * S,
        read_index: read,
        // Each line moves the test clock on by 1 ms: the pop completes at 4.001 s.
        read_ns: 4 * S + MS,
        early_by_ns: 6 * S - MS,
    };
    assert_eq!(only(&v, AnomalyKind::EarlyDelivery), &expected);
    let d = v.stats.delay.expect("delay stats");
    assert_eq!((d.sends.ok, d.unplaced, d.delivered, d.before_due), (1, 1, 1, 1));
    assert_eq!(d.earliest_ns, Some(-((6 * S - MS) as i64)));
}

#[test]
fn an_early_pull_counts_too_and_a_delay_placed_at_once_is_judged_by_its_due_time() {
    // The broker placed it at once (offset 0, not -1) although it was due 5 s later: the
    // drain's pull reads it early.
    let mut h = H::new();
    h.send_ok_at(1, send_delayed("a", 5 * S), 0, 0);
    h.poll_ok(2, "c0", false, &[(0, 0, "a")]);
    let v = h.check();
    assert_eq!(kinds(&v), vec![(AnomalyKind::EarlyDelivery, 1)]);
}

#[test]
fn reads_within_the_tolerance_are_not_early() {
    let mut h = H::new();
    h.send_ok_at(1, send_delayed("a", 2 * S), 0, -1);
    h.at(2 * S - 99 * MS); // completes 98 ms before the due time
    h.pop_by(101, "cg-delay", "d0", &[(0, 0, "a")]);
    let v = h.check();
    assert!(v.valid, "{:#?}", v.anomalies);
    assert_eq!(v.stats.delay.expect("stats").before_due, 1);

    let mut h = H::new();
    h.send_ok_at(1, send_delayed("a", 2 * S), 0, -1);
    h.at(2 * S - 102 * MS); // completes 101 ms before the due time
    h.pop_by(101, "cg-delay", "d0", &[(0, 0, "a")]);
    assert_eq!(kinds(&h.check()), vec![(AnomalyKind::EarlyDelivery, 1)]);
}

#[test]
fn a_clock_skewed_ahead_excuses_reads_up_to_its_offset_while_and_after_it_ran() {
    // n1 runs 30 s ahead from (at the earliest) the previous nemesis op's completion at 9.001 s
    // until its stop completes at 20.001 s.
    let history = |offset: Option<i64>, due: u64, read_at: u64| {
        let mut h = H::new();
        h.send_ok_at(1, send_delayed("a", due), 0, -1);
        h.at(9 * S);
        h.nemesis("kill-leader", FaultAction::Stop); // completes at 9.001 s
        h.at(12 * S);
        h.nemesis_op(skew(FaultAction::Start, offset), OpType::Ok);
        if read_at < 20 * S {
            h.at(read_at);
            h.pop_by(101, "cg-delay", "d0", &[(0, 0, "a")]);
        }
        h.at(20 * S);
        h.nemesis_op(skew(FaultAction::Stop, None), OpType::Ok); // completes at 20.001 s
        if read_at > 20 * S {
            h.at(read_at);
            h.pop_by(101, "cg-delay", "d0", &[(0, 0, "a")]);
        }
        h.check()
    };
    // Released while skewed, 30 s early at most: read by 15.001 s, due at 45 s.
    assert!(history(Some(30), 45 * S, 15 * S).valid);
    // Due at 45.2 s: more than 30 s (and the tolerance) after any moment n1 ran skewed before
    // the read.
    assert!(!history(Some(30), 45 * S + 200 * MS, 15 * S).valid);
    // Read after the heal: released by 20.001 s at the latest, so due by 50.001 s.
    assert!(history(Some(30), 50 * S, 40 * S).valid);
    assert!(!history(Some(30), 51 * S, 40 * S).valid);
    // A clock behind excuses nothing; an offset not recorded counts as 120 s.
    assert!(!history(Some(-30), 44 * S, 15 * S).valid);
    assert!(history(None, 130 * S, 15 * S).valid);
    // A read before the skewed node could have run is not excused.
    let mut h = H::new();
    h.send_ok_at(1, send_delayed("a", 20 * S), 0, -1);
    h.at(5 * S);
    h.pop_by(101, "cg-delay", "d0", &[(0, 0, "a")]);
    h.nemesis("kill-leader", FaultAction::Stop);
    h.at(9 * S);
    h.nemesis_op(skew(FaultAction::Start, Some(60)), OpType::Ok);
    assert_eq!(kinds(&h.check()), vec![(AnomalyKind::EarlyDelivery, 1)]);
}

#[test]
fn a_failed_skew_start_naming_its_target_still_excuses() {
    // The restart under the skewed clock may have happened before the start failed.
    let mut h = H::new();
    h.send_ok_at(1, send_delayed("a", 40 * S), 0, -1);
    h.at(5 * S);
    h.nemesis_op(skew(FaultAction::Start, Some(60)), OpType::Fail);
    h.at(10 * S);
    h.pop_by(101, "cg-delay", "d0", &[(0, 0, "a")]);
    assert!(h.check().valid);
}

#[test]
fn a_delayed_send_never_delivered_is_lost_once_the_drain_began_past_its_due_time() {
    let mut h = H::new();
    let a = h.send_ok_at(1, send_delayed("a", 3 * S), 2, -1);
    h.send_unacked(1, send_delayed("maybe", 3 * S), OpType::Info); // unknown: never lost
    h.at(8 * S + MS);
    let d = drain(&mut h, &[]);
    let v = h.check();
    let expected =
        Anomaly::LostDelayed { value: "a".into(), queue: q(2), send_index: a, due_ns: 3 * S, final_read_index: d };
    assert_eq!(only(&v, AnomalyKind::LostDelayed), &expected);
    assert_eq!(v.stats.delay.expect("stats").unchecked, 0);
}

#[test]
fn a_delayed_send_due_too_close_to_the_drain_is_not_judged() {
    let mut h = H::new();
    h.send_ok_at(1, send_delayed("a", 3 * S), 0, -1);
    h.at(7 * S);
    drain(&mut h, &[]);
    let v = h.check();
    assert!(v.valid, "{:#?}", v.anomalies);
    assert_eq!(v.stats.delay.expect("stats").unchecked, 1);
    assert!(v.notes.iter().any(|n| n.contains("not checked for lost-delayed")), "{:?}", v.notes);
    // Nor without any drain.
    let mut h = H::new();
    h.send_ok_at(1, send_delayed("a", 3 * S), 0, -1);
    h.at(60 * S);
    h.pop_by(101, "cg-delay", "d0", &[]);
    assert_eq!(h.check().stats.delay.expect("stats").unchecked, 1);
}

#[test]
fn a_clock_still_behind_at_the_drain_extends_the_grace() {
    let history = |drain_at: u64| {
        let mut h = H::new();
        h.send_ok_at(1, send_delayed("a", 3 * S), 0, -1);
        h.at(4 * S);
        h.nemesis_op(skew(FaultAction::Start, Some(-20)), OpType::Ok);
        h.at(drain_at);
        drain(&mut h, &[]);
        h.check()
    };
    assert!(history(10 * S).valid, "3 s + 5 s grace + 20 s behind not yet reached");
    assert_eq!(kinds(&history(29 * S)), vec![(AnomalyKind::LostDelayed, 1)]);
}

#[test]
fn offset_minus_one_is_accepted_by_every_other_rule() {
    let mut h = H::new();
    // Two delayed sends acked at -1 on queue 0, an immediate one at 0 around them.
    h.send_ok_at(1, send_delayed("a", 2 * S), 0, -1);
    h.send_ok(1, send("b"), 0, 0);
    h.send_ok_at(1, send_delayed("c", 2 * S), 0, -1);
    h.send_ok(1, send("d"), 0, 1);
    // Placed when due, after b and d: offsets 2 and 3, then another immediate one at 4.
    h.at(3 * S);
    h.send_ok(1, send("e"), 0, 4);
    h.poll_ok(2, "c0", false, &[(0, 0, "b"), (0, 1, "d"), (0, 2, "c"), (0, 3, "a"), (0, 4, "e")]);
    h.at(10 * S);
    drain(&mut h, &[(0, 0, "b"), (0, 1, "d"), (0, 2, "c"), (0, 3, "a"), (0, 4, "e")]);
    let v = h.check();
    assert!(v.valid, "{:#?}", v.anomalies);
    let d = v.stats.delay.expect("stats");
    assert_eq!((d.unplaced, d.delivered, d.before_due, d.unchecked), (2, 2, 0, 0));
}

#[test]
fn clean_delayed_history_is_clean() {
    let mut h = H::new();
    h.send_ok(1, send("now"), 1, 0); // immediate sends mixed in
    h.send_ok(4, send("g"), 1, 2);
    h.send_ok_at(1, send_delayed("a", 2 * S), 0, -1);
    h.send_ok_at(2, send_delayed("b", 3 * S), 1, -1);
    h.send_unacked(2, send_delayed("c", 3 * S), OpType::Info); // landed after all
    h.send_unacked(3, send_delayed("x", 3 * S), OpType::Info); // did not land
    h.send_unacked(3, send_delayed("f", 3 * S), OpType::Fail);
    h.pop_by(101, "cg-delay", "d0", &[(1, 0, "now")]);
    h.ack_in(101, "cg-delay", "d0", OpType::Ok, (1, 0, "now"));
    h.at(2 * S + 50 * MS);
    // a due at 2 s, read 50 ms late; not acked, so it comes back after the invisible time.
    h.pop_by(102, "cg-delay", "d1", &[(0, 0, "a")]);
    h.at(3 * S + 400 * MS);
    // One pop hands out offsets 1 and 3 of queue 1 while another consumer holds 2: no skip.
    h.pop_by(101, "cg-delay", "d0", &[(1, 1, "b"), (1, 3, "c")]);
    h.pop_by(103, "cg-delay", "d3", &[(1, 2, "g")]);
    h.ack_in(103, "cg-delay", "d3", OpType::Ok, (1, 2, "g"));
    h.ack_in(101, "cg-delay", "d0", OpType::Ok, (1, 1, "b"));
    h.ack_in(101, "cg-delay", "d0", OpType::Info, (1, 3, "c"));
    h.at(6 * S);
    h.pop_by(102, "cg-delay", "d1", &[(0, 0, "a"), (1, 3, "c")]);
    h.ack_in(102, "cg-delay", "d1", OpType::Ok, (0, 0, "a"));
    h.ack_in(102, "cg-delay", "d1", OpType::Ok, (1, 3, "c"));
    h.at(20 * S);
    drain(&mut h, &[(0, 0, "a"), (1, 0, "now"), (1, 1, "b"), (1, 2, "g"), (1, 3, "c")]);
    let v = h.check();
    assert!(v.valid, "{:#?}", v.anomalies);
    let d = v.stats.delay.expect("stats");
    assert_eq!((d.sends.ok, d.sends.info, d.sends.fail), (2, 2, 1));
    assert_eq!((d.unplaced, d.delivered, d.before_due, d.unchecked), (2, 3, 0, 0));
    let lat = d.lateness.expect("lateness");
    // a 51 ms late (the pop completes a line after 2.05 s); b and c 401 ms.
    assert_eq!((lat.p50_ns, lat.max_ns), (401 * MS, 401 * MS));
    assert_eq!(d.earliest_ns, Some(51 * MS as i64));
}

#[test]
fn a_non_orderly_group_popping_an_acked_message_again_is_redelivered_after_ack() {
    let mut h = H::new();
    h.send_ok(1, send("a"), 0, 0);
    h.pop_by(101, "cg-delay", "d0", &[(0, 0, "a")]);
    let ack = h.ack_in(101, "cg-delay", "d0", OpType::Ok, (0, 0, "a"));
    let read = h.pop_by(102, "cg-delay", "d1", &[(0, 0, "a")]);
    // A pull by offset is no delivery to the group: reading it again is fine.
    h.poll_ok(2, "c0", false, &[(0, 0, "a")]);
    let v = h.check();
    let expected = Anomaly::RedeliveredAfterAck {
        group: "cg-delay".into(),
        value: "a".into(),
        at: pos(0, 0),
        ack_index: ack,
        read_index: read,
    };
    assert_eq!(only(&v, AnomalyKind::RedeliveredAfterAck), &expected);
}

#[test]
fn histories_without_delayed_sends_have_no_delay_stats() {
    let mut h = H::new();
    h.send_ok(1, send("a"), 0, 0);
    assert_eq!(h.check().stats.delay, None);
}
