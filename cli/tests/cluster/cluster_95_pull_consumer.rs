//! The SDK's pull consumer on a 3-replica group: a restarted consumer
//! resumes from the offsets its predecessor committed, `seek` replays,
//! assigned queues bound what is read, and an idle poll wakes for a new
//! message; `raftmq consume` reads everything in each mode.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use raftmq_cli::consume::{ConsumeArgs, Mode, consume};
use raftmq_cli::devcluster::DevCluster;
use raftmq_client::producer::Message;
use raftmq_client::pull::{MessageQueue, PolledMessage, PullConsumer, StartFrom};
use raftmq_client::{Cluster, MessageType, Producer};

async fn start(port: u16, topic: &str) -> (tempfile::TempDir, DevCluster, Cluster) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = DevCluster::three_replicas(dir.path(), port).await.expect("cluster");
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).expect("client");
    client.create_topic(topic, 3, &[]).await.expect("create topic");
    (dir, cluster, client)
}

async fn publish(client: &Cluster, topic: &str, n: usize) -> BTreeSet<String> {
    let producer = Producer::new(client.clone());
    let mut ids = BTreeSet::new();
    for i in 0..n {
        ids.insert(producer.send(Message::new(topic, format!("m{i}"))).await.expect("send").message_id);
    }
    ids
}

/// Polls until `n` messages are read (failing after 20 s).
async fn poll_n(c: &mut PullConsumer, n: usize) -> Vec<PolledMessage> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        assert!(tokio::time::Instant::now() < deadline, "read {} of {n}", out.len());
        out.extend(c.poll(n - out.len(), Duration::from_millis(500)).await.expect("poll"));
    }
    out
}

fn ids(msgs: &[PolledMessage]) -> BTreeSet<String> {
    msgs.iter().map(|m| m.message.message_id.clone()).collect()
}

/// Per queue, offsets read must be consecutive from where the queue started.
fn assert_in_order(msgs: &[PolledMessage], from: &BTreeMap<MessageQueue, i64>) {
    let mut next = from.clone();
    for m in msgs {
        let want = next.get_mut(&m.queue).expect("an assigned queue");
        assert_eq!(m.message.offset, *want, "queue {} read out of order", m.queue);
        *want += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_consumer_resumes_from_the_committed_offsets() {
    let (_dir, cluster, client) = start(23_581, "pull-resume").await;
    let sent = publish(&client, "pull-resume", 45).await;

    // Phase 1: a fresh group starts at the beginning, reads 20, commits.
    let mut first = PullConsumer::builder(client.clone(), "cg-pull", "pull-resume").start().await.expect("start");
    assert_eq!(first.queues().len(), 3);
    let zero: BTreeMap<MessageQueue, i64> = first.queues().iter().map(|q| (q.clone(), 0)).collect();
    for q in first.queues() {
        assert_eq!((first.position(q), first.committed(q)), (Some(0), None), "{q} starts at the beginning");
    }
    let read1 = poll_n(&mut first, 20).await;
    assert_eq!(read1.len(), 20, "poll never returns more than asked");
    assert_in_order(&read1, &zero);
    let positions: BTreeMap<MessageQueue, i64> =
        first.queues().iter().map(|q| (q.clone(), first.position(q).expect("position"))).collect();
    assert!(first.commit().await.expect("commit") > 0);
    assert_eq!(first.commit().await.expect("second commit"), 0, "nothing moved since the last commit");
    // Read further without committing: a restart reads these again.
    let uncommitted = poll_n(&mut first, 5).await;
    drop(first);

    // Phase 2: a new consumer of the group resumes at the committed offsets.
    let mut second = PullConsumer::builder(client.clone(), "cg-pull", "pull-resume").start().await.expect("restart");
    for (q, pos) in &positions {
        assert_eq!(second.committed(q), Some(*pos), "{q} committed offset");
        assert_eq!(second.position(q), Some(*pos), "{q} resumes at its committed offset");
    }
    let read2 = poll_n(&mut second, 25).await;
    assert_in_order(&read2, &positions);
    assert!(ids(&read1).is_disjoint(&ids(&read2)), "committed messages were read again");
    assert!(ids(&uncommitted).is_subset(&ids(&read2)), "uncommitted messages are read again");
    assert_eq!(ids(&read1).union(&ids(&read2)).cloned().collect::<BTreeSet<_>>(), sent);
    assert!(second.poll(10, Duration::ZERO).await.expect("poll at the end").is_empty());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_replays_and_assigned_queues_bound_what_is_read() {
    let (_dir, cluster, client) = start(23_681, "pull-seek").await;
    let sent = publish(&client, "pull-seek", 30).await;
    let q1 = MessageQueue::new("broker-a", 1);
    let mut c = PullConsumer::builder(client.clone(), "cg-seek", "pull-seek")
        .queues(vec![q1.clone()])
        .start()
        .await
        .expect("start");
    let end = c.poll(100, Duration::ZERO).await.expect("poll");
    assert!(!end.is_empty() && end.len() < sent.len(), "one queue holds part of the messages: {}", end.len());
    assert!(end.iter().all(|m| m.queue == q1), "only the assigned queue is read");
    assert_eq!(c.position(&q1), Some(end.len() as i64));
    c.seek(&q1, 2).expect("seek");
    let replay = c.poll(100, Duration::ZERO).await.expect("poll after seek");
    let want: Vec<&str> = end[2..].iter().map(|m| m.message.message_id.as_str()).collect();
    assert_eq!(replay.iter().map(|m| m.message.message_id.as_str()).collect::<Vec<_>>(), want);
    assert!(c.seek(&MessageQueue::new("broker-a", 0), 0).is_err(), "an unassigned queue cannot be sought");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_poll_wakes_for_a_new_message() {
    let (_dir, cluster, client) = start(23_781, "pull-wait").await;
    publish(&client, "pull-wait", 3).await;
    // Starting at the end skips what is already stored.
    let mut c = PullConsumer::builder(client.clone(), "cg-wait", "pull-wait")
        .start_from(StartFrom::End)
        .start()
        .await
        .expect("start");
    assert!(c.poll(10, Duration::ZERO).await.expect("poll").is_empty());
    let producer = Producer::new(client.clone());
    let t = tokio::time::Instant::now();
    let (polled, sent) = tokio::join!(c.poll(10, Duration::from_secs(15)), async {
        // Sent while the poll waits on every queue.
        tokio::time::sleep(Duration::from_millis(300)).await;
        producer.send(Message::new("pull-wait", "late")).await.expect("send")
    });
    let polled = polled.expect("poll");
    assert_eq!(polled.len(), 1);
    assert_eq!(polled[0].message.message_id, sent.message_id);
    assert!(t.elapsed() < Duration::from_secs(10), "the poll woke for the message, not at its end");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consume_command_reads_every_message_in_each_mode() {
    let (_dir, cluster, client) = start(23_881, "cli-consume").await;
    publish(&client, "cli-consume", 30).await;
    for (mode, group) in [(Mode::Simple, "cg-cli-simple"), (Mode::Push, "cg-cli-push"), (Mode::Pull, "cg-cli-pull")] {
        let args = ConsumeArgs {
            group: group.into(),
            topic: "cli-consume".into(),
            count: Some(30),
            mode,
            tag: "*".into(),
            idle: Some(20),
            print: false,
            namesrv: cluster.namesrv_addr.clone(),
        };
        let s = consume(args).await.expect("consume");
        assert_eq!((s.messages, s.errors), (30, 0), "{mode:?}: {s:?}");
        assert_eq!(s.redeliveries, if mode == Mode::Pull { None } else { Some(0) }, "{mode:?}");
    }
    // The pull mode committed what it read: the group has no lag left.
    let reader = raftmq_client::QueueReader::new(client.clone());
    for q in 0..3 {
        let max = reader.query_offset("cli-consume", "broker-a", q, true).await.expect("max offset");
        let committed = reader.get_offset("cli-consume", "broker-a", q, "cg-cli-pull").await.expect("get offset");
        assert_eq!(committed, Some(max), "queue {q}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_group_is_read_from_one_queue_in_send_order() {
    let (_dir, cluster, client) = start(23_941, "pull-plain").await;
    let fifo = [MessageType::Normal, MessageType::Fifo];
    client.create_topic_accepting("pull-fifo", 3, &fifo, &[]).await.expect("create FIFO topic");
    let producer = std::sync::Arc::new(Producer::new(client.clone()));
    let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..40 {
        let group = format!("order-{}", i % 5);
        let m = Message::new("pull-fifo", format!("{group} step {i}")).with_message_group(group.clone());
        sent.entry(group).or_default().push(producer.send(m).await.expect("send").message_id);
    }
    // A one-way send is not waited for; it shows up in a poll.
    producer.send_oneway(Message::new("pull-fifo", "one way").with_key("oneway"));
    let mut c = PullConsumer::builder(client.clone(), "cg-fifo", "pull-fifo").start().await.expect("start");
    let read = poll_n(&mut c, 41).await;
    let mut queues: BTreeMap<String, BTreeSet<MessageQueue>> = BTreeMap::new();
    let mut order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &read {
        let body = String::from_utf8_lossy(&m.message.body).to_string();
        let Some((group, _)) = body.split_once(" step ") else {
            assert_eq!(m.message.keys, vec!["oneway".to_string()]);
            continue;
        };
        queues.entry(group.to_string()).or_default().insert(m.queue.clone());
        order.entry(group.to_string()).or_default().push(m.message.message_id.clone());
    }
    for (group, qs) in &queues {
        assert_eq!(qs.len(), 1, "message group {group} spread over {qs:?}");
    }
    assert_eq!(order, sent, "each message group is read in send order");
    cluster.shutdown().await;
}
