//! `RdbReader::next_load_item`, the loader's reader: compact collections
//! come back as the listpack / intset bytes the file holds, checked enough
//! to be used as they are. It must agree with `next_item` on every fixture,
//! refuse what a server could not safely adopt, and never panic on damaged
//! input.

mod common;

use ferrokey_formats::crc64::crc64;
use ferrokey_formats::listpack::{Item, Listpack};
use ferrokey_formats::rdb::packed::parse_stored_score;
use ferrokey_formats::rdb::{
    rdb_type, CompactListNode, CompactValue, IntsetMembers, LoadItem, LoadValue, RdbError, RdbItem, RdbReader, RdbValue,
};

/// A compact value as the element-by-element reader describes it.
fn decoded(value: &CompactValue) -> RdbValue {
    let entries = |lp: &Listpack| -> Vec<Vec<u8>> { lp.iter().map(|(_, e)| e.to_vec()).collect() };
    let pairs = |lp: &Listpack| -> Vec<(Vec<u8>, Vec<u8>)> {
        let all = entries(lp);
        all.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect()
    };
    match value {
        CompactValue::List(nodes) => RdbValue::List(
            nodes
                .iter()
                .flat_map(|n| match n {
                    CompactListNode::Packed(lp) => entries(lp),
                    CompactListNode::Plain(e) => vec![e.clone()],
                })
                .collect(),
        ),
        CompactValue::SetIntset(members) => {
            RdbValue::Set(members.to_i64().iter().map(|v| v.to_string().into_bytes()).collect())
        }
        CompactValue::SetListpack(lp) => RdbValue::Set(entries(lp)),
        CompactValue::ZSetListpack(lp) => RdbValue::SortedSet(
            pairs(lp).into_iter().map(|(m, s)| (m, parse_stored_score(&s).expect("checked score"))).collect(),
        ),
        CompactValue::HashListpack(lp) => RdbValue::Hash(pairs(lp)),
    }
}

/// Every item of a file through `next_load_item`, keys turned back into
/// decoded ones; or the error.
fn load_items(bytes: &[u8]) -> Result<Vec<RdbItem>, RdbError> {
    let mut reader = RdbReader::new(bytes);
    let mut out = Vec::new();
    while let Some(item) = reader.next_load_item()? {
        out.push(match item {
            LoadItem::Item(item) => {
                assert!(!matches!(item, RdbItem::Key(_)), "a key came as a plain item");
                item
            }
            LoadItem::Key(k) => RdbItem::Key(k.map_value(|v| match v {
                LoadValue::Decoded(v) => v,
                LoadValue::Compact(c) => decoded(&c),
            })),
        });
    }
    Ok(out)
}

fn decoded_items(bytes: &[u8]) -> Result<Vec<RdbItem>, RdbError> {
    RdbReader::new(bytes).collect()
}

#[test]
fn agrees_with_the_item_reader_on_every_fixture() {
    let Some(root) = common::fixtures_root() else {
        eprintln!("skipped: no fixtures");
        return;
    };
    let files = common::rdb_files(&root);
    assert!(files.len() > 20, "too few fixtures under {}", root.display());
    let mut compact_keys = 0;
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        match (decoded_items(&bytes), load_items(&bytes)) {
            (Ok(want), Ok(got)) => assert_eq!(want, got, "{}", path.display()),
            (Err(_), Err(_)) => {}
            (want, got) => panic!("{}: item reader {:?}, load reader {:?}", path.display(), want.err(), got.err()),
        }
        let mut reader = RdbReader::new(&bytes[..]);
        while let Ok(Some(item)) = reader.next_load_item() {
            if matches!(item, LoadItem::Key(ref k) if matches!(k.value, LoadValue::Compact(_))) {
                compact_keys += 1;
            }
        }
    }
    assert!(compact_keys > 100, "only {compact_keys} compact values among the fixtures");
}

// ---------------------------------------------------------------------------
// Files built here
// ---------------------------------------------------------------------------

/// A listpack entry written by hand (so that a string can hold digits).
enum E<'a> {
    S(&'a [u8]),
    I(i64),
}

fn listpack_bytes(entries: &[E]) -> Vec<u8> {
    let mut body = Vec::new();
    for e in entries {
        let mut enc = Vec::new();
        match e {
            E::I(v) if (0..=127).contains(v) => enc.push(*v as u8),
            E::I(v) => {
                enc.push(0xf4);
                enc.extend_from_slice(&v.to_le_bytes());
            }
            E::S(b) => {
                assert!(b.len() < 64);
                enc.push(0x80 | b.len() as u8);
                enc.extend_from_slice(b);
            }
        }
        let l = enc.len();
        body.extend(enc);
        body.push(l as u8);
    }
    let mut lp = ((6 + body.len() + 1) as u32).to_le_bytes().to_vec();
    lp.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    lp.extend(body);
    lp.push(0xff);
    lp
}

fn string(b: &[u8]) -> Vec<u8> {
    assert!(b.len() < 16384);
    let mut v = if b.len() < 64 { vec![b.len() as u8] } else { vec![0x40 | (b.len() >> 8) as u8, b.len() as u8] };
    v.extend_from_slice(b);
    v
}

/// A version 11 file holding one key of type `t` whose value is `value`
/// (already encoded).
fn file_with(t: u8, value: &[u8]) -> Vec<u8> {
    let mut b = b"REDIS0011".to_vec();
    b.extend([0xfe, 0]);
    b.push(t);
    b.extend(string(b"k"));
    b.extend_from_slice(value);
    b.push(0xff);
    let c = crc64(&b);
    b.extend_from_slice(&c.to_le_bytes());
    b
}

/// The one key's compact value of a file built by [`file_with`].
fn load_one(bytes: &[u8]) -> Result<Option<CompactValue>, RdbError> {
    let mut reader = RdbReader::new(bytes);
    let mut found = None;
    while let Some(item) = reader.next_load_item()? {
        if let LoadItem::Key(k) = item {
            match k.value {
                LoadValue::Compact(c) => found = Some(c),
                LoadValue::Decoded(v) => panic!("decoded instead of kept: {v:?}"),
            }
        }
    }
    Ok(found)
}

fn refusal(t: u8, value: &[u8]) -> String {
    match load_one(&file_with(t, value)) {
        Ok(v) => panic!("accepted: {v:?}"),
        Err(e) => {
            assert_eq!(e.key.as_deref(), Some(&b"k"[..]), "{e}");
            e.to_string()
        }
    }
}

fn intset_bytes(width: u32, values: &[i64]) -> Vec<u8> {
    let mut b = width.to_le_bytes().to_vec();
    b.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for v in values {
        b.extend_from_slice(&v.to_le_bytes()[..width as usize]);
    }
    b
}

#[test]
fn compact_values_are_kept_as_the_file_stores_them() {
    let hash = listpack_bytes(&[E::S(b"f"), E::S(b"v"), E::S(b"n"), E::I(7)]);
    match load_one(&file_with(rdb_type::HASH_LISTPACK, &string(&hash))).unwrap() {
        Some(CompactValue::HashListpack(lp)) => assert_eq!(lp.as_bytes(), &hash[..]),
        other => panic!("{other:?}"),
    }
    let set = listpack_bytes(&[E::S(b"a"), E::I(5), E::S(b"5x")]);
    match load_one(&file_with(rdb_type::SET_LISTPACK, &string(&set))).unwrap() {
        Some(CompactValue::SetListpack(lp)) => assert_eq!(lp.as_bytes(), &set[..]),
        other => panic!("{other:?}"),
    }
    let zset = listpack_bytes(&[E::S(b"a"), E::I(1), E::S(b"b"), E::S(b"2.5")]);
    match load_one(&file_with(rdb_type::ZSET_LISTPACK, &string(&zset))).unwrap() {
        Some(CompactValue::ZSetListpack(lp)) => assert_eq!(lp.as_bytes(), &zset[..]),
        other => panic!("{other:?}"),
    }
    for (width, values) in [(2u32, vec![-3i64, 0, 9]), (4, vec![1, 70000]), (8, vec![-(1 << 40), 5])] {
        match load_one(&file_with(rdb_type::SET_INTSET, &string(&intset_bytes(width, &values)))).unwrap() {
            Some(CompactValue::SetIntset(members)) => {
                assert_eq!(members.width() as u32, width);
                assert_eq!(members.to_i64(), values);
            }
            other => panic!("{other:?}"),
        }
    }
    let narrow = intset_bytes(2, &[1, 2]);
    assert!(matches!(
        load_one(&file_with(rdb_type::SET_INTSET, &string(&narrow))).unwrap(),
        Some(CompactValue::SetIntset(IntsetMembers::I16(v))) if v == [1, 2]
    ));
    // A quicklist: a packed node, an empty one (dropped), a plain one.
    let node = listpack_bytes(&[E::S(b"x"), E::I(3)]);
    let mut value = vec![3];
    for (container, data) in [(2u8, node.clone()), (2, listpack_bytes(&[])), (1, b"plain element".to_vec())] {
        value.push(container);
        value.extend(string(&data));
    }
    match load_one(&file_with(rdb_type::LIST_QUICKLIST_2, &value)).unwrap() {
        Some(CompactValue::List(nodes)) => assert_eq!(
            nodes,
            vec![
                CompactListNode::Packed(Listpack::from_bytes(node).unwrap()),
                CompactListNode::Plain(b"plain element".to_vec())
            ]
        ),
        other => panic!("{other:?}"),
    }
}

/// A member that is a decimal integer stored as a string entry (Valkey
/// writes it as an integer entry) is re-encoded, so that lookups, which
/// look for integer members as integer entries, find it.
#[test]
fn integer_members_stored_as_strings_are_re_encoded() {
    let cases = [
        (rdb_type::SET_LISTPACK, listpack_bytes(&[E::S(b"a"), E::S(b"12"), E::S(b"-7")])),
        (rdb_type::HASH_LISTPACK, listpack_bytes(&[E::S(b"7"), E::S(b"v"), E::S(b"f"), E::S(b"1")])),
        (rdb_type::ZSET_LISTPACK, listpack_bytes(&[E::S(b"300"), E::I(1)])),
    ];
    for (t, blob) in cases {
        let lp = match load_one(&file_with(t, &string(&blob))).unwrap() {
            Some(CompactValue::SetListpack(lp) | CompactValue::HashListpack(lp) | CompactValue::ZSetListpack(lp)) => lp,
            other => panic!("{other:?}"),
        };
        let written: Vec<Vec<u8>> = Listpack::from_bytes(blob).unwrap().iter().map(|(_, e)| e.to_vec()).collect();
        let kept: Vec<Vec<u8>> = lp.iter().map(|(_, e)| e.to_vec()).collect();
        assert_eq!(kept, written, "type {t}: the same elements");
        assert_eq!(lp, Listpack::from_items(written.iter().map(Vec::as_slice)), "type {t}: canonical entries");
        for member in [&b"12"[..], b"7", b"300"] {
            if written.iter().any(|w| w == member) {
                assert!(lp.find(member, if t == rdb_type::SET_LISTPACK { 1 } else { 2 }).is_some(), "type {t}");
            }
        }
    }
    // Strings that only look like integers stay as they are.
    let blob = listpack_bytes(&[E::S(b"012"), E::S(b"-0"), E::S(b"1.5"), E::S(b"99999999999999999999")]);
    match load_one(&file_with(rdb_type::SET_LISTPACK, &string(&blob))).unwrap() {
        Some(CompactValue::SetListpack(lp)) => assert_eq!(lp.as_bytes(), &blob[..]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn empty_collections_are_empty_keys() {
    let empty = string(&listpack_bytes(&[]));
    for t in [rdb_type::HASH_LISTPACK, rdb_type::SET_LISTPACK, rdb_type::ZSET_LISTPACK] {
        let bytes = file_with(t, &empty);
        let items: Vec<LoadItem> = {
            let mut reader = RdbReader::new(&bytes[..]);
            std::iter::from_fn(|| reader.next_load_item().unwrap()).collect()
        };
        assert!(items.iter().any(|i| matches!(i, LoadItem::Item(RdbItem::EmptyKey(k)) if k.key == b"k")), "type {t}");
    }
    let mut value = vec![1, 2];
    value.extend(string(&listpack_bytes(&[])));
    assert!(load_one(&file_with(rdb_type::LIST_QUICKLIST_2, &value)).unwrap().is_none());
}

#[test]
fn damaged_listpacks_are_refused() {
    let good = listpack_bytes(&[E::S(b"f"), E::S(b"v")]);
    let mut wrong_total = good.clone();
    wrong_total[0] += 1;
    let mut wrong_count = good.clone();
    wrong_count[4] = 3;
    let mut no_terminator = good.clone();
    *no_terminator.last_mut().unwrap() = 0x7f;
    let mut bad_backlen = good.clone();
    bad_backlen[6 + 2] = 9;
    let mut bad_encoding = good.clone();
    bad_encoding[6] = 0xf7;
    for (what, blob) in [
        ("wrong total", wrong_total),
        ("wrong count", wrong_count),
        ("no terminator", no_terminator),
        ("bad back-length", bad_backlen),
        ("bad encoding", bad_encoding),
        ("short", good[..5].to_vec()),
    ] {
        for t in [rdb_type::HASH_LISTPACK, rdb_type::SET_LISTPACK, rdb_type::ZSET_LISTPACK] {
            let e = refusal(t, &string(&blob));
            assert!(e.contains("listpack integrity check failed"), "{what}, type {t}: {e}");
        }
        let mut node = vec![1, 2];
        node.extend(string(&blob));
        let e = refusal(rdb_type::LIST_QUICKLIST_2, &node);
        assert!(e.contains("quicklist listpack integrity check failed"), "{what}: {e}");
    }
}

#[test]
fn what_a_server_could_not_use_is_refused() {
    let lp = |entries: &[E]| string(&listpack_bytes(entries));
    let cases: Vec<(u8, Vec<u8>, &str)> = vec![
        (rdb_type::SET_LISTPACK, lp(&[E::S(b"a"), E::S(b"a")]), "duplicate members"),
        // An integer entry is the same member as its decimal string.
        (rdb_type::SET_LISTPACK, lp(&[E::I(5), E::S(b"x"), E::S(b"5")]), "duplicate members"),
        (rdb_type::HASH_LISTPACK, lp(&[E::S(b"f"), E::S(b"1"), E::S(b"f"), E::S(b"2")]), "duplicate fields"),
        (rdb_type::HASH_LISTPACK, lp(&[E::S(b"f"), E::S(b"1"), E::S(b"g")]), "odd number"),
        (rdb_type::ZSET_LISTPACK, lp(&[E::S(b"m"), E::I(1), E::S(b"m"), E::I(2)]), "duplicate members"),
        (rdb_type::ZSET_LISTPACK, lp(&[E::I(12), E::I(1), E::S(b"12"), E::I(2)]), "duplicate members"),
        (rdb_type::ZSET_LISTPACK, lp(&[E::S(b"m"), E::S(b"nan")]), "NaN score"),
        (rdb_type::ZSET_LISTPACK, lp(&[E::S(b"m"), E::S(b"abc")]), "is not a number"),
        (rdb_type::ZSET_LISTPACK, lp(&[E::S(b"m")]), "odd number"),
        (rdb_type::SET_INTSET, string(&intset_bytes(2, &[3, 1])), "not strictly ascending"),
        (rdb_type::SET_INTSET, string(&intset_bytes(4, &[7, 7])), "not strictly ascending"),
        (rdb_type::SET_INTSET, string(&intset_bytes(2, &[])), "intset is empty"),
        (rdb_type::SET_INTSET, string(&intset_bytes(3, &[1])), "invalid element width"),
        (rdb_type::SET_INTSET, string(&intset_bytes(2, &[1, 2])[..11]), "does not fit"),
        (rdb_type::LIST_QUICKLIST_2, [vec![1, 3], lp(&[E::S(b"x")])].concat(), "unknown node container"),
        (rdb_type::LIST_QUICKLIST_2, vec![1, 2, 0], "quicklist node of zero bytes"),
    ];
    for (t, value, reason) in cases {
        let e = refusal(t, &value);
        assert!(e.contains(reason), "type {t}: expected {reason:?} in {e}");
    }
    // More entries than are compared pairwise: found by sorting.
    let many: Vec<Vec<u8>> = (0..40).map(|i| format!("m{i}").into_bytes()).collect();
    let mut entries: Vec<E> = many.iter().map(|m| E::S(m)).collect();
    assert!(load_one(&file_with(rdb_type::SET_LISTPACK, &lp(&entries))).is_ok());
    entries.push(E::S(b"m17"));
    assert!(refusal(rdb_type::SET_LISTPACK, &lp(&entries)).contains("duplicate members"));
    let mut entries: Vec<E> = (0..40).map(E::I).collect();
    entries.push(E::S(b"39"));
    assert!(refusal(rdb_type::SET_LISTPACK, &lp(&entries)).contains("duplicate members"));
}

/// Every truncation and every single-byte change of a file holding each
/// compact type is read without a panic (an error, or a value that passed
/// the checks), and a listpack that passes them walks in both directions.
#[test]
fn damaged_files_never_panic() {
    let mut b = b"REDIS0011".to_vec();
    b.extend([0xfe, 0]);
    let hash = listpack_bytes(&[E::S(b"field"), E::S(b"value"), E::S(b"n"), E::I(-300)]);
    let set = listpack_bytes(&[E::S(b"a"), E::I(1000)]);
    let zset = listpack_bytes(&[E::S(b"a"), E::I(1), E::S(b"b"), E::S(b"1.5")]);
    for (t, value) in [
        (rdb_type::HASH_LISTPACK, string(&hash)),
        (rdb_type::SET_LISTPACK, string(&set)),
        (rdb_type::ZSET_LISTPACK, string(&zset)),
        (rdb_type::SET_INTSET, string(&intset_bytes(4, &[-1, 2, 90000]))),
        (rdb_type::LIST_QUICKLIST_2, [vec![2, 2], string(&set), vec![1], string(b"big")].concat()),
    ] {
        b.push(t);
        b.extend(string(format!("key{t}").as_bytes()));
        b.extend(value);
    }
    b.push(0xff);
    let c = crc64(&b);
    b.extend_from_slice(&c.to_le_bytes());
    assert_eq!(load_items(&b).unwrap().len(), decoded_items(&b).unwrap().len());

    let walk = |bytes: &[u8]| {
        let mut reader = RdbReader::new(bytes);
        while let Ok(Some(item)) = reader.next_load_item() {
            let LoadItem::Key(k) = item else { continue };
            let lps: Vec<Listpack> = match k.value {
                LoadValue::Compact(CompactValue::HashListpack(lp))
                | LoadValue::Compact(CompactValue::SetListpack(lp))
                | LoadValue::Compact(CompactValue::ZSetListpack(lp)) => vec![lp],
                LoadValue::Compact(CompactValue::List(nodes)) => nodes
                    .into_iter()
                    .filter_map(|n| if let CompactListNode::Packed(lp) = n { Some(lp) } else { None })
                    .collect(),
                _ => Vec::new(),
            };
            for lp in lps {
                let forward: Vec<Item> = lp.iter().map(|(_, e)| e).collect();
                let mut backward: Vec<Item> = lp.iter_rev().map(|(_, e)| e).collect();
                backward.reverse();
                assert_eq!(forward, backward);
                assert_eq!(forward.len(), lp.len());
            }
        }
    };
    for n in 0..b.len() {
        walk(&b[..n]);
    }
    for i in 0..b.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = b.clone();
            bad[i] ^= flip;
            walk(&bad);
        }
    }
}
