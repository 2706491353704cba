//! Replica catch-up and conflicting tails, on a real 3-replica group.

use std::time::Duration;

use raftmq_cli::devcluster::DevCluster;
use raftmq_client::producer::Message;
use raftmq_client::{Cluster, Producer};

/// Waits until replica `r` has applied `index`.
async fn wait_applied(cluster: &DevCluster, r: usize, index: u64) {
    let node = cluster.nodes[0][r].as_ref().expect("running");
    assert!(node.wait_applied(index, Duration::from_secs(20)).await, "replica {r} did not apply {index}");
}

fn committed(cluster: &DevCluster, r: usize) -> u64 {
    cluster.nodes[0][r].as_ref().expect("replica is running").committed_index()
}

fn prefix_crc(cluster: &DevCluster, r: usize, upto: u64) -> (u64, u32) {
    cluster.nodes[0][r].as_ref().expect("replica is running").shared.log.prefix_crc(upto).expect("prefix crc")
}

async fn send_n(producer: &Producer, n: usize) {
    for i in 0..n {
        producer.send(Message::new("t", format!("m{i}"))).await.expect("send");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_replica_catches_up_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = DevCluster::three_replicas(dir.path(), 21_181).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic("t", 2, &[]).await.unwrap();
    let producer = Producer::new(client);
    send_n(&producer, 200).await;

    let leader = cluster.leader_of(0).unwrap();
    let follower = (leader + 1) % 3;
    cluster.kill(0, follower).await;
    send_n(&producer, 300).await; // the group keeps committing with 2 of 3
    cluster.restart(0, follower).await.unwrap();

    let leader = cluster.leader_of(0).unwrap();
    let upto = committed(&cluster, leader);
    wait_applied(&cluster, follower, upto).await;
    assert_eq!(prefix_crc(&cluster, follower, upto), prefix_crc(&cluster, leader, upto));
    cluster.shutdown().await;
}

/// A graceful stop does not wait on the leader's append stream (it used to wait forever), and a
/// stopped or killed replica lets go of its stores: it restarts in the same process at once,
/// even the leader, which peers' forwarding connections reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_and_killed_replicas_restart_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = DevCluster::three_replicas(dir.path(), 26_581).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic("t", 2, &[]).await.unwrap();
    let producer = Producer::new(client);
    send_n(&producer, 100).await;

    let leader = cluster.leader_of(0).unwrap();
    let follower = (leader + 1) % 3;
    let stop = tokio::time::timeout(Duration::from_secs(10), cluster.stop(0, follower)).await;
    assert!(stop.is_ok(), "the follower's graceful stop waited on open streams");
    cluster.restart(0, follower).await.expect("a stopped replica restarts in process");
    send_n(&producer, 100).await;

    cluster.kill(0, leader).await;
    cluster.restart(0, leader).await.expect("a killed leader restarts in process");
    cluster.wait_for_leaders(Duration::from_secs(10)).await.unwrap();
    send_n(&producer, 100).await;

    let leader = cluster.leader_of(0).unwrap();
    let upto = committed(&cluster, leader);
    for r in 0..3 {
        wait_applied(&cluster, r, upto).await;
        assert_eq!(prefix_crc(&cluster, r, upto), prefix_crc(&cluster, leader, upto), "replica {r}");
    }
    let stop = tokio::time::timeout(Duration::from_secs(20), cluster.shutdown()).await;
    assert!(stop.is_ok(), "the group's graceful stop hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leaders_uncommitted_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = DevCluster::three_replicas(dir.path(), 21_281).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic("t", 1, &[]).await.unwrap();
    let producer = Producer::new(client.clone()).with_retries(0).with_timeout(Duration::from_millis(500));
    send_n(&producer, 50).await;

    // The leader loses both followers: what it appends now cannot commit.
    let old = cluster.leader_of(0).unwrap();
    let (f1, f2) = ((old + 1) % 3, (old + 2) % 3);
    let committed_before = committed(&cluster, old);
    cluster.kill(0, f1).await;
    cluster.kill(0, f2).await;
    let node = cluster.nodes[0][old].as_ref().unwrap();
    for i in 0..5 {
        let cmd = raftmq_broker::cmd::encode_batch(&[raftmq_proto::broker::StoredMessage {
            topic: "t".into(),
            message_id: format!("doomed-{i}"),
            ..Default::default()
        }]);
        let _ = tokio::time::timeout(Duration::from_millis(200), node.raft.client_write(raftmq_raft::Cmd(cmd.0))).await;
    }
    let tail = node.last_log_index();
    assert!(tail > committed_before, "the isolated leader appended an uncommitted tail");
    cluster.kill(0, old).await;

    // The followers elect a new leader and commit new entries over the old tail.
    cluster.restart(0, f1).await.unwrap();
    cluster.restart(0, f2).await.unwrap();
    cluster.wait_for_leaders(Duration::from_secs(10)).await.unwrap();
    let producer = Producer::new(client);
    send_n(&producer, 20).await;

    // The old leader comes back, truncates its conflicting tail, and matches.
    cluster.restart(0, old).await.unwrap();
    let leader = cluster.leader_of(0).unwrap();
    let upto = committed(&cluster, leader);
    assert!(upto >= tail, "the new leader's log passes the old tail");
    wait_applied(&cluster, old, upto).await;
    assert_eq!(prefix_crc(&cluster, old, upto), prefix_crc(&cluster, leader, upto));
    // The old leader applies exactly what the new leader applied. (In-process, a killed
    // follower's already-open connections can outlive its kill for a moment; an entry that
    // reached a majority that way is committed by the next leader, legally. What must never
    // happen is the old leader applying an entry the group did not commit.)
    let doomed = |r: usize| {
        let hits = cluster.nodes[0][r].as_ref().unwrap().shared.index.by_message_id(None, "doomed-0").unwrap();
        hits.iter().map(|h| h.position).collect::<Vec<_>>()
    };
    // (The index is written just behind apply: give both a moment to agree.)
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while doomed(old) != doomed(leader) && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(doomed(old), doomed(leader), "the old leader applied an entry the group did not commit");
    if !doomed(leader).is_empty() {
        eprintln!("note: the isolated tail reached a majority before the kill took effect and was committed");
    }
    cluster.shutdown().await;
}
