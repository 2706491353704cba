//! Bad input over the v2 API: each case gets its own `apache.rocketmq.v2.Code`
//! and a message that says what was wrong, and changes nothing (the queue
//! stays empty, the message stays in flight).

use raftmq_cli::devcluster::DevCluster;
use raftmq_client::Cluster;
use raftmq_proto::rocketmq::v2::{self as v2, Code, messaging_service_client::MessagingServiceClient};
use tonic::transport::Channel;

fn res(name: &str) -> Option<v2::Resource> {
    Some(v2::Resource { name: name.into(), ..Default::default() })
}

fn msg(topic: &str) -> v2::Message {
    v2::Message {
        topic: res(topic),
        system_properties: Some(v2::SystemProperties {
            message_id: "01ABCDEF".into(),
            message_type: v2::MessageType::Normal as i32,
            ..Default::default()
        }),
        body: bytes::Bytes::from_static(b"hello"),
        ..Default::default()
    }
}

async fn send_code(c: &mut MessagingServiceClient<Channel>, m: v2::Message) -> (Code, String) {
    let r = c.send_message(v2::SendMessageRequest { messages: vec![m] }).await.expect("rpc").into_inner();
    let s = r.status.expect("status");
    assert_eq!(r.entries.len(), 1, "one entry per message, even on error");
    (Code::try_from(s.code).expect("known code"), s.message)
}

async fn receive_code(c: &mut MessagingServiceClient<Channel>, req: v2::ReceiveMessageRequest) -> Code {
    let mut stream = c.receive_message(req).await.expect("rpc").into_inner();
    let mut code = None;
    while let Some(item) = stream.message().await.expect("stream") {
        if let Some(v2::receive_message_response::Content::Status(s)) = item.content {
            code = Some(Code::try_from(s.code).expect("known code"));
        }
    }
    code.expect("a status")
}

fn secs(s: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds: s, nanos: 0 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_has_its_code_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = DevCluster::three_replicas(dir.path(), 21_781).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic("t", 1, &[]).await.unwrap();
    let addr = cluster.nodes[0][0].as_ref().unwrap().addr.clone();
    let mut c = client.messaging(&addr).unwrap();

    let mut cases: Vec<(&str, v2::Message, Code)> = Vec::new();
    cases.push(("empty topic", msg(""), Code::IllegalTopic));
    cases.push(("illegal topic name", msg("a b"), Code::IllegalTopic));
    let mut m = msg("t");
    m.body = bytes::Bytes::from(vec![0u8; 4 * 1024 * 1024 + 1]);
    cases.push(("body too large", m, Code::MessageBodyTooLarge));
    let mut m = msg("t");
    m.system_properties.as_mut().unwrap().tag = Some("a||b".into());
    cases.push(("bad tag", m, Code::IllegalMessageTag));
    let mut m = msg("t");
    m.system_properties.as_mut().unwrap().keys = vec!["\u{1}".into()];
    cases.push(("bad key", m, Code::IllegalMessageKey));
    let mut m = msg("t");
    m.system_properties.as_mut().unwrap().message_group = Some("g".repeat(70));
    cases.push(("bad message group", m, Code::IllegalMessageGroup));
    let mut m = msg("t");
    m.user_properties.insert("UNIQ_KEY".into(), "x".into());
    cases.push(("reserved property key", m, Code::IllegalMessagePropertyKey));
    let mut m = msg("t");
    m.user_properties = (0..200).map(|i| (format!("k{i}"), "v".into())).collect();
    cases.push(("too many properties", m, Code::MessagePropertiesTooLarge));
    let mut m = msg("t");
    m.system_properties.as_mut().unwrap().message_id = "  ".into();
    cases.push(("blank message id", m, Code::IllegalMessageId));
    let mut m = msg("t");
    let far = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + 3 * 86400;
    m.system_properties.as_mut().unwrap().delivery_timestamp = Some(prost_types::Timestamp { seconds: far, nanos: 0 });
    m.system_properties.as_mut().unwrap().message_type = v2::MessageType::Delay as i32;
    cases.push(("delivery time too far ahead", m, Code::IllegalDeliveryTime));
    let mut m = msg("t");
    m.system_properties.as_mut().unwrap().message_type = v2::MessageType::Transaction as i32;
    cases.push(("message type not accepted by the topic", m, Code::MessagePropertyConflictWithType));
    cases.push(("unknown topic", msg("nope"), Code::TopicNotFound));
    for (what, m, want) in cases {
        let (code, message) = send_code(&mut c, m).await;
        assert_eq!(code, want, "{what}: {message}");
        assert!(!message.is_empty(), "{what}: the message says what was wrong");
    }
    // Nothing was stored.
    let q = v2::QueryOffsetRequest {
        message_queue: Some(v2::MessageQueue { topic: res("t"), id: 0, ..Default::default() }),
        query_offset_policy: v2::QueryOffsetPolicy::End as i32,
        timestamp: None,
    };
    assert_eq!(c.query_offset(q).await.unwrap().into_inner().offset, 0);

    // Consumer side.
    let base = v2::ReceiveMessageRequest {
        group: res("cg"),
        message_queue: Some(v2::MessageQueue { topic: res("t"), ..Default::default() }),
        batch_size: 8,
        invisible_duration: secs(15),
        long_polling_timeout: secs(1),
        ..Default::default()
    };
    let r = v2::ReceiveMessageRequest { group: res(""), ..base.clone() };
    assert_eq!(receive_code(&mut c, r).await, Code::IllegalConsumerGroup);
    let r = v2::ReceiveMessageRequest { invisible_duration: secs(0), ..base.clone() };
    assert_eq!(receive_code(&mut c, r).await, Code::IllegalInvisibleTime);
    let r = v2::ReceiveMessageRequest { long_polling_timeout: secs(-1), ..base.clone() };
    assert_eq!(receive_code(&mut c, r).await, Code::IllegalPollingTime);
    let f = v2::FilterExpression { r#type: v2::FilterType::Tag as i32, expression: "a||".into() };
    let r = v2::ReceiveMessageRequest { filter_expression: Some(f), ..base.clone() };
    assert_eq!(receive_code(&mut c, r).await, Code::IllegalFilterExpression);
    let r = v2::ReceiveMessageRequest {
        message_queue: Some(v2::MessageQueue { topic: res("nope"), ..Default::default() }),
        ..base.clone()
    };
    assert_eq!(receive_code(&mut c, r).await, Code::TopicNotFound);
    let ack = v2::AckMessageRequest {
        group: res("cg"),
        topic: res("t"),
        entries: vec![v2::AckMessageEntry { receipt_handle: "rmq1.broker-a.00".into(), ..Default::default() }],
    };
    let a = c.ack_message(ack).await.unwrap().into_inner();
    assert_eq!(a.status.unwrap().code, Code::InvalidReceiptHandle as i32);
    assert_eq!(a.entries.len(), 1);
    // The refused receives popped nothing: the message is still there to take.
    client.create_topic("u", 1, &[]).await.unwrap();
    let producer = raftmq_client::Producer::new(client.clone());
    producer.send(raftmq_client::producer::Message::new("u", "x")).await.unwrap();
    let r = v2::ReceiveMessageRequest {
        message_queue: Some(v2::MessageQueue { topic: res("u"), ..Default::default() }),
        invisible_duration: secs(0),
        ..base.clone()
    };
    assert_eq!(receive_code(&mut c, r).await, Code::IllegalInvisibleTime);
    let r = v2::ReceiveMessageRequest {
        message_queue: Some(v2::MessageQueue { topic: res("u"), ..Default::default() }),
        long_polling_timeout: secs(3),
        ..base
    };
    assert_eq!(receive_code(&mut c, r).await, Code::Ok);
    cluster.shutdown().await;
}
