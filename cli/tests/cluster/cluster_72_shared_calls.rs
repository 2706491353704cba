//! Concurrent sends of one producer share SendMessage calls (client/src/producer/lane.rs):
//! each still gets its own receipt, naming where that very message was stored, and a bad
//! message fails only its own send, not the others that shared its call.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use raftmq_cli::devcluster::DevCluster;
use raftmq_client::producer::Message;
use raftmq_client::{Cluster, Error, Producer, QueueReader};
use raftmq_proto::rocketmq::v2::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_share_calls_and_keep_their_own_answers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = DevCluster::three_replicas(dir.path(), 26_681).await.expect("cluster");
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).expect("client");
    client.create_topic("shared", 4, &[]).await.expect("create topic");
    for calls in [raftmq_client::producer::DEFAULT_SHARED_CALLS, 1, 0] {
        let producer = Arc::new(Producer::new(client.clone()).with_shared_calls(calls));
        // Started together, so that all but the first few wait for a call and share the next;
        // the bad one comes last, when the calls under way are the most crowded.
        let sends = (0..96).map(|i| {
            let producer = producer.clone();
            tokio::spawn(async move {
                let msg = Message::new("shared", format!("calls {calls} #{i}"));
                let msg = if i == 95 { msg.with_tag("a|b") } else { msg.with_tag("ok") };
                producer.send(msg).await
            })
        });
        let results: Vec<_> = futures::future::join_all(sends).await.into_iter().map(|r| r.expect("task")).collect();
        match &results[95] {
            Err(Error::Broker { code: Code::IllegalMessageTag, .. }) => {}
            other => panic!("the bad message's send answered {other:?}"),
        }
        let reader = QueueReader::new(client.clone());
        let mut places = BTreeSet::new();
        for (i, r) in results[..95].iter().enumerate() {
            let r = r.as_ref().unwrap_or_else(|e| panic!("calls {calls}: send #{i} failed with a bad neighbour: {e}"));
            assert!(places.insert((r.group.clone(), r.queue_id, r.offset)), "two receipts name {r:?}");
            let (msgs, _) =
                reader.pull("shared", &r.group, r.queue_id, r.offset, 1, Duration::ZERO).await.expect("pull");
            let got = msgs.first().map(|m| (m.offset, String::from_utf8_lossy(&m.body).into_owned()));
            assert_eq!(got, Some((r.offset, format!("calls {calls} #{i}"))), "receipt {r:?}");
        }
    }
}
