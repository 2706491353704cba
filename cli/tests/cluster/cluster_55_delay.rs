//! Delayed messages on a 3-replica group: acknowledged at once, invisible to
//! consumers and to readers by offset until their delivery time, then
//! delivered, also when the leader is killed while they wait.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use raftmq_cli::devcluster::DevCluster;
use raftmq_client::producer::Message;
use raftmq_client::{Cluster, MessageType, Producer, SimpleConsumer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_messages_wait_for_their_time_across_a_failover() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = DevCluster::three_replicas(dir.path(), 26_381).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic_accepting("d", 1, &[MessageType::Normal, MessageType::Delay], &[]).await.unwrap();
    let producer = Producer::new(client.clone());
    let sent_at = SystemTime::now();
    let mut due = BTreeMap::new();
    for (name, after) in [("late", 4_000u64), ("soon", 2_000)] {
        let at = sent_at + Duration::from_millis(after);
        let r = producer.send(Message::new("d", name).with_delivery_time(at)).await.unwrap();
        assert_eq!(r.offset, -1, "a delayed message has no queue offset until it is due");
        due.insert(r.message_id, at);
    }
    let now = producer.send(Message::new("d", "now")).await.unwrap();
    assert_eq!(now.offset, 0, "the delayed messages took no offsets");

    let consumer = SimpleConsumer::new(client.clone(), "cg", "d").with_invisible(Duration::from_secs(30));
    let first = consumer.receive(16, Duration::from_millis(500)).await.unwrap();
    assert_eq!(first.iter().map(|m| m.message_id.clone()).collect::<Vec<_>>(), vec![now.message_id.clone()]);
    consumer.ack(&first[0]).await.unwrap();

    // The leader dies while both wait: the next leader fires them.
    let leader = cluster.leader_of(0).unwrap();
    cluster.kill(0, leader).await;
    cluster.wait_for_leaders(Duration::from_secs(10)).await.unwrap();

    let mut delivered = BTreeMap::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    while delivered.len() < 2 && tokio::time::Instant::now() < until {
        for m in consumer.receive(16, Duration::from_secs(1)).await.unwrap_or_default() {
            consumer.ack(&m).await.unwrap();
            delivered.insert(m.message_id.clone(), SystemTime::now());
        }
    }
    assert_eq!(delivered.keys().collect::<Vec<_>>(), due.keys().collect::<Vec<_>>(), "both delayed messages arrive");
    for (id, at) in &delivered {
        assert!(*at >= due[id], "{id} was delivered before its time");
    }
    cluster.shutdown().await;
}
