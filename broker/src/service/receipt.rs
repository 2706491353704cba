//! Receipt handles: self-describing, so any replica of the group can validate
//! and route an ack. `rmq1.<broker group>.<hex of PopTarget>`; a handle is
//! stale once a newer delivery or change of invisible time exists (its epoch
//! no longer matches).
//!
//! Every delivered message gets one, so it is written from borrowed names
//! into one string (the PopTarget message's bytes by hand, checked against
//! prost's encoding) rather than from a PopTarget with cloned names.

use prost::Message as _;
use prost::bytes::BufMut;
use prost::encoding::{WireType, encode_key, encode_varint};
use raftmq_proto::broker::PopTarget;

use crate::error::ApiError;

const PREFIX: &str = "rmq1";

/// What a handle names: a [`PopTarget`] without its `unit`, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub group: &'a str,
    pub topic: &'a str,
    pub queue_id: i32,
    pub offset: i64,
    pub epoch: u64,
}

impl<'a> From<&'a PopTarget> for Target<'a> {
    fn from(t: &'a PopTarget) -> Self {
        Self { group: &t.group, topic: &t.topic, queue_id: t.queue_id, offset: t.offset, epoch: t.epoch }
    }
}

/// Appends `t` as the PopTarget message encodes it (fields in order, defaults left out), so a
/// handle is the same bytes whichever way it was made.
fn encode_target(t: Target<'_>, buf: &mut impl BufMut) {
    for (tag, s) in [(1, t.group), (2, t.topic)] {
        if !s.is_empty() {
            encode_key(tag, WireType::LengthDelimited, buf);
            encode_varint(s.len() as u64, buf);
            buf.put_slice(s.as_bytes());
        }
    }
    // int32 and int64 are varints of the sign-extended 64-bit value.
    for (tag, v) in [(3, i64::from(t.queue_id) as u64), (4, t.offset as u64), (5, t.epoch)] {
        if v != 0 {
            encode_key(tag, WireType::Varint, buf);
            encode_varint(v, buf);
        }
    }
}

pub fn encode(broker_group: &str, t: Target<'_>) -> String {
    // Besides the names: two keys with lengths and three keys with varints, 45 bytes at most.
    let mut bytes = Vec::with_capacity(t.group.len() + t.topic.len() + 45);
    encode_target(t, &mut bytes);
    let mut handle = String::with_capacity(PREFIX.len() + broker_group.len() + 2 + 2 * bytes.len());
    handle.push_str(PREFIX);
    handle.push('.');
    handle.push_str(broker_group);
    handle.push('.');
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        handle.push(HEX[usize::from(b >> 4)] as char);
        handle.push(HEX[usize::from(b & 15)] as char);
    }
    handle
}

/// The broker group the handle belongs to (borrowed from `handle`), and its target.
pub fn decode(handle: &str) -> Result<(&str, PopTarget), ApiError> {
    let bad = || {
        ApiError::new(
            raftmq_proto::rocketmq::v2::Code::InvalidReceiptHandle,
            format!("malformed receipt handle {handle:?}"),
        )
    };
    let mut parts = handle.splitn(3, '.');
    let (Some(PREFIX), Some(group), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let raw = hex::decode(body).map_err(|_| bad())?;
    let mut t = PopTarget::decode(raw.as_slice()).map_err(|_| bad())?;
    // Units travel only in dead-letter commands, filled in by the broker.
    t.unit = None;
    Ok((group, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let t =
            PopTarget { group: "g".into(), topic: "%RETRY%x".into(), queue_id: 3, offset: 99, epoch: 7, unit: None };
        let h = encode("broker-a", Target::from(&t));
        assert_eq!(decode(&h).unwrap(), ("broker-a", t));
        assert!(decode("nope").is_err());
        assert!(decode("rmq1.broker-a.zz").is_err());
        assert!(decode("rmq1.broker-a.abc").is_err(), "odd length");
    }

    /// Handles made before this encoder (from `PopTarget::encode_to_vec`) and after it are the
    /// same strings, so acks keep working across an upgrade; negative and zero fields included.
    #[test]
    fn the_handle_is_the_pop_target_message_in_hex() {
        let cases = [
            PopTarget { group: "g".into(), topic: "t".into(), queue_id: 3, offset: 99, epoch: 7, unit: None },
            PopTarget { group: String::new(), topic: "t".into(), queue_id: 0, offset: 0, epoch: 0, unit: None },
            PopTarget {
                group: "gg".into(),
                topic: String::new(),
                queue_id: -1,
                offset: -5,
                epoch: u64::MAX,
                unit: None,
            },
        ];
        for t in cases {
            let old = format!("{PREFIX}.b.{}", hex::encode(t.encode_to_vec()));
            assert_eq!(encode("b", Target::from(&t)), old);
        }
    }
}
