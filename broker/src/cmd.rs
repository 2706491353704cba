//! The encoding of broker commands inside Raft entries ([`raftmq_raft::Cmd`]).
//!
//! Byte 0 is the command kind. A message batch is framed by hand rather than as
//! one protobuf so that every message sits at a known offset inside the entry:
//! its CommitLog position is `record position + RECORD_HEADER_LEN + offset`, and
//! a consumer reads it back with a single slice of the mapped segment.
//!
//! One entry may carry several producer batches (the proposer coalesces
//! concurrent sends); each producer batch is stored all or nothing.
//!
//! ```text
//! Messages: kind=1 u8 | batches u32 | batches × ( count u32 | count × ( len u32 | StoredMessage protobuf ) )
//! Meta:     kind=2 u8 | MetaCommand protobuf
//! Stamped:  kind=3 u8 | leader wall clock ms i64 | leader process run id u64 | a Messages or Meta command
//! ```
//! All integers are little-endian. The leader stamps every entry it proposes
//! (see `sm/dedup.rs` for the clock built from the stamps); entries written
//! before stamping existed decode with no stamp.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use raftmq_proto::broker::{MetaCommand, StoredMessage};
use raftmq_raft::Cmd;

pub const KIND_BATCH: u8 = 1;
pub const KIND_META: u8 = 2;
pub const KIND_STAMPED: u8 = 3;
const STAMP_LEN: usize = 17;

/// Who stamped an entry and when: the leader's wall clock and the random id
/// of its process run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub ms: i64,
    pub run: u64,
}
const FRAME_HEADER: usize = 4;

/// One producer batch: messages with the byte range of each one's
/// `StoredMessage` inside the entry.
pub type DecodedBatch = Vec<(StoredMessage, std::ops::Range<usize>)>;

/// A command decoded from a Raft entry.
#[derive(Debug)]
pub enum Command {
    Batches(Vec<DecodedBatch>),
    Meta(MetaCommand),
}

#[derive(Debug, thiserror::Error)]
pub enum CmdDecodeError {
    #[error("empty command")]
    Empty,
    #[error("unknown command kind {0}")]
    UnknownKind(u8),
    #[error("truncated message batch")]
    Truncated,
    #[error("bad protobuf in command: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

/// One producer batch in one entry.
pub fn encode_batch(messages: &[StoredMessage]) -> Cmd {
    encode_batches(&[messages])
}

/// Several producer batches in one entry.
pub fn encode_batches(batches: &[&[StoredMessage]]) -> Cmd {
    let size: usize = batches.iter().flat_map(|b| b.iter()).map(|m| FRAME_HEADER + m.encoded_len()).sum::<usize>()
        + 4 * batches.len();
    let mut buf = BytesMut::with_capacity(5 + size);
    buf.put_u8(KIND_BATCH);
    buf.put_u32_le(batches.len() as u32);
    for b in batches {
        buf.put_u32_le(b.len() as u32);
        for m in *b {
            buf.put_u32_le(m.encoded_len() as u32);
            // Encoding into a BytesMut with enough capacity cannot fail.
            let _ = m.encode(&mut buf);
        }
    }
    Cmd(buf.freeze())
}

pub fn encode_meta(cmd: &MetaCommand) -> Cmd {
    let mut buf = BytesMut::with_capacity(1 + cmd.encoded_len());
    buf.put_u8(KIND_META);
    let _ = cmd.encode(&mut buf);
    Cmd(buf.freeze())
}

/// `cmd` with the proposing leader's stamp in front (an unstamped command only).
pub fn stamp(cmd: &Cmd, stamp: Stamp) -> Cmd {
    if cmd.0.first() == Some(&KIND_STAMPED) {
        return cmd.clone();
    }
    let mut buf = BytesMut::with_capacity(STAMP_LEN + cmd.0.len());
    buf.put_u8(KIND_STAMPED);
    buf.put_i64_le(stamp.ms);
    buf.put_u64_le(stamp.run);
    buf.extend_from_slice(&cmd.0);
    Cmd(buf.freeze())
}

/// The leader's stamp (if any) and the command. Message ranges are offsets
/// into `cmd` itself, stamp included.
pub fn decode(cmd: &Bytes) -> Result<(Option<Stamp>, Command), CmdDecodeError> {
    let kind = *cmd.first().ok_or(CmdDecodeError::Empty)?;
    if kind != KIND_STAMPED {
        return decode_at(cmd, 0).map(|c| (None, c));
    }
    let word = |at: usize| -> Result<[u8; 8], CmdDecodeError> {
        cmd.get(at..at + 8).and_then(|s| s.try_into().ok()).ok_or(CmdDecodeError::Truncated)
    };
    let stamp = Stamp { ms: i64::from_le_bytes(word(1)?), run: u64::from_le_bytes(word(9)?) };
    Ok((Some(stamp), decode_at(cmd, STAMP_LEN)?))
}

/// The unstamped command whose kind byte is at `base`.
fn decode_at(cmd: &Bytes, base: usize) -> Result<Command, CmdDecodeError> {
    match *cmd.get(base).ok_or(CmdDecodeError::Empty)? {
        KIND_BATCH => decode_batches(cmd, base).map(Command::Batches),
        KIND_META => Ok(Command::Meta(MetaCommand::decode(cmd.slice(base + 1..))?)),
        k => Err(CmdDecodeError::UnknownKind(k)),
    }
}

fn read_u32(b: &[u8], at: usize) -> Result<u32, CmdDecodeError> {
    let s = b.get(at..at + 4).ok_or(CmdDecodeError::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn decode_batches(cmd: &Bytes, base: usize) -> Result<Vec<DecodedBatch>, CmdDecodeError> {
    let batches = read_u32(cmd, base + 1)? as usize;
    let mut out = Vec::with_capacity(batches.min(4096));
    let mut at = base + 5;
    for _ in 0..batches {
        let count = read_u32(cmd, at)? as usize;
        at += 4;
        let mut batch = Vec::with_capacity(count.min(4096));
        for _ in 0..count {
            let len = read_u32(cmd, at)? as usize;
            let start = at + FRAME_HEADER;
            let end = start.checked_add(len).filter(|e| *e <= cmd.len()).ok_or(CmdDecodeError::Truncated)?;
            // Decoding from a `Bytes` slice keeps the body zero-copy.
            let msg = StoredMessage::decode(cmd.slice(start..end))?;
            batch.push((msg, start..end));
            at = end;
        }
        out.push(batch);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_frames_point_at_each_message() {
        let msgs: Vec<StoredMessage> = (0..3)
            .map(|i| StoredMessage {
                topic: "t".into(),
                queue_id: i,
                body: Bytes::from(vec![i as u8; 10 + i as usize]),
                ..Default::default()
            })
            .collect();
        let plain = encode_batches(&[&msgs[..2], &msgs[2..]]);
        let st = Stamp { ms: 1_234, run: 77 };
        let stamped = stamp(&plain, st);
        assert_eq!(stamp(&stamped, Stamp { ms: 99, run: 1 }).0, stamped.0, "stamped once");
        for (cmd, want) in [(&plain, None), (&stamped, Some(st))] {
            let (got, Command::Batches(decoded)) = decode(&cmd.0).unwrap() else { panic!("not a batch") };
            assert_eq!(got, want);
            assert_eq!(decoded.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
            for ((m, range), orig) in decoded.iter().flatten().zip(&msgs) {
                assert_eq!(m, orig);
                assert_eq!(
                    &StoredMessage::decode(&cmd.0[range.clone()]).unwrap(),
                    orig,
                    "ranges index the whole entry"
                );
            }
        }
    }

    #[test]
    fn truncated_and_unknown_are_errors() {
        let cmd = encode_batch(&[StoredMessage { topic: "t".into(), ..Default::default() }]);
        let cut = cmd.0.slice(..cmd.0.len() - 1);
        assert!(matches!(decode(&cut), Err(CmdDecodeError::Truncated | CmdDecodeError::Protobuf(_))));
        assert!(matches!(decode(&Bytes::from_static(&[9])), Err(CmdDecodeError::UnknownKind(9))));
        assert!(matches!(decode(&Bytes::from_static(&[3, 1, 2])), Err(CmdDecodeError::Truncated)));
        let mut nested = vec![3u8];
        nested.extend_from_slice(&[0; 16]);
        nested.push(3);
        nested.extend_from_slice(&[0; 16]);
        nested.push(2);
        let nested = Bytes::from(nested);
        assert!(matches!(decode(&nested), Err(CmdDecodeError::UnknownKind(3))), "a stamp inside a stamp is refused");
        assert!(matches!(decode(&Bytes::new()), Err(CmdDecodeError::Empty)));
    }
}
