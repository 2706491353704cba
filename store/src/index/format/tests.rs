//! The format is on disk: these pin it byte for byte, so a change is a deliberate one.

use super::*;

#[test]
fn an_entry_is_40_little_endian_bytes_with_a_crc() {
    let e = Entry { hash: 0x0102_0304_0506_0708, position: 0x1122, timestamp: -2, record: 7, message: 3, prev: 9 };
    let mut b = Vec::new();
    e.encode_into(&mut b);
    assert_eq!(b.len(), ENTRY_LEN);
    assert_eq!(&b[..8], &[8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(&b[8..16], &[0x22, 0x11, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&b[16..24], &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(&b[24..36], &[7, 0, 0, 0, 3, 0, 0, 0, 9, 0, 0, 0]);
    assert_eq!(get_u32(&b, 36), crc32c(&b[..36]));
    assert_eq!(Entry::decode(&b), Some(e));
    for i in 0..ENTRY_LEN {
        let mut torn = b.clone();
        torn[i] ^= 0x40;
        assert_eq!(Entry::decode(&torn), None, "a flipped byte {i} is caught");
    }
    assert_eq!(Entry::decode(&[0; ENTRY_LEN]), None, "an unwritten (zero) entry is not valid");
}

#[test]
fn header_and_meta_round_trip_at_their_documented_offsets() {
    let stats = Stats { entries: 5, messages: 2, heap_len: 300, min_ts: -1, max_ts: 99 };
    let h = Header { seq: 42, geo: Geometry { slots: 8, capacity: 16 }, sealed: true, stats };
    let b = h.encode();
    assert_eq!(&b[..8], b"RMQIDX01");
    assert_eq!((get_u64(&b, 8), get_u32(&b, 16), get_u32(&b, 20), get_u32(&b, 24)), (42, 8, 16, 1));
    assert_eq!((get_u32(&b, 28), get_u32(&b, 32), get_u32(&b, 36), get_u32(&b, 40)), (5, 2, 300, 0));
    assert_eq!((get_u64(&b, 44) as i64, get_u64(&b, 52) as i64), (-1, 99));
    assert_eq!(Header::decode(&b), Some(h));
    let mut bad = b;
    bad[30] ^= 1;
    assert_eq!(Header::decode(&bad), None);

    let m =
        Meta { watermark: Some(7), max_position: None, removed_below: 1000, base_seq: 3, active_seq: 4, active: stats };
    let b = m.encode();
    assert_eq!(&b[..8], b"RMQIMETA");
    assert_eq!((get_u32(&b, 8), get_u64(&b, 16), get_u64(&b, 32)), (1, 7, 1000));
    assert_eq!((get_u64(&b, 40), get_u64(&b, 48), get_u32(&b, 56), get_u64(&b, 72) as i64), (3, 4, 5, -1));
    assert_eq!(Meta::decode(&b), Some(m));
    assert_eq!(Meta::decode(&Meta::default().encode()), Some(Meta::default()));
    assert_eq!(Meta::decode(&b[..META_LEN - 1]), None);
}

#[test]
fn geometry_places_slots_entries_and_heap() {
    let g = Geometry { slots: 8, capacity: 16 };
    assert_eq!(g.slot_offset(0), 64);
    assert_eq!(g.entry_offset(1), 64 + 32);
    assert_eq!(g.entry_offset(2), 64 + 32 + 40);
    assert_eq!(g.heap_start(), 64 + 32 + 16 * 40);
    assert!((0..1000u64).all(|h| g.slot_of(h) < 8));
}

#[test]
fn the_hash_is_pinned_and_separates_domains_and_parts() {
    // Golden values (also computed by an independent Python transcription of the doc comment):
    // on disk, so they must never change.
    assert_eq!(hash(ID, "", "ID-A"), 0x6f1c_0b7d_5108_c04a);
    assert_eq!(hash(KEY, "orders", "user-7"), 0x179f_6793_b368_170e);
    assert_ne!(hash(ID, "", "k"), hash(KEY, "", "k"));
    assert_ne!(hash(KEY, "ab", "c"), hash(KEY, "a", "bc"));
    assert_ne!(hash(KEY, "t", "12345678"), hash(KEY, "t", "12345678\0"));
    assert_ne!(hash(ID, "", ""), hash(ID, "", "\0"));
}
