//! Receipt handles: self-describing, so any replica of the group can validate
//! and route an ack. `rmq1.<broker group>.<hex of PopTarget>`; a handle is
//! stale once a newer delivery or change of invisible time exists (its epoch
//! no longer matches).

use prost::Message as _;
use raftmq_proto::broker::PopTarget;

use crate::error::ApiError;

const PREFIX: &str = "rmq1";

pub fn encode(broker_group: &str, t: &PopTarget) -> String {
    format!("{PREFIX}.{broker_group}.{}", hex::encode(t.encode_to_vec()))
}

/// The broker group the handle belongs to, and its target.
pub fn decode(handle: &str) -> Result<(String, PopTarget), ApiError> {
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
    let bytes = hex::decode(body).map_err(|_| bad())?;
    let mut t = PopTarget::decode(bytes.as_slice()).map_err(|_| bad())?;
    // Units travel only in dead-letter commands, filled in by the broker.
    t.unit = None;
    Ok((group.to_string(), t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let t =
            PopTarget { group: "g".into(), topic: "%RETRY%x".into(), queue_id: 3, offset: 99, epoch: 7, unit: None };
        let h = encode("broker-a", &t);
        assert_eq!(decode(&h).unwrap(), ("broker-a".to_string(), t));
        assert!(decode("nope").is_err());
        assert!(decode("rmq1.broker-a.zz").is_err());
    }
}
