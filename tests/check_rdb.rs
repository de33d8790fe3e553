//! `ferrokey-check-rdb`: accepts every good fixture, rejects every bad one
//! with the offset and the reason, and accepts what ferrokey itself writes
//! (as does Valkey's own valkey-check-rdb).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fixtures_dir, Server};

/// Every fixture RDB file with whether it is marked `"expect": "error"`.
fn fixture_files() -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    let rdb = fixtures_dir("rdb").join("rdb");
    for dir in std::fs::read_dir(&rdb).expect("fixtures rdb folder") {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "rdb") {
                let expected = f.with_extension("expected.json");
                let text = std::fs::read_to_string(&expected).unwrap_or_default();
                out.push((f, text.contains("\"expect\": \"error\"")));
            }
        }
    }
    out.sort();
    assert!(out.len() > 20, "too few fixtures found under {}", rdb.display());
    out
}

fn check(path: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrokey-check-rdb")).arg(path).output().expect("run the checker");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What the checker should say about a fixture: files Valkey refuses,
/// Redis 7.4's hash-field-expiry types (which Valkey 8 cannot read), and
/// the empty collections of corrupt_empty_keys.rdb (which the server skips
/// but valkey-check-rdb rejects) fail; everything else passes.
fn should_pass(path: &Path, expect_error: bool) -> bool {
    let name = path.file_name().unwrap().to_string_lossy();
    !expect_error && !name.starts_with("hfe-") && name != "corrupt_empty_keys.rdb"
}

#[test]
fn every_fixture_gets_the_verdict_it_deserves() {
    let mut wrong = Vec::new();
    for (path, expect_error) in fixture_files() {
        let (code, out) = check(&path);
        let pass = should_pass(&path, expect_error);
        let verdict_ok = if pass {
            code == 0 && out.contains("\\o/ RDB looks OK! \\o/") && out.contains("keys read")
        } else {
            code == 1 && out.contains("--- RDB ERROR DETECTED ---") && out.contains("[offset ")
        };
        if !verdict_ok {
            wrong.push(format!("{} (exit {code}):\n{out}", path.display()));
        }
    }
    assert!(wrong.is_empty(), "{} wrong verdict(s):\n{}", wrong.len(), wrong.join("\n"));
}

#[test]
fn reports_version_aux_fields_and_counts() {
    let path = fixtures_dir("rdb").join("rdb/valkey-8.0.1/multidb.rdb");
    let (code, out) = check(&path);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("RDB version 11"), "{out}");
    assert!(out.contains("AUX FIELD valkey-ver = '8.0.1'"), "{out}");
    assert!(out.contains("Selecting DB ID 15"), "{out}");
    assert!(out.contains("Checksum OK"), "{out}");
    assert!(out.contains("[info] 58 keys read"), "{out}");
    assert!(out.contains("[info] db 15: 52 keys"), "{out}");
    assert!(out.contains("[info] type STRING: 54 keys"), "{out}");
}

#[test]
fn names_the_damage_of_the_corrupt_files() {
    let dir = fixtures_dir("rdb").join("rdb/historic");
    if !dir.is_dir() {
        eprintln!("skipped: no historic fixtures in {}", dir.display());
        return;
    }
    let (code, out) = check(&dir.join("corrupt_empty_keys.rdb"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("empty collection"), "{out}");
    assert!(out.contains("Reading key 'set'"), "{out}");
    let (code, out) = check(&dir.join("corrupt_ziplist.rdb"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[offset 488] hash ziplist integrity check failed"), "{out}");
    assert!(out.contains("Reading key 'key:000000000091'"), "{out}");
}

#[test]
fn truncation_flipped_bytes_and_trailing_garbage_are_errors() {
    let good = std::fs::read(fixtures_dir("rdb").join("rdb/valkey-8.0.1/hash-listpack.rdb")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.rdb");
    for cut in [5, 9, 30, good.len() / 2, good.len() - 9, good.len() - 1] {
        std::fs::write(&file, &good[..cut]).unwrap();
        let (code, out) = check(&file);
        assert_eq!(code, 1, "cut at {cut}: {out}");
        assert!(out.contains("RDB ERROR DETECTED"), "cut at {cut}: {out}");
    }
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    std::fs::write(&file, &flipped).unwrap();
    let (code, out) = check(&file);
    assert_eq!(code, 1, "{out}");
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"junk");
    std::fs::write(&file, &trailing).unwrap();
    let (code, out) = check(&file);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("after the end of the RDB data"), "{out}");
    let (code, _) = check(&tmp.path().join("missing.rdb"));
    assert_eq!(code, 1);
}

/// A dataset of every type in its every encoding, made by commands.
fn populate_every_type(c: &mut redis::Connection) {
    let cmds: &[&[&str]] = &[
        &["SET", "str:int", "12345"],
        &["SET", "str:big-int", "123456789012345"],
        &["SET", "str:embstr", "hello"],
        &["APPEND", "str:raw", "appended"],
        &["SET", "str:lzf", &"abcd".repeat(50)],
        &["SET", "str:ttl", "v", "PX", "86400000"],
        &["RPUSH", "list:small", "a", "1", "-7", "bb"],
        &["HSET", "hash:small", "f", "v", "n", "42"],
        &["HSET", "hash:big", "f", &"x".repeat(100)],
        &["SADD", "set:ints", "1", "2", "70000", "-5"],
        &["SADD", "set:small", "a", "b", "3"],
        &["SADD", "set:big", &"y".repeat(80), "z"],
        &["ZADD", "zset:small", "1", "a", "2.5", "b", "-inf", "c"],
        &["ZADD", "zset:big", "1", &"m".repeat(70), "2", "n"],
        &["XADD", "stream", "1-1", "f", "v"],
        &["XADD", "stream", "1-2", "f", "w", "g", "x"],
        &["XGROUP", "CREATE", "stream", "grp", "0"],
        &["XREADGROUP", "GROUP", "grp", "alice", "COUNT", "1", "STREAMS", "stream", ">"],
    ];
    for args in cmds {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let _: redis::Value = cmd.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }
    let items: Vec<String> = (0..3000).map(|i| format!("element-{i}")).collect();
    let _: () = redis::cmd("RPUSH").arg("list:big").arg(&items).query(c).unwrap();
    let fields: Vec<String> = (0..600).flat_map(|i| [format!("f{i}"), format!("{i}")]).collect();
    let _: () = redis::cmd("HSET").arg("hash:many").arg(&fields).query(c).unwrap();
    let members: Vec<String> = (0..200).flat_map(|i| [format!("{i}"), format!("m{i}")]).collect();
    let _: () = redis::cmd("ZADD").arg("zset:many").arg(&members).query(c).unwrap();
    let _: () = redis::cmd("SELECT").arg(5).query(c).unwrap();
    let _: () = redis::cmd("SET").arg("in-db-5").arg("x").query(c).unwrap();
    let _: () = redis::cmd("SELECT").arg(0).query(c).unwrap();
}

#[test]
fn files_ferrokey_writes_pass_both_checkers() {
    let server = Server::start();
    let mut c = server.client();
    populate_every_type(&mut c);
    for compression in ["yes", "no"] {
        let _: () = redis::cmd("CONFIG").arg("SET").arg("rdbcompression").arg(compression).query(&mut c).unwrap();
        let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
        let file = server.path().join("dump.rdb");
        let (code, out) = check(&file);
        assert_eq!(code, 0, "rdbcompression {compression}: {out}");
        let out = Command::new("valkey-check-rdb")
            .arg(&file)
            .output()
            .expect("valkey-check-rdb is not installed: run scripts/install-valkey.sh");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("RDB looks OK"), "valkey-check-rdb: {text}");
    }
}
