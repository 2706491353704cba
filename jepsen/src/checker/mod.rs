//! The checker: reads a history, returns a [`Verdict`].
//!
//! Modelled on Jepsen's queue and Kafka checkers. Offsets give each queue a total order, so
//! every anomaly is found by comparing observations against that order in one pass, with no
//! search over possible interleavings: near-linear in the history (one sort of each queue's
//! known offsets). Outcome rules: `ok` happened, `fail` did not, `info` may have (never
//! counted lost, may legally be read).
//!
//! # Layout
//! - `model`: the history indexed once (pairs, interned values and queues, read maps).
//! - `lost`: lost and unseen acknowledged sends.
//! - `positions`: duplicate, inconsistent-offset, ack-offset-mismatch.
//! - `provenance`: unexpected and aborted (G1a) reads.
//! - `polls`: poll-skip and nonmonotonic-poll, per consumer.
//! - `order`: message-group order and nonmonotonic-send, per producer.
//! - `consumer_offsets`: offset-regression of committed consumer offsets.
//! - `delay`: delayed messages: early-delivery, lost-delayed, lateness.
//! - `availability`: counts, latency quantiles, per fault window RTO.
//! - [`anomaly`], [`verdict`]: the output types.

pub mod anomaly;
mod availability;
mod consumer_offsets;
mod delay;
mod hasher;
mod lost;
mod model;
mod order;
mod polls;
mod positions;
mod provenance;
pub mod verdict;

pub use anomaly::{Anomaly, AnomalyKind, Evidence, Found, SendRef};
pub use delay::{DELAY_GRACE_NS, DELAY_TOLERANCE_NS, MAX_CLOCK_SKEW_S};
pub use verdict::{DelayStats, OutcomeCounts, Quantiles, Stats, Verdict, WindowStats};

use crate::history::Entry;

/// A history the checker cannot judge; fix the writer, not the verdict.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("history index {index}: index not increasing or time going backwards")]
    OutOfOrder { index: u64 },
    #[error("history index {index}: op {op} invoked twice")]
    DuplicateInvoke { op: u64, index: u64 },
    #[error("history index {index}: completion of op {op}, which was never invoked (or already completed)")]
    UnmatchedCompletion { op: u64, index: u64 },
    #[error("history index {index}: completion of op {op} has another process or f than its invocation")]
    MismatchedCompletion { op: u64, index: u64 },
    #[error("value {value:?} is sent twice (indexes {first_index} and {second_index}); values must be unique")]
    DuplicateSend { value: String, first_index: u64, second_index: u64 },
    #[error("history index {index}: ok send without its acknowledged position (`at`)")]
    MissingAck { index: u64 },
}

#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Examples kept per anomaly kind; the count is always complete. Default 8.
    pub max_examples: usize,
    /// How much before its due time a delayed message may be read without clock skew
    /// (`early-delivery`). Default [`DELAY_TOLERANCE_NS`] (100 ms).
    pub delay_tolerance_ns: u64,
    /// How long after a delayed message's due time the final drain must begin for its absence
    /// to be `lost-delayed`. Default [`DELAY_GRACE_NS`] (5 s).
    pub delay_grace_ns: u64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self { max_examples: 8, delay_tolerance_ns: DELAY_TOLERANCE_NS, delay_grace_ns: DELAY_GRACE_NS }
    }
}

/// Checks a history with the default options.
pub fn check(history: &[Entry]) -> Result<Verdict, CheckError> {
    check_with(history, &CheckOptions::default())
}

pub fn check_with(history: &[Entry], options: &CheckOptions) -> Result<Verdict, CheckError> {
    let m = model::Model::build(history)?;
    let mut found = anomaly::Collector::new(options.max_examples);
    lost::check(&m, &mut found);
    positions::check(&m, &mut found);
    provenance::check(&m, &mut found);
    polls::check(&m, &mut found);
    order::check(&m, &mut found);
    consumer_offsets::check(&m, &mut found);
    let delay = delay::check(&m, options.delay_tolerance_ns, options.delay_grace_ns, &mut found);
    let anomalies = found.into_found();
    let mut stats = availability::stats(&m);
    let mut notes = Vec::new();
    if let Some(d) = delay.as_ref().filter(|d| d.unchecked > 0) {
        notes.push(format!(
            "{} delayed sends acknowledged with offset -1 and never read were not checked for lost-delayed: \
             no final drain, or it began less than {} s after they were due",
            d.unchecked,
            d.grace_ns as f64 / 1e9
        ));
    }
    stats.delay = delay;
    if !stats.final_read {
        notes.push("no final drain completed: acknowledged sends never read are only reported when a later offset was read (unseen not checked)".to_string());
    }
    if stats.sends.ok == 0 {
        notes.push("no send was acknowledged: nothing was at stake".to_string());
    }
    Ok(Verdict { valid: anomalies.is_empty(), anomalies, stats, windows: availability::windows(&m), notes })
}
