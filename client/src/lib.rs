//! raftmq's Rust SDK: produce and consume messages on a raftmq cluster over
//! gRPC (the RocketMQ 5 API), and administer topics.
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
//!
//! # Which consumer
//!
//! | | acknowledged per message | redelivery | offsets |
//! |---|---|---|---|
//! | [`SimpleConsumer`] | you call `ack` | after the invisible time | kept by the broker |
//! | [`PushConsumer`] | the listener's [`ConsumeResult`] | after a back-off | kept by the broker |
//! | [`PullConsumer`] | no | none: you `seek` | yours, stored by `commit` |
//!
//! # Example
//!
//! Runnable programs are in `client/examples/` (`cargo run -p raftmq-client --example produce`,
//! against `cargo run --release -- dev`).
//!
//! ```no_run
//! use std::time::Duration;
//! use raftmq_client::producer::Message;
//! use raftmq_client::{Cluster, MessageType, Producer, SimpleConsumer};
//!
//! # async fn demo() -> Result<(), raftmq_client::Error> {
//! let cluster = Cluster::new(&["127.0.0.1:9876".to_string()])?;
//! // Normal messages, and FIFO ones (with a message group).
//! cluster.create_topic_accepting("orders", 4, &[MessageType::Normal, MessageType::Fifo], &[]).await?;
//! let producer = Producer::new(cluster.clone());
//! let receipt = producer.send(Message::new("orders", "hello").with_tag("created")).await?;
//! println!("stored at {}:{} offset {}", receipt.group, receipt.queue_id, receipt.offset);
//! // One customer's messages keep their order: they share a queue.
//! producer.send(Message::new("orders", "paid").with_message_group("customer-42")).await?;
//!
//! let consumer = SimpleConsumer::new(cluster, "billing", "orders").with_invisible(Duration::from_secs(30));
//! for m in consumer.receive(16, Duration::from_secs(5)).await? {
//!     println!("{}: {:?}", m.message_id, m.body);
//!     consumer.ack(&m).await?;
//! }
//! # Ok(())
//! # }
//! ```

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
/// The message types a topic accepts ([`Cluster::create_topic_accepting`]).
pub use raftmq_proto::rocketmq::v2::MessageType;
pub use reader::{PulledMessage, QueueReader};
