//! Consumer group configs: what is accepted, and the Code for what is not.

use raftmq_proto::broker::ConsumerGroupConfig;
use raftmq_proto::rocketmq::v2::Code;

/// Above this, a message would be retried for days; the v2 clients cap their
/// own back-off policies well below it.
pub const MAX_DELIVERY_ATTEMPTS: i32 = 1000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GroupError {
    #[error("consumer group name must be 1-255 characters of [%|a-zA-Z0-9_-], got '{0}'")]
    BadName(String),
    #[error(
        "consumer group '{name}': max_delivery_attempts must be 0 (the broker default) or 1..={MAX_DELIVERY_ATTEMPTS}, got {got}"
    )]
    Attempts { name: String, got: i32 },
}

impl GroupError {
    pub fn code(&self) -> Code {
        match self {
            GroupError::BadName(_) => Code::IllegalConsumerGroup,
            GroupError::Attempts { .. } => Code::BadRequest,
        }
    }
}

pub fn validate_group_name(name: &str) -> Result<(), GroupError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-'));
    if ok { Ok(()) } else { Err(GroupError::BadName(name.to_string())) }
}

pub fn validate_group_config(g: &ConsumerGroupConfig) -> Result<(), GroupError> {
    validate_group_name(&g.name)?;
    if !(0..=MAX_DELIVERY_ATTEMPTS).contains(&g.max_delivery_attempts) {
        return Err(GroupError::Attempts { name: g.name.clone(), got: g.max_delivery_attempts });
    }
    Ok(())
}

/// The settings an auto-created group gets: concurrent (not FIFO), the
/// broker's default attempts.
pub fn default_group(name: &str) -> ConsumerGroupConfig {
    ConsumerGroupConfig { name: name.to_string(), fifo: false, max_delivery_attempts: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_attempts() {
        assert!(validate_group_config(&default_group("cg-1_%|x")).is_ok());
        for bad in ["", "a b", "ä", &"x".repeat(256)] {
            let e = validate_group_config(&default_group(bad)).unwrap_err();
            assert_eq!(e.code(), Code::IllegalConsumerGroup, "{bad:?}");
        }
        let mut g = default_group("g");
        for (attempts, ok) in [(0, true), (1, true), (1000, true), (-1, false), (1001, false)] {
            g.max_delivery_attempts = attempts;
            assert_eq!(validate_group_config(&g).is_ok(), ok, "{attempts}");
        }
    }
}
