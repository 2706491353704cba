//! Topic names as directory names.
//!
//! RocketMQ topics may contain `%` and `|` (`%RETRY%group`, `%DLQ%group`), so every byte outside
//! `[A-Za-z0-9_-]` is written as `%XX` (upper-case hex). The mapping is reversible and never
//! yields `.`, `..` or a path separator; only the canonical encoding of a name is accepted back,
//! so two directories can never claim the same topic.

use super::CqError;

/// Most file systems cap a name at 255 bytes.
const MAX_NAME_BYTES: usize = 255;

pub(crate) fn encode_topic(topic: &str) -> Result<String, CqError> {
    let invalid = |reason| CqError::InvalidTopic { topic: topic.to_owned(), reason };
    if topic.is_empty() {
        return Err(invalid("a topic name must not be empty"));
    }
    let mut out = String::with_capacity(topic.len());
    for &b in topic.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0x0f));
        }
    }
    if out.len() > MAX_NAME_BYTES {
        return Err(invalid("its escaped directory name is longer than 255 bytes"));
    }
    Ok(out)
}

/// The topic a directory name stands for, or `None` if it is not a name [`encode_topic`] makes.
pub(crate) fn decode_topic(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let topic = String::from_utf8(out).ok()?;
    // Reject non-canonical spellings such as `%41` for `A`.
    match encode_topic(&topic) {
        Ok(canonical) if canonical == name => Some(topic),
        _ => None,
    }
}

fn hex_digit(n: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(n & 0x0f)])
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_topics_round_trip() {
        for topic in ["plain", "%RETRY%group-1", "%DLQ%g_2", "a|b", "..", "a/b", "ünï"] {
            let name = encode_topic(topic).expect("encodable");
            assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-%".contains(&b)));
            assert_eq!(decode_topic(&name).as_deref(), Some(topic));
        }
        assert_eq!(encode_topic("%RETRY%g|x").expect("ok"), "%25RETRY%25g%7Cx");
    }

    #[test]
    fn rejects_non_canonical_and_bad_names() {
        assert_eq!(decode_topic("%41"), None);
        assert_eq!(decode_topic("%2"), None);
        assert_eq!(decode_topic("%7c"), None);
        assert_eq!(decode_topic("a.b"), None);
        assert!(encode_topic("").is_err());
        assert!(encode_topic(&"%".repeat(100)).is_err());
    }
}
