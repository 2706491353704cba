//! The value ↔ position map must be a bijection: `duplicate` (a value in two slots),
//! `inconsistent-offset` (a slot read with two values) and `ack-offset-mismatch` (a slot
//! acknowledged to one send but holding, or acknowledged to, another value).
//!
//! Offsets are the per-queue total order the whole design rests on (a queue offset is assigned
//! once, in log order, on every replica), so any of these means replicas or a stale leader
//! disagree about the log. `inconsistent-offset` uses reads only; acknowledgements are compared
//! with reads and with each other by `ack-offset-mismatch`; `duplicate` uses both.

use std::collections::BTreeMap;

use super::anomaly::{Anomaly, AnomalyKind, Collector, Evidence};
use super::hasher::FastMap;
use super::model::{Model, Pos, ValueId};

pub(crate) fn check(m: &Model<'_>, out: &mut Collector) {
    duplicates(m, out);
    inconsistent(m, out);
    ack_mismatch(m, out);
}

fn duplicates(m: &Model<'_>, out: &mut Collector) {
    // Value ids follow first appearance, so a BTreeMap keeps the report in history order.
    let mut extra: BTreeMap<ValueId, Vec<Pos>> = BTreeMap::new();
    let mut note = |value: ValueId, first: Pos, pos: Pos| {
        if pos != first {
            let seen = extra.entry(value).or_insert_with(|| vec![first]);
            if !seen.contains(&pos) {
                seen.push(pos);
            }
        }
    };
    for r in &m.reads {
        if let Some((first, _)) = m.first_read[r.value as usize] {
            note(r.value, first, r.pos);
        }
    }
    for s in &m.sends {
        if let (Some(ack), Some((first, _))) = (s.ack, m.first_read[s.value as usize]) {
            note(s.value, first, ack);
        }
    }
    for (value, mut positions) in extra {
        positions.sort_unstable();
        out.push(AnomalyKind::Duplicate, || Anomaly::Duplicate {
            value: m.value(value),
            positions: positions.iter().map(|p| m.position(*p)).collect(),
        });
    }
}

fn inconsistent(m: &Model<'_>, out: &mut Collector) {
    let mut conflicts: Vec<(&Pos, _)> = m.reads_at.iter().filter(|(_, at)| !at.others.is_empty()).collect();
    conflicts.sort_unstable_by_key(|(pos, at)| (at.first.1, **pos));
    for (pos, at) in conflicts {
        let all = std::iter::once(&at.first).chain(&at.others);
        let (values, read_indexes) = all.map(|(v, i)| (m.value(*v), *i)).unzip();
        out.push(AnomalyKind::InconsistentOffset, || Anomaly::InconsistentOffset {
            at: m.position(*pos),
            values,
            read_indexes,
        });
    }
}

fn ack_mismatch(m: &Model<'_>, out: &mut Collector) {
    let mut acked: FastMap<Pos, usize> = FastMap::default();
    for (n, s) in m.sends.iter().enumerate() {
        let Some(ack) = s.ack else { continue };
        let send_index = m.send_op(s).invoke.index;
        let mut report = |other: ValueId, other_index: u64, evidence: Evidence| {
            out.push(AnomalyKind::AckOffsetMismatch, || Anomaly::AckOffsetMismatch {
                at: m.position(ack),
                acked_value: m.value(s.value),
                send_index,
                other_value: m.value(other),
                other_index,
                evidence,
            });
        };
        if let Some(at) = m.reads_at.get(&ack) {
            let all = std::iter::once(&at.first).chain(&at.others);
            if let Some((other, index)) = all.filter(|(v, _)| *v != s.value).min_by_key(|(_, i)| *i) {
                report(*other, *index, Evidence::Read);
            }
        }
        if let Some(&prev) = acked.get(&ack) {
            let prev = &m.sends[prev];
            report(prev.value, m.send_op(prev).invoke.index, Evidence::Ack);
        } else {
            acked.insert(ack, n);
        }
    }
}
