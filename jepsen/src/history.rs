//! The history: what every client and the nemesis did, one JSON object per line.
//!
//! A history is the only thing the checker sees, so it is written by the runner as the test
//! happens and never rewritten. Each operation is two lines with the same `op` id: an `invoke`
//! when the call starts and a completion (`ok`, `fail` or `info`) when it ends. An operation
//! whose completion is missing (the process died, the run was cut short) is treated as `info`.
//!
//! ```text
//! {"index":0,"op":0,"time_ns":1000,"process":3,"type":"invoke","f":"send","value":{"topic":"jepsen","value":"3-0","message_group":"g1"}}
//! {"index":1,"op":0,"time_ns":2400,"process":3,"type":"ok","f":"send","value":{"topic":"jepsen","value":"3-0","message_group":"g1","at":{"queue":{"topic":"jepsen","broker":"broker-a","id":1},"offset":17}}}
//! ```
//!
//! `index` is the line's position (strictly increasing) and `time_ns` a monotonic clock started
//! with the run (non-decreasing); the checker orders events by `index`, and uses `time_ns` only
//! for durations. The outcome rules (what `ok`, `fail` and `info` promise) are in the crate
//! README.
//!
//! Files: the types here, [`HistoryWriter`] (shared by every client task) in `history/writer.rs`,
//! [`read_history`] in `history/reader.rs`.

mod reader;
mod writer;

pub use reader::{HistoryError, parse_history, read_history};
pub use writer::{HistoryWriter, Invocation};

use std::fmt;

use serde::{Deserialize, Serialize};

/// One line of the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Position of the line in the history, strictly increasing.
    pub index: u64,
    /// Shared by an operation's invocation and its completion.
    pub op: u64,
    /// Nanoseconds since the run's clock started; non-decreasing along the history.
    pub time_ns: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: OpType,
    #[serde(flatten)]
    pub call: Call,
    /// Why a `fail` or `info` completion ended as it did (the client's error text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Who performed an operation: a numbered client, or the nemesis (the fault injector).
///
/// Serialized as a number for clients and as the string `"nemesis"`, as Jepsen does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Process {
    Client(u64),
    Named(NamedProcess),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamedProcess {
    Nemesis,
}

impl Process {
    pub const NEMESIS: Process = Process::Named(NamedProcess::Nemesis);
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(n) => write!(f, "{n}"),
            Process::Named(NamedProcess::Nemesis) => f.write_str("nemesis"),
        }
    }
}

/// `invoke` starts an operation; the other three end it (see the README's outcome rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpType {
    Invoke,
    /// Definitely happened.
    Ok,
    /// Definitely did not happen.
    Fail,
    /// Unknown: may or may not have happened.
    Info,
}

/// The function called (`f`) and its argument or result (`value`).
///
/// The completion repeats the invocation's value and fills in the result fields (`at` of a
/// send, `msgs` of a poll, `offset` of a fetch), so each line can be read on its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "f", content = "value", rename_all = "snake_case")]
pub enum Call {
    Send(Send),
    Poll(Poll),
    CommitOffset(ConsumerOffset),
    FetchOffset(ConsumerOffset),
    /// A consumer acknowledges one message it received in a pop (`orderly` poll): it will not
    /// be delivered to that consumer group again.
    Ack(Ack),
    Nemesis(Fault),
    /// The final drain: its `ok` completion asserts that every queue was read to its end after
    /// all producers stopped, which turns "never read" into "lost" (the `unseen` anomaly).
    FinalRead,
}

impl Call {
    /// The `f` name as written in the history.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Send(_) => "send",
            Call::Poll(_) => "poll",
            Call::CommitOffset(_) => "commit_offset",
            Call::FetchOffset(_) => "fetch_offset",
            Call::Ack(_) => "ack",
            Call::Nemesis(_) => "nemesis",
            Call::FinalRead => "final_read",
        }
    }
}

/// A queue of a topic on one broker group: RocketMQ's `MessageQueue`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Queue {
    pub topic: String,
    /// The broker group (one Raft group) that owns the queue.
    pub broker: String,
    pub id: u32,
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.topic, self.broker, self.id)
    }
}

/// A message slot: a queue and a logical offset in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub queue: Queue,
    pub offset: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.queue, self.offset)
    }
}

/// Publish one message whose body is `value`, unique in the whole history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Send {
    pub topic: String,
    pub value: String,
    /// RocketMQ 5 message group (FIFO): the unit of the order check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// On `ok`: where the broker said it stored the message. Required on `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<SendAt>,
    /// A delayed message: its delivery time on the history's clock (comparable with `time_ns`),
    /// never later than the one the broker was given. The checker's due time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_ns: Option<u64>,
    /// The delivery time the broker was given, in Unix milliseconds (for the brokers' logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at_unix_ms: Option<u64>,
}

/// Where the broker said it stored a sent message: its queue, and its offset there, or `-1` for
/// a delayed message, which is given its offset only when it is due.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SendAt {
    pub queue: Queue,
    pub offset: i64,
}

impl SendAt {
    /// The offset `-1`: acknowledged, queue known, placed when due.
    pub const UNPLACED: i64 = -1;

    /// The position, unless the message is not placed yet (offset `-1`).
    pub fn position(&self) -> Option<Position> {
        u64::try_from(self.offset).ok().map(|offset| Position { queue: self.queue.clone(), offset })
    }
}

impl From<Position> for SendAt {
    fn from(p: Position) -> Self {
        SendAt { queue: p.queue, offset: p.offset as i64 }
    }
}

/// One poll by one consumer. Only `ok` polls count as reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Poll {
    /// The consumer instance; its polls are checked as one ordered stream per queue.
    pub consumer: String,
    /// The consumer group, for information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// On `ok`: the consumer's queue assignment changed, or it seeked, since its previous poll,
    /// so this poll need not continue where the previous one stopped.
    #[serde(default)]
    pub reassigned: bool,
    /// A pop by an orderly (FIFO) consumer group: the broker, not the consumer, chose what to
    /// deliver, and it promises each message group's messages in send order (the
    /// `delivery-order` and `redelivered-after-ack` checks read only these polls).
    #[serde(default, skip_serializing_if = "is_false")]
    pub orderly: bool,
    /// A pop (`SimpleConsumer::receive`) by any consumer group: the broker chose what to
    /// deliver, so the poll continues no consumer's stream (`poll-skip` and `nonmonotonic-poll`
    /// skip it) and messages acked by the group must not come again (`redelivered-after-ack`).
    /// Orderly polls are pops too, whether this is written or not.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pop: bool,
    /// On `ok`: the messages returned, in the order the client received them.
    #[serde(default)]
    pub msgs: Vec<Message>,
}

impl Poll {
    /// A pop by a consumer group (orderly or not), as opposed to a pull by offset.
    pub fn is_pop(&self) -> bool {
        self.pop || self.orderly
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The acknowledgement of one delivered message, by the consumer that received it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub consumer: String,
    pub group: String,
    pub queue: Queue,
    pub offset: u64,
    pub value: String,
}

/// A message as read by a consumer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub queue: Queue,
    pub offset: u64,
    pub value: String,
}

/// A consumer group's committed offset for one queue (the next offset to consume).
///
/// `commit_offset` carries the offset in its invocation. `fetch_offset` invokes with `null` and
/// completes `ok` with the broker's answer, `null` if none is stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsumerOffset {
    pub group: String,
    pub queue: Queue,
    #[serde(default)]
    pub offset: Option<u64>,
}

/// A fault starting or stopping. A window runs from a `start` to the next `stop` of the same
/// `fault` name, and is what availability is measured against.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// The fault kind, e.g. `partition-leader`, `kill-leader`, `lost-unsynced`.
    pub fault: String,
    pub action: FaultAction,
    /// The nodes affected, for the report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// `clock-skew` start: how far the target's wall clock was set off, in seconds (ahead when
    /// positive). The delay checks use it to bound how early that node may have released a
    /// delayed message; a history without it is taken to be off by up to
    /// `checker::MAX_CLOCK_SKEW_S`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_s: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    Start,
    Stop,
}
