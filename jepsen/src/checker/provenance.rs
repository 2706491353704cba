//! Where read values come from: `unexpected` (no send carried it) and `aborted-read` (G1a: the
//! send that carried it definitely failed).
//!
//! A `fail` send is a promise that nothing was proposed, so reading its value means the broker
//! (or the client's error mapping) turned an unknown outcome into a definite one. Sends that
//! ended `info` may legally appear and are not flagged. Each value is reported once, at its
//! first read.

use super::anomaly::{Anomaly, AnomalyKind, Collector};
use super::model::{Model, Outcome};

pub(crate) fn check(m: &Model<'_>, out: &mut Collector) {
    let mut reported = vec![false; m.values.len()];
    for r in &m.reads {
        let v = r.value as usize;
        if reported[v] {
            continue;
        }
        match m.send_of_value[v] {
            None => {
                reported[v] = true;
                out.push(AnomalyKind::Unexpected, || Anomaly::Unexpected {
                    value: m.value(r.value),
                    at: m.position(r.pos),
                    read_index: r.index,
                });
            }
            Some(s) if m.sends[s].outcome == Outcome::Fail => {
                reported[v] = true;
                out.push(AnomalyKind::AbortedRead, || Anomaly::AbortedRead {
                    value: m.value(r.value),
                    at: m.position(r.pos),
                    send_index: m.send_op(&m.sends[s]).invoke.index,
                    read_index: r.index,
                });
            }
            Some(_) => {}
        }
    }
}
