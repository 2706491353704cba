//! [`Model`]: the history indexed once, so every anomaly family is a single linear pass.
//!
//! Building it pairs each invocation with its completion, validates the history's structure
//! (a malformed history is an error, never a verdict), interns values and queues to small
//! integers, and builds the two maps every family needs: where each value was read, and which
//! values were read at each position. Ordering questions ("was A acked before B was invoked?")
//! are answered with history indexes, which the writer keeps in real-time order.

use std::hash::Hash;

use super::CheckError;
use super::hasher::FastMap;
use crate::history::{Call, Entry, OpType, Position, Queue};

pub(crate) type ValueId = u32;
pub(crate) type QueueId = u32;

/// A (queue, offset) slot, interned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub queue: QueueId,
    pub offset: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Fail,
    Info,
}

/// One operation: its invocation and, unless the process vanished, its completion.
pub(crate) struct Op<'h> {
    pub invoke: &'h Entry,
    pub done: Option<&'h Entry>,
}

impl<'h> Op<'h> {
    /// A missing completion counts as `info`: the call may have taken effect.
    pub fn outcome(&self) -> Outcome {
        match self.done.map(|d| d.kind) {
            Some(OpType::Ok) => Outcome::Ok,
            Some(OpType::Fail) => Outcome::Fail,
            _ => Outcome::Info,
        }
    }

    /// The completion's call when the op succeeded (it carries the results), else the invocation's.
    pub fn call(&self) -> &'h Call {
        match self.done {
            Some(d) if d.kind == OpType::Ok => &d.call,
            _ => &self.invoke.call,
        }
    }

    /// History index of the completion; `u64::MAX` (after everything) if there is none.
    pub fn done_index(&self) -> u64 {
        self.done.map_or(u64::MAX, |d| d.index)
    }
}

/// A send: its value, outcome and, if ok, the position it was acknowledged at.
pub(crate) struct SendRec<'h> {
    pub op: usize,
    pub value: ValueId,
    pub outcome: Outcome,
    /// The acknowledged position; `None` unless ok and placed (offset >= 0).
    pub ack: Option<Pos>,
    /// Ok, acknowledged on this queue with offset -1: a delayed message, placed when due.
    pub unplaced: Option<QueueId>,
    /// A delayed message's due time on the history clock (the send's `due_ns`).
    pub due_ns: Option<u64>,
    pub message_group: Option<&'h str>,
}

/// One message returned by an ok poll. `index` is the poll completion's history index.
#[derive(Clone, Copy)]
pub(crate) struct Read {
    pub pos: Pos,
    pub value: ValueId,
    pub index: u64,
}

/// Distinct values read at one position; `first` is the earliest read.
pub(crate) struct PosReads {
    pub first: (ValueId, u64),
    pub others: Vec<(ValueId, u64)>,
}

/// Interns borrowed keys to dense ids, keeping them for printing.
pub(crate) struct Interner<K> {
    ids: FastMap<K, u32>,
    pub keys: Vec<K>,
}

impl<K: Copy + Eq + Hash> Interner<K> {
    fn with_capacity(n: usize) -> Self {
        let mut ids = FastMap::default();
        ids.reserve(n);
        Self { ids, keys: Vec::with_capacity(n) }
    }

    fn id(&mut self, key: K) -> u32 {
        *self.ids.entry(key).or_insert_with(|| {
            self.keys.push(key);
            u32::try_from(self.keys.len() - 1).unwrap_or(u32::MAX)
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

impl Interner<&str> {
    /// The id of `key`, if it was interned.
    pub fn get(&self, key: &str) -> Option<u32> {
        self.ids.get(key).copied()
    }
}

pub(crate) struct Model<'h> {
    pub history: &'h [Entry],
    /// Operations in invocation order.
    pub ops: Vec<Op<'h>>,
    /// For each history line, the operation it belongs to.
    pub line_op: Vec<usize>,
    pub values: Interner<&'h str>,
    pub queues: Interner<&'h Queue>,
    pub sends: Vec<SendRec<'h>>,
    /// Send number of each operation, if it is a send.
    pub op_send: Vec<Option<usize>>,
    pub send_of_value: Vec<Option<usize>>,
    /// Every message of every ok poll, in history order.
    pub reads: Vec<Read>,
    /// Per value: the first position it was read at (and the poll's index).
    pub first_read: Vec<Option<(Pos, u64)>>,
    pub reads_at: FastMap<Pos, PosReads>,
    /// Per queue: the highest offset read (and the poll's index).
    pub max_read: Vec<Option<(u64, u64)>>,
    /// Invocation index of the final drain, if it completed ok.
    pub final_read: Option<u64>,
    /// The same drain's invocation `time_ns`.
    pub final_read_ns: Option<u64>,
}

impl<'h> Model<'h> {
    pub fn build(history: &'h [Entry]) -> Result<Self, CheckError> {
        let mut m = Model {
            history,
            ops: Vec::new(),
            line_op: Vec::with_capacity(history.len()),
            // A send is two lines and most values are sent, so this rarely rehashes.
            values: Interner::with_capacity(history.len() / 2),
            queues: Interner::with_capacity(64),
            sends: Vec::new(),
            op_send: Vec::new(),
            send_of_value: Vec::new(),
            reads: Vec::new(),
            first_read: Vec::new(),
            reads_at: FastMap::default(),
            max_read: Vec::new(),
            final_read: None,
            final_read_ns: None,
        };
        m.pair()?;
        m.index_ops()?;
        m.index_reads();
        Ok(m)
    }

    /// Pairs invocations with completions and checks the history's shape.
    fn pair(&mut self) -> Result<(), CheckError> {
        // Never shrinks, so a reused op id is caught even after the first op completed.
        let mut ids: FastMap<u64, usize> = FastMap::default();
        let mut prev: Option<&Entry> = None;
        for e in self.history {
            if let Some(p) = prev
                && (e.index <= p.index || e.time_ns < p.time_ns)
            {
                return Err(CheckError::OutOfOrder { index: e.index });
            }
            prev = Some(e);
            if e.kind == OpType::Invoke {
                if ids.insert(e.op, self.ops.len()).is_some() {
                    return Err(CheckError::DuplicateInvoke { op: e.op, index: e.index });
                }
                self.line_op.push(self.ops.len());
                self.ops.push(Op { invoke: e, done: None });
                continue;
            }
            let unmatched = CheckError::UnmatchedCompletion { op: e.op, index: e.index };
            let Some(&slot) = ids.get(&e.op) else { return Err(unmatched) };
            let op = &mut self.ops[slot];
            if op.done.is_some() {
                return Err(unmatched);
            }
            if op.invoke.process != e.process || op.invoke.call.name() != e.call.name() {
                return Err(CheckError::MismatchedCompletion { op: e.op, index: e.index });
            }
            op.done = Some(e);
            self.line_op.push(slot);
        }
        Ok(())
    }

    /// Interns sends and finds the final drain.
    fn index_ops(&mut self) -> Result<(), CheckError> {
        self.op_send = vec![None; self.ops.len()];
        for (i, op) in self.ops.iter().enumerate() {
            match op.call() {
                Call::Send(send) => {
                    let value = self.values.id(&send.value);
                    grow(&mut self.send_of_value, value);
                    if let Some(first) = self.send_of_value[value as usize] {
                        let first_index = self.ops[self.sends[first].op].invoke.index;
                        let (value, second_index) = (send.value.clone(), op.invoke.index);
                        return Err(CheckError::DuplicateSend { value, first_index, second_index });
                    }
                    let outcome = op.outcome();
                    let (mut ack, mut unplaced) = (None, None);
                    match (&send.at, outcome) {
                        (Some(at), Outcome::Ok) => {
                            let queue = self.queues.id(&at.queue);
                            match u64::try_from(at.offset) {
                                Ok(offset) => ack = Some(Pos { queue, offset }),
                                Err(_) => unplaced = Some(queue),
                            }
                        }
                        (None, Outcome::Ok) => return Err(CheckError::MissingAck { index: op.done_index() }),
                        _ => {}
                    }
                    let due_ns = send.due_ns;
                    self.send_of_value[value as usize] = Some(self.sends.len());
                    self.op_send[i] = Some(self.sends.len());
                    let message_group = send.message_group.as_deref();
                    self.sends.push(SendRec { op: i, value, outcome, ack, unplaced, due_ns, message_group });
                }
                Call::FinalRead if op.outcome() == Outcome::Ok && self.final_read.is_none() => {
                    // Operations are in invocation order: the first ok drain is the earliest.
                    self.final_read = Some(op.invoke.index);
                    self.final_read_ns = Some(op.invoke.time_ns);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Collects the messages of ok polls, in history order.
    fn index_reads(&mut self) {
        let polls = || {
            self.history.iter().filter_map(|e| match (e.kind, &e.call) {
                (OpType::Ok, Call::Poll(poll)) => Some((e.index, poll)),
                _ => None,
            })
        };
        let total: usize = polls().map(|(_, poll)| poll.msgs.len()).sum();
        self.reads.reserve_exact(total);
        self.reads_at.reserve(total / 2);
        // Messages come in runs from one queue: compare with the last queue before hashing.
        let mut last: Option<(&'h Queue, QueueId)> = None;
        for (index, poll) in polls() {
            for msg in &poll.msgs {
                let queue = match last {
                    Some((q, id)) if *q == msg.queue => id,
                    _ => self.queues.id(&msg.queue),
                };
                last = Some((&msg.queue, queue));
                let pos = Pos { queue, offset: msg.offset };
                let value = self.values.id(&msg.value);
                self.reads.push(Read { pos, value, index });
            }
        }
        self.send_of_value.resize(self.values.len(), None);
        self.first_read = vec![None; self.values.len()];
        self.max_read = vec![None; self.queues.len()];
        for r in &self.reads {
            let first = &mut self.first_read[r.value as usize];
            if first.is_none() {
                *first = Some((r.pos, r.index));
            }
            let max = &mut self.max_read[r.pos.queue as usize];
            if max.is_none_or(|(o, _)| r.pos.offset > o) {
                *max = Some((r.pos.offset, r.index));
            }
            self.reads_at
                .entry(r.pos)
                .and_modify(|at| {
                    if at.first.0 != r.value && at.others.iter().all(|(v, _)| *v != r.value) {
                        at.others.push((r.value, r.index));
                    }
                })
                .or_insert(PosReads { first: (r.value, r.index), others: Vec::new() });
        }
    }

    /// The id of a value seen in the history (sent or read).
    pub fn value_id(&self, v: &str) -> Option<ValueId> {
        self.values.get(v)
    }

    pub fn value(&self, v: ValueId) -> String {
        self.values.keys[v as usize].to_string()
    }

    pub fn queue(&self, q: QueueId) -> Queue {
        self.queues.keys[q as usize].clone()
    }

    pub fn position(&self, p: Pos) -> Position {
        Position { queue: self.queue(p.queue), offset: p.offset }
    }

    pub fn send_op(&self, s: &SendRec<'h>) -> &Op<'h> {
        &self.ops[s.op]
    }
}

/// Makes `v[id]` addressable.
fn grow<T: Clone + Default>(v: &mut Vec<T>, id: u32) {
    if v.len() <= id as usize {
        v.resize(id as usize + 1, T::default());
    }
}
