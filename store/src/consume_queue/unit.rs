//! The 28-byte consume-queue unit and the tag hash stored in it.
//!
//! ```text
//! byte  0..8   position            u64 LE  physical CommitLog position of the message bytes
//! byte  8..12  size                u32 LE  length of the stored message bytes
//! byte 12..20  tag_hash            u64 LE  tag_hash(tag); 0 = no tag
//! byte 20..28  store_timestamp_ms  i64 LE  broker store time
//! ```
//!
//! A real unit is never all zeroes (`size` is at least the record header), which is what lets
//! recovery treat trailing zero units as never written.

/// Bytes per unit on disk.
pub const UNIT_SIZE: usize = 28;

/// One consume-queue entry: where a message of this queue lives in the CommitLog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CqUnit {
    pub position: u64,
    pub size: u32,
    pub tag_hash: u64,
    pub store_timestamp_ms: i64,
}

impl CqUnit {
    pub fn to_bytes(&self) -> [u8; UNIT_SIZE] {
        let mut b = [0u8; UNIT_SIZE];
        b[0..8].copy_from_slice(&self.position.to_le_bytes());
        b[8..12].copy_from_slice(&self.size.to_le_bytes());
        b[12..20].copy_from_slice(&self.tag_hash.to_le_bytes());
        b[20..28].copy_from_slice(&self.store_timestamp_ms.to_le_bytes());
        b
    }

    /// Decodes the first [`UNIT_SIZE`] bytes of `b`; callers slice on unit boundaries.
    pub fn from_bytes(b: &[u8; UNIT_SIZE]) -> Self {
        let mut u64b = [0u8; 8];
        let mut u32b = [0u8; 4];
        u64b.copy_from_slice(&b[0..8]);
        let position = u64::from_le_bytes(u64b);
        u32b.copy_from_slice(&b[8..12]);
        let size = u32::from_le_bytes(u32b);
        u64b.copy_from_slice(&b[12..20]);
        let tag_hash = u64::from_le_bytes(u64b);
        u64b.copy_from_slice(&b[20..28]);
        let store_timestamp_ms = i64::from_le_bytes(u64b);
        CqUnit { position, size, tag_hash, store_timestamp_ms }
    }
}

/// Decodes a buffer holding whole units (a trailing partial unit is ignored).
pub(crate) fn decode_units(buf: &[u8]) -> impl Iterator<Item = CqUnit> + '_ {
    buf.chunks_exact(UNIT_SIZE).map(|c| {
        let mut b = [0u8; UNIT_SIZE];
        b.copy_from_slice(c);
        CqUnit::from_bytes(&b)
    })
}

/// The hash of a message tag, as stored in [`CqUnit::tag_hash`] and compared by tag filters.
///
/// It is persisted, so it must never change between processes or versions: 64-bit FNV-1a over
/// the UTF-8 bytes (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`). An empty tag (or
/// no tag) hashes to 0, and a non-empty tag whose FNV-1a is 0 is stored as 1 so that 0 keeps
/// meaning "untagged".
pub fn tag_hash(tag: &str) -> u64 {
    if tag.is_empty() {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in tag.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    if h == 0 { 1 } else { h }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_round_trips_little_endian() {
        let u = CqUnit {
            position: 0x0102_0304_0506_0708,
            size: 0x0a0b_0c0d,
            tag_hash: u64::MAX - 1,
            store_timestamp_ms: -5,
        };
        let b = u.to_bytes();
        assert_eq!(b[0], 0x08, "position is little-endian");
        assert_eq!(b[8], 0x0d, "size is little-endian");
        assert_eq!(CqUnit::from_bytes(&b), u);
    }

    #[test]
    fn tag_hash_is_pinned() {
        // Persisted in every unit: these values must never change.
        assert_eq!(tag_hash(""), 0);
        assert_eq!(tag_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(tag_hash("TagA"), tag_hash("TagA"));
        assert_ne!(tag_hash("TagA"), tag_hash("TagB"));
    }
}
