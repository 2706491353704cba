//! The nemesis: plays the schedule against the [`Testbed`] and records every fault's start and
//! stop as `nemesis` operations in the history.
//!
//! A start is `ok` once the fault is certainly in effect, and `fail` (never took effect) when
//! there was nothing to hit (no leader found) or applying it failed; a stop is recorded only for
//! a start that took effect, and is `ok` once the fault is certainly healed.

use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use tokio::time::Instant;

use super::schedule::{FaultKind, Step};
use super::testbed::Testbed;
use crate::history::{Call, Fault, FaultAction, HistoryWriter, Process};

/// What a started fault did, so its stop can undo exactly that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// nft rules on these brokers.
    Partition(Vec<usize>),
    Killed(Vec<usize>),
    Paused(usize),
    /// Removed from the membership.
    Removed(usize),
    /// Leadership moved to this node.
    Transferred(usize),
    /// Killed, its unsynced writes reverted; restarted at the stop.
    LostUnsynced(usize),
    /// Running with a skewed wall clock; restarted with the true one at the stop.
    Skewed(usize),
}

impl Applied {
    fn targets(&self) -> Vec<usize> {
        match self {
            Applied::Partition(v) | Applied::Killed(v) => v.clone(),
            Applied::Paused(i)
            | Applied::Removed(i)
            | Applied::Transferred(i)
            | Applied::LostUnsynced(i)
            | Applied::Skewed(i) => vec![*i],
        }
    }
}

fn shuffled(n: usize, pick: u64) -> Vec<usize> {
    let mut nodes: Vec<usize> = (1..=n).collect();
    nodes.shuffle(&mut StdRng::seed_from_u64(pick));
    nodes
}

/// Splits nodes `1..=n` into two halves (the smaller first, at least one node each), by `pick`.
pub fn random_halves(n: usize, pick: u64) -> (Vec<usize>, Vec<usize>) {
    let mut a = shuffled(n, pick);
    let mut b = a.split_off(n / 2);
    a.sort_unstable();
    b.sort_unstable();
    (a, b)
}

/// For each partition fault: which broker drops which peers (Jepsen's "grudge"). `leader` is
/// needed by the leader faults only. Nodes with nothing to drop are left out.
pub fn grudge(kind: FaultKind, n: usize, pick: u64, leader: usize) -> Vec<(usize, Vec<usize>)> {
    let others = |i: usize| -> Vec<usize> { (1..=n).filter(|j| *j != i).collect() };
    let mut g: Vec<(usize, Vec<usize>)> = match kind {
        FaultKind::PartitionLeader | FaultKind::PartitionLeaderOneWay => vec![(leader, others(leader))],
        FaultKind::PartitionHalves => {
            let (a, b) = random_halves(n, pick);
            a.iter().map(|i| (*i, b.clone())).chain(b.iter().map(|i| (*i, a.clone()))).collect()
        }
        FaultKind::Bridge => {
            // The first of a shuffle bridges; the rest split in two halves.
            let order = shuffled(n, pick);
            let rest = &order[1..];
            let (a, b) = rest.split_at(rest.len() / 2);
            a.iter().map(|i| (*i, b.to_vec())).chain(b.iter().map(|i| (*i, a.to_vec()))).collect()
        }
        FaultKind::MajoritiesRing => {
            let ring = shuffled(n, pick);
            (0..n)
                .map(|p| {
                    let near = [ring[(p + n - 1) % n], ring[p], ring[(p + 1) % n]];
                    (ring[p], (1..=n).filter(|j| !near.contains(j)).collect())
                })
                .collect()
        }
        _ => Vec::new(),
    };
    g.retain(|(_, peers)| !peers.is_empty());
    for (_, peers) in &mut g {
        peers.sort_unstable();
    }
    g.sort();
    g
}

/// The nodes `kill-majority` kills: the leader and enough others (by `pick`) for a majority.
pub fn majority_with(n: usize, leader: usize, pick: u64) -> Vec<usize> {
    let mut v = vec![leader];
    v.extend(shuffled(n, pick).into_iter().filter(|i| *i != leader).take(n / 2));
    v.sort_unstable();
    v
}

/// The node a leader-or-random fault hits: the leader, or a node chosen by `pick`.
pub fn leader_or_random(n: usize, leader: Option<usize>, pick: u64) -> Option<usize> {
    if FaultKind::hits_leader(pick) { leader } else { shuffled(n, pick).first().copied() }
}

/// A follower chosen by `pick`, if there is one.
fn follower(n: usize, leader: usize, pick: u64) -> Option<usize> {
    shuffled(n, pick).into_iter().find(|i| *i != leader)
}

fn names(nodes: &[usize]) -> Vec<String> {
    nodes.iter().map(|i| Testbed::node_name(*i)).collect()
}

pub struct Nemesis {
    pub bed: Arc<Testbed>,
    pub history: Arc<HistoryWriter>,
}

impl Nemesis {
    /// Plays `steps`, timed from `t0`. Returns after the last stop; every fault it started is
    /// healed by then.
    pub async fn play(&self, steps: &[Step], t0: Instant) -> std::io::Result<()> {
        for step in steps {
            tokio::time::sleep_until(t0 + step.start).await;
            let Some(applied) = self.start(step).await? else { continue };
            tokio::time::sleep_until(t0 + step.stop).await;
            self.stop(step.fault, &applied).await?;
        }
        Ok(())
    }

    /// Applies a step's fault. Errors carry the nodes it was aimed at.
    async fn apply(&self, step: &Step) -> Result<Applied, (Vec<usize>, String)> {
        let n = self.bed.topo.nodes;
        let leader = if matches!(step.fault, FaultKind::PartitionHalves | FaultKind::Bridge | FaultKind::MajoritiesRing)
            || (matches!(step.fault, FaultKind::KillLoseUnsynced | FaultKind::ClockSkew)
                && !FaultKind::hits_leader(step.pick))
        {
            0
        } else {
            self.bed.leader().await.ok_or_else(|| (Vec::new(), "no leader found".to_string()))?
        };
        let on = |v: Vec<usize>| move |e: String| (v, e);
        match step.fault {
            FaultKind::KillLeader => {
                self.bed.kill(leader).await.map(|()| Applied::Killed(vec![leader])).map_err(on(vec![leader]))
            }
            FaultKind::PauseLeader => {
                self.bed.pause(leader).map(|()| Applied::Paused(leader)).map_err(on(vec![leader]))
            }
            FaultKind::KillMajority => {
                let victims = majority_with(n, leader, step.pick);
                for i in &victims {
                    if let Err(e) = self.bed.kill(*i).await {
                        // Undo what was done: a fault either takes effect whole or fails.
                        self.restart_killed().await;
                        return Err((victims, e));
                    }
                }
                Ok(Applied::Killed(victims))
            }
            FaultKind::MemberRemove => {
                let f = follower(n, leader, step.pick).ok_or_else(|| (vec![], "no follower to remove".to_string()))?;
                self.bed.remove_replica(f).await.map(|()| Applied::Removed(f)).map_err(on(vec![f]))
            }
            FaultKind::TransferLeader => {
                let f = follower(n, leader, step.pick).ok_or_else(|| (vec![], "no follower to lead".to_string()))?;
                self.bed.transfer_leader(f).await.map(|()| Applied::Transferred(f)).map_err(on(vec![f]))
            }
            FaultKind::KillLoseUnsynced => {
                let i = leader_or_random(n, Some(leader), step.pick).ok_or((vec![], "no node".to_string()))?;
                let summary = self.bed.lose_unsynced(i).await.map_err(on(vec![i]))?;
                eprintln!("nemesis: n{i}: {summary}");
                Ok(Applied::LostUnsynced(i))
            }
            FaultKind::ClockSkew => self.skew(step, leader).await,
            partition => {
                let inbound_only = partition == FaultKind::PartitionLeaderOneWay;
                let g = grudge(partition, n, step.pick, leader);
                let targets: Vec<usize> = g.iter().map(|(i, _)| *i).collect();
                for (i, peers) in &g {
                    if let Err(e) = self.bed.drop_traffic(*i, peers, true, !inbound_only) {
                        self.bed.heal_network();
                        return Err((targets, e));
                    }
                }
                Ok(Applied::Partition(targets))
            }
        }
    }

    /// Restarts a node with a skewed clock, then tries for a few seconds to make it the leader:
    /// the leader is the one whose clock goes into the commands (pop deadlines, the
    /// idempotent-send window's store timestamps).
    async fn skew(&self, step: &Step, leader: usize) -> Result<Applied, (Vec<usize>, String)> {
        let n = self.bed.topo.nodes;
        let i = leader_or_random(n, Some(leader), step.pick).ok_or((vec![], "no node".to_string()))?;
        let secs = FaultKind::skew_secs(step.pick);
        self.bed.restart_with_skew(i, secs).await.map_err(|e| (vec![i], e))?;
        eprintln!("nemesis: n{i} restarted with its clock {secs:+} s off");
        // A transfer can be accepted and still not happen (the skewed node has not caught up,
        // or an election intervenes): what counts is the skewed node leading afterwards.
        let deadline = Instant::now() + std::time::Duration::from_secs(6);
        let mut last = String::new();
        loop {
            if self.bed.leader().await == Some(i) {
                eprintln!("nemesis: n{i} (skewed) leads");
                break;
            }
            if Instant::now() >= deadline {
                eprintln!("nemesis: n{i} (skewed) did not take the lead: {last}");
                break;
            }
            match self.bed.transfer_leader(i).await {
                Ok(()) => {
                    let settle = Instant::now() + std::time::Duration::from_millis(1500);
                    while Instant::now() < settle && self.bed.leader().await != Some(i) {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    last = "the transfer was accepted, another node leads".into();
                }
                Err(e) => {
                    last = e;
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                }
            }
        }
        Ok(Applied::Skewed(i))
    }

    async fn restart_killed(&self) {
        for i in 1..=self.bed.topo.nodes {
            if self.bed.state(i) == super::testbed::NodeState::Killed {
                let _ = self.bed.restart(i).await;
            }
        }
    }

    async fn start(&self, step: &Step) -> std::io::Result<Option<Applied>> {
        let result = self.apply(step).await;
        // The invocation is written after the targets are known, so it can name them; the
        // fault certainly was not in effect before this line, which is all the checker needs.
        let targets = match &result {
            Ok(a) => a.targets(),
            Err((t, _)) => t.clone(),
        };
        // A clock-skew start names how far off it set its target's clock (the delay checks
        // bound early deliveries by it); the fault is applied before this line is written.
        let clock_offset_s =
            (step.fault == FaultKind::ClockSkew && !targets.is_empty()).then(|| FaultKind::skew_secs(step.pick));
        let fault = Fault {
            fault: step.fault.name().into(),
            action: FaultAction::Start,
            targets: names(&targets),
            clock_offset_s,
        };
        let inv = self.history.invoke(Process::NEMESIS, Call::Nemesis(fault.clone()))?;
        match result {
            Ok(a) => {
                eprintln!("nemesis: {} start on {:?}", step.fault, fault.targets);
                self.history.ok(inv, Call::Nemesis(fault))?;
                Ok(Some(a))
            }
            Err((_, e)) => {
                eprintln!("nemesis: {} could not start: {e}", step.fault);
                self.history.fail(inv, Call::Nemesis(fault), e)?;
                Ok(None)
            }
        }
    }

    async fn stop(&self, kind: FaultKind, applied: &Applied) -> std::io::Result<()> {
        let fault = Fault {
            fault: kind.name().into(),
            action: FaultAction::Stop,
            targets: names(&applied.targets()),
            clock_offset_s: None,
        };
        let inv = self.history.invoke(Process::NEMESIS, Call::Nemesis(fault.clone()))?;
        let r = match applied {
            Applied::Partition(_) => {
                self.bed.heal_network();
                Ok(())
            }
            Applied::Killed(v) => {
                let mut r = Ok(());
                for i in v {
                    r = r.and(self.bed.restart(*i).await);
                }
                r
            }
            Applied::Paused(i) => self.bed.resume(*i),
            Applied::Removed(i) => self.bed.add_replica(*i).await,
            Applied::Transferred(_) => Ok(()),
            Applied::LostUnsynced(i) => self.bed.restart(*i).await,
            Applied::Skewed(i) => self.bed.restart_with_skew(*i, 0).await,
        };
        match r {
            Ok(()) => {
                eprintln!("nemesis: {kind} healed");
                self.history.ok(inv, Call::Nemesis(fault))
            }
            // Not healed: leave the window open (info) rather than claim it closed.
            Err(e) => {
                eprintln!("nemesis: {kind} could not heal: {e}");
                self.history.info(inv, Call::Nemesis(fault), e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_cover_every_node_once_with_the_smaller_first() {
        for n in 2..=7 {
            for pick in 0..50 {
                let (a, b) = random_halves(n, pick);
                assert_eq!(a.len(), n / 2, "n={n}");
                assert_eq!(a.len() + b.len(), n);
                let mut all: Vec<usize> = a.iter().chain(&b).copied().collect();
                all.sort_unstable();
                assert_eq!(all, (1..=n).collect::<Vec<_>>());
            }
        }
        assert_eq!(random_halves(5, 9), random_halves(5, 9), "seeded");
    }

    #[test]
    fn leader_partitions_cut_the_leader_from_everyone() {
        assert_eq!(grudge(FaultKind::PartitionLeader, 3, 0, 2), [(2, vec![1, 3])]);
        assert_eq!(grudge(FaultKind::PartitionLeaderOneWay, 5, 0, 1), [(1, vec![2, 3, 4, 5])]);
    }

    #[test]
    fn a_bridge_reaches_both_halves_which_do_not_reach_each_other() {
        for pick in 0..20 {
            let g = grudge(FaultKind::Bridge, 5, pick, 0);
            assert_eq!(g.len(), 4, "the bridge drops nothing: {g:?}");
            let bridge = (1..=5).find(|i| g.iter().all(|(j, _)| j != i)).expect("a bridge");
            for (i, peers) in &g {
                assert_eq!(peers.len(), 2, "{g:?}");
                assert!(!peers.contains(&bridge) && !peers.contains(i));
            }
        }
    }

    #[test]
    fn in_a_majorities_ring_each_node_sees_a_different_majority() {
        for pick in 0..20 {
            let g = grudge(FaultKind::MajoritiesRing, 5, pick, 0);
            assert_eq!(g.len(), 5);
            let mut seen: Vec<Vec<usize>> = g
                .iter()
                .map(|(i, peers)| {
                    assert_eq!(peers.len(), 2, "each node keeps itself and 2 neighbours");
                    (1..=5).filter(|j| j == i || !peers.contains(j)).collect()
                })
                .collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), 5, "{g:?}");
            // Symmetric: if i drops j, j drops i.
            for (i, peers) in &g {
                for j in peers {
                    assert!(g.iter().any(|(k, p)| k == j && p.contains(i)));
                }
            }
        }
        assert!(grudge(FaultKind::MajoritiesRing, 3, 1, 0).is_empty(), "on 3 nodes everyone is a neighbour");
    }

    #[test]
    fn leader_or_random_hits_both_and_only_existing_nodes() {
        let hits: Vec<Option<usize>> = (0..40).map(|p| leader_or_random(3, Some(2), p)).collect();
        assert!(hits.iter().all(|h| h.is_some_and(|i| (1..=3).contains(&i))));
        assert!(hits.iter().any(|h| *h != Some(2)), "not always the leader");
        assert_eq!(leader_or_random(3, None, 0), None, "a leader pick with no leader hits nothing");
    }

    #[test]
    fn kill_majority_takes_the_leader_and_a_majority() {
        for n in [3, 5] {
            for pick in 0..20 {
                let v = majority_with(n, 2, pick);
                assert!(v.contains(&2));
                assert_eq!(v.len(), n / 2 + 1);
            }
        }
    }
}
