//! The record format: one Raft entry = one record. Byte layout (all little-endian), also
//! drawn in `docs/commitlog-format.md`:
//!
//! ```text
//! offset size field
//!      0    4 len    u32  whole record length, header included (>= 32)
//!      4    4 crc    u32  CRC-32C (Castagnoli) of bytes [8, len) of the record
//!      8    1 kind   u8   1 Normal, 2 Membership, 3 Blank, 4 Pad (0 never valid)
//!      9    1 ver    u8   1
//!     10    2 rsv    u16  0
//!     12    4 rsv2   u32  0 (keeps term and index 8-byte aligned; the header is 32 bytes)
//!     16    8 term   u64  term of the entry's log id (0 for Pad)
//!     24    8 index  u64  index of the entry's log id (0 for Pad)
//!     32    - body        Normal: the Cmd bytes exactly; Membership: membership_codec;
//!                         Blank: empty; Pad: zeros up to the segment end
//! ```
//!
//! A record whose first 32 bytes are all zero is "no record" (preallocated space, or a header
//! zeroed on purpose by truncation or recovery). Records never span segments: a Pad fills the
//! rest of a segment when the next record does not fit, and fewer than 32 trailing bytes are
//! left as zeros (too small for a Pad header).

use bytes::Bytes;
use openraft::entry::RaftEntry;
use raftmq_raft::{Cmd, Entry, EntryPayload, LogId};

use super::membership_codec;

pub const HEADER_LEN: usize = 32;
pub const FORMAT_VERSION: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    Normal = 1,
    Membership = 2,
    Blank = 3,
    Pad = 4,
}

impl RecordKind {
    fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Normal),
            2 => Some(Self::Membership),
            3 => Some(Self::Blank),
            4 => Some(Self::Pad),
            _ => None,
        }
    }
}

/// A decoded, structurally valid header (CRC not yet checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub len: u32,
    pub kind: RecordKind,
    pub term: u64,
    pub index: u64,
}

/// What 32 bytes at a record position hold.
#[derive(Debug)]
pub enum HeaderCheck {
    Zero,
    Valid(RecordHeader),
    Invalid(String),
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Parses a header from at least [`HEADER_LEN`] bytes.
pub fn parse_header(h: &[u8]) -> HeaderCheck {
    let h = &h[..HEADER_LEN];
    if h.iter().all(|&b| b == 0) {
        return HeaderCheck::Zero;
    }
    let len = le_u32(h, 0);
    let Some(kind) = RecordKind::from_u8(h[8]) else {
        return HeaderCheck::Invalid(format!("unknown record kind {}", h[8]));
    };
    if h[9] != FORMAT_VERSION {
        return HeaderCheck::Invalid(format!("unknown record version {}", h[9]));
    }
    if h[10..16].iter().any(|&b| b != 0) {
        return HeaderCheck::Invalid("reserved header bytes are not zero".into());
    }
    if (len as usize) < HEADER_LEN {
        return HeaderCheck::Invalid(format!("record length {len} is shorter than the header"));
    }
    HeaderCheck::Valid(RecordHeader { len, kind, term: le_u64(h, 16), index: le_u64(h, 24) })
}

/// Whether the CRC stored in `record` (the whole record, `len` bytes) matches its content.
pub fn crc_matches(record: &[u8]) -> bool {
    record.len() >= HEADER_LEN && le_u32(record, 4) == crc32c::crc32c(&record[8..])
}

/// Record length of `entry` once encoded, without encoding it.
pub fn record_len(entry: &Entry) -> u64 {
    let body = match &entry.payload {
        EntryPayload::Blank => 0,
        EntryPayload::Normal(cmd) => cmd.0.len(),
        EntryPayload::Membership(m) => membership_codec::encoded_len(m),
    };
    (HEADER_LEN + body) as u64
}

fn put_header_fields(buf: &mut [u8], kind: RecordKind, term: u64, index: u64) {
    buf[8] = kind as u8;
    buf[9] = FORMAT_VERSION;
    buf[10..16].fill(0);
    buf[16..24].copy_from_slice(&term.to_le_bytes());
    buf[24..32].copy_from_slice(&index.to_le_bytes());
}

/// Appends the record of `entry` to `buf`; returns its length.
pub fn encode_entry(buf: &mut Vec<u8>, entry: &Entry) -> usize {
    let start = buf.len();
    buf.resize(start + HEADER_LEN, 0);
    let kind = match &entry.payload {
        EntryPayload::Blank => RecordKind::Blank,
        EntryPayload::Normal(cmd) => {
            buf.extend_from_slice(&cmd.0);
            RecordKind::Normal
        }
        EntryPayload::Membership(m) => {
            membership_codec::encode(m, buf);
            RecordKind::Membership
        }
    };
    let log_id = entry.log_id();
    let record = &mut buf[start..];
    put_header_fields(record, kind, log_id.leader_id.term, log_id.index);
    let len = record.len();
    let crc = crc32c::crc32c(&record[8..]);
    record[0..4].copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    record[4..8].copy_from_slice(&crc.to_le_bytes());
    len
}

/// The header of a Pad record of `len` bytes whose body is all zeros.
pub fn pad_header(len: u32) -> [u8; HEADER_LEN] {
    static ZEROS: [u8; 4096] = [0; 4096];
    let mut h = [0u8; HEADER_LEN];
    put_header_fields(&mut h, RecordKind::Pad, 0, 0);
    let mut crc = crc32c::crc32c(&h[8..]);
    let mut body = len as usize - HEADER_LEN;
    while body > 0 {
        let n = body.min(ZEROS.len());
        crc = crc32c::crc32c_append(crc, &ZEROS[..n]);
        body -= n;
    }
    h[0..4].copy_from_slice(&len.to_le_bytes());
    h[4..8].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decodes the record at `data[off..]` (a segment mapping) into an entry, checking that the
/// header is the one the in-memory table expects. Bodies are zero-copy slices of `data`.
pub fn decode_entry(data: &Bytes, off: usize, want_term: u64, want_index: u64) -> Result<Entry, String> {
    if off + HEADER_LEN > data.len() {
        return Err(format!("record at offset {off} runs past the segment"));
    }
    let h = match parse_header(&data[off..off + HEADER_LEN]) {
        HeaderCheck::Valid(h) => h,
        HeaderCheck::Zero => return Err(format!("no record at offset {off}")),
        HeaderCheck::Invalid(why) => return Err(why),
    };
    if h.term != want_term || h.index != want_index {
        return Err(format!(
            "record at offset {off} is ({}, {}), expected ({want_term}, {want_index})",
            h.term, h.index
        ));
    }
    let end = off + h.len as usize;
    if end > data.len() {
        return Err(format!("record at offset {off} runs past the segment"));
    }
    let log_id = LogId::new_term_index(h.term, h.index);
    let body = off + HEADER_LEN..end;
    let payload = match h.kind {
        RecordKind::Normal => EntryPayload::Normal(Cmd(data.slice(body))),
        RecordKind::Membership => EntryPayload::Membership(membership_codec::decode(&data[body])?),
        RecordKind::Blank => EntryPayload::Blank,
        RecordKind::Pad => return Err(format!("record at offset {off} is a Pad, expected an entry")),
    };
    Ok(Entry::new(log_id, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_record_layout_is_as_documented() {
        let entry = Entry::new_normal(LogId::new_term_index(7, 42), Cmd(Bytes::from_static(b"\x05hello")));
        let mut buf = Vec::new();
        let len = encode_entry(&mut buf, &entry);
        assert_eq!(len, 32 + 6);
        assert_eq!(&buf[0..4], &38u32.to_le_bytes());
        assert_eq!(buf[8], 1);
        assert_eq!(buf[9], 1);
        assert_eq!(&buf[10..16], &[0; 6]);
        assert_eq!(&buf[16..24], &7u64.to_le_bytes());
        assert_eq!(&buf[24..32], &42u64.to_le_bytes());
        assert_eq!(&buf[32..], b"\x05hello");
        assert_eq!(&buf[4..8], &crc32c::crc32c(&buf[8..]).to_le_bytes());
        assert!(crc_matches(&buf));
        let data = Bytes::from(buf);
        assert_eq!(decode_entry(&data, 0, 7, 42).unwrap(), entry);
        assert!(decode_entry(&data, 0, 7, 43).is_err());
    }

    #[test]
    fn pad_crc_covers_its_zero_body() {
        let h = pad_header(100);
        let mut rec = h.to_vec();
        rec.resize(100, 0);
        assert!(crc_matches(&rec));
        assert!(matches!(parse_header(&rec), HeaderCheck::Valid(RecordHeader { kind: RecordKind::Pad, len: 100, .. })));
    }

    #[test]
    fn zero_and_garbage_headers() {
        assert!(matches!(parse_header(&[0u8; 32]), HeaderCheck::Zero));
        let mut g = [0u8; 32];
        g[0] = 40;
        g[8] = 9;
        assert!(matches!(parse_header(&g), HeaderCheck::Invalid(_)));
    }
}
