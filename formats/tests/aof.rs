//! AOF formats: every AOF fixture (directories and the old single file)
//! reads completely, manifests round-trip, and synthetic damage is reported
//! as truncation or corruption at the right offset, never as a panic.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use ferrokey_formats::aof::check::{scan_tail, ScanEnd, ScanOptions};
use ferrokey_formats::aof::{
    base_file_name, encode_command, encode_timestamp, incr_file_name, manifest_file_name, read_all, read_file,
    temp_incr_file_name, temp_manifest_file_name, truncate_to, AofCommand, AofErrorKind, AofFileType, AofItem,
    AofReader, Manifest, ManifestErrorKind, ManifestSetError,
};
use ferrokey_formats::rdb::RdbItem;
use serde_json::Value;

/// The AOF fixtures folder: the shared one, else the repository's copy.
fn aof_root() -> PathBuf {
    let shared = common::fixtures_root().map(|r| r.join("aof")).filter(|p| p.is_dir());
    shared.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/aof"))
}

/// Every fixture: (path of the fixture, its expected JSON). Directories are
/// the ones holding `appendonlydir/`; files are old single-file AOFs.
fn fixtures() -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    let root = aof_root();
    for writer in fs::read_dir(&root).expect("aof fixtures folder") {
        let writer = writer.unwrap().path();
        if !writer.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&writer).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".expected.json") {
                continue;
            }
            let stem = name.strip_suffix(".aof").unwrap_or(&name);
            let expected = fs::read_to_string(writer.join(format!("{stem}.expected.json"))).expect("expected file");
            out.push((path, serde_json::from_str(&expected).unwrap()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 3, "too few AOF fixtures under {}", root.display());
    out
}

/// The offset Valkey truncated a fixture's last file at, from its load log.
fn truncation_offset(expected: &Value) -> Option<u64> {
    expected["load_log"].as_array()?.iter().find_map(|line| {
        let line = line.as_str()?;
        let rest = line.split(" at offset ").nth(1)?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn count_keys(items: &[RdbItem]) -> u64 {
    items.iter().filter(|i| matches!(i, RdbItem::Key(_) | RdbItem::EmptyKey(_))).count() as u64
}

/// Checks one file of a fixture against what the expected JSON says about it.
fn check_fixture_file(path: &Path, info: &Value, truncated_at: Option<u64>, problems: &mut Vec<String>) {
    let name = path.display();
    let bytes = fs::read(path).unwrap();
    if info["bytes"].as_u64() != Some(bytes.len() as u64) {
        problems.push(format!("{name}: size {} differs from the expected file", bytes.len()));
    }
    let hfe_preamble = info["rdb"]["types"]
        .as_object()
        .is_some_and(|t| t.keys().any(|k| k.starts_with("HASH_METADATA") || k.starts_with("HASH_LISTPACK_EX")));
    match (read_file(path), truncated_at) {
        (Ok(contents), None) => {
            let is_rdb = info["format"] == "rdb-preamble";
            if contents.preamble.is_some() != is_rdb {
                problems.push(format!("{name}: preamble found = {}", contents.preamble.is_some()));
            }
            if let Some(items) = &contents.preamble {
                let want: u64 = info["rdb"]["databases"]
                    .as_object()
                    .map(|dbs| dbs.values().filter_map(|d| d["keys"].as_u64()).sum())
                    .unwrap_or(0);
                if count_keys(items) != want {
                    problems.push(format!("{name}: {} keys in the preamble, expected {want}", count_keys(items)));
                }
            } else if contents.commands.is_empty() {
                problems.push(format!("{name}: no commands"));
            }
            let timestamps = contents.annotations.iter().filter(|a| a.timestamp().is_some()).count() as u64;
            if let Some(want) = info["timestamp_annotations"].as_u64() {
                if timestamps != want {
                    problems.push(format!("{name}: {timestamps} timestamps, expected {want}"));
                }
            }
            if contents.pending_multi.is_some() {
                problems.push(format!("{name}: ends inside a transaction"));
            }
            if let Some(last) = contents.commands.last() {
                if last.end != bytes.len() as u64 {
                    problems.push(format!("{name}: the last command ends at {}", last.end));
                }
            }
        }
        (Err(e), Some(offset)) if e.is_truncation() && e.valid_up_to == offset => {}
        // Redis 7.4's hash-field-expiry types are refused by the RDB reader
        // (for now): the preamble must fail saying so.
        (Err(e), None) if hfe_preamble && matches!(e.kind, AofErrorKind::Preamble(_)) => {
            if !e.reason().contains("hash-field expiry") {
                problems.push(format!("{name}: unexpected preamble error {e}"));
            }
        }
        (Ok(_), Some(offset)) => problems.push(format!("{name}: read whole, expected a truncation at {offset}")),
        (Err(e), _) => problems.push(format!("{name}: {e}")),
    }
}

#[test]
fn every_fixture_reads_completely() {
    let mut problems = Vec::new();
    let mut files_read = 0;
    for (path, expected) in fixtures() {
        if path.is_file() {
            // An old single-file AOF: RDB preamble, then commands.
            let contents = read_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let items = contents.preamble.expect("the historic AOF has a preamble");
            let keys: u64 = expected["key_counts"].as_object().unwrap().values().filter_map(Value::as_u64).sum();
            assert!(count_keys(&items) + contents.commands.len() as u64 >= keys, "{}", path.display());
            assert!(!contents.commands.is_empty());
            files_read += 1;
            continue;
        }
        let dir = path.join("appendonlydir");
        let manifest_path = dir.join("appendonly.aof.manifest");
        let text = fs::read(&manifest_path).unwrap();
        assert_eq!(expected["aof"]["manifest"].as_str().unwrap().as_bytes(), &text[..], "{}", path.display());
        let manifest = Manifest::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", manifest_path.display()));
        assert_eq!(manifest.to_bytes(), text, "{}: the manifest does not round-trip", path.display());
        let total = manifest.check_files(&dir).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let infos = expected["aof"]["files"].as_array().unwrap();
        let expected_total: u64 = infos.iter().filter_map(|f| f["bytes"].as_u64()).sum();
        assert_eq!(total, expected_total, "{}", path.display());
        let files: Vec<_> = manifest.files_to_load().collect();
        assert_eq!(files.len(), infos.len(), "{}", path.display());
        for (i, (file, info)) in files.iter().zip(infos).enumerate() {
            assert_eq!(info["file"].as_str().unwrap().as_bytes(), &file.file_name[..]);
            assert_eq!(info["seq"].as_i64(), Some(file.seq));
            assert_eq!(info["type"].as_str().unwrap().as_bytes()[0], file.file_type.letter());
            let last = i + 1 == files.len();
            let truncated_at = if last { truncation_offset(&expected) } else { None };
            check_fixture_file(&file.path_in(&dir), info, truncated_at, &mut problems);
            files_read += 1;
        }
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
    assert!(files_read >= 5);
}

/// A small AOF exercising every construct: a timestamp, SELECT, binary and
/// empty arguments, a transaction. Returns the bytes and the commands.
fn sample_aof() -> (Vec<u8>, Vec<Vec<Vec<u8>>>) {
    let commands: Vec<Vec<Vec<u8>>> = vec![
        vec![b"SELECT".to_vec(), b"0".to_vec()],
        vec![b"SET".to_vec(), b"k".to_vec(), b"v\r\n\x00\xff".to_vec()],
        vec![b"MULTI".to_vec()],
        vec![b"RPUSH".to_vec(), b"list".to_vec(), b"".to_vec(), b"*2\r\n$1".to_vec()],
        vec![b"INCR".to_vec(), b"n".to_vec()],
        vec![b"EXEC".to_vec()],
        vec![b"DEL".to_vec(), b"k".to_vec()],
    ];
    let mut out = Vec::new();
    encode_timestamp(&mut out, 1_700_000_000);
    for (i, c) in commands.iter().enumerate() {
        if i == 4 {
            encode_timestamp(&mut out, 1_700_000_001);
        }
        encode_command(&mut out, c);
    }
    (out, commands)
}

fn args_of(commands: &[AofCommand]) -> Vec<Vec<Vec<u8>>> {
    commands.iter().map(|c| c.args.clone()).collect()
}

#[test]
fn reads_commands_annotations_and_offsets() {
    let (bytes, commands) = sample_aof();
    let contents = read_all(&bytes[..]).unwrap();
    assert_eq!(args_of(&contents.commands), commands);
    let timestamps: Vec<_> = contents.annotations.iter().map(|a| a.timestamp()).collect();
    assert_eq!(timestamps, [Some(1_700_000_000), Some(1_700_000_001)]);
    assert_eq!(contents.annotations[0].offset, 0);
    assert_eq!(contents.commands[0].offset, 16);
    for pair in contents.commands.windows(2) {
        assert!(pair[0].end <= pair[1].offset);
    }
    assert_eq!(contents.commands.last().unwrap().end, bytes.len() as u64);
    assert_eq!(contents.pending_multi, None);
}

#[test]
fn truncation_at_every_offset() {
    let (bytes, commands) = sample_aof();
    let full = read_all(&bytes[..]).unwrap();
    let ends: Vec<u64> = full.commands.iter().map(|c| c.end).collect();
    let multi_at = full.commands[2].offset;
    let exec_end = full.commands[5].end;
    let annotation_ends: Vec<u64> = full
        .annotations
        .iter()
        .map(|a| {
            let i = a.offset as usize;
            (i + bytes[i..].iter().position(|&b| b == b'\n').unwrap() + 1) as u64
        })
        .collect();
    for cut in 0..=bytes.len() {
        let cut64 = cut as u64;
        let complete = ends.iter().filter(|&&e| e <= cut64).count();
        let last_end = if complete == 0 { 0 } else { ends[complete - 1] };
        let at_boundary = cut64 == last_end || annotation_ends.contains(&cut64) || cut == 0;
        match read_all(&bytes[..cut]) {
            Ok(contents) => {
                assert!(at_boundary, "cut {cut}: accepted a partial item");
                assert_eq!(args_of(&contents.commands), commands[..complete].to_vec(), "cut {cut}");
                let in_transaction = (multi_at + 1..exec_end).contains(&cut64) && complete >= 3;
                let want = if in_transaction { Some(full.commands[1].end) } else { None };
                assert_eq!(contents.pending_multi, want, "cut {cut}");
            }
            Err(e) => {
                assert!(!at_boundary, "cut {cut}: refused a clean cut: {e}");
                assert!(e.is_truncation(), "cut {cut}: {e}");
                assert_eq!(e.valid_up_to, last_end, "cut {cut}");
                assert_eq!(e.offset, cut64, "cut {cut}");
            }
        }
    }
}

#[test]
fn preamble_then_commands() {
    let path = aof_root().join("historic/rdb-preamble.aof");
    let bytes = fs::read(&path).unwrap();
    let mut reader = AofReader::new(&bytes[..]);
    assert_eq!(reader.next_item().unwrap(), Some(AofItem::RdbPreamble));
    let mut rdb = reader.into_rdb();
    let mut keys = 0;
    while let Some(item) = rdb.next_item().unwrap() {
        keys += matches!(item, RdbItem::Key(_)) as usize;
    }
    assert_eq!(keys, 2);
    let mut reader = AofReader::resume(rdb).unwrap();
    let rdb_end = reader.offset();
    assert_eq!(reader.valid_up_to(), rdb_end);
    let mut commands = 0;
    while let Some(item) = reader.next_item().unwrap() {
        let AofItem::Command(cmd) = item else { panic!("unexpected {item:?}") };
        assert!(cmd.offset >= rdb_end);
        commands += 1;
    }
    assert!(commands > 0);
    assert_eq!(reader.offset(), bytes.len() as u64);

    // Cut anywhere: inside the RDB part it is the RDB reader's error, after
    // it a command truncation that keeps the preamble. (Cut to nothing, it
    // is an empty file: nothing to load.)
    assert_eq!(read_all(&bytes[..0]).unwrap(), Default::default());
    for cut in 1..bytes.len() {
        let result = read_all(&bytes[..cut]);
        if (cut as u64) < rdb_end {
            let err = result.expect_err("a cut preamble is refused");
            match err.kind {
                AofErrorKind::Preamble(_) => {}
                // Too short to hold the magic: not an AOF at all.
                AofErrorKind::Corrupt(_) => assert!(cut < 6, "cut {cut}: {err}"),
                _ => panic!("cut {cut}: {err}"),
            }
        } else if let Err(e) = result {
            assert!(e.is_truncation(), "cut {cut}: {e}");
            assert!(e.valid_up_to >= rdb_end, "cut {cut}: would cut into the preamble");
        }
    }
}

#[test]
fn preamble_hand_over_is_checked() {
    let bytes = fs::read(aof_root().join("historic/rdb-preamble.aof")).unwrap();
    let mut reader = AofReader::new(&bytes[..]);
    assert_eq!(reader.next_item().unwrap(), Some(AofItem::RdbPreamble));
    let err = reader.next_item().unwrap_err();
    assert!(err.reason().contains("into_rdb"), "{err}");
    assert_eq!(reader.next_item().unwrap(), None);

    let mut reader = AofReader::new(&bytes[..]);
    reader.next_item().unwrap();
    let mut rdb = reader.into_rdb();
    rdb.next_item().unwrap();
    let err = AofReader::resume(rdb).err().expect("resuming before the RDB end is refused");
    assert!(err.reason().contains("not read to its end"), "{err}");

    // RDB magic only counts at offset 0.
    let mut late = Vec::new();
    encode_command(&mut late, &["PING"]);
    late.extend_from_slice(b"REDIS0011");
    let err = read_all(&late[..]).unwrap_err();
    assert!(matches!(err.kind, AofErrorKind::Corrupt(_)) && err.offset == 14, "{err}");
}

/// Replaces `from` (which must occur once) by `to` in the sample.
fn damaged(from: &[u8], to: &[u8]) -> Vec<u8> {
    let (bytes, _) = sample_aof();
    let at = bytes.windows(from.len()).position(|w| w == from).expect("pattern in the sample");
    [&bytes[..at], to, &bytes[at + from.len()..]].concat()
}

#[test]
fn corruption_is_located() {
    let (bytes, _) = sample_aof();
    let first_cmd = 16u64;
    let second_end = read_all(&bytes[..]).unwrap().commands[1].end;
    let cases: Vec<(Vec<u8>, u64, u64, &str)> = vec![
        // (file, offset of the problem, valid_up_to, words of the reason)
        (damaged(b"*2\r\n$6\r\nSELECT", b"x2\r\n$6\r\nSELECT"), first_cmd, 0, "expected '*'"),
        (damaged(b"*2\r\n$6\r\nSELECT", b"*2\r\n:6\r\nSELECT"), first_cmd + 4, 0, "expected '$'"),
        (damaged(b"*2\r\n$6\r\nSELECT", b"*2\r\n$x\r\nSELECT"), first_cmd + 4, 0, "invalid argument length"),
        (damaged(b"*2\r\n$6\r\nSELECT", b"*z\r\n$6\r\nSELECT"), first_cmd, 0, "invalid argument count"),
        (damaged(b"*2\r\n$6\r\nSELECT", b"*2\n\n$6\r\nSELECT"), first_cmd, 0, "invalid argument count"),
        (damaged(b"*2\r\n$6\r\nSELECT", b"*0\r\n$6\r\nSELECT"), first_cmd, 0, "at least one"),
        (damaged(b"*2\r\n$6\r\nSELECT", b"*2\r\n$-6\r\nSELECT"), first_cmd + 4, 0, "invalid argument length -6"),
        (damaged(b"SELECT\r\n", b"SELECTxx"), first_cmd + 14, 0, "expected \\r\\n"),
        (damaged(b"*1\r\n$5\r\nMULTI", b"*1\r\n$5\r\nMULTI!"), second_end + 13, second_end, "expected \\r\\n"),
        (damaged(b"#TS:1700000001", b"!TS:1700000001"), 0, 0, "expected '*'"),
    ];
    for (i, (file, offset, valid, words)) in cases.into_iter().enumerate() {
        let err = match read_all(&file[..]) {
            Ok(_) => panic!("case {i}: accepted"),
            Err(e) => e,
        };
        let AofErrorKind::Corrupt(reason) = &err.kind else { panic!("case {i}: {err}") };
        if i == 9 {
            // The second annotation is not at the start: find its offset.
            let at = file.iter().position(|&b| b == b'!').unwrap() as u64;
            assert_eq!(err.offset, at, "case {i}: {err}");
            assert_eq!(err.valid_up_to, read_all(&file[..at as usize]).unwrap().commands.last().unwrap().end);
        } else {
            assert_eq!((err.offset, err.valid_up_to), (offset, valid), "case {i}: {err}");
        }
        assert!(reason.contains(words), "case {i}: {reason}");
    }
}

#[test]
fn limits_and_lengths_are_not_trusted() {
    // A huge claimed length at the end is a truncation, read without
    // reserving the claimed size.
    let huge = b"*1\r\n$9223372036854775807\r\nabc".to_vec();
    let err = read_all(&huge[..]).unwrap_err();
    assert!(err.is_truncation() && err.valid_up_to == 0 && err.offset == huge.len() as u64, "{err}");
    let many = b"*2147483647\r\n$1\r\na\r\n".to_vec();
    assert!(read_all(&many[..]).unwrap_err().is_truncation());
    let too_many = b"*2147483648\r\n$1\r\na\r\n".to_vec();
    assert!(matches!(read_all(&too_many[..]).unwrap_err().kind, AofErrorKind::Corrupt(_)));
    let overflow = b"*1\r\n$92233720368547758070\r\n".to_vec();
    assert!(matches!(read_all(&overflow[..]).unwrap_err().kind, AofErrorKind::Corrupt(_)));
    let long_line = [b"*1", &[b'1'; 40][..]].concat();
    assert!(matches!(read_all(&long_line[..]).unwrap_err().kind, AofErrorKind::Corrupt(_)));

    // Annotations: up to 1023 bytes with the newline, as Valkey reads them.
    let mut ok = vec![b'#'];
    ok.extend(std::iter::repeat_n(b'a', 1020));
    ok.extend_from_slice(b"\r\n");
    assert_eq!(ok.len(), 1023);
    assert_eq!(read_all(&ok[..]).unwrap().annotations[0].text.len(), 1020);
    let long = [&ok[..1021], b"a\r\n"].concat();
    assert!(matches!(read_all(&long[..]).unwrap_err().kind, AofErrorKind::Corrupt(_)));
    // An annotation cut by the end of the file is a truncation.
    let cut = b"*1\r\n$4\r\nPING\r\n#TS:17".to_vec();
    let err = read_all(&cut[..]).unwrap_err();
    assert!(err.is_truncation() && err.valid_up_to == 14, "{err}");
    // Other annotations are skipped, and not timestamps.
    let other = read_all(&b"#note\n#TS:x\r\n#TS:-5\r\n"[..]).unwrap();
    let ts: Vec<_> = other.annotations.iter().map(|a| a.timestamp()).collect();
    assert_eq!(ts, [None, None, Some(-5)]);
    assert_eq!(other.annotations[0].text, b"note");
}

/// A tiny deterministic generator, so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn damage_never_panics_and_the_checker_agrees() {
    let (bytes, _) = sample_aof();
    let mut rng = Lcg(7);
    let interesting = [b'*', b'$', b'\r', b'\n', b'#', b'0', b'9', b'-', b' ', 0, 0xff];
    for round in 0..3000 {
        let mut file = bytes.clone();
        for _ in 0..1 + rng.next() % 3 {
            let at = (rng.next() as usize) % file.len();
            file[at] = if rng.next().is_multiple_of(2) {
                interesting[(rng.next() as usize) % interesting.len()]
            } else {
                rng.next() as u8
            };
        }
        let len = file.len() as u64;
        let result = read_all(&file[..]);
        let mut line = 1;
        let opts = ScanOptions { path: b"x.aof", to_timestamp: 0, last_file: true };
        let scan = scan_tail(&file[..], 0, &opts, &mut line).unwrap();
        assert_eq!(scan.end, ScanEnd::Read);
        match result {
            // What the reader accepts, valkey-check-aof accepts too.
            Ok(contents) if contents.pending_multi.is_none() => {
                assert_eq!((scan.ok_up_to, scan.error.is_none()), (len, true), "round {round}: {file:?}")
            }
            Ok(_) => assert!(scan.ok_up_to < len, "round {round}"),
            Err(e) => {
                assert!(e.offset <= len && e.valid_up_to <= e.offset, "round {round}: {e}");
                assert!(matches!(e.kind, AofErrorKind::Truncated | AofErrorKind::Corrupt(_)), "round {round}: {e}");
                // A truncated file cut at valid_up_to reads cleanly.
                if e.is_truncation() {
                    assert!(read_all(&file[..e.valid_up_to as usize]).is_ok(), "round {round}");
                }
            }
        }
    }
}

#[test]
fn manifest_round_trip_and_names() {
    let text = b"file appendonly.aof.3.base.rdb seq 3 type b\n\
                 file appendonly.aof.1.incr.aof seq 1 type h\n\
                 file appendonly.aof.4.incr.aof seq 4 type i\n\
                 file appendonly.aof.5.incr.aof seq 5 type i\n";
    let m = Manifest::parse(text).unwrap();
    assert_eq!((m.base_seq, m.incr_seq), (3, 5));
    assert_eq!(m.history.len(), 1);
    assert_eq!(m.to_bytes(), text);

    // Pairs in any order, keywords in any case, comments, extra pairs; the
    // writer puts them back in its order.
    let loose = b"# a comment\nseq 2 TYPE i FILE x.2.incr.aof future yes\ntype b file x.1.base.aof seq 1\n";
    let m = Manifest::parse(loose).unwrap();
    assert_eq!(m.to_bytes(), b"file x.1.base.aof seq 1 type b\nfile x.2.incr.aof seq 2 type i\n");

    // Names with spaces or odd bytes are written quoted and read back.
    let mut m = Manifest::default();
    m.incr.push(ferrokey_formats::aof::AofInfo {
        file_name: b"my aof\t\"1\".incr".to_vec(),
        seq: 1,
        file_type: AofFileType::Incr,
    });
    let written = m.to_bytes();
    assert_eq!(written, b"file \"my aof\\t\\\"1\\\".incr\" seq 1 type i\n");
    assert_eq!(Manifest::parse(&written).unwrap().incr[0].file_name, b"my aof\t\"1\".incr");

    assert_eq!(manifest_file_name("appendonly.aof"), b"appendonly.aof.manifest");
    assert_eq!(temp_manifest_file_name("appendonly.aof"), b"temp-appendonly.aof.manifest");
    assert_eq!(base_file_name("appendonly.aof", 2, true), b"appendonly.aof.2.base.rdb");
    assert_eq!(base_file_name("appendonly.aof", 2, false), b"appendonly.aof.2.base.aof");
    assert_eq!(incr_file_name("appendonly.aof", 7), b"appendonly.aof.7.incr.aof");
    assert_eq!(temp_incr_file_name("appendonly.aof"), b"temp-appendonly.aof.incr");
}

#[test]
fn manifest_evolves_like_valkeys() {
    // Start on an empty dataset: a base, then an incr file.
    let mut m = Manifest::default();
    assert_eq!(m.new_base("appendonly.aof", true).file_name, b"appendonly.aof.1.base.rdb");
    assert_eq!(m.last_incr_or_new("appendonly.aof").file_name, b"appendonly.aof.1.incr.aof");
    assert_eq!(m.last_incr_or_new("appendonly.aof").seq, 1);
    assert_eq!(
        m.to_bytes(),
        b"file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    );

    // A rewrite: a new incr file opens, the new base replaces the old one,
    // and what it covers becomes history (the open incr file stays).
    m.new_incr("appendonly.aof");
    m.new_base("appendonly.aof", false);
    m.mark_rewritten_incr_as_history(true);
    assert_eq!(
        String::from_utf8(m.to_bytes()).unwrap(),
        "file appendonly.aof.2.base.aof seq 2 type b\n\
         file appendonly.aof.1.incr.aof seq 1 type h\n\
         file appendonly.aof.1.base.rdb seq 1 type h\n\
         file appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    let history: Vec<_> = m.take_history().into_iter().map(|i| i.file_name).collect();
    assert_eq!(history, [b"appendonly.aof.1.incr.aof".to_vec(), b"appendonly.aof.1.base.rdb".to_vec()]);
    assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);

    // Upgrading an old single file.
    let old = Manifest::for_old_style_file("appendonly.aof");
    assert_eq!(old.to_bytes(), b"file appendonly.aof seq 1 type b\n");
    assert!(old.old_style_upgrade_needed("appendonly.aof", true, false));
    assert!(!old.old_style_upgrade_needed("appendonly.aof", true, true));
    assert!(Manifest::default().old_style_upgrade_needed("appendonly.aof", true, false));
    assert!(m.old_style_upgrade_needed("appendonly.aof", false, false));
    assert!(!m.old_style_upgrade_needed("appendonly.aof", true, false));
}

#[test]
fn bad_manifests_say_what_and_where() {
    /// A manifest, the line its error is on, and a test of the error.
    type Case = (&'static [u8], Option<usize>, fn(&ManifestErrorKind) -> bool);
    let cases: Vec<Case> = vec![
        (b"", None, |k| matches!(k, ManifestErrorKind::Empty)),
        (b"file a seq 1 type b", Some(1), |k| matches!(k, ManifestErrorKind::LineTooLong)),
        (b"file a seq 1 type b\n\n", Some(2), |k| matches!(k, ManifestErrorKind::InvalidFormat)),
        (b"file a seq 1\n", Some(1), |k| matches!(k, ManifestErrorKind::InvalidFormat)),
        (b"file a seq 1 type b x\n", Some(1), |k| matches!(k, ManifestErrorKind::InvalidFormat)),
        (b"file a seq 0 type b\n", Some(1), |k| matches!(k, ManifestErrorKind::InvalidFormat)),
        (b"file a seq x type b\n", Some(1), |k| matches!(k, ManifestErrorKind::InvalidFormat)),
        (b"file \"a seq 1 type b\n", Some(1), |k| matches!(k, ManifestErrorKind::InvalidFormat)),
        (b"name a seq 1 type b\n", Some(1), |k| matches!(k, ManifestErrorKind::InvalidFormat)),
        (b"file a seq 1 type \"\"\n", Some(1), |k| matches!(k, ManifestErrorKind::InvalidFormat)),
        (b"file d/a seq 1 type b\n", Some(1), |k| matches!(k, ManifestErrorKind::FileIsPath)),
        (b"file d\\\\a seq 1 type b\n", Some(1), |k| matches!(k, ManifestErrorKind::FileIsPath)),
        (b"# c\nfile a seq 1 type b\nfile b seq 2 type b\n", Some(3), |k| {
            matches!(k, ManifestErrorKind::DuplicateBase)
        }),
        (b"file a seq 2 type i\nfile b seq 2 type i\n", Some(2), |k| {
            matches!(k, ManifestErrorKind::NonMonotonicSeq { seq: 2, previous: 2 })
        }),
        (b"file a seq -1 type i\n", Some(1), |k| matches!(k, ManifestErrorKind::NonMonotonicSeq { .. })),
        (b"file a seq 1 type x\n", Some(1), |k| matches!(k, ManifestErrorKind::UnknownType(b'x'))),
        (b"file a seq 1 type b\x00\n", Some(1), |k| matches!(k, ManifestErrorKind::LineTooLong)),
    ];
    for (text, line, kind) in cases {
        let err = Manifest::parse(text).expect_err(&String::from_utf8_lossy(text));
        assert!(kind(&err.kind), "{:?}: {err}", String::from_utf8_lossy(text));
        assert_eq!(err.line.as_ref().map(|l| l.0), line, "{err}");
        let shown = err.to_string();
        if let Some(n) = line {
            assert!(shown.contains(&format!("line {n}")), "{shown}");
        }
    }
    // A line over 1024 bytes.
    let long = [b"file ", &[b'a'; 1100][..], b" seq 1 type b\n"].concat();
    assert!(matches!(Manifest::parse(&long).unwrap_err().kind, ManifestErrorKind::LineTooLong));
    // Only comments: nothing to load, but valid.
    assert!(Manifest::parse(b"# nothing\n").unwrap().is_empty());
    // Names and types keep what comes before a NUL, as in C.
    let m = Manifest::parse(b"file \"a\\x00b\" seq 1 type \"b\\x00\"\n").unwrap();
    assert_eq!(m.base.unwrap().file_name, b"a");
}

#[test]
fn manifest_files_are_checked_and_written() {
    let dir = std::env::temp_dir().join(format!("ferrokey-aof-test-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let mut m = Manifest::default();
    m.new_base("appendonly.aof", true);
    m.new_incr("appendonly.aof");
    match m.check_files(&dir) {
        Err(ManifestSetError::Missing(name)) => assert_eq!(name, "appendonly.aof.1.base.rdb"),
        other => panic!("{other:?}"),
    }
    fs::write(dir.join("appendonly.aof.1.base.rdb"), b"REDIS").unwrap();
    fs::write(dir.join("appendonly.aof.1.incr.aof"), b"*1\r\n$4\r\nPING\r\n").unwrap();
    assert_eq!(m.check_files(&dir).unwrap(), 19);
    m.incr.push(m.incr[0].clone());
    assert!(matches!(m.check_files(&dir), Err(ManifestSetError::Inconsistent(_))));
    m.incr.pop();

    m.write_to_dir(&dir, "appendonly.aof").unwrap();
    assert!(!dir.join("temp-appendonly.aof.manifest").exists());
    assert_eq!(Manifest::load(dir.join("appendonly.aof.manifest")).unwrap(), m);

    let incr = dir.join("appendonly.aof.1.incr.aof");
    truncate_to(&incr, 4).unwrap();
    assert_eq!(fs::read(&incr).unwrap(), b"*1\r\n");
    fs::remove_dir_all(&dir).unwrap();
}

/// A source that hands out at most `n` bytes per read.
struct Trickle<'a> {
    data: &'a [u8],
    n: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.n.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn big_arguments_and_short_reads() {
    let big: Vec<u8> = (0..200_003u32).map(|i| (i * 7) as u8).collect();
    let mut file = Vec::new();
    encode_command(&mut file, &[&b"SET"[..], b"big", &big]);
    encode_timestamp(&mut file, 5);
    encode_command(&mut file, &[&b"SET"[..], b"edge", &vec![b'e'; 65536][..]]);
    let (sample, commands) = sample_aof();
    file.extend_from_slice(&sample);
    for n in [1, 3, 4096, 1 << 20] {
        let contents = read_all(Trickle { data: &file, n }).unwrap();
        assert_eq!(contents.commands[0].args[2], big, "reads of {n}");
        assert_eq!(contents.commands[1].args[2].len(), 65536);
        assert_eq!(args_of(&contents.commands[2..]), commands);
        assert_eq!(contents.commands.last().unwrap().end, file.len() as u64);
    }
    // Cut inside the big argument: a truncation keeping nothing.
    let err = read_all(Trickle { data: &file[..100_000], n: 777 }).unwrap_err();
    assert!(err.is_truncation() && err.valid_up_to == 0 && err.offset == 100_000, "{err}");
}
