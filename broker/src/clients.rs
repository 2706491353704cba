//! The clients connected to this replica: their Telemetry settings and the
//! stream to push commands to them.
//!
//! This is per-node, soft state (it is not replicated): a client that
//! reconnects elsewhere re-sends its settings. What must survive failover
//! (offsets, pop state, transactions) lives in the Raft log instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raftmq_proto::broker::ConsumerGroupConfig;
use raftmq_proto::rocketmq::v2::{self as v2, settings::PubSub};
use tokio::sync::mpsc;

/// Server policy merged into every client's settings.
#[derive(Debug, Clone)]
pub struct ServerPolicy {
    pub max_body_bytes: usize,
    pub receive_batch_size: i32,
    pub long_polling_timeout: Duration,
    /// Delivery attempts before a message goes to the dead-letter queue (RocketMQ: 16 retries + 1).
    pub max_delivery_attempts: i32,
    /// Whether a receive may create an unknown consumer group (RocketMQ's
    /// `autoCreateSubscriptionGroup`); when not, it answers CONSUMER_GROUP_NOT_FOUND.
    pub auto_create_groups: bool,
    /// Orderly consumption; set per consumer group by [`ServerPolicy::for_group`].
    pub fifo: bool,
}

impl ServerPolicy {
    /// This policy with a consumer group's own settings over it.
    pub fn for_group(&self, g: Option<&ConsumerGroupConfig>) -> ServerPolicy {
        let mut p = self.clone();
        if let Some(g) = g {
            p.fifo = g.fifo;
            if g.max_delivery_attempts > 0 {
                p.max_delivery_attempts = g.max_delivery_attempts;
            }
        }
        p
    }
}

impl Default for ServerPolicy {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            receive_batch_size: 32,
            long_polling_timeout: Duration::from_secs(20),
            max_delivery_attempts: 17,
            auto_create_groups: true,
            fifo: false,
        }
    }
}

/// One connected client.
#[derive(Debug, Clone)]
pub struct ClientSession {
    pub settings: v2::Settings,
    pub last_seen: Instant,
    /// Commands to push down the client's Telemetry stream (None if it has none open).
    pub commands: Option<mpsc::UnboundedSender<v2::TelemetryCommand>>,
}

#[derive(Default, Clone)]
pub struct ClientRegistry {
    inner: Arc<Mutex<HashMap<String, ClientSession>>>,
}

fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

impl ClientRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ClientSession>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a client's settings and returns them merged with server policy,
    /// as the Telemetry reply. Always carries an exponential back-off: the
    /// Node client crashes without one and ignores customized back-off.
    pub fn register(
        &self,
        client_id: &str,
        settings: v2::Settings,
        commands: Option<mpsc::UnboundedSender<v2::TelemetryCommand>>,
        policy: &ServerPolicy,
    ) -> v2::Settings {
        let merged = merge(settings.clone(), policy);
        self.lock().insert(client_id.to_string(), ClientSession { settings, last_seen: Instant::now(), commands });
        merged
    }

    pub fn touch(&self, client_id: &str) {
        if let Some(s) = self.lock().get_mut(client_id) {
            s.last_seen = Instant::now();
        }
    }

    pub fn remove(&self, client_id: &str) -> bool {
        self.lock().remove(client_id).is_some()
    }

    /// Whether the client is connected (cheaper than [`get`](Self::get), which copies its settings).
    pub fn contains(&self, client_id: &str) -> bool {
        self.lock().contains_key(client_id)
    }

    pub fn get(&self, client_id: &str) -> Option<ClientSession> {
        self.lock().get(client_id).cloned()
    }

    /// Client ids of live producers that declared `topic` (orphan transaction checks go to one).
    pub fn producers_of(&self, topic: &str) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, s)| s.commands.is_some())
            .filter(|(_, s)| match &s.settings.pub_sub {
                Some(PubSub::Publishing(p)) => p.topics.iter().any(|t| t.name == topic),
                _ => false,
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn merge(mut s: v2::Settings, policy: &ServerPolicy) -> v2::Settings {
    let exp = |initial: Duration, max: Duration, multiplier: f32, attempts: i32| v2::RetryPolicy {
        max_attempts: attempts,
        strategy: Some(v2::retry_policy::Strategy::ExponentialBackoff(v2::ExponentialBackoff {
            initial: Some(duration(initial)),
            max: Some(duration(max)),
            multiplier,
        })),
    };
    match &mut s.pub_sub {
        Some(PubSub::Publishing(p)) => {
            p.max_body_size = policy.max_body_bytes as i32;
            p.validate_message_type = true;
            s.backoff_policy = Some(exp(Duration::from_millis(10), Duration::from_secs(1), 2.0, 3));
        }
        Some(PubSub::Subscription(sub)) => {
            // The server decides: clients consume orderly only when told to.
            sub.fifo = Some(policy.fifo);
            sub.receive_batch_size = Some(policy.receive_batch_size);
            sub.long_polling_timeout = Some(duration(policy.long_polling_timeout));
            s.backoff_policy =
                Some(exp(Duration::from_secs(1), Duration::from_secs(2 * 3600), 2.0, policy.max_delivery_attempts));
        }
        None => {}
    }
    s.metric = Some(v2::Metric { on: false, endpoints: None });
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_settings_carry_backoff_and_body_limit() {
        let reg = ClientRegistry::default();
        let s = v2::Settings {
            pub_sub: Some(PubSub::Publishing(v2::Publishing {
                topics: vec![v2::Resource { name: "t".into(), ..Default::default() }],
                ..Default::default()
            })),
            ..Default::default()
        };
        let (tx, _rx) = mpsc::unbounded_channel();
        let merged = reg.register("c1", s, Some(tx), &ServerPolicy::default());
        let Some(PubSub::Publishing(p)) = merged.pub_sub else { panic!("publishing") };
        assert_eq!(p.max_body_size, 4 * 1024 * 1024);
        assert!(matches!(
            merged.backoff_policy.and_then(|b| b.strategy),
            Some(v2::retry_policy::Strategy::ExponentialBackoff(_))
        ));
        assert_eq!(reg.producers_of("t"), vec!["c1".to_string()]);
        assert!(reg.producers_of("u").is_empty());
        assert!(reg.remove("c1"));
        assert!(reg.is_empty());
    }

    #[test]
    fn consumer_settings_get_batch_and_poll() {
        let reg = ClientRegistry::default();
        let s = v2::Settings { pub_sub: Some(PubSub::Subscription(v2::Subscription::default())), ..Default::default() };
        let merged = reg.register("c2", s, None, &ServerPolicy::default());
        let Some(PubSub::Subscription(sub)) = merged.pub_sub else { panic!("subscription") };
        assert_eq!(sub.receive_batch_size, Some(32));
        assert_eq!(merged.backoff_policy.map(|b| b.max_attempts), Some(17));
    }
}
