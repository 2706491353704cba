//! raftmq's nameserver: broker nodes register and heartbeat, clients ask which
//! broker groups serve a topic and which node leads each group.
//!
//! It is deliberately lightweight and stateless: everything lives in memory
//! and is rebuilt from heartbeats within seconds of a restart. Several
//! nameservers run side by side without talking to each other; every broker
//! registers with all of them and a client may ask any. The wire contract is
//! `raftmq.namesrv.v1.NameServer` in `proto/proto/raftmq/namesrv.proto`.
//!
//! # Layout
//!
//! - [`registry`]: the pure in-memory registry: registration, expiry, routes.
//!   All time is passed in. `registry/group.rs` holds one group's nodes and
//!   merges their topics; `registry/leader.rs` is the leader-resolution rule.
//! - `convert`: protobuf messages to and from the registry's types.
//! - [`service`]: the thin tonic handler over a shared registry.
//! - [`config`]: the configuration struct, its defaults and `validate()`.
//! - [`server`]: [`serve`] binds and runs a nameserver (with its expiry
//!   sweeper) until shutdown; [`NameServerHandle`] stops it.
//! - `main.rs`: the `raftmq-namesrv` binary (flags, logging, signals).

pub mod config;
mod convert;
pub mod registry;
pub mod server;
pub mod service;

pub use config::{Config, ConfigError};
pub use server::{NameServerHandle, ServeError, serve};
pub use service::NameServerService;
