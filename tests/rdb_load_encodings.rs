//! Loading keeps the compact encodings of a file as Valkey's loader does,
//! and converts exactly where it converts: the same file, loaded by
//! valkey-server and by ferrokey under the same encoding limits, gives the
//! same OBJECT ENCODING and the same DEBUG DIGEST-VALUE for every key, and
//! again after DEBUG RELOAD. A
//! compact value the server could not use as it is stops the start with
//! an error naming the key and the reason.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Server, Valkey};
use ferrokey_formats::crc64::crc64;
use ferrokey_formats::rdb::rdb_type;
use redis::Connection;

fn query<T: redis::FromRedisValue>(c: &mut Connection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Keys of every type around the default limits: small and big, short and
/// long elements, integer-only sets, lists of one node and of many.
fn populate(c: &mut Connection) -> Vec<String> {
    let long = "x".repeat(100);
    let huge = "y".repeat(10_000);
    let mut keys = Vec::new();
    let mut run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _: redis::Value = query(c, &args);
    };
    let cmd = |name: &str, key: &str, rest: Vec<String>| -> Vec<String> {
        let mut v = vec![name.to_string(), key.to_string()];
        v.extend(rest);
        v
    };
    let n = |count: usize, f: &dyn Fn(usize) -> Vec<String>| -> Vec<String> { (0..count).flat_map(f).collect() };
    for (key, args) in [
        ("h:small", cmd("HSET", "h:small", n(3, &|i| vec![format!("f{i}"), format!("{i}")]))),
        ("h:five", cmd("HSET", "h:five", n(5, &|i| vec![format!("field{i}"), format!("value{i}")]))),
        ("h:long", cmd("HSET", "h:long", vec!["f".into(), long.clone()])),
        ("h:big", cmd("HSET", "h:big", n(200, &|i| vec![format!("f{i}"), format!("{i}")]))),
        ("s:ints", cmd("SADD", "s:ints", n(3, &|i| vec![format!("{}", i * 1000)]))),
        ("s:ints5", cmd("SADD", "s:ints5", n(5, &|i| vec![format!("{}", i as i64 - 2)]))),
        ("s:wide", cmd("SADD", "s:wide", vec!["1".into(), "5000000000".into()])),
        ("s:words", cmd("SADD", "s:words", n(3, &|i| vec![format!("m{i}")]))),
        ("s:words5", cmd("SADD", "s:words5", n(5, &|i| vec![format!("member{i}")]))),
        ("s:long", cmd("SADD", "s:long", vec!["a".into(), long.clone()])),
        ("s:big", cmd("SADD", "s:big", n(300, &|i| vec![format!("m{i}")]))),
        ("z:small", cmd("ZADD", "z:small", n(3, &|i| vec![format!("{}", i as f64 * 1.5), format!("z{i}")]))),
        ("z:five", cmd("ZADD", "z:five", n(5, &|i| vec![format!("{i}"), format!("member{i}")]))),
        ("z:long", cmd("ZADD", "z:long", vec!["1".into(), long.clone()])),
        ("z:big", cmd("ZADD", "z:big", n(300, &|i| vec![format!("{i}"), format!("m{i}")]))),
        ("l:small", cmd("RPUSH", "l:small", n(3, &|i| vec![format!("item{i}")]))),
        ("l:five", cmd("RPUSH", "l:five", n(5, &|i| vec![format!("{i}")]))),
        ("l:nodes", cmd("RPUSH", "l:nodes", n(3000, &|i| vec![format!("element-{i}")]))),
        ("l:plain", cmd("RPUSH", "l:plain", vec!["a".into(), huge.clone(), "b".into()])),
    ] {
        run(args);
        keys.push(key.to_string());
    }
    keys
}

/// (encoding, digest) of every key.
fn describe(c: &mut Connection, keys: &[String]) -> Vec<(String, String, String)> {
    keys.iter()
        .map(|k| {
            let enc: String = query(c, &["OBJECT", "ENCODING", k]);
            let digest: Vec<String> = query(c, &["DEBUG", "DIGEST-VALUE", k]);
            (k.clone(), enc, digest.concat())
        })
        .collect()
}

#[test]
fn loaded_encodings_match_valkey_under_each_limit() {
    let mut seed = Valkey::start();
    let keys = populate(&mut seed.client());
    let _: String = query(&mut seed.client(), &["SAVE"]);
    let dump = std::fs::read(seed.path().join("dump.rdb")).unwrap();
    seed.stop();

    let configs: [&[&str]; 4] = [
        &[],
        &[
            "--hash-max-listpack-entries",
            "4",
            "--set-max-intset-entries",
            "4",
            "--set-max-listpack-entries",
            "4",
            "--zset-max-listpack-entries",
            "4",
            "--list-max-listpack-size",
            "4",
        ],
        &[
            "--hash-max-listpack-value",
            "4",
            "--set-max-listpack-value",
            "4",
            "--zset-max-listpack-value",
            "4",
            "--list-max-listpack-size",
            "-1",
        ],
        &["--list-max-listpack-size", "-5", "--set-max-intset-entries", "2"],
    ];
    let mut seen = std::collections::BTreeSet::new();
    for config in configs {
        let mut described = Vec::new();
        for valkey in [true, false] {
            let mut server = if valkey { Valkey::start().into_server() } else { Server::start() };
            server.stop();
            std::fs::write(server.path().join("dump.rdb"), &dump).unwrap();
            let mut args = vec!["--enable-debug-command", "yes"];
            args.extend_from_slice(config);
            server.restart_with(&args);
            let mut c = server.client();
            let loaded = describe(&mut c, &keys);
            // DEBUG RELOAD saves what was loaded and loads it again.
            let _: String = query(&mut c, &["DEBUG", "RELOAD"]);
            let reloaded = describe(&mut c, &keys);
            described.push([loaded, reloaded].concat());
        }
        let (theirs, ours) = (&described[0], &described[1]);
        assert_eq!(theirs.len(), ours.len());
        for (t, o) in theirs.iter().zip(ours) {
            assert_eq!(t, o, "config {config:?}: (key, encoding, digest) valkey vs ferrokey");
            seen.insert((t.0.clone(), t.1.clone()));
        }
    }
    // The limits were met on both sides of each conversion.
    for (key, encoding) in [
        ("h:five", "listpack"),
        ("h:five", "hashtable"),
        ("s:ints5", "intset"),
        ("s:ints5", "hashtable"),
        ("s:words5", "listpack"),
        ("s:words5", "hashtable"),
        ("z:five", "listpack"),
        ("z:five", "skiplist"),
        ("l:five", "listpack"),
        ("l:five", "quicklist"),
        ("l:nodes", "quicklist"),
    ] {
        assert!(seen.contains(&(key.to_string(), encoding.to_string())), "{key} never loaded as {encoding}: {seen:?}");
    }
}

/// A listpack of short strings, built by hand so that it can be wrong.
fn listpack(entries: &[&[u8]], declared_count: u16) -> Vec<u8> {
    let mut body = Vec::new();
    for e in entries {
        body.push(0x80 | e.len() as u8);
        body.extend_from_slice(e);
        body.push(1 + e.len() as u8);
    }
    let mut lp = ((6 + body.len() + 1) as u32).to_le_bytes().to_vec();
    lp.extend_from_slice(&declared_count.to_le_bytes());
    lp.extend(body);
    lp.push(0xff);
    lp
}

/// An RDB file with a good string key and then `key` of type `t` holding
/// the blob `value`.
fn file_with(t: u8, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut b = b"REDIS0011".to_vec();
    b.extend([0xfe, 0, 0, 4]);
    b.extend_from_slice(b"good");
    b.extend([2]);
    b.extend_from_slice(b"ok");
    b.push(t);
    b.push(key.len() as u8);
    b.extend_from_slice(key);
    b.push(value.len() as u8);
    b.extend_from_slice(value);
    b.push(0xff);
    let c = crc64(&b);
    b.extend_from_slice(&c.to_le_bytes());
    b
}

/// Starts ferrokey on `dir`, expecting it to exit; its status and output.
fn start_expecting_exit(dir: &std::path::Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrokey-server"))
        .args(["--port", &free_port().to_string(), "--bind", "127.0.0.1", "--save", ""])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ferrokey-server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn compact_values_a_server_cannot_use_stop_the_start() {
    let cases: [(u8, Vec<u8>, &str); 5] = [
        (rdb_type::HASH_LISTPACK, listpack(&[b"f", b"v"], 4), "hash listpack integrity check failed"),
        (rdb_type::HASH_LISTPACK, listpack(&[b"f", b"1", b"f", b"2"], 4), "duplicate fields"),
        (rdb_type::SET_LISTPACK, listpack(&[b"m", b"m"], 2), "duplicate members"),
        (rdb_type::ZSET_LISTPACK, listpack(&[b"m", b"nan"], 2), "NaN score"),
        (
            rdb_type::SET_INTSET,
            [2u32.to_le_bytes(), 2u32.to_le_bytes()].concat().into_iter().chain([9, 0, 1, 0]).collect(),
            "not strictly ascending",
        ),
    ];
    for (t, value, reason) in cases {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("dump.rdb"), file_with(t, b"bad-key", &value)).unwrap();
        let (code, out) = start_expecting_exit(tmp.path());
        assert_eq!(code, Some(1), "type {t}: {out}");
        assert!(out.contains("Fatal error loading the DB"), "type {t}: {out}");
        assert!(out.contains(reason) && out.contains("bad-key"), "type {t}: expected {reason:?}: {out}");
    }
}
