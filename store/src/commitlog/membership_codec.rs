//! The body of a Membership record: a small explicit binary encoding of
//! `Membership<u64, BasicNode>`.
//!
//! Explicit rather than serde so the bytes are fixed by this file alone (replicas must stay
//! byte-identical, and a serde or openraft upgrade must not change the on-disk format). The
//! configs are `BTreeSet`s and the nodes a `BTreeMap`, so iteration order, and therefore the
//! encoding, is deterministic. All integers little-endian:
//!
//! ```text
//! u32 config_count
//!   repeated config_count times:  u32 voter_count, then voter_count x u64 node id
//! u32 node_count
//!   repeated node_count times:    u64 node id, u32 addr_len, addr_len bytes of UTF-8 addr
//! ```

use std::collections::{BTreeMap, BTreeSet};

use openraft::BasicNode;
use raftmq_raft::Membership;

/// Encoded size of `m`, computed without encoding (to decide whether a record fits).
pub(crate) fn encoded_len(m: &Membership) -> usize {
    let configs: usize = m.get_joint_config().iter().map(|c| 4 + 8 * c.len()).sum();
    let nodes: usize = m.nodes().map(|(_, n)| 8 + 4 + n.addr.len()).sum();
    4 + configs + 4 + nodes
}

fn put_len(buf: &mut Vec<u8>, n: usize) {
    // Lengths are bounded by the entry size limit (< 4 GiB), checked before encoding.
    buf.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

pub(crate) fn encode(m: &Membership, buf: &mut Vec<u8>) {
    let configs = m.get_joint_config();
    put_len(buf, configs.len());
    for config in configs {
        put_len(buf, config.len());
        for id in config {
            buf.extend_from_slice(&id.to_le_bytes());
        }
    }
    let nodes: Vec<_> = m.nodes().collect();
    put_len(buf, nodes.len());
    for (id, node) in nodes {
        buf.extend_from_slice(&id.to_le_bytes());
        put_len(buf, node.addr.len());
        buf.extend_from_slice(node.addr.as_bytes());
    }
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err(format!("membership body truncated: need {n} bytes, have {}", self.rest.len()));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<usize, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Guards allocation sizes against a corrupt count: each item needs at least `min` bytes.
    fn count(&mut self, min_item: usize) -> Result<usize, String> {
        let n = self.u32()?;
        if n.saturating_mul(min_item) > self.rest.len() {
            return Err(format!("membership count {n} exceeds the body"));
        }
        Ok(n)
    }
}

pub(crate) fn decode(body: &[u8]) -> Result<Membership, String> {
    let mut c = Cursor { rest: body };
    let config_count = c.count(4)?;
    let mut configs = Vec::with_capacity(config_count);
    for _ in 0..config_count {
        let voters = c.count(8)?;
        let mut set = BTreeSet::new();
        for _ in 0..voters {
            set.insert(c.u64()?);
        }
        configs.push(set);
    }
    let node_count = c.count(12)?;
    let mut nodes = BTreeMap::new();
    for _ in 0..node_count {
        let id = c.u64()?;
        let addr_len = c.u32()?;
        let addr = std::str::from_utf8(c.take(addr_len)?).map_err(|e| format!("membership node addr: {e}"))?;
        nodes.insert(id, BasicNode { addr: addr.to_owned() });
    }
    if !c.rest.is_empty() {
        return Err(format!("{} trailing bytes after membership", c.rest.len()));
    }
    Membership::new(configs, nodes).map_err(|e| format!("invalid membership: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_joint_config_with_learner() {
        let nodes: BTreeMap<u64, BasicNode> =
            [1, 2, 3, 9].into_iter().map(|id| (id, BasicNode { addr: format!("10.0.0.{id}:7000") })).collect();
        let m = Membership::new(vec![BTreeSet::from([1, 2]), BTreeSet::from([2, 3])], nodes).unwrap();
        let mut buf = Vec::new();
        encode(&m, &mut buf);
        assert_eq!(buf.len(), encoded_len(&m));
        assert_eq!(decode(&buf).unwrap(), m);
    }

    #[test]
    fn rejects_truncated_and_trailing_bytes() {
        let m = Membership::new_with_defaults(vec![BTreeSet::from([1])], []);
        let mut buf = Vec::new();
        encode(&m, &mut buf);
        assert!(decode(&buf[..buf.len() - 1]).is_err());
        buf.push(0);
        assert!(decode(&buf).is_err());
    }
}
