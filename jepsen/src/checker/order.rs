//! Real-time order of one producer's sends: `order` (per message group, by where the values were
//! read) and `nonmonotonic-send` (per queue, by the offsets the broker acknowledged).
//!
//! Only pairs that are sequential count: send A acknowledged before send B was invoked. Then A's
//! Raft entry was committed before B's was proposed, so B must land at a higher offset of the
//! same queue. Pipelined (overlapping) sends carry no order promise. One sweep over the history:
//! a completion records what the producer has had acknowledged so far, an invocation is checked
//! against it; so each send is compared only with sends acknowledged before it began.
//!
//! For message groups, RocketMQ's FIFO promise is per group on one queue; a group whose
//! sequential sends are read on different queues (`split`) has lost that promise too.

use super::anomaly::{Anomaly, AnomalyKind, Collector, SendRef};
use super::hasher::FastMap;
use super::model::{Model, Outcome, Pos, QueueId};
use crate::history::{OpType, Process};

/// What one producer has had acknowledged so far in one message group.
#[derive(Default)]
struct GroupState {
    /// Per queue, the highest read offset among acknowledged sends (and which send).
    max_read: FastMap<QueueId, (u64, usize)>,
    /// Where the most recently acknowledged send was read.
    last_read: Option<(Pos, usize)>,
}

pub(crate) fn check(m: &Model<'_>, out: &mut Collector) {
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
            if let (Some(st), Some(pos)) = (group, read) {
                check_group(m, out, st, n, pos);
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
            }
        }
    }
}

/// Send `n`, read at `pos`, is being invoked: compare it with the group's acknowledged sends.
fn check_group(m: &Model<'_>, out: &mut Collector, st: &GroupState, n: usize, pos: Pos) {
    let s = &m.sends[n];
    let earlier = match (st.max_read.get(&pos.queue), st.last_read) {
        (Some(&(offset, prev)), _) if offset >= pos.offset => Some((prev, Pos { queue: pos.queue, offset }, false)),
        (_, Some((last, prev))) if last.queue != pos.queue => Some((prev, last, true)),
        _ => None,
    };
    let Some((prev, prev_pos, split)) = earlier else { return };
    out.push(AnomalyKind::Order, || Anomaly::Order {
        process: m.send_op(s).invoke.process,
        message_group: s.message_group.unwrap_or_default().to_string(),
        earlier: send_ref(m, prev, prev_pos),
        later: send_ref(m, n, pos),
        split,
    });
}

fn send_ref(m: &Model<'_>, n: usize, at: Pos) -> SendRef {
    let s = &m.sends[n];
    SendRef { value: m.value(s.value), at: m.position(at), send_index: m.send_op(s).invoke.index }
}
