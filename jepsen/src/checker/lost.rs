//! Lost and unseen: acknowledged sends that no consumer ever read.
//!
//! Missing from the reads is only evidence of loss when the reads should have covered the
//! message. `lost` uses the queue itself as that evidence (a later offset was read, so the
//! consumer went past the slot); `unseen` uses the final drain (every queue was read to its end
//! after producers stopped). Sends that ended `info` or `fail` are never counted here.

use super::anomaly::{Anomaly, AnomalyKind, Collector};
use super::model::Model;
use crate::history::Position;

pub(crate) fn check(m: &Model<'_>, out: &mut Collector) {
    for s in &m.sends {
        let Some(ack) = s.ack else { continue };
        if m.first_read[s.value as usize].is_some() {
            continue;
        }
        let op = m.send_op(s);
        let later = m.max_read[ack.queue as usize].filter(|(max, _)| *max > ack.offset);
        if let Some((offset, read_index)) = later {
            out.push(AnomalyKind::Lost, || Anomaly::Lost {
                value: m.value(s.value),
                at: m.position(ack),
                send_index: op.invoke.index,
                later_read: Position { queue: m.queue(ack.queue), offset },
                read_index,
            });
        } else if m.final_read.is_some_and(|drain| op.done_index() < drain) {
            out.push(AnomalyKind::Unseen, || Anomaly::Unseen {
                value: m.value(s.value),
                at: m.position(ack),
                send_index: op.invoke.index,
            });
        }
    }
}
