//! The anomalies the checker reports, one variant per kind, each carrying its evidence.
//!
//! Every variant names the history `index` of the lines that prove it, so a reader can open
//! `history.jsonl` at those lines and see the contradiction for themselves. The precise
//! definitions are in the crate README; [`AnomalyKind::definition`] is the one-line version the
//! report prints.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::history::{Position, Process, Queue};

/// The kinds, in the order the report lists them (most severe first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyKind {
    Lost,
    Unseen,
    LostDelayed,
    EarlyDelivery,
    InconsistentOffset,
    AckOffsetMismatch,
    Duplicate,
    AbortedRead,
    Unexpected,
    OffsetRegression,
    Order,
    DeliveryOrder,
    RedeliveredAfterAck,
    NonmonotonicSend,
    PollSkip,
    NonmonotonicPoll,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 16] = [
        AnomalyKind::Lost,
        AnomalyKind::Unseen,
        AnomalyKind::LostDelayed,
        AnomalyKind::EarlyDelivery,
        AnomalyKind::InconsistentOffset,
        AnomalyKind::AckOffsetMismatch,
        AnomalyKind::Duplicate,
        AnomalyKind::AbortedRead,
        AnomalyKind::Unexpected,
        AnomalyKind::OffsetRegression,
        AnomalyKind::Order,
        AnomalyKind::DeliveryOrder,
        AnomalyKind::RedeliveredAfterAck,
        AnomalyKind::NonmonotonicSend,
        AnomalyKind::PollSkip,
        AnomalyKind::NonmonotonicPoll,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::Lost => "lost",
            AnomalyKind::Unseen => "unseen",
            AnomalyKind::LostDelayed => "lost-delayed",
            AnomalyKind::EarlyDelivery => "early-delivery",
            AnomalyKind::InconsistentOffset => "inconsistent-offset",
            AnomalyKind::AckOffsetMismatch => "ack-offset-mismatch",
            AnomalyKind::Duplicate => "duplicate",
            AnomalyKind::AbortedRead => "aborted-read",
            AnomalyKind::Unexpected => "unexpected",
            AnomalyKind::OffsetRegression => "offset-regression",
            AnomalyKind::Order => "order",
            AnomalyKind::DeliveryOrder => "delivery-order",
            AnomalyKind::RedeliveredAfterAck => "redelivered-after-ack",
            AnomalyKind::NonmonotonicSend => "nonmonotonic-send",
            AnomalyKind::PollSkip => "poll-skip",
            AnomalyKind::NonmonotonicPoll => "nonmonotonic-poll",
        }
    }

    /// One line; the README has the full definition.
    pub fn definition(self) -> &'static str {
        match self {
            AnomalyKind::Lost => "an ok send never read, although a later offset of its queue was read",
            AnomalyKind::Unseen => "an ok send never read, although the final drain completed",
            AnomalyKind::LostDelayed => {
                "a delayed send acked with offset -1 never read, although the final drain began well after it was due"
            }
            AnomalyKind::EarlyDelivery => "a delayed message was read before its delivery time (beyond the tolerance)",
            AnomalyKind::InconsistentOffset => "one (queue, offset) read with two different values",
            AnomalyKind::AckOffsetMismatch => "an ok send's acknowledged position holds another value",
            AnomalyKind::Duplicate => "one value at two different (queue, offset) positions",
            AnomalyKind::AbortedRead => "a value from a failed send was read (G1a)",
            AnomalyKind::Unexpected => "a value was read that no send ever carried",
            AnomalyKind::OffsetRegression => "a fetched consumer offset is below an acknowledged commit",
            AnomalyKind::Order => "a message group's sequential sends were read out of order",
            AnomalyKind::DeliveryOrder => {
                "an orderly consumer group got a message group's later send before its earlier one"
            }
            AnomalyKind::RedeliveredAfterAck => "a consumer group popped a message again after acking it",
            AnomalyKind::NonmonotonicSend => "a producer's sequential sends to a queue acked at falling offsets",
            AnomalyKind::PollSkip => "a consumer jumped over existing offsets without a reassignment",
            AnomalyKind::NonmonotonicPoll => "a consumer went back in a queue without a reassignment",
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A send, as cited by the order anomalies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendRef {
    pub value: String,
    pub at: Position,
    /// History index of the send's invocation.
    pub send_index: u64,
}

/// One anomaly and its evidence. `*_index` fields are history line indexes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Anomaly {
    Lost {
        value: String,
        at: Position,
        send_index: u64,
        later_read: Position,
        read_index: u64,
    },
    Unseen {
        value: String,
        at: Position,
        send_index: u64,
    },
    /// A delayed send acknowledged on `queue` with offset -1 (placed when due) whose value was
    /// never read, although the final drain (invoked at `final_read_index`) began at least the
    /// grace after `due_ns`.
    LostDelayed {
        value: String,
        queue: Queue,
        send_index: u64,
        due_ns: u64,
        final_read_index: u64,
    },
    /// A delayed message read at `at` by a poll completing at `read_index` (`read_ns`), `early_by_ns`
    /// before its due time `due_ns`, by more than the tolerance (clock skew included).
    EarlyDelivery {
        value: String,
        at: Position,
        send_index: u64,
        due_ns: u64,
        read_index: u64,
        read_ns: u64,
        early_by_ns: u64,
    },
    InconsistentOffset {
        at: Position,
        values: Vec<String>,
        read_indexes: Vec<u64>,
    },
    /// `other_index` is a poll (`evidence: read`) or another ok send (`evidence: ack`).
    AckOffsetMismatch {
        at: Position,
        acked_value: String,
        send_index: u64,
        other_value: String,
        other_index: u64,
        evidence: Evidence,
    },
    Duplicate {
        value: String,
        positions: Vec<Position>,
    },
    AbortedRead {
        value: String,
        at: Position,
        send_index: u64,
        read_index: u64,
    },
    Unexpected {
        value: String,
        at: Position,
        read_index: u64,
    },
    OffsetRegression {
        group: String,
        queue: Queue,
        committed: u64,
        commit_index: u64,
        observed: Option<u64>,
        fetch_index: u64,
    },
    /// `earlier` was acknowledged before `later` was invoked; `later` was read at a lower offset
    /// of the same queue, or (`split`) on another queue.
    Order {
        process: Process,
        message_group: String,
        earlier: SendRef,
        later: SendRef,
        split: bool,
    },
    /// In orderly consumer group `group`: `earlier` was acknowledged before `later` was sent and
    /// both were stored in that order, yet `later`'s first delivery (the poll completing at
    /// `later_delivery_index`) came before any poll delivering `earlier` was invoked
    /// (`earlier_delivery_index`: the completion of `earlier`'s first delivering poll; `null`:
    /// never delivered to the group), or (`same_poll`) one poll listed `later` first.
    DeliveryOrder {
        group: String,
        process: Process,
        message_group: String,
        earlier: SendRef,
        later: SendRef,
        later_delivery_index: u64,
        earlier_delivery_index: Option<u64>,
        same_poll: bool,
    },
    /// Orderly consumer group `group` acknowledged `value` (the ack completing at `ack_index`),
    /// then a poll invoked after that delivered it again (completing at `read_index`).
    RedeliveredAfterAck {
        group: String,
        value: String,
        at: Position,
        ack_index: u64,
        read_index: u64,
    },
    NonmonotonicSend {
        process: Process,
        earlier: SendRef,
        later: SendRef,
    },
    PollSkip {
        consumer: String,
        queue: Queue,
        from_offset: u64,
        to_offset: u64,
        /// Up to 8 of the skipped offsets that are known to hold a message.
        skipped: Vec<u64>,
        skipped_count: u64,
        read_index: u64,
    },
    NonmonotonicPoll {
        consumer: String,
        queue: Queue,
        from_offset: u64,
        to_offset: u64,
        read_index: u64,
    },
}

/// Where the conflicting value of an [`Anomaly::AckOffsetMismatch`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    Read,
    Ack,
}

impl Anomaly {
    pub fn kind(&self) -> AnomalyKind {
        match self {
            Anomaly::Lost { .. } => AnomalyKind::Lost,
            Anomaly::Unseen { .. } => AnomalyKind::Unseen,
            Anomaly::LostDelayed { .. } => AnomalyKind::LostDelayed,
            Anomaly::EarlyDelivery { .. } => AnomalyKind::EarlyDelivery,
            Anomaly::InconsistentOffset { .. } => AnomalyKind::InconsistentOffset,
            Anomaly::AckOffsetMismatch { .. } => AnomalyKind::AckOffsetMismatch,
            Anomaly::Duplicate { .. } => AnomalyKind::Duplicate,
            Anomaly::AbortedRead { .. } => AnomalyKind::AbortedRead,
            Anomaly::Unexpected { .. } => AnomalyKind::Unexpected,
            Anomaly::OffsetRegression { .. } => AnomalyKind::OffsetRegression,
            Anomaly::Order { .. } => AnomalyKind::Order,
            Anomaly::DeliveryOrder { .. } => AnomalyKind::DeliveryOrder,
            Anomaly::RedeliveredAfterAck { .. } => AnomalyKind::RedeliveredAfterAck,
            Anomaly::NonmonotonicSend { .. } => AnomalyKind::NonmonotonicSend,
            Anomaly::PollSkip { .. } => AnomalyKind::PollSkip,
            Anomaly::NonmonotonicPoll { .. } => AnomalyKind::NonmonotonicPoll,
        }
    }
}

/// A sentence a person can check against the history.
impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::Lost { value, at, send_index, later_read, read_index } => write!(
                f,
                "{value:?} acked at {at} (send #{send_index}) was never read, but {later_read} was (#{read_index})"
            ),
            Anomaly::Unseen { value, at, send_index } => {
                write!(f, "{value:?} acked at {at} (send #{send_index}) was never read, not even by the final drain")
            }
            Anomaly::LostDelayed { value, queue, send_index, due_ns, final_read_index } => write!(
                f,
                "delayed {value:?} acked on {queue} (send #{send_index}), due at {:.3} s, was never read, not even by the final drain (#{final_read_index})",
                *due_ns as f64 / 1e9
            ),
            Anomaly::EarlyDelivery { value, at, send_index, due_ns, read_index, read_ns, early_by_ns } => write!(
                f,
                "delayed {value:?} (send #{send_index}), due at {:.3} s, was read at {at} by #{read_index} at {:.3} s: {} ms early",
                *due_ns as f64 / 1e9,
                *read_ns as f64 / 1e9,
                early_by_ns / 1_000_000
            ),
            Anomaly::InconsistentOffset { at, values, read_indexes } => {
                write!(f, "{at} was read as {values:?} (polls {read_indexes:?})")
            }
            Anomaly::AckOffsetMismatch { at, acked_value, send_index, other_value, other_index, evidence } => {
                let how = match evidence {
                    Evidence::Read => "read",
                    Evidence::Ack => "acked to another send",
                };
                write!(
                    f,
                    "{acked_value:?} acked at {at} (#{send_index}), but {at} {how} as {other_value:?} (#{other_index})"
                )
            }
            Anomaly::Duplicate { value, positions } => {
                let list: Vec<String> = positions.iter().map(ToString::to_string).collect();
                write!(f, "{value:?} is at {} positions: {}", positions.len(), list.join(", "))
            }
            Anomaly::AbortedRead { value, at, send_index, read_index } => {
                write!(f, "{value:?} from failed send #{send_index} was read at {at} (#{read_index})")
            }
            Anomaly::Unexpected { value, at, read_index } => {
                write!(f, "{value:?} read at {at} (#{read_index}) was never sent")
            }
            Anomaly::OffsetRegression { group, queue, committed, commit_index, observed, fetch_index } => {
                let seen = observed.map_or_else(|| "nothing".to_string(), |o| o.to_string());
                write!(
                    f,
                    "group {group} on {queue}: commit {committed} acked (#{commit_index}), later fetch returned {seen} (#{fetch_index})"
                )
            }
            Anomaly::Order { process, message_group, earlier, later, split } => {
                let how = if *split { "on another queue" } else { "before it" };
                write!(
                    f,
                    "process {process}, group {message_group}: {:?} acked before {:?} was sent, yet {:?} is at {} {how} ({})",
                    earlier.value, later.value, later.value, later.at, earlier.at
                )
            }
            Anomaly::DeliveryOrder {
                group,
                process,
                message_group,
                earlier,
                later,
                later_delivery_index,
                earlier_delivery_index,
                same_poll,
            } => {
                let when = match (same_poll, earlier_delivery_index) {
                    (true, _) => format!("both in poll #{later_delivery_index}, {:?} listed first", later.value),
                    (false, Some(e)) => format!(
                        "{:?} delivered by #{later_delivery_index}, {:?} only by a later poll (#{e})",
                        later.value, earlier.value
                    ),
                    (false, None) => {
                        format!("{:?} delivered by #{later_delivery_index}, {:?} never", later.value, earlier.value)
                    }
                };
                write!(
                    f,
                    "group {group}, process {process}, message group {message_group}: {:?} ({}) acked before {:?} ({}) was sent; {when}",
                    earlier.value, earlier.at, later.value, later.at
                )
            }
            Anomaly::RedeliveredAfterAck { group, value, at, ack_index, read_index } => {
                write!(f, "group {group}: {value:?} at {at} acked (#{ack_index}), then delivered again (#{read_index})")
            }
            Anomaly::NonmonotonicSend { process, earlier, later } => write!(
                f,
                "process {process}: {:?} acked at {}, then {:?} (sent after that ack) acked at {}",
                earlier.value, earlier.at, later.value, later.at
            ),
            Anomaly::PollSkip { consumer, queue, from_offset, to_offset, skipped, skipped_count, read_index } => {
                write!(
                    f,
                    "consumer {consumer} on {queue} went from {from_offset} to {to_offset} (#{read_index}), skipping {skipped_count} existing offsets, e.g. {skipped:?}"
                )
            }
            Anomaly::NonmonotonicPoll { consumer, queue, from_offset, to_offset, read_index } => {
                write!(f, "consumer {consumer} on {queue} went back from {from_offset} to {to_offset} (#{read_index})")
            }
        }
    }
}

/// All anomalies of one kind: the total and the first few, in history order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Found {
    pub count: u64,
    pub examples: Vec<Anomaly>,
}

/// Counts every anomaly and keeps the first `cap` of each kind. The closure passed to
/// [`Collector::push`] runs only while there is room, so a history with a million anomalies
/// does not build a million evidence records.
pub(crate) struct Collector {
    cap: usize,
    found: BTreeMap<AnomalyKind, Found>,
}

impl Collector {
    pub(crate) fn new(cap: usize) -> Self {
        Self { cap, found: BTreeMap::new() }
    }

    pub(crate) fn push(&mut self, kind: AnomalyKind, make: impl FnOnce() -> Anomaly) {
        let found = self.found.entry(kind).or_default();
        found.count += 1;
        if found.examples.len() < self.cap {
            found.examples.push(make());
        }
    }

    pub(crate) fn into_found(self) -> BTreeMap<AnomalyKind, Found> {
        self.found
    }
}
