//! The nemesis schedule: which fault starts when and stops when, drawn from the run's seed.
//!
//! The schedule is fixed before the cluster starts, so a seed names the same sequence of faults
//! on every machine. Targets (which node is the leader) can only be known when a fault starts,
//! so a step carries `pick`, a random number the nemesis uses for its choices (e.g. how a
//! random-halves partition splits the nodes); the leader itself is looked up live.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A fault the runner can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// nftables `drop` in the leader's namespace for the other nodes' addresses, both ways.
    PartitionLeader,
    /// SIGKILL the leader's broker; the stop restarts it on the same data dir.
    KillLeader,
    /// Split the nodes into two random halves that cannot reach each other.
    PartitionHalves,
    /// SIGSTOP the leader's broker; the stop sends SIGCONT.
    PauseLeader,
    /// Two halves that cannot reach each other, and one node that reaches both.
    Bridge,
    /// Nodes in a random ring, each reaching only its two neighbours: on 5 nodes every node
    /// sees a different majority.
    MajoritiesRing,
    /// The leader receives nothing from the other nodes but can still send to them.
    PartitionLeaderOneWay,
    /// SIGKILL a majority, the leader among them; the stop restarts them.
    KillMajority,
    /// Remove a follower from the group (Admin.RemoveReplica); the stop adds it back.
    MemberRemove,
    /// Move leadership to a random follower (Admin.TransferLeader); the stop does nothing.
    TransferLeader,
    /// SIGKILL the leader or a random node (by `pick`), then revert the writes it had not
    /// fsynced (the fault-test broker's undo journal): a power loss of that one machine. The
    /// stop restarts it.
    KillLoseUnsynced,
    /// Restart the leader or a random node (by `pick`) with its wall clock off by a seeded
    /// amount (libfaketime; the monotonic clock is untouched), then move leadership to it. The
    /// stop restarts it with the true clock.
    ClockSkew,
}

impl FaultKind {
    pub const ALL: [FaultKind; 12] = [
        FaultKind::PartitionLeader,
        FaultKind::KillLeader,
        FaultKind::PartitionHalves,
        FaultKind::PauseLeader,
        FaultKind::Bridge,
        FaultKind::MajoritiesRing,
        FaultKind::PartitionLeaderOneWay,
        FaultKind::KillMajority,
        FaultKind::MemberRemove,
        FaultKind::TransferLeader,
        FaultKind::KillLoseUnsynced,
        FaultKind::ClockSkew,
    ];

    /// The name used on the command line and in the history's nemesis ops.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::PartitionLeader => "partition-leader",
            FaultKind::KillLeader => "kill-leader",
            FaultKind::PartitionHalves => "partition-random-halves",
            FaultKind::PauseLeader => "pause-leader",
            FaultKind::Bridge => "bridge",
            FaultKind::MajoritiesRing => "partition-majorities-ring",
            FaultKind::PartitionLeaderOneWay => "partition-leader-one-way",
            FaultKind::KillMajority => "kill-majority",
            FaultKind::MemberRemove => "member-remove",
            FaultKind::TransferLeader => "transfer-leader",
            FaultKind::KillLoseUnsynced => "kill-lose-unsynced",
            FaultKind::ClockSkew => "clock-skew",
        }
    }

    /// Whether the fault hits the leader or a random node, by the step's `pick` (for the faults
    /// that can do either).
    pub fn hits_leader(pick: u64) -> bool {
        pick.is_multiple_of(2)
    }

    /// The clock offset of a `clock-skew` step, in seconds: 5 to 120 either way, by `pick`.
    /// Beyond 60 s it crosses the idempotent-send window (60 s of store timestamps).
    pub fn skew_secs(pick: u64) -> i64 {
        let magnitude = 5 + ((pick >> 8) % 116) as i64;
        if (pick >> 1).is_multiple_of(2) { magnitude } else { -magnitude }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // `random-halves` and `pause` are accepted as the short names the task list uses.
        match s {
            "random-halves" => return Ok(FaultKind::PartitionHalves),
            "pause" => return Ok(FaultKind::PauseLeader),
            "majorities-ring" => return Ok(FaultKind::MajoritiesRing),
            "one-way" => return Ok(FaultKind::PartitionLeaderOneWay),
            "membership" => return Ok(FaultKind::MemberRemove),
            "lose-unsynced" => return Ok(FaultKind::KillLoseUnsynced),
            _ => {}
        }
        FaultKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
            format!("unknown nemesis '{s}' (known: {})", names.join(", "))
        })
    }
}

/// One fault: in effect from `start` to `stop`, both measured from the workload's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub start: Duration,
    pub stop: Duration,
    pub fault: FaultKind,
    /// A random number for the nemesis's own choices when the fault starts.
    pub pick: u64,
}

/// Timing of the schedule: faults alternate with quiet periods (all ranges inclusive, ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Quiet time before the first fault, so the workload gets going.
    pub first_ms: (u64, u64),
    pub fault_ms: (u64, u64),
    pub quiet_ms: (u64, u64),
    /// No fault may still be in effect this close to the time limit.
    pub tail_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self { first_ms: (3_000, 5_000), fault_ms: (4_000, 8_000), quiet_ms: (3_000, 6_000), tail_ms: 2_000 }
    }
}

/// The schedule for a run of `time_limit` with the given faults (each step picks one at random).
/// Deterministic in `seed`; empty if `faults` is.
pub fn schedule(seed: u64, faults: &[FaultKind], time_limit: Duration, timing: Timing) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = Vec::new();
    if faults.is_empty() {
        return steps;
    }
    let end = u64::try_from(time_limit.as_millis()).unwrap_or(u64::MAX).saturating_sub(timing.tail_ms);
    let mut at = rng.random_range(timing.first_ms.0..=timing.first_ms.1);
    loop {
        let fault = faults[rng.random_range(0..faults.len())];
        let length = rng.random_range(timing.fault_ms.0..=timing.fault_ms.1);
        let pick = rng.random::<u64>();
        if at + length > end {
            return steps;
        }
        steps.push(Step { start: Duration::from_millis(at), stop: Duration::from_millis(at + length), fault, pick });
        at += length + rng.random_range(timing.quiet_ms.0..=timing.quiet_ms.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: [FaultKind; 2] = [FaultKind::PartitionLeader, FaultKind::KillLeader];

    #[test]
    fn same_seed_same_schedule() {
        let a = schedule(7, &BOTH, Duration::from_secs(60), Timing::default());
        let b = schedule(7, &BOTH, Duration::from_secs(60), Timing::default());
        assert_eq!(a, b);
        let c = schedule(8, &BOTH, Duration::from_secs(60), Timing::default());
        assert_ne!(a, c, "another seed gives another schedule");
    }

    #[test]
    fn faults_alternate_with_quiet_time_and_end_before_the_limit() {
        let t = Timing::default();
        for seed in 0..200 {
            let steps = schedule(seed, &FaultKind::ALL, Duration::from_secs(60), t);
            assert!(steps.len() >= 3, "seed {seed}: {} steps", steps.len());
            assert!(steps[0].start >= Duration::from_millis(t.first_ms.0));
            assert!(steps[0].start <= Duration::from_millis(t.first_ms.1));
            for s in &steps {
                let len = (s.stop - s.start).as_millis() as u64;
                assert!((t.fault_ms.0..=t.fault_ms.1).contains(&len), "seed {seed}: {s:?}");
                assert!(s.stop <= Duration::from_millis(60_000 - t.tail_ms));
            }
            for w in steps.windows(2) {
                let quiet = (w[1].start - w[0].stop).as_millis() as u64;
                assert!((t.quiet_ms.0..=t.quiet_ms.1).contains(&quiet), "seed {seed}: {w:?}");
            }
        }
    }

    #[test]
    fn only_the_requested_faults_appear() {
        let steps = schedule(3, &[FaultKind::KillLeader], Duration::from_secs(120), Timing::default());
        assert!(!steps.is_empty());
        assert!(steps.iter().all(|s| s.fault == FaultKind::KillLeader));
        let mixed = schedule(3, &BOTH, Duration::from_secs(600), Timing::default());
        for k in BOTH {
            assert!(mixed.iter().any(|s| s.fault == k), "{k} never drawn in a long run");
        }
    }

    #[test]
    fn short_runs_and_no_faults_give_empty_schedules() {
        assert!(schedule(1, &BOTH, Duration::from_secs(5), Timing::default()).is_empty());
        assert!(schedule(1, &[], Duration::from_secs(60), Timing::default()).is_empty());
    }

    #[test]
    fn names_round_trip() {
        for k in FaultKind::ALL {
            assert_eq!(k.name().parse::<FaultKind>(), Ok(k));
        }
        assert_eq!("random-halves".parse::<FaultKind>(), Ok(FaultKind::PartitionHalves));
        assert!("bogus".parse::<FaultKind>().is_err());
    }

    #[test]
    fn skews_go_both_ways_within_bounds_and_targets_mix_leader_and_others() {
        let skews: Vec<i64> =
            (0..400u64).map(|p| FaultKind::skew_secs(p.wrapping_mul(0x9e37_79b9_7f4a_7c15))).collect();
        assert!(skews.iter().all(|s| (5..=120).contains(&s.abs())), "{skews:?}");
        assert!(skews.iter().any(|s| *s > 60) && skews.iter().any(|s| *s < -60));
        assert!(skews.iter().any(|s| (5..30).contains(s)) && skews.iter().any(|s| (-30..-5).contains(s)));
        let leader = (0..100u64).filter(|p| FaultKind::hits_leader(*p)).count();
        assert!((40..=60).contains(&leader));
    }
}
