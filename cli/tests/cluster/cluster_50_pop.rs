//! Pop consumption over the v2 API on a 3-replica group: receive with an
//! invisible time, ack, change of invisible time (the old handle goes stale),
//! redelivery with attempt + 1, and no acknowledged message delivered again
//! after the leader is killed.

use std::collections::BTreeSet;
use std::time::Duration;

use raftmq_cli::devcluster::DevCluster;
use raftmq_client::producer::Message;
use raftmq_client::{Cluster, Producer};
use raftmq_proto::rocketmq::v2::{self as v2, Code, messaging_service_client::MessagingServiceClient};
use tonic::transport::Channel;

fn res(name: &str) -> Option<v2::Resource> {
    Some(v2::Resource { name: name.into(), ..Default::default() })
}

fn secs(s: u64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds: s as i64, nanos: 0 })
}

/// (message id, receipt handle, delivery attempt)
async fn receive(c: &mut MessagingServiceClient<Channel>, invisible: u64) -> Vec<(String, String, i32)> {
    receive_attempt(c, invisible, 64, None).await
}

async fn receive_attempt(
    c: &mut MessagingServiceClient<Channel>,
    invisible: u64,
    batch_size: i32,
    attempt_id: Option<&str>,
) -> Vec<(String, String, i32)> {
    let req = v2::ReceiveMessageRequest {
        group: res("cg"),
        message_queue: Some(v2::MessageQueue { topic: res("t"), ..Default::default() }),
        batch_size,
        invisible_duration: secs(invisible),
        long_polling_timeout: secs(1),
        attempt_id: attempt_id.map(str::to_owned),
        ..Default::default()
    };
    deliveries(c, tonic::Request::new(req)).await
}

async fn ack(c: &mut MessagingServiceClient<Channel>, handles: &[&str]) -> v2::AckMessageResponse {
    let req = v2::AckMessageRequest {
        group: res("cg"),
        topic: res("t"),
        entries: handles
            .iter()
            .map(|h| v2::AckMessageEntry { receipt_handle: h.to_string(), ..Default::default() })
            .collect(),
    };
    c.ack_message(req).await.expect("rpc").into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_ack_redeliver_and_survive_failover() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = DevCluster::three_replicas(dir.path(), 21_581).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic("t", 2, &[]).await.unwrap();
    let producer = Producer::new(client.clone());
    let mut sent = BTreeSet::new();
    for i in 0..20 {
        sent.insert(producer.send(Message::new("t", format!("m{i}"))).await.unwrap().message_id);
    }

    // Talk to a follower: every replica serves pop consumption through the leader.
    let leader = cluster.leader_of(0).unwrap();
    let follower = cluster.nodes[0][(leader + 1) % 3].as_ref().unwrap().addr.clone();
    let mut c = client.messaging(&follower).unwrap();
    let first = receive(&mut c, 2).await;
    assert_eq!(first.iter().map(|m| m.0.clone()).collect::<BTreeSet<_>>(), sent);
    assert!(first.iter().all(|m| m.2 == 1));
    assert!(receive(&mut c, 2).await.is_empty(), "in-flight messages are invisible");

    // Ack ten; extend one; the extended one's old handle is stale.
    let acked: Vec<&str> = first[..10].iter().map(|m| m.1.as_str()).collect();
    assert_eq!(ack(&mut c, &acked).await.status.unwrap().code, Code::Ok as i32);
    let (ext_id, ext_old) = (first[10].0.clone(), first[10].1.clone());
    let change = v2::ChangeInvisibleDurationRequest {
        group: res("cg"),
        topic: res("t"),
        receipt_handle: ext_old.clone(),
        invisible_duration: secs(60),
        message_id: ext_id.clone(),
        ..Default::default()
    };
    let changed = c.change_invisible_duration(change).await.unwrap().into_inner();
    assert_eq!(changed.status.unwrap().code, Code::Ok as i32);
    let stale = ack(&mut c, &[&ext_old]).await;
    assert_eq!(stale.status.unwrap().code, Code::InvalidReceiptHandle as i32);

    // The nine neither acked nor extended come back with attempt 2.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let again = receive(&mut c, 30).await;
    let want: BTreeSet<String> = first[11..].iter().map(|m| m.0.clone()).collect();
    assert_eq!(again.iter().map(|m| m.0.clone()).collect::<BTreeSet<_>>(), want);
    assert!(again.iter().all(|m| m.2 == 2), "redelivered with attempt + 1");
    let handles: Vec<&str> = again.iter().map(|m| m.1.as_str()).collect();
    assert_eq!(ack(&mut c, &handles).await.status.unwrap().code, Code::Ok as i32);

    // Kill the leader: the pop state is replicated, so nothing acked comes back
    // and the extended message stays invisible; the new handle still acks.
    cluster.kill(0, leader).await;
    cluster.wait_for_leaders(Duration::from_secs(10)).await.unwrap();
    assert!(receive(&mut c, 30).await.is_empty(), "nothing acknowledged is delivered again");
    assert_eq!(ack(&mut c, &[&changed.receipt_handle]).await.status.unwrap().code, Code::Ok as i32);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_forwarding_and_assignments() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = DevCluster::three_replicas(dir.path(), 21_681).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic("t", 2, &[]).await.unwrap();
    let producer = Producer::new(client.clone());
    let id = producer.send(Message::new("t", "poison")).await.unwrap().message_id;
    let addr = cluster.nodes[0][0].as_ref().unwrap().addr.clone();
    let mut c = client.messaging(&addr).unwrap();

    let assign = v2::QueryAssignmentRequest { topic: res("t"), group: res("cg"), endpoints: None };
    let a = c.query_assignment(assign).await.unwrap().into_inner();
    assert_eq!(a.status.unwrap().code, Code::Ok as i32);
    assert_eq!(a.assignments.len(), 1);
    let mq = a.assignments[0].message_queue.as_ref().unwrap();
    assert_eq!((mq.id, mq.broker.as_ref().unwrap().name.as_str()), (-1, "broker-a"));

    let got = receive(&mut c, 30).await;
    assert_eq!(got.len(), 1);
    let fwd = v2::ForwardMessageToDeadLetterQueueRequest {
        group: res("cg"),
        topic: res("t"),
        receipt_handle: got[0].1.clone(),
        message_id: id.clone(),
        ..Default::default()
    };
    let r = c.forward_message_to_dead_letter_queue(fwd.clone()).await.unwrap().into_inner();
    assert_eq!(r.status.unwrap().code, Code::Ok as i32);
    // The same handle cannot move it twice; the message is consumed.
    let again = c.forward_message_to_dead_letter_queue(fwd).await.unwrap().into_inner();
    assert_eq!(again.status.unwrap().code, Code::InvalidReceiptHandle as i32);
    assert!(receive(&mut c, 30).await.is_empty());

    // It now sits in %DLQ%cg, readable by offset.
    let pull = v2::PullMessageRequest {
        group: res("reader"),
        message_queue: Some(v2::MessageQueue { topic: res("%DLQ%cg"), id: 0, ..Default::default() }),
        offset: 0,
        batch_size: 10,
        ..Default::default()
    };
    let mut stream = c.pull_message(pull).await.unwrap().into_inner();
    let mut ids = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        if let Some(v2::pull_message_response::Content::Message(m)) = item.content {
            ids.push(m.system_properties.unwrap().message_id);
        }
    }
    assert_eq!(ids, vec![id]);
    cluster.shutdown().await;
}

/// For an orderly (FIFO) group, a receive retried with the same attempt id
/// (its response was lost) gets the first attempt's deliveries that are still
/// in flight, with the same receipt handles, on any replica and after a
/// failover, instead of leaving them invisible with the queue locked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_receive_attempt_gets_the_same_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = DevCluster::three_replicas(dir.path(), 26_081).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic("t", 1, &[]).await.unwrap();
    client.create_consumer_group("cg", true, 16, &[]).await.unwrap();
    let producer = Producer::new(client.clone());
    for i in 0..5 {
        producer.send(Message::new("t", format!("m{i}"))).await.unwrap();
    }
    let leader = cluster.leader_of(0).unwrap();
    let addrs: Vec<String> = (0..3).map(|r| cluster.nodes[0][r].as_ref().unwrap().addr.clone()).collect();
    let mut c = client.messaging(&addrs[(leader + 1) % 3]).unwrap();

    let first = receive_attempt(&mut c, 60, 3, Some("a1")).await;
    assert_eq!(first.len(), 3);
    assert_eq!(receive_attempt(&mut c, 60, 3, Some("a1")).await, first, "same deliveries, same handles");
    assert!(receive_attempt(&mut c, 60, 3, Some("a2")).await.is_empty(), "the queue is locked meanwhile");

    // An acked delivery leaves the attempt; the rest survive a leader change.
    assert_eq!(ack(&mut c, &[first[0].1.as_str()]).await.status.unwrap().code, Code::Ok as i32);
    cluster.kill(0, leader).await;
    cluster.wait_for_leaders(Duration::from_secs(10)).await.unwrap();
    let survivor = (0..3).find(|r| cluster.nodes[0][*r].is_some()).unwrap();
    let mut c = client.messaging(&addrs[survivor]).unwrap();
    assert_eq!(receive_attempt(&mut c, 60, 3, Some("a1")).await, first[1..].to_vec());

    // Once the whole first batch is acked, the queue moves on.
    let rest: Vec<&str> = first[1..].iter().map(|m| m.1.as_str()).collect();
    assert_eq!(ack(&mut c, &rest).await.status.unwrap().code, Code::Ok as i32);
    assert_eq!(receive_attempt(&mut c, 60, 3, Some("a1")).await.len(), 2, "a spent attempt pops afresh");

    let too_long = "x".repeat(257);
    let req = v2::ReceiveMessageRequest {
        group: res("cg"),
        message_queue: Some(v2::MessageQueue { topic: res("t"), ..Default::default() }),
        batch_size: 1,
        invisible_duration: secs(60),
        long_polling_timeout: secs(1),
        attempt_id: Some(too_long),
        ..Default::default()
    };
    let mut stream = c.receive_message(req).await.expect("rpc").into_inner();
    let status = match stream.message().await.expect("rpc").and_then(|r| r.content) {
        Some(v2::receive_message_response::Content::Status(s)) => s,
        other => panic!("expected a status, got {other:?}"),
    };
    assert_eq!(status.code, Code::BadRequest as i32, "{}", status.message);
    cluster.shutdown().await;
}

/// Opens a Telemetry stream as `client` (subscription settings for group
/// "cg"); the client stays known to that replica until the returned sender is dropped.
async fn open_telemetry(
    c: &mut MessagingServiceClient<Channel>,
    client: &str,
) -> (futures::channel::mpsc::UnboundedSender<v2::TelemetryCommand>, tonic::Streaming<v2::TelemetryCommand>) {
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let settings = v2::Settings {
        pub_sub: Some(v2::settings::PubSub::Subscription(v2::Subscription { group: res("cg"), ..Default::default() })),
        ..Default::default()
    };
    tx.unbounded_send(v2::TelemetryCommand {
        command: Some(v2::telemetry_command::Command::Settings(settings)),
        ..Default::default()
    })
    .expect("queue settings");
    let mut req = tonic::Request::new(rx);
    req.metadata_mut().insert("x-mq-client-id", client.parse().expect("ascii client id"));
    let mut replies = c.telemetry(req).await.expect("telemetry").into_inner();
    replies.message().await.expect("settings reply").expect("settings reply");
    (tx, replies)
}

/// A push consumer's receive (`auto_renew`, no invisible time) as `client`.
async fn receive_auto_renew(c: &mut MessagingServiceClient<Channel>, client: &str) -> Vec<(String, String, i32)> {
    let mut req = tonic::Request::new(v2::ReceiveMessageRequest {
        group: res("cg"),
        message_queue: Some(v2::MessageQueue { topic: res("t"), ..Default::default() }),
        batch_size: 2,
        auto_renew: true,
        long_polling_timeout: secs(1),
        ..Default::default()
    });
    req.metadata_mut().insert("x-mq-client-id", client.parse().expect("ascii client id"));
    deliveries(c, req).await
}

/// (message id, receipt handle, delivery attempt) of each message a receive streams back.
async fn deliveries(
    c: &mut MessagingServiceClient<Channel>,
    req: tonic::Request<v2::ReceiveMessageRequest>,
) -> Vec<(String, String, i32)> {
    let mut stream = c.receive_message(req).await.expect("rpc").into_inner();
    let mut out = Vec::new();
    while let Some(item) = stream.message().await.expect("rpc") {
        if let Some(v2::receive_message_response::Content::Message(m)) = item.content {
            let sys = m.system_properties.expect("rpc");
            out.push((sys.message_id, sys.receipt_handle.expect("rpc"), sys.delivery_attempt.expect("rpc")));
        }
    }
    out
}

/// `auto_renew` deliveries stay invisible while their client is connected,
/// well past the invisible time, and the handle the client holds still acks;
/// when the client goes away they come back about a second later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_renews_auto_renew_deliveries_while_the_client_lives() {
    let dir = tempfile::tempdir().unwrap();
    let spec = raftmq_cli::devcluster::DevClusterSpec::three_replicas(dir.path(), 26_181);
    let cluster = DevCluster::start_with(&spec, |c| {
        // Renewals get 3 s to land, so a loaded machine does not let one lapse.
        c.auto_renew_invisible_ms = 4_000;
        c.auto_renew_ahead_ms = 3_000;
    })
    .await
    .unwrap();
    cluster.wait_for_leaders(Duration::from_secs(10)).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic("t", 1, &[]).await.unwrap();
    let producer = Producer::new(client.clone());
    for i in 0..3 {
        producer.send(Message::new("t", format!("m{i}"))).await.unwrap();
    }
    let addr = cluster.nodes[0][0].as_ref().unwrap().addr.clone();
    let mut c = client.messaging(&addr).unwrap();
    let (telemetry, _replies) = open_telemetry(&mut c, "push-1").await;

    let leased = receive_auto_renew(&mut c, "push-1").await;
    assert_eq!(leased.len(), 2);
    // Two and a half invisible times later, only the third message is visible.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let rest = receive(&mut c, 30).await;
    assert_eq!(rest.len(), 1, "the leased deliveries were renewed");
    assert!(leased.iter().all(|l| l.0 != rest[0].0));
    assert_eq!(ack(&mut c, &[leased[0].1.as_str()]).await.status.unwrap().code, Code::Ok as i32, "same handle");

    // The client goes away: its other delivery comes back (renewed, it would
    // stay invisible for as long as the client lived).
    drop(telemetry);
    let until = tokio::time::Instant::now() + Duration::from_secs(6);
    let mut back = Vec::new();
    while back.is_empty() && tokio::time::Instant::now() < until {
        back = receive(&mut c, 30).await;
    }
    assert_eq!(back.iter().map(|m| (m.0.as_str(), m.2)).collect::<Vec<_>>(), vec![(leased[1].0.as_str(), 2)]);
    cluster.shutdown().await;
}
