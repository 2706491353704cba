//! openraft integration for raftmq: every broker group is one Raft group.
//!
//! # Layout
//! - [`types`]: the openraft type configuration ([`TypeConfig`]) and aliases.
//! - [`config`]: Raft timing with validated defaults, turned into `openraft::Config`.
//! - [`pb`]: conversions between openraft values and `raftmq.raft.v1` messages.
//! - [`network`]: the client side (one `PeerClient` per peer; keepalive, deadlines).
//! - [`service`]: the server side (`RaftService` handing RPCs to the local `Raft`).
//! - [`runtime`]: openraft's tokio runtime with a seedable RNG (for the simulation).

pub mod config;
pub mod network;
pub mod pb;
pub mod runtime;
pub mod service;
pub mod types;

pub use config::RaftConfig;
pub use network::GrpcNetworkFactory;
pub use service::RaftGrpcService;
pub use types::*;
