//! The `raftmq` command line, and the in-process dev cluster it and the
//! cluster tests share.
//!
//! # Layout
//! - [`devcluster`]: a nameserver and broker groups on loopback, with `kill`/`restart` verbs.
//! - [`commands`]: `dev`, `topic`, `send`, `read`, `status`, `consumer-progress`.
//! - [`consume`]: `consume` with the SDK's simple, push or pull consumer.
//! - [`bench`]: the publish and failover benchmark; [`bench_consume`]: consume and end-to-end.

pub mod bench;
pub mod bench_consume;
pub mod commands;
pub mod consume;
pub mod devcluster;
