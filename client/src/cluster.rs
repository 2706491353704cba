//! The cluster as a client sees it: nameservers for routes, and gRPC channels
//! to broker replicas (one per address, shared).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raftmq_proto::broker::admin_client::AdminClient;
use raftmq_proto::broker::{
    ConsumerGroupConfig, ConsumerGroupRequest, ConsumerProgressRequest, CreateTopicRequest, QueueProgress, TopicConfig,
};
use raftmq_proto::namesrv::name_server_client::NameServerClient;
use raftmq_proto::namesrv::{ClusterInfoRequest, GroupInfo, GroupRoute, QueryRouteRequest};
use raftmq_proto::rocketmq::v2::MessageType;
use raftmq_proto::rocketmq::v2::messaging_service_client::MessagingServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::error::Error;

/// Per-call deadline for unary requests.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct Cluster {
    namesrv: Vec<String>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

/// The group's leader first, then its other replicas (each forwards to the leader).
pub(crate) fn replica_addrs(g: &GroupRoute) -> Vec<String> {
    let mut a = Vec::new();
    if !g.leader_addr.is_empty() {
        a.push(g.leader_addr.clone());
    }
    a.extend(g.nodes.iter().map(|n| n.addr.clone()).filter(|x| *x != g.leader_addr));
    a
}

/// A topic's route: the broker groups that serve it.
#[derive(Debug, Clone)]
pub struct TopicRoute {
    pub groups: Vec<GroupRoute>,
}

impl Cluster {
    /// `namesrv`: one or more nameserver addresses (host:port).
    pub fn new(namesrv: &[String]) -> Result<Self, Error> {
        if namesrv.is_empty() {
            return Err(Error::InvalidArgument("at least one nameserver address is needed".into()));
        }
        Ok(Self { namesrv: namesrv.to_vec(), channels: Arc::default() })
    }

    pub fn channel(&self, addr: &str) -> Result<Channel, Error> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let ch = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Error::InvalidArgument(format!("bad address {addr}: {e}")))?
            .connect_timeout(Duration::from_millis(500))
            .http2_keep_alive_interval(Duration::from_millis(500))
            .keep_alive_timeout(Duration::from_millis(1000))
            .keep_alive_while_idle(true)
            .tcp_nodelay(true)
            .connect_lazy();
        map.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }

    pub fn messaging(&self, addr: &str) -> Result<MessagingServiceClient<Channel>, Error> {
        Ok(MessagingServiceClient::new(self.channel(addr)?)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20))
    }

    pub fn admin(&self, addr: &str) -> Result<AdminClient<Channel>, Error> {
        Ok(AdminClient::new(self.channel(addr)?))
    }

    /// Asks the nameservers in turn; the first answer wins.
    pub async fn route(&self, topic: &str) -> Result<TopicRoute, Error> {
        let mut last = Error::NotFound(format!("no nameserver answered for topic '{topic}'"));
        for ns in &self.namesrv {
            let mut c = NameServerClient::new(self.channel(ns)?);
            let mut req = tonic::Request::new(QueryRouteRequest { topic: topic.to_string() });
            req.set_timeout(DEFAULT_TIMEOUT);
            match c.query_route(req).await {
                Ok(r) => return Ok(TopicRoute { groups: r.into_inner().groups }),
                Err(s) if s.code() == tonic::Code::NotFound => last = Error::NotFound(s.message().to_string()),
                Err(s) => last = Error::transport(ns, s),
            }
        }
        Err(last)
    }

    pub async fn groups(&self) -> Result<Vec<GroupInfo>, Error> {
        let mut last = Error::NotFound("no nameserver answered".into());
        for ns in &self.namesrv {
            let mut c = NameServerClient::new(self.channel(ns)?);
            let mut req = tonic::Request::new(ClusterInfoRequest {});
            req.set_timeout(DEFAULT_TIMEOUT);
            match c.cluster_info(req).await {
                Ok(r) => return Ok(r.into_inner().groups),
                Err(s) => last = Error::transport(ns, s),
            }
        }
        Err(last)
    }

    /// Creates `topic` with `queues` queues on each of `groups` (all groups when
    /// empty), then waits until the nameservers route it. It accepts normal
    /// messages only; see [`Cluster::create_topic_accepting`].
    pub async fn create_topic(&self, topic: &str, queues: u32, groups: &[String]) -> Result<(), Error> {
        self.create_topic_accepting(topic, queues, &[], groups).await
    }

    /// As [`Cluster::create_topic`], for a topic that accepts `types` (empty:
    /// normal only). Messages with a message group need
    /// [`MessageType::Fifo`].
    pub async fn create_topic_accepting(
        &self,
        topic: &str,
        queues: u32,
        types: &[MessageType],
        groups: &[String],
    ) -> Result<(), Error> {
        let all = self.groups().await?;
        let targets: Vec<&GroupInfo> = all.iter().filter(|g| groups.is_empty() || groups.contains(&g.group)).collect();
        if targets.is_empty() {
            return Err(Error::NotFound(format!("none of the groups {groups:?} is registered")));
        }
        for g in &targets {
            let config = TopicConfig {
                name: topic.to_string(),
                queue_count: queues,
                message_types: types.iter().map(|t| *t as i32).collect(),
                ..Default::default()
            };
            self.on_group(g, |mut admin| {
                let config = config.clone();
                async move {
                    let mut req = tonic::Request::new(CreateTopicRequest { topic: Some(config) });
                    req.set_timeout(DEFAULT_TIMEOUT);
                    let r = admin.create_topic(req).await?.into_inner();
                    Ok(r.error)
                }
            })
            .await?;
        }
        // Brokers report topics on their next heartbeat; wait for it so the
        // caller can send at once.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = self.route(topic).await
                && targets.iter().all(|g| r.groups.iter().any(|rg| rg.group == g.group))
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::NotFound(format!("topic '{topic}' was created but no nameserver routes it yet")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates a consumer group on every broker group (or on `groups`):
    /// `fifo` for orderly consumption, `max_delivery_attempts` before the
    /// dead-letter queue (0 = the broker's default of 17).
    pub async fn create_consumer_group(
        &self,
        name: &str,
        fifo: bool,
        max_delivery_attempts: i32,
        groups: &[String],
    ) -> Result<(), Error> {
        let all = self.groups().await?;
        let config = ConsumerGroupConfig { name: name.to_string(), fifo, max_delivery_attempts };
        let targets: Vec<&GroupInfo> = all.iter().filter(|g| groups.is_empty() || groups.contains(&g.group)).collect();
        if targets.is_empty() {
            return Err(Error::NotFound(format!("none of the groups {groups:?} is registered")));
        }
        for g in targets {
            self.on_group(g, |mut admin| {
                let config = config.clone();
                async move {
                    let mut req = tonic::Request::new(ConsumerGroupRequest { group: Some(config) });
                    req.set_timeout(DEFAULT_TIMEOUT);
                    Ok(admin.create_consumer_group(req).await?.into_inner().error)
                }
            })
            .await?;
        }
        Ok(())
    }

    /// A consumer group's progress on every queue of `topic`, per broker group
    /// (in route order): committed offsets and pop progress, read after a
    /// read barrier on the answering replica.
    pub async fn consumer_progress(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<Vec<(String, Vec<QueueProgress>)>, Error> {
        let route = self.route(topic).await?;
        let all = self.groups().await?;
        let mut out = Vec::new();
        for r in &route.groups {
            let g = all.iter().find(|g| g.group == r.group).ok_or_else(|| {
                Error::NotFound(format!("broker group '{}' routes '{topic}' but is not registered", r.group))
            })?;
            let found = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            self.on_group(g, |mut admin| {
                let (found, req) =
                    (found.clone(), ConsumerProgressRequest { group: group.into(), topic: topic.into() });
                async move {
                    let mut req = tonic::Request::new(req);
                    req.set_timeout(DEFAULT_TIMEOUT);
                    let r = admin.consumer_progress(req).await?.into_inner();
                    *found.lock().unwrap_or_else(|p| p.into_inner()) = r.queues;
                    Ok(r.error)
                }
            })
            .await?;
            let queues = std::mem::take(&mut *found.lock().unwrap_or_else(|p| p.into_inner()));
            out.push((r.group.clone(), queues));
        }
        Ok(out)
    }

    /// Runs an admin call against a group, leader first, then the other replicas.
    pub async fn on_group<F, Fut>(&self, g: &GroupInfo, call: F) -> Result<(), Error>
    where
        F: Fn(AdminClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<Option<raftmq_proto::broker::Error>, tonic::Status>>,
    {
        let mut addrs: Vec<&str> = Vec::new();
        if !g.leader_addr.is_empty() {
            addrs.push(&g.leader_addr);
        }
        addrs.extend(g.nodes.iter().map(|n| n.addr.as_str()).filter(|a| *a != g.leader_addr));
        let mut last = Error::NotFound(format!("group '{}' has no live replica", g.group));
        for addr in addrs {
            match call(self.admin(addr)?).await {
                Ok(None) => return Ok(()),
                Ok(Some(e)) => {
                    let code = raftmq_proto::rocketmq::v2::Code::try_from(e.code)
                        .unwrap_or(raftmq_proto::rocketmq::v2::Code::InternalError);
                    return Err(Error::Broker { code, message: e.message });
                }
                Err(s) => last = Error::transport(addr, s),
            }
        }
        Err(last)
    }
}
