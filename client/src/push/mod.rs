//! The push consumer: receives in the background and calls a listener for
//! each message, at most `concurrency` at a time.
//!
//! It is a [`SimpleConsumer`] driven by a loop: pop a batch (with the
//! invisible time), hand each message to the listener, acknowledge on
//! [`ConsumeResult::Success`] (acks of messages finishing together share one
//! request, one Raft entry). Several push consumers of one consumer group
//! (in one process or many) share the topic's messages: the broker's pop
//! gives each message to one of them.
//!
//! - **Failure**: [`ConsumeResult::Failure`] (or a panicking listener) makes
//!   the message invisible for a back-off, `retry_backoff` doubled per earlier
//!   attempt (1 s, 2 s, 4 s, ... at most 2 h); the broker then delivers it
//!   again with `delivery_attempt + 1`, to this consumer or another of the
//!   group. After the broker's maximum attempts it goes to the group's
//!   dead-letter topic `%DLQ%{group}`.
//! - **Long-running listeners**: while a message waits for a listener slot or
//!   is being handled, its invisible time is renewed (ChangeInvisibleDuration)
//!   when a third of it is left, and the new receipt handle is kept for the
//!   ack, so no other consumer gets it meanwhile.
//! - **Flow control**: receiving stops while the cache (messages received
//!   and not finished) holds `max_cached_messages` messages or
//!   `max_cached_bytes` bytes; see `flow.rs` for the exact bound.
//! - **Shutdown**: [`PushConsumer::shutdown`] stops receiving (after the
//!   receive under way, at most `long_poll`), waits for running listeners and
//!   their acks, and hands messages that never reached a listener back to the
//!   group (visible again after 1 s).
//!
//! Delivery is at least once: a message whose ack fails, or whose consumer
//! dies, is delivered again.
//!
//! Each broker group serving the topic gets its own receive loop, so an
//! empty group's long poll never holds up another group's messages; groups
//! the topic gains are picked up within a few seconds. The loops share the
//! listener slots and the flow-control limits.
//!
//! ```no_run
//! use raftmq_client::push::{ConsumeResult, PushConsumer};
//! use raftmq_client::Cluster;
//!
//! # async fn demo() -> Result<(), raftmq_client::Error> {
//! let cluster = Cluster::new(&["127.0.0.1:9876".to_string()])?;
//! let consumer = PushConsumer::builder(cluster, "my-group", "orders")
//!     .tag_filter("created || paid")
//!     .concurrency(8)
//!     .start(|m| {
//!         println!("{} (attempt {}): {:?}", m.message_id, m.delivery_attempt, m.body);
//!         ConsumeResult::Success
//!     })
//!     .await?;
//! tokio::signal::ctrl_c().await.ok();
//! consumer.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod acker;
mod flow;
mod handler;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::consumer::{ReceivedMessage, SimpleConsumer};
use crate::error::Error;

pub use flow::CacheLevel;
use flow::FlowControl;

/// What the listener made of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeResult {
    /// Handled: the message is acknowledged and not delivered again.
    Success,
    /// Not handled: the message is delivered again after a back-off.
    Failure,
}

type Listener = Arc<dyn Fn(&ReceivedMessage) -> ConsumeResult + Send + Sync>;

/// The push consumer's settings. The builder sets them; each field's doc
/// names its default.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Tag expression, `"a || b"`; default `"*"` (every message).
    pub tag_filter: String,
    /// Listeners running at once. Default 20.
    pub concurrency: usize,
    /// Most messages asked for in one receive. Default 32.
    pub batch_size: usize,
    /// How long a received message stays hidden from the rest of the group;
    /// renewed while it is handled. Default 30 s; 1 s to 12 h.
    pub invisible: Duration,
    /// How long one receive waits for messages when there are none. Default
    /// 5 s; also the longest a shutdown waits for the receive under way.
    pub long_poll: Duration,
    /// Receiving stops while this many messages are cached. Default 1024.
    pub max_cached_messages: usize,
    /// Receiving stops while this many body bytes are cached. Default 64 MiB.
    pub max_cached_bytes: usize,
    /// First back-off after a failure; doubled per attempt. Default 1 s.
    pub retry_backoff: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            tag_filter: "*".into(),
            concurrency: 20,
            batch_size: 32,
            invisible: Duration::from_secs(30),
            long_poll: Duration::from_secs(5),
            max_cached_messages: 1024,
            max_cached_bytes: 64 << 20,
            retry_backoff: Duration::from_secs(1),
        }
    }
}

impl PushConfig {
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: &str| Err(Error::InvalidArgument(format!("push consumer: {what}")));
        if self.concurrency == 0 {
            return bad("concurrency must be at least 1");
        }
        if !(1..=1024).contains(&self.batch_size) {
            return bad("batch_size must be 1..=1024");
        }
        if self.invisible < Duration::from_secs(1) || self.invisible > Duration::from_secs(12 * 3600) {
            return bad("invisible time must be 1 s to 12 h");
        }
        if self.long_poll > Duration::from_secs(20) {
            return bad("long_poll must be at most 20 s (the broker's limit)");
        }
        if self.max_cached_messages == 0 || self.max_cached_bytes == 0 {
            return bad("max_cached_messages and max_cached_bytes must be above zero");
        }
        if self.retry_backoff < Duration::from_secs(1) {
            return bad("retry_backoff must be at least 1 s (the broker's shortest invisible time)");
        }
        Ok(())
    }
}

/// Builds a [`PushConsumer`]; see [`PushConfig`] for the defaults.
pub struct PushConsumerBuilder {
    cluster: Cluster,
    group: String,
    topic: String,
    config: PushConfig,
}

impl PushConsumerBuilder {
    pub fn tag_filter(mut self, expr: &str) -> Self {
        self.config.tag_filter = expr.to_string();
        self
    }

    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.concurrency = n;
        self
    }

    pub fn batch_size(mut self, n: usize) -> Self {
        self.config.batch_size = n;
        self
    }

    pub fn invisible(mut self, d: Duration) -> Self {
        self.config.invisible = d;
        self
    }

    pub fn long_poll(mut self, d: Duration) -> Self {
        self.config.long_poll = d;
        self
    }

    pub fn max_cached_messages(mut self, n: usize) -> Self {
        self.config.max_cached_messages = n;
        self
    }

    pub fn max_cached_bytes(mut self, n: usize) -> Self {
        self.config.max_cached_bytes = n;
        self
    }

    pub fn retry_backoff(mut self, d: Duration) -> Self {
        self.config.retry_backoff = d;
        self
    }

    pub fn config(mut self, config: PushConfig) -> Self {
        self.config = config;
        self
    }

    /// Checks the settings and the topic's route, then starts receiving.
    /// The listener runs on Tokio's blocking pool, so it may block.
    pub async fn start<F>(self, listener: F) -> Result<PushConsumer, Error>
    where
        F: Fn(&ReceivedMessage) -> ConsumeResult + Send + Sync + 'static,
    {
        self.config.validate()?;
        let route = self.cluster.route(&self.topic).await?;
        if route.groups.is_empty() {
            return Err(Error::NotFound(format!("topic '{}' has no broker group", self.topic)));
        }
        let consumer = SimpleConsumer::new(self.cluster, &self.group, &self.topic)
            .with_invisible(self.config.invisible)
            .with_tag_filter(&self.config.tag_filter);
        let shared = Arc::new(Shared {
            consumer,
            listener: Arc::new(listener),
            slots: Semaphore::new(self.config.concurrency),
            flow: FlowControl::new(self.config.max_cached_messages, self.config.max_cached_bytes),
            stats: Counters::default(),
            config: self.config,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(receive_loop(shared.clone(), stopped));
        Ok(PushConsumer { shared, stop, task: Some(task) })
    }
}

/// What the receive loop and the message handlers share.
pub(crate) struct Shared {
    consumer: SimpleConsumer,
    listener: Listener,
    /// One permit per listener that may run.
    slots: Semaphore,
    flow: FlowControl,
    stats: Counters,
    config: PushConfig,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    redelivered: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    acked: AtomicU64,
    ack_requests: AtomicU64,
    ack_errors: AtomicU64,
    renewals: AtomicU64,
    renew_errors: AtomicU64,
    receive_errors: AtomicU64,
    handed_back: AtomicU64,
}

/// Counts since start, and the cache level.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PushStats {
    pub received: u64,
    /// Received with `delivery_attempt > 1`.
    pub redelivered: u64,
    /// Listener calls that returned [`ConsumeResult::Success`].
    pub succeeded: u64,
    /// Listener calls that returned [`ConsumeResult::Failure`] or panicked.
    pub failed: u64,
    pub acked: u64,
    /// AckMessage requests sent: below `acked` when acks shared requests.
    pub ack_requests: u64,
    pub ack_errors: u64,
    pub renewals: u64,
    pub renew_errors: u64,
    pub receive_errors: u64,
    /// Messages returned to the group at shutdown without reaching a listener.
    pub handed_back: u64,
    pub cache: CacheLevel,
}

/// Stops receiving when dropped; [`PushConsumer::shutdown`] also waits for
/// the messages under way.
pub struct PushConsumer {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Drop for PushConsumer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl PushConsumer {
    /// A builder for a consumer of `topic` in consumer group `group`.
    pub fn builder(cluster: Cluster, group: &str, topic: &str) -> PushConsumerBuilder {
        PushConsumerBuilder {
            cluster,
            group: group.to_string(),
            topic: topic.to_string(),
            config: PushConfig::default(),
        }
    }

    pub fn stats(&self) -> PushStats {
        let c = &self.shared.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PushStats {
            received: get(&c.received),
            redelivered: get(&c.redelivered),
            succeeded: get(&c.succeeded),
            failed: get(&c.failed),
            acked: get(&c.acked),
            ack_requests: get(&c.ack_requests),
            ack_errors: get(&c.ack_errors),
            renewals: get(&c.renewals),
            renew_errors: get(&c.renew_errors),
            receive_errors: get(&c.receive_errors),
            handed_back: get(&c.handed_back),
            cache: self.shared.flow.level(),
        }
    }

    /// Stops receiving, waits for running listeners and their acks, hands
    /// back messages no listener started on; returns the final counts.
    pub async fn shutdown(mut self) -> PushStats {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::error!("push consumer receive loop ended abnormally: {e}");
        }
        self.stats()
    }
}

/// Pause after a failed receive, so a broker outage is not met with a busy loop.
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(500);
/// How often the broker groups serving the topic are looked up again.
const GROUPS_REFRESH: Duration = Duration::from_secs(5);

/// Runs one receive loop per broker group of the topic (so an empty group's
/// long poll never holds up another's messages), starting loops for groups
/// that appear; a loop whose group no longer serves the topic ends by itself.
async fn receive_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let (acks, ack_requests) = tokio::sync::mpsc::unbounded_channel();
    let acker = tokio::spawn(acker::run(shared.clone(), ack_requests));
    let mut loops: JoinSet<String> = JoinSet::new();
    let mut running: std::collections::BTreeSet<String> = Default::default();
    loop {
        while let Some(done) = loops.try_join_next() {
            match done {
                Ok(group) => {
                    running.remove(&group);
                }
                Err(e) => tracing::error!("push consumer receive loop ended abnormally: {e}"),
            }
        }
        match shared.consumer.broker_groups().await {
            Ok(groups) => {
                for g in groups {
                    if running.insert(g.clone()) {
                        loops.spawn(group_loop(shared.clone(), g, stop.clone(), acks.clone()));
                    }
                }
            }
            Err(e) => {
                shared.stats.receive_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic = shared.consumer.topic(), "route lookup failed: {e}");
            }
        }
        let pause = if running.is_empty() { RECEIVE_ERROR_PAUSE } else { GROUPS_REFRESH };
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    while let Some(r) = loops.join_next().await {
        if let Err(e) = r {
            tracing::error!("push consumer receive loop ended abnormally: {e}");
        }
    }
    // Every handler is done with its ack; the acker ends with the last sender.
    drop(acks);
    if let Err(e) = acker.await {
        tracing::error!("push consumer ack task ended abnormally: {e}");
    }
}

/// Receives from one broker group until shutdown (then waits for its
/// handlers), or until the group no longer serves the topic. Returns the group.
async fn group_loop(
    shared: Arc<Shared>,
    group: String,
    mut stop: watch::Receiver<bool>,
    acks: tokio::sync::mpsc::UnboundedSender<acker::AckRequest>,
) -> String {
    let mut handlers = JoinSet::new();
    let c = &shared.stats;
    loop {
        while handlers.try_join_next().is_some() {}
        let mut room = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            room = shared.flow.reserve(shared.config.batch_size) => room,
        };
        let sent = Instant::now();
        // Not cancelled by shutdown: messages popped by a cancelled receive
        // would stay hidden from the whole group for the invisible time.
        match shared.consumer.receive_from(&group, room.messages as i32, shared.config.long_poll).await {
            Ok(batch) => {
                for m in batch {
                    c.received.fetch_add(1, Ordering::Relaxed);
                    if m.delivery_attempt > 1 {
                        c.redelivered.fetch_add(1, Ordering::Relaxed);
                    }
                    shared.flow.add(&mut room, m.body.len());
                    let deadline = sent + shared.config.invisible;
                    handlers.spawn(handler::handle(shared.clone(), m, deadline, stop.clone(), acks.clone()));
                }
            }
            Err(Error::NotFound(why)) => {
                tracing::info!(topic = shared.consumer.topic(), group, "receive loop ends: {why}");
                break;
            }
            Err(e) => {
                drop(room);
                c.receive_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic = shared.consumer.topic(), group, "receive failed: {e}");
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    _ = tokio::time::sleep(RECEIVE_ERROR_PAUSE) => {}
                }
            }
        }
    }
    while let Some(r) = handlers.join_next().await {
        if let Err(e) = r {
            tracing::error!("push consumer message handler ended abnormally: {e}");
        }
    }
    group
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let c = PushConfig::default();
        assert!(c.validate().is_ok());
        assert_eq!((c.concurrency, c.max_cached_messages, c.max_cached_bytes), (20, 1024, 64 << 20));
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = [
            PushConfig { concurrency: 0, ..Default::default() },
            PushConfig { batch_size: 0, ..Default::default() },
            PushConfig { invisible: Duration::from_millis(500), ..Default::default() },
            PushConfig { long_poll: Duration::from_secs(30), ..Default::default() },
            PushConfig { max_cached_bytes: 0, ..Default::default() },
            PushConfig { retry_backoff: Duration::ZERO, ..Default::default() },
        ];
        for c in bad {
            assert!(matches!(c.validate(), Err(Error::InvalidArgument(_))), "{c:?}");
        }
    }
}
