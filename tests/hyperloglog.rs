//! HyperLogLog commands against a running ferrokey: accuracy on large
//! cardinalities, and byte-for-byte agreement with the reference
//! valkey-server (HLL values built here are read there, and the other way
//! round, through GET/SET and DUMP/RESTORE).

mod common;

use std::time::Duration;

use common::{RawConn, Server, Valkey};
use ferrokey_formats::resp::Value;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn int(conn: &mut RawConn, args: &[&[u8]]) -> i64 {
    match conn.cmd_value(args) {
        Value::Int(n) => n,
        other => panic!("{:?} answered {other:?}", String::from_utf8_lossy(args[0])),
    }
}

fn bulk(conn: &mut RawConn, args: &[&[u8]]) -> Vec<u8> {
    match conn.cmd_value(args) {
        Value::Bulk(b) => b,
        other => panic!("{:?} answered {other:?}", String::from_utf8_lossy(args[0])),
    }
}

/// PFADD key followed by `elements`.
fn pfadd(conn: &mut RawConn, key: &str, elements: &[String]) -> i64 {
    let mut args: Vec<&[u8]> = vec![b"PFADD", key.as_bytes()];
    args.extend(elements.iter().map(|e| e.as_bytes()));
    int(conn, &args)
}

fn elements(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn pfcount_is_within_the_standard_error() {
    let server = Server::start();
    let mut conn = server.raw();
    for batch in 0..100 {
        pfadd(&mut conn, "hll", &elements("element:", batch * 1000..(batch + 1) * 1000));
    }
    let count = int(&mut conn, &[b"PFCOUNT", b"hll"]);
    // The standard error is 1.04 / sqrt(16384) = 0.81%; allow three of them.
    let error = (count - 100_000).abs() as f64 / 100_000.0;
    assert!(error < 3.0 * 0.0081, "PFCOUNT answered {count} for 100000 elements");
    assert_eq!(conn.cmd(&[b"PFDEBUG", b"ENCODING", b"hll"]), b"+dense\r\n");

    // Counting the same elements again changes nothing.
    for batch in 0..10 {
        assert_eq!(pfadd(&mut conn, "hll", &elements("element:", batch * 1000..(batch + 1) * 1000)), 0);
    }
    assert_eq!(int(&mut conn, &[b"PFCOUNT", b"hll"]), count);
}

#[test]
fn values_are_byte_identical_to_valkey_from_sparse_to_dense() {
    let ours = Server::start();
    let theirs = Valkey::start();
    let (mut a, mut b) = (ours.raw(), theirs.raw());
    let mut rng = StdRng::seed_from_u64(5);
    let mut added = 0;
    // Small batches while sparse, so that every split and merge of opcodes
    // is compared; larger ones once dense.
    while added < 40_000 {
        let size = if added < 3_000 { rng.gen_range(1..40) } else { rng.gen_range(500..3000) };
        let batch: Vec<String> = (0..size).map(|_| format!("{:x}", rng.gen::<u64>())).collect();
        assert_eq!(pfadd(&mut a, "h", &batch), pfadd(&mut b, "h", &batch));
        added += size;
        assert_eq!(bulk(&mut a, &[b"GET", b"h"]), bulk(&mut b, &[b"GET", b"h"]), "after {added} elements");
        if rng.gen_bool(0.3) {
            assert_eq!(int(&mut a, &[b"PFCOUNT", b"h"]), int(&mut b, &[b"PFCOUNT", b"h"]));
            assert_eq!(bulk(&mut a, &[b"GET", b"h"]), bulk(&mut b, &[b"GET", b"h"]), "cached count");
        }
    }
    assert_eq!(a.cmd(&[b"PFDEBUG", b"ENCODING", b"h"]), b"+dense\r\n");
}

#[test]
fn merges_and_unions_match_valkey() {
    let ours = Server::start();
    let theirs = Valkey::start();
    let (mut a, mut b) = (ours.raw(), theirs.raw());
    let sizes = [("tiny", 3), ("small", 150), ("medium", 1200), ("large", 8000)];
    for (i, (key, size)) in sizes.iter().enumerate() {
        let batch = elements(&format!("{i}:"), 0..*size);
        pfadd(&mut a, key, &batch);
        pfadd(&mut b, key, &batch);
    }
    let merges: &[&[&str]] = &[
        &["tiny", "small"],
        &["small", "medium"],
        &["medium", "tiny"],
        &["tiny", "large"],
        &["large", "small", "medium"],
        &["new", "tiny", "small"],
        &["new2", "large"],
        &["new3"],
    ];
    for keys in merges {
        let mut args: Vec<&[u8]> = vec![b"PFMERGE"];
        args.extend(keys.iter().map(|k| k.as_bytes()));
        assert_eq!(a.cmd(&args), b.cmd(&args));
        let dest = keys[0].as_bytes();
        assert_eq!(bulk(&mut a, &[b"GET", dest]), bulk(&mut b, &[b"GET", dest]), "PFMERGE {keys:?}");
        assert_eq!(int(&mut a, &[b"PFCOUNT", dest]), int(&mut b, &[b"PFCOUNT", dest]));
    }
    let union: &[&[u8]] = &[b"PFCOUNT", b"tiny", b"small", b"medium", b"large", b"missing"];
    assert_eq!(int(&mut a, union), int(&mut b, union));
}

#[test]
fn hll_values_travel_between_ferrokey_and_valkey() {
    let ours = Server::start();
    let theirs = Valkey::start();
    let (mut a, mut b) = (ours.raw(), theirs.raw());
    for (key, size) in [("sparse", 500), ("dense", 20_000)] {
        pfadd(&mut a, key, &elements("x", 0..size));
        // Built here, read there: GET / SET.
        let bytes = bulk(&mut a, &[b"GET", key.as_bytes()]);
        assert_eq!(b.cmd(&[b"SET", key.as_bytes(), &bytes]), b"+OK\r\n");
        assert_eq!(int(&mut a, &[b"PFCOUNT", key.as_bytes()]), int(&mut b, &[b"PFCOUNT", key.as_bytes()]));

        // DUMP here, RESTORE there.
        let payload = bulk(&mut a, &[b"DUMP", key.as_bytes()]);
        let copy = format!("{key}:restored");
        assert_eq!(b.cmd(&[b"RESTORE", copy.as_bytes(), b"0", &payload]), b"+OK\r\n");
        assert_eq!(int(&mut b, &[b"PFCOUNT", copy.as_bytes()]), int(&mut a, &[b"PFCOUNT", key.as_bytes()]));

        // Built there, read here, and grown on both sides alike.
        let theirs_key = format!("{key}:valkey");
        pfadd(&mut b, &theirs_key, &elements("y", 0..size));
        let bytes = bulk(&mut b, &[b"GET", theirs_key.as_bytes()]);
        assert_eq!(a.cmd(&[b"SET", theirs_key.as_bytes(), &bytes]), b"+OK\r\n");
        let more = elements("z", 0..300);
        assert_eq!(pfadd(&mut a, &theirs_key, &more), pfadd(&mut b, &theirs_key, &more));
        assert_eq!(bulk(&mut a, &[b"GET", theirs_key.as_bytes()]), bulk(&mut b, &[b"GET", theirs_key.as_bytes()]));
        assert_eq!(
            int(&mut a, &[b"PFCOUNT", theirs_key.as_bytes()]),
            int(&mut b, &[b"PFCOUNT", theirs_key.as_bytes()])
        );
    }
}

#[test]
fn smaller_sparse_limit_promotes_like_valkey() {
    let ours = Server::start_with(&["--hll-sparse-max-bytes", "100"]);
    let theirs = Valkey::start_with(&["--hll-sparse-max-bytes", "100"]);
    let (mut a, mut b) = (ours.raw(), theirs.raw());
    for i in 0..80 {
        let one = vec![format!("e{i}")];
        assert_eq!(pfadd(&mut a, "h", &one), pfadd(&mut b, "h", &one));
        assert_eq!(bulk(&mut a, &[b"GET", b"h"]), bulk(&mut b, &[b"GET", b"h"]), "after {i}");
        assert_eq!(a.cmd(&[b"PFDEBUG", b"ENCODING", b"h"]), b.cmd(&[b"PFDEBUG", b"ENCODING", b"h"]));
    }
}

/// The INFO fields a command's bookkeeping shows: changes since the last
/// save, keyspace hits and misses.
fn bookkeeping(conn: &mut RawConn) -> Vec<String> {
    let info = String::from_utf8_lossy(&conn.cmd(&[b"INFO", b"all"])).into_owned();
    ["rdb_changes_since_last_save:", "keyspace_hits:", "keyspace_misses:"]
        .iter()
        .map(|field| info.lines().find(|l| l.starts_with(field)).unwrap_or(field).to_string())
        .collect()
}

#[test]
fn changes_and_keyspace_hits_are_counted_like_valkey() {
    let ours = Server::start();
    let theirs = Valkey::start();
    let (mut a, mut b) = (ours.raw(), theirs.raw());
    let script: &[&[&str]] = &[
        &["PFADD", "h", "a", "b", "c"],
        &["PFADD", "h", "a"],
        &["PFADD", "new"],
        &["PFCOUNT", "h"],
        &["PFCOUNT", "h"],
        &["PFCOUNT", "missing"],
        &["PFCOUNT", "h", "missing", "new"],
        &["PFMERGE", "m", "h", "missing"],
        &["PFMERGE", "m"],
        &["PFDEBUG", "ENCODING", "m"],
        &["PFDEBUG", "GETREG", "m"],
        &["PFDEBUG", "TODENSE", "h"],
        &["PFDEBUG", "TODENSE", "h"],
        &["PFADD", "h", "d", "e"],
    ];
    for command in script {
        let args: Vec<&[u8]> = command.iter().map(|s| s.as_bytes()).collect();
        assert_eq!(a.cmd(&args), b.cmd(&args), "{command:?}");
        assert_eq!(bookkeeping(&mut a), bookkeeping(&mut b), "after {command:?}");
    }
}

#[test]
fn pfselftest_passes() {
    let server = Server::start();
    let mut conn = server.raw();
    // Ten million additions: slow in a debug build.
    conn.set_timeout(Duration::from_secs(600));
    assert_eq!(conn.cmd(&[b"PFSELFTEST"]), b"+OK\r\n");
}
