//! The pull consumer: reads assigned queues by offset and keeps its own
//! positions; [`PullConsumer::commit`] stores them as the consumer group's
//! offsets (UpdateOffset, a Raft entry), and the next [`PullConsumerBuilder::start`]
//! resumes from them (GetOffset). Nothing is hidden or acknowledged: several
//! pull consumers of one group assigned the same queue read the same
//! messages, so give each queue to one consumer.
//!
//! Offsets follow RocketMQ: a queue's position and committed offset are the
//! next offset to read. A crash between [`PullConsumer::poll`] and
//! [`PullConsumer::commit`] reads the uncommitted messages again (at least
//! once).
//!
//! ```no_run
//! use std::time::Duration;
//! use raftmq_client::pull::PullConsumer;
//! use raftmq_client::Cluster;
//!
//! # async fn demo() -> Result<(), raftmq_client::Error> {
//! let cluster = Cluster::new(&["127.0.0.1:9876".to_string()])?;
//! let mut consumer = PullConsumer::builder(cluster, "audit", "orders").start().await?;
//! loop {
//!     for m in consumer.poll(64, Duration::from_secs(2)).await? {
//!         println!("{} @{}: {:?}", m.queue, m.message.offset, m.message.body);
//!     }
//!     consumer.commit().await?;
//! }
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::cluster::Cluster;
use crate::error::Error;
use crate::reader::{PulledMessage, QueueReader};

/// One queue of the topic: a queue id on a broker group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageQueue {
    pub broker_group: String,
    pub queue_id: i32,
}

impl MessageQueue {
    pub fn new(broker_group: impl Into<String>, queue_id: i32) -> Self {
        Self { broker_group: broker_group.into(), queue_id }
    }
}

impl fmt::Display for MessageQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.broker_group, self.queue_id)
    }
}

/// A message and the queue it was read from (its offset is `message.offset`).
#[derive(Debug, Clone)]
pub struct PolledMessage {
    pub queue: MessageQueue,
    pub message: PulledMessage,
}

/// Where a queue without a committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The oldest message still stored (default).
    #[default]
    Beginning,
    /// Only messages stored from now on.
    End,
}

pub struct PullConsumerBuilder {
    cluster: Cluster,
    group: String,
    topic: String,
    queues: Option<Vec<MessageQueue>>,
    start_from: StartFrom,
    tag_filter: String,
}

impl PullConsumerBuilder {
    /// Reads only these queues. Default: every queue of the topic on every
    /// broker group, as routed at start.
    pub fn queues(mut self, queues: Vec<MessageQueue>) -> Self {
        self.queues = Some(queues);
        self
    }

    /// Where queues without a committed offset start. Default [`StartFrom::Beginning`].
    pub fn start_from(mut self, s: StartFrom) -> Self {
        self.start_from = s;
        self
    }

    /// Only messages whose tag matches (`"a || b"`). Default `"*"`: all.
    pub fn tag_filter(mut self, expr: &str) -> Self {
        self.tag_filter = expr.to_string();
        self
    }

    /// Resolves the queues and the offset each starts from: the group's
    /// committed offset, else [`StartFrom`].
    pub async fn start(self) -> Result<PullConsumer, Error> {
        let reader = QueueReader::new(self.cluster.clone()).with_tag_filter(&self.tag_filter);
        let queues = match self.queues {
            Some(q) if q.is_empty() => return Err(Error::InvalidArgument("no queue assigned".into())),
            Some(q) => q,
            None => {
                let route = self.cluster.route(&self.topic).await?;
                let mut all: Vec<MessageQueue> = route
                    .groups
                    .iter()
                    .flat_map(|g| {
                        let n = g.topic.as_ref().map(|t| t.queue_count).unwrap_or(0) as i32;
                        (0..n).map(|q| MessageQueue::new(g.group.clone(), q))
                    })
                    .collect();
                all.sort();
                if all.is_empty() {
                    return Err(Error::NotFound(format!("topic '{}' has no queues", self.topic)));
                }
                all
            }
        };
        let mut positions = BTreeMap::new();
        let mut committed = BTreeMap::new();
        for q in &queues {
            let stored = reader.get_offset(&self.topic, &q.broker_group, q.queue_id, &self.group).await?;
            let start = match stored {
                Some(o) => o,
                None => {
                    let end = self.start_from == StartFrom::End;
                    reader.query_offset(&self.topic, &q.broker_group, q.queue_id, end).await?
                }
            };
            if let Some(o) = stored {
                committed.insert(q.clone(), o);
            }
            positions.insert(q.clone(), start);
        }
        Ok(PullConsumer { reader, group: self.group, topic: self.topic, queues, positions, committed, next: 0 })
    }
}

pub struct PullConsumer {
    reader: QueueReader,
    group: String,
    topic: String,
    queues: Vec<MessageQueue>,
    /// The next offset to read, per queue.
    positions: BTreeMap<MessageQueue, i64>,
    /// What the broker holds for this group, as far as this consumer knows.
    committed: BTreeMap<MessageQueue, i64>,
    /// The queue the next poll starts at; rotated so no queue starves.
    next: usize,
}

impl PullConsumer {
    pub fn builder(cluster: Cluster, group: &str, topic: &str) -> PullConsumerBuilder {
        PullConsumerBuilder {
            cluster,
            group: group.to_string(),
            topic: topic.to_string(),
            queues: None,
            start_from: StartFrom::default(),
            tag_filter: "*".into(),
        }
    }

    pub fn queues(&self) -> &[MessageQueue] {
        &self.queues
    }

    /// The next offset [`PullConsumer::poll`] reads from `queue`.
    pub fn position(&self, queue: &MessageQueue) -> Option<i64> {
        self.positions.get(queue).copied()
    }

    /// The group's committed offset for `queue` as last read or written by this consumer.
    pub fn committed(&self, queue: &MessageQueue) -> Option<i64> {
        self.committed.get(queue).copied()
    }

    /// Reads `queue` from `offset` on (backwards to replay, forwards to skip).
    pub fn seek(&mut self, queue: &MessageQueue, offset: i64) -> Result<(), Error> {
        if offset < 0 {
            return Err(Error::InvalidArgument(format!("offset {offset} is negative")));
        }
        let pos = self
            .positions
            .get_mut(queue)
            .ok_or_else(|| Error::InvalidArgument(format!("queue {queue} is not assigned to this consumer")))?;
        *pos = offset;
        Ok(())
    }

    /// Up to `max` messages from the assigned queues, each queue's in offset
    /// order. When every queue is empty, waits up to `wait` for the first
    /// that gets a message. A queue that cannot be read (its group is down)
    /// is skipped while others answer; its error is returned when none does.
    pub async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<PolledMessage>, Error> {
        let mut out = Vec::new();
        let mut first_error = None;
        let n = self.queues.len();
        for i in 0..n {
            if out.len() >= max {
                break;
            }
            let q = self.queues[(self.next + i) % n].clone();
            match self.pull(&q, max - out.len(), Duration::ZERO).await {
                Ok(batch) => out.extend(self.advance(&q, batch)),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        self.next = (self.next + 1) % n.max(1);
        if !out.is_empty() || wait.is_zero() || max == 0 {
            return match first_error {
                Some(e) if out.is_empty() => Err(e),
                _ => Ok(out),
            };
        }
        // Every queue is empty: long-poll them all at once and keep the first
        // answer with messages. Pulls are plain reads, so dropping the other
        // polls loses nothing.
        let found = {
            let this = &*self;
            let mut polls: FuturesUnordered<_> =
                this.queues.iter().map(|q| async move { (q.clone(), this.pull(q, max, wait).await) }).collect();
            let mut found = None;
            while let Some((q, r)) = polls.next().await {
                match r {
                    Ok(batch) if !batch.0.is_empty() => {
                        found = Some((q, batch));
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => first_error = first_error.or(Some(e)),
                }
            }
            found
        };
        match (found, first_error) {
            (Some((q, batch)), _) => Ok(self.advance(&q, batch)),
            (None, Some(e)) => Err(e),
            (None, None) => Ok(Vec::new()),
        }
    }

    async fn pull(&self, q: &MessageQueue, max: usize, wait: Duration) -> Result<(Vec<PulledMessage>, i64), Error> {
        let offset = self.positions.get(q).copied().unwrap_or(0);
        let max = max.min(1024) as i32;
        self.reader.pull(&self.topic, &q.broker_group, q.queue_id, offset, max, wait).await
    }

    /// Moves `q`'s position past a pulled batch.
    fn advance(&mut self, q: &MessageQueue, (msgs, next): (Vec<PulledMessage>, i64)) -> Vec<PolledMessage> {
        if let Some(pos) = self.positions.get_mut(q) {
            // The broker's next offset also skips filtered-out messages; never
            // go back behind what was returned.
            let past_last = msgs.last().map(|m| m.offset + 1).unwrap_or(*pos);
            *pos = next.max(past_last).max(*pos);
        }
        msgs.into_iter().map(|message| PolledMessage { queue: q.clone(), message }).collect()
    }

    /// Stores every position that moved since the last commit as the
    /// group's offset; returns how many queues were written. Stops at the
    /// first failure (the queues before it are committed).
    pub async fn commit(&mut self) -> Result<usize, Error> {
        let mut written = 0;
        for (q, pos) in &self.positions {
            if self.committed.get(q) == Some(pos) {
                continue;
            }
            self.reader.update_offset(&self.topic, &q.broker_group, q.queue_id, &self.group, *pos).await?;
            self.committed.insert(q.clone(), *pos);
            written += 1;
        }
        Ok(written)
    }
}
