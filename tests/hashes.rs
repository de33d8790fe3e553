//! Hash commands against a running ferrokey: a web-session workload with a
//! sliding TTL, binary round trips, hashes growing past the listpack
//! limits, HSCAN completeness under concurrent changes, HRANDFIELD's count
//! semantics, and (printed, not asserted) the memory a million small
//! hashes take next to valkey-server.

mod common;

use std::collections::{HashMap, HashSet};
use std::thread::sleep;
use std::time::Duration;

use common::{Server, Valkey};
use redis::{Commands, Connection};

fn encoding(con: &mut Connection, key: &str) -> String {
    redis::cmd("OBJECT").arg("ENCODING").arg(key).query(con).expect("OBJECT ENCODING")
}

fn hgetall(con: &mut Connection, key: &str) -> HashMap<Vec<u8>, Vec<u8>> {
    redis::cmd("HGETALL").arg(key).query(con).expect("HGETALL")
}

/// A session store: each request reads the session, updates a few fields
/// and pushes the expiry forward; an idle session disappears.
#[test]
fn web_sessions_with_sliding_expiry() {
    let server = Server::start();
    let mut con = server.client();

    let session = "session:4f2a";
    let () = con.hset_multiple(session, &[("user_id", "1042"), ("csrf", "c5e1b2"), ("cart_items", "0")]).unwrap();
    let _: bool = con.expire(session, 30).unwrap();
    for request in 1..=5 {
        let fields = hgetall(&mut con, session);
        assert_eq!(fields[&b"user_id"[..]], b"1042");
        let _: i64 = con.hincr(session, "cart_items", 1).unwrap();
        let _: i64 = con.hset(session, "last_path", format!("/page/{request}")).unwrap();
        let _: bool = con.expire(session, 30).unwrap();
        let ttl: i64 = con.ttl(session).unwrap();
        assert!((29..=30).contains(&ttl), "TTL {ttl} after request {request}");
    }
    // Writes to the fields keep the key's TTL.
    let _: bool = con.expire(session, 1000).unwrap();
    let _: i64 = con.hset(session, "flash", "saved").unwrap();
    let _: i64 = con.hdel(session, "flash").unwrap();
    let ttl: i64 = con.ttl(session).unwrap();
    assert!((999..=1000).contains(&ttl));
    let cart: i64 = con.hget(session, "cart_items").unwrap();
    assert_eq!(cart, 5);
    assert_eq!(encoding(&mut con, session), "listpack");

    // An idle session expires with all its fields.
    let _: bool = con.pexpire(session, 100).unwrap();
    sleep(Duration::from_millis(250));
    assert!(hgetall(&mut con, session).is_empty());
    let exists: bool = con.exists(session).unwrap();
    assert!(!exists);
    let len: i64 = con.hlen(session).unwrap();
    assert_eq!(len, 0);
}

#[test]
fn binary_fields_and_values_round_trip() {
    let server = Server::start();
    let mut con = server.client();

    let every_byte: Vec<u8> = (0..=255u8).collect();
    let mut expected: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    expected.insert(b"\x00\r\n".to_vec(), every_byte.clone());
    expected.insert(b"".to_vec(), b"".to_vec());
    expected.insert(b"12".to_vec(), b"-0".to_vec());
    expected.insert(every_byte.clone(), b"9223372036854775807".to_vec());
    expected.insert(b"utf8 \xc3\xa9".to_vec(), b"\xff\xfe".to_vec());
    // The small hash keeps the short pairs in its listpack; the big one
    // holds 256-byte strings, over hash-max-listpack-value, so is a table.
    let small: HashMap<Vec<u8>, Vec<u8>> =
        expected.iter().filter(|(f, v)| f.len() <= 64 && v.len() <= 64).map(|(f, v)| (f.clone(), v.clone())).collect();
    for (field, value) in &small {
        let _: i64 = con.hset("bin:small", field, value).unwrap();
    }
    for (field, value) in &expected {
        let _: i64 = con.hset("bin:big", field, value).unwrap();
    }
    assert_eq!(encoding(&mut con, "bin:small"), "listpack");
    assert_eq!(encoding(&mut con, "bin:big"), "hashtable");
    assert_eq!(hgetall(&mut con, "bin:small"), small);
    assert_eq!(hgetall(&mut con, "bin:big"), expected);
    let value: Vec<u8> = con.hget("bin:big", b"\x00\r\n").unwrap();
    assert_eq!(value, every_byte);
    let len: i64 = redis::cmd("HSTRLEN").arg("bin:big").arg(&every_byte).query(&mut con).unwrap();
    assert_eq!(len, 19);
}

/// A hash grows past hash-max-listpack-entries one field at a time, and
/// with one HSET carrying many fields; both keep every field.
#[test]
fn many_fields_cross_the_threshold() {
    let server = Server::start();
    let mut con = server.client();

    // hash-max-listpack-entries is 512 by default.
    for i in 0..512 {
        let _: i64 = con.hset("grow", format!("field:{i}"), i).unwrap();
    }
    assert_eq!(encoding(&mut con, "grow"), "listpack");
    let _: i64 = con.hset("grow", "field:512", 512).unwrap();
    assert_eq!(encoding(&mut con, "grow"), "hashtable");
    for i in 513..5000 {
        let _: i64 = con.hset("grow", format!("field:{i}"), i).unwrap();
    }
    let all = hgetall(&mut con, "grow");
    assert_eq!(all.len(), 5000);
    for i in 0..5000 {
        assert_eq!(all[format!("field:{i}").as_bytes()], i.to_string().as_bytes());
    }
    let total: i64 = (0..5000).step_by(7).map(|i| con.hdel("grow", format!("field:{i}")).unwrap_or(0i64)).sum();
    assert_eq!(total, 715);
    let len: usize = con.hlen("grow").unwrap();
    assert_eq!(len, 5000 - 715);
    assert_eq!(encoding(&mut con, "grow"), "hashtable");

    let mut bulk = redis::cmd("HSET");
    bulk.arg("bulk");
    for i in 0..600 {
        bulk.arg(format!("f{i}")).arg(format!("v{i}"));
    }
    let created: i64 = bulk.query(&mut con).unwrap();
    assert_eq!(created, 600);
    assert_eq!(encoding(&mut con, "bulk"), "hashtable");
    let keys: Vec<String> = con.hkeys("bulk").unwrap();
    assert_eq!(keys.into_iter().collect::<HashSet<_>>().len(), 600);
}

/// One HSCAN step: (next cursor, fields returned).
fn hscan_step(con: &mut Connection, key: &str, cursor: u64) -> (u64, Vec<String>) {
    let (next, items): (String, Vec<String>) =
        redis::cmd("HSCAN").arg(key).arg(cursor).arg("COUNT").arg(10).query(con).expect("HSCAN");
    let fields = items.chunks(2).map(|pair| pair[0].clone()).collect();
    (next.parse().expect("numeric cursor"), fields)
}

#[test]
fn hscan_returns_every_field_present_throughout() {
    let server = Server::start();
    let mut con = server.client();

    for i in 0..1000 {
        let () = con.hset_multiple("scanned", &[(format!("stable:{i}"), i), (format!("churn:{i}"), i)]).unwrap();
    }
    assert_eq!(encoding(&mut con, "scanned"), "hashtable");

    let mut seen = HashSet::new();
    let mut cursor = 0;
    let mut step = 0;
    loop {
        let (next, fields) = hscan_step(&mut con, "scanned", cursor);
        seen.extend(fields);
        // Meanwhile other clients remove some fields and add new ones.
        for j in 0..3 {
            let _: i64 = con.hdel("scanned", format!("churn:{}", step * 3 + j)).unwrap();
        }
        let _: i64 = con.hset("scanned", format!("added:{step}"), step).unwrap();
        step += 1;
        cursor = next;
        if cursor == 0 {
            break;
        }
        assert!(step < 10_000, "the scan does not end");
    }
    for i in 0..1000 {
        assert!(seen.contains(&format!("stable:{i}")), "stable:{i} was never returned");
    }

    // A listpack hash comes back whole in one step with cursor 0.
    let () = con.hset_multiple("small", &[("a", 1), ("b", 2)]).unwrap();
    let (next, fields) = hscan_step(&mut con, "small", 0);
    assert_eq!((next, fields), (0, vec!["a".to_string(), "b".to_string()]));
}

#[test]
fn hrandfield_count_semantics() {
    let server = Server::start();
    let mut con = server.client();

    let mut small_fields = HashSet::new();
    for i in 0..10 {
        let _: i64 = con.hset("small", format!("f{i}"), format!("v{i}")).unwrap();
        small_fields.insert(format!("f{i}"));
    }
    let mut big_fields = HashSet::new();
    for i in 0..600 {
        let _: i64 = con.hset("big", format!("f{i}"), format!("v{i}")).unwrap();
        big_fields.insert(format!("f{i}"));
    }
    assert_eq!(encoding(&mut con, "small"), "listpack");
    assert_eq!(encoding(&mut con, "big"), "hashtable");

    for (key, fields) in [("small", &small_fields), ("big", &big_fields)] {
        let size = fields.len() as i64;
        for count in [1, 2, size / 2, size - 1, size, size + 5] {
            // Positive: distinct fields, as many as asked or all of them.
            let got: Vec<String> = redis::cmd("HRANDFIELD").arg(key).arg(count).query(&mut con).unwrap();
            assert_eq!(got.len() as i64, count.min(size), "{key} count {count}");
            let distinct: HashSet<_> = got.iter().cloned().collect();
            assert_eq!(distinct.len(), got.len(), "{key} count {count} repeated a field");
            assert!(distinct.is_subset(fields));
        }
        // Negative: exactly |count| fields, repeats allowed (and certain
        // here, with more picks than fields).
        let got: Vec<String> = redis::cmd("HRANDFIELD").arg(key).arg(-3 * size).query(&mut con).unwrap();
        assert_eq!(got.len() as i64, 3 * size);
        assert!(got.iter().all(|f| fields.contains(f)));
        assert!(got.iter().collect::<HashSet<_>>().len() < got.len());

        // WITHVALUES pairs every field with its own value.
        for count in [4i64, -40] {
            let got: Vec<String> =
                redis::cmd("HRANDFIELD").arg(key).arg(count).arg("WITHVALUES").query(&mut con).unwrap();
            assert_eq!(got.len() as i64, 2 * count.abs());
            for pair in got.chunks(2) {
                assert_eq!(pair[1], pair[0].replacen('f', "v", 1));
            }
        }
        let single: String = redis::cmd("HRANDFIELD").arg(key).query(&mut con).unwrap();
        assert!(fields.contains(&single));
    }

    // Over many draws every field of the small hash comes up.
    let mut drawn = HashSet::new();
    for _ in 0..50 {
        let got: Vec<String> = redis::cmd("HRANDFIELD").arg("small").arg(3).query(&mut con).unwrap();
        drawn.extend(got);
    }
    assert_eq!(drawn, small_fields);
}

/// Loads the same small hashes (5 fields each) into ferrokey and
/// valkey-server and prints what each reports. The figures are for reading,
/// not asserted: they depend on the allocator and the machine. Set
/// HASH_MEMORY_KEYS for a bigger run (the default keeps the test quick).
#[test]
fn memory_of_many_small_hashes_next_to_valkey() {
    let keys = common::memory_keys("HASH_MEMORY_KEYS");
    let ferrokey = Server::start();
    let valkey = Valkey::start();
    let mut report = Vec::new();
    for (name, server) in [("ferrokey", &ferrokey), ("valkey", &*valkey)] {
        let mut con = server.client();
        let growth = common::memory_growth(&mut con, keys, &|i| {
            let mut hset = redis::cmd("HSET");
            hset.arg(format!("user:{i}"))
                .arg("name")
                .arg(format!("user{i}"))
                .arg("age")
                .arg(i % 90)
                .arg("city")
                .arg("Paris")
                .arg("email")
                .arg(format!("u{i}@example.com"))
                .arg("score")
                .arg(i % 1000);
            hset
        });
        let dbsize: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
        assert_eq!(dbsize, keys);
        assert_eq!(encoding(&mut con, "user:0"), "listpack");
        report.push(format!("{name}: {growth}"));
    }
    println!("{keys} hashes x 5 fields:\n  {}", report.join("\n  "));
}
