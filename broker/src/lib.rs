//! raftmq broker: one replica of a broker group, which is one Raft group whose
//! log is the CommitLog.
//!
//! # Data flow
//! SendMessage (any replica) → [`proposer`] forwards to the group leader → one
//! Raft entry per batch ([`cmd`]) → appended to the CommitLog and replicated →
//! committed on a quorum → applied in log order on every replica by [`sm`]
//! (queue offsets assigned, consume queue and index dispatched) → the producer
//! is answered with message ids and queue offsets.
//!
//! # Layout
//! - [`config`]: the broker's TOML config, validated; [`cli`]: the command line over it.
//! - [`node`]: starting and stopping one replica.
//! - [`cmd`]: how commands are encoded in Raft entries.
//! - [`sm`]: the replicated state machine, checkpoints, index feeding.
//! - [`proposer`]: proposing through the leader from any replica; [`batcher`]: coalescing sends.
//! - [`pop_plan`]: the leader decides what a pop delivers before proposing it.
//! - [`reader`]: reading a queue by offset; [`timer`]: the leader's timer for delayed messages.
//! - [`routes`] and [`registration`]: nameserver queries and heartbeats.
//! - [`clock`]: the wall clock (a simulation can replace it).
//! - [`clients`]: connected clients and their Telemetry settings (per node, soft state).
//! - [`service`]: the gRPC services (v2 messaging, forward, admin).
//! - [`validate`], [`topic`], [`error`]: input rules and the Code they map to.

pub mod batcher;
pub mod cli;
pub mod clients;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod consumer_group;
pub mod error;
pub mod node;
pub mod pop_plan;
pub mod proposer;
pub mod reader;
pub mod registration;
pub mod retention;
pub mod routes;
pub mod service;
pub mod severable;
pub mod sm;
pub mod timer;
pub mod topic;
pub mod validate;

pub use config::BrokerConfig;
pub use node::BrokerNode;
