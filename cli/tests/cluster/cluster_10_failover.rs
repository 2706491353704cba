//! A 3-replica group on loopback with real gRPC: messages keep flowing while
//! the leader is killed, and afterwards every acknowledged message is readable
//! at the queue offset it was acknowledged with.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use raftmq_cli::devcluster::DevCluster;
use raftmq_client::producer::Message;
use raftmq_client::{Cluster, Producer, QueueReader};

/// Reads a whole queue from offset 0 to its end.
async fn read_all(reader: &QueueReader, topic: &str, queue: i32) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let (msgs, next) = reader.pull(topic, "broker-a", queue, offset, 256, Duration::ZERO).await.expect("pull");
        if msgs.is_empty() {
            return out;
        }
        out.extend(msgs.into_iter().map(|m| (m.offset, m.message_id)));
        offset = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_a_leader_kill() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = DevCluster::three_replicas(dir.path(), 21_081).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic("orders", 4, &[]).await.unwrap();
    let producer = Arc::new(Producer::new(client.clone()).with_timeout(Duration::from_secs(2)));

    // Phase 1: 16 workers send 10,000 messages in total; the leader is killed
    // once 3,000 are acknowledged.
    const TOTAL: u64 = 10_000;
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (producer, next, acked) = (producer.clone(), next.clone(), acked.clone());
            tokio::spawn(async move {
                let mut receipts = Vec::new();
                let mut failed = 0;
                while next.fetch_add(1, Ordering::Relaxed) < TOTAL {
                    match producer.send(Message::new("orders", vec![7u8; 128])).await {
                        Ok(r) => {
                            acked.fetch_add(1, Ordering::Relaxed);
                            receipts.push(r);
                        }
                        Err(_) => failed += 1,
                    }
                }
                (receipts, failed)
            })
        })
        .collect();
    while acked.load(Ordering::Relaxed) < 3_000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let leader = cluster.leader_of(0).expect("a leader");
    cluster.kill(0, leader).await;
    let mut receipts = Vec::new();
    let mut failed = 0;
    for w in workers {
        let (r, f) = w.await.unwrap();
        receipts.extend(r);
        failed += f;
    }
    assert!(receipts.len() as u64 >= TOTAL * 9 / 10, "{} of {TOTAL} acknowledged ({failed} failed)", receipts.len());

    // Phase 2: every acknowledged message is at its acknowledged (queue, offset),
    // no offset was acknowledged twice, and every queue is gap-free.
    cluster.wait_for_leaders(Duration::from_secs(10)).await.unwrap();
    let reader = QueueReader::new(client);
    let mut stored: HashMap<(i32, i64), String> = HashMap::new();
    for q in 0..4 {
        let msgs = read_all(&reader, "orders", q).await;
        for (i, (off, id)) in msgs.iter().enumerate() {
            assert_eq!(*off, i as i64, "queue {q} has a gap or disorder at {off}");
            stored.insert((q, *off), id.clone());
        }
    }
    let mut by_offset: BTreeMap<(i32, i64), &str> = BTreeMap::new();
    for r in &receipts {
        assert!(r.queue_id >= 0);
        let prev = by_offset.insert((r.queue_id, r.offset), &r.message_id);
        assert!(prev.is_none(), "offset {}:{} acknowledged twice", r.queue_id, r.offset);
        assert_eq!(
            stored.get(&(r.queue_id, r.offset)).map(String::as_str),
            Some(r.message_id.as_str()),
            "acknowledged message {} missing at {}:{}",
            r.message_id,
            r.queue_id,
            r.offset
        );
    }
    cluster.shutdown().await;
}
