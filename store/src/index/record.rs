//! The message record: what a hit needs beyond its entry, stored once per message in the heap
//! of its file (layout in `format.rs`). Entries hold only hashes, so a lookup confirms every
//! candidate against the strings here: a hash collision costs a read, never a wrong hit.

use crc32c::crc32c;

use super::format::{get_u32, get_u64};
use super::{IndexEntry, IndexError};

/// The bytes before the key lengths.
pub(super) const FIXED: usize = 30;
/// Caps one record, so that any record fits an empty heap (offsets are u32) and a reader never
/// allocates much for a corrupt length.
pub(super) const MAX_RECORD: usize = 16 << 20;
const MAX_STR: usize = u16::MAX as usize;

/// Refuses, before anything is written, an entry the format cannot hold: strings and key
/// counts are u16, a record is at most [`MAX_RECORD`], and a message's entries (its id and
/// keys) must fit one file of `capacity` entries.
pub(super) fn check(e: &IndexEntry, capacity: u32) -> Result<(), IndexError> {
    let longest_key = e.keys.iter().map(String::len).max().unwrap_or(0);
    let record =
        FIXED + 2 * e.keys.len() + e.topic.len() + e.message_id.len() + e.keys.iter().map(String::len).sum::<usize>();
    let max_keys = MAX_STR.min(capacity as usize - 1);
    for (field, len, max) in [
        ("topic length", e.topic.len(), MAX_STR),
        ("message id length", e.message_id.len(), MAX_STR),
        ("key count", e.keys.len(), max_keys),
        ("key length", longest_key, MAX_STR),
        ("record size (topic, id and keys)", record, MAX_RECORD),
    ] {
        if len > max {
            return Err(IndexError::TooLong { position: e.position, field, len, max });
        }
    }
    Ok(())
}

/// Length of the record of `e` holding the keys `e.keys[k]` for `k` in `keys`.
pub(super) fn encoded_len(e: &IndexEntry, keys: &[u32]) -> usize {
    let key_bytes: usize = keys.iter().map(|&k| e.keys[k as usize].len()).sum();
    FIXED + 2 * keys.len() + e.topic.len() + e.message_id.len() + key_bytes
}

/// Appends the record to `out`. The lengths fit their fields: [`check`] passed.
pub(super) fn encode_into(e: &IndexEntry, keys: &[u32], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&(encoded_len(e, keys) as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&e.queue_id.to_le_bytes());
    out.extend_from_slice(&e.queue_offset.to_le_bytes());
    out.extend_from_slice(&e.size.to_le_bytes());
    out.extend_from_slice(&(e.topic.len() as u16).to_le_bytes());
    out.extend_from_slice(&(e.message_id.len() as u16).to_le_bytes());
    out.extend_from_slice(&(keys.len() as u16).to_le_bytes());
    for &k in keys {
        out.extend_from_slice(&(e.keys[k as usize].len() as u16).to_le_bytes());
    }
    out.extend_from_slice(e.topic.as_bytes());
    out.extend_from_slice(e.message_id.as_bytes());
    for &k in keys {
        out.extend_from_slice(e.keys[k as usize].as_bytes());
    }
    let crc = crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// A record read back, borrowing its buffer.
#[derive(Debug)]
pub(super) struct Record<'a> {
    pub queue_id: i32,
    pub queue_offset: i64,
    pub size: u32,
    pub topic: &'a str,
    pub message_id: &'a str,
    key_lens: &'a [u8],
    keys: &'a [u8],
}

impl<'a> Record<'a> {
    /// `None` unless `b` is exactly one record with a good CRC and UTF-8 topic and id.
    pub fn parse(b: &'a [u8]) -> Option<Record<'a>> {
        if b.len() < FIXED || get_u32(b, 0) as usize != b.len() || get_u32(b, 4) != crc32c(&b[8..]) {
            return None;
        }
        let u16_at = |at: usize| usize::from(u16::from_le_bytes([b[at], b[at + 1]]));
        let (topic_len, id_len, key_count) = (u16_at(24), u16_at(26), u16_at(28));
        let strings = FIXED + 2 * key_count;
        let key_lens = b.get(FIXED..strings)?;
        let topic = std::str::from_utf8(b.get(strings..strings + topic_len)?).ok()?;
        let id_end = strings + topic_len + id_len;
        let message_id = std::str::from_utf8(b.get(strings + topic_len..id_end)?).ok()?;
        let keys = b.get(id_end..)?;
        let key_total: usize = key_lens.chunks(2).map(|c| usize::from(u16::from_le_bytes([c[0], c[1]]))).sum();
        if key_total != keys.len() {
            return None;
        }
        Some(Record {
            queue_id: get_u32(b, 8) as i32,
            queue_offset: get_u64(b, 12) as i64,
            size: get_u32(b, 20),
            topic,
            message_id,
            key_lens,
            keys,
        })
    }

    pub fn has_key(&self, key: &str) -> bool {
        let mut at = 0;
        self.key_lens.chunks(2).any(|c| {
            let len = usize::from(u16::from_le_bytes([c[0], c[1]]));
            let k = &self.keys[at..at + len];
            at += len;
            k == key.as_bytes()
        })
    }
}
