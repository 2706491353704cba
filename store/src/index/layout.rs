//! Key and value layout of the message index: one sled tree, four key families told apart by
//! their first byte. Two sled writes per message with one key (`I` + `K`); the `J` journal costs
//! one write per [`JOURNAL_CHUNK`] messages.
//!
//! ```text
//! family  key                                          value
//! 'I'     'I' id_len id pos                            hit: fixed | topic_len u16 LE | topic
//! 'K'     'K' topic_len topic key_len key ts pos       hit: fixed | id_len u16 LE | message_id
//! 'J'     'J' first_pos last_pos                       journal: entry*
//! 'W'     'W'                                          applied_index u64 BE
//!
//! pos      u64 BE, the message's CommitLog position: unique per message, so re-indexing
//!          the same message after recovery rewrites the same key instead of adding a hit
//! *_len    u16 BE in keys, so a prefix never matches a longer id, topic or key
//! ts       store_timestamp_ms as u64 BE with the sign bit flipped (orders like i64)
//! fixed    size u32 LE | store_timestamp_ms i64 LE | queue_id i32 LE | queue_offset i64 LE
//! entry    pos u64 LE | store_timestamp_ms i64 LE | topic_len u16 LE | topic
//!          | id_len u16 LE | message_id | key_count u16 LE | (key_len u16 LE | key)*
//! ```
//!
//! Keys are big-endian so that sled's byte order is numeric order: `by_key` is one range scan
//! over (topic, key) bounded by time, newest last. Each hit value carries what its key does not,
//! so a lookup reads nothing else. The `J` journal exists for retention only: it lists, in
//! CommitLog order, which `I`/`K` keys a run of messages wrote, so `remove_below` is a range scan
//! over `J` instead of a scan of the whole index. Its key holds both ends of the run, so a run
//! re-indexed with different batch boundaries gets a record of its own rather than overwriting
//! (and losing) one that covers more messages.

use super::{IndexEntry, IndexError, IndexHit};

pub(crate) const WATERMARK: &[u8] = b"W";
const BY_ID: u8 = b'I';
const BY_KEY: u8 = b'K';
const JOURNAL: u8 = b'J';
/// Messages per journal record: big enough to make the journal's write cost negligible, small
/// enough to keep a record (about 100 bytes per message) well under sled's large-value path.
pub(crate) const JOURNAL_CHUNK: usize = 128;

/// `'I' id_len id`; `None` if the id is too long to have been indexed.
pub(crate) fn id_prefix(message_id: &str) -> Option<Vec<u8>> {
    let mut k = Vec::with_capacity(3 + message_id.len() + 8);
    k.push(BY_ID);
    push_str_be(&mut k, message_id)?;
    Some(k)
}

/// `'K' topic_len topic key_len key`; `None` if too long to have been indexed.
pub(crate) fn key_prefix(topic: &str, key: &str) -> Option<Vec<u8>> {
    let mut k = Vec::with_capacity(5 + topic.len() + key.len() + 16);
    k.push(BY_KEY);
    push_str_be(&mut k, topic)?;
    push_str_be(&mut k, key)?;
    Some(k)
}

/// `prefix ts pos`: a `K` key, or a range bound when `pos` is 0 or `u64::MAX`.
pub(crate) fn with_ts_pos(mut prefix: Vec<u8>, ts: i64, position: u64) -> Vec<u8> {
    prefix.extend_from_slice(&ordered_ts(ts).to_be_bytes());
    prefix.extend_from_slice(&position.to_be_bytes());
    prefix
}

fn with_pos(mut prefix: Vec<u8>, position: u64) -> Vec<u8> {
    prefix.extend_from_slice(&position.to_be_bytes());
    prefix
}

/// The position every `I` and `K` key ends with.
pub(crate) fn trailing_position(key: &[u8]) -> Option<u64> {
    let at = key.len().checked_sub(8)?;
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[at..]);
    Some(u64::from_be_bytes(b))
}

pub(crate) fn journal_key(first: u64, last: u64) -> [u8; 17] {
    let mut k = [JOURNAL; 17];
    k[1..9].copy_from_slice(&first.to_be_bytes());
    k[9..].copy_from_slice(&last.to_be_bytes());
    k
}

fn ordered_ts(ts: i64) -> u64 {
    // Reinterpreting the bits is the point: flipping the sign bit makes i64 order unsigned.
    (ts as u64) ^ (1 << 63)
}

fn push_str_be(out: &mut Vec<u8>, s: &str) -> Option<()> {
    out.extend_from_slice(&u16::try_from(s.len()).ok()?.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Some(())
}

/// Strings of a [`check`]ed entry fit a u16 length.
fn push_str_le(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

/// Refuses an entry whose strings do not fit the u16 lengths, before anything is written.
pub(crate) fn check(e: &IndexEntry) -> Result<(), IndexError> {
    let max = usize::from(u16::MAX);
    let longest_key = e.keys.iter().map(String::len).max().unwrap_or(0);
    for (field, len) in [
        ("topic length", e.topic.len()),
        ("message id length", e.message_id.len()),
        ("key count", e.keys.len()),
        ("key length", longest_key),
    ] {
        if len > max {
            return Err(IndexError::TooLong {
                position: e.position,
                field,
                len,
            });
        }
    }
    Ok(())
}

/// The `I` and `K` keys of a message, with the string its hit value must carry (the topic for
/// `I`, the message id for `K`).
pub(crate) fn pointer_keys<'a>(
    topic: &'a str,
    message_id: &'a str,
    keys: &'a [String],
    ts: i64,
    position: u64,
) -> impl Iterator<Item = (Vec<u8>, &'a str)> + 'a {
    let by_id = id_prefix(message_id)
        .filter(|_| !message_id.is_empty())
        .map(|p| (with_pos(p, position), topic));
    let by_key = keys
        .iter()
        .filter(|k| !k.is_empty())
        .filter_map(move |k| key_prefix(topic, k))
        .map(move |p| (with_ts_pos(p, ts, position), message_id));
    by_id.into_iter().chain(by_key)
}

pub(crate) fn encode_hit(e: &IndexEntry, text: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(26 + text.len());
    v.extend_from_slice(&e.size.to_le_bytes());
    v.extend_from_slice(&e.store_timestamp_ms.to_le_bytes());
    v.extend_from_slice(&e.queue_id.to_le_bytes());
    v.extend_from_slice(&e.queue_offset.to_le_bytes());
    push_str_le(&mut v, text);
    v
}

/// Decodes a hit value; `topic` and `message_id` are whichever the key supplied, and `None`
/// marks the one the value carries.
pub(crate) fn decode_hit(
    position: u64,
    v: &[u8],
    topic: Option<&str>,
    message_id: Option<&str>,
) -> Result<IndexHit, IndexError> {
    let corrupt = || IndexError::Corrupt {
        position,
        reason: "a truncated or non-UTF-8 hit value",
    };
    let mut r = Reader(v);
    let size = u32::from_le_bytes(r.array().ok_or_else(corrupt)?);
    let store_timestamp_ms = i64::from_le_bytes(r.array().ok_or_else(corrupt)?);
    let queue_id = i32::from_le_bytes(r.array().ok_or_else(corrupt)?);
    let queue_offset = i64::from_le_bytes(r.array().ok_or_else(corrupt)?);
    let text = r.string().ok_or_else(corrupt)?;
    let (topic, message_id) = match (topic, message_id) {
        (Some(t), _) => (t.to_owned(), text),
        (None, Some(id)) => (text, id.to_owned()),
        (None, None) => (text, String::new()),
    };
    Ok(IndexHit {
        topic,
        queue_id,
        queue_offset,
        position,
        size,
        store_timestamp_ms,
        message_id,
    })
}

/// What retention needs to find a message's `I` and `K` keys again.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct JournalEntry {
    pub(crate) position: u64,
    pub(crate) store_timestamp_ms: i64,
    pub(crate) topic: String,
    pub(crate) message_id: String,
    pub(crate) keys: Vec<String>,
}

impl JournalEntry {
    pub(crate) fn pointer_keys(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        let (t, id, ts, pos) = (
            &self.topic,
            &self.message_id,
            self.store_timestamp_ms,
            self.position,
        );
        pointer_keys(t, id, &self.keys, ts, pos).map(|(k, _)| k)
    }
}

pub(crate) fn encode_journal<'a>(entries: impl Iterator<Item = JournalRef<'a>>) -> Vec<u8> {
    let mut v = Vec::new();
    for e in entries {
        v.extend_from_slice(&e.position.to_le_bytes());
        v.extend_from_slice(&e.store_timestamp_ms.to_le_bytes());
        push_str_le(&mut v, e.topic);
        push_str_le(&mut v, e.message_id);
        let count = u16::try_from(e.keys.len()).unwrap_or(u16::MAX);
        v.extend_from_slice(&count.to_le_bytes());
        for k in e.keys.iter().take(usize::from(count)) {
            push_str_le(&mut v, k);
        }
    }
    v
}

/// A borrowed journal entry, for encoding without copying strings.
#[derive(Clone, Copy)]
pub(crate) struct JournalRef<'a> {
    pub(crate) position: u64,
    pub(crate) store_timestamp_ms: i64,
    pub(crate) topic: &'a str,
    pub(crate) message_id: &'a str,
    pub(crate) keys: &'a [String],
}

impl<'a> From<&'a IndexEntry> for JournalRef<'a> {
    fn from(e: &'a IndexEntry) -> Self {
        JournalRef {
            position: e.position,
            store_timestamp_ms: e.store_timestamp_ms,
            topic: &e.topic,
            message_id: &e.message_id,
            keys: &e.keys,
        }
    }
}

impl<'a> From<&'a JournalEntry> for JournalRef<'a> {
    fn from(e: &'a JournalEntry) -> Self {
        JournalRef {
            position: e.position,
            store_timestamp_ms: e.store_timestamp_ms,
            topic: &e.topic,
            message_id: &e.message_id,
            keys: &e.keys,
        }
    }
}

pub(crate) fn decode_journal(first: u64, v: &[u8]) -> Result<Vec<JournalEntry>, IndexError> {
    let corrupt = || IndexError::Corrupt {
        position: first,
        reason: "a truncated or non-UTF-8 journal record",
    };
    let mut r = Reader(v);
    let mut out = Vec::new();
    while !r.0.is_empty() {
        let position = u64::from_le_bytes(r.array().ok_or_else(corrupt)?);
        let store_timestamp_ms = i64::from_le_bytes(r.array().ok_or_else(corrupt)?);
        let topic = r.string().ok_or_else(corrupt)?;
        let message_id = r.string().ok_or_else(corrupt)?;
        let count = u16::from_le_bytes(r.array().ok_or_else(corrupt)?);
        let keys = (0..count)
            .map(|_| r.string())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(corrupt)?;
        out.push(JournalEntry {
            position,
            store_timestamp_ms,
            topic,
            message_id,
            keys,
        });
    }
    Ok(out)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Some(a)
    }

    fn string(&mut self) -> Option<String> {
        let len = u16::from_le_bytes(self.array()?);
        let bytes = self.take(usize::from(len))?;
        String::from_utf8(bytes.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests;
