//! A send with a message group names the queue it was stored in: the
//! receipt's (queue, offset) is where a pull reads it and where an orderly
//! consumer group delivers it from, and one group stays on one queue.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use raftmq_cli::devcluster::DevCluster;
use raftmq_client::producer::Message;
use raftmq_client::{Cluster, MessageType, Producer, QueueReader, SendReceipt, SimpleConsumer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_group_receipt_names_the_queue_it_is_read_from() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = DevCluster::three_replicas(dir.path(), 25_081).await.expect("cluster");
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).expect("client");
    let topic = "fifo-receipts";
    client.create_topic_accepting(topic, 4, &[MessageType::Fifo], &[]).await.expect("create topic");
    client.create_consumer_group("ord-receipts", true, 0, &[]).await.expect("create group");
    let producer = Producer::new(client.clone());

    let mut receipts: BTreeMap<String, SendReceipt> = BTreeMap::new();
    let mut by_group: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for i in 0..36 {
        let group = format!("customer-{}", i % 6);
        let body = format!("{group} #{i}");
        let r = producer.send(Message::new(topic, body.clone()).with_message_group(group.clone())).await.expect("send");
        assert!((0..4).contains(&r.queue_id), "receipt queue {} of {body}", r.queue_id);
        by_group.entry(group).or_default().insert(r.queue_id);
        receipts.insert(body, r);
    }
    // A batch of one group: one queue, consecutive offsets.
    let batch: Vec<Message> =
        (0..3).map(|i| Message::new(topic, format!("batch #{i}")).with_message_group("batch-group")).collect();
    let rs = producer.send_batch(batch).await.expect("send batch");
    assert!(rs.iter().all(|r| r.queue_id == rs[0].queue_id && r.queue_id >= 0), "{rs:?}");
    assert_eq!(rs.iter().map(|r| r.offset - rs[0].offset).collect::<Vec<_>>(), vec![0, 1, 2]);
    for (i, r) in rs.into_iter().enumerate() {
        receipts.insert(format!("batch #{i}"), r);
    }
    for (group, queues) in &by_group {
        assert_eq!(queues.len(), 1, "message group {group} spread over queues {queues:?}");
    }

    // A pull at the receipt's (queue, offset) reads that very message.
    let reader = QueueReader::new(client.clone());
    for (body, r) in &receipts {
        let (msgs, _) = reader.pull(topic, &r.group, r.queue_id, r.offset, 1, Duration::ZERO).await.expect("pull");
        let got = msgs.first().map(|m| (m.offset, String::from_utf8_lossy(&m.body).into_owned()));
        assert_eq!(got, Some((r.offset, body.clone())), "receipt {r:?}");
    }

    // The orderly group delivers each message from the receipt's queue and offset.
    let consumer = SimpleConsumer::new(client.clone(), "ord-receipts", topic).with_invisible(Duration::from_secs(10));
    let mut delivered = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while delivered.len() < receipts.len() {
        assert!(tokio::time::Instant::now() < deadline, "delivered {} of {}", delivered.len(), receipts.len());
        let batch = consumer.receive(16, Duration::from_millis(500)).await.expect("receive");
        for m in &batch {
            let body = String::from_utf8_lossy(&m.body).into_owned();
            delivered.insert(body, (m.broker_group.clone(), m.queue_id, m.queue_offset));
        }
        consumer.ack_all(&batch).await.expect("ack");
    }
    for (body, r) in &receipts {
        assert_eq!(delivered.get(body), Some(&(r.group.clone(), r.queue_id, r.offset)), "{body}");
    }
    cluster.shutdown().await;
}
