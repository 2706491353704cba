//! The openraft type configuration shared by the log store and the broker.
//!
//! A Raft entry's application payload ([`Cmd`]) is an opaque, already-encoded
//! broker command: the same bytes travel in AppendEntries and land in the
//! CommitLog, so an entry is encoded once and written once.

use std::fmt;

use bytes::Bytes;

pub use raftmq_proto::broker::CommandReply;

/// A node id within a broker group.
pub type NodeId = u64;

/// The broker command carried by a normal Raft entry. Its encoding belongs to
/// the broker (`broker/src/cmd/`); the first byte is the command kind.
#[derive(Clone, PartialEq, Eq)]
pub struct Cmd(pub Bytes);

impl fmt::Debug for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cmd(kind={}, {} bytes)", self.0.first().copied().unwrap_or(0), self.0.len())
    }
}

openraft::declare_raft_types!(
    /// raftmq's Raft types: standard Raft leader ids (a log id is `(term, index)`),
    /// [`Cmd`] payloads and [`CommandReply`] responses, on tokio with a seedable RNG
    /// ([`crate::runtime`]).
    pub TypeConfig:
        D = Cmd,
        R = CommandReply,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
        AsyncRuntime = crate::runtime::SeedableTokio,
);

pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub type Membership = openraft::Membership<NodeId, openraft::BasicNode>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// A replica's Raft handle, generic over the broker's state machine.
pub type Raft<SM> = openraft::Raft<TypeConfig, SM>;
pub type EntryPayload = openraft::type_config::alias::EntryPayloadOf<TypeConfig>;

/// What a snapshot carries: the encoded state-machine checkpoint pinned at the
/// retention boundary (see ARCHITECTURE.md, "Snapshots").
pub type SnapshotData = Bytes;
