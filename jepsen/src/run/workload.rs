//! The queue workload: producers send unique values, consumers read every queue by offset, and a
//! final drain reads every queue from offset 0 once the faults are healed.
//!
//! Outcomes follow the README's rules. A send is `ok` with its receipt's (group, queue, offset);
//! `fail` only when the SDK returned an error that is certainly a refusal before any Raft
//! proposal ([`definitely_refused`]); everything else (timeouts, transport errors,
//! `MASTER_PERSISTENCE_TIMEOUT`, and any error after which the SDK may have retried) is `info`.
//! Producers never retry a value themselves.
//!
//! Each consumer owns one queue and keeps its own position: it starts at 0 and moves past the
//! last message it received. It never takes the broker's `next_offset` as a seek, so any gap or
//! step back in what it reads is the broker's doing (`poll-skip`, `nonmonotonic-poll`).
//!
//! The `fifo` workload (`fifo.rs`) sends the same way with message groups and consumes through
//! an orderly consumer group instead; the `delay` workload (`delay.rs`) sends most values with a
//! delivery time and consumes through a (not orderly) popping consumer group.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use raftmq_client::error::Error as SdkError;
use raftmq_client::producer::Message as SdkMessage;
use raftmq_client::{Cluster, Producer, QueueReader};
use raftmq_proto::rocketmq::v2::Code;
use tokio::sync::watch;

use super::delay::DelayPlan;
use super::testbed::GROUP;
use crate::history::{Call, ConsumerOffset, HistoryWriter, Message, Poll, Process, Queue, Send, SendAt};

pub const TOPIC: &str = "jepsen";
/// Process numbers: producers from 0, consumers from here, final readers from [`FINAL_BASE`].
pub(super) const CONSUMER_BASE: u64 = 100;
const FINAL_BASE: u64 = 200;
/// A send or poll that takes longer than this is abandoned as `info`.
pub(super) const CALL_LIMIT: Duration = Duration::from_secs(10);
const POLL_MAX: i32 = 64;
/// The consumer group whose offsets the consumers commit and fetch.
pub const CONSUMER_GROUP: &str = "cg";
/// A consumer commits its position after every this many successful polls that read something,
const COMMIT_EVERY: u64 = 4;
/// fetches it back every this many successful polls,
const FETCH_EVERY: u64 = 10;
/// and restarts from the fetched offset every this many.
const REWIND_EVERY: u64 = 300;
const LONG_POLL: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Workload {
    pub cluster: Cluster,
    pub history: Arc<HistoryWriter>,
    pub queues: u32,
    pub sdk_retries: usize,
    /// Message groups per producer: 0 sends plain messages; n > 0 sends value `seq` of producer
    /// `p` in group `p<p>-g<seq % n>`, so each group's sends are sequential (the fifo workload).
    pub message_groups: u64,
    /// The delay workload: which values get a delivery time, and how far ahead.
    pub delay: Option<DelayPlan>,
}

type Io = std::io::Result<()>;

/// Whether an SDK error proves the send was never proposed. Only validation refusals qualify:
/// the SDK stops at the first non-retriable error, while after a retriable one it moves on to
/// other replicas and queues, so a final "no leader" may follow an attempt whose outcome is
/// unknown. `InternalError` is excluded too: it also reports failures after proposing.
pub fn definitely_refused(e: &SdkError) -> bool {
    match e {
        SdkError::InvalidArgument(_) | SdkError::NotFound(_) => true,
        SdkError::Broker { code, .. } => !e.is_retriable() && *code != Code::InternalError,
        SdkError::Transport { .. } => false,
    }
}

pub(super) fn queue(id: i32) -> Queue {
    Queue { topic: TOPIC.into(), broker: GROUP.into(), id: id.max(0) as u32 }
}

impl Workload {
    /// Sends `p-0`, `p-1`, ... one at a time until `stop` turns true (in message groups when
    /// [`Workload::message_groups`] is set, with delivery times drawn from
    /// [`Workload::delay`] when that is).
    pub async fn producer(self, p: u64, stop: watch::Receiver<bool>) -> Io {
        let producer = Producer::new(self.cluster.clone()).with_retries(self.sdk_retries);
        let process = Process::Client(p);
        let mut draws = self.delay.as_ref().map(|plan| (plan, plan.rng(p)));
        for seq in 0u64.. {
            if *stop.borrow() {
                break;
            }
            let message_group = (self.message_groups > 0).then(|| format!("p{p}-g{}", seq % self.message_groups));
            // The history clock first, then the wall clock rounded up: the due time the checker
            // gets is never later than the delivery time the broker gets.
            let (now_ns, now_unix_ms) = (self.history.now_ns(), super::unix_ms() + 1);
            let delay_ms = draws.as_mut().and_then(|(plan, rng)| plan.draw(rng, now_unix_ms));
            let send = Send {
                topic: TOPIC.into(),
                value: format!("{p}-{seq}"),
                message_group,
                key: None,
                at: None,
                due_ns: delay_ms.map(|d| now_ns + d * 1_000_000),
                deliver_at_unix_ms: delay_ms.map(|d| now_unix_ms + d),
            };
            let inv = self.history.invoke(process, Call::Send(send.clone()))?;
            let mut msg = SdkMessage::new(TOPIC, send.value.clone().into_bytes());
            if let Some(g) = &send.message_group {
                msg = msg.with_message_group(g.clone());
            }
            if let (Some(at), Some((plan, _))) = (send.deliver_at_unix_ms, &draws) {
                plan.asked(at);
                msg = msg.with_delivery_time(UNIX_EPOCH + Duration::from_millis(at));
            }
            match tokio::time::timeout(CALL_LIMIT, producer.send(msg)).await {
                Ok(Ok(r)) => {
                    // The receipt's offset as it came: -1 for a delayed message not yet due.
                    let at = SendAt {
                        queue: Queue { topic: TOPIC.into(), broker: r.group, id: r.queue_id.max(0) as u32 },
                        offset: r.offset,
                    };
                    self.history.ok(inv, Call::Send(Send { at: Some(at), ..send }))?;
                }
                Ok(Err(e)) if definitely_refused(&e) => self.history.fail(inv, Call::Send(send), e.to_string())?,
                Ok(Err(e)) => {
                    self.history.info(inv, Call::Send(send), e.to_string())?;
                    // Give a failing cluster a moment instead of spinning through values.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(_) => self.history.info(inv, Call::Send(send), "client deadline exceeded")?,
            }
        }
        Ok(())
    }

    /// Reads queue `q` from offset 0 until `stop` turns true, committing its position for
    /// consumer group [`CONSUMER_GROUP`] now and then, fetching it back, and sometimes
    /// restarting from it (as a consumer does after a reconnect or rebalance; the next poll is
    /// then marked `reassigned`). Three failed polls in a row also restart it from there.
    pub async fn consumer(self, q: u32, stop: watch::Receiver<bool>) -> Io {
        let reader = QueueReader::new(self.cluster.clone());
        let process = CONSUMER_BASE + u64::from(q);
        let consumer = format!("c{q}");
        let mut pos = 0i64;
        let mut reassigned = false;
        let mut polls = 0u64;
        let mut errors = 0u32;
        while !*stop.borrow() {
            let polled = self.poll(&reader, process, &consumer, q, &mut pos, reassigned).await?;
            let rewind = match polled {
                Some(n) => {
                    reassigned = false;
                    errors = 0;
                    polls += 1;
                    if n > 0 && polls.is_multiple_of(COMMIT_EVERY) {
                        self.commit(&reader, process, q, pos).await?;
                    }
                    polls.is_multiple_of(FETCH_EVERY)
                }
                None => {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    errors >= 3
                }
            };
            if rewind {
                let fetched = self.fetch(&reader, process, q).await?;
                if polls.is_multiple_of(REWIND_EVERY) || errors >= 3 {
                    errors = 0;
                    if let Some(o) = fetched {
                        pos = o;
                        reassigned = true;
                    }
                }
            }
        }
        Ok(())
    }

    async fn commit(&self, reader: &QueueReader, process: u64, q: u32, offset: i64) -> Io {
        let c = ConsumerOffset { group: CONSUMER_GROUP.into(), queue: queue(q as i32), offset: Some(offset as u64) };
        let inv = self.history.invoke(Process::Client(process), Call::CommitOffset(c.clone()))?;
        let r = tokio::time::timeout(CALL_LIMIT, reader.update_offset(TOPIC, GROUP, q as i32, CONSUMER_GROUP, offset));
        match r.await {
            Ok(Ok(())) => self.history.ok(inv, Call::CommitOffset(c)),
            Ok(Err(e)) if definitely_refused(&e) => self.history.fail(inv, Call::CommitOffset(c), e.to_string()),
            Ok(Err(e)) => self.history.info(inv, Call::CommitOffset(c), e.to_string()),
            Err(_) => self.history.info(inv, Call::CommitOffset(c), "client deadline exceeded"),
        }
    }

    /// The committed offset, recorded as a `fetch_offset`; `None` if none or the call failed.
    async fn fetch(&self, reader: &QueueReader, process: u64, q: u32) -> std::io::Result<Option<i64>> {
        let c = ConsumerOffset { group: CONSUMER_GROUP.into(), queue: queue(q as i32), offset: None };
        let inv = self.history.invoke(Process::Client(process), Call::FetchOffset(c.clone()))?;
        let r = tokio::time::timeout(CALL_LIMIT, reader.get_offset(TOPIC, GROUP, q as i32, CONSUMER_GROUP));
        match r.await {
            Ok(Ok(o)) => {
                let offset = o.map(|o| o.max(0) as u64);
                self.history.ok(inv, Call::FetchOffset(ConsumerOffset { offset, ..c }))?;
                Ok(o)
            }
            Ok(Err(e)) => self.history.info(inv, Call::FetchOffset(c), e.to_string()).map(|()| None),
            Err(_) => self.history.info(inv, Call::FetchOffset(c), "client deadline exceeded").map(|()| None),
        }
    }

    /// One recorded poll of `q` from `*pos`; advances `*pos` past what was read. `Ok(None)` if
    /// the poll did not succeed.
    async fn poll(
        &self,
        reader: &QueueReader,
        process: u64,
        consumer: &str,
        q: u32,
        pos: &mut i64,
        reassigned: bool,
    ) -> std::io::Result<Option<usize>> {
        let poll = Poll {
            consumer: consumer.to_string(),
            group: Some(CONSUMER_GROUP.into()),
            reassigned,
            orderly: false,
            pop: false,
            msgs: Vec::new(),
        };
        let inv = self.history.invoke(Process::Client(process), Call::Poll(poll.clone()))?;
        let pulled =
            tokio::time::timeout(CALL_LIMIT, reader.pull(TOPIC, GROUP, q as i32, *pos, POLL_MAX, LONG_POLL)).await;
        match pulled {
            Ok(Ok((msgs, _next))) => {
                let n = msgs.len();
                if let Some(last) = msgs.last() {
                    *pos = last.offset + 1;
                }
                let msgs = msgs
                    .into_iter()
                    .map(|m| Message {
                        queue: queue(q as i32),
                        offset: m.offset.max(0) as u64,
                        value: String::from_utf8_lossy(&m.body).into_owned(),
                    })
                    .collect();
                self.history.ok(inv, Call::Poll(Poll { msgs, ..poll }))?;
                Ok(Some(n))
            }
            Ok(Err(e)) => {
                self.history.info(inv, Call::Poll(poll), e.to_string())?;
                Ok(None)
            }
            Err(_) => {
                self.history.info(inv, Call::Poll(poll), "client deadline exceeded")?;
                Ok(None)
            }
        }
    }

    /// The final drain: fresh consumers read every queue from 0 to its end (as the leader
    /// reports it after the producers stopped). Recorded as a `final_read` around the polls;
    /// `ok` only if every queue was read to its end within `limit`.
    pub async fn final_read(&self, limit: Duration) -> std::io::Result<bool> {
        let inv = self.history.invoke(Process::NEMESIS, Call::FinalRead)?;
        let deadline = tokio::time::Instant::now() + limit;
        let reader = QueueReader::new(self.cluster.clone());
        let mut complete = true;
        for q in 0..self.queues {
            let end = loop {
                match reader.query_offset(TOPIC, GROUP, q as i32, true).await {
                    Ok(end) => break Some(end),
                    Err(_) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(200)).await
                    }
                    Err(_) => break None,
                }
            };
            let Some(end) = end else {
                complete = false;
                break;
            };
            let mut pos = 0i64;
            while pos < end && tokio::time::Instant::now() < deadline {
                if self
                    .poll(&reader, FINAL_BASE + u64::from(q), &format!("final-{q}"), q, &mut pos, false)
                    .await?
                    .is_none()
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            eprintln!("final read: queue {q}: read {pos} of {end}");
            complete &= pos >= end;
        }
        if complete {
            self.history.ok(inv, Call::FinalRead)?;
        } else {
            self.history.info(inv, Call::FinalRead, "the drain did not reach the end of every queue in time")?;
        }
        Ok(complete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(code: Code) -> SdkError {
        SdkError::Broker { code, message: String::new() }
    }

    #[test]
    fn only_validation_refusals_are_failures() {
        assert!(definitely_refused(&broker(Code::TopicNotFound)));
        assert!(definitely_refused(&broker(Code::BadRequest)));
        assert!(definitely_refused(&SdkError::InvalidArgument("empty".into())));
        for unknown in [Code::MasterPersistenceTimeout, Code::HaNotAvailable, Code::InternalError, Code::RequestTimeout]
        {
            assert!(!definitely_refused(&broker(unknown)), "{unknown:?}");
        }
        let t = SdkError::Transport { endpoint: "n1".into(), message: "deadline".into() };
        assert!(!definitely_refused(&t));
    }
}
