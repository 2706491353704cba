//! I42: a replica's regular checkpoint keeps the idempotent-send window's sealed runs in a
//! side file (`sm/window_runs.rs`) and carries only the open tail. A killed replica that
//! recovers from such a checkpoint must still know the oldest ids, which live only in that
//! file: a re-send of one gets the original offset, not a second copy.

mod common;

use std::time::Duration;

use raftmq_broker::BrokerNode;
use raftmq_broker::cmd;
use raftmq_broker::config::BrokerConfig;
use raftmq_broker::sm::checkpoint::CheckpointFile;
use raftmq_proto::broker::command_reply::Result as Reply;
use raftmq_proto::broker::meta_command::Cmd as MetaCmd;
use raftmq_proto::broker::{Checkpoint, MetaCommand, StoredMessage, TopicConfig};

const TOPIC: &str = "window";
const PORT: u16 = 19_431;
/// Ids sent: several sealed runs of 1024 and an open tail.
const IDS: usize = 5_000;
const STAMP_MS: i64 = 1_800_000_000_000;

/// Stores messages `ids` in one entry; returns its log index and each message's queue offset.
async fn send(node: &BrokerNode, ids: impl Iterator<Item = usize>) -> (u64, Vec<i64>) {
    let msgs: Vec<StoredMessage> = ids
        .map(|i| StoredMessage {
            topic: TOPIC.into(),
            message_id: format!("id-{i}"),
            body: b"x".to_vec().into(),
            message_type: 1,
            store_timestamp_ms: STAMP_MS,
            ..Default::default()
        })
        .collect();
    match common::write(node, cmd::stamp(&cmd::encode_batch(&msgs), cmd::Stamp { ms: STAMP_MS, run: 1 })).await {
        (index, Some(Reply::Send(r))) => (index, r.entries.iter().map(|e| e.queue_offset).collect()),
        other => panic!("unexpected reply {other:?}"),
    }
}

fn config(dir: &std::path::Path) -> BrokerConfig {
    BrokerConfig { checkpoint_interval_ms: 100, ..common::single_node(dir, PORT) }
}

/// The replica's checkpoint once it covers `index`.
async fn checkpoint_covering(dir: &std::path::Path, index: u64) -> Checkpoint {
    let file = CheckpointFile::open(&dir.join("n1").join("checkpoint")).expect("open");
    for _ in 0..200 {
        if let Some(c) = file.load().expect("load")
            && c.last_applied.as_ref().is_some_and(|l| l.index >= index)
        {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no checkpoint covered index {index} in 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_recovers_the_window_runs_its_checkpoint_names() {
    let tmp = tempfile::TempDir::new().expect("tempdir");
    let node = BrokerNode::start(config(tmp.path())).await.expect("start");
    let topic = TopicConfig { name: TOPIC.into(), queue_count: 1, ..Default::default() };
    let create = MetaCommand { cmd: Some(MetaCmd::CreateTopic(raftmq_broker::topic::with_defaults(topic))) };
    common::write(&node, cmd::encode_meta(&create)).await;
    let mut offsets = Vec::new();
    let mut last = 0;
    for chunk in (0..IDS).collect::<Vec<_>>().chunks(250) {
        let (index, o) = send(&node, chunk.iter().copied()).await;
        (last, offsets) = (index, [offsets, o].concat());
    }
    // Applying anything later starts a checkpoint covering every send.
    tokio::time::sleep(Duration::from_millis(150)).await;
    send(&node, std::iter::once(IDS)).await;
    let c = checkpoint_covering(tmp.path(), last).await;
    let runs = c.window_runs.expect("a regular checkpoint names the window's sealed runs");
    assert!(runs.runs.len() >= IDS / 1024, "{} runs named", runs.runs.len());
    assert!(c.sent_ids.len() < 1024, "only the open tail is inline, not {} ids", c.sent_ids.len());

    node.kill().await;
    let node = BrokerNode::start(config(tmp.path())).await.expect("restart");
    // The oldest ids are in the side file only; each re-send gets its first offset back.
    for i in [0, 1, 1023, 1024, IDS - 1] {
        let (_, again) = send(&node, std::iter::once(i)).await;
        assert_eq!(again, vec![offsets[i]], "id-{i} was re-sent after the restart: stored once");
    }
    let (_, fresh) = send(&node, std::iter::once(IDS + 1)).await;
    assert_eq!(fresh, vec![IDS as i64 + 1], "a new id is stored after all the others");
    node.shutdown().await;
}
