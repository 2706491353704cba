//! Topic names and topic configs: what is accepted, and the Code for what is not.

use raftmq_proto::broker::TopicConfig;
use raftmq_proto::rocketmq::v2::{Code, MessageType, Permission};

use crate::sm::apply::MAX_QUEUES;

/// A topic name or config that cannot be accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopicError {
    #[error("topic name must not be empty")]
    Empty,
    #[error("topic name '{0}' is longer than 127 characters")]
    TooLong(String),
    #[error("topic name '{0}' has characters outside [%|a-zA-Z0-9_-]")]
    BadChars(String),
    #[error("topic name '{0}' uses the reserved prefix 'rmq_sys_'")]
    Reserved(String),
    #[error("topic '{name}' needs 1..={MAX_QUEUES} queues, got {count}")]
    QueueCount { name: String, count: u32 },
    #[error("topic '{0}' has an unknown or unspecified message type")]
    MessageType(String),
    #[error("topic '{0}' has an unknown permission")]
    Permission(String),
}

impl TopicError {
    pub fn code(&self) -> Code {
        match self {
            TopicError::Empty | TopicError::TooLong(_) | TopicError::BadChars(_) | TopicError::Reserved(_) => {
                Code::IllegalTopic
            }
            _ => Code::BadRequest,
        }
    }
}

/// RocketMQ's topic rule: 1-127 characters of `[%|a-zA-Z0-9_-]`, not `rmq_sys_*`.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.len() > 127 {
        return Err(TopicError::TooLong(name.to_string()));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-')) {
        return Err(TopicError::BadChars(name.to_string()));
    }
    if name.starts_with("rmq_sys_") {
        return Err(TopicError::Reserved(name.to_string()));
    }
    Ok(())
}

pub fn validate_topic_config(t: &TopicConfig) -> Result<(), TopicError> {
    validate_topic_name(&t.name)?;
    if t.queue_count == 0 || t.queue_count > MAX_QUEUES {
        return Err(TopicError::QueueCount { name: t.name.clone(), count: t.queue_count });
    }
    let known = |v: i32| matches!(MessageType::try_from(v), Ok(m) if m != MessageType::Unspecified);
    if t.message_types.is_empty() || !t.message_types.iter().all(|m| known(*m)) {
        return Err(TopicError::MessageType(t.name.clone()));
    }
    if !matches!(Permission::try_from(t.permission), Ok(p) if p != Permission::Unspecified) {
        return Err(TopicError::Permission(t.name.clone()));
    }
    Ok(())
}

/// A topic config with the defaults the admin API applies to omitted fields:
/// normal messages, read-write.
pub fn with_defaults(mut t: TopicConfig) -> TopicConfig {
    if t.message_types.is_empty() {
        t.message_types = vec![MessageType::Normal as i32];
    }
    if t.permission == 0 {
        t.permission = Permission::ReadWrite as i32;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_topic_name("Order_Events-1").is_ok());
        assert!(validate_topic_name("%RETRY%g|x").is_ok());
        assert_eq!(validate_topic_name("").unwrap_err().code(), Code::IllegalTopic);
        assert!(matches!(validate_topic_name("a b"), Err(TopicError::BadChars(_))));
        assert!(matches!(validate_topic_name("rmq_sys_x"), Err(TopicError::Reserved(_))));
        assert!(matches!(validate_topic_name(&"a".repeat(128)), Err(TopicError::TooLong(_))));
    }

    #[test]
    fn configs() {
        let t = with_defaults(TopicConfig { name: "t".into(), queue_count: 4, ..Default::default() });
        assert!(validate_topic_config(&t).is_ok());
        let bad = TopicConfig { queue_count: 0, ..t.clone() };
        assert!(matches!(validate_topic_config(&bad), Err(TopicError::QueueCount { .. })));
        let bad = TopicConfig { message_types: vec![99], ..t };
        assert!(matches!(validate_topic_config(&bad), Err(TopicError::MessageType(_))));
    }
}
