//! The on-disk format of the message index, byte by byte. Integers are little-endian; CRCs are
//! CRC-32C (`crc32c::crc32c`, initial value 0).
//!
//! # Directory
//!
//! ```text
//! <dir>/
//!   index.meta                 the commit record (below); replaced by tmp + fsync + rename
//!   index.meta.tmp             an interrupted replacement; deleted on open
//!   00000000000000000003.idx   index file number 3 (20-digit sequence number, so names sort)
//! ```
//!
//! Files `base_seq..=active_seq` (from the meta) are live: the last one is appended to (the
//! *active* file), the others are *sealed* and never written again. Files outside that range
//! are leftovers of a rollover or `clear` that never committed, and are deleted on open.
//! Retention deletes sealed files, so the live range may have holes.
//!
//! # Index file
//!
//! ```text
//! offset                       size              contents
//! 0                            64                header
//! 64                           4 * slots         slot table: u32 number of the newest entry
//!                                                whose hash falls in the slot, 0 = empty
//! 64 + 4*slots                 40 * capacity     entries, numbered 1..=capacity, appended
//! heap = 64+4*slots+40*capacity  heap_len        message records, appended
//! ```
//!
//! A file is created with `set_len(heap)`, so unwritten entries are a hole that costs no disk,
//! and it grows as records are appended. An entry lives in slot `hash % slots`.
//!
//! Header (64 bytes), with `stats` as below:
//! ```text
//!  0 magic "RMQIDX01"   8 seq u64   16 slots u32   20 capacity u32   24 sealed u32 0|1
//! 28 stats (32 bytes)   60 crc u32 of [0, 60)
//! ```
//! `stats` (32 bytes) is what a file holds; written into the header when the file is sealed,
//! kept in the meta while it is active:
//! ```text
//!  0 entries u32   4 messages u32   8 heap_len u32   12 zero u32
//! 16 min_ts i64   24 max_ts i64    range of store_timestamp_ms; empty = i64::MAX, i64::MIN
//! ```
//!
//! Entry (40 bytes):
//! ```text
//!  0 hash u64       8 position u64     16 store_timestamp_ms i64
//! 24 record u32     offset of the message's record from the start of the heap
//! 28 message u32    1-based number of the message in this file; the entries of one message
//!                   share it, so retention counts messages by subtracting two of them
//! 32 prev u32       previous entry of the same slot, 0 = end of chain; always < this entry
//! 36 crc u32        of [0, 36)
//! ```
//! A message gets one entry for its id, `hash(ID, "", message_id)`, and one per distinct
//! non-empty key, `hash(KEY, topic, key)` (see [`hash`]). Entries are appended in position
//! order, so a chain runs from the newest position to the oldest.
//!
//! Record (one per message, in the heap; see `record.rs`):
//! ```text
//!  0 len u32 (whole record)   4 crc u32 of [8, len)   8 queue_id i32   12 queue_offset i64
//! 20 size u32   24 topic_len u16   26 id_len u16   28 key_count u16   30 key_len u16 * key_count
//! then topic, message_id and the keys back to back (UTF-8)
//! ```
//!
//! # Meta (`index.meta`, 92 bytes)
//! ```text
//!  0 magic "RMQIMETA"   8 flags u32: 1 = watermark set, 2 = max_position set   12 zero u32
//! 16 watermark u64      24 max_position u64    32 removed_below u64   40 base_seq u64
//! 48 active_seq u64     56 stats of the active file (32 bytes)     88 crc u32 of [0, 88)
//! ```
//! The stats describe the active file as of the flush that wrote the meta: only that
//! much of it is known to be on disk. Entries past `entries`, records past `heap_len` and slot
//! values greater than `entries` may be torn, and are ignored or rebuilt on open.

use crc32c::crc32c;

pub(super) const HEADER_LEN: usize = 64;
pub(super) const ENTRY_LEN: usize = 40;
pub(super) const META_LEN: usize = 92;
const FILE_MAGIC: [u8; 8] = *b"RMQIDX01";
const META_MAGIC: [u8; 8] = *b"RMQIMETA";
const META_WATERMARK: u32 = 1;
const META_MAX_POSITION: u32 = 2;

/// Hash domains, so that an id never matches a key with the same text.
pub(super) const ID: u8 = 1;
pub(super) const KEY: u8 = 2;

/// 64-bit hash of a lookup key. It is on disk, so it must never change (std's hashers promise
/// no stability): the domain and both lengths, then each part in 8-byte little-endian words
/// (the last zero-padded; the lengths make that unambiguous), each mixed in by
/// multiply-rotate, then murmur3's `fmix64` so that `hash % slots` uses well-mixed bits.
/// Collisions only cost a record read: every candidate is verified against its record.
pub(super) fn hash(domain: u8, topic: &str, key: &str) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mix = |h: u64, w: u64| (h ^ w).wrapping_mul(K).rotate_left(29);
    let mut h = mix(u64::from(domain), topic.len() as u64);
    h = mix(h, key.len() as u64);
    for part in [topic, key] {
        for chunk in part.as_bytes().chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            h = mix(h, u64::from_le_bytes(w));
        }
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Where things are in a file with this many slots and entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Geometry {
    pub slots: u32,
    pub capacity: u32,
}

impl Geometry {
    pub fn slot_offset(self, slot: usize) -> u64 {
        HEADER_LEN as u64 + 4 * slot as u64
    }

    /// Offset of entry `n` (1-based).
    pub fn entry_offset(self, n: u32) -> u64 {
        self.slot_offset(self.slots as usize) + ENTRY_LEN as u64 * u64::from(n - 1)
    }

    pub fn heap_start(self) -> u64 {
        self.slot_offset(self.slots as usize) + ENTRY_LEN as u64 * u64::from(self.capacity)
    }

    pub fn slot_of(self, hash: u64) -> usize {
        (hash % u64::from(self.slots)) as usize
    }
}

/// What a file holds: in its header once sealed, in the meta while active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stats {
    pub entries: u32,
    pub messages: u32,
    pub heap_len: u32,
    pub min_ts: i64,
    pub max_ts: i64,
}

impl Stats {
    pub const EMPTY: Stats = Stats { entries: 0, messages: 0, heap_len: 0, min_ts: i64::MAX, max_ts: i64::MIN };

    fn put(&self, b: &mut [u8], at: usize) {
        put_u32(b, at, self.entries);
        put_u32(b, at + 4, self.messages);
        put_u32(b, at + 8, self.heap_len);
        put_u64(b, at + 16, self.min_ts as u64);
        put_u64(b, at + 24, self.max_ts as u64);
    }

    fn get(b: &[u8], at: usize) -> Stats {
        Stats {
            entries: get_u32(b, at),
            messages: get_u32(b, at + 4),
            heap_len: get_u32(b, at + 8),
            min_ts: get_u64(b, at + 16) as i64,
            max_ts: get_u64(b, at + 24) as i64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub seq: u64,
    pub geo: Geometry,
    pub sealed: bool,
    pub stats: Stats,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(&FILE_MAGIC);
        put_u64(&mut b, 8, self.seq);
        put_u32(&mut b, 16, self.geo.slots);
        put_u32(&mut b, 20, self.geo.capacity);
        put_u32(&mut b, 24, u32::from(self.sealed));
        self.stats.put(&mut b, 28);
        let crc = crc32c(&b[..60]);
        put_u32(&mut b, 60, crc);
        b
    }

    /// `None` if the magic or CRC is wrong.
    pub fn decode(b: &[u8]) -> Option<Header> {
        if b.len() < HEADER_LEN || b[..8] != FILE_MAGIC || get_u32(b, 60) != crc32c(&b[..60]) {
            return None;
        }
        Some(Header {
            seq: get_u64(b, 8),
            geo: Geometry { slots: get_u32(b, 16), capacity: get_u32(b, 20) },
            sealed: get_u32(b, 24) == 1,
            stats: Stats::get(b, 28),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub hash: u64,
    pub position: u64,
    pub timestamp: i64,
    pub record: u32,
    pub message: u32,
    pub prev: u32,
}

impl Entry {
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut b = [0u8; ENTRY_LEN];
        put_u64(&mut b, 0, self.hash);
        put_u64(&mut b, 8, self.position);
        put_u64(&mut b, 16, self.timestamp as u64);
        put_u32(&mut b, 24, self.record);
        put_u32(&mut b, 28, self.message);
        put_u32(&mut b, 32, self.prev);
        let crc = crc32c(&b[..36]);
        put_u32(&mut b, 36, crc);
        out.extend_from_slice(&b);
    }

    /// `None` if the CRC is wrong (a torn or rotten entry).
    pub fn decode(b: &[u8]) -> Option<Entry> {
        if b.len() < ENTRY_LEN || get_u32(b, 36) != crc32c(&b[..36]) {
            return None;
        }
        Some(Entry {
            hash: get_u64(b, 0),
            position: get_u64(b, 8),
            timestamp: get_u64(b, 16) as i64,
            record: get_u32(b, 24),
            message: get_u32(b, 28),
            prev: get_u32(b, 32),
        })
    }
}

/// The commit record: what the last completed flush made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Meta {
    pub watermark: Option<u64>,
    pub max_position: Option<u64>,
    /// Hits below this CommitLog position are hidden (their segments were purged).
    pub removed_below: u64,
    pub base_seq: u64,
    pub active_seq: u64,
    pub active: Stats,
}

impl Default for Meta {
    fn default() -> Self {
        Meta { watermark: None, max_position: None, removed_below: 0, base_seq: 0, active_seq: 0, active: Stats::EMPTY }
    }
}

impl Meta {
    pub fn encode(&self) -> [u8; META_LEN] {
        let mut b = [0u8; META_LEN];
        b[..8].copy_from_slice(&META_MAGIC);
        let flags = if self.watermark.is_some() { META_WATERMARK } else { 0 }
            | if self.max_position.is_some() { META_MAX_POSITION } else { 0 };
        put_u32(&mut b, 8, flags);
        put_u64(&mut b, 16, self.watermark.unwrap_or(0));
        put_u64(&mut b, 24, self.max_position.unwrap_or(0));
        put_u64(&mut b, 32, self.removed_below);
        put_u64(&mut b, 40, self.base_seq);
        put_u64(&mut b, 48, self.active_seq);
        self.active.put(&mut b, 56);
        let crc = crc32c(&b[..88]);
        put_u32(&mut b, 88, crc);
        b
    }

    pub fn decode(b: &[u8]) -> Option<Meta> {
        if b.len() != META_LEN || b[..8] != META_MAGIC || get_u32(b, 88) != crc32c(&b[..88]) {
            return None;
        }
        let flags = get_u32(b, 8);
        Some(Meta {
            watermark: (flags & META_WATERMARK != 0).then(|| get_u64(b, 16)),
            max_position: (flags & META_MAX_POSITION != 0).then(|| get_u64(b, 24)),
            removed_below: get_u64(b, 32),
            base_seq: get_u64(b, 40),
            active_seq: get_u64(b, 48),
            active: Stats::get(b, 56),
        })
    }
}

pub(super) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub(super) fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

pub(super) fn get_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

pub(super) fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests;
