//! Receive attempts of orderly (FIFO) groups: what each (consumer group,
//! attempt id) was given.
//!
//! A client whose ReceiveMessage response was lost retries it with the same
//! `attempt_id`. Popping afresh would leave the first batch invisible until
//! its invisible time ends, and for an orderly group that locks the queues it
//! came from for as long. So the pop of a known attempt answers the
//! deliveries of the first one that are still in flight, with the same epochs
//! and so the same receipt handles. (A concurrent group's lost batch only
//! comes back later; it is not worth remembering every batch for.)
//!
//! This is replicated state like the rest of the pop state: it changes only in
//! `apply`, is aged by the `now_ms` the pop carries (never a replica's clock),
//! and is checkpointed, so every replica answers a retry the same way.

use std::collections::{BTreeMap, BTreeSet};

use raftmq_proto::broker::{PopAttempt, Popped};

/// At most this many attempts are remembered; past it the soonest to expire
/// are forgotten first (a retry of one of those gets a fresh pop).
pub const MAX_ATTEMPTS_KEPT: usize = 65_536;

/// (consumer group, attempt id)
type AttemptKey = (String, String);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Attempt {
    topic: String,
    popped: Vec<Popped>,
    expires_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PopAttempts {
    by_key: BTreeMap<AttemptKey, Attempt>,
    /// (expires_ms, key) of every entry of `by_key`.
    by_expiry: BTreeSet<(i64, AttemptKey)>,
}

impl PopAttempts {
    /// What attempt `attempt_id` of `group` was given on `topic`, if it is remembered.
    pub fn get(&self, group: &str, attempt_id: &str, topic: &str) -> Option<&[Popped]> {
        let a = self.by_key.get(&(group.to_owned(), attempt_id.to_owned()))?;
        (a.topic == topic).then_some(a.popped.as_slice())
    }

    /// Remembers a non-empty pop until its deliveries' invisible time ends.
    pub fn record(&mut self, group: &str, attempt_id: &str, topic: &str, popped: Vec<Popped>, expires_ms: i64) {
        let key = (group.to_owned(), attempt_id.to_owned());
        if let Some(old) = self.by_key.remove(&key) {
            self.by_expiry.remove(&(old.expires_ms, key.clone()));
        }
        self.by_expiry.insert((expires_ms, key.clone()));
        self.by_key.insert(key, Attempt { topic: topic.to_owned(), popped, expires_ms });
        while self.by_key.len() > MAX_ATTEMPTS_KEPT {
            self.pop_soonest();
        }
    }

    /// Forgets every attempt whose deliveries were all visible again by `now_ms`.
    pub fn expire(&mut self, now_ms: i64) {
        while self.by_expiry.first().is_some_and(|(e, _)| *e <= now_ms) {
            self.pop_soonest();
        }
    }

    /// Forgets a group's attempts (the group was deleted).
    pub fn remove_group(&mut self, group: &str) {
        self.by_key.retain(|(g, _), _| g != group);
        self.by_expiry.retain(|(_, (g, _))| g != group);
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    fn pop_soonest(&mut self) {
        if let Some((_, key)) = self.by_expiry.pop_first() {
            self.by_key.remove(&key);
        }
    }

    pub fn to_pb(&self) -> Vec<PopAttempt> {
        self.by_key
            .iter()
            .map(|((group, attempt_id), a)| PopAttempt {
                group: group.clone(),
                attempt_id: attempt_id.clone(),
                topic: a.topic.clone(),
                popped: a.popped.clone(),
                expires_ms: a.expires_ms,
            })
            .collect()
    }

    pub fn from_pb(list: &[PopAttempt]) -> Self {
        let mut out = Self::default();
        for a in list {
            out.record(&a.group, &a.attempt_id, &a.topic, a.popped.clone(), a.expires_ms);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn popped(offset: i64) -> Popped {
        Popped { offset, attempt: 1, epoch: 9, queue_id: 0 }
    }

    #[test]
    fn remembered_until_expiry_per_group_and_topic() {
        let mut a = PopAttempts::default();
        a.record("g", "a1", "t", vec![popped(3), popped(4)], 1_000);
        a.record("g", "a2", "t", vec![popped(5)], 2_000);
        assert_eq!(a.get("g", "a1", "t").map(<[Popped]>::len), Some(2));
        assert!(a.get("g", "a1", "other-topic").is_none());
        assert!(a.get("other-group", "a1", "t").is_none());
        a.expire(999);
        assert_eq!(a.len(), 2);
        a.expire(1_000);
        assert!(a.get("g", "a1", "t").is_none());
        assert!(a.get("g", "a2", "t").is_some());
        // Re-recording an attempt replaces it and its expiry.
        a.record("g", "a2", "t", vec![popped(6)], 5_000);
        a.expire(2_000);
        assert_eq!(a.get("g", "a2", "t"), Some(&[popped(6)][..]));
        assert_eq!(PopAttempts::from_pb(&a.to_pb()), a);
        a.remove_group("g");
        assert!(a.is_empty());
    }

    #[test]
    fn bounded_by_forgetting_the_soonest_to_expire() {
        let mut a = PopAttempts::default();
        for i in 0..=MAX_ATTEMPTS_KEPT as i64 {
            a.record("g", &i.to_string(), "t", vec![popped(i)], 10_000 - i);
        }
        assert_eq!(a.len(), MAX_ATTEMPTS_KEPT);
        let last = MAX_ATTEMPTS_KEPT.to_string();
        assert!(a.get("g", &last, "t").is_none(), "expires soonest, so forgotten first");
        assert!(a.get("g", "0", "t").is_some());
    }
}
