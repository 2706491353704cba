//! The `raftmq` command line, and the in-process dev cluster it and the
//! cluster tests share.
//!
//! # Layout
//! - [`devcluster`]: a nameserver and broker groups on loopback, with `kill`/`restart` verbs.
//! - [`commands`]: `dev`, `topic`, `send`, `read`, `status`.
//! - [`bench`]: the publish and failover benchmark.

pub mod bench;
pub mod commands;
pub mod devcluster;
