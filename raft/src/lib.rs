//! openraft integration for raftmq.
//!
//! # Layout
//! - [`types`]: the openraft type configuration ([`TypeConfig`]) and aliases.

pub mod types;

pub use types::*;
