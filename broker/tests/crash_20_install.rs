//! A replica whose log was purged past its checkpoint (a crash in the middle of a snapshot
//! install, or between a purge and the checkpoint after it) recovers from the pin at the purge
//! point on open, and serves what it served before; without that pin it refuses to start
//! rather than run with state it cannot rebuild.

use std::time::Duration;

use raftmq_broker::BrokerNode;
use raftmq_broker::config::{BrokerConfig, Member};
use raftmq_broker::reader::{TagFilter, read_queue};
use raftmq_proto::broker::meta_command::Cmd as MetaCmd;
use raftmq_proto::broker::{MetaCommand, StoredMessage, TopicConfig};

const TOPIC: &str = "install";
const PORT: u16 = 19_461;
const SEGMENT: u64 = 64 * 1024;

fn config(dir: &std::path::Path) -> BrokerConfig {
    BrokerConfig {
        node_id: 1,
        listen: ([127, 0, 0, 1], PORT).into(),
        data_dir: dir.join("n1"),
        checkpoint_interval_ms: 50,
        pin_interval_ms: 50,
        segment_bytes: SEGMENT,
        max_body_bytes: 16 * 1024,
        retention_bytes: 2 * SEGMENT,
        initial_members: vec![Member { id: 1, addr: format!("127.0.0.1:{PORT}") }],
        ..Default::default()
    }
}

async fn write(node: &BrokerNode, cmd: raftmq_raft::Cmd) {
    for _ in 0..100 {
        if node.raft.client_write(cmd.clone()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no write committed in 10 s");
}

fn read_all(node: &BrokerNode) -> Vec<(i64, Vec<u8>)> {
    let r = read_queue(&node.shared, TOPIC, 0, 0, 100_000, &TagFilter::All).expect("read");
    r.messages.into_iter().map(|(o, m)| (o, m.body.to_vec())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_purged_past_the_checkpoint_recovers_from_the_pin() {
    let tmp = tempfile::TempDir::new().expect("tempdir");
    let dir = tmp.path();
    let node = BrokerNode::start(config(dir)).await.expect("start");
    let topic = TopicConfig { name: TOPIC.into(), queue_count: 1, ..Default::default() };
    let create = MetaCommand { cmd: Some(MetaCmd::CreateTopic(raftmq_broker::topic::with_defaults(topic))) };
    write(&node, raftmq_broker::cmd::encode_meta(&create)).await;
    // About eight segments, slowly enough for pins to fall between them.
    for i in 0..500 {
        let m = StoredMessage {
            topic: TOPIC.into(),
            message_id: format!("m{i}"),
            body: format!("value-{i}-{}", "x".repeat(1_000)).into_bytes().into(),
            message_type: 1,
            store_timestamp_ms: 1,
            ..Default::default()
        };
        write(&node, raftmq_broker::cmd::encode_batch(&[m])).await;
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while node.shared.log.last_purged().is_none() || node.shared.first_offset(TOPIC, 0) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "retention never purged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the purge settle, then take what the replica serves.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let served = read_all(&node);
    let purged = node.shared.log.last_purged().expect("purged").index;
    assert!(!served.is_empty() && served[0].0 > 0, "the oldest messages expired");
    node.kill().await;

    // The crash came after the purge and before any checkpoint past it: no checkpoint at all.
    let ckpt = dir.join("n1").join("checkpoint").join("state.ckpt");
    std::fs::remove_file(&ckpt).expect("remove the checkpoint");
    let node = BrokerNode::start(config(dir)).await.expect("restarts from the pin");
    assert_eq!(node.shared.log.last_purged().map(|l| l.index), Some(purged));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while read_all(&node) != served {
        assert!(tokio::time::Instant::now() < deadline, "the restarted replica serves something else");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.kill().await;

    // Without the pin at the purge point it cannot rebuild its state: it refuses to start.
    std::fs::remove_file(&ckpt).expect("remove the checkpoint again");
    std::fs::remove_dir_all(dir.join("n1").join("pins")).expect("remove the pins");
    let err = BrokerNode::start(config(dir)).await.err().expect("refuses to start");
    assert!(err.to_string().contains("no pinned checkpoint"), "{err}");
}
