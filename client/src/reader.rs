//! Reading a queue by offset (PullMessage) and consumer offsets
//! (GetOffset / UpdateOffset / QueryOffset).
//!
//! A queue is `(broker group, queue id)` of a topic. Reads are served by any
//! replica from what it has applied, so a read right after a failover may be a
//! moment behind; it is never ahead of what was committed.

use std::time::Duration;

use futures::StreamExt;
use raftmq_proto::namesrv::GroupRoute;
use raftmq_proto::rocketmq::v2;
use raftmq_proto::rocketmq::v2::pull_message_response::Content;

use crate::cluster::{Cluster, DEFAULT_TIMEOUT, replica_addrs as addrs};
use crate::error::Error;

/// One message read from a queue.
#[derive(Debug, Clone)]
pub struct PulledMessage {
    pub offset: i64,
    pub message_id: String,
    pub tag: Option<String>,
    pub keys: Vec<String>,
    pub body: bytes::Bytes,
    pub store_timestamp_ms: i64,
}

pub struct QueueReader {
    cluster: Cluster,
    /// A tag expression applied to every pull; `None` reads every message.
    tag_filter: Option<v2::FilterExpression>,
}

fn mq(topic: &str, group: &str, queue: i32) -> v2::MessageQueue {
    v2::MessageQueue {
        topic: Some(v2::Resource { name: topic.to_string(), ..Default::default() }),
        id: queue,
        broker: Some(v2::Broker { name: group.to_string(), ..Default::default() }),
        ..Default::default()
    }
}

impl QueueReader {
    pub fn new(cluster: Cluster) -> Self {
        Self { cluster, tag_filter: None }
    }

    /// Pulls return only messages whose tag matches `expr` (`"a || b"`; `"*"` or empty: all).
    /// The broker skips the others, and the next offset it answers moves past them.
    pub fn with_tag_filter(mut self, expr: &str) -> Self {
        self.tag_filter = crate::consumer::tag_filter(expr);
        self
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    async fn group(&self, topic: &str, group: &str) -> Result<GroupRoute, Error> {
        let r = self.cluster.route(topic).await?;
        r.groups
            .into_iter()
            .find(|g| g.group == group)
            .ok_or_else(|| Error::NotFound(format!("topic '{topic}' has no queues on group '{group}'")))
    }

    /// Reads up to `max` messages from `offset`, waiting up to `long_poll` for
    /// new ones when there are none. Returns the messages and the next offset.
    pub async fn pull(
        &self,
        topic: &str,
        group: &str,
        queue: i32,
        offset: i64,
        max: i32,
        long_poll: Duration,
    ) -> Result<(Vec<PulledMessage>, i64), Error> {
        let g = self.group(topic, group).await?;
        let mut last = Error::NotFound(format!("group '{group}' has no live replica"));
        for addr in addrs(&g) {
            let mut c = self.cluster.messaging(&addr)?;
            let mut req = tonic::Request::new(v2::PullMessageRequest {
                group: Some(v2::Resource { name: "raftmq-reader".into(), ..Default::default() }),
                message_queue: Some(mq(topic, group, queue)),
                offset,
                batch_size: max,
                filter_expression: self.tag_filter.clone(),
                long_polling_timeout: Some(prost_types::Duration {
                    seconds: long_poll.as_secs() as i64,
                    nanos: long_poll.subsec_nanos() as i32,
                }),
            });
            req.set_timeout(DEFAULT_TIMEOUT + long_poll);
            let mut stream = match c.pull_message(req).await {
                Ok(s) => s.into_inner(),
                Err(s) => {
                    last = Error::transport(&addr, s);
                    continue;
                }
            };
            let mut msgs = Vec::new();
            let mut next = offset;
            while let Some(item) = stream.next().await {
                match item.map_err(|s| Error::transport(&addr, s))?.content {
                    Some(Content::Status(s)) if s.code != v2::Code::MessageNotFound as i32 => {
                        Error::from_status(Some(&s))?
                    }
                    Some(Content::Message(m)) => msgs.push(pulled(m)),
                    Some(Content::NextOffset(n)) => next = n,
                    _ => {}
                }
            }
            return Ok((msgs, next));
        }
        Err(last)
    }

    /// The queue's min (BEGINNING) or max (END) offset.
    pub async fn query_offset(&self, topic: &str, group: &str, queue: i32, end: bool) -> Result<i64, Error> {
        let g = self.group(topic, group).await?;
        let mut last = Error::NotFound(format!("group '{group}' has no live replica"));
        for addr in addrs(&g) {
            let mut c = self.cluster.messaging(&addr)?;
            let policy = if end { v2::QueryOffsetPolicy::End } else { v2::QueryOffsetPolicy::Beginning };
            let mut req = tonic::Request::new(v2::QueryOffsetRequest {
                message_queue: Some(mq(topic, group, queue)),
                query_offset_policy: policy as i32,
                timestamp: None,
            });
            req.set_timeout(DEFAULT_TIMEOUT);
            match c.query_offset(req).await {
                Ok(r) => {
                    let r = r.into_inner();
                    Error::from_status(r.status.as_ref())?;
                    return Ok(r.offset);
                }
                Err(s) => last = Error::transport(&addr, s),
            }
        }
        Err(last)
    }
}

impl QueueReader {
    /// Commits `consumer_group`'s offset (the next offset to consume) for one queue through the
    /// v2 UpdateOffset RPC; the broker makes it a Raft entry. A replica is tried after another
    /// only when the request certainly was not delivered (the connection failed, or the broker
    /// answered that it has no leader, before proposing); any other failure is returned at once
    /// and leaves the outcome unknown, so one call never applies twice.
    pub async fn update_offset(
        &self,
        topic: &str,
        group: &str,
        queue: i32,
        consumer_group: &str,
        offset: i64,
    ) -> Result<(), Error> {
        let g = self.group(topic, group).await?;
        let mut last = Error::NotFound(format!("group '{group}' has no live replica"));
        for addr in addrs(&g) {
            let mut c = self.cluster.messaging(&addr)?;
            let mut req = tonic::Request::new(v2::UpdateOffsetRequest {
                group: Some(v2::Resource { name: consumer_group.to_string(), ..Default::default() }),
                message_queue: Some(mq(topic, group, queue)),
                offset,
            });
            req.set_timeout(DEFAULT_TIMEOUT);
            match c.update_offset(req).await {
                Ok(r) => match Error::from_status(r.into_inner().status.as_ref()) {
                    Err(e @ Error::Broker { code: v2::Code::HaNotAvailable, .. }) => last = e,
                    other => return other,
                },
                Err(s) if s.code() == tonic::Code::Unavailable => last = Error::transport(&addr, s),
                Err(s) => return Err(Error::transport(&addr, s)),
            }
        }
        Err(last)
    }

    /// `consumer_group`'s committed offset for one queue (GetOffset), `None` if none is stored.
    /// The answering replica reads what it has applied; the route's leader is asked first.
    pub async fn get_offset(
        &self,
        topic: &str,
        group: &str,
        queue: i32,
        consumer_group: &str,
    ) -> Result<Option<i64>, Error> {
        let g = self.group(topic, group).await?;
        let mut last = Error::NotFound(format!("group '{group}' has no live replica"));
        for addr in addrs(&g) {
            let mut c = self.cluster.messaging(&addr)?;
            let mut req = tonic::Request::new(v2::GetOffsetRequest {
                group: Some(v2::Resource { name: consumer_group.to_string(), ..Default::default() }),
                message_queue: Some(mq(topic, group, queue)),
            });
            req.set_timeout(DEFAULT_TIMEOUT);
            match c.get_offset(req).await {
                Ok(r) => {
                    let r = r.into_inner();
                    return match Error::from_status(r.status.as_ref()) {
                        Ok(()) => Ok(Some(r.offset)),
                        Err(Error::Broker { code: v2::Code::NotFound, .. }) => Ok(None),
                        Err(e) => Err(e),
                    };
                }
                Err(s) => last = Error::transport(&addr, s),
            }
        }
        Err(last)
    }
}

fn pulled(m: v2::Message) -> PulledMessage {
    let sys = m.system_properties.unwrap_or_default();
    PulledMessage {
        offset: sys.queue_offset.unwrap_or(-1),
        message_id: sys.message_id,
        tag: sys.tag,
        keys: sys.keys,
        body: m.body,
        store_timestamp_ms: sys.store_timestamp.map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000).unwrap_or(0),
    }
}
