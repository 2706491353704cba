//! Consumer groups as replicated config: an orderly (FIFO) group consumes a
//! queue in order, one batch in flight at a time, with failed messages coming
//! back before anything newer; a concurrent group on the same queue is not
//! held back; an unknown group is refused when auto-creation is off.

use std::time::Duration;

use raftmq_broker::config::DurabilityMode;
use raftmq_cli::devcluster::{DevCluster, DevClusterSpec};
use raftmq_client::producer::Message;
use raftmq_client::{Cluster, Error, Producer, ReceivedMessage, SimpleConsumer};
use raftmq_proto::rocketmq::v2::Code;

fn bodies(batch: &[ReceivedMessage]) -> Vec<String> {
    batch.iter().map(|m| String::from_utf8_lossy(&m.body).into_owned()).collect()
}

fn names(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orderly_group_consumes_a_queue_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = DevCluster::three_replicas(dir.path(), 24_081).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic("ordered", 1, &[]).await.unwrap();
    client.create_consumer_group("ord", true, 3, &[]).await.unwrap();
    let producer = Producer::new(client.clone());
    for i in 0..10 {
        producer.send(Message::new("ordered", format!("m{i}"))).await.unwrap();
    }
    let invisible = Duration::from_secs(2);
    let ord = SimpleConsumer::new(client.clone(), "ord", "ordered").with_invisible(invisible);

    let first = ord.receive(4, Duration::from_secs(2)).await.unwrap();
    assert_eq!(bodies(&first), names(0..4));
    // The queue is locked while the batch is in flight, even after a partial ack.
    assert!(ord.receive(4, Duration::from_millis(300)).await.unwrap().is_empty());
    ord.ack(&first[0]).await.unwrap();
    ord.ack(&first[1]).await.unwrap();
    assert!(ord.receive(4, Duration::from_millis(300)).await.unwrap().is_empty());
    // The group's progress: two acked, two in flight, ten stored.
    let progress = client.consumer_progress("ord", "ordered").await.unwrap();
    let q = &progress[0].1[0];
    assert_eq!((q.max_offset, q.pop_consumed, q.inflight, q.committed_offset), (10, Some(2), 2, None));

    // A concurrent group on the same queue is not held back.
    let conc = SimpleConsumer::new(client.clone(), "conc", "ordered").with_invisible(invisible);
    let a = conc.receive(4, Duration::from_secs(2)).await.unwrap();
    let b = conc.receive(4, Duration::from_secs(2)).await.unwrap();
    assert_eq!(bodies(&a), names(0..4));
    assert_eq!(bodies(&b), names(4..8));

    // After the invisible time, the unacked ones come back first, in order,
    // as second attempts, followed by new messages.
    let again = ord.receive(4, invisible * 3).await.unwrap();
    assert_eq!(bodies(&again), names(2..6));
    assert_eq!(again.iter().map(|m| m.delivery_attempt).collect::<Vec<_>>(), vec![2, 2, 1, 1]);
    ord.ack_all(&again).await.unwrap();
    let rest = ord.receive(8, Duration::from_secs(2)).await.unwrap();
    assert_eq!(bodies(&rest), names(6..10));
    ord.ack_all(&rest).await.unwrap();
    assert!(ord.receive(4, Duration::from_millis(300)).await.unwrap().is_empty());
    let q = &client.consumer_progress("ord", "ordered").await.unwrap()[0].1[0];
    assert_eq!((q.pop_consumed, q.inflight), (Some(10), 0));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_group_is_refused_when_auto_creation_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let spec = DevClusterSpec {
        groups: 1,
        replicas: 3,
        data_dir: dir.path().to_path_buf(),
        namesrv_port: 24_199,
        base_port: 24_181,
        durability: DurabilityMode::Sync,
    };
    let cluster = DevCluster::start_with(&spec, |c| c.auto_create_consumer_groups = false).await.unwrap();
    cluster.wait_for_leaders(Duration::from_secs(10)).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic("t", 2, &[]).await.unwrap();
    Producer::new(client.clone()).send(Message::new("t", "x")).await.unwrap();

    let stranger = SimpleConsumer::new(client.clone(), "stranger", "t").with_invisible(Duration::from_secs(5));
    match stranger.receive(4, Duration::from_millis(500)).await {
        Err(Error::Broker { code: Code::ConsumerGroupNotFound, message }) => assert!(message.contains("stranger")),
        other => panic!("expected CONSUMER_GROUP_NOT_FOUND, got {other:?}"),
    }
    let illegal = SimpleConsumer::new(client.clone(), "a b", "t").with_invisible(Duration::from_secs(5));
    let bad = illegal.receive(4, Duration::from_millis(500)).await;
    assert!(matches!(bad, Err(Error::Broker { code: Code::IllegalConsumerGroup, .. })), "{bad:?}");
    // Bad configs are refused with their own codes.
    let bad = client.create_consumer_group("a b", false, 0, &[]).await;
    assert!(matches!(bad, Err(Error::Broker { code: Code::IllegalConsumerGroup, .. })), "{bad:?}");
    let bad = client.create_consumer_group("g", false, 5000, &[]).await;
    assert!(matches!(bad, Err(Error::Broker { code: Code::BadRequest, .. })), "{bad:?}");

    client.create_consumer_group("known", false, 0, &[]).await.unwrap();
    let dup = client.create_consumer_group("known", false, 0, &[]).await;
    assert!(matches!(dup, Err(Error::Broker { code: Code::BadRequest, .. })), "{dup:?}");
    let known = SimpleConsumer::new(client, "known", "t").with_invisible(Duration::from_secs(5));
    assert_eq!(bodies(&known.receive(4, Duration::from_secs(2)).await.unwrap()), vec!["x".to_string()]);
    cluster.shutdown().await;
}
