//! The invariants, checked against every live replica after every few simulation steps.
//!
//! Raft (Ongaro's Figure 3), over what the replicas expose:
//! - **election safety**: at most one replica leads in any term;
//! - **log matching**: if two logs hold an entry with the same index and term, the logs are
//!   identical (same bytes) up to and including that index;
//! - **leader completeness**: an entry seen committed while the observer's term was `t` is in the
//!   log of every leader of a term above `t`;
//! - **state machine safety**: no two replicas apply different entries at one index (and one
//!   index is never committed with two different entries).
//!
//! The queue:
//! - **no offset with two values**: across replicas and time, a (queue, offset) holds one value;
//! - **no acknowledged value lost**: an acknowledged value is at its acknowledged (queue, offset)
//!   wherever that offset exists, and, once the group has healed, on every replica;
//! - nothing is read that was never sent.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use openraft::RaftLogReader;
use openraft::ServerState;
use openraft::type_config::async_runtime::WatchReceiver;
use raftmq_broker::reader::{TagFilter, read_queue};
use raftmq_raft::{Entry, EntryPayload};

use crate::world::{Outcome, QUEUES, Replica, TOPIC, World};

/// A log entry as compared across replicas: term and a hash of its bytes.
type Slot = (u64, u64);

#[derive(Default)]
pub struct Checker {
    leaders: BTreeMap<u64, u64>,
    /// index → (term, hash, the observer's term when first seen committed).
    committed: BTreeMap<u64, (u64, u64, u64)>,
    /// index → hash of the entry some replica applied there.
    applied: BTreeMap<u64, u64>,
    /// (queue, offset) → value, across replicas and time, plus what clients were told.
    offsets: BTreeMap<(i32, i64), String>,
    /// Per (node, boot): the replica's log as last read.
    logs: BTreeMap<(u64, u32), Vec<Option<Slot>>>,
    /// Per (node, boot): entries below this index are committed in `logs` (never change).
    stable: BTreeMap<(u64, u32), u64>,
    /// Per (node, boot, queue): offsets below this were already read.
    read_upto: BTreeMap<(u64, u32, i32), i64>,
    /// A digest of everything observed (each check's Raft metrics and every log entry read, bytes
    /// included), to compare two runs of one seed.
    pub digest: u64,
}

fn hash_entry(e: &Entry) -> u64 {
    let mut h = DefaultHasher::new();
    match &e.payload {
        EntryPayload::Blank => 0u8.hash(&mut h),
        EntryPayload::Normal(c) => {
            1u8.hash(&mut h);
            c.0.hash(&mut h);
        }
        EntryPayload::Membership(m) => {
            2u8.hash(&mut h);
            format!("{m:?}").hash(&mut h);
        }
    }
    h.finish()
}

impl Checker {
    /// Checks every invariant against the live replicas; `Err` names the one broken.
    pub fn check(&mut self, world: &World, now_ms: u64) -> Result<(), String> {
        let replicas = world.replicas();
        let mut leaders_now = Vec::new();
        for (&id, r) in &replicas {
            let m = r.raft.metrics().borrow_watched().clone();
            self.observe(&(id, now_ms, m.current_term, m.state, m.last_log_index, m.local_committed, m.last_applied));
            if m.state == ServerState::Leader {
                let prev = *self.leaders.entry(m.current_term).or_insert(id);
                if prev != id {
                    return Err(format!("election safety: n{prev} and n{id} both led term {}", m.current_term));
                }
                leaders_now.push((id, m.current_term));
            }
            self.read_log(id, r)?;
            let key = (id, r.boot);
            let log = &self.logs[&key];
            let committed = m.local_committed.map_or(0, |l| l.index);
            for i in self.stable.get(&key).copied().unwrap_or(0)..=committed {
                let Some(Some((term, hash))) = log.get(i as usize) else { continue };
                let seen = self.committed.entry(i).or_insert((*term, *hash, m.current_term));
                if (seen.0, seen.1) != (*term, *hash) {
                    return Err(format!("state machine safety: index {i} committed with two different entries"));
                }
                seen.2 = seen.2.min(m.current_term);
            }
            self.stable.insert(key, committed + 1);
            let applied = m.last_applied.map_or(0, |l| l.index);
            for i in 0..=applied {
                let Some(Some((_, hash))) = log.get(i as usize) else { continue };
                if *self.applied.entry(i).or_insert(*hash) != *hash {
                    return Err(format!("state machine safety: n{id} applied another entry at index {i}"));
                }
            }
        }
        self.log_matching().map_err(|e| format!("{e}\n{}", describe(&replicas, &e)))?;
        for (id, term) in leaders_now {
            let log = &self.logs[&(id, replicas[&id].boot)];
            for (&i, &(t, h, seen)) in &self.committed {
                if seen < term && log.get(i as usize).copied().flatten() != Some((t, h)) {
                    return Err(format!(
                        "leader completeness: n{id}, leader of term {term}, lacks index {i} (committed by term {seen})"
                    ));
                }
            }
        }
        for (&id, r) in &replicas {
            self.read_queues(world, id, r)?;
        }
        self.acked_are_in_place(world)
    }

    fn observe(&mut self, what: &impl std::fmt::Debug) {
        let mut h = DefaultHasher::new();
        self.digest.hash(&mut h);
        format!("{what:?}").hash(&mut h);
        self.digest = h.finish();
    }

    /// Re-reads the replica's log from its last known committed index.
    fn read_log(&mut self, id: u64, r: &Replica) -> Result<(), String> {
        let key = (id, r.boot);
        let from = self.stable.get(&key).copied().unwrap_or(0);
        let mut log = r.shared.log.clone();
        let entries = futures::executor::block_on(log.try_get_log_entries(from..))
            .map_err(|e| format!("n{id}: reading its log: {e}"))?;
        let mut read = Vec::with_capacity(entries.len());
        let slots = self.logs.entry(key).or_default();
        slots.truncate(from as usize);
        for e in entries {
            let i = e.log_id.index as usize;
            let slot = (e.log_id.leader_id.term, hash_entry(&e));
            slots.resize(i, None);
            slots.push(Some(slot));
            read.push((i, slot));
        }
        self.observe(&(id, read));
        Ok(())
    }

    /// Same index and term ⇒ same bytes there and at every index below, for every pair of logs.
    fn log_matching(&self) -> Result<(), String> {
        let live: Vec<_> = self.logs.iter().filter(|(k, _)| self.stable.contains_key(k)).collect();
        for (a, (ka, la)) in live.iter().enumerate() {
            for (kb, lb) in &live[a + 1..] {
                let top = (0..la.len().min(lb.len())).rev().find(|&i| match (la[i], lb[i]) {
                    (Some((ta, _)), Some((tb, _))) => ta == tb,
                    _ => false,
                });
                let Some(top) = top else { continue };
                if let Some(i) = (0..=top).find(|&i| la[i] != lb[i] && la[i].is_some() && lb[i].is_some()) {
                    return Err(format!(
                        "log matching: n{} and n{} agree on the term at index {top} but differ at index {i}: {:?} vs {:?}",
                        ka.0, kb.0, la[i], lb[i]
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reads the replica's queues past what was read before and records every (offset, value).
    fn read_queues(&mut self, world: &World, id: u64, r: &Replica) -> Result<(), String> {
        for q in 0..QUEUES {
            let key = (id, r.boot, q);
            let mut from = self.read_upto.get(&key).copied().unwrap_or(0);
            loop {
                let read = read_queue(&r.shared, TOPIC, q, from, 512, &TagFilter::All)
                    .map_err(|e| format!("n{id}: reading queue {q} at {from}: {}", e.message))?;
                if read.messages.is_empty() {
                    break;
                }
                for (offset, msg) in read.messages {
                    if offset != from {
                        return Err(format!("n{id}: queue {q} skips from offset {from} to {offset}"));
                    }
                    let value = String::from_utf8_lossy(&msg.body).into_owned();
                    if !world.history().sent.contains_key(&value) {
                        return Err(format!("n{id}: queue {q} offset {offset} holds {value:?}, never sent"));
                    }
                    self.record(q, offset, &value, &format!("n{id}"))?;
                    from = offset + 1;
                }
            }
            self.read_upto.insert(key, from);
        }
        Ok(())
    }

    fn record(&mut self, q: i32, offset: i64, value: &str, who: &str) -> Result<(), String> {
        let held = self.offsets.entry((q, offset)).or_insert_with(|| value.to_string());
        if held != value {
            return Err(format!("queue {q} offset {offset} holds {held:?} and, per {who}, {value:?}"));
        }
        Ok(())
    }

    fn acked_are_in_place(&mut self, world: &World) -> Result<(), String> {
        let acked: Vec<(String, i32, i64)> = world
            .history()
            .sent
            .iter()
            .filter_map(|(v, o)| match o {
                Outcome::Acked(q, off) => Some((v.clone(), *q, *off)),
                _ => None,
            })
            .collect();
        for (v, q, off) in acked {
            self.record(q, off, &v, "the acknowledgement")?;
        }
        Ok(())
    }

    /// Forgets a crashed replica's views (its next boot is read afresh).
    pub fn forget(&mut self, id: u64) {
        self.logs.retain(|k, _| k.0 != id);
        self.stable.retain(|k, _| k.0 != id);
        self.read_upto.retain(|k, _| k.0 != id);
    }

    /// After healing: every replica applied the same last entry, holds every acknowledged
    /// value at its offset, and every queue is gap-free from 0 and identical everywhere.
    pub fn converged(&self, world: &World) -> Result<(), String> {
        let replicas = world.replicas();
        let applied: BTreeSet<_> =
            replicas.values().map(|r| r.raft.metrics().borrow_watched().last_applied.map(|l| l.index)).collect();
        if replicas.len() != 3 || applied.len() != 1 {
            return Err(format!("not converged: {} replicas running, applied {applied:?}", replicas.len()));
        }
        let mut per_replica = BTreeMap::new();
        for (&id, r) in &replicas {
            let mut all = BTreeMap::new();
            for q in 0..QUEUES {
                let read = read_queue(&r.shared, TOPIC, q, 0, 1 << 20, &TagFilter::All)
                    .map_err(|e| format!("n{id}: reading queue {q}: {}", e.message))?;
                for (i, (offset, msg)) in read.messages.into_iter().enumerate() {
                    if offset != i as i64 {
                        return Err(format!("n{id}: queue {q} has a gap before offset {offset}"));
                    }
                    all.insert((q, offset), String::from_utf8_lossy(&msg.body).into_owned());
                }
            }
            for (v, o) in &world.history().sent {
                if let Outcome::Acked(q, off) = o
                    && all.get(&(*q, *off)) != Some(v)
                {
                    return Err(format!("acknowledged {v:?} at queue {q} offset {off} is lost on n{id}"));
                }
            }
            per_replica.insert(id, all);
        }
        let first = per_replica.values().next();
        if per_replica.values().any(|a| Some(a) != first) {
            return Err("the replicas' queues differ after healing".into());
        }
        Ok(())
    }
}

/// For a failure report: every live replica's view and its fresh log entries around the
/// index named in `failure` ("index N").
fn describe(replicas: &BTreeMap<u64, Replica>, failure: &str) -> String {
    let index = failure
        .rsplit("index ")
        .next()
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    let mut out = String::new();
    for (id, r) in replicas {
        let m = r.raft.metrics().borrow_watched().clone();
        let mut log = r.shared.log.clone();
        let entries = futures::executor::block_on(log.try_get_log_entries(index.saturating_sub(1)..index + 2));
        out.push_str(&format!(
            "  n{id} (boot {}): {:?} term {} last_log {:?} committed {:?} applied {:?}\n",
            r.boot,
            m.state,
            m.current_term,
            m.last_log_index,
            m.local_committed.map(|l| l.index),
            m.last_applied.map(|l| l.index)
        ));
        for e in entries.unwrap_or_default() {
            out.push_str(&format!("      {} {} hash {:x}\n", e.log_id, e.payload, hash_entry(&e)));
        }
    }
    out
}
