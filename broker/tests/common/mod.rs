//! Helpers shared by the one-replica broker tests.

use std::time::Duration;

use raftmq_broker::BrokerNode;
use raftmq_broker::config::{BrokerConfig, Member};
use raftmq_proto::broker::command_reply::Result as Reply;

/// Proposes `cmd` until it commits (a new node elects itself first); its log index and reply.
pub async fn write(node: &BrokerNode, cmd: raftmq_raft::Cmd) -> (u64, Option<Reply>) {
    for _ in 0..100 {
        match node.raft.client_write(cmd.clone()).await {
            Ok(r) => return (r.log_id.index, r.data.result),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("no write committed in 10 s");
}

/// A one-replica group listening on `port`, its data under `dir/n1`.
pub fn single_node(dir: &std::path::Path, port: u16) -> BrokerConfig {
    BrokerConfig {
        listen: ([127, 0, 0, 1], port).into(),
        data_dir: dir.join("n1"),
        initial_members: vec![Member { id: 1, addr: format!("127.0.0.1:{port}") }],
        ..Default::default()
    }
}
