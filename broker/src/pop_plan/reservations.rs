//! What the leader's outstanding pop proposals planned, so that the next plan
//! does not hand out the same offsets again.
//!
//! A plan reads the applied state, which does not yet show the pops proposed
//! but not applied. Without this, two receives of one queue planned a
//! millisecond apart would both plan the same new offsets (the second would
//! be trimmed to nothing at apply) and the same redeliveries (the second
//! dropped): correct, but the second consumer gets an empty reply under
//! exactly the load that pipelines proposals.
//!
//! Rules:
//! - A proposal's claims (per queue: the end of its new range, the offsets it
//!   redelivers or dead-letters, whether it delivers anything) are held from
//!   planning until its write returns, applied or failed ([`Reserved`] drops
//!   them). When it returns applied, the applied state shows what it did;
//!   when it failed, its offsets are free again.
//! - A new plan starts its new range at the highest claimed end, skips claimed
//!   offsets, and treats an orderly queue with a delivering claim as locked.
//! - Everything is forgotten when the leader's term changes: a new leader
//!   plans from its applied state. Entries of the old term may still commit
//!   after that; apply trims or drops whatever of theirs overlaps.
//!
//! Claims are a hint for efficiency, never for safety: apply checks every
//! plan against the pop state (`sm::pop::planned`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::sm::pop::PopKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claim {
    /// The end of the new range planned (exclusive), if one was.
    pub new_end: Option<i64>,
    /// In-flight offsets planned for redelivery or the DLQ.
    pub offsets: Vec<i64>,
    /// Whether anything is delivered (an orderly queue is locked by it).
    pub delivers: bool,
}

#[derive(Debug, Default)]
pub struct Reservations {
    /// The leader term the claims were made in.
    term: u64,
    next_ticket: u64,
    /// Claims per queue, with the ticket of the proposal that holds each.
    by_key: HashMap<PopKey, Vec<(u64, Claim)>>,
    /// The queues each ticket holds claims on.
    by_ticket: HashMap<u64, Vec<PopKey>>,
}

impl Reservations {
    /// A ticket for a proposal planned as leader of `term`; claims of another term are forgotten.
    pub fn begin(&mut self, term: u64) -> u64 {
        if term != self.term {
            self.by_key.clear();
            self.by_ticket.clear();
            self.term = term;
        }
        self.next_ticket += 1;
        self.next_ticket
    }

    /// Where a new plan's new range starts at the earliest.
    pub fn floor(&self, key: &PopKey) -> Option<i64> {
        self.by_key.get(key)?.iter().filter_map(|(_, c)| c.new_end).max()
    }

    pub fn is_claimed(&self, key: &PopKey, offset: i64) -> bool {
        self.by_key.get(key).is_some_and(|cs| cs.iter().any(|(_, c)| c.offsets.contains(&offset)))
    }

    /// An outstanding proposal delivers from this queue.
    pub fn delivering(&self, key: &PopKey) -> bool {
        self.by_key.get(key).is_some_and(|cs| cs.iter().any(|(_, c)| c.delivers))
    }

    pub fn claim(&mut self, ticket: u64, key: PopKey, claim: Claim) {
        if claim == Claim::default() {
            return;
        }
        self.by_ticket.entry(ticket).or_default().push(key.clone());
        self.by_key.entry(key).or_default().push((ticket, claim));
    }

    pub fn release(&mut self, ticket: u64) {
        for key in self.by_ticket.remove(&ticket).unwrap_or_default() {
            if let Some(cs) = self.by_key.get_mut(&key) {
                cs.retain(|(t, _)| *t != ticket);
                if cs.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }

    /// Nothing is held.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty() && self.by_ticket.is_empty()
    }
}

/// One proposal's claims; dropping it (the write returned, failed or was
/// abandoned at its deadline) releases them.
pub struct Reserved {
    reservations: Arc<Mutex<Reservations>>,
    ticket: u64,
}

impl Reserved {
    pub fn new(reservations: Arc<Mutex<Reservations>>, ticket: u64) -> Self {
        Self { reservations, ticket }
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.reservations.lock().unwrap_or_else(|p| p.into_inner()).release(self.ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(q: i32) -> PopKey {
        ("g".into(), "t".into(), q)
    }

    #[test]
    fn claims_are_held_per_ticket_and_forgotten_with_the_term() {
        let mut r = Reservations::default();
        let a = r.begin(3);
        r.claim(a, key(0), Claim { new_end: Some(10), offsets: vec![2], delivers: true });
        let b = r.begin(3);
        r.claim(b, key(0), Claim { new_end: Some(20), offsets: vec![], delivers: true });
        r.claim(b, key(1), Claim { new_end: None, offsets: vec![7], delivers: false });
        r.claim(b, key(2), Claim::default());
        assert_eq!(r.floor(&key(0)), Some(20));
        assert!(r.is_claimed(&key(0), 2) && r.is_claimed(&key(1), 7) && !r.is_claimed(&key(1), 2));
        assert!(r.delivering(&key(0)) && !r.delivering(&key(1)) && !r.delivering(&key(2)));
        r.release(b);
        assert_eq!(r.floor(&key(0)), Some(10), "a's claim outlives b's");
        assert!(!r.is_claimed(&key(1), 7));
        let c = r.begin(4);
        assert_eq!(r.floor(&key(0)), None, "a new term plans from the applied state");
        r.release(a); // a late release of the old term changes nothing
        r.release(c);
        assert!(r.is_empty());
    }
}
