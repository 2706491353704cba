//! raftmq's wire contract, generated from the `.proto` files in `proto/`.
//!
//! - [`rocketmq::v2`]: `apache.rocketmq.v2`, the RocketMQ 5 gRPC API served to
//!   official clients, wire-identical to upstream (our own .proto text).
//! - [`raft`]: peer RPCs between the replicas of a broker group.
//! - [`namesrv`]: broker registration and route queries.
//! - [`broker`]: what a Raft entry carries, forwarding to the leader, and admin.
//! - [`placement`]: where a message group is stored (one function, shared by
//!   the broker that places and the SDK that reports the queue).
//! - [`coalesce`]: concurrent requests sharing calls (the broker's batcher and
//!   the SDK's send lanes), here because both crates depend on this one.

pub mod coalesce;
pub mod placement;

#[allow(clippy::all, rust_2018_idioms)] // generated code
pub mod rocketmq {
    pub mod v2 {
        tonic::include_proto!("apache.rocketmq.v2");
    }
}

/// Module nesting follows the proto packages, so cross-package references in
/// the generated code resolve; the short paths below are what the crates use.
#[allow(clippy::all, rust_2018_idioms)] // generated code
pub mod packages {
    pub mod raftmq {
        pub mod raft {
            pub mod v1 {
                tonic::include_proto!("raftmq.raft.v1");
            }
        }
        pub mod namesrv {
            pub mod v1 {
                tonic::include_proto!("raftmq.namesrv.v1");
            }
        }
        pub mod broker {
            pub mod v1 {
                tonic::include_proto!("raftmq.broker.v1");
            }
        }
    }
}

pub use packages::raftmq::broker::v1 as broker;
pub use packages::raftmq::namesrv::v1 as namesrv;
pub use packages::raftmq::raft::v1 as raft;
