//! String commands against a running ferrokey: the TTL each SET-like
//! command leaves behind, keys that really expire, big values built by
//! APPEND and SETRANGE, and the proto-max-bulk-len limits.

mod common;

use std::thread::sleep;
use std::time::Duration;

use common::Server;
use redis::{Commands, Connection, RedisResult, Value};

fn ttl(con: &mut Connection, key: &str) -> i64 {
    con.ttl(key).expect("TTL")
}

fn pttl(con: &mut Connection, key: &str) -> i64 {
    con.pttl(key).expect("PTTL")
}

fn get(con: &mut Connection, key: &str) -> Option<Vec<u8>> {
    con.get(key).expect("GET")
}

fn error_text<T: std::fmt::Debug>(result: RedisResult<T>) -> String {
    let err = result.expect_err("an error reply");
    format!("{} {}", err.code().unwrap_or(""), err.detail().unwrap_or("")).trim().to_string()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn set_expiry_options_store_the_right_ttl() {
    let server = Server::start();
    let mut con = server.client();

    let _: () = redis::cmd("SET").arg("ex").arg("v").arg("EX").arg(100).query(&mut con).unwrap();
    assert!((99..=100).contains(&ttl(&mut con, "ex")));

    let _: () = redis::cmd("SET").arg("px").arg("v").arg("PX").arg(50_000).query(&mut con).unwrap();
    assert!((49_000..=50_000).contains(&pttl(&mut con, "px")));

    let at = now_ms() / 1000 + 200;
    let _: () = redis::cmd("SET").arg("exat").arg("v").arg("EXAT").arg(at).query(&mut con).unwrap();
    assert!((198..=200).contains(&ttl(&mut con, "exat")));

    let at = now_ms() + 300_000;
    let _: () = redis::cmd("SET").arg("pxat").arg("v").arg("PXAT").arg(at).query(&mut con).unwrap();
    assert!((298_000..=300_000).contains(&pttl(&mut con, "pxat")));

    let _: () = redis::cmd("SETEX").arg("setex").arg(100).arg("v").query(&mut con).unwrap();
    assert!((99..=100).contains(&ttl(&mut con, "setex")));
    let _: () = redis::cmd("PSETEX").arg("psetex").arg(50_000).arg("v").query(&mut con).unwrap();
    assert!((49_000..=50_000).contains(&pttl(&mut con, "psetex")));

    // A plain SET, GETSET and MSET all drop the TTL.
    let _: () = con.set("ex", "w").unwrap();
    assert_eq!(ttl(&mut con, "ex"), -1);
    let _: Option<String> = redis::cmd("GETSET").arg("px").arg("w").query(&mut con).unwrap();
    assert_eq!(ttl(&mut con, "px"), -1);
    let _: () = redis::cmd("MSET").arg("exat").arg("w").query(&mut con).unwrap();
    assert_eq!(ttl(&mut con, "exat"), -1);
}

#[test]
fn keepttl_and_in_place_edits_keep_the_ttl() {
    let server = Server::start();
    let mut con = server.client();
    let _: () = redis::cmd("SET").arg("k").arg("v").arg("EX").arg(100).query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v2").arg("KEEPTTL").query(&mut con).unwrap();
    assert_eq!(get(&mut con, "k").as_deref(), Some(&b"v2"[..]));
    assert!((99..=100).contains(&ttl(&mut con, "k")));

    // APPEND, SETRANGE, INCR and INCRBYFLOAT change the value, not the TTL.
    let _: i64 = con.append("k", "x").unwrap();
    let _: i64 = con.setrange("k", 0, "V").unwrap();
    assert!((99..=100).contains(&ttl(&mut con, "k")));
    let _: () = redis::cmd("SET").arg("n").arg(1).arg("EX").arg(100).query(&mut con).unwrap();
    let _: i64 = con.incr("n", 5).unwrap();
    let _: f64 = redis::cmd("INCRBYFLOAT").arg("n").arg("0.5").query(&mut con).unwrap();
    assert!((99..=100).contains(&ttl(&mut con, "n")));
    assert_eq!(get(&mut con, "n").as_deref(), Some(&b"6.5"[..]));
}

#[test]
fn getex_sets_and_removes_ttls() {
    let server = Server::start();
    let mut con = server.client();
    let _: () = redis::cmd("SET").arg("k").arg("v").arg("EX").arg(100).query(&mut con).unwrap();
    let v: String = redis::cmd("GETEX").arg("k").arg("PERSIST").query(&mut con).unwrap();
    assert_eq!(v, "v");
    assert_eq!(ttl(&mut con, "k"), -1);

    let _: String = redis::cmd("GETEX").arg("k").arg("EX").arg(100).query(&mut con).unwrap();
    assert!((99..=100).contains(&ttl(&mut con, "k")));
    let _: String = redis::cmd("GETEX").arg("k").arg("PX").arg(50_000).query(&mut con).unwrap();
    assert!((49_000..=50_000).contains(&pttl(&mut con, "k")));
    // Without options GETEX leaves the TTL alone.
    let _: String = redis::cmd("GETEX").arg("k").query(&mut con).unwrap();
    assert!((49_000..=50_000).contains(&pttl(&mut con, "k")));

    // An absolute time in the past answers the value and deletes the key.
    let v: String = redis::cmd("GETEX").arg("k").arg("PXAT").arg(1).query(&mut con).unwrap();
    assert_eq!(v, "v");
    assert_eq!(get(&mut con, "k"), None);
    let exists: i64 = con.exists("k").unwrap();
    assert_eq!(exists, 0);
}

#[test]
fn set_with_a_past_expiry_deletes_the_key() {
    let server = Server::start();
    let mut con = server.client();
    let _: () = con.set("k", "old").unwrap();
    let reply: String = redis::cmd("SET").arg("k").arg("new").arg("PXAT").arg(1).query(&mut con).unwrap();
    assert_eq!(reply, "OK");
    assert_eq!(get(&mut con, "k"), None);
    let exists: i64 = con.exists("k").unwrap();
    assert_eq!(exists, 0);

    // With GET it still answers the old value.
    let _: () = con.set("k", "old").unwrap();
    let old: Option<String> =
        redis::cmd("SET").arg("k").arg("new").arg("EXAT").arg(1).arg("GET").query(&mut con).unwrap();
    assert_eq!(old.as_deref(), Some("old"));
    assert_eq!(get(&mut con, "k"), None);
}

#[test]
fn keys_with_a_short_ttl_expire() {
    let server = Server::start();
    let mut con = server.client();
    let _: () = redis::cmd("SET").arg("set").arg("v").arg("PX").arg(150).query(&mut con).unwrap();
    let _: () = redis::cmd("PSETEX").arg("psetex").arg(150).arg("v").query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("counter").arg(1).arg("PX").arg(150).query(&mut con).unwrap();
    let _: i64 = con.incr("counter", 1).unwrap();
    let _: () = redis::cmd("SET").arg("kept").arg("v").arg("PX").arg(150).query(&mut con).unwrap();
    let _: String = redis::cmd("GETEX").arg("kept").arg("PERSIST").query(&mut con).unwrap();
    sleep(Duration::from_millis(400));
    assert_eq!(get(&mut con, "set"), None);
    assert_eq!(get(&mut con, "psetex"), None);
    assert_eq!(get(&mut con, "counter"), None);
    assert_eq!(get(&mut con, "kept").as_deref(), Some(&b"v"[..]));
    // An expired key counts as absent for SET NX and INCR.
    let _: () = redis::cmd("SET").arg("gone").arg(41).arg("PX").arg(50).query(&mut con).unwrap();
    sleep(Duration::from_millis(150));
    let set: bool = con.set_nx("gone", "fresh").unwrap();
    assert!(set);
    let _: () = redis::cmd("SET").arg("gone2").arg(41).arg("PX").arg(50).query(&mut con).unwrap();
    sleep(Duration::from_millis(150));
    assert_eq!(con.incr::<_, _, i64>("gone2", 1).unwrap(), 1);
}

#[test]
fn big_append_builds_the_whole_value() {
    let server = Server::start();
    let mut con = server.client();
    let chunk: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut expected_len = 0;
    for _ in 0..8 {
        expected_len += chunk.len();
        let len: usize = con.append("big", &chunk).unwrap();
        assert_eq!(len, expected_len);
    }
    let len: usize = con.strlen("big").unwrap();
    assert_eq!(len, 8 * chunk.len());
    let value = get(&mut con, "big").expect("value");
    assert_eq!(value.len(), 8 * chunk.len());
    assert!(value.chunks(chunk.len()).all(|c| c == chunk.as_slice()));
    let tail: Vec<u8> = con.getrange("big", -3, -1).unwrap();
    assert_eq!(tail, chunk[chunk.len() - 3..].to_vec());
    let encoding: String = redis::cmd("OBJECT").arg("ENCODING").arg("big").query(&mut con).unwrap();
    assert_eq!(encoding, "raw");
}

#[test]
fn proto_max_bulk_len_limits_append_setrange_and_lcs() {
    let server = Server::start_with(&["--proto-max-bulk-len", "1mb"]);
    let mut con = server.client();
    let limit = 1024 * 1024;
    let too_long = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

    let almost = vec![b'a'; limit - 1];
    let _: () = con.set("k", &almost).unwrap();
    let len: usize = con.append("k", "b").unwrap();
    assert_eq!(len, limit);
    assert_eq!(error_text(con.append::<_, _, i64>("k", "c")), too_long);
    let len: usize = con.strlen("k").unwrap();
    assert_eq!(len, limit);

    assert_eq!(con.setrange::<_, _, i64>("new", limit as isize - 1, "x").unwrap(), limit as i64);
    assert_eq!(error_text(con.setrange::<_, _, i64>("new", limit as isize, "x")), too_long);
    assert_eq!(error_text(con.setrange::<_, _, i64>("absent", limit as isize, "x")), too_long);

    // LCS's table of (600+1)^2 four-byte cells exceeds 1 MB.
    let _: () = con.set("a", vec![b'x'; 600]).unwrap();
    let _: () = con.set("b", vec![b'y'; 600]).unwrap();
    let err = error_text(redis::cmd("LCS").arg("a").arg("b").query::<Value>(&mut con));
    assert_eq!(err, "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
    let _: () = con.set("b", vec![b'x'; 400]).unwrap();
    let len: i64 = redis::cmd("LCS").arg("a").arg("b").arg("LEN").query(&mut con).unwrap();
    assert_eq!(len, 400);
}

#[test]
fn read_commands_count_keyspace_hits_and_misses() {
    let server = Server::start();
    let mut con = server.client();
    let stat = |con: &mut Connection, field: &str| -> i64 {
        let text: String = redis::cmd("INFO").arg("stats").query(con).unwrap();
        text.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().parse().ok()).unwrap()
    };
    let _: () = con.set("k", "v").unwrap();
    let (hits, misses) = (stat(&mut con, "keyspace_hits"), stat(&mut con, "keyspace_misses"));
    let _: Vec<Option<String>> = redis::cmd("MGET").arg("k").arg("nope").arg("k").query(&mut con).unwrap();
    let _: i64 = con.strlen("nope").unwrap();
    // Writes look keys up without counting.
    let _: i64 = con.append("k", "w").unwrap();
    let _: i64 = con.incr("n", 1).unwrap();
    assert_eq!(stat(&mut con, "keyspace_hits") - hits, 2);
    assert_eq!(stat(&mut con, "keyspace_misses") - misses, 2);
}

/// Sets the same small strings (an 8-byte value under a "session:N" key,
/// and small integers) in ferrokey and valkey-server and prints what each
/// reports per key. For reading, not asserted: the figures depend on the
/// allocator and the machine. STRING_MEMORY_KEYS=1000000 for the full run.
#[test]
fn memory_of_many_small_strings_next_to_valkey() {
    let keys = common::memory_keys("STRING_MEMORY_KEYS");
    let ferrokey = Server::start();
    let valkey = common::Valkey::start();
    let mut report = Vec::new();
    for (name, server) in [("ferrokey", &ferrokey), ("valkey", &*valkey)] {
        let mut con = server.client();
        let words = common::memory_growth(&mut con, keys, &|i| {
            let mut set = redis::cmd("SET");
            set.arg(format!("session:{i}")).arg(format!("v{:07}", i % 10_000_000));
            set
        });
        let ints = common::memory_growth(&mut con, keys, &|i| {
            let mut set = redis::cmd("SET");
            set.arg(format!("count:{i}")).arg(i);
            set
        });
        report.push(format!("{name} short strings: {words}"));
        report.push(format!("{name} integers: {ints}"));
    }
    println!("{keys} small strings:\n  {}", report.join("\n  "));
}
