//! Availability: fault windows from nemesis ops, sends per window, recovery times, latency.

use raftmq_jepsen::checker::{OutcomeCounts, Quantiles};
use raftmq_jepsen::history::{FaultAction, OpType, Process};
use raftmq_jepsen::testkit::{H, MS, acked, fault, send};

#[test]
fn windows_count_sends_and_measure_recovery() {
    let mut h = H::new();
    h.at(0);
    h.send_ok(1, send("a"), 0, 0); // 0 -> 1 ms
    h.at(5 * MS);
    let g = h.invoke(2, send("g")); // in flight when the fault starts: no proof of recovery
    h.at(10 * MS);
    let kill = h.invoke_as(Process::NEMESIS, fault("kill-leader", FaultAction::Start));
    h.complete(kill, OpType::Ok, fault("kill-leader", FaultAction::Start)); // window opens at 11 ms
    let b = h.invoke(3, send("b")); // 12 ms
    let c = h.invoke(4, send("c")); // 13 ms
    h.complete(c, OpType::Fail, send("c")); // 14 ms
    h.at(20 * MS);
    let d = h.invoke(5, send("d"));
    h.at(100 * MS);
    h.complete(g, OpType::Ok, acked(&send("g"), 0, 1));
    h.at(1520 * MS);
    h.complete(d, OpType::Ok, acked(&send("d"), 0, 2)); // first success invoked after 11 ms
    h.at(5012 * MS);
    h.complete(b, OpType::Info, send("b"));
    h.at(6000 * MS);
    h.nemesis("kill-leader", FaultAction::Stop); // closes at 6001 ms
    h.send_ok(1, send("f"), 0, 3); // 6002 -> 6003 ms
    h.at(6500 * MS);
    let pause = h.invoke_as(Process::NEMESIS, fault("pause", FaultAction::Start));
    h.complete(pause, OpType::Fail, fault("pause", FaultAction::Start)); // never took effect
    h.at(7000 * MS);
    h.nemesis("partition-leader", FaultAction::Start); // never stopped, nothing succeeds after
    h.send_unacked(1, send("h"), OpType::Info);

    let v = h.check();
    assert!(v.valid, "{:#?}", v.anomalies);
    assert_eq!(v.windows.len(), 2, "{:#?}", v.windows);

    let kill = &v.windows[0];
    assert_eq!(
        (kill.fault.as_str(), kill.start_ns, kill.end_ns, kill.stopped),
        ("kill-leader", 11 * MS, 6001 * MS, true)
    );
    assert_eq!(kill.targets, vec!["n1".to_string()]);
    assert_eq!(kill.sends, OutcomeCounts { ok: 2, fail: 1, info: 1 });
    assert_eq!(kill.rto_ns, Some(1509 * MS));
    assert_eq!(kill.recovery_after_stop_ns, Some(2 * MS));

    let part = &v.windows[1];
    assert_eq!((part.fault.as_str(), part.stopped, part.rto_ns), ("partition-leader", false, None));
    assert_eq!(part.end_ns, h.entries.last().map(|e| e.time_ns).unwrap_or_default());
    assert_eq!(part.sends, OutcomeCounts { ok: 0, fail: 0, info: 1 });

    // ok latencies: a 1 ms, g 95 ms, d 1500 ms, f 1 ms.
    let lat = v.stats.send_latency.expect("ok sends exist");
    assert_eq!(lat, Quantiles { p50_ns: MS, p99_ns: 1500 * MS, p999_ns: 1500 * MS, max_ns: 1500 * MS });
    assert_eq!((v.stats.sends.ok, v.stats.sends.fail, v.stats.sends.info), (4, 1, 2));
}

#[test]
fn overlapping_windows_of_the_same_fault_close_in_order() {
    let mut h = H::new();
    h.nemesis("kill-leader", FaultAction::Start);
    h.nemesis("kill-leader", FaultAction::Start);
    h.nemesis("kill-leader", FaultAction::Stop);
    h.send_ok(1, send("a"), 0, 0);
    h.nemesis("kill-leader", FaultAction::Stop);
    let v = h.check();
    let ends: Vec<u64> = v.windows.iter().map(|w| w.end_ns / MS).collect();
    assert_eq!(ends, vec![5, 9]);
    assert!(v.windows.iter().all(|w| w.rto_ns.is_some()));
    assert!(v.notes.iter().any(|n| n.contains("unseen not checked")));
}

#[test]
fn quantiles_use_nearest_rank() {
    let mut h = H::new();
    for i in 0..1000u64 {
        let open = h.invoke(1, send(&format!("v{i}")));
        h.at(h.entries[open.index as usize].time_ns + (i + 1) * 1000);
        h.complete(open, OpType::Ok, acked(&send(&format!("v{i}")), 0, i));
    }
    let lat = h.check().stats.send_latency.expect("ok sends exist");
    assert_eq!(lat, Quantiles { p50_ns: 500_000, p99_ns: 990_000, p999_ns: 999_000, max_ns: 1_000_000 });
}
