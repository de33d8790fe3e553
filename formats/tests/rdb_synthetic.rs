//! The RDB reader on files built here, for what the fixtures do not hold:
//! the old EXPIRETIME opcode, ZSET (type 3) string scores, 32/64-bit
//! lengths, STREAM_LISTPACKS (type 15), the VALKEY magic, refusals,
//! checksum handling, the AOF-preamble stop, DUMP payloads; and LZF output
//! checked by valkey-check-rdb when it is installed.

use ferrokey_formats::crc64::crc64;
use ferrokey_formats::lzf;
use ferrokey_formats::rdb::{
    decode_dump_payload, load_all_from, Checksum, DecodedObject, Encoding, Magic, RdbErrorKind, RdbItem, RdbReader,
    RdbValue, StreamId, StringEncoding,
};
use std::io::Read;

fn len(n: u64) -> Vec<u8> {
    if n < 64 {
        vec![n as u8]
    } else if n < 16384 {
        vec![0x40 | (n >> 8) as u8, n as u8]
    } else if n <= u32::MAX as u64 {
        let mut v = vec![0x80];
        v.extend_from_slice(&(n as u32).to_be_bytes());
        v
    } else {
        let mut v = vec![0x81];
        v.extend_from_slice(&n.to_be_bytes());
        v
    }
}

fn s(b: &[u8]) -> Vec<u8> {
    let mut v = len(b.len() as u64);
    v.extend_from_slice(b);
    v
}

fn lzf_string(b: &[u8]) -> Vec<u8> {
    let c = lzf::compress(b, b.len() - 4).expect("compressible");
    let mut v = vec![0xc3];
    v.extend(len(c.len() as u64));
    v.extend(len(b.len() as u64));
    v.extend(c);
    v
}

enum Lp<'a> {
    S(&'a [u8]),
    I(i64),
}

fn listpack(items: &[Lp]) -> Vec<u8> {
    let mut body = Vec::new();
    for it in items {
        let mut enc = Vec::new();
        match it {
            Lp::I(v) if (0..=127).contains(v) => enc.push(*v as u8),
            Lp::I(v) => {
                enc.push(0xf4);
                enc.extend_from_slice(&v.to_le_bytes());
            }
            Lp::S(b) => {
                assert!(b.len() < 64);
                enc.push(0x80 | b.len() as u8);
                enc.extend_from_slice(b);
            }
        }
        let l = enc.len();
        body.extend(enc);
        assert!(l <= 127);
        body.push(l as u8);
    }
    let mut lp = ((6 + body.len() + 1) as u32).to_le_bytes().to_vec();
    lp.extend_from_slice(&(items.len() as u16).to_le_bytes());
    lp.extend(body);
    lp.push(0xff);
    lp
}

fn header(version: u32) -> Vec<u8> {
    format!("REDIS{version:04}").into_bytes()
}

fn finish(mut b: Vec<u8>) -> Vec<u8> {
    b.push(0xff);
    let c = crc64(&b);
    b.extend_from_slice(&c.to_le_bytes());
    b
}

fn items(bytes: &[u8]) -> Vec<RdbItem> {
    RdbReader::new(bytes).collect::<Result<Vec<_>, _>>().expect("reads")
}

fn keys(bytes: &[u8]) -> Vec<ferrokey_formats::rdb::RdbKey> {
    items(bytes).into_iter().filter_map(|i| if let RdbItem::Key(k) = i { Some(k) } else { None }).collect()
}

#[test]
fn opcodes_lengths_and_string_encodings() {
    let mut b = header(11);
    b.push(250);
    b.extend(s(b"redis-ver"));
    b.extend(s(b"7.2.0"));
    b.push(254);
    b.extend(len(2));
    b.push(251);
    b.extend(len(3));
    b.extend(len(1));
    // EXPIRETIME in seconds
    b.push(253);
    b.extend_from_slice(&2_000_000_000i32.to_le_bytes());
    b.push(0);
    b.extend(s(b"secs"));
    b.extend(s(b"v"));
    // FREQ + IDLE, value stored with a 32-bit length, key with a 64-bit one
    b.push(249);
    b.push(7);
    b.push(248);
    b.extend(len(100_000));
    b.push(0);
    b.extend([0x81, 0, 0, 0, 0, 0, 0, 0, 3]);
    b.extend_from_slice(b"k64");
    b.extend([0x80, 0, 0, 0, 2]);
    b.extend_from_slice(b"vv");
    // LZF-compressed key name and value, INT16 value
    let long_key = vec![b'k'; 50];
    b.push(0);
    b.extend(lzf_string(&long_key));
    b.extend([0xc1, 0x39, 0x30]);
    // Redis 7.4 SLOT_INFO, FUNCTION2
    b.push(244);
    b.extend(len(5));
    b.extend(len(1));
    b.extend(len(0));
    b.push(245);
    b.extend(s(b"#!lua name=lib\nreturn 1"));
    let b = finish(b);
    let all = items(&b);
    assert_eq!(all[0], RdbItem::Header { magic: Magic::Redis, version: 11 });
    assert!(all.contains(&RdbItem::SelectDb { db: 2 }));
    assert!(all.contains(&RdbItem::ResizeDb { db_size: 3, expires_size: 1 }));
    assert!(all.contains(&RdbItem::SlotInfo { slot_id: 5, slot_size: 1, expires_slot_size: 0 }));
    assert!(all.contains(&RdbItem::Function { code: b"#!lua name=lib\nreturn 1".to_vec() }));
    assert!(matches!(all.last(), Some(RdbItem::Eof { checksum: Checksum::Verified(_) })));
    let ks = keys(&b);
    assert_eq!(ks.len(), 3);
    assert_eq!(ks[0].key, b"secs");
    assert_eq!(ks[0].expire_ms, Some(2_000_000_000_000));
    assert_eq!(ks[0].db, 2);
    assert_eq!((ks[0].lfu_freq, ks[0].lru_idle), (None, None));
    assert_eq!(ks[1].key, b"k64");
    assert_eq!(ks[1].value, RdbValue::String(b"vv".to_vec()));
    assert_eq!((ks[1].lfu_freq, ks[1].lru_idle, ks[1].expire_ms), (Some(7), Some(100_000), None));
    assert_eq!(ks[2].key, long_key);
    assert_eq!(ks[2].value, RdbValue::String(b"12345".to_vec()));
    assert_eq!(ks[2].encoding, Encoding::String(StringEncoding::Int));
}

fn zset3(scores: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut b = header(6);
    b.push(3);
    b.extend(s(b"z"));
    b.extend(len(scores.len() as u64));
    for (m, sc) in scores {
        b.extend(s(m));
        b.extend_from_slice(sc);
    }
    finish(b)
}

#[test]
fn zset_string_scores() {
    let b = zset3(&[
        (b"a", b"\x031.5"),
        (b"b", &[254]),
        (b"c", &[255]),
        (b"d", b"\x03inf"),
        (b"e", b"\x04-inf"),
        (b"f", b"\x051e-10"),
    ]);
    let k = keys(&b).remove(0);
    assert_eq!(k.encoding, Encoding::Skiplist);
    let RdbValue::SortedSet(v) = k.value else { panic!() };
    let scores: Vec<f64> = v.iter().map(|(_, s)| *s).collect();
    assert_eq!(scores, vec![1.5, f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY, 1e-10]);

    for nan in [&[253u8][..], b"\x03nan"] {
        let b = zset3(&[(b"a", nan)]);
        let e = load_all_from(RdbReader::new(&b[..])).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(&b"z"[..]), "{e}");
        assert!(e.to_string().contains("NaN"), "{e}");
    }
    let b = zset3(&[(b"a", b"\x011"), (b"a", b"\x012")]);
    assert!(load_all_from(RdbReader::new(&b[..])).is_err());
}

#[test]
fn stream_type_15() {
    let master = StreamId::new(1000, 0);
    let lp = listpack(&[
        Lp::I(2), // live
        Lp::I(1), // deleted
        Lp::I(1), // master fields
        Lp::S(b"f"),
        Lp::I(0),
        // 1000-0, same fields
        Lp::I(2),
        Lp::I(0),
        Lp::I(0),
        Lp::S(b"v1"),
        Lp::I(4),
        // 1000-1, deleted, same fields
        Lp::I(3),
        Lp::I(0),
        Lp::I(1),
        Lp::S(b"gone"),
        Lp::I(4),
        // 1001-0, own fields
        Lp::I(0),
        Lp::I(1),
        Lp::I(0),
        Lp::I(2),
        Lp::S(b"x"),
        Lp::S(b"1"),
        Lp::S(b"y"),
        Lp::S(b"2"),
        Lp::I(8),
    ]);
    let mut b = header(9);
    b.push(15);
    b.extend(s(b"st"));
    b.extend(len(1));
    b.extend(s(&master.to_be_bytes()));
    b.extend(s(&lp));
    b.extend(len(2)); // length
    b.extend(len(1001));
    b.extend(len(0)); // last id
    b.extend(len(1)); // groups
    b.extend(s(b"g"));
    b.extend(len(1000));
    b.extend(len(0)); // last delivered = first entry
    b.extend(len(1)); // PEL
    b.extend_from_slice(&StreamId::new(1000, 0).to_be_bytes());
    b.extend_from_slice(&77i64.to_le_bytes());
    b.extend(len(3));
    b.extend(len(1)); // consumers
    b.extend(s(b"c"));
    b.extend_from_slice(&55i64.to_le_bytes());
    b.extend(len(1));
    b.extend_from_slice(&StreamId::new(1000, 0).to_be_bytes());
    let b = finish(b);
    let k = keys(&b).remove(0);
    let RdbValue::Stream(st) = k.value else { panic!() };
    assert_eq!(st.entries.len(), 2);
    assert_eq!(st.entries[0].id, StreamId::new(1000, 0));
    assert_eq!(st.entries[0].fields, vec![(b"f".to_vec(), b"v1".to_vec())]);
    assert_eq!(st.entries[1].id, StreamId::new(1001, 0));
    assert_eq!(st.entries[1].fields, vec![(b"x".to_vec(), b"1".to_vec()), (b"y".to_vec(), b"2".to_vec())]);
    assert_eq!(st.first_id, StreamId::new(1000, 0));
    assert_eq!(st.entries_added, 2);
    assert_eq!(st.max_deleted_id, StreamId::ZERO);
    let g = &st.groups[0];
    assert_eq!(g.entries_read, Some(1));
    assert_eq!(g.pending[0].consumer, b"c");
    assert_eq!((g.pending[0].delivery_time_ms, g.pending[0].delivery_count), (77, 3));
    assert_eq!((g.consumers[0].seen_time_ms, g.consumers[0].active_time_ms), (55, 55));
    assert_eq!(g.consumers[0].pending, vec![StreamId::new(1000, 0)]);
}

#[test]
fn valkey_magic() {
    let mut b = b"VALKEY080".to_vec();
    b.push(0);
    b.extend(s(b"k"));
    b.extend(s(b"v"));
    let b = finish(b);
    let all = items(&b);
    assert_eq!(all[0], RdbItem::Header { magic: Magic::Valkey, version: 80 });
    assert!(matches!(all.last(), Some(RdbItem::Eof { checksum: Checksum::Verified(_) })));
}

#[test]
fn refusals() {
    // module aux
    let mut b = header(11);
    b.push(247);
    b.extend(len(0x1234_5678_9abc_de00));
    let e = load_all_from(RdbReader::new(&finish(b)[..])).unwrap_err();
    assert!(matches!(e.kind, RdbErrorKind::Unsupported(_)), "{e}");
    // module value: refused naming the key
    let mut b = header(11);
    b.push(7);
    b.extend(s(b"mod"));
    b.extend(len(1));
    let e = load_all_from(RdbReader::new(&finish(b)[..])).unwrap_err();
    assert!(matches!(e.kind, RdbErrorKind::UnsupportedType { rdb_type: 7, .. }), "{e}");
    assert_eq!(e.key.as_deref(), Some(&b"mod"[..]));
    assert_eq!(e.offset, 9);
    // pre-GA functions
    let mut b = header(10);
    b.push(246);
    assert!(load_all_from(RdbReader::new(&finish(b)[..])).is_err());
    // unknown opcode
    let mut b = header(10);
    b.push(200);
    let e = load_all_from(RdbReader::new(&finish(b)[..])).unwrap_err();
    assert!(matches!(e.kind, RdbErrorKind::UnknownType(200)), "{e}");
    // versions
    for h in [&b"REDIS0013"[..], b"REDIS0000", b"REDIX0011", b"REDIS00a1"] {
        let mut b = h.to_vec();
        b.push(255);
        assert!(load_all_from(RdbReader::new(&b[..])).is_err());
    }
    // duplicate set member
    let mut b = header(11);
    b.push(2);
    b.extend(s(b"set"));
    b.extend(len(2));
    b.extend(s(b"m"));
    b.extend(s(b"m"));
    let e = load_all_from(RdbReader::new(&finish(b)[..])).unwrap_err();
    assert!(e.to_string().contains("duplicate"), "{e}");
    // a length that claims far more than the file holds
    let mut b = header(11);
    b.push(0);
    b.extend(s(b"k"));
    b.extend([0x81, 0, 0, 1, 0, 0, 0, 0, 0]);
    b.extend_from_slice(b"abc");
    let e = load_all_from(RdbReader::new(&b[..])).unwrap_err();
    assert!(e.is_truncation(), "{e}");
    assert_eq!(e.offset, b.len() as u64);
    // an LZF string claiming an impossible expansion
    let mut b = header(11);
    b.push(0);
    b.extend(s(b"k"));
    b.push(0xc3);
    b.extend(len(2));
    b.extend([0x81, 0, 0, 0, 0x10, 0, 0, 0, 0]);
    b.extend([0, b'a']);
    let e = load_all_from(RdbReader::new(&finish(b)[..])).unwrap_err();
    assert!(matches!(e.kind, RdbErrorKind::Corrupt(_)), "{e}");
}

#[test]
fn checksums() {
    let mut b = header(11);
    b.push(0);
    b.extend(s(b"k"));
    b.extend(s(b"v"));
    let good = finish(b.clone());
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    let e = load_all_from(RdbReader::new(&bad[..])).unwrap_err();
    assert!(matches!(e.kind, RdbErrorKind::ChecksumMismatch { .. }), "{e}");
    assert_eq!(e.offset, (n - 8) as u64);
    let opts = ferrokey_formats::rdb::ReaderOptions { verify_checksum: false };
    let f = load_all_from(RdbReader::with_options(&bad[..], opts)).unwrap();
    assert!(matches!(f.checksum, Checksum::NotChecked(_)));
    // zero footer: not checked
    let mut zero = b.clone();
    zero.push(255);
    zero.extend([0u8; 8]);
    assert_eq!(load_all_from(RdbReader::new(&zero[..])).unwrap().checksum, Checksum::Disabled);
    // version 4: no footer at all
    let mut old = header(4);
    old.push(0);
    old.extend(s(b"k"));
    old.extend(s(b"v"));
    old.push(255);
    assert_eq!(load_all_from(RdbReader::new(&old[..])).unwrap().checksum, Checksum::Absent);
}

#[test]
fn stops_after_footer_for_aof_preamble() {
    let mut b = header(11);
    b.push(250);
    b.extend(s(b"aof-base"));
    b.extend(s(b"1"));
    let mut file = finish(b);
    let tail = b"*1\r\n$4\r\nPING\r\n";
    file.extend_from_slice(tail);
    let mut r = RdbReader::new(std::io::BufReader::with_capacity(4, &file[..]));
    while let Some(item) = r.next_item().unwrap() {
        if matches!(item, RdbItem::Eof { .. }) {
            break;
        }
    }
    assert_eq!(r.offset() as usize, file.len() - tail.len());
    let mut rest = Vec::new();
    r.into_inner().read_to_end(&mut rest).unwrap();
    assert_eq!(rest, tail);
    // load_all refuses the trailing bytes
    assert!(load_all_from(RdbReader::new(&file[..])).is_err());
}

#[test]
fn dump_payloads() {
    let mut p = vec![0u8];
    p.extend(s(b"hello"));
    p.extend_from_slice(&11u16.to_le_bytes());
    let c = crc64(&p);
    p.extend_from_slice(&c.to_le_bytes());
    let d = decode_dump_payload(&p, true).unwrap();
    assert_eq!(d.rdb_type, 0);
    assert_eq!(d.rdb_version, 11);
    assert!(matches!(d.object, DecodedObject::Value { value: RdbValue::String(ref v), .. } if v == b"hello"));
    let mut bad = p.clone();
    bad[2] ^= 1;
    assert!(decode_dump_payload(&bad, true).is_err());
    let mut newer = p.clone();
    let n = newer.len();
    newer[n - 10] = 12;
    assert!(decode_dump_payload(&newer, false).is_err());
}

/// Our LZF output and CRC, checked by Valkey's own tool when installed.
#[test]
fn valkey_check_rdb_accepts_our_lzf() {
    let tool = ["valkey-check-rdb", "/usr/local/bin/valkey-check-rdb", "/usr/bin/valkey-check-rdb"]
        .into_iter()
        .find(|t| std::process::Command::new(t).arg("--help").output().is_ok());
    let mut b = header(11);
    b.push(254);
    b.extend(len(0));
    let mut x: u32 = 7;
    let mut samples: Vec<Vec<u8>> =
        vec![vec![b'a'; 21], vec![0u8; 100_000], b"abcabcabcabcabcabcabcabcabcabc".repeat(200)];
    let mut mixed = Vec::new();
    for i in 0..20_000u32 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        mixed.push(if i % 3 == 0 { (x % 4) as u8 } else { b'q' });
    }
    samples.push(mixed);
    for (i, v) in samples.iter().enumerate() {
        b.push(0);
        b.extend(s(format!("lzf:{i}").as_bytes()));
        b.extend(lzf_string(v));
    }
    let file = finish(b);
    // Our reader reads back what we wrote.
    let ks = keys(&file);
    for (k, v) in ks.iter().zip(&samples) {
        assert_eq!(k.value, RdbValue::String(v.clone()));
        assert_eq!(k.encoding, Encoding::String(StringEncoding::Lzf));
    }
    let Some(tool) = tool else {
        println!("NOTICE: valkey-check-rdb not installed; skipping the cross-check");
        return;
    };
    let dir = std::env::temp_dir().join(format!("ferrokey-lzf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lzf.rdb");
    std::fs::write(&path, &file).unwrap();
    let out = std::process::Command::new(tool).arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success() && text.contains("RDB looks OK"), "valkey-check-rdb said:\n{text}");
}
