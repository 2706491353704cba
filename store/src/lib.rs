//! raftmq store (being built).
