//! Planning pops on the leader, right before it proposes them.
//!
//! A pop's outcome (which offsets it delivers) used to be decided while the
//! entry was applied, on every replica, from consume-queue units. That forced
//! every replica to hold every unit a later pop could reach, which a replica
//! that installs a snapshot at a retention boundary does not (ARCHITECTURE.md,
//! "Why retention waits"). So the leader decides instead, against its applied
//! state, and the entry carries the decision ([`PopPlan`]): apply only checks
//! it against the pop state (`sm::pop::planned`).
//!
//! Where it hooks in: [`Proposer::propose_local`](crate::proposer::Proposer::propose_local),
//! the one place a leader hands a command to Raft, whether the command was
//! built here or forwarded by a follower (`service/forward.rs`). Followers
//! never plan; a command is planned again on every attempt, by whichever
//! node leads then.
//!
//! Per queue, a plan names: the expired in-flight deliveries to deliver again
//! (offset and the attempt in flight), those whose attempts ran out with their
//! units (for the DLQ), where a pop state that does not exist yet starts, and
//! the never-delivered offsets `[from, to)` with the ones matching the tag
//! filter. Outstanding proposals' plans are [`reservations`], so concurrent
//! pops plan disjoint offsets.
//!
//! Lock order: `PopPlanner::order` (tokio) → `reservations` (std) →
//! `Shared::meta` (read) → the consume queue's own locks.

pub mod reservations;

use std::sync::{Arc, Mutex, Weak};

use prost::Message as _;
use raftmq_proto::broker::{MetaCommand, PlannedDeadLetter, PlannedDelivery, Pop, PopPlan, QueuePlan, meta_command};
use raftmq_proto::rocketmq::v2::Code;
use raftmq_raft::Cmd;
use raftmq_store::consume_queue::{ConsumeQueueStore, CqUnit, tag_hash};

use self::reservations::{Claim, Reservations, Reserved};
use crate::cmd::{KIND_META, encode_meta};
use crate::error::ApiError;
use crate::sm::Shared;
use crate::sm::pop::{GroupRules, PopKey, PopQueueState, pop_queues, unit_to_pb};
use crate::sm::state::Meta;

/// At most this many units are scanned per queue for one filtered pop; the
/// rest waits for the next pop. Bounds the leader's work (and the apply's) when
/// a filter matches little of a long backlog.
pub const MAX_SCAN: usize = 16 * 1024;
/// Units read per consume-queue read while scanning.
const SCAN_CHUNK: usize = 1024;

pub struct PopPlanner {
    /// Weak: a proposer (held by tasks that end a little after their node)
    /// must not keep the replica's stores open past its stop, or a restart in
    /// the same process finds them locked.
    shared: Weak<Shared>,
    /// Held from planning an entry until it is handed to Raft, so entries enter
    /// the log in the order they were planned: a later plan starts where an
    /// earlier one ends, and reversed it would be refused as a gap.
    order: tokio::sync::Mutex<()>,
    reservations: Arc<Mutex<Reservations>>,
}

/// A command with its pops planned, and the claims it holds until its write returns.
pub struct Planned {
    pub cmd: Cmd,
    pub reserved: Reserved,
}

impl PopPlanner {
    pub fn new(shared: &Arc<Shared>) -> Self {
        Self { shared: Arc::downgrade(shared), order: tokio::sync::Mutex::new(()), reservations: Arc::default() }
    }

    /// The meta command in `cmd` (unstamped) if it holds a pop: only those are
    /// planned. A message batch is recognised by its first byte, undecoded.
    pub fn with_pops(cmd: &Cmd) -> Option<MetaCommand> {
        if cmd.0.first() != Some(&KIND_META) {
            return None;
        }
        // Undecodable: proposed as it is, and apply answers the error.
        let mut m = MetaCommand::decode(cmd.0.slice(1..)).ok()?;
        (!pops_mut(&mut m).is_empty()).then_some(m)
    }

    /// Serializes planning and handing entries to Raft (see `order`).
    pub async fn order(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.order.lock().await
    }

    /// `m` with every pop in it planned, as leader of `term`, encoded. Fails
    /// only when the replica has stopped.
    pub fn plan(&self, mut m: MetaCommand, term: u64) -> Result<Planned, ApiError> {
        let shared = self
            .shared
            .upgrade()
            .ok_or_else(|| ApiError::new(Code::HaNotAvailable, "this replica stopped: its state machine is closed"))?;
        let mut res = self.reservations.lock().unwrap_or_else(|p| p.into_inner());
        let ticket = res.begin(term);
        plan_meta(&mut m, &shared.meta(), &shared.cq, &mut res, ticket);
        Ok(Planned { cmd: encode_meta(&m), reserved: Reserved::new(self.reservations.clone(), ticket) })
    }
}

/// The pops of a meta command, in the order they are applied.
fn pops_mut(m: &mut MetaCommand) -> Vec<&mut Pop> {
    match &mut m.cmd {
        Some(meta_command::Cmd::Pop(p)) => vec![p],
        Some(meta_command::Cmd::Batch(b)) => b
            .cmds
            .iter_mut()
            .filter_map(|c| match &mut c.cmd {
                Some(meta_command::Cmd::Pop(p)) => Some(p),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Plans every pop of `m` (replacing any plan it had) under `ticket`. The
/// pops of a batch are applied in order, so each plans after the claims of
/// the ones before it.
pub fn plan_meta(m: &mut MetaCommand, meta: &Meta, cq: &ConsumeQueueStore, res: &mut Reservations, ticket: u64) {
    for p in pops_mut(m) {
        p.plan = Some(plan_pop(meta, cq, res, ticket, p));
    }
}

/// Plans `p` against the applied state (`meta`, `cq`) and the outstanding
/// claims in `res`, and records this plan's claims under `ticket`.
pub fn plan_pop(meta: &Meta, cq: &ConsumeQueueStore, res: &mut Reservations, ticket: u64, p: &Pop) -> PopPlan {
    let mut plan = PopPlan::default();
    // Apply refuses a pop of an unknown topic or a bad queue whatever the plan says.
    let Some(topic) = meta.topics.get(&p.topic) else { return plan };
    let queues = pop_queues(p);
    if p.max <= 0 || queues.iter().any(|q| *q < 0 || *q as u32 >= topic.queue_count) {
        return plan;
    }
    let rules = GroupRules::of(meta, p);
    let wanted: Vec<u64> = p.tags.iter().map(|t| tag_hash(t)).collect();
    let mut room = p.max as usize;
    for queue_id in queues {
        if room == 0 {
            break;
        }
        let key: PopKey = (p.group.clone(), p.topic.clone(), queue_id);
        let first = meta.retained.first(&p.topic, queue_id);
        let view = QueueView { cq, res, key: &key, rules, pop: p, wanted: &wanted, first };
        let (part, delivered) = view.plan(meta.pop.get(&key), room);
        room -= delivered;
        let claim = Claim {
            new_end: (part.new_to > part.new_from).then_some(part.new_to),
            offsets: part.redeliver.iter().map(|r| r.offset).chain(part.dead_letter.iter().map(|d| d.offset)).collect(),
            delivers: delivered > 0,
        };
        res.claim(ticket, key, claim);
        let empty = part.start.is_none()
            && part.redeliver.is_empty()
            && part.dead_letter.is_empty()
            && part.new_to == part.new_from;
        if !empty {
            plan.queues.push(part);
        }
    }
    plan
}

/// What one queue's plan is made from.
struct QueueView<'a> {
    cq: &'a ConsumeQueueStore,
    res: &'a Reservations,
    key: &'a PopKey,
    rules: GroupRules,
    pop: &'a Pop,
    wanted: &'a [u64],
    /// Retention's first offset of the queue.
    first: i64,
}

impl QueueView<'_> {
    /// One queue's part, delivering at most `room`, and how many it delivers.
    fn plan(&self, st: Option<&PopQueueState>, room: usize) -> (QueuePlan, usize) {
        let (topic, queue_id, now) = (&self.pop.topic, self.key.2, self.pop.now_ms);
        let mut part = QueuePlan { queue_id, ..Default::default() };
        if st.is_none() {
            part.start = Some(self.cq.min_offset(topic, queue_id).max(self.first));
        }
        // Orderly: locked while a delivery is invisible, counting the ones an
        // outstanding proposal is making.
        if self.rules.fifo && (st.is_some_and(|s| !s.all_expired(now)) || self.res.delivering(self.key)) {
            return (part, 0);
        }
        let mut delivered = 0;
        if let Some(st) = st {
            let mut expired = st.expired(now);
            if self.rules.fifo {
                expired.sort_by_key(|(offset, _)| *offset);
            }
            for (offset, inf) in expired {
                if delivered >= room {
                    break;
                }
                if self.res.is_claimed(self.key, offset) {
                    continue;
                }
                if inf.attempt.saturating_add(1) <= self.rules.max_attempts {
                    part.redeliver.push(PlannedDelivery { offset, attempt: inf.attempt });
                    delivered += 1;
                } else if let Some(unit) = self.unit_at(offset) {
                    part.dead_letter.push(PlannedDeadLetter {
                        offset,
                        attempt: inf.attempt,
                        unit: Some(unit_to_pb(&unit)),
                    });
                }
            }
        }
        let next = st.map(|s| s.next).or(part.start).unwrap_or(0);
        let from = self.res.floor(self.key).map_or(next, |f| f.max(next));
        let end = self.cq.max_offset(topic, queue_id);
        part.new_from = from;
        part.new_to = from;
        if delivered < room && from < end {
            let room = room - delivered;
            if self.wanted.is_empty() {
                part.new_to = end.min(from.saturating_add(room as i64));
                delivered += (part.new_to - from) as usize;
            } else {
                delivered += self.scan(&mut part, end, room);
            }
        }
        (part, delivered)
    }

    /// Extends `part`'s new range over units from `new_from` until `room`
    /// of them match the filter (or [`MAX_SCAN`] were read, or `end`);
    /// returns how many matched.
    fn scan(&self, part: &mut QueuePlan, end: i64, room: usize) -> usize {
        let (topic, queue_id) = (&self.pop.topic, self.key.2);
        let (mut at, mut scanned) = (part.new_from, 0);
        'scan: while at < end && scanned < MAX_SCAN {
            let units = match self.cq.read(topic, queue_id, at, SCAN_CHUNK.min(MAX_SCAN - scanned)) {
                Ok(u) if !u.is_empty() => u,
                Ok(_) => break,
                Err(e) => {
                    // The plan covers what was read; the next pop reads on.
                    tracing::warn!(topic = %topic, queue_id, at, "reading units to plan a pop failed: {e}");
                    break;
                }
            };
            for (offset, unit) in units {
                if part.matched.len() >= room {
                    break 'scan;
                }
                scanned += 1;
                if self.wanted.contains(&unit.tag_hash) {
                    part.matched.push(offset);
                }
                at = offset + 1;
            }
        }
        part.new_to = at;
        part.matched.len()
    }

    /// The unit at `offset` on this leader (to dead-letter it). Missing only if
    /// it was trimmed; then the delivery is left as it is.
    fn unit_at(&self, offset: i64) -> Option<CqUnit> {
        match self.cq.unit_at(&self.pop.topic, self.key.2, offset) {
            Ok(unit) => unit,
            Err(e) => {
                tracing::warn!(topic = %self.pop.topic, queue_id = self.key.2, offset, "reading a unit to dead-letter failed: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
