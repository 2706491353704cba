//! raftmq broker (being built).
