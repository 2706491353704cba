//! A follower that loses its unsynced CommitLog writes in a crash must come back serving exactly
//! what the leader serves.
//!
//! openraft lets a follower apply an entry as soon as it is committed on a quorum and appended
//! locally, before its own fdatasync of that entry completes. If the state machine's checkpoint
//! is written in that window, it names an applied index (and consume-queue units) that the
//! follower's log does not durably hold. After a power loss the log ends earlier than the
//! checkpoint; openraft then "purges" up to the checkpoint, so the lost entries are never fetched
//! again and new ones land at the wrong CommitLog positions, under consume-queue units that
//! point elsewhere.
//!
//! Checkpoints therefore wait for a CommitLog flush. The test holds node 3's syncs back
//! (`FaultyIo::pause_syncs`) so the window stays open and checks that no checkpoint passes the
//! durable log; then it crashes node 3 (unsynced writes reverted), plants a checkpoint ahead of
//! its log anyway (as an older build could have left), restarts it on the real backend and
//! compares every queue offset it serves with the leader's.

use std::sync::Arc;
use std::time::Duration;

use raftmq_broker::BrokerNode;
use raftmq_broker::config::{BrokerConfig, Member};
use raftmq_broker::reader::{TagFilter, read_queue};
use raftmq_broker::sm::checkpoint::CheckpointFile;
use raftmq_proto::broker::meta_command::Cmd as MetaCmd;
use raftmq_proto::broker::{MetaCommand, StoredMessage, TopicConfig};
use raftmq_store::io::FaultyIo;

const TOPIC: &str = "crash";
const BASE_PORT: u16 = 19_411;

fn config(dir: &std::path::Path, id: u64) -> BrokerConfig {
    let members = (1..=3).map(|m| Member { id: m, addr: format!("127.0.0.1:{}", BASE_PORT + m as u16 - 1) }).collect();
    BrokerConfig {
        node_id: id,
        listen: ([127, 0, 0, 1], BASE_PORT + id as u16 - 1).into(),
        data_dir: dir.join(format!("n{id}")),
        checkpoint_interval_ms: 50,
        segment_bytes: 8 << 20,
        max_body_bytes: 1 << 20,
        initial_members: members,
        ..Default::default()
    }
}

async fn leader_of(nodes: &[&BrokerNode]) -> usize {
    for _ in 0..200 {
        if let Some(i) = nodes.iter().position(|n| n.is_leader()) {
            return i;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no leader in 10 s");
}

/// Proposes `cmd` through `leader`, retrying while it is still taking office.
async fn write(leader: &BrokerNode, cmd: raftmq_raft::Cmd) -> u64 {
    for _ in 0..100 {
        match leader.raft.client_write(cmd.clone()).await {
            Ok(r) => return r.log_id.index,
            Err(e) => {
                eprintln!("write: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("no write committed in 10 s");
}

/// Proposes `count` one-message entries through the leader; returns the last log index.
async fn send(leader: &BrokerNode, from: usize, count: usize) -> u64 {
    let mut last = 0;
    for i in from..from + count {
        let m = StoredMessage {
            topic: TOPIC.into(),
            message_id: format!("m{i}"),
            body: format!("value-{i}-{}", "x".repeat(200)).into_bytes().into(),
            message_type: 1,
            store_timestamp_ms: 1,
            ..Default::default()
        };
        last = write(leader, raftmq_broker::cmd::encode_batch(&[m])).await;
    }
    last
}

fn read_all(node: &BrokerNode) -> Vec<(i64, Vec<u8>)> {
    let r = read_queue(&node.shared, TOPIC, 0, 0, 10_000, &TagFilter::All).expect("read");
    r.messages.into_iter().map(|(o, m)| (o, m.body.to_vec())).collect()
}

fn checkpointed_index(dir: &std::path::Path) -> u64 {
    let c = CheckpointFile::open(&dir.join("n3").join("checkpoint")).expect("open").load().expect("load");
    c.and_then(|c| c.last_applied).map_or(0, |l| l.index)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_that_lost_unsynced_writes_serves_what_the_leader_serves() {
    let tmp = tempfile::TempDir::new().expect("tempdir");
    let dir = tmp.path();
    // Nodes 1 and 2 are a quorum: they elect a leader before node 3 exists.
    let n1 = BrokerNode::start(config(dir, 1)).await.expect("n1");
    let n2 = BrokerNode::start(config(dir, 2)).await.expect("n2");
    let leader_index = leader_of(&[&n1, &n2]).await;
    let leader = [&n1, &n2][leader_index];
    let topic = TopicConfig { name: TOPIC.into(), queue_count: 1, ..Default::default() };
    let create = MetaCommand { cmd: Some(MetaCmd::CreateTopic(raftmq_broker::topic::with_defaults(topic))) };
    write(leader, raftmq_broker::cmd::encode_meta(&create)).await;

    let faulty = FaultyIo::new();
    let n3 = BrokerNode::start_with_io(config(dir, 3), Arc::new(faulty.clone())).await.expect("n3");
    let durable = send(leader, 0, 20).await;
    assert!(n3.wait_applied(durable, Duration::from_secs(10)).await, "n3 catches up");

    // Phase 2: n3 appends and applies, but its fdatasyncs never return. Its
    // checkpoints wait for the log: none may name an entry it could lose.
    faulty.pause_syncs();
    let mut last = send(leader, 20, 10).await;
    assert!(n3.wait_applied(last, Duration::from_secs(10)).await, "a follower applies before its own fsync");
    for round in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(checkpointed_index(dir) <= durable, "n3 checkpointed past its durable log in round {round}");
        // Checkpoints are taken on apply: give it something to apply.
        last = send(leader, 1000 + round, 1).await;
    }

    // Phase 3: power loss on n3, restart on the real backend.
    faulty.crash().expect("crash");
    n3.kill().await;
    // A checkpoint from an older build (before checkpoints waited for the
    // log) could still be ahead of the log: plant one, the leader's, which
    // names entries n3 lost. n3 must set it aside and rebuild from its log.
    let leader_dir = dir.join(format!("n{}", leader_index + 1)).join("checkpoint");
    let planted = CheckpointFile::open(&leader_dir).expect("open").load().expect("load").expect("a leader checkpoint");
    CheckpointFile::open(&dir.join("n3").join("checkpoint")).expect("open").store(&planted).expect("plant");
    assert!(checkpointed_index(dir) > durable, "the planted checkpoint is ahead of n3's durable log");
    let n3 = BrokerNode::start(config(dir, 3)).await.expect("n3 restarts after losing its unsynced tail");
    let last = last.max(send(leader, 2000, 20).await);
    assert!(n3.wait_applied(last, Duration::from_secs(20)).await, "n3 catches up after the restart");
    let want = read_all(leader);
    assert!(want.len() >= 50 && want.iter().enumerate().all(|(i, (o, _))| *o == i as i64), "leader's queue");
    assert_eq!(read_all(&n3), want, "n3 serves exactly what the leader serves");
    assert_eq!(n3.shared.log.last_log_id(), leader.shared.log.last_log_id());
}
