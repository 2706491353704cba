//! Loopback cluster tests (real gRPC, in-process replicas), one binary for all of them.

mod cluster_10_failover;
mod cluster_20_replicas;
mod cluster_30_membership;
mod cluster_40_groups;
mod cluster_50_pop;
mod cluster_55_delay;
mod cluster_60_bad_input;
mod cluster_70_sdk_consumer;
mod cluster_72_shared_calls;
mod cluster_75_fifo_receipts;
mod cluster_80_topics_offsets;
mod cluster_85_consumer_groups;
mod cluster_90_push_consumer;
mod cluster_95_pull_consumer;
mod cluster_98_retention;
