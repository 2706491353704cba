//! raftmq's wire contract, generated from the `.proto` files in `proto/`.
//!
//! - [`rocketmq::v2`]: `apache.rocketmq.v2`, the RocketMQ 5 gRPC API served to
//!   official clients, wire-identical to upstream (our own .proto text).
//! - [`raft`]: peer RPCs between the replicas of a broker group.
//! - [`namesrv`]: broker registration and route queries.
//! - [`broker`]: what a Raft entry carries, forwarding to the leader, and admin.

#![allow(clippy::all, rust_2018_idioms)] // generated code

pub mod rocketmq {
    pub mod v2 {
        tonic::include_proto!("apache.rocketmq.v2");
    }
}

pub mod raft {
    tonic::include_proto!("raftmq.raft.v1");
}

pub mod namesrv {
    tonic::include_proto!("raftmq.namesrv.v1");
}

pub mod broker {
    tonic::include_proto!("raftmq.broker.v1");
}
