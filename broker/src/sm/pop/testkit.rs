//! Fixtures for pop tests: a state with one topic, a consume queue with units,
//! and pops and plans built by hand.

use raftmq_proto::broker::{ConsumerGroupConfig, Pop, PopTarget, TopicConfig, command_reply};
use raftmq_proto::rocketmq::v2::Code;
use raftmq_store::consume_queue::{ConsumeQueueStore, CqUnit, tag_hash};

use super::{PopKey, PopQueueState, apply_ack, apply_pop};
use crate::sm::state::Meta;

pub const TOPIC: &str = "t";
/// Small segments, so a test can trim whole ones.
pub const UNITS_PER_FILE: u64 = 4;

/// Offsets divisible by 3 carry tag "a", the others "b".
pub fn tag_of(offset: i64) -> &'static str {
    if offset % 3 == 0 { "a" } else { "b" }
}

pub fn unit(offset: i64) -> CqUnit {
    CqUnit {
        position: 1_000 + offset as u64 * 100,
        size: 60,
        tag_hash: tag_hash(tag_of(offset)),
        store_timestamp_ms: offset,
    }
}

/// A consume queue holding `units` units in queue 0 of [`TOPIC`] (and none in queue 1).
pub fn queue_with(dir: &std::path::Path, units: i64) -> ConsumeQueueStore {
    let cq = ConsumeQueueStore::open(dir, UNITS_PER_FILE).expect("open cq");
    let all: Vec<CqUnit> = (0..units).map(unit).collect();
    cq.append_many(TOPIC, 0, &all).expect("append");
    cq
}

/// [`TOPIC`] with two queues; group "g" allows `attempts` deliveries, "fifo" is orderly.
pub fn meta(attempts: i32) -> Meta {
    let mut m = Meta::default();
    m.topics.insert(TOPIC.into(), TopicConfig { name: TOPIC.into(), queue_count: 2, ..Default::default() });
    for (name, fifo) in [("g", false), ("fifo", true)] {
        m.groups.insert(name.into(), ConsumerGroupConfig { name: name.into(), fifo, max_delivery_attempts: attempts });
    }
    m
}

pub fn pop(group: &str, max: i32, now_ms: i64, invisible_ms: i64) -> Pop {
    Pop {
        group: group.into(),
        topic: TOPIC.into(),
        queue_id: 0,
        max,
        now_ms,
        invisible_ms,
        max_attempts: 16,
        create_group: true,
        ..Default::default()
    }
}

pub fn key(group: &str) -> PopKey {
    (group.into(), TOPIC.into(), 0)
}

/// (offset, attempt) of each delivery, in order.
pub fn popped(r: command_reply::Result) -> Vec<(i64, i32)> {
    match r {
        command_reply::Result::Pop(p) => p.popped.iter().map(|d| (d.offset, d.attempt)).collect(),
        other => panic!("not a pop result: {other:?}"),
    }
}

pub fn run(cq: &ConsumeQueueStore, meta: &mut Meta, epoch: u64, p: Pop) -> Vec<(i64, i32)> {
    popped(apply_pop(cq, meta, epoch, p).expect("apply"))
}

/// What a receipt handle names: a delivery of `offset` in queue `queue_id` of [`TOPIC`].
pub fn target(group: &str, queue_id: i32, offset: i64, epoch: u64) -> PopTarget {
    PopTarget { group: group.into(), topic: TOPIC.into(), queue_id, offset, epoch, unit: None }
}

/// Acks the current delivery of each offset; panics if one is not in flight.
pub fn ack(meta: &mut Meta, group: &str, offsets: &[i64]) {
    let targets = offsets
        .iter()
        .map(|&offset| {
            let st = meta.pop.get(&key(group)).expect("state");
            let epoch = st.inflight.get(&offset).map(|i| i.epoch).expect("in flight");
            target(group, 0, offset, epoch)
        })
        .collect();
    match apply_ack(meta, targets) {
        command_reply::Result::Ack(a) => assert!(a.results.iter().all(|e| e.code == Code::Ok as i32), "{a:?}"),
        other => panic!("{other:?}"),
    }
}

pub fn state<'a>(meta: &'a Meta, group: &str) -> &'a PopQueueState {
    meta.pop.get(&key(group)).expect("state")
}

/// The units in `%DLQ%{group}`.
pub fn dlq(cq: &ConsumeQueueStore, group: &str) -> Vec<CqUnit> {
    cq.read(&super::dlq_topic(group), 0, 0, 1_000).expect("read dlq").into_iter().map(|(_, u)| u).collect()
}

pub fn delivered(offsets: impl IntoIterator<Item = i64>, attempt: i32) -> Vec<(i64, i32)> {
    offsets.into_iter().map(|o| (o, attempt)).collect()
}
