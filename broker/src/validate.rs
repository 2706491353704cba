//! SendMessage validation: each bad input gets its own Code and a message that
//! says what was wrong, before anything is proposed.
//!
//! Limits follow RocketMQ's proxy defaults: body ≤ 4 MiB (configurable), ≤ 128
//! user properties and ≤ 16 KiB of them, message group < 64 bytes, delivery
//! time at most 24 h ahead.

use raftmq_proto::rocketmq::v2::{Code, Message, MessageType};

use crate::error::ApiError;
use crate::topic::validate_topic_name;

pub const MAX_USER_PROPERTIES: usize = 128;
pub const MAX_PROPERTIES_BYTES: usize = 16 * 1024;
pub const MAX_MESSAGE_GROUP_BYTES: usize = 64;
pub const MAX_DELIVERY_AHEAD_MS: i64 = 24 * 3600 * 1000;

/// Property keys RocketMQ reserves for itself (`MessageConst.STRING_HASH_SET`, abridged to the
/// ones a client could plausibly collide with). A user property may not use them.
const RESERVED_KEYS: &[&str] = &[
    "KEYS",
    "TAGS",
    "WAIT",
    "DELAY",
    "RETRY_TOPIC",
    "REAL_TOPIC",
    "REAL_QID",
    "TRAN_MSG",
    "PGROUP",
    "MIN_OFFSET",
    "MAX_OFFSET",
    "BUYER_ID",
    "ORIGIN_MESSAGE_ID",
    "TRANSFER_FLAG",
    "CORRECTION_FLAG",
    "MQ2_FLAG",
    "RECONSUME_TIME",
    "MSG_REGION",
    "TRACE_ON",
    "UNIQ_KEY",
    "MAX_RECONSUME_TIMES",
    "CONSUME_START_TIME",
    "POP_CK",
    "POP_CK_OFFSET",
    "1ST_POP_TIME",
    "SHARDING_KEY",
    "TRAN_PREPARED_QUEUE_OFFSET",
    "TIMER_DELIVER_MS",
    "TIMER_DELAY_SEC",
    "TIMER_DELAY_MS",
    "TIMER_OUT_MS",
    "TIMER_ENQUEUE_MS",
    "TIMER_DEQUEUE_MS",
    "TIMER_ROLL_TIMES",
    "TIMER_DEL_UNIQKEY",
    "__STARTDELIVERTIME",
    "CHECK_IMMUNITY_TIME_IN_SECONDS",
    "INSTANCE_ID",
    "CORRELATION_ID",
    "REPLY_TO_CLIENT",
    "TTL",
    "ARRIVE_TIME",
    "PUSH_REPLY_TIME",
    "CLUSTER",
    "MSG_TYPE",
    "INNER_MULTI_DISPATCH",
    "INNER_MULTI_QUEUE_OFFSET",
    "TRACE_CONTEXT",
    "DLQ_ORIGIN_TOPIC",
    "DLQ_ORIGIN_MESSAGE_ID",
];

fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control())
}

fn blank(s: &str) -> bool {
    s.trim().is_empty()
}

/// Checks one message as a producer sent it. `now_ms` is the broker's clock.
pub fn validate_message(m: &Message, max_body: usize, now_ms: i64) -> Result<(), ApiError> {
    let topic = m.topic.as_ref().map(|t| t.name.as_str()).unwrap_or("");
    validate_topic_name(topic).map_err(|e| ApiError::new(Code::IllegalTopic, e.to_string()))?;
    let sys = m.system_properties.as_ref().ok_or_else(|| ApiError::bad_request("message has no system_properties"))?;
    if blank(&sys.message_id) {
        return Err(ApiError::new(Code::IllegalMessageId, "message_id must not be blank"));
    }
    if m.body.len() > max_body {
        return Err(ApiError::new(
            Code::MessageBodyTooLarge,
            format!("body is {} bytes; the limit is {max_body}", m.body.len()),
        ));
    }
    if let Some(tag) = &sys.tag
        && (blank(tag) || tag.contains('|') || has_control(tag))
    {
        return Err(ApiError::new(
            Code::IllegalMessageTag,
            format!("tag {tag:?} is blank, contains '|' or control characters"),
        ));
    }
    for key in &sys.keys {
        if blank(key) || has_control(key) {
            return Err(ApiError::new(
                Code::IllegalMessageKey,
                format!("key {key:?} is blank or contains control characters"),
            ));
        }
    }
    if let Some(group) = &sys.message_group
        && (blank(group) || group.len() >= MAX_MESSAGE_GROUP_BYTES || has_control(group))
    {
        return Err(ApiError::new(
            Code::IllegalMessageGroup,
            format!(
                "message group {group:?} must be non-blank, under {MAX_MESSAGE_GROUP_BYTES} bytes, without control characters"
            ),
        ));
    }
    if m.user_properties.len() > MAX_USER_PROPERTIES {
        return Err(ApiError::new(
            Code::MessagePropertiesTooLarge,
            format!("{} user properties; at most {MAX_USER_PROPERTIES} are allowed", m.user_properties.len()),
        ));
    }
    let mut bytes = 0;
    for (k, v) in &m.user_properties {
        if blank(k) || has_control(k) || RESERVED_KEYS.contains(&k.as_str()) {
            return Err(ApiError::new(
                Code::IllegalMessagePropertyKey,
                format!("property key {k:?} is blank, reserved or has control characters"),
            ));
        }
        bytes += k.len() + v.len();
    }
    if bytes > MAX_PROPERTIES_BYTES {
        return Err(ApiError::new(
            Code::MessagePropertiesTooLarge,
            format!("user properties take {bytes} bytes; the limit is {MAX_PROPERTIES_BYTES}"),
        ));
    }
    if let Some(ts) = &sys.delivery_timestamp {
        let at = ts.seconds.saturating_mul(1000).saturating_add(i64::from(ts.nanos) / 1_000_000);
        if at - now_ms > MAX_DELIVERY_AHEAD_MS {
            return Err(ApiError::new(
                Code::IllegalDeliveryTime,
                format!(
                    "delivery time is {} s ahead; at most {} s is allowed",
                    (at - now_ms) / 1000,
                    MAX_DELIVERY_AHEAD_MS / 1000
                ),
            ));
        }
    }
    Ok(())
}

/// The message type the producer declared, or the one its properties imply.
pub fn message_type(m: &Message) -> MessageType {
    let sys = m.system_properties.as_ref();
    match sys.map(|s| s.message_type) {
        Some(t) if t != MessageType::Unspecified as i32 => MessageType::try_from(t).unwrap_or(MessageType::Normal),
        _ if sys.and_then(|s| s.message_group.as_ref()).is_some() => MessageType::Fifo,
        _ if sys.and_then(|s| s.delivery_timestamp.as_ref()).is_some() => MessageType::Delay,
        _ => MessageType::Normal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftmq_proto::rocketmq::v2::{Resource, SystemProperties};

    fn msg() -> Message {
        Message {
            topic: Some(Resource { name: "t".into(), ..Default::default() }),
            system_properties: Some(SystemProperties { message_id: "01AB".into(), ..Default::default() }),
            body: bytes::Bytes::from_static(b"x"),
            ..Default::default()
        }
    }

    fn code(m: &Message) -> Code {
        validate_message(m, 16, 0).err().map(|e| e.code).unwrap_or(Code::Ok)
    }

    #[test]
    fn each_bad_input_has_its_code() {
        assert_eq!(code(&msg()), Code::Ok);
        let mut m = msg();
        m.topic = None;
        assert_eq!(code(&m), Code::IllegalTopic);
        let mut m = msg();
        m.body = bytes::Bytes::from(vec![0; 17]);
        assert_eq!(code(&m), Code::MessageBodyTooLarge);
        let mut m = msg();
        m.system_properties.as_mut().unwrap().message_id = " ".into();
        assert_eq!(code(&m), Code::IllegalMessageId);
        let mut m = msg();
        m.system_properties.as_mut().unwrap().tag = Some("a|b".into());
        assert_eq!(code(&m), Code::IllegalMessageTag);
        let mut m = msg();
        m.system_properties.as_mut().unwrap().keys = vec!["".into()];
        assert_eq!(code(&m), Code::IllegalMessageKey);
        let mut m = msg();
        m.system_properties.as_mut().unwrap().message_group = Some("g".repeat(64));
        assert_eq!(code(&m), Code::IllegalMessageGroup);
        let mut m = msg();
        m.user_properties.insert("UNIQ_KEY".into(), "x".into());
        assert_eq!(code(&m), Code::IllegalMessagePropertyKey);
        let mut m = msg();
        m.user_properties = (0..129).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(code(&m), Code::MessagePropertiesTooLarge);
        let mut m = msg();
        m.system_properties.as_mut().unwrap().delivery_timestamp =
            Some(prost_types::Timestamp { seconds: 25 * 3600, nanos: 0 });
        assert_eq!(code(&m), Code::IllegalDeliveryTime);
    }
}
