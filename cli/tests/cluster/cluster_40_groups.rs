//! Two broker groups: a topic's queues are spread over both, routes name both
//! leaders, and a producer's sends land on both.

use std::collections::BTreeMap;
use std::time::Duration;

use raftmq_broker::config::DurabilityMode;
use raftmq_cli::devcluster::{DevCluster, DevClusterSpec};
use raftmq_client::producer::Message;
use raftmq_client::{Cluster, Producer, QueueReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_spans_two_groups() {
    let dir = tempfile::tempdir().unwrap();
    let spec = DevClusterSpec {
        groups: 2,
        replicas: 3,
        data_dir: dir.path().to_path_buf(),
        namesrv_port: 21_499,
        base_port: 21_481,
        durability: DurabilityMode::Sync,
    };
    let cluster = DevCluster::start(&spec).await.unwrap();
    cluster.wait_for_leaders(Duration::from_secs(10)).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic("spread", 2, &[]).await.unwrap();

    let route = client.route("spread").await.unwrap();
    let groups: Vec<&str> = route.groups.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(groups, ["broker-a", "broker-b"]);
    for g in &route.groups {
        assert!(!g.leader_addr.is_empty(), "group {} has a leader in the route", g.group);
        assert_eq!(g.topic.as_ref().unwrap().queue_count, 2);
    }

    let producer = Producer::new(client.clone());
    let mut per_group: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..40 {
        let r = producer.send(Message::new("spread", format!("m{i}"))).await.unwrap();
        *per_group.entry(r.group).or_default() += 1;
    }
    assert_eq!(per_group.len(), 2, "sends reached both groups: {per_group:?}");

    // Each group's queues hold exactly what was acknowledged there.
    let reader = QueueReader::new(client);
    for (group, sent) in per_group {
        let mut read = 0;
        for q in 0..2 {
            let (msgs, _) = reader.pull("spread", &group, q, 0, 100, Duration::ZERO).await.unwrap();
            read += msgs.len();
        }
        assert_eq!(read, sent, "group {group}");
    }
    cluster.shutdown().await;
}

/// A push consumer receives from each broker group on its own loop: while one
/// group is empty and long-polling, a message on the other still reaches the
/// listener at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_consumer_never_waits_on_an_empty_group() {
    use raftmq_client::push::{ConsumeResult, PushConsumer};
    let dir = tempfile::tempdir().unwrap();
    let cluster = DevCluster::start(&DevClusterSpec::groups_of_three(dir.path(), 26_281, 2)).await.unwrap();
    cluster.wait_for_leaders(Duration::from_secs(10)).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic("spread", 2, &[]).await.unwrap();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let consumer = PushConsumer::builder(client.clone(), "cg", "spread")
        .long_poll(Duration::from_secs(8))
        .start(move |m| {
            let _ = tx.send(m.message_id.clone());
            ConsumeResult::Success
        })
        .await
        .unwrap();
    // Both groups are empty: every receive under way is a long poll.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let producer = Producer::new(client.clone());
    let mut per_group: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..8 {
        let r = producer.send(Message::new("spread", format!("m{i}"))).await.unwrap();
        // Far below the 8 s long poll another group's receive may be in.
        let got = tokio::time::timeout(Duration::from_secs(3), rx.recv()).await;
        assert_eq!(got.ok().flatten().as_deref(), Some(r.message_id.as_str()), "message {i} on {}", r.group);
        *per_group.entry(r.group).or_default() += 1;
    }
    assert_eq!(per_group.len(), 2, "both groups were exercised: {per_group:?}");
    let stats = consumer.shutdown().await;
    assert_eq!(stats.received, 8);
    cluster.shutdown().await;
}
