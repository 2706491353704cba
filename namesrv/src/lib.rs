//! raftmq namesrv (being built).
