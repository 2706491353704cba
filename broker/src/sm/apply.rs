//! Applying one committed entry. Runs in log order on every replica, so
//! everything here must be a pure function of the entry and the state before
//! it: queue offsets are assigned here, never on the proposer.

use std::collections::HashMap;
use std::io;

use raftmq_proto::broker::{
    CommandReply, ConsumerGroupConfig, Error as PbError, MetaCommand, ReplyBatch, SendEntryResult, SendResult, SentId,
    StoredMessage, TopicConfig, command_reply, meta_command,
};
use raftmq_proto::rocketmq::v2::{Code, Permission};
use raftmq_raft::LogId;
use raftmq_store::commitlog::CommitLog;
use raftmq_store::consume_queue::{CqUnit, tag_hash};
use raftmq_store::index::IndexEntry;

use super::Shared;
use super::delay::{DelayQueue, Delayed};
use super::state::Meta;
use super::{pop, retention};
use crate::cmd::{self, Command, DecodedBatch};
use crate::consumer_group::validate_group_config;
use crate::topic::validate_topic_config;

/// The largest queue count a topic may have on one group.
pub const MAX_QUEUES: u32 = 1024;

pub(super) fn error_reply(code: Code, message: String) -> command_reply::Result {
    command_reply::Result::Error(PbError { code: code as i32, message })
}

/// Applies a normal entry; I/O failures are returned as `Err` (fatal: the node
/// stops rather than continue with an unknown state), while a command that is
/// invalid against the current state is answered with an error reply and
/// changes nothing.
pub(super) fn apply_normal(
    shared: &Shared,
    meta: &mut Meta,
    log_id: &LogId,
    bytes: &bytes::Bytes,
    index_out: &mut Vec<IndexEntry>,
) -> io::Result<command_reply::Result> {
    let index = log_id.index;
    let command = match cmd::decode(bytes) {
        Ok((stamp, c)) => {
            if let Some(s) = stamp {
                meta.window_clock.observe(log_id.leader_id.term, s.run, s.ms);
            }
            c
        }
        // The proposer encoded it, so this is a bug or corruption that the CRC
        // did not catch; answering keeps the group alive and deterministic.
        Err(e) => return Ok(error_reply(Code::InternalError, format!("undecodable command: {e}"))),
    };
    match command {
        Command::Batches(batches) => apply_batches(shared, meta, index, batches, index_out),
        Command::Meta(m) => apply_command(shared, meta, index, m, true),
    }
}

/// One meta command; a batch (allowed at the top level only) is applied
/// command by command, in order, all at log index `index`.
fn apply_command(
    shared: &Shared,
    meta: &mut Meta,
    index: u64,
    m: MetaCommand,
    top_level: bool,
) -> io::Result<command_reply::Result> {
    match m.cmd {
        Some(meta_command::Cmd::Pop(p)) => pop::apply_pop(&shared.cq, meta, index, p),
        Some(meta_command::Cmd::DeadLetter(t)) => pop::apply_dead_letter(&shared.cq, meta, t),
        Some(meta_command::Cmd::FireDelayed(f)) => fire_delayed(shared, meta, f.now_ms),
        Some(meta_command::Cmd::Retain(r)) => {
            let changed = retention::apply_retain(meta, index, r);
            if changed {
                shared.retained_changed();
            }
            Ok(command_reply::Result::Ok(changed))
        }
        Some(meta_command::Cmd::Batch(b)) if top_level => {
            let mut replies = Vec::with_capacity(b.cmds.len());
            for c in b.cmds {
                replies.push(reply(index, apply_command(shared, meta, index, c, false)?));
            }
            Ok(command_reply::Result::Batch(ReplyBatch { replies }))
        }
        Some(meta_command::Cmd::Batch(_)) => Ok(error_reply(Code::BadRequest, "command batches do not nest".into())),
        cmd => Ok(apply_meta(shared, meta, index, MetaCommand { cmd })),
    }
}

/// Why a producer batch cannot be stored against the applied state, if it cannot.
fn refuse(meta: &Meta, msgs: &DecodedBatch) -> Option<PbError> {
    for (m, _) in msgs {
        let err = |code: Code, message: String| Some(PbError { code: code as i32, message });
        let Some(topic) = meta.topics.get(&m.topic) else {
            return err(Code::TopicNotFound, format!("topic '{}' does not exist on this broker group", m.topic));
        };
        if m.queue_id < 0 || m.queue_id as u32 >= topic.queue_count {
            return err(
                Code::BadRequest,
                format!(
                    "queue {} does not exist; topic '{}' has {} queues here",
                    m.queue_id, m.topic, topic.queue_count
                ),
            );
        }
        if !writable(topic.permission) {
            return err(Code::Forbidden, format!("topic '{}' is not writable", m.topic));
        }
    }
    None
}

/// Stores each producer batch all or nothing; the reply has one entry per
/// message, in order, with `error` set on the messages of a refused batch.
fn apply_batches(
    shared: &Shared,
    meta: &mut Meta,
    index: u64,
    batches: Vec<DecodedBatch>,
    index_out: &mut Vec<IndexEntry>,
) -> io::Result<command_reply::Result> {
    let record = shared
        .log
        .record_position(index)
        .ok_or_else(|| io::Error::other(format!("applied entry {index} has no CommitLog record")))?;
    let base = record + CommitLog::RECORD_HEADER_LEN as u64;
    let mut entries = Vec::with_capacity(batches.iter().map(Vec::len).sum());
    let mut pending = PendingUnits::new();
    for msgs in batches {
        // A re-send of a batch already stored (its first attempt's outcome was
        // unknown to the producer) is answered with the original positions.
        let seen: Option<Vec<SendEntryResult>> =
            msgs.iter().map(|(m, _)| meta.sent_ids.get(&m.topic, &m.message_id)).collect();
        if let Some(original) = seen {
            entries.extend(original);
            continue;
        }
        if let Some(e) = refuse(meta, &msgs) {
            entries.extend(msgs.iter().map(|_| SendEntryResult { error: Some(e.clone()), ..Default::default() }));
            continue;
        }
        let from = entries.len();
        let stored: Vec<(String, String, i64)> =
            msgs.iter().map(|(m, _)| (m.topic.clone(), m.message_id.clone(), m.store_timestamp_ms)).collect();
        let clock = meta.window_clock.now_ms;
        store_batch(shared, base, msgs, &mut pending, &mut meta.delays, &mut entries, index_out);
        for ((topic, message_id, ts), e) in stored.into_iter().zip(&entries[from..]) {
            meta.sent_ids.insert(SentId {
                topic,
                message_id,
                queue_id: e.queue_id,
                queue_offset: e.queue_offset,
                position: e.position,
                store_timestamp_ms: ts,
                window_clock_ms: clock,
            });
        }
    }
    write_units(shared, pending)?;
    Ok(command_reply::Result::Send(SendResult { entries }))
}

/// Consume-queue units of one entry, per queue: (first offset, units).
type PendingUnits = HashMap<(String, i32), (i64, Vec<CqUnit>)>;

/// Assigns queue offsets to a producer batch; the units are written per queue
/// once the whole entry is applied ([`write_units`]), one write per queue.
///
/// A delayed message (delivery time after its store time) gets no offset yet:
/// it waits in `delays` and joins its queue when a `FireDelayed` finds it due
/// (its send result and index entry carry queue offset -1).
fn store_batch(
    shared: &Shared,
    base: u64,
    msgs: DecodedBatch,
    pending: &mut PendingUnits,
    delays: &mut DelayQueue,
    entries: &mut Vec<SendEntryResult>,
    index_out: &mut Vec<IndexEntry>,
) {
    for (m, range) in msgs {
        let position = base + range.start as u64;
        let size = range.len() as u32;
        let unit = CqUnit {
            position,
            size,
            tag_hash: m.tag.as_deref().map(tag_hash).unwrap_or(0),
            store_timestamp_ms: m.store_timestamp_ms,
        };
        if let Some(due) = m.delivery_timestamp_ms.filter(|due| *due > m.store_timestamp_ms) {
            delays.push(due, Delayed { topic: m.topic.clone(), queue_id: m.queue_id, unit });
            entries.push(SendEntryResult { queue_id: m.queue_id, queue_offset: -1, position, error: None });
            index_out.push(index_entry(m, position, size, -1));
            continue;
        }
        let offset = pend(shared, pending, &m.topic, m.queue_id, unit);
        entries.push(SendEntryResult { queue_id: m.queue_id, queue_offset: offset, position, error: None });
        index_out.push(index_entry(m, position, size, offset));
    }
}

fn index_entry(m: StoredMessage, position: u64, size: u32, queue_offset: i64) -> IndexEntry {
    IndexEntry {
        topic: m.topic,
        message_id: m.message_id,
        keys: m.keys,
        position,
        size,
        store_timestamp_ms: m.store_timestamp_ms,
        queue_id: m.queue_id,
        queue_offset,
    }
}

/// Moves every delayed message due by `now_ms` into its queue (FireDelayed).
/// A message whose topic was deleted meanwhile went with the topic.
fn fire_delayed(shared: &Shared, meta: &mut Meta, now_ms: i64) -> io::Result<command_reply::Result> {
    let mut pending = PendingUnits::new();
    for d in meta.delays.take_due(now_ms) {
        if !meta.topics.contains_key(&d.topic) {
            continue;
        }
        pend(shared, &mut pending, &d.topic, d.queue_id, d.unit);
    }
    write_units(shared, pending)?;
    Ok(command_reply::Result::Ok(true))
}

/// Adds `unit` to what this entry writes to (`topic`, `queue`) and returns its offset.
fn pend(shared: &Shared, pending: &mut PendingUnits, topic: &str, queue: i32, unit: CqUnit) -> i64 {
    let (first, units) =
        pending.entry((topic.to_owned(), queue)).or_insert_with(|| (shared.cq.max_offset(topic, queue), Vec::new()));
    units.push(unit);
    *first + units.len() as i64 - 1
}

fn write_units(shared: &Shared, pending: PendingUnits) -> io::Result<()> {
    for ((topic, queue), (first, units)) in pending {
        let written = shared.cq.append_many(&topic, queue, &units).map_err(io::Error::other)?;
        if written != first {
            return Err(io::Error::other(format!(
                "consume queue {topic}:{queue} moved under the state machine ({written} != {first})"
            )));
        }
    }
    Ok(())
}

fn writable(permission: i32) -> bool {
    permission == Permission::Write as i32 || permission == Permission::ReadWrite as i32
}

fn apply_meta(shared: &Shared, meta: &mut Meta, index: u64, m: MetaCommand) -> command_reply::Result {
    match m.cmd {
        // Pops and delayed messages firing touch the consume queues (they can
        // fail on I/O) and batches recurse: all are dispatched by
        // `apply_command` before this.
        Some(
            meta_command::Cmd::Pop(_)
            | meta_command::Cmd::DeadLetter(_)
            | meta_command::Cmd::Batch(_)
            | meta_command::Cmd::FireDelayed(_)
            | meta_command::Cmd::Retain(_),
        ) => error_reply(Code::InternalError, "command dispatched to the wrong handler".into()),
        Some(meta_command::Cmd::Ack(a)) => pop::apply_ack(meta, a.targets),
        Some(meta_command::Cmd::ChangeInvisible(c)) => pop::apply_change_invisible(meta, index, c),
        Some(meta_command::Cmd::CreateTopic(t)) => {
            if let Err(e) = validate_topic_config(&t) {
                return error_reply(e.code(), e.to_string());
            }
            if meta.topics.contains_key(&t.name) {
                return error_reply(Code::BadRequest, format!("topic '{}' already exists", t.name));
            }
            meta.topics.insert(t.name.clone(), t);
            command_reply::Result::Ok(true)
        }
        Some(meta_command::Cmd::UpdateTopic(t)) => update_topic(meta, t),
        Some(meta_command::Cmd::CreateConsumerGroup(g)) => put_group(meta, g, false),
        Some(meta_command::Cmd::UpdateConsumerGroup(g)) => put_group(meta, g, true),
        Some(meta_command::Cmd::DeleteConsumerGroup(name)) => {
            if meta.groups.remove(&name).is_none() {
                return error_reply(Code::ConsumerGroupNotFound, format!("consumer group '{name}' does not exist"));
            }
            meta.offsets.retain(|(g, _, _), _| *g != name);
            meta.pop.retain(|(g, _, _), _| *g != name);
            meta.pop_attempts.remove_group(&name);
            command_reply::Result::Ok(true)
        }
        Some(meta_command::Cmd::DeleteTopic(name)) => {
            if meta.topics.remove(&name).is_none() {
                return error_reply(Code::TopicNotFound, format!("topic '{name}' does not exist"));
            }
            meta.offsets.retain(|(_, t, _), _| *t != name);
            meta.pop.retain(|(_, t, _), _| *t != name);
            meta.sent_ids.remove_topic(&name);
            meta.delays.remove_topic(&name);
            meta.retained.remove_topic(&name);
            if let Err(e) = shared.cq.delete_topic(&name) {
                // The config is gone either way; stale queue files are only disk.
                tracing::warn!(topic = %name, "deleting consume queues failed: {e}");
            }
            command_reply::Result::Ok(true)
        }
        Some(meta_command::Cmd::UpdateOffset(o)) => {
            let Some(topic) = meta.topics.get(&o.topic) else {
                return error_reply(Code::TopicNotFound, format!("topic '{}' does not exist", o.topic));
            };
            if o.queue_id < 0 || o.queue_id as u32 >= topic.queue_count {
                return error_reply(
                    Code::BadRequest,
                    format!("queue {} does not exist in topic '{}'", o.queue_id, o.topic),
                );
            }
            // The replicated first offset, not the consume queue's: a replica
            // that installed a snapshot holds no units below its snapshot.
            let (min, max) = (meta.retained.first(&o.topic, o.queue_id), shared.cq.max_offset(&o.topic, o.queue_id));
            if o.offset < min || o.offset > max {
                return error_reply(
                    Code::BadRequest,
                    format!("offset {} is outside queue {}:{} range [{min}, {max}]", o.offset, o.topic, o.queue_id),
                );
            }
            if o.group.is_empty() {
                return error_reply(Code::IllegalConsumerGroup, "consumer group must not be empty".into());
            }
            meta.offsets.insert((o.group, o.topic, o.queue_id), o.offset);
            command_reply::Result::Ok(true)
        }
        None => error_reply(Code::BadRequest, "empty meta command".into()),
    }
}

/// Creates (`exists` false) or replaces (`exists` true) a consumer group.
fn put_group(meta: &mut Meta, g: ConsumerGroupConfig, exists: bool) -> command_reply::Result {
    if let Err(e) = validate_group_config(&g) {
        return error_reply(e.code(), e.to_string());
    }
    match (meta.groups.contains_key(&g.name), exists) {
        (true, false) => error_reply(Code::BadRequest, format!("consumer group '{}' already exists", g.name)),
        (false, true) => {
            error_reply(Code::ConsumerGroupNotFound, format!("consumer group '{}' does not exist", g.name))
        }
        _ => {
            meta.groups.insert(g.name.clone(), g);
            command_reply::Result::Ok(true)
        }
    }
}

fn update_topic(meta: &mut Meta, t: TopicConfig) -> command_reply::Result {
    if let Err(e) = validate_topic_config(&t) {
        return error_reply(e.code(), e.to_string());
    }
    let Some(old) = meta.topics.get(&t.name) else {
        return error_reply(Code::TopicNotFound, format!("topic '{}' does not exist", t.name));
    };
    if t.queue_count < old.queue_count {
        return error_reply(
            Code::BadRequest,
            format!("queue count of '{}' can only grow ({} -> {} refused)", t.name, old.queue_count, t.queue_count),
        );
    }
    meta.topics.insert(t.name.clone(), t);
    command_reply::Result::Ok(true)
}

pub(super) fn reply(index: u64, result: command_reply::Result) -> CommandReply {
    CommandReply { index, result: Some(result) }
}
