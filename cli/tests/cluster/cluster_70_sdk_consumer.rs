//! raftmq's SDK end to end: a producer and a simple consumer on a 3-replica
//! group, with the leader killed mid-way; every message is consumed, and none
//! that was acknowledged is delivered again.

use std::collections::BTreeSet;
use std::time::Duration;

use raftmq_cli::devcluster::DevCluster;
use raftmq_client::producer::Message;
use raftmq_client::{Cluster, Producer, SimpleConsumer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_across_a_leader_kill() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = DevCluster::three_replicas(dir.path(), 21_881).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic("t", 4, &[]).await.unwrap();
    let producer = Producer::new(client.clone());
    let mut sent = BTreeSet::new();
    for i in 0..60 {
        sent.insert(producer.send(Message::new("t", format!("m{i}"))).await.unwrap().message_id);
    }
    let consumer = SimpleConsumer::new(client, "cg", "t").with_invisible(Duration::from_secs(3));
    let mut acked = BTreeSet::new();
    // Acks whose outcome is unknown (the leader died during the call): such a
    // message may come back once, or may be gone.
    let mut unknown = BTreeSet::new();
    let mut killed = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while acked.union(&unknown).count() < sent.len() {
        assert!(tokio::time::Instant::now() < deadline, "consumed {} of {}", acked.len(), sent.len());
        if !killed && acked.len() >= 30 {
            let leader = cluster.leader_of(0).unwrap();
            cluster.kill(0, leader).await;
            killed = true;
        }
        let Ok(batch) = consumer.receive(8, Duration::from_secs(1)).await else { continue };
        for m in batch {
            assert!(!acked.contains(&m.message_id), "acknowledged message {} delivered again", m.message_id);
            unknown.remove(&m.message_id);
            if consumer.ack(&m).await.is_ok() {
                acked.insert(m.message_id);
            } else {
                unknown.insert(m.message_id);
            }
        }
    }
    assert_eq!(acked.union(&unknown).cloned().collect::<BTreeSet<_>>(), sent);
    cluster.shutdown().await;
}
