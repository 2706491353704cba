//! The state machine's in-memory metadata and its checkpoint encoding.
//!
//! Message data lives in the CommitLog and consume queues; this is the small
//! rest: topics, consumer offsets, the last applied log id and membership.

use prost::Message as _;
use std::collections::{BTreeMap, HashMap};

use raftmq_proto::broker::{Checkpoint, ConsumerGroupConfig, OffsetUpdate, QueueNext, TopicConfig};
use raftmq_raft::pb as conv;
use raftmq_raft::{LogId, StoredMembership};

use super::attempts::PopAttempts;
use super::checkpoint::CheckpointError;
use super::dedup::{SentIds, SentIdsCapture, WindowClock};
use super::delay::DelayQueue;
use super::pop::{PopKey, PopQueueState};
use super::retention::Retained;
use super::window_runs::WindowRuns;

/// (consumer group, topic, queue id)
pub type OffsetKey = (String, String, i32);

#[derive(Debug, Default, Clone)]
pub struct Meta {
    pub topics: BTreeMap<String, TopicConfig>,
    pub offsets: HashMap<OffsetKey, i64>,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// CommitLog position right after the last applied record.
    pub next_position: u64,
    /// Pop consumption progress per (consumer group, topic, queue).
    pub pop: BTreeMap<PopKey, PopQueueState>,
    /// Recently stored message ids (idempotent sends).
    pub sent_ids: SentIds,
    pub groups: BTreeMap<String, ConsumerGroupConfig>,
    /// The idempotent-send window's clock.
    pub window_clock: WindowClock,
    /// What recent receive attempts were given (a retried receive gets the same).
    pub pop_attempts: PopAttempts,
    /// Delayed messages not yet due (not yet in their queues).
    pub delays: DelayQueue,
    /// What retention has expired.
    pub retained: Retained,
    /// The log index of the last pop applied without a plan (`sm/pop/legacy.rs`):
    /// no retention boundary may precede it.
    pub last_unplanned_pop: u64,
}

/// A checkpoint captured at one applied index, not yet complete (see [`Meta::capture`]).
pub struct Captured {
    checkpoint: Checkpoint,
    sent_ids: SentIdsCapture,
}

/// `Checkpoint.sent_ids`'s field number (proto/raftmq/broker.proto).
const SENT_IDS_FIELD: u32 = 9;

impl Captured {
    pub fn finish(self) -> Checkpoint {
        Checkpoint { sent_ids: self.sent_ids.to_pb(), ..self.checkpoint }
    }

    /// The checkpoint encoded, and the checkpoint without its idempotent-send window's ids
    /// (for its index and term). The ids are encoded from the runs they live in, after the
    /// rest: a repeated field may come in any place, so the bytes decode to what
    /// [`finish`](Self::finish) gives (cloning every id into the message first cost a copy of
    /// each id's strings at every checkpoint of every replica).
    ///
    /// Without `runs` every id is encoded (a pin, or a replica without a side file). With
    /// `runs` (a replica's regular checkpoint) the window's sealed runs are appended to that
    /// side file, those not yet in it, and the checkpoint names them and carries only the open
    /// tail: up to 200k ids (~15 MB) were rewritten at every checkpoint of every replica.
    pub fn encode(self, runs: Option<&WindowRuns>) -> Result<(Checkpoint, Vec<u8>), CheckpointError> {
        let Some(runs) = runs else {
            let mut buf = self.checkpoint.encode_to_vec();
            self.sent_ids.for_each(|id| prost::encoding::message::encode(SENT_IDS_FIELD, id, &mut buf));
            return Ok((self.checkpoint, buf));
        };
        // A regular checkpoint: the sealed runs go to the side file (synced first, I42).
        let mut c = self.checkpoint;
        c.window_runs = Some(runs.persist(&self.sent_ids)?);
        let mut buf = c.encode_to_vec();
        self.sent_ids.tail().iter().for_each(|id| prost::encoding::message::encode(SENT_IDS_FIELD, id, &mut buf));
        Ok((c, buf))
    }
}

impl Meta {
    /// `queues` is each queue's next offset, read from the consume queues at
    /// the moment of the checkpoint (after they were flushed).
    pub fn to_checkpoint(&self, queues: Vec<QueueNext>) -> Checkpoint {
        self.capture(queues).finish()
    }

    /// The state as a checkpoint, except the idempotent-send window, which is only captured
    /// (cheaply) and encoded by [`Captured::finish`], off the applying task.
    pub fn capture(&self, queues: Vec<QueueNext>) -> Captured {
        let mut offsets: Vec<OffsetUpdate> = self
            .offsets
            .iter()
            .map(|((g, t, q), o)| OffsetUpdate { group: g.clone(), topic: t.clone(), queue_id: *q, offset: *o })
            .collect();
        offsets.sort_by(|a, b| (&a.group, &a.topic, a.queue_id).cmp(&(&b.group, &b.topic, b.queue_id)));
        let checkpoint = Checkpoint {
            last_applied: conv::opt_log_id_to_pb(self.last_applied.as_ref()),
            membership_log_id: conv::opt_log_id_to_pb(self.membership.log_id().as_ref()),
            membership: Some(conv::membership_to_pb(self.membership.membership())),
            topics: self.topics.values().cloned().collect(),
            consumer_offsets: offsets,
            queues,
            next_position: self.next_position,
            pop_queues: self.pop.iter().map(|(k, st)| st.to_pb(k)).collect(),
            sent_ids: Vec::new(),
            consumer_groups: self.groups.values().cloned().collect(),
            window_clock: Some(self.window_clock.to_pb()),
            pop_attempts: self.pop_attempts.to_pb(),
            delayed: self.delays.to_pb(),
            retained: Some(self.retained.to_pb()),
            last_unplanned_pop: self.last_unplanned_pop,
            window_runs: None,
        };
        Captured { checkpoint, sent_ids: self.sent_ids.capture() }
    }

    pub fn from_checkpoint(c: &Checkpoint) -> Result<Self, conv::DecodeError> {
        let membership = match &c.membership {
            Some(m) => conv::membership_from_pb(m)?,
            None => Default::default(),
        };
        Ok(Self {
            topics: c.topics.iter().map(|t| (t.name.clone(), t.clone())).collect(),
            offsets: c
                .consumer_offsets
                .iter()
                .map(|o| ((o.group.clone(), o.topic.clone(), o.queue_id), o.offset))
                .collect(),
            last_applied: conv::opt_log_id_from_pb(c.last_applied.as_ref()),
            membership: StoredMembership::new(conv::opt_log_id_from_pb(c.membership_log_id.as_ref()), membership),
            next_position: c.next_position,
            pop: c.pop_queues.iter().map(PopQueueState::from_pb).collect(),
            sent_ids: SentIds::from_pb(&c.sent_ids),
            groups: c.consumer_groups.iter().map(|g| (g.name.clone(), g.clone())).collect(),
            window_clock: WindowClock::from_pb(c.window_clock.as_ref()),
            pop_attempts: PopAttempts::from_pb(&c.pop_attempts),
            delays: DelayQueue::from_pb(&c.delayed),
            retained: Retained::from_pb(c.retained.as_ref()),
            last_unplanned_pop: c.last_unplanned_pop,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trip() {
        let mut m = Meta::default();
        m.topics.insert("t".into(), TopicConfig { name: "t".into(), queue_count: 4, ..Default::default() });
        m.offsets.insert(("g".into(), "t".into(), 2), 17);
        m.last_applied = Some(LogId::new_term_index(3, 99));
        m.next_position = 4096;
        m.groups.insert("cg".into(), ConsumerGroupConfig { name: "cg".into(), fifo: true, max_delivery_attempts: 3 });
        m.delays.push(
            5_000,
            super::super::delay::Delayed {
                topic: "t".into(),
                queue_id: 1,
                unit: raftmq_store::consume_queue::CqUnit {
                    position: 64,
                    size: 10,
                    tag_hash: 3,
                    store_timestamp_ms: 1,
                },
            },
        );
        let c = m.to_checkpoint(vec![QueueNext { topic: "t".into(), queue_id: 2, next_offset: 20 }]);
        let back = Meta::from_checkpoint(&c).unwrap();
        assert_eq!(back.topics, m.topics);
        assert_eq!(back.offsets, m.offsets);
        assert_eq!(back.last_applied, m.last_applied);
        assert_eq!(back.next_position, 4096);
        assert_eq!(back.groups, m.groups);
        assert_eq!(back.delays, m.delays);
    }

    /// The window's ids encoded after the rest decode to the checkpoint `finish` builds, for
    /// a window of several sealed runs, some of the first forgotten, and an open tail.
    #[test]
    fn an_encoded_checkpoint_decodes_to_the_finished_one() {
        let mut m = Meta { last_applied: Some(LogId::new_term_index(2, 50)), next_position: 777, ..Default::default() };
        m.topics.insert("t".into(), TopicConfig { name: "t".into(), queue_count: 2, ..Default::default() });
        for i in 0..2_600_i64 {
            m.sent_ids.insert(raftmq_proto::broker::SentId {
                topic: "t".into(),
                message_id: format!("id-{i}"),
                queue_id: (i % 2) as i32,
                queue_offset: i / 2,
                position: i as u64 * 100,
                store_timestamp_ms: i,
                // 30 ms apart: the first 599 fall out of the 60 s window, part of the first run.
                window_clock_ms: i * 30,
            });
        }
        let (partial, payload) = m.capture(Vec::new()).encode(None).unwrap();
        let finished = m.capture(Vec::new()).finish();
        assert_eq!(finished.sent_ids.len(), 2_001);
        assert_eq!(Checkpoint::decode(&payload[..]).unwrap(), finished);
        assert!(partial.sent_ids.is_empty());
        assert_eq!((partial.last_applied, partial.next_position), (finished.last_applied, finished.next_position));

        // With a side file: the checkpoint carries the tail only and resolves to the same (I42).
        let dir = tempfile::tempdir().unwrap();
        let runs = WindowRuns::open(dir.path()).unwrap();
        let (named, payload) = m.capture(Vec::new()).encode(Some(&runs)).unwrap();
        let decoded = Checkpoint::decode(&payload[..]).unwrap();
        assert_eq!(decoded.sent_ids.len(), 2_600 % 1024, "only the open tail is inline");
        assert_eq!(decoded.window_runs, named.window_runs);
        assert_eq!(runs.resolve(decoded).unwrap(), finished);
    }
}
