//! The fifo workload's consumer side: an orderly (FIFO) consumer group, popped and acked.
//!
//! Producers are the queue workload's ([`Workload::producer`]) with message groups: producer
//! `p` owns groups `p<p>-g0`, `p<p>-g1`, ..., and sends one value at a time, so each group's
//! sends are sequential. The topic accepts FIFO messages only; the consumer group
//! [`FIFO_GROUP`] is created orderly through the admin API before anything is sent.
//!
//! [`FIFO_CONSUMERS`] consumers share the group. Each pop (`SimpleConsumer::receive`, any queue
//! of the broker group) is a `poll` with `orderly: true` and `reassigned: true` (a pop is no
//! per-consumer stream: which queue and offset comes next is the broker's choice, so
//! `poll-skip` and `nonmonotonic-poll` do not apply). Each message received is then acked, one
//! `ack` op per message (`ok`, or `info` on any error: a retried ack whose first attempt landed
//! is refused as a stale handle). Every [`SKIP_ACK_EVERY`]th pop that got messages is not
//! acked at all, so its messages come back after [`INVISIBLE`] (a legal redelivery, which
//! holds the queue until then).
//!
//! The delay workload pops and acks the same way ([`Workload::pop_consumer`]) in a group that is
//! not orderly; its pops are marked `pop: true` instead of `orderly: true`.

use std::time::Duration;

use raftmq_client::SimpleConsumer;
use tokio::sync::watch;

use super::workload::{CALL_LIMIT, CONSUMER_BASE, TOPIC, Workload};
use crate::history::{Ack, Call, Message, Poll, Process, Queue};

/// The orderly consumer group.
pub const FIFO_GROUP: &str = "cg-fifo";
/// Consumers in the group: one per queue of the default topic, so every unlocked queue can be
/// in flight at once (with 3 and 16-message pops the group fell ~40% behind 4 producers).
pub const FIFO_CONSUMERS: u64 = 4;
/// Message groups per producer.
pub const GROUPS_PER_PRODUCER: u64 = 2;
/// Deliveries before the dead-letter queue: the broker's maximum, so no message is dead-lettered
/// in a run (a dead-lettered message would never be delivered again).
pub const MAX_ATTEMPTS: i32 = 1000;
/// How long a popped message stays invisible (and its queue locked) before redelivery.
pub const INVISIBLE: Duration = Duration::from_secs(3);
/// Every this many pops that got messages, the consumer acks none of them.
const SKIP_ACK_EVERY: u64 = 20;
const POP_MAX: i32 = 64;
const LONG_POLL: Duration = Duration::from_millis(500);

type Io = std::io::Result<()>;

impl Workload {
    /// Pops from the orderly group and acks until `stop` turns true.
    pub async fn fifo_consumer(self, i: u64, stop: watch::Receiver<bool>) -> Io {
        self.pop_consumer(i, FIFO_GROUP, true, format!("f{i}"), stop).await
    }

    /// Pops from consumer `group` (orderly or not) and acks until `stop` turns true, as
    /// consumer `name`, process `CONSUMER_BASE + i`.
    pub async fn pop_consumer(
        self,
        i: u64,
        group: &'static str,
        orderly: bool,
        name: String,
        stop: watch::Receiver<bool>,
    ) -> Io {
        let consumer = SimpleConsumer::new(self.cluster.clone(), group, TOPIC).with_invisible(INVISIBLE);
        let process = Process::Client(CONSUMER_BASE + i);
        let mut pops = 0u64;
        while !*stop.borrow() {
            let poll = Poll {
                consumer: name.clone(),
                group: Some(group.into()),
                reassigned: true,
                orderly,
                // Written for a pop that is not orderly; an orderly poll is a pop anyway.
                pop: !orderly,
                msgs: vec![],
            };
            let inv = self.history.invoke(process, Call::Poll(poll.clone()))?;
            let got = match tokio::time::timeout(CALL_LIMIT, consumer.receive(POP_MAX, LONG_POLL)).await {
                Ok(Ok(got)) => got,
                Ok(Err(e)) => {
                    self.history.info(inv, Call::Poll(poll), e.to_string())?;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(_) => {
                    self.history.info(inv, Call::Poll(poll), "client deadline exceeded")?;
                    continue;
                }
            };
            let msgs: Vec<Message> = got
                .iter()
                .map(|m| Message {
                    queue: Queue { topic: TOPIC.into(), broker: m.broker_group.clone(), id: m.queue_id.max(0) as u32 },
                    offset: m.queue_offset.max(0) as u64,
                    value: String::from_utf8_lossy(&m.body).into_owned(),
                })
                .collect();
            self.history.ok(inv, Call::Poll(Poll { msgs: msgs.clone(), ..poll }))?;
            if got.is_empty() {
                continue;
            }
            pops += 1;
            if pops.is_multiple_of(SKIP_ACK_EVERY) {
                continue;
            }
            self.ack(&consumer, process, group, &name, &got, msgs).await?;
        }
        Ok(())
    }

    /// Acks what one pop returned (one request), recording one `ack` op per message.
    async fn ack(
        &self,
        consumer: &SimpleConsumer,
        process: Process,
        group: &str,
        name: &str,
        got: &[raftmq_client::ReceivedMessage],
        msgs: Vec<Message>,
    ) -> Io {
        let acks: Vec<Ack> = msgs
            .into_iter()
            .map(|m| Ack {
                consumer: name.to_string(),
                group: group.into(),
                queue: m.queue,
                offset: m.offset,
                value: m.value,
            })
            .collect();
        let mut invs = Vec::with_capacity(acks.len());
        for a in &acks {
            invs.push(self.history.invoke(process, Call::Ack(a.clone()))?);
        }
        let results = match tokio::time::timeout(CALL_LIMIT, consumer.ack_all(got)).await {
            Ok(Ok(r)) if r.len() == acks.len() => r.into_iter().map(|r| r.map_err(|e| e.to_string())).collect(),
            Ok(Ok(_)) => vec![Err("ack answered the wrong number of entries".to_string()); acks.len()],
            Ok(Err(e)) => vec![Err(e.to_string()); acks.len()],
            Err(_) => vec![Err("client deadline exceeded".to_string()); acks.len()],
        };
        for ((inv, a), r) in invs.into_iter().zip(acks).zip(results) {
            match r {
                Ok(()) => self.history.ok(inv, Call::Ack(a))?,
                Err(e) => self.history.info(inv, Call::Ack(a), e)?,
            }
        }
        Ok(())
    }

    /// After the faults: waits (up to `limit`) until consumer `group` has popped every queue to
    /// its end, so the consumers' last deliveries are in the history before the drain.
    pub async fn group_caught_up(&self, group: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if let Ok(groups) = self.cluster.consumer_progress(group, TOPIC).await
                && !groups.is_empty()
                && groups.iter().all(|(_, qs)| qs.iter().all(|q| q.pop_consumed.unwrap_or(0) >= q.max_offset))
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
    }
}
