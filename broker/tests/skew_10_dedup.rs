//! The idempotent-send window (I19) under leader clocks that disagree.
//!
//! Each leader stamps the entries it proposes with its wall clock, and the window's clock
//! advances only by differences between stamps of one term. The entries here carry the stamps
//! two leaders a minute and a half apart would put in them (found by the Jepsen clock-skew
//! nemesis: with store timestamps, a leader 90 s ahead emptied the window at its first insert, so
//! a re-send across that leader change was stored twice).

mod common;

use raftmq_broker::BrokerNode;
use raftmq_broker::cmd;
use raftmq_proto::broker::command_reply::Result as Reply;
use raftmq_proto::broker::meta_command::Cmd as MetaCmd;
use raftmq_proto::broker::{MetaCommand, StoredMessage, TopicConfig};

const TOPIC: &str = "skew";
const PORT: u16 = 19_421;

/// Stores message `id` in an entry stamped `stamp_ms` by leader process `run`; returns the
/// queue offset it was acknowledged with.
async fn send(node: &BrokerNode, run: u64, id: &str, stamp_ms: i64) -> i64 {
    let m = StoredMessage {
        topic: TOPIC.into(),
        message_id: id.into(),
        body: id.as_bytes().to_vec().into(),
        message_type: 1,
        store_timestamp_ms: stamp_ms,
        ..Default::default()
    };
    match common::write(node, cmd::stamp(&cmd::encode_batch(&[m]), cmd::Stamp { ms: stamp_ms, run })).await {
        (_, Some(Reply::Send(r))) => r.entries[0].queue_offset,
        other => panic!("unexpected reply {other:?}"),
    }
}

#[tokio::test]
async fn a_resend_to_a_leader_with_a_clock_ahead_is_still_stored_once() {
    let tmp = tempfile::TempDir::new().expect("tempdir");
    let node = BrokerNode::start(common::single_node(tmp.path(), PORT)).await.expect("start");
    let topic = TopicConfig { name: TOPIC.into(), queue_count: 1, ..Default::default() };
    let create = MetaCommand { cmd: Some(MetaCmd::CreateTopic(raftmq_broker::topic::with_defaults(topic))) };
    common::write(&node, cmd::encode_meta(&create)).await;

    let t = 1_800_000_000_000;
    // One leader: a re-send 1 s later gets the original offset; 61 s later it is a new message.
    let m0 = send(&node, 1, "m0", t - 70_000).await;
    assert_eq!(send(&node, 1, "m0", t - 69_000).await, m0);
    let first = send(&node, 1, "m1", t).await;
    assert_ne!(send(&node, 1, "m0", t + 500).await, m0, "61 s on one leader's clock: m0 left the window");

    // The node restarts (the log replays the same clock) and leads again as another process
    // whose clock is 90 s ahead: it stores another message, then receives m1's re-send, 2 s
    // after its first attempt.
    node.shutdown().await;
    let node = BrokerNode::start(common::single_node(tmp.path(), PORT)).await.expect("restart");
    send(&node, 2, "m2", t + 1_000 + 90_000).await;
    let again = send(&node, 2, "m1", t + 2_000 + 90_000).await;
    assert_eq!(again, first, "m1 was re-sent 2 s after it was stored: the window must answer the first offset");
    node.shutdown().await;
}
