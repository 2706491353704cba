//! Where a send of a message group goes.
//!
//! A message group (sharding key) must always land on the same queue, or its
//! messages lose their order. The producer picks the broker group: the hash
//! of the message group over the topic's groups ordered by name, so every
//! producer agrees whatever order the nameserver lists them in. Inside that
//! broker group the broker places the message itself with
//! [`raftmq_proto::placement::message_group_queue`], so producers in other
//! languages agree on the queue too; the SDK computes the same queue with the
//! same function, sends it as the (ignored) hint and reports it in the
//! receipt when the broker does not name the queue itself.
//!
//! The mapping holds while the topic's broker groups and queue counts stay
//! the same; adding a group or queues moves some message groups (as in
//! RocketMQ), and their order is kept from then on.

use raftmq_proto::placement::{message_group_queue, stable_hash};

/// For `message_group`, the index into `groups` (`(broker group name, queue
/// count)`) and the queue in it; `None` when no group has a queue.
pub(crate) fn place(message_group: &str, groups: &[(&str, u32)]) -> Option<(usize, i32)> {
    let mut candidates: Vec<usize> = (0..groups.len()).filter(|i| groups[*i].1 > 0).collect();
    if candidates.is_empty() {
        return None;
    }
    candidates.sort_by_key(|i| groups[*i].0);
    // The group is picked by a second hash: `h % groups` would tie it to
    // the broker's `h % queues` (2 groups of 4 queues would use only half
    // the queues, the parity of the queue following the group).
    let gh = stable_hash(&stable_hash(message_group.as_bytes()).to_le_bytes());
    let gi = candidates[(gh % candidates.len() as u64) as usize];
    Some((gi, message_group_queue(message_group, groups[gi].1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_group_always_lands_on_one_queue() {
        let groups = [("broker-a", 4), ("broker-b", 4), ("broker-c", 8)];
        for k in 0..200 {
            let key = format!("order-{k}");
            let first = place(&key, &groups);
            assert!(first.is_some());
            assert_eq!(place(&key, &groups), first);
        }
    }

    #[test]
    fn placement_ignores_the_order_of_the_route() {
        let a = [("broker-a", 4), ("broker-b", 2)];
        let b = [("broker-b", 2), ("broker-a", 4)];
        for k in 0..100 {
            let key = format!("k{k}");
            let (ga, qa) = place(&key, &a).expect("placed");
            let (gb, qb) = place(&key, &b).expect("placed");
            assert_eq!((a[ga].0, qa), (b[gb].0, qb));
        }
    }

    #[test]
    fn message_groups_spread_over_groups_and_queues() {
        let groups = [("broker-a", 4), ("broker-b", 4)];
        let mut seen = std::collections::BTreeSet::new();
        for k in 0..400 {
            let (g, q) = place(&format!("user-{k}"), &groups).expect("placed");
            assert!(q >= 0 && (q as u32) < groups[g].1);
            seen.insert((g, q));
        }
        assert_eq!(seen.len(), 8, "every queue of every group is used: {seen:?}");
    }

    #[test]
    fn groups_without_queues_are_skipped() {
        assert_eq!(place("x", &[]), None);
        assert_eq!(place("x", &[("broker-a", 0)]), None);
        for k in 0..50 {
            let (g, _) = place(&format!("k{k}"), &[("broker-a", 0), ("broker-b", 3)]).expect("placed");
            assert_eq!(g, 1);
        }
    }

    #[test]
    fn the_queue_is_the_brokers_placement() {
        let groups = [("broker-a", 4), ("broker-b", 3)];
        for k in 0..100 {
            let key = format!("k{k}");
            let (g, q) = place(&key, &groups).expect("placed");
            assert_eq!(q, message_group_queue(&key, groups[g].1));
        }
    }
}
