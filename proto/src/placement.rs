//! Where a message of a message group is stored inside a broker group.
//!
//! RocketMQ's FIFO promise is per message group on one queue. The official
//! clients disagree on the queue (the Rust client hashes with zero-key
//! SipHash over all route queues, Node and Java with another key, the Java
//! proxy ignores the client's `queue_id` altogether), so the broker places a
//! message group itself, ignoring the `queue_id` on the wire: every producer,
//! in any language, lands one group on one queue. raftmq's SDK computes the
//! same queue with [`message_group_queue`], sends it as `queue_id` and reports
//! it in the send receipt (the broker also echoes the queues it used in the
//! [`QUEUE_IDS_HEADER`] response header, which the SDK prefers when present).
//!
//! The mapping is `fnv1a_64(message_group) % queue_count`. It must never
//! change: a different function would move every group to another queue on
//! upgrade and reorder its messages. It holds while the topic's queue count
//! on that broker group stays the same; changing the count moves some groups
//! (as in RocketMQ), and their order is kept from then on.

/// gRPC response metadata of `SendMessage`: the queue id of each entry, in
/// order, comma-separated (`"2,2,0"`). `SendResultEntry` has no queue field
/// and the upstream messages stay unchanged; clients that do not know this
/// header ignore it.
pub const QUEUE_IDS_HEADER: &str = "x-raftmq-queue-ids";

/// FNV-1a, 64 bits: stable across processes, platforms and versions.
pub fn stable_hash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| (h ^ u64::from(*x)).wrapping_mul(0x0100_0000_01b3))
}

/// The queue (of `queue_count`, at least 1) that `message_group` is stored
/// in on a broker group; 0 when `queue_count` is 0.
pub fn message_group_queue(message_group: &str, queue_count: u32) -> i32 {
    if queue_count == 0 {
        return 0;
    }
    (stable_hash(message_group.as_bytes()) % u64::from(queue_count)) as i32
}

/// Formats [`QUEUE_IDS_HEADER`]'s value.
pub fn format_queue_ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// Parses [`QUEUE_IDS_HEADER`]'s value; `None` if it is malformed.
pub fn parse_queue_ids(value: &str) -> Option<Vec<i32>> {
    if value.is_empty() {
        return Some(Vec::new());
    }
    value.split(',').map(|q| q.trim().parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv1a() {
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_mapping_never_changes() {
        // Pinned: a change here reorders every FIFO message group on upgrade.
        let got: Vec<i32> =
            ["order-1", "order-2", "customer-42", "g0", ""].iter().map(|g| message_group_queue(g, 8)).collect();
        assert_eq!(got, [5, 4, 6, 2, 5]);
        assert_eq!(message_group_queue("x", 0), 0);
        assert_eq!(message_group_queue("anything", 1), 0);
    }

    #[test]
    fn queue_ids_round_trip_through_the_header() {
        assert_eq!(parse_queue_ids(&format_queue_ids(&[2, 0, 7])), Some(vec![2, 0, 7]));
        assert_eq!(parse_queue_ids(""), Some(vec![]));
        assert_eq!(parse_queue_ids("1,x"), None);
    }
}
