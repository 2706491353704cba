//! Real-time order of one producer's sends: `order` (per message group, by where the values were
//! read), `nonmonotonic-send` (per queue, by the offsets the broker acknowledged), and, for
//! orderly (FIFO) consumer groups, `delivery-order` (by when the values were delivered), and for
//! every popping consumer group `redelivered-after-ack`.
//!
//! Only pairs that are sequential count: send A acknowledged before send B was invoked. Then A's
//! Raft entry was committed before B's was proposed, so B must land at a higher offset of the
//! same queue. Pipelined (overlapping) sends carry no order promise, and neither does a send
//! whose outcome is unknown (`info`: it may land at any later time, after sends invoked after
//! it). One sweep over the history: a completion records what the producer has had acknowledged
//! so far, an invocation is checked against it; so each send is compared only with sends
//! acknowledged before it began.
//!
//! For message groups, RocketMQ's FIFO promise is per group on one queue; a group whose
//! sequential sends are read on different queues (`split`) has lost that promise too.
//!
//! An orderly consumer group delivers a queue in offset order and holds it while a delivery is
//! out, so of a sequential pair A, B (stored in order) it delivers A first. Only each value's
//! first deliveries to the group count (a redelivery of an unacknowledged message is legal at
//! any time); a pair stored out of order is `order` and not also `delivery-order`.

use super::anomaly::{Anomaly, AnomalyKind, Collector, SendRef};
use super::hasher::FastMap;
use super::model::{Model, Outcome, Pos, QueueId, ValueId};
use crate::history::{Call, OpType, Process};

/// What one producer has had acknowledged so far in one message group.
#[derive(Default)]
struct GroupState {
    /// Per queue, the highest read offset among acknowledged sends (and which send).
    max_read: FastMap<QueueId, (u64, usize)>,
    /// Where the most recently acknowledged send was read.
    last_read: Option<(Pos, usize)>,
    /// Per orderly consumer group: the latest first delivery among acknowledged (and read)
    /// sends, as the invocation index of the first poll delivering it (`u64::MAX`: never
    /// delivered to that group), and which send.
    delivered: FastMap<u32, (u64, usize)>,
}

/// The first deliveries of each value to each orderly consumer group.
#[derive(Clone, Copy)]
struct Delivery {
    /// Invocation index of the earliest-invoked poll that delivered it, and that poll's completion.
    first_invoke: u64,
    first_invoke_done: u64,
    /// Completion index of the earliest-completed poll that delivered it.
    earliest_done: u64,
}

struct Deliveries<'h> {
    /// Orderly consumer groups, interned.
    groups: Vec<&'h str>,
    of: FastMap<(u32, ValueId), Delivery>,
}

impl<'h> Deliveries<'h> {
    fn build(m: &Model<'h>) -> Self {
        let mut d = Deliveries { groups: Vec::new(), of: FastMap::default() };
        for op in &m.ops {
            let Some(done) = op.done.filter(|d| d.kind == OpType::Ok) else { continue };
            let Call::Poll(poll) = &done.call else { continue };
            if !poll.orderly {
                continue;
            }
            let g = d.group_id(poll.group.as_deref().unwrap_or(""));
            for msg in &poll.msgs {
                let Some(value) = m.value_id(&msg.value) else { continue };
                let (invoke, done) = (op.invoke.index, done.index);
                d.of.entry((g, value))
                    .and_modify(|e| {
                        if invoke < e.first_invoke {
                            (e.first_invoke, e.first_invoke_done) = (invoke, done);
                        }
                        e.earliest_done = e.earliest_done.min(done);
                    })
                    .or_insert(Delivery { first_invoke: invoke, first_invoke_done: done, earliest_done: done });
            }
        }
        d
    }

    fn group_id(&mut self, g: &'h str) -> u32 {
        match self.groups.iter().position(|x| *x == g) {
            Some(i) => i as u32,
            None => {
                self.groups.push(g);
                (self.groups.len() - 1) as u32
            }
        }
    }
}

pub(crate) fn check(m: &Model<'_>, out: &mut Collector) {
    let deliveries = Deliveries::build(m);
    let mut groups: FastMap<(Process, &str), GroupState> = FastMap::default();
    let mut acked: FastMap<(Process, QueueId), (u64, usize)> = FastMap::default();
    for (line, e) in m.history.iter().enumerate() {
        let Some(n) = m.op_send[m.line_op[line]] else { continue };
        let s = &m.sends[n];
        if s.outcome != Outcome::Ok {
            continue;
        }
        let read = m.first_read[s.value as usize].map(|(pos, _)| pos);
        let group = s.message_group.map(|g| groups.entry((e.process, g)).or_default());
        if e.kind == OpType::Invoke {
            if let Some(ack) = s.ack
                && let Some(&(offset, prev)) = acked.get(&(e.process, ack.queue))
                && offset >= ack.offset
            {
                out.push(AnomalyKind::NonmonotonicSend, || Anomaly::NonmonotonicSend {
                    process: e.process,
                    earlier: send_ref(m, prev, Pos { queue: ack.queue, offset }),
                    later: send_ref(m, n, ack),
                });
            }
            if let (Some(st), Some(pos)) = (group, read)
                && !check_group(m, out, st, n, pos)
            {
                check_delivery(m, out, &deliveries, st, n);
            }
        } else {
            if let Some(ack) = s.ack {
                let max = acked.entry((e.process, ack.queue)).or_insert((ack.offset, n));
                if ack.offset > max.0 {
                    *max = (ack.offset, n);
                }
            }
            if let (Some(st), Some(pos)) = (group, read) {
                let max = st.max_read.entry(pos.queue).or_insert((pos.offset, n));
                if pos.offset > max.0 {
                    *max = (pos.offset, n);
                }
                st.last_read = Some((pos, n));
                for g in 0..deliveries.groups.len() as u32 {
                    let first = deliveries.of.get(&(g, s.value)).map_or(u64::MAX, |d| d.first_invoke);
                    let latest = st.delivered.entry(g).or_insert((first, n));
                    if first > latest.0 {
                        *latest = (first, n);
                    }
                }
            }
        }
    }
    inverted_in_one_poll(m, out);
    redelivered_after_ack(m, out);
}

/// Send `n`, read at `pos`, is being invoked: compare it with the group's acknowledged sends.
/// Returns whether it was found out of order.
fn check_group(m: &Model<'_>, out: &mut Collector, st: &GroupState, n: usize, pos: Pos) -> bool {
    let s = &m.sends[n];
    let earlier = match (st.max_read.get(&pos.queue), st.last_read) {
        (Some(&(offset, prev)), _) if offset >= pos.offset => Some((prev, Pos { queue: pos.queue, offset }, false)),
        (_, Some((last, prev))) if last.queue != pos.queue => Some((prev, last, true)),
        _ => None,
    };
    let Some((prev, prev_pos, split)) = earlier else { return false };
    out.push(AnomalyKind::Order, || Anomaly::Order {
        process: m.send_op(s).invoke.process,
        message_group: s.message_group.unwrap_or_default().to_string(),
        earlier: send_ref(m, prev, prev_pos),
        later: send_ref(m, n, pos),
        split,
    });
    true
}

/// Send `n` (stored after every send its producer had acknowledged in its message group) is
/// being invoked: in each orderly consumer group that delivered it, its earliest delivery must
/// not have completed before a poll delivering each of those sends was invoked.
fn check_delivery(m: &Model<'_>, out: &mut Collector, d: &Deliveries<'_>, st: &GroupState, n: usize) {
    let s = &m.sends[n];
    for (&g, &(first, prev)) in &st.delivered {
        let Some(later) = d.of.get(&(g, s.value)) else { continue };
        if first <= later.earliest_done {
            continue;
        }
        let earlier_delivery = d.of.get(&(g, m.sends[prev].value)).map(|e| e.first_invoke_done);
        out.push(AnomalyKind::DeliveryOrder, || Anomaly::DeliveryOrder {
            group: d.groups[g as usize].to_string(),
            process: m.send_op(s).invoke.process,
            message_group: s.message_group.unwrap_or_default().to_string(),
            earlier: send_ref(m, prev, ack_pos(m, prev)),
            later: send_ref(m, n, ack_pos(m, n)),
            later_delivery_index: later.earliest_done,
            earlier_delivery_index: earlier_delivery,
            same_poll: false,
        });
    }
}

/// One orderly poll listing B before A, where A was acknowledged before B was invoked (same
/// producer and message group) and B sits at a higher offset of A's queue: the broker handed out
/// a queue out of offset order. (B at a lower offset is the storage's fault, reported as `order`.)
fn inverted_in_one_poll(m: &Model<'_>, out: &mut Collector) {
    for op in &m.ops {
        let Some(done) = op.done.filter(|d| d.kind == OpType::Ok) else { continue };
        let Call::Poll(poll) = &done.call else { continue };
        if !poll.orderly {
            continue;
        }
        // Per (producer, message group): the earlier-listed send invoked last, and where it was.
        let mut latest: FastMap<(Process, &str), (u64, usize, u64)> = FastMap::default();
        for msg in &poll.msgs {
            let Some(n) = m.value_id(&msg.value).and_then(|v| m.send_of_value[v as usize]) else { continue };
            let s = &m.sends[n];
            let (Some(mg), Some(ack), Outcome::Ok) = (s.message_group, s.ack, s.outcome) else { continue };
            let sop = m.send_op(s);
            let key = (sop.invoke.process, mg);
            if let Some(&(b_invoke, b, b_offset)) = latest.get(&key)
                && sop.done_index() < b_invoke
                && m.sends[b].ack.is_some_and(|p| p.queue == ack.queue)
                && b_offset > msg.offset
            {
                out.push(AnomalyKind::DeliveryOrder, || Anomaly::DeliveryOrder {
                    group: poll.group.clone().unwrap_or_default(),
                    process: sop.invoke.process,
                    message_group: mg.to_string(),
                    earlier: send_ref(m, n, ack),
                    later: send_ref(m, b, ack_pos(m, b)),
                    later_delivery_index: done.index,
                    earlier_delivery_index: Some(done.index),
                    same_poll: true,
                });
            }
            let entry = latest.entry(key).or_insert((sop.invoke.index, n, msg.offset));
            if sop.invoke.index > entry.0 {
                *entry = (sop.invoke.index, n, msg.offset);
            }
        }
    }
}

/// A value delivered to a consumer group by a pop invoked after an ack of it by that group
/// completed `ok`: an acknowledged message is consumed and never delivered again. Any pop
/// counts, orderly or not; pulls by offset (`pop` unset) deliver to no group.
fn redelivered_after_ack(m: &Model<'_>, out: &mut Collector) {
    let mut acked: FastMap<(&str, &str), u64> = FastMap::default();
    for op in &m.ops {
        if let (Call::Ack(a), Outcome::Ok) = (&op.invoke.call, op.outcome()) {
            let at = acked.entry((a.group.as_str(), a.value.as_str())).or_insert(u64::MAX);
            *at = (*at).min(op.done_index());
        }
    }
    if acked.is_empty() {
        return;
    }
    for op in &m.ops {
        let Some(done) = op.done.filter(|d| d.kind == OpType::Ok) else { continue };
        let Call::Poll(poll) = &done.call else { continue };
        if !poll.is_pop() {
            continue;
        }
        let group = poll.group.as_deref().unwrap_or("");
        for msg in &poll.msgs {
            let Some(&ack_index) = acked.get(&(group, msg.value.as_str())) else { continue };
            if ack_index < op.invoke.index {
                out.push(AnomalyKind::RedeliveredAfterAck, || Anomaly::RedeliveredAfterAck {
                    group: group.to_string(),
                    value: msg.value.clone(),
                    at: crate::history::Position { queue: msg.queue.clone(), offset: msg.offset },
                    ack_index,
                    read_index: done.index,
                });
            }
        }
    }
}

fn ack_pos(m: &Model<'_>, n: usize) -> Pos {
    m.sends[n].ack.unwrap_or(Pos { queue: 0, offset: 0 })
}

fn send_ref(m: &Model<'_>, n: usize, at: Pos) -> SendRef {
    let s = &m.sends[n];
    SendRef { value: m.value(s.value), at: m.position(at), send_index: m.send_op(s).invoke.index }
}
