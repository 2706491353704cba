//! Leader resolution: which node of a group leads, from what its live nodes
//! say. Kept apart from the bookkeeping in `group.rs` because this is the
//! rule clients rely on to find where to send.

use raftmq_proto::namesrv::RaftRole;

/// What one live node says about leadership in its latest heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stance {
    pub node_id: u64,
    pub role: RaftRole,
    pub term: u64,
    /// The leader the node knows of; 0 = none.
    pub leader_id: u64,
}

/// The id of the node that leads, which is always one of `live`.
///
/// Each live node makes a claim at its own term: itself if it reports
/// `Leader`, otherwise the leader it knows of, if any. The highest term
/// wins, and at equal terms a node's claim about itself beats hearsay. Raft
/// elects at most one leader per term, so the winner is the newest leader
/// anyone knows of: a deposed leader still claiming an older term loses to a
/// follower that already follows the new one.
///
/// The winner must itself be live: naming a dead or unregistered node would
/// send clients to an address that cannot serve, so that reads as no leader
/// (rather than falling back to an older, surely deposed, claim).
pub(super) fn resolve(live: &[Stance]) -> Option<u64> {
    let mut best: Option<(u64, bool, u64)> = None; // (term, claims itself, leader id)
    for stance in live {
        let claim = if stance.role == RaftRole::Leader {
            (stance.term, true, stance.node_id)
        } else if stance.leader_id != 0 {
            (stance.term, false, stance.leader_id)
        } else {
            continue;
        };
        // Strictly greater, so ties keep the first (lowest) reporting node
        // and the answer does not depend on heartbeat order.
        if best.is_none_or(|(term, own, _)| (claim.0, claim.1) > (term, own)) {
            best = Some(claim);
        }
    }
    let (_, _, leader_id) = best?;
    live.iter().any(|s| s.node_id == leader_id).then_some(leader_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: RaftRole = RaftRole::Leader;
    const F: RaftRole = RaftRole::Follower;
    const C: RaftRole = RaftRole::Candidate;

    /// `(node_id, role, term, leader_id)` per live node.
    fn resolve_from(nodes: &[(u64, RaftRole, u64, u64)]) -> Option<u64> {
        let live: Vec<Stance> =
            nodes.iter().map(|&(node_id, role, term, leader_id)| Stance { node_id, role, term, leader_id }).collect();
        resolve(&live)
    }

    #[test]
    fn the_leader_claim_with_the_highest_term_wins() {
        let stale_claim = resolve_from(&[(1, L, 3, 1), (2, L, 4, 2), (3, F, 4, 2)]);
        assert_eq!(stale_claim, Some(2));
    }

    #[test]
    fn followers_name_the_leader_when_nobody_claims() {
        assert_eq!(resolve_from(&[(1, F, 5, 3), (2, F, 5, 3), (3, F, 4, 1)]), Some(3));
    }

    #[test]
    fn hearsay_at_a_newer_term_beats_a_deposed_leader() {
        // Node 3 won term 4; its own heartbeat still says follower at 3.
        assert_eq!(resolve_from(&[(1, L, 3, 1), (2, F, 4, 3), (3, F, 3, 1)]), Some(3));
    }

    #[test]
    fn at_equal_terms_a_claim_about_itself_beats_hearsay() {
        assert_eq!(resolve_from(&[(1, F, 4, 3), (2, L, 4, 2), (3, F, 4, 2)]), Some(2));
    }

    #[test]
    fn a_leader_that_is_not_live_reads_as_none() {
        // Node 9 never registered or expired; node 1's older claim is deposed.
        assert_eq!(resolve_from(&[(1, L, 2, 1), (2, F, 3, 9)]), None);
    }

    #[test]
    fn nobody_knowing_a_leader_reads_as_none() {
        assert_eq!(resolve_from(&[(1, C, 6, 0), (2, F, 6, 0)]), None);
        assert_eq!(resolve_from(&[]), None);
    }

    #[test]
    fn a_candidate_at_a_newer_term_does_not_hide_the_known_leader() {
        // An election is under way, but until it ends node 1 is the best bet.
        assert_eq!(resolve_from(&[(1, L, 5, 1), (2, F, 5, 1), (3, C, 6, 0)]), Some(1));
    }
}
