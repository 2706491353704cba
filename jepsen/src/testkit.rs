//! A history builder for hand-made histories: each line advances the clock by 1 ms unless the
//! caller sets the time, and helpers record whole operations in one call. The checker's tests
//! build their histories with it; it is public so other checkers and simulations can too.

use crate::checker::{self, AnomalyKind, Verdict};
use crate::history::{
    Ack, Call, ConsumerOffset, Entry, Fault, FaultAction, Message, OpType, Poll, Process, Queue, Send, SendAt,
};

pub const MS: u64 = 1_000_000;

pub fn q(id: u32) -> Queue {
    Queue { topic: "jepsen".into(), broker: "broker-a".into(), id }
}

pub fn send(value: &str) -> Call {
    Call::Send(Send {
        topic: "jepsen".into(),
        value: value.into(),
        message_group: None,
        key: None,
        at: None,
        due_ns: None,
        deliver_at_unix_ms: None,
    })
}

pub fn send_in(value: &str, group: &str) -> Call {
    let Call::Send(s) = send(value) else { unreachable!() };
    Call::Send(Send { message_group: Some(group.into()), ..s })
}

/// A delayed send, due at `due_ns` on the history clock.
pub fn send_delayed(value: &str, due_ns: u64) -> Call {
    let Call::Send(s) = send(value) else { unreachable!() };
    Call::Send(Send { due_ns: Some(due_ns), ..s })
}

/// The send's completion: the same call with `at` filled in.
pub fn acked(call: &Call, queue: u32, offset: u64) -> Call {
    acked_at(call, queue, offset as i64)
}

/// The send's completion acknowledged with any offset (-1: a delayed message, placed when due).
pub fn acked_at(call: &Call, queue: u32, offset: i64) -> Call {
    let mut call = call.clone();
    if let Call::Send(s) = &mut call {
        s.at = Some(SendAt { queue: q(queue), offset });
    }
    call
}

pub fn poll(consumer: &str) -> Call {
    Call::Poll(Poll {
        consumer: consumer.into(),
        group: Some("cg".into()),
        reassigned: false,
        orderly: false,
        pop: false,
        msgs: Vec::new(),
    })
}

pub fn polled(consumer: &str, reassigned: bool, msgs: &[(u32, u64, &str)]) -> Call {
    let msgs = msgs.iter().map(|(queue, offset, v)| Message { queue: q(*queue), offset: *offset, value: (*v).into() });
    Call::Poll(Poll {
        consumer: consumer.into(),
        group: Some("cg".into()),
        reassigned,
        orderly: false,
        pop: false,
        msgs: msgs.collect(),
    })
}

/// A pop by orderly consumer group `fifo` (reassigned: pops are no per-consumer stream).
pub fn popped(consumer: &str, msgs: &[(u32, u64, &str)]) -> Call {
    let msgs = msgs.iter().map(|(queue, offset, v)| Message { queue: q(*queue), offset: *offset, value: (*v).into() });
    Call::Poll(Poll {
        consumer: consumer.into(),
        group: Some("fifo".into()),
        reassigned: true,
        orderly: true,
        pop: false,
        msgs: msgs.collect(),
    })
}

/// A pop by the (not orderly) consumer group `group`.
pub fn popped_by(group: &str, consumer: &str, msgs: &[(u32, u64, &str)]) -> Call {
    let msgs = msgs.iter().map(|(queue, offset, v)| Message { queue: q(*queue), offset: *offset, value: (*v).into() });
    Call::Poll(Poll {
        consumer: consumer.into(),
        group: Some(group.into()),
        reassigned: true,
        orderly: false,
        pop: true,
        msgs: msgs.collect(),
    })
}

/// An ack by `consumer` of group `fifo` of the message `value` at (queue, offset).
pub fn ack(consumer: &str, queue: u32, offset: u64, value: &str) -> Call {
    ack_by("fifo", consumer, queue, offset, value)
}

/// An ack by `consumer` of group `group`.
pub fn ack_by(group: &str, consumer: &str, queue: u32, offset: u64, value: &str) -> Call {
    Call::Ack(Ack { consumer: consumer.into(), group: group.into(), queue: q(queue), offset, value: value.into() })
}

pub fn commit(queue: u32, offset: u64) -> Call {
    Call::CommitOffset(ConsumerOffset { group: "cg".into(), queue: q(queue), offset: Some(offset) })
}

pub fn fetch(queue: u32, offset: Option<u64>) -> Call {
    Call::FetchOffset(ConsumerOffset { group: "cg".into(), queue: q(queue), offset })
}

pub fn fault(name: &str, action: FaultAction) -> Call {
    Call::Nemesis(Fault { fault: name.into(), action, targets: vec!["n1".into()], clock_offset_s: None })
}

/// A `clock-skew` start or stop on n1; the start records the clock's offset (when given).
pub fn skew(action: FaultAction, offset_s: Option<i64>) -> Call {
    let offset = if action == FaultAction::Start { offset_s } else { None };
    Call::Nemesis(Fault { fault: "clock-skew".into(), action, targets: vec!["n1".into()], clock_offset_s: offset })
}

/// An operation invoked and not yet completed.
#[derive(Clone, Copy, Debug)]
pub struct Open {
    pub op: u64,
    pub process: Process,
    pub index: u64,
}

#[derive(Default)]
pub struct H {
    pub entries: Vec<Entry>,
    next_op: u64,
    time: u64,
}

impl H {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the clock for the next line (must not go backwards).
    pub fn at(&mut self, time_ns: u64) -> &mut Self {
        self.time = time_ns;
        self
    }

    fn line(&mut self, op: u64, process: Process, kind: OpType, call: Call) -> u64 {
        let index = self.entries.len() as u64;
        let error = matches!(kind, OpType::Fail | OpType::Info).then(|| "test".to_string());
        self.entries.push(Entry { index, op, time_ns: self.time, process, kind, call, error });
        self.time += MS;
        index
    }

    pub fn invoke(&mut self, process: u64, call: Call) -> Open {
        self.invoke_as(Process::Client(process), call)
    }

    pub fn invoke_as(&mut self, process: Process, call: Call) -> Open {
        let op = self.next_op;
        self.next_op += 1;
        let index = self.line(op, process, OpType::Invoke, call);
        Open { op, process, index }
    }

    /// Completes `open`; returns the completion's index.
    pub fn complete(&mut self, open: Open, kind: OpType, call: Call) -> u64 {
        self.line(open.op, open.process, kind, call)
    }

    /// A whole ok send; returns the invocation's index.
    pub fn send_ok(&mut self, process: u64, call: Call, queue: u32, offset: u64) -> u64 {
        let open = self.invoke(process, call.clone());
        self.complete(open, OpType::Ok, acked(&call, queue, offset));
        open.index
    }

    /// A whole send ending `fail` or `info`; returns the invocation's index.
    pub fn send_unacked(&mut self, process: u64, call: Call, kind: OpType) -> u64 {
        let open = self.invoke(process, call.clone());
        self.complete(open, kind, call);
        open.index
    }

    /// A whole ok send acknowledged with offset `offset` (-1: placed when due); returns the
    /// invocation's index.
    pub fn send_ok_at(&mut self, process: u64, call: Call, queue: u32, offset: i64) -> u64 {
        let open = self.invoke(process, call.clone());
        self.complete(open, OpType::Ok, acked_at(&call, queue, offset));
        open.index
    }

    /// A whole ok pop by consumer group `group` (not orderly); returns the completion's index.
    pub fn pop_by(&mut self, process: u64, group: &str, consumer: &str, msgs: &[(u32, u64, &str)]) -> u64 {
        let open = self.invoke(process, popped_by(group, consumer, &[]));
        self.complete(open, OpType::Ok, popped_by(group, consumer, msgs))
    }

    /// A whole ok poll; returns the completion's index (where reads are cited).
    pub fn poll_ok(&mut self, process: u64, consumer: &str, reassigned: bool, msgs: &[(u32, u64, &str)]) -> u64 {
        let open = self.invoke(process, poll(consumer));
        self.complete(open, OpType::Ok, polled(consumer, reassigned, msgs))
    }

    /// A whole ok pop of orderly group `fifo`; returns the completion's index.
    pub fn pop_ok(&mut self, process: u64, consumer: &str, msgs: &[(u32, u64, &str)]) -> u64 {
        let open = self.invoke(process, popped(consumer, &[]));
        self.complete(open, OpType::Ok, popped(consumer, msgs))
    }

    /// A whole ack of `value` at (queue, offset) by group `fifo`, ending `kind`; returns the
    /// completion's index.
    pub fn ack(&mut self, process: u64, consumer: &str, kind: OpType, msg: (u32, u64, &str)) -> u64 {
        self.ack_in(process, "fifo", consumer, kind, msg)
    }

    /// The same by consumer group `group`.
    pub fn ack_in(
        &mut self,
        process: u64,
        group: &str,
        consumer: &str,
        kind: OpType,
        (queue, offset, value): (u32, u64, &str),
    ) -> u64 {
        let call = ack_by(group, consumer, queue, offset, value);
        let open = self.invoke(process, call.clone());
        self.complete(open, kind, call)
    }

    /// A whole operation of any other kind, completed with `done`.
    pub fn op(&mut self, process: u64, call: Call, kind: OpType, done: Call) -> u64 {
        let open = self.invoke(process, call);
        self.complete(open, kind, done)
    }

    pub fn nemesis(&mut self, name: &str, action: FaultAction) {
        self.nemesis_op(fault(name, action), OpType::Ok);
    }

    /// A whole nemesis operation ending `kind`.
    pub fn nemesis_op(&mut self, call: Call, kind: OpType) {
        let open = self.invoke_as(Process::NEMESIS, call.clone());
        self.complete(open, kind, call);
    }

    pub fn final_read(&mut self) -> Open {
        self.invoke_as(Process::NEMESIS, Call::FinalRead)
    }

    pub fn check(&self) -> Verdict {
        checker::check(&self.entries).expect("well-formed history")
    }
}

/// The kinds found, with their counts.
pub fn kinds(v: &Verdict) -> Vec<(AnomalyKind, u64)> {
    v.anomalies.iter().map(|(k, f)| (*k, f.count)).collect()
}
