//! [`Verdict`]: what `check` returns and `verdict.json` holds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::anomaly::{AnomalyKind, Found};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// True when no anomaly of any kind was found.
    pub valid: bool,
    /// Only kinds that occurred; each with its total and the first examples.
    pub anomalies: BTreeMap<AnomalyKind, Found>,
    pub stats: Stats,
    /// One per nemesis fault window, in start order.
    pub windows: Vec<WindowStats>,
    /// What the checker could not check (no final drain, nothing acknowledged).
    pub notes: Vec<String>,
}

impl Verdict {
    pub fn anomaly_count(&self) -> u64 {
        self.anomalies.values().map(|f| f.count).sum()
    }

    /// `valid: ...` or `INVALID: lost=3 duplicate=1 ...`, for a terminal.
    pub fn one_line(&self) -> String {
        let s = &self.stats;
        let head = format!(
            "{} operations, {} sends acknowledged ({} failed, {} unknown), {} messages read, {} fault windows",
            s.operations,
            s.sends.ok,
            s.sends.fail,
            s.sends.info,
            s.messages_read,
            self.windows.len()
        );
        if self.valid {
            return format!("valid: {head}");
        }
        let kinds: Vec<String> = self.anomalies.iter().map(|(k, f)| format!("{k}={}", f.count)).collect();
        format!("INVALID: {}; {head}", kinds.join(" "))
    }
}

/// How many operations of one kind ended each way (a missing completion counts as `info`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeCounts {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

impl OutcomeCounts {
    pub fn total(&self) -> u64 {
        self.ok + self.fail + self.info
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Operations of every kind, nemesis included.
    pub operations: u64,
    /// Time from the first to the last history line.
    pub duration_ns: u64,
    pub sends: OutcomeCounts,
    pub polls: OutcomeCounts,
    pub commit_offsets: OutcomeCounts,
    pub fetch_offsets: OutcomeCounts,
    /// Acks of popped messages (the fifo workload).
    #[serde(default)]
    pub acks: OutcomeCounts,
    /// Messages returned by ok polls, counting re-reads.
    pub messages_read: u64,
    pub distinct_values_read: u64,
    /// Whether a final drain completed, so `unseen` was checked.
    pub final_read: bool,
    /// Latency of ok sends (invoke to completion).
    pub send_latency: Option<Quantiles>,
    /// Delayed messages (absent when no send carried a delivery time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<DelayStats>,
}

/// Delayed messages: how they were acknowledged and how late they were delivered.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DelayStats {
    /// Sends carrying a delivery time, by outcome.
    pub sends: OutcomeCounts,
    /// Ok sends acknowledged with offset -1 (placed when due).
    pub unplaced: u64,
    /// Delayed values read at least once.
    pub delivered: u64,
    /// Of those, first read (its poll's completion) before the due time, within the tolerance.
    pub before_due: u64,
    /// Lateness of each delivered value: its first read's poll completion minus its due time
    /// (0 when before it). Includes the consumers' own lag.
    pub lateness: Option<Quantiles>,
    /// The smallest first-read-minus-due over delivered values (negative: before the due time).
    pub earliest_ns: Option<i64>,
    /// Ok sends acknowledged with offset -1 and never read that `lost-delayed` could not judge:
    /// no final drain, or it began less than the grace after they were due.
    pub unchecked: u64,
    /// The tolerance `early-delivery` allowed without clock skew.
    pub tolerance_ns: u64,
    /// The grace `lost-delayed` allowed after the due time.
    pub grace_ns: u64,
}

/// Nearest-rank quantiles, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantiles {
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
}

/// Availability during one fault window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    pub fault: String,
    #[serde(default)]
    pub targets: Vec<String>,
    /// When the fault was certainly in effect: the completion of its `start` op.
    pub start_ns: u64,
    /// When it was certainly healed: the completion of its `stop` op, or the end of the history
    /// if it was never stopped (`stopped: false`).
    pub end_ns: u64,
    pub stopped: bool,
    /// Sends that completed inside the window (never-completed ones count at their invocation).
    pub sends: OutcomeCounts,
    /// Recovery time: from `start_ns` to the completion of the first ok send invoked at or after
    /// it. `None`: no send invoked after the fault started ever succeeded.
    pub rto_ns: Option<u64>,
    /// The same, measured from `end_ns`: how long the system took to serve again after healing.
    pub recovery_after_stop_ns: Option<u64>,
}
