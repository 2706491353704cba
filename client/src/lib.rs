//! raftmq's Rust SDK.
//!
//! # Layout
//! - [`cluster`]: finds broker groups and routes through the nameservers; admin calls.
//! - [`producer`]: sends messages (one, a batch, or one-way); retries on another broker group on
//!   failure; keeps a message group on one queue (`placement.rs`).
//! - [`consumer`]: the simple consumer (pop with an invisible time, ack, change invisible time).
//! - [`push`]: the push consumer: a listener called per message, with concurrency, flow control,
//!   renewal of the invisible time and retry back-off; built on the simple consumer.
//! - [`pull`]: the pull consumer: assigned queues, explicit offsets, commit and resume; built on
//!   the queue reader.
//! - [`reader`]: reads a queue by offset (PullMessage) and manages consumer offsets.
//! - [`error`]: the SDK's error type, with [`Error::is_retriable`].
//!
//! A broker group is reachable through any of its replicas: every replica
//! forwards writes to the current leader, so a leader change costs a caller no
//! more than the election.

pub mod cluster;
pub mod consumer;
pub mod error;
mod placement;
pub mod producer;
pub mod pull;
pub mod push;
pub mod reader;

pub use cluster::Cluster;
pub use consumer::{ReceivedMessage, SimpleConsumer};
pub use error::Error;
pub use producer::{Producer, SendReceipt};
pub use pull::{MessageQueue, PolledMessage, PullConsumer};
pub use push::{ConsumeResult, PushConsumer};
pub use reader::{PulledMessage, QueueReader};
