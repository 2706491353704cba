//! Reading a queue by offset: consume-queue units, then the messages they
//! point at in the CommitLog. Only applied (committed) entries are in the
//! consume queues, so a reader never sees an uncommitted message.

use prost::Message as _;
use raftmq_proto::broker::StoredMessage;
use raftmq_store::consume_queue::{CqUnit, tag_hash};

use crate::error::ApiError;
use crate::sm::Shared;

/// Largest total body size one read returns (at least one message is always returned).
pub const MAX_READ_BYTES: usize = 4 * 1024 * 1024;

/// A parsed tag filter: `*` (or empty) matches everything, `a||b` matches either tag.
#[derive(Debug, Clone)]
pub enum TagFilter {
    All,
    Tags(Vec<(u64, String)>),
}

impl TagFilter {
    pub fn parse(expr: &str) -> Result<Self, ApiError> {
        let expr = expr.trim();
        if expr.is_empty() || expr == "*" {
            return Ok(TagFilter::All);
        }
        let mut tags = Vec::new();
        for t in expr.split("||") {
            let t = t.trim();
            if t.is_empty() || t.chars().any(char::is_control) {
                return Err(ApiError::new(
                    raftmq_proto::rocketmq::v2::Code::IllegalFilterExpression,
                    format!("tag expression {expr:?} has an empty or invalid tag"),
                ));
            }
            tags.push((tag_hash(t), t.to_string()));
        }
        Ok(TagFilter::Tags(tags))
    }

    fn hash_may_match(&self, h: u64) -> bool {
        match self {
            TagFilter::All => true,
            TagFilter::Tags(t) => t.iter().any(|(th, _)| *th == h),
        }
    }

    fn matches(&self, tag: Option<&str>) -> bool {
        match self {
            TagFilter::All => true,
            TagFilter::Tags(t) => tag.is_some_and(|tag| t.iter().any(|(_, s)| s == tag)),
        }
    }
}

/// What one read found.
pub struct ReadResult {
    pub messages: Vec<(i64, StoredMessage)>,
    /// Where the next read should start.
    pub next_offset: i64,
}

/// Reads up to `max` messages of `topic:queue` from `offset` (raised to the
/// queue's min offset if it is below it) that pass `filter`.
pub fn read_queue(
    shared: &Shared,
    topic: &str,
    queue_id: i32,
    offset: i64,
    max: usize,
    filter: &TagFilter,
) -> Result<ReadResult, ApiError> {
    let start = offset.max(shared.first_offset(topic, queue_id));
    let units = shared
        .cq
        .read(topic, queue_id, start, max)
        .map_err(|e| ApiError::internal(format!("consume queue read failed: {e}")))?;
    let mut messages = Vec::with_capacity(units.len());
    let mut next_offset = start;
    let mut bytes = 0usize;
    for (off, unit) in units {
        if !messages.is_empty() && bytes + unit.size as usize > MAX_READ_BYTES {
            break;
        }
        next_offset = off + 1;
        if !filter.hash_may_match(unit.tag_hash) {
            continue;
        }
        let Some(msg) = read_stored(shared, &unit)? else { continue };
        if filter.matches(msg.tag.as_deref()) {
            bytes += unit.size as usize;
            messages.push((off, msg));
        }
    }
    Ok(ReadResult { messages, next_offset })
}

/// The message a consume-queue unit points at; `None` if retention purged its
/// record (a fired delayed message or a dead letter can point further back
/// than its queue's first retained offset).
pub fn read_stored(shared: &Shared, unit: &CqUnit) -> Result<Option<StoredMessage>, ApiError> {
    if unit.position < shared.log.start_position() {
        return Ok(None);
    }
    let raw = shared
        .log
        .read_bytes(unit.position, unit.size as usize)
        .map_err(|e| ApiError::internal(format!("CommitLog read at {} failed: {e}", unit.position)))?;
    StoredMessage::decode(raw)
        .map(Some)
        .map_err(|e| ApiError::internal(format!("stored message at {} is corrupt: {e}", unit.position)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_filters() {
        assert!(matches!(TagFilter::parse("*").unwrap(), TagFilter::All));
        let f = TagFilter::parse("a || b").unwrap();
        assert!(f.matches(Some("a")) && f.matches(Some("b")) && !f.matches(Some("c")) && !f.matches(None));
        assert!(TagFilter::parse("a||").is_err());
    }
}
