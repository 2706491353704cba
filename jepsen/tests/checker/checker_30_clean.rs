//! Clean histories yield no anomalies: everything legal that looks suspicious (unknown sends
//! that did and did not land, pipelined sends, reassignments, concurrent consumers, overlapping
//! commits) is accepted, and a generated 200k-operation history checks clean.

use raftmq_jepsen::checker::{self, AnomalyKind};
use raftmq_jepsen::history::{Call, Entry, FaultAction, OpType};
use raftmq_jepsen::testkit::{H, Open, acked, commit, fetch, kinds, polled, popped, send, send_in};

#[test]
fn hand_made_clean_history_has_no_anomalies() {
    let mut h = H::new();
    h.send_ok(1, send_in("a", "g1"), 0, 0);
    h.send_ok(2, send_in("x", "g2"), 1, 0);
    h.nemesis("partition-leader", FaultAction::Start);
    h.send_ok(1, send_in("b", "g1"), 0, 1);
    h.send_unacked(1, send_in("landed", "g1"), OpType::Info); // timed out, but stored at q0@2
    h.send_unacked(1, send_in("vanished", "g1"), OpType::Info); // timed out, never stored
    h.send_unacked(2, send("rejected"), OpType::Fail);
    h.nemesis("partition-leader", FaultAction::Stop);

    // Pipelined sends of one producer: d is invoked before c is acked, so c may land after d.
    let c = h.invoke(3, send_in("c", "g1"));
    let d = h.invoke(3, send_in("d", "g1"));
    h.complete(d, OpType::Ok, acked(&send_in("d", "g1"), 0, 3));
    h.complete(c, OpType::Ok, acked(&send_in("c", "g1"), 0, 4));

    // Two consumers on the same queue, interleaved, each advancing one offset at a time.
    h.poll_ok(10, "c1", false, &[(0, 0, "a"), (0, 1, "b")]);
    h.poll_ok(11, "c2", false, &[(0, 0, "a")]);
    h.poll_ok(10, "c1", false, &[(0, 2, "landed"), (0, 3, "d")]);
    h.poll_ok(11, "c2", false, &[(0, 1, "b"), (0, 2, "landed"), (0, 3, "d"), (0, 4, "c")]);
    // c1 is rebalanced onto queue 1 and later seeks back to the start of queue 0.
    h.poll_ok(10, "c1", true, &[(1, 0, "x")]);
    h.poll_ok(10, "c1", true, &[(0, 0, "a")]);
    // A poll that failed or timed out reads nothing, whatever it carries.
    let p = h.invoke(11, raftmq_jepsen::testkit::poll("c2"));
    h.complete(p, OpType::Info, polled("c2", false, &[(0, 0, "zzz")]));

    // Consumer offsets: a fetch before any commit; two overlapping commits where the lower
    // one may win; a failed commit; an unknown commit that a fetch then observes.
    h.op(20, fetch(0, None), OpType::Ok, fetch(0, None));
    h.op(20, commit(0, 2), OpType::Ok, commit(0, 2));
    let high = h.invoke(20, commit(0, 5));
    let stale = h.invoke(21, commit(0, 3));
    h.complete(high, OpType::Ok, commit(0, 5));
    h.complete(stale, OpType::Ok, commit(0, 3));
    h.op(20, fetch(0, None), OpType::Ok, fetch(0, Some(3)));
    h.op(20, commit(0, 100), OpType::Fail, commit(0, 100));
    h.op(21, commit(0, 7), OpType::Info, commit(0, 7));
    h.op(20, fetch(0, None), OpType::Ok, fetch(0, Some(7)));
    h.op(20, fetch(1, None), OpType::Ok, fetch(1, None));

    let drain = h.final_read();
    h.poll_ok(30, "drain", true, &[(0, 0, "a"), (0, 1, "b"), (0, 2, "landed"), (0, 3, "d"), (0, 4, "c")]);
    h.poll_ok(30, "drain", false, &[(1, 0, "x")]);
    h.complete(drain, OpType::Ok, Call::FinalRead);

    let v = h.check();
    assert!(v.valid, "{:#?}", v.anomalies);
    assert!(v.notes.is_empty(), "{:?}", v.notes);
    let s = &v.stats;
    assert_eq!((s.sends.ok, s.sends.fail, s.sends.info), (5, 1, 2));
    assert_eq!((s.polls.ok, s.polls.info), (8, 1));
    assert_eq!((s.commit_offsets.total(), s.fetch_offsets.total()), (5, 4));
    assert_eq!((s.messages_read, s.distinct_values_read), (17, 6));
    assert_eq!(v.windows.len(), 1);
}

#[test]
fn clean_fifo_history_has_no_anomalies() {
    // Producer 1 owns message group g1, producer 2 owns g2; each sends one value at a time.
    let mut h = H::new();
    h.send_ok(1, send_in("a", "g1"), 0, 0);
    h.send_ok(2, send_in("p", "g2"), 1, 0);
    h.send_ok(1, send_in("b", "g1"), 0, 1);
    // Unknown outcomes carry no order: x landed in between, y landed after z was sent.
    h.send_unacked(1, send_in("x", "g1"), OpType::Info);
    h.send_ok(1, send_in("c", "g1"), 0, 3);
    h.send_unacked(1, send_in("y", "g1"), OpType::Info);
    h.send_ok(1, send_in("z", "g1"), 0, 4);
    h.send_ok(2, send_in("q", "g2"), 1, 1);

    // f0 gets a and b; the ack of a lands, the ack of b is unknown and did not land.
    h.pop_ok(10, "f0", &[(0, 0, "a"), (0, 1, "b"), (1, 0, "p")]);
    h.ack(10, "f0", OpType::Ok, (0, 0, "a"));
    h.ack(10, "f0", OpType::Info, (0, 1, "b"));
    h.ack(10, "f0", OpType::Ok, (1, 0, "p"));
    // The queue is held while b is out; an empty pop, a failed one.
    h.pop_ok(11, "f1", &[]);
    let failed = h.invoke(11, popped("f1", &[]));
    h.complete(failed, OpType::Info, popped("f1", &[(0, 1, "b")]));
    // After b's invisible time: b again (a legal redelivery), then what follows, in order.
    h.pop_ok(11, "f1", &[(0, 1, "b"), (0, 2, "x"), (0, 3, "c")]);
    for (o, v) in [(1, "b"), (2, "x"), (3, "c")] {
        h.ack(11, "f1", OpType::Ok, (0, o, v));
    }
    // Concurrent pops: f2's is invoked first and answers last with z; f0's, invoked while
    // f2's is out, answers first with q. Nothing orders q before z's group, or z before y.
    let slow = h.invoke(12, popped("f2", &[]));
    h.pop_ok(10, "f0", &[(1, 1, "q")]);
    h.complete(slow, OpType::Ok, popped("f2", &[(0, 4, "z"), (0, 5, "y")]));
    h.ack(12, "f2", OpType::Ok, (0, 4, "z"));
    h.ack(12, "f2", OpType::Ok, (0, 5, "y"));

    let drain = h.final_read();
    h.poll_ok(30, "drain", true, &[(0, 0, "a"), (0, 1, "b"), (0, 2, "x"), (0, 3, "c"), (0, 4, "z"), (0, 5, "y")]);
    h.poll_ok(30, "drain", false, &[(1, 0, "p"), (1, 1, "q")]);
    h.complete(drain, OpType::Ok, Call::FinalRead);

    let v = h.check();
    assert!(v.valid, "{:#?}", v.anomalies);
    assert_eq!((v.stats.acks.ok, v.stats.acks.info), (7, 1));
    assert_eq!((v.stats.sends.ok, v.stats.sends.info), (6, 2));
}

#[test]
fn a_pop_answering_late_may_hold_the_earlier_send() {
    // f1's pop is invoked before f0's answers b, and answers a later: the broker may have handed
    // a out first (then b only after a's invisible time, or after an ack f1 could not yet send),
    // so b's delivery is not proved to come first.
    let mut h = H::new();
    h.send_ok(1, send_in("a", "g"), 0, 0);
    h.send_ok(1, send_in("b", "g"), 0, 1);
    let early = h.invoke(11, popped("f1", &[]));
    h.pop_ok(10, "f0", &[(0, 1, "b")]);
    h.complete(early, OpType::Ok, popped("f1", &[(0, 0, "a")]));
    let v = h.check();
    assert!(v.valid, "{:#?}", v.anomalies);
}

/// xorshift64*: enough randomness for a workload shape, fully determined by the seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

const QUEUES: usize = 4;
const PRODUCERS: usize = 8;
const CONSUMERS: usize = 3;

/// A correct broker simulated in memory: sends append at completion (so sequential sends get
/// rising offsets), `info` sends land now, later or never, consumers read contiguously from
/// their own positions and are sometimes reassigned, faults come and go.
struct Sim {
    rng: Rng,
    h: H,
    queues: Vec<Vec<String>>,
    /// Per producer: the pending send and its fate (a roll out of 100).
    producers: Vec<Option<(Open, Call, u64)>>,
    consumers: Vec<Option<Open>>,
    positions: Vec<[u64; QUEUES]>,
    committed: [Option<u64>; QUEUES],
    /// `info` sends that land later.
    deferred: Vec<(usize, String)>,
    fault: Option<&'static str>,
    seq: u64,
}

impl Sim {
    fn new(seed: u64) -> Self {
        Sim {
            rng: Rng(seed),
            h: H::new(),
            queues: vec![Vec::new(); QUEUES],
            producers: vec![None; PRODUCERS],
            consumers: vec![None; CONSUMERS],
            positions: vec![[0; QUEUES]; CONSUMERS],
            committed: [None; QUEUES],
            deferred: Vec::new(),
            fault: None,
            seq: 0,
        }
    }

    fn pick(&mut self, n: usize) -> usize {
        self.rng.below(n as u64) as usize
    }

    fn producer_step(&mut self, p: usize) {
        let Some((open, call, roll)) = self.producers[p].take() else {
            self.seq += 1;
            let call = send_in(&format!("{p}-{}", self.seq), &format!("g{p}"));
            let roll = self.rng.below(100);
            self.producers[p] = Some((self.h.invoke(p as u64, call.clone()), call, roll));
            return;
        };
        let Call::Send(s) = &call else { unreachable!() };
        let (queue, value) = (p % QUEUES, s.value.clone());
        let kind = match roll {
            0..90 => OpType::Ok,
            90..94 => OpType::Fail,
            _ => OpType::Info,
        };
        match roll {
            0..90 | 96..98 => self.queues[queue].push(value),
            98.. => self.deferred.push((queue, value)),
            _ => {}
        }
        let done =
            if kind == OpType::Ok { acked(&call, queue as u32, self.queues[queue].len() as u64 - 1) } else { call };
        self.h.complete(open, kind, done);
    }

    fn consumer_step(&mut self, c: usize) {
        let Some(open) = self.consumers[c].take() else {
            self.consumers[c] = Some(self.h.invoke(100 + c as u64, raftmq_jepsen::testkit::poll(&format!("c{c}"))));
            return;
        };
        let queue = self.pick(QUEUES);
        let reassigned = self.rng.below(50) == 0;
        if reassigned {
            self.positions[c][queue] = self.rng.below(self.positions[c][queue] + 1);
        }
        let from = self.positions[c][queue] as usize;
        let to = (from + 1 + self.pick(10)).min(self.queues[queue].len()).max(from);
        let msgs: Vec<(u32, u64, &str)> =
            (from..to).map(|o| (queue as u32, o as u64, self.queues[queue][o].as_str())).collect();
        let done = polled(&format!("c{c}"), reassigned, &msgs);
        self.positions[c][queue] = to as u64;
        self.h.complete(open, OpType::Ok, done);
    }

    fn step(&mut self) {
        let (p, c, queue) = (self.pick(PRODUCERS), self.pick(CONSUMERS), self.pick(QUEUES));
        match self.rng.below(100) {
            0..50 => self.producer_step(p),
            50..90 => self.consumer_step(c),
            90..95 => {
                let offset = self.committed[queue].unwrap_or(0).max(self.positions[0][queue]);
                self.committed[queue] = Some(offset);
                self.h.op(200, commit(queue as u32, offset), OpType::Ok, commit(queue as u32, offset));
            }
            95..99 => {
                let answer = fetch(queue as u32, self.committed[queue]);
                self.h.op(201, fetch(queue as u32, None), OpType::Ok, answer);
            }
            _ => match self.fault.take() {
                Some(name) => self.h.nemesis(name, FaultAction::Stop),
                None => {
                    let name = ["kill-leader", "partition-leader", "lost-unsynced"][self.pick(3)];
                    self.h.nemesis(name, FaultAction::Start);
                    self.fault = Some(name);
                }
            },
        }
        if self.rng.below(20) == 0
            && let Some((queue, value)) = self.deferred.pop()
        {
            self.queues[queue].push(value);
        }
    }

    /// Producers finish (unacked), faults heal, late writes land, then one consumer drains.
    fn finish(mut self) -> Vec<Entry> {
        for (open, call, _) in std::mem::take(&mut self.producers).into_iter().flatten() {
            self.h.complete(open, OpType::Info, call);
        }
        for (c, open) in std::mem::take(&mut self.consumers).into_iter().enumerate() {
            if let Some(open) = open {
                self.h.complete(open, OpType::Ok, polled(&format!("c{c}"), false, &[]));
            }
        }
        if let Some(name) = self.fault.take() {
            self.h.nemesis(name, FaultAction::Stop);
        }
        for (queue, value) in std::mem::take(&mut self.deferred) {
            self.queues[queue].push(value);
        }
        let drain = self.h.final_read();
        for (queue, values) in self.queues.iter().enumerate() {
            let msgs: Vec<(u32, u64, &str)> =
                values.iter().enumerate().map(|(o, v)| (queue as u32, o as u64, v.as_str())).collect();
            self.h.poll_ok(300, "drain", queue == 0, &msgs);
        }
        self.h.complete(drain, OpType::Ok, Call::FinalRead);
        self.h.entries
    }
}

fn generate(lines: usize, seed: u64) -> Vec<Entry> {
    let mut sim = Sim::new(seed);
    while sim.h.entries.len() < lines {
        sim.step();
    }
    sim.finish()
}

#[test]
fn generated_clean_history_of_200k_operations_is_valid() {
    let history = generate(400_000, 0x5eed);
    let v = checker::check(&history).expect("well-formed");
    assert!(v.valid, "{:#?}", v.anomalies);
    assert!(v.stats.operations >= 200_000, "{}", v.stats.operations);
    assert!(v.stats.sends.ok > 50_000 && v.stats.sends.fail > 0 && v.stats.sends.info > 0);
    assert!(v.stats.final_read);
    assert!(v.windows.len() > 100);
    assert!(v.windows.iter().all(|w| w.stopped && w.rto_ns.is_some()));
}

#[test]
fn one_corrupted_read_in_a_generated_history_is_found() {
    let mut history = generate(40_000, 7);
    let drain = history.iter_mut().rev().find(|e| e.kind == OpType::Ok && matches!(e.call, Call::Poll(_)));
    let Some(Entry { call: Call::Poll(poll), .. }) = drain else { panic!("no drain poll") };
    poll.msgs[0].value = "ghost".into();
    let v = checker::check(&history).expect("well-formed");
    assert!(!v.valid);
    let found: Vec<AnomalyKind> = kinds(&v).into_iter().map(|(k, _)| k).collect();
    assert!(found.contains(&AnomalyKind::Unexpected), "{found:?}");
    assert!(found.contains(&AnomalyKind::InconsistentOffset) || found.contains(&AnomalyKind::AckOffsetMismatch));
}
