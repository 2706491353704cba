//! Topic administration (update, delete) and consumer offsets by queue
//! (UpdateOffset / GetOffset / QueryOffset) over gRPC, all replicated.

use raftmq_cli::devcluster::DevCluster;
use raftmq_client::producer::Message;
use raftmq_client::{Cluster, Producer};
use raftmq_proto::broker::{DeleteTopicRequest, ListTopicsRequest, TopicConfig, UpdateTopicRequest};
use raftmq_proto::rocketmq::v2::{self as v2, Code};

fn res(name: &str) -> Option<v2::Resource> {
    Some(v2::Resource { name: name.into(), ..Default::default() })
}

fn mq(topic: &str, id: i32) -> Option<v2::MessageQueue> {
    Some(v2::MessageQueue { topic: res(topic), id, ..Default::default() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_topic_changes_are_replicated() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = DevCluster::three_replicas(dir.path(), 21_981).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic("t", 1, &[]).await.unwrap();
    let producer = Producer::new(client.clone());
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    for i in 0..10 {
        producer.send(Message::new("t", format!("m{i}"))).await.unwrap();
    }
    let addrs: Vec<String> = cluster.nodes[0].iter().map(|n| n.as_ref().unwrap().addr.clone()).collect();
    let mut c = client.messaging(&addrs[0]).unwrap();

    // Consumer offsets: committed through the leader, readable on every replica.
    let up = v2::UpdateOffsetRequest { group: res("cg"), message_queue: mq("t", 0), offset: 7 };
    assert_eq!(c.update_offset(up).await.unwrap().into_inner().status.unwrap().code, Code::Ok as i32);
    let too_far = v2::UpdateOffsetRequest { group: res("cg"), message_queue: mq("t", 0), offset: 11 };
    assert_eq!(c.update_offset(too_far).await.unwrap().into_inner().status.unwrap().code, Code::BadRequest as i32);
    // Reads go through a read barrier: the first answer of every replica is
    // already the committed value, never an older one.
    for addr in &addrs {
        let mut r = client.messaging(addr).unwrap();
        let get = v2::GetOffsetRequest { group: res("cg"), message_queue: mq("t", 0) };
        assert_eq!(r.get_offset(get).await.unwrap().into_inner().offset, 7, "replica {addr}");
    }
    let unknown = v2::GetOffsetRequest { group: res("other"), message_queue: mq("t", 0) };
    assert_eq!(c.get_offset(unknown).await.unwrap().into_inner().status.unwrap().code, Code::NotFound as i32);

    // QueryOffset: beginning, end, and by time.
    let q = |policy: v2::QueryOffsetPolicy, ts: Option<prost_types::Timestamp>| v2::QueryOffsetRequest {
        message_queue: mq("t", 0),
        query_offset_policy: policy as i32,
        timestamp: ts,
    };
    assert_eq!(c.query_offset(q(v2::QueryOffsetPolicy::Beginning, None)).await.unwrap().into_inner().offset, 0);
    assert_eq!(c.query_offset(q(v2::QueryOffsetPolicy::End, None)).await.unwrap().into_inner().offset, 10);
    let ts = prost_types::Timestamp { seconds: before.as_secs() as i64, nanos: 0 };
    assert_eq!(c.query_offset(q(v2::QueryOffsetPolicy::Timestamp, Some(ts))).await.unwrap().into_inner().offset, 0);
    let future = prost_types::Timestamp { seconds: before.as_secs() as i64 + 3600, nanos: 0 };
    assert_eq!(
        c.query_offset(q(v2::QueryOffsetPolicy::Timestamp, Some(future))).await.unwrap().into_inner().offset,
        10
    );

    // Topics: queues only grow; a deleted topic is gone for sends.
    let mut admin = client.admin(&addrs[1]).unwrap();
    let grow = TopicConfig { name: "t".into(), queue_count: 3, ..Default::default() };
    let r = admin.update_topic(UpdateTopicRequest { topic: Some(grow) }).await.unwrap().into_inner();
    assert!(r.error.is_none(), "{:?}", r.error);
    let shrink = TopicConfig { name: "t".into(), queue_count: 2, ..Default::default() };
    let r = admin.update_topic(UpdateTopicRequest { topic: Some(shrink) }).await.unwrap().into_inner();
    assert_eq!(r.error.map(|e| e.code), Some(Code::BadRequest as i32));
    let listed = admin.list_topics(ListTopicsRequest {}).await.unwrap().into_inner();
    let t = listed.topics.iter().find(|t| t.config.as_ref().unwrap().name == "t").unwrap();
    assert_eq!(t.queues.len(), 3);
    assert_eq!(t.queues[0].max_offset, 10);
    let r = admin.delete_topic(DeleteTopicRequest { name: "t".into() }).await.unwrap().into_inner();
    assert!(r.error.is_none(), "{:?}", r.error);
    let m = v2::Message {
        topic: res("t"),
        system_properties: Some(v2::SystemProperties { message_id: "01AB".into(), ..Default::default() }),
        body: bytes::Bytes::from_static(b"x"),
        ..Default::default()
    };
    let sent = c.send_message(v2::SendMessageRequest { messages: vec![m] }).await.unwrap().into_inner();
    assert_eq!(sent.status.unwrap().code, Code::TopicNotFound as i32);
    cluster.shutdown().await;
}

/// Idempotent sends: a message id re-sent within the window is stored once,
/// and the re-send is answered with the original offset (even when it goes
/// through another replica).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_message_id_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = DevCluster::three_replicas(dir.path(), 22_481).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic("t", 1, &[]).await.unwrap();
    let m = |id: &str| v2::Message {
        topic: res("t"),
        system_properties: Some(v2::SystemProperties { message_id: id.into(), ..Default::default() }),
        body: bytes::Bytes::from_static(b"x"),
        ..Default::default()
    };
    let mut offsets = Vec::new();
    for (node, id) in [(0, "A"), (1, "B"), (2, "A"), (0, "A")] {
        let mut c = client.messaging(&cluster.nodes[0][node].as_ref().unwrap().addr).unwrap();
        let r = c.send_message(v2::SendMessageRequest { messages: vec![m(id)] }).await.unwrap().into_inner();
        assert_eq!(r.status.unwrap().code, Code::Ok as i32);
        offsets.push(r.entries[0].offset);
    }
    assert_eq!(offsets, vec![0, 1, 0, 0]);
    let mut c = client.messaging(&cluster.nodes[0][0].as_ref().unwrap().addr).unwrap();
    let end = v2::QueryOffsetRequest {
        message_queue: mq("t", 0),
        query_offset_policy: v2::QueryOffsetPolicy::End as i32,
        timestamp: None,
    };
    assert_eq!(c.query_offset(end).await.unwrap().into_inner().offset, 2, "two messages stored");
    cluster.shutdown().await;
}

/// Found by the Jepsen clock-skew nemesis: a replica that has just restarted
/// answered GetOffset from its own state before catching up, so a committed
/// offset seemed to move backwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replica_never_answers_an_older_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = DevCluster::three_replicas(dir.path(), 24_281).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic("t", 1, &[]).await.unwrap();
    let producer = Producer::new(client.clone());
    for i in 0..10 {
        producer.send(Message::new("t", format!("m{i}"))).await.unwrap();
    }
    let leader = cluster.leader_of(0).unwrap();
    let follower = (leader + 1) % 3;
    let addrs: Vec<String> = cluster.nodes[0].iter().map(|n| n.as_ref().unwrap().addr.clone()).collect();
    let commit = |offset| v2::UpdateOffsetRequest { group: res("cg"), message_queue: mq("t", 0), offset };
    let mut c = client.messaging(&addrs[leader]).unwrap();
    assert_eq!(c.update_offset(commit(3)).await.unwrap().into_inner().status.unwrap().code, Code::Ok as i32);
    // The follower misses the next commits while it is down.
    cluster.kill(0, follower).await;
    for offset in 4..=9 {
        assert_eq!(c.update_offset(commit(offset)).await.unwrap().into_inner().status.unwrap().code, Code::Ok as i32);
    }
    cluster.restart(0, follower).await.unwrap();
    let mut r = client.messaging(&addrs[follower]).unwrap();
    let get = v2::GetOffsetRequest { group: res("cg"), message_queue: mq("t", 0) };
    let got = r.get_offset(get).await.unwrap().into_inner();
    assert_eq!(got.status.unwrap().code, Code::Ok as i32);
    assert_eq!(got.offset, 9, "the restarted replica answered before catching up");
    cluster.shutdown().await;
}
