//! The history format: golden lines for every operation kind, the writer under concurrency,
//! the reader's error reporting, and the structural errors the checker refuses to judge.

use std::io::Cursor;
use std::sync::Arc;

use raftmq_jepsen::checker::{self, CheckError, Verdict};
use raftmq_jepsen::history::{
    Call, Entry, HistoryError, HistoryWriter, OpType, Poll, Process, Queue, SendAt, parse_history, read_history,
};
use raftmq_jepsen::testkit::{H, acked, send};

/// One line per operation kind, exactly as the writer produces them (also quoted in the README).
const GOLDEN: &str = r#"{"index":0,"op":0,"time_ns":1000,"process":3,"type":"invoke","f":"send","value":{"topic":"jepsen","value":"3-17","message_group":"g3","key":"k3"}}
{"index":1,"op":0,"time_ns":2401000,"process":3,"type":"ok","f":"send","value":{"topic":"jepsen","value":"3-17","message_group":"g3","key":"k3","at":{"queue":{"topic":"jepsen","broker":"broker-a","id":1},"offset":17}}}
{"index":2,"op":1,"time_ns":2500000,"process":4,"type":"invoke","f":"send","value":{"topic":"jepsen","value":"4-2"}}
{"index":3,"op":1,"time_ns":5002500000,"process":4,"type":"info","f":"send","value":{"topic":"jepsen","value":"4-2"},"error":"deadline exceeded"}
{"index":4,"op":2,"time_ns":5003000000,"process":5,"type":"invoke","f":"poll","value":{"consumer":"c5","group":"cg","reassigned":false,"msgs":[]}}
{"index":5,"op":2,"time_ns":5004000000,"process":5,"type":"ok","f":"poll","value":{"consumer":"c5","group":"cg","reassigned":true,"msgs":[{"queue":{"topic":"jepsen","broker":"broker-a","id":1},"offset":17,"value":"3-17"}]}}
{"index":6,"op":3,"time_ns":5005000000,"process":5,"type":"invoke","f":"commit_offset","value":{"group":"cg","queue":{"topic":"jepsen","broker":"broker-a","id":1},"offset":18}}
{"index":7,"op":3,"time_ns":5006000000,"process":5,"type":"ok","f":"commit_offset","value":{"group":"cg","queue":{"topic":"jepsen","broker":"broker-a","id":1},"offset":18}}
{"index":8,"op":4,"time_ns":5007000000,"process":6,"type":"invoke","f":"fetch_offset","value":{"group":"cg","queue":{"topic":"jepsen","broker":"broker-a","id":1},"offset":null}}
{"index":9,"op":4,"time_ns":5008000000,"process":6,"type":"ok","f":"fetch_offset","value":{"group":"cg","queue":{"topic":"jepsen","broker":"broker-a","id":1},"offset":18}}
{"index":10,"op":5,"time_ns":5009000000,"process":"nemesis","type":"invoke","f":"nemesis","value":{"fault":"partition-leader","action":"start","targets":["n1"]}}
{"index":11,"op":5,"time_ns":5010000000,"process":"nemesis","type":"ok","f":"nemesis","value":{"fault":"partition-leader","action":"start","targets":["n1"]}}
{"index":12,"op":6,"time_ns":5011000000,"process":7,"type":"invoke","f":"send","value":{"topic":"jepsen","value":"7-1"}}
{"index":13,"op":6,"time_ns":5012000000,"process":7,"type":"fail","f":"send","value":{"topic":"jepsen","value":"7-1"},"error":"topic does not exist"}
{"index":14,"op":7,"time_ns":5013000000,"process":"nemesis","type":"invoke","f":"final_read"}
{"index":15,"op":7,"time_ns":5014000000,"process":"nemesis","type":"ok","f":"final_read"}
"#;

/// Parses `golden`, checks each entry serializes back to its exact line, and checks it.
fn round_trip(golden: &str, lines: usize) -> (Vec<Entry>, Verdict) {
    let entries = parse_history(Cursor::new(golden)).expect("golden history parses");
    assert_eq!(entries.len(), lines);
    for (entry, line) in entries.iter().zip(golden.lines()) {
        assert_eq!(serde_json::to_string(entry).expect("serializes"), line);
    }
    let v = checker::check(&entries).expect("well-formed");
    assert!(v.valid, "{:#?}", v.anomalies);
    (entries, v)
}

#[test]
fn golden_lines_round_trip_byte_for_byte() {
    let (entries, v) = round_trip(GOLDEN, 16);
    assert_eq!(entries[10].process, Process::NEMESIS);
    assert_eq!(entries[3].kind, OpType::Info);
    let Call::Poll(Poll { reassigned, msgs, .. }) = &entries[5].call else { panic!("not a poll") };
    assert!(*reassigned);
    assert_eq!(msgs[0].queue, Queue { topic: "jepsen".into(), broker: "broker-a".into(), id: 1 });
    // The golden history is itself a valid run.
    assert_eq!((v.stats.sends.ok, v.stats.sends.info, v.stats.sends.fail), (1, 1, 1));
}

/// The fifo workload's lines: an orderly pop and an ack (also quoted in the README).
const GOLDEN_FIFO: &str = r#"{"index":0,"op":0,"time_ns":1000,"process":0,"type":"invoke","f":"send","value":{"topic":"jepsen","value":"0-4","message_group":"p0-g0"}}
{"index":1,"op":0,"time_ns":2000,"process":0,"type":"ok","f":"send","value":{"topic":"jepsen","value":"0-4","message_group":"p0-g0","at":{"queue":{"topic":"jepsen","broker":"broker-a","id":2},"offset":7}}}
{"index":2,"op":1,"time_ns":3000,"process":101,"type":"invoke","f":"poll","value":{"consumer":"f1","group":"cg-fifo","reassigned":true,"orderly":true,"msgs":[]}}
{"index":3,"op":1,"time_ns":4000,"process":101,"type":"ok","f":"poll","value":{"consumer":"f1","group":"cg-fifo","reassigned":true,"orderly":true,"msgs":[{"queue":{"topic":"jepsen","broker":"broker-a","id":2},"offset":7,"value":"0-4"}]}}
{"index":4,"op":2,"time_ns":5000,"process":101,"type":"invoke","f":"ack","value":{"consumer":"f1","group":"cg-fifo","queue":{"topic":"jepsen","broker":"broker-a","id":2},"offset":7,"value":"0-4"}}
{"index":5,"op":2,"time_ns":6000,"process":101,"type":"ok","f":"ack","value":{"consumer":"f1","group":"cg-fifo","queue":{"topic":"jepsen","broker":"broker-a","id":2},"offset":7,"value":"0-4"}}
"#;

#[test]
fn fifo_lines_round_trip_byte_for_byte() {
    let (entries, v) = round_trip(GOLDEN_FIFO, 6);
    let Call::Poll(Poll { orderly, .. }) = &entries[3].call else { panic!("not a poll") };
    assert!(*orderly);
    assert_eq!(entries[5].call.name(), "ack");
    assert_eq!(v.stats.acks.ok, 1);
}

/// The delay workload's lines: a delayed send acknowledged with offset -1, a clock-skew start
/// naming its offset, a pop by a group that is not orderly, an ack (also quoted in the README).
const GOLDEN_DELAY: &str = r#"{"index":0,"op":0,"time_ns":1000,"process":0,"type":"invoke","f":"send","value":{"topic":"jepsen","value":"0-3","due_ns":7001000000,"deliver_at_unix_ms":1767225607001}}
{"index":1,"op":0,"time_ns":2000,"process":0,"type":"ok","f":"send","value":{"topic":"jepsen","value":"0-3","at":{"queue":{"topic":"jepsen","broker":"broker-a","id":2},"offset":-1},"due_ns":7001000000,"deliver_at_unix_ms":1767225607001}}
{"index":2,"op":1,"time_ns":3000,"process":"nemesis","type":"invoke","f":"nemesis","value":{"fault":"clock-skew","action":"start","targets":["n2"],"clock_offset_s":-37}}
{"index":3,"op":1,"time_ns":4000,"process":"nemesis","type":"ok","f":"nemesis","value":{"fault":"clock-skew","action":"start","targets":["n2"],"clock_offset_s":-37}}
{"index":4,"op":2,"time_ns":7100000000,"process":100,"type":"invoke","f":"poll","value":{"consumer":"d0","group":"cg-delay","reassigned":true,"pop":true,"msgs":[]}}
{"index":5,"op":2,"time_ns":7102000000,"process":100,"type":"ok","f":"poll","value":{"consumer":"d0","group":"cg-delay","reassigned":true,"pop":true,"msgs":[{"queue":{"topic":"jepsen","broker":"broker-a","id":2},"offset":5,"value":"0-3"}]}}
{"index":6,"op":3,"time_ns":7103000000,"process":100,"type":"invoke","f":"ack","value":{"consumer":"d0","group":"cg-delay","queue":{"topic":"jepsen","broker":"broker-a","id":2},"offset":5,"value":"0-3"}}
{"index":7,"op":3,"time_ns":7104000000,"process":100,"type":"ok","f":"ack","value":{"consumer":"d0","group":"cg-delay","queue":{"topic":"jepsen","broker":"broker-a","id":2},"offset":5,"value":"0-3"}}
"#;

#[test]
fn delay_lines_round_trip_byte_for_byte() {
    let (entries, v) = round_trip(GOLDEN_DELAY, 8);
    let Call::Send(send) = &entries[1].call else { panic!("not a send") };
    assert_eq!(send.at.as_ref().map(|a| a.offset), Some(-1));
    assert_eq!(send.at.as_ref().and_then(SendAt::position), None);
    let Call::Poll(poll) = &entries[5].call else { panic!("not a poll") };
    assert!(poll.is_pop() && !poll.orderly);
    let d = v.stats.delay.expect("delay stats");
    assert_eq!((d.unplaced, d.delivered), (1, 1));
    assert_eq!(d.lateness.map(|l| l.max_ns), Some(101_000_000));
}

#[test]
fn writer_serializes_many_threads_into_one_ordered_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.jsonl");
    let writer = Arc::new(HistoryWriter::create(&path).expect("create"));
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let writer = Arc::clone(&writer);
            std::thread::spawn(move || {
                for i in 0..500u64 {
                    let call = send(&format!("{t}-{i}"));
                    let inv = writer.invoke(Process::Client(u64::from(t)), call.clone()).expect("invoke");
                    writer.ok(inv, acked(&call, t, i)).expect("ok");
                }
                // A task cancelled mid-call: its operation stays open.
                let _dropped = writer.invoke(Process::Client(u64::from(t)), send(&format!("{t}-open")));
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    writer.flush().expect("flush");
    let entries = read_history(&path).expect("reads back");
    assert_eq!(entries.len(), 8 * 1001);
    for (i, pair) in entries.windows(2).enumerate() {
        assert_eq!(pair[0].index, i as u64);
        assert!(pair[0].time_ns <= pair[1].time_ns);
    }
    let v = checker::check(&entries).expect("well-formed");
    assert!(v.valid);
    assert_eq!((v.stats.sends.ok, v.stats.sends.info), (4000, 8));
}

#[test]
fn reader_names_the_malformed_line() {
    let text =
        format!("{}\n\n{{\"index\":2,\"op\":1,\"time_ns\":5,\"process\":1,\"type\":\"invoke\",\"f\":\"bogus\"}}\n", {
            GOLDEN.lines().next().unwrap_or_default()
        });
    match parse_history(Cursor::new(text)) {
        Err(HistoryError::Malformed { line, message }) => {
            assert_eq!(line, 3);
            assert!(message.contains("bogus"), "{message}");
        }
        other => panic!("expected a malformed line, got {other:?}"),
    }
    let torn = &GOLDEN[..GOLDEN.len() - 20];
    assert!(matches!(parse_history(Cursor::new(torn)), Err(HistoryError::Malformed { line: 16, .. })));
    let missing = read_history(std::path::Path::new("/nonexistent/history.jsonl"));
    assert!(matches!(missing, Err(HistoryError::Io { .. })));
}

#[test]
fn structurally_broken_histories_are_errors_not_verdicts() {
    let base = || {
        let mut h = H::new();
        h.send_ok(1, send("a"), 0, 0);
        h
    };

    let mut h = base();
    let stray = h.entries[1].clone();
    h.entries.push(raftmq_jepsen::history::Entry { index: 2, time_ns: stray.time_ns + 1, ..stray });
    assert_eq!(checker::check(&h.entries), Err(CheckError::UnmatchedCompletion { op: 0, index: 2 }));

    let mut h = base();
    h.entries[1].index = 0;
    assert_eq!(checker::check(&h.entries), Err(CheckError::OutOfOrder { index: 0 }));

    let mut h = base();
    h.entries[0].time_ns = h.entries[1].time_ns + 1;
    assert_eq!(checker::check(&h.entries), Err(CheckError::OutOfOrder { index: 1 }));

    let mut h = base();
    h.send_ok(2, send("a"), 0, 1);
    assert!(matches!(
        checker::check(&h.entries),
        Err(CheckError::DuplicateSend { first_index: 0, second_index: 2, .. })
    ));

    let mut h = base();
    let open = h.invoke(3, send("b"));
    h.complete(open, OpType::Ok, send("b"));
    assert_eq!(checker::check(&h.entries), Err(CheckError::MissingAck { index: 3 }));

    let mut h = base();
    let open = h.invoke(3, send("b"));
    h.complete(open, OpType::Ok, raftmq_jepsen::testkit::poll("c1"));
    assert_eq!(checker::check(&h.entries), Err(CheckError::MismatchedCompletion { op: 1, index: 3 }));

    let mut h = base();
    let mut again = h.entries[0].clone();
    again.index = 2;
    again.time_ns = h.entries[1].time_ns;
    h.entries.push(again);
    assert_eq!(checker::check(&h.entries), Err(CheckError::DuplicateInvoke { op: 0, index: 2 }));
}
