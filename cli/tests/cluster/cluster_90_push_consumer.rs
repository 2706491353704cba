//! The SDK's push consumer on a 3-replica group: every message reaches the
//! listener exactly once when it succeeds, a failure comes back with a
//! higher delivery attempt, two consumers of one group split the messages,
//! flow control bounds the cache, and a long-running listener keeps its
//! message hidden by renewing the invisible time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use raftmq_cli::devcluster::DevCluster;
use raftmq_client::producer::Message;
use raftmq_client::push::{ConsumeResult, PushConsumer, PushStats};
use raftmq_client::{Cluster, Producer, ReceivedMessage, SimpleConsumer};
use tokio::sync::mpsc;

async fn start(port: u16, topic: &str) -> (tempfile::TempDir, DevCluster, Cluster) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = DevCluster::three_replicas(dir.path(), port).await.expect("cluster");
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).expect("client");
    client.create_topic(topic, 4, &[]).await.expect("create topic");
    (dir, cluster, client)
}

async fn publish(client: &Cluster, topic: &str, n: usize, body: &[u8]) -> BTreeSet<String> {
    let producer = Producer::new(client.clone());
    let sends = (0..n).map(|_| producer.send(Message::new(topic, body.to_vec())));
    futures::future::join_all(sends).await.into_iter().map(|r| r.expect("send").message_id).collect()
}

/// Waits for `n` items from the listeners, failing after `within`.
async fn collect<T>(rx: &mut mpsc::UnboundedReceiver<T>, n: usize, within: Duration) -> Vec<T> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while out.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(x)) => out.push(x),
            _ => panic!("listeners handled {} of {n} in {within:?}", out.len()),
        }
    }
    out
}

/// Nothing of `group` is left to deliver, even after the invisible time ran out.
async fn assert_nothing_left(client: &Cluster, group: &str, topic: &str, invisible: Duration) {
    let probe = SimpleConsumer::new(client.clone(), group, topic);
    let late = probe.receive(32, invisible + Duration::from_secs(1)).await.expect("probe receive");
    let ids: Vec<&str> = late.iter().map(|m| m.message_id.as_str()).collect();
    assert!(late.is_empty(), "acknowledged messages were delivered again: {ids:?}");
}

/// Shuts a consumer down; a shutdown that hangs fails the test.
async fn stop(consumer: PushConsumer) -> PushStats {
    tokio::time::timeout(Duration::from_secs(30), consumer.shutdown()).await.expect("shutdown within 30 s")
}

fn assert_clean(stats: &PushStats) {
    assert_eq!((stats.ack_errors, stats.renew_errors, stats.receive_errors), (0, 0, 0), "{stats:?}");
    assert_eq!(stats.cache.messages, 0, "the cache is empty after shutdown: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_reaches_the_listener_once_and_is_acked() {
    let (_dir, cluster, client) = start(23_081, "push-once").await;
    let sent = publish(&client, "push-once", 120, b"payload").await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let invisible = Duration::from_secs(2);
    let consumer = PushConsumer::builder(client.clone(), "cg-once", "push-once")
        .invisible(invisible)
        .long_poll(Duration::from_secs(1))
        .start(move |m: &ReceivedMessage| {
            let _ = tx.send(m.message_id.clone());
            ConsumeResult::Success
        })
        .await
        .expect("start");
    let handled = collect(&mut rx, sent.len(), Duration::from_secs(30)).await;
    let stats = stop(consumer).await;
    let distinct: BTreeSet<String> = handled.iter().cloned().collect();
    assert_eq!(distinct, sent, "every published message handled");
    assert_eq!(handled.len(), sent.len(), "none handled twice");
    assert_eq!((stats.received, stats.succeeded, stats.acked), (120, 120, 120), "{stats:?}");
    // 120 instant listeners finish faster than one ack's Raft round: acks share requests.
    assert!(stats.ack_requests < stats.acked, "acks were batched: {stats:?}");
    assert_clean(&stats);
    // The acks are durable: after the invisible time nothing comes back.
    assert_nothing_left(&client, "cg-once", "push-once", invisible).await;
    assert!(rx.try_recv().is_err(), "no listener call after shutdown");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_is_delivered_again_with_a_higher_attempt() {
    let (_dir, cluster, client) = start(23_181, "push-retry").await;
    let sent = publish(&client, "push-retry", 3, b"fail once").await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let consumer = PushConsumer::builder(client.clone(), "cg-retry", "push-retry")
        .invisible(Duration::from_secs(10))
        .long_poll(Duration::from_secs(1))
        .retry_backoff(Duration::from_secs(1))
        .start(move |m: &ReceivedMessage| {
            let _ = tx.send((m.message_id.clone(), m.delivery_attempt));
            if m.delivery_attempt == 1 { ConsumeResult::Failure } else { ConsumeResult::Success }
        })
        .await
        .expect("start");
    // Each message: a failed first attempt, then a second one, sooner than
    // the invisible time (10 s) would allow: the failure set the back-off (1 s).
    let calls = collect(&mut rx, 2 * sent.len(), Duration::from_secs(8)).await;
    let stats = stop(consumer).await;
    let mut attempts: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (id, attempt) in calls {
        attempts.entry(id).or_default().push(attempt);
    }
    assert_eq!(attempts.keys().cloned().collect::<BTreeSet<_>>(), sent);
    for (id, a) in &attempts {
        assert_eq!(a, &[1, 2], "message {id} attempts");
    }
    assert_eq!((stats.failed, stats.succeeded, stats.redelivered, stats.acked), (3, 3, 3, 3), "{stats:?}");
    assert_clean(&stats);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_of_one_group_split_the_messages() {
    let (_dir, cluster, client) = start(23_281, "push-split").await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut consumers = Vec::new();
    for who in 0..2 {
        let tx = tx.clone();
        let c = PushConsumer::builder(client.clone(), "cg-split", "push-split")
            .invisible(Duration::from_secs(10))
            .long_poll(Duration::from_secs(1))
            .batch_size(4)
            .concurrency(2)
            .max_cached_messages(8)
            .start(move |m: &ReceivedMessage| {
                // Work that takes a while, so one consumer cannot drain the
                // topic alone before the other's next receive.
                std::thread::sleep(Duration::from_millis(10));
                let _ = tx.send((who, m.message_id.clone()));
                ConsumeResult::Success
            })
            .await
            .expect("start");
        consumers.push(c);
    }
    let sent = publish(&client, "push-split", 200, b"share me").await;
    let handled = collect(&mut rx, sent.len(), Duration::from_secs(60)).await;
    let mut stats = Vec::new();
    for c in consumers {
        stats.push(stop(c).await);
    }
    let ids: Vec<&String> = handled.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.iter().map(|s| (*s).clone()).collect::<BTreeSet<_>>(), sent, "none lost");
    assert_eq!(ids.len(), sent.len(), "none handled by both");
    let by_first = handled.iter().filter(|(who, _)| *who == 0).count();
    assert!(by_first > 0 && by_first < sent.len(), "both consumers got messages: first had {by_first}");
    for s in &stats {
        assert_clean(s);
    }
    assert_eq!(stats.iter().map(|s| s.acked).sum::<u64>(), 200);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_control_keeps_the_cache_under_its_thresholds() {
    let (_dir, cluster, client) = start(23_381, "push-flow").await;
    let body = vec![b'x'; 1024];
    let sent = publish(&client, "push-flow", 60, &body).await;
    // Counted by message: 6 at most, with listeners slower than receiving.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let tx2 = tx.clone();
    let by_count = PushConsumer::builder(client.clone(), "cg-count", "push-flow")
        .long_poll(Duration::from_secs(1))
        .concurrency(2)
        .max_cached_messages(6)
        .start(move |m: &ReceivedMessage| {
            std::thread::sleep(Duration::from_millis(20));
            let _ = tx.send(m.message_id.clone());
            ConsumeResult::Success
        })
        .await
        .expect("start");
    // Counted by bytes: receiving stops at 3 KiB; a batch of 2 may overshoot by one message.
    let by_bytes = PushConsumer::builder(client.clone(), "cg-bytes", "push-flow")
        .long_poll(Duration::from_secs(1))
        .concurrency(1)
        .batch_size(2)
        .max_cached_bytes(3 * 1024)
        .start(move |m: &ReceivedMessage| {
            std::thread::sleep(Duration::from_millis(10));
            let _ = tx2.send(m.message_id.clone());
            ConsumeResult::Success
        })
        .await
        .expect("start");
    collect(&mut rx, 2 * sent.len(), Duration::from_secs(60)).await;
    let (count, bytes) = (stop(by_count).await, stop(by_bytes).await);
    assert!(count.cache.peak_messages <= 6, "cache peaked at {} messages", count.cache.peak_messages);
    assert!(count.cache.peak_messages >= 2, "the cache filled up: {count:?}");
    assert!(bytes.cache.peak_bytes <= 4 * 1024, "cache peaked at {} bytes", bytes.cache.peak_bytes);
    assert_eq!((count.acked, bytes.acked), (60, 60));
    assert_clean(&count);
    assert_clean(&bytes);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_listener_keeps_its_message_by_renewing() {
    let (_dir, cluster, client) = start(23_481, "push-long").await;
    let sent = publish(&client, "push-long", 1, b"slow work").await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    // The first call blocks until the test releases it (or fails and drops the sender).
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = Mutex::new(released);
    let consumer = PushConsumer::builder(client.clone(), "cg-long", "push-long")
        .invisible(Duration::from_secs(1))
        .long_poll(Duration::from_secs(1))
        .start(move |m: &ReceivedMessage| {
            let _ = tx.send((m.message_id.clone(), m.delivery_attempt));
            if m.delivery_attempt == 1 {
                let _ = released.lock().expect("release channel").recv();
            }
            ConsumeResult::Success
        })
        .await
        .expect("start");
    let first = collect(&mut rx, 1, Duration::from_secs(10)).await;
    assert_eq!(first, vec![(sent.iter().next().expect("one sent").clone(), 1)]);
    // Another consumer of the group polls for 4 s, four invisible times:
    // without renewals it, or this consumer again, would get the message.
    let rival = SimpleConsumer::new(client.clone(), "cg-long", "push-long");
    let stolen = rival.receive(8, Duration::from_secs(4)).await.expect("rival receive");
    assert!(stolen.is_empty(), "a message under a running listener was delivered to a rival");
    assert!(rx.try_recv().is_err(), "a message under a running listener was delivered to the listener again");
    release.send(()).expect("listener waiting");
    let stats = stop(consumer).await;
    assert!(stats.renewals >= 3, "renewed about every 2/3 s: {stats:?}");
    assert_eq!((stats.received, stats.acked), (1, 1), "acked with the renewed handle: {stats:?}");
    assert_clean(&stats);
    assert_nothing_left(&client, "cg-long", "push-long", Duration::from_secs(1)).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_filter_delivers_only_matching_messages() {
    let (_dir, cluster, client) = start(23_981, "push-tags").await;
    let producer = Producer::new(client.clone());
    let mut wanted = BTreeSet::new();
    for i in 0..30 {
        let tag = ["red", "green", "blue"][i % 3];
        let r = producer.send(Message::new("push-tags", format!("m{i}")).with_tag(tag)).await.expect("send");
        if tag != "green" {
            wanted.insert(r.message_id);
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let consumer = PushConsumer::builder(client.clone(), "cg-tags", "push-tags")
        .tag_filter("red || blue")
        .long_poll(Duration::from_secs(1))
        .start(move |m: &ReceivedMessage| {
            let _ = tx.send((m.message_id.clone(), m.tag.clone()));
            ConsumeResult::Success
        })
        .await
        .expect("start");
    let got = collect(&mut rx, wanted.len(), Duration::from_secs(20)).await;
    // One more long poll: a green message would show up by now.
    let late = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
    let stats = stop(consumer).await;
    assert!(late.is_err(), "an unexpected delivery: {late:?}");
    assert!(got.iter().all(|(_, t)| t.as_deref() != Some("green")), "{got:?}");
    assert_eq!(got.into_iter().map(|(id, _)| id).collect::<BTreeSet<_>>(), wanted);
    assert_clean(&stats);
    cluster.shutdown().await;
}
