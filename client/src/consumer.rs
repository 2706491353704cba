//! The simple consumer: pop messages with an invisible time, then ack each
//! (or change its invisible time to retry later). Pop state is replicated, so
//! a leader change neither loses an unacknowledged message nor redelivers an
//! acknowledged one as new.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use raftmq_proto::rocketmq::v2;

use crate::cluster::{Cluster, DEFAULT_TIMEOUT, replica_addrs as addrs};
use crate::error::Error;
use raftmq_proto::namesrv::GroupRoute;

/// One delivered message.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub topic: String,
    pub message_id: String,
    pub tag: Option<String>,
    pub keys: Vec<String>,
    pub body: bytes::Bytes,
    /// 1 on first delivery.
    pub delivery_attempt: i32,
    pub queue_id: i32,
    pub queue_offset: i64,
    /// The broker group that delivered it (acks go there).
    pub broker_group: String,
    pub receipt_handle: String,
}

pub struct SimpleConsumer {
    cluster: Cluster,
    group: String,
    topic: String,
    invisible: Duration,
    /// A tag expression (`"a || b"`, `"*"`); `None` receives every message.
    tag_filter: Option<v2::FilterExpression>,
    next_group: AtomicUsize,
}

fn res(name: &str) -> Option<v2::Resource> {
    Some(v2::Resource { name: name.to_string(), ..Default::default() })
}

fn dur(d: Duration) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 })
}

impl SimpleConsumer {
    /// `invisible`: how long a received message stays hidden before it is
    /// delivered again (default 15 s, as the official clients).
    pub fn new(cluster: Cluster, group: &str, topic: &str) -> Self {
        Self {
            cluster,
            group: group.to_string(),
            topic: topic.to_string(),
            invisible: Duration::from_secs(15),
            tag_filter: None,
            next_group: AtomicUsize::new(0),
        }
    }

    pub fn with_invisible(mut self, invisible: Duration) -> Self {
        self.invisible = invisible;
        self
    }

    /// Receives only messages whose tag matches `expr` (`"a || b"`; `"*"` or
    /// an empty string: all). The broker filters, so skipped messages never
    /// travel; they count as consumed for this consumer group.
    pub fn with_tag_filter(mut self, expr: &str) -> Self {
        self.tag_filter = tag_filter(expr);
        self
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn invisible(&self) -> Duration {
        self.invisible
    }

    /// Up to `max` messages from one broker group (rotating), waiting up to
    /// `wait` when there are none.
    pub async fn receive(&self, max: i32, wait: Duration) -> Result<Vec<ReceivedMessage>, Error> {
        let route = self.cluster.route(&self.topic).await?;
        if route.groups.is_empty() {
            return Err(Error::NotFound(format!("topic '{}' has no broker group", self.topic)));
        }
        let g = &route.groups[self.next_group.fetch_add(1, Ordering::Relaxed) % route.groups.len()];
        self.receive_on(g, max, wait).await
    }

    /// Up to `max` messages from broker group `broker_group`, waiting up to
    /// `wait` when there are none. `NotFound` once the group no longer serves the topic.
    pub async fn receive_from(
        &self,
        broker_group: &str,
        max: i32,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, Error> {
        let route = self.cluster.route(&self.topic).await?;
        let g =
            route.groups.iter().find(|g| g.group == broker_group).ok_or_else(|| {
                Error::NotFound(format!("broker group '{broker_group}' does not serve '{}'", self.topic))
            })?;
        self.receive_on(g, max, wait).await
    }

    /// The broker groups serving the topic now.
    pub async fn broker_groups(&self) -> Result<Vec<String>, Error> {
        Ok(self.cluster.route(&self.topic).await?.groups.iter().map(|g| g.group.clone()).collect())
    }

    async fn receive_on(&self, g: &GroupRoute, max: i32, wait: Duration) -> Result<Vec<ReceivedMessage>, Error> {
        let mut last = Error::NotFound(format!("group '{}' has no live replica", g.group));
        // One id for every try of this receive: if a replica popped for a try
        // whose response was lost, the next try gets those same deliveries
        // back instead of leaving them invisible (and an orderly queue locked).
        let attempt_id = format!("{:032x}", rand::random::<u128>());
        for addr in addrs(g) {
            let mut c = self.cluster.messaging(&addr)?;
            let mut req = tonic::Request::new(v2::ReceiveMessageRequest {
                attempt_id: Some(attempt_id.clone()),
                group: res(&self.group),
                message_queue: Some(v2::MessageQueue {
                    topic: res(&self.topic),
                    broker: Some(v2::Broker { name: g.group.clone(), ..Default::default() }),
                    ..Default::default()
                }),
                batch_size: max,
                filter_expression: self.tag_filter.clone(),
                invisible_duration: dur(self.invisible),
                long_polling_timeout: dur(wait),
                ..Default::default()
            });
            req.set_timeout(DEFAULT_TIMEOUT + wait);
            let mut stream = match c.receive_message(req).await {
                Ok(s) => s.into_inner(),
                Err(s) => {
                    last = Error::transport(&addr, s);
                    continue;
                }
            };
            let mut out = Vec::new();
            while let Some(item) = stream.next().await {
                match item.map_err(|s| Error::transport(&addr, s))?.content {
                    Some(v2::receive_message_response::Content::Status(s))
                        if s.code != v2::Code::MessageNotFound as i32 =>
                    {
                        Error::from_status(Some(&s))?
                    }
                    Some(v2::receive_message_response::Content::Message(m)) => out.push(received(m, &g.group)),
                    _ => {}
                }
            }
            return Ok(out);
        }
        Err(last)
    }

    async fn on_group<T, F, Fut>(&self, broker_group: &str, call: F) -> Result<T, Error>
    where
        F: Fn(
            raftmq_proto::rocketmq::v2::messaging_service_client::MessagingServiceClient<tonic::transport::Channel>,
        ) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let route = self.cluster.route(&self.topic).await?;
        let g = route.groups.iter().find(|g| g.group == broker_group).ok_or_else(|| {
            Error::NotFound(format!("broker group '{broker_group}' no longer serves '{}'", self.topic))
        })?;
        let mut last = Error::NotFound(format!("group '{broker_group}' has no live replica"));
        for addr in addrs(g) {
            match call(self.cluster.messaging(&addr)?).await {
                Ok(r) => return Ok(r),
                Err(s) => last = Error::transport(&addr, s),
            }
        }
        Err(last)
    }

    /// Acknowledges a message: it will not be delivered again.
    pub async fn ack(&self, m: &ReceivedMessage) -> Result<(), Error> {
        let req = v2::AckMessageRequest {
            group: res(&self.group),
            topic: res(&m.topic),
            entries: vec![v2::AckMessageEntry {
                message_id: m.message_id.clone(),
                receipt_handle: m.receipt_handle.clone(),
                ..Default::default()
            }],
        };
        let resp = self
            .on_group(&m.broker_group, |mut c| {
                let mut r = tonic::Request::new(req.clone());
                r.set_timeout(DEFAULT_TIMEOUT);
                async move { c.ack_message(r).await.map(|r| r.into_inner()) }
            })
            .await?;
        Error::from_status(resp.status.as_ref())
    }

    /// Acknowledges several messages delivered by one broker group in one
    /// request (one Raft entry); returns one result per message.
    pub async fn ack_all(&self, msgs: &[ReceivedMessage]) -> Result<Vec<Result<(), Error>>, Error> {
        let Some(first) = msgs.first() else { return Ok(Vec::new()) };
        if msgs.iter().any(|m| m.broker_group != first.broker_group || m.topic != first.topic) {
            return Err(Error::InvalidArgument("ack_all takes messages of one topic from one broker group".into()));
        }
        // Built for each attempt rather than built once and cloned: a batch is hundreds of
        // handles, and nearly always the first attempt is the only one.
        let req = || v2::AckMessageRequest {
            group: res(&self.group),
            topic: res(&first.topic),
            entries: msgs
                .iter()
                .map(|m| v2::AckMessageEntry {
                    message_id: m.message_id.clone(),
                    receipt_handle: m.receipt_handle.clone(),
                    ..Default::default()
                })
                .collect(),
        };
        let resp = self
            .on_group(&first.broker_group, |mut c| {
                let mut r = tonic::Request::new(req());
                r.set_timeout(DEFAULT_TIMEOUT);
                async move { c.ack_message(r).await.map(|r| r.into_inner()) }
            })
            .await?;
        if resp.entries.len() != msgs.len() {
            Error::from_status(resp.status.as_ref())?;
            return Err(Error::Broker {
                code: v2::Code::InternalError,
                message: "ack answered the wrong number of entries".into(),
            });
        }
        Ok(resp.entries.iter().map(|e| Error::from_status(e.status.as_ref())).collect())
    }

    /// Hides the message for `invisible` from now (a retry after a delay, or
    /// more time to process it); the message's receipt handle is replaced.
    pub async fn change_invisible(&self, m: &mut ReceivedMessage, invisible: Duration) -> Result<(), Error> {
        let req = v2::ChangeInvisibleDurationRequest {
            group: res(&self.group),
            topic: res(&m.topic),
            receipt_handle: m.receipt_handle.clone(),
            invisible_duration: dur(invisible),
            message_id: m.message_id.clone(),
            ..Default::default()
        };
        let resp = self
            .on_group(&m.broker_group, |mut c| {
                let mut r = tonic::Request::new(req.clone());
                r.set_timeout(DEFAULT_TIMEOUT);
                async move { c.change_invisible_duration(r).await.map(|r| r.into_inner()) }
            })
            .await?;
        Error::from_status(resp.status.as_ref())?;
        m.receipt_handle = resp.receipt_handle;
        Ok(())
    }
}

/// A tag filter for the wire; `None` for "every message" (`"*"` or empty).
pub(crate) fn tag_filter(expr: &str) -> Option<v2::FilterExpression> {
    let expr = expr.trim();
    (!expr.is_empty() && expr != "*")
        .then(|| v2::FilterExpression { r#type: v2::FilterType::Tag as i32, expression: expr.to_string() })
}

fn received(m: v2::Message, broker_group: &str) -> ReceivedMessage {
    let sys = m.system_properties.unwrap_or_default();
    ReceivedMessage {
        topic: m.topic.map(|t| t.name).unwrap_or_default(),
        message_id: sys.message_id,
        tag: sys.tag,
        keys: sys.keys,
        body: m.body,
        delivery_attempt: sys.delivery_attempt.unwrap_or(1),
        queue_id: sys.queue_id,
        queue_offset: sys.queue_offset.unwrap_or(-1),
        broker_group: broker_group.to_string(),
        receipt_handle: sys.receipt_handle.unwrap_or_default(),
    }
}
