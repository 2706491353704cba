//! Checklist 10(a) of the protocol reference, end to end: a producer sends
//! `N` messages and a simple consumer (group "cg", subscription "*") receives
//! and acknowledges every one of them, on a 3-replica group; once on a stable
//! group and once with the leader killed mid-stream.
//!
//! Each scenario runs twice, side by side: with the official RocketMQ 5 Rust
//! client (crates.io `rocketmq` 5.0.0), whose access point is a FOLLOWER
//! replica (raftmq answers QueryRoute with the asked node's own address and
//! every node forwards to the leader, so the client's route, cached forever,
//! stays valid across a leader change), and with raftmq's own SDK.
//!
//! A send that fails after the kill is retried (a new message each time); the
//! consumer must then deliver every id whose send succeeded. A failed attempt
//! whose outcome was unknown may still have been stored: such extra ids are
//! acknowledged and reported, not counted as errors.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use raftmq_cli::devcluster::DevCluster;
use rocketmq::conf::{ClientOption, ProducerOption, SimpleConsumerOption};
use rocketmq::error::ClientError;
use rocketmq::model::common::{FilterExpression, FilterType};
use rocketmq::model::message::MessageBuilder;
use tempfile::TempDir;
use tokio::time::Instant;

const N: usize = 100;
const TOPIC: &str = "t";
const GROUP: &str = "cg";
/// Longest a single client call may take before the test calls it a hang. The
/// official client's unary deadline is 3 s; its receive deadline 40 s, but
/// raftmq ends a poll at 20 s.
const CALL_LIMIT: Duration = Duration::from_secs(25);
/// Budget to get every send of a scenario through, outage included.
const SEND_BUDGET: Duration = Duration::from_secs(20);
/// Budget to receive and acknowledge every sent message.
const RECEIVE_BUDGET: Duration = Duration::from_secs(30);

struct Fixture {
    cluster: DevCluster,
    /// The follower replica the official client uses as its access point.
    access: String,
    access_index: usize,
    _dir: TempDir,
}

/// A 3-replica group with topic `TOPIC` (4 queues) and the address of a follower.
async fn start(base_port: u16) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = DevCluster::three_replicas(dir.path(), base_port).await.expect("dev cluster starts");
    raftmq_client::Cluster::new(std::slice::from_ref(&cluster.namesrv_addr))
        .expect("sdk cluster")
        .create_topic(TOPIC, 4, &[])
        .await
        .expect("create topic");
    let leader = cluster.leader_of(0).expect("a leader");
    let access_index = (leader + 1) % 3;
    let access = cluster.nodes[0][access_index].as_ref().expect("follower is up").addr.clone();
    Fixture { cluster, access, access_index, _dir: dir }
}

impl Fixture {
    fn sdk(&self) -> raftmq_client::Cluster {
        raftmq_client::Cluster::new(std::slice::from_ref(&self.cluster.namesrv_addr)).expect("sdk cluster")
    }

    /// Kills the leader (never the access point); returns the killed index.
    async fn kill_leader(&mut self) -> usize {
        let leader = self.cluster.leader_of(0).expect("a leader");
        assert_ne!(leader, self.access_index, "the access point must be a follower");
        self.cluster.kill(0, leader).await;
        leader
    }
}

/// Fails the test, naming the call, if `f` does not finish within `CALL_LIMIT`.
async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(CALL_LIMIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} hung for more than {CALL_LIMIT:?}"),
    }
}

/// What getting every message through cost.
#[derive(Debug, Default)]
struct SendStats {
    ids: BTreeSet<String>,
    failed_attempts: usize,
    errors: Vec<String>,
    /// From the first failed attempt to the next success.
    outage: Option<Duration>,
    /// The longest successful send call (a leader change the server absorbs
    /// shows here rather than as failures).
    slowest: Duration,
}

/// Sends messages `range` with `send`, retrying each until it succeeds.
async fn send_all<F, Fut, E>(stats: &mut SendStats, range: std::ops::Range<usize>, send: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<String, E>>,
    E: std::fmt::Display,
{
    let deadline = Instant::now() + SEND_BUDGET;
    let mut first_failure: Option<Instant> = None;
    for i in range {
        loop {
            assert!(
                Instant::now() < deadline,
                "message {i} not sent within {SEND_BUDGET:?}; {} failed attempts, last errors: {:?}",
                stats.failed_attempts,
                stats.errors.iter().rev().take(3).collect::<Vec<_>>()
            );
            let t = Instant::now();
            match bounded(&format!("send of message {i}"), send(i)).await {
                Ok(id) => {
                    stats.slowest = stats.slowest.max(t.elapsed());
                    assert!(!id.is_empty(), "send of message {i} returned an empty message id");
                    assert!(stats.ids.insert(id.clone()), "message id {id} returned twice");
                    if let Some(t) = first_failure.take() {
                        stats.outage = Some(stats.outage.unwrap_or_default() + t.elapsed());
                    }
                    break;
                }
                Err(e) => {
                    stats.failed_attempts += 1;
                    stats.errors.push(format!("message {i}: {e}"));
                    first_failure.get_or_insert_with(Instant::now);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// What receiving cost.
#[derive(Debug, Default)]
struct ReceiveStats {
    received: BTreeSet<String>,
    /// Delivered ids no send reported (a retried send that was stored after all).
    extra: BTreeSet<String>,
    redelivered: usize,
    receive_calls: usize,
    empty_receives: usize,
}

impl ReceiveStats {
    /// Records one delivery (every delivery is then acknowledged).
    fn delivered(&mut self, id: &str, sent: &BTreeSet<String>) {
        if !self.received.insert(id.to_string()) {
            self.redelivered += 1;
        }
        if !sent.contains(id) {
            self.extra.insert(id.to_string());
        }
    }

    fn check(&self, what: &str, sent: &BTreeSet<String>) {
        let missing: Vec<&String> = sent.difference(&self.received).collect();
        assert!(missing.is_empty(), "{what}: {} sent ids never received, e.g. {:?}", missing.len(), &missing[..1]);
    }
}

// ---------------------------------------------------------------------------
// The official client.

fn client_option(access: &str) -> ClientOption {
    let mut o = ClientOption::default();
    o.set_access_url(access);
    o.set_enable_tls(false);
    o
}

async fn official_producer(access: &str) -> rocketmq::Producer {
    let mut option = ProducerOption::default();
    option.set_topics(vec![TOPIC]);
    let mut producer = rocketmq::Producer::new(option, client_option(access)).expect("official producer");
    bounded("Producer::start", producer.start()).await.expect("official producer starts");
    producer
}

async fn official_consumer(access: &str) -> rocketmq::SimpleConsumer {
    let mut option = SimpleConsumerOption::default();
    option.set_consumer_group(GROUP);
    option.set_topics(vec![TOPIC]);
    let mut consumer = rocketmq::SimpleConsumer::new(option, client_option(access)).expect("official consumer");
    bounded("SimpleConsumer::start", consumer.start()).await.expect("official consumer starts");
    consumer
}

async fn official_send(producer: &rocketmq::Producer, i: usize) -> Result<String, ClientError> {
    let msg = MessageBuilder::builder()
        .set_topic(TOPIC)
        .set_tag("official")
        .set_body(format!("official-{i}").into_bytes())
        .build()
        .expect("message builds");
    producer.send(msg).await.map(|r| r.message_id().to_string())
}

async fn official_receive_all(consumer: &rocketmq::SimpleConsumer, sent: &BTreeSet<String>) -> ReceiveStats {
    let filter = FilterExpression::new(FilterType::Tag, "*");
    let deadline = Instant::now() + RECEIVE_BUDGET;
    let mut stats = ReceiveStats::default();
    while !sent.is_subset(&stats.received) {
        assert!(
            Instant::now() < deadline,
            "official consumer received {} of {} sent ids within {RECEIVE_BUDGET:?}",
            sent.intersection(&stats.received).count(),
            sent.len()
        );
        stats.receive_calls += 1;
        let batch =
            bounded("SimpleConsumer::receive_with", consumer.receive_with(TOPIC, &filter, 32, Duration::from_secs(15)))
                .await
                .expect("official receive");
        if batch.is_empty() {
            stats.empty_receives += 1;
        }
        for m in batch {
            assert_eq!(m.topic(), TOPIC);
            assert!(m.body().starts_with(b"official-"), "unexpected body {:?}", m.body());
            stats.delivered(m.message_id(), sent);
            bounded("SimpleConsumer::ack", consumer.ack(&m))
                .await
                .unwrap_or_else(|e| panic!("official ack of {} failed: {e}", m.message_id()));
        }
    }
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_client_send_receive_ack() {
    let f = start(22_081).await;
    let producer = official_producer(&f.access).await;
    let consumer = official_consumer(&f.access).await;
    let mut sent = SendStats::default();
    send_all(&mut sent, 0..N, |i| official_send(&producer, i)).await;
    assert_eq!(sent.ids.len(), N);
    assert_eq!(sent.failed_attempts, 0, "sends failed on a stable group: {:?}", sent.errors);
    let recv = official_receive_all(&consumer, &sent.ids).await;
    recv.check("official", &sent.ids);
    assert!(recv.extra.is_empty(), "ids never sent were delivered: {:?}", recv.extra);
    assert_eq!(recv.redelivered, 0, "messages delivered twice on a stable group");
    eprintln!("official, stable: sent {N}, received {} in {} receive calls", recv.received.len(), recv.receive_calls);
    producer.shutdown().await.expect("official producer shuts down");
    consumer.shutdown().await.expect("official consumer shuts down");
    f.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_client_across_a_leader_kill() {
    let mut f = start(22_181).await;
    let producer = official_producer(&f.access).await;
    let consumer = official_consumer(&f.access).await;
    let mut sent = SendStats::default();
    send_all(&mut sent, 0..N / 2, |i| official_send(&producer, i)).await;
    assert_eq!(sent.failed_attempts, 0, "sends failed before the kill: {:?}", sent.errors);
    let killed = f.kill_leader().await;
    let t = Instant::now();
    send_all(&mut sent, N / 2..N, |i| official_send(&producer, i)).await;
    let after_kill = t.elapsed();
    assert_eq!(sent.ids.len(), N);
    let new_leader = f.cluster.leader_of(0).expect("a new leader");
    assert_ne!(new_leader, killed);
    let recv = official_receive_all(&consumer, &sent.ids).await;
    recv.check("official after a leader kill", &sent.ids);
    eprintln!(
        "official, leader {killed} killed (access point {}, new leader {new_leader}): {} failed send attempts, \
         outage {:?}, slowest send {:?}, second half sent in {after_kill:?}; received {} ({} extra, {} redelivered) in {} receive calls; errors: {:?}",
        f.access_index,
        sent.failed_attempts,
        sent.outage,
        sent.slowest,
        recv.received.len(),
        recv.extra.len(),
        recv.redelivered,
        recv.receive_calls,
        sent.errors.iter().take(3).collect::<Vec<_>>()
    );
    producer.shutdown().await.expect("official producer shuts down");
    consumer.shutdown().await.expect("official consumer shuts down");
    f.cluster.shutdown().await;
}

// ---------------------------------------------------------------------------
// raftmq's own SDK, the same scenarios.

async fn sdk_send(producer: &raftmq_client::Producer, i: usize) -> Result<String, raftmq_client::Error> {
    let msg = raftmq_client::producer::Message::new(TOPIC, format!("sdk-{i}")).with_tag("sdk");
    producer.send(msg).await.map(|r| r.message_id)
}

async fn sdk_receive_all(consumer: &raftmq_client::SimpleConsumer, sent: &BTreeSet<String>) -> ReceiveStats {
    let deadline = Instant::now() + RECEIVE_BUDGET;
    let mut stats = ReceiveStats::default();
    while !sent.is_subset(&stats.received) {
        assert!(
            Instant::now() < deadline,
            "SDK consumer received {} of {} sent ids within {RECEIVE_BUDGET:?}",
            sent.intersection(&stats.received).count(),
            sent.len()
        );
        stats.receive_calls += 1;
        let batch = bounded("SDK receive", consumer.receive(32, Duration::from_secs(2))).await.expect("SDK receive");
        if batch.is_empty() {
            stats.empty_receives += 1;
        }
        for m in batch {
            assert_eq!(m.topic, TOPIC);
            assert!(m.body.starts_with(b"sdk-"), "unexpected body {:?}", m.body);
            stats.delivered(&m.message_id, sent);
            bounded("SDK ack", consumer.ack(&m))
                .await
                .unwrap_or_else(|e| panic!("SDK ack of {} failed: {e}", m.message_id));
        }
    }
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_send_receive_ack() {
    let f = start(22_281).await;
    let producer = raftmq_client::Producer::new(f.sdk());
    let consumer = raftmq_client::SimpleConsumer::new(f.sdk(), GROUP, TOPIC).with_invisible(Duration::from_secs(15));
    let mut sent = SendStats::default();
    send_all(&mut sent, 0..N, |i| sdk_send(&producer, i)).await;
    assert_eq!(sent.ids.len(), N);
    assert_eq!(sent.failed_attempts, 0, "sends failed on a stable group: {:?}", sent.errors);
    let recv = sdk_receive_all(&consumer, &sent.ids).await;
    recv.check("SDK", &sent.ids);
    assert!(recv.extra.is_empty(), "ids never sent were delivered: {:?}", recv.extra);
    assert_eq!(recv.redelivered, 0, "messages delivered twice on a stable group");
    eprintln!("SDK, stable: sent {N}, received {} in {} receive calls", recv.received.len(), recv.receive_calls);
    f.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_across_a_leader_kill() {
    let mut f = start(22_381).await;
    let producer = raftmq_client::Producer::new(f.sdk());
    let consumer = raftmq_client::SimpleConsumer::new(f.sdk(), GROUP, TOPIC).with_invisible(Duration::from_secs(15));
    let mut sent = SendStats::default();
    send_all(&mut sent, 0..N / 2, |i| sdk_send(&producer, i)).await;
    assert_eq!(sent.failed_attempts, 0, "sends failed before the kill: {:?}", sent.errors);
    let killed = f.kill_leader().await;
    let t = Instant::now();
    send_all(&mut sent, N / 2..N, |i| sdk_send(&producer, i)).await;
    let after_kill = t.elapsed();
    assert_eq!(sent.ids.len(), N);
    let new_leader = f.cluster.leader_of(0).expect("a new leader");
    assert_ne!(new_leader, killed);
    let recv = sdk_receive_all(&consumer, &sent.ids).await;
    recv.check("SDK after a leader kill", &sent.ids);
    eprintln!(
        "SDK, leader {killed} killed (new leader {new_leader}): {} failed send attempts, outage {:?}, \
         slowest send {:?}, second half sent in {after_kill:?}; received {} ({} extra, {} redelivered) in {} receive calls; errors: {:?}",
        sent.failed_attempts,
        sent.outage,
        sent.slowest,
        recv.received.len(),
        recv.extra.len(),
        recv.redelivered,
        recv.receive_calls,
        sent.errors.iter().take(3).collect::<Vec<_>>()
    );
    f.cluster.shutdown().await;
}
