use super::*;

fn entry() -> IndexEntry {
    IndexEntry {
        topic: "%RETRY%g".into(),
        message_id: "ABCD".into(),
        keys: vec!["k1".into(), String::new(), "k 2".into()],
        position: 77,
        size: 300,
        store_timestamp_ms: -3,
        queue_id: 5,
        queue_offset: 9,
    }
}

#[test]
fn hit_values_round_trip() {
    let e = entry();
    let by_id = decode_hit(77, &encode_hit(&e, &e.topic), None, Some("ABCD")).expect("decodes");
    let by_key =
        decode_hit(77, &encode_hit(&e, &e.message_id), Some("%RETRY%g"), None).expect("decodes");
    assert_eq!(by_id, by_key);
    assert_eq!(by_id.topic, "%RETRY%g");
    assert_eq!(by_id.message_id, "ABCD");
    assert_eq!(
        (
            by_id.queue_id,
            by_id.queue_offset,
            by_id.size,
            by_id.store_timestamp_ms
        ),
        (5, 9, 300, -3)
    );
    assert!(decode_hit(77, &encode_hit(&e, "x")[..20], None, None).is_err());
}

#[test]
fn journal_round_trips_and_names_the_pointer_keys() {
    let e = entry();
    let bytes = encode_journal(std::iter::once(JournalRef::from(&e)));
    let back = decode_journal(77, &bytes).expect("decodes");
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].keys, e.keys);
    let written: Vec<Vec<u8>> = pointer_keys(&e.topic, &e.message_id, &e.keys, -3, 77)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(back[0].pointer_keys().collect::<Vec<_>>(), written);
    assert_eq!(written.len(), 3, "id + two non-empty keys");
    assert!(decode_journal(77, &bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn timestamps_order_like_signed_integers() {
    let p = || key_prefix("t", "k").expect("short");
    let keys: Vec<Vec<u8>> = [i64::MIN, -1, 0, 1, i64::MAX]
        .iter()
        .map(|&ts| with_ts_pos(p(), ts, 0))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn length_prefixes_keep_prefixes_apart() {
    let ab = key_prefix("t", "ab").expect("short");
    let abc = with_ts_pos(key_prefix("t", "abc").expect("short"), 0, 0);
    assert!(!abc.starts_with(&ab));
    assert_ne!(key_prefix("t", "abc"), key_prefix("ta", "bc"));
    let id = id_prefix("ID").expect("short");
    assert!(!with_pos(id_prefix("ID-2").expect("short"), 1).starts_with(&id));
    assert_eq!(trailing_position(&[1, 0, 0, 0, 0, 0, 0, 0, 9]), Some(9));
    assert_eq!(trailing_position(&[1, 2]), None);
}
