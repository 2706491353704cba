//! Conversions between the v2 wire `Message` and raftmq's `StoredMessage`.

use md5::{Digest as _, Md5};
use raftmq_proto::broker::StoredMessage;
use raftmq_proto::rocketmq::v2::{Digest, DigestType, Encoding, Message, Resource, SystemProperties};

use crate::validate::message_type;

fn ts_to_ms(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds.saturating_mul(1000).saturating_add(i64::from(ts.nanos) / 1_000_000)
}

pub fn ms_to_ts(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

/// A validated producer message as it will be stored in `queue_id`.
pub fn to_stored(m: Message, queue_id: i32, store_timestamp_ms: i64) -> StoredMessage {
    let message_type = message_type(&m) as i32;
    let topic = m.topic.map(|t| t.name).unwrap_or_default();
    let sys = m.system_properties.unwrap_or_default();
    StoredMessage {
        topic,
        queue_id,
        message_id: sys.message_id,
        tag: sys.tag,
        keys: sys.keys,
        user_properties: m.user_properties,
        body: m.body,
        born_timestamp_ms: sys.born_timestamp.as_ref().map(ts_to_ms).unwrap_or(store_timestamp_ms),
        born_host: sys.born_host,
        store_timestamp_ms,
        message_type,
        message_group: sys.message_group,
        delivery_timestamp_ms: sys.delivery_timestamp.as_ref().map(ts_to_ms),
        body_encoding: if sys.body_encoding == 0 { Encoding::Identity as i32 } else { sys.body_encoding },
        trace_context: sys.trace_context,
        reconsume_times: 0,
    }
}

/// A stored message as delivered to a consumer, with every system property
/// the official clients read (body_digest is required by the Node client).
pub fn to_delivered(s: StoredMessage, queue_offset: i64, store_host: &str) -> Message {
    let checksum = hex::encode_upper(Md5::digest(&s.body));
    let sys = SystemProperties {
        tag: s.tag,
        keys: s.keys,
        message_id: s.message_id,
        body_digest: Some(Digest { r#type: DigestType::Md5 as i32, checksum }),
        body_encoding: s.body_encoding,
        message_type: s.message_type,
        born_timestamp: Some(ms_to_ts(s.born_timestamp_ms)),
        born_host: s.born_host,
        store_timestamp: Some(ms_to_ts(s.store_timestamp_ms)),
        store_host: store_host.to_string(),
        delivery_timestamp: s.delivery_timestamp_ms.map(ms_to_ts),
        queue_id: s.queue_id,
        queue_offset: Some(queue_offset),
        delivery_attempt: Some(s.reconsume_times + 1),
        message_group: s.message_group,
        trace_context: s.trace_context,
        ..Default::default()
    };
    Message {
        topic: Some(Resource { name: s.topic, ..Default::default() }),
        user_properties: s.user_properties,
        system_properties: Some(sys),
        body: s.body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_what_the_producer_sent() {
        let m = Message {
            topic: Some(Resource { name: "t".into(), ..Default::default() }),
            system_properties: Some(SystemProperties {
                message_id: "id1".into(),
                tag: Some("a".into()),
                keys: vec!["k".into()],
                born_timestamp: Some(ms_to_ts(1_700_000_000_123)),
                ..Default::default()
            }),
            body: bytes::Bytes::from_static(b"hello"),
            ..Default::default()
        };
        let stored = to_stored(m, 2, 1_700_000_000_500);
        assert_eq!(stored.born_timestamp_ms, 1_700_000_000_123);
        let d = to_delivered(stored, 9, "h:1");
        let sys = d.system_properties.unwrap();
        assert_eq!(sys.queue_offset, Some(9));
        assert_eq!(sys.queue_id, 2);
        assert_eq!(sys.body_digest.unwrap().checksum, "5D41402ABC4B2A76B9719D911017C592");
        assert_eq!(sys.delivery_attempt, Some(1));
        assert_eq!(ms_to_ts(-1).seconds, -1);
    }
}
